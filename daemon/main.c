/* renewd: the renewal reminder daemon's main program and event loop.
 *
 * One sd-event loop drives everything: the scheduler's due timer, the store
 * change poll, sliced background work (refills, re-plans), the dispatcher's
 * curl sockets and timeout, signals (SIGHUP reload, SIGTERM/SIGINT stop:
 * claim nothing more, let the transfers in flight finish and record them,
 * within [Daemon] StopTimeout=, then exit 0),
 * sd_notify (READY, STATUS, RELOADING, STOPPING, watchdog) and, with
 * --simulate, a simulated clock that jumps from one due instant to the next.
 *
 * This is the only file with process-wide state: struct daemon, created here
 * and passed down. */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <curl/curl.h>

#include "config/config.h"
#include "core/cal.h"
#include "core/clock.h"
#include "core/store.h"
#include "core/util.h"
#include "daemon/ckpt.h"
#include "daemon/log.h"
#include "daemon/sched.h"
#include "daemon/http.h"    /* http helper */
#include "daemon/metrics.h" /* http helper */
#include "notifiers/dispatch.h"

#define WORK_BUDGET 500 /* contracts planned per loop iteration */
#define STATUS_INTERVAL_S 5
/* Work sources (scheduler, change poll, dispatcher, status) run below the
 * HTTP listener (SD_EVENT_PRIORITY_NORMAL): a pending request is served
 * before the next slice of work. */
#define WORK_PRIORITY (SD_EVENT_PRIORITY_NORMAL + 10)
/* Back-off after the store was locked by another writer (-EBUSY; the loop's
 * connection never waits in SQLite's busy handler): doubling up to the max. */
#define BUSY_BACKOFF_MIN_MS 10
#define BUSY_BACKOFF_MAX_MS 100
/* After READY, a slice of scheduler work that leaves more to do is followed
 * by this pause: back-to-back planning transactions would keep the write
 * lock nearly all the time, and another writer (renewctl import, whose busy
 * handler polls) would starve past its busy timeout. */
#define WORK_GAP_MS 10
/* A loop iteration longer than this is logged at warning (at most once per
 * LOOP_WARN_INTERVAL_S, with the number not logged). */
#define LOOP_WARN_US 50000
#define LOOP_WARN_INTERVAL_S 10

struct fd_watch {
  int fd;
  sd_event_source *source;
};

struct daemon {
  struct logger log;
  struct clock clock;
  const char *config_path;
  const char *db_override; /* --db */
  struct cal *cal;
  struct config *cfg;
  struct store *store;
  struct sched *sched;
  struct dispatcher *disp;
  struct http *http;       /* HTTP listener (daemon/http.h) */
  struct metrics *metrics; /* /metrics counters fed by dispatch reports */
  struct ckpt *ckpt;       /* WAL checkpoint thread (own connection) */

  sd_event *event;
  sd_event_source *wake_timer;   /* next due instant / refill / retry */
  sd_event_source *poll_timer;   /* store change poll */
  sd_event_source *work_source;  /* defer: sliced scheduler work */
  sd_event_source *sim_source;   /* defer, idle priority: simulated clock jumps */
  sd_event_source *disp_timer;   /* the dispatcher's curl timeout */
  sd_event_source *status_timer; /* STATUS= refresh */
  sd_event_source *stop_timer;   /* StopTimeout= of a graceful stop */
  sd_event_source *busy_timer;   /* retry after the store was locked (-EBUSY) */
  struct fd_watch *watches;      /* curl sockets */
  size_t n_watches;

  bool ready;         /* READY=1 sent */
  bool simulate;      /* --simulate */
  int64_t sim_until;  /* end of the simulation */
  bool print_summary; /* console summary lines in simulation */
  uint64_t sent, retried, dead, fallbacks;
  int64_t sim_day;      /* simulated day last summarised on the console */
  int64_t data_version; /* PRAGMA data_version last seen by on_poll */
  uint64_t sent_at_day; /* d->sent when that day began */
  bool stopping;        /* SIGTERM/SIGINT: waiting for transfers in flight */
  int exit_code;

  bool busy;           /* scheduler work waits for busy_timer */
  unsigned busy_ms;    /* current back-off; 0 after a success */
  const char *running; /* what the current loop iteration dispatched (for the log) */
  uint64_t loop_iterations, loop_max_before_us, loop_max_after_us;
  uint64_t loop_warned_us, loop_unwarned; /* rate limit of the slow-iteration warning */
};

/* ---- loop statistics --------------------------------------------------------------- */

static uint64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Counts one iteration's work (metrics histogram and maximum) and warns about
 * one longer than LOOP_WARN_US, naming what ran. */
static void loop_observe(struct daemon *d, uint64_t busy_us) {
  metrics_loop_iteration(d->metrics, busy_us);
  if (d->ready) {
    d->loop_iterations++;
    d->loop_max_after_us = MAX(d->loop_max_after_us, busy_us);
  } else
    d->loop_max_before_us = MAX(d->loop_max_before_us, busy_us);
  if (busy_us <= LOOP_WARN_US)
    return;
  uint64_t now = mono_us();
  if (d->loop_warned_us && now - d->loop_warned_us < LOOP_WARN_INTERVAL_S * 1000000ull) {
    d->loop_unwarned++;
    return;
  }
  char more[64] = "";
  if (d->loop_unwarned)
    snprintf(more, sizeof more, "; %" PRIu64 " more since the last warning", d->loop_unwarned);
  log_warning(&d->log, "event loop iteration took %.1f ms (%s; bound %d ms)%s", busy_us / 1000.0,
              d->running ? d->running : "the HTTP listener or a signal", LOOP_WARN_US / 1000, more);
  d->loop_warned_us = now;
  d->loop_unwarned = 0;
}

