/* Incremental takes (snapinc.h). A sandbox restored to parent P runs on
 * P's blob (read-only, in the snapshot slot) and a copy of P's page tables
 * in scratch; the hypervisor's dirty log says which scratch pages the guest
 * wrote since. When the only table changes are leaves of P's leaf tables
 * that now point at scratch pages (the guest kernel's copy-on-write, a
 * stack or heap page mapped) or at nothing (unmapped), compaction would
 * give P's blob with the pages no leaf maps any more refilled, and the
 * visible part grown, by the new pages, in the walk order of their first
 * leaf; P's tables with those leaves re-pointed; the tables behind the
 * visible pages. That is computed here from the changed table pages
 * alone, and the new blob is P's memory mapped copy-on-write with the
 * changed pages written over it. Anything else (a table added or left
 * empty, a page of P mapped anew or still mapped by another leaf, a
 * shrinking blob) is declined, and the caller compacts.
 *
 * What P must know for that, its "prep", comes from compacting P itself
 * once: the compaction of a guest restored to P and changed in nothing
 * must reproduce P byte for byte (a P that does not, a hostile file for
 * instance, is never a parent here), and its trace gives every leaf's
 * table entry, walk order and page. A take passes an updated copy of its
 * parent's prep on to the snapshot it makes. */
#include "snapinc_prep.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "le.h"
#include "pagecopy.h"
#include "pt.h"
#include "snapbuild.h"

/* ---- a take ---- */

#define NO_PAGE UINT64_MAX

/* A leaf entry of P's tables that the guest changed: it mapped P's page o
 * and now maps scratch page x (either NO_PAGE: nothing). */
typedef struct change {
    uint64_t key; /* walk order: the table's rank, then the entry */
    uint64_t o, x;
    uint64_t slot; /* where x goes (place) */
    uint32_t t, i;
    sl_perm perm; /* the new leaf's */
} change;

/* A new page: scratch page x, which the changes [first, first + n) of the
 * x-sorted list map; it goes to blob page slot. */
typedef struct newpage {
    uint64_t x, key, slot;
    size_t first, n;
    bool cow;
} newpage;

typedef struct take {
    const sl_guest_state *st;
    const sl_snapshot *P;
    struct sl_incprep *p;
    const sl_pageset *dirty;
    unsigned esz;
    change *ch;
    size_t n_ch, cap_ch;
    uint64_t *freed; /* P's pages no leaf maps any more, ascending */
    size_t n_freed;
    newpage *np; /* in walk order */
    size_t n_np;
    uint64_t grow;  /* pages the visible part grows by: the new pages beyond the freed */
    int64_t leaves; /* leaves mapped less leaves unmapped */
    /* The tables changes are in (ascending), the change in their pieces,
     * and the new bytes of those that come out other than P's (rebuilt). */
    uint32_t *tid;
    int64_t *tdelta;
    uint8_t **tnew;
    size_t n_t;
    uint8_t *tabs;
    uint64_t *changed; /* pages of the new blob not P's page at that offset, ascending */
    size_t n_changed;
    uint64_t base_pages; /* the new blob's (snapinc_prep.h) */
    uint64_t *priv;
    size_t n_priv;
} take;

static void take_free(take *k)
{
    free(k->ch);
    free(k->freed);
    free(k->np);
    free(k->tid);
    free(k->tdelta);
    free(k->tnew);
    free(k->tabs);
    free(k->changed);
    free(k->priv);
}

static bool same_perm(sl_perm a, sl_perm b)
{
    return a.kind == b.kind && a.readable == b.readable && a.writable == b.writable &&
           a.executable == b.executable && a.user == b.user;
}

/* The layouts agree but for the regions, which compaction does not use:
 * a sandbox made from the ELF has them, one made from a snapshot has none
 * (found by review: one kind learning P made every take of the other
 * decline). */
static bool same_layout(const sl_layout *a, const sl_layout *b)
{
    sl_layout x = *a, y = *b;
    memset(x.regions, 0, sizeof x.regions);
    memset(y.regions, 0, sizeof y.regions);
    x.n_regions = y.n_regions = 0;
    return memcmp(&x, &y, sizeof x) == 0;
}

/* The sandbox runs on P as P left it: same memory, spaces and layout (the
 * space it runs in now may be another: that is only the snapshot's
 * cur_root, not its blob). */
