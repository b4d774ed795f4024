/* Unit tests for core/store: open/migrate/refuse, upserts and terms, change_seq
 * (including foreign writers through a second sqlite3 connection), the reminder
 * outbox, responses, events, meta, ladders, walks and idempotency keys.
 * Every test works in its own mkdtemp() directory, removed afterwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/store.h"
#include "core/util.h"
#include "storetmp.h"

#define T0 INT64_C(1790000000) /* 2026-09-21T14:13:20Z */
#define DAY INT64_C(86400)

struct fixture {
  struct store_tmp tmp;
  struct store *s;
};

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  store_tmp_make(&f->tmp, "store");
  *state = f;
  return 0;
}

static int setup_open(void **state) {
  setup(state);
  struct fixture *f = *state;
  char err[256];
  assert_int_equal(store_open(f->tmp.path, 0, &f->s, err, sizeof err), 0);
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  f->s = store_free(f->s);
  char p[160];
  snprintf(p, sizeof p, "%s/other.db", f->tmp.dir);
  unlink(p);
  store_tmp_remove(&f->tmp);
  free(f);
  return 0;
}

/* ---- raw SQL helpers (a separate connection: a "foreign writer") ---------- */

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

static int64_t path_int(const char *path, const char *sql) {
  sqlite3 *db = raw_open(path);
  int64_t v = raw_int(db, sql);
  sqlite3_close(db);
  return v;
}

/* ---- data helpers ---------------------------------------------------------- */

static void add_customer(struct store *s, const char *id, const char *segment) {
  struct customer c = {.id = (char *)id,
                       .name = "Ada",
                       .email = "ada@example.com",
                       .tz = "Europe/Zurich",
                       .segment = (char *)segment};
  assert_int_equal(store_customer_upsert(s, &c, T0), STORE_INSERTED);
}

static void add_contract(struct store *s, const char *id, const char *customer, int64_t expires) {
  struct contract c = {.id = (char *)id,
                       .customer_id = (char *)customer,
                       .product = "Support",
                       .currency = "EUR",
                       .expires_at = expires,
                       .value_minor = 120000};
  assert_int_equal(store_contract_upsert(s, &c, T0), STORE_INSERTED);
}

static int64_t seq_of(struct store *s, const char *id) {
  struct contract c = {0};
  assert_int_equal(store_contract_get(s, id, &c), 0);
  int64_t v = c.change_seq;
  contract_clear(&c);
  return v;
}

/* ---- open / migrate ----------------------------------------------------------- */

