/* Snapshot files (docs/snapshot-format.md is normative): atomic save, O(1)
 * validated load that maps the blob straight from the file, full verify, and
 * the report behind `sandlet snapshot inspect`.
 *
 * A file is hostile input. Nothing read from it is used before it has been
 * checked: the header checksum first (so random corruption gets one clear
 * message), then every field on its own terms, as if the checksum had been
 * forged. */
#include "snapfile.h"

#include "regfile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pt.h"
#include "u64map.h"
#include "vcpu.h"

#define SL_SNAPFILE_SREGS_AT SL_SNAPFILE_HEADER_SIZE

/* What save writes before the blob: the header and the CPU state, in whole
 * pages (one page unless the CPU state is large: AVX-512, AMX). */
static uint64_t meta_size(const sl_snapshot *s)
{
    return (SL_SNAPFILE_SREGS_AT + (uint64_t)s->sregs_len + SL_PAGE_SIZE - 1) & SL_PAGE_MASK;
}
#define REGIONS_MAX_BYTES (SL_MAX_REGIONS * SL_REGION_RECORD_SIZE)

/* ---------------- little-endian fields ---------------- */

/* Header fields by offset, over layout.h's byte-wise accessors. */
static uint64_t get64(const uint8_t *p, unsigned off) { return sl_get64(p + off); }
static uint32_t get32(const uint8_t *p, unsigned off) { return sl_get32(p + off); }
static void put64(uint8_t *p, unsigned off, uint64_t v) { sl_put64(p + off, v); }
static void put32(uint8_t *p, unsigned off, uint32_t v) { sl_put32(p + off, v); }

static bool page_aligned(uint64_t v) { return (v & (SL_PAGE_SIZE - 1)) == 0; }

static const char *arch_name(unsigned arch)
{
    return arch == SL_ARCH_AMD64 ? "amd64" : arch == SL_ARCH_I686 ? "i686" : "?";
}

/* A virtual address the architecture can hold: canonical on amd64 (48-bit,
 * sign-extended), 32-bit on i686. */
static bool va_ok(unsigned arch, uint64_t va)
{
    if (arch == SL_ARCH_I686)
        return va <= UINT32_MAX;
    uint64_t top = va >> 47;
    return top == 0 || top == 0x1FFFF;
}

