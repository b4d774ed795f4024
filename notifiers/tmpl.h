/* tmpl: a Mustache template engine with a jansson json_t as the data model.
 *
 * Implements the Mustache spec (interpolation, dotted names, the implicit
 * iterator, sections, inverted sections, comments, partials with standalone
 * indentation, set delimiters, the standalone-line whitespace rules) plus the
 * optional modules ~inheritance (parents {{<p}}, blocks {{$b}}) and
 * ~dynamic-names ({{>*name}}, {{<*name}}). Lambdas are not supported.
 *
 * A template is compiled once into a tree (struct tmpl) and can then be
 * rendered any number of times; tmpl_render() does both in one call. Partials
 * are fetched at render time through struct tmpl_partials, either as text
 * (compiled once per render call) or already compiled.
 *
 * Data model choices where the spec leaves room:
 *  - falsy: missing, null, false, [] and "" (so an empty CSV field hides a
 *    section); numbers, including 0, and {} are truthy;
 *  - interpolation: strings as they are, integers in decimal, reals in the
 *    shortest form that reads back exactly, true/false as "true"/"false",
 *    null as "", objects and arrays as "" (never JSON dumped into a message);
 *  - HTML escaping (when asked for) turns & < > " ' into &amp; &lt; &gt;
 *    &quot; &#39;.
 *
 * Compiled templates are immutable: one may be rendered from several threads
 * at once. Rendering never blocks except in the partials callback, never
 * logs, and recursion through partials/blocks is cut at TMPL_MAX_DEPTH. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Deepest nesting of partial, parent and block expansions a render accepts
 * before failing with -ELOOP (a partial including itself without end). */
#define TMPL_MAX_DEPTH 64

/* A compiled template. Opaque; free with tmpl_free(). */
struct tmpl;

/* Where partials (and parents) come from. */
struct tmpl_partials {
  /* Returns the text of partial NAME, or NULL when there is none (it then
   * renders as the empty string). The text must stay valid until the render
   * call returns. Used when get_compiled is NULL. */
  const char *(*get)(void *ud, const char *name);
  /* Optional, used instead of get when set: stores the compiled partial NAME
   * in *ret_tmpl (borrowed, must stay valid until the render call returns;
   * NULL when there is no such partial) and returns 0, or returns -errno with
   * a message in err (e.g. a syntax error in the partial). */
  int (*get_compiled)(void *ud, const char *name, const struct tmpl **ret_tmpl, char *err,
                      size_t errlen);
  void *ud; /* passed to get/get_compiled */
  /* Optional: called with the (dotted) name of every {{var}} that is missing
   * from the context (it renders empty). For template checks. */
  void (*missing)(void *ud, const char *name, size_t len);
};

/* Compiles template text. On success stores a new template in *ret (caller
 * frees with tmpl_free()) and returns 0. On a syntax error returns -EINVAL and
 * writes "line N: message" into err (if errlen > 0); -ENOMEM on OOM. The text
 * is copied; the caller keeps ownership of template. */
int tmpl_compile(const char *template, struct tmpl **ret, char *err, size_t errlen);

/* Frees a compiled template. Accepts NULL; returns NULL. */
struct tmpl *tmpl_free(struct tmpl *t);

/* Renders a compiled template with data (borrowed; any json_t, the root of
 * the context stack; NULL renders as an empty context). partials may be NULL
 * (every partial is then empty). escape_html selects HTML escaping of {{var}}
 * (plain-text parts pass false). On success stores the output in *ret (caller
 * frees) and returns 0; otherwise returns -EINVAL (syntax error in a partial,
 * "partial 'NAME': line N: message" in err), -ELOOP (nesting deeper than
 * TMPL_MAX_DEPTH), -ENOMEM, or what get_compiled returned; *ret is untouched. */
int tmpl_render_compiled(const struct tmpl *t, json_t *data, const struct tmpl_partials *partials,
                         bool escape_html, char **ret, char *err, size_t errlen);

/* tmpl_compile() + tmpl_render_compiled() in one call; same contract. */
int tmpl_render(const char *template, json_t *data, const struct tmpl_partials *partials,
                bool escape_html, char **ret, char *err, size_t errlen);

/* Calls fn(ud, name, line) for every partial ({{>name}}) and parent
 * ({{<name}}) tag of t with a static name, in source order, sections and
 * blocks included whatever the data (dynamic {{>*x}} names are skipped).
 * For config checks. Stops at and returns the first negative value fn
 * returns; else 0. */
int tmpl_foreach_partial(const struct tmpl *t, int (*fn)(void *ud, const char *name, unsigned line),
                         void *ud);
