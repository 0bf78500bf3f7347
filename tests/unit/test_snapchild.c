/* Child snapshot files (format version 5, issue 11 item 8): hostile input.
 * Without KVM: the snapshots come from a simulated guest (tests/common/sim.h)
 * whose pages hold numbered contents, so a test says which page of a child
 * equals which page of its parent. The files are what sl_snapshot_save and
 * sl_snapshot_save_child write; hostile variants are edited with
 * tests/common/childfile.h and resealed (sl_snapfile_reseal), so that each
 * reaches the check it is aimed at.
 *
 * Positive: a child of a child of a full file loads with every page equal to
 * the full snapshot's, the same identity, the depth of its chain, and a
 * content index that says the truth; an unrelated snapshot saved against a
 * child shares its pages and its parent's by content. Hostile: runs past the parent's or the
 * file's own pages, overlapping, with gaps, empty, not ending at the blob's
 * end, levels above the chain or above SL_CHAIN_MAX; a parent with another
 * identity, missing, or replaced after the child was written (SL_EPARENT,
 * naming the identity needed); chains that loop; a chain deeper than
 * SL_CHAIN_MAX; a lying content index in a child (advisory: loads, and a
 * child saved against it is still right) and any index in a full file
 * (refused); version 3 and 4 files with version-5 fields. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapfile.h"
#include "snapshot.h"
#include "t.h"
#include "../common/childfile.h"
#include "../common/files.h"
#include "../common/numsnap.h"

/* ---------------- snapshots with numbered pages ---------------- */

#define VIS 12u /* visible pages of every test snapshot */

static sl_snapshot *snap_of(const uint32_t ids[VIS], const sl_snapshot *parent) { return numsnap_of(ids, VIS, parent); }
static void fill_page(uint8_t *p, uint32_t id) { numsnap_fill(p, id); }
static void page_hash(const uint8_t *page, uint8_t out[SL_HASH_LEN]) { numsnap_page_hash(page, out); }

/* The world every test starts from: P (a full file), C (a child of P) and G
 * (a child of C), in memory, with the contents:
 *   P: 0 1 2 3 4 5 6 7 8 9 10 11
 *   C: P with page 3 = 9 (a copy: C's own, as a full file has no index
 *      to find it in P by), page 7 = 100 (new: C's own)
 *   G: C with page 5 = 101 (new: G's own), page 8 = 100 (C's own page,
 *      found by content) */
static const uint32_t ids_p[VIS] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
static const uint32_t ids_c[VIS] = {0, 1, 2, 9, 4, 5, 6, 100, 8, 9, 10, 11};
static const uint32_t ids_g[VIS] = {0, 1, 2, 9, 4, 101, 6, 100, 100, 9, 10, 11};
static const uint32_t ids_q[VIS] = {50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61}; /* unrelated */
/* H: G with page 2 = 102 (new), page 10 = 101 (G's own); U: unrelated to
 * them all (no parent), with pages equal to some of P's, C's and G's. */
static const uint32_t ids_h[VIS] = {0, 1, 102, 9, 4, 101, 6, 100, 100, 9, 101, 11};
static const uint32_t ids_u[VIS] = {100, 101, 9, 7, 3, 102, 0, 1, 2, 50, 51, 52};
static sl_snapshot *sp, *sc, *sg, *sq, *sh, *su;

/* A directory of its own under g_dir for one test, holding p.snap (P in
 * full), c.snap (C, child of p.snap) and g.snap (G, child of c.snap). */
static char *world_dir(const char *name, char *dir, size_t len)
{
    char err[256] = "";
    snprintf(dir, len, "%s/%s", g_dir, name);
    if (mkdir(dir, 0755) && errno != EEXIST)
        return NULL;
    char p[600], c[600], g[600];
    snprintf(p, sizeof p, "%s/p.snap", dir);
    snprintf(c, sizeof c, "%s/c.snap", dir);
    snprintf(g, sizeof g, "%s/g.snap", dir);
    if (sl_snapshot_save(sp, p, err, sizeof err) ||
        sl_snapshot_save_child(sc, p, c, NULL, NULL, err, sizeof err) ||
        sl_snapshot_save_child(sg, c, g, NULL, NULL, err, sizeof err)) {
        printf("  world %s: %s\n", name, err);
        return NULL;
    }
    return dir;
}

