/* The checks a snapshot file must pass (snapfile_format.h): the geometry of
 * its sections, then, once the checksum matched, every header field on its
 * own terms and against the others, the CPU state and the region records.
 * Each failure names the field, its value and the rule it broke
 * (docs/snapshot-format.md states the same rules). */
#include "snapfile_format.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vcpu.h"
#include "snapshot_impl.h" /* the file codec reads and builds the struct */

static bool page_aligned(uint64_t v) { return (v & (SL_PAGE_SIZE - 1)) == 0; }

static bool all_zero(const uint8_t *p, uint64_t from, uint64_t to)
{
    for (uint64_t i = from; i < to; i++)
        if (p[i])
            return false;
    return true;
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

/* The field of the decoded header h, named as in the table. */
#define BAD(code, field, ...) bad_field(e, code, #field, h->field, __VA_ARGS__)

/* A u64 field of the header, or of the layout, by its offset in the struct. */
typedef struct field_at {
    const char *name;
    size_t at;
} field_at;
#define FIELD(f) {#f, offsetof(sl_snapfile_header, f)}

static uint64_t u64_at(const void *base, size_t at)
{
    uint64_t v;
    memcpy(&v, (const uint8_t *)base + at, sizeof v);
    return v;
}

/* ---------------- the sections ---------------- */

/* Versions 3 and 4 have no child files and no index: their bytes for
 * those fields are zero, and they read as the full file they are. */
static int complete_old_version(sl_snapfile_header *h, sl_errbuf *e)
{
    if (h->version >= 5)
        return 0;
    if (h->own_size || h->runs_offset || h->runs_size || h->index_offset || h->index_size ||
        h->parent_name_size || h->parent_name_offset || h->parent_layout)
        return sl_err(e, SL_EFORMAT, "snapshot file: reserved header bytes are not zero (version %u has no child "
                      "files)", h->version);
    h->own_size = h->blob_size;
    h->runs_offset = h->index_offset = h->file_size; /* checked below: the region records end the file */
    return 0;
}

/* One section after the other: `off` must be where the previous one ended,
 * and `size` must fit in what is left of the file. */
static int section_at(const char *off_field, uint64_t off, const char *size_field, uint64_t size, uint64_t expect,
                      uint64_t file_size, sl_errbuf *e)
{
    if (off != expect)
        return bad_field(e, SL_EFORMAT, off_field, off,
                         "must follow the previous section directly (expected 0x%" PRIx64 ")", expect);
    if (size > file_size - off)
        return bad_field(e, SL_EFORMAT, size_field, size,
                         "runs past the end of the file (section at 0x%" PRIx64 ", file 0x%" PRIx64 " bytes)", off,
                         file_size);
    return 0;
}

/* A child's run table and every file's index: record multiples, bounded by
 * the pages they describe (a run covers at least one page; the index holds
 * at most one entry per own page). */
static int check_tables(const sl_snapfile_header *h, sl_errbuf *e)
{
    uint64_t blob_pages = h->blob_size / SL_PAGE_SIZE, own_pages = h->own_size / SL_PAGE_SIZE;
    bool child = sl_snapfile_is_child(h);
    if (h->runs_size % SL_SNAPFILE_RUN_SIZE || h->runs_size / SL_SNAPFILE_RUN_SIZE > blob_pages ||
        (child ? h->runs_size == 0 : h->runs_size != 0))
        return BAD(SL_EFORMAT, runs_size, "must be %s of %u bytes, at most one run per page of the blob",
                   child ? "(in a child file) a non-zero multiple" : "(in a full file) 0, not a multiple",
                   SL_SNAPFILE_RUN_SIZE);
    /* A full file ends with what its identity hashes, and nothing else. */
    if (h->index_size % SL_SNAPFILE_INDEX_ENTRY || h->index_size / SL_SNAPFILE_INDEX_ENTRY > own_pages ||
        (!child && h->index_size))
        return BAD(SL_EFORMAT, index_size, "must be %s of %u bytes, at most one entry per own page",
                   child ? "(in a child file) a multiple" : "(in a full file) 0, not a multiple",
                   SL_SNAPFILE_INDEX_ENTRY);
    return 0;
}

int sl_snapfile_check_geometry(sl_snapfile_header *h, uint64_t actual_size, sl_errbuf *e)
{
    if (memcmp(h->magic, SL_SNAPFILE_MAGIC, sizeof h->magic) != 0)
        return sl_err(e, SL_EFORMAT, "snapshot file: bad magic (not a sandlet snapshot file)");
    if (h->version < SL_SNAPFILE_VERSION_MIN || h->version > SL_SNAPFILE_VERSION)
        return BAD(SL_EVERSION, version, "is not a supported format version (%u to %u)", SL_SNAPFILE_VERSION_MIN,
                   SL_SNAPFILE_VERSION);
    if (h->header_size != SL_SNAPFILE_HEADER_SIZE)
        return BAD(SL_EFORMAT, header_size, "must be 0x%x", SL_SNAPFILE_HEADER_SIZE);
    if (h->file_size != actual_size)
        return BAD(SL_EFORMAT, file_size, "differs from the file's size 0x%" PRIx64 " (truncated or extended file)",
                   actual_size);
    int rc = complete_old_version(h, e);
    if (rc)
        return rc;
    uint64_t blob_off = h->blob_offset, file_size = h->file_size;
    if (!page_aligned(blob_off) || blob_off < SL_PAGE_SIZE || blob_off > SL_SNAPFILE_META_MAX)
        return BAD(SL_EFORMAT, blob_offset, "must be page-aligned and in 0x%x..0x%x", SL_PAGE_SIZE,
                   SL_SNAPFILE_META_MAX);
    if (blob_off > file_size)
        return BAD(SL_EFORMAT, blob_offset, "is past the end of the file (0x%" PRIx64 ")", file_size);
    if (!page_aligned(h->blob_size) || h->blob_size == 0)
        return BAD(SL_EFORMAT, blob_size, "must be a non-zero multiple of the page size");
    if (!sl_snapfile_is_child(h) && h->blob_size > file_size - blob_off)
        return BAD(SL_EFORMAT, blob_size,
                   "runs past the end of the file (blob at 0x%" PRIx64 ", file 0x%" PRIx64 " bytes)", blob_off,
                   file_size);
    /* A full file holds the whole blob; a child the pages its chain lacks. */
    if (!page_aligned(h->own_size) || h->own_size > h->blob_size ||
        (!sl_snapfile_is_child(h) && h->own_size != h->blob_size))
        return BAD(SL_EFORMAT, own_size, "must be a multiple of the page size, blob_size in a full file and at most "
                   "blob_size (0x%" PRIx64 ") in a child", h->blob_size);
    if (h->own_size > file_size - blob_off)
        return BAD(SL_EFORMAT, own_size,
                   "runs past the end of the file (pages at 0x%" PRIx64 ", file 0x%" PRIx64 " bytes)", blob_off,
                   file_size);
    if (h->regions_size > SL_SNAPFILE_REGIONS_MAX || h->regions_size % SL_REGION_RECORD_SIZE)
        return BAD(SL_ERANGE, regions_size, "must be a multiple of %u and at most %u", SL_REGION_RECORD_SIZE,
                   SL_SNAPFILE_REGIONS_MAX);
    if ((rc = check_tables(h, e)) || (rc = section_at("regions_offset", h->regions_offset, "regions_size", h->regions_size,
                         blob_off + h->own_size, file_size, e)) ||
        (rc = section_at("runs_offset", h->runs_offset, "runs_size", h->runs_size,
                         h->regions_offset + h->regions_size, file_size, e)) ||
        (rc = section_at("index_offset", h->index_offset, "index_size", h->index_size,
                         h->runs_offset + h->runs_size, file_size, e)))
        return rc;
    if (h->index_size != file_size - h->index_offset)
        return BAD(SL_EFORMAT, index_size, "must end the file exactly (0x%" PRIx64 " bytes left after the runs)",
                   file_size - h->index_offset);
    return 0;
}

/* ---------------- the configuration and the layout ---------------- */

/* The configuration the stored sizes describe. Stored sizes are final: page
 * multiples, no zero "defaults". */
static int config_of(const sl_snapfile_header *h, sl_config *cfg, sl_errbuf *e)
{
    static const field_at sizes[] = {FIELD(input_size), FIELD(output_size), FIELD(heap_size), FIELD(stack_size),
                                     FIELD(scratch_size)};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint64_t v = u64_at(h, sizes[i].at);
        if (v == 0 || !page_aligned(v) || v > SL_MAX_MEMORY)
            return bad_field(e, SL_ERANGE, sizes[i].name, v,
                             "must be a non-zero multiple of the page size up to 0x%llx",
                             (unsigned long long)SL_MAX_MEMORY);
    }
    if (!page_aligned(h->init_data_size) || h->init_data_size > SL_MAX_MEMORY)
        return BAD(SL_ERANGE, init_data_size, "must be a multiple of the page size up to 0x%llx",
                   (unsigned long long)SL_MAX_MEMORY);
    if (h->init_data_size == 0 ? h->init_data_perm != 0 : (h->init_data_perm == 0 || (h->init_data_perm & ~7u)))
        return BAD(SL_EFORMAT, init_data_perm, "must be 0 without init data, else a non-empty set of r/w/x bits");
    /* Only the size of init data shapes the layout; its bytes are in the blob. */
    static const uint8_t dummy;
    *cfg = (sl_config){.input_size = h->input_size,
                       .output_size = h->output_size,
                       .heap_size = h->heap_size,
                       .stack_size = h->stack_size,
                       .scratch_size = h->scratch_size,
                       .init_data = h->init_data_size ? &dummy : NULL,
                       .init_data_size = h->init_data_size,
                       .init_data_perm = h->init_data_perm};
    return 0;
}

