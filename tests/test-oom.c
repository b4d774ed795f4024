/* Out-of-memory paths (STYLE.md convention 12), through tests/oom.c.
 *
 * For each operation: run it once counting our allocations (C), then for
 * N = 0, 1, ... (every N up to OOM_DENSE, then spread so that at most about
 * OOM_MAX_RUNS runs happen) make allocation N fail, once (and in a second
 * pass, N and every later one), and check that the operation either succeeds
 * with the exact output of the clean run or fails with -ENOMEM (or the error
 * the operation documents for it) leaving its outputs untouched and no
 * partial state behind; a final run at N = C must not hit the failure. Leaks
 * on the failure paths are found by the sanitizer build (LeakSanitizer).
 * Allocations made inside shared libraries (libical, sqlite3, OpenSSL, libc)
 * are not failed; jansson's are (json_set_alloc_funcs).
 *
 * Each operation is a run function that does its set-up and checks paused
 * (oom_pause) and resumes the harness only around the calls under test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <ftw.h>
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "core/cal.h"
#include "core/csv.h"
#include "core/ladder.h"
#include "core/policy.h"
#include "core/store.h"
#include "core/util.h"
#include "core/validate.h"
#include "notifiers/email.h"
#include "notifiers/linkkey.h"
#include "notifiers/mime.h"
#include "notifiers/sign.h"
#include "notifiers/smstext.h"
#include "notifiers/catalogue.h"
#include "notifiers/templates.h"
#include "notifiers/tmpl.h"
#include "oom.h"

#define EXAMPLE_CONF TEST_SRC_DIR "/../config/renewd.conf.example"
#define EXAMPLE_ICS TEST_SRC_DIR "/../config/holidays.example.ics"

#define OOM_DENSE 200     /* every allocation index below this is failed */
#define OOM_MAX_RUNS 1000 /* beyond, indexes are spread to about this many runs */

/* Sentinel stored in ret_* pointers: must survive a failed call. */
#define UNTOUCHED ((void *)0x5eed)

/* ---- the driver ------------------------------------------------------------ */

struct oom_case {
  const char *name;
  int (*run)(void *ud); /* one complete run; checks its results itself */
  void *ud;
  int other_err; /* an error besides -ENOMEM the operation may return on OOM (0 = none) */
};

static unsigned long runs_total;

/* Checks one run's result; returns true when it succeeded although an
 * allocation failed (the operation had a fallback; its output was checked). */
static bool oom_check(const struct oom_case *c, unsigned long n, bool sticky, int r, bool hit) {
  runs_total++;
  if (r >= 0)
    return hit;
  if (!hit)
    fail_msg("%s: failed with %d (%s) although no allocation failed (N=%lu%s)", c->name, r,
             strerror(-r), n, sticky ? "+" : "");
  if (r != -ENOMEM && (c->other_err == 0 || r != c->other_err))
    fail_msg("%s: allocation %lu%s failed: returned %d (%s), want -ENOMEM", c->name, n,
             sticky ? "+" : "", r, strerror(-r));
  return false;
}

/* Runs c once per failing allocation index, in both modes. For debugging,
 * OOM_CASE=name runs the failing runs of that case only, OOM_AT=N only
 * those at index N. */
static void oom_run_case(const struct oom_case *c) {
  const char *only = getenv("OOM_CASE"), *at = getenv("OOM_AT");
  oom_count_start();
  oom_pause();
  int r = c->run(c->ud);
  unsigned long total = oom_count();
  oom_reset();
  if (r < 0)
    fail_msg("%s: clean run failed: %d (%s)", c->name, r, strerror(-r));

  if (only && !streq(only, c->name))
    return;
  unsigned long step = 1, survived = 0;
  if (total > OOM_MAX_RUNS)
    step = (total - OOM_DENSE) / (OOM_MAX_RUNS - OOM_DENSE) + 1;
  for (int sticky = 0; sticky <= 1; sticky++) {
    for (unsigned long n = 0; n < total; n += n < OOM_DENSE ? 1 : step) {
      if (at && strtoul(at, NULL, 10) != n)
        continue;
      if (sticky)
        oom_fail_from(n);
      else
        oom_fail_after(n);
      oom_pause();
      r = c->run(c->ud);
      bool hit = oom_failed();
      oom_reset();
      survived += oom_check(c, n, sticky, r, hit);
    }
  }
  /* One past the last allocation: nothing fails, the run must succeed. */
  oom_fail_after(total);
  oom_pause();
  r = c->run(c->ud);
  bool hit = oom_failed();
  oom_reset();
  if (hit || r < 0)
    fail_msg("%s: run with no failure: r=%d hit=%d (allocation count not stable?)", c->name, r,
             hit);
  print_message("%-32s %4lu allocations, %4lu runs survived a failure\n", c->name, total, survived);
}

static void oom_run(const char *name, int (*run)(void *ud), void *ud) {
  oom_run_case(&(struct oom_case){.name = name, .run = run, .ud = ud});
}

/* ---- shared fixtures ------------------------------------------------------- */

static char tmpdir[] = "/tmp/renewd-test-oom-XXXXXX";
static char *example_text;  /* renewd.conf.example */
static char *example_local; /* the same with Holidays= pointing at TMPDIR/h.ics */

static int write_file(const char *rel, const char *text) {
  _cleanup_free_ char *path = strprintf("%s/%s", tmpdir, rel);
  if (!path)
    return -ENOMEM;
  for (char *p = strchr(path + strlen(tmpdir) + 1, '/'); p; p = strchr(p + 1, '/')) {
    *p = 0;
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
      return -errno;
    *p = '/';
  }
  FILE *f = fopen(path, "we");
  if (!f)
    return -errno;
  fputs(text, f);
  return fclose(f) == 0 ? 0 : -EIO;
}

static char *replace_all(const char *s, const char *from, const char *to) {
  struct buf b = {0};
  for (const char *p; (p = strstr(s, from)); s = p + strlen(from)) {
    buf_append(&b, s, (size_t)(p - s));
    buf_puts(&b, to);
  }
  buf_puts(&b, s);
  return buf_steal(&b);
}

static int setup(void **state) {
  if (!mkdtemp(tmpdir))
    return -1;
  if (read_full_file(EXAMPLE_CONF, 1 << 20, &example_text, NULL) < 0)
    return -1;
  /* a small calendar: the example one takes milliseconds per load through
   * libical, too slow for a thousand loads (it is tested in test_cal) */
  if (write_file("h.ics", "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n"
                          "BEGIN:VEVENT\r\nUID:a@t\r\nDTSTART;VALUE=DATE:20271225\r\n"
                          "DTEND;VALUE=DATE:20271227\r\nEND:VEVENT\r\n"
                          "BEGIN:VEVENT\r\nUID:b@t\r\nDTSTART;VALUE=DATE:20270101\r\n"
                          "RRULE:FREQ=YEARLY;COUNT=3\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n") < 0)
    return -1;
  _cleanup_free_ char *ics = strprintf("%s/h.ics", tmpdir);
  example_local = replace_all(example_text, "/etc/renewd/holidays.ics", ics);
  /* jansson's allocations go through the harness too */
  json_set_alloc_funcs(oom_malloc, free);
  return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  return remove(path);
}

static int teardown(void **state) {
  free(example_text);
  free(example_local);
  print_message("%lu runs in all\n", runs_total);
  return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Policy table of a config, for comparing configs. Caller frees. */
static char *policies_text(const struct config *c) {
  char *s = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&s, &n);
  assert_non_null(f);
  config_print_policies(c, f);
  fprintf(f, "db=%s tz=%s windows=%zu channels=%zu alert=%s\n", c->daemon.database,
          c->daemon.time_zone, c->n_windows, c->n_channels, c->alert_channel);
  for (size_t i = 0; i < c->n_windows; i++)
    fprintf(f, "window %s %u-%u %u hol=%d\n", c->windows[i].name ? c->windows[i].name : "-",
            c->windows[i].window.start_min, c->windows[i].window.end_min, c->windows[i].window.days,
            c->windows[i].window.holidays != NULL);
  for (size_t i = 0; i < c->n_channels; i++)
    for (size_t j = 0; j < c->channels[i].n_options; j++)
      fprintf(f, "%s.%s=%s\n", c->channels[i].name, c->channels[i].options[j].key,
              c->channels[i].options[j].value);
  fclose(f);
  return s;
}

/* ---- config ------------------------------------------------------------------ */

struct config_case {
  const char *text; /* config_load_string() text, or NULL: config_load(path) */
  const char *path; /* main file for config_load() */
  bool with_cal;    /* pass a fresh struct cal */
  char *expect;     /* policies_text() of the clean run, filled by the first run */
};

