/* Page-table encoding, map, translate and multi-space walk for amd64 (4-level,
 * 8-byte entries, 48-bit VAs) and i686 (2-level, 4-byte entries).
 *
 * Shared by the host (which reads tables out of snapshot + scratch memory) and
 * the guest runtime (which edits its own), so it is freestanding and reaches
 * memory only through the sl_pt_mem callbacks. Everything read from a table is
 * treated as hostile: an entry that points outside the backing memory reads as
 * not present, and every walk visits each table at most once, so loops,
 * self-references and tables with two parents terminate in time linear in the
 * number of distinct tables. */
#ifndef SL_PT_H
#define SL_PT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sl_layout.h"

/* PTE bits (same positions on both architectures; NX only on amd64). */
#define SL_PTE_P (1ull << 0)
#define SL_PTE_RW (1ull << 1)
#define SL_PTE_US (1ull << 2)
#define SL_PTE_A (1ull << 5) /* Accessed: set by the CPU's walk */
#define SL_PTE_D (1ull << 6) /* Dirty: set by the CPU on a write through a leaf */
#define SL_PTE_PS (1ull << 7)
#define SL_PTE_COW (1ull << 9) /* software bit: copy-on-write leaf (RW clear) */
#define SL_PTE_NX (1ull << 63)
#define SL_PTE_ADDR_AMD64 0x000FFFFFFFFFF000ull
#define SL_PTE_ADDR_I686 0xFFFFF000ull

/* Error codes of this module (negative; the host maps them to SL_E*). */
#define SL_PT_OK 0
#define SL_PT_EINVAL (-1)    /* unaligned or non-canonical address, bad arch, bad length */
#define SL_PT_ENOMEM (-2)    /* alloc callback failed */
#define SL_PT_EBADTABLE (-3) /* an intermediate entry is a large page or points outside memory */
#define SL_PT_ESTOPPED (-4)  /* a visit callback asked to stop */
#define SL_PT_ELIMIT (-5)    /* a walk callback reported a resource limit */
#define SL_PT_EABSENT (-6)   /* sl_pt_table_at: an entry on the way is not present */

enum sl_map_kind {
    SL_MAP_UNMAPPED = 0,
    SL_MAP_BASIC = 1, /* readable, writable, executable as given */
    SL_MAP_COW = 2,   /* read-only + bit 9; the guest copies on the first write */
};

typedef struct sl_perm {
    uint8_t kind;    /* enum sl_map_kind */
    bool readable;   /* always true for a present page on x86 */
    bool writable;   /* false for SL_MAP_COW */
    bool executable; /* i686 has no NX: always true there */
    bool user;       /* user_accessible */
} sl_perm;

typedef struct sl_mapping {
    uint64_t gva;
    uint64_t gpa;
    uint64_t size; /* 4096, or the large-page size (2 MiB / 1 GiB amd64, 4 MiB i686) */
    sl_perm perm;  /* effective: writable/user AND-ed, NX OR-ed over all levels */
} sl_mapping;

/* How page-table code reaches memory. */
typedef struct sl_pt_mem {
    void *ctx;
    /* Pointer to the 4 KiB page at page-aligned `gpa`, or NULL when that page is
     * not entirely inside backing memory (then it reads as not present). The
     * pointer must stay valid for the duration of the operation. */
    void *(*page)(void *ctx, uint64_t gpa);
    /* A new zeroed 4 KiB table page; returns false when none is left. May be
     * NULL for read-only uses (translate, walk). */
    bool (*alloc)(void *ctx, uint64_t *gpa_out);
} sl_pt_mem;

/* Number of levels and entries per table. */
static inline unsigned sl_pt_levels(unsigned arch) { return arch == SL_ARCH_I686 ? 2u : 4u; }

/* Leaf encoding/decoding (4 KiB leaf; `kind` UNMAPPED encodes as 0). For i686
 * the result fits in 32 bits. */
uint64_t sl_pt_encode_leaf(unsigned arch, uint64_t gpa, sl_perm perm);
/* Decodes a present leaf; a non-present entry decodes to kind UNMAPPED. */
sl_perm sl_pt_decode_leaf(unsigned arch, uint64_t pte);
uint64_t sl_pt_entry_addr(unsigned arch, uint64_t pte);

/* Bytes of VA one entry of a table at level `depth` (0 = the root) maps:
 * 4 KiB at the last level, the large-page size where a PS leaf may stand
 * (2 MiB and 1 GiB on amd64, 4 MiB on i686), 512 GiB for an amd64 root
 * entry. A whole table at `depth` + 1 spans that much. 0 for a bad arch or
 * depth. */
uint64_t sl_pt_entry_span(unsigned arch, unsigned depth);

/* Sets Accessed and Dirty in every present entry of the whole table pages
 * in [tables, tables+len). A snapshot's tables carry them preset: otherwise
 * the CPU's first walk after each restore writes them, dirtying every table
 * page the guest touches, and restore must copy those pages back. Dirty is
 * ignored in non-leaf entries, and a read-only leaf is never written
 * through, so presetting changes no translation. */
void sl_pt_preset_accessed_dirty(unsigned arch, void *tables, uint64_t len);

