/* amd64 entry points and exception stubs of the guest runtime.
 * Constants mirror sl_layout.h / abi.h (checked by static asserts in boot.c). */
#define BK_EXC_STACK_TOP 0x38
#define ENTRY_CALL 1
#define PORT_DONE 0x5100

    .text

/* ELF entry. rdi = bookkeeping GVA, esi = SL_ENTRY_INIT or SL_ENTRY_CALL,
 * rsp = exception-stack top. A host that always enters here for calls too
 * still works: the CALL kind goes to the dispatch entry. */
    .globl _start
    .type _start, @function
_start:
    cmp $ENTRY_CALL, %esi
    je rt_dispatch_entry
    and $-16, %rsp
    sub $16, %rsp
    movq $0, (%rsp)
    movq $0, 8(%rsp)            /* exception depth counter (top - 8) */
    xor %ebp, %ebp
    call rt_boot                /* on the exception stack; returns the call-stack top */
    mov %rax, %rsp
    call rt_init
    jmp rt_done
    .size _start, . - _start

/* Call entry (stored in SL_BK_DISPATCH). rdi = bookkeeping GVA, rsp = the
 * stack top stored in SL_BK_STACK_TOP. */
    .globl rt_dispatch_entry
    .type rt_dispatch_entry, @function
rt_dispatch_entry:
    mov BK_EXC_STACK_TOP(%rdi), %rax
    movq $0, -8(%rax)           /* a previous call may have died inside the handler */
    and $-16, %rsp
    xor %ebp, %ebp
    call rt_dispatch
rt_done:
    xor %eax, %eax
    mov $PORT_DONE, %dx
    out %eax, %dx
1:  cli
    hlt
    jmp 1b
    .size rt_dispatch_entry, . - rt_dispatch_entry

/* rt_load_segments(gdtr *rdi, idtr *rsi, tss selector edx or 0) */
    .globl rt_load_segments
    .type rt_load_segments, @function
rt_load_segments:
    lgdt (%rdi)
    lidt (%rsi)
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs
    test %edx, %edx
    jz 1f
    ltr %dx
1:  pushq $0x08
    lea 2f(%rip), %rax
    push %rax
    lretq
2:  ret
    .size rt_load_segments, . - rt_load_segments

/* One 16-byte stub per vector 0..31: push a zero error code where the CPU
 * pushes none, push the vector, go to the common path. */
.macro ISR v
    .balign 16
    .if (\v == 8) || (\v == 10) || (\v == 11) || (\v == 12) || (\v == 13) || (\v == 14) || (\v == 17) || (\v == 21) || (\v == 29) || (\v == 30)
    .else
    pushq $0
    .endif
    pushq $\v
    jmp isr_common
.endm

    .balign 16
    .globl rt_isr_stubs
rt_isr_stubs:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    ISR \v
    .endr

/* Every vector runs on IST1 (the exception stack in scratch), so a fault on
 * the call stack (demand mapping, CoW after a restore, overflow) is handled.
 * The runtime is built with -mgeneral-regs-only, so only GPRs need saving. */
isr_common:
    cld
    push %rax
    push %rcx
    push %rdx
    push %rbx
    push %rbp
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi
    call rt_exception
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rbp
    pop %rbx
    pop %rdx
    pop %rcx
    pop %rax
    add $16, %rsp
    iretq

    .section .note.GNU-stack, "", @progbits
