/* storetmp: a throw-away store file for unit tests.
 *
 * store_tmp_make() creates a fresh directory /tmp/renewd-test-NAME-XXXXXX
 * (mkdtemp) and names the database file in it, DIR/renewd.db, without
 * creating it; store_tmp_open() also opens (and so creates) that store.
 * store_tmp_remove() deletes the database with its SQLite side files (-wal,
 * -shm, -journal) and the directory; the caller closes every connection to it
 * first and deletes any other file it put there itself.
 *
 * Failures fail the running cmocka test (setup and teardown included): a test
 * that cannot get its directory has nothing to test. Test code only. */
#pragma once

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <unistd.h>

#include "core/store.h"
#include "core/util.h"

struct store_tmp {
  char dir[64];   /* the mkdtemp() directory */
  char path[128]; /* dir/renewd.db */
};

/* Fills t with a new empty directory for test NAME and the database path in it. */
static inline void store_tmp_make(struct store_tmp *t, const char *name) {
  assert_true((size_t)snprintf(t->dir, sizeof t->dir, "/tmp/renewd-test-%s-XXXXXX", name) <
              sizeof t->dir);
  assert_non_null(mkdtemp(t->dir));
  snprintf(t->path, sizeof t->path, "%s/renewd.db", t->dir);
}

/* store_tmp_make(), then store_open(path, 0) into *ret (caller frees with store_free). */
static inline void store_tmp_open(struct store_tmp *t, const char *name, struct store **ret) {
  store_tmp_make(t, name);
  char err[256];
  assert_int_equal(store_open(t->path, 0, ret, err, sizeof err), 0);
}

/* Deletes the database file, its side files and the (then empty) directory. */
static inline void store_tmp_remove(struct store_tmp *t) {
  static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
  for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
    char p[160];
    snprintf(p, sizeof p, "%s%s", t->path, suffixes[i]);
    unlink(p);
  }
  assert_int_equal(rmdir(t->dir), 0);
}
