/* store: opening, schema migrations, transactions, the statement cache, error
 * translation, and the small tables (meta, ladders, events).
 *
 * Owns the sqlite3 connection and its cached statements (struct store in
 * store_internal.h). Contracts/customers/owners live in store_contracts.c, the
 * reminder outbox and responses in store_outbox.c. Every call may block on file
 * I/O and, for writes, up to the busy timeout (store_set_busy_timeout(): an
 * event loop's connection sets 0 and gets -EBUSY at once). PASSIVE
 * checkpoints for a checkpoint thread: store_checkpoint().
 *
 * Schema history (PRAGMA user_version), applied forward in one transaction:
 *   1  base tables, indexes and change_seq triggers
 *   2  contracts.next_due_at + partial index; the contract update trigger now
 *      lists content columns so that next_due_at bookkeeping does not bump
 *      change_seq
 *   3  terms: the expiry of every ended term, written by a trigger whenever a
 *      contract's term number goes up (renewal, or an import moving the
 *      expiry), so that reports know what a past term's expiry was
 *   4  api_idempotency (the JSON API's Idempotency-Key results) and an index
 *      on customers(phone) for inbound SMS
 *   5  reminders rebuilt with claims as leases (claim: the fencing token,
 *      claimed_until, claimed_by), the cancel mark of a row answered while in
 *      flight, the reconcile mark (look the last attempt up at the provider
 *      before any resend) and status 'unknown' (an attempt whose outcome is
 *      unknown and that must not be resent blindly)
 *   6  suppressions: addresses (E.164 numbers, lowercased email addresses)
 *      nothing is sent to, with reason and source; the email/SMS opt-out bits
 *      of existing customers are copied in for their current addresses
 *   7  index reminders(status, channel, next_attempt_at): the next retry
 *      instant of one channel
 *   8  reminders.delivery_status, delivery_error, delivery_at: what the
 *      provider reported after accepting the message (Twilio status
 *      callbacks), and an index on reminders(provider_id) to find the row
 * A file with a newer version is refused; read-only opens never migrate.
 *
 * change_seq triggers: our own writes set change_seq = max+1 explicitly (cached
 * in struct store while we hold the write lock). Foreign writers (sqlite3 shell,
 * sync scripts) are caught by triggers: an INSERT with change_seq <= 0, an UPDATE
 * of content columns leaving change_seq as it was, or an UPDATE setting it to
 * <= 0 gets max(change_seq)+1 (and above its own old value), row by row; an
 * UPDATE of a customer sets its contracts' change_seq to 0, which the last
 * trigger turns into fresh values. */
#include "core/store_internal.h"

#include <fcntl.h>
#include <inttypes.h>
#include <unistd.h>

/* ---- schema ------------------------------------------------------------- */

/* CHECKs are OR chains, not IN lists: SQLite builds an ephemeral index for an IN
 * list of more than two constants on every row written (measured: ~40% of an
 * import's CPU time). */
#define STATE_CHECK                                                                                \
  "state = 'active' OR state = 'reminding' OR state = 'renewed' OR state = 'declined' OR "         \
  "state = 'snoozed' OR state = 'callback' OR state = 'lapsed' OR state = 'closed'"
#define STATUS_CHECK                                                                               \
  "status = 'pending' OR status = 'sending' OR status = 'sent' OR status = 'retry' OR "            \
  "status = 'dead' OR status = 'cancelled' OR status = 'skipped'"
#define STATUS_CHECK_V5 STATUS_CHECK " OR status = 'unknown'"
#define NOW_DEFAULT "(CAST(strftime('%s','now') AS INTEGER))"
#define SEQ_BUMP                                                                                   \
  "BEGIN UPDATE contracts SET change_seq = (SELECT max(change_seq) FROM contracts) + 1 "           \
  "WHERE rowid = NEW.rowid; END;\n"

static const char schema_v1[] =
    "CREATE TABLE owners (\n"
    "  id TEXT PRIMARY KEY NOT NULL,\n"
    "  name TEXT, email TEXT, phone TEXT, webhook TEXT, tz TEXT, manager_id TEXT,\n"
    "  created_at INTEGER NOT NULL DEFAULT " NOW_DEFAULT ",\n"
    "  updated_at INTEGER NOT NULL DEFAULT " NOW_DEFAULT ");\n"
    "CREATE TABLE customers (\n"
    "  id TEXT PRIMARY KEY NOT NULL,\n"
    "  name TEXT, email TEXT, phone TEXT, tz TEXT, locale TEXT, segment TEXT,\n"
    "  owner_id TEXT,\n"
    "  optout INTEGER NOT NULL DEFAULT 0 CHECK (optout BETWEEN 0 AND 7),\n"
    "  created_at INTEGER NOT NULL DEFAULT " NOW_DEFAULT ",\n"
    "  updated_at INTEGER NOT NULL DEFAULT " NOW_DEFAULT ");\n"
    "CREATE TABLE ladders (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  text TEXT NOT NULL UNIQUE);\n"
    "CREATE TABLE contracts (\n"
    "  rowid INTEGER PRIMARY KEY,\n"
    "  id TEXT UNIQUE NOT NULL,\n"
    "  customer_id TEXT REFERENCES customers(id),\n"
    "  product TEXT,\n"
    "  starts_at INTEGER NOT NULL DEFAULT 0,\n"
    "  expires_at INTEGER NOT NULL,\n"
    "  value_minor INTEGER NOT NULL DEFAULT 0,\n"
    "  currency TEXT,\n"
    "  term INTEGER NOT NULL DEFAULT 1 CHECK (term >= 1),\n"
    "  state TEXT NOT NULL DEFAULT 'active' CHECK (" STATE_CHECK "),\n"
    "  state_until INTEGER NOT NULL DEFAULT 0,\n"
    "  ladder_id INTEGER REFERENCES ladders(id),\n"
    "  change_seq INTEGER NOT NULL DEFAULT 0,\n"
    "  created_at INTEGER NOT NULL DEFAULT " NOW_DEFAULT ",\n"
    "  updated_at INTEGER NOT NULL DEFAULT " NOW_DEFAULT ");\n"
    "CREATE INDEX contracts_expires ON contracts(expires_at, id);\n"
    "CREATE INDEX contracts_change_seq ON contracts(change_seq);\n"
    "CREATE INDEX contracts_customer ON contracts(customer_id);\n"
    /* the UNIQUE index below also serves lookups by (contract_id, term) */
    "CREATE TABLE reminders (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  contract_rowid INTEGER NOT NULL REFERENCES contracts(rowid),\n"
    "  contract_id TEXT NOT NULL,\n"
    "  term INTEGER NOT NULL,\n"
    "  tier TEXT NOT NULL,\n"
    "  step INTEGER NOT NULL DEFAULT 0,\n"
    "  channel TEXT NOT NULL,\n"
    "  audience TEXT NOT NULL CHECK (audience = 'customer' OR audience = 'owner'),\n"
    "  recipient TEXT,\n"
    "  idem_key TEXT UNIQUE NOT NULL,\n"
    "  due_at INTEGER NOT NULL,\n"
    "  status TEXT NOT NULL DEFAULT 'pending' CHECK (" STATUS_CHECK "),\n"
    "  attempts INTEGER NOT NULL DEFAULT 0,\n"
    "  next_attempt_at INTEGER NOT NULL DEFAULT 0,\n"
    "  last_error TEXT,\n"
    "  provider_id TEXT,\n"
    "  created_at INTEGER NOT NULL DEFAULT " NOW_DEFAULT ",\n"
    "  updated_at INTEGER NOT NULL DEFAULT " NOW_DEFAULT ",\n"
    "  sent_at INTEGER NOT NULL DEFAULT 0,\n"
    "  UNIQUE (contract_id, term, tier, step, channel, audience));\n"
    "CREATE INDEX reminders_due ON reminders(status, next_attempt_at);\n"
    "CREATE INDEX reminders_contract_rowid ON reminders(contract_rowid);\n"
    "CREATE TABLE responses (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  contract_id TEXT NOT NULL REFERENCES contracts(id),\n"
    "  term INTEGER NOT NULL,\n"
    "  kind TEXT NOT NULL,\n"
    "  source TEXT, channel TEXT, reason TEXT,\n"
    "  until_at INTEGER NOT NULL DEFAULT 0,\n"
    "  new_expires_at INTEGER NOT NULL DEFAULT 0,\n"
    "  detail TEXT,\n"
    "  idem_key TEXT UNIQUE,\n"
    "  created_at INTEGER NOT NULL DEFAULT " NOW_DEFAULT ");\n"
    "CREATE INDEX responses_contract ON responses(contract_id);\n"
    "CREATE TABLE events (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  contract_id TEXT,\n"
    "  at INTEGER NOT NULL,\n"
    "  kind TEXT NOT NULL,\n"
    "  detail TEXT);\n"
    "CREATE INDEX events_contract ON events(contract_id);\n"
    "CREATE TABLE meta (\n"
    "  key TEXT PRIMARY KEY NOT NULL,\n"
    "  value TEXT);\n"
    "CREATE TRIGGER contracts_seq_insert AFTER INSERT ON contracts\n"
    "  WHEN NEW.change_seq IS NULL OR NEW.change_seq <= 0\n" SEQ_BUMP
    "CREATE TRIGGER contracts_seq_update AFTER UPDATE ON contracts\n"
    "  WHEN NEW.change_seq IS OLD.change_seq\n" SEQ_BUMP
    /* a non-positive value asks for a fresh one: above the row's own old value
     * too, which the table maximum no longer includes */
    "CREATE TRIGGER contracts_seq_reset AFTER UPDATE OF change_seq ON contracts\n"
    "  WHEN NEW.change_seq <= 0\n"
    "  BEGIN UPDATE contracts SET change_seq =\n"
    "    max((SELECT max(change_seq) FROM contracts), OLD.change_seq) + 1\n"
    "  WHERE rowid = NEW.rowid; END;\n"
    "CREATE TRIGGER customers_seq_update AFTER UPDATE ON customers\n"
    "  BEGIN UPDATE contracts SET change_seq = 0 WHERE customer_id = OLD.id; END;\n";

