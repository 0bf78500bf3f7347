/* The memory layout of a configuration, and placing a program in it (layout.h). */
#include "layout.h"

#include <string.h>

static bool round_page(uint64_t v, uint64_t *out)
{
    if (v > UINT64_MAX - (SL_PAGE_SIZE - 1))
        return false;
    *out = (v + SL_PAGE_SIZE - 1) & SL_PAGE_MASK;
    return true;
}

static int size_field(uint64_t v, uint64_t dflt, const char *name, uint64_t *out, sl_errbuf *e)
{
    if (!v)
        v = dflt;
    if (v > SL_MAX_MEMORY || !round_page(v, out))
        return sl_err(e, SL_ERANGE, "%s of %llu bytes exceeds the %llu-byte limit", name,
                      (unsigned long long)v, (unsigned long long)SL_MAX_MEMORY);
    return 0;
}

int sl_layout_config(sl_layout *l, unsigned arch, const sl_config *cfg, sl_errbuf *e)
{
    static const sl_config zero;
    int rc;
    if (!cfg)
        cfg = &zero;
    memset(l, 0, sizeof *l);
    if (arch != SL_ARCH_AMD64 && arch != SL_ARCH_I686)
        return sl_err(e, SL_EINVAL, "unknown architecture %u", arch);
    l->arch = arch;
    if ((rc = size_field(cfg->input_size, SL_DEFAULT_IO_SIZE, "input buffer", &l->input_size, e)) ||
        (rc = size_field(cfg->output_size, SL_DEFAULT_IO_SIZE, "output buffer", &l->output_size, e)) ||
        (rc = size_field(cfg->heap_size, SL_DEFAULT_HEAP_SIZE, "heap", &l->heap_size, e)) ||
        (rc = size_field(cfg->stack_size, SL_DEFAULT_STACK_SIZE, "stack", &l->stack_size, e)) ||
        (rc = size_field(cfg->scratch_size, SL_DEFAULT_SCRATCH_SIZE, "scratch", &l->scratch_size, e)))
        return rc;
    if (cfg->init_data_size) {
        if (!cfg->init_data)
            return sl_err(e, SL_EINVAL, "init data size given without data");
        if ((rc = size_field(cfg->init_data_size, 0, "init data", &l->init_data_size, e)))
            return rc;
        l->init_data_perm = cfg->init_data_perm ? cfg->init_data_perm : SL_PERM_READ;
        if (l->init_data_perm & ~(SL_PERM_READ | SL_PERM_WRITE | SL_PERM_EXEC))
            return sl_err(e, SL_EINVAL, "init data permissions 0x%x unknown", l->init_data_perm);
    }
    /* Scratch holds input, output, a guard page, the call stack, at least one
     * page of tables per level, the exception stack and the bookkeeping page;
     * each addend is <= 16 GiB, so the sum cannot overflow. */
    uint64_t fixed = l->input_size + l->output_size + SL_PAGE_SIZE + l->stack_size + SL_EXC_STACK_SIZE +
                     SL_PAGE_SIZE;
    uint64_t min_scratch = fixed + 8 * SL_PAGE_SIZE;
    if (l->scratch_size < min_scratch)
        return sl_err(e, SL_ERANGE,
                      "scratch of %llu bytes is too small: input + output + call stack + page tables + "
                      "exception stack need at least %llu",
                      (unsigned long long)l->scratch_size, (unsigned long long)min_scratch);
    uint64_t total = l->input_size + l->output_size + l->heap_size + l->stack_size + l->scratch_size +
                     l->init_data_size;
    if (total > SL_MAX_MEMORY)
        return sl_err(e, SL_ERANGE, "configuration needs %llu bytes, over the %llu-byte limit",
                      (unsigned long long)total, (unsigned long long)SL_MAX_MEMORY);
    if (arch == SL_ARCH_I686 && total > (3ull << 30))
        return sl_err(e, SL_ERANGE, "i686 configuration needs %llu bytes, over the 3 GiB limit",
                      (unsigned long long)total);
    l->scratch_gpa = sl_scratch_base_gpa(arch, l->scratch_size);
    l->scratch_gva = sl_scratch_base_gva(arch, l->scratch_size);
    /* The function model's call stack lives in scratch, above a guard page
     * after the output buffer: it is never part of a snapshot, so a call
     * writes its stack without a copy-on-write fault. */
    l->callstack_gpa = l->scratch_gpa + l->input_size + l->output_size + SL_PAGE_SIZE;
    l->pt_gpa = l->callstack_gpa + l->stack_size;
    l->bk_gpa = l->scratch_gpa + l->scratch_size - SL_PAGE_SIZE;
    l->exc_stack_gpa = l->bk_gpa - SL_EXC_STACK_SIZE;
    l->stack_top = arch == SL_ARCH_I686 ? l->scratch_gva - SL_I686_STACK_GAP : SL_AMD64_STACK_TOP;
    l->peb_gpa = SL_BASE_ADDRESS;
    return 0;
}

