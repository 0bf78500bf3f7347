/* Lineage and stable compaction with real guests (issue 11, items 1 and 2).
 * A snapshot's parent is the snapshot its sandbox ran on: none for a sandbox
 * made from an ELF (its init snapshot is the library's own), the file's
 * identity for a sandbox started from a loaded file, S after a restore to S;
 * the parent survives a save and a load. Stable compaction: a snapshot taken
 * right after a restore to S keeps every page where S had it (and so is S);
 * after calls, the pages that are not kept are exactly the ones the guest
 * kernel copied on write (sl_sandbox_info's cow_copies). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sandlet.h"
#include "t.h"
#include "../common/e2e.h"
/* White-box: the page statistics compaction keeps (pages_kept). */
#include "snapshot.h"

typedef struct world {
    const char *guest;
    char dir[64];
    sl_sandbox *elf; /* made from the ELF */
    sl_snapshot *s0; /* its first snapshot: no parent */
    sl_snapshot *f0; /* s0 saved and loaded */
} world;

/* Whether snap's parent is `want` (NULL: that it has none). */
static int parent_is(const sl_snapshot *snap, const sl_snapshot *want)
{
    uint8_t got[32], id[32];
    int rc = sl_snapshot_parent_id(snap, got);
    if (!want)
        return rc == SL_ENOTFOUND;
    sl_snapshot_id(want, id);
    return rc == 0 && memcmp(got, id, sizeof id) == 0;
}

static uint64_t pages(const sl_snapshot *s) { return sl_snapshot_memory_size(s) / 4096; }
static uint64_t kept(const sl_snapshot *s) { return sl_snapshot_page_stats(s)->pages_kept; }

static const char *path_in(world *w, const char *name)
{
    static char p[128];
    snprintf(p, sizeof p, "%s/%s", w->dir, name);
    return p;
}

/* The sandbox from the ELF, its first snapshot, and that saved and loaded. */
static int world_open(world *w, const char *guest)
{
    char err[256] = "";
    memset(w, 0, sizeof *w);
    w->guest = guest;
    snprintf(w->dir, sizeof w->dir, "/tmp/sandlet-lineage-XXXXXX");
    if (!mkdtemp(w->dir))
        return -1;
    if (sl_sandbox_new_from_file(&w->elf, guest_path(guest), NULL, err, sizeof err) || sl_sandbox_init(w->elf) ||
        demo_counter(w->elf) != 1 || sl_sandbox_snapshot(w->elf, &w->s0) ||
        sl_snapshot_save(w->s0, path_in(w, "s0.snap"), err, sizeof err) ||
        sl_snapshot_load(&w->f0, path_in(w, "s0.snap"), err, sizeof err)) {
        printf("  %s: %s %s\n", guest, err, w->elf ? sl_sandbox_errmsg(w->elf) : "");
        return -1;
    }
    return 0;
}

static void world_close(world *w)
{
    sl_snapshot_free(w->s0);
    sl_snapshot_free(w->f0);
    sl_sandbox_free(w->elf);
    unlink(path_in(w, "s0.snap"));
    unlink(path_in(w, "s1.snap"));
    rmdir(w->dir);
}