/* "snapshot file: header field `name` (0x..) <reason>" */
static int bad_field(sl_errbuf *e, int code, const char *field, uint64_t v, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int bad_field(sl_errbuf *e, int code, const char *field, uint64_t v, const char *fmt, ...)
{
    if (e) {
        int n = snprintf(e->msg, sizeof e->msg, "snapshot file: header field `%s` (0x%" PRIx64 ") ", field, v);
        if (n > 0 && (size_t)n < sizeof e->msg) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(e->msg + n, sizeof e->msg - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return code;
}

/* ---------------- the header checksum ---------------- */

/* BLAKE3 of the bytes before the blob with the checksum field zeroed, then the
 * region records. meta holds at least SL_SNAPFILE_HEADER_SIZE bytes. */
static void header_checksum(const uint8_t *meta, uint64_t meta_len, const uint8_t *regions, uint64_t regions_len,
                            uint8_t out[SL_HASH_LEN])
{
    static const uint8_t zero[SL_HASH_LEN];
    sl_hasher *h = sl_hasher_new();
    if (!h) {
        memset(out, 0xFF, SL_HASH_LEN); /* never matches a real digest by chance in practice */
        return;
    }
    sl_hasher_update(h, meta, SF_CHECKSUM);
    sl_hasher_update(h, zero, SL_HASH_LEN);
    sl_hasher_update(h, meta + SF_CHECKSUM + SL_HASH_LEN, meta_len - SF_CHECKSUM - SL_HASH_LEN);
    if (regions_len)
        sl_hasher_update(h, regions, regions_len);
    sl_hasher_final(h, out);
}

/* ---------------- section geometry ---------------- */

typedef struct geometry {
    uint64_t file_size, blob_off, blob_size, regions_off, regions_size;
} geometry;

/* Checks where the sections are, from the fixed header alone: everything the
 * checksum needs before it can be computed. */
static int check_geometry(const uint8_t *h, uint64_t actual_size, geometry *g, sl_errbuf *e)
{
    if (memcmp(h + SF_MAGIC, SL_SNAPFILE_MAGIC, 8) != 0)
        return sl_err(e, SL_EFORMAT, "snapshot file: bad magic (not a sandlet snapshot file)");
    uint32_t version = get32(h, SF_VERSION);
    if (version != SL_SNAPFILE_VERSION)
        return bad_field(e, SL_EVERSION, "version", version, "is not the supported format version %u",
                         SL_SNAPFILE_VERSION);
    uint32_t hsize = get32(h, SF_HEADER_SIZE);
    if (hsize != SL_SNAPFILE_HEADER_SIZE)
        return bad_field(e, SL_EFORMAT, "header_size", hsize, "must be 0x%x", SL_SNAPFILE_HEADER_SIZE);
    g->file_size = get64(h, SF_FILE_SIZE);
    if (g->file_size != actual_size)
        return bad_field(e, SL_EFORMAT, "file_size", g->file_size,
                         "differs from the file's size 0x%" PRIx64 " (truncated or extended file)", actual_size);
    g->blob_off = get64(h, SF_BLOB_OFFSET);
    if (!page_aligned(g->blob_off) || g->blob_off < SL_PAGE_SIZE || g->blob_off > SL_SNAPFILE_META_MAX)
        return bad_field(e, SL_EFORMAT, "blob_offset", g->blob_off,
                         "must be page-aligned and in 0x%x..0x%x", SL_PAGE_SIZE, SL_SNAPFILE_META_MAX);
    if (g->blob_off > g->file_size)
        return bad_field(e, SL_EFORMAT, "blob_offset", g->blob_off, "is past the end of the file (0x%" PRIx64 ")",
                         g->file_size);
    g->blob_size = get64(h, SF_BLOB_SIZE);
    if (!page_aligned(g->blob_size) || g->blob_size == 0)
        return bad_field(e, SL_EFORMAT, "blob_size", g->blob_size, "must be a non-zero multiple of the page size");
    if (g->blob_size > g->file_size - g->blob_off)
        return bad_field(e, SL_EFORMAT, "blob_size", g->blob_size,
                         "runs past the end of the file (blob at 0x%" PRIx64 ", file 0x%" PRIx64 " bytes)",
                         g->blob_off, g->file_size);
    g->regions_off = get64(h, SF_REGIONS_OFFSET);
    if (g->regions_off != g->blob_off + g->blob_size)
        return bad_field(e, SL_EFORMAT, "regions_offset", g->regions_off,
                         "must follow the blob directly (expected 0x%" PRIx64 ")", g->blob_off + g->blob_size);
    g->regions_size = get64(h, SF_REGIONS_SIZE);
    if (g->regions_size > REGIONS_MAX_BYTES || g->regions_size % SL_REGION_RECORD_SIZE)
        return bad_field(e, SL_ERANGE, "regions_size", g->regions_size,
                         "must be a multiple of %u and at most %u", SL_REGION_RECORD_SIZE, REGIONS_MAX_BYTES);
    if (g->regions_size != g->file_size - g->regions_off)
        return bad_field(e, SL_EFORMAT, "regions_size", g->regions_size,
                         "must end the file exactly (0x%" PRIx64 " bytes left after the blob)",
                         g->file_size - g->regions_off);
    return 0;
}

int sl_snapfile_reseal(uint8_t *file, size_t len)
{
    geometry g;
    if (len < SL_SNAPFILE_HEADER_SIZE || check_geometry(file, len, &g, NULL))
        return -1;
    uint8_t sum[SL_HASH_LEN];
    header_checksum(file, g.blob_off, file + g.regions_off, g.regions_size, sum);
    memcpy(file + SF_CHECKSUM, sum, SL_HASH_LEN);
    return 0;
}

/* ---------------- configuration families ---------------- */

/* Every file with the same architecture and configuration sizes loads into
 * one family, so a sandbox started from one file restores any other. */
typedef struct family {
    unsigned arch;
    uint64_t sizes[6];
    uint32_t init_data_perm;
    uint64_t id;
} family;

/* Bounds the registry against a stream of hostile files with ever new
 * configurations; past it a configuration gets a family of its own. */
#define FAMILIES_MAX 4096u

static pthread_mutex_t families_lock = PTHREAD_MUTEX_INITIALIZER;
static family *families;
static size_t n_families, cap_families;

static int family_id(const sl_layout *l, uint64_t *id, sl_errbuf *e)
{
    family want = {.arch = l->arch,
                   .sizes = {l->input_size, l->output_size, l->heap_size, l->stack_size, l->scratch_size,
                             l->init_data_size},
                   .init_data_perm = l->init_data_perm};
    int rc = 0;
    pthread_mutex_lock(&families_lock);
    for (size_t i = 0; i < n_families; i++) {
        family *f = &families[i];
        if (f->arch == want.arch && f->init_data_perm == want.init_data_perm &&
            memcmp(f->sizes, want.sizes, sizeof want.sizes) == 0) {
            *id = f->id;
            goto out;
        }
    }
    if (n_families == FAMILIES_MAX) {
        *id = sl_snapshot_new_config_id();
        goto out;
    }
    if (n_families == cap_families) {
        size_t ncap = cap_families ? cap_families * 2 : 8;
        family *nf = realloc(families, ncap * sizeof *nf);
        if (!nf) {
            rc = sl_err(e, SL_ENOMEM, "out of memory");
            goto out;
        }
        families = nf;
        cap_families = ncap;
    }
    want.id = sl_snapshot_new_config_id();
    families[n_families++] = want;
    *id = want.id;
out:
    pthread_mutex_unlock(&families_lock);
    return rc;
}

/* ---------------- header -> snapshot ---------------- */

static int check_u64_equal(sl_errbuf *e, const char *field, uint64_t stored, uint64_t derived)
{
    if (stored != derived)
        return bad_field(e, SL_EFORMAT, field, stored,
                         "disagrees with the layout derived from the configuration (0x%" PRIx64 ")", derived);
    return 0;
}

/* Configuration sizes -> layout, with every derived field cross-checked. */
static int parse_layout(const uint8_t *h, unsigned arch, sl_layout *l, sl_errbuf *e)
{
    static const struct {
        const char *name;
        unsigned off;
    } sizes[] = {{"input_size", SF_INPUT_SIZE},   {"output_size", SF_OUTPUT_SIZE},
                 {"heap_size", SF_HEAP_SIZE},     {"stack_size", SF_STACK_SIZE},
                 {"scratch_size", SF_SCRATCH_SIZE}};
    /* Stored sizes are final: page multiples, no zero "defaults". */
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint64_t v = get64(h, sizes[i].off);
        if (v == 0 || !page_aligned(v) || v > SL_MAX_MEMORY)
            return bad_field(e, SL_ERANGE, sizes[i].name, v,
                             "must be a non-zero multiple of the page size up to 0x%llx",
                             (unsigned long long)SL_MAX_MEMORY);
    }
    uint64_t init_size = get64(h, SF_INIT_DATA_SIZE);
    uint32_t init_perm = get32(h, SF_INIT_DATA_PERM);
    if (!page_aligned(init_size) || init_size > SL_MAX_MEMORY)
        return bad_field(e, SL_ERANGE, "init_data_size", init_size,
                         "must be a multiple of the page size up to 0x%llx", (unsigned long long)SL_MAX_MEMORY);
    if (init_size == 0 ? init_perm != 0 : (init_perm == 0 || (init_perm & ~7u)))
        return bad_field(e, SL_EFORMAT, "init_data_perm", init_perm,
                         "must be 0 without init data, else a non-empty set of r/w/x bits");
    static const uint8_t dummy;
    sl_config cfg = {.input_size = get64(h, SF_INPUT_SIZE),
                     .output_size = get64(h, SF_OUTPUT_SIZE),
                     .heap_size = get64(h, SF_HEAP_SIZE),
                     .stack_size = get64(h, SF_STACK_SIZE),
                     .scratch_size = get64(h, SF_SCRATCH_SIZE),
                     .init_data = init_size ? &dummy : NULL,
                     .init_data_size = init_size,
                     .init_data_perm = init_perm};
    sl_errbuf le;
    if (sl_layout_config(l, arch, &cfg, &le))
        return sl_err(e, SL_ERANGE, "snapshot file: configuration rejected: %s", le.msg);
    int rc;
    if ((rc = check_u64_equal(e, "layout_stack_top", get64(h, SF_LAYOUT_STACK_TOP), l->stack_top)) ||
        (rc = check_u64_equal(e, "scratch_gpa", get64(h, SF_SCRATCH_GPA), l->scratch_gpa)) ||
        (rc = check_u64_equal(e, "scratch_gva", get64(h, SF_SCRATCH_GVA), l->scratch_gva)) ||
        (rc = check_u64_equal(e, "pt_gpa", get64(h, SF_PT_GPA), l->pt_gpa)) ||
        (rc = check_u64_equal(e, "exc_stack_gpa", get64(h, SF_EXC_STACK_GPA), l->exc_stack_gpa)) ||
        (rc = check_u64_equal(e, "bk_gpa", get64(h, SF_BK_GPA), l->bk_gpa)) ||
        (rc = check_u64_equal(e, "peb_gpa", get64(h, SF_PEB_GPA), l->peb_gpa)))
        return rc;

    /* Placement of a snapshot made from a binary; all zero when the layout was
     * never placed (it is informational once compacted). */
    uint64_t image_gpa = get64(h, SF_IMAGE_GPA), image_size = get64(h, SF_IMAGE_SIZE);
    uint64_t init_gpa = get64(h, SF_INIT_DATA_GPA), heap_gpa = get64(h, SF_HEAP_GPA);
    uint64_t vend = get64(h, SF_VISIBLE_END);
    if (!image_gpa && !image_size && !init_gpa && !heap_gpa && !vend)
        return 0;
    if (!page_aligned(image_size))
        return bad_field(e, SL_EFORMAT, "image_size", image_size, "is not a multiple of the page size");
    /* The header keeps GPAs only: place as a PIE after a kernel that ends
     * where the image starts, and check that the rest follows. */
    uint64_t after_peb = l->peb_gpa + SL_PAGE_SIZE;
    if (image_gpa < after_peb)
        return bad_field(e, SL_EFORMAT, "image_gpa", image_gpa, "is below the end of the PEB");
    if (sl_layout_place(l, image_gpa - after_peb, 0, image_size, false, &le))
        return bad_field(e, SL_EFORMAT, "image_gpa", image_gpa, "does not place: %s", le.msg);
    if ((rc = check_u64_equal(e, "init_data_gpa", init_gpa, l->init_data_gpa)) ||
        (rc = check_u64_equal(e, "heap_gpa", heap_gpa, l->heap_gpa)) ||
        (rc = check_u64_equal(e, "visible_end", vend, l->visible_end)))
        return rc;
    return 0;
}

static int parse_regions(sl_snapshot *s, const uint8_t *rec, unsigned n, sl_errbuf *e)
{
    uint64_t vis_end = SL_BASE_ADDRESS + s->visible_size;
    for (unsigned i = 0; i < n; i++, rec += SL_REGION_RECORD_SIZE) {
        sl_region *r = &s->regions[i];
        r->gpa = get64(rec, 0);
        r->gva = get64(rec, 8);
        r->size = get64(rec, 16);
        uint64_t fk = get64(rec, 24);
        r->flags = (uint32_t)fk;
        r->kind = (uint32_t)(fk >> 32);
        if (!page_aligned(r->gpa | r->gva | r->size) || r->size == 0 || r->gpa < SL_BASE_ADDRESS ||
            r->gpa > vis_end || r->size > vis_end - r->gpa)
            return sl_err(e, SL_EFORMAT,
                          "snapshot file: region %u (gpa 0x%" PRIx64 ", size 0x%" PRIx64
                          ") is not page-aligned inside the blob's visible memory",
                          i, r->gpa, r->size);
        if (!va_ok(s->arch, r->gva) || !va_ok(s->arch, r->gva + r->size - 1))
            return sl_err(e, SL_EFORMAT, "snapshot file: region %u virtual address 0x%" PRIx64 " invalid", i,
                          r->gva);
        if (r->flags & ~(SL_RF_READ | SL_RF_WRITE | SL_RF_EXEC | SL_RF_USER) || r->kind < SL_RK_PEB ||
            r->kind > SL_RK_KERNEL)
            return sl_err(e, SL_EFORMAT, "snapshot file: region %u flags 0x%x / kind %u unknown", i, r->flags,
                          r->kind);
    }
    s->n_regions = n;
    memcpy(s->layout.regions, s->regions, sizeof s->regions);
    s->layout.n_regions = n;
    return 0;
}

static bool all_zero(const uint8_t *p, uint64_t from, uint64_t to)
{
    for (uint64_t i = from; i < to; i++)
        if (p[i])
            return false;
    return true;
}

/* Everything but the geometry and the checksum: fills s from the header in
 * meta (meta_len = blob offset bytes) and the region records. */
static int parse_fields(sl_snapshot *s, const uint8_t *meta, const geometry *g, const uint8_t *regions,
                        sl_errbuf *e)
{
    const uint8_t *h = meta;
    int rc;
    s->arch = get32(h, SF_ARCH);
    if (s->arch != SL_ARCH_AMD64 && s->arch != SL_ARCH_I686)
        return bad_field(e, SL_EFORMAT, "arch", s->arch, "is not a known architecture (1 amd64, 2 i686)");
    if (get32(h, SF_FLAGS))
        return bad_field(e, SL_EFORMAT, "flags", get32(h, SF_FLAGS), "must be 0");
    if (get32(h, SF_RESERVED0) || get32(h, SF_RESERVED1) || !all_zero(h, SF_RESERVED2, SF_ROOTS))
        return sl_err(e, SL_EFORMAT, "snapshot file: reserved header bytes are not zero");
    if ((rc = parse_layout(h, s->arch, &s->layout, e)))
        return rc;
    const sl_layout *l = &s->layout;

    /* The blob: visible pages then the tables. */
    s->visible_size = get64(h, SF_VISIBLE_SIZE);
    s->pt_size = get64(h, SF_PT_SIZE);
    if (!page_aligned(s->visible_size) || s->visible_size == 0 ||
        s->visible_size > l->scratch_gpa - SL_BASE_ADDRESS)
        return bad_field(e, SL_ERANGE, "visible_size", s->visible_size,
                         "must be a non-zero multiple of the page size ending below scratch at 0x%" PRIx64,
                         l->scratch_gpa);
    uint64_t room = l->exc_stack_gpa - l->pt_gpa - SL_PAGE_SIZE;
    if (!page_aligned(s->pt_size) || s->pt_size == 0 || s->pt_size > room)
        return bad_field(e, SL_ERANGE, "pt_size", s->pt_size,
                         "must be a non-zero multiple of the page size up to the 0x%" PRIx64
                         " bytes scratch has for tables",
                         room);
    if (g->blob_size != s->visible_size + s->pt_size)
        return bad_field(e, SL_EFORMAT, "blob_size", g->blob_size,
                         "is not visible_size + pt_size (0x%" PRIx64 ")", s->visible_size + s->pt_size);

    /* Roots: page tables where restore puts them. */
    s->n_roots = get32(h, SF_N_ROOTS);
    s->cur_root = get32(h, SF_CUR_ROOT);
    if (s->n_roots == 0 || s->n_roots > SL_BK_MAX_ROOTS)
        return bad_field(e, SL_ERANGE, "n_roots", s->n_roots, "must be 1..%u", SL_BK_MAX_ROOTS);
    if (s->cur_root >= s->n_roots)
        return bad_field(e, SL_ERANGE, "cur_root", s->cur_root, "must be below n_roots (%u)", s->n_roots);
    for (unsigned i = 0; i < SL_BK_MAX_ROOTS; i++) {
        uint64_t r = get64(h, SF_ROOTS + 8 * i);
        if (i >= s->n_roots) {
            if (r)
                return bad_field(e, SL_EFORMAT, "roots", r, "entry %u is past n_roots and must be 0", i);
            continue;
        }
        if (!page_aligned(r) || r < l->pt_gpa || r - l->pt_gpa >= s->pt_size)
            return bad_field(e, SL_EFORMAT, "roots", r,
                             "entry %u is not a page-aligned table in 0x%" PRIx64 "+0x%" PRIx64, i, l->pt_gpa,
                             s->pt_size);
        s->roots[i] = r;
    }

    /* What runs next. */
    s->next_kind = get32(h, SF_NEXT_KIND);
    s->next_addr = get64(h, SF_NEXT_ADDR);
    if (s->next_kind == SL_NEXT_INITIALISE) {
        /* The guest kernel sits between the PEB and the image. */
        uint64_t lo = l->peb_gpa + SL_PAGE_SIZE;
        if (!l->image_size || s->next_addr < lo || s->next_addr >= l->image_gpa + l->image_size)
            return bad_field(e, SL_EFORMAT, "next_addr", s->next_addr,
                             "(entry) is not inside the guest kernel or the image at 0x%" PRIx64 "+0x%" PRIx64,
                             lo, l->image_gpa + l->image_size - lo);
    } else if (s->next_kind == SL_NEXT_CALL) {
        if (!s->next_addr || !va_ok(s->arch, s->next_addr))
            return bad_field(e, SL_EFORMAT, "next_addr", s->next_addr,
                             "(dispatch) is not a valid %s virtual address", arch_name(s->arch));
    } else {
        return bad_field(e, SL_EFORMAT, "next_kind", s->next_kind, "must be 1 (initialise) or 2 (call)");
    }
    s->stack_top = get64(h, SF_STACK_TOP);
    if (!va_ok(s->arch, s->stack_top))
        return bad_field(e, SL_EFORMAT, "stack_top", s->stack_top, "is not a valid %s virtual address",
                         arch_name(s->arch));
    s->generation = get64(h, SF_GENERATION);

    /* Statistics (informational, but consistent). */
    s->stats.pages_ro = get64(h, SF_PAGES_RO);
    s->stats.pages_cow = get64(h, SF_PAGES_COW);
    s->stats.pages_pt = get64(h, SF_PAGES_PT);
    s->stats.leaves = get64(h, SF_LEAVES);
    uint64_t vis_pages = s->visible_size / SL_PAGE_SIZE;
    if (s->stats.pages_pt != s->pt_size / SL_PAGE_SIZE)
        return bad_field(e, SL_EFORMAT, "pages_pt", s->stats.pages_pt, "is not pt_size / 4096");
    if (s->stats.pages_ro > vis_pages || s->stats.pages_cow > vis_pages - s->stats.pages_ro)
        return bad_field(e, SL_EFORMAT, "pages_ro", s->stats.pages_ro,
                         "+ pages_cow (0x%" PRIx64 ") exceed the visible pages (0x%" PRIx64 ")", s->stats.pages_cow,
                         vis_pages);
    if (s->stats.leaves < s->stats.pages_ro + s->stats.pages_cow || s->stats.leaves > (1ull << 36))
        return bad_field(e, SL_EFORMAT, "leaves", s->stats.leaves,
                         "must be between pages_ro + pages_cow and 2^36");

    /* Load info (debug only). */
    uint32_t lf = get32(h, SF_LOAD_FLAGS);
    if (lf & ~3u)
        return bad_field(e, SL_EFORMAT, "load_flags", lf, "has unknown bits");
    s->load_info.valid = lf & 1;
    s->load_info.pie = lf & 2;
    s->load_info.base_va = get64(h, SF_BASE_VA);
    s->load_info.load_addr = get64(h, SF_LOAD_ADDR);
    s->load_info.entry = get64(h, SF_ENTRY);
    if (!s->load_info.valid && (lf || s->load_info.base_va || s->load_info.load_addr || s->load_info.entry))
        return bad_field(e, SL_EFORMAT, "load_flags", lf, "says no load info, yet load info fields are set");

    /* Special registers: a small section in the metadata area. */
    uint64_t so = get64(h, SF_SREGS_OFFSET), ss = get64(h, SF_SREGS_SIZE);
    if (ss > SL_SREGS_MAX)
        return bad_field(e, SL_ERANGE, "sregs_size", ss, "exceeds %u", SL_SREGS_MAX);
    if (ss == 0 && so != 0)
        return bad_field(e, SL_EFORMAT, "sregs_offset", so, "must be 0 when sregs_size is 0");
    if (ss && (so % 8 || so < SL_SNAPFILE_HEADER_SIZE || so > g->blob_off || ss > g->blob_off - so))
        return bad_field(e, SL_EFORMAT, "sregs_offset", so,
                         "must be 8-aligned between the header (0x%x) and the blob (0x%" PRIx64 ")",
                         SL_SNAPFILE_HEADER_SIZE, g->blob_off);
    /* Every other byte before the blob is padding and must be zero. */
    if (!all_zero(meta, SL_SNAPFILE_HEADER_SIZE, ss ? so : g->blob_off) ||
        (ss && !all_zero(meta, so + ss, g->blob_off)))
        return sl_err(e, SL_EFORMAT, "snapshot file: padding before the blob is not zero");
    s->sregs_len = (uint32_t)ss;
    if (ss) {
        memcpy(s->sregs, meta + so, ss);
        sl_sregs_blob blob;
        memset(&blob, 0, sizeof blob);
        memcpy(blob.bytes, s->sregs, ss < sizeof blob.bytes ? ss : sizeof blob.bytes);
        sl_errbuf se;
        if ((rc = sl_sregs_blob_check(&blob, s->arch, &se)))
            return sl_err(e, rc, "snapshot file: special registers rejected: %s", se.msg);
        if (sl_sregs_blob_len(&blob) != ss)
            return bad_field(e, SL_EFORMAT, "sregs_size", ss, "differs from the CPU state's own length %zu",
                             sl_sregs_blob_len(&blob));
    }

    /* Region records. */
    uint32_t nreg = get32(h, SF_N_REGIONS);
    if (nreg > SL_MAX_REGIONS || (uint64_t)nreg * SL_REGION_RECORD_SIZE != g->regions_size)
        return bad_field(e, SL_ERANGE, "n_regions", nreg, "must be at most %u and match regions_size (0x%" PRIx64 ")",
                         SL_MAX_REGIONS, g->regions_size);
    if ((rc = parse_regions(s, regions, nreg, e)))
        return rc;
    memcpy(s->hash, h + SF_IDENTITY, SL_HASH_LEN);
    return 0;
}

/* ---------------- a loaded file must not change ----------------
 *
 * A loaded snapshot's blob is the file itself, mapped MAP_PRIVATE: pages
 * nobody wrote privately are the page cache's, so a rewrite shows through,
 * and a truncation takes pages away (a guest's access then fails KVM_RUN
 * with EFAULT, a host read raises SIGBUS). The contract (snapshot-format.md
 * §8) is that the file does not change while loaded; this enforces what can
 * be: every use of the snapshot first compares the file with what load saw
 * (sl_snapfile_check, one fstat on a descriptor of our own), and a host read
 * that finds no page gets a page of zeros from the SIGBUS handler below,
 * which marks the snapshot changed. Whatever was computed from such a read
 * is thrown away by the check that follows it. */

enum { WATCH_OK, WATCH_WRITING, WATCH_STAT, WATCH_SIGBUS }; /* watch state; sticky once not WATCH_OK */

typedef struct watch_slot watch_slot;

struct sl_snapfile_watch {
    int fd;              /* our own descriptor of the mapped file */
    struct stat at_load; /* what the file was when it was validated */
    uintptr_t map_start, map_end; /* the mapping (file offset 0), end page-aligned */
    watch_slot *slot;    /* in the SIGBUS registry */
    _Atomic int state;
    _Atomic uint64_t lost_off; /* WATCH_SIGBUS: the file offset that had no page */
    char what[112];      /* WATCH_STAT: how the file changed (set before the state) */
    char path[];         /* as given to load; "" for a bare descriptor */
};

static bool ts_equal(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/* Whether the file `now` differs from what load saw (`was`), and how. The
 * status-change time also moves when the file is renamed over, unlinked or
 * linked (its link count changes) or its owner or mode changes, none of
 * which touches the contents; when nothing of that changed, it moved
 * because the contents did and the modification time was set back. */
static bool file_differs(const struct stat *was, const struct stat *now, char *what, size_t len)
{
    if (was->st_dev != now->st_dev || was->st_ino != now->st_ino)
        snprintf(what, len, "another file: device/inode changed");
    else if (was->st_size != now->st_size)
        snprintf(what, len, "size %lld -> %lld bytes", (long long)was->st_size, (long long)now->st_size);
    else if (!ts_equal(was->st_mtim, now->st_mtim))
        snprintf(what, len, "modified: mtime %lld.%09ld -> %lld.%09ld", (long long)was->st_mtim.tv_sec,
                 was->st_mtim.tv_nsec, (long long)now->st_mtim.tv_sec, now->st_mtim.tv_nsec);
    else if (!ts_equal(was->st_ctim, now->st_ctim) && was->st_nlink == now->st_nlink &&
             was->st_mode == now->st_mode && was->st_uid == now->st_uid && was->st_gid == now->st_gid)
        snprintf(what, len, "modified: ctime moved, mtime set back");
    else
        return false;
    return true;
}

static void mark_changed(struct sl_snapfile_watch *w, const char *what)
{
    int expect = WATCH_OK;
    if (atomic_compare_exchange_strong(&w->state, &expect, WATCH_WRITING)) {
        snprintf(w->what, sizeof w->what, "%s", what);
        atomic_store_explicit(&w->state, WATCH_STAT, memory_order_release);
    }
}

static int changed_error(struct sl_snapfile_watch *w, const char *during, sl_errbuf *e)
{
    char why[sizeof w->what + 64];
    switch (atomic_load_explicit(&w->state, memory_order_acquire)) {
    case WATCH_STAT: snprintf(why, sizeof why, "%s", w->what); break;
    case WATCH_SIGBUS:
        snprintf(why, sizeof why, "no page at file offset 0x%" PRIx64 ": truncated, or unreadable",
                 atomic_load(&w->lost_off));
        break;
    default: snprintf(why, sizeof why, "changed"); break;
    }
    /* The path's tail names the file best when it does not all fit. */
    size_t n = strlen(w->path);
    const char *p = n > 96 ? w->path + n - 93 : w->path;
    return sl_err(e, SL_ECHANGED, "snapshot file %s%s%s%s changed while loaded (%s)%s%s: files must not change "
                  "while loaded; load it again",
                  *p ? "'" : "", p != w->path ? "..." : "", p, *p ? "'" : "", why, during ? ", " : "",
                  during ? during : "");
}

int sl_snapfile_check(const sl_snapshot *s, const char *during, sl_errbuf *e)
{
    struct sl_snapfile_watch *w = s ? s->file : NULL;
    if (!w)
        return 0;
    if (atomic_load_explicit(&w->state, memory_order_acquire) == WATCH_OK) {
        struct stat now;
        char what[sizeof w->what];
        if (fstat(w->fd, &now) != 0)
            snprintf(what, sizeof what, "fstat failed: %s", strerror(errno));
        else if (!file_differs(&w->at_load, &now, what, sizeof what))
            return 0;
        mark_changed(w, what);
    }
    return changed_error(w, during, e);
}

bool sl_snapfile_lost(const sl_snapshot *s)
{
    return s && s->file && atomic_load_explicit(&s->file->state, memory_order_acquire) != WATCH_OK;
}

/* ---- the SIGBUS registry ----
 * Every loaded file's mapping, in slots the handler reads without a lock:
 * each slot is a seqlock (odd sequence: being written), chunks are appended
 * and never freed. Writers hold slots_lock. */

#define SLOTS_PER_CHUNK 64

struct watch_slot {
    atomic_uint seq;
    atomic_uintptr_t start, end;
    _Atomic(struct sl_snapfile_watch *) w;
};

typedef struct slot_chunk {
    watch_slot slot[SLOTS_PER_CHUNK];
    _Atomic(struct slot_chunk *) next;
} slot_chunk;

static slot_chunk slots_first;
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t sigbus_once = PTHREAD_ONCE_INIT;
static struct sigaction sigbus_prev;

static void slot_write(watch_slot *sl, uintptr_t start, uintptr_t end, struct sl_snapfile_watch *w)
{
    unsigned q = atomic_load_explicit(&sl->seq, memory_order_relaxed);
    atomic_store_explicit(&sl->seq, q + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&sl->start, start, memory_order_relaxed);
    atomic_store_explicit(&sl->end, end, memory_order_relaxed);
    atomic_store_explicit(&sl->w, w, memory_order_relaxed);
    atomic_store_explicit(&sl->seq, q + 2, memory_order_release);
}

/* The watch whose mapping holds addr, with its bounds; async-signal-safe. */
static struct sl_snapfile_watch *slot_find(uintptr_t addr, uintptr_t *start, uintptr_t *end)
{
    for (slot_chunk *c = &slots_first; c; c = atomic_load_explicit(&c->next, memory_order_acquire))
        for (unsigned i = 0; i < SLOTS_PER_CHUNK; i++) {
            watch_slot *sl = &c->slot[i];
            for (int tries = 0; tries < 1000; tries++) {
                unsigned q = atomic_load_explicit(&sl->seq, memory_order_acquire);
                if (q & 1)
                    continue;
                uintptr_t a = atomic_load_explicit(&sl->start, memory_order_relaxed);
                uintptr_t b = atomic_load_explicit(&sl->end, memory_order_relaxed);
                struct sl_snapfile_watch *w = atomic_load_explicit(&sl->w, memory_order_relaxed);
                atomic_thread_fence(memory_order_acquire);
                if (atomic_load_explicit(&sl->seq, memory_order_relaxed) != q)
                    continue;
                if (w && addr >= a && addr < b) {
                    *start = a;
                    *end = b;
                    return w;
                }
                break;
            }
        }
    return NULL;
}

/* What the handler before ours would have done. */
static void sigbus_chain(int sig, siginfo_t *si, void *uc)
{
    const struct sigaction *p = &sigbus_prev;
    if (p->sa_flags & SA_SIGINFO) {
        if (p->sa_sigaction) {
            p->sa_sigaction(sig, si, uc);
            return;
        }
    } else if (p->sa_handler == SIG_IGN) {
        if (si->si_code <= 0) /* sent by a process, and ignored; a fault cannot be */
            return;
    } else if (p->sa_handler != SIG_DFL) {
        p->sa_handler(sig);
        return;
    }
    /* The default action, terminate with a core dump: restore it and let the
     * signal come again (a fault repeats when we return; a sent one is
     * raised, pending until this handler returns). */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGBUS, &dfl, NULL);
    if (si->si_code <= 0)
        raise(SIGBUS);
}

/* A read of a page that a loaded file lost: map zeros from that page to the
 * end of the mapping (the file ends before it: truncated; or it could not
 * be read), mark the snapshot changed, and let the read go on. Everything
 * here is async-signal-safe (the raw mmap system call, atomics). */
static void sigbus_handler(int sig, siginfo_t *si, void *uc)
{
    int saved = errno;
    uintptr_t addr = (uintptr_t)si->si_addr, start, end;
    struct sl_snapfile_watch *w = si->si_code == BUS_ADRERR ? slot_find(addr, &start, &end) : NULL;
    if (w) {
        uintptr_t page = addr & ~(uintptr_t)(SL_PAGE_SIZE - 1);
        long r = syscall(SYS_mmap, (void *)page, (size_t)(end - page), PROT_READ,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0L);
        if (r != -1) {
            int expect = WATCH_OK;
            atomic_store(&w->lost_off, (uint64_t)(page - start));
            atomic_compare_exchange_strong(&w->state, &expect, WATCH_SIGBUS);
            errno = saved;
            return;
        }
    }
    errno = saved;
    sigbus_chain(sig, si, uc);
}

static void sigbus_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = sigbus_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    /* The previous action is known before ours can run. */
    if (sigaction(SIGBUS, NULL, &sigbus_prev) == 0)
        sigaction(SIGBUS, &sa, NULL);
}

static int watch_register(struct sl_snapfile_watch *w, sl_errbuf *e)
{
    pthread_once(&sigbus_once, sigbus_install);
    pthread_mutex_lock(&slots_lock);
    slot_chunk *c = &slots_first, *last = c;
    watch_slot *free_slot = NULL;
    for (; c && !free_slot; last = c, c = atomic_load_explicit(&c->next, memory_order_acquire))
        for (unsigned i = 0; i < SLOTS_PER_CHUNK && !free_slot; i++)
            if (!atomic_load_explicit(&c->slot[i].w, memory_order_relaxed))
                free_slot = &c->slot[i];
    if (!free_slot) {
        slot_chunk *n = calloc(1, sizeof *n);
        if (!n) {
            pthread_mutex_unlock(&slots_lock);
            return sl_err(e, SL_ENOMEM, "out of memory");
        }
        atomic_store_explicit(&last->next, n, memory_order_release);
        free_slot = &n->slot[0];
    }
    slot_write(free_slot, w->map_start, w->map_end, w);
    w->slot = free_slot;
    pthread_mutex_unlock(&slots_lock);
    return 0;
}

void sl_snapfile_release(sl_snapshot *s)
{
    struct sl_snapfile_watch *w = s->file;
    if (!w)
        return;
    pthread_mutex_lock(&slots_lock);
    slot_write(w->slot, 0, 0, NULL);
    pthread_mutex_unlock(&slots_lock);
    close(w->fd);
    free(w);
    s->file = NULL;
}

/* Starts watching the file on fd, mapped at s->map_base, as `at_load` says
 * it was when validated: keeps a descriptor of its own, checks that nothing
 * changed since, registers the mapping. */
static int watch_file(sl_snapshot *s, int fd, const char *path, const struct stat *at_load, sl_errbuf *e)
{
    size_t plen = path ? strlen(path) : 0;
    struct sl_snapfile_watch *w = calloc(1, sizeof *w + plen + 1);
    if (!w)
        return sl_err(e, SL_ENOMEM, "out of memory");
    memcpy(w->path, path ? path : "", plen + 1);
    w->at_load = *at_load;
    w->map_start = (uintptr_t)s->map_base;
    w->map_end = w->map_start + ((s->map_len + SL_PAGE_SIZE - 1) & SL_PAGE_MASK);
    atomic_init(&w->state, WATCH_OK);
    atomic_init(&w->lost_off, 0);
    w->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (w->fd < 0) {
        int err = errno;
        free(w);
        return sl_err(e, SL_EIO, "snapshot file: cannot keep a descriptor of it: %s", strerror(err));
    }
    /* The file mapped must be the file validated. */
    struct stat now;
    char what[sizeof w->what];
    if (fstat(w->fd, &now) != 0 || file_differs(at_load, &now, what, sizeof what)) {
        close(w->fd);
        free(w);
        return sl_err(e, SL_EIO, "snapshot file: the file changed while loading");
    }
    int rc = watch_register(w, e);
    if (rc) {
        close(w->fd);
        free(w);
        return rc;
    }
    s->file = w;
    return 0;
}

/* ---------------- load ---------------- */

static int read_at(int fd, void *buf, size_t len, uint64_t off, sl_errbuf *e)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return sl_err(e, SL_EIO, "snapshot file: read failed at offset 0x%" PRIx64 ": %s", off,
                          n < 0 ? strerror(errno) : "unexpected end of file");
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

#define LOAD_POPULATE 1u   /* prefault the whole mapping (verify reads all of it) */
#define LOAD_FOR_USE 2u    /* sl_snapshot_load: refuse a file others may write */

/* Validates the file on fd without touching the blob; on success *out has
 * everything but the mapping, and *st the file as validated. */
static int parse_fd(sl_snapshot **out, int fd, const char *path, unsigned flags, geometry *g, struct stat *stp,
                    sl_errbuf *e)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return sl_err(e, SL_EIO, "snapshot file: fstat: %s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        return sl_err(e, SL_EINVAL, "snapshot file: not a regular file");
    /* A loaded file must not change (§8): one that anybody may write could.
     * A file without a name (a memfd, an unlinked file) is written only
     * through descriptors its owner hands out, whatever its mode says. */
    if ((flags & LOAD_FOR_USE) && (st.st_mode & S_IWOTH) && st.st_nlink > 0)
        return sl_err(e, SL_EINVAL,
                      "snapshot file %s is world-writable (mode 0%03o): anyone could change it while it is loaded; "
                      "remove that permission (chmod o-w)",
                      path ? path : "", (unsigned)(st.st_mode & 07777));
    *stp = st;
    uint64_t size = (uint64_t)st.st_size;
    if (size < SL_SNAPFILE_HEADER_SIZE)
        return sl_err(e, SL_EFORMAT, "snapshot file: %" PRIu64 " bytes, shorter than the %u-byte header", size,
                      SL_SNAPFILE_HEADER_SIZE);
    uint8_t hdr[SL_SNAPFILE_HEADER_SIZE];
    int rc = read_at(fd, hdr, sizeof hdr, 0, e);
    if (rc || (rc = check_geometry(hdr, size, g, e)))
        return rc;
    uint8_t regions[REGIONS_MAX_BYTES];
    uint8_t *meta = malloc(g->blob_off);
    sl_snapshot *s = calloc(1, sizeof *s);
    if (!meta || !s) {
        rc = sl_err(e, SL_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = read_at(fd, meta, g->blob_off, 0, e)) ||
        (rc = read_at(fd, regions, g->regions_size, g->regions_off, e)))
        goto done;
    /* The header read first (which sized everything) must be the one about
     * to be checksummed and parsed: the file could have changed in between. */
    if (memcmp(hdr, meta, sizeof hdr) != 0) {
        rc = sl_err(e, SL_EIO, "snapshot file: the file changed while loading");
        goto done;
    }
    /* The checksum covers exactly the bytes parsed below. */
    uint8_t sum[SL_HASH_LEN];
    header_checksum(meta, g->blob_off, regions, g->regions_size, sum);
    if (memcmp(sum, meta + SF_CHECKSUM, SL_HASH_LEN) != 0) {
        rc = sl_err(e, SL_EFORMAT, "snapshot file: header checksum mismatch (header, small sections or "
                                   "region records corrupted)");
        goto done;
    }
    if ((rc = parse_fields(s, meta, g, regions, e)) ||
        (rc = family_id(&s->layout, &s->config_id, e)))
        goto done;
done:
    free(meta);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static int map_file(sl_snapshot *s, int fd, const char *path, const geometry *g, const struct stat *st,
                    bool populate, sl_errbuf *e)
{
    void *p = mmap(NULL, g->file_size, PROT_READ, MAP_PRIVATE | (populate ? MAP_POPULATE : 0), fd, 0);
    if (p == MAP_FAILED)
        return sl_err(e, SL_EIO, "snapshot file: mmap of %" PRIu64 " bytes failed: %s", g->file_size,
                      strerror(errno));
    s->map_base = p;
    s->map_len = g->file_size;
    /* From here on the file is watched (a change while we looked at it is
     * caught now; a later one by every use, sl_snapfile_check). */
    int rc = watch_file(s, fd, path, st, e);
    if (rc) {
        munmap(p, g->file_size);
        s->map_base = NULL;
        return rc;
    }
    s->mem = (uint8_t *)p + g->blob_off;
    s->mem_size = g->blob_size;
    atomic_store(&s->refs, 1);
    return 0;
}

static int load_fd(sl_snapshot **out, int fd, const char *path, sl_snapfile_info *info, unsigned flags,
                   sl_errbuf *e)
{
    geometry g;
    sl_snapshot *s;
    struct stat st;
    int rc = parse_fd(&s, fd, path, flags, &g, &st, e);
    if (rc)
        return rc;
    if ((rc = map_file(s, fd, path, &g, &st, flags & LOAD_POPULATE, e))) {
        free(s);
        return rc;
    }
    if (info) {
        info->file_size = g.file_size;
        info->blob_offset = g.blob_off;
        info->blob_size = g.blob_size;
        info->regions_offset = g.regions_off;
        info->regions_size = g.regions_size;
        info->sregs_offset = s->sregs_len ? SL_SNAPFILE_SREGS_AT : 0;
        info->sregs_size = s->sregs_len;
    }
    *out = s;
    return 0;
}

int sl_snapfile_load_fd(sl_snapshot **out, int fd, sl_snapfile_info *info, sl_errbuf *e)
{
    *out = NULL;
    return load_fd(out, fd, NULL, info, 0, e);
}

/* Progress callbacks come at most once per this many bytes hashed or
 * written (and once at the end). */
#define PROGRESS_CHUNK (16u << 20)

typedef struct hash_progress {
    const sl_snapshot *s;
    sl_progress_fn progress;
    void *user;
    uint64_t total;
} hash_progress;

/* Before each chunk of the blob is hashed: tell how far the hash got, and
 * prefault the chunk, so that the time goes where progress shows it (where
 * MADV_POPULATE_READ is missing, the hash's own page faults read it). */
static void hash_step(void *arg, uint64_t off, uint64_t len)
{
    const hash_progress *hp = arg;
    hp->progress(hp->user, off, hp->total);
#ifdef MADV_POPULATE_READ
    /* madvise takes a page-aligned start (chunks of the blob are). */
    uintptr_t a = (uintptr_t)(hp->s->mem + off) & ~(uintptr_t)(SL_PAGE_SIZE - 1);
    (void)madvise((void *)a, (size_t)((uintptr_t)(hp->s->mem + off + len) - a), MADV_POPULATE_READ);
#else
    (void)len;
#endif
}

/* The identity, telling progress in PROGRESS_CHUNK steps when asked (without
 * a callback the load prefaulted the whole mapping in one go). */
static void hash_with_progress(const sl_snapshot *s, sl_progress_fn progress, void *user, uint8_t out[SL_HASH_LEN])
{
    if (!progress) {
        sl_snapshot_compute_hash(s, out);
        return;
    }
    hash_progress hp = {s, progress, user, s->mem_size + (uint64_t)s->n_regions * SL_REGION_RECORD_SIZE};
    sl_snapshot_compute_hash_in_steps(s, PROGRESS_CHUNK, hash_step, &hp, out);
    progress(user, hp.total, hp.total);
}

static int verify_fd(int fd, sl_progress_fn progress, void *user, sl_errbuf *e)
{
    sl_snapshot *s;
    /* Verify reads every byte anyway: prefaulting the mapping in one go is
     * cheaper than taking a page fault per page while hashing. */
    int rc = load_fd(&s, fd, NULL, NULL, progress ? 0 : LOAD_POPULATE, e);
    if (rc)
        return rc;
    uint8_t id[SL_HASH_LEN];
    hash_with_progress(s, progress, user, id);
    /* A file that changed under the hash (a truncated page reads as zeros)
     * says so, rather than "corrupted". */
    if ((rc = sl_snapfile_check(s, "while it was verified", e))) {
        sl_snapshot_free(s);
        return rc;
    }
    if (memcmp(id, s->hash, SL_HASH_LEN) != 0) {
        char want[2 * SL_HASH_LEN + 1], got[2 * SL_HASH_LEN + 1];
        sl_hash_hex(s->hash, want);
        sl_hash_hex(id, got);
        rc = sl_err(e, SL_EHASH, "snapshot file: identity mismatch: header says %.16s..., contents hash to %.16s...",
                    want, got);
    }
    sl_snapshot_free(s);
    return rc;
}

int sl_snapfile_verify_fd(int fd, sl_errbuf *e)
{
    return verify_fd(fd, NULL, NULL, e);
}

/* ---------------- save ---------------- */

/* The header and the small sections, exactly meta_size(s) bytes. */
static int build_meta(const sl_snapshot *s, uint8_t *m, sl_errbuf *e)
{
    const sl_layout *l = &s->layout;
    if (!s->mem || s->mem_size != s->visible_size + s->pt_size || s->n_roots == 0 ||
        s->n_roots > SL_BK_MAX_ROOTS || s->sregs_len > SL_SREGS_MAX || s->n_regions > SL_MAX_REGIONS)
        return sl_err(e, SL_EINVAL, "snapshot is inconsistent; refusing to save it");
    memset(m, 0, meta_size(s));
    memcpy(m + SF_MAGIC, SL_SNAPFILE_MAGIC, 8);
    put32(m, SF_VERSION, SL_SNAPFILE_VERSION);
    put32(m, SF_HEADER_SIZE, SL_SNAPFILE_HEADER_SIZE);
    put32(m, SF_ARCH, s->arch);
    uint64_t regions_size = (uint64_t)s->n_regions * SL_REGION_RECORD_SIZE;
    put64(m, SF_FILE_SIZE, meta_size(s) + s->mem_size + regions_size);
    put64(m, SF_BLOB_OFFSET, meta_size(s));
    put64(m, SF_BLOB_SIZE, s->mem_size);
    put64(m, SF_VISIBLE_SIZE, s->visible_size);
    put64(m, SF_PT_SIZE, s->pt_size);
    put64(m, SF_REGIONS_OFFSET, meta_size(s) + s->mem_size);
    put64(m, SF_REGIONS_SIZE, regions_size);
    put64(m, SF_SREGS_OFFSET, s->sregs_len ? SL_SNAPFILE_SREGS_AT : 0);
    put64(m, SF_SREGS_SIZE, s->sregs_len);
    put64(m, SF_INPUT_SIZE, l->input_size);
    put64(m, SF_OUTPUT_SIZE, l->output_size);
    put64(m, SF_HEAP_SIZE, l->heap_size);
    put64(m, SF_STACK_SIZE, l->stack_size);
    put64(m, SF_SCRATCH_SIZE, l->scratch_size);
    put64(m, SF_INIT_DATA_SIZE, l->init_data_size);
    put32(m, SF_INIT_DATA_PERM, l->init_data_perm);
    put32(m, SF_N_REGIONS, s->n_regions);
    put64(m, SF_PEB_GPA, l->peb_gpa);
    put64(m, SF_IMAGE_GPA, l->image_gpa);
    put64(m, SF_IMAGE_SIZE, l->image_size);
    put64(m, SF_INIT_DATA_GPA, l->init_data_gpa);
    put64(m, SF_HEAP_GPA, l->heap_gpa);
    put64(m, SF_VISIBLE_END, l->visible_end);
    put64(m, SF_LAYOUT_STACK_TOP, l->stack_top);
    put64(m, SF_SCRATCH_GPA, l->scratch_gpa);
    put64(m, SF_SCRATCH_GVA, l->scratch_gva);
    put64(m, SF_PT_GPA, l->pt_gpa);
    put64(m, SF_EXC_STACK_GPA, l->exc_stack_gpa);
    put64(m, SF_BK_GPA, l->bk_gpa);
    put32(m, SF_NEXT_KIND, s->next_kind);
    put32(m, SF_N_ROOTS, s->n_roots);
    put64(m, SF_NEXT_ADDR, s->next_addr);
    put64(m, SF_STACK_TOP, s->stack_top);
    put64(m, SF_GENERATION, s->generation);
    put32(m, SF_CUR_ROOT, s->cur_root);
    put64(m, SF_PAGES_RO, s->stats.pages_ro);
    put64(m, SF_PAGES_COW, s->stats.pages_cow);
    put64(m, SF_PAGES_PT, s->stats.pages_pt);
    put64(m, SF_LEAVES, s->stats.leaves);
    if (s->load_info.valid) {
        put32(m, SF_LOAD_FLAGS, 1u | (s->load_info.pie ? 2u : 0u));
        put64(m, SF_BASE_VA, s->load_info.base_va);
        put64(m, SF_LOAD_ADDR, s->load_info.load_addr);
        put64(m, SF_ENTRY, s->load_info.entry);
    }
    memcpy(m + SF_IDENTITY, s->hash, SL_HASH_LEN);
    for (unsigned i = 0; i < s->n_roots; i++)
        put64(m, SF_ROOTS + 8 * i, s->roots[i]);
    if (s->sregs_len)
        memcpy(m + SL_SNAPFILE_SREGS_AT, s->sregs, s->sregs_len);
    return 0;
}

static int write_all(int fd, const void *buf, uint64_t len, sl_errbuf *e)
{
    const uint8_t *p = buf;
    while (len) {
        size_t chunk = len > (1u << 30) ? (1u << 30) : (size_t)len;
        ssize_t n = write(fd, p, chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return sl_err(e, SL_EIO, "snapshot file: write failed: %s", n < 0 ? strerror(errno) : "no progress");
        p += n;
        len -= (uint64_t)n;
    }
    return 0;
}

/* The directory part of path ("." when none), in buf. */
static int dir_of(const char *path, char *buf, size_t len)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return snprintf(buf, len, ".") < (int)len ? 0 : -1;
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    if (n + 1 > len)
        return -1;
    memcpy(buf, path, n);
    buf[n] = 0;
    return 0;
}

/* Creates a fresh temporary file next to path. */
static int open_temp(const char *path, char *tmp, size_t len, sl_errbuf *e)
{
    static atomic_uint counter;
    for (int attempt = 0; attempt < 100; attempt++) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        unsigned tag = (unsigned)ts.tv_nsec ^ (atomic_fetch_add(&counter, 1) * 2654435761u);
        int n = snprintf(tmp, len, "%s.tmp-%d-%08x", path, (int)getpid(), tag);
        if (n < 0 || (size_t)n >= len)
            return sl_err(e, SL_EINVAL, "snapshot file: path too long");
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST)
            return sl_err(e, SL_EIO, "snapshot file: cannot create %s: %s", tmp, strerror(errno));
    }
    return sl_err(e, SL_EIO, "snapshot file: cannot find a free temporary name for %s", path);
}

