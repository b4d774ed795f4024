/* notifier: helpers shared by the channel backends (see notifier.h): key
 * checks with file:line errors, result classification for curl, HTTP and
 * SMTP, Retry-After parsing, Headers= handling, dotted JSON paths.
 * Pure functions; no state, never blocks, never logs. */
#include "notifiers/notifier.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <time.h>

#include "notifiers/smstext.h"

static const char *const common_keys[] = {
    "MaxConcurrent", "RatePerSecond", "RatePerMinute", "ConnectTimeout",   "Timeout",
    "RetryBase",     "RetryMax",      "MaxAttempts",   "FailureThreshold", "ProbeInterval",
};

bool notify_common_key(const char *key) {
  for (size_t i = 0; i < ELEMENTSOF(common_keys); i++)
    if (streq(common_keys[i], key))
      return true;
  return false;
}

int notify_error(struct config_errors *errs, const struct config_channel *ch,
                 const struct config_kv *kv, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (!errs)
    return -EINVAL;
  const char *file = kv ? kv->file : ch->file;
  unsigned line = kv ? kv->line : ch->line;
  /* [Ops] is kept as a channel without a type */
  char sect[160];
  if (ch->type)
    snprintf(sect, sizeof sect, "[Channel %s]", ch->name);
  else
    snprintf(sect, sizeof sect, "[%s]", ch->name ? ch->name : "Ops");
  if (kv)
    config_errors_add(errs, file ? file : "?", line, "%s %s=: %s", sect, kv->key, msg);
  else
    config_errors_add(errs, file ? file : "?", line, "%s: %s", sect, msg);
  return -EINVAL;
}

static bool in_list(const char *const *list, const char *key) {
  for (size_t i = 0; list && list[i]; i++)
    if (streq(list[i], key))
      return true;
  return false;
}

int notify_check_keys(const struct config_channel *ch, const char *const *known,
                      const char *const *required, struct config_errors *errs) {
  int r = 0;
  for (size_t i = 0; i < ch->n_options; i++) {
    const struct config_kv *kv = &ch->options[i];
    if (!in_list(known, kv->key) && !notify_common_key(kv->key))
      r = notify_error(errs, ch, kv, "unknown key for Type=%s", ch->type ? ch->type : "?");
  }
  for (size_t i = 0; required && required[i]; i++)
    if (!config_channel_lookup(ch, required[i]))
      r = notify_error(errs, ch, NULL, "%s= is required for Type=%s", required[i],
                       ch->type ? ch->type : "?");
  return r;
}

