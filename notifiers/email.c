/* email: one complete Internet message from its parts (see email.h).
 *
 * Built into a struct buf in one pass: header fields through notifiers/mime.h
 * (folding, RFC 2047), then the MIME tree with quoted-printable or base64
 * bodies. Owns nothing beyond the call; pure. */
#include "notifiers/email.h"

#include "core/util.h"
#include "notifiers/mime.h"

#define B64_LINE 76 /* base64 characters per body line (RFC 2045 §6.8) */
#define QP_LINE 76  /* quoted-printable characters per line, "=" included */

/* ---- addresses ---------------------------------------------------------------- */

static char *strip(const char *s, size_t n) {
  while (n > 0 && (*s == ' ' || *s == '\t'))
    s++, n--;
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
    n--;
  return strndup(s, n);
}

int email_parse_address(const char *s, char **ret_name, char **ret_addr) {
  if (!s || !ret_name || !ret_addr)
    return -EINVAL;
  _cleanup_free_ char *name = NULL, *addr = NULL;
  const char *lt = strrchr(s, '<');
  if (lt) {
    const char *gt = strchr(lt, '>');
    if (!gt || !isempty(gt + 1 + strspn(gt + 1, " \t")))
      return -EINVAL;
    if (!(addr = strip(lt + 1, (size_t)(gt - lt - 1))) || !(name = strip(s, (size_t)(lt - s))))
      return -ENOMEM;
    size_t n = strlen(name);
    if (n >= 2 && name[0] == '"' && name[n - 1] == '"') {
      memmove(name, name + 1, n - 2);
      name[n - 2] = 0;
    }
    if (!*name) {
      free(name);
      name = NULL;
    }
  } else if (!(addr = strip(s, strlen(s))))
    return -ENOMEM;
  if (!mime_valid_email(addr))
    return -EINVAL;
  *ret_name = TAKE_PTR(name);
  *ret_addr = TAKE_PTR(addr);
  return 0;
}

const char *email_domain(const char *addr) {
  const char *at = addr ? strrchr(addr, '@') : NULL;
  return at && at[1] ? at + 1 : NULL;
}

/* ---- body encodings ------------------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Output is staged in a small local buffer and appended in chunks: a
 * message body is encoded once per send, so this is on the hot path. */
struct stage {
  struct buf *b;
  char v[4096];
  size_t n;
  int r;
};

static void stage_flush(struct stage *s) {
  if (s->n > 0 && s->r >= 0)
    s->r = buf_append(s->b, s->v, s->n);
  s->n = 0;
}

static inline void stage_put(struct stage *s, const char *p, size_t n) {
  if (s->n + n > sizeof s->v)
    stage_flush(s);
  memcpy(s->v + s->n, p, n);
  s->n += n;
}

/* base64 of data, CRLF after every B64_LINE characters and at the end. */
static int put_base64(struct buf *b, const unsigned char *p, size_t n) {
  struct stage s = {.b = b};
  size_t col = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16;
    if (i + 1 < n)
      v |= (uint32_t)p[i + 1] << 8;
    if (i + 2 < n)
      v |= p[i + 2];
    char q[6] = {b64[v >> 18 & 63],
                 b64[v >> 12 & 63],
                 i + 1 < n ? b64[v >> 6 & 63] : '=',
                 i + 2 < n ? b64[v & 63] : '=',
                 '\r',
                 '\n'};
    col += 4;
    bool eol = col >= B64_LINE || i + 3 >= n;
    stage_put(&s, q, eol ? 6 : 4);
    if (eol)
      col = 0;
  }
  if (n == 0)
    stage_put(&s, "\r\n", 2);
  stage_flush(&s);
  return s.r;
}

/* Quoted-printable (RFC 2045 §6.7) of text; LF and CRLF become CRLF. Ends
 * with CRLF. Lines beginning with "." are safe as they are (libcurl
 * dot-stuffs); an 'F' starting "From " is encoded, which costs nothing and
 * spares mbox readers. */
