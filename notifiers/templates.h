/* templates: the notification template directory, one subdirectory per locale.
 *
 *   DIR/en/notice.subject.mustache      NAME.PART.mustache
 *   DIR/en/notice.text.mustache
 *   DIR/en/notice.html.mustache
 *   DIR/en/partials/footer.mustache     partials ({{>footer}}, {{<footer}})
 *   DIR/en/pages.po                     a catalogue (templates_string())
 *   DIR/en/sms.po                       SMS replies, another catalogue
 *   DIR/zh/notice.text.mustache
 *   DIR/zh_CN/...
 *
 * A locale falls back from the most to the least specific and then to the
 * default locale (templates_set_default_locale()), then to
 * TEMPLATES_FALLBACK_LOCALE, the reference set: "zh-Hant-TW" tries
 * zh-hant-tw, zh-hant, zh, en; with default de, "fr-CA" tries fr-ca, fr, de,
 * en.
 * Locale names match directory names case-insensitively with '_' and '-'
 * equivalent, and an encoding or modifier suffix is ignored
 * ("zh_CN.UTF-8" = "zh-cn" = directory "zh_CN"); a locale that is not a
 * well-formed tag is treated as just the fallback. Partials are looked up
 * along the chain of the locale the template was found in, so one message
 * stays in one language: a zh-CN notice found in zh/ takes its partials from
 * zh/, else en/; one that fell back to en/ takes them from en/ only.
 *
 * The directory is listed once by templates_open(); files are read and
 * compiled on first use and cached, including the fact that a file is
 * missing or broken: reopen to see changes (e.g. on SIGHUP). Names of
 * templates, parts and partials are [A-Za-z0-9_.-] starting with a letter or
 * digit, so no lookup leaves DIR; a partial with another name (e.g. from
 * {{>*name}} data) is treated as missing. Missing partials render empty, as
 * Mustache says.
 *
 * Owns: the cache (compiled templates), the list of locale directories.
 * Blocks: reads files on first use of each (small, local). Not thread-safe:
 * the cache is filled while rendering; use from one thread (the event loop).
 * Never logs; errors come back as -errno plus a message naming the file. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Last locale of every fallback chain. */
#define TEMPLATES_FALLBACK_LOCALE "en"
/* Largest template or partial file read, in bytes (-EFBIG above). */
#define TEMPLATES_MAX_FILE_SIZE (1024 * 1024)

struct templates;

/* Opens template directory dir and lists its locale subdirectories. On
 * success stores a new handle in *ret (free with templates_free()) and
 * returns 0; otherwise returns -errno (-ENOENT, -ENOTDIR, -EACCES, ...) with
 * "DIR: reason" in err. */
int templates_open(const char *dir, struct templates **ret, char *err, size_t errlen);

/* Frees the handle and every cached template. Accepts NULL; returns NULL.
 * Pointers handed out through ret_locale become invalid. */
struct templates *templates_free(struct templates *t);

/* Renders template NAME.PART for locale (NULL or "" = the fallback) with data
 * (borrowed; the root context). {{var}} is HTML-escaped only when part is
 * "html". On success stores the output in *ret (caller frees), the name of
 * the locale directory used in *ret_locale if not NULL (e.g. "zh"; valid
 * until templates_free()), and returns 0. Returns -ENOENT when no locale of
 * the chain has the template, -EINVAL for an invalid name or part or a
 * syntax error (in the template or a partial), -ELOOP for runaway partial
 * recursion, other -errno when a file cannot be read; err then says which
 * file and why ("zh/notice.text.mustache: line 3: section 'x' is not
 * closed"). Output parameters are untouched on failure. */
int templates_render(struct templates *t, const char *locale, const char *name, const char *part,
                     json_t *data, char **ret, const char **ret_locale, char *err, size_t errlen);

/* True when some locale of the chain has a file for NAME.PART (even one that
 * fails to compile: rendering it then says why). False for invalid names. */
bool templates_exists(struct templates *t, const char *locale, const char *name, const char *part);

/* The shipped en/pages.po, en/sms.po and en/alerts.po, built in
 * (notifiers/embed.cmake): the last resort of the answer pages' strings, the
 * SMS replies and the words of owner alerts. */
extern const char templates_builtin_pages_po[];
extern const char templates_builtin_sms_po[];
extern const char templates_builtin_alerts_po[];

