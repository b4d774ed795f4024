/* sched: store ↔ policy engine ↔ timer wheel (see sched.h for the contract).
 *
 * Where the due set comes from (docs/ARCHITECTURE.md explains why):
 *  - contracts.next_due_at, maintained here for every contract we planned;
 *  - for contracts not yet in a ladder, the expiry index scanned through the
 *    tier offsets of the current config (after start-up and after a reload,
 *    when next_due_at may have been computed under another config);
 *  - contracts changed by anyone else (change_seq moved).
 * Every candidate is re-planned with the pure policy engine; nothing is sent
 * because of a stale next_due_at alone. Planning one contract (loading it,
 * applying what is due, recording the next due instant) is core/planner.c,
 * shared with renewctl plan/replan; this file keeps the wheel, the work queue,
 * the refill and the change polling, and turns the planner's reports into log
 * lines and counters. */
#include "daemon/sched.h"

#include <inttypes.h>

#include "config/config_planner.h"
#include "core/clock.h"
#include "core/planner.h"
#include "core/util.h"
#include "core/wheel.h"

/* Occurrences move into the send window by a bounded amount and local days
 * differ from 86,400 s by at most a DST shift: expiry windows are widened by
 * this much on each side. */
#define WINDOW_SLACK (3 * 3600)
/* Re-try a contract whose planning failed after this long. */
#define RETRY_AFTER 60
/* Rows read per page of a scan (sched_set_page_size()). */
#define DEFAULT_PAGE 1000
/* Scans pause while this many pages of contracts wait to be planned, so the
 * work queue stays bounded whatever the book size. */
#define BACKLOG_PAGES 4
/* A reload looks this far back for tier instants that passed but whose send
 * window opens after now (weekends, holidays). */
#define RELOAD_BACK (3 * 86400)
/* A batch of planning stops after this many milliseconds (the event loop must
 * keep iterations short: the HTTP listener and the watchdog wait meanwhile). */
#define SLICE_MS 15

struct item {
  struct wheel_entry entry; /* on the wheel at the contract's next action */
  int64_t rowid;            /* contract rowid */
  struct item *hnext;       /* hash chain */
  bool in_ladder;           /* follows its ladder snapshot: a reload that keeps the
                               windows and zone does not move it */
};

struct rowid_queue {
  int64_t *v;  /* owned */
  size_t head; /* next to take */
  size_t n;    /* used */
  size_t cap;
  size_t sorted; /* v[head..sorted) is sorted and free of duplicates */
};

struct range {
  int64_t from, until; /* expiry range [from, until) still to scan */
  char *after_id;      /* keyset cursor: resume after (from, after_id); owned, NULL = at from */
};

/* Expiry ranges still to scan for candidates, [from, until) each. */
struct range_list {
  struct range *v; /* owned */
  size_t n, cap;
};

struct sched {
  struct store *store;      /* borrowed */
  struct cal *cal;          /* borrowed */
  const struct config *cfg; /* borrowed, replaced on reload */
  const struct logger *log; /* borrowed */
  struct wheel *wheel;      /* owned */

  struct item **buckets; /* rowid → item, chained; owned */
  size_t n_buckets;      /* power of two */
  size_t n_items;
  struct item *free_items; /* recycled items, linked through hnext */

  struct planner_ladders *ladders; /* parsed ladder snapshots; owned */
  struct planner_env env;          /* planner environment over cfg (core/planner.h) */

  struct rowid_queue work; /* contracts to (re)plan */
  struct range_list scans; /* expiry ranges to scan for not-yet-laddered candidates */
  size_t page;             /* rows per page of every scan */

  /* The change scan: contracts whose change_seq moved, read a page at a time
   * after changes_cur (key = change_seq) while changes_running. */
  bool changes_running;
  struct store_cursor changes_cur;
  /* The due scan: contracts with next_due_at in [due_cur, due_until), a
   * page at a time while due_running. */
  bool due_running;
  struct store_cursor due_cur;
  int64_t due_until;

