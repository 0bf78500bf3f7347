/* sl_snapshot_diff on snapshots compacted from simulated guests (no KVM):
 * the exact ranges of hand-made differences (pages added, removed, changed,
 * permissions changed, in one space and in several, on both architectures),
 * no differences where only the blob's layout differs, and hostile tables
 * (large pages, a table reached twice in one space, walks past the bounds).
 *
 * Every diff is also checked against an oracle that shares no code with it:
 * sl_pt_translate lists every mapped 4 KiB page of each space (descending
 * every table each time, as the MMU does), each page is classified by its
 * GVA (the scratch window is left out) and GPA (blob, tables, scratch reads
 * as zeros, nothing), and pages are compared byte by byte. The ranges must
 * list exactly the pages that differ, each once, in order, merged as far as
 * kind and permissions allow. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pt.h"
#include "snapshot.h"
#include "t.h"
#include "../common/files.h"
#include "../common/sim.h"
/* White-box: hostile tables are written into a copy of a snapshot. */
#include "snapshot_impl.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define R SL_PERM_READ
#define W SL_PERM_WRITE
#define X SL_PERM_EXEC
#define U SL_PERM_USER
#define C SL_PERM_COW

/* ---------------- snapshots of simulated guests ---------------- */

/* 64 pages of guest-visible memory; page i is filled with byte i + 1. */
static bool g_new(guest *g, unsigned arch, unsigned n_roots)
{
    if (!guest_setup(g, arch, 64, 1 * MiB, n_roots))
        return false;
    for (unsigned i = 0; i < 64; i++)
        memset(g->snap + i * SL_PAGE_SIZE, (int)i + 1, SL_PAGE_SIZE);
    return true;
}

static sl_perm pm(unsigned bits)
{
    sl_perm p = {.kind = SL_MAP_BASIC, .readable = true, .writable = (bits & W) != 0,
                 .executable = (bits & X) != 0, .user = (bits & U) != 0};
    return p;
}

/* Maps n pages from visible page `page` at gva in space `root`. */
static bool g_map(guest *g, unsigned root, uint64_t gva, unsigned page, unsigned n, unsigned bits)
{
    sl_pt_mem m = g_mem(g);
    int rc = sl_pt_map(g->l.arch, &m, g->roots[root], gva, SL_BASE_ADDRESS + page * SL_PAGE_SIZE,
                       (uint64_t)n * SL_PAGE_SIZE, pm(bits));
    if (rc)
        printf("  sl_pt_map(0x%" PRIx64 ") = %d\n", gva, rc);
    return rc == 0;
}

/* Compacts the guest into a snapshot (and frees the guest). */
static sl_snapshot *g_snap(guest *g)
{
    sl_snapshot *s = NULL;
    sl_errbuf e;
    sl_guest_state st = {.layout = &g->l, .snap_mem = g->snap, .snap_size = g->snap_size, .scratch = g->scratch,
                         .roots = g->roots, .n_roots = g->n_roots, .cur_root = 0, .stack_top = 0x7ff000,
                         .next_kind = SL_NEXT_CALL, .next_addr = 0x400010, .generation = 1};
    int rc = sl_snapshot_from_memory(&s, &st, &e);
    if (rc)
        printf("  from_memory: %s\n", e.msg);
    guest_free(g);
    return rc ? NULL : s;
}

/* ---------------- the diff, collected ---------------- */

typedef struct ranges {
    sl_diff_range *r;
    size_t n, cap;
    int stop_after; /* return 7 after this many ranges (0: never) */
} ranges;

static int gather(void *user, const sl_diff_range *r)
{
    ranges *v = user;
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->r = realloc(v->r, v->cap * sizeof *v->r);
        if (!v->r)
            abort();
    }
    v->r[v->n++] = *r;
    return v->stop_after && (int)v->n >= v->stop_after ? 7 : 0;
}

/* ---------------- the oracle ---------------- */

