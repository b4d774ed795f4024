/* wheel: hierarchical timing wheel, one tick = one second (see wheel.h).
 *
 * Owns: the wheel struct (slot heads, bitmaps); links, but does not own, the
 * caller's entries. Never blocks, never allocates after wheel_new().
 *
 * Layout. Levels 0..5 of 64 slots; level l slot s spans 64^l ticks. Slot lists
 * are doubly linked, NULL-terminated, with head and tail kept in the slot. A
 * pending entry with expiry x, relative to the current tick n (x >= n always,
 * adds clamp x to n), lives at:
 *   x == n                        level 0 slot n % 64 (the "due slot")
 *   highest bit of x ^ n in [6l, 6l + 6)   level l, slot (x >> 6l) % 64
 *   x ^ n >= 2^36                 the overflow list
 * occupied[l] has bit s set iff level l slot s is non-empty.
 *
 * Invariants, kept because n only moves forward and never past an entry:
 *  (I1) a level l entry agrees with n on every bit above 6l + 6 and its slot
 *       index is > n's index at that level (>= at level 0, the due slot), so
 *       its placement stays the one the formula above gives for the current n;
 *  (I2) hence levels are ordered in time: every level l entry expires before
 *       every level l + 1 entry (it lies in n's current 64^(l+1) block, they
 *       in a later one), every levelled entry before every overflow entry, and
 *       within a level, lower slot index means earlier;
 *  (I3) every slot list is sorted by (re)scheduling order (seq).
 * The next event is therefore always the lowest set bit of the lowest
 * non-empty level (or the overflow's earliest top block): advancing jumps
 * straight to it, whatever the distance.
 *
 * Firing order, and why no sort is needed: entries fire from the due slot,
 * head first. (I3) holds because (a) adds append at a tail with a seq larger
 * than any entry's, and (b) a slot (or the overflow list) is cascaded only
 * when it is the next event, i.e. when every lower level is empty and nothing
 * is due: its seq-ordered list is re-placed in list order into empty slots,
 * so each destination receives a seq-ordered subsequence. Entries due at the
 * same tick thus reach the due slot, and fire, in seq order. (seq itself is
 * never compared: the list order is the order, so its wrap does not matter.)
 *
 * Cost: add/del/mod O(1); an entry is moved at most once per level it passes
 * through (<= 5 cascades, 2 for a 48 h horizon) plus one unlink when it fires;
 * a level 0 slot becomes the due slot without touching its entries. */
#include "core/wheel.h"

#include <errno.h>
#include <stdlib.h>

#include "core/util.h"

#define WHEEL_BITS 6
#define WHEEL_SIZE (1u << WHEEL_BITS) /* slots per level */
#define WHEEL_LEVELS 6
#define WHEEL_SLOTS (WHEEL_LEVELS * WHEEL_SIZE)
#define WHEEL_OVERFLOW WHEEL_SLOTS                 /* index of the overflow list */
#define WHEEL_TOP_BITS (WHEEL_LEVELS * WHEEL_BITS) /* 36: ticks covered by the levels */

struct wheel_slot {
  struct wheel_entry *head; /* first (lowest seq), NULL when empty */
  struct wheel_entry *tail; /* last (highest seq) */
  int64_t min;              /* earliest expiry in the slot, exact while min_count > 0 */
  size_t min_count;         /* entries at min; 0 in a non-empty slot = unknown (rescan) */
};

struct wheel {
  int64_t now;                     /* current tick; every pending entry has expires >= now */
  size_t count;                    /* pending entries */
  uint32_t seq;                    /* next seq to hand out */
  bool advancing;                  /* inside wheel_advance(): refuse reentry */
  uint64_t occupied[WHEEL_LEVELS]; /* bit s: slot s of level l non-empty */
  struct wheel_slot slots[WHEEL_SLOTS + 1]; /* level l slot s at l * 64 + s; overflow last */
};

/* Level holding an entry whose expiry differs from the current tick in bit b. */
static unsigned level_of_bit(unsigned b) {
  return b / WHEEL_BITS;
}

