/* metrics: Prometheus exposition of renewd's figures (see metrics.h and
 * docs/metrics.md).
 *
 * Owns the per-channel counters (a small array, grown when a report names a
 * new channel), the loop-iteration histogram, and the paged recount of the
 * store-derived gauges: a timer source reads one page of reminders,
 * responses or contracts per firing (store_count_page(), keyset on rowid),
 * sums the pages of a pass into "next" tables and, when the pass ends,
 * makes them the tables /metrics shows. Rendering never reads the store. */
#include "daemon/metrics.h"

#include <inttypes.h>
#include <time.h>

#include "daemon/ckpt.h"

/* Recount pacing: a page at most every RECOUNT_TICK_MS, and at least
 * RECOUNT_DUTY times the last page's duration apart (the recount takes at
 * most ~1/RECOUNT_DUTY of the loop); a new pass RECOUNT_INTERVAL_MS after the
 * last one ended. */
#define RECOUNT_TICK_MS 10
#define RECOUNT_DUTY 4
#define RECOUNT_INTERVAL_MS 5000
#define RECOUNT_DEFAULT_PAGE 2000

/* Loop iteration histogram upper bounds, seconds. */
static const double loop_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                     0.1,   0.25,   0.5,   1,    2.5};
#define N_LOOP_BOUNDS ELEMENTSOF(loop_bounds)

/* Key columns per enum store_group (store_count_page()). */
static const size_t group_keys[3] = {
    [STORE_GROUP_REMINDERS] = 4, [STORE_GROUP_RESPONSES] = 2, [STORE_GROUP_CONTRACTS] = 1};

/* Latency histogram upper bounds, seconds. */
static const double lat_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                    1,     2.5,  5,     10,   30,  60};
#define N_BOUNDS ELEMENTSOF(lat_bounds)

enum { LAT_SENT, LAT_RETRY, LAT_DEAD, _LAT_MAX };
static const char *const lat_outcome[_LAT_MAX] = {"sent", "retry", "dead"};

struct histogram {
  uint64_t buckets[N_BOUNDS]; /* non-cumulative counts per bound; +Inf = count */
  uint64_t count;
  double sum; /* seconds */
};

struct metrics_channel {
  char *name;                               /* channel name; owned */
  uint64_t outcomes[_DISPATCH_OUTCOME_MAX]; /* per enum dispatch_outcome */
  struct histogram lat[_LAT_MAX];           /* by outcome */
  bool circuit_open;                        /* last circuit report said open */
};

/* Counts by group (up to 4 key strings) of one table. */
struct group_entry {
  char *keys[4]; /* owned; n_keys of them */
  int64_t count;
};

struct group_table {
  struct group_entry *v; /* owned */
  size_t n, cap;
  size_t n_keys;
};

struct metrics {
  char *version;
  int64_t started_at;
  struct metrics_channel *ch; /* owned array */
  size_t n_ch;
  uint64_t http[_METRICS_EP_MAX][6]; /* by endpoint and status class 1xx..5xx ([0] unused) */

  /* loop iterations (the daemon's run loop) */
  uint64_t loop_buckets[N_LOOP_BOUNDS]; /* non-cumulative; +Inf = loop_count */
  uint64_t loop_count;
  double loop_sum;      /* seconds */
  uint64_t loop_max_us; /* the longest since start */
  uint64_t store_busy;  /* -EBUSY back-offs */
  struct ckpt *ckpt;    /* borrowed; NULL = no checkpoint figures */

  /* the paged recount */
  sd_event_source *recount;              /* timer; owned */
  struct store *store;                   /* borrowed */
  size_t page;                           /* rows per page */
  int phase;                             /* enum store_group being read in the running pass */
  int64_t after;                         /* its cursor (rowid) */
  struct group_table next[3], cur[3];    /* by enum store_group */
  bool have;                             /* cur holds a complete pass */
  bool store_ok;                         /* the last page read worked */
  uint64_t passes;                       /* complete passes */
  int64_t pass_started_ms, pass_done_ms; /* monotonic */
  int64_t pass_last_ms;                  /* duration of the last complete pass */
};