static int run_config(void *ud) {
  struct config_case *cc = ud;
  _cleanup_(config_errors_clear) struct config_errors e = {0};
  struct cal *cal = NULL;
  if (cc->with_cal)
    assert_int_equal(cal_new(&cal), 0);
  struct config *c = UNTOUCHED;
  oom_resume();
  int r = cc->text ? config_load_string("renewd.conf", cc->text, cal, &c, &e)
                   : config_load(cc->path, cal, &c, &e);
  oom_pause();
  if (r < 0) {
    assert_ptr_equal(c, UNTOUCHED);
  } else {
    _cleanup_free_ char *t = policies_text(c);
    if (!cc->expect)
      cc->expect = strdup(t);
    else
      assert_string_equal(t, cc->expect);
    assert_int_equal(e.n, 0);
    config_free(c);
  }
  cal_free(cal);
  return r;
}

static void test_config_string(void **state) {
  struct config_case cc = {.text = example_text};
  oom_run("config_load_string", run_config, &cc);
  free(cc.expect);
}

static void test_config_string_cal(void **state) {
  struct config_case cc = {.text = example_local, .with_cal = true};
  oom_run("config_load_string+cal", run_config, &cc);
  free(cc.expect);
}

static void test_config_dropins(void **state) {
  assert_int_equal(write_file("conf/renewd.conf", example_local), 0);
  assert_int_equal(write_file("conf/renewd.conf.d/10-window.conf",
                              "[SendWindow]\nHours=08:00-17:00\n"
                              "[Channel sms]\nRatePerMinute=30\n"),
                   0);
  assert_int_equal(write_file("conf/renewd.conf.d/20-policy.conf",
                              "[Policy standard]\nCallbackPause=3d\n[Tier final]\nOffset=-P10D\n"),
                   0);
  _cleanup_free_ char *path = strprintf("%s/conf/renewd.conf", tmpdir);
  struct config_case cc = {.path = path, .with_cal = true};
  oom_run("config_load+drop-ins", run_config, &cc);
  assert_non_null(strstr(cc.expect, "window - 480-1020"));
  free(cc.expect);

  /* the same main file without a drop-in directory */
  assert_int_equal(write_file("plain/renewd.conf", example_local), 0);
  _cleanup_free_ char *plain = strprintf("%s/plain/renewd.conf", tmpdir);
  struct config_case pc = {.path = plain, .with_cal = true};
  oom_run("config_load (no drop-ins)", run_config, &pc);
  assert_non_null(strstr(pc.expect, "window - 540-1080"));
  free(pc.expect);
}

/* Every error of a config_errors as text. Caller frees. */
static char *errors_text(const struct config_errors *e) {
  char *s = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&s, &n);
  assert_non_null(f);
  config_errors_print(e, f);
  fclose(f);
  return s;
}

struct config_bad_case {
  const char *text;
  char *expect; /* errors_text() of the clean run */
};

/* An invalid config: -EINVAL with exactly the errors of the clean run, or
 * -ENOMEM; never a config. */
static int run_config_bad(void *ud) {
  struct config_bad_case *cc = ud;
  _cleanup_(config_errors_clear) struct config_errors e = {0};
  struct cal *cal = NULL;
  assert_int_equal(cal_new(&cal), 0);
  struct config *c = UNTOUCHED;
  oom_resume();
  int r = config_load_string("bad.conf", cc->text, cal, &c, &e);
  oom_pause();
  assert_ptr_equal(c, UNTOUCHED);
  cal_free(cal);
  if (r == -EINVAL) {
    _cleanup_free_ char *t = errors_text(&e);
    if (!cc->expect)
      cc->expect = strdup(t);
    else
      assert_string_equal(t, cc->expect);
    return oom_failed() ? r : 0; /* the clean run "succeeds" with -EINVAL */
  }
  return r;
}

static void test_config_errors(void **state) {
  _cleanup_free_ char *text =
      strprintf("%s\n[Daemon]\nHorizon=forever\nTimeZone=Mars/Olympus\nListen=nohost\n"
                "[SendWindow late]\nHours=25:00-26:00\nDays=Funday\nHolidays=relative.ics\n"
                "[Tier bogus]\nOffset=soon\nRepeat=FREQ=SOMETIMES\nChannels=nope email email\n"
                "Fallback=email\nAudience=cat\nEscalateTo=boss\n"
                "[Policy p2]\nSegments=smb vip\nTiers=zzz bogus final notice\nCatchUp=never\n"
                "OwnerSendWindow=none\n[Ops]\nAlertChannel=pager\n[Unknown x]\nKey=1\n",
                example_local);
  struct config_bad_case cc = {.text = text};
  oom_run_case(&(struct oom_case){.name = "config_load_string (errors)",
                                  .run = run_config_bad,
                                  .ud = &cc,
                                  .other_err = -EINVAL});
  assert_non_null(strstr(cc.expect, "bad.conf:"));
  assert_non_null(strstr(cc.expect, "unknown time zone"));
  assert_non_null(strstr(cc.expect, "no [Tier zzz] section"));
  free(cc.expect);
}

/* ---- ladder ------------------------------------------------------------------ */

struct ladder_case {
  const struct policy *p;
  const char *text; /* ladder_serialize(p) of a clean run */
};

static int run_ladder_serialize(void *ud) {
  struct ladder_case *lc = ud;
  oom_resume();
  char *s = ladder_serialize(lc->p);
  oom_pause();
  if (!s)
    return -ENOMEM;
  assert_string_equal(s, lc->text);
  free(s);
  return 0;
}

static int run_ladder_parse(void *ud) {
  struct ladder_case *lc = ud;
  struct policy *p = UNTOUCHED;
  oom_resume();
  int r = ladder_parse(lc->text, &p);
  oom_pause();
  if (r < 0) {
    assert_ptr_equal(p, UNTOUCHED);
    return r;
  }
  assert_true(ladder_equal(p, lc->p));
  policy_free(p);
  return 0;
}

static int run_policy_copy(void *ud) {
  struct ladder_case *lc = ud;
  struct policy *p = UNTOUCHED;
  oom_resume();
  int r = policy_copy(lc->p, &p);
  oom_pause();
  if (r < 0) {
    assert_ptr_equal(p, UNTOUCHED);
    return r;
  }
  assert_true(ladder_equal(p, lc->p));
  policy_free(p);
  return 0;
}

static int run_ladder_parse_bad(void *ud) {
  struct policy *p = UNTOUCHED;
  oom_resume();
  int r = ladder_parse(ud, &p);
  oom_pause();
  assert_ptr_equal(p, UNTOUCHED);
  if (r == -EINVAL && !oom_failed())
    return 0;
  return r;
}

static void test_ladder(void **state) {
  static const char *const bad[] = {
      ("ladder/1 policy=p catchup=latest tier=a offset=-P1D channels=x,y audience=customer "
       "repeat=FREQ%3DNEVER"),
      "ladder/1 policy=p tier=a offset=-P1D channels=x tier=b offset=bogus",
      "ladder/1 policy=p tier=a offset=-P1D channels=x,y channels=z",
  };
  for (size_t i = 0; i < ELEMENTSOF(bad); i++)
    oom_run_case(&(struct oom_case){.name = "ladder_parse (bad)",
                                    .run = run_ladder_parse_bad,
                                    .ud = (void *)bad[i],
                                    .other_err = -EINVAL});

  _cleanup_(config_errors_clear) struct config_errors e = {0};
  _cleanup_(config_freep) struct config *c = NULL;
  assert_int_equal(config_load_string("renewd.conf", example_text, NULL, &c, &e), 0);
  for (size_t i = 0; i < c->n_policies; i++) {
    _cleanup_free_ char *text = ladder_serialize(c->policies[i]);
    assert_non_null(text);
    struct ladder_case lc = {c->policies[i], text};
    oom_run("ladder_serialize", run_ladder_serialize, &lc);
    oom_run("ladder_parse", run_ladder_parse, &lc);
    oom_run("policy_copy", run_policy_copy, &lc);
  }
}

/* ---- tmpl ---------------------------------------------------------------------- */

static const char *tmpl_text =
    "{{=<% %>=}}<%! comment %>Dear <%name%>,<%={{ }}=%>\n"
    "{{#contracts}}\n"
    "  * {{id}}: {{product}} expires {{expires}}{{#value}} ({{value}} {{currency}}){{/value}}\n"
    "{{/contracts}}\n"
    "{{^contracts}}nothing{{/contracts}}\n"
    "{{#owner}}{{>owner}}{{/owner}}\n"
    "{{<layout}}{{$body}}Body for {{name}} & co{{/body}}{{/layout}}\n"
    "{{>*which}}|{{a.b.c}}|{{{raw}}}|{{&raw}}|{{#list}}{{.}},{{/list}}\n";

static const char *tmpl_partial(void *ud, const char *name) {
  if (streq(name, "owner"))
    return "  owner: {{name}} <{{email}}>\n  {{>sig}}\n";
  if (streq(name, "sig"))
    return "-- {{company}}\n";
  if (streq(name, "layout"))
    return "== {{$title}}Notice{{/title}} ==\n{{$body}}{{/body}}\n";
  if (streq(name, "dyn"))
    return "dynamic {{name}}";
  return NULL;
}

