/* Security regression test for daemon/log: a log call is exactly one line on
 * the console, whatever the values carry (CR/LF, escape sequences, invalid
 * UTF-8 in a contract id, a customer's message or a remote server's error
 * text). Before the fix a "\n" in a value started a second, forged line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <unistd.h>

#include "core/util.h"
#include "daemon/log.h"

/* Runs one console log call with stderr redirected to a file; returns what
 * was written (caller frees). */
static char *capture(const struct log_ctx *ctx, const char *fmt, const char *arg) {
  char path[] = "/tmp/renewd-test-log-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  unlink(path);
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  assert_true(saved >= 0);
  assert_true(dup2(fd, STDERR_FILENO) >= 0);
  struct logger l;
  log_init(&l, LOG_TARGET_CONSOLE, LOG_DEBUG);
  log_msg(&l, LOG_WARNING, ctx, fmt, arg);
  fflush(stderr);
  assert_true(dup2(saved, STDERR_FILENO) >= 0);
  close(saved);
  char *text = NULL;
  _cleanup_free_ char *proc = strprintf("/proc/self/fd/%d", fd);
  assert_int_equal(read_full_file(proc, 65536, &text, NULL), 0);
  close(fd);
  return text;
}

static size_t count_char(const char *s, char c) {
  size_t n = 0;
  for (; *s; s++)
    n += *s == c;
  return n;
}

static void test_one_line(void **state) {
  struct log_ctx ctx = {.contract_id = "C-1\nrenewd[error]: fake", .channel = "sms\r"};
  _cleanup_free_ char *out =
      capture(&ctx, "inbound message: %s", "hello\nrenewd[info]: answer recorded\x1b[2K\x7f");
  assert_int_equal(count_char(out, '\n'), 1);
  assert_null(strchr(out, '\r'));
  assert_null(strchr(out, '\x1b'));
  assert_null(strchr(out, '\x7f'));
  assert_string_equal(out, "renewd[warning]: inbound message: hello\\x0arenewd[info]: answer "
                           "recorded\\x1b[2K\\x7f CONTRACT_ID=C-1\\x0arenewd[error]: fake "
                           "CHANNEL=sms\\x0d\n");
}

static void test_utf8_kept(void **state) {
  /* text in other scripts passes untouched; broken bytes are escaped */
  _cleanup_free_ char *out = capture(NULL, "%s", "\xe7\xbb\xad\xe7\xba\xa6 \xff");
  assert_string_equal(out, "renewd[warning]: \xe7\xbb\xad\xe7\xba\xa6 \\xff\n");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_one_line),
      cmocka_unit_test(test_utf8_kept),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
