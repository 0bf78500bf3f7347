/* What a guest call or a restore costs on KVM, counted rather than timed:
 * the sandbox's own event counters (sl_sandbox_info: VM exits by reason,
 * KVM ioctls, guest faults, copy-on-write copies, dirty pages) and every
 * ioctl the process issues (a wrapper around ioctl(), which also sees the
 * ioctls of a restore, whose counters restart at zero). Shared by the
 * benchmarks that run guests; the program defines
 *     static void die(const char *what, int rc, const char *msg);
 * before including it. SANDLET_BENCH_TRACE=1 prints the ioctls by name. */
#ifndef SL_BENCH_KVM_H
#define SL_BENCH_KVM_H

#include <linux/kvm.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandlet.h"

static void die(const char *what, int rc, const char *msg);

/* ------------------------------------------------- counting KVM's ioctls
 * libsandlet is linked statically, so this definition takes the place of the
 * C library's ioctl() for it: every ioctl the library issues is counted (and,
 * while `trace_on`, its request recorded) before the system call is made. */

static __attribute__((unused)) unsigned long long n_ioctls;
#define TRACE_MAX 64
static __attribute__((unused)) unsigned long trace_req[TRACE_MAX];
static __attribute__((unused)) unsigned trace_n;
static __attribute__((unused)) int trace_on;

int ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    n_ioctls++;
    if (trace_on && trace_n < TRACE_MAX)
        trace_req[trace_n++] = req;
    return (int)syscall(SYS_ioctl, fd, req, arg);
}

static inline const char *ioctl_name(unsigned long req)
{
    static const struct {
        unsigned long req;
        const char *name;
    } names[] = {
        {KVM_RUN, "KVM_RUN"},
        {KVM_GET_REGS, "KVM_GET_REGS"},
        {KVM_SET_REGS, "KVM_SET_REGS"},
        {KVM_GET_SREGS, "KVM_GET_SREGS"},
        {KVM_SET_SREGS, "KVM_SET_SREGS"},
        {KVM_SET_FPU, "KVM_SET_FPU"},
        {KVM_SET_XSAVE, "KVM_SET_XSAVE"},
        {KVM_SET_XCRS, "KVM_SET_XCRS"},
        {KVM_SET_DEBUGREGS, "KVM_SET_DEBUGREGS"},
        {KVM_SET_VCPU_EVENTS, "KVM_SET_VCPU_EVENTS"},
        {KVM_SET_MSRS, "KVM_SET_MSRS"},
        {KVM_GET_DIRTY_LOG, "KVM_GET_DIRTY_LOG"},
        {KVM_SET_USER_MEMORY_REGION, "KVM_SET_USER_MEMORY_REGION"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].req == req)
            return names[i].name;
    return "other";
}

static inline int tracing(void)
{
    const char *t = getenv("SANDLET_BENCH_TRACE");
    return t && *t == '1';
}

static inline void trace_start(void)
{
    trace_n = 0;
    trace_on = tracing();
}

static inline void trace_print(const char *name)
{
    trace_on = 0;
    if (!tracing())
        return;
    printf("# ioctls %s:", name);
    for (unsigned i = 0; i < trace_n; i++)
        printf(" %s", ioctl_name(trace_req[i]));
    printf("\n");
}

/* ---------------------------------------------------------------- events */

typedef struct events {
    uint64_t exits, io, mmio, other, ioctls, faults, cow, demand, syscalls, dirty;
    uint64_t emulated; /* instructions KVM emulated (PVM: every guest-kernel instruction) */
} events;

/* ioctls sl_sandbox_info_get issues itself (its KVM_GET_DIRTY_LOG), measured
 * at start-up and left out of every count. */
static __attribute__((unused)) uint64_t info_ioctls;

static inline events info_events(sl_sandbox *sb)
{
    sl_sandbox_info in;
    int rc = sl_sandbox_info_get(sb, &in);
    if (rc)
        die("info", rc, sl_sandbox_errmsg(sb));
    events e = {in.exits,        in.exits_io,   in.exits_mmio,   in.exits_other, in.ioctls,
                in.guest_faults, in.cow_copies, in.demand_pages, in.syscalls,    in.dirty_pages,
                in.emulated};
    return e;
}

static inline events events_sub(events a, events b)
{
    events d = {a.exits - b.exits,   a.io - b.io,         a.mmio - b.mmio,         a.other - b.other,
                a.ioctls - b.ioctls, a.faults - b.faults, a.cow - b.cow,           a.demand - b.demand,
                a.syscalls - b.syscalls, a.dirty - b.dirty, a.emulated - b.emulated};
    return d;
}

static inline void print_events(const char *name, const events *e)
{
    printf("# events %s: exits=%llu (io=%llu mmio=%llu other=%llu) ioctls=%llu guest_faults=%llu cow=%llu "
           "demand=%llu syscalls=%llu dirty_pages=%llu emulated=%llu\n",
           name, (unsigned long long)e->exits, (unsigned long long)e->io, (unsigned long long)e->mmio,
           (unsigned long long)e->other, (unsigned long long)e->ioctls, (unsigned long long)e->faults,
           (unsigned long long)e->cow, (unsigned long long)e->demand, (unsigned long long)e->syscalls,
           (unsigned long long)e->dirty, (unsigned long long)e->emulated);
    fflush(stdout);
}

static inline void calibrate_info(sl_sandbox *sb)
{
    events a = info_events(sb), b = info_events(sb);
    info_ioctls = b.ioctls - a.ioctls;
}

/* Events of a call made right after a restore: read right after the call. */
static inline events call_events(sl_sandbox *sb)
{
    events e = info_events(sb);
    e.ioctls -= info_ioctls;
    return e;
}

/* ------------------------------------------------------------ guests */

static inline const char *guest_path(const char *name)
{
    static char buf[4096];
    const char *dir = getenv("SANDLET_GUESTS");
    snprintf(buf, sizeof buf, "%s/%s", dir && *dir ? dir : "build/guests", name);
    return buf;
}

static inline sl_sandbox *open_guest(const char *name, const sl_config *cfg)
{
    sl_sandbox *sb = NULL;
    char err[256] = "";
    int rc = sl_sandbox_new_from_file(&sb, guest_path(name), cfg, err, sizeof err);
    if (rc)
        die(guest_path(name), rc, err);
    if ((rc = sl_sandbox_init(sb)))
        die("init", rc, sl_sandbox_errmsg(sb));
    return sb;
}

static inline void restore_once(sl_sandbox *sb, sl_snapshot *s)
{
    int rc = sl_sandbox_restore(sb, s);
    if (rc)
        die("restore", rc, sl_sandbox_errmsg(sb));
}

/* dirty_pages right after the last counted restore: the bookkeeping page,
 * which every restore rewrites from the host. */
static __attribute__((unused)) uint64_t after_restore_dirty;

/* A restore, counted: see the header comment. */
static inline events counted_restore(sl_sandbox *sb, sl_snapshot *s, const char *name)
{
    uint64_t dirty = info_events(sb).dirty;
    unsigned long long n0 = n_ioctls;
    trace_start();
    restore_once(sb, s);
    trace_print(name);
    uint64_t n = n_ioctls - n0;
    events e = info_events(sb);
    e.ioctls -= info_ioctls;
    if (e.exits || e.faults || e.cow || e.demand || e.syscalls || e.ioctls)
        printf("# warning: %s: the sandbox's counters did not restart at the restore\n", name);
    after_restore_dirty = e.dirty;
    e.ioctls = n;
    e.dirty = dirty;
    return e;
}

#endif
