/* http_guard: the listener's defences (see http.h and docs/http.md).
 *
 * - The connection table: every connection MHD accepts gets a struct
 *   http_conn (MHD's socket context) in a list, oldest first. A connection
 *   must deliver a whole request (head and body) within RequestTimeout= of
 *   being accepted or of its previous response, whatever it trickles; a
 *   once-a-second sweep shuts down those that do not. When the table is
 *   nearly full, each new connection drops the oldest incomplete one, so a
 *   slow-header attacker cannot keep fresh clients out. A connection is
 *   dropped with shutdown(2) on its socket: MHD sees the end of the stream
 *   on its next run and closes it (MHD owns the fd).
 * - The accept self-check: the same tick looks whether connections wait in
 *   the listen backlog while nothing was accepted since the last tick. It
 *   first runs MHD (which re-adds its listen socket if it can); when the
 *   listener stays stuck for HTTP_STALL_S it is marked deaf: /healthz answers
 *   503 and http_deps.stalled tells the daemon (watchdog), so systemd
 *   restarts it.
 * - Request head checks before any handler runs: control bytes (NUL
 *   included) in the URI, raw or %-escaped, and in header values; header
 *   values MHD truncated at a NUL; the RFC 9112 framing rules (Host,
 *   Content-Length, Transfer-Encoding). Each refusal is a response, never
 *   a bare close.
 *
 * Everything runs on the event loop thread. Owns the http_conn entries and
 * the tick timer; never blocks. */
#include <poll.h>
#include <sys/socket.h>

#include "daemon/http_internal.h"

#define HTTP_MAX_FIELDS 128

/* ---- pure checks -------------------------------------------------------------- */

static bool is_ctl(unsigned char c) {
  return c < 0x20 || c == 0x7f;
}

bool http_value_ok(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (is_ctl((unsigned char)s[i]) && s[i] != '\t')
      return false;
  return true;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

bool http_uri_ok(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (is_ctl(c))
      return false;
    if (c == '%' && i + 2 < n) {
      int a = hexval(s[i + 1]), b = hexval(s[i + 2]);
      if (a >= 0 && b >= 0 && is_ctl((unsigned char)(a * 16 + b)))
        return false;
    }
  }
  return true;
}

/* Whether only NUL bytes lie in [p, p + n). */
static bool all_nul(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i])
      return false;
  return true;
}

bool http_fields_intact(const struct http_field *f, size_t n, const char *end) {
  for (size_t i = 0; i < n; i++) {
    const char *name_end = f[i].name + f[i].name_len;
    const char *value_end = f[i].value + f[i].value_len;
    const char *next = i + 1 < n ? f[i + 1].name : end;
    /* the value lies after "name:" and optional blanks, on the same line */
    if (f[i].value <= name_end || value_end > next || *name_end != 0)
      return false;
    for (const char *p = name_end + 1; p < f[i].value; p++)
      if (*p != ' ' && *p != '\t')
        return false;
    /* then only the line end (CR LF or LF, each turned into a NUL), and after
     * the last field the empty line too: anything else was cut off at a NUL */
    size_t gap = (size_t)(next - value_end);
    bool ok = i + 1 < n ? gap >= 1 && gap <= 2 : gap >= 2 && gap <= 4;
    if (!ok || !all_nul(value_end, gap))
      return false;
  }
  return true;
}

/* ---- the connection table ------------------------------------------------------- */

static uint64_t now_usec(const struct http *h) {
  uint64_t t = 0;
  sd_event_now(h->event, CLOCK_MONOTONIC, &t);
  return t;
}

static void conn_unlink(struct http *h, struct http_conn *k) {
  if (k->prev)
    k->prev->next = k->next;
  else
    h->conns = k->next;
  if (k->next)
    k->next->prev = k->prev;
  else
    h->conns_tail = k->prev;
  h->n_conns--;
  if (k->dropped)
    h->n_dropping--;
}