/* Index into w->slots for an expiry x >= now, per the layout above. */
static inline __attribute__((always_inline)) unsigned slot_index(int64_t now, int64_t x) {
  uint64_t d = (uint64_t)x ^ (uint64_t)now;
  if (d == 0)
    return (unsigned)((uint64_t)now & (WHEEL_SIZE - 1));
  unsigned l = level_of_bit(63u - (unsigned)__builtin_clzll(d));
  if (l >= WHEEL_LEVELS)
    return WHEEL_OVERFLOW;
  return l * WHEEL_SIZE + (unsigned)(((uint64_t)x >> (l * WHEEL_BITS)) & (WHEEL_SIZE - 1));
}

static inline __attribute__((always_inline)) void slot_append(struct wheel *w, unsigned idx,
                                                              struct wheel_entry *e) {
  struct wheel_slot *s = &w->slots[idx];
  e->next = NULL;
  e->prev = s->tail;
  if (s->tail)
    s->tail->next = e;
  else {
    s->head = e;
    if (idx < WHEEL_SLOTS)
      w->occupied[idx / WHEEL_SIZE] |= UINT64_C(1) << (idx % WHEEL_SIZE);
  }
  s->tail = e;
  e->where = idx + 1;
  if (e->prev == NULL) {
    s->min = e->expires;
    s->min_count = 1;
  } else if (s->min_count > 0) {
    if (e->expires < s->min) {
      s->min = e->expires;
      s->min_count = 1;
    } else if (e->expires == s->min)
      s->min_count++;
  }
}

static inline __attribute__((always_inline)) void slot_unlink(struct wheel *w,
                                                              struct wheel_entry *e) {
  unsigned idx = e->where - 1;
  struct wheel_slot *s = &w->slots[idx];
  if (e->prev)
    e->prev->next = e->next;
  else
    s->head = e->next;
  if (e->next)
    e->next->prev = e->prev;
  else
    s->tail = e->prev;
  if (!s->head && idx < WHEEL_SLOTS)
    w->occupied[idx / WHEEL_SIZE] &= ~(UINT64_C(1) << (idx % WHEEL_SIZE));
  if (s->min_count > 0 && e->expires == s->min)
    s->min_count--; /* the last one at min leaves the slot's minimum unknown */
  e->where = 0;     /* next/prev are left stale: only where tells pending */
}

/* Earliest expiry in a non-empty slot: kept by append/unlink, recomputed by
 * a scan only after the last entry at the minimum was removed. */
static int64_t slot_min(struct wheel_slot *s) {
  if (s->min_count == 0) {
    int64_t m = INT64_MAX;
    size_t c = 0;
    for (const struct wheel_entry *e = s->head; e; e = e->next) {
      if (e->expires < m) {
        m = e->expires;
        c = 1;
      } else if (e->expires == m)
        c++;
    }
    s->min = m;
    s->min_count = c;
  }
  return s->min;
}

static inline __attribute__((always_inline)) void remove_pending(struct wheel *w,
                                                                 struct wheel_entry *e) {
  slot_unlink(w, e);
  w->count--;
}

int wheel_new(int64_t now, struct wheel **ret) {
  if (!ret)
    return -EINVAL;
  struct wheel *w = calloc(1, sizeof(*w));
  if (!w)
    return -ENOMEM;
  w->now = now;
  *ret = w;
  return 0;
}

struct wheel *wheel_free(struct wheel *w) {
  free(w);
  return NULL;
}

int wheel_add(struct wheel *w, struct wheel_entry *e, int64_t expires) {
  if (!w || !e)
    return -EINVAL;
  if (wheel_pending(e))
    remove_pending(w, e);
  if (expires < w->now)
    expires = w->now;
  e->expires = expires;
  e->seq = w->seq++;
  slot_append(w, slot_index(w->now, expires), e);
  w->count++;
  return 0;
}

int wheel_mod(struct wheel *w, struct wheel_entry *e, int64_t expires) {
  return wheel_add(w, e, expires);
}

