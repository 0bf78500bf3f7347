/* BLAKE3 as a tree of pages (src/host/hashtree.c, hashtree_threads.c)
 * against the official hasher: the root merged from per-page CVs must be
 * exactly blake3(blob || tail) for every size around the chunk (1 KiB) and
 * page (4 KiB) boundaries, for odd and power-of-two page counts, with and
 * without a tail; CVs computed in any split, on any number of threads,
 * updated page by page or copied from another tree must all give it too.
 * A randomized pass tries many sizes, splits and thread counts; a snapshot
 * keeps the tree of its identity, ready for a child to reuse. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "hashtree.h"
#include "snapshot.h"
#include "t.h"
#include "../common/blake3_ref.h"
#include "../common/min_elf.h"
#include "../common/rng.h"

#define PAGE SL_HASHTREE_PAGE

uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint8_t *random_bytes(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    for (size_t i = 0; p && i < n; i++)
        p[i] = (uint8_t)rnd(256);
    return p;
}

/* The root from a tree whose pages were hashed in random pieces. */
static bool tree_root_in_pieces(const uint8_t *blob, size_t size, const uint8_t *tail, size_t tail_len,
                                uint8_t out[32])
{
    uint64_t n = size / PAGE;
    sl_hashtree *t = sl_hashtree_new(n);
    if (!t)
        return false;
    for (uint64_t first = 0, len; first < n; first += len) {
        len = 1 + rnd(n - first < 40 ? n - first : 40);
        if (!sl_hashtree_set_pages(t, blob + first * PAGE, first, len))
            break; /* never for a new tree: the root then differs */
    }
    bool ok = sl_hashtree_build(t);
    sl_hashtree_root(t, blob, size, tail, tail_len, out);
    sl_hashtree_free(t);
    return ok;
}

/* The same through the threaded driver, with threads even for small inputs. */
static void job_root(const uint8_t *blob, size_t size, const uint8_t *tail, size_t tail_len, unsigned threads,
                     uint8_t out[32])
{
    sl_hash_job job = {.blob = blob, .blob_size = size, .tail = tail, .tail_len = tail_len,
                       .max_threads = threads, .thread_min = PAGE};
    sl_hashtree_hash(&job, NULL, out);
}

/* Sizes at and around every boundary that matters, each with tails that
 * end inside a chunk, on a chunk boundary, or past it. */
static void test_sizes(void)
{
    static const size_t pages[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129};
    static const size_t extra[] = {0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 3072, 4095};
    static const size_t tails[] = {0, 1, 32, 768, 1023, 1024, 1025, 4096, 5000};
    uint8_t *blob = random_bytes(130 * PAGE), *tail = random_bytes(5000);
    REQUIRE(blob && tail);
    unsigned bad = 0, n = 0;
    for (size_t p = 0; p < sizeof pages / sizeof *pages; p++)
        for (size_t x = 0; x < sizeof extra / sizeof *extra; x++)
            for (size_t k = 0; k < sizeof tails / sizeof *tails; k++) {
                size_t size = pages[p] * PAGE + extra[x];
                uint8_t want[32], got[32], threaded[32];
                blake3_ref(blob, size, tail, tails[k], want);
                REQUIRE(tree_root_in_pieces(blob, size, tails[k] ? tail : NULL, tails[k], got));
                job_root(blob, size, tails[k] ? tail : NULL, tails[k], 1 + (unsigned)(n % 4), threaded);
                if (memcmp(want, got, 32) || memcmp(want, threaded, 32)) {
                    if (bad++ < 5)
                        printf("  size %zu tail %zu: tree %s, threads %s\n", size, tails[k],
                               memcmp(want, got, 32) ? "differs" : "ok", memcmp(want, threaded, 32) ? "differs" : "ok");
                }
                n++;
            }
    printf("  %u sizes x tails, %u differ\n", n, bad);
    CHECK_EQ(bad, 0);
    free(blob);
    free(tail);
}

