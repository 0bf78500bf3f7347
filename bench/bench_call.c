/* Guest call benchmarks (need KVM: native hardware KVM, or the KVM lab):
 *  - kvm_run_out_roundtrip: a hand-made long-mode guest that only does `out`
 *    in a loop at CPL3, driven through the internal vCPU API
 *    (src/host/vcpu.h); the floor under every guest call (which runs at
 *    CPL3), measured in the same run; kvm_run_out_roundtrip_cpl0: the same
 *    loop at CPL0, against it;
 *  - call_echo_short: Echo("hi") on the demo guest, against that floor;
 *  - restore_clean: a restore with nothing dirtied, against that floor;
 *  - cow_page: one copy-on-write fault (Counter after a restore, against Echo
 *    after a restore), against the CPL0 round trip a host-side copy needs;
 *  - lua_request: Eval(code) on the lua_eval guest + restore, against the
 *    floor;
 *  - call_fill_restore_<N>pages: Fill(N pages) + restore, for N = 0, 1, 16,
 *    256, against the floor, and restore_after_<N>pages: the restore alone,
 *    against the clean restore (its cost must follow the pages dirtied, not
 *    the size of scratch).
 * After each measurement one more representative iteration is counted, not
 * timed, and printed as
 *   # events <bench>: exits=N (io=N mmio=N other=N) ioctls=N guest_faults=N
 *     cow=N demand=N syscalls=N dirty_pages=N
 * (one line). These counts are the same on hardware KVM, PVM and in the lab,
 * so they, not the times, are what the goals (`# goal ...` lines) bind:
 *  - a call: the sl_sandbox_info counters read right after the call (for a
 *    call repeated without restores: the difference over that one call);
 *    ioctls leave out the KVM_GET_DIRTY_LOG that sl_sandbox_info_get itself
 *    issues;
 *  - a restore: ioctls = those sl_sandbox_restore issues (counted by wrapping
 *    ioctl(2) below: the sandbox's own counters restart at the end of every
 *    restore, so they cannot see it), dirty_pages = the pages it had to reset
 *    (read just before it), the other counters read right after it (0: they
 *    restart at every restore);
 *  - call_fill_restore_<N>pages: the call's events plus the restore's ioctls.
 * Finally, per architecture (demo, demo32): the scratch pages an empty call
 * dirties after a restore (`# dirty pages per empty call`).
 * Output: "# ..." comment lines, then `BENCH name median=.. baseline=.. ratio=..`.
 * Guests come from $SANDLET_GUESTS (default build/guests). SANDLET_BENCH_TRACE=1
 * also lists the ioctls of each counted iteration by name. */
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../tests/common/vm.h"
#include "bench.h"
#include "sandlet.h"
#include "vcpu.h"

static void die(const char *what, int rc, const char *msg)
{
    fprintf(stderr, "bench_call: %s: %s: %s\n", what, sl_strerror(rc), msg ? msg : "");
    exit(1);
}

#include "bench_kvm.h"

/* ------------------------------------------------ bare KVM_RUN round trip */

#define BARE_MEM 0x200000u
#define BARE_CODE 0x10000u
#define BARE_TABLES 0x1000u

/* Constants spelled into the assembly below: no integer suffix. */
#define BARE_USER_CODE 0x11000
#define BARE_USER_STACK 0x100000
#define BARE_GDT 0x6000
#define BARE_GDTR (BARE_GDT + 0x100)

/* The loop: one `out` exit after another. */
GUEST_CODE(bare_out_loop,
    "mov $0x10, %edx\n"
    "1:\n\t"
    "out %eax, (%dx)\n\t"
    "jmp 1b");

/* The CPL3 entry: load a GDT with user segments, then `iretq` to the loop at
 * BARE_USER_CODE, at CPL3 with IOPL=3. */
