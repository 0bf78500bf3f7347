/* Compaction: a new snapshot from a running guest's memory (DESIGN.md §3
 * "from a running sandbox"). The guest's page tables are the only map of
 * what it uses, and they are hostile input: compaction walks every address
 * space, copies each page a space maps once, and rebuilds tables that map
 * exactly those pages, so the new blob holds no free pages, no stale tables
 * and nothing the guest cannot reach.
 *
 * sl_snapshot_from_memory runs five phases over one `compaction` context;
 * each phase says below why it is where it is. */
#include <stdlib.h>
#include <string.h>

#include "pt_owners.h"
#include "snapbuild.h"
#include "u64map.h"

/* Large pages are split into 4 KiB leaves; this caps the work a hostile table
 * full of 1 GiB entries can cause. */
#define SL_MAX_LEAVES (1ull << 24)
#define SL_MAX_EXTRA 16u

/* Owner recorded for leaf tables that map nothing but scratch. */
#define SCRATCH_OWNER SL_BK_MAX_ROOTS

typedef struct leaf {
    uint64_t gva, gpa, size;
    sl_perm perm;
    uint32_t root;
} leaf;

/* One compaction. Table pages are allocated in phase order, and where each
 * lands is part of the blob's bytes, hence of the snapshot's identity: the
 * phases must run in this order for a guest to get the same id twice. */
typedef struct compaction {
    const sl_guest_state *st; /* the guest: read, never written */
    const sl_layout *l;
    unsigned arch;
    sl_errbuf *e;
    sl_snapshot *s; /* being built */
    /* Phase 1's output. `tables` maps every source table reached to the
     * space that reached it first; it also tells phase 3 which pages are
     * tables (rebuilt, never copied). Leaves and links are kept in walk
     * order so that phases 3 and 4 allocate deterministically. */
    sl_pt_owners tables;
    leaf *leaves;
    size_t n_leaves, cap_leaves;
    sl_walk_item *links;
    size_t n_links, cap_links;
    bool oom;
    /* Phase 2's output: the rebuilt root of each space. */
    uint64_t new_roots[SL_BK_MAX_ROOTS];
    /* Phase 3: source GPA -> new GPA of each page copied, so aliases (two
     * VAs, or two spaces, mapping one page) share one copy. */
    sl_u64map copied;
    uint64_t n4k; /* 4 KiB pieces visited, against SL_MAX_LEAVES */
    sl_pagebuf vis; /* the new visible pages, from SL_BASE_ADDRESS */
    sl_ptbuild pt;  /* the new tables, from layout.pt_gpa */
} compaction;

/* ---- reading the source guest ---- */

static const uint8_t *in_range(uint64_t gpa, uint64_t base, uint64_t size, const uint8_t *host)
{
    if (!host || gpa < base || gpa - base >= size || size - (gpa - base) < SL_PAGE_SIZE)
        return NULL;
    return host + (gpa - base);
}

/* The host copy of the guest page at `gpa`, or NULL when no memory backs it. */
static const uint8_t *src_page(const sl_guest_state *st, uint64_t gpa)
{
    const uint8_t *p;
    if (gpa & (SL_PAGE_SIZE - 1))
        return NULL;
    if ((p = in_range(gpa, SL_BASE_ADDRESS, st->snap_size, st->snap_mem)) ||
        (p = in_range(gpa, st->layout->scratch_gpa, st->layout->scratch_size, st->scratch)))
        return p;
    for (unsigned i = 0; i < st->n_extra; i++)
        if ((p = in_range(gpa, st->extra[i].gpa, st->extra[i].size, st->extra[i].host)))
            return p;
    return NULL;
}

/* The walker only reads; the cast drops const for the shared callback type. */
static void *src_page_cb(void *ctx, uint64_t gpa)
{
    return (void *)src_page(ctx, gpa);
}

static sl_pt_mem src_mem(const sl_guest_state *st)
{
    return (sl_pt_mem){.ctx = (void *)st, .page = src_page_cb, .alloc = NULL};
}

/* The guest-physical ranges backed by memory, as {base, size}, in a fixed
 * order (snapshot, scratch, extra regions); ranges never wrap. */
static unsigned backed_ranges(const sl_guest_state *st, uint64_t out[][2])
{
    unsigned n = 0;
    out[n][0] = SL_BASE_ADDRESS, out[n++][1] = st->snap_size;
    out[n][0] = st->layout->scratch_gpa, out[n++][1] = st->layout->scratch_size;
    for (unsigned i = 0; i < st->n_extra && i < SL_MAX_EXTRA; i++)
        if (st->extra[i].host && st->extra[i].gpa + st->extra[i].size >= st->extra[i].gpa)
            out[n][0] = st->extra[i].gpa, out[n++][1] = st->extra[i].size;
    return n;
}

/* ---- setting up ---- */