static json_t *tmpl_data(void) {
  json_error_t je;
  json_t *d = json_loads(
      "{\"name\": \"Zoë <Z>\", \"company\": \"ACME\", \"which\": \"dyn\","
      " \"raw\": \"<b>\", \"a\": {\"b\": {\"c\": 3.25}}, \"list\": [1, \"two\", true, null],"
      " \"owner\": {\"name\": \"Olga\", \"email\": \"olga@example.com\"},"
      " \"contracts\": [{\"id\": \"C-1\", \"product\": \"Pro\", \"expires\": \"1 March 2027\","
      "   \"value\": \"12.50\", \"currency\": \"EUR\"},"
      "  {\"id\": \"C-2\", \"product\": \"Basic\", \"expires\": \"2 March 2027\", \"value\": "
      "\"\"}]}",
      0, &je);
  assert_non_null(d);
  return d;
}

struct tmpl_case {
  json_t *data;
  bool compiled; /* tmpl_compile() then tmpl_render_compiled(), else tmpl_render() */
  bool escape;
  char *expect;
};

static int run_tmpl(void *ud) {
  struct tmpl_case *tc = ud;
  struct tmpl_partials parts = {.get = tmpl_partial};
  char err[128] = "";
  char *out = UNTOUCHED;
  int r;
  if (tc->compiled) {
    struct tmpl *t = UNTOUCHED;
    oom_resume();
    r = tmpl_compile(tmpl_text, &t, err, sizeof err);
    oom_pause();
    if (r < 0) {
      assert_ptr_equal(t, UNTOUCHED);
      return r;
    }
    oom_resume();
    r = tmpl_render_compiled(t, tc->data, &parts, tc->escape, &out, err, sizeof err);
    oom_pause();
    tmpl_free(t);
  } else {
    oom_resume();
    r = tmpl_render(tmpl_text, tc->data, &parts, tc->escape, &out, err, sizeof err);
    oom_pause();
  }
  if (r < 0) {
    assert_ptr_equal(out, UNTOUCHED);
    return r;
  }
  if (!tc->expect)
    tc->expect = out;
  else {
    assert_string_equal(out, tc->expect);
    free(out);
  }
  return 0;
}

/* Partials compiled on demand into a small cache owned by the test. */
struct compiled_partials {
  struct tmpl *t[4];
  const char *names[4];
};

static int get_compiled(void *ud, const char *name, const struct tmpl **ret, char *err,
                        size_t errlen) {
  struct compiled_partials *cp = ud;
  *ret = NULL;
  for (size_t i = 0; i < 4; i++) {
    if (cp->names[i] && streq(cp->names[i], name)) {
      *ret = cp->t[i];
      return 0;
    }
    if (!cp->names[i]) {
      const char *text = tmpl_partial(NULL, name);
      if (!text)
        return 0;
      int r = tmpl_compile(text, &cp->t[i], err, errlen);
      if (r < 0)
        return r;
      cp->names[i] = name;
      *ret = cp->t[i];
      return 0;
    }
  }
  return -E2BIG;
}

static int count_partial(void *ud, const char *name, unsigned line) {
  (*(unsigned *)ud)++;
  return 0;
}

static int run_tmpl_compiled_partials(void *ud) {
  struct tmpl_case *tc = ud;
  struct compiled_partials cp = {0};
  struct tmpl_partials parts = {.get_compiled = get_compiled, .ud = &cp};
  char err[128] = "";
  struct tmpl *t = UNTOUCHED;
  char *out = UNTOUCHED;
  oom_resume();
  int r = tmpl_compile(tmpl_text, &t, err, sizeof err);
  if (r >= 0)
    r = tmpl_render_compiled(t, tc->data, &parts, false, &out, err, sizeof err);
  oom_pause();
  if (r >= 0) {
    unsigned n = 0;
    oom_resume();
    r = tmpl_foreach_partial(t, count_partial, &n);
    oom_pause();
    assert_int_equal(r, 0);
    assert_int_equal(n, 2); /* {{>owner}} {{<layout}}; {{>*which}} is dynamic */
  }
  if (r < 0)
    assert_ptr_equal(out, UNTOUCHED);
  else {
    assert_string_equal(out, tc->expect);
    free(out);
  }
  if (t != UNTOUCHED)
    tmpl_free(t);
  for (size_t i = 0; i < 4; i++)
    tmpl_free(cp.t[i]);
  return r;
}

struct tmpl_bad_case {
  const char *text;
  char expect[128]; /* err of the clean run */
};

static const char *bad_partial(void *ud, const char *name) {
  return streq(name, "p") ? "ok {{#open}} never closed" : NULL;
}

static int run_tmpl_bad(void *ud) {
  struct tmpl_bad_case *bc = ud;
  struct tmpl_partials parts = {.get = bad_partial};
  char err[128] = "";
  char *out = UNTOUCHED;
  json_t *d = json_pack("{s:[i,i]}", "open", 1, 2);
  assert_non_null(d);
  oom_resume();
  int r = tmpl_render(bc->text, d, &parts, false, &out, err, sizeof err);
  oom_pause();
  json_decref(d);
  assert_ptr_equal(out, UNTOUCHED);
  if (r == -EINVAL) {
    if (!oom_failed())
      snprintf(bc->expect, sizeof bc->expect, "%s", err);
    else
      assert_string_equal(err, bc->expect);
    return oom_failed() ? r : 0;
  }
  return r;
}

static void test_tmpl(void **state) {
  static const char *const bad[] = {
      "a {{#x}}b{{/y}} c",
      "{{#open}}x {{>p}}{{/open}}",
      "{{=<< >>=}} <<#a>> {{b}} <</a>> <<={{ }}=>> {{/c}}",
  };
  for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
    struct tmpl_bad_case bc = {.text = bad[i]};
    oom_run_case(&(struct oom_case){.name = "tmpl_render (syntax error)",
                                    .run = run_tmpl_bad,
                                    .ud = &bc,
                                    .other_err = -EINVAL});
    assert_true(strlen(bc.expect) > 0);
  }

  json_t *d = tmpl_data();
  for (int i = 0; i < 3; i++) {
    struct tmpl_case tc = {.data = d, .compiled = i != 1, .escape = i == 2};
    oom_run(i == 1 ? "tmpl_render" : "tmpl_compile+render_compiled", run_tmpl, &tc);
    assert_non_null(strstr(tc.expect, "C-1: Pro expires 1 March 2027 (12.50 EUR)"));
    assert_non_null(strstr(tc.expect, "  owner: Olga <olga@example.com>\n  -- ACME\n"));
    assert_non_null(strstr(tc.expect, "dynamic Zo"));
    assert_non_null(strstr(tc.expect, "|3.25|<b>|<b>|1,two,true,,"));
    if (i == 0)
      oom_run("tmpl get_compiled partials", run_tmpl_compiled_partials, &tc);
    free(tc.expect);
  }
  json_decref(d);
}

/* ---- templates ----------------------------------------------------------------- */

static const struct {
  const char *path, *text;
} template_files[] = {
    {"tpl/en/notice.subject.mustache", "Your contract {{contract}} expires on {{expires}}"},
    {"tpl/en/notice.text.mustache",
     "Hello {{name}},\n{{#items}}- {{.}}\n{{/items}}your contract {{contract}} expires.\n"
     "{{>footer}}"},
    {"tpl/en/notice.html.mustache", "<p>Hello {{name}},</p>\n{{<layout}}{{$b}}x{{/b}}{{/layout}}"},
    {"tpl/en/partials/footer.mustache", "-- \n{{company}}\n{{>sig}}"},
    {"tpl/en/partials/sig.mustache", "EN-SIG"},
    {"tpl/en/partials/layout.mustache", "[{{$b}}{{/b}}] {{>sig}}"},
    {"tpl/zh/notice.text.mustache", "{{name}}，您好：\n合同 {{contract}} 即将到期。\n{{>footer}}"},
    {"tpl/zh/partials/footer.mustache", "—— {{company}} {{>sig}}\n"},
    {"tpl/de_CH/README", "not a template"},
};

struct templates_case {
  json_t *data;
  const char *locale, *name, *part;
  struct templates *shared; /* reused handle (cache filled across runs), or NULL */
  char *expect;
  char expect_locale[16];
};

static int run_templates(void *ud) {
  struct templates_case *tc = ud;
  _cleanup_free_ char *dir = strprintf("%s/tpl", tmpdir);
  char err[256] = "";
  struct templates *t = tc->shared;
  int r;
  if (!t) {
    t = UNTOUCHED;
    oom_resume();
    r = templates_open(dir, &t, err, sizeof err);
    oom_pause();
    if (r < 0) {
      assert_ptr_equal(t, UNTOUCHED);
      return r;
    }
  }
  char *out = UNTOUCHED;
  const char *loc = UNTOUCHED;
  oom_resume();
  r = templates_render(t, tc->locale, tc->name, tc->part, tc->data, &out, &loc, err, sizeof err);
  oom_pause();
  if (r < 0) {
    assert_ptr_equal(out, UNTOUCHED);
    assert_ptr_equal(loc, UNTOUCHED);
    if (tc->shared) {
      /* a failure is not cached: the same handle renders fine afterwards */
      char *again = NULL;
      assert_int_equal(templates_render(t, tc->locale, tc->name, tc->part, tc->data, &again, NULL,
                                        err, sizeof err),
                       0);
      assert_string_equal(again, tc->expect);
      free(again);
      templates_free(t);
      assert_int_equal(templates_open(dir, &tc->shared, err, sizeof err), 0);
    }
  } else {
    if (!tc->expect) {
      tc->expect = out;
      snprintf(tc->expect_locale, sizeof tc->expect_locale, "%s", loc);
      out = NULL;
    } else {
      assert_string_equal(out, tc->expect);
      assert_string_equal(loc, tc->expect_locale);
    }
    free(out);
    if (tc->shared) {
      /* start the next run from an empty cache again */
      templates_free(t);
      assert_int_equal(templates_open(dir, &tc->shared, err, sizeof err), 0);
    }
  }
  if (!tc->shared)
    templates_free(t);
  return r;
}

