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
};

/* One request being received (MHD's con_cls). */
struct http_request {
  enum metrics_endpoint ep; /* for metrics */
  struct buf body;          /* the body so far (at most HTTP_MAX_BODY bytes) */
  size_t seen;              /* body bytes received, kept or not */
  bool too_large;           /* more than HTTP_MAX_BODY: answered 413 */
  bool queued;              /* a response is queued already */
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

/* ---- request helpers (http.c) ---- */
int64_t http_now(const struct http *h);
/* A request header's value (NULL when absent). */
const char *http_header(struct MHD_Connection *c, const char *name);
/* The media type of Content-Type without parameters, lower-case, in out
 * ("" when absent). */
void http_content_type(struct MHD_Connection *c, char *out, size_t n);
/* Lets MHD process now (after connections were resumed) and re-arms its timer. */
void http_run(struct http *h);
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

/* ---- pure helpers with unit tests ---- */
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
 * ignored), or SMS_KW_NONE. */
enum http_sms_keyword http_sms_keyword(const char *body);
/* true for zh, zh-CN, zh_Hans... (pages and SMS replies in Chinese). */
bool http_locale_is_zh(const char *locale);
/* HTML-escapes s into b (& < > " '). */
int http_html_escape(struct buf *b, const char *s);
