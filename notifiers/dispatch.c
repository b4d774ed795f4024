/* dispatch: delivers due outbox rows through the channel backends (see
 * dispatch.h for the contract and docs/delivery.md for the guarantees).
 *
 * Per channel (struct chan) it keeps the backend instance, a pool of curl
 * easy handles, the transfers in flight (at most MaxConcurrent=), a token
 * bucket (RatePerSecond=/RatePerMinute=), a circuit breaker and the earliest
 * retry instant of its rows. A row's life here:
 *
 *   claim (store_reminder_claim_lease: the row is 'sending' under a new
 *   claim token and a lease, committed before any byte leaves) → still
 *   wanted? (row_live: the contract's state and term; else skipped with the
 *   reason) → render (notifiers/render.c) → opt-out check → backend:
 *   synchronous send() or a curl transfer on the multi handle, whose
 *   pre-request hook checks claim, cancel mark and term once more right
 *   before the first byte → result classified (sent / transient /
 *   permanent; an SMS sent without an answer: unknown) → committed in a
 *   batch with the other results of the same loop callback, only under the
 *   claim (store_reminder_finish): sent | retry (exponential backoff, full
 *   jitter, Retry-After as a minimum) | dead (then a row on the tier's next
 *   Fallback= channel and an "ops-alert" row on [Ops] AlertChannel=) |
 *   cancelled (an answer marked the row while it was in flight: nothing
 *   follows) | unknown SMS: a lookup at the provider on the next claim
 *   where the backend has one (lookup_*), else 'unknown' for ops → reported
 *   to the daemon.
 *
 * Leases: renewed while a transfer runs; every DISPATCH_SWEEP_INTERVAL the
 * expired leases of other claims are settled by the channel's
 * unknown-outcome policy (email and webhooks: due again, same key; SMS:
 * lookup or 'unknown'), as dispatcher_recover() does at start-up. A stop
 * (dispatcher_stop) claims nothing more; dispatcher_abort() drops what still
 * runs, leaving the rows to their leases.
 *
 * A store locked by another process (-EBUSY; the loop's connection has no
 * busy timeout): results that cannot be written are kept with their claim
 * (d->held, leases renewed) and written from the dispatcher's timer with a
 * back-off (dispatch_busy(), busy_retry()) before their channel claims
 * again; claims that met -EBUSY are retried from the same timer. They count
 * as in flight, so a graceful stop waits for them.
 *
 * The event loop is the daemon's: curl's socket and timer callbacks go to
 * struct dispatch_loop_ops; readiness comes back via dispatcher_socket_ready()
 * and dispatcher_timeout(). Socket readiness only drives curl; finished
 * transfers are collected at the (zero) timeout that follows, so everything
 * that completed in one loop round, and the claims refilling the freed slots,
 * share ONE store transaction (tx_begin/tx_end), committed before control
 * returns to the loop, i.e. before the new transfers' first byte; if that
 * commit fails, the transfers its claims started leave the multi handle
 * (drop_uncommitted) before anything else runs. Every
 * "now" is clock_now() of the borrowed clock.
 *
 * The backend table, the settings every channel has, config checks and
 * renewctl send-test live in dispatch_setup.c.
 *
 * Config reload: new channel objects are built; the old ones are retired and
 * freed when their last transfer completes (in flight work finishes with the
 * old settings); breaker state carries over by channel name.
 *
 * Owns: the curl multi handle, easy handles, transfers, channels, the
 * renderer. Borrows store, cal, config, clock. Blocks only in short SQLite
 * statements and in synchronous backends (the sink's fsync). */
#include "notifiers/dispatch.h"
#include "notifiers/dispatch_internal.h"

#include <inttypes.h>
#include <math.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/lifecycle.h"
#include "core/util.h"
#include "notifiers/notifier.h"
#include "notifiers/render.h"
#include "notifiers/smstext.h"

#define SYNC_BATCHES_PER_KICK 4 /* claims per kick for synchronous backends, then yield */
#define POLL_INTERVAL 30        /* real clock: look for rows other processes made due */
#define LEASE_MARGIN 60         /* seconds a lease outlasts a transfer's own time limits */
#define SWEEP_BATCH 256         /* expired leases settled per sweep */
#define BUSY_RETRY_MIN_MS 10    /* store locked by another process: first retry after */
#define BUSY_RETRY_MAX_MS 500   /* ... doubling up to */

/* ---- small helpers ----------------------------------------------------------------- */

int64_t dispatch_now(const struct dispatcher *d) {
  return clock_now(d->clock);
}

struct chan *dispatch_chan_find(struct dispatcher *d, const char *name) {
  for (size_t i = 0; i < d->n_chans; i++)
    if (streq(d->chans[i]->name, name))
      return d->chans[i];
  return NULL;
}

void dispatch_report(struct dispatcher *d, enum dispatch_outcome o, const struct reminder *row,
                     const char *channel, const char *detail, int64_t next, int64_t latency_ms) {
  if (!d->cbs.report)
    return;
  char to[320]; /* webhook URLs may carry a capability: scheme and host only */
  struct dispatch_report rep = {
      .outcome = o,
      .reminder_id = row ? row->id : 0,
      .contract_id = row ? row->contract_id : NULL,
      .tier = row ? row->tier : NULL,
      .channel = channel ? channel
                 : row   ? row->channel
                         : NULL,
      .recipient = row && row->recipient ? url_redact(row->recipient, to, sizeof to) : NULL,
      .attempts = row ? row->attempts : 0,
      .next_attempt_at = next,
      .detail = detail,
      .latency_ms = latency_ms,
  };
  d->cbs.report(d->cbs.userdata, &rep);
}

/* ---- channels ----------------------------------------------------------------------- */

/* Can this channel look an attempt up at its provider (reconciliation)? */
bool dispatch_chan_can_lookup(const struct chan *ch) {
  return !ch->ops->send && ch->ops->lookup_supported && ch->ops->lookup_prepare &&
         ch->ops->lookup_finish && ch->ops->lookup_supported(ch->state);
}

