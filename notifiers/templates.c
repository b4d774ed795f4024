/* templates: locale-aware lookup and caching of Mustache templates in a
 * directory (see templates.h).
 *
 * Owns the list of locale subdirectories found by templates_open() and a
 * hash table of files keyed by their path relative to the directory
 * ("zh/notice.text.mustache", "en/partials/footer.mustache"). Each entry
 * records the outcome of the first load: compiled template, missing, or an
 * error with its message; entries live until templates_free().
 *
 * Invariant: every path built here is "<locale dir as listed>/<validated
 * name>...", so nothing outside the directory is ever opened. */
#include "notifiers/templates.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "core/util.h"
#include "notifiers/catalogue.h"
#include "notifiers/tmpl.h"

#define MAX_NAME 128  /* longest template, part or partial name */
#define MAX_LOCALE 64 /* longest locale string considered */
#define MAX_CHAIN 8   /* most locales in one fallback chain */

struct locale_dir {
  char *name; /* directory name as on disk, e.g. "zh_CN" (owned) */
  char *norm; /* normalized: lower case, '-' for '_', e.g. "zh-cn" (owned) */
};

struct entry {
  char *key;          /* path relative to the directory (owned) */
  int r;              /* 0 loaded, -ENOENT missing, other -errno broken */
  struct tmpl *t;     /* compiled template when r == 0 (owned) */
  char *error;        /* message when r < 0 and r != -ENOENT (owned) */
  struct entry *next; /* next entry in the same bucket */
};

/* A catalogue file (DIR/<locale>/NAME.po) or a built-in one, as loaded. */
struct cat_entry {
  char *key;              /* "<locale dir>/NAME.po", or "builtin:NAME" (owned) */
  int r;                  /* 0 loaded, -ENOENT missing, other -errno broken */
  struct catalogue *c;    /* when r == 0 (owned) */
  char *error;            /* "KEY: line N: message" when broken (owned) */
  struct cat_entry *next; /* next loaded catalogue */
};

struct templates {
  char *dir;                     /* the template directory (owned); NULL: built-in strings only */
  char fallback[MAX_LOCALE + 1]; /* normalized default locale, end of every chain */
  struct cat_entry *cats;        /* loaded catalogues (list: a few per locale) */
  void (*missing)(void *ud, const char *key, const char *name); /* templates_set_missing_hook() */
  void *missing_ud;
  struct locale_dir *locales; /* its locale subdirectories, sorted by name (owned) */
  size_t n_locales;           /* entries in locales */
  struct entry **buckets;     /* hash table of loaded files (owned) */
  size_t n_buckets;           /* a power of two */
  size_t n_entries;           /* entries in the table */
};

