/* notifier: the interface every channel backend implements (struct
 * notifier_ops), and the per-transfer state the dispatcher shares with it.
 *
 * One backend per channel Type= (sink, smtp, sms, webhook); the dispatcher
 * keeps them in ONE table (notifier_backends[] in dispatch_setup.c) and picks one
 * by name, so adding a channel type adds a file and a table line, never an
 * if-chain.
 *
 * A backend instance (the `void *state` its new() returns) belongs to one
 * [Channel NAME] section and lives as long as that config; it never touches
 * the store, the clock or the event loop. Sending is one of two shapes:
 *
 *  - synchronous (send != NULL, e.g. the Maildir sink): the message is
 *    delivered inside send() and the result filled at once;
 *  - through libcurl (prepare/finish != NULL, network backends): prepare()
 *    configures an easy handle the dispatcher owns (already reset, with
 *    NOSIGNAL, timeouts, error buffer, write/header callbacks and PRIVATE set:
 *    the backend must not change those) and fills the struct notify_xfer
 *    (request headers, body, SMTP recipients); the dispatcher runs the
 *    transfer on its curl multi, then calls finish() to classify it.
 *
 * WHAT A NEW BACKEND (e.g. notifiers/smtp.c) IMPLEMENTS:
 *   1. `const struct notifier_ops notifier_smtp_ops = { .type = "smtp", ... }`
 *      declared below, and one line in notifier_backends[] in dispatch_setup.c, plus
 *      its .c in the notify_dispatch SOURCES (notifiers/CMakeLists.txt);
 *   2. check_config(): every key of the section (config_channel.options)
 *      either known to the backend or to the dispatcher (notify_common_key())
 *      else "file:line: unknown key"; required keys present; values parsed.
 *      Secrets (PasswordFile=, AuthTokenFile=, SecretFile=) are only checked
 *      for syntax here; new() reads them with read_secret() (a path or a
 *      $CREDENTIALS_DIRECTORY credential name). Never put a secret in an
 *      error text, a provider id or anything reported.
 *   3. new()/free();
 *   4. send() OR prepare()+finish(); for SMTP: prepare() sets CURLOPT_URL,
 *      MAIL_FROM, xfer->recipients (the dispatcher sets CURLOPT_MAIL_RCPT
 *      from it), UPLOAD with the message in xfer->request (the dispatcher
 *      installs a READFUNCTION over xfer->request when xfer->upload is true),
 *      using mail_format() (notifiers/mail.h) for the message; finish()
 *      maps SMTP replies with notify_classify_smtp();
 *   5. optionally check_message() (e.g. SMS segment limits) used with sample
 *      data at config check time and again before each send.
 *
 * Results: NOTIFY_SENT (+ provider message id), NOTIFY_TRANSIENT (retry;
 * optional Retry-After in seconds, a minimum for the backoff) or
 * NOTIFY_PERMANENT (dead at once) with an error text. Failures the dispatcher
 * sees itself (curl errors, timeouts) are classified by notify_classify_curl().
 *
 * Pure interface header: no global state. */
#pragma once

#include <curl/curl.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/store.h"
#include "core/util.h"

struct message; /* notifiers/render.h */
struct templates;

/* What kind of address a message goes to (and which opt-out bit applies). */
enum notify_kind {
  NOTIFY_EMAIL,
  NOTIFY_SMS,
  NOTIFY_WEBHOOK,
};

enum notify_status {
  NOTIFY_SENT,
  NOTIFY_TRANSIENT, /* try again later */
  NOTIFY_PERMANENT, /* never going to work: dead letter */
};

/* What a provider lookup found (struct notifier_ops.lookup_finish). */
enum notify_lookup {
  NOTIFY_LOOKUP_FOUND,
  NOTIFY_LOOKUP_ABSENT,
  NOTIFY_LOOKUP_FAILED,
};

#define NOTIFY_ERROR_MAX 512
#define NOTIFY_ID_MAX 256

struct notify_result {
  enum notify_status status;
  int64_t retry_after;             /* TRANSIENT: seconds the receiver asked to wait, 0 = none */
  char provider_id[NOTIFY_ID_MAX]; /* SENT: provider's message id, "" = none */
  char error[NOTIFY_ERROR_MAX];    /* TRANSIENT/PERMANENT: why; never holds a secret */
  long http_status;                /* last HTTP status / SMTP reply code, 0 = none */
};

/* Everything a backend gets about one row to send. Borrowed for the call. */
struct notify_request {
  const struct reminder *row; /* the outbox row (idem_key, recipient, tier, ...) */
  const struct message *msg;  /* rendered parts and the webhook event body */
  enum notify_kind kind;      /* address kind of the row's recipient */
  int64_t now;                /* the dispatcher clock's "now" (seconds) */
};

/* Where backends find shared resources. Borrowed for the call. */
struct notify_env {
  const struct config *cfg;
  struct templates *templates; /* may be NULL (directory missing) */
};

