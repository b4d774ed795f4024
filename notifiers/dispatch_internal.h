/* dispatch_internal: what dispatch.c, dispatch_result.c and dispatch_setup.c
 * share: the dispatcher's state (struct dispatcher, its channels,
 * transfers and batches of results) and the calls between its files. Not
 * for other modules. */
#pragma once

#include <curl/curl.h>
#include <stdbool.h>

#include "config/config.h"
#include "core/ladder.h"
#include "notifiers/dispatch.h"
#include "notifiers/notifier.h"
#include "notifiers/render.h"

/* defaults of the keys every channel has */
#define DEFAULT_MAX_CONCURRENT 4
#define DEFAULT_SYNC_BATCH 64      /* rows per claim for synchronous backends */
#define DEFAULT_CONNECT_TIMEOUT 10 /* seconds */
#define DEFAULT_TIMEOUT 30
#define DEFAULT_RETRY_BASE 30
#define DEFAULT_RETRY_MAX 3600
#define DEFAULT_MAX_ATTEMPTS 8
#define DEFAULT_FAILURE_THRESHOLD 20
#define DEFAULT_PROBE_INTERVAL 60

/* Dispatcher settings every channel has (notify_common_key()). */
struct chan_settings {
  unsigned max_concurrent; /* transfers in flight (sync: rows per claim) */
  double rate;             /* tokens per second, 0 = unlimited */
  long connect_timeout_ms;
  long timeout_ms;
  int64_t retry_base; /* seconds */
  int64_t retry_max;  /* seconds */
  int32_t max_attempts;
  unsigned failure_threshold; /* consecutive transient failures that open the circuit */
  int64_t probe_interval;     /* seconds before the first probe */
};

/* The backend for a Type= value, or NULL. */
const struct notifier_ops *dispatch_backend_for(const char *type);
/* Parses the dispatcher's keys of ch (defaults for the rest) into *ret.
 * Returns 0 or -EINVAL with "file:line" errors appended to errs. */
int dispatch_parse_settings(const struct config_channel *ch, const struct notifier_ops *ops,
                            struct chan_settings *ret, struct config_errors *errs);
/* True when tier t sends through channel chname (Channels= or Fallback=). */
bool dispatch_tier_uses(const struct tier *t, const char *chname);
/* Options every transfer gets (timeouts, callbacks into nx, PRIVATE = priv). */
void dispatch_easy_common(CURL *e, const struct chan_settings *s, struct notify_xfer *nx,
                          void *priv);
/* After a backend's prepare(): headers, recipients, upload from nx. */
void dispatch_easy_wire(CURL *e, struct notify_xfer *nx);
/* Frees what nx holds and zeroes it. */
void dispatch_nx_done(struct notify_xfer *nx);

/* ---- the dispatcher's state (dispatch.c, dispatch_result.c) ------------------------ */

#define PROBE_INTERVAL_MAX 600 /* seconds: probes back off up to this */

struct chan {
  struct dispatcher *d;
  char *name;                     /* [Channel NAME] */
  const struct notifier_ops *ops; /* backend */
  void *state;                    /* backend instance */
  struct chan_settings set;
  unsigned in_flight; /* transfers running */
  /* token bucket */
  double tokens;     /* available now */
  double capacity;   /* bucket size: one second's worth, at least 1 */
  int64_t tokens_at; /* instant tokens was computed */
  bool backlog;      /* the last claim was cut short: more rows may be due */
  /* circuit breaker */
  unsigned failures;      /* consecutive transient failures */
  bool open;              /* paused */
  bool probing;           /* the one probe row is in flight */
  int64_t probe_at;       /* next probe instant (open) */
  int64_t probe_interval; /* current interval, doubles to PROBE_INTERVAL_MAX */
  int64_t probe_row;      /* id of the probe row (probing) */
  int64_t retry_min;      /* earliest next_attempt_at of this channel's retry rows */
  CURL **pool;            /* idle easy handles */
  size_t n_pool;
  unsigned held;        /* results kept in d->held (the store was locked): no claims */
  bool retired;         /* replaced by a reload: freed when in_flight and held drop to 0 */
  uint64_t flushed_gen; /* batch_gen + 1 of the batch it was last flushed for */
  struct chan *next_retired;
};

struct xfer {
  struct chan *ch;
  CURL *easy;
  struct reminder row; /* owned copy of the claimed row */
  struct message msg;
  enum notify_kind kind;
  struct notify_request req;
  struct notify_xfer nx;
  int64_t started_ms;
  uint64_t tx_gen; /* the loop transaction that committed its claim (0 = autocommit) */
  bool skip;       /* the check before the first byte stopped it: skip_why */
  bool lookup;     /* a provider lookup of an earlier attempt, not a send */
  char skip_why[256];
  struct xfer *prev, *next; /* d->xfers */
};

/* One finished row, waiting to be committed. */
struct outcome {
  struct chan *ch;
  struct reminder row; /* owned */
  struct notify_result res;
  bool skipped;              /* not sent on purpose (res.error says why) */
  bool unknown;              /* the request may have reached the provider: outcome unknown */
  bool is_lookup;            /* the outcome of a provider lookup (reconcile), not a send */
  enum notify_lookup lookup; /* ... what it found */
  bool breaker;              /* counts for the circuit breaker (a real attempt at the receiver) */
  int64_t latency_ms;
  enum notify_kind kind;
};

struct batch {
  struct outcome *v;
  size_t n, cap;
};

