/* A sandbox's guest memory: the snapshot it currently maps (read-only, never
 * copied) and its scratch region, plus the record of which scratch pages are
 * dirty so that a restore costs what the guest touched, not the region size. */
#ifndef SL_MEM_H
#define SL_MEM_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "pageset.h"
#include "snapshot.h"

typedef struct sl_mem {
    sl_layout layout;      /* of the configuration family */
    uint64_t family;       /* configuration family id (family.h) */
    const sl_snapshot *snap; /* currently mapped; the caller keeps it alive */
    uint8_t *scratch;
    sl_pageset dirty_set; /* scratch pages written since the last restore */
    uint64_t root;         /* CR3 after the last restore */
    uint64_t generation;
    uint64_t last_reset_pages; /* pages zeroed by the last restore */
    uint8_t tables_hash[SL_HASH_LEN]; /* identity of the snapshot whose tables are in scratch */
    uint64_t tables_size;
    uint64_t last_tables_copied; /* table pages copied by the last restore */
} sl_mem;

/* Creates memory for the family of `snap` (scratch reserved, not yet touched). */
int sl_mem_create(sl_mem **out, const sl_snapshot *snap, sl_errbuf *e);
void sl_mem_free(sl_mem *m);

/* Restores `snap` in place: maps it, zeroes the dirty scratch pages, copies
 * its page tables into scratch and rewrites the bookkeeping page. SL_ECHANGED
 * when a table page of a loaded file was lost while copied (the next restore
 * then copies every table). */
int sl_mem_restore(sl_mem *m, const sl_snapshot *snap, sl_errbuf *e);

/* Treats every page of scratch that may hold tables (pt_gpa up to the
 * exception stack) as dirtied, so that the next restore copies all of its
 * tables and zeroes the rest: for when the tables there may not be what
 * their snapshot's identity says (its file changed while they were copied). */
void sl_mem_forget_tables(sl_mem *m);

/* Records that [gpa, gpa+len) of scratch was written (by the host, or as
 * reported by the hypervisor's dirty log). Out-of-scratch ranges are ignored. */
void sl_mem_mark_dirty(sl_mem *m, uint64_t gpa, uint64_t len);
/* ORs a hypervisor dirty bitmap (one bit per scratch page) into the record. */
void sl_mem_merge_dirty(sl_mem *m, const uint64_t *bitmap);
uint64_t sl_mem_dirty_pages(const sl_mem *m);
/* Words of the bitmap sl_mem_merge_dirty takes (one bit per scratch page). */
uint64_t sl_mem_dirty_words(const sl_mem *m);
/* Scratch pages that hold memory in the host (sl_sandbox_info.resident_pages). */
uint64_t sl_mem_resident_pages(const sl_mem *m);

/* Host view of guest memory: a pointer to [gpa, gpa+len) when it lies wholly
 * in the snapshot (read-only) or in scratch, else NULL. */
const uint8_t *sl_mem_read_ptr(const sl_mem *m, uint64_t gpa, uint64_t len);
/* Writable pointer into scratch (marks the range dirty), else NULL. */
uint8_t *sl_mem_write_ptr(sl_mem *m, uint64_t gpa, uint64_t len);

/* Bookkeeping slot access (little-endian u64 in the top scratch page). */
uint64_t sl_mem_bk_get(const sl_mem *m, unsigned slot);
void sl_mem_bk_set(sl_mem *m, unsigned slot, uint64_t v);

/* Fills st to snapshot this memory with the given roots and CPU state. */
void sl_mem_guest_state(const sl_mem *m, sl_guest_state *st);

#endif
