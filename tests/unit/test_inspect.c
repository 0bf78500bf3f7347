/* `sandlet snapshot inspect` and large pages (issue 9, fault 4): every range
 * the address-space map prints must have the backing the snapshot engine
 * would use for it, whatever the size of the leaf that maps it.
 *
 * Each test saves a small compacted snapshot, replaces the page-table part of
 * its blob with hand-built tables (4 KiB leaves and large leaves at every
 * level: 2 MiB and 1 GiB on amd64, 4 MiB on i686), reseals the file and
 * compares the lines of sl_snapshot_inspect, the API the CLI uses, with an
 * independent computation over the same tables: sl_pt_translate, which
 * reports every mapped 4 KiB page, and a classification of each page by its
 * GVA (the scratch window, mapped afresh by every restore) and GPA (blob,
 * page tables, scratch, unbacked), as sl_snapshot_from_memory copies them.
 * Every printed page must be such a page with the same kind, permissions and
 * backing, every such page must be printed exactly once, in ascending order,
 * and two adjacent ranges must differ in something. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hash.h"
#include "pt.h"
#include "snapfile.h"
#include "snapshot.h"
#include "t.h"
#include "../common/sim.h"

#include "../common/files.h"

/* ---------------- a snapshot file with hand-built tables ---------------- */

#define GiB (1ull << 30)
#define MiB (1ull << 20)
#define KiB 1024ull

typedef struct tfile {
    unsigned arch;
    const char *name;
    uint8_t *f;
    size_t len;
    uint64_t blob_off, vis, pt_size, pt_gpa, next;
    uint64_t scratch_gpa, scratch_gva, scratch_size, io;
    uint64_t root;
} tfile;

static void *tf_page(void *ctx, uint64_t gpa)
{
    tfile *t = ctx;
    if (gpa & (SL_PAGE_SIZE - 1))
        return NULL;
    if (gpa >= SL_BASE_ADDRESS && gpa - SL_BASE_ADDRESS < t->vis)
        return t->f + t->blob_off + (gpa - SL_BASE_ADDRESS);
    if (gpa >= t->pt_gpa && gpa - t->pt_gpa < t->pt_size)
        return t->f + t->blob_off + t->vis + (gpa - t->pt_gpa);
    return NULL;
}

static bool tf_alloc(void *ctx, uint64_t *gpa)
{
    tfile *t = ctx;
    if (t->next - t->pt_gpa >= t->pt_size)
        return false;
    *gpa = t->next;
    t->next += SL_PAGE_SIZE;
    memset(tf_page(t, *gpa), 0, SL_PAGE_SIZE);
    return true;
}

static sl_pt_mem tf_mem(tfile *t)
{
    sl_pt_mem m = {.ctx = t, .page = tf_page, .alloc = tf_alloc};
    return m;
}

/* A saved snapshot of `vis_pages` guest-visible pages (1 MiB scratch), whose
 * page-table part is then emptied down to one zeroed root table. The
 * simulated guest maps its pages at 0x400000 and aliases of the first page
 * in 40 distant places, so that compaction leaves room for many tables. */
