/* Unit tests of core/locfmt: ICU dates, money, day counts and plural
 * categories in en, de and zh-CN, POSIX locale names, output cut at a
 * character boundary, and days left across zones (the customer's last day,
 * the reader's today). ICU output uses no-break spaces, compared as such. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "core/cal.h"
#include "core/locfmt.h"

#define NBSP "\xc2\xa0"

static struct locfmt *lf;
static struct cal *C;

static int setup(void **state) {
  (void)state;
  lf = locfmt_new();
  return lf && cal_new(&C) >= 0 ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  locfmt_free(lf);
  cal_free(C);
  return 0;
}

static void test_dates(void **state) {
  (void)state;
  char out[LOCFMT_MAX];
  assert_int_equal(locfmt_date(lf, "de", 2027, 10, 20, out, sizeof out), 0);
  assert_string_equal(out, "20. Oktober 2027");
  locfmt_date(lf, "zh-CN", 2027, 10, 20, out, sizeof out);
  assert_string_equal(out, "2027年10月20日");
  locfmt_date(lf, "zh_CN.UTF-8", 2027, 10, 20, out, sizeof out);
  assert_string_equal(out, "2027年10月20日");
  locfmt_date(lf, "en", 2027, 10, 20, out, sizeof out);
  assert_string_equal(out, "October 20, 2027");
  locfmt_date(lf, "en-GB", 2027, 10, 20, out, sizeof out);
  assert_string_equal(out, "20 October 2027");
  locfmt_date(lf, "", 2028, 2, 29, out, sizeof out); /* empty: English */
  assert_string_equal(out, "February 29, 2028");
  assert_int_equal(locfmt_date(lf, "de", 2027, 13, 1, out, sizeof out), -EINVAL);
  assert_string_equal(out, "2027-13-01");
  char small[8]; /* cut at a character boundary */
  locfmt_date(lf, "zh-CN", 2027, 10, 20, small, sizeof small);
  assert_string_equal(small, "2027年");
  struct cal_local l = {.year = 2027, .month = 10, .day = 20, .hour = 14, .minute = 30};
  locfmt_datetime(lf, "de", &l, out, sizeof out);
  assert_string_equal(out, "20. Oktober 2027 um 14:30");
}

static void test_money(void **state) {
  (void)state;
  char out[LOCFMT_MAX];
  locfmt_money(lf, "de", 120050, "EUR", out, sizeof out);
  assert_string_equal(out, "1.200,50" NBSP "€");
  locfmt_money(lf, "en", 120050, "EUR", out, sizeof out);
  assert_string_equal(out, "€1,200.50");
  locfmt_money(lf, "zh-CN", 1250000, "CNY", out, sizeof out);
  assert_string_equal(out, "¥12,500.00");
  locfmt_money(lf, "en", 1200, "JPY", out, sizeof out); /* no minor unit */
  assert_string_equal(out, "¥1,200");
  locfmt_money(lf, "de", 120050, NULL, out, sizeof out);
  assert_string_equal(out, "1.200,50");
  locfmt_number(lf, "de", 1234567, out, sizeof out);
  assert_string_equal(out, "1.234.567");
}

static void test_days_and_plurals(void **state) {
  (void)state;
  char out[LOCFMT_MAX];
  static const struct {
    const char *locale;
    int64_t n;
    const char *days, *in;
  } rows[] = {
      {"en", 1, "1 day", "in 1 day"},       {"en", 2, "2 days", "in 2 days"},
      {"en", 41, "41 days", "in 41 days"},  {"en", 0, "0 days", "today"},
      {"en", -2, "2 days", "2 days ago"},   {"de", 1, "1 Tag", "in 1 Tag"},
      {"de", 41, "41 Tage", "in 41 Tagen"}, {"de", 0, "0 Tage", "heute"},
      {"zh-CN", 41, "41天", "41天后"},      {"zh-CN", 1, "1天", "1天后"},
  };
  for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
    locfmt_days(lf, rows[i].locale, rows[i].n < 0 ? -rows[i].n : rows[i].n, out, sizeof out);
    assert_string_equal(out, rows[i].days);
    locfmt_in_days(lf, rows[i].locale, rows[i].n, out, sizeof out);
    assert_string_equal(out, rows[i].in);
  }
  locfmt_in_weeks(lf, "en", 2, out, sizeof out);
  assert_string_equal(out, "in 2 weeks");
  locfmt_in_months(lf, "de", 1, out, sizeof out);
  assert_string_equal(out, "in 1 Monat");
  assert_string_equal(locfmt_plural(lf, "en", 1), "one");
  assert_string_equal(locfmt_plural(lf, "en", 2), "other");
  assert_string_equal(locfmt_plural(lf, "ru", 3), "few");
  assert_string_equal(locfmt_plural(lf, "ru", 5), "many");
  assert_string_equal(locfmt_plural(lf, "zh", 1), "other");
  assert_string_equal(locfmt_plural(NULL, "en", 1), "other");
}

