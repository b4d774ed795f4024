/* http_internal: what daemon/http*.c share (never included elsewhere except
 * the unit test tests/test-http-parse.c).
 *
 * http.c owns struct http (event sources, MHD, secrets) and the request
 * plumbing; http_pages.c renders the answer and unsubscribe pages;
 * http_sms.c handles inbound SMS; http_api.c the JSON API. Each handler fills
 * a struct http_reply that http.c sends. Everything runs on the event loop
 * thread. */
#pragma once

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>

#include "core/lifecycle.h"
#include "core/validate.h"
#include "daemon/http.h"
#include "notifiers/linkkey.h"

/* The accept self-check's state (http_stall_step()). */
struct http_stall {
  uint64_t accepted; /* connections accepted when last seen making progress */
  uint64_t since;    /* when connections were first seen waiting without progress; 0 = not */
  bool deaf;         /* stalled past the limit: /healthz answers 503 */
};

struct http {
  struct http_deps deps;  /* borrowed; deps.cfg replaced on reload */
  sd_event *event;        /* referenced */
  sd_event_source *io;    /* MHD's epoll fd */
  sd_event_source *timer; /* MHD_get_timeout() */
  struct MHD_Daemon *mhd; /* owned */
  char address[80];       /* for logs */
  struct linkkeys *keys;  /* LinkKeyFile=; NULL = links disabled */
  char **api_tokens;      /* ApiTokenFile= lines; owned, wiped on free */
  size_t n_api_tokens;
  char *sms_token;           /* AuthTokenFile= of the first Twilio sms channel; wiped */
  struct validate *validate; /* for API upserts (default zone of cfg) */
  struct http_report_cache *report_cache; /* GET /report pages (http_report.c); owned */

  /* listener limits (config [HTTP]), fixed at start */
  unsigned max_connections;      /* MaxConnections= */
  unsigned max_per_client;       /* MaxConnectionsPerClient= */
  uint64_t request_timeout_usec; /* RequestTimeout= */
  /* re-arming MHD's listen socket (http.c) */
  bool listen_parked; /* MHD may have taken its listen socket out of its poll set */
  /* the connection table and the self-check (http_guard.c) */
  struct http_conn *conns, *conns_tail; /* oldest first; owned */
  unsigned n_conns;                     /* entries in conns */
  unsigned n_dropping;                  /* of them shut down, not yet closed by MHD */
  sd_event_source *tick;                /* once a second: deadlines, self-check */
  int listen_fd;                        /* MHD's listen socket (borrowed), or -1 */
  uint64_t accepted;                    /* connections accepted (or refused) so far */
  struct http_stall stall;              /* the accept self-check */
  uint64_t n_expired, n_evicted;        /* drops since the last log line */
  uint64_t last_drop_log;               /* CLOCK_MONOTONIC µs */
  /* page strings and SMS replies (http_pages.c, http_sms.c) */
  struct templates *pages;        /* page strings and SMS replies (http_templates()); owned */
  const struct config *pages_cfg; /* the config pages was opened for (reopened after reload) */
  struct locfmt *lf;              /* ICU formatters of the pages; owned */
  /* requests suspended while the store is locked (http.c) */
  struct http_request *retrying; /* waiting for their retry timer; list */
};

/* One accepted connection (MHD's socket context, http_guard.c). */
struct http_conn {
  struct http_conn *prev, *next; /* struct http.conns, in order of since */
  int fd;                        /* MHD's socket (borrowed) */
  uint64_t since;                /* CLOCK_MONOTONIC µs: accepted, or its last response done */
  bool busy;                     /* a response is queued, or the whole request is held (a retry):
                                    no deadline, never evicted */
  bool dropped;                  /* shut down by us; MHD closes it on its next run */
};

/* One request being received (MHD's con_cls). */
struct http_request {
  bool started;             /* the head was seen by on_request() */
  bool uri_ok;              /* the request target holds no control byte (raw or %XX) */
  const char *uri_end;      /* where the raw target's copy ended (in MHD's buffer, never
                               dereferenced); NULL when unknown */
  enum metrics_endpoint ep; /* for metrics */
  struct buf body;          /* the body so far (at most HTTP_MAX_BODY bytes) */
  size_t seen;              /* body bytes received, kept or not */
  bool too_large;           /* more than HTTP_MAX_BODY: answered 413 */
  bool queued;              /* a response is queued already */
  /* the store was locked (-EBUSY): the handler runs again from a timer (http.c) */
  struct http *h;                               /* the listener, for the timer */
  struct MHD_Connection *c;                     /* suspended while retry is pending */
  sd_event_source *retry;                       /* the back-off timer; owned */
  struct http_request *retry_prev, *retry_next; /* struct http.retrying */
  uint64_t busy_since; /* CLOCK_MONOTONIC µs of the first -EBUSY; 0 = none */
  unsigned busy_ms;    /* the current back-off */
};

#define HTTP_MAX_HEADERS 4

