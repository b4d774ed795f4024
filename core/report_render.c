/* report_render: the four renderings of a struct report (table, JSON, CSV,
 * HTML). They print what report.c computed and compute nothing themselves:
 * every figure goes through one field table (name, label, kind, offset) and
 * one formatter per kind, so the three text renderings cannot disagree.
 *   count  "12"
 *   rate   basis points: machine "0.4286" (JSON number, CSV), human "42.86%";
 *          no denominator: JSON null, CSV empty, human "-"
 *   days   tenths of a day: "12.5" everywhere; no value as for rates
 * Strings from the store (tier, channel, segment, owner, reason names) are
 * escaped for each format; invalid UTF-8 becomes U+FFFD, control characters
 * '?' in the terminal.
 *
 * Writes to the caller's FILE only; owns nothing; pure otherwise. */
#include <inttypes.h>
#include <stddef.h>
#include <time.h>
#include <wchar.h>

#include "core/report.h"
#include "core/util.h"

/* ---- fields ------------------------------------------------------------------- */

enum kind {
  K_COUNT,
  K_RATE,
  K_DAYS, /* median days x10; valid when report_funnel.has_median */
};

struct field {
  const char *key;   /* JSON/CSV name */
  const char *label; /* for people */
  enum kind kind;
  size_t off; /* of the int64_t in its struct */
};

