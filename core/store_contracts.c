/* store_contracts: owners, customers and contracts in the store.
 *
 * Upserts read the existing row through a cached statement, compare in C and
 * then insert, update or do nothing, so that the changed fields can be logged
 * and an expiry change can start a new term. change_seq values come from the
 * maximum cached in struct store while we hold the write lock (seq_refresh());
 * an upsert outside a caller's transaction opens its own (BEGIN IMMEDIATE).
 * Blocking: file I/O, busy timeout. No state beyond struct store. */
#include "core/store_internal.h"

#include <inttypes.h>

/* NULL and "" are the same to the store (empty strings are stored as NULL). */
static bool str_differs(const char *stored, const char *v) {
  return !streq_ptr(isempty(stored) ? NULL : stored, isempty(v) ? NULL : v);
}

/* Appends ",name" (or "name" first) to the changed-field list. */
static int changed_add(struct buf *b, const char *name) {
  if (b->len > 0 && buf_puts(b, ",") < 0)
    return -ENOMEM;
  return buf_puts(b, name);
}

static const char *col_str(sqlite3_stmt *st, int i) {
  return (const char *)sqlite3_column_text(st, i);
}

/* Opens our own transaction when the caller has none. */
static int write_enter(struct store *s, bool *ret_own) {
  *ret_own = false;
  if (!sqlite3_get_autocommit(s->db))
    return 0;
  return txn_enter(s, ret_own);
}

static int write_leave(struct store *s, bool own, int r) {
  return own ? txn_leave(s, true, r) : r;
}

/* ---- row readers ------------------------------------------------------------ */

int contract_from_row(sqlite3_stmt *st, int col, bool copy, struct contract *ret) {
  int state = contract_state_from_string(col_str(st, col + 9));
  if (state < 0)
    return -EBADMSG;
  struct contract c = {
      .rowid = sqlite3_column_int64(st, col + 0),
      .starts_at = sqlite3_column_int64(st, col + 5),
      .expires_at = sqlite3_column_int64(st, col + 6),
      .value_minor = sqlite3_column_int64(st, col + 7),
      .term = (int32_t)sqlite3_column_int64(st, col + 8),
      .state = state,
      .state_until = sqlite3_column_int64(st, col + 10),
      .ladder_id = sqlite3_column_int64(st, col + 11),
      .next_due_at = sqlite3_column_int64(st, col + 12),
      .change_seq = sqlite3_column_int64(st, col + 13),
      .created_at = sqlite3_column_int64(st, col + 14),
      .updated_at = sqlite3_column_int64(st, col + 15),
  };
  int r;
  if ((r = col_text(st, col + 1, copy, &c.id)) < 0 ||
      (r = col_text(st, col + 2, copy, &c.customer_id)) < 0 ||
      (r = col_text(st, col + 3, copy, &c.product)) < 0 ||
      (r = col_text(st, col + 4, copy, &c.currency)) < 0) {
    if (copy)
      contract_clear(&c);
    return r;
  }
  *ret = c;
  return 0;
}

int customer_from_row(sqlite3_stmt *st, int col, bool copy, struct customer *ret) {
  struct customer c = {.optout = (unsigned)sqlite3_column_int64(st, col + 8)};
  int r;
  if ((r = col_text(st, col + 0, copy, &c.id)) < 0 ||
      (r = col_text(st, col + 1, copy, &c.name)) < 0 ||
      (r = col_text(st, col + 2, copy, &c.email)) < 0 ||
      (r = col_text(st, col + 3, copy, &c.phone)) < 0 ||
      (r = col_text(st, col + 4, copy, &c.tz)) < 0 ||
      (r = col_text(st, col + 5, copy, &c.locale)) < 0 ||
      (r = col_text(st, col + 6, copy, &c.segment)) < 0 ||
      (r = col_text(st, col + 7, copy, &c.owner_id)) < 0) {
    if (copy)
      customer_clear(&c);
    return r;
  }
  *ret = c;
  return 0;
}

/* ---- owners ---------------------------------------------------------------------- */

