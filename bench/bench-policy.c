/* bench-policy: policy_next() throughput over a mixed book.
 *
 * Book: contracts in 13 zones (Asia/Kolkata, Australia/Lord_Howe,
 * America/St_Johns, Asia/Kathmandu, Pacific/Chatham, ...), three 5-tier
 * ladders with repeats and an owner escalation, business-hour windows with and
 * without a holiday set, all catch-up modes and states, a random "now" within
 * each contract's ladder and a random history prefix (the first k occurrences
 * recorded). Target: >= 500,000 policy_next() calls per second on one core.
 * Peer, measured in the same run: the per-call cost of libical's own UTC ->
 * local conversion (icaltime_from_timet_with_zone), the unit every zone step
 * of the engine would pay without cal's caches.
 *
 * Usage: bench-policy [seconds per measurement, default 1] */
#include <libical/ical.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "core/cal.h"
#include "core/ladder.h"
#include "core/policy.h"
#include "core/util.h"

#define TARGET 500000.0
#define BOOK 4096
#define DAY INT64_C(86400)

static const char *const zones[] = {
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "America/St_Johns",
    "Asia/Tokyo",
    "America/Los_Angeles",
    "Europe/London",
    "Australia/Sydney",
    "America/Sao_Paulo",
    "Pacific/Chatham",
    "Asia/Kathmandu",
};

struct tier_spec {
  const char *name, *offset, *repeat;
  enum audience audience;
};

static const struct tier_spec ladders[3][5] = {
    {{"pre60", "-P60D", "FREQ=WEEKLY", AUDIENCE_CUSTOMER},
     {"pre30", "-P30D", "FREQ=DAILY;INTERVAL=3;COUNT=3", AUDIENCE_CUSTOMER},
     {"esc14", "-P14D", NULL, AUDIENCE_OWNER},
     {"pre7", "-P7D", "FREQ=DAILY;INTERVAL=2", AUDIENCE_CUSTOMER},
     {"lapsed", "P1D", NULL, AUDIENCE_CUSTOMER}},
    {{"pre90", "-P90D", NULL, AUDIENCE_CUSTOMER},
     {"pre45", "-P45D", "FREQ=WEEKLY;COUNT=4", AUDIENCE_CUSTOMER},
     {"pre10", "-P10D", NULL, AUDIENCE_CUSTOMER},
     {"esc5", "-P5D", "FREQ=DAILY;COUNT=2", AUDIENCE_OWNER},
     {"pre1", "-PT36H", NULL, AUDIENCE_CUSTOMER}},
    {{"pre30", "-P30D", "FREQ=DAILY;INTERVAL=5", AUDIENCE_CUSTOMER},
     {"pre14", "-P14D", NULL, AUDIENCE_CUSTOMER},
     {"esc7", "-P7D", NULL, AUDIENCE_OWNER},
     {"pre3", "-P3D", "FREQ=DAILY;COUNT=3", AUDIENCE_CUSTOMER},
     {"post3", "P3D", NULL, AUDIENCE_CUSTOMER}},
};

struct bench_contract {
  struct policy_input in;
  struct policy_sent sent[POLICY_MAX_OCCURRENCES * 5];
};