struct check_case {
  struct buf problems; /* "file:line: msg" lines of one run */
  char *expect;        /* of the clean run */
};

static void on_problem(void *ud, const char *file, unsigned line, const char *msg) {
  struct check_case *cc = ud;
  const char *rel = strstr(file, "/tpl/");
  oom_pause(); /* the test's own bookkeeping */
  buf_printf(&cc->problems, "%s:%u: %s\n", rel ? rel : file, line, msg);
  oom_resume();
}

static int run_templates_check(void *ud) {
  struct check_case *cc = ud;
  _cleanup_free_ char *dir = strprintf("%s/tpl", tmpdir);
  struct templates *t = NULL;
  assert_int_equal(templates_open(dir, &t, NULL, 0), 0);
  buf_reset(&cc->problems);
  oom_resume();
  int r = templates_check(t, on_problem, cc);
  oom_pause();
  templates_free(t);
  if (r == -EINVAL) {
    _cleanup_free_ char *got = buf_steal(&cc->problems);
    if (!cc->expect)
      cc->expect = TAKE_PTR(got);
    else
      assert_string_equal(got, cc->expect);
    return oom_failed() ? r : 0;
  }
  return r;
}

static void test_templates(void **state) {
  for (size_t i = 0; i < ELEMENTSOF(template_files); i++)
    assert_int_equal(write_file(template_files[i].path, template_files[i].text), 0);
  json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:[s,s]}", "name", "Zoë", "contract", "C-1",
                        "expires", "1 March 2027", "company", "ACME", "items", "a", "b");
  assert_non_null(d);
  static const struct {
    const char *locale, *part, *expect, *expect_locale;
  } cases[] = {
      {"en", "text", "Hello Zoë,\n- a\n- b\nyour contract C-1 expires.\n-- \nACME\nEN-SIG", "en"},
      {"zh-Hant-TW", "text", "Zoë，您好：\n合同 C-1 即将到期。\n—— ACME EN-SIG\n", "zh"},
      {"de-CH", "html", "<p>Hello Zoë,</p>\n[x] EN-SIG", "en"},
      {NULL, "subject", "Your contract C-1 expires on 1 March 2027", "en"},
  };
  _cleanup_free_ char *dir = strprintf("%s/tpl", tmpdir);
  for (size_t i = 0; i < ELEMENTSOF(cases); i++)
    for (int shared = 0; shared <= 1; shared++) {
      struct templates_case tc = {
          .data = d, .locale = cases[i].locale, .name = "notice", .part = cases[i].part};
      if (shared)
        assert_int_equal(templates_open(dir, &tc.shared, NULL, 0), 0);
      oom_run(shared ? "templates_render(cached)" : "templates_open+render", run_templates, &tc);
      assert_string_equal(tc.expect, cases[i].expect);
      assert_string_equal(tc.expect_locale, cases[i].expect_locale);
      free(tc.expect);
      templates_free(tc.shared);
    }
  json_decref(d);

  /* a broken template and a missing partial: templates_check() reports both */
  assert_int_equal(write_file("tpl/en/broken.text.mustache", "x {{#a}} y"), 0);
  assert_int_equal(write_file("tpl/zh/lost.text.mustache", "{{>nowhere}} {{<neither}}{{/neither}}"),
                   0);
  struct check_case cc = {0};
  oom_run_case(&(struct oom_case){
      .name = "templates_check", .run = run_templates_check, .ud = &cc, .other_err = -EINVAL});
  assert_non_null(strstr(cc.expect, "broken.text.mustache"));
  assert_non_null(strstr(cc.expect, "nowhere"));
  free(cc.expect);
  buf_free(&cc.problems);
  char path[256];
  snprintf(path, sizeof path, "%s/tpl/en/broken.text.mustache", tmpdir);
  unlink(path);
  snprintf(path, sizeof path, "%s/tpl/zh/lost.text.mustache", tmpdir);
  unlink(path);
}

/* ---- csv ------------------------------------------------------------------------ */

static const char csv_text[] = "\xef\xbb\xbf"
                               "contract_id,customer_name,note\r\n"
                               "C-1,\"Smith, John\",\"say \"\"hi\"\"\"\r\n"
                               "\r\n"
                               "C-2,\"multi\nline\",\n"
                               "C-3,plain,\"\"\n";

static int run_csv(void *ud) {
  FILE *f = fmemopen((void *)csv_text, sizeof csv_text - 1, "r");
  assert_non_null(f);
  struct csv_reader *rd = UNTOUCHED;
  oom_resume();
  int r = csv_open(f, &rd);
  oom_pause();
  if (r < 0) {
    assert_ptr_equal(rd, UNTOUCHED);
    fclose(f);
    return r;
  }
  static const char *want[4][3] = {{"contract_id", "customer_name", "note"},
                                   {"C-1", "Smith, John", "say \"hi\""},
                                   {"C-2", "multi\nline", ""},
                                   {"C-3", "plain", ""}};
  static const unsigned lines[4] = {1, 2, 4, 6};
  size_t i = 0;
  for (;;) {
    struct csv_record rec = {.n = 99};
    oom_resume();
    r = csv_next(rd, &rec);
    oom_pause();
    if (r <= 0) {
      if (r < 0)
        assert_int_equal(rec.n, 99);
      break;
    }
    assert_true(i < 4);
    assert_int_equal(rec.n, 3);
    assert_int_equal(rec.line, lines[i]);
    for (size_t j = 0; j < 3; j++)
      assert_string_equal(rec.fields[j], want[i][j]);
    i++;
  }
  if (r == 0)
    assert_int_equal(i, 4);
  csv_free(rd);
  fclose(f);
  return r;
}

/* One record of 40 fields, one of them 10000 bytes with quotes: the record
 * and field buffers grow. */
static int run_csv_big(void *ud) {
  const char *text = ud;
  FILE *f = fmemopen((void *)text, strlen(text), "r");
  assert_non_null(f);
  struct csv_reader *rd = NULL;
  assert_int_equal(csv_open(f, &rd), 0);
  struct csv_record rec = {.n = 99};
  oom_resume();
  int r = csv_next(rd, &rec);
  oom_pause();
  if (r < 0) {
    assert_int_equal(rec.n, 99);
    /* sticky: the reader does not resynchronise in the middle of a record */
    assert_int_equal(csv_next(rd, &rec), r);
  } else {
    assert_int_equal(r, 1);
    assert_int_equal(rec.n, 40);
    assert_int_equal(rec.lens[39], 10000 - 100);
    assert_int_equal(csv_next(rd, &rec), 0);
  }
  csv_free(rd);
  fclose(f);
  return r;
}

static void test_csv(void **state) {
  oom_run("csv", run_csv, NULL);
  struct buf b = {0};
  for (int i = 0; i < 39; i++)
    buf_printf(&b, "f%d,", i);
  buf_puts(&b, "\"");
  for (int i = 0; i < 100; i++)
    buf_puts(&b, "\"\"");
  for (int i = 0; i < 10000 - 200; i++)
    buf_puts(&b, "x");
  buf_puts(&b, "\"\r\n");
  oom_run("csv (record growth)", run_csv_big, b.data);
  buf_free(&b);
}

/* ---- validate ------------------------------------------------------------------- */

struct validate_case {
  struct cal *cal;    /* shared: zones stay cached (set-up, not under test) */
  struct validate *v; /* shared validator (scratch buffer grows across rows), or NULL */
};

