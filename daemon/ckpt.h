/* ckpt: the WAL checkpoint thread. renewd's loop connection never
 * checkpoints on commit (wal_autocheckpoint=0): a copy of the WAL back into
 * the database can take longer than a loop iteration may (a large commit, an
 * import's WAL). Instead this thread, with its own connection to the same
 * file, runs a PASSIVE checkpoint (never waits for readers or writers, never
 * blocks them) once the -wal file changed and then stayed quiet for one
 * CKPT_INTERVAL_MS look (or grew past CKPT_MAX_BYTES while changing).
 *
 * Owns the thread, its store connection, a mutex and a condition variable.
 * The figures (ckpt_stats()) are read by the loop thread under the mutex.
 * Never logs (the daemon exports the figures in /metrics). */
#pragma once

#include <stdint.h>

#define CKPT_INTERVAL_MS 500
#define CKPT_MAX_BYTES (256 * 1024 * 1024)

struct ckpt;

struct ckpt_stats {
  uint64_t checkpoints; /* PASSIVE checkpoints that ran */
  uint64_t frames;      /* WAL frames copied into the database, in total */
  uint64_t failures;    /* checkpoints that failed (locked, I/O) */
  int64_t last_us;      /* duration of the last checkpoint */
  int64_t max_us;       /* the longest one */
  int last_error;       /* -errno of the last failure, 0 = none */
};

/* Opens a connection to the store at path and starts the thread. Caller
 * frees with ckpt_free(). 0 or -errno. */
int ckpt_new(const char *path, struct ckpt **ret);
/* Stops the thread (after one last checkpoint) and closes its connection.
 * Accepts NULL; returns NULL. */
struct ckpt *ckpt_free(struct ckpt *c);
/* A copy of the figures. c may be NULL (all zero). */
void ckpt_stats(struct ckpt *c, struct ckpt_stats *ret);
