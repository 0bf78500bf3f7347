/* Which page-table pages a multi-space walk (sl_pt_walk_spaces) has reached,
 * and from where: table GPA -> owner (the root it was first reached from,
 * the VA it covers there, its table level). The walk records each table the
 * first time and looks it up on every later reference, which is how a table
 * shared by two address spaces is reported once, as a link. Used by
 * compaction (compact.c) and by inspect (snapfile_map.c).
 *
 * Hostile tables can name as many distinct tables as they like, so the set
 * takes an optional limit: recording beyond it fails, and the walk stops
 * with SL_PT_ELIMIT instead of growing without bound. */
#ifndef SL_PT_OWNERS_H
#define SL_PT_OWNERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pt.h"
#include "u64map.h"

typedef struct sl_pt_owner {
    uint64_t va;    /* VA the table covers in its owner's space */
    unsigned root;  /* index of the owning root */
    unsigned depth; /* table level (0 = the root table) */
} sl_pt_owner;

typedef struct sl_pt_owners {
    sl_u64map index; /* table GPA -> index into owners */
    sl_pt_owner *owners;
    size_t n, cap;
    size_t limit; /* most tables recorded; 0: no limit */
} sl_pt_owners;

void sl_pt_owners_init(sl_pt_owners *t, size_t limit);
void sl_pt_owners_free(sl_pt_owners *t);
/* The owner of the table at `gpa`, or NULL when it was never recorded. */
const sl_pt_owner *sl_pt_owners_get(const sl_pt_owners *t, uint64_t gpa);
/* Records the table at `gpa` (not yet recorded); false when out of memory
 * or over the limit. */
bool sl_pt_owners_add(sl_pt_owners *t, uint64_t gpa, unsigned root, uint64_t va, unsigned depth);
/* The set as the walk's callbacks (ctx = t). */
sl_pt_seen sl_pt_owners_seen(sl_pt_owners *t);

#endif