static bool tf_new(tfile *t, unsigned arch, uint64_t vis_pages, const char *name)
{
    memset(t, 0, sizeof *t);
    t->arch = arch;
    t->name = name;
    guest g;
    if (!guest_setup(&g, arch, vis_pages, 1 * MiB, 1))
        return false;
    sl_pt_mem m = g_mem(&g);
    sl_perm p = {.kind = SL_MAP_BASIC, .readable = true, .writable = true, .executable = false};
    int rc = sl_pt_map(arch, &m, g.roots[0], 0x400000, SL_BASE_ADDRESS, vis_pages * SL_PAGE_SIZE, p);
    for (uint64_t i = 1; i <= 40 && !rc; i++)
        rc = sl_pt_map(arch, &m, g.roots[0], arch == SL_ARCH_I686 ? 0x10000000 + i * 4 * MiB : i << 39,
                       SL_BASE_ADDRESS, SL_PAGE_SIZE, p);
    sl_snapshot *s = NULL;
    sl_errbuf e;
    sl_guest_state st = {.layout = &g.l, .snap_mem = g.snap, .snap_size = g.snap_size, .scratch = g.scratch,
                         .roots = g.roots, .n_roots = 1, .cur_root = 0, .stack_top = 0x7ff000,
                         .next_kind = SL_NEXT_CALL, .next_addr = 0x400010, .generation = 1};
    if (!rc)
        rc = sl_snapshot_from_memory(&s, &st, &e);
    guest_free(&g);
    if (rc) {
        printf("  from_memory: %d\n", rc);
        return false;
    }
    char err[256];
    rc = sl_snapshot_save(s, tpath(name), err, sizeof err);
    sl_snapshot_free(s);
    if (rc) {
        printf("  save: %s\n", err);
        return false;
    }
    t->f = read_file(tpath(name), &t->len);
    if (!t->f)
        return false;
    t->blob_off = rd64(t->f, SF_BLOB_OFFSET);
    t->vis = rd64(t->f, SF_VISIBLE_SIZE);
    t->pt_size = rd64(t->f, SF_PT_SIZE);
    t->pt_gpa = rd64(t->f, SF_PT_GPA);
    t->scratch_gpa = rd64(t->f, SF_SCRATCH_GPA);
    t->scratch_gva = rd64(t->f, SF_SCRATCH_GVA);
    t->scratch_size = rd64(t->f, SF_SCRATCH_SIZE);
    t->io = rd64(t->f, SF_INPUT_SIZE) + rd64(t->f, SF_OUTPUT_SIZE);
    if (t->vis != vis_pages * SL_PAGE_SIZE || t->pt_size < 32 * SL_PAGE_SIZE) {
        printf("  unexpected sizes: visible 0x%" PRIx64 ", tables 0x%" PRIx64 "\n", t->vis, t->pt_size);
        return false;
    }
    /* Fresh tables: the root first, where the header says it is. */
    memset(t->f + t->blob_off + t->vis, 0, t->pt_size);
    t->next = t->pt_gpa;
    if (!tf_alloc(t, &t->root))
        return false;
    wr64(t->f, SF_ROOTS, t->root);
    return true;
}

static void tf_free(tfile *t) { free(t->f); }

static sl_perm perm(unsigned kind, bool w, bool x, bool u)
{
    sl_perm p = {.kind = (uint8_t)kind, .readable = true, .writable = w, .executable = x, .user = u};
    return p;
}

static bool tf_map(tfile *t, uint64_t gva, uint64_t gpa, uint64_t len, sl_perm p)
{
    sl_pt_mem m = tf_mem(t);
    int rc = sl_pt_map(t->arch, &m, t->root, gva, gpa, len, p);
    if (rc)
        printf("  sl_pt_map(0x%" PRIx64 ") = %d\n", gva, rc);
    return rc == 0;
}

/* The scratch window as every snapshot maps it: input and output, the guard
 * page, then the rest, read-write and no-execute. */
static bool tf_window(tfile *t)
{
    return tf_map(t, t->scratch_gva, t->scratch_gpa, t->io, perm(SL_MAP_BASIC, true, false, true)) &&
           tf_map(t, t->scratch_gva + t->io + SL_PAGE_SIZE, t->scratch_gpa + t->io + SL_PAGE_SIZE,
                  t->scratch_size - t->io - SL_PAGE_SIZE, perm(SL_MAP_BASIC, true, false, false));
}

#define E_P SL_PTE_P
#define E_RW SL_PTE_RW
#define E_US SL_PTE_US
#define E_PS SL_PTE_PS
#define E_COW SL_PTE_COW
#define E_NX SL_PTE_NX

/* Writes a raw entry at table level `depth` (0 = the root) for `gva`: with
 * E_PS above the last level, a large leaf (1 GiB at depth 1, 2 MiB at depth 2
 * on amd64; 4 MiB at depth 0 on i686). Tables on the way are created. */
static bool tf_entry(tfile *t, unsigned depth, uint64_t gva, uint64_t entry)
{
    sl_pt_mem m = tf_mem(t);
    uint64_t table;
    int rc = sl_pt_table_at(t->arch, &m, t->root, gva, depth, true, &table);
    if (rc) {
        printf("  sl_pt_table_at(0x%" PRIx64 ", %u) = %d\n", gva, depth, rc);
        return false;
    }
    uint8_t *page = tf_page(t, table);
    if (t->arch == SL_ARCH_I686) {
        unsigned idx = (unsigned)(gva >> (12 + 10 * (1 - depth))) & 1023;
        uint32_t v = (uint32_t)entry;
        memcpy(page + idx * 4, &v, 4);
    } else {
        unsigned idx = (unsigned)(gva >> (12 + 9 * (3 - depth))) & 511;
        memcpy(page + idx * 8, &entry, 8);
    }
    return true;
}

