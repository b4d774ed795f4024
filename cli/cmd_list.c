/* cmd_list: `renewctl list` (contracts as a table or a JSON array) and
 * `renewctl show ID` (one contract, its customer, owner and history).
 *
 * Read-only: opens the store with STORE_READONLY | STORE_NO_CREATE. Dates in
 * tables are local dates in the customer's zone; JSON carries RFC 3339 UTC
 * instants plus the local date (docs/cli-json.md). `list --json` streams one
 * object per line inside the array, so memory does not grow with the book;
 * the table keeps its cells (it must know the column widths first).
 * Owns: the store connection and the table/JSON values it builds. */
#include <inttypes.h>
#include <time.h>

#include "cli/cli.h"

/* The zone of a customer (its own, else the default zone). */
static const struct cal_zone *zone_of(struct cli *c, const struct customer *cu,
                                      const struct cal_zone *fallback) {
  const struct cal_zone *z = cu && !isempty(cu->tz) ? cal_zone(cli_cal(c), cu->tz) : NULL;
  return z ? z : fallback;
}

static json_t *money_json(int64_t minor) {
  char b[48];
  uint64_t a = minor < 0 ? -(uint64_t)minor : (uint64_t)minor;
  snprintf(b, sizeof(b), "%s%" PRIu64 ".%02u", minor < 0 ? "-" : "", a / 100, (unsigned)(a % 100));
  return json_string(b);
}

/* The contract as a JSON object (fields documented in docs/cli-json.md). */
static json_t *contract_json(const struct contract *co, const struct customer *cu,
                             const struct cal_zone *z, bool full) {
  char day[11];
  json_t *j = json_object();
  bool money = co->value_minor != 0 || !isempty(co->currency);
  if (!j || cli_json_set(j, "id", cli_json_str(co->id)) < 0 ||
      cli_json_set(j, "customer_id", cli_json_str(co->customer_id)) < 0 ||
      cli_json_set(j, "customer_name", cli_json_str(cu ? cu->name : NULL)) < 0 ||
      cli_json_set(j, "segment", cli_json_str(cu ? cu->segment : NULL)) < 0 ||
      cli_json_set(j, "owner", cli_json_str(cu ? cu->owner_id : NULL)) < 0 ||
      cli_json_set(j, "product", cli_json_str(co->product)) < 0 ||
      cli_json_set(j, "timezone", json_string(cal_zone_name(z))) < 0 ||
      cli_json_set(j, "starts_at", cli_json_time(co->starts_at)) < 0 ||
      cli_json_set(j, "expires_at", cli_json_time(co->expires_at)) < 0 ||
      cli_json_set(j, "expires_on", json_string(cli_format_last_day(z, co->expires_at, day))) < 0 ||
      cli_json_set(j, "state", json_string(contract_state_to_string(co->state))) < 0 ||
      cli_json_set(j, "state_until", cli_json_time(co->state_until)) < 0 ||
      cli_json_set(j, "term", json_integer(co->term)) < 0 ||
      cli_json_set(j, "value", money ? money_json(co->value_minor) : json_null()) < 0 ||
      cli_json_set(j, "value_minor", json_integer(co->value_minor)) < 0 ||
      cli_json_set(j, "currency", cli_json_str(co->currency)) < 0 ||
      cli_json_set(j, "change_seq", json_integer(co->change_seq)) < 0)
    goto oom;
  if (full && (cli_json_set(j, "next_due_at", cli_json_time(co->next_due_at)) < 0 ||
               cli_json_set(j, "created_at", cli_json_time(co->created_at)) < 0 ||
               cli_json_set(j, "updated_at", cli_json_time(co->updated_at)) < 0))
    goto oom;
  return j;
oom:
  json_decref(j);
  return NULL;
}

/* ---- list ------------------------------------------------------------------------- */

struct list_ctx {
  struct cli *cli;
  const struct cal_zone *default_zone;
  struct cli_table *table; /* NULL with --json */
  size_t n;                /* rows emitted */
  int error;               /* EX_* code of a failure inside the walk */
};

