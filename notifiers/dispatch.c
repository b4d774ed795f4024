/* dispatch: delivers due outbox rows through the channel backends (see
 * dispatch.h for the contract and docs/delivery.md for the guarantees).
 *
 * Per channel (struct chan) it keeps the backend instance, a pool of curl
 * easy handles, the transfers in flight (at most MaxConcurrent=), a token
 * bucket (RatePerSecond=/RatePerMinute=), a circuit breaker and the earliest
 * retry instant of its rows. A row's life here:
 *
 *   claim (store_reminder_claim: the row is 'sending', committed, before any
 *   byte leaves) → render (notifiers/render.c) → opt-out check → backend:
 *   synchronous send() or a curl transfer on the multi handle → result
 *   classified (sent / transient / permanent) → committed in a batch with the
 *   other results of the same loop callback: sent | retry (exponential
 *   backoff, full jitter, Retry-After as a minimum) | dead (then a row on the
 *   tier's next Fallback= channel and an "ops-alert" row on [Ops]
 *   AlertChannel=) → reported to the daemon.
 *
 * The event loop is the daemon's: curl's socket and timer callbacks go to
 * struct dispatch_loop_ops; readiness comes back via dispatcher_socket_ready()
 * and dispatcher_timeout(). Socket readiness only drives curl; finished
 * transfers are collected at the (zero) timeout that follows, so everything
 * that completed in one loop round, and the claims refilling the freed slots,
 * share ONE store transaction (tx_begin/tx_end), committed before control
 * returns to the loop, i.e. before the new transfers' first byte. Every
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

#include "core/util.h"
#include "notifiers/notifier.h"
#include "notifiers/render.h"
#include "notifiers/smstext.h"

#define SYNC_BATCHES_PER_KICK 4 /* claims per kick for synchronous backends, then yield */
#define PROBE_INTERVAL_MAX 600  /* seconds: probes back off up to this */
#define POLL_INTERVAL 30        /* real clock: look for rows other processes made due */

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
  bool retired;         /* replaced by a reload: freed when in_flight drops to 0 */
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
  struct xfer *prev, *next; /* d->xfers */
};

/* One finished row, waiting to be committed. */
struct outcome {
  struct chan *ch;
  struct reminder row; /* owned */
  struct notify_result res;
  bool skipped; /* not sent on purpose (res.error says why) */
  bool breaker; /* counts for the circuit breaker (a real attempt at the receiver) */
  int64_t latency_ms;
  enum notify_kind kind;
};

struct batch {
  struct outcome *v;
  size_t n, cap;
};

struct decision;
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
};

/* ---- small helpers ----------------------------------------------------------------- */

static uint64_t rng_next(struct dispatcher *d) {
  uint64_t x = d->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  d->rng = x;
  return x * 0x2545F4914F6CDD1Dull;
}

static int64_t now_s(const struct dispatcher *d) {
  return clock_now(d->clock);
}

static struct chan *chan_find(struct dispatcher *d, const char *name) {
  for (size_t i = 0; i < d->n_chans; i++)
    if (streq(d->chans[i]->name, name))
      return d->chans[i];
  return NULL;
}

