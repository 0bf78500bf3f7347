/* Snapshot engine: from a binary, from guest memory (compaction, dedupe,
 * shared address spaces, hostile tables), restore and identity. The "guest"
 * here is simulated on the host: page tables built with the shared pt code,
 * copy-on-write done exactly as the guest runtime does it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mem.h"
#include "pt.h"
#include "snapshot.h"
/* White-box: checks the fields the engine and the file codec build. */
#include "snapshot_impl.h"
#include "t.h"
#include "../common/min_elf.h"
#include "../common/sim.h"

/* ---------------- a simulated guest ---------------- */

static void guest_init(guest *g, unsigned arch, uint64_t snap_pages, unsigned n_roots)
{
    if (!guest_setup(g, arch, snap_pages, 1 << 20, n_roots))
        abort();
}

/* Fills snapshot page `idx` with a pattern derived from seed. */
static uint64_t fill_page(guest *g, uint64_t idx, uint32_t seed)
{
    uint8_t *p = g->snap + idx * SL_PAGE_SIZE;
    for (unsigned i = 0; i < SL_PAGE_SIZE; i++)
        p[i] = (uint8_t)(seed * 131u + i * 7u + (i >> 8));
    return SL_BASE_ADDRESS + idx * SL_PAGE_SIZE;
}

static sl_perm basic(bool w, bool x)
{
    sl_perm p = {.kind = SL_MAP_BASIC, .readable = true, .writable = w, .executable = x};
    return p;
}

static void gmap(guest *g, unsigned root, uint64_t gva, uint64_t gpa, sl_perm p)
{
    sl_pt_mem m = g_mem(g);
    int rc = sl_pt_map(g->l.arch, &m, g->roots[root], gva, gpa, SL_PAGE_SIZE, p);
    if (rc) {
        printf("  map failed %d\n", rc);
        abort();
    }
}

static void gmap_scratch(guest *g)
{
    sl_pt_mem m = g_mem(g);
    for (unsigned r = 0; r < g->n_roots; r++)
        sl_pt_map(g->l.arch, &m, g->roots[r], g->l.scratch_gva, g->l.scratch_gpa, g->l.scratch_size,
                  basic(true, false));
}

static int take(guest *g, sl_snapshot **out, sl_errbuf *e)
{
    sl_guest_state st = {
        .layout = &g->l, .snap_mem = g->snap, .snap_size = g->snap_size, .scratch = g->scratch,
        .roots = g->roots, .n_roots = g->n_roots, .cur_root = 0, .stack_top = 0x1234000,
        .next_kind = SL_NEXT_CALL, .next_addr = 0x5000, .generation = 7, .family = 42,
    };
    return sl_snapshot_from_memory(out, &st, e);
}

/* ---------------- looking at restored memory ---------------- */

static void *m_page(void *ctx, uint64_t gpa)
{
    return (void *)sl_mem_read_ptr(ctx, gpa, SL_PAGE_SIZE);
}

static void *m_wpage(void *ctx, uint64_t gpa)
{
    sl_mem *m = ctx;
    if (sl_mem_read_ptr(m, gpa, SL_PAGE_SIZE) && gpa >= m->layout.scratch_gpa)
        return sl_mem_write_ptr(m, gpa, SL_PAGE_SIZE);
    return (void *)sl_mem_read_ptr(m, gpa, SL_PAGE_SIZE);
}

static bool m_lookup(sl_mem *m, uint64_t root, uint64_t va, sl_mapping *out, uint64_t *pte_gpa)
{
    sl_pt_mem pm = {.ctx = m, .page = m_page};
    return sl_pt_lookup(m->layout.arch, &pm, root, va, out, pte_gpa);
}

static const uint8_t *m_read_va(sl_mem *m, uint64_t va, sl_mapping *map)
{
    sl_mapping tmp;
    if (!m_lookup(m, m->root, va, map ? map : &tmp, NULL))
        return NULL;
    return sl_mem_read_ptr(m, (map ? map : &tmp)->gpa, SL_PAGE_SIZE);
}

/* A guest write at `va` (one byte): CoW as the guest's fault handler does it. */
static bool m_write_va(sl_mem *m, uint64_t va, uint8_t val)
{
    sl_mapping mp;
    uint64_t pte_gpa;
    if (!m_lookup(m, m->root, va, &mp, &pte_gpa))
        return false;
    if (mp.perm.kind == SL_MAP_COW) {
        uint64_t cur = sl_mem_bk_get(m, SL_BK_ALLOC_CURSOR);
        if (cur + SL_PAGE_SIZE > sl_mem_bk_get(m, SL_BK_ALLOC_LIMIT))
            return false;
        sl_mem_bk_set(m, SL_BK_ALLOC_CURSOR, cur + SL_PAGE_SIZE);
        memcpy(sl_mem_write_ptr(m, cur, SL_PAGE_SIZE), sl_mem_read_ptr(m, mp.gpa, SL_PAGE_SIZE),
               SL_PAGE_SIZE);
        sl_perm p = mp.perm;
        p.kind = SL_MAP_BASIC;
        p.writable = true;
        sl_pt_mem pm = {.ctx = m, .page = m_wpage};
        if (sl_pt_map(m->layout.arch, &pm, m->root, va & SL_PAGE_MASK, cur, SL_PAGE_SIZE, p))
            return false;
        mp.gpa = cur;
    } else if (!mp.perm.writable) {
        return false;
    }
    uint8_t *dst = sl_mem_write_ptr(m, mp.gpa + (va & (SL_PAGE_SIZE - 1)), 1);
    if (!dst)
        return false;
    *dst = val;
    return true;
}

static sl_guest_state mem_state(sl_mem *m, uint64_t *root)
{
    sl_guest_state st;
    sl_mem_guest_state(m, &st);
    *root = m->root;
    st.roots = root;
    st.n_roots = 1;
    st.next_kind = SL_NEXT_CALL;
    return st;
}