static const char *const owner_fields[] = {"name", "email", "phone", "webhook", "tz", "manager_id"};

int store_owner_upsert(struct store *s, const struct owner *o, int64_t now) {
  if (!s || !o || isempty(o->id))
    return -EINVAL;
  const char *vals[] = {o->name, o->email, o->phone, o->webhook, o->tz, o->manager_id};
  _cleanup_(buf_free) struct buf changed = {0};
  bool exists = false;
  int r;

  {
    _cleanup_stmt_ struct stmt_ref q = {0};
    if ((r = stmt_acquire(s, STMT_OWNER_GET, &q)) < 0 || (r = bind_text(&q, 1, o->id)) < 0)
      return r;
    r = stmt_step(&q);
    if (r < 0)
      return r;
    exists = r > 0;
    for (size_t i = 0; exists && i < ELEMENTSOF(vals); i++)
      if (str_differs(col_str(q.st, 1 + (int)i), vals[i]) &&
          changed_add(&changed, owner_fields[i]) < 0)
        return -ENOMEM;
  }
  if (exists && changed.len == 0)
    return STORE_UNCHANGED;

  bool own;
  if ((r = txn_enter(s, &own)) < 0)
    return r;
  {
    _cleanup_stmt_ struct stmt_ref q = {0};
    r = stmt_acquire(s, exists ? STMT_OWNER_UPDATE : STMT_OWNER_INSERT, &q);
    if (r >= 0)
      r = bind_text(&q, 1, o->id);
    for (size_t i = 0; r >= 0 && i < ELEMENTSOF(vals); i++)
      r = bind_text(&q, 2 + (int)i, vals[i]);
    if (r >= 0)
      r = bind_int64(&q, 8, now);
    if (r >= 0)
      r = stmt_exec(&q);
  }
  if (r >= 0 && exists) {
    _cleanup_free_ char *detail = strprintf("owner=%s fields=%s", o->id, changed.data);
    r = detail ? event_append(s, NULL, "owner.updated", detail, now) : -ENOMEM;
  }
  r = txn_leave(s, own, r);
  if (r < 0)
    return r;
  return exists ? STORE_UPDATED : STORE_INSERTED;
}

static int owner_from_row(struct stmt_ref *q, struct owner *ret) {
  struct owner o = {0};
  int r;
  if ((r = col_text(q->st, 0, true, &o.id)) < 0 || (r = col_text(q->st, 1, true, &o.name)) < 0 ||
      (r = col_text(q->st, 2, true, &o.email)) < 0 ||
      (r = col_text(q->st, 3, true, &o.phone)) < 0 ||
      (r = col_text(q->st, 4, true, &o.webhook)) < 0 || (r = col_text(q->st, 5, true, &o.tz)) < 0 ||
      (r = col_text(q->st, 6, true, &o.manager_id)) < 0) {
    owner_clear(&o);
    return r;
  }
  *ret = o;
  return 0;
}

int store_owner_get(struct store *s, const char *id, struct owner *ret) {
  if (!s || isempty(id) || !ret)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_OWNER_GET, &q)) < 0 || (r = bind_text(&q, 1, id)) < 0)
    return r;
  r = stmt_step(&q);
  if (r < 0)
    return r;
  if (r == 0)
    return -ENOENT;
  return owner_from_row(&q, ret);
}

int store_owner_foreach(struct store *s, int (*cb)(const struct owner *o, void *ud), void *ud) {
  if (!s || !cb)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r, n = 0;
  if ((r = stmt_acquire(s, STMT_OWNER_LIST, &q)) < 0)
    return r;
  while ((r = stmt_step(&q)) > 0) {
    struct owner o;
    if ((r = owner_from_row(&q, &o)) < 0)
      return r;
    r = cb(&o, ud);
    owner_clear(&o);
    if (r < 0)
      return r;
    n++;
  }
  return r < 0 ? r : n;
}

/* ---- customers ------------------------------------------------------------------- */

static const char *const customer_fields[] = {"name",   "email",   "phone",   "tz",
                                              "locale", "segment", "owner_id"};

