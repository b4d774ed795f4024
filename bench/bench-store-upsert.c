/* bench-store-upsert: customer+contract upserts per second through core/store,
 * as `renewctl import` does them (batches of 10,000 per transaction), against
 * a peer measured in the same run: plain prepared INSERTs of the same rows into
 * an equivalent schema with no change detection, events or triggers (the floor).
 *
 * Phases: first import (all inserts), re-import (all unchanged), re-import with
 * 10% of expiries moved (updates starting new terms). Usage:
 *   bench-store-upsert [rows] [dir]     (default 200000 rows, /tmp)
 * Figures are CPU seconds (user+system) of this process, so that other load on
 * the machine does not distort them; I/O wait is not counted. */
#include <inttypes.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/store.h"
#include "core/util.h"

#define BATCH 10000
#define T0 INT64_C(1790000000)

/* CPU time (user + system) of this process: robust against other load on the
 * machine, which wall-clock figures are not. */
static double now_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void remove_db(const char *path) {
  char p[512];
  const char *suffixes[] = {"", "-wal", "-shm"};
  for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
    snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
    unlink(p);
  }
}

/* Upserts rows [0, n) in batches; move = every 10th row's expiry shifted. */
static double run_store(struct store *s, size_t n, bool move, int64_t counts[3]) {
  char cid[32], kid[32], email[64];
  double t = now_s();
  for (size_t i = 0; i < n; i++) {
    if (i % BATCH == 0 && store_begin(s) < 0)
      abort();
    snprintf(cid, sizeof cid, "C%07zu", i);
    snprintf(kid, sizeof kid, "K%07zu", i);
    snprintf(email, sizeof email, "c%zu@example.com", i);
    struct customer cu = {.id = cid,
                          .name = "Customer",
                          .email = email,
                          .tz = "Europe/Zurich",
                          .segment = i % 3 ? "smb" : "enterprise",
                          .owner_id = "O1"};
    struct contract c = {.id = kid,
                         .customer_id = cid,
                         .product = "Support",
                         .currency = "EUR",
                         .starts_at = T0 - 365 * 86400,
                         .expires_at = T0 + (int64_t)(i % 365) * 86400 +
                                       (move && i % 10 == 0 ? 365 * 86400 : 0),
                         .value_minor = 100000 + (int64_t)i};
    int r = store_customer_upsert(s, &cu, T0);
    if (r < 0)
      abort();
    r = store_contract_upsert(s, &c, T0);
    if (r < 0) {
      fprintf(stderr, "upsert: %s\n", strerror(-r));
      abort();
    }
    counts[r]++;
    if ((i + 1) % BATCH == 0 || i + 1 == n)
      if (store_commit(s) < 0)
        abort();
  }
  return now_s() - t;
}

