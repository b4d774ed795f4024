/* http_report: GET /report, the renewal report as one self-contained HTML
 * page — the very page `renewctl report --html` writes (core/report.h:
 * report_compute() + report_render_html()), served by the listener so a
 * manager can open it without shell access.
 *
 *   GET /report[?from=YYYY-MM-DD][&to=YYYY-MM-DD][&by=tier|channel|segment|owner|policy]
 *
 * The period is whole UTC days, `to` inclusive, like the CLI; the default is
 * the 90 days up to today (the daemon's clock: simulated under --simulate).
 * Access needs "Authorization: Bearer <token>" with a line of ApiTokenFile=
 * (the API's tokens and its constant-time check, http_api_authorized());
 * otherwise 401 with WWW-Authenticate: Bearer. A bad parameter is 400, a
 * period report_compute() refuses as too long is 400 too.
 *
 * Off the loop. report_compute() reads every term of the period; on a large
 * book that takes seconds, far longer than a loop iteration may. It runs on
 * a worker thread with its own read-only connection to the store (opened on
 * first use). The request that needs a page the cache does not hold is
 * suspended (MHD_suspend_connection()); when the worker is done it writes an
 * eventfd, the loop resumes every waiting connection, MHD calls the handler
 * again and it answers from the cache. Pages are kept
 * HTTP_REPORT_CACHE_TTL_MS of real (monotonic) time per (from, to, by), in
 * HTTP_REPORT_CACHE_SLOTS slots (the oldest finished one is replaced). An
 * expired page younger than HTTP_REPORT_STALE_MS is served at once while a
 * fresh one is computed in the background (stale-while-revalidate), so a
 * dashboard polling the page never waits after the first time. A reload
 * (policy names may change) makes every cached page stale beyond use. When
 * every slot is being computed, 503 with Retry-After.
 *
 * Owns struct http_report_cache (hung off struct http): the slots, the worker
 * thread, its store connection, the eventfd and its event source, the list
 * of suspended connections. The slots, the job queue and the config pointer
 * are shared with the worker under one mutex; the worker only reads the
 * config through policy_of() under that mutex and copies the names it
 * returns (a reload frees the old config). Everything else runs on the event
 * loop thread. */
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/report.h"
#include "daemon/http_internal.h"

#define HTTP_REPORT_CACHE_TTL_MS 60000
#define HTTP_REPORT_STALE_MS (10 * 60000)
#define HTTP_REPORT_CACHE_SLOTS 4
#define HTTP_REPORT_MAX_WAITERS 64
#define HTTP_REPORT_DEFAULT_DAYS 90
#define DAY INT64_C(86400)

enum slot_state {
  SLOT_EMPTY,
  SLOT_QUEUED,    /* waits for the worker */
  SLOT_COMPUTING, /* the worker has it */
  SLOT_READY,     /* body holds the page */
  SLOT_FAILED,    /* error holds why (answered once, then emptied) */
};

struct http_report_slot {
  enum slot_state state;
  int64_t from, until; /* the period, [from, until) (UTC day starts) */
  int by;              /* enum report_by */
  int64_t now;         /* the daemon's clock when asked (the page's "generated") */
  unsigned gen;        /* config generation it was computed under */
  int64_t made_ms;     /* clock_monotonic_ms() when finished */
  bool refresh;        /* a stale page: the next computation replaces it */
  char *body;          /* the HTML page; owned; NULL unless READY (or refreshing) */
  size_t len;
  int error; /* FAILED: -errno */
};

struct http_report_cache {
  pthread_mutex_t lock; /* guards slots, stop, cfg, gen */
  pthread_cond_t work;  /* a slot was queued, or stop */
  struct http_report_slot slot[HTTP_REPORT_CACHE_SLOTS];
  const struct config *cfg; /* the running config (policy names) */
  unsigned gen;             /* bumped on reload */
  bool stop;

