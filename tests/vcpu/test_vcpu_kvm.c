/* KVM vCPU backend tests (need /dev/kvm; each test runs where its guest
 * architecture can, see RUN_ARCH in tests/unit/t.h). Guest code is assembly
 * in this file (GUEST_CODE, tests/common/vm.h); the page tables are built
 * here (4 KiB pages, identity map of the first 12 MiB) so that these tests
 * depend on nothing but vcpu.h.
 *
 * Guest-physical layout used by every test:
 *   slot 0  RW          0x000000..0x200000  tables, code at 0x10000, data at
 *                                           0x180000, stack below 0x200000
 *   slot 1  READONLY    0x400000..0x410000
 *   slot 2  DIRTY_LOG   0x600000..0x610000
 *   0x800000            no slot (accesses exit as MEMFAULT)
 * Page-table sets live at TABLES_A (0x1000) and TABLES_B (0x20000). Both
 * identity-map 0..12 MiB, except VA 0x700000, which maps to GPA 0x601000 in
 * set A and GPA 0x602000 in set B.
 *
 * Every snippet runs as an amd64 and as an i686 guest: one encoding serves
 * both (the rules are in tests/common/vm.h). The constants spelled into the
 * snippets (GUEST_STR) carry no integer suffix. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "vcpu.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "t.h"
#include "../common/vm.h"

#define MEM_SIZE 0x200000u
#define RO_GPA 0x400000
#define DIRTY_GPA 0x600000
#define SMALL_SIZE 0x10000u
#define UNMAPPED_GPA 0x800000
#define CODE 0x10000u
#define DATA 0x180000
#define TABLES_A 0x1000u
#define TABLES_B 0x20000u
#define ALIAS_VA 0x700000
#define PORT 0x10

/* Directory entries: present, writable, accessed; leaves also dirty (the
 * CPU then never writes the tables, which the TLB test rewrites). */
#define DIR_BITS (VM_PTE_P | VM_PTE_W | VM_PTE_A)
#define LEAF_BITS (DIR_BITS | VM_PTE_D)

struct env {
    sl_vcpu *v;
    unsigned arch;
    uint8_t *mem, *ro, *dirty;
    sl_errbuf e;
};

static void put_pte(struct env *x, uint64_t base, uint64_t va, uint64_t gpa)
{
    vm_map_page(x->mem, x->arch, base, va, gpa, LEAF_BITS);
}

/* The tables at base (layout in tests/common/vm.h): identity map of 12 MiB,
 * ALIAS_VA at alias_gpa. */
static void build_tables(struct env *x, uint64_t base, uint64_t alias_gpa)
{
    vm_identity_tables(x->mem, x->arch, base, 0xC00000, DIR_BITS, LEAF_BITS);
    put_pte(x, base, ALIAS_VA, alias_gpa);
}

static int env_open(struct env *x, unsigned arch)
{
    memset(x, 0, sizeof *x);
    x->arch = arch;
    x->mem = vm_map_anon(MEM_SIZE);
    x->ro = vm_map_anon(SMALL_SIZE);
    x->dirty = vm_map_anon(SMALL_SIZE);
    if (!x->mem || !x->ro || !x->dirty)
        return -1;
    build_tables(x, TABLES_A, DIRTY_GPA + 0x1000);
    build_tables(x, TABLES_B, DIRTY_GPA + 0x2000);
    int rc = sl_vcpu_open(&x->v, arch, &x->e);
    if (rc) {
        printf("  sl_vcpu_open: %s: %s\n", sl_strerror(rc), x->e.msg);
        return rc;
    }
    if ((rc = sl_vcpu_map(x->v, 0, 0, x->mem, MEM_SIZE, 0, &x->e)) ||
        (rc = sl_vcpu_map(x->v, 1, RO_GPA, x->ro, SMALL_SIZE, SL_VMEM_READONLY, &x->e)) ||
        (rc = sl_vcpu_map(x->v, 2, DIRTY_GPA, x->dirty, SMALL_SIZE, SL_VMEM_DIRTY_LOG, &x->e)) ||
        (rc = sl_vcpu_reset(x->v, TABLES_A, NULL, &x->e))) {
        printf("  setup: %s: %s\n", sl_strerror(rc), x->e.msg);
        return rc;
    }
    return 0;
}

static void env_close(struct env *x)
{
    sl_vcpu_free(x->v);
    if (x->mem)
        munmap(x->mem, MEM_SIZE);
    if (x->ro)
        munmap(x->ro, SMALL_SIZE);
    if (x->dirty)
        munmap(x->dirty, SMALL_SIZE);
}

/* Copies the snippet `name` to CODE. */
#define load_code(x, name) vm_load((x)->mem, CODE, name)

static int start_at(struct env *x, uint64_t rip, uint64_t rax)
{
    int rc = vm_set_entry(x->v, rip, MEM_SIZE - 16, rax, &x->e);
    if (rc)
        printf("  set_regs: %s\n", x->e.msg);
    return rc;
}

static int run(struct env *x, sl_exit *ex, uint64_t timeout_ns)
{
    int rc = sl_vcpu_run(x->v, ex, timeout_ns, &x->e);
    if (rc)
        printf("  run: %s: %s\n", sl_strerror(rc), x->e.msg);
    return rc;
}

/* Runs until the next exit and checks it is an `out` of value to PORT. */
static int expect_out(struct env *x, uint32_t value)
{
    sl_exit ex;
    if (run(x, &ex, 2000000000u))
        return 0;
    if (ex.reason != SL_EXIT_IO_OUT || ex.port != PORT || ex.value != value) {
        printf("  expected out 0x%x, got reason %d port 0x%x size %u value 0x%x (%s)\n", value,
               ex.reason, ex.port, ex.size, ex.value, ex.detail);
        return 0;
    }
    return 1;
}

