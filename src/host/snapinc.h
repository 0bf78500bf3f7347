/* Incremental takes (issue 11, item 7): a snapshot of a sandbox that runs
 * on parent P, computed from what the guest changed since it was restored
 * to P instead of by compacting all of its memory again. The result is
 * byte for byte, and so identity for identity, what compaction
 * (compact.c) makes of the same guest; where this cannot show that
 * cheaply, it declines and the caller compacts. See docs/decisions.md,
 * "Incremental takes". Engine-internal. */
#ifndef SL_SNAPINC_H
#define SL_SNAPINC_H

#include "err.h"
#include "pageset.h"
#include "snapshot.h"

/* What P must know to be the parent of incremental takes (snapinc.c):
 * built once per snapshot, when it is first needed, or by the take that
 * made it. Freed with the snapshot. */
struct sl_incprep;
void sl_incprep_free(struct sl_incprep *p);

/* Declined: compact the whole guest instead. Not an SL_E* code. */
#define SL_INC_DECLINED 1

/* A snapshot of the guest st describes, which runs on parent `p` (st was
 * made from the sandbox's memory while it maps p: st->snap_mem is p's
 * visible memory, st->parent its identity), given `dirty`: every scratch
 * page written since the sandbox was last restored to p (the hypervisor's
 * dirty log merged in). 0 with *out; SL_INC_DECLINED when the change is
 * not one this can take incrementally (page tables restructured, pages
 * mapped or unmapped, another address space, p not a compacted snapshot
 * its own compaction reproduces...); SL_ENOMEM. The first call for a
 * parent learns its structure, which costs about one full take; later
 * ones cost what changed. Safe to call from several threads at once,
 * sandboxes sharing p included. */
int sl_snapinc_take(sl_snapshot **out, const sl_guest_state *st, sl_snapshot *p, const sl_pageset *dirty,
                    sl_errbuf *e);

#endif