/* The blob, in PROGRESS_CHUNK pieces with a progress call before each when
 * asked (done counts the bytes of the file written so far, out of total). */
static int write_blob(int fd, const sl_snapshot *s, uint64_t done, uint64_t total, sl_progress_fn progress,
                      void *user, sl_errbuf *e)
{
    for (uint64_t off = 0, n; off < s->mem_size; off += n) {
        n = s->mem_size - off < PROGRESS_CHUNK ? s->mem_size - off : PROGRESS_CHUNK;
        if (progress)
            progress(user, done + off, total);
        int rc = write_all(fd, s->mem + off, n, e);
        if (rc)
            return rc;
    }
    return 0;
}

static int save(const sl_snapshot *s, const char *path, sl_progress_fn progress, void *user, sl_errbuf *e)
{
    int rc = sl_snapfile_check(s, "before it was saved", e);
    if (rc)
        return rc;
    uint8_t *meta = calloc(1, meta_size(s));
    if (!meta)
        return sl_err(e, SL_ENOMEM, "out of memory");
    uint8_t regions[REGIONS_MAX_BYTES];
    rc = build_meta(s, meta, e);
    if (rc) {
        free(meta);
        return rc;
    }
    uint64_t regions_size = (uint64_t)s->n_regions * SL_REGION_RECORD_SIZE;
    for (unsigned i = 0; i < s->n_regions; i++)
        sl_region_record(&s->regions[i], regions + i * SL_REGION_RECORD_SIZE);
    uint8_t sum[SL_HASH_LEN];
    header_checksum(meta, meta_size(s), regions, regions_size, sum);
    memcpy(meta + SF_CHECKSUM, sum, SL_HASH_LEN);

    /* Never write a file that load would refuse. */
    geometry g;
    sl_snapshot *check = calloc(1, sizeof *check);
    if (!check) {
        free(meta);
        return sl_err(e, SL_ENOMEM, "out of memory");
    }
    rc = check_geometry(meta, meta_size(s) + s->mem_size + regions_size, &g, e);
    if (!rc)
        rc = parse_fields(check, meta, &g, regions, e);
    free(check);
    if (rc) {
        free(meta);
        return rc;
    }

    char tmp[4096], dir[4096];
    int fd = open_temp(path, tmp, sizeof tmp, e);
    if (fd < 0) {
        free(meta);
        return fd;
    }
    uint64_t total = meta_size(s) + s->mem_size + regions_size;
    if ((rc = write_all(fd, meta, meta_size(s), e)) ||
        (rc = write_blob(fd, s, meta_size(s), total, progress, user, e)) ||
        (rc = write_all(fd, regions, regions_size, e)))
        goto fail;
    if (progress)
        progress(user, total, total);
    if (fsync(fd) < 0) {
        rc = sl_err(e, SL_EIO, "snapshot file: fsync: %s", strerror(errno));
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        rc = sl_err(e, SL_EIO, "snapshot file: close: %s", strerror(errno));
        goto fail;
    }
    fd = -1;
    /* A loaded snapshot whose file changed while we copied it: its copy is
     * not the snapshot; PATH keeps what it had. */
    if ((rc = sl_snapfile_check(s, "while it was saved", e)))
        goto fail;
    if (rename(tmp, path) < 0) {
        rc = sl_err(e, SL_EIO, "snapshot file: rename to %s: %s", path, strerror(errno));
        goto fail;
    }
    free(meta);
    /* Make the rename itself durable. */
    if (dir_of(path, dir, sizeof dir) == 0) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            int r = fsync(dfd);
            close(dfd);
            if (r < 0)
                return sl_err(e, SL_EIO, "snapshot file: fsync of directory %s: %s", dir, strerror(errno));
        }
    }
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    free(meta);
    return rc;
}

