/* store_scan: bounded reads for an event loop (see store.h, "paged recounts"):
 * one page of a recount of reminders, responses or contracts by rowid (the
 * figures behind /metrics are summed from such pages, a few per loop
 * iteration, never from one GROUP BY over a whole table), and the earliest
 * retry instant of a channel (the dispatcher's wake-up) read in index order.
 *
 * Owns nothing beyond the cached statements in struct store. Reads only; each
 * call is one short read (its own WAL snapshot in autocommit mode). */
#include "core/store_internal.h"

int store_count_page(struct store *s, enum store_group g, int64_t *after, size_t limit,
                     int (*cb)(const char *const *keys, size_t n_keys, int64_t count, void *ud),
                     void *ud) {
  static const struct {
    enum store_stmt stmt;
    size_t n_keys;
  } groups[] = {
      [STORE_GROUP_REMINDERS] = {STMT_COUNT_PAGE_REMINDERS, 4},
      [STORE_GROUP_RESPONSES] = {STMT_COUNT_PAGE_RESPONSES, 2},
      [STORE_GROUP_CONTRACTS] = {STMT_COUNT_PAGE_CONTRACTS, 1},
  };
  if (!s || !after || !cb || limit == 0 || limit > INT64_MAX || (unsigned)g >= ELEMENTSOF(groups))
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, groups[g].stmt, &q)) < 0 || (r = bind_int64(&q, 1, *after)) < 0 ||
      (r = bind_int64(&q, 2, (int64_t)limit)) < 0)
    return r;
  size_t k = groups[g].n_keys;
  int64_t rows = 0, last = *after;
  while ((r = stmt_step(&q)) > 0) {
    const char *keys[4];
    for (size_t i = 0; i < k; i++) {
      const char *v = (const char *)sqlite3_column_text(q.st, (int)i);
      keys[i] = v ? v : "";
    }
    int64_t count = sqlite3_column_int64(q.st, (int)k);
    last = MAX(last, sqlite3_column_int64(q.st, (int)k + 1));
    rows += count;
    if ((r = cb(keys, k, count, ud)) < 0)
      return r;
  }
  if (r < 0)
    return r;
  *after = last;
  return (int)rows;
}

int store_reminder_next_retry(struct store *s, const char *channel, int64_t *ret) {
  if (!s || isempty(channel) || !ret)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r;
  if ((r = stmt_acquire(s, STMT_REMINDER_NEXT_RETRY, &q)) < 0 ||
      (r = bind_text(&q, 1, channel)) < 0)
    return r;
  r = stmt_step(&q);
  if (r < 0)
    return r;
  if (r == 0)
    return -ENOENT;
  *ret = sqlite3_column_int64(q.st, 0);
  return 0;
}
