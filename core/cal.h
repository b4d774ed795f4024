/* cal: calendar arithmetic in real time zones, built on libical.
 *
 * Owns: a cache of IANA time zones (each loaded once, with cached UTC offsets
 * per local day so conversions are cheap), holiday sets read from .ics files,
 * parsed RFC 5545 durations and recurrence rules. Never reads the clock, never
 * calls setenv("TZ"), never blocks beyond reading zoneinfo/.ics files on first
 * use. Not thread-safe: one struct cal per thread.
 *
 * All instants are int64_t seconds since the epoch, UTC. */
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
  int year, month, day;      /* month 1..12, day 1..31 */
  int hour, minute, second;  /* 0..23, 0..59, 0..60 */
  int wday;                  /* 0 = Sunday .. 6 = Saturday */
  int utc_offset;            /* seconds east of UTC in effect at that instant */
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
  uint16_t start_min; /* minutes after local midnight, inclusive */
  uint16_t end_min;   /* minutes after local midnight, exclusive; > start_min */
  uint8_t days;       /* bit d set = weekday d allowed (0 = Sunday) */
  const struct cal_holidays *holidays; /* NULL = none; owned by a struct cal */
};

int cal_new(struct cal **ret);
struct cal *cal_free(struct cal *c);

/* Returns the zone for an IANA name ("Europe/Berlin", "UTC"), loading it on
 * first use; NULL when the name is unknown. Valid until cal_free(). */
const struct cal_zone *cal_zone(struct cal *c, const char *tzid);
const char *cal_zone_name(const struct cal_zone *z);

void cal_to_local(const struct cal_zone *z, int64_t t, struct cal_local *ret);

/* Local wall time to UTC. In a DST gap (02:30 on a spring-forward day) the
 * result is the instant that wall time denotes under the offset before the
 * gap, i.e. moved forward by the gap's length (03:30). In an overlap the
 * earlier instant is returned. Fields may be out of range (day 0, month 13)
 * and are normalised as mktime() does. */
int64_t cal_from_local(const struct cal_zone *z, int year, int month, int day, int hour,
                       int minute, int second);

/* Parses an RFC 5545 duration. Returns 0 or -EINVAL. */
int cal_duration_parse(const char *s, struct cal_duration *ret);
/* Formats a duration back in canonical form ("-P60D", "PT12H"). */
void cal_duration_format(const struct cal_duration *d, char *out, size_t n);
/* Applies d to t: days move the local date in z keeping the local wall time
 * (RFC 5545 §3.3.6), then seconds are added exactly. */
int64_t cal_add_duration(const struct cal_zone *z, int64_t t, const struct cal_duration *d);

/* Parses and validates an RRULE ("FREQ=WEEKLY;COUNT=3"). On failure returns
 * -EINVAL and writes a message to err. Caller frees with cal_rrule_free(). */
int cal_rrule_parse(const char *s, struct cal_rrule **ret, char *err, size_t errlen);
struct cal_rrule *cal_rrule_free(struct cal_rrule *r);
/* Writes up to max occurrences of r started at dtstart (the first occurrence
 * is dtstart itself), expanded in local wall time of z, each < until.
 * Returns how many were written. */
size_t cal_rrule_expand(const struct cal_rrule *r, const struct cal_zone *z, int64_t dtstart,
                        int64_t until, int64_t *out, size_t max);

/* Loads the all-day VEVENTs (yearly RRULEs included) of an .ics file, once per
 * path. Returns 0, or -errno/-EINVAL with a "path:line: message" in err.
 * The set is owned by c. */
int cal_holidays_load(struct cal *c, const char *ics_path, const struct cal_holidays **ret,
                      char *err, size_t errlen);
bool cal_is_holiday(const struct cal_holidays *h, int year, int month, int day);

/* Parses "09:00-18:00" and day lists ("Mon..Fri", "Mon,Wed,Sat", "Mon-Fri").
 * Return 0 or -EINVAL. */
int cal_window_parse_hours(const char *s, uint16_t *ret_start, uint16_t *ret_end);
int cal_window_parse_days(const char *s, uint8_t *ret_days);
/* The earliest instant >= t inside w in zone z; TIME_NEVER when there is none
 * within a year (e.g. no day allowed). */
int64_t cal_window_next(const struct cal_window *w, const struct cal_zone *z, int64_t t);
bool cal_window_contains(const struct cal_window *w, const struct cal_zone *z, int64_t t);

/* "2027-02-28": 0 or -EINVAL (bad syntax, 2027-02-30). */
int cal_parse_date(const char *s, int *ret_year, int *ret_month, int *ret_day);
/* RFC 3339 "2027-03-01T10:00:00Z" / "+05:30" offsets: 0 or -EINVAL. */
int cal_parse_rfc3339(const char *s, int64_t *ret);
/* A contract valid through local date y-m-d expires at the start of the next
 * local day in z. */
int64_t cal_end_of_date(const struct cal_zone *z, int year, int month, int day);
/* Formats the local date of t for a locale: "1 March 2027" (en),
 * "2027年3月1日" (zh*), ISO 8601 otherwise. Returns out. */
char *cal_format_date(const struct cal_zone *z, int64_t t, const char *locale, char *out,
                      size_t n);
