/* store_bulk: loading many rows at once (renewctl import).
 *
 * Two tools around the ordinary upserts of store_contracts.c:
 *
 *  - store_load_begin()/store_load_end() tune the connection for a long
 *    series of writes: a larger page cache (STORE_LOAD_CACHE_KIB) and a WAL
 *    auto-checkpoint threshold of STORE_LOAD_CHECKPOINT_PAGES instead of
 *    SQLite's 1000, so that index pages rewritten by many batches are copied
 *    into the database once rather than at every other commit. load_end runs
 *    one wal_checkpoint(TRUNCATE) so that the daemon's next commit does not
 *    inherit a large WAL to copy, and restores the defaults.
 *
 *  - store_bulk_begin()/store_bulk_commit(): when the contracts table is empty
 *    (a first import), the whole load is ONE write transaction which first
 *    drops the non-unique indexes of contracts and customers and the
 *    contracts INSERT trigger (contracts_seq_insert, for foreign writers), and
 *    at commit recreates them from their own stored definitions
 *    (sqlite_schema.sql of this very file: no SQL text is built from data).
 *    One sort per index (CREATE INDEX) is far cheaper than a million inserts
 *    at random keys into B-trees larger than the page cache, and without an
 *    INSERT trigger an INSERT is a single-write statement that needs no
 *    statement journal. change_seq is assigned by the upserts as always. DDL
 *    is transactional in SQLite: other connections keep seeing the store as
 *    it was (indexes included) until the commit, and an error, a rollback or
 *    a crash before the commit leaves the store exactly as before. While the
 *    transaction is open no other writer can run (they wait for the busy
 *    timeout), so no foreign INSERT can miss the dropped trigger.
 *
 * Durability: synchronous stays NORMAL. In WAL mode a commit is atomic; a
 * power loss may lose the last commits but never corrupts the file, and the
 * checkpoint syncs the WAL before copying it. synchronous=OFF would let a
 * checkpoint overwrite database pages before the WAL is on disk, so an OS
 * crash could corrupt the whole store, not just lose the import: not used.
 *
 * Blocking: file I/O; CREATE INDEX sorts (memory up to the page cache size,
 * then temporary files); the checkpoint waits up to the busy timeout for
 * readers of older snapshots. */
#include "core/store_internal.h"

/* What a bulk load drops and recreates: every non-unique index created with
 * CREATE INDEX on contracts and customers (the UNIQUE/PRIMARY KEY indexes
 * stay: they enforce the keys), and the contracts INSERT trigger. Measured on
 * 1,000,000 rows: maintaining even the indexes that only grow at their end
 * (change_seq) or stay nearly empty (the partial next_due index) costs more
 * row by row than one scan and sort at the end. The definitions are read
 * back from sqlite_schema, so a later migration's indexes are covered. */
static const char bulk_schema_sql[] =
    "SELECT 'INDEX', il.name, m.sql FROM pragma_index_list('contracts') il "
    "JOIN sqlite_schema m ON m.type = 'index' AND m.name = il.name "
    "WHERE il.origin = 'c' AND il.\"unique\" = 0 AND m.sql IS NOT NULL "
    "UNION ALL "
    "SELECT 'INDEX', il.name, m.sql FROM pragma_index_list('customers') il "
    "JOIN sqlite_schema m ON m.type = 'index' AND m.name = il.name "
    "WHERE il.origin = 'c' AND il.\"unique\" = 0 AND m.sql IS NOT NULL "
    "UNION ALL "
    "SELECT 'TRIGGER', name, sql FROM sqlite_schema "
    "WHERE type = 'trigger' AND name = 'contracts_seq_insert' AND sql IS NOT NULL";

/* A contracts.customer_id naming no customer (foreign keys are off during a
 * bulk load): one ordered pass over the distinct ids of the freshly built
 * contracts_customer index, probing the customers key in the same order. */
static const char bulk_fk_check_sql[] =
    "SELECT d.id FROM (SELECT DISTINCT customer_id AS id FROM contracts "
    "WHERE customer_id IS NOT NULL) d "
    "WHERE NOT EXISTS (SELECT 1 FROM customers cu WHERE cu.id = d.id) LIMIT 1";

static int exec_sql(struct store *s, const char *sql) {
  int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : store_error(s, rc);
}

static int exec_pragma_int(struct store *s, const char *name, int64_t v) {
  char sql[96];
  snprintf(sql, sizeof sql, "PRAGMA %s = %lld", name, (long long)v);
  return exec_sql(s, sql);
}

/* ---- connection tuning ------------------------------------------------------ */

static int query_int(struct store *s, const char *sql, int64_t *ret) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    *ret = sqlite3_column_int64(st, 0);
    rc = SQLITE_OK;
  }
  int r = rc == SQLITE_OK ? 0 : store_error(s, rc);
  sqlite3_finalize(st);
  return r;
}

int store_load_begin(struct store *s) {
  if (!s || (s->flags & STORE_READONLY))
    return -EINVAL;
  if (s->load)
    return 0;
  int r = query_int(s, "PRAGMA cache_size", &s->load_saved_cache);
  if (r >= 0)
    r = query_int(s, "PRAGMA wal_autocheckpoint", &s->load_saved_ckpt);
  if (r >= 0)
    r = query_int(s, "PRAGMA temp_store", &s->load_saved_temp);
  if (r >= 0) /* let CREATE INDEX sort in runs on disk, see STORE_BULK_SORT_CACHE_KIB */
    r = exec_pragma_int(s, "temp_store", 1);
  if (r >= 0)
    r = exec_pragma_int(s, "cache_size", -STORE_LOAD_CACHE_KIB);
  if (r >= 0)
    r = exec_pragma_int(s, "wal_autocheckpoint", STORE_LOAD_CHECKPOINT_PAGES);
  if (r < 0)
    return r;
  s->load = true;
  return 0;
}

