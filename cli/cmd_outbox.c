/* cmd_outbox: the outbox as operators see it.
 *
 *   renewctl outbox [--state S] [--channel C] [--limit N] [--json]
 *   renewctl outbox retry ID... | --all-dead
 *   renewctl send-test --channel NAME --to ADDRESS
 *
 * `outbox` lists reminder rows (what was sent, what waits, what died and
 * why); `outbox retry` makes dead rows due again (status 'retry', due now:
 * the daemon picks them up at its next poll, within 30 s); `send-test` sends
 * one sample message synchronously through a channel's real backend (no row
 * is written) and says what happened.
 *
 * Owns the store connection of the run. Blocks on the store and, for
 * send-test, on the network (bounded by the channel's Timeout=). */
#include <curl/curl.h>
#include <inttypes.h>
#include <time.h>

#include "cli/cli.h"
#include "core/clock.h"
#include "notifiers/dispatch.h"
#include "notifiers/notifier.h"

/* ---- outbox (list) ------------------------------------------------------------------- */

struct outbox_ctx {
  const char *channel; /* filter, NULL = any */
  size_t limit;        /* 0 = all */
  size_t n;
  struct cli_table *table; /* NULL: JSON */
  json_t *arr;
};

static int64_t row_when(const struct reminder *m) {
  switch (m->status) {
  case REMINDER_SENT:
    return m->sent_at;
  case REMINDER_PENDING:
  case REMINDER_RETRY:
    return m->next_attempt_at ? m->next_attempt_at : m->due_at;
  default:
    return m->updated_at;
  }
}

static int outbox_row(const struct reminder *m, void *ud) {
  struct outbox_ctx *o = ud;
  if (o->channel && !streq_ptr(m->channel, o->channel))
    return 0;
  if (o->limit && o->n >= o->limit)
    return 0;
  o->n++;
  if (o->table) {
    char id[24], step[16], attempts[16], when[32] = "-";
    snprintf(id, sizeof id, "%" PRId64, m->id);
    snprintf(step, sizeof step, "%d", m->step);
    snprintf(attempts, sizeof attempts, "%d", m->attempts);
    int64_t t = row_when(m);
    if (t > 0)
      format_rfc3339(t, when);
    const char *cells[] = {id,
                           m->contract_id,
                           m->tier,
                           step,
                           m->channel,
                           m->audience,
                           m->recipient,
                           reminder_status_to_string(m->status),
                           attempts,
                           when,
                           m->status == REMINDER_SENT ? m->provider_id : m->last_error};
    return cli_table_add(o->table, cells);
  }
  json_t *j = json_object();
  if (!j || json_array_append_new(o->arr, j) < 0 ||
      cli_json_set(j, "id", json_integer(m->id)) < 0 ||
      cli_json_set(j, "contract_id", cli_json_str(m->contract_id)) < 0 ||
      cli_json_set(j, "term", json_integer(m->term)) < 0 ||
      cli_json_set(j, "tier", cli_json_str(m->tier)) < 0 ||
      cli_json_set(j, "step", json_integer(m->step)) < 0 ||
      cli_json_set(j, "channel", cli_json_str(m->channel)) < 0 ||
      cli_json_set(j, "audience", cli_json_str(m->audience)) < 0 ||
      cli_json_set(j, "recipient", cli_json_str(m->recipient)) < 0 ||
      cli_json_set(j, "idem_key", cli_json_str(m->idem_key)) < 0 ||
      cli_json_set(j, "status", json_string(reminder_status_to_string(m->status))) < 0 ||
      cli_json_set(j, "attempts", json_integer(m->attempts)) < 0 ||
      cli_json_set(j, "due_at", cli_json_time(m->due_at)) < 0 ||
      cli_json_set(j, "next_attempt_at", cli_json_time(m->next_attempt_at)) < 0 ||
      cli_json_set(j, "sent_at", cli_json_time(m->sent_at)) < 0 ||
      cli_json_set(j, "updated_at", cli_json_time(m->updated_at)) < 0 ||
      cli_json_set(j, "last_error", cli_json_str(m->last_error)) < 0 ||
      cli_json_set(j, "provider_id", cli_json_str(m->provider_id)) < 0)
    return -ENOMEM;
  return 0;
}

