/* locfmt: ICU formatting for a locale (see locfmt.h).
 *
 * Owns a ring of LOCFMT_CACHE entries, one per ICU locale id, each holding
 * the formatters opened for that locale so far (lazily, each on first use).
 * Strings cross into ICU as UTF-16 and come back as UTF-8. */
#include "core/locfmt.h"

#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/ucurr.h>
#include <unicode/udat.h>
#include <unicode/uloc.h>
#include <unicode/unum.h>
#include <unicode/unumberformatter.h>
#include <unicode/upluralrules.h>
#include <unicode/ureldatefmt.h>
#include <unicode/ustring.h>

#define LOCFMT_CACHE 8 /* locales kept open: a handful in any one install */
#define LOCALE_ID 64   /* longest ICU locale id kept */

struct entry {
  char id[LOCALE_ID];              /* ICU locale id ("de", "zh_CN"), "" = empty slot */
  UDateFormat *date;               /* long date, UTC */
  UDateFormat *datetime;           /* long date + short time, UTC */
  UNumberFormat *money;            /* currency style */
  UNumberFormat *number;           /* decimal style */
  UNumberFormatter *days;          /* "41 days" */
  UFormattedNumber *result;        /* result object for days */
  URelativeDateTimeFormatter *rel; /* "in 41 days" */
  UPluralRules *plural;            /* CLDR plural rules */
};

struct locfmt {
  struct entry e[LOCFMT_CACHE];
  size_t next; /* slot the next new locale replaces */
};

static void entry_close(struct entry *e) {
  if (e->date)
    udat_close(e->date);
  if (e->datetime)
    udat_close(e->datetime);
  if (e->money)
    unum_close(e->money);
  if (e->number)
    unum_close(e->number);
  if (e->days)
    unumf_close(e->days);
  if (e->result)
    unumf_closeResult(e->result);
  if (e->rel)
    ureldatefmt_close(e->rel);
  if (e->plural)
    uplrules_close(e->plural);
  *e = (struct entry){0};
}

struct locfmt *locfmt_new(void) {
  return calloc(1, sizeof(struct locfmt));
}

struct locfmt *locfmt_free(struct locfmt *lf) {
  if (!lf)
    return NULL;
  for (size_t i = 0; i < LOCFMT_CACHE; i++)
    entry_close(&lf->e[i]);
  free(lf);
  return NULL;
}

/* The ICU locale id of a BCP 47 tag or POSIX name ("zh_CN.UTF-8" ->
 * "zh_CN"); "en" for an empty or unparsable one. */
static void icu_id(const char *locale, char out[static LOCALE_ID]) {
  char tag[LOCALE_ID];
  size_t n = 0;
  for (const char *p = locale ? locale : ""; *p && *p != '.' && *p != '@' && n + 1 < sizeof tag;
       p++)
    tag[n++] = *p == '_' ? '-' : *p;
  tag[n] = 0;
  UErrorCode st = U_ZERO_ERROR;
  int32_t parsed = 0;
  if (n == 0 || uloc_forLanguageTag(tag, out, LOCALE_ID, &parsed, &st) <= 0 || U_FAILURE(st) ||
      parsed <= 0)
    snprintf(out, LOCALE_ID, "en");
}

static struct entry *entry_for(struct locfmt *lf, const char *locale) {
  char id[LOCALE_ID];
  icu_id(locale, id);
  for (size_t i = 0; i < LOCFMT_CACHE; i++)
    if (lf->e[i].id[0] && strcmp(lf->e[i].id, id) == 0)
      return &lf->e[i];
  struct entry *e = &lf->e[lf->next];
  lf->next = (lf->next + 1) % LOCFMT_CACHE;
  entry_close(e);
  memcpy(e->id, id, sizeof e->id);
  return e;
}

/* UTF-16 to UTF-8 into out, cut at a character boundary when too long. */
static int to_utf8(const UChar *s, int32_t len, char *out, size_t n) {
  char tmp[LOCFMT_MAX * 3];
  UErrorCode st = U_ZERO_ERROR;
  int32_t k = 0;
  u_strToUTF8(tmp, (int32_t)sizeof tmp - 1, &k, s, len, &st);
  if (U_FAILURE(st) && st != U_STRING_NOT_TERMINATED_WARNING)
    return -EINVAL;
  size_t m = (size_t)k;
  if (m >= n) {
    m = n - 1;
    while (m > 0 && ((unsigned char)tmp[m] & 0xC0) == 0x80)
      m--;
  }
  memcpy(out, tmp, m);
  out[m] = 0;
  return 0;
}

static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

int64_t locfmt_date_diff(int ay, int am, int ad, int by, int bm, int bd) {
  return days_from_civil(by, bm, bd) - days_from_civil(ay, am, ad);
}

static UDateFormat *open_date(const char *id, UDateFormatStyle time, UErrorCode *st) {
  return udat_open(time, UDAT_LONG, id, u"UTC", -1, NULL, 0, st);
}

