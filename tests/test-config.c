/* Unit tests for config/: the INI syntax, every validation error with its
 * exact "file:line: message", drop-in order and overrides, section merging,
 * empty assignments, time spans, lookups, the policy table, and the shipped
 * example configuration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "core/util.h"

#define EXAMPLE_CONF TEST_SRC_DIR "/../config/renewd.conf.example"
#define EXAMPLE_ICS TEST_SRC_DIR "/../config/holidays.example.ics"

/* A minimal valid config: 8 lines, so appended lines start at line 9. */
#define BASE                                                                                       \
  "[Policy p]\n"                                                                                   \
  "Segments=*\n"                                                                                   \
  "Tiers=t\n"                                                                                      \
  "[Tier t]\n"                                                                                     \
  "Offset=-P1D\n"                                                                                  \
  "Channels=c\n"                                                                                   \
  "[Channel c]\n"                                                                                  \
  "Type=sink\n"

static struct cal *the_cal; /* shared zone/holiday cache (tests only) */

static char *errors_text(const struct config_errors *e) {
  char *s = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&s, &n);
  assert_non_null(f);
  config_errors_print(e, f);
  fclose(f);
  return s;
}

/* Loads text as "t.conf" and asserts it fails with exactly `want` (errors
 * one per line, as printed). */
static void expect_errors_cal(struct cal *cal, const char *text, const char *want) {
  struct config_errors e = {0};
  struct config *c = (struct config *)0x1;
  int r = config_load_string("t.conf", text, cal, &c, &e);
  _cleanup_free_ char *got = errors_text(&e);
  if (r != -EINVAL || !streq(got, want)) {
    if (r == 0)
      config_free(c);
    fail_msg("config:\n%s\nreturned %d, errors:\n%s\nexpected:\n%s", text, r, got, want);
  }
  assert_ptr_equal(c, (struct config *)0x1); /* untouched */
  config_errors_clear(&e);
  assert_int_equal(e.n, 0);
}

static void expect_errors(const char *text, const char *want) {
  expect_errors_cal(NULL, text, want);
}

static struct config *load_ok_cal(struct cal *cal, const char *text) {
  struct config_errors e = {0};
  struct config *c = NULL;
  int r = config_load_string("t.conf", text, cal, &c, &e);
  if (r != 0) {
    _cleanup_free_ char *got = errors_text(&e);
    fail_msg("config:\n%s\nreturned %d, errors:\n%s", text, r, got);
  }
  assert_int_equal(e.n, 0);
  return c;
}

static struct config *load_ok(const char *text) {
  return load_ok_cal(NULL, text);
}

/* ---- syntax ---- */

struct error_case {
  const char *text;
  const char *want;
};

static void run_cases(const struct error_case *cases, size_t n, struct cal *cal) {
  for (size_t i = 0; i < n; i++)
    expect_errors_cal(cal, cases[i].text, cases[i].want);
}

static void test_syntax_errors(void **state) {
  static const struct error_case cases[] = {
      {BASE "[Policy\n",
       "t.conf:9: invalid section header \"[Policy\", expected [Type] or [Type NAME]\n"},
      {BASE "[]\n", "t.conf:9: invalid section header \"[]\", expected [Type] or [Type NAME]\n"},
      {BASE "[ ]\n", "t.conf:9: invalid section header \"[ ]\", expected [Type] or [Type NAME]\n"},
      {BASE "[Tier [x]]\n",
       "t.conf:9: invalid section header \"[Tier [x]]\", expected [Type] or [Type NAME]\n"},
      {BASE "[9lives]\n",
       "t.conf:9: invalid section header \"[9lives]\", expected [Type] or [Type NAME]\n"},
      /* keys under a broken header are skipped, not reported again */
      {BASE "[Bad\nFoo=1\nBar=2\n",
       "t.conf:9: invalid section header \"[Bad\", expected [Type] or [Type NAME]\n"},
      {BASE "garbage line\n", "t.conf:9: expected [Section] or Key=Value, got \"garbage line\"\n"},
      {BASE "  =value\n", "t.conf:9: invalid key \"\"\n"},
      {BASE "Bad Key = 1\n", "t.conf:9: invalid key \"Bad Key\"\n"},
      {BASE "1st=x\n", "t.conf:9: invalid key \"1st\"\n"},
      {"Horizon=1h\n" BASE, "t.conf:1: Horizon= outside of any section\n"},
  };
  run_cases(cases, ELEMENTSOF(cases), NULL);
}

/* Comments, blank lines, blanks around '=', CRLF, a BOM, '=' inside values. */
static void test_syntax_accepted(void **state) {
  static const char text[] = "\xef\xbb\xbf# leading comment\r\n"
                             "; another comment\r\n"
                             "\r\n"
                             "   [Daemon]   \r\n"
                             "  # indented comment\r\n"
                             "\tHorizon \t=\t 2h \r\n"
                             "PublicURL = https://renew.example.com/a?b=c\r\n"
                             "Templates=/srv/t # not a comment\r\n" BASE;
  _cleanup_(config_freep) struct config *c = load_ok(text);
  assert_int_equal(c->daemon.horizon, 7200);
  assert_string_equal(c->daemon.public_url, "https://renew.example.com/a?b=c");
  assert_string_equal(c->daemon.templates, "/srv/t # not a comment");
  assert_int_equal(c->n_files, 1);
  assert_string_equal(c->files[0], "t.conf");
}

/* ---- sections and keys ---- */

static void test_section_errors(void **state) {
  static const struct error_case cases[] = {
      {BASE "[Frobnicate]\nX=1\n", "t.conf:9: unknown section [Frobnicate]\n"},
      {BASE "[Frob x]\n", "t.conf:9: unknown section [Frob x]\n"},
      {BASE "[daemon]\n", "t.conf:9: unknown section [daemon]\n"},
      {BASE "[Daemon x]\nHorizon=zzz\n", "t.conf:9: section [Daemon] takes no name\n"},
      {BASE "[Ops all]\n", "t.conf:9: section [Ops] takes no name\n"},
      {BASE "[Tier]\n", "t.conf:9: section [Tier] needs a name, as in [Tier NAME]\n"},
      {BASE "[Policy]\n", "t.conf:9: section [Policy] needs a name, as in [Policy NAME]\n"},
      {BASE "[Channel]\n", "t.conf:9: section [Channel] needs a name, as in [Channel NAME]\n"},
      {BASE "[Tier a/b]\n",
       "t.conf:9: [Tier a/b]: invalid name, use up to 64 letters, digits, '_', '-' or '.'\n"},
      {BASE "[Channel two words]\n", "t.conf:9: [Channel two words]: invalid name, use up to 64 "
                                     "letters, digits, '_', '-' or '.'\n"},
      {BASE "[Daemon]\nFoo=1\nhorizon=1h\n", "t.conf:10: unknown key Foo= in [Daemon]\n"
                                             "t.conf:11: unknown key horizon= in [Daemon]\n"},
      {BASE "[Tier t]\nBar=1\n", "t.conf:10: unknown key Bar= in [Tier t]\n"},
      {BASE "[Policy p]\nTier=t\n", "t.conf:10: unknown key Tier= in [Policy p]\n"},
      {BASE "[SendWindow]\nHour=1\n", "t.conf:10: unknown key Hour= in [SendWindow]\n"},
      {BASE "[SendWindow w]\nHour=1\n", "t.conf:10: unknown key Hour= in [SendWindow w]\n"},
  };
  run_cases(cases, ELEMENTSOF(cases), NULL);
}

/* ---- [Daemon] ---- */

static void test_daemon_defaults(void **state) {
  _cleanup_(config_freep) struct config *c = load_ok(BASE);
  const struct config_daemon *d = &c->daemon;
  assert_string_equal(d->database, "/var/lib/renewd/renewd.db");
  assert_string_equal(d->listen, "127.0.0.1:8787");
  assert_string_equal(d->listen_host, "127.0.0.1");
  assert_int_equal(d->listen_port, 8787);
  assert_string_equal(d->public_url, "http://127.0.0.1:8787");
  assert_string_equal(d->time_zone, "UTC");
  assert_int_equal(d->horizon, 48 * 3600);
  assert_int_equal(d->refill_interval, 600);
  assert_int_equal(d->change_poll_interval, 1);
  assert_int_equal(d->stop_timeout, 20);
  assert_string_equal(d->templates, "/usr/share/renewd/templates");
  assert_null(d->link_key_file);
  assert_null(d->api_token_file);
  assert_null(c->alert_channel);
  assert_string_equal(c->ops.name, "Ops");
  assert_int_equal(c->ops.n_options, 0);
}

