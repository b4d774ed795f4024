/* cmd_suppress: `renewctl suppressions list|add|remove`, the addresses
 * nothing is sent to (store.h, "suppressions"), and the suppressions of one
 * contact for `renewctl show` (cli_suppressions_json()).
 *
 *   suppressions list [--kind email|sms] [--address A] [--reason R] [--json]
 *   suppressions add ADDRESS [--kind K] [--reason R] [--note TEXT]
 *   suppressions remove ADDRESS [--kind K] --reason TEXT
 *
 * The kind follows from the address when not given ("+..." is a phone
 * number, anything with '@' an email address). A removal needs a reason (it
 * is logged as the store-wide event "suppression.removed" with source
 * renewctl and the reason in the log line), since issue-12 style bounces and
 * complaints must not vanish without a word. Exit status: 0 done (also "was
 * suppressed already" / "nothing to remove", said on stderr), 64 usage, 65 a
 * bad address or reason, store errors as everywhere.
 *
 * Owns the store it opens for one command; blocks on the store. */
#include <inttypes.h>
#include <time.h>

#include "cli/cli.h"

/* ---- shared with `renewctl show` --------------------------------------------------- */

static json_t *suppression_json(const struct suppression *sp) {
  json_t *o = json_object();
  if (!o || cli_json_set(o, "address", cli_json_str(sp->address)) < 0 ||
      cli_json_set(o, "kind", cli_json_str(suppress_kind_to_string(sp->kind))) < 0 ||
      cli_json_set(o, "reason", cli_json_str(sp->reason)) < 0 ||
      cli_json_set(o, "source", cli_json_str(sp->source)) < 0 ||
      cli_json_set(o, "note", cli_json_str(sp->note)) < 0 ||
      cli_json_set(o, "created_at", cli_json_time(sp->created_at)) < 0) {
    json_decref(o);
    return NULL;
  }
  return o;
}

struct contact_walk {
  json_t *list;
  unsigned bits;
};

static int contact_cb(const struct suppression *sp, void *ud) {
  struct contact_walk *w = ud;
  w->bits |= sp->kind == SUPPRESS_SMS ? OPTOUT_SMS : OPTOUT_EMAIL;
  return json_array_append_new(w->list, suppression_json(sp)) < 0 ? -ENOMEM : 0;
}

int cli_suppressions_json(struct store *s, const char *email, const char *phone, json_t **ret,
                          unsigned *ret_bits) {
  struct contact_walk w = {.list = json_array()};
  if (!w.list)
    return -ENOMEM;
  int r = store_suppression_foreach_contact(s, email, phone, contact_cb, &w);
  if (r < 0) {
    json_decref(w.list);
    return r;
  }
  *ret = w.list;
  if (ret_bits)
    *ret_bits = w.bits;
  return 0;
}

/* ---- arguments ----------------------------------------------------------------------- */

struct args {
  int kind; /* -1 = from the address */
  const char *address;
  const char *reason;
  const char *note;
};

static void suppressions_usage(void) {
  fputs("Usage: renewctl suppressions list [--kind email|sms] [--address A] [--reason R] [--json]\n"
        "       renewctl suppressions add ADDRESS [--kind K] [--reason R] [--note TEXT]\n"
        "       renewctl suppressions remove ADDRESS [--kind K] --reason TEXT\n"
        "\n"
        "Addresses nothing is sent to, for every customer and owner who has them:\n"
        "numbers that answered STOP, email addresses that unsubscribed, and those\n"
        "added here. A phone number is written in E.164 (+4915112345678); an email\n"
        "address is compared without regard to case.\n"
        "\n"
        "  --kind K       email or sms (default: from the address)\n"
        "  --reason R     add: why (a word: manual, stop, unsubscribe, complaint, ...;\n"
        "                 default manual); remove: why (free text, required, logged)\n"
        "  --note TEXT    add: a note kept with the suppression\n"
        "  --address A    list: only this address\n",
        stdout);
}

