/* ladder: the reminder ladder types (struct policy, struct tier), their deep
 * copy, and the stable one-line text form a contract's ladder snapshot is
 * stored in (see ladder.h for the format).
 *
 * Owns nothing beyond the policies it allocates. Pure: no I/O, never blocks,
 * no global state. Invariant: ladder_parse(ladder_serialize(p)) gives a policy
 * that is ladder_equal() to p, and serialising that again gives the same text. */
#include "core/ladder.h"

#include "core/util.h"

#include <inttypes.h>

#define LADDER_MAGIC "ladder/1"

static void strv_free(char **v, size_t n) {
  if (!v)
    return;
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

static int strv_copy(char *const *src, size_t n, char ***ret) {
  if (n == 0) {
    *ret = NULL;
    return 0;
  }
  char **v = calloc(n, sizeof(char *));
  if (!v)
    return -ENOMEM;
  for (size_t i = 0; i < n; i++)
    if (!(v[i] = strdup(src[i] ? src[i] : ""))) {
      strv_free(v, n);
      return -ENOMEM;
    }
  *ret = v;
  return 0;
}

void tier_done(struct tier *t) {
  if (!t)
    return;
  free(t->name);
  free(t->repeat);
  cal_rrule_free(t->rrule);
  strv_free(t->channels, t->n_channels);
  strv_free(t->fallback, t->n_fallback);
  free(t->template_name);
  free(t->escalate_to);
  *t = (struct tier){0};
}

struct policy *policy_free(struct policy *p) {
  if (!p)
    return NULL;
  free(p->name);
  strv_free(p->segments, p->n_segments);
  if (p->tiers)
    for (size_t i = 0; i < p->n_tiers; i++)
      tier_done(&p->tiers[i]);
  free(p->tiers);
  free(p->fallback_owner);
  free(p->owner_window);
  free(p);
  return NULL;
}

int tier_copy(const struct tier *src, struct tier *dst) {
  int r;
  dst->offset = src->offset;
  dst->audience = src->audience;
  dst->escalate_after = src->escalate_after;
  if ((src->name && !(dst->name = strdup(src->name))) ||
      (src->repeat && !(dst->repeat = strdup(src->repeat))) ||
      (src->template_name && !(dst->template_name = strdup(src->template_name))) ||
      (src->escalate_to && !(dst->escalate_to = strdup(src->escalate_to))))
    return -ENOMEM;
  r = strv_copy(src->channels, src->n_channels, &dst->channels);
  if (r < 0)
    return r;
  dst->n_channels = src->n_channels;
  r = strv_copy(src->fallback, src->n_fallback, &dst->fallback);
  if (r < 0)
    return r;
  dst->n_fallback = src->n_fallback;
  if (src->repeat) {
    char err[256];
    r = cal_rrule_parse(src->repeat, &dst->rrule, err, sizeof err);
    if (r < 0)
      return r == -ENOMEM ? r : -EINVAL;
  }
  return 0;
}

int policy_copy(const struct policy *src, struct policy **ret) {
  if (!src || !ret)
    return -EINVAL;
  _cleanup_(policy_freep) struct policy *p = calloc(1, sizeof *p);
  if (!p)
    return -ENOMEM;
  int r;
  p->catchup = src->catchup;
  p->callback_pause = src->callback_pause;
  p->lapse_grace = src->lapse_grace;
  if ((src->name && !(p->name = strdup(src->name))) ||
      (src->fallback_owner && !(p->fallback_owner = strdup(src->fallback_owner))) ||
      (src->owner_window && !(p->owner_window = strdup(src->owner_window))))
    return -ENOMEM;
  r = strv_copy(src->segments, src->n_segments, &p->segments);
  if (r < 0)
    return r;
  p->n_segments = src->n_segments;
  if (src->n_tiers > 0) {
    p->tiers = calloc(src->n_tiers, sizeof(struct tier));
    if (!p->tiers)
      return -ENOMEM;
    p->n_tiers = src->n_tiers;
    for (size_t i = 0; i < src->n_tiers; i++) {
      r = tier_copy(&src->tiers[i], &p->tiers[i]);
      if (r < 0)
        return r;
    }
  }
  *ret = TAKE_PTR(p);
  return 0;
}

int ladder_offset_cmp(const struct cal_duration *a, const struct cal_duration *b) {
  /* days < 2^31 and seconds are bounded by what cal_duration_parse accepts;
   * long double avoids any overflow for absurd but valid inputs. */
  long double x = (long double)a->days * 86400 + (long double)a->seconds;
  long double y = (long double)b->days * 86400 + (long double)b->seconds;
  if (a->negative)
    x = -x;
  if (b->negative)
    y = -y;
  return x < y ? -1 : x > y ? 1 : 0;
}

/* ---- serialisation ---- */

static const char *const catchup_names[] = {
    [CATCHUP_LATEST] = "latest",
    [CATCHUP_ALL] = "all",
    [CATCHUP_SKIP] = "skip",
};
static const char *const audience_names[] = {
    [AUDIENCE_CUSTOMER] = "customer",
    [AUDIENCE_OWNER] = "owner",
};

static bool needs_escape(unsigned char c) {
  return c <= 0x20 || c == 0x7f || c == '%' || c == ',';
}

static int put_escaped(struct buf *b, const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    int r = needs_escape(*p) ? buf_printf(b, "%%%02X", *p) : buf_append(b, p, 1);
    if (r < 0)
      return r;
  }
  return 0;
}