/* INSERT ... ON CONFLICT(id) DO NOTHING: 1 = inserted, 0 = exists, -errno. */
static int customer_insert(struct store *s, const struct customer *c, const char *const vals[7],
                           int64_t now) {
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r = stmt_acquire(s, STMT_CUSTOMER_INSERT, &q);
  if (r >= 0)
    r = bind_text(&q, 1, c->id);
  for (size_t i = 0; r >= 0 && i < 7; i++)
    r = bind_text(&q, 2 + (int)i, vals[i]);
  if (r >= 0)
    r = bind_int64(&q, 9, c->optout);
  if (r >= 0)
    r = bind_int64(&q, 10, now);
  if (r >= 0)
    r = stmt_exec(&q);
  if (r < 0)
    return r;
  return sqlite3_changes(s->db) > 0;
}

int store_customer_upsert(struct store *s, const struct customer *c, int64_t now) {
  if (!s || !c || isempty(c->id) || c->optout > 7)
    return -EINVAL;
  const char *vals[] = {c->name, c->email, c->phone, c->tz, c->locale, c->segment, c->owner_id};
  _Static_assert(ELEMENTSOF(vals) == 7, "customer columns");
  _cleanup_(buf_free) struct buf changed = {0};
  bool exists = false;
  unsigned optout = c->optout;
  int r;

  /* While upserts keep inserting (a first import), skip the lookup. */
  if (s->customer_insert_first) {
    r = customer_insert(s, c, vals, now);
    if (r != 0)
      return r < 0 ? r : STORE_INSERTED;
    s->customer_insert_first = false;
  }
  {
    _cleanup_stmt_ struct stmt_ref q = {0};
    if ((r = stmt_acquire(s, STMT_CUSTOMER_GET, &q)) < 0 || (r = bind_text(&q, 1, c->id)) < 0)
      return r;
    r = stmt_step(&q);
    if (r < 0)
      return r;
    exists = r > 0;
    if (exists) {
      for (size_t i = 0; i < ELEMENTSOF(vals); i++)
        if (str_differs(col_str(q.st, 1 + (int)i), vals[i]) &&
            changed_add(&changed, customer_fields[i]) < 0)
          return -ENOMEM;
      /* opt-outs are sticky: an import adds bits, only set_optout clears them */
      unsigned old = (unsigned)sqlite3_column_int64(q.st, 8);
      optout |= old;
      if (optout != old && changed_add(&changed, "optout") < 0)
        return -ENOMEM;
    }
  }
  if (!exists) {
    r = customer_insert(s, c, vals, now);
    if (r < 0)
      return r;
    s->customer_insert_first = true;
    return r > 0 ? STORE_INSERTED : -EBUSY; /* cannot exist: we hold the write lock */
  }
  if (changed.len == 0)
    return STORE_UNCHANGED;

  bool own;
  if ((r = txn_enter(s, &own)) < 0)
    return r;
  {
    _cleanup_stmt_ struct stmt_ref q = {0};
    r = stmt_acquire(s, STMT_CUSTOMER_UPDATE, &q);
    if (r >= 0)
      r = bind_text(&q, 1, c->id);
    for (size_t i = 0; r >= 0 && i < ELEMENTSOF(vals); i++)
      r = bind_text(&q, 2 + (int)i, vals[i]);
    if (r >= 0)
      r = bind_int64(&q, 9, optout);
    if (r >= 0)
      r = bind_int64(&q, 10, now);
    if (r >= 0)
      r = stmt_exec(&q);
  }
  /* the customers trigger bumped this customer's contracts */
  s->seq_valid = false;
  if (r >= 0) {
    _cleanup_free_ char *detail = strprintf("customer=%s fields=%s", c->id, changed.data);
    r = detail ? event_append(s, NULL, "customer.updated", detail, now) : -ENOMEM;
  }
  r = txn_leave(s, own, r);
  return r < 0 ? r : STORE_UPDATED;
}

