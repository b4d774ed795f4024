/* sink: Type=sink, writes every message to local files instead of sending it:
 * email as the SMTP backend would send it, SMS as the text the provider
 * would get, webhooks as the HTTP request.
 *
 *   [Channel sink]
 *   Type=sink
 *   Maildir=/var/lib/renewd/maildir   (required; tmp/ new/ cur/ are created)
 *   Kind=email                        (what the sink stands in for: email, sms
 *                                     or webhook; decides which address the
 *                                     scheduler records: email, phone, URL=)
 *   From=Example Renewals <renewals@example.com>
 *   ReplyTo=renewals@example.com      (email: as for Type=smtp; From= defaults
 *   Calendar=yes                       to MAIL_DEFAULT_FROM; for Kind=sms From=
 *   CalendarAlarm=-P1D                 is the sender number, written as is)
 *   OptOutFooter=Reply STOP to opt out (SMS: appended to customer texts, as
 *                                     Type=sms does)
 *   URL=https://crm.example.com/hook  (Kind=webhook: where customer rows would go)
 *   SMSDir=/var/lib/renewd/sms        (default: "sms" beside the Maildir)
 *   WebhookDir=/var/lib/renewd/webhooks (default: "webhooks" beside the Maildir)
 *   Sync=yes                          (no: skip syncfs/fsync, for demos on busy disks;
 *                                     a crash may then lose messages already marked sent)
 *
 * What a row becomes depends on its recipient (notify_kind_of_recipient()):
 *   email address  a Maildir message, mail_format()'s bytes: the same
 *                  builder, headers and calendar part as Type=smtp;
 *   +E.164 number  SMSDir/<time>-R<id>-<contract>.txt: "To:", "From:" (when
 *                  set) and "Segments:" lines, a blank line, the text;
 *   http(s) URL    WebhookDir/<time>-R<id>-<contract>.http: the request line,
 *                  the headers the webhook backend sends (unsigned: a sink
 *                  has no secrets), a blank line and the JSON body.
 * Each file is written under a temporary name (Maildir tmp/, a dot name in
 * the other folders); flush() (called by the dispatcher before it commits
 * the batch's results) makes the batch durable with one syncfs(), renames
 * the files into place and fsync()s the folders: a reader never sees half a
 * file and a crash never loses one whose row was committed as sent (a crash
 * before the flush leaves temporary files, which readers ignore, and rows in
 * 'sending', which are sent again). Synchronous: completes inside send().
 *
 * Owns: the open directory descriptors. Blocks on file I/O. */
#include <ctype.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "notifiers/mail.h"
#include "notifiers/notifier.h"
#include "notifiers/render.h"
#include "notifiers/sink.h"
#include "notifiers/smstext.h"

enum { DIR_MAIL, DIR_SMS, DIR_WEBHOOK, _DIR_MAX };

/* A file written under a temporary name, renamed into place by flush(). */
struct pending {
  int dir;    /* DIR_* */
  char *tmp;  /* temporary name (relative to tmp_fd for mail, dir_fd otherwise) */
  char *name; /* final name */
};

/* What the files say beyond the message. Strings owned. */
struct sink_settings {
  struct mail_settings mail; /* From=, ReplyTo=, Calendar=, CalendarAlarm= */
  char *sms_from;            /* From= as written (the SMS sender) */
  char *footer;              /* OptOutFooter= or NULL */
};

struct sink {
  char *path;               /* Maildir= */
  char *dirs[_DIR_MAX];     /* Maildir new/, SMSDir=, WebhookDir= */
  int dir_fd[_DIR_MAX];     /* open descriptors of dirs[] (-1 until first use) */
  int tmp_fd;               /* Maildir tmp/ */
  struct sink_settings set; /* how messages are formatted */
  unsigned serial;          /* unique names within this process */
  bool sync;                /* Sync=: make batches durable before they count as sent */
  struct pending *pending;  /* files written since the last flush */
  size_t n_pending, cap_pending;
};