/* ---------------- inspect ---------------- */

typedef void (*line_fn)(void *user, const char *text);

static void emit(line_fn line, void *user, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void emit(line_fn line, void *user, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    line(user, buf);
}

/* The JSON form of the report (sl_snapshot_inspect_json) is built in one
 * growing buffer. Every string in it is one of ours (names, hex digits):
 * nothing read from the file is copied as text, so nothing needs escaping. */
typedef struct jout {
    char *p;
    size_t len, cap;
    bool oom;
} jout;

static void jput(jout *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jput(jout *j, const char *fmt, ...)
{
    if (j->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(j->p ? j->p + j->len : NULL, j->p ? j->cap - j->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            j->oom = true;
            return;
        }
        if (j->p && (size_t)n < j->cap - j->len) {
            j->len += (size_t)n;
            return;
        }
        size_t ncap = j->cap ? j->cap * 2 : 4096;
        while (ncap - j->len <= (size_t)n)
            ncap *= 2;
        char *np = realloc(j->p, ncap);
        if (!np) {
            j->oom = true;
            return;
        }
        j->p = np;
        j->cap = ncap;
    }
}

#define MAP_LINES_MAX 4096u /* per address space; a hostile table could make millions */

enum backing { BK_BLOB, BK_TABLES, BK_SCRATCH, BK_NONE };
static const char *const backing_name[] = {"blob", "page tables", "scratch", "unbacked"};
static const char *const backing_json[] = {"blob", "page_tables", "scratch", "none"};

typedef struct range {
    bool open;
    uint64_t start, end; /* [start, end) */
    uint8_t kind;
    bool w, x, u;
    enum backing bk;
    bool scratch_window;
} range;

typedef struct inspector {
    const sl_snapshot *s;
    line_fn line;
    void *user;
    jout *json;          /* JSON instead of text lines */
    unsigned next_space; /* JSON: the next address space object to open */
    bool first_item;     /* JSON: no range written yet in the open space */
    unsigned cur_root;
    bool started;
    range r;
    uint64_t lines, dropped;
    /* walk bookkeeping: which tables were reached, from where */
    sl_u64map seen;
    struct owner {
        uint64_t va;
        unsigned root, depth;
    } *owners;
    size_t n_owners, cap_owners;
} inspector;

static void *insp_page(void *ctx, uint64_t gpa)
{
    const sl_snapshot *s = ((inspector *)ctx)->s;
    if (gpa >= SL_BASE_ADDRESS && gpa - SL_BASE_ADDRESS < s->visible_size)
        return s->mem + (gpa - SL_BASE_ADDRESS);
    if (gpa >= s->layout.pt_gpa && gpa - s->layout.pt_gpa < s->pt_size)
        return s->mem + s->visible_size + (gpa - s->layout.pt_gpa);
    return NULL;
}

static bool insp_lookup(void *ctx, uint64_t gpa, unsigned *root, uint64_t *va, unsigned *depth)
{
    inspector *in = ctx;
    uint64_t *i = sl_u64map_get(&in->seen, gpa);
    if (!i)
        return false;
    *root = in->owners[*i].root;
    *va = in->owners[*i].va;
    *depth = in->owners[*i].depth;
    return true;
}

static bool insp_record(void *ctx, uint64_t gpa, unsigned root, uint64_t va, unsigned depth)
{
    inspector *in = ctx;
    if (in->n_owners == in->cap_owners) {
        size_t ncap = in->cap_owners ? in->cap_owners * 2 : 64;
        struct owner *o = realloc(in->owners, ncap * sizeof *o);
        if (!o)
            return false;
        in->owners = o;
        in->cap_owners = ncap;
    }
    if (!sl_u64map_put(&in->seen, gpa, in->n_owners))
        return false;
    in->owners[in->n_owners++] = (struct owner){.va = va, .root = root, .depth = depth};
    return true;
}

/* The memory a restored sandbox has at `gpa` (what compaction,
 * sl_snapshot_from_memory, would copy from there): the guest-visible blob at
 * SL_BASE_ADDRESS, the page tables restore copies to pt_gpa (inside scratch),
 * the rest of scratch, or nothing. *next is the first GPA above `gpa` where
 * that may change, or 0 when it stays the same up to the end of the space. */
static enum backing backing_at(const sl_snapshot *s, uint64_t gpa, uint64_t *next)
{
    const sl_layout *l = &s->layout;
    enum backing bk = BK_NONE;
    if (gpa >= SL_BASE_ADDRESS && gpa - SL_BASE_ADDRESS < s->visible_size)
        bk = BK_BLOB;
    else if (gpa >= l->pt_gpa && gpa - l->pt_gpa < s->pt_size)
        bk = BK_TABLES;
    else if (gpa >= l->scratch_gpa && gpa - l->scratch_gpa < l->scratch_size)
        bk = BK_SCRATCH;
    /* Every bound is below 2^37 (load checked the layout), so none wraps. */
    const uint64_t bounds[] = {SL_BASE_ADDRESS, SL_BASE_ADDRESS + s->visible_size, l->pt_gpa,
                               l->pt_gpa + s->pt_size, l->scratch_gpa, l->scratch_gpa + l->scratch_size};
    *next = 0;
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++)
        if (bounds[i] > gpa && (*next == 0 || bounds[i] < *next))
            *next = bounds[i];
    return bk;
}

static void flush_range(inspector *in)
{
    range *r = &in->r;
    if (!r->open)
        return;
    r->open = false;
    if (in->lines >= MAP_LINES_MAX) {
        in->dropped++;
        return;
    }
    in->lines++;
    uint64_t pages = (r->end - r->start) / SL_PAGE_SIZE;
    if (in->json) {
        jout *j = in->json;
        jput(j, "%s{\"start\":\"0x%" PRIx64 "\",\"end\":\"", in->first_item ? "" : ",", r->start);
        /* A range that ends at the top of the amd64 space: its end is 2^64. */
        if (r->end == 0)
            jput(j, "0x10000000000000000\"");
        else
            jput(j, "0x%" PRIx64 "\"", r->end);
        in->first_item = false;
        if (r->scratch_window) {
            jput(j, ",\"pages\":%" PRIu64 ",\"kind\":\"scratch_window\"}", pages);
            return;
        }
        const char *kind = r->kind == SL_MAP_COW ? "cow" : r->kind == SL_MAP_BASIC && r->w ? "rw" : "ro";
        jput(j, ",\"pages\":%" PRIu64 ",\"kind\":\"%s\",\"perm\":\"r%c%c\",\"user\":%s,\"backing\":\"%s\"}", pages,
             kind, r->w ? 'w' : '-', r->x ? 'x' : '-', r->u ? "true" : "false", backing_json[r->bk]);
        return;
    }
    if (r->scratch_window) {
        emit(in->line, in->user, "  0x%016" PRIx64 "-0x%016" PRIx64 " scratch window (%" PRIu64 " pages, not in the file)",
             r->start, r->end, pages);
        return;
    }
    const char *kind = r->kind == SL_MAP_COW ? "cow" : "ro ";
    if (r->kind == SL_MAP_BASIC && r->w)
        kind = "rw ";
    emit(in->line, in->user, "  0x%016" PRIx64 "-0x%016" PRIx64 " %s r%c%c%s %s (%" PRIu64 " page%s)", r->start, r->end,
         kind, r->w ? 'w' : '-', r->x ? 'x' : '-', r->u ? " user" : "", backing_name[r->bk], pages,
         pages == 1 ? "" : "s");
}

/* Appends [gva, gva + len) to the open range when it continues it with the
 * same description, else flushes that range and opens a new one. `end` is
 * exclusive and wraps to 0 for a piece that ends at the top of the amd64
 * space; nothing continues such a range. */
static void add_piece(inspector *in, uint64_t gva, uint64_t len, const sl_perm *p, enum backing bk, bool win)
{
    range nr = {.open = true, .start = gva, .end = gva + len, .kind = p->kind, .w = p->writable,
                .x = p->executable, .u = p->user, .bk = bk, .scratch_window = win};
    range *r = &in->r;
    bool same = r->open && r->end != 0 && r->end == nr.start &&
                (win ? r->scratch_window
                     : (!r->scratch_window && r->kind == nr.kind && r->w == nr.w && r->x == nr.x && r->u == nr.u &&
                        r->bk == nr.bk));
    if (same) {
        r->end = nr.end;
    } else {
        flush_range(in);
        *r = nr;
    }
}

/* JSON: closes the open address space object (its ranges array). */
static void json_space_close(inspector *in)
{
    if (in->next_space == 0)
        return;
    jput(in->json, "],\"more_ranges\":%" PRIu64 "}", in->dropped);
}

/* JSON: opens the object of every address space up to `root` (a space the
 * walk never reaches, empty or sharing another's root, still gets one). */
static void json_spaces_to(inspector *in, unsigned root)
{
    const sl_snapshot *s = in->s;
    while (in->next_space <= root && in->next_space < s->n_roots) {
        json_space_close(in);
        unsigned i = in->next_space++;
        int same = -1;
        for (unsigned k = 0; k < i && same < 0; k++)
            if (s->roots[k] == s->roots[i])
                same = (int)k;
        jput(in->json, "%s{\"index\":%u,\"root\":\"0x%" PRIx64 "\",\"current\":%s,\"same_root_as\":", i ? "," : "", i,
             s->roots[i], i == s->cur_root ? "true" : "false");
        if (same >= 0)
            jput(in->json, "%d", same);
        else
            jput(in->json, "null");
        jput(in->json, ",\"ranges\":[");
        in->first_item = true;
        in->lines = in->dropped = 0;
    }
}

static void space_header(inspector *in, unsigned root)
{
    flush_range(in);
    if (in->json) {
        in->started = true;
        in->cur_root = root;
        json_spaces_to(in, root);
        return;
    }
    if (in->started && in->dropped)
        emit(in->line, in->user, "  ... %" PRIu64 " more ranges", in->dropped);
    in->started = true;
    in->cur_root = root;
    in->lines = in->dropped = 0;
    emit(in->line, in->user, "address space %u (root table at GPA 0x%" PRIx64 ")%s:", root, in->s->roots[root],
         root == in->s->cur_root ? " current" : "");
}

static bool insp_visit(void *arg, const sl_walk_item *it)
{
    inspector *in = arg;
    const sl_snapshot *s = in->s;
    if (!in->started || it->root != in->cur_root)
        space_header(in, it->root);
    if (it->kind == SL_WALK_ANOTHER_SPACE) {
        flush_range(in);
        if (in->lines < MAP_LINES_MAX && in->json) {
            in->lines++;
            jput(in->json,
                 "%s{\"start\":\"0x%" PRIx64 "\",\"kind\":\"shared_table\",\"level\":%u,\"shared_with\":%u,"
                 "\"shared_va\":\"0x%" PRIx64 "\"}",
                 in->first_item ? "" : ",", it->our_va, it->depth + 1, it->owner_root, it->their_va);
            in->first_item = false;
        } else if (in->lines < MAP_LINES_MAX) {
            in->lines++;
            emit(in->line, in->user, "  0x%016" PRIx64 " level-%u table shared with address space %u (its VA 0x%" PRIx64 ")",
                 it->our_va, it->depth + 1, it->owner_root, it->their_va);
        } else {
            in->dropped++;
        }
        return true;
    }
    /* A leaf of any size (4 KiB, 2 MiB, 1 GiB, 4 MiB) is described piece by
     * piece, as compaction copies it page by page: split where the scratch
     * window over its GVAs or the backing of its GPAs changes. At most a few
     * pieces per leaf, whatever its size. */
    const sl_mapping *m = &it->map;
    const sl_layout *l = &s->layout;
    uint64_t size = m->size ? m->size : SL_PAGE_SIZE;
    for (uint64_t off = 0; off < size;) {
        uint64_t gva = m->gva + off, gpa = m->gpa + off, next_gpa, len = size - off;
        enum backing bk = backing_at(s, gpa, &next_gpa);
        if (next_gpa && next_gpa - gpa < len)
            len = next_gpa - gpa;
        bool win = gva >= l->scratch_gva && gva - l->scratch_gva < l->scratch_size;
        uint64_t win_bound = win ? l->scratch_gva + l->scratch_size : l->scratch_gva;
        if (win_bound > gva && win_bound - gva < len)
            len = win_bound - gva;
        add_piece(in, gva, len, &m->perm, bk, win);
        off += len;
    }
    return true;
}

static void inspect_map(const sl_snapshot *s, line_fn line, void *user, jout *json)
{
    inspector in = {.s = s, .line = line, .user = user, .json = json};
    sl_u64map_init(&in.seen);
    sl_pt_mem m = {.ctx = &in, .page = insp_page, .alloc = NULL};
    sl_pt_seen seen = {.ctx = &in, .lookup = insp_lookup, .record = insp_record};
    /* A root listed twice shares the first one's tables: the walk skips it. */
    for (unsigned i = 0; i < s->n_roots && !json; i++)
        for (unsigned j = 0; j < i; j++)
            if (s->roots[j] == s->roots[i]) {
                emit(line, user, "address space %u uses the same root table as address space %u", i, j);
                break;
            }
    if (json)
        jput(json, ",\"spaces\":[");
    int rc = sl_pt_walk_spaces(s->arch, &m, s->roots, s->n_roots, &seen, insp_visit, &in);
    flush_range(&in);
    if (json) {
        json_spaces_to(&in, s->n_roots - 1);
        json_space_close(&in);
        jput(json, "],\"walk_error\":");
        if (rc)
            jput(json, "%d", rc);
        else
            jput(json, "null");
    } else {
        if (in.dropped)
            emit(line, user, "  ... %" PRIu64 " more ranges", in.dropped);
        if (rc)
            emit(line, user, "(page-table walk stopped: error %d)", rc);
    }
    sl_u64map_free(&in.seen);
    free(in.owners);
}

static void perm_str(uint32_t perm, char out[4])
{
    out[0] = perm & SL_PERM_READ ? 'r' : '-';
    out[1] = perm & SL_PERM_WRITE ? 'w' : '-';
    out[2] = perm & SL_PERM_EXEC ? 'x' : '-';
    out[3] = 0;
}

static const char *region_kind(uint32_t k)
{
    switch (k) {
    case SL_RK_PEB: return "peb";
    case SL_RK_IMAGE: return "image";
    case SL_RK_INIT_DATA: return "init-data";
    case SL_RK_HEAP: return "heap";
    case SL_RK_KERNEL: return "kernel";
    default: return "?";
    }
}

int sl_snapfile_inspect_fd(int fd, line_fn line, void *user, sl_errbuf *e)
{
    sl_snapshot *s;
    sl_snapfile_info fi;
    int rc = sl_snapfile_load_fd(&s, fd, &fi, e);
    if (rc)
        return rc;
    const sl_layout *l = &s->layout;
    char hex[2 * SL_HASH_LEN + 1], perm[4];
    sl_hash_hex(s->hash, hex);
    emit(line, user, "format: sandlet snapshot file version %u", SL_SNAPFILE_VERSION);
    emit(line, user, "arch: %s", arch_name(s->arch));
    emit(line, user, "file size: %" PRIu64 " bytes", fi.file_size);
    emit(line, user, "identity: %s", hex);
    emit(line, user, "blob: offset=%" PRIu64 " size=%" PRIu64 " (guest-visible %" PRIu64 " + page tables %" PRIu64 ")",
         fi.blob_offset, fi.blob_size, s->visible_size, s->pt_size);
    emit(line, user, "regions: offset=%" PRIu64 " size=%" PRIu64 " (%u records)", fi.regions_offset, fi.regions_size,
         s->n_regions);
    emit(line, user, "identity covers: offset=%" PRIu64 " size=%" PRIu64 " (blob then region records, to the end of the file)",
         fi.blob_offset, fi.blob_size + fi.regions_size);
    emit(line, user, "sregs: offset=%" PRIu64 " size=%" PRIu64, fi.sregs_offset, fi.sregs_size);
    perm_str(l->init_data_perm, perm);
    emit(line, user,
         "config: input=%" PRIu64 " output=%" PRIu64 " heap=%" PRIu64 " stack=%" PRIu64 " scratch=%" PRIu64
         " init_data=%" PRIu64 " (%s)",
         l->input_size, l->output_size, l->heap_size, l->stack_size, l->scratch_size, l->init_data_size,
         l->init_data_size ? perm : "none");
    emit(line, user, "scratch: gpa=0x%" PRIx64 " gva=0x%" PRIx64 " page tables at gpa=0x%" PRIx64, l->scratch_gpa,
         l->scratch_gva, l->pt_gpa);
    if (l->image_size)
        emit(line, user,
             "placement: peb=0x%" PRIx64 " image=0x%" PRIx64 "+0x%" PRIx64 " init_data=0x%" PRIx64 " heap=0x%" PRIx64
             " end=0x%" PRIx64,
             l->peb_gpa, l->image_gpa, l->image_size, l->init_data_gpa, l->heap_gpa, l->visible_end);
    emit(line, user, "next: %s at 0x%" PRIx64, s->next_kind == SL_NEXT_CALL ? "call (dispatch)" : "initialise (entry)",
         s->next_addr);
    emit(line, user, "stack top: 0x%" PRIx64, s->stack_top);
    emit(line, user, "generation: %" PRIu64, s->generation);
    emit(line, user, "pages: %" PRIu64 " read-only, %" PRIu64 " cow, %" PRIu64 " page tables (%" PRIu64 " mapped virtual pages)",
         s->stats.pages_ro, s->stats.pages_cow, s->stats.pages_pt, s->stats.leaves);
    emit(line, user, "address spaces: %u (current %u)", s->n_roots, s->cur_root);
    if (s->load_info.valid)
        emit(line, user, "load info: %s base_va=0x%" PRIx64 " load_addr=0x%" PRIx64 " entry=0x%" PRIx64,
             s->load_info.pie ? "pie" : "fixed", s->load_info.base_va, s->load_info.load_addr, s->load_info.entry);
    for (unsigned i = 0; i < s->n_regions; i++) {
        const sl_region *r = &s->regions[i];
        emit(line, user, "region %u: %s gpa=0x%" PRIx64 " gva=0x%" PRIx64 " size=0x%" PRIx64 " %c%c%c%s", i,
             region_kind(r->kind), r->gpa, r->gva, r->size, r->flags & SL_RF_READ ? 'r' : '-',
             r->flags & SL_RF_WRITE ? 'w' : '-', r->flags & SL_RF_EXEC ? 'x' : '-',
             r->flags & SL_RF_USER ? " user" : "");
    }
    inspect_map(s, line, user, NULL);
    sl_snapshot_free(s);
    return 0;
}

static void json_perm(jout *j, const char *key, uint32_t perm)
{
    char p[4];
    perm_str(perm, p);
    jput(j, ",\"%s\":\"%s\"", key, p);
}

/* The report of sl_snapfile_inspect_fd as one JSON object: the same facts,
 * named for programs (schema: docs/cli.md, "JSON output"). Addresses are
 * hex strings (64-bit values that double-based readers would round), sizes
 * and counts plain numbers. */
static int inspect_json_fd(int fd, jout *j, sl_errbuf *e)
{
    sl_snapshot *s;
    sl_snapfile_info fi;
    int rc = sl_snapfile_load_fd(&s, fd, &fi, e);
    if (rc)
        return rc;
    const sl_layout *l = &s->layout;
    char hex[2 * SL_HASH_LEN + 1];
    sl_hash_hex(s->hash, hex);
    jput(j, "{\"format_version\":%u,\"arch\":\"%s\",\"file_size\":%" PRIu64 ",\"identity\":\"%s\"",
         SL_SNAPFILE_VERSION, arch_name(s->arch), fi.file_size, hex);
    jput(j,
         ",\"blob\":{\"offset\":%" PRIu64 ",\"size\":%" PRIu64 ",\"visible_size\":%" PRIu64
         ",\"page_table_size\":%" PRIu64 "}",
         fi.blob_offset, fi.blob_size, s->visible_size, s->pt_size);
    jput(j, ",\"region_records\":{\"offset\":%" PRIu64 ",\"size\":%" PRIu64 ",\"count\":%u}", fi.regions_offset,
         fi.regions_size, s->n_regions);
    jput(j, ",\"identity_covers\":{\"offset\":%" PRIu64 ",\"size\":%" PRIu64 "}", fi.blob_offset,
         fi.blob_size + fi.regions_size);
    jput(j, ",\"sregs\":{\"offset\":%" PRIu64 ",\"size\":%" PRIu64 "}", fi.sregs_offset, fi.sregs_size);
    jput(j,
         ",\"config\":{\"input_size\":%" PRIu64 ",\"output_size\":%" PRIu64 ",\"heap_size\":%" PRIu64
         ",\"stack_size\":%" PRIu64 ",\"scratch_size\":%" PRIu64 ",\"init_data_size\":%" PRIu64,
         l->input_size, l->output_size, l->heap_size, l->stack_size, l->scratch_size, l->init_data_size);
    if (l->init_data_size)
        json_perm(j, "init_data_perm", l->init_data_perm);
    else
        jput(j, ",\"init_data_perm\":null");
    jput(j, "},\"scratch\":{\"gpa\":\"0x%" PRIx64 "\",\"gva\":\"0x%" PRIx64 "\",\"page_tables_gpa\":\"0x%" PRIx64 "\"}",
         l->scratch_gpa, l->scratch_gva, l->pt_gpa);
    if (l->image_size)
        jput(j,
             ",\"placement\":{\"peb\":\"0x%" PRIx64 "\",\"image\":\"0x%" PRIx64 "\",\"image_size\":%" PRIu64
             ",\"init_data\":\"0x%" PRIx64 "\",\"heap\":\"0x%" PRIx64 "\",\"end\":\"0x%" PRIx64 "\"}",
             l->peb_gpa, l->image_gpa, l->image_size, l->init_data_gpa, l->heap_gpa, l->visible_end);
    else
        jput(j, ",\"placement\":null");
    jput(j, ",\"next\":{\"kind\":\"%s\",\"address\":\"0x%" PRIx64 "\"},\"stack_top\":\"0x%" PRIx64 "\"",
         s->next_kind == SL_NEXT_CALL ? "call" : "initialise", s->next_addr, s->stack_top);
    jput(j, ",\"generation\":%" PRIu64, s->generation);
    jput(j,
         ",\"pages\":{\"read_only\":%" PRIu64 ",\"cow\":%" PRIu64 ",\"page_tables\":%" PRIu64
         ",\"mapped_virtual\":%" PRIu64 "}",
         s->stats.pages_ro, s->stats.pages_cow, s->stats.pages_pt, s->stats.leaves);
    jput(j, ",\"address_spaces\":%u,\"current_space\":%u", s->n_roots, s->cur_root);
    if (s->load_info.valid)
        jput(j,
             ",\"load_info\":{\"pie\":%s,\"base_va\":\"0x%" PRIx64 "\",\"load_addr\":\"0x%" PRIx64
             "\",\"entry\":\"0x%" PRIx64 "\"}",
             s->load_info.pie ? "true" : "false", s->load_info.base_va, s->load_info.load_addr, s->load_info.entry);
    else
        jput(j, ",\"load_info\":null");
    jput(j, ",\"regions\":[");
    for (unsigned i = 0; i < s->n_regions; i++) {
        const sl_region *r = &s->regions[i];
        char perm[4] = {r->flags & SL_RF_READ ? 'r' : '-', r->flags & SL_RF_WRITE ? 'w' : '-',
                        r->flags & SL_RF_EXEC ? 'x' : '-', 0};
        jput(j,
             "%s{\"index\":%u,\"kind\":\"%s\",\"gpa\":\"0x%" PRIx64 "\",\"gva\":\"0x%" PRIx64
             "\",\"size\":%" PRIu64 ",\"perm\":\"%s\",\"user\":%s}",
             i ? "," : "", i, region_kind(r->kind), r->gpa, r->gva, r->size, perm,
             r->flags & SL_RF_USER ? "true" : "false");
    }
    jput(j, "]");
    inspect_map(s, NULL, NULL, j);
    jput(j, "}");
    sl_snapshot_free(s);
    return j->oom ? sl_err(e, SL_ENOMEM, "snapshot inspect: out of memory") : 0;
}

/* ---------------- public API ---------------- */

static int report(int rc, const sl_errbuf *e, char *err, size_t errlen)
{
    if (rc && err && errlen)
        snprintf(err, errlen, "%s", e->msg);
    return rc;
}

static int open_ro(const char *path, sl_errbuf *e) { return sl_open_regular(path, "snapshot file", e); }

int sl_snapshot_save(const sl_snapshot *snap, const char *path, char *err, size_t errlen)
{
    return sl_snapshot_save_progress(snap, path, NULL, NULL, err, errlen);
}

int sl_snapshot_save_progress(const sl_snapshot *snap, const char *path, sl_progress_fn progress, void *user,
                              char *err, size_t errlen)
{
    sl_errbuf e = {{0}};
    int rc = !snap || !path ? sl_err(&e, SL_EINVAL, "snapshot file: no snapshot or no path")
                            : save(snap, path, progress, user, &e);
    return report(rc, &e, err, errlen);
}

int sl_snapshot_load(sl_snapshot **out, const char *path, char *err, size_t errlen)
{
    sl_errbuf e = {{0}};
    int rc;
    if (!out)
        return report(sl_err(&e, SL_EINVAL, "snapshot file: no output"), &e, err, errlen);
    *out = NULL;
    int fd = open_ro(path, &e);
    if (fd < 0)
        return report(fd, &e, err, errlen);
    rc = load_fd(out, fd, path, NULL, LOAD_FOR_USE, &e);
    close(fd); /* the snapshot keeps a descriptor of its own */
    return report(rc, &e, err, errlen);
}

int sl_snapshot_verify_file(const char *path, char *err, size_t errlen)
{
    return sl_snapshot_verify_file_progress(path, NULL, NULL, err, errlen);
}

int sl_snapshot_verify_file_progress(const char *path, sl_progress_fn progress, void *user, char *err,
                                     size_t errlen)
{
    sl_errbuf e = {{0}};
    int fd = open_ro(path, &e);
    if (fd < 0)
        return report(fd, &e, err, errlen);
    int rc = verify_fd(fd, progress, user, &e);
    close(fd);
    return report(rc, &e, err, errlen);
}

int sl_snapshot_inspect(const char *path, void (*line)(void *user, const char *text), void *user, char *err,
                        size_t errlen)
{
    sl_errbuf e = {{0}};
    if (!line)
        return report(sl_err(&e, SL_EINVAL, "snapshot inspect: no line callback"), &e, err, errlen);
    int fd = open_ro(path, &e);
    if (fd < 0)
        return report(fd, &e, err, errlen);
    int rc = sl_snapfile_inspect_fd(fd, line, user, &e);
    close(fd);
    return report(rc, &e, err, errlen);
}

int sl_snapshot_inspect_json(const char *path, char **json, char *err, size_t errlen)
{
    sl_errbuf e = {{0}};
    if (!json)
        return report(sl_err(&e, SL_EINVAL, "snapshot inspect: no output"), &e, err, errlen);
    *json = NULL;
    int fd = open_ro(path, &e);
    if (fd < 0)
        return report(fd, &e, err, errlen);
    jout j = {0};
    int rc = inspect_json_fd(fd, &j, &e);
    close(fd);
    if (rc)
        free(j.p);
    else
        *json = j.p;
    return report(rc, &e, err, errlen);
}