/* sd_event_loop() one iteration at a time, timing the work of each (prepare and
 * dispatch, not the wait); logs the longest iterations before and after READY
 * at exit. Returns what sd_event_loop() would. */
static int run_loop(struct daemon *d) {
  int r = 0, code = 0;
  while (sd_event_get_state(d->event) != SD_EVENT_FINISHED) {
    uint64_t t0 = mono_us(), waited = 0;
    d->running = NULL;
    r = sd_event_prepare(d->event);
    if (r == 0) {
      uint64_t w0 = mono_us();
      r = sd_event_wait(d->event, UINT64_MAX);
      waited = mono_us() - w0;
    }
    if (r > 0)
      r = sd_event_dispatch(d->event);
    if (r < 0)
      return r;
    loop_observe(d, mono_us() - t0 - waited);
  }
  log_info(&d->log,
           "event loop: %" PRIu64 " iterations after ready, longest %.1f ms (before ready %.1f ms)",
           d->loop_iterations, d->loop_max_after_us / 1000.0, d->loop_max_before_us / 1000.0);
  r = sd_event_get_exit_code(d->event, &code);
  return r < 0 ? r : code;
}

static int64_t daemon_now(struct daemon *d) {
  return clock_now(&d->clock);
}

/* ---- status ----------------------------------------------------------------- */

static void update_status(struct daemon *d) {
  /* Cheap on any book: no store-wide counts here (they read whole indexes and
   * fill the page cache every few seconds); the outbox figures are this run's. */
  int64_t contracts = 0;
  store_contract_max_rowid(d->store, &contracts);
  int64_t next = sched_next_due(d->sched, NULL);
  char nextbuf[32] = "none", nowbuf[32];
  if (next != TIME_NEVER)
    format_rfc3339(next, nextbuf);
  format_rfc3339(daemon_now(d), nowbuf);
  char status[512];
  snprintf(status, sizeof status,
           "%" PRId64 " contracts, %zu due within horizon, next %s; since start: %" PRIu64
           " sent, %" PRIu64 " retries, %" PRIu64 " dead%s%s",
           contracts, sched_wheel_count(d->sched), nextbuf, d->sent, d->retried, d->dead,
           d->simulate ? "; simulated now " : "", d->simulate ? nowbuf : "");
  sd_notifyf(false, "STATUS=%s", status);
  if (d->print_summary)
    fprintf(stderr, "renewd: %s\n", status);
}

static int on_status_timer(sd_event_source *s, uint64_t usec, void *userdata) {
  struct daemon *d = userdata;
  update_status(d);
  sd_event_source_set_time_relative(s, STATUS_INTERVAL_S * 1000000ull);
  sd_event_source_set_enabled(s, SD_EVENT_ON);
  return 0;
}

/* ---- wake-ups --------------------------------------------------------------- */

static void arm_wake(struct daemon *d);

static void enable_work(struct daemon *d) {
  if (!d->busy) /* else busy_timer enables it */
    sd_event_source_set_enabled(d->work_source, SD_EVENT_ON);
}

/* Scheduler work stops for ms and resumes from busy_timer. */
static void work_pause(struct daemon *d, unsigned ms) {
  d->busy = true;
  sd_event_source_set_enabled(d->work_source, SD_EVENT_OFF);
  sd_event_source_set_time_relative(d->busy_timer, (uint64_t)ms * 1000ull);
  sd_event_source_set_enabled(d->busy_timer, SD_EVENT_ONESHOT);
  if (d->simulate)
    sd_event_source_set_enabled(d->sim_source, SD_EVENT_OFF); /* no clock jump meanwhile */
}

/* The store was locked by another writer (-EBUSY): scheduler work stops and
 * is tried again from busy_timer after a back-off, never by sleeping. */
static void store_busy(struct daemon *d) {
  d->busy_ms = d->busy_ms ? MIN(d->busy_ms * 2, BUSY_BACKOFF_MAX_MS) : BUSY_BACKOFF_MIN_MS;
  metrics_store_busy(d->metrics);
  work_pause(d, d->busy_ms);
}

static int on_busy_timer(sd_event_source *s, uint64_t usec, void *userdata) {
  struct daemon *d = userdata;
  d->running = "scheduler resume (after a pause or a locked store)";
  d->busy = false;
  enable_work(d);
  arm_wake(d);
  return 0;
}

/* In a simulation on the console, one line per simulated day that saw sends:
 * the newcomer's view of reminders flowing. */
static void sim_day_summary(struct daemon *d, int64_t now) {
  int64_t day = now / 86400;
  if (!d->print_summary || day == d->sim_day)
    return;
  if (d->sent > d->sent_at_day) {
    char when[32];
    format_rfc3339(d->sim_day * 86400, when);
    when[10] = 0;
    fprintf(stderr,
            "renewd: [simulated %s] %" PRIu64 " reminders sent (%" PRIu64
            " in total), %zu due in the next %" PRId64 " h\n",
            when, d->sent - d->sent_at_day, d->sent, sched_wheel_count(d->sched),
            d->cfg->daemon.horizon / 3600);
  }
  d->sim_day = day;
  d->sent_at_day = d->sent;
}