  pthread_t thread;
  bool started;
  char *db_path;           /* the store the worker opens read-only; owned */
  struct store *ro;        /* the worker's connection; owned by the worker */
  int efd;                 /* eventfd the worker writes when a slot finished */
  sd_event_source *efd_io; /* on the loop */

  struct http *h;                                          /* the listener (borrowed) */
  struct MHD_Connection *waiting[HTTP_REPORT_MAX_WAITERS]; /* suspended requests (loop only) */
  size_t n_waiting;
};

/* ---- the worker ------------------------------------------------------------------ */

/* Policy names handed to the report builder: copies, valid until the page is
 * rendered (a reload may free the config meanwhile). */
struct names {
  struct http_report_cache *rc;
  char **v;
  size_t n;
};

static void names_done(struct names *n) {
  for (size_t i = 0; i < n->n; i++)
    free(n->v[i]);
  free(n->v);
}

static const char *policy_of(const char *segment, void *ud) {
  struct names *n = ud;
  pthread_mutex_lock(&n->rc->lock);
  const struct policy *p = n->rc->cfg ? config_policy_for_segment(n->rc->cfg, segment) : NULL;
  char *copy = p && p->name ? strdup(p->name) : NULL;
  pthread_mutex_unlock(&n->rc->lock);
  if (!copy)
    return NULL;
  for (size_t i = 0; i < n->n; i++)
    if (streq(n->v[i], copy)) {
      free(copy);
      return n->v[i];
    }
  char **v = realloc(n->v, (n->n + 1) * sizeof *v);
  if (!v) {
    free(copy);
    return NULL;
  }
  n->v = v;
  n->v[n->n++] = copy;
  return copy;
}

/* Computes and renders one page on the worker. Returns 0 with *ret (caller
 * frees), -ERANGE (period too long) or another -errno. */
static int render_page(struct http_report_cache *rc, const struct http_report_slot *job, char **ret,
                       size_t *ret_len) {
  if (!rc->ro) {
    int r = store_open(rc->db_path, STORE_READONLY | STORE_NO_CREATE, &rc->ro, NULL, 0);
    if (r < 0)
      return r;
  }
  struct names names = {.rc = rc};
  struct report_options o = {
      .from = job->from,
      .until = job->until,
      .now = job->now,
      .by = job->by,
      .policy_of = policy_of,
      .policy_ud = &names,
  };
  _cleanup_(report_freep) struct report *r = NULL;
  int k = report_compute(rc->ro, &o, &r);
  char *body = NULL;
  size_t len = 0;
  FILE *f = k >= 0 ? open_memstream(&body, &len) : NULL;
  if (k >= 0 && !f)
    k = -ENOMEM;
  if (f) {
    k = report_render_html(r, f);
    if (fclose(f) != 0 && k >= 0)
      k = -ENOMEM;
  }
  names_done(&names);
  if (k < 0) {
    free(body);
    return k;
  }
  *ret = body;
  *ret_len = len;
  return 0;
}

static struct http_report_slot *next_job(struct http_report_cache *rc) {
  for (size_t i = 0; i < HTTP_REPORT_CACHE_SLOTS; i++)
    if (rc->slot[i].state == SLOT_QUEUED)
      return &rc->slot[i];
  return NULL;
}

static void *worker(void *ud) {
  struct http_report_cache *rc = ud;
  pthread_mutex_lock(&rc->lock);
  for (;;) {
    struct http_report_slot *job;
    while (!rc->stop && !(job = next_job(rc)))
      pthread_cond_wait(&rc->work, &rc->lock);
    if (rc->stop)
      break;
    job->state = SLOT_COMPUTING;
    struct http_report_slot copy = *job;
    pthread_mutex_unlock(&rc->lock);

    char *body = NULL;
    size_t len = 0;
    int r = render_page(rc, &copy, &body, &len);

    pthread_mutex_lock(&rc->lock);
    /* the slot is ours while COMPUTING: the loop never reuses it */
    free(job->body);
    job->body = body;
    job->len = len;
    job->error = r;
    job->state = r < 0 ? SLOT_FAILED : SLOT_READY;
    job->refresh = false;
    job->made_ms = clock_monotonic_ms();
    uint64_t one = 1;
    (void)!write(rc->efd, &one, sizeof one);
  }
  pthread_mutex_unlock(&rc->lock);
  rc->ro = store_free(rc->ro);
  return NULL;
}