static void *o_page(void *ctx, uint64_t gpa)
{
    const sl_snapshot *s = ctx;
    if (gpa % SL_PAGE_SIZE)
        return NULL;
    if (gpa >= SL_BASE_ADDRESS && gpa - SL_BASE_ADDRESS < s->visible_size)
        return s->mem + (gpa - SL_BASE_ADDRESS);
    if (gpa >= s->layout.pt_gpa && gpa - s->layout.pt_gpa < s->pt_size)
        return s->mem + s->visible_size + (gpa - s->layout.pt_gpa);
    return NULL;
}

typedef struct opage {
    uint64_t vpn;
    unsigned perm;
    const uint8_t *bytes; /* NULL: no memory */
} opage;

typedef struct olist {
    const sl_snapshot *s;
    opage *p;
    size_t n, cap;
} olist;

static const uint8_t zeros[SL_PAGE_SIZE];

static bool o_visit(void *arg, const sl_mapping *m)
{
    olist *o = arg;
    const sl_layout *l = &o->s->layout;
    if (m->gva >= l->scratch_gva && m->gva - l->scratch_gva < l->scratch_size)
        return true;
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 1024;
        o->p = realloc(o->p, o->cap * sizeof *o->p);
        if (!o->p)
            abort();
    }
    const uint8_t *b = o_page((void *)o->s, m->gpa);
    if (!b && m->gpa >= l->scratch_gpa && m->gpa - l->scratch_gpa < l->scratch_size)
        b = zeros;
    unsigned perm = R | (m->perm.writable ? W : 0) | (m->perm.executable ? X : 0) | (m->perm.user ? U : 0) |
                    (m->perm.kind == SL_MAP_COW ? C : 0);
    o->p[o->n++] = (opage){.vpn = m->gva >> 12, .perm = perm, .bytes = b};
    return true;
}

static void o_space(olist *o, const sl_snapshot *s, unsigned space)
{
    o->s = s;
    o->n = 0;
    if (space >= s->n_roots)
        return;
    sl_pt_mem m = {.ctx = (void *)s, .page = o_page};
    if (s->arch == SL_ARCH_I686) {
        sl_pt_translate(s->arch, &m, s->roots[space], 0, 1ull << 32, o_visit, o);
    } else {
        sl_pt_translate(s->arch, &m, s->roots[space], 0, 1ull << 47, o_visit, o);
        sl_pt_translate(s->arch, &m, s->roots[space], 0xffff800000000000ull, 1ull << 47, o_visit, o);
    }
}

/* The next page the diff says differs, from the ranges (cursor in *ri, *pi). */
static bool next_reported(const ranges *v, size_t *ri, uint64_t *pi, opage *out, int *kind, unsigned *space)
{
    while (*ri < v->n && *pi >= v->r[*ri].size / SL_PAGE_SIZE) {
        (*ri)++;
        *pi = 0;
    }
    if (*ri >= v->n)
        return false;
    const sl_diff_range *r = &v->r[*ri];
    out->vpn = (r->start >> 12) + (*pi)++;
    *kind = r->kind;
    *space = r->space;
    return true;
}

