/* Tests for notifiers/tmpl: every case of every file of the Mustache spec in
 * TEST_DATA_DIR/mustache-spec/ (core plus ~inheritance and ~dynamic-names),
 * rendered with HTML escaping on, output compared byte for byte; then the
 * engine's own choices (errors, truthiness, compiled partials, recursion). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <unistd.h>

#include "core/util.h"
#include "notifiers/tmpl.h"

#define SPEC_DIR TEST_DATA_DIR "/mustache-spec"

/* The spec is outside data (../shared/testdata beside the checkout): a clone
 * without it skips the spec cases and says why; the engine's own cases run. */
static bool spec_present(void) {
  if (access(SPEC_DIR, R_OK) == 0)
    return true;
  printf("skipped: %s not found (the Mustache spec is test data kept outside this repository, "
         "in ../shared/testdata; CI has it)\n",
         SPEC_DIR);
  return false;
}

static const char *partial_from_json(void *ud, const char *name) {
  return json_string_value(json_object_get(ud, name));
}

/* Runs every test of one spec file; returns the number of failures. */
static size_t run_spec_file(const char *file, size_t *ret_total) {
  _cleanup_free_ char *path = strprintf("%s/%s", SPEC_DIR, file);
  json_error_t jerr;
  json_t *doc = json_load_file(path, 0, &jerr);
  if (!doc)
    fail_msg("%s: %s (line %d)", path, jerr.text, jerr.line);
  json_t *tests = json_object_get(doc, "tests");
  assert_true(json_is_array(tests));
  assert_true(json_array_size(tests) > 0);

  size_t i, failed = 0;
  json_t *tc;
  json_array_foreach(tests, i, tc) {
    const char *name = json_string_value(json_object_get(tc, "name"));
    const char *template = json_string_value(json_object_get(tc, "template"));
    const char *expected = json_string_value(json_object_get(tc, "expected"));
    assert_non_null(name);
    assert_non_null(template);
    assert_non_null(expected);
    struct tmpl_partials p = {.get = partial_from_json, .ud = json_object_get(tc, "partials")};
    char err[256] = "";
    _cleanup_free_ char *out = NULL;
    int r = tmpl_render(template, json_object_get(tc, "data"), &p, true, &out, err, sizeof err);
    if (r < 0) {
      printf("FAIL %s: %s: render error %d: %s\n", file, name, r, err);
      failed++;
    } else if (!streq(out, expected)) {
      printf("FAIL %s: %s\n  template: %s\n  expected: [%s]\n  got:      [%s]\n", file, name,
             template, expected, out);
      failed++;
    }
  }
  *ret_total = json_array_size(tests);
  json_decref(doc);
  return failed;
}

static void test_spec_file(void **state) {
  const char *file = *state;
  if (!spec_present())
    skip();
  size_t total = 0, failed = run_spec_file(file, &total);
  printf("%s: %zu/%zu passed\n", file, total - failed, total);
  assert_int_equal(failed, 0);
}

/* Every JSON file in the spec folder is run, so a file added there is not
 * silently skipped. */
static void test_spec_all_files_known(void **state) {
  (void)state;
  if (!spec_present())
    skip();
  static const char *known[] = {"comments.json",     "delimiters.json",    "interpolation.json",
                                "inverted.json",     "partials.json",      "sections.json",
                                "~inheritance.json", "~dynamic-names.json"};
  DIR *d = opendir(SPEC_DIR);
  assert_non_null(d);
  struct dirent *de;
  size_t n = 0;
  while ((de = readdir(d))) {
    size_t len = strlen(de->d_name);
    if (len < 5 || !streq(de->d_name + len - 5, ".json"))
      continue;
    bool found = false;
    for (size_t i = 0; i < ELEMENTSOF(known); i++)
      found = found || streq(known[i], de->d_name);
    if (!found)
      fail_msg("spec file %s is not run by this test", de->d_name);
    n++;
  }
  closedir(d);
  assert_int_equal(n, ELEMENTSOF(known));
}