static void test_daemon_values(void **state) {
  _cleanup_(config_freep) struct config *c =
      load_ok_cal(the_cal, "[Daemon]\n"
                           "Database=/srv/r.db\n"
                           "Listen=[::1]:9000\n"
                           "PublicURL=https://x.example//\n"
                           "TimeZone=Europe/Berlin\n"
                           "Horizon=PT12H\n"
                           "RefillInterval=1h30min\n"
                           "ChangePollInterval=5\n"
                           "StopTimeout=0\n"
                           "Templates=/srv/tpl\n"
                           "LinkKeyFile=link-key\n"
                           "ApiTokenFile=/etc/renewd/api\n" BASE);
  const struct config_daemon *d = &c->daemon;
  assert_string_equal(d->database, "/srv/r.db");
  assert_string_equal(d->listen, "[::1]:9000");
  assert_string_equal(d->listen_host, "::1");
  assert_int_equal(d->listen_port, 9000);
  assert_string_equal(d->public_url, "https://x.example");
  assert_string_equal(d->time_zone, "Europe/Berlin");
  assert_int_equal(d->horizon, 12 * 3600);
  assert_int_equal(d->refill_interval, 5400);
  assert_int_equal(d->change_poll_interval, 5);
  assert_int_equal(d->stop_timeout, 0);
  assert_string_equal(d->templates, "/srv/tpl");
  assert_string_equal(d->link_key_file, "link-key");
  assert_string_equal(d->api_token_file, "/etc/renewd/api");

  _cleanup_(config_freep) struct config *c2 = load_ok("[Daemon]\nListen=localhost:80\n" BASE);
  assert_string_equal(c2->daemon.listen_host, "localhost");
  assert_int_equal(c2->daemon.listen_port, 80);
  /* Without a cal, zone names are only checked for syntax. */
  _cleanup_(config_freep) struct config *c3 = load_ok("[Daemon]\nTimeZone=Mars/Olympus\n" BASE);
  assert_string_equal(c3->daemon.time_zone, "Mars/Olympus");
}

static void test_daemon_errors(void **state) {
#define LISTEN_ERR ": expected HOST:PORT or [IPv6]:PORT with a port in 1..65535\n"
#define SPAN_ERR ": invalid time span (e.g. 48h, 1h30min, 2d, PT48H)\n"
  static const struct error_case cases[] = {
      {BASE "[Daemon]\nDatabase=renewd.db\n",
       "t.conf:10: Database=renewd.db: must be an absolute path\n"},
      {BASE "[Daemon]\nListen=localhost\n", "t.conf:10: Listen=localhost" LISTEN_ERR},
      {BASE "[Daemon]\nListen=8787\n", "t.conf:10: Listen=8787" LISTEN_ERR},
      {BASE "[Daemon]\nListen=:8787\n", "t.conf:10: Listen=:8787" LISTEN_ERR},
      {BASE "[Daemon]\nListen=[::1]8787\n", "t.conf:10: Listen=[::1]8787" LISTEN_ERR},
      {BASE "[Daemon]\nListen=[]:80\n", "t.conf:10: Listen=[]:80" LISTEN_ERR},
      {BASE "[Daemon]\nListen=[g::1]:80\n", "t.conf:10: Listen=[g::1]:80" LISTEN_ERR},
      {BASE "[Daemon]\nListen=::1:80\n", "t.conf:10: Listen=::1:80" LISTEN_ERR},
      {BASE "[Daemon]\nListen=1.2.3.4:0\n", "t.conf:10: Listen=1.2.3.4:0" LISTEN_ERR},
      {BASE "[Daemon]\nListen=1.2.3.4:65536\n", "t.conf:10: Listen=1.2.3.4:65536" LISTEN_ERR},
      {BASE "[Daemon]\nListen=1.2.3.4:80x\n", "t.conf:10: Listen=1.2.3.4:80x" LISTEN_ERR},
      {BASE "[Daemon]\nListen=a b:80\n", "t.conf:10: Listen=a b:80" LISTEN_ERR},
      {BASE "[Daemon]\nPublicURL=ftp://x\n",
       "t.conf:10: PublicURL=ftp://x: expected an http:// or https:// URL\n"},
      {BASE "[Daemon]\nPublicURL=http://\n",
       "t.conf:10: PublicURL=http://: expected an http:// or https:// URL\n"},
      {BASE "[Daemon]\nPublicURL=https://a b\n",
       "t.conf:10: PublicURL=https://a b: expected an http:// or https:// URL\n"},
      {BASE "[Daemon]\nTimeZone=../../etc/passwd\n",
       "t.conf:10: TimeZone=../../etc/passwd: invalid time zone name\n"},
      {BASE "[Daemon]\nTimeZone=/UTC\n", "t.conf:10: TimeZone=/UTC: invalid time zone name\n"},
      {BASE "[Daemon]\nHorizon=abc\n", "t.conf:10: Horizon=abc" SPAN_ERR},
      {BASE "[Daemon]\nHorizon=0\n", "t.conf:10: Horizon=0: must be greater than zero\n"},
      {BASE "[Daemon]\nRefillInterval=10 minutes ago\n",
       "t.conf:10: RefillInterval=10 minutes ago" SPAN_ERR},
      {BASE "[Daemon]\nRefillInterval=0s\n",
       "t.conf:10: RefillInterval=0s: must be greater than zero\n"},
      {BASE "[Daemon]\nChangePollInterval=-1s\n", "t.conf:10: ChangePollInterval=-1s" SPAN_ERR},
      {BASE "[Daemon]\nChangePollInterval=PT0S\n",
       "t.conf:10: ChangePollInterval=PT0S: must be greater than zero\n"},
      {BASE "[Daemon]\nTemplates=templates\n",
       "t.conf:10: Templates=templates: must be an absolute path\n"},
      /* security: the value is not echoed (it may be the secret itself) */
      {BASE "[Daemon]\nLinkKeyFile=keys/link\n",
       "t.conf:10: LinkKeyFile=: must be an absolute path or a credential name (the value is "
       "not shown: it may be the secret itself; put the secret in a file)\n"},
      {BASE "[Daemon]\nApiTokenFile=Zm9v/YmFyIHNlY3JldA+x\n",
       "t.conf:10: ApiTokenFile=: must be an absolute path or a credential name (the value is "
       "not shown: it may be the secret itself; put the secret in a file)\n"},
  };
  run_cases(cases, ELEMENTSOF(cases), NULL);
  /* With a cal, zones are looked up. */
  expect_errors_cal(the_cal, BASE "[Daemon]\nTimeZone=Mars/Olympus\n",
                    "t.conf:10: TimeZone=Mars/Olympus: unknown time zone\n");
}

/* A *File= value that looks like a pasted secret is refused without being
 * quoted, in [Daemon] and in [Channel]/[Ops] sections alike; names people
 * choose pass. */
