/* cmd_respond: `renewctl respond ID KIND ...` (record an answer through the
 * contract state machine, core/lifecycle) and `renewctl history ID` (the whole
 * story of a contract in time order: reminders and their delivery results,
 * answers, events).
 *
 * respond opens the store for writing (never creates it) and loads the config
 * for the contract's policy: CallbackPause=, LapseGrace=, FallbackOwner= and
 * the channels of its first Audience=owner tier (from the ladder snapshot when
 * the contract already walks one, else from the policy of its segment).
 * Dates are read like the CSV import: a date is the end of that local day in
 * the customer's zone, an RFC 3339 timestamp is taken as is.
 * history is read-only. Owns: the store connection, a parsed ladder snapshot,
 * the JSON values it builds. Blocks on files only. */
#include <inttypes.h>
#include <time.h>

#include "cli/cli.h"
#include "core/ladder.h"
#include "core/lifecycle.h"

/* ---- shared ----------------------------------------------------------------------- */

/* The zone of a customer (its own, else the default zone). */
static const struct cal_zone *customer_zone(struct cli *c, const struct customer *cu,
                                            const struct cal_zone *fallback) {
  const struct cal_zone *z = cu && !isempty(cu->tz) ? cal_zone(cli_cal(c), cu->tz) : NULL;
  return z ? z : fallback;
}

/* Loads the contract and its customer (have_cu false when none). Returns 0 or
 * an EX_* code after printing. */
static int load_contract(struct cli *c, struct store *s, const char *id, struct contract *co,
                         struct customer *cu, bool *have_cu, const struct cal_zone **z) {
  const char *tz;
  int ex, r;
  if ((ex = cli_default_tz(c, &tz)))
    return ex;
  if (!cli_cal(c))
    return EX_OSERR;
  const struct cal_zone *dz = cal_zone(c->cal, tz);
  if (!dz) {
    cli_error("unknown time zone '%s' in [Daemon] TimeZone=", tz);
    return EX_CONFIG;
  }
  r = store_contract_get(s, id, co);
  if (r == -ENOENT) {
    cli_error("no contract '%s'", id);
    return EX_NOINPUT;
  }
  if (r < 0) {
    cli_error("cannot read contract '%s': %s", id, store_last_error(s));
    return EX_IOERR;
  }
  *have_cu = false;
  if (!isempty(co->customer_id)) {
    r = store_customer_get(s, co->customer_id, cu);
    if (r < 0 && r != -ENOENT) {
      cli_error("cannot read customer '%s': %s", co->customer_id, store_last_error(s));
      return EX_IOERR;
    }
    *have_cu = r >= 0;
  }
  *z = customer_zone(c, *have_cu ? cu : NULL, dz);
  return 0;
}

/* "2026-09-21 16:13 +02:00": t in zone z. */
static char *format_local(const struct cal_zone *z, int64_t t, char out[static 32]) {
  struct cal_local l;
  cal_to_local(z, t, &l);
  int off = l.utc_offset < 0 ? -l.utc_offset : l.utc_offset;
  snprintf(out, 32, "%04d-%02d-%02d %02d:%02d %c%02d:%02d", l.year, l.month, l.day, l.hour,
           l.minute, l.utc_offset < 0 ? '-' : '+', off / 3600, off / 60 % 60);
  return out;
}

/* ---- respond ---------------------------------------------------------------------- */

enum when {
  WHEN_END_OF_DAY, /* a date means: valid through that local day */
  WHEN_START,      /* a date means: the start of that local day */
};

/* YYYY-MM-DD (per `when`), "YYYY-MM-DD HH:MM" / "YYYY-MM-DDTHH:MM" local time
 * in z, or RFC 3339. 0 or -EINVAL. */
static int parse_when(const struct cal_zone *z, const char *s, enum when when, int64_t *ret) {
  int y, m, d, hh, mm;
  char tail;
  if (cal_parse_rfc3339(s, ret) >= 0)
    return 0;
  if (strlen(s) == 10) {
    if (cal_parse_date(s, &y, &m, &d) < 0)
      return -EINVAL;
    *ret =
        when == WHEN_END_OF_DAY ? cal_end_of_date(z, y, m, d) : cal_from_local(z, y, m, d, 0, 0, 0);
    return 0;
  }
  if (strlen(s) == 16 && (s[10] == ' ' || s[10] == 'T')) {
    char date[11];
    memcpy(date, s, 10);
    date[10] = 0;
    if (cal_parse_date(date, &y, &m, &d) < 0 || sscanf(s + 11, "%2d:%2d%c", &hh, &mm, &tail) != 2 ||
        s[13] != ':' || hh > 23 || mm > 59 || hh < 0 || mm < 0)
      return -EINVAL;
    *ret = cal_from_local(z, y, m, d, hh, mm, 0);
    return 0;
  }
  return -EINVAL;
}

