/* fuzz-config: the configuration parser (config/ini.c) and its validation
 * (config/config.c), as `renewd --check-config` runs them on renewd.conf.
 *
 * The input is the text of one config file (up to its first NUL: the file
 * loader refuses files with a NUL byte). No struct cal is given, so TimeZone=
 * and Holidays= are checked for syntax only and no file is ever read.
 * Checked beyond the sanitizers:
 *  - the result is a config (0) or -EINVAL with at least one error, each
 *    naming the file, a line inside it and a message;
 *  - every policy of a valid config survives the store's ladder snapshot:
 *    ladder_parse(ladder_serialize(p)) equals p and serialises to the same
 *    text;
 *  - printing the policies and the errors works (to /dev/null). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/ladder.h"
#include "fuzz/fuzz.h"

static unsigned count_lines(const char *s) {
  unsigned n = 1;
  for (; *s; s++)
    n += *s == '\n';
  return n;
}

static void check_snapshot(const struct policy *p) {
  char *text = ladder_serialize(p);
  FUZZ_CHECK(text);
  struct policy *q = NULL;
  FUZZ_CHECK(ladder_parse(text, &q) == 0);
  FUZZ_CHECK(ladder_equal(p, q));
  char *again = ladder_serialize(q);
  FUZZ_CHECK(again && strcmp(text, again) == 0);
  free(again);
  policy_free(q);
  free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fuzz_strndup(data, size);
  struct config *cfg = NULL;
  struct config_errors errs = {0};
  int r = config_load_string("fuzz.conf", text, NULL, &cfg, &errs);
  FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
  FILE *devnull = fopen("/dev/null", "we");
  FUZZ_CHECK(devnull);
  if (r == 0) {
    FUZZ_CHECK(cfg);
    for (size_t i = 0; i < cfg->n_policies; i++)
      check_snapshot(cfg->policies[i]);
    config_print_policies(cfg, devnull);
  } else {
    FUZZ_CHECK(!cfg);
  }
  if (r == -EINVAL) {
    FUZZ_CHECK(errs.n >= 1);
    unsigned lines = count_lines(text);
    for (size_t i = 0; i < errs.n; i++) {
      FUZZ_CHECK(errs.v[i].file && strcmp(errs.v[i].file, "fuzz.conf") == 0);
      FUZZ_CHECK(errs.v[i].line >= 1 && errs.v[i].line <= lines);
      FUZZ_CHECK(errs.v[i].message && errs.v[i].message[0]);
    }
  }
  config_errors_print(&errs, devnull);
  fclose(devnull);
  config_errors_clear(&errs);
  config_free(cfg);
  free(text);
  return 0;
}