static void test_secret_shapes(void **state) {
  static const char *const names[] = {
      "link-key",
      "renewd.link-key",
      "smtp_password",
      "sms-token-2027",
      "LinkKey",
      "renewd@link",
      "key1",
      "/etc/renewd/secrets/link-key",
      "/run/credentials",
      "webhook-secret.prod",
      "twilio_auth_token",
      "TwilioAuthToken2027",
      "RenewdLinkKeyProduction",
  };
  for (size_t i = 0; i < ELEMENTSOF(names); i++)
    if (config_secret_ref_problem(names[i]))
      fail_msg("'%s' refused: %s", names[i], config_secret_ref_problem(names[i]));
  static const char *const secrets[] = {
      "Zm9vYmFyIHNlY3JldCBrZXk=",                 /* base64 with padding */
      "dGhpc2lzYXNlY3JldGtleWZvcmxpbmtz",         /* base64, no padding */
      "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",         /* a random key */
      "4f9a1c2e8b7d6a5f4e3d2c1b0a9f8e7d",         /* hex (a Twilio auth token) */
      "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",   /* Standard Webhooks */
      "sk_live_51HxyzABCDEFGHIJ",                 /* Stripe */
      "ghp_abcdefghijklmnopqrstuvwxyz0123456789", /* GitHub */
      "/4f9a1c2e8b7d6a5f4e3d2c1b0a9f8e7d",        /* a key that starts with '/' */
      "correct horse battery staple",             /* blanks */
      "a+b",                                      /* '+' */
      "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklm", /* > 64 */
  };
  for (size_t i = 0; i < ELEMENTSOF(secrets); i++)
    if (!config_secret_ref_problem(secrets[i]))
      fail_msg("'%s' accepted as a file or credential name", secrets[i]);
  assert_non_null(config_secret_ref_problem(""));
  assert_non_null(config_secret_ref_problem("keys/link"));

  expect_errors(BASE "[Daemon]\nLinkKeyFile=Zm9vYmFyIHNlY3JldCBrZXk=\n",
                "t.conf:10: LinkKeyFile=: looks like a secret, not a file or credential name: "
                "it holds characters no file or credential name has (the value is not shown; "
                "put the secret in a file and name the file here)\n");
  expect_errors(BASE "[Daemon]\nApiTokenFile=4f9a1c2e8b7d6a5f4e3d2c1b0a9f8e7d\n",
                "t.conf:10: ApiTokenFile=: looks like a secret, not a file or credential name: "
                "it looks like a hex-encoded key (the value is not shown; put the secret in a "
                "file and name the file here)\n");
  expect_errors(BASE "PasswordFile=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
                "t.conf:9: PasswordFile=: looks like a secret, not a file or credential name: "
                "it starts like an API key or token (the value is not shown; put the secret in "
                "a file and name the file here)\n");
  expect_errors(BASE "[Ops]\nHeadersFile=dGhpc2lzYXNlY3JldGtleWZvcmxpbmtz\n",
                "t.conf:10: HeadersFile=: looks like a secret, not a file or credential name: "
                "it looks like an encoded key (base64) (the value is not shown; put the secret "
                "in a file and name the file here)\n");
  /* a path the backends judge; a CA bundle is no secret */
  _cleanup_(config_freep) struct config *c =
      load_ok(BASE "CAFile=/etc/ssl/certs/ca-certificates.crt\nPasswordFile=smtp-password\n");
  assert_non_null(c);
}

/* ---- time spans ---- */

static void test_timespan(void **state) {
  static const struct {
    const char *s;
    int r;
    int64_t v;
  } cases[] = {
      {"48h", 0, 172800},
      {"2d", 0, 172800},
      {"90s", 0, 90},
      {"90", 0, 90},
      {"1h30min", 0, 5400},
      {"1h 30min", 0, 5400},
      {" 1 h 30 m ", 0, 5400},
      {"15min", 0, 900},
      {"2w", 0, 1209600},
      {"1week 1day 1hour 1minute 1second", 0, 604800 + 86400 + 3600 + 61},
      {"3 days 2 hours", 0, 3 * 86400 + 7200},
      {"1hr", 0, 3600},
      {"10sec", 0, 10},
      {"0", 0, 0},
      {"PT48H", 0, 172800},
      {"P2D", 0, 172800},
      {"P1W", 0, 604800},
      {"P1DT1H1M1S", 0, 90061},
      {"", -EINVAL, 0},
      {"   ", -EINVAL, 0},
      {"h", -EINVAL, 0},
      {"1x", -EINVAL, 0},
      {"1M", -EINVAL, 0}, /* months are not time spans */
      {"1.5h", -EINVAL, 0},
      {"-1h", -EINVAL, 0},
      {"-PT1H", -EINVAL, 0},
      {"PT", -EINVAL, 0},
      {"P1Y", -EINVAL, 0},
      {"1h-", -EINVAL, 0},
      {"99999999999999999999", -ERANGE, 0},
      {"9999999999999999w", -ERANGE, 0},
  };
  for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
    int64_t v = -42;
    int r = config_parse_timespan(cases[i].s, &v);
    if (r != cases[i].r || (r == 0 && v != cases[i].v))
      fail_msg("config_parse_timespan(\"%s\") = %d, %lld; expected %d, %lld", cases[i].s, r,
               (long long)v, cases[i].r, (long long)cases[i].v);
    if (r < 0)
      assert_int_equal(v, -42);
  }
}

/* ---- windows ---- */

static void test_windows(void **state) {
  _cleanup_(config_freep) struct config *c0 = load_ok(BASE);
  assert_int_equal(c0->n_windows, 1);
  const struct config_window *w = config_window(c0, NULL);
  assert_non_null(w);
  assert_null(w->name);
  assert_null(w->file);
  assert_int_equal(w->window.start_min, 9 * 60);
  assert_int_equal(w->window.end_min, 18 * 60);
  assert_int_equal(w->window.days, 0x3e); /* Mon..Fri */
  assert_null(w->window.holidays);
  assert_null(w->holidays_path);

  _cleanup_(config_freep) struct config *c = load_ok_cal(the_cal, BASE "[SendWindow]\n"
                                                                       "Hours=08:30-17:00\n"
                                                                       "Days=Mon,Wed\n"
                                                                       "Holidays=" EXAMPLE_ICS "\n"
                                                                       "[SendWindow owners]\n"
                                                                       "Hours=07:00-20:00\n"
                                                                       "[SendWindow weekend]\n"
                                                                       "Days=Sat..Sun\n");
  assert_int_equal(c->n_windows, 3);
  w = config_window(c, NULL);
  assert_int_equal(w->window.start_min, 8 * 60 + 30);
  assert_int_equal(w->window.end_min, 17 * 60);
  assert_int_equal(w->window.days, (1 << 1) | (1 << 3));
  assert_string_equal(w->holidays_path, EXAMPLE_ICS);
  assert_non_null(w->window.holidays);
  assert_true(cal_is_holiday(w->window.holidays, 2031, 12, 25));
  assert_false(cal_is_holiday(w->window.holidays, 2031, 12, 23));
  assert_string_equal(w->file, "t.conf");
  assert_int_equal(w->line, 9);
  w = config_window(c, "owners");
  assert_string_equal(w->name, "owners");
  assert_int_equal(w->window.start_min, 7 * 60);
  assert_int_equal(w->window.days, 0x3e);
  assert_null(w->window.holidays);
  assert_int_equal(w->line, 13);
  w = config_window(c, "weekend");
  assert_int_equal(w->window.days, (1 << 0) | (1 << 6));
  assert_ptr_equal(&c->windows[2], w);
  assert_null(config_window(c, "nope"));

  /* Without a cal the holiday file is not read. */
  _cleanup_(config_freep) struct config *c2 =
      load_ok(BASE "[SendWindow]\nHolidays=/nonexistent/holidays.ics\n");
  assert_string_equal(config_window(c2, NULL)->holidays_path, "/nonexistent/holidays.ics");
  assert_null(config_window(c2, NULL)->window.holidays);
}

static void test_window_errors(void **state) {
  static const struct error_case cases[] = {
      {BASE "[SendWindow]\nHours=9-18\n",
       "t.conf:10: Hours=9-18: expected HH:MM-HH:MM, e.g. 09:00-18:00\n"},
      {BASE "[SendWindow x]\nHours=18:00-09:00\n",
       "t.conf:10: Hours=18:00-09:00: expected HH:MM-HH:MM, e.g. 09:00-18:00\n"},
      {BASE "[SendWindow]\nDays=Funday\n",
       "t.conf:10: Days=Funday: expected days such as Mon..Fri or Mon,Wed,Fri\n"},
      {BASE "[SendWindow]\nHolidays=holidays.ics\n",
       "t.conf:10: Holidays=holidays.ics: must be an absolute path\n"},
  };
  run_cases(cases, ELEMENTSOF(cases), NULL);

  /* With a cal the file is loaded; its error comes after "Holidays=PATH: ". */
  struct config_errors e = {0};
  struct config *c = NULL;
  assert_int_equal(config_load_string("t.conf", BASE "[SendWindow]\nHolidays=/nonexistent/h.ics\n",
                                      the_cal, &c, &e),
                   -EINVAL);
  assert_null(c);
  assert_int_equal(e.n, 1);
  assert_string_equal(e.v[0].file, "t.conf");
  assert_int_equal(e.v[0].line, 10);
  const char prefix[] = "Holidays=/nonexistent/h.ics: ";
  assert_int_equal(strncmp(e.v[0].message, prefix, strlen(prefix)), 0);
  assert_true(strlen(e.v[0].message) > strlen(prefix));
  config_errors_clear(&e);
}