struct staged {
  struct batch b;
  struct decision *dcs;
  int64_t now;
};

struct dispatcher {
  struct store *store;
  struct cal *cal;
  const struct config *cfg;
  const struct clock *clock;
  const struct dispatch_loop_ops *loop_ops;
  void *loop;
  struct dispatch_callbacks cbs;
  struct render *render;
  CURLM *multi;
  struct chan **chans; /* current config's channels */
  size_t n_chans;
  struct chan *retired; /* list of retired channels with transfers in flight */
  struct xfer *xfers;   /* transfers in flight */
  size_t in_flight;
  bool retry_dirty;         /* recompute the channels' retry_min from the store */
  int64_t last_poll;        /* real clock: last full kick */
  uint64_t rng;             /* xorshift64* state for jitter */
  bool in_kick;             /* re-entrancy guard */
  bool check_pending;       /* sockets were served: collect finished transfers at the timer */
  int64_t curl_deadline_ms; /* curl's timeout (monotonic ms), -1 = none */
  unsigned tx_depth;        /* tx_begin() nesting */
  bool tx_ok;               /* the callback's transaction is open */
  struct staged *staged;    /* results written in the open transaction, reported at tx_end() */
  size_t n_staged, cap_staged;
  uint64_t batch_gen; /* batches applied (flush bookkeeping) */
  uint64_t tx_gen;    /* loop transactions begun; xfer->tx_gen names the one of its claim */
  bool stopping;      /* dispatcher_stop(): claim nothing more */
  int64_t next_sweep; /* lease renewal and expired-lease recovery due at */
  char owner[128];    /* claimed_by: "host:pid" */
  /* the store was locked by another process (-EBUSY): retried from the timer */
  struct held *held; /* results not written yet */
  size_t n_held, cap_held;
  bool claim_busy;       /* a claim failed with -EBUSY: claim again from the timer */
  bool tx_failed;        /* a write inside the loop callback's transaction failed */
  bool busy_episode;     /* DISPATCH_STORE_BUSY was reported, DISPATCH_STORE_FREE not yet */
  unsigned busy_ms;      /* current back-off (BUSY_RETRY_MIN_MS doubling to _MAX_MS) */
  int64_t busy_due_ms;   /* monotonic instant of the next try, -1 = none */
  int64_t busy_since_ms; /* monotonic start of the episode */
};

/* What an outcome turns into. */
struct decision {
  enum reminder_status status; /* what the outcome asks for */
  enum reminder_status final;  /* what the row became (cancelled when an answer marked it) */
  bool stale;                  /* the row no longer holds this claim: nothing written */
  bool reconcile;              /* due again at next, as a lookup at the provider */
  int64_t next;                /* retry instant */
  char error[NOTIFY_ERROR_MAX + 64];
  char fallback[128]; /* fallback channel created, "" = none */
  bool alerted;
  bool held; /* not written (the store was locked): moved to d->held, reported later */
};

/* A result that could not be written because another process held the
 * store's write lock: kept with its claim token (o.row.claim) and written
 * from the dispatcher's timer (dispatch_held_flush()). */
struct held {
  struct outcome o;
  struct decision dc;
  int64_t now; /* the instant of the decision */
};

/* dispatch.c */
int64_t dispatch_now(const struct dispatcher *d);
struct chan *dispatch_chan_find(struct dispatcher *d, const char *name);
/* Can this channel look an attempt up at its provider (reconciliation)? */
bool dispatch_chan_can_lookup(const struct chan *ch);
/* Tells the daemon (struct dispatch_callbacks); row and channel may be NULL. */
void dispatch_report(struct dispatcher *d, enum dispatch_outcome o, const struct reminder *row,
                     const char *channel, const char *detail, int64_t next, int64_t latency_ms);
/* Returns an easy handle to ch's pool (or frees it). */
void dispatch_pool_put(struct chan *ch, CURL *e);
/* Frees a transfer that is not (or no longer) on the multi handle. Returns NULL. */
struct xfer *dispatch_xfer_free(struct xfer *x);

/* The store was locked (-EBUSY): held results and failed claims are tried
 * again from the dispatcher's timer after a back-off; the first one of an
 * episode is reported (DISPATCH_STORE_BUSY). */
void dispatch_busy(struct dispatcher *d);

/* dispatch_result.c */
/* Writes the held results in order, each in its own transaction, and
 * reports them. Stops at the first -EBUSY. Returns true when none is left. */
bool dispatch_held_flush(struct dispatcher *d);
/* Drops the held results (their rows stay 'sending' under their lease). */
size_t dispatch_held_drop(struct dispatcher *d);
/* Appends an outcome; takes ownership of *row (zeroed). 0 or -ENOMEM. */
int dispatch_batch_add(struct batch *b, struct chan *ch, struct reminder *row,
                       const struct notify_result *res, bool skipped, bool breaker,
                       int64_t latency_ms, enum notify_kind kind);
/* Commits a batch in its own transaction, then reports; frees it. */
void dispatch_batch_apply(struct dispatcher *d, struct batch *b);
/* Writes a batch inside the loop callback's transaction; reported at tx_end. */
void dispatch_batch_stage(struct dispatcher *d, struct batch *b);
/* The loop callback's one write transaction (nests). */
void dispatch_tx_begin(struct dispatcher *d);
void dispatch_tx_end(struct dispatcher *d);
/* Takes x off the multi handle and the transfers in flight, and frees it. */
void dispatch_xfer_drop(struct dispatcher *d, struct xfer *x);
