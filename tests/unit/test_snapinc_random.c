/* Incremental takes (snapinc.c) against compaction, host only: random
 * simulated guests restored to a compacted parent and changed (the
 * kernel's copy-on-write, stack and heap growth, munmap, and changes the
 * take must decline), chains of takes, takes from many threads on one
 * parent, thousands of take/free cycles (descriptors, mappings), parents
 * freed before their children, and incremental snapshots saved and
 * loaded. Whenever an incremental take returns 0, its snapshot must be the
 * full take's in every byte and field (snapinc_fuzz.h: fz_diff). */
#include <dirent.h>
#include <pthread.h>
#include <unistd.h>

#include "cpustate.h"
#include "t.h"
#include "../common/snapinc_fuzz.h"

uint64_t rng_state = 0x5eed5eed1234ull;

/* ThreadSanitizer's build (in `make test` for threads_take_at_once) makes a
 * take some 30 times slower: the loops run a quarter as long there. */
#ifdef __SANITIZE_THREAD__
#define SCALE 4
#else
#define SCALE 1
#endif

static bool same_id(const sl_snapshot *a, const sl_snapshot *b)
{
    return !memcmp(sl_snapshot_hash(a), sl_snapshot_hash(b), SL_HASH_LEN);
}

typedef struct tally {
    unsigned long accepted, declined, bad;
} tally;

/* Changes a guest restored to P in nops random ways (only ones a kernel
 * makes when `kernel_like`), then takes it both ways; *next: the snapshot
 * the chain goes on from (the incremental one when it was taken). */
static void take_both(sl_snapshot *P, const sl_layout *l, bool kernel_like, unsigned nops, tally *t,
                      sl_snapshot **next)
{
    static const unsigned kernel_ops[] = {FZ_COW, FZ_RELEASE, FZ_RELEASE, FZ_UNMAP, FZ_NEW,
                                          FZ_ALIAS, FZ_AD, FZ_JUNK, FZ_TO_IO, FZ_CUR};
    fz_onp o;
    *next = NULL;
    if (!fz_restore(&o, l, P))
        abort();
    uint64_t n_pt = sl_snapshot_page_table_size(P) / SL_PAGE_SIZE;
    bool *leafy = calloc(n_pt, 1);
    if (!leafy || !fz_find_leaf_tables(&o, leafy, n_pt))
        abort();
    for (unsigned k = 0; k < nops; k++)
        fz_change(&o, leafy, n_pt, kernel_like ? kernel_ops[rnd(10)] : (unsigned)rnd(FZ_N));
    if (!rnd(3)) /* the dirty log may name pages written with what they held */
        sl_pageset_add_range(&o.dirty, rnd(o.dirty.n_pages), rnd(64));
    sl_snapshot *f = NULL, *s = NULL;
    sl_errbuf e;
    int rf = sl_snapshot_from_memory(&f, &o.st, &e), rs = sl_snapinc_take(&s, &o.st, P, &o.dirty, &e);
    if (rs == 0) {
        const char *d = rf ? "the full take failed" : fz_diff(s, f);
        t->accepted++;
        if (*d) {
            t->bad++;
            printf("  arch %u, %u roots, %u changes: %s\n", l->arch, o.r.n_roots, nops, d);
        }
        sl_snapshot_free(f);
        *next = s;
    } else {
        CHECK_EQ(rs, SL_INC_DECLINED);
        t->declined++;
        *next = rf ? NULL : f;
    }
    free(leafy);
    fz_onp_free(&o);
}

/* A random guest compacted into P, then a chain of `depth` takes, each
 * from a guest restored to the snapshot before (its parent freed first). */
static void chain(unsigned arch, bool kernel_like, unsigned depth, tally *t)
{
    guest g;
    uint64_t scratch = ((1 + rnd(3)) << 20) + (rnd(2) ? rnd(16) * SL_PAGE_SIZE : 0);
    if (!fz_build(&g, arch, 1 + (unsigned)rnd(3), scratch, 8 + rnd(120))) {
        guest_free(&g);
        return;
    }
    sl_guest_state st = fz_state(&g, fz_grandparent, (unsigned)rnd(g.n_roots));
    sl_snapshot *P;
    sl_errbuf e;
    if (sl_snapshot_from_memory(&P, &st, &e)) {
        guest_free(&g);
        return;
    }
    for (unsigned level = 0; level < depth && P; level++) {
        sl_snapshot *next;
        take_both(P, &g.l, kernel_like, level == 0 && !rnd(4) ? 0 : 1 + (unsigned)rnd(12), t, &next);
        sl_snapshot_free(P);
        P = next;
    }
    sl_snapshot_free(P);
    guest_free(&g);
}