static const char schema_v2[] =
    "ALTER TABLE contracts ADD COLUMN next_due_at INTEGER NOT NULL DEFAULT 0;\n"
    "CREATE INDEX contracts_next_due ON contracts(next_due_at) WHERE next_due_at > 0;\n"
    "DROP TRIGGER contracts_seq_update;\n"
    "CREATE TRIGGER contracts_seq_update AFTER UPDATE OF id, customer_id, product, starts_at,\n"
    "  expires_at, value_minor, currency, term, state, state_until, ladder_id ON contracts\n"
    "  WHEN NEW.change_seq IS OLD.change_seq\n" SEQ_BUMP;

/* v3: ended terms. Every writer (lifecycle renewals, imports, the sqlite3
 * shell) goes through the trigger; ended_at is the write's updated_at. */
static const char schema_v3[] =
    "CREATE TABLE terms (\n"
    "  contract_id TEXT NOT NULL,\n"
    "  term INTEGER NOT NULL,\n"
    "  expires_at INTEGER NOT NULL,\n"
    "  ended_at INTEGER NOT NULL,\n"
    "  PRIMARY KEY (contract_id, term));\n"
    "CREATE INDEX terms_expires ON terms(expires_at);\n"
    "CREATE TRIGGER contracts_term_history AFTER UPDATE OF term ON contracts\n"
    "  WHEN NEW.term > OLD.term\n"
    "  BEGIN INSERT OR REPLACE INTO terms(contract_id, term, expires_at, ended_at)\n"
    "    VALUES (OLD.id, OLD.term, OLD.expires_at, NEW.updated_at); END;\n";

/* v4 (http helper): the JSON API's Idempotency-Key results (a repeated request
 * gets the first answer back) and the phone lookup of inbound SMS. */
static const char schema_v4[] =
    "CREATE TABLE api_idempotency (\n"
    "  key TEXT PRIMARY KEY NOT NULL,\n"
    "  request_hash TEXT NOT NULL,\n"
    "  status INTEGER NOT NULL,\n"
    "  body TEXT NOT NULL,\n"
    "  created_at INTEGER NOT NULL);\n"
    "CREATE INDEX api_idempotency_created ON api_idempotency(created_at);\n"
    "CREATE INDEX customers_phone ON customers(phone) WHERE phone IS NOT NULL;\n";

/* v5: claims are leases, guarded results, answers that reach rows in flight.
 * SQLite cannot change a CHECK in place: the table is rebuilt (same columns
 * first, so the copy is one INSERT ... SELECT). */
#define REMINDER_V1_COLS                                                                           \
  "id, contract_rowid, contract_id, term, tier, step, channel, audience, recipient, idem_key, "    \
  "due_at, status, attempts, next_attempt_at, last_error, provider_id, created_at, updated_at, "   \
  "sent_at"
static const char schema_v5[] =
    "CREATE TABLE reminders_v5 (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  contract_rowid INTEGER NOT NULL REFERENCES contracts(rowid),\n"
    "  contract_id TEXT NOT NULL,\n"
    "  term INTEGER NOT NULL,\n"
    "  tier TEXT NOT NULL,\n"
    "  step INTEGER NOT NULL DEFAULT 0,\n"
    "  channel TEXT NOT NULL,\n"
    "  audience TEXT NOT NULL CHECK (audience = 'customer' OR audience = 'owner'),\n"
    "  recipient TEXT,\n"
    "  idem_key TEXT UNIQUE NOT NULL,\n"
    "  due_at INTEGER NOT NULL,\n"
    "  status TEXT NOT NULL DEFAULT 'pending' CHECK (" STATUS_CHECK_V5 "),\n"
    "  attempts INTEGER NOT NULL DEFAULT 0,\n"
    "  next_attempt_at INTEGER NOT NULL DEFAULT 0,\n"
    "  last_error TEXT,\n"
    "  provider_id TEXT,\n"
    "  created_at INTEGER NOT NULL DEFAULT " NOW_DEFAULT ",\n"
    "  updated_at INTEGER NOT NULL DEFAULT " NOW_DEFAULT ",\n"
    "  sent_at INTEGER NOT NULL DEFAULT 0,\n"
    "  claim INTEGER NOT NULL DEFAULT 0,\n"
    "  claimed_until INTEGER NOT NULL DEFAULT 0,\n"
    "  claimed_by TEXT,\n"
    "  cancel INTEGER NOT NULL DEFAULT 0 CHECK (cancel = 0 OR cancel = 1),\n"
    "  reconcile INTEGER NOT NULL DEFAULT 0 CHECK (reconcile = 0 OR reconcile = 1),\n"
    "  UNIQUE (contract_id, term, tier, step, channel, audience));\n"
    "INSERT INTO reminders_v5 (" REMINDER_V1_COLS ") SELECT " REMINDER_V1_COLS " FROM reminders;\n"
    "DROP TABLE reminders;\n"
    "ALTER TABLE reminders_v5 RENAME TO reminders;\n"
    "CREATE INDEX reminders_due ON reminders(status, next_attempt_at);\n"
    "CREATE INDEX reminders_contract_rowid ON reminders(contract_rowid);\n";

