/* Unit tests for core/cal: zones and DST gaps/overlaps, durations, RRULE
 * expansion, holidays from .ics, send windows, date parsing and formatting,
 * and a randomised cross-check of the conversion tables against libical. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <inttypes.h>
#include <libical/ical.h>
#include <time.h>
#include <unistd.h>

#include "core/cal.h"
#include "core/util.h"

/* UTC instant of a civil date and time (timegm needs no TZ). */
static int64_t utc(int y, int mo, int d, int h, int mi, int s) {
  struct tm tm = {
      .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s};
  return (int64_t)timegm(&tm);
}

static struct cal *C; /* one per test group; see setup() */

static uint64_t xorshift(uint64_t *s) {
  *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
  return *s;
}

static int setup(void **state) {
  return cal_new(&C);
}
static int teardown(void **state) {
  C = cal_free(C);
  return 0;
}

static const struct cal_zone *zone(const char *name) {
  const struct cal_zone *z = cal_zone(C, name);
  if (!z)
    fail_msg("zone %s unknown", name);
  return z;
}

static void assert_wall(const struct cal_zone *z, int64_t t, int y, int mo, int d, int h, int mi,
                        int s) {
  struct cal_local l;
  cal_to_local(z, t, &l);
  if (l.year != y || l.month != mo || l.day != d || l.hour != h || l.minute != mi || l.second != s)
    fail_msg("%s %" PRId64
             ": %04d-%02d-%02d %02d:%02d:%02d, expected %04d-%02d-%02d %02d:%02d:%02d",
             cal_zone_name(z), t, l.year, l.month, l.day, l.hour, l.minute, l.second, y, mo, d, h,
             mi, s);
}

static void test_zone(void **state) {
  const struct cal_zone *a = cal_zone(C, "Europe/Berlin");
  assert_non_null(a);
  assert_ptr_equal(cal_zone(C, "Europe/Berlin"), a);
  assert_string_equal(cal_zone_name(a), "Europe/Berlin");
  assert_non_null(cal_zone(C, "UTC"));
  assert_non_null(cal_zone(C, "America/Argentina/Buenos_Aires"));
  static const char *const bad[] = {"Foo/Bar",          "",
                                    "../../etc/passwd", "/etc/localtime",
                                    "Europe//Berlin",   "Europe/Berlin/",
                                    "europe/berlin",    "Europe/Ber lin"};
  for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
    assert_null(cal_zone(C, bad[i]));
    assert_null(cal_zone(C, bad[i])); /* negative cache */
  }
  assert_null(cal_zone(C, NULL));
}

static void test_to_local(void **state) {
  static const struct {
    const char *zone;
    int64_t t;
    int y, mo, d, h, mi, s, wday, off;
  } rows[] = {
      {"Europe/Berlin", 1774745999 /* 2026-03-29T00:59:59Z */, 2026, 3, 29, 1, 59, 59, 0, 3600},
      {"Europe/Berlin", 1774746000, 2026, 3, 29, 3, 0, 0, 0, 7200},
      {"Europe/Berlin", 1792889999 /* 2026-10-25T00:59:59Z */, 2026, 10, 25, 2, 59, 59, 0, 7200},
      {"Europe/Berlin", 1792890000, 2026, 10, 25, 2, 0, 0, 0, 3600},
      {"Asia/Kolkata", 1767225600 /* 2026-01-01T00:00Z */, 2026, 1, 1, 5, 30, 0, 4, 19800},
      {"America/St_Johns", 1767268800 /* 2026-01-01T12:00Z */, 2026, 1, 1, 8, 30, 0, 4, -12600},
      {"Australia/Lord_Howe", 1767225600, 2026, 1, 1, 11, 0, 0, 4, 39600},
      {"Pacific/Chatham", 1767225600, 2026, 1, 1, 13, 45, 0, 4, 49500},
      {"Asia/Tokyo", 0, 1970, 1, 1, 9, 0, 0, 4, 32400},
      {"America/New_York", 1793512800 /* 2026-11-01T06:00Z */, 2026, 11, 1, 1, 0, 0, 0, -18000},
      {"America/New_York", 1793512799, 2026, 11, 1, 1, 59, 59, 0, -14400},
      {"UTC", -1, 1969, 12, 31, 23, 59, 59, 3, 0},
      {"UTC", 951782400 /* 2000-02-29 */, 2000, 2, 29, 0, 0, 0, 2, 0},
      {"Europe/Berlin", 4102444800 /* 2100-01-01Z */, 2100, 1, 1, 1, 0, 0, 5, 3600},
  };
  for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
    struct cal_local l;
    cal_to_local(zone(rows[i].zone), rows[i].t, &l);
    assert_wall(zone(rows[i].zone), rows[i].t, rows[i].y, rows[i].mo, rows[i].d, rows[i].h,
                rows[i].mi, rows[i].s);
    assert_int_equal(l.wday, rows[i].wday);
    assert_int_equal(l.utc_offset, rows[i].off);
  }
  /* Far outside the tables: clamped, no crash. */
  struct cal_local l;
  cal_to_local(zone("Europe/Berlin"), INT64_MAX, &l);
  assert_true(l.year >= 9999 && l.year <= 10000);
  cal_to_local(zone("Europe/Berlin"), INT64_MIN, &l);
  assert_true(l.year <= 1);
}

