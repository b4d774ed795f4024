/* metrics: renewd's Prometheus metrics (GET /metrics, text format 0.0.4).
 *
 * Kinds of figures:
 *  - counted here, in memory, as things happen: delivery outcomes and the
 *    delivery latency histogram per channel (fed by the daemon's dispatch
 *    reports, metrics_report()), circuit breaker state per channel, HTTP
 *    requests by endpoint and status (metrics_http()), the event loop's
 *    iteration histogram and maximum (metrics_loop_iteration()), store
 *    back-offs (metrics_store_busy()), the checkpoint thread's figures;
 *  - read from the store (reminders by channel/tier/audience/status, outbox
 *    depth, dead letters, answers by kind and source, contracts by state) by
 *    a paged recount on the event loop (metrics_start_recount()): one page of
 *    rows per timer firing, keyset on rowid, so no loop iteration reads a
 *    whole table; a /metrics scrape shows the last complete pass (its age is
 *    a metric) and never touches the store;
 *  - and the scheduler's own figures (wheel entries, refill duration,
 *    planning counters) plus build info.
 * Every metric is documented in docs/metrics.md.
 *
 * Owns: the counters, the recount tables and the recount's timer source.
 * Borrows the store (the loop's connection), the checkpoint thread and the
 * scheduler passed to metrics_render(). Never logs. Not thread-safe (the
 * event loop thread). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "core/store.h"
#include "core/util.h"
#include "daemon/sched.h"
#include "notifiers/dispatch.h"

struct metrics;
struct ckpt;

/* Creates the counters. version goes into renewd_build_info; started_at
 * (UTC seconds) into renewd_start_time_seconds. Caller frees. */
int metrics_new(const char *version, int64_t started_at, struct metrics **ret);
struct metrics *metrics_free(struct metrics *m);

/* Counts one dispatch report (outcome per channel, latency of SENT, RETRY
 * and DEAD, circuit state). Accepts m NULL. */
void metrics_report(struct metrics *m, const struct dispatch_report *rep);

/* The HTTP endpoint classes counted by metrics_http(). */
enum metrics_endpoint {
  METRICS_EP_ANSWER,      /* /r/<token> */
  METRICS_EP_UNSUBSCRIBE, /* /u/<token> */
  METRICS_EP_SMS,         /* /sms/inbound */
  METRICS_EP_API,         /* /api/v1/... */
  METRICS_EP_HEALTHZ,
  METRICS_EP_METRICS,
  METRICS_EP_OTHER,
  _METRICS_EP_MAX,
};
/* Counts one HTTP response. Accepts m NULL. */
void metrics_http(struct metrics *m, enum metrics_endpoint ep, unsigned status);

/* Starts the paged recount of the store-derived gauges on event (a timer
 * source at priority; page rows per page, 0 = 2000). Borrows store until
 * metrics_stop_recount() or metrics_free(). 0 or -errno. */
int metrics_start_recount(struct metrics *m, sd_event *event, struct store *store, int64_t priority,
                          size_t page);
void metrics_stop_recount(struct metrics *m);
/* Reads one page of the recount (what the timer does; for tests). Returns 1
 * when the pass goes on, 0 when it just completed, -errno (the page is read
 * again next time). */
int metrics_recount_step(struct metrics *m);
/* One event loop iteration's work, in microseconds. Accepts m NULL. */
void metrics_loop_iteration(struct metrics *m, uint64_t us);
/* The loop (scheduler work or an HTTP request) found the store locked and
 * backed off. Accepts m NULL. */
void metrics_store_busy(struct metrics *m);
/* Borrows the checkpoint thread for its figures (NULL: none shown). */
void metrics_set_ckpt(struct metrics *m, struct ckpt *c);

/* Appends the whole exposition to out without reading the store (store is
 * unused: the recount's tables are shown). sched may be NULL (its metrics
 * are left out). Returns 0 or -ENOMEM. */
int metrics_render(struct metrics *m, struct store *store, struct sched *sched, int64_t now_ms,
                   struct buf *out);