  int64_t loaded_until; /* the wheel holds everything due before this */
  int64_t next_refill;  /* when to extend the horizon next */
  int64_t seen_change_seq;
  int64_t data_version;

  sched_reminders_cb cb;
  void *cb_userdata;
  bool created_pending; /* a transaction inserted pending rows */

  struct sched_stats stats;
  uint64_t refill_planned0;  /* stats.contracts_planned when the running refill started */
  int64_t refill_slice_max;  /* longest sched_work() call of the running refill, ms */
  int64_t refill_commit_max; /* longest commit of the running refill, ms (WAL checkpoints) */
  bool refill_announce;      /* the running refill is a start-up or reload one */
};

/* ---- config access ------------------------------------------------------- */

static int64_t cfg_horizon(const struct sched *s) {
  return s->cfg->daemon.horizon;
}
static int64_t cfg_refill_interval(const struct sched *s) {
  return s->cfg->daemon.refill_interval;
}

/* ---- rowid → item map ---------------------------------------------------- */

static size_t hash_rowid(int64_t rowid, size_t n) {
  uint64_t x = (uint64_t)rowid * 0x9E3779B97F4A7C15ull;
  return (size_t)(x >> 17) & (n - 1);
}

static struct item *item_find(struct sched *s, int64_t rowid) {
  for (struct item *i = s->buckets[hash_rowid(rowid, s->n_buckets)]; i; i = i->hnext)
    if (i->rowid == rowid)
      return i;
  return NULL;
}

static int map_grow(struct sched *s) {
  size_t n = s->n_buckets * 2;
  struct item **b = calloc(n, sizeof *b);
  if (!b)
    return -ENOMEM;
  for (size_t k = 0; k < s->n_buckets; k++)
    for (struct item *i = s->buckets[k], *next; i; i = next) {
      next = i->hnext;
      size_t h = hash_rowid(i->rowid, n);
      i->hnext = b[h];
      b[h] = i;
    }
  free(s->buckets);
  s->buckets = b;
  s->n_buckets = n;
  return 0;
}

static struct item *item_get(struct sched *s, int64_t rowid) {
  struct item *i = item_find(s, rowid);
  if (i)
    return i;
  if (s->n_items + 1 > s->n_buckets && map_grow(s) < 0)
    return NULL;
  if (s->free_items) {
    i = s->free_items;
    s->free_items = i->hnext;
  } else if (!(i = malloc(sizeof *i)))
    return NULL;
  *i = (struct item){.rowid = rowid};
  wheel_entry_init(&i->entry);
  size_t h = hash_rowid(rowid, s->n_buckets);
  i->hnext = s->buckets[h];
  s->buckets[h] = i;
  s->n_items++;
  return i;
}

static void item_drop(struct sched *s, int64_t rowid) {
  struct item **p = &s->buckets[hash_rowid(rowid, s->n_buckets)];
  for (; *p; p = &(*p)->hnext)
    if ((*p)->rowid == rowid) {
      struct item *i = *p;
      *p = i->hnext;
      wheel_del(s->wheel, &i->entry);
      i->hnext = s->free_items;
      s->free_items = i;
      s->n_items--;
      return;
    }
}

/* Puts the contract on the wheel at due (or takes it off when due is beyond
 * what the wheel holds). Returns its item, NULL when off the wheel. */
static struct item *wheel_place(struct sched *s, int64_t rowid, int64_t due) {
  if (due == TIME_NEVER || due >= s->loaded_until) {
    item_drop(s, rowid);
    return NULL;
  }
  struct item *i = item_get(s, rowid);
  if (!i) {
    /* Out of memory: the contract stays findable through next_due_at. */
    log_error(s->log, "out of memory scheduling contract rowid %" PRId64, rowid);
    return NULL;
  }
  wheel_mod(s->wheel, &i->entry, due);
  return i;
}

/* ---- work queue ---------------------------------------------------------- */

