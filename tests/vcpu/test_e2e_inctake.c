/* Incremental takes (issue 11, item 7; src/host/snapinc.c). A snapshot of a
 * sandbox that runs on parent P is computed from what the guest changed
 * since P, and must be exactly what compacting the whole guest gives: every
 * take here is repeated with incremental takes off (sl_sb_set_full_takes)
 * on the same guest, and the two must agree in identity, every blob byte,
 * the roots, the page statistics and the kept pages. Cases that must be
 * incremental (the guest wrote into pages it had) check that they were
 * (pages_hashed below the blob's pages); cases that restructure memory
 * check only the agreement. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandlet.h"
#include "t.h"
#include "../common/e2e.h"
/* White-box: the engine's view of a snapshot, and the switch to full takes. */
#include "sandbox.h"
#include "snapshot_impl.h"

static uint64_t blob_pages(const sl_snapshot *s) { return s->mem_size / 4096; }

/* Whether a and b are one snapshot in every respect compaction decides. */
static int agree(const sl_snapshot *a, const sl_snapshot *b)
{
    int ok = 1;
#define SAME(x)                                                                                          \
    if (a->x != b->x) {                                                                                  \
        printf("  %s: %llu vs %llu\n", #x, (unsigned long long)a->x, (unsigned long long)b->x);         \
        ok = 0;                                                                                          \
    }
    SAME(mem_size) SAME(visible_size) SAME(pt_size) SAME(n_roots) SAME(cur_root) SAME(stats.pages_ro)
    SAME(stats.pages_cow) SAME(stats.pages_pt) SAME(stats.leaves) SAME(stats.pages_kept) SAME(kept_pages)
    SAME(has_parent) SAME(stack_top) SAME(next_addr) SAME(next_kind) SAME(family)
#undef SAME
    if (!ok)
        return 0;
    if (!same_id(a, b)) {
        printf("  identities differ\n");
        ok = 0;
    }
    if (memcmp(a->roots, b->roots, sizeof a->roots) || memcmp(a->parent, b->parent, sizeof a->parent)) {
        printf("  roots or parent differ\n");
        ok = 0;
    }
    for (uint64_t i = 0; i < a->mem_size / 4096; i++)
        if (memcmp(a->mem + i * 4096, b->mem + i * 4096, 4096)) {
            printf("  blob page %llu differs (of %llu visible)\n", (unsigned long long)i,
                   (unsigned long long)(a->visible_size / 4096));
            ok = 0;
            break;
        }
    if ((a->kept == NULL) != (b->kept == NULL) ||
        (a->kept && memcmp(a->kept, b->kept, (a->kept_pages + 63) / 64 * 8))) {
        printf("  kept pages differ\n");
        ok = 0;
    }
    return ok;
}

/* A snapshot of sb, taken the usual way and then again with full takes;
 * checks they agree and returns the first (NULL on failure). *inc says
 * whether it was taken incrementally. */
static sl_snapshot *take_both(sl_sandbox *sb, int *inc)
{
    sl_snapshot *s = NULL, *full = NULL;
    if (sl_sandbox_snapshot(sb, &s)) {
        printf("  snapshot: %s\n", sl_sandbox_errmsg(sb));
        return NULL;
    }
    sl_sb_set_full_takes(sb, true);
    int rc = sl_sandbox_snapshot(sb, &full);
    sl_sb_set_full_takes(sb, false);
    if (rc) {
        printf("  full snapshot: %s\n", sl_sandbox_errmsg(sb));
        sl_snapshot_free(s);
        return NULL;
    }
    *inc = s->stats.pages_hashed < blob_pages(s);
    CHECK_EQ(full->stats.pages_hashed, blob_pages(full));
    if (!agree(s, full)) {
        t_failed_now = 1;
        sl_snapshot_free(s);
        s = NULL;
    }
    sl_snapshot_free(full);
    return s;
}

static void counter_chain(const char *guest)
{
    char err[256] = "";
    sl_sandbox *sb = NULL;
    REQUIRE(sl_sandbox_new_from_file(&sb, guest_path(guest), NULL, err, sizeof err) == 0);
    REQUIRE(sl_sandbox_init(sb) == 0);
    REQUIRE(demo_counter(sb) == 1);
    int inc = -1;
    sl_snapshot *s0 = take_both(sb, &inc); /* no parent: compacted */
    REQUIRE(s0 != NULL);
    CHECK(!inc);
    /* A chain of takes, each on the one before: restore, one call, take. */
    sl_snapshot *prev = sl_snapshot_ref(s0);
    for (int i = 0; i < 5; i++) {
        REQUIRE(sl_sandbox_restore(sb, prev) == 0);
        CHECK_EQ(demo_counter(sb), 2 + i);
        sl_snapshot *s = take_both(sb, &inc);
        REQUIRE(s != NULL);
        printf("  %s take %d: %s, %llu of %llu pages hashed\n", guest, i, inc ? "incremental" : "full",
               (unsigned long long)s->stats.pages_hashed, (unsigned long long)blob_pages(s));
        CHECK(inc);
        sl_snapshot_free(prev);
        prev = s;
    }
    /* The last one answers as its chain says. */
    REQUIRE(sl_sandbox_restore(sb, prev) == 0);
    CHECK_EQ(demo_counter(sb), 7);
    /* Writing more pages, allocating on the heap (may restructure: only agreement). */
    static const uint64_t fills[] = {1, 16, 64, 300};
    for (size_t f = 0; f < sizeof fills / sizeof fills[0]; f++) {
        uint64_t sum = 0;
        REQUIRE(sl_sandbox_restore(sb, prev) == 0);
        REQUIRE(call_u64(sb, "Fill", fills[f] * 4096, &sum) == 0);
        sl_snapshot *s = take_both(sb, &inc);
        REQUIRE(s != NULL);
        printf("  %s Fill(%llu pages): %s, %llu of %llu pages hashed\n", guest, (unsigned long long)fills[f],
               inc ? "incremental" : "full", (unsigned long long)s->stats.pages_hashed,
               (unsigned long long)blob_pages(s));
        /* A second take in a row, on the same parent. */
        CHECK_EQ(demo_counter(sb), 7);
        sl_snapshot *t = take_both(sb, &inc);
        CHECK(t != NULL);
        sl_snapshot_free(t);
        sl_snapshot_free(s);
    }
    sl_snapshot_free(prev);
    sl_snapshot_free(s0);
    sl_sandbox_free(sb);
}

/* A parent loaded from a file is learned on first use; takes on it are
 * incremental from then on. */
static void loaded_parent(const char *guest)
{
    char err[256] = "", path[] = "/tmp/sandlet-inctake-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    sl_sandbox *sb = NULL;
    REQUIRE(sl_sandbox_new_from_file(&sb, guest_path(guest), NULL, err, sizeof err) == 0);
    REQUIRE(sl_sandbox_init(sb) == 0);
    sl_snapshot *s0 = NULL, *f0 = NULL;
    REQUIRE(sl_sandbox_snapshot(sb, &s0) == 0);
    REQUIRE(sl_snapshot_save(s0, path, err, sizeof err) == 0);
    REQUIRE(sl_snapshot_load(&f0, path, err, sizeof err) == 0);
    sl_sandbox *b = NULL;
    REQUIRE(sl_sandbox_new_from_snapshot(&b, f0, err, sizeof err) == 0);
    for (int i = 0; i < 3; i++) {
        REQUIRE(sl_sandbox_restore(b, f0) == 0);
        CHECK_EQ(demo_counter(b), 1);
        int inc = -1;
        sl_snapshot *s = take_both(b, &inc);
        REQUIRE(s != NULL);
        CHECK(inc);
        sl_snapshot_free(s);
    }
    sl_sandbox_free(b);
    sl_sandbox_free(sb);
    sl_snapshot_free(f0);
    sl_snapshot_free(s0);
    unlink(path);
}

#define CHECK_EVAL(sb, code, want)                                                                       \
    do {                                                                                                 \
        const char *got_ = eval(sb, code);                                                               \
        if (strcmp(got_, want) != 0) {                                                                   \
            printf("  check failed %s:%d: Eval gave %s, want %s\n", __FILE__, __LINE__, got_, want);   \
            t_failed_now = 1;                                                                            \
        }                                                                                                \
    } while (0)

static const char *eval(sl_sandbox *sb, const char *code)
{
    static char out[256];
    sl_value a = {.type = SL_TYPE_STRING, .v.buf = {code, strlen(code)}}, r;
    if (sl_sandbox_call(sb, "Eval", &a, 1, &r)) {
        snprintf(out, sizeof out, "error: %s", sl_sandbox_errmsg(sb));
        return out;
    }
    snprintf(out, sizeof out, "%.*s", (int)r.v.buf.len, (const char *)r.v.buf.ptr);
    return out;
}

/* Real programs writing many pages they already had: Lua negating k
 * entries of a 2 MiB array, one every 4 KiB or more, along a chain. */
static void lua_pages(const char *guest)
{
    char err[256] = "", code[256];
    sl_sandbox *sb = NULL;
    REQUIRE(sl_sandbox_new_from_file(&sb, guest_path(guest), NULL, err, sizeof err) == 0);
    REQUIRE(sl_sandbox_init(sb) == 0);
    const unsigned n = 131072; /* entries: 2 MiB of 16-byte slots, 1.5 MiB of 12-byte ones */
    snprintf(code, sizeof code, "local n = %u collectgarbage('stop') t = {} for i = 1, n do t[i] = i end return #t", n);
    CHECK_EVAL(sb, code, "131072");
    int inc = -1;
    sl_snapshot *prev = take_both(sb, &inc);
    REQUIRE(prev != NULL);
    static const unsigned ks[] = {1, 64, 256, 64, 1};
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
        REQUIRE(sl_sandbox_restore(sb, prev) == 0);
        snprintf(code, sizeof code,
                 "local t, n = t, %u for j = 0, %u do local i = 1 + (j * %u + %zu) %% n; t[i] = -t[i] end "
                 "return 'ok'",
                 n, ks[i] - 1, n / ks[i], i);
        CHECK_EVAL(sb, code, "ok");
        sl_snapshot *s = take_both(sb, &inc);
        REQUIRE(s != NULL);
        printf("  %s k=%u: %s, %llu of %llu pages hashed\n", guest, ks[i], inc ? "incremental" : "full",
               (unsigned long long)s->stats.pages_hashed, (unsigned long long)blob_pages(s));
        sl_snapshot_free(prev);
        prev = s;
    }
    REQUIRE(sl_sandbox_restore(sb, prev) == 0);
    CHECK_EVAL(sb, "local s = 0 for i = 1, #t do if t[i] < 0 then s = s + 1 end end return s", "386");
    sl_snapshot_free(prev);
    sl_sandbox_free(sb);
}

