/* store: the contract store, one SQLite file in WAL mode.
 *
 * The single source of truth for owners, customers, contracts, reminder ladder
 * snapshots, the reminder outbox, customer responses, an append-only event log
 * and a small key/value meta table. Owns one sqlite3 connection and its cached
 * prepared statements (struct store is opaque). Only core/store*.c include
 * sqlite3.h; SQLite result codes are translated to -errno here:
 *   BUSY/LOCKED -> -EBUSY, READONLY/PERM/AUTH -> -EACCES,
 *   CANTOPEN -> -ENOENT or -EACCES (from errno), NOTADB/CORRUPT -> -EBADMSG,
 *   CONSTRAINT -> -EEXIST (but a missing referenced customer/contract, i.e.
 *   CONSTRAINT_FOREIGNKEY -> -ENXIO), FULL -> -ENOSPC, NOMEM -> -ENOMEM,
 *   else -EIO.
 * store_last_error() gives SQLite's message for the last failure.
 *
 * Blocking: every call does file I/O and may wait up to the busy timeout (5 s,
 * or none on an event loop's connection: store_set_busy_timeout()) for
 * another writer. Keep transactions short. Not thread-safe: one struct
 * store per thread.
 *
 * Invariants:
 *  - the schema is at STORE_SCHEMA_VERSION (PRAGMA user_version) once opened
 *    for writing; older files are migrated forward in one transaction on open,
 *    newer ones are refused (-EPROTO).
 *  - contracts.change_seq is strictly increasing over writes: every insert or
 *    content update of a contract (by us, by triggers for foreign writers such as
 *    the sqlite3 shell, and for a customer update, on all its contracts) gets
 *    max(change_seq)+1. Setting next_due_at does NOT bump it (it is the daemon's
 *    own bookkeeping). From the shell, `UPDATE contracts SET change_seq = 0
 *    WHERE ...` forces a fresh value (the daemon re-plans those rows).
 *  - a reminder's idem_key is store_idem_key() of its (contract_id, term, tier,
 *    step, channel, audience) and is unique: an intent is recorded at most once.
 *
 * Every function works inside a caller's transaction (store_begin/commit) and in
 * autocommit mode; functions that write several rows open their own transaction
 * (a SAVEPOINT) so they are atomic either way.
 *
 * Records returned through ret_* own their strings: free them with *_clear().
 * Records passed to callbacks are valid only during the call (copy what you keep);
 * callbacks may call back into the store, writes included. Empty strings are
 * stored as NULL (and compare equal to NULL in upserts).
 *
 * Data version: store_data_version() changes when ANOTHER connection commits;
 * this connection's own writes do not change it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

enum {
  STORE_READONLY = 1 << 0,  /* open read-only; never migrates */
  STORE_NO_CREATE = 1 << 1, /* fail with -ENOENT when the file does not exist */
};

/* v1: base schema; v2: contracts.next_due_at + index (horizon refill);
 * v3: terms (expiry of every ended term, kept by a trigger; see store_report);
 * v4: api_idempotency + customers(phone) index (HTTP API, inbound SMS);
 * v5: outbox leases (claim, claimed_until, claimed_by, cancel, reconcile, 'unknown');
 * v6: suppressions (store_suppress.c);
 * v7: index reminders(status, channel, next_attempt_at). */
#define STORE_SCHEMA_VERSION 8

#define STORE_BUSY_TIMEOUT_MS 5000

/* Opens (creating unless STORE_NO_CREATE) the store at path, sets WAL,
 * foreign_keys=ON, busy_timeout, synchronous=NORMAL, and migrates the schema
 * forward (not with STORE_READONLY: then an older schema is refused with
 * -EPROTO and a message to run once with write access). A schema newer than
 * STORE_SCHEMA_VERSION is refused with -EPROTO, as is a version-0 file that
 * already has tables (not a renewd store). On failure a message naming path is
 * written to err (if not NULL). On success *ret is owned by the caller: free
 * with store_free(). */
int store_open(const char *path, unsigned flags, struct store **ret, char *err, size_t errlen);
/* Finalizes statements and closes the connection (rolling back an open
 * transaction). Accepts NULL. Returns NULL. */
struct store *store_free(struct store *s);

/* Explicit transactions. begin = BEGIN IMMEDIATE (takes the write lock now;
 * -EBUSY after the busy timeout). Not nestable: begin inside a transaction
 * returns -EBUSY. */
int store_begin(struct store *s);
int store_commit(struct store *s);
int store_rollback(struct store *s);
/* PRAGMA data_version: changes whenever another connection commits. */
int store_data_version(struct store *s, int64_t *ret);
/* SQLite's message for the last failure ("" if none). Valid until the next call. */
const char *store_last_error(struct store *s);
/* The path the store was opened with; valid until store_free(). */
const char *store_path(const struct store *s);

