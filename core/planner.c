/* planner: one contract from the store through the policy engine (see
 * planner.h for the contract and the invariants).
 *
 * Loading (planner_build_input) reads the contract, its customer, the sales
 * owner owner tiers go to, the policy (ladder snapshot or the config's policy
 * for the segment) and the reminder rows and answers of the current term.
 * Applying (planner_plan_contract) loops policy_next() until the next action
 * lies in the future: each REMIND/SKIP becomes one outbox row per channel,
 * each TRANSITION a state change, all in the caller's transaction.
 * Simulating (planner_simulate) runs the same loop on an in-memory copy of
 * the history and never writes. */
#include "core/planner.h"

#include <inttypes.h>

#include "core/util.h"

/* policy_next() steps applied per planner_plan_contract() call before giving
 * up for now (a ladder cannot have more due at one instant than this). */
#define PLAN_GUARD (4 * POLICY_MAX_OCCURRENCES)
/* ... and per planner_simulate() call (a whole ladder plus transitions). */
#define SIMULATE_GUARD (POLICY_MAX_TIERS * POLICY_MAX_OCCURRENCES + 16)

/* ---- ladder snapshot cache ------------------------------------------------- */

struct ladder_entry {
  int64_t id;
  struct policy *policy; /* parsed snapshot; owned */
};

struct planner_ladders {
  struct ladder_entry *v; /* owned */
  size_t n;
};

int planner_ladders_new(struct planner_ladders **ret) {
  if (!ret)
    return -EINVAL;
  struct planner_ladders *l = calloc(1, sizeof *l);
  if (!l)
    return -ENOMEM;
  *ret = l;
  return 0;
}

struct planner_ladders *planner_ladders_free(struct planner_ladders *l) {
  if (!l)
    return NULL;
  for (size_t k = 0; k < l->n; k++)
    policy_free(l->v[k].policy);
  free(l->v);
  free(l);
  return NULL;
}

/* Parses snapshot id from the store. Caller frees. */
static int ladder_load(struct store *store, int64_t id, struct policy **ret) {
  _cleanup_free_ char *text = NULL;
  int r = store_ladder_get(store, id, &text);
  if (r < 0)
    return r;
  return ladder_parse(text, ret);
}

const struct policy *planner_ladders_get(struct planner_ladders *l, struct store *store,
                                         int64_t id) {
  if (!l || !store)
    return NULL;
  for (size_t k = 0; k < l->n; k++)
    if (l->v[k].id == id)
      return l->v[k].policy;
  struct policy *p = NULL;
  if (ladder_load(store, id, &p) < 0)
    return NULL;
  struct ladder_entry *v = realloc(l->v, (l->n + 1) * sizeof *v);
  if (!v) {
    policy_free(p);
    return NULL;
  }
  l->v = v;
  l->v[l->n++] = (struct ladder_entry){.id = id, .policy = p};
  return p;
}

/* ---- loading ---------------------------------------------------------------- */

int planner_contract_add_sent(struct planner_contract *pc, const char *tier, int32_t step) {
  if (pc->n_sent == pc->cap_sent) {
    size_t cap = pc->cap_sent ? pc->cap_sent * 2 : 16;
    struct policy_sent *v = realloc(pc->sent, cap * sizeof *v);
    if (!v)
      return -ENOMEM;
    pc->sent = v;
    pc->cap_sent = cap;
  }
  char *t = strdup(tier ? tier : "");
  if (!t)
    return -ENOMEM;
  pc->sent[pc->n_sent++] = (struct policy_sent){.tier = t, .step = step};
  pc->in.sent = pc->sent;
  pc->in.n_sent = pc->n_sent;
  return 0;
}

void planner_contract_done(struct planner_contract *pc) {
  if (!pc)
    return;
  for (size_t k = 0; k < pc->n_sent; k++)
    free((char *)pc->sent[k].tier);
  free(pc->sent);
  contract_clear(&pc->c);
  customer_clear(&pc->cu);
  owner_clear(&pc->owner);
  policy_free(pc->own_policy);
  *pc = (struct planner_contract){0};
}

static int history_reminder_cb(const struct reminder *r, void *ud) {
  return planner_contract_add_sent(ud, r->tier, r->step);
}

