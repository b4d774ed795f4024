/* metrics: renewd's Prometheus metrics (GET /metrics, text format 0.0.4).
 *
 * Two kinds of figures:
 *  - counted here, in memory, since the process started: delivery outcomes
 *    and the delivery latency histogram per channel (fed by the daemon's
 *    dispatch reports, metrics_report()), circuit breaker state per channel,
 *    HTTP requests by endpoint and status (metrics_http());
 *  - read from the store (reminders by channel/tier/audience/status, outbox
 *    depth, dead letters, answers by kind and source, contracts by state),
 *    one GROUP BY scan per table, cached for METRICS_STORE_TTL_MS so a
 *    scraper cannot make the daemon scan a large book continuously;
 *  - and the scheduler's own figures (wheel entries, refill duration,
 *    planning counters) plus build info.
 * Every metric is documented in docs/metrics.md.
 *
 * Owns: the counters and the cached store text. Borrows the store and the
 * scheduler passed to metrics_render(). Never logs; metrics_render() blocks on
 * the store (at most once per TTL). Not thread-safe (the event loop thread). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "core/store.h"
#include "core/util.h"
#include "daemon/sched.h"
#include "notifiers/dispatch.h"

/* Store-derived figures are re-read at most this often. */
#define METRICS_STORE_TTL_MS 5000

struct metrics;

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

/* Appends the whole exposition to out. now_ms is a monotonic clock in ms (for
 * the cache). sched may be NULL (its metrics are left out). Returns 0 or
 * -errno (a store failure: the metric renewd_store_up is 0 then, the rest is
 * still written and 0 returned; -ENOMEM only on OOM). */
int metrics_render(struct metrics *m, struct store *store, struct sched *sched, int64_t now_ms,
                   struct buf *out);