static int check_guest_state(const sl_guest_state *st, sl_errbuf *e)
{
    if (!st->layout || !st->roots || !st->n_roots || st->n_roots > SL_BK_MAX_ROOTS ||
        st->cur_root >= st->n_roots)
        return sl_err(e, SL_EINVAL, "snapshot needs 1..%u page-table roots and a valid current root",
                      SL_BK_MAX_ROOTS);
    if (st->sregs_len > SL_SREGS_MAX)
        return sl_err(e, SL_EINVAL, "special registers too large");
    if (st->n_extra > SL_MAX_EXTRA)
        return sl_err(e, SL_EINVAL, "more than %u extra memory regions", SL_MAX_EXTRA);
    if (st->snap_size % SL_PAGE_SIZE || !st->scratch)
        return sl_err(e, SL_EINVAL, "snapshot memory must be whole pages and scratch present");
    return 0;
}

/* Every source page can be copied at most once, and tables cannot exceed
 * the pages that back them: the source size bounds both reservations and
 * the number of tables a hostile walk may record. */
static int compaction_init(compaction *c, const sl_guest_state *st, sl_errbuf *e)
{
    memset(c, 0, sizeof *c);
    c->st = st;
    c->l = st->layout;
    c->arch = c->l->arch;
    c->e = e;
    uint64_t src_bytes = st->snap_size + c->l->scratch_size;
    for (unsigned i = 0; i < st->n_extra; i++)
        src_bytes += st->extra[i].size;
    sl_pt_owners_init(&c->tables, src_bytes / SL_PAGE_SIZE + 1);
    sl_u64map_init(&c->copied);
    if (!(c->s = calloc(1, sizeof *c->s)))
        return sl_err(e, SL_ENOMEM, "out of memory");
    int rc = sl_ptbuild_init(&c->pt, c->l, e);
    return rc ? rc : sl_pagebuf_init(&c->vis, src_bytes + c->pt.buf.cap, e);
}

static void compaction_free(compaction *c)
{
    sl_pagebuf_free(&c->vis);
    sl_pagebuf_free(&c->pt.buf);
    sl_pt_owners_free(&c->tables);
    sl_u64map_free(&c->copied);
    free(c->leaves);
    free(c->links);
}

/* ---- phase 1: walk every space ---- */

/* The scratch window is mapped afresh in every snapshot, so its leaf tables
 * need not be walked page by page: recording them as seen beforehand makes
 * the walk report each as one shared sub-table, which linking then ignores
 * (its owner is no address space). Only tables whose whole span lies inside
 * the window qualify, so no other mapping can hide behind them. */
static bool skip_scratch_tables(compaction *c, uint64_t root)
{
    const sl_layout *l = c->l;
    unsigned leaf_depth = sl_pt_levels(c->arch) - 1;
    uint64_t span = sl_pt_entry_span(c->arch, leaf_depth - 1); /* what one leaf table maps */
    uint64_t va = (l->scratch_gva + span - 1) / span * span, end = l->scratch_gva + l->scratch_size;
    sl_pt_mem m = src_mem(c->st);
    for (; va >= l->scratch_gva && va + span <= end && va + span > va; va += span) {
        uint64_t t;
        if (sl_pt_table_at(c->arch, &m, root, va, leaf_depth, false, &t) == SL_PT_OK && t != root &&
            !sl_pt_owners_get(&c->tables, t) && !sl_pt_owners_add(&c->tables, t, SCRATCH_OWNER, va, leaf_depth))
            return false;
    }
    return true;
}

static bool grow(void **p, size_t *cap, size_t elem)
{
    size_t ncap = *cap ? *cap * 2 : 1024;
    void *np = realloc(*p, ncap * elem);
    if (!np)
        return false;
    *p = np;
    *cap = ncap;
    return true;
}

static bool on_walk_item(void *arg, const sl_walk_item *it)
{
    compaction *c = arg;
    if (it->kind == SL_WALK_THIS_SPACE) {
        if (c->n_leaves == c->cap_leaves && !grow((void **)&c->leaves, &c->cap_leaves, sizeof(leaf)))
            return c->oom = true, false;
        c->leaves[c->n_leaves++] = (leaf){.gva = it->map.gva, .gpa = it->map.gpa, .size = it->map.size,
                                          .perm = it->map.perm, .root = it->root};
    } else {
        if (c->n_links == c->cap_links && !grow((void **)&c->links, &c->cap_links, sizeof(sl_walk_item)))
            return c->oom = true, false;
        c->links[c->n_links++] = *it;
    }
    return true;
}

/* All roots in one walk, in the order given: the walker records each table
 * the first time it is reached, so a sub-table that a later space shares is
 * reported once, as a link to its first owner (phase 4), instead of being
 * copied into every space that maps it. */