/* dir/name, in one of four rotating buffers. */
static const char *in(const char *dir, const char *name)
{
    static char buf[4][640];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

/* Reads every page of a loaded snapshot's blob (a mapping error would
 * fault here) and returns an xor of them. */
static uint8_t touch_pages(const sl_snapshot *s)
{
    uint64_t n = 0;
    const uint8_t *b = sl_snapshot_blob(s, &n);
    volatile uint8_t x = 0;
    for (uint64_t off = 0; off < n; off += SL_PAGE_SIZE)
        for (unsigned i = 0; i < SL_PAGE_SIZE; i += 64)
            x ^= b[off + i];
    return x;
}

/* Whether a and b have the same blob, byte for byte, and the same identity. */
static bool same_pages(const sl_snapshot *a, const sl_snapshot *b)
{
    uint64_t na = 0, nb = 0;
    const uint8_t *x = sl_snapshot_blob(a, &na), *y = sl_snapshot_blob(b, &nb);
    return na == nb && memcmp(x, y, na) == 0 && memcmp(sl_snapshot_hash(a), sl_snapshot_hash(b), SL_HASH_LEN) == 0;
}

/* load_chain(path, parents): what it returns, with err; a snapshot that
 * loads has every page read (none may fault: the SIGBUS handler would mark
 * it lost) and is compared with `want` (NULL: not). */
static int try_load(const char *path, const char *parents, const sl_snapshot *want, char *err, size_t errlen)
{
    sl_snapshot *s = NULL;
    err[0] = 0;
    int rc = sl_snapshot_load_chain(&s, path, parents, err, errlen);
    if (rc == 0) {
        touch_pages(s);
        CHECK(!sl_snapfile_lost(s)); /* no page read was outside its file */
        if (want && !same_pages(s, want)) {
            printf("  %s: loads, but not the snapshot it should be\n", path);
            t_failed_now = 1;
        }
        sl_snapshot_free(s);
    } else {
        CHECK(s == NULL);
        CHECK(err[0] != 0);
    }
    return rc;
}

/* Checks rc and that err contains every one of the NULL-terminated words. */
static void expect_(int rc, const char *err, int want_rc, const char *what, int line, ...)
{
    va_list ap;
    va_start(ap, line);
    bool ok = rc == want_rc;
    for (const char *w; (w = va_arg(ap, const char *));)
        ok = ok && strstr(err, w) != NULL;
    va_end(ap);
    if (!ok) {
        printf("  check failed line %d (%s): rc %d (want %d), message: %s\n", line, what, rc, want_rc, err);
        t_failed_now = 1;
    }
}
#define EXPECT(rc, err, want_rc, what, ...) expect_(rc, err, want_rc, what, __LINE__, __VA_ARGS__, (const char *)NULL)

static void hex_of(const sl_snapshot *s, char hex[65]) { sl_hash_hex(sl_snapshot_hash(s), hex); }

/* The file's parent-name hint, replaced by `name` of the same length
 * (hostile files that name another file without moving the sections). */
static int set_hint(uint8_t *f, size_t len, const char *name)
{
    uint32_t size = sl_get32(f + SF_PARENT_NAME_SIZE), off = sl_get32(f + SF_PARENT_NAME_OFFSET);
    if (size != strlen(name) || off + (uint64_t)size > len)
        return -1;
    memcpy(f + off, name, size);
    return 0;
}

/* ---------------- the chain as it should be ---------------- */

static void test_chain_loads(void)
{
    char dir[512], err[256];
    REQUIRE(world_dir("good", dir, sizeof dir));
    sl_snapshot *p = NULL, *c = NULL, *g = NULL;
    REQUIRE(sl_snapshot_load_chain(&p, in(dir, "p.snap"), NULL, err, sizeof err) == 0);
    REQUIRE(sl_snapshot_load_chain(&c, in(dir, "c.snap"), NULL, err, sizeof err) == 0);
    if (sl_snapshot_load(&g, in(dir, "g.snap"), err, sizeof err)) /* = load_chain(..., NULL, ...) */
        printf("  g.snap: %s\n", err);
    REQUIRE(g);
    CHECK_EQ(sl_snapshot_chain_depth(p), 0);
    CHECK_EQ(sl_snapshot_chain_depth(c), 1);
    CHECK_EQ(sl_snapshot_chain_depth(g), 2);
    CHECK_EQ(sl_snapshot_chain_depth(sg), 0); /* made in memory */
    CHECK(sl_snapshot_file(g) && strcmp(sl_snapshot_file(g), in(dir, "g.snap")) == 0);
    CHECK(sl_snapshot_file(sg) == NULL);
    touch_pages(p);
    touch_pages(c);
    touch_pages(g);
    CHECK(same_pages(p, sp));
    CHECK(same_pages(c, sc));
    CHECK(same_pages(g, sg));
    /* The identity is the one a full save has: G saved in full, loaded,
     * equals the child byte for byte; so does the flattened child. */
    REQUIRE(sl_snapshot_save(sg, in(dir, "gfull.snap"), err, sizeof err) == 0);
    REQUIRE(sl_snapshot_save(g, in(dir, "gflat.snap"), err, sizeof err) == 0);
    sl_snapshot *full = NULL, *flat = NULL;
    REQUIRE(sl_snapshot_load(&full, in(dir, "gfull.snap"), err, sizeof err) == 0);
    REQUIRE(sl_snapshot_load(&flat, in(dir, "gflat.snap"), err, sizeof err) == 0);
    CHECK(same_pages(full, g));
    CHECK(same_pages(flat, g));
    CHECK_EQ(sl_snapshot_chain_depth(flat), 0);
    uint8_t a[SL_HASH_LEN], b[SL_HASH_LEN];
    sl_snapshot_id(g, a);
    sl_snapshot_id(full, b);
    CHECK(memcmp(a, b, SL_HASH_LEN) == 0);
    /* Lineage: each names the one before. */
    CHECK(sl_snapshot_parent_id(g, a) == 0 && memcmp(a, sl_snapshot_hash(sc), SL_HASH_LEN) == 0);
    CHECK(sl_snapshot_parent_id(c, a) == 0 && memcmp(a, sl_snapshot_hash(sp), SL_HASH_LEN) == 0);
    /* Verify: every file of the chain hashes to its identity. */
    CHECK_EQ(sl_snapshot_verify_chain(in(dir, "g.snap"), NULL, NULL, NULL, err, sizeof err), 0);
    CHECK_EQ(sl_snapshot_verify_file(in(dir, "g.snap"), err, sizeof err), 0);
    CHECK_EQ(sl_snapshot_verify_file(in(dir, "gflat.snap"), err, sizeof err), 0);
    sl_snapshot_free(p);
    sl_snapshot_free(c);
    sl_snapshot_free(g);
    sl_snapshot_free(full);
    sl_snapshot_free(flat);
}

/* Runs tile the blob; index entries are sorted, one per own page, each the
 * BLAKE3 of its page (a child's; a full file has none: its bytes from the
 * blob on are exactly what its identity hashes). */
static void check_tables(const char *what, const cf_file *cf, const uint8_t *f, uint64_t blob_pages)
{
    uint64_t own = sl_get64(f + SF_OWN_SIZE), blob_off = sl_get64(f + SF_BLOB_OFFSET);
    uint64_t next = 0;
    for (size_t i = 0; i < cf->n_runs; i++) {
        CHECK_EQ(cf->runs[i].page, next);
        CHECK(cf->runs[i].count >= 1);
        next += cf->runs[i].count;
    }
    if (cf->n_runs)
        CHECK_EQ(next, blob_pages);
    CHECK_EQ(cf->n_index, cf->n_runs ? own / SL_PAGE_SIZE : 0);
    for (size_t i = 0; i < cf->n_index; i++) {
        uint8_t h[SL_HASH_LEN];
        REQUIRE(cf->index[i].page < own / SL_PAGE_SIZE);
        page_hash(f + blob_off + cf->index[i].page * SL_PAGE_SIZE, h);
        if (memcmp(h, cf->index[i].hash, SL_HASH_LEN)) {
            printf("  %s: index entry %zu (page %llu) is not its page's hash\n", what, i,
                   (unsigned long long)cf->index[i].page);
            t_failed_now = 1;
        }
        if (i)
            CHECK(memcmp(cf->index[i - 1].hash, cf->index[i].hash, SL_HASH_LEN) <= 0);
    }
}

/* What save and save_child wrote, field by field (§9). */
static void test_file_layout(void)
{
    char dir[512];
    REQUIRE(world_dir("layout", dir, sizeof dir));
    size_t lp, lc, lg;
    uint8_t *fp = read_file(in(dir, "p.snap"), &lp), *fc = read_file(in(dir, "c.snap"), &lc),
            *fg = read_file(in(dir, "g.snap"), &lg);
    cf_file p, c, g;
    REQUIRE(fp && fc && fg);
    REQUIRE(cf_split(&p, fp, lp) == 0 && cf_split(&c, fc, lc) == 0 && cf_split(&g, fg, lg) == 0);
    uint64_t blob = sl_get64(fp + SF_BLOB_SIZE), pages = blob / SL_PAGE_SIZE;
    CHECK(pages > VIS); /* and page tables */
    /* P: a full file: every page its own, no runs, no index. */
    CHECK_EQ(sl_get32(fp + SF_VERSION), 5);
    CHECK_EQ(sl_get32(fp + SF_LINEAGE_FLAGS) & SL_SNAPFILE_CHILD, 0);
    CHECK_EQ(sl_get64(fp + SF_OWN_SIZE), blob);
    CHECK_EQ(p.n_runs, 0);
    CHECK_EQ(p.n_index, 0);
    CHECK_EQ(sl_get32(fp + SF_PARENT_NAME_SIZE), 0);
    check_tables("p.snap", &p, fp, pages);
    /* C: names P, by identity and by name; holds what the guest copied
     * (pages 3 and 7: P has no index to find page 3's bytes by), takes the
     * pages the guest left alone and the page tables (the same bytes where
     * P has them) from P. */
    CHECK_EQ(sl_get32(fc + SF_VERSION), 5);
    CHECK_EQ(sl_get32(fc + SF_LINEAGE_FLAGS), SL_SNAPFILE_HAS_PARENT | SL_SNAPFILE_CHILD);
    CHECK(memcmp(fc + SF_PARENT, sl_snapshot_hash(sp), SL_HASH_LEN) == 0);
    CHECK(memcmp(fc + SF_IDENTITY, sl_snapshot_hash(sc), SL_HASH_LEN) == 0);
    CHECK_EQ(sl_get64(fc + SF_BLOB_SIZE), blob);
    CHECK_EQ(sl_get64(fc + SF_OWN_SIZE), 2 * SL_PAGE_SIZE);
    uint32_t ns = sl_get32(fc + SF_PARENT_NAME_SIZE), no = sl_get32(fc + SF_PARENT_NAME_OFFSET);
    CHECK(ns == 6 && no >= SL_SNAPFILE_HEADER_SIZE && no + ns <= sl_get64(fc + SF_BLOB_OFFSET) &&
          memcmp(fc + no, "p.snap", 6) == 0);
    check_tables("c.snap", &c, fc, pages);
    for (uint64_t i = 0; i < pages; i++) {
        long r = cf_run_of(&c, i);
        REQUIRE(r >= 0);
        CHECK_EQ(c.runs[r].level, i < VIS && ids_c[i] != ids_p[i] ? 0 : 1);
    }
    /* G: holds page 5 (content 101) only; page 8 (content 100) is found in
     * C's index; the pages the guest left alone and the page tables are
     * where C has them: in P. Levels 0, 1, 2. */
    CHECK_EQ(sl_get64(fg + SF_OWN_SIZE), SL_PAGE_SIZE);
    CHECK(memcmp(fg + SF_PARENT, sl_snapshot_hash(sc), SL_HASH_LEN) == 0);
    check_tables("g.snap", &g, fg, pages);
    long r5 = cf_run_of(&g, 5), r8 = cf_run_of(&g, 8);
    REQUIRE(r5 >= 0 && r8 >= 0);
    CHECK_EQ(g.runs[r5].level, 0);
    REQUIRE(g.runs[r8].level == 1);
    uint8_t want[SL_PAGE_SIZE];
    fill_page(want, 100);
    uint64_t at = sl_get64(fc + SF_BLOB_OFFSET) + (g.runs[r8].src + (8 - g.runs[r8].page)) * SL_PAGE_SIZE;
    CHECK(at + SL_PAGE_SIZE <= lc && memcmp(fc + at, want, SL_PAGE_SIZE) == 0);
    long rt = cf_run_of(&g, pages - 1), r0 = cf_run_of(&g, 0);
    REQUIRE(rt >= 0 && r0 >= 0);
    CHECK_EQ(g.runs[rt].level, 2); /* a page table */
    CHECK_EQ(g.runs[r0].level, 2);
    CHECK(cf_run_at_level(&g, 2) >= 0);
    CHECK(cf_run_at_level(&g, 3) < 0);
    /* U, unrelated (no parent, so nothing known kept), saved against C:
     * every page is looked up by content, in C's index and in P's pages. */
    char err[256];
    REQUIRE(sl_snapshot_save_child(su, in(dir, "c.snap"), in(dir, "u.snap"), NULL, NULL, err, sizeof err) == 0);
    size_t lu;
    uint8_t *fu = read_file(in(dir, "u.snap"), &lu);
    cf_file u;
    REQUIRE(fu && cf_split(&u, fu, lu) == 0);
    static const struct {
        unsigned page, level;
    } where[] = {{0, 1} /* 100: C's own */, {2, 1} /* 9: C's own */, {3, 2} /* 7: P's */, {6, 2} /* 0: P's */,
                 {5, 0} /* 102: nowhere */, {9, 0} /* 50: nowhere */};
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
        long r = cf_run_of(&u, where[i].page);
        REQUIRE(r >= 0);
        if (u.runs[r].level != where[i].level)
            printf("  u.snap page %u: level %u, not %u\n", where[i].page, u.runs[r].level, where[i].level);
        CHECK_EQ(u.runs[r].level, where[i].level);
    }
    CHECK_EQ(try_load(in(dir, "u.snap"), NULL, su, err, sizeof err), 0);
    cf_free(&u);
    free(fu);
    cf_free(&p);
    cf_free(&c);
    cf_free(&g);
    free(fp);
    free(fc);
    free(fg);
}

