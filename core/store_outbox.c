/* store_outbox: the reminder outbox and customer responses in the store.
 *
 * A reminder row is the committed intent to send one message (contract, term,
 * tier, step, channel, audience), keyed by a deterministic idempotency key so
 * that it is recorded at most once and a resend after a crash carries the same
 * key. Status machine: pending -> sending (claimed) -> sent | retry | dead |
 * skipped | unknown; pending/retry -> cancelled; sending + cancel mark ->
 * cancelled when its result is recorded. Claims are leases: claim is a
 * fencing token incremented at each claim, claimed_until the lease's end;
 * every change of a 'sending' row names the claim it expects, so a late
 * result (after a recovery, a re-claim or a cancellation) changes nothing it
 * should not. Pending rows carry
 * next_attempt_at = due_at so that one index (status, next_attempt_at) serves
 * the dispatcher's claim. Responses are what customers answered, de-duplicated
 * by an optional key. Blocking: file I/O, busy timeout. */
#include "core/store_internal.h"

static bool audience_valid(const char *a) {
  return a && (streq(a, "customer") || streq(a, "owner"));
}

/* Reads STORE_REMINDER_COLS; copy ? heap strings : borrowed. */
static int reminder_from_row(sqlite3_stmt *st, bool copy, struct reminder *ret) {
  int status = reminder_status_from_string((const char *)sqlite3_column_text(st, 11));
  if (status < 0)
    return -EBADMSG;
  struct reminder m = {
      .id = sqlite3_column_int64(st, 0),
      .contract_rowid = sqlite3_column_int64(st, 1),
      .term = (int32_t)sqlite3_column_int64(st, 3),
      .step = (int32_t)sqlite3_column_int64(st, 5),
      .due_at = sqlite3_column_int64(st, 10),
      .status = status,
      .attempts = (int32_t)sqlite3_column_int64(st, 12),
      .next_attempt_at = sqlite3_column_int64(st, 13),
      .created_at = sqlite3_column_int64(st, 16),
      .updated_at = sqlite3_column_int64(st, 17),
      .sent_at = sqlite3_column_int64(st, 18),
      .claim = sqlite3_column_int64(st, 19),
      .claimed_until = sqlite3_column_int64(st, 20),
      .cancel = sqlite3_column_int64(st, 21) != 0,
      .reconcile = sqlite3_column_int64(st, 22) != 0,
      .delivery_at = sqlite3_column_int64(st, 25),
  };
  const char *key = (const char *)sqlite3_column_text(st, 9);
  snprintf(m.idem_key, sizeof m.idem_key, "%s", key ? key : "");
  int r;
  if ((r = col_text(st, 2, copy, &m.contract_id)) < 0 || (r = col_text(st, 4, copy, &m.tier)) < 0 ||
      (r = col_text(st, 6, copy, &m.channel)) < 0 || (r = col_text(st, 7, copy, &m.audience)) < 0 ||
      (r = col_text(st, 8, copy, &m.recipient)) < 0 ||
      (r = col_text(st, 14, copy, &m.last_error)) < 0 ||
      (r = col_text(st, 15, copy, &m.provider_id)) < 0 ||
      (r = col_text(st, 23, copy, &m.delivery_status)) < 0 ||
      (r = col_text(st, 24, copy, &m.delivery_error)) < 0) {
    if (copy)
      reminder_clear(&m);
    return r;
  }
  *ret = m;
  return 0;
}

static int reminder_walk(struct stmt_ref *q, int (*cb)(const struct reminder *r, void *ud),
                         void *ud) {
  int n = 0, r;
  while ((r = stmt_step(q)) > 0) {
    struct reminder m;
    if ((r = reminder_from_row(q->st, false, &m)) < 0)
      return r;
    int k = cb(&m, ud);
    if (k < 0)
      return k;
    n++;
  }
  return r < 0 ? r : n;
}