#define FF(k, l, kind)                                                                             \
  { #k, l, kind, offsetof(struct report_funnel, k) }
static const struct field funnel_fields[] = {
    FF(terms, "terms expiring in the period", K_COUNT),
    FF(reminded, "reminded", K_COUNT),
    FF(answered, "answered", K_COUNT),
    FF(prompted, "answered after a reminder", K_COUNT),
    FF(renewed, "renewed", K_COUNT),
    FF(renewed_external, "renewed without an answer (new term by import)", K_COUNT),
    FF(declined, "declined", K_COUNT),
    FF(lost, "closed as lost by the owner", K_COUNT),
    FF(lapsed, "lapsed", K_COUNT),
    FF(open, "open (undecided)", K_COUNT),
    FF(snoozed, "snoozed at least once", K_COUNT),
    FF(callback, "asked for a call", K_COUNT),
    FF(escalations, "escalations sent (owner alerts)", K_COUNT),
    FF(escalated, "terms escalated", K_COUNT),
    FF(escalated_renewed, "escalated and renewed", K_COUNT),
    {"renewal_rate", "renewal rate (renewed / terms)", K_RATE,
     offsetof(struct report_funnel, renewal_rate_bp)},
    {"decided_renewal_rate", "renewal rate of decided (renewed / renewed+declined+lapsed)", K_RATE,
     offsetof(struct report_funnel, decided_renewal_rate_bp)},
    {"response_rate", "response rate (answered after a reminder / reminded)", K_RATE,
     offsetof(struct report_funnel, response_rate_bp)},
    {"median_days_before_expiry", "median days before expiry at renewal", K_DAYS,
     offsetof(struct report_funnel, median_days_x10)},
};
#undef FF
/* The group tables show these funnel fields (indexes into funnel_fields). */
static const size_t group_columns[] = {0, 1, 2, 4, 6, 8, 9, 17, 15, 18};
static const char *const group_headers[] = {"TERMS",    "REMINDED",   "ANSWERED", "RENEWED",
                                            "DECLINED", "LAPSED",     "OPEN",     "RESPONSE",
                                            "RENEWAL",  "MEDIAN DAYS"};
_Static_assert(ELEMENTSOF(group_columns) == ELEMENTSOF(group_headers), "one header per column");

#define TF(k, l, kind)                                                                             \
  { #k, l, kind, offsetof(struct report_touch, k) }
static const struct field touch_fields[] = {
    TF(reached, "terms reached", K_COUNT),
    TF(sent, "customer reminders sent", K_COUNT),
    TF(answers, "answers triggered", K_COUNT),
    {"response_rate", "response rate", K_RATE, offsetof(struct report_touch, response_rate_bp)},
    TF(renewals, "renewals triggered", K_COUNT),
    {"renewal_rate", "renewal rate", K_RATE, offsetof(struct report_touch, renewal_rate_bp)},
    TF(owner_sent, "escalations sent", K_COUNT),
    TF(attempted, "delivery attempted", K_COUNT),
    TF(dead, "dead letters", K_COUNT),
    {"failure_rate", "delivery failure rate", K_RATE,
     offsetof(struct report_touch, failure_rate_bp)},
};
#undef TF
static const char *const touch_headers[] = {"REACHED",  "SENT",    "ANSWERS", "RESPONSE",
                                            "RENEWALS", "RENEWAL", "ESCAL.",  "ATTEMPTED",
                                            "DEAD",     "FAILURE"};
_Static_assert(ELEMENTSOF(touch_fields) == ELEMENTSOF(touch_headers), "one header per column");

#define WF(k, l, kind)                                                                             \
  { #k, l, kind, offsetof(struct report_week, k) }
static const struct field week_fields[] = {
    WF(terms, "terms", K_COUNT),
    WF(reminded, "reminded", K_COUNT),
    WF(prompted, "answered after a reminder", K_COUNT),
    WF(renewed, "renewed", K_COUNT),
    {"renewal_rate", "renewal rate", K_RATE, offsetof(struct report_week, renewal_rate_bp)},
    {"response_rate", "response rate", K_RATE, offsetof(struct report_week, response_rate_bp)},
};
#undef WF

static int64_t field_value(const struct field *f, const void *base) {
  int64_t v;
  memcpy(&v, (const char *)base + f->off, sizeof v);
  return v;
}

/* Whether the field has a value (rates need a denominator, days a median). */
static bool field_present(const struct field *f, const void *base, bool has_median) {
  if (f->kind == K_DAYS)
    return has_median;
  if (f->kind == K_RATE)
    return field_value(f, base) != REPORT_RATE_NONE;
  return true;
}

/* Formats a field: human ("42.86%") or machine ("0.4286"); absent values give
 * "-" (human) or "" (machine). Returns out. */
static char *fmt_field(const struct field *f, const void *base, bool has_median, bool human,
                       char out[static 32]) {
  if (!field_present(f, base, has_median)) {
    snprintf(out, 32, "%s", human ? "-" : "");
    return out;
  }
  int64_t v = field_value(f, base);
  switch (f->kind) {
  case K_COUNT:
    snprintf(out, 32, "%" PRId64, v);
    break;
  case K_RATE:
    if (human)
      snprintf(out, 32, "%" PRId64 ".%02" PRId64 "%%", v / 100, v % 100);
    else
      snprintf(out, 32, "%" PRId64 ".%04" PRId64, v / 10000, v % 10000);
    break;
  case K_DAYS: {
    int64_t a = v < 0 ? -v : v;
    snprintf(out, 32, "%s%" PRId64 ".%" PRId64, v < 0 ? "-" : "", a / 10, a % 10);
    break;
  }
  }
  return out;
}

static char *fmt_date(int64_t t, char out[static 11]) {
  char b[21];
  format_rfc3339(t, b);
  snprintf(out, 11, "%.10s", b);
  return out;
}

/* The last day of the period (until is exclusive). */
static char *fmt_last_day(const struct report *r, char out[static 11]) {
  return fmt_date(r->until - 1, out);
}

/* ---- UTF-8 ----------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static size_t utf8_len(const unsigned char *s) {
  if (s[0] < 0x80)
    return 1;
  size_t n;
  uint32_t cp;
  if ((s[0] & 0xe0) == 0xc0) {
    n = 2;
    cp = s[0] & 0x1f;
  } else if ((s[0] & 0xf0) == 0xe0) {
    n = 3;
    cp = s[0] & 0x0f;
  } else if ((s[0] & 0xf8) == 0xf0) {
    n = 4;
    cp = s[0] & 0x07;
  } else
    return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

/* ---- terminal table -------------------------------------------------------------- */

/* Terminal columns of s (wcwidth in the caller's locale; 1 per byte when
 * that fails). */
static size_t display_width(const char *s) {
  size_t w = 0;
  mbstate_t st = {0};
  while (*s) {
    wchar_t wc;
    size_t n = mbrtowc(&wc, s, MB_CUR_MAX, &st);
    if (n == 0 || n == (size_t)-1 || n == (size_t)-2) {
      memset(&st, 0, sizeof st);
      w++;
      s++;
      continue;
    }
    int k = wcwidth(wc);
    w += k < 0 ? 1 : (size_t)k;
    s += n;
  }
  return w;
}

/* A text cell: control characters and invalid UTF-8 become '?'. Caller frees. */
static char *text_cell(const char *s) {
  struct buf b = {0};
  if (!s)
    s = "";
  for (const unsigned char *p = (const unsigned char *)s; *p;) {
    size_t n = utf8_len(p);
    if (n == 0 || *p < 0x20 || *p == 0x7f) {
      if (buf_puts(&b, "?") < 0)
        goto oom;
      p++;
      continue;
    }
    if (buf_append(&b, p, n) < 0)
      goto oom;
    p += n;
  }
  return buf_steal(&b);
oom:
  buf_free(&b);
  return NULL;
}

#define TT_MAX_COLS 12

/* Rows of cells, printed with two spaces between columns; the first column
 * left-aligned, the others right-aligned (numbers). */
struct ttable {
  size_t ncols;
  char **cells; /* rows * ncols, owned */
  size_t nrows, cap;
};

static void ttable_done(struct ttable *t) {
  for (size_t i = 0; i < t->nrows * t->ncols; i++)
    free(t->cells[i]);
  free(t->cells);
}

static int ttable_add(struct ttable *t, const char *const *cells) {
  if (t->nrows == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 16;
    char **v = realloc(t->cells, cap * t->ncols * sizeof *v);
    if (!v)
      return -ENOMEM;
    t->cells = v;
    t->cap = cap;
  }
  char **row = &t->cells[t->nrows * t->ncols];
  for (size_t i = 0; i < t->ncols; i++)
    row[i] = NULL;
  t->nrows++;
  for (size_t i = 0; i < t->ncols; i++)
    if (!(row[i] = text_cell(cells[i])))
      return -ENOMEM;
  return 0;
}

static void ttable_print(const struct ttable *t, FILE *out, const char *indent) {
  size_t w[TT_MAX_COLS] = {0};
  for (size_t r = 0; r < t->nrows; r++)
    for (size_t c = 0; c < t->ncols; c++)
      w[c] = MAX(w[c], display_width(t->cells[r * t->ncols + c]));
  for (size_t r = 0; r < t->nrows; r++) {
    struct buf line = {0};
    bool ok = buf_puts(&line, indent) >= 0;
    for (size_t c = 0; c < t->ncols && ok; c++) {
      const char *cell = t->cells[r * t->ncols + c];
      size_t pad = w[c] - display_width(cell);
      if (c > 0)
        ok = buf_puts(&line, "  ") >= 0;
      if (c > 0)
        for (size_t k = 0; k < pad && ok; k++)
          ok = buf_puts(&line, " ") >= 0;
      ok = ok && buf_puts(&line, cell) >= 0;
      if (c == 0 && t->ncols > 1)
        for (size_t k = 0; k < pad && ok; k++)
          ok = buf_puts(&line, " ") >= 0;
    }
    /* no trailing blanks */
    while (ok && line.len > 0 && line.data[line.len - 1] == ' ')
      line.data[--line.len] = 0;
    if (ok)
      fprintf(out, "%s\n", line.data ? line.data : "");
    buf_free(&line);
  }
}

/* Adds one row per item: name, then the given fields of the item. */
static int table_touches(FILE *out, const char *title, const char *first,
                         const struct report_touch *v, size_t n) {
  struct ttable t = {.ncols = 1 + ELEMENTSOF(touch_fields)};
  const char *cells[TT_MAX_COLS];
  char buf[TT_MAX_COLS][32];
  int r = 0;
  cells[0] = first;
  for (size_t i = 0; i < ELEMENTSOF(touch_headers); i++)
    cells[1 + i] = touch_headers[i];
  if ((r = ttable_add(&t, cells)) < 0)
    goto out;
  for (size_t k = 0; k < n; k++) {
    cells[0] = v[k].name;
    for (size_t i = 0; i < ELEMENTSOF(touch_fields); i++)
      cells[1 + i] = fmt_field(&touch_fields[i], &v[k], false, true, buf[i]);
    if ((r = ttable_add(&t, cells)) < 0)
      goto out;
  }
  fprintf(out, "\n%s\n", title);
  if (n == 0)
    fputs("  (none)\n", out);
  else
    ttable_print(&t, out, "  ");
out:
  ttable_done(&t);
  return r;
}

static int table_groups(FILE *out, const char *title, const char *first,
                        const struct report_group *v, size_t n) {
  struct ttable t = {.ncols = 1 + ELEMENTSOF(group_columns)};
  const char *cells[TT_MAX_COLS];
  char buf[TT_MAX_COLS][32];
  int r = 0;
  cells[0] = first;
  for (size_t i = 0; i < ELEMENTSOF(group_headers); i++)
    cells[1 + i] = group_headers[i];
  if ((r = ttable_add(&t, cells)) < 0)
    goto out;
  for (size_t k = 0; k < n; k++) {
    cells[0] = v[k].name;
    for (size_t i = 0; i < ELEMENTSOF(group_columns); i++)
      cells[1 + i] =
          fmt_field(&funnel_fields[group_columns[i]], &v[k].f, v[k].f.has_median, true, buf[i]);
    if ((r = ttable_add(&t, cells)) < 0)
      goto out;
  }
  fprintf(out, "\n%s\n", title);
  if (n == 0)
    fputs("  (none)\n", out);
  else
    ttable_print(&t, out, "  ");
out:
  ttable_done(&t);
  return r;
}

static int finish_output(FILE *out) {
  return ferror(out) ? -EIO : 0;
}

int report_render_table(const struct report *r, FILE *out) {
  if (!r || !out)
    return -EINVAL;
  char d1[11], d2[11], v[32];
  int k;
  fprintf(out, "Renewal report: terms expiring %s to %s (UTC)\n", fmt_date(r->from, d1),
          fmt_last_day(r, d2));

  /* the funnel: one "label  value" line per field, in three blocks */
  static const struct {
    const char *title;
    size_t first, last; /* funnel_fields indexes */
  } blocks[] = {{"Funnel", 0, 11}, {"Rates", 15, 18}, {"Escalations", 12, 14}};
  for (size_t b = 0; b < ELEMENTSOF(blocks); b++) {
    struct ttable t = {.ncols = 2};
    for (size_t i = blocks[b].first; i <= blocks[b].last; i++) {
      const char *cells[] = {funnel_fields[i].label,
                             fmt_field(&funnel_fields[i], &r->total, r->total.has_median, true, v)};
      if ((k = ttable_add(&t, cells)) < 0) {
        ttable_done(&t);
        return k;
      }
    }
    fprintf(out, "\n%s\n", blocks[b].title);
    ttable_print(&t, out, "  ");
    ttable_done(&t);
  }

  fputs("\nDecline reasons\n", out);
  if (r->n_reasons == 0)
    fputs("  (none)\n", out);
  else {
    struct ttable rt = {.ncols = 2};
    const char *head[] = {"REASON", "COUNT"};
    k = ttable_add(&rt, head);
    for (size_t i = 0; k >= 0 && i < r->n_reasons; i++) {
      snprintf(v, sizeof v, "%" PRId64, r->reasons[i].count);
      const char *cells[] = {r->reasons[i].reason, v};
      k = ttable_add(&rt, cells);
    }
    if (k >= 0)
      ttable_print(&rt, out, "  ");
    ttable_done(&rt);
    if (k < 0)
      return k;
  }

  switch (r->by) {
  case REPORT_BY_TIER:
    k = table_touches(out,
                      "By tier (answers and renewals credited to the last reminder before them)",
                      "TIER", r->tiers, r->n_tiers);
    if (k >= 0)
      k = table_touches(out, "By channel", "CHANNEL", r->channels, r->n_channels);
    break;
  case REPORT_BY_CHANNEL:
    k = table_touches(out,
                      "By channel (answers and renewals credited to the last reminder before them)",
                      "CHANNEL", r->channels, r->n_channels);
    break;
  default: {
    size_t n;
    const struct report_group *g = report_groups(r, r->by, &n);
    char title[64], first[16];
    snprintf(title, sizeof title, "By %s", report_by_to_string(r->by));
    snprintf(first, sizeof first, "%s", report_by_to_string(r->by));
    for (char *p = first; *p; p++)
      *p = (char)(*p - 'a' + 'A');
    k = table_groups(out, title, first, g, n);
    if (k >= 0)
      k = table_touches(out, "By channel", "CHANNEL", r->channels, r->n_channels);
    break;
  }
  }
  if (k < 0)
    return k;
  return finish_output(out);
}

/* ---- JSON --------------------------------------------------------------------------- */

static void json_str(FILE *out, const char *s) {
  fputc('"', out);
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p;) {
    size_t n = utf8_len(p);
    if (n == 0) {
      fputs("\\ufffd", out);
      p++;
      continue;
    }
    if (*p == '"' || *p == '\\')
      fprintf(out, "\\%c", *p);
    else if (*p < 0x20 || *p == 0x7f)
      fprintf(out, "\\u%04x", *p);
    else
      fwrite(p, 1, n, out);
    p += n;
  }
  fputc('"', out);
}

/* Writes "key": value pairs, each preceded by ",\n" (by "\n" for the first
 * when first is set). */
static void json_fields(FILE *out, const struct field *f, size_t n, const void *base,
                        bool has_median, const char *indent, bool first) {
  char v[32];
  for (size_t i = 0; i < n; i++) {
    fmt_field(&f[i], base, has_median, false, v);
    fprintf(out, "%s\n%s\"%s\": %s", first && i == 0 ? "" : ",", indent, f[i].key, *v ? v : "null");
  }
}

static void json_touches(FILE *out, const char *key, const struct report_touch *v, size_t n) {
  fprintf(out, ",\n  \"%s\": [", key);
  for (size_t k = 0; k < n; k++) {
    fprintf(out, "%s\n    {\n      \"name\": ", k ? "," : "");
    json_str(out, v[k].name);
    json_fields(out, touch_fields, ELEMENTSOF(touch_fields), &v[k], false, "      ", false);
    fputs("\n    }", out);
  }
  fputs(n ? "\n  ]" : "]", out);
}

static void json_groups(FILE *out, const char *key, const struct report_group *v, size_t n) {
  fprintf(out, ",\n  \"%s\": [", key);
  for (size_t k = 0; k < n; k++) {
    fprintf(out, "%s\n    {\n      \"name\": ", k ? "," : "");
    json_str(out, v[k].name);
    json_fields(out, funnel_fields, ELEMENTSOF(funnel_fields), &v[k].f, v[k].f.has_median, "      ",
                false);
    fputs("\n    }", out);
  }
  fputs(n ? "\n  ]" : "]", out);
}

int report_render_json(const struct report *r, FILE *out) {
  if (!r || !out)
    return -EINVAL;
  char d1[11], d2[11], t1[21], t2[21], t3[21];
  fprintf(
      out,
      "{\n  \"report_version\": 1,\n  \"period\": {\n    \"from\": \"%s\",\n    \"to\": \"%s\",\n"
      "    \"from_at\": \"%s\",\n    \"until_at\": \"%s\"\n  },\n"
      "  \"generated_at\": \"%s\",\n  \"by\": \"%s\",\n  \"funnel\": {",
      fmt_date(r->from, d1), fmt_last_day(r, d2), format_rfc3339(r->from, t1),
      format_rfc3339(r->until, t2), format_rfc3339(r->generated_at, t3),
      report_by_to_string(r->by));
  json_fields(out, funnel_fields, ELEMENTSOF(funnel_fields), &r->total, r->total.has_median, "    ",
              true);
  fputs("\n  },\n  \"decline_reasons\": [", out);
  for (size_t i = 0; i < r->n_reasons; i++) {
    fprintf(out, "%s\n    {\"reason\": ", i ? "," : "");
    json_str(out, r->reasons[i].reason);
    fprintf(out, ", \"count\": %" PRId64 "}", r->reasons[i].count);
  }
  fputs(r->n_reasons ? "\n  ]" : "]", out);
  json_touches(out, "tiers", r->tiers, r->n_tiers);
  json_touches(out, "channels", r->channels, r->n_channels);
  json_groups(out, "segments", r->segments, r->n_segments);
  json_groups(out, "owners", r->owners, r->n_owners);
  json_groups(out, "policies", r->policies, r->n_policies);
  fputs(",\n  \"weeks\": [", out);
  for (size_t k = 0; k < r->n_weeks; k++) {
    fprintf(out, "%s\n    {\n      \"start\": \"%s\"", k ? "," : "",
            fmt_date(r->weeks[k].start, d1));
    json_fields(out, week_fields, ELEMENTSOF(week_fields), &r->weeks[k], false, "      ", false);
    fputs("\n    }", out);
  }
  fputs(r->n_weeks ? "\n  ]\n}\n" : "]\n}\n", out);
  return finish_output(out);
}

/* ---- CSV ---------------------------------------------------------------------------- */

/* RFC 4180 field: quoted when it holds a comma, quote, CR or LF; invalid UTF-8
 * becomes U+FFFD. A leading =, +, -, @, TAB or CR is prefixed with ' so
 * spreadsheets do not run it as a formula (OWASP "CSV injection": some
 * spreadsheets skip a leading TAB or CR and then see the formula). */
static void csv_str(FILE *out, const char *s) {
  s = s ? s : "";
  bool quote = strpbrk(s, ",\"\r\n") != NULL;
  if (quote)
    fputc('"', out);
  if (strchr("=+-@\t\r", *s) && *s)
    fputc('\'', out);
  for (const unsigned char *p = (const unsigned char *)s; *p;) {
    size_t n = utf8_len(p);
    if (n == 0) {
      fputs("\xef\xbf\xbd", out);
      p++;
      continue;
    }
    if (*p == '"')
      fputc('"', out);
    fwrite(p, 1, n, out);
    p += n;
  }
  if (quote)
    fputc('"', out);
}

static void csv_fields(FILE *out, const char *section, const char *name, const struct field *f,
                       size_t n, const void *base, bool has_median) {
  char v[32];
  for (size_t i = 0; i < n; i++) {
    fprintf(out, "%s,", section);
    csv_str(out, name);
    fprintf(out, ",%s,%s\r\n", f[i].key, fmt_field(&f[i], base, has_median, false, v));
  }
}

int report_render_csv(const struct report *r, FILE *out) {
  if (!r || !out)
    return -EINVAL;
  char d1[11], d2[11];
  fputs("section,name,metric,value\r\n", out);
  fprintf(out, "period,,from,%s\r\nperiod,,to,%s\r\nperiod,,by,%s\r\n", fmt_date(r->from, d1),
          fmt_last_day(r, d2), report_by_to_string(r->by));
  csv_fields(out, "funnel", "", funnel_fields, ELEMENTSOF(funnel_fields), &r->total,
             r->total.has_median);
  for (size_t i = 0; i < r->n_reasons; i++) {
    fputs("reason,", out);
    csv_str(out, r->reasons[i].reason);
    fprintf(out, ",count,%" PRId64 "\r\n", r->reasons[i].count);
  }
  for (size_t i = 0; i < r->n_tiers; i++)
    csv_fields(out, "tier", r->tiers[i].name, touch_fields, ELEMENTSOF(touch_fields), &r->tiers[i],
               false);
  for (size_t i = 0; i < r->n_channels; i++)
    csv_fields(out, "channel", r->channels[i].name, touch_fields, ELEMENTSOF(touch_fields),
               &r->channels[i], false);
  const char *sections[] = {"segment", "owner", "policy"};
  enum report_by bys[] = {REPORT_BY_SEGMENT, REPORT_BY_OWNER, REPORT_BY_POLICY};
  for (size_t k = 0; k < ELEMENTSOF(sections); k++) {
    size_t n;
    const struct report_group *g = report_groups(r, bys[k], &n);
    for (size_t i = 0; i < n; i++)
      csv_fields(out, sections[k], g[i].name, funnel_fields, ELEMENTSOF(funnel_fields), &g[i].f,
                 g[i].f.has_median);
  }
  for (size_t i = 0; i < r->n_weeks; i++)
    csv_fields(out, "week", fmt_date(r->weeks[i].start, d1), week_fields, ELEMENTSOF(week_fields),
               &r->weeks[i], false);
  return finish_output(out);
}

/* ---- HTML --------------------------------------------------------------------------- */

static void html_str(FILE *out, const char *s) {
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p;) {
    size_t n = utf8_len(p);
    if (n == 0) {
      fputs("\xef\xbf\xbd", out);
      p++;
      continue;
    }
    switch (*p) {
    case '&':
      fputs("&amp;", out);
      break;
    case '<':
      fputs("&lt;", out);
      break;
    case '>':
      fputs("&gt;", out);
      break;
    case '"':
      fputs("&quot;", out);
      break;
    case '\'':
      fputs("&#39;", out);
      break;
    default:
      if (*p < 0x20 || *p == 0x7f)
        fputc('?', out);
      else
        fwrite(p, 1, n, out);
    }
    p += n;
  }
}

/* A label cut to at most max characters (code points), "…" appended when cut. */
static void html_label(FILE *out, const char *s, size_t max) {
  _cleanup_free_ char *cut = NULL;
  size_t chars = 0, i = 0;
  s = s ? s : "";
  while (s[i] && chars < max) {
    size_t n = utf8_len((const unsigned char *)s + i);
    i += n ? n : 1;
    chars++;
  }
  if (s[i]) {
    cut = strprintf("%.*s\xe2\x80\xa6", (int)i, s);
    if (cut)
      s = cut;
  }
  html_str(out, s);
}

static const char html_css[] =
    "*{box-sizing:border-box}"
    "body{margin:0;font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Noto Sans',"
    "'Liberation Sans',Arial,sans-serif;color:#1b1f24;background:#f4f6f8;line-height:1.45}"
    "main{max-width:1120px;margin:0 auto;padding:28px 24px 48px}"
    "h1{font-size:1.7rem;margin:0 0 4px}"
    "h2{font-size:1.2rem;margin:0 0 12px}"
    "p.sub{margin:0 0 20px;color:#3d4650}"
    ".cards{display:grid;grid-template-columns:repeat(4,1fr);gap:14px;margin-bottom:18px}"
    ".card{background:#fff;border:1px solid #d5dbe1;border-radius:8px;padding:14px 16px}"
    ".card .v{font-size:1.9rem;font-weight:700;color:#0b4f8a}"
    ".card .k{font-size:.9rem;color:#3d4650}"
    "section{background:#fff;border:1px solid #d5dbe1;border-radius:8px;padding:18px 20px;"
    "margin-bottom:18px}"
    ".grid{display:grid;grid-template-columns:1fr 1fr;gap:18px}"
    ".grid section{margin-bottom:0}"
    "svg{display:block;max-width:100%;height:auto}"
    "svg text{font-family:inherit;fill:#1b1f24}"
    "table{border-collapse:collapse;width:100%;font-size:.9rem;margin-top:6px}"
    "caption{text-align:left;font-weight:600;padding:8px 0 4px}"
    "th,td{padding:4px 8px;border-bottom:1px solid #e3e7eb;text-align:right;"
    "font-variant-numeric:tabular-nums}"
    "th:first-child,td:first-child{text-align:left}"
    "thead th{background:#eef2f5;color:#1b1f24}"
    ".empty{color:#3d4650;font-style:italic}"
    ".legend{font-size:.9rem;color:#3d4650;margin:4px 0 0}"
    "footer{color:#3d4650;font-size:.85rem}";

#define C_BAR "#1f66b3" /* bars and the renewal line: 5.9:1 on white */
#define C_ALT "#a34700" /* the response line: 5.6:1 on white */
#define C_GRID "#d5dbe1"
#define C_AXIS "#5b6570"
#define C_TRACK "#eef2f5"

struct bar {
  const char *label;
  int64_t value;    /* bar length: a count (of max) or a rate in basis points */
  const char *text; /* value text at the bar's end */
};

/* A horizontal bar chart: labels left, bars scaled to max, the value at the
 * end of each bar; when percent, an x axis 0..100 % with a title. */
static void svg_hbars(FILE *out, const char *id, const char *title, const char *desc,
                      const struct bar *b, size_t n, int64_t max, bool percent, int width,
                      int label_w) {
  const int value_w = 130, row = 30, top = 8;
  int axis_h = percent ? 46 : 8;
  int bar_w = width - label_w - value_w;
  int height = top + (int)n * row + axis_h;
  fprintf(out,
          "<svg role=\"img\" data-chart=\"%s\" viewBox=\"0 0 %d %d\" width=\"%d\" "
          "height=\"%d\" xmlns=\"http://www.w3.org/2000/svg\">\n<title>",
          id, width, height, width, height);
  html_str(out, title);
  fputs("</title>\n<desc>", out);
  html_str(out, desc);
  fputs("</desc>\n", out);
  if (percent)
    for (int k = 0; k <= 4; k++) {
      int x = label_w + bar_w * k / 4;
      fprintf(out,
              "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"" C_GRID "\"/>"
              "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">%d%%</text>\n",
              x, top - 4, x, top + (int)n * row + 4, x, top + (int)n * row + 20, k * 25);
    }
  for (size_t i = 0; i < n; i++) {
    int y = top + (int)i * row;
    int len = max > 0 && b[i].value > 0 ? (int)((int64_t)bar_w * b[i].value / max) : 0;
    if (b[i].value > 0 && len < 2)
      len = 2;
    fputs("<g>", out);
    fprintf(out, "<text x=\"%d\" y=\"%d\" font-size=\"13\" text-anchor=\"end\">", label_w - 10,
            y + 19);
    html_label(out, b[i].label, (size_t)(label_w - 10) / 8);
    fputs("</text>", out);
    fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"20\" fill=\"" C_TRACK "\"/>",
            label_w, y + 5, bar_w);
    if (len > 0)
      fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"20\" fill=\"" C_BAR "\"/>",
              label_w, y + 5, len);
    fprintf(out, "<text x=\"%d\" y=\"%d\" font-size=\"13\" font-weight=\"600\">",
            label_w + bar_w + 8, y + 19);
    html_str(out, b[i].text);
    fputs("</text></g>\n", out);
  }
  if (percent)
    fprintf(out,
            "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\" fill=\"" C_AXIS
            "\">Renewal rate (%% of terms reached)</text>\n",
            label_w + bar_w / 2, height - 6);
  fputs("</svg>\n", out);
}

