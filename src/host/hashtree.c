/* BLAKE3 as a tree of 4 KiB pages (hashtree.h): per-page chaining values,
 * the levels above them, and the root merged from them and the bytes after
 * the last whole page, as BLAKE3 defines the tree (the BLAKE3 paper, §2.1
 * and §5.1.2). The compression itself is the official C implementation's:
 * its internal blake3_impl.h declares blake3_hash_many (many inputs at
 * once, SIMD-wide, with the dispatcher's choice of SSE4.1/AVX2/AVX-512)
 * and blake3_compress_in_place; this file only decides what to compress
 * with which counter and flags. */
#include "hashtree.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "blake3_impl.h"

#define CHUNKS_PER_PAGE (SL_HASHTREE_PAGE / BLAKE3_CHUNK_LEN)
#define BLOCKS_PER_CHUNK (BLAKE3_CHUNK_LEN / BLAKE3_BLOCK_LEN)
/* Pages per blake3_hash_many call: 64 chunks, four of AVX-512's 16-wide
 * rounds, with everything on the stack. */
#define BATCH_PAGES 16u
/* Parents per blake3_hash_many call (pointers on the stack). */
#define BATCH_PARENTS 64u
/* Levels of a tree: a page count below 2^64 has at most 64. */
#define MAX_LEVELS 64u

/* The CVs of a level are kept in chunks of CHUNK_CVS, so that a tree made
 * from another one (sl_hashtree_dup, sl_hashtree_resized) shares the
 * chunks it does not change and copies only those it writes: a snapshot
 * taken as its parent plus k changed pages pays for k paths of chunks, not
 * for a copy of its parent's whole tree. Chunks are reference-counted; one
 * with a single reference belongs to its tree alone and is written in
 * place. CHUNK_CVS is SL_HASHTREE_UNIT's page count, so that the threads of
 * sl_hashtree_hash, one aligned unit each, write disjoint leaf chunks. */
#define CHUNK_LOG2 SL_HASHTREE_UNIT_LOG2
#define CHUNK_CVS (1u << CHUNK_LOG2)

typedef struct chunk {
    _Atomic uint32_t refs;
    uint32_t n; /* CVs it holds: CHUNK_CVS but in a level's last chunk */
    sl_cv cv[];
} chunk;

struct sl_hashtree {
    uint64_t n_pages;
    unsigned n_levels;         /* levels with at least one CV */
    chunk **level[MAX_LEVELS]; /* level k: n_pages >> k CVs, in chunks, in ptr[] */
    chunk *ptr[];
};

static uint64_t level_cvs(const sl_hashtree *t, unsigned k) { return t->n_pages >> k; }
static uint64_t level_chunks(const sl_hashtree *t, unsigned k)
{
    return (level_cvs(t, k) + CHUNK_CVS - 1) >> CHUNK_LOG2;
}
/* The CVs chunk i of level k holds. */
static uint32_t chunk_cvs(const sl_hashtree *t, unsigned k, uint64_t i)
{
    uint64_t left = level_cvs(t, k) - (i << CHUNK_LOG2);
    return left < CHUNK_CVS ? (uint32_t)left : CHUNK_CVS;
}

static chunk *chunk_new(uint32_t n)
{
    chunk *c = malloc(sizeof *c + (size_t)n * sizeof(sl_cv));
    if (c) {
        atomic_init(&c->refs, 1);
        c->n = n;
    }
    return c;
}

/* Release ordering: a tree that copied a shared chunk has read it before
 * it lets go, and the last owner frees (or writes in place) after that. */
static void chunk_put(chunk *c)
{
    if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        free(c);
}

static const sl_cv *cv_at(const sl_hashtree *t, unsigned k, uint64_t i)
{
    return &t->level[k][i >> CHUNK_LOG2]->cv[i & (CHUNK_CVS - 1)];
}

/* CV i of level k to write, and the rest of its chunk after it: the chunk
 * is copied first when another tree shares it; NULL when there is no
 * memory for the copy. A chunk of the tree's own never fails. */