/* A large leaf of the size its level implies. */
static bool tf_large(tfile *t, unsigned depth, uint64_t gva, uint64_t gpa, uint64_t flags)
{
    return tf_entry(t, depth, gva, gpa | flags | E_P | E_PS);
}

/* Identity and checksum, so that the file is valid (verify passes), then
 * the file itself. */
static bool tf_write(tfile *t)
{
    uint8_t id[SL_HASH_LEN];
    sl_hasher *h = sl_hasher_new();
    if (!h)
        return false;
    sl_hasher_update(h, t->f + t->blob_off, t->len - t->blob_off);
    sl_hasher_final(h, id);
    memcpy(t->f + SF_IDENTITY, id, SL_HASH_LEN);
    if (sl_snapfile_reseal(t->f, t->len) != 0 || write_file(tpath(t->name), t->f, t->len) != 0)
        return false;
    char err[256];
    if (sl_snapshot_verify_file(tpath(t->name), err, sizeof err) != 0) {
        printf("  verify: %s\n", err);
        return false;
    }
    return true;
}

/* ---------------- what the engine does with each page ---------------- */

enum cls { C_BLOB, C_TABLES, C_SCRATCH, C_NONE, C_WINDOW };
static const char *const cls_name[] = {"blob", "page tables", "scratch", "unbacked", "scratch window"};

typedef struct opage {
    uint64_t gva, gpa;
    sl_perm perm;
    uint8_t cls;
} opage;

typedef struct oracle {
    const tfile *t;
    opage *p;
    size_t n, cap;
    bool oom;
} oracle;

/* Independent of inspect: by GVA the scratch window (which restore maps
 * afresh, so compaction skips it), else by GPA the memory a restored sandbox
 * has there: the visible blob at 0x4000, the page tables restore copies to
 * pt_gpa, the rest of scratch, or nothing. */
static uint8_t classify(const tfile *t, uint64_t gva, uint64_t gpa)
{
    if (gva >= t->scratch_gva && gva - t->scratch_gva < t->scratch_size)
        return C_WINDOW;
    if (gpa >= SL_BASE_ADDRESS && gpa - SL_BASE_ADDRESS < t->vis)
        return C_BLOB;
    if (gpa >= t->pt_gpa && gpa - t->pt_gpa < t->pt_size)
        return C_TABLES;
    if (gpa >= t->scratch_gpa && gpa - t->scratch_gpa < t->scratch_size)
        return C_SCRATCH;
    return C_NONE;
}

static bool o_visit(void *arg, const sl_mapping *m)
{
    oracle *o = arg;
    if (o->n == o->cap) {
        size_t ncap = o->cap ? o->cap * 2 : 4096;
        opage *np = realloc(o->p, ncap * sizeof *np);
        if (!np)
            return o->oom = true, false;
        o->p = np;
        o->cap = ncap;
    }
    o->p[o->n++] = (opage){.gva = m->gva, .gpa = m->gpa, .perm = m->perm, .cls = classify(o->t, m->gva, m->gpa)};
    return true;
}

static bool oracle_build(oracle *o, tfile *t)
{
    memset(o, 0, sizeof *o);
    o->t = t;
    sl_pt_mem m = tf_mem(t);
    m.alloc = NULL;
    int rc;
    if (t->arch == SL_ARCH_I686) {
        rc = sl_pt_translate(t->arch, &m, t->root, 0, 1ull << 32, o_visit, o);
    } else {
        rc = sl_pt_translate(t->arch, &m, t->root, 0, 1ull << 47, o_visit, o);
        if (!rc)
            rc = sl_pt_translate(t->arch, &m, t->root, 0xFFFF800000000000ull, 1ull << 47, o_visit, o);
    }
    return rc == 0 && !o->oom;
}

/* ---------------- inspect's lines ---------------- */


typedef struct mline {
    uint64_t start, end, pages;
    uint8_t cls;
    char kind[4];
    bool w, x, u;
} mline;

/* "  0x<start>-0x<end> <kind> r<w><x>[ user] <backing> (N page[s])" or
 * "  0x<start>-0x<end> scratch window (N pages, not in the file)". */
