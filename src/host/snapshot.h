/* Snapshots (DESIGN.md §3): from a guest ELF, or compacted from a running
 * guest's memory by walking all of its page tables. */
#ifndef SL_SNAPSHOT_H
#define SL_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "family.h"
#include "hashtree.h"
#include "layout.h"

#define SL_NEXT_INITIALISE 1u /* run the ELF entry (init) */
#define SL_NEXT_CALL 2u       /* ready for calls at the dispatch address */

#define SL_SREGS_MAX 16384u /* the CPU state saved with a snapshot (cpustate.h), at most */

/* Guest memory outside the snapshot and scratch regions (for example a buffer
 * the host mapped in). Its live pages are copied into the snapshot. */
typedef struct sl_extra_region {
    uint64_t gpa;
    const uint8_t *host;
    uint64_t size;
} sl_extra_region;

typedef struct sl_snapshot_stats {
    uint64_t pages_ro;  /* read-only data/code pages */
    uint64_t pages_cow; /* copy-on-write pages */
    uint64_t pages_pt;  /* page-table pages */
    uint64_t leaves;    /* mapped 4 KiB VAs (>= pages: aliases share a page) */
    uint64_t pages_kept; /* visible pages at the offset they have in the parent's blob (0 without a
                          * parent): what stable compaction kept in place */
    uint64_t pages_hashed; /* blob pages this snapshot's build copied and hashed: all of them for a
                            * full build, the changed ones for an incremental take (snapinc.c), 0
                            * for a loaded file */
} sl_snapshot_stats;

typedef struct sl_snapshot sl_snapshot;
struct sl_snapfile_watch;

/* Builds a snapshot from a guest ELF image in memory. */
int sl_snapshot_from_binary(sl_snapshot **out, const uint8_t *elf, size_t len, const sl_config *cfg,
                            sl_errbuf *e);

struct sl_pt_owners;

/* What compaction tells an observer about its walk (snapinc.c learns a
 * parent's structure from it). Both callbacks run on the compacting thread. */
typedef struct sl_compact_trace {
    void *arg;
    /* Each 4 KiB piece placed in the blob, in walk order: the GPA of the
     * leaf entry that maps it and the leaf's size, its GVA, its blob page
     * (slot), whether it is the first piece of that page, and whether that
     * piece made it a copy-on-write page (stats.pages_cow). */
    void (*piece)(void *arg, uint64_t entry_gpa, uint64_t leaf_size, uint64_t gva, uint64_t slot, bool first,
                  bool cow);
    /* Once, after the walk, before the tables are rebuilt: every source
     * table reached, and from where (an owner root at or past n_roots: a
     * table of the scratch window, which compaction does not walk). */
    void (*tables)(void *arg, const struct sl_pt_owners *reached);
} sl_compact_trace;

/* A guest's memory and CPU state, as input to a snapshot. */
typedef struct sl_guest_state {
    const sl_layout *layout;
    const uint8_t *snap_mem; /* guest-visible snapshot memory at SL_BASE_ADDRESS */
    uint64_t snap_size;
    const uint8_t *scratch; /* layout->scratch_size bytes at layout->scratch_gpa */
    const sl_extra_region *extra;
    unsigned n_extra;
    const uint64_t *roots; /* page-table roots (GPAs), one per address space */
    unsigned n_roots;
    unsigned cur_root;
    uint64_t stack_top;
    uint32_t next_kind;
    uint64_t next_addr;
    uint64_t generation;
    uint64_t family; /* configuration family id (family.h) */
    /* The identity of the snapshot snap_mem is the visible memory of, which
     * becomes the new snapshot's parent; NULL: none (the sandbox runs on
     * the snapshot made from its ELF). */
    const uint8_t *parent;
    const void *sregs;
    uint32_t sregs_len;
    const sl_compact_trace *trace; /* optional */
} sl_guest_state;

/* Compacts a running guest into a new snapshot (DESIGN.md §3 "from a running
 * sandbox"). Hostile page tables can make this fail (SL_EPAGETABLE, SL_ERANGE)
 * or yield a smaller snapshot; they never make it read outside the memory
 * described by st. */
int sl_snapshot_from_memory(sl_snapshot **out, const sl_guest_state *st, sl_errbuf *e);

/* Reference counting: a new snapshot has one reference; sl_snapshot_free
 * drops one and releases the memory with the last. */
sl_snapshot *sl_snapshot_ref(sl_snapshot *s);
void sl_snapshot_free(sl_snapshot *s);

/* Recomputes the identity of s (BLAKE3 of the blob, then the region
 * records), on every core for a large blob (sl_hashtree_hash). */
void sl_snapshot_compute_hash(const sl_snapshot *s, uint8_t out[SL_HASH_LEN]);
/* The identity's input as a job for sl_hashtree_hash: the blob, and the
 * region records written into tail; add touch and report to watch it. */
#define SL_SNAPSHOT_TAIL_MAX (SL_MAX_REGIONS * SL_REGION_RECORD_SIZE)
sl_hash_job sl_snapshot_hash_input(const sl_snapshot *s, uint8_t tail[SL_SNAPSHOT_TAIL_MAX]);

/* ---- what a snapshot holds (the struct is private: snapshot_impl.h) ---- */

unsigned sl_snapshot_arch(const sl_snapshot *s);
/* The layout of the snapshot's configuration family (n_regions is 0 after
 * compaction: every page then lives in the blob). */
const sl_layout *sl_snapshot_layout(const sl_snapshot *s);
uint64_t sl_snapshot_family(const sl_snapshot *s);
/* The identity (SL_HASH_LEN bytes, BLAKE3 of the blob and region records),
 * without a copy; sl_snapshot_id copies it out. */
const uint8_t *sl_snapshot_hash(const sl_snapshot *s);
/* The identity's page tree (hashtree.h): every CV of the blob's pages, kept
 * since the snapshot was built, so that a snapshot that differs from this
 * one in a few pages can reuse the others' CVs (sl_hashtree_dup, then
 * sl_hashtree_update). NULL for a snapshot loaded from a file (load never
 * reads the blob) or when there was no memory for it. Read-only. */
const sl_hashtree *sl_snapshot_hashtree(const sl_snapshot *s);
/* The whole blob: the visible memory, then the page tables. */
const uint8_t *sl_snapshot_blob(const sl_snapshot *s, uint64_t *size);
/* Guest-visible memory at GPA SL_BASE_ADDRESS, sl_snapshot_memory_size bytes. */
const uint8_t *sl_snapshot_visible(const sl_snapshot *s);
/* Page tables that restore copies to layout->pt_gpa,
 * sl_snapshot_page_table_size bytes. */
const uint8_t *sl_snapshot_tables(const sl_snapshot *s);
/* Address spaces: root tables as GPAs where restore puts them. */
unsigned sl_snapshot_n_roots(const sl_snapshot *s);
uint64_t sl_snapshot_root(const sl_snapshot *s, unsigned i);
unsigned sl_snapshot_cur_root(const sl_snapshot *s);
/* Saved CPU state (cpustate.h encoding); NULL with *len 0 for a snapshot
 * made from a binary, which starts from reset state. */
const uint8_t *sl_snapshot_cpu_state(const sl_snapshot *s, uint32_t *len);
/* What the guest runs next (SL_NEXT_*) and where. */
uint32_t sl_snapshot_next_kind(const sl_snapshot *s);
uint64_t sl_snapshot_next_addr(const sl_snapshot *s);
uint64_t sl_snapshot_stack_top(const sl_snapshot *s);
const sl_snapshot_stats *sl_snapshot_page_stats(const sl_snapshot *s);

#endif

