/* store_internal: private declarations shared by core/store*.c only.
 *
 * Holds struct store (the connection, the statement cache and the cached
 * change_seq maximum), the statement ids with their SQL, and helpers for
 * statement use, transactions, error translation and column reading. Never
 * include this outside core/store*.c: it pulls in sqlite3.h.
 *
 * Statement discipline: every statement is prepared once, lazily, with
 * SQLITE_PREPARE_PERSISTENT and cached in s->stmts[]. stmt_acquire() hands out
 * the cached statement, or a fresh private copy when the cached one is in use
 * further up the stack (a foreach callback re-entering the store); stmt_release()
 * resets or finalizes it. No SQL text is ever built from user data. */
#pragma once

#include <sqlite3.h>
#include <stdbool.h>

#include "core/store.h"
#include "core/util.h"

enum store_stmt {
  /* transactions */
  STMT_BEGIN,
  STMT_COMMIT,
  STMT_ROLLBACK,
  STMT_SAVEPOINT,
  STMT_RELEASE,
  STMT_ROLLBACK_TO,
  STMT_DATA_VERSION,
  STMT_MAX_SEQ,
  STMT_MAX_ROWID,
  /* meta, ladders, events */
  STMT_META_GET,
  STMT_META_SET,
  STMT_META_DEL,
  STMT_LADDER_FIND,
  STMT_LADDER_INSERT,
  STMT_LADDER_GET,
  STMT_EVENT_INSERT,
  STMT_EVENT_FOREACH,
  /* owners, customers, contracts */
  STMT_OWNER_GET,
  STMT_OWNER_LIST,
  STMT_OWNER_INSERT,
  STMT_OWNER_UPDATE,
  STMT_CUSTOMER_GET,
  STMT_CUSTOMER_INSERT,
  STMT_CUSTOMER_UPDATE,
  STMT_CUSTOMER_SET_OPTOUT,
  STMT_CONTRACT_GET,
  STMT_CONTRACT_GET_ROWID,
  STMT_CONTRACT_INSERT,
  STMT_CONTRACT_UPDATE,
  STMT_CONTRACT_SET_STATE,
  STMT_CONTRACT_SET_NEXT_DUE,
  STMT_CONTRACT_FOREACH,
  STMT_CONTRACT_FOREACH_CUSTOMER,
  STMT_CONTRACT_FOREACH_CHANGED,
  STMT_CONTRACT_FOREACH_DUE,
  STMT_CONTRACT_COUNT,
  /* paged scans of the event loop (store_contracts.c, store_scan.c) */
  STMT_CONTRACT_FOREACH_AFTER,
  STMT_CONTRACT_CHANGED_PAGE,
  STMT_CONTRACT_DUE_PAGE,
  STMT_COUNT_PAGE_REMINDERS,
  STMT_COUNT_PAGE_RESPONSES,
  STMT_COUNT_PAGE_CONTRACTS,
  STMT_REMINDER_NEXT_RETRY,
  /* reminders, responses */
  STMT_REMINDER_INSERT,
  STMT_REMINDER_GET,
  STMT_REMINDER_FOREACH_CONTRACT,
  STMT_REMINDER_FOREACH_STATUS,
  STMT_REMINDER_CLAIM,
  STMT_REMINDER_SET_STATUS,
  STMT_REMINDER_RECOVER,
  STMT_REMINDER_CANCEL,
  STMT_REMINDER_CANCEL_OLD_TERMS,
  STMT_REMINDER_COUNT,
  /* leases and guarded results (schema v5) */
  STMT_REMINDER_RENEW,
  STMT_REMINDER_FINISH,
  STMT_REMINDER_SET_STATUS_IF,
  STMT_REMINDER_SET_DELIVERY,
  STMT_REMINDER_FIND_PROVIDER,
  STMT_REMINDER_EXPIRED,
  STMT_REMINDER_RECOVER_ROW,
  STMT_REMINDER_RECONCILE,
  STMT_RESPONSE_INSERT,
  STMT_RESPONSE_FOREACH,
  /* http helper: inbound SMS, API idempotency, metrics (store_api.c) */
  STMT_CUSTOMER_FIND_PHONE,
  STMT_API_IDEM_GET,
  STMT_API_IDEM_PUT,
  STMT_API_IDEM_PRUNE,
  STMT_COUNT_REMINDERS,
  STMT_COUNT_RESPONSES,
  STMT_COUNT_CONTRACTS,
  /* suppressions (store_suppress.c) */
  STMT_SUPPRESS_ADD,
  STMT_SUPPRESS_GET,
  STMT_SUPPRESS_DEL,
  STMT_SUPPRESS_LIST,
  STMT_SUPPRESS_CLEAR_EMAIL,
  STMT_SUPPRESS_CLEAR_SMS,
  _STMT_MAX,
};

