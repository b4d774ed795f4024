/* report: the renewal funnel report. One computation, four renderers
 * (terminal table, JSON, CSV, self-contained HTML page), so that every
 * number is the same wherever it is shown.
 *
 * The unit is a contract TERM whose expiry lies in the period [from, until):
 * the current term of a contract (contracts.expires_at) or an ended one (the
 * store's terms history). For each term (store_report_foreach_term() rows):
 *
 *   reminded     at least one customer reminder was sent (status sent)
 *   answered     at least one answer: a response other than "lost" (the
 *                owner's or staff's verdict), "unsubscribed", "resubscribed"
 *                and "help" (as in docs/lifecycle.md: what stops escalation)
 *   prompted     answered, and a customer reminder was sent at or before the
 *                first answer; that reminder (the LAST one sent at or before
 *                the first answer; ties by id) is the one that "triggered" the
 *                answer, and the answer is credited to its tier and channel
 *   outcome      exactly one of, in this order of precedence:
 *     renewed    a "renewed" response in the term, or the term was ended by a
 *                new term without one (an import moved the expiry:
 *                renewed_external), or the contract is in state renewed;
 *                the renewal instant is the response's time (external: when
 *                the new term started) and is credited like an answer
 *     declined   a "declined" or "lost" response (lost: closed by the owner),
 *                or the current term is in state declined; its reason is the
 *                last such response's reason ("unspecified" when none)
 *     lapsed     the current term is in state lapsed or closed
 *     open       anything else (still undecided)
 *   snoozed / callback   at least one response of that kind
 *   escalations  owner-audience reminders sent (escalation tiers and the owner
 *                alerts of callback/renew-intent/message answers; not the
 *                "ops-alert" rows about dead letters, which go to ops, nor
 *                the "customer-renewed" note after a self-service renewal);
 *                escalated = terms with one
 *
 * Rates are integers in basis points (1/100 of a percent), num/den rounded
 * half up, REPORT_RATE_NONE when den is 0:
 *   renewal_rate          renewed / terms
 *   decided_renewal_rate  renewed / (renewed + declined + lapsed)
 *   response_rate         prompted / reminded
 *   per tier or channel:  response = answers / reached, renewal = renewals /
 *                         reached, failure = dead / attempted
 * The median "days before expiry at renewal" is over renewed terms with a
 * renewal instant: (expiry - renewal instant), median of the seconds (mean of
 * the two middle values for an even count), in tenths of a day rounded half
 * away from zero (negative: renewed after expiry).
 *
 * Pure aggregation (report_builder_*) plus report_compute(), which walks the
 * store. The renderers write to a FILE (use open_memstream() for a buffer).
 * Owns: struct report and everything in it. No global state, never logs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/store.h"

#define REPORT_RATE_NONE INT64_C(-1)
/* Tier of the dispatcher's dead-letter alerts (audience owner, sent to [Ops]
 * AlertChannel=): counted as deliveries, not as escalations. */
#define REPORT_OPS_ALERT_TIER "ops-alert"

/* What the breakdown table of the terminal output is grouped by. */
enum report_by {
  REPORT_BY_TIER,
  REPORT_BY_CHANNEL,
  REPORT_BY_SEGMENT,
  REPORT_BY_OWNER,
  REPORT_BY_POLICY,
  _REPORT_BY_MAX,
};
/* "tier", "channel", "segment", "owner", "policy"; NULL out of range. */
const char *report_by_to_string(enum report_by b);
/* The enum value or -EINVAL. */
int report_by_from_string(const char *s);

/* num/den in basis points rounded half up; REPORT_RATE_NONE when den <= 0. */
int64_t report_rate_bp(int64_t num, int64_t den);

/* The funnel of a set of terms (all of them, or one segment/owner/policy). */
struct report_funnel {
  int64_t terms;                   /* terms whose expiry lies in the period */
  int64_t reminded;                /* customer reminder sent */
  int64_t answered;                /* an answer (not lost, (un|re)subscribed, help) */
  int64_t prompted;                /* answered after a reminder (credited to a tier) */
  int64_t renewed;                 /* outcome renewed */
  int64_t renewed_external;        /*   of them: no answer, a new term started (import) */
  int64_t declined;                /* outcome declined (customer) or lost (owner) */
  int64_t lost;                    /*   of them: closed as lost by the owner or staff */
  int64_t lapsed;                  /* outcome lapsed */
  int64_t open;                    /* outcome open; renewed+declined+lapsed+open = terms */
  int64_t snoozed;                 /* terms with at least one snooze */
  int64_t callback;                /* terms with at least one "call me" */
  int64_t escalations;             /* owner-audience reminders sent */
  int64_t escalated;               /* terms with at least one of them */
  int64_t escalated_renewed;       /*   of them: renewed */
  int64_t renewal_rate_bp;         /* renewed / terms */
  int64_t decided_renewal_rate_bp; /* renewed / (renewed + declined + lapsed) */
  int64_t response_rate_bp;        /* prompted / reminded */
  bool has_median;                 /* at least one renewal instant */
  int64_t median_days_x10;         /* median days before expiry at renewal, x10 */
};