/* Answers that count as "the customer answered" (escalations stop). Opt-outs
 * and help requests do not, nor do notes an owner recorded. */
static bool response_is_answer(const struct response *r) {
  static const char *const not_answers[] = {"unsubscribed", "resubscribed", "help", "optout",
                                            "optin"};
  if (streq_ptr(r->source, "owner"))
    return false;
  for (size_t k = 0; k < ELEMENTSOF(not_answers); k++)
    if (streq_ptr(r->kind, not_answers[k]))
      return false;
  return true;
}

static int history_response_cb(const struct response *r, void *ud) {
  struct planner_contract *pc = ud;
  if (response_is_answer(r))
    pc->answered = true;
  return 0;
}

/* Looks up owner id; when it is missing, the policy's fallback owner (unless id
 * is that one). -ENOENT when neither exists. */
static int owner_or_fallback(const struct planner_env *env, const struct policy *p, const char *id,
                             struct owner *ret) {
  const char *fallback = p ? p->fallback_owner : NULL;
  if (isempty(id))
    id = fallback;
  if (isempty(id))
    return -ENOENT;
  int r = store_owner_get(env->store, id, ret);
  if (r == -ENOENT && !isempty(fallback) && !streq(id, fallback))
    r = store_owner_get(env->store, fallback, ret);
  return r;
}

static const struct cal_zone *zone_or_default(const struct planner_env *env, const char *tz) {
  const struct cal_zone *z = NULL;
  if (!isempty(tz))
    z = cal_zone(env->cal, tz);
  if (!z)
    z = cal_zone(env->cal, !isempty(env->default_tz) ? env->default_tz : "UTC");
  if (!z)
    z = cal_zone(env->cal, "UTC");
  return z;
}

/* Points pc->in at pc's current state for now. */
static void refresh_input(const struct planner_env *env, struct planner_contract *pc, int64_t now) {
  pc->in = (struct policy_input){
      .policy = pc->policy,
      .expires_at = pc->c.expires_at,
      .state = pc->c.state,
      .state_until = pc->c.state_until,
      .customer_zone = pc->customer_zone,
      .customer_window = pc->customer_window,
      .owner_zone = pc->owner_zone,
      .owner_window = pc->owner_window,
      .escalate_zones = pc->escalate_zones,
      .sent = pc->sent,
      .n_sent = pc->n_sent,
      .customer_answered = pc->answered,
      .now = now,
      .catchup_grace = env->catchup_grace,
  };
}

static bool env_valid(const struct planner_env *env) {
  return env && env->store && env->cal && env->policy_for_segment && env->window && env->channel &&
         env->catchup_grace >= 0;
}

