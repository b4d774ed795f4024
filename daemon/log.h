/* log: renewd's logging, to the journal with structured fields or to stderr.
 *
 * Every line about a contract carries CONTRACT_ID= (and TIER=, CHANNEL=,
 * REMINDER_ID= where known) so `journalctl CONTRACT_ID=C-1001` shows the
 * whole story of one contract. The console target prints the same fields as
 * "key=value" after the message. Owns no resources; never blocks for long
 * (journal writes are datagrams). Secrets are never passed to it. Control
 * characters and invalid UTF-8 in the message and the fields are written as
 * "\xNN" (str_escape_controls()): one call is one line, whatever the data. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

enum log_target {
  LOG_TARGET_AUTO,    /* journal when stderr is the journal or not a TTY, else console */
  LOG_TARGET_CONSOLE, /* stderr */
  LOG_TARGET_JOURNAL, /* sd_journal_send */
};

struct logger {
  enum log_target target; /* resolved (never AUTO after log_init) */
  int max_level;          /* LOG_DEBUG .. LOG_ERR: lines above it are dropped */
};

/* Parses "console", "journal", "auto". Returns the target or -EINVAL. */
int log_target_from_string(const char *s);
/* Resolves AUTO. */
void log_init(struct logger *l, enum log_target target, int max_level);

/* Structured context of a log line; any field may be NULL/0. */
struct log_ctx {
  const char *contract_id;
  const char *tier;
  const char *channel;
  int64_t reminder_id;
};

void log_msg(const struct logger *l, int level, const struct log_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define log_info(l, ...) log_msg((l), LOG_INFO, NULL, __VA_ARGS__)
#define log_notice(l, ...) log_msg((l), LOG_NOTICE, NULL, __VA_ARGS__)
#define log_warning(l, ...) log_msg((l), LOG_WARNING, NULL, __VA_ARGS__)
#define log_error(l, ...) log_msg((l), LOG_ERR, NULL, __VA_ARGS__)
#define log_debug(l, ...) log_msg((l), LOG_DEBUG, NULL, __VA_ARGS__)
