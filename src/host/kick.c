/* The kick signal and the run timeout timer (kick.h). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "kick.h"
#include "vcpu.h"

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

#define KICK_SIGNAL_OFFSET 6 /* SIGRTMIN + 6 */

int sl_vcpu_kick_signal(void)
{
    return SIGRTMIN + KICK_SIGNAL_OFFSET;
}

static void kick_handler(int sig)
{
    (void)sig; /* existing only makes the hypervisor's run call return EINTR */
}

static pthread_once_t kick_once = PTHREAD_ONCE_INIT;
static int kick_install_errno; /* 0 = installed; EBUSY: someone else owns the signal */

static void kick_install(void)
{
    int sig = sl_vcpu_kick_signal();
    struct sigaction old;
    if (sigaction(sig, NULL, &old) < 0) {
        kick_install_errno = errno;
        return;
    }
    bool custom = (old.sa_flags & SA_SIGINFO) ? old.sa_sigaction != NULL
                                               : (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN);
    if (custom) {
        kick_install_errno = EBUSY;
        return;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = kick_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the run call must come back with EINTR */
    if (sigaction(sig, &sa, NULL) < 0)
        kick_install_errno = errno;
}

int sl_kick_install(void)
{
    pthread_once(&kick_once, kick_install);
    return kick_install_errno;
}

void sl_kick_accept(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sl_vcpu_kick_signal());
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

static int timer_err(sl_errbuf *e, const char *what)
{
    int err = errno;
    return sl_err(e, SL_EHYPERVISOR, "%s failed: %s (errno %d)", what, strerror(err), err);
}

/* A timer sends its signal to the thread that created it (SIGEV_THREAD_ID):
 * a run from another thread needs a new one. */
static int timer_for_this_thread(sl_kick_timer *t, sl_errbuf *e)
{
    pid_t tid = gettid();
    if (t->ok && t->tid == tid)
        return 0;
    sl_kick_timer_delete(t);
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = sl_vcpu_kick_signal();
    sev.sigev_notify_thread_id = tid;
    if (timer_create(CLOCK_MONOTONIC, &sev, &t->timer) < 0)
        return timer_err(e, "timer_create");
    t->ok = true;
    t->tid = tid;
    return 0;
}

int sl_kick_timer_arm(sl_kick_timer *t, uint64_t ns, sl_errbuf *e)
{
    int rc = timer_for_this_thread(t, e);
    if (rc)
        return rc;
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    its.it_value.tv_sec = (time_t)(ns / 1000000000u);
    its.it_value.tv_nsec = (long)(ns % 1000000000u);
    its.it_interval.tv_nsec = 1000000; /* re-kick in case a kick was lost */
    if (timer_settime(t->timer, 0, &its, NULL) < 0)
        return timer_err(e, "timer_settime");
    return 0;
}

void sl_kick_timer_disarm(sl_kick_timer *t)
{
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    timer_settime(t->timer, 0, &its, NULL);
}

void sl_kick_timer_delete(sl_kick_timer *t)
{
    if (t->ok)
        timer_delete(t->timer);
    t->ok = false;
}

uint64_t sl_kick_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