int planner_build_input(const struct planner_env *env, int64_t rowid, int64_t now,
                        struct planner_contract *ret) {
  if (!env_valid(env) || !ret)
    return -EINVAL;
  struct planner_contract *pc = ret;
  *pc = (struct planner_contract){0};
  int r = store_contract_get_by_rowid(env->store, rowid, &pc->c);
  if (r < 0)
    return r;
  if (!isempty(pc->c.customer_id)) {
    r = store_customer_get(env->store, pc->c.customer_id, &pc->cu);
    if (r >= 0)
      pc->have_customer = true;
    else if (r != -ENOENT)
      return r;
  }

  if (pc->c.ladder_id != 0) {
    if (env->ladders)
      pc->policy = planner_ladders_get(env->ladders, env->store, pc->c.ladder_id);
    else if (ladder_load(env->store, pc->c.ladder_id, &pc->own_policy) >= 0)
      pc->policy = pc->own_policy;
    pc->from_snapshot = pc->policy != NULL;
  }
  if (!pc->policy)
    pc->policy = env->policy_for_segment(env->ud, pc->have_customer ? pc->cu.segment : NULL);
  if (!pc->policy)
    return 0;

  r = store_reminder_foreach_contract(env->store, pc->c.id, pc->c.term, history_reminder_cb, pc);
  if (r < 0)
    return r;
  r = store_response_foreach_contract(env->store, pc->c.id, pc->c.term, history_response_cb, pc);
  if (r < 0)
    return r;

  /* The owner's zone is the zone of the owner escalations go to: the
   * customer's owner, else the fallback owner (also when the customer names
   * an owner that is not in the store). */
  r = owner_or_fallback(env, pc->policy, pc->have_customer ? pc->cu.owner_id : NULL, &pc->owner);
  if (r >= 0)
    pc->have_owner = true;
  else if (r != -ENOENT)
    return r;
  if (pc->have_owner && !isempty(pc->owner.tz))
    pc->owner_zone = cal_zone(env->cal, pc->owner.tz);
  pc->customer_zone = zone_or_default(env, pc->have_customer ? pc->cu.tz : NULL);
  if (!pc->customer_zone)
    return -ENOMEM; /* not even UTC could be loaded */
  pc->customer_window = env->window(env->ud, NULL);
  pc->owner_window = env->window(env->ud, pc->policy->owner_window);
  /* Escalations that go up a level are sent in the hours of the person they go to. */
  for (size_t t = 0; t < pc->policy->n_tiers && t < POLICY_MAX_TIERS; t++) {
    const struct tier *tier = &pc->policy->tiers[t];
    if (tier->audience != AUDIENCE_OWNER || isempty(tier->escalate_to))
      continue;
    struct owner boss = {0};
    r = store_owner_get(env->store, tier->escalate_to, &boss);
    if (r >= 0 && !isempty(boss.tz))
      pc->escalate_zones[t] = cal_zone(env->cal, boss.tz);
    owner_clear(&boss);
    if (r < 0 && r != -ENOENT)
      return r;
  }
  refresh_input(env, pc, now);
  return 0;
}

/* ---- recipients ------------------------------------------------------------- */

void planner_target_done(struct planner_target *t) {
  if (!t)
    return;
  free(t->recipient);
  free(t->owner_id);
  *t = (struct planner_target){0};
}

int planner_resolve(const struct planner_env *env, const struct planner_contract *pc, size_t tier,
                    int32_t step, const char *channel, struct planner_target *ret) {
  if (!env_valid(env) || !pc || !pc->policy || tier >= pc->policy->n_tiers || !ret)
    return -EINVAL;
  const struct tier *t = &pc->policy->tiers[tier];
  struct planner_target out = {.audience = t->audience == AUDIENCE_OWNER ? "owner" : "customer"};
  struct planner_channel ch = {0};
  const char *to = NULL;
  struct owner esc = {0};
  int r;

  if (env->channel(env->ud, channel, &ch) < 0) {
    out.skip_reason = "channel not configured";
    goto done;
  }
  out.kind = ch.kind;
  if (t->audience == AUDIENCE_CUSTOMER) {
    if (pc->have_customer && (pc->cu.optout & ch.optout)) {
      out.skip_reason = "customer opted out of this channel";
      goto done;
    }
    to = ch.kind == PLANNER_ADDR_EMAIL   ? (pc->have_customer ? pc->cu.email : NULL)
         : ch.kind == PLANNER_ADDR_PHONE ? (pc->have_customer ? pc->cu.phone : NULL)
                                         : ch.url;
    if (isempty(to))
      out.skip_reason = ch.kind == PLANNER_ADDR_PHONE   ? "no phone number"
                        : ch.kind == PLANNER_ADDR_EMAIL ? "no email address"
                                                        : "no URL";
    goto done;
  }

  /* Owner tier: EscalateTo= once the tier repeated EscalateAfter= times, else
   * the customer's owner; the fallback owner when the named one is missing. */
  const struct owner *o = pc->have_owner ? &pc->owner : NULL;
  if (t->escalate_to && t->escalate_after > 0 && step >= (int32_t)t->escalate_after) {
    r = owner_or_fallback(env, pc->policy, t->escalate_to, &esc);
    if (r < 0 && r != -ENOENT)
      return r;
    o = r >= 0 ? &esc : NULL;
  }
  if (!o) {
    out.skip_reason = "no sales owner";
    goto done;
  }
  out.owner_id = strdup_or_null(o->id);
  if (o->id && !out.owner_id)
    goto oom;
  to = ch.kind == PLANNER_ADDR_EMAIL   ? o->email
       : ch.kind == PLANNER_ADDR_PHONE ? o->phone
       : !isempty(o->webhook)          ? o->webhook
                                       : ch.url;
  if (isempty(to))
    out.skip_reason = "sales owner has no address for this channel";

done:
  if (!out.skip_reason && !(out.recipient = strdup(to)))
    goto oom;
  owner_clear(&esc);
  *ret = out;
  return 0;
oom:
  owner_clear(&esc);
  planner_target_done(&out);
  return -ENOMEM;
}

