/* Snapshot engine benchmarks (host only, no vCPU):
 *  - snapshot from memory of 1, 64 and 256 MiB of live pages, against a
 *    baseline of memcpy into fresh memory + BLAKE3 of the same bytes;
 *  - stable compaction: a snapshot of a guest on a 64 MiB parent that
 *    changed k pages (copied into scratch, as copy-on-write does), against
 *    the snapshot of the same guest unchanged, with how many pages kept
 *    their position;
 *  - the identity of a 64 MiB snapshot that differs from another in k pages,
 *    from the other's kept page tree (sl_hashtree_update, then the root),
 *    against hashing it whole on every core (what issue 11's child take
 *    needs: k = 1, 64, 4096);
 *  - restore after the guest dirtied N pages, against memcpy of N pages, and
 *    against the same restore in a 16x larger scratch (cost must follow the
 *    dirtied pages, not the region size). */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"
#include "blake3.h"
#include "hashtree.h"
#include "mem.h"
#include "pt.h"
#include "snapshot.h"
#include "../tests/common/sim.h"

/* guest_make (sim.h), or exit. */
static void guest_need(guest *g, uint64_t bytes, uint64_t scratch)
{
    if (!guest_make(g, bytes, scratch)) {
        fprintf(stderr, "cannot set up a %llu-byte guest\n", (unsigned long long)bytes);
        exit(1);
    }
}

static sl_guest_state state_of(guest *g)
{
    sl_guest_state st = {.layout = &g->l, .snap_mem = g->snap, .snap_size = g->snap_size,
                         .scratch = g->scratch, .roots = g->roots, .n_roots = 1,
                         .next_kind = SL_NEXT_CALL, .family = 1};
    return st;
}

static void bench_snapshot_size(uint64_t mib, int reps)
{
    guest g;
    uint64_t bytes = mib << 20;
    guest_need(&g, bytes, 16u << 20);
    sl_guest_state st = state_of(&g);
    double t[32], b[32];
    for (int r = 0; r < reps; r++) {
        sl_snapshot *s;
        sl_errbuf e;
        double t0 = bench_now();
        if (sl_snapshot_from_memory(&s, &st, &e)) {
            fprintf(stderr, "snapshot: %s\n", e.msg);
            exit(1);
        }
        t[r] = bench_now() - t0;
        if (sl_snapshot_memory_size(s) != bytes) {
            fprintf(stderr, "snapshot holds %llu bytes, expected %llu\n",
                    (unsigned long long)sl_snapshot_memory_size(s), (unsigned long long)bytes);
            exit(1);
        }
        sl_snapshot_free(s);

        /* Baseline: the least any snapshot must do with these bytes. */
        t0 = bench_now();
        uint8_t *dst = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        memcpy(dst, g.snap, bytes);
        blake3_hasher h;
        uint8_t out[32];
        blake3_hasher_init(&h);
        blake3_hasher_update(&h, dst, bytes);
        blake3_hasher_finalize(&h, out, 32);
        munmap(dst, bytes);
        b[r] = bench_now() - t0;
    }
    char name[64];
    snprintf(name, sizeof name, "snapshot_from_memory_%lluMiB", (unsigned long long)mib);
    bench_report(name, bench_median(t, reps), bench_median(b, reps), "ms");
    guest_free(&g);
}

static double time_take(const sl_guest_state *st, int reps, uint64_t *kept, uint64_t *pages)
{
    double t[32];
    for (int r = 0; r < reps; r++) {
        sl_snapshot *s;
        sl_errbuf e;
        double t0 = bench_now();
        if (sl_snapshot_from_memory(&s, st, &e)) {
            fprintf(stderr, "snapshot: %s\n", e.msg);
            exit(1);
        }
        t[r] = bench_now() - t0;
        *kept = sl_snapshot_page_stats(s)->pages_kept;
        *pages = sl_snapshot_memory_size(s) / SL_PAGE_SIZE;
        sl_snapshot_free(s);
    }
    return bench_median(t, reps);
}

/* Stable compaction on a 64 MiB parent: k changed pages against none. */
static void bench_stable(int reps)
{
    static const uint8_t parent[32] = {1};
    static const uint64_t ks[] = {1, 64, 4096};
    uint64_t kept, pages;
    guest g;
    guest_need(&g, 64u << 20, 64u << 20);
    sl_guest_state st = state_of(&g);
    st.parent = parent;
    double base = time_take(&st, reps, &kept, &pages);
    printf("# stable compaction, 64 MiB parent: unchanged, %llu of %llu pages kept their position\n",
           (unsigned long long)kept, (unsigned long long)pages);
    guest_free(&g);
    for (unsigned i = 0; i < sizeof ks / sizeof ks[0]; i++) {
        guest_need(&g, 64u << 20, 64u << 20);
        st = state_of(&g);
        st.parent = parent;
        uint64_t k = guest_change(&g, ks[i], 0);
        double t = time_take(&st, reps, &kept, &pages);
        printf("# %llu changed: %llu of %llu pages kept their position\n", (unsigned long long)k,
               (unsigned long long)kept, (unsigned long long)pages);
        char name[64];
        snprintf(name, sizeof name, "snapshot_stable_64MiB_k%llu_vs_unchanged", (unsigned long long)ks[i]);
        bench_report(name, t, base, "ms");
        guest_free(&g);
    }
}

