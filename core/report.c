/* report: aggregation of the renewal funnel (definitions in report.h).
 *
 * The builder keeps running counters: the total funnel, one funnel per
 * segment, owner and policy, one counter set per tier and per channel, the
 * decline reasons and the weekly series, with a small string hash map per
 * dimension so that adding a term costs O(rows of the term). Renewal leads
 * (expiry - renewal instant) are kept per funnel for the medians.
 * report_builder_finish() turns the counters into a struct report: rates,
 * medians and orderings are computed there and nowhere else, so every
 * renderer prints the same numbers.
 *
 * Owns: the builder's maps and arrays; the report it hands out. Pure: no
 * I/O except report_compute(), which walks the store. */
#include "core/report.h"
#include "core/lifecycle.h"

#include "core/util.h"

#define WEEK (INT64_C(7) * 86400)
#define MAX_WEEKS 10000 /* about 190 years: guards the weekly array */

static const char *const by_names[_REPORT_BY_MAX] = {
    [REPORT_BY_TIER] = "tier",   [REPORT_BY_CHANNEL] = "channel", [REPORT_BY_SEGMENT] = "segment",
    [REPORT_BY_OWNER] = "owner", [REPORT_BY_POLICY] = "policy",
};

const char *report_by_to_string(enum report_by b) {
  return (unsigned)b < _REPORT_BY_MAX ? by_names[b] : NULL;
}

int report_by_from_string(const char *s) {
  for (size_t i = 0; s && i < _REPORT_BY_MAX; i++)
    if (streq(s, by_names[i]))
      return (int)i;
  return -EINVAL;
}

int64_t report_rate_bp(int64_t num, int64_t den) {
  if (den <= 0)
    return REPORT_RATE_NONE;
  /* half up; counts are far below the overflow range of num * 10000 */
  return (num * 10000 + den / 2) / den;
}

/* ---- growable int64 vector and a string -> index map ------------------------- */

struct i64vec {
  int64_t *v;
  size_t n, cap;
};

static int i64vec_push(struct i64vec *a, int64_t x) {
  if (a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 16;
    int64_t *v = realloc(a->v, cap * sizeof *v);
    if (!v)
      return -ENOMEM;
    a->v = v;
    a->cap = cap;
  }
  a->v[a->n++] = x;
  return 0;
}

/* Open addressing, linear probing; slots hold index + 1 (0 = empty) into the
 * owner's array, whose element names are the keys. */
struct nmap {
  size_t *slots;
  size_t cap; /* power of two */
  size_t n;
};

static uint64_t hash_str(const char *s) {
  uint64_t h = UINT64_C(0xcbf29ce484222325);
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * UINT64_C(0x100000001b3);
  return h;
}

/* A dimension: an array of elements of elem_size whose first member is the
 * name (char *), plus its map. */
struct dim {
  void *v;
  size_t n, cap, elem_size;
  struct nmap map;
};

static char *dim_name(const struct dim *d, size_t i) {
  return *(char **)((char *)d->v + i * d->elem_size);
}

static int nmap_grow(struct dim *d) {
  size_t cap = d->map.cap ? d->map.cap * 2 : 16;
  size_t *slots = calloc(cap, sizeof *slots);
  if (!slots)
    return -ENOMEM;
  for (size_t i = 0; i < d->n; i++) {
    size_t k = hash_str(dim_name(d, i)) & (cap - 1);
    while (slots[k])
      k = (k + 1) & (cap - 1);
    slots[k] = i + 1;
  }
  free(d->map.slots);
  d->map.slots = slots;
  d->map.cap = cap;
  return 0;
}

/* Index of name in d, adding a zeroed element when new. name NULL/"" means
 * "(none)". Returns the index or -ENOMEM. */
