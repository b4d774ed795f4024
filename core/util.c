/* util: small helpers every module shares (see util.h). */
#include "core/util.h"

#include <fcntl.h>
#include <limits.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

char *strdup_or_null(const char *s) {
  return s ? strdup(s) : NULL;
}

int free_and_strdup(char **dst, const char *src) {
  char *c = NULL;
  if (src && !(c = strdup(src)))
    return -ENOMEM;
  free(*dst);
  *dst = c;
  return 0;
}

char *strprintf(const char *fmt, ...) {
  va_list ap;
  char *s = NULL;
  va_start(ap, fmt);
  int r = vasprintf(&s, fmt, ap);
  va_end(ap);
  return r < 0 ? NULL : s;
}

bool format_cut(char *buf, size_t size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, size, fmt, ap);
  va_end(ap);
  if (n < 0) {
    buf[0] = 0;
    return true;
  }
  if ((size_t)n < size)
    return false;
  size_t end = size - 1, lead = end;
  while (lead > 0 && ((unsigned char)buf[lead - 1] & 0xC0) == 0x80)
    lead--;
  if (lead > 0) { /* buf[lead - 1] starts the last character kept: whole? */
    unsigned char c = (unsigned char)buf[lead - 1];
    size_t want = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (lead - 1 + want > end)
      buf[lead - 1] = 0;
  }
  return true;
}

bool memeq_consttime(const void *a, size_t alen, const void *b, size_t blen) {
  if (alen != blen)
    return false;
  const volatile unsigned char *x = a, *y = b;
  unsigned char acc = 0;
  for (size_t i = 0; i < alen; i++)
    acc |= x[i] ^ y[i];
  return acc == 0;
}

static int buf_reserve(struct buf *b, size_t extra) {
  /* the sum below must not wrap: a wrapped size would pass the check and the
   * caller would write past the allocation */
  if (b->len >= SIZE_MAX / 2 || extra >= SIZE_MAX / 2 - b->len)
    return -ENOMEM;
  if (b->len + extra + 1 <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + extra + 1)
    cap *= 2;
  char *d = realloc(b->data, cap);
  if (!d)
    return -ENOMEM;
  b->data = d;
  b->cap = cap;
  return 0;
}

int buf_append(struct buf *b, const void *data, size_t len) {
  int r = buf_reserve(b, len);
  if (r < 0)
    return r;
  if (len)
    memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = 0;
  return 0;
}

int buf_puts(struct buf *b, const char *s) {
  return buf_append(b, s, strlen(s));
}

int buf_vprintf(struct buf *b, const char *fmt, va_list ap) {
  va_list aq;
  va_copy(aq, ap);
  int n = vsnprintf(NULL, 0, fmt, aq);
  va_end(aq);
  if (n < 0)
    return -EINVAL;
  int r = buf_reserve(b, (size_t)n);
  if (r < 0)
    return r;
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
  return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int r = buf_vprintf(b, fmt, ap);
  va_end(ap);
  return r;
}

char *buf_steal(struct buf *b) {
  char *d = b->data ? b->data : strdup("");
  *b = (struct buf){0};
  return d;
}

void buf_reset(struct buf *b) {
  b->len = 0;
  if (b->data)
    b->data[0] = 0;
}

void buf_free(struct buf *b) {
  free(b->data);
  *b = (struct buf){0};
}

int read_full_file(const char *path, size_t max_size, char **ret, size_t *ret_len) {
  _cleanup_fclose_ FILE *f = fopen(path, "re");
  if (!f)
    return -errno;
  struct buf b = {0};
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (b.len + n > max_size) {
      buf_free(&b);
      return -EFBIG;
    }
    int r = buf_append(&b, chunk, n);
    if (r < 0) {
      buf_free(&b);
      return r;
    }
  }
  if (ferror(f)) {
    buf_free(&b);
    return -EIO;
  }
  if (ret_len)
    *ret_len = b.len;
  *ret = buf_steal(&b);
  return *ret ? 0 : -ENOMEM;
}

int read_secret(const char *path_or_credential, char **ret) {
  if (isempty(path_or_credential))
    return -EINVAL;
  _cleanup_free_ char *path = NULL;
  if (!strchr(path_or_credential, '/')) {
    const char *dir = getenv("CREDENTIALS_DIRECTORY");
    if (!dir)
      return -ENOENT;
    path = strprintf("%s/%s", dir, path_or_credential);
  } else
    path = strdup(path_or_credential);
  if (!path)
    return -ENOMEM;
  char *s = NULL;
  size_t len = 0;
  int r = read_full_file(path, 64 * 1024, &s, &len);
  if (r < 0)
    return r;
  if (len > 0 && s[len - 1] == '\n')
    s[--len] = 0;
  if (len > 0 && s[len - 1] == '\r')
    s[--len] = 0;
  *ret = s;
  return 0;
}

