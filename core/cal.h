/* cal: calendar arithmetic in real time zones, built on libical.
 *
 * Owns: a cache of IANA time zones (each resolved through libical once, with
 * a lazily built table of its UTC offset changes, one year at a time, so a
 * conversion is a table lookup plus arithmetic, ~20 ns), holiday sets read
 * from .ics files, parsed RFC 5545 durations and recurrence rules. Never reads
 * the clock, never calls setenv("TZ"), never blocks beyond reading
 * zoneinfo/.ics files on first use. Not thread-safe, not even through const
 * zone pointers (the tables fill lazily): one struct cal per thread.
 *
 * All instants are int64_t seconds since the epoch, UTC, handled for years
 * 1..9999 (clamped beyond); zone tables cover 1800..2399, the offsets at the
 * nearest edge apply outside. A NULL zone means UTC everywhere. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cal;          /* zone and holiday cache */
struct cal_zone;     /* one IANA zone; owned by its struct cal */
struct cal_holidays; /* one holiday set; owned by its struct cal */
struct cal_rrule;    /* a parsed, validated RRULE; owned by the caller */

/* Broken-down local time. */
struct cal_local {
  int year, month, day;     /* month 1..12, day 1..31 */
  int hour, minute, second; /* 0..23, 0..59, 0..60 */
  int wday;                 /* 0 = Sunday .. 6 = Saturday */
  int utc_offset;           /* seconds east of UTC in effect at that instant */
};

/* An RFC 5545 duration ("-P60D", "P1W2D", "-PT36H"). Weeks are folded into
 * days. Days are calendar days in a zone; seconds are exact. */
struct cal_duration {
  bool negative;
  int32_t days;    /* >= 0 */
  int64_t seconds; /* >= 0 */
};

/* Send window: the local hours and days a recipient may be contacted. */
struct cal_window {
  uint16_t start_min;                  /* minutes after local midnight, inclusive */
  uint16_t end_min;                    /* minutes after local midnight, exclusive; > start_min */
  uint8_t days;                        /* bit d set = weekday d allowed (0 = Sunday) */
  const struct cal_holidays *holidays; /* NULL = none; owned by a struct cal */
};

int cal_new(struct cal **ret);
struct cal *cal_free(struct cal *c);

/* Returns the zone for an IANA name ("Europe/Berlin", "UTC"; case-sensitive,
 * links such as "US/Eastern" work), loading it on first use; NULL when the
 * name is unknown or not a zone name ("../x"; errno = ENOENT) or when memory
 * ran out (errno = ENOMEM; not cached, a later call retries). Valid until
 * cal_free(). */
const struct cal_zone *cal_zone(struct cal *c, const char *tzid);
const char *cal_zone_name(const struct cal_zone *z);

/* Matches libical's icaltime_from_timet_with_zone() exactly (checked in the
 * tests), second is never 60. */
void cal_to_local(const struct cal_zone *z, int64_t t, struct cal_local *ret);

/* Local wall time to UTC. In a DST gap (02:30 on a spring-forward day) the
 * result is the instant that wall time denotes under the offset before the
 * gap, i.e. moved forward by the gap's length (03:30; a midnight that does
 * not exist becomes the first instant of the day). In an overlap the earlier
 * instant is returned. (libical differs: it moves gap times backwards and
 * picks either reading in overlaps.) Fields may be out of range (day 0,
 * month 13, hour 25) and are normalised as mktime() does. */
int64_t cal_from_local(const struct cal_zone *z, int year, int month, int day, int hour, int minute,
                       int second);

/* Parses an RFC 5545 duration: [+-]P then weeks/days and/or T with hours,
 * minutes, seconds in that order ("P1W2D" is accepted as ISO 8601 allows).
 * Strict: "P", "PT", "P1D2H", "60d", "-P-1D", lower case and blanks are
 * refused (libical takes some of these); numbers have at most 9 digits.
 * Returns 0 or -EINVAL (*ret untouched). A zero duration is never negative. */
int cal_duration_parse(const char *s, struct cal_duration *ret);
/* Formats a duration back in canonical form ("-P60D", "PT12H", "P7D" for
 * "P1W", "PT0S" for zero); truncated to n - 1 bytes. */
void cal_duration_format(const struct cal_duration *d, char *out, size_t n);
/* Applies d to t: days move the local date in z keeping the local wall time
 * (RFC 5545 §3.3.6), then seconds are added exactly. */
int64_t cal_add_duration(const struct cal_zone *z, int64_t t, const struct cal_duration *d);

