/* Incremental takes (snapinc.h, issue 11 item 7), host only (no vCPU): a
 * simulated guest (tests/common/sim.h) restored to a compacted parent P,
 * as a sandbox restored to P is (P's blob as its snapshot memory, P's
 * tables copied into an otherwise empty scratch), that copied k pages of P
 * on write, spread over P; the dirty set holds exactly the scratch pages
 * it wrote (the copies and the leaf tables). Each figure against a
 * baseline measured in the same run, alternately:
 *  - sl_snapinc_take against sl_snapshot_from_memory of the same guest
 *    (the full take) for k = 1, 64 and 4096 on a 64 MiB parent, and 1 and
 *    64 on a 16 MiB one; the same times against the goal, 50 us +
 *    1 us per changed page, and against the floor of the way the take
 *    makes its blob, on this machine (a private mapping of a memfd of the
 *    blob with k pages written through sl_pagecopy, made read-only: k
 *    copy-on-write breaks);
 *    64 MiB against 16 MiB (near 1: the take does not follow the parent's
 *    size);
 *  - "warm": incremental takes one after another, not alternated with
 *    full takes, each reusing the memory the one before freed (after a
 *    full take, the allocator hands out fresh pages, whose first-touch
 *    faults the alternated figure includes);
 *  - the first take on a fresh parent, which learns it (about one full
 *    take, once per parent), against the full take;
 *  - a chain: the take of a guest restored to a snapshot that was itself
 *    taken incrementally (2 and 8 levels, k changed pages at each).
 * Before a case is timed, its incremental take is checked to return 0 and
 * to be the full take's snapshot (same identity and bytes, fewer pages
 * hashed): a declined take (SL_INC_DECLINED, the caller would compact)
 * would time something else. A case the design declines on purpose is
 * reported as such, with what trying costs before the compaction. */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "pagecopy.h"
#include "pageset.h"
#include "snapinc.h"
#include "snapshot.h"
#include "../tests/common/sim.h"

#define SCRATCH (64u << 20) /* room for 4096 copies past the tables */

static const uint8_t sregs[256] = {1, 2, 3}; /* a parent of incremental takes has CPU state */
static const uint8_t grandparent[SL_HASH_LEN] = {7};

static void die(const char *what)
{
    fprintf(stderr, "bench_snapinc: %s\n", what);
    exit(1);
}

/* A guest running on snapshot P: restored to it, then changed. */
typedef struct onp {
    guest r; /* snap: P's visible memory (only read) */
    sl_snapshot *P;
    sl_pageset dirty;
    sl_guest_state st;
} onp;

static sl_guest_state state_of(guest *g, const uint8_t *parent)
{
    sl_guest_state st = {.layout = &g->l, .snap_mem = g->snap, .snap_size = g->snap_size, .scratch = g->scratch,
                         .roots = g->roots, .n_roots = g->n_roots, .next_kind = SL_NEXT_CALL, .family = 1,
                         .parent = parent, .sregs = sregs, .sregs_len = sizeof sregs, .generation = 2};
    return st;
}

/* P compacted from g (again: another snapshot, the same bytes). */
static sl_snapshot *parent_of(guest *g)
{
    sl_guest_state st = state_of(g, grandparent);
    sl_snapshot *P;
    sl_errbuf e;
    if (sl_snapshot_from_memory(&P, &st, &e))
        die(e.msg);
    return P;
}

/* A `mib` MiB guest, and P compacted from it. */
static sl_snapshot *parent_make(guest *g, uint64_t mib)
{
    if (!guest_make(g, mib << 20, SCRATCH))
        die("cannot set up the guest");
    return parent_of(g);
}

/* o: a guest restored to P (layout l), not yet changed. */
static void restore(onp *o, const sl_layout *l, sl_snapshot *P)
{
    memset(o, 0, sizeof *o);
    o->r.l = *l;
    o->r.snap = (uint8_t *)sl_snapshot_visible(P); /* guest_change reads it, never writes */
    o->r.snap_size = sl_snapshot_memory_size(P);
    o->r.scratch = calloc(1, l->scratch_size);
    o->r.n_roots = sl_snapshot_n_roots(P);
    if (!o->r.scratch || o->r.n_roots > SIM_MAX_ROOTS || !sl_pageset_init(&o->dirty, l->scratch_size / SL_PAGE_SIZE))
        die("out of memory");
    uint64_t pt = sl_snapshot_page_table_size(P);
    memcpy(o->r.scratch + (l->pt_gpa - l->scratch_gpa), sl_snapshot_tables(P), pt);
    o->r.next_table = l->pt_gpa + pt;
    for (unsigned i = 0; i < o->r.n_roots; i++)
        o->r.roots[i] = sl_snapshot_root(P, i);
    o->P = P;
    o->st = state_of(&o->r, sl_snapshot_hash(P));
    o->st.cur_root = sl_snapshot_cur_root(P);
}

