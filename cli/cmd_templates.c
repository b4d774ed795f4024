/* renewctl templates check: renders every template of every locale of the
 * template directory, for every tier and audience, through the daemon's own
 * renderer (render_sample(): made-up but complete data), and the page
 * strings and SMS replies (pages.po, sms.po) of every locale, and reports
 *   - a {{name}} that the data does not have (a missing key renders empty);
 *   - output with an unrendered "{{" or "1 days";
 *   - an SMS reply longer than one segment;
 *   - a template, partial, page string or SMS reply that a locale lacks while the
 *     default locale has it (a locale with a parent directory, e.g. de-CH
 *     beside de, may hold only what differs);
 *   - every syntax error that renewd --check-config reports.
 *
 *   renewctl templates check [--config PATH] [--dir DIR]
 *
 * --dir checks DIR instead of [Daemon] Templates=. Audiences come from the
 * config's tiers (Audience=, Template=); the owner alerts of customer
 * answers go to the owner, ops-alert to ops, other names to the customer.
 * Exit 0 when all is well, 1 when a problem was printed, EX_* otherwise.
 * Reads template files; never writes. */
#include <ctype.h>
#include <dirent.h>
#include <getopt.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli/cli.h"
#include "notifiers/render.h"
#include "notifiers/smstext.h"
#include "notifiers/templates.h"

#define MAX_LOCALES 64

/* Owner alerts sent when a customer answers (core/lifecycle.h). */
static const char *const owner_alerts[] = {"callback", "renew-intent", "customer-message",
                                           "customer-renewed"};

struct check {
  struct templates *t; /* the directory (borrowed from the renderer) */
  const char *dir;     /* its path */
  const char *locale;  /* locale being checked */
  const char *what;    /* what is being rendered, for messages */
  unsigned problems;   /* printed so far */
  unsigned renders;    /* renders done */
};

_printf_(2, 3) static void problem(struct check *k, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("%s: ", k->locale);
  vprintf(fmt, ap);
  putchar('\n');
  va_end(ap);
  k->problems++;
}

static void on_missing(void *ud, const char *file, const char *name) {
  struct check *k = ud;
  problem(k, "%s: %s: {{%s}} is not in the data", k->what, file ? file : "?", name);
}

static void on_syntax(void *ud, const char *file, unsigned line, const char *msg) {
  struct check *k = ud;
  if (line)
    printf("%s:%u: %s\n", file, line, msg);
  else
    printf("%s: %s\n", file, msg);
  k->problems++;
}

/* "1 days", "{{" in a rendered part. */
static void check_output(struct check *k, const char *part, const char *s) {
  if (!s)
    return;
  if (strstr(s, "{{"))
    problem(k, "%s.%s: unrendered \"{{\" in the output", k->what, part);
  for (const char *p = s; (p = strstr(p, "1 days")); p++)
    if (p == s || !isdigit((unsigned char)p[-1]))
      problem(k, "%s.%s: \"1 days\" in the output", k->what, part);
}

static enum audience audience_of(const struct config *cfg, const char *name, bool *ret_ops) {
  *ret_ops = streq(name, RENDER_OPS_TIER);
  for (size_t i = 0; i < ELEMENTSOF(owner_alerts); i++)
    if (streq(name, owner_alerts[i]))
      return AUDIENCE_OWNER;
  for (size_t p = 0; cfg && p < cfg->n_policies; p++)
    for (size_t i = 0; i < cfg->policies[p]->n_tiers; i++) {
      const struct tier *t = &cfg->policies[p]->tiers[i];
      if (streq(t->template_name ? t->template_name : t->name, name))
        return t->audience;
    }
  return AUDIENCE_CUSTOMER;
}

/* Renders template name for the current locale by email and, when it has an
 * sms part, by SMS. */