/* Four address spaces sharing every table below their roots, each with a
 * private page the call writes in turn. */
static void spaces64(void)
{
    char err[256] = "";
    sl_sandbox *sb = NULL;
    sl_value r;
    REQUIRE(sl_sandbox_new_from_file(&sb, guest_path("multispace"), NULL, err, sizeof err) == 0);
    REQUIRE(sl_sandbox_init(sb) == 0);
    int inc = -1;
    sl_snapshot *prev = take_both(sb, &inc);
    REQUIRE(prev != NULL);
    for (int i = 0; i < 3; i++) {
        REQUIRE(sl_sandbox_restore(sb, prev) == 0);
        REQUIRE(sl_sandbox_call(sb, "Spaces", NULL, 0, &r) == 0);
        CHECK_EQ(r.v.i32, 4);
        sl_snapshot *s = take_both(sb, &inc);
        REQUIRE(s != NULL);
        printf("  multispace take %d: %s, %llu of %llu pages hashed\n", i, inc ? "incremental" : "full",
               (unsigned long long)s->stats.pages_hashed, (unsigned long long)blob_pages(s));
        sl_snapshot_free(prev);
        prev = s;
    }
    sl_value a = {.type = SL_TYPE_I32, .v.i32 = 2};
    REQUIRE(sl_sandbox_restore(sb, prev) == 0);
    REQUIRE(sl_sandbox_call(sb, "Visits", &a, 1, &r) == 0);
    CHECK_EQ(r.v.i64, 3);
    sl_snapshot_free(prev);
    sl_sandbox_free(sb);
}

