/* Page-table encoding, map, translate and multi-space walk (see pt.h).
 *
 * Freestanding: no libc. Every entry is read exactly once into a local through
 * a volatile pointer, so a guest that edits its tables while the host reads
 * them cannot make one decision see two different values. Root GPAs have
 * their low flag bits (and, on amd64, bits above the address field) ignored,
 * as the CPU does with CR3. */
#include "pt.h"

/* Shape of one architecture's paging. */
typedef struct pt_geo {
    unsigned levels;    /* tables on the way to a 4 KiB leaf */
    unsigned bits;      /* VA bits resolved per table */
    unsigned entries;   /* entries per table */
    unsigned esz;       /* bytes per entry */
    bool nx;            /* whether bit 63 means no-execute */
    uint64_t addr_mask; /* bits of an entry that hold the next address */
    uint64_t va_span;   /* size of the linear VA space: 2^48 or 2^32 */
    uint64_t pa_span;   /* size of the physical space an entry can name */
} pt_geo;

/* Permissions accumulated from the entries above the current one. */
typedef struct pt_eff {
    bool w, u, nx;
} pt_eff;

static const pt_geo geo_amd64 = {.levels = 4, .bits = 9, .entries = 512, .esz = 8, .nx = true,
                                 .addr_mask = SL_PTE_ADDR_AMD64, .va_span = 1ull << 48, .pa_span = 1ull << 52};
static const pt_geo geo_i686 = {.levels = 2, .bits = 10, .entries = 1024, .esz = 4, .nx = false,
                                .addr_mask = SL_PTE_ADDR_I686, .va_span = 1ull << 32, .pa_span = 1ull << 32};

static bool geo_of(unsigned arch, pt_geo *g)
{
    if (arch != SL_ARCH_AMD64 && arch != SL_ARCH_I686)
        return false;
    *g = arch == SL_ARCH_AMD64 ? geo_amd64 : geo_i686;
    return true;
}

static unsigned shift_of(const pt_geo *g, unsigned level)
{
    return SL_PAGE_SHIFT + g->bits * (g->levels - 1 - level);
}

static bool is_last(const pt_geo *g, unsigned level) { return level + 1 == g->levels; }

/* Size of the page a PS entry at a non-last `level` maps, or 0 where PS is
 * reserved (amd64 PML4): such an entry faults on hardware, so it maps nothing. */
static uint64_t large_size(const pt_geo *g, unsigned level)
{
    if (g->levels == 4 && level == 0)
        return 0;
    return 1ull << shift_of(g, level);
}

static uint64_t rd(const pt_geo *g, const void *page, unsigned i)
{
    if (g->esz == 8)
        return ((const volatile uint64_t *)page)[i];
    return ((const volatile uint32_t *)page)[i];
}

static void wr(const pt_geo *g, void *page, unsigned i, uint64_t v)
{
    if (g->esz == 8)
        ((volatile uint64_t *)page)[i] = v;
    else
        ((volatile uint32_t *)page)[i] = (uint32_t)v;
}

/* A linear (48- or 32-bit) VA as the guest sees it: amd64 copies bit 47 up. */
static uint64_t canon(const pt_geo *g, uint64_t lva)
{
    if (g->levels == 4 && (lva & (1ull << 47)))
        return lva | 0xFFFF000000000000ull;
    return lva;
}

/* Turns [gva, gva+len) into the linear range [*lo, *hi). Fails when gva is
 * not canonical / beyond 4 GiB, or the range would run off its half of the
 * amd64 space (crossing the non-canonical hole) or the i686 space. */
static bool lin_range(const pt_geo *g, uint64_t gva, uint64_t len, uint64_t *lo, uint64_t *hi)
{
    uint64_t lva, top;

    if (g->levels == 4) {
        uint64_t upper = gva >> 47;
        if (upper != 0 && upper != 0x1FFFFull)
            return false;
        lva = gva & (g->va_span - 1);
        top = upper ? g->va_span : g->va_span / 2;
    } else {
        if (gva >= g->va_span)
            return false;
        lva = gva;
        top = g->va_span;
    }
    if (len > top - lva)
        return false;
    *lo = lva;
    *hi = lva + len;
    return true;
}