int store_reminder_insert(struct store *s, struct reminder *m, int64_t now, int64_t *ret_id) {
  if (!s || !m || isempty(m->contract_id) || isempty(m->tier) || isempty(m->channel) ||
      !audience_valid(m->audience) || m->term < 1 || m->step < 0 ||
      (unsigned)m->status >= _REMINDER_STATUS_MAX)
    return -EINVAL;
  store_idem_key(m->contract_id, m->term, m->tier, m->step, m->channel, m->audience, m->idem_key);

  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_REMINDER_INSERT, &q)) < 0 ||
      (r = bind_text(&q, 1, m->contract_id)) < 0 || (r = bind_int64(&q, 2, m->term)) < 0 ||
      (r = bind_text(&q, 3, m->tier)) < 0 || (r = bind_int64(&q, 4, m->step)) < 0 ||
      (r = bind_text(&q, 5, m->channel)) < 0 || (r = bind_text(&q, 6, m->audience)) < 0 ||
      (r = bind_text(&q, 7, m->recipient)) < 0 || (r = bind_text(&q, 8, m->idem_key)) < 0 ||
      (r = bind_int64(&q, 9, m->due_at)) < 0 ||
      (r = bind_text(&q, 10, reminder_status_to_string(m->status))) < 0 ||
      (r = bind_int64(&q, 11, m->attempts)) < 0 ||
      (r = bind_int64(&q, 12, m->next_attempt_at ? m->next_attempt_at : m->due_at)) < 0 ||
      (r = bind_text(&q, 13, m->last_error)) < 0 || (r = bind_text(&q, 14, m->provider_id)) < 0 ||
      (r = bind_int64(&q, 15, now)) < 0 || (r = bind_int64(&q, 16, m->sent_at)) < 0)
    return r;
  r = stmt_step(&q);
  if (r < 0)
    return r;
  if (r == 0)
    return -ENOENT; /* no such contract */
  int64_t id = sqlite3_column_int64(q.st, 0), rowid = sqlite3_column_int64(q.st, 1);
  if ((r = stmt_exec(&q)) < 0)
    return r;
  m->id = id;
  m->contract_rowid = rowid;
  if (ret_id)
    *ret_id = id;
  return 0;
}

int store_reminder_get(struct store *s, int64_t id, struct reminder *ret) {
  if (!s || !ret)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_REMINDER_GET, &q)) < 0 || (r = bind_int64(&q, 1, id)) < 0)
    return r;
  r = stmt_step(&q);
  if (r < 0)
    return r;
  if (r == 0)
    return -ENOENT;
  return reminder_from_row(q.st, true, ret);
}

int store_reminder_foreach_contract(struct store *s, const char *contract_id, int32_t term,
                                    int (*cb)(const struct reminder *r, void *ud), void *ud) {
  if (!s || isempty(contract_id) || !cb)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_REMINDER_FOREACH_CONTRACT, &q)) < 0 ||
      (r = bind_text(&q, 1, contract_id)) < 0 || (r = bind_int64(&q, 2, term < 0 ? -1 : term)) < 0)
    return r;
  return reminder_walk(&q, cb, ud);
}

int store_reminder_foreach_status(struct store *s, int status, size_t limit,
                                  int (*cb)(const struct reminder *r, void *ud), void *ud) {
  if (!s || !cb || status < -1 || status >= _REMINDER_STATUS_MAX)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_REMINDER_FOREACH_STATUS, &q)) < 0 ||
      (r = bind_text(&q, 1, status >= 0 ? reminder_status_to_string(status) : NULL)) < 0 ||
      (r = bind_int64(&q, 2, limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit)) < 0)
    return r;
  return reminder_walk(&q, cb, ud);
}

struct claimed {
  struct reminder *v;
  size_t n, cap;
};