static ssize_t dim_get(struct dim *d, const char *name) {
  if (isempty(name))
    name = "(none)";
  if (d->map.n * 2 >= d->map.cap && nmap_grow(d) < 0)
    return -ENOMEM;
  size_t k = hash_str(name) & (d->map.cap - 1);
  while (d->map.slots[k]) {
    size_t i = d->map.slots[k] - 1;
    if (streq(dim_name(d, i), name))
      return (ssize_t)i;
    k = (k + 1) & (d->map.cap - 1);
  }
  if (d->n == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 8;
    void *v = realloc(d->v, cap * d->elem_size);
    if (!v)
      return -ENOMEM;
    d->v = v;
    d->cap = cap;
  }
  char *copy = strdup(name);
  if (!copy)
    return -ENOMEM;
  char *e = (char *)d->v + d->n * d->elem_size;
  memset(e, 0, d->elem_size);
  memcpy(e, &copy, sizeof copy);
  d->map.slots[k] = d->n + 1;
  d->map.n++;
  return (ssize_t)d->n++;
}

/* ---- the builder ----------------------------------------------------------------- */

/* A funnel being built plus its renewal leads. */
struct gacc {
  char *name; /* first member: see struct dim */
  struct report_funnel f;
  struct i64vec leads;
};

struct racc {
  char *name;
  int64_t count;
};

struct report_builder {
  struct report_options o;
  int64_t week0; /* Monday 00:00 UTC on or before from */
  struct gacc total;
  struct dim tiers, channels;            /* struct report_touch */
  struct dim segments, owners, policies; /* struct gacc */
  struct dim reasons;                    /* struct racc */
  struct report_week *weeks;
  size_t n_weeks;
};

static void dim_free(struct dim *d, bool gacc) {
  for (size_t i = 0; i < d->n; i++) {
    free(dim_name(d, i));
    if (gacc)
      free(((struct gacc *)d->v)[i].leads.v);
  }
  free(d->v);
  free(d->map.slots);
  *d = (struct dim){0};
}

struct report_builder *report_builder_free(struct report_builder *b) {
  if (!b)
    return NULL;
  free(b->total.leads.v);
  dim_free(&b->tiers, false);
  dim_free(&b->channels, false);
  dim_free(&b->segments, true);
  dim_free(&b->owners, true);
  dim_free(&b->policies, true);
  dim_free(&b->reasons, false);
  free(b->weeks);
  free(b);
  return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct report_builder *, report_builder_free);

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int report_builder_new(const struct report_options *o, struct report_builder **ret) {
  if (!o || !ret || o->from >= o->until || (unsigned)o->by >= _REPORT_BY_MAX)
    return -EINVAL;
  _cleanup_(report_builder_freep) struct report_builder *b = calloc(1, sizeof *b);
  if (!b)
    return -ENOMEM;
  b->o = *o;
  int64_t day = floor_div(o->from, 86400);
  int64_t weekday = ((day + 3) % 7 + 7) % 7; /* 1970-01-01 was a Thursday; Monday = 0 */
  b->week0 = (day - weekday) * 86400;
  int64_t n = floor_div(o->until - 1 - b->week0, WEEK) + 1;
  if (n <= 0 || n > MAX_WEEKS)
    return -ERANGE;
  b->n_weeks = (size_t)n;
  b->weeks = calloc(b->n_weeks, sizeof *b->weeks);
  if (!b->weeks)
    return -ENOMEM;
  for (size_t i = 0; i < b->n_weeks; i++)
    b->weeks[i].start = b->week0 + (int64_t)i * WEEK;
  b->tiers.elem_size = b->channels.elem_size = sizeof(struct report_touch);
  b->segments.elem_size = b->owners.elem_size = b->policies.elem_size = sizeof(struct gacc);
  b->reasons.elem_size = sizeof(struct racc);
  *ret = TAKE_PTR(b);
  return 0;
}

enum outcome {
  OUT_RENEWED,
  OUT_DECLINED,
  OUT_LAPSED,
  OUT_OPEN,
};

/* What one term contributes to a funnel. */
struct facts {
  bool reminded, answered, prompted, snoozed, callback, external, lost;
  enum outcome outcome;
  int64_t escalations;
  bool has_lead;
  int64_t lead; /* expiry - renewal instant, seconds */
};

static bool is_customer(const struct store_report_reminder *m) {
  return m->audience && streq(m->audience, "customer");
}