static int expect_reason(struct env *x, int reason, sl_exit *ex)
{
    if (run(x, ex, 2000000000u))
        return 0;
    if (ex->reason != reason) {
        printf("  expected exit %d, got %d (%s) value 0x%x\n", reason, ex->reason, ex->detail,
               ex->value);
        return 0;
    }
    return 1;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- out / in / hlt ---- */

/* Each `out` and `in` is its own exit; the first `in` gets a value from the
 * host, the second none. */
GUEST_CODE(guest_io,
    "mov $" GUEST_STR(PORT) ", %edx\n\t"
    "mov $0x12345678, %eax\n\t"
    GUEST_LABEL(guest_io_first_out)
    "out %eax, (%dx)\n\t"
    GUEST_LABEL(guest_io_after_first_out)
    "out %al, (%dx)\n\t"
    "out %ax, (%dx)\n\t"
    "in (%dx), %eax\n\t"
    "out %eax, (%dx)\n\t"
    "in (%dx), %eax\n\t"         /* left unanswered */
    "out %eax, (%dx)\n\t"
    "hlt");
extern const uint8_t guest_io_first_out[], guest_io_after_first_out[];

static void io_and_hlt(unsigned arch)
{
    struct env x;
    REQUIRE(env_open(&x, arch) == 0);
    load_code(&x, guest_io);
    REQUIRE(start_at(&x, CODE, 0) == 0);
    sl_exit ex;
    REQUIRE(run(&x, &ex, 0) == 0);
    CHECK_EQ(ex.reason, SL_EXIT_IO_OUT);
    CHECK_EQ(ex.port, PORT);
    CHECK_EQ(ex.size, 4);
    CHECK_EQ(ex.value, 0x12345678);
    CHECK(ex.rip == CODE + GUEST_AT(guest_io, guest_io_first_out) ||
          ex.rip == CODE + GUEST_AT(guest_io, guest_io_after_first_out)); /* at or past the `out`, by kernel */
    CHECK_EQ(ex.detail[0], 0);
    REQUIRE(run(&x, &ex, 0) == 0);
    CHECK_EQ(ex.reason, SL_EXIT_IO_OUT);
    CHECK_EQ(ex.size, 1);
    CHECK_EQ(ex.value, 0x78);
    REQUIRE(run(&x, &ex, 0) == 0);
    CHECK_EQ(ex.reason, SL_EXIT_IO_OUT);
    CHECK_EQ(ex.size, 2);
    CHECK_EQ(ex.value, 0x5678);
    /* set_in_value is refused when no `in` waits */
    CHECK_EQ(sl_vcpu_set_in_value(x.v, 1, &x.e), SL_ESTATE);
    REQUIRE(run(&x, &ex, 0) == 0);
    CHECK_EQ(ex.reason, SL_EXIT_IO_IN);
    CHECK_EQ(ex.port, PORT);
    CHECK_EQ(ex.size, 4);
    CHECK_EQ(sl_vcpu_set_in_value(x.v, 0xCAFEBABE, &x.e), 0);
    CHECK(expect_out(&x, 0xCAFEBABE));
    REQUIRE(run(&x, &ex, 0) == 0);
    CHECK_EQ(ex.reason, SL_EXIT_IO_IN);
    CHECK(expect_out(&x, 0xFFFFFFFF));
    REQUIRE(run(&x, &ex, 0) == 0);
    CHECK_EQ(ex.reason, SL_EXIT_HLT);
    sl_regs r;
    REQUIRE(sl_vcpu_get_regs(x.v, &r, &x.e) == 0);
    CHECK_EQ(r.rip, CODE + GUEST_SIZE(guest_io));
    CHECK_EQ(r.rdx, PORT);
    env_close(&x);
}
static void test_io_hlt_amd64(void) { io_and_hlt(SL_ARCH_AMD64); }
static void test_io_hlt_i686(void) { io_and_hlt(SL_ARCH_I686); }

/* ---- memory faults ---- */

/* A read of the read-only slot, a write to it, then a read and a write where
 * no slot is. */
GUEST_CODE(guest_memfault,
    "mov $" GUEST_STR(PORT) ", %edx\n\t"
    "mov $" GUEST_STR(RO_GPA) " + 0x10, %ebx\n\t"
    "mov (%rbx), %eax\n\t"
    "out %eax, (%dx)\n\t"
    GUEST_LABEL(guest_memfault_ro_write)
    "mov %eax, (%rbx)\n\t"                      /* read-only */
    GUEST_LABEL(guest_memfault_after_ro_write)
    "mov $" GUEST_STR(UNMAPPED_GPA) ", %ebx\n\t"
    GUEST_LABEL(guest_memfault_unmapped_read)
    "mov (%rbx), %eax\n\t"                      /* unmapped */
    GUEST_LABEL(guest_memfault_after_unmapped_read)
    "out %eax, (%dx)\n\t"
    "mov $0x55, %eax\n\t"
    "mov %al, (%rbx)\n\t"                       /* unmapped */
    "hlt");
extern const uint8_t guest_memfault_ro_write[], guest_memfault_after_ro_write[];
extern const uint8_t guest_memfault_unmapped_read[], guest_memfault_after_unmapped_read[];

GUEST_CODE(guest_out_hlt,
    "mov $" GUEST_STR(PORT) ", %edx\n\t"
    "mov $7, %eax\n\t"
    "out %eax, (%dx)\n\t"
    "hlt");

/* set_regs right after an `out` exit must win over KVM's pending completion
 * of that `out` (which would otherwise move RIP past the old instruction). */
static void test_set_regs_after_out(void)
{
    struct env x;
    REQUIRE(env_open(&x, SL_ARCH_AMD64) == 0);
    load_code(&x, guest_io);
    REQUIRE(start_at(&x, CODE, 0) == 0);
    CHECK(expect_out(&x, 0x12345678));
    REQUIRE(start_at(&x, CODE, 0) == 0); /* start over */
    CHECK(expect_out(&x, 0x12345678));
    sl_regs r;
    REQUIRE(sl_vcpu_get_regs(x.v, &r, &x.e) == 0);
    CHECK_EQ(r.rip, CODE + GUEST_AT(guest_io, guest_io_after_first_out)); /* the `out` completed: RIP past it */

    /* the same after a memory fault, whose completion goes through KVM's
     * instruction emulator */
    load_code(&x, guest_memfault);
    vm_load(x.mem, CODE + 0x100, guest_out_hlt);
    REQUIRE(start_at(&x, CODE, 0) == 0);
    CHECK(expect_out(&x, 0));
    sl_exit ex;
    REQUIRE(expect_reason(&x, SL_EXIT_MEMFAULT, &ex));
    CHECK(ex.write);
    REQUIRE(start_at(&x, CODE + 0x100, 0) == 0);
    CHECK(expect_out(&x, 7));
    REQUIRE(expect_reason(&x, SL_EXIT_HLT, &ex));
    env_close(&x);
}

static void memfault(unsigned arch)
{
    struct env x;
    REQUIRE(env_open(&x, arch) == 0);
    uint32_t v0 = 0xABCD1234;
    memcpy(x.ro + 0x10, &v0, 4);
    load_code(&x, guest_memfault);
    REQUIRE(start_at(&x, CODE, 0) == 0);
    CHECK(expect_out(&x, 0xABCD1234)); /* reads of a read-only slot work */
    sl_exit ex;
    REQUIRE(expect_reason(&x, SL_EXIT_MEMFAULT, &ex));
    CHECK_EQ(ex.gpa, RO_GPA + 0x10);
    CHECK(ex.write);
    CHECK(ex.rip == CODE + GUEST_AT(guest_memfault, guest_memfault_ro_write) ||
          ex.rip == CODE + GUEST_AT(guest_memfault, guest_memfault_after_ro_write));
    CHECK(strstr(ex.detail, "memory access violation: write to read-only guest memory at GPA 0x400010") !=
          NULL);
    REQUIRE(expect_reason(&x, SL_EXIT_MEMFAULT, &ex));
    CHECK_EQ(ex.gpa, UNMAPPED_GPA);
    CHECK(!ex.write);
    CHECK(ex.rip == CODE + GUEST_AT(guest_memfault, guest_memfault_unmapped_read) ||
          ex.rip == CODE + GUEST_AT(guest_memfault, guest_memfault_after_unmapped_read));
    CHECK(strstr(ex.detail, "read of unmapped guest memory at GPA 0x800000") != NULL);
    CHECK(expect_out(&x, 0xFFFFFFFF)); /* the faulting read completed with all-ones */
    REQUIRE(expect_reason(&x, SL_EXIT_MEMFAULT, &ex));
    CHECK_EQ(ex.gpa, UNMAPPED_GPA);
    CHECK(ex.write);
    CHECK(strstr(ex.detail, "write to unmapped guest memory") != NULL);
    REQUIRE(expect_reason(&x, SL_EXIT_HLT, &ex));
    uint32_t v1;
    memcpy(&v1, x.ro + 0x10, 4);
    CHECK_EQ(v1, 0xABCD1234); /* the write never reached the host memory */
    env_close(&x);
}
static void test_memfault_amd64(void) { memfault(SL_ARCH_AMD64); }
static void test_memfault_i686(void) { memfault(SL_ARCH_I686); }

/* ---- timeout and cancel ---- */

GUEST_CODE(guest_spin, "1: jmp 1b");

static void timeout(unsigned arch)
{
    struct env x;
    REQUIRE(env_open(&x, arch) == 0);
    load_code(&x, guest_spin);
    REQUIRE(start_at(&x, CODE, 0) == 0);
    for (int i = 0; i < 2; i++) { /* twice: the timer is reused */
        sl_exit ex;
        uint64_t t0 = now_ns();
        REQUIRE(run(&x, &ex, 50000000u) == 0);
        uint64_t dt = now_ns() - t0;
        CHECK_EQ(ex.reason, SL_EXIT_TIMEOUT);
        CHECK(dt >= 50000000u);
        CHECK(dt < 1000000000u);
        CHECK(ex.rip == CODE);
    }
    /* a finished run leaves no timer behind: a later run without timeout
     * still completes normally */
    load_code(&x, guest_out_hlt);
    REQUIRE(start_at(&x, CODE, 0) == 0);
    CHECK(expect_out(&x, 7));
    usleep(20000);
    sl_exit ex;
    REQUIRE(run(&x, &ex, 0) == 0);
    CHECK_EQ(ex.reason, SL_EXIT_HLT);
    env_close(&x);
}
static void test_timeout_amd64(void) { timeout(SL_ARCH_AMD64); }
static void test_timeout_i686(void) { timeout(SL_ARCH_I686); }

struct canceller {
    sl_vcpu *v;
    unsigned delay_us;
};

static void *cancel_later(void *arg)
{
    struct canceller *c = arg;
    if (c->delay_us)
        usleep(c->delay_us);
    sl_vcpu_cancel(c->v);
    return NULL;
}

static void cancel_from_thread(unsigned arch)
{
    struct env x;
    REQUIRE(env_open(&x, arch) == 0);
    load_code(&x, guest_spin);
    REQUIRE(start_at(&x, CODE, 0) == 0);
    struct canceller c = {x.v, 50000};
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, cancel_later, &c) == 0);
    sl_exit ex;
    uint64_t t0 = now_ns();
    int rc = run(&x, &ex, 5000000000u); /* the timeout only guards the test */
    uint64_t dt = now_ns() - t0;
    pthread_join(th, NULL);
    REQUIRE(rc == 0);
    CHECK_EQ(ex.reason, SL_EXIT_CANCELLED);
    CHECK(dt >= 40000000u && dt < 1000000000u);
    /* the request was consumed: the next run times out instead */
    REQUIRE(run(&x, &ex, 20000000u) == 0);
    CHECK_EQ(ex.reason, SL_EXIT_TIMEOUT);
    env_close(&x);
}
static void test_cancel_thread_amd64(void) { cancel_from_thread(SL_ARCH_AMD64); }
static void test_cancel_thread_i686(void) { cancel_from_thread(SL_ARCH_I686); }