static int check_template(struct check *k, struct render *rd, const struct config *cfg,
                          const char *name) {
  bool ops;
  enum audience a = audience_of(cfg, name, &ops);
  enum notify_kind kinds[] = {NOTIFY_EMAIL, NOTIFY_SMS};
  for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
    if (kinds[i] == NOTIFY_SMS && !templates_exists(k->t, k->locale, name, "sms"))
      continue;
    char what[160], err[512] = "";
    snprintf(what, sizeof what, "%s (%s%s)", name,
             ops                   ? "ops"
             : a == AUDIENCE_OWNER ? "owner"
                                   : "customer",
             kinds[i] == NOTIFY_SMS ? ", sms" : ", email");
    k->what = what;
    struct message m = {0};
    int r = render_sample(rd, ops ? RENDER_OPS_TIER : name, name, a, kinds[i], NULL,
                          (int64_t)time(NULL), &m, err, sizeof err);
    k->renders++;
    if (r == -ENOMEM) {
      cli_error("out of memory");
      return r;
    }
    if (r < 0) {
      problem(k, "%s: %s", what, err);
      continue;
    }
    if (!m.text && !m.sms)
      problem(k, "%s: rendered no text", what);
    check_output(k, "subject", m.subject);
    check_output(k, "text", m.text);
    check_output(k, "html", m.html);
    check_output(k, "sms", m.sms);
    message_clear(&m);
  }
  return 0;
}

/* Does locale directory l have a parent among the locale directories? */
static bool has_parent(const char *l, const char *const *locales, size_t n) {
  const char *dash = strrchr(l, '-');
  if (!dash)
    dash = strrchr(l, '_');
  if (!dash)
    return false;
  for (size_t i = 0; i < n; i++)
    if (strlen(locales[i]) == (size_t)(dash - l) && !strncasecmp(locales[i], l, dash - l))
      return true;
  return false;
}

/* Calls fn for each NAME.PART.mustache (sub "") or partial (sub
 * "partials/") of DIR/locale. */
static int foreach_file(const char *dir, const char *locale, const char *sub,
                        int (*fn)(struct check *k, const char *file, void *ud), struct check *k,
                        void *ud) {
  _cleanup_free_ char *path = strprintf("%s/%s/%s", dir, locale, sub);
  if (!path)
    return -ENOMEM;
  DIR *d = opendir(path);
  if (!d)
    return 0;
  struct dirent *de;
  int r = 0;
  while (r >= 0 && (de = readdir(d))) {
    size_t n = strlen(de->d_name);
    if (de->d_name[0] != '.' && n > 9 && streq(de->d_name + n - 9, ".mustache"))
      r = fn(k, de->d_name, ud);
  }
  closedir(d);
  return r;
}

struct names {
  char **v;
  size_t n;
};

/* Collects the distinct NAMEs of NAME.PART.mustache. */
static int collect_name(struct check *k, const char *file, void *ud) {
  (void)k;
  struct names *ns = ud;
  const char *dot = strchr(file, '.');
  size_t len = dot ? (size_t)(dot - file) : strlen(file);
  for (size_t i = 0; i < ns->n; i++)
    if (strlen(ns->v[i]) == len && !strncmp(ns->v[i], file, len))
      return 0;
  char **v = reallocarray(ns->v, ns->n + 1, sizeof *v);
  if (!v)
    return -ENOMEM;
  ns->v = v;
  if (!(ns->v[ns->n] = strndup(file, len)))
    return -ENOMEM;
  ns->n++;
  return 0;
}

struct presence {
  const char *sub;   /* "" or "partials/" */
  const char *deflt; /* the default locale's directory */
};

static int check_present(struct check *k, const char *file, void *ud) {
  const struct presence *p = ud;
  _cleanup_free_ char *path = strprintf("%s/%s/%s%s", k->dir, k->locale, p->sub, file);
  if (!path)
    return -ENOMEM;
  if (access(path, F_OK) >= 0)
    return 0;
  /* a file of the default locale that starts with "{{! shared" holds no words */
  _cleanup_free_ char *dpath = strprintf("%s/%s/%s%s", k->dir, p->deflt, p->sub, file),
                      *text = NULL;
  if (!dpath)
    return -ENOMEM;
  if (read_full_file(dpath, 1 << 20, &text, NULL) >= 0 && !strncmp(text, "{{! shared", 10))
    return 0;
  problem(k, "%s%s is not translated (the default locale has it)", p->sub, file);
  return 0;
}

/* An SMS reply: valid UTF-8 and one segment (160 GSM-7 characters, 70
 * when a character needs UCS-2). */
