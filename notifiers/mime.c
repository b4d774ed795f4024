/* mime: header fields, encoded-words, Date and Message-ID (see mime.h).
 *
 * A header is built as a sequence of tokens appended by struct fold, which
 * puts one space before each token and starts a new line (CRLF SP) instead
 * when the token would push the line past MIME_LINE_MAX. Folding therefore
 * only ever happens at a space the value already had, or between two
 * encoded-words, where decoders drop the whitespace (RFC 2047 §6.2). */
#include "notifiers/mime.h"

#include "core/validate.h"

#include <time.h>

#include "core/util.h"

/* ---- UTF-8 ---------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[0..len), or 0 when invalid
 * (overlong, surrogate, above U+10FFFF, truncated). */
static size_t utf8_len(const unsigned char *s, size_t len) {
  size_t n;
  uint32_t cp;
  if (s[0] < 0x80)
    return 1;
  else if ((s[0] & 0xE0) == 0xC0)
    n = 2, cp = s[0] & 0x1F;
  else if ((s[0] & 0xF0) == 0xE0)
    n = 3, cp = s[0] & 0x0F;
  else if ((s[0] & 0xF8) == 0xF0)
    n = 4, cp = s[0] & 0x07;
  else
    return 0;
  if (n > len)
    return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    cp = cp << 6 | (s[i] & 0x3F);
  }
  static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return n;
}

/* Valid UTF-8 without C0 controls (TAB allowed when tab_ok) or DEL. */
static bool text_valid(const char *s, bool tab_ok) {
  const unsigned char *p = (const unsigned char *)s;
  size_t len = strlen(s);
  for (size_t i = 0; i < len;) {
    if ((p[i] < 0x20 && !(tab_ok && p[i] == '\t')) || p[i] == 0x7F)
      return false;
    size_t n = utf8_len(p + i, len - i);
    if (n == 0)
      return false;
    i += n;
  }
  return true;
}

static bool is_ascii(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s >= 0x80)
      return false;
  return true;
}

/* ---- folding -------------------------------------------------------------- */

struct fold {
  struct buf b;
  size_t col; /* characters on the current line so far */
  bool first; /* no token written after "Name:" yet: never fold there */
};

static int fold_start(struct fold *f, const char *name) {
  *f = (struct fold){.first = true};
  int r = buf_printf(&f->b, "%s:", name);
  f->col = f->b.len;
  return r;
}

static int fold_newline(struct fold *f) {
  f->col = 0;
  return buf_puts(&f->b, "\r\n");
}

/* Appends " " + tok, folding first when it would not fit (never before the
 * first token, never before an empty one: a line may not be all blanks). */
static int fold_token(struct fold *f, const char *tok, size_t len) {
  int r;
  if (!f->first && len > 0 && f->col + 1 + len > MIME_LINE_MAX && (r = fold_newline(f)) < 0)
    return r;
  if ((r = buf_append(&f->b, " ", 1)) < 0 || (r = buf_append(&f->b, tok, len)) < 0)
    return r;
  f->col += 1 + len;
  f->first = false;
  return 0;
}

static size_t word_len(size_t bytes) {
  return 12 + (bytes + 2) / 3 * 4;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Appends s[0..len) as encoded-words "=?UTF-8?B?...?=", each as long as fits
 * on the current line (at most MIME_WORD_MAX) and cut between characters. */
static int fold_encoded(struct fold *f, const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s;
  while (len > 0) {
    size_t room = f->col + 1 < MIME_LINE_MAX ? MIME_LINE_MAX - f->col - 1 : 0;
    size_t max = MIN(room, (size_t)MIME_WORD_MAX), take = 0;
    for (size_t n;
         take < len && (n = utf8_len(p + take, len - take)) > 0 && word_len(take + n) <= max;)
      take += n;
    if (take == 0) { /* not even one character fits: continue on a new line */
      int r = fold_newline(f);
      if (r < 0)
        return r;
      continue;
    }
    char word[MIME_WORD_MAX + 1] = "=?UTF-8?B?", *o = word + 10;
    for (size_t i = 0; i < take; i += 3) {
      uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < take ? (uint32_t)p[i + 1] << 8 : 0) |
                   (i + 2 < take ? p[i + 2] : 0);
      *o++ = b64[v >> 18 & 63];
      *o++ = b64[v >> 12 & 63];
      *o++ = i + 1 < take ? b64[v >> 6 & 63] : '=';
      *o++ = i + 2 < take ? b64[v & 63] : '=';
    }
    *o++ = '?';
    *o++ = '=';
    int r = fold_token(f, word, (size_t)(o - word));
    if (r < 0)
      return r;
    p += take;
    len -= take;
  }
  return 0;
}

/* Appends ASCII text word by word (split at single spaces, so runs of
 * spaces and tabs survive unfolding). */
static int fold_words(struct fold *f, const char *s) {
  for (;;) {
    size_t n = strcspn(s, " ");
    int r = fold_token(f, s, n);
    if (r < 0 || !s[n])
      return r;
    s += n + 1;
  }
}

/* Whether ASCII text must still be encoded: it looks like it holds an
 * encoded-word, or a word cannot be folded under the line limit. */
static bool ascii_needs_encoding(const char *s) {
  if (strstr(s, "=?"))
    return true;
  for (;;) {
    size_t n = strcspn(s, " ");
    if (n > MIME_LINE_MAX - 1)
      return true;
    if (!s[n])
      return false;
    s += n + 1;
  }
}