/* ---------------- tests ---------------- */

#define VA_CODE 0x400000ull
#define VA_DATA 0x600000ull

/* A guest with 4 code pages (RX), 4 data pages (RW), and 2 unreachable pages. */
static void build_basic_guest(guest *g, unsigned arch)
{
    guest_init(g, arch, 12, 1);
    for (unsigned i = 0; i < 4; i++)
        gmap(g, 0, VA_CODE + i * SL_PAGE_SIZE, fill_page(g, i, i + 1), basic(false, true));
    for (unsigned i = 0; i < 4; i++)
        gmap(g, 0, VA_DATA + i * SL_PAGE_SIZE, fill_page(g, 4 + i, 100 + i), basic(true, false));
    fill_page(g, 9, 999);  /* never mapped */
    fill_page(g, 10, 998); /* never mapped */
    gmap_scratch(g);
}

static void check_compaction(unsigned arch)
{
    guest g;
    build_basic_guest(&g, arch);
    sl_snapshot *s = NULL;
    sl_errbuf e;
    int rc = take(&g, &s, &e);
    if (rc)
        printf("  %s\n", e.msg);
    REQUIRE(rc == 0);
    /* Unreachable pages are gone: 8 live pages, densely packed. */
    CHECK_EQ(s->visible_size, 8 * SL_PAGE_SIZE);
    CHECK_EQ(s->stats.pages_ro, 4);
    CHECK_EQ(s->stats.pages_cow, 4);
    CHECK_EQ(s->mem_size, s->visible_size + s->pt_size);
    CHECK(s->n_regions == 0);
    CHECK_EQ(s->generation, 7);
    CHECK_EQ(s->next_kind, SL_NEXT_CALL);

    sl_mem *m = NULL;
    REQUIRE(sl_mem_create(&m, s, &e) == 0);
    m->family = s->family;
    REQUIRE(sl_mem_restore(m, s, &e) == 0);
    CHECK_EQ(m->root, g.l.pt_gpa);
    for (unsigned i = 0; i < 8; i++) {
        uint64_t va = (i < 4 ? VA_CODE : VA_DATA) + (i % 4) * SL_PAGE_SIZE;
        sl_mapping mp;
        const uint8_t *p = m_read_va(m, va, &mp);
        CHECK(p != NULL);
        if (!p)
            continue;
        CHECK(memcmp(p, g.snap + i * SL_PAGE_SIZE, SL_PAGE_SIZE) == 0);
        CHECK(mp.gpa >= SL_BASE_ADDRESS && mp.gpa < SL_BASE_ADDRESS + s->visible_size);
        if (i < 4) {
            CHECK_EQ(mp.perm.kind, SL_MAP_BASIC);
            CHECK(!mp.perm.writable);
            CHECK(mp.perm.executable);
        } else {
            CHECK_EQ(mp.perm.kind, SL_MAP_COW);
            CHECK(!mp.perm.writable);
            if (arch == SL_ARCH_AMD64)
                CHECK(!mp.perm.executable);
        }
    }
    /* Scratch is mapped RW and (amd64) NX in the rebuilt tables. */
    sl_mapping sm;
    CHECK(m_lookup(m, m->root, g.l.scratch_gva + 3 * SL_PAGE_SIZE, &sm, NULL));
    CHECK_EQ(sm.gpa, g.l.scratch_gpa + 3 * SL_PAGE_SIZE);
    CHECK(sm.perm.writable);
    if (arch == SL_ARCH_AMD64)
        CHECK(!sm.perm.executable);
    /* Nothing else is mapped. */
    CHECK(m_read_va(m, VA_CODE + 4 * SL_PAGE_SIZE, NULL) == NULL);
    sl_mem_free(m);
    sl_snapshot_free(s);
    guest_free(&g);
}

static void test_compaction_amd64(void) { check_compaction(SL_ARCH_AMD64); }
static void test_compaction_i686(void) { check_compaction(SL_ARCH_I686); }

static void test_dedupe_aliases(void)
{
    guest g;
    guest_init(&g, SL_ARCH_AMD64, 4, 1);
    uint64_t gpa = fill_page(&g, 2, 5);
    gmap(&g, 0, 0x10000000, gpa, basic(false, false));
    gmap(&g, 0, 0x20000000, gpa, basic(false, false));
    gmap(&g, 0, 0x30000000, fill_page(&g, 3, 6), basic(true, false));
    gmap_scratch(&g);
    sl_snapshot *s;
    sl_errbuf e;
    REQUIRE(take(&g, &s, &e) == 0);
    CHECK_EQ(s->visible_size, 2 * SL_PAGE_SIZE);
    CHECK_EQ(s->stats.leaves, 3);
    sl_mem *m;
    REQUIRE(sl_mem_create(&m, s, &e) == 0);
    m->family = s->family;
    REQUIRE(sl_mem_restore(m, s, &e) == 0);
    sl_mapping a, b;
    CHECK(m_read_va(m, 0x10000000, &a) && m_read_va(m, 0x20000000, &b));
    CHECK_EQ(a.gpa, b.gpa);
    CHECK(memcmp(m_read_va(m, 0x20000000, NULL), g.snap + 2 * SL_PAGE_SIZE, SL_PAGE_SIZE) == 0);
    sl_mem_free(m);
    sl_snapshot_free(s);
    guest_free(&g);
}

/* Pages the guest copied into scratch (CoW) are read from scratch and keep
 * their new contents in the next snapshot. */
