/* End-to-end test of a guest with several address spaces (guests/multispace.c:
 * four roots that share every table but the private root slot 1, each with
 * its own page at PRIVATE_GVA). A snapshot of it must keep the sharing: the
 * test walks the snapshot's page tables through the engine's structures
 * (src/host/snapshot.h, src/common/pt.h) and checks that every space's root
 * points its shared entries at the same tables as space 0, and that nothing
 * but the private page is private to spaces 1..n-1. Needs a real KVM (or the
 * KVM lab). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pt.h"
#include "sandlet.h"
#include "snapshot.h"
#include "t.h"
#include "../common/e2e.h"
/* White-box: reads the compacted tables where the engine put them. */
#include "snapshot_impl.h"
#include "pt_owners.h"

#define PRIVATE_GVA 0x0000008000000000ull /* guests/multispace.c */
#define PRIVATE_SLOT 1u                   /* its root-table index */
#define MAGIC 0x5350414345000000ull
#define NSPACES 4

static sl_sandbox *open_multispace(void)
{
    sl_sandbox *sb = NULL;
    char err[256] = "";
    int rc = sl_sandbox_new_from_file(&sb, guest_path("multispace"), NULL, err, sizeof err);
    if (rc) {
        printf("  cannot create a sandbox from %s: %s: %s\n", guest_path("multispace"), sl_strerror(rc), err);
        return NULL;
    }
    rc = sl_sandbox_init(sb);
    if (rc) {
        printf("  init: %s: %s\n", sl_strerror(rc), sl_sandbox_errmsg(sb));
        sl_sandbox_free(sb);
        return NULL;
    }
    return sb;
}

static int32_t spaces(sl_sandbox *sb)
{
    sl_value r;
    memset(&r, 0, sizeof r);
    int rc = sl_sandbox_call(sb, "Spaces", NULL, 0, &r);
    if (rc || r.type != SL_TYPE_I32) {
        printf("  Spaces: %s: %s\n", sl_strerror(rc), sl_sandbox_errmsg(sb));
        return -1;
    }
    return r.v.i32;
}

static int64_t visits(sl_sandbox *sb, int32_t space)
{
    sl_value a = {.type = SL_TYPE_I32}, r;
    a.v.i32 = space;
    memset(&r, 0, sizeof r);
    int rc = sl_sandbox_call(sb, "Visits", &a, 1, &r);
    if (rc || r.type != SL_TYPE_I64) {
        printf("  Visits(%d): %s: %s\n", space, sl_strerror(rc), sl_sandbox_errmsg(sb));
        return -1;
    }
    return r.v.i64;
}

/* ---- reading a snapshot's blob as guest-physical memory ---- */

/* Tables live at layout.pt_gpa + offset, i.e. at blob offset visible_size +
 * (gpa - pt_gpa); guest-visible pages at blob offset gpa - SL_BASE_ADDRESS. */
static void *snap_page(void *ctx, uint64_t gpa)
{
    const sl_snapshot *s = ctx;
    if (gpa % SL_PAGE_SIZE)
        return NULL;
    uint64_t pt = s->layout.pt_gpa;
    if (gpa >= pt && gpa - pt < s->pt_size && gpa - pt + SL_PAGE_SIZE <= s->pt_size)
        return s->mem + s->visible_size + (gpa - pt);
    if (gpa >= SL_BASE_ADDRESS && gpa - SL_BASE_ADDRESS + SL_PAGE_SIZE <= s->visible_size)
        return s->mem + (gpa - SL_BASE_ADDRESS);
    return NULL;
}

typedef struct walk_stats {
    const sl_snapshot *snap;
    uint64_t scratch_lo, scratch_hi; /* GVA window of scratch */
    unsigned leaves[NSPACES];        /* THIS_SPACE leaves outside scratch, per root */
    unsigned private_leaves[NSPACES];
    uint64_t private_gpa[NSPACES];
    uint64_t private_magic[NSPACES];
    unsigned shared_root_entries[NSPACES]; /* depth-0 ANOTHER_SPACE items owned by root 0 */
    unsigned bad;
} walk_stats;

