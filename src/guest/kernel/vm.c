/* The program's memory system calls: brk over the PEB heap, and anonymous
 * mmap over the range the host set aside (SL_PEB_MMAP_LO..HI).
 *
 * mmap commits its pages at once (zero scratch pages), so that running out
 * of the sandbox's memory is an ENOMEM the C library turns into a NULL from
 * malloc — and Lua into "not enough memory" — rather than a fault later.
 * Addresses are handed out downwards from the top of the range; a munmap of
 * the lowest mapping moves the cursor back up. docs/guest-runtime.md has the
 * details and the limits. */
#include "kernel.h"

#define PROT_READ 1
#define PROT_WRITE 2
#define PROT_EXEC 4
#define MAP_SHARED 0x01
#define MAP_PRIVATE 0x02
#define MAP_FIXED 0x10
#define MAP_ANONYMOUS 0x20
#define MREMAP_MAYMOVE 1
#define MADV_DONTNEED 4

#define ENOMEM 12
#define EINVAL 22
#define ENODEV 19
#define EFAULT 14

/* Pages kept back for page tables, the stack and copy-on-write of memory
 * the program already has, so that an mmap cannot starve a later fault. */
#define RESERVE_PAGES 64u

static uint64_t page_up(uint64_t v) { return (v + SL_PAGE_SIZE - 1) & SL_PAGE_MASK; }

static bool in_mmap_range(uint64_t a, uint64_t len)
{
    return a >= k_st.mmap_lo && a <= k_st.mmap_hi && len <= k_st.mmap_hi - a;
}

/* Memory given back by lowering the break reads as zero when it is taken
 * again, as on Linux. */
long k_brk(uint64_t addr)
{
    if (addr >= k_st.heap_lo && addr <= k_st.heap_hi) {
        if (addr < k_vmstate.brk)
            k_memset((void *)(uintptr_t)addr, 0, (size_t)(k_vmstate.brk - addr));
        k_vmstate.brk = addr;
    }
    return (long)k_vmstate.brk;
}

/* Enough free pages for `pages` new ones, their tables and the reserve. */
static bool room_for(uint64_t pages)
{
    uint64_t need = pages + pages / 512 + 4 + RESERVE_PAGES;
    return need >= pages && k_pages_free() >= need;
}

static void unmap_range(uint64_t a, uint64_t len) { k_unmap_range(a, len / SL_PAGE_SIZE); }

/* PROT_NONE pages are committed like any other, but supervisor-only: so a
 * reservation is a mapping the cursor and mremap see, and mprotect can open
 * it without allocating. */
static long map_range(uint64_t a, uint64_t len, long prot)
{
    bool none = !(prot & (PROT_READ | PROT_WRITE | PROT_EXEC));
    if (k_map_zero_range(a, len / SL_PAGE_SIZE, prot & PROT_WRITE, prot & PROT_EXEC) != 0) {
        unmap_range(a, len);
        return -ENOMEM;
    }
    if (none)
        for (uint64_t va = a; va < a + len; va += SL_PAGE_SIZE)
            k_protect_page(va, false, false, false);
    return 0;
}

/* Takes [start, start + len) from the downward cursor, skipping pages that
 * MAP_FIXED, mprotect or mremap mapped below it: mmap never hands out a
 * page that is in use. */
static bool take_va(uint64_t len, uint64_t *start)
{
    uint64_t next = k_vmstate.mmap_next;
    for (;;) {
        if (next < k_st.mmap_lo || next - k_st.mmap_lo < len)
            return false;
        uint64_t s = next - len, used = k_highest_mapped(s, next);
        if (!used) {
            *start = s;
            k_vmstate.mmap_next = s;
            return true;
        }
        next = used; /* below the page in use */
    }
}

/* Every page of [a, a + len) is mapped. */
static bool all_mapped(uint64_t a, uint64_t len)
{
    for (uint64_t va = a; va < a + len; va += SL_PAGE_SIZE)
        if (!k_is_mapped(va))
            return false;
    return true;
}

long k_mmap(uint64_t addr, uint64_t len, long prot, long flags, long fd, uint64_t off)
{
    (void)off;
    if (len == 0 || (addr & (SL_PAGE_SIZE - 1)))
        return -EINVAL;
    if (!(flags & MAP_ANONYMOUS) || fd != -1)
        return -ENODEV; /* no files in a sandbox */
    if (!(flags & (MAP_PRIVATE | MAP_SHARED)))
        return -EINVAL;
    len = page_up(len);
    if (len == 0 || !room_for(len / SL_PAGE_SIZE))
        return -ENOMEM;
    uint64_t start;
    if (flags & MAP_FIXED) {
        if (!in_mmap_range(addr, len))
            return -ENOMEM;
        unmap_range(addr, len);
        start = addr;
    } else if (!take_va(len, &start)) {
        return -ENOMEM;
    }
    long rc = map_range(start, len, prot);
    if (rc) {
        if (!(flags & MAP_FIXED) && start == k_vmstate.mmap_next)
            k_vmstate.mmap_next = start + len;
        return rc;
    }
    return (long)start;
}