GUEST_CODE(bare_to_cpl3,
    "mov $" GUEST_STR(BARE_GDTR) ", %eax\n\t"
    "lgdt (%rax)\n\t"
    "push $0x1b\n\t"                            /* ss: user data */
    "push $" GUEST_STR(BARE_USER_STACK) "\n\t"  /* rsp */
    "push $0x3002\n\t"                          /* rflags: IOPL=3 */
    "push $0x23\n\t"                            /* cs: user code */
    "push $" GUEST_STR(BARE_USER_CODE) "\n\t"   /* rip */
    "iretq");

/* The CPL3 variant: CPL0 code loads a GDT with user segments and `iretq`s
 * to the `out` loop at CPL3 with IOPL=3 (which hardware KVM needs for `out`
 * at CPL3; PVM exits either way). Guest calls run at CPL3, so this is their
 * floor; PVM adds ~17 us to every exit taken at CPL3 (../shared/notes/pvm.md). */
static void bare_cpl3(uint8_t *m)
{
    static const uint64_t gdt[] = {
        0, 0x00AF9A000000FFFFull, 0x00CF92000000FFFFull, /* null, kernel code, kernel data */
        0x00CFF2000000FFFFull, 0x00AFFA000000FFFFull,    /* user data 0x1b, user code 0x23 */
    };
    memcpy(m + BARE_GDT, gdt, sizeof gdt);
    uint16_t limit = sizeof gdt - 1;
    uint64_t base = BARE_GDT;
    memcpy(m + BARE_GDTR, &limit, 2);
    memcpy(m + BARE_GDTR + 2, &base, 8);
    vm_load(m, BARE_CODE, bare_to_cpl3);
}

static void bare_run(sl_vcpu *v)
{
    sl_exit ex;
    sl_errbuf e = {{0}};
    int rc = sl_vcpu_run(v, &ex, 0, &e);
    if (rc)
        die("bare run", rc, e.msg);
    if (ex.reason != SL_EXIT_IO_OUT || ex.port != 0x10)
        die("bare run: unexpected exit", SL_EHYPERVISOR, ex.detail);
}

/* Seconds per `out` exit: median over reps of batches of `batch` exits; *ev:
 * the events of one more round trip (from the vCPU's own counters). */
static double bench_bare(int reps, int batch, bool cpl3, events *ev)
{
    uint8_t *mem = vm_map_anon(BARE_MEM);
    if (!mem)
        die("mmap", SL_ENOMEM, "");
    /* Identity map of the first 2 MiB, user-accessible (U) for the CPL3 variant. */
    uint64_t bits = cpl3 ? VM_PTE_P | VM_PTE_W | VM_PTE_U : VM_PTE_P | VM_PTE_W;
    vm_identity_tables(mem, SL_ARCH_AMD64, BARE_TABLES, BARE_MEM, bits, bits);
    vm_load(mem, cpl3 ? BARE_USER_CODE : BARE_CODE, bare_out_loop);
    if (cpl3)
        bare_cpl3(mem);
    sl_vcpu *v = NULL;
    sl_errbuf e = {{0}};
    int rc;
    if ((rc = sl_vcpu_open(&v, SL_ARCH_AMD64, &e)) || (rc = sl_vcpu_map(v, 0, 0, mem, BARE_MEM, 0, &e)) ||
        (rc = sl_vcpu_reset(v, BARE_TABLES, NULL, &e)))
        die("bare vCPU", rc, e.msg);
    if ((rc = vm_set_entry(v, BARE_CODE, BARE_MEM - 16, 0, &e)))
        die("bare set_regs", rc, e.msg);
    double *t = calloc((size_t)reps, sizeof *t);
    for (int i = -1; i < reps; i++) { /* i = -1: warm-up */
        double t0 = bench_now();
        for (int j = 0; j < batch; j++)
            bare_run(v);
        if (i >= 0)
            t[i] = (bench_now() - t0) / batch;
    }
    double med = bench_median(t, reps);
    free(t);

    sl_vcpu_stats a, b;
    sl_vcpu_get_stats(v, &a);
    trace_start();
    bare_run(v);
    trace_print(cpl3 ? "kvm_run_out_roundtrip" : "kvm_run_out_roundtrip_cpl0");
    sl_vcpu_get_stats(v, &b);
    memset(ev, 0, sizeof *ev);
    ev->exits = b.exits - a.exits;
    ev->io = b.exits_io - a.exits_io;
    ev->mmio = b.exits_mmio - a.exits_mmio;
    ev->other = b.exits_other - a.exits_other;
    ev->ioctls = b.ioctls - a.ioctls;

    sl_vcpu_free(v);
    munmap(mem, BARE_MEM);
    return med;
}

