/* cal: calendar arithmetic in real time zones, built on libical.
 *
 * What it does: converts between UTC instants and local wall time in IANA
 * zones, applies RFC 5545 durations (calendar days, exact seconds), expands
 * RRULEs, reads all-day holidays from .ics files, and finds the next instant
 * inside a send window. Also the small date parsers and formatters the
 * config and import code share.
 *
 * What it owns: a struct cal holds a hash table of zones (each IANA name
 * resolved through libical once) and the holiday sets loaded so far. A zone
 * keeps a lazily built table of its UTC offset transitions, one whole year at
 * a time: libical is asked for the offset at every UTC midnight of the year,
 * and each day whose offset differs from the previous one is bisected to the
 * second. Conversions are then a bucket lookup (buckets of 2^22 s, ~48 days)
 * plus days-from-civil arithmetic, without calling libical. Transitions that
 * undo themselves within one day are not seen (none exist in tzdata since
 * 1900). Years 1800..2399 are tabulated; outside them the offset at the
 * nearest edge applies. Instants are clamped to years 1..9999.
 *
 * The icaltimezone objects themselves belong to libical (its built-in zone
 * array, loaded from the system zoneinfo, process-wide and guarded by its own
 * mutex); the tables built from them belong to the struct cal.
 *
 * Blocking: reads zoneinfo (through libical) on the first use of a zone and
 * the .ics file in cal_holidays_load(); nothing else. Never reads the clock,
 * never touches TZ. Not thread-safe: the zone tables are filled lazily, also
 * through const pointers; use one struct cal per thread.
 *
 * Invariants: a zone's table covers whole UTC years [lo_year, hi_year); its
 * transitions are strictly ascending; holiday sets are immutable once loaded. */
#include "core/cal.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <libical/ical.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"

#define DAY INT64_C(86400)
/* Instants handled at all: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z. */
#define T_MIN INT64_C(-62135596800)
#define T_MAX INT64_C(253402300799)
/* Years a zone table may cover (the end is exclusive), and their instants. */
#define ZONE_YEAR_MIN 1800
#define ZONE_YEAR_END 2400
#define ZONE_T_MIN INT64_C(-5364662400) /* 1800-01-01T00:00:00Z */
#define ZONE_T_END INT64_C(13569465600) /* 2400-01-01T00:00:00Z */
/* Bucket size of the transition index, as a shift of seconds. */
#define BUCKET_SHIFT 22
/* Unknown zone names remembered per struct cal (so bad data does not hit
 * libical again and again, without growing without bound). */
#define UNKNOWN_ZONES_MAX 1024
/* Holiday sets cover local dates of these years (inclusive). */
#define HOL_YEAR_MIN 1970
#define HOL_YEAR_MAX 2200
/* Upper bounds for parsed numbers and files. */
#define ICS_MAX_SIZE (16u << 20)
#define HOL_MAX_STEPS 2000000
#define RRULE_MAX_LEN 1024

/* ---- civil calendar arithmetic (proleptic Gregorian, H. Hinnant) ---- */

static int64_t floordiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if (a % b != 0 && (a < 0) != (b < 0))
    q--;
  return q;
}

static int64_t floormod(int64_t a, int64_t b) {
  return a - floordiv(a, b) * b;
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

/* Days since 1970-01-01 of y-m-d; m in 1..12, d may exceed the month. */
static int64_t days_from_civil(int64_t y, int m, int64_t d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468 + (d - 1);
}

static void civil_from_days(int64_t z, int64_t *ret_y, int *ret_m, int *ret_d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  int m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *ret_d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *ret_m = m;
  *ret_y = yoe + era * 400 + (m <= 2);
}

/* Days since 1970-01-01 of y-m-d with m and d allowed out of range. */
static int64_t days_norm(int64_t y, int64_t m, int64_t d) {
  y += floordiv(m - 1, 12);
  m = floormod(m - 1, 12) + 1;
  return days_from_civil(y, (int)m, d);
}

static bool is_leap(int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m) {
  static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

static bool date_valid(int64_t y, int m, int d) {
  return y >= 1 && y <= 9999 && m >= 1 && m <= 12 && d >= 1 && d <= days_in_month(y, m);
}

/* Exactly n digits at *p, advancing it. */
static bool digits(const char **p, int n, int *ret) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (!isdigit((unsigned char)(*p)[i]))
      return false;
    v = v * 10 + ((*p)[i] - '0');
  }
  *p += n;
  *ret = v;
  return true;
}

/* Whether v is an iCalendar DATE or DATE-TIME ("20261225", "20261225T100000Z")
 * naming a real day; libical reads "2026122X" as 2 December. */
static bool ics_date_valid(const char *v, size_t n) {
  const char *p = v;
  int y, m, d, hh, mm, ss;
  if (n < 8 || !digits(&p, 4, &y) || !digits(&p, 2, &m) || !digits(&p, 2, &d) ||
      !date_valid(y, m, d))
    return false;
  if (n == 8)
    return true;
  if (*p++ != 'T' || !digits(&p, 2, &hh) || !digits(&p, 2, &mm) || !digits(&p, 2, &ss) || hh > 23 ||
      mm > 59 || ss > 60)
    return false;
  return (size_t)(p - v) == n || ((size_t)(p - v) == n - 1 && *p == 'Z');
}

static int wday_of_days(int64_t days) {
  return (int)floormod(days + 4, 7);
}

static int64_t year_start(int64_t y) {
  return days_from_civil(y, 1, 1) * DAY;
}

static int64_t year_of_instant(int64_t t) {
  int64_t y;
  int m, d;
  civil_from_days(floordiv(t, DAY), &y, &m, &d);
  return y;
}

/* Local seconds (wall time read as if it were UTC) to broken-down time. */
static void split_local(int64_t L, int off, struct cal_local *ret) {
  int64_t days = floordiv(L, DAY), s = L - days * DAY, y;
  civil_from_days(days, &y, &ret->month, &ret->day);
  ret->year = (int)y;
  ret->hour = (int)(s / 3600);
  ret->minute = (int)(s / 60 % 60);
  ret->second = (int)(s % 60);
  ret->wday = wday_of_days(days);
  ret->utc_offset = off;
}

/* ---- zones ---- */

struct cal_zone {
  char *name;       /* the IANA name asked for; owned */
  icaltimezone *tz; /* libical's built-in zone (owned by libical); NULL = UTC */
  bool unknown;     /* negative cache entry: libical does not know the name */
  int32_t lo_year;  /* table covers UTC years [lo_year, hi_year); equal = empty */
  int32_t hi_year;
  int64_t lo, hi;   /* year_start(lo_year), year_start(hi_year) */
  int32_t lo_off;   /* UTC offset in effect at lo */
  int64_t *at;      /* transition instants, ascending; all in (lo, hi] */
  int32_t *off;     /* off[i]: UTC offset from at[i] until at[i + 1] */
  size_t n;         /* entries in at and off */
  uint32_t *bucket; /* bucket[b]: transitions at or before lo + (b << BUCKET_SHIFT) */
};

struct cal {
  struct cal_zone **zones;    /* open-addressing hash table by name; NULL = free slot */
  size_t zones_cap;           /* slots, a power of two */
  size_t n_zones;             /* used slots */
  size_t n_unknown;           /* of which negative entries */
  struct cal_holidays **hols; /* loaded holiday sets, in load order */
  size_t n_hols;
};

struct cal_holidays {
  char *path;     /* as passed to cal_holidays_load(); owned */
  uint64_t *bits; /* bit d = local date 1970-01-01 + d days is a holiday */
  int64_t n_days; /* dates covered: HOL_YEAR_MIN-01-01 .. HOL_YEAR_MAX-12-31 */
};

/* The UTC offset libical computes for instant t. */
static int32_t lib_offset(icaltimezone *tz, int64_t t) {
  if (!tz)
    return 0;
  struct icaltimetype tt =
      icaltime_from_timet_with_zone((time_t)t, 0, icaltimezone_get_utc_timezone());
  int dst = 0;
  return icaltimezone_get_utc_offset_of_utc_time(tz, &tt, &dst);
}

/* A growable pair of arrays of transitions. */
struct tvec {
  int64_t *at;
  int32_t *off;
  size_t n, cap;
};

static void tvec_free(struct tvec *v) {
  free(v->at);
  free(v->off);
  *v = (struct tvec){0};
}

static int tvec_push(struct tvec *v, int64_t at, int32_t off) {
  if (v->n == v->cap) {
    size_t cap = v->cap ? 2 * v->cap : 16;
    int64_t *a = realloc(v->at, cap * sizeof *a);
    if (!a)
      return -ENOMEM;
    v->at = a;
    int32_t *o = realloc(v->off, cap * sizeof *o);
    if (!o)
      return -ENOMEM;
    v->off = o;
    v->cap = cap;
  }
  v->at[v->n] = at;
  v->off[v->n++] = off;
  return 0;
}

/* Appends the transitions of tz in (year_start(a), year_start(b)] to v; the
 * offset at year_start(a) goes to *ret_start_off. */