/* ---- an event loop's connection (core/store.c) ---------------------------- */

/* How long a call waits for another connection's write lock before failing
 * with -EBUSY: STORE_BUSY_TIMEOUT_MS after store_open(); 0 = never wait (an
 * event loop's connection: it retries from a timer instead of sleeping). */
int store_set_busy_timeout(struct store *s, int ms);
/* WAL pages after which a commit on this connection checkpoints (SQLite's
 * default 1000); 0 = never (a checkpoint thread with its own connection
 * does it, store_checkpoint()). */
int store_set_autocheckpoint(struct store *s, int pages);
/* One PASSIVE checkpoint: copies what it can of the WAL into the database
 * without waiting for (or blocking) readers and writers, and never calls the
 * busy handler. *ret_wal_pages / *ret_copied (optional): frames in the WAL
 * and how many are now in the database. 0 or -errno (-EBUSY: another
 * checkpoint runs). Outside a transaction only (-EBUSY otherwise). */
int store_checkpoint(struct store *s, int *ret_wal_pages, int *ret_copied);

/* ---- bulk loading (renewctl import; core/store_bulk.c) ------------------- */

/* Tunes this connection for a long series of writes: a larger page cache and
 * a higher WAL auto-checkpoint threshold. store_load_end() (outside any
 * transaction: else -EBUSY) checkpoints the WAL back into the database and
 * truncates it (a reader still holding an old snapshot past the busy timeout
 * only leaves the rest to the next checkpoint), then restores the settings.
 * Nesting is not counted; load_end without load_begin does nothing. */
int store_load_begin(struct store *s);
int store_load_end(struct store *s);
/* Starts a one-transaction bulk load when the contracts and customers tables
 * are empty (a first import); call between store_load_begin() and
 * store_load_end() (else -EINVAL). BEGIN IMMEDIATE, then drops the non-unique indexes of
 * contracts and customers and the contracts INSERT trigger inside that
 * transaction. Write with the ordinary upserts (change_seq is assigned as
 * always), then store_bulk_commit() (or store_commit()) recreates the
 * indexes and trigger from their stored definitions and commits;
 * store_rollback() or a crash leaves the store exactly as before. Other
 * writers wait for the whole load (up to their busy timeout); readers see
 * the old contents. Returns 1 = bulk transaction open; 0 = the store has
 * contracts or customers, no transaction left open (write in store_begin()
 * batches); -EBUSY inside a transaction; other -errno. */
int store_bulk_begin(struct store *s);
int store_bulk_commit(struct store *s);

/* ---- enums and their stable text names (the names are stored) ---------- */

enum contract_state {
  CONTRACT_ACTIVE,    /* "active": term running, no reminder sent yet */
  CONTRACT_REMINDING, /* "reminding": ladder in progress */
  CONTRACT_RENEWED,   /* "renewed" */
  CONTRACT_DECLINED,  /* "declined" */
  CONTRACT_SNOOZED,   /* "snoozed": until state_until */
  CONTRACT_CALLBACK,  /* "callback": customer asked to be called; owner handles */
  CONTRACT_LAPSED,    /* "lapsed": expired without answer, in grace */
  CONTRACT_CLOSED,    /* "closed": done, nothing more is sent */
  _CONTRACT_STATE_MAX,
};
/* Returns the static name or NULL when out of range. */
const char *contract_state_to_string(enum contract_state s);
/* Returns the enum value or -EINVAL. */
int contract_state_from_string(const char *s);

enum reminder_status {
  REMINDER_PENDING,   /* "pending": recorded intent, not yet claimed */
  REMINDER_SENDING,   /* "sending": claimed by a dispatcher */
  REMINDER_SENT,      /* "sent" */
  REMINDER_RETRY,     /* "retry": failed, to retry at next_attempt_at */
  REMINDER_DEAD,      /* "dead": gave up */
  REMINDER_CANCELLED, /* "cancelled": superseded (answer, new term) */
  REMINDER_SKIPPED,   /* "skipped": decided not to send (opt-out, catch-up, answered term) */
  REMINDER_UNKNOWN,   /* "unknown": the outcome of an attempt is unknown and a resend is
                         not safe (SMS without a provider lookup): for ops to decide */
  _REMINDER_STATUS_MAX,
};
const char *reminder_status_to_string(enum reminder_status s);
int reminder_status_from_string(const char *s);

/* customers.optout bits */
enum {
  OPTOUT_EMAIL = 1,
  OPTOUT_SMS = 2,
  OPTOUT_WEBHOOK = 4,
};

/* ---- records: every char * is owned (NULL = not set) --------------------- */

struct owner {
  char *id; /* key */
  char *name;
  char *email;
  char *phone;      /* E.164 */
  char *webhook;    /* URL */
  char *tz;         /* IANA zone */
  char *manager_id; /* another owner's id, or NULL */
};