static int put_qp(struct buf *b, const char *text) {
  static const char hex[] = "0123456789ABCDEF";
  struct stage s = {.b = b};
  size_t col = 0;
  for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
    if (*p == '\r' && p[1] == '\n')
      continue;
    if (*p == '\n') {
      stage_put(&s, "\r\n", 2);
      col = 0;
      continue;
    }
    bool eol = p[1] == 0 || p[1] == '\n' || (p[1] == '\r' && p[2] == '\n');
    bool plain = (*p >= 33 && *p <= 126 && *p != '=') || ((*p == ' ' || *p == '\t') && !eol);
    if (col == 0 && *p == 'F' && strncmp((const char *)p, "From ", 5) == 0)
      plain = false;
    size_t w = plain ? 1 : 3;
    /* keep room for a soft break "=" unless this is the line's last char */
    if (col + w > (eol ? QP_LINE : QP_LINE - 1)) {
      stage_put(&s, "=\r\n", 3);
      col = 0;
    }
    if (plain)
      stage_put(&s, (const char *)p, 1);
    else
      stage_put(&s, (const char[]){'=', hex[*p >> 4], hex[*p & 15]}, 3);
    col += w;
  }
  if (col > 0)
    stage_put(&s, "\r\n", 2);
  stage_flush(&s);
  if (s.r >= 0 && (b->len < 2 || memcmp(b->data + b->len - 2, "\r\n", 2) != 0))
    s.r = buf_puts(b, "\r\n");
  return s.r;
}

/* True when more than a sixth of the bytes are not ASCII (QP would be larger
 * than base64 there). */
static bool mostly_binary(const char *s) {
  size_t n = 0, hi = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++)
    hi += *p >= 0x80;
  return hi * 6 > n;
}

/* Valid UTF-8 (any control characters allowed: it is a body). */
static bool utf8_ok(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    size_t n = *p < 0x80             ? 1
               : (*p & 0xE0) == 0xC0 ? 2
               : (*p & 0xF0) == 0xE0 ? 3
               : (*p & 0xF8) == 0xF0 ? 4
                                     : 0;
    if (n == 0 || (n == 2 && *p < 0xC2))
      return false;
    for (size_t i = 1; i < n; i++)
      if ((p[i] & 0xC0) != 0x80)
        return false;
    p += n;
  }
  return true;
}

/* One leaf part: its headers and encoded body. */
static int put_text_part(struct buf *b, const char *type, const char *body) {
  bool b64body = mostly_binary(body);
  int r = buf_printf(b, "Content-Type: %s; charset=utf-8\r\nContent-Transfer-Encoding: %s\r\n\r\n",
                     type, b64body ? "base64" : "quoted-printable");
  if (r < 0)
    return r;
  return b64body ? put_base64(b, (const unsigned char *)body, strlen(body)) : put_qp(b, body);
}

/* ---- headers ------------------------------------------------------------------- */

static int put_line(struct buf *b, char *line) {
  int r = buf_puts(b, line);
  free(line);
  return r < 0 ? r : buf_puts(b, "\r\n");
}

static int put_unstructured(struct buf *b, const char *name, const char *value) {
  char *h = NULL;
  int r = mime_header(name, value, &h);
  return r < 0 ? r : put_line(b, h);
}

static int put_address(struct buf *b, const char *field, const char *name, const char *addr) {
  char *h = NULL;
  int r = mime_header_addresses(field, &(struct mime_address){.name = name, .email = addr}, 1, &h);
  return r < 0 ? r : put_line(b, h);
}

/* A URL fit for List-Unsubscribe: <URL>: printable ASCII, no '<', '>' or
 * spaces, http(s). */
static bool url_ok(const char *u) {
  if (strncmp(u, "https://", 8) != 0 && strncmp(u, "http://", 7) != 0)
    return false;
  for (const char *p = u; *p; p++)
    if (*p <= ' ' || *p >= 0x7F || *p == '<' || *p == '>')
      return false;
  return strlen(u) < 900;
}

static bool token_ok(const char *s) {
  if (isempty(s))
    return false;
  for (; *s; s++)
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
          strchr("-._", *s)))
      return false;
  return true;
}

/* Boundaries keep to [A-Za-z0-9=_.-] (no quoting problems in any reader). */
static void boundary_clean(char *s) {
  for (; *s; s++)
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
          strchr("=_.-", *s)))
      *s = '_';
}

