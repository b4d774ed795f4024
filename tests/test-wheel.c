/* Unit tests for core/wheel: add/del/mod, same-tick FIFO, cascading at the
 * level boundaries, far future and overflow, backward time, changes made from
 * the fire callback, early stop, next_expiry; then a long randomized run in
 * lockstep with a brute-force reference (a flat array scanned for the minimum
 * (expiry, seq) at every step). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <inttypes.h>

#include "core/wheel.h"

/* Randomized run size: about 2,000,000 operations (>= 1,000,000 asserted);
 * the count is scaled down under ASan to keep the test short. */
#if defined(__SANITIZE_ADDRESS__)
#define RANDOM_ROUNDS 500
#else
#define RANDOM_ROUNDS 1000
#endif
#define RANDOM_OPS_PER_ROUND 2000
#define RANDOM_ITEMS 192

struct item {
  struct wheel_entry e;
  int id;
};

#define MAX_FIRED 4096

/* Records what fired and at which tick. */
struct log {
  struct wheel *w;
  int ids[MAX_FIRED];
  int64_t ticks[MAX_FIRED];
  size_t n;
  size_t stop_after; /* return false when n reaches this (0 = never) */
};

static bool record(struct wheel_entry *e, void *ud) {
  struct log *l = ud;
  struct item *it = wheel_container_of(e, struct item, e);
  assert_false(wheel_pending(e));
  assert_true(l->n < MAX_FIRED);
  assert_int_equal(e->expires, wheel_now(l->w));
  l->ids[l->n] = it->id;
  l->ticks[l->n] = wheel_now(l->w);
  l->n++;
  return l->stop_after == 0 || l->n < l->stop_after;
}

static void items_init(struct item *items, size_t n) {
  for (size_t i = 0; i < n; i++) {
    wheel_entry_init(&items[i].e);
    items[i].id = (int)i;
  }
}

static void assert_log(const struct log *l, const int *ids, const int64_t *ticks, size_t n) {
  assert_int_equal(l->n, n);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(l->ids[i], ids[i]);
    if (ticks)
      assert_int_equal(l->ticks[i], ticks[i]);
  }
}

static void test_basic(void **state) {
  struct wheel *w = NULL;
  struct item it[4];
  items_init(it, 4);
  assert_int_equal(wheel_new(1000, &w), 0);
  assert_int_equal(wheel_now(w), 1000);
  assert_int_equal(wheel_count(w), 0);
  assert_int_equal(wheel_next_expiry(w), TIME_NEVER);
  assert_int_equal(sizeof(struct wheel_entry), 32);
  assert_int_equal(wheel_add(NULL, &it[0].e, 1), -EINVAL);
  assert_int_equal(wheel_add(w, NULL, 1), -EINVAL);

  assert_int_equal(wheel_add(w, &it[0].e, 1010), 0);
  assert_int_equal(wheel_add(w, &it[1].e, 1005), 0);
  assert_int_equal(wheel_add(w, &it[2].e, 1020), 0);
  assert_true(wheel_pending(&it[0].e));
  assert_false(wheel_pending(&it[3].e));
  assert_int_equal(wheel_count(w), 3);
  assert_int_equal(wheel_next_expiry(w), 1005);

  wheel_del(w, &it[1].e);
  wheel_del(w, &it[1].e); /* not pending: no-op */
  wheel_del(w, &it[3].e);
  wheel_del(w, NULL);
  assert_false(wheel_pending(&it[1].e));
  assert_int_equal(wheel_count(w), 2);
  assert_int_equal(wheel_next_expiry(w), 1010);

  assert_int_equal(wheel_mod(w, &it[2].e, 1001), 0); /* pending: moves */
  assert_int_equal(wheel_mod(w, &it[3].e, 1002), 0); /* not pending: adds */
  assert_int_equal(wheel_add(w, &it[0].e, 1003), 0); /* add on pending = mod */
  assert_int_equal(wheel_count(w), 3);
  assert_int_equal(wheel_next_expiry(w), 1001);

  struct log l = {.w = w};
  assert_int_equal(wheel_advance(w, 1002, record, &l), 2);
  assert_int_equal(wheel_now(w), 1002);
  assert_log(&l, (int[]){2, 3}, (int64_t[]){1001, 1002}, 2);
  assert_int_equal(wheel_next_expiry(w), 1003);
  assert_int_equal(wheel_advance(w, 5000, record, &l), 1);
  assert_log(&l, (int[]){2, 3, 0}, (int64_t[]){1001, 1002, 1003}, 3);
  assert_int_equal(wheel_count(w), 0);
  assert_int_equal(wheel_now(w), 5000);
  assert_int_equal(wheel_next_expiry(w), TIME_NEVER);
  assert_int_equal(wheel_advance(w, 6000, NULL, NULL), 0);
  assert_null(wheel_free(w));
  assert_null(wheel_free(NULL));
}