static void outbox_usage(void) {
  fputs("Usage: renewctl outbox [--state S] [--channel C] [--limit N] [--json]\n"
        "       renewctl outbox retry ID... | --all-dead\n"
        "\n"
        "List the outbox: one row per message renewd recorded (ID, CONTRACT, TIER, STEP,\n"
        "CHANNEL, AUDIENCE, RECIPIENT, STATUS, ATTEMPTS, WHEN, ERROR/PROVIDER ID), oldest\n"
        "first. WHEN is when it was sent, when it is (re)tried, or when it last changed.\n"
        "\n"
        "  --state S     pending, sending, sent, retry, dead, cancelled or skipped\n"
        "  --channel C   only rows of channel C\n"
        "  --limit N     at most N rows\n"
        "  --json        a JSON array\n"
        "\n"
        "retry: makes dead rows due again now (same idempotency key; renewd picks them\n"
        "up within 30 s). A row that used up MaxAttempts= gets one more attempt.\n",
        stdout);
}

struct retry_ctx {
  struct store *s;
  int64_t now;
  size_t n;
  int64_t *ids;
  size_t n_ids, cap;
};

static int collect_dead(const struct reminder *m, void *ud) {
  struct retry_ctx *r = ud;
  if (r->n_ids == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 64;
    int64_t *v = realloc(r->ids, cap * sizeof *v);
    if (!v)
      return -ENOMEM;
    r->ids = v;
    r->cap = cap;
  }
  r->ids[r->n_ids++] = m->id;
  return 0;
}

/* Row id back to retry, only from a status that allows it (the daemon may
 * have claimed or finished it since it was read). -ESTALE when none held. */
static int retry_one(struct store *s, int64_t id, int64_t now) {
  static const enum reminder_status from[] = {REMINDER_DEAD, REMINDER_UNKNOWN, REMINDER_RETRY};
  int r = -ESTALE;
  for (size_t k = 0; k < ELEMENTSOF(from) && r == -ESTALE; k++)
    r = store_reminder_set_status_if(s, id, from[k], REMINDER_RETRY, now,
                                     "retry requested by renewctl", NULL, now);
  return r;
}

static int outbox_retry(struct cli *c, int argc, char **argv) {
  static const struct option options[] = {
      CLI_COMMON_OPTIONS,
      {"all-dead", no_argument, NULL, 'a'},
      {0},
  };
  bool all = false;
  int opt, r, ex;
  while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
    if (cli_common_option(c, opt, optarg))
      continue;
    switch (opt) {
    case CLI_OPT_HELP:
      outbox_usage();
      return 0;
    case 'a':
      all = true;
      break;
    default:
      return cli_usage_error("outbox retry", "invalid option");
    }
  }
  if (all == (optind < argc))
    return cli_usage_error("outbox retry", "give either row IDs or --all-dead");
  _cleanup_(cli_store_freep) struct store *s = NULL;
  if ((ex = cli_open_store(c, STORE_NO_CREATE, &s)))
    return ex;
  struct retry_ctx rc = {.s = s, .now = (int64_t)time(NULL)};
  if (all) {
    r = store_reminder_foreach_status(s, REMINDER_DEAD, 0, collect_dead, &rc);
    if (r < 0) {
      free(rc.ids);
      cli_error("cannot read the outbox: %s", store_last_error(s));
      return EX_IOERR;
    }
  } else {
    for (int i = optind; i < argc; i++) {
      int64_t id;
      if (parse_int64(argv[i], &id) < 0 || id <= 0) {
        free(rc.ids);
        return cli_usage_error("outbox retry", "invalid row ID '%s'", argv[i]);
      }
      struct reminder m = {0};
      r = store_reminder_get(s, id, &m);
      if (r == -ENOENT) {
        free(rc.ids);
        cli_error("no outbox row %" PRId64, id);
        return EX_DATAERR;
      }
      if (r < 0) {
        free(rc.ids);
        cli_error("cannot read outbox row %" PRId64 ": %s", id, store_last_error(s));
        return EX_IOERR;
      }
      enum reminder_status st = m.status;
      reminder_clear(&m);
      if (st != REMINDER_DEAD && st != REMINDER_RETRY && st != REMINDER_UNKNOWN) {
        free(rc.ids);
        cli_error("outbox row %" PRId64 " is %s: only dead, unknown (or retry) rows can be retried",
                  id, reminder_status_to_string(st));
        return EX_DATAERR;
      }
      if (collect_dead(&(struct reminder){.id = id}, &rc) < 0) {
        free(rc.ids);
        cli_error("out of memory");
        return EX_OSERR;
      }
    }
  }
  r = store_begin(s);
  for (size_t i = 0; i < rc.n_ids && r >= 0; i++)
    r = retry_one(s, rc.ids[i], rc.now);
  if (r >= 0)
    r = store_event_append(s, NULL, "outbox.retry", all ? "all dead rows" : "rows by id", rc.now);
  if (r >= 0)
    r = store_commit(s);
  else
    store_rollback(s);
  size_t n = rc.n_ids;
  free(rc.ids);
  if (r == -ESTALE) {
    cli_error("an outbox row changed while this ran (the daemon claimed or finished it); "
              "nothing was changed: look again with renewctl outbox");
    return EX_TEMPFAIL;
  }
  if (r < 0) {
    cli_error("cannot update the outbox: %s", store_last_error(s));
    return r == -EBUSY ? EX_UNAVAILABLE : EX_IOERR;
  }
  if (c->json)
    printf("{\"retried\": %zu}\n", n);
  else
    printf("%zu row%s due again.\n", n, n == 1 ? "" : "s");
  return 0;
}