struct customer {
  char *id; /* key */
  char *name;
  char *email;
  char *phone;     /* E.164 */
  char *tz;        /* IANA zone */
  char *locale;    /* e.g. "en", "de-CH" */
  char *segment;   /* policy selector */
  char *owner_id;  /* not a foreign key: may name an owner not imported yet */
  unsigned optout; /* OPTOUT_* bits; sticky, see store_customer_upsert() */
};

struct contract {
  int64_t rowid;     /* SQLite rowid; stable for the contract's life */
  char *id;          /* external key, unique */
  char *customer_id; /* references customers(id); NULL allowed */
  char *product;
  char *currency;      /* ISO 4217, e.g. "EUR" */
  int64_t starts_at;   /* UTC seconds, 0 = unknown */
  int64_t expires_at;  /* UTC seconds */
  int64_t value_minor; /* value x 100 */
  int32_t term;        /* 1 for the first term, +1 at each expiry change */
  enum contract_state state;
  int64_t state_until; /* end of snooze/callback pause, 0 = none */
  int64_t ladder_id;   /* ladders(id) this term walks, 0 = not yet chosen */
  int64_t next_due_at; /* daemon bookkeeping: next reminder instant, 0 = none */
  int64_t change_seq;  /* change counter, see invariants */
  int64_t created_at;
  int64_t updated_at;
};

struct reminder {
  int64_t id;
  int64_t contract_rowid;
  char *contract_id;
  int32_t term;
  char *tier;        /* tier name */
  int32_t step;      /* repeat index inside the tier, 0 = first */
  char *channel;     /* channel name */
  char *audience;    /* "customer" or "owner" */
  char *recipient;   /* address/number/URL actually used, may be NULL until sent */
  char idem_key[40]; /* "rk-" + 32 hex, NUL-terminated; see store_idem_key() */
  int64_t due_at;
  enum reminder_status status;
  int32_t attempts;
  int64_t next_attempt_at; /* for retry; 0 = none */
  char *last_error;
  char *provider_id; /* provider's message id once accepted */
  int64_t created_at;
  int64_t updated_at;
  int64_t sent_at;       /* 0 = not sent */
  int64_t claim;         /* fencing token: incremented at each claim; results need the same */
  int64_t claimed_until; /* lease expiry while 'sending' (0 = none); renewed during a transfer */
  bool cancel;           /* 'sending' and an answer cancelled it: record the outcome, nothing
                            follows, the row ends 'cancelled' */
  bool reconcile;        /* the last attempt's outcome is unknown: the next claim looks
                            it up at the provider instead of sending */
  char *delivery_status; /* provider's receipt: queued, sent, delivered, undelivered,
                            failed; NULL = none reported */
  char *delivery_error;  /* provider's error code with the receipt, or NULL */
  int64_t delivery_at;   /* when the receipt was recorded, 0 = none */
};

struct response {
  int64_t id;
  char *contract_id;
  int32_t term;
  char *kind;             /* e.g. "renewed", "declined", "snooze", "callback", "stop" */
  char *source;           /* e.g. "link", "sms", "api", "renewctl" */
  char *channel;          /* channel the answer came through, may be NULL */
  char *reason;           /* decline reason, may be NULL */
  char *detail;           /* free text / JSON, may be NULL */
  char *idem_key;         /* NULL = no de-duplication */
  int64_t until_at;       /* snooze/callback until, 0 = none */
  int64_t new_expires_at; /* renewed: new expiry, 0 = none */
  int64_t created_at;
};

struct event {
  int64_t id;
  char *contract_id; /* NULL for store-wide events */
  int64_t at;
  char *kind;   /* e.g. "contract.updated" */
  char *detail; /* may be NULL */
};

/* Free the strings of a record and zero it. Accept NULL. */
void owner_clear(struct owner *o);
void customer_clear(struct customer *c);
void contract_clear(struct contract *c);
void reminder_clear(struct reminder *r);
void response_clear(struct response *r);
void event_clear(struct event *e);

/* ---- owners, customers, contracts --------------------------------------- */

enum store_upsert_result {
  STORE_UNCHANGED,
  STORE_INSERTED,
  STORE_UPDATED,
};

/* Upserts by id. Return STORE_* (>= 0) or -errno (-EINVAL when id is empty).
 * now = timestamp recorded as created_at/updated_at. Updates append an event
 * "owner.updated"/"customer.updated"/"contract.updated" whose detail lists the
 * changed fields ("expires_at,product"); an expiry change through
 * store_contract_upsert() starts a new term (term+1, state 'active',
 * state_until 0, ladder_id 0, next_due_at 0, older terms' pending/retry
 * reminders cancelled) and is logged as "contract.new_term". A customer update
 * bumps change_seq of all its contracts. Customer opt-out bits are OR-ed into
 * the stored ones: an import never clears an opt-out (store_customer_set_optout
 * does). Fast path for bulk imports: call inside store_begin()/store_commit()
 * batches; no event is written for inserts. */