static int claimed_cmp(const void *a, const void *b) {
  const struct reminder *x = a, *y = b;
  if (x->next_attempt_at != y->next_attempt_at)
    return x->next_attempt_at < y->next_attempt_at ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

static void claimed_done(struct claimed *c) {
  for (size_t i = 0; i < c->n; i++)
    reminder_clear(&c->v[i]);
  free(c->v);
}

/* Steps q to its end, appending every row to c. 0 or -errno. */
static int claimed_collect(struct stmt_ref *q, struct claimed *c) {
  int r;
  while ((r = stmt_step(q)) > 0) {
    if (c->n == c->cap) {
      size_t cap = c->cap ? c->cap * 2 : 16;
      struct reminder *v = realloc(c->v, cap * sizeof *v);
      if (!v)
        return -ENOMEM;
      c->v = v;
      c->cap = cap;
    }
    if ((r = reminder_from_row(q->st, true, &c->v[c->n])) < 0)
      return r;
    c->n++;
  }
  return r;
}

/* Calls cb for each collected row, in order; the number of rows, or cb's
 * first negative return. */
static int claimed_hand_out(const struct claimed *c, int (*cb)(const struct reminder *r, void *ud),
                            void *ud) {
  for (size_t i = 0; i < c->n; i++) {
    int k = cb(&c->v[i], ud);
    if (k < 0)
      return k;
  }
  return (int)c->n;
}

int store_reminder_claim(struct store *s, const char *channel, int64_t now, size_t max,
                         int (*cb)(const struct reminder *r, void *ud), void *ud) {
  int64_t until = now > INT64_MAX - STORE_DEFAULT_LEASE ? INT64_MAX : now + STORE_DEFAULT_LEASE;
  return store_reminder_claim_lease(s, channel, now, until, NULL, max, cb, ud);
}

int store_reminder_claim_lease(struct store *s, const char *channel, int64_t now,
                               int64_t lease_until, const char *owner, size_t max,
                               int (*cb)(const struct reminder *r, void *ud), void *ud) {
  if (!s || !cb || lease_until < now)
    return -EINVAL;
  if (max == 0)
    return 0;
  _cleanup_(claimed_done) struct claimed rows = {0};
  int r;
  {
    /* Collect first: the UPDATE commits (in autocommit mode) when the
     * statement is reset, before any callback runs. */
    _cleanup_stmt_ struct stmt_ref q = {0};
    if ((r = stmt_acquire(s, STMT_REMINDER_CLAIM, &q)) < 0 || (r = bind_int64(&q, 1, now)) < 0 ||
        (r = bind_text(&q, 2, channel)) < 0 ||
        (r = bind_int64(&q, 3, max > INT64_MAX ? INT64_MAX : (int64_t)max)) < 0 ||
        (r = bind_int64(&q, 4, lease_until)) < 0 || (r = bind_text(&q, 5, owner)) < 0)
      return r;
    /* on failure the statement is reset: claimed rows stay 'sending' */
    if ((r = claimed_collect(&q, &rows)) < 0)
      return r;
  }
  /* RETURNING yields rows in update order: hand them out oldest due first */
  if (rows.n > 1)
    qsort(rows.v, rows.n, sizeof *rows.v, claimed_cmp);
  return claimed_hand_out(&rows, cb, ud);
}

int store_reminder_set_status(struct store *s, int64_t id, enum reminder_status st,
                              int64_t next_attempt_at, const char *error, const char *provider_id,
                              int64_t now) {
  if (!s || (unsigned)st >= _REMINDER_STATUS_MAX)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_REMINDER_SET_STATUS, &q)) < 0 || (r = bind_int64(&q, 1, id)) < 0 ||
      (r = bind_text(&q, 2, reminder_status_to_string(st))) < 0 ||
      (r = bind_int64(&q, 3, next_attempt_at)) < 0 || (r = bind_text(&q, 4, error)) < 0 ||
      (r = bind_text(&q, 5, provider_id)) < 0 || (r = bind_int64(&q, 6, now)) < 0 ||
      (r = stmt_exec(&q)) < 0)
    return r;
  return sqlite3_changes(s->db) == 0 ? -ENOENT : 0;
}

