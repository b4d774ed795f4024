/* catalogue: one locale's strings, read from a gettext PO file whose
 * msgids are keys and whose msgstrs are Mustache templates.
 *
 *   # The heading of the renewal form.
 *   msgid "renew_h"
 *   msgstr "Renew your contract"
 *
 *   msgid "renew_p"
 *   msgstr "Your {{product}} will be renewed until {{date}}."
 *
 * The PO subset read: comments (# ...), the header entry (msgid "", skipped),
 * msgid/msgstr with continuation lines and the C escapes \n \t \" \\. An
 * entry flagged "#, fuzzy" or with an empty msgstr is untranslated: it is
 * left out, so the lookup falls back to the next locale, as gettext does.
 * msgctxt and msgid_plural are refused: plurals come from ICU through
 * pre-formatted fields ("{{days}}" = "1 day" / "2 days").
 *
 * Pure: parses text handed in, never opens files, never logs. Compiled
 * catalogues are immutable. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct tmpl;
struct catalogue;

/* Parses PO text. On success stores the catalogue in *ret (free with
 * catalogue_free()) and returns 0; -EINVAL with "line N: message" in err
 * for a syntax error (in the PO or in a msgstr's Mustache), -ENOMEM. */
int catalogue_parse(const char *text, struct catalogue **ret, char *err, size_t errlen);
struct catalogue *catalogue_free(struct catalogue *c);

/* The compiled template of key, NULL when the catalogue has none. */
const struct tmpl *catalogue_get(const struct catalogue *c, const char *key);
/* Number of keys, and the i-th key in sorted order (NULL past the end). */
size_t catalogue_size(const struct catalogue *c);
const char *catalogue_key(const struct catalogue *c, size_t i);