/* Same tick: FIFO by (re)scheduling order, also for entries added in the
 * past (clamped to the current tick) and after mod. */
static void test_fifo(void **state) {
  struct wheel *w = NULL;
  struct item it[8];
  items_init(it, 8);
  assert_int_equal(wheel_new(100, &w), 0);
  for (int i = 0; i < 5; i++)
    assert_int_equal(wheel_add(w, &it[i].e, 150), 0);
  assert_int_equal(wheel_mod(w, &it[1].e, 150), 0); /* goes behind 4 */
  assert_int_equal(wheel_add(w, &it[5].e, 149), 0);
  assert_true(it[1].e.seq > it[4].e.seq);
  struct log l = {.w = w};
  assert_int_equal(wheel_advance(w, 150, record, &l), 6);
  assert_log(&l, (int[]){5, 0, 2, 3, 4, 1}, (int64_t[]){149, 150, 150, 150, 150, 150}, 6);

  /* Past and present instants are clamped to now and keep their order. */
  l.n = 0;
  assert_int_equal(wheel_add(w, &it[0].e, 150), 0);
  assert_int_equal(wheel_add(w, &it[1].e, 10), 0);
  assert_int_equal(wheel_add(w, &it[2].e, INT64_MIN), 0);
  assert_int_equal(it[2].e.expires, 150);
  assert_int_equal(wheel_add(w, &it[3].e, 151), 0);
  assert_int_equal(wheel_next_expiry(w), 150);
  assert_int_equal(wheel_advance(w, 151, record, &l), 4);
  assert_log(&l, (int[]){0, 1, 2, 3}, (int64_t[]){150, 150, 150, 151}, 4);
  wheel_free(w);
}

/* An entry exactly d ticks ahead fires at tick start + d, not one earlier,
 * whether the wheel is advanced in one jump, tick by tick around the
 * boundary, or to every intermediate next_expiry. */