static int list_row(const struct contract *co, const struct customer *cu, void *ud) {
  struct list_ctx *l = ud;
  const struct cal_zone *z = zone_of(l->cli, cu, l->default_zone);
  if (l->table) {
    char day[11], money[48], term[16];
    snprintf(term, sizeof(term), "%" PRId32, co->term);
    const char *cells[] = {
        co->id,
        cu && !isempty(cu->name) ? cu->name : co->customer_id,
        cu ? cu->segment : NULL,
        cli_format_last_day(z, co->expires_at, day),
        contract_state_to_string(co->state),
        term,
        cli_format_money(co->value_minor, co->currency, money, sizeof(money)),
    };
    if (cli_table_add(l->table, cells) < 0)
      return -ENOMEM;
  } else {
    json_t *j = contract_json(co, cu, z, false);
    if (!j)
      return -ENOMEM;
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!s)
      return -ENOMEM;
    printf("%s\n%s", l->n ? "," : "[", s);
    free(s);
  }
  l->n++;
  return 0;
}

static void list_usage(void) {
  fputs("Usage: renewctl list [--state S] [--segment S] [--expiring-within 30d] [--limit N]\n"
        "                     [--json]\n"
        "\n"
        "List contracts ordered by expiry: ID, CUSTOMER, SEGMENT, EXPIRES (last valid\n"
        "day, local to the customer), STATE, TERM, VALUE.\n"
        "\n"
        "  --state S             active, reminding, renewed, declined, snoozed,\n"
        "                        callback, lapsed or closed\n"
        "  --segment S           only customers of segment S\n"
        "  --expiring-within D   expiring between now and now + D (30d, 12h, 2w)\n"
        "  --limit N             at most N contracts\n"
        "  --json                a JSON array (docs/cli-json.md)\n",
        stdout);
}

int cmd_list(struct cli *c, int argc, char **argv) {
  enum { OPT_STATE = 0x3000, OPT_SEGMENT, OPT_WITHIN, OPT_LIMIT };
  static const struct option options[] = {
      CLI_COMMON_OPTIONS,
      {"state", required_argument, NULL, OPT_STATE},
      {"segment", required_argument, NULL, OPT_SEGMENT},
      {"expiring-within", required_argument, NULL, OPT_WITHIN},
      {"limit", required_argument, NULL, OPT_LIMIT},
      {0},
  };
  struct store_contract_filter f = {.state = -1};
  _cleanup_(cli_store_freep) struct store *s = NULL;
  struct list_ctx l = {.cli = c};
  int64_t within = 0, v;
  const char *tz;
  int opt, r, ex;

  while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
    if (cli_common_option(c, opt, optarg))
      continue;
    switch (opt) {
    case CLI_OPT_HELP:
      list_usage();
      return 0;
    case OPT_STATE:
      if ((f.state = contract_state_from_string(optarg)) < 0)
        return cli_usage_error("list",
                               "unknown state '%s' (active, reminding, renewed, declined, "
                               "snoozed, callback, lapsed, closed)",
                               optarg);
      break;
    case OPT_SEGMENT:
      f.segment = optarg;
      break;
    case OPT_WITHIN:
      if (cli_parse_within(optarg, &within) < 0)
        return cli_usage_error("list", "invalid --expiring-within '%s' (e.g. 30d, 12h, 2w)",
                               optarg);
      break;
    case OPT_LIMIT:
      if (parse_int64(optarg, &v) < 0 || v <= 0)
        return cli_usage_error("list", "invalid --limit '%s'", optarg);
      f.limit = (size_t)v;
      break;
    default:
      return cli_usage_error("list", "invalid option");
    }
  }
  if (optind != argc)
    return cli_usage_error("list", "unexpected argument '%s'", argv[optind]);
  if (within > 0) {
    f.expires_from = time(NULL);
    f.expires_until = f.expires_from + within;
  }

  if ((ex = cli_default_tz(c, &tz)))
    return ex;
  if (!cli_cal(c))
    return EX_OSERR;
  l.default_zone = cal_zone(c->cal, tz);
  if (!l.default_zone) {
    cli_error("unknown time zone '%s' in [Daemon] TimeZone=", tz);
    return EX_CONFIG;
  }
  if ((ex = cli_open_store(c, STORE_READONLY | STORE_NO_CREATE, &s)))
    return ex;

  if (!c->json) {
    static const char *const headers[] = {"ID",    "CUSTOMER", "SEGMENT", "EXPIRES",
                                          "STATE", "TERM",     "VALUE"};
    if (!(l.table = cli_table_new(ELEMENTSOF(headers), headers))) {
      cli_error("out of memory");
      return EX_OSERR;
    }
    cli_table_max_width(l.table, 1, 40);
    cli_table_align_right(l.table, 5);
    cli_table_align_right(l.table, 6);
  }
  r = store_contract_foreach(s, &f, list_row, &l);
  if (r < 0) {
    if (!l.table && l.n)
      printf("\n]\n"); /* keep what was printed parseable */
    cli_error("cannot list contracts: %s", r == -ENOMEM ? "out of memory" : store_last_error(s));
    cli_table_free(l.table);
    return r == -ENOMEM ? EX_OSERR : EX_IOERR;
  }
  if (l.table) {
    if (l.n > 0)
      cli_table_print(l.table, stdout);
    else if (!c->json)
      fputs("No contracts.\n", stderr);
    cli_table_free(l.table);
  } else
    printf(l.n ? "\n]\n" : "[]\n");
  return 0;
}