static int parse_args(struct cli *c, const char *verb, int argc, char **argv, struct args *a) {
  enum { OPT_KIND = 0x3000, OPT_REASON, OPT_NOTE, OPT_ADDRESS };
  static const struct option options[] = {
      CLI_COMMON_OPTIONS,
      {"kind", required_argument, NULL, OPT_KIND},
      {"reason", required_argument, NULL, OPT_REASON},
      {"note", required_argument, NULL, OPT_NOTE},
      {"address", required_argument, NULL, OPT_ADDRESS},
      {0},
  };
  int opt;
  *a = (struct args){.kind = -1};
  while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
    if (cli_common_option(c, opt, optarg))
      continue;
    switch (opt) {
    case CLI_OPT_HELP:
      suppressions_usage();
      return -1;
    case OPT_KIND:
      if ((a->kind = suppress_kind_from_string(optarg)) < 0)
        return cli_usage_error("suppressions", "--kind: expected email or sms, got '%s'", optarg);
      break;
    case OPT_REASON:
      a->reason = optarg;
      break;
    case OPT_NOTE:
      a->note = optarg;
      break;
    case OPT_ADDRESS:
      a->address = optarg;
      break;
    default:
      return cli_usage_error("suppressions", "invalid option");
    }
  }
  bool list = streq(verb, "list");
  if (list && optind != argc)
    return cli_usage_error("suppressions", "unexpected argument '%s'", argv[optind]);
  if (!list) {
    if (optind + 1 != argc)
      return cli_usage_error(
          "suppressions", optind >= argc ? "%s: missing ADDRESS" : "%s: too many arguments", verb);
    if (a->address)
      return cli_usage_error("suppressions", "%s: give the address as the argument", verb);
    a->address = argv[optind];
    if (a->note && streq(verb, "remove"))
      return cli_usage_error("suppressions", "remove: --note is for add (use --reason)");
    if (streq(verb, "remove") && isempty(a->reason))
      return cli_usage_error("suppressions", "remove: --reason is required");
  } else if (a->reason && !store_suppression_word_valid(a->reason))
    return cli_usage_error("suppressions", "list: --reason: not a reason word");
  if (a->address && a->kind < 0)
    a->kind = a->address[strspn(a->address, " \t")] == '+' ? SUPPRESS_SMS : SUPPRESS_EMAIL;
  return 0;
}

/* The address normalized for a->kind, or EX_DATAERR after saying why. */
static int normalized(const struct args *a, char out[static STORE_ADDRESS_MAX + 1]) {
  if (store_address_normalize((enum suppress_kind)a->kind, a->address, out) >= 0)
    return 0;
  cli_error("'%s' is not %s", a->address,
            a->kind == SUPPRESS_SMS ? "a phone number in E.164 (+4915112345678)"
                                    : "an email address");
  return EX_DATAERR;
}

/* ---- verbs -------------------------------------------------------------------------------- */

struct list_walk {
  struct cli_table *t;
  json_t *arr;
};

static int list_cb(const struct suppression *sp, void *ud) {
  struct list_walk *w = ud;
  if (w->arr)
    return json_array_append_new(w->arr, suppression_json(sp)) < 0 ? -ENOMEM : 0;
  char at[21];
  const char *cells[] = {sp->address, suppress_kind_to_string(sp->kind),  sp->reason,
                         sp->source,  format_rfc3339(sp->created_at, at), sp->note};
  return cli_table_add(w->t, cells);
}