static int queue_push(struct rowid_queue *q, int64_t rowid) {
  if (q->n == q->cap) {
    if (q->head > 0) {
      memmove(q->v, q->v + q->head, (q->n - q->head) * sizeof *q->v);
      q->n -= q->head;
      q->sorted = q->sorted > q->head ? q->sorted - q->head : 0;
      q->head = 0;
    }
    if (q->n == q->cap) {
      size_t cap = q->cap ? q->cap * 2 : 1024;
      int64_t *v = realloc(q->v, cap * sizeof *v);
      if (!v)
        return -ENOMEM;
      q->v = v;
      q->cap = cap;
    }
  }
  q->v[q->n++] = rowid;
  return 0;
}

static bool queue_empty(const struct rowid_queue *q) {
  return q->head >= q->n;
}

static int cmp_rowid(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* Sorts what is queued and drops duplicates (a contract may be found by the
 * due index, an expiry range and the change scan at once: planning it twice
 * is harmless but wasted). Rowid order also reads the store in file order. */
static void queue_dedupe(struct rowid_queue *q) {
  if (q->n - q->head < 2 || q->sorted == q->n)
    return;
  int64_t *v = q->v + q->head;
  size_t n = q->n - q->head, m = 1;
  qsort(v, n, sizeof *v, cmp_rowid);
  for (size_t k = 1; k < n; k++)
    if (v[k] != v[m - 1])
      v[m++] = v[k];
  q->n = q->head + m;
  q->sorted = q->n;
}

static int ranges_push(struct range_list *l, int64_t from, int64_t until) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    struct range *v = realloc(l->v, cap * sizeof *v);
    if (!v)
      return -ENOMEM;
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = (struct range){.from = from, .until = until};
  return 0;
}

/* ---- planning one contract ----------------------------------------------- */

/* The planner's report: log lines and counters. */
static void on_planner_event(void *ud, const struct planner_event *ev) {
  struct sched *s = ud;
  struct log_ctx lc = {.contract_id = ev->contract_id,
                       .tier = ev->tier,
                       .channel = ev->channel,
                       .reminder_id = ev->reminder_id};
  switch (ev->kind) {
  case PLANNER_EVENT_REMINDER:
    s->stats.reminders_created++;
    s->created_pending = true;
    log_msg(s->log, LOG_INFO, &lc, "reminder due: %s step %d to %s %s%s", ev->tier, ev->step,
            ev->audience, ev->recipient, ev->catch_up ? " (catch-up)" : "");
    break;
  case PLANNER_EVENT_SKIPPED:
    s->stats.reminders_skipped++;
    log_msg(s->log, LOG_INFO, &lc, "skipped %s step %d for %s: %s", ev->tier, ev->step,
            ev->audience, ev->reason);
    break;
  case PLANNER_EVENT_TRANSITION:
    s->stats.transitions++;
    log_msg(s->log, LOG_INFO, &lc, "contract %s → %s", contract_state_to_string(ev->from),
            contract_state_to_string(ev->to));
    break;
  case PLANNER_EVENT_NO_POLICY:
    log_msg(s->log, LOG_WARNING, &lc, "no policy for segment '%s': nothing scheduled", ev->reason);
    break;
  case PLANNER_EVENT_REFUSED:
    log_msg(s->log, LOG_ERR, &lc, "policy engine refused the contract: %s", strerror(-ev->error));
    break;
  }
}

static void setup_env(struct sched *s) {
  config_planner_env(s->cfg, s->store, s->cal, &s->env);
  s->env.ladders = s->ladders;
  s->env.report = on_planner_event;
  s->env.report_ud = s;
}

/* Plans one contract inside the caller's transaction (core/planner.c applies
 * every action due at now and records the next due instant), then puts it on
 * the wheel or takes it off. */
static int plan_contract(struct sched *s, int64_t rowid, int64_t now) {
  int64_t next_due = TIME_NEVER;
  bool in_ladder = false;
  int r = planner_plan_contract(&s->env, rowid, now, &next_due, &in_ladder);
  if (r < 0)
    return r;
  if (r > 0)
    s->stats.contracts_planned++;
  /* TIME_NEVER (done, deleted): off the wheel */
  struct item *i = wheel_place(s, rowid, next_due);
  if (i)
    i->in_ladder = in_ladder;
  return 0;
}

