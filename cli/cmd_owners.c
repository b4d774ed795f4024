/* renewctl owners: the sales owners who receive escalations.
 *
 *   renewctl owners import FILE.csv [--dry-run]
 *   renewctl owners list [--json]
 *
 * The CSV has a header naming its columns, in any order: id (required), name,
 * email, phone (E.164), webhook (http/https URL), timezone (IANA), manager
 * (another owner's id, e.g. for EscalateTo=). Like the contract import, every
 * row is checked before anything is written; problems are printed as
 * FILE:LINE: column: message and nothing is written if any row is invalid. */
#include <strings.h>
#include <time.h>

#include "cli/cli.h"
#include "core/csv.h"
#include "core/validate.h"

enum owner_col { OC_ID, OC_NAME, OC_EMAIL, OC_PHONE, OC_WEBHOOK, OC_TZ, OC_MANAGER, _OC_MAX };
static const char *const owner_cols[_OC_MAX] = {"id",      "name",     "email",  "phone",
                                                "webhook", "timezone", "manager"};

struct owner_row {
  struct owner o;
  unsigned line;
};

/* Checks one record; prints its problems. Returns the number of problems. */
static unsigned check_owner(struct cli *c, const char *file, unsigned line,
                            const char *const v[_OC_MAX], struct owner *ret) {
  unsigned problems = 0;
#define PROBLEM(col, ...)                                                                          \
  do {                                                                                             \
    fprintf(stderr, "%s:%u: %s: ", file, line, owner_cols[col]);                                   \
    fprintf(stderr, __VA_ARGS__);                                                                  \
    fputc('\n', stderr);                                                                           \
    problems++;                                                                                    \
  } while (0)
  for (int k = 0; k < _OC_MAX; k++)
    if (!validate_text(v[k], strlen(v[k]), NULL))
      PROBLEM(k, "invalid UTF-8 or control characters");
  if (isempty(v[OC_ID]))
    PROBLEM(OC_ID, "required");
  if (!isempty(v[OC_EMAIL]) && !validate_email(v[OC_EMAIL]))
    PROBLEM(OC_EMAIL, "invalid email address '%s'", v[OC_EMAIL]);
  char phone[17] = "";
  if (!isempty(v[OC_PHONE]) && validate_e164(v[OC_PHONE], phone) < 0)
    PROBLEM(OC_PHONE, "not E.164: '%s'", v[OC_PHONE]);
  if (!isempty(v[OC_WEBHOOK]) && strncmp(v[OC_WEBHOOK], "https://", 8) != 0 &&
      strncmp(v[OC_WEBHOOK], "http://", 7) != 0)
    PROBLEM(OC_WEBHOOK, "expected an http:// or https:// URL, got '%s'", v[OC_WEBHOOK]);
  if (!isempty(v[OC_TZ]) && !cal_zone(cli_cal(c), v[OC_TZ]))
    PROBLEM(OC_TZ, "unknown time zone '%s'", v[OC_TZ]);
  if (isempty(v[OC_EMAIL]) && isempty(v[OC_PHONE]) && isempty(v[OC_WEBHOOK]))
    PROBLEM(OC_EMAIL, "an owner needs an email, phone or webhook to be reachable");
#undef PROBLEM
  if (problems)
    return problems;
  *ret = (struct owner){
      .id = strdup(v[OC_ID]),
      .name = strdup_or_null(isempty(v[OC_NAME]) ? NULL : v[OC_NAME]),
      .email = strdup_or_null(isempty(v[OC_EMAIL]) ? NULL : v[OC_EMAIL]),
      .phone = strdup_or_null(isempty(phone) ? NULL : phone),
      .webhook = strdup_or_null(isempty(v[OC_WEBHOOK]) ? NULL : v[OC_WEBHOOK]),
      .tz = strdup_or_null(isempty(v[OC_TZ]) ? NULL : v[OC_TZ]),
      .manager_id = strdup_or_null(isempty(v[OC_MANAGER]) ? NULL : v[OC_MANAGER]),
  };
  return 0;
}

