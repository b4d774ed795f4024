/* planner: plans one contract — the glue between the store and the pure policy
 * engine, shared by the daemon (daemon/sched.c, which applies what is due) and
 * renewctl (plan, plan --diff, replan: read-only or explicit changes).
 *
 * Knows nothing of config/: what it needs from the configuration (the policy
 * of a segment, send windows, what a channel is) comes through struct
 * planner_env callbacks; config/config_planner.h fills one from a struct
 * config. Reports what it did (reminder recorded, skipped, state changed)
 * through env->report instead of logging.
 *
 * Owns: struct planner_contract (a loaded contract, its customer, sales owner
 * and the history of its term) and struct planner_ladders (a cache of parsed
 * ladder snapshots). Borrows everything in the env. Blocking: every function
 * that takes an env reads the store (short queries); planner_plan_contract()
 * and planner_rebase() also write it and must run inside the caller's
 * transaction (store_begin/commit) to be atomic. Not thread-safe (one store,
 * one cal per thread).
 *
 * Invariants of planner_plan_contract():
 *  - an action is applied (reminder rows inserted, state changed, ladder
 *    snapshotted) in the caller's transaction together with the contract's
 *    next due instant (contracts.next_due_at);
 *  - reminder rows are keyed by idempotency key: planning again (after a
 *    crash, a change, a second call) never records an occurrence twice;
 *  - a contract enters its ladder (ladder_id set, the policy snapshotted,
 *    ACTIVE -> REMINDING) with its first recorded row, and then follows the
 *    snapshot, not the config, until its term ends (docs/scheduling.md). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cal.h"
#include "core/ladder.h"
#include "core/policy.h"
#include "core/store.h"

/* How late an occurrence may fire before it counts as missed (the catch-up
 * rule of docs/scheduling.md). */
#define PLANNER_CATCHUP_GRACE 3600

/* What address a channel sends to. */
enum planner_addr {
  PLANNER_ADDR_EMAIL, /* customer/owner email (smtp, sink) */
  PLANNER_ADDR_PHONE, /* customer/owner phone (sms) */
  PLANNER_ADDR_URL,   /* a URL (webhook): the owner's webhook, else the channel's URL= */
};

/* A channel as the planner needs it. */
struct planner_channel {
  enum planner_addr kind;
  unsigned optout; /* the customers.optout bit that silences it (OPTOUT_*) */
  const char *url; /* PLANNER_ADDR_URL: the channel's URL= (borrowed), else NULL */
};

/* Cache of parsed ladder snapshots (ladders table), by id. Snapshots never
 * change once written, so the cache never goes stale for one store. */
struct planner_ladders;
int planner_ladders_new(struct planner_ladders **ret);
/* Accepts NULL; returns NULL. */
struct planner_ladders *planner_ladders_free(struct planner_ladders *l);
static inline void planner_ladders_freep(struct planner_ladders **l) {
  planner_ladders_free(*l);
}
/* The parsed snapshot id (from the cache, else loaded from store and cached),
 * or NULL when it does not exist or does not parse. Valid until
 * planner_ladders_free(). */
const struct policy *planner_ladders_get(struct planner_ladders *l, struct store *store,
                                         int64_t id);

enum planner_event_kind {
  PLANNER_EVENT_REMINDER,   /* a pending outbox row was recorded */
  PLANNER_EVENT_SKIPPED,    /* a skipped row was recorded (reason) */
  PLANNER_EVENT_TRANSITION, /* the contract changed state (from -> to) */
  PLANNER_EVENT_NO_POLICY,  /* no policy serves the segment (reason = segment) */
  PLANNER_EVENT_REFUSED,    /* the policy engine refused the input (error) */
};

/* What planner_plan_contract() did, for the caller's log. Strings are borrowed
 * and valid only during the report call. */
