/* The physical frame behind a virtual address of this process, for tests
 * that check that two mappings share pages (the page cache's, not private
 * copies). */
#ifndef SL_TEST_PAGEMAP_H
#define SL_TEST_PAGEMAP_H

#include <stdint.h>
#include <sys/types.h>
#include <unistd.h>

/* The frame of the page at va, from /proc/self/pagemap open on pm; 0 when
 * the page is not present, or when frame numbers are hidden (reading them
 * takes CAP_SYS_ADMIN). */
static inline uint64_t pfn_of(int pm, const void *va)
{
    uint64_t ent = 0;
    if (pm < 0 || pread(pm, &ent, 8, (off_t)((uintptr_t)va / 4096 * 8)) != 8)
        return 0;
    return ent & (1ull << 63) ? ent & ((1ull << 55) - 1) : 0;
}

#endif