static sl_cv *cv_mut(sl_hashtree *t, unsigned k, uint64_t i)
{
    chunk **slot = &t->level[k][i >> CHUNK_LOG2], *c = *slot;
    if (atomic_load_explicit(&c->refs, memory_order_acquire) != 1) {
        chunk *d = chunk_new(c->n);
        if (!d)
            return NULL;
        memcpy(d->cv, c->cv, (size_t)c->n * sizeof(sl_cv));
        *slot = d;
        chunk_put(c);
        c = d;
    }
    return &c->cv[i & (CHUNK_CVS - 1)];
}

/* n parents, each of two adjacent CVs of `children`, into out[0..n). */
static void parents(const sl_cv *children, uint64_t n, sl_cv *out)
{
    const uint8_t *in[BATCH_PARENTS];
    while (n) {
        size_t b = n < BATCH_PARENTS ? (size_t)n : BATCH_PARENTS;
        for (size_t i = 0; i < b; i++)
            in[i] = children[2 * i].b;
        blake3_hash_many(in, b, 1, IV, 0, false, PARENT, 0, 0, out->b);
        children += 2 * b;
        out += b;
        n -= b;
    }
}

void sl_hashtree_pages(const uint8_t *data, uint64_t first, uint64_t n, sl_cv *out)
{
    const uint8_t *in[BATCH_PAGES * CHUNKS_PER_PAGE];
    sl_cv chunks[BATCH_PAGES * CHUNKS_PER_PAGE], halves[BATCH_PAGES * 2];
    while (n) {
        size_t b = n < BATCH_PAGES ? (size_t)n : BATCH_PAGES;
        for (size_t i = 0; i < b * CHUNKS_PER_PAGE; i++)
            in[i] = data + i * BLAKE3_CHUNK_LEN;
        /* Each chunk's counter is its index in the whole input: that is
         * where a page's position enters its CV. */
        blake3_hash_many(in, b * CHUNKS_PER_PAGE, BLOCKS_PER_CHUNK, IV, first * CHUNKS_PER_PAGE, true, 0,
                         CHUNK_START, CHUNK_END, chunks[0].b);
        parents(chunks, 2 * b, halves);
        parents(halves, b, out);
        data += b * SL_HASHTREE_PAGE;
        first += b;
        out += b;
        n -= b;
    }
}

/* A tree of n_pages pages with every chunk pointer NULL. */
static sl_hashtree *skeleton(uint64_t n_pages)
{
    uint64_t total = 0;
    unsigned levels = 0;
    for (uint64_t c = n_pages; c; c >>= 1, levels++)
        total += (c + CHUNK_CVS - 1) >> CHUNK_LOG2;
    if (total > (SIZE_MAX - sizeof(sl_hashtree)) / sizeof(chunk *))
        return NULL;
    sl_hashtree *t = calloc(1, sizeof *t + (size_t)total * sizeof(chunk *));
    if (!t)
        return NULL;
    t->n_pages = n_pages;
    t->n_levels = levels;
    chunk **p = t->ptr;
    for (unsigned k = 0; k < levels; k++) {
        t->level[k] = p;
        p += level_chunks(t, k);
    }
    return t;
}

/* Fresh chunks for every slot still NULL; false when out of memory. */
static bool fill(sl_hashtree *t)
{
    for (unsigned k = 0; k < t->n_levels; k++)
        for (uint64_t i = 0; i < level_chunks(t, k); i++)
            if (!t->level[k][i] && !(t->level[k][i] = chunk_new(chunk_cvs(t, k, i))))
                return false;
    return true;
}

sl_hashtree *sl_hashtree_new(uint64_t n_pages)
{
    sl_hashtree *t = skeleton(n_pages);
    if (t && !fill(t)) {
        sl_hashtree_free(t);
        return NULL;
    }
    return t;
}

sl_hashtree *sl_hashtree_dup(const sl_hashtree *t) { return sl_hashtree_resized(t, t->n_pages, t->n_pages); }