static bool delivery_status_valid(const char *st) {
  static const char *const known[] = {"queued", "sent", "delivered", "undelivered", "failed"};
  for (size_t i = 0; st && i < ELEMENTSOF(known); i++)
    if (streq(st, known[i]))
      return true;
  return false;
}

int store_reminder_set_delivery(struct store *s, const char *provider_id, const char *status,
                                const char *error, int64_t now) {
  if (!s || isempty(provider_id) || !delivery_status_valid(status))
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r, n = 0;
  if ((r = stmt_acquire(s, STMT_REMINDER_SET_DELIVERY, &q)) < 0 ||
      (r = bind_text(&q, 1, provider_id)) < 0 || (r = bind_text(&q, 2, status)) < 0 ||
      (r = bind_text(&q, 3, error)) < 0 || (r = bind_int64(&q, 4, now)) < 0)
    return r;
  while ((r = stmt_step(&q)) > 0)
    n++;
  if (r < 0)
    return r;
  if (n > 0)
    return 1;
  /* nothing changed: an outranking receipt, or no such row */
  stmt_release(&q);
  if ((r = stmt_acquire(s, STMT_REMINDER_FIND_PROVIDER, &q)) < 0 ||
      (r = bind_text(&q, 1, provider_id)) < 0 || (r = stmt_step(&q)) < 0)
    return r;
  return r > 0 ? 0 : -ENOENT;
}

/* Runs a guarded UPDATE ... RETURNING status: the row's new status, or
 * -ESTALE when the guard matched nothing. */
static int guarded_step(struct stmt_ref *q, enum reminder_status *ret_status) {
  int r = stmt_step(q);
  if (r < 0)
    return r;
  if (r == 0)
    return -ESTALE;
  int st = reminder_status_from_string((const char *)sqlite3_column_text(q->st, 0));
  if ((r = stmt_exec(q)) < 0)
    return r;
  if (st < 0)
    return -EBADMSG;
  if (ret_status)
    *ret_status = (enum reminder_status)st;
  return 0;
}

int store_reminder_finish(struct store *s, int64_t id, int64_t claim, enum reminder_status st,
                          int64_t next_attempt_at, const char *error, const char *provider_id,
                          int64_t now, enum reminder_status *ret_status) {
  if (!s || (unsigned)st >= _REMINDER_STATUS_MAX || st == REMINDER_PENDING ||
      st == REMINDER_SENDING)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_REMINDER_FINISH, &q)) < 0 || (r = bind_int64(&q, 1, id)) < 0 ||
      (r = bind_int64(&q, 2, claim)) < 0 ||
      (r = bind_text(&q, 3, reminder_status_to_string(st))) < 0 ||
      (r = bind_int64(&q, 4, next_attempt_at)) < 0 || (r = bind_text(&q, 5, error)) < 0 ||
      (r = bind_text(&q, 6, provider_id)) < 0 || (r = bind_int64(&q, 7, now)) < 0)
    return r;
  return guarded_step(&q, ret_status);
}

int store_reminder_set_status_if(struct store *s, int64_t id, enum reminder_status expect,
                                 enum reminder_status st, int64_t next_attempt_at,
                                 const char *error, const char *provider_id, int64_t now) {
  if (!s || (unsigned)st >= _REMINDER_STATUS_MAX || (unsigned)expect >= _REMINDER_STATUS_MAX ||
      expect == REMINDER_SENDING || st == REMINDER_SENDING)
    return -EINVAL; /* 'sending' rows change only under their claim */
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_REMINDER_SET_STATUS_IF, &q)) < 0 ||
      (r = bind_int64(&q, 1, id)) < 0 ||
      (r = bind_text(&q, 2, reminder_status_to_string(st))) < 0 ||
      (r = bind_int64(&q, 3, next_attempt_at)) < 0 || (r = bind_text(&q, 4, error)) < 0 ||
      (r = bind_text(&q, 5, provider_id)) < 0 || (r = bind_int64(&q, 6, now)) < 0 ||
      (r = bind_text(&q, 7, reminder_status_to_string(expect))) < 0)
    return r;
  r = guarded_step(&q, NULL);
  if (r == -ESTALE) {
    struct reminder m = {0};
    int k = store_reminder_get(s, id, &m);
    reminder_clear(&m);
    return k == -ENOENT ? -ENOENT : r;
  }
  return r;
}