/* Gaps move forward by the gap's length, overlaps take the earlier instant. */
static void test_from_local(void **state) {
  static const struct {
    const char *zone;
    int y, mo, d, h, mi; /* asked */
    int64_t want;        /* expected instant */
    int wh, wmi;         /* its wall time */
  } rows[] = {
      /* Europe/Berlin: 02:00 -> 03:00 on 29 March, 03:00 -> 02:00 on 25 October. */
      {"Europe/Berlin", 2026, 3, 29, 2, 30, 1774747800 /* 01:30Z */, 3, 30},
      {"Europe/Berlin", 2026, 3, 29, 2, 0, 1774746000, 3, 0},
      {"Europe/Berlin", 2026, 3, 29, 1, 59, 1774745940, 1, 59},
      {"Europe/Berlin", 2026, 3, 29, 3, 0, 1774746000, 3, 0},
      {"Europe/Berlin", 2026, 10, 25, 2, 30, 1792888200 /* 00:30Z, CEST */, 2, 30},
      {"Europe/Berlin", 2026, 10, 25, 3, 0, 1792893600, 3, 0},
      {"Europe/Berlin", 2026, 7, 1, 12, 0, 1782900000, 12, 0},
      /* America/New_York */
      {"America/New_York", 2026, 3, 8, 2, 30, 1772955000 /* 07:30Z */, 3, 30},
      {"America/New_York", 2026, 11, 1, 1, 30, 1793511000 /* 05:30Z, EDT */, 1, 30},
      /* Australia/Lord_Howe: 30-minute shifts, 02:00 -> 02:30 and 02:00 -> 01:30. */
      {"Australia/Lord_Howe", 2026, 10, 4, 2, 15, 1791042300 /* 3 Oct 15:45Z */, 2, 45},
      {"Australia/Lord_Howe", 2026, 4, 5, 1, 45, 1775313900 /* 4 Apr 14:45Z, +11 */, 1, 45},
      {"Australia/Lord_Howe", 2026, 4, 5, 2, 0, 1775316600 /* +10:30 */, 2, 0},
      /* Asia/Kolkata +5:30, America/St_Johns -3:30/-2:30 */
      {"Asia/Kolkata", 2026, 6, 1, 9, 0, 1780284600, 9, 0},
      {"America/St_Johns", 2026, 3, 8, 2, 30, 1772949600 /* 06:00Z */, 3, 30},
      {"America/St_Johns", 2026, 11, 1, 1, 30, 1793505600 /* 04:00Z, NDT */, 1, 30},
      {"America/St_Johns", 2026, 1, 15, 9, 0, 1768480200, 9, 0},
      /* Midnight that does not exist. */
      {"America/Sao_Paulo", 2018, 11, 4, 0, 0, 1541300400 /* 03:00Z */, 1, 0},
      {"America/Havana", 2026, 3, 8, 0, 0, 1772946000 /* 05:00Z */, 1, 0},
  };
  for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
    const struct cal_zone *z = zone(rows[i].zone);
    int64_t t = cal_from_local(z, rows[i].y, rows[i].mo, rows[i].d, rows[i].h, rows[i].mi, 0);
    if (t != rows[i].want)
      fail_msg("row %zu %s: %" PRId64 " != %" PRId64, i, rows[i].zone, t, rows[i].want);
    struct cal_local l;
    cal_to_local(z, t, &l);
    assert_int_equal(l.hour, rows[i].wh);
    assert_int_equal(l.minute, rows[i].wmi);
  }
  /* Normalisation like mktime(). */
  const struct cal_zone *b = zone("Europe/Berlin");
  assert_int_equal(cal_from_local(b, 2026, 13, 1, 0, 0, 0), cal_from_local(b, 2027, 1, 1, 0, 0, 0));
  assert_int_equal(cal_from_local(b, 2026, 3, 0, 0, 0, 0), cal_from_local(b, 2026, 2, 28, 0, 0, 0));
  assert_int_equal(cal_from_local(b, 2028, 3, 0, 0, 0, 0), cal_from_local(b, 2028, 2, 29, 0, 0, 0));
  assert_int_equal(cal_from_local(b, 2026, 1, 1, 25, 0, 0), cal_from_local(b, 2026, 1, 2, 1, 0, 0));
  assert_int_equal(cal_from_local(b, 2026, 0, 1, 0, 0, 0), cal_from_local(b, 2025, 12, 1, 0, 0, 0));
  assert_int_equal(cal_from_local(zone("UTC"), 1970, 1, 1, 0, 0, -1), -1);
}

static void test_duration(void **state) {
  static const struct {
    const char *s;
    bool neg;
    int32_t days;
    int64_t secs;
    const char *canon;
  } good[] = {
      {"-P60D", true, 60, 0, "-P60D"},
      {"P1W", false, 7, 0, "P7D"},
      {"-PT36H", true, 0, 129600, "-PT36H"},
      {"P1DT2H", false, 1, 7200, "P1DT2H"},
      {"PT0S", false, 0, 0, "PT0S"},
      {"+P3D", false, 3, 0, "P3D"},
      {"P1W2D", false, 9, 0, "P9D"},
      {"PT90M", false, 0, 5400, "PT1H30M"},
      {"P2DT3H4M5S", false, 2, 11045, "P2DT3H4M5S"},
      {"-PT0S", false, 0, 0, "PT0S"},
      {"PT1H1S", false, 0, 3601, "PT1H1S"},
      {"P0D", false, 0, 0, "PT0S"},
  };
  for (size_t i = 0; i < ELEMENTSOF(good); i++) {
    struct cal_duration d;
    char out[64];
    if (cal_duration_parse(good[i].s, &d) < 0)
      fail_msg("rejected %s", good[i].s);
    assert_int_equal(d.negative, good[i].neg);
    assert_int_equal(d.days, good[i].days);
    assert_int_equal(d.seconds, good[i].secs);
    cal_duration_format(&d, out, sizeof out);
    assert_string_equal(out, good[i].canon);
    /* libical agrees */
    struct icaldurationtype ld = icaldurationtype_from_string(good[i].s);
    assert_false(icaldurationtype_is_bad_duration(ld));
    assert_int_equal((int64_t)ld.weeks * 7 + ld.days, d.days);
    assert_int_equal((int64_t)ld.hours * 3600 + ld.minutes * 60 + ld.seconds, d.seconds);
  }
  static const char *const bad[] = {
      "60d",    "P",    "-P-1D", "PT", "P1DT", "p1d",  "P1D2H", "P2D1W",        "PT1M1H",   "P1.5D",
      "PT1.5H", " P1D", "P1D ",  "",   "P1H",  "PT1D", "--P1D", "P9999999999D", "P1DT1H1H", "PTH"};
  for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
    struct cal_duration d = {.days = 42};
    if (cal_duration_parse(bad[i], &d) != -EINVAL)
      fail_msg("accepted '%s'", bad[i]);
    assert_int_equal(d.days, 42); /* untouched */
  }
}

static void test_add_duration(void **state) {
  struct cal_duration d;
  const struct cal_zone *b = zone("Europe/Berlin");

  /* Expiry at local midnight 1 May (CEST); -P60D is local midnight 2 March (CET). */
  int64_t exp = cal_from_local(b, 2026, 5, 1, 0, 0, 0);
  assert_int_equal(cal_duration_parse("-P60D", &d), 0);
  int64_t t = cal_add_duration(b, exp, &d);
  assert_int_equal(t, cal_from_local(b, 2026, 3, 2, 0, 0, 0));
  assert_wall(b, t, 2026, 3, 2, 0, 0, 0);
  assert_int_equal(exp - t, 60 * 86400 - 3600);

  /* Hours are exact. */
  assert_int_equal(cal_duration_parse("-PT36H", &d), 0);
  assert_int_equal(cal_add_duration(b, exp, &d), exp - 36 * 3600);
  assert_int_equal(cal_duration_parse("PT24H", &d), 0);
  int64_t sat = cal_from_local(b, 2026, 3, 28, 12, 0, 0);
  assert_int_equal(cal_add_duration(b, sat, &d), sat + 86400);
  assert_wall(b, sat + 86400, 2026, 3, 29, 13, 0, 0);
  /* A day over spring-forward is 23 hours. */
  assert_int_equal(cal_duration_parse("P1D", &d), 0);
  assert_int_equal(cal_add_duration(b, sat, &d), sat + 23 * 3600);
  assert_int_equal(cal_duration_parse("P1DT2H", &d), 0);
  assert_int_equal(cal_add_duration(b, sat, &d), sat + 25 * 3600);
  /* Landing in a gap: moved forward. */
  const struct cal_zone *ny = zone("America/New_York");
  assert_int_equal(cal_duration_parse("-P1D", &d), 0);
  t = cal_add_duration(ny, cal_from_local(ny, 2026, 3, 9, 2, 30, 0), &d);
  assert_wall(ny, t, 2026, 3, 8, 3, 30, 0);
  /* Lord Howe, -P60D across its 30-minute change (5 April). */
  const struct cal_zone *lh = zone("Australia/Lord_Howe");
  assert_int_equal(cal_duration_parse("-P60D", &d), 0);
  exp = cal_from_local(lh, 2026, 5, 1, 0, 0, 0);
  t = cal_add_duration(lh, exp, &d);
  assert_wall(lh, t, 2026, 3, 2, 0, 0, 0);
  assert_int_equal(exp - t, 60 * 86400 + 1800);
  /* Weeks, saturation, NULL. */
  assert_int_equal(cal_duration_parse("P2W", &d), 0);
  assert_int_equal(cal_add_duration(zone("UTC"), 0, &d), 14 * 86400);
  assert_int_equal(cal_add_duration(b, 12345, NULL), 12345);
  d = (struct cal_duration){.seconds = INT64_MAX};
  assert_int_equal(cal_add_duration(b, 10, &d), INT64_MAX);
}

