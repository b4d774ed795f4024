/* policy: the pure policy engine (see policy.h for the ladder model and the
 * invariants of policy_next()).
 *
 * Rules applied to the first candidate occurrence (the first one after the
 * history high-water mark, in ladder order), first match wins:
 *  1. owner tier and (customer answered or state CALLBACK) -> SKIP "customer answered";
 *  2. tier offset negative and (now >= expires_at or state LAPSED)
 *     -> SKIP "expired" (no "expires in N days" after the fact);
 *  3. SNOOZED/CALLBACK and customer tier with raw < state_until -> held back:
 *     the wake-up transition comes first;
 *  4. SNOOZED, owner tier, due < state_until -> SKIP "snoozed" (a snooze
 *     pauses escalation too; only reached when no answer is recorded, e.g. an
 *     operator snoozed the contract);
 *  5. missed (due < now - catchup_grace):
 *       CatchUp=all    -> REMIND, catch_up, due at the next window instant from now;
 *       CatchUp=skip   -> SKIP "catch-up: skip";
 *       CatchUp=latest -> SKIP "catch-up: superseded" when a later occurrence of
 *                         the same audience is missed too (and not skipped as
 *                         expired), else REMIND as for all;
 *  6. otherwise REMIND at its due instant;
 *  7. a REMIND takes along the following occurrences of its tier that would
 *     go out at the same instant (merge_same_instant()): one message per
 *     contract, tier and instant, the row named by the last of them.
 * The state transitions compete with that action by time (ties: transition):
 *  ACTIVE/REMINDING -> LAPSED at expires_at; LAPSED -> CLOSED at
 *  expires_at + lapse_grace; SNOOZED/CALLBACK -> REMINDING at state_until.
 *  RENEWED/DECLINED/CLOSED -> DONE.
 *
 * Cost: the zone arithmetic is lazy. Tier instants are computed on first use
 * (a bitmask marks which are known), the recurrence of a tier is expanded only
 * as far as the step asked for (doubling on demand), tiers before the
 * high-water mark are never expanded, and a due instant (a window lookup) is
 * computed only for the occurrences actually examined. All on the stack. */
#include <errno.h>
#include <string.h>

#include "core/policy.h"
#include "core/util.h"

/* One occurrence of the ladder. */
struct occ {
  size_t tier;
  int32_t step;
  int64_t raw; /* instant before the send window */
  int64_t due; /* instant inside the audience's window; valid when has_due */
  bool has_due;
};

/* Lazy view of the ladder for one input. */
struct walk {
  const struct policy_input *in;
  uint64_t raw0_known;                 /* bit i: raw0[i] computed */
  int64_t raw0[POLICY_MAX_TIERS];      /* tier instants */
  size_t occ_tier;                     /* tier whose repeats are in occ, SIZE_MAX = none */
  size_t n_occ;                        /* valid entries in occ */
  bool occ_complete;                   /* occ holds every occurrence of occ_tier */
  int64_t occ[POLICY_MAX_OCCURRENCES]; /* occ[k] = instant of step k */
};

static int64_t sub_sat(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_sub_overflow(a, b, &r))
    return b > 0 ? INT64_MIN : INT64_MAX;
  return r;
}

static int64_t add_sat(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r))
    return b > 0 ? INT64_MAX : INT64_MIN;
  return r;
}

static void walk_init(struct walk *w, const struct policy_input *in) {
  w->in = in;
  w->raw0_known = 0;
  w->occ_tier = SIZE_MAX;
  w->n_occ = 0;
  w->occ_complete = false;
}

static int64_t walk_raw0(struct walk *w, size_t i) {
  if (!(w->raw0_known & (UINT64_C(1) << i))) {
    w->raw0[i] =
        cal_add_duration(w->in->customer_zone, w->in->expires_at, &w->in->policy->tiers[i].offset);
    w->raw0_known |= UINT64_C(1) << i;
  }
  return w->raw0[i];
}

/* The instant repeats of tier i must stay below: the raw0 of the next tier
 * with a later instant (tiers sharing an instant, e.g. a customer notice and an
 * owner notice at the same offset, do not cut each other's repeats). */
static int64_t walk_limit(struct walk *w, size_t i) {
  int64_t r0 = walk_raw0(w, i);
  for (size_t j = i + 1; j < w->in->policy->n_tiers; j++) {
    int64_t r = walk_raw0(w, j);
    if (r > r0)
      return r;
  }
  return TIME_NEVER;
}

