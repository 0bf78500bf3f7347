/* The snapshot file format (docs/snapshot-format.md is normative): the
 * header's fields in one table, and the codec between a file's bytes and a
 * sl_snapshot. The blob and the region records are sections of the file the
 * header points at; load maps the blob, it is never parsed.
 *
 * A file is hostile input. Nothing read from it is used before it has been
 * checked: the geometry of the sections first (everything the checksum needs
 * to know which bytes it covers), then the header checksum (so random
 * corruption gets one clear message), then every field on its own terms, as
 * if the checksum had been forged. */
#ifndef SL_SNAPFILE_FORMAT_H
#define SL_SNAPFILE_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "snapshot.h"

#define SL_SNAPFILE_MAGIC "SLSNAPF\0" /* 8 bytes */
/* 3: the CPU state in architectural form (cpustate.h); 4: lineage (the
 * parent's identity, pages kept in place); 5: child files and the content
 * index (§9). Writers write 5; readers accept 3 and 4, whose bytes for
 * the later fields are zero (no parent; no child, no index). */
#define SL_SNAPFILE_VERSION 5u
#define SL_SNAPFILE_VERSION_MIN 3u
#define SL_SNAPFILE_HAS_PARENT 1u /* lineage_flags bit 0: `parent` holds an identity */
#define SL_SNAPFILE_CHILD 2u      /* lineage_flags bit 1: a child file of the file `parent` names */
#define SL_SNAPFILE_RUN_SIZE 24u  /* a run record (§9) */
#define SL_SNAPFILE_INDEX_ENTRY 40u /* a content-index record (§9) */
#define SL_SNAPFILE_NAME_MAX 255u /* bytes of the parent's file-name hint */
#define SL_SNAPFILE_HEADER_SIZE 0x400u  /* fixed header, at offset 0 */
#define SL_SNAPFILE_META_MAX 0x10000u   /* header + small sections: at most 64 KiB */
#define SL_SNAPFILE_SREGS_AT SL_SNAPFILE_HEADER_SIZE /* where writers put the CPU state */
#define SL_SNAPFILE_REGIONS_MAX (SL_MAX_REGIONS * SL_REGION_RECORD_SIZE) /* bytes of region records */

/* The header, one field a line, in file order (§2 of the format): its SF_*
 * offset constant, its name (in error messages and the decoded header),
 * offset, size in bytes, type (u32, u64: little-endian integers; bytes;
 * roots: SL_BK_MAX_ROOTS u64), and the sl_snapshot member it holds, SNAP(m),
 * or NONE where the codec computes it (section geometry) or checks it
 * (constants, reserved bytes). Layout members are derived again from the
 * configuration on load, and the stored values must agree. Everything that
 * reads or writes the header goes through this table; the compiler checks
 * that the fields tile the header (snapfile_format.c). */
