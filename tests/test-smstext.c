/* Unit tests for notifiers/smstext: GSM-7/UCS-2 detection, septet and
 * UTF-16 unit counts, segment counts at the single/multipart boundaries,
 * escape sequences and surrogate pairs kept whole, UTF-8 validation, E.164. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/util.h"
#include "notifiers/smstext.h"

/* Returns s repeated n times (caller frees). */
static char *rep(const char *s, size_t n) {
  struct buf b = {0};
  for (size_t i = 0; i < n; i++)
    assert_int_equal(buf_puts(&b, s), 0);
  return buf_steal(&b);
}

/* prefix + s*n + suffix, caller frees. */
static char *mk(const char *prefix, const char *s, size_t n, const char *suffix) {
  _cleanup_free_ char *mid = rep(s, n);
  return strprintf("%s%s%s", prefix, mid, suffix);
}

static void check(const char *text, enum smstext_encoding enc, size_t chars, size_t units,
                  size_t segments) {
  struct smstext_info i;
  assert_int_equal(smstext_segments(text, &i), 0);
  assert_string_equal(smstext_encoding_to_string(i.encoding), smstext_encoding_to_string(enc));
  assert_int_equal(i.chars, chars);
  assert_int_equal(i.units, units);
  assert_int_equal(i.segments, segments);
}

static void test_gsm7(void **state) {
  check("", SMSTEXT_GSM7, 0, 0, 0);
  check("Hello", SMSTEXT_GSM7, 5, 5, 1);
  /* Every basic-table character outside ASCII letters, once each. */
  check("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
        "¡ÄÖÑÜ§¿äöñüà",
        SMSTEXT_GSM7, 75, 75, 1);
  /* All printable ASCII but the backtick and the extension characters. */
  check(" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ_"
        "abcdefghijklmnopqrstuvwxyz",
        SMSTEXT_GSM7, 86, 86, 1);
  /* Extension table: two septets each, text stays GSM-7. */
  check("€[]{}^~\\|\f", SMSTEXT_GSM7, 10, 20, 1);
  check("Pay 120€ by 1 March", SMSTEXT_GSM7, 19, 20, 1);
}

static void test_gsm7_boundaries(void **state) {
  static const struct {
    const char *prefix, *s;
    size_t n;
    const char *suffix;
    size_t chars, units, segments;
  } v[] = {
      {"", "a", 160, "", 160, 160, 1},  {"", "a", 161, "", 161, 161, 2}, /* 153 + 8 */
      {"", "a", 306, "", 306, 306, 2},  {"", "a", 307, "", 307, 307, 3},
      {"", "€", 80, "", 80, 160, 1},    {"", "€", 81, "", 81, 162, 2},
      {"", "a", 159, "€", 160, 161, 2},
  };
  for (size_t i = 0; i < ELEMENTSOF(v); i++) {
    _cleanup_free_ char *t = mk(v[i].prefix, v[i].s, v[i].n, v[i].suffix);
    check(t, SMSTEXT_GSM7, v[i].chars, v[i].units, v[i].segments);
  }
  /* 152 'a' fill part 1; "€" would straddle (152 + 2 > 153) so it opens
   * part 2, which then holds "€" + 151 'a' = 153; one 'a' is left:
   * 3 parts, where ceil(306 / 153) would say 2. */
  _cleanup_free_ char *a152 = rep("a", 152);
  _cleanup_free_ char *t = strprintf("%s€%s", a152, a152);
  check(t, SMSTEXT_GSM7, 305, 306, 3);
  _cleanup_free_ char *a151 = rep("a", 151);
  _cleanup_free_ char *t2 = strprintf("%s€%s", a152, a151);
  check(t2, SMSTEXT_GSM7, 304, 305, 2);
}

static void test_ucs2(void **state) {
  /* One character outside GSM-7 turns the whole text into UCS-2. */
  check("Hêllo", SMSTEXT_UCS2, 5, 5, 1);
  check("`", SMSTEXT_UCS2, 1, 1, 1);      /* backtick is not in GSM-7 */
  check("a\tb", SMSTEXT_UCS2, 3, 3, 1);   /* nor is TAB */
  check("ç", SMSTEXT_UCS2, 1, 1, 1);      /* only capital Ç is */
  check("δ", SMSTEXT_UCS2, 1, 1, 1);      /* only capital Greek letters are */
  check("€ 你好", SMSTEXT_UCS2, 4, 4, 1); /* € is one UTF-16 unit */
  check("😀", SMSTEXT_UCS2, 1, 2, 1);      /* U+1F600: surrogate pair */
  check("续约提醒：您的合同将于2027年3月1日到期。", SMSTEXT_UCS2, 23, 23, 1);
}

