/* lifecycle: the contract state machine. Records what a customer (or the
 * owner, or staff) answered and moves the contract accordingly, in one store
 * transaction.
 *
 * The transition table (state x answer -> new state / refused) is one array in
 * lifecycle.c and the same table is in docs/lifecycle.md. lifecycle_can()
 * exposes it, so the HTTP pages can tell "already recorded" from "not
 * possible" before acting; lifecycle_apply() is the only writer.
 *
 * What lifecycle_apply() does, all or nothing (BEGIN IMMEDIATE ... COMMIT,
 * rolled back on any failure):
 *  1. loads the contract (-ENOENT when missing);
 *  2. de-duplicates: an answer whose idempotency key is already recorded for
 *     the contract (same kind) returns 0 with already_recorded and the
 *     original response, changing nothing (see "Idempotency" below);
 *  3. checks the transition (-EPERM refused, -EALREADY already there) and the
 *     answer's values (-EINVAL);
 *  4. inserts the response row, appends the events "answer.<kind>" and, when
 *     the state changes, "contract.<state>" (a renewal: "contract.renewed",
 *     whose detail names the previous expiry: see lifecycle_term_start());
 *  5. cancels outbox rows (pending/retry) that the answer makes wrong: the
 *     customer rows for snoozed/callback, every row for renewed/declined/lost;
 *  6. changes the contract (store_contract_set_state, which bumps change_seq so
 *     the daemon re-plans it) or the customer's opt-out bits;
 *  7. for callback, renew_intent, message and a renewal from a customer's
 *     link (lifecycle_alerts_owner()), records owner alert rows in the
 *     outbox (audience owner, tier LIFECYCLE_TIER_*, step = response id, due
 *     now, term = the contract's term afterwards: a renewal's alert belongs to
 *     the new term), one per owner channel the caller passes; a row that
 *     cannot reach the owner is recorded 'skipped' with the reason in
 *     last_error.
 *
 * Idempotency. The key is the caller's (a link token, an API
 * Idempotency-Key), stored verbatim in responses.idem_key: the same key again
 * for the same contract and kind is a repeat; for another kind or another
 * contract it is refused with -EEXIST (a key names one answer). Without a
 * caller key the answer is a repeat when the contract's latest response is
 * the same answer (same kind, term, channel for (un)subscribe, reason,
 * until, new expiry and text); the stored key is then derived ("lc-" + 32
 * hex) from those values plus the id of the response it followed, so the same
 * answer given again later (call me again after the pause, unsubscribe after
 * resubscribe) is a new answer, not a repeat.
 *
 * Owns nothing between calls. Blocks on the store (file I/O, busy timeout).
 * Never logs; messages go to the caller's buffer. Must not be called inside
 * an open store transaction (store_begin is not nestable: -EBUSY). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/store.h"

struct cal_zone; /* core/cal.h */

/* What an answer says. The text names are stored in responses.kind. */
enum lifecycle_kind {
  LIFECYCLE_RENEWED,      /* "renewed": new term with new_expires_at; from a
                             customer's link the owner is alerted */
  LIFECYCLE_DECLINED,     /* "declined": closed-lost by the customer, with a reason */
  LIFECYCLE_SNOOZED,      /* "snoozed": no customer reminders until `until` */
  LIFECYCLE_CALLBACK,     /* "callback": call me; reminders pause, owner alerted */
  LIFECYCLE_LOST,         /* "lost": owner/staff close it as lost, with a reason */
  LIFECYCLE_RENEW_INTENT, /* "renew_intent": SMS "RENEW"/"YES": owner alerted to close it */
  LIFECYCLE_UNSUBSCRIBED, /* "unsubscribed": opt out of a channel kind */
  LIFECYCLE_RESUBSCRIBED, /* "resubscribed": opt back in */
  LIFECYCLE_MESSAGE,      /* "message": free text forwarded to the owner */
  LIFECYCLE_HELP,         /* "help": asked for help (the caller answers it) */
  _LIFECYCLE_KIND_MAX,
};

/* Where an answer came from; stored in responses.source. */
enum lifecycle_source {
  LIFECYCLE_SOURCE_LINK,       /* "link": a customer's one-click link */
  LIFECYCLE_SOURCE_SMS,        /* "sms": an inbound SMS */
  LIFECYCLE_SOURCE_API,        /* "api": the JSON API */
  LIFECYCLE_SOURCE_RENEWCTL,   /* "renewctl": staff on the command line */
  LIFECYCLE_SOURCE_OWNER_LINK, /* "owner-link": the sales owner's link */
  _LIFECYCLE_SOURCE_MAX,
};