/* The owner channels, pause and grace of a contract's policy. Owns what the
 * lifecycle_policy points to. */
struct respond_policy {
  struct lifecycle_policy lp;
  struct lifecycle_channel ch[16];
  struct policy *snapshot; /* parsed ladder snapshot, owned; NULL when from config */
};

static void respond_policy_done(struct respond_policy *p) {
  p->snapshot = policy_free(p->snapshot);
}

static int channel_addr(const struct config_channel *ch, enum lifecycle_addr *ret) {
  if (!ch || !ch->type)
    return -ENOENT;
  const char *type = config_channel_addr_type(ch);
  if (streq_ptr(type, "smtp"))
    *ret = LIFECYCLE_ADDR_EMAIL;
  else if (streq_ptr(type, "sms"))
    *ret = LIFECYCLE_ADDR_PHONE;
  else if (streq_ptr(type, "webhook"))
    *ret = LIFECYCLE_ADDR_URL;
  else
    return -EINVAL;
  return 0;
}

static int respond_policy_load(struct cli *c, struct store *s, const struct contract *co,
                               const struct customer *cu, struct respond_policy *rp) {
  const struct config *cfg;
  const struct policy *pol = NULL;
  int ex, r;
  if ((ex = cli_config(c, &cfg)))
    return ex;
  rp->lp = (struct lifecycle_policy){
      .callback_pause = LIFECYCLE_DEFAULT_CALLBACK_PAUSE,
      .lapse_grace = LIFECYCLE_DEFAULT_LAPSE_GRACE,
      .max_snooze = 0, /* staff may snooze longer than customers; expiry + grace still holds */
  };
  if (co->ladder_id != 0) {
    _cleanup_free_ char *text = NULL;
    r = store_ladder_get(s, co->ladder_id, &text);
    if (r >= 0)
      r = ladder_parse(text, &rp->snapshot);
    if (r < 0 && r != -ENOENT && r != -EINVAL) {
      cli_error("cannot read the ladder of contract '%s': %s", co->id,
                r == -ENOMEM ? "out of memory" : store_last_error(s));
      return r == -ENOMEM ? EX_OSERR : EX_IOERR;
    }
    pol = rp->snapshot;
  }
  if (!pol && cfg)
    pol = config_policy_for_segment(cfg, cu ? cu->segment : NULL);
  if (!pol)
    return 0; /* built-in defaults: no owner channels */
  rp->lp.callback_pause = pol->callback_pause;
  rp->lp.lapse_grace = pol->lapse_grace;
  rp->lp.fallback_owner = pol->fallback_owner;
  for (size_t t = 0; t < pol->n_tiers; t++) {
    const struct tier *ti = &pol->tiers[t];
    if (ti->audience != AUDIENCE_OWNER)
      continue;
    for (size_t k = 0; k < ti->n_channels && rp->lp.n_owner_channels < ELEMENTSOF(rp->ch); k++) {
      const struct config_channel *ch = cfg ? config_channel(cfg, ti->channels[k]) : NULL;
      enum lifecycle_addr addr;
      if (channel_addr(ch, &addr) < 0) {
        fprintf(stderr,
                "renewctl: warning: owner channel '%s' is not configured; no alert "
                "through it\n",
                ti->channels[k]);
        continue;
      }
      rp->ch[rp->lp.n_owner_channels++] = (struct lifecycle_channel){
          .name = ti->channels[k],
          .addr = addr,
          .default_url = addr == LIFECYCLE_ADDR_URL ? config_channel_get(ch, "URL") : NULL,
      };
    }
    break; /* the first owner tier only */
  }
  rp->lp.owner_channels = rp->ch;
  return 0;
}