/* Checks the ranges against the oracle; returns the number of mismatches. */
static unsigned oracle_check(const sl_snapshot *a, const sl_snapshot *b, const ranges *v)
{
    unsigned bad = 0, n = a->n_roots > b->n_roots ? a->n_roots : b->n_roots;
    size_t ri = 0;
    uint64_t pi = 0;
    olist oa = {0}, ob = {0};
    for (unsigned sp = 0; sp < n; sp++) {
        o_space(&oa, a, sp);
        o_space(&ob, b, sp);
        size_t i = 0, j = 0;
        while (i < oa.n || j < ob.n) {
            const opage *pa = i < oa.n ? &oa.p[i] : NULL, *pb = j < ob.n ? &ob.p[j] : NULL;
            uint64_t va = pa ? pa->vpn : UINT64_MAX, vb = pb ? pb->vpn : UINT64_MAX, vpn = va < vb ? va : vb;
            int want = 0;
            if (va < vb)
                want = SL_DIFF_REMOVED;
            else if (vb < va)
                want = SL_DIFF_ADDED;
            else if (!(pa->bytes == pb->bytes || (pa->bytes && pb->bytes && !memcmp(pa->bytes, pb->bytes, SL_PAGE_SIZE))))
                want = SL_DIFF_CHANGED;
            else if (pa->perm != pb->perm)
                want = SL_DIFF_PERM;
            i += va == vpn;
            j += vb == vpn;
            if (!want)
                continue;
            opage got;
            int kind;
            unsigned space;
            bool ok = next_reported(v, &ri, &pi, &got, &kind, &space);
            const sl_diff_range *r = ok ? &v->r[ri] : NULL;
            ok = ok && space == sp && got.vpn == vpn && kind == want &&
                 r->perm_a == (va == vpn ? pa->perm : 0) && r->perm_b == (vb == vpn ? pb->perm : 0);
            if (!ok && bad++ < 5)
                printf("  oracle: space %u page 0x%" PRIx64 " should be kind %d\n", sp, vpn << 12, want);
        }
    }
    opage dummy;
    int kind;
    unsigned space;
    if (next_reported(v, &ri, &pi, &dummy, &kind, &space) && bad++ < 5)
        printf("  oracle: page 0x%" PRIx64 " of space %u reported but identical\n", dummy.vpn << 12, space);
    /* Maximal: adjacent ranges differ in kind or permissions. */
    for (size_t k = 1; k < v->n; k++) {
        const sl_diff_range *p = &v->r[k - 1], *q = &v->r[k];
        if (p->space == q->space && p->start + p->size == q->start && p->kind == q->kind &&
            p->perm_a == q->perm_a && p->perm_b == q->perm_b && bad++ < 5)
            printf("  ranges %zu and %zu should be one\n", k - 1, k);
    }
    free(oa.p);
    free(ob.p);
    return bad;
}

/* Diffs a against b and checks the result with the oracle. */
static int diff_checked(const sl_snapshot *a, const sl_snapshot *b, ranges *v)
{
    char err[256] = "";
    v->n = 0;
    int rc = sl_snapshot_diff(a, b, gather, v, err, sizeof err);
    if (rc < 0)
        printf("  diff: %s\n", err);
    if (rc == 0 && oracle_check(a, b, v))
        return -1000;
    return rc;
}

static bool range_is(const sl_diff_range *r, unsigned space, int kind, uint64_t start, uint64_t pages, unsigned pa,
                     unsigned pb)
{
    bool ok = r->space == space && r->kind == kind && r->start == start && r->size == pages * SL_PAGE_SIZE &&
              r->perm_a == pa && r->perm_b == pb;
    if (!ok)
        printf("  range: space %u kind %d 0x%" PRIx64 " +%" PRIu64 " perms 0x%x 0x%x; expected space %u kind %d "
               "0x%" PRIx64 " +%" PRIu64 " perms 0x%x 0x%x\n",
               r->space, r->kind, r->start, r->size / SL_PAGE_SIZE, r->perm_a, r->perm_b, space, kind, start, pages,
               pa, pb);
    return ok;
}

/* ---------------- tests ---------------- */

/* A guest with code, data and a read-only page (the base of most tests). */
static bool g_base(guest *g, unsigned arch)
{
    return g_new(g, arch, 1) && g_map(g, 0, 0x400000, 0, 4, R | X | U) && g_map(g, 0, 0x500000, 4, 4, R | W | U) &&
           g_map(g, 0, 0x600000, 8, 1, R | U) && g_map(g, 0, 0x10000, 9, 1, R);
}