static int walk_spaces(compaction *c)
{
    const sl_guest_state *st = c->st;
    for (unsigned i = 0; i < st->n_roots; i++)
        if (!src_page(st, st->roots[i] & SL_PAGE_MASK))
            return sl_err(c->e, SL_EPAGETABLE, "page-table root %u at GPA 0x%llx is outside guest memory", i,
                          (unsigned long long)st->roots[i]);
    for (unsigned i = 0; i < st->n_roots; i++)
        if (!skip_scratch_tables(c, st->roots[i] & SL_PAGE_MASK))
            return sl_err(c->e, SL_ENOMEM, "out of memory walking page tables");
    sl_pt_mem m = src_mem(st);
    sl_pt_seen seen = sl_pt_owners_seen(&c->tables);
    int rc = sl_pt_walk_spaces(c->arch, &m, st->roots, st->n_roots, &seen, on_walk_item, c);
    if (c->oom)
        return sl_err(c->e, SL_ENOMEM, "out of memory walking page tables");
    if (rc)
        return sl_err(c->e, SL_EPAGETABLE, "page-table walk failed (%d): too many tables", rc);
    return 0;
}

/* ---- phase 2: one new root per space ---- */

/* Roots are allocated before any leaf, so they are the first pages of the
 * table area whatever the spaces map. A root repeated in the list shares
 * the first one's table; a root that is a sub-table of another space makes
 * no sense. */
static int make_roots(compaction *c)
{
    const sl_guest_state *st = c->st;
    for (unsigned i = 0; i < st->n_roots; i++) {
        const sl_pt_owner *o = sl_pt_owners_get(&c->tables, st->roots[i] & SL_PAGE_MASK);
        unsigned owner = o ? o->root : i, depth = o ? o->depth : 0;
        if (owner != i && depth == 0 && (st->roots[owner] & SL_PAGE_MASK) == (st->roots[i] & SL_PAGE_MASK)) {
            c->new_roots[i] = c->new_roots[owner];
            continue;
        }
        if (owner != i)
            return sl_err(c->e, SL_EPAGETABLE, "page-table root %u (GPA 0x%llx) is a sub-table of space %u", i,
                          (unsigned long long)st->roots[i], owner);
        if (!sl_ptbuild_alloc(&c->pt, &c->new_roots[i]))
            return sl_err(c->e, SL_ERANGE, "scratch too small for the page tables");
    }
    return 0;
}

/* ---- phase 3: copy and map every private leaf ---- */

static bool in_window(uint64_t va, uint64_t base, uint64_t size)
{
    return va >= base && va - base < size;
}

/* The new GPA of the source page at `gpa`, copying it on first use: 0 with
 * *new_gpa set, or an error when the blob's reservation is used up. */
static int copy_page(compaction *c, uint64_t gpa, const uint8_t *src, sl_perm perm, uint64_t *new_gpa)
{
    uint64_t *have = sl_u64map_get(&c->copied, gpa);
    if (have) {
        *new_gpa = *have;
        return 0;
    }
    int64_t off = sl_pagebuf_add(&c->vis, src);
    if (off < 0)
        return sl_err(c->e, SL_ERANGE, "snapshot larger than its reservation");
    *new_gpa = SL_BASE_ADDRESS + (uint64_t)off;
    if (!sl_u64map_put(&c->copied, gpa, *new_gpa))
        return sl_err(c->e, SL_ENOMEM, "out of memory");
    if (perm.writable || perm.kind == SL_MAP_COW)
        c->s->stats.pages_cow++;
    else
        c->s->stats.pages_ro++;
    return 0;
}

/* Copies (once per source page) and maps one 4 KiB leaf in the rebuilt
 * tables. Writable pages become copy-on-write, since the blob is shared and
 * read-only; CoW stays CoW; read-only stays. */
static int place_leaf(compaction *c, uint64_t gva, uint64_t gpa, sl_perm perm, uint32_t root)
{
    if (in_window(gva, c->l->scratch_gva, c->l->scratch_size))
        return 0; /* the scratch window is mapped afresh */
    if (sl_pt_owners_get(&c->tables, gpa))
        return 0; /* a page table seen as data (self-map): tables are rebuilt, not copied */
    const uint8_t *src = src_page(c->st, gpa);
    if (!src)
        return 0; /* unbacked: it could only fault, so it reads as not present */
    uint64_t ngpa = 0;
    int rc = copy_page(c, gpa, src, perm, &ngpa);
    if (rc)
        return rc;
    if (perm.writable || perm.kind == SL_MAP_COW) {
        perm.kind = SL_MAP_COW;
        perm.writable = false;
    } else {
        perm.kind = SL_MAP_BASIC;
    }
    perm.readable = true;
    sl_pt_mem m = sl_ptbuild_mem(&c->pt);
    if ((rc = sl_pt_map(c->arch, &m, c->new_roots[root], gva, ngpa, SL_PAGE_SIZE, perm)))
        return sl_snapbuild_pt_error(rc, c->e, "a page", gva);
    c->s->stats.leaves++;
    return 0;
}

