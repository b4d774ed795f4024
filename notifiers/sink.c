/* sink: Type=sink, writes every message as an RFC 5322 file into a Maildir.
 *
 *   [Channel sink]
 *   Type=sink
 *   Maildir=/var/lib/renewd/maildir   (required; tmp/ new/ cur/ are created)
 *   From=renewd <renewd@example.com>  (optional; default RENDER_DEFAULT_FROM)
 *   Sync=yes                          (no: skip syncfs/fsync, for demos on busy disks;
 *                                     a crash may then lose messages already marked sent)
 *
 * Each message is written to tmp/<unique>; flush() (called by the dispatcher
 * before it commits the batch's results) makes the batch durable with one
 * syncfs(), renames the files into new/ and fsync()s the directory: the
 * Maildir protocol, so a reader never sees half a message and a crash never
 * loses one whose row was committed as sent (a crash before the flush leaves
 * files in tmp/, which readers ignore, and rows in 'sending', which are sent
 * again). Email rows get the
 * full email (multipart/alternative when the template has HTML); SMS rows
 * (the recipient is a phone number, e.g. a fallback channel) the SMS text;
 * webhook rows the event JSON. Synchronous: completes inside send().
 *
 * Owns: the open Maildir directory descriptors. Blocks on file I/O. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "notifiers/notifier.h"
#include "notifiers/render.h"

struct sink {
  char *path;      /* Maildir= */
  char *from;      /* From= or NULL */
  int tmp_fd;      /* tmp/ */
  int new_fd;      /* new/ */
  unsigned serial; /* unique names within this process */
  bool sync;       /* Sync=: make batches durable before they count as sent */
  char **pending;  /* names written to tmp/ since the last flush */
  size_t n_pending, cap_pending;
};

static const char *const sink_known[] = {"Maildir", "From", "Sync", NULL};
static const char *const sink_required[] = {"Maildir", NULL};

static int sink_check_config(const struct config_channel *ch, const struct notify_env *env,
                             struct config_errors *errs) {
  int r = notify_check_keys(ch, sink_known, sink_required, errs);
  const struct config_kv *kv = config_channel_lookup(ch, "Maildir");
  if (kv && kv->value[0] != '/')
    r = notify_error(errs, ch, kv, "must be an absolute path");
  if ((kv = config_channel_lookup(ch, "Sync")) && parse_boolean(kv->value) < 0)
    r = notify_error(errs, ch, kv, "expected yes or no");
  if ((kv = config_channel_lookup(ch, "From")) && !render_from_valid(kv->value))
    r = notify_error(errs, ch, kv, "expected an address, e.g. \"Renewals <renewals@example.com>\"");
  return r;
}

static int mkdir_p(const char *path) {
  _cleanup_free_ char *p = strdup(path);
  if (!p)
    return -ENOMEM;
  for (char *s = p + 1; *s; s++) {
    if (*s != '/')
      continue;
    *s = 0;
    if (mkdir(p, 0750) < 0 && errno != EEXIST)
      return -errno;
    *s = '/';
  }
  if (mkdir(p, 0750) < 0 && errno != EEXIST)
    return -errno;
  return 0;
}

static void *sink_free(void *state) {
  struct sink *s = state;
  if (!s)
    return NULL;
  if (s->tmp_fd >= 0)
    close(s->tmp_fd);
  if (s->new_fd >= 0)
    close(s->new_fd);
  for (size_t i = 0; i < s->n_pending; i++)
    free(s->pending[i]);
  free(s->pending);
  free(s->path);
  free(s->from);
  free(s);
  return NULL;
}

