/* cli: shared helpers of renewctl's subcommands (see cli.h).
 *
 * Tables keep all their cells in one growable arena (cells NUL-separated, row
 * after row) and the widest display width per column, so a long listing costs
 * one allocation per doubling, not one per cell. */
#include "cli/cli.h"

#include <inttypes.h>
#include <unistd.h>
#include <wchar.h>

void cli_done(struct cli *c) {
  /* the config borrows cal's holiday sets: free it first */
  c->config = config_free(c->config);
  c->cal = cal_free(c->cal);
}

bool cli_common_option(struct cli *c, int opt, const char *arg) {
  switch (opt) {
  case CLI_OPT_JSON:
    c->json = true;
    return true;
  case CLI_OPT_DB:
    c->db_path = arg;
    return true;
  case CLI_OPT_CONFIG:
    c->config_path = arg;
    return true;
  default:
    return false;
  }
}

void cli_error(const char *fmt, ...) {
  va_list ap;
  fputs("renewctl: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

int cli_usage_error(const char *command, const char *fmt, ...) {
  va_list ap;
  fputs("renewctl: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  if (command)
    fprintf(stderr, "Try 'renewctl %s --help'.\n", command);
  else
    fputs("Try 'renewctl --help'.\n", stderr);
  return EX_USAGE;
}

struct cal *cli_cal(struct cli *c) {
  if (!c->cal && cal_new(&c->cal) < 0) {
    cli_error("out of memory");
    return NULL;
  }
  return c->cal;
}

int cli_config(struct cli *c, const struct config **ret) {
  if (!c->config_loaded) {
    const char *path = c->config_path ? c->config_path : CONFIG_DEFAULT_PATH;
    if (!c->config_path && access(path, F_OK) < 0 && errno == ENOENT) {
      c->config = NULL; /* no config installed: built-in defaults */
    } else {
      struct cal *cal = cli_cal(c);
      struct config_errors errs = {0};
      if (!cal)
        return EX_OSERR;
      int r = config_load(path, cal, &c->config, &errs);
      if (r < 0) {
        if (errs.n > 0)
          config_errors_print(&errs, stderr);
        else
          cli_error("cannot load config %s: %s", path, strerror(-r));
        config_errors_clear(&errs);
        return EX_CONFIG;
      }
      config_errors_clear(&errs);
    }
    c->config_loaded = true;
  }
  if (ret)
    *ret = c->config;
  return 0;
}

int cli_db_path(struct cli *c, const char **ret) {
  if (c->db_path) {
    *ret = c->db_path;
    return 0;
  }
  const struct config *cfg;
  int r = cli_config(c, &cfg);
  if (r)
    return r;
  *ret = cfg && !isempty(cfg->daemon.database) ? cfg->daemon.database : CLI_DEFAULT_DB;
  return 0;
}

int cli_default_tz(struct cli *c, const char **ret) {
  const struct config *cfg;
  int r = cli_config(c, &cfg);
  if (r)
    return r;
  *ret = cfg && !isempty(cfg->daemon.time_zone) ? cfg->daemon.time_zone : "UTC";
  return 0;
}

int cli_open_store(struct cli *c, unsigned flags, struct store **ret) {
  const char *path;
  char err[512] = "";
  bool writing = !(flags & STORE_READONLY);
  int r = cli_db_path(c, &path);
  if (r)
    return r;
  r = store_open(path, flags, ret, err, sizeof(err));
  if (r >= 0)
    return 0;
  switch (-r) {
  case ENOENT:
    if (flags & STORE_NO_CREATE) {
      cli_error("cannot open store %s: no such file (has renewd run yet? use --db)", path);
      return EX_NOINPUT;
    }
    cli_error("cannot create store %s: no such directory (use --db)", path);
    return EX_CANTCREAT;
  case EACCES:
  case EPERM:
  case EROFS:
    cli_error("cannot open store %s: Permission denied (run as root or as the renewd user)", path);
    return writing ? EX_CANTCREAT : EX_NOINPUT;
  case EBUSY:
    cli_error("cannot open store %s: database is locked", path);
    return EX_UNAVAILABLE;
  case EPROTO:
    cli_error("cannot open store %s: %s", path, *err ? err : "unsupported schema version");
    return EX_UNAVAILABLE;
  case EBADMSG:
    cli_error("cannot open store %s: not a renewd database, or corrupt", path);
    return EX_IOERR;
  default:
    cli_error("cannot open store %s: %s", path, *err ? err : strerror(-r));
    return EX_IOERR;
  }
}

/* ---- formatting ------------------------------------------------------------------- */

/* Decodes one character at s: its byte length and display width ('?' for
 * invalid or control bytes). */
static size_t char_at(const char *s, size_t *ret_width) {
  mbstate_t st = {0};
  wchar_t wc;
  size_t n = mbrtowc(&wc, s, MB_CUR_MAX, &st);
  if (n == 0 || n == (size_t)-1 || n == (size_t)-2) {
    *ret_width = 1;
    return 1;
  }
  int w = wcwidth(wc);
  *ret_width = w < 0 ? 1 : (size_t)w;
  return n;
}

static bool is_control_byte(unsigned char c) {
  return c < 0x20 || c == 0x7f;
}

size_t cli_display_width(const char *s) {
  size_t width = 0;
  if (!s)
    return 0;
  while (*s) {
    size_t w;
    if (is_control_byte((unsigned char)*s)) {
      width++;
      s++;
      continue;
    }
    s += char_at(s, &w);
    width += w;
  }
  return width;
}

char *cli_format_money(int64_t minor, const char *currency, char *out, size_t n) {
  if (minor == 0 && isempty(currency)) {
    if (n)
      out[0] = 0;
    return out;
  }
  uint64_t a = minor < 0 ? -(uint64_t)minor : (uint64_t)minor;
  snprintf(out, n, "%s%" PRIu64 ".%02u%s%s", minor < 0 ? "-" : "", a / 100, (unsigned)(a % 100),
           isempty(currency) ? "" : " ", isempty(currency) ? "" : currency);
  return out;
}

char *cli_format_last_day(const struct cal_zone *z, int64_t expires_at, char out[static 11]) {
  struct cal_local l;
  cal_to_local(z, expires_at, &l);
  if (l.hour == 0 && l.minute == 0 && l.second == 0)
    cal_to_local(z, expires_at - 1, &l);
  char b[40];
  snprintf(b, sizeof(b), "%04d-%02d-%02d", l.year, l.month, l.day);
  snprintf(out, 11, "%.10s", b);
  return out;
}

int cli_parse_within(const char *s, int64_t *ret) {
  size_t n = s ? strlen(s) : 0;
  int64_t v;
  /* a unit is required: a bare "30" would silently mean seconds */
  if (n == 0 || !((s[n - 1] >= 'a' && s[n - 1] <= 'z') || (s[n - 1] >= 'A' && s[n - 1] <= 'Z')))
    return -EINVAL;
  if (config_parse_timespan(s, &v) < 0 || v <= 0)
    return -EINVAL;
  *ret = v;
  return 0;
}

/* ---- tables ------------------------------------------------------------------------- */

struct cli_table {
  size_t n_cols;
  size_t *width;    /* widest cell (display columns) per column, capped by max */
  size_t *max;      /* per column cap, 0 = none */
  bool *right;      /* per column: right-aligned */
  struct buf cells; /* header then rows, n_cols NUL-terminated cells each */
  size_t n_rows;    /* rows including the header */
};

struct cli_table *cli_table_free(struct cli_table *t) {
  if (!t)
    return NULL;
  free(t->width);
  free(t->max);
  free(t->right);
  buf_free(&t->cells);
  free(t);
  return NULL;
}

struct cli_table *cli_table_new(size_t n, const char *const *headers) {
  struct cli_table *t = calloc(1, sizeof(*t));
  if (!t)
    return NULL;
  t->n_cols = n;
  t->width = calloc(n, sizeof(*t->width));
  t->max = calloc(n, sizeof(*t->max));
  t->right = calloc(n, sizeof(*t->right));
  if (!t->width || !t->max || !t->right || cli_table_add(t, headers) < 0)
    return cli_table_free(t);
  return t;
}

void cli_table_align_right(struct cli_table *t, size_t col) {
  if (t && col < t->n_cols)
    t->right[col] = true;
}

void cli_table_max_width(struct cli_table *t, size_t col, size_t max) {
  if (t && col < t->n_cols) {
    t->max[col] = max;
    if (max && t->width[col] > max)
      t->width[col] = max;
  }
}

int cli_table_add(struct cli_table *t, const char *const *cells) {
  if (!t || !cells)
    return -EINVAL;
  for (size_t i = 0; i < t->n_cols; i++) {
    const char *s = cells[i] ? cells[i] : "";
    if (buf_append(&t->cells, s, strlen(s) + 1) < 0)
      return -ENOMEM;
    size_t w = cli_display_width(s);
    if (t->max[i] && w > t->max[i])
      w = t->max[i];
    if (w > t->width[i])
      t->width[i] = w;
  }
  t->n_rows++;
  return 0;
}

/* Prints s in at most max columns (0 = no cap), after *pending spaces when s
 * is not empty (so no line ends in blanks). Returns the columns used. */
static size_t print_cell(const char *s, size_t max, size_t full_width, size_t *pending, FILE *out) {
  size_t used = 0;
  bool cut = max && full_width > max;
  if (!*s)
    return 0;
  for (; *pending > 0; (*pending)--)
    fputc(' ', out);
  while (*s) {
    size_t w, n;
    if (is_control_byte((unsigned char)*s)) {
      w = n = 1;
    } else
      n = char_at(s, &w);
    if (cut && used + w > max - 1) {
      fputs("…", out);
      return used + 1;
    }
    if (n == 1 && (is_control_byte((unsigned char)*s) || (unsigned char)*s >= 0x80))
      fputc('?', out); /* control byte or invalid UTF-8 */
    else
      fwrite(s, 1, n, out);
    used += w;
    s += n;
  }
  return used;
}

void cli_table_print(const struct cli_table *t, FILE *out) {
  const char *p = t->cells.data;
  for (size_t row = 0; row < t->n_rows; row++) {
    size_t pending = 0; /* spaces owed before the next visible text */
    for (size_t i = 0; i < t->n_cols; i++) {
      size_t w = cli_display_width(p), shown = t->max[i] && w > t->max[i] ? t->max[i] : w;
      if (i > 0)
        pending += 2;
      if (t->right[i])
        pending += t->width[i] - shown;
      print_cell(p, t->max[i], w, &pending, out);
      if (!t->right[i])
        pending += t->width[i] - shown;
      p += strlen(p) + 1;
    }
    fputc('\n', out);
  }
}

/* ---- JSON ------------------------------------------------------------------------- */

json_t *cli_json_str(const char *s) {
  if (isempty(s))
    return json_null();
  json_t *j = json_string(s);
  if (j)
    return j;
  /* not UTF-8 (foreign writers): show non-ASCII bytes as '?' rather than fail */
  _cleanup_free_ char *copy = strdup(s);
  if (!copy)
    return NULL;
  for (char *p = copy; *p; p++)
    if ((unsigned char)*p >= 0x80)
      *p = '?';
  return json_string(copy);
}

json_t *cli_json_time(int64_t t) {
  char b[21];
  return t == 0 ? json_null() : json_string(format_rfc3339(t, b));
}

int cli_json_set(json_t *obj, const char *key, json_t *v) {
  if (!v)
    return -ENOMEM;
  return json_object_set_new(obj, key, v) < 0 ? -ENOMEM : 0;
}

int cli_json_print(const json_t *j, FILE *out) {
  if (json_dumpf(j, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0 || fputc('\n', out) == EOF)
    return EX_IOERR;
  return 0;
}
