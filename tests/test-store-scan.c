/* Unit tests for the store's bounded reads of the event loop: the keyset
 * pages of the change scan, the due scan (lower bound, ties on next_due_at)
 * and the expiry walk (ties on expires_at), the paged recount against a
 * GROUP BY of the same table, a channel's next retry instant, and the loop
 * connection's settings (no busy wait, PASSIVE checkpoints). Every test
 * works in its own mkdtemp() directory, removed afterwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <time.h>
#include <unistd.h>

#include "core/store.h"
#include "core/util.h"
#include "storetmp.h"

#define T0 INT64_C(1790000000)
#define N 23 /* contracts: not a multiple of any page size used */

struct fixture {
  struct store_tmp tmp;
  struct store *s;
  sqlite3 *raw; /* a second connection */
};

static void raw_exec(sqlite3 *db, const char *sql) {
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
    fail_msg("%s: %s", sql, msg);
}

/* N contracts C00..C22 of 3 customers; expiries in groups of 5 sharing one
 * instant; next_due_at in groups of 4 sharing one; reminders of two
 * channels, some in retry. */
static void populate(struct fixture *f) {
  raw_exec(f->raw, "INSERT INTO customers(id, segment) VALUES ('K0', 'a'), ('K1', 'b'), ('K2', "
                   "NULL)");
  for (int i = 0; i < N; i++) {
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO contracts(id, customer_id, expires_at, state, next_due_at) "
             "VALUES ('C%02d', 'K%d', %lld, '%s', %lld)",
             i, i % 3, (long long)(T0 + (i / 5) * 100), i % 7 == 0 ? "renewed" : "active",
             (long long)(i % 6 == 5 ? 0 : T0 + (i / 4) * 10));
    raw_exec(f->raw, sql);
  }
  for (int i = 0; i < 17; i++) {
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO reminders(contract_rowid, contract_id, term, tier, step, channel, "
             "audience, idem_key, due_at, status, next_attempt_at) VALUES (%d, 'C%02d', 1, "
             "'t%d', 0, '%s', 'customer', 'k%d', %lld, '%s', %lld)",
             i + 1, i, i % 2, i % 3 ? "email" : "sms", i, (long long)T0,
             i % 4 == 0 ? "retry" : "sent", (long long)(T0 + 1000 - i));
    raw_exec(f->raw, sql);
  }
  raw_exec(f->raw, "INSERT INTO responses(contract_id, term, kind, source) VALUES ('C01', 1, "
                   "'renewed', 'link'), ('C02', 1, 'declined', NULL), ('C03', 1, 'renewed', "
                   "'link')");
}

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  store_tmp_open(&f->tmp, "scan", &f->s);
  assert_int_equal(sqlite3_open(f->tmp.path, &f->raw), SQLITE_OK);
  sqlite3_busy_timeout(f->raw, 5000);
  populate(f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  sqlite3_close(f->raw);
  f->s = store_free(f->s);
  store_tmp_remove(&f->tmp);
  free(f);
  return 0;
}