static bool is_sent(const struct store_report_reminder *m) {
  return m->status == REMINDER_SENT;
}

/* The last customer reminder sent at or before `at` (ties by id), or NULL. */
static const struct store_report_reminder *trigger_of(const struct store_report_term *t,
                                                      int64_t at) {
  const struct store_report_reminder *best = NULL;
  for (size_t i = 0; i < t->n_reminders; i++) {
    const struct store_report_reminder *m = &t->reminders[i];
    if (!is_customer(m) || !is_sent(m) || m->sent_at > at)
      continue;
    if (!best || m->sent_at > best->sent_at || (m->sent_at == best->sent_at && m->id > best->id))
      best = m;
  }
  return best;
}

static int funnel_add(struct report_funnel *f, struct i64vec *leads, const struct facts *x) {
  f->terms++;
  f->reminded += x->reminded;
  f->answered += x->answered;
  f->prompted += x->prompted;
  f->snoozed += x->snoozed;
  f->callback += x->callback;
  f->escalations += x->escalations;
  f->escalated += x->escalations > 0;
  switch (x->outcome) {
  case OUT_RENEWED:
    f->renewed++;
    f->renewed_external += x->external;
    f->escalated_renewed += x->escalations > 0;
    break;
  case OUT_DECLINED:
    f->declined++;
    f->lost += x->lost;
    break;
  case OUT_LAPSED:
    f->lapsed++;
    break;
  case OUT_OPEN:
    f->open++;
    break;
  }
  return x->has_lead ? i64vec_push(leads, x->lead) : 0;
}

static int group_add(struct dim *d, const char *name, const struct facts *x) {
  ssize_t i = dim_get(d, name);
  if (i < 0)
    return (int)i;
  struct gacc *g = &((struct gacc *)d->v)[i];
  return funnel_add(&g->f, &g->leads, x);
}

static struct report_touch *touch_get(struct dim *d, const char *name, int *r) {
  ssize_t i = dim_get(d, name);
  if (i < 0) {
    *r = (int)i;
    return NULL;
  }
  return &((struct report_touch *)d->v)[i];
}

/* Credits an answer or a renewal to the tier and channel of its trigger. */
static int credit(struct report_builder *b, const struct store_report_reminder *m, bool renewal) {
  int r = 0;
  struct report_touch *tier = touch_get(&b->tiers, m->tier, &r);
  if (!tier)
    return r;
  struct report_touch *ch = touch_get(&b->channels, m->channel, &r);
  if (!ch)
    return r;
  if (renewal) {
    tier->renewals++;
    ch->renewals++;
  } else {
    tier->answers++;
    ch->answers++;
  }
  return 0;
}

/* True when an earlier customer send of the term went to the same tier
 * (by_tier) or channel. */
static bool seen_before(const struct store_report_term *t, size_t i, bool by_tier) {
  const struct store_report_reminder *m = &t->reminders[i];
  for (size_t j = 0; j < i; j++) {
    const struct store_report_reminder *o = &t->reminders[j];
    if (is_customer(o) && is_sent(o) &&
        streq_ptr(by_tier ? o->tier : o->channel, by_tier ? m->tier : m->channel))
      return true;
  }
  return false;
}

static int add_reminders(struct report_builder *b, const struct store_report_term *t,
                         struct facts *x) {
  int r = 0;
  for (size_t i = 0; i < t->n_reminders; i++) {
    const struct store_report_reminder *m = &t->reminders[i];
    struct report_touch *tier = touch_get(&b->tiers, m->tier, &r);
    if (!tier)
      return r;
    struct report_touch *ch = touch_get(&b->channels, m->channel, &r);
    if (!ch)
      return r;
    bool sent = is_sent(m);
    if (sent || m->status == REMINDER_DEAD || m->attempts > 0) {
      tier->attempted++;
      ch->attempted++;
    }
    if (m->status == REMINDER_DEAD) {
      tier->dead++;
      ch->dead++;
    }
    if (!sent)
      continue;
    tier->lead_sum += t->expires_at - m->sent_at;
    tier->lead_n++;
    if (is_customer(m)) {
      x->reminded = true;
      tier->sent++;
      ch->sent++;
      tier->reached += !seen_before(t, i, true);
      ch->reached += !seen_before(t, i, false);
    } else if (!streq_ptr(m->tier, REPORT_OPS_ALERT_TIER) &&
               !streq_ptr(m->tier, LIFECYCLE_TIER_CUSTOMER_RENEWED)) {
      x->escalations++;
      tier->owner_sent++;
      ch->owner_sent++;
    }
  }
  return 0;
}