static void test_restore_independent_abab(void)
{
    guest g;
    build_basic_guest(&g, SL_ARCH_AMD64);
    sl_snapshot *a, *b, *c;
    sl_errbuf e;
    REQUIRE(take(&g, &a, &e) == 0);
    sl_mem *m;
    REQUIRE(sl_mem_create(&m, a, &e) == 0);
    m->family = a->family;
    REQUIRE(sl_mem_restore(m, a, &e) == 0);

    /* Change two data pages, snapshot as B. */
    CHECK(m_write_va(m, VA_DATA + 5, 0xAB));
    CHECK(m_write_va(m, VA_DATA + 2 * SL_PAGE_SIZE + 17, 0xCD));
    CHECK(!m_write_va(m, VA_CODE, 1)); /* read-only code stays read-only */
    uint64_t root;
    sl_guest_state st = mem_state(m, &root);
    REQUIRE(sl_snapshot_from_memory(&b, &st, &e) == 0);
    CHECK(memcmp(a->hash, b->hash, SL_HASH_LEN) != 0);
    CHECK_EQ(b->visible_size, 8 * SL_PAGE_SIZE);

    /* Further changes after B must not leak into either snapshot. */
    CHECK(m_write_va(m, VA_DATA + 3 * SL_PAGE_SIZE, 0xEE));

    for (int round = 0; round < 3; round++) {
        const sl_snapshot *want = round == 1 ? b : a;
        REQUIRE(sl_mem_restore(m, want, &e) == 0);
        for (unsigned i = 0; i < 4; i++) {
            const uint8_t *p = m_read_va(m, VA_DATA + i * SL_PAGE_SIZE, NULL);
            REQUIRE(p != NULL);
            uint8_t expect[SL_PAGE_SIZE];
            memcpy(expect, g.snap + (4 + i) * SL_PAGE_SIZE, SL_PAGE_SIZE);
            if (round == 1 && i == 0)
                expect[5] = 0xAB;
            if (round == 1 && i == 2)
                expect[17] = 0xCD;
            CHECK(memcmp(p, expect, SL_PAGE_SIZE) == 0);
        }
        for (unsigned i = 0; i < 4; i++)
            CHECK(memcmp(m_read_va(m, VA_CODE + i * SL_PAGE_SIZE, NULL), g.snap + i * SL_PAGE_SIZE,
                         SL_PAGE_SIZE) == 0);
        /* Scratch is clean again: the allocator cursor is back and the pages
         * the guest used read as zero. */
        CHECK_EQ(sl_mem_bk_get(m, SL_BK_ALLOC_CURSOR), m->layout.pt_gpa + want->pt_size);
        const uint8_t *free_page = sl_mem_read_ptr(m, m->layout.pt_gpa + want->pt_size, SL_PAGE_SIZE);
        uint8_t zero[SL_PAGE_SIZE] = {0};
        CHECK(memcmp(free_page, zero, SL_PAGE_SIZE) == 0);
        CHECK(m_write_va(m, VA_DATA + 1, (uint8_t)round)); /* dirty it for the next round */
    }

    /* Same state, same identity: restore B, snapshot again. */
    REQUIRE(sl_mem_restore(m, b, &e) == 0);
    st = mem_state(m, &root);
    REQUIRE(sl_snapshot_from_memory(&c, &st, &e) == 0);
    CHECK(memcmp(b->hash, c->hash, SL_HASH_LEN) == 0);
    sl_mem_free(m);
    sl_snapshot_free(a);
    sl_snapshot_free(b);
    sl_snapshot_free(c);
    guest_free(&g);
}

static void test_restore_cost_follows_dirty_pages(void)
{
    guest g;
    build_basic_guest(&g, SL_ARCH_AMD64);
    sl_snapshot *a;
    sl_errbuf e;
    REQUIRE(take(&g, &a, &e) == 0);
    sl_mem *m;
    REQUIRE(sl_mem_create(&m, a, &e) == 0);
    m->family = a->family;
    REQUIRE(sl_mem_restore(m, a, &e) == 0);
    REQUIRE(sl_mem_restore(m, a, &e) == 0);
    uint64_t base = m->last_reset_pages; /* tables + bookkeeping written by a restore */
    CHECK(base <= a->pt_size / SL_PAGE_SIZE + 1);
    CHECK(m_write_va(m, VA_DATA, 1));
    CHECK(m_write_va(m, VA_DATA + SL_PAGE_SIZE, 1));
    CHECK(m_write_va(m, VA_DATA + 2 * SL_PAGE_SIZE, 1));
    REQUIRE(sl_mem_restore(m, a, &e) == 0);
    CHECK_EQ(m->last_reset_pages, base + 3);
    /* Only tables on the written path were copied back (this host-side
     * simulation dirties every level it walks; a guest dirties only the leaf). */
    CHECK(m->last_tables_copied >= 1 && m->last_tables_copied <= 4);
    REQUIRE(sl_mem_restore(m, a, &e) == 0);
    CHECK_EQ(m->last_tables_copied, 0);
    CHECK(a->pt_size / SL_PAGE_SIZE > 2);
    /* Restoring a snapshot of another family is refused. */
    sl_snapshot *other;
    guest g2;
    build_basic_guest(&g2, SL_ARCH_AMD64);
    REQUIRE(take(&g2, &other, &e) == 0);
    other->family = 43;
    CHECK_EQ(sl_mem_restore(m, other, &e), SL_EFAMILY);
    CHECK(strstr(e.msg, "family") != NULL);
    sl_snapshot_free(other);
    guest_free(&g2);
    sl_mem_free(m);
    sl_snapshot_free(a);
    guest_free(&g);
}