/* k of P's pages copied on write from page `off` on; the dirty set: the
 * table pages that differ from P's and every page allocated past them. */
static void change(onp *o, uint64_t k, uint64_t off)
{
    if (guest_change(&o->r, k, off) != k)
        die("cannot change the guest");
    const sl_layout *l = &o->r.l;
    uint64_t first = (l->pt_gpa - l->scratch_gpa) / SL_PAGE_SIZE, n_pt = sl_snapshot_page_table_size(o->P) / SL_PAGE_SIZE;
    const uint8_t *was = sl_snapshot_tables(o->P);
    for (uint64_t t = 0; t < n_pt; t++)
        if (memcmp(o->r.scratch + (first + t) * SL_PAGE_SIZE, was + t * SL_PAGE_SIZE, SL_PAGE_SIZE))
            sl_pageset_add_range(&o->dirty, first + t, 1);
    uint64_t end = (o->r.next_table - l->scratch_gpa) / SL_PAGE_SIZE;
    sl_pageset_add_range(&o->dirty, first + n_pt, end - first - n_pt);
}

static void onp_free(onp *o)
{
    free(o->r.scratch);
    sl_pageset_free(&o->dirty);
}

static sl_snapshot *full_take(const onp *o)
{
    sl_snapshot *s;
    sl_errbuf e;
    if (sl_snapshot_from_memory(&s, &o->st, &e))
        die(e.msg);
    return s;
}

/* The incremental take of o, checked against its full take: 0, or
 * SL_INC_DECLINED when `may_decline` (else it exits). */
static int check(const onp *o, const char *name, int may_decline)
{
    sl_snapshot *s, *f = full_take(o);
    sl_errbuf e;
    int rc = sl_snapinc_take(&s, &o->st, o->P, &o->dirty, &e);
    if (rc == SL_INC_DECLINED && may_decline) {
        sl_snapshot_free(f);
        return rc;
    }
    if (rc) {
        fprintf(stderr, "bench_snapinc: %s: the incremental take returned %d\n", name, rc);
        exit(1);
    }
    uint64_t a, b;
    const uint8_t *x = sl_snapshot_blob(s, &a), *y = sl_snapshot_blob(f, &b);
    if (memcmp(sl_snapshot_hash(s), sl_snapshot_hash(f), SL_HASH_LEN) || a != b || memcmp(x, y, a) ||
        sl_snapshot_page_stats(s)->pages_hashed >= a / SL_PAGE_SIZE) {
        fprintf(stderr, "bench_snapinc: %s: the incremental take is not the full take's snapshot\n", name);
        exit(1);
    }
    printf("# %s: %llu of %llu blob pages hashed (full take: %llu)\n", name,
           (unsigned long long)sl_snapshot_page_stats(s)->pages_hashed, (unsigned long long)(a / SL_PAGE_SIZE),
           (unsigned long long)sl_snapshot_page_stats(f)->pages_hashed);
    sl_snapshot_free(s);
    sl_snapshot_free(f);
    return 0;
}

/* A memfd holding P's blob, as the base of its incremental takes is. */
static int blob_fd(const sl_snapshot *P, uint64_t *size)
{
    const uint8_t *blob = sl_snapshot_blob(P, size);
    int fd = memfd_create("bench-snapinc", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)*size) || pwrite(fd, blob, *size, 0) != (ssize_t)*size)
        die("cannot make a memfd of the blob");
    return fd;
}

/* The floor of a blob made as snapinc.c makes it, on this machine: the
 * base mapped privately, k pages spread over it written as the take
 * writes them (sl_pagecopy: as many copy-on-write breaks and page-table
 * pages), then made read-only. */
