/* cmd_plan: `renewctl plan` (the upcoming reminders as a timeline; with
 * --diff, what a new config would move) and `renewctl replan` (move contracts
 * already in a ladder onto the current config's policy).
 *
 * Both plan with core/planner.c through config_planner_env(), the very code
 * the daemon runs: `plan` loads each candidate contract, shows the reminder
 * rows of its current term already recorded in the period (sent, pending,
 * skipped, ...), and dry-runs the planner from "now" on (planner_simulate:
 * as if every reminder goes out and nobody answers) for what is still to
 * come. Candidates are the contracts whose expiry puts some tier occurrence
 * into the period (planner_expiry_range over the config's policies, plus a
 * margin for send windows) and those whose daemon-recorded next due instant
 * (contracts.next_due_at) falls before its end.
 *
 * plan opens the store read-only; replan writes it (one transaction per 500
 * contracts) unless --dry-run. Owns the store connection, a second config for
 * --diff, and the rows it collects (the timeline is sorted before printing,
 * so memory grows with the rows in the period). */
#include <inttypes.h>
#include <time.h>

#include "cli/cli.h"
#include "config/config_planner.h"
#include "core/planner.h"

/* How far a send window (weekends, holidays, a shutdown) may move a due
 * instant past its tier instant, for the candidate scan. */
#define WINDOW_MARGIN (31 * 86400)
/* Contracts changed per transaction by replan. */
#define REPLAN_BATCH 500

static inline void table_freep(struct cli_table **t) {
  cli_table_free(*t);
}

/* ---- shared helpers ------------------------------------------------------------ */

/* RFC 3339, or a date YYYY-MM-DD meaning its midnight UTC. */
static int parse_instant(const char *s, int64_t *ret) {
  int y, m, d;
  if (cal_parse_rfc3339(s, ret) >= 0)
    return 0;
  if (cal_parse_date(s, &y, &m, &d) < 0)
    return -EINVAL;
  *ret = cal_from_local(NULL, y, m, d, 0, 0, 0);
  return 0;
}

/* "2027-01-29T09:00:00+01:00": t in zone z, with its UTC offset. */
static char *format_local(const struct cal_zone *z, int64_t t, char out[static 40]) {
  struct cal_local l;
  cal_to_local(z, t, &l);
  int off = l.utc_offset < 0 ? -l.utc_offset : l.utc_offset;
  if (off % 60)
    snprintf(out, 40, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d:%02d", l.year, l.month, l.day,
             l.hour, l.minute, l.second, l.utc_offset < 0 ? '-' : '+', off / 3600, off / 60 % 60,
             off % 60);
  else
    snprintf(out, 40, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", l.year, l.month, l.day, l.hour,
             l.minute, l.second, l.utc_offset < 0 ? '-' : '+', off / 3600, off / 60 % 60);
  return out;
}

static int cmp_int64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

struct rowids {
  int64_t *v; /* owned */
  size_t n, cap;
};

static int rowids_push(struct rowids *r, int64_t rowid) {
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 256;
    int64_t *v = realloc(r->v, cap * sizeof *v);
    if (!v)
      return -ENOMEM;
    r->v = v;
    r->cap = cap;
  }
  r->v[r->n++] = rowid;
  return 0;
}

static void rowids_sort_unique(struct rowids *r) {
  if (r->n == 0)
    return;
  qsort(r->v, r->n, sizeof *r->v, cmp_int64);
  size_t m = 1;
  for (size_t k = 1; k < r->n; k++)
    if (r->v[k] != r->v[m - 1])
      r->v[m++] = r->v[k];
  r->n = m;
}

static int candidate_cb(const struct contract *c, const struct customer *cu, void *ud) {
  return rowids_push(ud, c->rowid);
}

static int candidate_due_cb(const struct contract *c, void *ud) {
  return rowids_push(ud, c->rowid);
}

/* The contracts that may have something due in [from, until) under any of the
 * configs (see the file comment), sorted, each once. */
static int collect_candidates(struct store *s, const struct config *const *cfgs, size_t n_cfgs,
                              int64_t from, int64_t until, struct rowids *ret) {
  int64_t lo = INT64_MAX, hi = INT64_MIN;
  for (size_t k = 0; k < n_cfgs; k++)
    for (size_t i = 0; i < cfgs[k]->n_policies; i++)
      planner_expiry_range(cfgs[k]->policies[i], from, until, WINDOW_MARGIN, &lo, &hi);
  if (lo < hi) {
    struct store_contract_filter f = {
        .state = -1, .expires_from = MAX(lo, (int64_t)1), .expires_until = hi};
    int r = store_contract_foreach(s, &f, candidate_cb, ret);
    if (r < 0)
      return r;
  }
  int r = store_contract_foreach_due(s, until, 0, candidate_due_cb, ret);
  if (r < 0)
    return r;
  rowids_sort_unique(ret);
  return 0;
}

/* The config to plan with: a loaded one is required (the built-in defaults
 * have no policy). */
static int need_config(struct cli *c, const char *command, const struct config **ret) {
  int ex = cli_config(c, ret);
  if (ex)
    return ex;
  if (!*ret) {
    cli_error("%s needs the policies of a configuration: %s does not exist (use --config)", command,
              CONFIG_DEFAULT_PATH);
    return EX_CONFIG;
  }
  return 0;
}

