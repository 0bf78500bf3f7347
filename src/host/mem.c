/* A sandbox's guest memory (see mem.h): scratch, the dirty-page record, and
 * restore, which puts a snapshot's tables and bookkeeping into scratch. */
#include "mem.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bookkeeping.h"
#include "snapfile.h"

int sl_mem_create(sl_mem **out, const sl_snapshot *snap, sl_errbuf *e)
{
    sl_mem *m = calloc(1, sizeof *m);
    if (!m)
        return sl_err(e, SL_ENOMEM, "out of memory");
    m->layout = *sl_snapshot_layout(snap);
    m->family = sl_snapshot_family(snap);
    bool have_set = sl_pageset_init(&m->dirty_set, m->layout.scratch_size / SL_PAGE_SIZE);
    /* Untouched scratch costs nothing: the kernel hands out zero pages on
     * first touch, which is also why a fresh sandbox needs no zeroing. */
    m->scratch = mmap(NULL, m->layout.scratch_size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m->scratch == MAP_FAILED || !have_set) {
        if (m->scratch != MAP_FAILED)
            munmap(m->scratch, m->layout.scratch_size);
        sl_pageset_free(&m->dirty_set);
        free(m);
        return sl_err(e, SL_ENOMEM, "cannot map %llu bytes of scratch",
                      (unsigned long long)sl_snapshot_layout(snap)->scratch_size);
    }
    *out = m;
    return 0;
}

void sl_mem_free(sl_mem *m)
{
    if (!m)
        return;
    munmap(m->scratch, m->layout.scratch_size);
    sl_pageset_free(&m->dirty_set);
    free(m);
}

void sl_mem_mark_dirty(sl_mem *m, uint64_t gpa, uint64_t len)
{
    const sl_layout *l = &m->layout;
    if (!len || gpa < l->scratch_gpa || gpa - l->scratch_gpa >= l->scratch_size)
        return;
    uint64_t first = (gpa - l->scratch_gpa) / SL_PAGE_SIZE;
    uint64_t room = l->scratch_size - (gpa - l->scratch_gpa);
    uint64_t last = (gpa - l->scratch_gpa + (len < room ? len : room) - 1) / SL_PAGE_SIZE;
    sl_pageset_add_range(&m->dirty_set, first, last - first + 1);
}

void sl_mem_merge_dirty(sl_mem *m, const uint64_t *bitmap)
{
    sl_pageset_merge(&m->dirty_set, bitmap);
}

uint64_t sl_mem_dirty_words(const sl_mem *m)
{
    return m->dirty_set.n_words;
}

/* mincore() answers for a private anonymous mapping whether each page has
 * been given memory: written by the guest or by sandlet since the mapping
 * was made, and not dropped since. A chunk at a time, so the vector stays
 * on the stack whatever the scratch size. */
uint64_t sl_mem_resident_pages(const sl_mem *m)
{
    unsigned char vec[4096];
    uint64_t pages = m->layout.scratch_size / SL_PAGE_SIZE, n = 0;
    for (uint64_t p = 0; p < pages; p += sizeof vec) {
        uint64_t k = pages - p < sizeof vec ? pages - p : sizeof vec;
        if (mincore(m->scratch + p * SL_PAGE_SIZE, k * SL_PAGE_SIZE, vec) != 0)
            return 0;
        for (uint64_t i = 0; i < k; i++)
            n += vec[i] & 1;
    }
    return n;
}

uint64_t sl_mem_dirty_pages(const sl_mem *m)
{
    return sl_pageset_count(&m->dirty_set);
}

static bool within(uint64_t gpa, uint64_t len, uint64_t base, uint64_t size)
{
    return gpa >= base && gpa - base <= size && len <= size - (gpa - base);
}

const uint8_t *sl_mem_read_ptr(const sl_mem *m, uint64_t gpa, uint64_t len)
{
    if (m->snap && within(gpa, len, SL_BASE_ADDRESS, sl_snapshot_memory_size(m->snap)))
        return sl_snapshot_visible(m->snap) + (gpa - SL_BASE_ADDRESS);
    if (within(gpa, len, m->layout.scratch_gpa, m->layout.scratch_size))
        return m->scratch + (gpa - m->layout.scratch_gpa);
    return NULL;
}

uint8_t *sl_mem_write_ptr(sl_mem *m, uint64_t gpa, uint64_t len)
{
    if (!within(gpa, len, m->layout.scratch_gpa, m->layout.scratch_size))
        return NULL;
    sl_mem_mark_dirty(m, gpa, len);
    return m->scratch + (gpa - m->layout.scratch_gpa);
}