static bool same_frame(const sl_guest_state *st, const sl_snapshot *P, const struct sl_incprep *p)
{
    if (st->n_extra || st->snap_mem != P->mem || st->snap_size != P->visible_size || !st->parent ||
        memcmp(st->parent, P->hash, SL_HASH_LEN) != 0 || st->n_roots != P->n_roots ||
        st->cur_root >= st->n_roots || !same_layout(&p->layout, st->layout))
        return false;
    for (unsigned i = 0; i < st->n_roots; i++)
        if ((st->roots[i] & SL_PAGE_MASK) != P->roots[i])
            return false;
    return true;
}

static bool push_change(take *k, change c)
{
    if (k->n_ch == k->cap_ch) {
        size_t cap = k->cap_ch ? 2 * k->cap_ch : 64;
        change *n = realloc(k->ch, cap * sizeof *n);
        if (!n)
            return false;
        k->ch = n;
        k->cap_ch = cap;
    }
    k->ch[k->n_ch++] = c;
    return true;
}

/* One entry of P's leaf table t that differs from P's: false to decline. */
static bool note_change(take *k, uint32_t t, uint32_t i, uint64_t a, uint64_t b)
{
    const sl_layout *l = k->st->layout;
    const inc_tab *tb = &k->p->tab[t];
    uint64_t gva = tb->va + (uint64_t)i * SL_PAGE_SIZE;
    unsigned arch = k->P->arch;
    if (gva - l->scratch_gva < l->scratch_size) /* the window: rebuilt as it is in P */
        return true;
    sl_perm pa = sl_pt_decode_leaf(arch, a), pb = sl_pt_decode_leaf(arch, b);
    uint64_t ga = sl_pt_entry_addr(arch, a), x = sl_pt_entry_addr(arch, b), o = NO_PAGE;
    bool ma = pa.kind != SL_MAP_UNMAPPED, mb = pb.kind != SL_MAP_UNMAPPED;
    if (!ma && !mb) /* not present either way: junk in an empty entry */
        return true;
    if (ma && mb && ga == x && same_perm(pa, pb)) /* accessed or dirty bits */
        return true;
    if (ma) {
        if (ga < SL_BASE_ADDRESS || (ga - SL_BASE_ADDRESS) / SL_PAGE_SIZE >= k->p->n_vis)
            return false;
        o = (ga - SL_BASE_ADDRESS) / SL_PAGE_SIZE;
    }
    if (mb) {
        /* A page compaction copies (in scratch, not a table), in a table
         * whose place in the walk is known (it mapped something in P). */
        if (!tb->ord || x < l->scratch_gpa || x - l->scratch_gpa >= l->scratch_size ||
            (x >= l->pt_gpa && x - l->pt_gpa < k->P->pt_size))
            return false;
    } else {
        x = NO_PAGE;
    }
    return push_change(k, (change){.key = (uint64_t)tb->ord << 11 | i, .o = o, .x = x, .t = t, .i = i, .perm = pb});
}

/* Every table page the guest wrote, against P's: false to decline. */
static bool find_changes(take *k)
{
    const sl_layout *l = k->st->layout;
    uint64_t first = (l->pt_gpa - l->scratch_gpa) / SL_PAGE_SIZE;
    const uint8_t *now = k->st->scratch + first * SL_PAGE_SIZE, *was = k->P->mem + k->P->visible_size;
    unsigned entries = SL_PAGE_SIZE / k->esz;
    for (uint32_t t = 0; t < k->p->n_pt; t++) {
        const uint8_t *g = now + (uint64_t)t * SL_PAGE_SIZE, *o = was + (uint64_t)t * SL_PAGE_SIZE;
        if (!sl_pageset_has(k->dirty, first + t) || k->p->tab[t].kind == TAB_WINDOW ||
            memcmp(g, o, SL_PAGE_SIZE) == 0)
            continue;
        if (k->p->tab[t].kind != TAB_LEAF)
            return false; /* the structure changed */
        for (uint32_t i = 0; i < entries; i++) {
            uint64_t a = sl_get_le(o + i * k->esz, k->esz), b = sl_get_le(g + i * k->esz, k->esz);
            if (a != b && !note_change(k, t, i, a, b))
                return false;
        }
    }
    return true;
}

