#include "mem.h"

#include "snapfile.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int sl_mem_create(sl_mem **out, const sl_snapshot *snap, sl_errbuf *e)
{
    sl_mem *m = calloc(1, sizeof *m);
    if (!m)
        return sl_err(e, SL_ENOMEM, "out of memory");
    m->layout = snap->layout;
    m->config_id = snap->config_id;
    uint64_t pages = m->layout.scratch_size / SL_PAGE_SIZE;
    m->dirty_words = (pages + 63) / 64;
    m->dirty = calloc(m->dirty_words, sizeof *m->dirty);
    /* Untouched scratch costs nothing: the kernel hands out zero pages on
     * first touch, which is also why a fresh sandbox needs no zeroing. */
    m->scratch = mmap(NULL, m->layout.scratch_size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m->scratch == MAP_FAILED || !m->dirty) {
        if (m->scratch != MAP_FAILED)
            munmap(m->scratch, m->layout.scratch_size);
        free(m->dirty);
        free(m);
        return sl_err(e, SL_ENOMEM, "cannot map %llu bytes of scratch",
                      (unsigned long long)snap->layout.scratch_size);
    }
    *out = m;
    return 0;
}

void sl_mem_free(sl_mem *m)
{
    if (!m)
        return;
    munmap(m->scratch, m->layout.scratch_size);
    free(m->dirty);
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
    for (uint64_t p = first; p <= last; p++)
        m->dirty[p / 64] |= 1ull << (p % 64);
}

void sl_mem_merge_dirty(sl_mem *m, const uint64_t *bitmap)
{
    for (uint64_t i = 0; i < m->dirty_words; i++)
        m->dirty[i] |= bitmap[i];
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
    uint64_t n = 0;
    for (uint64_t i = 0; i < m->dirty_words; i++)
        n += (uint64_t)__builtin_popcountll(m->dirty[i]);
    return n;
}

static bool within(uint64_t gpa, uint64_t len, uint64_t base, uint64_t size)
{
    return gpa >= base && gpa - base <= size && len <= size - (gpa - base);
}

const uint8_t *sl_mem_read_ptr(const sl_mem *m, uint64_t gpa, uint64_t len)
{
    if (m->snap && within(gpa, len, SL_BASE_ADDRESS, m->snap->visible_size))
        return m->snap->mem + (gpa - SL_BASE_ADDRESS);
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
    uint64_t pages = m->layout.scratch_size / SL_PAGE_SIZE, zeroed = 0;
    for (uint64_t w = 0; w < m->dirty_words; w++) {
        while (m->dirty[w]) {
            uint64_t p = w * 64 + (uint64_t)__builtin_ctzll(m->dirty[w]);
            uint64_t run = 0;
            while (p + run < pages && (m->dirty[(p + run) / 64] >> ((p + run) % 64) & 1)) {
                m->dirty[(p + run) / 64] &= ~(1ull << ((p + run) % 64));
                run++;
            }
            uint8_t *at = m->scratch + p * SL_PAGE_SIZE;
            if (run >= 64)
                madvise(at, run * SL_PAGE_SIZE, MADV_DONTNEED);
            else
                memset(at, 0, run * SL_PAGE_SIZE);
            zeroed += run;
        }
    }
    return zeroed;
}

static bool is_dirty(const sl_mem *m, uint64_t page)
{
    return m->dirty[page / 64] >> (page % 64) & 1;
}

/* Puts the snapshot's page tables into scratch. When the same tables are
 * already there (the common "reset after every call" case), only the table
 * pages the guest dirtied are copied back, so the cost follows the dirtied
 * pages and not the size of the tables (which grow with the scratch mapping).
 * Copied pages leave the dirty set: they need no zeroing. */
static void copy_tables(sl_mem *m, const sl_snapshot *s)
{
    const sl_layout *l = &m->layout;
    uint64_t first = (l->pt_gpa - l->scratch_gpa) / SL_PAGE_SIZE, n = s->pt_size / SL_PAGE_SIZE;
    const uint8_t *src = s->mem + s->visible_size;
    uint8_t *dst = m->scratch + first * SL_PAGE_SIZE;
    m->last_tables_copied = 0;
    bool same = m->snap && m->tables_size == s->pt_size && memcmp(m->tables_hash, s->hash, SL_HASH_LEN) == 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t p = first + i;
        if (!same || is_dirty(m, p)) {
            memcpy(dst + i * SL_PAGE_SIZE, src + i * SL_PAGE_SIZE, SL_PAGE_SIZE);
            m->last_tables_copied++;
        }
        m->dirty[p / 64] &= ~(1ull << (p % 64));
    }
    /* Table pages beyond the new tables' end may hold an older, larger set. */
    if (!same && m->tables_size > s->pt_size)
        sl_mem_mark_dirty(m, l->pt_gpa + s->pt_size, m->tables_size - s->pt_size);
}