static const char *const outcome_names[_DISPATCH_OUTCOME_MAX] = {
    [DISPATCH_SENT] = "sent",
    [DISPATCH_RETRY] = "retry",
    [DISPATCH_DEAD] = "dead",
    [DISPATCH_FALLBACK] = "fallback",
    [DISPATCH_SKIPPED] = "skipped",
    [DISPATCH_CIRCUIT_OPEN] = "circuit_open",
    [DISPATCH_CIRCUIT_CLOSED] = "circuit_closed",
    [DISPATCH_CANCELLED] = "cancelled",
    [DISPATCH_UNKNOWN] = "unknown",
    [DISPATCH_STALE] = "stale",
    [DISPATCH_STORE_BUSY] = "store_busy",
    [DISPATCH_STORE_FREE] = "store_free",
};

static const char *const endpoint_names[_METRICS_EP_MAX] = {
    [METRICS_EP_ANSWER] = "answer",   [METRICS_EP_UNSUBSCRIBE] = "unsubscribe",
    [METRICS_EP_SMS] = "sms",         [METRICS_EP_API] = "api",
    [METRICS_EP_HEALTHZ] = "healthz", [METRICS_EP_METRICS] = "metrics",
    [METRICS_EP_OTHER] = "other",
};

int metrics_new(const char *version, int64_t started_at, struct metrics **ret) {
  if (!ret)
    return -EINVAL;
  struct metrics *m = calloc(1, sizeof *m);
  if (!m)
    return -ENOMEM;
  m->version = strdup(version ? version : "unknown");
  if (!m->version) {
    free(m);
    return -ENOMEM;
  }
  m->started_at = started_at;
  m->phase = -1;
  for (size_t g = 0; g < 3; g++)
    m->next[g].n_keys = m->cur[g].n_keys = group_keys[g];
  *ret = m;
  return 0;
}

static void table_reset(struct group_table *t) {
  for (size_t i = 0; i < t->n; i++)
    for (size_t k = 0; k < t->n_keys; k++)
      free(t->v[i].keys[k]);
  t->n = 0;
}

static void table_done(struct group_table *t) {
  table_reset(t);
  free(t->v);
  t->v = NULL;
  t->cap = 0;
}

struct metrics *metrics_free(struct metrics *m) {
  if (!m)
    return NULL;
  metrics_stop_recount(m);
  for (size_t i = 0; i < m->n_ch; i++)
    free(m->ch[i].name);
  free(m->ch);
  for (size_t g = 0; g < 3; g++) {
    table_done(&m->next[g]);
    table_done(&m->cur[g]);
  }
  free(m->version);
  free(m);
  return NULL;
}

static struct metrics_channel *channel_get(struct metrics *m, const char *name) {
  if (isempty(name))
    name = "unknown";
  for (size_t i = 0; i < m->n_ch; i++)
    if (streq(m->ch[i].name, name))
      return &m->ch[i];
  if (m->n_ch >= 256) /* channel names come from the config: bounded */
    return NULL;
  struct metrics_channel *v = realloc(m->ch, (m->n_ch + 1) * sizeof *v);
  if (!v)
    return NULL;
  m->ch = v;
  struct metrics_channel *c = &m->ch[m->n_ch];
  *c = (struct metrics_channel){.name = strdup(name)};
  if (!c->name)
    return NULL;
  m->n_ch++;
  return c;
}

static void observe(struct histogram *h, double seconds) {
  for (size_t i = 0; i < N_BOUNDS; i++)
    if (seconds <= lat_bounds[i]) {
      h->buckets[i]++;
      break;
    }
  h->count++;
  h->sum += seconds;
}

void metrics_report(struct metrics *m, const struct dispatch_report *rep) {
  if (!m || !rep || (unsigned)rep->outcome >= ELEMENTSOF(outcome_names) ||
      rep->outcome == DISPATCH_STORE_BUSY || rep->outcome == DISPATCH_STORE_FREE)
    return; /* not per channel: renewd_store_busy_total */
  struct metrics_channel *c = channel_get(m, rep->channel);
  if (!c)
    return;
  c->outcomes[rep->outcome]++;
  int lat = rep->outcome == DISPATCH_SENT    ? LAT_SENT
            : rep->outcome == DISPATCH_RETRY ? LAT_RETRY
            : rep->outcome == DISPATCH_DEAD  ? LAT_DEAD
                                             : -1;
  if (lat >= 0 && rep->latency_ms >= 0)
    observe(&c->lat[lat], (double)rep->latency_ms / 1000.0);
  if (rep->outcome == DISPATCH_CIRCUIT_OPEN)
    c->circuit_open = true;
  else if (rep->outcome == DISPATCH_CIRCUIT_CLOSED)
    c->circuit_open = false;
}

