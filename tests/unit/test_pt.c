/* Unit tests for src/common/pt.c: encoding, map, translate, lookup and the
 * multi-space walk, on an in-memory "guest physical" buffer. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "pt.h"
#include "t.h"

/* ---- in-memory backing: GPAs [MEM_BASE, MEM_BASE + MEM_SIZE) ---- */

#define MEM_BASE 0x100000ull
#define MEM_SIZE (2ull << 20)

typedef struct tmem {
    uint8_t *buf;
    uint64_t next;  /* bump allocator cursor (GPA) */
    uint64_t limit; /* allocator stops here */
    unsigned page_calls;
    unsigned alloc_calls;
    sl_pt_mem mem;
} tmem;

static void *tm_page(void *ctx, uint64_t gpa)
{
    tmem *m = ctx;
    m->page_calls++;
    if ((gpa & 0xFFF) || gpa < MEM_BASE || gpa - MEM_BASE > MEM_SIZE - 4096)
        return NULL;
    return m->buf + (gpa - MEM_BASE);
}

static bool tm_alloc(void *ctx, uint64_t *gpa)
{
    tmem *m = ctx;
    m->alloc_calls++;
    if (m->next >= m->limit)
        return false;
    memset(m->buf + (m->next - MEM_BASE), 0, 4096);
    *gpa = m->next;
    m->next += 4096;
    return true;
}

/* Tables come from the first half of memory; data pages from the second. */
#define DATA_BASE (MEM_BASE + MEM_SIZE / 2)

static void tm_init(tmem *m)
{
    m->buf = aligned_alloc(4096, MEM_SIZE);
    memset(m->buf, 0, MEM_SIZE);
    m->next = MEM_BASE;
    m->limit = DATA_BASE;
    m->page_calls = m->alloc_calls = 0;
    m->mem.ctx = m;
    m->mem.page = tm_page;
    m->mem.alloc = tm_alloc;
}

static void tm_free(tmem *m) { free(m->buf); }

/* A zeroed table outside the counted allocations. */
static uint64_t tm_table(tmem *m)
{
    uint64_t gpa = 0;
    tm_alloc(m, &gpa);
    m->alloc_calls--;
    return gpa;
}