int store_owner_upsert(struct store *s, const struct owner *o, int64_t now);
int store_customer_upsert(struct store *s, const struct customer *c, int64_t now);
/* Uses id, customer_id, product, starts_at, expires_at, value_minor, currency;
 * keeps term/state/ladder unless the expiry moved. Inserts start at term 1,
 * state 'active'. A customer_id naming no customer yields -ENXIO. */
int store_contract_upsert(struct store *s, const struct contract *c, int64_t now);
/* Inside a bulk load only (store_bulk_begin(); else -EINVAL): write n
 * records with few multi-row INSERT statements, in array order. Customers
 * that exist already are merged by store_customer_upsert() (updates logged as
 * usual). Contracts must be new: an existing id fails with -EEXIST, and as
 * after any error the caller must roll the load back. change_seq follows the
 * array order. Records are read during the call only. 0 or -errno. */
int store_bulk_customers(struct store *s, const struct customer *c, size_t n, int64_t now);
int store_bulk_contracts(struct store *s, const struct contract *c, size_t n, int64_t now);

/* Fill *ret (caller clears) or return -ENOENT. */
int store_owner_get(struct store *s, const char *id, struct owner *ret);
/* Calls cb for every owner ordered by id (record valid during the call only).
 * Returns the number visited or cb's negative value. */
int store_owner_foreach(struct store *s, int (*cb)(const struct owner *o, void *ud), void *ud);
int store_customer_get(struct store *s, const char *id, struct customer *ret);
int store_contract_get(struct store *s, const char *id, struct contract *ret);
int store_contract_get_by_rowid(struct store *s, int64_t rowid, struct contract *ret);

/* Writes state, state_until, term, expires_at, ladder_id of the contract with
 * c->rowid (or c->id when rowid is 0), bumps change_seq, sets updated_at,
 * cancels pending/retry reminders of terms older than c->term, and appends
 * event (event_kind, event_detail) when event_kind is not NULL/empty. Other
 * fields of c are ignored. -ENOENT if no such contract. */
int store_contract_set_state(struct store *s, const struct contract *c, const char *event_kind,
                             const char *event_detail, int64_t now);
/* Sets next_due_at (0 = none) without bumping change_seq. -ENOENT if no such row. */
int store_contract_set_next_due(struct store *s, int64_t rowid, int64_t next_due_at);
/* Sets the customer's optout bits (bumps its contracts' change_seq, logs
 * "customer.optout"). -ENOENT if no such customer. */
int store_customer_set_optout(struct store *s, const char *customer_id, unsigned optout,
                              int64_t now);

struct store_contract_filter {
  int state;            /* enum contract_state, -1 = any */
  const char *segment;  /* customer segment, NULL = any */
  int64_t expires_from; /* [from, until), 0 = open */
  int64_t expires_until;
  const char *customer_id; /* NULL = any */
  size_t limit;            /* 0 = no limit */
  /* Paging (keyset on the walk's order): when not NULL, only contracts after
   * (expires_from, after_id) are visited, i.e. expiring later than
   * expires_from, or at expires_from with a greater id. Not with customer_id
   * (-EINVAL). */
  const char *after_id;
};
/* Calls cb for each matching contract ordered by expires_at, id, with its
 * customer (cu is NULL when the contract has none). f NULL = everything.
 * Records are valid only during the call. cb returning < 0 stops the walk and
 * that value is returned; otherwise returns the number of rows visited. */
int store_contract_foreach(struct store *s, const struct store_contract_filter *f,
                           int (*cb)(const struct contract *c, const struct customer *cu, void *ud),
                           void *ud);
/* Contracts with change_seq > since, in change_seq order, at most limit
 * (0 = no limit); *ret_max (optional) = highest change_seq seen (since if none).
 * Returns the number visited or cb's negative value. */
int store_contract_foreach_changed(struct store *s, int64_t since, size_t limit,
                                   int (*cb)(const struct contract *c, void *ud), void *ud,
                                   int64_t *ret_max);
/* Contracts with 0 < next_due_at < until, ordered by next_due_at (horizon
 * refill). Returns the number visited or cb's negative value. */
int store_contract_foreach_due(struct store *s, int64_t until, size_t limit,
                               int (*cb)(const struct contract *c, void *ud), void *ud);

/* A keyset cursor: the (key, rowid) of the last row a paged walk visited;
 * the next page starts after it. {0, 0} before the first page. */
struct store_cursor {
  int64_t key;   /* the walk's ordering column of that row */
  int64_t rowid; /* its rowid (ties on key) */
};
/* One page of the change scan: at most limit (>= 1) contracts ordered by
 * (change_seq, rowid) after *cur (key = change_seq); *cur moves to the last
 * one visited. Each page is its own read (rows committed between pages
 * appear in later pages: change_seq only grows). Returns the number visited
 * (< limit: the walk reached the end) or cb's negative value. */
