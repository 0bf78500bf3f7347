/* sl_snapshot_diff (sandlet.h): what differs between two snapshots, by
 * address space and guest virtual range.
 *
 * Address space i of each snapshot is walked on its own, as the MMU walks it
 * with that root in CR3: the multi-space walk (sl_pt_walk_spaces) is given a
 * record of seen tables that never finds one, so it descends every table
 * each time it is reached, and shared sub-tables count in every space that
 * maps them, with the permissions of that space's path. The leaves, cut
 * into pieces of one backing by the rules inspect uses (snapgpa.h), become a
 * sorted list of extents; the two lists of space i are then merged by
 * address, pages mapped on both sides compared by content, and the result
 * handed out as ranges of one kind. */
#include <stdlib.h>
#include <string.h>

#include "snapfile.h"
#include "snapgpa.h"

#define PAGE_SHIFT 12

/* A run of virtual pages that map consecutive pages of one backing with one
 * set of permissions. */
typedef struct extent {
    uint64_t vpn, n; /* first virtual page (gva >> 12) and count */
    uint64_t gpn;    /* first guest-physical page, for the blob and tables; 0 for constant backings */
    uint8_t perm;    /* SL_PERM_* */
    uint8_t bk;      /* enum sl_backing */
} extent;

/* One snapshot's side of the comparison of one address space. */
typedef struct side {
    const sl_snapshot *s;
    const char *name; /* "A" or "B", for messages */
    extent *x;
    size_t n, cap;
    unsigned perm;       /* of the leaf being cut into pieces */
    uint64_t tables;     /* tables the walk of this space visited */
    uint64_t table_max;  /* ... at most: the blob's pages */
    uint64_t pages;      /* pages of the blob (visible or tables) this space maps */
    uint64_t page_max;   /* ... at most */
    int err;             /* SL_ENOMEM or SL_ERANGE from a visit, which stopped the walk */
} side;

/* Hands the ranges out, merging adjacent pages of one kind and permissions. */
typedef struct emitter {
    sl_diff_fn fn;
    void *user;
    bool open;
    sl_diff_range r;
    uint64_t end_vpn; /* of the open range (exclusive); 2^52 at the top of the amd64 space */
    int stop;         /* fn's non-zero value */
} emitter;

static const uint8_t zero_page[SL_PAGE_SIZE];

/* ---- one address space, as extents ---- */

static bool never_seen(void *ctx, uint64_t gpa, unsigned *root, uint64_t *va, unsigned *depth)
{
    (void)ctx, (void)gpa, (void)root, (void)va, (void)depth;
    return false;
}

/* Every backed table is a page of the blob: a walk that visits more tables
 * than that has reached one twice, and could go on for 512^3 visits. */
static bool count_table(void *ctx, uint64_t gpa, unsigned root, uint64_t va, unsigned depth)
{
    (void)gpa, (void)root, (void)va, (void)depth;
    side *sd = ctx;
    return ++sd->tables <= sd->table_max;
}

static unsigned perm_bits(const sl_perm *p)
{
    return SL_PERM_READ | (p->writable ? SL_PERM_WRITE : 0) | (p->executable ? SL_PERM_EXEC : 0) |
           (p->user ? SL_PERM_USER : 0) | (p->kind == SL_MAP_COW ? SL_PERM_COW : 0);
}

static bool has_content(uint8_t bk) { return bk == SL_BACKING_BLOB || bk == SL_BACKING_TABLES; }

static bool on_piece(void *arg, uint64_t gva, uint64_t gpa, uint64_t len, enum sl_backing bk, bool window)
{
    side *sd = arg;
    if (window)
        return true; /* mapped afresh by every restore: not part of the snapshot */
    extent e = {.vpn = gva >> PAGE_SHIFT, .n = len >> PAGE_SHIFT, .perm = (uint8_t)sd->perm, .bk = (uint8_t)bk};
    if (has_content(e.bk)) {
        e.gpn = gpa >> PAGE_SHIFT;
        if ((sd->pages += e.n) > sd->page_max)
            return sd->err = SL_ERANGE, false;
    }
    extent *last = sd->n ? &sd->x[sd->n - 1] : NULL;
    if (last && last->vpn + last->n == e.vpn && last->perm == e.perm && last->bk == e.bk &&
        (!has_content(e.bk) || last->gpn + last->n == e.gpn)) {
        last->n += e.n;
        return true;
    }
    if (sd->n == sd->cap) {
        size_t ncap = sd->cap ? sd->cap * 2 : 256;
        extent *nx = realloc(sd->x, ncap * sizeof *nx);
        if (!nx)
            return sd->err = SL_ENOMEM, false;
        sd->x = nx;
        sd->cap = ncap;
    }
    sd->x[sd->n++] = e;
    return true;
}