/* Whether a response kind is the customer answering (as the scheduler sees
 * it, docs/lifecycle.md): not lost (the owner's verdict), not an opt-out or
 * opt-in, not a request for help. */
static bool is_answer(const char *kind) {
  static const char *const not_answers[] = {"lost", "unsubscribed", "resubscribed", "help"};
  for (size_t i = 0; i < ELEMENTSOF(not_answers); i++)
    if (streq(kind, not_answers[i]))
      return false;
  return true;
}

int report_builder_add(struct report_builder *b, const struct store_report_term *t) {
  if (!b || !t || (t->n_reminders && !t->reminders) || (t->n_responses && !t->responses))
    return -EINVAL;
  if (t->expires_at < b->o.from || t->expires_at >= b->o.until)
    return 0;

  struct facts x = {0};
  int r = add_reminders(b, t, &x);
  if (r < 0)
    return r;

  const struct store_report_response *first_answer = NULL, *renewal = NULL, *decline = NULL;
  for (size_t i = 0; i < t->n_responses; i++) {
    const struct store_report_response *p = &t->responses[i];
    const char *k = p->kind ? p->kind : "";
    bool lost = streq(k, "lost");
    if (!first_answer && is_answer(k))
      first_answer = p;
    if (streq(k, "renewed") && !renewal)
      renewal = p;
    if (streq(k, "declined") || lost)
      decline = p; /* the last one decides the reason */
    x.snoozed |= streq(k, "snoozed");
    x.callback |= streq(k, "callback");
  }
  x.answered = first_answer != NULL;
  if (first_answer) {
    const struct store_report_reminder *m = trigger_of(t, first_answer->created_at);
    x.prompted = m != NULL;
    if (m && (r = credit(b, m, false)) < 0)
      return r;
  }

  /* the outcome, in order of precedence */
  int64_t renewed_at = 0;
  bool has_renewed_at = false;
  bool current = t->ended_at == 0;
  if (renewal || !current || t->state == CONTRACT_RENEWED) {
    x.outcome = OUT_RENEWED;
    if (renewal) {
      renewed_at = renewal->created_at;
      has_renewed_at = true;
    } else if (!current) {
      x.external = true;
      renewed_at = t->ended_at;
      has_renewed_at = true;
    }
  } else if (decline || t->state == CONTRACT_DECLINED) {
    x.outcome = OUT_DECLINED;
    x.lost = decline && decline->kind && streq(decline->kind, "lost");
    ssize_t i = dim_get(&b->reasons,
                        decline && !isempty(decline->reason) ? decline->reason : "unspecified");
    if (i < 0)
      return (int)i;
    ((struct racc *)b->reasons.v)[i].count++;
  } else if (t->state == CONTRACT_LAPSED || t->state == CONTRACT_CLOSED)
    x.outcome = OUT_LAPSED;
  else
    x.outcome = OUT_OPEN;
  if (has_renewed_at) {
    x.has_lead = true;
    x.lead = t->expires_at - renewed_at;
    const struct store_report_reminder *m = trigger_of(t, renewed_at);
    if (m && (r = credit(b, m, true)) < 0)
      return r;
  }

  const char *policy = b->o.policy_of ? b->o.policy_of(t->segment, b->o.policy_ud) : NULL;
  if ((r = funnel_add(&b->total.f, &b->total.leads, &x)) < 0 ||
      (r = group_add(&b->segments, t->segment, &x)) < 0 ||
      (r = group_add(&b->owners, t->owner_id, &x)) < 0 ||
      (r = group_add(&b->policies, policy, &x)) < 0)
    return r;

  struct report_week *w = &b->weeks[(t->expires_at - b->week0) / WEEK];
  w->terms++;
  w->reminded += x.reminded;
  w->prompted += x.prompted;
  w->renewed += x.outcome == OUT_RENEWED;
  return 0;
}