int store_contract_changed_page(struct store *s, struct store_cursor *cur, size_t limit,
                                int (*cb)(const struct contract *c, void *ud), void *ud);
/* One page of the due scan: contracts with next_due_at in [*cur, until)
 * ordered by (next_due_at, rowid) after *cur (key = next_due_at; a cursor
 * with key k and rowid 0 starts at next_due_at >= k), at most limit (>= 1).
 * Uses the partial next_due index; rows before the cursor (already on the
 * caller's wheel) are not read again. Returns the number visited (< limit:
 * done) or cb's negative value. */
int store_contract_due_page(struct store *s, struct store_cursor *cur, int64_t until, size_t limit,
                            int (*cb)(const struct contract *c, void *ud), void *ud);
int store_contract_max_change_seq(struct store *s, int64_t *ret);
/* Highest contract rowid: the number of contracts ever stored (renewd never
 * deletes one), in O(log n) where count(*) reads a whole index. */
int store_contract_max_rowid(struct store *s, int64_t *ret);
int store_contract_count(struct store *s, int state /* -1 any */, int64_t *ret);

/* ---- ladder snapshots ---------------------------------------------------- */

/* Returns the id of the ladder with exactly this text, inserting it if new. */
int store_ladder_intern(struct store *s, const char *text, int64_t *ret_id);
/* *ret_text is a heap copy, caller frees. -ENOENT if unknown. */
int store_ladder_get(struct store *s, int64_t id, char **ret_text);

/* ---- reminders: the outbox ----------------------------------------------- */

/* Deterministic idempotency key: "rk-" followed by 32 lowercase hex digits, the
 * concatenation of two 64-bit FNV-1a hashes (offset basis 0xcbf29ce484222325 and
 * 0x84222325cbf29ce4, prime 0x100000001b3) over
 *   contract_id \x1f term(decimal) \x1f tier \x1f step(decimal) \x1f channel \x1f audience
 * (NULL strings hash as empty). out is NUL-terminated (39 chars used). */
void store_idem_key(const char *contract_id, int32_t term, const char *tier, int32_t step,
                    const char *channel, const char *audience, char out[static 40]);

/* Inserts r (contract_id, term >= 1, tier, step >= 0, channel, audience,
 * recipient, due_at, status, attempts, next_attempt_at, last_error,
 * provider_id, sent_at), created_at = updated_at = now. next_attempt_at 0 is
 * stored as due_at, so a pending row becomes claimable at its due instant.
 * On success writes r->idem_key, r->id and r->contract_rowid (looked up from
 * contract_id). -EEXIST if the key exists (intent already recorded), -ENOENT if
 * the contract does not exist, -EINVAL for a bad field. *ret_id optional. */
int store_reminder_insert(struct store *s, struct reminder *r, int64_t now, int64_t *ret_id);
int store_reminder_get(struct store *s, int64_t id, struct reminder *ret);
/* Walks a contract's reminders (term -1 = all terms) ordered by term, due_at, id. */
int store_reminder_foreach_contract(struct store *s, const char *contract_id, int32_t term,
                                    int (*cb)(const struct reminder *r, void *ud), void *ud);
/* Walks reminders with status (-1 = any) ordered by id, at most limit (0 = all). */
int store_reminder_foreach_status(struct store *s, int status, size_t limit,
                                  int (*cb)(const struct reminder *r, void *ud), void *ud);
/* Claims are leases. A claim moves up to max rows of channel (NULL = any)
 * that are pending or retry with next_attempt_at <= now (for pending rows
 * that is due_at unless set), oldest first, to 'sending' with attempts+1,
 * claim+1 (the fencing token), claimed_until = lease_until, claimed_by = owner
 * (e.g. "host:pid", may be NULL), cancel = 0, updated_at = now, in one UPDATE
 * (committed before the first callback when called outside a transaction).
 * cb then gets each claimed row (with its new claim) in (next_attempt_at, id)
 * order. Returns the number claimed, or cb's negative value (the claim stays:
 * settle the rows you did not handle with store_reminder_finish(), or let the
 * lease expire). store_reminder_claim() is the same with a lease of
 * STORE_DEFAULT_LEASE seconds and no owner. */
#define STORE_DEFAULT_LEASE 300
int store_reminder_claim_lease(struct store *s, const char *channel, int64_t now,
                               int64_t lease_until, const char *owner, size_t max,
                               int (*cb)(const struct reminder *r, void *ud), void *ud);
int store_reminder_claim(struct store *s, const char *channel, int64_t now, size_t max,
                         int (*cb)(const struct reminder *r, void *ud), void *ud);
/* Extends the lease of row id to lease_until while it is 'sending' under
 * claim. 0, or -ESTALE when the row no longer holds that claim. */