static int scan_years(icaltimezone *tz, int64_t a, int64_t b, struct tvec *v,
                      int32_t *ret_start_off) {
  int64_t s = year_start(a), end = year_start(b);
  int32_t prev = lib_offset(tz, s);
  *ret_start_off = prev;
  for (int64_t x = s; x < end; x += DAY) {
    int64_t y = x + DAY, lo = x;
    int32_t o = lib_offset(tz, y);
    while (o != prev) {
      /* The first instant in (lo, y] whose offset differs from prev. */
      int64_t l = lo, h = y;
      while (h - l > 1) {
        int64_t m = l + (h - l) / 2;
        if (lib_offset(tz, m) == prev)
          l = m;
        else
          h = m;
      }
      prev = lib_offset(tz, h);
      int r = tvec_push(v, h, prev);
      if (r < 0)
        return r;
      lo = h;
    }
  }
  return 0;
}

/* Extends z's table to cover the UTC years [ya, yb] (clamped to the table
 * limits, and to a contiguous range with what is there). 0 or -ENOMEM, in
 * which case the table is unchanged. */
static int zone_cover(struct cal_zone *z, int64_t ya, int64_t yb) {
  ya = clamp64(ya, ZONE_YEAR_MIN, ZONE_YEAR_END - 1);
  yb = clamp64(yb, ZONE_YEAR_MIN, ZONE_YEAR_END - 1);
  bool empty = z->lo_year == z->hi_year;
  if (!empty) {
    if (ya >= z->lo_year && yb < z->hi_year)
      return 0;
    ya = MIN(ya, z->lo_year);
    yb = MAX(yb, (int64_t)z->hi_year - 1);
  }

  struct tvec v = {0};
  int32_t lo_off = z->lo_off, ignored;
  int r = 0;
  if (empty)
    r = scan_years(z->tz, ya, yb + 1, &v, &lo_off);
  else {
    if (ya < z->lo_year)
      r = scan_years(z->tz, ya, z->lo_year, &v, &lo_off);
    for (size_t i = 0; r >= 0 && i < z->n; i++)
      r = tvec_push(&v, z->at[i], z->off[i]);
    if (r >= 0 && yb >= z->hi_year)
      r = scan_years(z->tz, z->hi_year, yb + 1, &v, &ignored);
  }
  if (r < 0) {
    tvec_free(&v);
    return r;
  }

  int64_t lo = year_start(ya), hi = year_start(yb + 1);
  size_t nb = (size_t)((uint64_t)(hi - lo - 1) >> BUCKET_SHIFT) + 1;
  uint32_t *bucket = malloc(nb * sizeof *bucket);
  if (!bucket) {
    tvec_free(&v);
    return -ENOMEM;
  }
  for (size_t k = 0, i = 0; k < nb; k++) {
    int64_t edge = lo + ((int64_t)k << BUCKET_SHIFT);
    while (i < v.n && v.at[i] <= edge)
      i++;
    bucket[k] = (uint32_t)i;
  }

  free(z->at);
  free(z->off);
  free(z->bucket);
  z->at = v.at;
  z->off = v.off;
  z->n = v.n;
  z->bucket = bucket;
  z->lo_year = (int32_t)ya;
  z->hi_year = (int32_t)(yb + 1);
  z->lo = lo;
  z->hi = hi;
  z->lo_off = lo_off;
  return 0;
}

/* Index of the first transition after t; t must lie in [lo, hi). */
static size_t zone_index(const struct cal_zone *z, int64_t t) {
  size_t i = z->bucket[(uint64_t)(t - z->lo) >> BUCKET_SHIFT];
  while (i < z->n && z->at[i] <= t)
    i++;
  return i;
}

/* Makes sure the table covers [x0, x1] (clamped to its limits). False when
 * memory ran out (callers then ask libical directly). */
static bool zone_ensure(struct cal_zone *z, int64_t x0, int64_t x1) {
  if (z->lo_year < z->hi_year && x0 >= z->lo && x1 < z->hi)
    return true;
  return zone_cover(z, year_of_instant(x0), year_of_instant(x1)) >= 0;
}

static int64_t zone_clamp(int64_t t) {
  return clamp64(t, ZONE_T_MIN, ZONE_T_END - 1);
}

/* The UTC offset in effect at instant t. */
static int32_t zone_offset(const struct cal_zone *cz, int64_t t) {
  struct cal_zone *z = (struct cal_zone *)cz; /* lazily filled cache */
  if (!z || !z->tz)
    return 0;
  t = zone_clamp(t);
  if (!zone_ensure(z, t, t))
    return lib_offset(z->tz, t);
  size_t i = zone_index(z, t);
  return i ? z->off[i - 1] : z->lo_off;
}

/* A stretch of time with one UTC offset: [a, b). */
struct seg {
  int64_t a, b;
  int32_t off;
};
#define SEG_MAX 8

/* Fills out with the constant-offset stretches overlapping [x0, x1], in time
 * order; the first starts at INT64_MIN or a transition, the last ends at
 * INT64_MAX or a transition. Returns how many (>= 1). */
static size_t zone_segments(const struct cal_zone *cz, int64_t x0, int64_t x1, struct seg *out) {
  struct cal_zone *z = (struct cal_zone *)cz;
  x0 = zone_clamp(x0);
  x1 = zone_clamp(x1);
  if (!z || !z->tz || !zone_ensure(z, x0, x1)) {
    out[0] = (struct seg){INT64_MIN, INT64_MAX, zone_offset(z, x0)};
    return 1;
  }
  size_t i = zone_index(z, x0), n = 0;
  out[n++] = (struct seg){i ? z->at[i - 1] : INT64_MIN, INT64_MAX, i ? z->off[i - 1] : z->lo_off};
  for (; i < z->n && z->at[i] <= x1 && n < SEG_MAX; i++) {
    out[n - 1].b = z->at[i];
    out[n++] = (struct seg){z->at[i], INT64_MAX, z->off[i]};
  }
  return n;
}

/* Local seconds L to an instant, with the gap and overlap rules of
 * cal_from_local(). */
static int64_t local_to_utc(const struct cal_zone *z, int64_t L) {
  struct seg s[SEG_MAX];
  size_t n = zone_segments(z, L - 2 * DAY, L + 2 * DAY, s);
  for (size_t k = 0; k < n; k++) {
    int64_t t = L - s[k].off;
    if (t >= s[k].a && t < s[k].b)
      return t; /* stretches are in time order: the first hit is the earliest */
  }
  for (size_t k = 0; k + 1 < n; k++)
    if (s[k + 1].off > s[k].off && L >= s[k].b + s[k].off && L < s[k].b + s[k + 1].off)
      return L - s[k].off; /* in the gap: read with the offset before it */
  return L - zone_offset(z, L);
}

/* The earliest instant >= t whose local wall time (as local seconds) lies in
 * [Ws, We), or TIME_NEVER. */
static int64_t wall_range_next(const struct cal_zone *z, int64_t t, int64_t Ws, int64_t We) {
  struct seg s[SEG_MAX];
  size_t n = zone_segments(z, Ws - 2 * DAY, We + 2 * DAY, s);
  for (size_t k = 0; k < n; k++) {
    int64_t lo = MAX(MAX(Ws - s[k].off, s[k].a), t), hi = MIN(We - s[k].off, s[k].b);
    if (lo < hi)
      return lo;
  }
  return TIME_NEVER;
}

static void zone_free(struct cal_zone *z) {
  if (!z)
    return;
  free(z->name);
  free(z->at);
  free(z->off);
  free(z->bucket);
  free(z);
}

static uint64_t hash_name(const char *s) {
  uint64_t h = UINT64_C(14695981039346656037);
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
  return h;
}

static int zones_grow(struct cal *c) {
  size_t cap = c->zones_cap ? 2 * c->zones_cap : 64;
  struct cal_zone **t = calloc(cap, sizeof *t);
  if (!t)
    return -ENOMEM;
  for (size_t i = 0; i < c->zones_cap; i++) {
    struct cal_zone *z = c->zones[i];
    if (!z)
      continue;
    size_t j = hash_name(z->name) & (cap - 1);
    while (t[j])
      j = (j + 1) & (cap - 1);
    t[j] = z;
  }
  free(c->zones);
  c->zones = t;
  c->zones_cap = cap;
  return 0;
}

/* IANA names only: letters, digits, "_+-" and single inner "/" (no dots), so
 * nothing reaches libical's file lookup that could leave the zoneinfo tree. */
static bool zone_name_valid(const char *s) {
  size_t len = strlen(s);
  if (len == 0 || len > 128 || s[0] == '/' || s[len - 1] == '/')
    return false;
  for (const char *p = s; *p; p++) {
    if (*p == '/' && p[1] == '/')
      return false;
    if (!isalnum((unsigned char)*p) && !strchr("_+-/", *p))
      return false;
  }
  return true;
}