/* ---- the loop side ----------------------------------------------------------------- */

/* A page finished: every suspended request runs its handler again. */
static void resume_all(struct http_report_cache *rc) {
  for (size_t i = 0; i < rc->n_waiting; i++)
    MHD_resume_connection(rc->waiting[i]);
  rc->n_waiting = 0;
}

static int on_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
  struct http_report_cache *rc = userdata;
  uint64_t v;
  (void)!read(fd, &v, sizeof v);
  if (rc->n_waiting == 0)
    return 0;
  resume_all(rc);
  http_run(rc->h); /* MHD handles the resumed requests now */
  return 0;
}

struct http_report_cache *http_report_cache_free(struct http_report_cache *rc) {
  if (!rc)
    return NULL;
  if (rc->started) {
    pthread_mutex_lock(&rc->lock);
    rc->stop = true;
    pthread_cond_signal(&rc->work);
    pthread_mutex_unlock(&rc->lock);
    pthread_join(rc->thread, NULL);
  }
  resume_all(rc); /* before MHD stops: it closes them then */
  sd_event_source_disable_unref(rc->efd_io);
  if (rc->efd >= 0)
    close(rc->efd);
  for (size_t i = 0; i < HTTP_REPORT_CACHE_SLOTS; i++)
    free(rc->slot[i].body);
  pthread_cond_destroy(&rc->work);
  pthread_mutex_destroy(&rc->lock);
  free(rc->db_path);
  free(rc);
  return NULL;
}

static int cache_new(struct http *h, struct http_report_cache **ret) {
  struct http_report_cache *rc = calloc(1, sizeof *rc);
  if (!rc)
    return -ENOMEM;
  pthread_mutex_init(&rc->lock, NULL);
  pthread_cond_init(&rc->work, NULL);
  rc->cfg = h->deps.cfg;
  rc->h = h;
  rc->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  int r = rc->efd >= 0 ? 0 : -errno;
  if (r >= 0)
    r = (rc->db_path = strdup(store_path(h->deps.store))) ? 0 : -ENOMEM;
  if (r >= 0)
    r = sd_event_add_io(h->event, &rc->efd_io, rc->efd, EPOLLIN, on_done, rc);
  if (r >= 0) {
    sd_event_source_set_description(rc->efd_io, "http-report-done");
    sigset_t all, old; /* signals go to the loop's signalfd, never to the worker */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int k = pthread_create(&rc->thread, NULL, worker, rc);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    r = -k;
    rc->started = k == 0;
  }
  if (r < 0) {
    http_report_cache_free(rc);
    return r;
  }
  *ret = rc;
  return 0;
}

void http_report_set_config(struct http *h, const struct config *cfg) {
  struct http_report_cache *rc = h->report_cache;
  if (!rc)
    return;
  pthread_mutex_lock(&rc->lock);
  rc->cfg = cfg;
  rc->gen++; /* every cached page is out of date: policy names may differ */
  pthread_mutex_unlock(&rc->lock);
}

/* "YYYY-MM-DD" as 00:00 UTC of that day. */
static int parse_day(const char *s, int64_t *ret) {
  int y, m, d;
  if (cal_parse_date(s, &y, &m, &d) < 0)
    return -EINVAL;
  struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};
  *ret = (int64_t)timegm(&tm);
  return 0;
}

/* The slot of the key, or NULL. Under the lock. */
static struct http_report_slot *slot_find(struct http_report_cache *rc, int64_t from, int64_t until,
                                          int by) {
  for (size_t i = 0; i < HTTP_REPORT_CACHE_SLOTS; i++) {
    struct http_report_slot *s = &rc->slot[i];
    if (s->state != SLOT_EMPTY && s->from == from && s->until == until && s->by == by)
      return s;
  }
  return NULL;
}