int store_load_end(struct store *s) {
  if (!s)
    return -EINVAL;
  if (!s->load)
    return 0;
  if (!sqlite3_get_autocommit(s->db))
    return -EBUSY;
  s->load = false;
  /* Copy the WAL back and empty it. BUSY (a reader still on an older
   * snapshot past the busy timeout) is fine: what could be copied was, and
   * the next checkpoint finishes the job. */
  int nlog = 0, nckpt = 0;
  int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &nlog, &nckpt);
  int r = rc == SQLITE_OK || rc == SQLITE_BUSY ? 0 : store_error(s, rc);
  int k = exec_pragma_int(s, "cache_size", s->load_saved_cache);
  if (k >= 0)
    k = exec_pragma_int(s, "wal_autocheckpoint", s->load_saved_ckpt);
  if (k >= 0)
    k = exec_pragma_int(s, "temp_store", s->load_saved_temp);
  return r < 0 ? r : k;
}

/* ---- one-transaction bulk load ------------------------------------------------ */

void bulk_reset(struct store *s) {
  buf_free(&s->bulk_redo);
  if (s->bulk_fk_off && sqlite3_get_autocommit(s->db) &&
      sqlite3_exec(s->db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL) == SQLITE_OK)
    s->bulk_fk_off = false;
  s->bulk = false;
}

int store_bulk_begin(struct store *s) {
  if (!s || !s->load)
    return -EINVAL;
  if (!sqlite3_get_autocommit(s->db))
    return -EBUSY;
  /* Row-by-row foreign key checks cost a random probe of the customers key
   * per contract; store_bulk_commit() checks them all in one ordered pass
   * instead. The pragma only takes effect outside a transaction. */
  int r = exec_sql(s, "PRAGMA foreign_keys = OFF");
  if (r < 0)
    return r;
  s->bulk_fk_off = true;
  if ((r = store_begin(s)) < 0) {
    bulk_reset(s);
    return r;
  }

  int64_t any = 0;
  if ((r = query_int(s, "SELECT EXISTS (SELECT 1 FROM contracts)", &any)) < 0)
    goto fail;
  if (any) {
    /* not a first import: the caller writes in batches */
    r = store_rollback(s);
    return r < 0 ? r : 0;
  }

  _cleanup_(buf_free) struct buf drop = {0};
  {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, bulk_schema_sql, -1, &st, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
      const char *kind = (const char *)sqlite3_column_text(st, 0);
      const char *name = (const char *)sqlite3_column_text(st, 1);
      const char *sql = (const char *)sqlite3_column_text(st, 2);
      char *d = sqlite3_mprintf("DROP %s \"%w\";\n", kind, name);
      if (!d || buf_puts(&drop, d) < 0 || buf_puts(&s->bulk_redo, sql) < 0 ||
          buf_puts(&s->bulk_redo, ";\n") < 0) {
        sqlite3_free(d);
        sqlite3_finalize(st);
        r = -ENOMEM;
        goto fail;
      }
      sqlite3_free(d);
      rc = SQLITE_OK;
    }
    r = rc == SQLITE_DONE ? 0 : store_error(s, rc);
    sqlite3_finalize(st);
    if (r < 0)
      goto fail;
  }
  if (drop.len > 0 && (r = exec_sql(s, drop.data)) < 0)
    goto fail;
  s->bulk = true;
  return 1;

fail:
  (void)store_rollback(s);
  return r;
}

/* Fails with -ENXIO when a contract names a customer that does not exist. */
static int bulk_check_references(struct store *s) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(s->db, bulk_fk_check_sql, -1, &st, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_step(st);
  int r;
  if (rc == SQLITE_ROW) {
    snprintf(s->errmsg, sizeof s->errmsg, "FOREIGN KEY constraint failed: no customer '%s'",
             (const char *)sqlite3_column_text(st, 0));
    r = -ENXIO;
  } else
    r = rc == SQLITE_DONE ? 0 : store_error(s, rc);
  sqlite3_finalize(st);
  return r;
}

int store_bulk_commit(struct store *s) {
  if (!s)
    return -EINVAL;
  if (!s->bulk)
    return store_commit(s);
  s->bulk = false; /* store_commit() below must not come back here */
  /* A small cache while the indexes are built: SQLite's sorter keeps runs of
   * up to the cache size in memory, and many short runs merged from
   * temporary files sort faster (and in far less memory) than one run of
   * the whole index. */
  int r = exec_pragma_int(s, "cache_size", -STORE_BULK_SORT_CACHE_KIB);
  if (r >= 0 && s->bulk_redo.len > 0)
    r = exec_sql(s, s->bulk_redo.data);
  if (r >= 0)
    r = exec_pragma_int(s, "cache_size", -STORE_LOAD_CACHE_KIB);
  if (r >= 0)
    r = bulk_check_references(s);
  if (r >= 0)
    r = store_commit(s);
  if (r < 0) {
    char msg[sizeof s->errmsg];
    memcpy(msg, s->errmsg, sizeof msg);
    (void)store_rollback(s);
    memcpy(s->errmsg, msg, sizeof msg);
  }
  bulk_reset(s);
  return r;
}