static void test_cancel_before_run(void)
{
    struct env x;
    REQUIRE(env_open(&x, SL_ARCH_AMD64) == 0);
    load_code(&x, guest_out_hlt);
    REQUIRE(start_at(&x, CODE, 0) == 0);
    sl_vcpu_cancel(x.v);
    sl_exit ex;
    REQUIRE(run(&x, &ex, 0) == 0);
    CHECK_EQ(ex.reason, SL_EXIT_CANCELLED);
    CHECK(expect_out(&x, 7)); /* guest untouched by the cancelled run */
    /* a cancel between two exits hits the next run */
    sl_vcpu_cancel(x.v);
    REQUIRE(run(&x, &ex, 0) == 0);
    CHECK_EQ(ex.reason, SL_EXIT_CANCELLED);
    /* clear_cancel drops a latched request */
    sl_vcpu_cancel(x.v);
    sl_vcpu_clear_cancel(x.v);
    REQUIRE(run(&x, &ex, 0) == 0);
    CHECK_EQ(ex.reason, SL_EXIT_HLT);
    env_close(&x);
}

/* Cancels at random moments around the start of a run: none may be lost
 * (a lost one shows up as a timeout). */
static void test_cancel_race(void)
{
    struct env x;
    REQUIRE(env_open(&x, SL_ARCH_AMD64) == 0);
    load_code(&x, guest_spin);
    REQUIRE(start_at(&x, CODE, 0) == 0);
    srand(12345);
    int lost = 0, other = 0;
    for (int i = 0; i < 300; i++) {
        struct canceller c = {x.v, (unsigned)(rand() % 300)};
        pthread_t th;
        REQUIRE(pthread_create(&th, NULL, cancel_later, &c) == 0);
        sl_exit ex;
        int rc = run(&x, &ex, 2000000000u);
        pthread_join(th, NULL);
        REQUIRE(rc == 0);
        if (ex.reason == SL_EXIT_TIMEOUT)
            lost++;
        else if (ex.reason != SL_EXIT_CANCELLED)
            other++;
        /* a cancel landing after the run ended stays latched; drop it */
        sl_vcpu_clear_cancel(x.v);
    }
    CHECK_EQ(lost, 0);
    CHECK_EQ(other, 0);
    env_close(&x);
}