static void random_guests_match_compaction(void)
{
    tally t = {0};
    for (unsigned i = 0; i < 160 / SCALE; i++)
        chain(i % 2 ? SL_ARCH_I686 : SL_ARCH_AMD64, i % 3 != 0, 1 + (unsigned)rnd(6), &t);
    printf("  %lu incremental, %lu declined\n", t.accepted, t.declined);
    CHECK_EQ(t.bad, 0);
    CHECK(t.accepted > 200 / SCALE); /* the differential means something only if takes are taken */
}

/* ---- the simplest takes ---- */

/* A guest restored to P that changed nothing in P's tables (it may have
 * written scratch: its stack, a page of its own) is P again: the take is
 * incremental, hashes no page, and is P in identity and bytes. */
static void unchanged_guest_is_its_parent(void)
{
    for (unsigned arch = 0; arch < 2; arch++) {
        guest g;
        REQUIRE(fz_build(&g, arch ? SL_ARCH_I686 : SL_ARCH_AMD64, 2, 2 << 20, 32));
        sl_guest_state st = fz_state(&g, fz_grandparent, 1);
        sl_snapshot *P, *s = NULL, *f = NULL;
        sl_errbuf e;
        REQUIRE(sl_snapshot_from_memory(&P, &st, &e) == 0);
        fz_onp o;
        REQUIRE(fz_restore(&o, &g.l, P));
        o.r.scratch[0] ^= 1; /* the input buffer, written */
        sl_pageset_add_range(&o.dirty, 0, 1);
        CHECK_EQ(sl_snapinc_take(&s, &o.st, P, &o.dirty, &e), 0);
        REQUIRE(s && sl_snapshot_from_memory(&f, &o.st, &e) == 0);
        CHECK(!*fz_diff(s, f));
        CHECK(same_id(s, P));
        CHECK_EQ(s->stats.pages_hashed, 0);
        sl_snapshot_free(s);
        sl_snapshot_free(f);
        fz_onp_free(&o);
        sl_snapshot_free(P);
        guest_free(&g);
    }
}

/* ---- resources ---- */

static unsigned count_fds(void)
{
    unsigned n = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *de; d && (de = readdir(d));)
        n += de->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static unsigned count_maps(void)
{
    unsigned n = 0;
    FILE *f = fopen("/proc/self/maps", "r");
    for (int c; f && (c = fgetc(f)) != EOF;)
        n += c == '\n';
    if (f)
        fclose(f);
    return n;
}

/* P: guest_make's 4 MiB guest compacted. */
static sl_snapshot *simple_parent(guest *g)
{
    if (!guest_make(g, 4 << 20, 8 << 20))
        abort();
    sl_guest_state st = fz_state(g, fz_grandparent, 0);
    sl_snapshot *P;
    sl_errbuf e;
    if (sl_snapshot_from_memory(&P, &st, &e))
        abort();
    return P;
}

/* k of P's pages copied on write from page off on (guest_change); every
 * table page and every page allocated since P's tables end, dirty. */
static void cow_some(fz_onp *o, uint64_t k, uint64_t off)
{
    const sl_layout *l = &o->r.l;
    uint64_t first = (l->pt_gpa - l->scratch_gpa) / SL_PAGE_SIZE;
    if (guest_change(&o->r, k, off) != k)
        abort();
    sl_pageset_add_range(&o->dirty, first, (o->r.next_table - l->pt_gpa) / SL_PAGE_SIZE);
}

/* Thousands of takes from one parent, and a chain where each snapshot is
 * the next one's parent and is freed right after: no descriptor, mapping
 * or snapshot outlives what holds it. */