static void test_identical(void)
{
    guest ga, gb;
    REQUIRE(g_base(&ga, SL_ARCH_AMD64) && g_base(&gb, SL_ARCH_AMD64));
    sl_snapshot *a = g_snap(&ga), *b = g_snap(&gb);
    REQUIRE(a && b);
    ranges v = {0};
    CHECK_EQ(diff_checked(a, a, &v), 0); /* itself */
    CHECK_EQ(v.n, 0);
    CHECK_EQ(diff_checked(a, b, &v), 0); /* made twice */
    CHECK_EQ(v.n, 0);
    free(v.r);
    sl_snapshot_free(a);
    sl_snapshot_free(b);
}

/* A maps one page at two addresses, B two pages with its bytes: the blobs
 * differ (size and order), the contents at every address do not. */
static void test_layout_does_not_matter(void)
{
    guest ga, gb;
    REQUIRE(g_new(&ga, SL_ARCH_AMD64, 1) && g_new(&gb, SL_ARCH_AMD64, 1));
    memset(gb.snap + 20 * SL_PAGE_SIZE, 3, SL_PAGE_SIZE); /* = page 2 */
    memset(gb.snap + 21 * SL_PAGE_SIZE, 3, SL_PAGE_SIZE);
    memset(gb.snap + 22 * SL_PAGE_SIZE, 6, SL_PAGE_SIZE); /* = page 5 */
    REQUIRE(g_map(&ga, 0, 0x400000, 2, 1, R | U) && g_map(&ga, 0, 0x401000, 2, 1, R | U) &&
            g_map(&ga, 0, 0x402000, 5, 1, R | U));
    REQUIRE(g_map(&gb, 0, 0x400000, 21, 1, R | U) && g_map(&gb, 0, 0x401000, 20, 1, R | U) &&
            g_map(&gb, 0, 0x402000, 22, 1, R | U));
    sl_snapshot *a = g_snap(&ga), *b = g_snap(&gb);
    REQUIRE(a && b);
    CHECK(sl_snapshot_memory_size(a) != sl_snapshot_memory_size(b));
    ranges v = {0};
    CHECK_EQ(diff_checked(a, b, &v), 0);
    CHECK_EQ(v.n, 0);
    free(v.r);
    sl_snapshot_free(a);
    sl_snapshot_free(b);
}

/* One of each kind, at known addresses; then the same the other way round. */
static void test_kinds(unsigned arch)
{
    guest ga, gb;
    REQUIRE(g_base(&ga, arch) && g_base(&gb, arch));
    memset(gb.snap + 5 * SL_PAGE_SIZE, 0xee, 2 * SL_PAGE_SIZE);    /* data pages 1, 2: changed */
    REQUIRE(g_map(&gb, 0, 0x403000, 3, 1, R | U));                  /* code page 3: no longer executable */
    REQUIRE(g_map(&gb, 0, 0x500000, 30, 1, R | U));                 /* data page 0: other bytes, read-only */
    sl_pt_mem m = g_mem(&gb);
    sl_perm none = {.kind = SL_MAP_UNMAPPED};
    REQUIRE(sl_pt_map(arch, &m, gb.roots[0], 0x600000, 0, SL_PAGE_SIZE, none) == 0); /* removed */
    REQUIRE(g_map(&gb, 0, 0x700000, 40, 3, R | W | U));                                /* added */
    sl_snapshot *a = g_snap(&ga), *b = g_snap(&gb);
    REQUIRE(a && b);
    /* i686 has no NX: every page is executable there. */
    unsigned x = arch == SL_ARCH_I686 ? X : 0, ro = R | U | x;
    ranges v = {0};
    CHECK_EQ(diff_checked(a, b, &v), 0);
    REQUIRE(v.n == (arch == SL_ARCH_I686 ? 4u : 5u));
    size_t k = 0;
    if (arch != SL_ARCH_I686)
        CHECK(range_is(&v.r[k++], 0, SL_DIFF_PERM, 0x403000, 1, R | X | U, R | U));
    CHECK(range_is(&v.r[k++], 0, SL_DIFF_CHANGED, 0x500000, 1, R | C | U | x, ro));
    CHECK(range_is(&v.r[k++], 0, SL_DIFF_CHANGED, 0x501000, 2, R | C | U | x, R | C | U | x));
    CHECK(range_is(&v.r[k++], 0, SL_DIFF_REMOVED, 0x600000, 1, ro, 0));
    CHECK(range_is(&v.r[k++], 0, SL_DIFF_ADDED, 0x700000, 3, 0, R | C | U | x));
    CHECK_EQ(diff_checked(b, a, &v), 0);
    REQUIRE(v.n == (arch == SL_ARCH_I686 ? 4u : 5u));
    k = arch == SL_ARCH_I686 ? 0 : 1;
    CHECK(range_is(&v.r[k + 3], 0, SL_DIFF_REMOVED, 0x700000, 3, R | C | U | x, 0));
    CHECK(range_is(&v.r[k + 2], 0, SL_DIFF_ADDED, 0x600000, 1, 0, ro));
    free(v.r);
    sl_snapshot_free(a);
    sl_snapshot_free(b);
}

