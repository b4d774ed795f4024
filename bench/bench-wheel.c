/* bench-wheel: core/wheel against a binary min-heap (libuv-style: an array of
 * pointers, the entry keeps its index, O(log n) insert/delete), on the same
 * operation sequence at 1,000,000 pending entries:
 *
 *   insert   1,000,000 timers over a 48 h horizon: 80% spread uniformly, 20%
 *            in two send-window bursts (100,000 each at 09:00:00 on day 1 and
 *            day 2); inserted in memory order with random due times
 *   resched  100,000 random timers moved to a new random due time (mod)
 *   cancel   100,000 other random timers cancelled (then re-added, untimed)
 *   drain    the daemon's loop: t = next expiry; advance to t; repeat, until
 *            empty; bursts drained in slices of 4,096 (the callback stops)
 *
 * So 80% of the timers fire where they were first put, 20% are rescheduled;
 * all fire. Both structures order ties FIFO, and the bench checks that they
 * fire the same timers in the same order.
 *
 * Half of the reschedules and cancels are "cold": the entry is not in any
 * cache when the operation starts. The other half are "after lookup": the
 * caller has just read the timer's rowid, as the daemon does when it finds the
 * timer through its rowid hash map, so the entry's own cache line is warm
 * (timed in batches of 64, the reads outside the timed region). The same
 * applies to both structures.
 *
 * Each phase is timed RUNS times (fresh runs, wheel and heap alternating) and
 * the best is kept: the machine is shared. Prints ns/op per phase, the
 * wheel/heap speed-up, bytes per entry, and PASS/MISS against the targets. */
#include <inttypes.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "core/wheel.h"

#define N 1000000
#define N_MOD 100000 /* first half cold, second half after lookup */
#define N_DEL 100000 /* likewise */
#define RUNS 5
#define SLICE 4096
#define BATCH 64
#define HORIZON 172800
#define T0 INT64_C(1795305600) /* 2026-11-22T00:00:00Z */

/* ---- the peer: binary min-heap, ordered by (expires, seq) ---- */

struct heap_node {
  int64_t expires;
  uint32_t seq; /* FIFO among equal expiries, compared with wrap */
  uint32_t idx; /* position in heap.a; UINT32_MAX when not in the heap */
};

struct heap {
  struct heap_node **a;
  size_t n, cap;
  uint32_t seq;
};

static inline bool node_less(const struct heap_node *x, const struct heap_node *y) {
  return x->expires < y->expires || (x->expires == y->expires && (int32_t)(x->seq - y->seq) < 0);
}

static inline void heap_set(struct heap *h, size_t i, struct heap_node *x) {
  h->a[i] = x;
  x->idx = (uint32_t)i;
}

static void heap_sift_up(struct heap *h, size_t i) {
  struct heap_node *x = h->a[i];
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!node_less(x, h->a[p]))
      break;
    heap_set(h, i, h->a[p]);
    i = p;
  }
  heap_set(h, i, x);
}

static void heap_sift_down(struct heap *h, size_t i) {
  struct heap_node *x = h->a[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= h->n)
      break;
    if (c + 1 < h->n && node_less(h->a[c + 1], h->a[c]))
      c++;
    if (!node_less(h->a[c], x))
      break;
    heap_set(h, i, h->a[c]);
    i = c;
  }
  heap_set(h, i, x);
}

static void heap_push(struct heap *h, struct heap_node *x, int64_t expires) {
  if (h->n == h->cap) {
    h->cap = h->cap ? 2 * h->cap : 1024;
    h->a = realloc(h->a, h->cap * sizeof(*h->a));
    if (!h->a)
      abort();
  }
  x->expires = expires;
  x->seq = h->seq++;
  h->a[h->n] = x;
  x->idx = (uint32_t)h->n++;
  heap_sift_up(h, x->idx);
}

static void heap_remove(struct heap *h, struct heap_node *x) {
  size_t i = x->idx;
  x->idx = UINT32_MAX;
  if (--h->n == i)
    return;
  heap_set(h, i, h->a[h->n]);
  if (i > 0 && node_less(h->a[i], h->a[(i - 1) / 2]))
    heap_sift_up(h, i);
  else
    heap_sift_down(h, i);
}