static bool parse_line(const char *s, mline *ml)
{
    int off = 0;
    memset(ml, 0, sizeof *ml);
    if (sscanf(s, "  0x%" SCNx64 "-0x%" SCNx64 " %n", &ml->start, &ml->end, &off) != 2 || !off)
        return false;
    s += off;
    if (!strncmp(s, "scratch window (", 16)) {
        ml->cls = C_WINDOW;
        return sscanf(s + 16, "%" SCNu64 " page", &ml->pages) == 1;
    }
    if (strlen(s) < 8 || s[3] != ' ' || s[4] != 'r')
        return false;
    memcpy(ml->kind, s, 3);
    ml->w = s[5] == 'w';
    ml->x = s[6] == 'x';
    s += 7;
    if (!strncmp(s, " user", 5)) {
        ml->u = true;
        s += 5;
    }
    if (*s++ != ' ')
        return false;
    const char *paren = strstr(s, " (");
    if (!paren)
        return false;
    ml->cls = 255;
    for (unsigned c = C_BLOB; c <= C_NONE; c++)
        if ((size_t)(paren - s) == strlen(cls_name[c]) && !strncmp(s, cls_name[c], strlen(cls_name[c])))
            ml->cls = (uint8_t)c;
    return ml->cls != 255 && sscanf(paren + 2, "%" SCNu64 " page", &ml->pages) == 1;
}

static const char *kind_of(const sl_perm *p)
{
    if (p->kind == SL_MAP_COW)
        return "cow";
    return p->writable ? "rw " : "ro ";
}

static bool same_attrs(const mline *a, const mline *b)
{
    if (a->cls == C_WINDOW || b->cls == C_WINDOW)
        return a->cls == b->cls;
    return a->cls == b->cls && !strcmp(a->kind, b->kind) && a->w == b->w && a->x == b->x && a->u == b->u;
}

/* The first oracle page at or above `gva` (the pages ascend). */
static size_t lower_bound(const oracle *o, uint64_t gva)
{
    size_t lo = 0, hi = o->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (o->p[mid].gva < gva)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Runs inspect on the file and checks its map against the oracle. Returns
 * inspect's output (the caller frees it) for further literal checks. */
static char *tf_check(tfile *t)
{
    if (!tf_write(t)) {
        CHECK(!"file written and verified");
        return NULL;
    }
    oracle o;
    if (!oracle_build(&o, t)) {
        CHECK(!"oracle built");
        free(o.p);
        return NULL;
    }
    lines out = {0};
    char err[256];
    int rc = sl_snapshot_inspect(tpath(t->name), collect, &out, err, sizeof err);
    CHECK_EQ(rc, 0);
    if (rc || !out.buf) {
        printf("  inspect: %s\n", err);
        free(o.p);
        free(out.buf);
        return NULL;
    }
    size_t idx = 0, nlines = 0, bad = 0;
    bool in_space = false, have_prev = false;
    mline prev = {0};
    char *save = NULL, *copy = strdup(out.buf);
    for (char *ln = strtok_r(copy, "\n", &save); ln && bad < 8; ln = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(ln, "address space ", 14)) {
            CHECK(!in_space); /* one space in these files */
            in_space = true;
            continue;
        }
        if (!in_space)
            continue;
        mline ml;
        if (!parse_line(ln, &ml)) {
            printf("  unparsable map line: %s\n", ln);
            bad++;
            continue;
        }
        nlines++;
        /* The printed count is the range's length (modulo 2^64: a range may
         * end at the very top of the amd64 space). */
        if (ml.pages != (ml.end - ml.start) / SL_PAGE_SIZE || ml.pages == 0) {
            printf("  range length and page count disagree: %s\n", ln);
            bad++;
        }
        if (have_prev && prev.end == ml.start && same_attrs(&prev, &ml)) {
            printf("  adjacent ranges with the same attributes: %s\n", ln);
            bad++;
        }
        /* Every page the engine has before this range was printed already. */
        size_t at = lower_bound(&o, ml.start);
        if (at < idx) {
            printf("  %s: overlaps or precedes the range before it\n", ln);
            bad++;
        } else if (at > idx) {
            printf("  %s: the engine's pages from 0x%" PRIx64 " (GPA 0x%" PRIx64 ", %s) to here are not printed\n",
                   ln, o.p[idx].gva, o.p[idx].gpa, cls_name[o.p[idx].cls]);
            bad++;
        }
        idx = at;
        for (uint64_t k = 0; k < ml.pages; k++) {
            uint64_t va = ml.start + k * SL_PAGE_SIZE;
            if (idx >= o.n || o.p[idx].gva != va) {
                printf("  %s: page 0x%" PRIx64 " is printed but the engine maps nothing there\n", ln, va);
                bad++;
                break;
            }
            const opage *op = &o.p[idx++];
            bool ok = op->cls == ml.cls;
            if (ok && ml.cls != C_WINDOW)
                ok = !strcmp(kind_of(&op->perm), ml.kind) && op->perm.writable == ml.w &&
                     op->perm.executable == ml.x && op->perm.user == ml.u;
            if (!ok) {
                printf("  %s: page 0x%" PRIx64 " (GPA 0x%" PRIx64 ") is %s r%c%c%s %s for the engine\n", ln, va,
                       op->gpa, kind_of(&op->perm), op->perm.writable ? 'w' : '-',
                       op->perm.executable ? 'x' : '-', op->perm.user ? " user" : "", cls_name[op->cls]);
                bad++;
                break;
            }
        }
        if (ml.end > ml.start || ml.end == 0)
            idx = ml.end ? lower_bound(&o, ml.end) : o.n;
        prev = ml;
        have_prev = true;
    }
    free(copy);
    CHECK(in_space);
    CHECK_EQ(bad, 0);
    if (idx < o.n)
        printf("  the engine's pages from 0x%" PRIx64 " (GPA 0x%" PRIx64 ", %s) on are not printed\n",
               o.p[idx].gva, o.p[idx].gpa, cls_name[o.p[idx].cls]);
    CHECK_EQ(idx, o.n);
    CHECK(nlines > 0);
    if (t_failed_now)
        printf("%s", out.buf);
    free(o.p);
    return out.buf;
}