/* Bars of renewal rate per tier or channel (renewals credited / reached). */
static void html_rate_chart_touch(FILE *out, const char *id, const char *what,
                                  const struct report_touch *v, size_t n) {
  fprintf(out, "<section aria-labelledby=\"%s-h\"><h2 id=\"%s-h\">Renewal rate by %s</h2>\n", id,
          id, what);
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    m += v[i].reached > 0;
  if (m == 0) {
    fputs("<p class=\"empty\">No customer reminders were sent for these terms.</p></section>\n",
          out);
    return;
  }
  struct bar *b = calloc(m, sizeof *b);
  char(*texts)[48] = calloc(m, sizeof *texts);
  struct buf desc = {0};
  if (b && texts) {
    size_t j = 0;
    (void)buf_printf(&desc,
                     "Renewals credited to each %s as a share of the terms it reached: ", what);
    for (size_t i = 0; i < n; i++) {
      if (v[i].reached == 0)
        continue;
      char pct[32];
      fmt_field(&touch_fields[5], &v[i], false, true, pct);
      snprintf(texts[j], sizeof texts[j], "%s (%" PRId64 "/%" PRId64 ")", pct, v[i].renewals,
               v[i].reached);
      b[j] = (struct bar){.label = v[i].name, .value = v[i].renewal_rate_bp, .text = texts[j]};
      (void)buf_printf(&desc, "%s%s %s", j ? "; " : "", v[i].name, texts[j]);
      j++;
    }
    char title[64];
    snprintf(title, sizeof title, "Renewal rate by %s", what);
    svg_hbars(out, id, title, desc.data ? desc.data : "", b, m, 10000, true, 520, 130);
  }
  buf_free(&desc);
  free(b);
  free(texts);
  fputs("</section>\n", out);
}

