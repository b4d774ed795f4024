/* locfmt: dates, numbers, money, day counts and plural categories for a
 * locale, formatted by ICU (CLDR data), and the one definition of "days
 * left" that every message, page and alert uses.
 *
 *   locfmt_date(lf, "de", 2027, 10, 20)      "20. Oktober 2027"
 *   locfmt_date(lf, "zh-CN", 2027, 10, 20)   "2027年10月20日"
 *   locfmt_money(lf, "de", 120050, "EUR")    "1.200,50 €"
 *   locfmt_days(lf, "en", 1)                 "1 day"  (2: "2 days")
 *   locfmt_in_days(lf, "en", 1)              "in 1 day" (-2: "2 days ago")
 *   locfmt_plural(lf, "ru", 3)               "few"
 *
 * Days left (locfmt_days_left()): the number of calendar days in the
 * reader's zone from the day of the send to the last valid day of the
 * contract. The last valid day is the local day of (expiry - 1 s) in the
 * contract's zone (the customer's), so the customer and the owner see the
 * same end date; "today" is the reader's local day. Sent on 9 September for
 * a contract whose last day is 20 October: 41.
 *
 * Calendar dates are handed over as y/m/d (computed by core/cal, libical's
 * zone data) and formatted by ICU as a day in UTC, so ICU's own zone data
 * never decides which day it is.
 *
 * Locales are BCP 47 tags or POSIX names ("zh-CN", "zh_CN.UTF-8", "de");
 * an unknown or empty one formats as ICU's root/English.
 *
 * Owns: a small cache of opened ICU formatters per locale (opening one costs
 * far more than formatting). Not thread-safe: one struct locfmt per thread.
 * Never blocks (ICU data is memory-mapped), never logs. Output that does not
 * fit is cut at a UTF-8 character boundary. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/cal.h"

/* Largest output of any formatter here, in bytes, NUL included. */
#define LOCFMT_MAX 128

struct locfmt;

/* A new formatter cache (free with locfmt_free()); NULL on OOM. */
struct locfmt *locfmt_new(void);
/* Accepts NULL; returns NULL. */
struct locfmt *locfmt_free(struct locfmt *lf);

/* The long date of y-m-d ("October 20, 2027", "20. Oktober 2027",
 * "2027年10月20日"). Returns 0 or -EINVAL/-ENOMEM (out is then the ISO date). */
int locfmt_date(struct locfmt *lf, const char *locale, int y, int m, int d, char *out, size_t n);
/* Long date and short time of a local wall time ("October 20, 2027 at
 * 2:30 PM", "20. Oktober 2027 um 14:30"). Same returns as locfmt_date(). */
int locfmt_datetime(struct locfmt *lf, const char *locale, const struct cal_local *l, char *out,
                    size_t n);
/* An amount in minor units of ISO 4217 currency ("€12,500.00",
 * "12.500,00 €"). Without a currency: the number with two decimals. */
int locfmt_money(struct locfmt *lf, const char *locale, int64_t minor, const char *currency,
                 char *out, size_t n);
/* An integer with the locale's grouping ("1,234", "1.234"). */
int locfmt_number(struct locfmt *lf, const char *locale, int64_t v, char *out, size_t n);
/* A number of days as a duration ("1 day", "41 days", "41 Tage", "41天"). */
int locfmt_days(struct locfmt *lf, const char *locale, int64_t days, char *out, size_t n);
/* A relative day count ("in 41 days", "in 1 day", "2 days ago", "41天后"). */
int locfmt_in_days(struct locfmt *lf, const char *locale, int64_t days, char *out, size_t n);
/* Relative weeks and months likewise ("in 2 weeks", "in 1 month"). */
int locfmt_in_weeks(struct locfmt *lf, const char *locale, int64_t weeks, char *out, size_t n);
int locfmt_in_months(struct locfmt *lf, const char *locale, int64_t months, char *out, size_t n);
/* The CLDR plural category of n ("zero", "one", "two", "few", "many",
 * "other"), a static string; "other" when unknown. */
const char *locfmt_plural(struct locfmt *lf, const char *locale, int64_t n);

/* Days between two calendar dates (b - a). */
int64_t locfmt_date_diff(int ay, int am, int ad, int by, int bm, int bd);
/* The last valid day of a contract expiring at expires_at (exclusive end),
 * in the contract's zone. */
void locfmt_last_day(const struct cal_zone *contract_zone, int64_t expires_at,
                     struct cal_local *ret);
/* Days left (see the header comment): from now's day in reader_zone to the
 * last valid day in contract_zone. Negative after it. */
int64_t locfmt_days_left(const struct cal_zone *reader_zone, int64_t now,
                         const struct cal_zone *contract_zone, int64_t expires_at);