/* The empty input and a NULL blob: BLAKE3 of nothing. */
static void test_empty(void)
{
    uint8_t want[32], got[32];
    blake3_ref(NULL, 0, NULL, 0, want);
    sl_hashtree_root(NULL, NULL, 0, NULL, 0, got);
    CHECK(memcmp(want, got, 32) == 0);
    job_root(NULL, 0, NULL, 0, 4, got);
    CHECK(memcmp(want, got, 32) == 0);
}

/* A page's CV depends on where it is, not only on its bytes. */
static void test_position_matters(void)
{
    uint8_t page[PAGE];
    memset(page, 0x5a, sizeof page);
    sl_cv a, b;
    sl_hashtree_pages(page, 0, 1, &a);
    sl_hashtree_pages(page, 1, 1, &b);
    CHECK(memcmp(&a, &b, sizeof a) != 0);
    sl_cv c;
    sl_hashtree_pages(page, 1, 1, &c);
    CHECK(memcmp(&b, &c, sizeof b) == 0);
}

/* Random sizes, tails, splits and thread counts against the hasher. */
static void test_randomized(void)
{
    size_t max = (3u << 20) + 5000;
    uint8_t *blob = random_bytes(max), *tail = random_bytes(2000);
    REQUIRE(blob && tail);
    unsigned bad = 0, rounds = 300;
    for (unsigned r = 0; r < rounds; r++) {
        size_t size = r % 3 ? rnd(64 * PAGE) : rnd(max);
        if (r % 5 == 0)
            size &= ~(size_t)(PAGE - 1); /* whole pages */
        size_t tail_len = r % 4 ? rnd(2000) : 0;
        uint8_t want[32], got[32], threaded[32];
        blake3_ref(blob, size, tail, tail_len, want);
        REQUIRE(tree_root_in_pieces(blob, size, tail, tail_len, got));
        job_root(blob, size, tail, tail_len, 1 + (unsigned)rnd(8), threaded);
        if ((memcmp(want, got, 32) || memcmp(want, threaded, 32)) && bad++ < 5)
            printf("  size %zu tail %zu differs\n", size, tail_len);
    }
    CHECK_EQ(bad, 0);
    free(blob);
    free(tail);
}

/* 64 MiB and a tail with the machine's own thread count, as a full take
 * or a verify hashes it, keeping the tree. */
static void test_large(void)
{
    size_t size = 64u << 20;
    uint8_t *blob = random_bytes(size), tail[24 * 32];
    REQUIRE(blob);
    memset(tail, 7, sizeof tail);
    uint8_t want[32], got[32], again[32];
    blake3_ref(blob, size, tail, sizeof tail, want);
    sl_hash_job job = {.blob = blob, .blob_size = size, .tail = tail, .tail_len = sizeof tail};
    sl_hashtree *t;
    sl_hashtree_hash(&job, &t, got);
    CHECK(memcmp(want, got, 32) == 0);
    REQUIRE(t);
    CHECK_EQ(sl_hashtree_n_pages(t), size / PAGE);
    sl_hashtree_root(t, blob, size, tail, sizeof tail, again); /* the kept tree is current */
    CHECK(memcmp(want, again, 32) == 0);
    sl_hashtree_free(t);
    free(blob);
}

/* A blob whose pages change: updating the changed pages (and their paths)
 * in a copy of the old tree gives the new blob's hash, as does a new tree
 * whose unchanged pages' CVs were copied from the old one. */
