/* store_suppress: the suppressions table (schema v6), addresses nothing is
 * sent to (see store.h, "suppressions").
 *
 * One row per (address, kind), the address normalized by
 * store_address_normalize() so that every lookup is one exact probe of the
 * UNIQUE index. Writers: SMS STOP/START (daemon/http_sms.c), unsubscribe
 * answers (core/lifecycle.c), renewctl suppressions. Reader: the renderer,
 * before every send (notifiers/render.c).
 *
 * Owns nothing beyond the cached statements in struct store. Every call does
 * file I/O; writes are atomic (their own transaction, or a SAVEPOINT inside
 * the caller's). */
#include "core/store_internal.h"

#include <ctype.h>

#define NOTE_MAX 500

static const char *const kind_names[_SUPPRESS_KIND_MAX] = {
    [SUPPRESS_EMAIL] = "email",
    [SUPPRESS_SMS] = "sms",
};

const char *suppress_kind_to_string(enum suppress_kind k) {
  return (unsigned)k < _SUPPRESS_KIND_MAX ? kind_names[k] : NULL;
}

int suppress_kind_from_string(const char *s) {
  for (int i = 0; s && i < _SUPPRESS_KIND_MAX; i++)
    if (streq(kind_names[i], s))
      return i;
  return -EINVAL;
}

void suppression_clear(struct suppression *sp) {
  if (!sp)
    return;
  free(sp->address);
  free(sp->reason);
  free(sp->source);
  free(sp->note);
  *sp = (struct suppression){0};
}

/* ---- values ---------------------------------------------------------------------- */

static int normalize_email(const char *a, char *out) {
  while (*a == ' ' || *a == '\t')
    a++;
  size_t n = strlen(a);
  while (n && (a[n - 1] == ' ' || a[n - 1] == '\t'))
    n--;
  if (n == 0 || n > STORE_ADDRESS_MAX)
    return -EINVAL;
  size_t at = 0, ats = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)a[i];
    if (c <= ' ' || c == 0x7f)
      return -EINVAL;
    if (c == '@')
      at = i, ats++;
    out[i] = (char)tolower(c);
  }
  out[n] = 0;
  return ats == 1 && at > 0 && at + 1 < n ? 0 : -EINVAL;
}

static int normalize_phone(const char *a, char *out) {
  while (*a == ' ' || *a == '\t')
    a++;
  if (*a != '+')
    return -EINVAL;
  size_t n = 0;
  out[n++] = '+';
  for (const char *p = a + 1; *p; p++) {
    if (*p >= '0' && *p <= '9') {
      if (n == 16 || (n == 1 && *p == '0'))
        return -EINVAL;
      out[n++] = *p;
    } else if (!strchr(" -.()\t", *p) || n == 1)
      return -EINVAL;
  }
  out[n] = 0;
  return n - 1 >= 8 ? 0 : -EINVAL;
}

int store_address_normalize(enum suppress_kind k, const char *address,
                            char out[static STORE_ADDRESS_MAX + 1]) {
  if (!address || !out)
    return -EINVAL;
  switch (k) {
  case SUPPRESS_EMAIL:
    return normalize_email(address, out);
  case SUPPRESS_SMS:
    return normalize_phone(address, out);
  default:
    return -EINVAL;
  }
}

bool store_suppression_word_valid(const char *s) {
  if (isempty(s))
    return false;
  size_t n = 0;
  for (; s[n]; n++)
    if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '-'))
      return false;
  return n <= 32;
}

static bool note_valid(const char *s) {
  if (!s)
    return true;
  size_t n = 0;
  for (; s[n]; n++)
    if ((unsigned char)s[n] < ' ' || s[n] == 0x7f)
      return false;
  return n <= NOTE_MAX;
}