static const char *const sink_known[] = {"Maildir",  "Kind",          "From",         "ReplyTo",
                                         "Calendar", "CalendarAlarm", "OptOutFooter", "URL",
                                         "SMSDir",   "WebhookDir",    "Sync",         NULL};
static const char *const sink_required[] = {"Maildir", NULL};

/* The kind of address the scheduler records for this channel (Kind=). */
static enum notify_kind sink_channel_kind(const struct config_channel *ch) {
  const char *kind = config_channel_get(ch, "Kind");
  return streq_ptr(kind, "sms")       ? NOTIFY_SMS
         : streq_ptr(kind, "webhook") ? NOTIFY_WEBHOOK
                                      : NOTIFY_EMAIL;
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

static void pending_done(struct pending *p) {
  free(p->tmp);
  free(p->name);
  *p = (struct pending){0};
}

static void settings_done(struct sink_settings *set) {
  mail_settings_done(&set->mail);
  free(set->sms_from);
  free(set->footer);
  *set = (struct sink_settings){0};
}

/* Parses the formatting keys of ch into *ret (zeroed first). 0, -EINVAL
 * (errors in errs) or -ENOMEM. */
static int settings_parse(const struct config_channel *ch, struct sink_settings *ret,
                          struct config_errors *errs) {
  struct sink_settings set = {0};
  int r = 0;
  if (!(set.sms_from = strdup_or_null(config_channel_get(ch, "From"))) &&
      config_channel_get(ch, "From"))
    r = -ENOMEM;
  if (!(set.footer = strdup_or_null(config_channel_get(ch, "OptOutFooter"))) &&
      config_channel_get(ch, "OptOutFooter"))
    r = -ENOMEM;
  /* Kind=sms: From= is the sender number, the mail of a stray row is MAIL_DEFAULT_FROM's */
  if (r >= 0)
    r = mail_settings_parse(sink_channel_kind(ch) == NOTIFY_SMS
                                ? &(struct config_channel){.name = ch->name, .type = ch->type}
                                : ch,
                            MAIL_DEFAULT_FROM, &set.mail, errs);
  if (r < 0) {
    settings_done(&set);
    return r;
  }
  *ret = set;
  return 0;
}

static int sink_check_config(const struct config_channel *ch, const struct notify_env *env,
                             struct config_errors *errs) {
  int r = notify_check_keys(ch, sink_known, sink_required, errs);
  const struct config_kv *kv = config_channel_lookup(ch, "Maildir");
  if (kv && kv->value[0] != '/')
    r = notify_error(errs, ch, kv, "must be an absolute path");
  static const char *const dirs[] = {"SMSDir", "WebhookDir"};
  for (size_t i = 0; i < ELEMENTSOF(dirs); i++)
    if ((kv = config_channel_lookup(ch, dirs[i])) && kv->value[0] != '/')
      r = notify_error(errs, ch, kv, "must be an absolute path");
  if ((kv = config_channel_lookup(ch, "Sync")) && parse_boolean(kv->value) < 0)
    r = notify_error(errs, ch, kv, "expected yes or no");
  const char *kind = config_channel_get(ch, "Kind");
  if (kind && !streq(kind, "email") && !streq(kind, "sms") && !streq(kind, "webhook"))
    r = notify_error(errs, ch, config_channel_lookup(ch, "Kind"), "expected email, sms or webhook");
  struct sink_settings set;
  int q = settings_parse(ch, &set, errs);
  if (q < 0)
    r = q;
  else
    settings_done(&set);
  return r;
}

static void *sink_free(void *state) {
  struct sink *s = state;
  if (!s)
    return NULL;
  if (s->tmp_fd >= 0)
    close(s->tmp_fd);
  for (size_t i = 0; i < _DIR_MAX; i++) {
    if (s->dir_fd[i] >= 0)
      close(s->dir_fd[i]);
    free(s->dirs[i]);
  }
  for (size_t i = 0; i < s->n_pending; i++)
    pending_done(&s->pending[i]);
  free(s->pending);
  free(s->path);
  settings_done(&s->set);
  free(s);
  return NULL;
}

/* dir/../leaf of the Maildir, e.g. /x/demo/maildir → /x/demo/sms. */
static char *beside(const char *maildir, const char *leaf) {
  _cleanup_free_ char *copy = strdup(maildir);
  return copy ? strprintf("%s/%s", dirname(copy), leaf) : NULL;
}

/* Creates and opens dirs[i] (SMS and webhook folders only on first use, so
 * an email-only sink leaves no empty folders). */
static int open_dir(struct sink *s, int i) {
  if (s->dir_fd[i] >= 0)
    return 0;
  int r = mkdir_p(s->dirs[i]);
  if (r < 0)
    return r;
  s->dir_fd[i] = open(s->dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  return s->dir_fd[i] < 0 ? -errno : 0;
}

static int sink_new(const struct config_channel *ch, const struct notify_env *env, void **ret,
                    struct config_errors *errs) {
  const struct config_kv *kv = config_channel_lookup(ch, "Maildir");
  if (!kv)
    return notify_error(errs, ch, NULL, "Maildir= is required");
  struct sink *s = calloc(1, sizeof *s);
  if (!s)
    return -ENOMEM;
  s->tmp_fd = -1;
  for (size_t i = 0; i < _DIR_MAX; i++)
    s->dir_fd[i] = -1;
  const char *sync = config_channel_get(ch, "Sync");
  s->sync = !sync || parse_boolean(sync) != 0;
  const char *sms_dir = config_channel_get(ch, "SMSDir"),
             *hook_dir = config_channel_get(ch, "WebhookDir");
  s->path = strdup(kv->value);
  s->dirs[DIR_MAIL] = strprintf("%s/new", kv->value);
  s->dirs[DIR_SMS] = sms_dir ? strdup(sms_dir) : beside(kv->value, "sms");
  s->dirs[DIR_WEBHOOK] = hook_dir ? strdup(hook_dir) : beside(kv->value, "webhooks");
  int r = 0;
  if (!s->path || !s->dirs[DIR_MAIL] || !s->dirs[DIR_SMS] || !s->dirs[DIR_WEBHOOK])
    r = -ENOMEM;
  if (r >= 0)
    r = settings_parse(ch, &s->set, errs);
  if (r < 0) {
    sink_free(s);
    return r;
  }
  static const char *const sub[] = {"tmp", "new", "cur"};
  for (size_t i = 0; i < ELEMENTSOF(sub); i++) {
    _cleanup_free_ char *d = strprintf("%s/%s", s->path, sub[i]);
    r = d ? mkdir_p(d) : -ENOMEM;
    if (r < 0) {
      notify_error(errs, ch, kv, "cannot create %s: %s", d ? d : s->path, strerror(-r));
      sink_free(s);
      return r;
    }
  }
  _cleanup_free_ char *t = strprintf("%s/tmp", s->path);
  if (!t) {
    sink_free(s);
    return -ENOMEM;
  }
  s->tmp_fd = open(t, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (s->tmp_fd < 0 || (r = open_dir(s, DIR_MAIL)) < 0) {
    r = s->tmp_fd < 0 ? -errno : r;
    notify_error(errs, ch, kv, "cannot open %s: %s", s->path, strerror(-r));
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

/* The SMS file: the number, the sender, the segment count and the text. */
static int format_sms(const struct sink_settings *s, const struct notify_request *req,
                      struct buf *b) {
  _cleanup_free_ char *text = message_sms_text(req->msg, s->footer);
  struct smstext_info info = {0};
  if (!text)
    return -ENOMEM;
  if (smstext_segments(text, &info) < 0)
    return -EINVAL;
  int r = buf_printf(b, "To: %s\n", req->row->recipient);
  if (r >= 0 && !isempty(s->sms_from))
    r = buf_printf(b, "From: %s\n", s->sms_from);
  if (r >= 0)
    r = buf_printf(b, "Segments: %zu (%s, %zu characters)\n\n%s\n", info.segments,
                   smstext_encoding_to_string(info.encoding), info.chars, text);
  return r;
}

/* The webhook file: the request the webhook backend would make, unsigned. */
static int format_webhook(const struct notify_request *req, struct buf *b) {
  const char *body = req->msg->event ? req->msg->event : "{}";
  return buf_printf(b,
                    "POST %s HTTP/1.1\r\n"
                    "Content-Type: application/json\r\n"
                    "webhook-id: %s\r\n"
                    "webhook-timestamp: %lld\r\n"
                    "Content-Length: %zu\r\n"
                    "\r\n"
                    "%s\n",
                    req->row->recipient, req->row->idem_key, (long long)req->now, strlen(body),
                    body);
}

/* The final file name of an SMS or webhook row: sortable by time, then the
 * row, then the contract (in characters safe in any file name). */
static char *file_name(const struct notify_request *req, const char *ext) {
  char when[32], cid[64];
  time_t t = (time_t)req->now;
  struct tm tm;
  if (!gmtime_r(&t, &tm) || strftime(when, sizeof when, "%Y%m%dT%H%M%SZ", &tm) == 0)
    snprintf(when, sizeof when, "%lld", (long long)req->now);
  size_t k = 0;
  for (const char *p = req->row->contract_id; p && *p && k + 1 < sizeof cid; p++)
    cid[k++] = isalnum((unsigned char)*p) || strchr("._-", *p) ? *p : '_';
  cid[k] = 0;
  return strprintf("%s-R%lld-%s.%s", when, (long long)req->row->id, cid, ext);
}

static int add_pending(struct sink *s, int dir, char *tmp, char *name) {
  if (s->n_pending == s->cap_pending) {
    size_t cap = s->cap_pending ? s->cap_pending * 2 : 64;
    struct pending *v = realloc(s->pending, cap * sizeof *v);
    if (!v)
      return -ENOMEM;
    s->pending = v;
    s->cap_pending = cap;
  }
  s->pending[s->n_pending++] = (struct pending){.dir = dir, .tmp = tmp, .name = name};
  return 0;
}

/* The bytes of the file req's row becomes (see the header). *ret is heap,
 * *ret_len its length. 0, -EINVAL (message in err) or -ENOMEM. */
static int format_row(const struct sink_settings *set, const struct notify_request *req, char **ret,
                      size_t *ret_len, char *err, size_t errlen) {
  enum notify_kind kind = notify_kind_of_recipient(req->row->recipient);
  if (kind == NOTIFY_EMAIL)
    return mail_format(&set->mail, req, ret, ret_len, err, errlen);
  struct buf b = {0};
  int r = kind == NOTIFY_SMS ? format_sms(set, req, &b) : format_webhook(req, &b);
  if (r < 0) {
    buf_free(&b);
    if (r == -EINVAL)
      snprintf(err, errlen, "the SMS text is not valid UTF-8");
    return r;
  }
  size_t len = b.len;
  if (!(*ret = buf_steal(&b)))
    return -ENOMEM;
  *ret_len = len;
  return 0;
}

int sink_format(const struct config_channel *ch, const struct notify_request *req, char **ret,
                size_t *ret_len, char *err, size_t errlen) {
  if (!ch || !req || !req->row || !req->msg || !ret)
    return -EINVAL;
  struct config_errors errs = {0};
  struct sink_settings set;
  int r = settings_parse(ch, &set, &errs);
  if (r < 0) {
    snprintf(err, errlen, "%s", errs.n ? errs.v[0].message : strerror(-r));
    config_errors_clear(&errs);
    return r;
  }
  size_t len = 0;
  r = format_row(&set, req, ret, &len, err, errlen);
  if (r >= 0 && ret_len)
    *ret_len = len;
  settings_done(&set);
  return r;
}

static int sink_send(void *state, const struct notify_request *req, struct notify_result *res) {
  struct sink *s = state;
  enum notify_kind kind = notify_kind_of_recipient(req->row->recipient);
  int dir = kind == NOTIFY_SMS ? DIR_SMS : kind == NOTIFY_WEBHOOK ? DIR_WEBHOOK : DIR_MAIL;
  char err[NOTIFY_ERROR_MAX] = "";
  _cleanup_free_ char *data = NULL, *name = NULL, *tmp = NULL;
  size_t len = 0;
  int r = format_row(&s->set, req, &data, &len, err, sizeof err);
  if (r < 0) {
    res->status = r == -ENOMEM ? NOTIFY_TRANSIENT : NOTIFY_PERMANENT;
    snprintf(res->error, sizeof res->error, "cannot format the message: %s",
             *err ? err : strerror(-r));
    return r;
  }
  if (dir == DIR_MAIL) {
    name = strprintf("%lld.R%lldA%dP%dQ%u.renewd", (long long)req->now, (long long)req->row->id,
                     req->row->attempts, (int)getpid(), ++s->serial);
    tmp = name ? strdup(name) : NULL;
  } else {
    name = file_name(req, dir == DIR_SMS ? "txt" : "http");
    tmp = name ? strprintf(".%s.%u.tmp", name, ++s->serial) : NULL;
  }
  int fd = -1;
  if (!name || !tmp)
    r = -ENOMEM;
  else if ((r = open_dir(s, dir)) >= 0) {
    fd = openat(dir == DIR_MAIL ? s->tmp_fd : s->dir_fd[dir], tmp,
                O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0)
      r = -errno;
  }
  if (fd >= 0) {
    r = write_all(fd, data, len);
    if (close(fd) < 0 && r >= 0)
      r = -errno;
    if (r >= 0 && (r = add_pending(s, dir, tmp, name)) >= 0)
      tmp = name = NULL; /* owned by the pending list */
    else
      unlinkat(dir == DIR_MAIL ? s->tmp_fd : s->dir_fd[dir], tmp, 0);
  }
  if (r < 0) {
    /* a full disk or a permission problem may be fixed: retry */
    res->status = NOTIFY_TRANSIENT;
    snprintf(res->error, sizeof res->error, "%s: %s", s->dirs[dir], strerror(-r));
    return r;
  }
  res->status = NOTIFY_SENT;
  snprintf(res->provider_id, sizeof res->provider_id, "%s", s->pending[s->n_pending - 1].name);
  return 0;
}

static int sink_flush(void *state, char *err, size_t errlen) {
  struct sink *s = state;
  int r = 0;
  bool used[_DIR_MAX] = {false};
  if (s->n_pending == 0)
    return 0;
  if (s->sync && syncfs(s->tmp_fd) < 0)
    r = -errno;
  for (size_t i = 0; i < s->n_pending; i++) {
    struct pending *p = &s->pending[i];
    int from = p->dir == DIR_MAIL ? s->tmp_fd : s->dir_fd[p->dir];
    if (r >= 0 && renameat(from, p->tmp, s->dir_fd[p->dir], p->name) < 0)
      r = -errno;
    if (r < 0)
      unlinkat(from, p->tmp, 0);
    used[p->dir] = true;
    pending_done(p);
  }
  s->n_pending = 0;
  for (size_t i = 0; i < _DIR_MAX && r >= 0 && s->sync; i++)
    if (used[i] && fsync(s->dir_fd[i]) < 0)
      r = -errno;
  if (r < 0)
    snprintf(err, errlen, "sink %s: %s", s->path, strerror(-r));
  return r;
}

const struct notifier_ops notifier_sink_ops = {
    .type = "sink",
    .kind = NOTIFY_EMAIL,
    .channel_kind = sink_channel_kind,
    .check_config = sink_check_config,
    .new = sink_new,
    .free = sink_free,
    .send = sink_send,
    .flush = sink_flush,
};
