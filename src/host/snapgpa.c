/* A snapshot's guest-physical memory as a restored sandbox sees it
 * (snapgpa.h). */
#include "snapgpa.h"

#include "snapshot_impl.h" /* the blob's two parts and the layout */

const uint8_t *sl_snapgpa_page(const sl_snapshot *s, uint64_t gpa)
{
    if (gpa >= SL_BASE_ADDRESS && gpa - SL_BASE_ADDRESS < s->visible_size)
        return s->mem + (gpa - SL_BASE_ADDRESS);
    if (gpa >= s->layout.pt_gpa && gpa - s->layout.pt_gpa < s->pt_size)
        return s->mem + s->visible_size + (gpa - s->layout.pt_gpa);
    return NULL;
}

/* The page-table code takes a mutable context and returns mutable pages;
 * the walks only read them. */
static void *mem_page(void *ctx, uint64_t gpa) { return (void *)sl_snapgpa_page(ctx, gpa); }

sl_pt_mem sl_snapgpa_mem(const sl_snapshot *s)
{
    return (sl_pt_mem){.ctx = (void *)s, .page = mem_page, .alloc = NULL};
}

enum sl_backing sl_snapgpa_backing(const sl_snapshot *s, uint64_t gpa, uint64_t *next)
{
    const sl_layout *l = &s->layout;
    enum sl_backing bk = SL_BACKING_NONE;
    if (gpa >= SL_BASE_ADDRESS && gpa - SL_BASE_ADDRESS < s->visible_size)
        bk = SL_BACKING_BLOB;
    else if (gpa >= l->pt_gpa && gpa - l->pt_gpa < s->pt_size)
        bk = SL_BACKING_TABLES;
    else if (gpa >= l->scratch_gpa && gpa - l->scratch_gpa < l->scratch_size)
        bk = SL_BACKING_SCRATCH;
    /* Every bound is below 2^37 (load checked the layout), so none wraps. */
    const uint64_t bounds[] = {SL_BASE_ADDRESS, SL_BASE_ADDRESS + s->visible_size, l->pt_gpa,
                               l->pt_gpa + s->pt_size, l->scratch_gpa, l->scratch_gpa + l->scratch_size};
    *next = 0;
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++)
        if (bounds[i] > gpa && (*next == 0 || bounds[i] < *next))
            *next = bounds[i];
    return bk;
}

bool sl_snapgpa_pieces(const sl_snapshot *s, const sl_mapping *m, sl_piece_fn fn, void *arg)
{
    const sl_layout *l = &s->layout;
    uint64_t size = m->size ? m->size : SL_PAGE_SIZE;
    for (uint64_t off = 0; off < size;) {
        uint64_t gva = m->gva + off, gpa = m->gpa + off, next_gpa, len = size - off;
        enum sl_backing bk = sl_snapgpa_backing(s, gpa, &next_gpa);
        if (next_gpa && next_gpa - gpa < len)
            len = next_gpa - gpa;
        bool win = gva >= l->scratch_gva && gva - l->scratch_gva < l->scratch_size;
        uint64_t win_bound = win ? l->scratch_gva + l->scratch_size : l->scratch_gva;
        if (win_bound > gva && win_bound - gva < len)
            len = win_bound - gva;
        if (!fn(arg, gva, gpa, len, bk, win))
            return false;
        off += len;
    }
    return true;
}