static int run_validate(void *ud) {
  struct validate_case *vc = ud;
  struct cal *cal = NULL;
  struct validate *v = vc->v;
  int r;
  if (!v) {
    assert_int_equal(cal_new(&cal), 0);
    v = UNTOUCHED;
    oom_resume();
    r = validate_new(cal, "Europe/Berlin", &v);
    oom_pause();
    if (r < 0) {
      assert_ptr_equal(v, UNTOUCHED);
      cal_free(cal);
      return r;
    }
  }
  const char *fields[_VCOL_MAX] = {
      [VCOL_CONTRACT_ID] = " C-1 ",
      [VCOL_CUSTOMER_ID] = "K-1",
      [VCOL_CUSTOMER_NAME] = "Zoë Smith",
      [VCOL_EMAIL] = "zoe@example.com",
      [VCOL_PHONE] = "+44 20 7946 0958",
      [VCOL_TIMEZONE] = "America/New_York",
      [VCOL_LOCALE] = "en-GB",
      [VCOL_SEGMENT] = "smb",
      [VCOL_OWNER] = "o-1",
      [VCOL_PRODUCT] = "Pro plan",
      [VCOL_STARTS_ON] = "2026-03-01",
      [VCOL_EXPIRES_ON] = "2027-02-28",
      [VCOL_VALUE] = "1200.5",
      [VCOL_CURRENCY] = "EUR",
  };
  struct customer cu = {.id = UNTOUCHED};
  struct contract co = {.id = UNTOUCHED};
  struct validate_problems pr;
  oom_resume();
  r = validate_row(v, fields, &cu, &co, &pr);
  oom_pause();
  if (r < 0) {
    assert_ptr_equal(cu.id, UNTOUCHED);
    assert_ptr_equal(co.id, UNTOUCHED);
  } else {
    assert_int_equal(r, 0);
    assert_string_equal(co.id, "C-1");
    assert_string_equal(cu.phone, "+442079460958");
    assert_string_equal(cu.tz, "America/New_York");
    assert_int_equal(co.value_minor, 120050);
    assert_int_equal(co.expires_at, 1803877200); /* 2027-03-01T00:00-05:00 */
  }
  if (!vc->v) {
    validate_free(v);
    cal_free(cal);
  }
  return r;
}

static int run_validate_problems(void *ud) {
  struct validate_case *vc = ud;
  const char *fields[_VCOL_MAX] = {
      [VCOL_CONTRACT_ID] = "C-2",    [VCOL_CUSTOMER_ID] = "K-2",
      [VCOL_EMAIL] = "bob@",         [VCOL_TIMEZONE] = "Mars/Olympus",
      [VCOL_LOCALE] = "english!",    [VCOL_EXPIRES_ON] = "2027-02-30",
      [VCOL_VALUE] = "-1",           [VCOL_CURRENCY] = "eur",
      [VCOL_PRODUCT] = "ok product", [VCOL_SEGMENT] = "smb",
  };
  struct validate_problems pr = {0};
  struct contract co = {.id = UNTOUCHED};
  oom_resume();
  int r = validate_row(vc->v, fields, NULL, &co, &pr);
  oom_pause();
  assert_ptr_equal(co.id, UNTOUCHED);
  if (r >= 0) {
    assert_int_equal(r, 6);
    assert_int_equal(pr.n, 6);
    assert_int_equal(pr.p[0].col, VCOL_EMAIL);
    assert_string_equal(pr.p[1].message, "unknown time zone 'Mars/Olympus'");
  }
  return r;
}

static void test_validate(void **state) {
  struct validate_case vc = {0};
  oom_run("validate_new+row", run_validate, &vc);
  assert_int_equal(cal_new(&vc.cal), 0);
  assert_int_equal(validate_new(vc.cal, NULL, &vc.v), 0);
  oom_run("validate_row", run_validate, &vc);
  oom_run("validate_row (problems)", run_validate_problems, &vc);
  validate_free(vc.v);
  cal_free(vc.cal);
}

/* ---- policy: no allocation at all ----------------------------------------------- */

#define POLICY_WALK_MAX 1024

struct policy_case {
  const struct config *c;
  struct cal *cal;           /* warm cal (zone tables filled), or NULL: a fresh one per run */
  struct policy_action *ref; /* actions of the clean run */
  size_t n_ref;
};

/* policy_next() for every policy over 170 days, half a day apart. A fresh
 * cal's zone tables fill lazily inside (and fall back to libical when that
 * allocation fails): the actions must be the same either way. */
static int run_policy(void *ud) {
  struct policy_case *pc = ud;
  const struct config *c = pc->c;
  struct cal *cal = pc->cal;
  if (!cal)
    assert_int_equal(cal_new(&cal), 0);
  const struct cal_zone *z = cal_zone(cal, "Europe/Berlin");
  assert_non_null(z);
  int64_t expires = 1803855600; /* 2027-03-01T00:00+01:00 */
  struct policy_sent sent[] = {{"notice", 0}, {"reminder", 1}};
  struct policy_action *acts = calloc(POLICY_WALK_MAX, sizeof *acts);
  size_t n = 0;
  for (size_t i = 0; i < c->n_policies; i++)
    for (int64_t now = expires - 100 * 86400; now < expires + 70 * 86400; now += 86400 / 2) {
      struct policy_input in = {
          .policy = c->policies[i],
          .expires_at = expires,
          .state = CONTRACT_REMINDING,
          .customer_zone = z,
          .customer_window = &config_window(c, NULL)->window,
          .owner_window = &config_window(c, "owners")->window,
          .sent = sent,
          .n_sent = now > expires - 40 * 86400 ? 2 : 0,
          .now = now,
          .catchup_grace = 86400,
      };
      assert_true(n < POLICY_WALK_MAX);
      oom_resume();
      int r = policy_next(&in, &acts[n]);
      oom_pause();
      assert_int_equal(r, 0);
      n++;
    }
  if (!pc->ref) {
    pc->ref = acts;
    pc->n_ref = n;
  } else {
    assert_int_equal(n, pc->n_ref);
    for (size_t i = 0; i < n; i++) {
      assert_int_equal(acts[i].kind, pc->ref[i].kind);
      assert_int_equal(acts[i].due_at, pc->ref[i].due_at);
      assert_int_equal(acts[i].tier, pc->ref[i].tier);
      assert_int_equal(acts[i].step, pc->ref[i].step);
    }
    free(acts);
  }
  if (!pc->cal)
    cal_free(cal);
  return 0;
}

static void test_policy(void **state) {
  _cleanup_(config_errors_clear) struct config_errors e = {0};
  _cleanup_(config_freep) struct config *c = NULL;
  struct cal *cal = NULL;
  assert_int_equal(cal_new(&cal), 0);
  assert_int_equal(config_load_string("renewd.conf", example_local, cal, &c, &e), 0);
  struct policy_case pc = {.c = c};
  oom_run("policy_next (cold zone)", run_policy, &pc);
  size_t reminds = 0;
  for (size_t i = 0; i < pc.n_ref; i++)
    reminds += pc.ref[i].kind == POLICY_REMIND;
  assert_true(reminds > 10);
  /* with the zone's tables filled, the engine itself never allocates */
  pc.cal = cal;
  oom_pause();
  run_policy(&pc);
  oom_count_start();
  oom_pause();
  run_policy(&pc);
  unsigned long n = oom_count();
  oom_reset();
  assert_int_equal(n, 0);
  free(pc.ref);
  config_free(TAKE_PTR(c));
  cal_free(cal);
}

/* ---- cal ------------------------------------------------------------------------ */

static int run_cal_zone(void *ud) {
  struct cal *cal = UNTOUCHED;
  oom_resume();
  int r = cal_new(&cal);
  oom_pause();
  if (r < 0) {
    assert_ptr_equal(cal, UNTOUCHED);
    return r;
  }
  oom_resume();
  const struct cal_zone *z = cal_zone(cal, "America/Sao_Paulo");
  struct cal_local l = {0};
  if (z)
    cal_to_local(z, 1795379487, &l);
  oom_pause();
  if (!z) {
    /* a failed load is not cached */
    z = cal_zone(cal, "America/Sao_Paulo");
    assert_non_null(z);
    cal_free(cal);
    return -ENOMEM;
  }
  assert_int_equal(l.hour, 17);
  assert_int_equal(l.utc_offset, -3 * 3600);
  assert_string_equal(cal_zone_name(z), "America/Sao_Paulo");
  cal_free(cal);
  return 0;
}

static int run_cal_holidays(void *ud) {
  struct cal *cal = NULL;
  assert_int_equal(cal_new(&cal), 0);
  const struct cal_holidays *h = UNTOUCHED;
  char err[256] = "";
  oom_resume();
  int r = cal_holidays_load(cal, EXAMPLE_ICS, &h, err, sizeof err);
  oom_pause();
  if (r < 0) {
    assert_ptr_equal(h, UNTOUCHED);
    /* not cached: loads fine afterwards */
    assert_int_equal(cal_holidays_load(cal, EXAMPLE_ICS, &h, err, sizeof err), 0);
  }
  assert_true(cal_is_holiday(h, 2027, 12, 25));
  assert_true(cal_is_holiday(h, 2026, 10, 3));
  assert_false(cal_is_holiday(h, 2027, 3, 1));
  cal_free(cal);
  return r;
}

static int run_cal_rrule(void *ud) {
  struct cal_rrule *rr = UNTOUCHED;
  char err[128] = "";
  oom_resume();
  int r = cal_rrule_parse("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;COUNT=4", &rr, err,
                          sizeof err);
  oom_pause();
  if (r < 0) {
    assert_ptr_equal(rr, UNTOUCHED);
    return r;
  }
  int64_t out[8];
  oom_resume();
  size_t n = cal_rrule_expand(rr, NULL, 1798761600 /* 2027-01-01 */, INT64_MAX, out, 8);
  oom_pause();
  assert_int_equal(n, 4);
  assert_int_equal(out[0], 1798761600); /* dtstart itself */
  assert_int_equal(out[1], 1801180800); /* Fri 2027-01-29 */
  cal_rrule_free(rr);
  return 0;
}

