/* Tests for notifiers/templates: a template tree in a temporary directory;
 * locale fallback (zh-CN -> zh -> en, zh_CN spelling, case), missing parts,
 * partials and their fallback, HTML escaping only in the html part, Chinese
 * text passing through, caching, name validation, errors naming the file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "notifiers/templates.h"

static const struct {
  const char *path, *text;
} files[] = {
    {"en/notice.subject.mustache", "Your contract {{contract}} expires on {{expires}}"},
    {"en/notice.text.mustache",
     "Hello {{name}},\nyour contract {{contract}} expires.\n{{>footer}}"},
    {"en/notice.html.mustache", "<p>Hello {{name}},</p>\n<p>{{{raw}}}</p>\n{{>footer}}"},
    {"en/partials/footer.mustache", "-- \n{{company}}\n"},
    {"en/partials/sig.mustache", "EN-SIG"},
    {"en/broken.text.mustache", "ok\n{{#x}}\n"},
    {"en/badpartial.text.mustache", "a {{>bad}}"},
    {"en/partials/bad.mustache", "{{/nope}}"},
    {"en/loop.text.mustache", "{{>loop}}"},
    {"en/partials/loop.mustache", "x{{>loop}}"},
    {"en/dyn.text.mustache", "[{{>*which}}]"},
    {"en/inherit.text.mustache", "{{<layout}}{{$body}}Hi {{name}}{{/body}}{{/layout}}"},
    {"en/partials/layout.mustache",
     "== {{$title}}Notice{{/title}} ==\n  {{$body}}{{/body}}\n{{>sig}}\n"},
    {"zh/notice.text.mustache", "{{name}}，您好：\n您的合同 {{contract}} 即将到期。\n{{>footer}}"},
    {"zh/inherit.text.mustache", "{{<layout}}{{$title}}通知{{/title}}{{/layout}}"},
    {"zh/partials/footer.mustache", "—— {{company}}\n"},
    {"zh/partials/sig.mustache", "中文签名"},
    {"zh_CN/notice.subject.mustache", "合同 {{contract}} 即将到期（{{expires}}）"},
    {"zh_CN/partials/footer.mustache", "CN-FOOTER\n"},
    {"fr/README", "not a template"},
    {"README.md", "the directory may hold other files"},
};

static char dir[] = "/tmp/renewd-test-templates-XXXXXX";

static int write_file(const char *rel, const char *text) {
  _cleanup_free_ char *path = strprintf("%s/%s", dir, rel);
  if (!path)
    return -ENOMEM;
  for (char *p = strchr(path + strlen(dir) + 1, '/'); p; p = strchr(p + 1, '/')) {
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

static int setup(void **state) {
  if (!mkdtemp(dir))
    return -1;
  for (size_t i = 0; i < ELEMENTSOF(files); i++)
    if (write_file(files[i].path, files[i].text) < 0)
      return -1;
  return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  return remove(path);
}

static int teardown(void **state) {
  return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static json_t *data(void) {
  json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", "<Bob & Co>", "contract", "C-1",
                        "expires", "2026-12-01", "company", "Acme", "raw", "<b>bold</b>");
  assert_non_null(d);
  return d;
}

/* Renders and checks output and locale used. */
static void check(struct templates *t, const char *locale, const char *name, const char *part,
                  const char *expected, const char *expected_locale) {
  json_t *d = data();
  _cleanup_free_ char *out = NULL;
  const char *used = NULL;
  char err[256] = "";
  int r = templates_render(t, locale, name, part, d, &out, &used, err, sizeof err);
  json_decref(d);
  if (r < 0)
    fail_msg("%s %s.%s: %d %s", locale, name, part, r, err);
  assert_string_equal(out, expected);
  assert_string_equal(used, expected_locale);
}