static void test_update_and_reuse(void)
{
    static const uint64_t sizes[] = {1, 2, 3, 64, 65, 255, 1000, 4096};
    unsigned bad = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        for (unsigned round = 0; round < 6; round++) {
            uint64_t n = sizes[i];
            size_t size = n * PAGE + (round & 1 ? 100 : 0), tail_len = round & 2 ? 96 : 0;
            uint8_t *blob = random_bytes(size), tail[96];
            memset(tail, 1, sizeof tail);
            sl_hashtree *old = sl_hashtree_new(n);
            REQUIRE(blob && old);
            REQUIRE(sl_hashtree_set_pages(old, blob, 0, n));
            REQUIRE(sl_hashtree_build(old));
            uint8_t before[32], old_after[32];
            sl_hashtree_root(old, blob, size, tail, tail_len, before);
            /* Change k pages: none, one, a run, scattered, or all. */
            uint64_t k = round == 0 ? 0 : round == 1 ? 1 : round == 5 ? n : 1 + rnd(n < 200 ? n : 200);
            uint64_t *changed = malloc((k ? k : 1) * sizeof *changed), m = 0;
            uint64_t start = round == 3 && n > k ? rnd(n - k) : 0;
            for (uint64_t p = 0; p < n && m < k; p++)
                if (round == 3 || round == 5 ? p >= start : rnd(n) < k)
                    changed[m++] = p;
            for (uint64_t j = 0; j < m; j++)
                blob[changed[j] * PAGE + rnd(PAGE)] ^= 0x80;

            uint8_t want[32], updated[32], reused[32];
            blake3_ref(blob, size, tail, tail_len, want);
            sl_hashtree *u = sl_hashtree_dup(old);
            REQUIRE(changed && u);
            REQUIRE(sl_hashtree_update(u, blob, changed, m));
            sl_hashtree_root(u, blob, size, tail, tail_len, updated);

            /* The other way: a copy's changed pages set one by one, then
             * every level rebuilt (over blocks still shared with old). */
            sl_hashtree *r = sl_hashtree_dup(old);
            REQUIRE(r);
            for (uint64_t j = 0; j < m; j++)
                REQUIRE(sl_hashtree_set_pages(r, blob + changed[j] * PAGE, changed[j], 1));
            REQUIRE(sl_hashtree_build(r));
            sl_hashtree_root(r, blob, size, tail, tail_len, reused);
            /* The copies wrote their own blocks, never old's. (A lone whole
             * page is its own root, read from the blob: skipped.) */
            sl_hashtree_root(old, blob, size, tail, tail_len, old_after);
            if (!(n == 1 && size == PAGE && !tail_len) && memcmp(before, old_after, 32) && bad++ < 5)
                printf("  %" PRIu64 " pages (round %u): the copies changed the tree they came from\n", n, round);
            if ((memcmp(want, updated, 32) || memcmp(want, reused, 32)) && bad++ < 5)
                printf("  %" PRIu64 " pages, %" PRIu64 " changed (round %u): update %s, reuse %s\n", n, m, round,
                       memcmp(want, updated, 32) ? "differs" : "ok", memcmp(want, reused, 32) ? "differs" : "ok");
            sl_hashtree_free(old);
            sl_hashtree_free(u);
            sl_hashtree_free(r);
            free(changed);
            free(blob);
        }
    CHECK_EQ(bad, 0);
}

/* Many changed pages, which sl_hashtree_update hashes on several threads
 * (sl_hashtree_set_page_list_threads, one thread per 128 pages and per
 * CPU): lone pages spread over the input, runs, and pages crowded into a
 * few leaf blocks (the threads' segments must then start at block edges,
 * several of them empty), each updated on a copy that shares every block
 * with its original, against the reference hasher. */