static int suppression_from_row(sqlite3_stmt *st, struct suppression *ret) {
  struct suppression sp = {
      .id = sqlite3_column_int64(st, 0),
      .created_at = sqlite3_column_int64(st, 6),
  };
  int k = suppress_kind_from_string((const char *)sqlite3_column_text(st, 2));
  sp.kind = k < 0 ? SUPPRESS_EMAIL : (enum suppress_kind)k;
  int r;
  if ((r = col_text(st, 1, true, &sp.address)) < 0 || (r = col_text(st, 3, true, &sp.reason)) < 0 ||
      (r = col_text(st, 4, true, &sp.source)) < 0 || (r = col_text(st, 5, true, &sp.note)) < 0) {
    suppression_clear(&sp);
    return r;
  }
  *ret = sp;
  return 0;
}

/* ---- writes --------------------------------------------------------------------------- */

/* Store-wide event kind: "kind=sms address=+49... reason=stop source=sms-inbound [why=...]". */
static int log_event(struct store *s, const char *kind, enum suppress_kind k, const char *address,
                     const char *reason, const char *source, const char *why, int64_t now) {
  _cleanup_free_ char *detail =
      strprintf("kind=%s address=%s reason=%s source=%s%s%s", kind_names[k], address,
                reason ? reason : "-", source ? source : "-", why ? " why=" : "", why ? why : "");
  return detail ? event_append(s, NULL, kind, detail, now) : -ENOMEM;
}

static int add_row(struct store *s, enum suppress_kind k, const char *addr, const char *reason,
                   const char *source, const char *note, int64_t now) {
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_SUPPRESS_ADD, &q)) < 0 || (r = bind_text(&q, 1, addr)) < 0 ||
      (r = bind_text(&q, 2, kind_names[k])) < 0 || (r = bind_text(&q, 3, reason)) < 0 ||
      (r = bind_text(&q, 4, source)) < 0 || (r = bind_text(&q, 5, note)) < 0 ||
      (r = bind_int64(&q, 6, now)) < 0 || (r = stmt_exec(&q)) < 0)
    return r;
  return sqlite3_changes(s->db) > 0;
}

int store_suppression_add(struct store *s, enum suppress_kind k, const char *address,
                          const char *reason, const char *source, const char *note, int64_t now) {
  char addr[STORE_ADDRESS_MAX + 1];
  if (!s || store_address_normalize(k, address, addr) < 0 ||
      !store_suppression_word_valid(reason) || (source && !store_suppression_word_valid(source)) ||
      !note_valid(note))
    return -EINVAL;
  bool own;
  int r = txn_enter(s, &own);
  if (r < 0)
    return r;
  int added = add_row(s, k, addr, reason, source, note, now);
  r = added;
  if (added > 0)
    r = log_event(s, "suppression.added", k, addr, reason, source, NULL, now);
  return txn_leave(s, own, r < 0 ? r : added);
}

/* Clears the customers' opt-out bit for addr; returns how many. */
static int clear_bits(struct store *s, enum suppress_kind k, const char *addr, int64_t now) {
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, k == SUPPRESS_SMS ? STMT_SUPPRESS_CLEAR_SMS : STMT_SUPPRESS_CLEAR_EMAIL,
                        &q)) < 0 ||
      (r = bind_text(&q, 1, addr)) < 0 || (r = bind_int64(&q, 2, now)) < 0)
    return r;
  int n = 0;
  while ((r = stmt_step(&q)) > 0) {
    _cleanup_free_ char *detail =
        strprintf("customer=%s cleared=%s address=%s", (const char *)sqlite3_column_text(q.st, 0),
                  kind_names[k], addr);
    if (!detail)
      return -ENOMEM;
    /* the contracts' change_seq moved (customer trigger): reload the maximum */
    s->seq_valid = false;
    if ((r = event_append(s, NULL, "customer.optout", detail, now)) < 0)
      return r;
    n++;
  }
  return r < 0 ? r : n;
}

static int del_row(struct store *s, enum suppress_kind k, const char *addr, bool optouts_only,
                   char **ret_reason) {
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_SUPPRESS_DEL, &q)) < 0 || (r = bind_text(&q, 1, addr)) < 0 ||
      (r = bind_text(&q, 2, kind_names[k])) < 0 || (r = bind_int64(&q, 3, optouts_only)) < 0)
    return r;
  r = stmt_step(&q);
  if (r <= 0)
    return r;
  if ((r = col_text(q.st, 0, true, ret_reason)) < 0)
    return r;
  r = stmt_exec(&q); /* RETURNING: the DELETE is done when the statement is */
  return r < 0 ? r : 1;
}

