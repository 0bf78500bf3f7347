/* libFuzzer target for the identity's page tree (src/host/hashtree.c,
 * hashtree_threads.c): for an input of any size, the root merged from page
 * CVs (computed in pieces the input chooses), the root from the threaded
 * driver, and the root of a copy of the tree updated after some pages
 * changed must all equal the official hasher's BLAKE3 of the same bytes.
 *
 * Header: [0..1] u16 whole pages (mod 80), [2..3] u16 bytes after them
 * (mod 4096), [4..5] u16 tail bytes (mod 2100), [6] threads (1..3, or the
 * driver's own count), [7] seed for the pieces and the changed pages. The
 * rest of the input, repeated, fills the blob and the tail. */
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "hashtree.h"
#include "../tests/common/blake3_ref.h"

#define PAGE SL_HASHTREE_PAGE

static uint64_t next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Changes a few pages of blob and checks the updated tree against it. */
static void check_update(sl_hashtree *t, uint8_t *blob, size_t size, const uint8_t *tail, size_t tail_len,
                         uint64_t *seed)
{
    uint64_t n = size / PAGE, pages[8], m = 0;
    for (uint64_t p = next(seed) % (n + 1); p < n && m < 8; p += 1 + next(seed) % 9) {
        pages[m++] = p;
        blob[p * PAGE + next(seed) % PAGE] ^= (uint8_t)(1 + next(seed) % 255);
    }
    uint8_t want[32], got[32];
    FUZZ_ASSERT(sl_hashtree_update(t, blob, pages, m));
    sl_hashtree_root(t, blob, size, tail, tail_len, got);
    blake3_ref(blob, size, tail, tail_len, want);
    FUZZ_ASSERT(memcmp(want, got, 32) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    if (len < 9)
        return 0;
    size_t pages = (size_t)(data[0] | data[1] << 8) % 80, extra = (size_t)(data[2] | data[3] << 8) % 4096;
    size_t tail_len = (size_t)(data[4] | data[5] << 8) % 2100;
    unsigned threads = data[6] % 4;
    uint64_t seed = data[7] | 0x100u;
    const uint8_t *fill = data + 8;
    size_t fill_len = len - 8, size = pages * PAGE + extra;
    uint8_t *buf = malloc(size + tail_len + 1);
    FUZZ_ASSERT(buf);
    for (size_t i = 0; i < size + tail_len; i++)
        buf[i] = fill[i % fill_len];
    uint8_t *blob = buf, *tail = tail_len ? buf + size : NULL;

    uint8_t want[32], got[32];
    blake3_ref(blob, size, tail, tail_len, want);

    sl_hashtree *t = sl_hashtree_new(pages);
    FUZZ_ASSERT(t);
    for (uint64_t first = 0, n; first < pages; first += n) {
        n = 1 + next(&seed) % (pages - first);
        FUZZ_ASSERT(sl_hashtree_set_pages(t, blob + first * PAGE, first, n));
    }
    FUZZ_ASSERT(sl_hashtree_build(t));
    sl_hashtree_root(t, blob, size, tail, tail_len, got);
    FUZZ_ASSERT(memcmp(want, got, 32) == 0);

    sl_hash_job job = {.blob = blob, .blob_size = size, .tail = tail, .tail_len = tail_len,
                       .max_threads = threads, .thread_min = PAGE};
    sl_hashtree *kept;
    sl_hashtree_hash(&job, &kept, got);
    FUZZ_ASSERT(memcmp(want, got, 32) == 0);
    FUZZ_ASSERT(kept);

    check_update(kept, blob, size, tail, tail_len, &seed);
    sl_hashtree_free(kept);
    sl_hashtree_free(t);
    free(buf);
    return 0;
}