static void test_update_many_pages(void)
{
    const uint64_t n = 8192;
    uint8_t *blob = random_bytes(n * PAGE);
    uint64_t *changed = malloc(n * sizeof *changed);
    sl_hashtree *old = sl_hashtree_new(n);
    REQUIRE(blob && changed && old);
    REQUIRE(sl_hashtree_set_pages(old, blob, 0, n));
    REQUIRE(sl_hashtree_build(old));
    for (unsigned shape = 0; shape < 4; shape++) {
        uint64_t m = 0;
        for (uint64_t p = 0; p < n; p++) {
            bool pick = shape == 0   ? p % 3 == 1                 /* lone pages, every block */
                        : shape == 1 ? rnd(4) == 0                /* random */
                        : shape == 2 ? p % 512 < 96               /* runs */
                                     : p < 6 * 64 && p % 5 != 0;  /* crowded into 6 blocks */
            if (pick)
                changed[m++] = p;
        }
        for (uint64_t j = 0; j < m; j++)
            blob[changed[j] * PAGE + rnd(PAGE)] ^= 0x40;
        uint8_t want[32], got[32];
        blake3_ref(blob, n * PAGE, NULL, 0, want);
        sl_hashtree *u = sl_hashtree_dup(old);
        REQUIRE(u);
        REQUIRE(sl_hashtree_update(u, blob, changed, m));
        sl_hashtree_root(u, blob, n * PAGE, NULL, 0, got);
        if (memcmp(want, got, 32))
            printf("  shape %u, %" PRIu64 " pages changed: the updated root differs\n", shape, m);
        CHECK(memcmp(want, got, 32) == 0);
        sl_hashtree_free(old); /* the updated tree is the next round's original */
        old = u;
    }
    sl_hashtree_free(old);
    free(changed);
    free(blob);
}

/* An input that grows or shrinks behind pages that stay: the resized tree
 * keeps (shares) what lies wholly below keep, the pages from keep on and
 * any changed below are updated, and the root is the new input's. Blocks
 * of 64 pages are the unit of sharing, so sizes and keeps straddle them. */
static void test_resized(void)
{
    static const uint64_t sizes[] = {1, 63, 64, 65, 128, 129, 300, 1024, 1500};
    unsigned bad = 0, cases = 0;
    for (size_t a = 0; a < sizeof sizes / sizeof *sizes; a++)
        for (size_t b = 0; b < sizeof sizes / sizeof *sizes; b++) {
            uint64_t n0 = sizes[a], n1 = sizes[b], keep = rnd((n0 < n1 ? n0 : n1) + 1);
            uint8_t *blob0 = random_bytes(n0 * PAGE), *blob1 = random_bytes(n1 * PAGE);
            sl_hashtree *t0 = sl_hashtree_new(n0);
            uint64_t *pages = malloc(n1 * sizeof *pages), m = 0;
            REQUIRE(blob0 && blob1 && t0 && pages);
            memcpy(blob1, blob0, keep * PAGE);
            REQUIRE(sl_hashtree_set_pages(t0, blob0, 0, n0));
            REQUIRE(sl_hashtree_build(t0));
            uint8_t want0[32], got0[32], want1[32], got1[32];
            blake3_ref(blob0, n0 * PAGE, NULL, 0, want0);
            if (keep && rnd(2)) { /* and one page below keep changed */
                uint64_t p = rnd(keep);
                blob1[p * PAGE] ^= 1;
                pages[m++] = p;
            }
            for (uint64_t p = keep; p < n1; p++)
                pages[m++] = p;
            sl_hashtree *t1 = sl_hashtree_resized(t0, n1, keep);
            REQUIRE(t1);
            REQUIRE(sl_hashtree_update(t1, blob1, pages, m));
            sl_hashtree_root(t1, blob1, n1 * PAGE, NULL, 0, got1);
            blake3_ref(blob1, n1 * PAGE, NULL, 0, want1);
            sl_hashtree_free(t1); /* t0 lives on after the tree that shared its blocks */
            sl_hashtree_root(t0, blob0, n0 * PAGE, NULL, 0, got0);
            if ((memcmp(want1, got1, 32) || memcmp(want0, got0, 32)) && bad++ < 5)
                printf("  %" PRIu64 " -> %" PRIu64 " pages, keep %" PRIu64 ": resized %s, original %s\n", n0, n1,
                       keep, memcmp(want1, got1, 32) ? "differs" : "ok", memcmp(want0, got0, 32) ? "differs" : "ok");
            sl_hashtree_free(t0);
            free(pages);
            free(blob0);
            free(blob1);
            cases++;
        }
    CHECK_EQ(bad, 0);
    CHECK_EQ(cases, 81);
}

