/* Where calls enter the program (user mode, CPL3), and how init and calls
 * end: `out SL_PORT_DONE`, which the TSS I/O bitmap lets user code write. */
#define PORT_DONE 0x5100

    .text
    .globl lib_dispatch_entry
    .type lib_dispatch_entry, @function
lib_dispatch_entry:
    and $-16, %esp
    xor %ebp, %ebp
    call lib_dispatch
    .globl lib_done
lib_done:
    xor %eax, %eax
    mov $PORT_DONE, %dx
1:  out %eax, %dx
    jmp 1b
    .size lib_dispatch_entry, . - lib_dispatch_entry

    .section .note.GNU-stack, "", @progbits