static void test_kinds_amd64(void) { test_kinds(SL_ARCH_AMD64); }
static void test_kinds_i686(void) { test_kinds(SL_ARCH_I686); }

/* Spaces matched by index: space 1 shares space 0's tables below the root
 * (as sl_space_create makes it), so a page changed there differs in both;
 * B's extra space is all added, and the other way round all removed. */
static void test_spaces(void)
{
    guest ga, gb;
    REQUIRE(g_new(&ga, SL_ARCH_AMD64, 2) && g_new(&gb, SL_ARCH_AMD64, 3));
    guest *gs[2] = {&ga, &gb};
    for (int i = 0; i < 2; i++) {
        guest *g = gs[i];
        REQUIRE(g_map(g, 0, 0x400000, 0, 4, R | X | U));
        sl_pt_mem m = g_mem(g);
        uint64_t t;
        REQUIRE(sl_pt_table_at(SL_ARCH_AMD64, &m, g->roots[0], 0x400000, 1, false, &t) == 0);
        REQUIRE(sl_pt_link(SL_ARCH_AMD64, &m, g->roots[1], 0x400000, 0, t) == 0);
        REQUIRE(g_map(g, 1, 0x8000000000ull, 10 + i, 1, R | W | U)); /* private to space 1 */
    }
    memset(gb.snap + 2 * SL_PAGE_SIZE, 0x55, SL_PAGE_SIZE);
    REQUIRE(g_map(&gb, 2, 0x900000, 20, 2, R | U));
    sl_snapshot *a = g_snap(&ga), *b = g_snap(&gb);
    REQUIRE(a && b);
    ranges v = {0};
    CHECK_EQ(diff_checked(a, b, &v), 0);
    REQUIRE(v.n == 4);
    CHECK(range_is(&v.r[0], 0, SL_DIFF_CHANGED, 0x402000, 1, R | X | U, R | X | U));
    CHECK(range_is(&v.r[1], 1, SL_DIFF_CHANGED, 0x402000, 1, R | X | U, R | X | U));
    CHECK(range_is(&v.r[2], 1, SL_DIFF_CHANGED, 0x8000000000ull, 1, R | C | U, R | C | U));
    CHECK(range_is(&v.r[3], 2, SL_DIFF_ADDED, 0x900000, 2, 0, R | U));
    CHECK_EQ(diff_checked(b, a, &v), 0);
    REQUIRE(v.n == 4);
    CHECK(range_is(&v.r[3], 2, SL_DIFF_REMOVED, 0x900000, 2, R | U, 0));
    free(v.r);
    sl_snapshot_free(a);
    sl_snapshot_free(b);
}

