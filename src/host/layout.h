/* Where everything sits in guest memory for one sandbox configuration
 * (DESIGN.md §2): the snapshot region (PEB, image, init data, heap) from
 * SL_BASE_ADDRESS up, the stack range, and the scratch region at the top. */
#ifndef SL_LAYOUT_HOST_H
#define SL_LAYOUT_HOST_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "le.h"
#include "sandlet.h"
#include "sl_layout.h"

/* Region flags and kinds (region records are hashed and saved in files). */
#define SL_RF_READ 1u
#define SL_RF_WRITE 2u
#define SL_RF_EXEC 4u
#define SL_RF_USER 8u

#define SL_RK_PEB 1u
#define SL_RK_IMAGE 2u
#define SL_RK_INIT_DATA 3u
#define SL_RK_HEAP 4u
#define SL_RK_KERNEL 5u /* the guest kernel image (supervisor-only) */

#define SL_MAX_REGIONS 24u

typedef struct sl_region {
    uint64_t gpa, gva, size;
    uint32_t flags; /* SL_RF_* */
    uint32_t kind;  /* SL_RK_* */
} sl_region;

#define SL_REGION_RECORD_SIZE 32u

typedef struct sl_layout {
    unsigned arch;
    /* configuration, page-rounded */
    uint64_t input_size, output_size, heap_size, stack_size, scratch_size, init_data_size;
    uint32_t init_data_perm;
    /* snapshot region (GPA == GVA for everything laid out from a binary) */
    /* GPA == GVA for the PEB and the kernel. The program's image, init data
     * and heap are dense in GPA (right after the kernel) and at the image's
     * link address in GVA (ET_EXEC), or the same as the GPA (PIE). */
    uint64_t peb_gpa, kernel_gpa, kernel_size, image_gpa, image_size, init_data_gpa, heap_gpa;
    uint64_t image_gva, init_data_gva, heap_gva;
    uint64_t visible_end; /* one past the last guest-visible GPA of a from-binary snapshot */
    uint64_t va_end;      /* one past the program's heap, in GVA */
    /* stack, and the range the guest kernel serves mmap from */
    uint64_t stack_top;
    uint64_t mmap_lo, mmap_hi;
    /* scratch */
    uint64_t scratch_gpa, scratch_gva;
    uint64_t callstack_gpa;     /* the function model's call stack (stack_size bytes), after
                                 * input, output and an unmapped guard page */
    uint64_t pt_gpa;            /* page tables start here (after the call stack) */
    uint64_t exc_stack_gpa;     /* bottom of the exception stack */
    uint64_t bk_gpa;            /* the bookkeeping page */
    sl_region regions[SL_MAX_REGIONS];
    unsigned n_regions;
} sl_layout;

/* Fills the configuration part of l from cfg (defaults applied, sizes rounded)
 * and the scratch/stack part; checks every limit. */
int sl_layout_config(sl_layout *l, unsigned arch, const sl_config *cfg, sl_errbuf *e);

/* Places the guest kernel (kernel_span bytes, 0 for none) right after the
 * PEB, then the program image, init data and heap right after it in GPA;
 * in GVA the image sits at `image_base` when `fixed` (ET_EXEC: its link
 * address, which must not overlap the kernel), else at its GPA, and init
 * data and heap follow it. Also sets the mmap range. */
int sl_layout_place(sl_layout *l, uint64_t kernel_span, uint64_t image_base, uint64_t image_span, bool fixed,
                    sl_errbuf *e);

/* Appends a region record (flags SL_RF_*) mapped at gva. */
int sl_layout_add_region(sl_layout *l, uint64_t gpa, uint64_t gva, uint64_t size, uint32_t flags, uint32_t kind,
                         sl_errbuf *e);

/* GVA <-> GPA inside scratch. */
static inline uint64_t sl_layout_scratch_gva_of(const sl_layout *l, uint64_t gpa)
{
    return gpa - l->scratch_gpa + l->scratch_gva;
}

/* Serialises a region as its 32-byte little-endian record (gpa, gva, size, flags, kind). */
void sl_region_record(const sl_region *r, uint8_t out[SL_REGION_RECORD_SIZE]);

#endif
