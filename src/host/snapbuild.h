/* What both ways of building a snapshot share (from a binary: snapshot.c;
 * from guest memory: compact.c): the buffers the blob and its page tables
 * grow in, the scratch window every snapshot maps afresh, and sealing the
 * finished blob into a snapshot with its identity. Engine-internal. */
#ifndef SL_SNAPBUILD_H
#define SL_SNAPBUILD_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "pt.h"
#include "snapshot_impl.h"

/* A growable buffer of whole pages. It reserves its worst-case size as
 * address space up front (MAP_NORESERVE: untouched pages cost nothing), so
 * it never moves and pointers into it stay valid while page-table code
 * holds them. */
typedef struct sl_pagebuf {
    uint8_t *p;
    uint64_t len; /* bytes in use, a multiple of the page size */
    uint64_t cap; /* bytes reserved */
} sl_pagebuf;

int sl_pagebuf_init(sl_pagebuf *b, uint64_t cap, sl_errbuf *e);
void sl_pagebuf_free(sl_pagebuf *b);
/* Appends one page (a copy of src, or zeros); returns its offset or -1 when full. */
int64_t sl_pagebuf_add(sl_pagebuf *b, const uint8_t *src);

/* The page-table area being built. Tables are allocated where restore will
 * put them (layout.pt_gpa upward), so the entries that link them need no
 * relocation: restore copies the area as it is. */
typedef struct sl_ptbuild {
    sl_pagebuf buf;
    uint64_t base_gpa;
} sl_ptbuild;

/* Reserves room for the tables: the part of scratch between the output
 * buffer and the exception stack, less a page for the guest. */
int sl_ptbuild_init(sl_ptbuild *t, const sl_layout *l, sl_errbuf *e);
/* A new zeroed table page at *gpa; false when the room is used up. */
bool sl_ptbuild_alloc(sl_ptbuild *t, uint64_t *gpa);
/* The area as page-table memory (pt.h), for map, link and lookup. */
sl_pt_mem sl_ptbuild_mem(sl_ptbuild *t);

/* How a snapshot maps a page the guest maps with `guest`: copy-on-write
 * when the guest may write it or it is copy-on-write already (the blob is
 * shared and read-only), read-only otherwise, readable either way.
 * Compaction (compact.c) and incremental takes (snapinc.c) must write the
 * same leaves, so both call this. */
sl_perm sl_snapbuild_leaf_perm(sl_perm guest);

/* A page's permissions as the snapshot maps it (readable, kernel-only). */
sl_perm sl_snapbuild_perm(unsigned kind, bool writable, bool executable);
/* An SL_PT_E* error from mapping `what` at `va` as an SL_E* error. */
int sl_snapbuild_pt_error(int rc, sl_errbuf *e, const char *what, uint64_t va);
/* Maps the scratch window (layout.scratch_gva) in the space at `root`. */
int sl_snapbuild_map_scratch(unsigned arch, sl_ptbuild *pt, const sl_layout *l, uint64_t root, sl_errbuf *e);

/* Joins the visible pages and the tables into one read-only blob, and fills
 * in s's blob, sizes, page count, reference and identity. Takes ownership
 * of vis's mapping (vis->p is NULL afterwards); s->arch must be set. */
int sl_snapbuild_seal(sl_snapshot *s, sl_pagebuf *vis, sl_ptbuild *pt, sl_errbuf *e);

#endif
