/* tmpl: a Mustache template engine over jansson values (see tmpl.h).
 *
 * Compilation runs in three passes over a private copy of the source:
 *  1. lex():        splits the source into text tokens (each at most one line)
 *                   and tags, following set-delimiter tags as it goes;
 *  2. standalone(): applies the standalone-line rule: a line holding only
 *                   whitespace and non-interpolation tags loses its
 *                   whitespace and its line ending; the whitespace becomes the
 *                   indentation of partial, parent and block tags on it;
 *  3. build():      turns the surviving tokens into a tree of nodes and checks
 *                   that sections nest.
 * Nodes point into the owned source copy; nothing is copied per node except
 * the NUL-terminated names of static partials.
 *
 * Indentation is applied at render time, line by line: each node that begins
 * a source line (bol) asks the current frame to strip some leading whitespace
 * (a block's content is dedented where it is defined) and to prepend a
 * prefix (a standalone partial's or block's indentation). Interpolated data
 * is never re-indented, as the spec asks.
 *
 * Invariant: a compiled struct tmpl is never modified after tmpl_compile()
 * returns, so renders may share it. */
#include "notifiers/tmpl.h"

#include "core/util.h"

enum tok_type {
  T_TEXT,
  T_VAR,      /* {{name}} */
  T_RAW,      /* {{{name}}} or {{&name}} */
  T_SECTION,  /* {{#name}} */
  T_INVERTED, /* {{^name}} */
  T_CLOSE,    /* {{/name}} */
  T_PARTIAL,  /* {{>name}} */
  T_PARENT,   /* {{<name}} */
  T_BLOCK,    /* {{$name}} */
  T_COMMENT,  /* {{! ...}} */
  T_DELIM,    /* {{=<% %>=}} */
};

struct token {
  enum tok_type type;
  size_t start, end;           /* source offsets of the whole token, delimiters included */
  size_t s, len;               /* T_TEXT: the text; tags: the trimmed name ('*' removed) */
  unsigned line;               /* line the token starts on, 1-based */
  bool dynamic;                /* partial/parent/close name started with '*' */
  bool bol;                    /* first token of its source line */
  bool line_standalone;        /* its line is standalone */
  bool removed;                /* text dropped by the standalone rule */
  size_t ind, ind_len;         /* standalone tags: the line's leading whitespace */
  size_t line_start, line_end; /* offsets where its line starts and ends (after the EOL) */
};

enum node_type {
  N_ROOT,
  N_TEXT,
  N_VAR,
  N_SECTION,
  N_INVERTED,
  N_PARTIAL,
  N_PARENT,
  N_BLOCK,
};

struct node {
  enum node_type type;
  bool bol;                /* begins a source line: gets the frame's line prefix */
  bool close_bol;          /* sections/blocks: the closing tag begins a line, so the line
                              prefix is emitted after each rendering of the content */
  bool escape;             /* N_VAR: {{name}} (escaped when the render asks for it) */
  bool dynamic;            /* N_PARTIAL/N_PARENT: name is a dotted name resolving to the name */
  bool standalone;         /* N_PARTIAL/N_PARENT/N_BLOCK: tag on a standalone line */
  unsigned line;           /* source line of the tag, for messages */
  const char *s;           /* N_TEXT: text; others: name (not NUL-terminated) */
  size_t len;              /* length of s */
  char *cname;             /* N_PARTIAL/N_PARENT static: owned NUL-terminated name */
  const char *indent;      /* standalone N_PARTIAL/N_PARENT: indentation; N_BLOCK: the
                              indentation its content gets where it is expanded */
  size_t indent_len;       /* length of indent */
  size_t dedent;           /* standalone N_BLOCK: whitespace width stripped from its content */
  size_t content_start;    /* N_BLOCK while building: offset where its content starts */
  struct node *kids;       /* owned children (sections, parents, blocks, root) */
  size_t n_kids, cap_kids; /* used / allocated entries of kids */
};

struct tmpl {
  char *source;     /* owned copy of the template text; nodes point into it */
  struct node root; /* N_ROOT holding the top-level nodes */
};