static int store_error(struct store *s, const char *what, int r) {
  cli_error("%s: %s%s%s", what, strerror(-r), *store_last_error(s) ? ": " : "",
            store_last_error(s));
  return r == -EBUSY ? EX_UNAVAILABLE : EX_IOERR;
}

/* ---- plan: the timeline ----------------------------------------------------------- */

struct plan_row {
  int64_t at;        /* when it was / will be acted on (UTC) */
  uint64_t seq;      /* insertion order, the last sort key */
  char *contract_id; /* owned */
  int32_t term;
  char *tier; /* owned */
  int32_t step;
  char *channel;               /* owned */
  const char *audience;        /* static */
  char *owner_id;              /* owned, owner tiers */
  char *recipient;             /* owned, may be NULL */
  const char *status;          /* static: a reminder status, "planned" or "skip" */
  char *reason;                /* owned, may be NULL */
  bool catch_up;               /* planned late (missed occurrence) */
  int64_t reminder_id;         /* recorded rows, else 0 */
  const struct cal_zone *zone; /* the recipient's zone; owned by the cal */
};

struct plan_ctx {
  struct cli *cli;
  struct planner_env env;
  int64_t now, from, until;
  const struct cal_zone *utc;
  struct plan_row *rows; /* owned */
  size_t n_rows, cap_rows;
  uint64_t seq;
  /* per contract, while it is being planned */
  struct planner_contract *pc;
};

static void plan_row_done(struct plan_row *r) {
  free(r->contract_id);
  free(r->tier);
  free(r->channel);
  free(r->owner_id);
  free(r->recipient);
  free(r->reason);
}

static void plan_ctx_done(struct plan_ctx *x) {
  for (size_t k = 0; k < x->n_rows; k++)
    plan_row_done(&x->rows[k]);
  free(x->rows);
}

/* Appends a row; copies every string. */
static int add_row(struct plan_ctx *x, const struct plan_row *src) {
  if (x->n_rows == x->cap_rows) {
    size_t cap = x->cap_rows ? x->cap_rows * 2 : 64;
    struct plan_row *v = realloc(x->rows, cap * sizeof *v);
    if (!v)
      return -ENOMEM;
    x->rows = v;
    x->cap_rows = cap;
  }
  struct plan_row r = *src;
  r.seq = x->seq++;
  r.contract_id = strdup_or_null(src->contract_id);
  r.tier = strdup_or_null(src->tier);
  r.channel = strdup_or_null(src->channel);
  r.owner_id = strdup_or_null(src->owner_id);
  r.recipient = strdup_or_null(src->recipient);
  r.reason = strdup_or_null(src->reason);
  if ((src->contract_id && !r.contract_id) || (src->tier && !r.tier) ||
      (src->channel && !r.channel) || (src->owner_id && !r.owner_id) ||
      (src->recipient && !r.recipient) || (src->reason && !r.reason)) {
    plan_row_done(&r);
    return -ENOMEM;
  }
  x->rows[x->n_rows++] = r;
  return 0;
}

static const struct cal_zone *recipient_zone(const struct plan_ctx *x,
                                             const struct planner_contract *pc, bool owner) {
  if (owner && pc->owner_zone)
    return pc->owner_zone;
  return pc->customer_zone ? pc->customer_zone : x->utc;
}

/* A reminder row already recorded in the current term. */
static int history_row_cb(const struct reminder *m, void *ud) {
  struct plan_ctx *x = ud;
  int64_t at = m->sent_at > 0                                          ? m->sent_at
               : m->status == REMINDER_RETRY && m->next_attempt_at > 0 ? m->next_attempt_at
                                                                       : m->due_at;
  if (at < x->from || at >= x->until)
    return 0;
  bool owner = streq_ptr(m->audience, "owner");
  struct plan_row r = {
      .at = at,
      .contract_id = m->contract_id,
      .term = m->term,
      .tier = m->tier,
      .step = m->step,
      .channel = m->channel,
      .audience = owner ? "owner" : "customer",
      .recipient = m->recipient,
      .status = reminder_status_to_string(m->status),
      .reason = m->last_error,
      .reminder_id = m->id,
      .zone = recipient_zone(x, x->pc, owner),
  };
  return add_row(x, &r);
}

/* An action of the dry run. */
static int simulate_cb(struct planner_contract *pc, const struct policy_action *a, void *ud) {
  struct plan_ctx *x = ud;
  if (a->kind != POLICY_REMIND && a->kind != POLICY_SKIP)
    return 0;
  int64_t at = MAX(a->due_at, pc->in.now); /* the daemon acts when it gets there */
  if (at < x->from || at >= x->until)
    return 0;
  const struct tier *t = &pc->policy->tiers[a->tier];
  bool owner = t->audience == AUDIENCE_OWNER;
  for (size_t k = 0; k < t->n_channels; k++) {
    struct planner_target tg = {0};
    const char *why = a->kind == POLICY_SKIP ? a->reason : NULL;
    if (!why) {
      int r = planner_resolve(&x->env, pc, a->tier, a->step, t->channels[k], &tg);
      if (r < 0)
        return r;
      why = tg.skip_reason;
    }
    struct plan_row r = {
        .at = at,
        .contract_id = pc->c.id,
        .term = pc->c.term,
        .tier = t->name,
        .step = a->step,
        .channel = t->channels[k],
        .audience = owner ? "owner" : "customer",
        .owner_id = tg.owner_id,
        .recipient = tg.recipient,
        .status = why ? "skip" : "planned",
        .reason = (char *)why,
        .catch_up = a->catch_up,
        .zone = recipient_zone(x, pc, owner),
    };
    int ir = add_row(x, &r);
    planner_target_done(&tg);
    if (ir < 0)
      return ir;
  }
  return 0;
}

