/* fuzz-ladder: the ladder snapshot parser (core/ladder.c, ladder_parse), which
 * reads the "ladder/1 ..." text a contract stores when it enters its ladder;
 * a damaged or hand-edited store row must be refused, never misread.
 *
 * The input is one snapshot text (up to its first NUL). Checked beyond the
 * sanitizers: it parses (0) or is refused with -EINVAL (or -ENOMEM); a parsed
 * policy serialises to a text that parses back to an equal policy and
 * serialises to the same text again (one text per policy). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/ladder.h"
#include "fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fuzz_strndup(data, size);
  struct policy *p = NULL;
  int r = ladder_parse(text, &p);
  FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
  if (r == 0) {
    char *s = ladder_serialize(p);
    FUZZ_CHECK(s);
    struct policy *q = NULL;
    FUZZ_CHECK(ladder_parse(s, &q) == 0);
    FUZZ_CHECK(ladder_equal(p, q));
    char *again = ladder_serialize(q);
    FUZZ_CHECK(again && strcmp(s, again) == 0);
    free(again);
    policy_free(q);
    free(s);
  }
  policy_free(p);
  free(text);
  return 0;
}