/* ---------------- hostile runs ---------------- */

/* Edits of the run table, each aimed at one rule of §9. */
enum {
    R_PARENT_PAST_END,   /* level 1: src + count past the parent's own pages */
    R_PARENT_WRAPS,      /* level 1: src + count overflows */
    R_OWN_PAST_END,      /* level 0: src + count past this file's own pages */
    R_OWN_WRAPS,         /* level 0: src at 2^64 - 1 */
    R_OVERLAP,           /* a run starts before the previous one ends */
    R_GAP,               /* a run starts after the previous one ends */
    R_FIRST_NOT_ZERO,    /* the first run starts at page 1 */
    R_SHORT,             /* the last run ends one page before the blob's end */
    R_MISSING_LAST,      /* the last run is gone */
    R_LONG,              /* the last run ends one page after the blob's end */
    R_COUNT_ZERO,        /* a run of 0 pages, inserted where it breaks no other rule */
    R_LEVEL_ABOVE_DEPTH, /* level 2 in a child of a full file */
    R_LEVEL_17,          /* above SL_CHAIN_MAX */
    R_LEVEL_HUGE,        /* 2^32 - 1 */
    R_NONE,              /* no run at all in a child */
    R_TOO_MANY,          /* one run per page, and one more of 0 pages */
    R_CASES
};

/* Applies edit k to the runs of cf (whose own pages are own_pages);
 * -1 when this file has no run the edit needs. */
static int edit_runs(cf_file *cf, int k, uint64_t parent_own)
{
    long i1 = cf_run_at_level(cf, 1), i0 = cf_run_at_level(cf, 0);
    cf_run *r = cf->runs;
    size_t n = cf->n_runs, last = n - 1;
    if (n < 3 || i1 < 0 || i0 < 0)
        return -1;
    switch (k) {
    case R_PARENT_PAST_END: r[i1].src = parent_own - r[i1].count + 1; break;
    case R_PARENT_WRAPS: r[i1].src = UINT64_MAX - 1; break;
    case R_OWN_PAST_END: r[i0].src = sl_get64(cf->head + SF_OWN_SIZE) / SL_PAGE_SIZE - r[i0].count + 1; break;
    case R_OWN_WRAPS: r[i0].src = UINT64_MAX; break;
    case R_OVERLAP: r[1].page--, r[1].count++; break;
    case R_GAP:
        for (size_t i = 1; i < n; i++)
            if (r[i].count >= 2) {
                r[i].page++, r[i].src++, r[i].count--;
                return 0;
            }
        return -1;
    case R_FIRST_NOT_ZERO:
        if (r[0].count < 2)
            return -1;
        r[0].page++, r[0].count--;
        break;
    case R_SHORT:
        if (r[last].count < 2)
            return -1;
        r[last].count--;
        break;
    case R_MISSING_LAST: cf_remove_run(cf, last); break;
    case R_LONG: r[last].count++; break;
    case R_COUNT_ZERO: return cf_insert_run(cf, 1, (cf_run){r[1].page, r[1].src, 0, r[1].level});
    case R_LEVEL_ABOVE_DEPTH: r[i1].level = 2; break;
    case R_LEVEL_17: r[i1].level = SL_CHAIN_MAX + 1; break;
    case R_LEVEL_HUGE: r[i1].level = UINT32_MAX; break;
    case R_NONE: cf->n_runs = 0; break;
    case R_TOO_MANY: {
        /* Split every run into runs of one page (still valid), then add an
         * empty one: more records than the blob has pages. */
        cf_file out = *cf;
        cf_run *one = malloc((sl_get64(cf->head + SF_BLOB_SIZE) / SL_PAGE_SIZE + 2) * sizeof *one);
        size_t m = 0;
        if (!one)
            return -1;
        for (size_t i = 0; i < n; i++)
            for (uint32_t j = 0; j < r[i].count; j++)
                one[m++] = (cf_run){r[i].page + j, r[i].src + j, 1, r[i].level};
        one[m] = one[m - 1];
        one[m].count = 0;
        one[m].page++;
        free(cf->runs);
        out.runs = one;
        out.n_runs = m + 1;
        out.cap_runs = m + 2;
        *cf = out;
        break;
    }
    }
    return 0;
}