/* Map [gva, gva+len) to [gpa, gpa+len) with 4 KiB pages and `perm` (kind
 * UNMAPPED clears the leaves), allocating intermediate tables as needed;
 * intermediate entries are written P|RW|US so that the leaf alone decides.
 * gva, gpa, len must be page-aligned; amd64 VAs must be canonical; i686 VAs and
 * GPAs must be < 4 GiB. Returns SL_PT_OK or a negative SL_PT_E*. */
int sl_pt_map(unsigned arch, const sl_pt_mem *mem, uint64_t root_gpa, uint64_t gva, uint64_t gpa,
              uint64_t len, sl_perm perm);

/* The table at level `depth` (0 = the root itself) on the path to `gva`:
 * SL_PT_OK with *table_gpa; SL_PT_EABSENT when an entry on the way is not
 * present and !create (with `create`, missing tables are allocated and linked
 * P|RW|US); SL_PT_EBADTABLE when an entry on the way is a large page or a
 * table is not backed; SL_PT_ENOMEM; SL_PT_EINVAL. */
int sl_pt_table_at(unsigned arch, const sl_pt_mem *mem, uint64_t root_gpa, uint64_t gva, unsigned depth,
                   bool create, uint64_t *table_gpa);

/* Points the entry covering `gva` in the table at level `depth` (created on
 * the way if needed) at the existing table `table_gpa`, P|RW|US: one sub-table
 * then serves every space linked to it. depth must be above the leaf level. */
int sl_pt_link(unsigned arch, const sl_pt_mem *mem, uint64_t root_gpa, uint64_t gva, unsigned depth,
               uint64_t table_gpa);

/* Callback for translate; return false to stop (translate then returns SL_PT_ESTOPPED). */
typedef bool (*sl_pt_visit_fn)(void *arg, const sl_mapping *m);

/* Calls `visit` once per mapped 4 KiB page in [gva, gva+len) in ascending VA
 * order (a large page is reported as its 4 KiB pieces that fall in the range,
 * each with size 4096); unmapped pages are skipped, so an unmapped range yields
 * nothing. */
int sl_pt_translate(unsigned arch, const sl_pt_mem *mem, uint64_t root_gpa, uint64_t gva, uint64_t len,
                    sl_pt_visit_fn visit, void *arg);

/* Looks up the 4 KiB leaf for one page. On success fills *out (may be NULL) and
 * *pte_gpa (may be NULL) with the GPA of the leaf entry, and returns true; a
 * large page or an unmapped VA returns false. Used by the guest CoW handler. */
bool sl_pt_lookup(unsigned arch, const sl_pt_mem *mem, uint64_t root_gpa, uint64_t gva, sl_mapping *out,
                  uint64_t *pte_gpa);

/* ---- walking several address spaces together ---- */

enum sl_walk_kind {
    SL_WALK_THIS_SPACE = 1,    /* a leaf (4 KiB or large) private to this walk position */
    SL_WALK_ANOTHER_SPACE = 2, /* a sub-table already reached earlier */
};

typedef struct sl_walk_item {
    uint8_t kind;   /* enum sl_walk_kind */
    unsigned root;  /* index of the root being walked */
    sl_mapping map; /* THIS_SPACE: the leaf */
    /* ANOTHER_SPACE: the entry at table level `depth` (0 = root table) of root
     * `root` covering VA `our_va` points to a sub-table that was first reached
     * from root `owner_root` (possibly the same root) at VA `their_va` and table
     * level `their_depth`. The whole sub-table is reported once, here. */
    unsigned depth;
    unsigned owner_root;
    unsigned their_depth;
    uint64_t our_va;
    uint64_t their_va;
    uint64_t table_gpa; /* the shared sub-table */
    uint64_t entry_gpa; /* GPA of the entry: the leaf's (THIS_SPACE), or the one that points to the sub-table */
} sl_walk_item;

/* The caller's record of which tables have been reached (the common code has no
 * allocator). `lookup` returns true and fills the owner fields when table_gpa
 * was recorded; `record` stores it and returns false when out of memory. */
typedef struct sl_pt_seen {
    void *ctx;
    bool (*lookup)(void *ctx, uint64_t table_gpa, unsigned *owner_root, uint64_t *their_va,
                   unsigned *their_depth);
    bool (*record)(void *ctx, uint64_t table_gpa, unsigned owner_root, uint64_t va, unsigned depth);
} sl_pt_seen;

typedef bool (*sl_pt_walk_fn)(void *arg, const sl_walk_item *item);

/* Walks roots[0..n) in order, depth first in ascending VA order. Every table
 * (roots included) is recorded in `seen` the first time it is reached; an
 * intermediate entry pointing to a recorded table is reported as one
 * ANOTHER_SPACE item and not descended. Leaves are reported as THIS_SPACE.
 * Non-present entries and entries whose table page is not backed are skipped.
 * A root that is not backed, or was already reached, is skipped. Returns
 * SL_PT_OK, SL_PT_ESTOPPED when `visit` returned false, or SL_PT_ELIMIT when
 * `seen->record` failed. A `seen` whose lookup never finds a table makes the
 * walk descend every table each time it is reached, as the MMU does (every
 * space's whole map, shared tables included); levels still bound its depth,
 * and its record must then bound the number of visits (snapdiff.c). */
int sl_pt_walk_spaces(unsigned arch, const sl_pt_mem *mem, const uint64_t *roots, unsigned n_roots,
                      const sl_pt_seen *seen, sl_pt_walk_fn visit, void *arg);

#endif