/* A stored field and the layout member it must equal. */
typedef struct derived {
    field_at field;
    size_t layout_at;
} derived;
#define DERIVED(f, m) {FIELD(f), offsetof(sl_layout, m)}

static int check_derived(const sl_snapfile_header *h, const sl_layout *l, const derived *d, size_t n, sl_errbuf *e)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t stored = u64_at(h, d[i].field.at), want = u64_at(l, d[i].layout_at);
        if (stored != want)
            return bad_field(e, SL_EFORMAT, d[i].field.name, stored,
                             "disagrees with the layout derived from the configuration (0x%" PRIx64 ")", want);
    }
    return 0;
}

/* Placement of a snapshot made from a binary; all zero when the layout was
 * never placed (it is informational once compacted). */
static int check_placement(const sl_snapfile_header *h, sl_layout *l, sl_errbuf *e)
{
    static const derived placed[] = {DERIVED(init_data_gpa, init_data_gpa), DERIVED(heap_gpa, heap_gpa),
                                     DERIVED(visible_end, visible_end)};
    if (!h->image_gpa && !h->image_size && !h->init_data_gpa && !h->heap_gpa && !h->visible_end)
        return 0;
    if (!page_aligned(h->image_size))
        return BAD(SL_EFORMAT, image_size, "is not a multiple of the page size");
    /* The header keeps GPAs only: place as a PIE after a kernel that ends
     * where the image starts, and check that the rest follows. */
    uint64_t after_peb = l->peb_gpa + SL_PAGE_SIZE;
    if (h->image_gpa < after_peb)
        return BAD(SL_EFORMAT, image_gpa, "is below the end of the PEB");
    sl_errbuf le;
    if (sl_layout_place(l, h->image_gpa - after_peb, 0, h->image_size, false, &le))
        return BAD(SL_EFORMAT, image_gpa, "does not place: %s", le.msg);
    return check_derived(h, l, placed, sizeof placed / sizeof placed[0], e);
}

