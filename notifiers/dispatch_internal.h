/* dispatch_internal: what dispatch.c and dispatch_setup.c share. Not for
 * other modules. */
#pragma once

#include <curl/curl.h>
#include <stdbool.h>

#include "config/config.h"
#include "core/ladder.h"
#include "notifiers/notifier.h"

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