static double cow_floor(int fd, uint64_t size, uint64_t k)
{
    static uint8_t page[SL_PAGE_SIZE];
    uint64_t step = size / SL_PAGE_SIZE / k;
    double t0 = bench_now();
    uint8_t *b = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (b == MAP_FAILED)
        die("mmap");
    sl_pagecopy c;
    sl_pagecopy_init(&c);
    for (uint64_t i = 0; i < k; i++)
        sl_pagecopy_add(&c, b + i * step * SL_PAGE_SIZE, page, SL_PAGE_SIZE);
    sl_pagecopy_flush(&c);
    mprotect(b, size, PROT_READ);
    double t = bench_now() - t0;
    munmap(b, size);
    return t;
}

typedef struct figs {
    double inc, full, floor; /* timed alternately */
    double warm;             /* incremental takes one after another */
} figs;

/* Medians of the incremental take of o (or, declined, of trying it), of
 * its full take and of cow_floor for k pages, alternately; then of the
 * incremental take alone, where each take reuses the memory the previous
 * one freed. P has learned already (check). */
/* One incremental take of o (or, declined, the try), timed; the
 * snapshot is freed outside the time. */
static double time_inc_take(const onp *o)
{
    sl_snapshot *s = NULL;
    sl_errbuf e;
    double t0 = bench_now();
    int rc = sl_snapinc_take(&s, &o->st, o->P, &o->dirty, &e);
    double t = bench_now() - t0;
    if (!rc)
        sl_snapshot_free(s);
    return t;
}

static figs time_takes(const onp *o, uint64_t k, int reps)
{
    double t[64], b[64], c[64];
    uint64_t size;
    int fd = blob_fd(o->P, &size);
    figs f;
    for (int r = 0; r < reps; r++) {
        t[r] = time_inc_take(o);
        double t0 = bench_now();
        sl_snapshot *s = full_take(o);
        b[r] = bench_now() - t0;
        sl_snapshot_free(s);
        c[r] = cow_floor(fd, size, k);
    }
    close(fd);
    f.inc = bench_median(t, reps);
    f.full = bench_median(b, reps);
    f.floor = bench_median(c, reps);
    for (int r = 0; r < reps; r++)
        t[r] = time_inc_take(o);
    f.warm = bench_median(t, reps);
    return f;
}

static void report_goal(const char *name, uint64_t k, double t)
{
    double goal = 50e-6 + 1e-6 * (double)k;
    bench_report(name, t, goal, "us");
    printf("# goal %s: take <= 50 us + 1 us x %llu = %.0f us: %s\n", name, (unsigned long long)k, goal * 1e6,
           t <= goal ? "met" : "MISSED");
}

/* The lines of one incremental case, named prefix_<what>. */
static void report_inc(const char *prefix, uint64_t k, const figs *f)
{
    char name[128];
    snprintf(name, sizeof name, "%s_vs_full_take", prefix);
    bench_report(name, f->inc, f->full, "us");
    snprintf(name, sizeof name, "%s_vs_goal", prefix);
    report_goal(name, k, f->inc);
    snprintf(name, sizeof name, "%s_vs_cow_floor", prefix);
    bench_report(name, f->inc, f->floor, "us");
    snprintf(name, sizeof name, "%s_warm_vs_goal", prefix);
    report_goal(name, k, f->warm);
}

/* Incremental against full take on a `mib` MiB parent for each k of ks;
 * the incremental medians (alternated, then warm) into inc[2 * i + 0, 1]. */
static void bench_sizes(uint64_t mib, const uint64_t *ks, unsigned nk, int reps, double *inc)
{
    guest g;
    sl_snapshot *P = parent_make(&g, mib);
    char name[96];
    for (unsigned i = 0; i < nk; i++) {
        onp o;
        restore(&o, &g.l, P);
        change(&o, ks[i], 0);
        snprintf(name, sizeof name, "snapinc_take_%lluMiB_k%llu", (unsigned long long)mib, (unsigned long long)ks[i]);
        int declined = check(&o, name, 1) == SL_INC_DECLINED;
        figs f = time_takes(&o, ks[i], reps);
        if (declined) {
            /* merge_priv: a snapshot more than half of whose pages would
             * differ from its base is declined, so that later takes copy
             * less than half a blob. */
            printf("# %s: declined (SL_INC_DECLINED: more than half of the blob would differ from its base); the line "
                   "below is the time of trying, which the full take then adds to\n", name);
            snprintf(name, sizeof name, "snapinc_declined_%lluMiB_k%llu_vs_full_take", (unsigned long long)mib,
                     (unsigned long long)ks[i]);
            bench_report(name, f.inc, f.full, "us");
            snprintf(name, sizeof name, "snapinc_cow_floor_%lluMiB_k%llu_vs_goal", (unsigned long long)mib,
                     (unsigned long long)ks[i]);
            report_goal(name, ks[i], f.floor);
            inc[2 * i] = inc[2 * i + 1] = 0;
        } else {
            report_inc(name, ks[i], &f);
            inc[2 * i] = f.inc;
            inc[2 * i + 1] = f.warm;
        }
        onp_free(&o);
    }
    sl_snapshot_free(P);
    guest_free(&g);
}

