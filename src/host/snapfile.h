/* Snapshot files (DESIGN.md §6, docs/snapshot-format.md): the internal entry
 * points that work on an open file descriptor (the fuzz target and the tests
 * use them; programs use the path-based functions in sandlet.h, snapfile.c).
 *
 * The files behind them:
 *   snapfile_format.h/.c  the header table, decode/encode, checksum, build
 *   snapfile_parse.c      the checks a loaded file must pass
 *   snapfile_load.c       load (validate, then map the blob) and verify
 *   snapfile_save.c       save (build, check, write durably: fileio.h)
 *   snapfile_watch.c      a loaded file must not change (fstat, SIGBUS)
 *   snapfile_inspect.c    the `inspect` report, text and JSON
 *   snapfile_map.c        the report's address map (a page-table walk)
 *   family.c              the configuration family a loaded file joins */
#ifndef SL_SNAPFILE_H
#define SL_SNAPFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "err.h"
#include "snapfile_format.h"
#include "snapshot.h"

/* Fields as the loader sees them (after validation), for inspect. */
typedef struct sl_snapfile_info {
    uint32_t version; /* the file's format version (SL_SNAPFILE_VERSION_MIN..SL_SNAPFILE_VERSION) */
    uint64_t file_size, blob_offset, blob_size, regions_offset, regions_size, sregs_offset, sregs_size;
    uint64_t own_size, runs_offset, runs_size, index_offset, index_size; /* version 5 (§9) */
    int child;                                                          /* a child file */
} sl_snapfile_info;

/* Loading a chain (snapfile_chain.c): where to look for parents (a
 * ':'-separated list of files and directories, or NULL), and what the
 * loads above this one on the way down saw: children is how many child
 * files, seen their identities (a chain that names one twice loops).
 * The files above the one asked for are opened and checked, but their own
 * blobs are not mapped (mem NULL; sl_snapfile_chain_map maps one): the
 * child maps their pages itself, and an ancestor's runs would cost a
 * mapping each. */
typedef struct sl_snapfile_chain {
    const char *parents;
    unsigned children;
    uint8_t seen[SL_CHAIN_MAX + 1][SL_HASH_LEN];
} sl_snapfile_chain;

/* Loads and validates the snapshot file open on fd (O(1) in its size: the
 * blob is mapped, never read). info may be NULL. */
int sl_snapfile_load_fd(sl_snapshot **out, int fd, sl_snapfile_info *info, sl_errbuf *e);

#define SL_SNAPFILE_FOR_USE 2u  /* sl_snapshot_load: refuse a file others may write */
/* sl_snapfile_load_fd for the file named path (in messages and for the
 * watch; NULL for a bare descriptor), with SL_SNAPFILE_* flags. */
int sl_snapfile_load_file(sl_snapshot **out, int fd, const char *path, unsigned flags, sl_snapfile_info *info,
                          sl_errbuf *e);

/* sl_snapfile_load_file, loading a child's chain as `chain` says (NULL:
 * not at all; then a child has no blob, mem is NULL: for inspect, which
 * reads its header and sections only). */
int sl_snapfile_load_chained(sl_snapshot **out, int fd, const char *path, unsigned flags, sl_snapfile_chain *chain,
                             sl_snapfile_info *info, sl_errbuf *e);
/* For a child s just mapped (own pages, runs parsed): finds and loads its
 * parent (recursively, its chain), checks the runs against the chain and
 * maps them into a reservation that becomes s->mem (snapfile_chain.c). */
int sl_snapfile_chain_load(sl_snapshot *s, const char *path, unsigned flags, sl_snapfile_chain *chain, sl_errbuf *e);
/* Maps the blob of an ancestor a chain load left unmapped (verify hashes
 * one file at a time), and gives it back. */
int sl_snapfile_chain_map(sl_snapshot *s, sl_errbuf *e);
void sl_snapfile_chain_unmap(sl_snapshot *s);
/* Full check of the file on fd (named path for finding a child's parents;
 * may be NULL) and of every file of its chain: each identity recomputed. */
int sl_snapfile_verify_chain(int fd, const char *path, const char *parents, sl_progress_fn progress, void *user,
                             sl_errbuf *e);
/* Writes s to path as a child of the snapshot file parent_path
 * (snapfile_child.c; sl_snapshot_save_child in sandlet.h). */
