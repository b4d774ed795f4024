/* oom: allocation-failure injection for unit tests (STYLE.md convention 12).
 *
 * A test executable linked with tests/oom.c and the GNU linker option
 *   -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=reallocarray,
 *   --wrap=strdup,--wrap=strndup,--wrap=asprintf,--wrap=vasprintf
 * (see test-oom in tests/CMakeLists.txt) routes every allocation made by OUR
 * objects (the test and the module libraries it links) through this file.
 * Shared libraries (libical, sqlite3, jansson, libc itself: fopen, opendir)
 * keep calling their own malloc and are not counted; jansson can be routed
 * here with json_set_alloc_funcs(oom_malloc, free).
 *
 * Usage, for an operation op():
 *   for (unsigned long n = 0;; n++) {
 *     oom_fail_after(n);          the n-th allocation from now (0 = next) fails
 *     r = op();
 *     bool hit = oom_failed();
 *     oom_reset();
 *     if (!hit) break;            op never reached allocation n: done
 *     assert r == 0 || r == -ENOMEM (or another clean error), no leak
 *   }
 * oom_fail_from(n) makes allocation n AND every later one fail (finds cleanup
 * paths that allocate). oom_count_start() only counts (to assert that an
 * operation does not allocate at all).
 *
 * State is process-global (test code only: one test thread). An injected
 * failure sets errno = ENOMEM and returns NULL (or -1 for [v]asprintf, whose
 * output pointer is then left untouched). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Fails the n-th allocation from now (0 = the next one), once; later ones
 * succeed again. Resets the counters. */
void oom_fail_after(unsigned long n);
/* Fails the n-th allocation from now and every later one. Resets the counters. */
void oom_fail_from(unsigned long n);
/* Counts allocations without failing any. Resets the counters. */
void oom_count_start(void);
/* Disarms (allocations succeed and are not counted) and zeroes the counters. */
void oom_reset(void);
/* Stops counting (and failing) until oom_resume(), keeping the counters: lets
 * a test run its own set-up and checks between the calls it exercises. */
void oom_pause(void);
void oom_resume(void);
/* Allocations attempted since the last arm (failed ones included). */
unsigned long oom_count(void);
/* True when at least one failure was injected since the last arm. */
bool oom_failed(void);

/* Called at each injected failure (a breakpoint target for debugging). */
void oom_injected(void);

/* The wrapped allocator itself, for json_set_alloc_funcs(oom_malloc, free). */
void *oom_malloc(size_t n);