static void html_rate_chart_groups(FILE *out, const char *id, const char *what,
                                   const struct report_group *v, size_t n) {
  fprintf(out, "<section aria-labelledby=\"%s-h\"><h2 id=\"%s-h\">Renewal rate by %s</h2>\n", id,
          id, what);
  if (n == 0) {
    fputs("<p class=\"empty\">No terms expired in this period.</p></section>\n", out);
    return;
  }
  struct bar *b = calloc(n, sizeof *b);
  char(*texts)[48] = calloc(n, sizeof *texts);
  struct buf desc = {0};
  if (b && texts) {
    (void)buf_printf(&desc, "Renewed terms as a share of all terms, per %s: ", what);
    for (size_t i = 0; i < n; i++) {
      char pct[32];
      fmt_field(&funnel_fields[15], &v[i].f, false, true, pct);
      snprintf(texts[i], sizeof texts[i], "%s (%" PRId64 "/%" PRId64 ")", pct, v[i].f.renewed,
               v[i].f.terms);
      b[i] = (struct bar){.label = v[i].name, .value = v[i].f.renewal_rate_bp, .text = texts[i]};
      (void)buf_printf(&desc, "%s%s %s", i ? "; " : "", v[i].name, texts[i]);
    }
    char title[64];
    snprintf(title, sizeof title, "Renewal rate by %s", what);
    svg_hbars(out, id, title, desc.data ? desc.data : "", b, n, 10000, true, 520, 130);
  }
  buf_free(&desc);
  free(b);
  free(texts);
  fputs("</section>\n", out);
}

