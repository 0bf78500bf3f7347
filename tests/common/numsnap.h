/* Snapshots of a simulated guest (sim.h) whose pages hold numbered contents:
 * page i holds content ids[i], 4096 bytes that depend on the number only, so
 * a test can say which page of a child equals which page of its parent
 * without KVM. A child's snapshot is made as a sandbox on its parent would
 * make it (numsnap_of). For tests/unit/test_snapchild.c and fuzz/fuzz_snapchild.c. */
#ifndef SL_TEST_NUMSNAP_H
#define SL_TEST_NUMSNAP_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hash.h"
#include "pt.h"
#include "snapshot.h"
#include "sim.h"

#define NUMSNAP_FAMILY 77

/* The 4096 bytes of content number id: equal ids, equal pages; different
 * ids, different pages (a xorshift stream seeded by the id). */
static inline void numsnap_fill(uint8_t *p, uint32_t id)
{
    uint64_t x = 0x9E3779B97F4A7C15ull * (id + 1u);
    for (unsigned i = 0; i < SL_PAGE_SIZE; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(p + i, &x, 8);
    }
}

/* BLAKE3 of one page alone, as the content index holds it. */
static inline void numsnap_page_hash(const uint8_t *page, uint8_t out[SL_HASH_LEN])
{
    sl_hasher *h = sl_hasher_new();
    sl_hasher_update(h, page, SL_PAGE_SIZE);
    sl_hasher_final(h, out);
}

/* A snapshot's blob as guest memory (restore's view): the visible pages at
 * SL_BASE_ADDRESS, the page tables at the layout's pt_gpa. */
static inline void *numsnap_blob_page(void *ctx, uint64_t gpa)
{
    const sl_snapshot *s = ctx;
    uint64_t vis = sl_snapshot_memory_size(s), pt = sl_snapshot_page_table_size(s);
    uint64_t pt_gpa = sl_snapshot_layout(s)->pt_gpa;
    if (gpa >= SL_BASE_ADDRESS && gpa - SL_BASE_ADDRESS < vis)
        return (void *)(sl_snapshot_visible(s) + (gpa - SL_BASE_ADDRESS));
    if (gpa >= pt_gpa && gpa - pt_gpa < pt)
        return (void *)(sl_snapshot_tables(s) + (gpa - pt_gpa));
    return NULL;
}

/* A snapshot of a simulated amd64 guest whose n pages, mapped at 0x400000..
 * in one address space (every third page writable), hold contents
 * ids[0..n), running on `parent` (NULL: none), as a sandbox would have it:
 * the snapshot region is the parent's visible memory, read-only; a page
 * whose content is still the parent's at that address is the parent's page
 * (compaction keeps it in place, and a child file takes it unread), any
 * other is a copy in scratch, as the guest's copy-on-write makes. Without
 * a parent, page i is at SL_BASE_ADDRESS + i pages. NULL on failure, said
 * on stdout. */
static inline sl_snapshot *numsnap_of(const uint32_t *ids, unsigned n, const sl_snapshot *parent)
{
    guest g;
    sl_errbuf e;
    uint64_t snap_pages = parent ? sl_snapshot_memory_size(parent) / SL_PAGE_SIZE : n;
    if (!guest_setup(&g, SL_ARCH_AMD64, snap_pages, 1 << 20, 1)) {
        guest_free(&g);
        return NULL;
    }
    if (parent)
        memcpy(g.snap, sl_snapshot_visible(parent), g.snap_size);
    sl_pt_mem m = g_mem(&g), pm = {.ctx = (void *)parent, .page = numsnap_blob_page};
    uint8_t want[SL_PAGE_SIZE];
    int rc = 0;
    for (unsigned i = 0; i < n && !rc; i++) {
        uint64_t va = 0x400000 + (uint64_t)i * SL_PAGE_SIZE, gpa = SL_BASE_ADDRESS + (uint64_t)i * SL_PAGE_SIZE;
        numsnap_fill(want, ids[i]);
        if (parent) {
            sl_mapping was;
            const uint8_t *old;
            if (!sl_pt_lookup(SL_ARCH_AMD64, &pm, sl_snapshot_root(parent, 0), va, &was, NULL) ||
                !(old = numsnap_blob_page((void *)parent, was.gpa)) || memcmp(old, want, SL_PAGE_SIZE) != 0) {
                if (!g_alloc(&g, &gpa)) { /* the copy, in scratch */
                    rc = -1;
                    break;
                }
            } else {
                gpa = was.gpa;
            }
        }
        memcpy(g_page(&g, gpa), want, SL_PAGE_SIZE);
        sl_perm p = {.kind = SL_MAP_BASIC, .readable = true, .writable = i % 3 == 0, .executable = i % 3 != 0};
        rc = sl_pt_map(SL_ARCH_AMD64, &m, g.roots[0], va, gpa, SL_PAGE_SIZE, p);
    }
    sl_guest_state st = {
        .layout = &g.l, .snap_mem = g.snap, .snap_size = g.snap_size, .scratch = g.scratch,
        .roots = g.roots, .n_roots = 1, .cur_root = 0, .stack_top = 0x7ff000,
        .next_kind = SL_NEXT_CALL, .next_addr = 0x400010, .generation = 3, .family = NUMSNAP_FAMILY,
        .parent = parent ? sl_snapshot_hash(parent) : NULL,
    };
    sl_snapshot *s = NULL;
    if (!rc)
        rc = sl_snapshot_from_memory(&s, &st, &e);
    if (rc)
        printf("numsnap: %d %s\n", rc, rc > 0 || rc == -1 ? "no scratch left" : e.msg);
    guest_free(&g);
    return rc ? NULL : s;
}

#endif
