/* dispatch: delivers pending outbox rows through the configured channels.
 *
 * The dispatcher claims due rows from the store (pending, or retry whose
 * next_attempt_at has come), renders them, hands them to the channel backend
 * named by the row's channel (struct notifier_ops), and commits the result:
 * sent / retry (exponential backoff with full jitter, Retry-After honoured) /
 * dead (then the tier's fallback channel and the ops alert). Network backends
 * run on libcurl's multi interface through the socket API; the event loop is
 * NOT known here: the daemon implements struct dispatch_loop_ops on sd-event
 * and forwards socket readiness and timeouts. Nothing here blocks except
 * short SQLite transactions; synchronous backends (the Maildir sink) complete
 * inside dispatcher_kick().
 *
 * Owns: the curl multi handle, the easy handles in flight, the channel
 * backends' state, per-channel rate limiters and circuit breakers. Borrows the
 * store, cal, config and clock (they must outlive it). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/cal.h"
#include "core/clock.h"
#include "core/store.h"

/* Event-loop hooks the daemon provides. what/events use libcurl's values
 * (CURL_POLL_IN/OUT/INOUT/REMOVE, CURL_CSELECT_IN/OUT/ERR). */
struct dispatch_loop_ops {
  /* Start, change or stop (CURL_POLL_REMOVE) watching fd. Returns 0 or -errno. */
  int (*watch)(void *loop, int fd, int what);
  /* (Re)arm the single dispatcher timeout to fire in ms milliseconds; -1 disarms. */
  int (*timer)(void *loop, long ms);
};

/* What happened to one outbox row, for the daemon's logs and metrics. */
enum dispatch_outcome {
  DISPATCH_SENT,
  DISPATCH_RETRY,
  DISPATCH_DEAD,
  DISPATCH_FALLBACK,       /* a dead row created a row on the tier's fallback channel */
  DISPATCH_SKIPPED,        /* not sent: opted out, contract gone, ... (detail says why) */
  DISPATCH_CIRCUIT_OPEN,   /* channel paused after FailureThreshold= transient failures
                              in a row (reminder_id 0; next_attempt_at = next probe) */
  DISPATCH_CIRCUIT_CLOSED, /* channel works again (a probe or a send succeeded) */
  DISPATCH_CANCELLED,      /* an answer cancelled the row while it was in flight: the
                              attempt is recorded (detail), nothing follows it */
  DISPATCH_UNKNOWN,        /* the attempt's outcome is unknown and a resend is not safe
                              (SMS): the row is 'unknown', for ops (detail says why) */
  DISPATCH_STALE,          /* a result arrived for a row this claim no longer holds
                              (recovered, re-claimed): not recorded */
  DISPATCH_STORE_BUSY,     /* another process holds the store's write lock: results and
                              claims are kept and retried from a timer (reminder_id 0,
                              channel NULL; detail says what waits). Once per episode. */
  DISPATCH_STORE_FREE,     /* ... the episode is over: everything kept was written
                              (latency_ms = the episode's length) */
  _DISPATCH_OUTCOME_MAX,
};

struct dispatch_report {
  enum dispatch_outcome outcome;
  int64_t reminder_id;
  const char *contract_id;
  const char *tier;
  const char *channel;
  const char *recipient; /* for logs: never a secret (URLs reduced by url_redact()) */
  int32_t attempts;
  int64_t next_attempt_at; /* RETRY */
  const char *detail;      /* error text, provider id, ... */
  int64_t latency_ms;      /* request start to result */
};

struct dispatch_callbacks {
  void (*report)(void *userdata, const struct dispatch_report *r);
  void *userdata;
};

struct dispatcher;

/* Creates the dispatcher and one backend per configured channel. Validation
 * errors of channel settings are appended to errs as "file:line: message".
 * Returns 0, -EINVAL (invalid channel config) or -errno. Caller frees. */
int dispatcher_new(struct store *store, struct cal *cal, const struct config *cfg,
                   const struct clock *clock, const struct dispatch_loop_ops *ops, void *loop,
                   const struct dispatch_callbacks *cbs, struct dispatcher **ret,
                   struct config_errors *errs);
struct dispatcher *dispatcher_free(struct dispatcher *d);

/* Validates the channel sections of cfg (used by --check-config). */
int dispatcher_check_config(const struct config *cfg, struct config_errors *errs);

/* Swaps in a new config (SIGHUP); transfers in flight finish with the old
 * settings. Returns 0 or -EINVAL with errs filled (then the old one stays). */
int dispatcher_set_config(struct dispatcher *d, const struct config *cfg,
                          struct config_errors *errs);

/* Start-up crash recovery: every row left in 'sending' by an earlier run is
 * settled by its channel's policy for an unknown outcome: email and webhooks
 * become due again (same idempotency key); SMS rows are due again as a
 * lookup at the provider where the backend has one (Twilio), else become
 * 'unknown' and are reported (DISPATCH_UNKNOWN): a blind resend could reach
 * the phone twice.
 * Rows an answer marked end 'cancelled'. Returns how many. The same policy
 * applies, while running, to leases that expired (see dispatcher_kick()). */
int dispatcher_recover(struct dispatcher *d);

/* Graceful stop: claims nothing from now on; transfers in flight go on and
 * their results are recorded as usual, also those waiting for a locked
 * store (dispatcher_in_flight() reaches 0). */
void dispatcher_stop(struct dispatcher *d);
/* The end of a stop's grace: aborts the transfers still running and drops
 * the results a locked store kept waiting, recording nothing; their rows stay 'sending' under their
 * lease and are recovered by the next start (or by another instance's lease sweep), with the same
 * key. Returns how many were aborted or dropped. */
size_t dispatcher_abort(struct dispatcher *d);

/* Claims and starts what is due now (call after new pending rows, and when
 * dispatcher_next_wakeup() has come). Also renews the leases of transfers in
 * flight and recovers expired leases of other claims, every
 * DISPATCH_SWEEP_INTERVAL seconds. */
#define DISPATCH_SWEEP_INTERVAL 10
void dispatcher_kick(struct dispatcher *d);
/* Forwarded from the loop: fd is ready (CURL_CSELECT_* bits). */
void dispatcher_socket_ready(struct dispatcher *d, int fd, int events);
/* Forwarded from the loop: the timeout armed through ops->timer fired. */
void dispatcher_timeout(struct dispatcher *d);

/* Sends one test message synchronously through the real backend of channel
 * (renewctl send-test): sample data rendered with the template of the first
 * tier using the channel, to address `to`, with its own curl easy handle.
 * Nothing is written to the store. Returns 0 with *ret filled (the outcome,
 * also NOTIFY_TRANSIENT/PERMANENT), or -errno with a message in err when
 * the channel cannot be set up (unknown channel, bad config, secret missing). */
struct notify_result;
int dispatch_send_test(const struct config *cfg, struct cal *cal, const char *channel,
                       const char *to, int64_t now, struct notify_result *ret, char *err,
                       size_t errlen);

/* Transfers in flight plus results waiting for a locked store to be
 * written (0 = idle: a simulated clock may jump, a graceful stop is over). */
size_t dispatcher_in_flight(const struct dispatcher *d);
/* The next instant a retry, rate limit or circuit probe wants a kick
 * (TIME_NEVER when none). */
int64_t dispatcher_next_wakeup(struct dispatcher *d);