/* Configuration sizes -> layout, with every derived field cross-checked. */
static int parse_layout(const sl_snapfile_header *h, unsigned arch, sl_layout *l, sl_errbuf *e)
{
    static const derived fixed[] = {DERIVED(layout_stack_top, stack_top), DERIVED(scratch_gpa, scratch_gpa),
                                    DERIVED(scratch_gva, scratch_gva),    DERIVED(pt_gpa, pt_gpa),
                                    DERIVED(exc_stack_gpa, exc_stack_gpa), DERIVED(bk_gpa, bk_gpa),
                                    DERIVED(peb_gpa, peb_gpa)};
    sl_config cfg;
    sl_errbuf le;
    int rc = config_of(h, &cfg, e);
    if (rc)
        return rc;
    if (sl_layout_config(l, arch, &cfg, &le))
        return sl_err(e, SL_ERANGE, "snapshot file: configuration rejected: %s", le.msg);
    if ((rc = check_derived(h, l, fixed, sizeof fixed / sizeof fixed[0], e)))
        return rc;
    return check_placement(h, l, e);
}

/* ---------------- the snapshot's own fields ---------------- */

/* The blob: visible pages then the tables. */
static int check_blob(const sl_snapshot *s, const sl_snapfile_header *h, sl_errbuf *e)
{
    const sl_layout *l = &s->layout;
    if (!page_aligned(h->visible_size) || h->visible_size == 0 || h->visible_size > l->scratch_gpa - SL_BASE_ADDRESS)
        return BAD(SL_ERANGE, visible_size,
                   "must be a non-zero multiple of the page size ending below scratch at 0x%" PRIx64, l->scratch_gpa);
    uint64_t room = l->exc_stack_gpa - l->pt_gpa - SL_PAGE_SIZE;
    if (!page_aligned(h->pt_size) || h->pt_size == 0 || h->pt_size > room)
        return BAD(SL_ERANGE, pt_size,
                   "must be a non-zero multiple of the page size up to the 0x%" PRIx64 " bytes scratch has for tables",
                   room);
    if (h->blob_size != h->visible_size + h->pt_size)
        return BAD(SL_EFORMAT, blob_size, "is not visible_size + pt_size (0x%" PRIx64 ")",
                   h->visible_size + h->pt_size);
    return 0;
}