void metrics_http(struct metrics *m, enum metrics_endpoint ep, unsigned status) {
  if (!m || (unsigned)ep >= _METRICS_EP_MAX)
    return;
  unsigned cls = status / 100;
  if (cls >= 1 && cls <= 5)
    m->http[ep][cls]++;
}

/* ---- exposition ---------------------------------------------------------------- */

/* A label value with \, " and newline escaped. */
static int put_label(struct buf *b, const char *v) {
  int r = 0;
  for (const char *p = v ? v : ""; *p && r >= 0; p++) {
    if (*p == '\\')
      r = buf_puts(b, "\\\\");
    else if (*p == '"')
      r = buf_puts(b, "\\\"");
    else if (*p == '\n')
      r = buf_puts(b, "\\n");
    else
      r = buf_append(b, p, 1);
  }
  return r;
}

static int header(struct buf *b, const char *name, const char *type, const char *help) {
  return buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Writes name{k1="v1",...} value. keys/values NULL-terminated pairs. */
static int sample(struct buf *b, const char *name, const char *const *labels, size_t n_labels,
                  const char *value) {
  int r = buf_puts(b, name);
  if (r >= 0 && n_labels) {
    r = buf_puts(b, "{");
    for (size_t i = 0; i < n_labels && r >= 0; i++)
      if ((r = buf_printf(b, "%s%s=\"", i ? "," : "", labels[2 * i])) >= 0 &&
          (r = put_label(b, labels[2 * i + 1])) >= 0)
        r = buf_puts(b, "\"");
    if (r >= 0)
      r = buf_puts(b, "}");
  }
  if (r >= 0)
    r = buf_printf(b, " %s\n", value);
  return r;
}

static int sample_u(struct buf *b, const char *name, const char *const *labels, size_t n,
                    uint64_t v) {
  char s[24];
  snprintf(s, sizeof s, "%" PRIu64, v);
  return sample(b, name, labels, n, s);
}

static int sample_d(struct buf *b, const char *name, const char *const *labels, size_t n,
                    double v) {
  char s[40];
  snprintf(s, sizeof s, "%.9g", v);
  return sample(b, name, labels, n, s);
}

/* ---- the paged recount ------------------------------------------------------------ */

/* Adds count to the group keys (a page's group) of table t. */
static int table_add(struct group_table *t, const char *const *keys, int64_t count) {
  for (size_t i = 0; i < t->n; i++) {
    size_t k = 0;
    while (k < t->n_keys && streq(t->v[i].keys[k], keys[k]))
      k++;
    if (k == t->n_keys) {
      t->v[i].count += count;
      return 0;
    }
  }
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 16;
    struct group_entry *v = realloc(t->v, cap * sizeof *v);
    if (!v)
      return -ENOMEM;
    t->v = v;
    t->cap = cap;
  }
  struct group_entry *e = &t->v[t->n];
  *e = (struct group_entry){.count = count};
  for (size_t k = 0; k < t->n_keys; k++)
    if (!(e->keys[k] = strdup(keys[k]))) {
      while (k > 0)
        free(e->keys[--k]);
      return -ENOMEM;
    }
  t->n++;
  return 0;
}

