/* email: one complete Internet message from its parts (see email.h).
 *
 * The message is a GMime 3 object tree (GMimeMessage, GMimeMultipart,
 * GMimePart) written to a memory stream with CRLF line ends: GMime builds the
 * MIME structure, the part headers and their parameters (RFC 2231 where
 * needed), the Date and the quoted-printable or base64 bodies. The message's
 * own header fields are folded and RFC 2047-encoded by notifiers/mime.h and
 * handed to GMime as raw values: GMime 3.2 writes a text without spaces (a
 * Chinese subject) as one encoded-word of any length, past RFC 2047's 75
 * characters and RFC 5322's 78-character lines, and encodes an unknown
 * header's long "<URL>" (List-Unsubscribe), which breaks one-click readers.
 * What GMime would choose at random or from the environment is fixed here, so
 * the same parts give the same bytes: the boundaries (from the idempotency
 * key), the Date (e->date), the Message-ID, the charset (always UTF-8) and
 * each part's transfer encoding.
 *
 * GMime is initialised once per process (pthread_once), never shut down;
 * GMime and GLib allocations abort on exhaustion instead of failing. Owns
 * nothing beyond the call; no I/O, never blocks. */
#include "notifiers/email.h"

#include <pthread.h>

#include "core/util.h"
#include "notifiers/mime.h"

/* after core/util.h: GLib replaces its MIN/MAX with equivalent ones */
#include <gmime/gmime.h>

#define PROLOGUE "This is a multi-part message in MIME format."

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

/* ---- checks ---------------------------------------------------------------------- */

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

/* ---- the GMime tree ------------------------------------------------------------------ */

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void gmime_init_once(void) {
  g_mime_init();
}

/* LF or CRLF text as LF-only bytes (GMime writes CRLF on output). Caller frees. */
static char *to_lf(const char *s, size_t *ret_len) {
  size_t n = strlen(s), k = 0;
  char *out = malloc(n + 1);
  if (!out)
    return NULL;
  for (size_t i = 0; i < n; i++)
    if (!(s[i] == '\r' && s[i + 1] == '\n'))
      out[k++] = s[i];
  out[k] = 0;
  *ret_len = k;
  return out;
}

/* A leaf part of type/subtype with UTF-8 content body, in the given
 * transfer encoding. Quoted-printable content goes in with LF line ends (the
 * writer's newline filter makes them CRLF); base64 content is encoded byte
 * for byte (a .ics keeps its CRLF). NULL on -ENOMEM. */
static GMimePart *leaf(const char *type, const char *subtype, const char *body,
                       GMimeContentEncoding enc) {
  size_t len = strlen(body);
  _cleanup_free_ char *lf = enc == GMIME_CONTENT_ENCODING_BASE64 ? strdup(body) : to_lf(body, &len);
  if (!lf)
    return NULL;
  GMimePart *part = g_mime_part_new_with_type(type, subtype);
  g_mime_object_set_content_type_parameter(GMIME_OBJECT(part), "charset", "utf-8");
  GMimeStream *mem = g_mime_stream_mem_new_with_buffer(lf, len);
  GMimeDataWrapper *w = g_mime_data_wrapper_new_with_stream(mem, GMIME_CONTENT_ENCODING_DEFAULT);
  g_mime_part_set_content(part, w);
  g_mime_part_set_content_encoding(part, enc);
  g_object_unref(w);
  g_object_unref(mem);
  return part;
}