static int verb_list(struct cli *c, struct store *s, const struct args *a) {
  char addr[STORE_ADDRESS_MAX + 1];
  int ex;
  if (a->address && (ex = normalized(a, addr)))
    return ex;
  static const char *const headers[] = {"ADDRESS", "KIND", "REASON", "SOURCE", "SINCE", "NOTE"};
  struct list_walk w = {0};
  if (c->json ? !(w.arr = json_array()) : !(w.t = cli_table_new(ELEMENTSOF(headers), headers))) {
    cli_error("out of memory");
    return EX_OSERR;
  }
  struct store_suppression_filter f = {
      .kind = a->kind, .address = a->address ? addr : NULL, .reason = a->reason};
  int r = store_suppression_foreach(s, &f, list_cb, &w);
  if (r < 0) {
    cli_error("cannot list suppressions: %s", r == -ENOMEM ? "out of memory" : store_last_error(s));
    ex = r == -ENOMEM ? EX_OSERR : EX_IOERR;
  } else if (w.arr)
    ex = cli_json_print(w.arr, stdout);
  else {
    cli_table_max_width(w.t, 5, 60);
    cli_table_print(w.t, stdout);
    ex = 0;
  }
  json_decref(w.arr);
  cli_table_free(w.t);
  return ex;
}

static int verb_add(struct store *s, const struct args *a) {
  char addr[STORE_ADDRESS_MAX + 1];
  int ex = normalized(a, addr);
  if (ex)
    return ex;
  const char *reason = a->reason ? a->reason : "manual";
  if (!store_suppression_word_valid(reason)) {
    cli_error("--reason: '%s' is not a reason word (1-32 of a-z, 0-9, '-')", reason);
    return EX_DATAERR;
  }
  int r = store_suppression_add(s, (enum suppress_kind)a->kind, addr, reason, "renewctl", a->note,
                                (int64_t)time(NULL));
  if (r == -EINVAL) {
    cli_error("--note: at most 500 bytes, no control characters");
    return EX_DATAERR;
  }
  if (r < 0) {
    cli_error("cannot add the suppression: %s", store_last_error(s));
    return EX_IOERR;
  }
  if (r == 0)
    fprintf(stderr, "renewctl: %s was suppressed already (unchanged)\n", addr);
  else
    printf("suppressed %s %s (%s)\n", suppress_kind_to_string((enum suppress_kind)a->kind), addr,
           reason);
  return 0;
}

static int verb_remove(struct store *s, const struct args *a) {
  char addr[STORE_ADDRESS_MAX + 1];
  int ex = normalized(a, addr);
  if (ex)
    return ex;
  int r = store_suppression_remove(s, (enum suppress_kind)a->kind, addr, false, "renewctl",
                                   a->reason, (int64_t)time(NULL));
  if (r == -EINVAL) {
    cli_error("--reason: at most 500 bytes, no control characters");
    return EX_DATAERR;
  }
  if (r < 0) {
    cli_error("cannot remove the suppression: %s", store_last_error(s));
    return EX_IOERR;
  }
  if (r == 0)
    fprintf(stderr, "renewctl: %s is not suppressed (nothing to remove)\n", addr);
  else
    printf("removed the suppression of %s %s\n",
           suppress_kind_to_string((enum suppress_kind)a->kind), addr);
  return 0;
}

int cmd_suppressions(struct cli *c, int argc, char **argv) {
  if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h")) {
    if (argc < 2)
      return cli_usage_error("suppressions", "missing list, add or remove");
    suppressions_usage();
    return 0;
  }
  const char *verb = argv[1];
  if (!streq(verb, "list") && !streq(verb, "add") && !streq(verb, "remove"))
    return cli_usage_error("suppressions", "unknown action '%s' (list, add, remove)", verb);
  struct args a;
  int ex = parse_args(c, verb, argc - 1, argv + 1, &a);
  if (ex)
    return ex < 0 ? 0 : ex;
  if (c->json && !streq(verb, "list"))
    return cli_usage_error("suppressions", "--json is for list");
  _cleanup_(cli_store_freep) struct store *s = NULL;
  bool list = streq(verb, "list");
  if ((ex = cli_open_store(c, list ? STORE_READONLY | STORE_NO_CREATE : STORE_NO_CREATE, &s)))
    return ex;
  if (list)
    return verb_list(c, s, &a);
  return streq(verb, "add") ? verb_add(s, &a) : verb_remove(s, &a);
}