/* v6: suppressions, one row per (address, kind), consulted before every send
 * to that address whichever customer or owner it belongs to. The opt-out bits
 * customers carry stay honoured; the email and SMS ones are copied in here for
 * the addresses the customers have now (the bits stay, so an older renewd on
 * this file keeps them). The partial index serves the search for customers
 * whose bits a removal clears. */
static const char schema_v6[] =
    "CREATE TABLE suppressions (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  address TEXT NOT NULL,\n"
    "  kind TEXT NOT NULL CHECK (kind = 'email' OR kind = 'sms'),\n"
    "  reason TEXT NOT NULL,\n"
    "  source TEXT,\n"
    "  note TEXT,\n"
    "  created_at INTEGER NOT NULL DEFAULT " NOW_DEFAULT ",\n"
    "  UNIQUE (address, kind));\n"
    "CREATE INDEX customers_optout ON customers(optout) WHERE optout <> 0;\n"
    "INSERT OR IGNORE INTO suppressions(address, kind, reason, source, note, created_at)\n"
    "  SELECT lower(trim(email)), 'email', 'unsubscribe', 'migration',\n"
    "    'opt-out of customer ' || id, updated_at FROM customers\n"
    "  WHERE optout <> 0 AND (optout & 1) <> 0 AND trim(coalesce(email, '')) <> ''\n"
    "  ORDER BY updated_at, id;\n"
    "INSERT OR IGNORE INTO suppressions(address, kind, reason, source, note, created_at)\n"
    "  SELECT phone, 'sms', 'stop', 'migration', 'opt-out of customer ' || id, updated_at\n"
    "  FROM customers WHERE optout <> 0 AND (optout & 2) <> 0 AND coalesce(phone, '') <> ''\n"
    "  ORDER BY updated_at, id;\n";

/* v7: the dispatcher's next retry instant per channel is one index read
 * (STMT_REMINDER_NEXT_RETRY), however many retry rows other channels have. */
static const char schema_v7[] =
    "CREATE INDEX reminders_retry_channel ON reminders(status, channel, next_attempt_at);\n";

/* v8: provider delivery receipts (store_reminder_set_delivery()); NULL
 * delivery_status = nothing reported. The partial index finds the row a
 * callback names by its provider id. */
static const char schema_v8[] =
    "ALTER TABLE reminders ADD COLUMN delivery_status TEXT;\n"
    "ALTER TABLE reminders ADD COLUMN delivery_error TEXT;\n"
    "ALTER TABLE reminders ADD COLUMN delivery_at INTEGER;\n"
    "CREATE INDEX reminders_provider_id ON reminders(provider_id) WHERE provider_id IS NOT NULL;\n";

/* migrations[i] upgrades version i to i+1 */
static const char *const migrations[] = {schema_v1, schema_v2, schema_v3, schema_v4,
                                         schema_v5, schema_v6, schema_v7, schema_v8};
_Static_assert(ELEMENTSOF(migrations) == STORE_SCHEMA_VERSION, "one migration per version");

/* ---- statements --------------------------------------------------------- */

#define REMINDER_COLS STORE_REMINDER_COLS
#define DELIVERY_RANK(x)                                                                           \
  "(CASE " x " WHEN 'queued' THEN 1 WHEN 'sent' THEN 2 WHEN 'delivered' THEN 3 "                   \
  "WHEN 'undelivered' THEN 3 WHEN 'failed' THEN 3 ELSE 0 END)"
#define CONTRACT_SELECT "SELECT " STORE_CONTRACT_COLS " FROM contracts c "
#define CONTRACT_JOIN                                                                              \
  "SELECT " STORE_CONTRACT_COLS ", " STORE_CUSTOMER_COLS                                           \
  " FROM contracts c LEFT JOIN customers cu ON cu.id = c.customer_id "                             \
  "WHERE c.expires_at >= ?1 AND c.expires_at < ?2 AND (?3 IS NULL OR c.state = ?3) "               \
  "AND (?4 IS NULL OR cu.segment = ?4) "

