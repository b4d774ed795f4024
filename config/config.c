/* config: loads, validates and hands out renewd's configuration (see config.h;
 * the INI syntax itself is in ini.c, the keys in docs/configuration.md).
 *
 * Loading runs in two stages: every file is parsed into merged sections
 * (struct ini), then a struct loader walks the sections once per kind
 * (daemon, windows, channels, [Ops], tiers, policies), converting values and
 * collecting every error, and finally resolves the references between
 * sections (policy → tiers and windows, tier → channels, [Ops] → channel,
 * segments → policies). Only the effective value of a key (its last
 * assignment) is validated. Errors are sorted by file (in read order) and
 * line before they are handed out.
 *
 * Owns the struct config it returns; borrows holiday sets from the caller's
 * struct cal. Blocks only in config_load() (file reads, zoneinfo, .ics). */
#include "config/config.h"

#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <sys/stat.h>

#include "config/ini.h"
#include "core/util.h"

/* Largest config file read (main or drop-in). */
#define CONFIG_MAX_FILE_SIZE (1024 * 1024)
/* Longest CallbackPause= and LapseGrace=: ten years. */
#define CONFIG_MAX_POLICY_SPAN (3650 * 86400)
/* Most tiers a policy may have; matches POLICY_MAX_TIERS in core/policy.h. */
#define CONFIG_MAX_TIERS 64

/* ---- errors ---- */

void config_errors_clear(struct config_errors *e) {
  if (!e)
    return;
  for (size_t i = 0; i < e->n; i++) {
    free(e->v[i].file);
    free(e->v[i].message);
  }
  free(e->v);
  *e = (struct config_errors){0};
}

static int errors_addv(struct config_errors *e, const char *file, unsigned line, const char *fmt,
                       va_list ap) {
  if (!e)
    return 0;
  struct config_error *v = realloc(e->v, (e->n + 1) * sizeof *v);
  if (!v)
    return -ENOMEM;
  e->v = v;
  char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0)
    return -ENOMEM;
  /* One error, one line: messages quoting files or libical may hold controls. */
  for (char *p = msg; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      *p = ' ';
  char *f = strdup(file ? file : "");
  if (!f) {
    free(msg);
    return -ENOMEM;
  }
  v[e->n++] = (struct config_error){.file = f, .line = line, .message = msg};
  return 0;
}

int config_errors_add(struct config_errors *e, const char *file, unsigned line, const char *fmt,
                      ...) {
  va_list ap;
  va_start(ap, fmt);
  int r = errors_addv(e, file, line, fmt, ap);
  va_end(ap);
  return r;
}

void config_errors_print(const struct config_errors *e, FILE *out) {
  if (!e)
    return;
  for (size_t i = 0; i < e->n; i++) {
    if (e->v[i].line > 0)
      fprintf(out, "%s:%u: %s\n", e->v[i].file, e->v[i].line, e->v[i].message);
    else
      fprintf(out, "%s: %s\n", e->v[i].file, e->v[i].message);
  }
}

/* ---- small parsers ---- */

static bool is_blank(char c) {
  return c == ' ' || c == '\t';
}

/* Names of sections and things referring to them: letters, digits, _ - . */
static bool valid_name(const char *s) {
  if (isempty(s) || strlen(s) > 64)
    return false;
  for (const char *p = s; *p; p++)
    if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.')
      return false;
  return true;
}

static int mul_add(int64_t *acc, uint64_t n, int64_t unit) {
  if (n > (uint64_t)(INT64_MAX / unit) || *acc > INT64_MAX - (int64_t)n * unit)
    return -ERANGE;
  *acc += (int64_t)n * unit;
  return 0;
}

int config_parse_timespan(const char *s, int64_t *ret) {
  static const struct {
    const char *unit;
    int64_t sec;
  } units[] = {
      {"s", 1},       {"sec", 1},       {"second", 1},     {"seconds", 1}, {"m", 60},
      {"min", 60},    {"minute", 60},   {"minutes", 60},   {"h", 3600},    {"hr", 3600},
      {"hour", 3600}, {"hours", 3600},  {"d", 86400},      {"day", 86400}, {"days", 86400},
      {"w", 604800},  {"week", 604800}, {"weeks", 604800},
  };
  if (!s || !ret)
    return -EINVAL;
  while (is_blank(*s))
    s++;
  if (*s == 'P') {
    struct cal_duration d;
    if (!strpbrk(s, "0123456789") || cal_duration_parse(s, &d) < 0 || d.negative)
      return -EINVAL;
    int64_t total = 0;
    int r = mul_add(&total, (uint64_t)d.days, 86400);
    if (r < 0 || mul_add(&total, (uint64_t)d.seconds, 1) < 0)
      return -ERANGE;
    *ret = total;
    return 0;
  }
  int64_t total = 0;
  bool any = false;
  for (;;) {
    while (is_blank(*s))
      s++;
    if (!*s)
      break;
    if (!isdigit((unsigned char)*s))
      return -EINVAL;
    uint64_t n = 0;
    for (; isdigit((unsigned char)*s); s++) {
      if (n > (UINT64_MAX - 9) / 10)
        return -ERANGE;
      n = n * 10 + (uint64_t)(*s - '0');
    }
    while (is_blank(*s))
      s++;
    const char *u = s;
    while (isalpha((unsigned char)*s))
      s++;
    int64_t mult = 0;
    if (s == u)
      mult = 1;
    else
      for (size_t i = 0; i < ELEMENTSOF(units); i++)
        if (strlen(units[i].unit) == (size_t)(s - u) && memcmp(units[i].unit, u, s - u) == 0)
          mult = units[i].sec;
    if (mult == 0)
      return -EINVAL;
    if (mul_add(&total, n, mult) < 0)
      return -ERANGE;
    any = true;
  }
  if (!any)
    return -EINVAL;
  *ret = total;
  return 0;
}

/* "host:port" or "[v6]:port". Fills host (heap) and port. */
static int parse_listen(const char *s, char **ret_host, uint16_t *ret_port) {
  const char *hb, *he, *colon;
  if (*s == '[') {
    hb = s + 1;
    he = strchr(hb, ']');
    if (!he || he == hb || he[1] != ':')
      return -EINVAL;
    for (const char *p = hb; p < he; p++)
      if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
        return -EINVAL;
    if (!memchr(hb, ':', (size_t)(he - hb)))
      return -EINVAL;
    colon = he + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon || colon == s)
      return -EINVAL;
    hb = s, he = colon;
    for (const char *p = hb; p < he; p++)
      if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-')
        return -EINVAL;
  }
  const char *ps = colon + 1;
  if (!*ps || strlen(ps) > 5)
    return -EINVAL;
  for (const char *p = ps; *p; p++)
    if (!isdigit((unsigned char)*p))
      return -EINVAL;
  long port = strtol(ps, NULL, 10);
  if (port < 1 || port > 65535)
    return -EINVAL;
  char *h = strndup(hb, (size_t)(he - hb));
  if (!h)
    return -ENOMEM;
  *ret_host = h;
  *ret_port = (uint16_t)port;
  return 0;
}

static bool valid_url(const char *s) {
  const char *rest = NULL;
  if (strncmp(s, "http://", 7) == 0)
    rest = s + 7;
  else if (strncmp(s, "https://", 8) == 0)
    rest = s + 8;
  if (!rest || !*rest || *rest == '/')
    return false;
  for (const char *p = s; *p; p++)
    if ((unsigned char)*p <= 0x20 || *p == 0x7f)
      return false;
  return true;
}