int sl_mem_restore(sl_mem *m, const sl_snapshot *s, sl_errbuf *e)
{
    const sl_layout *l = &m->layout;
    if (s->config_id != m->config_id)
        return sl_err(e, SL_EFAMILY,
                      "snapshot belongs to configuration family %llu, this sandbox to family %llu",
                      (unsigned long long)s->config_id, (unsigned long long)m->config_id);
    if (s->pt_size > l->exc_stack_gpa - l->pt_gpa || s->n_roots == 0 || s->n_roots > SL_BK_MAX_ROOTS)
        return sl_err(e, SL_ERANGE, "snapshot page tables do not fit this sandbox's scratch");
    copy_tables(m, s);
    /* A table page the file lost was read as zeros (snapfile.c): the tables
     * in scratch are not the snapshot's, whatever their identity says. */
    if (sl_snapfile_lost(s)) {
        sl_mem_forget_tables(m);
        return sl_snapfile_check(s, "while restore copied its page tables", e);
    }
    m->last_reset_pages = reset_dirty(m);
    m->snap = s;
    memcpy(m->tables_hash, s->hash, SL_HASH_LEN);
    m->tables_size = s->pt_size;

    m->root = s->roots[s->cur_root];
    m->generation = s->generation;
    sl_mem_bk_set(m, SL_BK_MAGIC, SL_BK_MAGIC_VALUE);
    sl_mem_bk_set(m, SL_BK_SCRATCH_SIZE, l->scratch_size);
    sl_mem_bk_set(m, SL_BK_ALLOC_CURSOR, l->pt_gpa + s->pt_size);
    sl_mem_bk_set(m, SL_BK_ALLOC_LIMIT, l->exc_stack_gpa);
    sl_mem_bk_set(m, SL_BK_PT_GPA, l->pt_gpa);
    sl_mem_bk_set(m, SL_BK_PT_ROOT, m->root);
    sl_mem_bk_set(m, SL_BK_GENERATION, s->generation);
    sl_mem_bk_set(m, SL_BK_EXC_STACK_TOP, sl_layout_scratch_gva_of(l, l->bk_gpa));
    sl_mem_bk_set(m, SL_BK_KSTACK, sl_layout_scratch_gva_of(l, l->bk_gpa) & ~15ull);
    sl_mem_bk_set(m, SL_BK_INPUT_GVA, l->scratch_gva);
    sl_mem_bk_set(m, SL_BK_INPUT_SIZE, l->input_size);
    sl_mem_bk_set(m, SL_BK_OUTPUT_GVA, l->scratch_gva + l->input_size);
    sl_mem_bk_set(m, SL_BK_OUTPUT_SIZE, l->output_size);
    sl_mem_bk_set(m, SL_BK_SCRATCH_GVA, l->scratch_gva);
    sl_mem_bk_set(m, SL_BK_SCRATCH_GPA, l->scratch_gpa);
    sl_mem_bk_set(m, SL_BK_PEB_GVA, l->peb_gpa);
    sl_mem_bk_set(m, SL_BK_DIRTY_HINT, 0);
    sl_mem_bk_set(m, SL_BK_DISPATCH, s->next_kind == SL_NEXT_CALL ? s->next_addr : 0);
    sl_mem_bk_set(m, SL_BK_STACK_TOP, s->stack_top);
    sl_mem_bk_set(m, SL_BK_NROOTS, s->n_roots);
    for (unsigned i = 0; i < s->n_roots; i++)
        sl_mem_bk_set(m, SL_BK_ROOTS + 8 * i, s->roots[i]);
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
    st->snap_mem = m->snap ? m->snap->mem : NULL;
    st->snap_size = m->snap ? m->snap->visible_size : 0;
    st->scratch = m->scratch;
    st->config_id = m->config_id;
    st->generation = m->generation;
}