/* ---- applying ----------------------------------------------------------------- */

static void report(const struct planner_env *env, const struct planner_event *ev) {
  if (env->report)
    env->report(env->report_ud, ev);
}

static const char *transition_event(enum contract_state to) {
  switch (to) {
  case CONTRACT_LAPSED:
    return "contract.lapsed";
  case CONTRACT_CLOSED:
    return "contract.closed";
  case CONTRACT_REMINDING:
    return "contract.resumed";
  default:
    return "contract.state";
  }
}

/* Enters the ladder: snapshots the policy so later reloads do not change a
 * ladder in progress. */
static int enter_ladder(const struct planner_env *env, struct planner_contract *pc, int64_t now) {
  if (pc->c.ladder_id != 0)
    return 0;
  _cleanup_free_ char *text = ladder_serialize(pc->policy);
  if (!text)
    return -ENOMEM;
  int64_t id;
  int r = store_ladder_intern(env->store, text, &id);
  if (r < 0)
    return r;
  pc->c.ladder_id = id;
  pc->from_snapshot = true; /* the policy is now also the contract's snapshot */
  if (pc->c.state == CONTRACT_ACTIVE)
    pc->c.state = CONTRACT_REMINDING;
  return store_contract_set_state(env->store, &pc->c, "contract.ladder", pc->policy->name, now);
}

/* Inserts one outbox row per channel of the tier occurrence: pending, or
 * skipped with the reason (the policy's, or why the channel cannot reach the
 * recipient). */
static int record_occurrence(const struct planner_env *env, struct planner_contract *pc,
                             const struct policy_action *a, int64_t now) {
  const struct tier *t = &pc->policy->tiers[a->tier];
  const char *audience = t->audience == AUDIENCE_OWNER ? "owner" : "customer";

  for (size_t k = 0; k < t->n_channels; k++) {
    const char *chname = t->channels[k];
    struct planner_target tg = {0};
    const char *why = a->kind == POLICY_SKIP ? a->reason : NULL;
    if (!why) {
      int r = planner_resolve(env, pc, a->tier, a->step, chname, &tg);
      if (r < 0)
        return r;
      why = tg.skip_reason;
    }
    struct reminder row = {
        .contract_rowid = pc->c.rowid,
        .contract_id = pc->c.id,
        .term = pc->c.term,
        .tier = t->name,
        .step = a->step,
        .channel = (char *)chname,
        .audience = (char *)audience,
        .recipient = why ? NULL : tg.recipient,
        .due_at = now,
        .status = why ? REMINDER_SKIPPED : REMINDER_PENDING,
        .last_error = (char *)why,
    };
    int64_t id = 0;
    int r = store_reminder_insert(env->store, &row, now, &id);
    if (r == -EEXIST) { /* intent already recorded (re-plan after a crash or change) */
      planner_target_done(&tg);
      continue;
    }
    if (r < 0) {
      planner_target_done(&tg);
      return r;
    }
    char to[320]; /* the event is for logs: a webhook URL shows scheme and host only */
    report(env,
           &(struct planner_event){
               .kind = why ? PLANNER_EVENT_SKIPPED : PLANNER_EVENT_REMINDER,
               .contract_id = pc->c.id,
               .tier = t->name,
               .step = a->step,
               .channel = chname,
               .audience = audience,
               .recipient = why || !tg.recipient ? NULL : url_redact(tg.recipient, to, sizeof to),
               .reason = why,
               .reminder_id = id,
               .catch_up = a->catch_up,
           });
    planner_target_done(&tg);
  }
  return 0;
}