/* The first take on a parent learns it: a fresh P (the same compaction of
 * the same guest) every repetition, the guest's changes kept. */
static void bench_first(uint64_t k, int reps)
{
    guest g;
    sl_snapshot *P = parent_make(&g, 64);
    onp o;
    restore(&o, &g.l, P);
    change(&o, k, 0);
    double t[64], b[64];
    for (int r = 0; r < reps; r++) {
        sl_snapshot *fresh = parent_of(&g), *s;
        sl_errbuf e;
        o.P = fresh;
        o.st.snap_mem = sl_snapshot_visible(fresh);
        o.st.parent = sl_snapshot_hash(fresh);
        double t0 = bench_now();
        int rc = sl_snapinc_take(&s, &o.st, fresh, &o.dirty, &e);
        t[r] = bench_now() - t0;
        t0 = bench_now();
        sl_snapshot *f = full_take(&o);
        b[r] = bench_now() - t0;
        if (rc || memcmp(sl_snapshot_hash(s), sl_snapshot_hash(f), SL_HASH_LEN))
            die("the first take on a fresh parent is not the full take's snapshot");
        sl_snapshot_free(s);
        sl_snapshot_free(f);
        sl_snapshot_free(fresh);
    }
    char name[96];
    snprintf(name, sizeof name, "snapinc_first_take_64MiB_k%llu_vs_full_take", (unsigned long long)k);
    bench_report(name, bench_median(t, reps), bench_median(b, reps), "us");
    onp_free(&o);
    sl_snapshot_free(P);
    guest_free(&g);
}

/* A chain: the guest restored to the snapshot taken (incrementally) of a
 * guest restored to the one above, `depth` - 1 times from P, each level
 * changing k other pages; the last level is timed. */
static void bench_chain(uint64_t k, unsigned depth, int reps)
{
    guest g;
    sl_snapshot *up = parent_make(&g, 64);
    char name[96];
    snprintf(name, sizeof name, "snapinc_take_64MiB_chain%u_k%llu", depth, (unsigned long long)k);
    onp o;
    for (unsigned level = 1;; level++) {
        restore(&o, &g.l, up);
        change(&o, k, level);
        if (level == depth)
            break;
        sl_snapshot *c;
        sl_errbuf e;
        if (sl_snapinc_take(&c, &o.st, up, &o.dirty, &e))
            die("a take up the chain declined");
        onp_free(&o);
        sl_snapshot_free(up);
        up = c;
    }
    check(&o, name, 0);
    figs f = time_takes(&o, k, reps);
    report_inc(name, k, &f);
    onp_free(&o);
    sl_snapshot_free(up);
    guest_free(&g);
}

int main(void)
{
    printf("# incremental takes (snapinc.c), host only (no vCPU), simulated guest; medians, each against a "
           "baseline timed alternately\n");
    static const uint64_t ks[] = {1, 64, 4096};
    double big[6], small[4];
    int reps = bench_reps(31);
    bench_sizes(64, ks, 3, reps, big);
    /* A 16 MiB parent has 4096 pages: k = 4096 would change every one. */
    bench_sizes(16, ks, 2, reps, small);
    for (unsigned i = 0; i < 2; i++) {
        char name[96];
        snprintf(name, sizeof name, "snapinc_take_k%llu_64MiB_vs_16MiB", (unsigned long long)ks[i]);
        bench_report(name, big[2 * i], small[2 * i], "us");
        snprintf(name, sizeof name, "snapinc_take_k%llu_warm_64MiB_vs_16MiB", (unsigned long long)ks[i]);
        bench_report(name, big[2 * i + 1], small[2 * i + 1], "us");
    }
    bench_first(64, bench_reps(7));
    bench_chain(1, 2, reps);
    bench_chain(64, 2, reps);
    bench_chain(64, 8, reps);
    return 0;
}
