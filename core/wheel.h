/* wheel: a hierarchical timing wheel for due instants (one tick = one second).
 *
 * The daemon keeps in it what is due within its horizon (48 h by default), but
 * any instant is accepted: 6 levels of 64 slots cover 64^6 s (2^36 s, about
 * 2,177 years) around the current tick, an overflow list holds anything beyond.
 *
 * Entries are intrusive: the caller embeds a struct wheel_entry in its own
 * object (see wheel_container_of()) and owns its memory; the wheel only links
 * it. An entry must be zero-initialised before first use ({0} or
 * wheel_entry_init()) and belongs to at most one wheel at a time. Insert, cancel and reschedule are
 * O(1); advancing skips empty stretches with per-level occupancy bitmaps, so a jump of months costs
 * as much as the slots it crosses that hold entries, not the ticks.
 *
 * Firing order: by expiry tick, then FIFO by (re)scheduling order (the seq
 * number wheel_add()/wheel_mod() assign). An instant at or before the current
 * tick is clamped to the current tick (e->expires is set to it), so such an
 * entry fires at the next advance after every entry already due at that tick.
 *
 * Never blocks, never allocates after wheel_new(), not thread-safe. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h" /* TIME_NEVER */

/* Embedded in the caller's object; 32 bytes. Fields are read-only for the
 * caller (expires and seq may be read, e.g. in the fire callback). */
struct wheel_entry {
  struct wheel_entry *next; /* slot list links (NULL at the ends); stale when not pending */
  struct wheel_entry *prev;
  int64_t expires; /* tick the entry fires at (clamped to the tick it was added at) */
  uint32_t seq;    /* (re)scheduling order, wraps; informative only */
  uint32_t where;  /* 0 = not pending, else 1 + index of the slot holding it */
};

#define wheel_container_of(ptr, type, member)                                                      \
  ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static inline void wheel_entry_init(struct wheel_entry *e) {
  *e = (struct wheel_entry){0};
}

struct wheel;

/* Creates an empty wheel whose current tick is now. Returns 0 or -ENOMEM.
 * Caller frees with wheel_free(). */
int wheel_new(int64_t now, struct wheel **ret);

/* Frees the wheel, not the entries: they are left as they are (still marked
 * pending) and must be re-initialised before use with another wheel.
 * Accepts NULL; returns NULL. */
struct wheel *wheel_free(struct wheel *w);

/* Schedules e at expires (any int64; <= the current tick means "due now",
 * see above). A pending e is rescheduled (same as wheel_mod()). O(1).
 * Returns 0, or -EINVAL for a NULL argument. */
int wheel_add(struct wheel *w, struct wheel_entry *e, int64_t expires);

/* Cancels e. No-op when e is not pending (or NULL). O(1). */
void wheel_del(struct wheel *w, struct wheel_entry *e);

/* Reschedules e (pending or not) at expires; it gets a new seq, i.e. it goes
 * behind every entry already scheduled at that tick. O(1). 0 or -EINVAL. */
int wheel_mod(struct wheel *w, struct wheel_entry *e, int64_t expires);

/* True when e is scheduled in a wheel (fired and cancelled entries are not). */
static inline bool wheel_pending(const struct wheel_entry *e) {
  return e->where != 0;
}

size_t wheel_count(const struct wheel *w);

/* The current tick: the last advance target, or, inside a fire callback, the
 * tick being fired. */
int64_t wheel_now(const struct wheel *w);

/* Fire callback: e is no longer pending when called (it may be re-added,
 * freed, ...). Return false to stop the advance after this entry. */
typedef bool (*wheel_fire_t)(struct wheel_entry *e, void *userdata);

/* Advances the current tick to now, calling fire(e, userdata) for every entry
 * with expires <= now, in order (expires, then seq); the current tick steps to
 * each expiring tick as it goes. The callback may add/del/mod any entry
 * (including e): entries it adds at or before the tick being fired fire in this
 * advance after the entries already due at that tick; entries it adds later
 * but <= now fire in this advance at their tick.
 *
 * If fire returns false the advance stops there: the current tick stays at the
 * tick of that entry and the remaining due entries fire on the next call (so a
 * burst can be drained in slices). A now before the current tick (the wall
 * clock stepped back) is taken as the current tick: nothing new becomes due and
 * the tick does not move back; only entries already due (added at or before
 * the current tick, or left by an early stop) fire. Not reentrant: called from
 * a fire callback it returns 0 and does nothing. Returns the number fired. */
size_t wheel_advance(struct wheel *w, int64_t now, wheel_fire_t fire, void *userdata);

/* Earliest pending expiry, exact; the current tick when something is due;
 * TIME_NEVER (INT64_MAX) when empty. O(1): each slot keeps its minimum and how
 * many entries share it; only after the last of those was cancelled does the
 * next call scan that one slot to find the new minimum. */
int64_t wheel_next_expiry(struct wheel *w);