/* ------------------------------------------------------------ guest calls */
static void echo_once(sl_sandbox *sb, const char *s)
{
    size_t n = strlen(s);
    sl_value a = {.type = SL_TYPE_STRING}, r;
    a.v.buf.ptr = s;
    a.v.buf.len = n;
    int rc = sl_sandbox_call(sb, "Echo", &a, 1, &r);
    if (rc)
        die("Echo", rc, sl_sandbox_errmsg(sb));
    if (r.type != SL_TYPE_STRING || r.v.buf.len != n || memcmp(r.v.buf.ptr, s, n) != 0)
        die("Echo", SL_EABI, "wrong answer");
}

static double bench_echo(sl_sandbox *sb, int reps, int batch, events *ev)
{
    double *t = calloc((size_t)reps, sizeof *t);
    for (int i = -1; i < reps; i++) {
        double t0 = bench_now();
        for (int j = 0; j < batch; j++)
            echo_once(sb, "hi");
        if (i >= 0)
            t[i] = (bench_now() - t0) / batch;
    }
    double med = bench_median(t, reps);
    free(t);
    /* one more call, as the loop makes it (no restore in between): the
     * difference of the counters over it */
    events a = info_events(sb);
    unsigned long long n0 = n_ioctls;
    trace_start();
    echo_once(sb, "hi");
    trace_print("call_echo_short");
    unsigned long long n = n_ioctls - n0;
    events b = info_events(sb);
    *ev = events_sub(b, a);
    ev->ioctls -= info_ioctls;
    /* The restore counts rely on the ioctl() wrapper: check it against the
     * library's own count here. */
    if (n != ev->ioctls)
        printf("# warning: the ioctl() wrapper counted %llu ioctls for the call, the sandbox %llu: the "
               "restores' ioctls below are wrong\n",
               n, (unsigned long long)ev->ioctls);
    return med;
}

static void fill_once(sl_sandbox *sb, uint64_t bytes)
{
    sl_value a = {.type = SL_TYPE_U64}, r;
    a.v.u64 = bytes;
    int rc = sl_sandbox_call(sb, "Fill", &a, 1, &r);
    if (rc)
        die("Fill", rc, sl_sandbox_errmsg(sb));
}

/* Restore with nothing dirtied since the previous restore. */
static double bench_restore_clean(sl_sandbox *sb, sl_snapshot *s, int reps, events *ev)
{
    double *t = calloc((size_t)reps, sizeof *t);
    restore_once(sb, s);
    for (int i = -1; i < reps; i++) {
        double t0 = bench_now();
        restore_once(sb, s);
        if (i >= 0)
            t[i] = bench_now() - t0;
    }
    double med = bench_median(t, reps);
    free(t);
    *ev = counted_restore(sb, s, "restore_clean");
    return med;
}

static void counter_once(sl_sandbox *sb)
{
    sl_value r;
    int rc = sl_sandbox_call(sb, "Counter", NULL, 0, &r);
    if (rc)
        die("Counter", rc, sl_sandbox_errmsg(sb));
}

/* One copy-on-write fault: Counter() right after a restore writes the
 * demo's data page, which the restore made copy-on-write again; Echo("")
 * right after a restore writes nothing of the snapshot. The difference of
 * the medians of call-after-restore is the fault; *ev: Counter's events. */