/* A claim's lease: the transfer's own limits plus a margin; renewed while it runs. */
static int64_t chan_lease(const struct chan *ch) {
  return (ch->set.connect_timeout_ms + ch->set.timeout_ms) / 1000 + LEASE_MARGIN;
}

static struct chan *chan_free(struct chan *ch) {
  if (!ch)
    return NULL;
  for (size_t i = 0; i < ch->n_pool; i++)
    curl_easy_cleanup(ch->pool[i]);
  free(ch->pool);
  if (ch->ops && ch->state)
    ch->ops->free(ch->state);
  free(ch->name);
  free(ch);
  return NULL;
}

static int chan_new(struct dispatcher *d, const struct config_channel *cc,
                    const struct notify_env *env, struct chan **ret, struct config_errors *errs) {
  const struct notifier_ops *ops = dispatch_backend_for(cc->type);
  if (!ops)
    return notify_error(errs, cc, NULL, "Type=%s: no such backend in this build of renewd",
                        cc->type ? cc->type : "(none)");
  struct chan *ch = calloc(1, sizeof *ch);
  if (!ch)
    return -ENOMEM;
  ch->d = d;
  ch->ops = ops;
  ch->retry_min = TIME_NEVER;
  int r;
  if (!(ch->name = strdup(cc->name))) {
    r = -ENOMEM;
    goto fail;
  }
  if ((r = ops->check_config(cc, env, errs)) < 0 ||
      (r = dispatch_parse_settings(cc, ops, &ch->set, errs)) < 0)
    goto fail;
  if ((r = ops->new (cc, env, &ch->state, errs)) < 0)
    goto fail;
  if (!(ch->pool = calloc(ch->set.max_concurrent, sizeof *ch->pool))) {
    r = -ENOMEM;
    goto fail;
  }
  ch->capacity = ch->set.rate > 0 ? MAX(1.0, ch->set.rate) : 0;
  ch->tokens = ch->capacity;
  ch->tokens_at = dispatch_now(d);
  ch->probe_interval = ch->set.probe_interval;
  *ret = ch;
  return 0;
fail:
  chan_free(ch);
  return r;
}

/* Builds the channels of cfg into a new array. */
static int chans_build(struct dispatcher *d, const struct config *cfg, struct render *rd,
                       struct chan ***ret, size_t *ret_n, struct config_errors *errs) {
  struct notify_env env = {.cfg = cfg, .templates = render_templates(rd)};
  struct chan **v = calloc(cfg->n_channels ? cfg->n_channels : 1, sizeof *v);
  if (!v)
    return -ENOMEM;
  int r = 0;
  size_t n = 0;
  for (size_t i = 0; i < cfg->n_channels; i++) {
    struct chan *ch = NULL;
    int q = chan_new(d, &cfg->channels[i], &env, &ch, errs);
    if (q < 0) {
      r = r < 0 ? r : q;
      continue;
    }
    v[n++] = ch;
  }
  if (r < 0) {
    for (size_t i = 0; i < n; i++)
      chan_free(v[i]);
    free(v);
    return r;
  }
  *ret = v;
  *ret_n = n;
  return 0;
}

/* ---- curl glue ------------------------------------------------------------------------- */

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
  struct dispatcher *d = userp;
  return d->loop_ops && d->loop_ops->watch && d->loop_ops->watch(d->loop, s, what) < 0 ? -1 : 0;
}

/* The loop's single timer serves two masters: curl's timeout and our
 * deferred completion check (check_pending: results of every transfer that
 * finished in this loop round are committed together, one transaction). */
static int arm_timer(struct dispatcher *d) {
  if (!d->loop_ops || !d->loop_ops->timer)
    return 0;
  long ms = -1;
  int64_t now_ms = clock_monotonic_ms();
  if (d->check_pending)
    ms = 0;
  else if (d->curl_deadline_ms >= 0)
    ms = (long)MAX(d->curl_deadline_ms - now_ms, 0);
  if (d->busy_due_ms >= 0) {
    long busy = (long)MAX(d->busy_due_ms - now_ms, 0);
    ms = ms < 0 ? busy : MIN(ms, busy);
  }
  return d->loop_ops->timer(d->loop, ms);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
  struct dispatcher *d = userp;
  d->curl_deadline_ms = timeout_ms < 0 ? -1 : clock_monotonic_ms() + timeout_ms;
  return arm_timer(d) < 0 ? -1 : 0;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata) {
  struct notify_xfer *nx = userdata;
  size_t n = size * nmemb;
  if (nx->response.len < NOTIFY_RESPONSE_MAX)
    (void)buf_append(&nx->response, ptr, MIN(n, NOTIFY_RESPONSE_MAX - nx->response.len));
  return n;
}

static size_t header_cb(char *buffer, size_t size, size_t nitems, void *userdata) {
  struct notify_xfer *nx = userdata;
  size_t n = size * nitems;
  if (n > 12 && strncasecmp(buffer, "Retry-After:", 12) == 0) {
    char v[96];
    size_t len = MIN(n - 12, sizeof v - 1);
    memcpy(v, buffer + 12, len);
    v[len] = 0;
    int64_t secs;
    if (notify_parse_retry_after(v, nx->now, &secs) >= 0)
      nx->retry_after = secs;
  } else if (n >= 5 && strncmp(buffer, "HTTP/", 5) == 0)
    nx->retry_after = 0; /* a new response (after 100 Continue or a redirect) */
  return n;
}

static size_t read_cb(char *buffer, size_t size, size_t nitems, void *userdata) {
  struct notify_xfer *nx = userdata;
  size_t room = size * nitems, left = nx->request.len - MIN(nx->upload_off, nx->request.len);
  size_t n = MIN(room, left);
  if (n > 0)
    memcpy(buffer, nx->request.data + nx->upload_off, n);
  nx->upload_off += n;
  return n;
}