static int put_str(struct buf *b, const char *key, const char *v) {
  if (!v)
    return 0;
  int r = buf_printf(b, " %s=", key);
  return r < 0 ? r : put_escaped(b, v);
}

static int put_list(struct buf *b, const char *key, char *const *v, size_t n) {
  if (n == 0)
    return 0;
  int r = buf_printf(b, " %s=", key);
  for (size_t i = 0; r >= 0 && i < n; i++) {
    if (i > 0)
      r = buf_puts(b, ",");
    if (r >= 0)
      r = put_escaped(b, v[i] ? v[i] : "");
  }
  return r;
}

/* Canonical, lossless RFC 5545 text of d: "-P60D", "PT36H", "P1DT2H30M",
 * "PT0S". Written here (not cal_duration_format()) so the stored snapshot
 * format cannot change under us. */
static int put_duration(struct buf *b, const struct cal_duration *d) {
  int r = buf_printf(b, " offset=%sP", d->negative ? "-" : "");
  if (r >= 0 && d->days > 0)
    r = buf_printf(b, "%" PRId32 "D", d->days);
  if (r >= 0 && (d->seconds > 0 || d->days == 0)) {
    int64_t h = d->seconds / 3600, m = d->seconds / 60 % 60, s = d->seconds % 60;
    r = buf_puts(b, "T");
    if (r >= 0 && h > 0)
      r = buf_printf(b, "%" PRId64 "H", h);
    if (r >= 0 && m > 0)
      r = buf_printf(b, "%" PRId64 "M", m);
    if (r >= 0 && (s > 0 || d->seconds == 0))
      r = buf_printf(b, "%" PRId64 "S", s);
  }
  return r;
}

