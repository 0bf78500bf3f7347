/* The snapshot file codec (snapfile_format.h): the header table at work
 * (decode, encode, the fields a sl_snapshot holds), the checksum, and the
 * bytes save writes around the blob. The checks a loaded file must pass are
 * in snapfile_parse.c. */
#include "snapfile_format.h"
#include "snapshot_impl.h" /* the file codec reads and builds the struct */

#include <string.h>

/* The table tiles the header: no gap, no overlap, nothing past its end. */
typedef struct sf_tiles {
#define SF_TILE(ID, name, off, size, type, snap) uint8_t name[size];
    SL_SNAPFILE_FIELDS(SF_TILE)
#undef SF_TILE
} sf_tiles;
#define SF_AT(ID, name, off, size, type, snap) \
    _Static_assert(offsetof(sf_tiles, name) == (off), "header field `" #name "` is not at its offset");
SL_SNAPFILE_FIELDS(SF_AT)
#undef SF_AT
_Static_assert(sizeof(sf_tiles) == SL_SNAPFILE_HEADER_SIZE, "the header fields do not fill the header");

/* A snapshot member is as wide as its field, so copies are plain bytes. */
#define SF_SNAP_OFF_SNAP(m) ((long)offsetof(sl_snapshot, m))
#define SF_SNAP_OFF_NONE (-1L)
#define SF_SNAP_SIZE_SNAP(m) sizeof(((sl_snapshot *)0)->m)
#define SF_SNAP_SIZE_NONE 0
#define SF_WIDTH(ID, name, off, size, type, snap)                                                        \
    _Static_assert(SF_SNAP_SIZE_##snap == 0 || SF_SNAP_SIZE_##snap == (size),                           \
                   "header field `" #name "` and its snapshot member differ in size");
SL_SNAPFILE_FIELDS(SF_WIDTH)
#undef SF_WIDTH

enum sf_type { SF_T_u32, SF_T_u64, SF_T_bytes, SF_T_roots };

typedef struct sf_field {
    uint16_t off, size;
    enum sf_type type;
    size_t at;     /* in sl_snapfile_header */
    long snap_at;  /* in sl_snapshot; -1: none */
} sf_field;

static const sf_field fields[] = {
#define SF_ROW(ID, name, off, size, type, snap) \
    {off, size, SF_T_##type, offsetof(sl_snapfile_header, name), SF_SNAP_OFF_##snap},
    SL_SNAPFILE_FIELDS(SF_ROW)
#undef SF_ROW
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

void sl_snapfile_header_decode(const uint8_t *raw, sl_snapfile_header *h)
{
    for (size_t i = 0; i < N_FIELDS; i++) {
        const sf_field *f = &fields[i];
        uint8_t *to = (uint8_t *)h + f->at;
        const uint8_t *from = raw + f->off;
        if (f->type == SF_T_u32) {
            uint32_t v = sl_get32(from);
            memcpy(to, &v, 4);
        } else if (f->type == SF_T_bytes) {
            memcpy(to, from, f->size);
        } else { /* u64, and roots: u64 after u64 */
            for (unsigned k = 0; k < f->size; k += 8) {
                uint64_t v = sl_get64(from + k);
                memcpy(to + k, &v, 8);
            }
        }
    }
}

static void header_encode(const sl_snapfile_header *h, uint8_t *raw)
{
    for (size_t i = 0; i < N_FIELDS; i++) {
        const sf_field *f = &fields[i];
        const uint8_t *from = (const uint8_t *)h + f->at;
        uint8_t *to = raw + f->off;
        if (f->type == SF_T_u32) {
            uint32_t v;
            memcpy(&v, from, 4);
            sl_put32(to, v);
        } else if (f->type == SF_T_bytes) {
            memcpy(to, from, f->size);
        } else {
            for (unsigned k = 0; k < f->size; k += 8) {
                uint64_t v;
                memcpy(&v, from + k, 8);
                sl_put64(to + k, v);
            }
        }
    }
}

void sl_snapfile_header_to_snapshot(const sl_snapfile_header *h, sl_snapshot *s)
{
    for (size_t i = 0; i < N_FIELDS; i++)
        if (fields[i].snap_at >= 0)
            memcpy((uint8_t *)s + fields[i].snap_at, (const uint8_t *)h + fields[i].at, fields[i].size);
}

static void header_from_snapshot(const sl_snapshot *s, sl_snapfile_header *h)
{
    for (size_t i = 0; i < N_FIELDS; i++)
        if (fields[i].snap_at >= 0)
            memcpy((uint8_t *)h + fields[i].at, (const uint8_t *)s + fields[i].snap_at, fields[i].size);
}

const char *sl_snapfile_arch_name(unsigned arch)
{
    return arch == SL_ARCH_AMD64 ? "amd64" : arch == SL_ARCH_I686 ? "i686" : "?";
}

/* Where the parent's name goes in meta: after the CPU state, 8-aligned. */
static uint64_t name_at(const sl_snapshot *s)
{
    return (SL_SNAPFILE_SREGS_AT + (uint64_t)s->sregs_len + 7) & ~7ull;
}

static size_t plan_name_len(const sl_snapfile_plan *p)
{
    return p->child && p->parent_name ? strlen(p->parent_name) : 0;
}

uint64_t sl_snapfile_plan_meta_size(const sl_snapshot *s, const sl_snapfile_plan *p)
{
    return (name_at(s) + plan_name_len(p) + SL_PAGE_SIZE - 1) & SL_PAGE_MASK;
}

uint64_t sl_snapfile_layout_pin(uint64_t own_size, const uint8_t *runs, uint64_t runs_size)
{
    if (!runs_size)
        return 0;
    uint8_t le[8], out[SL_HASH_LEN];
    sl_put64(le, own_size);
    sl_hasher *h = sl_hasher_new();
    if (!h)
        return UINT64_MAX; /* never a real pin in practice: the parent is refused, not mistaken */
    sl_hasher_update(h, le, sizeof le);
    sl_hasher_update(h, runs, runs_size);
    sl_hasher_final(h, out);
    return sl_get64(out);
}

void sl_snapfile_checksum(const uint8_t *meta, uint64_t meta_len, const uint8_t *regions, uint64_t regions_len,
                          const uint8_t *runs, uint64_t runs_len, uint8_t out[SL_HASH_LEN])
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
    if (runs_len)
        sl_hasher_update(h, runs, runs_len);
    sl_hasher_final(h, out);
}

/* The fields no snapshot member holds: constants, where the sections go,
 * lineage as the plan says, and the load-info flags (the load-info fields
 * are all zero without them). */
static void header_sections(const sl_snapshot *s, const sl_snapfile_plan *p, sl_snapfile_header *h)
{
    uint64_t meta = sl_snapfile_plan_meta_size(s, p), regions_size = (uint64_t)s->n_regions * SL_REGION_RECORD_SIZE;
    memcpy(h->magic, SL_SNAPFILE_MAGIC, sizeof h->magic);
    h->version = SL_SNAPFILE_VERSION;
    h->header_size = SL_SNAPFILE_HEADER_SIZE;
    h->blob_offset = meta;
    h->blob_size = s->mem_size;
    h->own_size = p->own_size;
    h->regions_offset = meta + p->own_size;
    h->regions_size = regions_size;
    h->runs_offset = h->regions_offset + regions_size;
    h->runs_size = p->runs_size;
    h->index_offset = h->runs_offset + p->runs_size;
    h->index_size = p->index_size;
    h->file_size = h->index_offset + p->index_size;
    h->sregs_offset = s->sregs_len ? SL_SNAPFILE_SREGS_AT : 0;
    h->sregs_size = s->sregs_len;
    h->n_regions = s->n_regions;
    size_t name_len = plan_name_len(p);
    h->parent_name_size = (uint32_t)name_len;
    h->parent_name_offset = name_len ? (uint32_t)name_at(s) : 0;
    if (p->child) {
        h->lineage_flags = SL_SNAPFILE_HAS_PARENT | SL_SNAPFILE_CHILD;
        memcpy(h->parent, p->parent, sizeof h->parent);
        h->parent_layout = p->parent_layout;
        if (p->other_parent) /* kept pages count against the parent the header names */
            h->pages_kept = 0;
    } else {
        h->lineage_flags = s->has_parent ? SL_SNAPFILE_HAS_PARENT : 0;
        if (!s->has_parent) /* whatever the member holds, a file without a parent says zeros */
            memset(h->parent, 0, sizeof h->parent);
    }
    if (s->load_info.valid)
        h->load_flags = 1u | (s->load_info.pie ? 2u : 0u);
    else
        h->base_va = h->load_addr = h->entry = 0;
    memcpy(h->roots, s->roots, s->n_roots * sizeof s->roots[0]);
}

int sl_snapfile_build(const sl_snapshot *s, const sl_snapfile_plan *p, const uint8_t *runs, uint8_t *meta,
                      uint8_t regions[SL_SNAPFILE_REGIONS_MAX], sl_errbuf *e)
{
    if (!s->mem || s->mem_size != s->visible_size + s->pt_size || s->n_roots == 0 ||
        s->n_roots > SL_BK_MAX_ROOTS || s->sregs_len > SL_SREGS_MAX || s->n_regions > SL_MAX_REGIONS ||
        plan_name_len(p) > SL_SNAPFILE_NAME_MAX || p->own_size > s->mem_size || (!p->child && p->runs_size))
        return sl_err(e, SL_EINVAL, "snapshot is inconsistent; refusing to save it");
    sl_snapfile_header h;
    memset(&h, 0, sizeof h);
    header_from_snapshot(s, &h);
    header_sections(s, p, &h);
    uint64_t meta_size = sl_snapfile_plan_meta_size(s, p);
    memset(meta, 0, meta_size);
    header_encode(&h, meta);
    if (s->sregs_len)
        memcpy(meta + SL_SNAPFILE_SREGS_AT, s->sregs, s->sregs_len);
    if (h.parent_name_size)
        memcpy(meta + h.parent_name_offset, p->parent_name, h.parent_name_size);
    for (unsigned i = 0; i < s->n_regions; i++)
        sl_region_record(&s->regions[i], regions + i * SL_REGION_RECORD_SIZE);
    sl_snapfile_checksum(meta, meta_size, regions, h.regions_size, runs, h.runs_size, h.checksum);
    memcpy(meta + SF_CHECKSUM, h.checksum, SL_HASH_LEN);
    return 0;
}

int sl_snapfile_reseal(uint8_t *file, size_t len)
{
    sl_snapfile_header h;
    if (len < SL_SNAPFILE_HEADER_SIZE)
        return -1;
    sl_snapfile_header_decode(file, &h);
    if (sl_snapfile_check_geometry(&h, len, NULL))
        return -1;
    sl_snapfile_checksum(file, h.blob_offset, file + h.regions_offset, h.regions_size, file + h.runs_offset,
                         h.runs_size, h.checksum);
    memcpy(file + SF_CHECKSUM, h.checksum, SL_HASH_LEN);
    return 0;
}