static pt_eff eff_add(const pt_geo *g, pt_eff e, uint64_t pte)
{
    e.w = e.w && (pte & SL_PTE_RW);
    e.u = e.u && (pte & SL_PTE_US);
    e.nx = e.nx || (g->nx && (pte & SL_PTE_NX));
    return e;
}

static const pt_eff eff_top = {true, true, false};

/* Effective permissions of a present leaf `pte` under ancestors `e`. */
static sl_perm leaf_perm(const pt_geo *g, pt_eff e, uint64_t pte)
{
    sl_perm p;
    pt_eff t = eff_add(g, e, pte);

    p.kind = ((pte & SL_PTE_COW) && !(pte & SL_PTE_RW)) ? SL_MAP_COW : SL_MAP_BASIC;
    p.readable = true;
    p.writable = t.w;
    p.user = t.u;
    p.executable = !t.nx;
    return p;
}

uint64_t sl_pt_entry_addr(unsigned arch, uint64_t pte)
{
    return pte & (arch == SL_ARCH_I686 ? SL_PTE_ADDR_I686 : SL_PTE_ADDR_AMD64);
}

uint64_t sl_pt_entry_span(unsigned arch, unsigned depth)
{
    pt_geo g;

    if (!geo_of(arch, &g) || depth >= g.levels)
        return 0;
    return 1ull << shift_of(&g, depth);
}

void sl_pt_preset_accessed_dirty(unsigned arch, void *tables, uint64_t len)
{
    pt_geo g;

    if (!geo_of(arch, &g))
        return;
    for (uint64_t off = 0; off + SL_PAGE_SIZE <= len; off += SL_PAGE_SIZE) {
        void *page = (uint8_t *)tables + off;
        for (unsigned i = 0; i < g.entries; i++) {
            uint64_t pte = rd(&g, page, i);
            if (pte & SL_PTE_P)
                wr(&g, page, i, pte | SL_PTE_A | SL_PTE_D);
        }
    }
}

uint64_t sl_pt_encode_leaf(unsigned arch, uint64_t gpa, sl_perm perm)
{
    uint64_t pte;

    if (perm.kind != SL_MAP_BASIC && perm.kind != SL_MAP_COW)
        return 0;
    pte = sl_pt_entry_addr(arch, gpa) | SL_PTE_P;
    if (perm.kind == SL_MAP_COW)
        pte |= SL_PTE_COW; /* RW stays clear: that is what makes it CoW */
    else if (perm.writable)
        pte |= SL_PTE_RW;
    if (perm.user)
        pte |= SL_PTE_US;
    if (arch != SL_ARCH_I686 && !perm.executable)
        pte |= SL_PTE_NX;
    return pte;
}

sl_perm sl_pt_decode_leaf(unsigned arch, uint64_t pte)
{
    pt_geo g;
    sl_perm none = {SL_MAP_UNMAPPED, false, false, false, false};

    if (!geo_of(arch, &g))
        return none;
    if (g.esz == 4)
        pte &= 0xFFFFFFFFull;
    if (!(pte & SL_PTE_P))
        return none;
    return leaf_perm(&g, eff_top, pte);
}

/* ---- map ---- */

/* A fresh table from the caller's allocator, zeroed again here so that a
 * careless allocator cannot leave stale entries that would read as present. */
