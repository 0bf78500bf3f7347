/* BLAKE3 as a tree of 4 KiB pages: a snapshot's identity (BLAKE3 of the
 * blob followed by the region records, docs/snapshot-format.md §6) computed
 * from per-page chaining values, so that pages can be hashed on several
 * threads and a page's value can be kept and reused while the page does not
 * change. The result is always exactly what blake3_hasher gives for the same
 * bytes: nothing here changes the identity, only how it is computed.
 *
 * Why it works: BLAKE3 splits its input into 1 KiB chunks and hashes them
 * as a left-complete binary tree. An aligned 4 KiB page of the input is an
 * aligned subtree of four chunks, and its chaining value (CV) depends only
 * on its bytes and its position (the chunk counter). Every aligned block of
 * 2^k whole pages is a subtree too, so the tree above the pages is a plain
 * binary tree that this file keeps level by level; the bytes after the last
 * whole page (the rest of the blob and the tail) join it as BLAKE3's own
 * merge would join them. Only the root node is finalised differently (the
 * ROOT flag), which is why a tree's root is computed, never stored.
 *
 * A tree made from another (sl_hashtree_dup, sl_hashtree_resized) shares
 * the other's CVs in blocks of SL_HASHTREE_UNIT's page count and copies a
 * block only when it writes into it: a copy costs 8 bytes per 64 pages,
 * and updating k pages of it copies about k * log2(pages) blocks of 2 KiB.
 *
 * Nothing here holds global state. An sl_hashtree is a plain value: one
 * thread at a time may change it; any number may read it; trees that share
 * blocks may be changed, read and freed on different threads at once. */
#ifndef SL_HASHTREE_H
#define SL_HASHTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash.h"

#define SL_HASHTREE_PAGE 4096u

/* The chaining value of one subtree: 32 bytes as BLAKE3 writes them. */
typedef struct sl_cv {
    uint8_t b[SL_HASH_LEN];
} sl_cv;

/* CVs of n whole pages that lie at data, the first being page number
 * `first` of the input (byte offset first * SL_HASHTREE_PAGE): out[i] is
 * page first + i's. Pure function of its arguments; thread-safe. */
void sl_hashtree_pages(const uint8_t *data, uint64_t first, uint64_t n, sl_cv *out);

/* A tree over the whole pages of an input: level 0 holds one CV per page,
 * level k one per aligned block of 2^k pages that the input holds whole
 * (n_pages >> k of them). */
typedef struct sl_hashtree sl_hashtree;

/* A tree for n_pages pages, its CVs not yet computed; NULL when out of
 * memory (it takes about 2 * 32 bytes per page). */
sl_hashtree *sl_hashtree_new(uint64_t n_pages);
/* A copy of t (its CVs too), sharing every block with t: NULL when out of
 * memory. Costs about 8 bytes per 64 pages, not a copy of the CVs. */
sl_hashtree *sl_hashtree_dup(const sl_hashtree *t);
/* A tree for n_pages pages of an input whose first `keep` pages are those
 * of t's input (same bytes, same place): the CVs of every block that lies
 * wholly below keep are copied from t, at every level; every other CV is
 * left to compute (sl_hashtree_update with every page from keep on, and
 * any changed below it). NULL when out of memory. For an input that grew
 * or shrank behind pages that stay. Shares t's blocks that lie wholly
 * below keep. */
sl_hashtree *sl_hashtree_resized(const sl_hashtree *t, uint64_t n_pages, uint64_t keep);
void sl_hashtree_free(sl_hashtree *t);
uint64_t sl_hashtree_n_pages(const sl_hashtree *t);
/* Level 0, one CV per page: the CVs of pages [first, first + n) (below
 * n_pages) from data (page `first` at data[0]); then sl_hashtree_build or
 * sl_hashtree_build_range for the levels above. False when out of memory
 * for a block shared with another tree (never for sl_hashtree_new's
 * tree): t's CVs are then not all current, and t is only good to free.
 * Threads may set disjoint ranges of one tree at once when each range
 * covers whole aligned blocks of SL_HASHTREE_UNIT's page count, or when
 * the tree is sl_hashtree_new's. */
bool sl_hashtree_set_pages(sl_hashtree *t, const uint8_t *data, uint64_t first, uint64_t n);
/* CV i of level `level` (level 0: page i), or NULL when the tree has none
 * there. For tests. */
const sl_cv *sl_hashtree_cv(const sl_hashtree *t, unsigned level, uint64_t i);

/* Computes the levels above the pages from level 0: n_pages - 1 parent
 * compressions at most, SIMD-wide. False as sl_hashtree_set_pages. */
bool sl_hashtree_build(sl_hashtree *t);
/* The levels from `from` (>= 1) up, for the blocks that lie within pages
 * [first, first + n) only (their level from - 1 must be computed): threads
 * that hashed disjoint page ranges each build the blocks inside their own
 * (an aligned range of 2^j pages holds levels 1..j), then one thread builds
 * the levels above for all pages. Threads may build disjoint ranges at
 * once. False as sl_hashtree_set_pages. */
