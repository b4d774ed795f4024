/* ics: deadline events and meeting requests as iCalendar text (see ics.h).
 *
 * Components are built with libical and serialised by
 * icalcomponent_as_ical_string_r(); the component tree is freed before
 * returning, only the copied text leaves this file. */
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

int ics_deadline(const struct ics_deadline *d, char **ret) {
  if (!d || !ret || !common_ok(d->uid, d->summary, d->description, d->url))
    return -EINVAL;
  if (d->year < 1 || d->year > 9999 || d->month < 1 || d->month > 12 || d->day < 1 ||
      d->day > icaltime_days_in_month(d->month, d->year))
    return -EINVAL;
  struct icaltriggertype trigger = {.time = icaltime_null_time()};
  bool alarm = !d->alarm || *d->alarm;
  if (alarm) {
    trigger.duration = icaldurationtype_from_string(d->alarm ? d->alarm : "-P1D");
    /* libical reads a bare "P" as zero; RFC 5545 wants at least one field */
    if (icaldurationtype_is_bad_duration(trigger.duration) ||
        (d->alarm && !strpbrk(d->alarm, "0123456789")))
      return -EINVAL;
  }

  _cleanup_(icalcomponent_freep) icalcomponent *cal = new_calendar(ICAL_METHOD_PUBLISH);
  icalcomponent *ev = icalcomponent_new_vevent();
  if (!cal || !ev) {
    if (ev)
      icalcomponent_free(ev);
    return -ENOMEM;
  }
  icalcomponent_add_component(cal, ev);
  add_common(ev, d->uid, d->dtstamp, d->summary, d->description, d->url);

  struct icaltimetype day = icaltime_null_date();
  day.year = d->year;
  day.month = d->month;
  day.day = d->day;
  struct icaltimetype next = day;
  icaltime_adjust(&next, 1, 0, 0, 0);
  icalcomponent_add_property(ev, icalproperty_new_dtstart(day));
  icalcomponent_add_property(ev, icalproperty_new_dtend(next));
  icalcomponent_add_property(ev, icalproperty_new_transp(ICAL_TRANSP_TRANSPARENT));

  if (alarm) {
    icalcomponent *va = icalcomponent_new_valarm();
    if (!va)
      return -ENOMEM;
    icalcomponent_add_component(ev, va);
    icalcomponent_add_property(va, icalproperty_new_action(ICAL_ACTION_DISPLAY));
    icalcomponent_add_property(va, icalproperty_new_trigger(trigger));
    icalcomponent_add_property(va, icalproperty_new_description(d->summary));
  }
  return serialize(cal, ret);
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