/* Copies of one tree changed on threads at once, each then checked, and
 * the copies freed on their threads while the others still read: blocks
 * are shared, so this is where their reference counts are exercised. */
#define N_COPIERS 4

typedef struct copier {
    const sl_hashtree *base;
    const uint8_t *blob; /* the base's input; each copier changes its own copy */
    uint64_t n;
    unsigned id;
    bool ok;
} copier;

static void *copy_and_change(void *arg)
{
    copier *c = arg;
    c->ok = true;
    uint8_t *mine = malloc(c->n * PAGE);
    if (!mine) {
        c->ok = false;
        return NULL;
    }
    for (unsigned round = 0; round < 50 && c->ok; round++) {
        sl_hashtree *t = sl_hashtree_dup(c->base);
        /* Up to three pages, ascending, no repeats; the last page always. */
        uint64_t lo = round % c->n, mid = (round * 7 + c->id) % c->n, pages[3];
        if (mid < lo) {
            uint64_t x = mid;
            mid = lo;
            lo = x;
        }
        size_t m = 0;
        pages[m++] = lo;
        if (mid != lo)
            pages[m++] = mid;
        if (pages[m - 1] != c->n - 1)
            pages[m++] = c->n - 1;
        memcpy(mine, c->blob, c->n * PAGE); /* the base's input, then this round's changes */
        for (size_t i = 0; i < m; i++)
            mine[pages[i] * PAGE + c->id] ^= (uint8_t)(round + 1);
        uint8_t want[32], got[32];
        c->ok = t && sl_hashtree_update(t, mine, pages, m);
        if (c->ok) {
            sl_hashtree_root(t, mine, c->n * PAGE, NULL, 0, got);
            blake3_ref(mine, c->n * PAGE, NULL, 0, want);
            c->ok = !memcmp(want, got, 32);
        }
        sl_hashtree_free(t);
    }
    free(mine);
    return NULL;
}

static void test_copies_on_threads(void)
{
    uint64_t n = 700;
    uint8_t *blob = random_bytes(n * PAGE), want[32], got[32];
    sl_hashtree *base = sl_hashtree_new(n);
    REQUIRE(blob && base);
    REQUIRE(sl_hashtree_set_pages(base, blob, 0, n));
    REQUIRE(sl_hashtree_build(base));
    copier c[N_COPIERS];
    pthread_t tid[N_COPIERS];
    for (unsigned i = 0; i < N_COPIERS; i++) {
        c[i] = (copier){.base = base, .blob = blob, .n = n, .id = i};
        REQUIRE(pthread_create(&tid[i], NULL, copy_and_change, &c[i]) == 0);
    }
    for (unsigned i = 0; i < N_COPIERS; i++) {
        pthread_join(tid[i], NULL);
        CHECK(c[i].ok);
    }
    sl_hashtree_root(base, blob, n * PAGE, NULL, 0, got);
    blake3_ref(blob, n * PAGE, NULL, 0, want);
    CHECK(memcmp(want, got, 32) == 0);
    sl_hashtree_free(base);
    free(blob);
}

typedef struct watch {
    pthread_t caller;
    uint64_t next, every;
    bool order_ok, thread_ok;
    _Atomic uint32_t *touched; /* per page */
} watch;

static void on_report(void *arg, uint64_t done)
{
    watch *w = arg;
    w->order_ok &= done == w->next;
    w->thread_ok &= pthread_equal(pthread_self(), w->caller) != 0;
    w->next += w->every;
}

static void on_touch(void *arg, uint64_t off, uint64_t len)
{
    watch *w = arg;
    for (uint64_t p = off / PAGE; p < (off + len) / PAGE; p++)
        atomic_fetch_add(&w->touched[p], 1);
}

/* Progress comes on the calling thread, in order, one step at a time from
 * 0 up to the last step below the size; every page is touched once, just
 * before it is hashed, whatever the thread count. */