static void test_rrule(void **state) {
  char err[256];
  struct cal_rrule *r = NULL;
  int64_t out[16];
  const struct cal_zone *b = zone("Europe/Berlin");

  /* Weekly x3 across the March change: same wall time, 7 days minus 1 h. */
  assert_int_equal(cal_rrule_parse("FREQ=WEEKLY;COUNT=3", &r, err, sizeof err), 0);
  int64_t s = cal_from_local(b, 2026, 3, 22, 9, 0, 0);
  assert_int_equal(cal_rrule_expand(r, b, s, TIME_NEVER, out, 16), 3);
  assert_int_equal(out[0], s);
  assert_int_equal(out[1], cal_from_local(b, 2026, 3, 29, 9, 0, 0));
  assert_int_equal(out[1] - out[0], 7 * 86400 - 3600);
  assert_int_equal(out[2], cal_from_local(b, 2026, 4, 5, 9, 0, 0));
  /* Wall time in the gap on one week only: that one moves, the next does not. */
  s = cal_from_local(b, 2026, 3, 22, 2, 30, 0);
  assert_int_equal(cal_rrule_expand(r, b, s, TIME_NEVER, out, 16), 3);
  assert_wall(b, out[1], 2026, 3, 29, 3, 30, 0);
  assert_wall(b, out[2], 2026, 4, 5, 2, 30, 0);
  /* until is exclusive, max bounds. */
  assert_int_equal(cal_rrule_expand(r, b, s, out[2], out, 16), 2);
  assert_int_equal(cal_rrule_expand(r, b, s, TIME_NEVER, out, 1), 1);
  assert_int_equal(cal_rrule_expand(r, b, s, s, out, 16), 0);
  r = cal_rrule_free(r);

  /* Unbounded: stops at until. */
  assert_int_equal(cal_rrule_parse("FREQ=DAILY", &r, err, sizeof err), 0);
  s = cal_from_local(b, 2026, 10, 23, 10, 0, 0);
  assert_int_equal(cal_rrule_expand(r, b, s, s + 5 * 86400, out, 16), 5);
  assert_int_equal(out[2] - out[1], 25 * 3600); /* over the October change */
  assert_int_equal(out[3] - out[2], 24 * 3600);
  assert_int_equal(cal_rrule_expand(r, b, s, TIME_NEVER, out, 16), 16);
  r = cal_rrule_free(r);

  /* Interval, case-insensitive. */
  assert_int_equal(cal_rrule_parse("freq=daily;interval=3;count=3", &r, err, sizeof err), 0);
  s = utc(2026, 1, 1, 8, 0, 0);
  assert_int_equal(cal_rrule_expand(r, zone("UTC"), s, TIME_NEVER, out, 16), 3);
  assert_int_equal(out[2], s + 6 * 86400);
  r = cal_rrule_free(r);

  /* UNTIL (UTC) is inclusive. */
  assert_int_equal(cal_rrule_parse("FREQ=DAILY;UNTIL=20260103T080000Z", &r, err, sizeof err), 0);
  assert_int_equal(cal_rrule_expand(r, zone("UTC"), s, TIME_NEVER, out, 16), 3);
  r = cal_rrule_free(r);

  /* DTSTART counts as the first occurrence even if the rule does not match it. */
  assert_int_equal(cal_rrule_parse("FREQ=WEEKLY;BYDAY=MO;COUNT=2", &r, err, sizeof err), 0);
  s = utc(2026, 3, 22, 9, 0, 0); /* a Sunday */
  assert_int_equal(cal_rrule_expand(r, zone("UTC"), s, TIME_NEVER, out, 16), 2);
  assert_int_equal(out[1], utc(2026, 3, 23, 9, 0, 0));
  r = cal_rrule_free(r);

  /* Last business day of the month. */
  assert_int_equal(
      cal_rrule_parse("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", &r, err, sizeof err), 0);
  s = utc(2026, 1, 30, 9, 0, 0);
  assert_int_equal(cal_rrule_expand(r, zone("UTC"), s, TIME_NEVER, out, 3), 3);
  assert_int_equal(out[1], utc(2026, 2, 27, 9, 0, 0));
  assert_int_equal(out[2], utc(2026, 3, 31, 9, 0, 0));
  r = cal_rrule_free(r);

  /* NULL rule: dtstart only. */
  assert_int_equal(cal_rrule_expand(NULL, b, 100, TIME_NEVER, out, 16), 1);

  static const struct {
    const char *rule, *msg;
  } bad[] = {
      {"FREQ=FOO", "unknown FREQ 'FOO'"},
      {"garbage", "'GARBAGE' is not NAME=VALUE"},
      {"", "empty rule"},
      {"FREQ=DAILY;;COUNT=2", "empty part"},
      {"FREQ=DAILY;COUNT=0", "COUNT must be at least 1"},
      {"FREQ=DAILY;COUNT=x", "COUNT must be an integer"},
      {"FREQ=DAILY;COUNT=-1", "COUNT must be an integer"},
      {"FREQ=DAILY;INTERVAL=0", "INTERVAL must be at least 1"},
      {"FREQ=DAILY;COUNT=2;UNTIL=20270101T000000Z", "COUNT and UNTIL"},
      {"COUNT=3", "missing FREQ"},
      {"FREQ=DAILY;FREQ=DAILY", "FREQ given twice"},
      {"FREQ=DAILY;FOO=1", "unknown part 'FOO'"},
      {"FREQ=SECONDLY", "SECONDLY is not supported"},
      {"FREQ=WEEKLY;BYDAY=XX", "bad value in 'BYDAY=XX'"},
      {"FREQ=DAILY;UNTIL=2027", "UNTIL must be a date"},
      {"FREQ=DAILY;UNTIL=20270230", "UNTIL must be a date"},
      {"FREQ=WEEKLY;BYDAY=MO,XX", "bad value in 'BYDAY=MO,XX'"},
      {"FREQ=YEARLY;BYMONTH=13", "libical rejects"},
      {"FREQ=MONTHLY;BYMONTH=4;BYMONTHDAY=31", "BYMONTHDAY never falls"},
      {"FREQ=WEEKLY;BYMONTHDAY=1", "not allowed with FREQ=WEEKLY"},
      {"FREQ=DAILY;BYDAY=1MO", "needs FREQ=MONTHLY or YEARLY"},
      {"FREQ=HOURLY;BYMONTH=1", "BYMONTH is not supported with FREQ=HOURLY"},
      {"FREQ=MONTHLY;BYWEEKNO=1", "BYWEEKNO is only allowed"},
      {"FREQ=YEARLY;BYMONTH=2", "never repeats after a start on 2027-01-31"},
      {"FREQ=DAILY;COUNT=1;RSCALE=GREGORIAN", "unknown part 'RSCALE'"},
      {"RRULE:FREQ=DAILY", "unknown part 'RRULE:FREQ'"},
  };
  for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
    r = NULL;
    if (cal_rrule_parse(bad[i].rule, &r, err, sizeof err) != -EINVAL)
      fail_msg("accepted '%s'", bad[i].rule);
    assert_null(r);
    if (!strstr(err, bad[i].msg))
      fail_msg("'%s': message '%s' lacks '%s'", bad[i].rule, err, bad[i].msg);
  }
}

