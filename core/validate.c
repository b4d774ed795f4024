/* validate: row validation for imports and API upserts (see validate.h).
 *
 * Each column has one checker that appends at most one problem. Normalised
 * values are copied into a fixed scratch buffer: every accepted value has a
 * length limit, so the buffer cannot overflow (checked anyway). */
#include "core/validate.h"

#include <errno.h>
#include <strings.h>

#include "core/util.h"

#define ID_MAX_BYTES 128
#define NAME_MAX_CHARS 200
#define LABEL_MAX_CHARS 64
#define AMOUNT_MAX INT64_C(1000000000000000) /* 10^15 minor units */
#define SHOW_MAX 48                          /* bytes of a value quoted in a message */

static const char *const col_names[_VCOL_MAX] = {
    [VCOL_CONTRACT_ID] = "contract_id",
    [VCOL_CUSTOMER_ID] = "customer_id",
    [VCOL_CUSTOMER_NAME] = "customer_name",
    [VCOL_EMAIL] = "email",
    [VCOL_PHONE] = "phone",
    [VCOL_TIMEZONE] = "timezone",
    [VCOL_LOCALE] = "locale",
    [VCOL_SEGMENT] = "segment",
    [VCOL_OWNER] = "owner",
    [VCOL_PRODUCT] = "product",
    [VCOL_STARTS_ON] = "starts_on",
    [VCOL_EXPIRES_ON] = "expires_on",
    [VCOL_VALUE] = "value",
    [VCOL_CURRENCY] = "currency",
};

#define ZONE_CACHE 16      /* direct-mapped: zone names of recent rows */
#define ZONE_CACHE_NAME 48 /* longer names are not cached */

struct validate {
  struct cal *cal;                     /* not owned */
  const struct cal_zone *default_zone; /* owned by cal */
  struct {
    char name[ZONE_CACHE_NAME];  /* NUL-terminated; "" = empty entry */
    const struct cal_zone *zone; /* owned by cal (stable until cal_free) */
  } zones[ZONE_CACHE];           /* known zones by name: saves cal_zone()'s hashing */
  char scratch[8192];            /* normalised strings of the last row */
  size_t used;                   /* bytes of scratch in use */
};

const char *validate_col_name(enum validate_col c) {
  return (unsigned)c < _VCOL_MAX ? col_names[c] : NULL;
}

static bool is_blank(char c) {
  return c == ' ' || c == '\t';
}

int validate_col_from_name(const char *s, size_t len) {
  if (!s)
    return -EINVAL;
  while (len > 0 && is_blank(*s))
    s++, len--;
  while (len > 0 && is_blank(s[len - 1]))
    len--;
  for (size_t c = 0; c < _VCOL_MAX; c++)
    if (strlen(col_names[c]) == len && strncasecmp(col_names[c], s, len) == 0)
      return (int)c;
  return -EINVAL;
}

int validate_new(struct cal *cal, const char *default_tz, struct validate **ret) {
  if (!cal || !ret)
    return -EINVAL;
  const struct cal_zone *z = cal_zone(cal, default_tz ? default_tz : "UTC");
  if (!z)
    return errno == ENOMEM ? -ENOMEM : -EINVAL;
  struct validate *v = calloc(1, sizeof(*v));
  if (!v)
    return -ENOMEM;
  v->cal = cal;
  v->default_zone = z;
  *ret = v;
  return 0;
}

struct validate *validate_free(struct validate *v) {
  free(v);
  return NULL;
}

/* ---- single values -------------------------------------------------------- */

/* Whether none of the 8 bytes in w is a control character (< 0x20, 0x7f) or
 * non-ASCII (>= 0x80): the word-at-a-time "has a byte less than" tests. */
static bool ascii8_printable(uint64_t w) {
  const uint64_t ones = UINT64_C(0x0101010101010101), high = UINT64_C(0x8080808080808080);
  uint64_t below = (w - ones * 0x20) & ~w & high; /* a byte < 0x20 */
  uint64_t d = w ^ (ones * 0x7f);
  uint64_t del = (d - ones) & ~d & high; /* a byte == 0x7f */
  return ((w & high) | below | del) == 0;
}