/* Roots: page tables where restore puts them. */
static int parse_roots(sl_snapshot *s, const sl_snapfile_header *h, sl_errbuf *e)
{
    const sl_layout *l = &s->layout;
    if (h->n_roots == 0 || h->n_roots > SL_BK_MAX_ROOTS)
        return BAD(SL_ERANGE, n_roots, "must be 1..%u", SL_BK_MAX_ROOTS);
    if (h->cur_root >= h->n_roots)
        return BAD(SL_ERANGE, cur_root, "must be below n_roots (%u)", h->n_roots);
    for (unsigned i = 0; i < SL_BK_MAX_ROOTS; i++) {
        uint64_t r = h->roots[i];
        if (i >= h->n_roots) {
            if (r)
                return bad_field(e, SL_EFORMAT, "roots", r, "entry %u is past n_roots and must be 0", i);
            continue;
        }
        if (!page_aligned(r) || r < l->pt_gpa || r - l->pt_gpa >= h->pt_size)
            return bad_field(e, SL_EFORMAT, "roots", r,
                             "entry %u is not a page-aligned table in 0x%" PRIx64 "+0x%" PRIx64, i, l->pt_gpa,
                             h->pt_size);
        s->roots[i] = r;
    }
    return 0;
}

/* What runs next, on which stack. */
static int check_next(const sl_snapshot *s, const sl_snapfile_header *h, sl_errbuf *e)
{
    const sl_layout *l = &s->layout;
    if (h->next_kind == SL_NEXT_INITIALISE) {
        /* The guest kernel sits between the PEB and the image. */
        uint64_t lo = l->peb_gpa + SL_PAGE_SIZE;
        if (!l->image_size || h->next_addr < lo || h->next_addr >= l->image_gpa + l->image_size)
            return BAD(SL_EFORMAT, next_addr,
                       "(entry) is not inside the guest kernel or the image at 0x%" PRIx64 "+0x%" PRIx64, lo,
                       l->image_gpa + l->image_size - lo);
    } else if (h->next_kind == SL_NEXT_CALL) {
        if (!h->next_addr || !va_ok(s->arch, h->next_addr))
            return BAD(SL_EFORMAT, next_addr, "(dispatch) is not a valid %s virtual address",
                       sl_snapfile_arch_name(s->arch));
    } else {
        return BAD(SL_EFORMAT, next_kind, "must be 1 (initialise) or 2 (call)");
    }
    if (!va_ok(s->arch, h->stack_top))
        return BAD(SL_EFORMAT, stack_top, "is not a valid %s virtual address", sl_snapfile_arch_name(s->arch));
    return 0;
}

/* Statistics (informational, but consistent). */
static int check_stats(const sl_snapfile_header *h, sl_errbuf *e)
{
    uint64_t vis_pages = h->visible_size / SL_PAGE_SIZE;
    if (h->pages_pt != h->pt_size / SL_PAGE_SIZE)
        return BAD(SL_EFORMAT, pages_pt, "is not pt_size / 4096");
    if (h->pages_ro > vis_pages || h->pages_cow > vis_pages - h->pages_ro)
        return BAD(SL_EFORMAT, pages_ro, "+ pages_cow (0x%" PRIx64 ") exceed the visible pages (0x%" PRIx64 ")",
                   h->pages_cow, vis_pages);
    if (h->leaves < h->pages_ro + h->pages_cow || h->leaves > (1ull << 36))
        return BAD(SL_EFORMAT, leaves, "must be between pages_ro + pages_cow and 2^36");
    return 0;
}