static void respond_usage(void) {
  fputs("Usage: renewctl respond ID KIND [OPTIONS]\n"
        "\n"
        "Record an answer for contract ID through the state machine (docs/lifecycle.md):\n"
        "  renewed --expires-on DATE         the customer renewed; a new term starts\n"
        "  declined --reason R [--note TEXT] the customer declined (closed-lost)\n"
        "  snoozed --until DATE              no customer reminders until DATE\n"
        "  callback [--at TIME]              the customer wants a call; the owner is\n"
        "                                    alerted, customer reminders pause\n"
        "  lost --reason R [--note TEXT]     close the contract as lost\n"
        "  unsubscribed --channel C          opt the customer out of C\n"
        "  resubscribed --channel C          opt the customer back in to C\n"
        "\n"
        "  R: price, switched-provider, no-longer-needed, budget, missing-features, other\n"
        "  C: email, sms, webhook or all\n"
        "  DATE: YYYY-MM-DD (through the end of that day in the customer's time zone)\n"
        "        or an RFC 3339 timestamp; TIME: also \"YYYY-MM-DD HH:MM\" local time\n"
        "  --idempotency-key K  the same key again is a repeat and changes nothing\n"
        "  --json               print the result as JSON (docs/cli-json.md)\n"
        "\n"
        "Exit status: 0 recorded (or already recorded), 64 usage, 65 refused or\n"
        "invalid, 66 no such contract.\n",
        stdout);
}

static json_t *respond_json(const struct contract *co, const struct lifecycle_result *res,
                            const struct cal_zone *z) {
  char day[11];
  json_t *j = json_object();
  if (!j || cli_json_set(j, "contract", cli_json_str(co->id)) < 0 ||
      cli_json_set(j, "kind", cli_json_str(res->response.kind)) < 0 ||
      cli_json_set(j, "already_recorded", json_boolean(res->already_recorded)) < 0 ||
      cli_json_set(j, "response_id", json_integer(res->response_id)) < 0 ||
      cli_json_set(j, "previous_state",
                   json_string(contract_state_to_string(res->previous_state))) < 0 ||
      cli_json_set(j, "state", json_string(contract_state_to_string(res->new_state))) < 0 ||
      cli_json_set(j, "new_term", json_boolean(res->new_term)) < 0 ||
      cli_json_set(j, "term", json_integer(res->term)) < 0 ||
      cli_json_set(j, "expires_at", cli_json_time(res->expires_at)) < 0 ||
      cli_json_set(j, "expires_on", json_string(cli_format_last_day(z, res->expires_at, day))) <
          0 ||
      cli_json_set(j, "state_until", cli_json_time(res->state_until)) < 0 ||
      cli_json_set(j, "cancelled", json_integer(res->cancelled)) < 0 ||
      cli_json_set(j, "owner_alerts", json_integer(res->owner_alerts)) < 0 ||
      cli_json_set(j, "owner_alerts_skipped", json_integer(res->owner_alerts_skipped)) < 0 ||
      cli_json_set(j, "idempotency_key", cli_json_str(res->response.idem_key)) < 0 ||
      cli_json_set(j, "recorded_at", cli_json_time(res->response.created_at)) < 0) {
    json_decref(j);
    return NULL;
  }
  return j;
}

static void respond_print(const struct contract *co, const struct lifecycle_answer *a,
                          const struct lifecycle_result *res, const struct cal_zone *z) {
  char day[11], ts[21], loc[32];
  const char *from = contract_state_to_string(res->previous_state);
  if (res->already_recorded) {
    printf("%s: already recorded (response %" PRId64 ", %s on %s); nothing changed\n", co->id,
           res->response_id, res->response.kind, format_rfc3339(res->response.created_at, ts));
    return;
  }
  switch (a->kind) {
  case LIFECYCLE_RENEWED:
    printf("%s: %s → renewed (term %" PRId32 ", expires %s)\n", co->id, from, res->term,
           cli_format_last_day(z, res->expires_at, day));
    break;
  case LIFECYCLE_SNOOZED:
    printf("%s: %s → snoozed (until %s)\n", co->id, from,
           cli_format_last_day(z, res->state_until, day));
    break;
  case LIFECYCLE_CALLBACK:
    printf("%s: %s → callback (customer reminders paused until %s)\n", co->id, from,
           format_local(z, res->state_until, loc));
    break;
  case LIFECYCLE_DECLINED:
    printf("%s: %s → declined (reason: %s)\n", co->id, from, res->response.reason);
    break;
  case LIFECYCLE_LOST:
    printf("%s: %s → closed (lost: %s)\n", co->id, from, res->response.reason);
    break;
  case LIFECYCLE_UNSUBSCRIBED:
  case LIFECYCLE_RESUBSCRIBED:
    printf("%s: %s %s %s (state %s)\n", co->id, lifecycle_kind_to_string(a->kind),
           a->kind == LIFECYCLE_UNSUBSCRIBED ? "from" : "to", a->channel, from);
    break;
  default:
    printf("%s: %s recorded (state %s)\n", co->id, lifecycle_kind_to_string(a->kind), from);
    break;
  }
  if (res->cancelled)
    printf("  %u pending reminder%s cancelled\n", res->cancelled, res->cancelled == 1 ? "" : "s");
  if (res->alert_owner)
    printf("  owner alert: %u queued, %u skipped (see 'renewctl history %s')\n", res->owner_alerts,
           res->owner_alerts_skipped, co->id);
}