/* cal_rrule_expand (arithmetic for rules without BY parts, libical for the
 * rest) against libical's iterator run here on the floating wall time of
 * dtstart, each occurrence converted with cal_from_local(). */
#define DAYS(n) ((int64_t)(n)*86400)

static void test_rrule_crosscheck(void **state) {
  static const struct {
    const char *rule;
    int64_t span; /* until = dtstart + span */
#define DAYS(n) ((int64_t)(n)*86400)
  } rules[] = {
      {"FREQ=DAILY", DAYS(200)},
      {"FREQ=DAILY;INTERVAL=3;COUNT=3", DAYS(200)},
      {"FREQ=WEEKLY;COUNT=5", DAYS(3 * 365)},
      {"FREQ=WEEKLY;INTERVAL=2", DAYS(3 * 365)},
      {"FREQ=MONTHLY", DAYS(20 * 365)},
      {"FREQ=MONTHLY;INTERVAL=5;COUNT=6", DAYS(20 * 365)},
      {"FREQ=YEARLY;COUNT=4", DAYS(100 * 365)},
      {"FREQ=YEARLY;INTERVAL=3", DAYS(100 * 365)},
      {"FREQ=HOURLY;INTERVAL=7", DAYS(60)},
      {"FREQ=MINUTELY;INTERVAL=45;COUNT=40", DAYS(5)},
      {"FREQ=WEEKLY;BYDAY=MO,TH", DAYS(365)},
      {"FREQ=MONTHLY;BYMONTHDAY=-1;COUNT=10", DAYS(5 * 365)},
  };
  static const char *const zones[] = {"Europe/Berlin",    "America/New_York", "Australia/Lord_Howe",
                                      "America/St_Johns", "Asia/Kolkata",     "UTC"};
  uint64_t seed = 0x51ed270b27f0ab3u;
  for (size_t ri = 0; ri < ELEMENTSOF(rules); ri++) {
    char err[256];
    struct cal_rrule *r = NULL;
    assert_int_equal(cal_rrule_parse(rules[ri].rule, &r, err, sizeof err), 0);
    /* RFC 5545: DTSTART is the first occurrence and counts for COUNT, also
     * when it does not match the rule (libical counts only matches). */
    struct icalrecurrencetype lr = icalrecurrencetype_from_string(rules[ri].rule);
    int count = lr.count;
    lr.count = 0;
    for (int i = 0; i < 80; i++) {
      uint64_t x = xorshift(&seed);
      const struct cal_zone *z = zone(zones[x % ELEMENTSOF(zones)]);
      int y = 2000 + (int)((x >> 8) % 40), mo = 1 + (int)((x >> 16) % 12),
          d = 1 + (int)((x >> 20) % 31), h = (int)((x >> 28) % 24), mi = (int)((x >> 36) % 60);
      if ((x >> 44) % 3 == 0) /* near a DST change, on a day that ends a month */
        mo = (x >> 46) % 2 ? 3 : 10, h = (int)((x >> 48) % 4);
      if ((x >> 52) % 5 == 0)
        y = 2028, mo = 2, d = 29;
      int dim = mo == 2 ? (y % 4 ? 28 : 29) : mo == 4 || mo == 6 || mo == 9 || mo == 11 ? 30 : 31;
      d = MIN(d, dim);
      int64_t start = cal_from_local(z, y, mo, d, h, mi, 0);
      int64_t until = start + rules[ri].span;
      int64_t got[512], want[600];
      size_t n = cal_rrule_expand(r, z, start, until, got, ELEMENTSOF(got));
      assert_true(n < ELEMENTSOF(got));

      struct cal_local l;
      cal_to_local(z, start, &l);
      struct icaltimetype st = icaltime_null_time();
      st.year = l.year, st.month = l.month, st.day = l.day, st.hour = l.hour, st.minute = l.minute,
      st.second = l.second;
      icalrecur_iterator *it = icalrecur_iterator_new(lr, st);
      assert_non_null(it);
      size_t m = 0;
      int emitted = 1;
      want[m++] = start;
      for (struct icaltimetype o = icalrecur_iterator_next(it);
           !icaltime_is_null_time(o) && (!count || emitted < count);
           o = icalrecur_iterator_next(it)) {
        if (icaltime_compare(o, st) == 0)
          continue;
        emitted++;
        int64_t t = cal_from_local(z, o.year, o.month, o.day, o.hour, o.minute, o.second);
        if (t >= until + 2 * 86400)
          break;
        if (t < until && m < ELEMENTSOF(want))
          want[m++] = t;
      }
      icalrecur_iterator_free(it);
      /* sort, dedupe */
      for (size_t a = 1; a < m; a++)
        for (size_t b = a; b > 0 && want[b - 1] > want[b]; b--) {
          int64_t tmp = want[b];
          want[b] = want[b - 1];
          want[b - 1] = tmp;
        }
      size_t k = 0;
      for (size_t a = 0; a < m; a++)
        if (k == 0 || want[k - 1] != want[a])
          want[k++] = want[a];
      if (n != k)
        fail_msg("%s from %04d-%02d-%02d %02d:%02d in %s: %zu occurrences, libical %zu",
                 rules[ri].rule, l.year, l.month, l.day, l.hour, l.minute, cal_zone_name(z), n, k);
      for (size_t a = 0; a < n; a++)
        if (got[a] != want[a])
          fail_msg("%s from %04d-%02d-%02d %02d:%02d in %s: #%zu %" PRId64 " != %" PRId64,
                   rules[ri].rule, l.year, l.month, l.day, l.hour, l.minute, cal_zone_name(z), a,
                   got[a], want[a]);
    }
    cal_rrule_free(r);
  }
}

