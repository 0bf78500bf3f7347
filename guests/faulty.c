/* A guest that misbehaves on request (x86-64), to test how the host reports
 * each failure:
 *   WriteReadOnly()  write to .rodata            -> FAULT #PF (write, present)
 *   ExecNX()         jump into a heap page       -> FAULT #PF (instruction fetch)
 *   DivZero()        integer division by zero    -> FAULT #DE
 *   Spin()           infinite loop               -> host timeout / cancel
 *   Recurse()        unbounded recursion         -> FAULT #PF just below the stack
 *   ExhaustScratch() maps pages until scratch is gone -> ABORT SL_ABI_ENOMEM
 *   BadHostCall()    malformed HOSTCALL frame    -> whatever the host does (it must not crash)
 *   WritePageTable() writes to its own live page tables (scratch, kernel-only)
 *                                                -> FAULT #PF (user write, present)
 *   WriteIDT()       writes to the guest kernel's IDT   -> FAULT #PF (user write, present)
 *   Abort(i32, string)                           -> ABORT with that code and text
 *   Counter() -> i64                             -> works (to check the sandbox still does) */
/* abi.h before sandlet_guest.h: the guest header then skips its copies of the
 * wire constants. */
#include "abi.h"
#include "sl_layout.h"
#include <sandlet_guest.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>


static const uint64_t ro_value[2] = {42, 43}; /* .rodata (a const volatile would land in .data) */
static int64_t counter;
static volatile int32_t zero;

static int write_ro(const sl_gvalue *a, sl_gvalue *ret)
{
    (void)a;
    volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)&ro_value[1];
    __asm__ volatile("" : "+r"(p)); /* hide the object from the optimiser */
    *p = 44;
    ret->v.i32 = 0;
    return SL_ABI_OK;
}

/* The page tables start right after the call stack (sl_layout.h): user code
 * may not write them, nor anything else of the kernel's. */
static int write_page_table(const sl_gvalue *a, sl_gvalue *ret)
{
    (void)a;
    long top = syscall(SL_SYS_CALL_STACK); /* an upper-half address on x86-64: negative as a long */
    if (top == -1 || top == 0)
        return sl_fail(ret, SL_ABI_EABORT, "WritePageTable: no call stack");
    volatile uint64_t *pte = (volatile uint64_t *)(uintptr_t)(unsigned long)top;
    *pte = 0; /* the kernel must stop this */
    ret->v.i32 = 0;
    return SL_ABI_OK;
}

/* sidt tells user code where the IDT is (no UMIP here); writing it must fault. */
static int write_idt(const sl_gvalue *a, sl_gvalue *ret)
{
    (void)a;
    struct __attribute__((packed)) {
        uint16_t limit;
        uintptr_t base;
    } idtr;
    __asm__ volatile("sidt %0" : "=m"(idtr));
    volatile uint64_t *idt = (volatile uint64_t *)idtr.base;
    *idt = 0;
    ret->v.i32 = 0;
    return SL_ABI_OK;
}

static int exec_nx(const sl_gvalue *a, sl_gvalue *ret)
{
    (void)a;
    uint8_t *code = malloc(16);
    if (!code)
        return sl_fail(ret, SL_ABI_ENOMEM, "ExecNX: no heap");
    code[0] = 0xC3; /* ret */
    void (*fn)(void);
    memcpy(&fn, &code, sizeof fn);
    fn();
    ret->v.i32 = 0;
    return SL_ABI_OK;
}

static int div_zero(const sl_gvalue *a, sl_gvalue *ret)
{
    (void)a;
    ret->v.i32 = 100 / zero;
    return SL_ABI_OK;
}

static int spin(const sl_gvalue *a, sl_gvalue *ret)
{
    (void)a;
    (void)ret;
    for (;;)
        __asm__ volatile("pause");
    return SL_ABI_OK;
}

static volatile int32_t never = -1; /* the recursion's end the compiler cannot see through */

static __attribute__((noinline)) int32_t recurse(int32_t depth)
{
    volatile char frame[256];
    frame[0] = (char)depth;
    if (depth == never)
        return 0;
    return recurse(depth + 1) + frame[0];
}