static void rows_free(struct owner_row *rows, size_t n) {
  for (size_t k = 0; k < n; k++)
    owner_clear(&rows[k].o);
  free(rows);
}

static int owners_import(struct cli *c, const char *file, bool dry_run) {
  _cleanup_fclose_ FILE *f = fopen(file, "re");
  if (!f) {
    cli_error("cannot open %s: %s", file, strerror(errno));
    return EX_NOINPUT;
  }
  struct csv_reader *rd = NULL;
  if (csv_open(f, &rd) < 0)
    return EX_OSERR;
  int map[_OC_MAX];
  for (int k = 0; k < _OC_MAX; k++)
    map[k] = -1;
  struct csv_record rec;
  int r = csv_next(rd, &rec);
  if (r <= 0) {
    cli_error("%s: %s", file, r == 0 ? "empty file (expected a header line)" : csv_error(rd));
    csv_free(rd);
    return EX_DATAERR;
  }
  unsigned problems = 0;
  for (size_t i = 0; i < rec.n; i++) {
    int k;
    for (k = 0; k < _OC_MAX; k++)
      if (strcasecmp(rec.fields[i], owner_cols[k]) == 0)
        break;
    if (k == _OC_MAX) {
      fprintf(stderr,
              "%s:%u: %s: unknown column (expected id, name, email, phone, webhook, timezone, "
              "manager)\n",
              file, rec.line, rec.fields[i]);
      problems++;
    } else if (map[k] >= 0) {
      fprintf(stderr, "%s:%u: %s: duplicate column\n", file, rec.line, rec.fields[i]);
      problems++;
    } else
      map[k] = (int)i;
  }
  if (map[OC_ID] < 0) {
    fprintf(stderr, "%s:%u: id: required column missing\n", file, rec.line);
    problems++;
  }

  struct owner_row *rows = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    r = csv_next(rd, &rec);
    if (r == 0)
      break;
    if (r < 0) {
      fprintf(stderr, "%s:%u: %s\n", file, csv_error_line(rd),
              csv_error(rd) ? csv_error(rd) : strerror(-r));
      problems++;
      break;
    }
    const char *v[_OC_MAX];
    for (int k = 0; k < _OC_MAX; k++)
      v[k] = map[k] >= 0 && (size_t)map[k] < rec.n ? rec.fields[map[k]] : "";
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      struct owner_row *nv = realloc(rows, cap * sizeof *nv);
      if (!nv) {
        rows_free(rows, n);
        csv_free(rd);
        return EX_OSERR;
      }
      rows = nv;
    }
    unsigned p = check_owner(c, file, rec.line, v, &rows[n].o);
    for (size_t k = 0; p == 0 && k < n; k++)
      if (streq(rows[k].o.id, rows[n].o.id)) {
        fprintf(stderr, "%s:%u: id: duplicate of line %u\n", file, rec.line, rows[k].line);
        owner_clear(&rows[n].o);
        p = 1;
      }
    problems += p;
    if (p == 0)
      rows[n++].line = rec.line;
  }
  csv_free(rd);
  if (problems) {
    fprintf(stderr, "renewctl: %s: %u problem%s; nothing imported\n", file, problems,
            problems == 1 ? "" : "s");
    rows_free(rows, n);
    return EX_DATAERR;
  }
  if (dry_run) {
    printf("%s: %zu owners valid (dry run: nothing written)\n", file, n);
    rows_free(rows, n);
    return 0;
  }

  _cleanup_(cli_store_freep) struct store *s = NULL;
  r = cli_open_store(c, 0, &s);
  if (r != 0) {
    rows_free(rows, n);
    return r;
  }
  size_t counts[3] = {0};
  int64_t now = (int64_t)time(NULL);
  r = store_begin(s);
  for (size_t k = 0; r >= 0 && k < n; k++) {
    r = store_owner_upsert(s, &rows[k].o, now);
    if (r >= 0)
      counts[r]++;
  }
  if (r >= 0)
    r = store_commit(s);
  else
    store_rollback(s);
  rows_free(rows, n);
  if (r < 0) {
    cli_error("writing owners failed: %s (%s)", strerror(-r), store_last_error(s));
    return EX_IOERR;
  }
  printf("%s: %zu owners: %zu inserted, %zu updated, %zu unchanged\n", file, n,
         counts[STORE_INSERTED], counts[STORE_UPDATED], counts[STORE_UNCHANGED]);
  return 0;
}