static void test_boundaries(void **state) {
  static const int64_t starts[] = {0,
                                   1,
                                   63,
                                   64,
                                   4095,
                                   1795379487,
                                   -1,
                                   -4097,
                                   (INT64_C(1) << 36) - 2,
                                   262144 * 7 - 1,
                                   16777216 - 64};
  static const int64_t dists[] = {1,
                                  2,
                                  62,
                                  63,
                                  64,
                                  65,
                                  127,
                                  128,
                                  4095,
                                  4096,
                                  4097,
                                  262143,
                                  262144,
                                  262145,
                                  16777215,
                                  16777216,
                                  16777217,
                                  INT64_C(1) << 30,
                                  (INT64_C(1) << 36) - 1,
                                  INT64_C(1) << 36,
                                  (INT64_C(1) << 36) + 1,
                                  INT64_C(1) << 45};
  for (size_t si = 0; si < ELEMENTSOF(starts); si++)
    for (size_t di = 0; di < ELEMENTSOF(dists); di++)
      for (int mode = 0; mode < 3; mode++) {
        int64_t start = starts[si], at = start + dists[di];
        struct wheel *w = NULL;
        struct item it[2];
        items_init(it, 2);
        assert_int_equal(wheel_new(start, &w), 0);
        assert_int_equal(wheel_add(w, &it[0].e, at), 0);
        assert_int_equal(wheel_add(w, &it[1].e, at + 1), 0);
        assert_int_equal(wheel_next_expiry(w), at);
        struct log l = {.w = w};
        if (mode == 0) {
          assert_int_equal(wheel_advance(w, at - 1, record, &l), 0);
        } else if (mode == 1) {
          /* Approach in single ticks (after one jump to close by). */
          assert_int_equal(wheel_advance(w, MAX(start, at - 70), record, &l), 0);
          for (int64_t t = wheel_now(w) + 1; t < at; t++)
            assert_int_equal(wheel_advance(w, t, record, &l), 0);
        } else {
          /* Halve the distance each time, as a daemon woken early would. */
          while (wheel_now(w) < at - 1)
            assert_int_equal(wheel_advance(w, wheel_now(w) + (at - wheel_now(w)) / 2, record, &l),
                             0);
        }
        assert_int_equal(wheel_now(w), at - 1);
        assert_int_equal(wheel_next_expiry(w), at);
        assert_int_equal(wheel_advance(w, at, record, &l), 1);
        assert_log(&l, (int[]){0}, (int64_t[]){at}, 1);
        assert_int_equal(wheel_next_expiry(w), at + 1);
        assert_int_equal(wheel_advance(w, at + 1, record, &l), 1);
        assert_int_equal(wheel_count(w), 0);
        wheel_free(w);
      }
}

/* Entries for one far tick, scheduled at different distances (so placed at
 * different levels and cascaded different numbers of times), fire in seq order. */
static void test_fifo_across_cascades(void **state) {
  const int64_t start = 1795379487, T = start + 300000; /* level 3 from start */
  struct wheel *w = NULL;
  struct item it[8];
  items_init(it, 8);
  assert_int_equal(wheel_new(start, &w), 0);
  struct log l = {.w = w};
  assert_int_equal(wheel_add(w, &it[0].e, T), 0); /* level 3 */
  assert_int_equal(wheel_add(w, &it[1].e, T), 0);
  assert_int_equal(wheel_advance(w, T - 100000, record, &l), 0);
  assert_int_equal(wheel_add(w, &it[2].e, T), 0); /* level 2 or 3 */
  assert_int_equal(wheel_advance(w, T - 3000, record, &l), 0);
  assert_int_equal(wheel_add(w, &it[3].e, T), 0); /* level 1 or 2 */
  assert_int_equal(wheel_mod(w, &it[0].e, T), 0); /* 0 goes last so far */
  assert_int_equal(wheel_advance(w, T - 10, record, &l), 0);
  assert_int_equal(wheel_add(w, &it[4].e, T), 0); /* level 0 or 1 */
  assert_int_equal(wheel_add(w, &it[5].e, T - 1), 0);
  assert_int_equal(wheel_advance(w, T - 1, record, &l), 1);
  assert_int_equal(wheel_add(w, &it[6].e, T), 0); /* level 0 */
  assert_int_equal(wheel_next_expiry(w), T);
  assert_int_equal(wheel_advance(w, T + 5, record, &l), 6);
  assert_log(&l, (int[]){5, 1, 2, 3, 0, 4, 6}, (int64_t[]){T - 1, T, T, T, T, T, T}, 7);
  wheel_free(w);
}

/* Instants beyond the levels' 2^36 ticks, negative instants, TIME_NEVER,
 * and jumps so big that a tick-by-tick walk would never finish. */