/* Three address spaces whose kernel half (PML4 entry 256) shares one PDPT. */
static void test_shared_kernel_half(void)
{
    guest g;
    guest_init(&g, SL_ARCH_AMD64, 8, 3);
    const uint64_t kva = 0xFFFF800000000000ull;
    gmap(&g, 0, kva, fill_page(&g, 0, 1), basic(false, true));
    gmap(&g, 0, kva + SL_PAGE_SIZE, fill_page(&g, 1, 2), basic(true, false));
    /* Roots 1 and 2 point their entry 256 at root 0's PDPT. */
    uint64_t *r0 = g_page(&g, g.roots[0]);
    for (unsigned r = 1; r < 3; r++) {
        uint64_t *rr = g_page(&g, g.roots[r]);
        rr[256] = r0[256];
        gmap(&g, r, 0x400000, fill_page(&g, 2 + r, 10 + r), basic(true, false)); /* private */
    }
    gmap(&g, 0, 0x400000, fill_page(&g, 2, 10), basic(true, false));
    sl_snapshot *s;
    sl_errbuf e;
    int rc = take(&g, &s, &e);
    if (rc)
        printf("  %s\n", e.msg);
    REQUIRE(rc == 0);
    CHECK_EQ(s->n_roots, 3);
    /* Two shared kernel pages once, three private pages. */
    CHECK_EQ(s->visible_size, 5 * SL_PAGE_SIZE);

    sl_mem *m;
    REQUIRE(sl_mem_create(&m, s, &e) == 0);
    m->family = s->family;
    REQUIRE(sl_mem_restore(m, s, &e) == 0);
    CHECK_EQ(sl_mem_bk_get(m, SL_BK_NROOTS), 3);
    const uint64_t *n[3];
    for (unsigned r = 0; r < 3; r++) {
        CHECK_EQ(sl_mem_bk_get(m, SL_BK_ROOTS + 8 * r), s->roots[r]);
        n[r] = (const uint64_t *)sl_mem_read_ptr(m, s->roots[r], SL_PAGE_SIZE);
        REQUIRE(n[r] != NULL);
    }
    /* The rebuilt roots still share the kernel-half table... */
    CHECK((n[0][256] & SL_PTE_ADDR_AMD64) == (n[1][256] & SL_PTE_ADDR_AMD64));
    CHECK((n[0][256] & SL_PTE_ADDR_AMD64) == (n[2][256] & SL_PTE_ADDR_AMD64));
    /* ...and keep private lower halves with their own contents. */
    for (unsigned r = 0; r < 3; r++) {
        m->root = s->roots[r];
        const uint8_t *p = m_read_va(m, 0x400000, NULL);
        REQUIRE(p != NULL);
        CHECK(memcmp(p, g.snap + (2 + r) * SL_PAGE_SIZE, SL_PAGE_SIZE) == 0);
        p = m_read_va(m, kva + SL_PAGE_SIZE, NULL);
        REQUIRE(p != NULL);
        CHECK(memcmp(p, g.snap + SL_PAGE_SIZE, SL_PAGE_SIZE) == 0);
    }
    /* The engine's own walk over the result sees the sharing. */
    sl_guest_state st;
    sl_mem_guest_state(m, &st);
    st.roots = s->roots;
    st.n_roots = 3;
    sl_snapshot *s2;
    REQUIRE(sl_snapshot_from_memory(&s2, &st, &e) == 0);
    CHECK_EQ(s2->visible_size, 5 * SL_PAGE_SIZE);
    CHECK(memcmp(s2->mem, s->mem, s->mem_size) == 0);
    CHECK(memcmp(s2->hash, s->hash, SL_HASH_LEN) == 0);
    sl_snapshot_free(s2);
    sl_mem_free(m);
    sl_snapshot_free(s);
    guest_free(&g);
}

/* The identity is BLAKE3 over the bytes it covers, as b3sum computes it. */
static int b3sum_of(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, char hex[65])
{
    char path[] = "/tmp/sandlet-b3-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    if (write(fd, a, alen) != (ssize_t)alen || (blen && write(fd, b, blen) != (ssize_t)blen)) {
        close(fd);
        return -1;
    }
    close(fd);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "b3sum --no-names %s", path);
    FILE *p = popen(cmd, "r");
    int ok = p && fscanf(p, "%64s", hex) == 1;
    if (p)
        pclose(p);
    unlink(path);
    return ok ? 0 : -1;
}

static void test_hash_matches_b3sum(void)
{
    guest g;
    build_basic_guest(&g, SL_ARCH_AMD64);
    sl_snapshot *s;
    sl_errbuf e;
    REQUIRE(take(&g, &s, &e) == 0);
    char want[65], got[65];
    REQUIRE(b3sum_of(s->mem, s->mem_size, NULL, 0, want) == 0);
    sl_hash_hex(s->hash, got);
    CHECK(strcmp(want, got) == 0);
    sl_snapshot_free(s);
    guest_free(&g);
}

/* ---------------- stable compaction (issue 11) ---------------- */

/* A guest on `parent`'s blob (restored into m) snapshotted with it as parent. */
static sl_snapshot *take_on(sl_mem *m, const sl_snapshot *parent)
{
    uint64_t root;
    sl_guest_state st = mem_state(m, &root);
    st.parent = parent->hash;
    sl_snapshot *s = NULL;
    sl_errbuf e;
    if (sl_snapshot_from_memory(&s, &st, &e))
        printf("  snapshot: %s\n", e.msg);
    return s;
}

/* The GPA that va maps to in snapshot s's tables (0: unmapped). */
static uint64_t gpa_in(const sl_snapshot *s, uint64_t va)
{
    sl_mem *m;
    sl_errbuf e;
    sl_mapping mp;
    if (sl_mem_create(&m, s, &e) || sl_mem_restore(m, s, &e))
        return 0;
    uint64_t gpa = m_lookup(m, m->root, va, &mp, NULL) ? mp.gpa : 0;
    sl_mem_free(m);
    return gpa;
}

/* A snapshot of a guest that changed nothing since its parent keeps every
 * page where it was: the blob, hence the identity, is the parent's. The
 * parent is recorded, and is not part of the identity. */