void dispatch_nx_done(struct notify_xfer *nx) {
  curl_slist_free_all(nx->headers);
  curl_slist_free_all(nx->recipients);
  buf_free(&nx->request);
  buf_free(&nx->response);
  if (nx->backend_free && nx->backend_data)
    nx->backend_free(nx->backend_data);
  *nx = (struct notify_xfer){0};
}

/* Options every transfer gets; the backend's prepare() adds its own. */
void dispatch_easy_common(CURL *e, const struct chan_settings *s, struct notify_xfer *nx,
                          void *priv) {
  curl_easy_setopt(e, CURLOPT_PRIVATE, priv);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, s->timeout_ms);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, nx->curl_error);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, nx);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, nx);
  curl_easy_setopt(e, CURLOPT_USERAGENT,
                   "renewd/"
                   "0.1");
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https,smtp,smtps");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
}

static int nx_prereq(void *clientp, char *primary_ip, char *local_ip, int primary_port,
                     int local_port) {
  struct notify_xfer *nx = clientp;
  return nx->prereq ? nx->prereq(nx, primary_ip) : CURL_PREREQFUNC_OK;
}

/* After prepare(): wires the xfer's lists and upload. */
void dispatch_easy_wire(CURL *e, struct notify_xfer *nx) {
  curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, nx_prereq);
  curl_easy_setopt(e, CURLOPT_PREREQDATA, nx);
  if (nx->headers)
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, nx->headers);
  if (nx->recipients)
    curl_easy_setopt(e, CURLOPT_MAIL_RCPT, nx->recipients);
  if (nx->upload) {
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(e, CURLOPT_READDATA, nx);
    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)nx->request.len);
  }
}

static CURL *pool_get(struct chan *ch) {
  if (ch->n_pool > 0)
    return ch->pool[--ch->n_pool];
  return curl_easy_init();
}

void dispatch_pool_put(struct chan *ch, CURL *e) {
  if (!e)
    return;
  if (!ch->retired && ch->n_pool < ch->set.max_concurrent) {
    curl_easy_reset(e);
    ch->pool[ch->n_pool++] = e;
  } else
    curl_easy_cleanup(e);
}

struct xfer *dispatch_xfer_free(struct xfer *x) {
  if (!x)
    return NULL;
  dispatch_nx_done(&x->nx);
  message_clear(&x->msg);
  reminder_clear(&x->row);
  free(x);
  return NULL;
}

/* ---- starting rows ------------------------------------------------------------------ */

static void tokens_refill(struct chan *ch, int64_t now) {
  if (ch->set.rate <= 0)
    return;
  if (now > ch->tokens_at) {
    ch->tokens = MIN(ch->capacity, ch->tokens + (double)(now - ch->tokens_at) * ch->set.rate);
    ch->tokens_at = now;
  }
}

/* Is row still to be sent? 1 yes; 0 no, with the reason in why; < 0 when the
 * store cannot say (then the send goes ahead: the claim is ours). */
static int row_live(struct dispatcher *d, const struct reminder *row, int64_t now, char *why,
                    size_t whylen) {
  _cleanup_(contract_clear) struct contract c = {0};
  int r = store_contract_get(d->store, row->contract_id, &c);
  if (r == -ENOENT) {
    snprintf(why, whylen, "contract no longer in the store");
    return 0;
  }
  if (r < 0)
    return r;
  return lifecycle_reminder_live(&c, row, streq_ptr(row->tier, RENDER_OPS_TIER), now, why, whylen)
             ? 1
             : 0;
}

/* Right before the first byte of the request: the row must still hold our
 * claim without a cancel mark, and its term must still want it. */
static int xfer_prereq(void *clientp, char *primary_ip, char *local_ip, int primary_port,
                       int local_port) {
  struct xfer *x = clientp;
  struct dispatcher *d = x->ch->d;
  if (x->nx.prereq && x->nx.prereq(&x->nx, primary_ip) != CURL_PREREQFUNC_OK)
    return CURL_PREREQFUNC_ABORT;
  _cleanup_(reminder_clear) struct reminder m = {0};
  int r = store_reminder_get(d->store, x->row.id, &m);
  if (r >= 0 && (m.status != REMINDER_SENDING || m.claim != x->row.claim || m.cancel)) {
    snprintf(x->skip_why, sizeof x->skip_why, "%s before the first byte",
             m.cancel ? "cancelled by an answer" : "the claim was lost");
    x->skip = true;
  } else if (r >= 0 && row_live(d, &x->row, dispatch_now(d), x->skip_why, sizeof x->skip_why) == 0)
    x->skip = true;
  return x->skip ? CURL_PREREQFUNC_ABORT : CURL_PREREQFUNC_OK;
}

/* Prepares and starts (or, for synchronous backends, completes) one claimed
 * row. Takes ownership of *row. */
