/* cmd_report: `renewctl report` — the renewal funnel over the contract terms
 * expiring in a period, as a table (default), JSON (--json), CSV (--csv) or a
 * self-contained HTML page (--html FILE). The numbers come from core/report
 * (one computation, four renderers; the definitions are in core/report.h and
 * renewctl(1)).
 *
 * Read-only: opens the store with STORE_READONLY | STORE_NO_CREATE. Loads the
 * config (when there is one) only to name the policy serving each segment.
 * Owns: the store connection, the report, the output file of --html. */
#include <time.h>

#include "cli/cli.h"
#include "core/report.h"

#define DAY INT64_C(86400)
#define DEFAULT_DAYS 90

static void report_usage(void) {
  fputs("Usage: renewctl report [--from DATE] [--to DATE]\n"
        "                       [--by tier|channel|segment|owner|policy]\n"
        "                       [--json | --csv | --html FILE]\n"
        "\n"
        "The renewal funnel of the contract terms expiring (or due) from --from to\n"
        "--to: how many were reminded, answered, renewed, declined (reasons ranked),\n"
        "snoozed, lapsed; renewal and response rates; the tier and channel that\n"
        "triggered each answer (the last reminder sent before it); the median days\n"
        "before expiry at renewal; delivery failures per channel; escalations.\n"
        "\n"
        "  --from DATE    first expiry day, YYYY-MM-DD, UTC (default: --to minus 89 days)\n"
        "  --to DATE      last expiry day, inclusive (default: today, UTC)\n"
        "  --by KEY       breakdown of the table: tier (default), channel, segment,\n"
        "                 owner or policy (JSON, CSV and HTML always hold all of them)\n"
        "  --json         every figure as one JSON object\n"
        "  --csv          every figure as CSV: section,name,metric,value\n"
        "  --html FILE    a self-contained HTML page with charts ('-' = stdout)\n",
        stdout);
}

/* "YYYY-MM-DD" as 00:00 UTC of that day. */
static int parse_day(const char *s, int64_t *ret) {
  int y, m, d;
  if (cal_parse_date(s, &y, &m, &d) < 0)
    return -EINVAL;
  struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};
  *ret = (int64_t)timegm(&tm);
  return 0;
}

static const char *policy_of(const char *segment, void *ud) {
  const struct config *cfg = ud;
  const struct policy *p = cfg ? config_policy_for_segment(cfg, segment) : NULL;
  return p ? p->name : NULL;
}

int cmd_report(struct cli *c, int argc, char **argv) {
  enum { OPT_FROM = 0x3000, OPT_TO, OPT_BY, OPT_CSV, OPT_HTML };
  static const struct option options[] = {
      CLI_COMMON_OPTIONS,
      {"from", required_argument, NULL, OPT_FROM},
      {"to", required_argument, NULL, OPT_TO},
      {"by", required_argument, NULL, OPT_BY},
      {"csv", no_argument, NULL, OPT_CSV},
      {"html", required_argument, NULL, OPT_HTML},
      {0},
  };
  _cleanup_(cli_store_freep) struct store *s = NULL;
  _cleanup_(report_freep) struct report *rep = NULL;
  const char *from_s = NULL, *to_s = NULL, *html = NULL;
  bool csv = false;
  int by = REPORT_BY_TIER;
  int opt, r, ex;

  while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
    if (cli_common_option(c, opt, optarg))
      continue;
    switch (opt) {
    case CLI_OPT_HELP:
      report_usage();
      return 0;
    case OPT_FROM:
      from_s = optarg;
      break;
    case OPT_TO:
      to_s = optarg;
      break;
    case OPT_BY:
      if ((by = report_by_from_string(optarg)) < 0)
        return cli_usage_error("report",
                               "unknown --by '%s' (tier, channel, segment, owner, policy)", optarg);
      break;
    case OPT_CSV:
      csv = true;
      break;
    case OPT_HTML:
      html = optarg;
      break;
    default:
      return cli_usage_error("report", "invalid option");
    }
  }
  if (optind != argc)
    return cli_usage_error("report", "unexpected argument '%s'", argv[optind]);
  if (c->json + csv + (html != NULL) > 1)
    return cli_usage_error("report", "--json, --csv and --html exclude each other");

  int64_t now = time(NULL), to_day, from_day;
  if (to_s) {
    if (parse_day(to_s, &to_day) < 0)
      return cli_usage_error("report", "invalid --to '%s' (expected YYYY-MM-DD)", to_s);
  } else
    to_day = now - now % DAY;
  if (from_s) {
    if (parse_day(from_s, &from_day) < 0)
      return cli_usage_error("report", "invalid --from '%s' (expected YYYY-MM-DD)", from_s);
  } else
    from_day = to_day - (DEFAULT_DAYS - 1) * DAY;
  if (from_day > to_day)
    return cli_usage_error("report", "--from %s is after --to %s", from_s ? from_s : "(default)",
                           to_s ? to_s : "(today)");

  const struct config *cfg = NULL;
  if ((ex = cli_config(c, &cfg)))
    return ex;
  if ((ex = cli_open_store(c, STORE_READONLY | STORE_NO_CREATE, &s)))
    return ex;

  struct report_options o = {
      .from = from_day,
      .until = to_day + DAY,
      .now = now,
      .by = by,
      .policy_of = policy_of,
      .policy_ud = (void *)cfg,
  };
  r = report_compute(s, &o, &rep);
  if (r == -ERANGE)
    return cli_usage_error("report", "the period is too long");
  if (r < 0) {
    cli_error("cannot compute the report: %s%s%s", strerror(-r), *store_last_error(s) ? ": " : "",
              store_last_error(s));
    return r == -EBUSY ? EX_UNAVAILABLE : EX_IOERR;
  }

  if (html && !streq(html, "-")) {
    _cleanup_fclose_ FILE *f = fopen(html, "we");
    if (!f) {
      cli_error("cannot write %s: %s", html, strerror(errno));
      return EX_CANTCREAT;
    }
    r = report_render_html(rep, f);
    if (r >= 0 && fflush(f) != 0)
      r = -errno;
    if (r < 0) {
      cli_error("cannot write %s: %s", html, strerror(-r));
      return EX_IOERR;
    }
    return 0;
  }
  r = html      ? report_render_html(rep, stdout)
      : c->json ? report_render_json(rep, stdout)
      : csv     ? report_render_csv(rep, stdout)
                : report_render_table(rep, stdout);
  if (r < 0) {
    cli_error("write error: %s", strerror(-r));
    return EX_IOERR;
  }
  return 0;
}