static uint64_t get_entry(tmem *m, unsigned arch, uint64_t gpa)
{
    uint8_t *p = m->buf + (gpa - MEM_BASE);
    if (arch == SL_ARCH_I686) {
        uint32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void set_entry(tmem *m, unsigned arch, uint64_t table, unsigned idx, uint64_t v)
{
    unsigned esz = arch == SL_ARCH_I686 ? 4 : 8;
    uint8_t *p = m->buf + (table - MEM_BASE) + (uint64_t)idx * esz;
    if (esz == 4) {
        uint32_t w = (uint32_t)v;
        memcpy(p, &w, 4);
    } else {
        memcpy(p, &v, 8);
    }
}

static sl_perm perm_of(uint8_t kind, bool w, bool x, bool u)
{
    sl_perm p = {kind, kind != SL_MAP_UNMAPPED, w, x, u};
    return p;
}

/* ---- translate collector ---- */

#define MAX_MAPS 4096

typedef struct tcoll {
    unsigned n;
    unsigned stop_after; /* 0 = never stop */
    sl_mapping m[MAX_MAPS];
} tcoll;

static bool tc_visit(void *arg, const sl_mapping *m)
{
    tcoll *c = arg;
    if (c->n < MAX_MAPS)
        c->m[c->n] = *m;
    c->n++;
    return !(c->stop_after && c->n >= c->stop_after);
}

static tcoll tc; /* big: keep off the stack */

static int do_translate(tmem *m, unsigned arch, uint64_t root, uint64_t gva, uint64_t len)
{
    memset(&tc, 0, sizeof tc);
    return sl_pt_translate(arch, &m->mem, root, gva, len, tc_visit, &tc);
}

/* ---- seen-set and walk collector ---- */

#define MAX_SEEN 512
#define MAX_ITEMS 8192

typedef struct tseen {
    unsigned n, cap;
    unsigned dup_records; /* record() for a GPA already recorded: must stay 0 */
    struct {
        uint64_t gpa, va;
        unsigned root, depth;
    } e[MAX_SEEN];
} tseen;

static bool ts_lookup(void *ctx, uint64_t gpa, unsigned *root, uint64_t *va, unsigned *depth)
{
    tseen *s = ctx;
    for (unsigned i = 0; i < s->n; i++)
        if (s->e[i].gpa == gpa) {
            *root = s->e[i].root;
            *va = s->e[i].va;
            *depth = s->e[i].depth;
            return true;
        }
    return false;
}

static bool ts_record(void *ctx, uint64_t gpa, unsigned root, uint64_t va, unsigned depth)
{
    tseen *s = ctx;
    unsigned r, d;
    uint64_t v;
    if (ts_lookup(ctx, gpa, &r, &v, &d))
        s->dup_records++;
    if (s->n >= s->cap)
        return false;
    s->e[s->n].gpa = gpa;
    s->e[s->n].va = va;
    s->e[s->n].root = root;
    s->e[s->n].depth = depth;
    s->n++;
    return true;
}

typedef struct wcoll {
    unsigned n;
    unsigned stop_after;
    sl_walk_item it[MAX_ITEMS];
} wcoll;

static bool wc_visit(void *arg, const sl_walk_item *it)
{
    wcoll *c = arg;
    if (c->n < MAX_ITEMS)
        c->it[c->n] = *it;
    c->n++;
    return !(c->stop_after && c->n >= c->stop_after);
}

static tseen ts;
static wcoll wc;

static int do_walk(tmem *m, unsigned arch, const uint64_t *roots, unsigned n, unsigned seen_cap)
{
    memset(&ts, 0, sizeof ts);
    memset(&wc, 0, sizeof wc);
    ts.cap = seen_cap ? seen_cap : MAX_SEEN;
    sl_pt_seen seen = {&ts, ts_lookup, ts_record};
    return sl_pt_walk_spaces(arch, &m->mem, roots, n, &seen, wc_visit, &wc);
}

static unsigned count_kind(unsigned kind, unsigned root)
{
    unsigned k = 0;
    for (unsigned i = 0; i < wc.n && i < MAX_ITEMS; i++)
        if (wc.it[i].kind == kind && wc.it[i].root == root)
            k++;
    return k;
}

/* No two THIS_SPACE items of one root share a VA, and VAs ascend. */
static bool leaves_strictly_ascending(void)
{
    for (unsigned r = 0; r < 8; r++) {
        bool have = false;
        uint64_t last = 0;
        for (unsigned i = 0; i < wc.n && i < MAX_ITEMS; i++) {
            if (wc.it[i].kind != SL_WALK_THIS_SPACE || wc.it[i].root != r)
                continue;
            if (have && wc.it[i].map.gva <= last)
                return false;
            have = true;
            last = wc.it[i].map.gva;
        }
    }
    return true;
}

static const unsigned arches[2] = {SL_ARCH_AMD64, SL_ARCH_I686};

/* ---- tests ---- */

static void test_encode_decode(void)
{
    sl_perm p;
    uint64_t e;

    e = sl_pt_encode_leaf(SL_ARCH_AMD64, 0x123456789000ull, perm_of(SL_MAP_BASIC, true, false, true));
    CHECK_EQ(e, 0x123456789000ull | SL_PTE_P | SL_PTE_RW | SL_PTE_US | SL_PTE_NX);
    e = sl_pt_encode_leaf(SL_ARCH_AMD64, 0x5000, perm_of(SL_MAP_COW, true, true, false));
    CHECK_EQ(e, 0x5000ull | SL_PTE_P | SL_PTE_COW); /* CoW never sets RW */
    e = sl_pt_encode_leaf(SL_ARCH_I686, 0xFEDCB000ull, perm_of(SL_MAP_BASIC, true, false, false));
    CHECK_EQ(e, 0xFEDCB000ull | SL_PTE_P | SL_PTE_RW); /* no NX on i686 */
    CHECK_EQ(sl_pt_encode_leaf(SL_ARCH_AMD64, 0x5000, perm_of(SL_MAP_UNMAPPED, 0, 0, 0)), 0);
    CHECK_EQ(sl_pt_entry_addr(SL_ARCH_AMD64, 0x8000000000000FFFull | 0xABCDE000ull), 0xABCDE000ull);
    CHECK_EQ(sl_pt_entry_addr(SL_ARCH_I686, 0xABCDEFFFull), 0xABCDE000ull);

    p = sl_pt_decode_leaf(SL_ARCH_AMD64, 0x5000 | SL_PTE_P | SL_PTE_COW);
    CHECK_EQ(p.kind, SL_MAP_COW);
    CHECK(p.readable && !p.writable && p.executable && !p.user);
    /* bit 9 with RW set is not CoW */
    p = sl_pt_decode_leaf(SL_ARCH_AMD64, 0x5000 | SL_PTE_P | SL_PTE_COW | SL_PTE_RW);
    CHECK_EQ(p.kind, SL_MAP_BASIC);
    CHECK(p.writable);
    p = sl_pt_decode_leaf(SL_ARCH_AMD64, 0x5000 | SL_PTE_RW);
    CHECK_EQ(p.kind, SL_MAP_UNMAPPED);
    CHECK(!p.readable);
    p = sl_pt_decode_leaf(SL_ARCH_AMD64, 0x5000 | SL_PTE_P | SL_PTE_NX | SL_PTE_US);
    CHECK(!p.executable && p.user && !p.writable);
    p = sl_pt_decode_leaf(SL_ARCH_I686, 0x5000 | SL_PTE_P | SL_PTE_NX);
    CHECK(p.executable);
}

static void check_single_page(unsigned arch)
{
    tmem m;
    tm_init(&m);
    uint64_t root = tm_table(&m);
    uint64_t gva = 0x00403000ull, gpa = DATA_BASE + 0x7000;
    sl_perm p = perm_of(SL_MAP_BASIC, true, false, true);

    CHECK_EQ(sl_pt_map(arch, &m.mem, root, gva, gpa, 4096, p), SL_PT_OK);
    CHECK_EQ(do_translate(&m, arch, root, 0, 64ull << 20), SL_PT_OK);
    REQUIRE(tc.n == 1);
    CHECK_EQ(tc.m[0].gva, gva);
    CHECK_EQ(tc.m[0].gpa, gpa);
    CHECK_EQ(tc.m[0].size, 4096);
    CHECK_EQ(tc.m[0].perm.kind, SL_MAP_BASIC);
    CHECK(tc.m[0].perm.readable && tc.m[0].perm.writable && tc.m[0].perm.user);
    CHECK_EQ(tc.m[0].perm.executable, arch == SL_ARCH_I686);

    /* Unaligned sub-range inside the page still reports that page. */
    CHECK_EQ(do_translate(&m, arch, root, gva + 5, 10), SL_PT_OK);
    CHECK_EQ(tc.n, 1);
    /* Neighbouring pages are not mapped. */
    CHECK_EQ(do_translate(&m, arch, root, gva + 4096, 4096), SL_PT_OK);
    CHECK_EQ(tc.n, 0);
    CHECK_EQ(do_translate(&m, arch, root, gva - 4096, 4096), SL_PT_OK);
    CHECK_EQ(tc.n, 0);
    tm_free(&m);
}

static void test_single_page_amd64(void) { check_single_page(SL_ARCH_AMD64); }
static void test_single_page_i686(void) { check_single_page(SL_ARCH_I686); }

static void test_cow_roundtrip(void)
{
    for (unsigned a = 0; a < 2; a++) {
        unsigned arch = arches[a];
        tmem m;
        tm_init(&m);
        uint64_t root = tm_table(&m), pte_gpa = 0;
        sl_mapping out;
        uint64_t gva = 0x10000, gpa = DATA_BASE;

        /* writable=true in the request must not leak into a CoW leaf */
        CHECK_EQ(sl_pt_map(arch, &m.mem, root, gva, gpa, 4096, perm_of(SL_MAP_COW, true, true, true)), SL_PT_OK);
        REQUIRE(sl_pt_lookup(arch, &m.mem, root, gva, &out, &pte_gpa));
        uint64_t raw = get_entry(&m, arch, pte_gpa);
        CHECK(raw & SL_PTE_COW);
        CHECK(!(raw & SL_PTE_RW));
        CHECK(raw & SL_PTE_P);
        CHECK_EQ(raw & SL_PTE_ADDR_AMD64, gpa);
        CHECK_EQ(out.perm.kind, SL_MAP_COW);
        CHECK(!out.perm.writable && out.perm.readable && out.perm.user && out.perm.executable);
        CHECK_EQ(sl_pt_decode_leaf(arch, raw).kind, SL_MAP_COW);
        CHECK_EQ(do_translate(&m, arch, root, gva, 4096), SL_PT_OK);
        REQUIRE(tc.n == 1);
        CHECK_EQ(tc.m[0].perm.kind, SL_MAP_COW);
        CHECK(!tc.m[0].perm.writable);

        /* The CoW handler's remap: writable Basic to a copy. */
        CHECK_EQ(sl_pt_map(arch, &m.mem, root, gva, gpa + 4096, 4096, perm_of(SL_MAP_BASIC, true, true, true)),
                 SL_PT_OK);
        REQUIRE(sl_pt_lookup(arch, &m.mem, root, gva, &out, NULL));
        CHECK_EQ(out.perm.kind, SL_MAP_BASIC);
        CHECK(out.perm.writable);
        CHECK_EQ(out.gpa, gpa + 4096);
        tm_free(&m);
    }
}

static void test_basic_combinations(void)
{
    for (unsigned a = 0; a < 2; a++) {
        unsigned arch = arches[a];
        tmem m;
        tm_init(&m);
        uint64_t root = tm_table(&m);

        for (unsigned c = 0; c < 8; c++) {
            bool w = c & 1, x = c & 2, u = c & 4;
            CHECK_EQ(sl_pt_map(arch, &m.mem, root, 0x200000 + c * 4096ull, DATA_BASE + c * 4096ull, 4096,
                               perm_of(SL_MAP_BASIC, w, x, u)),
                     SL_PT_OK);
        }
        CHECK_EQ(do_translate(&m, arch, root, 0x200000, 8 * 4096), SL_PT_OK);
        REQUIRE(tc.n == 8);
        for (unsigned c = 0; c < 8; c++) {
            bool w = c & 1, x = c & 2, u = c & 4;
            uint64_t pte_gpa;
            sl_mapping lm;
            CHECK_EQ(tc.m[c].gva, 0x200000 + c * 4096ull);
            CHECK_EQ(tc.m[c].gpa, DATA_BASE + c * 4096ull);
            CHECK_EQ(tc.m[c].perm.kind, SL_MAP_BASIC);
            CHECK_EQ(tc.m[c].perm.writable, w);
            CHECK_EQ(tc.m[c].perm.user, u);
            CHECK_EQ(tc.m[c].perm.executable, arch == SL_ARCH_I686 ? true : x);
            REQUIRE(sl_pt_lookup(arch, &m.mem, root, 0x200000 + c * 4096ull, &lm, &pte_gpa));
            uint64_t raw = get_entry(&m, arch, pte_gpa);
            CHECK_EQ(raw, sl_pt_encode_leaf(arch, DATA_BASE + c * 4096ull, perm_of(SL_MAP_BASIC, w, x, u)));
            CHECK(!(raw & SL_PTE_COW));
            if (arch == SL_ARCH_I686)
                CHECK_EQ(raw >> 32, 0);
            CHECK_EQ(lm.perm.writable, w);
        }
        tm_free(&m);
    }
}

static void test_intermediate_perms_restrict(void)
{
    /* A hand-made read-only, supervisor, NX intermediate entry limits the leaf. */
    tmem m;
    tm_init(&m);
    uint64_t root = tm_table(&m), pte_gpa;
    sl_mapping lm;
    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &m.mem, root, 0x1000, DATA_BASE, 4096, perm_of(SL_MAP_BASIC, 1, 1, 1)),
             SL_PT_OK);
    uint64_t e0 = get_entry(&m, SL_ARCH_AMD64, root);
    CHECK_EQ(e0 & 0xFFF, SL_PTE_P | SL_PTE_RW | SL_PTE_US); /* intermediate entries are P|RW|US */
    set_entry(&m, SL_ARCH_AMD64, root, 0, (e0 & ~(SL_PTE_RW | SL_PTE_US)) | SL_PTE_NX);
    REQUIRE(sl_pt_lookup(SL_ARCH_AMD64, &m.mem, root, 0x1000, &lm, &pte_gpa));
    CHECK(!lm.perm.writable && !lm.perm.user && !lm.perm.executable);
    CHECK_EQ(do_translate(&m, SL_ARCH_AMD64, root, 0x1000, 4096), SL_PT_OK);
    REQUIRE(tc.n == 1);
    CHECK(!tc.m[0].perm.writable && !tc.m[0].perm.user && !tc.m[0].perm.executable);
    tm_free(&m);
}