static void test_stable_unchanged(void)
{
    guest g;
    build_basic_guest(&g, SL_ARCH_AMD64);
    sl_snapshot *a, *b, *c;
    sl_errbuf e;
    REQUIRE(take(&g, &a, &e) == 0);
    CHECK(!a->has_parent && a->stats.pages_kept == 0);
    sl_mem *m;
    REQUIRE(sl_mem_create(&m, a, &e) == 0);
    REQUIRE(sl_mem_restore(m, a, &e) == 0);
    REQUIRE((b = take_on(m, a)));
    uint64_t pages = b->visible_size / SL_PAGE_SIZE;
    printf("  unchanged guest: %llu of %llu pages kept their position\n", (unsigned long long)b->stats.pages_kept,
           (unsigned long long)pages);
    CHECK_EQ(pages, 8);
    CHECK_EQ(b->stats.pages_kept, pages);
    CHECK(b->has_parent && memcmp(b->parent, a->hash, SL_HASH_LEN) == 0);
    CHECK(b->mem_size == a->mem_size && memcmp(b->mem, a->mem, a->mem_size) == 0);
    CHECK(memcmp(b->hash, a->hash, SL_HASH_LEN) == 0);
    /* and again, on b: still all of them */
    REQUIRE(sl_mem_restore(m, b, &e) == 0);
    REQUIRE((c = take_on(m, b)));
    CHECK_EQ(c->stats.pages_kept, pages);
    CHECK(memcmp(c->hash, a->hash, SL_HASH_LEN) == 0);
    sl_snapshot_free(c);
    sl_snapshot_free(b);
    sl_mem_free(m);
    sl_snapshot_free(a);
    guest_free(&g);
}

#define STABLE_CODE 16u
#define STABLE_DATA 48u
#define VA_ALIAS (VA_DATA + 0x100000)

/* k of the data pages written (copied into scratch by copy-on-write): every
 * other page keeps its position, and each changed page takes a position its
 * old copy left free, which in walk order is its own: every address maps
 * the same GPA as in the parent. Deduplication still holds (an alias of a
 * changed page and one of a kept page share their copies). */
/* A guest with STABLE_CODE code and STABLE_DATA data pages, snapshotted as
 * *a, then running on it in *m. */
static void stable_guest(guest *g, sl_snapshot **a, sl_mem **m)
{
    sl_errbuf e;
    guest_init(g, SL_ARCH_AMD64, STABLE_CODE + STABLE_DATA + 4, 1);
    for (unsigned i = 0; i < STABLE_CODE; i++)
        gmap(g, 0, VA_CODE + i * SL_PAGE_SIZE, fill_page(g, i, i + 1), basic(false, true));
    for (unsigned i = 0; i < STABLE_DATA; i++)
        gmap(g, 0, VA_DATA + i * SL_PAGE_SIZE, fill_page(g, STABLE_CODE + i, 100 + i), basic(true, false));
    gmap_scratch(g);
    if (take(g, a, &e) || sl_mem_create(m, *a, &e) || sl_mem_restore(*m, *a, &e)) {
        printf("  %s\n", e.msg);
        abort();
    }
}

static void check_k_changed(unsigned k)
{
    guest g;
    sl_snapshot *a, *b;
    sl_mem *m;
    sl_errbuf e;
    stable_guest(&g, &a, &m);
    /* Change every (STABLE_DATA / k)-th data page; alias the first changed
     * page and the first code page at new addresses (in the leaf table that
     * maps the data: this simulation allocates no table). */
    unsigned step = STABLE_DATA / k;
    for (unsigned j = 0; j < k; j++)
        REQUIRE(m_write_va(m, VA_DATA + (uint64_t)j * step * SL_PAGE_SIZE + 9, (uint8_t)(0xC0 + j)));
    sl_mapping changed, code;
    REQUIRE(m_lookup(m, m->root, VA_DATA, &changed, NULL) && m_lookup(m, m->root, VA_CODE, &code, NULL));
    sl_pt_mem pm = {.ctx = m, .page = m_wpage};
    REQUIRE(sl_pt_map(SL_ARCH_AMD64, &pm, m->root, VA_ALIAS, changed.gpa, SL_PAGE_SIZE, basic(false, false)) == 0);
    REQUIRE(sl_pt_map(SL_ARCH_AMD64, &pm, m->root, VA_ALIAS + SL_PAGE_SIZE, code.gpa, SL_PAGE_SIZE,
                      basic(false, false)) == 0);
    REQUIRE((b = take_on(m, a)));
    uint64_t pages = b->visible_size / SL_PAGE_SIZE;
    printf("  %u changed page%s: %llu of %llu pages kept their position\n", k, k == 1 ? "" : "s",
           (unsigned long long)b->stats.pages_kept, (unsigned long long)pages);
    CHECK_EQ(pages, STABLE_CODE + STABLE_DATA); /* dense, aliases deduplicated */
    CHECK_EQ(b->stats.pages_kept, pages - k);
    CHECK_EQ(b->stats.leaves, pages + 2);
    for (unsigned i = 0; i < STABLE_CODE + STABLE_DATA; i++) {
        uint64_t va = i < STABLE_CODE ? VA_CODE + i * SL_PAGE_SIZE : VA_DATA + (i - STABLE_CODE) * SL_PAGE_SIZE;
        CHECK_EQ(gpa_in(b, va), gpa_in(a, va));
    }
    CHECK_EQ(gpa_in(b, VA_ALIAS), gpa_in(a, VA_DATA));
    CHECK_EQ(gpa_in(b, VA_ALIAS + SL_PAGE_SIZE), gpa_in(a, VA_CODE));
    /* The contents are the guest's: the changed bytes in, the rest as before. */
    sl_mem *mb;
    REQUIRE(sl_mem_create(&mb, b, &e) == 0);
    REQUIRE(sl_mem_restore(mb, b, &e) == 0);
    for (unsigned i = 0; i < STABLE_DATA; i++) {
        const uint8_t *p = m_read_va(mb, VA_DATA + i * SL_PAGE_SIZE, NULL);
        REQUIRE(p);
        uint8_t want[SL_PAGE_SIZE];
        memcpy(want, g.snap + (STABLE_CODE + i) * SL_PAGE_SIZE, SL_PAGE_SIZE);
        if (i % step == 0 && i / step < k)
            want[9] = (uint8_t)(0xC0 + i / step);
        CHECK(memcmp(p, want, SL_PAGE_SIZE) == 0);
    }
    /* Same guest, same identity, whatever the parent recorded. */
    uint64_t root;
    sl_guest_state st = mem_state(m, &root);
    sl_snapshot *orphan;
    REQUIRE(sl_snapshot_from_memory(&orphan, &st, &e) == 0);
    CHECK(memcmp(orphan->hash, b->hash, SL_HASH_LEN) == 0);
    CHECK(!orphan->has_parent && orphan->stats.pages_kept == 0);
    sl_snapshot_free(orphan);
    sl_mem_free(mb);
    sl_snapshot_free(b);
    sl_mem_free(m);
    sl_snapshot_free(a);
    guest_free(&g);
}