static void start_row(struct dispatcher *d, struct chan *ch, struct reminder *row, int64_t now,
                      struct batch *b) {
  struct notify_result res = {0};
  enum notify_kind kind = ch->ops->send ? notify_kind_of_recipient(row->recipient) : ch->ops->kind;
  struct xfer *x = calloc(1, sizeof *x);
  if (!x) {
    res.status = NOTIFY_TRANSIENT;
    snprintf(res.error, sizeof res.error, "out of memory");
    dispatch_batch_add(b, ch, row, &res, false, false, 0, kind);
    return;
  }
  x->ch = ch;
  x->row = *row;
  *row = (struct reminder){0};
  x->kind = kind;
  x->started_ms = clock_monotonic_ms();
  /* the last attempt's outcome is unknown: ask the provider, send nothing */
  x->lookup = x->row.reconcile && dispatch_chan_can_lookup(ch);

  if (isempty(x->row.recipient)) {
    res.status = NOTIFY_PERMANENT;
    snprintf(res.error, sizeof res.error, "no recipient address");
    goto done;
  }
  if (!x->lookup && row_live(d, &x->row, now, res.error, sizeof res.error) == 0) {
    res.status = NOTIFY_PERMANENT;
    dispatch_batch_add(b, ch, &x->row, &res, true, false, 0, kind);
    dispatch_xfer_free(x);
    return;
  }
  char err[512] = "";
  int r = render_message(d->render, d->store, &x->row, kind, now, &x->msg, err, sizeof err);
  if (r == -ENOENT) {
    res.status = NOTIFY_PERMANENT;
    snprintf(res.error, sizeof res.error, "%s", *err ? err : "contract no longer in the store");
    dispatch_batch_add(b, ch, &x->row, &res, true, false, 0, kind);
    dispatch_xfer_free(x);
    return;
  }
  if (r < 0) {
    res.status = r == -EINVAL || r == -ELOOP ? NOTIFY_PERMANENT : NOTIFY_TRANSIENT;
    snprintf(res.error, sizeof res.error, "rendering failed: %s", *err ? err : strerror(-r));
    goto done;
  }
  if (!x->lookup && x->msg.suppressed) { /* the address asked for nothing more, or bounced */
    res.status = NOTIFY_PERMANENT;
    snprintf(res.error, sizeof res.error, "%s", x->msg.suppressed);
    dispatch_batch_add(b, ch, &x->row, &res, true, false, 0, kind);
    dispatch_xfer_free(x);
    return;
  }
  /* opted out since the row was planned? */
  if (!x->lookup && streq_ptr(x->row.audience, "customer") &&
      !streq_ptr(x->row.tier, RENDER_OPS_TIER) &&
      (x->msg.customer_optout & notify_optout_bit(kind))) {
    res.status = NOTIFY_PERMANENT;
    snprintf(res.error, sizeof res.error, "customer opted out of %s since the reminder was planned",
             kind == NOTIFY_SMS       ? "SMS"
             : kind == NOTIFY_WEBHOOK ? "webhooks"
                                      : "email");
    dispatch_batch_add(b, ch, &x->row, &res, true, false, 0, kind);
    dispatch_xfer_free(x);
    return;
  }
  if (ch->ops->send) {
    x->req = (struct notify_request){.row = &x->row, .msg = &x->msg, .kind = kind, .now = now};
    ch->ops->send(ch->state, &x->req, &res);
    goto done_breaker;
  }

  x->easy = pool_get(ch);
  if (!x->easy) {
    res.status = NOTIFY_TRANSIENT;
    snprintf(res.error, sizeof res.error, "cannot create a curl handle");
    goto done;
  }
  x->nx.now = now;
  dispatch_easy_common(x->easy, &ch->set, &x->nx, x);
  x->req = (struct notify_request){.row = &x->row, .msg = &x->msg, .kind = kind, .now = now};
  if ((x->lookup ? ch->ops->lookup_prepare : ch->ops->prepare)(ch->state, &x->req, x->easy, &x->nx,
                                                               &res) < 0) {
    dispatch_pool_put(ch, x->easy);
    x->easy = NULL;
    goto done;
  }
  dispatch_easy_wire(x->easy, &x->nx);
  if (!x->lookup) { /* a lookup sends nothing: it may run for a cancelled row */
    curl_easy_setopt(x->easy, CURLOPT_PREREQFUNCTION, xfer_prereq);
    curl_easy_setopt(x->easy, CURLOPT_PREREQDATA, x);
  }
  x->tx_gen = d->tx_depth > 0 && d->tx_ok ? d->tx_gen : 0;
  if (curl_multi_add_handle(d->multi, x->easy) != CURLM_OK) {
    dispatch_pool_put(ch, x->easy);
    x->easy = NULL;
    res.status = NOTIFY_TRANSIENT;
    snprintf(res.error, sizeof res.error, "cannot start the transfer");
    goto done;
  }
  ch->in_flight++;
  d->in_flight++;
  x->next = d->xfers;
  if (d->xfers)
    d->xfers->prev = x;
  d->xfers = x;
  return;

done_breaker:
  dispatch_batch_add(b, ch, &x->row, &res, false, true, clock_monotonic_ms() - x->started_ms, kind);
  dispatch_xfer_free(x);
  return;
done:
  if (dispatch_batch_add(b, ch, &x->row, &res, false, false, clock_monotonic_ms() - x->started_ms,
                         kind) >= 0 &&
      x->lookup) {
    b->v[b->n - 1].is_lookup = true;
    b->v[b->n - 1].lookup = NOTIFY_LOOKUP_FAILED;
  }
  dispatch_xfer_free(x);
}

/* ---- claiming ---------------------------------------------------------------------------- */

struct claimed {
  struct reminder *v;
  size_t n, cap;
};

static int reminder_dup(const struct reminder *src, struct reminder *dst) {
  *dst = *src;
  dst->contract_id = strdup_or_null(src->contract_id);
  dst->tier = strdup_or_null(src->tier);
  dst->channel = strdup_or_null(src->channel);
  dst->audience = strdup_or_null(src->audience);
  dst->recipient = strdup_or_null(src->recipient);
  dst->last_error = strdup_or_null(src->last_error);
  dst->provider_id = strdup_or_null(src->provider_id);
  if ((src->contract_id && !dst->contract_id) || (src->tier && !dst->tier) ||
      (src->channel && !dst->channel) || (src->audience && !dst->audience) ||
      (src->recipient && !dst->recipient) || (src->last_error && !dst->last_error) ||
      (src->provider_id && !dst->provider_id)) {
    reminder_clear(dst);
    return -ENOMEM;
  }
  return 0;
}

static int claim_cb(const struct reminder *r, void *ud) {
  struct claimed *c = ud;
  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 16;
    struct reminder *v = realloc(c->v, cap * sizeof *v);
    if (!v)
      return -ENOMEM;
    c->v = v;
    c->cap = cap;
  }
  int r2 = reminder_dup(r, &c->v[c->n]);
  if (r2 < 0)
    return r2;
  c->n++;
  return 0;
}

