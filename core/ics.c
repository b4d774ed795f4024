/* ics: deadline events and meeting requests as iCalendar text (see ics.h).
 *
 * Meeting requests are built with libical and serialised by
 * icalcomponent_as_ical_string_r(); the component tree is freed before
 * returning, only the copied text leaves this file. Deadline events (one per
 * reminder email: the hot path) are written directly, byte for byte what
 * that serialiser makes of the same tree; libical still parses the alarm
 * duration and does the date arithmetic. */
#include "core/ics.h"

#include <libical/ical.h>

#include "core/util.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(icalcomponent *, icalcomponent_free);

/* No C0 control characters (TAB allowed, LF when multiline) and no DEL. */
static bool text_ok(const char *s, bool multiline) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c < 0x20 && c != '\t' && !(multiline && c == '\n')) || c == 0x7F)
      return false;
  }
  return true;
}

/* URIs, addresses and UIDs: printable, no spaces. */
static bool token_ok(const char *s) {
  if (isempty(s))
    return false;
  for (; *s; s++)
    if ((unsigned char)*s <= 0x20 || *s == 0x7F)
      return false;
  return true;
}

static struct icaltimetype utc_time(int64_t t) {
  return icaltime_from_timet_with_zone((time_t)t, 0, icaltimezone_get_utc_timezone());
}

/* VCALENDAR with VERSION, PRODID and METHOD. */
static icalcomponent *new_calendar(icalproperty_method method) {
  icalcomponent *cal = icalcomponent_new_vcalendar();
  if (!cal)
    return NULL;
  icalcomponent_add_property(cal, icalproperty_new_version("2.0"));
  icalcomponent_add_property(cal, icalproperty_new_prodid("-//renewd//EN"));
  icalcomponent_add_property(cal, icalproperty_new_calscale("GREGORIAN"));
  icalcomponent_add_property(cal, icalproperty_new_method(method));
  return cal;
}

/* UID, DTSTAMP, SUMMARY and the optional DESCRIPTION, URL. */
static void add_common(icalcomponent *ev, const char *uid, int64_t dtstamp, const char *summary,
                       const char *description, const char *url) {
  icalcomponent_add_property(ev, icalproperty_new_uid(uid));
  icalcomponent_add_property(ev, icalproperty_new_dtstamp(utc_time(dtstamp)));
  icalcomponent_add_property(ev, icalproperty_new_summary(summary));
  if (description)
    icalcomponent_add_property(ev, icalproperty_new_description(description));
  if (url)
    icalcomponent_add_property(ev, icalproperty_new_url(url));
}

static int serialize(icalcomponent *cal, char **ret) {
  char *s = icalcomponent_as_ical_string_r(cal);
  if (!s)
    return -ENOMEM;
  char *copy = strdup(s);
  icalmemory_free_buffer(s);
  if (!copy)
    return -ENOMEM;
  *ret = copy;
  return 0;
}

static bool common_ok(const char *uid, const char *summary, const char *description,
                      const char *url) {
  return token_ok(uid) && !isempty(summary) && text_ok(summary, false) &&
         (!description || text_ok(description, true)) && (!url || token_ok(url));
}

/* ---- the deadline event, written directly ----------------------------------- *
 *
 * One deadline event goes with every reminder email, so it is written
 * straight into a buffer rather than built as a libical component tree and
 * serialised: the same bytes icalcomponent_as_ical_string_r() produces for
 * the tree the meeting request below builds the slow way (tests/test-ics.c
 * compares both on many generated inputs). What that serialiser does, and
 * is reproduced here:
 *  - TEXT values (UID, SUMMARY, DESCRIPTION) escape '\', ';' and ',' with a
 *    backslash and a newline as "\n"; a TAB stays as it is (CR, BS and FF,
 *    which text_ok() refuses anyway, are dropped); URI values (URL) are
 *    written as they are;
 *  - each property line, CRLF included, is folded: while 75 or more bytes
 *    are left, the line is cut after the last ';', ':' or ' ' among the
 *    first 74 bytes (not counting the first), else before the last byte of
 *    the first 75 that starts a character (ASCII or a UTF-8 lead byte); every
 *    further line starts with a blank. */

#define ICS_FOLD 75 /* libical's MAX_LINE_LEN */