_printf_(3, 4) static void seterr(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* [A-Za-z0-9_.-], starting with a letter or digit, at most MAX_NAME bytes. */
static bool valid_name(const char *s) {
  size_t len = s ? strlen(s) : 0;
  if (len == 0 || len > MAX_NAME || !isalnum((unsigned char)s[0]))
    return false;
  for (size_t i = 0; i < len; i++)
    if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
      return false;
  return true;
}

/* Normalizes a locale into out (MAX_LOCALE + 1 bytes): lower case, '_' to
 * '-', encoding (".UTF-8") and modifier ("@euro") dropped. Returns false
 * when it is not a plausible locale tag. */
static bool normalize_locale(const char *in, char *out) {
  size_t n = 0;
  for (const char *p = in; *p && *p != '.' && *p != '@'; p++) {
    char c = *p;
    if (c == '_')
      c = '-';
    else if (isalnum((unsigned char)c))
      c = (char)tolower((unsigned char)c);
    else if (c != '-')
      return false;
    if (n == MAX_LOCALE)
      return false;
    out[n++] = c;
  }
  out[n] = 0;
  return n > 0 && out[0] != '-' && out[n - 1] != '-';
}

static int cmp_locale(const void *a, const void *b) {
  return strcmp(((const struct locale_dir *)a)->name, ((const struct locale_dir *)b)->name);
}

static void entry_free(struct entry *e) {
  free(e->key);
  tmpl_free(e->t);
  free(e->error);
  free(e);
}

struct templates *templates_free(struct templates *t) {
  if (!t)
    return NULL;
  for (size_t i = 0; i < t->n_buckets; i++)
    for (struct entry *e = t->buckets[i], *next; e; e = next) {
      next = e->next;
      entry_free(e);
    }
  free(t->buckets);
  for (size_t i = 0; i < t->n_locales; i++) {
    free(t->locales[i].name);
    free(t->locales[i].norm);
  }
  free(t->locales);
  for (struct cat_entry *c = t->cats, *next; c; c = next) {
    next = c->next;
    free(c->key);
    catalogue_free(c->c);
    free(c->error);
    free(c);
  }
  free(t->dir);
  free(t);
  return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct templates *, templates_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir);

int templates_open(const char *dir, struct templates **ret, char *err, size_t errlen) {
  if (isempty(dir) || !ret)
    return -EINVAL;
  _cleanup_(templates_freep) struct templates *t = calloc(1, sizeof *t);
  if (!t || !(t->dir = strdup(dir)))
    return -ENOMEM;
  if (!(t->buckets = calloc(64, sizeof *t->buckets)))
    return -ENOMEM; /* n_buckets still 0: templates_free() walks no bucket */
  t->n_buckets = 64;
  strcpy(t->fallback, TEMPLATES_FALLBACK_LOCALE);

  _cleanup_(closedirp) DIR *d = opendir(dir);
  if (!d) {
    int r = -errno;
    seterr(err, errlen, "%s: %s", dir, strerror(-r));
    return r;
  }
  struct dirent *de;
  size_t cap = 0;
  while ((errno = 0, de = readdir(d))) {
    char norm[MAX_LOCALE + 1];
    struct stat st;
    if (de->d_name[0] == '.' || !valid_name(de->d_name) || !normalize_locale(de->d_name, norm))
      continue;
    if (fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !S_ISDIR(st.st_mode))
      continue;
    if (t->n_locales == cap) {
      cap = cap ? cap * 2 : 8;
      struct locale_dir *n = reallocarray(t->locales, cap, sizeof *n);
      if (!n)
        return -ENOMEM;
      t->locales = n;
    }
    struct locale_dir *l = &t->locales[t->n_locales];
    *l = (struct locale_dir){.name = strdup(de->d_name), .norm = strdup(norm)};
    t->n_locales++;
    if (!l->name || !l->norm)
      return -ENOMEM;
  }
  if (errno != 0) {
    int r = -errno;
    seterr(err, errlen, "%s: %s", dir, strerror(-r));
    return r;
  }
  /* Sorted, so that of two directories meaning the same locale ("zh_CN" and
   * "zh-cn") the same one wins on every start. */
  if (t->n_locales > 0)
    qsort(t->locales, t->n_locales, sizeof *t->locales, cmp_locale);
  *ret = TAKE_PTR(t);
  return 0;
}

/* The locale directories to try for locale, most specific first. */
static size_t locale_chain(const struct templates *t, const char *locale,
                           const struct locale_dir *out[static MAX_CHAIN]) {
  char norm[MAX_LOCALE + 1];
  size_t n = 0;
  if (isempty(locale) || !normalize_locale(locale, norm))
    strcpy(norm, t->fallback);
  /* the locale, then the default locale, then TEMPLATES_FALLBACK_LOCALE (the
   * reference set every other locale is translated from: it holds the
   * shared partials, and whatever a default locale of an install lacks) */
  for (int pass = 0; pass < 3; pass++) {
    for (;;) {
      for (size_t i = 0; i < t->n_locales && n < MAX_CHAIN; i++) {
        if (!streq(t->locales[i].norm, norm))
          continue;
        bool dup = false;
        for (size_t k = 0; k < n; k++)
          dup = dup || out[k] == &t->locales[i];
        if (!dup)
          out[n++] = &t->locales[i];
        break;
      }
      char *dash = strrchr(norm, '-');
      if (!dash)
        break;
      *dash = 0;
    }
    strcpy(norm, pass == 0 ? t->fallback : TEMPLATES_FALLBACK_LOCALE);
  }
  return n;
}

static uint64_t hash(const char *s) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

static int table_grow(struct templates *t) {
  size_t nb = t->n_buckets * 2;
  struct entry **b = calloc(nb, sizeof *b);
  if (!b)
    return -ENOMEM;
  for (size_t i = 0; i < t->n_buckets; i++)
    for (struct entry *e = t->buckets[i], *next; e; e = next) {
      next = e->next;
      size_t h = hash(e->key) & (nb - 1);
      e->next = b[h];
      b[h] = e;
    }
  free(t->buckets);
  t->buckets = b;
  t->n_buckets = nb;
  return 0;
}

/* Returns the cache entry for file key (relative path), loading and
 * compiling it on first use; NULL only on OOM. */
static struct entry *load(struct templates *t, const char *key) {
  size_t h = hash(key) & (t->n_buckets - 1);
  for (struct entry *e = t->buckets[h]; e; e = e->next)
    if (streq(e->key, key))
      return e;

  if (t->n_entries >= t->n_buckets) {
    if (table_grow(t) < 0)
      return NULL;
    h = hash(key) & (t->n_buckets - 1);
  }
  struct entry *e = calloc(1, sizeof *e);
  _cleanup_free_ char *path = strprintf("%s/%s", t->dir, key);
  _cleanup_free_ char *text = NULL;
  if (!e || !path || !(e->key = strdup(key))) {
    free(e ? e->key : NULL);
    free(e);
    return NULL;
  }
  e->r = read_full_file(path, TEMPLATES_MAX_FILE_SIZE, &text, NULL);
  if (e->r >= 0) {
    char msg[256] = "";
    e->r = tmpl_compile(text, &e->t, msg, sizeof msg);
    if (e->r == -EINVAL)
      e->error = strprintf("%s: %s", key, msg);
  } else if (e->r != -ENOENT)
    e->error = strprintf("%s: %s", key, strerror(-e->r));
  if (e->r == -ENOMEM || (e->r < 0 && e->r != -ENOENT && !e->error)) {
    entry_free(e); /* not cached: a later call may succeed */
    return NULL;
  }
  e->next = t->buckets[h];
  t->buckets[h] = e;
  t->n_entries++;
  return e;
}

/* Finds the first file "<locale>/<middle><name><suffix>" along chain.
 * Returns 0 with the entry and its locale, -ENOENT, or the entry's error. */
static int find(struct templates *t, const struct locale_dir *const *chain, size_t n_chain,
                const char *middle, const char *name, const char *suffix, struct entry **ret,
                const struct locale_dir **ret_locale) {
  for (size_t i = 0; i < n_chain; i++) {
    _cleanup_free_ char *key = strprintf("%s/%s%s%s", chain[i]->name, middle, name, suffix);
    if (!key)
      return -ENOMEM;
    struct entry *e = load(t, key);
    if (!e)
      return -ENOMEM;
    if (e->r == -ENOENT)
      continue;
    *ret = e;
    if (ret_locale)
      *ret_locale = chain[i];
    return e->r;
  }
  return -ENOENT;
}

struct partial_ctx {
  struct templates *t;                   /* the directory */
  const struct locale_dir *const *chain; /* the locale chain of the render */
  size_t n_chain;                        /* entries in chain */
  const char *key;                       /* the file or string rendered (for the missing hook) */
};

static void missing_cb(void *ud, const char *name, size_t len) {
  struct partial_ctx *c = ud;
  char n[MAX_NAME + 1];
  if (!c->t->missing)
    return;
  snprintf(n, sizeof n, "%.*s", (int)MIN(len, (size_t)MAX_NAME), name);
  c->t->missing(c->t->missing_ud, c->key, n);
}

static int get_partial(void *ud, const char *name, const struct tmpl **ret, char *err,
                       size_t errlen) {
  struct partial_ctx *c = ud;
  struct entry *e = NULL;
  *ret = NULL;
  if (!valid_name(name))
    return 0; /* e.g. {{>*x}} with odd data: missing, like any unknown partial */
  int r = find(c->t, c->chain, c->n_chain, "partials/", name, ".mustache", &e, NULL);
  if (r == -ENOENT)
    return 0;
  if (r < 0) {
    seterr(err, errlen, "%s", e && e->error ? e->error : strerror(-r));
    return r;
  }
  *ret = e->t;
  return 0;
}

int templates_render(struct templates *t, const char *locale, const char *name, const char *part,
                     json_t *data, char **ret, const char **ret_locale, char *err, size_t errlen) {
  if (!t || !ret)
    return -EINVAL;
  if (!valid_name(name) || !valid_name(part)) {
    seterr(err, errlen, "invalid template name '%s.%s'", name ? name : "", part ? part : "");
    return -EINVAL;
  }
  const struct locale_dir *chain[MAX_CHAIN];
  size_t n_chain = locale_chain(t, locale, chain);
  _cleanup_free_ char *suffix = strprintf(".%s.mustache", part);
  if (!suffix)
    return -ENOMEM;

  struct entry *e = NULL;
  const struct locale_dir *used = NULL;
  int r = find(t, chain, n_chain, "", name, suffix, &e, &used);
  if (r == -ENOENT) {
    seterr(err, errlen, "no template %s.%s for locale '%s' in %s", name, part,
           isempty(locale) ? t->fallback : locale, t->dir);
    return r;
  }
  if (r < 0) {
    seterr(err, errlen, "%s", e && e->error ? e->error : strerror(-r));
    return r;
  }

  /* Partials come from the found locale's own chain (a suffix of ours). */
  size_t skip = 0;
  while (chain[skip] != used)
    skip++;
  struct partial_ctx pc = {.t = t, .chain = chain + skip, .n_chain = n_chain - skip, .key = e->key};
  struct tmpl_partials p = {.get_compiled = get_partial, .ud = &pc, .missing = missing_cb};
  char msg[256] = "";
  char *out = NULL;
  r = tmpl_render_compiled(e->t, data, &p, streq(part, "html"), &out, msg, sizeof msg);
  if (r < 0) {
    seterr(err, errlen, "%s: %s", e->key, msg);
    return r;
  }
  *ret = out;
  if (ret_locale)
    *ret_locale = used->name;
  return 0;
}

bool templates_exists(struct templates *t, const char *locale, const char *name, const char *part) {
  if (!t || !valid_name(name) || !valid_name(part))
    return false;
  const struct locale_dir *chain[MAX_CHAIN];
  size_t n_chain = locale_chain(t, locale, chain);
  _cleanup_free_ char *suffix = strprintf(".%s.mustache", part);
  struct entry *e = NULL;
  if (!suffix)
    return false;
  int r = find(t, chain, n_chain, "", name, suffix, &e, NULL);
  return r != -ENOENT && r != -ENOMEM;
}

/* ---- settings --------------------------------------------------------------------- */

int templates_new_empty(struct templates **ret) {
  if (!ret)
    return -EINVAL;
  struct templates *t = calloc(1, sizeof *t);
  if (!t)
    return -ENOMEM;
  if (!(t->buckets = calloc(8, sizeof *t->buckets))) {
    free(t);
    return -ENOMEM;
  }
  t->n_buckets = 8;
  strcpy(t->fallback, TEMPLATES_FALLBACK_LOCALE);
  *ret = t;
  return 0;
}

int templates_set_default_locale(struct templates *t, const char *locale) {
  char norm[MAX_LOCALE + 1];
  if (!t || isempty(locale) || !normalize_locale(locale, norm))
    return -EINVAL;
  strcpy(t->fallback, norm);
  return 0;
}

const char *templates_default_locale(const struct templates *t) {
  return t ? t->fallback : TEMPLATES_FALLBACK_LOCALE;
}

void templates_set_missing_hook(struct templates *t,
                                void (*fn)(void *ud, const char *key, const char *name), void *ud) {
  if (!t)
    return;
  t->missing = fn;
  t->missing_ud = ud;
}

size_t templates_locales(const struct templates *t, const char **names, size_t max) {
  size_t n = 0;
  for (size_t i = 0; t && i < t->n_locales; i++) {
    if (names && n < max)
      names[n] = t->locales[i].name;
    n++;
  }
  return n;
}

/* ---- catalogues ------------------------------------------------------------------- */

static struct cat_entry *cat_find(struct templates *t, const char *key) {
  for (struct cat_entry *c = t->cats; c; c = c->next)
    if (streq(c->key, key))
      return c;
  return NULL;
}

static struct cat_entry *cat_add(struct templates *t, const char *key, const char *text) {
  struct cat_entry *c = calloc(1, sizeof *c);
  if (!c || !(c->key = strdup(key))) {
    free(c);
    return NULL;
  }
  char msg[256] = "";
  c->r = text ? catalogue_parse(text, &c->c, msg, sizeof msg) : -ENOENT;
  if (c->r == -ENOMEM) {
    free(c->key);
    free(c);
    return NULL;
  }
  if (c->r == -EINVAL && !(c->error = strprintf("%s: %s", key, msg))) {
    free(c->key);
    free(c);
    return NULL;
  }
  c->next = t->cats;
  t->cats = c;
  return c;
}

int templates_add_builtin_catalogue(struct templates *t, const char *name, const char *po_text,
                                    char *err, size_t errlen) {
  if (!t || !valid_name(name) || !po_text)
    return -EINVAL;
  _cleanup_free_ char *key = strprintf("builtin:%s", name);
  if (!key)
    return -ENOMEM;
  if (cat_find(t, key))
    return 0;
  struct cat_entry *c = cat_add(t, key, po_text);
  if (!c)
    return -ENOMEM;
  if (c->r < 0)
    seterr(err, errlen, "%s", c->error ? c->error : strerror(-c->r));
  return c->r;
}

/* The catalogue DIR/<l>/NAME.po, loaded on first use (a missing or broken
 * file is remembered as such). NULL only on OOM. */
static struct cat_entry *cat_load(struct templates *t, const struct locale_dir *l,
                                  const char *name) {
  _cleanup_free_ char *key = strprintf("%s/%s.po", l->name, name);
  if (!key)
    return NULL;
  struct cat_entry *c = cat_find(t, key);
  if (c)
    return c;
  _cleanup_free_ char *path = strprintf("%s/%s", t->dir, key), *text = NULL;
  if (!path)
    return NULL;
  int r = read_full_file(path, TEMPLATES_MAX_FILE_SIZE, &text, NULL);
  if (r == -ENOMEM)
    return NULL;
  c = cat_add(t, key, r < 0 ? NULL : text);
  if (c && r < 0 && r != -ENOENT) {
    c->r = r;
    if (!(c->error = strprintf("%s: %s", key, strerror(-r))))
      return NULL;
  }
  return c;
}

int templates_string(struct templates *t, const char *locale, const char *catalogue,
                     const char *key, json_t *data, char **ret, const char **ret_locale, char *err,
                     size_t errlen) {
  if (!t || !ret || !valid_name(catalogue) || isempty(key))
    return -EINVAL;
  const struct locale_dir *chain[MAX_CHAIN];
  size_t n_chain = t->dir ? locale_chain(t, locale, chain) : 0;
  const struct tmpl *found = NULL;
  const char *used = NULL, *file = NULL;
  for (size_t i = 0; i < n_chain && !found; i++) {
    struct cat_entry *c = cat_load(t, chain[i], catalogue);
    if (!c)
      return -ENOMEM;
    if (c->r < 0 && c->r != -ENOENT) {
      seterr(err, errlen, "%s", c->error ? c->error : strerror(-c->r));
      return c->r;
    }
    if ((found = catalogue_get(c->c, key)))
      used = chain[i]->name, file = c->key;
  }
  if (!found) {
    _cleanup_free_ char *bkey = strprintf("builtin:%s", catalogue);
    if (!bkey)
      return -ENOMEM;
    struct cat_entry *c = cat_find(t, bkey);
    if (c && (found = catalogue_get(c->c, key)))
      used = TEMPLATES_FALLBACK_LOCALE, file = c->key;
  }
  if (!found) {
    seterr(err, errlen, "no string '%s' in %s.po for locale '%s'", key, catalogue,
           isempty(locale) ? t->fallback : locale);
    return -ENOENT;
  }
  struct partial_ctx pc = {.t = t, .key = file};
  struct tmpl_partials p = {.ud = &pc, .missing = missing_cb};
  char msg[256] = "";
  char *out = NULL;
  int r = tmpl_render_compiled(found, data, &p, false, &out, msg, sizeof msg);
  if (r < 0) {
    seterr(err, errlen, "%s: %s: %s", file, key, msg);
    return r;
  }
  *ret = out;
  if (ret_locale)
    *ret_locale = used;
  return 0;
}

/* Renders one catalogue value without data and passes it to fn. */
static int each_one(struct templates *t, const struct tmpl *v, const char *file,
                    const char *locale_dir,
                    int (*fn)(void *ud, const char *text, const char *locale_dir), void *ud,
                    char *err, size_t errlen) {
  struct partial_ctx pc = {.t = t, .key = file};
  struct tmpl_partials p = {.ud = &pc, .missing = missing_cb};
  _cleanup_free_ char *out = NULL;
  char msg[256] = "";
  int r = tmpl_render_compiled(v, NULL, &p, false, &out, msg, sizeof msg);
  if (r < 0) {
    seterr(err, errlen, "%s: %s", file, msg);
    return r;
  }
  return fn(ud, out, locale_dir);
}

int templates_string_each(struct templates *t, const char *locale, const char *catalogue,
                          const char *key,
                          int (*fn)(void *ud, const char *text, const char *locale_dir), void *ud,
                          char *err, size_t errlen) {
  if (!t || !fn || !valid_name(catalogue) || isempty(key))
    return -EINVAL;
  const struct locale_dir *chain[MAX_CHAIN];
  size_t n_chain = t->dir ? locale_chain(t, locale, chain) : 0;
  const struct tmpl *v;
  int r = 0;
  for (size_t i = 0; i < n_chain && r == 0; i++) {
    struct cat_entry *c = cat_load(t, chain[i], catalogue);
    if (!c)
      return -ENOMEM;
    if (c->r < 0 && c->r != -ENOENT) {
      seterr(err, errlen, "%s", c->error ? c->error : strerror(-c->r));
      return c->r;
    }
    if ((v = catalogue_get(c->c, key)))
      r = each_one(t, v, c->key, chain[i]->name, fn, ud, err, errlen);
  }
  if (r != 0)
    return r;
  _cleanup_free_ char *bkey = strprintf("builtin:%s", catalogue);
  if (!bkey)
    return -ENOMEM;
  struct cat_entry *c = cat_find(t, bkey);
  if (c && (v = catalogue_get(c->c, key)))
    r = each_one(t, v, c->key, TEMPLATES_FALLBACK_LOCALE, fn, ud, err, errlen);
  return r;
}

int templates_catalogue_keys(struct templates *t, const char *locale_dir, const char *catalogue,
                             int (*fn)(void *ud, const char *key), void *ud) {
  if (!t || !valid_name(catalogue) || !fn)
    return -EINVAL;
  struct cat_entry *c = NULL;
  if (!locale_dir) {
    _cleanup_free_ char *bkey = strprintf("builtin:%s", catalogue);
    if (!bkey)
      return -ENOMEM;
    c = cat_find(t, bkey);
  } else
    for (size_t i = 0; i < t->n_locales && !c; i++)
      if (streq(t->locales[i].name, locale_dir) && !(c = cat_load(t, &t->locales[i], catalogue)))
        return -ENOMEM;
  if (!c || c->r == -ENOENT)
    return -ENOENT;
  if (c->r < 0)
    return c->r;
  for (size_t i = 0; i < catalogue_size(c->c); i++) {
    int r = fn(ud, catalogue_key(c->c, i));
    if (r < 0)
      return r;
  }
  return 0;
}

/* ---- Accept-Language ---------------------------------------------------------------- */

int templates_negotiate(struct templates *t, const char *accept_language, char *out, size_t n) {
  if (!t || !out || n == 0)
    return -EINVAL;
  /* the language ranges with their q (RFC 9110 §12.5.4), best first; ties
   * keep their order */
  struct {
    char tag[MAX_LOCALE + 1];
    int q;
  } ranges[16];
  size_t nr = 0;
  const char *p = accept_language ? accept_language : "";
  while (*p && nr < ELEMENTSOF(ranges)) {
    while (*p == ' ' || *p == ',')
      p++;
    size_t len = strcspn(p, ",;");
    char tag[MAX_LOCALE + 1];
    bool ok = len > 0 && len <= MAX_LOCALE;
    if (ok) {
      memcpy(tag, p, len);
      while (len > 0 && tag[len - 1] == ' ')
        len--;
      tag[len] = 0;
    }
    p += strcspn(p, ",;");
    int q = 1000;
    if (*p == ';') {
      const char *qs = strstr(p, "q=");
      const char *next = p + strcspn(p, ",");
      if (qs && qs < next) {
        double v = strtod(qs + 2, NULL);
        q = v < 0 ? 0 : v > 1 ? 1000 : (int)(v * 1000 + 0.5);
      }
      p = next;
    }
    char norm[MAX_LOCALE + 1];
    if (ok && q > 0 && !streq(tag, "*") && normalize_locale(tag, norm)) {
      size_t k = nr++;
      while (k > 0 && ranges[k - 1].q < q) {
        ranges[k] = ranges[k - 1];
        k--;
      }
      strcpy(ranges[k].tag, norm);
      ranges[k].q = q;
    }
  }
  /* the first range with a locale directory along its own chain (not the
   * default's): "de-AT" finds de/ */
  for (size_t i = 0; i < nr; i++) {
    char norm[MAX_LOCALE + 1];
    strcpy(norm, ranges[i].tag);
    for (;;) {
      for (size_t k = 0; k < t->n_locales; k++)
        if (streq(t->locales[k].norm, norm)) {
          snprintf(out, n, "%s", ranges[i].tag);
          return 0;
        }
      char *dash = strrchr(norm, '-');
      if (!dash)
        break;
      *dash = 0;
    }
  }
  snprintf(out, n, "%s", t->fallback);
  return -ENOENT;
}

/* ---- whole-directory check ----------------------------------------------------------- */

struct check_ctx {
  struct templates *t;
  const struct locale_dir *chain[MAX_CHAIN]; /* chain of the file being checked */
  size_t n_chain;
  const char *key; /* the file being checked (relative) */
  void (*problem)(void *, const char *, unsigned, const char *);
  void *ud;
  int r;
};

static void check_report(struct check_ctx *c, const char *key, unsigned line, const char *msg) {
  _cleanup_free_ char *path = strprintf("%s/%s", c->t->dir, key);
  if (!path) {
    c->r = -ENOMEM; /* sticky: templates_check() returns it */
    return;
  }
  c->problem(c->ud, path, line, msg);
  if (c->r >= 0)
    c->r = -EINVAL;
}

static int check_partial_ref(void *ud, const char *name, unsigned line) {
  struct check_ctx *c = ud;
  struct entry *e = NULL;
  int r = -ENOENT;
  if (valid_name(name))
    r = find(c->t, c->chain, c->n_chain, "partials/", name, ".mustache", &e, NULL);
  if (r == -ENOMEM)
    return r;
  if (r == -ENOENT) {
    _cleanup_free_ char *msg =
        strprintf("partial '%s' not found (looked for partials/%s.mustache in %s%s)", name, name,
                  c->n_chain ? c->chain[0]->name : "-", c->n_chain > 1 ? " and its fallbacks" : "");
    if (!msg)
      return -ENOMEM;
    check_report(c, c->key, line, msg);
  }
  return 0; /* a broken partial is reported as its own file */
}

/* Loads key and reports its problems. */
static int check_file(struct check_ctx *c, const char *key) {
  struct entry *e = load(c->t, key);
  if (!e)
    return -ENOMEM;
  if (e->r < 0) {
    /* e->error is "KEY: line N: message" (syntax) or "KEY: reason" */
    const char *msg = e->error ? e->error : strerror(-e->r);
    size_t kl = strlen(key);
    if (strncmp(msg, key, kl) == 0 && strncmp(msg + kl, ": ", 2) == 0)
      msg += kl + 2;
    unsigned line = 0;
    int used = 0;
    if (sscanf(msg, "line %u: %n", &line, &used) == 1 && used > 0)
      msg += used;
    check_report(c, key, line, msg);
    return 0;
  }
  c->key = key;
  return tmpl_foreach_partial(e->t, check_partial_ref, c);
}

/* Loads catalogue file n (NAME.po) of locale l and reports its problems. */
static int check_catalogue(struct check_ctx *c, const struct locale_dir *l, const char *n) {
  _cleanup_free_ char *name = strndup(n, strlen(n) - 3), *key = strprintf("%s/%s", l->name, n);
  if (!name || !key)
    return -ENOMEM;
  if (!valid_name(name)) {
    check_report(c, key, 0, "not a valid catalogue name (letters, digits, '_', '-', '.')");
    return 0;
  }
  struct cat_entry *e = cat_load(c->t, l, name);
  if (!e)
    return -ENOMEM;
  if (e->r < 0 && e->r != -ENOENT) {
    const char *msg = e->error ? e->error : strerror(-e->r);
    size_t kl = strlen(key);
    unsigned line = 0;
    int used = 0;
    if (strncmp(msg, key, kl) == 0 && strncmp(msg + kl, ": ", 2) == 0)
      msg += kl + 2;
    if (sscanf(msg, "line %u: %n", &line, &used) == 1 && used > 0)
      msg += used;
    check_report(c, key, line, msg);
  }
  return 0;
}

/* Checks every *.mustache (and NAME.po) of DIR/locale/sub ("" or "partials/"). */
static int check_dir(struct check_ctx *c, const struct locale_dir *l, const char *sub) {
  _cleanup_free_ char *path = strprintf("%s/%s/%s", c->t->dir, l->name, sub);
  if (!path)
    return -ENOMEM;
  _cleanup_(closedirp) DIR *d = opendir(path);
  if (!d) {
    if (errno == ENOENT && *sub)
      return 0; /* no partials/ */
    int r = -errno;
    check_report(c, l->name, 0, strerror(-r));
    return r;
  }
  struct dirent *de;
  while ((de = readdir(d))) {
    const char *n = de->d_name;
    size_t len = strlen(n);
    if (!*sub && n[0] != '.' && len > 3 && streq(n + len - 3, ".po")) {
      int r = check_catalogue(c, l, n);
      if (r < 0)
        return r;
      continue;
    }
    if (n[0] == '.' || len <= 9 || !streq(n + len - 9, ".mustache"))
      continue;
    _cleanup_free_ char *key = strprintf("%s/%s%s", l->name, sub, n);
    _cleanup_free_ char *stem = strndup(n, len - 9);
    if (!key || !stem)
      return -ENOMEM;
    /* partials/NAME.mustache, or NAME.PART.mustache */
    char *dot = *sub ? NULL : strrchr(stem, '.');
    if (dot)
      *dot = 0;
    bool ok = *sub ? valid_name(stem) : dot && valid_name(stem) && valid_name(dot + 1);
    if (!ok) {
      check_report(c, key, 0,
                   *sub ? "not a valid partial name (letters, digits, '_', '-', '.')"
                        : "not named NAME.PART.mustache (e.g. notice.text.mustache)");
      continue;
    }
    int r = check_file(c, key);
    if (r < 0)
      return r;
  }
  return 0;
}

int templates_check(struct templates *t,
                    void (*problem)(void *ud, const char *file, unsigned line, const char *msg),
                    void *ud) {
  if (!t || !problem)
    return -EINVAL;
  struct check_ctx c = {.t = t, .problem = problem, .ud = ud};
  for (size_t i = 0; i < t->n_locales; i++) {
    c.n_chain = locale_chain(t, t->locales[i].name, c.chain);
    int r = check_dir(&c, &t->locales[i], "");
    if (r >= 0)
      r = check_dir(&c, &t->locales[i], "partials/");
    if (r < 0)
      return r;
  }
  return c.r;
}
