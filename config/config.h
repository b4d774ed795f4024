/* config: renewd's configuration, read from an INI file plus drop-ins, validated
 * as a whole, and handed out as typed structs.
 *
 * Files: the main file (default /etc/renewd/renewd.conf) and then every
 * "*.conf" in the drop-in directory next to it (main path + ".d"), in byte-wise
 * lexical order of their names. Sections of the same type and name merge
 * across files; a later assignment of a single-valued key overrides an earlier
 * one, and an empty assignment ("Key=") resets the key to its default. The
 * syntax and every key are described in docs/configuration.md.
 *
 * Validation collects ALL errors, each as "file:line: message" (struct
 * config_error); nothing is printed or logged here. A config is either fully
 * valid or not returned at all.
 *
 * Owns: the struct config and everything it points to, except the holiday
 * sets inside windows (owned by the struct cal given to config_load(), which
 * must outlive the config). Blocking: config_load() reads the files (and,
 * through cal, zoneinfo and holiday .ics files); everything else is pure.
 * Not thread-safe per object; no global state. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/cal.h"
#include "core/ladder.h"

#define CONFIG_DEFAULT_PATH "/etc/renewd/renewd.conf"

/* Exit status of `renewd --check-config` / `renewctl check-config` for an
 * invalid config (EX_CONFIG from sysexits.h). */
#define CONFIG_EXIT_INVALID 78

/* One problem found while loading. line is 1-based; it is 0 only for errors
 * about a whole file (I/O errors), which config_errors_print() shows as
 * "file: message". */
struct config_error {
  char *file;    /* path of the file the problem is in; owned */
  unsigned line; /* 1-based line, 0 = the file as a whole */
  char *message; /* without the "file:line: " prefix; owned */
};

/* Errors in order of file (main, then drop-ins as read) and line. */
struct config_errors {
  struct config_error *v; /* owned array */
  size_t n;
};

/* Frees every error and resets e to empty. Accepts NULL. */
void config_errors_clear(struct config_errors *e);
/* Appends one error (printf-style message). For callers that add their own
 * checks in the same format. Returns 0 or -ENOMEM. */
int config_errors_add(struct config_errors *e, const char *file, unsigned line, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));
/* Writes each error as "file:line: message\n" (or "file: message\n" when line
 * is 0) to out. */
void config_errors_print(const struct config_errors *e, FILE *out);

/* One "Key=Value" assignment kept verbatim (channel and [Ops] options). */
struct config_kv {
  char *key;        /* owned */
  char *value;      /* owned, never empty */
  const char *file; /* where it was assigned; points into config.files */
  unsigned line;
};

/* [Daemon]: process-wide settings. Every field has a default. */
struct config_daemon {
  char *database;               /* Database=: SQLite file, absolute path */
  char *listen;                 /* Listen= as written: "127.0.0.1:8787", "[::1]:8787" */
  char *listen_host;            /* host part of Listen=, IPv6 without brackets */
  uint16_t listen_port;         /* port part of Listen=, 1..65535 */
  char *public_url;             /* PublicURL=: base of links in messages, no trailing '/' */
  char *time_zone;              /* TimeZone=: IANA zone for customers without one */
  int64_t horizon;              /* Horizon=: seconds of due reminders kept in memory, > 0 */
  int64_t refill_interval;      /* RefillInterval=: seconds between horizon refills, > 0 */
  int64_t change_poll_interval; /* ChangePollInterval=: seconds between store change polls, > 0 */
  int64_t stop_timeout;     /* StopTimeout=: seconds a stop waits for transfers in flight, >= 0 */
  char *templates;          /* Templates=: template directory, absolute path */
  char *locale;             /* Locale=: default locale (BCP 47), the end of every fallback
                               chain and the language of owner and ops messages */
  char *link_key_file;      /* LinkKeyFile=: path or credential name; NULL = none */
  const char *link_key_src; /* where LinkKeyFile= is set (file of config->files), */
  unsigned link_key_line;   /*   for errors; NULL/0 = not set */
  char *api_token_file;     /* ApiTokenFile=: path or credential name; NULL = none */
};

/* [HTTP]: the listener's limits (read at start; a reload does not change them). */
struct config_http {
  unsigned max_connections; /* MaxConnections=: open connections, 16..10000 (256) */
  unsigned max_per_client;  /* MaxConnectionsPerClient=: per client address, 0 = any (64) */
  int64_t request_timeout;  /* RequestTimeout=: seconds for a whole request, 1..300 (5) */
};

/* [SendWindow] (the default) or [SendWindow NAME]. */
struct config_window {
  char *name;               /* NULL for the default window */
  struct cal_window window; /* Hours=, Days=; window.holidays is set only when a
                               struct cal was given to config_load() and
                               Holidays= is set (owned by that cal) */
  char *holidays_path;      /* Holidays=: .ics path, or NULL */
  const char *file;         /* first section header; NULL when the default window */
  unsigned line;            /*   comes from built-in defaults only (then line is 0) */
};

