/* What the host does for the guest kernel: the system calls of the program
 * that the kernel cannot serve alone (standard input, clocks, exit) and, on
 * PVM, the page copies and user page faults that are cheaper here than in
 * an emulated kernel (docs/decisions.md, "PVM"). Each arrives as an `out` to
 * one of the kernel's ports, with its arguments in the port's value or the
 * bookkeeping page. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bookkeeping.h"
#include "hostfault.h"
#include "sandbox.h"
#include "snapfile.h"

/* SL_PORT_READ: the guest kernel wants up to `want` bytes of standard input;
 * they go on top of the input stack as a DATA message (code: 0, or the
 * reader's -errno). */
static int answer_read(sl_sandbox *sb, uint32_t want)
{
    const sl_layout *l = &sb->mem->layout;
    if (!sb->read_buf && !(sb->read_buf = malloc(l->input_size)))
        return sl_sb_poison(sb, sl_err(&sb->err, SL_ENOMEM, "out of memory"));
    size_t cap = want < l->input_size / 2 ? want : l->input_size / 2;
    long n = sb->read(sb->stdio_user, sb->read_buf, cap);
    if (n > (long)cap)
        n = -EIO;
    sl_msg d;
    sl_msg_init(&d, SL_MSG_DATA);
    d.code = n < 0 ? n : 0;
    d.text = sb->read_buf;
    d.text_len = n > 0 ? (uint32_t)n : 0;
    int rc = sl_abi_push(sl_sb_input(sb), l->input_size, &d);
    sl_sb_io_written(sb, false);
    if (rc)
        return sl_sb_poison(sb, sl_err(&sb->err, SL_EABI, "standard input does not fit the input buffer"));
    return RUN_MORE;
}

/* SL_PORT_CLOCK: Linux clock ids; the CPU-time clocks are the vCPU thread's. */
static void answer_clock(sl_sandbox *sb, uint32_t id)
{
    static const clockid_t ids[] = {CLOCK_REALTIME,         CLOCK_MONOTONIC,        CLOCK_THREAD_CPUTIME_ID,
                                    CLOCK_THREAD_CPUTIME_ID, CLOCK_MONOTONIC_RAW,   CLOCK_REALTIME_COARSE,
                                    CLOCK_MONOTONIC_COARSE, CLOCK_BOOTTIME};
    struct timespec ts = {0, 0};
    uint64_t nsec = ~0ull;
    if (id < sizeof ids / sizeof ids[0] && clock_gettime(ids[id], &ts) == 0)
        nsec = (uint64_t)ts.tv_nsec;
    sl_bk_set_clock(sb->mem, (uint64_t)ts.tv_sec, nsec);
}

/* Whether an `out` came from the guest kernel: its rip (at or just past the
 * instruction) lies in the kernel image, which user code cannot execute. The
 * I/O bitmap keeps user code from the kernel's ports on hardware KVM, but PVM
 * exits on every `out` at CPL3 whatever the bitmap says. Without a rip (no
 * KVM_CAP_SYNC_REGS) the bitmap is all there is. */
static bool from_kernel(const sl_sandbox *sb, const sl_exit *ex)
{
    const sl_layout *l = &sb->mem->layout;
    return ex->rip == 0 || (ex->rip >= l->kernel_gpa && ex->rip < l->kernel_gpa + l->kernel_size);
}

/* SL_PORT_PAGE: a page copy or zeroing the guest kernel hands us (on PVM,
 * SL_BK_HOST_PAGES). Both GPAs come from guest memory: checked like
 * everything else; sl_mem_write_ptr marks the written page dirty (the
 * hypervisor's dirty log sees only the guest's own writes). */
static int page_op(sl_sandbox *sb, uint32_t op)
{
    uint64_t dst, src;
    sl_bk_page_op(sb->mem, &dst, &src);
    uint8_t *d = (dst & (SL_PAGE_SIZE - 1)) ? NULL : sl_mem_write_ptr(sb->mem, dst, SL_PAGE_SIZE);
    if (!d)
        return sl_sb_poison(sb, sl_err(&sb->err, SL_EABI, "page operation on GPA 0x%llx, not a scratch page",
                                       (unsigned long long)dst));
    if (op == SL_PAGE_OP_COPY) {
        const uint8_t *s = (src & (SL_PAGE_SIZE - 1)) ? NULL : sl_mem_read_ptr(sb->mem, src, SL_PAGE_SIZE);
        if (!s)
            return sl_sb_poison(sb, sl_err(&sb->err, SL_EABI, "page copy from GPA 0x%llx, not guest memory",
                                           (unsigned long long)src));
        memmove(d, s, SL_PAGE_SIZE);
    } else if (op == SL_PAGE_OP_ZERO) {
        memset(d, 0, SL_PAGE_SIZE);
    } else {
        return sl_sb_poison(sb, sl_err(&sb->err, SL_EABI, "unknown page operation %u", (unsigned)op));
    }
    return RUN_MORE;
}

/* A page the host read for the guest may have come from a loaded file that
 * lost it since (read as zeros): the call cannot go on. */
static int after_page_read(sl_sandbox *sb)
{
    if (sl_snapfile_lost(sb->snap))
        return sl_sb_poison(sb, sl_err(&sb->err, SL_ECHANGED, "snapshot file changed"));
    return RUN_MORE;
}

int sl_sb_kernel_port(sl_sandbox *sb, const sl_exit *ex)
{
    if (ex->port == SL_PORT_READ) /* the I/O bitmap opens this one to user code too (abi.h) */
        return answer_read(sb, ex->value);
    if (!from_kernel(sb, ex))
        return sl_sb_poison(sb, sl_err(&sb->err, SL_EABI, "user code wrote to the kernel's I/O port 0x%x", ex->port));
    int rc;
    switch (ex->port) {
    case SL_PORT_CLOCK:
        answer_clock(sb, ex->value);
        return RUN_MORE;
    case SL_PORT_PAGE:
        return (rc = page_op(sb, ex->value)) != RUN_MORE ? rc : after_page_read(sb);
    case SL_PORT_PF:
        sl_hostfault_serve(sb->mem); /* copy-on-write copies read snapshot pages */
        return after_page_read(sb);
    default: /* SL_PORT_EXIT */
        sb->exit.signal = ex->value & 0x100 ? (int)(ex->value & 0x7f) : 0;
        sb->exit.exit_status = sb->exit.signal ? 128 + sb->exit.signal : (int)(ex->value & 0xff);
        return RUN_EXITED;
    }
}
