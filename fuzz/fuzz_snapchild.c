/* libFuzzer target for child snapshot files (format version 5, issue 11):
 * hostile runs, indexes, headers and chains.
 *
 * At the first input it builds, without KVM, four snapshots of a simulated
 * guest with numbered pages (tests/common/numsnap.h): P, C (P with a page
 * moved and one new), G (C with one new page and one of C's own) and H (G
 * with one more), and writes into a directory of its own p.snap (P in full),
 * c.snap (child of p.snap) and g.snap (child of c.snap).
 *
 * Each input takes one of p.snap, c.snap or g.snap apart
 * (tests/common/childfile.h), edits its runs, index, header and bytes as the
 * input says, puts it back together, optionally reseals the checksum, and
 * writes it as x.snap in that directory. Then:
 *   - sl_snapshot_load_chain: what loads keeps the snapshot's invariants and
 *     every page of its blob can be read without the file being seen as
 *     changed (a run mapped outside its file would be); what fails says why;
 *   - sl_snapshot_verify_chain: refuses what load refuses; what it accepts
 *     hashes, as loaded, to the identity it claims;
 *   - with mode bit 3, when x.snap verifies: sl_snapshot_save_child of the
 *     next snapshot (C, G or H) against x.snap must write a child that loads
 *     and is that snapshot byte for byte, whatever x.snap's index says (a
 *     child's index is advisory; a full file has none, and one given an
 *     index by the edits is refused on load).
 * An input without edits must load as the snapshot it was written from.
 *
 * With mode bit 5 the edited file takes the real one's place instead, and
 * the file below it in the chain is loaded and verified: a hostile parent.
 *
 * Input: [0] mode: bits 0-1 the file (0, 3: c.snap, 1: g.snap, 2: p.snap),
 * bit 2 reseal, bit 3 save a child against it, bit 4 name the parent
 * explicitly (its path; with file 3, the directory), bit 5 edit it in its
 * place in the chain. Then edits, each an opcode byte and its operands (see
 * the enum below), to the end. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "snapfile.h"
/* White-box: the invariants restore relies on. */
#include "snapshot_impl.h"
#include "../tests/common/childfile.h"
#include "../tests/common/numsnap.h"

#define PAGES 8u /* visible pages of the snapshots */
#define MAX_EDITS 64u

enum { F_P, F_C, F_G, F_N };
static const uint32_t ids[F_N + 1][PAGES] = {
    {0, 1, 2, 3, 4, 5, 6, 7},
    {0, 1, 5, 3, 4, 5, 100, 7},     /* C: page 2 = P's page 5, page 6 new */
    {0, 1, 5, 3, 101, 5, 100, 100}, /* G: page 4 new, page 7 = C's own page */
    {0, 1, 5, 102, 101, 5, 100, 0}, /* H: page 3 new, page 7 = P's page 0 */
};
static const char *const names[F_N] = {"p.snap", "c.snap", "g.snap"};
static sl_snapshot *snaps[F_N + 1];
static uint8_t *files[F_N];
static size_t lens[F_N];
static uint8_t lie[F_N][SL_HASH_LEN]; /* the new page of the next snapshot: not in this file */
static char dir[256];

static const char *in(const char *name)
{
    static char buf[4][320];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static void cleanup(void)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            unlink(in(de->d_name));
    if (d)
        closedir(d);
    rmdir(dir);
}

static void init(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/fuzz_snapchild.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    FUZZ_ASSERT(mkdtemp(dir));
    atexit(cleanup);
    unsetenv("SANDLET_SNAPSHOT_PATH"); /* only this directory is searched */
    char err[256] = "";
    for (int i = 0; i <= F_N; i++) {
        snaps[i] = numsnap_of(ids[i], PAGES, i ? snaps[i - 1] : NULL);
        FUZZ_ASSERT(snaps[i]);
    }
    for (int i = 0; i < F_N; i++) {
        int rc = i == F_P ? sl_snapshot_save(snaps[i], in(names[i]), err, sizeof err)
                          : sl_snapshot_save_child(snaps[i], in(names[i - 1]), in(names[i]), NULL, NULL, err,
                                                   sizeof err);
        if (rc)
            fprintf(stderr, "fuzz_snapchild: %s: %s\n", names[i], err);
        FUZZ_ASSERT(rc == 0);
        FILE *f = fopen(in(names[i]), "rb");
        FUZZ_ASSERT(f);
        fseek(f, 0, SEEK_END);
        lens[i] = (size_t)ftell(f);
        fseek(f, 0, SEEK_SET);
        files[i] = malloc(lens[i]);
        FUZZ_ASSERT(files[i] && fread(files[i], 1, lens[i], f) == lens[i]);
        fclose(f);
    }
    /* The page each next snapshot has new: a lying index names it. */
    static const unsigned new_page[F_N] = {6, 4, 3};
    uint8_t page[SL_PAGE_SIZE];
    for (int i = 0; i < F_N; i++) {
        numsnap_fill(page, ids[i + 1][new_page[i]]);
        numsnap_page_hash(page, lie[i]);
    }
}