/* ---- finishing ------------------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static void funnel_finish(struct report_funnel *f, struct i64vec *leads) {
  f->renewal_rate_bp = report_rate_bp(f->renewed, f->terms);
  f->decided_renewal_rate_bp = report_rate_bp(f->renewed, f->renewed + f->declined + f->lapsed);
  f->response_rate_bp = report_rate_bp(f->prompted, f->reminded);
  f->has_median = leads->n > 0;
  f->median_days_x10 = 0;
  if (!f->has_median)
    return;
  qsort(leads->v, leads->n, sizeof *leads->v, cmp_i64);
  size_t n = leads->n;
  /* twice the median, in seconds; tenths of a day = m2 / (2 * 86400 / 10) */
  int64_t m2 = n % 2 ? 2 * leads->v[n / 2] : leads->v[n / 2 - 1] + leads->v[n / 2];
  int64_t a = m2 < 0 ? -m2 : m2;
  int64_t q = (a + 8640) / 17280;
  f->median_days_x10 = m2 < 0 ? -q : q;
}

static int cmp_reason(const void *a, const void *b) {
  const struct report_reason *x = a, *y = b;
  if (x->count != y->count)
    return x->count > y->count ? -1 : 1;
  return strcmp(x->reason, y->reason);
}

static int cmp_group(const void *a, const void *b) {
  const struct report_group *x = a, *y = b;
  if (x->f.terms != y->f.terms)
    return x->f.terms > y->f.terms ? -1 : 1;
  return strcmp(x->name, y->name);
}

static int cmp_touch_name(const void *a, const void *b) {
  return strcmp(((const struct report_touch *)a)->name, ((const struct report_touch *)b)->name);
}

/* Earliest in the ladder first: larger mean lead (expiry - sent) first;
 * compares lead_sum/lead_n exactly by cross-multiplying in 128 bits. Tiers
 * never sent go last. */
static int cmp_touch_lead(const void *a, const void *b) {
  const struct report_touch *x = a, *y = b;
  if ((x->lead_n > 0) != (y->lead_n > 0))
    return x->lead_n > 0 ? -1 : 1;
  if (x->lead_n > 0) {
    __int128 l = (__int128)x->lead_sum * y->lead_n, rr = (__int128)y->lead_sum * x->lead_n;
    if (l != rr)
      return l > rr ? -1 : 1;
  }
  return strcmp(x->name, y->name);
}

static void touches_finish(struct dim *d, struct report_touch **ret, size_t *ret_n, bool by_lead) {
  struct report_touch *v = d->v;
  for (size_t i = 0; i < d->n; i++) {
    v[i].response_rate_bp = report_rate_bp(v[i].answers, v[i].reached);
    v[i].renewal_rate_bp = report_rate_bp(v[i].renewals, v[i].reached);
    v[i].failure_rate_bp = report_rate_bp(v[i].dead, v[i].attempted);
  }
  if (d->n > 1)
    qsort(v, d->n, sizeof *v, by_lead ? cmp_touch_lead : cmp_touch_name);
  *ret = v;
  *ret_n = d->n;
  d->v = NULL;
  d->n = d->cap = 0;
}

