/* lab_smoke: the smallest proof that /dev/kvm really runs guest code.
 *
 * Creates a VM with 2 MiB of memory and one vCPU, puts it straight into 64-bit
 * long mode (identity-mapped 2 MiB page) and runs a guest that does OUTs of
 * three sizes, an IN whose value the host supplies, a memory store and HLT.
 * Every exit is checked against what the guest code must produce, so a KVM
 * that merely "runs" without executing the code correctly fails.
 *
 * Build: gcc -static -O2 -o lab_smoke tests/lab/lab_smoke.c
 * Run:   scripts/kvm-lab -- ./lab_smoke     (or natively where /dev/kvm exists)
 * Prints PASS/FAIL lines; exits 0 when everything passed, 1 otherwise. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define MEM_SIZE (2u << 20)
#define PML4_GPA 0x1000u
#define PDPT_GPA 0x2000u
#define PD_GPA 0x3000u
#define CODE_GPA 0x8000u
#define DATA_GPA 0x9000u
#define IN_VALUE 0x12345678u

/* The guest. Offsets matter only for the final RIP check. */
static const uint8_t guest_code[] = {
    0x66, 0xba, 0x10, 0x00,             /* mov dx, 0x10            */
    0xb0, 0x11,                         /* mov al, 0x11            */
    0xee,                               /* out dx, al              */
    0x66, 0xba, 0x34, 0x12,             /* mov dx, 0x1234          */
    0x66, 0xb8, 0xef, 0xbe,             /* mov ax, 0xbeef          */
    0x66, 0xef,                         /* out dx, ax              */
    0x66, 0xba, 0x20, 0x00,             /* mov dx, 0x20            */
    0xb8, 0x0d, 0xf0, 0xfe, 0xca,       /* mov eax, 0xcafef00d     */
    0xef,                               /* out dx, eax             */
    0xed,                               /* in eax, dx              */
    0xf7, 0xd0,                         /* not eax                 */
    0xef,                               /* out dx, eax             */
    0x89, 0x04, 0x25, 0x00, 0x90, 0x00, 0x00, /* mov [0x9000], eax */
    0xf4,                               /* hlt                     */
};

struct expect_io {
    uint8_t dir;
    uint16_t port;
    uint8_t size;
    uint32_t value; /* for OUT: what the guest sent; for IN: what we answer */
};

static const struct expect_io expected[] = {
    {KVM_EXIT_IO_OUT, 0x10, 1, 0x11},
    {KVM_EXIT_IO_OUT, 0x1234, 2, 0xbeef},
    {KVM_EXIT_IO_OUT, 0x20, 4, 0xcafef00du},
    {KVM_EXIT_IO_IN, 0x20, 4, IN_VALUE},
    {KVM_EXIT_IO_OUT, 0x20, 4, ~IN_VALUE},
};

static int failures;

static void result(int ok, const char *what)
{
    printf("%s %s\n", ok ? "PASS" : "FAIL", what);
    if (!ok)
        failures++;
}

static int xioctl(int fd, unsigned long req, void *arg, const char *name)
{
    int r = ioctl(fd, req, arg);
    if (r < 0) {
        printf("FAIL %s: %s\n", name, strerror(errno));
        failures++;
    }
    return r;
}

/* KVM 6.12+ rejects long-mode sregs unless the guest CPUID allows PAE/LM. */
static int set_cpuid(int kvm, int vcpu)
{
    const unsigned n = 256;
    struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));
    int r = -1;
    if (!c)
        return -1;
    c->nent = n;
    if (xioctl(kvm, KVM_GET_SUPPORTED_CPUID, c, "KVM_GET_SUPPORTED_CPUID") == 0)
        r = xioctl(vcpu, KVM_SET_CPUID2, c, "KVM_SET_CPUID2");
    free(c);
    return r;
}

static void build_page_tables(uint8_t *mem)
{
    uint64_t pml4e = PDPT_GPA | 3;        /* present | writable */
    uint64_t pdpte = PD_GPA | 3;
    uint64_t pde = 0 | 3 | (1u << 7);     /* 2 MiB page at GPA 0 */
    memcpy(mem + PML4_GPA, &pml4e, sizeof pml4e);
    memcpy(mem + PDPT_GPA, &pdpte, sizeof pdpte);
    memcpy(mem + PD_GPA, &pde, sizeof pde);
    memcpy(mem + CODE_GPA, guest_code, sizeof guest_code);
}

