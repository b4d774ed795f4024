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

/* security: a size that would wrap the buffer's arithmetic is refused
 * before anything is copied (it used to pass the capacity check and write
 * past the allocation). */
static void test_buf_overflow(void **state) {
  struct buf b = {0};
  assert_int_equal(buf_puts(&b, "abc"), 0);
  assert_int_equal(buf_append(&b, "x", SIZE_MAX), -ENOMEM);
  assert_int_equal(buf_append(&b, "x", SIZE_MAX - 3), -ENOMEM);
  assert_int_equal(buf_append(&b, "x", SIZE_MAX / 2), -ENOMEM);
  assert_int_equal(b.len, 3);
  assert_string_equal(b.data, "abc");
  buf_free(&b);
}

/* security: years past 9999 do not fit the 20 characters; the buffer used
 * to be left undefined (unterminated) by strftime(). */
static void test_rfc3339_range(void **state) {
  char out[21];
  memset(out, 'x', sizeof out);
  assert_string_equal(format_rfc3339(INT64_C(253402300799), out), "9999-12-31T23:59:59Z");
  memset(out, 'x', sizeof out);
  assert_string_equal(format_rfc3339(INT64_C(253402300800), out), "invalid-time");
  memset(out, 'x', sizeof out);
  assert_string_equal(format_rfc3339(INT64_MAX, out), "invalid-time");
}

/* security: webhook URLs in logs keep scheme and host, never userinfo, path
 * or query (where capability tokens live). */
static void test_url_redact(void **state) {
  static const struct {
    const char *in, *out;
  } t[] = {
      {"https://hooks.slack.com/services/T000/B000/XXXXSECRET", "https://hooks.slack.com/..."},
      {"http://user:pa55@crm.example.com:8443/hook?token=SECRET#x",
       "http://crm.example.com:8443/..."},
      {"HTTPS://Example.COM?token=SECRET", "HTTPS://Example.COM/..."},
      {"https://example.com/", "https://example.com"},
      {"https://example.com", "https://example.com"},
      {"https://a@b@evil.example/p", "https://evil.example/..."},
      {"https://[::1]:8080/x", "https://[::1]:8080/..."},
      {"alice@example.com", "alice@example.com"},
      {"+4930123456", "+4930123456"},
      {"", ""},
  };
  char out[64];
  for (size_t i = 0; i < ELEMENTSOF(t); i++)
    assert_string_equal(url_redact(t[i].in, out, sizeof out), t[i].out);
  assert_string_equal(url_redact(NULL, out, sizeof out), "");
  char small[12];
  assert_string_equal(url_redact("https://example.com/secret", small, sizeof small), "https://exa");
}

/* security: what goes into a log line or a terminal cannot carry control
 * characters (forged lines, escape sequences) or invalid UTF-8. */
static void test_escape_controls(void **state) {
  static const struct {
    const char *in, *out;
  } t[] = {
      {"plain text", "plain text"},
      {"line\nrenewd[info]: forged", "line\\x0arenewd[info]: forged"},
      {"a\rb\tc\x1b[2Jd\x7f", "a\\x0db\\x09c\\x1b[2Jd\\x7f"},
      {"\xe7\xbb\xad\xe7\xba\xa6 ok", "\xe7\xbb\xad\xe7\xba\xa6 ok"}, /* 续约 */
      {"c1 \xc2\x9b"
       "31m",
       "c1 \\xc2\\x9b31m"}, /* U+009B CSI */
      {"nbsp \xc2\xa0.", "nbsp \xc2\xa0."},
      {"bad \xff\xc3(", "bad \\xff\\xc3("},
      {"over \xc0\xaf", "over \\xc0\\xaf"},
  };
  char out[128];
  for (size_t i = 0; i < ELEMENTSOF(t); i++) {
    size_t n = str_escape_controls(t[i].in, out, sizeof out);
    assert_string_equal(out, t[i].out);
    assert_int_equal(n, strlen(t[i].out));
  }
  /* output that does not fit is dropped whole, never half an escape */
  char small[8];
  assert_int_equal(str_escape_controls("abcd\nef", small, sizeof small), 4);
  assert_string_equal(small, "abcd");
  assert_int_equal(str_escape_controls("\xe7\xbb\xad\xe7\xbb\xad\xe7\xbb\xad", small, sizeof small),
                   6);
  assert_int_equal(str_escape_controls(NULL, small, sizeof small), 0);
  assert_string_equal(small, "");
}

/* format_cut: cuts long texts, never inside a UTF-8 character. */
static void test_format_cut(void **state) {
  (void)state;
  char b[6];
  assert_false(format_cut(b, sizeof b, "%s", "abc"));
  assert_string_equal(b, "abc");
  assert_true(format_cut(b, sizeof b, "%s", "abcdefgh"));
  assert_string_equal(b, "abcde");
  assert_true(format_cut(b, sizeof b, "ab%s", "\xe4\xbd\xa0\xe5\xa5\xbd")); /* ab你好 */
  assert_string_equal(b, "ab\xe4\xbd\xa0");
  assert_true(format_cut(b, sizeof b, "abc%s", "\xe4\xbd\xa0")); /* 你 would need 6 bytes */
  assert_string_equal(b, "abc");
  assert_true(format_cut(b, sizeof b, "abcd%s", "\xc3\xa9")); /* é cut after its lead byte */
  assert_string_equal(b, "abcd");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_format_cut),      cmocka_unit_test(test_buf),
      cmocka_unit_test(test_consttime),       cmocka_unit_test(test_parse),
      cmocka_unit_test(test_secret),          cmocka_unit_test(test_buf_overflow),
      cmocka_unit_test(test_rfc3339_range),   cmocka_unit_test(test_url_redact),
      cmocka_unit_test(test_escape_controls),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
