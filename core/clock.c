/* clock: real and simulated "now" (see clock.h). */
#include "core/clock.h"

#include <time.h>

int64_t clock_monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void clock_init_real(struct clock *c) {
  *c = (struct clock){.simulated = false};
}

void clock_init_simulated(struct clock *c, int64_t start, double speed) {
  *c = (struct clock){
      .simulated = true,
      .sim_now = start,
      .speed = speed,
      .real_base = clock_monotonic_ms(),
      .sim_base = start,
  };
}

int64_t clock_now(const struct clock *c) {
  if (!c->simulated) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec;
  }
  if (c->speed > 0) {
    double elapsed = (double)(clock_monotonic_ms() - c->real_base) / 1000.0 * c->speed;
    int64_t t = c->sim_base + (int64_t)elapsed;
    return t > c->sim_now ? t : c->sim_now;
  }
  return c->sim_now;
}

void clock_advance_to(struct clock *c, int64_t t) {
  if (!c->simulated)
    return;
  int64_t now = clock_now(c);
  if (t < now)
    t = now;
  c->sim_now = t;
  c->sim_base = t;
  c->real_base = clock_monotonic_ms();
}

uint64_t clock_real_ms_until(const struct clock *c, int64_t t) {
  int64_t now = clock_now(c);
  if (t <= now)
    return 0;
  if (!c->simulated)
    return (uint64_t)(t - now) * 1000;
  if (c->speed <= 0)
    return 0;
  return (uint64_t)((double)(t - now) * 1000.0 / c->speed);
}
