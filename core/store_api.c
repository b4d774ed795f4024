/* store_api: the store queries of the HTTP listener (see store.h, "HTTP
 * listener"): the customer of an inbound SMS by phone number, the JSON API's
 * Idempotency-Key results (table api_idempotency, schema v4) and the grouped
 * counts behind /metrics.
 *
 * Owns nothing beyond the cached statements in struct store. Every call does
 * file I/O (reads; the idempotency writes are single-row autocommit writes or
 * join the caller's transaction). */
#include "core/store_internal.h"

int store_customer_find_by_phone(struct store *s, const char *phone, struct customer *ret) {
  return customer_get_by(s, STMT_CUSTOMER_FIND_PHONE, phone, ret);
}

int store_api_idem_get(struct store *s, const char *key, char **ret_request_hash, int *ret_status,
                       char **ret_body) {
  if (!s || isempty(key) || !ret_request_hash || !ret_status || !ret_body)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_API_IDEM_GET, &q)) < 0 || (r = bind_text(&q, 1, key)) < 0)
    return r;
  r = stmt_step(&q);
  if (r < 0)
    return r;
  if (r == 0)
    return -ENOENT;
  _cleanup_free_ char *hash = NULL, *body = NULL;
  if ((r = col_text(q.st, 0, true, &hash)) < 0 || (r = col_text(q.st, 2, true, &body)) < 0)
    return r;
  if (!body && !(body = strdup("")))
    return -ENOMEM;
  if (!hash && !(hash = strdup("")))
    return -ENOMEM;
  *ret_status = sqlite3_column_int(q.st, 1);
  *ret_request_hash = TAKE_PTR(hash);
  *ret_body = TAKE_PTR(body);
  return 0;
}

int store_api_idem_put(struct store *s, const char *key, const char *request_hash, int status,
                       const char *body, int64_t now) {
  if (!s || isempty(key) || isempty(request_hash) || !body)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_API_IDEM_PUT, &q)) < 0 || (r = bind_text(&q, 1, key)) < 0 ||
      (r = bind_text(&q, 2, request_hash)) < 0 || (r = bind_int64(&q, 3, status)) < 0)
    return r;
  /* an empty body is stored as '' (bind_text would make it NULL) */
  int rc = sqlite3_bind_text(q.st, 4, body, -1, SQLITE_STATIC);
  if (rc != SQLITE_OK)
    return store_error(s, rc);
  if ((r = bind_int64(&q, 5, now)) < 0)
    return r;
  return stmt_exec(&q);
}

int store_api_idem_prune(struct store *s, int64_t before) {
  if (!s)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_API_IDEM_PRUNE, &q)) < 0 || (r = bind_int64(&q, 1, before)) < 0)
    return r;
  if ((r = stmt_exec(&q)) < 0)
    return r;
  return sqlite3_changes(s->db);
}

int store_count_grouped(struct store *s, enum store_group g,
                        int (*cb)(const char *const *keys, size_t n_keys, int64_t count, void *ud),
                        void *ud) {
  static const struct {
    enum store_stmt stmt;
    size_t n_keys;
  } groups[] = {
      [STORE_GROUP_REMINDERS] = {STMT_COUNT_REMINDERS, 4},
      [STORE_GROUP_RESPONSES] = {STMT_COUNT_RESPONSES, 2},
      [STORE_GROUP_CONTRACTS] = {STMT_COUNT_CONTRACTS, 1},
  };
  if (!s || !cb || (unsigned)g >= ELEMENTSOF(groups))
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r, n = 0;
  if ((r = stmt_acquire(s, groups[g].stmt, &q)) < 0)
    return r;
  while ((r = stmt_step(&q)) > 0) {
    const char *keys[4];
    size_t k = groups[g].n_keys;
    for (size_t i = 0; i < k; i++) {
      const char *v = (const char *)sqlite3_column_text(q.st, (int)i);
      keys[i] = v ? v : "";
    }
    r = cb(keys, k, sqlite3_column_int64(q.st, (int)k), ud);
    if (r < 0)
      return r;
    n++;
  }
  return r < 0 ? r : n;
}