static int64_t raw_int(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

/* Rowids seen, in order. */
struct seen {
  int64_t v[4 * N];
  size_t n;
  int64_t last_key; /* ordering check */
};

static int seen_changed_cb(const struct contract *c, void *ud) {
  struct seen *s = ud;
  assert_true(c->change_seq >= s->last_key);
  s->last_key = c->change_seq;
  s->v[s->n++] = c->rowid;
  return 0;
}

static void assert_each_once(const struct seen *s, int64_t expect_n) {
  assert_int_equal(s->n, expect_n);
  for (size_t i = 0; i < s->n; i++)
    for (size_t k = i + 1; k < s->n; k++)
      assert_true(s->v[i] != s->v[k]);
}

static void test_changed_pages(void **state) {
  struct fixture *f = *state;
  /* ties: several rows on one change_seq (a foreign writer can do that) */
  raw_exec(f->raw, "UPDATE contracts SET change_seq = 7 WHERE rowid BETWEEN 3 AND 9");
  struct store_cursor cur = {0};
  struct seen s = {0};
  int r, pages = 0;
  do {
    r = store_contract_changed_page(f->s, &cur, 2, seen_changed_cb, &s);
    assert_true(r >= 0 && r <= 2);
    pages++;
  } while (r == 2);
  assert_each_once(&s, N);
  assert_true(pages >= N / 2);
  /* a later change appears in the next page after the cursor */
  raw_exec(f->raw, "UPDATE contracts SET product = 'x' WHERE id = 'C05'");
  s.n = 0;
  assert_int_equal(store_contract_changed_page(f->s, &cur, 5, seen_changed_cb, &s), 1);
  assert_int_equal(s.v[0], 6);
  assert_int_equal(store_contract_changed_page(f->s, &cur, 5, seen_changed_cb, &s), 0);
  assert_int_equal(store_contract_changed_page(f->s, &cur, 0, seen_changed_cb, &s), -EINVAL);
}

static int seen_due_cb(const struct contract *c, void *ud) {
  struct seen *s = ud;
  assert_true(c->next_due_at > 0 && c->next_due_at >= s->last_key);
  s->last_key = c->next_due_at;
  s->v[s->n++] = c->rowid;
  return 0;
}

static void test_due_pages(void **state) {
  struct fixture *f = *state;
  int64_t with_due = raw_int(f->raw, "SELECT count(*) FROM contracts WHERE next_due_at > 0");
  struct store_cursor cur = {0};
  struct seen s = {0};
  int r;
  while ((r = store_contract_due_page(f->s, &cur, INT64_MAX, 3, seen_due_cb, &s)) == 3)
    ;
  assert_true(r >= 0);
  assert_each_once(&s, with_due);

  /* a lower bound: rows due before it are not read */
  int64_t from = T0 + 20, until = T0 + 50;
  int64_t want = raw_int(f->raw, "SELECT count(*) FROM contracts WHERE next_due_at >= 1790000020 "
                                 "AND next_due_at < 1790000050");
  cur = (struct store_cursor){.key = from};
  s = (struct seen){0};
  while ((r = store_contract_due_page(f->s, &cur, until, 1, seen_due_cb, &s)) == 1)
    ;
  assert_int_equal(r, 0);
  assert_each_once(&s, want);
  for (size_t i = 0; i < s.n; i++) {
    struct contract c = {0};
    assert_int_equal(store_contract_get_by_rowid(f->s, s.v[i], &c), 0);
    assert_true(c.next_due_at >= from && c.next_due_at < until);
    contract_clear(&c);
  }
}

struct expiry_seen {
  char ids[N][8];
  size_t n;
  int64_t last_expires;
  char last_id[8];
};

static int seen_expiry_cb(const struct contract *c, const struct customer *cu, void *ud) {
  struct expiry_seen *s = ud;
  assert_true(c->expires_at >= s->last_expires);
  s->last_expires = c->expires_at;
  snprintf(s->last_id, sizeof s->last_id, "%s", c->id);
  snprintf(s->ids[s->n++], sizeof s->ids[0], "%s", c->id);
  return 0;
}

static void test_expiry_pages(void **state) {
  struct fixture *f = *state;
  struct expiry_seen s = {0};
  struct store_contract_filter flt = {.state = CONTRACT_ACTIVE, .limit = 2, .after_id = ""};
  flt.expires_from = T0;
  flt.expires_until = T0 + 10000;
  int r;
  while ((r = store_contract_foreach(f->s, &flt, seen_expiry_cb, &s)) == 2) {
    flt.expires_from = s.last_expires;
    flt.after_id = s.last_id;
  }
  assert_true(r >= 0);
  int64_t want = raw_int(f->raw, "SELECT count(*) FROM contracts WHERE state = 'active'");
  assert_int_equal(s.n, want);
  for (size_t i = 0; i < s.n; i++)
    for (size_t k = i + 1; k < s.n; k++)
      assert_string_not_equal(s.ids[i], s.ids[k]);
  flt.customer_id = "K0";
  assert_int_equal(store_contract_foreach(f->s, &flt, seen_expiry_cb, &s), -EINVAL);
}

/* Sums page groups: key "a|b|c|d" -> count, compared with SQL. */
struct sums {
  char keys[64][96];
  int64_t count[64];
  size_t n;
};

static int sum_cb(const char *const *keys, size_t n_keys, int64_t count, void *ud) {
  struct sums *s = ud;
  char k[96] = "";
  for (size_t i = 0; i < n_keys; i++) {
    strncat(k, keys[i], sizeof k - strlen(k) - 2);
    strcat(k, "|");
  }
  for (size_t i = 0; i < s->n; i++)
    if (streq(s->keys[i], k)) {
      s->count[i] += count;
      return 0;
    }
  snprintf(s->keys[s->n], sizeof s->keys[0], "%s", k);
  s->count[s->n++] = count;
  return 0;
}

static void check_recount(struct fixture *f, enum store_group g) {
  struct sums paged = {0}, whole = {0};
  int64_t after = 0;
  int r, pages = 0;
  while ((r = store_count_page(f->s, g, &after, 3, sum_cb, &paged)) == 3)
    pages++;
  assert_true(r >= 0 && pages >= 1);
  assert_true(store_count_grouped(f->s, g, sum_cb, &whole) > 0);
  assert_int_equal(paged.n, whole.n);
  for (size_t i = 0; i < whole.n; i++) {
    size_t k = 0;
    while (k < paged.n && !streq(paged.keys[k], whole.keys[i]))
      k++;
    assert_true(k < paged.n);
    assert_int_equal(paged.count[k], whole.count[i]);
  }
}

static void test_recount(void **state) {
  struct fixture *f = *state;
  check_recount(f, STORE_GROUP_REMINDERS);
  check_recount(f, STORE_GROUP_RESPONSES);
  check_recount(f, STORE_GROUP_CONTRACTS);
  int64_t after = 0;
  struct sums s = {0};
  assert_int_equal(store_count_page(f->s, STORE_GROUP_CONTRACTS, &after, 0, sum_cb, &s), -EINVAL);
}

static void test_next_retry(void **state) {
  struct fixture *f = *state;
  int64_t t = 0;
  /* retry rows: i = 0, 4, 8, 12, 16; sms when i % 3 == 0 (0, 12), email otherwise */
  assert_int_equal(store_reminder_next_retry(f->s, "sms", &t), 0);
  assert_int_equal(t, T0 + 1000 - 12);
  assert_int_equal(store_reminder_next_retry(f->s, "email", &t), 0);
  assert_int_equal(t, T0 + 1000 - 16);
  assert_int_equal(store_reminder_next_retry(f->s, "webhook", &t), -ENOENT);
  assert_int_equal(store_reminder_next_retry(f->s, "", &t), -EINVAL);
}

static void test_loop_connection(void **state) {
  struct fixture *f = *state;
  assert_int_equal(store_set_busy_timeout(f->s, 0), 0);
  assert_int_equal(store_set_autocheckpoint(f->s, 0), 0);
  /* another writer holds the lock: -EBUSY at once, no wait */
  raw_exec(f->raw, "BEGIN IMMEDIATE");
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  assert_int_equal(store_begin(f->s), -EBUSY);
  clock_gettime(CLOCK_MONOTONIC, &b);
  assert_true(b.tv_sec - a.tv_sec < 2); /* far below the 5 s default timeout */
  /* reads go on while it writes (WAL) */
  int64_t n = 0;
  assert_int_equal(store_contract_count(f->s, -1, &n), 0);
  assert_int_equal(n, N);
  raw_exec(f->raw, "COMMIT");
  assert_int_equal(store_begin(f->s), 0);
  assert_int_equal(store_checkpoint(f->s, NULL, NULL), -EBUSY); /* inside a transaction */
  assert_int_equal(store_commit(f->s), 0);
  int wal = -1, copied = -1;
  assert_int_equal(store_checkpoint(f->s, &wal, &copied), 0);
  assert_true(wal >= 0 && copied >= 0 && copied <= wal);
  assert_string_equal(store_path(f->s), f->tmp.path);
  assert_int_equal(store_set_busy_timeout(f->s, -1), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_changed_pages, setup, teardown),
      cmocka_unit_test_setup_teardown(test_due_pages, setup, teardown),
      cmocka_unit_test_setup_teardown(test_expiry_pages, setup, teardown),
      cmocka_unit_test_setup_teardown(test_recount, setup, teardown),
      cmocka_unit_test_setup_teardown(test_next_retry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_loop_connection, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