int planner_plan_contract(const struct planner_env *env, int64_t rowid, int64_t now,
                          int64_t *ret_next_due, bool *ret_in_ladder) {
  if (!env_valid(env))
    return -EINVAL;
  struct planner_contract pc = {0};
  int64_t next_due = TIME_NEVER;
  int r = planner_build_input(env, rowid, now, &pc);
  if (r == -ENOENT && pc.c.id == NULL) { /* the contract itself is gone */
    planner_contract_done(&pc);
    if (ret_next_due)
      *ret_next_due = TIME_NEVER;
    if (ret_in_ladder)
      *ret_in_ladder = false;
    return 0;
  }
  if (r < 0)
    goto finish;
  if (!pc.policy) {
    report(env, &(struct planner_event){
                    .kind = PLANNER_EVENT_NO_POLICY,
                    .contract_id = pc.c.id,
                    .reason = pc.have_customer && pc.cu.segment ? pc.cu.segment : "",
                });
    r = 1;
    goto finish;
  }

  bool settled = false;
  for (unsigned guard = 0; guard < PLAN_GUARD; guard++) {
    refresh_input(env, &pc, now);
    struct policy_action a;
    r = policy_next(&pc.in, &a);
    if (r < 0) {
      /* A permanent problem of this contract's data: report it and leave the
       * contract alone rather than failing (and retrying) the whole batch. */
      report(env, &(struct planner_event){
                      .kind = PLANNER_EVENT_REFUSED, .contract_id = pc.c.id, .error = r});
      settled = true;
      break;
    }
    if (a.kind == POLICY_DONE) {
      settled = true;
      break;
    }
    if (a.due_at > now) {
      next_due = a.due_at;
      settled = true;
      break;
    }
    if (a.kind == POLICY_TRANSITION) {
      enum contract_state from = pc.c.state;
      pc.c.state = a.new_state;
      if (a.new_state == CONTRACT_REMINDING)
        pc.c.state_until = 0;
      r = store_contract_set_state(env->store, &pc.c, transition_event(a.new_state),
                                   contract_state_to_string(from), now);
      if (r < 0)
        goto finish;
      report(env, &(struct planner_event){.kind = PLANNER_EVENT_TRANSITION,
                                          .contract_id = pc.c.id,
                                          .from = from,
                                          .to = a.new_state});
      continue;
    }
    /* REMIND or SKIP */
    r = enter_ladder(env, &pc, now);
    if (r < 0)
      goto finish;
    r = record_occurrence(env, &pc, &a, now);
    if (r < 0)
      goto finish;
    r = planner_contract_add_sent(&pc, pc.policy->tiers[a.tier].name, a.step);
    if (r < 0)
      goto finish;
  }
  if (!settled)
    next_due = now; /* more due than one call applies: continue on the next run */

  int64_t stored = next_due == TIME_NEVER ? 0 : next_due;
  if (stored != pc.c.next_due_at) {
    r = store_contract_set_next_due(env->store, pc.c.rowid, stored);
    if (r < 0)
      goto finish;
  }
  r = 1;
finish:
  if (r >= 0 && ret_next_due)
    *ret_next_due = next_due;
  if (r >= 0 && ret_in_ladder)
    *ret_in_ladder = pc.from_snapshot;
  planner_contract_done(&pc);
  return r;
}

/* ---- dry run ------------------------------------------------------------------ */

int planner_simulate(
    const struct planner_env *env, struct planner_contract *pc, int64_t now, int64_t until,
    int (*cb)(struct planner_contract *pc, const struct policy_action *a, void *ud), void *ud) {
  if (!env_valid(env) || !pc || !cb)
    return -EINVAL;
  if (!pc->policy)
    return 0;
  int n = 0, r;
  int64_t t = now;
  for (unsigned guard = 0; guard < SIMULATE_GUARD; guard++) {
    refresh_input(env, pc, t);
    struct policy_action a;
    r = policy_next(&pc->in, &a);
    if (r < 0)
      return r;
    if (a.kind == POLICY_DONE)
      break;
    if (a.due_at > t) {
      if (a.due_at >= until)
        break;
      t = a.due_at; /* the daemon wakes up then and asks again */
      continue;
    }
    if (t >= until)
      break;
    r = cb(pc, &a, ud);
    if (r < 0)
      return r;
    n++;
    if (a.kind == POLICY_TRANSITION) {
      pc->c.state = a.new_state;
      if (a.new_state == CONTRACT_REMINDING)
        pc->c.state_until = 0;
      continue;
    }
    if (pc->c.state == CONTRACT_ACTIVE)
      pc->c.state = CONTRACT_REMINDING;
    r = planner_contract_add_sent(pc, pc->policy->tiers[a.tier].name, a.step);
    if (r < 0)
      return r;
  }
  refresh_input(env, pc, t);
  return n;
}

