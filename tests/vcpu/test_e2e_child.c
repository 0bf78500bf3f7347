/* Child snapshot files with real guests (issue 11, items 3 to 5): a child
 * holds what changed since its parent file, loads by mapping its chain and
 * is the snapshot it stands for, byte for byte (its identity, recomputed
 * from the mapped chain by verify, is the full snapshot's), and answers
 * every call as that snapshot does. Also: flatten keeps the identity; a
 * child whose parent is missing or another snapshot is refused with the
 * identity it needs; two unrelated snapshots of one guest share pages by
 * content; a 64 MiB parent's grandchild answers as its full snapshot. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandlet.h"
#include "t.h"
#include "../common/e2e.h"
#include "../common/pagemap.h"
/* White-box: where a loaded snapshot's pages are and which file each run
 * maps (the runs of a loaded child). */
#include "snapshot_impl.h"

typedef struct world {
    const char *guest;
    char dir[64];
    char path[8][160];
    int n_paths;
} world;

static const char *path_in(world *w, const char *name)
{
    char *p = w->path[w->n_paths++ % 8];
    snprintf(p, 160, "%s/%s", w->dir, name);
    return p;
}

static uint64_t fill(sl_sandbox *sb, uint64_t bytes)
{
    sl_value a = {.type = SL_TYPE_U64, .v.u64 = bytes}, r;
    if (sl_sandbox_call(sb, "Fill", &a, 1, &r)) {
        printf("  Fill: %s\n", sl_sandbox_errmsg(sb));
        return 0;
    }
    return r.v.u64;
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* Loads path with its chain and checks it is `want`: the same identity,
 * recomputed from every page of the chain (verify), at the depth given. */
static sl_snapshot *load_as(const char *path, const sl_snapshot *want, unsigned depth)
{
    char err[512] = "";
    sl_snapshot *s = NULL;
    if (sl_snapshot_load(&s, path, err, sizeof err)) {
        printf("  load %s: %s\n", path, err);
        t_failed_now = 1;
        return NULL;
    }
    CHECK(same_id(s, want));
    CHECK_EQ(sl_snapshot_chain_depth(s), depth);
    int rc = sl_snapshot_verify_file(path, err, sizeof err);
    if (rc)
        printf("  verify %s: %s\n", path, err);
    CHECK_EQ(rc, 0);
    return s;
}

/* A sandbox on snapshot s: Counter() and Fill(bytes) as the one on `like`. */
static void answers_like(sl_snapshot *s, sl_snapshot *like, uint64_t bytes)
{
    char err[256] = "";
    sl_sandbox *a = NULL, *b = NULL;
    int rc = sl_sandbox_new_from_snapshot(&a, s, err, sizeof err);
    if (!rc)
        rc = sl_sandbox_new_from_snapshot(&b, like, err, sizeof err);
    if (rc)
        printf("  sandbox: %s\n", err);
    REQUIRE(rc == 0);
    long long ca = demo_counter(a), cb = demo_counter(b);
    CHECK(ca > 0 && ca == cb);
    uint64_t fa = fill(a, bytes), fb = fill(b, bytes);
    CHECK(fa != 0 && fa == fb);
    sl_sandbox_free(a);
    sl_sandbox_free(b);
}

/* parent -> child -> grandchild, flatten, a changed or missing parent. */
static void chain(const char *guest)
{
    world w = {.guest = guest};
    snprintf(w.dir, sizeof w.dir, "/tmp/sandlet-child-XXXXXX");
    REQUIRE(mkdtemp(w.dir));
    char err[512] = "";
    const char *P = path_in(&w, "p.snap"), *C1 = path_in(&w, "c1.snap"), *C2 = path_in(&w, "c2.snap");
    const char *F2 = path_in(&w, "c2-full.snap"), *FL = path_in(&w, "flat.snap");
    sl_sandbox *elf = NULL, *b = NULL, *c = NULL;
    sl_snapshot *s0 = NULL, *p = NULL, *s1 = NULL, *s2 = NULL, *l1 = NULL, *l2 = NULL;
    REQUIRE(sl_sandbox_new_from_file(&elf, guest_path(guest), NULL, err, sizeof err) == 0);
    REQUIRE(sl_sandbox_init(elf) == 0 && demo_counter(elf) == 1 && sl_sandbox_snapshot(elf, &s0) == 0);
    REQUIRE(sl_snapshot_save(s0, P, err, sizeof err) == 0 && sl_snapshot_load(&p, P, err, sizeof err) == 0);
    CHECK_EQ(sl_snapshot_chain_depth(p), 0);
    /* The child: a sandbox on the parent file changed a few pages. */
    REQUIRE(sl_sandbox_new_from_snapshot(&b, p, err, sizeof err) == 0);
    CHECK_EQ(demo_counter(b), 2);
    CHECK(fill(b, 16 * 4096) != 0);
    REQUIRE(sl_sandbox_snapshot(b, &s1) == 0);
    int rc = sl_snapshot_save_child(s1, P, C1, NULL, NULL, err, sizeof err);
    if (rc)
        printf("  save_child: %s\n", err);
    REQUIRE(rc == 0);
    l1 = load_as(C1, s1, 1);
    REQUIRE(l1);
    printf("  %s: parent %lld bytes, child %lld bytes\n", guest, file_size(P), file_size(C1));
    CHECK(file_size(C1) < file_size(P) / 2);
    /* The grandchild, from a sandbox started from the child file. */
    REQUIRE(sl_sandbox_new_from_snapshot(&c, l1, err, sizeof err) == 0);
    CHECK_EQ(demo_counter(c), 3);
    REQUIRE(sl_sandbox_snapshot(c, &s2) == 0);
    REQUIRE(sl_snapshot_save_child(s2, C1, C2, NULL, NULL, err, sizeof err) == 0);
    REQUIRE(sl_snapshot_save(s2, F2, err, sizeof err) == 0);
    l2 = load_as(C2, s2, 2);
    REQUIRE(l2);
    printf("  %s: grandchild %lld bytes (in full: %lld)\n", guest, file_size(C2), file_size(F2));
    CHECK(file_size(C2) < file_size(F2) / 2);
    /* Byte for byte the snapshot it stands for: nothing differs, and a
     * sandbox on it answers as one on the snapshot in memory does. */
    answers_like(l2, s2, 8 * 4096);
    answers_like(l1, s1, 8 * 4096);
    /* Restores between the chain's members, in one sandbox. */
    REQUIRE(sl_sandbox_restore(c, l2) == 0);
    CHECK_EQ(demo_counter(c), 4);
    REQUIRE(sl_sandbox_restore(c, l1) == 0);
    CHECK_EQ(demo_counter(c), 3);
    REQUIRE(sl_sandbox_restore(c, p) == 0);
    CHECK_EQ(demo_counter(c), 2);
    /* Flatten: the chain written in full, the same identity. */
    REQUIRE(sl_snapshot_save(l2, FL, err, sizeof err) == 0);
    sl_snapshot *flat = load_as(FL, s2, 0);
    REQUIRE(flat);
    sl_snapshot_free(flat);
    /* A copy of the child elsewhere: its parent is not next to it; given
     * by path, it loads. Another snapshot by the parent's name next to it:
     * refused, naming the identity the child needs. (The files loaded
     * here stay as they are: they must not change while loaded.) */
    char want[65], dir2[128], cmd[512];
    sl_snapshot_id_hex(s0, want);
    snprintf(dir2, sizeof dir2, "%s/elsewhere", w.dir);
    REQUIRE(mkdir(dir2, 0700) == 0);
    const char *C1B = path_in(&w, "elsewhere/c1.snap"), *PB = path_in(&w, "elsewhere/p.snap");
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", C1, C1B);
    REQUIRE(system(cmd) == 0);
    sl_snapshot *bad = NULL;
    CHECK_EQ(sl_snapshot_load(&bad, C1B, err, sizeof err), SL_EPARENT);
    CHECK(bad == NULL && has(err, want));
    printf("  %s: missing parent: %s\n", guest, err);
    REQUIRE(sl_snapshot_load_chain(&bad, C1B, P, err, sizeof err) == 0);
    CHECK(same_id(bad, s1) && sl_snapshot_chain_depth(bad) == 1);
    sl_snapshot_free(bad);
    bad = NULL;
    REQUIRE(sl_snapshot_load_chain(&bad, C1B, w.dir, err, sizeof err) == 0); /* a directory to look in */
    sl_snapshot_free(bad);
    bad = NULL;
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", F2, PB);
    REQUIRE(system(cmd) == 0);
    CHECK_EQ(sl_snapshot_load(&bad, C1B, err, sizeof err), SL_EPARENT);
    CHECK(bad == NULL && has(err, want) && has(err, "another"));
    printf("  %s: another parent: %s\n", guest, err);
    CHECK_EQ(sl_snapshot_verify_file(C1B, err, sizeof err), SL_EPARENT);
    CHECK_EQ(sl_snapshot_load_chain(&bad, C1B, PB, err, sizeof err), SL_EPARENT);
    CHECK(has(err, want));
    unlink(C1B);
    unlink(PB);
    rmdir(dir2);
    /* The loaded chain was never disturbed: it holds its own descriptors. */
    answers_like(l2, s2, 4096);
    sl_sandbox_free(b);
    sl_sandbox_free(c);
    sl_sandbox_free(elf);
    sl_snapshot_free(s0);
    sl_snapshot_free(p);
    sl_snapshot_free(s1);
    sl_snapshot_free(s2);
    sl_snapshot_free(l1);
    sl_snapshot_free(l2);
    const char *all[] = {P, C1, C2, F2, FL};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        unlink(all[i]);
    rmdir(w.dir);
}

/* Two snapshots of one guest with no common lineage (each sandbox made
 * from the ELF on its own): a child of one against the other holds only
 * the pages that differ, found by content. */
static void unrelated(const char *guest)
{
    world w = {.guest = guest};
    snprintf(w.dir, sizeof w.dir, "/tmp/sandlet-child-XXXXXX");
    REQUIRE(mkdtemp(w.dir));
    char err[512] = "";
    const char *A = path_in(&w, "a.snap"), *B = path_in(&w, "b-of-a.snap");
    sl_sandbox *x = NULL, *y = NULL;
    sl_snapshot *sa = NULL, *sb = NULL;
    REQUIRE(sl_sandbox_new_from_file(&x, guest_path(guest), NULL, err, sizeof err) == 0);
    REQUIRE(sl_sandbox_new_from_file(&y, guest_path(guest), NULL, err, sizeof err) == 0);
    REQUIRE(sl_sandbox_init(x) == 0 && demo_counter(x) == 1 && sl_sandbox_snapshot(x, &sa) == 0);
    REQUIRE(sl_sandbox_init(y) == 0 && demo_counter(y) == 1 && demo_counter(y) == 2 && sl_sandbox_snapshot(y, &sb) == 0);
    CHECK(!same_id(sa, sb));
    REQUIRE(sl_snapshot_save(sa, A, err, sizeof err) == 0);
    REQUIRE(sl_snapshot_save_child(sb, A, B, NULL, NULL, err, sizeof err) == 0);
    sl_snapshot *l = load_as(B, sb, 1);
    REQUIRE(l);
    uint64_t pages = sl_snapshot_memory_size(sb) / 4096;
    long long own = file_size(B) - 4096;
    printf("  %s: unrelated snapshots of %llu pages: the child holds %lld bytes besides its header\n", guest,
           (unsigned long long)pages, own);
    CHECK(own > 0 && (unsigned long long)own < pages * 4096 / 4);
    answers_like(l, sb, 4096);
    sl_snapshot_free(l);
    sl_snapshot_free(sa);
    sl_snapshot_free(sb);
    sl_sandbox_free(x);
    sl_sandbox_free(y);
    unlink(A);
    unlink(B);
    rmdir(w.dir);
}

/* A 64 MiB parent, a child and a grandchild with a few pages changed each:
 * the grandchild answers exactly as the full snapshot it stands for. */
static void big(void)
{
    world w = {.guest = "demo"};
    snprintf(w.dir, sizeof w.dir, "/tmp/sandlet-child-XXXXXX");
    REQUIRE(mkdtemp(w.dir));
    char err[512] = "";
    const char *P = path_in(&w, "p64.snap"), *C1 = path_in(&w, "c1.snap"), *C2 = path_in(&w, "c2.snap");
    const char *F2 = path_in(&w, "c2-full.snap");
    /* 64 MiB of init data (random bytes) make the parent 64 MiB. */
    size_t n = 64u << 20;
    uint64_t *data = malloc(n), x = 0x9E3779B97F4A7C15ull;
    REQUIRE(data);
    for (size_t i = 0; i < n / 8; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        data[i] = x;
    }
    sl_config cfg = {.init_data = data, .init_data_size = n, .scratch_size = 32u << 20};
    sl_sandbox *sb = NULL;
    sl_snapshot *s0 = NULL, *p = NULL, *s1 = NULL, *l1 = NULL, *s2 = NULL, *l2 = NULL, *f2 = NULL;
    REQUIRE(sl_sandbox_new_from_file(&sb, guest_path("demo"), &cfg, err, sizeof err) == 0);
    REQUIRE(sl_sandbox_init(sb) == 0 && sl_sandbox_snapshot(sb, &s0) == 0);
    free(data);
    CHECK(sl_snapshot_memory_size(s0) >= (64u << 20));
    REQUIRE(sl_snapshot_save(s0, P, err, sizeof err) == 0 && sl_snapshot_load(&p, P, err, sizeof err) == 0);
    sl_sandbox_free(sb);
    sb = NULL;
    REQUIRE(sl_sandbox_new_from_snapshot(&sb, p, err, sizeof err) == 0);
    CHECK(demo_counter(sb) == 1 && fill(sb, 3 * 4096) != 0);
    REQUIRE(sl_sandbox_snapshot(sb, &s1) == 0);
    REQUIRE(sl_snapshot_save_child(s1, P, C1, NULL, NULL, err, sizeof err) == 0);
    l1 = load_as(C1, s1, 1);
    REQUIRE(l1);
    REQUIRE(sl_sandbox_restore(sb, l1) == 0);
    CHECK(demo_counter(sb) == 2);
    REQUIRE(sl_sandbox_snapshot(sb, &s2) == 0);
    REQUIRE(sl_snapshot_save_child(s2, C1, C2, NULL, NULL, err, sizeof err) == 0);
    REQUIRE(sl_snapshot_save(s2, F2, err, sizeof err) == 0);
    l2 = load_as(C2, s2, 2);
    REQUIRE(l2);
    f2 = load_as(F2, s2, 0);
    REQUIRE(f2);
    printf("  64 MiB parent %lld bytes: child %lld, grandchild %lld bytes\n", file_size(P), file_size(C1),
           file_size(C2));
    CHECK(file_size(C1) < (1 << 20) && file_size(C2) < (1 << 20));
    answers_like(l2, f2, 1u << 20);
    sl_sandbox_free(sb);
    sl_snapshot_free(s0);
    sl_snapshot_free(p);
    sl_snapshot_free(s1);
    sl_snapshot_free(l1);
    sl_snapshot_free(s2);
    sl_snapshot_free(l2);
    sl_snapshot_free(f2);
    unlink(P);
    unlink(C1);
    unlink(C2);
    unlink(F2);
    rmdir(w.dir);
}

/* Whether page `page` of the loaded child s comes from its parent file. */
static int from_parent(const sl_snapshot *s, uint64_t page)
{
    for (uint64_t i = 0; i < s->n_runs; i++)
        if (page >= s->runs[i].page && page - s->runs[i].page < s->runs[i].count)
            return s->runs[i].level == 1 && s->runs[i].src == s->runs[i].page;
    return 0;
}

/* The frame of the page at va, faulted in first (pagemap.h). */
static uint64_t frame(int pm, const volatile uint8_t *va)
{
    (void)*va;
    return pfn_of(pm, (const void *)va);
}

/* Children of one parent, loaded by two snapshots of this process and by
 * another process, map the parent's pages themselves: the same physical
 * frames, the page cache's. */
static void shared(void)
{
    world w = {.guest = "demo"};
    snprintf(w.dir, sizeof w.dir, "/tmp/sandlet-child-XXXXXX");
    REQUIRE(mkdtemp(w.dir));
    char err[512] = "";
    const char *P = path_in(&w, "p.snap"), *C = path_in(&w, "c.snap"), *D = path_in(&w, "d.snap");
    sl_sandbox *elf = NULL, *b = NULL;
    sl_snapshot *s0 = NULL, *p = NULL, *c = NULL, *d = NULL, *lc = NULL, *ld = NULL;
    REQUIRE(sl_sandbox_new_from_file(&elf, guest_path("demo"), NULL, err, sizeof err) == 0);
    REQUIRE(sl_sandbox_init(elf) == 0 && sl_sandbox_snapshot(elf, &s0) == 0);
    REQUIRE(sl_snapshot_save(s0, P, err, sizeof err) == 0 && sl_snapshot_load(&p, P, err, sizeof err) == 0);
    REQUIRE(sl_sandbox_new_from_snapshot(&b, p, err, sizeof err) == 0);
    REQUIRE(demo_counter(b) == 1 && sl_sandbox_snapshot(b, &c) == 0);
    REQUIRE(sl_sandbox_restore(b, p) == 0 && fill(b, 4096) && sl_sandbox_snapshot(b, &d) == 0);
    REQUIRE(sl_snapshot_save_child(c, P, C, NULL, NULL, err, sizeof err) == 0);
    REQUIRE(sl_snapshot_save_child(d, P, D, NULL, NULL, err, sizeof err) == 0);
    REQUIRE(sl_snapshot_load(&lc, C, err, sizeof err) == 0 && sl_snapshot_load(&ld, D, err, sizeof err) == 0);
    uint64_t n = 0, size = 0, same = 0, seen = 0, pipe_same = 0;
    const uint8_t *bp = sl_snapshot_blob(p, &size), *bc = sl_snapshot_blob(lc, &n), *bd = sl_snapshot_blob(ld, &n);
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) { /* another process: its own load of the child */
        sl_snapshot *o = NULL;
        uint64_t m = 0;
        if (sl_snapshot_load(&o, C, err, sizeof err) != 0)
            _exit(1);
        const uint8_t *bo = sl_snapshot_blob(o, &m);
        int opm = open("/proc/self/pagemap", O_RDONLY);
        for (uint64_t off = 0; off < m; off += 4096) {
            uint64_t f = frame(opm, bo + off);
            if (write(fds[1], &f, 8) != 8)
                _exit(1);
        }
        _exit(0);
    }
    close(fds[1]);
    int pm = open("/proc/self/pagemap", O_RDONLY);
    for (uint64_t off = 0; off < n && off < size; off += 4096) {
        uint64_t fp = frame(pm, bp + off), fc = frame(pm, bc + off), fd = frame(pm, bd + off), fo = 0;
        if (read(fds[0], &fo, 8) != 8)
            fo = 0;
        if (!from_parent(lc, off / 4096) || !from_parent(ld, off / 4096))
            continue; /* a page one of them changed */
        seen++;
        same += fp && fp == fc && fp == fd;
        pipe_same += fp && fp == fo;
    }
    close(fds[0]);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    printf("  %llu pages the children have from the parent: %llu on the parent's frames in both, %llu in the "
           "other process too\n", (unsigned long long)seen, (unsigned long long)same, (unsigned long long)pipe_same);
    uint64_t any = frame(pm, bp);
    if (pm >= 0)
        close(pm);
    if (!any)
        printf("  (no frame numbers: not privileged; nothing more to compare)\n");
    else
        CHECK(seen > 100 && same == seen && pipe_same == seen);
    sl_sandbox_free(b);
    sl_sandbox_free(elf);
    sl_snapshot_free(s0);
    sl_snapshot_free(p);
    sl_snapshot_free(c);
    sl_snapshot_free(d);
    sl_snapshot_free(lc);
    sl_snapshot_free(ld);
    unlink(P);
    unlink(C);
    unlink(D);
    rmdir(w.dir);
}

static void chain64(void) { chain("demo"); }
static void chain32(void) { chain("demo32"); }
static void unrelated64(void) { unrelated("demo"); }
static void unrelated32(void) { unrelated("demo32"); }

int main(void)
{
    RUN_ARCH(T_AMD64, chain64);
    RUN_ARCH(T_I686, chain32);
    RUN_ARCH(T_AMD64, unrelated64);
    RUN_ARCH(T_I686, unrelated32);
    RUN_ARCH(T_AMD64, big);
    RUN_ARCH(T_AMD64, shared);
    T_EXIT();
}
