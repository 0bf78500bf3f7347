/* Incremental takes (snapinc.h). A sandbox restored to parent P runs on
 * P's blob (read-only, in the snapshot slot) and a copy of P's page tables
 * in scratch; the hypervisor's dirty log says which scratch pages the guest
 * wrote since. When the only table changes are leaves that now point at a
 * scratch page where they pointed at a page of P (what the guest kernel's
 * copy-on-write does), compaction would give exactly P's blob with the
 * pages those leaves released refilled, in walk order, by the new copies:
 * that is computed here from the changed table pages alone, and the new
 * blob is P's memory mapped copy-on-write with those pages written over.
 * Anything else (a table added or dropped, a page mapped or unmapped, an
 * alias, another space) is declined, and the caller compacts.
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
#include "pt.h"

/* ---- a take ---- */

/* A leaf that points at scratch page x where P's pointed at its page o. */
typedef struct change {
    uint64_t key; /* walk order: the table's rank, then the entry */
    uint64_t o, x;
    uint32_t t, i;
    sl_perm perm; /* the new leaf's */
    uint64_t slot; /* where its page goes (place) */
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
    newpage *np;
    uint64_t *changed; /* blob pages whose bytes change, ascending */
    size_t n_changed;
    uint8_t *tabs; /* the changed table pages' new bytes, in the order `changed` lists them */
    uint64_t *priv;
    size_t n_priv;
} take;

static void take_free(take *k)
{
    free(k->ch);
    free(k->freed);
    free(k->np);
    free(k->changed);
    free(k->tabs);
    free(k->priv);
}

static bool same_perm(sl_perm a, sl_perm b)
{
    return a.kind == b.kind && a.readable == b.readable && a.writable == b.writable &&
           a.executable == b.executable && a.user == b.user;
}

/* The sandbox runs on P as P left it: same memory, spaces and layout. */
static bool same_frame(const sl_guest_state *st, const sl_snapshot *P, const struct sl_incprep *p)
{
    if (st->n_extra || st->snap_mem != P->mem || st->snap_size != P->visible_size || !st->parent ||
        memcmp(st->parent, P->hash, SL_HASH_LEN) != 0 || st->n_roots != P->n_roots ||
        st->cur_root != P->cur_root || memcmp(&p->layout, st->layout, sizeof p->layout) != 0)
        return false;
    for (unsigned i = 0; i < st->n_roots; i++)
        if ((st->roots[i] & SL_PAGE_MASK) != P->roots[i])
            return false;
    return true;
}