static int format_udate(UDateFormat *f, UDate when, char *out, size_t n) {
  UChar buf[LOCFMT_MAX];
  UErrorCode st = U_ZERO_ERROR;
  int32_t len = udat_format(f, when, buf, LOCFMT_MAX, NULL, &st);
  if (U_FAILURE(st))
    return -EINVAL;
  return to_utf8(buf, len, out, n);
}

int locfmt_date(struct locfmt *lf, const char *locale, int y, int m, int d, char *out, size_t n) {
  if (!out || n == 0)
    return -EINVAL;
  snprintf(out, n, "%04d-%02d-%02d", y, m, d);
  if (!lf || m < 1 || m > 12 || d < 1 || d > 31)
    return -EINVAL;
  struct entry *e = entry_for(lf, locale);
  UErrorCode st = U_ZERO_ERROR;
  if (!e->date && (!(e->date = open_date(e->id, UDAT_NONE, &st)) || U_FAILURE(st))) {
    if (e->date)
      udat_close(e->date);
    e->date = NULL;
    return -ENOMEM;
  }
  UDate when = ((double)days_from_civil(y, m, d) * 86400.0 + 12 * 3600.0) * 1000.0;
  return format_udate(e->date, when, out, n);
}

int locfmt_datetime(struct locfmt *lf, const char *locale, const struct cal_local *l, char *out,
                    size_t n) {
  if (!out || n == 0 || !l)
    return -EINVAL;
  snprintf(out, n, "%04d-%02d-%02d %02d:%02d", l->year, l->month, l->day, l->hour, l->minute);
  if (!lf)
    return -EINVAL;
  struct entry *e = entry_for(lf, locale);
  UErrorCode st = U_ZERO_ERROR;
  if (!e->datetime && (!(e->datetime = open_date(e->id, UDAT_SHORT, &st)) || U_FAILURE(st))) {
    if (e->datetime)
      udat_close(e->datetime);
    e->datetime = NULL;
    return -ENOMEM;
  }
  UDate when = ((double)days_from_civil(l->year, l->month, l->day) * 86400.0 + l->hour * 3600.0 +
                l->minute * 60.0) *
               1000.0;
  return format_udate(e->datetime, when, out, n);
}

static UNumberFormat *open_num(const char *id, UNumberFormatStyle style) {
  UErrorCode st = U_ZERO_ERROR;
  UNumberFormat *f = unum_open(style, NULL, 0, id, NULL, &st);
  if (U_FAILURE(st)) {
    if (f)
      unum_close(f);
    return NULL;
  }
  return f;
}

int locfmt_money(struct locfmt *lf, const char *locale, int64_t minor, const char *currency,
                 char *out, size_t n) {
  if (!out || n == 0)
    return -EINVAL;
  bool cur = currency && strlen(currency) == 3;
  snprintf(out, n, "%" PRId64 ".%02" PRId64 "%s%s", minor / 100, (minor < 0 ? -minor : minor) % 100,
           cur ? " " : "", cur ? currency : "");
  if (!lf)
    return -EINVAL;
  struct entry *e = entry_for(lf, locale);
  UChar iso[4] = {0};
  int digits = 2;
  if (cur) {
    u_charsToUChars(currency, iso, 3);
    UErrorCode st = U_ZERO_ERROR;
    int32_t dd = ucurr_getDefaultFractionDigits(iso, &st);
    if (U_SUCCESS(st) && dd >= 0 && dd <= 4)
      digits = dd;
  }
  double v = (double)minor;
  for (int i = 0; i < digits; i++)
    v /= 10.0;
  UChar buf[LOCFMT_MAX];
  UErrorCode st = U_ZERO_ERROR;
  int32_t len;
  if (cur) {
    if (!e->money && !(e->money = open_num(e->id, UNUM_CURRENCY)))
      return -ENOMEM;
    len = unum_formatDoubleCurrency(e->money, v, iso, buf, LOCFMT_MAX, NULL, &st);
  } else {
    if (!e->number && !(e->number = open_num(e->id, UNUM_DECIMAL)))
      return -ENOMEM;
    unum_setAttribute(e->number, UNUM_MIN_FRACTION_DIGITS, 2);
    unum_setAttribute(e->number, UNUM_MAX_FRACTION_DIGITS, 2);
    len = unum_formatDouble(e->number, v, buf, LOCFMT_MAX, NULL, &st);
    unum_setAttribute(e->number, UNUM_MIN_FRACTION_DIGITS, 0);
    unum_setAttribute(e->number, UNUM_MAX_FRACTION_DIGITS, 0);
  }
  if (U_FAILURE(st))
    return -EINVAL;
  return to_utf8(buf, len, out, n);
}

int locfmt_number(struct locfmt *lf, const char *locale, int64_t v, char *out, size_t n) {
  if (!out || n == 0)
    return -EINVAL;
  snprintf(out, n, "%" PRId64, v);
  if (!lf)
    return -EINVAL;
  struct entry *e = entry_for(lf, locale);
  if (!e->number && !(e->number = open_num(e->id, UNUM_DECIMAL)))
    return -ENOMEM;
  UChar buf[LOCFMT_MAX];
  UErrorCode st = U_ZERO_ERROR;
  int32_t len = unum_formatInt64(e->number, v, buf, LOCFMT_MAX, NULL, &st);
  if (U_FAILURE(st))
    return -EINVAL;
  return to_utf8(buf, len, out, n);
}