/* Appends line (a whole property line including its CRLF) folded. */
static int put_folded(struct buf *b, const char *line, size_t len) {
  const char *start = line;
  size_t left = len;
  bool first = true;
  int r = 0;
  while (left > 0 && r >= 0) {
    const char *next = NULL;
    if (left < ICS_FOLD)
      next = start + left;
    else {
      for (const char *p = start + ICS_FOLD - 2; p > start && !next; p--)
        if (*p == ';' || *p == ':' || *p == ' ')
          next = p + 1;
      for (const char *p = start + ICS_FOLD - 1; p > start && !next; p--)
        if ((*p & 0x80) == 0 || (*p & 0xC0) == 0xC0)
          next = p;
      if (!next)
        next = start + ICS_FOLD - 1;
    }
    if (!first)
      r = buf_append(b, "\r\n ", 3);
    first = false;
    if (r >= 0)
      r = buf_append(b, start, (size_t)(next - start));
    left -= (size_t)(next - start);
    start = next;
  }
  return r;
}

/* TEXT escaping (see above) of s into b. */
static int put_text(struct buf *b, const char *s) {
  int r = 0;
  const char *run = s;
  for (const char *p = s; *p && r >= 0; p++) {
    const char *esc = NULL;
    switch (*p) {
    case '\n':
      esc = "\\n";
      break;
    case ';':
      esc = "\\;";
      break;
    case ',':
      esc = "\\,";
      break;
    case '\\':
      esc = "\\\\";
      break;
    case '\r':
    case '\b':
    case '\f':
      esc = "";
      break;
    default:
      continue;
    }
    if (p > run)
      r = buf_append(b, run, (size_t)(p - run));
    if (r >= 0)
      r = buf_puts(b, esc);
    run = p + 1;
  }
  if (r >= 0 && *run)
    r = buf_puts(b, run);
  return r;
}

/* One property line "NAME:value" (TEXT-escaped when text), folded into out;
 * line is scratch space. */
static int put_prop(struct buf *out, struct buf *line, const char *name, const char *value,
                    bool text) {
  buf_reset(line);
  int r = buf_puts(line, name);
  if (r >= 0)
    r = text ? put_text(line, value) : buf_puts(line, value);
  if (r >= 0)
    r = buf_append(line, "\r\n", 2);
  return r < 0 ? r : put_folded(out, line->data, line->len);
}

int ics_deadline(const struct ics_deadline *d, char **ret) {
  if (!d || !ret || !common_ok(d->uid, d->summary, d->description, d->url))
    return -EINVAL;
  if (d->year < 1 || d->year > 9999 || d->month < 1 || d->month > 12 || d->day < 1 ||
      d->day > icaltime_days_in_month(d->month, d->year))
    return -EINVAL;
  bool alarm = !d->alarm || *d->alarm;
  char *trigger = NULL;
  if (alarm) {
    struct icaldurationtype dur = icaldurationtype_from_string(d->alarm ? d->alarm : "-P1D");
    /* libical reads a bare "P" as zero; RFC 5545 wants at least one field */
    if (icaldurationtype_is_bad_duration(dur) || (d->alarm && !strpbrk(d->alarm, "0123456789")))
      return -EINVAL;
    /* as the TRIGGER value prints it (normalised) */
    if (!(trigger = icaldurationtype_as_ical_string_r(dur)))
      return -ENOMEM;
  }

  struct icaltimetype day = icaltime_null_date();
  day.year = d->year;
  day.month = d->month;
  day.day = d->day;
  struct icaltimetype next = day;
  icaltime_adjust(&next, 1, 0, 0, 0);
  struct icaltimetype stamp = utc_time(d->dtstamp);
  char v[64];

  struct buf out = {0}, line = {0};
  int r = buf_puts(&out, "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//renewd//EN\r\n"
                         "CALSCALE:GREGORIAN\r\nMETHOD:PUBLISH\r\nBEGIN:VEVENT\r\n");
  if (r >= 0)
    r = put_prop(&out, &line, "UID:", d->uid, true);
  if (r >= 0) {
    snprintf(v, sizeof v, "%04d%02d%02dT%02d%02d%02dZ", stamp.year, stamp.month, stamp.day,
             stamp.hour, stamp.minute, stamp.second);
    r = put_prop(&out, &line, "DTSTAMP:", v, false);
  }
  if (r >= 0)
    r = put_prop(&out, &line, "SUMMARY:", d->summary, true);
  if (r >= 0 && d->description)
    r = put_prop(&out, &line, "DESCRIPTION:", d->description, true);
  if (r >= 0 && d->url)
    r = put_prop(&out, &line, "URL:", d->url, false);
  if (r >= 0) {
    snprintf(v, sizeof v, "%04d%02d%02d", day.year, day.month, day.day);
    r = put_prop(&out, &line, "DTSTART;VALUE=DATE:", v, false);
  }
  if (r >= 0) {
    snprintf(v, sizeof v, "%04d%02d%02d", next.year, next.month, next.day);
    r = put_prop(&out, &line, "DTEND;VALUE=DATE:", v, false);
  }
  if (r >= 0)
    r = buf_puts(&out, "TRANSP:TRANSPARENT\r\n");
  if (r >= 0 && alarm) {
    r = buf_puts(&out, "BEGIN:VALARM\r\nACTION:DISPLAY\r\n");
    if (r >= 0)
      r = put_prop(&out, &line, "TRIGGER:", trigger, false);
    if (r >= 0)
      r = put_prop(&out, &line, "DESCRIPTION:", d->summary, true);
    if (r >= 0)
      r = buf_puts(&out, "END:VALARM\r\n");
  }
  if (r >= 0)
    r = buf_puts(&out, "END:VEVENT\r\nEND:VCALENDAR\r\n");
  icalmemory_free_buffer(trigger);
  buf_free(&line);
  if (r < 0) {
    buf_free(&out);
    return r;
  }
  *ret = buf_steal(&out);
  return *ret ? 0 : -ENOMEM;
}

