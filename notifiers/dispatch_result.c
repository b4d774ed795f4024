/* dispatch_result: what an outcome turns into and how it is committed:
 * decisions (sent, retry with backoff, dead with fallback and ops alert,
 * cancelled, skipped, unknown or a provider lookup), the guarded writes
 * under the row's claim, circuit-breaker learning, the loop callback's
 * transaction (and withdrawing the transfers of claims it failed to
 * commit), results kept while another process holds the store's lock
 * (d->held, written later by dispatch_held_flush()), and the reports to
 * the daemon. See dispatch.c for the row's
 * life and docs/delivery.md for the guarantees.
 *
 * Owns nothing; works on struct dispatcher (dispatch_internal.h). Blocks in
 * short SQLite statements and, for synchronous backends, their flush. */
#include "notifiers/dispatch.h"
#include "notifiers/dispatch_internal.h"

#include "core/util.h"
#include "notifiers/notifier.h"
#include "notifiers/render.h"

static uint64_t rng_next(struct dispatcher *d) {
  uint64_t x = d->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  d->rng = x;
  return x * 0x2545F4914F6CDD1Dull;
}

/* ---- batches of results --------------------------------------------------------------- */

static void batch_done(struct batch *b) {
  for (size_t i = 0; i < b->n; i++)
    reminder_clear(&b->v[i].row);
  free(b->v);
  *b = (struct batch){0};
}

/* Takes ownership of *row (it is zeroed). */
int dispatch_batch_add(struct batch *b, struct chan *ch, struct reminder *row,
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
  return notify_channel_kind(ops, cc);
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
    struct chan *fch = dispatch_chan_find(d, name);
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
    to = "ops@localhost.localdomain"; /* the sink writes it anyway */
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
  struct chan *ach = dispatch_chan_find(d, name);
  if (ach)
    ach->backlog = true;
  return 1;
}

/* A lookup's outcome: found = sent (the provider has it); absent = due now,
 * sent normally; failed = ask again later, and 'unknown' once the channel's
 * attempts are spent. */
static void decide_lookup(struct dispatcher *d, struct outcome *o, int64_t now,
                          struct decision *dc) {
  switch (o->lookup) {
  case NOTIFY_LOOKUP_FOUND:
    dc->status = REMINDER_SENT;
    return;
  case NOTIFY_LOOKUP_ABSENT:
    dc->status = REMINDER_RETRY;
    dc->next = now;
    format_cut(dc->error, sizeof dc->error,
               "the provider has no such message after an unknown outcome: sending it");
    return;
  case NOTIFY_LOOKUP_FAILED:
    break;
  }
  if (o->row.attempts >= o->ch->set.max_attempts) {
    dc->status = REMINDER_UNKNOWN;
    format_cut(dc->error, sizeof dc->error,
               "outcome unknown, not resent: looking it up at the provider failed %d times (%s); "
               "check the provider's message log, then renewctl outbox retry or leave it",
               o->row.attempts, o->res.error);
    return;
  }
  dc->status = REMINDER_RETRY;
  dc->reconcile = true;
  dc->next = now + backoff(d, &o->ch->set, o->row.attempts, o->res.retry_after);
  format_cut(dc->error, sizeof dc->error, "outcome unknown; looking it up failed: %s",
             o->res.error);
}

static void decide(struct dispatcher *d, struct outcome *o, int64_t now, struct decision *dc) {
  *dc = (struct decision){0};
  if (o->skipped) {
    dc->status = REMINDER_SKIPPED;
    format_cut(dc->error, sizeof dc->error, "%s", o->res.error);
    return;
  }
  if (o->is_lookup) {
    decide_lookup(d, o, now, dc);
    return;
  }
  if (o->unknown && o->res.status == NOTIFY_TRANSIENT && dispatch_chan_can_lookup(o->ch)) {
    dc->status = REMINDER_RETRY;
    dc->reconcile = true;
    dc->next = now + backoff(d, &o->ch->set, o->row.attempts, 0);
    format_cut(dc->error, sizeof dc->error,
               "outcome unknown (%s): looking it up at the provider before any resend",
               o->res.error);
    return;
  }
  if (o->unknown && o->res.status == NOTIFY_TRANSIENT) {
    dc->status = REMINDER_UNKNOWN;
    format_cut(dc->error, sizeof dc->error,
               "outcome unknown, not resent (an SMS has no idempotency key): %s; check the "
               "provider's message log, then renewctl outbox retry or leave it",
               o->res.error);
    return;
  }
  switch (o->res.status) {
  case NOTIFY_SENT:
    dc->status = REMINDER_SENT;
    return;
  case NOTIFY_TRANSIENT:
    if (o->row.attempts >= o->ch->set.max_attempts) {
      dc->status = REMINDER_DEAD;
      format_cut(dc->error, sizeof dc->error, "gave up after %d attempts: %s", o->row.attempts,
                 o->res.error);
    } else {
      dc->status = REMINDER_RETRY;
      dc->next = now + backoff(d, &o->ch->set, o->row.attempts, o->res.retry_after);
      format_cut(dc->error, sizeof dc->error, "%s", o->res.error);
    }
    return;
  case NOTIFY_PERMANENT:
    dc->status = REMINDER_DEAD;
    format_cut(dc->error, sizeof dc->error, "%s", o->res.error);
    return;
  }
}