/* Claims what channel ch may start now and starts it. */
static void chan_kick(struct dispatcher *d, struct chan *ch, int64_t now, struct batch *b) {
  if (ch->retired || d->stopping)
    return;
  if (ch->held > 0) {
    ch->backlog = true; /* its results are written first, then the timer claims again */
    d->claim_busy = true;
    return;
  }
  unsigned rounds = ch->ops->send ? SYNC_BATCHES_PER_KICK : 1;
  for (unsigned round = 0; round < rounds; round++) {
    size_t max;
    bool probe = false;
    if (ch->open) {
      if (ch->probing || now < ch->probe_at)
        return;
      max = 1;
      probe = true;
    } else if (ch->ops->send)
      max = ch->set.max_concurrent;
    else {
      if (ch->in_flight >= ch->set.max_concurrent)
        return;
      max = ch->set.max_concurrent - ch->in_flight;
    }
    if (ch->set.rate > 0) {
      tokens_refill(ch, now);
      size_t t = ch->tokens >= 1 ? (size_t)floor(ch->tokens) : 0;
      if (t == 0) {
        ch->backlog = true;
        return;
      }
      max = MIN(max, t);
    }
    struct claimed rows = {0};
    int n = store_reminder_claim_lease(d->store, ch->name, now, now + chan_lease(ch), d->owner, max,
                                       claim_cb, &rows);
    if (n < 0) {
      /* rows claimed before the failure are 'sending' under a lease that
       * the sweep recovers when it ends; try again at the next kick */
      for (size_t i = 0; i < rows.n; i++)
        reminder_clear(&rows.v[i]);
      free(rows.v);
      if (n == -EBUSY) {
        /* another process holds the write lock: claim again from the timer */
        ch->backlog = true;
        d->claim_busy = true;
        dispatch_busy(d);
        return;
      }
      ch->backlog = false;
      ch->retry_min = MAX(ch->retry_min, now + 1);
      return;
    }
    if (ch->set.rate > 0)
      ch->tokens -= (double)rows.n;
    ch->backlog = (size_t)n >= max;
    if (!ch->backlog && ch->retry_min <= now)
      d->retry_dirty = true;
    if (probe && rows.n > 0) {
      ch->probing = true;
      ch->probe_row = rows.v[0].id;
    }
    for (size_t i = 0; i < rows.n; i++)
      start_row(d, ch, &rows.v[i], now, b);
    free(rows.v);
    if (!ch->backlog || probe)
      break;
  }
}

/* Recomputes each channel's earliest retry instant from the store (one
 * index read per channel, not a walk of every retry row). */
static void retry_recompute(struct dispatcher *d, int64_t now) {
  for (size_t i = 0; i < d->n_chans; i++) {
    struct chan *ch = d->chans[i];
    int64_t t;
    int r = store_reminder_next_retry(d->store, ch->name, &t);
    ch->retry_min = r >= 0 ? t : r == -ENOENT ? TIME_NEVER : now + 1; /* failed: look again soon */
  }
  d->retry_dirty = false;
}

static void free_retired(struct dispatcher *d) {
  for (struct chan **p = &d->retired; *p;) {
    if ((*p)->in_flight == 0 && (*p)->held == 0) {
      struct chan *ch = *p;
      *p = ch->next_retired;
      chan_free(ch);
    } else
      p = &(*p)->next_retired;
  }
}

/* A failed transfer whose request may have reached the receiver: it was
 * sent (in part or whole) and no answer came back. */
static bool outcome_unknown(CURL *easy, CURLcode code) {
  long sent = 0;
  curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &sent);
  if (sent <= 0)
    return false;
  switch (code) {
  case CURLE_OPERATION_TIMEDOUT:
  case CURLE_GOT_NOTHING:
  case CURLE_RECV_ERROR:
  case CURLE_SEND_ERROR:
  case CURLE_PARTIAL_FILE:
    return true;
  default:
    return false;
  }
}

/* Collects finished transfers, commits their results, starts more. */
static void check_done(struct dispatcher *d) {
  struct batch b = {0};
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(d->multi, &left))) {
    if (m->msg != CURLMSG_DONE)
      continue;
    CURL *easy = m->easy_handle;
    CURLcode code = m->data.result;
    struct xfer *x = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    curl_multi_remove_handle(d->multi, easy);
    if (!x)
      continue;
    struct notify_result res = {0};
    bool breaker = true, skipped = false, unknown = false, is_lookup = x->lookup;
    enum notify_lookup lookup = NOTIFY_LOOKUP_FAILED;
    if (x->skip) {
      res.status = NOTIFY_PERMANENT;
      snprintf(res.error, sizeof res.error, "%s", x->skip_why);
      breaker = false;
      skipped = true;
    } else if (x->nx.refused) {
      res.status = NOTIFY_PERMANENT;
      snprintf(res.error, sizeof res.error, "%s", x->nx.refused_why);
      breaker = false;
    } else if (x->lookup) {
      lookup = x->ch->ops->lookup_finish(x->ch->state, &x->req, easy, &x->nx, code, &res);
      breaker = false;
    } else {
      x->ch->ops->finish(x->ch->state, &x->req, easy, &x->nx, code, &res);
      unknown = x->kind == NOTIFY_SMS && outcome_unknown(easy, code);
    }
    if (x->prev)
      x->prev->next = x->next;
    else
      d->xfers = x->next;
    if (x->next)
      x->next->prev = x->prev;
    x->ch->in_flight--;
    d->in_flight--;
    dispatch_pool_put(x->ch, easy);
    x->easy = NULL;
    if (dispatch_batch_add(&b, x->ch, &x->row, &res, skipped, breaker,
                           clock_monotonic_ms() - x->started_ms, x->kind) >= 0) {
      b.v[b.n - 1].unknown = unknown;
      b.v[b.n - 1].is_lookup = is_lookup;
      b.v[b.n - 1].lookup = lookup;
    }
    dispatch_xfer_free(x);
  }
  if (b.n == 0)
    return;
  /* one transaction: these results and the claims refilling the freed slots */
  struct batch later = {0};
  dispatch_tx_begin(d);
  dispatch_batch_stage(d, &b);
  if (!d->in_kick) {
    d->in_kick = true;
    int64_t now = dispatch_now(d);
    for (size_t i = 0; i < d->n_chans; i++) {
      struct chan *ch = d->chans[i];
      if (ch->backlog || ch->retry_min <= now || (ch->open && !ch->probing && ch->probe_at <= now))
        chan_kick(d, ch, now, &later);
    }
    d->in_kick = false;
  }
  dispatch_tx_end(d);
  dispatch_batch_apply(d, &later); /* synchronous sends and rows that failed before sending */
  free_retired(d);
}