static void test_fallback(void **state) {
  struct templates *t = NULL;
  char err[256] = "";
  assert_int_equal(templates_open(dir, &t, err, sizeof err), 0);

  /* zh-CN subject exists in zh_CN/ itself */
  check(t, "zh-CN", "notice", "subject", "合同 C-1 即将到期（2026-12-01）", "zh_CN");
  /* other spellings of the same locale */
  check(t, "zh_CN", "notice", "subject", "合同 C-1 即将到期（2026-12-01）", "zh_CN");
  check(t, "ZH-cn", "notice", "subject", "合同 C-1 即将到期（2026-12-01）", "zh_CN");
  check(t, "zh_CN.UTF-8", "notice", "subject", "合同 C-1 即将到期（2026-12-01）", "zh_CN");
  /* zh-CN text falls back to zh/, and its partial comes from zh/ too */
  check(t, "zh-CN", "notice", "text", "<Bob & Co>，您好：\n您的合同 C-1 即将到期。\n—— Acme\n",
        "zh");
  check(t, "zh-Hant-TW", "notice", "text", "<Bob & Co>，您好：\n您的合同 C-1 即将到期。\n—— Acme\n",
        "zh");
  /* zh html falls back to en/, with the English footer (one language per message) */
  check(t, "zh-CN", "notice", "html",
        "<p>Hello &lt;Bob &amp; Co&gt;,</p>\n<p><b>bold</b></p>\n-- \nAcme\n", "en");
  /* zh subject: zh/ has none, zh_CN/ is more specific than asked: en/ */
  check(t, "zh", "notice", "subject", "Your contract C-1 expires on 2026-12-01", "en");
  /* unknown, empty, missing and malformed locales fall back to en */
  static const char *to_en[] = {"fr", "de-DE", "", NULL, "../zh", "zh CN", "-zh"};
  for (size_t i = 0; i < ELEMENTSOF(to_en); i++)
    check(t, to_en[i], "notice", "text",
          "Hello <Bob & Co>,\nyour contract C-1 expires.\n-- \nAcme\n", "en");
  templates_free(t);
}

static void test_escaping(void **state) {
  struct templates *t = NULL;
  assert_int_equal(templates_open(dir, &t, NULL, 0), 0);
  /* {{name}} escaped in html only; {{{raw}}} never */
  check(t, "en", "notice", "html",
        "<p>Hello &lt;Bob &amp; Co&gt;,</p>\n<p><b>bold</b></p>\n-- \nAcme\n", "en");
  check(t, "en", "notice", "text", "Hello <Bob & Co>,\nyour contract C-1 expires.\n-- \nAcme\n",
        "en");
  check(t, "en", "notice", "subject", "Your contract C-1 expires on 2026-12-01", "en");
  templates_free(t);
}

static void test_missing(void **state) {
  struct templates *t = NULL;
  assert_int_equal(templates_open(dir, &t, NULL, 0), 0);
  json_t *d = data();
  char *out = (char *)1, err[256] = "";
  const char *used = (const char *)1;

  assert_int_equal(templates_render(t, "zh-CN", "notice", "sms", d, &out, &used, err, sizeof err),
                   -ENOENT);
  _cleanup_free_ char *expect = strprintf("no template notice.sms for locale 'zh-CN' in %s", dir);
  assert_string_equal(err, expect);
  assert_ptr_equal(out, (char *)1);
  assert_ptr_equal(used, (const char *)1);
  assert_int_equal(templates_render(t, "en", "nothing", "text", d, &out, NULL, err, sizeof err),
                   -ENOENT);

  assert_false(templates_exists(t, "zh-CN", "notice", "sms"));
  assert_true(templates_exists(t, "zh-CN", "notice", "subject"));
  assert_true(templates_exists(t, "zh-CN", "notice", "html")); /* via en */
  assert_true(templates_exists(t, "fr", "notice", "text"));
  assert_false(templates_exists(t, "en", "nothing", "text"));
  assert_true(templates_exists(t, "en", "broken", "text")); /* present, though broken */
  assert_false(templates_exists(NULL, "en", "notice", "text"));

  /* names are checked: nothing outside the directory is reachable */
  static const char *bad[] = {"../en/notice", "en/notice", ".hidden", "", "a b", NULL};
  for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
    assert_int_equal(templates_render(t, "en", bad[i], "text", d, &out, NULL, err, sizeof err),
                     -EINVAL);
    assert_false(templates_exists(t, "en", bad[i], "text"));
    assert_int_equal(templates_render(t, "en", "notice", bad[i], d, &out, NULL, err, sizeof err),
                     -EINVAL);
  }
  assert_ptr_equal(out, (char *)1);
  json_decref(d);
  templates_free(t);
}

