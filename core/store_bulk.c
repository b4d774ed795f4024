/* store_bulk: loading many rows at once (renewctl import).
 *
 * Two tools around the ordinary upserts of store_contracts.c:
 *
 *  - store_load_begin()/store_load_end() tune the connection for a long
 *    series of writes: page cache STORE_LOAD_CACHE_KIB and a WAL
 *    auto-checkpoint threshold of STORE_LOAD_CHECKPOINT_PAGES instead of
 *    SQLite's 1000, so that index pages rewritten by many batches are copied
 *    into the database once rather than at every other commit. load_end runs
 *    one wal_checkpoint(TRUNCATE), without waiting for readers, so that the
 *    WAL does not stay large, and restores the settings.
 *
 *  - store_bulk_begin()/store_bulk_commit(): when the contracts and customers
 *    tables are empty (a first import), the whole load is ONE write
 *    transaction which first
 *    drops the non-unique indexes of contracts and customers and the
 *    contracts INSERT trigger (contracts_seq_insert, for foreign writers), and
 *    at commit recreates them from their own stored definitions
 *    (sqlite_schema.sql of this very file: no SQL text is built from data).
 *    One sort per index (CREATE INDEX) is far cheaper than a million inserts
 *    at random keys into B-trees larger than the page cache, and without an
 *    INSERT trigger an INSERT is a single-write statement that needs no
 *    statement journal; store_bulk_customers()/store_bulk_contracts() insert
 *    STORE_BULK_ROWS rows per statement. Foreign keys are off during the
 *    load (the pragma is set before BEGIN and restored after the end, as is
 *    temp_store=FILE for the sorter): instead of a random probe
 *    of the customers key per contract, the commit checks every reference in
 *    one ordered pass over the rebuilt contracts_customer index and fails
 *    (-ENXIO, everything rolled back) on a dangling one. change_seq is
 *    assigned by the upserts as always. DDL is transactional in SQLite:
 *    other connections keep seeing the store as it was (indexes included)
 *    until the commit, and an error, a rollback or a crash before the commit
 *    leaves the store exactly as before. While the transaction is open no
 *    other writer can run (they wait for their busy timeout), so no foreign
 *    INSERT can miss the dropped trigger.
 *
 * Durability: synchronous stays NORMAL. In WAL mode a commit is atomic; a
 * power loss may lose the last commits but never corrupts the file, and the
 * checkpoint syncs the WAL before copying it. synchronous=OFF would let a
 * checkpoint overwrite database pages before the WAL is on disk, so an OS
 * crash could corrupt the whole store, not just lose the import: not used.
 *
 * Owns: nothing beyond struct store's bulk fields (the saved CREATE
 * statements). Blocking: file I/O; CREATE INDEX sorts in memory runs of
 * STORE_BULK_SORT_CACHE_KIB merged from temporary files; the checkpoint waits
 * up to the busy timeout for readers of older snapshots. */
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
   * snapshot) is fine: what could be copied was, and the next checkpoint
   * finishes the job. Without waiting: a TRUNCATE checkpoint holds the
   * WAL's reader locks while its busy handler waits for readers, and a
   * reader that starts meanwhile (a running renewd's loop) spins in SQLite's
   * own retry loop for up to 10 s. */
  sqlite3_busy_timeout(s->db, 0);
  int nlog = 0, nckpt = 0;
  int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &nlog, &nckpt);
  sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
  int r = rc == SQLITE_OK || rc == SQLITE_BUSY ? 0 : store_error(s, rc);
  int k = exec_pragma_int(s, "cache_size", s->load_saved_cache);
  if (k >= 0)
    k = exec_pragma_int(s, "wal_autocheckpoint", s->load_saved_ckpt);
  return r < 0 ? r : k;
}

/* ---- one-transaction bulk load ------------------------------------------------ */

void bulk_reset(struct store *s) {
  buf_free(&s->bulk_redo);
  sqlite3_finalize(s->bulk_customers);
  sqlite3_finalize(s->bulk_contracts);
  s->bulk_customers = s->bulk_contracts = NULL;
  /* both pragmas only take effect outside a transaction */
  if (s->bulk_pragmas && sqlite3_get_autocommit(s->db) &&
      exec_pragma_int(s, "temp_store", s->bulk_saved_temp) >= 0 &&
      exec_sql(s, "PRAGMA foreign_keys = ON") >= 0)
    s->bulk_pragmas = false;
  s->bulk = false;
}