static void test_ucs2_boundaries(void **state) {
  static const struct {
    const char *s;
    size_t n;
    const char *suffix;
    size_t chars, units, segments;
  } v[] = {
      {"你", 70, "", 70, 70, 1},    {"你", 71, "", 71, 71, 2}, /* 67 + 4 */
      {"你", 134, "", 134, 134, 2}, {"你", 135, "", 135, 135, 3},
      {"😀", 35, "", 35, 70, 1},     {"😀", 36, "", 36, 72, 2},  /* 33 pairs = 66 units per part */
      {"😀", 66, "", 66, 132, 2},    {"😀", 67, "", 67, 134, 3}, /* ceil(134 / 67) would say 2 */
      {"a", 69, "😀", 70, 71, 2},
  };
  for (size_t i = 0; i < ELEMENTSOF(v); i++) {
    _cleanup_free_ char *t = mk("", v[i].s, v[i].n, v[i].suffix);
    check(t, SMSTEXT_UCS2, v[i].chars, v[i].units, v[i].segments);
  }
  /* 66 'a' fill part 1; the pair would straddle, so part 2 starts with it. */
  _cleanup_free_ char *a66 = rep("a", 66);
  _cleanup_free_ char *a65 = rep("a", 65);
  _cleanup_free_ char *t = strprintf("%s😀%s", a66, a66);
  check(t, SMSTEXT_UCS2, 133, 134, 3);
  _cleanup_free_ char *t2 = strprintf("%s😀%s", a66, a65);
  check(t2, SMSTEXT_UCS2, 132, 133, 2);
}

static void test_invalid_utf8(void **state) {
  static const char *bad[] = {
      "\x80",             /* lone continuation byte */
      "abc\xC3",          /* truncated */
      "\xC3(",            /* bad continuation */
      "\xC0\xAF",         /* overlong '/' */
      "\xE0\x80\xAF",     /* overlong */
      "\xF0\x80\x80\xAF", /* overlong */
      "\xED\xA0\x80",     /* UTF-16 surrogate U+D800 */
      "\xF4\x90\x80\x80", /* U+110000 */
      "\xF8\x88\x80\x80\x80",
      "\xFF",
  };
  struct smstext_info i = {.units = 42};
  for (size_t k = 0; k < ELEMENTSOF(bad); k++)
    assert_int_equal(smstext_segments(bad[k], &i), -EINVAL);
  assert_int_equal(smstext_segments(NULL, &i), -EINVAL);
  assert_int_equal(i.units, 42);
  /* The extremes that are valid (expected values cross-checked with a python
   * reference implementation of the same GSM 03.38 rules). */
  check("\xF4\x8F\xBF\xBF", SMSTEXT_UCS2, 1, 2, 1); /* U+10FFFF */
  check("\xEF\xBF\xBF", SMSTEXT_UCS2, 1, 1, 1);     /* U+FFFF */
  check("\xC2\x80", SMSTEXT_UCS2, 1, 1, 1);         /* U+0080 */
}

static void test_e164(void **state) {
  static const struct {
    const char *s;
    bool ok;
  } v[] = {
      {"+14155552671", true},
      {"+491701234567", true},
      {"+8613800138000", true},
      {"+12345678", true},          /* 8 digits */
      {"+123456789012345", true},   /* 15 digits */
      {"+1234567", false},          /* 7 */
      {"+1234567890123456", false}, /* 16 */
      {"+04155552671", false},
      {"14155552671", false},
      {"+1 415 555 2671", false},
      {"+1-415-555-2671", false},
      {"+1415555267a", false},
      {"++14155552671", false},
      {"+", false},
      {"", false},
      {NULL, false},
  };
  for (size_t i = 0; i < ELEMENTSOF(v); i++)
    assert_int_equal(smstext_is_e164(v[i].s), v[i].ok);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gsm7),         cmocka_unit_test(test_gsm7_boundaries),
      cmocka_unit_test(test_ucs2),         cmocka_unit_test(test_ucs2_boundaries),
      cmocka_unit_test(test_invalid_utf8), cmocka_unit_test(test_e164),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
