/* ckpt: the WAL checkpoint thread (see ckpt.h). The thread sleeps on a
 * condition variable with a CKPT_INTERVAL_MS timeout, stats the -wal file and
 * checkpoints when its size or modification time moved; ckpt_free() wakes it
 * for a last checkpoint and joins it. Its struct store is used by this thread
 * only (SQLite connections are not shared between threads here). */
#include "daemon/ckpt.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/store.h"
#include "core/util.h"

struct ckpt {
  struct store *store; /* the thread's own connection; owned */
  char *wal_path;      /* "<store>-wal"; owned */
  pthread_t thread;
  bool started; /* thread is running (join on free) */
  pthread_mutex_t lock;
  pthread_cond_t wake;
  bool stop;               /* under lock: the thread ends after a last checkpoint */
  struct ckpt_stats stats; /* under lock */
  struct timespec seen;    /* the -wal file's mtime at the last look (thread only) */
  off_t seen_size;         /* and its size */
  bool pending;            /* it changed since the last checkpoint (thread only) */
};

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Whether to checkpoint now: the WAL changed since the last checkpoint and
 * has been quiet since the last look, or it is larger than CKPT_MAX_BYTES. A
 * WAL that keeps changing belongs to a long writer (renewctl import, which
 * checkpoints its own WAL); checkpointing under it makes new readers (the
 * loop's) spin in SQLite's WAL retry loop for seconds, measured with
 * bench-loop. */
static bool wal_due(struct ckpt *c) {
  struct stat st;
  if (stat(c->wal_path, &st) < 0)
    return false;
  bool changed = st.st_size != c->seen_size || st.st_mtim.tv_sec != c->seen.tv_sec ||
                 st.st_mtim.tv_nsec != c->seen.tv_nsec;
  c->seen = st.st_mtim;
  c->seen_size = st.st_size;
  if (changed)
    c->pending = true;
  if (!c->pending || (changed && st.st_size < CKPT_MAX_BYTES))
    return false;
  c->pending = false;
  return true;
}

static void checkpoint(struct ckpt *c) {
  int64_t t0 = mono_us();
  int nlog = 0, copied = 0;
  int r = store_checkpoint(c->store, &nlog, &copied);
  int64_t us = mono_us() - t0;
  pthread_mutex_lock(&c->lock);
  if (r < 0) {
    c->stats.failures++;
    c->stats.last_error = r;
  } else {
    c->stats.checkpoints++;
    c->stats.frames += (uint64_t)MAX(copied, 0);
    c->stats.last_us = us;
    c->stats.max_us = MAX(c->stats.max_us, us);
  }
  pthread_mutex_unlock(&c->lock);
}

static void *run(void *ud) {
  struct ckpt *c = ud;
  pthread_mutex_lock(&c->lock);
  while (!c->stop) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += (long)CKPT_INTERVAL_MS * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&c->wake, &c->lock, &until);
    bool stop = c->stop;
    pthread_mutex_unlock(&c->lock);
    if (wal_due(c) || stop)
      checkpoint(c);
    pthread_mutex_lock(&c->lock);
  }
  pthread_mutex_unlock(&c->lock);
  return NULL;
}

struct ckpt *ckpt_free(struct ckpt *c) {
  if (!c)
    return NULL;
  if (c->started) {
    pthread_mutex_lock(&c->lock);
    c->stop = true;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
  }
  pthread_cond_destroy(&c->wake);
  pthread_mutex_destroy(&c->lock);
  store_free(c->store);
  free(c->wal_path);
  free(c);
  return NULL;
}

int ckpt_new(const char *path, struct ckpt **ret) {
  if (isempty(path) || !ret)
    return -EINVAL;
  struct ckpt *c = calloc(1, sizeof *c);
  if (!c)
    return -ENOMEM;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&c->wake, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&c->lock, NULL);
  int r = (c->wal_path = strprintf("%s-wal", path)) ? 0 : -ENOMEM;
  if (r >= 0)
    r = store_open(path, STORE_NO_CREATE, &c->store, NULL, 0);
  /* a checkpoint never waits: PASSIVE skips what readers still use */
  if (r >= 0)
    r = store_set_busy_timeout(c->store, 0);
  if (r >= 0) {
    /* the thread takes no signals: the loop's signalfd handles them */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int k = pthread_create(&c->thread, NULL, run, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    r = k == 0 ? 0 : -k;
    c->started = k == 0;
  }
  if (r < 0) {
    ckpt_free(c);
    return r;
  }
  *ret = c;
  return 0;
}

void ckpt_stats(struct ckpt *c, struct ckpt_stats *ret) {
  if (!c) {
    *ret = (struct ckpt_stats){0};
    return;
  }
  pthread_mutex_lock(&c->lock);
  *ret = c->stats;
  pthread_mutex_unlock(&c->lock);
}
