/* store_report: the rows behind the renewal report (see store.h, "report rows").
 *
 * Three read-only queries over the same term set (current terms from
 * contracts, ended terms from the terms table, both filtered on the expiry
 * index), each ordered by (contract_id, term), merged in one pass: for each
 * term the callback gets the term with its outbox rows and responses. The
 * statements are prepared per walk (a report is rare; they are not worth a
 * slot in the connection's cache) and finalized at the end. The walk runs in
 * one read transaction (WAL snapshot) so the three cursors agree.
 *
 * Owns nothing between calls. Blocks on file I/O. */
#include "core/store_internal.h"

/* The term set: expiry in [?1, ?2). An ended term whose number is not below
 * the contract's current one (a foreign writer lowered it) is left out: the
 * current term wins. */
#define TERMS_CTE                                                                                  \
  "WITH t(contract_id, term, expires_at, ended_at) AS ("                                           \
  "SELECT id, term, expires_at, 0 FROM contracts WHERE expires_at >= ?1 AND expires_at < ?2 "      \
  "UNION ALL "                                                                                     \
  "SELECT h.contract_id, h.term, h.expires_at, h.ended_at FROM terms h "                           \
  "JOIN contracts c2 ON c2.id = h.contract_id "                                                    \
  "WHERE h.expires_at >= ?1 AND h.expires_at < ?2 AND h.term < c2.term) "

static const char sql_terms[] =
    TERMS_CTE "SELECT t.contract_id, t.term, t.expires_at, t.ended_at, c.state, cu.segment, "
              "cu.owner_id FROM t JOIN contracts c ON c.id = t.contract_id "
              "LEFT JOIN customers cu ON cu.id = c.customer_id ORDER BY t.contract_id, t.term";
static const char sql_reminders[] =
    TERMS_CTE "SELECT r.contract_id, r.term, r.id, r.tier, r.channel, r.audience, r.status, "
              "r.attempts, r.sent_at FROM t JOIN reminders r "
              "ON r.contract_id = t.contract_id AND r.term = t.term "
              "ORDER BY r.contract_id, r.term, r.sent_at, r.id";
static const char sql_responses[] =
    TERMS_CTE "SELECT p.contract_id, p.term, p.id, p.kind, p.reason, p.source, p.created_at "
              "FROM t JOIN responses p ON p.contract_id = t.contract_id AND p.term = t.term "
              "ORDER BY p.contract_id, p.term, p.created_at, p.id";

/* One cursor of the merge: a private statement and whether it has a row. */
struct cursor {
  struct stmt_ref q;
  bool row; /* q.st is on a row */
};

static void cursor_done(struct cursor *c) {
  stmt_release(&c->q);
}

static int cursor_open(struct store *s, const char *sql, int64_t from, int64_t until,
                       struct cursor *c) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v3(s->db, sql, -1, 0, &st, NULL);
  if (rc != SQLITE_OK)
    return store_error(s, rc);
  c->q = (struct stmt_ref){.st = st, .owned = true, .s = s};
  int r;
  if ((r = bind_int64(&c->q, 1, from)) < 0 || (r = bind_int64(&c->q, 2, until)) < 0)
    return r;
  return 0;
}

static int cursor_next(struct cursor *c) {
  int r = stmt_step(&c->q);
  if (r < 0)
    return r;
  c->row = r > 0;
  return 0;
}

/* Orders the cursor's current (contract_id, term) against the term's. */
static int cursor_cmp(const struct cursor *c, const char *contract_id, int32_t term) {
  const char *id = (const char *)sqlite3_column_text(c->q.st, 0);
  int k = strcmp(id ? id : "", contract_id);
  if (k != 0)
    return k;
  int32_t t = (int32_t)sqlite3_column_int64(c->q.st, 1);
  return t < term ? -1 : t > term;
}

/* Per-term row buffers; strings are copied (the cursor moves on). */
struct rows {
  struct store_report_reminder *rem;
  size_t n_rem, cap_rem;
  struct store_report_response *resp;
  size_t n_resp, cap_resp;
};

static void rows_reset(struct rows *w) {
  for (size_t i = 0; i < w->n_rem; i++) {
    free((char *)w->rem[i].tier);
    free((char *)w->rem[i].channel);
    free((char *)w->rem[i].audience);
  }
  for (size_t i = 0; i < w->n_resp; i++) {
    free((char *)w->resp[i].kind);
    free((char *)w->resp[i].reason);
    free((char *)w->resp[i].source);
  }
  w->n_rem = w->n_resp = 0;
}

static void rows_done(struct rows *w) {
  rows_reset(w);
  free(w->rem);
  free(w->resp);
}

static int grow(void **v, size_t *cap, size_t n, size_t size) {
  if (n < *cap)
    return 0;
  size_t c = *cap ? *cap * 2 : 8;
  void *p = realloc(*v, c * size);
  if (!p)
    return -ENOMEM;
  *v = p;
  *cap = c;
  return 0;
}

static int copy_col(sqlite3_stmt *st, int i, const char **ret) {
  char *v;
  int r = col_text(st, i, true, &v);
  if (r < 0)
    return r;
  *ret = v;
  return 0;
}