static int plan_contract_rows(struct plan_ctx *x, int64_t rowid) {
  struct planner_contract pc = {0};
  int r = planner_build_input(&x->env, rowid, x->now, &pc);
  if (r == -ENOENT && !pc.c.id) {
    planner_contract_done(&pc);
    return 0; /* deleted meanwhile */
  }
  if (r >= 0) {
    x->pc = &pc;
    r = store_reminder_foreach_contract(x->env.store, pc.c.id, pc.c.term, history_row_cb, x);
    x->pc = NULL;
  }
  if (r >= 0 && pc.policy)
    r = planner_simulate(&x->env, &pc, x->now, x->until, simulate_cb, x);
  planner_contract_done(&pc);
  return r < 0 ? r : 0;
}

static int cmp_rows(const void *a, const void *b) {
  const struct plan_row *x = a, *y = b;
  if (x->at != y->at)
    return x->at < y->at ? -1 : 1;
  int c = strcmp(x->contract_id ? x->contract_id : "", y->contract_id ? y->contract_id : "");
  if (c)
    return c;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static json_t *row_json(const struct plan_row *r) {
  char local[40];
  json_t *j = json_object();
  if (!j || cli_json_set(j, "at", cli_json_time(r->at)) < 0 ||
      cli_json_set(j, "local", json_string(format_local(r->zone, r->at, local))) < 0 ||
      cli_json_set(j, "timezone", json_string(cal_zone_name(r->zone))) < 0 ||
      cli_json_set(j, "contract_id", cli_json_str(r->contract_id)) < 0 ||
      cli_json_set(j, "term", json_integer(r->term)) < 0 ||
      cli_json_set(j, "tier", cli_json_str(r->tier)) < 0 ||
      cli_json_set(j, "step", json_integer(r->step)) < 0 ||
      cli_json_set(j, "channel", cli_json_str(r->channel)) < 0 ||
      cli_json_set(j, "audience", json_string(r->audience)) < 0 ||
      cli_json_set(j, "owner", cli_json_str(r->owner_id)) < 0 ||
      cli_json_set(j, "recipient", cli_json_str(r->recipient)) < 0 ||
      cli_json_set(j, "status", json_string(r->status)) < 0 ||
      cli_json_set(j, "reason", cli_json_str(r->reason)) < 0 ||
      cli_json_set(j, "catch_up", json_boolean(r->catch_up)) < 0 ||
      cli_json_set(j, "reminder_id", r->reminder_id ? json_integer(r->reminder_id) : json_null()) <
          0) {
    json_decref(j);
    return NULL;
  }
  return j;
}

static int print_timeline(struct plan_ctx *x) {
  if (x->n_rows > 1)
    qsort(x->rows, x->n_rows, sizeof *x->rows, cmp_rows);
  if (x->cli->json) {
    fputs("[", stdout);
    for (size_t k = 0; k < x->n_rows; k++) {
      json_t *j = row_json(&x->rows[k]);
      char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
      json_decref(j);
      if (!s) {
        cli_error("out of memory");
        return EX_OSERR;
      }
      printf("%s\n%s", k ? "," : "", s);
      free(s);
    }
    fputs(x->n_rows ? "\n]\n" : "]\n", stdout);
    return 0;
  }
  static const char *const headers[] = {"WHEN (UTC)", "LOCAL",   "CONTRACT", "TIER",
                                        "STEP",       "CHANNEL", "TO",       "STATUS"};
  _cleanup_(table_freep) struct cli_table *t = cli_table_new(ELEMENTSOF(headers), headers);
  if (!t)
    goto oom;
  cli_table_align_right(t, 4);
  cli_table_max_width(t, 6, 48);
  for (size_t k = 0; k < x->n_rows; k++) {
    const struct plan_row *r = &x->rows[k];
    char when[21], local[40], step[16];
    _cleanup_free_ char *to = NULL, *status = NULL;
    snprintf(step, sizeof step, "%" PRId32, r->step);
    if (streq(r->audience, "owner"))
      to = strprintf("owner %s%s%s", r->owner_id ? r->owner_id : "?", r->recipient ? " " : "",
                     r->recipient ? r->recipient : "");
    else
      to = strdup(r->recipient ? r->recipient : "customer");
    if (r->reason)
      status = strprintf("%s: %s", r->status, r->reason);
    else
      status = strprintf("%s%s", r->status, r->catch_up ? " (catch-up)" : "");
    if (!to || !status)
      goto oom;
    const char *cells[] = {format_rfc3339(r->at, when),
                           format_local(r->zone, r->at, local),
                           r->contract_id,
                           r->tier,
                           step,
                           r->channel,
                           to,
                           status};
    if (cli_table_add(t, cells) < 0)
      goto oom;
  }
  if (x->n_rows == 0) {
    char a[21], b[21];
    printf("nothing due between %s and %s\n", format_rfc3339(x->from, a),
           format_rfc3339(x->until, b));
    return 0;
  }
  cli_table_print(t, stdout);
  return 0;
oom:
  cli_error("out of memory");
  return EX_OSERR;
}

/* ---- plan --diff -------------------------------------------------------------------- */

/* One occurrence of a contract's future, under one config. */
struct occ {
  char *tier; /* owned */
  int32_t step;
  int64_t at;
  char *channels; /* "email,sms"; owned */
  bool skip;      /* decided not to send (policy skip) */
};

struct occ_list {
  struct occ *v; /* owned */
  size_t n, cap;
};

static void occ_list_done(struct occ_list *l) {
  for (size_t k = 0; k < l->n; k++) {
    free(l->v[k].tier);
    free(l->v[k].channels);
  }
  free(l->v);
  *l = (struct occ_list){0};
}

static int occ_cb(struct planner_contract *pc, const struct policy_action *a, void *ud) {
  struct occ_list *l = ud;
  if (a->kind != POLICY_REMIND && a->kind != POLICY_SKIP)
    return 0;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    struct occ *v = realloc(l->v, cap * sizeof *v);
    if (!v)
      return -ENOMEM;
    l->v = v;
    l->cap = cap;
  }
  const struct tier *t = &pc->policy->tiers[a->tier];
  struct buf b = {0};
  for (size_t k = 0; k < t->n_channels; k++)
    if (buf_printf(&b, "%s%s", k ? "," : "", t->channels[k]) < 0) {
      buf_free(&b);
      return -ENOMEM;
    }
  struct occ o = {.tier = strdup(t->name),
                  .step = a->step,
                  .at = MAX(a->due_at, pc->in.now),
                  .channels = buf_steal(&b),
                  .skip = a->kind == POLICY_SKIP};
  if (!o.tier || !o.channels) {
    free(o.tier);
    free(o.channels);
    return -ENOMEM;
  }
  l->v[l->n++] = o;
  return 0;
}