/* Makes sure occ holds step `step` of tier i if it exists. Returns whether it
 * exists. Only for tiers with a repeat rule and step >= 1. */
static bool walk_load(struct walk *w, size_t i, int32_t step) {
  if (step >= POLICY_MAX_OCCURRENCES)
    return false;
  if (w->occ_tier == i && ((size_t)step < w->n_occ || w->occ_complete))
    return (size_t)step < w->n_occ;

  size_t want = w->occ_tier == i ? 2 * w->n_occ : 4;
  want = MAX(want, (size_t)step + 2);
  want = MIN(want, (size_t)POLICY_MAX_OCCURRENCES);
  const struct tier *t = &w->in->policy->tiers[i];
  int64_t r0 = walk_raw0(w, i);
  size_t n = cal_rrule_expand(t->rrule, w->in->customer_zone, r0, walk_limit(w, i), w->occ, want);
  if (n == 0) { /* dtstart at or after the limit: keep step 0 only */
    w->occ[0] = r0;
    n = 1;
  }
  w->occ_tier = i;
  w->n_occ = n;
  w->occ_complete = n < want || want == POLICY_MAX_OCCURRENCES;
  return (size_t)step < n;
}

/* Finds the first occurrence at or after (tier, step) in ladder order. Returns
 * false when the ladder is exhausted. */
static bool walk_seek(struct walk *w, size_t tier, int32_t step, struct occ *ret) {
  const struct policy *p = w->in->policy;
  for (; tier < p->n_tiers; tier++, step = 0) {
    int64_t raw;
    if (step <= 0)
      raw = walk_raw0(w, tier);
    else if (!p->tiers[tier].rrule || !walk_load(w, tier, step))
      continue;
    else
      raw = w->occ[step];
    *ret = (struct occ){.tier = tier, .step = MAX(step, 0), .raw = raw};
    return true;
  }
  return false;
}

static bool walk_next(struct walk *w, struct occ *o) {
  return walk_seek(w, o->tier, o->step + 1, o);
}

static enum audience occ_audience(const struct walk *w, const struct occ *o) {
  return w->in->policy->tiers[o->tier].audience;
}

/* The zone an occurrence's recipient lives in: the customer's, the owner's,
 * or, for the steps of an escalating tier at or after EscalateAfter=, the
 * EscalateTo= person's. */
static const struct cal_zone *occ_zone(const struct policy_input *in, const struct occ *o) {
  const struct tier *t = &in->policy->tiers[o->tier];
  if (t->audience != AUDIENCE_OWNER)
    return in->customer_zone;
  if (in->escalate_zones && in->escalate_zones[o->tier] && t->escalate_to &&
      t->escalate_after > 0 && o->step >= (int32_t)t->escalate_after)
    return in->escalate_zones[o->tier];
  return in->owner_zone ? in->owner_zone : in->customer_zone;
}

/* The first instant >= t inside the window of o's recipient. */
static int64_t window_next(const struct policy_input *in, const struct occ *o, int64_t t) {
  enum audience a = in->policy->tiers[o->tier].audience;
  const struct cal_window *win = a == AUDIENCE_OWNER ? in->owner_window : in->customer_window;
  if (!win)
    return t;
  return cal_window_next(win, occ_zone(in, o), t);
}

static int64_t occ_due(struct walk *w, struct occ *o) {
  if (!o->has_due) {
    o->due = window_next(w->in, o, o->raw);
    o->has_due = true;
  }
  return o->due;
}

static bool state_paused(enum contract_state s) {
  return s == CONTRACT_SNOOZED || s == CONTRACT_CALLBACK;
}

static bool tier_negative(const struct tier *t) {
  return t->offset.negative && (t->offset.days > 0 || t->offset.seconds > 0);
}

/* Rule 2: a "your contract expires in N days" occurrence after expiry. */
static bool occ_expired(const struct walk *w, const struct occ *o) {
  const struct policy_input *in = w->in;
  return tier_negative(&in->policy->tiers[o->tier]) &&
         (in->now >= in->expires_at || in->state == CONTRACT_LAPSED);
}

/* CatchUp=latest: whether a later occurrence of o's audience is missed too
 * (one that would be sent, i.e. not skipped as expired). Due instants of one
 * audience grow along the ladder, so the scan stops at the first one that is
 * not missed. */
