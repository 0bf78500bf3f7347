/* i686 entry points of the guest kernel: boot, the `int $0x80` system-call
 * gate, the way into user mode and the exception stubs. Constants mirror
 * kernel.h (checked by static asserts in boot.c). */
#define SEL_KDATA 0x10
#define SEL_UCODE 0x1B
#define SEL_UDATA 0x23

    .text

/* ELF entry (Initialise). edi = bookkeeping GVA, esi = SL_ENTRY_INIT,
 * esp = the kernel stack top (scratch). k_boot ends in user mode. */
    .globl _start
    .type _start, @function
_start:
    and $-16, %esp
    xor %ebp, %ebp
    sub $12, %esp
    push %edi
    call k_boot
1:  hlt
    jmp 1b
    .size _start, . - _start

/* k_enter_user(ip, sp): iret to CPL3, interrupts off, IOPL 0, registers cleared. */
    .globl k_enter_user
    .type k_enter_user, @function
k_enter_user:
    mov 4(%esp), %ecx
    mov 8(%esp), %edx
    mov $SEL_UDATA, %eax
    mov %eax, %ds
    mov %eax, %es
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    pushl $SEL_UDATA
    pushl %edx
    pushl $0x2
    pushl $SEL_UCODE
    pushl %ecx
    xor %eax, %eax
    xor %ebx, %ebx
    xor %ecx, %ecx
    xor %edx, %edx
    xor %esi, %esi
    xor %edi, %edi
    xor %ebp, %ebp
    iret
    .size k_enter_user, . - k_enter_user

/* k_load_segments(gdtr *, idtr *, tss selector) */
    .globl k_load_segments
    .type k_load_segments, @function
k_load_segments:
    mov 4(%esp), %eax
    lgdt (%eax)
    mov 8(%esp), %eax
    lidt (%eax)
    mov $SEL_KDATA, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    mov 12(%esp), %eax
    ltr %ax
    pushl $0x08                 /* far return to reload cs, position-independently */
    call 1f
1:  addl $(2f - 1b), (%esp)
    lret
2:  ret
    .size k_load_segments, . - k_load_segments

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
    .globl k_isr_stubs
k_isr_stubs:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    ISR \v
    .endr

/* The user may have loaded any DPL3 selector (its TLS segment has a base)
 * into ds/es: the kernel works with its own flat ones and gives them back. */
.macro SAVE
    pusha
    push %ds
    push %es
    mov $SEL_KDATA, %eax
    mov %eax, %ds
    mov %eax, %es
    cld
    mov %esp, %ebx
    and $-16, %esp
    sub $12, %esp
    push %ebx
.endm
.macro RESTORE
    mov %ebx, %esp
    pop %es
    pop %ds
    popa
    add $8, %esp
    iret
.endm

isr_common:
    SAVE
    call k_exception
    RESTORE

/* int $0x80 (a DPL3 interrupt gate): eax = number, ebx ecx edx esi edi ebp
 * = arguments, result in eax (frame->eax). */
    .globl k_int80
    .type k_int80, @function
k_int80:
    pushl $0
    pushl $0x80
    SAVE
    call k_syscall_int80
    RESTORE
    .size k_int80, . - k_int80

    .section .note.GNU-stack, "", @progbits