static void test_far_future(void **state) {
  const int64_t start = 1795379487;
  const int64_t at[] = {
      start + (INT64_C(1) << 40),
      start + 86400 * 365 * 3000LL,
      INT64_MAX - 1,
      INT64_MAX,
      start + (INT64_C(1) << 36) + 5,
      start + 194LL * 86400,
      start + 2,
      start + (INT64_C(1) << 50),
  };
  const int order[] = {6, 5, 4, 1, 0, 7, 2, 3};
  struct wheel *w = NULL;
  struct item it[8];
  items_init(it, 8);
  assert_int_equal(wheel_new(start, &w), 0);
  for (int i = 0; i < 8; i++)
    assert_int_equal(wheel_add(w, &it[i].e, at[i]), 0);
  struct log l = {.w = w};
  int64_t ticks[8];
  for (int i = 0; i < 8; i++) {
    ticks[i] = at[order[i]];
    assert_int_equal(wheel_next_expiry(w), ticks[i]);
    assert_int_equal(wheel_advance(w, ticks[i] - 1, record, &l), 0);
    assert_int_equal(wheel_advance(w, ticks[i], record, &l), 1);
  }
  assert_log(&l, order, ticks, 8);

  /* Everything in one jump. */
  wheel_free(w);
  assert_int_equal(wheel_new(start, &w), 0);
  items_init(it, 8);
  for (int i = 0; i < 8; i++)
    assert_int_equal(wheel_add(w, &it[i].e, at[i]), 0);
  l = (struct log){.w = w};
  assert_int_equal(wheel_advance(w, INT64_MAX, record, &l), 8);
  assert_log(&l, order, ticks, 8);
  assert_int_equal(wheel_now(w), INT64_MAX);
  wheel_free(w);

  /* Negative instants, crossing zero. */
  assert_int_equal(wheel_new(-100000, &w), 0);
  items_init(it, 8);
  const int64_t neg[] = {-1, 0, -99999, 1, -4096, 70000};
  for (int i = 0; i < 6; i++)
    assert_int_equal(wheel_add(w, &it[i].e, neg[i]), 0);
  l = (struct log){.w = w};
  assert_int_equal(wheel_next_expiry(w), -99999);
  assert_int_equal(wheel_advance(w, 0, record, &l), 4);
  assert_log(&l, (int[]){2, 4, 0, 1}, (int64_t[]){-99999, -4096, -1, 0}, 4);
  assert_int_equal(wheel_next_expiry(w), 1);
  assert_int_equal(wheel_advance(w, INT64_MAX, record, &l), 2);
  wheel_free(w);
}

/* A clock stepped back fires nothing new and keeps the tick; what was
 * already due still fires. */
static void test_backward(void **state) {
  struct wheel *w = NULL;
  struct item it[3];
  items_init(it, 3);
  assert_int_equal(wheel_new(5000, &w), 0);
  assert_int_equal(wheel_add(w, &it[0].e, 5001), 0);
  struct log l = {.w = w};
  assert_int_equal(wheel_advance(w, 4000, record, &l), 0);
  assert_int_equal(wheel_now(w), 5000);
  assert_int_equal(wheel_add(w, &it[1].e, 4500), 0); /* due now: clamped to 5000 */
  assert_int_equal(it[1].e.expires, 5000);
  assert_int_equal(wheel_next_expiry(w), 5000);
  assert_int_equal(wheel_advance(w, 1, record, &l), 1);
  assert_log(&l, (int[]){1}, (int64_t[]){5000}, 1);
  assert_int_equal(wheel_now(w), 5000);
  assert_int_equal(wheel_next_expiry(w), 5001);
  assert_int_equal(wheel_advance(w, 5001, record, &l), 1);
  wheel_free(w);
}

/* What a fire callback does to the wheel. */
struct mutator {
  struct log log;
  struct item *items;
  int fired_0; /* times item 0 fired */
};