int cmd_outbox(struct cli *c, int argc, char **argv) {
  enum { OPT_STATE = 0x3000, OPT_CHANNEL, OPT_LIMIT };
  static const struct option options[] = {
      CLI_COMMON_OPTIONS,
      {"state", required_argument, NULL, OPT_STATE},
      {"channel", required_argument, NULL, OPT_CHANNEL},
      {"limit", required_argument, NULL, OPT_LIMIT},
      {0},
  };
  if (argc > 1 && streq(argv[1], "retry"))
    return outbox_retry(c, argc - 1, argv + 1);
  struct outbox_ctx o = {0};
  int state = -1, opt, r, ex;
  int64_t v;
  while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
    if (cli_common_option(c, opt, optarg))
      continue;
    switch (opt) {
    case CLI_OPT_HELP:
      outbox_usage();
      return 0;
    case OPT_STATE:
      if ((state = reminder_status_from_string(optarg)) < 0)
        return cli_usage_error("outbox",
                               "unknown state '%s' (pending, sending, sent, retry, dead, "
                               "cancelled, skipped)",
                               optarg);
      break;
    case OPT_CHANNEL:
      o.channel = optarg;
      break;
    case OPT_LIMIT:
      if (parse_int64(optarg, &v) < 0 || v <= 0)
        return cli_usage_error("outbox", "invalid --limit '%s'", optarg);
      o.limit = (size_t)v;
      break;
    default:
      return cli_usage_error("outbox", "invalid option");
    }
  }
  if (optind != argc)
    return cli_usage_error("outbox", "unexpected argument '%s'", argv[optind]);
  _cleanup_(cli_store_freep) struct store *s = NULL;
  if ((ex = cli_open_store(c, STORE_READONLY | STORE_NO_CREATE, &s)))
    return ex;
  if (c->json)
    o.arr = json_array();
  else {
    static const char *const headers[] = {
        "ID",        "CONTRACT", "TIER",     "STEP", "CHANNEL",          "AUDIENCE",
        "RECIPIENT", "STATUS",   "ATTEMPTS", "WHEN", "ERROR/PROVIDER ID"};
    o.table = cli_table_new(ELEMENTSOF(headers), headers);
    if (o.table) {
      cli_table_align_right(o.table, 0);
      cli_table_align_right(o.table, 3);
      cli_table_align_right(o.table, 8);
      cli_table_max_width(o.table, 6, 40);
      cli_table_max_width(o.table, 10, 60);
    }
  }
  if (!o.arr && !o.table) {
    cli_error("out of memory");
    return EX_OSERR;
  }
  r = store_reminder_foreach_status(s, state, 0, outbox_row, &o);
  if (r < 0) {
    cli_error("cannot read the outbox: %s", r == -ENOMEM ? "out of memory" : store_last_error(s));
    cli_table_free(o.table);
    json_decref(o.arr);
    return r == -ENOMEM ? EX_OSERR : EX_IOERR;
  }
  if (o.arr) {
    ex = cli_json_print(o.arr, stdout);
    json_decref(o.arr);
    return ex;
  }
  if (o.n > 0)
    cli_table_print(o.table, stdout);
  else
    fputs("The outbox is empty (for this filter).\n", stderr);
  cli_table_free(o.table);
  return 0;
}