int store_bulk_begin(struct store *s) {
  if (!s || !s->load)
    return -EINVAL;
  if (!sqlite3_get_autocommit(s->db))
    return -EBUSY;
  _cleanup_(buf_free) struct buf drop = {0}; /* DROP statements for the indexes */
  /* Row-by-row foreign key checks cost a random probe of the customers key
   * per contract; store_bulk_commit() checks them all in one ordered pass
   * instead. Temporary files on disk (not in memory) let CREATE INDEX sort
   * in short runs (see STORE_BULK_SORT_CACHE_KIB); with temp_store=MEMORY
   * SQLite's sorter keeps the whole index in memory. Both pragmas only take
   * effect outside a transaction: bulk_reset() restores them afterwards. */
  int r = query_int(s, "PRAGMA temp_store", &s->bulk_saved_temp);
  if (r < 0)
    return r;
  s->bulk_pragmas = true;
  if ((r = exec_sql(s, "PRAGMA foreign_keys = OFF")) < 0 ||
      (r = exec_pragma_int(s, "temp_store", 1)) < 0 || (r = store_begin(s)) < 0) {
    bulk_reset(s);
    return r;
  }

  /* Customers too: updating an existing customer fires a trigger that
   * searches its contracts, and the next change_seq is a max(): both would
   * scan the whole table while the indexes are gone. */
  int64_t any = 0;
  if ((r = query_int(s,
                     "SELECT EXISTS (SELECT 1 FROM contracts) OR EXISTS (SELECT 1 FROM customers)",
                     &any)) < 0)
    goto fail;
  if (any) {
    /* not a first import: the caller writes in batches */
    r = store_rollback(s);
    return r < 0 ? r : 0;
  }

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

/* ---- multi-row inserts ------------------------------------------------------------ */

/* Prepares "INSERT OR IGNORE INTO table(cols) VALUES (?1..?k), (?k+1..?2k),
 * ..." for STORE_BULK_ROWS rows of k = ncols parameters, the last one
 * repeated (created_at and updated_at). No data in the SQL text:
 * placeholders only. OR IGNORE, not ON CONFLICT: a multi-row statement that
 * may abort half-way needs a statement journal, a copy of every page it
 * touches (in a temporary file once one passes 64 KiB: measured over a
 * million extra pwrite() calls for 1,000,000 rows). With OR IGNORE nothing
 * aborts; the callers compare sqlite3_changes() with the row count instead. */
static int bulk_prepare(struct store *s, const char *head, int ncols, const char *tail,
                        sqlite3_stmt **ret) {
  if (*ret)
    return 0;
  _cleanup_(buf_free) struct buf sql = {0};
  int r = buf_puts(&sql, head);
  for (int i = 0; r >= 0 && i < STORE_BULK_ROWS; i++) {
    r = buf_puts(&sql, i ? ", (" : " (");
    for (int k = 1; r >= 0 && k <= ncols; k++)
      r = buf_printf(&sql, "%s?%d", k > 1 ? ", " : "", i * ncols + k);
    /* created_at and updated_at are the row's last parameter, twice */
    if (r >= 0)
      r = buf_printf(&sql, ", ?%d)", i * ncols + ncols);
  }
  if (r >= 0 && tail)
    r = buf_puts(&sql, tail);
  if (r < 0)
    return -ENOMEM;
  int rc = sqlite3_prepare_v3(s->db, sql.data, (int)sql.len, SQLITE_PREPARE_PERSISTENT, ret, NULL);
  return rc == SQLITE_OK ? 0 : store_error(s, rc);
}

static int bind_str(struct store *s, sqlite3_stmt *st, int i, const char *v) {
  int rc = isempty(v) ? sqlite3_bind_null(st, i) : sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
  return rc == SQLITE_OK ? 0 : store_error(s, rc);
}

static int bind_i64(struct store *s, sqlite3_stmt *st, int i, int64_t v) {
  int rc = sqlite3_bind_int64(st, i, v);
  return rc == SQLITE_OK ? 0 : store_error(s, rc);
}

/* Runs a bound multi-row statement: 0 or -errno; the statement is reset
 * (and its bindings cleared: they point into the caller's records). */
static int bulk_step(struct store *s, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  int r = rc == SQLITE_DONE ? 0 : store_error(s, rc);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return r;
}

/* values per row: id, name, email, phone, tz, locale, segment, owner, optout, now */
#define CUSTOMER_BULK_COLS 10
/* values per row: id, customer, product, starts, expires, value, currency, seq, now */
#define CONTRACT_BULK_COLS 9

int store_bulk_customers(struct store *s, const struct customer *c, size_t n, int64_t now) {
  if (!s || (!c && n > 0) || !s->bulk)
    return -EINVAL;
  for (size_t i = 0; i < n; i++)
    if (isempty(c[i].id) || c[i].optout > 7)
      return -EINVAL;
  size_t i = 0;
  int r = 0;
  for (; r >= 0 && n - i >= STORE_BULK_ROWS; i += STORE_BULK_ROWS) {
    r = bulk_prepare(s,
                     "INSERT OR IGNORE INTO customers(id, name, email, phone, tz, locale, segment, "
                     "owner_id, optout, created_at, updated_at) VALUES",
                     CUSTOMER_BULK_COLS, NULL, &s->bulk_customers);
    sqlite3_stmt *st = s->bulk_customers;
    for (size_t k = 0; r >= 0 && k < STORE_BULK_ROWS; k++) {
      const struct customer *cu = &c[i + k];
      int b = (int)k * CUSTOMER_BULK_COLS;
      if ((r = bind_str(s, st, b + 1, cu->id)) < 0 || (r = bind_str(s, st, b + 2, cu->name)) < 0 ||
          (r = bind_str(s, st, b + 3, cu->email)) < 0 ||
          (r = bind_str(s, st, b + 4, cu->phone)) < 0 || (r = bind_str(s, st, b + 5, cu->tz)) < 0 ||
          (r = bind_str(s, st, b + 6, cu->locale)) < 0 ||
          (r = bind_str(s, st, b + 7, cu->segment)) < 0 ||
          (r = bind_str(s, st, b + 8, cu->owner_id)) < 0 ||
          (r = bind_i64(s, st, b + 9, cu->optout)) < 0)
        break;
      r = bind_i64(s, st, b + 10, now);
    }
    if (r >= 0)
      r = bulk_step(s, st);
    if (r >= 0 && sqlite3_changes(s->db) != STORE_BULK_ROWS)
      /* some were ignored (they exist already): the ordinary upsert merges
       * them, finds the ones just inserted unchanged, and reports errors */
      for (size_t k = 0; r >= 0 && k < STORE_BULK_ROWS; k++)
        r = store_customer_upsert(s, &c[i + k], now);
  }
  for (; r >= 0 && i < n; i++)
    r = store_customer_upsert(s, &c[i], now);
  return r < 0 ? r : 0;
}

int store_bulk_contracts(struct store *s, const struct contract *c, size_t n, int64_t now) {
  if (!s || (!c && n > 0) || !s->bulk)
    return -EINVAL;
  for (size_t i = 0; i < n; i++)
    if (isempty(c[i].id))
      return -EINVAL;
  int r = seq_refresh(s);
  size_t i = 0;
  for (; r >= 0 && n - i >= STORE_BULK_ROWS; i += STORE_BULK_ROWS) {
    r = bulk_prepare(
        s,
        "INSERT OR IGNORE INTO contracts(id, customer_id, product, starts_at, "
        "expires_at, value_minor, currency, change_seq, created_at, updated_at) VALUES",
        CONTRACT_BULK_COLS, NULL, &s->bulk_contracts);
    sqlite3_stmt *st = s->bulk_contracts;
    int64_t seq = seq_next(s);
    for (size_t k = 0; r >= 0 && k < STORE_BULK_ROWS; k++) {
      const struct contract *co = &c[i + k];
      int b = (int)k * CONTRACT_BULK_COLS;
      if ((r = bind_str(s, st, b + 1, co->id)) < 0 ||
          (r = bind_str(s, st, b + 2, co->customer_id)) < 0 ||
          (r = bind_str(s, st, b + 3, co->product)) < 0 ||
          (r = bind_i64(s, st, b + 4, co->starts_at)) < 0 ||
          (r = bind_i64(s, st, b + 5, co->expires_at)) < 0 ||
          (r = bind_i64(s, st, b + 6, co->value_minor)) < 0 ||
          (r = bind_str(s, st, b + 7, co->currency)) < 0 ||
          (r = bind_i64(s, st, b + 8, seq + (int64_t)k)) < 0)
        break;
      r = bind_i64(s, st, b + 9, now);
    }
    if (r >= 0)
      r = bulk_step(s, st);
    if (r >= 0 && sqlite3_changes(s->db) != STORE_BULK_ROWS) {
      /* a row was ignored: its id exists (or it broke a constraint) */
      snprintf(s->errmsg, sizeof s->errmsg, "bulk load: contract exists or is invalid");
      r = -EEXIST;
    }
    if (r >= 0)
      s->max_seq = seq + STORE_BULK_ROWS - 1;
  }
  for (; r >= 0 && i < n; i++) {
    r = store_contract_upsert(s, &c[i], now);
    if (r >= 0 && r != STORE_INSERTED)
      r = -EEXIST;
  }
  return r < 0 ? r : 0;
}