static void test_open_create_reopen(void **state) {
  struct fixture *f = *state;
  char err[256] = "";
  struct store *s = NULL;

  assert_int_equal(store_open(f->tmp.path, STORE_NO_CREATE, &s, err, sizeof err), -ENOENT);
  assert_null(s);
  assert_non_null(strstr(err, f->tmp.path));
  assert_int_equal(store_open(f->tmp.path, STORE_READONLY, &s, err, sizeof err), -ENOENT);

  assert_int_equal(store_open(f->tmp.path, 0, &s, err, sizeof err), 0);
  assert_non_null(s);
  add_customer(s, "C1", "smb");
  s = store_free(s);
  assert_null(s);

  assert_int_equal(path_int(f->tmp.path, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
  sqlite3 *db = raw_open(f->tmp.path);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
  sqlite3_finalize(st);
  sqlite3_close(db);

  assert_int_equal(store_open(f->tmp.path, STORE_NO_CREATE, &s, err, sizeof err), 0);
  struct customer c = {0};
  assert_int_equal(store_customer_get(s, "C1", &c), 0);
  assert_string_equal(c.email, "ada@example.com");
  assert_null(c.phone);
  customer_clear(&c);
  assert_int_equal(store_customer_get(s, "nope", &c), -ENOENT);
  assert_int_equal(store_open("", 0, &f->s, err, sizeof err), -EINVAL);
  assert_null(store_free(s));
  assert_null(store_free(NULL));
}

static void test_migrate_from_empty(void **state) {
  struct fixture *f = *state;
  int fd = open(f->tmp.path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  close(fd);
  char err[256];
  /* read-only never migrates */
  struct store *s = NULL;
  assert_int_equal(store_open(f->tmp.path, STORE_READONLY, &s, err, sizeof err), -EPROTO);
  assert_non_null(strstr(err, "with write access"));
  assert_int_equal(store_open(f->tmp.path, STORE_NO_CREATE, &f->s, err, sizeof err), 0);
  assert_int_equal(path_int(f->tmp.path, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
  assert_int_equal(
      path_int(f->tmp.path, "SELECT count(*) FROM sqlite_master WHERE name = 'contracts_next_due'"),
      1);
}

static void test_refuse_foreign_db(void **state) {
  struct fixture *f = *state;
  sqlite3 *db = raw_open(f->tmp.path);
  raw_exec(db, "CREATE TABLE stuff(x)");
  sqlite3_close(db);
  char err[256];
  assert_int_equal(store_open(f->tmp.path, 0, &f->s, err, sizeof err), -EPROTO);
  assert_non_null(strstr(err, "not a renewd store"));
  assert_int_equal(path_int(f->tmp.path, "PRAGMA user_version"), 0);

  /* not a database at all */
  char other[160];
  snprintf(other, sizeof other, "%s/other.db", f->tmp.dir);
  FILE *fp = fopen(other, "we");
  assert_non_null(fp);
  for (int i = 0; i < 64; i++)
    fputs("this is not an sqlite database, only some text\n", fp);
  fclose(fp);
  assert_int_equal(store_open(other, 0, &f->s, err, sizeof err), -EBADMSG);
  assert_null(f->s);
}

/* The version 1 schema exactly as renewd 1 created it. */
static const char v1_sql[] =
    "CREATE TABLE owners (id TEXT PRIMARY KEY NOT NULL, name TEXT, email TEXT, phone TEXT,"
    " webhook TEXT, tz TEXT, manager_id TEXT, created_at INTEGER NOT NULL DEFAULT 0,"
    " updated_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE customers (id TEXT PRIMARY KEY NOT NULL, name TEXT, email TEXT, phone TEXT,"
    " tz TEXT, locale TEXT, segment TEXT, owner_id TEXT, optout INTEGER NOT NULL DEFAULT 0"
    " CHECK (optout BETWEEN 0 AND 7), created_at INTEGER NOT NULL DEFAULT 0,"
    " updated_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE ladders (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);"
    "CREATE TABLE contracts (rowid INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL,"
    " customer_id TEXT REFERENCES customers(id), product TEXT,"
    " starts_at INTEGER NOT NULL DEFAULT 0, expires_at INTEGER NOT NULL,"
    " value_minor INTEGER NOT NULL DEFAULT 0, currency TEXT,"
    " term INTEGER NOT NULL DEFAULT 1 CHECK (term >= 1),"
    " state TEXT NOT NULL DEFAULT 'active' CHECK (state = 'active' OR state = 'reminding'"
    " OR state = 'renewed' OR state = 'declined' OR state = 'snoozed' OR state = 'callback'"
    " OR state = 'lapsed' OR state = 'closed'),"
    " state_until INTEGER NOT NULL DEFAULT 0, ladder_id INTEGER REFERENCES ladders(id),"
    " change_seq INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL DEFAULT 0,"
    " updated_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX contracts_expires ON contracts(expires_at, id);"
    "CREATE INDEX contracts_change_seq ON contracts(change_seq);"
    "CREATE INDEX contracts_customer ON contracts(customer_id);"
    "CREATE TABLE reminders (id INTEGER PRIMARY KEY,"
    " contract_rowid INTEGER NOT NULL REFERENCES contracts(rowid), contract_id TEXT NOT NULL,"
    " term INTEGER NOT NULL, tier TEXT NOT NULL, step INTEGER NOT NULL DEFAULT 0,"
    " channel TEXT NOT NULL, audience TEXT NOT NULL CHECK (audience = 'customer' OR audience = "
    "'owner'),"
    " recipient TEXT, idem_key TEXT UNIQUE NOT NULL, due_at INTEGER NOT NULL,"
    " status TEXT NOT NULL DEFAULT 'pending' CHECK (status = 'pending' OR status = 'sending'"
    " OR status = 'sent' OR status = 'retry' OR status = 'dead' OR status = 'cancelled'"
    " OR status = 'skipped'), attempts INTEGER NOT NULL DEFAULT 0,"
    " next_attempt_at INTEGER NOT NULL DEFAULT 0, last_error TEXT, provider_id TEXT,"
    " created_at INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL DEFAULT 0,"
    " sent_at INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE (contract_id, term, tier, step, channel, audience));"
    "CREATE INDEX reminders_due ON reminders(status, next_attempt_at);"
    "CREATE INDEX reminders_contract_rowid ON reminders(contract_rowid);"
    "CREATE TABLE responses (id INTEGER PRIMARY KEY,"
    " contract_id TEXT NOT NULL REFERENCES contracts(id), term INTEGER NOT NULL,"
    " kind TEXT NOT NULL, source TEXT, channel TEXT, reason TEXT,"
    " until_at INTEGER NOT NULL DEFAULT 0, new_expires_at INTEGER NOT NULL DEFAULT 0,"
    " detail TEXT, idem_key TEXT UNIQUE, created_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX responses_contract ON responses(contract_id);"
    "CREATE TABLE events (id INTEGER PRIMARY KEY, contract_id TEXT, at INTEGER NOT NULL,"
    " kind TEXT NOT NULL, detail TEXT);"
    "CREATE INDEX events_contract ON events(contract_id);"
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT);"
    "CREATE TRIGGER contracts_seq_insert AFTER INSERT ON contracts"
    " WHEN NEW.change_seq IS NULL OR NEW.change_seq <= 0 BEGIN UPDATE contracts SET"
    " change_seq = (SELECT max(change_seq) FROM contracts) + 1 WHERE rowid = NEW.rowid; END;"
    "CREATE TRIGGER contracts_seq_update AFTER UPDATE ON contracts"
    " WHEN NEW.change_seq IS OLD.change_seq BEGIN UPDATE contracts SET"
    " change_seq = (SELECT max(change_seq) FROM contracts) + 1 WHERE rowid = NEW.rowid; END;"
    "CREATE TRIGGER contracts_seq_reset AFTER UPDATE OF change_seq ON contracts"
    " WHEN NEW.change_seq <= 0 BEGIN UPDATE contracts SET change_seq ="
    " max((SELECT max(change_seq) FROM contracts), OLD.change_seq) + 1"
    " WHERE rowid = NEW.rowid; END;"
    "CREATE TRIGGER customers_seq_update AFTER UPDATE ON customers"
    " BEGIN UPDATE contracts SET change_seq = 0 WHERE customer_id = OLD.id; END;"
    "PRAGMA user_version = 1;";

static void test_migrate_from_v1(void **state) {
  struct fixture *f = *state;
  sqlite3 *db = raw_open(f->tmp.path);
  raw_exec(db, v1_sql);
  raw_exec(db,
           "INSERT INTO customers(id, segment) VALUES ('C1', 'smb');"
           "INSERT INTO contracts(id, customer_id, expires_at) VALUES ('K1', 'C1', 1800000000);"
           "INSERT INTO contracts(id, customer_id, expires_at) VALUES ('K2', 'C1', 1800000001);"
           "INSERT INTO reminders(contract_rowid, contract_id, term, tier, channel, audience, "
           "idem_key, due_at, status, attempts) VALUES (1, 'K1', 1, 'T-30', 'email', 'customer', "
           "'rk-00', 1799990000, 'sending', 1);");
  sqlite3_close(db);

  char err[256];
  struct store *s = NULL;
  char want[512];
  snprintf(want, sizeof want,
           "%s: store schema version 1 is older than this renewd uses (%d); "
           "run renewd or renewctl once with write access to upgrade it",
           f->tmp.path, STORE_SCHEMA_VERSION);
  assert_int_equal(store_open(f->tmp.path, STORE_READONLY, &s, err, sizeof err), -EPROTO);
  assert_string_equal(err, want);
  assert_null(s);
  assert_int_equal(store_open(f->tmp.path, 0, &f->s, err, sizeof err), 0);
  assert_int_equal(path_int(f->tmp.path, "PRAGMA user_version"), STORE_SCHEMA_VERSION);

  struct contract c = {0};
  assert_int_equal(store_contract_get(f->s, "K2", &c), 0);
  assert_int_equal(c.expires_at, 1800000001);
  assert_int_equal(c.change_seq, 2); /* assigned by the v1 insert trigger */
  assert_int_equal(c.next_due_at, 0);
  assert_int_equal(c.term, 1);
  assert_int_equal(c.state, CONTRACT_ACTIVE);
  /* v2: next_due_at bookkeeping does not bump change_seq */
  assert_int_equal(store_contract_set_next_due(f->s, c.rowid, 1799990000), 0);
  assert_int_equal(seq_of(f->s, "K2"), 2);
  assert_int_equal(store_contract_set_next_due(f->s, 999, 1), -ENOENT);
  contract_clear(&c);
  /* v5: the outbox row survives the rebuild, with no claim and no lease */
  struct reminder m = {0};
  assert_int_equal(store_reminder_get(f->s, 1, &m), 0);
  assert_int_equal(m.status, REMINDER_SENDING);
  assert_string_equal(m.idem_key, "rk-00");
  assert_int_equal(m.attempts, 1);
  assert_int_equal(m.claim, 0);
  assert_int_equal(m.claimed_until, 0);
  assert_false(m.cancel);
  reminder_clear(&m);
  assert_int_equal(store_reminder_recover_row(f->s, 1, 0, REMINDER_UNKNOWN, 0, "?", T0), 0);
  assert_int_equal(store_reminder_get(f->s, 1, &m), 0);
  assert_int_equal(m.status, REMINDER_UNKNOWN); /* allowed by the v5 CHECK */
  reminder_clear(&m);
}

/* A failing migration step leaves the file exactly as it was (one transaction). */
static void test_migrate_atomic(void **state) {
  struct fixture *f = *state;
  sqlite3 *db = raw_open(f->tmp.path);
  raw_exec(db, v1_sql);
  raw_exec(db, "INSERT INTO contracts(id, expires_at) VALUES ('K1', 1800000000);"
               "CREATE INDEX contracts_next_due ON contracts(id);"); /* v2 creates this name */
  sqlite3_close(db);
  char err[512];
  assert_int_equal(store_open(f->tmp.path, 0, &f->s, err, sizeof err), -EIO); /* SQLITE_ERROR */
  assert_non_null(strstr(err, "cannot migrate store schema"));
  assert_non_null(strstr(err, "contracts_next_due"));
  assert_null(f->s);
  assert_int_equal(path_int(f->tmp.path, "PRAGMA user_version"), 1);
  assert_int_equal(path_int(f->tmp.path,
                            "SELECT count(*) FROM pragma_table_info('contracts') WHERE name = "
                            "'next_due_at'"),
                   0);
  assert_int_equal(path_int(f->tmp.path, "SELECT count(*) FROM contracts"), 1);
}

/* The next retry instant of one channel is read through the v7 index, not by
 * walking the retry rows of every channel. */
static void test_next_retry_index(void **state) {
  struct fixture *f = *state;
  char err[512];
  assert_int_equal(store_open(f->tmp.path, 0, &f->s, err, sizeof err), 0);
  f->s = store_free(f->s);
  sqlite3 *db = raw_open(f->tmp.path);
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_prepare_v2(db,
                                      "EXPLAIN QUERY PLAN SELECT next_attempt_at FROM reminders "
                                      "WHERE status = 'retry' AND channel = 'email' "
                                      "ORDER BY next_attempt_at LIMIT 1",
                                      -1, &st, NULL),
                   SQLITE_OK);
  bool indexed = false, sorted = false;
  while (sqlite3_step(st) == SQLITE_ROW) {
    const char *detail = (const char *)sqlite3_column_text(st, 3);
    indexed = indexed || (detail && strstr(detail, "reminders_retry_channel"));
    sorted = sorted || (detail && strstr(detail, "TEMP B-TREE"));
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  assert_true(indexed);
  assert_false(sorted);
}

static void test_refuse_newer(void **state) {
  struct fixture *f = *state;
  char err[512], want[512];
  assert_int_equal(store_open(f->tmp.path, 0, &f->s, err, sizeof err), 0);
  f->s = store_free(f->s);
  sqlite3 *db = raw_open(f->tmp.path);
  raw_exec(db, "PRAGMA user_version = 99");
  sqlite3_close(db);
  snprintf(want, sizeof want,
           "%s: store schema version 99 is newer than this renewd supports (%d); upgrade renewd",
           f->tmp.path, STORE_SCHEMA_VERSION);
  assert_int_equal(store_open(f->tmp.path, 0, &f->s, err, sizeof err), -EPROTO);
  assert_string_equal(err, want);
  assert_null(f->s);
  assert_int_equal(store_open(f->tmp.path, STORE_READONLY, &f->s, err, sizeof err), -EPROTO);
  assert_string_equal(err, want);
  assert_int_equal(path_int(f->tmp.path, "PRAGMA user_version"), 99);
}

static void test_readonly(void **state) {
  struct fixture *f = *state;
  char err[256];
  assert_int_equal(store_open(f->tmp.path, 0, &f->s, err, sizeof err), 0);
  add_customer(f->s, "C1", "smb");
  add_contract(f->s, "K1", "C1", T0 + 30 * DAY);
  f->s = store_free(f->s);

  assert_int_equal(store_open(f->tmp.path, STORE_READONLY, &f->s, err, sizeof err), 0);
  int64_t n;
  assert_int_equal(store_contract_count(f->s, -1, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(store_meta_set(f->s, "k", "v"), -EACCES);
  assert_true(strlen(store_last_error(f->s)) > 0);
  struct contract c = {.id = "K2", .customer_id = "C1", .expires_at = T0};
  assert_int_equal(store_contract_upsert(f->s, &c, T0), -EACCES);
}

/* ---- upserts ---------------------------------------------------------------------- */

struct ev_list {
  char kinds[16][32];
  char details[16][160];
  int n;
};

static int collect_event(const struct event *e, void *ud) {
  struct ev_list *l = ud;
  if (l->n >= 16)
    return -E2BIG;
  snprintf(l->kinds[l->n], sizeof l->kinds[0], "%s", e->kind);
  snprintf(l->details[l->n], sizeof l->details[0], "%s", e->detail ? e->detail : "");
  l->n++;
  return 0;
}

static void test_upsert(void **state) {
  struct fixture *f = *state;
  struct store *s = f->s;

  struct owner o = {.id = "O1", .name = "Sam", .email = "sam@example.com"};
  assert_int_equal(store_owner_upsert(s, &o, T0), STORE_INSERTED);
  assert_int_equal(store_owner_upsert(s, &o, T0), STORE_UNCHANGED);
  o.phone = "+41790000000";
  assert_int_equal(store_owner_upsert(s, &o, T0 + 1), STORE_UPDATED);
  struct owner og = {0};
  assert_int_equal(store_owner_get(s, "O1", &og), 0);
  assert_string_equal(og.phone, "+41790000000");
  assert_null(og.webhook);
  owner_clear(&og);

  struct customer cu = {.id = "C1", .name = "Ada", .segment = "smb", .owner_id = "O9"};
  assert_int_equal(store_customer_upsert(s, &cu, T0), STORE_INSERTED);
  assert_int_equal(store_customer_upsert(s, &cu, T0), STORE_UNCHANGED);
  cu.email = ""; /* empty is the same as NULL */
  assert_int_equal(store_customer_upsert(s, &cu, T0), STORE_UNCHANGED);
  cu.optout = OPTOUT_SMS;
  assert_int_equal(store_customer_upsert(s, &cu, T0 + 1), STORE_UPDATED);
  cu.optout = 0; /* an import never clears an opt-out */
  assert_int_equal(store_customer_upsert(s, &cu, T0 + 2), STORE_UNCHANGED);
  assert_int_equal(store_customer_set_optout(s, "C1", OPTOUT_EMAIL | OPTOUT_WEBHOOK, T0 + 3), 0);
  assert_int_equal(store_customer_set_optout(s, "C9", 0, T0), -ENOENT);
  struct customer cg = {0};
  assert_int_equal(store_customer_get(s, "C1", &cg), 0);
  assert_int_equal(cg.optout, OPTOUT_EMAIL | OPTOUT_WEBHOOK);
  assert_string_equal(cg.owner_id, "O9");
  customer_clear(&cg);

  struct contract c = {.id = "K1",
                       .customer_id = "C1",
                       .product = "Support",
                       .currency = "EUR",
                       .starts_at = T0 - 365 * DAY,
                       .expires_at = T0 + 30 * DAY,
                       .value_minor = 99900};
  assert_int_equal(store_contract_upsert(s, &c, T0), STORE_INSERTED);
  assert_int_equal(store_contract_upsert(s, &c, T0 + 5), STORE_UNCHANGED);
  c.product = "Support Plus";
  c.value_minor = 129900;
  assert_int_equal(store_contract_upsert(s, &c, T0 + 6), STORE_UPDATED);

  struct contract g = {0};
  assert_int_equal(store_contract_get(s, "K1", &g), 0);
  assert_string_equal(g.product, "Support Plus");
  assert_int_equal(g.value_minor, 129900);
  assert_int_equal(g.term, 1);
  assert_int_equal(g.state, CONTRACT_ACTIVE);
  assert_int_equal(g.created_at, T0);
  assert_int_equal(g.updated_at, T0 + 6);
  int64_t rowid = g.rowid;
  contract_clear(&g);
  assert_int_equal(store_contract_get_by_rowid(s, rowid, &g), 0);
  assert_string_equal(g.id, "K1");
  contract_clear(&g);
  assert_int_equal(store_contract_get(s, "K404", &g), -ENOENT);

  struct ev_list ev = {0};
  assert_int_equal(store_event_foreach_contract(s, "K1", collect_event, &ev), 1);
  assert_string_equal(ev.kinds[0], "contract.updated");
  assert_string_equal(ev.details[0], "fields=product,value_minor");
  ev = (struct ev_list){0};
  assert_int_equal(store_event_foreach_contract(s, NULL, collect_event, &ev), 3);
  assert_string_equal(ev.kinds[0], "owner.updated");
  assert_string_equal(ev.details[0], "owner=O1 fields=phone");
  assert_string_equal(ev.details[1], "customer=C1 fields=optout");
  assert_string_equal(ev.kinds[2], "customer.optout");

  /* a contract naming a missing customer */
  struct contract bad = {.id = "K2", .customer_id = "C404", .expires_at = T0};
  assert_int_equal(store_contract_upsert(s, &bad, T0), -ENXIO);
  bad.customer_id = NULL;
  assert_int_equal(store_contract_upsert(s, &bad, T0), STORE_INSERTED);
  struct contract empty = {.id = ""};
  assert_int_equal(store_contract_upsert(s, &empty, T0), -EINVAL);
}

static void test_new_term(void **state) {
  struct fixture *f = *state;
  struct store *s = f->s;
  add_customer(s, "C1", "smb");
  add_contract(s, "K1", "C1", T0 + 30 * DAY);

  int64_t ladder;
  assert_int_equal(store_ladder_intern(s, "T-30:-P30D:email", &ladder), 0);
  struct contract c = {0};
  assert_int_equal(store_contract_get(s, "K1", &c), 0);
  c.state = CONTRACT_SNOOZED;
  c.state_until = T0 + 3 * DAY;
  c.ladder_id = ladder;
  assert_int_equal(store_contract_set_state(s, &c, "contract.snoozed", "3d", T0), 0);
  contract_clear(&c);

  struct reminder a = {.contract_id = "K1",
                       .term = 1,
                       .tier = "T-30",
                       .channel = "email",
                       .audience = "customer",
                       .due_at = T0};
  struct reminder b = {.contract_id = "K1",
                       .term = 1,
                       .tier = "T-30",
                       .channel = "sms",
                       .audience = "customer",
                       .due_at = T0};
  struct reminder o = {.contract_id = "K1",
                       .term = 1,
                       .tier = "T-7",
                       .channel = "email",
                       .audience = "owner",
                       .due_at = T0,
                       .status = REMINDER_RETRY};
  int64_t ida, idb, ido;
  assert_int_equal(store_reminder_insert(s, &a, T0, &ida), 0);
  assert_int_equal(store_reminder_insert(s, &b, T0, &idb), 0);
  assert_int_equal(store_reminder_insert(s, &o, T0, &ido), 0);
  assert_int_equal(store_reminder_set_status(s, idb, REMINDER_SENT, 0, NULL, "msg-1", T0 + 1), 0);

  /* a product change keeps the term and state */
  struct contract up = {.id = "K1",
                        .customer_id = "C1",
                        .product = "Other",
                        .currency = "EUR",
                        .expires_at = T0 + 30 * DAY,
                        .value_minor = 120000};
  assert_int_equal(store_contract_upsert(s, &up, T0 + 2), STORE_UPDATED);
  assert_int_equal(store_contract_get(s, "K1", &c), 0);
  assert_int_equal(c.term, 1);
  assert_int_equal(c.state, CONTRACT_SNOOZED);
  assert_int_equal(c.ladder_id, ladder);
  contract_clear(&c);

  /* an expiry change starts term 2 */
  up.expires_at = T0 + 395 * DAY;
  assert_int_equal(store_contract_upsert(s, &up, T0 + 10), STORE_UPDATED);
  assert_int_equal(store_contract_get(s, "K1", &c), 0);
  assert_int_equal(c.term, 2);
  assert_int_equal(c.state, CONTRACT_ACTIVE);
  assert_int_equal(c.state_until, 0);
  assert_int_equal(c.ladder_id, 0);
  assert_int_equal(c.expires_at, T0 + 395 * DAY);
  contract_clear(&c);

  struct reminder g = {0};
  assert_int_equal(store_reminder_get(s, ida, &g), 0);
  assert_int_equal(g.status, REMINDER_CANCELLED);
  assert_int_equal(g.updated_at, T0 + 10);
  reminder_clear(&g);
  assert_int_equal(store_reminder_get(s, idb, &g), 0);
  assert_int_equal(g.status, REMINDER_SENT);
  assert_int_equal(g.sent_at, T0 + 1);
  assert_string_equal(g.provider_id, "msg-1");
  reminder_clear(&g);
  assert_int_equal(store_reminder_get(s, ido, &g), 0);
  assert_int_equal(g.status, REMINDER_CANCELLED);
  reminder_clear(&g);

  /* term 2 can record the same tier/step/channel again: a new key */
  a.term = 2;
  assert_int_equal(store_reminder_insert(s, &a, T0 + 11, NULL), 0);

  struct ev_list ev = {0};
  assert_int_equal(store_event_foreach_contract(s, "K1", collect_event, &ev), 3);
  assert_string_equal(ev.kinds[0], "contract.snoozed");
  assert_string_equal(ev.details[0], "3d");
  assert_string_equal(ev.kinds[1], "contract.updated");
  assert_string_equal(ev.details[1], "fields=product");
  assert_string_equal(ev.kinds[2], "contract.new_term");
  assert_string_equal(ev.details[2], "term=2 expires_at=2027-10-21T14:13:20Z "
                                     "previous=2026-10-21T14:13:20Z fields=expires_at");
}

/* ---- change_seq -------------------------------------------------------------------- */

struct seq_list {
  char ids[16][16];
  int64_t seqs[16];
  int n;
};

static int collect_changed(const struct contract *c, void *ud) {
  struct seq_list *l = ud;
  if (l->n >= 16)
    return -E2BIG;
  snprintf(l->ids[l->n], sizeof l->ids[0], "%s", c->id);
  l->seqs[l->n++] = c->change_seq;
  return 0;
}

static void test_change_seq(void **state) {
  struct fixture *f = *state;
  struct store *s = f->s;
  add_customer(s, "C1", "smb");
  add_customer(s, "C2", "smb");
  add_contract(s, "K1", "C1", T0 + 10 * DAY);
  add_contract(s, "K2", "C1", T0 + 20 * DAY);
  add_contract(s, "K3", "C2", T0 + 30 * DAY);
  assert_int_equal(seq_of(s, "K1"), 1);
  assert_int_equal(seq_of(s, "K2"), 2);
  assert_int_equal(seq_of(s, "K3"), 3);

  /* unchanged upsert does not bump; an update does */
  struct contract c = {.id = "K1",
                       .customer_id = "C1",
                       .product = "Support",
                       .currency = "EUR",
                       .expires_at = T0 + 10 * DAY,
                       .value_minor = 120000};
  assert_int_equal(store_contract_upsert(s, &c, T0), STORE_UNCHANGED);
  assert_int_equal(seq_of(s, "K1"), 1);
  c.value_minor = 1;
  assert_int_equal(store_contract_upsert(s, &c, T0), STORE_UPDATED);
  assert_int_equal(seq_of(s, "K1"), 4);

  /* inside one transaction, the cached maximum keeps counting */
  assert_int_equal(store_begin(s), 0);
  assert_int_equal(store_begin(s), -EBUSY);
  c.value_minor = 2;
  assert_int_equal(store_contract_upsert(s, &c, T0), STORE_UPDATED);
  add_contract(s, "K4", "C2", T0 + 40 * DAY);
  assert_int_equal(store_commit(s), 0);
  assert_int_equal(seq_of(s, "K1"), 5);
  assert_int_equal(seq_of(s, "K4"), 6);

  /* a rolled back transaction leaves nothing */
  assert_int_equal(store_begin(s), 0);
  add_contract(s, "K5", "C2", T0);
  assert_int_equal(store_rollback(s), 0);
  struct contract g = {0};
  assert_int_equal(store_contract_get(s, "K5", &g), -ENOENT);

  int64_t dv0, dv1, max;
  assert_int_equal(store_data_version(s, &dv0), 0);

  /* foreign writers through another connection */
  sqlite3 *db = raw_open(f->tmp.path);
  raw_exec(db, "UPDATE contracts SET product = 'Shell' WHERE id = 'K2'");
  assert_int_equal(store_data_version(s, &dv1), 0);
  assert_true(dv1 != dv0);
  assert_int_equal(seq_of(s, "K2"), 7);
  raw_exec(db, "INSERT INTO contracts(id, customer_id, expires_at) VALUES ('K6', 'C2', 1)");
  assert_int_equal(seq_of(s, "K6"), 8);
  raw_exec(db, "UPDATE customers SET tz = 'Asia/Tokyo' WHERE id = 'C2'");
  int64_t k3 = seq_of(s, "K3"), k4 = seq_of(s, "K4"), k6 = seq_of(s, "K6");
  assert_true(k3 > 8 && k4 > 8 && k6 > 8);
  assert_true(k3 != k4 && k4 != k6 && k3 != k6);
  assert_int_equal(MAX(k3, MAX(k4, k6)), 11);
  raw_exec(db, "UPDATE contracts SET next_due_at = 5 WHERE id = 'K1'"); /* bookkeeping only */
  assert_int_equal(seq_of(s, "K1"), 5);
  sqlite3_close(db);

  /* our cached maximum is refreshed after the foreign writes */
  c.value_minor = 3;
  assert_int_equal(store_contract_upsert(s, &c, T0), STORE_UPDATED);
  assert_int_equal(seq_of(s, "K1"), 12);
  assert_int_equal(store_contract_max_change_seq(s, &max), 0);
  assert_int_equal(max, 12);

  /* a customer update through the store bumps its contracts too */
  struct customer cu = {.id = "C1",
                        .name = "Ada",
                        .email = "ada@example.com",
                        .tz = "Europe/Zurich",
                        .segment = "enterprise"};
  assert_int_equal(store_customer_upsert(s, &cu, T0), STORE_UPDATED);
  add_contract(s, "K7", "C1", T0);
  int64_t k1 = seq_of(s, "K1"), k2 = seq_of(s, "K2"), k7 = seq_of(s, "K7");
  assert_true(k1 > 12 && k2 > 12 && k1 != k2);
  assert_int_equal(k7, 15);

  struct seq_list l = {0};
  assert_int_equal(store_contract_foreach_changed(s, 11, 2, collect_changed, &l, &max), 2);
  assert_int_equal(l.seqs[0], 13);
  assert_int_equal(l.seqs[1], 14);
  assert_int_equal(max, 14);
  l = (struct seq_list){0};
  assert_int_equal(store_contract_foreach_changed(s, max, 0, collect_changed, &l, &max), 1);
  assert_string_equal(l.ids[0], "K7");
  assert_int_equal(max, 15);
  assert_int_equal(store_contract_foreach_changed(s, max, 0, collect_changed, &l, &max), 0);
  assert_int_equal(max, 15);

  /* the shell way to force a re-plan: change_seq = 0 */
  db = raw_open(f->tmp.path);
  raw_exec(db, "UPDATE contracts SET change_seq = 0 WHERE id = 'K7'");
  raw_exec(db, "UPDATE contracts SET change_seq = 0 WHERE id = 'K3'");
  sqlite3_close(db);
  assert_int_equal(seq_of(s, "K7"), 16);
  assert_int_equal(seq_of(s, "K3"), 17);
}

/* A callback that writes while the walk is running, and re-enters the same
 * walk: the store must hand out a private statement copy. */
struct reenter {
  struct store *s;
  int inner;
  int writes;
};

static int count_cb(const struct contract *c, void *ud) {
  (*(int *)ud)++;
  return 0;
}

static int reenter_cb(const struct contract *c, void *ud) {
  struct reenter *re = ud;
  int n = 0;
  assert_int_equal(store_contract_foreach_changed(re->s, 0, 0, count_cb, &n, NULL), 3);
  re->inner += n;
  assert_int_equal(store_contract_set_next_due(re->s, c->rowid, T0 + c->rowid), 0);
  struct contract st = {
      .rowid = c->rowid, .term = c->term, .expires_at = c->expires_at, .state = CONTRACT_REMINDING};
  assert_int_equal(store_contract_set_state(re->s, &st, NULL, NULL, T0), 0);
  re->writes++;
  return 0;
}

static int due_cb(const struct contract *c, void *ud) {
  struct seq_list *l = ud;
  snprintf(l->ids[l->n], sizeof l->ids[0], "%s", c->id);
  l->seqs[l->n++] = c->next_due_at;
  return 0;
}

static void test_reentrant_walk(void **state) {
  struct fixture *f = *state;
  struct store *s = f->s;
  add_customer(s, "C1", "smb");
  add_contract(s, "K1", "C1", T0 + 1);
  add_contract(s, "K2", "C1", T0 + 2);
  add_contract(s, "K3", "C1", T0 + 3);
  struct reenter re = {.s = s};
  int64_t max;
  assert_int_equal(store_contract_foreach_changed(s, 0, 3, reenter_cb, &re, &max), 3);
  assert_int_equal(re.inner, 9);
  assert_int_equal(re.writes, 3);
  int64_t n;
  assert_int_equal(store_contract_count(s, CONTRACT_REMINDING, &n), 0);
  assert_int_equal(n, 3);
  assert_int_equal(store_contract_max_change_seq(s, &max), 0);
  assert_int_equal(max, 6);

  struct seq_list l = {0};
  assert_int_equal(store_contract_foreach_due(s, T0 + 3, 0, due_cb, &l), 2);
  assert_string_equal(l.ids[0], "K1");
  assert_int_equal(l.seqs[0], T0 + 1);
  assert_string_equal(l.ids[1], "K2");
  assert_int_equal(store_contract_set_next_due(s, 1, 0), 0);
  l = (struct seq_list){0};
  assert_int_equal(store_contract_foreach_due(s, TIME_NEVER, 1, due_cb, &l), 1);
  assert_string_equal(l.ids[0], "K2");
}

/* ---- outbox -------------------------------------------------------------------------- */

struct rem_list {
  int64_t ids[16];
  char keys[16][40];
  int32_t attempts[16];
  int n;
  int stop_after;
};

static int collect_rem(const struct reminder *r, void *ud) {
  struct rem_list *l = ud;
  if (l->stop_after && l->n == l->stop_after)
    return -ECANCELED;
  l->ids[l->n] = r->id;
  memcpy(l->keys[l->n], r->idem_key, 40);
  l->attempts[l->n] = r->attempts;
  l->n++;
  return 0;
}

static void test_reminders(void **state) {
  struct fixture *f = *state;
  struct store *s = f->s;
  add_customer(s, "C1", "smb");
  add_contract(s, "K1", "C1", T0 + 30 * DAY);
  add_contract(s, "K2", "C1", T0 + 60 * DAY);

  struct reminder m = {.contract_id = "K1",
                       .term = 1,
                       .tier = "T-30",
                       .step = 0,
                       .channel = "email",
                       .audience = "customer",
                       .recipient = "ada@example.com",
                       .due_at = T0};
  int64_t id1, id2, id3, id4;
  assert_int_equal(store_reminder_insert(s, &m, T0 - 10, &id1), 0);
  char key[40];
  store_idem_key("K1", 1, "T-30", 0, "email", "customer", key);
  assert_string_equal(m.idem_key, key);
  assert_int_equal(m.contract_rowid, 1);
  assert_int_equal(m.id, id1);
  /* the same intent again */
  assert_int_equal(store_reminder_insert(s, &m, T0, NULL), -EEXIST);
  m.contract_id = "K404";
  assert_int_equal(store_reminder_insert(s, &m, T0, NULL), -ENOENT);
  m.contract_id = "K1";
  m.audience = "boss";
  assert_int_equal(store_reminder_insert(s, &m, T0, NULL), -EINVAL);
  m.audience = "customer";

  m.step = 1;
  m.due_at = T0 + DAY; /* not due yet at T0 */
  assert_int_equal(store_reminder_insert(s, &m, T0, &id2), 0);
  struct reminder sms = {.contract_id = "K2",
                         .term = 1,
                         .tier = "T-30",
                         .channel = "sms",
                         .audience = "customer",
                         .due_at = T0 - 5};
  assert_int_equal(store_reminder_insert(s, &sms, T0, &id3), 0);
  struct reminder own = {.contract_id = "K2",
                         .term = 1,
                         .tier = "T-7",
                         .channel = "email",
                         .audience = "owner",
                         .due_at = T0 - 1};
  assert_int_equal(store_reminder_insert(s, &own, T0, &id4), 0);

  /* claim email only: one row due */
  struct rem_list l = {0};
  assert_int_equal(store_reminder_claim(s, "email", T0, 10, collect_rem, &l), 2);
  assert_int_equal(l.n, 2);
  assert_int_equal(l.ids[0], id4); /* due earliest */
  assert_int_equal(l.ids[1], id1);
  assert_int_equal(l.attempts[1], 1);
  /* claimed rows are not claimed again */
  l = (struct rem_list){0};
  assert_int_equal(store_reminder_claim(s, "email", T0, 10, collect_rem, &l), 0);
  /* any channel, max 1 */
  assert_int_equal(store_reminder_claim(s, NULL, T0, 1, collect_rem, &l), 1);
  assert_int_equal(l.ids[0], id3);

  struct reminder g = {0};
  assert_int_equal(store_reminder_get(s, id1, &g), 0);
  assert_int_equal(g.status, REMINDER_SENDING);
  assert_string_equal(g.recipient, "ada@example.com");
  assert_string_equal(g.idem_key, key);
  reminder_clear(&g);

  /* outcomes */
  assert_int_equal(store_reminder_set_status(s, id1, REMINDER_SENT, 0, NULL, "250 ok", T0 + 1), 0);
  assert_int_equal(
      store_reminder_set_status(s, id3, REMINDER_RETRY, T0 + 600, "503 busy", NULL, T0 + 1), 0);
  assert_int_equal(store_reminder_set_status(s, 9999, REMINDER_SENT, 0, NULL, NULL, T0), -ENOENT);
  assert_int_equal(store_reminder_get(s, id3, &g), 0);
  assert_int_equal(g.status, REMINDER_RETRY);
  assert_string_equal(g.last_error, "503 busy");
  assert_int_equal(g.next_attempt_at, T0 + 600);
  assert_int_equal(g.sent_at, 0);
  reminder_clear(&g);
  l = (struct rem_list){0};
  assert_int_equal(store_reminder_claim(s, NULL, T0 + 599, 10, collect_rem, &l), 0);
  assert_int_equal(store_reminder_claim(s, NULL, T0 + 600, 10, collect_rem, &l), 1);
  assert_int_equal(l.ids[0], id3);
  assert_int_equal(l.attempts[0], 2);

  /* crash recovery: id3 and id4 are 'sending' */
  assert_int_equal(store_reminder_recover(s, T0 + 700), 2);
  assert_int_equal(store_reminder_get(s, id4, &g), 0);
  assert_int_equal(g.status, REMINDER_RETRY);
  assert_int_equal(g.next_attempt_at, T0 + 700);
  reminder_clear(&g);
  assert_int_equal(store_reminder_recover(s, T0 + 700), 0);

  /* a callback error stops the walk and comes back; claims stay committed */
  l = (struct rem_list){.stop_after = 1};
  assert_int_equal(store_reminder_claim(s, NULL, T0 + 2 * DAY, 10, collect_rem, &l), -ECANCELED);
  int64_t counts[_REMINDER_STATUS_MAX];
  assert_int_equal(store_reminder_count_by_status(s, counts), 0);
  assert_int_equal(counts[REMINDER_SENDING], 3);
  assert_int_equal(counts[REMINDER_SENT], 1);
  assert_int_equal(counts[REMINDER_PENDING], 0);
  assert_int_equal(store_reminder_recover(s, T0 + 2 * DAY), 3);

  /* cancel: owner rows of K2 only, then the rest */
  assert_int_equal(store_reminder_cancel_contract(s, "K2", -1, "owner", T0 + 3 * DAY), 1);
  assert_int_equal(store_reminder_get(s, id4, &g), 0);
  assert_int_equal(g.status, REMINDER_CANCELLED);
  reminder_clear(&g);
  assert_int_equal(store_reminder_cancel_contract(s, "K2", 2, NULL, T0), 0);
  assert_int_equal(store_reminder_cancel_contract(s, "K2", 1, NULL, T0), 1);
  assert_int_equal(store_reminder_cancel_contract(s, "K1", -1, NULL, T0), 1); /* id2 */

  assert_int_equal(store_reminder_count_by_status(s, counts), 0);
  assert_int_equal(counts[REMINDER_SENT], 1);
  assert_int_equal(counts[REMINDER_CANCELLED], 3);
  assert_int_equal(counts[REMINDER_RETRY], 0);

  l = (struct rem_list){0};
  assert_int_equal(store_reminder_foreach_contract(s, "K1", 1, collect_rem, &l), 2);
  assert_int_equal(l.ids[0], id1);
  assert_int_equal(l.ids[1], id2);
  l = (struct rem_list){0};
  assert_int_equal(store_reminder_foreach_contract(s, "K1", 2, collect_rem, &l), 0);
  assert_int_equal(store_reminder_foreach_status(s, REMINDER_CANCELLED, 2, collect_rem, &l), 2);
  assert_int_equal(l.ids[0], id2);
  assert_int_equal(l.ids[1], id3);
  l = (struct rem_list){0};
  assert_int_equal(store_reminder_foreach_status(s, -1, 0, collect_rem, &l), 4);

  /* a skipped row is recorded with its reason and never claimed */
  struct reminder sk = {.contract_id = "K2",
                        .term = 1,
                        .tier = "T-1",
                        .channel = "sms",
                        .audience = "customer",
                        .due_at = T0,
                        .status = REMINDER_SKIPPED,
                        .last_error = "opted out"};
  assert_int_equal(store_reminder_insert(s, &sk, T0, NULL), 0);
  l = (struct rem_list){0};
  assert_int_equal(store_reminder_claim(s, NULL, TIME_NEVER, 10, collect_rem, &l), 0);
}

struct resp_list {
  char kinds[8][16];
  int32_t terms[8];
  int n;
};

static int collect_resp(const struct response *r, void *ud) {
  struct resp_list *l = ud;
  snprintf(l->kinds[l->n], sizeof l->kinds[0], "%s", r->kind);
  l->terms[l->n++] = r->term;
  return 0;
}

static void test_responses(void **state) {
  struct fixture *f = *state;
  struct store *s = f->s;
  add_customer(s, "C1", "smb");
  add_contract(s, "K1", "C1", T0 + 30 * DAY);

  struct response r = {.contract_id = "K1",
                       .term = 1,
                       .kind = "snooze",
                       .source = "link",
                       .channel = "email",
                       .until_at = T0 + 7 * DAY,
                       .idem_key = "resp-abc"};
  int64_t id;
  assert_int_equal(store_response_insert(s, &r, T0, &id), 0);
  assert_true(id > 0);
  assert_int_equal(store_response_insert(s, &r, T0 + 1, NULL), -EEXIST);
  struct response r2 = {.contract_id = "K1", .term = 1, .kind = "callback", .source = "api"};
  assert_int_equal(store_response_insert(s, &r2, T0 + 2, NULL), 0);
  assert_int_equal(store_response_insert(s, &r2, T0 + 3, NULL), 0); /* no key: no de-dup */
  struct response r3 = {.contract_id = "K1",
                        .term = 2,
                        .kind = "renewed",
                        .source = "renewctl",
                        .new_expires_at = T0 + 400 * DAY};
  assert_int_equal(store_response_insert(s, &r3, T0 + 4, NULL), 0);
  struct response bad = {.contract_id = "K404", .term = 1, .kind = "declined"};
  assert_int_equal(store_response_insert(s, &bad, T0, NULL), -ENXIO);

  struct resp_list l = {0};
  assert_int_equal(store_response_foreach_contract(s, "K1", 1, collect_resp, &l), 3);
  assert_string_equal(l.kinds[0], "snooze");
  assert_string_equal(l.kinds[2], "callback");
  l = (struct resp_list){0};
  assert_int_equal(store_response_foreach_contract(s, "K1", -1, collect_resp, &l), 4);
  assert_string_equal(l.kinds[3], "renewed");
  assert_int_equal(l.terms[3], 2);
}

static void test_meta_ladder_events(void **state) {
  struct fixture *f = *state;
  struct store *s = f->s;
  char *v = NULL;
  assert_int_equal(store_meta_get(s, "fired_until", &v), -ENOENT);
  assert_int_equal(store_meta_set(s, "fired_until", "1790000000"), 0);
  assert_int_equal(store_meta_get(s, "fired_until", &v), 0);
  assert_string_equal(v, "1790000000");
  free(v);
  assert_int_equal(store_meta_set(s, "fired_until", "1790000060"), 0);
  assert_int_equal(store_meta_get(s, "fired_until", &v), 0);
  assert_string_equal(v, "1790000060");
  free(v);
  assert_int_equal(store_meta_set(s, "empty", ""), 0);
  assert_int_equal(store_meta_get(s, "empty", &v), 0);
  assert_string_equal(v, "");
  free(v);
  assert_int_equal(store_meta_set(s, "fired_until", NULL), 0);
  assert_int_equal(store_meta_get(s, "fired_until", &v), -ENOENT);

  int64_t a, b, c;
  assert_int_equal(store_ladder_intern(s, "ladder one", &a), 0);
  assert_int_equal(store_ladder_intern(s, "ladder two", &b), 0);
  assert_int_equal(store_ladder_intern(s, "ladder one", &c), 0);
  assert_int_equal(a, c);
  assert_true(a != b);
  char *text = NULL;
  assert_int_equal(store_ladder_get(s, b, &text), 0);
  assert_string_equal(text, "ladder two");
  free(text);
  assert_int_equal(store_ladder_get(s, 99, &text), -ENOENT);

  assert_int_equal(store_event_append(s, "K1", "note", "called the customer", T0), 0);
  assert_int_equal(store_event_append(s, NULL, "import", "rows=3", T0 + 1), 0);
  assert_int_equal(store_event_append(s, "K1", "note2", NULL, T0 + 2), 0);
  assert_int_equal(store_event_append(s, "K1", "", NULL, T0), -EINVAL);
  struct ev_list ev = {0};
  assert_int_equal(store_event_foreach_contract(s, "K1", collect_event, &ev), 2);
  assert_string_equal(ev.kinds[1], "note2");
  assert_string_equal(ev.details[1], "");
  ev = (struct ev_list){0};
  assert_int_equal(store_event_foreach_contract(s, NULL, collect_event, &ev), 1);
  assert_string_equal(ev.details[0], "rows=3");
}

/* ---- walks ------------------------------------------------------------------------- */

struct walk {
  char ids[16][16];
  char segments[16][16];
  int n;
  int stop_at;
};

static int collect_walk(const struct contract *c, const struct customer *cu, void *ud) {
  struct walk *w = ud;
  if (w->stop_at && w->n == w->stop_at)
    return -EINTR;
  snprintf(w->ids[w->n], sizeof w->ids[0], "%s", c->id);
  snprintf(w->segments[w->n], sizeof w->segments[0], "%s", cu ? cu->segment : "-");
  w->n++;
  return 0;
}

static void test_foreach_filters(void **state) {
  struct fixture *f = *state;
  struct store *s = f->s;
  add_customer(s, "C1", "smb");
  add_customer(s, "C2", "enterprise");
  add_contract(s, "K3", "C1", T0 + 30 * DAY);
  add_contract(s, "K1", "C2", T0 + 10 * DAY);
  add_contract(s, "K2", "C1", T0 + 20 * DAY);
  add_contract(s, "K0", "C2", T0 + 20 * DAY); /* same expiry as K2: id breaks the tie */
  struct contract nc = {.id = "K9", .expires_at = T0 + 5 * DAY};
  assert_int_equal(store_contract_upsert(s, &nc, T0), STORE_INSERTED);
  struct contract c = {0};
  assert_int_equal(store_contract_get(s, "K2", &c), 0);
  c.state = CONTRACT_DECLINED;
  assert_int_equal(store_contract_set_state(s, &c, "contract.declined", "price", T0), 0);
  contract_clear(&c);

  struct walk w = {0};
  assert_int_equal(store_contract_foreach(s, NULL, collect_walk, &w), 5);
  assert_string_equal(w.ids[0], "K9");
  assert_string_equal(w.segments[0], "-");
  assert_string_equal(w.ids[1], "K1");
  assert_string_equal(w.ids[2], "K0");
  assert_string_equal(w.ids[3], "K2");
  assert_string_equal(w.ids[4], "K3");
  assert_string_equal(w.segments[4], "smb");

  struct {
    struct store_contract_filter f;
    const char *want; /* ids joined by ',' */
  } cases[] = {
      {{.state = -1, .segment = "smb"}, "K2,K3"},
      {{.state = CONTRACT_ACTIVE, .segment = "smb"}, "K3"},
      {{.state = CONTRACT_DECLINED}, "K2"},
      {{.state = -1, .expires_from = T0 + 10 * DAY, .expires_until = T0 + 30 * DAY}, "K1,K0,K2"},
      {{.state = -1, .expires_until = T0 + 10 * DAY}, "K9"},
      {{.state = -1, .expires_from = T0 + 20 * DAY}, "K0,K2,K3"},
      {{.state = -1, .customer_id = "C2"}, "K1,K0"},
      {{.state = -1, .customer_id = "C2", .expires_from = T0 + 11 * DAY}, "K0"},
      {{.state = -1, .limit = 2}, "K9,K1"},
      {{.state = CONTRACT_CLOSED}, ""},
  };
  for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
    w = (struct walk){0};
    int n = store_contract_foreach(s, &cases[i].f, collect_walk, &w);
    char got[128] = "";
    for (int j = 0; j < w.n; j++) {
      if (j)
        strcat(got, ",");
      strcat(got, w.ids[j]);
    }
    assert_int_equal(n, w.n);
    if (!streq(got, cases[i].want))
      fail_msg("case %zu: got '%s', want '%s'", i, got, cases[i].want);
  }
  w = (struct walk){.stop_at = 2};
  assert_int_equal(store_contract_foreach(s, NULL, collect_walk, &w), -EINTR);
  struct store_contract_filter bad = {.state = 42};
  assert_int_equal(store_contract_foreach(s, &bad, collect_walk, &w), -EINVAL);

  int64_t n;
  assert_int_equal(store_contract_count(s, -1, &n), 0);
  assert_int_equal(n, 5);
  assert_int_equal(store_contract_count(s, CONTRACT_ACTIVE, &n), 0);
  assert_int_equal(n, 4);
}

/* ---- pure functions ------------------------------------------------------------------ */

static void test_idem_key(void **state) {
  char k[40], k2[40];
  store_idem_key("C-1001", 2, "T-30", 1, "email", "customer", k);
  assert_string_equal(k, "rk-d005ab7cc44bc4911c45ac295cf7bbc0");
  assert_int_equal(strlen(k), 35);
  store_idem_key("C-1001", 2, "T-30", 1, "email", "customer", k2);
  assert_string_equal(k, k2);
  store_idem_key(NULL, 1, NULL, 0, NULL, NULL, k);
  assert_string_equal(k, "rk-9ff1a695f5d4801f1cf367e2516a19c8");
  /* every field matters */
  const char *variants[][6] = {
      {"C-1001", "3", "T-30", "1", "email", "customer"},
      {"C-1001", "2", "T-31", "1", "email", "customer"},
      {"C-1001", "2", "T-30", "2", "email", "customer"},
      {"C-1001", "2", "T-30", "1", "sms", "customer"},
      {"C-1001", "2", "T-30", "1", "email", "owner"},
      {"C-100", "2", "T-30", "1", "email", "customer"},
  };
  store_idem_key("C-1001", 2, "T-30", 1, "email", "customer", k);
  for (size_t i = 0; i < ELEMENTSOF(variants); i++) {
    store_idem_key(variants[i][0], atoi(variants[i][1]), variants[i][2], atoi(variants[i][3]),
                   variants[i][4], variants[i][5], k2);
    assert_string_not_equal(k, k2);
  }
}

static void test_enum_names(void **state) {
  for (int i = 0; i < _CONTRACT_STATE_MAX; i++)
    assert_int_equal(contract_state_from_string(contract_state_to_string(i)), i);
  for (int i = 0; i < _REMINDER_STATUS_MAX; i++)
    assert_int_equal(reminder_status_from_string(reminder_status_to_string(i)), i);
  assert_string_equal(contract_state_to_string(CONTRACT_CALLBACK), "callback");
  assert_string_equal(reminder_status_to_string(REMINDER_CANCELLED), "cancelled");
  assert_null(contract_state_to_string(_CONTRACT_STATE_MAX));
  assert_int_equal(contract_state_from_string("Active"), -EINVAL);
  assert_int_equal(reminder_status_from_string(NULL), -EINVAL);
}

/* security: a new store holds customer data and is not world-readable,
 * whatever SQLite's default mode (0644); its WAL files follow the file. */
static void test_new_file_mode(void **state) {
  struct fixture *f = *state;
  mode_t old = umask(022);
  char err[256];
  assert_int_equal(store_open(f->tmp.path, 0, &f->s, err, sizeof err), 0);
  assert_int_equal(store_meta_set(f->s, "k", "v"), 0); /* a write: -wal exists */
  umask(old);
  const char *suffixes[] = {"", "-wal", "-shm"};
  for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
    char p[160];
    struct stat st;
    snprintf(p, sizeof p, "%s%s", f->tmp.path, suffixes[i]);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
  }
  /* an existing file keeps its mode (the operator's choice) */
  f->s = store_free(f->s);
  assert_int_equal(chmod(f->tmp.path, 0600), 0);
  assert_int_equal(store_open(f->tmp.path, 0, &f->s, err, sizeof err), 0);
  struct stat st;
  assert_int_equal(stat(f->tmp.path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_open_create_reopen, setup, teardown),
      cmocka_unit_test_setup_teardown(test_new_file_mode, setup, teardown),
      cmocka_unit_test_setup_teardown(test_migrate_from_empty, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refuse_foreign_db, setup, teardown),
      cmocka_unit_test_setup_teardown(test_migrate_from_v1, setup, teardown),
      cmocka_unit_test_setup_teardown(test_migrate_atomic, setup, teardown),
      cmocka_unit_test_setup_teardown(test_next_retry_index, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refuse_newer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_readonly, setup, teardown),
      cmocka_unit_test_setup_teardown(test_upsert, setup_open, teardown),
      cmocka_unit_test_setup_teardown(test_new_term, setup_open, teardown),
      cmocka_unit_test_setup_teardown(test_change_seq, setup_open, teardown),
      cmocka_unit_test_setup_teardown(test_reentrant_walk, setup_open, teardown),
      cmocka_unit_test_setup_teardown(test_reminders, setup_open, teardown),
      cmocka_unit_test_setup_teardown(test_responses, setup_open, teardown),
      cmocka_unit_test_setup_teardown(test_meta_ladder_events, setup_open, teardown),
      cmocka_unit_test_setup_teardown(test_foreach_filters, setup_open, teardown),
      cmocka_unit_test(test_idem_key),
      cmocka_unit_test(test_enum_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