/* ---- send-test ----------------------------------------------------------------------- */

static void send_test_usage(void) {
  fputs("Usage: renewctl send-test --channel NAME --to ADDRESS [--json]\n"
        "\n"
        "Sends one sample reminder (made-up contract and customer, the template of the\n"
        "first tier using the channel) through the channel's real backend, right now,\n"
        "and reports the outcome. Nothing is written to the store. ADDRESS is an email\n"
        "address, an E.164 phone number or a webhook URL, as the channel expects.\n"
        "Exit status 0 when the message was accepted, 69 when not, 78 when the channel\n"
        "is not configured correctly.\n",
        stdout);
}

int cmd_send_test(struct cli *c, int argc, char **argv) {
  enum { OPT_CHANNEL = 0x3000, OPT_TO };
  static const struct option options[] = {
      CLI_COMMON_OPTIONS,
      {"channel", required_argument, NULL, OPT_CHANNEL},
      {"to", required_argument, NULL, OPT_TO},
      {0},
  };
  const char *channel = NULL, *to = NULL;
  int opt, ex;
  while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
    if (cli_common_option(c, opt, optarg))
      continue;
    switch (opt) {
    case CLI_OPT_HELP:
      send_test_usage();
      return 0;
    case OPT_CHANNEL:
      channel = optarg;
      break;
    case OPT_TO:
      to = optarg;
      break;
    default:
      return cli_usage_error("send-test", "invalid option");
    }
  }
  if (optind != argc)
    return cli_usage_error("send-test", "unexpected argument '%s'", argv[optind]);
  if (!channel || !to)
    return cli_usage_error("send-test", "--channel and --to are required");
  const struct config *cfg = NULL;
  if ((ex = cli_config(c, &cfg)))
    return ex;
  if (!cfg) {
    cli_error("no configuration file: channels are defined in %s", CONFIG_DEFAULT_PATH);
    return EX_CONFIG;
  }
  struct cal *cal = cli_cal(c);
  if (!cal)
    return EX_OSERR;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  struct notify_result res = {0};
  char err[1024] = "";
  int64_t t0 = clock_monotonic_ms();
  int r = dispatch_send_test(cfg, cal, channel, to, (int64_t)time(NULL), &res, err, sizeof err);
  int64_t ms = clock_monotonic_ms() - t0;
  curl_global_cleanup();
  if (r < 0) {
    cli_error("%s", *err ? err : strerror(-r));
    return r == -ENOMEM ? EX_OSERR : EX_CONFIG;
  }
  const char *what = res.status == NOTIFY_SENT ? "sent"
                     : res.status == NOTIFY_TRANSIENT
                         ? "failed (transient: would be retried)"
                         : "failed (permanent: would be a dead letter)";
  if (c->json) {
    json_t *j = json_object();
    if (!j || cli_json_set(j, "channel", json_string(channel)) < 0 ||
        cli_json_set(j, "to", json_string(to)) < 0 ||
        cli_json_set(j, "result",
                     json_string(res.status == NOTIFY_SENT        ? "sent"
                                 : res.status == NOTIFY_TRANSIENT ? "transient"
                                                                  : "permanent")) < 0 ||
        cli_json_set(j, "provider_id", cli_json_str(res.provider_id)) < 0 ||
        cli_json_set(j, "error", cli_json_str(res.error)) < 0 ||
        cli_json_set(j, "status_code",
                     res.http_status ? json_integer(res.http_status) : json_null()) < 0 ||
        cli_json_set(j, "ms", json_integer(ms)) < 0) {
      json_decref(j);
      cli_error("out of memory");
      return EX_OSERR;
    }
    ex = cli_json_print(j, stdout);
    json_decref(j);
    if (ex)
      return ex;
  } else {
    printf("%s: %s to %s in %" PRId64 " ms", channel, what, to, ms);
    if (res.status == NOTIFY_SENT && res.provider_id[0])
      printf(" (provider id %s)", res.provider_id);
    if (res.status != NOTIFY_SENT)
      printf(": %s", res.error);
    putchar('\n');
  }
  return res.status == NOTIFY_SENT ? 0 : EX_UNAVAILABLE;
}