/* Per-transfer state for curl backends; owned by the dispatcher, which frees
 * headers/recipients/buffers and calls backend_free(backend_data). */
struct notify_xfer {
  struct curl_slist *headers;    /* CURLOPT_HTTPHEADER, set by the dispatcher when not NULL */
  struct curl_slist *recipients; /* CURLOPT_MAIL_RCPT (SMTP), set by the dispatcher */
  struct buf request;            /* request body (POSTFIELDS or upload data) */
  bool upload;                   /* true: the dispatcher streams request via READFUNCTION */
  size_t upload_off;             /* READFUNCTION position */
  struct buf response;           /* response body (first NOTIFY_RESPONSE_MAX bytes) */
  int64_t retry_after;           /* from a Retry-After header (seconds), 0 = none */
  int64_t now;                   /* clock instant at start, to resolve HTTP-date Retry-After */
  /* Optional backend check right before the request (CURLOPT_PREREQFUNCTION
   * is the dispatcher's: it calls this first). CURL_PREREQFUNC_OK or _ABORT. */
  int (*prereq)(struct notify_xfer *nx, const char *primary_ip);
  bool refused;                     /* a backend refused the destination (e.g. private IP) */
  char refused_why[128];            /* ... and why */
  char curl_error[CURL_ERROR_SIZE]; /* CURLOPT_ERRORBUFFER */
  void *backend_data;               /* backend's own per-transfer data, or NULL */
  void (*backend_free)(void *);     /* frees backend_data */
};

#define NOTIFY_RESPONSE_MAX (64 * 1024)

struct notifier_ops {
  const char *type;      /* the Type= value */
  enum notify_kind kind; /* address kind (sink: NOTIFY_EMAIL; it adapts per row) */
  /* Optional: the address kind of channel ch when it depends on the section
   * (the sink's Kind=); NULL = kind. Use notify_channel_kind(). */
  enum notify_kind (*channel_kind)(const struct config_channel *ch);
  /* Validates ch; appends "file:line: message" errors. Returns 0 or -EINVAL. */
  int (*check_config)(const struct config_channel *ch, const struct notify_env *env,
                      struct config_errors *errs);
  /* Creates the instance (reads secrets). Returns 0 or -errno with errs filled. */
  int (*new)(const struct config_channel *ch, const struct notify_env *env, void **ret_state,
             struct config_errors *errs);
  void *(*free)(void *state);
  /* Optional: can this rendered message go out through channel ch at all?
   * 0, or -EINVAL with a reason in err (e.g. too many SMS segments). Used
   * with sample data at config check time (no instance exists then); the
   * backend applies the same rule again when it sends. */
  int (*check_message)(const struct config_channel *ch, const struct message *msg, char *err,
                       size_t errlen);
  /* Synchronous delivery (sink). */
  int (*send)(void *state, const struct notify_request *req, struct notify_result *res);
  /* Optional, synchronous backends: makes the sends since the last flush
   * durable (e.g. one syncfs + directory fsync for a batch of Maildir files).
   * Called before their results are committed; on failure (-errno, reason in
   * err) those sends count as transient failures. */
  int (*flush)(void *state, char *err, size_t errlen);
  /* Curl delivery: configure easy + xfer. Returns 0, or < 0 with res filled
   * (usually NOTIFY_PERMANENT, e.g. an invalid recipient) to skip the transfer. */
  int (*prepare)(void *state, const struct notify_request *req, CURL *easy,
                 struct notify_xfer *xfer, struct notify_result *res);
  /* Classifies a finished transfer (code = its CURLcode). */
  void (*finish)(void *state, const struct notify_request *req, CURL *easy,
                 struct notify_xfer *xfer, CURLcode code, struct notify_result *res);
  /* Optional reconciliation, for channels whose provider has no
   * idempotency key but lets us list what it sent: after an attempt with an
   * unknown outcome the dispatcher asks before any resend. lookup_supported:
   * whether this instance can (e.g. only Provider=twilio). lookup_prepare:
   * like prepare(), for the lookup request of req's message. lookup_finish:
   * FOUND (res: NOTIFY_SENT + provider id), ABSENT (the provider has no such
   * message: sending it is safe), FAILED (res: why; ask again later). */
  bool (*lookup_supported)(void *state);
  int (*lookup_prepare)(void *state, const struct notify_request *req, CURL *easy,
                        struct notify_xfer *xfer, struct notify_result *res);
  enum notify_lookup (*lookup_finish)(void *state, const struct notify_request *req, CURL *easy,
                                      struct notify_xfer *xfer, CURLcode code,
                                      struct notify_result *res);
};

extern const struct notifier_ops notifier_sink_ops;
extern const struct notifier_ops notifier_webhook_ops;
extern const struct notifier_ops notifier_sms_ops;
extern const struct notifier_ops notifier_smtp_ops; /* notifiers/smtp.c */

/* ---- helpers shared by backends (notifier.c) ------------------------------- */

