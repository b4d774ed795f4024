/* Unit tests for core/ics: deadline events and meeting requests.
 *
 * Each output is checked twice: as raw text (CRLF line ends, lines folded at
 * 75 octets with a leading space, no UTF-8 character split, the key
 * property lines present) and by parsing it back with libical and comparing
 * every property and parameter with what was asked for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <libical/ical.h>

#include "core/ics.h"
#include "core/util.h"

#define NOW 1795379487 /* 2026-11-22T20:31:27Z */

/* Is s[0..len) valid UTF-8 by itself? */
static bool utf8_ok(const unsigned char *s, size_t len) {
  for (size_t i = 0; i < len;) {
    size_t n = s[i] < 0x80 ? 1 : (s[i] & 0xE0) == 0xC0 ? 2 : (s[i] & 0xF0) == 0xE0 ? 3 : 4;
    if (i + n > len)
      return false;
    for (size_t k = 1; k < n; k++)
      if ((s[i + k] & 0xC0) != 0x80)
        return false;
    i += n;
  }
  return true;
}

/* Checks the line structure and returns the unfolded text with "\n" line
 * ends (caller frees). */
static char *check_lines(const char *ics) {
  struct buf out = {0};
  size_t n_lines = 0;
  for (const char *l = ics; *l;) {
    const char *e = strstr(l, "\r\n");
    assert_non_null(e); /* every line ends in CRLF, including the last */
    size_t len = (size_t)(e - l);
    assert_null(memchr(l, '\n', len));
    assert_null(memchr(l, '\r', len));
    assert_true(len <= 75);
    assert_true(utf8_ok((const unsigned char *)l, len));
    if (*l == ' ')
      assert_int_equal(buf_append(&out, l + 1, len - 1), 0); /* continuation */
    else {
      if (n_lines++)
        assert_int_equal(buf_puts(&out, "\n"), 0);
      assert_int_equal(buf_append(&out, l, len), 0);
    }
    l = e + 2;
  }
  assert_int_equal(buf_puts(&out, "\n"), 0);
  return buf_steal(&out);
}

static void assert_has_line(const char *unfolded, const char *line) {
  _cleanup_free_ char *needle = strprintf("\n%s\n", line);
  _cleanup_free_ char *hay = strprintf("\n%s", unfolded);
  if (!strstr(hay, needle))
    fail_msg("missing line '%s' in:\n%s", line, unfolded);
}

static icalcomponent *parse_event(const char *ics, icalproperty_method method) {
  icalcomponent *cal = icalparser_parse_string(ics);
  assert_non_null(cal);
  assert_int_equal(icalcomponent_isa(cal), ICAL_VCALENDAR_COMPONENT);
  assert_int_equal(icalcomponent_count_errors(cal), 0);
  assert_int_equal(icalcomponent_get_method(cal), method);
  icalproperty *p = icalcomponent_get_first_property(cal, ICAL_PRODID_PROPERTY);
  assert_string_equal(icalproperty_get_prodid(p), "-//renewd//EN");
  p = icalcomponent_get_first_property(cal, ICAL_VERSION_PROPERTY);
  assert_string_equal(icalproperty_get_version(p), "2.0");
  assert_int_equal(icalcomponent_count_components(cal, ICAL_VEVENT_COMPONENT), 1);
  return cal;
}

static const char *prop_text(icalcomponent *c, icalproperty_kind k) {
  icalproperty *p = icalcomponent_get_first_property(c, k);
  return p ? icalproperty_get_value_as_string(p) : NULL;
}

/* ---- deadline ---- */

static const char long_summary[] =
    "续约提醒：您的合同将于2027年3月1日到期，请在到期前完成续约，以免服务中断。"
    "感谢您一直以来的支持！";