#define SL_SNAPFILE_FIELDS(X)                                                                                \
    X(MAGIC, magic, 0x000, 8, bytes, NONE)                                                                   \
    X(VERSION, version, 0x008, 4, u32, NONE)                                                                 \
    X(HEADER_SIZE, header_size, 0x00C, 4, u32, NONE)                                                         \
    X(ARCH, arch, 0x010, 4, u32, SNAP(arch))                                                                 \
    X(FLAGS, flags, 0x014, 4, u32, NONE)                                                                     \
    X(FILE_SIZE, file_size, 0x018, 8, u64, NONE)                                                             \
    X(BLOB_OFFSET, blob_offset, 0x020, 8, u64, NONE)                                                         \
    X(BLOB_SIZE, blob_size, 0x028, 8, u64, NONE)                                                             \
    X(VISIBLE_SIZE, visible_size, 0x030, 8, u64, SNAP(visible_size))                                         \
    X(PT_SIZE, pt_size, 0x038, 8, u64, SNAP(pt_size))                                                        \
    X(REGIONS_OFFSET, regions_offset, 0x040, 8, u64, NONE)                                                   \
    X(REGIONS_SIZE, regions_size, 0x048, 8, u64, NONE)                                                       \
    X(SREGS_OFFSET, sregs_offset, 0x050, 8, u64, NONE)                                                       \
    X(SREGS_SIZE, sregs_size, 0x058, 8, u64, NONE)                                                           \
    X(INPUT_SIZE, input_size, 0x060, 8, u64, SNAP(layout.input_size))                                        \
    X(OUTPUT_SIZE, output_size, 0x068, 8, u64, SNAP(layout.output_size))                                     \
    X(HEAP_SIZE, heap_size, 0x070, 8, u64, SNAP(layout.heap_size))                                           \
    X(STACK_SIZE, stack_size, 0x078, 8, u64, SNAP(layout.stack_size))                                        \
    X(SCRATCH_SIZE, scratch_size, 0x080, 8, u64, SNAP(layout.scratch_size))                                  \
    X(INIT_DATA_SIZE, init_data_size, 0x088, 8, u64, SNAP(layout.init_data_size))                            \
    X(INIT_DATA_PERM, init_data_perm, 0x090, 4, u32, SNAP(layout.init_data_perm))                            \
    X(N_REGIONS, n_regions, 0x094, 4, u32, NONE)                                                             \
    X(PEB_GPA, peb_gpa, 0x098, 8, u64, SNAP(layout.peb_gpa))                                                 \
    X(IMAGE_GPA, image_gpa, 0x0A0, 8, u64, SNAP(layout.image_gpa))                                           \
    X(IMAGE_SIZE, image_size, 0x0A8, 8, u64, SNAP(layout.image_size))                                        \
    X(INIT_DATA_GPA, init_data_gpa, 0x0B0, 8, u64, SNAP(layout.init_data_gpa))                               \
    X(HEAP_GPA, heap_gpa, 0x0B8, 8, u64, SNAP(layout.heap_gpa))                                              \
    X(VISIBLE_END, visible_end, 0x0C0, 8, u64, SNAP(layout.visible_end))                                     \
    X(LAYOUT_STACK_TOP, layout_stack_top, 0x0C8, 8, u64, SNAP(layout.stack_top))                            \
    X(SCRATCH_GPA, scratch_gpa, 0x0D0, 8, u64, SNAP(layout.scratch_gpa))                                     \
    X(SCRATCH_GVA, scratch_gva, 0x0D8, 8, u64, SNAP(layout.scratch_gva))                                     \
    X(PT_GPA, pt_gpa, 0x0E0, 8, u64, SNAP(layout.pt_gpa))                                                    \
    X(EXC_STACK_GPA, exc_stack_gpa, 0x0E8, 8, u64, SNAP(layout.exc_stack_gpa))                               \
    X(BK_GPA, bk_gpa, 0x0F0, 8, u64, SNAP(layout.bk_gpa))                                                    \
    X(NEXT_KIND, next_kind, 0x0F8, 4, u32, SNAP(next_kind))                                                  \
    X(N_ROOTS, n_roots, 0x0FC, 4, u32, SNAP(n_roots))                                                        \
    X(NEXT_ADDR, next_addr, 0x100, 8, u64, SNAP(next_addr))                                                  \
    X(STACK_TOP, stack_top, 0x108, 8, u64, SNAP(stack_top))                                                  \
    X(GENERATION, generation, 0x110, 8, u64, SNAP(generation))                                               \
    X(CUR_ROOT, cur_root, 0x118, 4, u32, SNAP(cur_root))                                                     \
    X(PARENT_NAME_SIZE, parent_name_size, 0x11C, 4, u32, NONE) /* v5, child: the parent's file name */       \
    X(PAGES_RO, pages_ro, 0x120, 8, u64, SNAP(stats.pages_ro))                                               \
    X(PAGES_COW, pages_cow, 0x128, 8, u64, SNAP(stats.pages_cow))                                            \
    X(PAGES_PT, pages_pt, 0x130, 8, u64, SNAP(stats.pages_pt))                                               \
    X(LEAVES, leaves, 0x138, 8, u64, SNAP(stats.leaves))                                                     \
    X(LOAD_FLAGS, load_flags, 0x140, 4, u32, NONE) /* bit 0 load info valid, bit 1 PIE */                    \
    X(PARENT_NAME_OFFSET, parent_name_offset, 0x144, 4, u32, NONE) /* v5: where that name is in meta */      \
    X(BASE_VA, base_va, 0x148, 8, u64, SNAP(load_info.base_va))                                              \
    X(LOAD_ADDR, load_addr, 0x150, 8, u64, SNAP(load_info.load_addr))                                        \
    X(ENTRY, entry, 0x158, 8, u64, SNAP(load_info.entry))                                                    \
    X(IDENTITY, identity, 0x160, 32, bytes, SNAP(hash))                                                      \
    X(CHECKSUM, checksum, 0x180, 32, bytes, NONE)                                                            \
    X(PARENT, parent, 0x1A0, 32, bytes, SNAP(parent)) /* version 4: the parent's identity, or zeros */      \
    X(LINEAGE_FLAGS, lineage_flags, 0x1C0, 4, u32, NONE) /* bit 0 SL_SNAPFILE_HAS_PARENT */                  \
    X(RESERVED2, reserved2, 0x1C4, 4, u32, NONE)                                                             \
    X(PAGES_KEPT, pages_kept, 0x1C8, 8, u64, SNAP(stats.pages_kept))                                         \
    X(OWN_SIZE, own_size, 0x1D0, 8, u64, NONE) /* v5: bytes of pages this file holds, at blob_offset */     \
    X(RUNS_OFFSET, runs_offset, 0x1D8, 8, u64, NONE) /* v5, child: the run table */                       \
    X(RUNS_SIZE, runs_size, 0x1E0, 8, u64, NONE)                                                             \
    X(INDEX_OFFSET, index_offset, 0x1E8, 8, u64, NONE) /* v5: the content index (advisory) */              \
    X(INDEX_SIZE, index_size, 0x1F0, 8, u64, NONE)                                                           \
    X(PARENT_LAYOUT, parent_layout, 0x1F8, 8, u64, NONE) /* v5, child: which file of that identity */     \
    X(ROOTS, roots, 0x200, 8 * SL_BK_MAX_ROOTS, roots, NONE) /* unused entries zero */

