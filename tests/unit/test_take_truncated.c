/* Takes (full and incremental) of a simulated guest that runs on a loaded
 * snapshot file truncated under it, host only: the copies read pages the
 * file lost, which the kernel's copy (pagecopy.c) cannot and the fallback
 * reads under snapfile_watch.c's SIGBUS handler; the process survives and
 * the loaded snapshot reports SL_ECHANGED, whether the file lost all of
 * its pages or half. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpustate.h"
#include "pageset.h"
#include "snapfile.h"
#include "snapinc.h"
#include "snapshot.h"
#include "t.h"
#include "../common/sim.h"

#define PAGES 512
#define SCRATCH (4u << 20)

static char g_dir[512], g_path[600];
static uint8_t g_sregs[SL_CPU_STATE_MAX];
static size_t g_sregs_len;

static sl_guest_state state_of(guest *g, const sl_snapshot *on, uint64_t generation)
{
    sl_guest_state st = {.layout = &g->l, .snap_mem = g->snap, .snap_size = g->snap_size, .scratch = g->scratch,
                         .roots = g->roots, .n_roots = g->n_roots, .cur_root = on ? sl_snapshot_cur_root(on) : 0,
                         .stack_top = 0x7ff000,
                         .next_kind = SL_NEXT_CALL, .next_addr = 0x400010, .generation = generation,
                         .family = 9, .parent = on ? sl_snapshot_hash(on) : NULL, .sregs = g_sregs,
                         .sregs_len = g_sregs_len};
    return st;
}

/* A snapshot of g0, a fresh simulated guest, saved to g_path and loaded. */
static sl_snapshot *saved_and_loaded(guest *g0)
{
    sl_snapshot *s = NULL, *l = NULL;
    sl_errbuf e;
    char err[256] = "";
    if (!guest_make(g0, PAGES * SL_PAGE_SIZE, SCRATCH))
        return NULL;
    sl_guest_state st = state_of(g0, NULL, 1);
    if (sl_snapshot_from_memory(&s, &st, &e))
        return NULL;
    int rc = sl_snapshot_save(s, g_path, err, sizeof err) || sl_snapshot_load(&l, g_path, err, sizeof err);
    sl_snapshot_free(s);
    if (rc)
        printf("  %s\n", err);
    return rc ? NULL : l;
}

/* A guest restored to the loaded file changes 8 pages; the file is cut to
 * `keep` bytes; then the take. An incremental take first learns the file
 * while it is intact (that is when it reads it whole). */
static void take_after_truncate(bool incremental, off_t keep)
{
    guest g0, g;
    sl_snapshot *l = saved_and_loaded(&g0), *s = NULL;
    REQUIRE(l);
    REQUIRE(guest_restore(&g, &g0.l, l));
    CHECK_EQ(guest_change(&g, 8, 1), 8);
    sl_guest_state st = state_of(&g, l, 2); /* g runs on l's blob (guest_restore) */
    sl_pageset all; /* every scratch page counts as written */
    REQUIRE(sl_pageset_init(&all, g.l.scratch_size / SL_PAGE_SIZE));
    sl_pageset_add_range(&all, 0, all.n_pages);
    sl_errbuf e;
    if (incremental) {
        CHECK_EQ(sl_snapinc_take(&s, &st, l, &all, &e), 0);
        sl_snapshot_free(s);
        s = NULL;
    }
    REQUIRE(truncate(g_path, keep) == 0);
    /* What the take returns is moot: the file is checked next. */
    if (incremental)
        (void)sl_snapinc_take(&s, &st, l, &all, &e);
    else
        (void)sl_snapshot_from_memory(&s, &st, &e);
    if (!keep) /* the copies read pages the file lost: the handler saw them */
        CHECK(incremental || sl_snapfile_lost(l));
    CHECK_EQ(sl_snapfile_check(l, "snapshot file", &e), SL_ECHANGED);
    sl_snapshot_free(s);
    sl_pageset_free(&all);
    guest_free(&g);
    guest_free(&g0);
    sl_snapshot_free(l);
    unlink(g_path);
}

static void test_full_take_file_emptied(void) { take_after_truncate(false, 0); }
static void test_full_take_file_halved(void) { take_after_truncate(false, PAGES * SL_PAGE_SIZE / 2); }
static void test_incremental_take_file_emptied(void) { take_after_truncate(true, 0); }
static void test_incremental_take_file_halved(void) { take_after_truncate(true, PAGES * SL_PAGE_SIZE / 2); }

int main(void)
{
    if (!t_tmpdir(g_dir, sizeof g_dir, "test_take_truncated"))
        return 1;
    snprintf(g_path, sizeof g_path, "%s/p.snap", g_dir);
    sl_cpu_state cs;
    memset(&cs, 0, sizeof cs);
    cs.arch = SL_ARCH_AMD64;
    cs.xstate_bv = 3;
    cs.xcr0 = 3;
    sl_errbuf e;
    if (sl_cpu_state_encode(&cs, g_sregs, sizeof g_sregs, &g_sregs_len, &e)) {
        printf("FAIL test_take_truncated: no CPU state: %s\n", e.msg);
        return 1;
    }
    RUN(test_full_take_file_emptied);
    RUN(test_full_take_file_halved);
    RUN(test_incremental_take_file_emptied);
    RUN(test_incremental_take_file_halved);
    rmdir(g_dir);
    return t_failed_total ? 1 : 0;
}
