/* KVM vCPU backend tests (need /dev/kvm; each test runs where its guest
 * architecture can, see RUN_ARCH in tests/unit/t.h). Guest code is hand-assembled; the
 * page tables are built here by hand (4 KiB pages, identity map of the first
 * 12 MiB) so that these tests depend on nothing but vcpu.h.
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
 * Most instruction encodings below mean the same in 32-bit and 64-bit mode
 * (mov r32, imm32 zero-extends in long mode, [ebx] becomes [rbx]), so one
 * byte string serves both architectures. */
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

#define MEM_SIZE 0x200000u
#define RO_GPA 0x400000u
#define DIRTY_GPA 0x600000u
#define SMALL_SIZE 0x10000u
#define UNMAPPED_GPA 0x800000u
#define CODE 0x10000u
#define DATA 0x180000u
#define TABLES_A 0x1000u
#define TABLES_B 0x20000u
#define ALIAS_VA 0x700000u
#define PORT 0x10u

struct env {
    sl_vcpu *v;
    unsigned arch;
    uint8_t *mem, *ro, *dirty;
    sl_errbuf e;
};

static uint8_t *map_anon(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void put_pte(struct env *x, uint64_t base, uint64_t va, uint64_t gpa)
{
    uint64_t leaf = gpa | 0x63; /* present, writable, accessed, dirty */
    size_t i = (size_t)(va >> 12);
    if (x->arch == SL_ARCH_AMD64)
        memcpy(x->mem + base + 0x3000 + i * 8, &leaf, 8);
    else {
        uint32_t l32 = (uint32_t)leaf;
        memcpy(x->mem + base + 0x3000 + i * 4, &l32, 4);
    }
}

/* Tables at base: amd64 PML4 base, PDPT +0x1000, PD +0x2000, 6 PTs +0x3000;
 * i686 PD at base and 3 PTs at +0x3000. */
static void build_tables(struct env *x, uint64_t base, uint64_t alias_gpa)
{
    memset(x->mem + base, 0, 0x9000);
    if (x->arch == SL_ARCH_AMD64) {
        uint64_t e0 = (base + 0x1000) | 0x23, e1 = (base + 0x2000) | 0x23;
        memcpy(x->mem + base, &e0, 8);
        memcpy(x->mem + base + 0x1000, &e1, 8);
        for (uint64_t i = 0; i < 6; i++) {
            uint64_t pde = (base + 0x3000 + i * 0x1000) | 0x23;
            memcpy(x->mem + base + 0x2000 + i * 8, &pde, 8);
        }
    } else {
        for (uint32_t i = 0; i < 3; i++) {
            uint32_t pde = (uint32_t)(base + 0x3000 + i * 0x1000) | 0x23;
            memcpy(x->mem + base + i * 4, &pde, 4);
        }
    }
    for (uint64_t va = 0; va < 0xC00000; va += 0x1000)
        put_pte(x, base, va, va);
    put_pte(x, base, ALIAS_VA, alias_gpa);
}

static int env_open(struct env *x, unsigned arch)
{
    memset(x, 0, sizeof *x);
    x->arch = arch;
    x->mem = map_anon(MEM_SIZE);
    x->ro = map_anon(SMALL_SIZE);
    x->dirty = map_anon(SMALL_SIZE);
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

static void load_code(struct env *x, const uint8_t *code, size_t n)
{
    memcpy(x->mem + CODE, code, n);
}

static int start_at(struct env *x, uint64_t rip, uint64_t rax)
{
    sl_regs r;
    memset(&r, 0, sizeof r);
    r.rip = rip;
    r.rsp = MEM_SIZE - 16;
    r.rflags = 2;
    r.rax = rax;
    int rc = sl_vcpu_set_regs(x->v, &r, &x->e);
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

static const uint8_t code_io[] = {
    0xBA, 0x10, 0x00, 0x00, 0x00, /* 0  mov edx, 0x10 */
    0xB8, 0x78, 0x56, 0x34, 0x12, /* 5  mov eax, 0x12345678 */
    0xEF,                         /* 10 out dx, eax */
    0xEE,                         /* 11 out dx, al */
    0x66, 0xEF,                   /* 12 out dx, ax */
    0xED,                         /* 14 in eax, dx */
    0xEF,                         /* 15 out dx, eax */
    0xED,                         /* 16 in eax, dx (left unanswered) */
    0xEF,                         /* 17 out dx, eax */
    0xF4,                         /* 18 hlt */
};

static void io_and_hlt(unsigned arch)
{
    struct env x;
    REQUIRE(env_open(&x, arch) == 0);
    load_code(&x, code_io, sizeof code_io);
    REQUIRE(start_at(&x, CODE, 0) == 0);
    sl_exit ex;
    REQUIRE(run(&x, &ex, 0) == 0);
    CHECK_EQ(ex.reason, SL_EXIT_IO_OUT);
    CHECK_EQ(ex.port, PORT);
    CHECK_EQ(ex.size, 4);
    CHECK_EQ(ex.value, 0x12345678);
    CHECK(ex.rip == CODE + 10 || ex.rip == CODE + 11); /* at or past the `out`, by kernel */
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
    CHECK_EQ(r.rip, CODE + sizeof code_io);
    CHECK_EQ(r.rdx, PORT);
    env_close(&x);
}
static void test_io_hlt_amd64(void) { io_and_hlt(SL_ARCH_AMD64); }
static void test_io_hlt_i686(void) { io_and_hlt(SL_ARCH_I686); }

/* ---- memory faults ---- */

static const uint8_t code_memfault[] = {
    0xBA, 0x10, 0x00, 0x00, 0x00, /* 0  mov edx, 0x10 */
    0xBB, 0x10, 0x00, 0x40, 0x00, /* 5  mov ebx, 0x400010 */
    0x8B, 0x03,                   /* 10 mov eax, [ebx] */
    0xEF,                         /* 12 out dx, eax */
    0x89, 0x03,                   /* 13 mov [ebx], eax -> read-only */
    0xBB, 0x00, 0x00, 0x80, 0x00, /* 15 mov ebx, 0x800000 */
    0x8B, 0x03,                   /* 20 mov eax, [ebx] -> unmapped */
    0xEF,                         /* 22 out dx, eax */
    0xB8, 0x55, 0x00, 0x00, 0x00, /* 23 mov eax, 0x55 */
    0x88, 0x03,                   /* 28 mov [ebx], al -> unmapped */
    0xF4,                         /* 30 hlt */
};

static const uint8_t code_out_hlt[] = {
    0xBA, 0x10, 0x00, 0x00, 0x00, /* mov edx, 0x10 */
    0xB8, 0x07, 0x00, 0x00, 0x00, /* mov eax, 7 */
    0xEF, 0xF4,                   /* out dx, eax; hlt */
};

/* set_regs right after an `out` exit must win over KVM's pending completion
 * of that `out` (which would otherwise move RIP past the old instruction). */
static void test_set_regs_after_out(void)
{
    struct env x;
    REQUIRE(env_open(&x, SL_ARCH_AMD64) == 0);
    load_code(&x, code_io, sizeof code_io);
    REQUIRE(start_at(&x, CODE, 0) == 0);
    CHECK(expect_out(&x, 0x12345678));
    REQUIRE(start_at(&x, CODE, 0) == 0); /* start over */
    CHECK(expect_out(&x, 0x12345678));
    sl_regs r;
    REQUIRE(sl_vcpu_get_regs(x.v, &r, &x.e) == 0);
    CHECK_EQ(r.rip, CODE + 11); /* the `out` completed: RIP past it */

    /* the same after a memory fault, whose completion goes through KVM's
     * instruction emulator */
    load_code(&x, code_memfault, sizeof code_memfault);
    memcpy(x.mem + CODE + 0x100, code_out_hlt, sizeof code_out_hlt);
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
    load_code(&x, code_memfault, sizeof code_memfault);
    REQUIRE(start_at(&x, CODE, 0) == 0);
    CHECK(expect_out(&x, 0xABCD1234)); /* reads of a read-only slot work */
    sl_exit ex;
    REQUIRE(expect_reason(&x, SL_EXIT_MEMFAULT, &ex));
    CHECK_EQ(ex.gpa, RO_GPA + 0x10);
    CHECK(ex.write);
    CHECK(ex.rip == CODE + 13 || ex.rip == CODE + 15);
    CHECK(strstr(ex.detail, "memory access violation: write to read-only guest memory at GPA 0x400010") !=
          NULL);
    REQUIRE(expect_reason(&x, SL_EXIT_MEMFAULT, &ex));
    CHECK_EQ(ex.gpa, UNMAPPED_GPA);
    CHECK(!ex.write);
    CHECK(ex.rip == CODE + 20 || ex.rip == CODE + 22);
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

static const uint8_t code_spin[] = {0xEB, 0xFE}; /* jmp $ */

static void timeout(unsigned arch)
{
    struct env x;
    REQUIRE(env_open(&x, arch) == 0);
    load_code(&x, code_spin, sizeof code_spin);
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
    load_code(&x, code_out_hlt, sizeof code_out_hlt);
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
    load_code(&x, code_spin, sizeof code_spin);
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
    load_code(&x, code_out_hlt, sizeof code_out_hlt);
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
    load_code(&x, code_spin, sizeof code_spin);
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

static const uint8_t code_dirty[] = {
    0xBB, 0x00, 0x10, 0x60, 0x00, /* 0  mov ebx, 0x601000 */
    0x89, 0x03,                   /* 5  mov [ebx], eax */
    0xBB, 0x00, 0x30, 0x60, 0x00, /* 7  mov ebx, 0x603000 */
    0x89, 0x03,                   /* 12 */
    0xBB, 0x00, 0x71, 0x60, 0x00, /* 14 mov ebx, 0x607100 */
    0x89, 0x03,                   /* 19 */
    0xF4,                         /* 21 hlt */
    0xBB, 0x00, 0x20, 0x60, 0x00, /* 22 mov ebx, 0x602000 */
    0x8B, 0x0B,                   /* 27 mov ecx, [ebx]  (a read: not dirty) */
    0xBB, 0x08, 0xF0, 0x60, 0x00, /* 29 mov ebx, 0x60f008 */
    0x89, 0x03,                   /* 34 mov [ebx], eax */
    0xF4,                         /* 36 hlt */
};

static void dirty(unsigned arch)
{
    struct env x;
    REQUIRE(env_open(&x, arch) == 0);
    load_code(&x, code_dirty, sizeof code_dirty);
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
    REQUIRE(start_at(&x, CODE + 22, 0xE2E2E2E2) == 0);
    REQUIRE(expect_reason(&x, SL_EXIT_HLT, &ex));
    REQUIRE(sl_vcpu_dirty_log(x.v, 2, bm, &x.e) == 0);
    CHECK_EQ(bm[0], 1u << 15);
    /* slots without the flag have no log */
    CHECK_EQ(sl_vcpu_dirty_log(x.v, 0, bm, &x.e), SL_EINVAL);
    CHECK_EQ(sl_vcpu_dirty_log(x.v, 5, bm, &x.e), SL_EINVAL);
    env_close(&x);
}
static void test_dirty_log_amd64(void) { dirty(SL_ARCH_AMD64); }
static void test_dirty_log_i686(void) { dirty(SL_ARCH_I686); }

static const uint8_t code_read_ro[] = {
    0xBA, 0x10, 0x00, 0x00, 0x00, /* mov edx, 0x10 */
    0xBB, 0x00, 0x00, 0x40, 0x00, /* mov ebx, 0x400000 */
    0x8B, 0x03, 0xEF, 0xF4,       /* mov eax, [ebx]; out dx, eax; hlt */
};

static void test_remap(void)
{
    struct env x;
    REQUIRE(env_open(&x, SL_ARCH_AMD64) == 0);
    load_code(&x, code_read_ro, sizeof code_read_ro);
    uint8_t *other = map_anon(2 * SMALL_SIZE);
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

static const uint8_t code_lgdt[] = {
    0xBB, 0x00, 0x01, 0x18, 0x00, /* 0  mov ebx, 0x180100 */
    0x0F, 0x01, 0x13,             /* 5  lgdt [ebx] */
    0x0F, 0x20, 0xD8,             /* 8  mov eax, cr3 */
    0xBA, 0x10, 0x00, 0x00, 0x00, /* 11 mov edx, 0x10 */
    0xEF,                         /* 16 out dx, eax */
    0xBB, 0x00, 0x00, 0x70, 0x00, /* 17 mov ebx, 0x700000 */
    0x8B, 0x03,                   /* 22 mov eax, [ebx] */
    0xEF,                         /* 24 out dx, eax */
    0xF4,                         /* 25 hlt */
    0xBB, 0x00, 0x03, 0x18, 0x00, /* 26 mov ebx, 0x180300 */
    0x0F, 0x01, 0x03,             /* 31 sgdt [ebx] */
    0x0F, 0xB7, 0x03,             /* 34 movzx eax, word [ebx] */
    0xBA, 0x10, 0x00, 0x00, 0x00, /* 37 mov edx, 0x10 */
    0xEF,                         /* 42 out dx, eax */
    0xEB, 0xDB,                   /* 43 jmp 8 */
};

static void reset_saved(unsigned arch)
{
    struct env x;
    REQUIRE(env_open(&x, arch) == 0);
    load_code(&x, code_lgdt, sizeof code_lgdt);
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
    REQUIRE(start_at(&x, CODE + 26, 0) == 0);
    CHECK(expect_out(&x, 0x17));
    CHECK(expect_out(&x, TABLES_B));
    CHECK(expect_out(&x, b));
    REQUIRE(expect_reason(&x, SL_EXIT_HLT, &ex));
    /* fresh state: empty GDT */
    REQUIRE(sl_vcpu_reset(x.v, TABLES_A, NULL, &x.e) == 0);
    REQUIRE(start_at(&x, CODE + 26, 0) == 0);
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

static const uint8_t code_alias[] = {
    0xBA, 0x10, 0x00, 0x00, 0x00, /* mov edx, 0x10 */
    0xBB, 0x00, 0x00, 0x70, 0x00, /* mov ebx, 0x700000 */
    0x8B, 0x03, 0xEF, 0xF4,       /* mov eax, [ebx]; out dx, eax; hlt */
};

/* The host rewrites a PTE in place (same CR3) between runs; reset must flush
 * the translation the guest cached. */
static void tlb(unsigned arch)
{
    struct env x;
    REQUIRE(env_open(&x, arch) == 0);
    load_code(&x, code_alias, sizeof code_alias);
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

static const uint8_t code_fpu[] = {
    0xBB, 0x00, 0x00, 0x18, 0x00, /* 0  mov ebx, 0x180000 */
    0xD9, 0x2B,                   /* 5  fldcw [ebx] */
    0x0F, 0xAE, 0x53, 0x04,       /* 7  ldmxcsr [ebx+4] */
    0xBB, 0x00, 0x00, 0x18, 0x00, /* 11 mov ebx, 0x180000  (entry: store only) */
    0xD9, 0x7B, 0x08,             /* 16 fnstcw [ebx+8] */
    0x0F, 0xAE, 0x5B, 0x0C,       /* 19 stmxcsr [ebx+12] */
    0x0F, 0xB7, 0x43, 0x08,       /* 23 movzx eax, word [ebx+8] */
    0xBA, 0x10, 0x00, 0x00, 0x00, /* 27 mov edx, 0x10 */
    0xEF,                         /* 32 out dx, eax */
    0x8B, 0x43, 0x0C,             /* 33 mov eax, [ebx+12] */
    0xEF,                         /* 36 out dx, eax */
    0xF4,                         /* 37 hlt */
};

static void fpu(unsigned arch)
{
    struct env x;
    REQUIRE(env_open(&x, arch) == 0);
    load_code(&x, code_fpu, sizeof code_fpu);
    uint16_t fcw = 0x027F;
    uint32_t mxcsr = 0x7F80;
    memcpy(x.mem + DATA, &fcw, 2);
    memcpy(x.mem + DATA + 4, &mxcsr, 4);
    sl_exit ex;
    REQUIRE(start_at(&x, CODE + 11, 0) == 0);
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
        REQUIRE(start_at(&x, CODE + 11, 0) == 0);
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

static const uint8_t code_cpuid[] = {
    0xB8, 0x01, 0x00, 0x00, 0x00, /* mov eax, 1 */
    0x31, 0xC9, 0x0F, 0xA2,       /* xor ecx, ecx; cpuid */
    0x89, 0xC8,                   /* mov eax, ecx */
    0xBA, 0x10, 0x00, 0x00, 0x00, /* mov edx, 0x10 */
    0xEF,                         /* out dx, eax */
    0xB8, 0x01, 0x00, 0x00, 0x80, /* mov eax, 0x80000001 */
    0x31, 0xC9, 0x0F, 0xA2,       /* xor ecx, ecx; cpuid */
    0x89, 0xC8,                   /* mov eax, ecx */
    0xBA, 0x10, 0x00, 0x00, 0x00, /* mov edx, 0x10 */
    0xEF, 0xF4,                   /* out dx, eax; hlt */
};

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
    load_code(&x, code_cpuid, sizeof code_cpuid);
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

static const uint8_t code_rdmsr[] = {
    0xBA, 0x10, 0x00, 0x00, 0x00, /* mov edx, 0x10 */
    0xB8, 0x01, 0x00, 0x00, 0x00, /* mov eax, 1 */
    0xEF,                         /* out dx, eax */
    0xB9, 0x10, 0x00, 0x00, 0x00, /* mov ecx, 0x10 (TSC) */
    0x0F, 0x32,                   /* rdmsr -> #GP -> no IDT -> triple fault */
    0xBA, 0x10, 0x00, 0x00, 0x00, /* mov edx, 0x10 */
    0xEF, 0xF4,                   /* out dx, eax; hlt */
};

static void msr(unsigned arch)
{
    struct env x;
    REQUIRE(env_open(&x, arch) == 0);
    if (!sl_vcpu_msr_filter_active(x.v)) {
        printf("  kernel lacks KVM_CAP_X86_MSR_FILTER; nothing to test\n");
        env_close(&x);
        return;
    }
    load_code(&x, code_rdmsr, sizeof code_rdmsr);
    REQUIRE(start_at(&x, CODE, 0) == 0);
    CHECK(expect_out(&x, 1));
    sl_exit ex;
    REQUIRE(run(&x, &ex, 2000000000u) == 0);
    CHECK_EQ(ex.reason, SL_EXIT_SHUTDOWN);
    /* the vCPU is usable again after a reset */
    REQUIRE(sl_vcpu_reset(x.v, TABLES_A, NULL, &x.e) == 0);
    load_code(&x, code_out_hlt, sizeof code_out_hlt);
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

static void test_bench_out(void)
{
    struct env x;
    REQUIRE(env_open(&x, SL_ARCH_AMD64) == 0);
    enum { N = 20000 };
    const uint8_t code[] = {
        0xBA, 0x10, 0x00, 0x00, 0x00,                           /* mov edx, 0x10 */
        0xB9, N & 0xff, (N >> 8) & 0xff, 0x00, 0x00,            /* mov ecx, N */
        0xEF, 0xFF, 0xC9, 0x75, 0xFB,                           /* L: out; dec ecx; jnz L */
        0xF4,                                                   /* hlt */
    };
    load_code(&x, code, sizeof code);
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
        CHECK_EQ(outs, N);
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