int cal_new(struct cal **ret) {
  if (!ret)
    return -EINVAL;
  struct cal *c = calloc(1, sizeof *c);
  if (!c)
    return -ENOMEM;
  *ret = c;
  return 0;
}

static void holidays_free(struct cal_holidays *h) {
  if (!h)
    return;
  free(h->path);
  free(h->bits);
  free(h);
}

struct cal *cal_free(struct cal *c) {
  if (!c)
    return NULL;
  for (size_t i = 0; i < c->zones_cap; i++)
    zone_free(c->zones[i]);
  free(c->zones);
  for (size_t i = 0; i < c->n_hols; i++)
    holidays_free(c->hols[i]);
  free(c->hols);
  free(c);
  return NULL;
}

const struct cal_zone *cal_zone(struct cal *c, const char *tzid) {
  if (!c || !tzid || !zone_name_valid(tzid)) {
    errno = ENOENT;
    return NULL;
  }
  uint64_t h = hash_name(tzid);
  if (c->zones_cap) {
    for (size_t j = h & (c->zones_cap - 1); c->zones[j]; j = (j + 1) & (c->zones_cap - 1))
      if (streq(c->zones[j]->name, tzid)) {
        if (c->zones[j]->unknown)
          errno = ENOENT;
        return c->zones[j]->unknown ? NULL : c->zones[j];
      }
  }

  icaltimezone *tz = icaltimezone_get_builtin_timezone(tzid);
  if (!tz && c->n_unknown >= UNKNOWN_ZONES_MAX) {
    errno = ENOENT;
    return NULL;
  }
  if (2 * (c->n_zones + 1) > c->zones_cap && zones_grow(c) < 0) {
    errno = ENOMEM;
    return NULL;
  }
  struct cal_zone *z = calloc(1, sizeof *z);
  if (!z || !(z->name = strdup(tzid))) {
    free(z);
    errno = ENOMEM;
    return NULL;
  }
  z->unknown = !tz;
  z->tz = tz == icaltimezone_get_utc_timezone() ? NULL : tz;
  size_t j = h & (c->zones_cap - 1);
  while (c->zones[j])
    j = (j + 1) & (c->zones_cap - 1);
  c->zones[j] = z;
  c->n_zones++;
  if (z->unknown) {
    c->n_unknown++;
    errno = ENOENT;
    return NULL;
  }
  return z;
}

const char *cal_zone_name(const struct cal_zone *z) {
  return z ? z->name : "UTC";
}

void cal_to_local(const struct cal_zone *z, int64_t t, struct cal_local *ret) {
  if (!ret)
    return;
  t = clamp64(t, T_MIN, T_MAX);
  int32_t off = zone_offset(z, t);
  split_local(t + off, off, ret);
}

/* Local seconds of y-m-d h:mi:s, fields normalised like mktime(). */
static int64_t local_seconds(int64_t y, int64_t m, int64_t d, int64_t h, int64_t mi, int64_t s) {
  return days_norm(y, m, d) * DAY + h * 3600 + mi * 60 + s;
}

int64_t cal_from_local(const struct cal_zone *z, int year, int month, int day, int hour, int minute,
                       int second) {
  return local_to_utc(z, local_seconds(year, month, day, hour, minute, second));
}

/* ---- durations ---- */

int cal_duration_parse(const char *s, struct cal_duration *ret) {
  if (!s || !ret)
    return -EINVAL;
  const char *p = s;
  bool neg = false, in_time = false, time_part = false, any = false;
  int rank = 0; /* last unit: W=1 D=2 H=3 M=4 S=5 */
  int64_t weeks = 0, days = 0, secs = 0;
  if (*p == '+' || *p == '-')
    neg = *p++ == '-';
  if (*p++ != 'P')
    return -EINVAL;
  while (*p) {
    if (*p == 'T') {
      if (in_time)
        return -EINVAL;
      in_time = true;
      p++;
      continue;
    }
    if (!isdigit((unsigned char)*p))
      return -EINVAL;
    int64_t v = 0;
    int nd = 0;
    for (; isdigit((unsigned char)*p); p++, nd++) {
      if (nd >= 9)
        return -EINVAL;
      v = v * 10 + (*p - '0');
    }
    int unit = !in_time ? (*p == 'W'   ? 1
                           : *p == 'D' ? 2
                                       : 0)
                        : (*p == 'H'   ? 3
                           : *p == 'M' ? 4
                           : *p == 'S' ? 5
                                       : 0);
    if (unit == 0 || unit <= rank)
      return -EINVAL;
    rank = unit;
    p++;
    any = true;
    time_part |= in_time;
    switch (unit) {
    case 1:
      weeks = v;
      break;
    case 2:
      days = v;
      break;
    case 3:
      secs += v * 3600;
      break;
    case 4:
      secs += v * 60;
      break;
    default:
      secs += v;
      break;
    }
  }
  if (!any || (in_time && !time_part))
    return -EINVAL;
  days += weeks * 7;
  if (days > INT32_MAX)
    return -EINVAL;
  /* libical must agree (it is laxer: it takes "P" and "PT"; never stricter). */
  struct icaldurationtype d = icaldurationtype_from_string(s);
  if (icaldurationtype_is_bad_duration(d))
    return -EINVAL;
  *ret = (struct cal_duration){
      .negative = neg && (days || secs), .days = (int32_t)days, .seconds = secs};
  return 0;
}

void cal_duration_format(const struct cal_duration *d, char *out, size_t n) {
  if (!out || n == 0)
    return;
  if (!d || (d->days <= 0 && d->seconds <= 0)) {
    snprintf(out, n, "PT0S");
    return;
  }
  struct buf b = {0};
  int64_t s = MAX(d->seconds, 0);
  int r = buf_printf(&b, "%sP", d->negative ? "-" : "");
  if (r >= 0 && d->days > 0)
    r = buf_printf(&b, "%" PRId32 "D", d->days);
  if (r >= 0 && s > 0)
    r = buf_puts(&b, "T");
  if (r >= 0 && s >= 3600)
    r = buf_printf(&b, "%" PRId64 "H", s / 3600);
  if (r >= 0 && s % 3600 >= 60)
    r = buf_printf(&b, "%" PRId64 "M", s % 3600 / 60);
  if (r >= 0 && s % 60)
    r = buf_printf(&b, "%" PRId64 "S", s % 60);
  snprintf(out, n, "%s", r >= 0 && b.data ? b.data : "");
  buf_free(&b);
}

static int64_t add_sat(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r))
    return b > 0 ? INT64_MAX : INT64_MIN;
  return r;
}

int64_t cal_add_duration(const struct cal_zone *z, int64_t t, const struct cal_duration *d) {
  if (!d)
    return t;
  if (d->days != 0) {
    if (t >= T_MAX || t <= T_MIN)
      return t >= T_MAX ? TIME_NEVER : INT64_MIN;
    struct cal_local l;
    cal_to_local(z, t, &l);
    int64_t days = days_from_civil(l.year, l.month, l.day) +
                   (d->negative ? -(int64_t)d->days : (int64_t)d->days);
    t = local_to_utc(z, days * DAY + l.hour * 3600 + l.minute * 60 + l.second);
  }
  if (d->seconds != 0 && d->seconds != INT64_MIN)
    t = add_sat(t, d->negative ? -d->seconds : d->seconds);
  return t;
}

/* ---- recurrence rules ---- */

struct cal_rrule {
  struct icalrecurrencetype rule; /* as libical parsed it, COUNT and UNTIL cleared */
  int count;                      /* COUNT; 0 = none (applied here, dtstart included) */
  struct icaltimetype until;      /* UTC, floating or DATE; null time = none */
  bool simple;                    /* no BY... part: expanded by arithmetic, not libical */
};

static const char *const freq_names[] = {
    [ICAL_SECONDLY_RECURRENCE] = "SECONDLY", [ICAL_MINUTELY_RECURRENCE] = "MINUTELY",
    [ICAL_HOURLY_RECURRENCE] = "HOURLY",     [ICAL_DAILY_RECURRENCE] = "DAILY",
    [ICAL_WEEKLY_RECURRENCE] = "WEEKLY",     [ICAL_MONTHLY_RECURRENCE] = "MONTHLY",
    [ICAL_YEARLY_RECURRENCE] = "YEARLY",
};

static const char *freq_name(icalrecurrencetype_frequency f) {
  return (int)f >= 0 && (size_t)f < ELEMENTSOF(freq_names) && freq_names[f] ? freq_names[f] : "?";
}

static bool by_set(const short *a) {
  return a[0] != ICAL_RECURRENCE_ARRAY_MAX;
}

static _printf_(3, 4) int set_err(char *err, size_t n, const char *fmt, ...) {
  if (err && n) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
  }
  return -EINVAL;
}

/* RFC 5545 §3.3.10 restrictions libical does not enforce, and what we refuse
 * to expand because it can make libical iterate for seconds. */