/* An allocator that hands out dirty pages must not leave stray entries. */
static bool dirty_alloc(void *ctx, uint64_t *gpa)
{
    tmem *m = ctx;
    if (!tm_alloc(ctx, gpa))
        return false;
    memset(m->buf + (*gpa - MEM_BASE), 0xFF, 4096);
    return true;
}

static void test_fresh_tables_zeroed(void)
{
    for (unsigned a = 0; a < 2; a++) {
        tmem m;
        tm_init(&m);
        uint64_t root = tm_table(&m);
        m.mem.alloc = dirty_alloc;
        CHECK_EQ(sl_pt_map(arches[a], &m.mem, root, 0x1000, DATA_BASE, 4096, perm_of(SL_MAP_BASIC, 1, 1, 1)),
                 SL_PT_OK);
        CHECK_EQ(do_translate(&m, arches[a], root, 0, 1ull << 30), SL_PT_OK);
        CHECK_EQ(tc.n, 1);
        tm_free(&m);
    }
}

static void test_i686_4mib_boundary(void)
{
    tmem m;
    tm_init(&m);
    uint64_t root = tm_table(&m);
    CHECK_EQ(sl_pt_map(SL_ARCH_I686, &m.mem, root, 0x3FF000, DATA_BASE, 2 * 4096, perm_of(SL_MAP_BASIC, 1, 1, 0)),
             SL_PT_OK);
    CHECK_EQ(m.alloc_calls, 2); /* one page table on each side */
    CHECK_EQ(do_translate(&m, SL_ARCH_I686, root, 0x3FF000, 2 * 4096), SL_PT_OK);
    REQUIRE(tc.n == 2);
    CHECK_EQ(tc.m[0].gva, 0x3FF000);
    CHECK_EQ(tc.m[0].gpa, DATA_BASE);
    CHECK_EQ(tc.m[1].gva, 0x400000);
    CHECK_EQ(tc.m[1].gpa, DATA_BASE + 4096);
    /* Root entries 0 and 1 both present and distinct. */
    uint64_t e0 = get_entry(&m, SL_ARCH_I686, root), e1 = get_entry(&m, SL_ARCH_I686, root + 4);
    CHECK((e0 & SL_PTE_P) && (e1 & SL_PTE_P));
    CHECK((e0 & SL_PTE_ADDR_I686) != (e1 & SL_PTE_ADDR_I686));
    tm_free(&m);
}

static void test_one_table_for_two_pages(void)
{
    tmem m;
    tm_init(&m);
    uint64_t root = tm_table(&m);
    CHECK_EQ(sl_pt_map(SL_ARCH_I686, &m.mem, root, 0x800000, DATA_BASE, 2 * 4096, perm_of(SL_MAP_BASIC, 1, 1, 0)),
             SL_PT_OK);
    CHECK_EQ(m.alloc_calls, 1);
    CHECK_EQ(sl_pt_map(SL_ARCH_I686, &m.mem, root, 0x805000, DATA_BASE, 4096, perm_of(SL_MAP_BASIC, 1, 1, 0)),
             SL_PT_OK);
    CHECK_EQ(m.alloc_calls, 1);
    tm_free(&m);

    tm_init(&m);
    root = tm_table(&m);
    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &m.mem, root, 0x800000, DATA_BASE, 2 * 4096, perm_of(SL_MAP_BASIC, 1, 1, 0)),
             SL_PT_OK);
    CHECK_EQ(m.alloc_calls, 3); /* PDPT, PD, one PT */
    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &m.mem, root, 0x9FF000, DATA_BASE, 4096, perm_of(SL_MAP_BASIC, 1, 1, 0)),
             SL_PT_OK);
    CHECK_EQ(m.alloc_calls, 3); /* same 2 MiB table */
    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &m.mem, root, 0xA00000, DATA_BASE, 4096, perm_of(SL_MAP_BASIC, 1, 1, 0)),
             SL_PT_OK);
    CHECK_EQ(m.alloc_calls, 4); /* next 2 MiB: one more PT */
    tm_free(&m);
}

static void test_unmapped_range_is_cheap(void)
{
    tmem m;
    tm_init(&m);
    uint64_t root = tm_table(&m);

    m.page_calls = 0;
    CHECK_EQ(do_translate(&m, SL_ARCH_I686, root, 0, 1ull << 32), SL_PT_OK);
    CHECK_EQ(tc.n, 0);
    CHECK(m.page_calls <= 2);

    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &m.mem, root, 0x7F0000000000ull, DATA_BASE, 4096,
                       perm_of(SL_MAP_BASIC, 1, 0, 1)),
             SL_PT_OK);
    m.page_calls = 0;
    CHECK_EQ(do_translate(&m, SL_ARCH_AMD64, root, 0, 1ull << 47), SL_PT_OK);
    REQUIRE(tc.n == 1);
    CHECK_EQ(tc.m[0].gva, 0x7F0000000000ull);
    CHECK(m.page_calls <= 8);
    m.page_calls = 0;
    CHECK_EQ(do_translate(&m, SL_ARCH_AMD64, root, 0xFFFF800000000000ull, 1ull << 47), SL_PT_OK);
    CHECK_EQ(tc.n, 0);
    CHECK(m.page_calls <= 2);
    tm_free(&m);
}