/* What each edit must say (every word in the message). */
static const char *const run_words[R_CASES][3] = {
    [R_PARENT_PAST_END] = {"run", "1 level(s) up"},
    [R_PARENT_WRAPS] = {"run"},
    [R_OWN_PAST_END] = {"run", "this file"},
    [R_OWN_WRAPS] = {"run", "this file"},
    [R_OVERLAP] = {"run", "overlap"},
    [R_GAP] = {"run", "gap"},
    [R_FIRST_NOT_ZERO] = {"run 0", "gap"},
    [R_SHORT] = {"runs end", "blob's end"},
    [R_MISSING_LAST] = {"runs end", "blob's end"},
    [R_LONG] = {"run", "past the blob"},
    [R_COUNT_ZERO] = {"run 1", "empty"},
    [R_LEVEL_ABOVE_DEPTH] = {"run", "names level 2"},
    [R_LEVEL_17] = {"run", "level 17"},
    [R_LEVEL_HUGE] = {"run", "level 4294967295"},
    [R_NONE] = {"runs_size"},
    [R_TOO_MANY] = {"runs_size"},
};

/* Writes the edited image as dir/name, resealed (the checksum covers the
 * runs), and returns 0; -1 when it could not. */
static int write_cf(const cf_file *cf, const char *dir, const char *name)
{
    size_t len;
    uint8_t *f = cf_join(cf, &len);
    if (!f)
        return -1;
    sl_snapfile_reseal(f, len); /* may refuse broken geometry: load says why */
    int rc = write_file(in(dir, name), f, len);
    free(f);
    return rc;
}

static void test_runs_hostile(void)
{
    char dir[512], err[512];
    REQUIRE(world_dir("runs", dir, sizeof dir));
    size_t lp, lc, lg;
    uint8_t *fp = read_file(in(dir, "p.snap"), &lp), *fc = read_file(in(dir, "c.snap"), &lc),
            *fg = read_file(in(dir, "g.snap"), &lg);
    REQUIRE(fp && fc && fg);
    const uint64_t p_own = sl_get64(fp + SF_OWN_SIZE) / SL_PAGE_SIZE, c_own = sl_get64(fc + SF_OWN_SIZE) / SL_PAGE_SIZE;
    /* Unedited, split and joined: loads (the helper itself is right). */
    cf_file cf;
    REQUIRE(cf_split(&cf, fc, lc) == 0);
    REQUIRE(write_cf(&cf, dir, "x.snap") == 0);
    CHECK_EQ(try_load(in(dir, "x.snap"), NULL, sc, err, sizeof err), 0);
    cf_free(&cf);
    for (int k = 0; k < R_CASES; k++) {
        REQUIRE(cf_split(&cf, fc, lc) == 0);
        if (edit_runs(&cf, k, p_own)) {
            printf("  run edit %d: c.snap has no run for it\n", k);
            t_failed_now = 1;
            cf_free(&cf);
            continue;
        }
        REQUIRE(write_cf(&cf, dir, "x.snap") == 0);
        cf_free(&cf);
        int rc = try_load(in(dir, "x.snap"), NULL, NULL, err, sizeof err);
        char what[32];
        snprintf(what, sizeof what, "run edit %d", k);
        expect_(rc, err, SL_EFORMAT, what, __LINE__, run_words[k][0], run_words[k][1], (const char *)NULL);
        /* verify refuses what load refuses, with the same code */
        CHECK_EQ(sl_snapshot_verify_chain(in(dir, "x.snap"), NULL, NULL, NULL, err, sizeof err), SL_EFORMAT);
    }
    /* One run per page (the same pages, only cut finer) is fine. */
    REQUIRE(cf_split(&cf, fc, lc) == 0);
    REQUIRE(edit_runs(&cf, R_TOO_MANY, p_own) == 0);
    cf.n_runs--; /* without the empty one */
    REQUIRE(write_cf(&cf, dir, "x.snap") == 0);
    cf_free(&cf);
    CHECK_EQ(try_load(in(dir, "x.snap"), NULL, sc, err, sizeof err), 0);

    /* The grandchild: level 2 past P's pages, level 1 past C's, level 3. */
    for (int k = 0; k < 3; k++) {
        REQUIRE(cf_split(&cf, fg, lg) == 0);
        long i = cf_run_at_level(&cf, k == 0 ? 2 : 1);
        REQUIRE(i >= 0);
        if (k == 0)
            cf.runs[i].src = p_own - cf.runs[i].count + 1;
        else if (k == 1)
            cf.runs[i].src = c_own;
        else
            cf.runs[i].level = 3;
        REQUIRE(write_cf(&cf, dir, "y.snap") == 0);
        cf_free(&cf);
        int rc = try_load(in(dir, "y.snap"), NULL, NULL, err, sizeof err);
        if (k < 2)
            EXPECT(rc, err, SL_EFORMAT, "grandchild run past its file's pages", "run",
                   k ? "1 level(s) up" : "2 level(s) up");
        else
            EXPECT(rc, err, SL_EFORMAT, "grandchild run at level 3", "run", "level 3");
    }
    free(fp);
    free(fc);
    free(fg);
}

/* ---------------- hostile headers of child files ---------------- */