static uint64_t rng = 0x9e3779b97f4a7c15;
static uint64_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}
static int64_t rnd_range(int64_t lo, int64_t hi) {
  return lo + (int64_t)(rnd() % (uint64_t)(hi - lo));
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct policy *build(const struct tier_spec *spec, enum catchup cu) {
  struct policy *p = calloc(1, sizeof(*p));
  p->name = strdup("bench");
  p->catchup = cu;
  p->lapse_grace = 14 * DAY;
  p->n_tiers = 5;
  p->tiers = calloc(5, sizeof(struct tier));
  for (size_t i = 0; i < 5; i++) {
    char err[128];
    p->tiers[i].name = strdup(spec[i].name);
    p->tiers[i].audience = spec[i].audience;
    if (cal_duration_parse(spec[i].offset, &p->tiers[i].offset) < 0)
      abort();
    if (spec[i].repeat && cal_rrule_parse(spec[i].repeat, &p->tiers[i].rrule, err, sizeof(err)) < 0)
      abort();
  }
  return p;
}

static void unbuild(struct policy *p) {
  for (size_t i = 0; i < p->n_tiers; i++) {
    free(p->tiers[i].name);
    cal_rrule_free(p->tiers[i].rrule);
  }
  free(p->tiers);
  free(p->name);
  free(p);
}

struct plan_acc {
  struct bench_contract *c;
  const struct policy *p;
  size_t n;
  int64_t first, last;
};

static int plan_cb(size_t tier, int32_t step, int64_t raw, int64_t due, void *ud) {
  struct plan_acc *a = ud;
  if (a->n < ELEMENTSOF(a->c->sent))
    a->c->sent[a->n++] = (struct policy_sent){a->p->tiers[tier].name, step};
  if (a->first == TIME_NEVER)
    a->first = raw;
  a->last = due;
  return 0;
}

int main(int argc, char **argv) {
  double secs = argc > 1 ? atof(argv[1]) : 1.0;
  if (secs <= 0)
    secs = 1.0;

  struct cal *cal;
  if (cal_new(&cal) < 0)
    return 1;
  char dir[] = "/tmp/bench-policy-XXXXXX", path[64], err[256];
  if (!mkdtemp(dir))
    return 1;
  snprintf(path, sizeof(path), "%s/h.ics", dir);
  FILE *f = fopen(path, "we");
  fputs("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//renewd//bench//EN\r\n", f);
  static const char *const hol[] = {"20270101", "20270405", "20270501", "20270525", "20270704",
                                    "20271003", "20271225", "20271226", "20280101", "20280417"};
  for (size_t i = 0; i < ELEMENTSOF(hol); i++)
    fprintf(f,
            "BEGIN:VEVENT\r\nUID:h%zu@bench\r\nDTSTAMP:20260101T000000Z\r\n"
            "DTSTART;VALUE=DATE:%s\r\nSUMMARY:h\r\nEND:VEVENT\r\n",
            i, hol[i]);
  fputs("END:VCALENDAR\r\n", f);
  fclose(f);
  const struct cal_holidays *holidays;
  if (cal_holidays_load(cal, path, &holidays, err, sizeof(err)) < 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  unlink(path);
  rmdir(dir);

  const struct cal_zone *z[ELEMENTSOF(zones)];
  for (size_t i = 0; i < ELEMENTSOF(zones); i++)
    if (!(z[i] = cal_zone(cal, zones[i]))) {
      fprintf(stderr, "unknown zone %s\n", zones[i]);
      return 1;
    }
  struct cal_window windows[3] = {
      {.start_min = 540, .end_min = 1080, .days = 0x3e, .holidays = holidays},
      {.start_min = 540, .end_min = 1080, .days = 0x3e},
      {.start_min = 480, .end_min = 1200, .days = 0x7e, .holidays = holidays},
  };
  struct policy *pols[3][3];
  for (int l = 0; l < 3; l++)
    for (int c = 0; c < 3; c++)
      pols[l][c] = build(ladders[l], (enum catchup)c);

  static const enum contract_state states[] = {
      CONTRACT_ACTIVE,  CONTRACT_REMINDING, CONTRACT_REMINDING, CONTRACT_REMINDING,
      CONTRACT_SNOOZED, CONTRACT_CALLBACK,  CONTRACT_LAPSED,    CONTRACT_RENEWED,
  };
  struct bench_contract *book = calloc(BOOK, sizeof(*book));
  size_t total_hist = 0;
  for (size_t i = 0; i < BOOK; i++) {
    struct bench_contract *c = &book[i];
    const struct cal_zone *cz = z[rnd() % ELEMENTSOF(z)];
    struct cal_local lt;
    cal_to_local(cz, rnd_range(1798761600 /* 2027-01-01 */, 1830297600 /* 2028-01-01 */), &lt);
    const struct policy *p = pols[rnd() % 3][rnd() % 3];
    c->in = (struct policy_input){
        .policy = p,
        .expires_at = cal_end_of_date(cz, lt.year, lt.month, lt.day),
        .customer_zone = cz,
        .customer_window = rnd() % 4 ? &windows[rnd() % 3] : NULL,
        .owner_zone = z[rnd() % ELEMENTSOF(z)],
        .owner_window = &windows[rnd() % 3],
        .customer_answered = rnd() % 4 == 0,
        .catchup_grace = 3600,
    };
    struct plan_acc acc = {.c = c, .p = p, .first = TIME_NEVER};
    policy_plan(&c->in, INT64_MIN, TIME_NEVER, plan_cb, &acc);
    c->in.now = rnd_range(acc.first - 5 * DAY, acc.last + 20 * DAY);
    c->in.n_sent = rnd() % (acc.n + 1);
    c->in.sent = c->sent;
    c->in.state = states[rnd() % ELEMENTSOF(states)];
    c->in.state_until = c->in.now + rnd_range(-3 * DAY, 10 * DAY);
    total_hist += c->in.n_sent;
  }

  /* warm-up (zone caches), a histogram of actions, and the subset whose answer
   * is an occurrence (REMIND/SKIP: the calls that walk the ladder) */
  size_t kinds[4] = {0}, n_occ = 0;
  const struct policy_input **occ_book = calloc(BOOK, sizeof(*occ_book));
  for (size_t i = 0; i < BOOK; i++) {
    struct policy_action a;
    if (policy_next(&book[i].in, &a) < 0)
      abort();
    kinds[a.kind]++;
    if (a.kind == POLICY_REMIND || a.kind == POLICY_SKIP)
      occ_book[n_occ++] = &book[i].in;
  }

  /* policy_next */
  uint64_t calls = 0;
  uint64_t sink = 0;
  double t0 = now_s(), t1;
  do {
    for (size_t i = 0; i < BOOK; i++) {
      struct policy_action a;
      policy_next(&book[i].in, &a);
      sink += (uint64_t)a.due_at;
    }
    calls += BOOK;
  } while ((t1 = now_s()) - t0 < secs);
  double rate = calls / (t1 - t0);

  uint64_t occ_calls = 0;
  t0 = now_s();
  do {
    for (size_t i = 0; i < n_occ; i++) {
      struct policy_action a;
      policy_next(occ_book[i], &a);
      sink += (uint64_t)a.due_at;
    }
    occ_calls += n_occ;
  } while ((t1 = now_s()) - t0 < secs);
  double occ_rate = occ_calls / (t1 - t0);

  /* peer: libical UTC -> local conversions */
  icaltimezone *iz[ELEMENTSOF(zones)];
  for (size_t i = 0; i < ELEMENTSOF(zones); i++)
    iz[i] = streq(zones[i], "UTC") ? icaltimezone_get_utc_timezone()
                                   : icaltimezone_get_builtin_timezone(zones[i]);
  uint64_t conv = 0;
  t0 = now_s();
  do {
    for (int k = 0; k < 1024; k++) {
      int64_t t = 1798761600 + (int64_t)(rnd() % (2 * 365 * DAY));
      struct icaltimetype tt = icaltime_from_timet_with_zone((time_t)t, 0, iz[k % ELEMENTSOF(iz)]);
      sink += (uint64_t)tt.hour;
    }
    conv += 1024;
  } while ((t1 = now_s()) - t0 < secs);
  double conv_ns = (t1 - t0) / conv * 1e9;

  printf("book: %d contracts, %zu zones, 3 ladders x 3 catch-up modes, 5 tiers, "
         "avg history %.1f rows\n",
         BOOK, ELEMENTSOF(zones), (double)total_hist / BOOK);
  printf("actions: done %zu, remind %zu, skip %zu, transition %zu\n", kinds[POLICY_DONE],
         kinds[POLICY_REMIND], kinds[POLICY_SKIP], kinds[POLICY_TRANSITION]);
  printf("policy_next: %.0f calls/s (%.0f ns/call), %.2fx the 500,000/s target\n", rate, 1e9 / rate,
         rate / TARGET);
  printf("policy_next, REMIND/SKIP answers only: %.0f calls/s (%.0f ns/call), %.2fx the target\n",
         occ_rate, 1e9 / occ_rate, occ_rate / TARGET);
  printf("peer: libical icaltime_from_timet_with_zone: %.0f ns/call; one policy_next = %.1f "
         "raw libical conversions\n",
         conv_ns, 1e9 / rate / conv_ns);
  if (sink == 42)
    printf(" \n");

  for (int l = 0; l < 3; l++)
    for (int c = 0; c < 3; c++)
      unbuild(pols[l][c]);
  free(occ_book);
  free(book);
  cal_free(cal);
  icaltimezone_free_builtin_timezones();
  return rate >= TARGET && occ_rate >= TARGET ? 0 : 2;
}