int store_reminder_renew(struct store *s, int64_t id, int64_t claim, int64_t lease_until,
                         int64_t now) {
  if (!s)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_REMINDER_RENEW, &q)) < 0 || (r = bind_int64(&q, 1, id)) < 0 ||
      (r = bind_int64(&q, 2, claim)) < 0 || (r = bind_int64(&q, 3, lease_until)) < 0 ||
      (r = bind_int64(&q, 4, now)) < 0 || (r = stmt_exec(&q)) < 0)
    return r;
  return sqlite3_changes(s->db) == 0 ? -ESTALE : 0;
}

int store_reminder_foreach_expired(struct store *s, int64_t now, size_t limit,
                                   int (*cb)(const struct reminder *r, void *ud), void *ud) {
  if (!s || !cb)
    return -EINVAL;
  _cleanup_(claimed_done) struct claimed rows = {0};
  int r;
  {
    /* collected first: the callback writes to the rows it is given */
    _cleanup_stmt_ struct stmt_ref q = {0};
    if ((r = stmt_acquire(s, STMT_REMINDER_EXPIRED, &q)) < 0 || (r = bind_int64(&q, 1, now)) < 0 ||
        (r = bind_int64(&q, 2, limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit)) < 0)
      return r;
    if ((r = claimed_collect(&q, &rows)) < 0)
      return r;
  }
  return claimed_hand_out(&rows, cb, ud);
}

int store_reminder_recover_row(struct store *s, int64_t id, int64_t claim, enum reminder_status st,
                               int64_t next_attempt_at, const char *error, int64_t now) {
  if (!s || (st != REMINDER_RETRY && st != REMINDER_UNKNOWN && st != REMINDER_DEAD))
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_REMINDER_RECOVER_ROW, &q)) < 0 || (r = bind_int64(&q, 1, id)) < 0 ||
      (r = bind_int64(&q, 2, claim)) < 0 ||
      (r = bind_text(&q, 3, reminder_status_to_string(st))) < 0 ||
      (r = bind_int64(&q, 4, next_attempt_at)) < 0 || (r = bind_text(&q, 5, error)) < 0 ||
      (r = bind_int64(&q, 6, now)) < 0 || (r = stmt_exec(&q)) < 0)
    return r;
  return sqlite3_changes(s->db) == 0 ? -ESTALE : 0;
}

int store_reminder_reconcile_later(struct store *s, int64_t id, int64_t claim,
                                   int64_t next_attempt_at, const char *error, int64_t now,
                                   enum reminder_status *ret_status) {
  if (!s)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_REMINDER_RECONCILE, &q)) < 0 || (r = bind_int64(&q, 1, id)) < 0 ||
      (r = bind_int64(&q, 2, claim)) < 0 || (r = bind_int64(&q, 3, next_attempt_at)) < 0 ||
      (r = bind_text(&q, 4, error)) < 0 || (r = bind_int64(&q, 5, now)) < 0)
    return r;
  return guarded_step(&q, ret_status);
}

int store_reminder_recover(struct store *s, int64_t now) {
  if (!s)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_REMINDER_RECOVER, &q)) < 0 || (r = bind_int64(&q, 1, now)) < 0 ||
      (r = stmt_exec(&q)) < 0)
    return r;
  return sqlite3_changes(s->db);
}