/* Fires what is due, extends the horizon when it is time, kicks retries. */
static void tick(struct daemon *d) {
  int64_t now = daemon_now(d);
  sim_day_summary(d, now);
  if (d->simulate && d->clock.speed > 0 && now >= d->sim_until) {
    /* --speed N: the end of the simulated period has come in (scaled) real time. */
    log_info(&d->log, "simulation reached its end");
    update_status(d);
    sd_event_exit(d->event, 0);
    return;
  }
  int r = d->busy ? 0 : sched_run_due(d->sched, now, WORK_BUDGET);
  if (r == -EBUSY)
    store_busy(d);
  else if (r < 0)
    log_error(&d->log, "firing due reminders failed: %s", strerror(-r));
  else if (r == 0)
    d->busy_ms = 0;
  /* more due (r == 1): the work source continues on the next iteration */
  r = sched_maybe_refill(d->sched, now);
  if (r < 0)
    log_error(&d->log, "extending the horizon failed: %s", strerror(-r));
  /* The work source drains whatever the refill queued (and is a no-op when
   * nothing was): one extra loop iteration per tick. */
  enable_work(d);
  if (d->disp && dispatcher_next_wakeup(d->disp) <= now)
    dispatcher_kick(d->disp);
  arm_wake(d);
}

static int on_wake(sd_event_source *s, uint64_t usec, void *userdata) {
  struct daemon *d = userdata;
  d->running = "due reminders (wake timer)";
  tick(d);
  return 0;
}

static int64_t next_wakeup(struct daemon *d) {
  /* while the store is locked, busy_timer brings the scheduler back */
  int64_t next = d->busy ? TIME_NEVER : sched_next_wakeup(d->sched);
  if (d->disp)
    next = MIN(next, dispatcher_next_wakeup(d->disp));
  return next;
}

static void arm_wake(struct daemon *d) {
  int64_t next = next_wakeup(d);
  if (d->simulate && d->clock.speed <= 0) {
    /* Jump when idle; the idle source decides. */
    sd_event_source_set_enabled(d->sim_source, SD_EVENT_ON);
    return;
  }
  if (next == TIME_NEVER) {
    sd_event_source_set_enabled(d->wake_timer, SD_EVENT_OFF);
    return;
  }
  if (d->simulate) {
    uint64_t ms = clock_real_ms_until(&d->clock, MIN(next, d->sim_until));
    uint64_t base;
    sd_event_now(d->event, CLOCK_MONOTONIC, &base);
    sd_event_source_set_time(d->wake_timer, base + ms * 1000);
  } else {
    sd_event_source_set_time(d->wake_timer, (uint64_t)MAX(next, 0) * 1000000ull);
  }
  sd_event_source_set_enabled(d->wake_timer, SD_EVENT_ONESHOT);
}

static int on_work(sd_event_source *s, void *userdata) {
  struct daemon *d = userdata;
  d->running = "scheduler work (scans, planning)";
  int64_t now = daemon_now(d);
  int r = sched_run_due(d->sched, now, WORK_BUDGET);
  if (r == 0)
    r = sched_work(d->sched, now, WORK_BUDGET);
  if (r == -EBUSY) {
    store_busy(d); /* the work source is off until busy_timer */
    return 0;
  }
  if (r >= 0)
    d->busy_ms = 0;
  if (r > 0 && d->ready && !d->simulate) {
    work_pause(d, WORK_GAP_MS); /* more to do: the write lock is free meanwhile */
    return 0;
  }
  if (r < 0)
    log_error(&d->log, "scheduler work failed: %s", strerror(-r));
  if (r <= 0) {
    sd_event_source_set_enabled(s, SD_EVENT_OFF);
    if (!d->ready) {
      d->ready = true;
      update_status(d);
      sd_notify(false, "READY=1");
      log_info(&d->log, "ready: horizon loaded, %zu contracts due within it",
               sched_wheel_count(d->sched));
    }
    arm_wake(d);
  }
  return 0;
}

static bool work_pending(struct daemon *d) {
  int enabled = SD_EVENT_OFF;
  sd_event_source_get_enabled(d->work_source, &enabled);
  return enabled != SD_EVENT_OFF;
}

/* Simulation: when nothing else is going on, move the clock to the next
 * instant something is due, and stop at the end of the simulated period. */
static int on_sim_idle(sd_event_source *s, void *userdata) {
  struct daemon *d = userdata;
  if (d->busy) {
    sd_event_source_set_enabled(s, SD_EVENT_OFF); /* on_busy_timer re-arms it */
    return 0;
  }
  if (work_pending(d))
    return 0;
  if (d->disp && dispatcher_in_flight(d->disp) > 0) {
    sd_event_source_set_enabled(s, SD_EVENT_OFF); /* re-enabled by the report callback */
    return 0;
  }
  int64_t now = daemon_now(d);
  int64_t next = next_wakeup(d);
  if (next <= now) {
    tick(d);
    return 0;
  }
  if (now >= d->sim_until) {
    log_info(&d->log, "simulation reached its end");
    update_status(d);
    sd_event_exit(d->event, 0);
    return 0;
  }
  clock_advance_to(&d->clock, MIN(next, d->sim_until));
  tick(d);
  return 0;
}

static int on_poll(sd_event_source *s, uint64_t usec, void *userdata) {
  struct daemon *d = userdata;
  d->running = "store change poll";
  int r = sched_poll_changes(d->sched, daemon_now(d));
  if (r < 0)
    log_error(&d->log, "checking the store for changes failed: %s", strerror(-r));
  else if (r > 0) {
    log_info(&d->log, "store changed by another writer: re-planning changed contracts");
    enable_work(d);
  }
  /* Another writer may also have queued outbox rows (renewctl respond's owner
   * alerts, renewctl outbox retry): let the dispatcher look. */
  int64_t v;
  if (store_data_version(d->store, &v) >= 0 && v != d->data_version) {
    d->data_version = v;
    if (d->disp)
      dispatcher_kick(d->disp);
  }
  sd_event_source_set_time_relative(s, (uint64_t)d->cfg->daemon.change_poll_interval * 1000000ull);
  sd_event_source_set_enabled(s, SD_EVENT_ON);
  return 0;
}