static int rule_check(const struct icalrecurrencetype *r, char *err, size_t n) {
  icalrecurrencetype_frequency f = r->freq;
  const char *fn = freq_name(f);
  if ((int)f < (int)ICAL_SECONDLY_RECURRENCE || (int)f > (int)ICAL_YEARLY_RECURRENCE)
    return set_err(err, n, "missing or unknown FREQ");
  if (f == ICAL_SECONDLY_RECURRENCE)
    return set_err(err, n, "FREQ=SECONDLY is not supported (use MINUTELY or coarser)");
  if (by_set(r->by_week_no) && f != ICAL_YEARLY_RECURRENCE)
    return set_err(err, n, "BYWEEKNO is only allowed with FREQ=YEARLY");
  if (by_set(r->by_year_day) &&
      (f == ICAL_DAILY_RECURRENCE || f == ICAL_WEEKLY_RECURRENCE || f == ICAL_MONTHLY_RECURRENCE))
    return set_err(err, n, "BYYEARDAY is not allowed with FREQ=%s", fn);
  if (by_set(r->by_month_day) && f == ICAL_WEEKLY_RECURRENCE)
    return set_err(err, n, "BYMONTHDAY is not allowed with FREQ=WEEKLY");
  for (size_t i = 0; i < ICAL_BY_DAY_SIZE && r->by_day[i] != ICAL_RECURRENCE_ARRAY_MAX; i++)
    if (icalrecurrencetype_day_position(r->by_day[i]) != 0 &&
        (!(f == ICAL_MONTHLY_RECURRENCE || f == ICAL_YEARLY_RECURRENCE) ||
         (f == ICAL_YEARLY_RECURRENCE && by_set(r->by_week_no))))
      return set_err(err, n, "BYDAY with a number (like 1MO) needs FREQ=MONTHLY or YEARLY");
  if (by_set(r->by_month_day)) { /* the common impossible rule, caught without iterating */
    bool possible = false;
    for (int m = 1; m <= 12 && !possible; m++) {
      bool in = !by_set(r->by_month);
      for (size_t i = 0; i < ICAL_BY_MONTH_SIZE && r->by_month[i] != ICAL_RECURRENCE_ARRAY_MAX; i++)
        in |= r->by_month[i] == m;
      for (size_t i = 0;
           in && i < ICAL_BY_MONTHDAY_SIZE && r->by_month_day[i] != ICAL_RECURRENCE_ARRAY_MAX; i++)
        possible |= abs(r->by_month_day[i]) <= (m == 2 ? 29 : days_in_month(2001, m));
    }
    if (!possible)
      return set_err(err, n, "BYMONTHDAY never falls in the months of the rule");
  }
  if (f < ICAL_DAILY_RECURRENCE) {
    const char *bad = by_set(r->by_month)       ? "BYMONTH"
                      : by_set(r->by_month_day) ? "BYMONTHDAY"
                      : by_set(r->by_year_day)  ? "BYYEARDAY"
                      : by_set(r->by_set_pos)   ? "BYSETPOS"
                                                : NULL;
    if (bad)
      return set_err(err, n, "%s is not supported with FREQ=%s", bad, fn);
  }
  return 0;
}

/* Steps through a rule from a start: the start first (RFC 5545: DTSTART is
 * always the first occurrence and counts for COUNT), then libical's
 * occurrences after it, up to count. Occurrences are floating wall times. */
struct rr_iter {
  icalrecur_iterator *it;
  struct icaltimetype start;
  int count;   /* 0 = unlimited */
  int emitted; /* occurrences handed out so far */
  bool checked;
};

static bool same_wall(struct icaltimetype a, struct icaltimetype b) {
  return a.year == b.year && a.month == b.month && a.day == b.day &&
         (a.is_date || b.is_date ||
          (a.hour == b.hour && a.minute == b.minute && a.second == b.second));
}

static int rr_begin(struct rr_iter *ri, const struct icalrecurrencetype *rule, int count,
                    struct icaltimetype start) {
  *ri = (struct rr_iter){.start = start, .count = count};
  ri->it = icalrecur_iterator_new(*rule, start);
  return ri->it ? 0 : -EINVAL;
}

static bool rr_next(struct rr_iter *ri, struct icaltimetype *ret) {
  if (ri->count > 0 && ri->emitted >= ri->count)
    return false;
  if (ri->emitted == 0) {
    ri->emitted++;
    *ret = ri->start;
    return true;
  }
  for (;;) {
    struct icaltimetype nx = icalrecur_iterator_next(ri->it);
    if (icaltime_is_null_time(nx))
      return false;
    if (!ri->checked) {
      ri->checked = true;
      if (same_wall(nx, ri->start))
        continue;
    }
    ri->emitted++;
    *ret = nx;
    return true;
  }
}

static void rr_end(struct rr_iter *ri) {
  if (ri->it)
    icalrecur_iterator_free(ri->it);
  ri->it = NULL;
}

static struct icaltimetype floating(int64_t y, int m, int d, int h, int mi, int s, bool is_date) {
  struct icaltimetype t = icaltime_null_time();
  t.year = (int)y;
  t.month = m;
  t.day = d;
  t.hour = h;
  t.minute = mi;
  t.second = s;
  t.is_date = is_date;
  return t;
}

/* Makes sure the rule yields something after an ordinary start, a start on
 * the 31st of a month and one on 29 February: libical iterates for a long
 * time (to year 2582) over a rule that never matches. */
static int rule_probe(const struct icalrecurrencetype *rule, char *err, size_t n) {
  static const int probes[][3] = {{2027, 1, 1}, {2027, 1, 31}, {2028, 2, 29}};
  for (size_t i = 0; i < ELEMENTSOF(probes); i++) {
    struct rr_iter ri;
    struct icaltimetype o;
    bool ok = rr_begin(&ri, rule, 0,
                       floating(probes[i][0], probes[i][1], probes[i][2], 9, 0, 0, false)) >= 0;
    if (!ok && i == 0)
      return set_err(err, n, "libical rejects the rule (impossible BY... combination?)");
    ok = ok && rr_next(&ri, &o) && rr_next(&ri, &o);
    rr_end(&ri);
    if (!ok)
      return set_err(err, n, "the rule never repeats after a start on %04d-%02d-%02d", probes[i][0],
                     probes[i][1], probes[i][2]);
  }
  return 0;
}

static const char *const rrule_parts[] = {
    "FREQ",  "UNTIL",      "COUNT",     "INTERVAL", "BYSECOND", "BYMINUTE", "BYHOUR",
    "BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYMONTH",  "BYSETPOS", "WKST"};

static bool parse_small_uint(const char *s, int max, int *ret) {
  int v = 0;
  if (!*s)
    return false;
  for (; *s; s++) {
    if (!isdigit((unsigned char)*s) || v > max / 10)
      return false;
    v = v * 10 + (*s - '0');
  }
  if (v > max)
    return false;
  *ret = v;
  return true;
}

/* Parses and checks an RRULE value strictly (see cal_rrule_parse()), without
 * the probes. */
static int rrule_parse_struct(const char *s, struct icalrecurrencetype *ret, char *err,
                              size_t errlen) {
  if (isempty(s))
    return set_err(err, errlen, "empty rule");
  if (strlen(s) > RRULE_MAX_LEN)
    return set_err(err, errlen, "rule too long");

  /* Our own pass first: libical drops what follows an empty part and its
   * errors do not say which part is wrong. */
  _cleanup_free_ char *up = strdup(s);
  _cleanup_free_ char *copy = strdup(s);
  if (!up || !copy)
    return -ENOMEM;
  for (char *p = up; *p; p++)
    *p = (char)toupper((unsigned char)*p);
  strcpy(copy, up);
  unsigned seen = 0;
  const char *freq = NULL;
  int count = 0, interval = 0;
  for (char *part = copy, *next; part; part = next) {
    next = strchr(part, ';');
    if (next)
      *next++ = 0;
    if (!*part)
      return set_err(err, errlen, "empty part (stray ';')");
    char *eq = strchr(part, '=');
    if (!eq)
      return set_err(err, errlen, "'%s' is not NAME=VALUE", part);
    *eq = 0;
    const char *v = eq + 1;
    size_t k = 0;
    while (k < ELEMENTSOF(rrule_parts) && !streq(part, rrule_parts[k]))
      k++;
    if (k == ELEMENTSOF(rrule_parts))
      return set_err(err, errlen, "unknown part '%s'", part);
    if (seen & (1u << k))
      return set_err(err, errlen, "%s given twice", part);
    seen |= 1u << k;
    if (!*v)
      return set_err(err, errlen, "%s has no value", part);
    if (streq(part, "FREQ"))
      freq = s + (v - copy);
    else if (streq(part, "COUNT") && !parse_small_uint(v, 100000, &count))
      return set_err(err, errlen, "COUNT must be an integer 1..100000, not '%s'", v);
    else if (streq(part, "INTERVAL") && !parse_small_uint(v, 100000, &interval))
      return set_err(err, errlen, "INTERVAL must be an integer 1..100000, not '%s'", v);
    else if (streq(part, "UNTIL") && !ics_date_valid(v, strlen(v)))
      return set_err(err, errlen,
                     "UNTIL must be a date or a date-time (20271231T235959Z), not '%s'", v);
    if ((streq(part, "COUNT") && count == 0) || (streq(part, "INTERVAL") && interval == 0))
      return set_err(err, errlen, "%s must be at least 1", part);
  }
  if (!freq)
    return set_err(err, errlen, "missing FREQ");
  size_t flen = strcspn(freq, ";");
  bool freq_ok = false;
  for (size_t f = 0; f < ELEMENTSOF(freq_names); f++)
    freq_ok |=
        freq_names[f] && strlen(freq_names[f]) == flen && !strncasecmp(freq, freq_names[f], flen);
  if (!freq_ok)
    return set_err(err, errlen,
                   "unknown FREQ '%.*s' (expected MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY or "
                   "YEARLY)",
                   (int)flen, freq);
  if ((seen & (1u << 1)) && (seen & (1u << 2)))
    return set_err(err, errlen, "COUNT and UNTIL cannot both be given");

  icalerror_clear_errno();
  struct icalrecurrencetype rule = icalrecurrencetype_from_string(up);
  if (rule.freq == ICAL_NO_RECURRENCE) {
    /* Find the part libical chokes on. */
    _cleanup_free_ char *one = NULL;
    strcpy(copy, up);
    for (char *part = copy, *next; part; part = next) {
      next = strchr(part, ';');
      if (next)
        *next++ = 0;
      if (!strncmp(part, "FREQ=", 5))
        continue;
      free(one);
      one = strprintf("FREQ=DAILY;%s", part);
      if (!one)
        return -ENOMEM;
      icalerror_clear_errno();
      if (icalrecurrencetype_from_string(one).freq == ICAL_NO_RECURRENCE)
        return set_err(err, errlen, "bad value in '%s'", part);
    }
    return set_err(err, errlen, "libical cannot parse the rule");
  }
  if (rule.rscale) /* not reachable: RSCALE is refused above */
    return set_err(err, errlen, "RSCALE is not supported");

  int r = rule_check(&rule, err, errlen);
  if (r < 0)
    return r;
  *ret = rule;
  return 0;
}

