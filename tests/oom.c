/* oom: allocation-failure injection for unit tests (see oom.h).
 *
 * Defines the __wrap_* functions the linker substitutes for malloc & co with
 * --wrap; each asks oom_hit() whether this allocation is the one to fail and
 * otherwise calls the real function (__real_*: libc's, or the sanitizer's
 * interceptor under ASan, so leak checking still sees every block).
 * Owns only the counters below (test code: global state is fine here). */
#include "oom.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum oom_mode {
  OOM_OFF,   /* allocations pass through, uncounted */
  OOM_COUNT, /* counted, never failed */
  OOM_ONCE,  /* allocation number `target` fails */
  OOM_FROM,  /* allocation number `target` and all later ones fail */
};

static enum oom_mode mode;   /* current mode */
static unsigned long target; /* 0-based index of the first allocation to fail */
static unsigned long count;  /* allocations attempted since the last arm */
static bool failed;          /* a failure was injected since the last arm */
static bool paused;          /* oom_pause(): allocations pass through uncounted */

static void arm(enum oom_mode m, unsigned long n) {
  mode = m;
  target = n;
  count = 0;
  failed = false;
  paused = false;
}

void oom_fail_after(unsigned long n) {
  arm(OOM_ONCE, n);
}
void oom_fail_from(unsigned long n) {
  arm(OOM_FROM, n);
}
void oom_count_start(void) {
  arm(OOM_COUNT, 0);
}
void oom_reset(void) {
  arm(OOM_OFF, 0);
}
void oom_pause(void) {
  paused = true;
}
void oom_resume(void) {
  paused = false;
}
unsigned long oom_count(void) {
  return count;
}
bool oom_failed(void) {
  return failed;
}

/* Called for every injected failure: a place for a debugger breakpoint
 * (gdb -ex 'break oom_injected'), see tests/README.md. */
__attribute__((noinline)) void oom_injected(void) {
  __asm__ volatile("");
}

/* Counts one allocation; true when it must fail. */
static bool oom_hit(void) {
  if (mode == OOM_OFF || paused)
    return false;
  unsigned long i = count++;
  if ((mode == OOM_ONCE && i == target) || (mode == OOM_FROM && i >= target)) {
    failed = true;
    oom_injected();
    errno = ENOMEM;
    return true;
  }
  return false;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__real_reallocarray(void *p, size_t n, size_t size);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
int __real_vasprintf(char **ret, const char *fmt, va_list ap);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_reallocarray(void *p, size_t n, size_t size);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
int __wrap_vasprintf(char **ret, const char *fmt, va_list ap);
int __wrap_asprintf(char **ret, const char *fmt, ...);

void *__wrap_malloc(size_t n) {
  return oom_hit() ? NULL : __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t size) {
  return oom_hit() ? NULL : __real_calloc(n, size);
}
void *__wrap_realloc(void *p, size_t n) {
  return oom_hit() ? NULL : __real_realloc(p, n);
}
void *__wrap_reallocarray(void *p, size_t n, size_t size) {
  return oom_hit() ? NULL : __real_reallocarray(p, n, size);
}
char *__wrap_strdup(const char *s) {
  return oom_hit() ? NULL : __real_strdup(s);
}
char *__wrap_strndup(const char *s, size_t n) {
  return oom_hit() ? NULL : __real_strndup(s, n);
}
int __wrap_vasprintf(char **ret, const char *fmt, va_list ap) {
  return oom_hit() ? -1 : __real_vasprintf(ret, fmt, ap);
}
int __wrap_asprintf(char **ret, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int r = __wrap_vasprintf(ret, fmt, ap);
  va_end(ap);
  return r;
}

void *oom_malloc(size_t n) {
  return __wrap_malloc(n);
}