/* ---- dirty log and remapping ---- */

/* Writes to pages 1, 3 and 7 of the dirty-logged slot; the second entry
 * reads page 2 (a read: not dirty) and writes page 15. */
GUEST_CODE(guest_dirty,
    "mov $" GUEST_STR(DIRTY_GPA) " + 0x1000, %ebx\n\t"
    "mov %eax, (%rbx)\n\t"
    "mov $" GUEST_STR(DIRTY_GPA) " + 0x3000, %ebx\n\t"
    "mov %eax, (%rbx)\n\t"
    "mov $" GUEST_STR(DIRTY_GPA) " + 0x7100, %ebx\n\t"
    "mov %eax, (%rbx)\n\t"
    "hlt\n\t"
    GUEST_LABEL(guest_dirty_second)
    "mov $" GUEST_STR(DIRTY_GPA) " + 0x2000, %ebx\n\t"
    "mov (%rbx), %ecx\n\t"
    "mov $" GUEST_STR(DIRTY_GPA) " + 0xf008, %ebx\n\t"
    "mov %eax, (%rbx)\n\t"
    "hlt");
extern const uint8_t guest_dirty_second[];

static void dirty(unsigned arch)
{
    struct env x;
    REQUIRE(env_open(&x, arch) == 0);
    load_code(&x, guest_dirty);
    CHECK_EQ(sl_vcpu_dirty_bitmap_bytes(SMALL_SIZE), 8);
    uint64_t bm[2] = {~0ull, ~0ull};
    REQUIRE(sl_vcpu_dirty_log(x.v, 2, bm, &x.e) == 0);
    CHECK_EQ(bm[0], 0);
    REQUIRE(start_at(&x, CODE, 0xD1D1D1D1) == 0);
    sl_exit ex;
    REQUIRE(expect_reason(&x, SL_EXIT_HLT, &ex));
    REQUIRE(sl_vcpu_dirty_log(x.v, 2, bm, &x.e) == 0);
    CHECK_EQ(bm[0], (1u << 1) | (1u << 3) | (1u << 7));
    uint32_t w;
    memcpy(&w, x.dirty + 0x7100, 4);
    CHECK_EQ(w, 0xD1D1D1D1);
    REQUIRE(sl_vcpu_dirty_log(x.v, 2, bm, &x.e) == 0);
    CHECK_EQ(bm[0], 0); /* reading the log cleared it */
    REQUIRE(start_at(&x, CODE + GUEST_AT(guest_dirty, guest_dirty_second), 0xE2E2E2E2) == 0);
    REQUIRE(expect_reason(&x, SL_EXIT_HLT, &ex));
    REQUIRE(sl_vcpu_dirty_log(x.v, 2, bm, &x.e) == 0);
    /* The write is always there; the page only read may be too where the
     * MMU maps it writable (seen once in the lab's nested KVM), but no
     * page the guest never touched. */
    CHECK_EQ(bm[0] & ~(uint64_t)(1u << 2), 1u << 15);
    /* slots without the flag have no log */
    CHECK_EQ(sl_vcpu_dirty_log(x.v, 0, bm, &x.e), SL_EINVAL);
    CHECK_EQ(sl_vcpu_dirty_log(x.v, 5, bm, &x.e), SL_EINVAL);
    env_close(&x);
}
static void test_dirty_log_amd64(void) { dirty(SL_ARCH_AMD64); }
static void test_dirty_log_i686(void) { dirty(SL_ARCH_I686); }