/* Writes one decision (and a dead row's follow-ups). */
static int commit_one(struct dispatcher *d, struct outcome *o, struct decision *dc, int64_t now) {
  dc->final = dc->status;
  dc->stale = false;
  int r = dc->reconcile
              ? store_reminder_reconcile_later(d->store, o->row.id, o->row.claim, dc->next,
                                               dc->error, now, &dc->final)
              : store_reminder_finish(d->store, o->row.id, o->row.claim, dc->status, dc->next,
                                      dc->status == REMINDER_SENT ? NULL : dc->error,
                                      o->res.provider_id[0] ? o->res.provider_id : NULL, now,
                                      &dc->final);
  if (r == -ESTALE) {
    dc->stale = true; /* recovered or re-claimed meanwhile: that claim decides */
    return 0;
  }
  if (r < 0)
    return r;
  if (dc->final == REMINDER_DEAD) {
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
      dispatch_report(d, DISPATCH_CIRCUIT_OPEN, NULL, ch->name, "probe failed", ch->probe_at, 0);
    } else if (!ch->open && ch->failures >= ch->set.failure_threshold) {
      ch->open = true;
      ch->probe_interval = ch->set.probe_interval;
      ch->probe_at = now + ch->probe_interval;
      char detail[96];
      snprintf(detail, sizeof detail, "%u transient failures in a row", ch->failures);
      dispatch_report(d, DISPATCH_CIRCUIT_OPEN, NULL, ch->name, detail, ch->probe_at, 0);
    }
  } else {
    /* sent, or the receiver answered that this message is bad: it is up */
    ch->failures = 0;
    if (ch->open) {
      ch->open = ch->probing = false;
      ch->probe_interval = ch->set.probe_interval;
      dispatch_report(d, DISPATCH_CIRCUIT_CLOSED, NULL, ch->name, NULL, 0, 0);
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
    if (!dcs[i].stale && dcs[i].final == REMINDER_RETRY && dcs[i].next < o->ch->retry_min)
      o->ch->retry_min = dcs[i].next;
  }
}

/* After the commit: reports one written outcome. */
static void report_one(struct dispatcher *d, struct outcome *o, struct decision *dc) {
  o->row.status = dc->final;
  if (dc->stale) {
    dispatch_report(d, DISPATCH_STALE, &o->row, NULL,
                    "the row is no longer held by this claim (recovered or claimed again)", 0,
                    o->latency_ms);
    return;
  }
  switch (dc->final) {
  case REMINDER_CANCELLED: {
    char detail[NOTIFY_ERROR_MAX + 64];
    snprintf(detail, sizeof detail, "%s",
             dc->status == REMINDER_SENT ? "the attempt in flight was delivered"
             : *dc->error                ? dc->error
                                         : reminder_status_to_string(dc->status));
    dispatch_report(d, DISPATCH_CANCELLED, &o->row, NULL, detail, 0, o->latency_ms);
    break;
  }
  case REMINDER_UNKNOWN:
    dispatch_report(d, DISPATCH_UNKNOWN, &o->row, NULL, dc->error, 0, o->latency_ms);
    break;
  case REMINDER_SENT:
    dispatch_report(d, DISPATCH_SENT, &o->row, NULL,
                    o->res.provider_id[0] ? o->res.provider_id : NULL, 0, o->latency_ms);
    break;
  case REMINDER_RETRY:
    dispatch_report(d, DISPATCH_RETRY, &o->row, NULL, dc->error, dc->next, o->latency_ms);
    break;
  case REMINDER_DEAD:
    /* the daemon says "gave up after N attempts" itself */
    dispatch_report(d, DISPATCH_DEAD, &o->row, NULL, o->skipped ? dc->error : o->res.error, 0,
                    o->latency_ms);
    if (dc->fallback[0]) {
      char detail[256];
      snprintf(detail, sizeof detail, "%s is dead for this message; trying %s", o->row.channel,
               dc->fallback);
      dispatch_report(d, DISPATCH_FALLBACK, &o->row, NULL, detail, 0, 0);
    }
    break;
  default:
    dispatch_report(d, DISPATCH_SKIPPED, &o->row, NULL, dc->error, 0, 0);
    break;
  }
}