/* SF_VERSION, SF_ROOTS, ...: the offset of each field. */
enum {
#define SF_OFFSET(ID, name, off, size, type, snap) SF_##ID = off,
    SL_SNAPFILE_FIELDS(SF_OFFSET)
#undef SF_OFFSET
};

/* The header decoded to host integers, one member per field. */
#define SF_DECL_u32(name, size) uint32_t name;
#define SF_DECL_u64(name, size) uint64_t name;
#define SF_DECL_bytes(name, size) uint8_t name[size];
#define SF_DECL_roots(name, size) uint64_t name[(size) / 8];
typedef struct sl_snapfile_header {
#define SF_MEMBER(ID, name, off, size, type, snap) SF_DECL_##type(name, size)
    SL_SNAPFILE_FIELDS(SF_MEMBER)
#undef SF_MEMBER
} sl_snapfile_header;

/* Decodes the SL_SNAPFILE_HEADER_SIZE bytes at raw. */
void sl_snapfile_header_decode(const uint8_t *raw, sl_snapfile_header *h);
/* Copies every field that holds a member of the snapshot (SNAP(m) in the
 * table) from h to s, unchecked: the caller checks them. */
void sl_snapfile_header_to_snapshot(const sl_snapfile_header *h, sl_snapshot *s);

/* "amd64", "i686", or "?": how messages and reports name an architecture. */
const char *sl_snapfile_arch_name(unsigned arch);