static bool visit(void *arg, const sl_walk_item *it)
{
    walk_stats *w = arg;
    if (it->root >= NSPACES) {
        w->bad++;
        return true;
    }
    if (it->kind == SL_WALK_THIS_SPACE) {
        uint64_t va = it->map.gva;
        if (va >= w->scratch_lo && va < w->scratch_hi)
            return true;
        w->leaves[it->root]++;
        if (va == PRIVATE_GVA) {
            w->private_leaves[it->root]++;
            w->private_gpa[it->root] = it->map.gpa;
            const uint8_t *p = snap_page((void *)w->snap, it->map.gpa);
            if (p)
                memcpy(&w->private_magic[it->root], p, 8);
        }
    } else if (it->kind == SL_WALK_ANOTHER_SPACE) {
        if (it->depth == 0 && it->owner_root == 0 && it->root != 0)
            w->shared_root_entries[it->root]++;
    }
    return true;
}

static uint64_t root_entry(const sl_snapshot *s, unsigned root, unsigned idx)
{
    const uint8_t *t = snap_page((void *)s, s->roots[root]);
    uint64_t e = 0;
    if (t)
        memcpy(&e, t + idx * 8u, 8);
    return e;
}

/* ------------------------------------------------------------------- tests */

static void test_spaces(void)
{
    sl_sandbox *sb = open_multispace();
    REQUIRE(sb != NULL);
    CHECK_EQ(sl_sandbox_function_count(sb), 2);
    CHECK(sl_sandbox_find_function(sb, "Spaces") >= 0);
    int32_t n = spaces(sb);
    CHECK(n >= 3);
    CHECK_EQ(n, NSPACES);
    for (int i = 0; i < NSPACES; i++)
        CHECK_EQ(visits(sb, i), 1);
    CHECK_EQ(spaces(sb), NSPACES);
    CHECK_EQ(visits(sb, 3), 2);
    /* a guest-reported error is not a fault */
    sl_value a = {.type = SL_TYPE_I32}, r;
    a.v.i32 = 99;
    CHECK(sl_sandbox_call(sb, "Visits", &a, 1, &r) < 0);
    CHECK(strstr(sl_sandbox_errmsg(sb), "no such space") != NULL);
    CHECK_EQ(sl_sandbox_status(sb), SL_STATUS_READY);
    sl_sandbox_free(sb);
}