/* Lineage (format version 4): the parent's identity behind a flag, and the
 * pages kept at their offsets in the parent's blob. Version 3 reserved these
 * bytes, zero, which reads as "no parent". */
static int parse_lineage(sl_snapshot *s, const sl_snapfile_header *h, sl_errbuf *e)
{
    bool parent_zero = all_zero(h->parent, 0, sizeof h->parent);
    /* Version 3 reserved all of 0x1A0..0x200, the bytes version 4 keeps
     * reserved among them included. */
    bool reserved = h->reserved2 != 0;
    if (h->version < 4 && (h->lineage_flags || h->pages_kept || !parent_zero || reserved))
        return sl_err(e, SL_EFORMAT, "snapshot file: reserved header bytes are not zero (version %u has no lineage)",
                      h->version);
    if (reserved)
        return sl_err(e, SL_EFORMAT, "snapshot file: reserved header bytes are not zero");
    uint32_t known = SL_SNAPFILE_HAS_PARENT | (h->version >= 5 ? SL_SNAPFILE_CHILD : 0);
    if (h->lineage_flags & ~known)
        return BAD(SL_EFORMAT, lineage_flags, "has unknown bits");
    if ((h->lineage_flags & SL_SNAPFILE_CHILD) && !(h->lineage_flags & SL_SNAPFILE_HAS_PARENT))
        return BAD(SL_EFORMAT, lineage_flags, "says child file (bit 1) without a parent (bit 0)");
    if (!sl_snapfile_is_child(h) && h->parent_layout)
        return BAD(SL_EFORMAT, parent_layout, "must be 0 in a full file");
    s->parent_layout = h->parent_layout;
    s->has_parent = h->lineage_flags & SL_SNAPFILE_HAS_PARENT;
    if (!s->has_parent && (!parent_zero || h->pages_kept))
        return BAD(SL_EFORMAT, lineage_flags, "says no parent, yet `parent` or `pages_kept` is not zero");
    /* No BLAKE3 output is all zeros in practice: such a parent is a forgery. */
    if (s->has_parent && parent_zero)
        return BAD(SL_EFORMAT, lineage_flags, "says there is a parent, yet `parent` is all zeros");
    if (h->pages_kept > h->pages_ro + h->pages_cow) /* check_stats bounded the sum */
        return BAD(SL_EFORMAT, pages_kept, "exceeds the blob's pages (pages_ro + pages_cow = 0x%" PRIx64 ")",
                   h->pages_ro + h->pages_cow);
    return 0;
}

/* Load info (debug only). */
static int parse_load_info(sl_snapshot *s, const sl_snapfile_header *h, sl_errbuf *e)
{
    if (h->load_flags & ~3u)
        return BAD(SL_EFORMAT, load_flags, "has unknown bits");
    s->load_info.valid = h->load_flags & 1;
    s->load_info.pie = h->load_flags & 2;
    if (!s->load_info.valid && (h->load_flags || h->base_va || h->load_addr || h->entry))
        return BAD(SL_EFORMAT, load_flags, "says no load info, yet load info fields are set");
    return 0;
}

/* The bytes before the blob other than the header, the CPU state and the
 * parent's name (each checked to lie inside meta) are zero. */
static bool padding_zero(const sl_snapfile_header *h, const uint8_t *meta)
{
    uint64_t used[2][2] = {{h->sregs_offset, h->sregs_offset + h->sregs_size},
                           {h->parent_name_offset, (uint64_t)h->parent_name_offset + h->parent_name_size}};
    if (used[1][0] < used[0][0]) {
        uint64_t t0 = used[0][0], t1 = used[0][1];
        used[0][0] = used[1][0], used[0][1] = used[1][1], used[1][0] = t0, used[1][1] = t1;
    }
    uint64_t at = SL_SNAPFILE_HEADER_SIZE;
    for (int i = 0; i < 2; i++) {
        if (used[i][1] == used[i][0])
            continue;
        if (!all_zero(meta, at, used[i][0]))
            return false;
        at = used[i][1];
    }
    return all_zero(meta, at, h->blob_offset);
}