static bool mutate(struct wheel_entry *e, void *ud) {
  struct mutator *m = ud;
  struct wheel *w = m->log.w;
  record(e, &m->log);
  struct item *it = wheel_container_of(e, struct item, e);
  int64_t now = wheel_now(w);
  assert_int_equal(wheel_advance(w, now + 1000, record, &m->log), 0); /* no reentry */
  switch (it->id) {
  case 0: /* re-add itself as due now, twice */
    if (++m->fired_0 < 3)
      assert_int_equal(wheel_add(w, e, now - 5), 0);
    break;
  case 1: /* cancel 2 (due at this tick, after 1) */
    wheel_del(w, &m->items[2].e);
    break;
  case 3: /* push 4 (due at this tick) to a later tick within this advance */
    assert_int_equal(wheel_mod(w, &m->items[4].e, now + 70), 0);
    /* and schedule 5 in between, and 6 beyond the advance */
    assert_int_equal(wheel_add(w, &m->items[5].e, now + 64), 0);
    assert_int_equal(wheel_add(w, &m->items[6].e, now + 100000), 0);
    break;
  }
  return true;
}

static void test_add_during_fire(void **state) {
  struct wheel *w = NULL;
  struct item it[8];
  items_init(it, 8);
  assert_int_equal(wheel_new(0, &w), 0);
  for (int i = 0; i < 5; i++)
    assert_int_equal(wheel_add(w, &it[i].e, 10), 0);
  assert_int_equal(wheel_add(w, &it[7].e, 11), 0);
  struct mutator m = {.log = {.w = w}, .items = it};
  assert_int_equal(wheel_advance(w, 500, mutate, &m), 8);
  /* 10: 0 1 (2 cancelled) 3 (4 moved) 0 0; 11: 7; 74: 5; 80: 4 */
  assert_log(&m.log, (int[]){0, 1, 3, 0, 0, 7, 5, 4}, (int64_t[]){10, 10, 10, 10, 10, 11, 74, 80},
             8);
  assert_int_equal(wheel_count(w), 1);
  assert_int_equal(wheel_next_expiry(w), 100010);
  wheel_free(w);
}

/* Stopping early leaves the rest due; the tick stays at the stop. */
static void test_early_stop(void **state) {
  enum { N = 1000 };
  struct wheel *w = NULL;
  static struct item it[N];
  items_init(it, N);
  assert_int_equal(wheel_new(0, &w), 0);
  for (int i = 0; i < N; i++)
    assert_int_equal(wheel_add(w, &it[i].e, i < 900 ? 32400 : 32401), 0);
  struct log l = {.w = w, .stop_after = 300};
  assert_int_equal(wheel_advance(w, 40000, record, &l), 300);
  assert_int_equal(wheel_now(w), 32400);
  assert_int_equal(wheel_next_expiry(w), 32400);
  assert_int_equal(wheel_count(w), 700);
  assert_int_equal(wheel_add(w, &it[0].e, 0), 0); /* due: behind the 600 left */
  l.stop_after = 600;
  assert_int_equal(wheel_advance(w, 100, record, &l), 300); /* backward: drains due ones */
  assert_int_equal(wheel_now(w), 32400);
  l.stop_after = 0;
  assert_int_equal(wheel_advance(w, 40000, record, &l), 401);
  assert_int_equal(l.n, N + 1);
  for (int i = 0; i <= N; i++) {
    assert_int_equal(l.ids[i], i < 900 ? i : i == 900 ? 0 : i - 1);
    assert_int_equal(l.ticks[i], i <= 900 ? 32400 : 32401);
  }
  assert_int_equal(wheel_now(w), 40000);
  wheel_free(w);
}