/* A response being built. */
struct http_reply {
  unsigned status;          /* 0 = not set (500) */
  const char *content_type; /* static string */
  struct buf body;
  struct {
    const char *name; /* static */
    char *value;      /* owned */
  } headers[HTTP_MAX_HEADERS];
  size_t n_headers;
  bool suspend; /* nothing to send yet: suspend the connection (http_report.c) */
  bool busy;    /* the store was locked: retry the request, or send this 503 (http_reply_busy()) */
};

/* ---- replies (http.c) ---- */
int http_reply_header(struct http_reply *rep, const char *name, const char *value);
/* A JSON reply: the value is dumped compactly (reference stolen; NULL = OOM 500). */
void http_reply_json(struct http_reply *rep, unsigned status, json_t *v);
/* {"error": {"status": N, "message": "..."}} (+ "problems" when not NULL, stolen). */
void http_reply_error_json(struct http_reply *rep, unsigned status, const char *message,
                           json_t *problems);
void http_reply_text(struct http_reply *rep, unsigned status, const char *text);
void http_reply_clear(struct http_reply *rep);
/* Whether r is -EBUSY: the store is locked by another process. If so, the
 * reply is marked: http.c suspends the request (other requests are served
 * meanwhile) and runs its handler again after a back-off of
 * HTTP_BUSY_MIN_MS doubling to HTTP_BUSY_MAX_MS; the reply the handler
 * built (a 503) is sent, with Retry-After, only when the store stayed locked
 * for HTTP_BUSY_LIMIT_MS. A handler calls it where a store call failed,
 * before anything of the request was committed, so that running it again
 * records the request once. */
bool http_reply_busy(struct http_reply *rep, int r);

/* ---- request helpers (http.c) ---- */
int64_t http_now(const struct http *h);
/* A request header's value (NULL when absent). */
const char *http_header(struct MHD_Connection *c, const char *name);
/* The media type of Content-Type without parameters, lower-case, in out
 * ("" when absent). */
void http_content_type(struct MHD_Connection *c, char *out, size_t n);
/* Tells the daemon contract_id changed (re-plan, kick the dispatcher). */
void http_changed(struct http *h, const char *contract_id);

/* ---- application/x-www-form-urlencoded (http.c) ---- */
struct http_form {
  char **names; /* decoded, NUL-terminated; owned */
  char **values;
  size_t n;
};
/* Parses body[0..len): '&'-separated name=value pairs, '+' is a space, %XX
 * escapes; decoded text must be UTF-8 without NUL or control characters
 * other than TAB, CR and LF. Returns 0, -EBADMSG (malformed) or -ENOMEM. */
int http_form_parse(const char *body, size_t len, struct http_form *ret);
void http_form_clear(struct http_form *f);
/* The first value of name, or NULL. */
const char *http_form_get(const struct http_form *f, const char *name);

/* ---- the contract's policy as lifecycle sees it (http.c) ---- */
struct http_policy {
  struct lifecycle_policy lp;
  struct lifecycle_channel ch[16];
  struct policy *snapshot; /* parsed ladder snapshot, owned; NULL when from the config */
};
/* Loads the policy of contract co (its ladder snapshot, else its segment's
 * policy): callback pause, lapse grace, fallback owner, owner channels.
 * max_snooze is LIFECYCLE_DEFAULT_MAX_SNOOZE. Always fills *ret (defaults on
 * failure). Caller runs http_policy_done(). */
void http_policy_load(struct http *h, const struct contract *co, const struct customer *cu,
                      struct http_policy *ret);
void http_policy_done(struct http_policy *p);

/* ---- handlers ---- */
/* http_pages.c: /r/<token> (unsubscribe false) and /u/<token> (true). */
void http_pages_handle(struct http *h, struct MHD_Connection *c, const char *method,
                       const char *token, bool unsubscribe, const struct http_request *rq,
                       struct http_reply *rep);
/* http_sms.c: POST /sms/inbound. */
void http_sms_handle(struct http *h, struct MHD_Connection *c, const char *method,
                     const struct http_request *rq, struct http_reply *rep);
/* http_sms_status.c: POST /sms/status, Twilio's delivery receipts. */
void http_sms_status_handle(struct http *h, struct MHD_Connection *c, const struct http_request *rq,
                            struct http_reply *rep);
/* http_api.c: /api/v1/... (path is the part after "/api/v1"). */
void http_api_handle(struct http *h, struct MHD_Connection *c, const char *method, const char *path,
                     const struct http_request *rq, struct http_reply *rep);
/* http_api.c: whether the request carries "Authorization: Bearer <token>" with
 * a token of ApiTokenFile= (constant-time comparison). */
bool http_api_authorized(struct http *h, struct MHD_Connection *c);

/* ---- GET /report (http_report.c) ---- */
struct http_report_cache;
/* GET|HEAD /report?from=&to=&by=: the HTML report page, bearer token required. */
void http_report_handle(struct http *h, struct MHD_Connection *c, const char *method,
                        struct http_reply *rep);