/* Plans rowids[0..n) in one transaction, but stops once SLICE_MS passed (the
 * caller keeps the rest for the next loop iteration). On a store failure the
 * whole batch is rolled back and the caller decides when to try again
 * (place_failed()): -EBUSY (another writer holds the lock; the loop's
 * connection does not wait for it) soon, anything else after RETRY_AFTER.
 * Returns how many were planned (at least 1 when n > 0), or -errno. */
static int plan_batch(struct sched *s, const int64_t *rowids, size_t n, int64_t now) {
  if (n == 0)
    return 0;
  int r = store_begin(s->store);
  if (r < 0)
    return r;
  int64_t t0 = clock_monotonic_ms();
  size_t k;
  for (k = 0; k < n; k++) {
    if (k > 0 && clock_monotonic_ms() - t0 >= SLICE_MS)
      break;
    r = plan_contract(s, rowids[k], now);
    if (r < 0)
      break;
  }
  if (r >= 0) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, now);
    r = store_meta_set(s->store, "fired_until", buf);
  }
  if (r >= 0) {
    int64_t tc = clock_monotonic_ms();
    r = store_commit(s->store);
    s->refill_commit_max = MAX(s->refill_commit_max, clock_monotonic_ms() - tc);
  }
  if (r < 0) {
    if (r != -EBUSY)
      log_error(s->log, "planning failed (%s): %s; retrying in %ds", strerror(-r),
                store_last_error(s->store), RETRY_AFTER);
    store_rollback(s->store);
    s->created_pending = false;
    return r;
  }
  if (s->created_pending && s->cb) {
    s->created_pending = false;
    s->cb(s->cb_userdata);
  }
  return (int)k;
}

/* After plan_batch() failed with r: the contracts stay due (at now, -EBUSY:
 * the caller retries from a timer) or come back after RETRY_AFTER. */
static void place_failed(struct sched *s, const int64_t *rowids, size_t n, int64_t now, int r) {
  for (size_t k = 0; k < n; k++)
    wheel_place(s, rowids[k], r == -EBUSY ? now : now + RETRY_AFTER);
}

/* ---- the wheel ----------------------------------------------------------- */

struct due_batch {
  int64_t *rowids;
  size_t n, max;
};

static bool fire_cb(struct wheel_entry *e, void *ud) {
  struct due_batch *b = ud;
  struct item *i = wheel_container_of(e, struct item, entry);
  b->rowids[b->n++] = i->rowid;
  return b->n < b->max;
}

int sched_run_due(struct sched *s, int64_t now, unsigned budget) {
  if (budget == 0)
    budget = 1;
  _cleanup_free_ int64_t *rowids = malloc(budget * sizeof *rowids);
  if (!rowids)
    return -ENOMEM;
  struct due_batch b = {.rowids = rowids, .max = budget};
  wheel_advance(s->wheel, now, fire_cb, &b);
  int r = plan_batch(s, b.rowids, b.n, now);
  if (r < 0) {
    place_failed(s, b.rowids, b.n, now, r);
    return r;
  }
  for (size_t k = (size_t)r; k < b.n; k++) /* the slice ran out: still due */
    wheel_place(s, b.rowids[k], now);
  return wheel_next_expiry(s->wheel) <= now ? 1 : 0;
}

/* ---- refill --------------------------------------------------------------- */

static int cmp_range(const void *a, const void *b) {
  const struct range *x = a, *y = b;
  return x->from < y->from ? -1 : x->from > y->from;
}

static int64_t duration_seconds(const struct cal_duration *d) {
  int64_t v = (int64_t)d->days * 86400 + d->seconds;
  return d->negative ? -v : v;
}

static int queue_candidate_cb(const struct contract *c, const struct customer *cu, void *ud) {
  struct sched *s = ud;
  if (c->ladder_id != 0 || c->state != CONTRACT_ACTIVE)
    return 0; /* in a ladder: next_due_at is authoritative for it */
  if (item_find(s, c->rowid))
    return 0;
  return queue_push(&s->work, c->rowid);
}

