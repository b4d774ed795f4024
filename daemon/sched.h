/* sched: the scheduler glue between the store, the policy engine and the
 * timer wheel.
 *
 * Owns the timer wheel and one wheel entry per contract that has something due
 * within the horizon (indexed by contract rowid), the parsed ladder snapshots,
 * and the work queue of contracts waiting to be (re)planned. It never reads the
 * clock: every entry point takes "now". It blocks only on short SQLite
 * transactions; large work (a refill after a reload over a million contracts,
 * the first scan after an import) is cut into slices by sched_work() so the
 * event loop keeps answering: every scan of the store (changed contracts,
 * the due index, expiry ranges) reads one page of sched_set_page_size() rows
 * per call and resumes from a keyset cursor; a failed write (-EBUSY: the
 * loop's connection never waits for another writer's lock) keeps the work
 * queued for the caller to retry after a back-off.
 *
 * Invariants:
 *  - the wheel holds every contract whose next action is due before
 *    loaded_until, and only those; each contract at most once.
 *  - contracts.next_due_at is the instant of the contract's next action as last
 *    computed (0 = nothing more); the refill reads it through its index.
 *  - an action is applied (reminder rows inserted, state changed) in the same
 *    transaction that records the contract's next due instant; reminder rows
 *    are keyed by idempotency key, so re-planning never duplicates a send. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/cal.h"
#include "core/store.h"
#include "daemon/log.h"

struct sched;

struct sched_stats {
  uint64_t contracts_planned; /* policy evaluations */
  uint64_t reminders_created; /* outbox rows inserted as pending */
  uint64_t reminders_skipped; /* rows inserted as skipped */
  uint64_t transitions;       /* state changes (lapsed, closed, resumed) */
  uint64_t changes_seen;      /* contracts re-planned because someone changed them */
  int64_t last_refill_ms;     /* duration of the last complete refill */
  int64_t refill_started_ms;  /* monotonic ms when the running refill started */
};

/* Called after a transaction that inserted pending outbox rows. */
typedef void (*sched_reminders_cb)(void *userdata);

/* Creates the scheduler. Borrows store, cal, cfg and log (they must outlive it;
 * cfg may be replaced with sched_set_config). Returns 0 or -errno. */
int sched_new(struct store *store, struct cal *cal, const struct config *cfg,
              const struct logger *log, int64_t now, struct sched **ret);
struct sched *sched_free(struct sched *s);
void sched_set_callback(struct sched *s, sched_reminders_cb cb, void *userdata);

/* Start-up: queues the horizon refill (due index, expiry windows since the
 * last run) and the change scan. Run sched_work() until it returns 0 before
 * declaring readiness. */
int sched_start(struct sched *s, int64_t now);

/* Applies a new config (SIGHUP): contracts not yet in their ladder follow it;
 * contracts in a ladder keep their snapshot. When the send windows and the
 * default zone are unchanged, only contracts not in a ladder are planned
 * again (those on the wheel, and those the new tiers bring into the horizon);
 * otherwise the whole horizon is rebuilt. Queues the work (sched_work());
 * returns 1 when work was queued, 0, or -errno. */
int sched_set_config(struct sched *s, const struct config *cfg, int64_t now);

/* Fires everything due at now, at most budget contracts. Returns 1 when more
 * is due (call again soon), 0 when done, -errno on a store failure (-EBUSY:
 * the fired contracts stay due at now; call again after a back-off). */
int sched_run_due(struct sched *s, int64_t now, unsigned budget);

/* Queues a horizon extension to now + horizon when the refill interval passed.
 * Returns 1 when work was queued (run sched_work()), 0, or -errno. */
int sched_maybe_refill(struct sched *s, int64_t now);

/* Checks PRAGMA data_version; when another connection committed, starts the
 * paged scan of the contracts whose change_seq moved (sched_work()).
 * Returns 1 when work was queued. */
int sched_poll_changes(struct sched *s, int64_t now);

/* Does a slice of queued work: one page of each pending scan (changes, due
 * index, expiry ranges; skipped while a few pages of contracts wait), then
 * plans at most budget queued contracts, stopping early after ~15 ms.
 * -EBUSY keeps everything queued. When the queue drains
 * after a start-up or reload, logs "refill done in N ms (M contracts planned,
 * longest slice S ms, longest commit C ms)". Returns 1 when more remains, 0 when idle, -errno on
 * failure. */
int sched_work(struct sched *s, int64_t now, unsigned budget);

/* Rows per page of every scan (0 = the default, 1000). */
void sched_set_page_size(struct sched *s, size_t rows);
/* Whether scans or planning are still queued (sched_work() has more to do). */
bool sched_busy(const struct sched *s);

/* Re-plans one contract now (after an answer or an API change). On -EBUSY it
 * stays due at now (the next sched_run_due() plans it). */
int sched_replan(struct sched *s, const char *contract_id, int64_t now);

/* The earliest instant sched wants to run again (next due entry, next refill). */
int64_t sched_next_wakeup(struct sched *s);

size_t sched_wheel_count(const struct sched *s);
/* Earliest entry on the wheel and its contract (NULL when empty; static buffer
 * owned by s, valid until the next call). */
int64_t sched_next_due(struct sched *s, int64_t *ret_rowid);
const struct sched_stats *sched_stats(const struct sched *s);