sl_hashtree *sl_hashtree_resized(const sl_hashtree *t, uint64_t n_pages, uint64_t keep)
{
    sl_hashtree *d = skeleton(n_pages);
    if (!d)
        return NULL;
    if (keep > t->n_pages)
        keep = t->n_pages;
    for (unsigned k = 0; k < d->n_levels && k < t->n_levels; k++) {
        uint64_t whole = keep >> k; /* blocks of 2^k pages wholly below keep: the same bytes at the same place */
        if (whole > level_cvs(d, k))
            whole = level_cvs(d, k);
        for (uint64_t i = 0; i << CHUNK_LOG2 < whole; i++) {
            chunk *c = t->level[k][i];
            uint32_t n = chunk_cvs(d, k, i);
            if (c->n == n && whole - (i << CHUNK_LOG2) >= n) { /* every CV the same: shared */
                atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
                d->level[k][i] = c;
                continue;
            }
            uint64_t same = whole - (i << CHUNK_LOG2);
            if (!(d->level[k][i] = chunk_new(n))) {
                sl_hashtree_free(d);
                return NULL;
            }
            memcpy(d->level[k][i]->cv, c->cv, (size_t)(same < n ? same : n) * sizeof(sl_cv));
        }
    }
    if (!fill(d)) {
        sl_hashtree_free(d);
        return NULL;
    }
    return d;
}

void sl_hashtree_free(sl_hashtree *t)
{
    if (!t)
        return;
    for (unsigned k = 0; k < t->n_levels; k++)
        for (uint64_t i = 0; i < level_chunks(t, k); i++)
            chunk_put(t->level[k][i]);
    free(t);
}

uint64_t sl_hashtree_n_pages(const sl_hashtree *t) { return t->n_pages; }

bool sl_hashtree_set_pages(sl_hashtree *t, const uint8_t *data, uint64_t first, uint64_t n)
{
    while (n) { /* a chunk at a time */
        uint64_t len = CHUNK_CVS - (first & (CHUNK_CVS - 1));
        if (len > n)
            len = n;
        sl_cv *out = cv_mut(t, 0, first);
        if (!out)
            return false;
        sl_hashtree_pages(data, first, len, out);
        data += len * SL_HASHTREE_PAGE;
        first += len;
        n -= len;
    }
    return true;
}

const sl_cv *sl_hashtree_cv(const sl_hashtree *t, unsigned level, uint64_t i)
{
    return level < t->n_levels && i < level_cvs(t, level) ? cv_at(t, level, i) : NULL;
}

bool sl_hashtree_build_range(sl_hashtree *t, unsigned from, uint64_t first, uint64_t n)
{
    uint64_t end = first + n;
    for (unsigned k = from ? from : 1; k < t->n_levels; k++) {
        /* The blocks of 2^k pages that lie wholly inside [first, end). */
        uint64_t lo = (first + ((uint64_t)1 << k) - 1) >> k, hi = end >> k;
        if (hi > level_cvs(t, k))
            hi = level_cvs(t, k);
        if (lo >= hi)
            return true; /* no block of 2^k pages fits, so none larger does */
        /* Half a chunk of parents has its children in one chunk below. */
        for (uint64_t i = lo, run; i < hi; i += run) {
            uint64_t half_end = (i | (CHUNK_CVS / 2 - 1)) + 1;
            run = (hi < half_end ? hi : half_end) - i;
            sl_cv *out = cv_mut(t, k, i);
            if (!out)
                return false;
            parents(cv_at(t, k - 1, 2 * i), run, out);
        }
    }
    return true;
}

bool sl_hashtree_build(sl_hashtree *t) { return sl_hashtree_build_range(t, 1, 0, t->n_pages); }

/* The parents of idx[0..n) (ascending, no repeats) one level up: written
 * into idx, ascending, no repeats, only those the level holds; their count. */
static size_t parent_indexes(uint64_t *idx, size_t n, uint64_t count)
{
    size_t m = 0;
    for (size_t i = 0; i < n && idx[i] >> 1 < count; i++)
        if (m == 0 || idx[m - 1] != idx[i] >> 1)
            idx[m++] = idx[i] >> 1;
    return m;
}

bool sl_hashtree_set_page_list(sl_hashtree *t, const uint8_t *blob, const uint64_t *pages, size_t n)
{
    for (size_t i = 0, run; i < n; i += run) {
        for (run = 1; i + run < n && pages[i + run] == pages[i] + run; run++)
            ;
        if (!sl_hashtree_set_pages(t, blob + pages[i] * SL_HASHTREE_PAGE, pages[i], run))
            return false;
    }
    return true;
}