/* ---- dispatcher glue -------------------------------------------------------- */

/* A graceful stop is over when nothing is in flight any more. */
static void stop_check(struct daemon *d) {
  if (d->stopping && dispatcher_in_flight(d->disp) == 0) {
    log_info(&d->log, "transfers in flight finished and recorded; exiting");
    sd_event_exit(d->event, 0);
  }
}

static int on_curl_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
  struct daemon *d = userdata;
  d->running = "dispatcher (transfer socket)";
  int ev = 0;
  if (revents & EPOLLIN)
    ev |= CURL_CSELECT_IN;
  if (revents & EPOLLOUT)
    ev |= CURL_CSELECT_OUT;
  if (revents & (EPOLLERR | EPOLLHUP))
    ev |= CURL_CSELECT_ERR;
  dispatcher_socket_ready(d->disp, fd, ev);
  arm_wake(d); /* completions may have scheduled retries, probes, rate-limit waits */
  stop_check(d);
  return 0;
}

static int loop_watch(void *loop, int fd, int what) {
  struct daemon *d = loop;
  size_t k;
  for (k = 0; k < d->n_watches; k++)
    if (d->watches[k].fd == fd)
      break;
  if (what == CURL_POLL_REMOVE) {
    if (k < d->n_watches) {
      sd_event_source_disable_unref(d->watches[k].source);
      d->watches[k] = d->watches[--d->n_watches];
    }
    return 0;
  }
  uint32_t events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
  if (k < d->n_watches)
    return sd_event_source_set_io_events(d->watches[k].source, events);
  struct fd_watch *v = realloc(d->watches, (d->n_watches + 1) * sizeof *v);
  if (!v)
    return -ENOMEM;
  d->watches = v;
  sd_event_source *src = NULL;
  int r = sd_event_add_io(d->event, &src, fd, events, on_curl_io, d);
  if (r < 0)
    return r;
  sd_event_source_set_priority(src, WORK_PRIORITY);
  d->watches[d->n_watches++] = (struct fd_watch){.fd = fd, .source = src};
  return 0;
}

static int on_disp_timer(sd_event_source *s, uint64_t usec, void *userdata) {
  struct daemon *d = userdata;
  d->running = "dispatcher (timer: results, claims)";
  dispatcher_timeout(d->disp);
  arm_wake(d);
  stop_check(d);
  return 0;
}

static int loop_timer(void *loop, long ms) {
  struct daemon *d = loop;
  if (ms < 0)
    return sd_event_source_set_enabled(d->disp_timer, SD_EVENT_OFF);
  int r = sd_event_source_set_time_relative(d->disp_timer, (uint64_t)ms * 1000);
  if (r < 0)
    return r;
  return sd_event_source_set_enabled(d->disp_timer, SD_EVENT_ONESHOT);
}

static const struct dispatch_loop_ops loop_ops = {.watch = loop_watch, .timer = loop_timer};

static void on_dispatch_report(void *userdata, const struct dispatch_report *rep) {
  struct daemon *d = userdata;
  metrics_report(d->metrics, rep);
  struct log_ctx lc = {.contract_id = rep->contract_id,
                       .tier = rep->tier,
                       .channel = rep->channel,
                       .reminder_id = rep->reminder_id};
  char when[32] = "";
  switch (rep->outcome) {
  case DISPATCH_SENT:
    d->sent++;
    log_msg(&d->log, LOG_INFO, &lc, "sent %s to %s (attempt %d, %" PRId64 " ms)%s%s", rep->tier,
            rep->recipient ? rep->recipient : "?", rep->attempts, rep->latency_ms,
            rep->detail ? ": " : "", rep->detail ? rep->detail : "");
    break;
  case DISPATCH_RETRY:
    d->retried++;
    format_rfc3339(rep->next_attempt_at, when);
    log_msg(&d->log, LOG_WARNING, &lc, "send failed (attempt %d): %s; retrying at %s",
            rep->attempts, rep->detail ? rep->detail : "?", when);
    break;
  case DISPATCH_DEAD:
    d->dead++;
    log_msg(&d->log, LOG_ERR, &lc,
            "gave up after %d attempts: %s (dead letter; see renewctl outbox --state dead)",
            rep->attempts, rep->detail ? rep->detail : "?");
    break;
  case DISPATCH_FALLBACK:
    d->fallbacks++;
    log_msg(&d->log, LOG_WARNING, &lc, "falling back: %s", rep->detail ? rep->detail : "");
    break;
  case DISPATCH_SKIPPED:
    log_msg(&d->log, LOG_INFO, &lc, "not sent: %s", rep->detail ? rep->detail : "");
    break;
  case DISPATCH_CIRCUIT_OPEN:
    format_rfc3339(rep->next_attempt_at, when);
    log_msg(&d->log, LOG_WARNING, &lc, "channel paused (circuit open): %s; probing again at %s",
            rep->detail ? rep->detail : "?", when);
    break;
  case DISPATCH_CIRCUIT_CLOSED:
    log_msg(&d->log, LOG_NOTICE, &lc, "channel works again (circuit closed)%s%s",
            rep->detail ? ": " : "", rep->detail ? rep->detail : "");
    break;
  case DISPATCH_CANCELLED:
    log_msg(&d->log, LOG_NOTICE, &lc,
            "cancelled by an answer while in flight (attempt %d recorded: %s); nothing follows",
            rep->attempts, rep->detail ? rep->detail : "?");
    break;
  case DISPATCH_UNKNOWN:
    log_msg(&d->log, LOG_WARNING, &lc,
            "outcome unknown, not resent: %s (see renewctl outbox --state unknown)",
            rep->detail ? rep->detail : "?");
    break;
  case DISPATCH_STALE:
    log_msg(&d->log, LOG_NOTICE, &lc, "late result not recorded: %s",
            rep->detail ? rep->detail : "?");
    break;
  case DISPATCH_STORE_BUSY: /* once per episode, not per retry */
    metrics_store_busy(d->metrics);
    log_msg(&d->log, LOG_WARNING, &lc, "dispatcher: %s", rep->detail ? rep->detail : "?");
    break;
  case DISPATCH_STORE_FREE:
    log_msg(&d->log, LOG_NOTICE, &lc, "dispatcher: %s (after %" PRId64 " ms)",
            rep->detail ? rep->detail : "?", rep->latency_ms);
    break;
  case _DISPATCH_OUTCOME_MAX:
    break;
  }
  if (d->simulate && d->clock.speed <= 0 && dispatcher_in_flight(d->disp) == 0)
    sd_event_source_set_enabled(d->sim_source, SD_EVENT_ON);
}