int store_reminder_cancel_contract(struct store *s, const char *contract_id, int32_t term,
                                   const char *audience, int64_t now) {
  if (!s || isempty(contract_id) || (audience && !audience_valid(audience)))
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_REMINDER_CANCEL, &q)) < 0 ||
      (r = bind_text(&q, 1, contract_id)) < 0 ||
      (r = bind_int64(&q, 2, term < 0 ? -1 : term)) < 0 || (r = bind_text(&q, 3, audience)) < 0 ||
      (r = bind_int64(&q, 4, now)) < 0 || (r = stmt_exec(&q)) < 0)
    return r;
  return sqlite3_changes(s->db);
}

int store_reminder_count_by_status(struct store *s, int64_t counts[_REMINDER_STATUS_MAX]) {
  if (!s || !counts)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r = stmt_acquire(s, STMT_REMINDER_COUNT, &q);
  if (r < 0)
    return r;
  int64_t c[_REMINDER_STATUS_MAX] = {0};
  while ((r = stmt_step(&q)) > 0) {
    int st = reminder_status_from_string((const char *)sqlite3_column_text(q.st, 0));
    if (st < 0)
      return -EBADMSG;
    c[st] = sqlite3_column_int64(q.st, 1);
  }
  if (r < 0)
    return r;
  memcpy(counts, c, sizeof c);
  return 0;
}

/* ---- responses ----------------------------------------------------------------- */

int store_response_insert(struct store *s, const struct response *p, int64_t now, int64_t *ret_id) {
  if (!s || !p || isempty(p->contract_id) || isempty(p->kind) || p->term < 1)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_RESPONSE_INSERT, &q)) < 0 ||
      (r = bind_text(&q, 1, p->contract_id)) < 0 || (r = bind_int64(&q, 2, p->term)) < 0 ||
      (r = bind_text(&q, 3, p->kind)) < 0 || (r = bind_text(&q, 4, p->source)) < 0 ||
      (r = bind_text(&q, 5, p->channel)) < 0 || (r = bind_text(&q, 6, p->reason)) < 0 ||
      (r = bind_text(&q, 7, p->detail)) < 0 || (r = bind_text(&q, 8, p->idem_key)) < 0 ||
      (r = bind_int64(&q, 9, p->until_at)) < 0 || (r = bind_int64(&q, 10, p->new_expires_at)) < 0 ||
      (r = bind_int64(&q, 11, now)) < 0 || (r = stmt_exec(&q)) < 0)
    return r;
  if (ret_id)
    *ret_id = sqlite3_last_insert_rowid(s->db);
  return 0;
}

int store_response_foreach_contract(struct store *s, const char *contract_id, int32_t term,
                                    int (*cb)(const struct response *r, void *ud), void *ud) {
  if (!s || isempty(contract_id) || !cb)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_RESPONSE_FOREACH, &q)) < 0 ||
      (r = bind_text(&q, 1, contract_id)) < 0 || (r = bind_int64(&q, 2, term < 0 ? -1 : term)) < 0)
    return r;
  int n = 0;
  while ((r = stmt_step(&q)) > 0) {
    struct response p = {
        .id = sqlite3_column_int64(q.st, 0),
        .term = (int32_t)sqlite3_column_int64(q.st, 2),
        .until_at = sqlite3_column_int64(q.st, 9),
        .new_expires_at = sqlite3_column_int64(q.st, 10),
        .created_at = sqlite3_column_int64(q.st, 11),
    };
    (void)col_text(q.st, 1, false, &p.contract_id);
    (void)col_text(q.st, 3, false, &p.kind);
    (void)col_text(q.st, 4, false, &p.source);
    (void)col_text(q.st, 5, false, &p.channel);
    (void)col_text(q.st, 6, false, &p.reason);
    (void)col_text(q.st, 7, false, &p.detail);
    (void)col_text(q.st, 8, false, &p.idem_key);
    int k = cb(&p, ud);
    if (k < 0)
      return k;
    n++;
  }
  return r < 0 ? r : n;
}
