/* i686 entry points and exception stubs of the guest runtime.
 * Constants mirror sl_layout.h / abi.h (checked by static asserts in boot.c). */
#define BK_EXC_STACK_TOP 0x38
#define ENTRY_CALL 1
#define PORT_DONE 0x5100

    .text

/* ELF entry. edi = bookkeeping GVA, esi = entry kind, esp = exception-stack top. */
    .globl _start
    .type _start, @function
_start:
    cmp $ENTRY_CALL, %esi
    je rt_dispatch_entry
    and $-16, %esp
    sub $16, %esp
    movl $0, 8(%esp)            /* exception depth counter (top - 8) */
    movl $0, 12(%esp)
    xor %ebp, %ebp
    sub $12, %esp
    push %edi
    call rt_boot                /* on the exception stack; returns the call-stack top */
    mov %eax, %esp
    call rt_init
    jmp rt_done
    .size _start, . - _start

/* Call entry (stored in SL_BK_DISPATCH). edi = bookkeeping GVA. */
    .globl rt_dispatch_entry
    .type rt_dispatch_entry, @function
rt_dispatch_entry:
    mov BK_EXC_STACK_TOP(%edi), %eax
    movl $0, -8(%eax)
    movl $0, -4(%eax)
    and $-16, %esp
    xor %ebp, %ebp
    sub $12, %esp
    push %edi
    call rt_dispatch
rt_done:
    xor %eax, %eax
    mov $PORT_DONE, %dx
    out %eax, %dx
1:  cli
    hlt
    jmp 1b
    .size rt_dispatch_entry, . - rt_dispatch_entry

/* rt_load_segments(gdtr *, idtr *, tss selector or 0) */
    .globl rt_load_segments
    .type rt_load_segments, @function
rt_load_segments:
    mov 4(%esp), %eax
    lgdt (%eax)
    mov 8(%esp), %eax
    lidt (%eax)
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs
    mov 12(%esp), %eax
    test %eax, %eax
    jz 1f
    ltr %ax
1:  call 2f                     /* position-independent far return to reload CS */
2:  pop %eax
    add $(3f - 2b), %eax
    pushl $0x08
    push %eax
    lret
3:  ret
    .size rt_load_segments, . - rt_load_segments

.macro ISR v
    .balign 16
    .if (\v == 8) || (\v == 10) || (\v == 11) || (\v == 12) || (\v == 13) || (\v == 14) || (\v == 17) || (\v == 21) || (\v == 29) || (\v == 30)
    .else
    pushl $0
    .endif
    pushl $\v
    jmp isr_common
.endm

    .balign 16
    .globl rt_isr_stubs
rt_isr_stubs:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    ISR \v
    .endr

/* No IST on i686: the frame goes onto the current stack, which is always
 * writable scratch (see boot.c, setup_stack). */
isr_common:
    cld
    pushal
    mov %esp, %ebx
    mov %esp, %eax
    and $-16, %esp
    sub $12, %esp
    push %eax
    call rt_exception
    mov %ebx, %esp
    popal
    add $8, %esp
    iret

    .section .note.GNU-stack, "", @progbits