struct rrule_bad_case {
  const char *rule;
  char expect[160];
};

static int run_cal_rrule_bad(void *ud) {
  struct rrule_bad_case *bc = ud;
  struct cal_rrule *rr = UNTOUCHED;
  char err[160] = "";
  oom_resume();
  int r = cal_rrule_parse(bc->rule, &rr, err, sizeof err);
  oom_pause();
  assert_ptr_equal(rr, UNTOUCHED);
  if (r == -EINVAL) {
    if (!oom_failed())
      snprintf(bc->expect, sizeof bc->expect, "%s", err);
    else
      assert_string_equal(err, bc->expect);
    return oom_failed() ? r : 0;
  }
  return r;
}

static void test_cal(void **state) {
  static const char *const bad[] = {"FREQ=DAILY;BYDAY=XX", "FREQ=YEARLY;BYMONTH=4;BYMONTHDAY=31",
                                    "FREQ=WEEKLY;;COUNT=2"};
  for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
    struct rrule_bad_case bc = {.rule = bad[i]};
    oom_run_case(&(struct oom_case){.name = "cal_rrule_parse (bad)",
                                    .run = run_cal_rrule_bad,
                                    .ud = &bc,
                                    .other_err = -EINVAL});
    assert_true(strlen(bc.expect) > 0);
  }
  oom_run("cal_new+zone", run_cal_zone, NULL);
  oom_run("cal_holidays_load", run_cal_holidays, NULL);
  oom_run("cal_rrule_parse+expand", run_cal_rrule, NULL);
}

/* ---- store ---------------------------------------------------------------------- */

struct store_case {
  struct store *s;
  char *path;
  unsigned seq; /* makes every run's ids unique */
};

static int count_cb(const struct contract *c, const struct customer *cu, void *ud) {
  (*(int *)ud)++;
  return 0;
}
static int reminder_cb(const struct reminder *r, void *ud) {
  (*(int *)ud)++;
  return 0;
}

static int run_store_open(void *ud) {
  struct store_case *sc = ud;
  char err[256] = "";
  _cleanup_free_ char *path = strprintf("%s/open-%u.db", tmpdir, sc->seq++);
  struct store *s = UNTOUCHED;
  oom_resume();
  int r = store_open(path, 0, &s, err, sizeof err);
  oom_pause();
  if (r < 0)
    assert_ptr_equal(s, UNTOUCHED);
  else
    store_free(s);
  unlink(path);
  _cleanup_free_ char *wal = strprintf("%s-wal", path), *shm = strprintf("%s-shm", path);
  unlink(wal);
  unlink(shm);
  return r;
}

/* One run: a customer, a contract, a ladder, a reminder, then reads. Every
 * failed step must leave no trace of itself. */
static int run_store_ops(void *ud) {
  struct store_case *sc = ud;
  unsigned k = sc->seq++;
  _cleanup_free_ char *cid = strprintf("K-%u", k), *kid = strprintf("C-%u", k),
                      *ltext = strprintf("ladder/1 policy=p%u", k);
  int64_t now = 1795379487;
  struct customer cu = {.id = cid,
                        .name = "Zoë",
                        .email = "zoe@example.com",
                        .tz = "UTC",
                        .segment = "smb",
                        .owner_id = "o-1"};
  struct contract co = {.id = kid,
                        .customer_id = cid,
                        .product = "Pro",
                        .currency = "EUR",
                        .expires_at = now + 86400 * 60,
                        .value_minor = 1000};
  oom_resume();
  int r = store_customer_upsert(sc->s, &cu, now);
  oom_pause();
  if (r < 0) {
    struct customer g = {0};
    assert_int_equal(store_customer_get(sc->s, cid, &g), -ENOENT);
    return r;
  }
  assert_int_equal(r, STORE_INSERTED);
  cu.name = "Zoë S.";
  oom_resume();
  r = store_customer_upsert(sc->s, &cu, now + 1);
  oom_pause();
  if (r < 0) {
    struct customer g = {0};
    assert_int_equal(store_customer_get(sc->s, cid, &g), 0);
    assert_string_equal(g.name, "Zoë");
    customer_clear(&g);
    return r;
  }
  assert_int_equal(r, STORE_UPDATED);
  oom_resume();
  r = store_contract_upsert(sc->s, &co, now);
  oom_pause();
  if (r < 0) {
    struct contract g = {0};
    assert_int_equal(store_contract_get(sc->s, kid, &g), -ENOENT);
    return r;
  }
  co.expires_at += 86400 * 365;
  oom_resume();
  r = store_contract_upsert(sc->s, &co, now + 2);
  oom_pause();
  if (r < 0) {
    struct contract g = {0};
    assert_int_equal(store_contract_get(sc->s, kid, &g), 0);
    assert_int_equal(g.term, 1);
    contract_clear(&g);
    return r;
  }
  int64_t lid = -1;
  oom_resume();
  r = store_ladder_intern(sc->s, ltext, &lid);
  oom_pause();
  if (r < 0) {
    assert_int_equal(lid, -1);
    return r;
  }
  char *lt = UNTOUCHED;
  oom_resume();
  r = store_ladder_get(sc->s, lid, &lt);
  oom_pause();
  if (r < 0) {
    assert_ptr_equal(lt, UNTOUCHED);
    return r;
  }
  assert_string_equal(lt, ltext);
  free(lt);
  struct reminder rem = {.contract_id = kid,
                         .term = 2,
                         .tier = "notice",
                         .step = 0,
                         .channel = "email",
                         .audience = "customer",
                         .recipient = "zoe@example.com",
                         .due_at = now + 100};
  oom_resume();
  r = store_reminder_insert(sc->s, &rem, now, NULL);
  oom_pause();
  if (r < 0) {
    int n = 0;
    assert_int_equal(store_reminder_foreach_contract(sc->s, kid, -1, reminder_cb, &n), 0);
    return r;
  }
  struct contract g = {.id = UNTOUCHED};
  oom_resume();
  r = store_contract_get(sc->s, kid, &g);
  oom_pause();
  if (r < 0) {
    assert_ptr_equal(g.id, UNTOUCHED);
    return r;
  }
  assert_int_equal(g.term, 2);
  assert_string_equal(g.product, "Pro");
  contract_clear(&g);
  struct customer gc = {.id = UNTOUCHED};
  oom_resume();
  r = store_customer_get(sc->s, cid, &gc);
  oom_pause();
  if (r < 0) {
    assert_ptr_equal(gc.id, UNTOUCHED);
    return r;
  }
  assert_string_equal(gc.name, "Zoë S.");
  customer_clear(&gc);
  int n = 0;
  struct store_contract_filter f = {.state = -1, .customer_id = cid};
  oom_resume();
  r = store_contract_foreach(sc->s, &f, count_cb, &n);
  oom_pause();
  if (r < 0)
    return r;
  assert_int_equal(n, 1);
  n = 0;
  oom_resume();
  r = store_reminder_foreach_contract(sc->s, kid, -1, reminder_cb, &n);
  oom_pause();
  if (r < 0)
    return r;
  assert_int_equal(n, 1);
  n = 0;
  oom_resume();
  r = store_reminder_claim(sc->s, "email", now + 200, 10, reminder_cb, &n);
  oom_pause();
  if (r < 0)
    return r;
  assert_int_equal(n, 1);
  char *mv = UNTOUCHED;
  oom_resume();
  r = store_meta_set(sc->s, "oom", kid);
  if (r >= 0)
    r = store_meta_get(sc->s, "oom", &mv);
  oom_pause();
  if (r < 0) {
    assert_ptr_equal(mv, UNTOUCHED);
    return r;
  }
  assert_string_equal(mv, kid);
  free(mv);
  return 0;
}

static int contract_cb(const struct contract *c, void *ud) {
  (*(int *)ud)++;
  return 0;
}
static int response_cb(const struct response *r, void *ud) {
  (*(int *)ud)++;
  return 0;
}
static int event_cb(const struct event *e, void *ud) {
  (*(int *)ud)++;
  return 0;
}

/* More of the store API that copies strings: owners, responses, events,
 * state changes, the change and due walks, reminder status and reads. */
