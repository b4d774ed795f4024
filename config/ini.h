/* ini: the INI reader behind config (internal to the config module).
 *
 * Turns the text of one or more files into sections of assignments, merging
 * sections of the same type and name across files in the order they are
 * parsed. It knows nothing of renewd's sections or keys: config.c gives them
 * meaning. Syntax: "[Type]" or "[Type NAME]" headers; "Key=Value" assignments
 * (whitespace around key and value trimmed); lines whose first non-blank
 * character is '#' or ';' are comments; blank lines are ignored; a UTF-8 BOM
 * and CR before LF are tolerated. No continuation lines, no quoting, no inline
 * comments.
 *
 * Owns: every string it allocates (file names, keys, values). Pure: no I/O.
 * Invariant: entries of a section are in parse order; each entry has a
 * sequence number unique and increasing across the whole struct ini. */
#pragma once

#include <stddef.h>

#include "config/config.h"

struct ini_entry {
  char *key;        /* owned */
  char *value;      /* owned, trimmed; "" for an empty assignment (a reset) */
  const char *file; /* points into ini.files */
  unsigned line;    /* 1-based */
  unsigned seq;     /* parse order across all files */
};

struct ini_section {
  char *type;       /* "Policy"; owned */
  char *name;       /* "standard", or NULL for "[Daemon]"; owned */
  const char *file; /* first header; points into ini.files */
  unsigned line;
  struct ini_entry *entries; /* owned, in parse order */
  size_t n_entries;
  size_t cap;
};

struct ini {
  char **files; /* names of the files parsed, in order; owned */
  size_t n_files;
  struct ini_section *sections; /* in order of first header */
  size_t n_sections;
  size_t cap;
  unsigned seq; /* next entry sequence number */
};

/* Frees everything ini owns and zeroes it. */
void ini_done(struct ini *ini);
/* Records file name in ini->files (even for a file that could not be read,
 * so errors in it sort correctly) and returns the stored copy, or NULL on OOM. */
const char *ini_add_file(struct ini *ini, const char *name);
/* Parses text as the file called name (already added with ini_add_file() or
 * added now) into ini. Syntax errors are appended to errs as "name:line:
 * message" and parsing goes on. Returns 0 or -ENOMEM. */
int ini_parse(struct ini *ini, const char *name, const char *text, struct config_errors *errs);
/* The last assignment of key in s (possibly an empty one), or NULL. */
const struct ini_entry *ini_last(const struct ini_section *s, const char *key);