/* ---- channels and [Ops] ---- */

static void test_channels(void **state) {
  _cleanup_(config_freep) struct config *c = load_ok(BASE "[Channel email]\n"    /* 9 */
                                                          "Type=smtp\n"          /* 10 */
                                                          "URL=smtp://a:25\n"    /* 11 */
                                                          "From=a@example.com\n" /* 12 */
                                                          "Header=X-A: 1\n"      /* 13 */
                                                          "[Channel c]\n"        /* 14 */
                                                          "Extra=yes\n"          /* 15 */
                                                          "[Channel email]\n"    /* 16 */
                                                          "URL=smtp://b:25\n"    /* 17 */
                                                          "Header=X-B: 2\n"      /* 18 */
                                                          "From=\n"              /* 19 */
                                                          "[Ops]\n"              /* 20 */
                                                          "AlertChannel=email\n" /* 21 */
                                                          "Threshold=5\n");      /* 22 */
  assert_int_equal(c->n_channels, 2);
  const struct config_channel *ch = config_channel(c, "email");
  assert_ptr_equal(ch, &c->channels[1]);
  assert_string_equal(ch->name, "email");
  assert_string_equal(ch->type, "smtp");
  assert_string_equal(ch->file, "t.conf");
  assert_int_equal(ch->line, 9);
  /* Every assignment kept in order; "From=" removed the earlier From. */
  assert_int_equal(ch->n_options, 4);
  assert_string_equal(ch->options[0].key, "URL");
  assert_string_equal(ch->options[0].value, "smtp://a:25");
  assert_string_equal(ch->options[1].key, "Header");
  assert_string_equal(ch->options[2].value, "smtp://b:25");
  assert_string_equal(ch->options[3].value, "X-B: 2");
  assert_string_equal(config_channel_get(ch, "URL"), "smtp://b:25");
  assert_null(config_channel_get(ch, "From"));
  assert_null(config_channel_get(ch, "Type"));
  assert_null(config_channel_get(ch, "url")); /* keys are case-sensitive */
  const struct config_kv *kv = config_channel_lookup(ch, "Header");
  assert_non_null(kv);
  assert_string_equal(kv->value, "X-B: 2");
  assert_string_equal(kv->file, "t.conf");
  assert_int_equal(kv->line, 18);
  assert_ptr_equal(kv->file, c->files[0]);
  ch = config_channel(c, "c");
  assert_string_equal(ch->type, "sink");
  assert_string_equal(config_channel_get(ch, "Extra"), "yes");
  assert_null(config_channel(c, "nope"));
  assert_null(config_channel_get(NULL, "x"));

  assert_string_equal(c->alert_channel, "email");
  assert_int_equal(c->ops.n_options, 1);
  assert_string_equal(config_channel_get(&c->ops, "Threshold"), "5");
  assert_int_equal(config_channel_lookup(&c->ops, "Threshold")->line, 22);
  assert_null(c->ops.type);
}

static void test_channel_errors(void **state) {
  static const struct error_case cases[] = {
      {BASE "[Channel x]\nURL=smtp://a\n", "t.conf:9: [Channel x]: missing required key Type=\n"},
      {BASE "[Channel x]\nType=sink\nType=\n",
       "t.conf:9: [Channel x]: missing required key Type=\n"},
      {BASE "[Channel x]\nType=fax\n",
       "t.conf:10: Type=fax: unknown channel type (expected sink, smtp, sms or webhook)\n"},
      {BASE "[Ops]\nAlertChannel=pager\n",
       "t.conf:10: AlertChannel=pager: no [Channel pager] section\n"},
  };
  run_cases(cases, ELEMENTSOF(cases), NULL);
}

/* ---- tiers ---- */

static void test_tiers(void **state) {
  _cleanup_(config_freep) struct config *c = load_ok("[Policy p]\n"
                                                     "Segments=*\n"
                                                     "Tiers=a b\n"
                                                     "[Tier a]\n"
                                                     "Offset=-P60D\n"
                                                     "Channels=c\n"
                                                     "[Tier b]\n"
                                                     "Offset=-PT36H\n"
                                                     "Repeat=FREQ=DAILY;COUNT=3\n"
                                                     "Channels=c d\n"
                                                     "Fallback=e\n"
                                                     "Audience=owner\n"
                                                     "Template=custom\n"
                                                     "EscalateAfter=2\n"
                                                     "EscalateTo=boss@example.com\n"
                                                     "[Channel c]\nType=sink\n"
                                                     "[Channel d]\nType=sms\n"
                                                     "[Channel e]\nType=webhook\n");
  const struct policy *p = config_policy(c, "p");
  assert_non_null(p);
  assert_int_equal(p->n_tiers, 2);
  const struct tier *a = &p->tiers[0], *b = &p->tiers[1];
  assert_string_equal(a->name, "a");
  assert_true(a->offset.negative);
  assert_int_equal(a->offset.days, 60);
  assert_int_equal(a->offset.seconds, 0);
  assert_null(a->repeat);
  assert_null(a->rrule);
  assert_int_equal(a->n_channels, 1);
  assert_int_equal(a->n_fallback, 0);
  assert_int_equal(a->audience, AUDIENCE_CUSTOMER);
  assert_string_equal(a->template_name, "a"); /* defaults to the tier name */
  assert_int_equal(a->escalate_after, 0);
  assert_null(a->escalate_to);
  assert_string_equal(b->name, "b");
  assert_int_equal(b->offset.days, 0);
  assert_int_equal(b->offset.seconds, 36 * 3600);
  assert_string_equal(b->repeat, "FREQ=DAILY;COUNT=3");
  assert_non_null(b->rrule);
  assert_int_equal(b->n_channels, 2);
  assert_string_equal(b->channels[1], "d");
  assert_int_equal(b->n_fallback, 1);
  assert_string_equal(b->fallback[0], "e");
  assert_int_equal(b->audience, AUDIENCE_OWNER);
  assert_string_equal(b->template_name, "custom");
  assert_int_equal(b->escalate_after, 2);
  assert_string_equal(b->escalate_to, "boss@example.com");
}

static void test_tier_errors(void **state) {
#define OFFSET_ERR ": invalid duration (RFC 5545, e.g. -P60D, -PT12H, P1D)\n"
  static const struct error_case cases[] = {
      {BASE "[Tier x]\nChannels=c\n", "t.conf:9: [Tier x]: missing required key Offset=\n"},
      {BASE "[Tier x]\nOffset=-P1D\n", "t.conf:9: [Tier x]: missing required key Channels=\n"},
      {BASE "[Tier x]\n", "t.conf:9: [Tier x]: missing required key Offset=\n"
                          "t.conf:9: [Tier x]: missing required key Channels=\n"},
      {BASE "[Tier t]\nOffset=\n", "t.conf:4: [Tier t]: missing required key Offset=\n"},
      {BASE "[Tier t]\nOffset=60D\n", "t.conf:10: Offset=60D" OFFSET_ERR},
      {BASE "[Tier t]\nOffset=-P\n", "t.conf:10: Offset=-P" OFFSET_ERR},
      {BASE "[Tier t]\nChannels=c c\n", "t.conf:10: Channels=c c: \"c\" is listed twice\n"},
      {BASE "[Tier t]\nChannels=c nope\n",
       "t.conf:10: Channels=c nope: no [Channel nope] section\n"},
      {BASE "[Tier t]\nFallback=c\n", "t.conf:10: Fallback=c: \"c\" is also in Channels=\n"},
      {BASE "[Tier t]\nFallback=x x\n", "t.conf:10: Fallback=x x: \"x\" is listed twice\n"
                                        "t.conf:10: Fallback=x x: no [Channel x] section\n"},
      {BASE "[Tier t]\nFallback=pager\n",
       "t.conf:10: Fallback=pager: no [Channel pager] section\n"},
      {BASE "[Tier t]\nAudience=boss\n", "t.conf:10: Audience=boss: expected customer or owner\n"},
      {BASE "[Tier t]\nTemplate=../etc/passwd\n",
       "t.conf:10: Template=../etc/passwd: invalid template name, use up to 64 letters, digits, "
       "'_', '-' or '.'\n"},
      {BASE "[Tier t]\nEscalateAfter=x\n",
       "t.conf:10: EscalateAfter=x: expected a non-negative integer\n"},
      {BASE "[Tier t]\nEscalateAfter=-1\nEscalateTo=boss\n",
       "t.conf:10: EscalateAfter=-1: expected a non-negative integer\n"},
      {BASE "[Tier t]\nEscalateAfter=99999999999\nEscalateTo=boss\n",
       "t.conf:10: EscalateAfter=99999999999: expected a non-negative integer\n"},
      {BASE "[Tier t]\nEscalateAfter=2\n", "t.conf:10: EscalateAfter=2: needs EscalateTo=\n"},
      {BASE "[Tier t]\nEscalateTo=boss\n",
       "t.conf:10: EscalateTo=boss: needs EscalateAfter= greater than 0\n"},
      {BASE "[Tier t]\nEscalateAfter=0\nEscalateTo=boss\n",
       "t.conf:11: EscalateTo=boss: needs EscalateAfter= greater than 0\n"},
      /* a tier used by no policy is still checked */
      {BASE "[Tier unused]\nOffset=bad\nChannels=c\n", "t.conf:10: Offset=bad" OFFSET_ERR},
  };
  run_cases(cases, ELEMENTSOF(cases), NULL);

  /* The RRULE message is libical's (via cal); check the prefix and place. */
  struct config_errors e = {0};
  struct config *c = NULL;
  assert_int_equal(
      config_load_string("t.conf", BASE "[Tier t]\nRepeat=FREQ=SOMETIMES\n", NULL, &c, &e),
      -EINVAL);
  assert_int_equal(e.n, 1);
  assert_int_equal(e.v[0].line, 10);
  assert_string_equal(e.v[0].file, "t.conf");
  const char prefix[] = "Repeat=FREQ=SOMETIMES: ";
  assert_int_equal(strncmp(e.v[0].message, prefix, strlen(prefix)), 0);
  assert_true(strlen(e.v[0].message) > strlen(prefix));
  config_errors_clear(&e);
}