/* ---- leases ---------------------------------------------------------------------------- */

static struct xfer *xfer_find(struct dispatcher *d, int64_t id) {
  for (struct xfer *x = d->xfers; x; x = x->next)
    if (x->row.id == id)
      return x;
  return NULL;
}

/* Keeps the leases of our transfers ahead of the sweep (ours and any other
 * instance's): renewed once half of the lease is gone. */
static void leases_renew(struct dispatcher *d, int64_t now) {
  for (struct xfer *x = d->xfers; x; x = x->next) {
    int64_t lease = chan_lease(x->ch);
    if (x->row.claimed_until - now > lease / 2)
      continue;
    if (store_reminder_renew(d->store, x->row.id, x->row.claim, now + lease, now) >= 0)
      x->row.claimed_until = now + lease;
  }
  /* results a locked store keeps waiting: their rows stay ours meanwhile */
  for (size_t i = 0; i < d->n_held; i++) {
    struct reminder *row = &d->held[i].o.row;
    int64_t lease = chan_lease(d->held[i].o.ch);
    if (row->claimed_until - now > lease / 2)
      continue;
    if (store_reminder_renew(d->store, row->id, row->claim, now + lease, now) >= 0)
      row->claimed_until = now + lease;
  }
}

static struct reminder *held_find(struct dispatcher *d, int64_t id, int64_t claim,
                                  struct chan **ret_ch) {
  for (size_t i = 0; i < d->n_held; i++)
    if (d->held[i].o.row.id == id && d->held[i].o.row.claim == claim) {
      *ret_ch = d->held[i].o.ch;
      return &d->held[i].o.row;
    }
  return NULL;
}

struct sweep {
  struct dispatcher *d;
  int64_t now;
  unsigned recovered;
};

/* The unknown-outcome policy of one row whose claim ended without a result:
 * email and webhooks are resent with the same key (Message-ID, webhook-id:
 * the receiver can drop a repeat); an SMS is not (the provider keeps no
 * key), it becomes 'unknown' for ops. */
static int sweep_cb(const struct reminder *r, void *ud) {
  struct sweep *w = ud;
  struct dispatcher *d = w->d;
  struct xfer *x = xfer_find(d, r->id);
  if (x && x->row.claim == r->claim) {
    /* still ours and running: the lease ran out under a busy loop */
    int64_t lease = chan_lease(x->ch);
    if (store_reminder_renew(d->store, r->id, r->claim, w->now + lease, w->now) >= 0)
      x->row.claimed_until = w->now + lease;
    return 0;
  }
  struct chan *hch = NULL;
  struct reminder *held = held_find(d, r->id, r->claim, &hch);
  if (held) {
    /* finished, its result waits for a locked store: still ours */
    int64_t lease = chan_lease(hch);
    if (store_reminder_renew(d->store, r->id, r->claim, w->now + lease, w->now) >= 0)
      held->claimed_until = w->now + lease;
    return 0;
  }
  struct chan *ch = dispatch_chan_find(d, r->channel);
  bool sms = ch && !ch->ops->send && ch->ops->kind == NOTIFY_SMS;
  char why[256];
  snprintf(why, sizeof why, "%s",
           sms ? "the claim ended without a result (renewd stopped or "
                 "crashed mid-transfer); an SMS is not resent blindly"
               : "the claim ended without a result (renewd stopped or "
                 "crashed mid-transfer): resent with the same key");
  int k;
  if (sms && dispatch_chan_can_lookup(ch)) {
    snprintf(why, sizeof why,
             "the claim ended without a result (renewd stopped or crashed "
             "mid-transfer): looking it up at the provider before any resend");
    k = store_reminder_reconcile_later(d->store, r->id, r->claim, w->now, why, w->now, NULL);
  } else
    k = store_reminder_recover_row(d->store, r->id, r->claim,
                                   sms ? REMINDER_UNKNOWN : REMINDER_RETRY, w->now,
                                   sms ? why : NULL, w->now);
  if (k == -ESTALE)
    return 0;
  if (k < 0)
    return k;
  w->recovered++;
  struct reminder m = {0};
  if (store_reminder_get(d->store, r->id, &m) >= 0) {
    if (m.status == REMINDER_UNKNOWN)
      dispatch_report(d, DISPATCH_UNKNOWN, &m, NULL, why, 0, 0);
    else if (m.status == REMINDER_CANCELLED)
      dispatch_report(d, DISPATCH_CANCELLED, &m, NULL, "the attempt in flight: outcome unknown", 0,
                      0);
    reminder_clear(&m);
  }
  if (ch) {
    ch->backlog = true;
    ch->retry_min = MIN(ch->retry_min, w->now);
  }
  return 0;
}

/* Settles 'sending' rows whose lease ended before `before` (TIME_NEVER:
 * all). Returns how many, or -errno. */
static int leases_sweep(struct dispatcher *d, int64_t now, int64_t before) {
  struct sweep w = {.d = d, .now = now};
  int r = store_reminder_foreach_expired(d->store, before, SWEEP_BATCH, sweep_cb, &w);
  if (r < 0)
    return r;
  if (r >= SWEEP_BATCH)
    d->next_sweep = now; /* more: the next kick goes on */
  d->retry_dirty = d->retry_dirty || w.recovered > 0;
  return (int)w.recovered;
}

static void leases_maintain(struct dispatcher *d, int64_t now) {
  if (now < d->next_sweep)
    return;
  d->next_sweep = now + DISPATCH_SWEEP_INTERVAL;
  leases_renew(d, now);
  (void)leases_sweep(d, now, now);
}

/* ---- a store locked by another process --------------------------------------------------- */

