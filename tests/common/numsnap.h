/* Snapshots of a simulated guest (sim.h) whose pages hold numbered contents:
 * page i holds content ids[i], 4096 bytes that depend on the number only, so
 * a test can say which page of a child equals which page of its parent
 * without KVM. For tests/unit/test_snapchild.c and fuzz/fuzz_snapchild.c. */
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

/* A snapshot of a simulated amd64 guest whose n pages hold contents
 * ids[0..n), mapped at 0x400000.. in one address space (every third page
 * writable), running on `parent` (NULL: none): what a sandbox started from
 * parent's file that changed its pages to ids would give. NULL on failure,
 * said on stdout. */
static inline sl_snapshot *numsnap_of(const uint32_t *ids, unsigned n, const sl_snapshot *parent)
{
    guest g;
    sl_errbuf e;
    if (!guest_setup(&g, SL_ARCH_AMD64, n, 1 << 20, 1)) {
        guest_free(&g);
        return NULL;
    }
    sl_pt_mem m = g_mem(&g);
    int rc = 0;
    for (unsigned i = 0; i < n && !rc; i++) {
        numsnap_fill(g.snap + (uint64_t)i * SL_PAGE_SIZE, ids[i]);
        sl_perm p = {.kind = SL_MAP_BASIC, .readable = true, .writable = i % 3 == 0, .executable = i % 3 != 0};
        rc = sl_pt_map(SL_ARCH_AMD64, &m, g.roots[0], 0x400000 + (uint64_t)i * SL_PAGE_SIZE,
                       SL_BASE_ADDRESS + (uint64_t)i * SL_PAGE_SIZE, SL_PAGE_SIZE, p);
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
        printf("numsnap: %d %s\n", rc, rc ? e.msg : "");
    guest_free(&g);
    return rc ? NULL : s;
}

#endif
