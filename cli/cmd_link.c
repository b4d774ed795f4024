/* cmd_link: `renewctl link CONTRACT ACTION` prints a signed answer link, the
 * same URL a message about the contract would carry (PublicURL= + /r/<token>,
 * or /u/<token> to unsubscribe), signed with the first key of LinkKeyFile=.
 * For support staff (send a customer a fresh link), ops (check the listener
 * end to end) and the integration tests, which also use --expires, --term and
 * --key-file to make expired, wrong-term and wrong-key links.
 *
 * Reads the config and the store (read-only); owns nothing else. */
#include <inttypes.h>
#include <time.h>

#include "cli/cli.h"
#include "notifiers/linkkey.h"

static void link_usage(void) {
  fputs("Usage: renewctl link CONTRACT ACTION [OPTIONS]\n"
        "\n"
        "Print the signed answer link for CONTRACT. ACTION is one of renew, decline,\n"
        "snooze, callback, unsubscribe-email, unsubscribe-sms (customer links) or\n"
        "owner-renewed, owner-lost, owner-snooze (sales owner links).\n"
        "\n"
        "  --expires WHEN    link expiry: an RFC 3339 instant or YYYY-MM-DD (UTC\n"
        "                    midnight); default: the contract's expiry plus the larger\n"
        "                    of LapseGrace= and 90 days, at least 30 days from now\n"
        "  --term N          the contract term the link answers (default: the current)\n"
        "  --key-file PATH   sign with the first key of PATH instead of LinkKeyFile=\n"
        "  --json            print {\"url\", \"token\", \"action\", \"term\", \"expires_at\"}\n",
        stdout);
}

int cmd_link(struct cli *c, int argc, char **argv) {
  enum { OPT_EXPIRES = 0x3000, OPT_TERM, OPT_KEY_FILE };
  static const struct option options[] = {
      CLI_COMMON_OPTIONS,
      {"expires", required_argument, NULL, OPT_EXPIRES},
      {"term", required_argument, NULL, OPT_TERM},
      {"key-file", required_argument, NULL, OPT_KEY_FILE},
      {0},
  };
  const char *expires_s = NULL, *key_file = NULL;
  int64_t term = 0;
  int opt, ex, r;
  while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
    if (cli_common_option(c, opt, optarg))
      continue;
    switch (opt) {
    case CLI_OPT_HELP:
      link_usage();
      return 0;
    case OPT_EXPIRES:
      expires_s = optarg;
      break;
    case OPT_TERM:
      if (parse_int64(optarg, &term) < 0 || term < 1 || term > INT32_MAX)
        return cli_usage_error("link", "--term: expected a positive number, got '%s'", optarg);
      break;
    case OPT_KEY_FILE:
      key_file = optarg;
      break;
    default:
      return cli_usage_error("link", "invalid option");
    }
  }
  if (argc - optind != 2)
    return cli_usage_error("link", "expected CONTRACT ACTION");
  const char *id = argv[optind], *action_s = argv[optind + 1];
  enum token_action action;
  if (token_action_from_string(action_s, &action) < 0)
    return cli_usage_error("link", "unknown action '%s'", action_s);

  const struct config *cfg;
  if ((ex = cli_config(c, &cfg)))
    return ex;
  if (!key_file)
    key_file = cfg ? cfg->daemon.link_key_file : NULL;
  if (isempty(key_file)) {
    cli_error("no link key: set [Daemon] LinkKeyFile= or pass --key-file");
    return EX_CONFIG;
  }
  _cleanup_(linkkeys_freep) struct linkkeys *keys = NULL;
  char err[256];
  if ((r = linkkeys_load(key_file, &keys, err, sizeof err)) < 0) {
    cli_error("%s: %s", key_file, err);
    return r == -ENOENT || r == -EACCES ? EX_NOINPUT : EX_CONFIG;
  }

  _cleanup_(cli_store_freep) struct store *s = NULL;
  if ((ex = cli_open_store(c, STORE_READONLY | STORE_NO_CREATE, &s)))
    return ex;
  _cleanup_(contract_clear) struct contract co = {0};
  r = store_contract_get(s, id, &co);
  if (r == -ENOENT) {
    cli_error("no contract '%s'", id);
    return EX_NOINPUT;
  }
  if (r < 0) {
    cli_error("cannot read contract '%s': %s", id, store_last_error(s));
    return EX_IOERR;
  }
  int64_t now = (int64_t)time(NULL), expires;
  if (expires_s) {
    int y, m, d;
    if (cal_parse_rfc3339(expires_s, &expires) < 0) {
      if (cal_parse_date(expires_s, &y, &m, &d) < 0)
        return cli_usage_error("link", "--expires: expected RFC 3339 or YYYY-MM-DD, got '%s'",
                               expires_s);
      struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};
      expires = (int64_t)timegm(&tm);
    }
  } else {
    _cleanup_(customer_clear) struct customer cu = {0};
    bool have_cu = co.customer_id && store_customer_get(s, co.customer_id, &cu) >= 0;
    const struct policy *pol =
        cfg ? config_policy_for_segment(cfg, have_cu ? cu.segment : NULL) : NULL;
    expires = linkkey_expiry(co.expires_at, pol ? pol->lapse_grace : 0, now);
  }
  uint32_t t = term ? (uint32_t)term : (uint32_t)co.term;
  _cleanup_free_ char *url = NULL;
  const char *base =
      cfg && cfg->daemon.public_url ? cfg->daemon.public_url : "http://127.0.0.1:8787";
  r = linkkey_url(keys, base, co.id, t, action, expires, &url);
  if (r < 0) {
    cli_error("cannot sign the link: %s", strerror(-r));
    return EX_DATAERR;
  }
  if (c->json) {
    const char *tok = strrchr(url, '/');
    json_t *j = json_object();
    if (!j || cli_json_set(j, "url", cli_json_str(url)) < 0 ||
        cli_json_set(j, "token", cli_json_str(tok ? tok + 1 : url)) < 0 ||
        cli_json_set(j, "contract", cli_json_str(co.id)) < 0 ||
        cli_json_set(j, "action", cli_json_str(token_action_to_string(action))) < 0 ||
        cli_json_set(j, "term", json_integer(t)) < 0 ||
        cli_json_set(j, "expires_at", cli_json_time(expires)) < 0) {
      json_decref(j);
      cli_error("out of memory");
      return EX_OSERR;
    }
    ex = cli_json_print(j, stdout);
    json_decref(j);
    return ex;
  }
  printf("%s\n", url);
  return 0;
}
