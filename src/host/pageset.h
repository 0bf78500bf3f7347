/* A set of page numbers in [0, n_pages): which scratch pages a sandbox has
 * dirtied since its last restore (mem.c).
 *
 * The workload: pages are added a range at a time by the host (a write into
 * scratch, usually a page or two) and a whole hypervisor dirty log at a time
 * after each run; a restore then takes every member, in runs of consecutive
 * pages, and empties the set; membership of single pages is asked only for
 * the page-table pages during a restore. The universe is small and fixed
 * (scratch is at most a few GiB: a few tens of KiB of bits), so a flat bitmap
 * fits better than the sparse structures SQLite's bitvec uses for 2-billion
 * page databases: adding is a few word ORs, merging a hypervisor log is one
 * OR per word because the bits use the hypervisor's layout (bit p % 64 of
 * word p / 64 for page p, as KVM_GET_DIRTY_LOG returns), and taking runs
 * skips empty words 64 pages at a time, so a restore costs what the guest
 * touched plus one read per word. */
#ifndef SL_PAGESET_H
#define SL_PAGESET_H

#include <stdbool.h>
#include <stdint.h>

typedef struct sl_pageset {
    uint64_t *words;
    uint64_t n_words;
    uint64_t n_pages;
} sl_pageset;

/* An empty set over [0, n_pages); false when out of memory. */
bool sl_pageset_init(sl_pageset *s, uint64_t n_pages);
void sl_pageset_free(sl_pageset *s);

/* Adds the pages [first, first + count) that lie below n_pages. */
void sl_pageset_add_range(sl_pageset *s, uint64_t first, uint64_t count);
/* Adds every page whose bit is set in `bitmap` (n_words words in the layout
 * above); bits at or beyond n_pages are ignored. */
void sl_pageset_merge(sl_pageset *s, const uint64_t *bitmap);
/* Whether `page` is in the set; false for a page at or beyond n_pages. */
bool sl_pageset_has(const sl_pageset *s, uint64_t page);
void sl_pageset_remove(sl_pageset *s, uint64_t page);
uint64_t sl_pageset_count(const sl_pageset *s);

/* Takes the lowest run of consecutive member pages at or above *page out of
 * the set: true with its first page in *page and its length in *count, or
 * false when no member is at or above *page. Call it again with *page +
 * *count to take the next run. */
bool sl_pageset_take_run(sl_pageset *s, uint64_t *page, uint64_t *count);

#endif