static char *write_temp(const char *dir, const char *name, const char *text) {
  char *path = strprintf("%s/%s", dir, name);
  FILE *f = fopen(path, "we");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  return path;
}

static const char holidays_ics[] = "BEGIN:VCALENDAR\r\n"
                                   "VERSION:2.0\r\n"
                                   "PRODID:-//renewd//test//EN\r\n"
                                   "BEGIN:VEVENT\r\n"
                                   "UID:xmas@test\r\n"
                                   "DTSTART;VALUE=DATE:20201225\r\n"
                                   "DTEND;VALUE=DATE:20201227\r\n"
                                   "RRULE:FREQ=YEARLY\r\n"
                                   "SUMMARY:Christmas\r\n"
                                   "END:VEVENT\r\n"
                                   "BEGIN:VEVENT\r\n"
                                   "UID:bridge@test\r\n"
                                   "DTSTART;VALUE=DATE:20261228\r\n"
                                   "SUMMARY:Bridge day\r\n"
                                   "END:VEVENT\r\n"
                                   "BEGIN:VEVENT\r\n"
                                   "UID:summer@test\r\n"
                                   "DTSTART;VALUE=DATE:20260803\r\n"
                                   "DURATION:P2D\r\n"
                                   "END:VEVENT\r\n"
                                   "BEGIN:VEVENT\r\n"
                                   "UID:thanks@test\r\n"
                                   "DTSTART;VALUE=DATE:20201126\r\n"
                                   "RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=4TH\r\n"
                                   "EXDATE;VALUE=DATE:20271125\r\n"
                                   "END:VEVENT\r\n"
                                   "BEGIN:VEVENT\r\n"
                                   "UID:xmas@test\r\n"
                                   "RECURRENCE-ID;VALUE=DATE:20301225\r\n"
                                   "DTSTART;VALUE=DATE:20301224\r\n"
                                   "DTEND;VALUE=DATE:20301225\r\n"
                                   "END:VEVENT\r\n"
                                   "BEGIN:VEVENT\r\n"
                                   "UID:cancelled@test\r\n"
                                   "STATUS:CANCELLED\r\n"
                                   "DTSTART;VALUE=DATE:20260601\r\n"
                                   "END:VEVENT\r\n"
                                   "END:VCALENDAR\r\n";

static void test_holidays(void **state) {
  char dir[] = "/tmp/renewd-test-cal-XXXXXX";
  assert_non_null(mkdtemp(dir));
  _cleanup_free_ char *path = write_temp(dir, "h.ics", holidays_ics);
  char err[256];
  const struct cal_holidays *h = NULL, *h2 = NULL;
  assert_int_equal(cal_holidays_load(C, path, &h, err, sizeof err), 0);
  assert_int_equal(cal_holidays_load(C, path, &h2, err, sizeof err), 0);
  assert_ptr_equal(h, h2);

  static const struct {
    int y, m, d;
    bool want;
  } days[] = {
      {2026, 12, 25, true},  {2026, 12, 26, true},  {2026, 12, 27, false}, {2026, 12, 24, false},
      {2026, 12, 28, true},  {2019, 12, 25, false}, {2020, 12, 25, true},  {2199, 12, 26, true},
      {2026, 8, 3, true},    {2026, 8, 4, true},    {2026, 8, 5, false},   {2026, 11, 26, true},
      {2027, 11, 25, false}, {2028, 11, 23, true},  {2030, 12, 24, true},  {2030, 12, 25, false},
      {2030, 12, 26, false}, {2031, 12, 25, true},  {2026, 6, 1, false},   {2300, 12, 25, false},
      {2026, 2, 30, false},  {2026, 13, 1, false},
  };
  for (size_t i = 0; i < ELEMENTSOF(days); i++)
    if (cal_is_holiday(h, days[i].y, days[i].m, days[i].d) != days[i].want)
      fail_msg("%04d-%02d-%02d: expected %d", days[i].y, days[i].m, days[i].d, days[i].want);
  assert_false(cal_is_holiday(NULL, 2026, 12, 25));

  static const struct {
    const char *text, *msg;
    int r;
  } bad[] = {
      {"BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\nUID:a\nSUMMARY:x\n"
       "DTSTART:20261225T100000Z\nEND:VEVENT\nEND:VCALENDAR\n",
       ":6: DTSTART is a date-time", -EINVAL},
      {"BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20261225\n"
       "DTEND;VALUE=DATE:20261224\nEND:VEVENT\nEND:VCALENDAR\n",
       ":4: DTEND must be after DTSTART", -EINVAL},
      {"BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20261225\nEND:VEVENT\n"
       "BEGIN:VEVENT\nDTSTART;VALUE=DATE:20261226\nRRULE:FREQ=HOURLY\nEND:VEVENT\nEND:VCALENDAR\n",
       ":7: RRULE of an all-day event must be DAILY or coarser", -EINVAL},
      {"BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY:x\nEND:VEVENT\nEND:VCALENDAR\n",
       ":2: VEVENT without DTSTART", -EINVAL},
      {"hello world\n", "not a complete iCalendar file", -EINVAL},
      {"BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20261225\n", "not a complete", -EINVAL},
      {"BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:2026122X\nEND:VEVENT\nEND:VCALENDAR\n",
       ":3: bad date value in DTSTART", -EINVAL},
      {"BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20261225\nEXDATE;VALUE=DATE:20271225,\n"
       " 2028023\nRRULE:FREQ=YEARLY\nEND:VEVENT\nEND:VCALENDAR\n",
       ":4: bad date value in EXDATE", -EINVAL},
      {"BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20261225\n"
       "RRULE:FREQ=YEARLY;;BYMONTH=12\nEND:VEVENT\nEND:VCALENDAR\n",
       ":4: RRULE: empty part", -EINVAL},
  };
  for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
    _cleanup_free_ char *name = strprintf("bad%zu.ics", i);
    _cleanup_free_ char *p = write_temp(dir, name, bad[i].text);
    const struct cal_holidays *x = NULL;
    int r = cal_holidays_load(C, p, &x, err, sizeof err);
    if (r != bad[i].r)
      fail_msg("bad[%zu]: r=%d (%s)", i, r, err);
    assert_null(x);
    if (strncmp(err, p, strlen(p)) || !strstr(err, bad[i].msg))
      fail_msg("bad[%zu]: message '%s' lacks '%s'", i, err, bad[i].msg);
    unlink(p);
  }
  _cleanup_free_ char *missing = strprintf("%s/missing.ics", dir);
  assert_int_equal(cal_holidays_load(C, missing, &h2, err, sizeof err), -ENOENT);
  assert_non_null(strstr(err, "missing.ics: "));
  unlink(path);
  rmdir(dir);
}

