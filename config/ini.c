/* ini: the INI reader behind config (see ini.h). Pure; owns its strings. */
#include "config/ini.h"

#include <ctype.h>

#include "core/util.h"

void ini_done(struct ini *ini) {
  if (!ini)
    return;
  for (size_t i = 0; i < ini->n_sections; i++) {
    struct ini_section *s = &ini->sections[i];
    for (size_t j = 0; j < s->n_entries; j++) {
      free(s->entries[j].key);
      free(s->entries[j].value);
    }
    free(s->entries);
    free(s->type);
    free(s->name);
  }
  free(ini->sections);
  for (size_t i = 0; i < ini->n_files; i++)
    free(ini->files[i]);
  free(ini->files);
  *ini = (struct ini){0};
}

const char *ini_add_file(struct ini *ini, const char *name) {
  for (size_t i = 0; i < ini->n_files; i++)
    if (streq(ini->files[i], name))
      return ini->files[i];
  char **f = realloc(ini->files, (ini->n_files + 1) * sizeof(char *));
  if (!f)
    return NULL;
  ini->files = f;
  if (!(f[ini->n_files] = strdup(name)))
    return NULL;
  return f[ini->n_files++];
}

static bool is_blank(char c) {
  return c == ' ' || c == '\t';
}

/* Trims blanks on both ends of [*b, *e). */
static void trim(const char **b, const char **e) {
  while (*b < *e && is_blank(**b))
    (*b)++;
  while (*e > *b && is_blank((*e)[-1]))
    (*e)--;
}

static bool valid_key(const char *b, const char *e) {
  if (b == e || !isalpha((unsigned char)*b))
    return false;
  for (const char *p = b; p < e; p++)
    if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
      return false;
  return true;
}

/* The section (type, name), created at file:line when new. NULL on OOM. */
static struct ini_section *get_section(struct ini *ini, const char *type, size_t tlen,
                                       const char *name, size_t nlen, const char *file,
                                       unsigned line) {
  for (size_t i = 0; i < ini->n_sections; i++) {
    struct ini_section *s = &ini->sections[i];
    if (strlen(s->type) == tlen && memcmp(s->type, type, tlen) == 0 &&
        (name ? s->name && strlen(s->name) == nlen && memcmp(s->name, name, nlen) == 0 : !s->name))
      return s;
  }
  if (ini->n_sections == ini->cap) {
    size_t nc = ini->cap ? ini->cap * 2 : 16;
    struct ini_section *v = realloc(ini->sections, nc * sizeof *v);
    if (!v)
      return NULL;
    ini->sections = v;
    ini->cap = nc;
  }
  struct ini_section *s = &ini->sections[ini->n_sections];
  *s = (struct ini_section){.file = file, .line = line};
  s->type = strndup(type, tlen);
  s->name = name ? strndup(name, nlen) : NULL;
  if (!s->type || (name && !s->name)) {
    free(s->type);
    free(s->name);
    return NULL;
  }
  ini->n_sections++;
  return s;
}

static int add_entry(struct ini *ini, struct ini_section *s, const char *k, size_t klen,
                     const char *v, size_t vlen, const char *file, unsigned line) {
  if (s->n_entries == s->cap) {
    size_t nc = s->cap ? s->cap * 2 : 8;
    struct ini_entry *n = realloc(s->entries, nc * sizeof *n);
    if (!n)
      return -ENOMEM;
    s->entries = n;
    s->cap = nc;
  }
  struct ini_entry *e = &s->entries[s->n_entries];
  *e = (struct ini_entry){.file = file, .line = line, .seq = ini->seq};
  e->key = strndup(k, klen);
  e->value = strndup(v, vlen);
  if (!e->key || !e->value) {
    free(e->key);
    free(e->value);
    return -ENOMEM;
  }
  ini->seq++;
  s->n_entries++;
  return 0;
}

int ini_parse(struct ini *ini, const char *name, const char *text, struct config_errors *errs) {
  const char *file = ini_add_file(ini, name);
  if (!file)
    return -ENOMEM;
  if (strncmp(text, "\xef\xbb\xbf", 3) == 0)
    text += 3;
  struct ini_section *cur = NULL;
  bool skipping = false; /* inside a section whose header was invalid */
  unsigned line = 0;
  int r = 0;
  for (const char *p = text; *p && r >= 0;) {
    const char *nl = strchrnul(p, '\n');
    const char *b = p, *e = nl;
    p = *nl ? nl + 1 : nl;
    line++;
    if (e > b && e[-1] == '\r')
      e--;
    trim(&b, &e);
    if (b == e || *b == '#' || *b == ';')
      continue;
    int len = (int)(e - b);
    if (*b == '[') {
      const char *ib = b + 1, *ie = e - 1;
      if (e[-1] != ']' || ie <= ib) {
        r = config_errors_add(errs, file, line,
                              "invalid section header \"%.*s\", expected [Type] or [Type NAME]",
                              len, b);
        cur = NULL, skipping = true;
        continue;
      }
      trim(&ib, &ie);
      const char *te = ib;
      while (te < ie && !is_blank(*te))
        te++;
      const char *nb = te, *ne = ie;
      trim(&nb, &ne);
      if (!valid_key(ib, te) || memchr(ib, '[', (size_t)(ie - ib)) ||
          memchr(ib, ']', (size_t)(ie - ib))) {
        r = config_errors_add(errs, file, line,
                              "invalid section header \"%.*s\", expected [Type] or [Type NAME]",
                              len, b);
        cur = NULL, skipping = true;
        continue;
      }
      cur = get_section(ini, ib, (size_t)(te - ib), nb < ne ? nb : NULL, (size_t)(ne - nb), file,
                        line);
      if (!cur)
        return -ENOMEM;
      skipping = false;
      continue;
    }
    const char *eq = memchr(b, '=', (size_t)(e - b));
    if (!eq) {
      r = config_errors_add(errs, file, line, "expected [Section] or Key=Value, got \"%.*s\"", len,
                            b);
      continue;
    }
    const char *kb = b, *ke = eq, *vb = eq + 1, *ve = e;
    trim(&kb, &ke);
    trim(&vb, &ve);
    if (!valid_key(kb, ke)) {
      r = config_errors_add(errs, file, line, "invalid key \"%.*s\"", (int)(ke - kb), kb);
      continue;
    }
    if (skipping)
      continue;
    if (!cur) {
      r = config_errors_add(errs, file, line, "%.*s= outside of any section", (int)(ke - kb), kb);
      continue;
    }
    r = add_entry(ini, cur, kb, (size_t)(ke - kb), vb, (size_t)(ve - vb), file, line);
  }
  return r < 0 ? r : 0;
}

const struct ini_entry *ini_last(const struct ini_section *s, const char *key) {
  for (size_t i = s->n_entries; i > 0; i--)
    if (streq(s->entries[i - 1].key, key))
      return &s->entries[i - 1];
  return NULL;
}