/* ---- HTTP listener glue (http helper) --------------------------------------- */

/* An answer (link, SMS, API) or an API upsert committed a change to contract_id
 * through our own connection (data_version does not see it): re-plan it now so
 * cancellations and new terms take effect at once, and send owner alerts. */
static void on_http_changed(void *userdata, const char *contract_id) {
  struct daemon *d = userdata;
  int r = sched_replan(d->sched, contract_id, daemon_now(d));
  if (r == -EBUSY)
    store_busy(d); /* it stays due at now: planned after the back-off */
  else if (r < 0 && r != -ENOENT) {
    struct log_ctx lc = {.contract_id = contract_id};
    log_msg(&d->log, LOG_ERR, &lc, "re-planning after an answer failed: %s", strerror(-r));
  }
  if (d->disp)
    dispatcher_kick(d->disp);
  arm_wake(d);
}

/* The listener stopped accepting connections (daemon/http_guard.c): renewd
 * cannot mend that itself, so it fails its watchdog at once and systemd
 * restarts it (Restart=on-failure). */
static void on_http_stalled(void *userdata) {
  struct daemon *d = userdata;
  log_error(&d->log, "the HTTP listener is stuck: failing the watchdog so systemd restarts renewd");
  sd_notify(false, "WATCHDOG=trigger\nSTATUS=the HTTP listener is stuck");
}

static int start_http(struct daemon *d, int64_t now) {
  int r = metrics_new(RENEWD_VERSION, now, &d->metrics);
  if (r < 0)
    return r;
  struct http_deps hd = {.store = d->store,
                         .cal = d->cal,
                         .cfg = d->cfg,
                         .log = &d->log,
                         .clock = &d->clock,
                         .sched = d->sched,
                         .metrics = d->metrics,
                         .changed = on_http_changed,
                         .stalled = on_http_stalled,
                         .userdata = d};
  char err[256] = "";
  r = http_new(d->event, &hd, &d->http, err, sizeof err);
  if (r < 0 && d->simulate) {
    log_warning(&d->log, "HTTP listener not started (simulation goes on without it): %s", err);
    return 0;
  }
  if (r < 0) {
    log_error(&d->log, "cannot start the HTTP listener: %s", err);
    return r;
  }
  log_info(&d->log, "HTTP listener on %s", http_address(d->http));
  return 0;
}

static void on_reminders_created(void *userdata) {
  struct daemon *d = userdata;
  if (d->disp)
    dispatcher_kick(d->disp);
}

/* ---- signals ---------------------------------------------------------------- */

/* "file:line: message", or "file: message" for a problem with a whole file. */
static void log_config_error(const struct logger *log, const struct config_error *e) {
  if (e->line > 0)
    log_error(log, "%s:%u: %s", e->file, e->line, e->message);
  else
    log_error(log, "%s: %s", e->file, e->message);
}

static int load_config(struct daemon *d, struct config **ret) {
  struct config_errors errs = {0};
  int r = config_load(d->config_path, d->cal, ret, &errs);
  if (r >= 0) {
    r = dispatcher_check_config(*ret, &errs);
    if (r < 0)
      *ret = config_free(*ret);
  }
  for (size_t k = 0; k < errs.n; k++)
    log_config_error(&d->log, &errs.v[k]);
  config_errors_clear(&errs);
  return r;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
  struct daemon *d = userdata;
  uint64_t usec;
  sd_event_now(d->event, CLOCK_MONOTONIC, &usec);
  sd_notifyf(false, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64 "\nSTATUS=reloading %s", usec,
             d->config_path);
  log_info(&d->log, "reloading configuration from %s", d->config_path);
  struct config *cfg = NULL;
  int r = load_config(d, &cfg);
  if (r < 0) {
    log_error(&d->log, "reload rejected: %s is invalid; keeping the running configuration",
              d->config_path);
  } else if (!streq(cfg->daemon.database, d->cfg->daemon.database) && !d->db_override) {
    log_error(&d->log, "reload rejected: Database= cannot change at reload (restart renewd)");
    config_free(cfg);
  } else {
    struct config_errors errs = {0};
    r = dispatcher_set_config(d->disp, cfg, &errs);
    config_errors_clear(&errs);
    if (r < 0) {
      log_error(&d->log,
                "reload rejected: channel settings invalid; keeping the running configuration");
      config_free(cfg);
    } else {
      sched_set_config(d->sched, cfg, daemon_now(d));
      http_set_config(d->http, cfg); /* re-reads link keys, API tokens, SMS token */
      config_free(d->cfg);
      d->cfg = cfg;
      log_info(&d->log, "configuration reloaded: %zu policies", cfg->n_policies);
      enable_work(d);
    }
  }
  sd_notify(false, "READY=1");
  update_status(d);
  return 0;
}