int cmd_respond(struct cli *c, int argc, char **argv) {
  enum { OPT_EXPIRES_ON = 0x3000, OPT_UNTIL, OPT_AT, OPT_REASON, OPT_NOTE, OPT_KEY, OPT_CHANNEL };
  static const struct option options[] = {
      CLI_COMMON_OPTIONS,
      {"expires-on", required_argument, NULL, OPT_EXPIRES_ON},
      {"until", required_argument, NULL, OPT_UNTIL},
      {"at", required_argument, NULL, OPT_AT},
      {"reason", required_argument, NULL, OPT_REASON},
      {"note", required_argument, NULL, OPT_NOTE},
      {"idempotency-key", required_argument, NULL, OPT_KEY},
      {"channel", required_argument, NULL, OPT_CHANNEL},
      {0},
  };
  const char *expires_on = NULL, *until = NULL, *at = NULL, *reason = NULL, *note = NULL,
             *key = NULL, *channel = NULL;
  _cleanup_(cli_store_freep) struct store *s = NULL;
  _cleanup_(contract_clear) struct contract co = {0};
  _cleanup_(customer_clear) struct customer cu = {0};
  _cleanup_(respond_policy_done) struct respond_policy rp = {0};
  _cleanup_(lifecycle_result_clear) struct lifecycle_result res = {0};
  const struct cal_zone *z = NULL;
  bool have_cu = false;
  int opt, r, ex;

  while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
    if (cli_common_option(c, opt, optarg))
      continue;
    switch (opt) {
    case CLI_OPT_HELP:
      respond_usage();
      return 0;
    case OPT_EXPIRES_ON:
      expires_on = optarg;
      break;
    case OPT_UNTIL:
      until = optarg;
      break;
    case OPT_AT:
      at = optarg;
      break;
    case OPT_REASON:
      reason = optarg;
      break;
    case OPT_NOTE:
      note = optarg;
      break;
    case OPT_KEY:
      key = optarg;
      break;
    case OPT_CHANNEL:
      channel = optarg;
      break;
    default:
      return cli_usage_error("respond", "invalid option");
    }
  }
  if (argc - optind != 2)
    return cli_usage_error("respond", argc - optind < 2 ? "missing contract ID or answer"
                                                        : "too many arguments");
  const char *id = argv[optind], *kind_s = argv[optind + 1];
  int kind = lifecycle_kind_from_string(kind_s);
  static const enum lifecycle_kind supported[] = {
      LIFECYCLE_RENEWED, LIFECYCLE_DECLINED,     LIFECYCLE_SNOOZED,      LIFECYCLE_CALLBACK,
      LIFECYCLE_LOST,    LIFECYCLE_UNSUBSCRIBED, LIFECYCLE_RESUBSCRIBED,
  };
  bool ok = false;
  for (size_t i = 0; kind >= 0 && i < ELEMENTSOF(supported); i++)
    ok = ok || (enum lifecycle_kind)kind == supported[i];
  if (!ok)
    return cli_usage_error("respond",
                           "unknown answer '%s' (renewed, declined, snoozed, callback, lost, "
                           "unsubscribed, resubscribed)",
                           kind_s);

  /* which options go with which answer */
  struct {
    const char *value, *name;
    bool allowed;
  } opts[] = {
      {expires_on, "--expires-on", kind == LIFECYCLE_RENEWED},
      {until, "--until", kind == LIFECYCLE_SNOOZED},
      {at, "--at", kind == LIFECYCLE_CALLBACK},
      {reason, "--reason", kind == LIFECYCLE_DECLINED || kind == LIFECYCLE_LOST},
      {note, "--note", kind != LIFECYCLE_UNSUBSCRIBED && kind != LIFECYCLE_RESUBSCRIBED},
      {channel, "--channel", kind == LIFECYCLE_UNSUBSCRIBED || kind == LIFECYCLE_RESUBSCRIBED},
  };
  for (size_t i = 0; i < ELEMENTSOF(opts); i++)
    if (opts[i].value && !opts[i].allowed)
      return cli_usage_error("respond", "%s does not go with %s", opts[i].name, kind_s);
  const char *missing =
      kind == LIFECYCLE_RENEWED && !expires_on                            ? "--expires-on DATE"
      : kind == LIFECYCLE_SNOOZED && !until                               ? "--until DATE"
      : (kind == LIFECYCLE_DECLINED || kind == LIFECYCLE_LOST) && !reason ? "--reason R"
      : (kind == LIFECYCLE_UNSUBSCRIBED || kind == LIFECYCLE_RESUBSCRIBED) && !channel
          ? "--channel C"
          : NULL;
  if (missing)
    return cli_usage_error("respond", "%s needs %s", kind_s, missing);
  if (reason && !lifecycle_reason_valid(reason)) {
    cli_error("unknown reason '%s' (price, switched-provider, no-longer-needed, budget, "
              "missing-features, other)",
              reason);
    return EX_DATAERR;
  }

  if ((ex = cli_open_store(c, STORE_NO_CREATE, &s)))
    return ex;
  if ((ex = load_contract(c, s, id, &co, &cu, &have_cu, &z)))
    return ex;
  if ((ex = respond_policy_load(c, s, &co, have_cu ? &cu : NULL, &rp)))
    return ex;

  struct lifecycle_answer a = {
      .contract_id = co.id,
      .kind = (enum lifecycle_kind)kind,
      .source = LIFECYCLE_SOURCE_RENEWCTL,
      .channel = channel,
      .reason = reason,
      .detail = note,
      .idem_key = key,
      .policy = &rp.lp,
  };
  const char *date = expires_on ? expires_on : until ? until : at;
  if (date) {
    int64_t t;
    if (parse_when(z, date, at ? WHEN_START : WHEN_END_OF_DAY, &t) < 0) {
      cli_error("invalid date '%s' (YYYY-MM-DD or an RFC 3339 timestamp%s)", date,
                at ? ", or YYYY-MM-DD HH:MM" : "");
      return EX_DATAERR;
    }
    if (expires_on)
      a.new_expires_at = t;
    else
      a.until = t;
  }

  char err[512];
  r = lifecycle_apply(s, &a, time(NULL), &res, err, sizeof err);
  switch (r) {
  case 0:
    break;
  case -ENOENT:
    cli_error("%s", err);
    return EX_NOINPUT;
  case -EPERM:
  case -EALREADY:
  case -EINVAL:
  case -EEXIST:
    cli_error("%s", err);
    return EX_DATAERR;
  case -EBUSY:
    cli_error("%s", err);
    return EX_UNAVAILABLE;
  case -ENOMEM:
    cli_error("out of memory");
    return EX_OSERR;
  default:
    cli_error("%s", err);
    return EX_IOERR;
  }

  if (c->json) {
    json_t *j = respond_json(&co, &res, z);
    if (!j) {
      cli_error("out of memory");
      return EX_OSERR;
    }
    ex = cli_json_print(j, stdout);
    json_decref(j);
    return ex;
  }
  respond_print(&co, &a, &res, z);
  return 0;
}