struct list_ctx {
  struct cli_table *table; /* human output */
  json_t *array;           /* --json output */
};

static int list_owner_cb(const struct owner *o, void *ud) {
  struct list_ctx *l = ud;
  if (l->array) {
    json_t *j = json_object();
    if (!j || cli_json_set(j, "id", cli_json_str(o->id)) < 0 ||
        cli_json_set(j, "name", cli_json_str(o->name)) < 0 ||
        cli_json_set(j, "email", cli_json_str(o->email)) < 0 ||
        cli_json_set(j, "phone", cli_json_str(o->phone)) < 0 ||
        cli_json_set(j, "webhook", cli_json_str(o->webhook)) < 0 ||
        cli_json_set(j, "timezone", cli_json_str(o->tz)) < 0 ||
        cli_json_set(j, "manager", cli_json_str(o->manager_id)) < 0 ||
        json_array_append_new(l->array, j) < 0)
      return -ENOMEM;
    return 0;
  }
  const char *cells[] = {o->id, o->name, o->email, o->phone, o->tz, o->manager_id};
  return cli_table_add(l->table, cells);
}

static int owners_list(struct cli *c) {
  _cleanup_(cli_store_freep) struct store *s = NULL;
  int r = cli_open_store(c, STORE_READONLY, &s);
  if (r != 0)
    return r;
  static const char *const headers[] = {"ID", "NAME", "EMAIL", "PHONE", "TIMEZONE", "MANAGER"};
  struct list_ctx l = {0};
  if (c->json)
    l.array = json_array();
  else
    l.table = cli_table_new(ELEMENTSOF(headers), headers);
  if (!l.array && !l.table)
    return EX_OSERR;
  r = store_owner_foreach(s, list_owner_cb, &l);
  if (r >= 0) {
    if (l.array)
      r = cli_json_print(l.array, stdout);
    else
      cli_table_print(l.table, stdout);
  } else
    cli_error("listing owners failed: %s", strerror(-r));
  cli_table_free(l.table);
  json_decref(l.array);
  return r < 0 ? EX_IOERR : r;
}

int cmd_owners(struct cli *c, int argc, char **argv) {
  static const struct option options[] = {
      CLI_COMMON_OPTIONS,
      {"dry-run", no_argument, NULL, 'n'},
      {0},
  };
  bool dry_run = false;
  int opt;
  while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
    if (cli_common_option(c, opt, optarg))
      continue;
    switch (opt) {
    case 'n':
      dry_run = true;
      break;
    case CLI_OPT_HELP:
      printf("Usage: renewctl owners import FILE.csv [--dry-run]\n"
             "       renewctl owners list [--json]\n"
             "\n"
             "CSV columns (header required, any order): id, name, email, phone, webhook,\n"
             "timezone, manager. Every row is checked first; nothing is written if any\n"
             "row is invalid (exit 65).\n");
      return 0;
    default:
      return cli_usage_error("owners", "invalid option");
    }
  }
  if (optind >= argc)
    return cli_usage_error("owners", "missing subcommand (import or list)");
  const char *sub = argv[optind];
  if (streq(sub, "import")) {
    if (optind + 2 != argc)
      return cli_usage_error("owners", "expected: owners import FILE.csv");
    return owners_import(c, argv[optind + 1], dry_run);
  }
  if (streq(sub, "list"))
    return owners_list(c);
  return cli_usage_error("owners", "unknown subcommand '%s' (expected import or list)", sub);
}