/* Renders template with data given as JSON text; returns the output (caller frees). */
static char *render(const char *template, const char *data_json, bool html) {
  json_t *data = json_loads(data_json, JSON_DECODE_ANY, NULL);
  assert_non_null(data);
  char *out = NULL, err[256] = "";
  int r = tmpl_render(template, data, NULL, html, &out, err, sizeof err);
  json_decref(data);
  if (r < 0)
    fail_msg("render of %s failed: %d %s", template, r, err);
  return out;
}

static void test_values(void **state) {
  static const struct {
    const char *template, *data, *expected;
    bool html;
  } cases[] = {
      {"{{a}}", "{\"a\": \"<b> & 'q' \\\"\"}", "&lt;b&gt; &amp; &#39;q&#39; &quot;", true},
      {"{{a}}", "{\"a\": \"<b> & 'q'\"}", "<b> & 'q'", false},
      {"{{{a}}}|{{&a}}", "{\"a\": \"<&>\"}", "<&>|<&>", true},
      {"{{n}} {{r}} {{big}} {{t}} {{f}} {{z}}",
       "{\"n\": -42, \"r\": 0.1, \"big\": 1e300, \"t\": true, \"f\": false, \"z\": null}",
       "-42 0.1 1e+300 true false ", false},
      {"[{{o}}][{{l}}]", "{\"o\": {\"x\": 1}, \"l\": [1, 2]}", "[][]", false},
      /* truthiness: "" [] null false and missing are falsy; 0 and {} are not */
      {"{{#s}}S{{/s}}{{#e}}E{{/e}}{{#z}}Z{{/z}}{{#o}}O{{/o}}{{#a}}A{{/a}}{{#m}}M{{/m}}",
       "{\"s\": \"\", \"e\": [], \"z\": 0, \"o\": {}, \"a\": [0]}", "ZOA", false},
      {"{{^s}}not-s{{/s}}", "{\"s\": \"\"}", "not-s", false},
      {"你好，{{name}}！{{#items}}\n- {{.}}{{/items}}",
       "{\"name\": \"张三\", \"items\": [\"合同\"]}", "你好，张三！\n- 合同", true},
      {"{{a.b.c}}", "{\"a\": {\"b\": {\"c\": 7}}}", "7", false},
      {"{{=<% %>=}}<% a %>{{a}}<%={{ }}=%>{{a}}", "{\"a\": 1}", "1{{a}}1", false},
  };
  for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
    _cleanup_free_ char *out = render(cases[i].template, cases[i].data, cases[i].html);
    assert_string_equal(out, cases[i].expected);
  }
}

/* Indentation beyond the spec's cases: nested standalone partials add up,
 * empty lines get no trailing blanks, an inline partial is not re-indented,
 * a closing tag that begins a line keeps that line indented, interpolated
 * data is never indented. */
static void test_indentation(void **state) {
  static const struct {
    const char *template, *data, *partials, *expected;
  } cases[] = {
      {"a\n  {{>outer}}\nz", "{}",
       "{\"outer\": \"o1\\n\\n  {{>inner}}\\no2 {{>inner}}\\n\", \"inner\": \"i1\\ni2\\n\"}",
       "a\n  o1\n\n    i1\n    i2\n  o2 i1\ni2\n\nz"},
      {"  {{>p}}\n", "{\"l\": [1, 2]}", "{\"p\": \"{{#l}}<{{.}}\\n{{/l}}>\\n\"}",
       "  <1\n  <2\n  >\n"},
      {"  {{>p}}\n", "{\"x\": \"1\\n2\"}", "{\"p\": \"{{x}}\\n\"}", "  1\n2\n"},
      /* set delimiters stay in their template */
      {"{{=<% %>=}}<%>p%>{{x}}", "{\"x\": 1}", "{\"p\": \"{{x}}<%x%>\"}", "1<%x%>{{x}}"},
  };
  for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
    json_t *data = json_loads(cases[i].data, 0, NULL),
           *partials = json_loads(cases[i].partials, 0, NULL);
    assert_non_null(data);
    assert_non_null(partials);
    struct tmpl_partials p = {.get = partial_from_json, .ud = partials};
    _cleanup_free_ char *out = NULL;
    assert_int_equal(tmpl_render(cases[i].template, data, &p, false, &out, NULL, 0), 0);
    assert_string_equal(out, cases[i].expected);
    json_decref(data);
    json_decref(partials);
  }
}