/* Stops the report worker, resumes the requests it suspended, frees the
 * cached pages. Accepts NULL; returns NULL. */
struct http_report_cache *http_report_cache_free(struct http_report_cache *rc);
/* A reload: the worker reads policy names from cfg from now on, and cached
 * pages are recomputed. */
void http_report_set_config(struct http *h, const struct config *cfg);

/* ---- MHD glue (http.c) ---- */
/* Runs MHD once (also after connections were resumed) and re-arms the event
 * sources. */
void http_run(struct http *h);

/* ---- the listener's defences (http_guard.c) ---- */
#define HTTP_TICK_USEC (1000 * 1000ull)
#define HTTP_STALL_S 15
/* MHD_OPTION_NOTIFY_CONNECTION: tracks the connection, evicts when full. */
void http_guard_on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                              enum MHD_ConnectionNotificationCode code);
/* MHD_OPTION_URI_LOG_CALLBACK: the struct http_request of a new request
 * (freed by the completion callback), with the raw target checked. */
void *http_guard_on_uri(void *cls, const char *uri, struct MHD_Connection *c);
/* A response was queued for c / its request completed. */
void http_guard_request_queued(struct MHD_Connection *c);
void http_guard_request_done(struct http *h, struct MHD_Connection *c);
/* The whole request of c is received and waits for the daemon (a retry
 * while the store is locked): no deadline, never evicted, like a queued
 * response. */
void http_guard_request_held(struct MHD_Connection *c);
/* What MHD logged (progress of accept(), resource limits). */
void http_guard_mhd_log(struct http *h, const char *msg);
/* Checks the request head (target, header fields, framing); false = refused,
 * with the response in rep. */
bool http_guard_check_head(struct http *h, struct MHD_Connection *c, const struct http_request *rq,
                           const char *method, const char *version, struct http_reply *rep);
/* Whether the self-check found the listener stuck, with nothing accepted since. */
bool http_guard_deaf(const struct http *h);
/* Adds the tick timer (after MHD started) / removes it and the table. */
int http_guard_start(struct http *h);
void http_guard_stop(struct http *h);

/* ---- pure helpers with unit tests ---- */
/* A header field as MHD stored it: pointers into the request head. */
struct http_field {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
};
/* Whether s[0..n) holds no control byte other than HTAB (header values). */
bool http_value_ok(const char *s, size_t n);
/* Whether the request target s[0..n) holds no control byte, raw or as %XX. */
bool http_uri_ok(const char *s, size_t n);
/* Whether the fields f[0..n), parsed in place by MHD 0.9 from a head ending
 * at end (NULs where ':' and the line ends were), each end at their line
 * end: false when MHD cut a value at a NUL byte or joined folded lines. */
bool http_fields_intact(const struct http_field *f, size_t n, const char *end);
enum http_stall_state {
  HTTP_STALL_NONE,      /* accepting, or nothing waits */
  HTTP_STALL_WAITING,   /* connections wait and none was accepted since the last step */
  HTTP_STALL_DEAF,      /* ... for longer than the limit: reported once */
  HTTP_STALL_RECOVERED, /* accepting again after HTTP_STALL_DEAF */
};
/* One step of the accept self-check at time now (any unit, as limit):
 * waiting = connections wait in the listen backlog; accepted = a counter of
 * connections accepted so far. */
enum http_stall_state http_stall_step(struct http_stall *st, bool waiting, uint64_t accepted,
                                      uint64_t now, uint64_t limit);
/* RFC 9112 framing: more than one Host, none in HTTP/1.1, differing
 * Content-Length values, both Content-Length and Transfer-Encoding → 400;
 * a Transfer-Encoding other than one "chunked" → 501. Returns 0 or the
 * status, with a static reason in *why. */
unsigned http_framing_check(const struct http_field *f, size_t n, bool http11, const char **why);
/* SMS keywords (http_sms.c). */
enum http_sms_keyword {
  SMS_KW_NONE, /* not a keyword: a message for the owner */
  SMS_KW_STOP,
  SMS_KW_START,
  SMS_KW_HELP,
  SMS_KW_RENEW,
  SMS_KW_CALL,
};
/* The keyword the whole body is (case-insensitive, surrounding blanks
 * ignored), or SMS_KW_NONE: the carriers' English words (STOP, START,
 * HELP and their synonyms) for everyone, then the kw_* words of sms.po in
 * t along locale's fallback chain (NULL: the default locale; t NULL: the
 * carriers' words only), and with any_locale (a sender of unknown
 * language) along the chain of every locale directory. */
enum http_sms_keyword http_sms_keyword(struct templates *t, const char *locale, bool any_locale,
                                       const char *body);
/* The catalogues of pages and SMS replies (pages.po, sms.po): Templates=,
 * opened on first use after start and after each reload (which frees
 * h->pages), else only the built-in English catalogues. Borrowed from h;
 * NULL on OOM. */
struct templates *http_templates(struct http *h);
/* HTML-escapes s into b (& < > " '). */
int http_html_escape(struct buf *b, const char *s);
