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
 * Cache. report_compute() reads every term of the period in one snapshot, on
 * the event loop: on a large book that is a noticeable pause. Pages are kept
 * HTTP_REPORT_CACHE_TTL_MS of real (monotonic) time per (from, to, by), in
 * HTTP_REPORT_CACHE_SLOTS slots (the oldest is replaced), so a manager
 * refreshing the page, or a dashboard polling it, does not rescan the store.
 * A page may therefore be up to that old (its "generated" line says when it
 * was computed). The cache is dropped on reload (policy names may change).
 *
 * Owns the cache (struct http_report_cache, hung off struct http and freed
 * with it). Blocks on the store while computing a page. Everything runs on
 * the event loop thread. */
#include <time.h>

#include "core/report.h"
#include "daemon/http_internal.h"

#define HTTP_REPORT_CACHE_TTL_MS 60000
#define HTTP_REPORT_CACHE_SLOTS 4
#define HTTP_REPORT_DEFAULT_DAYS 90
#define DAY INT64_C(86400)

struct http_report_slot {
  int64_t from, until; /* the period, [from, until) (UTC day starts) */
  int by;              /* enum report_by */
  int64_t made_ms;     /* clock_monotonic_ms() when computed */
  char *body;          /* the HTML page; owned; NULL = empty slot */
  size_t len;
};

struct http_report_cache {
  struct http_report_slot slot[HTTP_REPORT_CACHE_SLOTS];
};

struct http_report_cache *http_report_cache_free(struct http_report_cache *rc) {
  if (!rc)
    return NULL;
  for (size_t i = 0; i < HTTP_REPORT_CACHE_SLOTS; i++)
    free(rc->slot[i].body);
  free(rc);
  return NULL;
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

static const char *policy_of(const char *segment, void *ud) {
  const struct config *cfg = ud;
  const struct policy *p = cfg ? config_policy_for_segment(cfg, segment) : NULL;
  return p ? p->name : NULL;
}

/* The cached page of the key, if fresh. */
static struct http_report_slot *cache_find(struct http_report_cache *rc, int64_t from,
                                           int64_t until, int by, int64_t now_ms) {
  for (size_t i = 0; rc && i < HTTP_REPORT_CACHE_SLOTS; i++) {
    struct http_report_slot *s = &rc->slot[i];
    if (s->body && s->from == from && s->until == until && s->by == by &&
        now_ms - s->made_ms < HTTP_REPORT_CACHE_TTL_MS)
      return s;
  }
  return NULL;
}

/* Stores a page (takes ownership of body) in the empty, expired or oldest
 * slot. Without a cache (out of memory) the page is simply not kept. */
static void cache_put(struct http *h, int64_t from, int64_t until, int by, int64_t now_ms,
                      char *body, size_t len) {
  if (!h->report_cache && !(h->report_cache = calloc(1, sizeof *h->report_cache))) {
    free(body);
    return;
  }
  struct http_report_slot *v = h->report_cache->slot, *pick = &v[0];
  for (size_t i = 0; i < HTTP_REPORT_CACHE_SLOTS; i++) {
    if (!v[i].body) {
      pick = &v[i];
      break;
    }
    if (v[i].made_ms < pick->made_ms)
      pick = &v[i];
  }
  free(pick->body);
  *pick = (struct http_report_slot){
      .from = from, .until = until, .by = by, .made_ms = now_ms, .body = body, .len = len};
}

/* Computes and renders the page. Returns 0 with *ret (caller frees),
 * -ERANGE (period too long) or another -errno. */
static int render_page(struct http *h, int64_t from, int64_t until, int by, char **ret,
                       size_t *ret_len) {
  struct report_options o = {
      .from = from,
      .until = until,
      .now = http_now(h),
      .by = by,
      .policy_of = policy_of,
      .policy_ud = (void *)h->deps.cfg,
  };
  _cleanup_(report_freep) struct report *r = NULL;
  int k = report_compute(h->deps.store, &o, &r);
  if (k < 0)
    return k;
  char *body = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&body, &len);
  if (!f)
    return -ENOMEM;
  k = report_render_html(r, f);
  if (fclose(f) != 0 && k >= 0)
    k = -ENOMEM;
  if (k < 0) {
    free(body);
    return k;
  }
  *ret = body;
  *ret_len = len;
  return 0;
}

void http_report_handle(struct http *h, struct MHD_Connection *c, const char *method,
                        struct http_reply *rep) {
  if (!http_api_authorized(h, c)) {
    bool given = http_header(c, MHD_HTTP_HEADER_AUTHORIZATION) != NULL;
    http_reply_text(rep, 401, given ? "invalid bearer token\n" : "bearer token required\n");
    http_reply_header(rep, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                      given ? "Bearer realm=\"renewd\", error=\"invalid_token\""
                            : "Bearer realm=\"renewd\"");
    return;
  }
  if (!streq(method, "GET") && !streq(method, "HEAD")) {
    http_reply_text(rep, 405, "method not allowed\n");
    http_reply_header(rep, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    return;
  }

  const char *from_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "from");
  const char *to_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "to");
  const char *by_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "by");
  int64_t now = http_now(h), to_day, from_day;
  int by = REPORT_BY_TIER;
  if (!isempty(by_s) && (by = report_by_from_string(by_s)) < 0)
    return http_reply_text(rep, 400, "invalid by (tier, channel, segment, owner or policy)\n");
  if (!isempty(to_s)) {
    if (parse_day(to_s, &to_day) < 0)
      return http_reply_text(rep, 400, "invalid to (expected YYYY-MM-DD)\n");
  } else
    to_day = now - ((now % DAY) + DAY) % DAY;
  if (!isempty(from_s)) {
    if (parse_day(from_s, &from_day) < 0)
      return http_reply_text(rep, 400, "invalid from (expected YYYY-MM-DD)\n");
  } else
    from_day = to_day - (HTTP_REPORT_DEFAULT_DAYS - 1) * DAY;
  if (from_day > to_day)
    return http_reply_text(rep, 400, "from is after to\n");

  int64_t until = to_day + DAY, now_ms = clock_monotonic_ms();
  struct http_report_slot *hit = cache_find(h->report_cache, from_day, until, by, now_ms);
  buf_reset(&rep->body);
  if (hit) {
    if (buf_append(&rep->body, hit->body, hit->len) < 0)
      return http_reply_text(rep, 500, "out of memory\n");
  } else {
    char *body = NULL;
    size_t len = 0;
    int r = render_page(h, from_day, until, by, &body, &len);
    if (r == -ERANGE)
      return http_reply_text(rep, 400, "the period is too long\n");
    if (r < 0) {
      log_error(h->deps.log, "http: /report: cannot compute the report: %s%s%s", strerror(-r),
                *store_last_error(h->deps.store) ? ": " : "", store_last_error(h->deps.store));
      return http_reply_text(rep, r == -EBUSY ? 503 : 500, "the report cannot be computed now\n");
    }
    r = buf_append(&rep->body, body, len);
    cache_put(h, from_day, until, by, now_ms, body, len);
    if (r < 0)
      return http_reply_text(rep, 500, "out of memory\n");
  }
  rep->status = 200;
  rep->content_type = REPORT_HTML_CONTENT_TYPE;
}
