/* The guest kernels, embedded (see kernel.h). SL_KERNEL64/SL_KERNEL32 are
 * the paths of the built kernel ELFs, passed by the Makefile. */
    .section .rodata
    .balign 64
    .globl sl_kernel64_start, sl_kernel64_end, sl_kernel32_start, sl_kernel32_end
sl_kernel64_start:
    .incbin SL_KERNEL64
sl_kernel64_end:
    .balign 64
sl_kernel32_start:
    .incbin SL_KERNEL32
sl_kernel32_end:
    .section .note.GNU-stack, "", @progbits