/* "mailto:<email>" with an optional CN parameter. */
static icalproperty *cal_address(icalproperty *(*make)(const char *), const char *email,
                                 const char *name) {
  _cleanup_free_ char *uri = strprintf("mailto:%s", email);
  if (!uri)
    return NULL;
  icalproperty *p = make(uri);
  if (p && name)
    icalproperty_add_parameter(p, icalparameter_new_cn(name));
  return p;
}

int ics_meeting_request(const struct ics_meeting *m, char **ret) {
  if (!m || !ret || !common_ok(m->uid, m->summary, m->description, m->url) || m->end <= m->start ||
      m->sequence < 0 || !token_ok(m->organizer_email) || !token_ok(m->attendee_email) ||
      (m->organizer_name && !text_ok(m->organizer_name, false)) ||
      (m->attendee_name && !text_ok(m->attendee_name, false)))
    return -EINVAL;

  _cleanup_(icalcomponent_freep) icalcomponent *cal = new_calendar(ICAL_METHOD_REQUEST);
  icalcomponent *ev = icalcomponent_new_vevent();
  if (!cal || !ev) {
    if (ev)
      icalcomponent_free(ev);
    return -ENOMEM;
  }
  icalcomponent_add_component(cal, ev);
  add_common(ev, m->uid, m->dtstamp, m->summary, m->description, m->url);
  icalcomponent_add_property(ev, icalproperty_new_dtstart(utc_time(m->start)));
  icalcomponent_add_property(ev, icalproperty_new_dtend(utc_time(m->end)));
  icalcomponent_add_property(ev, icalproperty_new_sequence(m->sequence));
  icalcomponent_add_property(ev, icalproperty_new_status(ICAL_STATUS_CONFIRMED));

  icalproperty *org =
      cal_address(icalproperty_new_organizer, m->organizer_email, m->organizer_name);
  icalproperty *att = cal_address(icalproperty_new_attendee, m->attendee_email, m->attendee_name);
  if (!org || !att) {
    if (org)
      icalproperty_free(org);
    if (att)
      icalproperty_free(att);
    return -ENOMEM;
  }
  icalproperty_add_parameter(att, icalparameter_new_role(ICAL_ROLE_REQPARTICIPANT));
  icalproperty_add_parameter(att, icalparameter_new_partstat(ICAL_PARTSTAT_NEEDSACTION));
  icalproperty_add_parameter(att, icalparameter_new_rsvp(ICAL_RSVP_TRUE));
  icalcomponent_add_property(ev, org);
  icalcomponent_add_property(ev, att);
  return serialize(cal, ret);
}
