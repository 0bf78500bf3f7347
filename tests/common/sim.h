/* A simulated guest for host-only tests and benchmarks: snapshot-region pages
 * and a scratch region in host memory, with page tables built in scratch by
 * the shared page-table code, as a running guest would have them. */
#ifndef SL_TEST_SIM_H
#define SL_TEST_SIM_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "layout.h"
#include "pt.h"
#include "snapshot.h"

#define SIM_MAX_ROOTS 4

typedef struct guest {
    sl_layout l;
    uint8_t *snap; /* snapshot region, GPA SL_BASE_ADDRESS.. */
    uint64_t snap_size;
    uint8_t *scratch;
    uint64_t next_table; /* bump allocator for tables in scratch */
    uint64_t roots[SIM_MAX_ROOTS];
    unsigned n_roots;
    bool snap_borrowed; /* snap is a snapshot's blob (guest_restore): read-only, not freed */
} guest;

static inline void *g_page(void *ctx, uint64_t gpa)
{
    guest *g = ctx;
    if (gpa >= SL_BASE_ADDRESS && gpa - SL_BASE_ADDRESS < g->snap_size)
        return g->snap + (gpa - SL_BASE_ADDRESS);
    if (gpa >= g->l.scratch_gpa && gpa - g->l.scratch_gpa < g->l.scratch_size)
        return g->scratch + (gpa - g->l.scratch_gpa);
    return NULL;
}

static inline bool g_alloc(void *ctx, uint64_t *gpa)
{
    guest *g = ctx;
    if (g->next_table >= g->l.exc_stack_gpa)
        return false;
    *gpa = g->next_table;
    g->next_table += SL_PAGE_SIZE;
    memset(g_page(g, *gpa), 0, SL_PAGE_SIZE);
    return true;
}

static inline sl_pt_mem g_mem(guest *g)
{
    sl_pt_mem m = {.ctx = g, .page = g_page, .alloc = g_alloc};
    return m;
}

/* A guest with `snap_pages` zeroed snapshot pages, `scratch` bytes of scratch
 * (4 KiB input and output buffers, a 16 KiB call stack) and `n_roots` empty root tables. Returns
 * false when the configuration is refused or memory runs out. */
static inline bool guest_setup(guest *g, unsigned arch, uint64_t snap_pages, uint64_t scratch, unsigned n_roots)
{
    sl_config cfg = {.input_size = 4096, .output_size = 4096, .stack_size = 16384, .scratch_size = scratch};
    sl_errbuf e;
    memset(g, 0, sizeof *g);
    if (n_roots > SIM_MAX_ROOTS || sl_layout_config(&g->l, arch, &cfg, &e))
        return false;
    g->snap_size = snap_pages * SL_PAGE_SIZE;
    g->snap = calloc(1, g->snap_size ? g->snap_size : 1);
    g->scratch = calloc(1, g->l.scratch_size);
    if (!g->snap || !g->scratch)
        return false;
    g->next_table = g->l.pt_gpa;
    g->n_roots = n_roots;
    for (unsigned i = 0; i < n_roots; i++)
        if (!g_alloc(g, &g->roots[i]))
            return false;
    return true;
}

/* The guest as restore leaves it on snapshot s, with layout l (s's
 * family's): s's visible memory is its snapshot region (borrowed, never
 * written), scratch is zero but for s's tables copied to l->pt_gpa, the
 * roots are s's, and tables allocated later go right after s's. False when
 * s does not fit l or memory runs out. */
static inline bool guest_restore(guest *g, const sl_layout *l, const sl_snapshot *s)
{
    uint64_t pt_off = l->pt_gpa - l->scratch_gpa, pt_size = sl_snapshot_page_table_size(s);
    memset(g, 0, sizeof *g);
    g->l = *l;
    g->snap = (uint8_t *)(uintptr_t)sl_snapshot_visible(s);
    g->snap_size = sl_snapshot_memory_size(s);
    g->snap_borrowed = true;
    g->n_roots = sl_snapshot_n_roots(s);
    if (g->n_roots > SIM_MAX_ROOTS || pt_size > l->exc_stack_gpa - l->pt_gpa ||
        !(g->scratch = calloc(1, l->scratch_size)))
        return false;
    memcpy(g->scratch + pt_off, sl_snapshot_tables(s), pt_size);
    g->next_table = l->pt_gpa + pt_size;
    for (unsigned i = 0; i < g->n_roots; i++)
        g->roots[i] = sl_snapshot_root(s, i);
    return true;
}

static inline void guest_free(guest *g)
{
    if (!g->snap_borrowed)
        free(g->snap);
    free(g->scratch);
}

/* Where guest_make maps the snapshot pages. */
#define SIM_DATA_VA 0x10000000ull

/* A guest (x86-64, one space) whose `bytes` of snapshot memory, filled with
 * pseudo-random bytes (no two pages equal), are all mapped writable at
 * SIM_DATA_VA, and its scratch at the layout's window, as benchmarks want
 * it; false when it cannot be set up. */
static inline bool guest_make(guest *g, uint64_t bytes, uint64_t scratch)
{
    if (!guest_setup(g, SL_ARCH_AMD64, bytes / SL_PAGE_SIZE, scratch, 1))
        return false;
    uint64_t x = 88172645463325252ull;
    for (uint64_t i = 0; i < bytes / 8; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        memcpy(g->snap + 8 * i, &x, 8);
    }
    sl_pt_mem m = g_mem(g);
    sl_perm rw = {.kind = SL_MAP_BASIC, .readable = true, .writable = true};
    return !sl_pt_map(SL_ARCH_AMD64, &m, g->roots[0], SIM_DATA_VA, SL_BASE_ADDRESS, bytes, rw) &&
           !sl_pt_map(SL_ARCH_AMD64, &m, g->roots[0], g->l.scratch_gva, g->l.scratch_gpa, scratch, rw);
}

/* What the guest kernel's copy-on-write does to `changed` of the pages
 * guest_make mapped, spread over all of them (pages off, off + n/changed,
 * ... of the snap_size / 4 KiB at SIM_DATA_VA): each copied from the
 * snapshot page at that offset, with a byte flipped, into a new scratch
 * page that its leaf then maps writable. Returns how many it changed. */
static inline uint64_t guest_change(guest *g, uint64_t changed, uint64_t off)
{
    uint64_t n = g->snap_size / SL_PAGE_SIZE, step = changed ? n / changed : 0, done = 0;
    sl_pt_mem m = g_mem(g);
    sl_perm rw = {.kind = SL_MAP_BASIC, .readable = true, .writable = true};
    for (uint64_t i = 0; i < changed && off + i * step < n; i++) {
        uint64_t copy, pg = off + i * step;
        if (!g_alloc(g, &copy))
            break;
        uint8_t *p = g_page(g, copy);
        memcpy(p, g->snap + pg * SL_PAGE_SIZE, SL_PAGE_SIZE);
        p[0] ^= 1;
        if (sl_pt_map(SL_ARCH_AMD64, &m, g->roots[0], SIM_DATA_VA + pg * SL_PAGE_SIZE, copy, SL_PAGE_SIZE, rw))
            break;
        done++;
    }
    return done;
}

#endif
