/* cli: what renewctl's subcommands share.
 *
 * struct cli is the context of one renewctl run (global options, lazily loaded
 * config, calendar); cli_open_store() opens the store with a plain-language
 * error; cli_table prints aligned tables whose widths count display columns
 * (CJK characters are two wide; main() sets LC_CTYPE to C.UTF-8 for wcwidth);
 * cli_json_* build jansson values with RFC 3339 UTC timestamps.
 *
 * Helpers that fail print "renewctl: ..." on stderr themselves and return a
 * sysexits code (EX_*), which the command returns from main. Everything here
 * may block on files (config, store); nothing is thread-safe. */
#pragma once

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sysexits.h>

#include "config/config.h"
#include "core/cal.h"
#include "core/store.h"
#include "core/util.h"

#define CLI_DEFAULT_DB "/var/lib/renewd/renewd.db"

/* Context of one renewctl run, created in main() and passed to a command. */
struct cli {
  const char *db_path;     /* --db, NULL = [Daemon] Database= or CLI_DEFAULT_DB */
  const char *config_path; /* --config, NULL = CONFIG_DEFAULT_PATH (may be missing) */
  bool json;               /* --json: machine-readable output on stdout */
  bool config_loaded;      /* cli_config() ran successfully */
  struct config *config;   /* NULL = built-in defaults (default file missing); owned */
  struct cal *cal;         /* created on first use; owned */
};

/* Frees what the context owns. */
void cli_done(struct cli *c);

/* Long options every command accepts (after the command name as well as
 * before it): --json, --db PATH, --config PATH. Put CLI_COMMON_OPTIONS into a
 * command's getopt_long() table and pass unknown option codes to
 * cli_common_option(). */
enum {
  CLI_OPT_JSON = 0x1000,
  CLI_OPT_DB,
  CLI_OPT_CONFIG,
  CLI_OPT_HELP = 'h',
};
#define CLI_COMMON_OPTIONS                                                                         \
  {"json", no_argument, NULL, CLI_OPT_JSON}, {"db", required_argument, NULL, CLI_OPT_DB},          \
      {"config", required_argument, NULL, CLI_OPT_CONFIG}, {                                       \
    "help", no_argument, NULL, CLI_OPT_HELP                                                        \
  }
/* Handles a common option. Returns true when opt was one. */
bool cli_common_option(struct cli *c, int opt, const char *arg);

/* Prints "renewctl: message" plus a hint to stderr and returns EX_USAGE. */
int cli_usage_error(const char *command, const char *fmt, ...) _printf_(2, 3);
/* Prints "renewctl: message" to stderr. */
void cli_error(const char *fmt, ...) _printf_(1, 2);

/* Loads the config on first use. A missing default config file means built-in
 * defaults (*ret = NULL); a missing --config file or an invalid config prints
 * the errors and returns EX_CONFIG. Returns 0 or an EX_* code. */
int cli_config(struct cli *c, const struct config **ret);
/* The calendar (zone cache), created on first use; NULL on OOM (after printing). */
struct cal *cli_cal(struct cli *c);
/* Database path: --db, else [Daemon] Database=, else CLI_DEFAULT_DB. Loads the
 * config. Returns 0 or an EX_* code. */
int cli_db_path(struct cli *c, const char **ret);
/* Default zone for customers without one: [Daemon] TimeZone= or "UTC". */
int cli_default_tz(struct cli *c, const char **ret);

/* Opens the store (flags as for store_open()). On failure prints e.g.
 * "renewctl: cannot open store /var/lib/renewd/renewd.db: Permission denied
 * (run as root or as the renewd user)" and returns EX_NOINPUT (missing or
 * unreadable), EX_CANTCREAT (cannot create/write), EX_UNAVAILABLE (locked,
 * newer schema) or EX_IOERR. Caller frees *ret with store_free(). */
int cli_open_store(struct cli *c, unsigned flags, struct store **ret);
static inline void cli_store_freep(struct store **s) {
  store_free(*s);
}

/* ---- formatting ---------------------------------------------------------------- */

/* Number of terminal columns s takes (wcwidth per code point; invalid bytes
 * and control characters count 1, as they are printed as '?'). */
size_t cli_display_width(const char *s);

/* "1200.50" (no currency) or "1200.50 EUR"; "" when minor is 0 and currency
 * is NULL. Returns out. */
char *cli_format_money(int64_t minor, const char *currency, char *out, size_t n);
/* The last day a contract is valid, as a local date "YYYY-MM-DD" in zone z:
 * the day before expires_at when expires_at is a local midnight (the usual
 * "valid through" date of an import), else the day of expires_at. */
char *cli_format_last_day(const struct cal_zone *z, int64_t expires_at, char out[static 11]);
/* A duration such as "30d", "12h", "2w" (also "90min", "P30D"): seconds. 0 or
 * -EINVAL. */
int cli_parse_within(const char *s, int64_t *ret);

/* ---- tables ------------------------------------------------------------------------ */

struct cli_table;

/* A table with n columns; headers are copied. Caller frees with
 * cli_table_free(). NULL on OOM. */
struct cli_table *cli_table_new(size_t n, const char *const *headers);
struct cli_table *cli_table_free(struct cli_table *t);
/* Right-aligns a column (numbers). */
void cli_table_align_right(struct cli_table *t, size_t col);
/* Caps a column at max display columns; longer cells are cut and end in "…". */
void cli_table_max_width(struct cli_table *t, size_t col, size_t max);
/* Appends a row of n cells (NULL = empty), copied. 0 or -ENOMEM. */
int cli_table_add(struct cli_table *t, const char *const *cells);
/* Prints the header and rows, columns separated by two spaces, no trailing
 * blanks. Control characters in cells are printed as '?'. */
void cli_table_print(const struct cli_table *t, FILE *out);

/* ---- JSON ------------------------------------------------------------------------- */

/* A string, or JSON null for NULL/"". New reference (NULL on OOM). */
json_t *cli_json_str(const char *s);
/* "2027-03-01T00:00:00Z" (UTC), or JSON null when t is 0. */
json_t *cli_json_time(int64_t t);
/* Sets key in obj to v (stealing the reference); returns -ENOMEM when v is
 * NULL or the set failed. */
int cli_json_set(json_t *obj, const char *key, json_t *v);
/* Dumps j with 2-space indentation and a final newline. 0 or EX_IOERR. */
int cli_json_print(const json_t *j, FILE *out);

/* ---- suppressions (cmd_suppress.c) ------------------------------------------------- */

/* The suppressions of a contact's email address and phone number (either may
 * be NULL) as a JSON array of {address, kind, reason, source, note,
 * created_at} (*ret, a new reference), and in *ret_bits (optional) the
 * OPTOUT_EMAIL/OPTOUT_SMS bits they amount to. 0 or -errno. */
int cli_suppressions_json(struct store *s, const char *email, const char *phone, json_t **ret,
                          unsigned *ret_bits);