int cal_rrule_parse(const char *s, struct cal_rrule **ret, char *err, size_t errlen) {
  if (err && errlen)
    err[0] = 0;
  if (!ret)
    return -EINVAL;
  struct icalrecurrencetype rule;
  int r = rrule_parse_struct(s, &rule, err, errlen);
  if (r < 0)
    return r;
  struct cal_rrule *rr = calloc(1, sizeof *rr);
  if (!rr)
    return -ENOMEM;
  rr->count = rule.count;
  rr->until = rule.until;
  rr->simple = !by_set(rule.by_second) && !by_set(rule.by_minute) && !by_set(rule.by_hour) &&
               rule.by_day[0] == ICAL_RECURRENCE_ARRAY_MAX && !by_set(rule.by_month_day) &&
               !by_set(rule.by_year_day) && !by_set(rule.by_week_no) && !by_set(rule.by_month) &&
               !by_set(rule.by_set_pos);
  rule.count = 0;
  rule.until = icaltime_null_time();
  rr->rule = rule;
  r = rule_probe(&rr->rule, err, errlen);
  if (r < 0) {
    free(rr);
    return r;
  }
  *ret = rr;
  return 0;
}

struct cal_rrule *cal_rrule_free(struct cal_rrule *r) {
  free(r);
  return NULL;
}

/* The last instant the rule's UNTIL admits, in zone z. */
static int64_t rrule_until(const struct cal_rrule *r, const struct cal_zone *z) {
  const struct icaltimetype *u = &r->until;
  if (icaltime_is_null_time(*u))
    return INT64_MAX;
  if (u->is_date) /* through the whole local day */
    return local_to_utc(z, local_seconds(u->year, u->month, u->day + 1, 0, 0, 0)) - 1;
  int64_t L = local_seconds(u->year, u->month, u->day, u->hour, u->minute, u->second);
  return icaltime_is_utc(*u) ? L : local_to_utc(z, L);
}

/* Steps through the occurrences of a rule as local seconds (wall time read
 * as UTC). A rule without BY... parts is plain arithmetic on the wall time
 * (libical's iterator costs microseconds, through ICU); RFC 5545 drops the
 * invalid dates this makes (31 April, 29 February of a common year) and
 * they do not count. The tests check both ways against libical. */
struct occ_iter {
  const struct cal_rrule *r;
  struct rr_iter ri;   /* libical's, when !r->simple */
  int64_t y0, L0, tod; /* the start: year, local seconds, seconds into its day */
  int m0, d0;          /* the start: month, day */
  int64_t k;           /* periods after the start (simple) */
  int emitted;         /* occurrences handed out (simple) */
};

static int occ_begin(struct occ_iter *oi, const struct cal_rrule *r, const struct cal_local *l) {
  *oi = (struct occ_iter){.r = r, .y0 = l->year, .m0 = l->month, .d0 = l->day};
  oi->tod = l->hour * 3600 + l->minute * 60 + l->second;
  oi->L0 = days_from_civil(l->year, l->month, l->day) * DAY + oi->tod;
  if (r->simple)
    return 0;
  return rr_begin(&oi->ri, &r->rule, r->count,
                  floating(l->year, l->month, l->day, l->hour, l->minute, l->second, false));
}

static bool occ_next(struct occ_iter *oi, int64_t *ret) {
  const struct cal_rrule *r = oi->r;
  if (!r->simple) {
    struct icaltimetype o;
    if (!rr_next(&oi->ri, &o))
      return false;
    *ret = local_seconds(o.year, o.month, o.day, o.hour, o.minute, o.second);
    return true;
  }
  if (r->count > 0 && oi->emitted >= r->count)
    return false;
  int64_t iv = MAX(r->rule.interval, 1);
  for (;;) {
    int64_t k = oi->k++, L;
    switch (r->rule.freq) {
    case ICAL_MINUTELY_RECURRENCE:
      L = oi->L0 + k * iv * 60;
      break;
    case ICAL_HOURLY_RECURRENCE:
      L = oi->L0 + k * iv * 3600;
      break;
    case ICAL_DAILY_RECURRENCE:
      L = oi->L0 + k * iv * DAY;
      break;
    case ICAL_WEEKLY_RECURRENCE:
      L = oi->L0 + k * iv * 7 * DAY;
      break;
    case ICAL_MONTHLY_RECURRENCE: {
      int64_t mm = oi->m0 - 1 + k * iv, y = oi->y0 + mm / 12;
      int m = (int)(mm % 12) + 1;
      if (y > 9999)
        return false;
      if (oi->d0 > days_in_month(y, m))
        continue;
      L = days_from_civil(y, m, oi->d0) * DAY + oi->tod;
      break;
    }
    case ICAL_YEARLY_RECURRENCE: {
      int64_t y = oi->y0 + k * iv;
      if (y > 9999)
        return false;
      if (oi->d0 > days_in_month(y, oi->m0))
        continue;
      L = days_from_civil(y, oi->m0, oi->d0) * DAY + oi->tod;
      break;
    }
    default:
      return false;
    }
    if (L > T_MAX)
      return false;
    oi->emitted++;
    *ret = L;
    return true;
  }
}

static void occ_end(struct occ_iter *oi) {
  if (!oi->r->simple)
    rr_end(&oi->ri);
}

size_t cal_rrule_expand(const struct cal_rrule *r, const struct cal_zone *z, int64_t dtstart,
                        int64_t until, int64_t *out, size_t max) {
  if (!out || max == 0 || dtstart >= until || dtstart < T_MIN || dtstart > T_MAX)
    return 0;
  out[0] = dtstart;
  if (!r)
    return 1;
  until = MIN(until, add_sat(rrule_until(r, z), 1));
  if (dtstart >= until)
    return 0;

  struct cal_local l;
  cal_to_local(z, dtstart, &l);
  struct occ_iter oi;
  if (occ_begin(&oi, r, &l) < 0)
    return 1;
  int64_t L;
  size_t n = 0;
  while (n < max && occ_next(&oi, &L)) {
    if (n == 0) {
      n = 1; /* dtstart itself, exactly (not the earliest reading of its wall time) */
      continue;
    }
    int64_t x = local_to_utc(z, L);
    if (x >= until) {
      /* Wall times in a DST gap map a little out of order: stop only when
       * clearly past the end. */
      if (x - until > 2 * DAY)
        break;
      continue;
    }
    out[n++] = x;
  }
  occ_end(&oi);

  /* Sort and drop duplicates (a gap can map two wall times to one instant). */
  for (size_t i = 1; i < n; i++)
    for (size_t j = i; j > 0 && out[j - 1] > out[j]; j--) {
      int64_t tmp = out[j];
      out[j] = out[j - 1];
      out[j - 1] = tmp;
    }
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (m == 0 || out[m - 1] != out[i])
      out[m++] = out[i];
  return m;
}

/* ---- holidays ---- */

