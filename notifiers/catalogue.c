/* catalogue: PO files of Mustache strings (see catalogue.h).
 *
 * Owns a sorted array of (key, compiled template) pairs; lookups are binary
 * searches. */
#include "notifiers/catalogue.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "notifiers/tmpl.h"

struct msg {
  char *key;      /* msgid (owned) */
  struct tmpl *t; /* compiled msgstr (owned) */
};

struct catalogue {
  struct msg *msgs; /* sorted by key */
  size_t n, cap;
};

struct catalogue *catalogue_free(struct catalogue *c) {
  if (!c)
    return NULL;
  for (size_t i = 0; i < c->n; i++) {
    free(c->msgs[i].key);
    tmpl_free(c->msgs[i].t);
  }
  free(c->msgs);
  free(c);
  return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct catalogue *, catalogue_free);

_printf_(3, 4) static int fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -EINVAL;
}

/* Appends the unescaped contents of the quoted string at s (leading blanks
 * allowed) to b. Returns 0, -EINVAL (malformed) or -ENOMEM. */
static int unquote(const char *s, const char *end, struct buf *b) {
  while (s < end && (*s == ' ' || *s == '\t'))
    s++;
  if (s >= end || *s != '"')
    return -EINVAL;
  for (s++; s < end && *s != '"'; s++) {
    char c = *s;
    if (c == '\\') {
      if (++s >= end)
        return -EINVAL;
      switch (*s) {
      case 'n':
        c = '\n';
        break;
      case 't':
        c = '\t';
        break;
      case '"':
      case '\\':
        c = *s;
        break;
      default:
        return -EINVAL;
      }
    }
    if (buf_append(b, &c, 1) < 0)
      return -ENOMEM;
  }
  if (s >= end)
    return -EINVAL;
  for (s++; s < end; s++)
    if (*s != ' ' && *s != '\t' && *s != '\r')
      return -EINVAL;
  return 0;
}

static int cmp_msg(const void *a, const void *b) {
  return strcmp(((const struct msg *)a)->key, ((const struct msg *)b)->key);
}

struct parser {
  struct catalogue *c;
  struct buf id, str; /* the entry being read */
  int in;             /* 0 none, 1 msgid, 2 msgstr */
  bool fuzzy;         /* "#, fuzzy" before this entry */
  bool have;          /* an entry is being read */
  unsigned line;      /* line of its msgstr */
  char *err;
  size_t errlen;
};

/* Ends the entry being read: keeps it unless header, fuzzy or empty. */
static int finish(struct parser *p) {
  int r = 0;
  if (p->have && p->id.len > 0 && p->str.len > 0 && !p->fuzzy) {
    char msg[200] = "";
    struct tmpl *t = NULL;
    r = tmpl_compile(p->str.data, &t, msg, sizeof msg);
    if (r == -EINVAL)
      return fail(p->err, p->errlen, "line %u: msgstr \"%s\": %s", p->line, p->id.data, msg);
    if (r < 0)
      return r;
    for (size_t i = 0; i < p->c->n; i++)
      if (streq(p->c->msgs[i].key, p->id.data)) {
        tmpl_free(t);
        return fail(p->err, p->errlen, "line %u: msgid \"%s\" appears twice", p->line, p->id.data);
      }
    if (p->c->n == p->c->cap) {
      size_t cap = p->c->cap ? p->c->cap * 2 : 64;
      struct msg *m = reallocarray(p->c->msgs, cap, sizeof *m);
      if (!m) {
        tmpl_free(t);
        return -ENOMEM;
      }
      p->c->msgs = m;
      p->c->cap = cap;
    }
    char *key = strdup(p->id.data);
    if (!key) {
      tmpl_free(t);
      return -ENOMEM;
    }
    p->c->msgs[p->c->n++] = (struct msg){.key = key, .t = t};
  }
  buf_reset(&p->id);
  buf_reset(&p->str);
  p->in = 0;
  p->have = false;
  p->fuzzy = false;
  return r;
}

static int parse_line(struct parser *p, const char *s, const char *end, unsigned line) {
  while (s < end && (*s == ' ' || *s == '\t' || *s == '\r'))
    s++;
  if (s == end)
    return 0;
  int r;
  if (*s == '#') {
    if (p->in == 2 && (r = finish(p)) < 0)
      return r;
    if (end - s >= 2 && s[1] == ',' && memmem(s, (size_t)(end - s), "fuzzy", 5))
      p->fuzzy = true;
    return 0;
  }
  if (*s == '"') {
    if (p->in == 0)
      return fail(p->err, p->errlen, "line %u: a string outside msgid/msgstr", line);
    r = unquote(s, end, p->in == 1 ? &p->id : &p->str);
  } else if (!strncmp(s, "msgid ", 6)) {
    if (p->in == 1)
      return fail(p->err, p->errlen, "line %u: msgid without msgstr", line);
    if (p->in == 2 && (r = finish(p)) < 0)
      return r;
    p->in = 1;
    p->have = true;
    r = unquote(s + 6, end, &p->id);
  } else if (!strncmp(s, "msgstr ", 7)) {
    if (p->in != 1)
      return fail(p->err, p->errlen, "line %u: msgstr without msgid", line);
    p->in = 2;
    p->line = line;
    r = unquote(s + 7, end, &p->str);
  } else if (!strncmp(s, "msgctxt", 7) || !strncmp(s, "msgid_plural", 12) ||
             !strncmp(s, "msgstr[", 7))
    return fail(p->err, p->errlen,
                "line %u: msgctxt and plural forms are not used (counts come formatted: "
                "{{days}} is \"1 day\" or \"2 days\")",
                line);
  else
    return fail(p->err, p->errlen, "line %u: expected msgid, msgstr, a string or a comment", line);
  if (r == -EINVAL)
    return fail(p->err, p->errlen,
                "line %u: malformed string (quotes, or an escape other than "
                "\\n \\t \\\" \\\\)",
                line);
  return r;
}

int catalogue_parse(const char *text, struct catalogue **ret, char *err, size_t errlen) {
  if (!text || !ret)
    return -EINVAL;
  _cleanup_(catalogue_freep) struct catalogue *c = calloc(1, sizeof *c);
  if (!c)
    return -ENOMEM;
  struct parser p = {.c = c, .err = err, .errlen = errlen};
  int r = 0;
  unsigned line = 1;
  for (const char *s = text; *s && r >= 0; line++) {
    const char *nl = strchr(s, '\n');
    const char *end = nl ? nl : s + strlen(s);
    r = parse_line(&p, s, end, line);
    s = nl ? nl + 1 : end;
  }
  if (r >= 0 && p.in == 1)
    r = fail(err, errlen, "line %u: msgid without msgstr", line - 1);
  if (r >= 0)
    r = finish(&p);
  buf_free(&p.id);
  buf_free(&p.str);
  if (r < 0)
    return r;
  if (c->n > 1)
    qsort(c->msgs, c->n, sizeof *c->msgs, cmp_msg);
  *ret = TAKE_PTR(c);
  return 0;
}

const struct tmpl *catalogue_get(const struct catalogue *c, const char *key) {
  if (!c || !key || c->n == 0)
    return NULL;
  struct msg k = {.key = (char *)key};
  const struct msg *m = bsearch(&k, c->msgs, c->n, sizeof *c->msgs, cmp_msg);
  return m ? m->t : NULL;
}

size_t catalogue_size(const struct catalogue *c) {
  return c ? c->n : 0;
}

const char *catalogue_key(const struct catalogue *c, size_t i) {
  return c && i < c->n ? c->msgs[i].key : NULL;
}