bool validate_text(const char *s, size_t len, size_t *ret_chars) {
  const unsigned char *p = (const unsigned char *)s, *end = p + len;
  size_t chars = 0;
  /* fast path: printable ASCII, 8 bytes at a time */
  while (end - p >= 8) {
    uint64_t w;
    memcpy(&w, p, sizeof w);
    if (!ascii8_printable(w))
      break;
    p += 8;
    chars += 8;
  }
  while (p < end) {
    unsigned c = *p;
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7f)
        return false;
      p++;
      chars++;
      continue;
    }
    if (c >= 0xc2 && c <= 0xdf)
      n = 1, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
      n = 2, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
      n = 3, cp = c & 0x07;
    else
      return false;
    if ((size_t)(end - p) <= n)
      return false;
    for (size_t i = 1; i <= n; i++) {
      if ((p[i] & 0xc0) != 0x80)
        return false;
      cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    p += n + 1;
    chars++;
  }
  if (ret_chars)
    *ret_chars = chars;
  return true;
}

static bool is_alnum(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static bool is_alpha(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static bool is_digit(unsigned char c) {
  return c >= '0' && c <= '9';
}

bool validate_email(const char *s) {
  if (!s)
    return false;
  size_t len = strlen(s);
  const char *at = strrchr(s, '@');
  if (len > 254 || !at || at == s || at - s > 64 || !validate_text(s, len, NULL))
    return false;
  /* local part: dot-atom */
  char prev = '.';
  for (const char *p = s; p < at; p++) {
    unsigned char c = *p;
    if (c == '.') {
      if (prev == '.')
        return false;
    } else if (!(is_alnum(c) || c >= 0x80 || strchr("!#$%&'*+/=?^_`{|}~-", c)))
      return false;
    prev = (char)c;
  }
  if (prev == '.')
    return false;
  /* domain: at least two labels of letters, digits, hyphens (not at the ends) */
  const char *d = at + 1;
  size_t labels = 0, label_len = 0;
  bool tld_alpha = false;
  for (const char *p = d;; p++) {
    unsigned char c = *p;
    if (c == '.' || c == 0) {
      if (label_len == 0 || label_len > 63 || p[-1] == '-')
        return false;
      labels++;
      if (c == 0)
        break;
      label_len = 0;
      tld_alpha = false;
      continue;
    }
    if (c == '-') {
      if (label_len == 0)
        return false;
    } else if (!(is_alnum(c) || c >= 0x80))
      return false;
    if (!is_digit(c) && c != '-')
      tld_alpha = true;
    label_len++;
  }
  return labels >= 2 && tld_alpha;
}

int validate_e164(const char *s, char out[static 17]) {
  if (!s || s[0] != '+')
    return -EINVAL;
  size_t n = 0;
  out[n++] = '+';
  for (const char *p = s + 1; *p; p++) {
    if (is_digit(*p)) {
      if (n == 16 || (n == 1 && *p == '0'))
        return -EINVAL;
      out[n++] = *p;
    } else if (!strchr(" -.()", *p) || p == s + 1)
      return -EINVAL;
  }
  out[n] = 0;
  return n - 1 >= 8 ? 0 : -EINVAL;
}

bool validate_locale(const char *s) {
  if (!s)
    return false;
  size_t len = strlen(s), i = 0;
  if (len > 35)
    return false;
  while (is_alpha(s[i]))
    i++;
  if (i < 2 || i > 3)
    return false;
  while (s[i] == '-') {
    size_t j = ++i;
    while (is_alnum(s[i]))
      i++;
    if (i == j || i - j > 8)
      return false;
  }
  return s[i] == 0;
}

bool validate_currency(const char *s) {
  return s && strlen(s) == 3 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z' &&
         s[2] >= 'A' && s[2] <= 'Z';
}

int validate_amount(const char *s, int64_t *ret_minor) {
  if (!s || !ret_minor)
    return -EINVAL;
  bool negative = *s == '-';
  const char *p = s + negative;
  int64_t v = 0;
  bool big = false;
  if (!is_digit(*p))
    return -EINVAL;
  for (; is_digit(*p); p++) {
    if (v > AMOUNT_MAX)
      big = true;
    else
      v = v * 10 + (*p - '0');
  }
  int decimals = 0;
  if (*p == '.') {
    p++;
    for (; is_digit(*p); p++, decimals++)
      if (decimals < 2)
        v = v * 10 + (*p - '0');
    if (decimals == 0)
      return -EINVAL;
  }
  if (*p)
    return -EINVAL;
  if (negative)
    return -EDOM;
  if (decimals > 2)
    return -E2BIG;
  for (; decimals < 2; decimals++)
    v *= 10;
  if (big || v > AMOUNT_MAX)
    return -ERANGE;
  *ret_minor = v;
  return 0;
}

/* ---- rows ------------------------------------------------------------------ */

/* cal_zone() through the small cache of known zones (an import repeats a
 * handful of zone names on every row). NULL = unknown zone (errno as set by
 * cal_zone()). */
static const struct cal_zone *zone_of(struct validate *v, const char *name, size_t len) {
  if (len == 0 || len >= ZONE_CACHE_NAME)
    return cal_zone(v->cal, name);
  unsigned k =
      ((unsigned char)name[0] * 31u + (unsigned char)name[len - 1] + (unsigned)len) % ZONE_CACHE;
  if (memcmp(v->zones[k].name, name, len + 1) == 0)
    return v->zones[k].zone;
  const struct cal_zone *z = cal_zone(v->cal, name);
  if (z) {
    memcpy(v->zones[k].name, name, len + 1);
    v->zones[k].zone = z;
  }
  return z;
}

/* Shows a value inside a message: control bytes become '?', long values are
 * cut (on a UTF-8 boundary) after SHOW_MAX bytes and end in "...". */
static const char *show(const char *s, char out[static SHOW_MAX + 4]) {
  size_t n = strnlen(s, SHOW_MAX + 1);
  bool cut = n > SHOW_MAX;
  if (cut) {
    n = SHOW_MAX;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
      n--; /* s[n] starts a character: cut before it */
  }
  for (size_t i = 0; i < n; i++)
    out[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
  strcpy(out + n, cut ? "..." : "");
  return out;
}

_printf_(3, 4) static void problem(struct validate_problems *ps, enum validate_col col,
                                   const char *fmt, ...) {
  if (ps->n >= ELEMENTSOF(ps->p))
    return;
  struct validate_problem *p = &ps->p[ps->n++];
  p->col = col;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->message, sizeof(p->message), fmt, ap);
  va_end(ap);
}

/* Copies n bytes into the scratch buffer, NUL-terminated. */
static char *keep(struct validate *v, const char *s, size_t n) {
  if (v->used + n + 1 > sizeof(v->scratch))
    return NULL;
  char *d = v->scratch + v->used;
  memcpy(d, s, n);
  d[n] = 0;
  v->used += n + 1;
  return d;
}

/* The trimmed value of a column: *ret points into the scratch buffer, NULL
 * when empty. Oversized values are shortened for the checks that follow (they
 * fail their length check on the returned length). */
struct value {
  const char *s; /* NULL when absent */
  size_t len;    /* bytes */
};

static struct value trimmed(const char *s) {
  struct value r = {NULL, 0};
  if (!s)
    return r;
  while (is_blank(*s))
    s++;
  size_t n = strlen(s);
  while (n > 0 && is_blank(s[n - 1]))
    n--;
  if (n > 0)
    r = (struct value){s, n};
  return r;
}

/* Checks free text (UTF-8, no controls, at most max_chars code points; for
 * ids at most max_bytes bytes) and returns a scratch copy or NULL. */
static char *check_text(struct validate *v, struct validate_problems *ps, enum validate_col col,
                        struct value t, size_t max_chars, size_t max_bytes, int *oom) {
  size_t chars;
  if (!t.s)
    return NULL;
  if (!validate_text(t.s, t.len, &chars)) {
    bool control = false;
    for (size_t i = 0; i < t.len && !control; i++)
      control = (unsigned char)t.s[i] < 0x20 || t.s[i] == 0x7f;
    problem(ps, col, control ? "contains a control character" : "not valid UTF-8");
    return NULL;
  }
  if (max_bytes && t.len > max_bytes) {
    problem(ps, col, "longer than %zu bytes", max_bytes);
    return NULL;
  }
  if (max_chars && chars > max_chars) {
    problem(ps, col, "longer than %zu characters", max_chars);
    return NULL;
  }
  char *c = keep(v, t.s, t.len);
  if (!c)
    *oom = 1;
  return c;
}

enum when_kind { WHEN_START, WHEN_END };

/* Parses a date (start or end of that local day in z) or an RFC 3339
 * timestamp. Returns true and sets *ret when z is known and s valid; reports a
 * problem when s is invalid; returns false silently when only z is missing. */
static bool parse_when(struct validate_problems *ps, enum validate_col col, const char *s,
                       const struct cal_zone *z, enum when_kind kind, int64_t *ret) {
  char sh[SHOW_MAX + 4];
  size_t len = strlen(s);
  if (len > 10 || strpbrk(s, "Tt:")) {
    if (cal_parse_rfc3339(s, ret) < 0) {
      problem(ps, col, "invalid timestamp '%s'", show(s, sh));
      return false;
    }
    return true;
  }
  bool shape = len == 10 && s[4] == '-' && s[7] == '-';
  for (size_t i = 0; shape && i < 10; i++)
    if (i != 4 && i != 7 && !is_digit(s[i]))
      shape = false;
  int y, m, d;
  if (!shape) {
    problem(ps, col, "expected YYYY-MM-DD or RFC 3339, got '%s'", show(s, sh));
    return false;
  }
  if (cal_parse_date(s, &y, &m, &d) < 0) {
    problem(ps, col, "invalid date '%s'", show(s, sh));
    return false;
  }
  if (!z)
    return false;
  *ret = kind == WHEN_END ? cal_end_of_date(z, y, m, d) : cal_from_local(z, y, m, d, 0, 0, 0);
  return true;
}

int validate_row(struct validate *v, const char *const fields[_VCOL_MAX],
                 struct customer *ret_customer, struct contract *ret_contract,
                 struct validate_problems *ret_problems) {
  struct validate_problems local, *ps = ret_problems ? ret_problems : &local;
  struct value f[_VCOL_MAX];
  char sh[SHOW_MAX + 4];
  int oom = 0;

  if (!v || !fields)
    return -EINVAL;
  ps->n = 0;
  v->used = 0;
  for (size_t c = 0; c < _VCOL_MAX; c++)
    f[c] = trimmed(fields[c]);

  /* ids */
  char *contract_id = NULL, *customer_id = NULL;
  if (!f[VCOL_CONTRACT_ID].s)
    problem(ps, VCOL_CONTRACT_ID, "required");
  else
    contract_id = check_text(v, ps, VCOL_CONTRACT_ID, f[VCOL_CONTRACT_ID], 0, ID_MAX_BYTES, &oom);
  if (!f[VCOL_CUSTOMER_ID].s)
    problem(ps, VCOL_CUSTOMER_ID, "required");
  else
    customer_id = check_text(v, ps, VCOL_CUSTOMER_ID, f[VCOL_CUSTOMER_ID], 0, ID_MAX_BYTES, &oom);

  char *name =
      check_text(v, ps, VCOL_CUSTOMER_NAME, f[VCOL_CUSTOMER_NAME], NAME_MAX_CHARS, 0, &oom);

  /* contact: email or phone */
  char *email = NULL, *phone = NULL;
  if (f[VCOL_EMAIL].s) {
    char *e = keep(v, f[VCOL_EMAIL].s, MIN(f[VCOL_EMAIL].len, (size_t)300));
    if (!e)
      oom = 1;
    else if (f[VCOL_EMAIL].len > 254 || !validate_email(e))
      problem(ps, VCOL_EMAIL, "invalid email '%s'", show(e, sh));
    else
      email = e;
  }
  if (f[VCOL_PHONE].s) {
    char *raw = keep(v, f[VCOL_PHONE].s, MIN(f[VCOL_PHONE].len, (size_t)64));
    char norm[17];
    if (!raw)
      oom = 1;
    else if (f[VCOL_PHONE].len > 64 || validate_e164(raw, norm) < 0)
      problem(ps, VCOL_PHONE, "not E.164: '%s'", show(raw, sh));
    else if (!(phone = keep(v, norm, strlen(norm))))
      oom = 1;
  }
  if (!f[VCOL_EMAIL].s && !f[VCOL_PHONE].s)
    problem(ps, VCOL_EMAIL, "email or phone required");

  /* zone */
  const struct cal_zone *zone = v->default_zone;
  if (f[VCOL_TIMEZONE].s) {
    char *tz = keep(v, f[VCOL_TIMEZONE].s, MIN(f[VCOL_TIMEZONE].len, (size_t)128));
    zone = NULL;
    if (!tz)
      oom = 1;
    else if (f[VCOL_TIMEZONE].len > 128 || !validate_text(tz, strlen(tz), NULL))
      problem(ps, VCOL_TIMEZONE, "unknown time zone '%s'", show(tz, sh));
    else if (!(zone = zone_of(v, tz, strlen(tz)))) {
      if (errno == ENOMEM)
        oom = 1;
      else
        problem(ps, VCOL_TIMEZONE, "unknown time zone '%s'", show(tz, sh));
    }
  }

  char *locale = NULL;
  if (f[VCOL_LOCALE].s) {
    char *l = keep(v, f[VCOL_LOCALE].s, MIN(f[VCOL_LOCALE].len, (size_t)64));
    if (!l)
      oom = 1;
    else if (!validate_locale(l))
      problem(ps, VCOL_LOCALE, "invalid locale '%s' (want e.g. en, zh-CN)", show(l, sh));
    else
      locale = l;
  }

  char *segment = check_text(v, ps, VCOL_SEGMENT, f[VCOL_SEGMENT], LABEL_MAX_CHARS, 0, &oom);
  char *owner = check_text(v, ps, VCOL_OWNER, f[VCOL_OWNER], LABEL_MAX_CHARS, 0, &oom);
  char *product = check_text(v, ps, VCOL_PRODUCT, f[VCOL_PRODUCT], NAME_MAX_CHARS, 0, &oom);

  /* dates */
  int64_t starts_at = 0, expires_at = 0;
  bool have_start = false, have_end = false;
  char *starts_on = NULL, *expires_on = NULL;
  if (f[VCOL_STARTS_ON].s) {
    if (!(starts_on = keep(v, f[VCOL_STARTS_ON].s, MIN(f[VCOL_STARTS_ON].len, (size_t)64))))
      oom = 1;
    else
      have_start = parse_when(ps, VCOL_STARTS_ON, starts_on, zone, WHEN_START, &starts_at);
  }
  if (!f[VCOL_EXPIRES_ON].s)
    problem(ps, VCOL_EXPIRES_ON, "required");
  else if (!(expires_on = keep(v, f[VCOL_EXPIRES_ON].s, MIN(f[VCOL_EXPIRES_ON].len, (size_t)64))))
    oom = 1;
  else
    have_end = parse_when(ps, VCOL_EXPIRES_ON, expires_on, zone, WHEN_END, &expires_at);
  if (have_start && have_end && starts_at >= expires_at)
    problem(ps, VCOL_STARTS_ON, "'%s' is not before expires_on '%s'", starts_on, expires_on);

  /* money */
  int64_t value_minor = 0;
  char *currency = NULL;
  if (f[VCOL_VALUE].s) {
    char *s = keep(v, f[VCOL_VALUE].s, MIN(f[VCOL_VALUE].len, (size_t)64));
    int r = s ? validate_amount(s, &value_minor) : 0;
    if (!s)
      oom = 1;
    else if (r == -EDOM)
      problem(ps, VCOL_VALUE, "negative value '%s'", show(s, sh));
    else if (r == -E2BIG)
      problem(ps, VCOL_VALUE, "more than 2 decimals: '%s'", show(s, sh));
    else if (r == -ERANGE || f[VCOL_VALUE].len > 64)
      problem(ps, VCOL_VALUE, "value too large: '%s'", show(s, sh));
    else if (r < 0)
      problem(ps, VCOL_VALUE, "invalid value '%s' (want e.g. 1200.50)", show(s, sh));
  }
  if (f[VCOL_CURRENCY].s) {
    char *s = keep(v, f[VCOL_CURRENCY].s, MIN(f[VCOL_CURRENCY].len, (size_t)64));
    if (!s)
      oom = 1;
    else if (!validate_currency(s))
      problem(ps, VCOL_CURRENCY, "invalid currency '%s' (want 3 uppercase letters, e.g. EUR)",
              show(s, sh));
    else
      currency = s;
  } else if (f[VCOL_VALUE].s)
    problem(ps, VCOL_CURRENCY, "required when value is given");

  if (oom)
    return -ENOMEM;

  /* problems in column order */
  for (size_t i = 1; i < ps->n; i++)
    for (size_t j = i; j > 0 && ps->p[j - 1].col > ps->p[j].col; j--) {
      struct validate_problem t = ps->p[j];
      ps->p[j] = ps->p[j - 1];
      ps->p[j - 1] = t;
    }
  if (ps->n > 0)
    return (int)ps->n;

  if (ret_customer)
    *ret_customer = (struct customer){
        .id = customer_id,
        .name = name,
        .email = email,
        .phone = phone,
        .tz = (char *)cal_zone_name(zone),
        .locale = locale,
        .segment = segment,
        .owner_id = owner,
    };
  if (ret_contract)
    *ret_contract = (struct contract){
        .id = contract_id,
        .customer_id = customer_id,
        .product = product,
        .currency = currency,
        .starts_at = starts_at,
        .expires_at = expires_at,
        .value_minor = value_minor,
    };
  return 0;
}