/* next_expiry is exact inside coarse slots and follows deletions. */
static void test_next_expiry(void **state) {
  struct wheel *w = NULL;
  struct item it[6];
  items_init(it, 6);
  assert_int_equal(wheel_new(0, &w), 0);
  assert_int_equal(wheel_add(w, &it[0].e, 200003), 0);
  assert_int_equal(wheel_add(w, &it[1].e, 200001), 0);
  assert_int_equal(wheel_add(w, &it[2].e, 200001), 0);
  assert_int_equal(wheel_add(w, &it[3].e, 200002), 0);
  assert_int_equal(wheel_next_expiry(w), 200001);
  wheel_del(w, &it[1].e);
  assert_int_equal(wheel_next_expiry(w), 200001);
  wheel_del(w, &it[2].e);
  assert_int_equal(wheel_next_expiry(w), 200002);
  assert_int_equal(wheel_add(w, &it[4].e, 150000), 0);
  assert_int_equal(wheel_next_expiry(w), 150000);
  assert_int_equal(wheel_mod(w, &it[4].e, 250000), 0);
  assert_int_equal(wheel_next_expiry(w), 200002);
  assert_int_equal(wheel_add(w, &it[5].e, 30), 0);
  assert_int_equal(wheel_next_expiry(w), 30);
  struct log l = {.w = w};
  assert_int_equal(wheel_advance(w, 200002, record, &l), 2);
  assert_int_equal(wheel_next_expiry(w), 200003);
  assert_int_equal(wheel_advance(w, 200003, record, &l), 1);
  assert_int_equal(wheel_next_expiry(w), 250000);
  wheel_free(w);
}

/* ---- randomized lockstep comparison with a brute-force reference ---- */

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}
static uint64_t rng_below(uint64_t *s, uint64_t n) {
  return rng_next(s) % n;
}

static int64_t sat_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r))
    return b > 0 ? INT64_MAX : INT64_MIN;
  return r;
}

struct ref {
  bool pending[RANDOM_ITEMS];
  int64_t exp[RANDOM_ITEMS];
  uint64_t seq[RANDOM_ITEMS];
  uint64_t next_seq;
  int64_t now;
  size_t count;
};

struct sim {
  struct wheel *w;
  struct item items[RANDOM_ITEMS];
  struct ref ref;
  uint64_t rng;
  int64_t target; /* of the advance in progress */
  size_t fired;   /* in the advance in progress */
  bool stopped;   /* the callback asked to stop */
  uint64_t ops;   /* operations performed (incl. from callbacks) */
  uint64_t total_fired;
};

/* Earliest (exp, seq) pending in the reference, or -1. */
static int ref_min(const struct ref *r) {
  int best = -1;
  for (int i = 0; i < RANDOM_ITEMS; i++)
    if (r->pending[i] && (best < 0 || r->exp[i] < r->exp[best] ||
                          (r->exp[i] == r->exp[best] && r->seq[i] < r->seq[best])))
      best = i;
  return best;
}

static void ref_add(struct ref *r, int id, int64_t x) {
  if (!r->pending[id])
    r->count++;
  r->pending[id] = true;
  r->exp[id] = MAX(x, r->now);
  r->seq[id] = r->next_seq++;
}

static void ref_del(struct ref *r, int id) {
  if (r->pending[id])
    r->count--;
  r->pending[id] = false;
}

/* A random instant around now: boundaries of every level (by distance and by
 * alignment), the past, ticks shared with pending entries, the far future. */