GUEST_CODE(guest_read_ro,
    "mov $" GUEST_STR(PORT) ", %edx\n\t"
    "mov $" GUEST_STR(RO_GPA) ", %ebx\n\t"
    "mov (%rbx), %eax\n\t"
    "out %eax, (%dx)\n\t"
    "hlt");

static void test_remap(void)
{
    struct env x;
    REQUIRE(env_open(&x, SL_ARCH_AMD64) == 0);
    load_code(&x, guest_read_ro);
    uint8_t *other = vm_map_anon(2 * SMALL_SIZE);
    REQUIRE(other != NULL);
    uint32_t a = 0xAAAA0001, b = 0xBBBB0002;
    memcpy(x.ro, &a, 4);
    memcpy(other, &b, 4);
    sl_exit ex;
    REQUIRE(start_at(&x, CODE, 0) == 0);
    CHECK(expect_out(&x, a));
    REQUIRE(expect_reason(&x, SL_EXIT_HLT, &ex));
    /* same slot, other host memory and size */
    REQUIRE(sl_vcpu_map(x.v, 1, RO_GPA, other, 2 * SMALL_SIZE, SL_VMEM_READONLY, &x.e) == 0);
    REQUIRE(start_at(&x, CODE, 0) == 0);
    CHECK(expect_out(&x, b));
    REQUIRE(expect_reason(&x, SL_EXIT_HLT, &ex));
    /* same parameters again: a no-op */
    CHECK_EQ(sl_vcpu_map(x.v, 1, RO_GPA, other, 2 * SMALL_SIZE, SL_VMEM_READONLY, &x.e), 0);
    /* size 0 deletes: the read now faults */
    REQUIRE(sl_vcpu_map(x.v, 1, 0, NULL, 0, 0, &x.e) == 0);
    REQUIRE(start_at(&x, CODE, 0) == 0);
    REQUIRE(expect_reason(&x, SL_EXIT_MEMFAULT, &ex));
    CHECK_EQ(ex.gpa, RO_GPA);
    CHECK(!ex.write);
    /* argument checks */
    CHECK_EQ(sl_vcpu_map(x.v, 3, 0x100000, x.ro, SMALL_SIZE, 0, &x.e), SL_EINVAL); /* overlaps slot 0 */
    CHECK(strstr(x.e.msg, "overlaps slot 0") != NULL);
    CHECK_EQ(sl_vcpu_map(x.v, 3, 0x900800, x.ro, SMALL_SIZE, 0, &x.e), SL_EINVAL); /* unaligned */
    CHECK_EQ(sl_vcpu_map(x.v, 3, 0x900000, x.ro, SMALL_SIZE, 8, &x.e), SL_EINVAL); /* flag */
    CHECK_EQ(sl_vcpu_map(x.v, SL_VCPU_MAX_SLOTS, 0x900000, x.ro, SMALL_SIZE, 0, &x.e), SL_ERANGE);
    CHECK_EQ(sl_vcpu_map(x.v, 3, ~0ull & ~0xfffull, x.ro, SMALL_SIZE, 0, &x.e), SL_ERANGE);
    env_close(&x);
    munmap(other, 2 * SMALL_SIZE);
}

/* ---- reset with saved sregs, CR3 and the TLB ---- */

/* The first entry loads the GDT register from DATA + 0x100, then (the show
 * part) reports CR3 and the word at ALIAS_VA; the second entry reports the
 * GDT limit, then the same. */
GUEST_CODE(guest_lgdt,
    "mov $" GUEST_STR(DATA) " + 0x100, %ebx\n\t"
    "lgdt (%rbx)\n"
    "1:\n\t"
    "mov %cr3, %rax\n\t"
    "mov $" GUEST_STR(PORT) ", %edx\n\t"
    "out %eax, (%dx)\n\t"
    "mov $" GUEST_STR(ALIAS_VA) ", %ebx\n\t"
    "mov (%rbx), %eax\n\t"
    "out %eax, (%dx)\n\t"
    "hlt\n\t"
    GUEST_LABEL(guest_lgdt_sgdt)
    "mov $" GUEST_STR(DATA) " + 0x300, %ebx\n\t"
    "sgdt (%rbx)\n\t"
    "movzwl (%rbx), %eax\n\t"
    "mov $" GUEST_STR(PORT) ", %edx\n\t"
    "out %eax, (%dx)\n\t"
    "jmp 1b");
extern const uint8_t guest_lgdt_sgdt[];