int store_reminder_renew(struct store *s, int64_t id, int64_t claim, int64_t lease_until,
                         int64_t now);
/* Records the result of the attempt made under claim: only WHERE status =
 * 'sending' AND claim = claim, so a late result never overwrites a row that
 * was recovered, re-claimed, or finished. st is what the attempt asks for
 * (sent, retry, dead, skipped, unknown); next_attempt_at for retry; error
 * (NULL clears last_error); provider_id (NULL keeps the old one); sent_at =
 * now when st is sent. A row an answer marked (cancel) ends 'cancelled'
 * instead, keeping the attempt, the provider id and, in last_error, what the
 * attempt did. Writes the status the row ended in to *ret_status (optional).
 * 0, or -ESTALE when the row no longer holds that claim (nothing written). */
int store_reminder_finish(struct store *s, int64_t id, int64_t claim, enum reminder_status st,
                          int64_t next_attempt_at, const char *error, const char *provider_id,
                          int64_t now, enum reminder_status *ret_status);
/* Guarded status change outside a claim (operators, skips before a claim):
 * only when the row's status is expect. Same fields as store_reminder_finish()
 * without the claim. 0, -ENOENT (no such row) or -ESTALE (other status). */
int store_reminder_set_status_if(struct store *s, int64_t id, enum reminder_status expect,
                                 enum reminder_status st, int64_t next_attempt_at,
                                 const char *error, const char *provider_id, int64_t now);
/* Records a provider's delivery receipt on the row whose provider_id is
 * provider_id: status one of queued, sent, delivered, undelivered, failed
 * (error: the provider's error code, NULL = none), delivery_at = now. A
 * receipt of lower rank than the one recorded (queued < sent < delivered,
 * undelivered, failed) changes nothing: callbacks arrive out of order. 1
 * when recorded, 0 when an existing receipt outranks it, -ENOENT when no row
 * has that provider id, -EINVAL for an unknown status, or a store error. */
int store_reminder_set_delivery(struct store *s, const char *provider_id, const char *status,
                                const char *error, int64_t now);
/* Unguarded status change, for tests and repair tools only. -ENOENT if no
 * such row. */
int store_reminder_set_status(struct store *s, int64_t id, enum reminder_status st,
                              int64_t next_attempt_at, const char *error, const char *provider_id,
                              int64_t now);
/* Walks up to limit 'sending' rows whose lease ended before now (every
 * 'sending' row when now is TIME_NEVER: start-up, when no other process can
 * hold a claim), oldest lease first. The caller settles each with
 * store_reminder_recover_row(). */
int store_reminder_foreach_expired(struct store *s, int64_t now, size_t limit,
                                   int (*cb)(const struct reminder *r, void *ud), void *ud);
/* Recovers one expired claim: a row marked cancel ends 'cancelled'; the
 * others become st (retry: due again at next_attempt_at with the same key;
 * unknown: for ops) with error in last_error. Guarded by status 'sending'
 * and claim. 0 or -ESTALE. */
int store_reminder_recover_row(struct store *s, int64_t id, int64_t claim, enum reminder_status st,
                               int64_t next_attempt_at, const char *error, int64_t now);
/* The attempt made under claim has an unknown outcome and the channel can
 * look it up: the row becomes 'retry' at next_attempt_at with the reconcile
 * mark (its next claim is a lookup, not a send) and error in last_error; a
 * cancel-marked row ends 'cancelled'. Writes the status it ended in to
 * *ret_status (optional). 0 or -ESTALE. store_reminder_finish() and the
 * operator's status changes clear the mark. */
int store_reminder_reconcile_later(struct store *s, int64_t id, int64_t claim,
                                   int64_t next_attempt_at, const char *error, int64_t now,
                                   enum reminder_status *ret_status);
/* Crash recovery of every 'sending' row at once: retry with next_attempt_at =
 * now (cancel-marked rows: cancelled). Returns how many. The daemon uses the
 * per-row calls above instead (channel policies); kept for tools and tests. */
int store_reminder_recover(struct store *s, int64_t now);
/* An answer or a new term: cancels every unfinished row of a contract (all
 * terms when term < 0, only that audience when not NULL): pending and retry
 * rows become 'cancelled'; rows being sent are marked cancel (their outcome
 * is still recorded by store_reminder_finish(), then they end 'cancelled').
 * Returns how many rows it cancelled or marked. */
int store_reminder_cancel_contract(struct store *s, const char *contract_id, int32_t term,
                                   const char *audience, int64_t now);
/* counts[status] = number of rows with that status. */
int store_reminder_count_by_status(struct store *s, int64_t counts[_REMINDER_STATUS_MAX]);

/* ---- responses, events, meta --------------------------------------------- */

/* Inserts a response (created_at = now). -EEXIST when idem_key repeats.
 * *ret_id optional. */