/* An empty slot, else the oldest finished one (emptied), else NULL (every
 * slot is being computed). Under the lock. */
static struct http_report_slot *slot_take(struct http_report_cache *rc) {
  struct http_report_slot *pick = NULL;
  for (size_t i = 0; i < HTTP_REPORT_CACHE_SLOTS; i++) {
    struct http_report_slot *s = &rc->slot[i];
    if (s->state == SLOT_EMPTY)
      return s;
    if ((s->state == SLOT_READY || s->state == SLOT_FAILED) &&
        (!pick || s->made_ms < pick->made_ms))
      pick = s;
  }
  if (pick) {
    free(pick->body);
    *pick = (struct http_report_slot){0};
  }
  return pick;
}

static void slot_queue(struct http_report_cache *rc, struct http_report_slot *s, int64_t from,
                       int64_t until, int by, int64_t now) {
  s->state = SLOT_QUEUED;
  s->from = from;
  s->until = until;
  s->by = by;
  s->now = now;
  s->gen = rc->gen;
  pthread_cond_signal(&rc->work);
}

enum lookup {
  LOOKUP_SERVE,   /* the page copied to the caller */
  LOOKUP_WAIT,    /* being computed: suspend */
  LOOKUP_FAILED,  /* *error set (the slot was emptied) */
  LOOKUP_NO_SLOT, /* every slot is being computed */
};

/* Finds or starts the page of a key (see the file comment for the rules).
 * On LOOKUP_SERVE *ret_body is a copy the caller frees. */
static enum lookup lookup(struct http_report_cache *rc, int64_t from, int64_t until, int by,
                          int64_t now, char **ret_body, size_t *ret_len, int *ret_error) {
  int64_t now_ms = clock_monotonic_ms();
  enum lookup res = LOOKUP_WAIT;
  pthread_mutex_lock(&rc->lock);
  struct http_report_slot *s = slot_find(rc, from, until, by);
  if (s && s->state == SLOT_FAILED) {
    *ret_error = s->error;
    *s = (struct http_report_slot){0};
    res = LOOKUP_FAILED;
  } else if (s && s->body && s->gen == rc->gen && now_ms - s->made_ms < HTTP_REPORT_STALE_MS) {
    /* fresh, or stale but usable: served now; a stale one is recomputed */
    *ret_body = malloc(s->len ? s->len : 1);
    if (*ret_body) {
      memcpy(*ret_body, s->body, s->len);
      *ret_len = s->len;
      res = LOOKUP_SERVE;
    } else {
      *ret_error = -ENOMEM;
      res = LOOKUP_FAILED;
    }
    if (s->state == SLOT_READY && now_ms - s->made_ms >= HTTP_REPORT_CACHE_TTL_MS) {
      s->refresh = true;
      slot_queue(rc, s, from, until, by, now);
    }
  } else if (s && (s->state == SLOT_QUEUED || s->state == SLOT_COMPUTING) && !s->body)
    res = LOOKUP_WAIT;
  else if (s && s->state == SLOT_READY) { /* too old, or computed under another config */
    free(s->body);
    s->body = NULL;
    slot_queue(rc, s, from, until, by, now);
  } else if (s) /* being refreshed, but the old page is no longer usable */
    res = LOOKUP_WAIT;
  else if ((s = slot_take(rc)))
    slot_queue(rc, s, from, until, by, now);
  else
    res = LOOKUP_NO_SLOT;
  pthread_mutex_unlock(&rc->lock);
  return res;
}

static void reply_unauthorized(struct MHD_Connection *c, struct http_reply *rep) {
  bool given = http_header(c, MHD_HTTP_HEADER_AUTHORIZATION) != NULL;
  http_reply_text(rep, 401, given ? "invalid bearer token\n" : "bearer token required\n");
  http_reply_header(rep, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                    given ? "Bearer realm=\"renewd\", error=\"invalid_token\""
                          : "Bearer realm=\"renewd\"");
}