/* The loop's connection never waits for the write lock (busy timeout 0):
 * held results and claims that met -EBUSY are tried again from the
 * dispatcher's timer, BUSY_RETRY_MIN_MS doubling to BUSY_RETRY_MAX_MS. */
void dispatch_busy(struct dispatcher *d) {
  int64_t now_ms = clock_monotonic_ms();
  if (!d->busy_episode) {
    d->busy_episode = true;
    d->busy_since_ms = now_ms;
    dispatch_report(d, DISPATCH_STORE_BUSY, NULL, NULL,
                    "another process holds the store's write lock: results of finished "
                    "transfers and new claims wait, retried from a timer",
                    0, 0);
  }
  if (d->busy_due_ms >= 0 && d->busy_due_ms > now_ms)
    return; /* a retry is armed already */
  d->busy_ms = d->busy_ms ? MIN(d->busy_ms * 2, (unsigned)BUSY_RETRY_MAX_MS) : BUSY_RETRY_MIN_MS;
  d->busy_due_ms = now_ms + d->busy_ms;
  arm_timer(d);
}

/* The busy retry is due: held results first, then the claims. */
static void busy_retry(struct dispatcher *d) {
  d->busy_due_ms = -1;
  bool done = dispatch_held_flush(d);
  if (done && d->claim_busy && !d->in_kick) {
    d->claim_busy = false;
    dispatcher_kick(d); /* sets claim_busy again when the store is still locked */
  }
  if (!done || d->claim_busy || d->n_held > 0) {
    dispatch_busy(d);
    return;
  }
  d->busy_ms = 0;
  free_retired(d); /* a reload may have retired channels that only kept results */
  if (d->busy_episode) {
    d->busy_episode = false;
    dispatch_report(d, DISPATCH_STORE_FREE, NULL, NULL,
                    "the store's write lock is free again: kept results written", 0,
                    clock_monotonic_ms() - d->busy_since_ms);
  }
}

/* ---- public API ---------------------------------------------------------------------- */

void dispatcher_kick(struct dispatcher *d) {
  if (!d || d->in_kick)
    return;
  if (d->n_held > 0)
    (void)dispatch_held_flush(d); /* results first: a channel with some left claims nothing */
  d->in_kick = true;
  int64_t now = dispatch_now(d);
  d->last_poll = now;
  struct batch b = {0};
  dispatch_tx_begin(d);
  leases_maintain(d, now);
  for (size_t i = 0; i < d->n_chans; i++)
    chan_kick(d, d->chans[i], now, &b);
  dispatch_tx_end(d);
  dispatch_batch_apply(d, &b);
  d->in_kick = false;
}

void dispatcher_socket_ready(struct dispatcher *d, int fd, int events) {
  if (!d)
    return;
  int running = 0;
  curl_multi_socket_action(d->multi, fd, events, &running);
  /* collect finished transfers once the loop has served every ready socket */
  if (!d->check_pending) {
    d->check_pending = true;
    arm_timer(d);
  }
}