const char *const store_stmt_sql[_STMT_MAX] = {
    [STMT_BEGIN] = "BEGIN IMMEDIATE",
    [STMT_COMMIT] = "COMMIT",
    [STMT_ROLLBACK] = "ROLLBACK",
    [STMT_SAVEPOINT] = "SAVEPOINT store_op",
    [STMT_RELEASE] = "RELEASE store_op",
    [STMT_ROLLBACK_TO] = "ROLLBACK TO store_op",
    [STMT_DATA_VERSION] = "PRAGMA data_version",
    [STMT_MAX_SEQ] = "SELECT coalesce(max(change_seq), 0) FROM contracts",
    [STMT_MAX_ROWID] = "SELECT coalesce(max(rowid), 0) FROM contracts",

    [STMT_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [STMT_META_SET] = "INSERT INTO meta(key, value) VALUES (?1, ?2) "
                      "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [STMT_META_DEL] = "DELETE FROM meta WHERE key = ?1",
    [STMT_LADDER_FIND] = "SELECT id FROM ladders WHERE text = ?1",
    [STMT_LADDER_INSERT] = "INSERT INTO ladders(text) VALUES (?1)",
    [STMT_LADDER_GET] = "SELECT text FROM ladders WHERE id = ?1",
    [STMT_EVENT_INSERT] =
        "INSERT INTO events(contract_id, at, kind, detail) VALUES (?1, ?2, ?3, ?4)",
    [STMT_EVENT_FOREACH] = "SELECT id, contract_id, at, kind, detail FROM events "
                           "WHERE contract_id IS ?1 ORDER BY id",

    [STMT_OWNER_GET] = "SELECT id, name, email, phone, webhook, tz, manager_id FROM owners "
                       "WHERE id = ?1",
    [STMT_OWNER_LIST] =
        "SELECT id, name, email, phone, webhook, tz, manager_id FROM owners ORDER BY id",
    [STMT_OWNER_INSERT] = "INSERT INTO owners(id, name, email, phone, webhook, tz, manager_id, "
                          "created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
    [STMT_OWNER_UPDATE] = "UPDATE owners SET name = ?2, email = ?3, phone = ?4, webhook = ?5, "
                          "tz = ?6, manager_id = ?7, updated_at = ?8 WHERE id = ?1",
    [STMT_CUSTOMER_GET] = "SELECT " STORE_CUSTOMER_COLS " FROM customers cu WHERE cu.id = ?1",
    [STMT_CUSTOMER_INSERT] =
        "INSERT INTO customers(id, name, email, phone, tz, locale, segment, owner_id, optout, "
        "created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10) "
        "ON CONFLICT(id) DO NOTHING",
    [STMT_CUSTOMER_UPDATE] = "UPDATE customers SET name = ?2, email = ?3, phone = ?4, tz = ?5, "
                             "locale = ?6, segment = ?7, owner_id = ?8, optout = ?9, "
                             "updated_at = ?10 WHERE id = ?1",
    [STMT_CUSTOMER_SET_OPTOUT] = "UPDATE customers SET optout = ?2, updated_at = ?3 WHERE id = ?1",
    [STMT_CONTRACT_GET] = CONTRACT_SELECT "WHERE c.id = ?1",
    [STMT_CONTRACT_GET_ROWID] = CONTRACT_SELECT "WHERE c.rowid = ?1",
    [STMT_CONTRACT_INSERT] =
        "INSERT INTO contracts(id, customer_id, product, starts_at, expires_at, value_minor, "
        "currency, change_seq, created_at, updated_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9) ON CONFLICT(id) DO NOTHING",
    [STMT_CONTRACT_UPDATE] =
        "UPDATE contracts SET customer_id = ?2, product = ?3, starts_at = ?4, expires_at = ?5, "
        "value_minor = ?6, currency = ?7, term = ?8, state = ?9, state_until = ?10, "
        "ladder_id = ?11, next_due_at = ?12, change_seq = ?13, updated_at = ?14 WHERE rowid = ?1",
    [STMT_CONTRACT_SET_STATE] =
        "UPDATE contracts SET state = ?2, state_until = ?3, term = ?4, expires_at = ?5, "
        "ladder_id = ?6, change_seq = ?7, updated_at = ?8 WHERE rowid = ?1 RETURNING id",
    [STMT_CONTRACT_SET_NEXT_DUE] = "UPDATE contracts SET next_due_at = ?2 WHERE rowid = ?1",
    [STMT_CONTRACT_FOREACH] = CONTRACT_JOIN "ORDER BY c.expires_at, c.id LIMIT ?5",
    [STMT_CONTRACT_FOREACH_CUSTOMER] =
        CONTRACT_JOIN "AND c.customer_id = ?6 ORDER BY c.expires_at, c.id LIMIT ?5",
    [STMT_CONTRACT_FOREACH_CHANGED] =
        CONTRACT_SELECT "WHERE c.change_seq > ?1 ORDER BY c.change_seq, c.rowid LIMIT ?2",
    [STMT_CONTRACT_FOREACH_DUE] = CONTRACT_SELECT "WHERE c.next_due_at > 0 AND c.next_due_at < ?1 "
                                                  "ORDER BY c.next_due_at, c.rowid LIMIT ?2",
    [STMT_CONTRACT_COUNT] = "SELECT count(*) FROM contracts WHERE ?1 IS NULL OR state = ?1",
    /* paged scans: keyset conditions a range on the index can serve */
    [STMT_CONTRACT_FOREACH_AFTER] =
        CONTRACT_JOIN "AND (c.expires_at > ?1 OR c.id > ?6) ORDER BY c.expires_at, c.id LIMIT ?5",
    [STMT_CONTRACT_CHANGED_PAGE] =
        CONTRACT_SELECT "WHERE c.change_seq >= ?1 AND (c.change_seq > ?1 OR c.rowid > ?2) "
                        "ORDER BY c.change_seq, c.rowid LIMIT ?3",
    [STMT_CONTRACT_DUE_PAGE] = CONTRACT_SELECT
    "WHERE c.next_due_at > 0 AND c.next_due_at >= ?1 AND c.next_due_at < ?3 "
    "AND (c.next_due_at > ?1 OR c.rowid > ?2) ORDER BY c.next_due_at, c.rowid LIMIT ?4",
    [STMT_COUNT_PAGE_REMINDERS] =
        "SELECT channel, tier, audience, status, count(*), max(id) FROM (SELECT id, channel, "
        "tier, audience, status FROM reminders WHERE id > ?1 ORDER BY id LIMIT ?2) "
        "GROUP BY channel, tier, audience, status",
    [STMT_COUNT_PAGE_RESPONSES] =
        "SELECT kind, coalesce(source, ''), count(*), max(id) FROM (SELECT id, kind, source "
        "FROM responses WHERE id > ?1 ORDER BY id LIMIT ?2) GROUP BY 1, 2",
    [STMT_COUNT_PAGE_CONTRACTS] =
        "SELECT state, count(*), max(rid) FROM (SELECT rowid AS rid, state FROM contracts "
        "WHERE rowid > ?1 ORDER BY rowid LIMIT ?2) GROUP BY state",
    [STMT_REMINDER_NEXT_RETRY] = "SELECT next_attempt_at FROM reminders WHERE status = 'retry' "
                                 "AND channel = ?1 ORDER BY next_attempt_at LIMIT 1",

    [STMT_REMINDER_INSERT] =
        "INSERT INTO reminders(contract_rowid, contract_id, term, tier, step, channel, audience, "
        "recipient, idem_key, due_at, status, attempts, next_attempt_at, last_error, provider_id, "
        "created_at, updated_at, sent_at) "
        "SELECT c.rowid, c.id, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, "
        "?16 FROM contracts c WHERE c.id = ?1 RETURNING id, contract_rowid",
    [STMT_REMINDER_GET] = "SELECT " REMINDER_COLS " FROM reminders WHERE id = ?1",
    [STMT_REMINDER_FOREACH_CONTRACT] = "SELECT " REMINDER_COLS " FROM reminders "
                                       "WHERE contract_id = ?1 AND (?2 < 0 OR term = ?2) "
                                       "ORDER BY term, due_at, id",
    [STMT_REMINDER_FOREACH_STATUS] = "SELECT " REMINDER_COLS " FROM reminders "
                                     "WHERE ?1 IS NULL OR status = ?1 ORDER BY id LIMIT ?2",
    [STMT_REMINDER_CLAIM] =
        "UPDATE reminders SET status = 'sending', attempts = attempts + 1, claim = claim + 1, "
        "claimed_until = ?4, claimed_by = ?5, cancel = 0, updated_at = ?1 "
        "WHERE id IN (SELECT id FROM reminders WHERE status IN ('pending','retry') "
        "AND next_attempt_at <= ?1 AND (?2 IS NULL OR channel = ?2) "
        "ORDER BY next_attempt_at, id LIMIT ?3) RETURNING " REMINDER_COLS,
    [STMT_REMINDER_SET_STATUS] =
        "UPDATE reminders SET status = ?2, next_attempt_at = ?3, last_error = ?4, "
        "provider_id = coalesce(?5, provider_id), updated_at = ?6, claimed_until = 0, "
        "reconcile = 0, sent_at = CASE WHEN ?2 = 'sent' THEN ?6 ELSE sent_at END WHERE id = ?1",
    /* a receipt of lower rank than the one recorded changes nothing:
     * queued 1 < sent 2 < delivered/undelivered/failed 3 */
    [STMT_REMINDER_SET_DELIVERY] =
        "UPDATE reminders SET delivery_status = ?2, delivery_error = ?3, delivery_at = ?4 "
        "WHERE provider_id = ?1 AND " DELIVERY_RANK("?2") " >= " DELIVERY_RANK(
            "coalesce(delivery_status, '')") " RETURNING id",
    [STMT_REMINDER_FIND_PROVIDER] = "SELECT id FROM reminders WHERE provider_id = ?1 LIMIT 1",
    [STMT_REMINDER_SET_STATUS_IF] =
        "UPDATE reminders SET status = ?2, next_attempt_at = ?3, last_error = ?4, "
        "provider_id = coalesce(?5, provider_id), updated_at = ?6, claimed_until = 0, "
        "reconcile = 0, sent_at = CASE WHEN ?2 = 'sent' THEN ?6 ELSE sent_at END "
        "WHERE id = ?1 AND status = ?7 RETURNING status",
    /* a cancel-marked row ends cancelled whatever the attempt asked for */
    [STMT_REMINDER_FINISH] =
        "UPDATE reminders SET status = CASE WHEN cancel THEN 'cancelled' ELSE ?3 END, "
        "next_attempt_at = CASE WHEN cancel THEN 0 ELSE ?4 END, "
        "last_error = CASE WHEN cancel THEN 'cancelled by an answer while in flight; the attempt: "
        "' "
        "|| CASE WHEN ?3 = 'sent' THEN 'delivered' ELSE coalesce(?5, ?3) END ELSE ?5 END, "
        "provider_id = coalesce(?6, provider_id), updated_at = ?7, claimed_until = 0, "
        "reconcile = 0, sent_at = CASE WHEN ?3 = 'sent' THEN ?7 ELSE sent_at END "
        "WHERE id = ?1 AND status = 'sending' AND claim = ?2 RETURNING status",
    /* the outcome is unknown: due again, but as a lookup at the provider */
    [STMT_REMINDER_RECONCILE] =
        "UPDATE reminders SET status = CASE WHEN cancel THEN 'cancelled' ELSE 'retry' END, "
        "reconcile = CASE WHEN cancel THEN 0 ELSE 1 END, "
        "next_attempt_at = CASE WHEN cancel THEN 0 ELSE ?3 END, "
        "last_error = CASE WHEN cancel THEN 'cancelled by an answer while in flight; the attempt: "
        "outcome unknown (' || coalesce(?4, '') || ')' ELSE ?4 END, "
        "claimed_until = 0, updated_at = ?5 "
        "WHERE id = ?1 AND status = 'sending' AND claim = ?2 RETURNING status",
    [STMT_REMINDER_RENEW] = "UPDATE reminders SET claimed_until = ?3, updated_at = ?4 "
                            "WHERE id = ?1 AND status = 'sending' AND claim = ?2",
    [STMT_REMINDER_EXPIRED] = "SELECT " REMINDER_COLS " FROM reminders WHERE status = 'sending' "
                              "AND claimed_until < ?1 ORDER BY claimed_until, id LIMIT ?2",
    [STMT_REMINDER_RECOVER_ROW] =
        "UPDATE reminders SET status = CASE WHEN cancel THEN 'cancelled' ELSE ?3 END, "
        "next_attempt_at = CASE WHEN cancel THEN 0 ELSE ?4 END, "
        "last_error = CASE WHEN cancel THEN 'cancelled by an answer while in flight; the attempt: "
        "outcome unknown (' || coalesce(?5, '') || ')' ELSE ?5 END, "
        "claimed_until = 0, updated_at = ?6 "
        "WHERE id = ?1 AND status = 'sending' AND claim = ?2",
    [STMT_REMINDER_RECOVER] =
        "UPDATE reminders SET status = CASE WHEN cancel THEN 'cancelled' ELSE 'retry' END, "
        "next_attempt_at = ?1, claimed_until = 0, updated_at = ?1 WHERE status = 'sending'",
    /* pending/retry rows end at once; a row in flight is marked and ends when
     * its result is recorded */
    [STMT_REMINDER_CANCEL] =
        "UPDATE reminders SET status = CASE WHEN status = 'sending' THEN status ELSE 'cancelled' "
        "END, cancel = CASE WHEN status = 'sending' THEN 1 ELSE cancel END, updated_at = ?4 "
        "WHERE contract_id = ?1 AND (?2 < 0 OR term = ?2) AND (?3 IS NULL OR audience = ?3) "
        "AND (status = 'pending' OR status = 'retry' OR (status = 'sending' AND cancel = 0))",
    [STMT_REMINDER_CANCEL_OLD_TERMS] =
        "UPDATE reminders SET status = CASE WHEN status = 'sending' THEN status ELSE 'cancelled' "
        "END, cancel = CASE WHEN status = 'sending' THEN 1 ELSE cancel END, updated_at = ?3 "
        "WHERE contract_id = ?1 AND term < ?2 "
        "AND (status = 'pending' OR status = 'retry' OR (status = 'sending' AND cancel = 0))",
    [STMT_REMINDER_COUNT] = "SELECT status, count(*) FROM reminders GROUP BY status",
    [STMT_RESPONSE_INSERT] =
        "INSERT INTO responses(contract_id, term, kind, source, channel, reason, detail, "
        "idem_key, until_at, new_expires_at, created_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    /* http helper: inbound SMS, API idempotency, metrics */
    [STMT_CUSTOMER_FIND_PHONE] = "SELECT " STORE_CUSTOMER_COLS " FROM customers cu "
                                 "WHERE cu.phone = ?1 ORDER BY cu.updated_at DESC, cu.id LIMIT 1",
    [STMT_API_IDEM_GET] = "SELECT request_hash, status, body FROM api_idempotency WHERE key = ?1",
    [STMT_API_IDEM_PUT] =
        "INSERT INTO api_idempotency(key, request_hash, status, body, created_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5)",
    [STMT_API_IDEM_PRUNE] = "DELETE FROM api_idempotency WHERE created_at < ?1",
    [STMT_COUNT_REMINDERS] = "SELECT channel, tier, audience, status, count(*) FROM reminders "
                             "GROUP BY channel, tier, audience, status",
    [STMT_COUNT_RESPONSES] = "SELECT kind, coalesce(source, ''), count(*) FROM responses "
                             "GROUP BY kind, source",
    [STMT_COUNT_CONTRACTS] = "SELECT state, count(*) FROM contracts GROUP BY state",
    [STMT_RESPONSE_FOREACH] = "SELECT " STORE_RESPONSE_COLS " FROM responses "
                              "WHERE contract_id = ?1 AND (?2 < 0 OR term = ?2) "
                              "ORDER BY created_at, id",
    /* suppressions (store_suppress.c) */
    [STMT_SUPPRESS_ADD] =
        "INSERT INTO suppressions(address, kind, reason, source, note, created_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(address, kind) DO NOTHING",
    [STMT_SUPPRESS_GET] = "SELECT " STORE_SUPPRESSION_COLS " FROM suppressions "
                          "WHERE address = ?1 AND kind = ?2",
    [STMT_SUPPRESS_DEL] = "DELETE FROM suppressions WHERE address = ?1 AND kind = ?2 "
                          "AND (?3 = 0 OR reason = 'stop' OR reason = 'unsubscribe') "
                          "RETURNING reason",
    [STMT_SUPPRESS_LIST] = "SELECT " STORE_SUPPRESSION_COLS " FROM suppressions "
                           "WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR address = ?2) "
                           "AND (?3 IS NULL OR reason = ?3) AND id > ?4 ORDER BY id LIMIT ?5",
    [STMT_SUPPRESS_CLEAR_EMAIL] =
        "UPDATE customers SET optout = optout & ~1, updated_at = ?2 "
        "WHERE optout <> 0 AND (optout & 1) <> 0 AND lower(trim(email)) = ?1 RETURNING id",
    [STMT_SUPPRESS_CLEAR_SMS] = "UPDATE customers SET optout = optout & ~2, updated_at = ?2 "
                                "WHERE phone = ?1 AND (optout & 2) <> 0 RETURNING id",
};

/* ---- enums --------------------------------------------------------------- */

static const char *const contract_state_names[_CONTRACT_STATE_MAX] = {
    [CONTRACT_ACTIVE] = "active",   [CONTRACT_REMINDING] = "reminding",
    [CONTRACT_RENEWED] = "renewed", [CONTRACT_DECLINED] = "declined",
    [CONTRACT_SNOOZED] = "snoozed", [CONTRACT_CALLBACK] = "callback",
    [CONTRACT_LAPSED] = "lapsed",   [CONTRACT_CLOSED] = "closed",
};

static const char *const reminder_status_names[_REMINDER_STATUS_MAX] = {
    [REMINDER_PENDING] = "pending", [REMINDER_SENDING] = "sending",
    [REMINDER_SENT] = "sent",       [REMINDER_RETRY] = "retry",
    [REMINDER_DEAD] = "dead",       [REMINDER_CANCELLED] = "cancelled",
    [REMINDER_SKIPPED] = "skipped", [REMINDER_UNKNOWN] = "unknown",
};

const char *contract_state_to_string(enum contract_state s) {
  if ((unsigned)s >= _CONTRACT_STATE_MAX)
    return NULL;
  return contract_state_names[s];
}

int contract_state_from_string(const char *s) {
  if (!s)
    return -EINVAL;
  for (int i = 0; i < _CONTRACT_STATE_MAX; i++)
    if (streq(contract_state_names[i], s))
      return i;
  return -EINVAL;
}

const char *reminder_status_to_string(enum reminder_status s) {
  if ((unsigned)s >= _REMINDER_STATUS_MAX)
    return NULL;
  return reminder_status_names[s];
}

int reminder_status_from_string(const char *s) {
  if (!s)
    return -EINVAL;
  for (int i = 0; i < _REMINDER_STATUS_MAX; i++)
    if (streq(reminder_status_names[i], s))
      return i;
  return -EINVAL;
}

/* ---- errors, statements, columns ----------------------------------------- */

static int errno_from_rc(sqlite3 *db, int rc) {
  switch (rc & 0xff) {
  case SQLITE_OK:
  case SQLITE_ROW:
  case SQLITE_DONE:
    return 0;
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return -EBUSY;
  case SQLITE_READONLY:
  case SQLITE_PERM:
  case SQLITE_AUTH:
    return -EACCES;
  case SQLITE_CANTOPEN: {
    int e = db ? sqlite3_system_errno(db) : 0;
    return (e == EACCES || e == EPERM || e == EROFS) ? -EACCES : -ENOENT;
  }
  case SQLITE_NOTADB:
  case SQLITE_CORRUPT:
    return -EBADMSG;
  case SQLITE_CONSTRAINT:
    /* a reference to a missing parent (customer, contract) is not a duplicate */
    return rc == SQLITE_CONSTRAINT_FOREIGNKEY ? -ENXIO : -EEXIST;
  case SQLITE_FULL:
    return -ENOSPC;
  case SQLITE_NOMEM:
    return -ENOMEM;
  default:
    return -EIO;
  }
}

int store_error(struct store *s, int rc) {
  if (s->db)
    snprintf(s->errmsg, sizeof s->errmsg, "%s", sqlite3_errmsg(s->db));
  else
    snprintf(s->errmsg, sizeof s->errmsg, "%s", sqlite3_errstr(rc));
  return errno_from_rc(s->db, rc);
}

int stmt_acquire(struct store *s, enum store_stmt id, struct stmt_ref *ret) {
  sqlite3_stmt **slot = &s->stmts[id];
  if (*slot && !sqlite3_stmt_busy(*slot)) {
    *ret = (struct stmt_ref){.st = *slot, .owned = false, .s = s};
    return 0;
  }
  /* first use: cache it; in use further up the stack: a private copy */
  bool cache = !*slot;
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v3(s->db, store_stmt_sql[id], -1, cache ? SQLITE_PREPARE_PERSISTENT : 0,
                              &st, NULL);
  if (rc != SQLITE_OK)
    return store_error(s, rc);
  if (cache)
    *slot = st;
  *ret = (struct stmt_ref){.st = st, .owned = !cache, .s = s};
  return 0;
}

void stmt_release(struct stmt_ref *ref) {
  if (!ref->st)
    return;
  if (ref->owned)
    sqlite3_finalize(ref->st);
  else
    sqlite3_reset(ref->st);
  ref->st = NULL;
}

int stmt_step(struct stmt_ref *ref) {
  int rc = sqlite3_step(ref->st);
  if (rc == SQLITE_ROW)
    return 1;
  if (rc == SQLITE_DONE)
    return 0;
  return store_error(ref->s, rc);
}

int stmt_exec(struct stmt_ref *ref) {
  int r;
  while ((r = stmt_step(ref)) > 0)
    ;
  return r;
}

int bind_text(struct stmt_ref *ref, int i, const char *v) {
  int rc = isempty(v) ? sqlite3_bind_null(ref->st, i)
                      : sqlite3_bind_text(ref->st, i, v, -1, SQLITE_STATIC);
  return rc == SQLITE_OK ? 0 : store_error(ref->s, rc);
}

int bind_int64(struct stmt_ref *ref, int i, int64_t v) {
  int rc = sqlite3_bind_int64(ref->st, i, v);
  return rc == SQLITE_OK ? 0 : store_error(ref->s, rc);
}

int bind_id(struct stmt_ref *ref, int i, int64_t v) {
  return v == 0 ? bind_null(ref, i) : bind_int64(ref, i, v);
}

int bind_null(struct stmt_ref *ref, int i) {
  int rc = sqlite3_bind_null(ref->st, i);
  return rc == SQLITE_OK ? 0 : store_error(ref->s, rc);
}

int col_text(sqlite3_stmt *st, int i, bool copy, char **ret) {
  const char *v = (const char *)sqlite3_column_text(st, i);
  if (!v) {
    *ret = NULL;
    return 0;
  }
  if (!copy) {
    *ret = (char *)v;
    return 0;
  }
  char *d = strdup(v);
  if (!d)
    return -ENOMEM;
  *ret = d;
  return 0;
}

/* ---- transactions -------------------------------------------------------- */

static int exec_stmt(struct store *s, enum store_stmt id) {
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r = stmt_acquire(s, id, &q);
  if (r < 0)
    return r;
  return stmt_exec(&q);
}

int txn_enter(struct store *s, bool *ret_own) {
  bool own = sqlite3_get_autocommit(s->db);
  int r = exec_stmt(s, own ? STMT_BEGIN : STMT_SAVEPOINT);
  if (r < 0)
    return r;
  if (own)
    s->seq_valid = false;
  *ret_own = own;
  return 0;
}

int txn_leave(struct store *s, bool own, int r) {
  if (r >= 0) {
    int k = exec_stmt(s, own ? STMT_COMMIT : STMT_RELEASE);
    if (k >= 0) {
      if (own)
        s->seq_valid = false;
      return r;
    }
    r = k;
  }
  /* keep the first error's message */
  char msg[sizeof s->errmsg];
  memcpy(msg, s->errmsg, sizeof msg);
  if (own) {
    if (!sqlite3_get_autocommit(s->db))
      (void)exec_stmt(s, STMT_ROLLBACK);
    s->seq_valid = false;
  } else {
    (void)exec_stmt(s, STMT_ROLLBACK_TO);
    (void)exec_stmt(s, STMT_RELEASE);
  }
  memcpy(s->errmsg, msg, sizeof msg);
  return r;
}

int seq_refresh(struct store *s) {
  if (s->seq_valid)
    return 0;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r = stmt_acquire(s, STMT_MAX_SEQ, &q);
  if (r < 0)
    return r;
  r = stmt_step(&q);
  if (r < 0)
    return r;
  s->max_seq = r > 0 ? sqlite3_column_int64(q.st, 0) : 0;
  s->seq_valid = true;
  return 0;
}

int store_begin(struct store *s) {
  if (!s)
    return -EINVAL;
  if (!sqlite3_get_autocommit(s->db))
    return -EBUSY;
  s->seq_valid = false;
  return exec_stmt(s, STMT_BEGIN);
}

int store_commit(struct store *s) {
  if (!s)
    return -EINVAL;
  if (s->bulk) /* recreate what store_bulk_begin() dropped, then commit */
    return store_bulk_commit(s);
  s->seq_valid = false;
  return exec_stmt(s, STMT_COMMIT);
}

int store_rollback(struct store *s) {
  if (!s)
    return -EINVAL;
  s->seq_valid = false;
  int r = sqlite3_get_autocommit(s->db) ? 0 : exec_stmt(s, STMT_ROLLBACK);
  bulk_reset(s); /* the rollback restored what a bulk load dropped */
  return r;
}

int store_data_version(struct store *s, int64_t *ret) {
  if (!s || !ret)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r = stmt_acquire(s, STMT_DATA_VERSION, &q);
  if (r < 0)
    return r;
  r = stmt_step(&q);
  if (r < 0)
    return r;
  if (r == 0)
    return -EIO;
  *ret = sqlite3_column_int64(q.st, 0);
  return 0;
}

const char *store_last_error(struct store *s) {
  return s ? s->errmsg : "";
}

const char *store_path(const struct store *s) {
  return s ? s->path : "";
}

/* ---- an event loop's connection -------------------------------------------- */

int store_set_busy_timeout(struct store *s, int ms) {
  if (!s || ms < 0)
    return -EINVAL;
  int rc = sqlite3_busy_timeout(s->db, ms);
  return rc == SQLITE_OK ? 0 : store_error(s, rc);
}

int store_set_autocheckpoint(struct store *s, int pages) {
  if (!s || pages < 0)
    return -EINVAL;
  int rc = sqlite3_wal_autocheckpoint(s->db, pages);
  return rc == SQLITE_OK ? 0 : store_error(s, rc);
}

int store_checkpoint(struct store *s, int *ret_wal_pages, int *ret_copied) {
  if (!s)
    return -EINVAL;
  if (!sqlite3_get_autocommit(s->db))
    return -EBUSY;
  int nlog = 0, nckpt = 0;
  int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog, &nckpt);
  if (rc != SQLITE_OK)
    return store_error(s, rc);
  if (ret_wal_pages)
    *ret_wal_pages = nlog;
  if (ret_copied)
    *ret_copied = nckpt;
  return 0;
}