/* Parses and validates an RRULE ("FREQ=WEEKLY;COUNT=3"; case-insensitive,
 * no "RRULE:" prefix). Refused, with a message naming the problem: unknown or
 * repeated parts, empty parts, bad values, COUNT with UNTIL, the RFC 5545
 * restrictions (BYWEEKNO only YEARLY, numbered BYDAY only MONTHLY/YEARLY, ...),
 * FREQ=SECONDLY, day-level BY parts with MINUTELY/HOURLY, and rules that never
 * repeat after some start (e.g. BYMONTH=4;BYMONTHDAY=31). No COUNT or UNTIL is
 * fine: expansion stops at until/max. On failure returns -EINVAL (or -ENOMEM)
 * and writes a message to err. Caller frees with cal_rrule_free(). */
int cal_rrule_parse(const char *s, struct cal_rrule **ret, char *err, size_t errlen);
struct cal_rrule *cal_rrule_free(struct cal_rrule *r);
/* Writes up to max occurrences of r started at dtstart (the first occurrence
 * is dtstart itself, and counts for COUNT), expanded in local wall time of z,
 * each < until, ascending. The wall times are iterated as floating times and
 * each converted with cal_from_local(), so a 02:30 occurrence on the
 * spring-forward day is 03:30 and the next week's is 02:30 again. A UTC UNTIL
 * is an instant, a floating one local time in z, a DATE the whole local day.
 * r NULL: dtstart only. Returns how many were written (0 when dtstart >=
 * until). */
size_t cal_rrule_expand(const struct cal_rrule *r, const struct cal_zone *z, int64_t dtstart,
                        int64_t until, int64_t *out, size_t max);

/* Loads the all-day VEVENTs of an .ics file, once per path (the same path
 * string gives the cached set; failures are not cached). Understood:
 * DTSTART;VALUE=DATE, DTEND (exclusive) or DURATION in days, RRULE (DAILY or
 * coarser, e.g. FREQ=YEARLY), RDATE, EXDATE, RECURRENCE-ID overrides,
 * STATUS:CANCELLED. A timed event is an error, not skipped. Dates from 1970 to
 * 2200 are recorded. Returns 0, or -errno/-EINVAL with "path:line: message"
 * (or "path: message" when no line applies) in err. The set is owned by c. */
int cal_holidays_load(struct cal *c, const char *ics_path, const struct cal_holidays **ret,
                      char *err, size_t errlen);
/* False for h NULL, invalid dates and dates outside 1970..2200. */
bool cal_is_holiday(const struct cal_holidays *h, int year, int month, int day);

/* Parses "09:00-18:00" (H:MM or HH:MM, end may be 24:00, start < end,
 * blanks around '-' allowed) and day lists: "Mon..Fri", "Mon-Fri",
 * "Mon,Wed,Sat", "Fri..Mon" (wraps), "Mon..Wed,Fri", "*" or "all"; three
 * letter or full English names, case-insensitive. Return 0 or -EINVAL
 * (outputs untouched). */
int cal_window_parse_hours(const char *s, uint16_t *ret_start, uint16_t *ret_end);
int cal_window_parse_days(const char *s, uint8_t *ret_days);
/* An instant is inside w when its local time of day in z lies in
 * [start_min, end_min) on an allowed weekday that is not a holiday.
 * cal_window_next returns the earliest instant >= t inside w (t itself if it
 * is), so a window opening at 02:30 on a spring-forward day opens at the
 * change (03:00), once, and one whose hours fall wholly in a gap does not open
 * that day; in an overlap both readings count. TIME_NEVER when none is within
 * 366 local days or w is invalid (no day, start >= end); w NULL: t. */
int64_t cal_window_next(const struct cal_window *w, const struct cal_zone *z, int64_t t);
bool cal_window_contains(const struct cal_window *w, const struct cal_zone *z, int64_t t);

/* "2027-02-28", exactly, years 0001..9999: 0 or -EINVAL (bad syntax,
 * 2027-02-30, 2027-13-01). */
int cal_parse_date(const char *s, int *ret_year, int *ret_month, int *ret_day);
/* RFC 3339 "2027-03-01T10:00:00Z" / "+05:30" offsets, optional fraction
 * (truncated), 't'/'z'/' ' accepted, second 60 read as the following second:
 * 0 or -EINVAL. */
int cal_parse_rfc3339(const char *s, int64_t *ret);
/* A contract valid through local date y-m-d expires at the start of the next
 * local day in z: its midnight, or with the gap rule of cal_from_local() its
 * first instant when midnight does not exist (America/Havana, Sao Paulo). */
int64_t cal_end_of_date(const struct cal_zone *z, int year, int month, int day);
/* Formats the local date of t for a locale: "1 March 2027" (en),
 * "2027年3月1日" (zh*), ISO 8601 otherwise (also NULL). The language is
 * matched as a prefix ending at '-', '_', '.', '@' or the end: "en_US.UTF-8"
 * and "zh-TW" match, "english" does not. Truncates to n - 1 bytes. Returns
 * out. */
char *cal_format_date(const struct cal_zone *z, int64_t t, const char *locale, char *out, size_t n);