/* [Channel NAME], and [Ops] (name "Ops", type NULL). */
struct config_channel {
  char *name;                /* section name; owned */
  char *type;                /* Type=: "sink", "smtp", "sms" or "webhook"; NULL for [Ops] */
  struct config_kv *options; /* every other assignment in file order; an empty
                                assignment removes the earlier ones of its key
                                and is not kept. Validated by the notifiers. */
  size_t n_options;
  const char *file; /* first section header; points into config.files */
  unsigned line;
};

struct config {
  char **files; /* files read: the main file, then the drop-ins in order; owned */
  size_t n_files;
  struct config_daemon daemon;
  struct config_http http;
  struct config_window *windows; /* [0] is the default window (name NULL), then the
                                    named ones in order of first appearance */
  size_t n_windows;
  struct policy **policies; /* [Policy NAME] in order of first appearance; each holds
                               deep copies of its tiers in Tiers= order, which is
                               ascending by offset; exactly one serves "*" */
  size_t n_policies;
  struct config_channel *channels; /* [Channel NAME] in order of first appearance */
  size_t n_channels;
  char *alert_channel;       /* [Ops] AlertChannel=: a channel name, or NULL */
  struct config_channel ops; /* [Ops]: the other keys, read with config_channel_get() */
};

/* Why v cannot be the value of a secret key (*File=: an absolute path, or a
 * systemd credential name read from $CREDENTIALS_DIRECTORY), as a phrase for
 * an error message that must not quote v; NULL when v is fine. Refused: empty,
 * blanks or control characters, a relative path, and a value that looks like
 * a secret pasted in by mistake (config_secret_shape()). */
const char *config_secret_ref_problem(const char *v);
/* Why a credential name (a file name) looks like a secret rather than a
 * name: characters no file or credential name has ('+', '=', '~', ...), a
 * known API-key prefix (whsec_, sk_live_, ghp_, ...), more than 64 bytes, 16
 * or more hex digits, or 20 or more letters and digits without '-', '_', '.'
 * or '@' whose case and digits alternate as in random base64 (not as in a
 * CamelCase name). NULL when it looks like a name. */
const char *config_secret_shape(const char *v);

/* Loads main_path and the drop-ins in main_path + ".d/" and validates them.
 * cal may be NULL: then TimeZone= and Holidays= are only checked for syntax
 * and no holiday sets are loaded. Errors are APPENDED to errs (may be NULL).
 * Returns 0 and a config in *ret (caller frees with config_free(); it borrows
 * cal's holiday sets, so free it before cal), -EINVAL when the files are
 * invalid, -ENOMEM, or -errno when a file cannot be read (also reported in
 * errs, with line 0). *ret is untouched on failure. */
int config_load(const char *main_path, struct cal *cal, struct config **ret,
                struct config_errors *errs);
/* Same as config_load() for a single in-memory file called name (no drop-ins). */
int config_load_string(const char *name, const char *text, struct cal *cal, struct config **ret,
                       struct config_errors *errs);
/* Frees c. Accepts NULL; returns NULL. */
struct config *config_free(struct config *c);
static inline void config_freep(struct config **c) {
  config_free(*c);
}

/* The policy serving segment, else the one serving "*" (always present in a
 * loaded config). NULL or empty segment means "*". Valid until config_free(). */
const struct policy *config_policy_for_segment(const struct config *c, const char *segment);
/* The policy called name, or NULL. */
const struct policy *config_policy(const struct config *c, const char *name);
/* The window called name (NULL = the default window, always present), or NULL. */
const struct config_window *config_window(const struct config *c, const char *name);
/* The channel called name, or NULL. */
const struct config_channel *config_channel(const struct config *c, const char *name);
/* The last assignment of key in ch (value, file and line), or NULL when unset. */
const struct config_kv *config_channel_lookup(const struct config_channel *ch, const char *key);
/* The value of the last assignment of key in ch, or NULL when unset. */
const char *config_channel_get(const struct config_channel *ch, const char *key);
/* The kind of address ch sends to, as a channel type: "smtp" (email), "sms"
 * (phone) or "webhook" (URL); a sink answers for the type its Kind= names
 * (email, sms, webhook; default email). NULL for an unknown type. Static. */
const char *config_channel_addr_type(const struct config_channel *ch);

/* Parses a time span: systemd style ("48h", "2d", "90s", "1h30min", "1h 30min",
 * "15min", a bare number = seconds; units s/sec/second(s), m/min/minute(s),
 * h/hr/hour(s), d/day(s), w/week(s)) or ISO 8601 ("PT48H", "P2D"; a day is
 * 86400 s). Returns 0 and seconds >= 0, or -EINVAL/-ERANGE. */
int config_parse_timespan(const char *s, int64_t *ret);

/* Writes the effective policies to out as an aligned table, one row per tier:
 * POLICY SEGMENTS CATCH-UP TIER OFFSET REPEAT CHANNELS FALLBACK AUDIENCE
 * TEMPLATE ESCALATE (the policy columns only on a policy's first row; "-" for
 * empty cells). */
void config_print_policies(const struct config *c, FILE *out);