static int enter_long_mode(int vcpu)
{
    struct kvm_sregs s;
    if (xioctl(vcpu, KVM_GET_SREGS, &s, "KVM_GET_SREGS") < 0)
        return -1;
    s.cr3 = PML4_GPA;
    s.cr4 = 1u << 5;          /* PAE */
    s.cr0 = 0x80050033u;      /* PG WP NE ET MP PE */
    s.efer = 0x500;           /* LME LMA */
    struct kvm_segment cs = {.base = 0, .limit = 0xffffffffu, .selector = 8, .type = 11,
                             .present = 1, .s = 1, .l = 1, .g = 1};
    struct kvm_segment ds = cs;
    ds.selector = 16;
    ds.type = 3;
    ds.l = 0;
    ds.db = 1;
    s.cs = cs;
    s.ds = s.es = s.fs = s.gs = s.ss = ds;
    if (xioctl(vcpu, KVM_SET_SREGS, &s, "KVM_SET_SREGS") < 0)
        return -1;
    struct kvm_regs regs = {.rip = CODE_GPA, .rflags = 2, .rsp = MEM_SIZE};
    return xioctl(vcpu, KVM_SET_REGS, &regs, "KVM_SET_REGS");
}

static uint32_t io_value(const struct kvm_run *run)
{
    uint32_t v = 0;
    memcpy(&v, (const uint8_t *)run + run->io.data_offset, run->io.size);
    return v;
}

/* Run until HLT, checking every I/O exit against expected[]. */
static void run_guest(int vcpu, struct kvm_run *run)
{
    size_t n = 0;
    char what[160];
    for (int guard = 0; guard < 64; guard++) {
        if (xioctl(vcpu, KVM_RUN, NULL, "KVM_RUN") < 0)
            return;
        if (run->exit_reason == KVM_EXIT_HLT) {
            result(n == sizeof expected / sizeof expected[0], "guest reached HLT after all I/O exits");
            return;
        }
        if (run->exit_reason != KVM_EXIT_IO || n >= sizeof expected / sizeof expected[0]) {
            printf("FAIL unexpected exit reason %u after %zu I/O exits\n", run->exit_reason, n);
            failures++;
            return;
        }
        const struct expect_io *e = &expected[n++];
        int ok = run->io.direction == e->dir && run->io.port == e->port &&
                 run->io.size == e->size && run->io.count == 1;
        if (ok && e->dir == KVM_EXIT_IO_IN)
            memcpy((uint8_t *)run + run->io.data_offset, &e->value, e->size);
        else if (ok)
            ok = io_value(run) == e->value;
        snprintf(what, sizeof what, "exit %zu: %s port 0x%x size %u value 0x%x", n,
                 run->io.direction == KVM_EXIT_IO_OUT ? "out" : "in", run->io.port,
                 run->io.size, run->io.direction == KVM_EXIT_IO_OUT ? io_value(run) : e->value);
        result(ok, what);
        if (!ok)
            return;
    }
    result(0, "guest stopped within 64 exits");
}

int main(void)
{
    const char *lab = getenv("SANDLET_IN_LAB");
    printf("lab_smoke: %s\n", lab && *lab ? "running inside the KVM lab" : "running natively");
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    result(kvm >= 0, "open /dev/kvm");
    if (kvm < 0)
        goto out;
    int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
    result(api == KVM_API_VERSION, "KVM_GET_API_VERSION == 12");
    int vm = xioctl(kvm, KVM_CREATE_VM, 0, "KVM_CREATE_VM");
    if (vm < 0)
        goto out;
    uint8_t *mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        result(0, "mmap guest memory");
        goto out;
    }
    build_page_tables(mem);
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE, .userspace_addr = (uintptr_t)mem};
    if (xioctl(vm, KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION") < 0)
        goto out;
    int vcpu = xioctl(vm, KVM_CREATE_VCPU, 0, "KVM_CREATE_VCPU");
    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (vcpu < 0 || run_size < (int)sizeof(struct kvm_run)) {
        result(0, "vCPU created with a usable kvm_run size");
        goto out;
    }
    struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED) {
        result(0, "mmap kvm_run");
        goto out;
    }
    if (set_cpuid(kvm, vcpu) < 0 || enter_long_mode(vcpu) < 0)
        goto out;
    run_guest(vcpu, run);

    struct kvm_regs regs;
    if (xioctl(vcpu, KVM_GET_REGS, &regs, "KVM_GET_REGS") == 0)
        result(regs.rip == CODE_GPA + sizeof guest_code && (uint32_t)regs.rax == ~IN_VALUE,
               "final rip after hlt and rax == ~IN value");
    uint32_t stored;
    memcpy(&stored, mem + DATA_GPA, sizeof stored);
    result(stored == ~IN_VALUE, "guest store visible in host memory");
out:
    printf("lab_smoke: %s\n", failures ? "FAIL" : "PASS");
    return failures ? 1 : 0;
}