int customer_get_by(struct store *s, enum store_stmt id, const char *key, struct customer *ret) {
  if (!s || isempty(key) || !ret)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, id, &q)) < 0 || (r = bind_text(&q, 1, key)) < 0)
    return r;
  r = stmt_step(&q);
  if (r < 0)
    return r;
  if (r == 0)
    return -ENOENT;
  return customer_from_row(q.st, 0, true, ret);
}

int store_customer_get(struct store *s, const char *id, struct customer *ret) {
  return customer_get_by(s, STMT_CUSTOMER_GET, id, ret);
}

int store_customer_set_optout(struct store *s, const char *customer_id, unsigned optout,
                              int64_t now) {
  if (!s || isempty(customer_id) || optout > 7)
    return -EINVAL;
  bool own;
  int r = txn_enter(s, &own);
  if (r < 0)
    return r;
  {
    _cleanup_stmt_ struct stmt_ref q = {0};
    if ((r = stmt_acquire(s, STMT_CUSTOMER_SET_OPTOUT, &q)) >= 0 &&
        (r = bind_text(&q, 1, customer_id)) >= 0 && (r = bind_int64(&q, 2, optout)) >= 0 &&
        (r = bind_int64(&q, 3, now)) >= 0)
      r = stmt_exec(&q);
  }
  s->seq_valid = false;
  if (r >= 0 && sqlite3_changes(s->db) == 0)
    r = -ENOENT;
  if (r >= 0) {
    _cleanup_free_ char *detail = strprintf("customer=%s optout=%u", customer_id, optout);
    r = detail ? event_append(s, NULL, "customer.optout", detail, now) : -ENOMEM;
  }
  return txn_leave(s, own, r);
}

/* ---- contracts --------------------------------------------------------------------- */

/* What the existing row looked like, as far as an upsert needs it. */
struct contract_old {
  int64_t rowid, expires_at, state_until, ladder_id, next_due_at;
  int32_t term;
  char state[16];
};

/* INSERT ... ON CONFLICT(id) DO NOTHING with change_seq seq: 1 = inserted (the
 * cached maximum advances), 0 = exists, -errno. */
static int contract_insert(struct store *s, const struct contract *c, int64_t seq, int64_t now) {
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_CONTRACT_INSERT, &q)) < 0 || (r = bind_text(&q, 1, c->id)) < 0 ||
      (r = bind_text(&q, 2, c->customer_id)) < 0 || (r = bind_text(&q, 3, c->product)) < 0 ||
      (r = bind_int64(&q, 4, c->starts_at)) < 0 || (r = bind_int64(&q, 5, c->expires_at)) < 0 ||
      (r = bind_int64(&q, 6, c->value_minor)) < 0 || (r = bind_text(&q, 7, c->currency)) < 0 ||
      (r = bind_int64(&q, 8, seq)) < 0 || (r = bind_int64(&q, 9, now)) < 0 ||
      (r = stmt_exec(&q)) < 0)
    return r;
  if (sqlite3_changes(s->db) == 0)
    return 0;
  s->max_seq = seq;
  return 1;
}