/* The funnel: terms, reminded, answered, renewed as bars of the terms count,
 * then the outcomes as one stacked bar. */
static void html_funnel(FILE *out, const struct report *r) {
  const struct report_funnel *f = &r->total;
  fputs("<section aria-labelledby=\"funnel-h\"><h2 id=\"funnel-h\">Funnel</h2>\n", out);
  if (f->terms == 0) {
    fputs("<p class=\"empty\">No terms expired in this period.</p></section>\n", out);
    return;
  }
  static const char *const labels[] = {"Terms expiring", "Reminded", "Answered",
                                       "Answered after a reminder", "Renewed"};
  int64_t vals[] = {f->terms, f->reminded, f->answered, f->prompted, f->renewed};
  struct bar b[ELEMENTSOF(vals)];
  char texts[ELEMENTSOF(vals)][48];
  struct buf desc = {0};
  (void)buf_puts(&desc, "Of the terms expiring in the period: ");
  for (size_t i = 0; i < ELEMENTSOF(vals); i++) {
    int64_t bp = report_rate_bp(vals[i], f->terms);
    snprintf(texts[i], sizeof texts[i], "%" PRId64 " (%" PRId64 ".%02" PRId64 "%%)", vals[i],
             bp / 100, bp % 100);
    b[i] = (struct bar){.label = labels[i], .value = vals[i], .text = texts[i]};
    (void)buf_printf(&desc, "%s%s %s", i ? ", " : "", labels[i], texts[i]);
  }
  svg_hbars(out, "funnel", "Renewal funnel", desc.data ? desc.data : "", b, ELEMENTSOF(vals),
            f->terms, false, 1070, 210);
  buf_free(&desc);

  /* outcomes: one stacked bar with a legend underneath */
  static const char *const onames[] = {"Renewed", "Declined", "Lapsed", "Open"};
  static const char *const colors[] = {"#1f66b3", "#a34700", "#6b4f9e", "#8a96a3"};
  int64_t ov[] = {f->renewed, f->declined, f->lapsed, f->open};
  const int w = 1070, x0 = 210, bw = w - x0 - 130; /* as the funnel's bars */
  fprintf(out,
          "<svg role=\"img\" data-chart=\"outcome\" viewBox=\"0 0 %d 74\" "
          "width=\"%d\" height=\"74\" xmlns=\"http://www.w3.org/2000/svg\">\n"
          "<title>Outcomes</title>\n<desc>",
          w, w);
  for (size_t i = 0; i < ELEMENTSOF(ov); i++)
    fprintf(out, "%s%s %" PRId64, i ? ", " : "", onames[i], ov[i]);
  fputs(" (of all terms)</desc>\n", out);
  fprintf(out, "<text x=\"%d\" y=\"24\" font-size=\"13\" text-anchor=\"end\">Outcome</text>\n",
          x0 - 10);
  int64_t acc = 0;
  for (size_t i = 0; i < ELEMENTSOF(ov); i++) {
    int xa = x0 + (int)((int64_t)bw * acc / f->terms);
    acc += ov[i];
    int xb = x0 + (int)((int64_t)bw * acc / f->terms);
    if (xb > xa)
      fprintf(out, "<rect x=\"%d\" y=\"8\" width=\"%d\" height=\"24\" fill=\"%s\"/>\n", xa, xb - xa,
              colors[i]);
  }
  int lx = x0;
  for (size_t i = 0; i < ELEMENTSOF(ov); i++) {
    fprintf(out,
            "<rect x=\"%d\" y=\"48\" width=\"14\" height=\"14\" fill=\"%s\"/>"
            "<text x=\"%d\" y=\"60\" font-size=\"13\">%s %" PRId64 "</text>\n",
            lx, colors[i], lx + 20, onames[i], ov[i]);
    lx += 170;
  }
  fputs("</svg>\n</section>\n", out);
}