struct store {
  sqlite3 *db;                    /* the connection; owned */
  sqlite3_stmt *stmts[_STMT_MAX]; /* cached statements, NULL until first use; owned */
  char *path;                     /* as passed to store_open(); owned */
  unsigned flags;                 /* STORE_* open flags */
  int64_t max_seq;                /* max(contracts.change_seq) while seq_valid */
  bool seq_valid;                 /* max_seq is current: only inside a write transaction */
  bool customer_insert_first;     /* last customer upsert inserted: try INSERT before SELECT */
  bool contract_insert_first;     /* same for contracts (a first import is all inserts) */
  char errmsg[256];               /* copy of SQLite's message for the last failure */
  /* bulk loading (store_bulk.c) */
  bool load;                    /* store_load_begin() tuning in effect */
  int64_t load_saved_cache;     /* PRAGMA cache_size before store_load_begin() */
  int64_t load_saved_ckpt;      /* PRAGMA wal_autocheckpoint before store_load_begin() */
  bool bulk;                    /* inside store_bulk_begin() .. commit/rollback */
  bool bulk_pragmas;            /* foreign_keys off, temp_store FILE: to restore */
  int64_t bulk_saved_temp;      /* PRAGMA temp_store before store_bulk_begin() */
  struct buf bulk_redo;         /* CREATE statements the bulk commit re-runs; owned */
  sqlite3_stmt *bulk_customers; /* multi-row INSERT of STORE_BULK_ROWS customers; owned */
  sqlite3_stmt *bulk_contracts; /* same for contracts; owned */
};

/* Page cache of a loading connection (KiB), its WAL auto-checkpoint
 * threshold (pages), and the page cache (hence the sorter's in-memory run
 * size) while a bulk load builds its indexes; see store_bulk.c. Measured with
 * bench/bench-import: a bulk load needs little cache (its B-trees grow at
 * their end, but for the customers key); batches into a populated store
 * gain from a larger one, but not enough to pay for the memory. */
#define STORE_LOAD_CACHE_KIB 32768
#define STORE_LOAD_CHECKPOINT_PAGES 16384
#define STORE_BULK_SORT_CACHE_KIB 2048
/* Rows per multi-row INSERT of store_bulk_customers()/store_bulk_contracts():
 * one statement execution (cursor setup, VDBE start and halt) per 32 rows
 * instead of per row; measured ~35% less CPU per contract insert. */
#define STORE_BULK_ROWS 32
/* Leaves bulk mode (frees the saved definitions); the transaction itself is
 * the caller's business. Called by store_rollback() and store_free(). */
void bulk_reset(struct store *s);

/* A statement in use: the cached one, or a private one when that is busy. */
struct stmt_ref {
  sqlite3_stmt *st;
  bool owned; /* finalize on release (private copy) rather than reset */
  struct store *s;
};

/* SQL text of each statement (store.c). */
extern const char *const store_stmt_sql[_STMT_MAX];