char *ladder_serialize(const struct policy *p) {
  if (!p)
    return NULL;
  struct buf b = {0};
  int r = buf_puts(&b, LADDER_MAGIC);
  if (r >= 0)
    r = put_str(&b, "policy", p->name);
  if (r >= 0)
    r = buf_printf(&b, " catchup=%s",
                   (unsigned)p->catchup < ELEMENTSOF(catchup_names) ? catchup_names[p->catchup]
                                                                    : "latest");
  if (r >= 0)
    r = buf_printf(&b, " callback-pause=%" PRId64 " lapse-grace=%" PRId64, p->callback_pause,
                   p->lapse_grace);
  if (r >= 0)
    r = put_str(&b, "fallback-owner", p->fallback_owner);
  if (r >= 0)
    r = put_str(&b, "owner-window", p->owner_window);
  for (size_t i = 0; r >= 0 && i < p->n_tiers; i++) {
    const struct tier *t = &p->tiers[i];
    r = put_str(&b, "tier", t->name ? t->name : "");
    if (r >= 0)
      r = put_duration(&b, &t->offset);
    if (r >= 0)
      r = put_str(&b, "repeat", t->repeat);
    if (r >= 0)
      r = put_list(&b, "channels", t->channels, t->n_channels);
    if (r >= 0)
      r = put_list(&b, "fallback", t->fallback, t->n_fallback);
    if (r >= 0)
      r = buf_printf(&b, " audience=%s", t->audience == AUDIENCE_OWNER ? "owner" : "customer");
    if (r >= 0)
      r = put_str(&b, "template", t->template_name);
    if (r >= 0 && t->escalate_after > 0)
      r = buf_printf(&b, " escalate-after=%u", t->escalate_after);
    if (r >= 0)
      r = put_str(&b, "escalate-to", t->escalate_to);
  }
  if (r < 0) {
    buf_free(&b);
    return NULL;
  }
  return buf_steal(&b);
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

/* Unescapes the n bytes at s into a new string. -EINVAL on a bad %XX, a
 * %00 or a raw byte that should have been escaped. */
static int unescape(const char *s, size_t n, char **ret) {
  char *o = malloc(n + 1), *q = o;
  if (!o)
    return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '%') {
      int hi = i + 2 < n ? hexval(s[i + 1]) : -1, lo = i + 2 < n ? hexval(s[i + 2]) : -1;
      if (hi < 0 || lo < 0 || (hi | lo) == 0) {
        free(o);
        return -EINVAL;
      }
      *q++ = (char)(hi << 4 | lo);
      i += 2;
      continue;
    }
    if (needs_escape((unsigned char)s[i])) {
      free(o);
      return -EINVAL;
    }
    *q++ = s[i];
  }
  *q = 0;
  *ret = o;
  return 0;
}

static int parse_list(const char *v, char ***ret, size_t *ret_n) {
  size_t n = 1;
  for (const char *p = v; *p; p++)
    n += *p == ',';
  char **l = calloc(n, sizeof(char *));
  if (!l)
    return -ENOMEM;
  const char *p = v;
  for (size_t i = 0; i < n; i++) {
    const char *e = strchrnul(p, ',');
    int r = e == p ? -EINVAL : unescape(p, (size_t)(e - p), &l[i]);
    if (r < 0) {
      strv_free(l, n);
      return r;
    }
    p = *e ? e + 1 : e;
  }
  *ret = l;
  *ret_n = n;
  return 0;
}

static int parse_nonneg(const char *v, int64_t *ret) {
  int64_t x;
  if (!*v || *v == '-' || *v == '+' || parse_int64(v, &x) < 0 || x < 0)
    return -EINVAL;
  *ret = x;
  return 0;
}

static int lookup(const char *const *names, size_t n, const char *v) {
  for (size_t i = 0; i < n; i++)
    if (names[i] && streq(names[i], v))
      return (int)i;
  return -EINVAL;
}

/* Bits for "this key was already seen" in the policy part and per tier. */
enum {
  SEEN_POLICY = 1 << 0,
  SEEN_CATCHUP = 1 << 1,
  SEEN_CALLBACK = 1 << 2,
  SEEN_LAPSE = 1 << 3,
  SEEN_FOWNER = 1 << 4,
  SEEN_OWINDOW = 1 << 5,
  SEEN_OFFSET = 1 << 6,
  SEEN_REPEAT = 1 << 7,
  SEEN_CHANNELS = 1 << 8,
  SEEN_FALLBACK = 1 << 9,
  SEEN_AUDIENCE = 1 << 10,
  SEEN_TEMPLATE = 1 << 11,
  SEEN_ESC_AFTER = 1 << 12,
  SEEN_ESC_TO = 1 << 13,
};