/* The period and breakdown of the request; replies 400 and returns -EINVAL
 * on a bad parameter. */
static int parse_query(struct http *h, struct MHD_Connection *c, struct http_reply *rep,
                       int64_t *ret_from, int64_t *ret_until, int *ret_by) {
  const char *from_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "from");
  const char *to_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "to");
  const char *by_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "by");
  int64_t now = http_now(h), to_day, from_day;
  int by = REPORT_BY_TIER;
  if (!isempty(by_s) && (by = report_by_from_string(by_s)) < 0) {
    http_reply_text(rep, 400, "invalid by (tier, channel, segment, owner or policy)\n");
    return -EINVAL;
  }
  if (!isempty(to_s)) {
    if (parse_day(to_s, &to_day) < 0) {
      http_reply_text(rep, 400, "invalid to (expected YYYY-MM-DD)\n");
      return -EINVAL;
    }
  } else
    to_day = now - ((now % DAY) + DAY) % DAY;
  if (!isempty(from_s)) {
    if (parse_day(from_s, &from_day) < 0) {
      http_reply_text(rep, 400, "invalid from (expected YYYY-MM-DD)\n");
      return -EINVAL;
    }
  } else
    from_day = to_day - (HTTP_REPORT_DEFAULT_DAYS - 1) * DAY;
  if (from_day > to_day) {
    http_reply_text(rep, 400, "from is after to\n");
    return -EINVAL;
  }
  *ret_from = from_day;
  *ret_until = to_day + DAY;
  *ret_by = by;
  return 0;
}

static void reply_failed(struct http *h, struct http_reply *rep, int r) {
  if (r == -ERANGE)
    return http_reply_text(rep, 400, "the period is too long\n");
  log_error(h->deps.log, "http: /report: cannot compute the report: %s", strerror(-r));
  http_reply_text(rep, r == -EBUSY ? 503 : 500, "the report cannot be computed now\n");
}

void http_report_handle(struct http *h, struct MHD_Connection *c, const char *method,
                        struct http_reply *rep) {
  if (!http_api_authorized(h, c))
    return reply_unauthorized(c, rep);
  if (!streq(method, "GET") && !streq(method, "HEAD")) {
    http_reply_text(rep, 405, "method not allowed\n");
    http_reply_header(rep, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    return;
  }
  int64_t from, until;
  int by;
  if (parse_query(h, c, rep, &from, &until, &by) < 0)
    return;
  if (!h->report_cache) {
    int r = cache_new(h, &h->report_cache);
    if (r < 0)
      return reply_failed(h, rep, r);
  }
  struct http_report_cache *rc = h->report_cache;
  char *body = NULL;
  size_t len = 0;
  int error = 0;
  switch (lookup(rc, from, until, by, http_now(h), &body, &len, &error)) {
  case LOOKUP_SERVE:
    buf_reset(&rep->body);
    int r = buf_append(&rep->body, body, len);
    free(body);
    if (r < 0)
      return http_reply_text(rep, 500, "out of memory\n");
    rep->status = 200;
    rep->content_type = REPORT_HTML_CONTENT_TYPE;
    return;
  case LOOKUP_FAILED:
    return reply_failed(h, rep, error);
  case LOOKUP_NO_SLOT:
    http_reply_text(rep, 503, "too many reports are being computed; try again shortly\n");
    http_reply_header(rep, "Retry-After", "5");
    return;
  case LOOKUP_WAIT:
    if (rc->n_waiting == HTTP_REPORT_MAX_WAITERS) {
      http_reply_text(rep, 503, "too many requests wait for a report; try again shortly\n");
      http_reply_header(rep, "Retry-After", "5");
      return;
    }
    rc->waiting[rc->n_waiting++] = c;
    rep->suspend = true; /* http.c suspends; on_done resumes, MHD calls us again */
    return;
  }
}