static int on_stop_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
  struct daemon *d = userdata;
  size_t n = dispatcher_abort(d->disp);
  if (n > 0)
    log_warning(&d->log,
                "StopTimeout=%" PRId64 "s reached: %zu transfers aborted; their rows are settled "
                "at the next start (email and webhooks resent with the same key, SMS looked up at "
                "the provider or marked unknown)",
                d->cfg->daemon.stop_timeout, n);
  sd_event_exit(d->event, 0);
  return 0;
}

/* SIGTERM/SIGINT: claim nothing more; transfers in flight finish (bounded
 * by StopTimeout=) and their results are recorded; a second signal stops at
 * once (what is in flight is left to the next start). */
static int on_sigterm(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
  struct daemon *d = userdata;
  size_t n = d->disp ? dispatcher_in_flight(d->disp) : 0;
  if (d->stopping || n == 0 || d->cfg->daemon.stop_timeout == 0) {
    sd_notify(false, "STOPPING=1\nSTATUS=shutting down");
    log_info(&d->log, "received %s, shutting down%s", strsignal((int)si->ssi_signo),
             n ? " without waiting for the transfers in flight" : "");
    if (n)
      dispatcher_abort(d->disp);
    sd_event_exit(d->event, 0);
    return 0;
  }
  d->stopping = true;
  dispatcher_stop(d->disp);
  sd_notifyf(false, "STOPPING=1\nSTATUS=shutting down: waiting for %zu transfers in flight", n);
  log_info(&d->log,
           "received %s, shutting down: claiming nothing more, waiting up to %" PRId64
           "s for %zu transfers in flight",
           strsignal((int)si->ssi_signo), d->cfg->daemon.stop_timeout, n);
  int r = sd_event_add_time_relative(d->event, &d->stop_timer, CLOCK_MONOTONIC,
                                     (uint64_t)d->cfg->daemon.stop_timeout * 1000000ull, 0,
                                     on_stop_timeout, d);
  if (r < 0) {
    log_error(&d->log, "cannot arm the stop timer: %s; stopping now", strerror(-r));
    dispatcher_abort(d->disp);
    sd_event_exit(d->event, 0);
  }
  return 0;
}

/* ---- command line ---------------------------------------------------------- */

/* Rows per page of the scheduler's scans and the metrics recount:
 * RENEWD_SCAN_PAGE_ROWS (a tuning and testing knob, docs/operations.md),
 * else the default. */
static size_t scan_page_rows(void) {
  const char *v = getenv("RENEWD_SCAN_PAGE_ROWS");
  int64_t n;
  if (v && parse_int64(v, &n) >= 0 && n > 0 && n <= 1000000)
    return (size_t)n;
  return 0;
}

static void help(void) {
  printf("Usage: renewd [OPTIONS]\n"
         "\n"
         "Renewal and expiry reminder daemon.\n"
         "\n"
         "  -c, --config PATH        configuration file (default %s; drop-ins in PATH.d/)\n"
         "      --db PATH            store file, overriding [Daemon] Database=\n"
         "      --check-config       validate the configuration, print the effective\n"
         "                           policies, exit 0 when valid, 78 when not\n"
         "      --log-target TARGET  console, journal or auto (default auto)\n"
         "      --log-level LEVEL    debug, info, notice, warning, err (default info)\n"
         "      --simulate FROM..UNTIL\n"
         "                           run on a simulated clock from FROM to UNTIL (dates\n"
         "                           or RFC 3339 instants, UTC) and exit\n"
         "      --speed N            with --simulate: N times real time (default: as\n"
         "                           fast as possible)\n"
         "  -h, --help               show this help\n"
         "      --version            show the version\n"
         "\n"
         "Signals: SIGHUP reloads the configuration (an invalid one is rejected and the\n"
         "running one kept), SIGTERM stops (transfers in flight finish first, within\n"
         "StopTimeout=). See renewd(8) and renewd.conf(5).\n",
         CONFIG_DEFAULT_PATH);
}

static int parse_instant(const char *s, int64_t *ret) {
  int y, m, dd;
  if (cal_parse_rfc3339(s, ret) >= 0)
    return 0;
  if (cal_parse_date(s, &y, &m, &dd) < 0)
    return -EINVAL;
  struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = dd};
  *ret = (int64_t)timegm(&tm);
  return 0;
}

static int parse_level(const char *s) {
  static const char *names[] = {"emerg",   "alert",  "crit", "err",
                                "warning", "notice", "info", "debug"};
  for (int k = 0; k < 8; k++)
    if (streq(s, names[k]))
      return k;
  return -EINVAL;
}

enum {
  ARG_CHECK = 0x100,
  ARG_LOG_TARGET,
  ARG_LOG_LEVEL,
  ARG_SIMULATE,
  ARG_SPEED,
  ARG_VERSION,
  ARG_DB
};