/* A large page is split into its 4 KiB pieces, visiting only the pieces
 * backed by guest memory: the rest would read as not present anyway, and a
 * hostile table full of 1 GiB entries must not cost a walk over every
 * piece. Leaves are taken in walk order, so pages land in the blob in the
 * order the spaces map them. */
static int copy_leaves(compaction *c)
{
    uint64_t ranges[2 + SL_MAX_EXTRA][2];
    unsigned n_ranges = backed_ranges(c->st, ranges);
    for (size_t i = 0; i < c->n_leaves; i++) {
        const leaf *lf = &c->leaves[i];
        uint64_t size = lf->size ? lf->size : SL_PAGE_SIZE;
        for (unsigned r = 0; r < n_ranges; r++) {
            uint64_t lo = lf->gpa > ranges[r][0] ? lf->gpa : ranges[r][0];
            uint64_t end = lf->gpa + size, rend = ranges[r][0] + ranges[r][1];
            uint64_t hi = end < rend ? end : rend;
            for (uint64_t p = lo; p < hi; p += SL_PAGE_SIZE) {
                if (++c->n4k > SL_MAX_LEAVES)
                    return sl_err(c->e, SL_ERANGE, "guest maps more than %llu pages",
                                  (unsigned long long)SL_MAX_LEAVES);
                int rc = place_leaf(c, lf->gva + (p - lf->gpa), p, lf->perm, lf->root);
                if (rc)
                    return rc;
            }
        }
    }
    return 0;
}

/* ---- phase 4: link shared sub-tables ---- */

/* After every leaf is placed, because only then does the owner's rebuilt
 * sub-table exist; when nothing was kept below it, none does, and the link
 * is dropped (so is one to a scratch table, whose owner is no space). */
static int link_shared(compaction *c)
{
    sl_pt_mem bm = sl_ptbuild_mem(&c->pt);
    for (size_t i = 0; i < c->n_links; i++) {
        const sl_walk_item *it = &c->links[i];
        uint64_t target;
        if (it->root >= c->st->n_roots || it->owner_root >= c->st->n_roots ||
            sl_pt_table_at(c->arch, &bm, c->new_roots[it->owner_root], it->their_va, it->their_depth, false,
                           &target))
            continue;
        int rc = sl_pt_link(c->arch, &bm, c->new_roots[it->root], it->our_va, it->depth, target);
        if (rc)
            return sl_snapbuild_pt_error(rc, c->e, "a shared table", it->our_va);
    }
    return 0;
}

/* ---- phase 5: scratch, and the snapshot ---- */

/* Scratch is mapped afresh in every space, whatever the guest mapped there
 * (phases 1 and 3 skipped it): the kernel relies on the layout's window.
 * Then the new snapshot takes the guest's CPU state and the family's
 * layout, with no regions: every page now lives in the blob. */
static int seal(compaction *c)
{
    const sl_guest_state *st = c->st;
    sl_snapshot *s = c->s;
    for (unsigned i = 0; i < st->n_roots; i++) {
        int rc = sl_snapbuild_map_scratch(c->arch, &c->pt, c->l, c->new_roots[i], c->e);
        if (rc)
            return rc;
    }
    s->arch = c->arch;
    s->layout = *c->l;
    s->layout.n_regions = 0;
    s->n_regions = 0;
    memcpy(s->roots, c->new_roots, st->n_roots * sizeof s->roots[0]);
    s->n_roots = st->n_roots;
    s->cur_root = st->cur_root;
    s->stack_top = st->stack_top;
    s->next_kind = st->next_kind;
    s->next_addr = st->next_addr;
    s->generation = st->generation;
    s->family = st->family;
    s->has_parent = st->parent != NULL;
    if (st->parent)
        memcpy(s->parent, st->parent, SL_HASH_LEN);
    s->sregs_len = st->sregs_len;
    if (st->sregs_len)
        memcpy(s->sregs, st->sregs, st->sregs_len);
    return sl_snapbuild_seal(s, &c->vis, &c->pt, c->e);
}

int sl_snapshot_from_memory(sl_snapshot **out, const sl_guest_state *st, sl_errbuf *e)
{
    int rc = check_guest_state(st, e);
    if (rc)
        return rc;
    compaction c;
    if (!(rc = compaction_init(&c, st, e)) && !(rc = walk_spaces(&c)) && !(rc = make_roots(&c)) &&
        !(rc = copy_leaves(&c)) && !(rc = link_shared(&c)))
        rc = seal(&c);
    compaction_free(&c);
    if (rc) {
        free(c.s);
        return rc;
    }
    *out = c.s;
    return 0;
}