static int sink_new(const struct config_channel *ch, const struct notify_env *env, void **ret,
                    struct config_errors *errs) {
  const struct config_kv *kv = config_channel_lookup(ch, "Maildir");
  if (!kv)
    return notify_error(errs, ch, NULL, "Maildir= is required");
  struct sink *s = calloc(1, sizeof *s);
  if (!s)
    return -ENOMEM;
  s->tmp_fd = s->new_fd = -1;
  s->path = strdup(kv->value);
  s->from = strdup_or_null(config_channel_get(ch, "From"));
  const char *sync = config_channel_get(ch, "Sync");
  s->sync = !sync || parse_boolean(sync) != 0;
  if (!s->path) {
    sink_free(s);
    return -ENOMEM;
  }
  static const char *const sub[] = {"tmp", "new", "cur"};
  for (size_t i = 0; i < ELEMENTSOF(sub); i++) {
    _cleanup_free_ char *d = strprintf("%s/%s", s->path, sub[i]);
    int r = d ? mkdir_p(d) : -ENOMEM;
    if (r < 0) {
      notify_error(errs, ch, kv, "cannot create %s: %s", d ? d : s->path, strerror(-r));
      sink_free(s);
      return r;
    }
  }
  _cleanup_free_ char *t = strprintf("%s/tmp", s->path), *n = strprintf("%s/new", s->path);
  if (!t || !n) {
    sink_free(s);
    return -ENOMEM;
  }
  s->tmp_fd = open(t, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  s->new_fd = open(n, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (s->tmp_fd < 0 || s->new_fd < 0) {
    int r = -errno;
    notify_error(errs, ch, kv, "cannot open %s: %s", s->path, strerror(errno));
    sink_free(s);
    return r;
  }
  *ret = s;
  return 0;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t k = write(fd, p, n);
    if (k < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

static int sink_send(void *state, const struct notify_request *req, struct notify_result *res) {
  struct sink *s = state;
  _cleanup_free_ char *text = NULL;
  int r = render_rfc5322(req->msg, req->row, req->kind, s->from, NULL, req->now, &text);
  if (r < 0) {
    res->status = NOTIFY_PERMANENT;
    snprintf(res->error, sizeof res->error, "cannot format the message: %s", strerror(-r));
    return r;
  }
  char name[128];
  snprintf(name, sizeof name, "%lld.R%lldA%dP%dQ%u.renewd", (long long)req->now,
           (long long)req->row->id, req->row->attempts, (int)getpid(), ++s->serial);
  int fd = openat(s->tmp_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd < 0) {
    r = -errno;
    goto io_fail;
  }
  r = write_all(fd, text, strlen(text));
  if (close(fd) < 0 && r >= 0)
    r = -errno;
  if (r >= 0 && s->n_pending == s->cap_pending) {
    size_t cap = s->cap_pending ? s->cap_pending * 2 : 64;
    char **v = realloc(s->pending, cap * sizeof *v);
    if (v) {
      s->pending = v;
      s->cap_pending = cap;
    } else
      r = -ENOMEM;
  }
  if (r >= 0 && !(s->pending[s->n_pending] = strdup(name)))
    r = -ENOMEM;
  if (r < 0) {
    unlinkat(s->tmp_fd, name, 0);
    goto io_fail;
  }
  s->n_pending++;
  res->status = NOTIFY_SENT;
  snprintf(res->provider_id, sizeof res->provider_id, "%s", name);
  return 0;
io_fail:
  /* a full disk or a permission problem may be fixed: retry */
  res->status = NOTIFY_TRANSIENT;
  snprintf(res->error, sizeof res->error, "Maildir %s: %s", s->path, strerror(-r));
  return r;
}

static int sink_flush(void *state, char *err, size_t errlen) {
  struct sink *s = state;
  int r = 0;
  if (s->n_pending == 0)
    return 0;
  if (s->sync && syncfs(s->tmp_fd) < 0)
    r = -errno;
  for (size_t i = 0; i < s->n_pending; i++) {
    if (r >= 0 && renameat(s->tmp_fd, s->pending[i], s->new_fd, s->pending[i]) < 0)
      r = -errno;
    if (r < 0)
      unlinkat(s->tmp_fd, s->pending[i], 0);
    free(s->pending[i]);
  }
  s->n_pending = 0;
  if (r >= 0 && s->sync && fsync(s->new_fd) < 0)
    r = -errno;
  if (r < 0)
    snprintf(err, errlen, "Maildir %s: %s", s->path, strerror(-r));
  return r;
}

const struct notifier_ops notifier_sink_ops = {
    .type = "sink",
    .kind = NOTIFY_EMAIL,
    .check_config = sink_check_config,
    .new = sink_new,
    .free = sink_free,
    .send = sink_send,
    .flush = sink_flush,
};