static void check_sms(struct check *k, const char *what, const char *text) {
  struct smstext_info si;
  if (smstext_segments(text, &si) < 0)
    problem(k, "%s: not valid UTF-8", what);
  else if (si.segments > 1)
    problem(k, "%s: %zu characters of %s are %zu SMS segments; keep a reply within %d", what,
            si.chars, smstext_encoding_to_string(si.encoding), si.segments,
            si.encoding == SMSTEXT_GSM7 ? SMSTEXT_GSM7_SINGLE : SMSTEXT_UCS2_SINGLE);
}

/* An inbound keyword list (sms.po kw_*): "|"-separated words, none empty
 * and none longer than a keyword may be (64 bytes, daemon/http_sms.c). */
static void check_keywords(struct check *k, const char *what, const char *text) {
  for (const char *p = text;; p++) {
    const char *bar = strchrnul(p, '|');
    size_t n = (size_t)(bar - p), lead = strspn(p, " \t");
    while (n > lead && (p[n - 1] == ' ' || p[n - 1] == '\t'))
      n--;
    if (n <= lead)
      problem(k, "%s: an empty keyword", what);
    else if (n - lead > 64)
      problem(k, "%s: keyword \"%.*s\" is longer than 64 bytes", what, (int)(n - lead), p + lead);
    if (!*bar)
      return;
    p = bar;
  }
}

struct keyctx {
  struct check *k;
  const char *catalogue;  /* "pages", "sms", "alerts" */
  const char *locale_dir; /* the locale whose catalogue must have the key, or NULL */
};

/* A page string: present in the locale (when it must be) and renders with
 * the fields pages give. */
static int check_key(void *ud, const char *key) {
  struct keyctx *kc = ud;
  struct check *k = kc->k;
  json_t *data =
      json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:s}", "product",
                "Enterprise Support Plan", "date", "2027-10-20", "when", "2027-10-20 14:30",
                "state", "renewed", "tier", "notice", "repeat", 2, "channel", "email",
                "audience_label", "to the customer", "status_label", "sent", "kind_label",
                "remind me later", "until_when", "2027-11-03 09:00", "reason_label", "no budget");
  if (!data)
    return -ENOMEM;
  char *out = NULL, err[256] = "";
  const char *used = NULL;
  char what[128];
  snprintf(what, sizeof what, "%s.po \"%s\"", kc->catalogue, key);
  k->what = what;
  int r = templates_string(k->t, k->locale, kc->catalogue, key, data, &out, &used, err, sizeof err);
  json_decref(data);
  k->renders++;
  if (r == -ENOMEM)
    return r;
  if (r < 0)
    problem(k, "%s: %s", what, err);
  else {
    if (kc->locale_dir && !streq(used, kc->locale_dir))
      problem(k, "%s is not translated (found in %s)", what, used);
    check_output(k, "page", out);
    if (streq(kc->catalogue, "sms") && !strncmp(key, "kw_", 3))
      check_keywords(k, what, out);
    else if (streq(kc->catalogue, "sms"))
      check_sms(k, what, out);
  }
  free(out);
  return 0;
}

static int check_locale(struct check *k, struct render *rd, const struct config *cfg,
                        const struct names *ns, const char *deflt, bool complete) {
  int r = render_set_locale(rd, k->locale);
  for (size_t i = 0; r >= 0 && i < ns->n; i++)
    r = check_template(k, rd, cfg, ns->v[i]);
  if (r >= 0 && complete && !streq(k->locale, deflt)) {
    struct presence top = {"", deflt}, partials = {"partials/", deflt};
    if ((r = foreach_file(k->dir, deflt, "", check_present, k, &top)) >= 0)
      r = foreach_file(k->dir, deflt, "partials/", check_present, k, &partials);
  }
  /* page strings and SMS replies: the built-in (English) keys; alert words:
   * the default locale's */
  struct keyctx kc = {.k = k, .catalogue = "pages", .locale_dir = complete ? k->locale : NULL};
  if (r >= 0 && (r = templates_catalogue_keys(k->t, NULL, "pages", check_key, &kc)) == -ENOENT)
    r = 0;
  kc.catalogue = "sms";
  if (r >= 0 && (r = templates_catalogue_keys(k->t, NULL, "sms", check_key, &kc)) == -ENOENT)
    r = 0;
  kc.catalogue = "alerts";
  if (r >= 0 && (r = templates_catalogue_keys(k->t, deflt, "alerts", check_key, &kc)) == -ENOENT)
    r = 0;
  return r;
}