static void test_window_parse(void **state) {
  static const struct {
    const char *s;
    int start, end;
  } hours[] = {{"09:00-18:00", 540, 1080},
               {"9:00-17:30", 540, 1050},
               {"00:00-24:00", 0, 1440},
               {" 08:15 - 12:45 ", 495, 765},
               {"23:59-24:00", 1439, 1440}};
  for (size_t i = 0; i < ELEMENTSOF(hours); i++) {
    uint16_t a, b;
    assert_int_equal(cal_window_parse_hours(hours[i].s, &a, &b), 0);
    assert_int_equal(a, hours[i].start);
    assert_int_equal(b, hours[i].end);
  }
  static const char *const bad_hours[] = {
      "18:00-09:00", "09:00-09:00", "24:00-24:00",  "9-18", "09:00-25:00", "09:60-10:00",
      "24:30-24:40", "09:00",       "09:00-18:00x", "",     "09:00 18:00", "0900-1800"};
  for (size_t i = 0; i < ELEMENTSOF(bad_hours); i++) {
    uint16_t a = 7, b = 7;
    if (cal_window_parse_hours(bad_hours[i], &a, &b) != -EINVAL)
      fail_msg("accepted '%s'", bad_hours[i]);
    assert_int_equal(a, 7);
  }
  static const struct {
    const char *s;
    uint8_t days;
  } days[] = {
      {"Mon..Fri", 0x3e},         {"Mon-Fri", 0x3e}, {"mon,wed,sat", 0x4a},
      {"Sat..Sun", 0x41},         {"*", 0x7f},       {"ALL", 0x7f},
      {"Fri..Mon", 0x63},         {"Sunday", 0x01},  {"Mon..Wed, Fri", 0x2e},
      {"tuesday-thursday", 0x1c},
  };
  for (size_t i = 0; i < ELEMENTSOF(days); i++) {
    uint8_t d = 0;
    assert_int_equal(cal_window_parse_days(days[i].s, &d), 0);
    if (d != days[i].days)
      fail_msg("'%s': 0x%x", days[i].s, d);
  }
  static const char *const bad_days[] = {"",       "Mo..Fr",    "Mon..", "Mon,,Tue", "Mon;Tue",
                                         "Funday", "Mon...Fri", "Mon,",  "**",       "1-5"};
  for (size_t i = 0; i < ELEMENTSOF(bad_days); i++) {
    uint8_t d = 99;
    if (cal_window_parse_days(bad_days[i], &d) != -EINVAL)
      fail_msg("accepted '%s'", bad_days[i]);
    assert_int_equal(d, 99);
  }
}

static void test_window_next(void **state) {
  char dir[] = "/tmp/renewd-test-cal-XXXXXX";
  assert_non_null(mkdtemp(dir));
  _cleanup_free_ char *path = write_temp(dir, "h.ics", holidays_ics);
  char err[256];
  const struct cal_holidays *h = NULL;
  assert_int_equal(cal_holidays_load(C, path, &h, err, sizeof err), 0);
  unlink(path);
  rmdir(dir);

  const struct cal_zone *b = zone("Europe/Berlin"), *ny = zone("America/New_York"),
                        *lh = zone("Australia/Lord_Howe");
  struct cal_window biz = {.start_min = 540, .end_min = 1080, .days = 0x3e, .holidays = h};
  struct cal_window all = {.start_min = 150, .end_min = 1080, .days = 0x7f};
  struct cal_window late = {.start_min = 150, .end_min = 180, .days = 0x7f};
  struct cal_window lhw = {.start_min = 120, .end_min = 150, .days = 0x7f};
  static const struct {
    int w; /* 0 biz, 1 all, 2 late, 3 lhw */
    const char *zone;
    int64_t t, want;
  } rows[] = {
      /* Friday evening -> Monday morning */
      {0, "Europe/Berlin", 1797615000 /* Fri 2026-12-18 18:30 CET */,
       1797840000 /* Mon 21 09:00 */},
      /* Christmas Eve evening: 25 (holiday), 26-27 weekend, 28 (bridge day) -> Tue 29 */
      {0, "Europe/Berlin", 1798133400 /* Thu 24 18:30 */, 1798531200 /* Tue 29 09:00 */},
      /* evening -> next morning; before opening -> opening; inside -> itself */
      {0, "Europe/Berlin", 1780423200 /* Tue 2026-06-02 20:00 CEST */, 1780470000 /* Wed 09:00 */},
      {0, "Europe/Berlin", 1780462800 /* Wed 07:00 */, 1780470000},
      {0, "Europe/Berlin", 1780473600 /* Wed 10:00 */, 1780473600},
      {0, "Europe/Berlin", 1780502399 /* Wed 17:59:59 */, 1780502399},
      {0, "Europe/Berlin", 1780502400 /* Wed 18:00 */, 1780556400 /* Thu 09:00 */},
      /* New York over the March change: Fri 17:00 EST -> Mon 09:00 EDT */
      {0, "America/New_York", 1772838000 /* Fri 2026-03-06 18:00 EST */, 1773061200},
      /* Window opening at 02:30 on the spring-forward day: at the change (03:00), once */
      {1, "Europe/Berlin", 1774738800 /* Sun 2026-03-29 00:00 CET */, 1774746000},
      {1, "Europe/Berlin", 1774746000, 1774746000},
      /* Window [02:30, 03:00) on the fall-back day occurs twice */
      {2, "Europe/Berlin", 1792879200 /* Sun 2026-10-25 00:00 CEST */, 1792888200 /* 00:30Z */},
      {2, "Europe/Berlin", 1792890000 /* 01:00Z = 02:00 CET */, 1792891800 /* 01:30Z */},
      /* Lord Howe: [02:00, 02:30) does not exist on 4 October -> next day */
      {3, "Australia/Lord_Howe", 1791034200 /* Sun 2026-10-04 00:00 +10:30 */,
       1791126000 /* Mon 5 02:00 +11 */},
  };
  const struct cal_window *ws[] = {&biz, &all, &late, &lhw};
  for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
    const struct cal_zone *z = zone(rows[i].zone);
    int64_t got = cal_window_next(ws[rows[i].w], z, rows[i].t);
    if (got != rows[i].want)
      fail_msg("row %zu: %" PRId64 " != %" PRId64, i, got, rows[i].want);
    assert_true(cal_window_contains(ws[rows[i].w], z, got));
  }
  assert_false(cal_window_contains(&all, b, 1774746000 - 1));
  (void)ny;
  (void)lh;

  /* No allowed day, broken window, NULL window. */
  struct cal_window none = {.start_min = 540, .end_min = 1080, .days = 0};
  assert_int_equal(cal_window_next(&none, b, 0), TIME_NEVER);
  struct cal_window inv = {.start_min = 600, .end_min = 600, .days = 0x7f};
  assert_int_equal(cal_window_next(&inv, b, 0), TIME_NEVER);
  assert_int_equal(cal_window_next(NULL, b, 42), 42);
  assert_int_equal(cal_window_next(&biz, b, TIME_NEVER), TIME_NEVER);

  /* Property check in many zones: the result is inside, nothing before it
   * (sampled each 5 minutes, and the second before) is. */
  static const char *const zones[] = {
      "Europe/Berlin",    "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
      "America/St_Johns", "Pacific/Chatham",  "America/Sao_Paulo",   "Africa/Casablanca"};
  uint64_t seed = 0x9e3779b97f4a7c15u;
  for (int i = 0; i < 400; i++) {
    seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
    const struct cal_zone *z = zone(zones[seed % ELEMENTSOF(zones)]);
    int64_t t = 1577836800 + (int64_t)((seed >> 8) % (20ull * 365 * 86400));
    const struct cal_window *w = ws[(seed >> 40) % 2];
    int64_t r = cal_window_next(w, z, t);
    assert_true(r >= t && r - t < 8 * 86400);
    assert_true(cal_window_contains(w, z, r));
    if (r > t)
      assert_false(cal_window_contains(w, z, r - 1));
    for (int64_t x = t; x < r; x += 300)
      assert_false(cal_window_contains(w, z, x));
  }
}