static void test_syntax_errors(void **state) {
  static const struct {
    const char *template, *err;
  } cases[] = {
      {"a\n{{#s}}x", "line 2: section 's' is not closed"},
      {"{{#s}}\n{{/t}}", "line 2: closing tag 't' does not match section 's' (line 1)"},
      {"x\ny\n{{/t}}", "line 3: closing tag 't' without an opening tag"},
      {"ab\n{{name", "line 2: unclosed tag"},
      {"{{a b}}", "line 1: invalid tag name 'a b'"},
      {"{{}}", "line 1: invalid tag name ''"},
      {"{{=<% =}}", "line 1: invalid set-delimiter tag"},
      {"{{! multi\nline }}\n{{^x}}", "line 3: inverted section 'x' is not closed"},
      {"{{<p}}{{$b}}{{/p}}", "line 1: closing tag 'p' does not match block 'b' (line 1)"},
  };
  for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
    struct tmpl *t = (struct tmpl *)1;
    char err[256] = "";
    assert_int_equal(tmpl_compile(cases[i].template, &t, err, sizeof err), -EINVAL);
    assert_ptr_equal(t, (struct tmpl *)1); /* untouched on failure */
    assert_string_equal(err, cases[i].err);
    char *out = (char *)1;
    assert_int_equal(tmpl_render(cases[i].template, NULL, NULL, false, &out, err, sizeof err),
                     -EINVAL);
    assert_ptr_equal(out, (char *)1);
  }
}

static const char *partial_self(void *ud, const char *name) {
  if (streq(name, "loop"))
    return "x{{>loop}}";
  if (streq(name, "bad"))
    return "ok\n{{#open}}";
  return NULL;
}

static void test_partial_errors(void **state) {
  struct tmpl_partials p = {.get = partial_self};
  char err[256] = "", *out = NULL;
  assert_int_equal(tmpl_render("{{>loop}}", NULL, &p, false, &out, err, sizeof err), -ELOOP);
  assert_null(out);
  assert_string_equal(err, "partials/blocks nested deeper than 64 (recursive partial?)");
  assert_int_equal(tmpl_render("a {{>bad}}", NULL, &p, false, &out, err, sizeof err), -EINVAL);
  assert_string_equal(err, "partial 'bad': line 2: section 'open' is not closed");
  /* a block overriding itself through its own content also ends */
  struct tmpl_partials p2 = {.get = partial_from_json};
  json_t *partials = json_pack("{s:s}", "p", "{{$a}}{{/a}}");
  p2.ud = partials;
  assert_int_equal(tmpl_render("{{<p}}{{$a}}x{{$a}}y{{/a}}{{/a}}{{/p}}", NULL, &p2, false, &out,
                               err, sizeof err),
                   -ELOOP);
  json_decref(partials);
  /* a missing partial is empty, and so is any partial without a source */
  assert_int_equal(tmpl_render("[{{>nope}}]", NULL, &p, false, &out, err, sizeof err), 0);
  assert_string_equal(out, "[]");
  free(out);
  assert_int_equal(tmpl_render("[{{>nope}}]", NULL, NULL, false, &out, err, sizeof err), 0);
  assert_string_equal(out, "[]");
  free(out);
}

/* get_compiled: partials handed over already compiled (what a template
 * directory cache does); a compiled template is rendered many times. */
