/* fuzz.h: helpers shared by the libFuzzer targets in fuzz/.
 *
 * A target defines LLVMFuzzerTestOneInput(data, size); libFuzzer calls it with
 * each input and reports a crash, a sanitizer finding, a leak or a failed
 * FUZZ_CHECK() (which aborts) as a bug, with the input saved as an artifact.
 * Helpers here: a NUL-terminated copy of the input, and splitting it into
 * fields at a separator byte. Nothing here is used outside fuzz/. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An invariant of the code under test: prints where it failed and aborts, so
 * libFuzzer keeps the input that broke it. */
#define FUZZ_CHECK(cond)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond);                \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

/* A heap copy of data[0..size) followed by a NUL (the input may hold NULs of
 * its own: C-string consumers then see its first part). Aborts on OOM, which
 * libFuzzer's -rss_limit_mb reports anyway. Caller frees. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s)
    abort();
  if (size)
    memcpy(s, data, size);
  s[size] = 0;
  return s;
}

/* Splits s in place at the first n - 1 occurrences of sep: fields[0..n) point
 * into s, missing fields are "". Returns the number of fields found. The last
 * field keeps any further separators. */
static inline size_t fuzz_split(char *s, char sep, char **fields, size_t n) {
  size_t found = 1;
  fields[0] = s;
  for (size_t i = 1; i < n; i++) {
    char *p = strchr(fields[i - 1], sep);
    if (p) {
      *p = 0;
      fields[i] = p + 1;
      found++;
    } else {
      fields[i] = fields[i - 1] + strlen(fields[i - 1]);
    }
  }
  return found;
}