/* After the commit: reports what was written (held outcomes later). Frees the batch. */
static void batch_report(struct dispatcher *d, struct batch *b, struct decision *dcs, int64_t now) {
  for (size_t i = 0; i < b->n; i++)
    if (!dcs[i].held)
      report_one(d, &b->v[i], &dcs[i]);
  free(dcs);
  batch_done(b);
}

/* ---- results a locked store kept waiting ---------------------------------------------- */

/* One outcome in its own transaction (or in the loop callback's, when one
 * is open). 0, or -EBUSY when another process holds the write lock. */
static int write_one(struct dispatcher *d, struct outcome *o, struct decision *dc, int64_t now) {
  if (d->tx_depth > 0)
    return commit_one(d, o, dc, now);
  int r = store_begin(d->store);
  if (r < 0)
    return r;
  dc->fallback[0] = 0;
  r = commit_one(d, o, dc, now);
  if (r >= 0)
    r = store_commit(d->store);
  if (r < 0)
    (void)store_rollback(d->store);
  return r;
}

/* Moves an outcome whose write met a locked store to d->held (its row is
 * taken, dc->held set). Without memory it is dropped: the lease recovers it. */
static void held_add(struct dispatcher *d, struct outcome *o, struct decision *dc, int64_t now) {
  dc->held = true;
  if (d->n_held == d->cap_held) {
    size_t cap = d->cap_held ? d->cap_held * 2 : 16;
    struct held *v = realloc(d->held, cap * sizeof *v);
    if (!v)
      return; /* the row stays 'sending' under its lease */
    d->held = v;
    d->cap_held = cap;
  }
  d->held[d->n_held++] = (struct held){.o = *o, .dc = *dc, .now = now};
  o->row = (struct reminder){.id = o->row.id}; /* the id still matters to batch_learn() */
  o->ch->held++;
  dispatch_busy(d);
}

/* Writes a batch's outcomes one by one; those that meet a locked store are
 * held, any other failure leaves the row to its lease. */
static void rewrite_rows(struct dispatcher *d, struct batch *b, struct decision *dcs, int64_t now) {
  for (size_t i = 0; i < b->n; i++) {
    if (dcs[i].held)
      continue;
    int r = write_one(d, &b->v[i], &dcs[i], now);
    if (r == -EBUSY)
      held_add(d, &b->v[i], &dcs[i], now);
  }
}

static void held_remove(struct dispatcher *d, size_t i) {
  d->held[i].o.ch->held--;
  reminder_clear(&d->held[i].o.row);
  memmove(&d->held[i], &d->held[i + 1], (d->n_held - i - 1) * sizeof *d->held);
  d->n_held--;
}

bool dispatch_held_flush(struct dispatcher *d) {
  while (d->n_held > 0) {
    struct held *h = &d->held[0];
    h->dc.held = false;
    int r = write_one(d, &h->o, &h->dc, h->now);
    if (r == -EBUSY)
      return false; /* still locked: the rest waits too */
    if (r >= 0)
      report_one(d, &h->o, &h->dc);
    held_remove(d, 0);
  }
  return true;
}

size_t dispatch_held_drop(struct dispatcher *d) {
  size_t n = d->n_held;
  while (d->n_held > 0)
    held_remove(d, d->n_held - 1);
  return n;
}

/* Commits a batch in its own transaction (falling back to one statement per
 * row when the transaction cannot be had), then reports. Used outside the
 * loop callback's transaction (synchronous sends must be flushed first, after
 * their claim was committed). */
void dispatch_batch_apply(struct dispatcher *d, struct batch *b) {
  if (b->n == 0)
    return;
  int64_t now = dispatch_now(d);
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
  int r = tx ? batch_write(d, b, dcs, now) : -EBUSY;
  if (tx && r >= 0 && (r = store_commit(d->store)) < 0)
    store_rollback(d->store);
  else if (tx && r < 0)
    store_rollback(d->store);
  /* once more, row by row: a bad row must not hold the others back, and a
   * row that meets a locked store is kept for the timer */
  if (r < 0)
    rewrite_rows(d, b, dcs, now);
  batch_learn(d, b, dcs, now);
  batch_report(d, b, dcs, now);
}

