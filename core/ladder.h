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
  char **fallback;            /* Fallback=, channels tried when one goes dead */
  size_t n_fallback;
  enum audience audience;     /* Audience= */
  char *template_name;        /* Template=, defaults to the tier name */
  unsigned escalate_after;    /* EscalateAfter=: repeats before EscalateTo (0 = never) */
  char *escalate_to;          /* EscalateTo=: owner id of a manager, or NULL */
};

struct policy {
  char *name;               /* [Policy NAME] */
  char **segments;          /* Segments=, "*" = any segment not claimed elsewhere */
  size_t n_segments;
  enum catchup catchup;     /* CatchUp= */
  struct tier *tiers;       /* Tiers=, ordered by offset; owned copies */
  size_t n_tiers;
  char *fallback_owner;     /* FallbackOwner=: owner id when a contract has none */
  char *owner_window;       /* OwnerSendWindow=: [SendWindow NAME] for owners, NULL = default */
  int64_t callback_pause;   /* CallbackPause= seconds customer reminders pause after "call me" */
  int64_t lapse_grace;      /* LapseGrace= seconds after expiry before lapsed → closed */
};

void tier_done(struct tier *t);
struct policy *policy_free(struct policy *p);
/* Deep copy. Returns 0 or -ENOMEM. */
int policy_copy(const struct policy *src, struct policy **ret);

/* Serialises the parts of a policy that decide when and how reminders go out
 * (tiers, catch-up) to a stable one-line text, so a contract can keep the
 * ladder it started with across config reloads. Caller frees. */
char *ladder_serialize(const struct policy *p);
/* Parses ladder_serialize() output. Returns 0 or -EINVAL. Caller frees. */
int ladder_parse(const char *s, struct policy **ret);