/* A text part: quoted-printable when mostly ASCII, base64 otherwise. */
static GMimePart *text_part(const char *subtype, const char *body) {
  return leaf("text", subtype, body,
              mostly_binary(body) ? GMIME_CONTENT_ENCODING_BASE64
                                  : GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
}

/* The body tree of e (see email.h); the caller unrefs it. */
static GMimeObject *body_tree(const struct email *e, const char *mixed, const char *alt) {
  GMimeObject *body = GMIME_OBJECT(text_part("plain", e->text ? e->text : ""));
  if (e->html) {
    GMimeMultipart *mp = g_mime_multipart_new_with_subtype("alternative");
    g_mime_multipart_set_boundary(mp, alt);
    if (!e->calendar)
      g_mime_multipart_set_prologue(mp, PROLOGUE);
    GMimePart *html = text_part("html", e->html);
    g_mime_multipart_add(mp, body);
    g_mime_multipart_add(mp, GMIME_OBJECT(html));
    g_object_unref(body);
    g_object_unref(html);
    body = GMIME_OBJECT(mp);
  }
  if (e->calendar) {
    const char *fn = e->calendar_filename ? e->calendar_filename : "calendar.ics";
    GMimePart *cal = leaf("text", "calendar", e->calendar, GMIME_CONTENT_ENCODING_BASE64);
    g_mime_object_set_content_type_parameter(GMIME_OBJECT(cal), "method", e->calendar_method);
    g_mime_object_set_content_type_parameter(GMIME_OBJECT(cal), "name", fn);
    g_mime_object_set_disposition(GMIME_OBJECT(cal), "attachment");
    g_mime_part_set_filename(cal, fn);
    GMimeMultipart *mp = g_mime_multipart_new_with_subtype("mixed");
    g_mime_multipart_set_boundary(mp, mixed);
    g_mime_multipart_set_prologue(mp, PROLOGUE);
    g_mime_multipart_add(mp, body);
    g_mime_multipart_add(mp, GMIME_OBJECT(cal));
    g_object_unref(body);
    g_object_unref(cal);
    body = GMIME_OBJECT(mp);
  }
  return body;
}

/* Appends header field name to o, written exactly as folded ("Name: value"
 * with CRLF SP folds, as notifiers/mime.h builds it): GMime takes the value
 * (an address header updates the message's address list) and writes the
 * raw text. Takes ownership of folded. 0 or -ENOMEM. */
static int put_raw(GMimeObject *o, const char *name, char *folded) {
  _cleanup_free_ char *f = folded;
  size_t skip = strlen(name) + 1, len = 0;
  if (!f)
    return -ENOMEM;
  _cleanup_free_ char *lf = to_lf(f + skip, &len); /* the newline filter writes CRLF */
  _cleanup_free_ char *raw = lf ? strprintf("%s\n", lf) : NULL;
  if (!raw)
    return -ENOMEM;
  /* GMime's own value: the unfolded text (what a reader gets back) */
  char *value = g_mime_utils_header_unfold(lf);
  g_mime_object_append_header(o, name, value + strspn(value, " "), NULL);
  g_free(value);
  GMimeHeaderList *list = g_mime_object_get_header_list(o);
  GMimeHeader *h = g_mime_header_list_get_header_at(list, g_mime_header_list_get_count(list) - 1);
  g_mime_header_set_raw_value(h, raw);
  return 0;
}

static char *unstructured(const char *name, const char *value) {
  char *h = NULL;
  return mime_header(name, value, &h) < 0 ? NULL : h;
}

static char *address(const char *field, const char *name, const char *addr) {
  char *h = NULL;
  return mime_header_addresses(field, &(struct mime_address){.name = name, .email = addr}, 1, &h) <
                 0
             ? NULL
             : h;
}

/* The Message-ID value without <>: rk-KEY@host (notifiers/mime.h). */
static int message_id(const struct email *e, char **ret) {
  const char *key = e->idem_key;
  if (strncmp(key, "rk-", 3) == 0)
    key += 3;
  const char *host = e->msgid_host ? e->msgid_host : email_domain(e->from_addr);
  char *id = NULL;
  int r = mime_message_id(key, host ? host : "renewd", &id);
  if (r == -EINVAL && host) /* e.g. an internationalized From domain */
    r = mime_message_id(key, "renewd", &id);
  if (r < 0)
    return r;
  size_t n = strlen(id);
  memmove(id, id + 1, n - 2); /* strip < > */
  id[n - 2] = 0;
  *ret = id;
  return 0;
}

/* Checks every field of e that GMime would take as given. */
static int check_email(const struct email *e, char **ret_reply_name, char **ret_reply_addr) {
  if (!mime_valid_email(e->from_addr) || !mime_valid_email(e->to_addr))
    return -EINVAL;
  const char *names[] = {e->from_name, e->to_name, e->subject};
  char *h = NULL;
  int r;
  for (size_t i = 0; i < ELEMENTSOF(names); i++) {
    /* the header rules of notifiers/mime.h: valid UTF-8, no control characters */
    if (names[i] && (r = mime_header("X", names[i], &h)) < 0)
      return r;
    free(h);
    h = NULL;
  }
  for (size_t i = 0; i < e->n_extra; i++) {
    if (!e->extra[i].value)
      continue;
    if ((r = mime_header(e->extra[i].name, e->extra[i].value, &h)) < 0)
      return r;
    free(h);
    h = NULL;
  }
  const char *text = e->text ? e->text : "";
  if (!utf8_ok(text) || (e->html && !utf8_ok(e->html)) || (e->calendar && !utf8_ok(e->calendar)))
    return -EINVAL;
  if (e->calendar &&
      (!token_ok(e->calendar_method) || (e->calendar_filename && !token_ok(e->calendar_filename))))
    return -EINVAL;
  if (e->unsubscribe_url && !url_ok(e->unsubscribe_url))
    return -EINVAL;
  if (e->reply_to)
    return email_parse_address(e->reply_to, ret_reply_name, ret_reply_addr);
  return 0;
}

/* ---- the message ------------------------------------------------------------------ */

int email_format(const struct email *e, char **ret, size_t *ret_len) {
  if (!e || !ret || isempty(e->from_addr) || isempty(e->to_addr) || isempty(e->idem_key))
    return -EINVAL;
  _cleanup_free_ char *rname = NULL, *raddr = NULL, *msgid = NULL;
  char date[MIME_DATE_MAX];
  int r = check_email(e, &rname, &raddr);
  if (r < 0 || (r = message_id(e, &msgid)) < 0 || (r = mime_date(e->date, date)) < 0)
    return r;
  pthread_once(&gmime_once, gmime_init_once);

  /* boundaries: "=_" never occurs in QP or base64 output */
  char mixed[80], alt[80];
  snprintf(mixed, sizeof mixed, "=_renewd_mixed_%.40s", e->idem_key);
  snprintf(alt, sizeof alt, "=_renewd_alt_%.40s", e->idem_key);
  boundary_clean(mixed);
  boundary_clean(alt);

  GMimeMessage *msg = g_mime_message_new(FALSE);
  GMimeObject *o = GMIME_OBJECT(msg);
  GDateTime *dt = g_date_time_new_from_unix_utc(e->date);
  _cleanup_free_ char *msgid_v = strprintf("<%s>", msgid);
  _cleanup_free_ char *unsub = e->unsubscribe_url ? strprintf("<%s>", e->unsubscribe_url) : NULL;
  r = msgid_v && (!e->unsubscribe_url || unsub) ? 0 : -ENOMEM;
  if (r >= 0)
    r = put_raw(o, "From", address("From", e->from_name, e->from_addr));
  if (r >= 0 && raddr)
    r = put_raw(o, "Reply-To", address("Reply-To", rname, raddr));
  if (r >= 0)
    r = put_raw(o, "To", address("To", e->to_name, e->to_addr));
  if (r >= 0)
    r = put_raw(o, "Subject",
                unstructured("Subject", isempty(e->subject) ? "(no subject)" : e->subject));
  if (r >= 0) {
    g_mime_message_set_date(msg, dt);
    /* as is, never folded: some readers keep a fold inside <URL> or <id> */
    r = put_raw(o, "Message-ID", strprintf("Message-ID: %s", msgid_v));
  }
  if (r >= 0)
    r = put_raw(o, "MIME-Version", strdup("MIME-Version: 1.0"));
  if (r >= 0 && e->auto_submitted)
    r = put_raw(o, "Auto-Submitted", strdup("Auto-Submitted: auto-generated"));
  if (r >= 0 && e->auto_submitted)
    r = put_raw(o, "X-Auto-Response-Suppress", strdup("X-Auto-Response-Suppress: All"));
  if (r >= 0 && unsub)
    r = put_raw(o, "List-Unsubscribe", strprintf("List-Unsubscribe: %s", unsub));
  if (r >= 0 && unsub)
    r = put_raw(o, "List-Unsubscribe-Post",
                strdup("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
  for (size_t i = 0; r >= 0 && i < e->n_extra; i++)
    if (e->extra[i].value)
      r = put_raw(o, e->extra[i].name, unstructured(e->extra[i].name, e->extra[i].value));
  g_date_time_unref(dt);
  if (r < 0) {
    g_object_unref(msg);
    return r;
  }
  GMimeObject *body = body_tree(e, mixed, alt);
  g_mime_message_set_mime_part(msg, body);
  g_object_unref(body);

  GMimeFormatOptions *fo = g_mime_format_options_new();
  g_mime_format_options_set_newline_format(fo, GMIME_NEWLINE_FORMAT_DOS);
  GMimeStream *out = g_mime_stream_mem_new();
  ssize_t n = g_mime_object_write_to_stream(o, fo, out);
  GByteArray *bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out));
  char *text = n >= 0 ? malloc(bytes->len + 1) : NULL;
  size_t len = bytes->len;
  if (text) {
    memcpy(text, bytes->data, len);
    text[len] = 0;
  }
  g_object_unref(out);
  g_mime_format_options_free(fo);
  g_object_unref(msg);
  if (!text)
    return n < 0 ? -EIO : -ENOMEM;
  *ret = text;
  if (ret_len)
    *ret_len = len;
  return 0;
}