/* Inside the loop callback's transaction (tx_begin): writes the results of
 * finished transfers now and reports them after the commit (tx_end). Takes
 * the batch's contents. */
void dispatch_batch_stage(struct dispatcher *d, struct batch *b) {
  if (b->n == 0)
    return;
  int64_t now = dispatch_now(d);
  struct decision *dcs = calloc(b->n, sizeof *dcs);
  struct staged *v = d->n_staged == d->cap_staged
                         ? realloc(d->staged, (d->cap_staged ? d->cap_staged * 2 : 4) * sizeof *v)
                         : d->staged;
  if (!dcs || !v) {
    free(dcs);
    dispatch_batch_apply(d, b); /* no memory to defer: do it now */
    return;
  }
  if (v != d->staged) {
    d->staged = v;
    d->cap_staged = d->cap_staged ? d->cap_staged * 2 : 4;
  }
  for (size_t i = 0; i < b->n; i++)
    decide(d, &b->v[i], now, &dcs[i]);
  /* without the callback's transaction (the store was locked) tx_end
   * writes them row by row */
  if (d->tx_ok && batch_write(d, b, dcs, now) < 0)
    d->tx_failed = true;
  batch_learn(d, b, dcs, now);
  d->staged[d->n_staged++] = (struct staged){.b = *b, .dcs = dcs, .now = now};
  *b = (struct batch){0};
}

/* One write transaction per loop callback: the claims, the renders' reads
 * and the results of finished transfers share it. It is committed before
 * control returns to the event loop, so a claimed row is 'sending' on disk
 * before its first byte can leave (curl only sends from the loop). */
void dispatch_tx_begin(struct dispatcher *d) {
  if (d->tx_depth++ == 0) {
    d->tx_ok = store_begin(d->store) >= 0;
    d->tx_failed = false;
    d->tx_gen++;
  }
}

/* Unlinks x from the transfers in flight and frees it (its handle too). */
void dispatch_xfer_drop(struct dispatcher *d, struct xfer *x) {
  if (x->easy) {
    curl_multi_remove_handle(d->multi, x->easy);
    dispatch_pool_put(x->ch, x->easy);
    x->easy = NULL;
  }
  if (x->prev)
    x->prev->next = x->next;
  else
    d->xfers = x->next;
  if (x->next)
    x->next->prev = x->prev;
  x->ch->in_flight--;
  d->in_flight--;
  dispatch_xfer_free(x);
}

/* The claims of the transaction tx_gen were rolled back: the transfers they
 * started must not send a byte (curl sends only from the loop, and the loop
 * has not run since), so they leave the multi handle before anything is
 * claimed again. Their rows are pending or retry again. */
static void drop_uncommitted(struct dispatcher *d, uint64_t tx_gen) {
  for (struct xfer *x = d->xfers, *next; x; x = next) {
    next = x->next;
    if (x->tx_gen != tx_gen)
      continue;
    struct chan *ch = x->ch;
    dispatch_xfer_drop(d, x);
    ch->backlog = true;
    ch->retry_min = MIN(ch->retry_min, dispatch_now(d) + 1);
  }
}

void dispatch_tx_end(struct dispatcher *d) {
  if (--d->tx_depth > 0)
    return;
  bool rewrite = !d->tx_ok;
  int r = 0;
  if (d->tx_ok && (d->tx_failed || (r = store_commit(d->store)) < 0)) {
    /* the results are rewritten one by one; the claims of this callback
     * are lost, so their transfers are withdrawn before a byte leaves */
    store_rollback(d->store);
    drop_uncommitted(d, d->tx_gen);
    if (r == -EBUSY) {
      d->claim_busy = true; /* claim them again from the busy timer */
      dispatch_busy(d);
    }
    rewrite = true;
  }
  d->tx_ok = d->tx_failed = false;
  if (rewrite)
    for (size_t k = 0; k < d->n_staged; k++)
      rewrite_rows(d, &d->staged[k].b, d->staged[k].dcs, d->staged[k].now);
  size_t n = d->n_staged;
  d->n_staged = 0;
  for (size_t k = 0; k < n; k++)
    batch_report(d, &d->staged[k].b, d->staged[k].dcs, d->staged[k].now);
}
