/* ladder: the reminder ladder types shared by config (which builds them),
 * the policy engine (which walks them) and the store (which snapshots the
 * ladder a contract started with, see ladder_serialize()).
 *
 * A policy serves segments and holds ordered tiers; a tier fires at an offset
 * relative to expiry, optionally repeats, on one or more channels, to the
 * customer or to the sales owner. Pure data plus (de)serialisation: no I/O. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cal.h"

enum audience {
  AUDIENCE_CUSTOMER,
  AUDIENCE_OWNER,
};

/* What to do with tiers whose instant passed while the daemon was down or
 * before the contract was imported. */
enum catchup {
  CATCHUP_LATEST, /* send only the most recent missed customer tier */
  CATCHUP_ALL,    /* send every missed tier, in order */
  CATCHUP_SKIP,   /* send none of the missed tiers */
};

struct tier {
  char *name;                 /* [Tier NAME] */
  struct cal_duration offset; /* relative to expiry, Offset= */
  char *repeat;               /* RRULE text (Repeat=) or NULL */
  struct cal_rrule *rrule;    /* parsed repeat, NULL when none; owned */
  char **channels;            /* Channels=, names of [Channel] sections; owned */
  size_t n_channels;
  char **fallback; /* Fallback=, channels tried when one goes dead */
  size_t n_fallback;
  enum audience audience;  /* Audience= */
  char *template_name;     /* Template=, defaults to the tier name */
  unsigned escalate_after; /* EscalateAfter=: repeats before EscalateTo (0 = never) */
  char *escalate_to;       /* EscalateTo=: owner id of a manager, or NULL */
};

struct policy {
  char *name;      /* [Policy NAME] */
  char **segments; /* Segments=, "*" = any segment not claimed elsewhere */
  size_t n_segments;
  enum catchup catchup; /* CatchUp= */
  struct tier *tiers;   /* Tiers=, ordered by offset; owned copies */
  size_t n_tiers;
  char *fallback_owner;   /* FallbackOwner=: owner id when a contract has none */
  char *owner_window;     /* OwnerSendWindow=: [SendWindow NAME] for owners, NULL = default */
  int64_t callback_pause; /* CallbackPause= seconds customer reminders pause after "call me" */
  int64_t lapse_grace;    /* LapseGrace= seconds after expiry before lapsed → closed */
};

/* Frees the fields of *t (not t itself) and zeroes it. Accepts a zeroed tier. */
void tier_done(struct tier *t);
/* Deep-copies src into the zeroed *dst (the RRULE is re-parsed from its text).
 * Returns 0, -ENOMEM or -EINVAL (bad repeat text); on failure *dst may be
 * half-filled and the caller runs tier_done(dst). */
int tier_copy(const struct tier *src, struct tier *dst);
/* Frees p, its tiers and strings. Accepts NULL; returns NULL. */
struct policy *policy_free(struct policy *p);
static inline void policy_freep(struct policy **p) {
  policy_free(*p);
}
/* Deep copy (the RRULEs are re-parsed from their text). Returns 0, -ENOMEM, or
 * -EINVAL when a tier's repeat text does not parse. Caller frees *ret with
 * policy_free(); *ret is untouched on failure. */
int policy_copy(const struct policy *src, struct policy **ret);

/* Orders two offsets by nominal length (a day counts 86400 s): <0, 0, >0 like
 * strcmp. Used to check that a policy's tiers ascend by offset. */
int ladder_offset_cmp(const struct cal_duration *a, const struct cal_duration *b);

/* Serialises the parts of a policy that decide when and how reminders go out
 * to a stable one-line text, so a contract can keep the ladder it started with
 * across config reloads: the policy name, catch-up, callback pause, lapse
 * grace, fallback owner, owner send window and every tier (name, offset,
 * repeat, channels, fallback, audience, template, escalation). Segments are
 * not part of it. Format (version 1), tokens separated by one space:
 *
 *   ladder/1 policy=standard catchup=latest callback-pause=604800 ...
 *            tier=notice offset=-P60D channels=email,sms audience=customer ...
 *
 * "tier=NAME" starts a tier; the keys after it belong to that tier. A key
 * whose field is NULL is left out. Values escape '%', ' ', ',' and control
 * bytes as %XX; lists are comma-separated. The same policy always gives the
 * same text. Returns NULL only on OOM (or p == NULL). Caller frees. */
char *ladder_serialize(const struct policy *p);
/* Parses ladder_serialize() output into a new policy (segments empty).
 * Returns 0, -ENOMEM, or -EINVAL on any syntax error, unknown or repeated key,
 * bad value or RRULE. Caller frees *ret with policy_free(). */
int ladder_parse(const char *s, struct policy **ret);
/* True when every field ladder_serialize() writes is equal in a and b
 * (segments and the parsed RRULE pointers are ignored). */
bool ladder_equal(const struct policy *a, const struct policy *b);