/* Different architectures compare too: by address, as the oracle says. */
static void test_across_architectures(void)
{
    guest ga, gb;
    REQUIRE(g_base(&ga, SL_ARCH_AMD64) && g_base(&gb, SL_ARCH_I686));
    sl_snapshot *a = g_snap(&ga), *b = g_snap(&gb);
    REQUIRE(a && b);
    ranges v = {0};
    CHECK_EQ(diff_checked(a, b, &v), 0);
    CHECK(v.n > 0);
    free(v.r);
    sl_snapshot_free(a);
    sl_snapshot_free(b);
}

/* A non-zero return stops the diff, which returns that value. */
static void test_stop_and_errors(void)
{
    guest ga, gb;
    REQUIRE(g_base(&ga, SL_ARCH_AMD64) && g_new(&gb, SL_ARCH_AMD64, 1));
    sl_snapshot *a = g_snap(&ga), *b = g_snap(&gb);
    REQUIRE(a && b);
    ranges v = {.stop_after = 1};
    char err[256] = "";
    CHECK_EQ(sl_snapshot_diff(a, b, gather, &v, err, sizeof err), 7);
    CHECK_EQ(v.n, 1);
    CHECK_EQ(sl_snapshot_diff(NULL, b, gather, &v, err, sizeof err), SL_EINVAL);
    CHECK(strstr(err, "snapshot diff") != NULL);
    CHECK_EQ(sl_snapshot_diff(a, NULL, gather, &v, NULL, 0), SL_EINVAL);
    CHECK_EQ(sl_snapshot_diff(a, b, NULL, &v, NULL, 0), SL_EINVAL);
    free(v.r);
    sl_snapshot_free(a);
    sl_snapshot_free(b);
}

/* ---------------- hostile tables, in a writable copy ---------------- */

/* A copy of s whose blob the test may rewrite (never freed with
 * sl_snapshot_free: it maps nothing and has no file). */
static sl_snapshot *fake_of(const sl_snapshot *s)
{
    sl_snapshot *f = malloc(sizeof *f);
    uint8_t *mem = malloc(s->mem_size);
    if (!f || !mem)
        abort();
    memcpy(f, s, sizeof *f);
    memcpy(mem, s->mem, s->mem_size);
    f->mem = mem;
    f->map_base = NULL;
    f->file = NULL;
    return f;
}

static void fake_free(sl_snapshot *f)
{
    free(f->mem);
    free(f);
}

/* Writes a raw amd64 entry at table level `depth` for gva (the tables on
 * the way must exist). */
static bool set_entry(sl_snapshot *f, unsigned depth, uint64_t gva, uint64_t entry)
{
    sl_pt_mem m = {.ctx = f, .page = o_page};
    uint64_t t;
    if (sl_pt_table_at(f->arch, &m, f->roots[0], gva, depth, false, &t) != 0)
        return false;
    uint8_t *page = o_page(f, t);
    unsigned idx = (unsigned)(gva >> (12 + 9 * (3 - depth))) & 511;
    memcpy(page + idx * 8, &entry, 8);
    return true;
}

/* A guest whose tables have room: its pages at 0x400000 and at 0x40000000
 * (another PD and PT), 2 MiB apart. Page 2 (at 0x402000) is all zeros. */
static sl_snapshot *roomy(void)
{
    guest g;
    if (!g_new(&g, SL_ARCH_AMD64, 1))
        return NULL;
    memset(g.snap + 2 * SL_PAGE_SIZE, 0, SL_PAGE_SIZE);
    if (!g_map(&g, 0, 0x400000, 0, 8, R | U) || !g_map(&g, 0, 0x600000, 8, 8, R | U) ||
        !g_map(&g, 0, 0x40000000, 16, 4, R | W | U))
        return NULL;
    return g_snap(&g);
}

/* Memory outside the blob: scratch reads as zeros (the same as a page of
 * zeros in the blob), no memory as nothing (unlike any page). */