/* The weekly trend: renewal and response rate per week of expiry. */
static void html_trend(FILE *out, const struct report *r) {
  fputs("<section aria-labelledby=\"trend-h\"><h2 id=\"trend-h\">Weekly trend</h2>\n", out);
  if (r->total.terms == 0 || r->n_weeks == 0) {
    fputs("<p class=\"empty\">No terms expired in this period.</p></section>\n", out);
    return;
  }
  const int W = 1070, H = 330, ml = 64, mr = 48, mt = 36, mb = 62;
  const int pw = W - ml - mr, ph = H - mt - mb;
  size_t n = r->n_weeks;
  char d[11];
  fprintf(out,
          "<svg role=\"img\" data-chart=\"trend\" viewBox=\"0 0 %d %d\" "
          "width=\"%d\" height=\"%d\" xmlns=\"http://www.w3.org/2000/svg\">\n"
          "<title>Renewal and response rate per week of expiry</title>\n"
          "<desc>",
          W, H, W, H);
  for (size_t i = 0; i < n; i++) {
    char a[32], b[32];
    fmt_field(&week_fields[4], &r->weeks[i], false, true, a);
    fmt_field(&week_fields[5], &r->weeks[i], false, true, b);
    fprintf(out, "%sweek of %s: %" PRId64 " terms, renewal rate %s, response rate %s",
            i ? "; " : "", fmt_date(r->weeks[i].start, d), r->weeks[i].terms, a, b);
  }
  fputs("</desc>\n", out);
  /* y grid and labels */
  for (int k = 0; k <= 4; k++) {
    int y = mt + ph - ph * k / 4;
    fprintf(out,
            "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"" C_GRID "\"/>"
            "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"end\">%d%%</text>\n",
            ml, y, ml + pw, y, ml - 8, y + 4, k * 25);
  }
  fprintf(out,
          "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"" C_AXIS "\"/>\n"
          "<text transform=\"translate(16 %d) rotate(-90)\" font-size=\"12\" "
          "text-anchor=\"middle\" fill=\"" C_AXIS "\">Rate (%%)</text>\n"
          "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\" fill=\"" C_AXIS
          "\">Week of expiry (starting Monday, UTC)</text>\n",
          ml, mt + ph, ml + pw, mt + ph, mt + ph / 2, ml + pw / 2, H - 8);
  /* x labels: at most about 12 */
  size_t step = (n + 11) / 12;
  for (size_t i = 0; i < n; i += step) {
    int x = n == 1 ? ml + pw / 2 : ml + (int)((int64_t)pw * (int64_t)i / (int64_t)(n - 1));
    fprintf(out,
            "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"" C_AXIS "\"/>"
            "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">%s</text>\n",
            x, mt + ph, x, mt + ph + 5, x, mt + ph + 20, fmt_date(r->weeks[i].start, d));
  }
  /* the two series; a week without a denominator breaks the line */
  for (int s = 0; s < 2; s++) {
    const char *color = s == 0 ? C_BAR : C_ALT;
    fprintf(out, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"2.5\"%s d=\"", color,
            s == 0 ? "" : " stroke-dasharray=\"7 4\"");
    bool pen = false;
    for (size_t i = 0; i < n; i++) {
      int64_t v = s == 0 ? r->weeks[i].renewal_rate_bp : r->weeks[i].response_rate_bp;
      if (v == REPORT_RATE_NONE) {
        pen = false;
        continue;
      }
      int x = n == 1 ? ml + pw / 2 : ml + (int)((int64_t)pw * (int64_t)i / (int64_t)(n - 1));
      int y = mt + ph - (int)((int64_t)ph * v / 10000);
      fprintf(out, "%s%d %d", pen ? " L" : (i ? " M" : "M"), x, y);
      pen = true;
    }
    fputs("\"/>\n", out);
    for (size_t i = 0; i < n; i++) {
      int64_t v = s == 0 ? r->weeks[i].renewal_rate_bp : r->weeks[i].response_rate_bp;
      if (v == REPORT_RATE_NONE)
        continue;
      int x = n == 1 ? ml + pw / 2 : ml + (int)((int64_t)pw * (int64_t)i / (int64_t)(n - 1));
      int y = mt + ph - (int)((int64_t)ph * v / 10000);
      if (s == 0)
        fprintf(out, "<circle cx=\"%d\" cy=\"%d\" r=\"4\" fill=\"%s\"/>", x, y, color);
      else
        fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"8\" height=\"8\" fill=\"%s\"/>", x - 4, y - 4,
                color);
    }
    fputc('\n', out);
  }
  /* legend */
  fprintf(
      out,
      "<g font-size=\"13\"><line x1=\"%d\" y1=\"16\" x2=\"%d\" y2=\"16\" stroke=\"" C_BAR
      "\" stroke-width=\"2.5\"/><circle cx=\"%d\" cy=\"16\" r=\"4\" fill=\"" C_BAR "\"/>"
      "<text x=\"%d\" y=\"20\">Renewal rate (renewed / terms)</text>"
      "<line x1=\"%d\" y1=\"16\" x2=\"%d\" y2=\"16\" stroke=\"" C_ALT
      "\" stroke-width=\"2.5\" stroke-dasharray=\"7 4\"/><rect x=\"%d\" y=\"12\" width=\"8\" "
      "height=\"8\" fill=\"" C_ALT "\"/>"
      "<text x=\"%d\" y=\"20\">Response rate (answered after a reminder / reminded)</text></g>\n",
      ml, ml + 30, ml + 15, ml + 38, ml + 300, ml + 330, ml + 311, ml + 338);
  fputs("</svg>\n</section>\n", out);
}