/* ---- policies ---- */

static void test_policy_defaults(void **state) {
  _cleanup_(config_freep) struct config *c = load_ok(BASE);
  assert_int_equal(c->n_policies, 1);
  const struct policy *p = c->policies[0];
  assert_string_equal(p->name, "p");
  assert_int_equal(p->n_segments, 1);
  assert_string_equal(p->segments[0], "*");
  assert_int_equal(p->catchup, CATCHUP_LATEST);
  assert_null(p->fallback_owner);
  assert_null(p->owner_window);
  assert_int_equal(p->callback_pause, 7 * 86400);
  assert_int_equal(p->lapse_grace, 30 * 86400);
  assert_int_equal(p->n_tiers, 1);
}

static void test_policy_values(void **state) {
  _cleanup_(config_freep) struct config *c = load_ok(BASE "[Policy p]\n"
                                                          "CatchUp=all\n"
                                                          "FallbackOwner=desk\n"
                                                          "OwnerSendWindow=owners\n"
                                                          "CallbackPause=3d\n"
                                                          "LapseGrace=0\n"
                                                          "[SendWindow owners]\n"
                                                          "[Policy q]\n"
                                                          "Segments=smb vip\n"
                                                          "Tiers=t\n"
                                                          "CatchUp=skip\n");
  const struct policy *p = config_policy(c, "p");
  assert_int_equal(p->catchup, CATCHUP_ALL);
  assert_string_equal(p->fallback_owner, "desk");
  assert_string_equal(p->owner_window, "owners");
  assert_int_equal(p->callback_pause, 3 * 86400);
  assert_int_equal(p->lapse_grace, 0);
  const struct policy *q = config_policy(c, "q");
  assert_int_equal(q->catchup, CATCHUP_SKIP);
  assert_ptr_equal(c->policies[1], q);
  assert_null(config_policy(c, "nope"));
  /* Tiers are deep copies: each policy has its own. */
  assert_ptr_not_equal(p->tiers, q->tiers);
  assert_ptr_not_equal(p->tiers[0].name, q->tiers[0].name);
  assert_string_equal(q->tiers[0].name, "t");
}

static void test_policy_errors(void **state) {
  static const struct error_case cases[] = {
      {BASE "[Policy q]\nTiers=t\n", "t.conf:9: [Policy q]: missing required key Segments=\n"},
      {BASE "[Policy q]\nSegments=smb\n", "t.conf:9: [Policy q]: missing required key Tiers=\n"},
      {BASE "[Policy p]\nCatchUp=maybe\n",
       "t.conf:10: CatchUp=maybe: expected latest, all or skip\n"},
      {BASE "[Policy p]\nTiers=t nope\n", "t.conf:10: Tiers=t nope: no [Tier nope] section\n"},
      {BASE "[Policy p]\nTiers=t t\n", "t.conf:10: Tiers=t t: \"t\" is listed twice\n"},
      {BASE "[Policy p]\nSegments=* *\n", "t.conf:10: Segments=* *: \"*\" is listed twice\n"},
      {BASE "[Policy p]\nOwnerSendWindow=nope\n",
       "t.conf:10: OwnerSendWindow=nope: no [SendWindow nope] section\n"},
      {BASE "[SendWindow]\n[Policy p]\nOwnerSendWindow=default\n",
       "t.conf:11: OwnerSendWindow=default: no [SendWindow default] section\n"},
      {BASE "[Policy p]\nCallbackPause=soon\n",
       "t.conf:10: CallbackPause=soon: invalid time span (e.g. 48h, 1h30min, 2d, PT48H)\n"},
      {BASE "[Policy p]\nLapseGrace=-1d\n",
       "t.conf:10: LapseGrace=-1d: invalid time span (e.g. 48h, 1h30min, 2d, PT48H)\n"},
      /* security: bounded, so expiry + span cannot overflow int64 */
      {BASE "[Policy p]\nLapseGrace=3651d\n",
       "t.conf:10: LapseGrace=3651d: must be at most 3650d\n"},
      {BASE "[Policy p]\nLapseGrace=9223372036854775807\n",
       "t.conf:10: LapseGrace=9223372036854775807: must be at most 3650d\n"},
      {BASE "[Policy p]\nCallbackPause=100000w\n",
       "t.conf:10: CallbackPause=100000w: must be at most 3650d\n"},
      /* tiers must ascend by offset */
      {"[Policy p]\nSegments=*\nTiers=late early\n"
       "[Tier early]\nOffset=-P60D\nChannels=c\n"
       "[Tier late]\nOffset=-P7D\nChannels=c\n"
       "[Channel c]\nType=sink\n",
       "t.conf:3: Tiers=late early: tier \"early\" (Offset=-P60D) comes after tier \"late\" "
       "(Offset=-P7D); list tiers by ascending offset\n"},
      /* -PT200H is longer than -P7D */
      {"[Policy p]\nSegments=*\nTiers=a b\n"
       "[Tier a]\nOffset=-P7D\nChannels=c\n"
       "[Tier b]\nOffset=-PT200H\nChannels=c\n"
       "[Channel c]\nType=sink\n",
       "t.conf:3: Tiers=a b: tier \"b\" (Offset=-PT200H) comes after tier \"a\" (Offset=-P7D); "
       "list tiers by ascending offset\n"},
      /* a broken tier does not cascade into the policy */
      {BASE "[Tier t]\nOffset=x\n", "t.conf:10: Offset=x: invalid duration (RFC 5545, e.g. -P60D, "
                                    "-PT12H, P1D)\n"},
  };
  run_cases(cases, ELEMENTSOF(cases), NULL);
  /* equal offsets are fine, and so are positive ones after negative ones */
  _cleanup_(config_freep) struct config *c = load_ok("[Policy p]\nSegments=*\nTiers=a b d\n"
                                                     "[Tier a]\nOffset=-P1D\nChannels=c\n"
                                                     "[Tier b]\nOffset=-PT24H\nChannels=c\n"
                                                     "[Tier d]\nOffset=P1D\nChannels=c\n"
                                                     "[Channel c]\nType=sink\n");
  assert_int_equal(c->policies[0]->n_tiers, 3);
}

