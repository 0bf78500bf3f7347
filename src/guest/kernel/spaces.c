/* Address spaces: extra page-table roots the program may create and switch
 * between (SL_SYS_SPACE_*). Every root is listed in the bookkeeping page so
 * that a snapshot walks them all; a new space starts as a copy of the
 * current root table and so shares everything below it. */
#include "kernel.h"

#define EINVAL 22
#define ENOMEM 12
#define EEXIST 17
#define EBUSY 16

unsigned k_space_count(void)
{
    uint64_t n = k_bk(SL_BK_NROOTS);
    return n > SL_BK_MAX_ROOTS ? 0 : (unsigned)n;
}

static uint64_t space_root(unsigned i) { return k_bk(SL_BK_ROOTS + 8 * i); }

unsigned k_space_current(void)
{
    uint64_t cur = k_root();
    unsigned n = k_space_count();
    for (unsigned i = 0; i < n; i++)
        if ((space_root(i) & K_PTE_ADDR) == cur)
            return i;
    return 0;
}

static unsigned root_entries(void) { return K_ARCH == SL_ARCH_I686 ? 1024u : 512u; }

static uint64_t root_entry(uint64_t root, unsigned idx)
{
    void *p = k_scratch_ptr(root);
    if (!p)
        return 0;
#if defined(__x86_64__)
    return ((volatile uint64_t *)p)[idx];
#else
    return ((volatile uint32_t *)p)[idx];
#endif
}

long k_space_create(void)
{
    unsigned n = k_space_count();
    if (n >= SL_BK_MAX_ROOTS)
        return -ENOMEM;
    uint64_t cur = k_root(), gpa;
    void *src = k_scratch_ptr(cur);
    if (!src || !k_page_take(&gpa))
        return -ENOMEM;
    k_memcpy(k_scratch_ptr(gpa), src, SL_PAGE_SIZE);
    *k_bk_slot(SL_BK_ROOTS + 8 * n) = gpa;
    *k_bk_slot(SL_BK_NROOTS) = n + 1;
    return (long)n;
}

long k_space_switch(unsigned long index)
{
    if (index >= k_space_count())
        return -EINVAL;
    uint64_t root = space_root((unsigned)index);
    if ((root & ~K_PTE_ADDR) || !k_scratch_ptr(root))
        return -EINVAL;
    *k_bk_slot(SL_BK_PT_ROOT) = root;
    k_write_cr3((uintptr_t)root);
    return 0;
}

static unsigned root_index(uint64_t gva)
{
#if defined(__x86_64__)
    return (unsigned)((gva >> 39) & 511);
#else
    return (unsigned)((gva >> 22) & 1023);
#endif
}

/* A fresh zero page, user read-write, at gva in one space only: the root
 * entry covering gva must not be shared with another space, and gva must be
 * ordinary user address space (not the kernel's, the stack's or mmap's). */
long k_space_map_private(unsigned long index, uint64_t gva)
{
    unsigned n = k_space_count();
    if (index >= n || (gva & (SL_PAGE_SIZE - 1)))
        return -EINVAL;
#if defined(__x86_64__)
    if (gva >= 0x0000800000000000ull)
        return -EINVAL;
#else
    if (gva >= k_st.scratch_gva)
        return -EINVAL;
#endif
    if ((gva >= k_st.mmap_lo && gva < k_st.mmap_hi) || (gva >= k_st.ustack_lo && gva < k_st.ustack_hi) ||
        gva < k_st.kernel_hi) /* page 0 (NULL must fault), the PEB, the kernel */
        return -EINVAL;
    uint64_t root = space_root((unsigned)index);
    unsigned slot = root_index(gva);
    if (slot >= root_entries())
        return -EINVAL;
    uint64_t e = root_entry(root, slot);
    if (e & SL_PTE_P) {
        for (unsigned i = 0; i < n; i++)
            if (i != index && root_entry(space_root(i), slot) == e)
                return -EBUSY;
    }
    sl_pt_mem m;
    k_pt_mem(&m);
    if (sl_pt_lookup(K_ARCH, &m, root, gva, NULL, NULL))
        return -EEXIST;
    uint64_t gpa;
    if (!k_page_take(&gpa))
        return -ENOMEM;
    sl_perm perm = {.kind = SL_MAP_BASIC, .readable = true, .writable = true, .executable = false, .user = true};
    if (sl_pt_map(K_ARCH, &m, root, gva, gpa, SL_PAGE_SIZE, perm) != SL_PT_OK) {
        k_page_give(gpa);
        return -ENOMEM;
    }
    if (root == k_root())
        k_invlpg((uintptr_t)gva);
    return 0;
}
