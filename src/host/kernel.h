/* The guest kernel: sandlet's small CPL0 runtime (src/guest/kernel), one
 * ELF per architecture, built with the library and embedded in it. Every
 * sandbox made from a program ELF gets it beside the program. */
#ifndef SL_KERNEL_H
#define SL_KERNEL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Sets *elf and *len to the embedded kernel for `arch` (SL_ARCH_*): static
 * memory, never freed. SL_EINVAL for an unknown architecture. */
int sl_guest_kernel(unsigned arch, const uint8_t **elf, size_t *len, sl_errbuf *e);

#endif