/* A take right after a restore, with nothing run: the guest changed no
 * table, so the take is incremental and is its parent; restoring to that
 * snapshot (one identity, another object) and going on must agree too. */
static void unchanged(const char *guest)
{
    char err[256] = "";
    sl_sandbox *sb = NULL;
    REQUIRE(sl_sandbox_new_from_file(&sb, guest_path(guest), NULL, err, sizeof err) == 0);
    REQUIRE(sl_sandbox_init(sb) == 0);
    REQUIRE(demo_counter(sb) == 1);
    int inc = -1;
    sl_snapshot *s0 = take_both(sb, &inc);
    REQUIRE(s0 != NULL);
    REQUIRE(sl_sandbox_restore(sb, s0) == 0);
    sl_snapshot *same = take_both(sb, &inc);
    REQUIRE(same != NULL);
    CHECK(inc);
    CHECK(same_id(same, s0));
    CHECK_EQ(same->stats.pages_hashed, 0);
    REQUIRE(sl_sandbox_restore(sb, same) == 0);
    CHECK_EQ(demo_counter(sb), 2);
    sl_snapshot *s2 = take_both(sb, &inc);
    CHECK(s2 != NULL && inc);
    REQUIRE(sl_sandbox_restore(sb, s0) == 0);
    CHECK_EQ(demo_counter(sb), 2);
    sl_snapshot_free(s2);
    sl_snapshot_free(same);
    sl_snapshot_free(s0);
    sl_sandbox_free(sb);
}

