/* Buffers, the scratch mapping and sealing, shared by both snapshot
 * builders (see snapbuild.h). */
#include "snapbuild.h"

#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

int sl_pagebuf_init(sl_pagebuf *b, uint64_t cap, sl_errbuf *e)
{
    b->len = 0;
    b->cap = cap ? cap : SL_PAGE_SIZE;
    b->p = mmap(NULL, b->cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (b->p == MAP_FAILED) {
        b->p = NULL;
        return sl_err(e, SL_ENOMEM, "cannot reserve %llu bytes for a snapshot", (unsigned long long)b->cap);
    }
    return 0;
}

void sl_pagebuf_free(sl_pagebuf *b)
{
    if (b->p)
        munmap(b->p, b->cap);
    b->p = NULL;
}

int64_t sl_pagebuf_add(sl_pagebuf *b, const uint8_t *src)
{
    if (b->cap - b->len < SL_PAGE_SIZE)
        return -1;
    uint64_t off = b->len;
    if (src)
        memcpy(b->p + off, src, SL_PAGE_SIZE);
    b->len += SL_PAGE_SIZE;
    return (int64_t)off;
}

static void *ptb_page(void *ctx, uint64_t gpa)
{
    sl_ptbuild *t = ctx;
    if (gpa < t->base_gpa || gpa - t->base_gpa >= t->buf.len)
        return NULL;
    return t->buf.p + (gpa - t->base_gpa);
}

bool sl_ptbuild_alloc(sl_ptbuild *t, uint64_t *gpa)
{
    int64_t off = sl_pagebuf_add(&t->buf, NULL);
    if (off < 0)
        return false;
    *gpa = t->base_gpa + (uint64_t)off;
    return true;
}

static bool ptb_alloc(void *ctx, uint64_t *gpa)
{
    return sl_ptbuild_alloc(ctx, gpa);
}

sl_pt_mem sl_ptbuild_mem(sl_ptbuild *t)
{
    return (sl_pt_mem){.ctx = t, .page = ptb_page, .alloc = ptb_alloc};
}

/* The page left over is the guest's: it needs at least one free page. */
int sl_ptbuild_init(sl_ptbuild *t, const sl_layout *l, sl_errbuf *e)
{
    t->base_gpa = l->pt_gpa;
    return sl_pagebuf_init(&t->buf, l->exc_stack_gpa - l->pt_gpa - SL_PAGE_SIZE, e);
}

int sl_snapbuild_pt_error(int rc, sl_errbuf *e, const char *what, uint64_t va)
{
    if (rc == SL_PT_ENOMEM)
        return sl_err(e, SL_ERANGE, "scratch too small for the page tables (while mapping %s at 0x%llx)",
                      what, (unsigned long long)va);
    return sl_err(e, SL_EPAGETABLE, "cannot map %s at 0x%llx (page-table error %d)", what,
                  (unsigned long long)va, rc);
}

sl_perm sl_snapbuild_leaf_perm(sl_perm guest)
{
    if (guest.writable || guest.kind == SL_MAP_COW) {
        guest.kind = SL_MAP_COW;
        guest.writable = false;
    } else {
        guest.kind = SL_MAP_BASIC;
    }
    guest.readable = true;
    return guest;
}

sl_perm sl_snapbuild_perm(unsigned kind, bool w, bool x)
{
    sl_perm p = {.kind = (uint8_t)kind, .readable = true, .writable = w, .executable = x, .user = false};
    return p;
}

/* Scratch is mapped afresh, read-write and no-execute, in every snapshot;
 * repeating it for a shared or repeated root changes nothing. The input and output buffers at the start of scratch and the call stack
 * after them are the user program's (it reads calls, writes results and
 * runs calls there); the page between output and call stack stays unmapped
 * (a call-stack overflow faults); the rest of scratch (page tables, kernel
 * stack, bookkeeping, free pages) is the kernel's. */
int sl_snapbuild_map_scratch(unsigned arch, sl_ptbuild *pt, const sl_layout *l, uint64_t root, sl_errbuf *e)
{
    sl_pt_mem m = sl_ptbuild_mem(pt);
    uint64_t io = l->input_size + l->output_size, cs = l->callstack_gpa - l->scratch_gpa;
    uint64_t kern = l->pt_gpa - l->scratch_gpa;
    sl_perm user = sl_snapbuild_perm(SL_MAP_BASIC, true, false);
    user.user = true;
    int rc = sl_pt_map(arch, &m, root, l->scratch_gva, l->scratch_gpa, io, user);
    if (!rc)
        rc = sl_pt_map(arch, &m, root, l->scratch_gva + cs, l->callstack_gpa, l->stack_size, user);
    if (!rc)
        rc = sl_pt_map(arch, &m, root, l->scratch_gva + kern, l->pt_gpa, l->scratch_size - kern,
                       sl_snapbuild_perm(SL_MAP_BASIC, true, false));
    return rc ? sl_snapbuild_pt_error(rc, e, "scratch", l->scratch_gva) : 0;
}

/* The visible pages' buffer was reserved with room for the tables behind
 * them, so joining is one copy and the blob is one mapping. */
int sl_snapbuild_seal(sl_snapshot *s, sl_pagebuf *vis, sl_ptbuild *pt, sl_errbuf *e)
{
    sl_pt_preset_accessed_dirty(s->arch, pt->buf.p, pt->buf.len);
    uint64_t total = vis->len + pt->buf.len;
    if (vis->cap < total)
        return sl_err(e, SL_ENOMEM, "internal: snapshot buffer too small for its page tables");
    memcpy(vis->p + vis->len, pt->buf.p, pt->buf.len);
    /* Give back the unused reservation; shrinking a mapping never moves it. */
    if (total < vis->cap)
        munmap(vis->p + total, vis->cap - total);
    mprotect(vis->p, total, PROT_READ);
    s->mem = vis->p;
    s->mem_size = s->map_len = total;
    s->map_base = vis->p;
    atomic_store(&s->refs, 1);
    s->visible_size = vis->len;
    s->pt_size = pt->buf.len;
    s->stats.pages_pt = pt->buf.len / SL_PAGE_SIZE;
    s->stats.pages_hashed = total / SL_PAGE_SIZE;
    vis->p = NULL;
    /* On every core for a large blob; the tree stays with the snapshot for
     * a later one that shares its pages (sl_snapshot_hashtree). */
    uint8_t tail[SL_SNAPSHOT_TAIL_MAX];
    sl_hash_job job = sl_snapshot_hash_input(s, tail);
    sl_hashtree_hash(&job, &s->tree, s->hash);
    return 0;
}
