/* A version-5 snapshot file image taken apart into what a hostile edit
 * wants to change (docs/snapshot-format.md §9) and put back together: the
 * bytes up to the run table (meta, own pages, region records) as they are,
 * the run table and the content index as arrays. cf_join lays the sections
 * out again in file order and rewrites the header fields that say where
 * they are (runs and index offsets and sizes, file size); it does not
 * reseal: the caller edits the header further and calls sl_snapfile_reseal.
 * For tests/unit/test_snapchild.c and fuzz/fuzz_snapchild.c, which build
 * hostile child files; fields are read and written with le.h, as the
 * library does. */
#ifndef SL_TEST_CHILDFILE_H
#define SL_TEST_CHILDFILE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "le.h"
#include "snapfile_format.h"

typedef struct cf_run {
    uint64_t page, src;
    uint32_t count, level;
} cf_run;

typedef struct cf_entry {
    uint8_t hash[SL_HASH_LEN];
    uint64_t page;
} cf_entry;

typedef struct cf_file {
    uint8_t *head; /* [0, runs_offset): header, CPU state, name, own pages, region records */
    size_t head_len;
    cf_run *runs;
    size_t n_runs, cap_runs;
    cf_entry *index;
    size_t n_index, cap_index;
} cf_file;

static inline void cf_free(cf_file *c)
{
    free(c->head);
    free(c->runs);
    free(c->index);
    memset(c, 0, sizeof *c);
}

/* Room for n runs / entries (at least one, so the arrays are never NULL). */
static inline int cf_reserve(cf_file *c, size_t runs, size_t entries)
{
    if (runs >= c->cap_runs) {
        size_t cap = runs + 16;
        cf_run *r = realloc(c->runs, cap * sizeof *r);
        if (!r)
            return -1;
        c->runs = r;
        c->cap_runs = cap;
    }
    if (entries >= c->cap_index) {
        size_t cap = entries + 16;
        cf_entry *x = realloc(c->index, cap * sizeof *x);
        if (!x)
            return -1;
        c->index = x;
        c->cap_index = cap;
    }
    return 0;
}

/* Takes apart the well-formed version-5 file f[0..len) (one that save
 * wrote): -1 when its runs and index are not where §9 puts them. */
static inline int cf_split(cf_file *c, const uint8_t *f, size_t len)
{
    memset(c, 0, sizeof *c);
    if (len < SL_SNAPFILE_HEADER_SIZE || sl_get32(f + SF_VERSION) != 5)
        return -1;
    uint64_t ro = sl_get64(f + SF_RUNS_OFFSET), rs = sl_get64(f + SF_RUNS_SIZE);
    uint64_t io = sl_get64(f + SF_INDEX_OFFSET), is = sl_get64(f + SF_INDEX_SIZE);
    if (ro < SL_SNAPFILE_HEADER_SIZE || ro > len || rs > len - ro || rs % SL_SNAPFILE_RUN_SIZE || io != ro + rs ||
        is > len - io || is % SL_SNAPFILE_INDEX_ENTRY || io + is != len)
        return -1;
    size_t nr = rs / SL_SNAPFILE_RUN_SIZE, ni = is / SL_SNAPFILE_INDEX_ENTRY;
    c->head = malloc(ro);
    if (!c->head || cf_reserve(c, nr, ni)) {
        cf_free(c);
        return -1;
    }
    memcpy(c->head, f, ro);
    c->head_len = ro;
    for (size_t i = 0; i < nr; i++) {
        const uint8_t *r = f + ro + i * SL_SNAPFILE_RUN_SIZE;
        c->runs[i] = (cf_run){sl_get64(r + 0), sl_get64(r + 8), sl_get32(r + 16), sl_get32(r + 20)};
    }
    c->n_runs = nr;
    for (size_t i = 0; i < ni; i++) {
        const uint8_t *x = f + io + i * SL_SNAPFILE_INDEX_ENTRY;
        memcpy(c->index[i].hash, x, SL_HASH_LEN);
        c->index[i].page = sl_get64(x + SL_HASH_LEN);
    }
    c->n_index = ni;
    return 0;
}

/* The file again, sections in §9's order, the header's runs and index
 * fields and file size set to match (malloc'd; NULL without memory). */
static inline uint8_t *cf_join(const cf_file *c, size_t *len)
{
    size_t rs = c->n_runs * SL_SNAPFILE_RUN_SIZE, is = c->n_index * SL_SNAPFILE_INDEX_ENTRY;
    size_t n = c->head_len + rs + is;
    uint8_t *f = malloc(n ? n : 1);
    if (!f)
        return NULL;
    memcpy(f, c->head, c->head_len);
    uint8_t *r = f + c->head_len;
    for (size_t i = 0; i < c->n_runs; i++, r += SL_SNAPFILE_RUN_SIZE) {
        sl_put64(r + 0, c->runs[i].page);
        sl_put64(r + 8, c->runs[i].src);
        sl_put32(r + 16, c->runs[i].count);
        sl_put32(r + 20, c->runs[i].level);
    }
    for (size_t i = 0; i < c->n_index; i++, r += SL_SNAPFILE_INDEX_ENTRY) {
        memcpy(r, c->index[i].hash, SL_HASH_LEN);
        sl_put64(r + SL_HASH_LEN, c->index[i].page);
    }
    if (c->head_len >= SL_SNAPFILE_HEADER_SIZE) {
        sl_put64(f + SF_RUNS_OFFSET, c->head_len);
        sl_put64(f + SF_RUNS_SIZE, rs);
        sl_put64(f + SF_INDEX_OFFSET, c->head_len + rs);
        sl_put64(f + SF_INDEX_SIZE, is);
        sl_put64(f + SF_FILE_SIZE, n);
    }
    *len = n;
    return f;
}

/* Inserts run r at position at (<= n_runs); removes the one at `at`. */
static inline int cf_insert_run(cf_file *c, size_t at, cf_run r)
{
    if (at > c->n_runs || cf_reserve(c, c->n_runs + 1, c->n_index))
        return -1;
    memmove(c->runs + at + 1, c->runs + at, (c->n_runs - at) * sizeof *c->runs);
    c->runs[at] = r;
    c->n_runs++;
    return 0;
}

static inline void cf_remove_run(cf_file *c, size_t at)
{
    if (at >= c->n_runs)
        return;
    memmove(c->runs + at, c->runs + at + 1, (c->n_runs - at - 1) * sizeof *c->runs);
    c->n_runs--;
}

/* The run that fills logical page `page`, or -1. */
static inline long cf_run_of(const cf_file *c, uint64_t page)
{
    for (size_t i = 0; i < c->n_runs; i++)
        if (page >= c->runs[i].page && page - c->runs[i].page < c->runs[i].count)
            return (long)i;
    return -1;
}

/* The first run at `level`, or -1. */
static inline long cf_run_at_level(const cf_file *c, uint32_t level)
{
    for (size_t i = 0; i < c->n_runs; i++)
        if (c->runs[i].level == level)
            return (long)i;
    return -1;
}

#endif
