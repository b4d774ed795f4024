/* ics: iCalendar (RFC 5545) objects renewd attaches to messages: a deadline
 * event the customer or owner can drop into a calendar, and a meeting
 * request (RFC 5546 METHOD:REQUEST) for a "talk to us" call.
 *
 * Output is a complete VCALENDAR text with CRLF line ends, lines folded at
 * 75 octets without splitting UTF-8 characters, TEXT values escaped: what
 * libical's serializer writes (the meeting request is built with libical;
 * the deadline event, which goes with every reminder email, is written
 * directly to the same bytes, see ics.c). Pure: no clock reads ("now" is passed in as
 * dtstamp), no I/O, no global state of its own (libical keeps a per-thread
 * error number), never blocks, never logs. Text fields are UTF-8 and are
 * not re-validated here; control characters are refused. */
#pragma once

#include <stdint.h>

/* An all-day deadline event: DTSTART;VALUE=DATE on the last valid local day
 * (so it shows on the right day in every viewer's zone), DTEND the day
 * after, TRANSP:TRANSPARENT, and a display alarm. */
struct ics_deadline {
  const char *uid;         /* required, globally unique, e.g. "<idempotency key>@renewd" */
  int64_t dtstamp;         /* creation instant (UTC seconds), usually now */
  int year, month, day;    /* the last valid local day of the contract */
  const char *summary;     /* required, one line */
  const char *description; /* optional (NULL), may hold newlines */
  const char *url;         /* optional (NULL): the answer link */
  const char *alarm;       /* TRIGGER as an RFC 5545 duration relative to the start of
                              the day: NULL = "-P1D", "" = no VALARM */
};

/* Builds VCALENDAR (VERSION:2.0, PRODID:-//renewd//EN, METHOD:PUBLISH) with
 * one VEVENT for d. Returns 0 and *ret (caller frees with free()), -EINVAL
 * for a missing field, an impossible date, a bad alarm duration or a control
 * character, -ENOMEM. */
int ics_deadline(const struct ics_deadline *d, char **ret);

/* A meeting between the organizer (e.g. the sales owner) and one attendee
 * (the customer), at fixed UTC instants. */
struct ics_meeting {
  const char *uid;             /* required, globally unique */
  int64_t dtstamp;             /* creation instant (UTC seconds), usually now */
  int64_t start, end;          /* UTC seconds, end > start */
  const char *summary;         /* required, one line */
  const char *description;     /* optional (NULL), may hold newlines */
  const char *url;             /* optional (NULL) */
  const char *organizer_email; /* required, written as mailto: */
  const char *organizer_name;  /* optional (NULL): CN parameter */
  const char *attendee_email;  /* required, written as mailto: */
  const char *attendee_name;   /* optional (NULL): CN parameter */
  int sequence;                /* 0 for a new request; bumped for each update */
};

/* Builds VCALENDAR METHOD:REQUEST with one VEVENT: UID, DTSTAMP, DTSTART and
 * DTEND in UTC, SUMMARY, DESCRIPTION, URL, ORGANIZER, ATTENDEE (ROLE=
 * REQ-PARTICIPANT, PARTSTAT=NEEDS-ACTION, RSVP=TRUE), SEQUENCE,
 * STATUS:CONFIRMED. Returns 0 and *ret (caller frees with free()), -EINVAL
 * (missing field, end <= start, sequence < 0, control character) or -ENOMEM. */
int ics_meeting_request(const struct ics_meeting *m, char **ret);