/* Verdict of the transition table. */
enum lifecycle_verdict {
  LIFECYCLE_REFUSED, /* not possible in this state */
  LIFECYCLE_ALLOWED, /* applies (possibly leaving the state as it is) */
  LIFECYCLE_ALREADY, /* the contract already is where this answer leads */
};

/* Tier names of the owner alert rows. */
#define LIFECYCLE_TIER_CALLBACK "callback"
#define LIFECYCLE_TIER_RENEW_INTENT "renew-intent"
#define LIFECYCLE_TIER_MESSAGE "customer-message"
/* the customer renewed through the link: send the invoice */
#define LIFECYCLE_TIER_CUSTOMER_RENEWED "customer-renewed"

/* Defaults used when lifecycle_answer.policy is NULL. */
#define LIFECYCLE_DEFAULT_CALLBACK_PAUSE (INT64_C(7) * 86400)
#define LIFECYCLE_DEFAULT_MAX_SNOOZE (INT64_C(90) * 86400)
#define LIFECYCLE_DEFAULT_LAPSE_GRACE (INT64_C(30) * 86400)

/* Which address of the owner a channel needs. */
enum lifecycle_addr {
  LIFECYCLE_ADDR_EMAIL, /* owners.email (smtp, sink) */
  LIFECYCLE_ADDR_PHONE, /* owners.phone (sms) */
  LIFECYCLE_ADDR_URL,   /* owners.webhook, else default_url (webhook) */
};

/* One channel of the owner alert. Borrowed. */
struct lifecycle_channel {
  const char *name;         /* [Channel NAME], stored in reminders.channel */
  enum lifecycle_addr addr; /* the owner address it needs */
  const char *default_url;  /* ADDR_URL: the channel's URL= when the owner has no
                               webhook; NULL = none */
};

/* What the caller takes from the contract's policy. Borrowed. */
struct lifecycle_policy {
  int64_t callback_pause;     /* CallbackPause=: customer reminders pause this long
                                 after "call me"; >= 0 */
  int64_t max_snooze;         /* a snooze may end at most this long after now; 0 = no limit */
  int64_t lapse_grace;        /* LapseGrace=: a snooze may not end after
                                 expires_at + lapse_grace; < 0 = no limit */
  const char *fallback_owner; /* FallbackOwner=: owner when the customer has none
                                 (or names an unknown one); NULL = none */
  const struct lifecycle_channel *owner_channels; /* the channels of the policy's
                                 first Audience=owner tier; may be empty */
  size_t n_owner_channels;
};

/* One answer. Strings are borrowed; NULL or "" = not given. */
struct lifecycle_answer {
  const char *contract_id; /* required */
  enum lifecycle_kind kind;
  enum lifecycle_source source;
  const char *channel;                   /* channel the answer came through, NULL = unknown; for
                                            unsubscribed/resubscribed required: "email", "sms",
                                            "webhook" or "all" (the opt-out bits it changes) */
  const char *reason;                    /* declined (optional) / lost (required): one of
                                            lifecycle_reason_name() */
  const char *detail;                    /* free text: decline note, the customer's message */
  int64_t until;                         /* snoozed: end of the snooze (required);
                                            callback: preferred call time, 0 = none */
  int64_t new_expires_at;                /* renewed: the new term's expiry (required, later than
                                            the current one) */
  const char *idem_key;                  /* NULL = no caller key (derived, see above) */
  const struct lifecycle_policy *policy; /* NULL = LIFECYCLE_DEFAULT_*, no owner
                                            channels, no fallback owner */
};

struct lifecycle_result {
  enum contract_state previous_state; /* before the answer */
  enum contract_state new_state;      /* after it (a renewal: CONTRACT_ACTIVE) */
  int32_t term;                       /* after (a renewal: old term + 1) */
  int64_t expires_at;                 /* after */
  int64_t state_until;                /* after (snooze end, callback pause end), 0 = none */
  int64_t response_id;                /* the recorded response, or the original one */
  bool already_recorded;              /* a repeat: nothing was changed */
  bool new_term;                      /* renewed: a new term started */
  bool alert_owner;                   /* owner alert rows were recorded now */
  unsigned owner_alerts;              /* of them: pending (the dispatcher should run) */
  unsigned owner_alerts_skipped;      /* of them: skipped (reason in last_error) */
  unsigned cancelled;                 /* outbox rows cancelled */
  struct response response;           /* copy of that response; owned, see clear */
};

/* Frees the strings of r->response and zeroes r. Accepts NULL. */
void lifecycle_result_clear(struct lifecycle_result *r);

