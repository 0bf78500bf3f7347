/* The embedded guest kernels, one per architecture (kernel.h). */
#include "kernel.h"

#include "sl_layout.h"

/* Defined by kernel_blob.S, which .incbin's the kernels built from src/guest/kernel. */
extern const uint8_t sl_kernel64_start[], sl_kernel64_end[];
extern const uint8_t sl_kernel32_start[], sl_kernel32_end[];

int sl_guest_kernel(unsigned arch, const uint8_t **elf, size_t *len, sl_errbuf *e)
{
    if (arch == SL_ARCH_AMD64) {
        *elf = sl_kernel64_start;
        *len = (size_t)(sl_kernel64_end - sl_kernel64_start);
    } else if (arch == SL_ARCH_I686) {
        *elf = sl_kernel32_start;
        *len = (size_t)(sl_kernel32_end - sl_kernel32_start);
    } else {
        return sl_err(e, SL_EINVAL, "no guest kernel for architecture %u", arch);
    }
    return 0;
}