static int new_table(const pt_geo *g, const sl_pt_mem *mem, uint64_t *gpa_out)
{
    uint64_t gpa;
    void *page;

    if (!mem->alloc || !mem->alloc(mem->ctx, &gpa))
        return SL_PT_ENOMEM;
    if ((gpa & ~g->addr_mask) != 0)
        return SL_PT_EBADTABLE;
    page = mem->page(mem->ctx, gpa);
    if (!page)
        return SL_PT_EBADTABLE;
    for (unsigned i = 0; i < SL_PAGE_SIZE / 8; i++)
        ((volatile uint64_t *)page)[i] = 0;
    *gpa_out = gpa;
    return SL_PT_OK;
}

/* Finds the table at level `stop` (0 = root) on the path to linear `va`,
 * creating missing tables when `create`. Returns SL_PT_OK with *pt_gpa set; 1
 * when a table is missing and !create, with *span the VA size of the missing
 * entry; or SL_PT_E*. */
static int descend(const pt_geo *g, const sl_pt_mem *mem, uint64_t table, uint64_t va, unsigned stop,
                   bool create, uint64_t *pt_gpa, uint64_t *span)
{
    for (unsigned level = 0; level < stop; level++) {
        unsigned sh = shift_of(g, level);
        unsigned idx = (unsigned)(va >> sh) & (g->entries - 1);
        void *page = mem->page(mem->ctx, table);
        uint64_t pte;

        if (!page)
            return SL_PT_EBADTABLE;
        pte = rd(g, page, idx);
        if (!(pte & SL_PTE_P)) {
            uint64_t fresh;
            int rc;

            if (!create) {
                *span = 1ull << sh;
                return 1;
            }
            rc = new_table(g, mem, &fresh);
            if (rc != SL_PT_OK)
                return rc;
            wr(g, page, idx, fresh | SL_PTE_P | SL_PTE_RW | SL_PTE_US);
            table = fresh;
            continue;
        }
        if (pte & SL_PTE_PS)
            return SL_PT_EBADTABLE; /* a large page (or reserved PS): cannot hold 4 KiB leaves */
        table = pte & g->addr_mask;
    }
    *pt_gpa = table;
    return SL_PT_OK;
}

int sl_pt_map(unsigned arch, const sl_pt_mem *mem, uint64_t root_gpa, uint64_t gva, uint64_t gpa,
              uint64_t len, sl_perm perm)
{
    pt_geo g;
    uint64_t lo, hi, va;
    bool create = perm.kind != SL_MAP_UNMAPPED;

    if (!geo_of(arch, &g) || !mem || !mem->page || perm.kind > SL_MAP_COW)
        return SL_PT_EINVAL;
    if (((gva | gpa | len) & (SL_PAGE_SIZE - 1)) != 0)
        return SL_PT_EINVAL;
    if (!lin_range(&g, gva, len, &lo, &hi))
        return SL_PT_EINVAL;
    if (create && (gpa >= g.pa_span || len > g.pa_span - gpa))
        return SL_PT_EINVAL;
    root_gpa &= g.addr_mask;

    va = lo;
    while (va < hi) {
        uint64_t pt_gpa = 0, span = 0;
        unsigned last_sh = shift_of(&g, g.levels - 1);
        void *page;
        int rc = descend(&g, mem, root_gpa, va, g.levels - 1, create, &pt_gpa, &span);

        if (rc < 0)
            return rc;
        if (rc == 1) { /* nothing mapped there: nothing to clear */
            va = (va & ~(span - 1)) + span;
            continue;
        }
        page = mem->page(mem->ctx, pt_gpa);
        if (!page)
            return SL_PT_EBADTABLE;
        /* Fill the rest of this last-level table in one go. */
        for (unsigned idx = (unsigned)(va >> last_sh) & (g.entries - 1); idx < g.entries && va < hi; idx++) {
            wr(&g, page, idx, sl_pt_encode_leaf(arch, gpa + (va - lo), perm));
            va += SL_PAGE_SIZE;
        }
    }
    return SL_PT_OK;
}