static void test_stable_k_changed(void)
{
    check_k_changed(1);
    check_k_changed(6);
    check_k_changed(STABLE_DATA);
}

/* The guest unmaps one data page and maps a new one (a scratch page) at a
 * higher address: the new page takes the freed position, and nothing else
 * moves (dense packing in walk order would shift every later page down). */
static void test_stable_fills_holes(void)
{
    guest g;
    sl_snapshot *a, *b;
    sl_mem *m;
    stable_guest(&g, &a, &m);
    sl_mapping mp;
    uint64_t pte_gpa;
    REQUIRE(m_lookup(m, m->root, VA_DATA + 3 * SL_PAGE_SIZE, &mp, &pte_gpa));
    memset(sl_mem_write_ptr(m, pte_gpa, 8), 0, 8); /* the PTE (amd64: 8 bytes) */
    uint64_t fresh = sl_mem_bk_get(m, SL_BK_ALLOC_CURSOR);
    sl_mem_bk_set(m, SL_BK_ALLOC_CURSOR, fresh + SL_PAGE_SIZE);
    memset(sl_mem_write_ptr(m, fresh, SL_PAGE_SIZE), 0x77, SL_PAGE_SIZE);
    sl_pt_mem pm = {.ctx = m, .page = m_wpage};
    REQUIRE(sl_pt_map(SL_ARCH_AMD64, &pm, m->root, VA_ALIAS, fresh, SL_PAGE_SIZE, basic(true, false)) == 0);
    REQUIRE((b = take_on(m, a)));
    CHECK_EQ(b->visible_size, a->visible_size);
    CHECK_EQ(b->stats.pages_kept, STABLE_CODE + STABLE_DATA - 1);
    CHECK_EQ(gpa_in(b, VA_DATA + 3 * SL_PAGE_SIZE), 0);
    CHECK_EQ(gpa_in(b, VA_ALIAS), gpa_in(a, VA_DATA + 3 * SL_PAGE_SIZE));
    for (unsigned i = 0; i < STABLE_DATA; i++)
        if (i != 3)
            CHECK_EQ(gpa_in(b, VA_DATA + i * SL_PAGE_SIZE), gpa_in(a, VA_DATA + i * SL_PAGE_SIZE));
    CHECK_EQ(b->mem[gpa_in(b, VA_ALIAS) - SL_BASE_ADDRESS], 0x77);
    sl_snapshot_free(b);
    sl_mem_free(m);
    sl_snapshot_free(a);
    guest_free(&g);
}

/* The blob stays dense: a parent page whose offset is past the new blob's
 * size moves into a free slot, in walk order, like a new page. */
static void test_stable_stays_dense(void)
{
    guest g;
    guest_init(&g, SL_ARCH_AMD64, 8, 1);
    gmap(&g, 0, 0x10000000, fill_page(&g, 6, 6), basic(false, false)); /* offset 6: cannot stay */
    gmap(&g, 0, 0x20000000, fill_page(&g, 1, 1), basic(false, false)); /* offset 1: stays */
    gmap(&g, 0, 0x30000000, fill_page(&g, 7, 7), basic(false, false)); /* offset 7: cannot stay */
    gmap_scratch(&g);
    uint8_t parent[SL_HASH_LEN] = {1};
    sl_guest_state st = {
        .layout = &g.l, .snap_mem = g.snap, .snap_size = g.snap_size, .scratch = g.scratch,
        .roots = g.roots, .n_roots = 1, .next_kind = SL_NEXT_CALL, .next_addr = 0x5000, .family = 42,
        .parent = parent,
    };
    sl_snapshot *s;
    sl_errbuf e;
    REQUIRE(sl_snapshot_from_memory(&s, &st, &e) == 0);
    CHECK_EQ(s->visible_size, 3 * SL_PAGE_SIZE);
    CHECK_EQ(s->stats.pages_kept, 1);
    CHECK_EQ(gpa_in(s, 0x20000000), SL_BASE_ADDRESS + 1 * SL_PAGE_SIZE);
    CHECK_EQ(gpa_in(s, 0x10000000), SL_BASE_ADDRESS);                     /* first free slot */
    CHECK_EQ(gpa_in(s, 0x30000000), SL_BASE_ADDRESS + 2 * SL_PAGE_SIZE);  /* the next one */
    CHECK(memcmp(s->mem, g.snap + 6 * SL_PAGE_SIZE, SL_PAGE_SIZE) == 0);
    CHECK(memcmp(s->mem + SL_PAGE_SIZE, g.snap + 1 * SL_PAGE_SIZE, SL_PAGE_SIZE) == 0);
    CHECK(memcmp(s->mem + 2 * SL_PAGE_SIZE, g.snap + 7 * SL_PAGE_SIZE, SL_PAGE_SIZE) == 0);
    sl_snapshot_free(s);
    guest_free(&g);
}

/* ---------------- from a binary ---------------- */