static bool on_item(void *arg, const sl_walk_item *it)
{
    side *sd = arg;
    if (it->kind != SL_WALK_THIS_SPACE)
        return true; /* never_seen: no table is reported as shared */
    sd->perm = perm_bits(&it->map.perm);
    return sl_snapgpa_pieces(sd->s, &it->map, on_piece, sd);
}

/* Address space `space` of sd's snapshot as extents in sd->x (none when the
 * snapshot has fewer spaces). */
static int collect(side *sd, unsigned space, sl_errbuf *e)
{
    const sl_snapshot *s = sd->s;
    sd->n = 0;
    sd->tables = sd->pages = 0;
    sd->err = 0;
    if (space >= sl_snapshot_n_roots(s))
        return 0;
    sl_pt_mem m = sl_snapgpa_mem(s);
    sl_pt_seen seen = {.ctx = sd, .lookup = never_seen, .record = count_table};
    uint64_t root = sl_snapshot_root(s, space);
    int rc = sl_pt_walk_spaces(sl_snapshot_arch(s), &m, &root, 1, &seen, on_item, sd);
    if (sd->err == SL_ENOMEM)
        return sl_err(e, SL_ENOMEM, "snapshot diff: out of memory");
    if (sd->err == SL_ERANGE)
        return sl_err(e, SL_ERANGE,
                      "snapshot diff: address space %u of snapshot %s maps more than %llu pages of its blob "
                      "(large pages mapping it many times)",
                      space, sd->name, (unsigned long long)sd->page_max);
    if (rc == SL_PT_ELIMIT)
        return sl_err(e, SL_EPAGETABLE,
                      "snapshot diff: walking address space %u of snapshot %s visits more page tables than "
                      "its blob has pages (%llu): it reaches tables twice",
                      space, sd->name, (unsigned long long)sd->table_max);
    if (rc)
        return sl_err(e, SL_EPAGETABLE, "snapshot diff: page-table walk of snapshot %s failed (%d)", sd->name, rc);
    return 0;
}

/* The bounds of a walk of one space: tables can only be pages of the blob;
 * a snapshot sandlet wrote maps each page by a 4 KiB entry of its table
 * area, and large pages (in files made by hand) may add one mapping of each
 * page of the blob. */
static void side_init(side *sd, const sl_snapshot *s, const char *name)
{
    memset(sd, 0, sizeof *sd);
    sd->s = s;
    sd->name = name;
    uint64_t pt_size = sl_snapshot_page_table_size(s);
    uint64_t blob_pages = (sl_snapshot_memory_size(s) + pt_size) >> PAGE_SHIFT;
    sd->table_max = blob_pages;
    sd->page_max = pt_size / (sl_snapshot_arch(s) == SL_ARCH_I686 ? 4 : 8) + blob_pages;
}

/* ---- the ranges ---- */

static void flush(emitter *em)
{
    if (!em->open || em->stop)
        return;
    em->open = false;
    em->stop = em->fn(em->user, &em->r);
}

/* Pages [vpn, vpn + n) of `space` are of `kind` (0: identical) with these
 * permissions. */
static void emit(emitter *em, unsigned space, int kind, uint64_t vpn, uint64_t n, unsigned pa, unsigned pb)
{
    sl_diff_range *r = &em->r;
    if (em->open && r->space == space && r->kind == kind && em->end_vpn == vpn && r->perm_a == pa &&
        r->perm_b == pb) {
        r->size += n << PAGE_SHIFT;
        em->end_vpn += n;
        return;
    }
    flush(em);
    if (!kind || em->stop)
        return;
    *r = (sl_diff_range){.space = space, .kind = kind, .start = vpn << PAGE_SHIFT, .size = n << PAGE_SHIFT,
                         .perm_a = pa, .perm_b = pb};
    em->end_vpn = vpn + n;
    em->open = true;
}

/* The 4096 bytes page `vpn` of extent x reads in snapshot s: a page of the
 * blob, zeros for scratch, NULL where there is no memory. */
static const uint8_t *content(const sl_snapshot *s, const extent *x, uint64_t vpn)
{
    if (has_content(x->bk))
        return sl_snapgpa_page(s, (x->gpn + (vpn - x->vpn)) << PAGE_SHIFT);
    return x->bk == SL_BACKING_SCRATCH ? zero_page : NULL;
}