static void take_free_cycles_release_everything(void)
{
    guest g;
    sl_snapshot *P = simple_parent(&g);
    fz_onp o;
    REQUIRE(fz_restore(&o, &g.l, P));
    cow_some(&o, 8, 3);
    sl_snapshot *s;
    sl_errbuf e;
    REQUIRE(sl_snapinc_take(&s, &o.st, P, &o.dirty, &e) == 0); /* learns P */
    sl_snapshot_free(s);
    unsigned fds = count_fds(), maps = count_maps();
    for (unsigned i = 0; i < 3000 / SCALE; i++) {
        REQUIRE(sl_snapinc_take(&s, &o.st, P, &o.dirty, &e) == 0);
        sl_snapshot_free(s);
    }
    CHECK_EQ(count_fds(), fds);
    CHECK(count_maps() <= maps + 32); /* slack for the allocator's and sanitizers' own */
    fz_onp_free(&o);
    /* a chain 500 deep, each parent freed as soon as its child exists */
    sl_snapshot *up = sl_snapshot_ref(P);
    for (unsigned i = 0; i < 500 / SCALE; i++) {
        REQUIRE(fz_restore(&o, &g.l, up));
        cow_some(&o, 2, i % 500);
        int rc = sl_snapinc_take(&s, &o.st, up, &o.dirty, &e);
        if (rc == SL_INC_DECLINED)
            rc = sl_snapshot_from_memory(&s, &o.st, &e);
        REQUIRE(rc == 0);
        fz_onp_free(&o);
        sl_snapshot_free(up);
        up = s;
    }
    sl_snapshot_free(up);
    sl_snapshot_free(P);
    CHECK_EQ(count_fds(), fds - 1); /* P's memfd went with the last snapshot of its line */
    CHECK(count_maps() <= maps + 32); /* slack for the allocator's and sanitizers' own */
    guest_free(&g);
}

/* ---- threads ---- */

#define N_THREADS 8

typedef struct worker {
    pthread_barrier_t *go;
    sl_snapshot *P;
    fz_onp o; /* restored and changed before the thread starts (rnd is not thread-safe) */
    int rc;
    const char *diff;
} worker;

static void *take_on_thread(void *arg)
{
    worker *w = arg;
    sl_errbuf e;
    sl_snapshot *s = NULL, *f = NULL;
    w->diff = "full take failed";
    pthread_barrier_wait(w->go);
    w->rc = sl_snapinc_take(&s, &w->o.st, w->P, &w->o.dirty, &e);
    if (!sl_snapshot_from_memory(&f, &w->o.st, &e))
        w->diff = w->rc ? "" : fz_diff(s, f);
    sl_snapshot_free(s);
    sl_snapshot_free(f);
    return NULL;
}

/* Sandboxes on one parent take at once: one learns it, the others wait
 * for it, and every take is its full take's snapshot; then on parents of
 * their own, several learning at once. */
static void threads_take_at_once(void)
{
    guest g;
    sl_snapshot *P[N_THREADS];
    for (unsigned round = 0; round < 2; round++) {
        if (round == 0) {
            P[0] = simple_parent(&g);
            for (unsigned i = 1; i < N_THREADS; i++)
                P[i] = sl_snapshot_ref(P[0]);
        } else {
            for (unsigned i = 0; i < N_THREADS; i++) {
                sl_guest_state st = fz_state(&g, fz_grandparent, 0);
                sl_errbuf e;
                REQUIRE(sl_snapshot_from_memory(&P[i], &st, &e) == 0);
            }
        }
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, N_THREADS);
        pthread_t th[N_THREADS];
        static worker w[N_THREADS];
        for (unsigned i = 0; i < N_THREADS; i++) {
            w[i] = (worker){.go = &go, .P = P[i]};
            REQUIRE(fz_restore(&w[i].o, &g.l, P[i]));
            cow_some(&w[i].o, 1 + i % 5, 7 * i + 1);
        }
        for (unsigned i = 0; i < N_THREADS; i++)
            pthread_create(&th[i], NULL, take_on_thread, &w[i]);
        for (unsigned i = 0; i < N_THREADS; i++) {
            pthread_join(th[i], NULL);
            CHECK_EQ(w[i].rc, 0);
            CHECK(w[i].diff && !*w[i].diff);
            fz_onp_free(&w[i].o);
        }
        pthread_barrier_destroy(&go);
        for (unsigned i = 0; i < N_THREADS; i++)
            sl_snapshot_free(P[i]);
        if (round == 1)
            guest_free(&g);
    }
}

