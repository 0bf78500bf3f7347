/* amd64 entry points of the guest kernel: boot, the `syscall` entry, the
 * way into user mode and the exception stubs. Constants mirror sl_layout.h
 * and kernel.h (checked by static asserts in boot.c). */
#define BK_USER_RSP 0x98
#define BK_KSTACK 0xA0
#define BK_HOST_PAGES 0x318
#define BK_PF_ADDR 0x330
#define BK_PF_ERR 0x338
#define BK_PF_ROOT 0x340
#define BK_PF_SLOT 0x348
#define BK_PF_PTE 0x350
#define PORT_PF 0x510B
#define K_BK_GVA (k_cpu_pages + 0x2080) /* k_st.bk_gva */
#define SEL_KDATA 0x10
#define SEL_UDATA 0x1B
#define SEL_UCODE 0x23

    .text

/* ELF entry (Initialise). rdi = bookkeeping GVA, esi = SL_ENTRY_INIT,
 * rsp = the kernel stack top (scratch). k_boot ends in user mode. */
    .globl _start
    .type _start, @function
_start:
    and $-16, %rsp
    xor %ebp, %ebp
    call k_boot
1:  hlt
    jmp 1b
    .size _start, . - _start

/* k_enter_user(ip, sp): iretq to CPL3 with interrupts off, IOPL 0 and every
 * general register cleared, so nothing of the kernel leaks into the program. */
    .globl k_enter_user
    .type k_enter_user, @function
k_enter_user:
    pushq $SEL_UDATA
    pushq %rsi
    pushq $0x2
    pushq $SEL_UCODE
    pushq %rdi
    xor %eax, %eax
    xor %ebx, %ebx
    xor %ecx, %ecx
    xor %edx, %edx
    xor %esi, %esi
    xor %edi, %edi
    xor %ebp, %ebp
    xor %r8d, %r8d
    xor %r9d, %r9d
    xor %r10d, %r10d
    xor %r11d, %r11d
    xor %r12d, %r12d
    xor %r13d, %r13d
    xor %r14d, %r14d
    xor %r15d, %r15d
    iretq
    .size k_enter_user, . - k_enter_user

/* The k_sysframe the C side reads (kernel.h), above the user rsp the caller
 * pushed first: user rip (rcx), rflags (r11), then the number and the six
 * arguments; SYSFRAME_CALL serves it and pops all but the rsp copy. */
.macro SYSFRAME_CALL
    pushq %rcx
    pushq %r11
    pushq %rax
    pushq %rdi
    pushq %rsi
    pushq %rdx
    pushq %r10
    pushq %r8
    pushq %r9
    cld
    mov %rsp, %rdi
    call k_syscall64_c
    popq %r9
    popq %r8
    popq %r10
    popq %rdx
    popq %rsi
    popq %rdi
    popq %rax
    popq %r11
    popq %rcx
.endm

/* The `syscall` entry (LSTAR). The CPU left the user rip in rcx and rflags
 * in r11 and did not switch stacks: swapgs reaches the bookkeeping page
 * (KERNEL_GS_BASE) to park the user rsp and load the kernel stack. Linux's
 * convention: rax = number, args in rdi rsi rdx r10 r8 r9, result in rax,
 * every register but rax, rcx and r11 preserved. */
    .globl k_syscall64
    .type k_syscall64, @function
k_syscall64:
    swapgs
    movq %rsp, %gs:BK_USER_RSP
    movq %gs:BK_KSTACK, %rsp
    pushq %gs:BK_USER_RSP
    swapgs
    SYSFRAME_CALL               /* 10 pushes from a 16-byte aligned top: aligned */
    popq %rsp
    sysretq
    .size k_syscall64, . - k_syscall64

/* k_load_segments(gdtr *rdi, idtr *rsi, tss selector edx) */
    .globl k_load_segments
    .type k_load_segments, @function
k_load_segments:
    lgdt (%rdi)
    lidt (%rsi)
    xor %eax, %eax
    mov %eax, %ds               /* null data selectors: 64-bit mode ignores them, and */
    mov %eax, %es               /* iretq to CPL3 never has to null them (which would */
    mov %eax, %fs               /* disturb the FS base musl keeps its thread pointer in) */
    mov %eax, %gs
    mov $SEL_KDATA, %eax
    mov %eax, %ss
    ltr %dx
    pushq $0x08
    lea 2f(%rip), %rax
    push %rax
    lretq
