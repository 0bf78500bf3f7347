/* How a guest's failures reach the caller: an exception the guest kernel
 * reports (SL_PORT_FAULT) named and explained, and the status of a RESULT
 * mapped to the library's SL_E* code. */
#include "sandbox.h"

static const char *vector_name(uint64_t v)
{
    static const char *names[] = {
        "divide error", "debug", "NMI", "breakpoint", "overflow", "bound range", "invalid opcode",
        "device not available", "double fault", "coprocessor overrun", "invalid TSS",
        "segment not present", "stack-segment fault", "general protection fault", "page fault",
        "reserved", "x87 floating-point error", "alignment check", "machine check", "SIMD floating-point",
    };
    return v < sizeof names / sizeof names[0] ? names[v] : "exception";
}

/* Supervisor-only memory: the PEB and the guest kernel's image, and scratch
 * from the page tables up (the program's part of scratch ends there). */
static bool kernel_memory(const sl_layout *l, uint64_t gva)
{
    uint64_t kstart = sl_layout_scratch_gva_of(l, l->pt_gpa), end = l->scratch_gva + l->scratch_size;
    return (gva >= l->peb_gpa && gva < l->peb_gpa + SL_PAGE_SIZE + l->kernel_size) || (gva >= kstart && gva < end);
}

/* What a page fault most likely was, from where it hit and its error code
 * (P 0x1, W 0x2, U 0x4, I 0x10): "" when nothing stands out. */
static const char *page_fault_hint(const sl_layout *l, uint64_t err, uint64_t addr)
{
    uint64_t stack_bottom = l->stack_top - l->stack_size;
    uint64_t guard = sl_layout_scratch_gva_of(l, l->callstack_gpa) - SL_PAGE_SIZE;
    /* The gap below the stack is never mapped: a large frame lands anywhere in it. */
    uint64_t gap = l->mmap_hi && l->mmap_hi < stack_bottom ? l->mmap_hi : stack_bottom - 16 * SL_PAGE_SIZE;
    if (addr < stack_bottom && addr >= gap)
        return " (below the stack: stack overflow)";
    if ((addr & SL_PAGE_MASK) == guard)
        return " (just below the call stack: stack overflow)";
    if ((err & 0x5) == 0x5 && kernel_memory(l, addr))
        return " (user code touched the guest kernel's memory)";
    if (err & 0x10)
        return " (instruction fetch from a non-executable page)";
    if ((err & 0x3) == 0x3)
        return " (write to a read-only page)";
    return "";
}

int sl_sb_fault_error(sl_sandbox *sb, const sl_msg *m)
{
    uint64_t addr = m->fault[1];
    const char *hint = m->code == 14 ? page_fault_hint(&sb->mem->layout, m->fault[0], addr) : "";
    return sl_sb_poison(sb, sl_err(&sb->err, SL_EFAULT,
                                   "guest exception: %s (vector %llu), error code 0x%llx, address 0x%llx, "
                                   "rip 0x%llx%s",
                                   vector_name((uint64_t)m->code), (unsigned long long)m->code,
                                   (unsigned long long)m->fault[0], (unsigned long long)addr,
                                   (unsigned long long)m->fault[2], hint));
}

int sl_sb_status_error(sl_sandbox *sb, const sl_msg *m)
{
    static const struct {
        int abi, code;
        const char *what;
    } map[] = {
        {SL_ABI_ENOTFOUND, SL_ENOTFOUND, "function not found"},
        {SL_ABI_ETYPE, SL_ETYPE, "type mismatch"},
        {SL_ABI_EABORT, SL_EABORT, "guest aborted"},
        {SL_ABI_EHOSTFN, SL_EHOSTFN, "host function failed"},
        {SL_ABI_ENOMEM, SL_ENOSCRATCH, "guest out of memory"},
        {SL_ABI_EMALFORMED, SL_EABI, "malformed message"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (m->status == map[i].abi)
            return sl_err(&sb->err, map[i].code, "%s: %.*s", map[i].what, (int)m->text_len, (const char *)m->text);
    return sl_err(&sb->err, SL_EABI, "guest returned unknown status %d: %.*s", (int)m->status, (int)m->text_len,
                  (const char *)m->text);
}