static void test_deadline(void **state) {
  const struct ics_deadline d = {
      .uid = "c1042-t3-early-0@renewd",
      .dtstamp = NOW,
      .year = 2027,
      .month = 2,
      .day = 28,
      .summary = long_summary,
      .description = "Line one; with, specials\nLine two: \\ backslash",
      .url =
          "https://renew.example.com/r/v1.riFsLgEAAAADAAAAAGs27IBDLTEwNDI.vmxWPxTEao0enmP6IpThvw",
  };
  _cleanup_free_ char *ics = NULL;
  assert_int_equal(ics_deadline(&d, &ics), 0);

  _cleanup_free_ char *u = check_lines(ics);
  assert_has_line(u, "BEGIN:VCALENDAR");
  assert_has_line(u, "VERSION:2.0");
  assert_has_line(u, "PRODID:-//renewd//EN");
  assert_has_line(u, "METHOD:PUBLISH");
  assert_has_line(u, "UID:c1042-t3-early-0@renewd");
  assert_has_line(u, "DTSTAMP:20261122T203127Z");
  assert_has_line(u, "DTSTART;VALUE=DATE:20270228");
  assert_has_line(u, "DTEND;VALUE=DATE:20270301");
  assert_has_line(u, "TRANSP:TRANSPARENT");
  assert_has_line(u, "DESCRIPTION:Line one\\; with\\, specials\\nLine two: \\\\ backslash");
  assert_has_line(u, "BEGIN:VALARM");
  assert_has_line(u, "ACTION:DISPLAY");
  assert_has_line(u, "TRIGGER:-P1D");
  assert_has_line(u, "END:VCALENDAR");
  assert_true(strlen(long_summary) > 75); /* so SUMMARY had to be folded */

  icalcomponent *cal = parse_event(ics, ICAL_METHOD_PUBLISH);
  icalcomponent *ev = icalcomponent_get_first_component(cal, ICAL_VEVENT_COMPONENT);
  assert_string_equal(icalcomponent_get_uid(ev), d.uid);
  assert_string_equal(icalcomponent_get_summary(ev), long_summary);
  assert_string_equal(icalcomponent_get_description(ev), d.description);
  assert_string_equal(prop_text(ev, ICAL_URL_PROPERTY), d.url);
  struct icaltimetype st = icalcomponent_get_dtstart(ev), en = icalcomponent_get_dtend(ev);
  assert_true(st.is_date);
  assert_int_equal(st.year, 2027);
  assert_int_equal(st.month, 2);
  assert_int_equal(st.day, 28);
  assert_true(en.is_date);
  assert_int_equal(en.month, 3);
  assert_int_equal(en.day, 1);
  struct icaltimetype stamp = icalcomponent_get_dtstamp(ev);
  assert_true(icaltime_is_utc(stamp));
  assert_int_equal(icaltime_as_timet(stamp), NOW);

  icalcomponent *va = icalcomponent_get_first_component(ev, ICAL_VALARM_COMPONENT);
  assert_non_null(va);
  icalproperty *p = icalcomponent_get_first_property(va, ICAL_ACTION_PROPERTY);
  assert_int_equal(icalproperty_get_action(p), ICAL_ACTION_DISPLAY);
  p = icalcomponent_get_first_property(va, ICAL_TRIGGER_PROPERTY);
  struct icaltriggertype tr = icalproperty_get_trigger(p);
  assert_int_equal(icaldurationtype_as_int(tr.duration), -86400);
  assert_string_equal(icalcomponent_get_description(va), long_summary);
  icalcomponent_free(cal);
}

static void test_deadline_dates_and_alarms(void **state) {
  static const struct {
    int y, m, d;
    const char *alarm;
    const char *start, *end, *trigger; /* trigger NULL = no VALARM */
  } v[] = {
      {2028, 2, 29, NULL, "20280229", "20280301", "-P1D"}, /* leap day */
      {2026, 12, 31, "-PT15H", "20261231", "20270101", "-PT15H"},
      {2027, 3, 1, "-P1W", "20270301", "20270302", "-P1W"},
      {2027, 3, 1, "PT0S", "20270301", "20270302", "PT0S"},
      {2027, 3, 1, "", "20270301", "20270302", NULL},
  };
  for (size_t i = 0; i < ELEMENTSOF(v); i++) {
    const struct ics_deadline d = {.uid = "u@renewd",
                                   .dtstamp = NOW,
                                   .year = v[i].y,
                                   .month = v[i].m,
                                   .day = v[i].d,
                                   .summary = "Expires",
                                   .alarm = v[i].alarm};
    _cleanup_free_ char *ics = NULL;
    assert_int_equal(ics_deadline(&d, &ics), 0);
    _cleanup_free_ char *u = check_lines(ics);
    _cleanup_free_ char *s = strprintf("DTSTART;VALUE=DATE:%s", v[i].start);
    _cleanup_free_ char *e = strprintf("DTEND;VALUE=DATE:%s", v[i].end);
    assert_has_line(u, s);
    assert_has_line(u, e);
    if (v[i].trigger) {
      _cleanup_free_ char *t = strprintf("TRIGGER:%s", v[i].trigger);
      assert_has_line(u, t);
      assert_has_line(u, "DESCRIPTION:Expires"); /* the alarm's text */
    } else {
      assert_null(strstr(u, "VALARM"));
      assert_null(strstr(u, "DESCRIPTION"));
    }
    icalcomponent *cal = parse_event(ics, ICAL_METHOD_PUBLISH);
    icalcomponent_free(cal);
  }
}