static int queue_due_cb(const struct contract *c, void *ud) {
  struct sched *s = ud;
  if (item_find(s, c->rowid))
    return 0;
  return queue_push(&s->work, c->rowid);
}

/* The expiry scan's callback: queues like queue_candidate_cb and remembers
 * the row as the range's cursor. */
struct expiry_page {
  struct sched *s;
  int64_t last_expires; /* the last row visited */
  struct buf last_id;
};

static int expiry_page_cb(const struct contract *c, const struct customer *cu, void *ud) {
  struct expiry_page *p = ud;
  p->last_expires = c->expires_at;
  buf_reset(&p->last_id);
  if (buf_puts(&p->last_id, c->id ? c->id : "") < 0)
    return -ENOMEM;
  return queue_candidate_cb(c, cu, p->s);
}

static void range_pop(struct range_list *l) {
  free(l->v[l->n - 1].after_id);
  l->n--;
}

/* Queues, for sched_work() to scan, the expiry ranges where a contract not
 * yet in a ladder may have a tier occurrence due in [from, until) under the
 * current config (widened by back below and WINDOW_SLACK above), merged. */
static int queue_ranges(struct sched *s, int64_t from, int64_t until, int64_t back) {
  size_t first = s->scans.n;
  for (size_t pi = 0; pi < s->cfg->n_policies; pi++) {
    const struct policy *p = s->cfg->policies[pi];
    for (size_t t = 0; t < p->n_tiers; t++) {
      int64_t off = duration_seconds(&p->tiers[t].offset);
      int r = ranges_push(&s->scans, from - off - back, until - off + WINDOW_SLACK);
      if (r < 0)
        return r;
    }
  }
  size_t n = s->scans.n - first, m = 0;
  if (n == 0)
    return 0;
  struct range *v = s->scans.v + first;
  qsort(v, n, sizeof *v, cmp_range);
  for (size_t k = 0; k < n; k++) {
    if (m > 0 && v[k].from <= v[m - 1].until)
      v[m - 1].until = MAX(v[m - 1].until, v[k].until);
    else
      v[m++] = v[k];
  }
  s->scans.n = first + m;
  return 0;
}

/* Reads one page of the last pending expiry range, keyset-paged on
 * (expires_at, id) from its cursor; queues the candidates. */
static int scan_expiry_page(struct sched *s) {
  struct range *rg = &s->scans.v[s->scans.n - 1];
  if (rg->from >= rg->until) {
    range_pop(&s->scans);
    return 0;
  }
  struct store_contract_filter f = {
      .state = CONTRACT_ACTIVE,
      .expires_from = rg->from,
      .expires_until = rg->until,
      .limit = s->page,
      .after_id = rg->after_id,
  };
  struct expiry_page p = {.s = s};
  int r = store_contract_foreach(s->store, &f, expiry_page_cb, &p);
  if (r >= 0 && (size_t)r == s->page && p.last_id.data) {
    char *id = buf_steal(&p.last_id);
    if (!id)
      r = -ENOMEM;
    else {
      free(rg->after_id);
      rg->after_id = id;
      rg->from = p.last_expires;
    }
  } else if (r >= 0)
    range_pop(&s->scans);
  buf_free(&p.last_id);
  return r < 0 ? r : 0;
}

static int queue_changed_cb(const struct contract *c, void *ud);

/* Reads one page of the change scan. */
static int scan_changes_page(struct sched *s) {
  int r = store_contract_changed_page(s->store, &s->changes_cur, s->page, queue_changed_cb, s);
  if (r < 0)
    return r;
  s->seen_change_seq = s->changes_cur.key;
  if ((size_t)r < s->page)
    s->changes_running = false;
  return 0;
}

/* Reads one page of the due scan. */
static int scan_due_page(struct sched *s) {
  int r = store_contract_due_page(s->store, &s->due_cur, s->due_until, s->page, queue_due_cb, s);
  if (r < 0)
    return r;
  if ((size_t)r < s->page)
    s->due_running = false;
  return 0;
}