static int run_check(const struct config *cfg, struct cal *cal) {
  char err[512] = "";
  struct render *rd = NULL;
  int r = render_new(cfg, cal, &rd, err, sizeof err);
  if (r < 0) {
    cli_error("%s", err);
    return EX_NOINPUT;
  }
  struct templates *t = render_templates(rd);
  if (!t) {
    cli_error("%s: no template directory", cfg->daemon.templates);
    render_free(rd);
    return EX_NOINPUT;
  }
  struct check k = {.t = t, .dir = cfg->daemon.templates, .locale = "-"};
  (void)templates_add_builtin_catalogue(t, "pages", templates_builtin_pages_po, NULL, 0);
  (void)templates_add_builtin_catalogue(t, "sms", templates_builtin_sms_po, NULL, 0);
  if (templates_check(t, on_syntax, &k) == -ENOMEM) {
    render_free(rd);
    return EX_OSERR;
  }
  templates_set_missing_hook(t, on_missing, &k);
  const char *locales[MAX_LOCALES], *deflt = NULL;
  size_t n = MIN(templates_locales(t, locales, MAX_LOCALES), (size_t)MAX_LOCALES);
  for (size_t i = 0; i < n; i++)
    if (!strcasecmp(locales[i], templates_default_locale(t)))
      deflt = locales[i];
  struct names ns = {0};
  if (!deflt)
    printf("%s: no directory for the default locale %s\n", cfg->daemon.templates,
           templates_default_locale(t)),
        k.problems++;
  else
    r = foreach_file(cfg->daemon.templates, deflt, "", collect_name, &k, &ns);
  for (size_t i = 0; r >= 0 && i < n; i++) {
    k.locale = locales[i];
    r = check_locale(&k, rd, cfg, &ns, deflt ? deflt : "", !has_parent(locales[i], locales, n));
  }
  for (size_t i = 0; i < ns.n; i++)
    free(ns.v[i]);
  free(ns.v);
  render_free(rd);
  if (r < 0) {
    cli_error("%s", strerror(-r));
    return EX_OSERR;
  }
  printf("templates: %zu locales, %zu templates, %u renders: %s\n", n, ns.n, k.renders,
         k.problems ? "problems above" : "ok");
  return k.problems ? 1 : 0;
}

static void templates_usage(void) {
  fputs("Usage: renewctl templates check [--config PATH] [--dir DIR]\n"
        "\n"
        "Renders every template of every locale for every tier and audience, and every\n"
        "page string and SMS reply; reports missing keys, unrendered tags, untranslated\n"
        "files and SMS replies longer than one segment.\n",
        stdout);
}

int cmd_templates(struct cli *c, int argc, char **argv) {
  enum { OPT_DIR = 0x2000 };
  static const struct option options[] = {
      CLI_COMMON_OPTIONS,
      {"dir", required_argument, NULL, OPT_DIR},
      {0},
  };
  const char *dir = NULL;
  int opt;
  while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
    if (cli_common_option(c, opt, optarg))
      continue;
    switch (opt) {
    case OPT_DIR:
      dir = optarg;
      break;
    case CLI_OPT_HELP:
      templates_usage();
      return 0;
    default:
      return cli_usage_error("templates", "invalid option");
    }
  }
  if (optind + 1 != argc || !streq(argv[optind], "check"))
    return cli_usage_error("templates", "expected: templates check");
  const struct config *cfg = NULL;
  int ex = cli_config(c, &cfg);
  if (ex)
    return ex;
  struct cal *cal = cli_cal(c);
  if (!cal)
    return EX_OSERR;
  _cleanup_free_ char *abs = dir ? realpath(dir, NULL) : NULL;
  if (dir && !abs) {
    cli_error("%s: %s", dir, strerror(errno));
    return EX_NOINPUT;
  }
  if (abs && c->config) { /* the config's tiers, the given directory */
    if (free_and_strdup(&c->config->daemon.templates, abs) < 0)
      return EX_OSERR;
    return run_check(c->config, cal);
  }
  if (!cfg) {
    cli_error("templates check needs a configuration (its tiers name the templates; see --config)");
    return EX_CONFIG;
  }
  return run_check(cfg, cal);
}