/* ---- open, migrate, free -------------------------------------------------- */

struct store *store_free(struct store *s) {
  if (!s)
    return NULL;
  if (s->db)
    bulk_reset(s); /* its statements, while the connection is open */
  for (size_t i = 0; i < _STMT_MAX; i++)
    sqlite3_finalize(s->stmts[i]);
  if (s->db) {
    if (!sqlite3_get_autocommit(s->db))
      sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close_v2(s->db);
  }
  buf_free(&s->bulk_redo);
  free(s->path);
  free(s);
  return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct store *, store_free);

static int query_int(struct store *s, const char *sql, int64_t *ret) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      *ret = sqlite3_column_int64(st, 0);
      rc = SQLITE_OK;
    }
  }
  int r = rc == SQLITE_OK ? 0 : store_error(s, rc);
  sqlite3_finalize(st);
  return r;
}

static int exec_sql(struct store *s, const char *sql) {
  int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : store_error(s, rc);
}

/* Runs the migrations from the file's version to STORE_SCHEMA_VERSION in one
 * transaction. The version is re-read under the write lock: another process may
 * have migrated meanwhile. */
static int migrate(struct store *s, char *err, size_t errlen) {
  int r = exec_sql(s, "BEGIN IMMEDIATE");
  if (r < 0)
    goto fail;
  int64_t version = 0, tables = 0;
  r = query_int(s, "PRAGMA user_version", &version);
  if (r < 0)
    goto rollback;
  if (version > STORE_SCHEMA_VERSION) {
    snprintf(err, errlen,
             "%s: store schema version %" PRId64
             " is newer than this renewd supports (%d); upgrade renewd",
             s->path, version, STORE_SCHEMA_VERSION);
    r = -EPROTO;
    goto rollback_quiet;
  }
  if (version == 0) {
    r = query_int(s, "SELECT count(*) FROM sqlite_master", &tables);
    if (r < 0)
      goto rollback;
    if (tables > 0) {
      snprintf(err, errlen,
               "%s: not a renewd store (schema version 0 but the file already has tables)",
               s->path);
      r = -EPROTO;
      goto rollback_quiet;
    }
  }
  for (int64_t v = version; v < STORE_SCHEMA_VERSION; v++) {
    r = exec_sql(s, migrations[v]);
    if (r < 0)
      goto rollback;
  }
  if (version < STORE_SCHEMA_VERSION) {
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", STORE_SCHEMA_VERSION);
    r = exec_sql(s, sql);
    if (r < 0)
      goto rollback;
  }
  r = exec_sql(s, "COMMIT");
  if (r < 0)
    goto rollback;
  return 0;

rollback:
  snprintf(err, errlen, "%s: cannot migrate store schema: %s", s->path, s->errmsg);
rollback_quiet:
  sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
  return r;
fail:
  snprintf(err, errlen, "%s: cannot lock store for schema check: %s", s->path, s->errmsg);
  return r;
}