/* Static names; NULL when out of range. */
const char *lifecycle_kind_to_string(enum lifecycle_kind k);
const char *lifecycle_source_to_string(enum lifecycle_source s);
/* Returns the enum value or -EINVAL. Kinds accept '-' for '_' ("renew-intent"). */
int lifecycle_kind_from_string(const char *s);
int lifecycle_source_from_string(const char *s);

/* Decline/lost reasons: price, switched-provider, no-longer-needed, budget,
 * missing-features, other. lifecycle_reason_name(i) for i = 0, 1, ... lists
 * them (NULL past the end); lifecycle_reason_valid() checks one. */
const char *lifecycle_reason_name(size_t i);
bool lifecycle_reason_valid(const char *s);

/* The transition table: the verdict for answering kind in state, and in
 * *ret_next (optional, set for ALLOWED and ALREADY) the state afterwards
 * (kinds that do not change the state give state itself; renewed gives
 * CONTRACT_ACTIVE of a new term). Returns the verdict (>= 0) or -EINVAL for
 * out-of-range arguments. Pure. */
int lifecycle_can(enum contract_state state, enum lifecycle_kind kind,
                  enum contract_state *ret_next);

/* True when an answer of this kind from this source records owner alert
 * rows: callback, renew_intent and message from any source, renewed from a
 * customer's link (LIFECYCLE_SOURCE_LINK; the owner sends the invoice). Pure. */
bool lifecycle_alerts_owner(enum lifecycle_kind kind, enum lifecycle_source source);

/* Whether outbox row r may still go out for contract c (the row's contract,
 * as the store has it now) at instant now. False, with the reason in why,
 * when the row's term is over (superseded by a renewal or a new expiry), the
 * contract is renewed, declined or closed, or a snooze or callback pause
 * holds the customer's ladder. Owner alerts of answers (LIFECYCLE_TIER_*
 * tiers) report something that happened and are always live; so are rows
 * the caller knows to be alerts (alert = true, e.g. ops alerts). Pure. */
bool lifecycle_reminder_live(const struct contract *c, const struct reminder *r, bool alert,
                             int64_t now, char *why, size_t whylen);

/* The instant the contract's current term began, for the customer's one-click
 * renewal: term 1 starts at c->starts_at; a later term at the previous term's
 * expiry, as recorded by the event that started it ("contract.renewed" or
 * "contract.new_term", detail "... previous=<RFC 3339>"), or at c->starts_at
 * when that is later (an import that gave the new term's start after a gap).
 * *ret = 0 when unknown (starts_at 0 for term 1; for a later term no such
 * event with previous=). Walks the contract's events (reads the store). 0 or
 * a negative errno (store errors, -EINVAL). */
int lifecycle_term_start(struct store *s, const struct contract *c, int64_t *ret);

/* The expiry a renewal "for another term" gives: the current expiry plus the
 * current term's length in whole calendar months. The length is
 * expires_at - term_start rounded to months (of 365.2425 / 12 days) when
 * term_start is known (> 0) and the length lies between 28 days and 5 years
 * (1827 days), else 12 months. The months are added to the local date of
 * expires_at in zone z (NULL = UTC), the day clamped to the month's last day
 * (31 January + 1 month = 28/29 February), keeping the local time of day; an
 * expiry at the start of a local day (cal_end_of_date(), also where midnight
 * does not exist) stays at the start of the new day. *ret_months (optional)
 * gets the months added. Pure. 0, or -EINVAL (expires_at <= 0, ret NULL),
 * -ERANGE (past year 9999); the outputs are untouched on failure. */
int lifecycle_renewal_expiry(const struct cal_zone *z, int64_t term_start, int64_t expires_at,
                             int64_t *ret, int *ret_months);

/* Applies answer a at now (see the top of this file). Returns 0 and fills
 * *ret (caller clears with lifecycle_result_clear()) or a negative errno with
 * a message in err (when not NULL); *ret is untouched on failure and the store
 * is unchanged:
 *   -ENOENT    no such contract
 *   -EPERM     the transition is refused ("contract C-1 is declined: snoozed is
 *              not allowed (allowed: renewed, renew_intent, ...)"), or lost
 *              from a customer source
 *   -EALREADY  the contract is already where the answer leads (declined
 *              again with another reason or key)
 *   -EINVAL    a bad value (missing or past date, new expiry not later than
 *              the current one, snooze beyond the limits, unknown reason or
 *              opt-out channel, unsubscribe without a customer)
 *   -EEXIST    the caller's key was used for another contract or answer
 *   -EBUSY     the store is locked (or a transaction is already open)
 *   other      store errors (-EIO, -ENOMEM, ...) */
int lifecycle_apply(struct store *s, const struct lifecycle_answer *a, int64_t now,
                    struct lifecycle_result *ret, char *err, size_t errlen);