static int page_cb(const char *const *keys, size_t n_keys, int64_t count, void *ud) {
  return table_add(ud, keys, count);
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The running pass ended: its tables become the shown ones. */
static void pass_done(struct metrics *m, int64_t now_ms) {
  for (size_t g = 0; g < 3; g++) {
    struct group_table t = m->cur[g];
    m->cur[g] = m->next[g];
    m->next[g] = t;
    table_reset(&m->next[g]);
  }
  m->have = true;
  m->passes++;
  m->pass_last_ms = now_ms - m->pass_started_ms;
  m->pass_done_ms = now_ms;
  m->phase = -1;
}

int metrics_recount_step(struct metrics *m) {
  if (!m || !m->store)
    return -EINVAL;
  int64_t now = mono_ms();
  if (m->phase < 0) { /* a new pass */
    m->phase = STORE_GROUP_REMINDERS;
    m->after = 0;
    m->pass_started_ms = now;
    for (size_t g = 0; g < 3; g++)
      table_reset(&m->next[g]);
  }
  int r = store_count_page(m->store, (enum store_group)m->phase, &m->after, m->page, page_cb,
                           &m->next[m->phase]);
  m->store_ok = r >= 0;
  if (r < 0)
    return r; /* the cursor stays: the page is read again */
  if ((size_t)r < m->page) {
    m->after = 0;
    if (++m->phase == 3) {
      pass_done(m, mono_ms());
      return 0;
    }
  }
  return 1;
}

static int on_recount(sd_event_source *s, uint64_t usec, void *userdata) {
  struct metrics *m = userdata;
  int64_t t0 = mono_ms();
  int r = metrics_recount_step(m);
  int64_t took = mono_ms() - t0;
  uint64_t ms = r == 0 ? RECOUNT_INTERVAL_MS : (uint64_t)MAX(RECOUNT_TICK_MS, RECOUNT_DUTY * took);
  if (r < 0)
    ms = 100; /* locked, out of memory: again soon */
  sd_event_source_set_time_relative(s, ms * 1000ull);
  sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
  return 0;
}

int metrics_start_recount(struct metrics *m, sd_event *event, struct store *store, int64_t priority,
                          size_t page) {
  if (!m || !event || !store)
    return -EINVAL;
  m->store = store;
  m->page = page > 0 ? page : RECOUNT_DEFAULT_PAGE;
  m->phase = -1;
  int r = sd_event_add_time_relative(event, &m->recount, CLOCK_MONOTONIC, 0, 0, on_recount, m);
  if (r < 0)
    return r;
  sd_event_source_set_priority(m->recount, priority);
  sd_event_source_set_description(m->recount, "metrics-recount");
  return 0;
}

void metrics_stop_recount(struct metrics *m) {
  if (m)
    m->recount = sd_event_source_disable_unref(m->recount);
}

/* ---- store-derived part ------------------------------------------------------------- */

static int store_part(struct metrics *m, struct buf *b) {
  static const char *const rem_labels[] = {"channel", "tier", "audience", "status"};
  static const char *const resp_labels[] = {"kind", "source"};
  int64_t status[_REMINDER_STATUS_MAX] = {0};
  int r;

  if ((r = header(b, "renewd_reminders", "gauge",
                  "Outbox rows (reminders and alerts) by channel, tier, audience and status.")) < 0)
    return r;
  const struct group_table *t = &m->cur[STORE_GROUP_REMINDERS];
  for (size_t i = 0; i < t->n; i++) {
    const char *l[8];
    for (size_t k = 0; k < 4; k++) {
      l[2 * k] = rem_labels[k];
      l[2 * k + 1] = t->v[i].keys[k];
    }
    int st = reminder_status_from_string(t->v[i].keys[3]);
    if (st >= 0)
      status[st] += t->v[i].count;
    if ((r = sample_u(b, "renewd_reminders", l, 4, (uint64_t)MAX(t->v[i].count, 0))) < 0)
      return r;
  }

  if ((r = header(b, "renewd_outbox_depth", "gauge",
                  "Outbox rows still to be delivered, by state (pending, sending, retry).")) < 0)
    return r;
  static const enum reminder_status depth[] = {REMINDER_PENDING, REMINDER_SENDING, REMINDER_RETRY};
  for (size_t i = 0; i < ELEMENTSOF(depth); i++) {
    const char *l[] = {"state", reminder_status_to_string(depth[i])};
    if ((r = sample_u(b, "renewd_outbox_depth", l, 1, (uint64_t)status[depth[i]])) < 0)
      return r;
  }
  if ((r = header(b, "renewd_outbox_dead_letters", "gauge",
                  "Outbox rows given up on (dead letters; see renewctl outbox --state dead).")) <
          0 ||
      (r = sample_u(b, "renewd_outbox_dead_letters", NULL, 0, (uint64_t)status[REMINDER_DEAD])) < 0)
    return r;

  if ((r = header(b, "renewd_answers_total", "counter",
                  "Answers recorded (responses table), by kind and source.")) < 0)
    return r;
  t = &m->cur[STORE_GROUP_RESPONSES];
  for (size_t i = 0; i < t->n; i++) {
    const char *l[] = {resp_labels[0], t->v[i].keys[0], resp_labels[1], t->v[i].keys[1]};
    if ((r = sample_u(b, "renewd_answers_total", l, 2, (uint64_t)MAX(t->v[i].count, 0))) < 0)
      return r;
  }

  if ((r = header(b, "renewd_contracts", "gauge", "Contracts by state.")) < 0)
    return r;
  /* every state is listed, zero included, so dashboards see all series */
  int64_t states[_CONTRACT_STATE_MAX] = {0};
  t = &m->cur[STORE_GROUP_CONTRACTS];
  for (size_t i = 0; i < t->n; i++) {
    int st = contract_state_from_string(t->v[i].keys[0]);
    if (st >= 0)
      states[st] += t->v[i].count;
  }
  for (int st = 0; st < _CONTRACT_STATE_MAX; st++) {
    const char *l[] = {"state", contract_state_to_string((enum contract_state)st)};
    if ((r = sample_u(b, "renewd_contracts", l, 1, (uint64_t)states[st])) < 0)
      return r;
  }
  return 0;
}

/* The recount's own figures, the loop histogram, checkpoints. */
static int loop_part(struct metrics *m, int64_t now_ms, struct buf *b) {
  int r;
  if ((r = header(b, "renewd_store_recount_passes_total", "counter",
                  "Complete paged recounts of the store-derived gauges.")) < 0 ||
      (r = sample_u(b, "renewd_store_recount_passes_total", NULL, 0, m->passes)) < 0 ||
      (r = header(b, "renewd_store_recount_age_seconds", "gauge",
                  "Time since the recount the store-derived gauges show ended.")) < 0 ||
      (r = sample_d(b, "renewd_store_recount_age_seconds", NULL, 0,
                    m->have ? (double)MAX(now_ms - m->pass_done_ms, 0) / 1000.0 : -1)) < 0 ||
      (r = header(b, "renewd_store_recount_last_duration_seconds", "gauge",
                  "Duration of the last complete recount pass (all pages).")) < 0 ||
      (r = sample_d(b, "renewd_store_recount_last_duration_seconds", NULL, 0,
                    (double)m->pass_last_ms / 1000.0)) < 0)
    return r;
  if ((r = header(b, "renewd_loop_iteration_seconds", "histogram",
                  "Work done per event loop iteration (waiting excluded).")) < 0)
    return r;
  uint64_t cum = 0;
  for (size_t i = 0; i < N_LOOP_BOUNDS; i++) {
    char le[16];
    snprintf(le, sizeof le, "%g", loop_bounds[i]);
    cum += m->loop_buckets[i];
    const char *l[] = {"le", le};
    if ((r = sample_u(b, "renewd_loop_iteration_seconds_bucket", l, 1, cum)) < 0)
      return r;
  }
  const char *inf[] = {"le", "+Inf"};
  if ((r = sample_u(b, "renewd_loop_iteration_seconds_bucket", inf, 1, m->loop_count)) < 0 ||
      (r = sample_d(b, "renewd_loop_iteration_seconds_sum", NULL, 0, m->loop_sum)) < 0 ||
      (r = sample_u(b, "renewd_loop_iteration_seconds_count", NULL, 0, m->loop_count)) < 0 ||
      (r = header(b, "renewd_loop_iteration_seconds_max", "gauge",
                  "The longest event loop iteration since start.")) < 0 ||
      (r = sample_d(b, "renewd_loop_iteration_seconds_max", NULL, 0,
                    (double)m->loop_max_us / 1e6)) < 0 ||
      (r = header(b, "renewd_store_busy_total", "counter",
                  "Times the loop found the store locked by another writer and backed off.")) < 0 ||
      (r = sample_u(b, "renewd_store_busy_total", NULL, 0, m->store_busy)) < 0)
    return r;
  if (!m->ckpt)
    return 0;
  struct ckpt_stats cs;
  ckpt_stats(m->ckpt, &cs);
  if ((r = header(b, "renewd_wal_checkpoints_total", "counter",
                  "PASSIVE WAL checkpoints run by the checkpoint thread.")) < 0 ||
      (r = sample_u(b, "renewd_wal_checkpoints_total", NULL, 0, cs.checkpoints)) < 0 ||
      (r = header(b, "renewd_wal_checkpoint_frames_total", "counter",
                  "WAL frames the checkpoint thread copied into the database.")) < 0 ||
      (r = sample_u(b, "renewd_wal_checkpoint_frames_total", NULL, 0, cs.frames)) < 0 ||
      (r = header(b, "renewd_wal_checkpoint_failures_total", "counter",
                  "Checkpoints that failed.")) < 0 ||
      (r = sample_u(b, "renewd_wal_checkpoint_failures_total", NULL, 0, cs.failures)) < 0 ||
      (r = header(b, "renewd_wal_checkpoint_seconds_max", "gauge",
                  "The longest checkpoint (on its own thread, not the loop).")) < 0 ||
      (r = sample_d(b, "renewd_wal_checkpoint_seconds_max", NULL, 0, (double)cs.max_us / 1e6)) < 0)
    return r;
  return 0;
}

void metrics_loop_iteration(struct metrics *m, uint64_t us) {
  if (!m)
    return;
  double sec = (double)us / 1e6;
  for (size_t i = 0; i < N_LOOP_BOUNDS; i++)
    if (sec <= loop_bounds[i]) {
      m->loop_buckets[i]++;
      break;
    }
  m->loop_count++;
  m->loop_sum += sec;
  m->loop_max_us = MAX(m->loop_max_us, us);
}

void metrics_store_busy(struct metrics *m) {
  if (m)
    m->store_busy++;
}

void metrics_set_ckpt(struct metrics *m, struct ckpt *c) {
  if (m)
    m->ckpt = c;
}

/* ---- everything ------------------------------------------------------------------ */

static int channel_part(struct metrics *m, struct buf *b) {
  int r;
  if ((r = header(b, "renewd_deliveries_total", "counter",
                  "Delivery outcomes reported by the dispatcher since start, by channel.")) < 0)
    return r;
  for (size_t i = 0; i < m->n_ch; i++)
    for (size_t o = 0; o < ELEMENTSOF(outcome_names); o++) {
      if (o == DISPATCH_CIRCUIT_OPEN || o == DISPATCH_CIRCUIT_CLOSED || o == DISPATCH_STORE_BUSY ||
          o == DISPATCH_STORE_FREE)
        continue; /* not deliveries (store busy: renewd_store_busy_total) */
      const char *l[] = {"channel", m->ch[i].name, "outcome", outcome_names[o]};
      if ((r = sample_u(b, "renewd_deliveries_total", l, 2, m->ch[i].outcomes[o])) < 0)
        return r;
    }
  if ((r = header(b, "renewd_delivery_retries_total", "counter",
                  "Failed attempts that will be retried, by channel.")) < 0)
    return r;
  for (size_t i = 0; i < m->n_ch; i++) {
    const char *l[] = {"channel", m->ch[i].name};
    if ((r = sample_u(b, "renewd_delivery_retries_total", l, 1,
                      m->ch[i].outcomes[DISPATCH_RETRY])) < 0)
      return r;
  }
  if ((r = header(b, "renewd_dead_letters_total", "counter",
                  "Rows given up on since start, by channel.")) < 0)
    return r;
  for (size_t i = 0; i < m->n_ch; i++) {
    const char *l[] = {"channel", m->ch[i].name};
    if ((r = sample_u(b, "renewd_dead_letters_total", l, 1, m->ch[i].outcomes[DISPATCH_DEAD])) < 0)
      return r;
  }
  if ((r = header(b, "renewd_delivery_duration_seconds", "histogram",
                  "Time from the start of a delivery attempt to its result, by channel and "
                  "outcome.")) < 0)
    return r;
  for (size_t i = 0; i < m->n_ch; i++)
    for (int o = 0; o < _LAT_MAX; o++) {
      const struct histogram *h = &m->ch[i].lat[o];
      uint64_t cum = 0;
      char le[24];
      for (size_t k = 0; k <= N_BOUNDS; k++) {
        if (k < N_BOUNDS) {
          cum += h->buckets[k];
          snprintf(le, sizeof le, "%g", lat_bounds[k]);
        } else {
          cum = h->count;
          snprintf(le, sizeof le, "+Inf");
        }
        const char *l[] = {"channel", m->ch[i].name, "outcome", lat_outcome[o], "le", le};
        if ((r = sample_u(b, "renewd_delivery_duration_seconds_bucket", l, 3, cum)) < 0)
          return r;
      }
      const char *l[] = {"channel", m->ch[i].name, "outcome", lat_outcome[o]};
      if ((r = sample_d(b, "renewd_delivery_duration_seconds_sum", l, 2, h->sum)) < 0 ||
          (r = sample_u(b, "renewd_delivery_duration_seconds_count", l, 2, h->count)) < 0)
        return r;
    }
  if ((r = header(b, "renewd_channel_circuit_open", "gauge",
                  "1 while a channel is paused by its circuit breaker, else 0.")) < 0)
    return r;
  for (size_t i = 0; i < m->n_ch; i++) {
    const char *l[] = {"channel", m->ch[i].name};
    if ((r = sample_u(b, "renewd_channel_circuit_open", l, 1, m->ch[i].circuit_open)) < 0)
      return r;
  }
  return 0;
}

static int sched_part(struct sched *s, struct buf *b) {
  const struct sched_stats *st = sched_stats(s);
  int r;
  if ((r = header(b, "renewd_wheel_entries", "gauge",
                  "Contracts with something due within the horizon (timer wheel entries).")) < 0 ||
      (r = sample_u(b, "renewd_wheel_entries", NULL, 0, sched_wheel_count(s))) < 0)
    return r;
  if (!st)
    return 0;
  if ((r = header(b, "renewd_refill_last_duration_seconds", "gauge",
                  "Duration of the last complete horizon refill.")) < 0 ||
      (r = sample_d(b, "renewd_refill_last_duration_seconds", NULL, 0,
                    (double)MAX(st->last_refill_ms, 0) / 1000.0)) < 0)
    return r;
  struct {
    const char *name, *help;
    uint64_t v;
  } c[] = {
      {"renewd_contracts_planned_total", "Policy evaluations by the scheduler.",
       st->contracts_planned},
      {"renewd_reminders_created_total", "Outbox rows inserted as pending by the scheduler.",
       st->reminders_created},
      {"renewd_reminders_skipped_total", "Outbox rows inserted as skipped by the scheduler.",
       st->reminders_skipped},
      {"renewd_state_transitions_total", "Contract state changes made by the scheduler.",
       st->transitions},
      {"renewd_changes_seen_total", "Contracts re-planned because another writer changed them.",
       st->changes_seen},
  };
  for (size_t i = 0; i < ELEMENTSOF(c); i++)
    if ((r = header(b, c[i].name, "counter", c[i].help)) < 0 ||
        (r = sample_u(b, c[i].name, NULL, 0, c[i].v)) < 0)
      return r;
  return 0;
}

int metrics_render(struct metrics *m, struct store *store, struct sched *sched, int64_t now_ms,
                   struct buf *out) {
  if (!m || !out)
    return -EINVAL;
  int r;
  const char *bl[] = {"version", m->version};
  if ((r = header(out, "renewd_build_info", "gauge", "Build information; the value is 1.")) < 0 ||
      (r = sample(out, "renewd_build_info", bl, 1, "1")) < 0 ||
      (r = header(out, "renewd_start_time_seconds", "gauge",
                  "When this renewd process started, seconds since the epoch.")) < 0 ||
      (r = sample_u(out, "renewd_start_time_seconds", NULL, 0, (uint64_t)MAX(m->started_at, 0))) <
          0 ||
      (r = header(out, "renewd_store_up", "gauge",
                  "1 when the last page of the store recount was read, else 0.")) < 0 ||
      (r = sample_u(out, "renewd_store_up", NULL, 0, m->store && m->store_ok)) < 0)
    return r;
  if (m->have && (r = store_part(m, out)) < 0)
    return r;
  if ((r = loop_part(m, mono_ms(), out)) < 0)
    return r;
  if ((r = channel_part(m, out)) < 0)
    return r;
  if (sched && (r = sched_part(sched, out)) < 0)
    return r;
  if ((r = header(out, "renewd_http_requests_total", "counter",
                  "HTTP responses since start, by endpoint and status class.")) < 0)
    return r;
  for (int e = 0; e < _METRICS_EP_MAX; e++)
    for (int c = 1; c <= 5; c++) {
      if (!m->http[e][c])
        continue;
      char code[4] = {(char)('0' + c), 'x', 'x', 0};
      const char *l[] = {"endpoint", endpoint_names[e], "code", code};
      if ((r = sample_u(out, "renewd_http_requests_total", l, 2, m->http[e][c])) < 0)
        return r;
    }
  return 0;
}