static int put_headers(struct buf *b, const struct email *e) {
  int r;
  char date[MIME_DATE_MAX];
  if ((r = put_address(b, "From", e->from_name, e->from_addr)) < 0)
    return r;
  if (e->reply_to) {
    _cleanup_free_ char *n = NULL, *a = NULL;
    if ((r = email_parse_address(e->reply_to, &n, &a)) < 0 ||
        (r = put_address(b, "Reply-To", n, a)) < 0)
      return r;
  }
  if ((r = put_address(b, "To", e->to_name, e->to_addr)) < 0)
    return r;
  if ((r = put_unstructured(b, "Subject", isempty(e->subject) ? "(no subject)" : e->subject)) < 0)
    return r;
  if ((r = mime_date(e->date, date)) < 0 || (r = buf_printf(b, "Date: %s\r\n", date)) < 0)
    return r;
  const char *key = e->idem_key;
  if (strncmp(key, "rk-", 3) == 0)
    key += 3;
  const char *host = e->msgid_host ? e->msgid_host : email_domain(e->from_addr);
  char *msgid = NULL;
  r = mime_message_id(key, host ? host : "renewd", &msgid);
  if (r == -EINVAL && host) /* e.g. an internationalized From domain */
    r = mime_message_id(key, "renewd", &msgid);
  if (r < 0)
    return r;
  r = buf_printf(b, "Message-ID: %s\r\nMIME-Version: 1.0\r\n", msgid);
  free(msgid);
  if (r < 0)
    return r;
  if (e->auto_submitted &&
      (r = buf_puts(b, "Auto-Submitted: auto-generated\r\nX-Auto-Response-Suppress: All\r\n")) < 0)
    return r;
  if (e->unsubscribe_url) {
    if (!url_ok(e->unsubscribe_url))
      return -EINVAL;
    /* never folded: some readers keep the folding blank in the value; a
     * long URL makes the line longer than 78, which RFC 5322 allows (998) */
    if ((r = buf_printf(b, "List-Unsubscribe: <%s>\r\n", e->unsubscribe_url)) < 0 ||
        (r = buf_puts(b, "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")) < 0)
      return r;
  }
  for (size_t i = 0; i < e->n_extra; i++)
    if (e->extra[i].value && (r = put_unstructured(b, e->extra[i].name, e->extra[i].value)) < 0)
      return r;
  return 0;
}

/* ---- the message ------------------------------------------------------------------ */

int email_format(const struct email *e, char **ret, size_t *ret_len) {
  if (!e || !ret || isempty(e->from_addr) || isempty(e->to_addr) || isempty(e->idem_key))
    return -EINVAL;
  const char *text = e->text ? e->text : "";
  if (!utf8_ok(text) || (e->html && !utf8_ok(e->html)) || (e->calendar && !utf8_ok(e->calendar)))
    return -EINVAL;
  if (e->calendar &&
      (!token_ok(e->calendar_method) || (e->calendar_filename && !token_ok(e->calendar_filename))))
    return -EINVAL;

  struct buf b = {0};
  int r = put_headers(&b, e);
  if (r < 0)
    goto fail;

  /* boundaries: "=_" never occurs in QP or base64 output */
  const char *key = e->idem_key;
  char mixed[80], alt[80];
  snprintf(mixed, sizeof mixed, "=_renewd_mixed_%.40s", key);
  snprintf(alt, sizeof alt, "=_renewd_alt_%.40s", key);
  boundary_clean(mixed);
  boundary_clean(alt);

  if (e->calendar) {
    r = buf_printf(&b,
                   "Content-Type: multipart/mixed;\r\n boundary=\"%s\"\r\n\r\n"
                   "This is a multi-part message in MIME format.\r\n\r\n--%s\r\n",
                   mixed, mixed);
    if (r < 0)
      goto fail;
  }
  if (e->html) {
    if ((r = buf_printf(&b, "Content-Type: multipart/alternative;\r\n boundary=\"%s\"\r\n\r\n",
                        alt)) < 0 ||
        (!e->calendar &&
         (r = buf_puts(&b, "This is a multi-part message in MIME format.\r\n\r\n")) < 0) ||
        (r = buf_printf(&b, "--%s\r\n", alt)) < 0 ||
        (r = put_text_part(&b, "text/plain", text)) < 0 ||
        (r = buf_printf(&b, "\r\n--%s\r\n", alt)) < 0 ||
        (r = put_text_part(&b, "text/html", e->html)) < 0 ||
        (r = buf_printf(&b, "\r\n--%s--\r\n", alt)) < 0)
      goto fail;
  } else if ((r = put_text_part(&b, "text/plain", text)) < 0)
    goto fail;

  if (e->calendar) {
    const char *fn = e->calendar_filename ? e->calendar_filename : "calendar.ics";
    if ((r = buf_printf(&b,
                        "\r\n--%s\r\n"
                        "Content-Type: text/calendar; charset=utf-8; method=%s;\r\n"
                        " name=\"%s\"\r\n"
                        "Content-Disposition: attachment; filename=\"%s\"\r\n"
                        "Content-Transfer-Encoding: base64\r\n\r\n",
                        mixed, e->calendar_method, fn, fn)) < 0 ||
        (r = put_base64(&b, (const unsigned char *)e->calendar, strlen(e->calendar))) < 0 ||
        (r = buf_printf(&b, "\r\n--%s--\r\n", mixed)) < 0)
      goto fail;
  }
  size_t len = b.len;
  char *out = buf_steal(&b);
  if (!out)
    return -ENOMEM;
  *ret = out;
  if (ret_len)
    *ret_len = len;
  return 0;
fail:
  buf_free(&b);
  return r;
}