static void test_map_unmapped_removes(void)
{
    for (unsigned a = 0; a < 2; a++) {
        unsigned arch = arches[a];
        tmem m;
        tm_init(&m);
        uint64_t root = tm_table(&m);
        CHECK_EQ(sl_pt_map(arch, &m.mem, root, 0x100000, DATA_BASE, 3 * 4096, perm_of(SL_MAP_BASIC, 1, 1, 1)),
                 SL_PT_OK);
        unsigned allocs = m.alloc_calls;
        CHECK_EQ(sl_pt_map(arch, &m.mem, root, 0x101000, 0, 4096, perm_of(SL_MAP_UNMAPPED, 0, 0, 0)), SL_PT_OK);
        CHECK_EQ(do_translate(&m, arch, root, 0x100000, 3 * 4096), SL_PT_OK);
        REQUIRE(tc.n == 2);
        CHECK_EQ(tc.m[0].gva, 0x100000);
        CHECK_EQ(tc.m[1].gva, 0x102000);
        CHECK_EQ(tc.m[1].gpa, DATA_BASE + 2 * 4096);
        CHECK(!sl_pt_lookup(arch, &m.mem, root, 0x101000, NULL, NULL));
        /* Unmapping where no tables exist allocates nothing, succeeds, and
         * skips each missing table's span at once. */
        m.page_calls = 0;
        CHECK_EQ(sl_pt_map(arch, &m.mem, root, 0x40000000, 0, 0x40000000, perm_of(SL_MAP_UNMAPPED, 0, 0, 0)),
                 SL_PT_OK);
        CHECK_EQ(m.alloc_calls, allocs);
        CHECK(m.page_calls <= 1024);
        /* Unmapping everything leaves nothing. */
        CHECK_EQ(sl_pt_map(arch, &m.mem, root, 0, 0, 0x80000000, perm_of(SL_MAP_UNMAPPED, 0, 0, 0)), SL_PT_OK);
        CHECK_EQ(do_translate(&m, arch, root, 0, 0x80000000), SL_PT_OK);
        CHECK_EQ(tc.n, 0);
        CHECK_EQ(m.alloc_calls, allocs);
        tm_free(&m);
    }
}

static void test_canonical_high_half(void)
{
    tmem m;
    tm_init(&m);
    uint64_t root = tm_table(&m), pte_gpa;
    sl_mapping lm;
    sl_perm p = perm_of(SL_MAP_BASIC, 1, 0, 0);

    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &m.mem, root, 0xFFFF800000000000ull, DATA_BASE, 4096, p), SL_PT_OK);
    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &m.mem, root, 0xFFFFFFFFFFFFE000ull, DATA_BASE + 4096, 8192, p), SL_PT_OK);
    CHECK_EQ(get_entry(&m, SL_ARCH_AMD64, root + 256 * 8) & SL_PTE_P, SL_PTE_P);
    CHECK_EQ(get_entry(&m, SL_ARCH_AMD64, root + 511 * 8) & SL_PTE_P, SL_PTE_P);
    CHECK_EQ(do_translate(&m, SL_ARCH_AMD64, root, 0xFFFF800000000000ull, 1ull << 47), SL_PT_OK);
    REQUIRE(tc.n == 3);
    CHECK_EQ(tc.m[0].gva, 0xFFFF800000000000ull);
    CHECK_EQ(tc.m[0].gpa, DATA_BASE);
    CHECK_EQ(tc.m[1].gva, 0xFFFFFFFFFFFFE000ull);
    CHECK_EQ(tc.m[2].gva, 0xFFFFFFFFFFFFF000ull);
    CHECK_EQ(tc.m[2].gpa, DATA_BASE + 2 * 4096);
    CHECK(!tc.m[2].perm.executable);
    REQUIRE(sl_pt_lookup(SL_ARCH_AMD64, &m.mem, root, 0xFFFFFFFFFFFFF123ull, &lm, &pte_gpa));
    CHECK_EQ(lm.gva, 0xFFFFFFFFFFFFF000ull);
    CHECK_EQ(get_entry(&m, SL_ARCH_AMD64, pte_gpa), sl_pt_encode_leaf(SL_ARCH_AMD64, DATA_BASE + 8192, p));
    /* The low half sees none of it. */
    CHECK_EQ(do_translate(&m, SL_ARCH_AMD64, root, 0, 1ull << 47), SL_PT_OK);
    CHECK_EQ(tc.n, 0);

    /* Non-canonical addresses and ranges crossing the hole are refused. */
    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &m.mem, root, 0x0000800000000000ull, DATA_BASE, 4096, p), SL_PT_EINVAL);
    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &m.mem, root, 0x7FFFFFFFF000ull, DATA_BASE, 8192, p), SL_PT_EINVAL);
    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &m.mem, root, 0xFFFFFFFFFFFFF000ull, DATA_BASE, 8192, p), SL_PT_EINVAL);
    CHECK_EQ(do_translate(&m, SL_ARCH_AMD64, root, 0x0000800000000000ull, 4096), SL_PT_EINVAL);
    CHECK_EQ(do_translate(&m, SL_ARCH_AMD64, root, 0x7FFFFFFFF000ull, 8192), SL_PT_EINVAL);
    CHECK(!sl_pt_lookup(SL_ARCH_AMD64, &m.mem, root, 0x0000800000000000ull, NULL, NULL));
    tm_free(&m);
}

static void test_lookup(void)
{
    for (unsigned a = 0; a < 2; a++) {
        unsigned arch = arches[a];
        tmem m;
        tm_init(&m);
        uint64_t root = tm_table(&m), pte_gpa = 0;
        sl_mapping lm;
        sl_perm p = perm_of(SL_MAP_BASIC, 0, 1, 1);

        CHECK_EQ(sl_pt_map(arch, &m.mem, root, 0xC0000000ull, DATA_BASE + 0x3000, 4096, p), SL_PT_OK);
        REQUIRE(sl_pt_lookup(arch, &m.mem, root, 0xC0000000ull, &lm, &pte_gpa));
        CHECK_EQ(get_entry(&m, arch, pte_gpa), sl_pt_encode_leaf(arch, DATA_BASE + 0x3000, p));
        CHECK_EQ(pte_gpa & 0xFFF, 0); /* index 0 of its table */
        CHECK(pte_gpa >= MEM_BASE && pte_gpa < DATA_BASE);
        CHECK_EQ(lm.gva, 0xC0000000ull);
        CHECK_EQ(lm.gpa, DATA_BASE + 0x3000);
        CHECK_EQ(lm.size, 4096);
        CHECK(!lm.perm.writable && lm.perm.user);
        CHECK(sl_pt_lookup(arch, &m.mem, root, 0xC0000000ull, NULL, NULL));
        CHECK(!sl_pt_lookup(arch, &m.mem, root, 0xC0001000ull, &lm, &pte_gpa));
        CHECK(!sl_pt_lookup(arch, &m.mem, root, 0xC0400000ull, &lm, &pte_gpa));
        CHECK(!sl_pt_lookup(arch, &m.mem, 0x12345000ull, 0xC0000000ull, &lm, &pte_gpa)); /* unbacked root */
        tm_free(&m);
    }
    tmem m;
    tm_init(&m);
    uint64_t root = tm_table(&m);
    CHECK(!sl_pt_lookup(SL_ARCH_I686, &m.mem, root, 1ull << 32, NULL, NULL));
    tm_free(&m);
}

