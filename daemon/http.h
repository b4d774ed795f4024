/* http: renewd's HTTP listener, one libmicrohttpd daemon driven by the
 * daemon's sd-event loop (no threads).
 *
 * Endpoints (docs/http.md; the API in docs/api.md and docs/openapi.yaml):
 *   GET  /r/<token>      confirmation page of the answer the token names
 *   POST /r/<token>      records it (form field confirm=yes required)
 *   GET  /u/<token>      unsubscribe page;  POST: RFC 8058 one-click unsubscribe
 *   POST /sms/inbound    Twilio inbound SMS webhook (X-Twilio-Signature)
 *   /api/v1/...          JSON API, bearer tokens (ApiTokenFile=)
 *   GET  /report         the renewal report page (bearer token; cached 60 s)
 *   GET  /healthz        store reachable, loop alive, listener accepting
 *   GET  /metrics        Prometheus text format (daemon/metrics.h)
 * A GET never changes anything (mail scanners prefetch links).
 *
 * Event loop: MHD runs with MHD_USE_EPOLL and no thread of its own; its epoll
 * fd is one sd-event io source and MHD_get_timeout() arms one timer source;
 * both call MHD_run(). The listening socket is the one systemd passes
 * (socket activation, renewd.socket, sd_listen_fds()) or else [Daemon]
 * Listen=. Limits ([HTTP] in the config, fixed at start): MaxConnections=
 * connections, MaxConnectionsPerClient= per client address, RequestTimeout=
 * for a whole request (head and body; http_guard.c drops a connection that
 * trickles, and the oldest incomplete one when the table is nearly full);
 * HTTP_TIMEOUT_S idle timeout, HTTP_MEMORY_LIMIT bytes per connection for
 * the request line and headers, HTTP_MAX_BODY bytes of body (413 beyond;
 * checked against Content-Length up front and as data arrives). Request
 * heads are checked before any handler (http_guard.c): control bytes or NUL
 * in the target or a header field → 400; RFC 9112 framing (Host,
 * Content-Length, Transfer-Encoding) → 400/501. A once-a-second self-check
 * reports a listener that stopped accepting (/healthz 503, deps.stalled).
 * A request whose store call meets a lock held by another process (-EBUSY:
 * the loop's connection never waits) is suspended and run again from a timer,
 * HTTP_BUSY_MIN_MS doubling to HTTP_BUSY_MAX_MS, for HTTP_BUSY_LIMIT_MS; then
 * 503 with Retry-After: HTTP_BUSY_RETRY_AFTER_S.
 * Bodies are parsed here (application/x-www-form-urlencoded, JSON with
 * jansson), never by MHD's post processor.
 *
 * Owns: the MHD daemon and its sockets, the two event sources, the secrets
 * (link keys, API tokens, the SMS auth token; wiped on free) and a validator.
 * Borrows everything in struct http_deps. Blocks only on short store
 * transactions (the answer itself) and, at start and reload, on reading the
 * secret files. Logs through the daemon's logger. */
#pragma once

#include <stddef.h>
#include <systemd/sd-event.h>

#include "config/config.h"
#include "core/cal.h"
#include "core/clock.h"
#include "core/store.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/sched.h"

#define HTTP_TIMEOUT_S 10
#define HTTP_MEMORY_LIMIT (32 * 1024)
#define HTTP_MAX_BODY (64 * 1024)
/* Retrying requests while the store is locked: below HTTP_TIMEOUT_S and
 * Twilio's 15 s webhook timeout. */
#define HTTP_BUSY_MIN_MS 10
#define HTTP_BUSY_MAX_MS 250
#define HTTP_BUSY_LIMIT_MS 8000
#define HTTP_BUSY_RETRY_AFTER_S 5

struct http;

/* What the listener borrows from the daemon. */
struct http_deps {
  struct store *store;      /* the daemon's connection (answers write through it) */
  struct cal *cal;          /* zones for dates on pages */
  const struct config *cfg; /* replaced by http_set_config() */
  const struct logger *log;
  const struct clock *clock; /* "now" (simulated under --simulate) */
  struct sched *sched;       /* for /metrics; may be NULL */
  struct metrics *metrics;   /* may be NULL */
  /* Called after an answer or an API write committed a change to contract_id
   * (the daemon re-plans it at once and kicks the dispatcher for owner
   * alerts). May be NULL. */
  void (*changed)(void *userdata, const char *contract_id);
  /* Called once when the listener stopped accepting connections (the daemon
   * fails its watchdog so systemd restarts it). May be NULL. */
  void (*stalled)(void *userdata);
  void *userdata;
};

/* Starts listening (socket activation or Listen=) and adds the event sources
 * to event. Secrets that cannot be read are logged and their endpoints
 * answer 503 (links) or 401/403 (API, SMS) until a reload reads them.
 * Returns 0, or -errno with a message in err (e.g. the address is in use). */
int http_new(sd_event *event, const struct http_deps *deps, struct http **ret, char *err,
             size_t errlen);
/* Takes the new config after a reload (SIGHUP): re-reads LinkKeyFile=,
 * ApiTokenFile= and the SMS auth token. The listening address does not
 * change until a restart. */
void http_set_config(struct http *h, const struct config *cfg);
/* Stops listening, closes every connection. Accepts NULL; returns NULL. */
struct http *http_free(struct http *h);
/* "127.0.0.1:8787" or "socket activation (fd 3)"; valid until http_free(). */
const char *http_address(const struct http *h);