int locfmt_days(struct locfmt *lf, const char *locale, int64_t days, char *out, size_t n) {
  if (!out || n == 0)
    return -EINVAL;
  snprintf(out, n, "%" PRId64, days);
  if (!lf)
    return -EINVAL;
  struct entry *e = entry_for(lf, locale);
  UErrorCode st = U_ZERO_ERROR;
  if (!e->days) {
    e->days = unumf_openForSkeletonAndLocale(u"measure-unit/duration-day unit-width-full-name", -1,
                                             e->id, &st);
    if (U_SUCCESS(st))
      e->result = unumf_openResult(&st);
    if (U_FAILURE(st) || !e->days || !e->result) {
      if (e->days)
        unumf_close(e->days);
      if (e->result)
        unumf_closeResult(e->result);
      e->days = NULL;
      e->result = NULL;
      return -ENOMEM;
    }
  }
  unumf_formatInt(e->days, days, e->result, &st);
  UChar buf[LOCFMT_MAX];
  int32_t len = U_SUCCESS(st) ? unumf_resultToString(e->result, buf, LOCFMT_MAX, &st) : 0;
  if (U_FAILURE(st))
    return -EINVAL;
  return to_utf8(buf, len, out, n);
}

static int relative(struct locfmt *lf, const char *locale, int64_t v, URelativeDateTimeUnit unit,
                    char *out, size_t n) {
  if (!out || n == 0)
    return -EINVAL;
  snprintf(out, n, "%+" PRId64, v);
  if (!lf)
    return -EINVAL;
  struct entry *e = entry_for(lf, locale);
  UErrorCode st = U_ZERO_ERROR;
  if (!e->rel) {
    e->rel = ureldatefmt_open(e->id, NULL, UDAT_STYLE_LONG, UDISPCTX_CAPITALIZATION_NONE, &st);
    if (U_FAILURE(st) || !e->rel) {
      if (e->rel)
        ureldatefmt_close(e->rel);
      e->rel = NULL;
      return -ENOMEM;
    }
  }
  UChar buf[LOCFMT_MAX];
  /* 0 reads "today"/"heute"/"今天", other counts stay numeric ("in 1 day") */
  int32_t len = v == 0 ? ureldatefmt_format(e->rel, 0.0, unit, buf, LOCFMT_MAX, &st)
                       : ureldatefmt_formatNumeric(e->rel, (double)v, unit, buf, LOCFMT_MAX, &st);
  if (U_FAILURE(st))
    return -EINVAL;
  return to_utf8(buf, len, out, n);
}

int locfmt_in_days(struct locfmt *lf, const char *locale, int64_t days, char *out, size_t n) {
  return relative(lf, locale, days, UDAT_REL_UNIT_DAY, out, n);
}
int locfmt_in_weeks(struct locfmt *lf, const char *locale, int64_t weeks, char *out, size_t n) {
  return relative(lf, locale, weeks, UDAT_REL_UNIT_WEEK, out, n);
}
int locfmt_in_months(struct locfmt *lf, const char *locale, int64_t months, char *out, size_t n) {
  return relative(lf, locale, months, UDAT_REL_UNIT_MONTH, out, n);
}

const char *locfmt_plural(struct locfmt *lf, const char *locale, int64_t v) {
  static const char *const cats[] = {"zero", "one", "two", "few", "many"};
  if (!lf)
    return "other";
  struct entry *e = entry_for(lf, locale);
  UErrorCode st = U_ZERO_ERROR;
  if (!e->plural) {
    e->plural = uplrules_open(e->id, &st);
    if (U_FAILURE(st) || !e->plural) {
      if (e->plural)
        uplrules_close(e->plural);
      e->plural = NULL;
      return "other";
    }
  }
  UChar kw[16];
  char k[16];
  int32_t len = uplrules_select(e->plural, (double)v, kw, 16, &st);
  if (U_FAILURE(st) || to_utf8(kw, len, k, sizeof k) < 0)
    return "other";
  for (size_t i = 0; i < sizeof cats / sizeof *cats; i++)
    if (strcmp(k, cats[i]) == 0)
      return cats[i];
  return "other";
}

void locfmt_last_day(const struct cal_zone *contract_zone, int64_t expires_at,
                     struct cal_local *ret) {
  cal_to_local(contract_zone, expires_at - 1, ret);
}

int64_t locfmt_days_left(const struct cal_zone *reader_zone, int64_t now,
                         const struct cal_zone *contract_zone, int64_t expires_at) {
  struct cal_local today, last;
  cal_to_local(reader_zone, now, &today);
  locfmt_last_day(contract_zone, expires_at, &last);
  return locfmt_date_diff(today.year, today.month, today.day, last.year, last.month, last.day);
}
