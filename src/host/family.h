/* Configuration families (DESIGN.md §3): a sandbox restores only snapshots
 * of its own family, the snapshots whose memory layout is the one its
 * scratch, memslots and page-table room were made for. A family is named
 * by a process-wide id (`family` in sl_snapshot and sl_mem): a snapshot
 * made from a binary starts a family of its own, one compacted from a
 * sandbox stays in the sandbox's, and every file loaded with the same
 * architecture and configuration sizes joins one family, so a sandbox
 * started from one file restores any other. */
#ifndef SL_FAMILY_H
#define SL_FAMILY_H

#include <stdint.h>

#include "err.h"
#include "layout.h"

struct sl_snapshot;

/* A fresh family id, shared with no other family (never 0). */
uint64_t sl_family_new(void);

/* The family of a loaded file with layout l: the same id for every layout
 * with the same architecture, configuration sizes and init-data
 * permissions. SL_ENOMEM, or 0 with *id set. Thread-safe. */
int sl_family_of_layout(const sl_layout *l, uint64_t *id, sl_errbuf *e);

/* 0 when snapshot s may be restored into memory made for `family` and
 * `arch` (a sandbox's); SL_EFAMILY otherwise, with a message naming both
 * families. Every id the library hands out implies its architecture; the
 * second comparison guards ids set by hand. */
int sl_family_check(const struct sl_snapshot *s, uint64_t family, unsigned arch, sl_errbuf *e);

#endif