/* Translates an SQLite result code to -errno and records sqlite3_errmsg(). */
int store_error(struct store *s, int rc);

int stmt_acquire(struct store *s, enum store_stmt id, struct stmt_ref *ret);
void stmt_release(struct stmt_ref *ref);
#define _cleanup_stmt_ _cleanup_(stmt_release)

/* Steps a statement that returns no row (or ignores rows): 0 or -errno. */
int stmt_exec(struct stmt_ref *ref);
/* Steps once: 1 = row, 0 = done, -errno. */
int stmt_step(struct stmt_ref *ref);

/* Binding helpers (SQLITE_STATIC: the caller keeps the data alive until
 * release). Empty and NULL strings bind as SQL NULL. Return 0 or -errno. */
int bind_text(struct stmt_ref *ref, int i, const char *v);
int bind_int64(struct stmt_ref *ref, int i, int64_t v);
/* Binds NULL for 0 (nullable references such as ladder_id). */
int bind_id(struct stmt_ref *ref, int i, int64_t v);
int bind_null(struct stmt_ref *ref, int i);

/* Column text: copy ? strdup : borrowed pointer into SQLite's buffer (valid
 * until the next step/reset). Returns 0 or -ENOMEM. */
int col_text(sqlite3_stmt *st, int i, bool copy, char **ret);

/* Atomic section for functions doing several writes. When the connection is
 * in autocommit mode: BEGIN IMMEDIATE (then *ret_own = true); inside the
 * caller's transaction: SAVEPOINT. txn_leave() commits/releases when r >= 0,
 * rolls back otherwise, and returns r (or the commit's error). */
int txn_enter(struct store *s, bool *ret_own);
int txn_leave(struct store *s, bool own, int r);
/* Inside a write transaction: loads max(change_seq) when not cached. */
int seq_refresh(struct store *s);
/* Next change_seq to use (does not consume it). */
static inline int64_t seq_next(struct store *s) {
  return s->max_seq + 1;
}

/* Appends an event using the cached statement. */
int event_append(struct store *s, const char *contract_id, const char *kind, const char *detail,
                 int64_t now);

/* Reads a contract from columns starting at col (see STORE_CONTRACT_COLS). */
int contract_from_row(sqlite3_stmt *st, int col, bool copy, struct contract *ret);
#define STORE_CONTRACT_NCOLS 16
#define STORE_CONTRACT_COLS                                                                        \
  "c.rowid, c.id, c.customer_id, c.product, c.currency, c.starts_at, c.expires_at, "               \
  "c.value_minor, c.term, c.state, c.state_until, c.ladder_id, c.next_due_at, c.change_seq, "      \
  "c.created_at, c.updated_at"
#define STORE_CUSTOMER_NCOLS 9
#define STORE_CUSTOMER_COLS                                                                        \
  "cu.id, cu.name, cu.email, cu.phone, cu.tz, cu.locale, cu.segment, cu.owner_id, cu.optout"
int customer_from_row(sqlite3_stmt *st, int col, bool copy, struct customer *ret);
/* Runs the one-parameter customer query id with key and copies the first row
 * into *ret (caller clears). -EINVAL, -ENOENT or a store error. */
int customer_get_by(struct store *s, enum store_stmt id, const char *key, struct customer *ret);
#define STORE_REMINDER_COLS                                                                        \
  "id, contract_rowid, contract_id, term, tier, step, channel, audience, recipient, idem_key, "    \
  "due_at, status, attempts, next_attempt_at, last_error, provider_id, created_at, updated_at, "   \
  "sent_at, claim, claimed_until, cancel, reconcile, delivery_status, delivery_error, delivery_at"
#define STORE_RESPONSE_COLS                                                                        \
  "id, contract_id, term, kind, source, channel, reason, detail, idem_key, until_at, "             \
  "new_expires_at, created_at"
#define STORE_SUPPRESSION_COLS "id, address, kind, reason, source, note, created_at"