/* Whether `line` (a whole line, without the newline) is in the output. */
static bool has_line(const char *out, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = out; p && (p = strstr(p, line)); p++)
        if ((p == out || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

#define CHECK_LINE(out, line)                                                                      \
    do {                                                                                           \
        if (!(out) || !has_line((out), (line))) {                                                  \
            printf("  missing line: \"%s\"\n", (line));                                            \
            t_failed_now = 1;                                                                      \
        }                                                                                          \
    } while (0)

/* ---------------- tests ---------------- */

/* What works today: only 4 KiB leaves, as compaction writes them (the file
 * as saved, with the simulated guest's mappings). */
static void test_4k_only_as_saved(void)
{
    for (unsigned a = SL_ARCH_AMD64; a <= SL_ARCH_I686; a++) {
        tfile t;
        REQUIRE(tf_new(&t, a, 20, a == SL_ARCH_I686 ? "4k32.snap" : "4k64.snap"));
        /* Put back a plain 4 KiB map: blob pages, a table page, scratch, GPAs
         * nothing backs, and the window. */
        REQUIRE(tf_window(&t));
        REQUIRE(tf_map(&t, 0x400000, SL_BASE_ADDRESS, 20 * SL_PAGE_SIZE, perm(SL_MAP_BASIC, false, true, true)));
        REQUIRE(tf_map(&t, 0x400000 + 20 * SL_PAGE_SIZE, SL_BASE_ADDRESS, 2 * SL_PAGE_SIZE,
                       perm(SL_MAP_COW, false, false, true)));
        REQUIRE(tf_map(&t, 0x500000, t.pt_gpa, SL_PAGE_SIZE, perm(SL_MAP_BASIC, true, false, false)));
        REQUIRE(tf_map(&t, 0x501000, t.scratch_gpa, 2 * SL_PAGE_SIZE, perm(SL_MAP_BASIC, true, false, false)));
        REQUIRE(tf_map(&t, 0x503000, 0x80000000, 3 * SL_PAGE_SIZE, perm(SL_MAP_BASIC, true, false, false)));
        char *out = tf_check(&t), line[200];
        char nx = a == SL_ARCH_I686 ? 'x' : '-'; /* i686 has no NX */
        CHECK_LINE(out, "  0x0000000000400000-0x0000000000414000 ro  r-x user blob (20 pages)");
        snprintf(line, sizeof line, "  0x0000000000414000-0x0000000000416000 cow r-%c user blob (2 pages)", nx);
        CHECK_LINE(out, line);
        snprintf(line, sizeof line, "  0x0000000000500000-0x0000000000501000 rw  rw%c page tables (1 page)", nx);
        CHECK_LINE(out, line);
        snprintf(line, sizeof line, "  0x0000000000501000-0x0000000000503000 rw  rw%c scratch (2 pages)", nx);
        CHECK_LINE(out, line);
        snprintf(line, sizeof line, "  0x0000000000503000-0x0000000000506000 rw  rw%c unbacked (3 pages)", nx);
        CHECK_LINE(out, line);
        free(out);
        tf_free(&t);
    }
}

/* amd64: a 1 GiB leaf at GPA 0 covers the whole blob (and the unmapped
 * pages below 0x4000, and nothing above it). */
static void test_amd64_1g_over_blob(void)
{
    tfile t;
    REQUIRE(tf_new(&t, SL_ARCH_AMD64, 64, "g1blob.snap"));
    REQUIRE(tf_window(&t));
    REQUIRE(tf_large(&t, 1, 1 * GiB, 0, E_RW | E_US));
    char *out = tf_check(&t);
    CHECK_LINE(out, "  0x0000000040000000-0x0000000040004000 rw  rwx user unbacked (4 pages)");
    CHECK_LINE(out, "  0x0000000040004000-0x0000000040044000 rw  rwx user blob (64 pages)");
    CHECK_LINE(out, "  0x0000000040044000-0x0000000080000000 rw  rwx user unbacked (262076 pages)");
    free(out);
    tf_free(&t);
}

/* amd64: a 2 MiB leaf that runs into scratch (unbacked, scratch, the page
 * tables inside scratch, scratch again), and a 1 GiB leaf that ends at the
 * top of the 36-bit physical space, scratch included. */
static void test_amd64_2m_and_1g_into_scratch(void)
{
    tfile t;
    REQUIRE(tf_new(&t, SL_ARCH_AMD64, 8, "m2scr.snap"));
    REQUIRE(tf_window(&t));
    uint64_t gpa2m = (t.scratch_gpa + t.scratch_size - 2 * MiB) & ~(2 * MiB - 1);
    REQUIRE(tf_large(&t, 2, 0x200000, gpa2m, E_RW | E_NX));
    uint64_t gpa1g = (t.scratch_gpa + t.scratch_size - GiB) & ~(GiB - 1);
    REQUIRE(tf_large(&t, 1, 0x8000000000ull, gpa1g, E_NX | E_US));
    char *out = tf_check(&t);
    char line[200];
    uint64_t va = 0x200000 + (t.pt_gpa - gpa2m);
    snprintf(line, sizeof line, "  0x%016" PRIx64 "-0x%016" PRIx64 " rw  rw- page tables (%" PRIu64 " pages)", va,
             va + t.pt_size, t.pt_size / SL_PAGE_SIZE);
    CHECK_LINE(out, line);
    va = 0x8000000000ull + (t.pt_gpa - gpa1g);
    snprintf(line, sizeof line, "  0x%016" PRIx64 "-0x%016" PRIx64 " ro  r-- user page tables (%" PRIu64 " pages)",
             va, va + t.pt_size, t.pt_size / SL_PAGE_SIZE);
    CHECK_LINE(out, line);
    free(out);
    tf_free(&t);
}

/* amd64: a 2 MiB leaf whose second half lies beyond guest memory (the blob
 * ends at 1 MiB), and one wholly beyond the physical space the layout uses. */
static void test_amd64_2m_half_beyond(void)
{
    tfile t;
    REQUIRE(tf_new(&t, SL_ARCH_AMD64, (1 * MiB - SL_BASE_ADDRESS) / SL_PAGE_SIZE, "m2half.snap"));
    REQUIRE(tf_window(&t));
    REQUIRE(tf_large(&t, 2, 0x40000000, 0, E_US));
    REQUIRE(tf_large(&t, 2, 0x40200000, 1ull << 40, E_US));
    char *out = tf_check(&t);
    CHECK_LINE(out, "  0x0000000040000000-0x0000000040004000 ro  r-x user unbacked (4 pages)");
    CHECK_LINE(out, "  0x0000000040004000-0x0000000040100000 ro  r-x user blob (252 pages)");
    CHECK_LINE(out, "  0x0000000040100000-0x0000000040400000 ro  r-x user unbacked (768 pages)");
    free(out);
    tf_free(&t);
}

/* amd64: 4 KiB and large leaves side by side, merged where the kind,
 * permissions and backing agree, split where they do not; a PS entry at
 * the top level (reserved: it maps nothing) and at the last level (bit 7 is
 * PAT there: a 4 KiB leaf). */
static void test_amd64_mixed(void)
{
    tfile t;
    REQUIRE(tf_new(&t, SL_ARCH_AMD64, 16, "mixed64.snap"));
    REQUIRE(tf_window(&t));
    sl_perm rwu = perm(SL_MAP_BASIC, true, true, true);
    /* 4 KiB blob pages right before a 2 MiB leaf into the blob's end. */
    REQUIRE(tf_map(&t, 0x1ff000, SL_BASE_ADDRESS, SL_PAGE_SIZE, rwu));
    REQUIRE(tf_large(&t, 2, 0x200000, 0, E_RW | E_US));
    /* Then 4 KiB leaves continuing the 2 MiB leaf's unbacked tail. */
    REQUIRE(tf_map(&t, 0x400000, 0x10000000, 4 * SL_PAGE_SIZE, rwu));
    /* A 1 GiB leaf followed by 2 MiB leaves in the next 1 GiB. */
    REQUIRE(tf_large(&t, 1, 0x40000000, 0, E_US));
    REQUIRE(tf_large(&t, 2, 0x80000000, t.scratch_gpa & ~(2 * MiB - 1), E_US));
    REQUIRE(tf_large(&t, 2, 0x80200000, 0, E_US | E_COW));
    REQUIRE(tf_entry(&t, 3, 0x80400000, (SL_BASE_ADDRESS + 0x3000) | E_P | E_PS | E_US));
    /* Reserved PS in the PML4: nothing. */
    REQUIRE(tf_entry(&t, 0, 0x100000000000ull, E_P | E_PS | E_RW | E_US));
    char *out = tf_check(&t);
    CHECK_LINE(out, "  0x00000000001ff000-0x0000000000200000 rw  rwx user blob (1 page)");
    CHECK_LINE(out, "  0x0000000000200000-0x0000000000204000 rw  rwx user unbacked (4 pages)");
    CHECK_LINE(out, "  0x0000000000204000-0x0000000000214000 rw  rwx user blob (16 pages)");
    CHECK_LINE(out, "  0x0000000000214000-0x0000000000404000 rw  rwx user unbacked (496 pages)");
    CHECK(out && !strstr(out, "0x0000100000000000"));
    free(out);
    tf_free(&t);
}

/* amd64: large leaves with the copy-on-write bit (and RW clear), at 1 GiB
 * and 2 MiB, over the blob; and with RW set, where bit 9 means nothing. */
static void test_amd64_cow_large(void)
{
    tfile t;
    REQUIRE(tf_new(&t, SL_ARCH_AMD64, 32, "cow64.snap"));
    REQUIRE(tf_window(&t));
    REQUIRE(tf_large(&t, 1, 3 * GiB, 0, E_COW | E_US | E_NX));
    REQUIRE(tf_large(&t, 2, 0x600000, 0, E_COW | E_NX));
    REQUIRE(tf_large(&t, 2, 0x800000, 0, E_COW | E_RW | E_NX));
    char *out = tf_check(&t);
    CHECK_LINE(out, "  0x00000000c0004000-0x00000000c0024000 cow r-- user blob (32 pages)");
    CHECK_LINE(out, "  0x0000000000604000-0x0000000000624000 cow r-- blob (32 pages)");
    CHECK_LINE(out, "  0x0000000000804000-0x0000000000824000 rw  rw- blob (32 pages)");
    free(out);
    tf_free(&t);
}

/* amd64: a 2 MiB leaf at the very top of the address space replaces the
 * scratch window's last table: most of it is the window, the part below
 * and the last page (above the window) are backed by the blob. */
static void test_amd64_2m_top_straddles_window(void)
{
    tfile t;
    REQUIRE(tf_new(&t, SL_ARCH_AMD64, 16, "top64.snap"));
    REQUIRE(tf_window(&t));
    REQUIRE(tf_large(&t, 2, 0xFFFFFFFFFFE00000ull, 0, E_RW));
    REQUIRE(tf_large(&t, 2, 0xFFFFFFFFFFC00000ull, 0, E_RW));
    char *out = tf_check(&t);
    CHECK_LINE(out, "  0xffffffffffc00000-0xffffffffffc04000 rw  rwx unbacked (4 pages)");
    CHECK_LINE(out, "  0xffffffffffc04000-0xffffffffffc14000 rw  rwx blob (16 pages)");
    free(out);
    tf_free(&t);
}

/* i686 with PSE: 4 MiB leaves over the blob (half of it beyond guest
 * memory), into scratch (which is identity-mapped, so the leaf's GVAs also
 * straddle the window), with the copy-on-write bit, next to 4 KiB leaves. */
static void test_i686_4m(void)
{
    tfile t;
    REQUIRE(tf_new(&t, SL_ARCH_I686, (2 * MiB - SL_BASE_ADDRESS) / SL_PAGE_SIZE, "m4.snap"));
    REQUIRE(tf_window(&t));
    REQUIRE(tf_large(&t, 0, 0x00400000, 0, E_RW | E_US));
    REQUIRE(tf_map(&t, 0x00800000, SL_BASE_ADDRESS, 8 * SL_PAGE_SIZE, perm(SL_MAP_BASIC, true, true, true)));
    REQUIRE(tf_large(&t, 0, 0x00c00000, 0, E_COW | E_US));
    REQUIRE(tf_large(&t, 0, 0x01000000, t.scratch_gpa & ~(4 * MiB - 1), E_RW));
    /* The leaf that holds the window: its GPAs are scratch and page tables,
     * its GVAs the window, then the unbacked rest below the APIC. */
    REQUIRE(tf_large(&t, 0, t.scratch_gva & ~(4 * MiB - 1), t.scratch_gpa & ~(4 * MiB - 1), E_RW));
    REQUIRE(tf_large(&t, 0, 0xFFC00000, 0xFFC00000, E_RW));
    char *out = tf_check(&t);
    CHECK_LINE(out, "  0x0000000000400000-0x0000000000404000 rw  rwx user unbacked (4 pages)");
    CHECK_LINE(out, "  0x0000000000404000-0x0000000000600000 rw  rwx user blob (508 pages)");
    CHECK_LINE(out, "  0x0000000000600000-0x0000000000800000 rw  rwx user unbacked (512 pages)");
    CHECK_LINE(out, "  0x0000000000c04000-0x0000000000e00000 cow r-x user blob (508 pages)");
    char line[200];
    uint64_t va = 0x01000000 + (t.pt_gpa & (4 * MiB - 1));
    snprintf(line, sizeof line, "  0x%016" PRIx64 "-0x%016" PRIx64 " rw  rwx page tables (%" PRIu64 " pages)", va,
             va + t.pt_size, t.pt_size / SL_PAGE_SIZE);
    CHECK_LINE(out, line);
    snprintf(line, sizeof line, "  0x%016" PRIx64 "-0x%016" PRIx64 " scratch window (%" PRIu64
             " pages, not in the file)", t.scratch_gva, t.scratch_gva + t.scratch_size,
             t.scratch_size / SL_PAGE_SIZE);
    CHECK_LINE(out, line);
    free(out);
    tf_free(&t);
}

int main(void)
{
    if (!t_tmpdir(g_dir, sizeof g_dir, "test_inspect"))
        return 1;
    RUN_ARCH(T_NONE, test_4k_only_as_saved);
    RUN_ARCH(T_NONE, test_amd64_1g_over_blob);
    RUN_ARCH(T_NONE, test_amd64_2m_and_1g_into_scratch);
    RUN_ARCH(T_NONE, test_amd64_2m_half_beyond);
    RUN_ARCH(T_NONE, test_amd64_mixed);
    RUN_ARCH(T_NONE, test_amd64_cow_large);
    RUN_ARCH(T_NONE, test_amd64_2m_top_straddles_window);
    RUN_ARCH(T_NONE, test_i686_4m);
    const char *names[] = {"4k64.snap", "4k32.snap", "g1blob.snap", "m2scr.snap", "m2half.snap",
                           "mixed64.snap", "cow64.snap", "top64.snap", "m4.snap"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!getenv("KEEP")) unlink(tpath(names[i]));
    rmdir(g_dir);
    T_EXIT();
}