static int by_o(const void *a, const void *b)
{
    const change *x = a, *y = b;
    return x->o < y->o ? -1 : x->o > y->o;
}

static int by_x_key(const void *a, const void *b)
{
    const change *p = a, *q = b;
    if (p->x != q->x)
        return p->x < q->x ? -1 : 1;
    return p->key < q->key ? -1 : p->key > q->key;
}

static int np_by_key(const void *a, const void *b)
{
    const newpage *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key;
}

/* Where compaction puts the new pages. Each of P's pages that the changes
 * take from every leaf that mapped it is freed (one still mapped by
 * another leaf keeps its place, and its first leaf may have changed:
 * declined). The new pages fill the freed slots and then grow the visible
 * part, in ascending order, in the walk order of their first leaf: that
 * is compaction's placement when no kept page lies past the new end (a
 * shrinking blob moves pages: declined). */
static bool place(take *k)
{
    if (!k->n_ch)
        return true;
    if (!(k->freed = malloc(k->n_ch * sizeof *k->freed)) || !(k->np = malloc(k->n_ch * sizeof *k->np)))
        return false;
    qsort(k->ch, k->n_ch, sizeof *k->ch, by_o);
    for (size_t i = 0, j; i < k->n_ch && k->ch[i].o != NO_PAGE; i = j) {
        for (j = i; j < k->n_ch && k->ch[j].o == k->ch[i].o; j++)
            ;
        if (j - i != (k->p->refs[k->ch[i].o] & REF_MAX))
            return false;
        k->freed[k->n_freed++] = k->ch[i].o;
        k->leaves -= (int64_t)(j - i);
    }
    qsort(k->ch, k->n_ch, sizeof *k->ch, by_x_key);
    for (size_t i = 0, j; i < k->n_ch && k->ch[i].x != NO_PAGE; i = j) {
        for (j = i; j < k->n_ch && k->ch[j].x == k->ch[i].x; j++)
            ;
        k->np[k->n_np++] = (newpage){.x = k->ch[i].x, .key = k->ch[i].key, .first = i, .n = j - i,
                                     .cow = sl_snapbuild_leaf_perm(k->ch[i].perm).kind == SL_MAP_COW};
        k->leaves += (int64_t)(j - i);
    }
    if (k->n_np < k->n_freed)
        return false;
    k->grow = k->n_np - k->n_freed;
    qsort(k->np, k->n_np, sizeof *k->np, np_by_key);
    for (size_t j = 0; j < k->n_np; j++) {
        k->np[j].slot = j < k->n_freed ? k->freed[j] : k->p->n_vis + (j - k->n_freed);
        for (size_t c = k->np[j].first; c < k->np[j].first + k->np[j].n; c++)
            k->ch[c].slot = k->np[j].slot;
    }
    return true;
}