/* A decline reason and how many declined terms gave it. */
struct report_reason {
  char *reason; /* "price", ..., "unspecified" */
  int64_t count;
};

/* One tier or one channel. */
struct report_touch {
  char *name;
  int64_t reached;          /* terms with a customer reminder sent here */
  int64_t sent;             /* customer reminders sent here */
  int64_t answers;          /* first answers triggered here */
  int64_t renewals;         /* renewals triggered here */
  int64_t owner_sent;       /* owner-audience reminders sent here (escalations) */
  int64_t attempted;        /* reminders of any audience with a delivery attempt: sent,
                               dead, or attempts > 0 */
  int64_t dead;             /* of them: dead letters */
  int64_t response_rate_bp; /* answers / reached */
  int64_t renewal_rate_bp;  /* renewals / reached */
  int64_t failure_rate_bp;  /* dead / attempted */
  int64_t lead_sum;         /* internal: sum of (expiry - sent_at) over sends, for ordering */
  int64_t lead_n;
};

/* One segment, owner or policy. name "(none)" for terms without one. */
struct report_group {
  char *name;
  struct report_funnel f;
};

/* One week (Monday 00:00 UTC) of expiries. */
struct report_week {
  int64_t start; /* UTC instant */
  int64_t terms, reminded, prompted, renewed;
  int64_t renewal_rate_bp;  /* renewed / terms */
  int64_t response_rate_bp; /* prompted / reminded */
};

struct report {
  int64_t from, until;  /* the period, [from, until) */
  int64_t generated_at; /* "now" given to the builder */
  enum report_by by;    /* the breakdown the table shows */
  struct report_funnel total;
  struct report_reason *reasons; /* by count descending, then name */
  size_t n_reasons;
  struct report_touch *tiers; /* earliest-sent first (by mean lead before expiry), then name */
  size_t n_tiers;
  struct report_touch *channels; /* by name */
  size_t n_channels;
  struct report_group *segments, *owners, *policies; /* by terms descending, then name */
  size_t n_segments, n_owners, n_policies;
  struct report_week *weeks; /* every week from the one holding from to the one before until */
  size_t n_weeks;
};

struct report_options {
  int64_t from, until; /* the period, [from, until); from < until */
  int64_t now;         /* recorded as generated_at */
  enum report_by by;
  /* The policy name of a segment (NULL segment = none), or NULL when unknown;
   * the returned string must live until report_builder_finish(). NULL
   * function = every term's policy is "(none)". */
  const char *(*policy_of)(const char *segment, void *ud);
  void *policy_ud;
};

struct report_builder;

/* Starts an aggregation. -EINVAL for a bad period, -ENOMEM. Caller frees *ret
 * with report_builder_free(). */
int report_builder_new(const struct report_options *o, struct report_builder **ret);
struct report_builder *report_builder_free(struct report_builder *b);
/* Adds one term (its rows are read, not kept). A term outside the period is
 * ignored. 0 or -ENOMEM/-EINVAL. */
int report_builder_add(struct report_builder *b, const struct store_report_term *t);
/* Computes the rates, medians and orderings. *ret is owned by the caller
 * (report_free()); the builder may then only be freed. */
int report_builder_finish(struct report_builder *b, struct report **ret);

/* Builds the report of the period from the store (one read snapshot). */
int report_compute(struct store *s, const struct report_options *o, struct report **ret);
struct report *report_free(struct report *r);
static inline void report_freep(struct report **r) {
  report_free(*r);
}

/* The groups the breakdown `by` lists (segments, owners or policies), or NULL
 * with *ret_n = 0 for tier/channel (use r->tiers / r->channels). */
const struct report_group *report_groups(const struct report *r, enum report_by by, size_t *ret_n);

/* ---- renderers: 0 or -EIO (write error) / -ENOMEM ------------------------ */

/* Aligned text for a terminal: the funnel, rates, escalations, decline
 * reasons, delivery by channel and the r->by breakdown. */
int report_render_table(const struct report *r, FILE *out);
/* One JSON object with every figure (see docs/report.md). */
int report_render_json(const struct report *r, FILE *out);
/* Long-format CSV "section,name,metric,value" with every figure. */
int report_render_csv(const struct report *r, FILE *out);
/* One self-contained HTML5 page (inline CSS and SVG, no scripts, no external
 * assets): the funnel chart, renewal rate by tier, channel and segment, the
 * weekly trend, and the same figures as tables (text alternatives). */
int report_render_html(const struct report *r, FILE *out);
/* The Content-Type of each rendering, for HTTP. */
#define REPORT_HTML_CONTENT_TYPE "text/html; charset=utf-8"
#define REPORT_JSON_CONTENT_TYPE "application/json"
#define REPORT_CSV_CONTENT_TYPE "text/csv; charset=utf-8"