static bool v4_private(uint32_t a) {
  return (a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 ||
         (a & 0xffc00000u) == 0x64400000u || /* 100.64/10 CGNAT */
         (a & 0xffff0000u) == 0xa9fe0000u || /* 169.254/16 link-local */
         (a & 0xfff00000u) == 0xac100000u || /* 172.16/12 */
         (a & 0xffffff00u) == 0xc0000000u || /* 192.0.0/24 protocol assignments */
         (a & 0xffffff00u) == 0xc0000200u || /* 192.0.2/24 documentation */
         (a & 0xffff0000u) == 0xc0a80000u || /* 192.168/16 */
         (a & 0xfffe0000u) == 0xc6120000u || /* 198.18/15 benchmarking */
         (a & 0xffffff00u) == 0xc6336400u || /* 198.51.100/24 documentation */
         (a & 0xffffff00u) == 0xcb007100u || /* 203.0.113/24 documentation */
         (a & 0xf0000000u) == 0xe0000000u || /* 224/4 multicast */
         (a & 0xf0000000u) == 0xf0000000u;   /* 240/4 reserved, 255.255.255.255 */
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool v6_private(const uint8_t a[static 16]) {
  static const uint8_t zero[12] = {0};
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  if (memcmp(a, zero, 12) == 0) /* ::, ::1 and IPv4-compatible ::a.b.c.d */
    return be32(a + 12) <= 1 || v4_private(be32(a + 12));
  if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0)
    return v4_private(be32(a + 12));
  if (a[0] == 0x20 && a[1] == 0x02) /* 6to4: 2002:AABB:CCDD::/48 */
    return v4_private(be32(a + 2));
  return (a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b && a[4] == 0x00 &&
          a[5] == 0x01) ||                                                 /* 64:ff9b:1::/48 */
         (a[0] == 0x01 && a[1] == 0x00 && !memcmp(a + 2, zero, 6)) ||      /* 100::/64 */
         (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8) || /* 2001:db8::/32 */
         (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x00 && a[3] == 0x00) || /* Teredo */
         (a[0] & 0xfe) == 0xfc ||                                          /* fc00::/7 */
         (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) ||                        /* fe80::/10 */
         (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0) ||                        /* fec0::/10 */
         a[0] == 0xff;                                                     /* ff00::/8 */
}

bool notify_addr_private(const struct sockaddr *sa) {
  if (!sa)
    return true;
  if (sa->sa_family == AF_INET)
    return v4_private(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
  if (sa->sa_family == AF_INET6)
    return v6_private(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
  return true;
}

bool notify_ip_private(const char *ip) {
  if (isempty(ip))
    return true;
  struct in_addr a4;
  struct in6_addr a6;
  char buf[INET6_ADDRSTRLEN + 1];
  size_t n = strcspn(ip, "%"); /* a zone id ("fe80::1%eth0") */
  if (n >= sizeof buf)
    return true;
  memcpy(buf, ip, n);
  buf[n] = 0;
  if (inet_pton(AF_INET, buf, &a4) == 1)
    return v4_private(ntohl(a4.s_addr));
  if (inet_pton(AF_INET6, buf, &a6) == 1)
    return v6_private(a6.s6_addr);
  return true;
}

bool notify_url_has_password(const char *url) {
  const char *p = url ? strstr(url, "://") : NULL;
  if (!p)
    return false;
  p += 3;
  size_t auth = strcspn(p, "/?#");
  const char *at = memrchr(p, '@', auth);
  return at && memchr(p, ':', (size_t)(at - p));
}

enum notify_kind notify_kind_of_recipient(const char *recipient) {
  if (!recipient)
    return NOTIFY_EMAIL;
  if (recipient[0] == '+')
    return NOTIFY_SMS;
  if (strncasecmp(recipient, "http://", 7) == 0 || strncasecmp(recipient, "https://", 8) == 0)
    return NOTIFY_WEBHOOK;
  return NOTIFY_EMAIL;
}

enum notify_kind notify_channel_kind(const struct notifier_ops *ops,
                                     const struct config_channel *ch) {
  if (!ops)
    return NOTIFY_EMAIL;
  return ops->channel_kind && ch ? ops->channel_kind(ch) : ops->kind;
}

unsigned notify_optout_bit(enum notify_kind k) {
  switch (k) {
  case NOTIFY_EMAIL:
    return OPTOUT_EMAIL;
  case NOTIFY_SMS:
    return OPTOUT_SMS;
  case NOTIFY_WEBHOOK:
    return OPTOUT_WEBHOOK;
  }
  return 0;
}

void notify_classify_curl(CURLcode code, const char *errbuf, struct notify_result *res) {
  const char *what = !isempty(errbuf) ? errbuf : curl_easy_strerror(code);
  switch (code) {
  case CURLE_OK:
    res->status = NOTIFY_SENT;
    return;
  case CURLE_UNSUPPORTED_PROTOCOL:
  case CURLE_URL_MALFORMAT:
  case CURLE_NOT_BUILT_IN:
  case CURLE_LOGIN_DENIED:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_REMOTE_ACCESS_DENIED:
  case CURLE_TOO_MANY_REDIRECTS:
  case CURLE_FILESIZE_EXCEEDED:
    res->status = NOTIFY_PERMANENT;
    break;
  default:
    /* connect refused/reset, DNS, timeouts, partial replies, TLS handshake
     * hiccups, the receiver going away: worth another try */
    res->status = NOTIFY_TRANSIENT;
    break;
  }
  snprintf(res->error, sizeof res->error, "%s", what);
}

void notify_classify_http(long status, const long *success, int64_t retry_after, const char *body,
                          struct notify_result *res) {
  res->http_status = status;
  bool ok = false;
  if (success && success[0]) {
    for (size_t i = 0; success[i]; i++)
      ok = ok || success[i] == status;
  } else
    ok = status >= 200 && status < 300;
  if (ok) {
    res->status = NOTIFY_SENT;
    return;
  }
  bool transient = status == 408 || status == 425 || status == 429 || status >= 500 || status == 0;
  res->status = transient ? NOTIFY_TRANSIENT : NOTIFY_PERMANENT;
  res->retry_after = transient ? retry_after : 0;
  /* a short, printable excerpt of the answer helps ops */
  char excerpt[160] = "";
  size_t k = 0;
  for (const char *p = body; p && *p && k + 1 < sizeof excerpt; p++)
    excerpt[k++] = (unsigned char)*p < 0x20 ? ' ' : *p;
  excerpt[k] = 0;
  snprintf(res->error, sizeof res->error, "HTTP %ld%s%s", status, k ? ": " : "", excerpt);
}

void notify_classify_smtp(long code, const char *errbuf, struct notify_result *res) {
  res->http_status = code;
  if (code >= 200 && code < 300) {
    res->status = NOTIFY_SENT;
    return;
  }
  res->status = code >= 500 && code < 600 ? NOTIFY_PERMANENT : NOTIFY_TRANSIENT;
  snprintf(res->error, sizeof res->error, "SMTP %ld%s%s", code, isempty(errbuf) ? "" : ": ",
           isempty(errbuf) ? "" : errbuf);
}

int notify_parse_retry_after(const char *value, int64_t now, int64_t *ret) {
  if (isempty(value))
    return -EINVAL;
  while (*value == ' ' || *value == '\t')
    value++;
  size_t n = strlen(value);
  while (n > 0 && isspace((unsigned char)value[n - 1]))
    n--;
  char v[64];
  if (n == 0 || n >= sizeof v)
    return -EINVAL;
  memcpy(v, value, n);
  v[n] = 0;
  int64_t secs;
  if (parse_int64(v, &secs) >= 0) {
    if (secs < 0)
      return -EINVAL;
    *ret = MIN(secs, (int64_t)7 * 86400);
    return 0;
  }
  /* IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT" (the preferred form) */
  struct tm tm = {0};
  const char *end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (!end || *end)
    return -EINVAL;
  int64_t t = (int64_t)timegm(&tm);
  *ret = MIN(MAX(t - now, 0), (int64_t)7 * 86400);
  return 0;
}

static bool header_valid(const char *s) {
  const char *colon = strchr(s, ':');
  if (!colon || colon == s)
    return false;
  for (const char *p = s; p < colon; p++)
    if (*p <= 32 || *p >= 127)
      return false;
  for (const char *p = colon; *p; p++)
    if (*p == '\r' || *p == '\n')
      return false;
  return true;
}

int notify_check_headers(const struct config_channel *ch, struct config_errors *errs) {
  int r = 0;
  for (size_t i = 0; i < ch->n_options; i++)
    if (streq(ch->options[i].key, "Headers") && !header_valid(ch->options[i].value))
      r = notify_error(errs, ch, &ch->options[i], "expected \"Name: value\"");
  const struct config_kv *kv = config_channel_lookup(ch, "HeadersFile");
  if (kv && ((strchr(kv->value, '/') && kv->value[0] != '/') || streq(kv->value, ".") ||
             streq(kv->value, "..")))
    r = notify_error(errs, ch, kv, "must be an absolute path or a credential name");
  return r;
}

void notify_headers_free(struct curl_slist *list) {
  for (struct curl_slist *l = list; l; l = l->next)
    if (l->data)
      explicit_bzero(l->data, strlen(l->data));
  curl_slist_free_all(list);
}

int notify_append_secret_headers(const struct config_channel *ch, struct curl_slist **list,
                                 struct config_errors *errs) {
  const struct config_kv *kv = config_channel_lookup(ch, "HeadersFile");
  if (!kv)
    return 0;
  char *text = NULL;
  int r = read_secret(kv->value, &text);
  if (r < 0) {
    notify_error(errs, ch, kv, "cannot read the file: %s", strerror(-r));
    return r;
  }
  size_t len = strlen(text);
  unsigned line = 0;
  for (char *p = text, *e; r >= 0 && p < text + len; p = e + 1) {
    e = strchr(p, '\n');
    if (!e)
      e = text + len;
    *e = 0;
    line++;
    size_t n = strlen(p);
    if (n > 0 && p[n - 1] == '\r')
      p[--n] = 0;
    if (n == 0 || p[0] == '#')
      continue;
    if (!header_valid(p)) {
      /* the line is not quoted: it holds a credential */
      notify_error(errs, ch, kv, "line %u: expected \"Name: value\"", line);
      r = -EINVAL;
    } else {
      struct curl_slist *l = curl_slist_append(*list, p);
      if (!l)
        r = -ENOMEM;
      else
        *list = l;
    }
  }
  explicit_bzero(text, len);
  free(text);
  return r;
}

int notify_append_headers(const struct config_channel *ch, struct curl_slist **list) {
  for (size_t i = 0; i < ch->n_options; i++) {
    if (!streq(ch->options[i].key, "Headers"))
      continue;
    struct curl_slist *l = curl_slist_append(*list, ch->options[i].value);
    if (!l)
      return -ENOMEM;
    *list = l;
  }
  return 0;
}

int notify_json_path(const char *json, size_t len, const char *path, char *out, size_t n) {
  if (!json || !path || !out || n == 0)
    return -EINVAL;
  json_t *root = json_loadb(json, len, JSON_DECODE_ANY, NULL);
  if (!root)
    return -EINVAL;
  json_t *cur = root;
  _cleanup_free_ char *copy = strdup(path);
  if (!copy) {
    json_decref(root);
    return -ENOMEM;
  }
  char *save = NULL;
  for (char *tok = strtok_r(copy, ".", &save); tok && cur; tok = strtok_r(NULL, ".", &save)) {
    if (json_is_array(cur)) {
      int64_t idx;
      cur = parse_int64(tok, &idx) >= 0 && idx >= 0 ? json_array_get(cur, (size_t)idx) : NULL;
    } else
      cur = json_object_get(cur, tok);
  }
  int r = -ENOENT;
  if (json_is_string(cur)) {
    snprintf(out, n, "%s", json_string_value(cur));
    r = 0;
  } else if (json_is_integer(cur)) {
    snprintf(out, n, "%" JSON_INTEGER_FORMAT, json_integer_value(cur));
    r = 0;
  }
  json_decref(root);
  return r;
}