int store_open(const char *path, unsigned flags, struct store **ret, char *err, size_t errlen) {
  char dummy[1];
  if (!err || errlen == 0) {
    err = dummy;
    errlen = sizeof dummy;
  }
  err[0] = 0;
  if (isempty(path) || !ret || (flags & ~(unsigned)(STORE_READONLY | STORE_NO_CREATE))) {
    snprintf(err, errlen, "invalid arguments to store_open");
    return -EINVAL;
  }

  _cleanup_(store_freep) struct store *s = calloc(1, sizeof *s);
  if (!s)
    return -ENOMEM;
  s->path = strdup(path);
  if (!s->path)
    return -ENOMEM;
  s->flags = flags;

  bool ro = flags & STORE_READONLY;
  if (!ro && !(flags & STORE_NO_CREATE) && !streq(path, ":memory:")) {
    /* The store holds customer data: a new file is 0640 (minus the umask),
     * not SQLite's 0644; its -wal and -shm files take the same mode. An
     * empty file is a valid new database. Errors (it exists, no access) are
     * left to sqlite3_open_v2() to report. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
    if (fd >= 0)
      close(fd);
  }
  int oflags = SQLITE_OPEN_EXRESCODE | SQLITE_OPEN_NOMUTEX;
  if (ro)
    oflags |= SQLITE_OPEN_READONLY;
  else
    oflags |= SQLITE_OPEN_READWRITE | ((flags & STORE_NO_CREATE) ? 0 : SQLITE_OPEN_CREATE);
  int rc = sqlite3_open_v2(path, &s->db, oflags, NULL);
  if (rc != SQLITE_OK) {
    int r = store_error(s, rc);
    snprintf(err, errlen, "%s: cannot open store: %s", path, s->errmsg);
    return r;
  }
  sqlite3_extended_result_codes(s->db, 1);
  sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);

  int r = exec_sql(s, "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA temp_store = "
                      "MEMORY; PRAGMA cache_size = -32768");
  if (r >= 0 && !ro)
    r = exec_sql(s, "PRAGMA journal_mode = WAL");
  int64_t version = 0;
  if (r >= 0)
    r = query_int(s, "PRAGMA user_version", &version);
  if (r < 0) {
    snprintf(err, errlen, "%s: cannot open store: %s", path, s->errmsg);
    return r;
  }

  if (version > STORE_SCHEMA_VERSION) {
    snprintf(err, errlen,
             "%s: store schema version %" PRId64
             " is newer than this renewd supports (%d); upgrade renewd",
             path, version, STORE_SCHEMA_VERSION);
    return -EPROTO;
  }
  if (version < STORE_SCHEMA_VERSION) {
    if (ro) {
      snprintf(err, errlen,
               "%s: store schema version %" PRId64 " is older than this renewd uses (%d); "
               "run renewd or renewctl once with write access to upgrade it",
               path, version, STORE_SCHEMA_VERSION);
      return -EPROTO;
    }
    r = migrate(s, err, errlen);
    if (r < 0)
      return r;
  }

  s->errmsg[0] = 0;
  *ret = TAKE_PTR(s);
  return 0;
}

/* ---- meta ------------------------------------------------------------------ */

int store_meta_get(struct store *s, const char *key, char **ret) {
  if (!s || isempty(key) || !ret)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r = stmt_acquire(s, STMT_META_GET, &q);
  if (r < 0)
    return r;
  if ((r = bind_text(&q, 1, key)) < 0)
    return r;
  r = stmt_step(&q);
  if (r < 0)
    return r;
  if (r == 0)
    return -ENOENT;
  const char *v = (const char *)sqlite3_column_text(q.st, 0);
  char *d = strdup(v ? v : "");
  if (!d)
    return -ENOMEM;
  *ret = d;
  return 0;
}

int store_meta_set(struct store *s, const char *key, const char *value) {
  if (!s || isempty(key))
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r = stmt_acquire(s, value ? STMT_META_SET : STMT_META_DEL, &q);
  if (r < 0)
    return r;
  if ((r = bind_text(&q, 1, key)) < 0)
    return r;
  if (value) {
    /* an empty value is kept as "", not NULL */
    int rc = sqlite3_bind_text(q.st, 2, value, -1, SQLITE_STATIC);
    if (rc != SQLITE_OK)
      return store_error(s, rc);
  }
  return stmt_exec(&q);
}

/* ---- ladders ----------------------------------------------------------------- */

int store_ladder_intern(struct store *s, const char *text, int64_t *ret_id) {
  if (!s || isempty(text) || !ret_id)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r = stmt_acquire(s, STMT_LADDER_FIND, &q);
  if (r < 0)
    return r;
  if ((r = bind_text(&q, 1, text)) < 0)
    return r;
  r = stmt_step(&q);
  if (r < 0)
    return r;
  if (r > 0) {
    *ret_id = sqlite3_column_int64(q.st, 0);
    return 0;
  }
  stmt_release(&q);

  r = stmt_acquire(s, STMT_LADDER_INSERT, &q);
  if (r < 0)
    return r;
  if ((r = bind_text(&q, 1, text)) < 0)
    return r;
  r = stmt_exec(&q);
  if (r < 0)
    return r;
  *ret_id = sqlite3_last_insert_rowid(s->db);
  return 0;
}

int store_ladder_get(struct store *s, int64_t id, char **ret_text) {
  if (!s || !ret_text)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r = stmt_acquire(s, STMT_LADDER_GET, &q);
  if (r < 0)
    return r;
  if ((r = bind_int64(&q, 1, id)) < 0)
    return r;
  r = stmt_step(&q);
  if (r < 0)
    return r;
  if (r == 0)
    return -ENOENT;
  char *d;
  if ((r = col_text(q.st, 0, true, &d)) < 0)
    return r;
  *ret_text = d;
  return 0;
}

/* ---- events -------------------------------------------------------------------- */

int event_append(struct store *s, const char *contract_id, const char *kind, const char *detail,
                 int64_t now) {
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r = stmt_acquire(s, STMT_EVENT_INSERT, &q);
  if (r < 0)
    return r;
  if ((r = bind_text(&q, 1, contract_id)) < 0 || (r = bind_int64(&q, 2, now)) < 0 ||
      (r = bind_text(&q, 3, kind)) < 0 || (r = bind_text(&q, 4, detail)) < 0)
    return r;
  return stmt_exec(&q);
}

int store_event_append(struct store *s, const char *contract_id, const char *kind,
                       const char *detail, int64_t now) {
  if (!s || isempty(kind))
    return -EINVAL;
  return event_append(s, contract_id, kind, detail, now);
}

int store_event_foreach_contract(struct store *s, const char *contract_id,
                                 int (*cb)(const struct event *e, void *ud), void *ud) {
  if (!s || !cb)
    return -EINVAL;
  _cleanup_stmt_ struct stmt_ref q = {0};
  int r = stmt_acquire(s, STMT_EVENT_FOREACH, &q);
  if (r < 0)
    return r;
  if ((r = bind_text(&q, 1, contract_id)) < 0)
    return r;
  int n = 0;
  while ((r = stmt_step(&q)) > 0) {
    struct event e = {
        .id = sqlite3_column_int64(q.st, 0),
        .at = sqlite3_column_int64(q.st, 2),
    };
    (void)col_text(q.st, 1, false, &e.contract_id);
    (void)col_text(q.st, 3, false, &e.kind);
    (void)col_text(q.st, 4, false, &e.detail);
    int k = cb(&e, ud);
    if (k < 0)
      return k;
    n++;
  }
  return r < 0 ? r : n;
}

/* ---- record destructors, idempotency keys ------------------------------------ */

void owner_clear(struct owner *o) {
  if (!o)
    return;
  free(o->id);
  free(o->name);
  free(o->email);
  free(o->phone);
  free(o->webhook);
  free(o->tz);
  free(o->manager_id);
  *o = (struct owner){0};
}

void customer_clear(struct customer *c) {
  if (!c)
    return;
  free(c->id);
  free(c->name);
  free(c->email);
  free(c->phone);
  free(c->tz);
  free(c->locale);
  free(c->segment);
  free(c->owner_id);
  *c = (struct customer){0};
}

void contract_clear(struct contract *c) {
  if (!c)
    return;
  free(c->id);
  free(c->customer_id);
  free(c->product);
  free(c->currency);
  *c = (struct contract){0};
}

void reminder_clear(struct reminder *r) {
  if (!r)
    return;
  free(r->contract_id);
  free(r->tier);
  free(r->channel);
  free(r->audience);
  free(r->recipient);
  free(r->last_error);
  free(r->provider_id);
  free(r->delivery_status);
  free(r->delivery_error);
  *r = (struct reminder){0};
}

void response_clear(struct response *r) {
  if (!r)
    return;
  free(r->contract_id);
  free(r->kind);
  free(r->source);
  free(r->channel);
  free(r->reason);
  free(r->detail);
  free(r->idem_key);
  *r = (struct response){0};
}

void event_clear(struct event *e) {
  if (!e)
    return;
  free(e->contract_id);
  free(e->kind);
  free(e->detail);
  *e = (struct event){0};
}

#define FNV_PRIME UINT64_C(0x100000001b3)

static void fnv_feed(uint64_t h[2], const void *data, size_t len) {
  const unsigned char *p = data;
  for (size_t i = 0; i < len; i++) {
    h[0] = (h[0] ^ p[i]) * FNV_PRIME;
    h[1] = (h[1] ^ p[i]) * FNV_PRIME;
  }
}

static void fnv_field(uint64_t h[2], const char *s, bool sep) {
  if (s)
    fnv_feed(h, s, strlen(s));
  if (sep)
    fnv_feed(h, "\x1f", 1);
}

void store_idem_key(const char *contract_id, int32_t term, const char *tier, int32_t step,
                    const char *channel, const char *audience, char out[static 40]) {
  uint64_t h[2] = {UINT64_C(0xcbf29ce484222325), UINT64_C(0x84222325cbf29ce4)};
  char num[16];
  fnv_field(h, contract_id, true);
  snprintf(num, sizeof num, "%" PRId32, term);
  fnv_field(h, num, true);
  fnv_field(h, tier, true);
  snprintf(num, sizeof num, "%" PRId32, step);
  fnv_field(h, num, true);
  fnv_field(h, channel, true);
  fnv_field(h, audience, false);
  snprintf(out, 40, "rk-%016" PRIx64 "%016" PRIx64, h[0], h[1]);
}
