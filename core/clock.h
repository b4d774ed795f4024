/* clock: the one place "now" comes from.
 *
 * A real clock reads CLOCK_REALTIME. A simulated clock starts at a given
 * instant and moves only when told (clock_advance_to), or at a multiple of
 * real time (speed > 0), so the daemon can run a simulated year in seconds
 * through the very same code paths. Owns nothing but its own struct; never
 * blocks. Instants are int64_t seconds since the epoch, UTC. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct clock {
  bool simulated;    /* false: CLOCK_REALTIME */
  int64_t sim_now;   /* simulated: current instant */
  double speed;      /* simulated: 0 = jump as fast as possible, N = N x real time */
  int64_t real_base; /* simulated with speed: CLOCK_MONOTONIC ms when sim_base was set */
  int64_t sim_base;  /* simulated with speed: sim instant at real_base */
};

void clock_init_real(struct clock *c);
void clock_init_simulated(struct clock *c, int64_t start, double speed);
/* Current instant (seconds). */
int64_t clock_now(const struct clock *c);
/* Simulated clocks only: moves to t (never backwards). */
void clock_advance_to(struct clock *c, int64_t t);
/* Milliseconds of real time until the clock reads t (0 if already there;
 * for a simulated clock with speed 0 always 0). */
uint64_t clock_real_ms_until(const struct clock *c, int64_t t);
/* Monotonic milliseconds, for measuring durations. */
int64_t clock_monotonic_ms(void);