static void test_deadline_invalid(void **state) {
  const struct ics_deadline ok = {
      .uid = "u@renewd", .dtstamp = NOW, .year = 2027, .month = 2, .day = 28, .summary = "Expires"};
  struct ics_deadline v[12];
  size_t n = 0;
  v[n] = ok, v[n++].day = 29; /* 2027 is not a leap year */
  v[n] = ok, v[n++].month = 13;
  v[n] = ok, v[n++].day = 0;
  v[n] = ok, v[n++].year = 0;
  v[n] = ok, v[n++].uid = NULL;
  v[n] = ok, v[n++].uid = "has space";
  v[n] = ok, v[n++].summary = "";
  v[n] = ok, v[n++].summary = "two\nlines";
  v[n] = ok, v[n++].description = "bad\rcontrol";
  v[n] = ok, v[n++].url = "https://x.example/a b";
  v[n] = ok, v[n++].alarm = "bogus";
  v[n] = ok, v[n++].alarm = "P";
  char *ics = (char *)"untouched";
  for (size_t i = 0; i < n; i++)
    assert_int_equal(ics_deadline(&v[i], &ics), -EINVAL);
  assert_int_equal(ics_deadline(NULL, &ics), -EINVAL);
  assert_string_equal(ics, "untouched");
}

/* ---- meeting request ---- */

static const struct ics_meeting meeting = {
    .uid = "c1042-callback-1@renewd",
    .dtstamp = NOW,
    .start = 1802682000, /* 2027-02-15T09:00:00Z */
    .end = 1802683800,   /* 2027-02-15T09:30:00Z */
    .summary = "Renewal call: Acme GmbH, contract C-1042",
    .description = "The customer asked to be called back.\nPhone: +491701234567",
    .url = "https://crm.example.com/contracts/C-1042",
    .organizer_email = "owner@acme.example",
    .organizer_name = "Smith, John",
    .attendee_email = "wang@example.cn",
    .attendee_name = "王小明",
};

/* ics_deadline() writes its text directly; the reference here builds the
 * same calendar as a libical component tree and serialises it, the way
 * ics.c did before (and still does for meeting requests). Both must agree
 * byte for byte on generated inputs that exercise escaping and folding:
 * every length around the 75-octet limit, ';' ':' ' ' break points or none,
 * 2-, 3- and 4-byte UTF-8, tabs and newlines, odd alarms. */
static char *reference_deadline(const struct ics_deadline *d) {
  icalcomponent *cal = icalcomponent_new_vcalendar();
  icalcomponent_add_property(cal, icalproperty_new_version("2.0"));
  icalcomponent_add_property(cal, icalproperty_new_prodid("-//renewd//EN"));
  icalcomponent_add_property(cal, icalproperty_new_calscale("GREGORIAN"));
  icalcomponent_add_property(cal, icalproperty_new_method(ICAL_METHOD_PUBLISH));
  icalcomponent *ev = icalcomponent_new_vevent();
  icalcomponent_add_component(cal, ev);
  icalcomponent_add_property(ev, icalproperty_new_uid(d->uid));
  icalcomponent_add_property(ev, icalproperty_new_dtstamp(icaltime_from_timet_with_zone(
                                     (time_t)d->dtstamp, 0, icaltimezone_get_utc_timezone())));
  icalcomponent_add_property(ev, icalproperty_new_summary(d->summary));
  if (d->description)
    icalcomponent_add_property(ev, icalproperty_new_description(d->description));
  if (d->url)
    icalcomponent_add_property(ev, icalproperty_new_url(d->url));
  struct icaltimetype day = icaltime_null_date();
  day.year = d->year;
  day.month = d->month;
  day.day = d->day;
  struct icaltimetype next = day;
  icaltime_adjust(&next, 1, 0, 0, 0);
  icalcomponent_add_property(ev, icalproperty_new_dtstart(day));
  icalcomponent_add_property(ev, icalproperty_new_dtend(next));
  icalcomponent_add_property(ev, icalproperty_new_transp(ICAL_TRANSP_TRANSPARENT));
  if (!d->alarm || *d->alarm) {
    struct icaltriggertype trigger = {.time = icaltime_null_time()};
    trigger.duration = icaldurationtype_from_string(d->alarm ? d->alarm : "-P1D");
    icalcomponent *va = icalcomponent_new_valarm();
    icalcomponent_add_component(ev, va);
    icalcomponent_add_property(va, icalproperty_new_action(ICAL_ACTION_DISPLAY));
    icalcomponent_add_property(va, icalproperty_new_trigger(trigger));
    icalcomponent_add_property(va, icalproperty_new_description(d->summary));
  }
  char *s = icalcomponent_as_ical_string_r(cal);
  char *copy = strdup(s);
  icalmemory_free_buffer(s);
  icalcomponent_free(cal);
  return copy;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(uint32_t n) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state % n);
}