/* ---- history ---------------------------------------------------------------------- */

struct hitem {
  int64_t at;
  size_t seq;  /* collection order: ties keep it */
  json_t *obj; /* owned */
};

struct hist {
  struct hitem *v;
  size_t n, cap;
  const struct cal_zone *zone;
};

static void hist_done(struct hist *h) {
  for (size_t i = 0; i < h->n; i++)
    json_decref(h->v[i].obj);
  free(h->v);
  *h = (struct hist){0};
}

/* Adds obj (stolen) at instant at, with "at" and "local" set first. */
static int hist_add(struct hist *h, int64_t at, const char *type, json_t *obj) {
  char loc[32];
  if (!obj)
    return -ENOMEM;
  json_t *j = json_object();
  if (!j || cli_json_set(j, "at", cli_json_time(at)) < 0 ||
      cli_json_set(j, "local", json_string(format_local(h->zone, at, loc))) < 0 ||
      cli_json_set(j, "type", json_string(type)) < 0 || json_object_update(j, obj) < 0) {
    json_decref(j);
    json_decref(obj);
    return -ENOMEM;
  }
  json_decref(obj);
  if (h->n == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 32;
    struct hitem *v = realloc(h->v, cap * sizeof *v);
    if (!v) {
      json_decref(j);
      return -ENOMEM;
    }
    h->v = v;
    h->cap = cap;
  }
  h->v[h->n] = (struct hitem){.at = at, .seq = h->n, .obj = j};
  h->n++;
  return 0;
}