static int parse_policy_key(struct policy *p, const char *key, const char *raw, unsigned *seen) {
  int64_t x;
  int r;
  if (streq(key, "catchup")) {
    if ((*seen & SEEN_CATCHUP) || (r = lookup(catchup_names, ELEMENTSOF(catchup_names), raw)) < 0)
      return -EINVAL;
    p->catchup = (enum catchup)r;
    *seen |= SEEN_CATCHUP;
    return 0;
  }
  if (streq(key, "callback-pause") || streq(key, "lapse-grace")) {
    unsigned bit = key[0] == 'c' ? SEEN_CALLBACK : SEEN_LAPSE;
    if ((*seen & bit) || parse_nonneg(raw, &x) < 0)
      return -EINVAL;
    *(bit == SEEN_CALLBACK ? &p->callback_pause : &p->lapse_grace) = x;
    *seen |= bit;
    return 0;
  }
  char **dst;
  unsigned bit;
  if (streq(key, "policy"))
    dst = &p->name, bit = SEEN_POLICY;
  else if (streq(key, "fallback-owner"))
    dst = &p->fallback_owner, bit = SEEN_FOWNER;
  else if (streq(key, "owner-window"))
    dst = &p->owner_window, bit = SEEN_OWINDOW;
  else
    return -EINVAL;
  if (*seen & bit)
    return -EINVAL;
  *seen |= bit;
  return unescape(raw, strlen(raw), dst);
}

static int parse_tier_key(struct tier *t, const char *key, const char *raw, unsigned *seen) {
  int r;
  if (streq(key, "offset")) {
    if (*seen & SEEN_OFFSET)
      return -EINVAL;
    *seen |= SEEN_OFFSET;
    return cal_duration_parse(raw, &t->offset) < 0 ? -EINVAL : 0;
  }
  if (streq(key, "repeat")) {
    if (*seen & SEEN_REPEAT)
      return -EINVAL;
    *seen |= SEEN_REPEAT;
    r = unescape(raw, strlen(raw), &t->repeat);
    if (r < 0)
      return r;
    char err[256];
    r = cal_rrule_parse(t->repeat, &t->rrule, err, sizeof err);
    return r < 0 ? (r == -ENOMEM ? r : -EINVAL) : 0;
  }
  if (streq(key, "channels") || streq(key, "fallback")) {
    bool ch = key[0] == 'c';
    unsigned bit = ch ? SEEN_CHANNELS : SEEN_FALLBACK;
    if (*seen & bit)
      return -EINVAL;
    *seen |= bit;
    return ch ? parse_list(raw, &t->channels, &t->n_channels)
              : parse_list(raw, &t->fallback, &t->n_fallback);
  }
  if (streq(key, "audience")) {
    if ((*seen & SEEN_AUDIENCE) ||
        (r = lookup(audience_names, ELEMENTSOF(audience_names), raw)) < 0)
      return -EINVAL;
    *seen |= SEEN_AUDIENCE;
    t->audience = (enum audience)r;
    return 0;
  }
  if (streq(key, "escalate-after")) {
    int64_t x;
    if ((*seen & SEEN_ESC_AFTER) || parse_nonneg(raw, &x) < 0 || x > UINT32_MAX || x == 0)
      return -EINVAL;
    *seen |= SEEN_ESC_AFTER;
    t->escalate_after = (unsigned)x;
    return 0;
  }
  char **dst;
  unsigned bit;
  if (streq(key, "template"))
    dst = &t->template_name, bit = SEEN_TEMPLATE;
  else if (streq(key, "escalate-to"))
    dst = &t->escalate_to, bit = SEEN_ESC_TO;
  else
    return -EINVAL;
  if (*seen & bit)
    return -EINVAL;
  *seen |= bit;
  return unescape(raw, strlen(raw), dst);
}