/* Random text of about len bytes from pieces that matter to the serialiser. */
static void random_text(char *out, size_t len, bool newlines, bool token) {
  static const char *const pieces[] = {"a",  "Z",  "7", " ", ";",  ":",  ",",   "\\",
                                       "\"", "\t", "é", "ß", "客", "户", "€",   "😀",
                                       ".",  "-",  "/", "@", "\n", "ab", "xyz", "  "};
  size_t k = 0;
  while (k < len) {
    const char *p = pieces[rnd(ELEMENTSOF(pieces))];
    if ((!newlines && streq(p, "\n")) ||
        (token && (strchr(p, ' ') || strchr(p, '\t') || strchr(p, '\n'))))
      continue;
    size_t n = strlen(p);
    if (k + n >= len + 4)
      break;
    memcpy(out + k, p, n);
    k += n;
  }
  out[k] = 0;
  if (k == 0 || out[0] == ' ') { /* a summary must not be empty */
    out[0] = 'x';
    out[1] = 0;
  }
}

static void test_deadline_matches_libical(void **state) {
  static const char *const alarms[] = {NULL, "", "-P1D", "-PT15H", "P2W", "-PT90M", "-P1DT12H"};
  char uid[400], summary[400], description[400], url[400];
  for (int i = 0; i < 3000; i++) {
    random_text(uid, 1 + rnd(i % 3 ? 90 : 300), false, true);
    random_text(summary, 1 + rnd(i % 4 ? 100 : 300), false, false);
    random_text(description, 1 + rnd(200), true, false);
    random_text(url, 1 + rnd(i % 2 ? 90 : 250), false, true);
    struct ics_deadline d = {
        .uid = uid,
        .dtstamp = NOW + (int64_t)rnd(1000000) * 997,
        .year = 2000 + (int)rnd(100),
        .month = 1 + (int)rnd(12),
        .day = 1 + (int)rnd(28),
        .summary = summary,
        .description = rnd(3) ? NULL : description,
        .url = rnd(4) ? url : NULL,
        .alarm = alarms[rnd(ELEMENTSOF(alarms))],
    };
    if (rnd(10) == 0) { /* month ends: DTEND in the next month or year */
      d.month = 12;
      d.day = 31;
    }
    char *got = NULL;
    assert_int_equal(ics_deadline(&d, &got), 0);
    char *want = reference_deadline(&d);
    assert_non_null(want);
    if (!streq(got, want))
      fail_msg("case %d differs:\n--- libical\n%s--- ics_deadline\n%s", i, want, got);
    free(got);
    free(want);
  }
}

