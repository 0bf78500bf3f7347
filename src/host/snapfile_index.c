/* The content index (snapfile_index.h). */
#include "snapfile_index.h"

#include <stdlib.h>
#include <string.h>

#include "le.h"
#include "snapfile_format.h"

static int by_hash(const void *a, const void *b)
{
    return memcmp(a, b, SL_HASH_LEN);
}

int sl_snapindex_build(const uint8_t *mem, const uint64_t *pages, uint64_t n, const uint8_t *hashes, uint8_t **out,
                       sl_errbuf *e)
{
    *out = NULL;
    uint8_t *idx = malloc(n ? n * SL_SNAPFILE_INDEX_ENTRY : 1);
    if (!idx)
        return sl_err(e, SL_ENOMEM, "out of memory");
    for (uint64_t i = 0; i < n; i++) {
        uint8_t *rec = idx + i * SL_SNAPFILE_INDEX_ENTRY;
        if (hashes)
            memcpy(rec, hashes + i * SL_HASH_LEN, SL_HASH_LEN);
        else
            sl_hash_bytes(mem + (pages ? pages[i] : i) * SL_PAGE_SIZE, SL_PAGE_SIZE, rec);
        sl_put64(rec + SL_HASH_LEN, i);
    }
    qsort(idx, n, SL_SNAPFILE_INDEX_ENTRY, by_hash);
    *out = idx;
    return 0;
}

/* Whether record rec names a page among own's that holds `page`. */
static bool confirms(const uint8_t *rec, const uint8_t *own, uint64_t own_pages, const uint8_t *page, uint64_t *found)
{
    uint64_t at = sl_get64(rec + SL_HASH_LEN);
    if (at >= own_pages || memcmp(own + at * SL_PAGE_SIZE, page, SL_PAGE_SIZE) != 0)
        return false;
    *found = at;
    return true;
}

bool sl_snapindex_find(const uint8_t *index, uint64_t n, const uint8_t *own, uint64_t own_pages,
                       const uint8_t hash[SL_HASH_LEN], const uint8_t *page, uint64_t *found)
{
    if (!index || !own)
        return false;
    uint64_t lo = 0, hi = n;
    while (lo < hi) { /* the first record not below hash */
        uint64_t mid = lo + (hi - lo) / 2;
        if (memcmp(index + mid * SL_SNAPFILE_INDEX_ENTRY, hash, SL_HASH_LEN) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* The records with this hash: one in a file save wrote; a hostile
     * index may repeat one, and gets a few tries, not a scan. */
    for (uint64_t i = lo; i < n && i < lo + 4 && memcmp(index + i * SL_SNAPFILE_INDEX_ENTRY, hash, SL_HASH_LEN) == 0;
         i++)
        if (confirms(index + i * SL_SNAPFILE_INDEX_ENTRY, own, own_pages, page, found))
            return true;
    return false;
}