static int hitem_cmp(const void *a, const void *b) {
  const struct hitem *x = a, *y = b;
  if (x->at != y->at)
    return x->at < y->at ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int hist_response(const struct response *rs, void *ud) {
  json_t *j = json_object();
  if (!j || cli_json_set(j, "response_id", json_integer(rs->id)) < 0 ||
      cli_json_set(j, "term", json_integer(rs->term)) < 0 ||
      cli_json_set(j, "kind", cli_json_str(rs->kind)) < 0 ||
      cli_json_set(j, "source", cli_json_str(rs->source)) < 0 ||
      cli_json_set(j, "channel", cli_json_str(rs->channel)) < 0 ||
      cli_json_set(j, "reason", cli_json_str(rs->reason)) < 0 ||
      cli_json_set(j, "detail", cli_json_str(rs->detail)) < 0 ||
      cli_json_set(j, "until", cli_json_time(rs->until_at)) < 0 ||
      cli_json_set(j, "new_expires_at", cli_json_time(rs->new_expires_at)) < 0 ||
      cli_json_set(j, "idempotency_key", cli_json_str(rs->idem_key)) < 0) {
    json_decref(j);
    return -ENOMEM;
  }
  return hist_add(ud, rs->created_at, "response", j);
}

static int hist_event(const struct event *e, void *ud) {
  json_t *j = json_object();
  if (!j || cli_json_set(j, "event_id", json_integer(e->id)) < 0 ||
      cli_json_set(j, "kind", cli_json_str(e->kind)) < 0 ||
      cli_json_set(j, "detail", cli_json_str(e->detail)) < 0) {
    json_decref(j);
    return -ENOMEM;
  }
  return hist_add(ud, e->at, "event", j);
}

/* The reminder's fields shared by its "reminder" and "delivery" items. */
static json_t *reminder_base(const struct reminder *rm) {
  json_t *j = json_object();
  if (!j || cli_json_set(j, "reminder_id", json_integer(rm->id)) < 0 ||
      cli_json_set(j, "term", json_integer(rm->term)) < 0 ||
      cli_json_set(j, "tier", cli_json_str(rm->tier)) < 0 ||
      cli_json_set(j, "step", json_integer(rm->step)) < 0 ||
      cli_json_set(j, "channel", cli_json_str(rm->channel)) < 0 ||
      cli_json_set(j, "audience", cli_json_str(rm->audience)) < 0 ||
      cli_json_set(j, "recipient", cli_json_str(rm->recipient)) < 0) {
    json_decref(j);
    return NULL;
  }
  return j;
}

/* Two items per reminder: "reminder" when the intent was recorded, and
 * "delivery" with its outcome (sent, retry, dead, cancelled, sending) when it
 * has one, and the provider's receipt (delivery_status) when one came. Skipped rows are decided
 * when recorded: one item. */
static int hist_reminder(const struct reminder *rm, void *ud) {
  const char *status = reminder_status_to_string(rm->status);
  json_t *j = reminder_base(rm);
  bool one = rm->status == REMINDER_PENDING || rm->status == REMINDER_SKIPPED;
  if (!j || cli_json_set(j, "status", json_string(one ? status : "pending")) < 0 ||
      cli_json_set(j, "due_at", cli_json_time(rm->due_at)) < 0 ||
      cli_json_set(j, "idempotency_key", json_string(rm->idem_key)) < 0 ||
      cli_json_set(j, "reason",
                   cli_json_str(rm->status == REMINDER_SKIPPED ? rm->last_error : NULL)) < 0) {
    json_decref(j);
    return -ENOMEM;
  }
  int r = hist_add(ud, rm->created_at, "reminder", j);
  if (r < 0 || one)
    return r;
  j = reminder_base(rm);
  if (!j || cli_json_set(j, "status", json_string(status)) < 0 ||
      cli_json_set(j, "attempts", json_integer(rm->attempts)) < 0 ||
      cli_json_set(j, "last_error", cli_json_str(rm->last_error)) < 0 ||
      cli_json_set(j, "provider_id", cli_json_str(rm->provider_id)) < 0 ||
      cli_json_set(j, "next_attempt_at",
                   cli_json_time(rm->status == REMINDER_RETRY ? rm->next_attempt_at : 0)) < 0 ||
      cli_json_set(j, "sent_at", cli_json_time(rm->sent_at)) < 0 ||
      cli_json_set(j, "delivery_status", cli_json_str(rm->delivery_status)) < 0 ||
      cli_json_set(j, "delivery_error", cli_json_str(rm->delivery_error)) < 0 ||
      cli_json_set(j, "delivery_at", cli_json_time(rm->delivery_at)) < 0) {
    json_decref(j);
    return -ENOMEM;
  }
  return hist_add(ud, rm->sent_at ? rm->sent_at : rm->updated_at, "delivery", j);
}

static const char *jstr(const json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? s : "";
}

static json_int_t jint(const json_t *o, const char *key) {
  return json_integer_value(json_object_get(o, key));
}

/* The DETAIL cell of one item. */
static void history_text(const json_t *it, struct buf *b) {
  const char *type = jstr(it, "type");
  buf_reset(b);
  if (streq(type, "reminder") || streq(type, "delivery")) {
    buf_printf(b, "%s step %" JSON_INTEGER_FORMAT " via %s to %s%s%s", jstr(it, "tier"),
               jint(it, "step"), jstr(it, "channel"), jstr(it, "audience"),
               *jstr(it, "recipient") ? " " : "", jstr(it, "recipient"));
    const char *st = jstr(it, "status");
    if (streq(type, "reminder")) {
      if (streq(st, "skipped"))
        buf_printf(b, ": skipped (%s)", *jstr(it, "reason") ? jstr(it, "reason") : "no reason");
      else
        buf_printf(b, ": queued, due %s", jstr(it, "due_at"));
      return;
    }
    json_int_t n = jint(it, "attempts");
    buf_printf(b, ": %s", st);
    if (n > 0)
      buf_printf(b, " after %" JSON_INTEGER_FORMAT " attempt%s", n, n == 1 ? "" : "s");
    if (*jstr(it, "last_error"))
      buf_printf(b, ", last error: %s", jstr(it, "last_error"));
    if (*jstr(it, "next_attempt_at"))
      buf_printf(b, ", next attempt %s", jstr(it, "next_attempt_at"));
    if (*jstr(it, "provider_id"))
      buf_printf(b, ", provider id %s", jstr(it, "provider_id"));
    if (*jstr(it, "delivery_status"))
      buf_printf(b, ", provider reports %s%s%s (%s)", jstr(it, "delivery_status"),
                 *jstr(it, "delivery_error") ? " error " : "", jstr(it, "delivery_error"),
                 jstr(it, "delivery_at"));
  } else if (streq(type, "response")) {
    buf_printf(b, "%s via %s", jstr(it, "kind"), jstr(it, "source"));
    if (*jstr(it, "channel"))
      buf_printf(b, " (%s)", jstr(it, "channel"));
    if (*jstr(it, "reason"))
      buf_printf(b, ", reason %s", jstr(it, "reason"));
    if (*jstr(it, "until"))
      buf_printf(b, ", until %s", jstr(it, "until"));
    if (*jstr(it, "new_expires_at"))
      buf_printf(b, ", new expiry %s", jstr(it, "new_expires_at"));
    if (*jstr(it, "detail"))
      buf_printf(b, ": \"%s\"", jstr(it, "detail"));
  } else {
    buf_printf(b, "%s%s%s", jstr(it, "kind"), *jstr(it, "detail") ? " " : "", jstr(it, "detail"));
  }
}

static void history_usage(void) {
  fputs("Usage: renewctl history ID [--json]\n"
        "\n"
        "The story of contract ID in time order, one line each with the UTC instant\n"
        "and the customer's local time: reminders when recorded and their delivery\n"
        "result, answers, and state changes and other events. Exit 66 when there is\n"
        "no such contract.\n",
        stdout);
}

int cmd_history(struct cli *c, int argc, char **argv) {
  static const struct option options[] = {CLI_COMMON_OPTIONS, {0}};
  _cleanup_(cli_store_freep) struct store *s = NULL;
  _cleanup_(contract_clear) struct contract co = {0};
  _cleanup_(customer_clear) struct customer cu = {0};
  _cleanup_(hist_done) struct hist h = {0};
  _cleanup_(buf_free) struct buf b = {0};
  bool have_cu = false;
  int opt, r, ex;

  while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
    if (cli_common_option(c, opt, optarg))
      continue;
    if (opt == CLI_OPT_HELP) {
      history_usage();
      return 0;
    }
    return cli_usage_error("history", "invalid option");
  }
  if (optind + 1 != argc)
    return cli_usage_error("history",
                           optind >= argc ? "missing contract ID" : "too many arguments");
  const char *id = argv[optind];

  if ((ex = cli_open_store(c, STORE_READONLY | STORE_NO_CREATE, &s)))
    return ex;
  if ((ex = load_contract(c, s, id, &co, &cu, &have_cu, &h.zone)))
    return ex;

  if ((r = store_response_foreach_contract(s, id, -1, hist_response, &h)) < 0 ||
      (r = store_event_foreach_contract(s, id, hist_event, &h)) < 0 ||
      (r = store_reminder_foreach_contract(s, id, -1, hist_reminder, &h)) < 0) {
    if (r == -ENOMEM)
      cli_error("out of memory");
    else
      cli_error("cannot read the history of '%s': %s", id, store_last_error(s));
    return r == -ENOMEM ? EX_OSERR : EX_IOERR;
  }
  if (h.n > 1)
    qsort(h.v, h.n, sizeof *h.v, hitem_cmp);

  if (c->json) {
    json_t *root = json_object(), *items = json_array();
    bool ok = root && items && cli_json_set(root, "contract", cli_json_str(co.id)) >= 0 &&
              cli_json_set(root, "timezone", json_string(cal_zone_name(h.zone))) >= 0 &&
              cli_json_set(root, "state", json_string(contract_state_to_string(co.state))) >= 0 &&
              cli_json_set(root, "term", json_integer(co.term)) >= 0;
    for (size_t i = 0; ok && i < h.n; i++)
      ok = json_array_append(items, h.v[i].obj) == 0;
    ok = ok && json_object_set(root, "items", items) == 0;
    json_decref(items);
    if (!ok) {
      json_decref(root);
      cli_error("out of memory");
      return EX_OSERR;
    }
    ex = cli_json_print(root, stdout);
    json_decref(root);
    return ex;
  }

  char local_hdr[80];
  snprintf(local_hdr, sizeof local_hdr, "LOCAL (%s)", cal_zone_name(h.zone));
  const char *const headers[] = {"UTC", local_hdr, "WHAT", "DETAIL"};
  struct cli_table *t = cli_table_new(ELEMENTSOF(headers), headers);
  if (!t) {
    cli_error("out of memory");
    return EX_OSERR;
  }
  printf("Contract %s: %s, term %" PRId32 "\n", co.id, contract_state_to_string(co.state), co.term);
  size_t shown = 0;
  for (size_t i = 0; i < h.n; i++) {
    const json_t *it = h.v[i].obj;
    /* each answer has its own "response" line; its answer.* event would repeat it */
    if (streq(jstr(it, "type"), "event") && strncmp(jstr(it, "kind"), "answer.", 7) == 0)
      continue;
    history_text(it, &b);
    const char *cells[] = {jstr(it, "at"), jstr(it, "local"), jstr(it, "type"),
                           b.data ? b.data : ""};
    if (cli_table_add(t, cells) < 0) {
      cli_table_free(t);
      cli_error("out of memory");
      return EX_OSERR;
    }
    shown++;
  }
  if (shown)
    cli_table_print(t, stdout);
  else
    printf("(nothing yet)\n");
  cli_table_free(t);
  return 0;
}