int ladder_parse(const char *s, struct policy **ret) {
  if (!s || !ret)
    return -EINVAL;
  size_t ml = strlen(LADDER_MAGIC);
  if (strncmp(s, LADDER_MAGIC, ml) != 0 || (s[ml] != ' ' && s[ml] != 0))
    return -EINVAL;
  _cleanup_(policy_freep) struct policy *p = calloc(1, sizeof *p);
  _cleanup_free_ char *copy = strdup(s + ml);
  if (!p || !copy)
    return -ENOMEM;
  unsigned seen_policy = 0, seen_tier = 0;
  size_t cap = 0;
  /* After the magic: nothing, or tokens each preceded by exactly one space
   * (so an empty token, from a double or trailing space, is an error). */
  for (char *tok = copy; *tok;) {
    if (*tok != ' ')
      return -EINVAL;
    tok++;
    char *end = strchrnul(tok, ' ');
    char *next = end;
    char *eq = memchr(tok, '=', (size_t)(end - tok));
    if (!eq || eq == tok)
      return -EINVAL;
    bool last = !*end;
    *end = 0;
    *eq = 0;
    const char *key = tok, *raw = eq + 1;
    int r;
    if (streq(key, "tier")) {
      if (p->n_tiers > 0 && !(seen_tier & SEEN_OFFSET))
        return -EINVAL;
      if (p->n_tiers == cap) {
        size_t nc = cap ? cap * 2 : 8;
        struct tier *t = realloc(p->tiers, nc * sizeof(struct tier));
        if (!t)
          return -ENOMEM;
        p->tiers = t;
        cap = nc;
      }
      struct tier *t = &p->tiers[p->n_tiers++];
      *t = (struct tier){0};
      seen_tier = 0;
      r = unescape(raw, strlen(raw), &t->name);
    } else if (p->n_tiers == 0)
      r = parse_policy_key(p, key, raw, &seen_policy);
    else
      r = parse_tier_key(&p->tiers[p->n_tiers - 1], key, raw, &seen_tier);
    if (r < 0)
      return r;
    if (last)
      break;
    *next = ' ';
    tok = next;
  }
  if (!(seen_policy & SEEN_CATCHUP))
    return -EINVAL;
  if (p->n_tiers > 0 && !(seen_tier & SEEN_OFFSET))
    return -EINVAL;
  *ret = TAKE_PTR(p);
  return 0;
}

static bool strv_equal(char *const *a, size_t na, char *const *b, size_t nb) {
  if (na != nb)
    return false;
  for (size_t i = 0; i < na; i++)
    if (!streq_ptr(a[i], b[i]))
      return false;
  return true;
}

bool ladder_equal(const struct policy *a, const struct policy *b) {
  if (!a || !b)
    return a == b;
  if (!streq_ptr(a->name, b->name) || a->catchup != b->catchup ||
      a->callback_pause != b->callback_pause || a->lapse_grace != b->lapse_grace ||
      !streq_ptr(a->fallback_owner, b->fallback_owner) ||
      !streq_ptr(a->owner_window, b->owner_window) || a->n_tiers != b->n_tiers)
    return false;
  for (size_t i = 0; i < a->n_tiers; i++) {
    const struct tier *x = &a->tiers[i], *y = &b->tiers[i];
    if (!streq_ptr(x->name, y->name) || x->offset.negative != y->offset.negative ||
        x->offset.days != y->offset.days || x->offset.seconds != y->offset.seconds ||
        !streq_ptr(x->repeat, y->repeat) ||
        !strv_equal(x->channels, x->n_channels, y->channels, y->n_channels) ||
        !strv_equal(x->fallback, x->n_fallback, y->fallback, y->n_fallback) ||
        x->audience != y->audience || !streq_ptr(x->template_name, y->template_name) ||
        x->escalate_after != y->escalate_after || !streq_ptr(x->escalate_to, y->escalate_to))
      return false;
  }
  return true;
}