static int run_store_more(void *ud) {
  struct store_case *sc = ud;
  unsigned k = sc->seq++;
  _cleanup_free_ char *oid = strprintf("O-%u", k), *kid = strprintf("M-%u", k),
                      *idem = strprintf("idem-%u", k);
  int64_t now = 1795379487;
  struct owner o = {.id = oid, .name = "Olga", .email = "olga@example.com", .tz = "UTC"};
  oom_resume();
  int r = store_owner_upsert(sc->s, &o, now);
  oom_pause();
  if (r < 0) {
    struct owner g = {0};
    assert_int_equal(store_owner_get(sc->s, oid, &g), -ENOENT);
    return r;
  }
  struct owner g = {.id = UNTOUCHED};
  oom_resume();
  r = store_owner_get(sc->s, oid, &g);
  oom_pause();
  if (r < 0) {
    assert_ptr_equal(g.id, UNTOUCHED);
    return r;
  }
  assert_string_equal(g.email, "olga@example.com");
  owner_clear(&g);
  o.name = "Olga K.";
  o.phone = "+442079460958";
  oom_resume();
  r = store_owner_upsert(sc->s, &o, now + 1);
  oom_pause();
  if (r < 0) {
    assert_int_equal(store_owner_get(sc->s, oid, &g), 0);
    assert_string_equal(g.name, "Olga"); /* the failed update left no trace */
    assert_null(g.phone);
    owner_clear(&g);
    return r;
  }
  assert_int_equal(r, STORE_UPDATED);
  struct customer cu = {.id = oid, .email = "c@example.com"};
  assert_int_equal(store_customer_upsert(sc->s, &cu, now), STORE_INSERTED);
  oom_resume();
  r = store_customer_set_optout(sc->s, oid, OPTOUT_SMS, now + 1);
  oom_pause();
  struct customer gc = {0};
  assert_int_equal(store_customer_get(sc->s, oid, &gc), 0);
  assert_int_equal(gc.optout, r < 0 ? 0 : OPTOUT_SMS);
  customer_clear(&gc);
  if (r < 0)
    return r;
  int n = 0;
  struct contract co = {.id = kid, .product = "Basic", .expires_at = now + 86400};
  oom_resume();
  r = store_contract_upsert(sc->s, &co, now);
  oom_pause();
  if (r < 0)
    return r;
  struct contract st = {.id = kid,
                        .term = 1,
                        .state = CONTRACT_SNOOZED,
                        .state_until = now + 3600,
                        .expires_at = now + 86400};
  oom_resume();
  r = store_contract_set_state(sc->s, &st, "contract.snoozed", "{\"by\":\"oom\"}", now + 1);
  oom_pause();
  if (r < 0) {
    struct contract c2 = {0};
    assert_int_equal(store_contract_get(sc->s, kid, &c2), 0);
    assert_int_equal(c2.state, CONTRACT_ACTIVE);
    contract_clear(&c2);
    return r;
  }
  struct response resp = {.contract_id = kid,
                          .term = 1,
                          .kind = "snooze",
                          .source = "link",
                          .channel = "email",
                          .detail = "{}",
                          .idem_key = idem,
                          .until_at = now + 3600};
  oom_resume();
  r = store_response_insert(sc->s, &resp, now + 2, NULL);
  oom_pause();
  if (r < 0)
    return r;
  n = 0;
  oom_resume();
  r = store_response_foreach_contract(sc->s, kid, -1, response_cb, &n);
  oom_pause();
  if (r < 0)
    return r;
  assert_int_equal(n, 1);
  oom_resume();
  r = store_event_append(sc->s, kid, "oom.test", "detail", now + 3);
  oom_pause();
  if (r < 0)
    return r;
  n = 0;
  oom_resume();
  r = store_event_foreach_contract(sc->s, kid, event_cb, &n);
  oom_pause();
  if (r < 0)
    return r;
  assert_int_equal(n, 2); /* contract.snoozed, oom.test */
  int64_t maxseq = 0;
  assert_int_equal(store_contract_max_change_seq(sc->s, &maxseq), 0);
  n = 0;
  oom_resume();
  r = store_contract_foreach_changed(sc->s, maxseq - 1, 0, contract_cb, &n, &maxseq);
  oom_pause();
  if (r < 0)
    return r;
  assert_int_equal(n, 1);
  n = 0;
  oom_resume();
  r = store_contract_foreach_due(sc->s, INT64_MAX, 0, contract_cb, &n);
  oom_pause();
  if (r < 0)
    return r;
  struct reminder rem = {.contract_id = kid,
                         .term = 1,
                         .tier = "t",
                         .step = 0,
                         .channel = "sms",
                         .audience = "customer",
                         .due_at = now};
  int64_t id = 0;
  oom_resume();
  r = store_reminder_insert(sc->s, &rem, now, &id);
  oom_pause();
  if (r < 0)
    return r;
  oom_resume();
  r = store_reminder_set_status(sc->s, id, REMINDER_RETRY, now + 60, "timeout", "prov-1", now);
  oom_pause();
  if (r < 0)
    return r;
  struct reminder rg = {.tier = UNTOUCHED};
  oom_resume();
  r = store_reminder_get(sc->s, id, &rg);
  oom_pause();
  if (r < 0) {
    assert_ptr_equal(rg.tier, UNTOUCHED);
    return r;
  }
  assert_string_equal(rg.last_error, "timeout");
  assert_string_equal(rg.provider_id, "prov-1");
  reminder_clear(&rg);
  n = 0;
  oom_resume();
  r = store_reminder_foreach_status(sc->s, REMINDER_RETRY, 1, reminder_cb, &n);
  oom_pause();
  if (r < 0)
    return r;
  assert_true(n >= 1);
  return 0;
}

static void test_store(void **state) {
  struct store_case sc = {0};
  oom_run("store_open", run_store_open, &sc);
  _cleanup_free_ char *path = strprintf("%s/ops.db", tmpdir);
  char err[256];
  assert_int_equal(store_open(path, 0, &sc.s, err, sizeof err), 0);
  oom_run("store upserts/reminders/foreach", run_store_ops, &sc);
  oom_run("store owners/responses/events", run_store_more, &sc);
  store_free(sc.s);
}

/* ---- sign ----------------------------------------------------------------------- */

static int run_sign(void *ud) {
  static const char *secrets[] = {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                  "whsec_c2VjcmV0LWtleS0xMjM0NTY3ODkwMTIzNDU2Nzg5MA=="};
  static const uint8_t keybytes[] = "0123456789abcdef0123456789abcdef";
  struct sign_key key = {keybytes, 32};
  const char *body = "{\"type\":\"reminder.sent\"}";
  int64_t ts = 1795379487;
  char *hdr = UNTOUCHED, err[128];
  oom_resume();
  int r = sign_webhook(secrets, 2, "msg_1", ts, body, strlen(body), &hdr, err, sizeof err);
  oom_pause();
  if (r < 0) {
    assert_ptr_equal(hdr, UNTOUCHED);
    return r;
  }
  oom_resume();
  r = sign_webhook_verify(secrets + 1, 1, "msg_1", "1795379487", body, strlen(body), hdr, ts, 300,
                          err, sizeof err);
  oom_pause();
  free(hdr);
  if (r < 0)
    return r;
  struct sign_param params[] = {
      {"To", "+15005550006"}, {"Body", "YES"}, {"From", "+4915112345678"}};
  char *sig = UNTOUCHED;
  oom_resume();
  r = sign_twilio("token", "https://x.example.com/sms?a=1", params, 3, &sig);
  oom_pause();
  if (r < 0) {
    assert_ptr_equal(sig, UNTOUCHED);
    return r;
  }
  oom_resume();
  r = sign_twilio_verify("token", "https://x.example.com/sms?a=1", params, 3, sig);
  oom_pause();
  free(sig);
  if (r < 0)
    return r;
  char *tok = UNTOUCHED;
  oom_resume();
  r = token_sign(&key, "C-1 ü", 3, TOKEN_SNOOZE, ts + 86400, &tok);
  oom_pause();
  if (r < 0) {
    assert_ptr_equal(tok, UNTOUCHED);
    return r;
  }
  struct token t = {.term = 99};
  oom_resume();
  r = token_verify(&key, 1, tok, ts, &t);
  oom_pause();
  free(tok);
  if (r < 0) {
    assert_int_equal(t.term, 99);
    return r;
  }
  assert_string_equal(t.contract_id, "C-1 ü");
  assert_int_equal(t.action, TOKEN_SNOOZE);
  uint8_t *dec = UNTOUCHED;
  size_t dlen = 77;
  oom_resume();
  char *enc = sign_base64url_encode("\xff\xfe hello", 8);
  r = enc ? sign_base64url_decode(enc, strlen(enc), &dec, &dlen) : -ENOMEM;
  oom_pause();
  free(enc);
  if (r < 0) {
    assert_ptr_equal(dec, UNTOUCHED);
    assert_int_equal(dlen, 77);
    return r;
  }
  assert_int_equal(dlen, 8);
  assert_memory_equal(dec, "\xff\xfe hello", 8);
  free(dec);
  return 0;
}

static void test_sign(void **state) {
  oom_run("sign", run_sign, NULL);
}

/* ---- mime ----------------------------------------------------------------------- */