static void test_dates(void **state) {
  static const struct {
    const char *s;
    int y, m, d;
  } good[] = {{"2027-02-28", 2027, 2, 28},
              {"2028-02-29", 2028, 2, 29},
              {"2000-02-29", 2000, 2, 29},
              {"0001-01-01", 1, 1, 1},
              {"9999-12-31", 9999, 12, 31}};
  for (size_t i = 0; i < ELEMENTSOF(good); i++) {
    int y, m, d;
    assert_int_equal(cal_parse_date(good[i].s, &y, &m, &d), 0);
    assert_int_equal(y, good[i].y);
    assert_int_equal(m, good[i].m);
    assert_int_equal(d, good[i].d);
  }
  static const char *const bad[] = {"2027-02-30",  "2027-13-01",  "2027-02-29", "1900-02-29",
                                    "2027-00-10",  "2027-01-00",  "2027-1-01",  "27-01-01",
                                    "2027-01-01x", "2027/01/01",  "",           "junk",
                                    "0000-01-01",  " 2027-01-01", "2027-04-31"};
  for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
    int y = -1, m = -1, d = -1;
    if (cal_parse_date(bad[i], &y, &m, &d) != -EINVAL)
      fail_msg("accepted '%s'", bad[i]);
    assert_int_equal(y, -1);
  }

  static const struct {
    const char *s;
    int64_t t;
  } rfc[] = {{"2027-03-01T10:00:00Z", 1803895200},
             {"2027-03-01T10:00:00+05:30", 1803895200 - 19800},
             {"2027-03-01T10:00:00-03:30", 1803895200 + 12600},
             {"2027-03-01T10:00:00.123456Z", 1803895200},
             {"2027-03-01t10:00:00z", 1803895200},
             {"2027-03-01 10:00:00-00:00", 1803895200},
             {"1969-12-31T23:59:59Z", -1},
             {"2016-12-31T23:59:60Z", 1483228800}};
  for (size_t i = 0; i < ELEMENTSOF(rfc); i++) {
    int64_t t;
    assert_int_equal(cal_parse_rfc3339(rfc[i].s, &t), 0);
    assert_int_equal(t, rfc[i].t);
  }
  static const char *const bad_rfc[] = {"2027-03-01T10:00:00",
                                        "2027-03-01T10:00Z",
                                        "2027-03-01T24:00:00Z",
                                        "2027-02-30T10:00:00Z",
                                        "2027-03-01T10:00:00.Z",
                                        "2027-03-01T10:00:00+0530",
                                        "2027-03-01T10:00:00+24:00",
                                        "2027-03-01",
                                        "",
                                        "2027-03-01T10:00:00Zjunk",
                                        "2027-03-01X10:00:00Z"};
  for (size_t i = 0; i < ELEMENTSOF(bad_rfc); i++) {
    int64_t t = 7;
    if (cal_parse_rfc3339(bad_rfc[i], &t) != -EINVAL)
      fail_msg("accepted '%s'", bad_rfc[i]);
    assert_int_equal(t, 7);
  }

  /* End of a local date: next local midnight, or the first instant of the
   * next day when its midnight does not exist. */
  assert_int_equal(cal_end_of_date(zone("Europe/Berlin"), 2026, 3, 28), utc(2026, 3, 28, 23, 0, 0));
  assert_int_equal(cal_end_of_date(zone("Europe/Berlin"), 2027, 2, 28), utc(2027, 2, 28, 23, 0, 0));
  assert_int_equal(cal_end_of_date(zone("Europe/Berlin"), 2026, 12, 31),
                   utc(2026, 12, 31, 23, 0, 0));
  assert_int_equal(cal_end_of_date(zone("America/Sao_Paulo"), 2018, 11, 3),
                   utc(2018, 11, 4, 3, 0, 0));
  assert_int_equal(cal_end_of_date(zone("America/Havana"), 2026, 3, 7), utc(2026, 3, 8, 5, 0, 0));
  assert_int_equal(cal_end_of_date(zone("Asia/Kolkata"), 2026, 1, 1), utc(2026, 1, 1, 18, 30, 0));
}

static void test_format_date(void **state) {
  const struct cal_zone *b = zone("Europe/Berlin");
  int64_t t = utc(2027, 2, 28, 23, 30, 0); /* 1 March 00:30 in Berlin */
  static const struct {
    const char *locale, *want;
  } rows[] = {{"en", "1 March 2027"},    {"en_US.UTF-8", "1 March 2027"},
              {"EN-gb", "1 March 2027"}, {"zh", "2027年3月1日"},
              {"zh-CN", "2027年3月1日"}, {"zh_TW.UTF-8", "2027年3月1日"},
              {"de", "2027-03-01"},      {"fr_FR", "2027-03-01"},
              {NULL, "2027-03-01"},      {"english", "2027-03-01"},
              {"", "2027-03-01"}};
  for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
    char out[64];
    assert_ptr_equal(cal_format_date(b, t, rows[i].locale, out, sizeof out), out);
    assert_string_equal(out, rows[i].want);
  }
  char small[6];
  cal_format_date(b, t, "de", small, sizeof small);
  assert_string_equal(small, "2027-");
  char out[64];
  assert_string_equal(cal_format_date(zone("UTC"), t, "en", out, sizeof out), "28 February 2027");
}

/* The tables against libical itself: to_local for an instant, and
 * from_local for its wall time (must find a reading of it at or before the
 * instant: the earliest), and for an arbitrary wall time (gaps). */
struct xstats {
  long to, from, overlap, gap;
};

static int lib_off(icaltimezone *tz, int64_t t) {
  struct icaltimetype u =
      icaltime_from_timet_with_zone((time_t)t, 0, icaltimezone_get_utc_timezone());
  int dst;
  return icaltimezone_get_utc_offset_of_utc_time(tz, &u, &dst);
}