static bool scans_pending(const struct sched *s) {
  return s->changes_running || s->due_running || s->scans.n > 0;
}

/* Reads a page of each pending scan, unless BACKLOG_PAGES pages of queued
 * contracts wait to be planned. */
static int scan_some(struct sched *s) {
  if (s->work.n - s->work.head >= BACKLOG_PAGES * s->page)
    return 0;
  int r = 0;
  if (s->changes_running)
    r = scan_changes_page(s);
  if (r >= 0 && s->due_running)
    r = scan_due_page(s);
  if (r >= 0 && s->scans.n > 0)
    r = scan_expiry_page(s);
  queue_dedupe(&s->work);
  return r;
}

/* Starts (or widens) the due scan to [from, until): rows the running scan
 * has passed are not read again unless from is before its cursor. */
static void due_scan_start(struct sched *s, int64_t from, int64_t until) {
  if (!s->due_running || from < s->due_cur.key || (from == s->due_cur.key && s->due_cur.rowid != 0))
    s->due_cur = (struct store_cursor){.key = from, .rowid = 0};
  s->due_until = s->due_running ? MAX(s->due_until, until) : until;
  s->due_running = true;
}

/* Queues, for paged scans, every contract that may have an action due in
 * [from, until): those whose recorded next_due_at is in [due_from, until)
 * (0: from the start of the index), and those not yet in a ladder whose
 * expiry puts some tier occurrence in the window. */
static int queue_window(struct sched *s, int64_t due_from, int64_t from, int64_t until) {
  due_scan_start(s, due_from, until);
  if (from >= until)
    return 0;
  return queue_ranges(s, from, until, WINDOW_SLACK);
}

static void refill_begin(struct sched *s) {
  s->stats.refill_started_ms = clock_monotonic_ms();
  s->refill_planned0 = s->stats.contracts_planned;
  s->refill_slice_max = 0;
  s->refill_commit_max = 0;
}

/* Extends the horizon to now + Horizon=. due_from is where the due scan
 * starts: 0 for the whole index (start-up, a rebuilt horizon), else the
 * previous loaded_until (everything due before it is on the wheel already).
 * Returns 1 when work was queued. */
static int refill(struct sched *s, int64_t due_from, int64_t from, int64_t now) {
  int64_t until = now + cfg_horizon(s);
  if (until <= s->loaded_until && from >= s->loaded_until)
    return 0;
  refill_begin(s);
  int64_t prev = s->loaded_until;
  s->loaded_until = MAX(s->loaded_until, until);
  s->next_refill = now + cfg_refill_interval(s);
  int r = queue_window(s, due_from, MIN(from, prev), s->loaded_until);
  if (r < 0)
    return r;
  return !queue_empty(&s->work) || scans_pending(s);
}

int sched_maybe_refill(struct sched *s, int64_t now) {
  if (now < s->next_refill)
    return 0;
  return refill(s, s->loaded_until, s->loaded_until, now);
}

/* ---- changes by others --------------------------------------------------- */

static int queue_changed_cb(const struct contract *c, void *ud) {
  struct sched *s = ud;
  s->stats.changes_seen++;
  return queue_push(&s->work, c->rowid);
}

/* Starts the change scan where the last one ended (sched_work() pages it). */
static void queue_changes(struct sched *s) {
  s->changes_running = true;
}

int sched_poll_changes(struct sched *s, int64_t now) {
  int64_t v;
  int r = store_data_version(s->store, &v);
  if (r < 0)
    return r;
  if (v == s->data_version)
    return 0;
  s->data_version = v;
  queue_changes(s);
  return 1;
}

/* ---- work ------------------------------------------------------------------ */

/* The queue ran empty: closes the running refill (log line, duration) and
 * records how far the change scan got. */