/* More locales than the cache holds: entries are replaced, output stays right. */
static void test_cache(void **state) {
  (void)state;
  static const char *const locs[] = {"en", "de", "fr", "es", "it", "nl", "pt", "sv", "zh", "ja"};
  char out[LOCFMT_MAX];
  for (int round = 0; round < 3; round++)
    for (size_t i = 0; i < sizeof locs / sizeof *locs; i++)
      assert_int_equal(locfmt_days(lf, locs[i], 3, out, sizeof out), 0);
  locfmt_days(lf, "de", 3, out, sizeof out);
  assert_string_equal(out, "3 Tage");
}

static int64_t at(const char *zone, int y, int m, int d, int hh, int mm) {
  return cal_from_local(cal_zone(C, zone), y, m, d, hh, mm, 0);
}

static void test_days_left(void **state) {
  (void)state;
  const struct cal_zone *berlin = cal_zone(C, "Europe/Berlin"),
                        *akl = cal_zone(C, "Pacific/Auckland"),
                        *la = cal_zone(C, "America/Los_Angeles");
  /* valid through 20 October 2026 in Berlin: expiry at midnight after it */
  int64_t exp = at("Europe/Berlin", 2026, 10, 21, 0, 0);
  struct cal_local last;
  locfmt_last_day(berlin, exp, &last);
  assert_int_equal(last.day, 20);
  /* sent 9 September: 41 by the calendar, whatever the hour */
  assert_int_equal(locfmt_days_left(berlin, at("Europe/Berlin", 2026, 9, 9, 0, 0), berlin, exp),
                   41);
  assert_int_equal(locfmt_days_left(berlin, at("Europe/Berlin", 2026, 9, 9, 23, 59), berlin, exp),
                   41);
  assert_int_equal(locfmt_days_left(berlin, at("Europe/Berlin", 2026, 10, 20, 12, 0), berlin, exp),
                   0);
  assert_int_equal(locfmt_days_left(berlin, at("Europe/Berlin", 2026, 10, 22, 12, 0), berlin, exp),
                   -2);
  /* across the end of DST (25 October) the count is still calendar days */
  int64_t exp2 = at("Europe/Berlin", 2026, 10, 27, 0, 0);
  assert_int_equal(
      locfmt_days_left(berlin, at("Europe/Berlin", 2026, 10, 24, 23, 30), berlin, exp2), 2);
  /* an owner in Auckland on 9 September 10:00 Berlin time is already on the 9th
   * evening; at 15:00 Berlin it is the 10th there: one day fewer */
  assert_int_equal(locfmt_days_left(akl, at("Europe/Berlin", 2026, 9, 9, 10, 0), berlin, exp), 41);
  assert_int_equal(locfmt_days_left(akl, at("Europe/Berlin", 2026, 9, 9, 15, 0), berlin, exp), 40);
  /* a reader in Los Angeles: still the 8th at 05:00 Berlin */
  assert_int_equal(locfmt_days_left(la, at("Europe/Berlin", 2026, 9, 9, 5, 0), berlin, exp), 42);
  assert_int_equal(locfmt_date_diff(2028, 2, 28, 2028, 3, 1), 2);
  assert_int_equal(locfmt_date_diff(2027, 12, 31, 2027, 1, 1), -364);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dates),
      cmocka_unit_test(test_money),
      cmocka_unit_test(test_days_and_plurals),
      cmocka_unit_test(test_cache),
      cmocka_unit_test(test_days_left),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