int store_response_insert(struct store *s, const struct response *r, int64_t now, int64_t *ret_id);
/* Walks a contract's responses (term -1 = all) ordered by created_at, id. */
int store_response_foreach_contract(struct store *s, const char *contract_id, int32_t term,
                                    int (*cb)(const struct response *r, void *ud), void *ud);
/* Appends to the audit log. contract_id may be NULL. */
int store_event_append(struct store *s, const char *contract_id, const char *kind,
                       const char *detail, int64_t now);
/* Walks a contract's events (NULL = store-wide events) ordered by id. */
int store_event_foreach_contract(struct store *s, const char *contract_id,
                                 int (*cb)(const struct event *e, void *ud), void *ud);
/* *ret is a heap copy, caller frees. -ENOENT if the key is absent. */
int store_meta_get(struct store *s, const char *key, char **ret);
/* value NULL deletes the key. */
int store_meta_set(struct store *s, const char *key, const char *value);

/* ---- HTTP listener: inbound SMS, API idempotency, metrics (store_api.c) ---- */

/* The customer whose phone is exactly phone (E.164 as stored; the most
 * recently updated one when several share it). Fills *ret (caller clears)
 * or returns -ENOENT. */
int store_customer_find_by_phone(struct store *s, const char *phone, struct customer *ret);

/* The stored result of an API request made with Idempotency-Key key:
 * *ret_request_hash (what identified the request) and *ret_body are heap
 * copies the caller frees. -ENOENT when the key is unknown. */
int store_api_idem_get(struct store *s, const char *key, char **ret_request_hash, int *ret_status,
                       char **ret_body);
/* Records the result of a request. -EEXIST when the key is already there. */
int store_api_idem_put(struct store *s, const char *key, const char *request_hash, int status,
                       const char *body, int64_t now);
/* Forgets results recorded before `before`. Returns how many. */
int store_api_idem_prune(struct store *s, int64_t before);

/* What store_count_grouped() counts, and the key columns cb gets (in order). */
enum store_group {
  STORE_GROUP_REMINDERS, /* channel, tier, audience, status */
  STORE_GROUP_RESPONSES, /* kind, source ("" when none) */
  STORE_GROUP_CONTRACTS, /* state */
};
/* Calls cb(keys, count) once per group (one full scan of the table; meant
 * for metrics, cached by the caller). keys are valid during the call only;
 * a NULL column is passed as "". Returns the number of groups or cb's
 * negative value. */
int store_count_grouped(struct store *s, enum store_group g,
                        int (*cb)(const char *const *keys, size_t n_keys, int64_t count, void *ud),
                        void *ud);

/* ---- paged recounts behind /metrics (core/store_scan.c) ---------------------- */

/* One page of a recount of table g: the next limit (>= 1) rows by rowid
 * after *after (0 before the first page), grouped as store_count_grouped()
 * groups them; cb gets each group of the page. *after moves to the last
 * rowid read. Returns the number of rows read (< limit: the table is done)
 * or cb's negative value. Summing the pages of one pass counts every row
 * that existed through the pass exactly once, with the values it had when
 * its page was read. */
int store_count_page(struct store *s, enum store_group g, int64_t *after, size_t limit,
                     int (*cb)(const char *const *keys, size_t n_keys, int64_t count, void *ud),
                     void *ud);
/* The earliest next_attempt_at of channel's 'retry' rows (one index range
 * read in order, stopping at the first row of that channel). -ENOENT when
 * there is none. */
int store_reminder_next_retry(struct store *s, const char *channel, int64_t *ret);

/* ==== report rows (core/store_report.c; used by core/report.c) ============== */

/* The rows the renewal report aggregates: one contract term whose expiry lies
 * in the period, with its outbox rows and its responses. A term is the
 * current one (contracts.expires_at) or an ended one (the terms table, schema
 * v3). Everything is borrowed: valid only during the callback. */
struct store_report_reminder {
  int64_t id;
  const char *tier;
  const char *channel;
  const char *audience; /* "customer" or "owner" */
  enum reminder_status status;
  int32_t attempts;
  int64_t sent_at; /* 0 = not sent */
};

struct store_report_response {
  int64_t id;
  const char *kind;   /* responses.kind, e.g. "renewed" */
  const char *reason; /* NULL = none */
  const char *source; /* NULL = unknown */
  int64_t created_at;
};

struct store_report_term {
  const char *contract_id;
  int32_t term;
  int64_t expires_at;        /* this term's expiry */
  int64_t ended_at;          /* when the next term started; 0 = the current term */
  enum contract_state state; /* the contract's state now (the current term's) */
  const char *segment;       /* the customer's segment now, NULL = none */
  const char *owner_id;      /* the customer's owner now, NULL = none */
  const struct store_report_reminder *reminders; /* ordered by sent_at, id */
  size_t n_reminders;
  const struct store_report_response *responses; /* ordered by created_at, id */
  size_t n_responses;
};