/* Checks where the sections are, from the header alone (magic, version,
 * header size, file size against actual_size, the offsets and sizes of the
 * own pages, region records, runs and index): everything the checksum needs
 * before it can be computed. A version 3 or 4 header, whose later fields
 * must be zero, is completed as the full file it is (own_size = blob_size,
 * runs and index empty at the end of the file), so that everything after
 * reads every version alike. */
int sl_snapfile_check_geometry(sl_snapfile_header *h, uint64_t actual_size, sl_errbuf *e);

/* Which file of its identity a file is, as far as its children care: a run
 * names own pages of a file, and one snapshot may be saved as several
 * child files that hold different pages (or in full). 0 for a full file
 * (its own pages are its blob); for a child, the first 8 bytes (little-
 * endian) of BLAKE3 of own_size (8 bytes, little-endian) followed by its
 * run table: what decides which own page is where, and nothing else (its
 * index, name hint and statistics may differ). A child records its
 * parent's (parent_layout). */
uint64_t sl_snapfile_layout_pin(uint64_t own_size, const uint8_t *runs, uint64_t runs_size);

/* Whether the decoded header is a child file's. */
static inline int sl_snapfile_is_child(const sl_snapfile_header *h)
{
    return h->version >= 5 && (h->lineage_flags & SL_SNAPFILE_CHILD);
}

/* The header checksum: BLAKE3 of the bytes before the blob (meta, meta_len
 * bytes, at least the header) with the checksum field zeroed, then the
 * region records, then the run table (a child's; none in a full file). The
 * content index is not covered (§9: advisory). */
void sl_snapfile_checksum(const uint8_t *meta, uint64_t meta_len, const uint8_t *regions, uint64_t regions_len,
                          const uint8_t *runs, uint64_t runs_len, uint8_t out[SL_HASH_LEN]);

/* Everything but the geometry and the checksum (both checked before):
 * fills s from the decoded header h, the bytes before the blob (meta), the
 * region records and a child's run table (runs, h->runs_size bytes),
 * checking every field (snapfile_parse.c). A child's runs are checked on
 * their own here (order, tiling, this file's pages); the levels they name
 * are checked against the chain when it is loaded (snapfile_chain.c). */
int sl_snapfile_parse(sl_snapshot *s, const sl_snapfile_header *h, const uint8_t *meta, const uint8_t *regions,
                      const uint8_t *runs, sl_errbuf *e);

/* What a file holds besides the snapshot's own fields: a full file holds
 * every page (own_size = the blob); a child holds own_size bytes of pages,
 * a run table and names its parent file. */
typedef struct sl_snapfile_plan {
    uint64_t own_size, runs_size, index_size;
    int child;
    uint8_t parent[SL_HASH_LEN];     /* child: the parent file's identity */
    const char *parent_name;         /* child: its file name hint, or NULL */
    uint64_t parent_layout;          /* child: the parent file's layout pin (sl_snapfile_layout_pin) */
    int other_parent;                /* child: the parent file is not the snapshot it ran on (pages_kept 0) */
} sl_snapfile_plan;

/* The bytes before the blob for plan p: header, CPU state, the parent's
 * name, in whole pages (one page unless the CPU state is large). */
uint64_t sl_snapfile_plan_meta_size(const sl_snapshot *s, const sl_snapfile_plan *p);

/* The bytes save writes around the pages: meta (sl_snapfile_plan_meta_size
 * bytes: header, CPU state, name, padding), and the region records
 * (n_regions * SL_REGION_RECORD_SIZE bytes); the checksum is set over them
 * and the runs (p->runs_size bytes at runs). SL_EINVAL for a snapshot too
 * inconsistent to describe. */
int sl_snapfile_build(const sl_snapshot *s, const sl_snapfile_plan *p, const uint8_t *runs, uint8_t *meta,
                      uint8_t regions[SL_SNAPFILE_REGIONS_MAX], sl_errbuf *e);

#endif