static double bench_cow_page(sl_sandbox *sb, sl_snapshot *s, int reps, events *ev)
{
    double *tc = calloc((size_t)reps, sizeof *tc), *te = calloc((size_t)reps, sizeof *te);
    /* Both timed calls follow a restore that rewrote no page table (after an
     * Echo), so neither pays for rebuilt translations (under shadow paging a
     * restore that copies table pages back makes the hypervisor drop its
     * copy of them: the cost then falls on the next call, see
     * call_fill_restore_*). */
    for (int i = -1; i < reps; i++) {
        restore_once(sb, s);
        echo_once(sb, "");
        restore_once(sb, s);
        double t0 = bench_now();
        counter_once(sb);
        double t1 = bench_now();
        restore_once(sb, s);
        echo_once(sb, "");
        restore_once(sb, s);
        double t2 = bench_now();
        echo_once(sb, "");
        double t3 = bench_now();
        if (i >= 0) {
            tc[i] = t1 - t0;
            te[i] = t3 - t2;
        }
    }
    double d = bench_median(tc, reps) - bench_median(te, reps);
    free(tc);
    free(te);
    restore_once(sb, s);
    counter_once(sb);
    *ev = call_events(sb);
    return d > 0 ? d : 0;
}

/* Fill(pages) + restore, timed together and the restore alone; then one
 * counted iteration: *call_ev (the call, read before the restore) and
 * *restore_ev. */
static void bench_fill_restore(sl_sandbox *sb, sl_snapshot *s, unsigned pages, int reps, double *both,
                               double *restore_only, events *call_ev, events *restore_ev)
{
    double *tb = calloc((size_t)reps, sizeof *tb), *tr = calloc((size_t)reps, sizeof *tr);
    restore_once(sb, s);
    for (int i = -1; i < reps; i++) {
        double t0 = bench_now();
        fill_once(sb, (uint64_t)pages * 4096u);
        double t1 = bench_now();
        restore_once(sb, s);
        double t2 = bench_now();
        if (i >= 0) {
            tb[i] = t2 - t0;
            tr[i] = t2 - t1;
        }
    }
    *both = bench_median(tb, reps);
    *restore_only = bench_median(tr, reps);
    free(tb);
    free(tr);
    char name[64];
    snprintf(name, sizeof name, "call_fill_restore_%upages", pages);
    trace_start();
    fill_once(sb, (uint64_t)pages * 4096u);
    trace_print(name);
    *call_ev = call_events(sb);
    snprintf(name, sizeof name, "restore_after_%upages", pages);
    *restore_ev = counted_restore(sb, s, name);
}

/* restore -> Echo("") -> counters, on a sandbox with the default
 * configuration; false (with a note) when the guest cannot run here. */
static bool empty_call(const char *guest, const char *arch)
{
    sl_sandbox *sb = NULL;
    char err[256] = "";
    int rc = sl_sandbox_new_from_file(&sb, guest_path(guest), NULL, err, sizeof err);
    if (rc == 0 && (rc = sl_sandbox_init(sb)))
        snprintf(err, sizeof err, "%s", sl_sandbox_errmsg(sb));
    if (rc) {
        printf("# dirty pages per empty call (%s, %s): not measured: %s: %s\n", guest, arch, sl_strerror(rc), err);
        sl_sandbox_free(sb);
        return false;
    }
    sl_snapshot *s = NULL;
    if ((rc = sl_sandbox_snapshot(sb, &s)))
        die("snapshot", rc, sl_sandbox_errmsg(sb));
    for (int i = 0; i < 2; i++) { /* the second round is the one counted */
        restore_once(sb, s);
        if (i == 1)
            trace_start();
        echo_once(sb, "");
    }
    char name[64];
    snprintf(name, sizeof name, "empty_call_%s", guest);
    trace_print(name);
    events e = call_events(sb);
    print_events(name, &e);
    printf("# goal %s: exits=1 ioctls=2 (KVM_SET_REGS, KVM_RUN) guest_faults=0 cow=0 (the call runs on its stack in scratch) "
           "syscalls=0 dirty_pages<=8\n",
           name);
    printf("# dirty pages per empty call (%s, %s): %llu (goal <= 8)\n", guest, arch, (unsigned long long)e.dirty);
    fflush(stdout);
    sl_snapshot_free(s);
    sl_sandbox_free(sb);
    return true;
}

