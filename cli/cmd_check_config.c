/* cmd_check_config: `renewctl check-config` — load and validate the
 * configuration exactly as `renewd --check-config` does: the files (main file
 * and drop-ins, with a calendar so that time zones and holiday files are
 * checked) through config_load(), then the channel and template checks of the
 * dispatcher (dispatcher_check_config()). Every problem is printed on stderr
 * as "file:line: message" ("file: message" for a file that cannot be read);
 * when the configuration is valid the effective policies are printed as a
 * table on stdout.
 *
 * Exit status: 0 valid, 78 (EX_CONFIG) invalid, 64 usage.
 *
 * Unlike the other commands, a missing default config file is an error here
 * (there is nothing to check), not "built-in defaults". Touches no store.
 * Owns the config and calendar it loads (freed before returning); blocks on
 * reading the files. */
#include "cli/cli.h"
#include "notifiers/dispatch.h"

static void check_config_usage(void) {
  fputs("Usage: renewctl check-config [--config PATH]\n"
        "\n"
        "Load and validate the configuration (the main file and its drop-ins in\n"
        "PATH.d/) exactly as renewd does when it starts or reloads: syntax, keys and\n"
        "values, time zones, holiday files, channel settings and templates. Every\n"
        "problem is printed as file:line: message. When the configuration is valid,\n"
        "the effective policies are printed as a table.\n"
        "\n"
        "  --config PATH  the file to check (default " CONFIG_DEFAULT_PATH ")\n"
        "\n"
        "Exit status: 0 valid, 78 invalid.\n",
        stdout);
}

int cmd_check_config(struct cli *c, int argc, char **argv) {
  static const struct option options[] = {
      CLI_COMMON_OPTIONS,
      {0},
  };
  int opt;

  while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
    if (cli_common_option(c, opt, optarg))
      continue;
    switch (opt) {
    case CLI_OPT_HELP:
      check_config_usage();
      return 0;
    default:
      return cli_usage_error("check-config", "invalid option");
    }
  }
  if (optind != argc)
    return cli_usage_error("check-config", "unexpected argument '%s'", argv[optind]);
  if (c->json)
    return cli_usage_error("check-config",
                           "--json is not supported (the exit status is the result)");

  const char *path = c->config_path ? c->config_path : CONFIG_DEFAULT_PATH;
  struct cal *cal = cli_cal(c); /* owned by c: outlives the config below */
  if (!cal)
    return EX_OSERR;

  struct config *cfg = NULL;
  struct config_errors errs = {0};
  int r = config_load(path, cal, &cfg, &errs);
  if (r >= 0)
    r = dispatcher_check_config(cfg, &errs);
  if (r < 0) {
    if (errs.n > 0)
      config_errors_print(&errs, stderr);
    else /* no problem to show: out of memory or the like */
      cli_error("%s: %s", path, strerror(-r));
    cli_error("%s: configuration is invalid", path);
    config_errors_clear(&errs);
    config_free(cfg);
    return CONFIG_EXIT_INVALID;
  }
  config_errors_clear(&errs);
  config_print_policies(cfg, stdout);
  printf("\n%s: configuration is valid\n", path);
  config_free(cfg);
  return 0;
}