static void test_map_errors(void)
{
    tmem m;
    tm_init(&m);
    uint64_t root = tm_table(&m);
    sl_perm p = perm_of(SL_MAP_BASIC, 1, 1, 1);

    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &m.mem, root, 0x1001, DATA_BASE, 4096, p), SL_PT_EINVAL);
    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &m.mem, root, 0x1000, DATA_BASE + 8, 4096, p), SL_PT_EINVAL);
    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &m.mem, root, 0x1000, DATA_BASE, 100, p), SL_PT_EINVAL);
    CHECK_EQ(sl_pt_map(SL_ARCH_I686, &m.mem, root, 1ull << 32, DATA_BASE, 4096, p), SL_PT_EINVAL);
    CHECK_EQ(sl_pt_map(SL_ARCH_I686, &m.mem, root, 0xFFFFF000ull, DATA_BASE, 8192, p), SL_PT_EINVAL);
    CHECK_EQ(sl_pt_map(SL_ARCH_I686, &m.mem, root, 0x1000, 0xFFFFF000ull, 8192, p), SL_PT_EINVAL);
    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &m.mem, root, 0x1000, 0xFFFFFFFFFFFFF000ull, 8192, p), SL_PT_EINVAL);
    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &m.mem, root, 0xFFFFFFFFFFFFF000ull, 0, 0xFFFFFFFFFFFFF000ull, p),
             SL_PT_EINVAL);
    CHECK_EQ(sl_pt_map(7, &m.mem, root, 0x1000, DATA_BASE, 4096, p), SL_PT_EINVAL);
    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &m.mem, root, 0x1000, DATA_BASE, 4096, perm_of(3, 1, 1, 1)), SL_PT_EINVAL);
    CHECK_EQ(m.alloc_calls, 0);
    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &m.mem, root, 0x1000, DATA_BASE, 0, p), SL_PT_OK);
    CHECK_EQ(m.alloc_calls, 0);

    /* Unbacked root. */
    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &m.mem, 0x5000, 0x1000, DATA_BASE, 4096, p), SL_PT_EBADTABLE);
    /* Intermediate entry pointing past the end of memory. */
    set_entry(&m, SL_ARCH_AMD64, root, 1, (MEM_BASE + MEM_SIZE) | SL_PTE_P | SL_PTE_RW);
    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &m.mem, root, 1ull << 39, DATA_BASE, 4096, p), SL_PT_EBADTABLE);
    /* ... also when only clearing. */
    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &m.mem, root, 1ull << 39, 0, 4096, perm_of(SL_MAP_UNMAPPED, 0, 0, 0)),
             SL_PT_EBADTABLE);
    /* Intermediate entry that is a large page (1 GiB at PDPT level). */
    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &m.mem, root, 0x1000, DATA_BASE, 4096, p), SL_PT_OK);
    uint64_t pdpt = get_entry(&m, SL_ARCH_AMD64, root) & SL_PTE_ADDR_AMD64;
    set_entry(&m, SL_ARCH_AMD64, pdpt, 1, 0x40000000ull | SL_PTE_P | SL_PTE_PS | SL_PTE_RW);
    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &m.mem, root, 0x40000000ull, DATA_BASE, 4096, p), SL_PT_EBADTABLE);
    /* i686 4 MiB page in the way. */
    uint64_t root32 = tm_table(&m);
    set_entry(&m, SL_ARCH_I686, root32, 2, 0x800000 | SL_PTE_P | SL_PTE_PS);
    CHECK_EQ(sl_pt_map(SL_ARCH_I686, &m.mem, root32, 0x801000, DATA_BASE, 4096, p), SL_PT_EBADTABLE);

    /* Allocator exhausted. */
    m.limit = m.next;
    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &m.mem, root, 2ull << 39, DATA_BASE, 4096, p), SL_PT_ENOMEM);
    m.limit = m.next + 4096; /* room for one table of the three needed */
    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &m.mem, root, 3ull << 39, DATA_BASE, 4096, p), SL_PT_ENOMEM);
    /* No allocator at all (read-only use). */
    sl_pt_mem ro = m.mem;
    ro.alloc = NULL;
    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &ro, root, 4ull << 39, DATA_BASE, 4096, p), SL_PT_ENOMEM);
    /* ... but an existing table needs none. */
    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &ro, root, 0x2000, DATA_BASE, 4096, p), SL_PT_OK);
    tm_free(&m);
}