/* ---- the daemon's timer objects, one per structure ---- */

struct wtimer {
  struct wheel_entry e;
  int64_t rowid;
};

struct htimer {
  struct heap_node h;
  int64_t rowid;
};

/* The shared operation sequence. */
struct plan {
  int64_t *due;      /* [N] first due time */
  uint32_t *mod_idx; /* [N_MOD] timers rescheduled */
  int64_t *mod_due;  /* [N_MOD] their new due times */
  uint32_t *del_idx; /* [N_DEL] timers cancelled */
  int64_t *del_due;  /* [N_DEL] due times they are re-added at */
};

static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

static int64_t random_due(uint64_t *s) {
  uint64_t r = rng_next(s) % 10;
  if (r == 0)
    return T0 + 9 * 3600;
  if (r == 1)
    return T0 + 86400 + 9 * 3600;
  return T0 + 1 + (int64_t)(rng_next(s) % HORIZON);
}

static void plan_make(struct plan *p) {
  uint64_t s = 42;
  p->due = malloc(N * sizeof(*p->due));
  p->mod_idx = malloc(N_MOD * sizeof(*p->mod_idx));
  p->mod_due = malloc(N_MOD * sizeof(*p->mod_due));
  p->del_idx = malloc(N_DEL * sizeof(*p->del_idx));
  p->del_due = malloc(N_DEL * sizeof(*p->del_due));
  uint32_t *perm = malloc(N * sizeof(*perm));
  if (!p->due || !p->mod_idx || !p->mod_due || !p->del_idx || !p->del_due || !perm)
    abort();
  for (size_t i = 0; i < N; i++) {
    p->due[i] = random_due(&s);
    perm[i] = (uint32_t)i;
  }
  for (size_t i = 0; i < N_MOD + N_DEL; i++) { /* distinct random timers */
    size_t j = i + rng_next(&s) % (N - i);
    uint32_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  for (size_t i = 0; i < N_MOD; i++) {
    p->mod_idx[i] = perm[i];
    p->mod_due[i] = random_due(&s);
  }
  for (size_t i = 0; i < N_DEL; i++) {
    p->del_idx[i] = perm[N_MOD + i];
    p->del_due[i] = random_due(&s);
  }
  free(perm);
}

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

enum phase { INSERT, RESCHED_COLD, CANCEL_COLD, RESCHED_WARM, CANCEL_WARM, DRAIN, N_PHASES };

struct result {
  double ns[N_PHASES]; /* per operation */
  uint64_t order;      /* hash of the firing order */
  size_t fired;
  double bytes_per_entry;
  size_t overhead; /* bytes of the structure itself (wheel, heap array) */
};

static void result_best(struct result *best, const struct result *r) {
  for (int i = 0; i < N_PHASES; i++)
    best->ns[i] = MIN(best->ns[i], r->ns[i]);
  best->order = r->order;
  best->fired = r->fired;
  best->bytes_per_entry = r->bytes_per_entry;
  best->overhead = r->overhead;
}

struct drain_state {
  uint64_t order;
  size_t fired;
  size_t slice;
};

static volatile int64_t sink;

/* Runs OP(i) for i in [from, to) in batches, reading each timer's rowid
 * first (untimed), and returns the ns per operation. */
#define TIMED_AFTER_LOOKUP(tm, idx, from, to, OP)                                                  \
  ({                                                                                               \
    double _ns = 0;                                                                                \
    for (size_t _b = (from); _b < (to); _b += BATCH) {                                             \
      size_t _e = MIN(_b + BATCH, (to));                                                           \
      int64_t _sum = 0;                                                                            \
      for (size_t i = _b; i < _e; i++)                                                             \
        _sum += (tm)[(idx)[i]].rowid;                                                              \
      sink = _sum;                                                                                 \
      double _t = now_ns();                                                                        \
      for (size_t i = _b; i < _e; i++)                                                             \
        OP;                                                                                        \
      _ns += now_ns() - _t;                                                                        \
    }                                                                                              \
    _ns / (double)((to) - (from));                                                                 \
  })

static bool wheel_fire(struct wheel_entry *e, void *ud) {
  struct drain_state *d = ud;
  struct wtimer *t = wheel_container_of(e, struct wtimer, e);
  d->order = d->order * 1000003 + (uint64_t)t->rowid;
  d->fired++;
  return ++d->slice % SLICE != 0;
}

static void run_wheel(const struct plan *p, struct wtimer *tm, struct result *res) {
  struct wheel *w = NULL;
  if (wheel_new(T0, &w) < 0)
    abort();
  for (size_t i = 0; i < N; i++) {
    wheel_entry_init(&tm[i].e);
    tm[i].rowid = (int64_t)i + 1;
  }
  double t = now_ns();
  for (size_t i = 0; i < N; i++)
    wheel_add(w, &tm[i].e, p->due[i]);
  res->ns[INSERT] = (now_ns() - t) / N;
  res->overhead = malloc_usable_size(w);
  res->bytes_per_entry = sizeof(struct wtimer) + (double)res->overhead / N;

  t = now_ns();
  for (size_t i = 0; i < N_MOD / 2; i++)
    wheel_mod(w, &tm[p->mod_idx[i]].e, p->mod_due[i]);
  res->ns[RESCHED_COLD] = (now_ns() - t) / (N_MOD / 2);

  t = now_ns();
  for (size_t i = 0; i < N_DEL / 2; i++)
    wheel_del(w, &tm[p->del_idx[i]].e);
  res->ns[CANCEL_COLD] = (now_ns() - t) / (N_DEL / 2);

  res->ns[RESCHED_WARM] = TIMED_AFTER_LOOKUP(tm, p->mod_idx, N_MOD / 2, N_MOD,
                                             wheel_mod(w, &tm[p->mod_idx[i]].e, p->mod_due[i]));
  res->ns[CANCEL_WARM] =
      TIMED_AFTER_LOOKUP(tm, p->del_idx, N_DEL / 2, N_DEL, wheel_del(w, &tm[p->del_idx[i]].e));

  for (size_t i = 0; i < N_DEL; i++)
    wheel_add(w, &tm[p->del_idx[i]].e, p->del_due[i]);

  struct drain_state d = {0};
  t = now_ns();
  for (int64_t next = wheel_next_expiry(w); next != TIME_NEVER; next = wheel_next_expiry(w))
    wheel_advance(w, next, wheel_fire, &d);
  res->ns[DRAIN] = (now_ns() - t) / (double)d.fired;
  res->order = d.order;
  res->fired = d.fired;
  wheel_free(w);
}

static void heap_resched(struct heap *h, struct heap_node *x, int64_t due) {
  heap_remove(h, x);
  heap_push(h, x, due);
}

static void run_heap(const struct plan *p, struct htimer *tm, struct result *res) {
  struct heap h = {0};
  for (size_t i = 0; i < N; i++) {
    tm[i].h = (struct heap_node){.idx = UINT32_MAX};
    tm[i].rowid = (int64_t)i + 1;
  }
  double t = now_ns();
  for (size_t i = 0; i < N; i++)
    heap_push(&h, &tm[i].h, p->due[i]);
  res->ns[INSERT] = (now_ns() - t) / N;
  res->overhead = h.cap * sizeof(*h.a);
  res->bytes_per_entry = sizeof(struct htimer) + (double)res->overhead / N;

  t = now_ns();
  for (size_t i = 0; i < N_MOD / 2; i++)
    heap_resched(&h, &tm[p->mod_idx[i]].h, p->mod_due[i]);
  res->ns[RESCHED_COLD] = (now_ns() - t) / (N_MOD / 2);

  t = now_ns();
  for (size_t i = 0; i < N_DEL / 2; i++)
    heap_remove(&h, &tm[p->del_idx[i]].h);
  res->ns[CANCEL_COLD] = (now_ns() - t) / (N_DEL / 2);

  res->ns[RESCHED_WARM] = TIMED_AFTER_LOOKUP(tm, p->mod_idx, N_MOD / 2, N_MOD,
                                             heap_resched(&h, &tm[p->mod_idx[i]].h, p->mod_due[i]));
  res->ns[CANCEL_WARM] =
      TIMED_AFTER_LOOKUP(tm, p->del_idx, N_DEL / 2, N_DEL, heap_remove(&h, &tm[p->del_idx[i]].h));

  for (size_t i = 0; i < N_DEL; i++)
    heap_push(&h, &tm[p->del_idx[i]].h, p->del_due[i]);

  struct drain_state d = {0};
  t = now_ns();
  while (h.n > 0) {
    int64_t next = h.a[0]->expires; /* next expiry */
    while (h.n > 0 && h.a[0]->expires <= next) {
      struct heap_node *x = h.a[0];
      heap_remove(&h, x);
      struct htimer *ht = (struct htimer *)(void *)((char *)x - offsetof(struct htimer, h));
      d.order = d.order * 1000003 + (uint64_t)ht->rowid;
      d.fired++;
      if (++d.slice % SLICE == 0)
        break;
    }
  }
  res->ns[DRAIN] = (now_ns() - t) / (double)d.fired;
  res->order = d.order;
  res->fired = d.fired;
  free(h.a);
}

static const char *verdict(bool ok) {
  return ok ? "PASS" : "MISS";
}

int main(void) {
  struct plan p;
  plan_make(&p);
  struct wtimer *wt = calloc(N, sizeof(*wt));
  struct htimer *ht = calloc(N, sizeof(*ht));
  if (!wt || !ht)
    abort();

  struct result wb = {0}, hb = {0};
  for (int i = 0; i < N_PHASES; i++)
    wb.ns[i] = hb.ns[i] = INFINITY;
  for (int run = 0; run < RUNS; run++) {
    struct result r;
    run_heap(&p, ht, &r);
    result_best(&hb, &r);
    run_wheel(&p, wt, &r);
    result_best(&wb, &r);
  }

  printf("bench-wheel: %d pending timers, 48 h horizon, 20%% in 2 bursts of %d at one second,\n"
         "             %d rescheduled, %d cancelled, all drained; best of %d runs\n",
         N, N / 10, N_MOD, N_DEL, RUNS);
  printf("same firing order (%zu fired): %s\n", wb.fired,
         wb.order == hb.order && wb.fired == hb.fired && wb.fired == N ? "yes" : "NO");
  printf("%-22s %11s %11s %9s %7s  %s\n", "op", "wheel ns/op", "heap ns/op", "speed-up", "target",
         "verdict");
  static const struct {
    const char *name;
    double target;
  } rows[N_PHASES] = {
      [INSERT] = {"insert", 3.0},
      [RESCHED_COLD] = {"reschedule (cold)", 5.0},
      [CANCEL_COLD] = {"cancel (cold)", 5.0},
      [RESCHED_WARM] = {"reschedule (lookup)", 5.0},
      [CANCEL_WARM] = {"cancel (lookup)", 5.0},
      [DRAIN] = {"drain (per fired)", 1.0},
  };
  int pass = 0, miss = 0;
  for (int i = 0; i < N_PHASES; i++) {
    double ratio = hb.ns[i] / wb.ns[i];
    bool ok = ratio >= rows[i].target;
    ok ? pass++ : miss++;
    printf("%-22s %11.1f %11.1f %8.2fx %6.1fx  %s\n", rows[i].name, wb.ns[i], hb.ns[i], ratio,
           rows[i].target, verdict(ok));
  }
  bool mem_ok = wb.bytes_per_entry <= 48;
  mem_ok ? pass++ : miss++;
  printf("memory/entry: wheel %.3f B (wheel_entry %zu + rowid 8 + wheel %zu B / %d), target <= 48 B"
         "  %s\n"
         "              heap  %.3f B (heap_node %zu + rowid 8 + array %zu B / %d)\n",
         wb.bytes_per_entry, sizeof(struct wheel_entry), wb.overhead, N, verdict(mem_ok),
         hb.bytes_per_entry, sizeof(struct heap_node), hb.overhead, N);
  printf("targets: %d PASS, %d MISS\n", pass, miss);

  free(wt);
  free(ht);
  free(p.due);
  free(p.mod_idx);
  free(p.mod_due);
  free(p.del_idx);
  free(p.del_due);
  return 0;
}