int sl_layout_add_region(sl_layout *l, uint64_t gpa, uint64_t gva, uint64_t size, uint32_t flags, uint32_t kind,
                         sl_errbuf *e)
{
    if (l->n_regions >= SL_MAX_REGIONS)
        return sl_err(e, SL_ERANGE, "more than %u memory regions", SL_MAX_REGIONS);
    sl_region *r = &l->regions[l->n_regions++];
    r->gpa = gpa;
    r->gva = gva;
    r->size = size;
    r->flags = flags;
    r->kind = kind;
    return 0;
}

/* Room between the program's memory and the mmap range, and between the
 * mmap range and the stack, so that a run-away pointer faults. */
#define MMAP_GAP (16ull << 20)
#define AMD64_MMAP_LO 0x0000100000000000ull /* 16 TiB: far above any snapshot region */

int sl_layout_place(sl_layout *l, uint64_t kernel_span, uint64_t image_base, uint64_t image_span, bool fixed,
                    sl_errbuf *e)
{
    uint64_t span, kspan;
    if (!round_page(kernel_span, &kspan) || kspan > (64ull << 20))
        return sl_err(e, SL_ERANGE, "guest kernel span of %llu bytes over 64 MiB", (unsigned long long)kernel_span);
    l->kernel_gpa = kspan ? l->peb_gpa + SL_PAGE_SIZE : 0;
    l->kernel_size = kspan;
    uint64_t after_kernel = l->peb_gpa + SL_PAGE_SIZE + kspan;
    if (!round_page(image_span, &span) || span == 0 || span > (1ull << 30))
        return sl_err(e, SL_ERANGE, "image span of %llu bytes not in 1 byte .. 1 GiB",
                      (unsigned long long)image_span);
    if (fixed) {
        if (image_base & (SL_PAGE_SIZE - 1))
            return sl_err(e, SL_EFORMAT, "image base 0x%llx is not page-aligned",
                          (unsigned long long)image_base);
        if (image_base < after_kernel)
            return sl_err(e, SL_ERANGE,
                          "fixed-address image at 0x%llx overlaps the PEB or the guest kernel (images must "
                          "start at or above 0x%llx)",
                          (unsigned long long)image_base, (unsigned long long)after_kernel);
        if (image_base > (1ull << 32))
            return sl_err(e, SL_ERANGE, "fixed-address image at 0x%llx is above 4 GiB",
                          (unsigned long long)image_base);
    }
    /* Dense in GPA whatever the link address: a program linked at 128 MiB
     * (i386's 0x8048000) must not make every snapshot 128 MiB of zeros. */
    l->image_gpa = after_kernel;
    l->image_gva = fixed ? image_base : after_kernel;
    l->image_size = span;
    l->init_data_gpa = l->image_gpa + span;
    l->heap_gpa = l->init_data_gpa + l->init_data_size;
    l->visible_end = l->heap_gpa + l->heap_size;
    l->init_data_gva = l->image_gva + span;
    l->heap_gva = l->init_data_gva + l->init_data_size;
    l->va_end = l->heap_gva + l->heap_size;
    /* The snapshot region must stay below the stack and scratch, in both the
     * physical and the virtual space. */
    uint64_t stack_lo = l->stack_top - l->stack_size;
    uint64_t limit = stack_lo < l->scratch_gva ? stack_lo : l->scratch_gva;
    if (l->visible_end > l->scratch_gpa || l->va_end > limit)
        return sl_err(e, SL_ERANGE,
                      "guest memory ends at 0x%llx (GVA 0x%llx), past the stack/scratch start 0x%llx",
                      (unsigned long long)l->visible_end, (unsigned long long)l->va_end,
                      (unsigned long long)limit);
    if (l->arch == SL_ARCH_AMD64) {
        l->mmap_lo = AMD64_MMAP_LO;
    } else {
        l->mmap_lo = l->va_end + MMAP_GAP;
    }
    l->mmap_hi = stack_lo > MMAP_GAP ? stack_lo - MMAP_GAP : 0;
    if (l->mmap_hi < l->mmap_lo)
        l->mmap_lo = l->mmap_hi = 0; /* no room: mmap fails with ENOMEM */
    return 0;
}

void sl_region_record(const sl_region *r, uint8_t out[SL_REGION_RECORD_SIZE])
{
    sl_put64(out, r->gpa);
    sl_put64(out + 8, r->gva);
    sl_put64(out + 16, r->size);
    sl_put64(out + 24, (uint64_t)r->flags | (uint64_t)r->kind << 32);
}