/* The whole future of contract rowid under env (in ladder order). Sets
 * *ret_snapshot when the contract follows its ladder snapshot. */
static int contract_future(const struct planner_env *env, int64_t rowid, int64_t now,
                           struct occ_list *ret, bool *ret_snapshot, char **ret_id) {
  struct planner_contract pc = {0};
  int r = planner_build_input(env, rowid, now, &pc);
  if (r >= 0 && pc.policy)
    r = planner_simulate(env, &pc, now, TIME_NEVER, occ_cb, ret);
  if (r >= 0) {
    *ret_snapshot = pc.from_snapshot;
    if (ret_id && !*ret_id && !(*ret_id = strdup(pc.c.id)))
      r = -ENOMEM;
  }
  planner_contract_done(&pc);
  return r;
}

struct diff_summary {
  size_t contracts, changed, in_ladder, moved, added, removed, channels;
};

struct diff_ctx {
  struct cli *cli;
  int64_t from, until;
  struct cli_table *table; /* NULL with --json */
  json_t *changes;         /* --json */
  struct diff_summary sum;
};

static const struct occ *occ_find(const struct occ_list *l, const char *tier, int32_t step) {
  for (size_t k = 0; k < l->n; k++)
    if (l->v[k].step == step && streq(l->v[k].tier, tier))
      return &l->v[k];
  return NULL;
}

/* "+7d", "-2h30m", "+1d 2h": the move from a to b. */
static char *format_delta(int64_t a, int64_t b, char out[static 32]) {
  int64_t d = b - a;
  uint64_t v = d < 0 ? -(uint64_t)d : (uint64_t)d;
  char buf[32]; /* "+213503982334601d 23h59m59s" at most */
  int n = snprintf(buf, sizeof buf, "%c", d < 0 ? '-' : '+');
  const struct {
    uint64_t s;
    const char *u;
  } units[] = {{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}};
  bool any = false;
  for (size_t k = 0; k < ELEMENTSOF(units); k++) {
    uint64_t q = v / units[k].s;
    v %= units[k].s;
    if (q == 0)
      continue;
    n += snprintf(buf + n, sizeof buf - (size_t)n, "%s%" PRIu64 "%s",
                  any && units[k].s == 3600 ? " " : "", q, units[k].u);
    any = true;
  }
  snprintf(out, 32, "%s", buf);
  return out;
}

static bool in_period(const struct diff_ctx *x, const struct occ *o) {
  return o && o->at >= x->from && o->at < x->until;
}