static int64_t random_instant(struct sim *s) {
  static const int64_t dists[] = {
      0,        1,          2,          63,          64,          65,         127,      128,
      4095,     4096,       4097,       262143,      262144,      262145,     16777215, 16777216,
      16777217, 1073741823, 1073741824, 68719476735, 68719476736, 68719476737};
  int64_t now = s->ref.now;
  switch (rng_below(&s->rng, 12)) {
  case 0:
    return sat_add(now, -(int64_t)rng_below(&s->rng, 5000));
  case 1:
    return sat_add(now, dists[rng_below(&s->rng, ELEMENTSOF(dists))]);
  case 2: { /* just around an aligned boundary of some level */
    unsigned shift = 6 * (unsigned)(1 + rng_below(&s->rng, 6));
    int64_t mask = (INT64_C(1) << shift) - 1;
    int64_t b = sat_add(now | mask, 1 + (int64_t)rng_below(&s->rng, 2) * (mask + 1));
    return sat_add(b, (int64_t)rng_below(&s->rng, 3) - 1);
  }
  case 3: { /* the tick of a pending entry (FIFO) */
    int id = (int)rng_below(&s->rng, RANDOM_ITEMS);
    return s->ref.pending[id] ? s->ref.exp[id] : now;
  }
  case 4:
    return sat_add(now, (int64_t)rng_below(&s->rng, 64));
  case 5:
    return sat_add(now, (int64_t)rng_below(&s->rng, 4096));
  case 6:
    return sat_add(now, (int64_t)rng_below(&s->rng, 300000));
  case 7:
    return sat_add(now, (int64_t)rng_below(&s->rng, 172800));
  case 8:
    return sat_add(now, (int64_t)rng_below(&s->rng, INT64_C(1) << 26));
  case 9:
    return sat_add(now, (int64_t)rng_below(&s->rng, INT64_C(1) << 40));
  case 10:
    return rng_below(&s->rng, 50) == 0 ? INT64_MAX : sat_add(now, (int64_t)rng_below(&s->rng, 200));
  default:
    return sat_add(now, 1 + (int64_t)rng_below(&s->rng, 20));
  }
}

static void check_state(struct sim *s) {
  assert_int_equal(wheel_count(s->w), s->ref.count);
  assert_int_equal(wheel_now(s->w), s->ref.now);
  int m = ref_min(&s->ref);
  assert_int_equal(wheel_next_expiry(s->w), m < 0 ? TIME_NEVER : s->ref.exp[m]);
}

/* One add/del/mod on both the wheel and the reference. */
static void random_change(struct sim *s) {
  int id = (int)rng_below(&s->rng, RANDOM_ITEMS);
  struct wheel_entry *e = &s->items[id].e;
  s->ops++;
  switch (rng_below(&s->rng, 4)) {
  case 0:
    wheel_del(s->w, e);
    ref_del(&s->ref, id);
    break;
  case 1: {
    int64_t x = random_instant(s);
    assert_int_equal(wheel_mod(s->w, e, x), 0);
    ref_add(&s->ref, id, x);
    break;
  }
  default: {
    int64_t x = random_instant(s);
    assert_int_equal(wheel_add(s->w, e, x), 0);
    ref_add(&s->ref, id, x);
    break;
  }
  }
  assert_true(wheel_pending(e) == s->ref.pending[id]);
  if (s->ref.pending[id])
    assert_int_equal(e->expires, s->ref.exp[id]);
}

static bool random_fire(struct wheel_entry *e, void *ud) {
  struct sim *s = ud;
  struct item *it = wheel_container_of(e, struct item, e);
  int m = ref_min(&s->ref);
  assert_true(m >= 0);
  assert_true(s->ref.exp[m] <= s->target);
  assert_int_equal(it->id, m);
  assert_int_equal(e->expires, s->ref.exp[m]);
  assert_int_equal(wheel_now(s->w), s->ref.exp[m]);
  assert_false(wheel_pending(e));
  s->ref.now = s->ref.exp[m];
  ref_del(&s->ref, m);
  s->fired++;
  if (rng_below(&s->rng, 4) == 0) {
    unsigned k = 1 + (unsigned)rng_below(&s->rng, 3);
    for (unsigned i = 0; i < k; i++)
      random_change(s);
    if (rng_below(&s->rng, 4) == 0) { /* re-add the entry that fired */
      int64_t x = rng_below(&s->rng, 2) ? s->ref.now : random_instant(s);
      assert_int_equal(wheel_add(s->w, e, x), 0);
      ref_add(&s->ref, m, x);
      s->ops++;
    }
  }
  if (rng_below(&s->rng, 64) == 0) {
    s->stopped = true;
    return false;
  }
  return true;
}

