/* bench-cal: core/cal's cached conversions against libical doing the same
 * conversions directly (icaltime_from_timet_with_zone /
 * icaltime_as_timet_with_zone), in the same run, over a mix of zones.
 *
 *   convert    UTC -> local (cal_to_local) then local -> UTC (cal_from_local)
 *   window     cal_window_next(09:00-18:00, Mon..Fri) against a plain
 *              day-by-day loop over libical conversions
 *   next-due   what the policy engine does per occurrence: expiry - P60D in
 *              the zone (cal_add_duration) then cal_window_next; the libical
 *              peer moves the local date back 60 days and converts back
 *
 * N instants spread over 2020..2035 in ZONES zones (random order, so the
 * bench sees scattered zones, not a warm one). Tables are warmed first on
 * both sides (libical expands its own per-zone change arrays on first use):
 * the figures are the steady state. Each phase is timed RUNS times, the best
 * kept (the machine is shared). Prints ns/op, the speed-up, and the next-due
 * rate against the 500,000/s the policy engine needs. */
#include <inttypes.h>
#include <libical/ical.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/cal.h"
#include "core/util.h"

#define N 200000
#define RUNS 5
#define TARGET_PER_SEC 500000.0

static const char *const zone_names[] = {
    "Europe/Berlin",     "America/New_York", "Asia/Kolkata",        "Australia/Lord_Howe",
    "America/St_Johns",  "Pacific/Chatham",  "Asia/Tokyo",          "America/Sao_Paulo",
    "Africa/Casablanca", "Europe/London",    "America/Los_Angeles", "UTC"};
#define ZONES ELEMENTSOF(zone_names)

struct item {
  int64_t t;
  unsigned zone;
};

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* ---- the peer: the same work with libical conversions ---- */

static int64_t lib_window_next(const struct cal_window *w, icaltimezone *tz, int64_t t) {
  struct icaltimetype l = icaltime_from_timet_with_zone((time_t)t, 0, tz);
  int min = l.hour * 60 + l.minute;
  for (int k = 0; k <= 366; k++) {
    struct icaltimetype d = l;
    d.hour = d.minute = d.second = 0;
    d.day += k;
    d = icaltime_normalize(d);
    int wday = icaltime_day_of_week(d) - 1; /* libical: 1 = Sunday */
    if (!(w->days & (1u << wday)))
      continue;
    if (k == 0 && min >= w->start_min && min < w->end_min)
      return t;
    if (k == 0 && min >= w->end_min)
      continue;
    d.hour = w->start_min / 60;
    d.minute = w->start_min % 60;
    int64_t x = icaltime_as_timet_with_zone(d, tz);
    if (x >= t)
      return x;
  }
  return TIME_NEVER;
}

static int64_t lib_minus_days(icaltimezone *tz, int64_t t, int days) {
  struct icaltimetype l = icaltime_from_timet_with_zone((time_t)t, 0, tz);
  l.day -= days;
  l = icaltime_normalize(l);
  return icaltime_as_timet_with_zone(l, tz);
}