/* Lua allocating and freeing much between restore and take (the heap
 * grows, pages are mapped and unmapped): every take agrees with its full
 * take, along a chain, and the chain still computes. */
static void lua_churn(const char *guest)
{
    char err[256] = "", code[512];
    sl_sandbox *sb = NULL;
    REQUIRE(sl_sandbox_new_from_file(&sb, guest_path(guest), NULL, err, sizeof err) == 0);
    REQUIRE(sl_sandbox_init(sb) == 0);
    CHECK_EVAL(sb, "keep = {} return 'ok'", "ok");
    int inc = -1, n_inc = 0;
    sl_snapshot *prev = take_both(sb, &inc);
    REQUIRE(prev != NULL);
    for (int i = 0; i < 6; i++) {
        REQUIRE(sl_sandbox_restore(sb, prev) == 0);
        snprintf(code, sizeof code,
                 "local junk = {} for j = 1, %d do junk[j] = string.rep('x', %d) .. j end "
                 "keep[#keep + 1] = #junk junk = nil collectgarbage('collect') "
                 "local t = {} for j = 1, %d do t[j] = j end t = nil collectgarbage('collect') return 'ok'",
                 200 * (i + 1), 1000 + 700 * i, (i % 3) * 20000);
        CHECK_EVAL(sb, code, "ok");
        sl_snapshot *s = take_both(sb, &inc);
        REQUIRE(s != NULL);
        n_inc += inc;
        printf("  %s churn %d: %s, %llu of %llu pages hashed\n", guest, i, inc ? "incremental" : "full",
               (unsigned long long)s->stats.pages_hashed, (unsigned long long)blob_pages(s));
        sl_snapshot *again = take_both(sb, &inc); /* a second take in a row */
        CHECK(again != NULL);
        sl_snapshot_free(again);
        sl_snapshot_free(prev);
        prev = s;
    }
    printf("  %s churn: %d of 6 takes incremental\n", guest, n_inc);
    REQUIRE(sl_sandbox_restore(sb, prev) == 0);
    CHECK_EVAL(sb, "local s = 0 for i = 1, #keep do s = s + keep[i] end return s", "4200");
    sl_snapshot_free(prev);
    sl_sandbox_free(sb);
}

/* A parent loaded from a file that changes on disk after it was learned:
 * the next take fails with SL_ECHANGED, incremental or full, and never
 * hands out a snapshot. */
static void file_changes_between_takes(const char *guest)
{
    char err[256] = "", path[] = "/tmp/sandlet-inctake-chg-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    sl_sandbox *sb = NULL, *b = NULL;
    REQUIRE(sl_sandbox_new_from_file(&sb, guest_path(guest), NULL, err, sizeof err) == 0);
    REQUIRE(sl_sandbox_init(sb) == 0);
    sl_snapshot *s0 = NULL, *f0 = NULL, *s = NULL;
    REQUIRE(sl_sandbox_snapshot(sb, &s0) == 0);
    REQUIRE(sl_snapshot_save(s0, path, err, sizeof err) == 0);
    REQUIRE(sl_snapshot_load(&f0, path, err, sizeof err) == 0);
    REQUIRE(sl_sandbox_new_from_snapshot(&b, f0, err, sizeof err) == 0);
    REQUIRE(sl_sandbox_restore(b, f0) == 0);
    CHECK_EQ(demo_counter(b), 1);
    int inc = -1;
    s = take_both(b, &inc); /* learns f0 */
    CHECK(s && inc);
    sl_snapshot_free(s);
    s = NULL;
    CHECK_EQ(demo_counter(b), 2);
    fd = open(path, O_WRONLY);
    REQUIRE(fd >= 0);
    struct stat stt;
    REQUIRE(fstat(fd, &stt) == 0);
    char x = 0x5a;
    CHECK(pwrite(fd, &x, 1, stt.st_size - 4096 - 7) == 1);
    close(fd);
    CHECK_EQ(sl_sandbox_snapshot(b, &s), SL_ECHANGED);
    CHECK(s == NULL);
    sl_snapshot_free(s);
    sl_sandbox_free(b);
    sl_sandbox_free(sb);
    sl_snapshot_free(f0);
    sl_snapshot_free(s0);
    unlink(path);
}