static void random_advance(struct sim *s, int64_t target) {
  s->ops++;
  s->target = MAX(target, s->ref.now);
  s->fired = 0;
  s->stopped = false;
  size_t n = wheel_advance(s->w, target, random_fire, s);
  assert_int_equal(n, s->fired);
  s->total_fired += n;
  if (!s->stopped) {
    int m = ref_min(&s->ref);
    assert_true(m < 0 || s->ref.exp[m] > s->target);
    s->ref.now = s->target;
  }
  check_state(s);
}

static int64_t random_target(struct sim *s) {
  static const int64_t jumps[] = {0, 1, 63, 64, 65, 4095, 4096, 4097, 262144, 16777216};
  int64_t now = s->ref.now;
  int m;
  switch (rng_below(&s->rng, 8)) {
  case 0:
    return sat_add(now, jumps[rng_below(&s->rng, ELEMENTSOF(jumps))]);
  case 1: /* exactly to (or just before) the next expiry, as the daemon does */
    m = ref_min(&s->ref);
    return m < 0 ? now : s->ref.exp[m] - (int64_t)rng_below(&s->rng, 2);
  case 2:
    return sat_add(now, -(int64_t)rng_below(&s->rng, 100000)); /* clock stepped back */
  case 3:
    return sat_add(now, (int64_t)rng_below(&s->rng, 100));
  case 4:
    return sat_add(now, (int64_t)rng_below(&s->rng, 10000));
  case 5:
    return sat_add(now, (int64_t)rng_below(&s->rng, 1000000));
  case 6:
    return rng_below(&s->rng, 8) ? sat_add(now, (int64_t)rng_below(&s->rng, INT64_C(1) << 37))
                                 : sat_add(now, INT64_C(1) << 44);
  default:
    return sat_add(now, (int64_t)rng_below(&s->rng, 3));
  }
}

static void test_random(void **state) {
  static struct sim s; /* ~12 KB of items: keep it off the stack */
  static const int64_t starts[] = {
      1795379487, 0, -1, -1000000007, (INT64_C(1) << 36) - 70, (INT64_C(1) << 48) - 3};
  s = (struct sim){.rng = 0x5eed0fa11ULL};
  uint64_t ops = 0, fired = 0;
  for (int round = 0; round < RANDOM_ROUNDS; round++) {
    s.ops = 0;
    s.total_fired = 0;
    s.ref = (struct ref){.now = starts[round % ELEMENTSOF(starts)]};
    items_init(s.items, RANDOM_ITEMS);
    assert_int_equal(wheel_new(s.ref.now, &s.w), 0);
    /* Each round: mostly changes, an advance every ~4 operations. */
    while (s.ops < RANDOM_OPS_PER_ROUND) {
      if (rng_below(&s.rng, 4) == 0)
        random_advance(&s, random_target(&s));
      else {
        random_change(&s);
        check_state(&s);
      }
      if (s.ref.now > INT64_C(1) << 60) /* keep room below INT64_MAX for more rounds */
        break;
    }
    /* Drain: everything left fires in order, INT64_MAX entries included. */
    while (s.ref.count > 0 || wheel_now(s.w) != INT64_MAX)
      random_advance(&s, INT64_MAX);
    assert_int_equal(wheel_count(s.w), 0);
    ops += s.ops;
    fired += s.total_fired;
    s.w = wheel_free(s.w);
  }
  print_message("randomized: %" PRIu64 " operations, %" PRIu64 " fired, %d rounds\n", ops, fired,
                RANDOM_ROUNDS);
#if !defined(__SANITIZE_ADDRESS__)
  assert_true(ops >= 1000000);
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic),           cmocka_unit_test(test_fifo),
      cmocka_unit_test(test_boundaries),      cmocka_unit_test(test_fifo_across_cascades),
      cmocka_unit_test(test_far_future),      cmocka_unit_test(test_backward),
      cmocka_unit_test(test_add_during_fire), cmocka_unit_test(test_early_stop),
      cmocka_unit_test(test_next_expiry),     cmocka_unit_test(test_random),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