int report_builder_finish(struct report_builder *b, struct report **ret) {
  if (!b || !ret)
    return -EINVAL;
  _cleanup_(report_freep) struct report *r = calloc(1, sizeof *r);
  if (!r)
    return -ENOMEM;
  r->from = b->o.from;
  r->until = b->o.until;
  r->generated_at = b->o.now;
  r->by = b->o.by;
  funnel_finish(&b->total.f, &b->total.leads);
  r->total = b->total.f;

  struct racc *ra = b->reasons.v;
  r->reasons = calloc(b->reasons.n ? b->reasons.n : 1, sizeof *r->reasons);
  if (!r->reasons)
    return -ENOMEM;
  for (size_t i = 0; i < b->reasons.n; i++)
    r->reasons[i] = (struct report_reason){.reason = TAKE_PTR(ra[i].name), .count = ra[i].count};
  r->n_reasons = b->reasons.n;
  b->reasons.n = 0;
  qsort(r->reasons, r->n_reasons, sizeof *r->reasons, cmp_reason);

  /* leads stay with the builder's gacc (freed by report_builder_free) */
  struct dim *dims[] = {&b->segments, &b->owners, &b->policies};
  struct report_group **outs[] = {&r->segments, &r->owners, &r->policies};
  size_t *ns[] = {&r->n_segments, &r->n_owners, &r->n_policies};
  for (size_t k = 0; k < ELEMENTSOF(dims); k++) {
    struct gacc *g = dims[k]->v;
    struct report_group *v = calloc(dims[k]->n ? dims[k]->n : 1, sizeof *v);
    if (!v)
      return -ENOMEM;
    for (size_t i = 0; i < dims[k]->n; i++) {
      funnel_finish(&g[i].f, &g[i].leads);
      v[i] = (struct report_group){.name = g[i].name, .f = g[i].f};
    }
    qsort(v, dims[k]->n, sizeof *v, cmp_group);
    *outs[k] = v;
    *ns[k] = dims[k]->n;
    for (size_t i = 0; i < dims[k]->n; i++)
      g[i].name = NULL; /* moved */
  }
  /* dim_free() reads names through dim_name(): keep n so leads are freed,
   * names are NULL now (free(NULL) is fine) */

  touches_finish(&b->tiers, &r->tiers, &r->n_tiers, true);
  touches_finish(&b->channels, &r->channels, &r->n_channels, false);

  r->weeks = TAKE_PTR(b->weeks);
  r->n_weeks = b->n_weeks;
  b->n_weeks = 0;
  for (size_t i = 0; i < r->n_weeks; i++) {
    struct report_week *w = &r->weeks[i];
    w->renewal_rate_bp = report_rate_bp(w->renewed, w->terms);
    w->response_rate_bp = report_rate_bp(w->prompted, w->reminded);
  }
  *ret = TAKE_PTR(r);
  return 0;
}

struct report *report_free(struct report *r) {
  if (!r)
    return NULL;
  for (size_t i = 0; i < r->n_reasons; i++)
    free(r->reasons[i].reason);
  free(r->reasons);
  for (size_t i = 0; i < r->n_tiers; i++)
    free(r->tiers[i].name);
  free(r->tiers);
  for (size_t i = 0; i < r->n_channels; i++)
    free(r->channels[i].name);
  free(r->channels);
  struct report_group *gs[] = {r->segments, r->owners, r->policies};
  size_t ns[] = {r->n_segments, r->n_owners, r->n_policies};
  for (size_t k = 0; k < ELEMENTSOF(gs); k++) {
    for (size_t i = 0; i < ns[k]; i++)
      free(gs[k][i].name);
    free(gs[k]);
  }
  free(r->weeks);
  free(r);
  return NULL;
}

const struct report_group *report_groups(const struct report *r, enum report_by by, size_t *ret_n) {
  *ret_n = 0;
  if (!r)
    return NULL;
  switch (by) {
  case REPORT_BY_SEGMENT:
    *ret_n = r->n_segments;
    return r->segments;
  case REPORT_BY_OWNER:
    *ret_n = r->n_owners;
    return r->owners;
  case REPORT_BY_POLICY:
    *ret_n = r->n_policies;
    return r->policies;
  default:
    return NULL;
  }
}

/* ---- from the store ------------------------------------------------------------- */

static int add_cb(const struct store_report_term *t, void *ud) {
  return report_builder_add(ud, t);
}

int report_compute(struct store *s, const struct report_options *o, struct report **ret) {
  if (!s || !o || !ret)
    return -EINVAL;
  _cleanup_(report_builder_freep) struct report_builder *b = NULL;
  int r = report_builder_new(o, &b);
  if (r < 0)
    return r;
  r = store_report_foreach_term(s, o->from, o->until, add_cb, b);
  if (r < 0)
    return r;
  return report_builder_finish(b, ret);
}
