/* BLAKE3 as a tree of 4 KiB pages (hashtree.h): per-page chaining values,
 * the levels above them, and the root merged from them and the bytes after
 * the last whole page, as BLAKE3 defines the tree (the BLAKE3 paper, §2.1
 * and §5.1.2). The compression itself is the official C implementation's:
 * its internal blake3_impl.h declares blake3_hash_many (many inputs at
 * once, SIMD-wide, with the dispatcher's choice of SSE4.1/AVX2/AVX-512)
 * and blake3_compress_in_place; this file only decides what to compress
 * with which counter and flags. */
#include "hashtree.h"

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

struct sl_hashtree {
    uint64_t n_pages;
    unsigned n_levels;             /* levels with at least one CV */
    sl_cv *level[MAX_LEVELS];      /* level k: n_pages >> k CVs, in cv[] */
    sl_cv cv[];
};

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

sl_hashtree *sl_hashtree_new(uint64_t n_pages)
{
    uint64_t total = 0;
    unsigned levels = 0;
    for (uint64_t c = n_pages; c; c >>= 1, levels++)
        total += c;
    if (total > (SIZE_MAX - sizeof(sl_hashtree)) / sizeof(sl_cv))
        return NULL;
    sl_hashtree *t = malloc(sizeof *t + (size_t)total * sizeof(sl_cv));
    if (!t)
        return NULL;
    t->n_pages = n_pages;
    t->n_levels = levels;
    sl_cv *p = t->cv;
    for (unsigned k = 0; k < levels; k++) {
        t->level[k] = p;
        p += n_pages >> k;
    }
    return t;
}

sl_hashtree *sl_hashtree_dup(const sl_hashtree *t)
{
    sl_hashtree *d = sl_hashtree_new(t->n_pages);
    if (d) /* same shape: level k is at the same index of cv[] */
        memcpy(d->cv, t->cv, (size_t)(t->n_levels ? t->level[t->n_levels - 1] + 1 - t->cv : 0) * sizeof(sl_cv));
    return d;
}

sl_hashtree *sl_hashtree_resized(const sl_hashtree *t, uint64_t n_pages, uint64_t keep)
{
    sl_hashtree *d = sl_hashtree_new(n_pages);
    if (!d)
        return NULL;
    if (keep > t->n_pages)
        keep = t->n_pages;
    for (unsigned k = 0; k < d->n_levels && k < t->n_levels; k++) {
        uint64_t whole = keep >> k; /* blocks of 2^k pages wholly below keep: the same bytes at the same place */
        if (whole > d->n_pages >> k)
            whole = d->n_pages >> k;
        memcpy(d->level[k], t->level[k], (size_t)whole * sizeof(sl_cv));
    }
    return d;
}

void sl_hashtree_free(sl_hashtree *t) { free(t); }
uint64_t sl_hashtree_n_pages(const sl_hashtree *t) { return t->n_pages; }
sl_cv *sl_hashtree_leaves(sl_hashtree *t) { return t->cv; }
const sl_cv *sl_hashtree_leaves_const(const sl_hashtree *t) { return t->cv; }

void sl_hashtree_build_range(sl_hashtree *t, unsigned from, uint64_t first, uint64_t n)
{
    uint64_t end = first + n;
    for (unsigned k = from ? from : 1; k < t->n_levels; k++) {
        /* The blocks of 2^k pages that lie wholly inside [first, end). */
        uint64_t lo = (first + ((uint64_t)1 << k) - 1) >> k, hi = end >> k;
        if (hi > t->n_pages >> k)
            hi = t->n_pages >> k;
        if (lo >= hi)
            return; /* no block of 2^k pages fits, so none larger does */
        parents(t->level[k - 1] + 2 * lo, hi - lo, t->level[k] + lo);
    }
}

void sl_hashtree_build(sl_hashtree *t) { sl_hashtree_build_range(t, 1, 0, t->n_pages); }

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

/* Up to BATCH_PARENTS changed pages: their CVs, then the path above them. */
static void update_batch(sl_hashtree *t, const uint8_t *blob, const uint64_t *pages, size_t n)
{
    uint64_t idx[BATCH_PARENTS];
    for (size_t i = 0, run; i < n; i += run) {
        for (run = 1; i + run < n && pages[i + run] == pages[i] + run; run++)
            ;
        sl_hashtree_pages(blob + pages[i] * SL_HASHTREE_PAGE, pages[i], run, t->level[0] + pages[i]);
    }
    memcpy(idx, pages, n * sizeof *idx);
    for (unsigned k = 1; k < t->n_levels && (n = parent_indexes(idx, n, t->n_pages >> k)); k++) {
        const uint8_t *in[BATCH_PARENTS];
        sl_cv out[BATCH_PARENTS];
        for (size_t i = 0; i < n; i++)
            in[i] = t->level[k - 1][2 * idx[i]].b;
        blake3_hash_many(in, n, 1, IV, 0, false, PARENT, 0, 0, out[0].b);
        for (size_t i = 0; i < n; i++)
            t->level[k][idx[i]] = out[i];
    }
}

/* A node shared by two batches is computed by each, the second time from
 * the first's CVs and its own: the result is the same as in one pass. */
void sl_hashtree_update(sl_hashtree *t, const uint8_t *blob, const uint64_t *pages, size_t n)
{
    for (size_t i = 0; i < n; i += BATCH_PARENTS)
        update_batch(t, blob, pages + i, n - i < BATCH_PARENTS ? n - i : BATCH_PARENTS);
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
        const sl_cv *cv = &t->level[k][(n >> k) - 1];
        if (k == low && !rest && !tail_len) { /* the last subtree: held back */
            output last = m.depth ? parent_output(&m.stack[--m.depth], cv) /* its CV is final */
                                  : parent_output(&t->level[k - 1][0], &t->level[k - 1][1]); /* the root */
            finish(&m, last, out);
            return;
        }
        push(&m, *cv, k + 2); /* 2^k pages are 2^(k+2) chunks */
    }
    merge_bytes(&m, rest ? blob + n * SL_HASHTREE_PAGE : NULL, rest, tail, tail_len, out);
}
