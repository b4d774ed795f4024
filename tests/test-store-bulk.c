/* Unit tests for core/store_bulk: the one-transaction bulk load of a first
 * import and the loading connection's tuning. Checked: the load is refused
 * outside store_load_begin() and when contracts exist; the schema (indexes,
 * triggers) comes back identical; readers see the old store, indexes
 * included, while the load runs; change_seq is assigned as always and the
 * INSERT trigger works again for foreign writers; a rollback, a dangling
 * customer reference or a crashed loader leave the store as it was; foreign
 * keys are checked again afterwards; load_end empties the WAL; the multi-row
 * inserts keep array order, merge existing customers and refuse existing
 * contracts. Every test works in its own mkdtemp() directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/store.h"
#include "core/util.h"
#include "storetmp.h"

#define T0 INT64_C(1790000000) /* 2026-09-21T14:13:20Z */
#define DAY INT64_C(86400)

/* the schema as SQLite keeps it: what a bulk load must give back unchanged */
#define SCHEMA_SQL                                                                                 \
  "SELECT group_concat(type || ':' || name || ':' || tbl_name || ':' || coalesce(sql, ''), "       \
  "char(10)) FROM (SELECT * FROM sqlite_schema ORDER BY type, name)"

struct fixture {
  struct store_tmp tmp;
  struct store *s;
};

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  store_tmp_open(&f->tmp, "bulk", &f->s);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  f->s = store_free(f->s);
  store_tmp_remove(&f->tmp);
  free(f);
  return 0;
}

/* ---- a second connection (reader, foreign writer) ------------------------ */

static sqlite3 *raw_open(const char *path) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  return db;
}

static void raw_exec(sqlite3 *db, const char *sql) {
  char *msg = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK)
    fail_msg("%s: %s", sql, msg);
}