/* Three amd64 roots with private user pages sharing one kernel-half PDPT. */
static void test_walk_shared_kernel_half(void)
{
    tmem m;
    tm_init(&m);
    uint64_t roots[3];
    const uint64_t kva = 0xFFFFFFFF80000000ull;
    sl_perm up = perm_of(SL_MAP_COW, 0, 1, 1), kp = perm_of(SL_MAP_BASIC, 1, 0, 0);

    for (unsigned r = 0; r < 3; r++)
        roots[r] = tm_table(&m);
    CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &m.mem, roots[0], kva, DATA_BASE + 0x10000, 2 * 4096, kp), SL_PT_OK);
    uint64_t k511 = get_entry(&m, SL_ARCH_AMD64, roots[0] + 511 * 8);
    for (unsigned r = 0; r < 3; r++) {
        if (r)
            set_entry(&m, SL_ARCH_AMD64, roots[r], 511, k511);
        CHECK_EQ(sl_pt_map(SL_ARCH_AMD64, &m.mem, roots[r], 0x400000, DATA_BASE + r * 4096ull, 4096, up),
                 SL_PT_OK);
    }
    CHECK_EQ(do_walk(&m, SL_ARCH_AMD64, roots, 3, 0), SL_PT_OK);
    CHECK_EQ(ts.dup_records, 0);
    CHECK(leaves_strictly_ascending());

    /* root 0: user leaf then the two kernel leaves; no references */
    CHECK_EQ(count_kind(SL_WALK_THIS_SPACE, 0), 3);
    CHECK_EQ(count_kind(SL_WALK_ANOTHER_SPACE, 0), 0);
    REQUIRE(wc.n == 3 + 2 * 2);
    CHECK_EQ(wc.it[0].map.gva, 0x400000);
    CHECK_EQ(wc.it[0].map.gpa, DATA_BASE);
    CHECK_EQ(wc.it[0].map.size, 4096);
    CHECK_EQ(wc.it[0].map.perm.kind, SL_MAP_COW);
    CHECK_EQ(wc.it[1].map.gva, kva);
    CHECK_EQ(wc.it[2].map.gva, kva + 4096);
    CHECK_EQ(wc.it[2].map.gpa, DATA_BASE + 0x11000);
    CHECK(wc.it[2].map.perm.writable && !wc.it[2].map.perm.user && !wc.it[2].map.perm.executable);

    for (unsigned r = 1; r < 3; r++) {
        const sl_walk_item *u = &wc.it[3 + 2 * (r - 1)], *k = u + 1;
        CHECK_EQ(count_kind(SL_WALK_THIS_SPACE, r), 1);
        CHECK_EQ(count_kind(SL_WALK_ANOTHER_SPACE, r), 1);
        CHECK_EQ(u->kind, SL_WALK_THIS_SPACE);
        CHECK_EQ(u->root, r);
        CHECK_EQ(u->map.gva, 0x400000);
        CHECK_EQ(u->map.gpa, DATA_BASE + r * 4096ull);
        CHECK_EQ(k->kind, SL_WALK_ANOTHER_SPACE);
        CHECK_EQ(k->root, r);
        CHECK_EQ(k->depth, 0);
        CHECK_EQ(k->our_va, 0xFFFFFF8000000000ull);
        CHECK_EQ(k->owner_root, 0);
        CHECK_EQ(k->their_va, 0xFFFFFF8000000000ull);
        CHECK_EQ(k->their_depth, 1);
        CHECK_EQ(k->table_gpa, k511 & SL_PTE_ADDR_AMD64);
        CHECK_EQ(k->entry_gpa, roots[r] + 511 * 8);
    }
    /* 3 roots + root0 (PDPT,PD,PT user) + kernel (PDPT,PD,PT) + 2 private user chains of 3 */
    CHECK_EQ(ts.n, 3 + 3 + 3 + 2 * 3);

    /* Duplicate and unbacked roots are skipped. */
    uint64_t roots2[4] = {roots[0], 0x5000, roots[0], roots[1]};
    CHECK_EQ(do_walk(&m, SL_ARCH_AMD64, roots2, 4, 0), SL_PT_OK);
    CHECK_EQ(count_kind(SL_WALK_THIS_SPACE, 0), 3);
    CHECK_EQ(count_kind(SL_WALK_THIS_SPACE, 1) + count_kind(SL_WALK_ANOTHER_SPACE, 1), 0);
    CHECK_EQ(count_kind(SL_WALK_THIS_SPACE, 2) + count_kind(SL_WALK_ANOTHER_SPACE, 2), 0);
    CHECK_EQ(count_kind(SL_WALK_THIS_SPACE, 3), 1);
    CHECK_EQ(count_kind(SL_WALK_ANOTHER_SPACE, 3), 1);

    /* Stop and limit. */
    memset(&wc, 0, sizeof wc);
    wc.stop_after = 2;
    memset(&ts, 0, sizeof ts);
    ts.cap = MAX_SEEN;
    sl_pt_seen seen = {&ts, ts_lookup, ts_record};
    CHECK_EQ(sl_pt_walk_spaces(SL_ARCH_AMD64, &m.mem, roots, 3, &seen, wc_visit, &wc), SL_PT_ESTOPPED);
    CHECK_EQ(wc.n, 2);
    CHECK_EQ(do_walk(&m, SL_ARCH_AMD64, roots, 3, 4), SL_PT_ELIMIT);
    tm_free(&m);
}

static void test_walk_shared_i686(void)
{
    tmem m;
    tm_init(&m);
    uint64_t roots[2] = {tm_table(&m), tm_table(&m)};
    sl_perm p = perm_of(SL_MAP_BASIC, 1, 1, 0);

    CHECK_EQ(sl_pt_map(SL_ARCH_I686, &m.mem, roots[0], 0xC0000000ull, DATA_BASE, 3 * 4096, p), SL_PT_OK);
    set_entry(&m, SL_ARCH_I686, roots[1], 0x300, get_entry(&m, SL_ARCH_I686, roots[0] + 0x300 * 4));
    CHECK_EQ(sl_pt_map(SL_ARCH_I686, &m.mem, roots[1], 0x08048000ull, DATA_BASE + 0x8000, 4096, p), SL_PT_OK);
    CHECK_EQ(do_walk(&m, SL_ARCH_I686, roots, 2, 0), SL_PT_OK);
    REQUIRE(wc.n == 5);
    for (unsigned i = 0; i < 3; i++) {
        CHECK_EQ(wc.it[i].kind, SL_WALK_THIS_SPACE);
        CHECK_EQ(wc.it[i].map.gva, 0xC0000000ull + i * 4096);
        CHECK(wc.it[i].map.perm.executable);
    }
    CHECK_EQ(wc.it[3].kind, SL_WALK_THIS_SPACE);
    CHECK_EQ(wc.it[3].root, 1);
    CHECK_EQ(wc.it[3].map.gva, 0x08048000ull);
    CHECK_EQ(wc.it[4].kind, SL_WALK_ANOTHER_SPACE);
    CHECK_EQ(wc.it[4].root, 1);
    CHECK_EQ(wc.it[4].depth, 0);
    CHECK_EQ(wc.it[4].our_va, 0xC0000000ull);
    CHECK_EQ(wc.it[4].their_va, 0xC0000000ull);
    CHECK_EQ(wc.it[4].their_depth, 1);
    CHECK_EQ(wc.it[4].entry_gpa, roots[1] + 0x300 * 4);
    tm_free(&m);
}

/* Hostile amd64 tables: a self loop, a table all of whose entries point to
 * itself, entries past the end of memory and a table with two parents. */