static bool header_name_valid(const char *name) {
  if (isempty(name) || strlen(name) > 64)
    return false;
  for (const char *p = name; *p; p++)
    if (*p <= ' ' || *p >= 0x7F || *p == ':')
      return false;
  return true;
}

int mime_header(const char *name, const char *value, char **ret) {
  if (!header_name_valid(name) || !value || !ret || !text_valid(value, true))
    return -EINVAL;
  struct fold f;
  int r = fold_start(&f, name);
  if (r >= 0) {
    if (is_ascii(value) && !ascii_needs_encoding(value))
      r = fold_words(&f, value);
    else
      r = fold_encoded(&f, value, strlen(value));
  }
  if (r < 0) {
    buf_free(&f.b);
    return r;
  }
  *ret = buf_steal(&f.b);
  return *ret ? 0 : -ENOMEM;
}

/* ---- addresses ------------------------------------------------------------- */

static int fold_phrase(struct fold *f, const char *name) {
  if (!is_ascii(name) || ascii_needs_encoding(name))
    return fold_encoded(f, name, strlen(name));
  if (!strpbrk(name, "()<>[]:;@\\,.\"") && name[0] != ' ' && !strstr(name, "  ") &&
      name[strlen(name) - 1] != ' ' && !strchr(name, '\t'))
    return fold_words(f, name);
  struct buf q = {0};
  int r = buf_puts(&q, "\"");
  for (const char *p = name; r >= 0 && *p; p++)
    r = (*p == '"' || *p == '\\') ? buf_printf(&q, "\\%c", *p) : buf_append(&q, p, 1);
  if (r >= 0)
    r = buf_puts(&q, "\"");
  if (r >= 0)
    r = fold_token(f, q.data, q.len);
  buf_free(&q);
  return r;
}

int mime_header_addresses(const char *name, const struct mime_address *addrs, size_t n,
                          char **ret) {
  if (!header_name_valid(name) || !addrs || n == 0 || !ret)
    return -EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!mime_valid_email(addrs[i].email) || (addrs[i].name && !text_valid(addrs[i].name, false)))
      return -EINVAL;

  struct fold f;
  int r = fold_start(&f, name);
  for (size_t i = 0; r >= 0 && i < n; i++) {
    const char *sep = i + 1 < n ? "," : "";
    if (isempty(addrs[i].name)) {
      _cleanup_free_ char *t = strprintf("%s%s", addrs[i].email, sep);
      r = t ? fold_token(&f, t, strlen(t)) : -ENOMEM;
    } else {
      r = fold_phrase(&f, addrs[i].name);
      if (r >= 0) {
        _cleanup_free_ char *t = strprintf("<%s>%s", addrs[i].email, sep);
        r = t ? fold_token(&f, t, strlen(t)) : -ENOMEM;
      }
    }
  }
  if (r < 0) {
    buf_free(&f.b);
    return r;
  }
  *ret = buf_steal(&f.b);
  return *ret ? 0 : -ENOMEM;
}

/* ---- Date, Message-ID ------------------------------------------------------ */

int mime_date(int64_t t, char *out) {
  static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t tt = (time_t)t;
  struct tm tm;
  if (!out || (int64_t)tt != t || !gmtime_r(&tt, &tm) || tm.tm_year < 0 || tm.tm_year > 8099)
    return -ERANGE;
  /* The ranges are checked above; the casts tell the compiler so. */
  snprintf(out, MIME_DATE_MAX, "%s, %02u %s %04u %02u:%02u:%02u +0000", days[tm.tm_wday % 7],
           (unsigned)tm.tm_mday % 32u, months[tm.tm_mon % 12],
           (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)tm.tm_hour % 24u,
           (unsigned)tm.tm_min % 60u, (unsigned)tm.tm_sec % 61u);
  return 0;
}

static bool host_valid(const char *h) {
  size_t len = h ? strlen(h) : 0, label = 0;
  if (len == 0 || len > 253)
    return false;
  for (const char *p = h;; p++) {
    if (*p == '.' || *p == 0) {
      if (label == 0 || label > 63 || p[-1] == '-')
        return false;
      if (*p == 0)
        return true;
      label = 0;
    } else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
               (*p == '-' && label > 0))
      label++;
    else
      return false;
  }
}

int mime_message_id(const char *key, const char *host, char **ret) {
  size_t len = key ? strlen(key) : 0;
  if (len == 0 || len > 200 || !host_valid(host) || !ret)
    return -EINVAL;
  struct buf b = {0};
  int r = buf_puts(&b, "<rk-");
  for (const unsigned char *p = (const unsigned char *)key; r >= 0 && *p; p++) {
    bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                 *p == '-' || *p == '_';
    r = plain ? buf_append(&b, p, 1) : buf_printf(&b, "=%02X", *p);
  }
  if (r >= 0)
    r = buf_printf(&b, "@%s>", host);
  if (r < 0) {
    buf_free(&b);
    return r;
  }
  *ret = buf_steal(&b);
  return *ret ? 0 : -ENOMEM;
}

/* ---- email syntax ------------------------------------------------------------ */

bool mime_valid_email(const char *s) {
  /* One rule for the whole project: the CSV import's. */
  return validate_email(s);
}