static void test_meeting(void **state) {
  _cleanup_free_ char *ics = NULL;
  assert_int_equal(ics_meeting_request(&meeting, &ics), 0);
  _cleanup_free_ char *u = check_lines(ics);
  assert_has_line(u, "METHOD:REQUEST");
  assert_has_line(u, "UID:c1042-callback-1@renewd");
  assert_has_line(u, "DTSTAMP:20261122T203127Z");
  assert_has_line(u, "DTSTART:20270215T090000Z");
  assert_has_line(u, "DTEND:20270215T093000Z");
  assert_has_line(u, "SEQUENCE:0");
  assert_has_line(u, "STATUS:CONFIRMED");
  assert_has_line(u, "SUMMARY:Renewal call: Acme GmbH\\, contract C-1042");
  assert_has_line(u, "ORGANIZER;CN=\"Smith, John\":mailto:owner@acme.example");

  icalcomponent *cal = parse_event(ics, ICAL_METHOD_REQUEST);
  icalcomponent *ev = icalcomponent_get_first_component(cal, ICAL_VEVENT_COMPONENT);
  assert_string_equal(icalcomponent_get_uid(ev), meeting.uid);
  assert_string_equal(icalcomponent_get_summary(ev), meeting.summary);
  assert_string_equal(icalcomponent_get_description(ev), meeting.description);
  assert_string_equal(prop_text(ev, ICAL_URL_PROPERTY), meeting.url);
  struct icaltimetype st = icalcomponent_get_dtstart(ev), en = icalcomponent_get_dtend(ev);
  assert_true(icaltime_is_utc(st));
  assert_true(icaltime_is_utc(en));
  assert_int_equal(icaltime_as_timet(st), meeting.start);
  assert_int_equal(icaltime_as_timet(en), meeting.end);
  assert_int_equal(icalcomponent_get_sequence(ev), 0);
  assert_int_equal(icalcomponent_get_status(ev), ICAL_STATUS_CONFIRMED);

  icalproperty *org = icalcomponent_get_first_property(ev, ICAL_ORGANIZER_PROPERTY);
  assert_string_equal(icalproperty_get_organizer(org), "mailto:owner@acme.example");
  icalparameter *cn = icalproperty_get_first_parameter(org, ICAL_CN_PARAMETER);
  assert_string_equal(icalparameter_get_cn(cn), "Smith, John");

  assert_int_equal(icalcomponent_count_properties(ev, ICAL_ATTENDEE_PROPERTY), 1);
  icalproperty *att = icalcomponent_get_first_property(ev, ICAL_ATTENDEE_PROPERTY);
  assert_string_equal(icalproperty_get_attendee(att), "mailto:wang@example.cn");
  cn = icalproperty_get_first_parameter(att, ICAL_CN_PARAMETER);
  assert_string_equal(icalparameter_get_cn(cn), "王小明");
  icalparameter *role = icalproperty_get_first_parameter(att, ICAL_ROLE_PARAMETER);
  assert_int_equal(icalparameter_get_role(role), ICAL_ROLE_REQPARTICIPANT);
  icalparameter *rsvp = icalproperty_get_first_parameter(att, ICAL_RSVP_PARAMETER);
  assert_int_equal(icalparameter_get_rsvp(rsvp), ICAL_RSVP_TRUE);
  icalparameter *ps = icalproperty_get_first_parameter(att, ICAL_PARTSTAT_PARAMETER);
  assert_int_equal(icalparameter_get_partstat(ps), ICAL_PARTSTAT_NEEDSACTION);
  assert_null(icalcomponent_get_first_component(ev, ICAL_VALARM_COMPONENT));
  icalcomponent_free(cal);
}

static void test_meeting_optional_and_invalid(void **state) {
  /* Names, description and URL are optional; an update bumps SEQUENCE. */
  struct ics_meeting m = meeting;
  m.organizer_name = m.attendee_name = m.description = m.url = NULL;
  m.sequence = 2;
  _cleanup_free_ char *ics = NULL;
  assert_int_equal(ics_meeting_request(&m, &ics), 0);
  _cleanup_free_ char *u = check_lines(ics);
  assert_has_line(u, "ORGANIZER:mailto:owner@acme.example");
  assert_has_line(u, "SEQUENCE:2");
  assert_null(strstr(u, "DESCRIPTION"));
  assert_null(strstr(u, "URL"));
  assert_null(strstr(u, "CN="));

  struct ics_meeting v[8];
  size_t n = 0;
  v[n] = meeting, v[n++].end = meeting.start;
  v[n] = meeting, v[n++].sequence = -1;
  v[n] = meeting, v[n++].organizer_email = NULL;
  v[n] = meeting, v[n++].attendee_email = "";
  v[n] = meeting, v[n++].attendee_email = "a@b.example\r\nX:y";
  v[n] = meeting, v[n++].attendee_name = "line\nbreak";
  v[n] = meeting, v[n++].summary = NULL;
  v[n] = meeting, v[n++].uid = "";
  char *out = (char *)"untouched";
  for (size_t i = 0; i < n; i++)
    assert_int_equal(ics_meeting_request(&v[i], &out), -EINVAL);
  assert_string_equal(out, "untouched");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_deadline),         cmocka_unit_test(test_deadline_dates_and_alarms),
      cmocka_unit_test(test_deadline_invalid), cmocka_unit_test(test_deadline_matches_libical),
      cmocka_unit_test(test_meeting),          cmocka_unit_test(test_meeting_optional_and_invalid),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