struct planner_event {
  enum planner_event_kind kind;
  const char *contract_id;
  const char *tier;      /* REMINDER, SKIPPED: tier name */
  int32_t step;          /* REMINDER, SKIPPED: occurrence inside the tier */
  const char *channel;   /* REMINDER, SKIPPED */
  const char *audience;  /* REMINDER, SKIPPED: "customer" or "owner" */
  const char *recipient; /* REMINDER: address, number or URL (url_redact(): scheme and host) */
  const char *reason;    /* SKIPPED: why; NO_POLICY: the segment ("" when none) */
  int64_t reminder_id;   /* REMINDER, SKIPPED: the outbox row */
  bool catch_up;         /* REMINDER: a missed occurrence sent late */
  enum contract_state from, to; /* TRANSITION */
  int error;                    /* REFUSED: -errno from policy_next() */
};

/* What the planner needs from the configuration and the caller. */
struct planner_env {
  struct store *store; /* borrowed */
  struct cal *cal;     /* borrowed; zones are looked up here */
  /* The policy for contracts of segment (NULL/"" = the default), NULL when
   * none serves it. Valid as long as the env. */
  const struct policy *(*policy_for_segment)(void *ud, const char *segment);
  /* The send window called name (NULL = the default window); NULL = any time.
   * An unknown name must give the default window. */
  const struct cal_window *(*window)(void *ud, const char *name);
  /* Fills *ret for the channel called name: 0, -ENOENT when no such channel,
   * -EINVAL when its type is not one the planner knows. */
  int (*channel)(void *ud, const char *name, struct planner_channel *ret);
  const char *default_tz; /* zone of customers without one (NULL = "UTC") */
  int64_t catchup_grace;  /* >= 0; normally PLANNER_CATCHUP_GRACE */
  void *ud;               /* for the three callbacks above */

  struct planner_ladders *ladders; /* snapshot cache; NULL = parse on every use */
  /* Optional: told about every action applied by planner_plan_contract(). */
  void (*report)(void *report_ud, const struct planner_event *ev);
  void *report_ud;
};

/* One contract loaded for planning. Owns its records and history; `in` points
 * into the struct itself, so do not copy or move it once built. */
struct planner_contract {
  struct contract c;
  struct customer cu; /* zeroed when !have_customer */
  bool have_customer;
  struct owner owner; /* the sales owner owner tiers go to: the customer's
                         owner, else the policy's FallbackOwner= (also when
                         the customer's owner is not in the store) */
  bool have_owner;
  const struct policy *policy; /* the snapshot of c.ladder_id, else the config's
                                  policy for the segment; NULL when none; borrowed */
  bool from_snapshot;          /* policy is the contract's ladder snapshot */
  struct policy *own_policy;   /* the parsed snapshot when env->ladders is NULL; owned */
  struct policy_sent *sent;    /* reminder rows of the current term (tier names owned) */
  size_t n_sent, cap_sent;
  bool answered;                            /* a customer answer in this term */
  const struct cal_zone *customer_zone;     /* the customer's, else env->default_tz, else UTC */
  const struct cal_zone *owner_zone;        /* the owner's, NULL = customer_zone */
  const struct cal_window *customer_window; /* the default window */
  const struct cal_window *owner_window;    /* the policy's OwnerSendWindow= */
  const struct cal_zone *escalate_zones[POLICY_MAX_TIERS]; /* per tier: the EscalateTo= person's
                                                              zone (NULL = owner_zone) */
  struct policy_input in; /* ready for policy_next()/policy_plan() */
};

/* Loads contract rowid with its customer, owner, policy and the history of its
 * current term, and fills ret->in for now (policy NULL when no policy serves
 * the contract: then ret->in is zeroed). Read-only. Returns 0, -ENOENT when no
 * such contract, -ENOMEM or a store error. Free with planner_contract_done()
 * (also after a failure: *ret is then zeroed or half-built). */
int planner_build_input(const struct planner_env *env, int64_t rowid, int64_t now,
                        struct planner_contract *ret);