static void test_too_many_tiers(void **state) {
  struct buf b = {0};
  assert_int_equal(buf_puts(&b, "[Policy p]\nSegments=*\nTiers="), 0);
  for (int i = 0; i < 65; i++)
    assert_int_equal(buf_printf(&b, "%st%02d", i ? " " : "", i), 0);
  assert_int_equal(buf_puts(&b, "\n[Channel c]\nType=sink\n"), 0);
  for (int i = 0; i < 65; i++)
    assert_int_equal(buf_printf(&b, "[Tier t%02d]\nOffset=-P%dD\nChannels=c\n", i, 100 - i), 0);
  struct config_errors e = {0};
  struct config *c = NULL;
  assert_int_equal(config_load_string("t.conf", b.data, NULL, &c, &e), -EINVAL);
  assert_int_equal(e.n, 1);
  assert_int_equal(e.v[0].line, 3);
  assert_non_null(strstr(e.v[0].message, " t64: more than 64 tiers"));
  config_errors_clear(&e);
  buf_free(&b);
}

static void test_segments(void **state) {
  _cleanup_(config_freep) struct config *c = load_ok(BASE "[Policy ent]\n"
                                                          "Segments=enterprise high-value\n"
                                                          "Tiers=t\n");
  const struct policy *p = config_policy(c, "p"), *ent = config_policy(c, "ent");
  assert_ptr_equal(config_policy_for_segment(c, "enterprise"), ent);
  assert_ptr_equal(config_policy_for_segment(c, "high-value"), ent);
  assert_ptr_equal(config_policy_for_segment(c, "smb"), p);
  assert_ptr_equal(config_policy_for_segment(c, "Enterprise"), p); /* case matters */
  assert_ptr_equal(config_policy_for_segment(c, ""), p);
  assert_ptr_equal(config_policy_for_segment(c, NULL), p);
  assert_null(config_policy_for_segment(NULL, "x"));
}

static void test_segment_errors(void **state) {
  static const struct error_case cases[] = {
      {BASE "[Policy q]\nSegments=smb *\nTiers=t\n",
       "t.conf:10: Segments=smb *: segment \"*\" is already claimed by [Policy p] (t.conf:2)\n"},
      {BASE "[Policy q]\nSegments=a\nTiers=t\n[Policy r]\nSegments=b a\nTiers=t\n",
       "t.conf:13: Segments=b a: segment \"a\" is already claimed by [Policy q] (t.conf:10)\n"},
      /* a later assignment moves the claim: p now claims "x" after q did */
      {BASE "[Policy q]\nSegments=x\nTiers=t\n[Policy p]\nSegments=* x\n",
       "t.conf:13: Segments=* x: segment \"x\" is already claimed by [Policy q] (t.conf:10)\n"},
      {"[Policy p]\nSegments=smb\nTiers=t\n[Tier t]\nOffset=-P1D\nChannels=c\n"
       "[Channel c]\nType=sink\n",
       "t.conf:1: no policy for the default segment: add Segments=* to one [Policy NAME] "
       "section\n"},
      {"", "t.conf:1: no policy for the default segment: add Segments=* to one [Policy NAME] "
           "section\n"},
      {"# only a comment\n",
       "t.conf:1: no policy for the default segment: add Segments=* to one [Policy NAME] "
       "section\n"},
  };
  run_cases(cases, ELEMENTSOF(cases), NULL);
}

/* ---- merging and resets inside one file ---- */

static void test_merge_and_reset(void **state) {
  _cleanup_(config_freep) struct config *c = load_ok("[Daemon]\n"
                                                     "Horizon=1h\n"
                                                     "Listen=127.0.0.1:1\n" BASE "[Daemon]\n"
                                                     "Horizon=2h\n"
                                                     "Listen=\n"
                                                     "[Tier t]\n"
                                                     "Audience=owner\n"
                                                     "Offset=-P2D\n"
                                                     "[Policy p]\n"
                                                     "CatchUp=skip\n"
                                                     "CatchUp=\n");
  assert_int_equal(c->daemon.horizon, 7200);
  assert_string_equal(c->daemon.listen, "127.0.0.1:8787"); /* reset to the default */
  assert_int_equal(c->daemon.listen_port, 8787);
  const struct tier *t = &c->policies[0]->tiers[0];
  assert_int_equal(t->offset.days, 2);
  assert_int_equal(t->audience, AUDIENCE_OWNER);
  assert_int_equal(c->policies[0]->catchup, CATCHUP_LATEST);
  /* A bad value overridden later is not an error: only effective values count. */
  _cleanup_(config_freep) struct config *c2 = load_ok("[Daemon]\nHorizon=junk\nHorizon=3h\n" BASE);
  assert_int_equal(c2->daemon.horizon, 3 * 3600);
}

/* Every error is collected, sorted by line, not only the first. */
static void test_all_errors_collected(void **state) {
  expect_errors("[Daemon]\n"        /* 1 */
                "Horizon=x\n"       /* 2 */
                "Bogus=1\n"         /* 3 */
                "[Policy p]\n"      /* 4 */
                "Segments=*\n"      /* 5 */
                "Tiers=t missing\n" /* 6 */
                "CatchUp=often\n"   /* 7 */
                "[Tier t]\n"        /* 8 */
                "Offset=-P1D\n"     /* 9 */
                "Channels=c fax\n"  /* 10 */
                "[Channel c]\n"     /* 11 */
                "Type=pigeon\n"     /* 12 */
                "[Weird]\n"         /* 13 */
                "oops\n"            /* 14 */
                "[Tier u]\n",       /* 15 */
                "t.conf:2: Horizon=x: invalid time span (e.g. 48h, 1h30min, 2d, PT48H)\n"
                "t.conf:3: unknown key Bogus= in [Daemon]\n"
                "t.conf:6: Tiers=t missing: no [Tier missing] section\n"
                "t.conf:7: CatchUp=often: expected latest, all or skip\n"
                "t.conf:10: Channels=c fax: no [Channel fax] section\n"
                "t.conf:12: Type=pigeon: unknown channel type (expected sink, smtp, sms or "
                "webhook)\n"
                "t.conf:13: unknown section [Weird]\n"
                "t.conf:14: expected [Section] or Key=Value, got \"oops\"\n"
                "t.conf:15: [Tier u]: missing required key Offset=\n"
                "t.conf:15: [Tier u]: missing required key Channels=\n");
}

/* ---- files and drop-ins ---- */

struct tmpdir {
  char path[64];
};

static void write_file(const char *dir, const char *name, const char *text) {
  _cleanup_free_ char *p = strprintf("%s/%s", dir, name);
  FILE *f = fopen(p, "we");
  assert_non_null(f);
  fputs(text, f);
  assert_int_equal(fclose(f), 0);
}

static void rm_rf(const char *path) {
  _cleanup_free_ char *cmd = strprintf("rm -rf '%s'", path);
  assert_int_equal(system(cmd), 0);
}

static char *make_tmpdir(void) {
  char *d = strdup("/tmp/renewd-test-config-XXXXXX");
  assert_non_null(mkdtemp(d));
  return d;
}