void dispatcher_timeout(struct dispatcher *d) {
  if (!d)
    return;
  int running = 0;
  d->check_pending = false;
  /* curl's timer is one-shot: once due it is consumed (curl re-arms it
   * through timer_cb when it wants another). Early calls (for the pending
   * check) are harmless: curl runs only the timers that expired. */
  if (d->curl_deadline_ms >= 0 && d->curl_deadline_ms <= clock_monotonic_ms())
    d->curl_deadline_ms = -1;
  curl_multi_socket_action(d->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  if (d->busy_due_ms >= 0 && d->busy_due_ms <= clock_monotonic_ms())
    busy_retry(d);
  check_done(d);
  arm_timer(d);
}

size_t dispatcher_in_flight(const struct dispatcher *d) {
  return d ? d->in_flight + d->n_held : 0;
}

int64_t dispatcher_next_wakeup(struct dispatcher *d) {
  if (!d)
    return TIME_NEVER;
  int64_t now = dispatch_now(d);
  if (d->retry_dirty)
    retry_recompute(d, now);
  int64_t t = TIME_NEVER;
  for (size_t i = 0; i < d->n_chans; i++) {
    struct chan *ch = d->chans[i];
    if (ch->held > 0 || d->claim_busy)
      continue; /* the store is locked: the busy timer writes the results, then claims */
    if (ch->open) {
      if (!ch->probing)
        t = MIN(t, ch->probe_at);
      continue;
    }
    if (!ch->ops->send && ch->in_flight >= ch->set.max_concurrent)
      continue; /* a completion starts the next one */
    if (ch->backlog) {
      if (ch->set.rate > 0) {
        tokens_refill(ch, now);
        if (ch->tokens < 1) {
          int64_t wait = (int64_t)ceil((1.0 - ch->tokens) / ch->set.rate);
          t = MIN(t, ch->tokens_at + MAX(wait, 1));
          continue;
        }
      }
      t = MIN(t, now);
      continue;
    }
    t = MIN(t, ch->retry_min);
  }
  if (d->stopping)
    return TIME_NEVER;
  if (!d->clock->simulated)
    t = MIN(t, MIN(d->last_poll + POLL_INTERVAL, d->next_sweep));
  return t;
}

int dispatcher_recover(struct dispatcher *d) {
  if (!d)
    return -EINVAL;
  int64_t now = dispatch_now(d);
  int n = 0, r;
  bool tx = store_begin(d->store) >= 0;
  do {
    r = leases_sweep(d, now, TIME_NEVER);
    n += r > 0 ? r : 0;
  } while (r >= SWEEP_BATCH);
  if (tx && (r < 0 ? store_rollback(d->store) : store_commit(d->store)) < 0 && r >= 0)
    r = -EIO;
  d->next_sweep = now + DISPATCH_SWEEP_INTERVAL;
  d->retry_dirty = true;
  return r < 0 ? r : n;
}

void dispatcher_stop(struct dispatcher *d) {
  if (d)
    d->stopping = true;
}

size_t dispatcher_abort(struct dispatcher *d) {
  if (!d)
    return 0;
  size_t n = 0;
  while (d->xfers) {
    dispatch_xfer_drop(d, d->xfers);
    n++;
  }
  n += dispatch_held_drop(d);
  d->claim_busy = false;
  d->busy_due_ms = -1;
  free_retired(d);
  return n;
}

int dispatcher_new(struct store *store, struct cal *cal, const struct config *cfg,
                   const struct clock *clock, const struct dispatch_loop_ops *ops, void *loop,
                   const struct dispatch_callbacks *cbs, struct dispatcher **ret,
                   struct config_errors *errs) {
  if (!store || !cal || !cfg || !clock || !ret)
    return -EINVAL;
  struct dispatcher *d = calloc(1, sizeof *d);
  if (!d)
    return -ENOMEM;
  d->store = store;
  d->cal = cal;
  d->cfg = cfg;
  d->clock = clock;
  d->loop_ops = ops;
  d->loop = loop;
  if (cbs)
    d->cbs = *cbs;
  if (getrandom(&d->rng, sizeof d->rng, 0) != sizeof d->rng || d->rng == 0)
    d->rng = (uint64_t)clock_monotonic_ms() * 0x9E3779B97F4A7C15ull | 1;
  d->retry_dirty = true;
  d->last_poll = dispatch_now(d);
  d->next_sweep = d->last_poll + DISPATCH_SWEEP_INTERVAL;
  d->curl_deadline_ms = -1;
  d->busy_due_ms = -1;
  char host[64] = "";
  if (gethostname(host, sizeof host - 1) < 0)
    snprintf(host, sizeof host, "localhost");
  snprintf(d->owner, sizeof d->owner, "%s:%ld", host, (long)getpid());
  char err[512] = "";
  int r = render_new(cfg, cal, &d->render, err, sizeof err);
  if (r < 0) {
    config_errors_add(errs, cfg->n_files ? cfg->files[0] : "?", 0, "Templates=: %s",
                      *err ? err : strerror(-r));
    goto fail;
  }
  if ((r = chans_build(d, cfg, d->render, &d->chans, &d->n_chans, errs)) < 0)
    goto fail;
  if (!(d->multi = curl_multi_init())) {
    r = -ENOMEM;
    goto fail;
  }
  long maxconn = 0;
  for (size_t i = 0; i < d->n_chans; i++)
    if (!d->chans[i]->ops->send)
      maxconn += d->chans[i]->set.max_concurrent;
  curl_multi_setopt(d->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
  curl_multi_setopt(d->multi, CURLMOPT_SOCKETDATA, d);
  curl_multi_setopt(d->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(d->multi, CURLMOPT_TIMERDATA, d);
  curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS, MAX(maxconn, 8L));
  *ret = d;
  return 0;
fail:
  dispatcher_free(d);
  return r;
}

struct dispatcher *dispatcher_free(struct dispatcher *d) {
  if (!d)
    return NULL;
  if (d->multi) {
    /* the loop's watches may be gone already: no more callbacks */
    curl_multi_setopt(d->multi, CURLMOPT_SOCKETFUNCTION, NULL);
    curl_multi_setopt(d->multi, CURLMOPT_TIMERFUNCTION, NULL);
  }
  /* transfers in flight are abandoned: their rows stay 'sending' under
   * their lease and are settled by dispatcher_recover() at the next start */
  while (d->xfers) {
    struct xfer *x = d->xfers;
    d->xfers = x->next;
    if (x->easy) {
      curl_multi_remove_handle(d->multi, x->easy);
      curl_easy_cleanup(x->easy);
      x->easy = NULL;
    }
    x->ch->in_flight--;
    dispatch_xfer_free(x);
  }
  (void)dispatch_held_drop(d); /* their rows stay 'sending' under their lease */
  free(d->held);
  for (size_t i = 0; i < d->n_chans; i++)
    chan_free(d->chans[i]);
  free(d->chans);
  while (d->retired) {
    struct chan *ch = d->retired;
    d->retired = ch->next_retired;
    chan_free(ch);
  }
  if (d->multi)
    curl_multi_cleanup(d->multi);
  free(d->staged);
  render_free(d->render);
  free(d);
  return NULL;
}

int dispatcher_set_config(struct dispatcher *d, const struct config *cfg,
                          struct config_errors *errs) {
  if (!d || !cfg)
    return -EINVAL;
  struct render *rd = NULL;
  char err[512] = "";
  int r = render_new(cfg, d->cal, &rd, err, sizeof err);
  if (r < 0) {
    config_errors_add(errs, cfg->n_files ? cfg->files[0] : "?", 0, "Templates=: %s",
                      *err ? err : strerror(-r));
    return -EINVAL;
  }
  struct chan **v = NULL;
  size_t n = 0;
  r = chans_build(d, cfg, rd, &v, &n, errs);
  if (r < 0) {
    render_free(rd);
    return r == -ENOMEM ? r : -EINVAL;
  }
  for (size_t i = 0; i < n; i++) {
    struct chan *old = dispatch_chan_find(d, v[i]->name);
    if (!old)
      continue;
    v[i]->failures = old->failures;
    v[i]->open = old->open;
    v[i]->probe_at = old->probe_at;
    v[i]->probe_interval = old->open ? old->probe_interval : v[i]->set.probe_interval;
    v[i]->tokens = MIN(old->tokens, v[i]->capacity);
    v[i]->tokens_at = old->tokens_at;
  }
  for (size_t i = 0; i < d->n_chans; i++) {
    struct chan *old = d->chans[i];
    if (old->in_flight == 0 && old->held == 0)
      chan_free(old);
    else {
      old->retired = true;
      old->next_retired = d->retired;
      d->retired = old;
    }
  }
  free(d->chans);
  d->chans = v;
  d->n_chans = n;
  for (size_t i = 0; i < n; i++)
    v[i]->backlog = true;
  render_free(d->render);
  d->render = rd;
  d->cfg = cfg;
  d->retry_dirty = true;
  return 0;
}