static void reset_saved(unsigned arch)
{
    struct env x;
    REQUIRE(env_open(&x, arch) == 0);
    load_code(&x, guest_lgdt);
    uint32_t a = 0xA0A0A0A0, b = 0xB0B0B0B0;
    memcpy(x.dirty + 0x1000, &a, 4);
    memcpy(x.dirty + 0x2000, &b, 4);
    uint8_t gdtr[10] = {0x17, 0x00, 0x00, 0x02, 0x18, 0x00};
    memcpy(x.mem + DATA + 0x100, gdtr, sizeof gdtr);
    sl_exit ex;
    REQUIRE(start_at(&x, CODE, 0) == 0);
    CHECK(expect_out(&x, TABLES_A));
    CHECK(expect_out(&x, a));
    REQUIRE(expect_reason(&x, SL_EXIT_HLT, &ex));

    sl_sregs_blob blob;
    REQUIRE(sl_vcpu_get_sregs(x.v, &blob, &x.e) == 0);
    CHECK_EQ(sl_sregs_blob_check(&blob, arch, &x.e), 0);
    /* saved sregs (GDT limit set by the guest) with the other page tables */
    REQUIRE(sl_vcpu_reset(x.v, TABLES_B, &blob, &x.e) == 0);
    REQUIRE(start_at(&x, CODE + GUEST_AT(guest_lgdt, guest_lgdt_sgdt), 0) == 0);
    CHECK(expect_out(&x, 0x17));
    CHECK(expect_out(&x, TABLES_B));
    CHECK(expect_out(&x, b));
    REQUIRE(expect_reason(&x, SL_EXIT_HLT, &ex));
    /* fresh state: empty GDT */
    REQUIRE(sl_vcpu_reset(x.v, TABLES_A, NULL, &x.e) == 0);
    REQUIRE(start_at(&x, CODE + GUEST_AT(guest_lgdt, guest_lgdt_sgdt), 0) == 0);
    CHECK(expect_out(&x, 0));
    CHECK(expect_out(&x, TABLES_A));
    CHECK(expect_out(&x, a));

    /* blobs are checked before use */
    unsigned other_arch = arch == SL_ARCH_AMD64 ? SL_ARCH_I686 : SL_ARCH_AMD64;
    CHECK_EQ(sl_sregs_blob_check(&blob, other_arch, &x.e), SL_EFAMILY);
    CHECK_EQ(sl_vcpu_reset(x.v, TABLES_A, &blob, &x.e), 0);
    sl_sregs_blob bad = blob;
    bad.bytes[0] ^= 1;
    CHECK_EQ(sl_vcpu_reset(x.v, TABLES_A, &bad, &x.e), SL_EFORMAT);
    bad = blob;
    bad.bytes[4] ^= 1; /* version: named in the message with ours */
    CHECK_EQ(sl_sregs_blob_check(&bad, arch, &x.e), SL_EVERSION);
    CHECK(strstr(x.e.msg, "version") != NULL);
    bad = blob;
    bad.bytes[8] ^= 1; /* payload length */
    CHECK_EQ(sl_sregs_blob_check(&bad, arch, &x.e), SL_EFORMAT);
    env_close(&x);
}
static void test_reset_saved_amd64(void) { reset_saved(SL_ARCH_AMD64); }
static void test_reset_saved_i686(void) { reset_saved(SL_ARCH_I686); }

GUEST_CODE(guest_alias,
    "mov $" GUEST_STR(PORT) ", %edx\n\t"
    "mov $" GUEST_STR(ALIAS_VA) ", %ebx\n\t"
    "mov (%rbx), %eax\n\t"
    "out %eax, (%dx)\n\t"
    "hlt");

/* The host rewrites a PTE in place (same CR3) between runs; reset must flush
 * the translation the guest cached. */
static void tlb(unsigned arch)
{
    struct env x;
    REQUIRE(env_open(&x, arch) == 0);
    load_code(&x, guest_alias);
    uint32_t a = 0xA1A1A1A1, b = 0xB2B2B2B2;
    memcpy(x.dirty + 0x1000, &a, 4);
    memcpy(x.dirty + 0x2000, &b, 4);
    sl_exit ex;
    for (int i = 0; i < 20; i++) {
        put_pte(&x, TABLES_A, ALIAS_VA, DIRTY_GPA + ((i & 1) ? 0x2000 : 0x1000));
        sl_sregs_blob blob;
        REQUIRE(sl_vcpu_get_sregs(x.v, &blob, &x.e) == 0);
        REQUIRE(sl_vcpu_reset(x.v, TABLES_A, i & 2 ? &blob : NULL, &x.e) == 0);
        REQUIRE(start_at(&x, CODE, 0) == 0);
        CHECK(expect_out(&x, (i & 1) ? b : a));
        REQUIRE(expect_reason(&x, SL_EXIT_HLT, &ex));
    }
    env_close(&x);
}
static void test_tlb_flush_amd64(void) { tlb(SL_ARCH_AMD64); }
static void test_tlb_flush_i686(void) { tlb(SL_ARCH_I686); }

/* ---- FPU / SSE reset ---- */

/* The first entry loads the x87 control word and MXCSR from DATA and DATA + 4;
 * the second (store) entry reports both as they are. */
GUEST_CODE(guest_fpu,
    "mov $" GUEST_STR(DATA) ", %ebx\n\t"
    "fldcw (%rbx)\n\t"
    "ldmxcsr 4(%rbx)\n\t"
    GUEST_LABEL(guest_fpu_store)
    "mov $" GUEST_STR(DATA) ", %ebx\n\t"
    "fnstcw 8(%rbx)\n\t"
    "stmxcsr 12(%rbx)\n\t"
    "movzwl 8(%rbx), %eax\n\t"
    "mov $" GUEST_STR(PORT) ", %edx\n\t"
    "out %eax, (%dx)\n\t"
    "mov 12(%rbx), %eax\n\t"
    "out %eax, (%dx)\n\t"
    "hlt");
extern const uint8_t guest_fpu_store[];