/* Keys every channel accepts (the dispatcher's own: MaxConcurrent=,
 * RatePerSecond=, RatePerMinute=, ConnectTimeout=, Timeout=, RetryBase=,
 * RetryMax=, MaxAttempts=, FailureThreshold=, ProbeInterval=). */
bool notify_common_key(const char *key);
/* Appends "unknown key" errors for options neither in known[] (NULL-terminated)
 * nor common, and "missing" errors for required[] (NULL-terminated) keys.
 * Returns 0 or -EINVAL. */
int notify_check_keys(const struct config_channel *ch, const char *const *known,
                      const char *const *required, struct config_errors *errs);
/* Appends an error at kv's (or the section's, when kv is NULL) file:line. */
int notify_error(struct config_errors *errs, const struct config_channel *ch,
                 const struct config_kv *kv, const char *fmt, ...) _printf_(4, 5);

/* Whether a destination address is one a webhook must not reach unless
 * AllowPrivate=yes: IPv4 0/8, 10/8, 100.64/10 (CGNAT), 127/8, 169.254/16,
 * 172.16/12, 192.0.0/24, 192.0.2/24, 192.168/16, 198.18/15, 198.51.100/24,
 * 203.0.113/24, 224/4 (multicast), 240/4 (reserved, broadcast); IPv6 ::,
 * ::1, fe80::/10, fec0::/10, fc00::/7, ff00::/8, 100::/64, 2001:db8::/32,
 * Teredo 2001::/32, local NAT64 64:ff9b:1::/48, and the IPv4 address inside
 * IPv4-mapped/compatible, NAT64 (64:ff9b::/96) and 6to4 (2002::/16)
 * addresses. Families other than IPv4/IPv6 count as private. */
bool notify_addr_private(const struct sockaddr *sa);
/* The same for a numeric address string ("10.0.0.1", "::1", "fe80::1%eth0");
 * NULL or anything unparsable counts as private (refused). */
bool notify_ip_private(const char *ip);

/* Whether an http(s)/smtp(s) URL carries a password in its userinfo
 * ("https://user:secret@host/"). Secrets belong in files (PasswordFile=,
 * SecretFile=, ...), never in renewd.conf: the backends refuse such a URL=
 * (without quoting it). */
bool notify_url_has_password(const char *url);

/* Address kind of a recipient string: "+..." E.164 = SMS, "http(s)://" = webhook,
 * else email. */
enum notify_kind notify_kind_of_recipient(const char *recipient);
/* The address kind rows of channel ch (served by ops) go to. */
enum notify_kind notify_channel_kind(const struct notifier_ops *ops,
                                     const struct config_channel *ch);
/* OPTOUT_* bit of a kind. */
unsigned notify_optout_bit(enum notify_kind k);

/* Classification of transport-level failures: connect errors, DNS, timeouts,
 * resets are transient; TLS certificate problems, bad URLs, refused logins
 * are permanent. Fills res->status and res->error. */
void notify_classify_curl(CURLcode code, const char *errbuf, struct notify_result *res);
/* HTTP: 2xx (or in success[] when given, 0-terminated) sent; 408, 425, 429 and
 * 5xx transient; any other status permanent. retry_after copied for transient. */
void notify_classify_http(long status, const long *success, int64_t retry_after, const char *body,
                          struct notify_result *res);
/* SMTP: 2xx sent, 4xx transient, 5xx permanent. */
void notify_classify_smtp(long code, const char *errbuf, struct notify_result *res);

/* Parses a Retry-After value (delta seconds or an HTTP-date) relative to now.
 * Returns seconds >= 0, or -EINVAL. */
int notify_parse_retry_after(const char *value, int64_t now, int64_t *ret);

/* Appends every Headers= assignment of ch ("Name: value"; the key may be
 * repeated, one header each) to *list. Returns 0 or -ENOMEM. */
int notify_append_headers(const struct config_channel *ch, struct curl_slist **list);
/* Checks every Headers= assignment is "Name: value". */
int notify_check_headers(const struct config_channel *ch, struct config_errors *errs);
/* HeadersFile= (webhook, sms): headers that carry a credential
 * ("Authorization: Bearer ..."), read with read_secret() (an absolute path
 * or a systemd credential name), one "Name: value" per line, blank lines and
 * '#' lines skipped. notify_check_headers() checks the key's syntax only;
 * this reads the file and appends its headers to *list. Errors go to errs
 * without quoting the file's lines. Returns 0, -EINVAL, -ENOMEM or -errno. */
int notify_append_secret_headers(const struct config_channel *ch, struct curl_slist **list,
                                 struct config_errors *errs);
/* Wipes every header's text, then frees the list (headers may hold a
 * credential from HeadersFile=). Accepts NULL. */
void notify_headers_free(struct curl_slist *list);

/* Reads a dotted JSON path ("data.sid", "messages.0.id") from a JSON text;
 * writes a string or integer value into out. Returns 0 or -ENOENT/-EINVAL. */
int notify_json_path(const char *json, size_t len, const char *path, char *out, size_t n);