int main(void) {
  struct cal *c = NULL;
  if (cal_new(&c) < 0)
    return 1;
  const struct cal_zone *z[ZONES];
  icaltimezone *tz[ZONES];
  for (size_t i = 0; i < ZONES; i++) {
    z[i] = cal_zone(c, zone_names[i]);
    tz[i] = icaltimezone_get_builtin_timezone(zone_names[i]);
    if (!z[i] || !tz[i]) {
      fprintf(stderr, "zone %s unknown\n", zone_names[i]);
      return 1;
    }
  }

  struct item *it = malloc(N * sizeof *it);
  if (!it)
    return 1;
  uint64_t s = 0x2545F4914F6CDD1Du;
  const int64_t t0 = 1577836800; /* 2020-01-01 */
  for (size_t i = 0; i < N; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    it[i].t = t0 + (int64_t)(s % (16ull * 365 * 86400));
    it[i].zone = (unsigned)((s >> 48) % ZONES);
  }
  struct cal_window w = {.start_min = 9 * 60, .end_min = 18 * 60, .days = 0x3e};
  struct cal_duration d60;
  if (cal_duration_parse("-P60D", &d60) < 0)
    return 1;

  /* Warm both sides, and check they agree on the conversions. */
  size_t disagree = 0;
  for (size_t i = 0; i < N; i++) {
    struct cal_local l;
    cal_to_local(z[it[i].zone], it[i].t, &l);
    struct icaltimetype lt = icaltime_from_timet_with_zone((time_t)it[i].t, 0, tz[it[i].zone]);
    disagree += l.hour != lt.hour || l.minute != lt.minute || l.day != lt.day;
    (void)icaltime_as_timet_with_zone(lt, tz[it[i].zone]);
    (void)cal_window_next(&w, z[it[i].zone], it[i].t);
  }

  double best[3][2];
  for (int p = 0; p < 3; p++)
    best[p][0] = best[p][1] = 1e300;
  volatile int64_t sink = 0;
  for (int run = 0; run < RUNS; run++) {
    double a = now_ns();
    int64_t acc = 0;
    for (size_t i = 0; i < N; i++) {
      struct cal_local l;
      const struct cal_zone *zz = z[it[i].zone];
      cal_to_local(zz, it[i].t, &l);
      acc += cal_from_local(zz, l.year, l.month, l.day, l.hour, l.minute, l.second);
    }
    double b = now_ns();
    for (size_t i = 0; i < N; i++) {
      icaltimezone *zz = tz[it[i].zone];
      struct icaltimetype l = icaltime_from_timet_with_zone((time_t)it[i].t, 0, zz);
      acc += icaltime_as_timet_with_zone(l, zz);
    }
    double e = now_ns();
    best[0][0] = MIN(best[0][0], (b - a) / N);
    best[0][1] = MIN(best[0][1], (e - b) / N);

    a = now_ns();
    for (size_t i = 0; i < N; i++)
      acc += cal_window_next(&w, z[it[i].zone], it[i].t);
    b = now_ns();
    for (size_t i = 0; i < N; i++)
      acc += lib_window_next(&w, tz[it[i].zone], it[i].t);
    e = now_ns();
    best[1][0] = MIN(best[1][0], (b - a) / N);
    best[1][1] = MIN(best[1][1], (e - b) / N);

    a = now_ns();
    for (size_t i = 0; i < N; i++) {
      const struct cal_zone *zz = z[it[i].zone];
      acc += cal_window_next(&w, zz, cal_add_duration(zz, it[i].t, &d60));
    }
    b = now_ns();
    for (size_t i = 0; i < N; i++) {
      icaltimezone *zz = tz[it[i].zone];
      acc += lib_window_next(&w, zz, lib_minus_days(zz, it[i].t, 60));
    }
    e = now_ns();
    best[2][0] = MIN(best[2][0], (b - a) / N);
    best[2][1] = MIN(best[2][1], (e - b) / N);
    sink += acc;
  }

  static const char *const names[] = {"to_local+from_local", "window_next",
                                      "next-due (-P60D+window)"};
  printf("bench-cal: %d instants 2020..2035 over %zu zones, best of %d runs\n", N, ZONES, RUNS);
  printf("  warm-up: cal_to_local disagrees with libical on %zu of %d instants\n", disagree, N);
  printf("  %-26s %12s %12s %8s\n", "", "cal ns/op", "libical", "speedup");
  for (int p = 0; p < 3; p++)
    printf("  %-26s %12.1f %12.1f %7.1fx\n", names[p], best[p][0], best[p][1],
           best[p][1] / best[p][0]);
  double rate = 1e9 / best[2][0];
  printf("  next-due rate: %.0f/s with cal (%.0f/s with libical); target %.0f/s: %s\n", rate,
         1e9 / best[2][1], TARGET_PER_SEC, rate >= TARGET_PER_SEC ? "PASS" : "MISS");
  free(it);
  cal_free(c);
  return sink == 42 ? 2 : 0;
}
