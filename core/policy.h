/* policy: the pure policy engine. Decides, for one contract term, the next
 * thing the daemon has to do: send a reminder occurrence (REMIND), record that
 * an occurrence is deliberately not sent (SKIP), change the contract's state
 * (TRANSITION), or nothing ever again (DONE).
 *
 * Inputs are the ladder (struct policy), the term's expiry, the contract state,
 * the recipients' zones and send windows, the reminder rows already recorded
 * for the term, whether the customer answered, and "now". No I/O, no clock
 * reads, no allocation: everything lives on the stack (at most
 * POLICY_MAX_OCCURRENCES instants per tier). Owns nothing; never blocks.
 * Thread-safety is that of the struct cal the zones come from (its zone
 * tables fill lazily): call from the thread that owns it.
 *
 * The ladder. For tier i, raw0 = cal_add_duration(customer zone, expires_at,
 * offset): days are calendar days in the customer's zone, hours exact
 * (RFC 5545 §3.3.6). With Repeat= the tier's occurrences are
 * cal_rrule_expand(rrule, customer zone, raw0, until) where until is the raw0
 * of the next tier with a later instant (occurrences at or after it are
 * dropped; the last tier is capped at POLICY_MAX_OCCURRENCES). Step 0 is raw0
 * itself and always exists. An occurrence is due at the first instant >= raw
 * inside its audience's window and zone (owner zone NULL = customer zone;
 * a NULL window = any time). Ladder order is (tier index, step).
 *
 * Invariants of policy_next():
 *  - only occurrences after the last (tier, step) present in `sent` (in ladder
 *    order, whatever the row status) are candidates, and candidates are acted
 *    on strictly in ladder order: the daemon never goes back, and a later
 *    occurrence never overtakes an earlier one (if it is delayed past its own
 *    due time by more than catchup_grace, it is treated as missed);
 *  - it is idempotent: the same input gives the same action; applying the
 *    action (a row for REMIND/SKIP, a state change for TRANSITION) and calling
 *    again makes progress, so the daemon loops until the action lies in the
 *    future (arm a timer for due_at) or is DONE;
 *  - one message per contract, tier and instant: occurrences of a tier that
 *    would go out at the same instant (the send window moved them together,
 *    or a catch-up sends them at once) are one REMIND, named by the last
 *    of them (steps folded in get no row; `merged` counts them);
 *  - the earliest action wins; on equal instants a TRANSITION comes first
 *    (lapse before a same-instant +offset tier, wake-up before the paused
 *    reminder). SKIPs are due at `now` (the decision is final when made).
 *
 * The engine never moves ACTIVE to REMINDING: the daemon does that when it
 * records the first reminder of the term. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cal.h"
#include "core/ladder.h"
#include "core/store.h" /* enum contract_state only; no link dependency */

/* Upper bound on the occurrences of one tier (repeats included). */
#define POLICY_MAX_OCCURRENCES 64
/* Upper bound on policy->n_tiers accepted by policy_next()/policy_plan(). */
#define POLICY_MAX_TIERS 64

/* A reminder row exists for (tier, step) of the current term, whatever its
 * status (pending, sent, retry, dead, cancelled, skipped). */
struct policy_sent {
  const char *tier; /* tier name; names not in the policy are ignored */
  int32_t step;     /* occurrence number inside the tier (0 = tier instant) */
};

struct policy_input {
  const struct policy *policy;              /* the ladder (snapshot or current config); borrowed */
  int64_t expires_at;                       /* the current term's expiry instant */
  enum contract_state state;                /* current contract state */
  int64_t state_until;                      /* end of the snooze/callback pause */
  const struct cal_zone *customer_zone;     /* required */
  const struct cal_window *customer_window; /* NULL = any time */
  const struct cal_zone *owner_zone;        /* NULL = customer_zone */
  const struct cal_window *owner_window;    /* NULL = any time */
  const struct cal_zone *const *escalate_zones; /* NULL, or one entry per tier: the zone of the
                                                   tier's EscalateTo= person, used for its steps
                                                   >= EscalateAfter= (NULL entry = owner_zone) */
  const struct policy_sent *sent;               /* rows recorded in this term, any order */
  size_t n_sent;
  bool customer_answered; /* any customer answer recorded in this term */
  int64_t now;
  int64_t catchup_grace; /* >= 0: an occurrence due more than this before now is missed */
};

enum policy_action_kind {
  POLICY_DONE,       /* nothing more, ever, for this term */
  POLICY_REMIND,     /* record one reminder row per channel of the tier */
  POLICY_SKIP,       /* record a 'skipped' row with reason */
  POLICY_TRANSITION, /* move the contract to new_state */
};

struct policy_action {
  enum policy_action_kind kind;
  int64_t due_at;                /* when the action is due (<= now: due now); TIME_NEVER for DONE.
                                    REMIND: inside the audience's send window */
  size_t tier;                   /* REMIND/SKIP: index into policy->tiers; 0 otherwise */
  int32_t step;                  /* REMIND/SKIP: occurrence inside the tier; -1 otherwise */
  enum audience audience;        /* REMIND/SKIP: the tier's audience */
  int64_t raw_at;                /* REMIND/SKIP: the occurrence's instant before the window */
  bool catch_up;                 /* REMIND of a missed occurrence (sent late) */
  int32_t merged;                /* REMIND/SKIP: occurrences of the tier this action stands for:
                                    1, or more when later ones would go out at the same instant
                                    (they are folded in; step and raw_at are the last one's) */
  const char *reason;            /* SKIP: static string (POLICY_REASON_*); NULL otherwise */
  enum contract_state new_state; /* TRANSITION: the state to move to */
};

#define POLICY_REASON_CATCHUP_SKIP "catch-up: skip"
#define POLICY_REASON_SUPERSEDED "catch-up: superseded"
#define POLICY_REASON_ANSWERED "customer answered"
#define POLICY_REASON_EXPIRED "expired"
#define POLICY_REASON_SNOOZED "snoozed"

/* Computes the earliest next action for in (rules in policy.c's header).
 * Returns 0 and fills *ret, or -EINVAL for bad input (NULL pointers, no
 * customer zone, negative grace, more than POLICY_MAX_TIERS tiers, state out of
 * range); *ret is untouched on failure. Never allocates. */
int policy_next(const struct policy_input *in, struct policy_action *ret);

/* Enumerates, in ladder order, every occurrence of the ladder whose due
 * instant lies in [from, until) (of a tier's occurrences due at one instant
 * only the last, as policy_next() folds them), as if nobody answered and nothing was sent
 * (in->sent, state, answered and now are ignored): cb(tier index, step, raw
 * instant, due instant, ud). A negative return from cb stops the walk and is
 * returned. Returns the number of occurrences reported, or -EINVAL. */
int policy_plan(const struct policy_input *in, int64_t from, int64_t until,
                int (*cb)(size_t tier, int32_t step, int64_t raw_at, int64_t due_at, void *ud),
                void *ud);

/* Static name of a kind ("done", "remind", "skip", "transition"), NULL when
 * out of range. */
const char *policy_action_kind_to_string(enum policy_action_kind k);