int sl_snapfile_save_child(const sl_snapshot *s, const char *parent_path, const char *path, sl_progress_fn progress,
                           void *user, sl_errbuf *e);

/* Full check: load, then recompute the identity (SL_EHASH on mismatch). */
int sl_snapfile_verify_fd(int fd, sl_errbuf *e);
/* The same, telling progress (may be NULL) as the identity is hashed. */
int sl_snapfile_verify_progress(int fd, sl_progress_fn progress, void *user, sl_errbuf *e);

/* Progress callbacks come at most once per this many bytes hashed or
 * written (and once at the end). */
#define SL_SNAPFILE_PROGRESS_CHUNK (16u << 20)

/* Writes s to path atomically and durably, telling progress (may be NULL) as
 * the blob is written. Never writes a file that load would refuse. */
int sl_snapfile_save(const sl_snapshot *s, const char *path, sl_progress_fn progress, void *user, sl_errbuf *e);

/* Lines of `sandlet snapshot inspect` for the file open on fd, named path
 * (NULL: a bare descriptor; then a child's parents are looked for in
 * SANDLET_SNAPSHOT_PATH only). A child whose chain is not found is reported
 * without its address map, saying why. */
int sl_snapfile_inspect_fd(int fd, const char *path, void (*line)(void *user, const char *text), void *user,
                           sl_errbuf *e);
/* The same report as one JSON object, in *json (the caller frees it). */
int sl_snapfile_inspect_json_fd(int fd, const char *path, char **json, sl_errbuf *e);

/* ---- a loaded file must not change (docs/snapshot-format.md §8, "While
 * loaded"; snapfile_watch.c) ----
 * Load keeps a descriptor of the file and its identity (device, inode, size,
 * modification and status-change times) in s->file, and registers the
 * mapping with a process-wide SIGBUS handler: a host read of a page the file
 * lost (truncation, I/O error) gets zeros instead of killing the process and
 * marks the snapshot changed. A snapshot made in memory has no file. */

/* Starts watching the file on fd, mapped at s->map_base, as `at_load` says
 * it was when validated: keeps a descriptor of its own, checks that nothing
 * changed since, registers the mapping. */
int sl_snapfile_watch(sl_snapshot *s, int fd, const char *path, const struct stat *at_load, sl_errbuf *e);
/* 0 while the file of s is as loaded (or s has none). Otherwise SL_ECHANGED,
 * now and for every later check, with a message in e naming the file, how it
 * changed, and `during` ("before a call", ...). One fstat (about 0.3 us); a
 * snapshot already seen changed costs an atomic load. Thread-safe. */
int sl_snapfile_check(const sl_snapshot *s, const char *during, sl_errbuf *e);
/* Whether s is already known to have changed (an atomic load, no fstat):
 * for the points right after a host read of its pages. */
bool sl_snapfile_lost(const sl_snapshot *s);
/* The path a loaded file was loaded by ("" for a bare descriptor), or NULL
 * for a snapshot made in memory; the descriptor load keeps of it (-1). */
const char *sl_snapfile_path(const sl_snapshot *s);
/* 0 unless path names (by device and inode) a file of the chain from
 * `first` up (NULL: none): then SL_EINVAL, as saving there would replace a
 * file children need. */
int sl_snapfile_check_target(const sl_snapshot *first, const char *path, sl_errbuf *e);
/* The file `level` steps up the chain of s (0: s), or NULL past its end. */
const sl_snapshot *sl_snapfile_ancestor(const sl_snapshot *s, unsigned level);
int sl_snapfile_fd(const sl_snapshot *s);
/* Registers a child's blob (s->mem, the runs mapped from its chain) with
 * the SIGBUS handler as the file's: a page a file of the chain lost reads
 * as zeros and marks s changed. */
int sl_snapfile_watch_blob(sl_snapshot *s, sl_errbuf *e);
void sl_snapfile_unwatch_blob(sl_snapshot *s);
/* Closes the file of s and unregisters its mapping (sl_snapshot_free, before
 * it unmaps). */
void sl_snapfile_release(sl_snapshot *s);

/* Recomputes and stores the header checksum of a whole file image in memory,
 * trusting only what it bounds-checks (for tests and the fuzz target, which
 * build hostile files that must get past the checksum). Returns 0, or -1 when
 * the section geometry is too broken to know which bytes the checksum covers. */
int sl_snapfile_reseal(uint8_t *file, size_t len);

#endif