static double run_raw(const char *path, size_t n) {
  sqlite3 *db;
  if (sqlite3_open(path, &db) != SQLITE_OK)
    abort();
  sqlite3_exec(db,
               "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
               "CREATE TABLE customers (id TEXT PRIMARY KEY, name, email, tz, segment, owner_id);"
               "CREATE TABLE contracts (rowid INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL,"
               " customer_id TEXT REFERENCES customers(id), product, starts_at, expires_at,"
               " value_minor, currency, change_seq);"
               "CREATE INDEX ce ON contracts(expires_at, id);"
               "CREATE INDEX cs ON contracts(change_seq);"
               "CREATE INDEX cc ON contracts(customer_id);",
               NULL, NULL, NULL);
  sqlite3_stmt *cu, *co;
  sqlite3_prepare_v2(db, "INSERT INTO customers VALUES (?1, ?2, ?3, ?4, ?5, ?6)", -1, &cu, NULL);
  sqlite3_prepare_v2(db,
                     "INSERT INTO contracts(id, customer_id, product, starts_at, expires_at,"
                     " value_minor, currency, change_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                     -1, &co, NULL);
  char cid[32], kid[32], email[64];
  double t = now_s();
  for (size_t i = 0; i < n; i++) {
    if (i % BATCH == 0)
      sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    snprintf(cid, sizeof cid, "C%07zu", i);
    snprintf(kid, sizeof kid, "K%07zu", i);
    snprintf(email, sizeof email, "c%zu@example.com", i);
    sqlite3_bind_text(cu, 1, cid, -1, SQLITE_STATIC);
    sqlite3_bind_text(cu, 2, "Customer", -1, SQLITE_STATIC);
    sqlite3_bind_text(cu, 3, email, -1, SQLITE_STATIC);
    sqlite3_bind_text(cu, 4, "Europe/Zurich", -1, SQLITE_STATIC);
    sqlite3_bind_text(cu, 5, i % 3 ? "smb" : "enterprise", -1, SQLITE_STATIC);
    sqlite3_bind_text(cu, 6, "O1", -1, SQLITE_STATIC);
    if (sqlite3_step(cu) != SQLITE_DONE)
      abort();
    sqlite3_reset(cu);
    sqlite3_bind_text(co, 1, kid, -1, SQLITE_STATIC);
    sqlite3_bind_text(co, 2, cid, -1, SQLITE_STATIC);
    sqlite3_bind_text(co, 3, "Support", -1, SQLITE_STATIC);
    sqlite3_bind_int64(co, 4, T0 - 365 * 86400);
    sqlite3_bind_int64(co, 5, T0 + (int64_t)(i % 365) * 86400);
    sqlite3_bind_int64(co, 6, 100000 + (int64_t)i);
    sqlite3_bind_text(co, 7, "EUR", -1, SQLITE_STATIC);
    sqlite3_bind_int64(co, 8, (int64_t)i + 1);
    if (sqlite3_step(co) != SQLITE_DONE)
      abort();
    sqlite3_reset(co);
    if ((i + 1) % BATCH == 0 || i + 1 == n)
      sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
  }
  double el = now_s() - t;
  sqlite3_finalize(cu);
  sqlite3_finalize(co);
  sqlite3_close(db);
  return el;
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 200000;
  const char *dir = argc > 2 ? argv[2] : "/tmp";
  char path[512], raw[512], err[512];
  snprintf(path, sizeof path, "%s/bench-store-%d.db", dir, (int)getpid());
  snprintf(raw, sizeof raw, "%s/bench-store-raw-%d.db", dir, (int)getpid());
  remove_db(path);
  remove_db(raw);

  struct store *s = NULL;
  int r = store_open(path, 0, &s, err, sizeof err);
  if (r < 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  int64_t c1[3] = {0}, c2[3] = {0}, c3[3] = {0};
  double t_insert = run_store(s, n, false, c1);
  double t_same = run_store(s, n, false, c2);
  double t_move = run_store(s, n, true, c3);
  s = store_free(s);
  double t_raw = run_raw(raw, n);
  remove_db(path);
  remove_db(raw);

  printf("rows: %zu customer+contract pairs, batches of %d\n", n, BATCH);
  printf("store first import : %8.0f pairs/s (%.3f s CPU; %" PRId64 " inserted)\n", n / t_insert,
         t_insert, c1[STORE_INSERTED]);
  printf("store re-import    : %8.0f pairs/s (%.3f s CPU; %" PRId64 " unchanged)\n", n / t_same,
         t_same, c2[STORE_UNCHANGED]);
  printf("store 10%% moved    : %8.0f pairs/s (%.3f s CPU; %" PRId64 " new terms)\n", n / t_move,
         t_move, c3[STORE_UPDATED]);
  printf("raw INSERT (peer)  : %8.0f pairs/s (%.3f s CPU)\n", n / t_raw, t_raw);
  printf("ratio store first import / raw INSERT: %.2f\n", t_raw / t_insert);
  printf("ratio store re-import / raw INSERT   : %.2f\n", t_raw / t_same);
  return 0;
}
