/* A bare vCPU for the tests and benchmarks that drive src/host/vcpu.h
 * directly (tests/vcpu/test_vcpu_kvm.c, bench/bench_call.c): guest code
 * written as assembly in the C file, identity-mapping page tables, and the
 * registers a snippet starts with.
 *
 * Guest code, the KVM selftests' way: GUEST_CODE(name, "insn\n" ...) assembles
 * the snippet into .rodata between the symbols name and name_end (the host
 * never runs it; vm_load copies it into guest memory). GUEST_LABEL(l) inside a
 * snippet names a place in it, for tests that enter there or check RIP
 * against it (offset: l - name). Jumps inside a snippet use local labels
 * ("1:", "jmp 1b"), which the assembler resolves to short jumps.
 *
 * The assembler works in 64-bit mode. Snippets that also run as i686 guests
 * keep to encodings that mean the same in both modes: 32-bit registers and
 * immediates (mov $imm32, %ebx zero-extends in long mode), register-indirect
 * addressing through the 64-bit name of the register (`(%rbx)`, which is
 * `[ebx]` to a 32-bit CPU; writing `(%ebx)` would add an address-size prefix
 * that means 16-bit addressing there), and no instruction with a REX prefix. */
#ifndef SL_TEST_VM_H
#define SL_TEST_VM_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "vcpu.h"

/* A C constant spelled into assembly text: "mov $" GUEST_STR(PORT) ", %edx".
 * Constants used this way have no integer suffix (the assembler takes 0x10,
 * not 0x10u). */
#define GUEST_STR_(x) #x
#define GUEST_STR(x) GUEST_STR_(x)

#define GUEST_LABEL(l) ".globl " #l "\n\t.hidden " #l "\n" #l ":\n\t"

#define GUEST_CODE(name, text)                                                     \
    __asm__(".pushsection .rodata.guest_code, \"a\"\n\t" GUEST_LABEL(name) text    \
            "\n\t" GUEST_LABEL(name##_end) ".popsection");                       \
    extern const uint8_t name[], name##_end[]

/* Size of a snippet; offset of one of its labels. */
#define GUEST_SIZE(name) ((size_t)(name##_end - name))
#define GUEST_AT(name, label) ((uint64_t)(label - name))

/* Copies the snippet `name` to guest-physical `gpa` of `mem` (the memory of
 * slot 0, which starts at GPA 0). */
#define vm_load(mem, gpa, name) memcpy((mem) + (gpa), name, GUEST_SIZE(name))

/* Zeroed anonymous memory for a memslot; NULL when mmap fails. */
static inline uint8_t *vm_map_anon(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Page-table entry bits the snippets' tables use. */
#define VM_PTE_P 0x01u
#define VM_PTE_W 0x02u
#define VM_PTE_U 0x04u
#define VM_PTE_A 0x20u
#define VM_PTE_D 0x40u

/* Tables at `base` in guest memory `mem` (GPA 0 = mem), 4 KiB pages only:
 *   amd64: PML4 at base, PDPT at +0x1000, PD at +0x2000, page tables from +0x3000;
 *   i686:  page directory at base, page tables from +0x3000.
 * Points the PTE for `va` at `gpa`, with `bits`. */
static inline void vm_map_page(uint8_t *mem, unsigned arch, uint64_t base, uint64_t va, uint64_t gpa,
                               uint64_t bits)
{
    uint64_t pte = gpa | bits;
    size_t i = (size_t)(va >> 12);
    if (arch == SL_ARCH_AMD64)
        memcpy(mem + base + 0x3000 + i * 8, &pte, 8);
    else {
        uint32_t pte32 = (uint32_t)pte;
        memcpy(mem + base + 0x3000 + i * 4, &pte32, 4);
    }
}

/* Builds the tables above at `base`, identity-mapping [0, span) (span a
 * multiple of 2 MiB on amd64, 4 MiB on i686): directory entries with
 * `dir_bits`, leaves with `leaf_bits`. */
static inline void vm_identity_tables(uint8_t *mem, unsigned arch, uint64_t base, uint64_t span,
                                      uint64_t dir_bits, uint64_t leaf_bits)
{
    uint64_t per_table = arch == SL_ARCH_AMD64 ? 0x200000 : 0x400000;
    uint64_t n_tables = span / per_table;
    memset(mem + base, 0, 0x3000 + n_tables * 0x1000);
    if (arch == SL_ARCH_AMD64) {
        uint64_t pml4e = (base + 0x1000) | dir_bits, pdpte = (base + 0x2000) | dir_bits;
        memcpy(mem + base, &pml4e, 8);
        memcpy(mem + base + 0x1000, &pdpte, 8);
        for (uint64_t i = 0; i < n_tables; i++) {
            uint64_t pde = (base + 0x3000 + i * 0x1000) | dir_bits;
            memcpy(mem + base + 0x2000 + i * 8, &pde, 8);
        }
    } else {
        for (uint32_t i = 0; i < n_tables; i++) {
            uint32_t pde = (uint32_t)((base + 0x3000 + i * 0x1000) | dir_bits);
            memcpy(mem + base + i * 4, &pde, 4);
        }
    }
    for (uint64_t va = 0; va < span; va += 0x1000)
        vm_map_page(mem, arch, base, va, va, leaf_bits);
}

/* Starts the next run at `rip` with the stack at `rsp`, `rax` set and every
 * other general register zero (RFLAGS: only the reserved bit 1). */
static inline int vm_set_entry(sl_vcpu *v, uint64_t rip, uint64_t rsp, uint64_t rax, sl_errbuf *e)
{
    sl_regs r;
    memset(&r, 0, sizeof r);
    r.rip = rip;
    r.rsp = rsp;
    r.rflags = 2;
    r.rax = rax;
    return sl_vcpu_set_regs(v, &r, e);
}

#endif