static void test_errors(void **state) {
  struct templates *t = NULL;
  char err[512] = "", *out = NULL;
  assert_int_equal(templates_open(dir, &t, NULL, 0), 0);
  json_t *d = data();

  assert_int_equal(templates_render(t, "zh", "broken", "text", d, &out, NULL, err, sizeof err),
                   -EINVAL);
  assert_string_equal(err, "en/broken.text.mustache: line 2: section 'x' is not closed");
  /* cached: the same answer again */
  assert_int_equal(templates_render(t, "en", "broken", "text", d, &out, NULL, err, sizeof err),
                   -EINVAL);
  assert_string_equal(err, "en/broken.text.mustache: line 2: section 'x' is not closed");

  assert_int_equal(templates_render(t, "en", "badpartial", "text", d, &out, NULL, err, sizeof err),
                   -EINVAL);
  assert_string_equal(err, "en/badpartial.text.mustache: en/partials/bad.mustache: line 1: "
                           "closing tag 'nope' without an opening tag");

  assert_int_equal(templates_render(t, "en", "loop", "text", d, &out, NULL, err, sizeof err),
                   -ELOOP);
  assert_string_equal(err, "en/loop.text.mustache: partials/blocks nested deeper than 64 "
                           "(recursive partial?)");
  assert_null(out);
  json_decref(d);
  templates_free(t);

  /* opening a missing directory, or a file */
  t = (struct templates *)1;
  _cleanup_free_ char *missing = strprintf("%s/nope", dir);
  _cleanup_free_ char *file = strprintf("%s/README.md", dir);
  assert_int_equal(templates_open(missing, &t, err, sizeof err), -ENOENT);
  _cleanup_free_ char *expect = strprintf("%s: No such file or directory", missing);
  assert_string_equal(err, expect);
  assert_int_equal(templates_open(file, &t, err, sizeof err), -ENOTDIR);
  assert_ptr_equal(t, (struct templates *)1);
  assert_int_equal(templates_open(NULL, &t, err, sizeof err), -EINVAL);
  assert_null(templates_free(NULL));
}

static void test_partials(void **state) {
  struct templates *t = NULL;
  assert_int_equal(templates_open(dir, &t, NULL, 0), 0);
  /* inheritance through a layout partial; the standalone block is indented
   * like its line, the standalone {{>sig}} line ends with the partial */
  check(t, "en", "inherit", "text", "== Notice ==\n  Hi <Bob & Co>\nEN-SIG", "en");
  /* zh overrides only the title; the layout comes from en/, sig from zh/ */
  check(t, "zh", "inherit", "text", "== 通知 ==\n\n中文签名", "zh");

  /* dynamic partial names come from data; odd names are just missing */
  static const struct {
    const char *which, *expected;
  } dyn[] = {
      {"sig", "[EN-SIG]"},
      {"../../en/partials/sig", "[]"},
      {"/etc/passwd", "[]"},
      {"nope", "[]"},
  };
  for (size_t i = 0; i < ELEMENTSOF(dyn); i++) {
    json_t *d = json_pack("{s:s}", "which", dyn[i].which);
    _cleanup_free_ char *out = NULL;
    char err[256] = "";
    assert_int_equal(templates_render(t, "en", "dyn", "text", d, &out, NULL, err, sizeof err), 0);
    assert_string_equal(out, dyn[i].expected);
    json_decref(d);
  }
  templates_free(t);
}

/* Files are read once: a change on disk shows only after reopening. */
static void test_cache(void **state) {
  struct templates *t = NULL;
  assert_int_equal(templates_open(dir, &t, NULL, 0), 0);
  assert_int_equal(write_file("en/cached.text.mustache", "v1 {{contract}}"), 0);
  check(t, "en", "cached", "text", "v1 C-1", "en");
  assert_int_equal(write_file("en/cached.text.mustache", "v2 {{contract}}"), 0);
  for (int i = 0; i < 100; i++)
    check(t, "zh", "cached", "text", "v1 C-1", "en");
  /* a missing file is remembered as missing too */
  assert_false(templates_exists(t, "en", "later", "text"));
  assert_int_equal(write_file("en/later.text.mustache", "later"), 0);
  assert_false(templates_exists(t, "en", "later", "text"));
  templates_free(t);

  assert_int_equal(templates_open(dir, &t, NULL, 0), 0);
  check(t, "en", "cached", "text", "v2 C-1", "en");
  assert_true(templates_exists(t, "en", "later", "text"));
  templates_free(t);
}

static char *str(struct templates *t, const char *locale, const char *key, const char **used) {
  json_t *d = data();
  char *out = NULL, err[256] = "";
  int r = templates_string(t, locale, "pages", key, d, &out, used, err, sizeof err);
  json_decref(d);
  if (r < 0)
    fail_msg("%s %s: %d %s", locale, key, r, err);
  return out;
}

/* Catalogues: PO parsing, key-by-key fallback (fr-CA -> fr -> default),
 * fuzzy and empty entries untranslated, the built-in last resort, errors
 * with lines, the default locale, Accept-Language. */