static void test_snapshot_shares_tables(void)
{
    sl_sandbox *sb = open_multispace();
    REQUIRE(sb != NULL);
    CHECK_EQ(spaces(sb), NSPACES); /* visits: 1 each */
    sl_snapshot *snap = NULL;
    REQUIRE(sl_sandbox_snapshot(sb, &snap) == 0);
    CHECK_EQ(snap->arch, SL_ARCH_AMD64);
    CHECK(snap->n_roots >= 3);
    REQUIRE(snap->n_roots == NSPACES);
    CHECK(snap->cur_root < snap->n_roots);
    /* every root is a distinct table in the page-table tail */
    for (unsigned i = 0; i < snap->n_roots; i++) {
        CHECK(snap->roots[i] >= snap->layout.pt_gpa &&
              snap->roots[i] - snap->layout.pt_gpa < snap->pt_size);
        for (unsigned j = 0; j < i; j++)
            CHECK(snap->roots[i] != snap->roots[j]);
    }

    /* Root level: every entry space 0 has, apart from the private slot and the
     * scratch slot (mapped into each root by the engine), points to the very
     * same table in every space. */
    unsigned scratch_slot = (unsigned)((snap->layout.scratch_gva >> 39) & 511);
    unsigned shared = 0;
    for (unsigned idx = 0; idx < 512; idx++) {
        if (idx == PRIVATE_SLOT || idx == scratch_slot)
            continue;
        uint64_t e0 = root_entry(snap, 0, idx);
        for (unsigned r = 1; r < snap->n_roots; r++) {
            uint64_t er = root_entry(snap, r, idx);
            if ((e0 & SL_PTE_P) != (er & SL_PTE_P) ||
                ((e0 & SL_PTE_P) && sl_pt_entry_addr(SL_ARCH_AMD64, e0) != sl_pt_entry_addr(SL_ARCH_AMD64, er))) {
                printf("  root slot %u: space 0 0x%llx, space %u 0x%llx\n", idx, (unsigned long long)e0, r,
                       (unsigned long long)er);
                t_failed_now = 1;
            }
        }
        if (e0 & SL_PTE_P)
            shared++;
    }
    CHECK(shared >= 1); /* at least the image/heap slot */
    CHECK(root_entry(snap, 0, 0) & SL_PTE_P);
    /* the private slot: present everywhere, a different table in each space */
    for (unsigned r = 0; r < snap->n_roots; r++) {
        uint64_t er = root_entry(snap, r, PRIVATE_SLOT);
        CHECK(er & SL_PTE_P);
        for (unsigned q = 0; q < r; q++)
            CHECK(sl_pt_entry_addr(SL_ARCH_AMD64, er) !=
                  sl_pt_entry_addr(SL_ARCH_AMD64, root_entry(snap, q, PRIVATE_SLOT)));
    }

    /* The engine's multi-space walk over the snapshot: spaces 1..n-1 reach
     * space 0's tables (ANOTHER_SPACE at the root level) and own nothing but
     * their private page. */
    sl_pt_mem mem = {.ctx = snap, .page = snap_page, .alloc = NULL};
    sl_pt_owners tables;
    sl_pt_owners_init(&tables, 0);
    sl_pt_seen seen = sl_pt_owners_seen(&tables);
    walk_stats w;
    memset(&w, 0, sizeof w);
    w.snap = snap;
    w.scratch_lo = snap->layout.scratch_gva;
    w.scratch_hi = snap->layout.scratch_gva + snap->layout.scratch_size;
    int rc = sl_pt_walk_spaces(SL_ARCH_AMD64, &mem, snap->roots, snap->n_roots, &seen, visit, &w);
    CHECK_EQ(rc, SL_PT_OK);
    CHECK_EQ(w.bad, 0);
    printf("  leaves outside scratch per space: %u %u %u %u; shared root entries: %u %u %u\n", w.leaves[0],
           w.leaves[1], w.leaves[2], w.leaves[3], w.shared_root_entries[1], w.shared_root_entries[2],
           w.shared_root_entries[3]);
    CHECK(w.leaves[0] > 10); /* image, PEB, heap, ... */
    for (unsigned r = 0; r < NSPACES; r++) {
        CHECK_EQ(w.private_leaves[r], 1);
        CHECK_EQ(w.private_magic[r], MAGIC | r); /* each space kept its own page */
        for (unsigned q = 0; q < r; q++)
            CHECK(w.private_gpa[r] != w.private_gpa[q]);
        if (r == 0)
            continue;
        CHECK_EQ(w.leaves[r], 1);                    /* only the private page */
        CHECK(w.shared_root_entries[r] >= shared);  /* everything else is space 0's */
    }
    sl_pt_owners_free(&tables);

    /* the live sandbox goes on, and a restore brings the snapshot's state back */
    CHECK_EQ(spaces(sb), NSPACES);
    CHECK_EQ(visits(sb, 1), 2);
    REQUIRE(sl_sandbox_restore(sb, snap) == 0);
    for (int i = 0; i < NSPACES; i++)
        CHECK_EQ(visits(sb, i), 1);
    CHECK_EQ(spaces(sb), NSPACES);
    for (int i = 0; i < NSPACES; i++)
        CHECK_EQ(visits(sb, i), 2);
    REQUIRE(sl_sandbox_restore(sb, snap) == 0);
    CHECK_EQ(spaces(sb), NSPACES);
    CHECK_EQ(visits(sb, 2), 2);

    /* snapshot after restore: the same identity, the same sharing */
    REQUIRE(sl_sandbox_restore(sb, snap) == 0);
    sl_snapshot *again = NULL;
    REQUIRE(sl_sandbox_snapshot(sb, &again) == 0);
    CHECK_EQ(again->n_roots, snap->n_roots);
    CHECK(memcmp(again->hash, snap->hash, SL_HASH_LEN) == 0);

    /* a fresh sandbox from the snapshot sees all spaces too */
    sl_sandbox *nb = NULL;
    char err[256] = "";
    rc = sl_sandbox_new_from_snapshot(&nb, snap, err, sizeof err);
    CHECK_EQ(rc, 0);
    if (rc == 0) {
        CHECK_EQ(spaces(nb), NSPACES);
        CHECK_EQ(visits(nb, 0), 2);
        sl_sandbox_free(nb);
    } else {
        printf("  new_from_snapshot: %s\n", err);
    }
    sl_snapshot_free(again);
    sl_snapshot_free(snap);
    sl_sandbox_free(sb);
}

int main(void)
{
    RUN_ARCH(T_AMD64, test_spaces);
    RUN_ARCH(T_AMD64, test_snapshot_shares_tables);
    T_EXIT();
}