static int diff_add(struct diff_ctx *x, const char *id, const char *tier, int32_t step,
                    const struct occ *o, const struct occ *n, const char *change) {
  char a[21] = "-", b[21] = "-", delta[32];
  if (o)
    format_rfc3339(o->at, a);
  if (n)
    format_rfc3339(n->at, b);
  if (x->table) {
    char st[16];
    _cleanup_free_ char *what = NULL;
    snprintf(st, sizeof st, "%" PRId32, step);
    if (streq(change, "moved"))
      what = strprintf("moved %s", format_delta(o->at, n->at, delta));
    else if (streq(change, "channels"))
      what = strprintf("channels %s → %s", o->channels, n->channels);
    else
      what = strdup(change);
    if (!what)
      return -ENOMEM;
    const char *cells[] = {id, tier, st, a, b, what};
    return cli_table_add(x->table, cells);
  }
  json_t *j = json_object();
  if (!j || cli_json_set(j, "contract_id", cli_json_str(id)) < 0 ||
      cli_json_set(j, "tier", cli_json_str(tier)) < 0 ||
      cli_json_set(j, "step", json_integer(step)) < 0 ||
      cli_json_set(j, "change", json_string(change)) < 0 ||
      cli_json_set(j, "old_at", o ? cli_json_time(o->at) : json_null()) < 0 ||
      cli_json_set(j, "new_at", n ? cli_json_time(n->at) : json_null()) < 0 ||
      cli_json_set(j, "old_channels", o ? cli_json_str(o->channels) : json_null()) < 0 ||
      cli_json_set(j, "new_channels", n ? cli_json_str(n->channels) : json_null()) < 0 ||
      json_array_append_new(x->changes, j) < 0) {
    json_decref(j);
    return -ENOMEM;
  }
  return 0;
}

/* Compares one contract's futures and records what moves within the period. */
static int diff_contract(struct diff_ctx *x, const char *id, const struct occ_list *old,
                         const struct occ_list *new) {
  bool changed = false;
  int r;
  for (size_t k = 0; k < old->n; k++) {
    const struct occ *o = &old->v[k], *n = occ_find(new, o->tier, o->step);
    if (!in_period(x, o) && !in_period(x, n))
      continue;
    const char *what = !n                                 ? "removed"
                       : n->at != o->at                   ? "moved"
                       : !streq(n->channels, o->channels) ? "channels"
                                                          : NULL;
    if (!what)
      continue;
    changed = true;
    if (streq(what, "removed"))
      x->sum.removed++;
    else if (streq(what, "moved"))
      x->sum.moved++;
    else
      x->sum.channels++;
    if ((r = diff_add(x, id, o->tier, o->step, o, n, what)) < 0)
      return r;
  }
  for (size_t k = 0; k < new->n; k++) {
    const struct occ *n = &new->v[k];
    if (!in_period(x, n) || occ_find(old, n->tier, n->step))
      continue;
    changed = true;
    x->sum.added++;
    if ((r = diff_add(x, id, n->tier, n->step, NULL, n, "added")) < 0)
      return r;
  }
  if (changed)
    x->sum.changed++;
  return 0;
}

static int load_other_config(struct cli *c, const char *path, struct config **ret) {
  struct cal *cal = cli_cal(c);
  struct config_errors errs = {0};
  if (!cal)
    return EX_OSERR;
  int r = config_load(path, cal, ret, &errs);
  if (r < 0) {
    if (errs.n > 0)
      config_errors_print(&errs, stderr);
    else
      cli_error("cannot load config %s: %s", path, strerror(-r));
    config_errors_clear(&errs);
    return EX_CONFIG;
  }
  config_errors_clear(&errs);
  return 0;
}

static int run_diff(struct cli *c, struct store *s, const struct config *cur,
                    const struct config *next, int64_t now, int64_t from, int64_t until,
                    const char *only_id, int64_t only_rowid) {
  struct planner_env env_old, env_new;
  _cleanup_(planner_ladders_freep) struct planner_ladders *ladders = NULL;
  struct rowids cand = {0};
  struct diff_ctx x = {.cli = c, .from = from, .until = until};
  int r, ex = 0;

  if (planner_ladders_new(&ladders) < 0)
    goto oom;
  config_planner_env(cur, s, c->cal, &env_old);
  config_planner_env(next, s, c->cal, &env_new);
  env_old.ladders = env_new.ladders = ladders;

  if (only_id)
    r = rowids_push(&cand, only_rowid);
  else
    r = collect_candidates(s, (const struct config *const[]){cur, next}, 2, from, until, &cand);
  if (r < 0) {
    ex = store_error(s, "cannot read the store", r);
    goto out;
  }
  if (c->json) {
    if (!(x.changes = json_array()))
      goto oom;
  } else {
    static const char *const headers[] = {"CONTRACT", "TIER", "STEP", "OLD", "NEW", "CHANGE"};
    if (!(x.table = cli_table_new(ELEMENTSOF(headers), headers)))
      goto oom;
    cli_table_align_right(x.table, 2);
  }

  for (size_t k = 0; k < cand.n; k++) {
    struct occ_list old = {0}, new = {0};
    _cleanup_free_ char *id = NULL;
    bool snap_old = false, snap_new = false;
    r = contract_future(&env_old, cand.v[k], now, &old, &snap_old, &id);
    if (r >= 0)
      r = contract_future(&env_new, cand.v[k], now, &new, &snap_new, &id);
    if (r >= 0) {
      x.sum.contracts++;
      if (snap_old)
        x.sum.in_ladder++;
      r = diff_contract(&x, id, &old, &new);
    }
    occ_list_done(&old);
    occ_list_done(&new);
    if (r == -ENOENT)
      continue; /* deleted meanwhile */
    if (r == -ENOMEM)
      goto oom;
    if (r < 0) {
      ex = store_error(s, "cannot plan", r);
      goto out;
    }
  }

  char a[21], b[21];
  format_rfc3339(from, a);
  format_rfc3339(until, b);
  size_t n_changes = x.sum.moved + x.sum.added + x.sum.removed + x.sum.channels;
  if (c->json) {
    json_t *j = json_pack("{s:s, s:s, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}}", "from", a,
                          "until", b, "changes", json_incref(x.changes), "summary", "contracts",
                          (json_int_t)x.sum.contracts, "changed", (json_int_t)x.sum.changed,
                          "in_ladder", (json_int_t)x.sum.in_ladder, "moved",
                          (json_int_t)x.sum.moved, "added", (json_int_t)x.sum.added, "removed",
                          (json_int_t)x.sum.removed, "channels", (json_int_t)x.sum.channels);
    if (!j)
      goto oom;
    ex = cli_json_print(j, stdout);
    json_decref(j);
    goto out;
  }
  if (n_changes > 0)
    cli_table_print(x.table, stdout);
  else
    printf("no reminder between %s and %s moves\n", a, b);
  printf("contracts: %zu compared, %zu changed, %zu in a ladder (they keep their snapshot; "
         "renewctl replan moves them)\n"
         "reminders: %zu moved, %zu added, %zu removed, %zu with other channels\n",
         x.sum.contracts, x.sum.changed, x.sum.in_ladder, x.sum.moved, x.sum.added, x.sum.removed,
         x.sum.channels);
  goto out;
oom:
  cli_error("out of memory");
  ex = EX_OSERR;
out:
  free(cand.v);
  cli_table_free(x.table);
  json_decref(x.changes);
  return ex;
}