static void test_catalogue(void **state) {
  assert_int_equal(write_file("en/pages.po",
                              "# header\nmsgid \"\"\nmsgstr \"\"\n\"Language: en\\n\"\n\n"
                              "msgid \"hello\"\nmsgstr \"Hello {{name}}\"\n\n"
                              "msgid \"bye\"\nmsgstr \"Bye\"\n\"\\n\\\"now\\\"\"\n"),
                   0);
  assert_int_equal(write_file("fr/pages.po", "msgid \"hello\"\nmsgstr \"Bonjour {{name}}\"\n\n"
                                             "#, fuzzy\nmsgid \"bye\"\nmsgstr \"Salut\"\n"),
                   0);
  assert_int_equal(write_file("zh/pages.po", "msgid \"bye\"\nmsgstr \"\"\n"), 0);
  struct templates *t = NULL;
  assert_int_equal(templates_open(dir, &t, NULL, 0), 0);
  const char *used = NULL;
  char *s = str(t, "fr-CA", "hello", &used);
  assert_string_equal(s, "Bonjour <Bob & Co>"); /* never HTML-escaped */
  assert_string_equal(used, "fr");
  free(s);
  s = str(t, "fr-CA", "bye", &used); /* fuzzy: untranslated */
  assert_string_equal(s, "Bye\n\"now\"");
  assert_string_equal(used, "en");
  free(s);
  s = str(t, "zh", "bye", &used); /* empty msgstr: untranslated */
  assert_string_equal(used, "en");
  free(s);
  char *out = NULL, err[256] = "";
  assert_int_equal(templates_string(t, "fr", "pages", "nope", NULL, &out, NULL, err, sizeof err),
                   -ENOENT);
  /* the built-in catalogue is the last resort */
  assert_int_equal(
      templates_add_builtin_catalogue(t, "pages", "msgid \"nope\"\nmsgstr \"built in\"\n", NULL, 0),
      0);
  s = str(t, "fr", "nope", &used);
  assert_string_equal(s, "built in");
  free(s);
  /* the default locale ends every chain */
  assert_int_equal(templates_set_default_locale(t, "fr"), 0);
  s = str(t, "de", "hello", &used);
  assert_string_equal(used, "fr");
  free(s);
  assert_int_equal(templates_set_default_locale(t, "bad tag"), -EINVAL);
  /* Accept-Language: by q, then order; ranges without a directory skipped */
  char best[64];
  assert_int_equal(templates_negotiate(t, "de-DE, fr-CA;q=0.5, zh;q=0.8", best, sizeof best), 0);
  assert_string_equal(best, "zh");
  assert_int_equal(templates_negotiate(t, "fr-CA;q=0.5,*;q=0.1", best, sizeof best), 0);
  assert_string_equal(best, "fr-ca");
  assert_int_equal(templates_negotiate(t, "de, ja;q=0", best, sizeof best), -ENOENT);
  assert_string_equal(best, "fr"); /* the default */
  assert_int_equal(templates_negotiate(t, NULL, best, sizeof best), -ENOENT);
  templates_free(t);

  /* a broken catalogue: the error names file and line */
  static const char *const bad[] = {"msgid \"a\"\nmsgid \"b\"\n",
                                    "msgid \"a\"\nmsgstr \"{{#x}}\"\n",
                                    "msgid \"a\"\nmsgid_plural \"as\"\n",
                                    "msgstr \"x\"\n",
                                    "msgid \"a\"\nmsgstr \"\\q\"\n",
                                    ("msgid \"a\"\nmsgstr \"1\"\n\n"
                                     "msgid \"a\"\nmsgstr \"2\"\n")};
  for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
    assert_int_equal(write_file("fr/pages.po", bad[i]), 0);
    assert_int_equal(templates_open(dir, &t, NULL, 0), 0);
    err[0] = 0;
    int r = templates_string(t, "fr", "pages", "a", NULL, &out, NULL, err, sizeof err);
    if (r != -EINVAL || !strstr(err, "fr/pages.po: line "))
      fail_msg("bad catalogue %zu: %d '%s'", i, r, err);
    templates_free(t);
  }
  _cleanup_free_ char *path = strprintf("%s/fr/pages.po", dir);
  assert_int_equal(remove(path), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_catalogue), cmocka_unit_test(test_fallback),
      cmocka_unit_test(test_escaping),  cmocka_unit_test(test_missing),
      cmocka_unit_test(test_errors),    cmocka_unit_test(test_partials),
      cmocka_unit_test(test_cache),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