/* A language tag: letters, digits, '-' and '_', starting with a letter. */
static bool valid_locale_tag(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 35 || !isalpha((unsigned char)s[0]))
    return false;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
      return false;
  return true;
}

static bool valid_zone_name(const char *s) {
  if (isempty(s) || *s == '/' || strstr(s, "..") || strlen(s) > 128)
    return false;
  for (const char *p = s; *p; p++)
    if (!isalnum((unsigned char)*p) && !strchr("/_+-", *p))
      return false;
  return true;
}

static void strv_free(char **v, size_t n) {
  if (!v)
    return;
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

/* Splits a whitespace-separated list. *ret_n may be 0 (then *ret is NULL). */
static int split_list(const char *v, char ***ret, size_t *ret_n) {
  char **l = NULL;
  size_t n = 0;
  for (const char *p = v;;) {
    while (is_blank(*p))
      p++;
    if (!*p)
      break;
    const char *e = p;
    while (*e && !is_blank(*e))
      e++;
    char **nl = realloc(l, (n + 1) * sizeof(char *));
    if (!nl) {
      strv_free(l, n);
      return -ENOMEM;
    }
    l = nl;
    if (!(l[n] = strndup(p, (size_t)(e - p)))) {
      strv_free(l, n);
      return -ENOMEM;
    }
    n++;
    p = e;
  }
  *ret = l;
  *ret_n = n;
  return 0;
}

static bool strv_contains(char *const *v, size_t n, const char *s) {
  for (size_t i = 0; i < n; i++)
    if (streq(v[i], s))
      return true;
  return false;
}

/* ---- the loader ---- */

enum kind {
  K_DAEMON,
  K_WINDOW,
  K_POLICY,
  K_TIER,
  K_CHANNEL,
  K_OPS,
  K_HTTP,
  _K_MAX,
  K_INVALID = -1
};

enum naming { NAME_NONE, NAME_OPTIONAL, NAME_REQUIRED };

static const char *const daemon_keys[] = {
    "Database",    "Listen",         "PublicURL",          "TimeZone",
    "Horizon",     "RefillInterval", "ChangePollInterval", "Templates",
    "LinkKeyFile", "ApiTokenFile",   "StopTimeout",        "Locale",
    NULL};
static const char *const http_keys[] = {"MaxConnections", "MaxConnectionsPerClient",
                                        "RequestTimeout", NULL};
static const char *const window_keys[] = {"Hours", "Days", "Holidays", NULL};
static const char *const policy_keys[] = {
    "Segments",        "CatchUp",       "Tiers",      "FallbackOwner",
    "OwnerSendWindow", "CallbackPause", "LapseGrace", NULL};
static const char *const tier_keys[] = {"Offset",        "Repeat",     "Channels",
                                        "Fallback",      "Audience",   "Template",
                                        "EscalateAfter", "EscalateTo", NULL};

static const struct {
  const char *type;
  enum naming naming;
  const char *const *keys; /* NULL = any key (kept as options) */
} kinds[_K_MAX] = {
    [K_DAEMON] = {"Daemon", NAME_NONE, daemon_keys},
    [K_WINDOW] = {"SendWindow", NAME_OPTIONAL, window_keys},
    [K_POLICY] = {"Policy", NAME_REQUIRED, policy_keys},
    [K_TIER] = {"Tier", NAME_REQUIRED, tier_keys},
    [K_CHANNEL] = {"Channel", NAME_REQUIRED, NULL},
    [K_OPS] = {"Ops", NAME_NONE, NULL},
    [K_HTTP] = {"HTTP", NAME_NONE, http_keys},
};

static const char *const channel_types[] = {"sink", "smtp", "sms", "webhook"};

/* A [Tier NAME] as parsed, before policies copy it. */
struct ltier {
  const struct ini_section *s;
  struct tier t;
  bool ok;                        /* every own key valid */
  const struct ini_entry *offset; /* Offset= as written, for messages */
};

struct loader {
  struct ini ini;
  struct cal *cal;            /* may be NULL */
  struct config_errors *errs; /* never NULL inside the loader */
  int oom;                    /* -ENOMEM once an allocation failed */
  const char *main_file;      /* for the "no default policy" error */
  struct config *c;           /* being built */
  enum kind *kind;            /* per ini section; K_INVALID = skip */
  struct ltier *tiers;        /* [Tier] sections in order */
  size_t n_tiers;
};

static void error_at(struct loader *l, const char *file, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void error_at(struct loader *l, const char *file, unsigned line, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (errors_addv(l->errs, file, line, fmt, ap) < 0)
    l->oom = -ENOMEM;
  va_end(ap);
}

/* Reports a bad value as "Key=Value: reason". */
static void bad_value(struct loader *l, const struct ini_entry *e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bad_value(struct loader *l, const struct ini_entry *e, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *why = NULL;
  if (vasprintf(&why, fmt, ap) < 0)
    why = NULL;
  va_end(ap);
  if (!why) {
    l->oom = -ENOMEM;
    return;
  }
  error_at(l, e->file, e->line, "%s=%s: %s", e->key, e->value, why);
  free(why);
}

static void nomem(struct loader *l) {
  l->oom = -ENOMEM;
}

static char *xstrdup(struct loader *l, const char *s) {
  char *d = strdup_or_null(s);
  if (s && !d)
    nomem(l);
  return d;
}

/* The effective assignment of key in s: its last one, or NULL when there is
 * none or the last one is empty (reset to the default). */
static const struct ini_entry *get(const struct ini_section *s, const char *key) {
  if (!s)
    return NULL;
  const struct ini_entry *e = ini_last(s, key);
  return e && *e->value ? e : NULL;
}

static void missing(struct loader *l, const struct ini_section *s, const char *key) {
  if (s->name)
    error_at(l, s->file, s->line, "[%s %s]: missing required key %s=", s->type, s->name, key);
  else
    error_at(l, s->file, s->line, "[%s]: missing required key %s=", s->type, key);
}

/* Reports every name listed more than once in e's list. */
static bool check_dups(struct loader *l, const struct ini_entry *e, char **v, size_t n) {
  bool ok = true;
  for (size_t i = 0; i < n; i++) {
    bool first = true, dup = false;
    for (size_t j = 0; j < n; j++)
      if (j != i && streq(v[i], v[j])) {
        dup = true;
        if (j < i)
          first = false;
      }
    if (dup && first)
      bad_value(l, e, "\"%s\" is listed twice", v[i]);
    ok = ok && !dup;
  }
  return ok;
}

static const struct ini_section *find_section(struct loader *l, enum kind k, const char *name) {
  for (size_t i = 0; i < l->ini.n_sections; i++)
    if (l->kind[i] == k && streq_ptr(l->ini.sections[i].name, name))
      return &l->ini.sections[i];
  return NULL;
}

/* Pass 1: section types, names and keys. */
static void classify(struct loader *l) {
  for (size_t i = 0; i < l->ini.n_sections; i++) {
    const struct ini_section *s = &l->ini.sections[i];
    enum kind k = K_INVALID;
    for (int j = 0; j < _K_MAX; j++)
      if (streq(kinds[j].type, s->type))
        k = (enum kind)j;
    l->kind[i] = K_INVALID;
    if (k == K_INVALID) {
      if (s->name)
        error_at(l, s->file, s->line, "unknown section [%s %s]", s->type, s->name);
      else
        error_at(l, s->file, s->line, "unknown section [%s]", s->type);
      continue;
    }
    if (kinds[k].naming == NAME_NONE && s->name) {
      error_at(l, s->file, s->line, "section [%s] takes no name", s->type);
      continue;
    }
    if (kinds[k].naming == NAME_REQUIRED && !s->name) {
      error_at(l, s->file, s->line, "section [%s] needs a name, as in [%s NAME]", s->type, s->type);
      continue;
    }
    if (s->name && !valid_name(s->name)) {
      error_at(l, s->file, s->line,
               "[%s %s]: invalid name, use up to 64 letters, digits, '_', '-' or '.'", s->type,
               s->name);
      continue;
    }
    l->kind[i] = k;
    if (!kinds[k].keys)
      continue;
    for (size_t j = 0; j < s->n_entries; j++) {
      const struct ini_entry *e = &s->entries[j];
      bool known = false;
      for (const char *const *key = kinds[k].keys; *key && !known; key++)
        known = streq(*key, e->key);
      if (known)
        continue;
      if (s->name)
        error_at(l, e->file, e->line, "unknown key %s= in [%s %s]", e->key, s->type, s->name);
      else
        error_at(l, e->file, e->line, "unknown key %s= in [%s]", e->key, s->type);
    }
  }
}

/* Sets *dst to e's value when e is an absolute path (else reports it). */
static void set_path(struct loader *l, const struct ini_entry *e, char **dst) {
  if (!e)
    return;
  if (e->value[0] != '/') {
    bad_value(l, e, "must be an absolute path");
    return;
  }
  if (free_and_strdup(dst, e->value) < 0)
    nomem(l);
}

/* Known prefixes of API keys and tokens (Standard Webhooks, Stripe, GitHub,
 * GitLab, Slack, SendGrid, AWS): a value starting so is a secret. */
static const char *const secret_prefixes[] = {"whsec_", "sk_live_", "sk_test_",    "rk_live_",
                                              "ghp_",   "gho_",     "github_pat_", "glpat-",
                                              "xoxb-",  "xoxp-",    "SG.",         "AKIA"};

/* Whether a credential name (or a one-component path) looks like a secret
 * pasted in by mistake rather than a name someone chose: characters no
 * systemd credential name has (credential names are file names; base64 and
 * tokens bring '+', '=', '~' and the like), a known key prefix, more than 64
 * bytes, a long run of hex digits, or a long word without any separator that
 * mixes letters and digits (base64, base64url). Names such as "link-key",
 * "smtp.password" or "renewd_sms_token" pass. */
/* How often adjacent characters differ in class (upper, lower, digit):
 * about 0.6 per pair in random base64, 0.3-0.4 in a CamelCase name. */
static size_t class_changes(const char *v) {
  size_t n = 0;
  for (size_t i = 1; v[i]; i++) {
    unsigned char a = (unsigned char)v[i - 1], b = (unsigned char)v[i];
    int ca = isupper(a) ? 0 : islower(a) ? 1 : 2, cb = isupper(b) ? 0 : islower(b) ? 1 : 2;
    n += ca != cb;
  }
  return n;
}

const char *config_secret_shape(const char *v) {
  size_t n = strlen(v), digits = 0, hex = 0, upper = 0, lower = 0, seps = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if (isdigit(c))
      digits++;
    if (isxdigit(c))
      hex++;
    if (isupper(c))
      upper++;
    if (islower(c))
      lower++;
    if (c == '-' || c == '_' || c == '.' || c == '@')
      seps++;
    else if (!isalnum(c))
      return "it holds characters no file or credential name has";
  }
  for (size_t i = 0; i < ELEMENTSOF(secret_prefixes); i++)
    if (strncmp(v, secret_prefixes[i], strlen(secret_prefixes[i])) == 0 &&
        n > strlen(secret_prefixes[i]) + 8)
      return "it starts like an API key or token";
  if (n > 64)
    return "it is longer than a credential name";
  if (n >= 16 && hex == n && digits > 0)
    return "it looks like a hex-encoded key";
  if (n >= 20 && seps == 0 && (upper > 0) + (lower > 0) + (digits > 0) >= 2 &&
      class_changes(v) * 100 >= 42 * (n - 1))
    return "it looks like an encoded key (base64)";
  return NULL;
}

static const char not_a_ref[] = "must be an absolute path or a credential name";

const char *config_secret_ref_problem(const char *v) {
  if (isempty(v))
    return not_a_ref;
  for (const unsigned char *p = (const unsigned char *)v; *p; p++)
    if (*p <= ' ' || *p == 0x7f)
      return "it holds blanks or control characters";
  if (v[0] != '/') {
    if (strchr(v, '/') || streq(v, ".") || streq(v, ".."))
      return not_a_ref;
    return config_secret_shape(v);
  }
  /* a path of one component that looks like a key: a secret starting with
   * '/' (one in 64 base64 strings does) */
  return strchr(v + 1, '/') ? NULL : config_secret_shape(v + 1);
}

/* Reports why (config_secret_ref_problem()) without quoting the value. */
static void secret_error(struct loader *l, const struct ini_entry *e, const char *why) {
  if (why == not_a_ref)
    error_at(l, e->file, e->line,
             "%s=: must be an absolute path or a credential name (the value is not shown: "
             "it may be the secret itself; put the secret in a file)",
             e->key);
  else
    error_at(l, e->file, e->line,
             "%s=: looks like a secret, not a file or credential name: %s (the value is not "
             "shown; put the secret in a file and name the file here)",
             e->key, why);
}

/* A secret: an absolute path, or a credential name without '/' (read_secret()).
 * A bad value is not quoted in the error: it is most likely the secret itself
 * pasted in by mistake, and errors end up in logs. */
static void set_secret_path(struct loader *l, const struct ini_entry *e, char **dst) {
  if (!e)
    return;
  const char *why = config_secret_ref_problem(e->value);
  if (why) {
    secret_error(l, e, why);
    return;
  }
  if (free_and_strdup(dst, e->value) < 0)
    nomem(l);
}

/* [Channel] and [Ops] keys named *File= other than CAFile= hold secrets
 * (PasswordFile=, AuthTokenFile=, SecretFile=, HeadersFile=): refused when
 * they look like the secret itself. The backends check the rest (paths). */
static void check_secret_keys(struct loader *l, const struct ini_section *s) {
  for (size_t i = 0; i < s->n_entries; i++) {
    const struct ini_entry *e = &s->entries[i];
    size_t n = strlen(e->key);
    if (n < 5 || !streq(e->key + n - 4, "File") || streq(e->key, "CAFile") || !*e->value)
      continue;
    const char *why = config_secret_ref_problem(e->value);
    if (why && why != not_a_ref)
      secret_error(l, e, why);
  }
}

/* Sets *dst from e (when set). Returns false when e's value is bad. */
static bool set_timespan(struct loader *l, const struct ini_entry *e, int64_t *dst, bool positive) {
  if (!e)
    return true;
  int64_t v;
  if (config_parse_timespan(e->value, &v) < 0)
    bad_value(l, e, "invalid time span (e.g. 48h, 1h30min, 2d, PT48H)");
  else if (positive && v == 0)
    bad_value(l, e, "must be greater than zero");
  else {
    *dst = v;
    return true;
  }
  return false;
}

static void load_daemon(struct loader *l) {
  struct config_daemon *d = &l->c->daemon;
  *d = (struct config_daemon){
      .database = xstrdup(l, "/var/lib/renewd/renewd.db"),
      .listen = xstrdup(l, "127.0.0.1:8787"),
      .listen_host = xstrdup(l, "127.0.0.1"),
      .listen_port = 8787,
      .public_url = xstrdup(l, "http://127.0.0.1:8787"),
      .time_zone = xstrdup(l, "UTC"),
      .horizon = 48 * 3600,
      .refill_interval = 10 * 60,
      .change_poll_interval = 1,
      .stop_timeout = 20,
      .templates = xstrdup(l, "/usr/share/renewd/templates"),
      .locale = xstrdup(l, "en"),
  };
  const struct ini_section *s = find_section(l, K_DAEMON, NULL);
  if (!s)
    return;
  const struct ini_entry *e;
  set_path(l, get(s, "Database"), &d->database);
  if ((e = get(s, "Listen"))) {
    char *host = NULL;
    uint16_t port;
    int r = parse_listen(e->value, &host, &port);
    if (r == -ENOMEM)
      nomem(l);
    else if (r < 0)
      bad_value(l, e, "expected HOST:PORT or [IPv6]:PORT with a port in 1..65535");
    else {
      free(d->listen_host);
      d->listen_host = host;
      d->listen_port = port;
      if (free_and_strdup(&d->listen, e->value) < 0)
        nomem(l);
    }
  }
  if ((e = get(s, "PublicURL"))) {
    if (!valid_url(e->value))
      bad_value(l, e, "expected an http:// or https:// URL");
    else {
      if (free_and_strdup(&d->public_url, e->value) < 0)
        nomem(l);
      else
        for (size_t n = strlen(d->public_url); n > 0 && d->public_url[n - 1] == '/'; n--)
          d->public_url[n - 1] = 0;
    }
  }
  if ((e = get(s, "TimeZone"))) {
    if (!valid_zone_name(e->value))
      bad_value(l, e, "invalid time zone name");
    else if (l->cal && !cal_zone(l->cal, e->value)) {
      if (errno == ENOMEM)
        nomem(l);
      else
        bad_value(l, e, "unknown time zone");
    } else if (free_and_strdup(&d->time_zone, e->value) < 0)
      nomem(l);
  }
  set_timespan(l, get(s, "Horizon"), &d->horizon, true);
  set_timespan(l, get(s, "RefillInterval"), &d->refill_interval, true);
  set_timespan(l, get(s, "ChangePollInterval"), &d->change_poll_interval, true);
  set_timespan(l, get(s, "StopTimeout"), &d->stop_timeout, false);
  set_path(l, get(s, "Templates"), &d->templates);
  if ((e = get(s, "Locale"))) {
    if (!valid_locale_tag(e->value))
      bad_value(l, e, "expected a language tag such as en, de or zh-CN");
    else if (free_and_strdup(&d->locale, e->value) < 0)
      nomem(l);
  }
  if ((e = get(s, "LinkKeyFile"))) {
    d->link_key_src = e->file;
    d->link_key_line = e->line;
  }
  set_secret_path(l, e, &d->link_key_file);
  set_secret_path(l, get(s, "ApiTokenFile"), &d->api_token_file);
}

/* Sets *dst from e (when set): an integer in lo..hi. */
static void set_uint(struct loader *l, const struct ini_entry *e, unsigned lo, unsigned hi,
                     unsigned *dst) {
  int64_t v;
  if (!e)
    return;
  if (!isdigit((unsigned char)e->value[0]) || parse_int64(e->value, &v) < 0 || v < lo || v > hi)
    bad_value(l, e, "expected an integer in %u..%u", lo, hi);
  else
    *dst = (unsigned)v;
}

/* [HTTP]: the listener's limits. */
static void load_http(struct loader *l) {
  struct config_http *h = &l->c->http;
  *h = (struct config_http){.max_connections = 256, .max_per_client = 64, .request_timeout = 5};
  const struct ini_section *s = find_section(l, K_HTTP, NULL);
  if (!s)
    return;
  const struct ini_entry *per = get(s, "MaxConnectionsPerClient");
  set_uint(l, get(s, "MaxConnections"), 16, 10000, &h->max_connections);
  set_uint(l, per, 0, 10000, &h->max_per_client);
  if (per && h->max_per_client > h->max_connections)
    bad_value(l, per, "must not exceed MaxConnections= (%u)", h->max_connections);
  const struct ini_entry *e = get(s, "RequestTimeout");
  int64_t t = h->request_timeout;
  if (set_timespan(l, e, &t, true) && e && t > 300)
    bad_value(l, e, "at most 5min");
  else
    h->request_timeout = t;
}

static void load_window(struct loader *l, const struct ini_section *s, struct config_window *w) {
  *w = (struct config_window){.window = {.start_min = 9 * 60, .end_min = 18 * 60, .days = 0x3e}};
  if (!s)
    return;
  w->file = s->file;
  w->line = s->line;
  if (s->name && !(w->name = xstrdup(l, s->name)))
    return;
  const struct ini_entry *e;
  if ((e = get(s, "Hours"))) {
    uint16_t a, b;
    if (cal_window_parse_hours(e->value, &a, &b) < 0)
      bad_value(l, e, "expected HH:MM-HH:MM, e.g. 09:00-18:00");
    else
      w->window.start_min = a, w->window.end_min = b;
  }
  if ((e = get(s, "Days"))) {
    uint8_t d;
    if (cal_window_parse_days(e->value, &d) < 0)
      bad_value(l, e, "expected days such as Mon..Fri or Mon,Wed,Fri");
    else
      w->window.days = d;
  }
  if ((e = get(s, "Holidays"))) {
    if (e->value[0] != '/') {
      bad_value(l, e, "must be an absolute path");
      return;
    }
    if (l->cal) {
      char err[512] = "";
      const struct cal_holidays *h = NULL;
      int r = cal_holidays_load(l->cal, e->value, &h, err, sizeof err);
      if (r == -ENOMEM) {
        nomem(l);
        return;
      }
      if (r < 0) {
        bad_value(l, e, "%s", *err ? err : strerror(-r));
        return;
      }
      w->window.holidays = h;
    }
    w->holidays_path = xstrdup(l, e->value);
  }
}

static void load_windows(struct loader *l) {
  size_t n = 1;
  for (size_t i = 0; i < l->ini.n_sections; i++)
    n += l->kind[i] == K_WINDOW && l->ini.sections[i].name;
  l->c->windows = calloc(n, sizeof(struct config_window));
  if (!l->c->windows)
    return nomem(l);
  l->c->n_windows = n;
  load_window(l, find_section(l, K_WINDOW, NULL), &l->c->windows[0]);
  size_t j = 1;
  for (size_t i = 0; i < l->ini.n_sections; i++)
    if (l->kind[i] == K_WINDOW && l->ini.sections[i].name)
      load_window(l, &l->ini.sections[i], &l->c->windows[j++]);
}

static void kv_done(struct config_kv *kv) {
  free(kv->key);
  free(kv->value);
}

static void channel_done(struct config_channel *ch) {
  free(ch->name);
  free(ch->type);
  for (size_t i = 0; i < ch->n_options; i++)
    kv_done(&ch->options[i]);
  free(ch->options);
  *ch = (struct config_channel){0};
}

/* Copies every assignment of s except skip_key into ch->options. */
static void load_options(struct loader *l, const struct ini_section *s, const char *skip_key,
                         struct config_channel *ch) {
  if (!s)
    return;
  check_secret_keys(l, s);
  ch->file = s->file;
  ch->line = s->line;
  if (s->n_entries == 0)
    return;
  ch->options = calloc(s->n_entries, sizeof(struct config_kv));
  if (!ch->options)
    return nomem(l);
  for (size_t i = 0; i < s->n_entries; i++) {
    const struct ini_entry *e = &s->entries[i];
    if (streq(e->key, skip_key))
      continue;
    if (!*e->value) { /* reset: drop the earlier assignments of this key */
      size_t k = 0;
      for (size_t j = 0; j < ch->n_options; j++) {
        if (streq(ch->options[j].key, e->key))
          kv_done(&ch->options[j]);
        else
          ch->options[k++] = ch->options[j];
      }
      ch->n_options = k;
      continue;
    }
    struct config_kv *kv = &ch->options[ch->n_options];
    *kv = (struct config_kv){
        .key = strdup(e->key), .value = strdup(e->value), .file = e->file, .line = e->line};
    ch->n_options++;
    if (!kv->key || !kv->value)
      return nomem(l);
  }
}

static void load_channels(struct loader *l) {
  size_t n = 0;
  for (size_t i = 0; i < l->ini.n_sections; i++)
    n += l->kind[i] == K_CHANNEL;
  if (n > 0 && !(l->c->channels = calloc(n, sizeof(struct config_channel))))
    return nomem(l);
  for (size_t i = 0; i < l->ini.n_sections; i++) {
    if (l->kind[i] != K_CHANNEL)
      continue;
    const struct ini_section *s = &l->ini.sections[i];
    struct config_channel *ch = &l->c->channels[l->c->n_channels++];
    if (!(ch->name = xstrdup(l, s->name)))
      return;
    load_options(l, s, "Type", ch);
    const struct ini_entry *e = get(s, "Type");
    if (!e) {
      missing(l, s, "Type");
      continue;
    }
    bool known = false;
    for (size_t j = 0; j < ELEMENTSOF(channel_types); j++)
      known = known || streq(channel_types[j], e->value);
    if (!known)
      bad_value(l, e, "unknown channel type (expected sink, smtp, sms or webhook)");
    else
      ch->type = xstrdup(l, e->value);
  }
}

static void load_ops(struct loader *l) {
  const struct ini_section *s = find_section(l, K_OPS, NULL);
  if (!(l->c->ops.name = xstrdup(l, "Ops")))
    return;
  load_options(l, s, "AlertChannel", &l->c->ops);
  const struct ini_entry *e = get(s, "AlertChannel");
  if (!e)
    return;
  if (!find_section(l, K_CHANNEL, e->value))
    bad_value(l, e, "no [Channel %s] section", e->value);
  else
    l->c->alert_channel = xstrdup(l, e->value);
}

/* Parses a list key of e into (*v, *n); reports duplicates. */
static bool load_list(struct loader *l, const struct ini_entry *e, char ***v, size_t *n) {
  if (split_list(e->value, v, n) < 0) {
    nomem(l);
    return false;
  }
  return check_dups(l, e, *v, *n);
}

static bool load_tier(struct loader *l, const struct ini_section *s, struct ltier *lt) {
  struct tier *t = &lt->t;
  bool ok = true;
  const struct ini_entry *e;
  lt->s = s;
  if (!(t->name = xstrdup(l, s->name)))
    return false;
  if (!(e = lt->offset = get(s, "Offset"))) {
    missing(l, s, "Offset");
    ok = false;
  } else if (cal_duration_parse(e->value, &t->offset) < 0) {
    bad_value(l, e, "invalid duration (RFC 5545, e.g. -P60D, -PT12H, P1D)");
    ok = false;
  }
  if ((e = get(s, "Repeat"))) {
    char err[256] = "";
    int r = cal_rrule_parse(e->value, &t->rrule, err, sizeof err);
    if (r == -ENOMEM)
      nomem(l);
    if (r < 0) {
      bad_value(l, e, "%s", *err ? err : "invalid recurrence rule");
      ok = false;
    } else if (!(t->repeat = xstrdup(l, e->value)))
      ok = false;
  }
  if (!(e = get(s, "Channels"))) {
    missing(l, s, "Channels");
    ok = false;
  } else
    ok = load_list(l, e, &t->channels, &t->n_channels) && ok;
  if ((e = get(s, "Fallback"))) {
    ok = load_list(l, e, &t->fallback, &t->n_fallback) && ok;
    for (size_t i = 0; i < t->n_fallback; i++)
      if (strv_contains(t->channels, t->n_channels, t->fallback[i])) {
        bad_value(l, e, "\"%s\" is also in Channels=", t->fallback[i]);
        ok = false;
      }
  }
  if ((e = get(s, "Audience"))) {
    if (streq(e->value, "customer"))
      t->audience = AUDIENCE_CUSTOMER;
    else if (streq(e->value, "owner"))
      t->audience = AUDIENCE_OWNER;
    else {
      bad_value(l, e, "expected customer or owner");
      ok = false;
    }
  }
  if ((e = get(s, "Template"))) {
    if (!valid_name(e->value)) {
      bad_value(l, e, "invalid template name, use up to 64 letters, digits, '_', '-' or '.'");
      ok = false;
    } else
      t->template_name = xstrdup(l, e->value);
  } else
    t->template_name = xstrdup(l, s->name);
  /* EscalateAfter= and EscalateTo= go together (or neither is set). */
  const struct ini_entry *after = get(s, "EscalateAfter"), *to = get(s, "EscalateTo");
  bool after_bad = false;
  if (after) {
    int64_t v;
    if (!isdigit((unsigned char)after->value[0]) || parse_int64(after->value, &v) < 0 ||
        v > UINT_MAX) {
      bad_value(l, after, "expected a non-negative integer");
      ok = false;
      after_bad = true;
    } else
      t->escalate_after = (unsigned)v;
  }
  if (to && !(t->escalate_to = xstrdup(l, to->value)))
    ok = false;
  if (to && t->escalate_after == 0 && !after_bad) {
    bad_value(l, to, "needs EscalateAfter= greater than 0");
    ok = false;
  }
  if (t->escalate_after > 0 && !to) {
    bad_value(l, after, "needs EscalateTo=");
    ok = false;
  }
  return ok;
}

/* Tier → channel references, checked for every tier, used or not. */
static void check_channel_refs(struct loader *l, struct ltier *lt, const struct ini_entry *e,
                               char **v, size_t n) {
  for (size_t i = 0; e && i < n; i++)
    if (!find_section(l, K_CHANNEL, v[i]) && !strv_contains(v, i, v[i])) {
      bad_value(l, e, "no [Channel %s] section", v[i]);
      lt->ok = false;
    }
}

static void check_tier_channels(struct loader *l, struct ltier *lt) {
  check_channel_refs(l, lt, get(lt->s, "Channels"), lt->t.channels, lt->t.n_channels);
  check_channel_refs(l, lt, get(lt->s, "Fallback"), lt->t.fallback, lt->t.n_fallback);
}

static void load_tiers(struct loader *l) {
  size_t n = 0;
  for (size_t i = 0; i < l->ini.n_sections; i++)
    n += l->kind[i] == K_TIER;
  if (n > 0 && !(l->tiers = calloc(n, sizeof(struct ltier))))
    return nomem(l);
  for (size_t i = 0; i < l->ini.n_sections; i++)
    if (l->kind[i] == K_TIER) {
      struct ltier *lt = &l->tiers[l->n_tiers++];
      lt->ok = load_tier(l, &l->ini.sections[i], lt);
      check_tier_channels(l, lt);
    }
}

static struct ltier *find_tier(struct loader *l, const char *name) {
  for (size_t i = 0; i < l->n_tiers; i++)
    if (streq_ptr(l->tiers[i].t.name, name)) /* name NULL after an OOM */
      return &l->tiers[i];
  return NULL;
}

/* Builds the policy of section s into *ret (NULL when invalid). Reports its
 * own errors; segment claims are checked later. */
static void load_policy(struct loader *l, const struct ini_section *s, struct policy **ret) {
  _cleanup_(policy_freep) struct policy *p = calloc(1, sizeof *p);
  if (!p)
    return nomem(l);
  bool ok = true;
  const struct ini_entry *e;
  p->catchup = CATCHUP_LATEST;
  p->callback_pause = 7 * 86400;
  p->lapse_grace = 30 * 86400;
  if (!(p->name = xstrdup(l, s->name)))
    return;
  if (!(e = get(s, "Segments"))) {
    missing(l, s, "Segments");
    ok = false;
  } else
    ok = load_list(l, e, &p->segments, &p->n_segments) && ok;
  if ((e = get(s, "CatchUp"))) {
    if (streq(e->value, "latest"))
      p->catchup = CATCHUP_LATEST;
    else if (streq(e->value, "all"))
      p->catchup = CATCHUP_ALL;
    else if (streq(e->value, "skip"))
      p->catchup = CATCHUP_SKIP;
    else {
      bad_value(l, e, "expected latest, all or skip");
      ok = false;
    }
  }
  if ((e = get(s, "FallbackOwner")) && !(p->fallback_owner = xstrdup(l, e->value)))
    ok = false;
  if ((e = get(s, "OwnerSendWindow"))) {
    if (!find_section(l, K_WINDOW, e->value)) {
      bad_value(l, e, "no [SendWindow %s] section", e->value);
      ok = false;
    } else if (!(p->owner_window = xstrdup(l, e->value)))
      ok = false;
  }
  ok = set_timespan(l, get(s, "CallbackPause"), &p->callback_pause, false) && ok;
  ok = set_timespan(l, get(s, "LapseGrace"), &p->lapse_grace, false) && ok;
  /* bounded so that expiry + span stays far from int64 overflow everywhere
   * it is added (lifecycle, links, policy) */
  static const char *const spans[] = {"CallbackPause", "LapseGrace"};
  for (size_t i = 0; i < ELEMENTSOF(spans); i++) {
    int64_t v = i == 0 ? p->callback_pause : p->lapse_grace;
    if (v > CONFIG_MAX_POLICY_SPAN) {
      bad_value(l, get(s, spans[i]), "must be at most %dd", CONFIG_MAX_POLICY_SPAN / 86400);
      ok = false;
    }
  }

  _cleanup_free_ char **names = NULL;
  size_t n = 0;
  if (!(e = get(s, "Tiers"))) {
    missing(l, s, "Tiers");
    ok = false;
  } else if (split_list(e->value, &names, &n) < 0)
    return nomem(l);
  /* names' strings are freed below; the array by _cleanup_free_. */
  if (e && names) {
    bool tiers_ok = check_dups(l, e, names, n);
    if (n > CONFIG_MAX_TIERS) {
      bad_value(l, e, "more than %d tiers", CONFIG_MAX_TIERS);
      tiers_ok = false;
    }
    const struct ltier *prev = NULL;
    for (size_t i = 0; i < n; i++) {
      const struct ltier *lt = find_tier(l, names[i]);
      if (!lt) {
        if (!strv_contains(names, i, names[i]))
          bad_value(l, e, "no [Tier %s] section", names[i]);
        tiers_ok = false;
        continue;
      }
      if (!lt->ok) {
        tiers_ok = false;
        continue;
      }
      if (prev && ladder_offset_cmp(&lt->t.offset, &prev->t.offset) < 0) {
        bad_value(l, e,
                  "tier \"%s\" (Offset=%s) comes after tier \"%s\" (Offset=%s); "
                  "list tiers by ascending offset",
                  lt->t.name, lt->offset->value, prev->t.name, prev->offset->value);
        tiers_ok = false;
      }
      prev = lt;
    }
    if (tiers_ok && ok) {
      if (!(p->tiers = calloc(n, sizeof(struct tier))))
        nomem(l);
      else
        for (size_t i = 0; i < n; i++) {
          p->n_tiers++; /* so that policy_free() cleans a half-copied tier */
          if (tier_copy(&find_tier(l, names[i])->t, &p->tiers[i]) < 0) {
            nomem(l);
            break;
          }
        }
    }
    ok = ok && tiers_ok;
  }
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  if (ok && !l->oom)
    *ret = TAKE_PTR(p);
}

struct claim {
  const char *segment;
  size_t policy; /* index into the policy sections */
  const struct ini_entry *e;
};

static int claim_cmp(const void *a, const void *b) {
  const struct claim *x = a, *y = b;
  return x->e->seq < y->e->seq ? -1 : x->e->seq > y->e->seq;
}

/* Segments → policies: each segment served by one policy, "*" by exactly one. */
static void check_segments(struct loader *l, const struct ini_section **ps, size_t n_ps) {
  struct claim *claims = NULL;
  size_t n = 0;
  for (size_t i = 0; i < n_ps; i++) {
    const struct ini_entry *e = get(ps[i], "Segments");
    if (!e)
      continue;
    char **segs = NULL;
    size_t ns = 0;
    if (split_list(e->value, &segs, &ns) < 0) {
      free(claims);
      return nomem(l);
    }
    struct claim *nc = realloc(claims, (n + ns) * sizeof *nc);
    if (!nc && ns > 0) {
      strv_free(segs, ns);
      free(claims);
      return nomem(l);
    }
    claims = nc;
    /* Point into the entry's value: find each word there again. */
    const char *p = e->value;
    for (size_t j = 0; j < ns; j++) {
      p = strstr(p, segs[j]);
      claims[n++] = (struct claim){.segment = p, .policy = i, .e = e};
      p += strlen(segs[j]);
    }
    strv_free(segs, ns);
  }
  if (n > 0)
    qsort(claims, n, sizeof *claims, claim_cmp); /* seq differs between policies */
  bool have_default = false;
  for (size_t i = 0; i < n; i++) {
    size_t len = strcspn(claims[i].segment, " \t");
    if (len == 1 && claims[i].segment[0] == '*')
      have_default = true;
    for (size_t j = 0; j < i; j++) {
      if (claims[j].policy == claims[i].policy || strcspn(claims[j].segment, " \t") != len ||
          memcmp(claims[j].segment, claims[i].segment, len) != 0)
        continue;
      bad_value(l, claims[i].e, "segment \"%.*s\" is already claimed by [Policy %s] (%s:%u)",
                (int)len, claims[i].segment, ps[claims[j].policy]->name, claims[j].e->file,
                claims[j].e->line);
      break;
    }
  }
  free(claims);
  if (!have_default)
    error_at(l, l->main_file, 1,
             "no policy for the default segment: add Segments=* to one [Policy NAME] section");
}

static void load_policies(struct loader *l) {
  size_t n = 0;
  for (size_t i = 0; i < l->ini.n_sections; i++)
    n += l->kind[i] == K_POLICY;
  _cleanup_free_ const struct ini_section **ps = calloc(n ? n : 1, sizeof *ps);
  struct config *c = l->c;
  if (!ps || (n > 0 && !(c->policies = calloc(n, sizeof(struct policy *)))))
    return nomem(l);
  n = 0;
  for (size_t i = 0; i < l->ini.n_sections; i++)
    if (l->kind[i] == K_POLICY) {
      ps[n++] = &l->ini.sections[i];
      struct policy *p = NULL;
      load_policy(l, &l->ini.sections[i], &p);
      if (p)
        c->policies[c->n_policies++] = p;
    }
  check_segments(l, ps, n);
}

static size_t file_index(const struct ini *ini, const char *file) {
  for (size_t i = 0; i < ini->n_files; i++)
    if (streq(ini->files[i], file))
      return i;
  return ini->n_files;
}

/* Stable sort of errs->v[from..] by (file read order, line). */
static void sort_errors(const struct ini *ini, struct config_errors *errs, size_t from) {
  for (size_t i = from + 1; i < errs->n; i++) {
    struct config_error x = errs->v[i];
    size_t fx = file_index(ini, x.file), j = i;
    while (j > from) {
      const struct config_error *y = &errs->v[j - 1];
      size_t fy = file_index(ini, y->file);
      if (fy < fx || (fy == fx && y->line <= x.line))
        break;
      errs->v[j] = errs->v[j - 1];
      j--;
    }
    errs->v[j] = x;
  }
}

struct config *config_free(struct config *c) {
  if (!c)
    return NULL;
  for (size_t i = 0; i < c->n_files; i++)
    free(c->files[i]);
  free(c->files);
  struct config_daemon *d = &c->daemon;
  free(d->database);
  free(d->listen);
  free(d->listen_host);
  free(d->public_url);
  free(d->time_zone);
  free(d->templates);
  free(d->locale);
  free(d->link_key_file);
  free(d->api_token_file);
  for (size_t i = 0; i < c->n_windows; i++) {
    free(c->windows[i].name);
    free(c->windows[i].holidays_path);
  }
  free(c->windows);
  for (size_t i = 0; i < c->n_policies; i++)
    policy_free(c->policies[i]);
  free(c->policies);
  for (size_t i = 0; i < c->n_channels; i++)
    channel_done(&c->channels[i]);
  free(c->channels);
  free(c->alert_channel);
  channel_done(&c->ops);
  free(c);
  return NULL;
}

static void loader_done(struct loader *l) {
  for (size_t i = 0; i < l->n_tiers; i++)
    tier_done(&l->tiers[i].t);
  free(l->tiers);
  free(l->kind);
  config_free(l->c);
  ini_done(&l->ini);
}

/* Validates what l->ini holds and builds the config. errs_from: index of the
 * first error of this load (syntax errors already collected count). */
static int loader_finish(struct loader *l, size_t errs_from, struct config **ret) {
  if (!(l->c = calloc(1, sizeof *l->c)) ||
      !(l->kind = calloc(l->ini.n_sections ? l->ini.n_sections : 1, sizeof(enum kind))))
    return -ENOMEM;
  classify(l);
  load_daemon(l);
  load_http(l);
  load_windows(l);
  load_channels(l);
  load_ops(l);
  load_tiers(l);
  load_policies(l);
  if (l->oom)
    return l->oom;
  sort_errors(&l->ini, l->errs, errs_from);
  if (l->errs->n > errs_from)
    return -EINVAL;
  /* Hand the file names over: kv and window file pointers point into them. */
  l->c->files = TAKE_PTR(l->ini.files);
  l->c->n_files = l->ini.n_files;
  l->ini.n_files = 0;
  *ret = TAKE_PTR(l->c);
  return 0;
}

int config_load_string(const char *name, const char *text, struct cal *cal, struct config **ret,
                       struct config_errors *errs) {
  if (!name || !text || !ret)
    return -EINVAL;
  struct config_errors local = {0};
  struct loader l = {.cal = cal, .errs = errs ? errs : &local, .main_file = name};
  size_t from = l.errs->n;
  int r = ini_parse(&l.ini, name, text, l.errs);
  if (r >= 0)
    r = loader_finish(&l, from, ret);
  if (r < 0 && r != -ENOMEM && r != -EINVAL)
    r = -EINVAL;
  if (r == -ENOMEM)
    sort_errors(&l.ini, l.errs, from);
  loader_done(&l);
  config_errors_clear(&local);
  return r;
}

static int name_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads path into l; an I/O error is reported (line 0) and returned. */
static int read_one(struct loader *l, const char *path) {
  _cleanup_free_ char *text = NULL;
  size_t len = 0;
  if (!ini_add_file(&l->ini, path))
    return -ENOMEM;
  struct stat st;
  int r = stat(path, &st) < 0 ? -errno : S_ISDIR(st.st_mode) ? -EISDIR : 0;
  if (r >= 0)
    r = read_full_file(path, CONFIG_MAX_FILE_SIZE, &text, &len);
  if (r < 0) {
    error_at(l, path, 0, "%s", r == -EFBIG ? "file too large (more than 1 MiB)" : strerror(-r));
    return r;
  }
  if (strlen(text) != len) {
    error_at(l, path, 0, "file contains a NUL byte");
    return -EINVAL;
  }
  return ini_parse(&l->ini, path, text, l->errs);
}

/* The sorted "*.conf" names in dir (no hidden files). Missing dir: none. */
static int list_dropins(struct loader *l, const char *dir, char ***ret, size_t *ret_n) {
  *ret = NULL;
  *ret_n = 0;
  DIR *d = opendir(dir);
  if (!d) {
    if (errno == ENOENT || errno == ENOTDIR)
      return 0;
    int r = -errno;
    error_at(l, dir, 0, "%s", strerror(-r));
    return r;
  }
  char **v = NULL;
  size_t n = 0;
  struct dirent *de;
  int r = 0;
  while ((de = readdir(d))) {
    size_t len = strlen(de->d_name);
    if (de->d_name[0] == '.' || len <= 5 || !streq(de->d_name + len - 5, ".conf"))
      continue;
    char **nv = realloc(v, (n + 1) * sizeof(char *));
    if (!nv || !(nv[n] = strdup(de->d_name))) {
      v = nv ? nv : v;
      r = -ENOMEM;
      break;
    }
    v = nv;
    n++;
  }
  closedir(d);
  if (r < 0) {
    strv_free(v, n);
    return r;
  }
  if (n > 0)
    qsort(v, n, sizeof(char *), name_cmp);
  *ret = v;
  *ret_n = n;
  return 0;
}

int config_load(const char *main_path, struct cal *cal, struct config **ret,
                struct config_errors *errs) {
  if (isempty(main_path) || !ret)
    return -EINVAL;
  struct config_errors local = {0};
  struct loader l = {.cal = cal, .errs = errs ? errs : &local, .main_file = main_path};
  size_t from = l.errs->n;
  int r = read_one(&l, main_path);
  if (r >= 0) {
    _cleanup_free_ char *dir = strprintf("%s.d", main_path);
    char **names = NULL;
    size_t n = 0;
    r = dir ? list_dropins(&l, dir, &names, &n) : -ENOMEM;
    for (size_t i = 0; r != -ENOMEM && i < n; i++) {
      _cleanup_free_ char *path = strprintf("%s/%s", dir, names[i]);
      int q = path ? read_one(&l, path) : -ENOMEM;
      if (q == -ENOMEM || (q < 0 && r >= 0))
        r = q; /* remember the first I/O error, keep reading the others */
    }
    strv_free(names, n);
    /* Continue after a failed drop-in only to collect its neighbours' syntax
     * errors: validating a partial config would report spurious errors. */
  }
  if (r >= 0)
    r = loader_finish(&l, from, ret);
  else
    sort_errors(&l.ini, l.errs, from);
  loader_done(&l);
  config_errors_clear(&local);
  return r;
}

/* ---- lookups ---- */

const struct policy *config_policy_for_segment(const struct config *c, const char *segment) {
  if (!c)
    return NULL;
  const struct policy *fallback = NULL;
  for (size_t i = 0; i < c->n_policies; i++)
    for (size_t j = 0; j < c->policies[i]->n_segments; j++) {
      const char *s = c->policies[i]->segments[j];
      if (!isempty(segment) && streq(s, segment))
        return c->policies[i];
      if (streq(s, "*"))
        fallback = c->policies[i];
    }
  return fallback;
}

const struct policy *config_policy(const struct config *c, const char *name) {
  for (size_t i = 0; c && name && i < c->n_policies; i++)
    if (streq(c->policies[i]->name, name))
      return c->policies[i];
  return NULL;
}

const struct config_window *config_window(const struct config *c, const char *name) {
  if (!c || c->n_windows == 0)
    return NULL;
  if (!name)
    return &c->windows[0];
  for (size_t i = 1; i < c->n_windows; i++)
    if (streq(c->windows[i].name, name))
      return &c->windows[i];
  return NULL;
}

const struct config_channel *config_channel(const struct config *c, const char *name) {
  for (size_t i = 0; c && name && i < c->n_channels; i++)
    if (streq(c->channels[i].name, name))
      return &c->channels[i];
  return NULL;
}

const struct config_kv *config_channel_lookup(const struct config_channel *ch, const char *key) {
  for (size_t i = ch && key ? ch->n_options : 0; i > 0; i--)
    if (streq(ch->options[i - 1].key, key))
      return &ch->options[i - 1];
  return NULL;
}

const char *config_channel_get(const struct config_channel *ch, const char *key) {
  const struct config_kv *kv = config_channel_lookup(ch, key);
  return kv ? kv->value : NULL;
}

const char *config_channel_addr_type(const struct config_channel *ch) {
  if (!ch || !ch->type)
    return NULL;
  const char *type = ch->type;
  if (streq(type, "sink")) {
    type = config_channel_get(ch, "Kind");
    if (!type || streq(type, "email"))
      return "smtp";
  }
  return streq(type, "smtp")      ? "smtp"
         : streq(type, "sms")     ? "sms"
         : streq(type, "webhook") ? "webhook"
                                  : NULL;
}

/* ---- the policy table ---- */

enum {
  COL_POLICY,
  COL_SEGMENTS,
  COL_CATCHUP,
  COL_TIER,
  COL_OFFSET,
  COL_REPEAT,
  COL_CHANNELS,
  COL_FALLBACK,
  COL_AUDIENCE,
  COL_TEMPLATE,
  COL_ESCALATE,
  _COL_MAX
};

static char *join(char *const *v, size_t n) {
  if (n == 0)
    return strdup("-");
  struct buf b = {0};
  for (size_t i = 0; i < n; i++)
    if (buf_printf(&b, "%s%s", i ? " " : "", v[i]) < 0) {
      buf_free(&b);
      return NULL;
    }
  return buf_steal(&b);
}

void config_print_policies(const struct config *c, FILE *out) {
  static const char *const head[_COL_MAX] = {"POLICY",   "SEGMENTS", "CATCH-UP", "TIER",
                                             "OFFSET",   "REPEAT",   "CHANNELS", "FALLBACK",
                                             "AUDIENCE", "TEMPLATE", "ESCALATE"};
  static const char *const catchups[] = {"latest", "all", "skip"};
  if (!c || !out)
    return;
  size_t rows = 1;
  for (size_t i = 0; i < c->n_policies; i++)
    rows += MAX(c->policies[i]->n_tiers, (size_t)1);
  char *(*cell)[_COL_MAX] = calloc(rows, sizeof *cell);
  if (!cell)
    return;
  size_t width[_COL_MAX] = {0};
  for (int k = 0; k < _COL_MAX; k++)
    cell[0][k] = strdup(head[k]);
  size_t row = 1;
  for (size_t i = 0; i < c->n_policies; i++) {
    const struct policy *p = c->policies[i];
    for (size_t j = 0; j < MAX(p->n_tiers, (size_t)1); j++, row++) {
      char **r = cell[row];
      bool first = j == 0;
      r[COL_POLICY] = strdup(first ? p->name : "");
      r[COL_SEGMENTS] = first ? join(p->segments, p->n_segments) : strdup("");
      r[COL_CATCHUP] = strdup(!first ? "" : (unsigned)p->catchup < 3 ? catchups[p->catchup] : "?");
      if (j >= p->n_tiers) {
        for (int k = COL_TIER; k < _COL_MAX; k++)
          r[k] = strdup("-");
        continue;
      }
      const struct tier *t = &p->tiers[j];
      char off[64];
      cal_duration_format(&t->offset, off, sizeof off);
      r[COL_TIER] = strdup(t->name);
      r[COL_OFFSET] = strdup(off);
      r[COL_REPEAT] = strdup(t->repeat ? t->repeat : "-");
      r[COL_CHANNELS] = join(t->channels, t->n_channels);
      r[COL_FALLBACK] = join(t->fallback, t->n_fallback);
      r[COL_AUDIENCE] = strdup(t->audience == AUDIENCE_OWNER ? "owner" : "customer");
      r[COL_TEMPLATE] = strdup(t->template_name ? t->template_name : "-");
      r[COL_ESCALATE] = t->escalate_after > 0 ? strprintf("after %u to %s", t->escalate_after,
                                                          t->escalate_to ? t->escalate_to : "-")
                                              : strdup("-");
    }
  }
  for (size_t i = 0; i < rows; i++)
    for (int k = 0; k < _COL_MAX; k++)
      if (cell[i][k])
        width[k] = MAX(width[k], strlen(cell[i][k]));
  for (size_t i = 0; i < rows; i++) {
    struct buf b = {0};
    for (int k = 0; k < _COL_MAX; k++) {
      const char *v = cell[i][k] ? cell[i][k] : "?";
      if (k == _COL_MAX - 1)
        buf_puts(&b, v);
      else
        buf_printf(&b, "%-*s  ", (int)width[k], v);
    }
    /* Trim trailing blanks (policy-less continuation rows end in cells). */
    while (b.len > 0 && b.data[b.len - 1] == ' ')
      b.data[--b.len] = 0;
    if (b.data)
      fprintf(out, "%s\n", b.data);
    buf_free(&b);
    for (int k = 0; k < _COL_MAX; k++)
      free(cell[i][k]);
  }
  free(cell);
}