/* Frees what pc owns and zeroes it. */
void planner_contract_done(struct planner_contract *pc);
/* Adds (tier, step) to pc's history and refreshes pc->in. 0 or -ENOMEM. */
int planner_contract_add_sent(struct planner_contract *pc, const char *tier, int32_t step);

/* Who receives one channel of one occurrence, and whether it can be sent. */
struct planner_target {
  enum planner_addr kind;
  const char *audience;    /* "customer" or "owner" (static) */
  char *recipient;         /* address, number or URL; owned; NULL when skipped */
  char *owner_id;          /* owner tiers: the owner it goes to; owned; NULL otherwise */
  const char *skip_reason; /* static: why it cannot be sent ("customer opted out of
                              this channel", "no phone number", "no sales owner",
                              "channel not configured", ...); NULL = sendable */
};
void planner_target_done(struct planner_target *t);
/* Resolves channel of occurrence (tier index, step) of pc->policy: the customer's
 * email/phone (unless opted out) or the channel URL, or for owner tiers the
 * sales owner (EscalateTo= after EscalateAfter= repeats; FallbackOwner= when
 * the named owner is missing). Read-only. Returns 0 (check skip_reason),
 * -EINVAL for a bad tier, -ENOMEM or a store error. */
int planner_resolve(const struct planner_env *env, const struct planner_contract *pc, size_t tier,
                    int32_t step, const char *channel, struct planner_target *ret);

/* Applies everything due at now for contract rowid, inside the caller's
 * transaction: records reminder rows (pending, or skipped with the reason)
 * for each channel of each due occurrence, enters the ladder with the first
 * one, applies state transitions, and stores the contract's next due instant
 * in contracts.next_due_at. *ret_next_due (optional) = the next action's
 * instant, TIME_NEVER when nothing more (also when the contract is gone or no
 * policy serves it). *ret_in_ladder (optional) = the contract follows its
 * ladder snapshot from now on (its schedule no longer depends on the
 * config's policies, only on the send windows and the default zone).
 * Returns 1 when the contract was planned, 0 when it no longer exists,
 * -errno on a store failure (roll the transaction back). */
int planner_plan_contract(const struct planner_env *env, int64_t rowid, int64_t now,
                          int64_t *ret_next_due, bool *ret_in_ladder);

/* Dry run: walks what the daemon would do for pc from now on, assuming nobody
 * answers and every reminder is sent — policy_next() applied again and again
 * to an in-memory history (pc->sent, pc->c.state are changed) — and calls
 * cb for each action due before until, in order. SKIP actions carry the
 * instant they would be decided at. Stops early when cb returns < 0 (returned).
 * Returns the number of actions reported, 0 when pc has no policy, -EINVAL. */
int planner_simulate(
    const struct planner_env *env, struct planner_contract *pc, int64_t now, int64_t until,
    int (*cb)(struct planner_contract *pc, const struct policy_action *a, void *ud), void *ud);

/* Moves contract rowid, already in a ladder, onto the current policy for its
 * segment (the `renewctl replan` operation): sets ladder_id to the snapshot of
 * that policy (interned), keeps the history (tiers with the same name and step
 * count as already sent), and bumps change_seq so the daemon re-plans it.
 * Contracts not in a ladder, or in a final state (renewed, declined, closed),
 * are left alone. With dry_run nothing is written. *ret_old / *ret_new
 * (optional) = old and new ladder ids (new is 0 in a dry run of a move to a
 * snapshot not yet stored). Returns 1 when moved (would be moved), 0 when left
 * alone or already on the current ladder, -ENOENT, -errno. */
int planner_rebase(const struct planner_env *env, int64_t rowid, int64_t now, bool dry_run,
                   int64_t *ret_old, int64_t *ret_new);

/* The range of expiry instants of contracts that may have an occurrence due
 * in [from, until) under policy p: every tier's offset, its repeats, and a
 * margin for the send window (up to slack seconds later). Widens
 * [*lo, *hi) to include it. */
void planner_expiry_range(const struct policy *p, int64_t from, int64_t until, int64_t slack,
                          int64_t *lo, int64_t *hi);