static void test_header_hostile(void)
{
    char dir[512], err[512];
    REQUIRE(world_dir("header", dir, sizeof dir));
    size_t lp, lc;
    uint8_t *fp = read_file(in(dir, "p.snap"), &lp), *fc = read_file(in(dir, "c.snap"), &lc);
    REQUIRE(fp && fc);
    uint8_t *g = malloc(lp > lc ? lp : lc);
    REQUIRE(g);
    const uint32_t name_off = sl_get32(fc + SF_PARENT_NAME_OFFSET);
    static const struct {
        bool full;        /* edit p.snap (else c.snap) */
        unsigned off;     /* the field */
        int width;        /* 4 or 8: an integer; 1: a byte of the name (off: index in it) */
        uint64_t val;
        const char *word; /* in the message */
    } cases[] = {
        {false, SF_LINEAGE_FLAGS, 4, SL_SNAPFILE_CHILD, "`lineage_flags`"}, /* child without a parent */
        {false, SF_LINEAGE_FLAGS, 4, 7, "`lineage_flags`"},
        {false, SF_OWN_SIZE, 8, 0x800, "`own_size`"},
        {false, SF_OWN_SIZE, 8, UINT64_MAX & ~0xfffull, "`own_size`"},
        {false, SF_PARENT_NAME_SIZE, 4, SL_SNAPFILE_NAME_MAX + 1, "`parent_name_size`"},
        {false, SF_PARENT_NAME_SIZE, 4, 0, "`parent_name_offset`"},
        {false, SF_PARENT_NAME_SIZE, 4, 0xffffffffu, "`parent_name_size`"},
        {false, SF_PARENT_NAME_OFFSET, 4, 0x100, "`parent_name_offset`"},   /* in the header */
        {false, SF_PARENT_NAME_OFFSET, 4, 0xfffffffeu, "`parent_name_offset`"},
        {false, 1, 1, '/', "`parent_name_size`"},                            /* "p/snap" */
        {false, 1, 1, 0, "`parent_name_size`"},                              /* a NUL inside */
        {false, SF_RUNS_SIZE, 8, 25, "`runs_size`"}, /* not whole records */
        {false, SF_INDEX_SIZE, 8, 41, "`index_size`"},
        {false, SF_RESERVED2, 4, 1, "reserved"},
        {true, SF_LINEAGE_FLAGS, 4, SL_SNAPFILE_CHILD | SL_SNAPFILE_HAS_PARENT, "`runs_size`"}, /* no runs */
        {true, SF_OWN_SIZE, 8, 0, "`own_size`"},
        {true, SF_PARENT_NAME_SIZE, 4, 1, "`parent_name_size`"},
        {true, SF_RUNS_SIZE, 8, 24, "`runs_size`"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = cases[i].full ? lp : lc;
        memcpy(g, cases[i].full ? fp : fc, n);
        if (cases[i].width == 1)
            g[name_off + cases[i].off] = (uint8_t)cases[i].val;
        else if (cases[i].width == 4)
            sl_put32(g + cases[i].off, (uint32_t)cases[i].val);
        else
            sl_put64(g + cases[i].off, cases[i].val);
        sl_snapfile_reseal(g, n);
        REQUIRE(write_file(in(dir, "x.snap"), g, n) == 0);
        int rc = try_load(in(dir, "x.snap"), NULL, NULL, err, sizeof err);
        char what[64];
        snprintf(what, sizeof what, "header case %zu", i);
        EXPECT(rc, err, SL_EFORMAT, what, cases[i].word);
    }
    /* runs_size not a multiple of 24, the index moved along. */
    memcpy(g, fc, lc);
    sl_put64(g + SF_RUNS_SIZE, sl_get64(fc + SF_RUNS_SIZE) + 1);
    sl_put64(g + SF_INDEX_OFFSET, sl_get64(fc + SF_INDEX_OFFSET) + 1);
    sl_put64(g + SF_INDEX_SIZE, sl_get64(fc + SF_INDEX_SIZE) - 1);
    sl_snapfile_reseal(g, lc);
    REQUIRE(write_file(in(dir, "x.snap"), g, lc) == 0);
    EXPECT(try_load(in(dir, "x.snap"), NULL, NULL, err, sizeof err), err, SL_EFORMAT, "runs_size + 1", "`runs_size`");
    /* The name "..": no plain file. */
    memcpy(g, fc, lc);
    sl_put32(g + SF_PARENT_NAME_SIZE, 2);
    memcpy(g + name_off, "..", 2);
    memset(g + name_off + 2, 0, 4);
    sl_snapfile_reseal(g, lc);
    REQUIRE(write_file(in(dir, "x.snap"), g, lc) == 0);
    EXPECT(try_load(in(dir, "x.snap"), NULL, NULL, err, sizeof err), err, SL_EFORMAT, "name ..",
           "`parent_name_size`");
    /* An index longer than one entry per own page. */
    cf_file cf;
    REQUIRE(cf_split(&cf, fc, lc) == 0);
    REQUIRE(cf_reserve(&cf, cf.n_runs, cf.n_index + 1) == 0);
    cf.index[cf.n_index] = cf.index[0];
    cf.n_index++;
    REQUIRE(write_cf(&cf, dir, "x.snap") == 0);
    cf_free(&cf);
    EXPECT(try_load(in(dir, "x.snap"), NULL, NULL, err, sizeof err), err, SL_EFORMAT, "index too long",
           "`index_size`");
    free(g);
    free(fp);
    free(fc);
}

/* ---------------- parents: missing, different, replaced ---------------- */

static void test_parent_mismatch(void)
{
    char dir[512], other[600], err[1024], hex[65], list[1400];
    REQUIRE(world_dir("parent", dir, sizeof dir));
    hex_of(sp, hex);
    int rc;
    REQUIRE(sl_snapshot_save(sq, in(dir, "q.snap"), err, sizeof err) == 0);
    /* The right one, explicitly, as a file and as a directory. */
    CHECK_EQ(try_load(in(dir, "c.snap"), in(dir, "p.snap"), sc, err, sizeof err), 0);
    CHECK_EQ(try_load(in(dir, "c.snap"), dir, sc, err, sizeof err), 0);
    /* p.snap moved elsewhere: missing, unless the search finds it. */
    snprintf(other, sizeof other, "%s/elsewhere", dir);
    REQUIRE(mkdir(other, 0755) == 0);
    REQUIRE(rename(in(dir, "p.snap"), in(other, "p.snap")) == 0);
    unsetenv("SANDLET_SNAPSHOT_PATH");
    rc = try_load(in(dir, "c.snap"), NULL, NULL, err, sizeof err);
    EXPECT(rc, err, SL_EPARENT, "missing parent", hex);
    rc = try_load(in(dir, "g.snap"), NULL, NULL, err, sizeof err); /* its grandparent is missing */
    EXPECT(rc, err, SL_EPARENT, "missing grandparent", hex);
    rc = sl_snapshot_verify_chain(in(dir, "c.snap"), NULL, NULL, NULL, err, sizeof err);
    EXPECT(rc, err, SL_EPARENT, "verify, missing parent", hex);
    /* An explicit parent with another identity: refused, naming what is
     * needed and what the file is. */
    rc = try_load(in(dir, "c.snap"), in(dir, "q.snap"), NULL, err, sizeof err);
    EXPECT(rc, err, SL_EPARENT, "explicit parent q.snap", hex, "q.snap is snapshot", "another");
    rc = sl_snapshot_verify_chain(in(dir, "c.snap"), in(dir, "q.snap"), NULL, NULL, err, sizeof err);
    EXPECT(rc, err, SL_EPARENT, "verify with explicit parent q.snap", hex);
    CHECK_EQ(try_load(in(dir, "c.snap"), other, sc, err, sizeof err), 0);
    snprintf(list, sizeof list, "%s:%s", in(dir, "nothing-here"), other);
    CHECK_EQ(try_load(in(dir, "c.snap"), list, sc, err, sizeof err), 0);
    CHECK_EQ(try_load(in(dir, "g.snap"), other, sg, err, sizeof err), 0); /* C next to G, P found in other */
    setenv("SANDLET_SNAPSHOT_PATH", other, 1);
    CHECK_EQ(try_load(in(dir, "g.snap"), NULL, sg, err, sizeof err), 0);
    unsetenv("SANDLET_SNAPSHOT_PATH");
    /* By its identity's name, when the hint names nothing. */
    char byid[80];
    snprintf(byid, sizeof byid, "%s.snap", hex);
    REQUIRE(rename(in(other, "p.snap"), in(dir, byid)) == 0);
    CHECK_EQ(try_load(in(dir, "c.snap"), NULL, sc, err, sizeof err), 0);
    REQUIRE(rename(in(dir, byid), in(other, "p.snap")) == 0);
    /* Where the name leads to a FIFO (opening it must not block), a
     * directory, or a link to the parent. */
    REQUIRE(mkfifo(in(dir, "p.snap"), 0600) == 0);
    rc = try_load(in(dir, "c.snap"), NULL, NULL, err, sizeof err);
    EXPECT(rc, err, SL_EPARENT, "p.snap is a FIFO", hex);
    REQUIRE(unlink(in(dir, "p.snap")) == 0);
    REQUIRE(mkdir(in(dir, "p.snap"), 0755) == 0);
    rc = try_load(in(dir, "c.snap"), NULL, NULL, err, sizeof err);
    EXPECT(rc, err, SL_EPARENT, "p.snap is a directory", hex);
    REQUIRE(rmdir(in(dir, "p.snap")) == 0);
    REQUIRE(symlink(in(other, "p.snap"), in(dir, "p.snap")) == 0);
    CHECK_EQ(try_load(in(dir, "g.snap"), NULL, sg, err, sizeof err), 0);
    REQUIRE(unlink(in(dir, "p.snap")) == 0);
    /* Another full file where the parent should be: refused, naming what
     * it needs, and the message does not claim q.snap is it. */
    REQUIRE(rename(in(dir, "q.snap"), in(dir, "p.snap")) == 0);
    rc = try_load(in(dir, "c.snap"), NULL, NULL, err, sizeof err);
    EXPECT(rc, err, SL_EPARENT, "p.snap is another snapshot", hex, "p.snap is snapshot");
    rc = sl_snapshot_verify_chain(in(dir, "g.snap"), NULL, NULL, NULL, err, sizeof err);
    EXPECT(rc, err, SL_EPARENT, "verify g.snap with the wrong p.snap", hex);
}

/* The parent file replaced after the child was written: by another
 * snapshot (refused), by the same snapshot saved again (fine: same
 * identity), by a file that claims the identity but holds other pages
 * (load cannot tell, verify can), and while the child is loaded. */
static void test_parent_replaced(void)
{
    char dir[512], err[1024], hex[65];
    REQUIRE(world_dir("replaced", dir, sizeof dir));
    hex_of(sp, hex);
    REQUIRE(sl_snapshot_save(sq, in(dir, "p.snap"), err, sizeof err) == 0);
    int rc = try_load(in(dir, "c.snap"), NULL, NULL, err, sizeof err);
    EXPECT(rc, err, SL_EPARENT, "parent replaced by another snapshot", hex);
    rc = try_load(in(dir, "g.snap"), NULL, NULL, err, sizeof err);
    EXPECT(rc, err, SL_EPARENT, "grandparent replaced by another snapshot", hex);
    REQUIRE(sl_snapshot_save(sp, in(dir, "p.snap"), err, sizeof err) == 0);
    CHECK_EQ(try_load(in(dir, "g.snap"), NULL, sg, err, sizeof err), 0);
    /* One byte of P's pages changed in place: the identity in its header
     * still matches, so load maps it; verify recomputes and refuses. */
    size_t lp;
    uint8_t *fp = read_file(in(dir, "p.snap"), &lp);
    REQUIRE(fp);
    uint64_t at = sl_get64(fp + SF_BLOB_OFFSET) + 2 * SL_PAGE_SIZE + 17;
    fp[at] ^= 0x40;
    REQUIRE(write_file(in(dir, "p.snap"), fp, lp) == 0);
    CHECK_EQ(try_load(in(dir, "c.snap"), NULL, NULL, err, sizeof err), 0);
    rc = sl_snapshot_verify_chain(in(dir, "g.snap"), NULL, NULL, NULL, err, sizeof err);
    EXPECT(rc, err, SL_EHASH, "verify, parent's page changed", "identity mismatch");
    rc = sl_snapshot_verify_file(in(dir, "p.snap"), err, sizeof err);
    EXPECT(rc, err, SL_EHASH, "verify p.snap, its page changed", "p.snap", "identity mismatch");
    fp[at] ^= 0x40;
    REQUIRE(write_file(in(dir, "p.snap"), fp, lp) == 0);
    CHECK_EQ(sl_snapshot_verify_chain(in(dir, "g.snap"), NULL, NULL, NULL, err, sizeof err), 0);
    /* While G is loaded: renaming another file over p.snap leaves the
     * loaded chain on the old file (still whole); writing into the file G
     * maps is a change the chain's watch reports. */
    sl_snapshot *g = NULL;
    REQUIRE(sl_snapshot_load(&g, in(dir, "g.snap"), err, sizeof err) == 0);
    REQUIRE(sl_snapshot_save(sq, in(dir, "q.snap"), err, sizeof err) == 0);
    REQUIRE(rename(in(dir, "q.snap"), in(dir, "p.snap")) == 0);
    sl_errbuf e;
    CHECK_EQ(sl_snapfile_check(g, "a test", &e), 0);
    CHECK(same_pages(g, sg));
    sl_snapshot_free(g);
    REQUIRE(sl_snapshot_save(sp, in(dir, "p.snap"), err, sizeof err) == 0);
    REQUIRE(sl_snapshot_load(&g, in(dir, "g.snap"), err, sizeof err) == 0);
    int fd = open(in(dir, "p.snap"), O_WRONLY);
    REQUIRE(fd >= 0);
    usleep(20000); /* a distinct modification time on coarse clocks */
    CHECK(pwrite(fd, fp + at, 1, (off_t)at) == 1);
    close(fd);
    e.msg[0] = 0;
    rc = sl_snapfile_check(g, "a test", &e);
    EXPECT(rc, e.msg, SL_ECHANGED, "parent written while the grandchild is loaded", "p.snap");
    sl_snapshot_free(g);
    free(fp);
}

/* ---------------- loops and depth ---------------- */

/* The layout pin of the child file image f (what a child of it records). */
static uint64_t pin_of(const uint8_t *f)
{
    return sl_snapfile_layout_pin(sl_get64(f + SF_OWN_SIZE), f + sl_get64(f + SF_RUNS_OFFSET), sl_get64(f + SF_RUNS_SIZE));
}

/* A copy of c.snap that claims identity `id`, names `parent` as its parent
 * and `hint` (6 bytes, as "p.snap") as its file name, written as dir/name. */
static int forge(const char *dir, const char *name, const uint8_t id[SL_HASH_LEN], const uint8_t parent[SL_HASH_LEN],
                 const char *hint)
{
    size_t len;
    uint8_t *f = read_file(in(dir, "c.snap"), &len);
    if (!f)
        return -1;
    memcpy(f + SF_IDENTITY, id, SL_HASH_LEN);
    memcpy(f + SF_PARENT, parent, SL_HASH_LEN);
    /* Its parent is another such copy: the same runs, so the same pin. */
    sl_put64(f + SF_PARENT_LAYOUT, pin_of(f));
    int rc = set_hint(f, len, hint);
    if (!rc) {
        sl_snapfile_reseal(f, len);
        rc = write_file(in(dir, name), f, len);
    }
    free(f);
    return rc;
}

static void test_loops(void)
{
    char dir[512], err[1024];
    REQUIRE(world_dir("loops", dir, sizeof dir));
    /* A child that names itself. */
    uint8_t self[SL_HASH_LEN], a[SL_HASH_LEN], b[SL_HASH_LEN];
    memcpy(self, sl_snapshot_hash(sc), SL_HASH_LEN);
    self[0] ^= 0x11;
    REQUIRE(forge(dir, "s.snap", self, self, "s.snap") == 0);
    int rc = try_load(in(dir, "s.snap"), NULL, NULL, err, sizeof err);
    EXPECT(rc, err, SL_EFORMAT, "a child that names itself", "loop");
    rc = sl_snapshot_verify_chain(in(dir, "s.snap"), NULL, NULL, NULL, err, sizeof err);
    EXPECT(rc, err, SL_EFORMAT, "verify, a child that names itself", "loop");
    /* Two that name each other, and a third that leads into them. */
    memcpy(a, self, SL_HASH_LEN);
    memcpy(b, self, SL_HASH_LEN);
    a[1] ^= 0x22;
    b[1] ^= 0x33;
    REQUIRE(forge(dir, "a.snap", a, b, "b.snap") == 0);
    REQUIRE(forge(dir, "b.snap", b, a, "a.snap") == 0);
    rc = try_load(in(dir, "a.snap"), NULL, NULL, err, sizeof err);
    EXPECT(rc, err, SL_EFORMAT, "two children naming each other", "loop");
    rc = try_load(in(dir, "b.snap"), dir, NULL, err, sizeof err);
    EXPECT(rc, err, SL_EFORMAT, "two children naming each other, explicit dir", "loop");
    uint8_t t[SL_HASH_LEN];
    memcpy(t, self, SL_HASH_LEN);
    t[2] ^= 0x44;
    REQUIRE(forge(dir, "t.snap", t, a, "a.snap") == 0);
    rc = try_load(in(dir, "t.snap"), NULL, NULL, err, sizeof err);
    EXPECT(rc, err, SL_EFORMAT, "a child leading into a loop", "loop");
}

/* 16 children deep is the limit: save_child refuses a 17th, load refuses
 * a file forged to be one. */
static void test_depth(void)
{
    char dir[512], err[1024], name[16], prev[16];
    snprintf(dir, sizeof dir, "%s/depth", g_dir);
    REQUIRE(mkdir(dir, 0755) == 0);
    uint32_t ids[VIS];
    memcpy(ids, ids_p, sizeof ids);
    sl_snapshot *s[SL_CHAIN_MAX + 2] = {0};
    s[0] = sl_snapshot_ref(sp);
    REQUIRE(sl_snapshot_save(s[0], in(dir, "d00.snap"), err, sizeof err) == 0);
    for (unsigned k = 1; k <= SL_CHAIN_MAX + 1; k++) {
        ids[k % VIS] = 200 + k;
        s[k] = snap_of(ids, s[k - 1]);
        REQUIRE(s[k]);
        snprintf(name, sizeof name, "d%02u.snap", k);
        snprintf(prev, sizeof prev, "d%02u.snap", k - 1);
        int rc = sl_snapshot_save_child(s[k], in(dir, prev), in(dir, name), NULL, NULL, err, sizeof err);
        if (k <= SL_CHAIN_MAX) {
            if (rc)
                printf("  save_child %s: %s\n", name, err);
            REQUIRE(rc == 0);
        } else {
            EXPECT(rc, err, SL_ERANGE, "save_child of a 17th", "16");
            CHECK(access(in(dir, name), F_OK) != 0);
        }
    }
    sl_snapshot *l = NULL;
    snprintf(name, sizeof name, "d%02u.snap", SL_CHAIN_MAX);
    REQUIRE(sl_snapshot_load(&l, in(dir, name), err, sizeof err) == 0);
    CHECK_EQ(sl_snapshot_chain_depth(l), SL_CHAIN_MAX);
    touch_pages(l);
    CHECK(same_pages(l, s[SL_CHAIN_MAX]));
    sl_snapshot_free(l);
    CHECK_EQ(sl_snapshot_verify_chain(in(dir, name), NULL, NULL, NULL, err, sizeof err), 0);
    /* d16 relinked under d16 itself: a 17-deep chain. Its runs are d16's,
     * one level off, but the depth is what must be refused first. */
    size_t len;
    uint8_t *f = read_file(in(dir, name), &len);
    REQUIRE(f);
    uint8_t id[SL_HASH_LEN];
    memcpy(id, sl_snapshot_hash(s[SL_CHAIN_MAX]), SL_HASH_LEN);
    memcpy(f + SF_PARENT, id, SL_HASH_LEN);
    id[0] ^= 0x5a;
    memcpy(f + SF_IDENTITY, id, SL_HASH_LEN);
    sl_put64(f + SF_PARENT_LAYOUT, pin_of(f)); /* its parent is d16 itself: the same runs */
    snprintf(prev, sizeof prev, "d%02u.snap", SL_CHAIN_MAX);
    REQUIRE(set_hint(f, len, prev) == 0);
    sl_snapfile_reseal(f, len);
    REQUIRE(write_file(in(dir, "d17.snap"), f, len) == 0);
    int rc = try_load(in(dir, "d17.snap"), NULL, NULL, err, sizeof err);
    EXPECT(rc, err, SL_EFORMAT, "a 17-deep chain", "16");
    rc = sl_snapshot_verify_chain(in(dir, "d17.snap"), NULL, NULL, NULL, err, sizeof err);
    EXPECT(rc, err, SL_EFORMAT, "verify a 17-deep chain", "16");
    free(f);
    for (unsigned k = 0; k <= SL_CHAIN_MAX + 1; k++)
        sl_snapshot_free(s[k]);
}

/* ---------------- a lying content index ---------------- */

enum { I_REVERSED, I_PAST_OWN, I_PAGE_MAX, I_WRONG_PAGE, I_ZERO_HASHES, I_EMPTY, I_ALL_SAME, I_CASES };

/* Edit k of the index of cf; lie: the hash of content that the next
 * snapshot has and this file has not (a trusting save would take it). */
static void edit_index(cf_file *cf, int k, const uint8_t lie[SL_HASH_LEN])
{
    size_t n = cf->n_index;
    uint64_t own = sl_get64(cf->head + SF_OWN_SIZE) / SL_PAGE_SIZE;
    switch (k) {
    case I_REVERSED:
        for (size_t i = 0; i < n / 2; i++) {
            cf_entry t = cf->index[i];
            cf->index[i] = cf->index[n - 1 - i];
            cf->index[n - 1 - i] = t;
        }
        if (n < 2) /* one entry: out of order against a copy of itself */
            cf->index[0].hash[0] ^= 1;
        break;
    case I_PAST_OWN:
        for (size_t i = 0; i < n; i++)
            cf->index[i].page = own + i;
        memcpy(cf->index[0].hash, lie, SL_HASH_LEN);
        break;
    case I_PAGE_MAX:
        memcpy(cf->index[n - 1].hash, lie, SL_HASH_LEN);
        cf->index[n - 1].page = UINT64_MAX;
        break;
    case I_WRONG_PAGE:
        memcpy(cf->index[0].hash, lie, SL_HASH_LEN);
        cf->index[0].page = 0;
        break;
    case I_ZERO_HASHES:
        for (size_t i = 0; i < n; i++)
            memset(cf->index[i].hash, 0, SL_HASH_LEN);
        break;
    case I_EMPTY: cf->n_index = 0; break;
    case I_ALL_SAME:
        for (size_t i = 1; i < n; i++)
            cf->index[i] = cf->index[0];
        memcpy(cf->index[0].hash, lie, SL_HASH_LEN);
        break;
    }
}

static int by_hash(const void *a, const void *b) { return memcmp(a, b, SL_HASH_LEN); }

/* A true index of every own page of the file cf came from (f), sorted. */
static int index_all(cf_file *cf, const uint8_t *f)
{
    uint64_t n = sl_get64(f + SF_OWN_SIZE) / SL_PAGE_SIZE, at = sl_get64(f + SF_BLOB_OFFSET);
    if (cf_reserve(cf, cf->n_runs, n))
        return -1;
    for (uint64_t i = 0; i < n; i++) {
        page_hash(f + at + i * SL_PAGE_SIZE, cf->index[i].hash);
        cf->index[i].page = i;
    }
    cf->n_index = n;
    qsort(cf->index, n, sizeof *cf->index, by_hash);
    return 0;
}

/* The index is advisory: with any lie in it a child file loads as before,
 * and a child saved against it is still exactly the snapshot saved: one
 * that ran on it (its untouched pages taken unread, the rest looked up),
 * and an unrelated one (every page looked up). A full file carries no
 * index (its bytes from the blob on are what its identity hashes): one
 * given an index is refused. */
static void test_index_hostile(void)
{
    char dir[512], err[1024];
    REQUIRE(world_dir("index", dir, sizeof dir));
    REQUIRE(sl_snapshot_save_child(sh, in(dir, "g.snap"), in(dir, "h.snap"), NULL, NULL, err, sizeof err) == 0);
    uint8_t page[SL_PAGE_SIZE], lie_101[SL_HASH_LEN], lie_102[SL_HASH_LEN];
    fill_page(page, 101); /* G's new page: C does not hold it */
    page_hash(page, lie_101);
    fill_page(page, 102); /* H's and U's: neither C nor G holds it */
    page_hash(page, lie_102);
    size_t lp, lc, lg;
    uint8_t *fp = read_file(in(dir, "p.snap"), &lp), *fc = read_file(in(dir, "c.snap"), &lc),
            *fg = read_file(in(dir, "g.snap"), &lg);
    REQUIRE(fp && fc && fg);
    const struct {
        const char *name; /* the file given the lying index */
        const uint8_t *f;
        size_t len;
        const sl_snapshot *self, *next; /* what it is; what is saved against it */
        const uint8_t *lie;
    } cases[] = {
        {"c.snap", fc, lc, sc, sg, lie_101},
        {"g.snap", fg, lg, sg, sh, lie_102},
        {"c.snap", fc, lc, sc, su, lie_102},
    };
    for (int k = 0; k < I_CASES; k++) {
        for (size_t w = 0; w < sizeof cases / sizeof cases[0]; w++) {
            cf_file cf;
            REQUIRE(cf_split(&cf, cases[w].f, cases[w].len) == 0);
            REQUIRE(cf.n_index >= 1);
            edit_index(&cf, k, cases[w].lie);
            REQUIRE(write_cf(&cf, dir, cases[w].name) == 0);
            cf_free(&cf);
            int rc = try_load(in(dir, cases[w].name), NULL, cases[w].self, err, sizeof err);
            if (rc)
                printf("  index edit %d of %s: %s\n", k, cases[w].name, err);
            CHECK_EQ(rc, 0);
            CHECK_EQ(sl_snapshot_verify_chain(in(dir, cases[w].name), NULL, NULL, NULL, err, sizeof err), 0);
            /* h.snap, a child of g.snap written before, still loads */
            CHECK_EQ(try_load(in(dir, "h.snap"), NULL, sh, err, sizeof err), 0);
            rc = sl_snapshot_save_child(cases[w].next, in(dir, cases[w].name), in(dir, "next.snap"), NULL, NULL, err,
                                        sizeof err);
            if (rc)
                printf("  save_child against index edit %d of %s: %s\n", k, cases[w].name, err);
            REQUIRE(rc == 0);
            rc = try_load(in(dir, "next.snap"), NULL, cases[w].next, err, sizeof err);
            if (rc)
                printf("  child of index edit %d of %s: %s\n", k, cases[w].name, err);
            CHECK_EQ(rc, 0);
            CHECK_EQ(sl_snapshot_verify_chain(in(dir, "next.snap"), NULL, NULL, NULL, err, sizeof err), 0);
            REQUIRE(write_file(in(dir, cases[w].name), cases[w].f, cases[w].len) == 0); /* the true file back */
        }
    }
    /* A full file with an index (a true one): refused. */
    cf_file cf;
    REQUIRE(cf_split(&cf, fp, lp) == 0);
    REQUIRE(index_all(&cf, fp) == 0);
    REQUIRE(write_cf(&cf, dir, "x.snap") == 0);
    cf_free(&cf);
    EXPECT(try_load(in(dir, "x.snap"), NULL, NULL, err, sizeof err), err, SL_EFORMAT, "a full file with an index",
           "`index_size`");
    free(fp);
    free(fc);
    free(fg);
}

/* ---------------- versions 3 and 4 ---------------- */

/* p.snap as the version-3 or -4 file of the same snapshot: the later
 * fields zero, no index. */
static uint8_t *old_version(const uint8_t *fp, size_t lp, uint32_t version, size_t *len)
{
    uint64_t end = sl_get64(fp + SF_INDEX_OFFSET);
    if (end > lp)
        return NULL;
    uint8_t *f = malloc(end);
    if (!f)
        return NULL;
    memcpy(f, fp, end);
    sl_put32(f + SF_VERSION, version);
    sl_put64(f + SF_OWN_SIZE, 0);
    sl_put64(f + SF_RUNS_OFFSET, 0);
    sl_put64(f + SF_RUNS_SIZE, 0);
    sl_put64(f + SF_INDEX_OFFSET, 0);
    sl_put64(f + SF_INDEX_SIZE, 0);
    sl_put64(f + SF_FILE_SIZE, end);
    sl_snapfile_reseal(f, end);
    *len = end;
    return f;
}

static void test_old_versions(void)
{
    char dir[512], err[1024], want[32];
    REQUIRE(world_dir("old", dir, sizeof dir));
    size_t lp;
    uint8_t *fp = read_file(in(dir, "p.snap"), &lp);
    REQUIRE(fp);
    for (uint32_t v = 3; v <= 4; v++) {
        size_t len;
        uint8_t *f = old_version(fp, lp, v, &len);
        REQUIRE(f);
        REQUIRE(write_file(in(dir, "old.snap"), f, len) == 0);
        int rc = try_load(in(dir, "old.snap"), NULL, sp, err, sizeof err);
        if (rc)
            printf("  version %u: %s\n", v, err);
        CHECK_EQ(rc, 0);
        CHECK_EQ(sl_snapshot_verify_chain(in(dir, "old.snap"), NULL, NULL, NULL, err, sizeof err), 0);
        /* A child of the old file: its index is computed, not read. */
        REQUIRE(sl_snapshot_save_child(sc, in(dir, "old.snap"), in(dir, "oc.snap"), NULL, NULL, err, sizeof err) ==
                0);
        CHECK_EQ(try_load(in(dir, "oc.snap"), NULL, sc, err, sizeof err), 0);
        /* Each version-5 field alone, non-zero: refused. */
        static const struct {
            unsigned off;
            int width;
            uint64_t val;
        } fields[] = {
            {SF_PARENT_NAME_SIZE, 4, 1},  {SF_PARENT_NAME_OFFSET, 4, 0x400}, {SF_OWN_SIZE, 8, 0},
            {SF_RUNS_OFFSET, 8, 0},       {SF_RUNS_SIZE, 8, 24},             {SF_INDEX_OFFSET, 8, 0},
            {SF_INDEX_SIZE, 8, 40},       {SF_PARENT_LAYOUT, 8, 1},          {SF_PARENT_LAYOUT + 7, 1, 0x80},
        };
        uint8_t *g = malloc(len);
        REQUIRE(g);
        snprintf(want, sizeof want, "version %u", v);
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
            memcpy(g, f, len);
            uint64_t val = fields[i].val;
            if (fields[i].off == SF_OWN_SIZE)
                val = sl_get64(f + SF_BLOB_SIZE); /* what a full file says: still not version 4 */
            else if (fields[i].off == SF_RUNS_OFFSET || fields[i].off == SF_INDEX_OFFSET)
                val = len;
            if (fields[i].width == 1)
                g[fields[i].off] = (uint8_t)val;
            else if (fields[i].width == 4)
                sl_put32(g + fields[i].off, (uint32_t)val);
            else
                sl_put64(g + fields[i].off, val);
            sl_snapfile_reseal(g, len);
            REQUIRE(write_file(in(dir, "old.snap"), g, len) == 0);
            int rc2 = try_load(in(dir, "old.snap"), NULL, NULL, err, sizeof err);
            char what[64];
            snprintf(what, sizeof what, "version %u, field at 0x%x", v, fields[i].off);
            EXPECT(rc2, err, SL_EFORMAT, what, want);
        }
        /* The child bit too (with a parent, which version 4 allows). */
        if (v == 4) {
            memcpy(g, f, len);
            sl_put32(g + SF_LINEAGE_FLAGS, SL_SNAPFILE_HAS_PARENT | SL_SNAPFILE_CHILD);
            memset(g + SF_PARENT, 0xA5, SL_HASH_LEN);
            sl_snapfile_reseal(g, len);
            REQUIRE(write_file(in(dir, "old.snap"), g, len) == 0);
            EXPECT(try_load(in(dir, "old.snap"), NULL, NULL, err, sizeof err), err, SL_EFORMAT,
                   "version 4 with the child bit", "`lineage_flags`");
        }
        free(g);
        free(f);
    }
    free(fp);
}