static int recurse_fn(const sl_gvalue *a, sl_gvalue *ret)
{
    (void)a;
    ret->v.i32 = recurse(0);
    return SL_ABI_OK;
}

/* First dirties every heap page it can allocate (each write is a copy-on-write
 * fault taking a scratch page; the runtime aborts with SL_ABI_ENOMEM "out of
 * scratch memory" when none is left), then, if the heap was smaller than
 * scratch, maps fresh pages at root slot 2 (empty in the host's tables)
 * until the allocator runs dry. */
static int exhaust(const sl_gvalue *a, sl_gvalue *ret)
{
    (void)a;
    for (;;) {
        volatile uint8_t *p = malloc(1 << 20);
        if (!p)
            break;
        for (size_t off = 0; off < (1 << 20); off += 4096)
            p[off] = 1;
    }
    uint64_t base = 0x0000010000000000ull;
    for (uint64_t i = 0;; i++) {
        uint64_t va = base + i * 4096;
        if (sl_space_map_private(sl_space_current(), va) != 0)
            sl_abort(SL_ABI_ENOMEM, "out of scratch memory");
        *(volatile uint64_t *)(uintptr_t)va = i;
        if (i > (1ull << 30))
            break;
    }
    ret->v.i32 = 0;
    return SL_ABI_OK;
}

/* Writes a frame whose footer claims more bytes than the stack holds. */
static int bad_hostcall(const sl_gvalue *a, sl_gvalue *ret)
{
    (void)a;
    uint64_t io[4];
    if (syscall(SL_SYS_IO_BUFFERS, io) != 0)
        return sl_fail(ret, SL_ABI_EABORT, "BadHostCall: no I/O buffers");
    uint8_t *out = (uint8_t *)(uintptr_t)io[2];
    uint64_t cap = io[3];
    if (cap < 128)
        return sl_fail(ret, SL_ABI_EABORT, "BadHostCall: output buffer too small");
    memset(out, 0xA5, 64);
    uint64_t top = 48;
    memcpy(out, &top, 8);
    uint32_t bogus = 0x7fffffff;
    memcpy(out + 8 + top - 8, &bogus, 4);
    memset(out + 8 + top - 4, 0, 4);
    __asm__ volatile("outl %0, %1" ::"a"(0), "Nd"((uint16_t)SL_PORT_HOSTCALL) : "memory");
    /* If the host answered instead of stopping us, report what it said. */
    size_t icap = (size_t)io[1];
    uint8_t *in = (uint8_t *)(uintptr_t)io[0];
    sl_msg m;
    if (sl_abi_peek(in, icap, &m) == 0 && m.kind == SL_MSG_HOSTRESULT) {
        ret->v.i32 = m.status;
        sl_abi_pop(in, icap);
    } else {
        ret->v.i32 = -1;
    }
    return SL_ABI_OK;
}

static int do_abort(const sl_gvalue *a, sl_gvalue *ret)
{
    (void)ret;
    sl_abort(a[0].v.i32, a[1].v.s.ptr);
}

static int count(const sl_gvalue *a, sl_gvalue *ret)
{
    (void)a;
    ret->v.i64 = ++counter;
    return SL_ABI_OK;
}

void sandlet_main(void)
{
    static const uint8_t is[] = {SL_T_I32, SL_T_STRING};
    if (sl_register("WriteReadOnly", SL_T_I32, 0, NULL, write_ro) ||
        sl_register("ExecNX", SL_T_I32, 0, NULL, exec_nx) || sl_register("DivZero", SL_T_I32, 0, NULL, div_zero) ||
        sl_register("Spin", SL_T_I32, 0, NULL, spin) || sl_register("Recurse", SL_T_I32, 0, NULL, recurse_fn) ||
        sl_register("ExhaustScratch", SL_T_I32, 0, NULL, exhaust) ||
        sl_register("BadHostCall", SL_T_I32, 0, NULL, bad_hostcall) ||
        sl_register("WritePageTable", SL_T_I32, 0, NULL, write_page_table) ||
        sl_register("WriteIDT", SL_T_I32, 0, NULL, write_idt) ||
        sl_register("Abort", SL_T_VOID, 2, is, do_abort) || sl_register("Counter", SL_T_I64, 0, NULL, count))
        sl_abort(1, "faulty: registration failed");
}