/* A handle without a directory: only built-in catalogues (templates_render()
 * then finds nothing). For pages when Templates= does not exist. */
int templates_new_empty(struct templates **ret);

/* Sets the default locale, the last step of every fallback chain (default
 * TEMPLATES_FALLBACK_LOCALE). -EINVAL when it is not a locale tag. */
int templates_set_default_locale(struct templates *t, const char *locale);
/* The default locale, normalized ("en", "zh-cn"). */
const char *templates_default_locale(const struct templates *t);

/* Calls fn(ud, file, name) for each {{name}} that a render of this handle
 * finds missing from the data (file: the template's path relative to the
 * directory, or the catalogue). NULL turns it off. For template checks. */
void templates_set_missing_hook(struct templates *t,
                                void (*fn)(void *ud, const char *file, const char *name), void *ud);

/* The names of the locale directories (sorted) into names (up to max);
 * returns how many there are. Valid until templates_free(). */
size_t templates_locales(const struct templates *t, const char **names, size_t max);

/* Catalogues: DIR/<locale>/NAME.po (see notifiers/catalogue.h), strings
 * whose values are Mustache templates. templates_string() renders string
 * key of catalogue NAME for locale with data, looking the key up along the
 * locale's fallback chain (key by key: a catalogue may translate only some
 * strings), then in the built-in catalogue of that name. {{x}} is never
 * HTML-escaped (the caller escapes the result). Returns 0 with *ret (caller
 * frees) and the locale directory used in *ret_locale ("en" for the
 * built-in; valid until templates_free()), -ENOENT when no catalogue has
 * the key, -EINVAL for a broken catalogue file (err says which line), or
 * -ENOMEM. Catalogue files are read on first use and cached, like
 * templates. */
int templates_string(struct templates *t, const char *locale, const char *catalogue,
                     const char *key, json_t *data, char **ret, const char **ret_locale, char *err,
                     size_t errlen);
/* Calls fn(ud, text, locale_dir) with string key of catalogue NAME, rendered
 * without data, for every locale directory along locale's fallback chain
 * whose catalogue has the key (most specific first), then for the built-in
 * catalogue ("en"): for values that add up, such as the keywords of every
 * language a reader may write in. Stops at fn's first nonzero return and
 * returns it; 0 when fn never stopped (or no catalogue has the key),
 * -EINVAL with err for a broken catalogue file, -ENOMEM. */
int templates_string_each(struct templates *t, const char *locale, const char *catalogue,
                          const char *key,
                          int (*fn)(void *ud, const char *text, const char *locale_dir), void *ud,
                          char *err, size_t errlen);
/* Adds the built-in catalogue NAME from PO text (copied), the last resort
 * of templates_string(). -EINVAL with err on a syntax error. */
int templates_add_builtin_catalogue(struct templates *t, const char *name, const char *po_text,
                                    char *err, size_t errlen);
/* Calls fn for each key of catalogue NAME of locale directory locale_dir
 * (NULL: the built-in one), in sorted order. -ENOENT when there is no such
 * catalogue; stops at fn's first negative return. */
int templates_catalogue_keys(struct templates *t, const char *locale_dir, const char *catalogue,
                             int (*fn)(void *ud, const char *key), void *ud);

/* The best locale for an HTTP Accept-Language value: the first language
 * range (by q, then order) whose fallback chain reaches a locale directory
 * before the default ("de-AT" finds de/), written to out as the range
 * normalized ("de-at"). Returns 0, or -ENOENT with the default locale in out. */
int templates_negotiate(struct templates *t, const char *accept_language, char *out, size_t n);

/* Checks the whole directory, for --check-config: every NAME.PART.mustache
 * and partials/NAME.mustache (and NAME.po catalogue) of every locale directory is read and
 * compiled, and every partial or parent a file names statically ({{>x}},
 * {{<x}}) exists along that locale's fallback chain. Each problem is passed
 * to problem() with the file's full path, a 1-based line (0 = the whole
 * file) and a message. Fills the cache as rendering would. Returns 0 when
 * there was no problem, -EINVAL when some were reported, -ENOMEM or -errno
 * when a directory cannot be listed (also reported). */
int templates_check(struct templates *t,
                    void (*problem)(void *ud, const char *file, unsigned line, const char *msg),
                    void *ud);