static void test_walk_hostile(void)
{
    tmem m;
    tm_init(&m);
    uint64_t root = tm_table(&m), selfy = tm_table(&m), pdpt = tm_table(&m), pd = tm_table(&m),
             pt = tm_table(&m);
    const uint64_t flags = SL_PTE_P | SL_PTE_RW | SL_PTE_US;

    set_entry(&m, SL_ARCH_AMD64, root, 0, root | flags);                  /* self loop */
    set_entry(&m, SL_ARCH_AMD64, root, 1, selfy | flags);                 /* table pointing to itself */
    for (unsigned i = 0; i < 512; i++)
        set_entry(&m, SL_ARCH_AMD64, selfy, i, selfy | flags);
    set_entry(&m, SL_ARCH_AMD64, root, 2, pdpt | flags);                  /* two parents */
    set_entry(&m, SL_ARCH_AMD64, root, 3, pdpt | flags);
    set_entry(&m, SL_ARCH_AMD64, root, 4, (MEM_BASE + MEM_SIZE) | flags); /* past the end */
    set_entry(&m, SL_ARCH_AMD64, root, 5, 0xFFFFFFFFFF000ull | flags);
    set_entry(&m, SL_ARCH_AMD64, root, 6, pdpt | flags | SL_PTE_PS);     /* reserved PS in PML4 */
    set_entry(&m, SL_ARCH_AMD64, pdpt, 0, pd | flags);
    set_entry(&m, SL_ARCH_AMD64, pdpt, 1, (MEM_BASE + MEM_SIZE) | flags);
    set_entry(&m, SL_ARCH_AMD64, pd, 0, pt | flags);
    set_entry(&m, SL_ARCH_AMD64, pd, 1, pt | flags);                      /* two parents at PD level */
    set_entry(&m, SL_ARCH_AMD64, pt, 0, 0xFFFFFFFFFF000ull | SL_PTE_P); /* leaf data GPA unbacked: still reported */
    set_entry(&m, SL_ARCH_AMD64, pt, 1, DATA_BASE | SL_PTE_P);

    uint64_t roots[2] = {root, selfy};
    m.page_calls = 0;
    CHECK_EQ(do_walk(&m, SL_ARCH_AMD64, roots, 2, 0), SL_PT_OK);
    /* each table read once, plus one backing check per intermediate entry */
    CHECK(m.page_calls <= 5 * 513 + 2);
    CHECK_EQ(ts.dup_records, 0);
    CHECK_EQ(ts.n, 5);
    CHECK(leaves_strictly_ascending());

    unsigned leaves = 0, refs = 0, selfy_refs = 0;
    bool self_ref = false, pdpt_ref = false, pt_ref = false;
    for (unsigned i = 0; i < wc.n; i++) {
        const sl_walk_item *it = &wc.it[i];
        CHECK_EQ(it->root, 0); /* root 1 (selfy) was already reached */
        if (it->kind == SL_WALK_THIS_SPACE) {
            CHECK_EQ(it->map.gva, (2ull << 39) + leaves * 4096ull);
            CHECK_EQ(it->map.gpa, leaves ? DATA_BASE : 0xFFFFFFFFFF000ull);
            leaves++;
            continue;
        }
        refs++;
        if (it->table_gpa == root) {
            self_ref = true;
            CHECK_EQ(it->depth, 0);
            CHECK_EQ(it->our_va, 0);
            CHECK_EQ(it->their_depth, 0);
            CHECK_EQ(it->entry_gpa, root);
        } else if (it->table_gpa == selfy) {
            /* every entry of selfy is its own reference, each reported once */
            CHECK_EQ(it->depth, 1);
            CHECK_EQ(it->our_va, (1ull << 39) + ((uint64_t)selfy_refs << 30));
            CHECK_EQ(it->entry_gpa, selfy + selfy_refs * 8ull);
            CHECK_EQ(it->their_va, 1ull << 39);
            selfy_refs++;
            CHECK_EQ(it->their_depth, 1);
        } else if (it->table_gpa == pdpt) {
            pdpt_ref = true;
            CHECK_EQ(it->our_va, 3ull << 39);
            CHECK_EQ(it->their_va, 2ull << 39);
            CHECK_EQ(it->entry_gpa, root + 3 * 8);
        } else if (it->table_gpa == pt) {
            pt_ref = true;
            CHECK_EQ(it->depth, 2);
            CHECK_EQ(it->our_va, (2ull << 39) + (2ull << 20));
            CHECK_EQ(it->their_va, 2ull << 39);
            CHECK_EQ(it->their_depth, 3);
        }
    }
    CHECK(self_ref && pdpt_ref && pt_ref);
    CHECK_EQ(selfy_refs, 512);
    CHECK_EQ(leaves, 2);
    /* selfy: 512 entries, every one a reference to itself */
    CHECK_EQ(refs, 1 + 512 + 1 + 1);
    REQUIRE(wc.n >= 2);

    /* translate over the loop through the root (PML4 slot 0) terminates: the
     * root read as PDPT/PD/PT gives 7 + 512 + 2 + 2 + 512 (2 MiB via the PS
     * entry) under PD slot 0, 512*512 via selfy, 2 + 2 via pdpt, and a 1 GiB
     * page from the PS entry at PDPT level. */
    m.page_calls = 0;
    CHECK_EQ(do_translate(&m, SL_ARCH_AMD64, root, 0, 1ull << 39), SL_PT_OK);
    CHECK_EQ(tc.n, 1035 + 262144 + 2 + 2 + 262144);
    CHECK(m.page_calls < 1000);
    CHECK_EQ(tc.m[0].gva, 0);
    CHECK_EQ(tc.m[0].gpa, root);
    CHECK_EQ(tc.m[1].gpa, selfy);
    for (unsigned i = 1; i < tc.n && i < MAX_MAPS; i++)
        CHECK(tc.m[i].gva > tc.m[i - 1].gva);
    /* ...and selfy over a slice gives one leaf per page */
    CHECK_EQ(do_translate(&m, SL_ARCH_AMD64, root, 1ull << 39, 64 * 4096), SL_PT_OK);
    CHECK_EQ(tc.n, 64);
    CHECK_EQ(tc.m[5].gpa, selfy);
    /* stopping early */
    memset(&tc, 0, sizeof tc);
    tc.stop_after = 3;
    CHECK_EQ(sl_pt_translate(SL_ARCH_AMD64, &m.mem, root, 1ull << 39, 64 * 4096, tc_visit, &tc), SL_PT_ESTOPPED);
    CHECK_EQ(tc.n, 3);
    tm_free(&m);
}

static void test_walk_hostile_i686(void)
{
    tmem m;
    tm_init(&m);
    uint64_t root = tm_table(&m);
    for (unsigned i = 0; i < 1024; i++) /* every PDE points to the PD */
        set_entry(&m, SL_ARCH_I686, root, i, root | SL_PTE_P);
    m.page_calls = 0;
    CHECK_EQ(do_walk(&m, SL_ARCH_I686, &root, 1, 0), SL_PT_OK);
    CHECK_EQ(wc.n, 1024);
    CHECK_EQ(count_kind(SL_WALK_ANOTHER_SPACE, 0), 1024);
    CHECK(m.page_calls <= 1025);
    CHECK_EQ(do_translate(&m, SL_ARCH_I686, root, 0x00400000, 4 * 4096), SL_PT_OK);
    CHECK_EQ(tc.n, 4);
    tm_free(&m);
}

static void test_large_pages(void)
{
    tmem m;
    tm_init(&m);
    uint64_t root = tm_table(&m), pdpt = tm_table(&m), pd = tm_table(&m);
    const uint64_t f = SL_PTE_P | SL_PTE_RW | SL_PTE_US;

    set_entry(&m, SL_ARCH_AMD64, root, 0, pdpt | f);
    set_entry(&m, SL_ARCH_AMD64, pdpt, 1, 0x80000000ull | SL_PTE_P | SL_PTE_PS);         /* 1 GiB at 1 GiB */
    set_entry(&m, SL_ARCH_AMD64, pdpt, 0, pd | f);
    set_entry(&m, SL_ARCH_AMD64, pd, 3, 0x40000000ull | f | SL_PTE_PS | (1ull << 12) | SL_PTE_COW); /* PAT bit */
    CHECK_EQ(do_walk(&m, SL_ARCH_AMD64, &root, 1, 0), SL_PT_OK);
    REQUIRE(wc.n == 2);
    CHECK_EQ(wc.it[0].map.gva, 3ull << 21);
    CHECK_EQ(wc.it[0].map.gpa, 0x40000000ull);
    CHECK_EQ(wc.it[0].map.size, 2ull << 20);
    CHECK_EQ(wc.it[0].map.perm.kind, SL_MAP_BASIC); /* RW set: bit 9 alone is not CoW */
    CHECK_EQ(wc.it[1].map.gva, 1ull << 30);
    CHECK_EQ(wc.it[1].map.gpa, 0x80000000ull);
    CHECK_EQ(wc.it[1].map.size, 1ull << 30);
    CHECK(!wc.it[1].map.perm.writable);

    /* translate splits into 4 KiB pieces, clipped to the range */
    CHECK_EQ(do_translate(&m, SL_ARCH_AMD64, root, (3ull << 21) + 0x5000, 3 * 4096), SL_PT_OK);
    REQUIRE(tc.n == 3);
    CHECK_EQ(tc.m[0].gva, (3ull << 21) + 0x5000);
    CHECK_EQ(tc.m[0].gpa, 0x40005000ull);
    CHECK_EQ(tc.m[2].gpa, 0x40007000ull);
    CHECK_EQ(tc.m[2].size, 4096);
    /* spanning the end of the 2 MiB page into the unmapped next one */
    CHECK_EQ(do_translate(&m, SL_ARCH_AMD64, root, (4ull << 21) - 4096, 3 * 4096), SL_PT_OK);
    REQUIRE(tc.n == 1);
    CHECK_EQ(tc.m[0].gpa, 0x401FF000ull);
    CHECK_EQ(do_translate(&m, SL_ARCH_AMD64, root, (1ull << 30) - 4096, 2 * 4096), SL_PT_OK);
    REQUIRE(tc.n == 1);
    CHECK_EQ(tc.m[0].gva, 1ull << 30);
    CHECK_EQ(tc.m[0].gpa, 0x80000000ull);
    CHECK(!sl_pt_lookup(SL_ARCH_AMD64, &m.mem, root, 3ull << 21, NULL, NULL));
    CHECK(!sl_pt_lookup(SL_ARCH_AMD64, &m.mem, root, 1ull << 30, NULL, NULL));
    tm_free(&m);

    /* i686 4 MiB page */
    tm_init(&m);
    root = tm_table(&m);
    set_entry(&m, SL_ARCH_I686, root, 0x300, 0x12C00000ull | SL_PTE_P | SL_PTE_PS | SL_PTE_COW);
    CHECK_EQ(do_walk(&m, SL_ARCH_I686, &root, 1, 0), SL_PT_OK);
    REQUIRE(wc.n == 1);
    CHECK_EQ(wc.it[0].map.gva, 0xC0000000ull);
    CHECK_EQ(wc.it[0].map.gpa, 0x12C00000ull);
    CHECK_EQ(wc.it[0].map.size, 4ull << 20);
    CHECK_EQ(wc.it[0].map.perm.kind, SL_MAP_COW);
    CHECK_EQ(do_translate(&m, SL_ARCH_I686, root, 0xC03FF000ull, 2 * 4096), SL_PT_OK);
    REQUIRE(tc.n == 1);
    CHECK_EQ(tc.m[0].gpa, 0x12FFF000ull);
    CHECK(!sl_pt_lookup(SL_ARCH_I686, &m.mem, root, 0xC0000000ull, NULL, NULL));
    tm_free(&m);
}