static bool same_content(const uint8_t *pa, const uint8_t *pb)
{
    return pa == pb || (pa && pb && memcmp(pa, pb, SL_PAGE_SIZE) == 0);
}

static int kind_of(bool same, unsigned pa, unsigned pb)
{
    return !same ? SL_DIFF_CHANGED : pa != pb ? SL_DIFF_PERM : 0;
}

/* Pages [lo, hi) are mapped by xa in A and xb in B. Where neither side has
 * contents of its own (scratch, no memory) one comparison serves the run. */
static void compare_both(emitter *em, unsigned space, const side *a, const extent *xa, const side *b,
                         const extent *xb, uint64_t lo, uint64_t hi)
{
    if (!has_content(xa->bk) && !has_content(xb->bk)) {
        emit(em, space, kind_of(xa->bk == xb->bk, xa->perm, xb->perm), lo, hi - lo, xa->perm, xb->perm);
        return;
    }
    for (uint64_t v = lo; v < hi && !em->stop; v++) {
        bool same = same_content(content(a->s, xa, v), content(b->s, xb, v));
        emit(em, space, kind_of(same, xa->perm, xb->perm), v, 1, xa->perm, xb->perm);
    }
}

/* Merges the extents of one space by address. */
static void compare_space(emitter *em, unsigned space, const side *a, const side *b)
{
    size_t i = 0, j = 0;
    uint64_t cur = 0; /* pages below it are done */
    while ((i < a->n || j < b->n) && !em->stop) {
        const extent *xa = i < a->n ? &a->x[i] : NULL, *xb = j < b->n ? &b->x[j] : NULL;
        uint64_t sa = xa ? (xa->vpn > cur ? xa->vpn : cur) : UINT64_MAX;
        uint64_t sb = xb ? (xb->vpn > cur ? xb->vpn : cur) : UINT64_MAX;
        uint64_t ea = xa ? xa->vpn + xa->n : UINT64_MAX, eb = xb ? xb->vpn + xb->n : UINT64_MAX;
        uint64_t lo = sa < sb ? sa : sb, hi;
        if (sa < sb) {
            hi = ea < sb ? ea : sb;
            emit(em, space, SL_DIFF_REMOVED, lo, hi - lo, xa->perm, 0);
        } else if (sb < sa) {
            hi = eb < sa ? eb : sa;
            emit(em, space, SL_DIFF_ADDED, lo, hi - lo, 0, xb->perm);
        } else {
            hi = ea < eb ? ea : eb;
            compare_both(em, space, a, xa, b, xb, lo, hi);
        }
        cur = hi;
        i += xa && ea == hi;
        j += xb && eb == hi;
    }
}

/* ---- the call ---- */

static int diff(const sl_snapshot *a, const sl_snapshot *b, sl_diff_fn fn, void *user, sl_errbuf *e)
{
    int rc;
    if ((rc = sl_snapfile_check(a, "before a diff", e)) || (rc = sl_snapfile_check(b, "before a diff", e)))
        return rc;
    if (a == b)
        return 0; /* (equal identities would not do: load does not check a file's) */
    side sa, sb;
    side_init(&sa, a, "A");
    side_init(&sb, b, "B");
    emitter em = {.fn = fn, .user = user};
    unsigned na = sl_snapshot_n_roots(a), nb = sl_snapshot_n_roots(b), n = na > nb ? na : nb;
    for (unsigned space = 0; space < n && !rc && !em.stop; space++)
        if (!(rc = collect(&sa, space, e)) && !(rc = collect(&sb, space, e)))
            compare_space(&em, space, &sa, &sb);
    if (!rc)
        flush(&em);
    free(sa.x);
    free(sb.x);
    /* A file that lost pages read as zeros (the SIGBUS handler): what was
     * compared is not the snapshot. */
    int crc = sl_snapfile_check(a, "during a diff", e);
    if (!crc)
        crc = sl_snapfile_check(b, "during a diff", e);
    return crc ? crc : rc ? rc : em.stop;
}

int sl_snapshot_diff(const sl_snapshot *a, const sl_snapshot *b, sl_diff_fn fn, void *user, char *err,
                     size_t errlen)
{
    sl_errbuf e = {{0}};
    int rc = !a || !b || !fn ? sl_err(&e, SL_EINVAL, "snapshot diff: no snapshot or no callback")
                             : diff(a, b, fn, user, &e);
    return rc < 0 ? sl_err_report(rc, &e, err, errlen) : rc;
}
