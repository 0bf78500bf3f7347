/* The snapshot object itself: private to the engine that builds one from a
 * binary or from guest memory (snapshot.c, compact.c, snapbuild.c) and to
 * the file codec that builds one from a file (snapfile*.c). Everyone else
 * reads a snapshot through the accessors in snapshot.h, so the blob layout
 * and the bookkeeping below can change without touching them. */
#ifndef SL_SNAPSHOT_IMPL_H
#define SL_SNAPSHOT_IMPL_H

#include "snapshot.h"

/* A run of a child file's blob (format version 5, §9): count pages from
 * page `page` on are pages src.. of the own pages of the file `level` steps
 * up its chain (0: the child itself). */
typedef struct sl_snaprun {
    uint64_t page, src;
    uint32_t count, level;
} sl_snaprun;

struct sl_snapshot {
    unsigned arch;
    sl_layout layout;
    /* The blob: visible_size guest-visible bytes (at GPA SL_BASE_ADDRESS),
     * then pt_size bytes of page tables that restore copies to layout.pt_gpa.
     * Read-only once built; never written while any sandbox maps it. */
    uint8_t *mem;
    uint64_t mem_size;
    void *map_base;    /* mapping to munmap on free (NULL: none), e.g. a whole file */
    uint64_t map_len;
    /* The file a loaded snapshot maps, watched for changes (snapfile.h,
     * sl_snapfile_check); NULL for a snapshot made in memory. */
    struct sl_snapfile_watch *file;
    _Atomic int refs;  /* sl_snapshot_ref / sl_snapshot_free */
    uint64_t visible_size;
    uint64_t pt_size;
    /* Root tables, as GPAs where restore puts them; cur_root indexes roots. */
    uint64_t roots[SL_BK_MAX_ROOTS];
    unsigned n_roots, cur_root;
    /* Mapped regions (the layout's, for a snapshot made from a binary; empty
     * after compaction, where every page lives in the blob). */
    sl_region regions[SL_MAX_REGIONS];
    unsigned n_regions;
    struct {
        bool valid, pie;
        uint64_t base_va, load_addr, entry;
    } load_info; /* debug only */
    /* Identity, computed once when the blob is final (a loaded file carries
     * it and verify recomputes it): never recomputed on the restore path. */
    uint8_t hash[SL_HASH_LEN];
    /* Lineage (issue 11): the identity of the parent, the snapshot whose
     * blob the sandbox this one was taken of ran on (the one it was started
     * from or last restored to). has_parent is false for a snapshot made
     * from a binary, and for one taken of a sandbox still on the snapshot
     * sl_sandbox_new_from_elf made (which no caller ever holds). Not part of
     * the identity: the same memory image is the same snapshot whatever it
     * descends from. */
    bool has_parent;
    uint8_t parent[SL_HASH_LEN];
    /* The CVs that identity was computed from (the seal keeps them; NULL
     * for a loaded file): owned, freed with the snapshot. */
    sl_hashtree *tree;
    /* Where a loaded file's pages are (format version 5): own_pages pages
     * at `own` in the file's mapping, from file offset own_offset; a full
     * file's are its blob. A child's blob (mem) is a reservation with its
     * runs mapped in from the files of its chain: chain_parent is the
     * parent file's snapshot (a reference held), depth the child files in
     * the chain, this one included (0: a full file or one made in memory).
     * index: the file's content index (n_index records, advisory), in the
     * mapping. parent_name: the name a child recorded for its parent. */
    const uint8_t *own;
    uint64_t own_pages, own_offset;
    sl_snaprun *runs; /* owned; NULL for a full file */
    uint64_t n_runs;
    const uint8_t *index;
    uint64_t n_index;
    unsigned depth;
    struct sl_snapshot *chain_parent;
    void *composite; /* a child's blob reservation, composite_len bytes, to munmap */
    uint64_t composite_len;
    char parent_name[256]; /* SL_SNAPFILE_NAME_MAX bytes at most, NUL-terminated */
    uint64_t layout_pin;    /* this file's (sl_snapfile_layout_pin) */
    uint64_t parent_layout; /* the pin of the parent file a child was saved against */
    /* From compaction: bit i set when page i of the blob is the page at
     * offset i of the parent's blob (`parent`), untouched; kept_pages bits.
     * A child file takes those from its parent without reading them. */
    uint64_t *kept;
    uint64_t kept_pages;
    /* What incremental takes on this snapshot need (snapinc.c): set once,
     * by the take that made it or when first needed; owned. */
    _Atomic(struct sl_incprep *) inc;
    uint64_t stack_top;
    uint32_t sregs_len; /* 0: none (a snapshot made from a binary) */
    uint8_t sregs[SL_SREGS_MAX];
    uint32_t next_kind; /* SL_NEXT_* */
    uint64_t next_addr;
    uint64_t family; /* configuration family id (family.h): where it may be restored */
    uint64_t generation;
    sl_snapshot_stats stats;
    sl_errbuf err;
};

#endif