static int64_t hol_first_day(void) {
  return days_from_civil(HOL_YEAR_MIN, 1, 1);
}

static bool hol_day(const struct cal_holidays *h, int64_t days) {
  if (!h)
    return false;
  int64_t i = days - hol_first_day();
  return i >= 0 && i < h->n_days && (h->bits[i / 64] >> (i % 64) & 1);
}

static void hol_mark(struct cal_holidays *h, int64_t days, int64_t span) {
  for (int64_t i = days - hol_first_day(), e = i + span; i < e; i++)
    if (i >= 0 && i < h->n_days)
      h->bits[i / 64] |= UINT64_C(1) << (i % 64);
}

bool cal_is_holiday(const struct cal_holidays *h, int year, int month, int day) {
  if (!h || !date_valid(year, month, day))
    return false;
  return hol_day(h, days_from_civil(year, month, day));
}

/* Where the properties of the k-th VEVENT of the file are (0 = unknown). */
struct ics_event_lines {
  unsigned begin, dtstart, dtend, duration, rrule;
};

struct ics_lines {
  struct ics_event_lines *v;
  size_t n;
};

/* One VEVENT, as collected in file order. */
struct ics_event {
  icalcomponent *comp;
  const struct ics_event_lines *lines; /* NULL when the line scan disagrees */
  const char *uid;                     /* may be NULL */
  int64_t rid_day;                     /* RECURRENCE-ID date, or INT64_MIN */
  struct ics_event *next;              /* events of the whole file: a list */
};

struct hol_ctx {
  struct cal_holidays *h;
  const char *path;
  char *err;
  size_t errlen;
  const struct ics_lines *lines;
  struct ics_event *events, **tail; /* collected VEVENTs */
  size_t n_events;
  long steps; /* rule iterations so far (bounded) */
};

static _printf_(4, 5) int hol_err(struct hol_ctx *x, unsigned line, int r, const char *fmt, ...) {
  if (x->err && x->errlen) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line)
      snprintf(x->err, x->errlen, "%s:%u: %s", x->path, line, msg);
    else
      snprintf(x->err, x->errlen, "%s: %s", x->path, msg);
  }
  return r;
}

/* Checks the value of a date property: a list of dates, date-times or (RDATE)
 * periods "start/end" or "start/duration", of which the start is checked. */
static bool ics_dates_valid(const char *v) {
  for (;;) {
    size_t n = strcspn(v, ",");
    size_t k = strcspn(v, "/,");
    if (!ics_date_valid(v, MIN(n, k)))
      return false;
    if (!v[n])
      return true;
    v += n + 1;
  }
}

/* Which VEVENT property a logical line is, by name. */
enum ics_prop { PROP_OTHER, PROP_DTSTART, PROP_DTEND, PROP_DURATION, PROP_RRULE, PROP_DATES };

static enum ics_prop ics_prop_of(const char *line) {
  static const struct {
    const char *name;
    enum ics_prop prop;
  } props[] = {{"DTSTART", PROP_DTSTART},    {"DTEND", PROP_DTEND},  {"DURATION", PROP_DURATION},
               {"RRULE", PROP_RRULE},        {"EXDATE", PROP_DATES}, {"RDATE", PROP_DATES},
               {"RECURRENCE-ID", PROP_DATES}};
  size_t nl = strcspn(line, ";:");
  for (size_t i = 0; i < ELEMENTSOF(props); i++)
    if (nl == strlen(props[i].name) && !strncasecmp(line, props[i].name, nl))
      return props[i].prop;
  return PROP_OTHER;
}

/* The value of a content line: after the first ':' outside quotes. */
static const char *ics_value(const char *line) {
  bool quoted = false;
  for (const char *p = line; *p; p++) {
    if (*p == '"')
      quoted = !quoted;
    else if (*p == ':' && !quoted)
      return p + 1;
  }
  return NULL;
}

/* Records the line of each BEGIN:VEVENT and of some of its properties, in
 * file order (the order libical keeps), and checks what libical reads too
 * leniently: date values and RRULEs of VEVENTs. Works on logical (unfolded)
 * lines, numbered by their first physical line. */
static int ics_scan_lines(struct hol_ctx *x, const char *text, struct ics_lines *ret) {
  size_t cap = 0;
  unsigned line = 0;
  int depth = 0, event_depth = -1;
  struct buf b = {0};
  int r = 0;
  for (const char *p = text; *p && r >= 0;) {
    /* one logical line into b */
    unsigned first = line + 1;
    buf_reset(&b);
    do {
      const char *eol = strchr(p, '\n');
      size_t len = eol ? (size_t)(eol - p) : strlen(p);
      size_t skip = line + 1 > first ? 1 : 0; /* the fold's leading blank */
      size_t take = len - (len > 0 && p[len - 1] == '\r') - MIN(skip, len);
      line++;
      r = buf_append(&b, p + MIN(skip, len), take);
      p += len + (eol ? 1 : 0);
    } while (r >= 0 && (*p == ' ' || *p == '\t'));
    if (r < 0 || !b.data || !b.data[0])
      continue;
    const char *l = b.data;
    if (!strncasecmp(l, "BEGIN:", 6)) {
      depth++;
      if (!strcasecmp(l + 6, "VEVENT")) {
        if (ret->n == cap) {
          cap = cap ? 2 * cap : 32;
          struct ics_event_lines *v = realloc(ret->v, cap * sizeof *v);
          if (!v) {
            r = -ENOMEM;
            break;
          }
          ret->v = v;
        }
        ret->v[ret->n++] = (struct ics_event_lines){.begin = first};
        event_depth = depth;
      }
    } else if (!strncasecmp(l, "END:", 4)) {
      if (depth == event_depth)
        event_depth = -1;
      depth--;
    } else if (event_depth == depth && ret->n > 0) {
      struct ics_event_lines *e = &ret->v[ret->n - 1];
      enum ics_prop prop = ics_prop_of(l);
      const char *v = ics_value(l);
      unsigned *slot = prop == PROP_DTSTART    ? &e->dtstart
                       : prop == PROP_DTEND    ? &e->dtend
                       : prop == PROP_DURATION ? &e->duration
                       : prop == PROP_RRULE    ? &e->rrule
                                               : NULL;
      if (slot && !*slot)
        *slot = first;
      if ((prop == PROP_DTSTART || prop == PROP_DTEND || prop == PROP_DATES) &&
          (!v || !ics_dates_valid(v)))
        r = hol_err(x, first, -EINVAL, "bad date value in %.*s", (int)strcspn(l, ";:"), l);
      else if (prop == PROP_RRULE) {
        struct icalrecurrencetype rule;
        char msg[160];
        int q = v ? rrule_parse_struct(v, &rule, msg, sizeof msg) : -EINVAL;
        if (q == -ENOMEM)
          r = q;
        else if (q < 0)
          r = hol_err(x, first, -EINVAL, "RRULE: %s", v ? msg : "no value");
      }
    }
  }
  buf_free(&b);
  return r;
}

static unsigned ev_line(const struct ics_event *e, size_t off) {
  if (!e || !e->lines)
    return 0;
  unsigned l = *(const unsigned *)((const char *)e->lines + off);
  return l ? l : e->lines->begin;
}

static int64_t icaldays(struct icaltimetype t) {
  return days_from_civil(t.year, t.month, t.day);
}

/* Walks the tree in document order: collects VEVENTs, fails on libical's
 * X-LIC-ERROR markers (what it could not parse), reported at the enclosing
 * VEVENT's line. */
static int hol_collect(struct hol_ctx *x, icalcomponent *c, struct ics_event *in_event) {
  if (icalcomponent_isa(c) == ICAL_VEVENT_COMPONENT) {
    struct ics_event *e = calloc(1, sizeof *e);
    if (!e)
      return -ENOMEM;
    e->comp = c;
    e->rid_day = INT64_MIN;
    if (x->lines && x->n_events < x->lines->n)
      e->lines = &x->lines->v[x->n_events];
    x->n_events++;
    *x->tail = e;
    x->tail = &e->next;
    in_event = e;
  }
  icalproperty *p = icalcomponent_get_first_property(c, ICAL_XLICERROR_PROPERTY);
  if (p)
    return hol_err(x, ev_line(in_event, 0), -EINVAL, "%s", icalproperty_get_xlicerror(p));
  for (icalcomponent *k = icalcomponent_get_first_component(c, ICAL_ANY_COMPONENT); k;
       k = icalcomponent_get_next_component(c, ICAL_ANY_COMPONENT)) {
    int r = hol_collect(x, k, in_event);
    if (r < 0)
      return r;
  }
  return 0;
}