static void fpu(unsigned arch)
{
    struct env x;
    REQUIRE(env_open(&x, arch) == 0);
    load_code(&x, guest_fpu);
    uint16_t fcw = 0x027F;
    uint32_t mxcsr = 0x7F80;
    memcpy(x.mem + DATA, &fcw, 2);
    memcpy(x.mem + DATA + 4, &mxcsr, 4);
    sl_exit ex;
    REQUIRE(start_at(&x, CODE + GUEST_AT(guest_fpu, guest_fpu_store), 0) == 0);
    REQUIRE(run(&x, &ex, 2000000000u) == 0);
    CHECK_EQ(ex.reason, SL_EXIT_IO_OUT);
    CHECK_EQ(ex.value, 0x37F);
    CHECK(expect_out(&x, 0x1F80));
    REQUIRE(expect_reason(&x, SL_EXIT_HLT, &ex));
    REQUIRE(start_at(&x, CODE, 0) == 0);
    CHECK(expect_out(&x, 0x27F));
    CHECK(expect_out(&x, 0x7F80));
    REQUIRE(expect_reason(&x, SL_EXIT_HLT, &ex));
    /* A fresh reset loads the power-on FPU state; a reset from saved state
     * loads the FPU state saved with it (here the dirtied one). */
    sl_sregs_blob blob;
    REQUIRE(sl_vcpu_get_sregs(x.v, &blob, &x.e) == 0);
    for (int saved = 0; saved < 2; saved++) {
        REQUIRE(sl_vcpu_reset(x.v, TABLES_A, saved ? &blob : NULL, &x.e) == 0);
        /* scribble other values into memory: the state must come from the reset */
        fcw = 0x0C7F;
        mxcsr = 0x9FC0;
        memcpy(x.mem + DATA, &fcw, 2);
        memcpy(x.mem + DATA + 4, &mxcsr, 4);
        REQUIRE(start_at(&x, CODE + GUEST_AT(guest_fpu, guest_fpu_store), 0) == 0);
        CHECK(expect_out(&x, saved ? 0x27F : 0x37F));
        CHECK(expect_out(&x, saved ? 0x7F80 : 0x1F80));
        REQUIRE(expect_reason(&x, SL_EXIT_HLT, &ex));
        REQUIRE(start_at(&x, CODE, 0) == 0); /* dirty it again */
        CHECK(expect_out(&x, 0xC7F));
        CHECK(expect_out(&x, 0x9FC0));
        REQUIRE(expect_reason(&x, SL_EXIT_HLT, &ex));
    }
    env_close(&x);
}
static void test_fpu_reset_amd64(void) { fpu(SL_ARCH_AMD64); }
static void test_fpu_reset_i686(void) { fpu(SL_ARCH_I686); }

/* ---- CPUID and MSRs ---- */

/* Reports ECX of CPUID leaves 1 and 0x80000001. */
GUEST_CODE(guest_cpuid,
    "mov $1, %eax\n\t"
    "xor %ecx, %ecx\n\t"
    "cpuid\n\t"
    "mov %ecx, %eax\n\t"
    "mov $" GUEST_STR(PORT) ", %edx\n\t"
    "out %eax, (%dx)\n\t"
    "mov $0x80000001, %eax\n\t"
    "xor %ecx, %ecx\n\t"
    "cpuid\n\t"
    "mov %ecx, %eax\n\t"
    "mov $" GUEST_STR(PORT) ", %edx\n\t"
    "out %eax, (%dx)\n\t"
    "hlt");