static void conn_append(struct http *h, struct http_conn *k) {
  k->prev = h->conns_tail;
  k->next = NULL;
  if (h->conns_tail)
    h->conns_tail->next = k;
  else
    h->conns = k;
  h->conns_tail = k;
  h->n_conns++;
}

/* Ends a connection: MHD notices the shut-down socket and closes it. */
static void conn_drop(struct http *h, struct http_conn *k) {
  if (k->dropped)
    return;
  (void)shutdown(k->fd, SHUT_RDWR);
  k->dropped = true;
  h->n_dropping++;
}

static struct http_conn *conn_of(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

/* Drops the oldest incomplete connection other than except; false if none. */
static bool evict_oldest(struct http *h, const struct http_conn *except) {
  for (struct http_conn *k = h->conns; k; k = k->next)
    if (k != except && !k->busy && !k->dropped) {
      conn_drop(h, k);
      h->n_evicted++;
      return true;
    }
  return false;
}

/* How many live connections the table holds before new ones evict old ones:
 * a few slots below MHD's limit, since a dropped connection is closed only
 * on MHD's next run and MHD accepts up to 10 connections per run. */
static unsigned evict_threshold(const struct http *h) {
  unsigned reserve = h->max_connections / 8;
  reserve = reserve < 1 ? 1 : reserve > 16 ? 16 : reserve;
  return h->max_connections > reserve ? h->max_connections - reserve : 1;
}

void http_guard_on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                              enum MHD_ConnectionNotificationCode code) {
  struct http *h = cls;
  if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
    struct http_conn *k = *socket_context;
    if (k) {
      conn_unlink(h, k);
      free(k);
      *socket_context = NULL;
    }
    return;
  }
  h->accepted++;
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  struct http_conn *k = ci ? calloc(1, sizeof *k) : NULL;
  if (!k)
    return; /* untracked: MHD's idle timeout still applies */
  k->fd = ci->connect_fd;
  k->since = now_usec(h);
  conn_append(h, k);
  *socket_context = k;
  if (h->n_conns - h->n_dropping > evict_threshold(h))
    (void)evict_oldest(h, k);
}

void http_guard_request_queued(struct MHD_Connection *c) {
  struct http_conn *k = conn_of(c);
  if (k)
    k->busy = true;
}

void http_guard_request_held(struct MHD_Connection *c) {
  struct http_conn *k = conn_of(c);
  if (k)
    k->busy = true;
}

void http_guard_request_done(struct http *h, struct MHD_Connection *c) {
  struct http_conn *k = conn_of(c);
  if (k) {
    k->busy = false;
    k->since = now_usec(h); /* the next request has its own deadline */
  }
}

void *http_guard_on_uri(void *cls, const char *uri, struct MHD_Connection *c) {
  struct http_request *rq = calloc(1, sizeof *rq);
  if (!rq)
    return NULL;
  size_t n = strlen(uri);
  rq->uri_ok = http_uri_ok(uri, n);
  rq->uri_end = uri + n;
  return rq;
}

void http_guard_mhd_log(struct http *h, const char *msg) {
  /* MHD closes a connection over the per-client limit right after accept():
   * accepting still makes progress */
  if (strstr(msg, "Closing inbound connection"))
    h->accepted++;
  /* after EMFILE/ENFILE MHD stops polling its listen socket until a
   * connection closes */
  if (strstr(msg, "resource limit"))
    h->listen_parked = true;
}

/* ---- the tick: deadlines and the accept self-check ------------------------------------- */

static void sweep_deadlines(struct http *h, uint64_t now) {
  unsigned n = 0;
  for (struct http_conn *k = h->conns; k; k = k->next)
    if (!k->busy && !k->dropped && now - k->since >= h->request_timeout_usec) {
      conn_drop(h, k);
      n++;
    }
  h->n_expired += n;
  if ((h->n_expired || h->n_evicted) && now - h->last_drop_log >= 10 * 1000000ull) {
    log_notice(h->deps.log,
               "http: dropped %" PRIu64 " connections without a complete request within %" PRIu64
               " s and %" PRIu64 " to make room for new ones (table of %u)",
               h->n_expired, h->request_timeout_usec / 1000000, h->n_evicted, h->max_connections);
    h->n_expired = h->n_evicted = 0;
    h->last_drop_log = now;
  }
}