static int contract_upsert_locked(struct store *s, const struct contract *c, int64_t now) {
  _cleanup_(buf_free) struct buf changed = {0};
  struct contract_old old = {0};
  bool exists;
  int r;

  if ((r = seq_refresh(s)) < 0)
    return r;
  int64_t seq = seq_next(s);

  /* While upserts keep inserting (a first import), skip the lookup. */
  if (s->contract_insert_first) {
    r = contract_insert(s, c, seq, now);
    if (r != 0)
      return r < 0 ? r : STORE_INSERTED;
    s->contract_insert_first = false;
  }
  {
    _cleanup_stmt_ struct stmt_ref q = {0};
    if ((r = stmt_acquire(s, STMT_CONTRACT_GET, &q)) < 0 || (r = bind_text(&q, 1, c->id)) < 0)
      return r;
    r = stmt_step(&q);
    if (r < 0)
      return r;
    exists = r > 0;
    if (exists) {
      old = (struct contract_old){
          .rowid = sqlite3_column_int64(q.st, 0),
          .expires_at = sqlite3_column_int64(q.st, 6),
          .term = (int32_t)sqlite3_column_int64(q.st, 8),
          .state_until = sqlite3_column_int64(q.st, 10),
          .ladder_id = sqlite3_column_int64(q.st, 11),
          .next_due_at = sqlite3_column_int64(q.st, 12),
      };
      snprintf(old.state, sizeof old.state, "%s", col_str(q.st, 9) ?: "active");
      if ((str_differs(col_str(q.st, 2), c->customer_id) &&
           changed_add(&changed, "customer_id") < 0) ||
          (str_differs(col_str(q.st, 3), c->product) && changed_add(&changed, "product") < 0) ||
          (sqlite3_column_int64(q.st, 5) != c->starts_at &&
           changed_add(&changed, "starts_at") < 0) ||
          (old.expires_at != c->expires_at && changed_add(&changed, "expires_at") < 0) ||
          (sqlite3_column_int64(q.st, 7) != c->value_minor &&
           changed_add(&changed, "value_minor") < 0) ||
          (str_differs(col_str(q.st, 4), c->currency) && changed_add(&changed, "currency") < 0))
        return -ENOMEM;
    }
  }

  if (!exists) {
    r = contract_insert(s, c, seq, now);
    if (r < 0)
      return r;
    s->contract_insert_first = true;
    return r > 0 ? STORE_INSERTED : -EBUSY; /* cannot exist: we hold the write lock */
  }
  if (changed.len == 0)
    return STORE_UNCHANGED;

  bool new_term = old.expires_at != c->expires_at;
  int32_t term = new_term ? old.term + 1 : old.term;
  bool own;
  if ((r = txn_enter(s, &own)) < 0)
    return r;
  {
    _cleanup_stmt_ struct stmt_ref q = {0};
    if ((r = stmt_acquire(s, STMT_CONTRACT_UPDATE, &q)) >= 0 &&
        (r = bind_int64(&q, 1, old.rowid)) >= 0 && (r = bind_text(&q, 2, c->customer_id)) >= 0 &&
        (r = bind_text(&q, 3, c->product)) >= 0 && (r = bind_int64(&q, 4, c->starts_at)) >= 0 &&
        (r = bind_int64(&q, 5, c->expires_at)) >= 0 &&
        (r = bind_int64(&q, 6, c->value_minor)) >= 0 && (r = bind_text(&q, 7, c->currency)) >= 0 &&
        (r = bind_int64(&q, 8, term)) >= 0 &&
        (r = bind_text(&q, 9, new_term ? "active" : old.state)) >= 0 &&
        (r = bind_int64(&q, 10, new_term ? 0 : old.state_until)) >= 0 &&
        (r = bind_id(&q, 11, new_term ? 0 : old.ladder_id)) >= 0 &&
        (r = bind_int64(&q, 12, new_term ? 0 : old.next_due_at)) >= 0 &&
        (r = bind_int64(&q, 13, seq)) >= 0 && (r = bind_int64(&q, 14, now)) >= 0)
      r = stmt_exec(&q);
  }
  if (r >= 0)
    s->max_seq = seq;
  if (r >= 0 && new_term) {
    _cleanup_stmt_ struct stmt_ref q = {0};
    if ((r = stmt_acquire(s, STMT_REMINDER_CANCEL_OLD_TERMS, &q)) >= 0 &&
        (r = bind_text(&q, 1, c->id)) >= 0 && (r = bind_int64(&q, 2, term)) >= 0 &&
        (r = bind_int64(&q, 3, now)) >= 0)
      r = stmt_exec(&q);
  }
  if (r >= 0) {
    _cleanup_free_ char *detail = NULL;
    if (new_term) {
      char a[21], b[21];
      detail = strprintf("term=%" PRId32 " expires_at=%s previous=%s fields=%s", term,
                         format_rfc3339(c->expires_at, a), format_rfc3339(old.expires_at, b),
                         changed.data);
    } else
      detail = strprintf("fields=%s", changed.data);
    r = detail ? event_append(s, c->id, new_term ? "contract.new_term" : "contract.updated", detail,
                              now)
               : -ENOMEM;
  }
  r = txn_leave(s, own, r);
  return r < 0 ? r : STORE_UPDATED;
}