_printf_(3, 4) static void seterr(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static bool is_ws(char c) {
  return c == ' ' || c == '\t';
}
static bool is_space(char c) {
  return is_ws(c) || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* True when s[0..len) is only a line ending ("\n" or "\r\n"). */
static bool is_eol(const char *s, size_t len) {
  return (len == 1 && s[0] == '\n') || (len == 2 && s[0] == '\r' && s[1] == '\n');
}

/* ---------------------------------------------------------------- lexing */

struct lexer {
  const char *src;    /* the source */
  size_t n;           /* its length */
  struct token *toks; /* tokens found so far (owned, handed to the caller) */
  size_t n_toks, cap; /* used / allocated */
  const char *open;   /* current opening delimiter */
  size_t olen;        /* its length */
  char *close_s;      /* current closing delimiter (owned) */
  char *close3;       /* "}" + closing delimiter (owned) */
  char *closeq;       /* "=" + closing delimiter (owned) */
  size_t clen;        /* length of close_s */
};

static int lex_push(struct lexer *lx, struct token t) {
  if (lx->n_toks == lx->cap) {
    size_t cap = lx->cap ? lx->cap * 2 : 64;
    struct token *n = reallocarray(lx->toks, cap, sizeof *n);
    if (!n)
      return -ENOMEM;
    lx->toks = n;
    lx->cap = cap;
  }
  lx->toks[lx->n_toks++] = t;
  return 0;
}

static int lex_set_close(struct lexer *lx, const char *c, size_t len) {
  char *a = strndup(c, len), *b = strprintf("}%.*s", (int)len, c),
       *q = strprintf("=%.*s", (int)len, c);
  if (!a || !b || !q) {
    free(a);
    free(b);
    free(q);
    return -ENOMEM;
  }
  free(lx->close_s);
  free(lx->close3);
  free(lx->closeq);
  lx->close_s = a;
  lx->close3 = b;
  lx->closeq = q;
  lx->clen = len;
  return 0;
}

static void lex_done(struct lexer *lx) {
  free(lx->toks);
  free(lx->close_s);
  free(lx->close3);
  free(lx->closeq);
}

static unsigned count_nl(const char *s, size_t len) {
  unsigned k = 0;
  for (size_t i = 0; i < len; i++)
    k += s[i] == '\n';
  return k;
}

/* Trims whitespace off [*a, *b). */
static void trim(const char *s, size_t *a, size_t *b) {
  while (*a < *b && is_space(s[*a]))
    (*a)++;
  while (*b > *a && is_space(s[*b - 1]))
    (*b)--;
}

static bool valid_name(const char *s, size_t len) {
  if (len == 0)
    return false;
  for (size_t i = 0; i < len; i++)
    if (is_space(s[i]))
      return false;
  return true;
}

/* Parses the content of a set-delimiter tag, [a, b) without the '='s. */
static int lex_delims(struct lexer *lx, size_t a, size_t b, unsigned line, char *err,
                      size_t errlen) {
  const char *s = lx->src;
  trim(s, &a, &b);
  size_t o1 = a;
  while (a < b && !is_space(s[a]))
    a++;
  size_t o2 = a;
  while (a < b && is_space(s[a]))
    a++;
  size_t c1 = a;
  while (a < b && !is_space(s[a]))
    a++;
  size_t c2 = a;
  if (o2 == o1 || c2 == c1 || a != b || memchr(s + o1, '=', o2 - o1) ||
      memchr(s + c1, '=', c2 - c1)) {
    seterr(err, errlen, "line %u: invalid set-delimiter tag", line);
    return -EINVAL;
  }
  lx->open = s + o1;
  lx->olen = o2 - o1;
  return lex_set_close(lx, s + c1, c2 - c1);
}

static int lex(struct lexer *lx, char *err, size_t errlen) {
  const char *s = lx->src;
  size_t n = lx->n, pos = 0;
  unsigned line = 1;
  int r;

  lx->open = "{{";
  lx->olen = 2;
  r = lex_set_close(lx, "}}", 2);
  if (r < 0)
    return r;

  while (pos < n) {
    const char *p = memmem(s + pos, n - pos, lx->open, lx->olen);
    size_t tend = p ? (size_t)(p - s) : n;

    /* Text up to the tag, one token per line. */
    while (pos < tend) {
      const char *q = memchr(s + pos, '\n', tend - pos);
      size_t e = q ? (size_t)(q - s) + 1 : tend;
      r = lex_push(
          lx, (struct token){
                  .type = T_TEXT, .start = pos, .end = e, .s = pos, .len = e - pos, .line = line});
      if (r < 0)
        return r;
      line += q != NULL;
      pos = e;
    }
    if (!p)
      break;

    size_t c = tend + lx->olen;
    char sigil = c < n ? s[c] : 0;
    enum tok_type type;
    const char *closing = lx->close_s;
    size_t closing_len = lx->clen;
    switch (sigil) {
    case '{':
      type = T_RAW;
      closing = lx->close3;
      closing_len = lx->clen + 1;
      break;
    case '&':
      type = T_RAW;
      break;
    case '#':
      type = T_SECTION;
      break;
    case '^':
      type = T_INVERTED;
      break;
    case '/':
      type = T_CLOSE;
      break;
    case '>':
      type = T_PARTIAL;
      break;
    case '<':
      type = T_PARENT;
      break;
    case '$':
      type = T_BLOCK;
      break;
    case '!':
      type = T_COMMENT;
      break;
    case '=':
      type = T_DELIM;
      closing = lx->closeq;
      closing_len = lx->clen + 1;
      break;
    default:
      type = T_VAR;
      break;
    }
    size_t cs = type == T_VAR ? c : c + 1;
    const char *ce_p = cs <= n ? memmem(s + cs, n - cs, closing, closing_len) : NULL;
    if (!ce_p) {
      seterr(err, errlen, "line %u: unclosed tag", line);
      return -EINVAL;
    }
    size_t ce = (size_t)(ce_p - s), tag_end = ce + closing_len;
    struct token t = {.type = type, .start = tend, .end = tag_end, .line = line};

    if (type == T_DELIM) {
      r = lex_delims(lx, cs, ce, line, err, errlen);
      if (r < 0)
        return r;
    } else if (type != T_COMMENT) {
      size_t a = cs, b = ce;
      trim(s, &a, &b);
      if ((type == T_PARTIAL || type == T_PARENT || type == T_CLOSE) && a < b && s[a] == '*') {
        t.dynamic = true;
        a++;
        trim(s, &a, &b);
      }
      if (!valid_name(s + a, b - a)) {
        seterr(err, errlen, "line %u: invalid tag name '%.*s'", line, (int)MIN(ce - cs, 64),
               s + cs);
        return -EINVAL;
      }
      t.s = a;
      t.len = b - a;
    }
    r = lex_push(lx, t);
    if (r < 0)
      return r;
    line += count_nl(s + tend, tag_end - tend);
    pos = tag_end;
  }
  return 0;
}

/* ------------------------------------------------------------ standalone */

static bool tok_is_eol_text(const struct token *t, const char *s) {
  return t->type == T_TEXT && t->len > 0 && s[t->s + t->len - 1] == '\n';
}

/* Whitespace-only text, a trailing line ending allowed. */
static bool tok_is_blank(const struct token *t, const char *s) {
  size_t len = t->len;
  if (len > 0 && s[t->s + len - 1] == '\n') {
    len--;
    if (len > 0 && s[t->s + len - 1] == '\r')
      len--;
  }
  for (size_t i = 0; i < len; i++)
    if (!is_ws(s[t->s + i]))
      return false;
  return true;
}

static void standalone(struct token *toks, size_t nt, const char *s) {
  for (size_t i = 0; i < nt;) {
    size_t j = i;
    while (j < nt - 1 && !tok_is_eol_text(&toks[j], s))
      j++;
    /* The line is toks[i..j]. */
    bool ok = true;
    size_t n_tags = 0, last_tag = SIZE_MAX, prev_tag = SIZE_MAX;
    for (size_t k = i; k <= j; k++) {
      struct token *t = &toks[k];
      t->line_start = toks[i].start;
      t->line_end = toks[j].end;
      if (t->type == T_TEXT) {
        if (!tok_is_blank(t, s))
          ok = false;
      } else if (t->type == T_VAR || t->type == T_RAW) {
        ok = false;
      } else {
        n_tags++;
        prev_tag = last_tag;
        last_tag = k;
      }
    }
    toks[i].bol = true;
    if (ok && n_tags > 0) {
      size_t ind = toks[i].type == T_TEXT ? toks[i].s : toks[i].start;
      size_t ind_len = toks[i].type == T_TEXT ? toks[i].len : 0;
      for (size_t k = i; k <= j; k++) {
        toks[k].line_standalone = true;
        toks[k].ind = ind;
        toks[k].ind_len = ind_len;
        if (toks[k].type == T_TEXT)
          toks[k].removed = true;
      }
      /* An empty block on a line of its own ("  {{$b}}{{/b}}") keeps its line
       * ending: the block's content goes where the block is, and the line
       * goes on after it (~inheritance "Standalone block"). */
      if (prev_tag != SIZE_MAX && toks[last_tag].type == T_CLOSE &&
          toks[prev_tag].type == T_BLOCK && toks[last_tag].len == toks[prev_tag].len &&
          memcmp(s + toks[last_tag].s, s + toks[prev_tag].s, toks[prev_tag].len) == 0 &&
          tok_is_eol_text(&toks[j], s)) {
        struct token *t = &toks[j];
        size_t eol = t->len >= 2 && s[t->s + t->len - 2] == '\r' ? 2 : 1;
        t->s += t->len - eol;
        t->len = eol;
        t->removed = false;
      }
    }
    i = j + 1;
  }
}

/* --------------------------------------------------------------- building */

static void node_done(struct node *n) {
  for (size_t i = 0; i < n->n_kids; i++)
    node_done(&n->kids[i]);
  free(n->kids);
  free(n->cname);
}

/* Appends a zeroed child to parent; returns it or NULL on OOM. */
static struct node *node_add(struct node *parent, enum node_type type) {
  if (parent->n_kids == parent->cap_kids) {
    size_t cap = parent->cap_kids ? parent->cap_kids * 2 : 4;
    struct node *k = reallocarray(parent->kids, cap, sizeof *k);
    if (!k)
      return NULL;
    parent->kids = k;
    parent->cap_kids = cap;
  }
  struct node *n = &parent->kids[parent->n_kids++];
  *n = (struct node){.type = type};
  return n;
}

/* The common leading whitespace of the non-blank lines in s[0..len)
 * (like Python's textwrap.dedent); stores where it is and its width. */
static void margin(const char *s, size_t len, const char **ret, size_t *ret_len) {
  const char *m = NULL;
  size_t mlen = 0;
  for (size_t a = 0; a < len;) {
    const char *q = memchr(s + a, '\n', len - a);
    size_t b = q ? (size_t)(q - s) : len;
    size_t w = 0;
    while (a + w < b && is_ws(s[a + w]))
      w++;
    bool blank = a + w == b || (a + w + 1 == b && s[a + w] == '\r');
    if (!blank) {
      if (!m) {
        m = s + a;
        mlen = w;
      } else {
        size_t k = 0;
        while (k < mlen && k < w && m[k] == s[a + k])
          k++;
        mlen = k;
      }
    }
    a = q ? b + 1 : len;
  }
  *ret = m;
  *ret_len = mlen;
}

static const char *tag_word(enum node_type t) {
  switch (t) {
  case N_SECTION:
    return "section";
  case N_INVERTED:
    return "inverted section";
  case N_PARENT:
    return "parent";
  case N_BLOCK:
    return "block";
  default:
    return "tag";
  }
}

static int build(struct tmpl *t, const struct token *toks, size_t nt, char *err, size_t errlen) {
  const char *s = t->source;
  _cleanup_free_ struct node **stack = NULL;
  size_t depth = 0, cap = 0;
  bool pending_bol = false;

  if (!(stack = malloc(sizeof *stack * 16)))
    return -ENOMEM;
  cap = 16;
  stack[0] = &t->root;

  for (size_t i = 0; i < nt; i++) {
    const struct token *k = &toks[i];
    struct node *top = stack[depth], *n = NULL;
    if (k->removed)
      continue;
    bool bol = (k->bol && !k->line_standalone) || pending_bol;
    pending_bol = false;

    switch (k->type) {
    case T_TEXT:
      if (k->len == 0)
        break;
      if (!(n = node_add(top, N_TEXT)))
        return -ENOMEM;
      n->s = s + k->s;
      n->len = k->len;
      break;
    case T_COMMENT:
    case T_DELIM:
      pending_bol = bol; /* the next node on this line begins it */
      break;
    case T_VAR:
    case T_RAW:
      if (!(n = node_add(top, N_VAR)))
        return -ENOMEM;
      n->escape = k->type == T_VAR;
      break;
    case T_PARTIAL:
      if (!(n = node_add(top, N_PARTIAL)))
        return -ENOMEM;
      break;
    case T_SECTION:
    case T_INVERTED:
    case T_PARENT:
    case T_BLOCK: {
      static const enum node_type map[] = {[T_SECTION] = N_SECTION,
                                           [T_INVERTED] = N_INVERTED,
                                           [T_PARENT] = N_PARENT,
                                           [T_BLOCK] = N_BLOCK};
      if (!(n = node_add(top, map[k->type])))
        return -ENOMEM;
      if (depth + 1 == cap) {
        struct node **ns = reallocarray(stack, cap * 2, sizeof *ns);
        if (!ns)
          return -ENOMEM;
        stack = ns;
        cap *= 2;
      }
      stack[++depth] = n;
      break;
    }
    case T_CLOSE: {
      if (depth == 0) {
        seterr(err, errlen, "line %u: closing tag '%.*s' without an opening tag", k->line,
               (int)MIN(k->len, 64), s + k->s);
        return -EINVAL;
      }
      if (top->len != k->len || memcmp(top->s, s + k->s, k->len) != 0 ||
          top->dynamic != k->dynamic) {
        seterr(err, errlen, "line %u: closing tag '%.*s' does not match %s '%.*s' (line %u)",
               k->line, (int)MIN(k->len, 64), s + k->s, tag_word(top->type), (int)MIN(top->len, 64),
               top->s, top->line);
        return -EINVAL;
      }
      top->close_bol = bol;
      if (top->type == N_BLOCK && top->standalone) {
        /* Content as written: from the line after the opening tag up to the
         * closing tag (or its line, when that line is standalone). */
        size_t a = top->content_start, b = k->line_standalone ? k->line_start : k->start;
        const char *m = NULL;
        size_t mlen = 0;
        if (a < b)
          margin(s + a, b - a, &m, &mlen);
        top->dedent = mlen;
        if (mlen > 0) {
          top->indent = m;
          top->indent_len = mlen;
        }
      }
      depth--;
      break;
    }
    }
    if (!n)
      continue;

    n->bol = bol;
    n->line = k->line;
    if (n->type != N_TEXT) {
      n->s = s + k->s;
      n->len = k->len;
      n->dynamic = k->dynamic;
      n->standalone = k->line_standalone;
      if (n->standalone) {
        n->indent = s + k->ind;
        n->indent_len = k->ind_len;
      }
      if (n->type == N_BLOCK)
        n->content_start = k->line_end;
      if ((n->type == N_PARTIAL || n->type == N_PARENT) && !n->dynamic &&
          !(n->cname = strndup(n->s, n->len)))
        return -ENOMEM;
    }
  }
  if (depth > 0) {
    struct node *top = stack[depth];
    seterr(err, errlen, "line %u: %s '%.*s' is not closed", top->line, tag_word(top->type),
           (int)MIN(top->len, 64), top->s);
    return -EINVAL;
  }
  return 0;
}

struct tmpl *tmpl_free(struct tmpl *t) {
  if (!t)
    return NULL;
  node_done(&t->root);
  free(t->source);
  free(t);
  return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct tmpl *, tmpl_free);

int tmpl_compile(const char *template, struct tmpl **ret, char *err, size_t errlen) {
  if (!template || !ret)
    return -EINVAL;
  _cleanup_(tmpl_freep) struct tmpl *t = calloc(1, sizeof *t);
  if (!t)
    return -ENOMEM;
  t->root.type = N_ROOT;
  if (!(t->source = strdup(template)))
    return -ENOMEM;

  struct lexer lx = {.src = t->source, .n = strlen(t->source)};
  int r = lex(&lx, err, errlen);
  if (r >= 0) {
    if (lx.n_toks > 0)
      standalone(lx.toks, lx.n_toks, t->source);
    r = build(t, lx.toks, lx.n_toks, err, errlen);
  }
  lex_done(&lx);
  if (r < 0)
    return r;
  *ret = TAKE_PTR(t);
  return 0;
}

/* -------------------------------------------------------------- rendering */

/* How the source lines of the nodes being rendered are transformed. */
struct frame {
  size_t strip;       /* at most this many leading blanks are removed from each line */
  const char *prefix; /* then this is put before it (not before empty lines) */
  size_t prefix_len;  /* length of prefix */
};

/* Block overrides in effect: one layer per parent tag being expanded,
 * innermost first; the outermost definition of a name wins. */
struct blocks {
  const struct blocks *outer; /* enclosing layer or NULL */
  const struct node *parent;  /* the N_PARENT whose N_BLOCK children are the overrides */
  struct frame frame;         /* the frame the parent tag was rendered in */
};

struct pcache {
  char *name;     /* owned partial name */
  struct tmpl *t; /* owned compiled partial, NULL when there is none */
};

struct render {
  struct buf out;                       /* the output */
  bool escape;                          /* HTML-escape {{var}} */
  const struct tmpl_partials *partials; /* borrowed, may be NULL */
  json_t **stack;                       /* context stack (borrowed values), top last */
  size_t n_stack, cap_stack;            /* used / allocated */
  struct pcache *cache;                 /* partials compiled from text during this render */
  size_t n_cache;                       /* entries in cache */
  unsigned depth;                       /* current partial/parent/block nesting */
  char *err;                            /* caller's message buffer */
  size_t errlen;                        /* its size */
};

static int render_nodes(struct render *r, const struct node *kids, size_t n, const struct frame *f,
                        const struct blocks *b, const char *first, size_t first_len);

static int push(struct render *r, json_t *v) {
  if (r->n_stack == r->cap_stack) {
    size_t cap = r->cap_stack ? r->cap_stack * 2 : 16;
    json_t **n = reallocarray(r->stack, cap, sizeof *n);
    if (!n)
      return -ENOMEM;
    r->stack = n;
    r->cap_stack = cap;
  }
  r->stack[r->n_stack++] = v;
  return 0;
}

/* Resolves a (dotted) name against the context stack; NULL when missing. */
static json_t *lookup(struct render *r, const char *name, size_t len) {
  if (len == 1 && name[0] == '.')
    return r->n_stack > 0 ? r->stack[r->n_stack - 1] : NULL;
  const char *dot = memchr(name, '.', len);
  size_t plen = dot ? (size_t)(dot - name) : len;
  json_t *v = NULL;
  for (size_t i = r->n_stack; i > 0; i--) {
    json_t *c = r->stack[i - 1];
    if (json_is_object(c) && (v = json_object_getn(c, name, plen)))
      break;
  }
  while (v && dot) {
    name = dot + 1;
    len -= plen + 1;
    dot = memchr(name, '.', len);
    plen = dot ? (size_t)(dot - name) : len;
    v = json_is_object(v) ? json_object_getn(v, name, plen) : NULL;
  }
  return v;
}

static bool truthy(json_t *v) {
  if (!v || json_is_null(v) || json_is_false(v))
    return false;
  if (json_is_array(v))
    return json_array_size(v) > 0;
  if (json_is_string(v))
    return json_string_length(v) > 0;
  return true;
}

static int append_escaped(struct buf *out, const char *s, size_t len) {
  size_t run = 0;
  for (size_t i = 0; i < len; i++) {
    const char *e;
    switch (s[i]) {
    case '&':
      e = "&amp;";
      break;
    case '<':
      e = "&lt;";
      break;
    case '>':
      e = "&gt;";
      break;
    case '"':
      e = "&quot;";
      break;
    case '\'':
      e = "&#39;";
      break;
    default:
      continue;
    }
    int r = buf_append(out, s + run, i - run);
    if (r < 0)
      return r;
    if ((r = buf_puts(out, e)) < 0)
      return r;
    run = i + 1;
  }
  return buf_append(out, s + run, len - run);
}

static int append_value(struct render *r, json_t *v, bool escape) {
  char tmp[64];
  const char *s = NULL;
  size_t len = 0;
  switch (json_typeof(v)) {
  case JSON_STRING:
    s = json_string_value(v);
    len = json_string_length(v);
    break;
  case JSON_INTEGER:
    len = (size_t)snprintf(tmp, sizeof tmp, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    s = tmp;
    break;
  case JSON_REAL: {
    double d = json_real_value(v);
    for (int prec = 15; prec <= 17; prec++) {
      len = (size_t)snprintf(tmp, sizeof tmp, "%.*g", prec, d);
      if (strtod(tmp, NULL) == d)
        break;
    }
    s = tmp;
    break;
  }
  case JSON_TRUE:
    s = "true";
    len = 4;
    break;
  case JSON_FALSE:
    s = "false";
    len = 5;
    break;
  default: /* null, objects, arrays */
    return 0;
  }
  return escape ? append_escaped(&r->out, s, len) : buf_append(&r->out, s, len);
}

/* Builds f's prefix + ind with f->strip leading blanks removed: the
 * indentation a standalone tag written with ind gets in frame f. */
static int frame_indent(const struct frame *f, const char *ind, size_t ind_len, struct buf *out) {
  size_t k = 0;
  while (k < f->strip && k < ind_len && is_ws(ind[k]))
    k++;
  int r = buf_append(out, f->prefix, f->prefix_len);
  if (r < 0)
    return r;
  return buf_append(out, ind + k, ind_len - k);
}

/* Fetches partial NAME (NULL in *ret when there is none). */
static int get_partial(struct render *r, const char *name, const struct tmpl **ret) {
  const struct tmpl_partials *p = r->partials;
  *ret = NULL;
  if (!p)
    return 0;
  if (p->get_compiled)
    return p->get_compiled(p->ud, name, ret, r->err, r->errlen);
  for (size_t i = 0; i < r->n_cache; i++)
    if (streq(r->cache[i].name, name)) {
      *ret = r->cache[i].t;
      return 0;
    }
  const char *text = p->get ? p->get(p->ud, name) : NULL;
  struct tmpl *t = NULL;
  if (text) {
    char e[256];
    int k = tmpl_compile(text, &t, e, sizeof e);
    if (k == -EINVAL)
      seterr(r->err, r->errlen, "partial '%s': %s", name, e);
    if (k < 0)
      return k;
  }
  struct pcache *c = reallocarray(r->cache, r->n_cache + 1, sizeof *c);
  char *dup = strdup(name);
  if (c)
    r->cache = c;
  if (!c || !dup) {
    free(dup);
    tmpl_free(t);
    return -ENOMEM;
  }
  r->cache[r->n_cache++] = (struct pcache){.name = dup, .t = t};
  *ret = t;
  return 0;
}

static int enter(struct render *r) {
  if (r->depth >= TMPL_MAX_DEPTH) {
    seterr(r->err, r->errlen, "partials/blocks nested deeper than %d (recursive partial?)",
           TMPL_MAX_DEPTH);
    return -ELOOP;
  }
  r->depth++;
  return 0;
}

/* {{>name}} and {{<name}}...{{/name}}. */
static int render_partial(struct render *r, const struct node *n, const struct frame *f,
                          const struct blocks *b) {
  const char *name = n->cname;
  if (n->dynamic) {
    json_t *v = lookup(r, n->s, n->len);
    if (!json_is_string(v))
      return 0;
    name = json_string_value(v);
  }
  const struct tmpl *t;
  int k = get_partial(r, name, &t);
  if (k < 0 || !t)
    return k;
  if ((k = enter(r)) < 0)
    return k;

  struct buf ind = {0};
  struct frame nf = {0};
  if (n->standalone) {
    if ((k = frame_indent(f, n->indent, n->indent_len, &ind)) < 0)
      goto out;
    nf.prefix = ind.data;
    nf.prefix_len = ind.len;
  }
  struct blocks nb = {.outer = b, .parent = n, .frame = *f};
  k = render_nodes(r, t->root.kids, t->root.n_kids, &nf, n->type == N_PARENT ? &nb : b, NULL, 0);
out:
  buf_free(&ind);
  r->depth--;
  return k;
}

/* The outermost override of block NAME, and the frame it was defined in. */
static const struct node *find_block(const struct blocks *b, const char *name, size_t len,
                                     const struct frame **ret_frame) {
  if (!b)
    return NULL;
  const struct node *n = find_block(b->outer, name, len, ret_frame);
  if (n)
    return n;
  for (size_t i = 0; i < b->parent->n_kids; i++) {
    const struct node *k = &b->parent->kids[i];
    if (k->type == N_BLOCK && k->len == len && memcmp(k->s, name, len) == 0) {
      *ret_frame = &b->frame;
      return k;
    }
  }
  return NULL;
}

/* {{$name}}...{{/name}}: the override from a parent tag, else the default. */
static int render_block(struct render *r, const struct node *n, const struct frame *f,
                        const struct blocks *b) {
  const struct frame *df = NULL;
  const struct node *def = find_block(b, n->s, n->len, &df);
  struct buf ind = {0}, pre = {0};
  struct frame nf;
  const char *first = NULL;
  size_t first_len = 0;
  int k = enter(r);
  if (k < 0)
    return k;

  /* Where the block is expanded on a line of its own, its content is
   * indented like the block's own content (or tag) is written here. */
  if (n->standalone && (k = frame_indent(f, n->indent, n->indent_len, &ind)) < 0)
    goto out;

  if (def) {
    /* Content defined on its own lines loses its common indentation. */
    if (def->standalone)
      nf = (struct frame){.strip = MAX(df->strip, def->dedent)};
    else
      nf = *df;
    if (n->standalone) {
      if ((k = buf_append(&pre, ind.data, ind.len)) < 0 ||
          (k = buf_append(&pre, nf.prefix, nf.prefix_len)) < 0)
        goto out;
      nf.prefix = pre.data;
      nf.prefix_len = pre.len;
      first = ind.data;
      first_len = ind.len;
    }
    k = render_nodes(r, def->kids, def->n_kids, &nf, b, first, first_len);
  } else {
    nf = *f;
    if (n->standalone) {
      nf = (struct frame){
          .strip = MAX(f->strip, n->dedent), .prefix = ind.data, .prefix_len = ind.len};
      first = ind.data;
      first_len = ind.len;
    }
    k = render_nodes(r, n->kids, n->n_kids, &nf, b, first, first_len);
    if (k >= 0 && n->close_bol)
      k = buf_append(&r->out, nf.prefix, nf.prefix_len);
  }
out:
  buf_free(&ind);
  buf_free(&pre);
  r->depth--;
  return k;
}

static int render_section(struct render *r, const struct node *n, const struct frame *f,
                          const struct blocks *b) {
  json_t *v = lookup(r, n->s, n->len);
  int k = 0;
  if (n->type == N_INVERTED) {
    if (truthy(v))
      return 0;
    k = render_nodes(r, n->kids, n->n_kids, f, b, NULL, 0);
    if (k >= 0 && n->close_bol)
      k = buf_append(&r->out, f->prefix, f->prefix_len);
    return k;
  }
  if (!truthy(v))
    return 0;
  size_t count = json_is_array(v) ? json_array_size(v) : 1;
  for (size_t i = 0; i < count && k >= 0; i++) {
    if ((k = push(r, json_is_array(v) ? json_array_get(v, i) : v)) < 0)
      break;
    k = render_nodes(r, n->kids, n->n_kids, f, b, NULL, 0);
    if (k >= 0 && n->close_bol)
      k = buf_append(&r->out, f->prefix, f->prefix_len);
    r->n_stack--;
  }
  return k;
}

static int render_nodes(struct render *r, const struct node *kids, size_t n, const struct frame *f,
                        const struct blocks *b, const char *first, size_t first_len) {
  for (size_t i = 0; i < n; i++) {
    const struct node *k = &kids[i];
    const char *s = k->s;
    size_t len = k->len;
    int rr = 0;

    /* Line prefix: for a node beginning a source line, or for the first node
     * of a block's content expanded on a line of its own. */
    if (k->bol || (i == 0 && first)) {
      const char *p = k->bol ? f->prefix : first;
      size_t plen = k->bol ? f->prefix_len : first_len;
      if (k->type == N_TEXT && k->bol) {
        size_t w = 0;
        while (w < f->strip && w < len && is_ws(s[w]))
          w++;
        s += w;
        len -= w;
      }
      if (!(k->type == N_TEXT && is_eol(s, len)) && (rr = buf_append(&r->out, p, plen)) < 0)
        return rr;
    }

    switch (k->type) {
    case N_TEXT:
      rr = buf_append(&r->out, s, len);
      break;
    case N_VAR: {
      json_t *v = lookup(r, k->s, k->len);
      if (v)
        rr = append_value(r, v, k->escape && r->escape);
      else if (r->partials && r->partials->missing)
        r->partials->missing(r->partials->ud, k->s, k->len);
      break;
    }
    case N_SECTION:
    case N_INVERTED:
      rr = render_section(r, k, f, b);
      break;
    case N_PARTIAL:
    case N_PARENT:
      rr = render_partial(r, k, f, b);
      break;
    case N_BLOCK:
      rr = render_block(r, k, f, b);
      break;
    case N_ROOT:
      break;
    }
    if (rr < 0)
      return rr;
  }
  return 0;
}

int tmpl_render_compiled(const struct tmpl *t, json_t *data, const struct tmpl_partials *partials,
                         bool escape_html, char **ret, char *err, size_t errlen) {
  if (!t || !ret)
    return -EINVAL;
  struct render r = {.escape = escape_html, .partials = partials, .err = err, .errlen = errlen};
  struct frame f = {0};
  int k = data ? push(&r, data) : 0;
  if (k >= 0)
    k = render_nodes(&r, t->root.kids, t->root.n_kids, &f, NULL, NULL, 0);
  char *out = k >= 0 ? buf_steal(&r.out) : NULL;
  if (k >= 0 && !out)
    k = -ENOMEM;
  buf_free(&r.out);
  free(r.stack);
  for (size_t i = 0; i < r.n_cache; i++) {
    free(r.cache[i].name);
    tmpl_free(r.cache[i].t);
  }
  free(r.cache);
  if (k < 0)
    return k;
  *ret = out;
  return 0;
}

int tmpl_render(const char *template, json_t *data, const struct tmpl_partials *partials,
                bool escape_html, char **ret, char *err, size_t errlen) {
  _cleanup_(tmpl_freep) struct tmpl *t = NULL;
  if (!template || !ret)
    return -EINVAL;
  int r = tmpl_compile(template, &t, err, errlen);
  if (r < 0)
    return r;
  return tmpl_render_compiled(t, data, partials, escape_html, ret, err, errlen);
}

/* -------------------------------------------------------------- inspection */

static int walk_partials(const struct node *n, int (*fn)(void *, const char *, unsigned),
                         void *ud) {
  for (size_t i = 0; i < n->n_kids; i++) {
    const struct node *k = &n->kids[i];
    int r = 0;
    if ((k->type == N_PARTIAL || k->type == N_PARENT) && !k->dynamic && k->cname)
      r = fn(ud, k->cname, k->line);
    if (r >= 0)
      r = walk_partials(k, fn, ud);
    if (r < 0)
      return r;
  }
  return 0;
}

int tmpl_foreach_partial(const struct tmpl *t, int (*fn)(void *ud, const char *name, unsigned line),
                         void *ud) {
  if (!t || !fn)
    return -EINVAL;
  return walk_partials(&t->root, fn, ud);
}