/* Edits: an opcode byte (mod E_COUNT), then its operands. Run, index and
 * structure edits apply to the parts before they are joined; header, byte
 * and size edits to the joined file, in input order. */
enum {
    E_HDR_SET,    /* field, u64 value */
    E_HDR_ADD,    /* field, s8 delta (in the field's unit) */
    E_HDR_ID,     /* which (bit 0: parent, else identity), whose (P, C, G, H, or a bit flipped) */
    E_RUN_SET,    /* run, member (page, src, count, level), u64 value */
    E_RUN_ADD,    /* run, member, s8 delta */
    E_RUN_SHAPE,  /* run, kind: remove, duplicate, split, merge with the next, swap with the next */
    E_INDEX,      /* entry, kind, u64 argument */
    E_BYTE,       /* u16 offset (mod the length), byte */
    E_SIZE,       /* s16 bytes: cut or zero-extend */
    E_COUNT
};

/* Header fields an edit may name: offset, width, unit. */
static const struct {
    unsigned off, width, unit;
} fields[] = {
    {SF_VERSION, 4, 1},        {SF_FILE_SIZE, 8, 1},          {SF_BLOB_OFFSET, 8, SL_PAGE_SIZE},
    {SF_BLOB_SIZE, 8, SL_PAGE_SIZE}, {SF_VISIBLE_SIZE, 8, SL_PAGE_SIZE}, {SF_PT_SIZE, 8, SL_PAGE_SIZE},
    {SF_REGIONS_OFFSET, 8, 1}, {SF_REGIONS_SIZE, 8, 1},       {SF_PARENT_NAME_SIZE, 4, 1},
    {SF_PARENT_NAME_OFFSET, 4, 1}, {SF_LINEAGE_FLAGS, 4, 1},  {SF_PAGES_KEPT, 8, 1},
    {SF_OWN_SIZE, 8, SL_PAGE_SIZE}, {SF_RUNS_OFFSET, 8, SL_SNAPFILE_RUN_SIZE},
    {SF_RUNS_SIZE, 8, SL_SNAPFILE_RUN_SIZE}, {SF_INDEX_OFFSET, 8, SL_SNAPFILE_INDEX_ENTRY},
    {SF_INDEX_SIZE, 8, SL_SNAPFILE_INDEX_ENTRY}, {SF_PARENT_LAYOUT, 8, 1}, {SF_N_ROOTS, 4, 1},
    {SF_CUR_ROOT, 4, 1},       {SF_SREGS_OFFSET, 8, 1},       {SF_SREGS_SIZE, 8, 1},
    {SF_N_REGIONS, 4, 1},      {SF_ROOTS, 8, SL_PAGE_SIZE},
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

static void field_write(uint8_t *f, unsigned k, uint64_t v)
{
    if (fields[k].width == 4)
        sl_put32(f + fields[k].off, (uint32_t)v);
    else
        sl_put64(f + fields[k].off, v);
}

static uint64_t field_read(const uint8_t *f, unsigned k)
{
    return fields[k].width == 4 ? sl_get32(f + fields[k].off) : sl_get64(f + fields[k].off);
}

static void run_member(cf_run *r, unsigned m, uint64_t v, int add)
{
    switch (m & 3) {
    case 0: r->page = add ? r->page + v : v; break;
    case 1: r->src = add ? r->src + v : v; break;
    case 2: r->count = (uint32_t)(add ? r->count + v : v); break;
    case 3: r->level = (uint32_t)(add ? r->level + v : v); break;
    }
}

static void run_shape(cf_file *cf, size_t i, unsigned kind)
{
    cf_run *r = &cf->runs[i];
    switch (kind % 5) {
    case 0: cf_remove_run(cf, i); break;
    case 1: cf_insert_run(cf, i, *r); break;
    case 2: /* two runs that fill the same pages: still valid */
        if (r->count >= 2) {
            cf_run a = *r, b = *r;
            a.count = r->count / 2;
            b.page += a.count;
            b.src += a.count;
            b.count = r->count - a.count;
            *r = a;
            cf_insert_run(cf, i + 1, b);
        }
        break;
    case 3:
        if (i + 1 < cf->n_runs) {
            r->count += cf->runs[i + 1].count;
            cf_remove_run(cf, i + 1);
        }
        break;
    case 4:
        if (i + 1 < cf->n_runs) {
            cf_run t = *r;
            *r = cf->runs[i + 1];
            cf->runs[i + 1] = t;
        }
        break;
    }
}

static void index_edit(cf_file *cf, size_t i, unsigned kind, uint64_t arg, const uint8_t *lie_hash)
{
    cf_entry *x = &cf->index[i];
    uint64_t own = sl_get64(cf->head + SF_OWN_SIZE) / SL_PAGE_SIZE;
    switch (kind % 8) {
    case 0: x->page = arg; break;
    case 1: x->hash[arg % SL_HASH_LEN] ^= (uint8_t)((arg >> 8) | 1); break;
    case 2:
        if (i + 1 < cf->n_index) {
            cf_entry t = *x;
            *x = cf->index[i + 1];
            cf->index[i + 1] = t;
        }
        break;
    case 3:
        memmove(x, x + 1, (cf->n_index - i - 1) * sizeof *x);
        cf->n_index--;
        break;
    case 4:
        if (cf_reserve(cf, cf->n_runs, cf->n_index + 1) == 0) {
            x = &cf->index[i];
            memmove(x + 1, x, (cf->n_index - i) * sizeof *x);
            cf->n_index++;
        }
        break;
    case 5: memcpy(x->hash, lie_hash, SL_HASH_LEN); x->page = arg % (own + 1); break;
    case 6: x->page = own + arg % 4; break;
    case 7:
        for (size_t a = 0, b = cf->n_index - 1; a < b; a++, b--) {
            cf_entry t = cf->index[a];
            cf->index[a] = cf->index[b];
            cf->index[b] = t;
        }
        break;
    }
}

/* The operands of edit op, consumed from in (so that the second pass reads
 * the same stream the first did). */
static void skip_operands(unsigned op, fuzz_in *in)
{
    static const unsigned len[E_COUNT] = {9, 2, 2, 10, 3, 2, 10, 3, 2};
    for (unsigned i = 0; i < len[op]; i++)
        fuzz_u8(in);
}

/* Pass 1: the edits of the parts. */
static unsigned edit_parts(cf_file *cf, fuzz_in in, const uint8_t *lie_hash)
{
    unsigned n = 0;
    while (in.n && n < MAX_EDITS) {
        unsigned op = fuzz_u8(&in) % E_COUNT;
        n++;
        fuzz_in args = in;
        skip_operands(op, &in);
        if (op == E_RUN_SET || op == E_RUN_ADD || op == E_RUN_SHAPE) {
            if (!cf->n_runs)
                continue;
            size_t i = fuzz_u8(&args) % cf->n_runs;
            unsigned m = fuzz_u8(&args);
            if (op == E_RUN_SET)
                run_member(&cf->runs[i], m, fuzz_le(&args, 8), 0);
            else if (op == E_RUN_ADD)
                run_member(&cf->runs[i], m, (uint64_t)(int64_t)(int8_t)fuzz_u8(&args), 1);
            else
                run_shape(cf, i, m);
        } else if (op == E_INDEX && cf->n_index) {
            size_t i = fuzz_u8(&args) % cf->n_index;
            unsigned kind = fuzz_u8(&args);
            index_edit(cf, i, kind, fuzz_le(&args, 8), lie_hash);
        }
    }
    return n;
}

/* Pass 2: the edits of the joined file; may change *len (and *f). */
static void edit_file(uint8_t **f, size_t *len, fuzz_in in)
{
    unsigned n = 0;
    while (in.n && n++ < MAX_EDITS) {
        unsigned op = fuzz_u8(&in) % E_COUNT;
        fuzz_in args = in;
        skip_operands(op, &in);
        if (op == E_HDR_SET) {
            unsigned k = fuzz_u8(&args) % N_FIELDS;
            field_write(*f, k, fuzz_le(&args, 8));
        } else if (op == E_HDR_ADD) {
            unsigned k = fuzz_u8(&args) % N_FIELDS;
            int8_t d = (int8_t)fuzz_u8(&args);
            field_write(*f, k, field_read(*f, k) + (uint64_t)(int64_t)d * fields[k].unit);
        } else if (op == E_HDR_ID) {
            unsigned which = fuzz_u8(&args), whose = fuzz_u8(&args);
            uint8_t id[SL_HASH_LEN];
            memcpy(id, sl_snapshot_hash(snaps[whose % (F_N + 1)]), SL_HASH_LEN);
            if (whose >= 0x80)
                id[whose % SL_HASH_LEN] ^= 1;
            memcpy(*f + (which & 1 ? SF_PARENT : SF_IDENTITY), id, SL_HASH_LEN);
        } else if (op == E_BYTE) {
            unsigned off = fuzz_u8(&args);
            off |= (unsigned)fuzz_u8(&args) << 8;
            (*f)[off % *len] = fuzz_u8(&args);
        } else if (op == E_SIZE) {
            unsigned lo = fuzz_u8(&args), hi = fuzz_u8(&args);
            int16_t d = (int16_t)(uint16_t)(lo | hi << 8);
            size_t cut = d < 0 ? (size_t)-(int32_t)d : 0;
            size_t nl = d >= 0 ? *len + (size_t)d
                        : *len > cut + SL_SNAPFILE_HEADER_SIZE ? *len - cut : SL_SNAPFILE_HEADER_SIZE;
            uint8_t *g = realloc(*f, nl);
            if (!g)
                continue;
            if (nl > *len)
                memset(g + *len, 0, nl - *len);
            *f = g;
            *len = nl;
        }
    }
}

/* ---------------- what must hold ---------------- */

static void check_loaded(const sl_snapshot *s)
{
    const sl_layout *l = &s->layout;
    FUZZ_ASSERT(s->mem_size == s->visible_size + s->pt_size && s->n_roots && s->n_roots <= SL_BK_MAX_ROOTS &&
                s->cur_root < s->n_roots && s->pt_size <= l->exc_stack_gpa - l->pt_gpa &&
                SL_BASE_ADDRESS + s->visible_size <= l->scratch_gpa);
    for (unsigned i = 0; i < s->n_roots; i++)
        FUZZ_ASSERT(s->roots[i] >= l->pt_gpa && s->roots[i] - l->pt_gpa < s->pt_size);
    FUZZ_ASSERT(sl_snapshot_chain_depth(s) <= SL_CHAIN_MAX);
    /* Every page of the blob is readable, and reading it does not hit a
     * page some file lacks (the SIGBUS handler would mark it lost). */
    uint64_t n = 0;
    const uint8_t *b = sl_snapshot_blob(s, &n);
    FUZZ_ASSERT(b && n == s->mem_size);
    volatile uint8_t x = 0;
    for (uint64_t off = 0; off < n; off += 512)
        x ^= b[off];
    (void)x;
    FUZZ_ASSERT(!sl_snapfile_lost(s));
}

static bool same_blob(const sl_snapshot *a, const sl_snapshot *b)
{
    uint64_t na = 0, nb = 0;
    const uint8_t *x = sl_snapshot_blob(a, &na), *y = sl_snapshot_blob(b, &nb);
    return na == nb && memcmp(x, y, na) == 0;
}

/* save_child of the next snapshot against the edited file: a child that is
 * exactly that snapshot, or an error the API allows. */
static void check_save_child(const sl_snapshot *next, const char *edited, const char *parents)
{
    char err[512] = "";
    unlink(in("out.snap"));
    int rc = sl_snapshot_save_child(next, edited, in("out.snap"), NULL, NULL, err, sizeof err);
    if (rc) {
        /* Its chain loads (it verified) but perhaps not without the
         * explicit parents, or it is as deep as a chain may be. */
        if (!(rc == SL_ERANGE || (parents && rc == SL_EPARENT)))
            fprintf(stderr, "save_child: %d %s\n", rc, err);
        FUZZ_ASSERT(rc == SL_ERANGE || (parents && rc == SL_EPARENT));
        FUZZ_ASSERT(access(in("out.snap"), F_OK) != 0);
        return;
    }
    sl_snapshot *o = NULL;
    rc = sl_snapshot_load_chain(&o, in("out.snap"), parents, err, sizeof err);
    if (rc)
        fprintf(stderr, "load of the saved child: %d %s\n", rc, err);
    FUZZ_ASSERT(rc == 0);
    check_loaded(o);
    FUZZ_ASSERT(same_blob(o, next));
    FUZZ_ASSERT(memcmp(sl_snapshot_hash(o), sl_snapshot_hash(next), SL_HASH_LEN) == 0);
    sl_snapshot_free(o);
    FUZZ_ASSERT(sl_snapshot_verify_chain(in("out.snap"), parents, NULL, NULL, err, sizeof err) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!snaps[0])
        init();
    if (size < 1)
        return 0;
    const unsigned mode = data[0];
    const int which = (mode & 3) == 2 ? F_P : (mode & 3) == 1 ? F_G : F_C;
    fuzz_in edits = {data + 1, size - 1};

    cf_file cf;
    FUZZ_ASSERT(cf_split(&cf, files[which], lens[which]) == 0);
    unsigned n_edits = edit_parts(&cf, edits, lie[which]);
    size_t len;
    uint8_t *f = cf_join(&cf, &len);
    cf_free(&cf);
    FUZZ_ASSERT(f);
    edit_file(&f, &len, edits);
    if (mode & 4)
        sl_snapfile_reseal(f, len);
    /* The edited file is x.snap, loaded itself; or (bit 5) it takes the
     * place of the real file in the chain, and the file below it is loaded
     * (g.snap: itself). */
    const bool in_chain = mode & 32;
    const int loaded = in_chain && which < F_G ? which + 1 : which;
    char edited[320], path[320];
    snprintf(edited, sizeof edited, "%s", in(in_chain ? names[which] : "x.snap"));
    snprintf(path, sizeof path, "%s", in_chain ? in(names[loaded]) : edited);
    FILE *out = fopen(edited, "wb");
    FUZZ_ASSERT(out && fwrite(f, 1, len, out) == len && fclose(out) == 0);
    free(f);

    /* Where the parent is: the directory (found by the name the file
     * gives), or named explicitly. */
    const char *parents = NULL;
    if (mode & 16)
        parents = (mode & 3) == 3 ? dir : loaded == F_G ? in("c.snap") : loaded == F_C ? in("p.snap") : NULL;

    char err[512] = "";
    sl_snapshot *s = NULL;
    int rc = sl_snapshot_load_chain(&s, path, parents, err, sizeof err);
    FUZZ_ASSERT(rc <= 0);
    if (n_edits == 0 && (mode & 4)) {
        if (rc)
            fprintf(stderr, "unedited %s: %s\n", names[which], err);
        FUZZ_ASSERT(rc == 0 && same_blob(s, snaps[loaded]));
    }
    if (rc) {
        FUZZ_ASSERT(!s && err[0]);
        FUZZ_ASSERT(sl_snapshot_verify_chain(path, parents, NULL, NULL, err, sizeof err) != 0);
    } else {
        check_loaded(s);
        err[0] = 0;
        int vrc = sl_snapshot_verify_chain(path, parents, NULL, NULL, err, sizeof err);
        FUZZ_ASSERT(vrc <= 0 && (vrc == 0 || err[0]));
        if (vrc == 0) {
            uint8_t h[SL_HASH_LEN];
            sl_snapshot_compute_hash(s, h);
            FUZZ_ASSERT(memcmp(h, sl_snapshot_hash(s), SL_HASH_LEN) == 0);
            if ((mode & 8) && loaded == which)
                check_save_child(snaps[which + 1], edited, parents);
        }
    }
    sl_snapshot_free(s);
    if (in_chain) { /* the real file back */
        out = fopen(edited, "wb");
        FUZZ_ASSERT(out && fwrite(files[which], 1, lens[which], out) == lens[which] && fclose(out) == 0);
    }
    return 0;
}