int store_contract_upsert(struct store *s, const struct contract *c, int64_t now) {
  if (!s || !c || isempty(c->id))
    return -EINVAL;
  bool own;
  int r = write_enter(s, &own);
  if (r < 0)
    return r;
  r = contract_upsert_locked(s, c, now);
  return write_leave(s, own, r);
}

static int contract_get_by(struct store *s, enum store_stmt id, const char *key, int64_t rowid,
                           struct contract *ret) {
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r = stmt_acquire(s, id, &q);
  if (r < 0)
    return r;
  r = key ? bind_text(&q, 1, key) : bind_int64(&q, 1, rowid);
  if (r < 0)
    return r;
  r = stmt_step(&q);
  if (r < 0)
    return r;
  if (r == 0)
    return -ENOENT;
  return contract_from_row(q.st, 0, true, ret);
}

int store_contract_get(struct store *s, const char *id, struct contract *ret) {
  if (!s || isempty(id) || !ret)
    return -EINVAL;
  return contract_get_by(s, STMT_CONTRACT_GET, id, 0, ret);
}

int store_contract_get_by_rowid(struct store *s, int64_t rowid, struct contract *ret) {
  if (!s || rowid <= 0 || !ret)
    return -EINVAL;
  return contract_get_by(s, STMT_CONTRACT_GET_ROWID, NULL, rowid, ret);
}

static int contract_set_state_locked(struct store *s, const struct contract *c,
                                     const char *event_kind, const char *event_detail,
                                     int64_t now) {
  int64_t rowid = c->rowid;
  int r;
  if (rowid == 0) {
    _cleanup_(contract_clear) struct contract cur = {0};
    if ((r = store_contract_get(s, c->id, &cur)) < 0)
      return r;
    rowid = cur.rowid;
  }
  if ((r = seq_refresh(s)) < 0)
    return r;
  int64_t seq = seq_next(s);
  _cleanup_free_ char *id = NULL;
  {
    _cleanup_stmt_ struct stmt_ref q = {0};
    if ((r = stmt_acquire(s, STMT_CONTRACT_SET_STATE, &q)) < 0 ||
        (r = bind_int64(&q, 1, rowid)) < 0 ||
        (r = bind_text(&q, 2, contract_state_to_string(c->state))) < 0 ||
        (r = bind_int64(&q, 3, c->state_until)) < 0 || (r = bind_int64(&q, 4, c->term)) < 0 ||
        (r = bind_int64(&q, 5, c->expires_at)) < 0 || (r = bind_id(&q, 6, c->ladder_id)) < 0 ||
        (r = bind_int64(&q, 7, seq)) < 0 || (r = bind_int64(&q, 8, now)) < 0)
      return r;
    r = stmt_step(&q);
    if (r < 0)
      return r;
    if (r == 0)
      return -ENOENT;
    if ((r = col_text(q.st, 0, true, &id)) < 0)
      return r;
    if ((r = stmt_exec(&q)) < 0)
      return r;
  }
  s->max_seq = seq;
  {
    _cleanup_stmt_ struct stmt_ref q = {0};
    if ((r = stmt_acquire(s, STMT_REMINDER_CANCEL_OLD_TERMS, &q)) < 0 ||
        (r = bind_text(&q, 1, id)) < 0 || (r = bind_int64(&q, 2, c->term)) < 0 ||
        (r = bind_int64(&q, 3, now)) < 0 || (r = stmt_exec(&q)) < 0)
      return r;
  }
  if (!isempty(event_kind))
    return event_append(s, id, event_kind, event_detail, now);
  return 0;
}

int store_contract_set_state(struct store *s, const struct contract *c, const char *event_kind,
                             const char *event_detail, int64_t now) {
  if (!s || !c || (c->rowid <= 0 && isempty(c->id)) || (unsigned)c->state >= _CONTRACT_STATE_MAX ||
      c->term < 1)
    return -EINVAL;
  bool own;
  int r = txn_enter(s, &own);
  if (r < 0)
    return r;
  r = contract_set_state_locked(s, c, event_kind, event_detail, now);
  return txn_leave(s, own, r);
}