long k_munmap(uint64_t addr, uint64_t len)
{
    if ((addr & (SL_PAGE_SIZE - 1)) || len == 0)
        return -EINVAL;
    len = page_up(len);
    if (len == 0)
        return -EINVAL;
    if (!in_mmap_range(addr, len))
        return 0; /* only mmap's own range is ever unmapped */
    unmap_range(addr, len);
    if (addr <= k_vmstate.mmap_next && addr + len > k_vmstate.mmap_next) {
        uint64_t next = addr + len;
        while (next < k_st.mmap_hi && !k_is_mapped(next))
            next += SL_PAGE_SIZE;
        k_vmstate.mmap_next = next;
    }
    return 0;
}

long k_mremap(uint64_t old, uint64_t old_len, uint64_t new_len, long flags, uint64_t new_addr)
{
    (void)new_addr;
    if ((old & (SL_PAGE_SIZE - 1)) || new_len == 0 || (flags & ~MREMAP_MAYMOVE))
        return -EINVAL;
    old_len = page_up(old_len);
    new_len = page_up(new_len);
    if (new_len == 0 || old_len == 0 || !in_mmap_range(old, old_len))
        return -EINVAL;
    if (!all_mapped(old, old_len))
        return -EFAULT;
    if (new_len <= old_len) {
        unmap_range(old + new_len, old_len - new_len);
        return (long)old;
    }
    uint64_t grow = new_len - old_len;
    /* The new pages, and tables for the whole new range should it move. */
    if (!room_for(grow / SL_PAGE_SIZE + new_len / SL_PAGE_SIZE / 512 + 4))
        return -ENOMEM;
    bool free_above = in_mmap_range(old, new_len);
    for (uint64_t va = old + old_len; free_above && va < old + new_len; va += SL_PAGE_SIZE)
        free_above = !k_is_mapped(va);
    if (free_above)
        return map_range(old + old_len, grow, PROT_READ | PROT_WRITE) ? -ENOMEM : (long)old;
    if (!(flags & MREMAP_MAYMOVE))
        return -ENOMEM;
    uint64_t start;
    if (!take_va(new_len, &start))
        return -ENOMEM;
    /* The pages move by their table entries: nothing is copied. On failure
     * everything goes back where it was, as on Linux. */
    uint64_t moved = 0;
    while (moved < old_len && k_move_page(old + moved, start + moved))
        moved += SL_PAGE_SIZE;
    if (moved < old_len || map_range(start + old_len, grow, PROT_READ | PROT_WRITE)) {
        for (uint64_t i = 0; i < moved; i += SL_PAGE_SIZE)
            k_move_page(start + i, old + i);
        if (start == k_vmstate.mmap_next)
            k_vmstate.mmap_next = start + new_len;
        return -ENOMEM;
    }
    k_munmap(old, old_len);
    return (long)start;
}

long k_mprotect(uint64_t addr, uint64_t len, long prot)
{
    if (addr & (SL_PAGE_SIZE - 1))
        return -EINVAL;
    len = page_up(len);
    if (!in_mmap_range(addr, len))
        return -ENOMEM; /* the image keeps the permissions its ELF gave it */
    bool none = !(prot & (PROT_READ | PROT_WRITE | PROT_EXEC));
    for (uint64_t va = addr; va < addr + len; va += SL_PAGE_SIZE) {
        /* PROT_NONE keeps the page but makes it supervisor-only. */
        if (k_protect_page(va, !none, prot & PROT_WRITE, prot & PROT_EXEC) || none)
            continue;
        if (!room_for(1) || k_map_zero(va, prot & PROT_WRITE, prot & PROT_EXEC) != 0)
            return -ENOMEM;
    }
    return 0;
}

long k_madvise(uint64_t addr, uint64_t len, long advice)
{
    if (addr & (SL_PAGE_SIZE - 1))
        return -EINVAL;
    if (advice != MADV_DONTNEED)
        return 0; /* advice only */
    len = page_up(len);
    if (!in_mmap_range(addr, len))
        return -EINVAL;
    /* The contents must read as zero afterwards: a fresh page each, with
     * the permissions the old one had. */
    for (uint64_t va = addr; va < addr + len; va += SL_PAGE_SIZE) {
        sl_perm p;
        if (!k_page_perm(va, &p))
            continue;
        k_unmap(va);
        if (k_map_zero(va, p.writable || p.kind == SL_MAP_COW, p.executable) != 0)
            return -ENOMEM;
        if (!p.user)
            k_protect_page(va, false, false, false);
    }
    return 0;
}
