/* Getting a thread out of the guest: the reserved real-time signal whose
 * handler does nothing but interrupt the hypervisor's run call, and the
 * per-vCPU POSIX timer that sends it when a run's timeout expires. Neutral:
 * any backend that runs a vCPU in the calling thread needs both. */
#ifndef SL_KICK_H
#define SL_KICK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "err.h"

/* Installs the do-nothing handler once per process. 0, or an errno value
 * (EBUSY: another handler owns the signal). */
int sl_kick_install(void);

/* Lets the calling thread receive the kick signal. */
void sl_kick_accept(void);

/* A timer that kicks one thread; zero-initialised = not created yet. */
typedef struct sl_kick_timer {
    bool ok;
    timer_t timer;
    pid_t tid;
} sl_kick_timer;

/* Kicks the calling thread after ns, then every millisecond until disarmed:
 * a kick that lands just before the thread enters the guest is lost, and
 * nothing orders the timer against that entry. */
int sl_kick_timer_arm(sl_kick_timer *t, uint64_t ns, sl_errbuf *e);
void sl_kick_timer_disarm(sl_kick_timer *t);
void sl_kick_timer_delete(sl_kick_timer *t);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t sl_kick_now_ns(void);

#endif