/* Up to BATCH_PARENTS changed pages, whose CVs are current: the path above
 * them. */
static bool update_batch(sl_hashtree *t, const uint64_t *pages, size_t n)
{
    uint64_t idx[BATCH_PARENTS];
    memcpy(idx, pages, n * sizeof *idx);
    for (unsigned k = 1; k < t->n_levels && (n = parent_indexes(idx, n, level_cvs(t, k))); k++) {
        const uint8_t *in[BATCH_PARENTS];
        sl_cv out[BATCH_PARENTS];
        for (size_t i = 0; i < n; i++)
            in[i] = cv_at(t, k - 1, 2 * idx[i])->b; /* an even CV and the next share a chunk */
        blake3_hash_many(in, n, 1, IV, 0, false, PARENT, 0, 0, out[0].b);
        for (size_t i = 0; i < n; i++) {
            sl_cv *cv = cv_mut(t, k, idx[i]);
            if (!cv)
                return false;
            *cv = out[i];
        }
    }
    return true;
}

/* A node shared by two batches is computed by each, the second time from
 * the first's CVs and its own: the result is the same as in one pass. */
bool sl_hashtree_update(sl_hashtree *t, const uint8_t *blob, const uint64_t *pages, size_t n)
{
    if (!sl_hashtree_set_page_list_threads(t, blob, pages, n))
        return false;
    for (size_t i = 0; i < n; i += BATCH_PARENTS)
        if (!update_batch(t, pages + i, n - i < BATCH_PARENTS ? n - i : BATCH_PARENTS))
            return false;
    return true;
}

/* ---- the root ----
 * BLAKE3's incremental merge (the paper's §5.1.2, blake3_hasher's CV
 * stack): subtrees are pushed left to right, two adjacent equal ones
 * merge as soon as the total says they are complete, and the last subtree
 * is held back, since the root is its parent chain finalised with ROOT. */

typedef struct output {
    uint32_t cv[8];
    uint8_t block[BLAKE3_BLOCK_LEN];
    uint8_t block_len, flags;
    uint64_t counter;
} output;

typedef struct merge {
    sl_cv stack[MAX_LEVELS];
    unsigned depth;
    uint64_t chunks; /* chunks pushed so far */
} merge;

static sl_cv output_cv(const output *o, uint8_t extra_flags)
{
    uint32_t cv[8];
    sl_cv out;
    memcpy(cv, o->cv, sizeof cv);
    blake3_compress_in_place(cv, o->block, o->block_len, o->counter, (uint8_t)(o->flags | extra_flags));
    store_cv_words(out.b, cv);
    return out;
}

static output parent_output(const sl_cv *left, const sl_cv *right)
{
    output o = {.block_len = BLAKE3_BLOCK_LEN, .flags = PARENT, .counter = 0};
    memcpy(o.cv, IV, sizeof o.cv);
    memcpy(o.block, left->b, SL_HASH_LEN);
    memcpy(o.block + SL_HASH_LEN, right->b, SL_HASH_LEN);
    return o;
}

/* A chunk of len bytes (0..1024) with every block compressed but the last,
 * which decides whether it is the root. */
static output chunk_output(const uint8_t *data, size_t len, uint64_t counter)
{
    size_t blocks = len ? (len + BLAKE3_BLOCK_LEN - 1) / BLAKE3_BLOCK_LEN : 1;
    output o = {.counter = counter, .flags = CHUNK_START};
    memcpy(o.cv, IV, sizeof o.cv);
    for (size_t b = 0; b + 1 < blocks; b++, data += BLAKE3_BLOCK_LEN, len -= BLAKE3_BLOCK_LEN) {
        blake3_compress_in_place(o.cv, data, BLAKE3_BLOCK_LEN, counter, o.flags);
        o.flags = 0;
    }
    memset(o.block, 0, sizeof o.block);
    if (len) /* an empty input's one chunk may have no bytes to point at */
        memcpy(o.block, data, len);
    o.block_len = (uint8_t)len;
    o.flags |= CHUNK_END;
    return o;
}

