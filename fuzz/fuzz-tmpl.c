/* fuzz-tmpl: the Mustache template engine (notifiers/tmpl.c), as it renders
 * the message templates an operator writes.
 *
 * The first input byte selects HTML escaping (bit 0); the rest is the
 * template text (up to its first NUL). It is rendered with a fixed data model
 * shaped like the one notifiers/render.c builds (customer, contract, links,
 * history list, numbers, booleans, null, HTML-special characters) and with
 * partials: "footer-text" and "contract-text" (static texts), "layout" (a
 * parent with a block), "self" (the input itself: recursion must stop at
 * TMPL_MAX_DEPTH), any other name is absent. Checked beyond the sanitizers:
 *  - compile errors are -EINVAL with a "line N: ..." message;
 *  - a compiled template renders, or fails only with -EINVAL (a partial's
 *    syntax), -ELOOP or -ENOMEM;
 *  - tmpl_render() gives the same result as tmpl_compile() followed by
 *    tmpl_render_compiled();
 *  - tmpl_foreach_partial() visits the static partial names without failing. */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "notifiers/tmpl.h"

static const char data_json[] =
    "{\"customer\": {\"id\": \"CU-1\", \"name\": \"Ada <Lovelace> & \\\"Co\\\"\","
    " \"email\": \"ada@example.com\", \"phone\": null, \"locale\": \"en\"},"
    " \"contract\": {\"id\": \"C-0001\", \"product\": \"Support 'Gold'\", \"value\": \"1,200.50 "
    "EUR\","
    " \"expiry\": \"2027-03-01\", \"days_left\": 30, \"ratio\": 0.25, \"active\": true,"
    " \"tags\": [], \"empty\": \"\", \"zero\": 0, \"obj\": {}},"
    " \"links\": {\"renew\": \"https://renew.example.com/r/v1.abc.def\"},"
    " \"history\": [{\"at\": \"2027-01-01\", \"tier\": \"notice\"}, {\"at\": \"2027-02-01\","
    " \"tier\": \"final\", \"answer\": {\"kind\": \"snooze\"}}, \"plain\", 7, false, null],"
    " \"name\": \"self\"}";

static const struct {
  const char *name;
  const char *text;
} partials[] = {
    {"footer-text", "--\n{{#links.renew}}Renew: {{links.renew}}\n{{/links.renew}}"},
    {"contract-text", "Contract: {{contract.id}}{{#contract.value}} ({{.}}){{/contract.value}}\n"},
    {"layout", "<html>{{$body}}default body{{/body}}{{$title}}{{/title}}</html>"},
};

/* The "self" partial's text: the input being rendered. */
static const char *self_text;

static const char *get_partial(void *ud, const char *name) {
  if (strcmp(name, "self") == 0)
    return self_text;
  for (size_t i = 0; i < sizeof partials / sizeof partials[0]; i++)
    if (strcmp(name, partials[i].name) == 0)
      return partials[i].text;
  return NULL;
}

static int count_partial(void *ud, const char *name, unsigned line) {
  FUZZ_CHECK(name && line >= 1);
  ++*(unsigned *)ud;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  bool escape = data[0] & 1;
  char *text = fuzz_strndup(data + 1, size - 1);
  self_text = text;
  json_error_t je;
  json_t *model = json_loads(data_json, 0, &je);
  FUZZ_CHECK(model);
  struct tmpl_partials ps = {.get = get_partial};

  struct tmpl *t = NULL;
  char err[256] = "";
  int r = tmpl_compile(text, &t, err, sizeof err);
  FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
  if (r == -EINVAL)
    FUZZ_CHECK(strncmp(err, "line ", 5) == 0);

  char *out = NULL, *out1 = NULL, err1[256] = "";
  int r1 = tmpl_render(text, model, &ps, escape, &out1, err1, sizeof err1);
  if (r == 0) {
    unsigned n = 0;
    FUZZ_CHECK(tmpl_foreach_partial(t, count_partial, &n) == 0);
    r = tmpl_render_compiled(t, model, &ps, escape, &out, err, sizeof err);
    FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ELOOP || r == -ENOMEM);
    FUZZ_CHECK(r == 0 ? out != NULL : out == NULL);
  }
  FUZZ_CHECK(r1 == r || r == -ENOMEM || r1 == -ENOMEM);
  if (r == 0 && r1 == 0)
    FUZZ_CHECK(strcmp(out, out1) == 0);

  free(out);
  free(out1);
  tmpl_free(t);
  json_decref(model);
  free(text);
  return 0;
}