/* The identity of s with k pages changed, from a copy of s's tree updated
 * in those pages, against sl_snapshot_compute_hash (every core, whole). */
static void bench_rehash(const sl_snapshot *s, uint64_t k, int reps)
{
    uint8_t tail[SL_SNAPSHOT_TAIL_MAX], id[32];
    sl_hash_job job = sl_snapshot_hash_input(s, tail);
    uint64_t n = job.blob_size / SL_PAGE_SIZE;
    sl_hashtree *t = sl_hashtree_dup(sl_snapshot_hashtree(s));
    uint8_t *child = malloc(job.blob_size);
    uint64_t *pages = malloc(k * sizeof *pages);
    if (!t || !child || !pages) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    memcpy(child, job.blob, job.blob_size);
    for (uint64_t i = 0; i < k; i++) /* spread over the blob, ascending */
        pages[i] = i * (n / k);
    double t_up[32], t_full[32];
    for (int r = 0; r < reps; r++) {
        for (uint64_t i = 0; i < k; i++)
            child[pages[i] * SL_PAGE_SIZE + (uint64_t)r] ^= 1;
        double t0 = bench_now();
        if (!sl_hashtree_update(t, child, pages, k))
            abort();
        sl_hashtree_root(t, child, job.blob_size, job.tail, job.tail_len, id);
        t_up[r] = bench_now() - t0;
        t0 = bench_now();
        sl_snapshot_compute_hash(s, id);
        t_full[r] = bench_now() - t0;
    }
    char name[64];
    snprintf(name, sizeof name, "snapshot_rehash_64MiB_k%llu_vs_full", (unsigned long long)k);
    bench_report(name, bench_median(t_up, reps), bench_median(t_full, reps), "us");
    free(pages);
    free(child);
    sl_hashtree_free(t);
}

/* A 64 MiB snapshot, rehashed after k = 1, 64 and 4096 changed pages. */
static void bench_rehash_all(int reps)
{
    guest g;
    guest_need(&g, 64u << 20, 16u << 20);
    sl_guest_state st = state_of(&g);
    sl_snapshot *s;
    sl_errbuf e;
    if (sl_snapshot_from_memory(&s, &st, &e) || !sl_snapshot_hashtree(s)) {
        fprintf(stderr, "snapshot: %s\n", e.msg);
        exit(1);
    }
    static const uint64_t ks[] = {1, 64, 4096};
    for (unsigned i = 0; i < 3; i++)
        bench_rehash(s, ks[i], reps);
    sl_snapshot_free(s);
    guest_free(&g);
}

/* Restore after `dirty` pages of scratch were written. */
static double time_restore(uint64_t scratch, uint64_t dirty, int reps, double *baseline)
{
    guest g;
    guest_need(&g, 1u << 20, scratch);
    sl_guest_state st = state_of(&g);
    sl_snapshot *s;
    sl_mem *m;
    sl_errbuf e;
    if (sl_snapshot_from_memory(&s, &st, &e) || sl_mem_create(&m, s, &e) || sl_mem_restore(m, s, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        exit(1);
    }
    static uint8_t src[4096 * 2048 + 4096];
    static uint8_t dst[4096 * 2048];
    double t[64], b[64];
    uint64_t first = sl_mem_bk_get(m, SL_BK_ALLOC_CURSOR);
    for (int r = 0; r < reps; r++) {
        for (uint64_t i = 0; i < dirty; i++)
            memset(sl_mem_write_ptr(m, first + i * SL_PAGE_SIZE, SL_PAGE_SIZE), r + 1, SL_PAGE_SIZE);
        double t0 = bench_now();
        sl_mem_restore(m, s, &e);
        t[r] = bench_now() - t0;
        t0 = bench_now();
        memcpy(dst, src + (r & 1), dirty * SL_PAGE_SIZE);
        b[r] = bench_now() - t0;
    }
    sl_mem_free(m);
    sl_snapshot_free(s);
    guest_free(&g);
    *baseline = bench_median(b, reps);
    return bench_median(t, reps);
}

int main(void)
{
    printf("# snapshot engine, host only (no vCPU); medians of repeated runs\n");
    bench_snapshot_size(1, bench_reps(21));
    bench_snapshot_size(64, bench_reps(7));
    bench_snapshot_size(256, bench_reps(5));
    bench_stable(bench_reps(7));
    bench_rehash_all(bench_reps(15));

    static const uint64_t dirty[] = {1, 16, 256, 2048};
    double small[4];
    for (unsigned i = 0; i < 4; i++) {
        double base;
        char name[64];
        small[i] = time_restore(16u << 20, dirty[i], bench_reps(31), &base);
        snprintf(name, sizeof name, "restore_dirty%llu_vs_memcpy", (unsigned long long)dirty[i]);
        bench_report(name, small[i], base, "us");
    }
    /* Same dirty count, 16x the scratch: the ratio should stay near 1. */
    for (unsigned i = 0; i < 4; i += 3) {
        double base;
        char name[64];
        double big = time_restore(256u << 20, dirty[i], bench_reps(31), &base);
        snprintf(name, sizeof name, "restore_dirty%llu_scratch256MiB_vs_16MiB", (unsigned long long)dirty[i]);
        bench_report(name, big, small[i], "us");
    }
    return 0;
}