static void test_from_binary(void)
{
    static uint8_t elf[MIN_ELF_SIZE];
    size_t len = min_elf64(elf, (min_elf){.data_memsz = 0x2000, .data_byte = 0x5A, .relocation = true});
    sl_config cfg = {.heap_size = 8192, .scratch_size = 1 << 20, .init_data = "hello",
                     .init_data_size = 5, .init_data_perm = SL_PERM_READ};
    sl_snapshot *s, *s2;
    sl_errbuf e;
    int rc = sl_snapshot_from_binary(&s, elf, len, &cfg, &e);
    if (rc)
        printf("  %s\n", e.msg);
    REQUIRE(rc == 0);
    const sl_layout *l = &s->layout;
    CHECK_EQ(l->peb_gpa, SL_BASE_ADDRESS);
    /* The guest kernel right after the PEB, the (PIE) program right after it;
     * init enters the kernel, which enters the program at its entry. */
    CHECK_EQ(l->kernel_gpa, SL_BASE_ADDRESS + SL_PAGE_SIZE);
    CHECK(l->kernel_size > 0 && l->kernel_size % SL_PAGE_SIZE == 0);
    CHECK_EQ(l->image_gpa, l->kernel_gpa + l->kernel_size);
    CHECK_EQ(s->next_kind, SL_NEXT_INITIALISE);
    CHECK(s->next_addr >= l->kernel_gpa && s->next_addr < l->image_gpa);
    CHECK_EQ(s->generation, 0);
    CHECK_EQ(s->sregs_len, 0);
    CHECK_EQ(s->visible_size, l->visible_end - SL_BASE_ADDRESS);
    const uint8_t *base = s->mem - SL_BASE_ADDRESS;
    uint64_t v;
    memcpy(&v, base + l->peb_gpa + SL_PEB_MAGIC, 8);
    CHECK_EQ(v, SL_PEB_MAGIC_VALUE);
    memcpy(&v, base + l->peb_gpa + SL_PEB_HEAP_PTR, 8);
    CHECK_EQ(v, l->heap_gpa);
    memcpy(&v, base + l->peb_gpa + SL_PEB_USER_ENTRY, 8);
    CHECK_EQ(v, l->image_gpa + 0x200);
    memcpy(&v, base + l->peb_gpa + SL_PEB_KERNEL_GVA, 8);
    CHECK_EQ(v, l->kernel_gpa);
    /* The program is placed, not relocated (a static PIE relocates itself):
     * the R_X86_64_RELATIVE slot keeps its file contents. */
    memcpy(&v, base + l->image_gpa + 0x1000, 8);
    CHECK_EQ(v, 0);
    CHECK_EQ(base[l->image_gpa + 0x200], 0xF4);
    CHECK(memcmp(base + l->init_data_gpa, "hello", 5) == 0);
    /* Regions: PEB, the kernel's (supervisor-only), then the program's text
     * (RX), data+bss (RW), init data (R), heap (RW), all user-accessible. */
    unsigned nk = 0;
    for (unsigned i = 0; i < s->n_regions; i++) {
        const sl_region *r = &s->regions[i];
        if (r->kind == SL_RK_KERNEL) {
            nk++;
            CHECK(!(r->flags & SL_RF_USER));
        } else if (r->kind != SL_RK_PEB) {
            CHECK(r->flags & SL_RF_USER);
        } else {
            CHECK(!(r->flags & SL_RF_USER));
        }
    }
    CHECK(nk >= 2); /* at least text and data */
    CHECK_EQ(s->n_regions, 5 + nk);
    /* Identity: b3sum over the blob followed by the region records. */
    uint8_t recs[SL_MAX_REGIONS * SL_REGION_RECORD_SIZE];
    for (unsigned i = 0; i < s->n_regions; i++)
        sl_region_record(&s->regions[i], recs + i * SL_REGION_RECORD_SIZE);
    char want[65], got[65];
    REQUIRE(b3sum_of(s->mem, s->mem_size, recs, s->n_regions * SL_REGION_RECORD_SIZE, want) == 0);
    sl_hash_hex(s->hash, got);
    CHECK(strcmp(want, got) == 0);

    /* Tables identity-map each region with the right kind. */
    sl_mem *m;
    REQUIRE(sl_mem_create(&m, s, &e) == 0);
    REQUIRE(sl_mem_restore(m, s, &e) == 0);
    sl_mapping mp;
    CHECK(m_read_va(m, l->image_gpa, &mp) && mp.gpa == l->image_gpa && mp.perm.kind == SL_MAP_BASIC &&
          mp.perm.executable && !mp.perm.writable);
    CHECK(m_read_va(m, l->image_gpa + 0x2000, &mp) && mp.perm.kind == SL_MAP_COW && !mp.perm.executable);
    CHECK(m_read_va(m, l->heap_gpa, &mp) && mp.perm.kind == SL_MAP_COW);
    CHECK(m_read_va(m, l->peb_gpa, &mp) && mp.perm.kind == SL_MAP_BASIC && !mp.perm.writable);
    CHECK(m_read_va(m, l->heap_gpa + l->heap_size, NULL) == NULL);
    CHECK(m_write_va(m, l->heap_gpa + 8, 3));
    CHECK(!m_write_va(m, l->image_gpa, 3));
    /* Same binary, same bytes and identity; a new configuration family. */
    REQUIRE(sl_snapshot_from_binary(&s2, elf, len, &cfg, &e) == 0);
    CHECK(memcmp(s->hash, s2->hash, SL_HASH_LEN) == 0);
    CHECK(s->family != s2->family);
    CHECK_EQ(sl_mem_restore(m, s2, &e), SL_EFAMILY);
    sl_snapshot_free(s2);
    sl_mem_free(m);
    sl_snapshot_free(s);
}

