/* metrics: Prometheus exposition of renewd's figures (see metrics.h and
 * docs/metrics.md).
 *
 * Owns the per-channel counters (a small array, grown when a report names a
 * new channel) and the cached text of the store-derived metrics. */
#include "daemon/metrics.h"

#include <inttypes.h>

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

struct metrics {
  char *version;
  int64_t started_at;
  struct metrics_channel *ch; /* owned array */
  size_t n_ch;
  uint64_t http[_METRICS_EP_MAX][6]; /* by endpoint and status class 1xx..5xx ([0] unused) */
  char *store_text;                  /* cached store-derived exposition; owned */
  int64_t store_at_ms;               /* when it was read */
  bool store_ok;                     /* the last read worked */
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
  *ret = m;
  return 0;
}

struct metrics *metrics_free(struct metrics *m) {
  if (!m)
    return NULL;
  for (size_t i = 0; i < m->n_ch; i++)
    free(m->ch[i].name);
  free(m->ch);
  free(m->store_text);
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
  if (!m || !rep || (unsigned)rep->outcome >= ELEMENTSOF(outcome_names))
    return;
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

/* ---- store-derived part ---------------------------------------------------------- */

struct group_out {
  struct buf *b;
  const char *name;
  const char *const *label_names;
  int64_t *status_counts; /* reminders: counts by status, for the outbox depth */
};

static int group_cb(const char *const *keys, size_t n_keys, int64_t count, void *ud) {
  struct group_out *g = ud;
  const char *labels[8];
  for (size_t i = 0; i < n_keys && i < 4; i++) {
    labels[2 * i] = g->label_names[i];
    labels[2 * i + 1] = keys[i];
  }
  if (g->status_counts) {
    int st = reminder_status_from_string(keys[3]);
    if (st >= 0)
      g->status_counts[st] += count;
  }
  return sample_u(g->b, g->name, labels, n_keys, (uint64_t)MAX(count, 0));
}

/* Adds count to states[state] (store_count_grouped callback). */
static int collect_states(const char *const *keys, size_t n, int64_t count, void *ud) {
  int64_t *states = ud;
  int s = n ? contract_state_from_string(keys[0]) : -1;
  if (s >= 0)
    states[s] += count;
  return 0;
}

static int store_part(struct store *store, struct buf *b) {
  static const char *const rem_labels[] = {"channel", "tier", "audience", "status"};
  static const char *const resp_labels[] = {"kind", "source"};
  int64_t status[_REMINDER_STATUS_MAX] = {0};
  int r;

  if ((r = header(b, "renewd_reminders", "gauge",
                  "Outbox rows (reminders and alerts) by channel, tier, audience and status.")) < 0)
    return r;
  struct group_out g = {b, "renewd_reminders", rem_labels, status};
  if ((r = store_count_grouped(store, STORE_GROUP_REMINDERS, group_cb, &g)) < 0)
    return r;

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
  g = (struct group_out){b, "renewd_answers_total", resp_labels, NULL};
  if ((r = store_count_grouped(store, STORE_GROUP_RESPONSES, group_cb, &g)) < 0)
    return r;

  if ((r = header(b, "renewd_contracts", "gauge", "Contracts by state.")) < 0)
    return r;
  /* every state is listed, zero included, so dashboards see all series */
  int64_t states[_CONTRACT_STATE_MAX] = {0};
  r = store_count_grouped(store, STORE_GROUP_CONTRACTS, collect_states, states);
  if (r < 0)
    return r;
  for (int s = 0; s < _CONTRACT_STATE_MAX; s++) {
    const char *l[] = {"state", contract_state_to_string((enum contract_state)s)};
    if ((r = sample_u(b, "renewd_contracts", l, 1, (uint64_t)states[s])) < 0)
      return r;
  }
  return 0;
}

/* ---- everything ------------------------------------------------------------------ */

static int channel_part(struct metrics *m, struct buf *b) {
  int r;
  if ((r = header(b, "renewd_deliveries_total", "counter",
                  "Delivery outcomes reported by the dispatcher since start, by channel.")) < 0)
    return r;
  for (size_t i = 0; i < m->n_ch; i++)
    for (size_t o = 0; o < ELEMENTSOF(outcome_names); o++) {
      if (o == DISPATCH_CIRCUIT_OPEN || o == DISPATCH_CIRCUIT_CLOSED)
        continue;
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
  if (store && (!m->store_text || now_ms - m->store_at_ms >= METRICS_STORE_TTL_MS ||
                now_ms < m->store_at_ms)) {
    struct buf sb = {0};
    r = store_part(store, &sb);
    if (r == -ENOMEM) {
      buf_free(&sb);
      return r;
    }
    m->store_ok = r >= 0;
    free(m->store_text);
    m->store_text = r >= 0 ? buf_steal(&sb) : NULL;
    buf_free(&sb);
    m->store_at_ms = now_ms;
    if (r >= 0 && !m->store_text)
      return -ENOMEM;
  }
  const char *bl[] = {"version", m->version};
  if ((r = header(out, "renewd_build_info", "gauge", "Build information; the value is 1.")) < 0 ||
      (r = sample(out, "renewd_build_info", bl, 1, "1")) < 0 ||
      (r = header(out, "renewd_start_time_seconds", "gauge",
                  "When this renewd process started, seconds since the epoch.")) < 0 ||
      (r = sample_u(out, "renewd_start_time_seconds", NULL, 0, (uint64_t)MAX(m->started_at, 0))) <
          0 ||
      (r = header(out, "renewd_store_up", "gauge",
                  "1 when the store answered the last metrics query, else 0.")) < 0 ||
      (r = sample_u(out, "renewd_store_up", NULL, 0, store && m->store_ok)) < 0)
    return r;
  if (m->store_text && (r = buf_puts(out, m->store_text)) < 0)
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