static int by_t_i(const void *a, const void *b)
{
    const change *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* The leaf compaction writes for a page at blob page `slot` mapped with
 * the guest's permissions pm. */
static uint64_t rebuilt_leaf(unsigned arch, uint64_t slot, sl_perm pm)
{
    return sl_pt_encode_leaf(arch, SL_BASE_ADDRESS + slot * SL_PAGE_SIZE, sl_snapbuild_leaf_perm(pm));
}

/* P's tables with the changed leaves as compaction writes them (and none
 * where a leaf went). A table left with no piece would not be rebuilt at
 * all, which moves every table after it: declined. */
static bool rebuild_tables(take *k)
{
    if (k->n_ch) /* no change at all: ch is NULL, which qsort may not be given */
        qsort(k->ch, k->n_ch, sizeof *k->ch, by_t_i);
    size_t n_t = 0;
    for (size_t c = 0; c < k->n_ch; c++)
        n_t += !c || k->ch[c].t != k->ch[c - 1].t;
    k->tid = malloc((n_t + 1) * sizeof *k->tid);
    k->tdelta = malloc((n_t + 1) * sizeof *k->tdelta);
    k->tnew = malloc((n_t + 1) * sizeof *k->tnew);
    k->tabs = malloc((n_t + 1) * SL_PAGE_SIZE);
    if (!k->tid || !k->tdelta || !k->tnew || !k->tabs)
        return false;
    const uint8_t *was = k->P->mem + k->P->visible_size;
    uint8_t *pg = k->tabs;
    for (size_t c = 0, d; c < k->n_ch; c = d) {
        uint32_t t = k->ch[c].t;
        const uint8_t *old = was + (uint64_t)t * SL_PAGE_SIZE;
        int64_t delta = 0;
        memcpy(pg, old, SL_PAGE_SIZE);
        for (d = c; d < k->n_ch && k->ch[d].t == t; d++) {
            const change *ch = &k->ch[d];
            uint64_t e = ch->x == NO_PAGE ? 0 : rebuilt_leaf(k->P->arch, ch->slot, ch->perm);
            sl_put_le(pg + ch->i * k->esz, e, k->esz);
            delta += (ch->x != NO_PAGE) - (ch->o != NO_PAGE);
        }
        if ((int64_t)k->p->tab[t].pieces + delta <= 0)
            return false;
        sl_pt_preset_accessed_dirty(k->P->arch, pg, SL_PAGE_SIZE);
        k->tid[k->n_t] = t;
        k->tdelta[k->n_t] = delta;
        k->tnew[k->n_t++] = memcmp(pg, old, SL_PAGE_SIZE) ? pg : NULL;
        if (k->tnew[k->n_t - 1])
            pg += SL_PAGE_SIZE;
    }
    return true;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The pages of the new blob that are not P's page at the same offset: the
 * new pages, and the rebuilt tables, or every table when the visible part
 * grew and moved them all. */
static bool list_changed(take *k)
{
    uint64_t vis = k->p->n_vis + k->grow, n_tab = k->grow ? k->p->n_pt : k->n_t;
    if (!(k->changed = malloc((k->n_np + n_tab + 1) * sizeof *k->changed)))
        return false;
    for (size_t j = 0; j < k->n_np; j++)
        k->changed[k->n_changed++] = k->np[j].slot;
    qsort(k->changed, k->n_changed, sizeof *k->changed, u64_cmp);
    if (k->grow)
        for (uint64_t t = 0; t < k->p->n_pt; t++)
            k->changed[k->n_changed++] = vis + t;
    else
        for (size_t q = 0; q < k->n_t; q++)
            if (k->tnew[q])
                k->changed[k->n_changed++] = vis + k->tid[q];
    return true;
}

static bool is_changed(const take *k, uint64_t pg)
{
    return bsearch(&pg, k->changed, k->n_changed, sizeof *k->changed, u64_cmp) != NULL;
}

/* The new blob's base: the same memfd for the pages that stay where they
 * were (all of them, or the visible ones when the tables moved), and the
 * pages among those that differ from it. Declined when more than half of
 * the blob would not be the base's: each take down the line copies those,
 * and a full take starts a new base. */
static bool merge_priv(take *k)
{
    const struct sl_incprep *p = k->p;
    uint64_t total = p->n_vis + k->grow + p->n_pt;
    k->base_pages = k->grow && p->base_pages > p->n_vis ? p->n_vis : p->base_pages;
    if (!(k->priv = malloc((p->n_priv + k->n_changed + 1) * sizeof *k->priv)))
        return false;
    size_t n = 0, i = 0, j = 0;
    while (i < p->n_priv || j < k->n_changed) {
        uint64_t a = i < p->n_priv ? p->priv[i] : UINT64_MAX, b = j < k->n_changed ? k->changed[j] : UINT64_MAX;
        uint64_t m = a < b ? a : b;
        if (m >= k->base_pages)
            break;
        k->priv[n++] = m;
        i += a <= b;
        j += b <= a;
    }
    k->n_priv = n;
    return n + (total - k->base_pages) <= total / 2 + 64;
}

static void copy_page(sl_pagecopy *c, uint8_t *dst, uint64_t to, const uint8_t *src, uint64_t from)
{
    sl_pagecopy_add(c, dst + to * SL_PAGE_SIZE, src + from * SL_PAGE_SIZE, SL_PAGE_SIZE);
}

/* The new blob: the base's pages mapped copy-on-write where they stay,
 * every other page written: P's own pages that are not the base's, the
 * new pages, the tables (rebuilt, or P's moved behind a grown visible
 * part). Read-only when done. The copies go through sl_pagecopy: none of
 * those pages is populated yet, and a fault per page was most of a take
 * (pagecopy.h). */
static uint8_t *make_blob(const take *k)
{
    const struct sl_incprep *p = k->p;
    const uint8_t *P = k->P->mem;
    uint64_t vis = p->n_vis + k->grow, total = vis + p->n_pt;
    uint8_t *b = mmap(NULL, total * SL_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED)
        return NULL;
    if (k->base_pages && mmap(b, k->base_pages * SL_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED,
                              p->base->fd, 0) == MAP_FAILED) {
        munmap(b, total * SL_PAGE_SIZE);
        return NULL;
    }
    sl_pagecopy c;
    sl_pagecopy_init(&c);
    for (size_t i = 0; i < p->n_priv && p->priv[i] < k->base_pages; i++)
        if (!is_changed(k, p->priv[i]))
            copy_page(&c, b, p->priv[i], P, p->priv[i]);
    uint64_t end = k->grow ? p->n_vis : total; /* P's pages that stay at their offset */
    for (uint64_t pg = k->base_pages; pg < end; pg++)
        if (!is_changed(k, pg))
            copy_page(&c, b, pg, P, pg);
    if (k->grow)
        for (uint64_t t = 0; t < p->n_pt; t++)
            copy_page(&c, b, vis + t, P, p->n_vis + t); /* rebuilt ones are written over below */
    const sl_layout *l = k->st->layout;
    for (size_t j = 0; j < k->n_np; j++)
        copy_page(&c, b, k->np[j].slot, k->st->scratch, (k->np[j].x - l->scratch_gpa) / SL_PAGE_SIZE);
    for (size_t q = 0; q < k->n_t; q++)
        if (k->tnew[q])
            copy_page(&c, b, vis + k->tid[q], k->tnew[q], 0);
    sl_pagecopy_flush(&c);
    if (mprotect(b, total * SL_PAGE_SIZE, PROT_READ) != 0) {
        munmap(b, total * SL_PAGE_SIZE);
        return NULL;
    }
    return b;
}

/* What compaction would record: P's frame, the guest's state, stats from
 * P's and the pages that moved. */
static void fill(sl_snapshot *s, const take *k)
{
    const sl_guest_state *st = k->st;
    const sl_snapshot *P = k->P;
    const struct sl_incprep *p = k->p;
    s->arch = P->arch;
    s->layout = *st->layout;
    s->layout.n_regions = 0;
    memcpy(s->roots, P->roots, sizeof s->roots);
    s->n_roots = P->n_roots;
    s->cur_root = st->cur_root;
    s->stack_top = st->stack_top;
    s->next_kind = st->next_kind;
    s->next_addr = st->next_addr;
    s->generation = st->generation;
    s->family = st->family;
    s->has_parent = true;
    memcpy(s->parent, st->parent, SL_HASH_LEN);
    s->sregs_len = st->sregs_len;
    if (st->sregs_len)
        memcpy(s->sregs, st->sregs, st->sregs_len);
    s->visible_size = (p->n_vis + k->grow) * SL_PAGE_SIZE;
    s->pt_size = P->pt_size;
    s->mem_size = s->map_len = s->visible_size + s->pt_size;
    atomic_store(&s->refs, 1);
    s->stats = p->stats;
    for (size_t j = 0; j < k->n_freed; j++) {
        bool cow = p->refs[k->freed[j]] & REF_COW;
        s->stats.pages_cow -= cow;
        s->stats.pages_ro -= !cow;
    }
    for (size_t j = 0; j < k->n_np; j++) {
        s->stats.pages_cow += k->np[j].cow;
        s->stats.pages_ro += !k->np[j].cow;
    }
    s->stats.leaves = (uint64_t)((int64_t)s->stats.leaves + k->leaves);
    s->stats.pages_kept = p->n_vis - k->n_freed;
    s->stats.pages_hashed = k->n_changed;
}

/* Compaction's `kept`: every page of P but the freed ones. */
static bool fill_kept(sl_snapshot *s, const take *k)
{
    uint64_t n = k->p->n_vis, words = (n + 63) / 64;
    if (!(s->kept = malloc(words * sizeof *s->kept)))
        return false;
    memset(s->kept, 0xFF, words * sizeof *s->kept);
    if (n % 64)
        s->kept[n / 64] = (1ull << (n % 64)) - 1;
    for (size_t j = 0; j < k->n_freed; j++)
        s->kept[k->freed[j] / 64] &= ~(1ull << (k->freed[j] % 64));
    s->kept_pages = n;
    return true;
}

/* The new snapshot's prep: its parent's, with the pages that moved. */
static struct sl_incprep *pass_on(take *k)
{
    const struct sl_incprep *p = k->p;
    uint64_t n_vis = p->n_vis + k->grow;
    struct sl_incprep *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    *q = (struct sl_incprep){.ok = true, .layout = p->layout, .base = p->base, .n_vis = n_vis, .n_pt = p->n_pt,
                             .base_pages = k->base_pages};
    atomic_fetch_add(&p->base->refs, 1); /* released with q, failed or not */
    q->tab = malloc(p->n_pt * sizeof *q->tab + 1);
    q->refs = malloc(n_vis * sizeof *q->refs);
    if (!q->tab || !q->refs) {
        sl_incprep_free(q);
        return NULL;
    }
    memcpy(q->tab, p->tab, p->n_pt * sizeof *q->tab);
    for (size_t i = 0; i < k->n_t; i++)
        q->tab[k->tid[i]].pieces = (uint32_t)((int64_t)q->tab[k->tid[i]].pieces + k->tdelta[i]);
    memcpy(q->refs, p->refs, p->n_vis * sizeof *q->refs);
    for (size_t j = 0; j < k->n_np; j++)
        q->refs[k->np[j].slot] = (uint32_t)k->np[j].n | (k->np[j].cow ? REF_COW : 0);
    q->priv = k->priv;
    q->n_priv = k->n_priv;
    k->priv = NULL;
    return q;
}

/* The new page tree: P's, with the changed pages' CVs and the paths above
 * them recomputed (and, when the tables moved, those behind P's visible
 * pages). */
static sl_hashtree *new_tree(const take *k, const uint8_t *blob)
{
    const sl_hashtree *base = k->p->tree ? k->p->tree : k->P->tree;
    if (!base)
        return NULL;
    uint64_t total = k->p->n_vis + k->grow + k->p->n_pt;
    sl_hashtree *t = k->grow ? sl_hashtree_resized(base, total, k->p->n_vis) : sl_hashtree_dup(base);
    if (t && !sl_hashtree_update(t, blob, k->changed, k->n_changed)) {
        sl_hashtree_free(t);
        return NULL;
    }
    return t;
}

static int build(take *k, sl_snapshot **out)
{
    sl_snapshot *s = calloc(1, sizeof *s);
    uint8_t *blob = s ? make_blob(k) : NULL;
    sl_hashtree *t = blob ? new_tree(k, blob) : NULL;
    struct sl_incprep *q = NULL;
    if (!t || !fill_kept(s, k) || !(q = pass_on(k))) {
        if (blob)
            munmap(blob, (k->p->n_vis + k->grow + k->p->n_pt) * SL_PAGE_SIZE);
        sl_hashtree_free(t);
        if (s)
            free(s->kept);
        free(s);
        return SL_INC_DECLINED;
    }
    s->mem = s->map_base = blob;
    fill(s, k);
    q->stats = s->stats;
    s->tree = t;
    uint8_t tail[SL_SNAPSHOT_TAIL_MAX];
    sl_hash_job job = sl_snapshot_hash_input(s, tail);
    sl_hashtree_root(t, job.blob, job.blob_size, job.tail, job.tail_len, s->hash);
    atomic_store_explicit(&s->inc, q, memory_order_release);
    *out = s;
    return 0;
}

int sl_snapinc_take(sl_snapshot **out, const sl_guest_state *st, sl_snapshot *P, const sl_pageset *dirty,
                    sl_errbuf *e)
{
    (void)e;
    *out = NULL;
    struct sl_incprep *p = sl_incprep_of(P, st->layout);
    if (!p || !p->ok || !same_frame(st, P, p))
        return SL_INC_DECLINED;
    take k = {.st = st, .P = P, .p = p, .dirty = dirty, .esz = P->arch == SL_ARCH_I686 ? 4 : 8};
    int rc = SL_INC_DECLINED;
    if (find_changes(&k) && place(&k) && rebuild_tables(&k) && list_changed(&k) && merge_priv(&k))
        rc = build(&k, out);
    take_free(&k);
    return rc;
}
