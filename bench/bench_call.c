/* Guest call benchmarks (need KVM: native hardware KVM, or the KVM lab):
 *  - bare KVM_RUN round trip: a hand-made long-mode guest that only does
 *    `out` in a loop, driven through the internal vCPU API (src/host/vcpu.h);
 *    the floor under every guest call, measured in the same run;
 *  - guest call latency: Echo("hi") on the demo guest, against that floor;
 *  - restore of a clean sandbox (nothing dirtied), against that floor;
 *  - Fill(N pages) + restore, for N = 0, 1, 16, 256, against the floor, and
 *    the restore alone after N dirtied pages, against the clean restore (its
 *    cost must follow the pages dirtied, not the size of scratch).
 * Output: "# ..." comment lines, then `BENCH name median=.. baseline=.. ratio=..`.
 * Guests come from $SANDLET_GUESTS (default build/guests). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "sandlet.h"
#include "vcpu.h"

static int in_lab(void)
{
    const char *e = getenv("SANDLET_IN_LAB");
    return e && *e && strcmp(e, "0") != 0;
}

static void where(void)
{
    if (in_lab())
        printf("# measured on: KVM lab (QEMU TCG, nested): figures prove correctness, not speed\n");
    else if (access("/sys/module/kvm_pvm", F_OK) == 0)
        printf("# measured on: PVM (kvm_pvm, KVM without VT-x/AMD-V; guest instructions are partly "
               "emulated): figures are not representative of hardware KVM\n");
    else
        printf("# measured on: native KVM\n");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            printf("# cpu:%s", p ? p + 1 : line);
            break;
        }
    if (f)
        fclose(f);
    printf("# online cpus: %ld\n", sysconf(_SC_NPROCESSORS_ONLN));
    fflush(stdout);
}

static void die(const char *what, int rc, const char *msg)
{
    fprintf(stderr, "bench_call: %s: %s: %s\n", what, sl_strerror(rc), msg ? msg : "");
    exit(1);
}

/* ------------------------------------------------ bare KVM_RUN round trip */

#define BARE_MEM 0x200000u
#define BARE_CODE 0x10000u

/* Identity map of the first 2 MiB with 4 KiB pages: PML4 0x1000, PDPT 0x2000,
 * PD 0x3000, PT 0x4000. */
static void bare_tables(uint8_t *m)
{
    uint64_t e;
    e = 0x2000 | 0x3;
    memcpy(m + 0x1000, &e, 8);
    e = 0x3000 | 0x3;
    memcpy(m + 0x2000, &e, 8);
    e = 0x4000 | 0x3;
    memcpy(m + 0x3000, &e, 8);
    for (uint64_t i = 0; i < 512; i++) {
        e = (i << 12) | 0x3;
        memcpy(m + 0x4000 + i * 8, &e, 8);
    }
}