/* ---- files ---- */

/* A parent loaded from a file learns as one made in memory; a snapshot
 * taken incrementally from it saves, in full and as a child of the
 * parent's file, and loads with its identity, which verify confirms. */
static void incremental_snapshots_save_and_load(void)
{
    static sl_cpu_state cs = {.arch = SL_ARCH_AMD64, .xstate_bv = 3};
    static uint8_t sregs[SL_CPU_STATE_MAX];
    size_t n_sregs = 0;
    sl_errbuf e;
    REQUIRE(sl_cpu_state_encode(&cs, sregs, sizeof sregs, &n_sregs, &e) == 0);
    guest g;
    REQUIRE(guest_make(&g, 4 << 20, 8 << 20));
    sl_guest_state st = fz_state(&g, fz_grandparent, 0);
    st.sregs = sregs, st.sregs_len = (uint32_t)n_sregs;
    sl_snapshot *P = NULL, *L = NULL, *s = NULL, *f = NULL, *back = NULL;
    REQUIRE(sl_snapshot_from_memory(&P, &st, &e) == 0);
    char dir[] = "/tmp/test_snapinc_XXXXXX", pp[64], full[64], child[64], err[256];
    REQUIRE(mkdtemp(dir));
    snprintf(pp, sizeof pp, "%s/p.snap", dir);
    snprintf(full, sizeof full, "%s/full.snap", dir);
    snprintf(child, sizeof child, "%s/child.snap", dir);
    int rc0 = sl_snapshot_save(P, pp, err, sizeof err);
    if (rc0)
        printf("  save: %d %s\n", rc0, err);
    REQUIRE(rc0 == 0);
    REQUIRE(sl_snapshot_load(&L, pp, err, sizeof err) == 0);
    fz_onp o;
    REQUIRE(fz_restore(&o, &g.l, L));
    o.st.sregs = sregs, o.st.sregs_len = (uint32_t)n_sregs;
    cow_some(&o, 9, 5);
    CHECK_EQ(sl_snapinc_take(&s, &o.st, L, &o.dirty, &e), 0);
    REQUIRE(s && sl_snapshot_from_memory(&f, &o.st, &e) == 0);
    CHECK(!*fz_diff(s, f));
    CHECK_EQ(sl_snapshot_save(s, full, err, sizeof err), 0);
    CHECK_EQ(sl_snapshot_save_child(s, pp, child, NULL, NULL, err, sizeof err), 0);
    CHECK_EQ(sl_snapshot_verify_file(full, err, sizeof err), 0);
    CHECK_EQ(sl_snapshot_verify_file(child, err, sizeof err), 0);
    sl_snapshot_free(L); /* the parent gone before its child */
    fz_onp_free(&o);
    CHECK_EQ(sl_snapshot_load(&back, full, err, sizeof err), 0);
    CHECK(back && same_id(back, f));
    sl_snapshot_free(back);
    back = NULL;
    CHECK_EQ(sl_snapshot_load(&back, child, err, sizeof err), 0);
    CHECK(back && same_id(back, f));
    uint64_t a, b;
    const uint8_t *x = back ? sl_snapshot_blob(back, &a) : NULL, *y = sl_snapshot_blob(f, &b);
    CHECK(x && a == b && !memcmp(x, y, a));
    sl_snapshot_free(back);
    sl_snapshot_free(s);
    sl_snapshot_free(f);
    sl_snapshot_free(P);
    unlink(pp), unlink(full), unlink(child), rmdir(dir);
    guest_free(&g);
}

int main(void)
{
    RUN_ARCH(T_NONE, unchanged_guest_is_its_parent);
    RUN_ARCH(T_NONE, random_guests_match_compaction);
    RUN_ARCH(T_NONE, take_free_cycles_release_everything);
    RUN_ARCH(T_NONE, threads_take_at_once);
    RUN_ARCH(T_NONE, incremental_snapshots_save_and_load);
    return t_failed_total ? 1 : 0;
}
