/* What a parent of incremental takes knows (snapinc.h): shared by the
 * file that learns it (snapinc_learn.c) and the one that takes
 * (snapinc.c). Engine-internal. */
#ifndef SL_SNAPINC_PREP_H
#define SL_SNAPINC_PREP_H

#include "snapinc.h"
#include "snapshot_impl.h"

enum { TAB_NONLEAF, TAB_LEAF, TAB_WINDOW };

/* A parent's blob in a memfd, which the blobs taken on its line map. */
struct sl_incbase {
    _Atomic int refs;
    int fd;
};

/* One page of P's tables. */
typedef struct inc_tab {
    uint64_t va;  /* the VA its entry 0 maps in the space that reaches it first */
    uint32_t ord; /* leaf table: 1 + its rank in walk order among those that map pieces; 0: none */
    uint32_t pieces; /* leaf table: the pieces it maps (a table left with none is not rebuilt) */
    uint8_t kind; /* TAB_*: TAB_WINDOW tables map only the scratch window, which compaction rebuilds */
} inc_tab;

#define REF_COW 0x80000000u
#define REF_MAX 0x7FFFFFFFu

struct sl_incprep {
    bool ok; /* false: this snapshot is no parent of incremental takes */
    sl_layout layout; /* the family's, as learned */
    /* The base: a memfd whose first base_pages pages are the blob's first
     * base_pages, except at priv[0..n_priv) (ascending, below base_pages);
     * the blob's pages from base_pages on are not the base's. Shared by
     * every prep of the line, not tied to the snapshot that was learned:
     * freeing that one (a loaded file, say) releases its file and memory
     * while snapshots taken on its line live on. */
    struct sl_incbase *base;
    uint64_t base_pages;
    uint64_t *priv;
    size_t n_priv;
    uint64_t n_vis, n_pt;
    inc_tab *tab;      /* n_pt */
    uint32_t *refs;    /* n_vis: pieces that map each page | REF_COW when its first piece is CoW */
    sl_hashtree *tree; /* owned, or NULL: the snapshot's own */
    sl_snapshot_stats stats;
};

/* P's prep, learned on first use (once, whichever thread comes first;
 * others wait): NULL when out of memory. lay: the family's layout. */
struct sl_incprep *sl_incprep_of(sl_snapshot *P, const sl_layout *lay);

#endif
