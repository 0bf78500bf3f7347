/* The content index of a snapshot file (docs/snapshot-format.md §9): one
 * record per page the file holds, {BLAKE3 of the page alone, the page's
 * number among the file's own pages}, sorted by hash. It lets a child find
 * a page its chain already holds, wherever it lies, without rehashing the
 * chain. It is advisory: a record is used only after the page it names
 * compared equal, byte for byte, so a wrong or unsorted index from a
 * hostile file costs misses, never a wrong page. */
#ifndef SL_SNAPFILE_INDEX_H
#define SL_SNAPFILE_INDEX_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "hash.h"

/* The index of n pages, page i at mem + pages[i] * 4096 (pages NULL: page
 * i at mem + i * 4096), numbered 0..n-1 in that order: *out is
 * n * SL_SNAPFILE_INDEX_ENTRY bytes the caller frees, sorted. hashes, when
 * not NULL, holds each page's hash already (n * SL_HASH_LEN bytes). */
int sl_snapindex_build(const uint8_t *mem, const uint64_t *pages, uint64_t n, const uint8_t *hashes, uint8_t **out,
                       sl_errbuf *e);

/* Looks up the page `page` (4096 bytes, its hash `hash`) in the n records
 * of index, whose own pages (own_pages of them) are at own: true, with its
 * number in *found, when one of them holds the same bytes. */
bool sl_snapindex_find(const uint8_t *index, uint64_t n, const uint8_t *own, uint64_t own_pages,
                       const uint8_t hash[SL_HASH_LEN], const uint8_t *page, uint64_t *found);

#endif