int sl_pt_table_at(unsigned arch, const sl_pt_mem *mem, uint64_t root_gpa, uint64_t gva, unsigned depth,
                   bool create, uint64_t *table_gpa)
{
    pt_geo g;
    uint64_t lo, hi, span;

    if (!geo_of(arch, &g) || !mem || !mem->page || depth >= g.levels || !table_gpa)
        return SL_PT_EINVAL;
    if (!lin_range(&g, gva & SL_PAGE_MASK, SL_PAGE_SIZE, &lo, &hi))
        return SL_PT_EINVAL;
    int rc = descend(&g, mem, root_gpa & g.addr_mask, lo, depth, create, table_gpa, &span);
    return rc == 1 ? SL_PT_EABSENT : rc;
}

int sl_pt_link(unsigned arch, const sl_pt_mem *mem, uint64_t root_gpa, uint64_t gva, unsigned depth,
               uint64_t table_gpa)
{
    pt_geo g;
    uint64_t parent;

    if (!geo_of(arch, &g) || depth + 1 >= g.levels || (table_gpa & (SL_PAGE_SIZE - 1)) ||
        table_gpa >= g.pa_span)
        return SL_PT_EINVAL;
    int rc = sl_pt_table_at(arch, mem, root_gpa, gva, depth, true, &parent);
    if (rc)
        return rc;
    void *page = mem->page(mem->ctx, parent);
    if (!page)
        return SL_PT_EBADTABLE;
    unsigned idx = (unsigned)((gva & (g.va_span - 1)) >> shift_of(&g, depth)) & (g.entries - 1);
    wr(&g, page, idx, table_gpa | SL_PTE_P | SL_PTE_RW | SL_PTE_US);
    return SL_PT_OK;
}

/* ---- translate ---- */

typedef struct tr_ctx {
    const pt_geo *g;
    const sl_pt_mem *mem;
    uint64_t lo, hi; /* linear, page-aligned */
    sl_pt_visit_fn visit;
    void *arg;
} tr_ctx;

/* Reports the 4 KiB pieces of the leaf [va, va+size) -> gpa inside [lo, hi). */
static int tr_leaf(tr_ctx *c, uint64_t va, uint64_t size, uint64_t gpa, sl_perm perm)
{
    uint64_t from = va < c->lo ? c->lo : va;
    uint64_t to = va + size > c->hi ? c->hi : va + size;

    for (uint64_t p = from; p < to; p += SL_PAGE_SIZE) {
        sl_mapping m;

        m.gva = canon(c->g, p);
        m.gpa = gpa + (p - va);
        m.size = SL_PAGE_SIZE;
        m.perm = perm;
        if (!c->visit(c->arg, &m))
            return SL_PT_ESTOPPED;
    }
    return SL_PT_OK;
}

/* Visits the entries of `table` (at `level`, covering linear VAs from `base`)
 * that overlap [lo, hi). Recursion depth is bounded by the number of levels,
 * and non-present entries skip their whole span, so hostile tables cost at
 * most one step per mapped page plus one per table entry looked at. */
static int tr_table(tr_ctx *c, unsigned level, uint64_t table, uint64_t base, pt_eff e)
{
    const pt_geo *g = c->g;
    unsigned sh = shift_of(g, level);
    const void *page = c->mem->page(c->mem->ctx, table);
    unsigned first = c->lo > base ? (unsigned)((c->lo - base) >> sh) : 0;

    if (!page)
        return SL_PT_OK; /* unbacked: reads as not present */
    for (unsigned i = first; i < g->entries; i++) {
        uint64_t va = base + ((uint64_t)i << sh);
        uint64_t pte;
        int rc;

        if (va >= c->hi)
            break;
        pte = rd(g, page, i);
        if (!(pte & SL_PTE_P))
            continue;
        if (is_last(g, level)) {
            rc = tr_leaf(c, va, SL_PAGE_SIZE, pte & g->addr_mask, leaf_perm(g, e, pte));
        } else if (pte & SL_PTE_PS) {
            uint64_t ls = large_size(g, level);
            if (!ls)
                continue;
            rc = tr_leaf(c, va, ls, pte & g->addr_mask & ~(ls - 1), leaf_perm(g, e, pte));
        } else {
            rc = tr_table(c, level + 1, pte & g->addr_mask, va, eff_add(g, e, pte));
        }
        if (rc != SL_PT_OK)
            return rc;
    }
    return SL_PT_OK;
}