/* The parent's file name (format version 5, a child's hint for finding its
 * parent): a plain file name in meta, clear of the CPU state. */
static int parse_parent_name(sl_snapshot *s, const sl_snapfile_header *h, const uint8_t *meta, sl_errbuf *e)
{
    uint64_t no = h->parent_name_offset, ns = h->parent_name_size, blob_off = h->blob_offset;
    uint64_t so = h->sregs_offset, se = h->sregs_offset + h->sregs_size;
    if (ns == 0)
        return no ? BAD(SL_EFORMAT, parent_name_offset, "must be 0 when parent_name_size is 0") : 0;
    if (!sl_snapfile_is_child(h) || ns > SL_SNAPFILE_NAME_MAX)
        return BAD(SL_EFORMAT, parent_name_size, "must be 0 in a full file and at most %u in a child",
                   SL_SNAPFILE_NAME_MAX);
    if (no < SL_SNAPFILE_HEADER_SIZE || no > blob_off || ns > blob_off - no || (h->sregs_size && no < se && so < no + ns))
        return BAD(SL_EFORMAT, parent_name_offset, "must lie between the header and the blob (0x%" PRIx64
                   "), clear of the CPU state", blob_off);
    const uint8_t *n = meta + no;
    if (memchr(n, '/', ns) || memchr(n, 0, ns) || (ns == 1 && n[0] == '.') || (ns == 2 && n[0] == '.' && n[1] == '.'))
        return BAD(SL_EFORMAT, parent_name_size, "names no plain file (a '/', a NUL byte, '.' or '..')");
    memcpy(s->parent_name, n, ns);
    s->parent_name[ns] = 0;
    return 0;
}

/* A child's run table (format version 5, §9): runs in order that tile the
 * blob exactly, each of 1 or more pages from a file at most SL_CHAIN_MAX
 * levels up; those of this file (level 0) inside its own pages. The other
 * levels are checked against the chain when it is loaded. */
static int parse_runs(sl_snapshot *s, const sl_snapfile_header *h, const uint8_t *rec, sl_errbuf *e)
{
    uint64_t n = h->runs_size / SL_SNAPFILE_RUN_SIZE, blob_pages = h->blob_size / SL_PAGE_SIZE;
    uint64_t own_pages = h->own_size / SL_PAGE_SIZE, next = 0;
    if (!n)
        return 0;
    if (!(s->runs = calloc(n, sizeof *s->runs)))
        return sl_err(e, SL_ENOMEM, "out of memory");
    s->n_runs = n;
    for (uint64_t i = 0; i < n; i++, rec += SL_SNAPFILE_RUN_SIZE) {
        sl_snaprun *r = &s->runs[i];
        r->page = sl_get64(rec);
        r->src = sl_get64(rec + 8);
        r->count = sl_get32(rec + 16);
        r->level = sl_get32(rec + 20);
        if (r->page != next)
            return sl_err(e, SL_EFORMAT, "snapshot file: run %" PRIu64 " starts at page 0x%" PRIx64 ", not where the "
                          "runs before it end (0x%" PRIx64 "): runs overlap or leave a gap", i, r->page, next);
        if (r->count == 0 || r->count > blob_pages - next)
            return sl_err(e, SL_EFORMAT, "snapshot file: run %" PRIu64 " (page 0x%" PRIx64 ", %u pages) is empty or "
                          "runs past the blob's 0x%" PRIx64 " pages", i, r->page, r->count, blob_pages);
        if (r->level > SL_CHAIN_MAX)
            return sl_err(e, SL_EFORMAT, "snapshot file: run %" PRIu64 " names level %u, more than a chain holds (%u)",
                          i, r->level, SL_CHAIN_MAX);
        if (r->level == 0 && (r->src > own_pages || r->count > own_pages - r->src))
            return sl_err(e, SL_EFORMAT, "snapshot file: run %" PRIu64 " takes pages 0x%" PRIx64 "+%u of this file, "
                          "which holds 0x%" PRIx64 "", i, r->src, r->count, own_pages);
        next += r->count;
    }
    if (next != blob_pages)
        return sl_err(e, SL_EFORMAT, "snapshot file: the runs end at page 0x%" PRIx64 ", not at the blob's end (0x%"
                      PRIx64 ")", next, blob_pages);
    return 0;
}