int main(int argc, char **argv) {
  static const struct option options[] = {
      {"config", required_argument, NULL, 'c'},
      {"db", required_argument, NULL, ARG_DB},
      {"check-config", no_argument, NULL, ARG_CHECK},
      {"log-target", required_argument, NULL, ARG_LOG_TARGET},
      {"log-level", required_argument, NULL, ARG_LOG_LEVEL},
      {"simulate", required_argument, NULL, ARG_SIMULATE},
      {"speed", required_argument, NULL, ARG_SPEED},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, ARG_VERSION},
      {},
  };
  struct daemon d = {.config_path = CONFIG_DEFAULT_PATH};
  bool check = false;
  enum log_target target = LOG_TARGET_AUTO;
  int level = LOG_INFO;
  const char *simulate = NULL;
  double speed = 0;
  int c, r;

  while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0) {
    switch (c) {
    case 'c':
      d.config_path = optarg;
      break;
    case ARG_DB:
      d.db_override = optarg;
      break;
    case ARG_CHECK:
      check = true;
      break;
    case ARG_LOG_TARGET:
      if ((r = log_target_from_string(optarg)) < 0) {
        fprintf(stderr, "renewd: --log-target: expected console, journal or auto, got '%s'\n",
                optarg);
        return EX_USAGE;
      }
      target = r;
      break;
    case ARG_LOG_LEVEL:
      if ((level = parse_level(optarg)) < 0) {
        fprintf(stderr, "renewd: --log-level: unknown level '%s'\n", optarg);
        return EX_USAGE;
      }
      break;
    case ARG_SIMULATE:
      simulate = optarg;
      break;
    case ARG_SPEED: {
      char *end;
      speed = strtod(optarg, &end);
      if (*end || speed <= 0) {
        fprintf(stderr, "renewd: --speed: expected a positive number, got '%s'\n", optarg);
        return EX_USAGE;
      }
      break;
    }
    case 'h':
      help();
      return 0;
    case ARG_VERSION:
      printf("renewd %s\n", RENEWD_VERSION);
      return 0;
    default:
      fprintf(stderr, "Try 'renewd --help'.\n");
      return EX_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "renewd: unexpected argument '%s'\nTry 'renewd --help'.\n", argv[optind]);
    return EX_USAGE;
  }
  if (simulate) {
    const char *dots = strstr(simulate, "..");
    _cleanup_free_ char *from = dots ? strndup(simulate, (size_t)(dots - simulate)) : NULL;
    int64_t t0, t1;
    if (!dots || parse_instant(from, &t0) < 0 || parse_instant(dots + 2, &t1) < 0 || t1 <= t0) {
      fprintf(stderr,
              "renewd: --simulate: expected FROM..UNTIL (e.g. 2027-01-01..2027-12-31), got '%s'\n",
              simulate);
      return EX_USAGE;
    }
    d.simulate = true;
    d.sim_until = t1;
    d.sim_day = t0 / 86400;
    clock_init_simulated(&d.clock, t0, speed);
  } else
    clock_init_real(&d.clock);

  log_init(&d.log, check ? LOG_TARGET_CONSOLE : target, level);
  d.print_summary = d.simulate && d.log.target == LOG_TARGET_CONSOLE;

  r = cal_new(&d.cal);
  if (r < 0) {
    log_error(&d.log, "out of memory");
    return EX_OSERR;
  }
  r = load_config(&d, &d.cfg);
  if (check) {
    if (r < 0) {
      fprintf(stderr, "renewd: %s: configuration is invalid\n", d.config_path);
      d.exit_code = CONFIG_EXIT_INVALID;
    } else {
      config_print_policies(d.cfg, stdout);
      printf("\n%s: configuration is valid\n", d.config_path);
    }
    goto out;
  }
  if (r < 0) {
    log_error(&d.log, "cannot start: configuration %s is invalid (see above)", d.config_path);
    d.exit_code = CONFIG_EXIT_INVALID;
    goto out;
  }

  curl_global_init(CURL_GLOBAL_DEFAULT);
  char err[512] = "";
  const char *db = d.db_override ? d.db_override : d.cfg->daemon.database;
  r = store_open(db, 0, &d.store, err, sizeof err);
  if (r < 0) {
    log_error(&d.log, "cannot open the store: %s", err);
    d.exit_code = EX_CANTCREAT;
    goto out;
  }
  /* The loop's connection never sleeps in SQLite's busy handler (-EBUSY is
   * retried from a timer) and never checkpoints on commit: the checkpoint
   * thread does, with its own connection. */
  if ((r = store_set_busy_timeout(d.store, 0)) < 0 ||
      (r = store_set_autocheckpoint(d.store, 0)) < 0)
    goto fail;
  if (!streq(db, ":memory:") && (r = ckpt_new(db, &d.ckpt)) < 0) {
    log_error(&d.log, "cannot start the WAL checkpoint thread: %s", strerror(-r));
    goto fail;
  }

  int64_t now = daemon_now(&d);
  r = sched_new(d.store, d.cal, d.cfg, &d.log, now, &d.sched);
  if (r < 0)
    goto fail;
  sched_set_callback(d.sched, on_reminders_created, &d);
  size_t page = scan_page_rows();
  sched_set_page_size(d.sched, page);

  r = sd_event_new(&d.event);
  if (r < 0)
    goto fail;
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  signal(SIGPIPE, SIG_IGN);
  if ((r = sd_event_add_signal(d.event, NULL, SIGTERM, on_sigterm, &d)) < 0 ||
      (r = sd_event_add_signal(d.event, NULL, SIGINT, on_sigterm, &d)) < 0 ||
      (r = sd_event_add_signal(d.event, NULL, SIGHUP, on_sighup, &d)) < 0)
    goto fail;
  r = sd_event_add_time(d.event, &d.wake_timer, d.simulate ? CLOCK_MONOTONIC : CLOCK_REALTIME,
                        UINT64_MAX, 0, on_wake, &d);
  if (r < 0)
    goto fail;
  r = sd_event_add_time_relative(d.event, &d.poll_timer, CLOCK_MONOTONIC,
                                 (uint64_t)d.cfg->daemon.change_poll_interval * 1000000ull, 0,
                                 on_poll, &d);
  if (r < 0)
    goto fail;
  r = sd_event_add_time_relative(d.event, &d.status_timer, CLOCK_MONOTONIC,
                                 STATUS_INTERVAL_S * 1000000ull, 0, on_status_timer, &d);
  if (r < 0)
    goto fail;
  r = sd_event_add_time(d.event, &d.disp_timer, CLOCK_MONOTONIC, UINT64_MAX, 0, on_disp_timer, &d);
  if (r < 0)
    goto fail;
  sd_event_source_set_enabled(d.disp_timer, SD_EVENT_OFF);
  r = sd_event_add_defer(d.event, &d.work_source, on_work, &d);
  if (r < 0)
    goto fail;
  r = sd_event_add_time(d.event, &d.busy_timer, CLOCK_MONOTONIC, UINT64_MAX, 0, on_busy_timer, &d);
  if (r < 0)
    goto fail;
  sd_event_source_set_enabled(d.busy_timer, SD_EVENT_OFF);
  sd_event_source *work[] = {d.wake_timer, d.poll_timer,  d.status_timer,
                             d.disp_timer, d.work_source, d.busy_timer};
  for (size_t k = 0; k < ELEMENTSOF(work); k++)
    sd_event_source_set_priority(work[k], WORK_PRIORITY);
  r = sd_event_add_defer(d.event, &d.sim_source, on_sim_idle, &d);
  if (r < 0)
    goto fail;
  sd_event_source_set_priority(d.sim_source, SD_EVENT_PRIORITY_IDLE);
  sd_event_source_set_enabled(d.sim_source, SD_EVENT_OFF);
  sd_event_set_watchdog(d.event, true);
  /* the listener before the dispatcher: a second renewd on the same port stops
   * here, before it touches the outbox (http helper) */
  r = start_http(&d, now);
  if (r < 0) {
    d.exit_code = EX_UNAVAILABLE;
    goto out;
  }
  metrics_set_ckpt(d.metrics, d.ckpt);
  r = metrics_start_recount(d.metrics, d.event, d.store, WORK_PRIORITY, page);
  if (r < 0)
    goto fail;

  struct config_errors errs = {0};
  struct dispatch_callbacks cbs = {.report = on_dispatch_report, .userdata = &d};
  r = dispatcher_new(d.store, d.cal, d.cfg, &d.clock, &loop_ops, &d, &cbs, &d.disp, &errs);
  for (size_t k = 0; k < errs.n; k++)
    log_config_error(&d.log, &errs.v[k]);
  config_errors_clear(&errs);
  if (r < 0)
    goto fail;
  r = dispatcher_recover(d.disp);
  if (r > 0)
    log_notice(&d.log,
               "%d reminders were being sent when renewd stopped; settled by their channel's "
               "policy (email and webhooks: sending them again with the same idempotency keys)",
               r);
  else if (r < 0)
    log_error(&d.log, "recovering the reminders left in flight failed: %s", strerror(-r));

  r = sched_start(d.sched, now);
  if (r < 0)
    goto fail;
  log_info(&d.log, "renewd %s started: store %s, config %s%s", RENEWD_VERSION, db, d.config_path,
           d.simulate ? ", simulated clock" : "");
  /* READY=1 once the work queued by sched_start (the horizon) is done. */
  enable_work(&d);
  dispatcher_kick(d.disp);

  r = run_loop(&d);
  if (r < 0)
    goto fail;
  if (d.simulate)
    fprintf(stderr,
            "renewd: simulation done: %" PRIu64 " sent, %" PRIu64 " retries, %" PRIu64
            " dead letters\n",
            d.sent, d.retried, d.dead);
  goto out;