/* A Lua request as a plugin host makes it: Eval(code) on lua_eval, then a
 * restore to the snapshot taken right after init; *ev: the call's events
 * plus the restore's ioctls. */
#define LUA_REQUEST "local t = {} for i = 1, 200 do t[i] = i * i end return #t, t[200]"

static void lua_request_once(sl_sandbox *sb, sl_snapshot *s)
{
    sl_value a = {.type = SL_TYPE_STRING}, r;
    a.v.buf.ptr = LUA_REQUEST;
    a.v.buf.len = strlen(LUA_REQUEST);
    int rc = sl_sandbox_call(sb, "Eval", &a, 1, &r);
    if (rc)
        die("Eval", rc, sl_sandbox_errmsg(sb));
    if (r.type != SL_TYPE_STRING || r.v.buf.len != 9 || memcmp(r.v.buf.ptr, "200\t40000", 9) != 0)
        die("Eval", SL_EABI, "wrong answer");
    restore_once(sb, s);
}

static double bench_lua_request(int reps, events *ev)
{
    sl_sandbox *sb = open_guest("lua_eval", NULL);
    sl_snapshot *s = NULL;
    int rc = sl_sandbox_snapshot(sb, &s);
    if (rc)
        die("snapshot", rc, sl_sandbox_errmsg(sb));
    double *t = calloc((size_t)reps, sizeof *t);
    for (int i = -1; i < reps; i++) {
        double t0 = bench_now();
        lua_request_once(sb, s);
        if (i >= 0)
            t[i] = bench_now() - t0;
    }
    double med = bench_median(t, reps);
    free(t);
    sl_value a = {.type = SL_TYPE_STRING}, r;
    a.v.buf.ptr = LUA_REQUEST;
    a.v.buf.len = strlen(LUA_REQUEST);
    if ((rc = sl_sandbox_call(sb, "Eval", &a, 1, &r)))
        die("Eval", rc, sl_sandbox_errmsg(sb));
    *ev = call_events(sb);
    events r2 = counted_restore(sb, s, "lua_request");
    ev->ioctls += r2.ioctls;
    sl_snapshot_free(s);
    sl_sandbox_free(sb);
    return med;
}