/* ---- plan ------------------------------------------------------------------------------ */

static void plan_usage(void) {
  fputs("Usage: renewctl plan [--contract ID] [--from T] [--days N] [--now T] [--json]\n"
        "       renewctl [--config CURRENT.conf] plan --config NEW.conf --diff [--days N]\n"
        "\n"
        "Show the reminders of the period [--from, --from + --days) as a timeline: when\n"
        "(UTC and in the recipient's zone), contract, tier and step, channel, recipient\n"
        "(the customer's address, or the sales owner) and status: what is recorded\n"
        "(sent, pending, skipped, ...) and what the daemon will do if nobody answers\n"
        "(planned, or skip with the reason). One contract, or every contract with\n"
        "something in the period.\n"
        "\n"
        "  --contract ID   only this contract\n"
        "  --from T        start of the period: RFC 3339 instant or date (UTC); default now\n"
        "  --days N        length of the period in days (default 30)\n"
        "  --now T         plan as if the clock read T (stores run with renewd --simulate)\n"
        "  --diff          compare the plans under the current config and the config given\n"
        "                  with --config after the command: what moves, is added or removed\n"
        "                  (contracts already in a ladder keep their snapshot)\n"
        "  --current PATH  with --diff: the current config (default: --config before the\n"
        "                  command, else " CONFIG_DEFAULT_PATH ")\n"
        "  --json          JSON (docs/cli-json.md)\n",
        stdout);
}

int cmd_plan(struct cli *c, int argc, char **argv) {
  enum { OPT_CONTRACT = 0x3000, OPT_FROM, OPT_DAYS, OPT_NOW, OPT_DIFF, OPT_CURRENT };
  static const struct option options[] = {
      CLI_COMMON_OPTIONS,
      {"contract", required_argument, NULL, OPT_CONTRACT},
      {"from", required_argument, NULL, OPT_FROM},
      {"days", required_argument, NULL, OPT_DAYS},
      {"now", required_argument, NULL, OPT_NOW},
      {"diff", no_argument, NULL, OPT_DIFF},
      {"current", required_argument, NULL, OPT_CURRENT},
      {0},
  };
  const char *contract_id = NULL, *new_config = NULL, *current = NULL;
  const char *global_config = c->config_path; /* given before the command */
  int64_t now = time(NULL), from = 0, days = 30;
  bool have_from = false, diff = false;
  int opt, r, ex;

  while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
    if (opt == CLI_OPT_CONFIG) {
      new_config = optarg;
      continue;
    }
    if (cli_common_option(c, opt, optarg))
      continue;
    switch (opt) {
    case CLI_OPT_HELP:
      plan_usage();
      return 0;
    case OPT_CONTRACT:
      contract_id = optarg;
      break;
    case OPT_FROM:
      if (parse_instant(optarg, &from) < 0)
        return cli_usage_error("plan", "invalid --from '%s' (RFC 3339 or YYYY-MM-DD)", optarg);
      have_from = true;
      break;
    case OPT_DAYS:
      if (parse_int64(optarg, &days) < 0 || days <= 0 || days > 3660)
        return cli_usage_error("plan", "invalid --days '%s' (1..3660)", optarg);
      break;
    case OPT_NOW:
      if (parse_instant(optarg, &now) < 0)
        return cli_usage_error("plan", "invalid --now '%s' (RFC 3339 or YYYY-MM-DD)", optarg);
      break;
    case OPT_DIFF:
      diff = true;
      break;
    case OPT_CURRENT:
      current = optarg;
      break;
    default:
      return cli_usage_error("plan", "invalid option");
    }
  }
  if (optind != argc)
    return cli_usage_error("plan", "unexpected argument '%s'", argv[optind]);
  if (diff && !new_config)
    return cli_usage_error("plan", "--diff needs the new configuration: --config NEW.conf");
  if (!diff && current)
    return cli_usage_error("plan", "--current only goes with --diff");
  if (!have_from)
    from = now;
  int64_t until = from + days * 86400;

  /* The current config: with --diff, --current or the one before the command;
   * without, the last --config given. */
  if (diff)
    c->config_path = current ? current : global_config;
  else if (new_config)
    c->config_path = new_config;
  const struct config *cfg;
  if ((ex = need_config(c, "plan", &cfg)))
    return ex;
  if (!cli_cal(c))
    return EX_OSERR;

  _cleanup_(cli_store_freep) struct store *s = NULL;
  if ((ex = cli_open_store(c, STORE_READONLY | STORE_NO_CREATE, &s)))
    return ex;

  int64_t only_rowid = 0;
  if (contract_id) {
    struct contract co = {0};
    r = store_contract_get(s, contract_id, &co);
    if (r == -ENOENT) {
      cli_error("no contract '%s'", contract_id);
      return EX_DATAERR;
    }
    if (r < 0)
      return store_error(s, "cannot read the store", r);
    only_rowid = co.rowid;
    contract_clear(&co);
  }

  if (diff) {
    _cleanup_(config_freep) struct config *next = NULL;
    if ((ex = load_other_config(c, new_config, &next)))
      return ex;
    return run_diff(c, s, cfg, next, now, from, until, contract_id, only_rowid);
  }

  _cleanup_(planner_ladders_freep) struct planner_ladders *ladders = NULL;
  struct plan_ctx x = {.cli = c, .now = now, .from = from, .until = until};
  struct rowids cand = {0};
  ex = 0;
  if (planner_ladders_new(&ladders) < 0 || !(x.utc = cal_zone(c->cal, "UTC"))) {
    cli_error("out of memory");
    return EX_OSERR;
  }
  config_planner_env(cfg, s, c->cal, &x.env);
  x.env.ladders = ladders;
  if (contract_id)
    r = rowids_push(&cand, only_rowid);
  else
    r = collect_candidates(s, &cfg, 1, from, until, &cand);
  for (size_t k = 0; r >= 0 && k < cand.n; k++)
    r = plan_contract_rows(&x, cand.v[k]);
  if (r == -ENOMEM) {
    cli_error("out of memory");
    ex = EX_OSERR;
  } else if (r < 0)
    ex = store_error(s, "cannot plan", r);
  else
    ex = print_timeline(&x);
  free(cand.v);
  plan_ctx_done(&x);
  return ex;
}