fail:
  log_error(&d.log, "fatal: %s%s%s", strerror(r < 0 ? -r : r), d.store ? "; store: " : "",
            d.store ? store_last_error(d.store) : "");
  d.exit_code = EX_SOFTWARE;
out:
  for (size_t k = 0; k < d.n_watches; k++)
    sd_event_source_disable_unref(d.watches[k].source);
  free(d.watches);
  d.http = http_free(d.http); /* before the store and the loop it uses */
  d.disp = dispatcher_free(d.disp);
  sd_event_source_disable_unref(d.wake_timer);
  sd_event_source_disable_unref(d.poll_timer);
  sd_event_source_disable_unref(d.work_source);
  sd_event_source_disable_unref(d.sim_source);
  sd_event_source_disable_unref(d.disp_timer);
  sd_event_source_disable_unref(d.status_timer);
  sd_event_source_disable_unref(d.stop_timer);
  sd_event_source_disable_unref(d.busy_timer);
  metrics_stop_recount(d.metrics); /* its event source, before the loop */
  sd_event_unref(d.event);
  sched_free(d.sched);
  metrics_free(d.metrics);
  d.ckpt = ckpt_free(d.ckpt); /* a last checkpoint, then its connection closes */
  store_free(d.store);
  config_free(d.cfg);
  cal_free(d.cal);
  curl_global_cleanup();
  return d.exit_code;
}
