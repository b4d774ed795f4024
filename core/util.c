/* util: small helpers every module shares (see util.h). */
#include "core/util.h"

#include <fcntl.h>
#include <limits.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

char *strdup_or_null(const char *s) { return s ? strdup(s) : NULL; }

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

int buf_puts(struct buf *b, const char *s) { return buf_append(b, s, strlen(s)); }

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
  strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return out;
}
