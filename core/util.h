/* util: small helpers every module shares.
 *
 * Scope-based cleanup (_cleanup_free_, TAKE_PTR), string helpers, and a growable
 * byte buffer (struct buf). No global state, never blocks, never logs. */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_fclose_ _cleanup_(fclosep)
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Hands ownership out of a _cleanup_ variable: returns the pointer, leaves NULL. */
#define TAKE_PTR(p)                                                                                \
  ({                                                                                               \
    __typeof__(p) _ptr_ = (p);                                                                     \
    (p) = NULL;                                                                                    \
    _ptr_;                                                                                         \
  })

/* Declares fooP(T **p) calling foo(*p) when *p is not NULL, for _cleanup_(fooP). */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                    \
  static inline void func##p(type *p) {                                                            \
    if (*p)                                                                                        \
      func(*p);                                                                                    \
  }

/* "Never" as an instant: larger than any real due time. */
#define TIME_NEVER INT64_MAX

static inline void freep(void *p) {
  free(*(void **)p);
}
static inline void fclosep(FILE **f) {
  if (*f)
    fclose(*f);
}

static inline bool streq(const char *a, const char *b) {
  return strcmp(a, b) == 0;
}
static inline bool streq_ptr(const char *a, const char *b) {
  if (!a || !b)
    return a == b;
  return strcmp(a, b) == 0;
}
static inline bool isempty(const char *s) {
  return !s || !*s;
}

/* Returns a heap copy of s (NULL stays NULL). Caller frees. Aborts on OOM is not
 * done: returns NULL, check it when s was not NULL. */
char *strdup_or_null(const char *s);

/* Replaces *dst with a copy of src (or NULL), freeing the old value.
 * Returns 0 or -ENOMEM (then *dst is untouched). */
int free_and_strdup(char **dst, const char *src);

/* Returns a newly allocated printf-formatted string or NULL on OOM. Caller frees. */
char *strprintf(const char *fmt, ...) _printf_(1, 2);

/* Formats into buf (size > 0) like snprintf, for texts where a cut is
 * acceptable (error and log details): a text too long is cut at size - 1
 * bytes, back to the last whole UTF-8 character. Returns true when cut. */
bool format_cut(char *buf, size_t size, const char *fmt, ...) _printf_(3, 4);

/* Constant-time comparison of two byte strings; false when lengths differ
 * (the length itself is not secret). */
bool memeq_consttime(const void *a, size_t alen, const void *b, size_t blen);

/* Growable byte buffer, always NUL-terminated when data != NULL. */
struct buf {
  char *data; /* owned; NULL until the first append */
  size_t len; /* bytes used, excluding the terminating NUL */
  size_t cap; /* bytes allocated */
};

int buf_append(struct buf *b, const void *data, size_t len);
int buf_puts(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) _printf_(2, 3);
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) _printf_(2, 0);
/* Hands the contents out (caller frees) and resets the buffer. Never NULL
 * unless OOM: an empty buffer yields "". */
char *buf_steal(struct buf *b);
void buf_reset(struct buf *b);
void buf_free(struct buf *b);

/* Reads a whole file into a NUL-terminated heap buffer. Caller frees *ret.
 * Returns 0 or -errno. max_size guards against reading huge files (-EFBIG). */
int read_full_file(const char *path, size_t max_size, char **ret, size_t *ret_len);

/* Reads a secret from a file, or from $CREDENTIALS_DIRECTORY/<name> when path
 * has no '/' (systemd LoadCredential=). Strips one trailing newline. Caller frees. */
int read_secret(const char *path_or_credential, char **ret);

/* Parses a decimal int64 with nothing trailing. Returns 0 or -EINVAL/-ERANGE. */
int parse_int64(const char *s, int64_t *ret);

/* Parses yes/no/true/false/on/off/1/0. Returns 0/1 or -EINVAL. */
int parse_boolean(const char *s);

/* Formats t (UTC seconds) as RFC 3339 "2026-11-22T20:11:27Z" into out (>= 21 bytes);
 * "invalid-time" when t is outside the years 0..9999. */
char *format_rfc3339(int64_t t, char out[static 21]);

/* An http(s) URL reduced for logs: "https://user:pw@hooks.example.com:8443/T/B/XYZ?k=v"
 * becomes "https://hooks.example.com:8443/..." (scheme and host only: webhook
 * URLs often carry a capability in their path or query, and userinfo is a
 * password). Anything that is not an http(s) URL (an email address, a phone
 * number) is copied unchanged. Writes at most n bytes (NUL included) to out
 * and returns out; s NULL gives "". */
char *url_redact(const char *s, char *out, size_t n);

/* Copies s into out (n bytes, NUL included) for one line of a log or a
 * terminal: control characters (C0, DEL, C1) and bytes that are not UTF-8
 * are written as "\xNN", so a value cannot start a forged line, move the
 * cursor or turn a journal MESSAGE into a binary blob. Never cuts a
 * character or an escape in half; output that does not fit is dropped.
 * Returns the length written. s NULL gives "". */
size_t str_escape_controls(const char *s, char *out, size_t n);
