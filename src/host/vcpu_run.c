/* Running a vCPU and stopping it from another thread (vcpu.h), for every
 * backend (backend.h).
 *
 * Cancellation: sl_vcpu_cancel() latches a request under v->lock, turns on
 * the backend's immediate exit (KVM: kvm_run->immediate_exit) and, when a
 * run is in progress, sends the kick signal (kick.h) to the running thread.
 * The signal's handler does nothing; its only job is to make the
 * hypervisor's run call return EINTR. The two mechanisms cover each other's
 * races: a signal that lands just before the thread enters the guest is
 * consumed in user space, but then the immediate exit (turned on before the
 * signal, read by the hypervisor at entry) stops the entry; a cancel after
 * entry is seen by the signal. A request that finds no run stays latched for
 * the next one.
 *
 * Timeouts use a timer that sends the same signal to the running thread. A
 * timer signal can also land just before entry and be lost, and there is no
 * lock to order it against; so after the first expiry the timer keeps
 * firing every millisecond until the run returns, and each kick compares
 * the clock with the deadline. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "vcpu.h"

void sl_vcpu_cancel(sl_vcpu *v)
{
    if (!v)
        return;
    pthread_mutex_lock(&v->lock);
    v->cancel_req = true;
    v->ops->immediate_exit(v, true); /* before the signal: see the top of the file */
    if (v->in_run)
        pthread_kill(v->runner, sl_vcpu_kick_signal());
    pthread_mutex_unlock(&v->lock);
}

void sl_vcpu_clear_cancel(sl_vcpu *v)
{
    if (!v)
        return;
    pthread_mutex_lock(&v->lock);
    v->cancel_req = false;
    v->ops->immediate_exit(v, false);
    pthread_mutex_unlock(&v->lock);
}

/* True (and the request consumed) when a cancel is latched. */
static bool take_cancel(sl_vcpu *v, bool leaving)
{
    pthread_mutex_lock(&v->lock);
    bool c = v->cancel_req;
    if (c) {
        v->cancel_req = false;
        v->ops->immediate_exit(v, false);
    }
    if (c || leaving)
        v->in_run = false;
    pthread_mutex_unlock(&v->lock);
    return c;
}

static void set_in_run(sl_vcpu *v, bool on)
{
    pthread_mutex_lock(&v->lock);
    v->in_run = on;
    if (on)
        v->runner = pthread_self();
    pthread_mutex_unlock(&v->lock);
}

/* Enters the guest until an exit for the caller, a latched cancel or the
 * deadline (0: none). */
static int run_loop(sl_vcpu *v, sl_exit *ex, uint64_t deadline, uint64_t timeout_ns, sl_errbuf *e)
{
    for (;;) {
        int r = v->ops->enter(v, ex, e);
        if (r < 0)
            return r;
        if (r == SL_ENTER_EXIT)
            return 0;
        if (r == SL_ENTER_AGAIN)
            continue;
        if (take_cancel(v, false)) {
            ex->reason = SL_EXIT_CANCELLED;
            v->ops->exit_rip(v, ex);
            snprintf(ex->detail, sizeof ex->detail, "run cancelled");
            return 0;
        }
        if (deadline && sl_kick_now_ns() >= deadline) {
            ex->reason = SL_EXIT_TIMEOUT;
            v->ops->exit_rip(v, ex);
            snprintf(ex->detail, sizeof ex->detail, "run exceeded its timeout of %llu ns",
                     (unsigned long long)timeout_ns);
            return 0;
        }
        /* a stray signal, or a kick whose cause was consumed: enter again */
    }
}

int sl_vcpu_run(sl_vcpu *v, sl_exit *ex, uint64_t timeout_ns, sl_errbuf *e)
{
    if (!v || !ex)
        return sl_err(e, SL_EINVAL, "sl_vcpu_run: NULL argument");
    memset(ex, 0, sizeof *ex);
    ex->reason = SL_EXIT_INTERNAL;
    sl_kick_accept(); /* the kick only interrupts the guest if this thread accepts it */
    set_in_run(v, true);
    if (take_cancel(v, false)) {
        ex->reason = SL_EXIT_CANCELLED;
        snprintf(ex->detail, sizeof ex->detail, "run cancelled before it started");
        return 0;
    }
    uint64_t deadline = 0;
    if (timeout_ns) {
        int rc = sl_kick_timer_arm(&v->timer, timeout_ns, e);
        if (rc) {
            take_cancel(v, true);
            return rc;
        }
        deadline = sl_kick_now_ns() + timeout_ns;
    }
    int rc = run_loop(v, ex, deadline, timeout_ns, e);
    if (timeout_ns)
        sl_kick_timer_disarm(&v->timer);
    set_in_run(v, false);
    return rc;
}

int sl_vcpu_set_in_value(sl_vcpu *v, uint32_t value, sl_errbuf *e)
{
    if (!v)
        return sl_err(e, SL_EINVAL, "sl_vcpu_set_in_value: NULL vCPU");
    return v->ops->set_in_value(v, value, e);
}