/* ---- show ------------------------------------------------------------------------- */

struct history {
  json_t *items; /* array of objects, in collection order */
  int64_t *at;   /* instant of each item, for sorting */
  size_t n, cap;
};

static int history_add(struct history *h, int64_t at, json_t *item) {
  if (!item)
    return -ENOMEM;
  if (h->n == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 16;
    int64_t *a = realloc(h->at, cap * sizeof(*a));
    if (!a) {
      json_decref(item);
      return -ENOMEM;
    }
    h->at = a;
    h->cap = cap;
  }
  if (json_array_append_new(h->items, item) < 0)
    return -ENOMEM;
  h->at[h->n++] = at;
  return 0;
}

static int hist_reminder(const struct reminder *rm, void *ud) {
  json_t *j = json_object();
  int64_t at = rm->sent_at ? rm->sent_at : rm->due_at;
  if (!j || cli_json_set(j, "at", cli_json_time(at)) < 0 ||
      cli_json_set(j, "type", json_string("reminder")) < 0 ||
      cli_json_set(j, "id", json_integer(rm->id)) < 0 ||
      cli_json_set(j, "term", json_integer(rm->term)) < 0 ||
      cli_json_set(j, "tier", cli_json_str(rm->tier)) < 0 ||
      cli_json_set(j, "step", json_integer(rm->step)) < 0 ||
      cli_json_set(j, "channel", cli_json_str(rm->channel)) < 0 ||
      cli_json_set(j, "audience", cli_json_str(rm->audience)) < 0 ||
      cli_json_set(j, "recipient", cli_json_str(rm->recipient)) < 0 ||
      cli_json_set(j, "status", json_string(reminder_status_to_string(rm->status))) < 0 ||
      cli_json_set(j, "attempts", json_integer(rm->attempts)) < 0 ||
      cli_json_set(j, "due_at", cli_json_time(rm->due_at)) < 0 ||
      cli_json_set(j, "sent_at", cli_json_time(rm->sent_at)) < 0 ||
      cli_json_set(j, "last_error", cli_json_str(rm->last_error)) < 0 ||
      cli_json_set(j, "idem_key", json_string(rm->idem_key)) < 0) {
    json_decref(j);
    return -ENOMEM;
  }
  return history_add(ud, at, j);
}