static void work_drained(struct sched *s) {
  if (s->stats.refill_started_ms) {
    s->stats.last_refill_ms = clock_monotonic_ms() - s->stats.refill_started_ms;
    s->stats.refill_started_ms = 0;
    /* start-up and reloads at info (benchmarks and operators wait for it);
     * the periodic horizon extensions at debug */
    log_msg(s->log, s->refill_announce ? LOG_INFO : LOG_DEBUG, NULL,
            "refill done in %" PRId64 " ms (%" PRIu64 " contracts planned, longest slice %" PRId64
            " ms, longest commit %" PRId64 " ms)",
            s->stats.last_refill_ms, s->stats.contracts_planned - s->refill_planned0,
            s->refill_slice_max, s->refill_commit_max);
    s->refill_announce = false;
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, s->seen_change_seq);
    store_meta_set(s->store, "seen_change_seq", buf);
  }
  s->work.head = s->work.n = s->work.sorted = 0;
}

int sched_work(struct sched *s, int64_t now, unsigned budget) {
  int64_t t0 = clock_monotonic_ms();
  int r;
  if (budget == 0)
    budget = 1;
  if (scans_pending(s) && (r = scan_some(s)) < 0)
    return r; /* the cursors did not move: the same page is read again */
  if (!queue_empty(&s->work)) {
    size_t n = MIN((size_t)budget, s->work.n - s->work.head);
    r = plan_batch(s, s->work.v + s->work.head, n, now);
    if (r == -EBUSY)
      return r; /* the queue is kept: tried again after a back-off */
    if (r < 0) {
      place_failed(s, s->work.v + s->work.head, n, now, r); /* they wait on the wheel */
      s->work.head += n;
      return r;
    }
    s->work.head += (size_t)r;
  }
  s->refill_slice_max = MAX(s->refill_slice_max, clock_monotonic_ms() - t0);
  if (queue_empty(&s->work) && !scans_pending(s)) {
    work_drained(s);
    return 0;
  }
  return 1;
}

int sched_replan(struct sched *s, const char *contract_id, int64_t now) {
  struct contract c = {0};
  int r = store_contract_get(s->store, contract_id, &c);
  if (r < 0)
    return r;
  int64_t rowid = c.rowid;
  contract_clear(&c);
  r = plan_batch(s, &rowid, 1, now);
  if (r < 0)
    place_failed(s, &rowid, 1, now, r);
  return r < 0 ? r : 0;
}

/* ---- lifecycle -------------------------------------------------------------- */

static int meta_int(struct sched *s, const char *key, int64_t *ret) {
  _cleanup_free_ char *v = NULL;
  int r = store_meta_get(s->store, key, &v);
  if (r < 0)
    return r;
  return parse_int64(v, ret);
}

int sched_new(struct store *store, struct cal *cal, const struct config *cfg,
              const struct logger *log, int64_t now, struct sched **ret) {
  if (!store || !cal || !cfg || !log || !ret)
    return -EINVAL;
  struct sched *s = calloc(1, sizeof *s);
  if (!s)
    return -ENOMEM;
  *s = (struct sched){.store = store,
                      .cal = cal,
                      .cfg = cfg,
                      .log = log,
                      .loaded_until = now,
                      .page = DEFAULT_PAGE};
  s->n_buckets = 1024;
  s->buckets = calloc(s->n_buckets, sizeof *s->buckets);
  int r = s->buckets ? wheel_new(now, &s->wheel) : -ENOMEM;
  if (r >= 0)
    r = planner_ladders_new(&s->ladders);
  if (r < 0) {
    sched_free(s);
    return r;
  }
  setup_env(s);
  *ret = s;
  return 0;
}

struct sched *sched_free(struct sched *s) {
  if (!s)
    return NULL;
  if (s->buckets)
    for (size_t k = 0; k < s->n_buckets; k++)
      for (struct item *i = s->buckets[k], *next; i; i = next) {
        next = i->hnext;
        free(i);
      }
  for (struct item *i = s->free_items, *next; i; i = next) {
    next = i->hnext;
    free(i);
  }
  free(s->buckets);
  planner_ladders_free(s->ladders);
  free(s->work.v);
  while (s->scans.n > 0)
    range_pop(&s->scans);
  free(s->scans.v);
  wheel_free(s->wheel);
  free(s);
  return NULL;
}