int parse_int64(const char *s, int64_t *ret) {
  if (isempty(s))
    return -EINVAL;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno == ERANGE)
    return -ERANGE;
  if (*end || end == s)
    return -EINVAL;
  *ret = v;
  return 0;
}

int parse_boolean(const char *s) {
  static const char *yes[] = {"1", "yes", "y", "true", "t", "on"};
  static const char *no[] = {"0", "no", "n", "false", "f", "off"};
  if (!s)
    return -EINVAL;
  for (size_t i = 0; i < ELEMENTSOF(yes); i++)
    if (strcasecmp(s, yes[i]) == 0)
      return 1;
  for (size_t i = 0; i < ELEMENTSOF(no); i++)
    if (strcasecmp(s, no[i]) == 0)
      return 0;
  return -EINVAL;
}

char *format_rfc3339(int64_t t, char out[static 21]) {
  time_t tt = (time_t)t;
  struct tm tm;
  if (!gmtime_r(&tt, &tm)) {
    strcpy(out, "invalid-time");
    return out;
  }
  /* years past 9999 do not fit in 20 characters: strftime() then returns 0
   * and leaves out undefined (possibly unterminated) */
  if (strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    strcpy(out, "invalid-time");
  return out;
}

char *url_redact(const char *s, char *out, size_t n) {
  if (!out || n == 0)
    return out;
  out[0] = 0;
  if (!s)
    return out;
  size_t scheme = strncasecmp(s, "https://", 8) == 0  ? 8
                  : strncasecmp(s, "http://", 7) == 0 ? 7
                                                      : 0;
  if (scheme == 0) {
    snprintf(out, n, "%s", s);
    return out;
  }
  const char *host = s + scheme;
  size_t auth = strcspn(host, "/?#"); /* [userinfo@]host[:port] */
  const char *at = memrchr(host, '@', auth);
  if (at) {
    auth -= (size_t)(at + 1 - host);
    host = at + 1;
  }
  bool more = host[auth] != 0 && !(host[auth] == '/' && host[auth + 1] == 0);
  snprintf(out, n, "%.*s%.*s%s", (int)scheme, s, (int)MIN(auth, (size_t)INT_MAX), host,
           more ? "/..." : "");
  return out;
}

/* Length of the valid UTF-8 sequence at p (at most len bytes), 0 when invalid
 * (overlong, surrogate, above U+10FFFF, truncated). */
static size_t utf8_seq(const unsigned char *p, size_t len) {
  size_t n;
  uint32_t cp;
  if (p[0] < 0x80)
    return 1;
  if (p[0] >= 0xc2 && p[0] <= 0xdf)
    n = 2, cp = p[0] & 0x1f;
  else if (p[0] >= 0xe0 && p[0] <= 0xef)
    n = 3, cp = p[0] & 0x0f;
  else if (p[0] >= 0xf0 && p[0] <= 0xf4)
    n = 4, cp = p[0] & 0x07;
  else
    return 0;
  if (n > len)
    return 0;
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xc0) != 0x80)
      return 0;
    cp = cp << 6 | (p[i] & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

size_t str_escape_controls(const char *s, char *out, size_t n) {
  if (!out || n == 0)
    return 0;
  size_t k = 0;
  const unsigned char *p = (const unsigned char *)(s ? s : "");
  size_t len = strlen((const char *)p);
  for (size_t i = 0; i < len;) {
    size_t sl = utf8_seq(p + i, len - i);
    /* C0, DEL, C1 (U+0080..U+009F) and bytes that are not UTF-8 */
    bool bad = sl == 0 || (sl == 1 && (p[i] < 0x20 || p[i] == 0x7f)) ||
               (sl == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0);
    if (bad) {
      size_t m = sl ? sl : 1;
      if (k + 4 * m + 1 > n)
        break;
      for (size_t j = 0; j < m; j++)
        k += (size_t)snprintf(out + k, n - k, "\\x%02x", p[i + j]);
      i += m;
    } else {
      if (k + sl + 1 > n)
        break;
      memcpy(out + k, p + i, sl);
      k += sl;
      i += sl;
    }
  }
  out[k] = 0;
  return k;
}