/* Who is whose parent, in memory and through files. */
static void lineage(const char *guest)
{
    world w;
    REQUIRE(world_open(&w, guest) == 0);
    char err[256] = "";
    /* From the ELF: no parent, in memory and in the file. */
    CHECK(parent_is(w.s0, NULL));
    CHECK(parent_is(w.f0, NULL));
    CHECK(same_id(w.s0, w.f0));
    /* Started from the file: the file's identity. */
    sl_sandbox *b = NULL;
    REQUIRE(sl_sandbox_new_from_snapshot(&b, w.f0, err, sizeof err) == 0);
    CHECK_EQ(demo_counter(b), 2);
    sl_snapshot *s1 = NULL, *f1 = NULL, *s2 = NULL, *s3 = NULL;
    REQUIRE(sl_sandbox_snapshot(b, &s1) == 0);
    CHECK(parent_is(s1, w.f0));
    /* Two snapshots in a row, no restore between: the same parent. */
    CHECK_EQ(demo_counter(b), 3);
    REQUIRE(sl_sandbox_snapshot(b, &s2) == 0);
    CHECK(parent_is(s2, w.f0));
    /* The parent survives a save and a load, with the pages kept. */
    REQUIRE(sl_snapshot_save(s1, path_in(&w, "s1.snap"), err, sizeof err) == 0);
    REQUIRE(sl_snapshot_load(&f1, path_in(&w, "s1.snap"), err, sizeof err) == 0);
    CHECK(parent_is(f1, w.f0));
    CHECK_EQ(kept(f1), kept(s1));
    /* After a restore to S: S, also for the sandbox made from the ELF (which
     * restores only its own snapshots: its family is not the files'). */
    REQUIRE(sl_sandbox_restore(w.elf, w.s0) == 0);
    CHECK_EQ(demo_counter(w.elf), 2);
    REQUIRE(sl_sandbox_snapshot(w.elf, &s3) == 0);
    CHECK(parent_is(s3, w.s0));
    sl_snapshot_free(s3);
    REQUIRE(sl_sandbox_restore(b, f1) == 0);
    REQUIRE(sl_sandbox_snapshot(b, &s3) == 0);
    CHECK(parent_is(s3, f1));
    CHECK(same_id(s3, f1)); /* nothing changed since: the parent's own identity */
    printf("  %s: parents: ELF -> none, file -> file, restore S -> S (pages kept %llu of %llu on the file)\n",
           guest, (unsigned long long)kept(s1), (unsigned long long)pages(s1));
    sl_snapshot_free(s1);
    sl_snapshot_free(s2);
    sl_snapshot_free(s3);
    sl_snapshot_free(f1);
    sl_sandbox_free(b);
    world_close(&w);
}

/* Pages kept in place: all of them right after a restore; after calls, all
 * but the ones the guest copied on write, when no page went away (the blob
 * did not shrink). */
static void stable(const char *guest)
{
    world w;
    REQUIRE(world_open(&w, guest) == 0);
    char err[256] = "";
    sl_sandbox *b = NULL;
    REQUIRE(sl_sandbox_new_from_snapshot(&b, w.f0, err, sizeof err) == 0);
    sl_snapshot *same = NULL;
    REQUIRE(sl_sandbox_restore(b, w.f0) == 0);
    REQUIRE(sl_sandbox_snapshot(b, &same) == 0);
    printf("  %s unchanged: %llu of %llu pages kept their position\n", guest, (unsigned long long)kept(same),
           (unsigned long long)pages(same));
    CHECK_EQ(kept(same), pages(w.f0));
    CHECK(same_id(same, w.f0));
    sl_snapshot_free(same);
    static const uint64_t fills[] = {0, 1, 16, 64};
    for (size_t i = 0; i < sizeof fills / sizeof fills[0]; i++) {
        REQUIRE(sl_sandbox_restore(b, w.f0) == 0);
        uint64_t sum = 0;
        if (fills[i])
            REQUIRE(call_u64(b, "Fill", fills[i] * 4096, &sum) == 0);
        else
            CHECK_EQ(demo_counter(b), 2);
        sl_sandbox_info info;
        REQUIRE(sl_sandbox_info_get(b, &info) == 0);
        sl_snapshot *s = NULL;
        REQUIRE(sl_sandbox_snapshot(b, &s) == 0);
        uint64_t n = pages(s), parent = pages(w.f0);
        char what[32];
        snprintf(what, sizeof what, fills[i] ? "Fill(%llu)" : "Counter()", (unsigned long long)(fills[i] * 4096));
        printf("  %s %s: %llu of %llu pages kept their position (parent %llu pages, %llu copied on write, "
               "%llu demand pages)\n",
               guest, what, (unsigned long long)kept(s), (unsigned long long)n, (unsigned long long)parent,
               (unsigned long long)info.cow_copies, (unsigned long long)info.demand_pages);
        CHECK(kept(s) <= parent - info.cow_copies);
        if (n >= parent)
            CHECK_EQ(kept(s), parent - info.cow_copies);
        sl_snapshot_free(s);
    }
    sl_sandbox_free(b);
    world_close(&w);
}

static void lineage64(void) { lineage("demo"); }
static void lineage32(void) { lineage("demo32"); }
static void stable64(void) { stable("demo"); }
static void stable32(void) { stable("demo32"); }

int main(void)
{
    RUN_ARCH(T_AMD64, lineage64);
    RUN_ARCH(T_I686, lineage32);
    RUN_ARCH(T_AMD64, stable64);
    RUN_ARCH(T_I686, stable32);
    T_EXIT();
}