static void report(struct dispatcher *d, enum dispatch_outcome o, const struct reminder *row,
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
  ch->tokens_at = now_s(d);
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
  if (d->check_pending)
    ms = 0;
  else if (d->curl_deadline_ms >= 0)
    ms = (long)MAX(d->curl_deadline_ms - clock_monotonic_ms(), 0);
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

/* After prepare(): wires the xfer's lists and upload. */
void dispatch_easy_wire(CURL *e, struct notify_xfer *nx) {
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

static void pool_put(struct chan *ch, CURL *e) {
  if (!e)
    return;
  if (!ch->retired && ch->n_pool < ch->set.max_concurrent) {
    curl_easy_reset(e);
    ch->pool[ch->n_pool++] = e;
  } else
    curl_easy_cleanup(e);
}

static struct xfer *xfer_free(struct xfer *x) {
  if (!x)
    return NULL;
  dispatch_nx_done(&x->nx);
  message_clear(&x->msg);
  reminder_clear(&x->row);
  free(x);
  return NULL;
}

/* ---- batches of results --------------------------------------------------------------- */

static void batch_done(struct batch *b) {
  for (size_t i = 0; i < b->n; i++)
    reminder_clear(&b->v[i].row);
  free(b->v);
  *b = (struct batch){0};
}

/* Takes ownership of *row (it is zeroed). */
static int batch_add(struct batch *b, struct chan *ch, struct reminder *row,
                     const struct notify_result *res, bool skipped, bool breaker,
                     int64_t latency_ms, enum notify_kind kind) {
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 16;
    struct outcome *v = realloc(b->v, cap * sizeof *v);
    if (!v)
      return -ENOMEM;
    b->v = v;
    b->cap = cap;
  }
  b->v[b->n++] = (struct outcome){.ch = ch,
                                  .row = *row,
                                  .res = *res,
                                  .skipped = skipped,
                                  .breaker = breaker,
                                  .latency_ms = latency_ms,
                                  .kind = kind};
  *row = (struct reminder){0};
  return 0;
}

static int64_t backoff(struct dispatcher *d, const struct chan_settings *s, int32_t attempts,
                       int64_t retry_after) {
  int64_t cap = s->retry_base;
  for (int32_t i = 1; i < attempts && cap < s->retry_max; i++)
    cap *= 2;
  cap = MIN(cap, s->retry_max);
  int64_t delay = (int64_t)(rng_next(d) % (uint64_t)(cap + 1)); /* full jitter */
  delay = MAX(delay, 1);
  return MAX(delay, retry_after);
}

static enum notify_kind kind_for_channel(const struct config *cfg, const char *name,
                                         const struct notifier_ops **ret_ops) {
  const struct config_channel *cc = config_channel(cfg, name);
  const struct notifier_ops *ops = cc ? dispatch_backend_for(cc->type) : NULL;
  if (ret_ops)
    *ret_ops = ops;
  return ops ? ops->kind : NOTIFY_EMAIL;
}

struct fallback_scan {
  const char *tier;
  int32_t step;
  const char *channel;
  int found; /* -1 none, else the row's status */
};

static int fallback_scan_cb(const struct reminder *r, void *ud) {
  struct fallback_scan *f = ud;
  if (streq_ptr(r->tier, f->tier) && r->step == f->step && streq_ptr(r->channel, f->channel) &&
      streq_ptr(r->audience, "customer"))
    f->found = (int)r->status;
  return 0;
}

/* A dead customer row: records a pending row on the tier's next Fallback=
 * channel not tried yet. Writes the new channel's name into fb (or ""). */
static int insert_fallback(struct dispatcher *d, const struct reminder *dead, int64_t now, char *fb,
                           size_t fblen) {
  fb[0] = 0;
  struct contract c = {0};
  struct customer cu = {0};
  struct policy *pol = NULL;
  const struct tier *t = NULL;
  int r = store_contract_get(d->store, dead->contract_id, &c);
  if (r < 0)
    return r;
  bool have_cu = c.customer_id && store_customer_get(d->store, c.customer_id, &cu) >= 0;
  r = render_find_tier(d->store, d->cfg, &c, dead->tier, &pol, &t);
  if (r < 0 || t->n_fallback == 0) {
    r = 0;
    goto out;
  }
  for (size_t i = 0; i < t->n_fallback; i++) {
    const char *name = t->fallback[i];
    if (streq(name, dead->channel))
      continue;
    struct fallback_scan scan = {
        .tier = dead->tier, .step = dead->step, .channel = name, .found = -1};
    if ((r = store_reminder_foreach_contract(d->store, c.id, c.term, fallback_scan_cb, &scan)) < 0)
      goto out;
    if (scan.found == REMINDER_DEAD || scan.found == REMINDER_SKIPPED)
      continue; /* tried already: the next one */
    if (scan.found >= 0) {
      r = 0; /* a fallback is under way or done */
      goto out;
    }
    const struct config_channel *cc = config_channel(d->cfg, name);
    enum notify_kind kind = kind_for_channel(d->cfg, name, NULL);
    const char *to = NULL;
    if (kind == NOTIFY_WEBHOOK)
      to = config_channel_get(cc, "URL");
    else if (have_cu && !(cu.optout & notify_optout_bit(kind)))
      to = kind == NOTIFY_SMS ? cu.phone : cu.email;
    if (!cc || isempty(to))
      continue; /* cannot reach the customer there */
    struct reminder nr = {
        .contract_rowid = c.rowid,
        .contract_id = c.id,
        .term = c.term,
        .tier = dead->tier,
        .step = dead->step,
        .channel = (char *)name,
        .audience = (char *)"customer",
        .recipient = (char *)to,
        .due_at = now,
        .status = REMINDER_PENDING,
    };
    r = store_reminder_insert(d->store, &nr, now, NULL);
    if (r == -EEXIST)
      continue;
    if (r < 0)
      goto out;
    snprintf(fb, fblen, "%s", name);
    struct chan *fch = chan_find(d, name);
    if (fch)
      fch->backlog = true;
    r = 1;
    goto out;
  }
  r = 0;
out:
  policy_free(pol);
  contract_clear(&c);
  customer_clear(&cu);
  return r;
}

/* A dead row: records an ops alert row on [Ops] AlertChannel=. */
static int insert_ops_alert(struct dispatcher *d, const struct reminder *dead, int64_t now) {
  const char *name = d->cfg->alert_channel;
  if (isempty(name) || streq_ptr(dead->tier, RENDER_OPS_TIER) || dead->id > INT32_MAX)
    return 0;
  const struct config_channel *cc = config_channel(d->cfg, name);
  if (!cc)
    return 0;
  const struct notifier_ops *ops = NULL;
  enum notify_kind kind = kind_for_channel(d->cfg, name, &ops);
  const char *to = kind == NOTIFY_WEBHOOK ? config_channel_get(cc, "URL")
                   : kind == NOTIFY_SMS   ? config_channel_get(&d->cfg->ops, "Phone")
                                          : config_channel_get(&d->cfg->ops, "Email");
  if (isempty(to) && ops && ops->send)
    to = "ops@localhost"; /* the sink writes it anyway */
  if (isempty(to))
    return 0;
  struct reminder nr = {
      .contract_rowid = dead->contract_rowid,
      .contract_id = dead->contract_id,
      .term = dead->term,
      .tier = (char *)RENDER_OPS_TIER,
      .step = (int32_t)dead->id,
      .channel = (char *)name,
      .audience = (char *)"owner",
      .recipient = (char *)to,
      .due_at = now,
      .status = REMINDER_PENDING,
  };
  int r = store_reminder_insert(d->store, &nr, now, NULL);
  if (r == -EEXIST)
    return 0;
  if (r < 0)
    return r;
  struct chan *ach = chan_find(d, name);
  if (ach)
    ach->backlog = true;
  return 1;
}

/* What an outcome turns into. */
struct decision {
  enum reminder_status status;
  int64_t next; /* retry instant */
  char error[NOTIFY_ERROR_MAX + 64];
  char fallback[128]; /* fallback channel created, "" = none */
  bool alerted;
};

static void decide(struct dispatcher *d, struct outcome *o, int64_t now, struct decision *dc) {
  *dc = (struct decision){0};
  if (o->skipped) {
    dc->status = REMINDER_SKIPPED;
    snprintf(dc->error, sizeof dc->error, "%s", o->res.error);
    return;
  }
  switch (o->res.status) {
  case NOTIFY_SENT:
    dc->status = REMINDER_SENT;
    return;
  case NOTIFY_TRANSIENT:
    if (o->row.attempts >= o->ch->set.max_attempts) {
      dc->status = REMINDER_DEAD;
      snprintf(dc->error, sizeof dc->error, "gave up after %d attempts: %s", o->row.attempts,
               o->res.error);
    } else {
      dc->status = REMINDER_RETRY;
      dc->next = now + backoff(d, &o->ch->set, o->row.attempts, o->res.retry_after);
      snprintf(dc->error, sizeof dc->error, "%s", o->res.error);
    }
    return;
  case NOTIFY_PERMANENT:
    dc->status = REMINDER_DEAD;
    snprintf(dc->error, sizeof dc->error, "%s", o->res.error);
    return;
  }
}

/* Writes one decision (and a dead row's follow-ups). */
static int commit_one(struct dispatcher *d, struct outcome *o, struct decision *dc, int64_t now) {
  int r = store_reminder_set_status(d->store, o->row.id, dc->status, dc->next,
                                    dc->status == REMINDER_SENT ? NULL : dc->error,
                                    o->res.provider_id[0] ? o->res.provider_id : NULL, now);
  if (r < 0)
    return r;
  if (dc->status == REMINDER_DEAD) {
    if (streq_ptr(o->row.audience, "customer") && !streq_ptr(o->row.tier, RENDER_OPS_TIER)) {
      r = insert_fallback(d, &o->row, now, dc->fallback, sizeof dc->fallback);
      if (r < 0)
        return r;
    }
    r = insert_ops_alert(d, &o->row, now);
    if (r < 0)
      return r;
    dc->alerted = r > 0;
  }
  return 0;
}

static void breaker_update(struct dispatcher *d, struct outcome *o, int64_t now) {
  struct chan *ch = o->ch;
  if (!o->breaker || ch->retired)
    return;
  if (o->res.status == NOTIFY_TRANSIENT) {
    ch->failures++;
    if (ch->probing) {
      ch->probing = false;
      ch->probe_interval = MIN(ch->probe_interval * 2, (int64_t)PROBE_INTERVAL_MAX);
      ch->probe_at = now + ch->probe_interval;
      report(d, DISPATCH_CIRCUIT_OPEN, NULL, ch->name, "probe failed", ch->probe_at, 0);
    } else if (!ch->open && ch->failures >= ch->set.failure_threshold) {
      ch->open = true;
      ch->probe_interval = ch->set.probe_interval;
      ch->probe_at = now + ch->probe_interval;
      char detail[96];
      snprintf(detail, sizeof detail, "%u transient failures in a row", ch->failures);
      report(d, DISPATCH_CIRCUIT_OPEN, NULL, ch->name, detail, ch->probe_at, 0);
    }
  } else {
    /* sent, or the receiver answered that this message is bad: it is up */
    ch->failures = 0;
    if (ch->open) {
      ch->open = ch->probing = false;
      ch->probe_interval = ch->set.probe_interval;
      report(d, DISPATCH_CIRCUIT_CLOSED, NULL, ch->name, NULL, 0, 0);
    }
  }
}

/* Synchronous backends make their batch durable before it counts as sent;
 * a failed flush turns their "sent" into transient failures. */
static void batch_flush(struct dispatcher *d, struct batch *b) {
  for (size_t i = 0; i < b->n; i++) {
    struct chan *ch = b->v[i].ch;
    if (!ch->ops->flush || ch->flushed_gen == d->batch_gen + 1)
      continue;
    ch->flushed_gen = d->batch_gen + 1;
    char err[NOTIFY_ERROR_MAX] = "";
    if (ch->ops->flush(ch->state, err, sizeof err) < 0)
      for (size_t j = i; j < b->n; j++)
        if (b->v[j].ch == ch && b->v[j].res.status == NOTIFY_SENT && !b->v[j].skipped) {
          b->v[j].res.status = NOTIFY_TRANSIENT;
          b->v[j].res.provider_id[0] = 0;
          snprintf(b->v[j].res.error, sizeof b->v[j].res.error, "%s", err);
        }
  }
  d->batch_gen++;
}

/* Writes the decisions (inside the caller's transaction, or autocommit). */
static int batch_write(struct dispatcher *d, struct batch *b, struct decision *dcs, int64_t now) {
  int r = 0;
  for (size_t i = 0; i < b->n && r >= 0; i++)
    r = commit_one(d, &b->v[i], &dcs[i], now);
  return r;
}

/* Circuit breakers and retry instants learn from the decisions. */
static void batch_learn(struct dispatcher *d, struct batch *b, struct decision *dcs, int64_t now) {
  for (size_t i = 0; i < b->n; i++) {
    struct outcome *o = &b->v[i];
    if (o->ch->probing && o->row.id == o->ch->probe_row && !o->breaker) {
      /* the probe never reached the receiver: probe with another row */
      o->ch->probing = false;
      o->ch->probe_at = now;
    }
    breaker_update(d, o, now);
    if (dcs[i].status == REMINDER_RETRY && dcs[i].next < o->ch->retry_min)
      o->ch->retry_min = dcs[i].next;
  }
}

/* After the commit: reports. Frees the batch. */
static void batch_report(struct dispatcher *d, struct batch *b, struct decision *dcs, int64_t now) {
  for (size_t i = 0; i < b->n; i++) {
    struct outcome *o = &b->v[i];
    struct decision *dc = &dcs[i];
    o->row.status = dc->status;
    switch (dc->status) {
    case REMINDER_SENT:
      report(d, DISPATCH_SENT, &o->row, NULL, o->res.provider_id[0] ? o->res.provider_id : NULL, 0,
             o->latency_ms);
      break;
    case REMINDER_RETRY:
      report(d, DISPATCH_RETRY, &o->row, NULL, dc->error, dc->next, o->latency_ms);
      break;
    case REMINDER_DEAD:
      /* the daemon says "gave up after N attempts" itself */
      report(d, DISPATCH_DEAD, &o->row, NULL, o->skipped ? dc->error : o->res.error, 0,
             o->latency_ms);
      if (dc->fallback[0]) {
        char detail[256];
        snprintf(detail, sizeof detail, "%s is dead for this message; trying %s", o->row.channel,
                 dc->fallback);
        report(d, DISPATCH_FALLBACK, &o->row, NULL, detail, 0, 0);
      }
      break;
    default:
      report(d, DISPATCH_SKIPPED, &o->row, NULL, dc->error, 0, 0);
      break;
    }
  }
  free(dcs);
  batch_done(b);
}

/* Commits a batch in its own transaction (falling back to one statement per
 * row when the transaction cannot be had), then reports. Used outside the
 * loop callback's transaction (synchronous sends must be flushed first, after
 * their claim was committed). */
static void batch_apply(struct dispatcher *d, struct batch *b) {
  if (b->n == 0)
    return;
  int64_t now = now_s(d);
  struct decision *dcs = calloc(b->n, sizeof *dcs);
  if (!dcs) {
    /* rows stay 'sending'; recovered at the next start */
    batch_done(b);
    return;
  }
  batch_flush(d, b);
  for (size_t i = 0; i < b->n; i++)
    decide(d, &b->v[i], now, &dcs[i]);
  bool tx = d->tx_depth == 0 && store_begin(d->store) >= 0;
  int r = batch_write(d, b, dcs, now);
  if (tx && (r < 0 || store_commit(d->store) < 0)) {
    store_rollback(d->store);
    /* once more, row by row: a bad row must not hold the others back */
    for (size_t i = 0; i < b->n; i++) {
      dcs[i].fallback[0] = 0;
      (void)commit_one(d, &b->v[i], &dcs[i], now);
    }
  }
  batch_learn(d, b, dcs, now);
  batch_report(d, b, dcs, now);
}

/* Inside the loop callback's transaction (tx_begin): writes the results of
 * finished transfers now and reports them after the commit (tx_end). Takes
 * the batch's contents. */
static void batch_stage(struct dispatcher *d, struct batch *b) {
  if (b->n == 0)
    return;
  int64_t now = now_s(d);
  struct decision *dcs = calloc(b->n, sizeof *dcs);
  struct staged *v = d->n_staged == d->cap_staged
                         ? realloc(d->staged, (d->cap_staged ? d->cap_staged * 2 : 4) * sizeof *v)
                         : d->staged;
  if (!dcs || !v) {
    free(dcs);
    batch_apply(d, b); /* no memory to defer: do it now */
    return;
  }
  if (v != d->staged) {
    d->staged = v;
    d->cap_staged = d->cap_staged ? d->cap_staged * 2 : 4;
  }
  for (size_t i = 0; i < b->n; i++)
    decide(d, &b->v[i], now, &dcs[i]);
  (void)batch_write(d, b, dcs, now);
  batch_learn(d, b, dcs, now);
  d->staged[d->n_staged++] = (struct staged){.b = *b, .dcs = dcs, .now = now};
  *b = (struct batch){0};
}

/* One write transaction per loop callback: the claims, the renders' reads
 * and the results of finished transfers share it. It is committed before
 * control returns to the event loop, so a claimed row is 'sending' on disk
 * before its first byte can leave (curl only sends from the loop). */
static void tx_begin(struct dispatcher *d) {
  if (d->tx_depth++ == 0)
    d->tx_ok = store_begin(d->store) >= 0;
}

static void tx_end(struct dispatcher *d) {
  if (--d->tx_depth > 0)
    return;
  if (d->tx_ok && store_commit(d->store) < 0) {
    /* the results are rewritten one by one; claims of this callback are
     * lost: their rows look due again and may be sent once more with the
     * same key (at-least-once, see docs/delivery.md) */
    store_rollback(d->store);
    for (size_t k = 0; k < d->n_staged; k++)
      for (size_t i = 0; i < d->staged[k].b.n; i++) {
        d->staged[k].dcs[i].fallback[0] = 0;
        (void)commit_one(d, &d->staged[k].b.v[i], &d->staged[k].dcs[i], d->staged[k].now);
      }
  }
  d->tx_ok = false;
  size_t n = d->n_staged;
  d->n_staged = 0;
  for (size_t k = 0; k < n; k++)
    batch_report(d, &d->staged[k].b, d->staged[k].dcs, d->staged[k].now);
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
    batch_add(b, ch, row, &res, false, false, 0, kind);
    return;
  }
  x->ch = ch;
  x->row = *row;
  *row = (struct reminder){0};
  x->kind = kind;
  x->started_ms = clock_monotonic_ms();

  if (isempty(x->row.recipient)) {
    res.status = NOTIFY_PERMANENT;
    snprintf(res.error, sizeof res.error, "no recipient address");
    goto done;
  }
  char err[512] = "";
  int r = render_message(d->render, d->store, &x->row, kind, now, &x->msg, err, sizeof err);
  if (r == -ENOENT) {
    res.status = NOTIFY_PERMANENT;
    snprintf(res.error, sizeof res.error, "%s", *err ? err : "contract no longer in the store");
    batch_add(b, ch, &x->row, &res, true, false, 0, kind);
    xfer_free(x);
    return;
  }
  if (r < 0) {
    res.status = r == -EINVAL || r == -ELOOP ? NOTIFY_PERMANENT : NOTIFY_TRANSIENT;
    snprintf(res.error, sizeof res.error, "rendering failed: %s", *err ? err : strerror(-r));
    goto done;
  }
  /* opted out since the row was planned? */
  if (streq_ptr(x->row.audience, "customer") && !streq_ptr(x->row.tier, RENDER_OPS_TIER) &&
      (x->msg.customer_optout & notify_optout_bit(kind))) {
    res.status = NOTIFY_PERMANENT;
    snprintf(res.error, sizeof res.error, "customer opted out of %s since the reminder was planned",
             kind == NOTIFY_SMS       ? "SMS"
             : kind == NOTIFY_WEBHOOK ? "webhooks"
                                      : "email");
    batch_add(b, ch, &x->row, &res, true, false, 0, kind);
    xfer_free(x);
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
  if (ch->ops->prepare(ch->state, &x->req, x->easy, &x->nx, &res) < 0) {
    pool_put(ch, x->easy);
    x->easy = NULL;
    goto done;
  }
  dispatch_easy_wire(x->easy, &x->nx);
  if (curl_multi_add_handle(d->multi, x->easy) != CURLM_OK) {
    pool_put(ch, x->easy);
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
  batch_add(b, ch, &x->row, &res, false, true, clock_monotonic_ms() - x->started_ms, kind);
  xfer_free(x);
  return;
done:
  batch_add(b, ch, &x->row, &res, false, false, clock_monotonic_ms() - x->started_ms, kind);
  xfer_free(x);
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
  if (ch->retired)
    return;
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
    int n = store_reminder_claim(d->store, ch->name, now, max, claim_cb, &rows);
    if (n < 0) {
      /* rows claimed before the failure are 'sending' and come back at the
       * next start (store_reminder_recover); try again at the next kick */
      for (size_t i = 0; i < rows.n; i++)
        reminder_clear(&rows.v[i]);
      free(rows.v);
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
    if ((*p)->in_flight == 0) {
      struct chan *ch = *p;
      *p = ch->next_retired;
      chan_free(ch);
    } else
      p = &(*p)->next_retired;
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
    bool breaker = true;
    if (x->nx.refused) {
      res.status = NOTIFY_PERMANENT;
      snprintf(res.error, sizeof res.error, "%s", x->nx.refused_why);
      breaker = false;
    } else
      x->ch->ops->finish(x->ch->state, &x->req, easy, &x->nx, code, &res);
    if (x->prev)
      x->prev->next = x->next;
    else
      d->xfers = x->next;
    if (x->next)
      x->next->prev = x->prev;
    x->ch->in_flight--;
    d->in_flight--;
    pool_put(x->ch, easy);
    x->easy = NULL;
    batch_add(&b, x->ch, &x->row, &res, false, breaker, clock_monotonic_ms() - x->started_ms,
              x->kind);
    xfer_free(x);
  }
  if (b.n == 0)
    return;
  /* one transaction: these results and the claims refilling the freed slots */
  struct batch later = {0};
  tx_begin(d);
  batch_stage(d, &b);
  if (!d->in_kick) {
    d->in_kick = true;
    int64_t now = now_s(d);
    for (size_t i = 0; i < d->n_chans; i++) {
      struct chan *ch = d->chans[i];
      if (ch->backlog || ch->retry_min <= now || (ch->open && !ch->probing && ch->probe_at <= now))
        chan_kick(d, ch, now, &later);
    }
    d->in_kick = false;
  }
  tx_end(d);
  batch_apply(d, &later); /* synchronous sends and rows that failed before sending */
  free_retired(d);
}

/* ---- public API ---------------------------------------------------------------------- */

void dispatcher_kick(struct dispatcher *d) {
  if (!d || d->in_kick)
    return;
  d->in_kick = true;
  int64_t now = now_s(d);
  d->last_poll = now;
  struct batch b = {0};
  tx_begin(d);
  for (size_t i = 0; i < d->n_chans; i++)
    chan_kick(d, d->chans[i], now, &b);
  tx_end(d);
  batch_apply(d, &b);
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
  check_done(d);
  arm_timer(d);
}

size_t dispatcher_in_flight(const struct dispatcher *d) {
  return d ? d->in_flight : 0;
}

int64_t dispatcher_next_wakeup(struct dispatcher *d) {
  if (!d)
    return TIME_NEVER;
  int64_t now = now_s(d);
  if (d->retry_dirty)
    retry_recompute(d, now);
  int64_t t = TIME_NEVER;
  for (size_t i = 0; i < d->n_chans; i++) {
    struct chan *ch = d->chans[i];
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
  if (!d->clock->simulated)
    t = MIN(t, d->last_poll + POLL_INTERVAL);
  return t;
}

int dispatcher_recover(struct dispatcher *d) {
  if (!d)
    return -EINVAL;
  int r = store_reminder_recover(d->store, now_s(d));
  d->retry_dirty = true;
  return r;
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
  d->last_poll = now_s(d);
  d->curl_deadline_ms = -1;
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
  /* transfers in flight are abandoned: their rows stay 'sending' and are
   * sent again (same key) after store_reminder_recover() at the next start */
  while (d->xfers) {
    struct xfer *x = d->xfers;
    d->xfers = x->next;
    if (x->easy) {
      curl_multi_remove_handle(d->multi, x->easy);
      curl_easy_cleanup(x->easy);
      x->easy = NULL;
    }
    x->ch->in_flight--;
    xfer_free(x);
  }
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
    struct chan *old = chan_find(d, v[i]->name);
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
    if (old->in_flight == 0)
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