2:  ret
    .size k_load_segments, . - k_load_segments

/* One 16-byte stub per vector 0..31: push a zero error code where the CPU
 * pushes none, push the vector, go to the common path. */
.macro ISR v
    .balign 16
    .if \v == 14
    jmp isr_pf
    .exitm
    .endif
    .if (\v == 8) || (\v == 10) || (\v == 11) || (\v == 12) || (\v == 13) || (\v == 14) || (\v == 17) || (\v == 21) || (\v == 29) || (\v == 30)
    .else
    pushq $0
    .endif
    pushq $\v
    jmp isr_common
.endm

    .balign 16
    .globl k_isr_stubs
k_isr_stubs:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    ISR \v
    .endr

/* Page faults, and the system calls of a hypervisor whose `syscall` does not
 * change privilege. PVM (kvm_pvm) runs CPL3 code on the hardware and turns
 * `syscall` into a jump to LSTAR at CPL3, with rcx and r11 set as usual: the
 * fetch from our supervisor page faults with rip = k_syscall64, and that
 * fault is served here as the system call it is. The same guest and snapshot
 * therefore run on hardware KVM (where `syscall` enters k_syscall64 at CPL0)
 * and on PVM without being told which. A program that jumps to k_syscall64
 * itself gets exactly a system call: r11 is sanitized as it would be by
 * sysret, minus IOPL, NT and IF, which user mode never sets. */
#define USER_RFLAGS 0x240DD5        /* CF PF AF ZF SF TF DF OF AC ID */
isr_pf:                             /* err, rip, cs, rflags, rsp, ss */
    testb $3, 16(%rsp)
    jz 1f
    push %rax
    lea k_syscall64(%rip), %rax
    cmp %rax, 16(%rsp)
    je 3f
    /* A user fault, where the host serves them (SL_BK_HOST_PAGES = 1, on
     * PVM): hand it over in the bookkeeping page and write the entry the host
     * chose (src/host/hostfault.c). ~30 emulated instructions instead of the
     * C handler's ~250. */
    mov K_BK_GVA(%rip), %rax
    cmpq $1, BK_HOST_PAGES(%rax)
    jne 2f
    push %rdx
    mov %cr2, %rdx
    mov %rdx, BK_PF_ADDR(%rax)
    mov 16(%rsp), %rdx
    mov %rdx, BK_PF_ERR(%rax)
    mov %cr3, %rdx
    mov %rdx, BK_PF_ROOT(%rax)
    mov $PORT_PF, %edx
    out %eax, %dx
    mov BK_PF_SLOT(%rax), %rdx
    test %rdx, %rdx
    jz 4f
    push %rcx
    mov BK_PF_PTE(%rax), %rcx
    mov %rcx, (%rdx)
    pop %rcx
    mov BK_PF_ADDR(%rax), %rdx
    invlpg (%rdx)
    pop %rdx
    pop %rax
    add $8, %rsp
    iretq
4:  pop %rdx
2:  pop %rax
1:  pushq $14
    jmp isr_common
3:  pop %rax

pf_syscall:                         /* the same frame as k_syscall64 builds */
    pushq 32(%rsp)
    SYSFRAME_CALL               /* 6 words from the CPU + 10 pushes: aligned */
    add $16, %rsp               /* the rsp copy and the error code */
    mov %rcx, (%rsp)
    and $USER_RFLAGS, %r11
    or $0x2, %r11
    mov %r11, 16(%rsp)
    iretq

/* From CPL3 the CPU switched to RSP0 (the kernel stack); from CPL0 (a fault
 * inside a system call) it stays on the kernel stack. The kernel is built
 * with -mgeneral-regs-only, so only the general registers need saving, and
 * of those only the ones C code may clobber: k_exception preserves the rest.
 * (On PVM every instruction here is emulated, ~0.7 us each.) */
isr_common:
    cld
    push %rax
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    mov %rsp, %rdi
    push %rbx
    mov %rsp, %rbx
    and $-16, %rsp
    call k_exception
    mov %rbx, %rsp
    pop %rbx
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rax
    add $16, %rsp
    iretq

    .section .note.GNU-stack, "", @progbits