static int run_mime(void *ud) {
  char *h = UNTOUCHED;
  oom_resume();
  int r = mime_header("Subject",
                      "Ihr Vertrag läuft am 1. März 2027 ab — bitte verlängern Sie "
                      "rechtzeitig, 您的合同即将到期 =?",
                      &h);
  oom_pause();
  if (r < 0) {
    assert_ptr_equal(h, UNTOUCHED);
    return r;
  }
  assert_true(strncmp(h, "Subject: =?UTF-8?B?", 19) == 0);
  free(h);
  h = UNTOUCHED;
  oom_resume();
  r = mime_header("Subject",
                  "Your contract C-1 expires on 1 March 2027: please renew it in time, "
                  "or tell us that you do not want to, so that we stop reminding you",
                  &h);
  oom_pause();
  if (r < 0) {
    assert_ptr_equal(h, UNTOUCHED);
    return r;
  }
  assert_non_null(strstr(h, "\r\n "));
  free(h);
  struct mime_address a[] = {
      {"王小明", "wang@example.cn"}, {"Smith, John", "john@example.com"}, {NULL, "x@example.com"}};
  h = UNTOUCHED;
  oom_resume();
  r = mime_header_addresses("To", a, 3, &h);
  oom_pause();
  if (r < 0) {
    assert_ptr_equal(h, UNTOUCHED);
    return r;
  }
  assert_non_null(strstr(h, "\"Smith, John\"\r\n <john@example.com>"));
  free(h);
  h = UNTOUCHED;
  oom_resume();
  r = mime_message_id("rk-0123/ab", "mail.example.com", &h);
  oom_pause();
  if (r < 0) {
    assert_ptr_equal(h, UNTOUCHED);
    return r;
  }
  assert_string_equal(h, "<rk-rk-0123=2Fab@mail.example.com>");
  free(h);
  return 0;
}

static int run_email(void *ud) {
  char *name = UNTOUCHED, *addr = UNTOUCHED;
  oom_resume();
  int r = email_parse_address("\"Renewals, Example\" <renewals@example.com>", &name, &addr);
  oom_pause();
  if (r < 0) {
    assert_ptr_equal(name, UNTOUCHED);
    assert_ptr_equal(addr, UNTOUCHED);
    return r;
  }
  assert_string_equal(name, "Renewals, Example");
  assert_string_equal(addr, "renewals@example.com");
  struct email_header extra[] = {{"X-Renewd-Contract", "C-1"}, {"X-Renewd-Tier", "notice ü"}};
  struct email e = {
      .from_name = name,
      .from_addr = addr,
      .reply_to = "Desk <desk@example.com>",
      .to_name = "王小明",
      .to_addr = "wang@example.cn",
      .subject = "Ihr Vertrag läuft am 1. März 2027 ab",
      .date = 1795379487,
      .idem_key = "rk-0123456789abcdef0123456789abcdef",
      .text = "Hello,\nplease renew.\n.\n",
      .html = "<p>Hello</p>",
      .calendar = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n",
      .calendar_method = "PUBLISH",
      .unsubscribe_url = "https://renew.example.com/u/abc",
      .auto_submitted = true,
      .extra = extra,
      .n_extra = 2,
  };
  char *msg = UNTOUCHED;
  size_t len = 7;
  oom_resume();
  r = email_format(&e, &msg, &len);
  oom_pause();
  free(name);
  free(addr);
  if (r < 0) {
    assert_ptr_equal(msg, UNTOUCHED);
    assert_int_equal(len, 7);
    return r;
  }
  assert_int_equal(len, strlen(msg));
  assert_non_null(strstr(msg, "Message-ID: <rk-0123456789abcdef0123456789abcdef@example.com>"));
  assert_non_null(strstr(msg, "List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
  free(msg);
  return 0;
}

static int run_linkkey(void *ud) {
  static const char text[] = "# keys\nnew-key-0123456789abcdef\r\n\nold-key-0123456789abcdef\n";
  struct linkkeys *k = UNTOUCHED;
  char err[128] = "";
  oom_resume();
  int r = linkkeys_parse(text, sizeof text - 1, &k, err, sizeof err);
  oom_pause();
  if (r < 0) {
    assert_ptr_equal(k, UNTOUCHED);
    return r;
  }
  assert_int_equal(k->n, 2);
  char *url = UNTOUCHED;
  oom_resume();
  r = linkkey_url(k, "https://renew.example.com", "C-1", 2, TOKEN_UNSUBSCRIBE_EMAIL, 1803855600,
                  &url);
  oom_pause();
  if (r < 0) {
    assert_ptr_equal(url, UNTOUCHED);
    linkkeys_free(k);
    return r;
  }
  assert_true(strncmp(url, "https://renew.example.com/u/v1.", 31) == 0);
  struct token t;
  assert_int_equal(token_verify(k->keys, k->n, url + 28, 1795379487, &t), 0);
  assert_int_equal(t.term, 2);
  free(url);
  linkkeys_free(k);
  return 0;
}

static void test_mime(void **state) {
  oom_run("mime", run_mime, NULL);
  oom_run("email_parse_address+format", run_email, NULL);
  oom_run("linkkeys_parse+linkkey_url", run_linkkey, NULL);
}

/* ---- smstext: no allocation at all ------------------------------------------------ */

static void test_smstext_no_alloc(void **state) {
  struct smstext_info info;
  oom_count_start();
  int r = smstext_segments("Ihr Vertrag läuft ab: €12 [x] 😀 bitte antworten", &info);
  bool e164 = smstext_is_e164("+442079460958");
  unsigned long n = oom_count();
  oom_reset();
  assert_int_equal(r, 0);
  assert_true(e164);
  assert_int_equal(info.encoding, SMSTEXT_UCS2);
  assert_int_equal(n, 0);
}

/* ---- util ----------------------------------------------------------------------- */

static int run_util(void *ud) {
  struct buf b = {0};
  char *dst = strdup("old");
  oom_resume();
  int r = free_and_strdup(&dst, "new");
  oom_pause();
  if (r < 0)
    assert_string_equal(dst, "old");
  free(dst);
  if (r < 0)
    return r;
  oom_resume();
  for (int i = 0; i < 100 && r >= 0; i++)
    r = buf_printf(&b, "%d,", i);
  oom_pause();
  if (r < 0) {
    buf_free(&b);
    return r;
  }
  oom_resume();
  char *s = buf_steal(&b);
  oom_pause();
  buf_free(&b);
  if (!s)
    return -ENOMEM;
  assert_int_equal(strlen(s), 290);
  free(s);
  char *file = UNTOUCHED;
  size_t len = 5;
  oom_resume();
  r = read_full_file(EXAMPLE_ICS, 1 << 20, &file, &len);
  oom_pause();
  if (r < 0) {
    assert_ptr_equal(file, UNTOUCHED);
    assert_int_equal(len, 5);
    return r;
  }
  free(file);
  oom_resume();
  s = strprintf("%s-%d", "x", 42);
  oom_pause();
  if (!s)
    return -ENOMEM;
  free(s);
  return 0;
}

static void test_util(void **state) {
  oom_run("util", run_util, NULL);
}

/* A PO catalogue of Mustache strings: -ENOMEM and nothing handed out, or
 * every key. */
static int run_catalogue(void *ud) {
  (void)ud;
  static const char po[] =
      "# pages\nmsgid \"\"\nmsgstr \"\"\n\"Language: de\\n\"\n\n"
      "msgid \"renew_p\"\nmsgstr \"Ihr {{product}} wird bis zum \"\n"
      "\"{{date}} verl\xc3\xa4ngert.\"\n\n#, fuzzy\nmsgid \"x\"\nmsgstr \"y\"\n\n"
      "msgid \"b\"\nmsgstr \"{{#a}}A{{/a}}\"\n# end\n";
  struct catalogue *c = UNTOUCHED;
  char err[128] = "";
  oom_resume();
  int r = catalogue_parse(po, &c, err, sizeof err);
  oom_pause();
  if (r < 0) {
    assert_int_equal(r, -ENOMEM);
    assert_ptr_equal(c, UNTOUCHED);
    return r;
  }
  assert_int_equal(catalogue_size(c), 2);
  assert_non_null(catalogue_get(c, "renew_p"));
  assert_null(catalogue_get(c, "x"));
  catalogue_free(c);
  return 0;
}

static void test_catalogue(void **state) {
  (void)state;
  oom_run("catalogue_parse", run_catalogue, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_util),
      cmocka_unit_test(test_config_string),
      cmocka_unit_test(test_config_string_cal),
      cmocka_unit_test(test_config_dropins),
      cmocka_unit_test(test_config_errors),
      cmocka_unit_test(test_ladder),
      cmocka_unit_test(test_tmpl),
      cmocka_unit_test(test_templates),
      cmocka_unit_test(test_csv),
      cmocka_unit_test(test_validate),
      cmocka_unit_test(test_policy),
      cmocka_unit_test(test_cal),
      cmocka_unit_test(test_store),
      cmocka_unit_test(test_sign),
      cmocka_unit_test(test_mime),
      cmocka_unit_test(test_smstext_no_alloc),
      cmocka_unit_test(test_catalogue),
  };
  if (getenv("TEST_FILTER")) /* e.g. TEST_FILTER=test_store */
    cmocka_set_test_filter(getenv("TEST_FILTER"));
  return cmocka_run_group_tests(tests, setup, teardown);
}