static int hist_response(const struct response *rs, void *ud) {
  json_t *j = json_object();
  if (!j || cli_json_set(j, "at", cli_json_time(rs->created_at)) < 0 ||
      cli_json_set(j, "type", json_string("response")) < 0 ||
      cli_json_set(j, "id", json_integer(rs->id)) < 0 ||
      cli_json_set(j, "term", json_integer(rs->term)) < 0 ||
      cli_json_set(j, "kind", cli_json_str(rs->kind)) < 0 ||
      cli_json_set(j, "source", cli_json_str(rs->source)) < 0 ||
      cli_json_set(j, "channel", cli_json_str(rs->channel)) < 0 ||
      cli_json_set(j, "reason", cli_json_str(rs->reason)) < 0 ||
      cli_json_set(j, "detail", cli_json_str(rs->detail)) < 0 ||
      cli_json_set(j, "until", cli_json_time(rs->until_at)) < 0 ||
      cli_json_set(j, "new_expires_at", cli_json_time(rs->new_expires_at)) < 0) {
    json_decref(j);
    return -ENOMEM;
  }
  return history_add(ud, rs->created_at, j);
}

static int hist_event(const struct event *e, void *ud) {
  json_t *j = json_object();
  if (!j || cli_json_set(j, "at", cli_json_time(e->at)) < 0 ||
      cli_json_set(j, "type", json_string("event")) < 0 ||
      cli_json_set(j, "id", json_integer(e->id)) < 0 ||
      cli_json_set(j, "kind", cli_json_str(e->kind)) < 0 ||
      cli_json_set(j, "detail", cli_json_str(e->detail)) < 0) {
    json_decref(j);
    return -ENOMEM;
  }
  return history_add(ud, e->at, j);
}

/* Reorders h->items by instant, keeping collection order for equal instants
 * (insertion sort: histories are short). Returns the sorted array (new
 * reference) or NULL. */
static json_t *history_sorted(struct history *h) {
  size_t *idx = malloc((h->n ? h->n : 1) * sizeof(*idx));
  json_t *out = json_array();
  if (!idx || !out) {
    free(idx);
    json_decref(out);
    return NULL;
  }
  for (size_t i = 0; i < h->n; i++) {
    size_t j = i;
    for (; j > 0 && h->at[idx[j - 1]] > h->at[i]; j--)
      idx[j] = idx[j - 1];
    idx[j] = i;
  }
  for (size_t i = 0; i < h->n; i++)
    if (json_array_append(out, json_array_get(h->items, idx[i])) < 0) {
      json_decref(out);
      out = NULL;
      break;
    }
  free(idx);
  return out;
}

static const char *jstr(const json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? s : "";
}

/* "2026-03-01" when t is a local midnight in z, else "2026-03-01 10:30". */
static const char *local_time(const struct cal_zone *z, int64_t t, char out[static 24]) {
  struct cal_local l;
  cal_to_local(z, t, &l);
  char b[64];
  if (l.hour == 0 && l.minute == 0 && l.second == 0)
    snprintf(b, sizeof(b), "%04d-%02d-%02d", l.year, l.month, l.day);
  else
    snprintf(b, sizeof(b), "%04d-%02d-%02d %02d:%02d", l.year, l.month, l.day, l.hour, l.minute);
  snprintf(out, 24, "%.23s", b);
  return out;
}

/* Store values on the terminal: they come from CSV files, the API, other
 * writers and remote servers, so control characters (escape sequences,
 * CR/LF) and invalid UTF-8 are escaped as "\xNN" (str_escape_controls()). */
#define TERM_MAX 2048
static const char *term(const char *s, char buf[static TERM_MAX]) {
  str_escape_controls(s, buf, TERM_MAX);
  return buf;
}

static void print_kv(const char *key, const char *value) {
  char t[TERM_MAX];
  if (!isempty(value))
    printf("  %-12s %s\n", key, term(value, t));
}

/* jstr() of the item, escaped for the terminal into buf. */
static const char *jterm(const json_t *o, const char *key, char buf[static TERM_MAX]) {
  return term(jstr(o, key), buf);
}