int store_contract_set_next_due(struct store *s, int64_t rowid, int64_t next_due_at) {
  if (!s || rowid <= 0 || next_due_at < 0)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_CONTRACT_SET_NEXT_DUE, &q)) < 0 ||
      (r = bind_int64(&q, 1, rowid)) < 0 || (r = bind_int64(&q, 2, next_due_at)) < 0 ||
      (r = stmt_exec(&q)) < 0)
    return r;
  return sqlite3_changes(s->db) == 0 ? -ENOENT : 0;
}

/* ---- walks and counts ------------------------------------------------------------ */

static int64_t limit_of(size_t limit) {
  return limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit;
}

int store_contract_foreach(struct store *s, const struct store_contract_filter *f,
                           int (*cb)(const struct contract *c, const struct customer *cu, void *ud),
                           void *ud) {
  static const struct store_contract_filter all = {.state = -1};
  if (!s || !cb)
    return -EINVAL;
  if (!f)
    f = &all;
  if (f->state >= _CONTRACT_STATE_MAX || f->state < -1)
    return -EINVAL;
  bool by_customer = !isempty(f->customer_id), after = f->after_id != NULL;
  if (by_customer && after)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r = stmt_acquire(s,
                       by_customer ? STMT_CONTRACT_FOREACH_CUSTOMER
                       : after     ? STMT_CONTRACT_FOREACH_AFTER
                                   : STMT_CONTRACT_FOREACH,
                       &q);
  if (r < 0)
    return r;
  if ((r = bind_int64(&q, 1, f->expires_from ? f->expires_from : INT64_MIN)) < 0 ||
      (r = bind_int64(&q, 2, f->expires_until ? f->expires_until : INT64_MAX)) < 0 ||
      (r = bind_text(&q, 3, f->state >= 0 ? contract_state_to_string(f->state) : NULL)) < 0 ||
      (r = bind_text(&q, 4, f->segment)) < 0 || (r = bind_int64(&q, 5, limit_of(f->limit))) < 0 ||
      (by_customer && (r = bind_text(&q, 6, f->customer_id)) < 0))
    return r;
  /* "" sorts before every id: bound as text, not as NULL */
  if (after) {
    int rc = sqlite3_bind_text(q.st, 6, f->after_id, -1, SQLITE_STATIC);
    if (rc != SQLITE_OK)
      return store_error(s, rc);
  }
  int n = 0;
  while ((r = stmt_step(&q)) > 0) {
    struct contract c;
    struct customer cu;
    if ((r = contract_from_row(q.st, 0, false, &c)) < 0)
      return r;
    bool has_cu = sqlite3_column_type(q.st, STORE_CONTRACT_NCOLS) != SQLITE_NULL;
    if (has_cu && (r = customer_from_row(q.st, STORE_CONTRACT_NCOLS, false, &cu)) < 0)
      return r;
    int k = cb(&c, has_cu ? &cu : NULL, ud);
    if (k < 0)
      return k;
    n++;
  }
  return r < 0 ? r : n;
}

/* Walks rows of a statement returning STORE_CONTRACT_COLS. */
static int contract_walk(struct stmt_ref *q, int (*cb)(const struct contract *c, void *ud),
                         void *ud, int64_t *ret_max) {
  int n = 0, r;
  while ((r = stmt_step(q)) > 0) {
    struct contract c;
    if ((r = contract_from_row(q->st, 0, false, &c)) < 0)
      return r;
    if (ret_max && c.change_seq > *ret_max)
      *ret_max = c.change_seq;
    int k = cb(&c, ud);
    if (k < 0)
      return k;
    n++;
  }
  return r < 0 ? r : n;
}