/* The CPU state: a small section in the bytes before the blob (meta), whose
 * other bytes are padding. */
static int parse_sregs(sl_snapshot *s, const sl_snapfile_header *h, const uint8_t *meta, sl_errbuf *e)
{
    uint64_t so = h->sregs_offset, ss = h->sregs_size, blob_off = h->blob_offset;
    if (ss > SL_SREGS_MAX)
        return BAD(SL_ERANGE, sregs_size, "exceeds %u", SL_SREGS_MAX);
    if (ss == 0 && so != 0)
        return BAD(SL_EFORMAT, sregs_offset, "must be 0 when sregs_size is 0");
    if (ss && (so % 8 || so < SL_SNAPFILE_HEADER_SIZE || so > blob_off || ss > blob_off - so))
        return BAD(SL_EFORMAT, sregs_offset, "must be 8-aligned between the header (0x%x) and the blob (0x%" PRIx64 ")",
                   SL_SNAPFILE_HEADER_SIZE, blob_off);
    if (!padding_zero(h, meta))
        return sl_err(e, SL_EFORMAT, "snapshot file: padding before the blob is not zero");
    s->sregs_len = (uint32_t)ss;
    if (!ss)
        return 0;
    memcpy(s->sregs, meta + so, ss);
    sl_sregs_blob blob;
    memset(&blob, 0, sizeof blob);
    memcpy(blob.bytes, s->sregs, ss < sizeof blob.bytes ? ss : sizeof blob.bytes);
    sl_errbuf se;
    int rc = sl_sregs_blob_check(&blob, s->arch, &se);
    if (rc)
        return sl_err(e, rc, "snapshot file: special registers rejected: %s", se.msg);
    if (sl_sregs_blob_len(&blob) != ss)
        return BAD(SL_EFORMAT, sregs_size, "differs from the CPU state's own length %zu", sl_sregs_blob_len(&blob));
    return 0;
}

/* The region records (n_regions of them, which the geometry sized). */
static int parse_regions(sl_snapshot *s, const sl_snapfile_header *h, const uint8_t *rec, sl_errbuf *e)
{
    if (h->n_regions > SL_MAX_REGIONS || (uint64_t)h->n_regions * SL_REGION_RECORD_SIZE != h->regions_size)
        return BAD(SL_ERANGE, n_regions, "must be at most %u and match regions_size (0x%" PRIx64 ")", SL_MAX_REGIONS,
                   h->regions_size);
    uint64_t vis_end = SL_BASE_ADDRESS + s->visible_size;
    for (unsigned i = 0; i < h->n_regions; i++, rec += SL_REGION_RECORD_SIZE) {
        sl_region *r = &s->regions[i];
        r->gpa = sl_get64(rec);
        r->gva = sl_get64(rec + 8);
        r->size = sl_get64(rec + 16);
        uint64_t fk = sl_get64(rec + 24);
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
    s->n_regions = h->n_regions;
    memcpy(s->layout.regions, s->regions, sizeof s->regions);
    s->layout.n_regions = h->n_regions;
    return 0;
}

int sl_snapfile_parse(sl_snapshot *s, const sl_snapfile_header *h, const uint8_t *meta, const uint8_t *regions,
                      const uint8_t *runs, sl_errbuf *e)
{
    /* The members the table maps, unchecked until the checks below pass;
     * parse_layout then derives the layout again, replacing its fields. */
    sl_snapfile_header_to_snapshot(h, s);
    if (h->arch != SL_ARCH_AMD64 && h->arch != SL_ARCH_I686)
        return BAD(SL_EFORMAT, arch, "is not a known architecture (1 amd64, 2 i686)");
    if (h->flags)
        return BAD(SL_EFORMAT, flags, "must be 0");
    int rc;
    if ((rc = parse_layout(h, s->arch, &s->layout, e)) || (rc = check_blob(s, h, e)) ||
        (rc = parse_roots(s, h, e)) || (rc = check_next(s, h, e)) || (rc = check_stats(h, e)) ||
        (rc = parse_lineage(s, h, e)) || (rc = parse_load_info(s, h, e)) ||
        (rc = parse_parent_name(s, h, meta, e)) || (rc = parse_sregs(s, h, meta, e)) ||
        (rc = parse_regions(s, h, regions, e)) ||
        (rc = parse_runs(s, h, runs, e)))
        return rc;
    return 0;
}