/* Whether connections wait in the listen socket's backlog. */
static bool backlog_waiting(const struct http *h) {
  if (h->listen_fd < 0)
    return false;
  struct pollfd p = {.fd = h->listen_fd, .events = POLLIN};
  return poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

enum http_stall_state http_stall_step(struct http_stall *st, bool waiting, uint64_t accepted,
                                      uint64_t now, uint64_t limit) {
  if (!waiting || accepted != st->accepted) {
    bool was_deaf = st->deaf;
    *st = (struct http_stall){.accepted = accepted};
    return was_deaf ? HTTP_STALL_RECOVERED : HTTP_STALL_NONE;
  }
  if (!st->since)
    st->since = now;
  if (st->deaf || now - st->since < limit)
    return HTTP_STALL_WAITING;
  st->deaf = true;
  return HTTP_STALL_DEAF;
}

static void self_check(struct http *h, uint64_t now) {
  switch (
      http_stall_step(&h->stall, backlog_waiting(h), h->accepted, now, HTTP_STALL_S * 1000000ull)) {
  case HTTP_STALL_NONE:
    return;
  case HTTP_STALL_RECOVERED:
    log_notice(h->deps.log, "http: the listener accepts connections again");
    return;
  case HTTP_STALL_WAITING:
    http_run(h); /* MHD puts its listen socket back into its poll set if it can */
    return;
  case HTTP_STALL_DEAF:
    log_error(h->deps.log,
              "http: connections wait on %s but none was accepted for %d s (%u open): the "
              "listener is stuck",
              h->address, HTTP_STALL_S, h->n_conns);
    if (h->deps.stalled)
      h->deps.stalled(h->deps.userdata);
    return;
  }
}

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
  struct http *h = userdata;
  uint64_t now = now_usec(h);
  sweep_deadlines(h, now);
  self_check(h, now);
  sd_event_source_set_time(s, now + HTTP_TICK_USEC);
  return 0;
}

bool http_guard_deaf(const struct http *h) {
  /* a connection accepted since the self-check gave up (the /healthz request
   * asking, say) shows the listener accepts again, before the next tick */
  return h->stall.deaf && h->accepted == h->stall.accepted;
}

int http_guard_start(struct http *h) {
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_LISTEN_FD);
  h->listen_fd = di ? di->listen_fd : -1;
  int r = sd_event_add_time_relative(h->event, &h->tick, CLOCK_MONOTONIC, HTTP_TICK_USEC,
                                     100 * 1000, on_tick, h);
  if (r < 0)
    return r;
  (void)sd_event_source_set_enabled(h->tick, SD_EVENT_ON);
  (void)sd_event_source_set_description(h->tick, "http-tick");
  return 0;
}

void http_guard_stop(struct http *h) {
  h->tick = sd_event_source_disable_unref(h->tick);
  while (h->conns) {
    struct http_conn *k = h->conns;
    conn_unlink(h, k);
    free(k);
  }
}

/* ---- request head checks --------------------------------------------------------------- */

struct collect {
  struct http_field f[HTTP_MAX_FIELDS];
  size_t n;
  bool overflow;
};

static enum MHD_Result collect_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                     size_t key_size, const char *value, size_t value_size) {
  struct collect *col = cls;
  if (col->n >= HTTP_MAX_FIELDS) {
    col->overflow = true;
    return MHD_NO;
  }
  col->f[col->n++] = (struct http_field){key, key_size, value ? value : "", value ? value_size : 0};
  return MHD_YES;
}

static bool name_is(const struct http_field *f, const char *name) {
  return f->name_len == strlen(name) && !strncasecmp(f->name, name, f->name_len);
}