/* First day and length in days of an all-day event. */
static int ev_span(struct hol_ctx *x, struct ics_event *e, int64_t *ret_day, int64_t *ret_span) {
  icalcomponent *c = e->comp;
  icalproperty *p = icalcomponent_get_first_property(c, ICAL_DTSTART_PROPERTY);
  if (!p)
    return hol_err(x, ev_line(e, 0), -EINVAL, "VEVENT without DTSTART");
  struct icaltimetype s = icalproperty_get_dtstart(p);
  unsigned ls = ev_line(e, offsetof(struct ics_event_lines, dtstart));
  if (icaltime_is_null_time(s) || !date_valid(s.year, s.month, s.day))
    return hol_err(x, ls, -EINVAL, "bad DTSTART");
  if (!s.is_date)
    return hol_err(
        x, ls, -EINVAL,
        "DTSTART is a date-time; holidays are all-day events (DTSTART;VALUE=DATE:YYYYMMDD)");
  int64_t day = icaldays(s), span = 1;
  if ((p = icalcomponent_get_first_property(c, ICAL_DTEND_PROPERTY))) {
    struct icaltimetype en = icalproperty_get_dtend(p);
    unsigned le = ev_line(e, offsetof(struct ics_event_lines, dtend));
    if (icaltime_is_null_time(en) || !en.is_date || !date_valid(en.year, en.month, en.day))
      return hol_err(x, le, -EINVAL, "DTEND must be a date (DTEND;VALUE=DATE:YYYYMMDD)");
    span = icaldays(en) - day;
    if (span < 1)
      return hol_err(x, le, -EINVAL, "DTEND must be after DTSTART (it is exclusive)");
  } else if ((p = icalcomponent_get_first_property(c, ICAL_DURATION_PROPERTY))) {
    struct icaldurationtype d = icalproperty_get_duration(p);
    unsigned ld = ev_line(e, offsetof(struct ics_event_lines, duration));
    if (icaldurationtype_is_bad_duration(d) || d.is_neg || d.hours || d.minutes || d.seconds ||
        d.weeks * 7 + d.days == 0)
      return hol_err(x, ld, -EINVAL, "DURATION of an all-day event must be whole days (P1D)");
    span = (int64_t)d.weeks * 7 + d.days;
  }
  if (span > 366)
    return hol_err(x, ev_line(e, 0), -EINVAL, "event longer than 366 days");
  *ret_day = day;
  *ret_span = span;
  return 0;
}

/* Whether day is excluded for master e: an EXDATE, or the RECURRENCE-ID of
 * an override with the same UID. */
static bool ev_excluded(const struct hol_ctx *x, const struct ics_event *e, int64_t day) {
  icalcomponent *c = e->comp;
  for (icalproperty *p = icalcomponent_get_first_property(c, ICAL_EXDATE_PROPERTY); p;
       p = icalcomponent_get_next_property(c, ICAL_EXDATE_PROPERTY))
    if (icaldays(icalproperty_get_exdate(p)) == day)
      return true;
  if (!e->uid)
    return false;
  for (const struct ics_event *o = x->events; o; o = o->next)
    if (o->rid_day == day && o->uid && streq(o->uid, e->uid))
      return true;
  return false;
}

static int ev_expand(struct hol_ctx *x, struct ics_event *e) {
  icalcomponent *c = e->comp;
  int64_t day = 0, span = 1;
  int r = ev_span(x, e, &day, &span);
  if (r < 0)
    return r;
  if (icalcomponent_get_status(c) == ICAL_STATUS_CANCELLED)
    return 0;
  int64_t last = days_from_civil(HOL_YEAR_MAX, 12, 31);
  bool master = e->rid_day == INT64_MIN;

  if (!master || !ev_excluded(x, e, day))
    hol_mark(x->h, day, span);
  if (!master)
    return 0;

  for (icalproperty *p = icalcomponent_get_first_property(c, ICAL_RDATE_PROPERTY); p;
       p = icalcomponent_get_next_property(c, ICAL_RDATE_PROPERTY)) {
    struct icaldatetimeperiodtype rd = icalproperty_get_rdate(p);
    struct icaltimetype t = icaltime_is_null_time(rd.time) ? rd.period.start : rd.time;
    if (!icaltime_is_null_time(t) && date_valid(t.year, t.month, t.day) &&
        !ev_excluded(x, e, icaldays(t)))
      hol_mark(x->h, icaldays(t), span);
  }

  for (icalproperty *p = icalcomponent_get_first_property(c, ICAL_RRULE_PROPERTY); p;
       p = icalcomponent_get_next_property(c, ICAL_RRULE_PROPERTY)) {
    unsigned lr = ev_line(e, offsetof(struct ics_event_lines, rrule));
    struct icalrecurrencetype rule = icalproperty_get_rrule(p);
    char msg[160];
    if (rule.freq == ICAL_NO_RECURRENCE)
      return hol_err(x, lr, -EINVAL, "bad RRULE");
    if (rule.freq < ICAL_DAILY_RECURRENCE)
      return hol_err(x, lr, -EINVAL, "RRULE of an all-day event must be DAILY or coarser");
    if (rule_check(&rule, msg, sizeof msg) < 0)
      return hol_err(x, lr, -EINVAL, "RRULE: %s", msg);
    int count = rule.count;
    struct icaltimetype until = rule.until;
    rule.count = 0;
    rule.until = icaltime_null_time();
    int64_t until_day = icaltime_is_null_time(until) ? INT64_MAX : icaldays(until);

    struct rr_iter ri;
    struct icaltimetype o;
    struct icaltimetype st =
        icalproperty_get_dtstart(icalcomponent_get_first_property(c, ICAL_DTSTART_PROPERTY));
    st.zone = NULL;
    if (rr_begin(&ri, &rule, count, st) < 0)
      return hol_err(x, lr, -EINVAL, "RRULE: libical rejects the rule");
    while (rr_next(&ri, &o)) {
      if (++x->steps > HOL_MAX_STEPS) {
        rr_end(&ri);
        return hol_err(x, lr, -E2BIG, "RRULE expands to too many occurrences");
      }
      int64_t d = icaldays(o);
      if (d > until_day || d > last)
        break;
      if (d != day && !ev_excluded(x, e, d))
        hol_mark(x->h, d, span);
    }
    rr_end(&ri);
  }
  return 0;
}

static int hol_parse(struct hol_ctx *x, icalcomponent *root) {
  icalcomponent_kind k = icalcomponent_isa(root);
  if (k != ICAL_VCALENDAR_COMPONENT && k != ICAL_XROOT_COMPONENT)
    return hol_err(x, 0, -EINVAL, "not an iCalendar file (no VCALENDAR)");
  int r = hol_collect(x, root, NULL);
  if (r < 0)
    return r;
  if (x->lines && x->n_events != x->lines->n) /* line numbers would be wrong */
    for (struct ics_event *e = x->events; e; e = e->next)
      e->lines = NULL;
  for (struct ics_event *e = x->events; e; e = e->next) {
    icalproperty *p = icalcomponent_get_first_property(e->comp, ICAL_UID_PROPERTY);
    e->uid = p ? icalproperty_get_uid(p) : NULL;
    if ((p = icalcomponent_get_first_property(e->comp, ICAL_RECURRENCEID_PROPERTY))) {
      struct icaltimetype t = icalproperty_get_recurrenceid(p);
      if (icaltime_is_null_time(t) || !date_valid(t.year, t.month, t.day))
        return hol_err(x, ev_line(e, 0), -EINVAL, "bad RECURRENCE-ID");
      e->rid_day = icaldays(t);
    }
  }
  for (struct ics_event *e = x->events; e; e = e->next)
    if ((r = ev_expand(x, e)) < 0)
      return r;
  return 0;
}

int cal_holidays_load(struct cal *c, const char *ics_path, const struct cal_holidays **ret,
                      char *err, size_t errlen) {
  if (err && errlen)
    err[0] = 0;
  if (!c || isempty(ics_path) || !ret)
    return -EINVAL;
  for (size_t i = 0; i < c->n_hols; i++)
    if (streq(c->hols[i]->path, ics_path)) {
      *ret = c->hols[i];
      return 0;
    }

  struct hol_ctx x = {.path = ics_path, .err = err, .errlen = errlen};
  x.tail = &x.events;
  _cleanup_free_ char *text = NULL;
  size_t len;
  int r = read_full_file(ics_path, ICS_MAX_SIZE, &text, &len);
  if (r < 0)
    return hol_err(&x, 0, r, "%s", strerror(-r));
  if (memchr(text, 0, len))
    return hol_err(&x, 0, -EINVAL, "not an iCalendar file (NUL bytes)");

  struct ics_lines lines = {0};
  r = ics_scan_lines(&x, text, &lines);
  if (r < 0) {
    free(lines.v);
    return r;
  }
  x.lines = &lines;

  struct cal_holidays *h = calloc(1, sizeof *h);
  struct cal_holidays **hols = realloc(c->hols, (c->n_hols + 1) * sizeof *hols);
  if (hols)
    c->hols = hols;
  if (h) {
    h->n_days = days_from_civil(HOL_YEAR_MAX + 1, 1, 1) - hol_first_day();
    h->bits = calloc((size_t)(h->n_days + 63) / 64, sizeof *h->bits);
    h->path = strdup(ics_path);
  }
  if (!h || !h->bits || !h->path || !hols) {
    holidays_free(h);
    free(lines.v);
    return -ENOMEM;
  }
  x.h = h;

  icalerror_clear_errno();
  icalcomponent *root = icalparser_parse_string(text);
  if (!root)
    r = hol_err(&x, 0, -EINVAL, "not a complete iCalendar file (BEGIN:VCALENDAR .. END:VCALENDAR)");
  else
    r = hol_parse(&x, root);
  if (root)
    icalcomponent_free(root);
  while (x.events) {
    struct ics_event *e = x.events;
    x.events = e->next;
    free(e);
  }
  free(lines.v);
  if (r < 0) {
    holidays_free(h);
    return r;
  }
  c->hols[c->n_hols++] = h;
  *ret = h;
  return 0;
}

