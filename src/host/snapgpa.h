/* What a snapshot has at a guest-physical address, as a sandbox restored
 * from it sees it (and as compaction, sl_snapshot_from_memory, would copy
 * it): the page-table code's view of its memory, the backing of each page,
 * and a leaf cut into pieces of one backing each. Shared by the address map
 * of `inspect` (snapfile_map.c) and by diff (snapdiff.c), so that both read
 * a snapshot's tables and describe its pages by the same rules. */
#ifndef SL_SNAPGPA_H
#define SL_SNAPGPA_H

#include <stdbool.h>
#include <stdint.h>

#include "pt.h"
#include "snapshot.h"

enum sl_backing {
    SL_BACKING_BLOB,    /* the guest-visible blob, at SL_BASE_ADDRESS */
    SL_BACKING_TABLES,  /* the page tables restore copies to layout.pt_gpa */
    SL_BACKING_SCRATCH, /* the rest of scratch: zeros after a restore */
    SL_BACKING_NONE,    /* no memory: an access faults */
};

/* The 4 KiB page of the blob at page-aligned `gpa` (guest-visible memory or
 * page tables), or NULL when no page of the blob is there. */
const uint8_t *sl_snapgpa_page(const sl_snapshot *s, uint64_t gpa);

/* The blob as memory for the page-table code (read-only: no alloc), for
 * walking the snapshot's tables. Valid while s is. */
sl_pt_mem sl_snapgpa_mem(const sl_snapshot *s);

/* The backing of the page at `gpa`. *next is the first GPA above `gpa` where
 * it may change, or 0 when it stays the same up to the end of the space. */
enum sl_backing sl_snapgpa_backing(const sl_snapshot *s, uint64_t gpa, uint64_t *next);

/* One piece of a leaf: [gva, gva + len) maps [gpa, gpa + len), all of one
 * backing, all inside or all outside the scratch window (which restore maps
 * afresh, so that it is not in the file). gva + len wraps to 0 for a piece
 * that ends at the top of the amd64 space. Return false to stop. */
typedef bool (*sl_piece_fn)(void *arg, uint64_t gva, uint64_t gpa, uint64_t len, enum sl_backing bk,
                            bool window);

/* Cuts a leaf of any size (4 KiB, 2 MiB, 1 GiB, 4 MiB) into pieces where the
 * scratch window over its GVAs or the backing of its GPAs changes, and calls
 * fn for each in ascending order: at most a few pieces per leaf, whatever its
 * size. Returns false when fn stopped it. */
bool sl_snapgpa_pieces(const sl_snapshot *s, const sl_mapping *m, sl_piece_fn fn, void *arg);

#endif