/* Seconds per `out` exit: median over reps of batches of `batch` exits. */
static double bench_bare(int reps, int batch)
{
    static const uint8_t code[] = {
        0xBA, 0x10, 0x00, 0x00, 0x00, /* mov edx, 0x10 */
        0xEF,                         /* L: out dx, eax */
        0xEB, 0xFD,                   /* jmp L */
    };
    uint8_t *mem = mmap(NULL, BARE_MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        die("mmap", SL_ENOMEM, "");
    bare_tables(mem);
    memcpy(mem + BARE_CODE, code, sizeof code);
    sl_vcpu *v = NULL;
    sl_errbuf e = {{0}};
    int rc;
    if ((rc = sl_vcpu_open(&v, SL_ARCH_AMD64, &e)) || (rc = sl_vcpu_map(v, 0, 0, mem, BARE_MEM, 0, &e)) ||
        (rc = sl_vcpu_reset(v, 0x1000, NULL, &e)))
        die("bare vCPU", rc, e.msg);
    sl_regs r;
    memset(&r, 0, sizeof r);
    r.rip = BARE_CODE;
    r.rsp = BARE_MEM - 16;
    r.rflags = 2;
    if ((rc = sl_vcpu_set_regs(v, &r, &e)))
        die("bare set_regs", rc, e.msg);
    double *t = calloc((size_t)reps, sizeof *t);
    sl_exit ex;
    for (int i = -1; i < reps; i++) { /* i = -1: warm-up */
        double t0 = bench_now();
        for (int j = 0; j < batch; j++) {
            if ((rc = sl_vcpu_run(v, &ex, 0, &e)))
                die("bare run", rc, e.msg);
            if (ex.reason != SL_EXIT_IO_OUT || ex.port != 0x10)
                die("bare run: unexpected exit", SL_EHYPERVISOR, ex.detail);
        }
        if (i >= 0)
            t[i] = (bench_now() - t0) / batch;
    }
    double med = bench_median(t, reps);
    free(t);
    sl_vcpu_free(v);
    munmap(mem, BARE_MEM);
    return med;
}

/* ------------------------------------------------------------ guest calls */

static const char *guest_path(const char *name)
{
    static char buf[4096];
    const char *dir = getenv("SANDLET_GUESTS");
    snprintf(buf, sizeof buf, "%s/%s", dir && *dir ? dir : "build/guests", name);
    return buf;
}

static sl_sandbox *open_demo(void)
{
    /* heap large enough for Fill(256 pages) */
    sl_config cfg = {.heap_size = 4u << 20};
    sl_sandbox *sb = NULL;
    char err[256] = "";
    int rc = sl_sandbox_new_from_file(&sb, guest_path("demo"), &cfg, err, sizeof err);
    if (rc)
        die(guest_path("demo"), rc, err);
    if ((rc = sl_sandbox_init(sb)))
        die("init", rc, sl_sandbox_errmsg(sb));
    return sb;
}

static void echo_once(sl_sandbox *sb)
{
    sl_value a = {.type = SL_TYPE_STRING}, r;
    a.v.buf.ptr = "hi";
    a.v.buf.len = 2;
    int rc = sl_sandbox_call(sb, "Echo", &a, 1, &r);
    if (rc)
        die("Echo", rc, sl_sandbox_errmsg(sb));
    if (r.type != SL_TYPE_STRING || r.v.buf.len != 2 || memcmp(r.v.buf.ptr, "hi", 2) != 0)
        die("Echo", SL_EABI, "wrong answer");
}

static double bench_echo(sl_sandbox *sb, int reps, int batch)
{
    double *t = calloc((size_t)reps, sizeof *t);
    for (int i = -1; i < reps; i++) {
        double t0 = bench_now();
        for (int j = 0; j < batch; j++)
            echo_once(sb);
        if (i >= 0)
            t[i] = (bench_now() - t0) / batch;
    }
    double med = bench_median(t, reps);
    free(t);
    return med;
}

static void restore_once(sl_sandbox *sb, sl_snapshot *s)
{
    int rc = sl_sandbox_restore(sb, s);
    if (rc)
        die("restore", rc, sl_sandbox_errmsg(sb));
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
static double bench_restore_clean(sl_sandbox *sb, sl_snapshot *s, int reps)
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
    return med;
}

/* Fill(pages) + restore, timed together and the restore alone. */
static void bench_fill_restore(sl_sandbox *sb, sl_snapshot *s, unsigned pages, int reps, double *both,
                               double *restore_only, uint64_t *dirty)
{
    double *tb = calloc((size_t)reps, sizeof *tb), *tr = calloc((size_t)reps, sizeof *tr);
    restore_once(sb, s);
    for (int i = -1; i < reps; i++) {
        double t0 = bench_now();
        fill_once(sb, (uint64_t)pages * 4096u);
        if (i == -1) {
            sl_sandbox_info info;
            if (sl_sandbox_info_get(sb, &info) == 0)
                *dirty = info.dirty_pages;
        }
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
}

int main(void)
{
    where();
    int lab = in_lab();
    /* TCG-emulated KVM costs ~40 us per exit: keep the lab run short */
    int reps = bench_reps(lab ? 9 : 31);
    int bare_batch = lab ? 200 : 20000;
    int call_batch = lab ? 10 : 500;
    int restore_reps = bench_reps(lab ? 15 : 301);

    double bare = bench_bare(reps, bare_batch);
    bench_report("kvm_run_out_roundtrip", bare, bare, "us");

    sl_sandbox *sb = open_demo();
    double echo = bench_echo(sb, reps, call_batch);
    bench_report("call_echo_short", echo, bare, "us");

    sl_snapshot *s = NULL;
    int rc = sl_sandbox_snapshot(sb, &s);
    if (rc)
        die("snapshot", rc, sl_sandbox_errmsg(sb));
    double clean = bench_restore_clean(sb, s, restore_reps);
    bench_report("restore_clean", clean, bare, "us");

    static const unsigned pages[] = {0, 1, 16, 256};
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        double both, ronly;
        uint64_t dirty = 0;
        bench_fill_restore(sb, s, pages[i], restore_reps, &both, &ronly, &dirty);
        char name[64];
        printf("# Fill(%u pages): %llu scratch pages dirty before the restore\n", pages[i],
               (unsigned long long)dirty);
        snprintf(name, sizeof name, "call_fill_restore_%upages", pages[i]);
        bench_report(name, both, bare, "us");
        snprintf(name, sizeof name, "restore_after_%upages", pages[i]);
        bench_report(name, ronly, clean, "us");
    }
    sl_snapshot_free(s);
    sl_sandbox_free(sb);
    return 0;
}