/* Column headers of the HTML tables (short; the definitions are in the
 * funnel table and the man page). */
static const char *const html_touch_headers[] = {
    "reached",      "sent",        "answers",   "response rate", "renewals",
    "renewal rate", "escalations", "attempted", "dead",          "failure rate"};
_Static_assert(ELEMENTSOF(html_touch_headers) == ELEMENTSOF(touch_fields), "one per field");
static const char *const html_group_headers[] = {
    "terms",  "reminded", "answered",      "renewed",      "declined",
    "lapsed", "open",     "response rate", "renewal rate", "median days before expiry"};
_Static_assert(ELEMENTSOF(html_group_headers) == ELEMENTSOF(group_columns), "one per column");
static const char *const html_week_headers[] = {
    "terms", "reminded", "answered after a reminder", "renewed", "renewal rate", "response rate"};
_Static_assert(ELEMENTSOF(html_week_headers) == ELEMENTSOF(week_fields), "one per field");

static void html_table_head(FILE *out, const char *caption, const char *first,
                            const char *const *headers, size_t n) {
  fputs("<table><caption>", out);
  html_str(out, caption);
  fputs("</caption><thead><tr><th scope=\"col\">", out);
  html_str(out, first);
  fputs("</th>", out);
  for (size_t i = 0; i < n; i++) {
    fputs("<th scope=\"col\">", out);
    html_str(out, headers[i]);
    fputs("</th>", out);
  }
  fputs("</tr></thead><tbody>\n", out);
}

static void html_row(FILE *out, const char *name, const struct field *f, const size_t *cols,
                     size_t n, const void *base, bool has_median) {
  char v[32];
  fputs("<tr><th scope=\"row\">", out);
  html_str(out, name);
  fputs("</th>", out);
  for (size_t i = 0; i < n; i++)
    fprintf(out, "<td>%s</td>", fmt_field(&f[cols ? cols[i] : i], base, has_median, true, v));
  fputs("</tr>\n", out);
}