struct compiled_set {
  struct tmpl *item;
  unsigned calls;
};

static int get_compiled(void *ud, const char *name, const struct tmpl **ret, char *err,
                        size_t errlen) {
  struct compiled_set *c = ud;
  c->calls++;
  if (streq(name, "fail")) {
    snprintf(err, errlen, "no can do");
    return -EIO;
  }
  *ret = streq(name, "item") ? c->item : NULL;
  return 0;
}

static void test_compiled(void **state) {
  struct compiled_set c = {0};
  char err[256] = "";
  assert_int_equal(tmpl_compile("<li>{{name}}</li>\n", &c.item, err, sizeof err), 0);
  struct tmpl *page = NULL;
  assert_int_equal(tmpl_compile("<ul>\n  {{#items}}\n  {{>item}}\n  {{/items}}\n</ul>\n", &page,
                                err, sizeof err),
                   0);
  struct tmpl_partials p = {.get_compiled = get_compiled, .ud = &c};
  json_t *data = json_pack("{s:[{s:s},{s:s}]}", "items", "name", "a&b", "name", "c");
  for (int round = 0; round < 3; round++) {
    _cleanup_free_ char *out = NULL;
    assert_int_equal(tmpl_render_compiled(page, data, &p, true, &out, err, sizeof err), 0);
    assert_string_equal(out, "<ul>\n  <li>a&amp;b</li>\n  <li>c</li>\n</ul>\n");
  }
  assert_int_equal(c.calls, 6);
  struct tmpl *bad = NULL;
  assert_int_equal(tmpl_compile("x{{>fail}}", &bad, err, sizeof err), 0);
  char *out = NULL;
  assert_int_equal(tmpl_render_compiled(bad, data, &p, true, &out, err, sizeof err), -EIO);
  assert_null(out);
  assert_string_equal(err, "no can do");
  json_decref(data);
  tmpl_free(bad);
  tmpl_free(page);
  tmpl_free(c.item);
  assert_null(tmpl_free(NULL));
}

static void test_args(void **state) {
  char *out = NULL;
  struct tmpl *t = NULL;
  assert_int_equal(tmpl_render(NULL, NULL, NULL, false, &out, NULL, 0), -EINVAL);
  assert_int_equal(tmpl_render("x", NULL, NULL, false, NULL, NULL, 0), -EINVAL);
  assert_int_equal(tmpl_compile(NULL, &t, NULL, 0), -EINVAL);
  assert_int_equal(tmpl_render_compiled(NULL, NULL, NULL, false, &out, NULL, 0), -EINVAL);
  /* no error buffer at all is fine */
  assert_int_equal(tmpl_render("{{#x}}", NULL, NULL, false, &out, NULL, 0), -EINVAL);
  assert_int_equal(tmpl_render("{{x}}", NULL, NULL, false, &out, NULL, 0), 0);
  assert_string_equal(out, "");
  free(out);
}

/* One cmocka test per spec file, named after it. */
#define SPEC_TEST(file)                                                                            \
  { .name = "spec " file, .test_func = test_spec_file, .initial_state = file }

int main(void) {
  const struct CMUnitTest tests[] = {
      SPEC_TEST("comments.json"),
      SPEC_TEST("delimiters.json"),
      SPEC_TEST("interpolation.json"),
      SPEC_TEST("inverted.json"),
      SPEC_TEST("partials.json"),
      SPEC_TEST("sections.json"),
      SPEC_TEST("~inheritance.json"),
      SPEC_TEST("~dynamic-names.json"),
      cmocka_unit_test(test_spec_all_files_known),
      cmocka_unit_test(test_values),
      cmocka_unit_test(test_indentation),
      cmocka_unit_test(test_syntax_errors),
      cmocka_unit_test(test_partial_errors),
      cmocka_unit_test(test_compiled),
      cmocka_unit_test(test_args),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