static void print_history_item(const json_t *it) {
  char t1[TERM_MAX], t2[TERM_MAX], t3[TERM_MAX], t4[TERM_MAX], t5[TERM_MAX];
  const char *type = jstr(it, "type");
  printf("  %-20s  %-8s  ", *jstr(it, "at") ? jterm(it, "at", t1) : "-", term(type, t2));
  if (streq(type, "reminder")) {
    json_int_t attempts = json_integer_value(json_object_get(it, "attempts"));
    printf("%s step %" JSON_INTEGER_FORMAT " via %s to %s%s%s: %s (%" JSON_INTEGER_FORMAT
           " attempt%s)",
           jterm(it, "tier", t1), json_integer_value(json_object_get(it, "step")),
           jterm(it, "channel", t2), jterm(it, "audience", t3), *jstr(it, "recipient") ? " " : "",
           jterm(it, "recipient", t4), jterm(it, "status", t5), attempts, attempts == 1 ? "" : "s");
    if (*jstr(it, "last_error"))
      printf(", last error: %s", jterm(it, "last_error", t1));
  } else if (streq(type, "response")) {
    printf("%s via %s", jterm(it, "kind", t1), jterm(it, "source", t2));
    if (*jstr(it, "channel"))
      printf(" (%s)", jterm(it, "channel", t1));
    if (*jstr(it, "reason"))
      printf(", reason: %s", jterm(it, "reason", t1));
    if (*jstr(it, "until"))
      printf(", until %s", jterm(it, "until", t1));
    if (*jstr(it, "new_expires_at"))
      printf(", new expiry %s", jterm(it, "new_expires_at", t1));
  } else {
    printf("%s", jterm(it, "kind", t1));
    if (*jstr(it, "detail"))
      printf(" %s", jterm(it, "detail", t1));
  }
  putchar('\n');
}

static void optout_names(unsigned optout, char *out, size_t n) {
  snprintf(out, n, "%s%s%s%s%s", optout & OPTOUT_EMAIL ? "email" : "",
           (optout & OPTOUT_EMAIL) && (optout & (OPTOUT_SMS | OPTOUT_WEBHOOK)) ? "," : "",
           optout & OPTOUT_SMS ? "sms" : "",
           (optout & OPTOUT_SMS) && (optout & OPTOUT_WEBHOOK) ? "," : "",
           optout & OPTOUT_WEBHOOK ? "webhook" : "");
}

/* "Suppressed   sms +4915112345678: stop (sms-inbound, 2027-01-02T10:00:00Z)" */
static void print_suppressions(const json_t *supp) {
  char t1[TERM_MAX], t2[TERM_MAX], t3[TERM_MAX], t4[TERM_MAX], t5[TERM_MAX];
  for (size_t i = 0; i < json_array_size(supp); i++) {
    const json_t *it = json_array_get(supp, i);
    printf("  %-12s %s %s: %s (%s, %s)\n", i ? "" : "Suppressed", jterm(it, "kind", t1),
           jterm(it, "address", t2), jterm(it, "reason", t3),
           *jstr(it, "source") ? jterm(it, "source", t4) : "unknown source",
           jterm(it, "created_at", t5));
  }
}

static void show_usage(void) {
  fputs("Usage: renewctl show ID [--json]\n"
        "\n"
        "Show contract ID, its customer and owner, the suppressions of the\n"
        "customer's email address and phone number (renewctl suppressions), and its\n"
        "history (reminders, responses, events) in time order. Exit 66 when there is\n"
        "no such contract.\n",
        stdout);
}