static void test_outside_the_blob(void)
{
    sl_snapshot *s = roomy();
    REQUIRE(s);
    sl_snapshot *f = fake_of(s);
    const uint64_t P = SL_PTE_P | SL_PTE_US | SL_PTE_NX;
    CHECK(set_entry(f, 3, 0x401000, 0x1000 | P));
    CHECK(set_entry(f, 3, 0x402000, s->layout.scratch_gpa | P));
    CHECK(set_entry(f, 3, 0x403000, s->layout.scratch_gpa | P));
    ranges v = {0};
    CHECK_EQ(diff_checked(s, f, &v), 0);
    REQUIRE(v.n == 2);
    CHECK(range_is(&v.r[0], 0, SL_DIFF_CHANGED, 0x401000, 1, R | U, R | U));
    CHECK(range_is(&v.r[1], 0, SL_DIFF_CHANGED, 0x403000, 1, R | U, R | U));
    free(v.r);
    fake_free(f);
    sl_snapshot_free(s);
}

/* 2 MiB and 1 GiB leaves over the blob, the tables, scratch and nothing:
 * compared page by page by content, the scratch window left out. */
static void test_large_pages(void)
{
    sl_snapshot *s = roomy();
    REQUIRE(s);
    sl_snapshot *f = fake_of(s);
    const uint64_t P = SL_PTE_P | SL_PTE_US | SL_PTE_PS;
    /* 0x600000: a 2 MiB page over GPA 0 (the blob from 0x4000 on); 0x40000000:
     * a 1 GiB page over GPA 0; the second PD entry of 0x400000's PD: 2 MiB
     * over the tables and scratch. */
    CHECK(set_entry(f, 2, 0x600000, 0 | P));
    CHECK(set_entry(f, 1, 0x40000000, 0 | P | SL_PTE_RW));
    uint64_t pt2m = s->layout.pt_gpa & ~(2 * MiB - 1);
    CHECK(set_entry(f, 2, 0xa00000, pt2m | P));
    ranges v = {0};
    CHECK_EQ(diff_checked(s, f, &v), 0);
    CHECK(v.n > 0);
    CHECK_EQ(diff_checked(f, s, &v), 0);
    CHECK_EQ(diff_checked(f, f, &v), 0);
    CHECK_EQ(v.n, 0);
    free(v.r);
    fake_free(f);
    sl_snapshot_free(s);
}

/* One page table reached from two entries of one space: both addresses map
 * its pages (as the MMU would), within the bound. */
static void test_table_reached_twice(void)
{
    sl_snapshot *s = roomy();
    REQUIRE(s);
    sl_snapshot *f = fake_of(s);
    sl_pt_mem m = {.ctx = f, .page = o_page};
    uint64_t pt;
    REQUIRE(sl_pt_table_at(f->arch, &m, f->roots[0], 0x400000, 3, false, &pt) == 0);
    CHECK(set_entry(f, 2, 0x800000, pt | SL_PTE_P | SL_PTE_US));
    ranges v = {0};
    CHECK_EQ(diff_checked(s, f, &v), 0);
    REQUIRE(v.n == 1);
    CHECK(range_is(&v.r[0], 0, SL_DIFF_ADDED, 0x800000, 8, 0, R | U));
    free(v.r);
    fake_free(f);
    sl_snapshot_free(s);
}

/* Past the bounds: a PD whose every entry points at one table (more table
 * visits than the blob has pages), and 1 GiB pages that map the blob over
 * and over (more pages than the tables hold entries). Refused, not walked. */