int main(void)
{
    if (!t_tmpdir(g_dir, sizeof g_dir, "test_snapchild"))
        return 1;
    unsetenv("SANDLET_SNAPSHOT_PATH");
    sp = snap_of(ids_p, NULL);
    sc = sp ? snap_of(ids_c, sp) : NULL;
    sg = sc ? snap_of(ids_g, sc) : NULL;
    sq = snap_of(ids_q, NULL);
    sh = sg ? snap_of(ids_h, sg) : NULL;
    su = snap_of(ids_u, NULL);
    if (!sp || !sc || !sg || !sq || !sh || !su) {
        printf("FAIL test_snapchild: the test snapshots could not be made\n");
        return 1;
    }
    RUN(test_chain_loads);
    RUN(test_file_layout);
    RUN(test_runs_hostile);
    RUN(test_header_hostile);
    RUN(test_parent_mismatch);
    RUN(test_parent_replaced);
    RUN(test_loops);
    RUN(test_depth);
    RUN(test_index_hostile);
    RUN(test_old_versions);
    sl_snapshot_free(sp);
    sl_snapshot_free(sc);
    sl_snapshot_free(sg);
    sl_snapshot_free(sq);
    sl_snapshot_free(sh);
    sl_snapshot_free(su);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        printf("  (could not remove %s)\n", g_dir);
    T_EXIT();
}