int cmd_show(struct cli *c, int argc, char **argv) {
  static const struct option options[] = {CLI_COMMON_OPTIONS, {0}};
  _cleanup_(cli_store_freep) struct store *s = NULL;
  struct contract co = {0};
  struct customer cu = {0};
  struct owner ow = {0};
  struct history h = {0};
  json_t *root = NULL, *hist = NULL, *supp = NULL;
  bool have_cu = false, have_ow = false;
  const struct cal_zone *z;
  const char *tz;
  int opt, r, ex = 0;

  while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
    if (cli_common_option(c, opt, optarg))
      continue;
    if (opt == CLI_OPT_HELP) {
      show_usage();
      return 0;
    }
    return cli_usage_error("show", "invalid option");
  }
  if (optind + 1 != argc)
    return cli_usage_error("show", optind >= argc ? "missing contract ID" : "too many arguments");
  const char *id = argv[optind];

  if ((ex = cli_default_tz(c, &tz)))
    return ex;
  if (!cli_cal(c))
    return EX_OSERR;
  if (!(z = cal_zone(c->cal, tz))) {
    cli_error("unknown time zone '%s' in [Daemon] TimeZone=", tz);
    return EX_CONFIG;
  }
  if ((ex = cli_open_store(c, STORE_READONLY | STORE_NO_CREATE, &s)))
    return ex;

  r = store_contract_get(s, id, &co);
  if (r == -ENOENT) {
    cli_error("no contract '%s'", id);
    return EX_NOINPUT;
  }
  if (r < 0)
    goto fail;
  if (!isempty(co.customer_id)) {
    r = store_customer_get(s, co.customer_id, &cu);
    if (r < 0 && r != -ENOENT)
      goto fail;
    have_cu = r >= 0;
  }
  if (have_cu && !isempty(cu.owner_id)) {
    r = store_owner_get(s, cu.owner_id, &ow);
    if (r < 0 && r != -ENOENT)
      goto fail;
    have_ow = r >= 0;
  }
  z = zone_of(c, have_cu ? &cu : NULL, z);

  if (!(h.items = json_array())) {
    r = -ENOMEM;
    goto fail;
  }
  /* the addresses' suppressions count as the customer's opt-outs */
  unsigned suppressed = 0;
  if (have_cu && (r = cli_suppressions_json(s, cu.email, cu.phone, &supp, &suppressed)) < 0)
    goto fail;
  if ((r = store_reminder_foreach_contract(s, id, -1, hist_reminder, &h)) < 0 ||
      (r = store_response_foreach_contract(s, id, -1, hist_response, &h)) < 0 ||
      (r = store_event_foreach_contract(s, id, hist_event, &h)) < 0)
    goto fail;
  if (!(hist = history_sorted(&h))) {
    r = -ENOMEM;
    goto fail;
  }

  if (c->json) {
    bool ok = (root = json_object()) != NULL;
    ok = ok &&
         cli_json_set(root, "contract", contract_json(&co, have_cu ? &cu : NULL, z, true)) >= 0;
    if (have_cu) {
      json_t *jcu = ok ? json_object() : NULL, *opt_out = ok ? json_array() : NULL;
      static const struct {
        unsigned bit;
        const char *name;
      } bits[] = {{OPTOUT_EMAIL, "email"}, {OPTOUT_SMS, "sms"}, {OPTOUT_WEBHOOK, "webhook"}};
      /* jcu and opt_out are handed over (or freed) by cli_json_set() */
      ok = ok && cli_json_set(root, "customer", jcu) >= 0;
      ok = ok && cli_json_set(jcu, "id", cli_json_str(cu.id)) >= 0 &&
           cli_json_set(jcu, "name", cli_json_str(cu.name)) >= 0 &&
           cli_json_set(jcu, "email", cli_json_str(cu.email)) >= 0 &&
           cli_json_set(jcu, "phone", cli_json_str(cu.phone)) >= 0 &&
           cli_json_set(jcu, "timezone", cli_json_str(cu.tz)) >= 0 &&
           cli_json_set(jcu, "locale", cli_json_str(cu.locale)) >= 0 &&
           cli_json_set(jcu, "segment", cli_json_str(cu.segment)) >= 0 &&
           cli_json_set(jcu, "owner", cli_json_str(cu.owner_id)) >= 0;
      if (ok)
        ok = cli_json_set(jcu, "optout", opt_out) >= 0; /* hands opt_out over */
      else
        json_decref(opt_out);
      for (size_t i = 0; ok && i < ELEMENTSOF(bits); i++)
        if ((cu.optout | suppressed) & bits[i].bit)
          ok = json_array_append_new(opt_out, json_string(bits[i].name)) == 0;
      ok = ok && json_object_set(jcu, "suppressions", supp) == 0;
    } else
      ok = ok && cli_json_set(root, "customer", json_null()) >= 0;
    if (have_ow) {
      json_t *jow = ok ? json_object() : NULL;
      ok = ok && cli_json_set(root, "owner", jow) >= 0;
      ok = ok && cli_json_set(jow, "id", cli_json_str(ow.id)) >= 0 &&
           cli_json_set(jow, "name", cli_json_str(ow.name)) >= 0 &&
           cli_json_set(jow, "email", cli_json_str(ow.email)) >= 0 &&
           cli_json_set(jow, "phone", cli_json_str(ow.phone)) >= 0 &&
           cli_json_set(jow, "webhook", cli_json_str(ow.webhook)) >= 0 &&
           cli_json_set(jow, "timezone", cli_json_str(ow.tz)) >= 0 &&
           cli_json_set(jow, "manager_id", cli_json_str(ow.manager_id)) >= 0;
    } else
      ok = ok && cli_json_set(root, "owner", json_null()) >= 0;
    ok = ok && json_object_set(root, "history", hist) == 0;
    if (!ok) {
      r = -ENOMEM;
      goto fail;
    }
    ex = cli_json_print(root, stdout);
    goto done;
  }

  char day[11], day_time[24], money[48], ts[21], opt_out[32], t1[TERM_MAX], t2[TERM_MAX];
  printf("Contract %s\n", term(co.id, t1));
  print_kv("Product", co.product);
  if (have_cu && !isempty(cu.name))
    printf("  %-12s %s (%s)\n", "Customer", term(cu.name, t1), term(co.customer_id, t2));
  else
    print_kv("Customer", co.customer_id);
  if (co.starts_at)
    printf("  %-12s %s (%s)\n", "Starts", local_time(z, co.starts_at, day_time), cal_zone_name(z));
  printf("  %-12s %s (last day, %s); expires at %s\n", "Expires",
         cli_format_last_day(z, co.expires_at, day), cal_zone_name(z),
         format_rfc3339(co.expires_at, ts));
  printf("  %-12s %s, term %" PRId32 "\n", "State", contract_state_to_string(co.state), co.term);
  if (co.state_until)
    printf("  %-12s %s\n", "Until", format_rfc3339(co.state_until, ts));
  print_kv("Value", cli_format_money(co.value_minor, co.currency, money, sizeof(money)));
  if (co.next_due_at)
    printf("  %-12s %s\n", "Next due", format_rfc3339(co.next_due_at, ts));
  printf("  %-12s %" PRId64 "\n", "Change seq", co.change_seq);
  printf("  %-12s %s\n", "Updated", format_rfc3339(co.updated_at, ts));
  if (have_cu) {
    printf("\nCustomer %s\n", term(cu.id, t1));
    print_kv("Name", cu.name);
    print_kv("Email", cu.email);
    print_kv("Phone", cu.phone);
    print_kv("Time zone", cu.tz);
    print_kv("Locale", cu.locale);
    print_kv("Segment", cu.segment);
    optout_names(cu.optout | suppressed, opt_out, sizeof(opt_out));
    print_kv("Opted out", opt_out);
    print_suppressions(supp);
  } else if (!isempty(co.customer_id))
    printf("\nCustomer %s (not in the store)\n", term(co.customer_id, t1));
  if (have_ow) {
    printf("\nOwner %s\n", term(ow.id, t1));
    print_kv("Name", ow.name);
    print_kv("Email", ow.email);
    print_kv("Phone", ow.phone);
    print_kv("Webhook", ow.webhook);
    print_kv("Manager", ow.manager_id);
  } else if (have_cu && !isempty(cu.owner_id))
    printf("\nOwner %s (not in the store)\n", term(cu.owner_id, t1));
  else
    printf("\nOwner (none)\n");
  printf("\nHistory\n");
  if (json_array_size(hist) == 0)
    printf("  (nothing yet)\n");
  for (size_t i = 0; i < json_array_size(hist); i++)
    print_history_item(json_array_get(hist, i));
  r = 0;
  goto done;

fail:
  if (r == -ENOMEM)
    cli_error("out of memory");
  else
    cli_error("cannot read contract '%s': %s", id, store_last_error(s));
  ex = r == -ENOMEM ? EX_OSERR : EX_IOERR;
done:
  json_decref(root);
  json_decref(hist);
  json_decref(supp);
  json_decref(h.items);
  free(h.at);
  contract_clear(&co);
  customer_clear(&cu);
  owner_clear(&ow);
  return ex;
}