static void test_dropins(void **state) {
  _cleanup_free_ char *dir = make_tmpdir();
  write_file(dir, "renewd.conf", "[Daemon]\nHorizon=3h\nRefillInterval=5min\n" BASE);
  _cleanup_free_ char *dd = strprintf("%s/renewd.conf.d", dir);
  assert_int_equal(mkdir(dd, 0755), 0);
  /* read in lexical order: 10-a, 20-b, 20-c, then later ones win */
  write_file(dd, "20-b.conf", "[Daemon]\nHorizon=2h\n[Tier t]\nAudience=owner\n");
  write_file(dd, "10-a.conf", "[Daemon]\nHorizon=1h\nRefillInterval=\nDatabase=/srv/a.db\n");
  write_file(dd, "20-c.conf", "[Channel c]\nMaildir=/srv/mail\n");
  write_file(dd, "30-ignored.conf.disabled", "garbage\n");
  write_file(dd, ".hidden.conf", "garbage\n");
  write_file(dd, "README", "garbage\n");
  _cleanup_free_ char *main_path = strprintf("%s/renewd.conf", dir);

  struct config_errors e = {0};
  _cleanup_(config_freep) struct config *c = NULL;
  assert_int_equal(config_load(main_path, NULL, &c, &e), 0);
  assert_int_equal(e.n, 0);
  assert_int_equal(c->n_files, 4);
  assert_string_equal(c->files[0], main_path);
  _cleanup_free_ char *f1 = strprintf("%s/10-a.conf", dd);
  _cleanup_free_ char *f2 = strprintf("%s/20-b.conf", dd);
  _cleanup_free_ char *f3 = strprintf("%s/20-c.conf", dd);
  assert_string_equal(c->files[1], f1);
  assert_string_equal(c->files[2], f2);
  assert_string_equal(c->files[3], f3);
  assert_int_equal(c->daemon.horizon, 7200);        /* 20-b beats 10-a beats main */
  assert_int_equal(c->daemon.refill_interval, 600); /* reset by 10-a */
  assert_string_equal(c->daemon.database, "/srv/a.db");
  assert_int_equal(c->policies[0]->tiers[0].audience, AUDIENCE_OWNER); /* merged section */
  const struct config_kv *kv = config_channel_lookup(config_channel(c, "c"), "Maildir");
  assert_string_equal(kv->value, "/srv/mail");
  assert_string_equal(kv->file, f3);
  assert_int_equal(kv->line, 2);

  /* Errors name the drop-in and its line, after the main file's errors. */
  write_file(dd, "15-bad.conf", "\n[Daemon]\nListen=nowhere\n");
  /* Horizon=soon is overridden by 20-b.conf: only effective values are checked. */
  write_file(dir, "renewd.conf", "[Daemon]\nHorizon=soon\nTemplates=rel\n" BASE);
  struct config *c2 = NULL;
  assert_int_equal(config_load(main_path, NULL, &c2, &e), -EINVAL);
  assert_null(c2);
  _cleanup_free_ char *got = errors_text(&e);
  _cleanup_free_ char *want = strprintf(
      "%s:3: Templates=rel: must be an absolute path\n"
      "%s/15-bad.conf:3: Listen=nowhere: expected HOST:PORT or [IPv6]:PORT with a port in "
      "1..65535\n",
      main_path, dd);
  assert_string_equal(got, want);
  config_errors_clear(&e);

  /* The default-policy error points at the main file, line 1. */
  write_file(dir, "renewd.conf", "# nothing\n");
  write_file(dd, "15-bad.conf", BASE "[Policy p]\nSegments=smb\n");
  assert_int_equal(config_load(main_path, NULL, &c2, &e), -EINVAL);
  assert_int_equal(e.n, 1);
  assert_string_equal(e.v[0].file, main_path);
  assert_int_equal(e.v[0].line, 1);
  config_errors_clear(&e);
  rm_rf(dir);
}

static void test_io_errors(void **state) {
  _cleanup_free_ char *dir = make_tmpdir();
  _cleanup_free_ char *main_path = strprintf("%s/renewd.conf", dir);
  struct config_errors e = {0};
  struct config *c = NULL;

  /* Missing main file: -ENOENT, reported with line 0 ("file: message"). */
  assert_int_equal(config_load(main_path, NULL, &c, &e), -ENOENT);
  assert_null(c);
  _cleanup_free_ char *got = errors_text(&e);
  _cleanup_free_ char *want = strprintf("%s: No such file or directory\n", main_path);
  assert_string_equal(got, want);
  assert_int_equal(e.v[0].line, 0);
  config_errors_clear(&e);

  /* A drop-in that cannot be read (a directory): its errno, plus the syntax
   * errors of the others, but no validation of the partial config. */
  write_file(dir, "renewd.conf", "[Policy p]\n");
  _cleanup_free_ char *dd = strprintf("%s/renewd.conf.d", dir);
  assert_int_equal(mkdir(dd, 0755), 0);
  _cleanup_free_ char *sub = strprintf("%s/50-dir.conf", dd);
  assert_int_equal(mkdir(sub, 0755), 0);
  write_file(dd, "60-x.conf", "junk\n");
  assert_int_equal(config_load(main_path, NULL, &c, &e), -EISDIR);
  assert_null(c);
  free(got);
  got = errors_text(&e);
  free(want);
  want = strprintf("%s: Is a directory\n%s/60-x.conf:1: expected [Section] or Key=Value, got "
                   "\"junk\"\n",
                   sub, dd);
  assert_string_equal(got, want);
  config_errors_clear(&e);

  /* The drop-in path is a file, not a directory: no drop-ins. */
  rm_rf(dd);
  write_file(dir, "renewd.conf.d", "");
  write_file(dir, "renewd.conf", BASE);
  assert_int_equal(config_load(main_path, NULL, &c, &e), 0);
  assert_int_equal(c->n_files, 1);
  c = config_free(c);

  /* NUL bytes are refused. */
  _cleanup_free_ char *p = strprintf("%s/renewd.conf", dir);
  FILE *f = fopen(p, "we");
  assert_non_null(f);
  fwrite("[Daemon]\n\0x\n", 1, 12, f);
  fclose(f);
  assert_int_equal(config_load(main_path, NULL, &c, &e), -EINVAL);
  assert_int_equal(e.n, 1);
  assert_string_equal(e.v[0].message, "file contains a NUL byte");
  config_errors_clear(&e);

  /* errs may be NULL; arguments are checked. */
  assert_int_equal(config_load(main_path, NULL, &c, NULL), -EINVAL);
  assert_int_equal(config_load(NULL, NULL, &c, &e), -EINVAL);
  assert_int_equal(config_load_string("x", NULL, NULL, &c, &e), -EINVAL);
  assert_int_equal(e.n, 0);
  rm_rf(dir);
}

/* Errors are appended: earlier ones in errs are kept, and config_errors_add()
 * lets callers add their own. */
static void test_errors_api(void **state) {
  struct config_errors e = {0};
  assert_int_equal(config_errors_add(&e, "a.conf", 3, "mine %d", 1), 0);
  struct config *c = NULL;
  assert_int_equal(config_load_string("t.conf", "[X]\n", NULL, &c, &e), -EINVAL);
  _cleanup_free_ char *got = errors_text(&e);
  assert_string_equal(got, "a.conf:3: mine 1\n"
                           "t.conf:1: unknown section [X]\n"
                           "t.conf:1: no policy for the default segment: add Segments=* to one "
                           "[Policy NAME] section\n");
  config_errors_clear(&e);
  /* Control characters (say, from a quoted file) never split an error line. */
  assert_int_equal(config_errors_add(&e, "f", 1, "a\nb\tc"), 0);
  assert_string_equal(e.v[0].message, "a b c");
  config_errors_clear(&e);
  config_errors_clear(NULL);
  assert_null(config_free(NULL));
}

/* ---- the policy table ---- */

static void test_print_policies(void **state) {
  _cleanup_(config_freep) struct config *c = load_ok("[Policy standard]\n"
                                                     "Segments=smb *\n"
                                                     "Tiers=notice escalation\n"
                                                     "CatchUp=all\n"
                                                     "[Policy vip]\n"
                                                     "Segments=enterprise\n"
                                                     "Tiers=notice\n"
                                                     "[Tier notice]\n"
                                                     "Offset=-P60D\n"
                                                     "Channels=email\n"
                                                     "Fallback=sms\n"
                                                     "[Tier escalation]\n"
                                                     "Offset=-P3D\n"
                                                     "Repeat=FREQ=DAILY;COUNT=3\n"
                                                     "Channels=email sms\n"
                                                     "Audience=owner\n"
                                                     "Template=esc\n"
                                                     "EscalateAfter=2\n"
                                                     "EscalateTo=boss\n"
                                                     "[Channel email]\nType=sink\n"
                                                     "[Channel sms]\nType=sink\n");
  char *s = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&s, &n);
  config_print_policies(c, f);
  fclose(f);
  assert_string_equal(
      s, "POLICY    SEGMENTS    CATCH-UP  TIER        OFFSET  REPEAT              CHANNELS   "
         "FALLBACK  AUDIENCE  TEMPLATE  ESCALATE\n"
         "standard  smb *       all       notice      -P60D   -                   email      "
         "sms       customer  notice    -\n"
         "                                escalation  -P3D    FREQ=DAILY;COUNT=3  email sms  "
         "-         owner     esc       after 2 to boss\n"
         "vip       enterprise  latest    notice      -P60D   -                   email      "
         "sms       customer  notice    -\n");
  free(s);
}

/* ---- the shipped example ---- */

static unsigned line_of(const char *text, const char *needle) {
  const char *p = strstr(text, needle);
  assert_non_null(p);
  unsigned line = 1;
  for (const char *q = text; q < p; q++)
    line += *q == '\n';
  return line;
}