int main(void)
{
    bench_where(NULL);
    int lab = bench_in_lab();
    /* TCG-emulated KVM costs ~40 us per exit: keep the lab run short */
    int reps = bench_reps(lab ? 9 : 31);
    int bare_batch = lab ? 200 : 20000;
    int call_batch = lab ? 10 : 500;
    int restore_reps = bench_reps(lab ? 15 : 301);
    events ev, ev2;

    /* Guest calls run at CPL3: their floor is the CPL3 round trip. */
    double bare = bench_bare(reps, bare_batch, true, &ev);
    bench_report("kvm_run_out_roundtrip", bare, bare, "us");
    print_events("kvm_run_out_roundtrip", &ev);
    printf("# goal kvm_run_out_roundtrip: exits=1 ioctls=1 (one KVM_RUN, ended by the `out`, from CPL3)\n");
    double bare0 = bench_bare(reps, bare_batch, false, &ev);
    bench_report("kvm_run_out_roundtrip_cpl0", bare0, bare, "us");
    print_events("kvm_run_out_roundtrip_cpl0", &ev);

    /* a 4 MiB brk heap; musl's malloc takes Fill's blocks from mmap (scratch) */
    sl_config cfg = {.heap_size = 4u << 20};
    sl_sandbox *sb = open_guest("demo", &cfg);
    calibrate_info(sb);
    double echo = bench_echo(sb, reps, call_batch, &ev);
    bench_report("call_echo_short", echo, bare, "us");
    print_events("call_echo_short", &ev);
    printf("# goal call_echo_short (a call repeated without restores): exits=1 (the `out` to the DONE port), "
           "ioctls=3 (KVM_RUN with immediate_exit, which completes the previous call's `out` without entering "
           "the guest; KVM_SET_REGS; KVM_RUN), guest_faults=0 syscalls=0 dirty_pages=0; on PVM <= 3x "
           "kvm_run_out_roundtrip\n");

    sl_snapshot *s = NULL;
    int rc = sl_sandbox_snapshot(sb, &s);
    if (rc)
        die("snapshot", rc, sl_sandbox_errmsg(sb));
    double clean = bench_restore_clean(sb, s, restore_reps, &ev);
    bench_report("restore_clean", clean, bare, "us");
    print_events("restore_clean", &ev);
    printf("# goal restore_clean: exits=0; ioctls<=8: KVM_GET_DIRTY_LOG + the vCPU reset (KVM_SET_SREGS once: "
           "twice, to flush the TLB, only when the restore copied page-table pages back; KVM_SET_XSAVE, "
           "KVM_SET_XCRS, KVM_SET_DEBUGREGS, KVM_SET_MSRS, KVM_SET_VCPU_EVENTS), plus 1 KVM_RUN with immediate_exit "
           "after a call; on PVM <= 2x kvm_run_out_roundtrip; dirty_pages=1 (the bookkeeping page, rewritten by "
           "every restore: %llu right after one)\n",
           (unsigned long long)after_restore_dirty);

    double cowp = bench_cow_page(sb, s, restore_reps, &ev);
    bench_report("cow_page", cowp, bare0, "us");
    print_events("cow_page", &ev);
    printf("# goal cow_page: guest_faults=1 cow=1 (Counter writes one page of the snapshot); the baseline is the "
           "CPL0 `out` round trip a host-side copy needs (the copy itself: ~1 us); on PVM <= 3x the host-copy "
           "cost measured in ../shared/notes/pvm.md (61 us: fault, `out`, host copy, remap), i.e. <= 183 us\n");

    static const unsigned pages[] = {0, 1, 16, 256};
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        double both, ronly;
        bench_fill_restore(sb, s, pages[i], restore_reps, &both, &ronly, &ev, &ev2);
        char name[64];
        printf("# Fill(%u pages): %llu scratch pages dirty before the restore\n", pages[i],
               (unsigned long long)ev.dirty);
        snprintf(name, sizeof name, "call_fill_restore_%upages", pages[i]);
        bench_report(name, both, bare, "us");
        events both_ev = ev;
        both_ev.ioctls += ev2.ioctls;
        print_events(name, &both_ev);
        snprintf(name, sizeof name, "restore_after_%upages", pages[i]);
        bench_report(name, ronly, clean, "us");
        print_events(name, &ev2);
    }
    printf("# goal call_fill_restore_<N>pages: exits=1 and the restore's ioctls constant in N; dirty_pages "
           "grows by 1 per Fill page (a page musl's malloc gets from mmap, which the guest kernel maps at once: "
           "demand, not cow)\n");
    sl_snapshot_free(s);
    sl_sandbox_free(sb);

    double lua = bench_lua_request(restore_reps, &ev);
    bench_report("lua_request", lua, bare, "us");
    print_events("lua_request", &ev);
    printf("# lua_request: Eval(\"%s\") on lua_eval + restore to the snapshot after init\n", LUA_REQUEST);

    empty_call("demo", "x86-64");
    empty_call("demo32", "i686");
    return 0;
}