static bool occ_superseded(struct walk *w, const struct occ *o, int64_t missed_before) {
  enum audience a = occ_audience(w, o);
  struct occ d = *o;
  while (walk_next(w, &d)) {
    if (occ_audience(w, &d) != a || occ_expired(w, &d))
      continue;
    if (occ_due(w, &d) >= missed_before)
      return false;
    return true;
  }
  return false;
}

static void action_occ(struct policy_action *a, enum policy_action_kind kind, const struct walk *w,
                       const struct occ *o, int64_t due_at, const char *reason) {
  *a = (struct policy_action){
      .kind = kind,
      .due_at = due_at,
      .tier = o->tier,
      .step = o->step,
      .audience = occ_audience(w, o),
      .raw_at = o->raw,
      .merged = 1,
      .reason = reason,
  };
}

/* The instant occurrence d would go out at if it were the candidate: its due
 * instant, or for a missed one the next window instant from now (CatchUp=all
 * and latest); TIME_NEVER when it would not be sent (CatchUp=skip). */
static int64_t occ_send_at(struct walk *w, struct occ *d, int64_t missed_before) {
  int64_t due = occ_due(w, d);
  if (due >= missed_before)
    return due;
  return w->in->policy->catchup == CATCHUP_SKIP ? TIME_NEVER : window_next(w->in, d, w->in->now);
}

/* Rule 7: the later occurrences of a's tier that would go out at a's instant
 * are folded into a: those the send window moved onto the same instant (a
 * weekend's repeats waiting for Monday morning, a catch-up sending several at
 * once), and those due before it in another zone (an escalation step in its
 * EscalateTo= person's zone), which ladder order would send right after a.
 * a names the last of them, so the history moves past all and one message
 * goes out; a->merged counts them. */
static void merge_same_instant(struct walk *w, const struct occ *o, int64_t missed_before,
                               struct policy_action *a) {
  struct occ d = *o;
  while (walk_next(w, &d) && d.tier == o->tier && occ_send_at(w, &d, missed_before) <= a->due_at) {
    a->step = d.step;
    a->raw_at = d.raw;
    a->merged++;
  }
}

/* Decides what to do with the first candidate o. Returns false when o is held
 * back by a pause (then only the wake-up transition applies). */
static bool decide(struct walk *w, struct occ *o, struct policy_action *a) {
  const struct policy_input *in = w->in;
  enum audience aud = occ_audience(w, o);

  if (aud == AUDIENCE_OWNER && (in->customer_answered || in->state == CONTRACT_CALLBACK)) {
    action_occ(a, POLICY_SKIP, w, o, in->now, POLICY_REASON_ANSWERED);
    return true;
  }
  if (occ_expired(w, o)) {
    action_occ(a, POLICY_SKIP, w, o, in->now, POLICY_REASON_EXPIRED);
    return true;
  }
  if (state_paused(in->state) && aud == AUDIENCE_CUSTOMER && o->raw < in->state_until)
    return false;
  int64_t due = occ_due(w, o);
  if (in->state == CONTRACT_SNOOZED && aud == AUDIENCE_OWNER && due < in->state_until) {
    action_occ(a, POLICY_SKIP, w, o, in->now, POLICY_REASON_SNOOZED);
    return true;
  }

  int64_t missed_before = sub_sat(in->now, in->catchup_grace);
  if (due >= missed_before) {
    action_occ(a, POLICY_REMIND, w, o, due, NULL);
    merge_same_instant(w, o, missed_before, a);
    return true;
  }
  if (in->policy->catchup == CATCHUP_SKIP) {
    action_occ(a, POLICY_SKIP, w, o, in->now, POLICY_REASON_CATCHUP_SKIP);
    return true;
  }
  if (in->policy->catchup == CATCHUP_LATEST) {
    struct occ copy = *o;
    if (occ_superseded(w, &copy, missed_before)) {
      action_occ(a, POLICY_SKIP, w, o, in->now, POLICY_REASON_SUPERSEDED);
      return true;
    }
  }
  action_occ(a, POLICY_REMIND, w, o, window_next(in, o, in->now), NULL);
  a->catch_up = true;
  merge_same_instant(w, o, missed_before, a);
  return true;
}