void sched_set_callback(struct sched *s, sched_reminders_cb cb, void *userdata) {
  s->cb = cb;
  s->cb_userdata = userdata;
}

int sched_start(struct sched *s, int64_t now) {
  int64_t fired_until = now;
  if (meta_int(s, "fired_until", &fired_until) < 0 || fired_until > now)
    fired_until = now;
  if (meta_int(s, "seen_change_seq", &s->seen_change_seq) < 0)
    s->seen_change_seq = 0;
  int r = store_data_version(s->store, &s->data_version);
  if (r < 0)
    return r;
  /* Everything changed since the last run (all of it on a first start). */
  s->changes_cur = (struct store_cursor){.key = s->seen_change_seq, .rowid = INT64_MAX};
  queue_changes(s);
  s->loaded_until = now;
  s->refill_announce = true;
  return refill(s, 0, fired_until, now);
}

/* Whether everything a ladder snapshot does not hold but a due instant
 * depends on is the same in a and b: the send windows and the default zone. */
static bool same_windows(const struct config *a, const struct config *b) {
  if (!a || !b || a->n_windows != b->n_windows ||
      !streq_ptr(a->daemon.time_zone, b->daemon.time_zone))
    return false;
  for (size_t k = 0; k < a->n_windows; k++) {
    const struct config_window *x = &a->windows[k], *y = &b->windows[k];
    if (!streq_ptr(x->name, y->name) || x->window.start_min != y->window.start_min ||
        x->window.end_min != y->window.end_min || x->window.days != y->window.days ||
        !streq_ptr(x->holidays_path, y->holidays_path))
      return false;
  }
  return true;
}

int sched_set_config(struct sched *s, const struct config *cfg, int64_t now) {
  bool keep_ladders = same_windows(s->cfg, cfg);
  s->cfg = cfg;
  setup_env(s);
  s->refill_announce = true;
  if (!keep_ladders) {
    /* Contracts on the wheel may have been planned under other windows: take
     * them off and rebuild the horizon from the store. */
    for (size_t k = 0; k < s->n_buckets; k++)
      while (s->buckets[k])
        item_drop(s, s->buckets[k]->rowid);
    s->loaded_until = now;
    s->next_refill = 0;
    return refill(s, 0, now, now);
  }
  /* Same windows and zone: a contract in its ladder keeps its schedule (the
   * snapshot decides, docs/scheduling.md), so only the others are planned
   * again: those on the wheel, and those the new tiers bring into the horizon
   * (expiry ranges, scanned in slices; widened by RELOAD_BACK below so that
   * an occurrence whose instant passed but whose window opens later is
   * found). The store is not read here, whatever the size of the book. */
  refill_begin(s);
  for (size_t k = 0; k < s->n_buckets; k++)
    for (struct item *i = s->buckets[k]; i; i = i->hnext)
      if (!i->in_ladder) {
        int r = queue_push(&s->work, i->rowid);
        if (r < 0)
          return r;
      }
  queue_dedupe(&s->work);
  int r = queue_ranges(s, now, s->loaded_until, RELOAD_BACK);
  if (r < 0)
    return r;
  return !queue_empty(&s->work) || scans_pending(s);
}

void sched_set_page_size(struct sched *s, size_t rows) {
  if (s)
    s->page = rows > 0 ? rows : DEFAULT_PAGE;
}

bool sched_busy(const struct sched *s) {
  return s && (!queue_empty(&s->work) || scans_pending(s));
}

int64_t sched_next_wakeup(struct sched *s) {
  return MIN(wheel_next_expiry(s->wheel), s->next_refill);
}

size_t sched_wheel_count(const struct sched *s) {
  return wheel_count(s->wheel);
}

int64_t sched_next_due(struct sched *s, int64_t *ret_rowid) {
  int64_t t = wheel_next_expiry(s->wheel);
  if (ret_rowid)
    *ret_rowid = 0;
  return t;
}

const struct sched_stats *sched_stats(const struct sched *s) {
  return &s->stats;
}