/* ---- replan ---------------------------------------------------------------------------- */

struct replan_item {
  int64_t rowid;
  char *id;           /* owned */
  const char *policy; /* name of the current policy for its segment; borrowed from the config */
  const char *state;  /* static */
};

struct replan_list {
  struct replan_item *v; /* owned */
  size_t n, cap;
  const struct planner_env *env;
};

static void replan_list_done(struct replan_list *l) {
  for (size_t k = 0; k < l->n; k++)
    free(l->v[k].id);
  free(l->v);
}

static int replan_collect(const struct contract *co, const struct customer *cu, void *ud) {
  struct replan_list *l = ud;
  if (co->ladder_id == 0 || co->state == CONTRACT_RENEWED || co->state == CONTRACT_DECLINED ||
      co->state == CONTRACT_CLOSED)
    return 0;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    struct replan_item *v = realloc(l->v, cap * sizeof *v);
    if (!v)
      return -ENOMEM;
    l->v = v;
    l->cap = cap;
  }
  const struct policy *p = l->env->policy_for_segment(l->env->ud, cu ? cu->segment : NULL);
  struct replan_item it = {.rowid = co->rowid,
                           .id = strdup(co->id),
                           .policy = p ? p->name : NULL,
                           .state = contract_state_to_string(co->state)};
  if (!it.id)
    return -ENOMEM;
  l->v[l->n++] = it;
  return 0;
}

static void replan_usage(void) {
  fputs("Usage: renewctl replan (--contract ID | --all) [--dry-run] [--json]\n"
        "\n"
        "Move contracts that are already in a ladder (they keep the tiers they started\n"
        "with across config reloads) onto the current config's policy for their segment.\n"
        "Their history is kept: tiers of the new ladder with the same name and step\n"
        "count as already sent. renewd re-plans them on its next change poll.\n"
        "\n"
        "  --contract ID   this contract\n"
        "  --all           every contract in a ladder (not renewed, declined or closed)\n"
        "  --dry-run       show what would move, change nothing\n"
        "  --now T         the instant recorded for the change (default now)\n"
        "  --json          JSON (docs/cli-json.md)\n",
        stdout);
}