static int take_reminder(struct rows *w, sqlite3_stmt *st) {
  int r = grow((void **)&w->rem, &w->cap_rem, w->n_rem, sizeof *w->rem);
  if (r < 0)
    return r;
  int status = reminder_status_from_string((const char *)sqlite3_column_text(st, 6));
  if (status < 0)
    return -EBADMSG;
  struct store_report_reminder *m = &w->rem[w->n_rem];
  *m = (struct store_report_reminder){
      .id = sqlite3_column_int64(st, 2),
      .status = status,
      .attempts = (int32_t)sqlite3_column_int64(st, 7),
      .sent_at = sqlite3_column_int64(st, 8),
  };
  w->n_rem++; /* counted now so that rows_reset frees partial copies */
  if ((r = copy_col(st, 3, &m->tier)) < 0 || (r = copy_col(st, 4, &m->channel)) < 0 ||
      (r = copy_col(st, 5, &m->audience)) < 0)
    return r;
  return 0;
}

static int take_response(struct rows *w, sqlite3_stmt *st) {
  int r = grow((void **)&w->resp, &w->cap_resp, w->n_resp, sizeof *w->resp);
  if (r < 0)
    return r;
  struct store_report_response *p = &w->resp[w->n_resp];
  *p = (struct store_report_response){
      .id = sqlite3_column_int64(st, 2),
      .created_at = sqlite3_column_int64(st, 6),
  };
  w->n_resp++;
  if ((r = copy_col(st, 3, &p->kind)) < 0 || (r = copy_col(st, 4, &p->reason)) < 0 ||
      (r = copy_col(st, 5, &p->source)) < 0)
    return r;
  return 0;
}

/* Collects the cursor's rows for (contract_id, term); rows before it (which
 * the joins cannot produce) are skipped. */
static int collect(struct cursor *c, const char *contract_id, int32_t term, struct rows *w,
                   int (*take)(struct rows *w, sqlite3_stmt *st)) {
  int r;
  while (c->row) {
    int k = cursor_cmp(c, contract_id, term);
    if (k > 0)
      break;
    if (k == 0 && (r = take(w, c->q.st)) < 0)
      return r;
    if ((r = cursor_next(c)) < 0)
      return r;
  }
  return 0;
}

static int walk(struct store *s, int64_t from, int64_t until,
                int (*cb)(const struct store_report_term *t, void *ud), void *ud) {
  _cleanup_(cursor_done) struct cursor terms = {0}, rem = {0}, resp = {0};
  _cleanup_(rows_done) struct rows w = {0};
  int r, n = 0;

  if ((r = cursor_open(s, sql_terms, from, until, &terms)) < 0 ||
      (r = cursor_open(s, sql_reminders, from, until, &rem)) < 0 ||
      (r = cursor_open(s, sql_responses, from, until, &resp)) < 0 ||
      (r = cursor_next(&terms)) < 0 || (r = cursor_next(&rem)) < 0 || (r = cursor_next(&resp)) < 0)
    return r;

  while (terms.row) {
    sqlite3_stmt *st = terms.q.st;
    int state = contract_state_from_string((const char *)sqlite3_column_text(st, 4));
    if (state < 0)
      return -EBADMSG;
    /* the term's strings stay valid: its cursor moves only after the callback */
    struct store_report_term t = {
        .contract_id = (const char *)sqlite3_column_text(st, 0),
        .term = (int32_t)sqlite3_column_int64(st, 1),
        .expires_at = sqlite3_column_int64(st, 2),
        .ended_at = sqlite3_column_int64(st, 3),
        .state = state,
        .segment = (const char *)sqlite3_column_text(st, 5),
        .owner_id = (const char *)sqlite3_column_text(st, 6),
    };
    if (!t.contract_id)
      return -EBADMSG;
    rows_reset(&w);
    if ((r = collect(&rem, t.contract_id, t.term, &w, take_reminder)) < 0 ||
        (r = collect(&resp, t.contract_id, t.term, &w, take_response)) < 0)
      return r;
    t.reminders = w.rem;
    t.n_reminders = w.n_rem;
    t.responses = w.resp;
    t.n_responses = w.n_resp;
    if ((r = cb(&t, ud)) < 0)
      return r;
    n++;
    if ((r = cursor_next(&terms)) < 0)
      return r;
  }
  return n;
}

int store_report_foreach_term(struct store *s, int64_t from, int64_t until,
                              int (*cb)(const struct store_report_term *t, void *ud), void *ud) {
  if (!s || !cb || until < from)
    return -EINVAL;
  bool own = sqlite3_get_autocommit(s->db);
  if (own) {
    int rc = sqlite3_exec(s->db, "BEGIN DEFERRED", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
      return store_error(s, rc);
  }
  int r = walk(s, from, until, cb, ud);
  if (own) {
    /* a read transaction: COMMIT and ROLLBACK both just end it */
    char msg[sizeof s->errmsg];
    memcpy(msg, s->errmsg, sizeof msg);
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    memcpy(s->errmsg, msg, sizeof msg);
  }
  return r;
}