static void test_bad_args(void)
{
    tmem m;
    tm_init(&m);
    uint64_t root = tm_table(&m);
    sl_pt_seen seen = {&ts, ts_lookup, ts_record};
    CHECK_EQ(sl_pt_translate(9, &m.mem, root, 0, 4096, tc_visit, &tc), SL_PT_EINVAL);
    CHECK_EQ(sl_pt_translate(SL_ARCH_I686, &m.mem, root, 0xFFFFF000ull, 8192, tc_visit, &tc), SL_PT_EINVAL);
    CHECK_EQ(sl_pt_translate(SL_ARCH_AMD64, &m.mem, root, 0x1000, UINT64_MAX, tc_visit, &tc), SL_PT_EINVAL);
    CHECK_EQ(sl_pt_walk_spaces(9, &m.mem, &root, 1, &seen, wc_visit, &wc), SL_PT_EINVAL);
    CHECK_EQ(sl_pt_walk_spaces(SL_ARCH_AMD64, &m.mem, NULL, 1, &seen, wc_visit, &wc), SL_PT_EINVAL);
    CHECK_EQ(sl_pt_walk_spaces(SL_ARCH_AMD64, &m.mem, NULL, 0, &seen, wc_visit, &wc), SL_PT_OK);
    CHECK(!sl_pt_lookup(9, &m.mem, root, 0, NULL, NULL));
    tm_free(&m);
}

/* table_at finds (or makes) the table at each level; link makes a second
 * root share a sub-table, which translate then sees through both roots. */
static void check_table_at_and_link(unsigned arch)
{
    tmem m;
    tm_init(&m);
    unsigned levels = sl_pt_levels(arch), leaf = levels - 1;
    uint64_t a = tm_table(&m), b = tm_table(&m), t, prev = a;
    uint64_t va = arch == SL_ARCH_I686 ? 0x00C01000ull : 0x0000004000201000ull;
    REQUIRE(sl_pt_map(arch, &m.mem, a, va, DATA_BASE, 4096, perm_of(SL_MAP_BASIC, true, false, false)) == 0);
    for (unsigned d = 0; d <= leaf; d++) {
        REQUIRE(sl_pt_table_at(arch, &m.mem, a, va, d, false, &t) == SL_PT_OK);
        CHECK(d == 0 ? t == a : t != prev);
        prev = t;
    }
    sl_mapping mp;
    uint64_t pte_gpa;
    REQUIRE(sl_pt_lookup(arch, &m.mem, a, va, &mp, &pte_gpa));
    CHECK_EQ(pte_gpa & ~0xFFFull, t); /* the leaf table is the one holding the PTE */
    /* Nothing under b yet: absent, and creating allocates exactly the path. */
    CHECK_EQ(sl_pt_table_at(arch, &m.mem, b, va, leaf, false, &t), SL_PT_EABSENT);
    unsigned before = m.alloc_calls;
    REQUIRE(sl_pt_table_at(arch, &m.mem, b, va, leaf, true, &t) == SL_PT_OK);
    CHECK_EQ(m.alloc_calls - before, leaf);
    CHECK_EQ(sl_pt_table_at(arch, &m.mem, b, va, levels, false, &t), SL_PT_EINVAL);
    /* Link a fresh root c's top entry to a's first-level table. */
    uint64_t c = tm_table(&m), shared;
    REQUIRE(sl_pt_table_at(arch, &m.mem, a, va, 1, false, &shared) == SL_PT_OK);
    REQUIRE(sl_pt_link(arch, &m.mem, c, va, 0, shared) == SL_PT_OK);
    CHECK(sl_pt_lookup(arch, &m.mem, c, va, &mp, NULL));
    CHECK_EQ(mp.gpa, DATA_BASE);
    CHECK_EQ(sl_pt_link(arch, &m.mem, c, va, leaf, shared), SL_PT_EINVAL); /* a leaf slot holds no table */
    CHECK_EQ(sl_pt_link(arch, &m.mem, c, va, 0, shared + 1), SL_PT_EINVAL);
    tm_free(&m);
}

static void test_table_at_and_link_amd64(void) { check_table_at_and_link(SL_ARCH_AMD64); }
static void test_table_at_and_link_i686(void) { check_table_at_and_link(SL_ARCH_I686); }

int main(void)
{
    RUN(test_encode_decode);
    RUN(test_single_page_amd64);
    RUN(test_single_page_i686);
    RUN(test_cow_roundtrip);
    RUN(test_basic_combinations);
    RUN(test_intermediate_perms_restrict);
    RUN(test_fresh_tables_zeroed);
    RUN(test_i686_4mib_boundary);
    RUN(test_one_table_for_two_pages);
    RUN(test_unmapped_range_is_cheap);
    RUN(test_map_unmapped_removes);
    RUN(test_canonical_high_half);
    RUN(test_lookup);
    RUN(test_map_errors);
    RUN(test_walk_shared_kernel_half);
    RUN(test_walk_shared_i686);
    RUN(test_walk_hostile);
    RUN(test_walk_hostile_i686);
    RUN(test_large_pages);
    RUN(test_bad_args);
    RUN(test_table_at_and_link_amd64);
    RUN(test_table_at_and_link_i686);
    T_EXIT();
}