/* ---- send windows ---- */

static bool window_valid(const struct cal_window *w) {
  return w->start_min < w->end_min && w->end_min <= 24 * 60 && (w->days & 0x7f);
}

static bool window_day(const struct cal_window *w, int64_t days) {
  return (w->days >> wday_of_days(days) & 1) && !hol_day(w->holidays, days);
}

bool cal_window_contains(const struct cal_window *w, const struct cal_zone *z, int64_t t) {
  if (!w)
    return true;
  if (!window_valid(w) || t < T_MIN || t > T_MAX)
    return false;
  struct cal_local l;
  cal_to_local(z, t, &l);
  int min = l.hour * 60 + l.minute;
  return min >= w->start_min && min < w->end_min &&
         window_day(w, days_from_civil(l.year, l.month, l.day));
}

int64_t cal_window_next(const struct cal_window *w, const struct cal_zone *z, int64_t t) {
  if (!w)
    return t;
  if (!window_valid(w) || t > T_MAX)
    return TIME_NEVER;
  t = MAX(t, T_MIN);
  struct cal_local l;
  cal_to_local(z, t, &l);
  int64_t d0 = days_from_civil(l.year, l.month, l.day);
  int min = l.hour * 60 + l.minute;
  if (min >= w->start_min && min < w->end_min && window_day(w, d0))
    return t;

  /* Each allowed day's hours, from the day before (a DST change may bring
   * its wall time back) to a year ahead; after the first hit, one more day
   * in case an overlap makes it earlier. */
  int64_t best = TIME_NEVER, found = 1000;
  for (int64_t k = -1; k <= 366 && k <= found + 1; k++) {
    int64_t d = d0 + k;
    if (!window_day(w, d))
      continue;
    int64_t x = wall_range_next(z, t, d * DAY + w->start_min * 60, d * DAY + w->end_min * 60);
    if (x != TIME_NEVER) {
      best = MIN(best, x);
      found = MIN(found, k);
    }
  }
  return best;
}

static const char *skip_ws(const char *p) {
  while (*p == ' ' || *p == '\t')
    p++;
  return p;
}

/* "H:MM" or "HH:MM", 00:00..24:00. */
static const char *parse_hhmm(const char *p, int *ret_min) {
  int h = 0, m;
  if (!isdigit((unsigned char)p[0]))
    return NULL;
  h = *p++ - '0';
  if (isdigit((unsigned char)*p))
    h = h * 10 + (*p++ - '0');
  if (*p++ != ':' || !isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
    return NULL;
  m = (p[0] - '0') * 10 + (p[1] - '0');
  if (h > 24 || m > 59 || (h == 24 && m != 0))
    return NULL;
  *ret_min = h * 60 + m;
  return p + 2;
}

int cal_window_parse_hours(const char *s, uint16_t *ret_start, uint16_t *ret_end) {
  int a, b;
  if (!s || !ret_start || !ret_end)
    return -EINVAL;
  const char *p = parse_hhmm(skip_ws(s), &a);
  if (!p)
    return -EINVAL;
  p = skip_ws(p);
  if (*p++ != '-')
    return -EINVAL;
  p = parse_hhmm(skip_ws(p), &b);
  if (!p || *skip_ws(p) || a >= b)
    return -EINVAL;
  *ret_start = (uint16_t)a;
  *ret_end = (uint16_t)b;
  return 0;
}

/* A day name ("Mon", "monday") at p of length n: 0..6 or -1. */
static int parse_day_name(const char *p, size_t n) {
  static const char *const names[] = {"sunday",   "monday", "tuesday", "wednesday",
                                      "thursday", "friday", "saturday"};
  for (int i = 0; i < 7; i++)
    if ((n == 3 || n == strlen(names[i])) && !strncasecmp(p, names[i], n))
      return i;
  return -1;
}

int cal_window_parse_days(const char *s, uint8_t *ret_days) {
  if (!s || !ret_days)
    return -EINVAL;
  const char *p = skip_ws(s);
  size_t len = strlen(p);
  while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
    len--;
  if ((len == 1 && p[0] == '*') || (len == 3 && !strncasecmp(p, "all", 3))) {
    *ret_days = 0x7f;
    return 0;
  }
  uint8_t days = 0;
  const char *end = p + len;
  for (;;) {
    p = skip_ws(p);
    const char *q = p;
    while (q < end && isalpha((unsigned char)*q))
      q++;
    int a = parse_day_name(p, (size_t)(q - p)), b = a;
    if (a < 0)
      return -EINVAL;
    p = skip_ws(q);
    if (p < end && (*p == '-' || (*p == '.' && p[1] == '.'))) {
      p = skip_ws(p + (*p == '-' ? 1 : 2));
      q = p;
      while (q < end && isalpha((unsigned char)*q))
        q++;
      if ((b = parse_day_name(p, (size_t)(q - p))) < 0)
        return -EINVAL;
      p = skip_ws(q);
    }
    for (int d = a;; d = (d + 1) % 7) {
      days |= (uint8_t)(1u << d);
      if (d == b)
        break;
    }
    if (p >= end)
      break;
    if (*p++ != ',')
      return -EINVAL;
  }
  *ret_days = days;
  return 0;
}

/* ---- dates ---- */

static const char *parse_ymd(const char *p, int *y, int *m, int *d) {
  if (!digits(&p, 4, y) || *p++ != '-' || !digits(&p, 2, m) || *p++ != '-' || !digits(&p, 2, d))
    return NULL;
  return date_valid(*y, *m, *d) ? p : NULL;
}

int cal_parse_date(const char *s, int *ret_year, int *ret_month, int *ret_day) {
  int y = 0, m = 0, d = 0;
  if (!s || !ret_year || !ret_month || !ret_day)
    return -EINVAL;
  const char *p = parse_ymd(s, &y, &m, &d);
  if (!p || *p)
    return -EINVAL;
  *ret_year = y;
  *ret_month = m;
  *ret_day = d;
  return 0;
}

int cal_parse_rfc3339(const char *s, int64_t *ret) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, oh = 0, om = 0, sign = 0;
  if (!s || !ret)
    return -EINVAL;
  const char *p = parse_ymd(s, &y, &mo, &d);
  if (!p || (*p != 'T' && *p != 't' && *p != ' '))
    return -EINVAL;
  p++;
  if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) || *p++ != ':' ||
      !digits(&p, 2, &sec) || h > 23 || mi > 59 || sec > 60)
    return -EINVAL;
  if (*p == '.') {
    p++;
    if (!isdigit((unsigned char)*p))
      return -EINVAL;
    while (isdigit((unsigned char)*p))
      p++;
  }
  if (*p == 'Z' || *p == 'z')
    p++;
  else if (*p == '+' || *p == '-') {
    sign = *p++ == '-' ? -1 : 1;
    if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om) || oh > 23 || om > 59)
      return -EINVAL;
  } else
    return -EINVAL;
  if (*p)
    return -EINVAL;
  *ret = local_seconds(y, mo, d, h, mi, sec) - sign * (oh * 3600 + om * 60);
  return 0;
}

int64_t cal_end_of_date(const struct cal_zone *z, int year, int month, int day) {
  return local_to_utc(z, local_seconds(year, month, (int64_t)day + 1, 0, 0, 0));
}

/* Whether locale names language lang: "en", "en_US.UTF-8", "en-GB". */
static bool locale_is(const char *locale, const char *lang) {
  size_t n = strlen(lang);
  return locale && !strncasecmp(locale, lang, n) && strchr("-_.@", locale[n]);
}

char *cal_format_date(const struct cal_zone *z, int64_t t, const char *locale, char *out,
                      size_t n) {
  static const char *const months[] = {"January",   "February", "March",    "April",
                                       "May",       "June",     "July",     "August",
                                       "September", "October",  "November", "December"};
  if (!out || n == 0)
    return out;
  struct cal_local l;
  cal_to_local(z, t, &l);
  if (locale_is(locale, "en"))
    snprintf(out, n, "%d %s %d", l.day, months[l.month - 1], l.year);
  else if (locale_is(locale, "zh"))
    snprintf(out, n, "%d年%d月%d日", l.year, l.month, l.day);
  else
    snprintf(out, n, "%04d-%02d-%02d", l.year, l.month, l.day);
  return out;
}