/* Sandboxes made two ways run on one parent: one from the ELF (its layout
 * lists the ELF's regions), one from the snapshot (a compacted layout lists
 * none). Both are the same family and the same guest, and each one's take
 * is incremental, whichever takes first. */
static void mixed_sandboxes(const char *guest)
{
    char err[256] = "";
    sl_sandbox *a = NULL, *b = NULL;
    REQUIRE(sl_sandbox_new_from_file(&a, guest_path(guest), NULL, err, sizeof err) == 0);
    REQUIRE(sl_sandbox_init(a) == 0);
    sl_snapshot *s0 = NULL;
    REQUIRE(sl_sandbox_snapshot(a, &s0) == 0);
    REQUIRE(sl_sandbox_new_from_snapshot(&b, s0, err, sizeof err) == 0);
    for (int order = 0; order < 2; order++) {
        sl_snapshot *p = NULL;
        int inc = -1;
        REQUIRE(sl_sandbox_restore(a, s0) == 0);
        REQUIRE(demo_counter(a) > 0);
        REQUIRE(sl_sandbox_snapshot(a, &p) == 0); /* a fresh parent for this round */
        sl_sandbox *first = order ? b : a, *second = order ? a : b;
        for (int k = 0; k < 2; k++) {
            sl_sandbox *sb = k ? second : first;
            REQUIRE(sl_sandbox_restore(sb, p) == 0);
            REQUIRE(demo_counter(sb) > 0);
            sl_snapshot *s = take_both(sb, &inc);
            REQUIRE(s != NULL);
            printf("  %s order %d: the sandbox from %s takes %s\n", guest, order,
                   sb == a ? "the ELF" : "the snapshot", inc ? "incrementally" : "in full");
            CHECK(inc);
            sl_snapshot_free(s);
        }
        sl_snapshot_free(p);
    }
    sl_snapshot_free(s0);
    sl_sandbox_free(b);
    sl_sandbox_free(a);
}

static void mixed64(void) { mixed_sandboxes("demo"); }

static void unchanged64(void) { unchanged("demo"); }
static void unchanged32(void) { unchanged("demo32"); }
static void churn64(void) { lua_churn("lua_eval"); }
static void churn32(void) { lua_churn("lua_eval32"); }
static void filechg64(void) { file_changes_between_takes("demo"); }

static void chain64(void) { counter_chain("demo"); }
static void chain32(void) { counter_chain("demo32"); }
static void loaded64(void) { loaded_parent("demo"); }
static void loaded32(void) { loaded_parent("demo32"); }
static void lua64(void) { lua_pages("lua_eval"); }
static void lua32(void) { lua_pages("lua_eval32"); }

int main(void)
{
    RUN_ARCH(T_AMD64, chain64);
    RUN_ARCH(T_I686, chain32);
    RUN_ARCH(T_AMD64, loaded64);
    RUN_ARCH(T_I686, loaded32);
    RUN_ARCH(T_AMD64, lua64);
    RUN_ARCH(T_I686, lua32);
    RUN_ARCH(T_AMD64, spaces64);
    RUN_ARCH(T_AMD64, unchanged64);
    RUN_ARCH(T_I686, unchanged32);
    RUN_ARCH(T_AMD64, churn64);
    RUN_ARCH(T_I686, churn32);
    RUN_ARCH(T_AMD64, filechg64);
    RUN_ARCH(T_AMD64, mixed64);
    T_EXIT();
}