int sl_pt_translate(unsigned arch, const sl_pt_mem *mem, uint64_t root_gpa, uint64_t gva, uint64_t len,
                    sl_pt_visit_fn visit, void *arg)
{
    pt_geo g;
    tr_ctx c;
    uint64_t lo, hi;

    if (!geo_of(arch, &g) || !mem || !mem->page || !visit)
        return SL_PT_EINVAL;
    if (!lin_range(&g, gva, len, &lo, &hi))
        return SL_PT_EINVAL;
    if (len == 0)
        return SL_PT_OK;
    /* Every page the range touches; the top of each half is page-aligned,
     * so rounding up cannot leave it. */
    c.g = &g;
    c.mem = mem;
    c.lo = lo & SL_PAGE_MASK;
    c.hi = (hi + SL_PAGE_SIZE - 1) & SL_PAGE_MASK;
    c.visit = visit;
    c.arg = arg;
    return tr_table(&c, 0, root_gpa & g.addr_mask, 0, eff_top);
}

bool sl_pt_lookup(unsigned arch, const sl_pt_mem *mem, uint64_t root_gpa, uint64_t gva, sl_mapping *out,
                  uint64_t *pte_gpa)
{
    pt_geo g;
    uint64_t lo, hi, table;
    pt_eff e = eff_top;

    if (!geo_of(arch, &g) || !mem || !mem->page || !lin_range(&g, gva, 0, &lo, &hi))
        return false;
    lo &= SL_PAGE_MASK;
    table = root_gpa & g.addr_mask;
    for (unsigned level = 0;; level++) {
        unsigned idx = (unsigned)(lo >> shift_of(&g, level)) & (g.entries - 1);
        const void *page = mem->page(mem->ctx, table);
        uint64_t pte;

        if (!page)
            return false;
        pte = rd(&g, page, idx);
        if (!(pte & SL_PTE_P))
            return false;
        if (is_last(&g, level)) {
            if (out) {
                out->gva = canon(&g, lo);
                out->gpa = pte & g.addr_mask;
                out->size = SL_PAGE_SIZE;
                out->perm = leaf_perm(&g, e, pte);
            }
            if (pte_gpa)
                *pte_gpa = table + (uint64_t)idx * g.esz;
            return true;
        }
        if (pte & SL_PTE_PS)
            return false; /* large page: the CoW handler only deals in 4 KiB leaves */
        e = eff_add(&g, e, pte);
        table = pte & g.addr_mask;
    }
}

/* ---- walking several spaces ---- */

typedef struct wk_ctx {
    const pt_geo *g;
    const sl_pt_mem *mem;
    const sl_pt_seen *seen;
    sl_pt_walk_fn visit;
    void *arg;
    unsigned root;
} wk_ctx;

static sl_walk_item item_zero(void)
{
    sl_walk_item it;
    it.kind = 0;
    it.root = 0;
    it.map.gva = it.map.gpa = it.map.size = 0;
    it.map.perm.kind = SL_MAP_UNMAPPED;
    it.map.perm.readable = it.map.perm.writable = it.map.perm.executable = it.map.perm.user = false;
    it.depth = it.owner_root = it.their_depth = 0;
    it.our_va = it.their_va = it.table_gpa = it.entry_gpa = 0;
    return it;
}

static int wk_leaf(wk_ctx *w, uint64_t entry, uint64_t va, uint64_t size, uint64_t gpa, sl_perm perm)
{
    sl_walk_item it = item_zero();

    it.kind = SL_WALK_THIS_SPACE;
    it.root = w->root;
    it.map.gva = canon(w->g, va);
    it.map.gpa = gpa;
    it.map.size = size;
    it.map.perm = perm;
    it.entry_gpa = entry;
    return w->visit(w->arg, &it) ? SL_PT_OK : SL_PT_ESTOPPED;
}