static void test_bounds(void)
{
    sl_snapshot *s = roomy();
    REQUIRE(s);
    sl_snapshot *f = fake_of(s), *g = fake_of(s);
    sl_pt_mem m = {.ctx = f, .page = o_page};
    uint64_t pt, pd, pdpt;
    REQUIRE(sl_pt_table_at(f->arch, &m, f->roots[0], 0x400000, 3, false, &pt) == 0);
    REQUIRE(sl_pt_table_at(f->arch, &m, f->roots[0], 0x400000, 2, false, &pd) == 0);
    REQUIRE(sl_pt_table_at(f->arch, &m, f->roots[0], 0x400000, 1, false, &pdpt) == 0);
    for (unsigned i = 0; i < 512; i++)
        memcpy((uint8_t *)o_page(f, pd) + i * 8, &(uint64_t){pt | SL_PTE_P | SL_PTE_US}, 8);
    for (unsigned i = 1; i < 512; i++)
        memcpy((uint8_t *)o_page(g, pdpt) + i * 8, &(uint64_t){SL_PTE_P | SL_PTE_US | SL_PTE_PS}, 8);
    ranges v = {0};
    char err[256] = "";
    CHECK_EQ(sl_snapshot_diff(s, f, gather, &v, err, sizeof err), SL_EPAGETABLE);
    CHECK(strstr(err, "address space 0 of snapshot B") != NULL);
    CHECK_EQ(sl_snapshot_diff(g, s, gather, &v, err, sizeof err), SL_ERANGE);
    CHECK(strstr(err, "address space 0 of snapshot A") != NULL);
    free(v.r);
    fake_free(f);
    fake_free(g);
    sl_snapshot_free(s);
}

/* ---------------- files ---------------- */

/* Saved and loaded, a snapshot still equals itself in memory; a file that
 * changes while loaded is refused. */
static void test_files(void)
{
    guest ga, gb;
    REQUIRE(g_base(&ga, SL_ARCH_AMD64) && g_base(&gb, SL_ARCH_AMD64));
    memset(gb.snap + 8 * SL_PAGE_SIZE, 0, SL_PAGE_SIZE);
    sl_snapshot *a = g_snap(&ga), *b = g_snap(&gb), *la = NULL, *lb = NULL;
    REQUIRE(a && b);
    char err[256] = "";
    REQUIRE(sl_snapshot_save(a, tpath("a.snap"), err, sizeof err) == 0);
    REQUIRE(sl_snapshot_save(b, tpath("b.snap"), err, sizeof err) == 0);
    REQUIRE(sl_snapshot_load(&la, tpath("a.snap"), err, sizeof err) == 0);
    REQUIRE(sl_snapshot_load(&lb, tpath("b.snap"), err, sizeof err) == 0);
    ranges v = {0};
    CHECK_EQ(diff_checked(a, la, &v), 0);
    CHECK_EQ(v.n, 0);
    CHECK_EQ(diff_checked(la, lb, &v), 0);
    REQUIRE(v.n == 1);
    CHECK(range_is(&v.r[0], 0, SL_DIFF_CHANGED, 0x600000, 1, R | U, R | U));
    FILE *fp = fopen(tpath("b.snap"), "ab");
    REQUIRE(fp);
    fputc(0, fp);
    fclose(fp);
    CHECK_EQ(sl_snapshot_diff(la, lb, gather, &v, err, sizeof err), SL_ECHANGED);
    CHECK(strstr(err, "b.snap") != NULL);
    free(v.r);
    sl_snapshot_free(la);
    sl_snapshot_free(lb);
    sl_snapshot_free(a);
    sl_snapshot_free(b);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/sl_snapdiff_XXXXXX");
    if (!mkdtemp(g_dir))
        return 1;
    RUN_ARCH(T_NONE, test_identical);
    RUN_ARCH(T_NONE, test_layout_does_not_matter);
    RUN_ARCH(T_NONE, test_kinds_amd64);
    RUN_ARCH(T_NONE, test_kinds_i686);
    RUN_ARCH(T_NONE, test_spaces);
    RUN_ARCH(T_NONE, test_across_architectures);
    RUN_ARCH(T_NONE, test_stop_and_errors);
    RUN_ARCH(T_NONE, test_outside_the_blob);
    RUN_ARCH(T_NONE, test_large_pages);
    RUN_ARCH(T_NONE, test_table_reached_twice);
    RUN_ARCH(T_NONE, test_bounds);
    RUN_ARCH(T_NONE, test_files);
    remove(tpath("a.snap"));
    remove(tpath("b.snap"));
    rmdir(g_dir);
    T_EXIT();
}