int store_suppression_remove(struct store *s, enum suppress_kind k, const char *address,
                             bool optouts_only, const char *source, const char *why, int64_t now) {
  char addr[STORE_ADDRESS_MAX + 1];
  if (!s || store_address_normalize(k, address, addr) < 0 ||
      (source && !store_suppression_word_valid(source)) || !note_valid(why))
    return -EINVAL;
  bool own;
  int r = txn_enter(s, &own);
  if (r < 0)
    return r;
  _cleanup_free_ char *reason = NULL;
  int removed = del_row(s, k, addr, optouts_only, &reason);
  r = removed;
  if (removed > 0)
    r = log_event(s, "suppression.removed", k, addr, reason, source, why, now);
  int cleared = r >= 0 ? clear_bits(s, k, addr, now) : 0;
  if (r >= 0)
    r = cleared;
  return txn_leave(s, own, r < 0 ? r : (removed > 0 || cleared > 0));
}

/* ---- reads -------------------------------------------------------------------------------- */

int store_suppression_check(struct store *s, enum suppress_kind k, const char *address,
                            struct suppression *ret) {
  char addr[STORE_ADDRESS_MAX + 1];
  if (!s || (unsigned)k >= _SUPPRESS_KIND_MAX)
    return -EINVAL;
  if (store_address_normalize(k, address, addr) < 0)
    return 0; /* not an address of that kind: nothing can suppress it */
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_SUPPRESS_GET, &q)) < 0 || (r = bind_text(&q, 1, addr)) < 0 ||
      (r = bind_text(&q, 2, kind_names[k])) < 0)
    return r;
  r = stmt_step(&q);
  if (r <= 0 || !ret)
    return r;
  r = suppression_from_row(q.st, ret);
  return r < 0 ? r : 1;
}

int store_suppression_foreach(struct store *s, const struct store_suppression_filter *f,
                              int (*cb)(const struct suppression *sp, void *ud), void *ud) {
  struct store_suppression_filter all = {.kind = -1};
  if (!f)
    f = &all;
  if (!s || !cb || f->kind >= _SUPPRESS_KIND_MAX || (f->address && f->kind < 0) ||
      f->limit > INT64_MAX)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_SUPPRESS_LIST, &q)) < 0 ||
      (r = f->kind < 0 ? bind_null(&q, 1) : bind_text(&q, 1, kind_names[f->kind])) < 0 ||
      (r = bind_text(&q, 2, f->address)) < 0 || (r = bind_text(&q, 3, f->reason)) < 0 ||
      (r = bind_int64(&q, 4, f->after_id)) < 0 ||
      (r = bind_int64(&q, 5, f->limit ? (int64_t)f->limit : -1)) < 0)
    return r;
  int n = 0;
  while ((r = stmt_step(&q)) > 0) {
    struct suppression sp;
    if ((r = suppression_from_row(q.st, &sp)) < 0)
      return r;
    int k = cb(&sp, ud);
    suppression_clear(&sp);
    if (k < 0)
      return k;
    n++;
  }
  return r < 0 ? r : n;
}

int store_suppression_foreach_contact(struct store *s, const char *email, const char *phone,
                                      int (*cb)(const struct suppression *sp, void *ud), void *ud) {
  if (!s || !cb)
    return -EINVAL;
  const char *addr[_SUPPRESS_KIND_MAX] = {[SUPPRESS_EMAIL] = email, [SUPPRESS_SMS] = phone};
  int n = 0;
  for (int k = 0; k < _SUPPRESS_KIND_MAX; k++) {
    if (isempty(addr[k]))
      continue;
    _cleanup_(suppression_clear) struct suppression sp = {0};
    int r = store_suppression_check(s, (enum suppress_kind)k, addr[k], &sp);
    if (r < 0)
      return r;
    if (r == 0)
      continue;
    if ((r = cb(&sp, ud)) < 0)
      return r;
    n++;
  }
  return n;
}
