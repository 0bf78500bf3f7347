/* Snapshot files (DESIGN.md §6, docs/snapshot-format.md): the on-disk layout
 * and the internal entry points that work on an open file descriptor (the
 * fuzz target and the tests use them; programs use the path-based functions
 * in sandlet.h). */
#ifndef SL_SNAPFILE_H
#define SL_SNAPFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "snapshot.h"

#define SL_SNAPFILE_MAGIC "SLSNAPF\0" /* 8 bytes */
#define SL_SNAPFILE_VERSION 3u /* 3: the CPU state in architectural form (cpustate.h) */
#define SL_SNAPFILE_HEADER_SIZE 0x400u  /* fixed header, at offset 0 */
#define SL_SNAPFILE_META_MAX 0x10000u   /* header + small sections: at most 64 KiB */

/* Header field offsets (every integer little-endian). */
#define SF_MAGIC 0x000
#define SF_VERSION 0x008        /* u32 */
#define SF_HEADER_SIZE 0x00C    /* u32 */
#define SF_ARCH 0x010           /* u32 */
#define SF_FLAGS 0x014          /* u32, 0 */
#define SF_FILE_SIZE 0x018
#define SF_BLOB_OFFSET 0x020
#define SF_BLOB_SIZE 0x028
#define SF_VISIBLE_SIZE 0x030
#define SF_PT_SIZE 0x038
#define SF_REGIONS_OFFSET 0x040
#define SF_REGIONS_SIZE 0x048
#define SF_SREGS_OFFSET 0x050
#define SF_SREGS_SIZE 0x058
#define SF_INPUT_SIZE 0x060
#define SF_OUTPUT_SIZE 0x068
#define SF_HEAP_SIZE 0x070
#define SF_STACK_SIZE 0x078
#define SF_SCRATCH_SIZE 0x080
#define SF_INIT_DATA_SIZE 0x088
#define SF_INIT_DATA_PERM 0x090 /* u32 */
#define SF_N_REGIONS 0x094      /* u32 */
#define SF_PEB_GPA 0x098
#define SF_IMAGE_GPA 0x0A0
#define SF_IMAGE_SIZE 0x0A8
#define SF_INIT_DATA_GPA 0x0B0
#define SF_HEAP_GPA 0x0B8
#define SF_VISIBLE_END 0x0C0
#define SF_LAYOUT_STACK_TOP 0x0C8
#define SF_SCRATCH_GPA 0x0D0
#define SF_SCRATCH_GVA 0x0D8
#define SF_PT_GPA 0x0E0
#define SF_EXC_STACK_GPA 0x0E8
#define SF_BK_GPA 0x0F0
#define SF_NEXT_KIND 0x0F8      /* u32 */
#define SF_N_ROOTS 0x0FC        /* u32 */
#define SF_NEXT_ADDR 0x100
#define SF_STACK_TOP 0x108
#define SF_GENERATION 0x110
#define SF_CUR_ROOT 0x118       /* u32 */
#define SF_RESERVED0 0x11C      /* u32, 0 */
#define SF_PAGES_RO 0x120
#define SF_PAGES_COW 0x128
#define SF_PAGES_PT 0x130
#define SF_LEAVES 0x138
#define SF_LOAD_FLAGS 0x140     /* u32: bit 0 valid, bit 1 pie */
#define SF_RESERVED1 0x144      /* u32, 0 */
#define SF_BASE_VA 0x148
#define SF_LOAD_ADDR 0x150
#define SF_ENTRY 0x158
#define SF_IDENTITY 0x160       /* 32 bytes */
#define SF_CHECKSUM 0x180       /* 32 bytes */
#define SF_RESERVED2 0x1A0      /* zeros up to SF_ROOTS */
#define SF_ROOTS 0x200          /* SL_BK_MAX_ROOTS u64; unused ones zero */

/* Fields as the loader sees them (after validation), for inspect. */
typedef struct sl_snapfile_info {
    uint64_t file_size, blob_offset, blob_size, regions_offset, regions_size, sregs_offset, sregs_size;
} sl_snapfile_info;

/* Loads and validates the snapshot file open on fd (O(1) in its size: the
 * blob is mapped, never read). info may be NULL. */
int sl_snapfile_load_fd(sl_snapshot **out, int fd, sl_snapfile_info *info, sl_errbuf *e);
/* Full check: load, then recompute the identity (SL_EHASH on mismatch). */
int sl_snapfile_verify_fd(int fd, sl_errbuf *e);
/* Lines of `sandlet snapshot inspect` for the file open on fd. */
int sl_snapfile_inspect_fd(int fd, void (*line)(void *user, const char *text), void *user, sl_errbuf *e);

/* ---- a loaded file must not change (docs/snapshot-format.md §8, "While
 * loaded") ----
 * Load keeps a descriptor of the file and its identity (device, inode, size,
 * modification and status-change times) in s->file, and registers the
 * mapping with a process-wide SIGBUS handler: a host read of a page the file
 * lost (truncation, I/O error) gets zeros instead of killing the process and
 * marks the snapshot changed. A snapshot made in memory has no file. */

/* 0 while the file of s is as loaded (or s has none). Otherwise SL_ECHANGED,
 * now and for every later check, with a message in e naming the file, how it
 * changed, and `during` ("before a call", ...). One fstat (about 0.3 us); a
 * snapshot already seen changed costs an atomic load. Thread-safe. */
int sl_snapfile_check(const sl_snapshot *s, const char *during, sl_errbuf *e);
/* Whether s is already known to have changed (an atomic load, no fstat):
 * for the points right after a host read of its pages. */
bool sl_snapfile_lost(const sl_snapshot *s);
/* Closes the file of s and unregisters its mapping (sl_snapshot_free, before
 * it unmaps). */
void sl_snapfile_release(sl_snapshot *s);

/* Recomputes and stores the header checksum of a whole file image in memory,
 * trusting only what it bounds-checks (for tests and the fuzz target, which
 * build hostile files that must get past the checksum). Returns 0, or -1 when
 * the section geometry is too broken to know which bytes the checksum covers. */
int sl_snapfile_reseal(uint8_t *file, size_t len);

#endif