/* Walks a table that has just been recorded. Each table is descended only
 * right after it is recorded, and a recorded table is never descended again,
 * so the whole walk reads each table once. */
static int wk_table(wk_ctx *w, unsigned level, uint64_t table, const void *page, uint64_t base, pt_eff e)
{
    const pt_geo *g = w->g;
    unsigned sh = shift_of(g, level);

    for (unsigned i = 0; i < g->entries; i++) {
        uint64_t va = base + ((uint64_t)i << sh);
        uint64_t pte = rd(g, page, i);
        uint64_t child;
        const void *cpage;
        unsigned owner, their_depth;
        uint64_t their_va;
        int rc;

        if (!(pte & SL_PTE_P))
            continue;
        if (is_last(g, level)) {
            rc = wk_leaf(w, table + (uint64_t)i * g->esz, va, SL_PAGE_SIZE, pte & g->addr_mask, leaf_perm(g, e, pte));
            if (rc != SL_PT_OK)
                return rc;
            continue;
        }
        if (pte & SL_PTE_PS) {
            uint64_t ls = large_size(g, level);
            if (!ls)
                continue;
            rc = wk_leaf(w, table + (uint64_t)i * g->esz, va, ls, pte & g->addr_mask & ~(ls - 1), leaf_perm(g, e, pte));
            if (rc != SL_PT_OK)
                return rc;
            continue;
        }
        child = pte & g->addr_mask;
        cpage = w->mem->page(w->mem->ctx, child);
        if (!cpage)
            continue;
        if (w->seen->lookup(w->seen->ctx, child, &owner, &their_va, &their_depth)) {
            sl_walk_item it = item_zero();

            it.kind = SL_WALK_ANOTHER_SPACE;
            it.root = w->root;
            it.depth = level;
            it.our_va = canon(g, va);
            it.owner_root = owner;
            it.their_va = their_va;
            it.their_depth = their_depth;
            it.table_gpa = child;
            it.entry_gpa = table + (uint64_t)i * g->esz;
            if (!w->visit(w->arg, &it))
                return SL_PT_ESTOPPED;
            continue;
        }
        if (!w->seen->record(w->seen->ctx, child, w->root, canon(g, va), level + 1))
            return SL_PT_ELIMIT;
        rc = wk_table(w, level + 1, child, cpage, va, eff_add(g, e, pte));
        if (rc != SL_PT_OK)
            return rc;
    }
    return SL_PT_OK;
}

int sl_pt_walk_spaces(unsigned arch, const sl_pt_mem *mem, const uint64_t *roots, unsigned n_roots,
                      const sl_pt_seen *seen, sl_pt_walk_fn visit, void *arg)
{
    pt_geo g;
    wk_ctx w;

    if (!geo_of(arch, &g) || !mem || !mem->page || (n_roots && !roots) || !seen || !seen->lookup ||
        !seen->record || !visit)
        return SL_PT_EINVAL;
    w.g = &g;
    w.mem = mem;
    w.seen = seen;
    w.visit = visit;
    w.arg = arg;
    for (unsigned r = 0; r < n_roots; r++) {
        uint64_t root = roots[r] & g.addr_mask;
        const void *page = mem->page(mem->ctx, root);
        unsigned owner, depth;
        uint64_t va;
        int rc;

        if (!page || seen->lookup(seen->ctx, root, &owner, &va, &depth))
            continue;
        if (!seen->record(seen->ctx, root, r, 0, 0))
            return SL_PT_ELIMIT;
        w.root = r;
        rc = wk_table(&w, 0, root, page, 0, eff_top);
        if (rc != SL_PT_OK)
            return rc;
    }
    return SL_PT_OK;
}
