/* log: journal or console logging with contract fields (see log.h). */
#include "daemon/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"

int log_target_from_string(const char *s) {
  if (strcmp(s, "console") == 0)
    return LOG_TARGET_CONSOLE;
  if (strcmp(s, "journal") == 0)
    return LOG_TARGET_JOURNAL;
  if (strcmp(s, "auto") == 0)
    return LOG_TARGET_AUTO;
  return -EINVAL;
}

/* systemd sets JOURNAL_STREAM=dev:ino when stderr is connected to the journal. */
static bool stderr_is_journal(void) {
  const char *e = getenv("JOURNAL_STREAM");
  struct stat st;
  if (!e || fstat(STDERR_FILENO, &st) < 0)
    return false;
  unsigned long long dev, ino;
  if (sscanf(e, "%llu:%llu", &dev, &ino) != 2)
    return false;
  return st.st_dev == (dev_t)dev && st.st_ino == (ino_t)ino;
}

void log_init(struct logger *l, enum log_target target, int max_level) {
  if (target == LOG_TARGET_AUTO)
    target = (stderr_is_journal() || !isatty(STDERR_FILENO)) &&
                     access("/run/systemd/journal/socket", W_OK) == 0
                 ? LOG_TARGET_JOURNAL
                 : LOG_TARGET_CONSOLE;
  l->target = target;
  l->max_level = max_level;
}

static const char *level_name(int level) {
  static const char *names[] = {"emerg",   "alert",  "crit", "error",
                                "warning", "notice", "info", "debug"};
  return level >= 0 && level <= 7 ? names[level] : "?";
}

void log_msg(const struct logger *l, int level, const struct log_ctx *ctx, const char *fmt, ...) {
  if (level > l->max_level)
    return;
  char raw[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(raw, sizeof raw, fmt, ap);
  va_end(ap);
  const struct log_ctx none = {0};
  if (!ctx)
    ctx = &none;
  /* Values in log lines come from customers, CSV files and remote servers:
   * control characters and invalid UTF-8 are escaped ("\x0a"), so nothing
   * can forge a line, drive the terminal or turn MESSAGE= into a blob. */
  char msg[2048], cid_s[260], tier_s[160], chan_s[160];
  str_escape_controls(raw, msg, sizeof msg);
  struct log_ctx esc = *ctx;
  if (esc.contract_id)
    esc.contract_id = (str_escape_controls(esc.contract_id, cid_s, sizeof cid_s), cid_s);
  if (esc.tier)
    esc.tier = (str_escape_controls(esc.tier, tier_s, sizeof tier_s), tier_s);
  if (esc.channel)
    esc.channel = (str_escape_controls(esc.channel, chan_s, sizeof chan_s), chan_s);
  ctx = &esc;

  if (l->target == LOG_TARGET_JOURNAL) {
    /* Only the fields that are set: sd_journal_sendv takes "KEY=value" iovecs. */
    char f_msg[2100], f_prio[16], f_cid[300], f_tier[200], f_chan[200], f_rid[48];
    struct iovec iov[7];
    size_t n = 0;
#define ADD(buf, ...)                                                                              \
  do {                                                                                             \
    int k = snprintf(buf, sizeof buf, __VA_ARGS__);                                                \
    iov[n++] = (struct iovec){buf, (size_t)(k < (int)sizeof buf ? k : (int)sizeof buf - 1)};       \
  } while (0)
    ADD(f_msg, "MESSAGE=%s", msg);
    ADD(f_prio, "PRIORITY=%d", level);
    iov[n++] = (struct iovec){(char *)"SYSLOG_IDENTIFIER=renewd", 24};
    if (ctx->contract_id)
      ADD(f_cid, "CONTRACT_ID=%s", ctx->contract_id);
    if (ctx->tier)
      ADD(f_tier, "TIER=%s", ctx->tier);
    if (ctx->channel)
      ADD(f_chan, "CHANNEL=%s", ctx->channel);
    if (ctx->reminder_id)
      ADD(f_rid, "REMINDER_ID=%" PRId64, ctx->reminder_id);
#undef ADD
    sd_journal_sendv(iov, (int)n);
    return;
  }

  char line[2600];
  int n = snprintf(line, sizeof line, "renewd[%s]: %s", level_name(level), msg);
  if (ctx->contract_id && n < (int)sizeof line)
    n += snprintf(line + n, sizeof line - n, " CONTRACT_ID=%s", ctx->contract_id);
  if (ctx->tier && n < (int)sizeof line)
    n += snprintf(line + n, sizeof line - n, " TIER=%s", ctx->tier);
  if (ctx->channel && n < (int)sizeof line)
    n += snprintf(line + n, sizeof line - n, " CHANNEL=%s", ctx->channel);
  if (ctx->reminder_id && n < (int)sizeof line)
    n += snprintf(line + n, sizeof line - n, " REMINDER_ID=%" PRId64, ctx->reminder_id);
  fprintf(stderr, "%s\n", line);
}