/* Calls cb for every term (current or ended) whose expiry lies in
 * [from, until), ordered by contract id and term, inside one read
 * transaction (a consistent snapshot) unless the caller has one open. Three
 * ordered queries merged in one pass: cost O(terms + their rows). cb
 * returning < 0 stops the walk and that value is returned; otherwise the
 * number of terms visited. -EINVAL for bad arguments. */
int store_report_foreach_term(struct store *s, int64_t from, int64_t until,
                              int (*cb)(const struct store_report_term *t, void *ud), void *ud);
/* ==== end of report rows ==================================================== */

/* ==== suppressions (core/store_suppress.c) ================================== */

/* Addresses nothing is sent to: a phone number that answered STOP, an email
 * address that unsubscribed (later: hard bounces, complaints), whichever
 * customer or owner has it. One row per (address, kind); addresses are
 * normalized (store_address_normalize()), so lookups compare exactly. */

enum suppress_kind {
  SUPPRESS_EMAIL, /* "email": a lowercased email address */
  SUPPRESS_SMS,   /* "sms": an E.164 number */
  _SUPPRESS_KIND_MAX,
};
const char *suppress_kind_to_string(enum suppress_kind k);
int suppress_kind_from_string(const char *s);

/* Longest normalized address, NUL excluded. */
#define STORE_ADDRESS_MAX 254

/* Normalizes address for kind into out (STORE_ADDRESS_MAX + 1 bytes): email
 * trimmed and lowercased, it must hold one '@' with text on both sides and no
 * blank or control character; SMS "+" and 8..15 digits (blanks, '-', '.',
 * '(' and ')' between digits dropped, no leading 0). 0 or -EINVAL. */
int store_address_normalize(enum suppress_kind k, const char *address,
                            char out[static STORE_ADDRESS_MAX + 1]);

struct suppression {
  int64_t id;
  char *address; /* normalized */
  enum suppress_kind kind;
  char *reason; /* "stop", "unsubscribe", "hard-bounce", "complaint", "manual", ... */
  char *source; /* "sms-inbound", "link", "api", "renewctl", "migration", ...; may be NULL */
  char *note;   /* free text, may be NULL */
  int64_t created_at;
};
void suppression_clear(struct suppression *sp);

/* True for a reason or source word: 1..32 of [a-z0-9-]. */
bool store_suppression_word_valid(const char *s);

/* Suppresses address (normalized here) for kind, created_at = now, and logs
 * a store-wide event "suppression.added". reason: a word (see above); source
 * a word or NULL; note NULL or up to 500 bytes without control characters.
 * An address suppressed already keeps its row as it is. Returns 1 = added,
 * 0 = was suppressed already, -EINVAL (bad address or field) or a store
 * error. */
int store_suppression_add(struct store *s, enum suppress_kind k, const char *address,
                          const char *reason, const char *source, const char *note, int64_t now);
/* Lifts the suppression of address for kind (optouts_only: only one whose
 * reason is "stop" or "unsubscribe", as a START or a resubscription may; a
 * bounce or complaint needs an explicit removal), logs "suppression.removed"
 * with source and why (NULL or a note as for add: the operator's reason), and clears the matching
 * opt-out bit (OPTOUT_EMAIL/OPTOUT_SMS) of every customer with that address, so that what the
 * address asked for wins over older per-customer bits. Returns 1 = a row or a bit was removed, 0 =
 * nothing to remove, -EINVAL or a store error. */
int store_suppression_remove(struct store *s, enum suppress_kind k, const char *address,
                             bool optouts_only, const char *source, const char *why, int64_t now);
/* Whether address (normalized here) is suppressed for kind: 1 (and *ret, if
 * not NULL, filled: caller clears), 0 (not suppressed, or not an address of
 * that kind), or a store error. One indexed lookup. */
int store_suppression_check(struct store *s, enum suppress_kind k, const char *address,
                            struct suppression *ret);

struct store_suppression_filter {
  int kind;            /* enum suppress_kind, -1 = any */
  const char *address; /* normalized for kind (kind must be set), NULL = any */
  const char *reason;  /* NULL = any */
  int64_t after_id;    /* rows with id > after_id: a cursor for paging */
  size_t limit;        /* 0 = no limit */
};
/* Calls cb for each matching suppression ordered by id (record valid during
 * the call only). Returns the number visited or cb's negative value. */
int store_suppression_foreach(struct store *s, const struct store_suppression_filter *f,
                              int (*cb)(const struct suppression *sp, void *ud), void *ud);
/* The suppressions that apply to a customer's (or owner's) email address and
 * phone number (either may be NULL): at most one per kind, email first. */
int store_suppression_foreach_contact(struct store *s, const char *email, const char *phone,
                                      int (*cb)(const struct suppression *sp, void *ud), void *ud);
/* ==== end of suppressions =================================================== */