uint64_t sl_mem_bk_get(const sl_mem *m, unsigned slot)
{
    return sl_get64(m->scratch + (m->layout.bk_gpa - m->layout.scratch_gpa) + slot);
}

void sl_mem_bk_set(sl_mem *m, unsigned slot, uint64_t v)
{
    sl_put64(sl_mem_write_ptr(m, m->layout.bk_gpa + slot, 8), v);
}

/* Zeroes the dirty pages, in runs; long runs are handed back to the kernel
 * (MADV_DONTNEED re-zeroes on next touch) instead of being written. */
static uint64_t reset_dirty(sl_mem *m)
{
    uint64_t zeroed = 0;
    for (uint64_t p = 0, run; sl_pageset_take_run(&m->dirty_set, &p, &run); p += run) {
        uint8_t *at = m->scratch + p * SL_PAGE_SIZE;
        if (run >= 64)
            madvise(at, run * SL_PAGE_SIZE, MADV_DONTNEED);
        else
            memset(at, 0, run * SL_PAGE_SIZE);
        zeroed += run;
    }
    return zeroed;
}

/* Puts the snapshot's page tables into scratch. When the same tables are
 * already there (the common "reset after every call" case), only the table
 * pages the guest dirtied are copied back, so the cost follows the dirtied
 * pages and not the size of the tables (which grow with the scratch mapping).
 * Copied pages leave the dirty set: they need no zeroing. */
static void copy_tables(sl_mem *m, const sl_snapshot *s)
{
    const sl_layout *l = &m->layout;
    uint64_t pt_size = sl_snapshot_page_table_size(s);
    uint64_t first = (l->pt_gpa - l->scratch_gpa) / SL_PAGE_SIZE, n = pt_size / SL_PAGE_SIZE;
    const uint8_t *src = sl_snapshot_tables(s);
    uint8_t *dst = m->scratch + first * SL_PAGE_SIZE;
    m->last_tables_copied = 0;
    bool same = m->snap && m->tables_size == pt_size &&
                memcmp(m->tables_hash, sl_snapshot_hash(s), SL_HASH_LEN) == 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t p = first + i;
        if (!same || sl_pageset_has(&m->dirty_set, p)) {
            memcpy(dst + i * SL_PAGE_SIZE, src + i * SL_PAGE_SIZE, SL_PAGE_SIZE);
            m->last_tables_copied++;
        }
        sl_pageset_remove(&m->dirty_set, p);
    }
    /* Table pages beyond the new tables' end may hold an older, larger set. */
    if (!same && m->tables_size > pt_size)
        sl_mem_mark_dirty(m, l->pt_gpa + pt_size, m->tables_size - pt_size);
}

int sl_mem_restore(sl_mem *m, const sl_snapshot *s, sl_errbuf *e)
{
    const sl_layout *l = &m->layout;
    unsigned n_roots = sl_snapshot_n_roots(s);
    int rc = sl_family_check(s, m->family, m->layout.arch, e);
    if (rc)
        return rc;
    if (sl_snapshot_page_table_size(s) > l->exc_stack_gpa - l->pt_gpa || n_roots == 0 || n_roots > SL_BK_MAX_ROOTS)
        return sl_err(e, SL_ERANGE, "snapshot page tables do not fit this sandbox's scratch");
    copy_tables(m, s);
    /* A table page the file lost was read as zeros (snapfile_watch.c): the tables
     * in scratch are not the snapshot's, whatever their identity says. */
    if (sl_snapfile_lost(s)) {
        sl_mem_forget_tables(m);
        return sl_snapfile_check(s, "while restore copied its page tables", e);
    }
    m->last_reset_pages = reset_dirty(m);
    m->snap = s;
    memcpy(m->tables_hash, sl_snapshot_hash(s), SL_HASH_LEN);
    m->tables_size = sl_snapshot_page_table_size(s);
    m->root = sl_snapshot_root(s, sl_snapshot_cur_root(s));
    m->generation = sl_snapshot_generation(s);
    sl_bk_write_restore(m, s);
    return 0;
}

void sl_mem_forget_tables(sl_mem *m)
{
    const sl_layout *l = &m->layout;
    sl_mem_mark_dirty(m, l->pt_gpa, l->exc_stack_gpa - l->pt_gpa);
}

void sl_mem_guest_state(const sl_mem *m, sl_guest_state *st)
{
    memset(st, 0, sizeof *st);
    st->layout = &m->layout;
    st->snap_mem = m->snap ? sl_snapshot_visible(m->snap) : NULL;
    st->snap_size = m->snap ? sl_snapshot_memory_size(m->snap) : 0;
    st->scratch = m->scratch;
    st->family = m->family;
    st->generation = m->generation;
}