static void test_layout_limits(void)
{
    sl_layout l;
    sl_errbuf e;
    sl_config huge = {.heap_size = 17ull << 30};
    CHECK_EQ(sl_layout_config(&l, SL_ARCH_AMD64, &huge, &e), SL_ERANGE);
    sl_config wrap = {.scratch_size = UINT64_MAX - 10};
    CHECK_EQ(sl_layout_config(&l, SL_ARCH_AMD64, &wrap, &e), SL_ERANGE);
    sl_config tiny = {.scratch_size = 8192};
    CHECK_EQ(sl_layout_config(&l, SL_ARCH_AMD64, &tiny, &e), SL_ERANGE);
    CHECK(strstr(e.msg, "scratch") != NULL);
    sl_config sum = {.heap_size = 8ull << 30, .scratch_size = 9ull << 30};
    CHECK_EQ(sl_layout_config(&l, SL_ARCH_AMD64, &sum, &e), SL_ERANGE);
    sl_config i686 = {.heap_size = 3ull << 30};
    CHECK_EQ(sl_layout_config(&l, SL_ARCH_I686, &i686, &e), SL_ERANGE);
    CHECK_EQ(sl_layout_config(&l, 7, NULL, &e), SL_EINVAL);
    REQUIRE(sl_layout_config(&l, SL_ARCH_I686, NULL, &e) == 0);
    CHECK_EQ(l.scratch_gpa + l.scratch_size, SL_I686_SCRATCH_END);
    CHECK_EQ(l.scratch_gva, l.scratch_gpa);
    REQUIRE(sl_layout_config(&l, SL_ARCH_AMD64, NULL, &e) == 0);
    CHECK_EQ(l.scratch_gpa + l.scratch_size - 1, 0xFFFFFFFFFull);
    CHECK_EQ(l.scratch_gva + l.scratch_size - 1, 0xFFFFFFFFFFFFEFFFull);
    /* input, output, a guard page, the call stack, then the page tables */
    CHECK_EQ(l.callstack_gpa, l.scratch_gpa + l.input_size + l.output_size + SL_PAGE_SIZE);
    CHECK_EQ(l.pt_gpa, l.callstack_gpa + l.stack_size);
    /* An ET_EXEC image below the PEB end cannot be placed. */
    CHECK_EQ(sl_layout_place(&l, 0, 0x4000, 0x1000, true, &e), SL_ERANGE);
    CHECK_EQ(sl_layout_place(&l, 0, 0x10000, 0x1000, true, &e), 0);
}

/* ---------------- hostile tables ---------------- */

static void test_hostile_tables(void)
{
    sl_errbuf e;
    sl_snapshot *s = NULL;
    for (unsigned arch = SL_ARCH_AMD64; arch <= SL_ARCH_I686; arch++) {
        guest g;
        build_basic_guest(&g, arch);
        unsigned w = arch == SL_ARCH_I686 ? 4 : 8, n = SL_PAGE_SIZE / w;
        uint8_t *root = g_page(&g, g.roots[0]);
        /* Every free root entry points back at the root (a loop at each level),
         * one points far outside memory, one into the middle of the snapshot. */
        for (unsigned i = 0; i < n; i++) {
            uint64_t ent = 0;
            memcpy(&ent, root + i * w, w);
            if (ent & SL_PTE_P)
                continue;
            uint64_t v = i == 3 ? (0x7FFFFF000ull & (arch == SL_ARCH_I686 ? 0xFFFFF000 : ~0ull)) | 3
                       : i == 4 ? SL_BASE_ADDRESS + 9 * SL_PAGE_SIZE + 3
                                : g.roots[0] | 3;
            memcpy(root + i * w, &v, w);
        }
        int rc = take(&g, &s, &e);
        /* Either a clean error or a snapshot that still holds the real pages. */
        if (rc == 0) {
            CHECK(s->visible_size >= 8 * SL_PAGE_SIZE);
            CHECK(s->visible_size <= g.snap_size);
            sl_snapshot_free(s);
        } else {
            CHECK(rc == SL_EPAGETABLE || rc == SL_ERANGE);
        }
        /* Roots outside memory are an error, not a crash. */
        g.roots[0] = 0xFFFFF000;
        CHECK_EQ(take(&g, &s, &e), SL_EPAGETABLE);
        guest_free(&g);
    }
    /* Random garbage as page tables: must terminate, never crash. */
    srand(1);
    for (int iter = 0; iter < 30; iter++) {
        guest g;
        guest_init(&g, iter % 2 ? SL_ARCH_I686 : SL_ARCH_AMD64, 16, 2);
        for (uint64_t i = 0; i < g.snap_size; i++)
            g.snap[i] = (uint8_t)rand();
        /* Bias entries toward plausible GPAs so the walk goes deep. */
        for (uint64_t i = 0; i + 8 <= 3 * SL_PAGE_SIZE; i += 8) {
            uint64_t v = SL_BASE_ADDRESS + (uint64_t)(rand() % 16) * SL_PAGE_SIZE + (uint64_t)(rand() & 0x2f7);
            memcpy(g.snap + i, &v, iter % 2 ? 4 : 8);
        }
        g.roots[0] = SL_BASE_ADDRESS;
        g.roots[1] = SL_BASE_ADDRESS + SL_PAGE_SIZE;
        int rc = take(&g, &s, &e);
        if (rc == 0) {
            CHECK(s->visible_size <= g.snap_size + g.l.scratch_size);
            sl_snapshot_free(s);
        }
        guest_free(&g);
    }
}

int main(void)
{
    RUN(test_compaction_amd64);
    RUN(test_compaction_i686);
    RUN(test_dedupe_aliases);
    RUN(test_restore_independent_abab);
    RUN(test_restore_cost_follows_dirty_pages);
    RUN(test_shared_kernel_half);
    RUN(test_hash_matches_b3sum);
    RUN(test_stable_unchanged);
    RUN(test_stable_k_changed);
    RUN(test_stable_fills_holes);
    RUN(test_stable_stays_dense);
    RUN(test_from_binary);
    RUN(test_layout_limits);
    RUN(test_hostile_tables);
    T_EXIT();
}