void wheel_del(struct wheel *w, struct wheel_entry *e) {
  if (!w || !e || !wheel_pending(e))
    return;
  remove_pending(w, e);
}

size_t wheel_count(const struct wheel *w) {
  return w ? w->count : 0;
}

int64_t wheel_now(const struct wheel *w) {
  return w ? w->now : 0;
}

/* Re-places every entry of slot idx relative to the current tick, in list
 * order (see (I3)). Only called when idx is the next event. */
static void cascade(struct wheel *w, unsigned idx) {
  struct wheel_slot *s = &w->slots[idx];
  struct wheel_entry *e = s->head;
  s->head = s->tail = NULL;
  if (idx < WHEEL_SLOTS)
    w->occupied[idx / WHEEL_SIZE] &= ~(UINT64_C(1) << (idx % WHEEL_SIZE));
  while (e) {
    struct wheel_entry *next = e->next;
    slot_append(w, slot_index(w->now, e->expires), e);
    e = next;
  }
}

/* Nothing is due at the current tick. Moves the current tick to the next
 * event (a non-empty level 0 slot, or the start of a slot to cascade) if it
 * is <= target and returns true; otherwise moves it to target, returns false. */
static bool step(struct wheel *w, int64_t target) {
  uint64_t now = (uint64_t)w->now;
  int64_t t;
  for (unsigned l = 0; l < WHEEL_LEVELS; l++) {
    if (!w->occupied[l])
      continue;
    /* (I2): the lowest set slot of the lowest non-empty level comes first. */
    unsigned s = (unsigned)__builtin_ctzll(w->occupied[l]);
    unsigned shift = l * WHEEL_BITS;
    uint64_t block = ~((UINT64_C(1) << (shift + WHEEL_BITS)) - 1);
    t = (int64_t)((now & block) | ((uint64_t)s << shift));
    if (t > target)
      goto idle;
    w->now = t;
    if (l > 0)
      cascade(w, l * WHEEL_SIZE + s);
    return true;
  }
  if (w->slots[WHEEL_OVERFLOW].head) {
    /* Only overflow entries left: go to the top block of the earliest one. */
    t = (int64_t)((uint64_t)slot_min(&w->slots[WHEEL_OVERFLOW]) &
                  ~((UINT64_C(1) << WHEEL_TOP_BITS) - 1));
    if (t <= target) {
      w->now = t;
      cascade(w, WHEEL_OVERFLOW);
      return true;
    }
  }
idle:
  w->now = target;
  return false;
}

size_t wheel_advance(struct wheel *w, int64_t now, wheel_fire_t fire, void *userdata) {
  if (!w || !fire || w->advancing)
    return 0;
  w->advancing = true;
  int64_t target = MAX(now, w->now);
  size_t n = 0;
  for (;;) {
    struct wheel_slot *due = &w->slots[(uint64_t)w->now & (WHEEL_SIZE - 1)];
    while (due->head) {
      struct wheel_entry *e = due->head;
      remove_pending(w, e);
      n++;
      if (!fire(e, userdata))
        goto out;
    }
    if (w->now == target || !step(w, target))
      break;
  }
out:
  w->advancing = false;
  return n;
}

int64_t wheel_next_expiry(struct wheel *w) {
  if (!w || w->count == 0)
    return TIME_NEVER;
  if (w->occupied[0])
    return (int64_t)(((uint64_t)w->now & ~(uint64_t)(WHEEL_SIZE - 1)) |
                     (uint64_t)__builtin_ctzll(w->occupied[0]));
  /* By (I2) the earliest entries are in the lowest set slot of the lowest
   * non-empty level, or else in the overflow list. */
  for (unsigned l = 1; l < WHEEL_LEVELS; l++)
    if (w->occupied[l])
      return slot_min(&w->slots[l * WHEEL_SIZE + (unsigned)__builtin_ctzll(w->occupied[l])]);
  return slot_min(&w->slots[WHEEL_OVERFLOW]);
}