static void html_tables(FILE *out, const struct report *r) {
  char v[32], d[11];
  fputs("<section aria-labelledby=\"fig-h\"><h2 id=\"fig-h\">Figures</h2>\n"
        "<table><caption>Funnel and rates</caption><tbody>\n",
        out);
  for (size_t i = 0; i < ELEMENTSOF(funnel_fields); i++) {
    fputs("<tr><th scope=\"row\">", out);
    html_str(out, funnel_fields[i].label);
    fprintf(out, "</th><td>%s</td></tr>\n",
            fmt_field(&funnel_fields[i], &r->total, r->total.has_median, true, v));
  }
  fputs("</tbody></table>\n", out);

  fputs("<table><caption>Decline reasons</caption><thead><tr><th scope=\"col\">reason</th>"
        "<th scope=\"col\">count</th></tr></thead><tbody>\n",
        out);
  for (size_t i = 0; i < r->n_reasons; i++) {
    fputs("<tr><th scope=\"row\">", out);
    html_str(out, r->reasons[i].reason);
    fprintf(out, "</th><td>%" PRId64 "</td></tr>\n", r->reasons[i].count);
  }
  if (r->n_reasons == 0)
    fputs("<tr><td colspan=\"2\" class=\"empty\">none</td></tr>\n", out);
  fputs("</tbody></table>\n", out);

  const struct {
    const char *caption, *first;
    const struct report_touch *v;
    size_t n;
  } touches[] = {
      {"By tier (answers and renewals credited to the last reminder before them)", "tier", r->tiers,
       r->n_tiers},
      {"By channel", "channel", r->channels, r->n_channels},
  };
  for (size_t k = 0; k < ELEMENTSOF(touches); k++) {
    if (touches[k].n == 0)
      continue;
    html_table_head(out, touches[k].caption, touches[k].first, html_touch_headers,
                    ELEMENTSOF(html_touch_headers));
    for (size_t i = 0; i < touches[k].n; i++)
      html_row(out, touches[k].v[i].name, touch_fields, NULL, ELEMENTSOF(touch_fields),
               &touches[k].v[i], false);
    fputs("</tbody></table>\n", out);
  }
  const char *names[] = {"segment", "owner", "policy"};
  enum report_by bys[] = {REPORT_BY_SEGMENT, REPORT_BY_OWNER, REPORT_BY_POLICY};
  for (size_t k = 0; k < ELEMENTSOF(bys); k++) {
    size_t n;
    const struct report_group *g = report_groups(r, bys[k], &n);
    if (n == 0)
      continue;
    char caption[32];
    snprintf(caption, sizeof caption, "By %s", names[k]);
    html_table_head(out, caption, names[k], html_group_headers, ELEMENTSOF(html_group_headers));
    for (size_t i = 0; i < n; i++)
      html_row(out, g[i].name, funnel_fields, group_columns, ELEMENTSOF(group_columns), &g[i].f,
               g[i].f.has_median);
    fputs("</tbody></table>\n", out);
  }
  if (r->total.terms > 0) {
    html_table_head(out, "By week of expiry", "week (Monday)", html_week_headers,
                    ELEMENTSOF(html_week_headers));
    for (size_t i = 0; i < r->n_weeks; i++)
      html_row(out, fmt_date(r->weeks[i].start, d), week_fields, NULL, ELEMENTSOF(week_fields),
               &r->weeks[i], false);
    fputs("</tbody></table>\n", out);
  }
  fputs("</section>\n", out);
}

int report_render_html(const struct report *r, FILE *out) {
  if (!r || !out)
    return -EINVAL;
  char d1[11], d2[11], t[21], v[32];
  const struct report_funnel *f = &r->total;
  fmt_date(r->from, d1);
  fmt_last_day(r, d2);
  fprintf(out,
          "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<title>Renewal report %s to %s</title>\n<style>%s</style>\n</head>\n<body>\n<main>\n"
          "<h1>Renewal report</h1>\n<p class=\"sub\">Contract terms expiring %s to %s (UTC). "
          "Generated %s by renewd.</p>\n",
          d1, d2, html_css, d1, d2, format_rfc3339(r->generated_at, t));

  /* key figures */
  struct {
    const char *label;
    const struct field *f;
  } cards[] = {
      {"Renewal rate (renewed / terms)", &funnel_fields[15]},
      {"Response rate (answered after a reminder / reminded)", &funnel_fields[17]},
      {"Median days before expiry at renewal", &funnel_fields[18]},
      {"Terms expiring in the period", &funnel_fields[0]},
  };
  fputs("<div class=\"cards\">\n", out);
  for (size_t i = 0; i < ELEMENTSOF(cards); i++) {
    fprintf(out, "<div class=\"card\"><div class=\"v\">%s</div><div class=\"k\">",
            fmt_field(cards[i].f, f, f->has_median, true, v));
    html_str(out, cards[i].label);
    fputs("</div></div>\n", out);
  }
  fputs("</div>\n", out);

  html_funnel(out, r);
  fputs("<div class=\"grid\">\n", out);
  html_rate_chart_touch(out, "tier", "tier", r->tiers, r->n_tiers);
  html_rate_chart_touch(out, "channel", "channel", r->channels, r->n_channels);
  fputs("</div>\n<div class=\"grid\" style=\"margin-top:18px;margin-bottom:18px\">\n", out);
  html_rate_chart_groups(out, "segment", "segment", r->segments, r->n_segments);
  /* escalations next to segments */
  fputs("<section aria-labelledby=\"esc-h\"><h2 id=\"esc-h\">Escalations and delivery</h2>\n"
        "<table><tbody>\n",
        out);
  for (size_t i = 12; i <= 14; i++) {
    fputs("<tr><th scope=\"row\">", out);
    html_str(out, funnel_fields[i].label);
    fprintf(out, "</th><td>%s</td></tr>\n", fmt_field(&funnel_fields[i], f, false, true, v));
  }
  fputs("</tbody></table>\n<table><caption>Delivery failure rate by channel (dead / attempted)"
        "</caption><thead><tr><th scope=\"col\">channel</th><th scope=\"col\">attempted</th>"
        "<th scope=\"col\">dead</th><th scope=\"col\">failure rate</th></tr></thead><tbody>\n",
        out);
  for (size_t i = 0; i < r->n_channels; i++) {
    char a[32], b[32], c[32];
    fputs("<tr><th scope=\"row\">", out);
    html_str(out, r->channels[i].name);
    fprintf(out, "</th><td>%s</td><td>%s</td><td>%s</td></tr>\n",
            fmt_field(&touch_fields[7], &r->channels[i], false, true, a),
            fmt_field(&touch_fields[8], &r->channels[i], false, true, b),
            fmt_field(&touch_fields[9], &r->channels[i], false, true, c));
  }
  if (r->n_channels == 0)
    fputs("<tr><td colspan=\"4\" class=\"empty\">no deliveries</td></tr>\n", out);
  fputs("</tbody></table>\n</section>\n</div>\n", out);
  html_trend(out, r);
  html_tables(out, r);
  fputs("<footer>Definitions: see renewctl(1), section REPORT. Rates are rounded to 0.01 "
        "%.</footer>\n"
        "</main>\n</body>\n</html>\n",
        out);
  return finish_output(out);
}
