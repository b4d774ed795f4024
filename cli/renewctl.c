/* renewctl: the command-line tool for people and scripts (main, global options,
 * subcommand dispatch).
 *
 *   renewctl [--db PATH] [--config PATH] [--json] COMMAND [ARGS...]
 *
 * Global options may also follow the command name. Each command lives in its
 * own file cli/cmd_<name>.c as
 *     int cmd_<name>(struct cli *c, int argc, char **argv);
 * (argv[0] is the command name) and returns a sysexits code: 0 ok, 64 usage,
 * 65 data error, 66 no input, 69 unavailable, 73 cannot create, 74 I/O error,
 * 78 config error.
 *
 * Owns the struct cli of the run; sets LC_CTYPE to C.UTF-8 so that tables can
 * measure display widths (wcwidth). */
#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

#ifndef RENEWD_VERSION
#define RENEWD_VERSION "unknown"
#endif

/* THE COMMAND TABLE. To add a command: write cli/cmd_<fn>.c defining
 * cmd_<fn>(), append `target_sources(renewctl PRIVATE cmd_<fn>.c)` to
 * cli/CMakeLists.txt, and add ONE line here (ending in a backslash):
 *   X(<fn>, "<name as typed>", "<arguments>", "<one-line summary>") \
 * The X line both declares cmd_<fn>() and adds it to the dispatch table. */
#define RENEWCTL_COMMANDS(X)                                                                       \
  X(import, "import", "FILE.csv [--dry-run] [--skip-invalid] [--ignore-unknown]",                  \
    "validate and import contracts from a CSV file")                                               \
  X(list, "list", "[--state S] [--segment S] [--expiring-within 30d]", "list contracts")           \
  X(show, "show", "ID", "show a contract, its customer, owner and history")                        \
  X(respond, "respond", "ID KIND [--expires-on D|--until D|--at T|--reason R|--note T]",           \
    "record an answer: renewed, declined, snoozed, callback, lost, (un|re)subscribed")             \
  X(history, "history", "ID", "a contract's reminders, deliveries, answers and events in order")   \
  X(preview, "preview", "CONTRACT TIER [--channel C] [--locale L]",                                \
    "show exactly what would be sent")                                                             \
  X(owners, "owners", "import FILE.csv [--dry-run] | list",                                        \
    "import or list the sales owners who receive escalations")                                     \
  X(outbox, "outbox", "[--state S] [--channel C] [--json] | retry ID...|--all-dead",               \
    "list the outbox; make dead messages due again")                                               \
  X(send_test, "send-test", "--channel NAME --to ADDRESS",                                         \
    "send a sample message through a channel")                                                     \
  X(plan, "plan", "[--contract ID] [--from T] [--days N] [--config NEW.conf --diff]",              \
    "upcoming reminders as a timeline, or what a new config would move")                           \
  X(replan, "replan", "--contract ID | --all [--dry-run]",                                         \
    "move contracts in a ladder onto the current config's policy")                                 \
  X(report, "report",                                                                              \
    "[--from D] [--to D] [--by tier|channel|segment|owner|policy] [--json|--csv|--html F]",        \
    "the renewal funnel: reminded, answered, renewed, declined, lapsed; rates")                    \
  X(check_config, "check-config", "[--config PATH]",                                               \
    "validate the configuration exactly as the daemon does; print the policies")                   \
  X(link, "link", "CONTRACT ACTION [--expires T] [--term N]",                                      \
    "print a signed answer link (ops, support, tests; see docs/http.md)")                          \
  X(suppressions, "suppressions",                                                                  \
    "list [--kind K] [--address A] | add ADDRESS | remove ADDRESS --reason R",                     \
    "addresses nothing is sent to (STOP, unsubscribe, bounces): list, add, remove")                \
  X(templates, "templates", "check [--dir DIR]",                                                   \
    "render every template and page string of every locale; report gaps")                          \
  /* new commands go above this line, each line ending in a backslash */

#define X_DECLARE(fn, name, args, summary) int cmd_##fn(struct cli *c, int argc, char **argv);
RENEWCTL_COMMANDS(X_DECLARE)

struct command {
  const char *name;
  const char *args;
  const char *summary;
  int (*run)(struct cli *c, int argc, char **argv);
};

#define X_ENTRY(fn, name, args, summary) {name, args, summary, cmd_##fn},
static const struct command commands[] = {RENEWCTL_COMMANDS(X_ENTRY)};

static void usage(FILE *out) {
  fputs("Usage: renewctl [OPTIONS] COMMAND [ARGS...]\n"
        "\n"
        "Manage the renewd contract store.\n"
        "\n"
        "Commands:\n",
        out);
  for (size_t i = 0; i < ELEMENTSOF(commands); i++)
    fprintf(out, "  %s %s\n      %s\n", commands[i].name, commands[i].args, commands[i].summary);
  fputs("\n"
        "Options (also accepted after the command):\n"
        "  --db PATH       store file (default: [Daemon] Database=, " CLI_DEFAULT_DB ")\n"
        "  --config PATH   config file (default: " CONFIG_DEFAULT_PATH ";\n"
        "                  built-in defaults when that file does not exist)\n"
        "  --json          machine-readable output (see docs/cli-json.md)\n"
        "  -h, --help      show this help\n"
        "  --version       show the version\n"
        "\n"
        "Run 'renewctl COMMAND --help' for a command's options.\n"
        "Exit status: 0 ok, 64 usage, 65 data error, 66 no input, 69 unavailable,\n"
        "73 cannot create, 74 I/O error, 78 config error.\n",
        out);
}

int main(int argc, char **argv) {
  enum { OPT_VERSION = 0x2000 };
  static const struct option options[] = {
      CLI_COMMON_OPTIONS,
      {"version", no_argument, NULL, OPT_VERSION},
      {0},
  };
  struct cli c = {0};
  int opt, r;

  /* display widths for tables; C.UTF-8 keeps everything else "C" */
  if (!setlocale(LC_CTYPE, "C.UTF-8"))
    setlocale(LC_CTYPE, "");

  /* '+': stop at the command name */
  while ((opt = getopt_long(argc, argv, "+h", options, NULL)) >= 0) {
    if (cli_common_option(&c, opt, optarg))
      continue;
    switch (opt) {
    case CLI_OPT_HELP:
      usage(stdout);
      return 0;
    case OPT_VERSION:
      printf("renewctl %s\n", RENEWD_VERSION);
      return 0;
    default:
      return cli_usage_error(NULL, "invalid option");
    }
  }
  if (optind >= argc)
    return cli_usage_error(NULL, "missing command");

  const char *name = argv[optind];
  if (streq(name, "help")) {
    usage(stdout);
    return 0;
  }
  for (size_t i = 0; i < ELEMENTSOF(commands); i++)
    if (streq(commands[i].name, name)) {
      int sub_argc = argc - optind;
      char **sub_argv = argv + optind;
      optind = 0; /* full getopt reset for the command's own parsing */
      r = commands[i].run(&c, sub_argc, sub_argv);
      if (fflush(stdout) != 0 && r == 0) {
        cli_error("write error: %s", strerror(errno));
        r = EX_IOERR;
      }
      cli_done(&c);
      return r;
    }
  return cli_usage_error(NULL, "unknown command '%s'", name);
}