static int input_check(const struct policy_input *in) {
  if (!in || !in->policy || !in->customer_zone)
    return -EINVAL;
  if (in->policy->n_tiers > POLICY_MAX_TIERS || (in->policy->n_tiers > 0 && !in->policy->tiers))
    return -EINVAL;
  if (in->n_sent > 0 && !in->sent)
    return -EINVAL;
  if (in->catchup_grace < 0 || (unsigned)in->state >= _CONTRACT_STATE_MAX)
    return -EINVAL;
  for (size_t i = 0; i < in->policy->n_tiers; i++) {
    const struct tier *t = &in->policy->tiers[i];
    if (!t->name || (unsigned)t->audience > AUDIENCE_OWNER)
      return -EINVAL;
  }
  return 0;
}

/* The history high-water mark: the last (tier, step) in ladder order with a
 * row. Returns false when no row names a tier of the policy. */
static bool history_mark(const struct policy_input *in, size_t *ret_tier, int32_t *ret_step) {
  const struct policy *p = in->policy;
  bool found = false;
  size_t ht = 0;
  int32_t hs = 0;
  for (size_t k = 0; k < in->n_sent; k++) {
    const struct policy_sent *s = &in->sent[k];
    if (!s->tier)
      continue;
    for (size_t i = p->n_tiers; i-- > 0;) { /* from the end: a later match wins */
      if (s->tier != p->tiers[i].name && !streq(s->tier, p->tiers[i].name))
        continue;
      int32_t st = MAX(s->step, 0);
      if (!found || i > ht || (i == ht && st > hs)) {
        ht = i;
        hs = st;
        found = true;
      }
      break;
    }
  }
  *ret_tier = ht;
  *ret_step = hs;
  return found;
}

int policy_next(const struct policy_input *in, struct policy_action *ret) {
  int r;
  if (!ret)
    return -EINVAL;
  r = input_check(in);
  if (r < 0)
    return r;

  struct policy_action trans = {.kind = POLICY_DONE, .due_at = TIME_NEVER, .step = -1};
  switch (in->state) {
  case CONTRACT_RENEWED:
  case CONTRACT_DECLINED:
  case CONTRACT_CLOSED:
  default:
    *ret = trans;
    return 0;
  case CONTRACT_ACTIVE:
  case CONTRACT_REMINDING:
    trans.new_state = CONTRACT_LAPSED;
    trans.due_at = in->expires_at;
    break;
  case CONTRACT_LAPSED:
    trans.new_state = CONTRACT_CLOSED;
    trans.due_at = add_sat(in->expires_at, MAX(in->policy->lapse_grace, 0));
    break;
  case CONTRACT_SNOOZED:
  case CONTRACT_CALLBACK:
    trans.new_state = CONTRACT_REMINDING;
    trans.due_at = in->state_until;
    break;
  }
  trans.kind = POLICY_TRANSITION;

  struct walk w;
  walk_init(&w, in);
  size_t ht;
  int32_t hs;
  struct occ c;
  bool have;
  if (history_mark(in, &ht, &hs))
    have = walk_seek(&w, ht, hs + 1, &c);
  else
    have = walk_seek(&w, 0, 0, &c);

  struct policy_action act;
  if (have && decide(&w, &c, &act) && act.due_at < trans.due_at) {
    *ret = act;
    return 0;
  }
  *ret = trans;
  return 0;
}

int policy_plan(const struct policy_input *in, int64_t from, int64_t until,
                int (*cb)(size_t tier, int32_t step, int64_t raw_at, int64_t due_at, void *ud),
                void *ud) {
  int r;
  if (!cb)
    return -EINVAL;
  r = input_check(in);
  if (r < 0)
    return r;

  /* rule 7 as policy_next() applies it: of the occurrences of one tier due
   * at one instant, only the last is reported */
  struct walk w;
  walk_init(&w, in);
  struct occ o;
  int n = 0;
  for (bool have = walk_seek(&w, 0, 0, &o); have;) {
    int64_t due = occ_due(&w, &o);
    struct occ next = o;
    have = walk_next(&w, &next);
    if (have && next.tier == o.tier && occ_due(&w, &next) == due) {
      o = next;
      continue;
    }
    if (due >= from && due < until) {
      r = cb(o.tier, o.step, o.raw, due, ud);
      if (r < 0)
        return r;
      n++;
    }
    o = next;
  }
  return n;
}

const char *policy_action_kind_to_string(enum policy_action_kind k) {
  static const char *const names[] = {
      [POLICY_DONE] = "done",
      [POLICY_REMIND] = "remind",
      [POLICY_SKIP] = "skip",
      [POLICY_TRANSITION] = "transition",
  };
  if ((unsigned)k >= ELEMENTSOF(names))
    return NULL;
  return names[k];
}