static void check_example(const struct config *c) {
  assert_int_equal(c->n_policies, 2);
  const struct policy *std = config_policy(c, "standard"), *ent = config_policy(c, "enterprise");
  assert_non_null(std);
  assert_non_null(ent);
  assert_ptr_equal(config_policy_for_segment(c, "smb"), std);
  assert_ptr_equal(config_policy_for_segment(c, "unknown-segment"), std);
  assert_ptr_equal(config_policy_for_segment(c, "high-value"), ent);
  assert_int_equal(std->n_tiers, 5);
  assert_int_equal(ent->n_tiers, 6);
  assert_string_equal(std->tiers[0].name, "notice");
  assert_int_equal(std->tiers[0].offset.days, 60);
  assert_string_equal(std->tiers[1].repeat, "FREQ=WEEKLY;COUNT=3");
  assert_int_equal(std->tiers[2].n_channels, 2);
  const struct tier *esc = &std->tiers[3];
  assert_int_equal(esc->audience, AUDIENCE_OWNER);
  assert_int_equal(esc->escalate_after, 2);
  assert_string_equal(esc->escalate_to, "head-of-sales");
  assert_false(std->tiers[4].offset.negative);
  assert_int_equal(ent->tiers[0].offset.days, 90);
  assert_string_equal(std->owner_window, "owners");
  assert_non_null(config_window(c, "owners"));
  assert_string_equal(config_channel(c, "sink")->type, "sink");
  assert_string_equal(config_channel(c, "email")->type, "smtp");
  assert_string_equal(config_channel_get(config_channel(c, "sms"), "Provider"), "twilio");
  assert_string_equal(c->alert_channel, "ops");
  assert_string_equal(c->daemon.time_zone, "Europe/Berlin");
  /* Every policy survives the snapshot text. */
  for (size_t i = 0; i < c->n_policies; i++) {
    _cleanup_free_ char *s = ladder_serialize(c->policies[i]);
    _cleanup_(policy_freep) struct policy *q = NULL;
    assert_int_equal(ladder_parse(s, &q), 0);
    assert_true(ladder_equal(c->policies[i], q));
  }
}

static void test_example(void **state) {
  _cleanup_free_ char *text = NULL;
  assert_int_equal(read_full_file(EXAMPLE_CONF, 1 << 20, &text, NULL), 0);
  _cleanup_free_ char *dir = make_tmpdir();
  write_file(dir, "renewd.conf", text);
  _cleanup_free_ char *main_path = strprintf("%s/renewd.conf", dir);
  struct config_errors e = {0};

  /* Without a cal: holidays are not read, so the example is valid as is. */
  _cleanup_(config_freep) struct config *c = NULL;
  assert_int_equal(config_load(main_path, NULL, &c, &e), 0);
  check_example(c);

  /* With a cal, /etc/renewd/holidays.ics must exist: it does not here. */
  struct config *c2 = NULL;
  assert_int_equal(config_load(main_path, the_cal, &c2, &e), -EINVAL);
  assert_int_equal(e.n, 2);
  assert_int_equal(e.v[0].line, line_of(text, "Holidays=/etc/renewd/holidays.ics"));
  assert_int_equal(strncmp(e.v[0].message, "Holidays=/etc/renewd/holidays.ics: ", 35), 0);
  config_errors_clear(&e);

  /* A drop-in points the windows at the shipped example holidays. */
  _cleanup_free_ char *dd = strprintf("%s/renewd.conf.d", dir);
  assert_int_equal(mkdir(dd, 0755), 0);
  write_file(dd, "50-test.conf",
             "[SendWindow]\nHolidays=" EXAMPLE_ICS "\n"
             "[SendWindow owners]\nHolidays=" EXAMPLE_ICS "\n");
  _cleanup_(config_freep) struct config *c3 = NULL;
  assert_int_equal(config_load(main_path, the_cal, &c3, &e), 0);
  assert_int_equal(e.n, 0);
  check_example(c3);
  const struct config_window *w = config_window(c3, NULL);
  assert_non_null(w->window.holidays);
  assert_true(cal_is_holiday(w->window.holidays, 2030, 1, 1));
  assert_true(cal_is_holiday(w->window.holidays, 2030, 10, 3));
  assert_false(cal_is_holiday(w->window.holidays, 2030, 10, 4));
  assert_ptr_equal(config_window(c3, "owners")->window.holidays, w->window.holidays);

  /* And the table lists every tier of both policies. */
  char *s = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&s, &n);
  config_print_policies(c3, f);
  fclose(f);
  unsigned lines = 0;
  for (char *p = s; *p; p++)
    lines += *p == '\n';
  assert_int_equal(lines, 1 + 5 + 6);
  assert_non_null(strstr(s, "enterprise high-value"));
  free(s);
  rm_rf(dir);
}

static int setup(void **state) {
  return cal_new(&the_cal) < 0 ? -1 : 0;
}
static int teardown(void **state) {
  the_cal = cal_free(the_cal);
  return 0;
}

/* ---- [HTTP]: the listener's limits ---- */

static void test_http_limits(void **state) {
  _cleanup_(config_freep) struct config *c = load_ok(BASE);
  assert_int_equal(c->http.max_connections, 256);
  assert_int_equal(c->http.max_per_client, 64);
  assert_int_equal(c->http.request_timeout, 5);
  _cleanup_(config_freep) struct config *c2 =
      load_ok("[HTTP]\nMaxConnections=1000\nMaxConnectionsPerClient=0\nRequestTimeout=1min\n" BASE);
  assert_int_equal(c2->http.max_connections, 1000);
  assert_int_equal(c2->http.max_per_client, 0);
  assert_int_equal(c2->http.request_timeout, 60);
  static const struct error_case cases[] = {
      {BASE "[HTTP]\nMaxConnections=8\n",
       "t.conf:10: MaxConnections=8: expected an integer in 16..10000\n"},
      {BASE "[HTTP]\nMaxConnections=-1\n",
       "t.conf:10: MaxConnections=-1: expected an integer in 16..10000\n"},
      {BASE "[HTTP]\nMaxConnectionsPerClient=many\n",
       "t.conf:10: MaxConnectionsPerClient=many: expected an integer in 0..10000\n"},
      {BASE "[HTTP]\nMaxConnections=32\nMaxConnectionsPerClient=33\n",
       "t.conf:11: MaxConnectionsPerClient=33: must not exceed MaxConnections= (32)\n"},
      {BASE "[HTTP]\nRequestTimeout=0\n",
       "t.conf:10: RequestTimeout=0: must be greater than zero\n"},
      {BASE "[HTTP]\nRequestTimeout=10min\n", "t.conf:10: RequestTimeout=10min: at most 5min\n"},
      {BASE "[HTTP]\nTimeout=5\n", "t.conf:10: unknown key Timeout= in [HTTP]\n"},
  };
  run_cases(cases, ELEMENTSOF(cases), NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_http_limits),
      cmocka_unit_test(test_syntax_errors),
      cmocka_unit_test(test_syntax_accepted),
      cmocka_unit_test(test_section_errors),
      cmocka_unit_test(test_daemon_defaults),
      cmocka_unit_test(test_daemon_values),
      cmocka_unit_test(test_daemon_errors),
      cmocka_unit_test(test_secret_shapes),
      cmocka_unit_test(test_timespan),
      cmocka_unit_test(test_windows),
      cmocka_unit_test(test_window_errors),
      cmocka_unit_test(test_channels),
      cmocka_unit_test(test_channel_errors),
      cmocka_unit_test(test_tiers),
      cmocka_unit_test(test_tier_errors),
      cmocka_unit_test(test_policy_defaults),
      cmocka_unit_test(test_policy_values),
      cmocka_unit_test(test_policy_errors),
      cmocka_unit_test(test_too_many_tiers),
      cmocka_unit_test(test_segments),
      cmocka_unit_test(test_segment_errors),
      cmocka_unit_test(test_merge_and_reset),
      cmocka_unit_test(test_all_errors_collected),
      cmocka_unit_test(test_dropins),
      cmocka_unit_test(test_io_errors),
      cmocka_unit_test(test_errors_api),
      cmocka_unit_test(test_print_policies),
      cmocka_unit_test(test_example),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