static void test_report_and_touch(void)
{
    size_t size = (5u << 20) + 3 * PAGE + 17;
    uint8_t *blob = random_bytes(size), want[32], got[32];
    REQUIRE(blob);
    blake3_ref(blob, size, NULL, 0, want);
    for (unsigned threads = 1; threads <= 5; threads += 2) {
        watch w = {.caller = pthread_self(), .every = 1u << 20, .order_ok = true, .thread_ok = true};
        w.touched = calloc(size / PAGE, sizeof *w.touched);
        REQUIRE(w.touched);
        sl_hash_job job = {.blob = blob, .blob_size = size, .touch = on_touch, .report = on_report,
                           .every = w.every, .arg = &w, .max_threads = threads, .thread_min = PAGE};
        sl_hashtree_hash(&job, NULL, got);
        CHECK(memcmp(want, got, 32) == 0);
        CHECK(w.order_ok);
        CHECK(w.thread_ok);
        CHECK_EQ(w.next, 6u << 20); /* reported 0, 1, ..., 5 MiB */
        unsigned once = 0;
        for (size_t p = 0; p < size / PAGE; p++)
            once += atomic_load(&w.touched[p]) == 1;
        CHECK_EQ(once, size / PAGE);
        free(w.touched);
    }
    free(blob);
}

/* A snapshot keeps the tree its identity came from (its region records are
 * the tail); a copy of the blob with pages changed, as a child would hold
 * it, hashes to the new identity from a copy of that tree updated in those
 * pages only. */
static void test_snapshot_keeps_tree(void)
{
    static uint8_t elf[MIN_ELF_SIZE];
    size_t len = min_elf64(elf, (min_elf){.data_memsz = 0x2000, .data_byte = 0x5A, .relocation = true});
    sl_config cfg = {.heap_size = 3u << 20, .scratch_size = 1 << 20};
    sl_snapshot *s;
    sl_errbuf e;
    REQUIRE(sl_snapshot_from_binary(&s, elf, len, &cfg, &e) == 0);
    uint8_t tail[SL_SNAPSHOT_TAIL_MAX], got[32];
    sl_hash_job job = sl_snapshot_hash_input(s, tail);
    CHECK(job.tail_len > 0);
    const sl_hashtree *t = sl_snapshot_hashtree(s);
    REQUIRE(t);
    CHECK_EQ(sl_hashtree_n_pages(t), job.blob_size / PAGE);
    sl_hashtree_root(t, job.blob, job.blob_size, job.tail, job.tail_len, got);
    CHECK(memcmp(got, sl_snapshot_hash(s), 32) == 0);

    uint8_t *child = malloc(job.blob_size), want[32];
    sl_hashtree *ct = sl_hashtree_dup(t);
    REQUIRE(child && ct);
    memcpy(child, job.blob, job.blob_size);
    uint64_t changed[] = {0, 5, 6, 7, job.blob_size / PAGE - 1};
    for (size_t i = 0; i < sizeof changed / sizeof *changed; i++)
        child[changed[i] * PAGE + 99] ^= 1;
    REQUIRE(sl_hashtree_update(ct, child, changed, sizeof changed / sizeof *changed));
    sl_hashtree_root(ct, child, job.blob_size, job.tail, job.tail_len, got);
    blake3_ref(child, job.blob_size, job.tail, job.tail_len, want);
    CHECK(memcmp(got, want, 32) == 0);
    CHECK(memcmp(got, sl_snapshot_hash(s), 32) != 0);
    sl_hashtree_free(ct);
    free(child);
    sl_snapshot_free(s);
}

int main(void)
{
    RUN(test_sizes);
    RUN(test_empty);
    RUN(test_position_matters);
    RUN(test_randomized);
    RUN(test_large);
    RUN(test_update_and_reuse);
    RUN(test_update_many_pages);
    RUN(test_resized);
    RUN(test_copies_on_threads);
    RUN(test_report_and_touch);
    RUN(test_snapshot_keeps_tree);
    T_EXIT();
}