int store_contract_foreach_changed(struct store *s, int64_t since, size_t limit,
                                   int (*cb)(const struct contract *c, void *ud), void *ud,
                                   int64_t *ret_max) {
  if (!s || !cb)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_CONTRACT_FOREACH_CHANGED, &q)) < 0 ||
      (r = bind_int64(&q, 1, since)) < 0 || (r = bind_int64(&q, 2, limit_of(limit))) < 0)
    return r;
  int64_t max = since;
  r = contract_walk(&q, cb, ud, &max);
  if (r >= 0 && ret_max)
    *ret_max = max;
  return r;
}

int store_contract_foreach_due(struct store *s, int64_t until, size_t limit,
                               int (*cb)(const struct contract *c, void *ud), void *ud) {
  if (!s || !cb)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_CONTRACT_FOREACH_DUE, &q)) < 0 ||
      (r = bind_int64(&q, 1, until)) < 0 || (r = bind_int64(&q, 2, limit_of(limit))) < 0)
    return r;
  return contract_walk(&q, cb, ud, NULL);
}

/* Walks a page and moves the cursor to its last row (keyed by change_seq or
 * next_due_at). */
static int contract_page_walk(struct stmt_ref *q, struct store_cursor *cur,
                              int (*cb)(const struct contract *c, void *ud), void *ud,
                              bool by_change_seq) {
  int n = 0, r;
  while ((r = stmt_step(q)) > 0) {
    struct contract c;
    if ((r = contract_from_row(q->st, 0, false, &c)) < 0)
      return r;
    *cur = (struct store_cursor){.key = by_change_seq ? c.change_seq : c.next_due_at,
                                 .rowid = c.rowid};
    int k = cb(&c, ud);
    if (k < 0)
      return k;
    n++;
  }
  return r < 0 ? r : n;
}

int store_contract_changed_page(struct store *s, struct store_cursor *cur, size_t limit,
                                int (*cb)(const struct contract *c, void *ud), void *ud) {
  if (!s || !cur || !cb || limit == 0)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_CONTRACT_CHANGED_PAGE, &q)) < 0 ||
      (r = bind_int64(&q, 1, cur->key)) < 0 || (r = bind_int64(&q, 2, cur->rowid)) < 0 ||
      (r = bind_int64(&q, 3, limit_of(limit))) < 0)
    return r;
  return contract_page_walk(&q, cur, cb, ud, true);
}

int store_contract_due_page(struct store *s, struct store_cursor *cur, int64_t until, size_t limit,
                            int (*cb)(const struct contract *c, void *ud), void *ud) {
  if (!s || !cur || !cb || limit == 0)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_CONTRACT_DUE_PAGE, &q)) < 0 ||
      (r = bind_int64(&q, 1, cur->key)) < 0 || (r = bind_int64(&q, 2, cur->rowid)) < 0 ||
      (r = bind_int64(&q, 3, until)) < 0 || (r = bind_int64(&q, 4, limit_of(limit))) < 0)
    return r;
  return contract_page_walk(&q, cur, cb, ud, false);
}

int store_contract_max_rowid(struct store *s, int64_t *ret) {
  if (!s || !ret)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_MAX_ROWID, &q)) < 0)
    return r;
  r = stmt_step(&q);
  if (r < 0)
    return r;
  *ret = r > 0 ? sqlite3_column_int64(q.st, 0) : 0;
  return 0;
}

int store_contract_max_change_seq(struct store *s, int64_t *ret) {
  if (!s || !ret)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_MAX_SEQ, &q)) < 0)
    return r;
  r = stmt_step(&q);
  if (r < 0)
    return r;
  *ret = r > 0 ? sqlite3_column_int64(q.st, 0) : 0;
  return 0;
}

int store_contract_count(struct store *s, int state, int64_t *ret) {
  if (!s || !ret || state < -1 || state >= _CONTRACT_STATE_MAX)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_CONTRACT_COUNT, &q)) < 0 ||
      (r = bind_text(&q, 1, state >= 0 ? contract_state_to_string(state) : NULL)) < 0)
    return r;
  r = stmt_step(&q);
  if (r < 0)
    return r;
  *ret = r > 0 ? sqlite3_column_int64(q.st, 0) : 0;
  return 0;
}
