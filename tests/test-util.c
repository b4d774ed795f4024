/* Unit tests for core/util: buffers, secrets, parsing, constant-time compare. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <unistd.h>

#include "core/util.h"

static void test_buf(void **state) {
  struct buf b = {0};
  assert_int_equal(buf_puts(&b, "abc"), 0);
  assert_int_equal(buf_printf(&b, "-%d-", 42), 0);
  for (int i = 0; i < 1000; i++)
    assert_int_equal(buf_puts(&b, "x"), 0);
  assert_int_equal(b.len, 3 + 4 + 1000);
  assert_memory_equal(b.data, "abc-42-x", 8);
  _cleanup_free_ char *s = buf_steal(&b);
  assert_null(b.data);
  assert_int_equal(strlen(s), 1007);
}

static void test_consttime(void **state) {
  assert_true(memeq_consttime("abc", 3, "abc", 3));
  assert_false(memeq_consttime("abc", 3, "abd", 3));
  assert_false(memeq_consttime("abc", 3, "abcd", 4));
}

static void test_parse(void **state) {
  int64_t v;
  assert_int_equal(parse_int64("-12", &v), 0);
  assert_int_equal(v, -12);
  assert_int_equal(parse_int64("12x", &v), -EINVAL);
  assert_int_equal(parse_int64("99999999999999999999", &v), -ERANGE);
  assert_int_equal(parse_boolean("Yes"), 1);
  assert_int_equal(parse_boolean("off"), 0);
  assert_int_equal(parse_boolean("maybe"), -EINVAL);
  char out[21];
  assert_string_equal(format_rfc3339(0, out), "1970-01-01T00:00:00Z");
  assert_string_equal(format_rfc3339(1795379487, out), "2026-11-22T20:31:27Z");
}

static void test_secret(void **state) {
  char dir[] = "/tmp/renewd-test-XXXXXX";
  assert_non_null(mkdtemp(dir));
  _cleanup_free_ char *path = strprintf("%s/token", dir);
  FILE *f = fopen(path, "we");
  fputs("s3cret\n", f);
  fclose(f);
  _cleanup_free_ char *s = NULL;
  assert_int_equal(read_secret(path, &s), 0);
  assert_string_equal(s, "s3cret");
  free(s);
  s = NULL;
  setenv("CREDENTIALS_DIRECTORY", dir, 1);
  assert_int_equal(read_secret("token", &s), 0);
  assert_string_equal(s, "s3cret");
  unsetenv("CREDENTIALS_DIRECTORY");
  assert_int_equal(read_secret("token2", &s), -ENOENT);
  unlink(path);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_buf),
      cmocka_unit_test(test_consttime),
      cmocka_unit_test(test_parse),
      cmocka_unit_test(test_secret),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