static int64_t raw_int(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

/* Caller frees. */
static char *raw_text(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  const char *v = (const char *)sqlite3_column_text(st, 0);
  char *d = strdup(v ? v : "");
  assert_non_null(d);
  sqlite3_finalize(st);
  return d;
}

static char *schema_of(const char *path) {
  sqlite3 *db = raw_open(path);
  char *s = raw_text(db, SCHEMA_SQL);
  sqlite3_close(db);
  return s;
}

static int64_t path_int(const char *path, const char *sql) {
  sqlite3 *db = raw_open(path);
  int64_t v = raw_int(db, sql);
  sqlite3_close(db);
  return v;
}

/* ---- data ------------------------------------------------------------------ */

static int put_customer(struct store *s, const char *id, const char *name) {
  struct customer c = {.id = (char *)id,
                       .name = (char *)name,
                       .email = "a@example.com",
                       .tz = "Europe/Zurich",
                       .segment = "smb"};
  return store_customer_upsert(s, &c, T0);
}

static int put_contract(struct store *s, const char *id, const char *customer, int64_t expires) {
  struct contract c = {.id = (char *)id,
                       .customer_id = (char *)customer,
                       .product = "Support",
                       .currency = "EUR",
                       .expires_at = expires,
                       .value_minor = 100};
  return store_contract_upsert(s, &c, T0);
}

static int64_t seq_of(struct store *s, const char *id) {
  struct contract c = {0};
  assert_int_equal(store_contract_get(s, id, &c), 0);
  int64_t v = c.change_seq;
  contract_clear(&c);
  return v;
}

static int collect_ids(const struct contract *c, const struct customer *cu, void *ud) {
  struct buf *b = ud;
  assert_int_equal(buf_printf(b, "%s%s", b->len ? "," : "", c->id), 0);
  return 0;
}

/* ---- tests -------------------------------------------------------------------- */

static void test_bulk_load(void **state) {
  struct fixture *f = *state;
  _cleanup_free_ char *before = schema_of(f->tmp.path);

  assert_int_equal(store_bulk_begin(f->s), -EINVAL); /* not loading */
  assert_int_equal(store_load_begin(f->s), 0);
  assert_int_equal(store_bulk_begin(f->s), 1);
  assert_int_equal(store_begin(f->s), -EBUSY); /* the transaction is open */

  assert_int_equal(put_customer(f->s, "C0", "Old"), STORE_INSERTED);
  assert_int_equal(put_customer(f->s, "C1", "Ann"), STORE_INSERTED);
  assert_int_equal(put_customer(f->s, "C0", "Renamed"), STORE_UPDATED);
  assert_int_equal(put_customer(f->s, "C2", "Bob"), STORE_INSERTED);
  assert_int_equal(put_contract(f->s, "K3", "C1", T0 + 30 * DAY), STORE_INSERTED);
  assert_int_equal(put_contract(f->s, "K1", "C2", T0 + 10 * DAY), STORE_INSERTED);
  assert_int_equal(put_contract(f->s, "K2", "C0", T0 + 20 * DAY), STORE_INSERTED);
  assert_int_equal(put_contract(f->s, "K4", NULL, T0 + 20 * DAY), STORE_INSERTED);
  assert_int_equal(put_contract(f->s, "K1", "C2", T0 + 10 * DAY), STORE_UNCHANGED);

  /* a reader sees the store as it was, indexes and trigger included */
  sqlite3 *rd = raw_open(f->tmp.path);
  _cleanup_free_ char *during = raw_text(rd, SCHEMA_SQL);
  assert_string_equal(during, before);
  assert_int_equal(raw_int(rd, "SELECT count(*) FROM contracts"), 0);
  sqlite3_close(rd);

  assert_int_equal(store_bulk_commit(f->s), 0);
  assert_int_equal(store_load_end(f->s), 0);

  _cleanup_free_ char *after = schema_of(f->tmp.path);
  assert_string_equal(after, before);
  assert_int_equal(path_int(f->tmp.path, "SELECT count(*) FROM contracts"), 4);
  assert_int_equal(path_int(f->tmp.path, "SELECT count(*) FROM customers"), 3);
  sqlite3 *db = raw_open(f->tmp.path);
  _cleanup_free_ char *ic = raw_text(db, "PRAGMA integrity_check");
  assert_string_equal(ic, "ok");
  /* the rebuilt indexes answer queries: expiry order, customer lookups */
  _cleanup_free_ char *by_exp = raw_text(
      db, "SELECT group_concat(id) FROM (SELECT id FROM contracts INDEXED BY contracts_expires "
          "WHERE expires_at > 0 ORDER BY expires_at, id)");
  assert_string_equal(by_exp, "K1,K2,K4,K3");
  assert_int_equal(raw_int(db, "SELECT count(*) FROM contracts INDEXED BY contracts_customer "
                               "WHERE customer_id = 'C0'"),
                   1);
  sqlite3_close(db);

  /* change_seq assigned in write order; the customer update was logged */
  assert_int_equal(seq_of(f->s, "K3"), 1);
  assert_int_equal(seq_of(f->s, "K1"), 2);
  assert_int_equal(seq_of(f->s, "K2"), 3);
  assert_int_equal(seq_of(f->s, "K4"), 4);
  assert_int_equal(
      path_int(f->tmp.path, "SELECT count(*) FROM events WHERE kind = 'customer.updated'"), 1);
  struct buf ids = {0};
  assert_int_equal(store_contract_foreach(f->s, NULL, collect_ids, &ids), 4);
  assert_string_equal(ids.data, "K1,K2,K4,K3");
  buf_free(&ids);

  /* the INSERT trigger is back for foreign writers; foreign keys are on again */
  db = raw_open(f->tmp.path);
  raw_exec(db, "INSERT INTO contracts(id, expires_at) VALUES ('K9', 1)");
  sqlite3_close(db);
  assert_int_equal(seq_of(f->s, "K9"), 5);
  assert_int_equal(put_contract(f->s, "K5", "NOPE", T0), -ENXIO);
  assert_int_equal(store_bulk_begin(f->s), -EINVAL); /* load ended */
}

static void test_bulk_wal_truncated(void **state) {
  struct fixture *f = *state;
  assert_int_equal(store_load_begin(f->s), 0);
  assert_int_equal(store_bulk_begin(f->s), 1);
  char id[16], cu[16];
  for (int i = 0; i < 3000; i++) {
    snprintf(cu, sizeof cu, "C%d", i / 3);
    snprintf(id, sizeof id, "K%05d", i);
    if (i % 3 == 0)
      assert_int_equal(put_customer(f->s, cu, "Name"), STORE_INSERTED);
    assert_int_equal(put_contract(f->s, id, cu, T0 + (int64_t)i * 7919 % 1000 * DAY),
                     STORE_INSERTED);
  }
  assert_int_equal(store_commit(f->s), 0); /* store_commit() ends a bulk load too */
  assert_int_equal(store_load_end(f->s), 0);
  char wal[160];
  struct stat st;
  snprintf(wal, sizeof wal, "%s-wal", f->tmp.path);
  assert_int_equal(stat(wal, &st), 0);
  assert_int_equal(st.st_size, 0);
  assert_int_equal(path_int(f->tmp.path, "SELECT count(*) FROM contracts"), 3000);
  assert_int_equal(path_int(f->tmp.path, "SELECT max(change_seq) FROM contracts"), 3000);
  assert_int_equal(path_int(f->tmp.path, "SELECT count(DISTINCT change_seq) FROM contracts"), 3000);
  assert_int_equal(path_int(f->tmp.path,
                            "SELECT count(*) FROM contracts INDEXED BY contracts_change_seq "
                            "WHERE change_seq > 2990"),
                   10);
}

static void test_bulk_many(void **state) {
  struct fixture *f = *state;
  enum { N = 100 }; /* three full statements and a remainder */
  struct customer cus[N];
  struct contract cos[N];
  char ids[N][16], cids[N][16];
  for (int i = 0; i < N; i++) {
    snprintf(cids[i], sizeof cids[i], "C%03d", (i * 37) % N);
    snprintf(ids[i], sizeof ids[i], "K%03d", i);
    cus[i] = (struct customer){
        .id = cids[i], .name = "Ann", .email = "a@example.com", .optout = i == 5 ? OPTOUT_SMS : 0};
    cos[i] = (struct contract){.id = ids[i],
                               .customer_id = cids[i],
                               .currency = "EUR",
                               .expires_at = T0 + (N - i) * DAY,
                               .value_minor = i};
  }
  /* two customers come first on their own: one the same as later, one with
   * another name and an opt-out; the later batch merges them */
  struct customer early[40];
  for (int i = 0; i < 40; i++)
    early[i] = cus[i + 40];
  early[10].name = "Old";
  early[10].optout = OPTOUT_EMAIL;

  assert_int_equal(store_bulk_customers(f->s, cus, N, T0), -EINVAL); /* not in a bulk load */
  assert_int_equal(store_load_begin(f->s), 0);
  assert_int_equal(store_bulk_begin(f->s), 1);
  assert_int_equal(store_bulk_customers(f->s, early, 40, T0), 0);
  assert_int_equal(store_bulk_customers(f->s, cus, N, T0), 0);
  assert_int_equal(store_bulk_contracts(f->s, cos, N, T0), 0);
  assert_int_equal(store_bulk_contracts(f->s, NULL, 0, T0), 0);
  assert_int_equal(store_bulk_commit(f->s), 0);
  assert_int_equal(store_load_end(f->s), 0);

  assert_int_equal(path_int(f->tmp.path, "SELECT count(*) FROM customers"), N);
  assert_int_equal(path_int(f->tmp.path, "SELECT count(*) FROM contracts"), N);
  for (int i = 0; i < N; i += 7) {
    struct contract c = {0};
    assert_int_equal(store_contract_get(f->s, ids[i], &c), 0);
    assert_int_equal(c.change_seq, i + 1); /* array order */
    assert_string_equal(c.customer_id, cids[i]);
    assert_int_equal(c.expires_at, T0 + (N - i) * DAY);
    assert_int_equal(c.value_minor, i);
    assert_int_equal(c.term, 1);
    assert_int_equal(c.state, CONTRACT_ACTIVE);
    contract_clear(&c);
  }
  /* the earlier customer was merged: new name, opt-outs OR-ed, one event */
  struct customer cu = {0};
  assert_int_equal(store_customer_get(f->s, cids[50], &cu), 0);
  assert_string_equal(cu.name, "Ann");
  assert_int_equal(cu.optout, OPTOUT_EMAIL);
  customer_clear(&cu);
  assert_int_equal(store_customer_get(f->s, cids[5], &cu), 0);
  assert_int_equal(cu.optout, OPTOUT_SMS);
  customer_clear(&cu);
  assert_int_equal(
      path_int(f->tmp.path, "SELECT count(*) FROM events WHERE kind = 'customer.updated'"), 1);
}

static void test_bulk_duplicate(void **state) {
  struct fixture *f = *state;
  enum { N = 40 };
  struct contract cos[N];
  char ids[N][16];
  for (int i = 0; i < N; i++) {
    snprintf(ids[i], sizeof ids[i], "K%03d", i == 33 ? 3 : i); /* K003 twice */
    cos[i] = (struct contract){.id = ids[i], .expires_at = T0};
  }
  assert_int_equal(store_load_begin(f->s), 0);
  assert_int_equal(store_bulk_begin(f->s), 1);
  assert_int_equal(store_bulk_contracts(f->s, cos, N, T0), -EEXIST); /* in the remainder */
  assert_int_equal(store_rollback(f->s), 0);
  assert_int_equal(store_bulk_begin(f->s), 1);
  snprintf(ids[33], sizeof ids[33], "K033");
  snprintf(ids[20], sizeof ids[20], "K003"); /* now inside the first statement */
  assert_int_equal(store_bulk_contracts(f->s, cos, N, T0), -EEXIST);
  assert_int_equal(store_rollback(f->s), 0);
  assert_int_equal(store_load_end(f->s), 0);
  assert_int_equal(path_int(f->tmp.path, "SELECT count(*) FROM contracts"), 0);
}

static void test_bulk_not_empty(void **state) {
  struct fixture *f = *state;
  assert_int_equal(put_customer(f->s, "C1", "Ann"), STORE_INSERTED);
  assert_int_equal(store_load_begin(f->s), 0);
  assert_int_equal(store_bulk_begin(f->s), 0); /* customers alone are enough */
  assert_int_equal(put_contract(f->s, "K1", "C1", T0), STORE_INSERTED);
  _cleanup_free_ char *before = schema_of(f->tmp.path);
  assert_int_equal(store_bulk_begin(f->s), 0);
  /* no transaction left open: batches work, with foreign keys on */
  assert_int_equal(store_begin(f->s), 0);
  assert_int_equal(put_contract(f->s, "K2", "NOPE", T0), -ENXIO);
  assert_int_equal(put_contract(f->s, "K2", "C1", T0), STORE_INSERTED);
  assert_int_equal(store_commit(f->s), 0);
  assert_int_equal(store_load_end(f->s), 0);
  _cleanup_free_ char *after = schema_of(f->tmp.path);
  assert_string_equal(after, before);
  assert_int_equal(seq_of(f->s, "K2"), 2);
}

static void test_bulk_rollback(void **state) {
  struct fixture *f = *state;
  _cleanup_free_ char *before = schema_of(f->tmp.path);
  assert_int_equal(store_load_begin(f->s), 0);
  assert_int_equal(store_bulk_begin(f->s), 1);
  assert_int_equal(put_customer(f->s, "C1", "Ann"), STORE_INSERTED);
  assert_int_equal(put_contract(f->s, "K1", "C1", T0), STORE_INSERTED);
  assert_int_equal(store_rollback(f->s), 0);
  assert_int_equal(store_load_end(f->s), 0);
  _cleanup_free_ char *after = schema_of(f->tmp.path);
  assert_string_equal(after, before);
  assert_int_equal(path_int(f->tmp.path, "SELECT count(*) FROM contracts"), 0);
  assert_int_equal(path_int(f->tmp.path, "SELECT count(*) FROM customers"), 0);
  /* foreign keys are checked again */
  assert_int_equal(put_contract(f->s, "K1", "NOPE", T0), -ENXIO);
}

static void test_bulk_dangling_customer(void **state) {
  struct fixture *f = *state;
  _cleanup_free_ char *before = schema_of(f->tmp.path);
  assert_int_equal(store_load_begin(f->s), 0);
  assert_int_equal(store_bulk_begin(f->s), 1);
  assert_int_equal(put_customer(f->s, "C1", "Ann"), STORE_INSERTED);
  assert_int_equal(put_contract(f->s, "K1", "C1", T0), STORE_INSERTED);
  /* not checked row by row during the load ... */
  assert_int_equal(put_contract(f->s, "K2", "GHOST", T0), STORE_INSERTED);
  /* ... but at the commit, which then rolls everything back */
  assert_int_equal(store_bulk_commit(f->s), -ENXIO);
  assert_non_null(strstr(store_last_error(f->s), "GHOST"));
  assert_int_equal(store_load_end(f->s), 0);
  _cleanup_free_ char *after = schema_of(f->tmp.path);
  assert_string_equal(after, before);
  assert_int_equal(path_int(f->tmp.path, "SELECT count(*) FROM contracts"), 0);
}

static void test_bulk_crash(void **state) {
  struct fixture *f = *state;
  _cleanup_free_ char *before = schema_of(f->tmp.path);
  f->s = store_free(f->s);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* the loader dies in the middle of the load, WAL frames written */
    struct store *s = NULL;
    if (store_open(f->tmp.path, 0, &s, NULL, 0) < 0 || store_load_begin(s) < 0 ||
        store_bulk_begin(s) != 1)
      _exit(2);
    /* enough data to overflow the page cache: SQLite spills uncommitted
     * pages into the WAL, which the next opener must ignore */
    char id[16], wal[160], product[4001];
    struct stat st;
    memset(product, 'p', sizeof product - 1);
    product[sizeof product - 1] = 0;
    for (int i = 0; i < 20000; i++) {
      snprintf(id, sizeof id, "K%06d", i);
      struct contract c = {.id = id, .product = product, .expires_at = T0 + i % 1000 * DAY};
      if (store_contract_upsert(s, &c, T0) != STORE_INSERTED)
        _exit(3);
    }
    snprintf(wal, sizeof wal, "%s-wal", f->tmp.path);
    _exit(stat(wal, &st) == 0 && st.st_size > 10000000 ? 9 : 4);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 9);

  char err[256];
  assert_int_equal(store_open(f->tmp.path, 0, &f->s, err, sizeof err), 0);
  _cleanup_free_ char *after = schema_of(f->tmp.path);
  assert_string_equal(after, before);
  assert_int_equal(path_int(f->tmp.path, "SELECT count(*) FROM contracts"), 0);
  sqlite3 *db = raw_open(f->tmp.path);
  _cleanup_free_ char *ic = raw_text(db, "PRAGMA integrity_check");
  sqlite3_close(db);
  assert_string_equal(ic, "ok");
  /* and a new load works */
  assert_int_equal(store_load_begin(f->s), 0);
  assert_int_equal(store_bulk_begin(f->s), 1);
  assert_int_equal(put_contract(f->s, "K1", NULL, T0), STORE_INSERTED);
  assert_int_equal(store_bulk_commit(f->s), 0);
  assert_int_equal(store_load_end(f->s), 0);
  assert_int_equal(seq_of(f->s, "K1"), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_bulk_load, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bulk_wal_truncated, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bulk_many, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bulk_duplicate, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bulk_not_empty, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bulk_rollback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bulk_dangling_customer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bulk_crash, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