static void check_instant(const struct cal_zone *z, icaltimezone *tz, int64_t t,
                          struct xstats *st) {
  struct cal_local l;
  cal_to_local(z, t, &l);
  struct icaltimetype it = icaltime_from_timet_with_zone((time_t)t, 0, tz);
  if (l.year != it.year || l.month != it.month || l.day != it.day || l.hour != it.hour ||
      l.minute != it.minute || l.second != it.second || l.utc_offset != lib_off(tz, t))
    fail_msg("%s t=%" PRId64 ": %04d-%02d-%02d %02d:%02d:%02d vs libical %s", cal_zone_name(z), t,
             l.year, l.month, l.day, l.hour, l.minute, l.second, icaltime_as_ical_string(it));
  st->to++;
  int64_t r = cal_from_local(z, l.year, l.month, l.day, l.hour, l.minute, l.second);
  assert_true(r <= t);
  if (r != t) { /* an overlap: r must read the same */
    struct icaltimetype ir = icaltime_from_timet_with_zone((time_t)r, 0, tz);
    assert_true(icaltime_compare(ir, it) == 0);
    st->overlap++;
  }
  /* libical's own local->UTC, when it gives a reading, is not earlier. */
  int64_t lr = icaltime_as_timet_with_zone(it, tz);
  struct icaltimetype back = icaltime_from_timet_with_zone((time_t)lr, 0, tz);
  if (icaltime_compare(back, it) == 0)
    assert_true(r <= lr);
  st->from++;
}

static void check_wall(const struct cal_zone *z, icaltimezone *tz, int y, int mo, int d, int h,
                       int mi, int s, struct xstats *st) {
  icaltimezone *utcz = icaltimezone_get_utc_timezone();
  int64_t r = cal_from_local(z, y, mo, d, h, mi, s);
  struct icaltimetype w = icaltime_from_timet_with_zone((time_t)r, 0, tz);
  if (w.year == y && w.month == mo && w.day == d && w.hour == h && w.minute == mi &&
      w.second == s) {
    /* a reading: no earlier one (an earlier one would be r - |offset change|) */
    for (int64_t back = 900; back <= 3 * 3600; back += 900) {
      struct icaltimetype e = icaltime_from_timet_with_zone((time_t)(r - back), 0, tz);
      assert_false(e.year == y && e.month == mo && e.day == d && e.hour == h && e.minute == mi &&
                   e.second == s);
    }
    return;
  }
  /* a gap: r reads as the wall time plus the gap, and is the wall time read
   * with the offset in effect just before the change */
  struct icaltimetype want = icaltime_null_time();
  want.year = y, want.month = mo, want.day = d, want.hour = h, want.minute = mi, want.second = s;
  int64_t L = (int64_t)icaltime_as_timet_with_zone(want, utcz);
  int64_t gap = (int64_t)icaltime_as_timet_with_zone(w, utcz) - L;
  if (!(gap > 0 && gap <= 86400))
    fail_msg("%s %04d-%02d-%02d %02d:%02d:%02d -> %" PRId64 " reads %s", cal_zone_name(z), y, mo, d,
             h, mi, s, r, icaltime_as_ical_string(w));
  int off_before = lib_off(tz, r - gap - 1);
  assert_int_equal(lib_off(tz, r) - off_before, gap);
  assert_int_equal(r, L - off_before);
  st->gap++;
}

static void test_crosscheck(void **state) {
  static const char *const zones[] = {
      "Asia/Kolkata",      "Australia/Lord_Howe", "America/St_Johns", "Europe/Berlin",
      "America/New_York",  "Pacific/Chatham",     "Asia/Tokyo",       "UTC",
      "America/Sao_Paulo", "Africa/Casablanca",   "Pacific/Apia",     "Europe/London",
      "Asia/Tehran",       "America/Santiago",    "America/Havana",   "Antarctica/Troll"};
  uint64_t seed = 88172645463325252u;
  struct xstats st = {0};
  for (size_t zi = 0; zi < ELEMENTSOF(zones); zi++) {
    const struct cal_zone *z = zone(zones[zi]);
    icaltimezone *tz = icaltimezone_get_builtin_timezone(zones[zi]);
    assert_non_null(tz);
    /* uniformly over 1900..2150 */
    for (int i = 0; i < 5000; i++) {
      uint64_t x = xorshift(&seed);
      check_instant(z, tz, utc(1900, 1, 1, 0, 0, 0) + (int64_t)(x % (250ull * 365 * 86400)), &st);
      check_wall(z, tz, 1900 + (int)(x >> 20) % 250, 1 + (int)((x >> 30) % 12),
                 1 + (int)((x >> 34) % 28), (int)((x >> 40) % 24), (int)((x >> 46) % 60),
                 (int)((x >> 52) % 60), &st);
    }
    /* around every change of offset in 1995..2035, found here with libical */
    int64_t prev_t = utc(1995, 1, 1, 0, 0, 0);
    int prev = lib_off(tz, prev_t);
    for (int64_t t = prev_t + 86400; t < utc(2035, 1, 1, 0, 0, 0); t += 86400) {
      int o = lib_off(tz, t);
      if (o == prev) {
        prev_t = t;
        continue;
      }
      int64_t lo = prev_t, hi = t;
      while (hi - lo > 1) {
        int64_t m = lo + (hi - lo) / 2;
        if (lib_off(tz, m) == prev)
          lo = m;
        else
          hi = m;
      }
      for (int i = 0; i < 40; i++) {
        uint64_t x = xorshift(&seed);
        int64_t u = hi - 3 * 3600 + (int64_t)(x % (6 * 3600));
        check_instant(z, tz, u, &st);
        struct icaltimetype w =
            icaltime_from_timet_with_zone((time_t)(u + (x >> 32) % 7200 - 3600), 0, tz);
        int64_t shift = (int64_t)((x >> 24) % 7200) - 3600; /* a wall time near the change */
        w.second += (int)shift;
        w = icaltime_normalize(w);
        check_wall(z, tz, w.year, w.month, w.day, w.hour, w.minute, w.second, &st);
      }
      prev = o;
      prev_t = t;
    }
  }
  print_message("cross-checked %ld to_local, %ld from_local (%ld overlaps), %ld gaps\n", st.to,
                st.from, st.overlap, st.gap);
  assert_true(st.to >= 100000);
  assert_true(st.gap > 1000 && st.overlap > 1000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_zone),
      cmocka_unit_test(test_to_local),
      cmocka_unit_test(test_from_local),
      cmocka_unit_test(test_duration),
      cmocka_unit_test(test_add_duration),
      cmocka_unit_test(test_rrule),
      cmocka_unit_test(test_rrule_crosscheck),
      cmocka_unit_test(test_holidays),
      cmocka_unit_test(test_window_parse),
      cmocka_unit_test(test_window_next),
      cmocka_unit_test(test_dates),
      cmocka_unit_test(test_format_date),
      cmocka_unit_test(test_crosscheck),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