/* One leaf entry that differs from P's: false to decline. */
static bool note_change(take *k, uint32_t t, uint32_t i, uint64_t a, uint64_t b)
{
    const sl_layout *l = k->st->layout;
    const inc_tab *tb = &k->p->tab[t];
    uint64_t gva = tb->va + (uint64_t)i * SL_PAGE_SIZE;
    unsigned arch = k->P->arch;
    if (gva - l->scratch_gva < l->scratch_size) /* the window: rebuilt as it is in P */
        return true;
    sl_perm pa = sl_pt_decode_leaf(arch, a), pb = sl_pt_decode_leaf(arch, b);
    uint64_t ga = sl_pt_entry_addr(arch, a), x = sl_pt_entry_addr(arch, b);
    if (ga == x && same_perm(pa, pb)) /* accessed or dirty bits */
        return true;
    if (pa.kind == SL_MAP_UNMAPPED || pb.kind == SL_MAP_UNMAPPED || !tb->ord || ga < SL_BASE_ADDRESS ||
        (ga - SL_BASE_ADDRESS) / SL_PAGE_SIZE >= k->p->n_vis)
        return false; /* a page mapped or unmapped: the blob changes size */
    /* The new page must be one compaction copies: in scratch, not a table. */
    if (x < l->scratch_gpa || x - l->scratch_gpa >= l->scratch_size || (x >= l->pt_gpa && x - l->pt_gpa < k->P->pt_size))
        return false;
    if (k->n_ch == k->cap_ch) {
        size_t cap = k->cap_ch ? 2 * k->cap_ch : 64;
        change *n = realloc(k->ch, cap * sizeof *n);
        if (!n)
            return false;
        k->ch = n;
        k->cap_ch = cap;
    }
    k->ch[k->n_ch++] = (change){.key = (uint64_t)tb->ord << 11 | i, .o = (ga - SL_BASE_ADDRESS) / SL_PAGE_SIZE,
                                .x = x, .t = t, .i = i, .perm = pb};
    return true;
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
        if (!sl_pageset_has(k->dirty, first + t) || memcmp(g, o, SL_PAGE_SIZE) == 0 ||
            k->p->tab[t].kind == TAB_WINDOW)
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

/* Where compaction puts the new pages: each of P's pages the changes take
 * from every leaf that mapped it is freed (a page still mapped elsewhere
 * would stay and push a copy past the end: declined), and the new pages,
 * as many as were freed, fill the freed slots in ascending order in the
 * walk order of their first leaf, as compaction's placement does. */
static bool place(take *k)
{
    if (!k->n_ch)
        return true;
    if (!(k->freed = malloc(k->n_ch * sizeof *k->freed)) || !(k->np = malloc(k->n_ch * sizeof *k->np)))
        return false;
    qsort(k->ch, k->n_ch, sizeof *k->ch, by_o);
    for (size_t i = 0, j; i < k->n_ch; i = j) {
        for (j = i; j < k->n_ch && k->ch[j].o == k->ch[i].o; j++)
            ;
        if (j - i != (k->p->refs[k->ch[i].o] & REF_MAX))
            return false;
        k->freed[k->n_freed++] = k->ch[i].o;
    }
    qsort(k->ch, k->n_ch, sizeof *k->ch, by_x_key);
    size_t n_np = 0;
    for (size_t i = 0, j; i < k->n_ch; i = j) {
        for (j = i; j < k->n_ch && k->ch[j].x == k->ch[i].x; j++)
            ;
        sl_perm pm = k->ch[i].perm;
        k->np[n_np++] = (newpage){.x = k->ch[i].x, .key = k->ch[i].key, .first = i, .n = j - i,
                                  .cow = pm.writable || pm.kind == SL_MAP_COW};
    }
    if (n_np != k->n_freed)
        return false; /* the blob would change size */
    qsort(k->np, n_np, sizeof *k->np, np_by_key);
    for (size_t j = 0; j < n_np; j++)
        k->np[j].slot = k->freed[j];
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
 * the guest's permissions pm (place_piece: writable becomes CoW). */
static uint64_t rebuilt_leaf(unsigned arch, uint64_t slot, sl_perm pm)
{
    if (pm.writable || pm.kind == SL_MAP_COW) {
        pm.kind = SL_MAP_COW;
        pm.writable = false;
    } else {
        pm.kind = SL_MAP_BASIC;
    }
    pm.readable = true;
    return sl_pt_encode_leaf(arch, SL_BASE_ADDRESS + slot * SL_PAGE_SIZE, pm);
}

/* The blob pages that change: the freed slots, and every table page a
 * change is in unless it comes out as P's (a new page in its old page's
 * slot), with the new bytes of those in tabs. */
static bool rebuild_tables(take *k)
{
    for (size_t j = 0; j < k->n_freed; j++)
        for (size_t c = k->np[j].first; c < k->np[j].first + k->np[j].n; c++)
            k->ch[c].slot = k->np[j].slot;
    qsort(k->ch, k->n_ch, sizeof *k->ch, by_t_i);
    size_t n_t = 0;
    for (size_t c = 0; c < k->n_ch; c++)
        n_t += !c || k->ch[c].t != k->ch[c - 1].t;
    k->changed = malloc((k->n_freed + n_t + 1) * sizeof *k->changed);
    k->tabs = malloc((n_t + 1) * SL_PAGE_SIZE);
    if (!k->changed || !k->tabs)
        return false;
    memcpy(k->changed, k->freed, k->n_freed * sizeof *k->changed); /* ascending */
    k->n_changed = k->n_freed;
    const uint8_t *was = k->P->mem + k->P->visible_size;
    uint8_t *pg = k->tabs;
    for (size_t c = 0, d; c < k->n_ch; c = d) {
        const uint8_t *old = was + (uint64_t)k->ch[c].t * SL_PAGE_SIZE;
        memcpy(pg, old, SL_PAGE_SIZE);
        for (d = c; d < k->n_ch && k->ch[d].t == k->ch[c].t; d++)
            sl_put_le(pg + k->ch[d].i * k->esz, rebuilt_leaf(k->P->arch, k->ch[d].slot, k->ch[d].perm), k->esz);
        sl_pt_preset_accessed_dirty(k->P->arch, pg, SL_PAGE_SIZE);
        if (memcmp(pg, old, SL_PAGE_SIZE) != 0) {
            k->changed[k->n_changed++] = k->p->n_vis + k->ch[c].t;
            pg += SL_PAGE_SIZE;
        }
    }
    return true;
}

/* The new snapshot's pages that differ from the base: its parent's and
 * its own changes. Declined past an eighth of the blob (they are copied
 * at every take down the line): a full take then starts a new base. */
static bool merge_priv(take *k)
{
    const struct sl_incprep *p = k->p;
    size_t cap = p->n_priv + k->n_changed, n = 0, i = 0, j = 0;
    if (cap > (p->n_vis + p->n_pt) / 8 + 64 || !(k->priv = malloc((cap + 1) * sizeof *k->priv)))
        return false;
    while (i < p->n_priv || j < k->n_changed) {
        uint64_t a = i < p->n_priv ? p->priv[i] : UINT64_MAX, b = j < k->n_changed ? k->changed[j] : UINT64_MAX;
        k->priv[n++] = a < b ? a : b;
        i += a <= b;
        j += b <= a;
    }
    k->n_priv = n;
    return true;
}

/* The new blob: the base mapped copy-on-write, with the parent's own
 * pages and the changed ones written over it; read-only. */
static uint8_t *make_blob(const take *k)
{
    const struct sl_incprep *p = k->p;
    uint64_t size = k->P->mem_size;
    uint8_t *b = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, p->fd, 0);
    if (b == MAP_FAILED)
        return NULL;
    for (size_t i = 0, c = 0; i < p->n_priv; i++) {
        uint64_t pg = p->priv[i];
        while (c < k->n_changed && k->changed[c] < pg)
            c++;
        if (c == k->n_changed || k->changed[c] != pg)
            memcpy(b + pg * SL_PAGE_SIZE, k->P->mem + pg * SL_PAGE_SIZE, SL_PAGE_SIZE);
    }
    const sl_layout *l = k->st->layout;
    for (size_t j = 0; j < k->n_freed; j++)
        memcpy(b + k->np[j].slot * SL_PAGE_SIZE, k->st->scratch + (k->np[j].x - l->scratch_gpa), SL_PAGE_SIZE);
    const uint8_t *tab = k->tabs;
    for (size_t c = k->n_freed; c < k->n_changed; c++, tab += SL_PAGE_SIZE)
        memcpy(b + k->changed[c] * SL_PAGE_SIZE, tab, SL_PAGE_SIZE);
    mprotect(b, size, PROT_READ);
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
    s->visible_size = P->visible_size;
    s->pt_size = P->pt_size;
    s->mem_size = s->map_len = P->mem_size;
    atomic_store(&s->refs, 1);
    s->stats = p->stats;
    for (size_t j = 0; j < k->n_freed; j++) {
        bool was_cow = p->refs[k->freed[j]] & REF_COW;
        s->stats.pages_cow += (uint64_t)k->np[j].cow - was_cow;
        s->stats.pages_ro += (uint64_t)!k->np[j].cow - !was_cow;
    }
    s->stats.pages_kept = p->n_vis - k->n_freed;
    s->stats.pages_hashed = k->n_changed;
}

/* Compaction's `kept`: every page of P but the freed ones. */
static bool fill_kept(sl_snapshot *s, const take *k)
{
    uint64_t n = k->p->n_vis;
    if (!(s->kept = malloc((n + 63) / 64 * sizeof *s->kept)))
        return false;
    memset(s->kept, 0xFF, (n + 63) / 64 * sizeof *s->kept);
    if (n % 64)
        s->kept[n / 64] = (1ull << (n % 64)) - 1;
    for (size_t j = 0; j < k->n_freed; j++)
        s->kept[k->freed[j] / 64] &= ~(1ull << (k->freed[j] % 64));
    s->kept_pages = n;
    return true;
}

/* The new snapshot's prep: its parent's, with the moved pages' counts. */
static struct sl_incprep *pass_on(take *k, const sl_snapshot *s)
{
    const struct sl_incprep *p = k->p;
    struct sl_incprep *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    *q = (struct sl_incprep){.ok = true, .layout = p->layout, .fd = p->fd, .n_vis = p->n_vis, .n_pt = p->n_pt,
                             .stats = s->stats};
    q->tab = malloc(p->n_pt * sizeof *q->tab + 1);
    q->refs = malloc(p->n_vis * sizeof *q->refs);
    if (!q->tab || !q->refs) {
        sl_incprep_free(q);
        return NULL;
    }
    memcpy(q->tab, p->tab, p->n_pt * sizeof *q->tab);
    memcpy(q->refs, p->refs, p->n_vis * sizeof *q->refs);
    for (size_t j = 0; j < k->n_freed; j++)
        q->refs[k->np[j].slot] = (uint32_t)k->np[j].n | (k->np[j].cow ? REF_COW : 0);
    q->priv = k->priv;
    q->n_priv = k->n_priv;
    k->priv = NULL;
    q->fd_owner = sl_snapshot_ref(p->fd_owner ? p->fd_owner : (sl_snapshot *)k->P);
    return q;
}

static int build(take *k, sl_snapshot **out)
{
    const sl_hashtree *base = k->p->tree ? k->p->tree : k->P->tree;
    sl_snapshot *s = calloc(1, sizeof *s);
    sl_hashtree *t = base ? sl_hashtree_dup(base) : NULL;
    uint8_t *blob = t && s ? make_blob(k) : NULL;
    struct sl_incprep *q = NULL;
    if (!blob || !fill_kept(s, k) || !(q = pass_on(k, s))) {
        if (blob)
            munmap(blob, k->P->mem_size);
        sl_hashtree_free(t);
        if (s)
            free(s->kept);
        free(s);
        return SL_INC_DECLINED;
    }
    s->mem = s->map_base = blob;
    fill(s, k);
    q->stats = s->stats;
    sl_hashtree_update(t, blob, k->changed, k->n_changed);
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
    if (find_changes(&k) && place(&k) && rebuild_tables(&k) && merge_priv(&k))
        rc = build(&k, out);
    take_free(&k);
    return rc;
}