/* A subtree of 2^k chunks whose place is aligned, after m->chunks. */
static void push(merge *m, sl_cv cv, unsigned k)
{
    m->chunks += (uint64_t)1 << k;
    for (uint64_t total = m->chunks >> k; !(total & 1); total >>= 1) {
        output o = parent_output(&m->stack[--m->depth], &cv);
        cv = output_cv(&o, 0);
    }
    m->stack[m->depth++] = cv;
}

/* The root from the held-back last subtree and the stack beneath it. */
static void finish(merge *m, output last, uint8_t out[SL_HASH_LEN])
{
    while (m->depth) {
        sl_cv cv = output_cv(&last, 0);
        last = parent_output(&m->stack[--m->depth], &cv);
    }
    sl_cv root = output_cv(&last, ROOT);
    memcpy(out, root.b, SL_HASH_LEN);
}

/* The bytes after the last whole page: rest[0..rest_len), then tail, in
 * chunks; the last chunk is held back and ends the merge. */
static void merge_bytes(merge *m, const uint8_t *rest, size_t rest_len, const uint8_t *tail, size_t tail_len,
                        uint8_t out[SL_HASH_LEN])
{
    uint8_t buf[BLAKE3_CHUNK_LEN];
    size_t left = rest_len + tail_len;
    if (!left) { /* the input ends with the pages, or is empty: one empty chunk */
        finish(m, chunk_output(NULL, 0, m->chunks), out);
        return;
    }
    do {
        size_t len = left < BLAKE3_CHUNK_LEN ? left : BLAKE3_CHUNK_LEN;
        const uint8_t *p;
        if (len <= rest_len) {
            p = rest;
            rest += len;
            rest_len -= len;
        } else if (!rest_len) {
            p = tail;
            tail += len;
            tail_len -= len;
        } else { /* the chunk straddles the end of the blob */
            memcpy(buf, rest, rest_len);
            memcpy(buf + rest_len, tail, len - rest_len);
            tail += len - rest_len;
            tail_len -= len - rest_len;
            rest_len = 0;
            p = buf;
        }
        output o = chunk_output(p, len, m->chunks);
        left -= len;
        if (!left) {
            finish(m, o, out);
            return;
        }
        push(m, output_cv(&o, 0), 0);
    } while (true);
}

void sl_hashtree_root(const sl_hashtree *t, const uint8_t *blob, uint64_t blob_size, const uint8_t *tail,
                      size_t tail_len, uint8_t out[SL_HASH_LEN])
{
    uint64_t n = blob_size / SL_HASHTREE_PAGE;
    size_t rest = (size_t)(blob_size % SL_HASHTREE_PAGE);
    if (n && (!t || t->n_pages != n)) { /* not the tree of this blob: a value no identity has */
        memset(out, 0, SL_HASH_LEN);
        return;
    }
    if (n == 1 && !rest && !tail_len) { /* the one page is the root: BLAKE3 of it, whole */
        blake3_hasher h;
        blake3_hasher_init(&h);
        blake3_hasher_update(&h, blob, SL_HASHTREE_PAGE);
        blake3_hasher_finalize(&h, out, SL_HASH_LEN);
        return;
    }
    merge m = {.depth = 0, .chunks = 0};
    /* The pages as their largest aligned blocks, largest first: block k
     * (2^k pages) is the last one of level k when bit k of n is set. */
    unsigned low = n ? (unsigned)__builtin_ctzll(n) : 0;
    for (unsigned k = t ? t->n_levels : 0; k-- > 0;) {
        if (!(n >> k & 1))
            continue;
        const sl_cv *cv = cv_at(t, k, (n >> k) - 1);
        if (k == low && !rest && !tail_len) { /* the last subtree: held back */
            output last = m.depth ? parent_output(&m.stack[--m.depth], cv) /* its CV is final */
                                  : parent_output(cv_at(t, k - 1, 0), cv_at(t, k - 1, 1)); /* the root */
            finish(&m, last, out);
            return;
        }
        push(&m, *cv, k + 2); /* 2^k pages are 2^(k+2) chunks */
    }
    merge_bytes(&m, rest ? blob + n * SL_HASHTREE_PAGE : NULL, rest, tail, tail_len, out);
}