/* ---- replan ---------------------------------------------------------------------- */

int planner_rebase(const struct planner_env *env, int64_t rowid, int64_t now, bool dry_run,
                   int64_t *ret_old, int64_t *ret_new) {
  if (!env_valid(env))
    return -EINVAL;
  struct contract c = {0};
  struct customer cu = {0};
  _cleanup_free_ char *text = NULL, *old_text = NULL, *detail = NULL;
  int64_t new_id = 0;
  int r = store_contract_get_by_rowid(env->store, rowid, &c);
  if (r < 0)
    return r;
  int64_t old_id = c.ladder_id;
  new_id = old_id;
  if (c.ladder_id == 0 || c.state == CONTRACT_RENEWED || c.state == CONTRACT_DECLINED ||
      c.state == CONTRACT_CLOSED) {
    r = 0;
    goto finish;
  }
  if (!isempty(c.customer_id)) {
    r = store_customer_get(env->store, c.customer_id, &cu);
    if (r < 0 && r != -ENOENT)
      goto finish;
  }
  const struct policy *p = env->policy_for_segment(env->ud, cu.segment);
  if (!p) {
    r = 0;
    goto finish;
  }
  text = ladder_serialize(p);
  if (!text) {
    r = -ENOMEM;
    goto finish;
  }
  r = store_ladder_get(env->store, old_id, &old_text);
  if (r < 0 && r != -ENOENT)
    goto finish;
  if (old_text && streq(old_text, text)) {
    r = 0;
    goto finish;
  }
  if (dry_run) {
    new_id = 0;
    r = 1;
    goto finish;
  }
  r = store_ladder_intern(env->store, text, &new_id);
  if (r < 0)
    goto finish;
  if (new_id == old_id) {
    r = 0;
    goto finish;
  }
  c.ladder_id = new_id;
  detail = strprintf("ladder %" PRId64 " -> %" PRId64 " (policy %s)", old_id, new_id, p->name);
  if (!detail) {
    r = -ENOMEM;
    goto finish;
  }
  r = store_contract_set_state(env->store, &c, "contract.replan", detail, now);
  if (r >= 0)
    r = 1;
finish:
  contract_clear(&c);
  customer_clear(&cu);
  if (r >= 0) {
    if (ret_old)
      *ret_old = old_id;
    if (ret_new)
      *ret_new = new_id;
  }
  return r;
}

/* ---- candidate ranges ---------------------------------------------------------------- */

static int64_t nominal_seconds(const struct cal_duration *d) {
  int64_t v = (int64_t)d->days * 86400 + d->seconds;
  return d->negative ? -v : v;
}

void planner_expiry_range(const struct policy *p, int64_t from, int64_t until, int64_t slack,
                          int64_t *lo, int64_t *hi) {
  /* A day offset is calendar days in the customer's zone: up to a DST shift
   * (and Lord Howe's half hour) away from 86,400 s per day. */
  const int64_t dst = 3 * 3600;
  if (!p || !lo || !hi)
    return;
  for (size_t i = 0; i < p->n_tiers; i++) {
    const struct tier *t = &p->tiers[i];
    int64_t off = nominal_seconds(&t->offset), span = 0;
    if (t->rrule) {
      int64_t occ[POLICY_MAX_OCCURRENCES];
      size_t n = cal_rrule_expand(t->rrule, NULL, 0, TIME_NEVER, occ, ELEMENTSOF(occ));
      if (n > 1)
        span = occ[n - 1] - occ[0];
    }
    /* raw = expiry + off + [0, span]; due in [raw, raw + slack] */
    int64_t a = from - slack - off - span - dst, b = until - off + dst;
    *lo = MIN(*lo, a);
    *hi = MAX(*hi, b);
  }
}