/* The value without surrounding blanks, compared case-insensitively. */
static bool value_is(const struct http_field *f, const char *want) {
  const char *v = f->value;
  size_t n = f->value_len;
  while (n && (*v == ' ' || *v == '\t'))
    v++, n--;
  while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
    n--;
  return n == strlen(want) && !strncasecmp(v, want, n);
}

static bool same_value(const struct http_field *a, const struct http_field *b) {
  return a->value_len == b->value_len && !memcmp(a->value, b->value, a->value_len);
}

/* The RFC 9112 framing rules: 0, or the status to answer and why. */
unsigned http_framing_check(const struct http_field *f, size_t n, bool http11, const char **why) {
  const struct http_field *cl = NULL, *te = NULL;
  size_t n_host = 0, n_te = 0;
  for (size_t i = 0; i < n; i++) {
    if (name_is(&f[i], "Host"))
      n_host++;
    else if (name_is(&f[i], "Transfer-Encoding"))
      te = &f[i], n_te++;
    else if (name_is(&f[i], "Content-Length")) {
      if (cl && !same_value(cl, &f[i])) {
        *why = "conflicting Content-Length";
        return 400;
      }
      cl = &f[i];
    }
  }
  if (n_host > 1) {
    *why = "more than one Host";
    return 400;
  }
  if (http11 && n_host == 0) {
    *why = "HTTP/1.1 request without Host";
    return 400;
  }
  if (te && (n_te > 1 || !value_is(te, "chunked"))) {
    *why = "unsupported Transfer-Encoding (only chunked is)";
    return 501;
  }
  if (te && !http11) {
    *why = "Transfer-Encoding in an HTTP/1.0 request";
    return 400;
  }
  if (te && cl) {
    *why = "both Transfer-Encoding and Content-Length";
    return 400;
  }
  return 0;
}

static void refuse(struct http_reply *rep, enum metrics_endpoint ep, unsigned status,
                   const char *why) {
  if (ep == METRICS_EP_API)
    http_reply_error_json(rep, status, why, NULL);
  else {
    http_reply_text(rep, status, why);
    (void)buf_puts(&rep->body, "\n");
  }
}

bool http_guard_check_head(struct http *h, struct MHD_Connection *c, const struct http_request *rq,
                           const char *method, const char *version, struct http_reply *rep) {
  /* the URI as received ended where MHD cut it off before the version: a
   * NUL inside it would have ended the copy checked in http_guard_on_uri */
  bool uri_whole = !rq->uri_end || !*version || rq->uri_end == version - 1;
  if (!rq->uri_ok || !uri_whole) {
    refuse(rep, rq->ep, 400, "control character in the request target");
    return false;
  }
  struct collect col = {.n = 0};
  MHD_get_connection_values_n(c, MHD_HEADER_KIND, collect_field, &col);
  if (col.overflow) {
    refuse(rep, rq->ep, 431, "too many header fields");
    return false;
  }
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
  const char *end = ci ? method + ci->header_size : NULL;
  for (size_t i = 0; i < col.n; i++)
    if (!http_value_ok(col.f[i].value, col.f[i].value_len)) {
      refuse(rep, rq->ep, 400, "control character in a header field");
      return false;
    }
  /* MHD stores fields in place in the request head and ends each value at
   * its first NUL; a value cut short there, or folded onto a second line
   * (obs-fold, RFC 9112 section 5.2), does not end at its line end */
  if (end && !http_fields_intact(col.f, col.n, end)) {
    refuse(rep, rq->ep, 400, "NUL or line folding in a header field");
    return false;
  }
  const char *why = NULL;
  unsigned status = http_framing_check(col.f, col.n, streq(version, "HTTP/1.1"), &why);
  if (status) {
    log_debug(h->deps.log, "http: %s: answered %u", why, status);
    refuse(rep, rq->ep, status, why);
    return false;
  }
  return true;
}