/* Whether KVM itself offers a CPUID bit (so that hiding it is observable). */
static int kvm_offers(uint32_t fn, unsigned bit)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -1;
    unsigned n = 256;
    struct kvm_cpuid2 *c = calloc(1, sizeof *c + n * sizeof(struct kvm_cpuid_entry2));
    int found = -1;
    if (c) {
        c->nent = n;
        if (ioctl(fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
            for (unsigned i = 0; i < c->nent; i++)
                if (c->entries[i].function == fn)
                    found = (c->entries[i].ecx >> bit) & 1;
        free(c);
    }
    close(fd);
    return found;
}

static void cpuid(unsigned arch)
{
    struct env x;
    REQUIRE(env_open(&x, arch) == 0);
    load_code(&x, guest_cpuid);
    REQUIRE(start_at(&x, CODE, 0) == 0);
    sl_exit ex;
    REQUIRE(expect_reason(&x, SL_EXIT_IO_OUT, &ex));
    CHECK_EQ((ex.value >> 5) & 1, 0);  /* VMX hidden */
    CHECK_EQ((ex.value >> 31) & 1, kvm_offers(1, 31)); /* hypervisor bit as KVM has it */
    CHECK_EQ((ex.value >> 0) & 1, 1);  /* SSE3: the rest passes through */
    REQUIRE(expect_reason(&x, SL_EXIT_IO_OUT, &ex));
    CHECK_EQ((ex.value >> 2) & 1, 0); /* SVM hidden */
    REQUIRE(expect_reason(&x, SL_EXIT_HLT, &ex));
    if (arch == SL_ARCH_AMD64)
        printf("  (KVM itself offers VMX=%d SVM=%d)\n", kvm_offers(1, 5), kvm_offers(0x80000001u, 2));
    env_close(&x);
}
static void test_cpuid_amd64(void) { cpuid(SL_ARCH_AMD64); }
static void test_cpuid_i686(void) { cpuid(SL_ARCH_I686); }

GUEST_CODE(guest_rdmsr,
    "mov $" GUEST_STR(PORT) ", %edx\n\t"
    "mov $1, %eax\n\t"
    "out %eax, (%dx)\n\t"
    "mov $0x10, %ecx\n\t"    /* IA32_TIME_STAMP_COUNTER */
    "rdmsr\n\t"              /* #GP -> no IDT -> triple fault */
    "mov $" GUEST_STR(PORT) ", %edx\n\t"
    "out %eax, (%dx)\n\t"
    "hlt");

static void msr(unsigned arch)
{
    struct env x;
    REQUIRE(env_open(&x, arch) == 0);
    if (!sl_vcpu_msr_filter_active(x.v)) {
        printf("  kernel lacks KVM_CAP_X86_MSR_FILTER; nothing to test\n");
        env_close(&x);
        return;
    }
    load_code(&x, guest_rdmsr);
    REQUIRE(start_at(&x, CODE, 0) == 0);
    CHECK(expect_out(&x, 1));
    sl_exit ex;
    REQUIRE(run(&x, &ex, 2000000000u) == 0);
    CHECK_EQ(ex.reason, SL_EXIT_SHUTDOWN);
    /* the vCPU is usable again after a reset */
    REQUIRE(sl_vcpu_reset(x.v, TABLES_A, NULL, &x.e) == 0);
    load_code(&x, guest_out_hlt);
    REQUIRE(start_at(&x, CODE, 0) == 0);
    CHECK(expect_out(&x, 7));
    REQUIRE(expect_reason(&x, SL_EXIT_HLT, &ex));
    env_close(&x);
}
static void test_msr_denied_amd64(void) { msr(SL_ARCH_AMD64); }
static void test_msr_denied_i686(void) { msr(SL_ARCH_I686); }

static void test_open_errors(void)
{
    sl_vcpu *v = (sl_vcpu *)1;
    sl_errbuf e;
    CHECK_EQ(sl_vcpu_open(&v, 3, &e), SL_EINVAL);
    CHECK(v == NULL);
    CHECK_EQ(sl_vcpu_open(NULL, SL_ARCH_AMD64, &e), SL_EINVAL);
    sl_vcpu_free(NULL);
}

/* ---- cost of one `out` round trip ---- */

#define N_OUTS 20000

GUEST_CODE(guest_out_loop,
    "mov $" GUEST_STR(PORT) ", %edx\n\t"
    "mov $" GUEST_STR(N_OUTS) ", %ecx\n"
    "1:\n\t"
    "out %eax, (%dx)\n\t"
    "dec %ecx\n\t"
    "jnz 1b\n\t"
    "hlt");

static void test_bench_out(void)
{
    struct env x;
    REQUIRE(env_open(&x, SL_ARCH_AMD64) == 0);
    load_code(&x, guest_out_loop);
    for (int timed = 0; timed < 2; timed++) {
        REQUIRE(start_at(&x, CODE, 0) == 0);
        sl_exit ex;
        unsigned outs = 0;
        uint64_t t0 = now_ns();
        for (;;) {
            REQUIRE(sl_vcpu_run(x.v, &ex, timed ? 1000000000u : 0, &x.e) == 0);
            if (ex.reason != SL_EXIT_IO_OUT)
                break;
            outs++;
        }
        uint64_t dt = now_ns() - t0;
        CHECK_EQ(ex.reason, SL_EXIT_HLT);
        CHECK_EQ(outs, N_OUTS);
        printf("  out round trip%s: %.2f us\n", timed ? " (with timeout)" : "",
               (double)dt / 1000.0 / (outs + 1));
    }
    uint64_t t0 = now_ns();
    for (int i = 0; i < 1000; i++)
        REQUIRE(sl_vcpu_reset(x.v, TABLES_A, NULL, &x.e) == 0);
    printf("  sl_vcpu_reset: %.2f us\n", (double)(now_ns() - t0) / 1000.0 / 1000);
    env_close(&x);
}

/* What each test needs (RUN_ARCH, tests/unit/t.h): the FPU/SSE test runs x87
 * and SSE instructions at CPL0, which PVM (it emulates CPL0) cannot: it needs
 * hardware KVM, the KVM lab on PVM hosts. */
int main(void)
{
    RUN_ARCH(T_NONE, test_open_errors);
    RUN_ARCH(T_AMD64, test_io_hlt_amd64);
    RUN_ARCH(T_I686, test_io_hlt_i686);
    RUN_ARCH(T_AMD64, test_set_regs_after_out);
    RUN_ARCH(T_AMD64, test_memfault_amd64);
    RUN_ARCH(T_I686, test_memfault_i686);
    RUN_ARCH(T_AMD64, test_timeout_amd64);
    RUN_ARCH(T_I686, test_timeout_i686);
    RUN_ARCH(T_AMD64, test_cancel_thread_amd64);
    RUN_ARCH(T_I686, test_cancel_thread_i686);
    RUN_ARCH(T_AMD64, test_cancel_before_run);
    RUN_ARCH(T_AMD64, test_cancel_race);
    RUN_ARCH(T_AMD64, test_dirty_log_amd64);
    RUN_ARCH(T_I686, test_dirty_log_i686);
    RUN_ARCH(T_AMD64, test_remap);
    RUN_ARCH(T_AMD64, test_reset_saved_amd64);
    RUN_ARCH(T_I686, test_reset_saved_i686);
    RUN_ARCH(T_AMD64, test_tlb_flush_amd64);
    RUN_ARCH(T_I686, test_tlb_flush_i686);
    RUN_ARCH(T_AMD64 | T_KVM, test_fpu_reset_amd64);
    RUN_ARCH(T_I686 | T_KVM, test_fpu_reset_i686);
    RUN_ARCH(T_AMD64, test_cpuid_amd64);
    RUN_ARCH(T_I686, test_cpuid_i686);
    RUN_ARCH(T_AMD64, test_msr_denied_amd64);
    RUN_ARCH(T_I686, test_msr_denied_i686);
    RUN_ARCH(T_AMD64, test_bench_out);
    T_EXIT();
}