bool sl_hashtree_build_range(sl_hashtree *t, unsigned from, uint64_t first, uint64_t n);

/* Rehashes pages[0..n) (page numbers, ascending, no repeats, each below
 * n_pages) from blob (the whole input's bytes, page 0 at blob[0]) and
 * every CV above them: what a snapshot that differs from its parent in
 * those pages needs, in time that grows with n and log(n_pages), not with
 * the size. The other CVs must be current. The pages' own CVs are
 * computed on several threads when there are many
 * (sl_hashtree_set_page_list_threads). False as sl_hashtree_set_pages. */
bool sl_hashtree_update(sl_hashtree *t, const uint8_t *blob, const uint64_t *pages, size_t n);

/* Level 0 only of sl_hashtree_update: the CVs of pages[0..n) (as there),
 * on the calling thread. */
bool sl_hashtree_set_page_list(sl_hashtree *t, const uint8_t *blob, const uint64_t *pages, size_t n);

/* BLAKE3 of blob[0..blob_size) followed by tail[0..tail_len) (tail may be
 * NULL when tail_len is 0), from t's CVs, which must be current and be
 * those of blob's floor(blob_size / SL_HASHTREE_PAGE) whole pages (t may be
 * NULL when there are none). Reads only the bytes after the last whole
 * page, and the page itself when it is the only one and nothing follows
 * it (that page is then the root). A tree of another page count gives 32
 * zero bytes (no input's hash). Thread-safe for concurrent readers. */
void sl_hashtree_root(const sl_hashtree *t, const uint8_t *blob, uint64_t blob_size, const uint8_t *tail,
                      size_t tail_len, uint8_t out[SL_HASH_LEN]);

/* ---- hashing a whole input on every core (hashtree_threads.c) ---- */

/* What to hash and how to watch it. The callbacks are optional (NULL). */
typedef struct sl_hash_job {
    const uint8_t *blob; /* the input: blob, then tail */
    uint64_t blob_size;
    const uint8_t *tail;
    size_t tail_len;
    /* Called on the thread that is about to hash blob[off, off + len)
     * (page-aligned; any thread, concurrently): to prefault those pages. */
    void (*touch)(void *arg, uint64_t off, uint64_t len);
    /* Called on the calling thread only, in order: report(arg, k * every)
     * once every byte of the blob before k * every is hashed, for each k
     * with k * every < blob_size (0 first, before anything is hashed).
     * The hashing goes on, on the other threads, while it runs. */
    void (*report)(void *arg, uint64_t done);
    uint64_t every;       /* bytes; 0: SL_HASHTREE_UNIT */
    void *arg;            /* for touch and report */
    unsigned max_threads; /* 0: one per CPU this thread may run on (sched_getaffinity), capped */
    uint64_t thread_min;  /* bytes of blob per thread at least; 0: SL_HASHTREE_THREAD_MIN */
} sl_hash_job;

/* Pages a thread takes at a time: an aligned block of 2^6 pages (256 KiB). */
#define SL_HASHTREE_UNIT_LOG2 6u
#define SL_HASHTREE_UNIT ((uint64_t)SL_HASHTREE_PAGE << SL_HASHTREE_UNIT_LOG2)

/* BLAKE3 of the job's blob followed by its tail, into out, on up to one
 * thread per SL_HASHTREE_THREAD_MIN bytes of blob (the calling thread
 * among them; below that size a thread costs more than it saves) and at
 * most SL_HASHTREE_MAX_THREADS. When tree is not NULL, *tree receives the
 * input's page tree (its CVs all current; the caller frees it), or NULL
 * where there was no memory for it. The hash is computed in any case:
 * without the memory for a tree, on the calling thread alone; a thread
 * that cannot be created leaves its share to the others. The extra
 * threads block every signal but those a fault raises (SIGBUS, SIGSEGV,
 * SIGILL, SIGFPE), which reach them as on the calling thread: the SIGBUS
 * handler of snapfile_watch.c covers their reads of a loaded file.
 * Thread-safe: any number of jobs may run at once; no global state. */
void sl_hashtree_hash(const sl_hash_job *job, sl_hashtree **tree, uint8_t out[SL_HASH_LEN]);
#define SL_HASHTREE_THREAD_MIN ((uint64_t)1 << 20)
#define SL_HASHTREE_MAX_THREADS 32u

/* sl_hashtree_set_page_list on up to one thread per
 * SL_HASHTREE_LIST_THREAD_MIN pages (the calling thread among them; a
 * page not next to another hashes on 4 of BLAKE3's 16 SIMD lanes, about
 * 6 us on the build machines, against tens of microseconds to start a
 * thread) and per CPU, at most SL_HASHTREE_MAX_THREADS. Each thread takes
 * the pages of whole leaf blocks (SL_HASHTREE_UNIT), so no two write one
 * block. Signals as for sl_hashtree_hash. False when a block could not be
 * copied (out of memory); the CVs are then partly updated. */
bool sl_hashtree_set_page_list_threads(sl_hashtree *t, const uint8_t *blob, const uint64_t *pages, size_t n);
#define SL_HASHTREE_LIST_THREAD_MIN 128u

#endif