int cmd_replan(struct cli *c, int argc, char **argv) {
  enum { OPT_CONTRACT = 0x3000, OPT_ALL, OPT_DRY_RUN, OPT_NOW };
  static const struct option options[] = {
      CLI_COMMON_OPTIONS,
      {"contract", required_argument, NULL, OPT_CONTRACT},
      {"all", no_argument, NULL, OPT_ALL},
      {"dry-run", no_argument, NULL, OPT_DRY_RUN},
      {"now", required_argument, NULL, OPT_NOW},
      {0},
  };
  const char *contract_id = NULL;
  bool all = false, dry_run = false;
  int64_t now = time(NULL);
  int opt, r = 0, ex = 0;

  while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
    if (cli_common_option(c, opt, optarg))
      continue;
    switch (opt) {
    case CLI_OPT_HELP:
      replan_usage();
      return 0;
    case OPT_CONTRACT:
      contract_id = optarg;
      break;
    case OPT_ALL:
      all = true;
      break;
    case OPT_DRY_RUN:
      dry_run = true;
      break;
    case OPT_NOW:
      if (parse_instant(optarg, &now) < 0)
        return cli_usage_error("replan", "invalid --now '%s' (RFC 3339 or YYYY-MM-DD)", optarg);
      break;
    default:
      return cli_usage_error("replan", "invalid option");
    }
  }
  if (optind != argc)
    return cli_usage_error("replan", "unexpected argument '%s'", argv[optind]);
  if (!!contract_id == all)
    return cli_usage_error("replan", "give either --contract ID or --all");

  const struct config *cfg;
  if ((ex = need_config(c, "replan", &cfg)))
    return ex;
  if (!cli_cal(c))
    return EX_OSERR;
  _cleanup_(cli_store_freep) struct store *s = NULL;
  if ((ex = cli_open_store(c, (dry_run ? STORE_READONLY : 0) | STORE_NO_CREATE, &s)))
    return ex;

  struct planner_env env;
  config_planner_env(cfg, s, c->cal, &env);
  struct replan_list l = {.env = &env};
  size_t moved = 0, unchanged = 0;
  json_t *items = NULL;
  _cleanup_(table_freep) struct cli_table *t = NULL;

  if (contract_id) {
    struct contract co = {0};
    struct customer cu = {0};
    r = store_contract_get(s, contract_id, &co);
    if (r == -ENOENT) {
      cli_error("no contract '%s'", contract_id);
      return EX_DATAERR;
    }
    if (r >= 0 && !isempty(co.customer_id)) {
      r = store_customer_get(s, co.customer_id, &cu);
      if (r == -ENOENT)
        r = 0;
    }
    if (r >= 0)
      r = replan_collect(&co, cu.id ? &cu : NULL, &l);
    if (r >= 0 && l.n == 0)
      fprintf(stderr, "renewctl: %s is %s: nothing to replan\n", contract_id,
              co.ladder_id == 0 ? "not in a ladder yet (it already follows the current config)"
                                : contract_state_to_string(co.state));
    contract_clear(&co);
    customer_clear(&cu);
  } else
    r = store_contract_foreach(s, NULL, replan_collect, &l);
  if (r < 0) {
    ex = r == -ENOMEM ? EX_OSERR : store_error(s, "cannot read the store", r);
    goto out;
  }

  if (c->json) {
    if (!(items = json_array()))
      goto oom;
  } else {
    static const char *const headers[] = {"CONTRACT", "STATE", "POLICY", "LADDER"};
    if (!(t = cli_table_new(ELEMENTSOF(headers), headers)))
      goto oom;
  }
  for (size_t k = 0; k < l.n; k += REPLAN_BATCH) {
    size_t end = MIN(l.n, k + REPLAN_BATCH);
    if (!dry_run && (r = store_begin(s)) < 0) {
      ex = store_error(s, "cannot write the store", r);
      goto out;
    }
    for (size_t i = k; i < end; i++) {
      int64_t old_id = 0, new_id = 0;
      r = planner_rebase(&env, l.v[i].rowid, now, dry_run, &old_id, &new_id);
      if (r == -ENOENT) /* deleted meanwhile */
        continue;
      if (r < 0)
        break;
      if (r == 0) {
        unchanged++;
        continue;
      }
      moved++;
      char ladder[64], nl[24] = "new";
      if (new_id)
        snprintf(nl, sizeof nl, "%" PRId64, new_id);
      snprintf(ladder, sizeof ladder, "%" PRId64 " → %s", old_id, nl);
      if (t) {
        const char *cells[] = {l.v[i].id, l.v[i].state, l.v[i].policy, ladder};
        r = cli_table_add(t, cells);
      } else {
        json_t *j =
            json_pack("{s:s, s:s, s:s?, s:I, s:o}", "contract_id", l.v[i].id, "state", l.v[i].state,
                      "policy", l.v[i].policy, "old_ladder", (json_int_t)old_id, "new_ladder",
                      new_id ? json_integer(new_id) : json_null());
        r = j && json_array_append_new(items, j) == 0 ? 0 : -ENOMEM;
      }
      if (r < 0)
        break;
    }
    if (r >= 0 && !dry_run)
      r = store_commit(s);
    if (r < 0) {
      if (!dry_run)
        store_rollback(s);
      ex = r == -ENOMEM ? EX_OSERR : store_error(s, "cannot replan", r);
      goto out;
    }
  }

  if (c->json) {
    json_t *j = json_pack("{s:b, s:O, s:I, s:I}", "dry_run", dry_run, "moved", items, "moved_count",
                          (json_int_t)moved, "unchanged_count", (json_int_t)unchanged);
    if (!j)
      goto oom;
    ex = cli_json_print(j, stdout);
    json_decref(j);
    goto out;
  }
  if (moved)
    cli_table_print(t, stdout);
  printf("%zu contract%s %s to the current ladder, %zu already on it%s\n", moved,
         moved == 1 ? "" : "s", dry_run ? "would move" : "moved", unchanged,
         !dry_run && moved ? "; renewd re-plans them on its next change poll" : "");
  goto out;
oom:
  cli_error("out of memory");
  ex = EX_OSERR;
out:
  json_decref(items);
  replan_list_done(&l);
  return ex;
}
