/* The kernel's messages to the host: fault reports, aborts, exit, the
 * program's standard streams and the clock.
 *
 * Output protocol: the output stack holds exactly the message belonging to
 * the port write that follows it (reset before every push). Input protocol:
 * the host pushes a DATA message on top of whatever is on the input stack,
 * and the kernel pops it after reading it (the user program may be in the
 * middle of a call whose CALL message sits below). */
#include "kernel.h"

static uint8_t *output(size_t *cap)
{
    *cap = (size_t)k_st.output_size;
    return k_st.output_size >= SL_ABI_STACK_HDR ? (uint8_t *)(uintptr_t)k_st.output_gva : NULL;
}

static int push_output(const sl_msg *m)
{
    size_t cap;
    uint8_t *out = output(&cap);
    return sl_abi_replace(out, cap, m);
}

void k_report_fault(uint64_t vector, uint64_t error, uint64_t addr, uint64_t ip)
{
    sl_msg m;
    sl_msg_init(&m, SL_MSG_FAULT);
    m.code = (int64_t)vector;
    m.fault[0] = error;
    m.fault[1] = addr;
    m.fault[2] = ip;
    push_output(&m);
    k_out(SL_PORT_FAULT, (uint32_t)vector);
}

K_NORETURN void k_abort(int32_t code, const char *msg)
{
    sl_msg m;
    sl_msg_init(&m, SL_MSG_ABORT);
    m.code = code;
    m.text = (const uint8_t *)msg;
    m.text_len = (uint32_t)k_strlen(msg);
    push_output(&m);
    k_out(SL_PORT_ABORT, (uint32_t)code);
    k_halt();
}

K_NORETURN void k_exit(uint32_t status)
{
    for (;;) /* the host never resumes an exited program; if it does, exit again */
        k_out(SL_PORT_EXIT, status);
}

/* The largest chunk of user bytes one WRITE message carries: the output
 * buffer less the frame header, footer and stack header (abi.md). */
static uint64_t write_chunk(void)
{
    uint64_t overhead = SL_ABI_STACK_HDR + SL_ABI_HDR_SIZE + 8 + 4 + SL_ABI_FOOTER_SIZE + 2 * SL_ABI_ALIGN;
    return k_st.output_size > overhead ? k_st.output_size - overhead : 0;
}

/* Bytes the program writes to fd 1 or 2 go to the host as they are written,
 * in chunks that fit the output buffer. The caller checked the range. */
long k_write_fd(int fd, uint64_t buf, uint64_t len)
{
    uint64_t chunk = write_chunk(), done = 0;
    if (!chunk)
        return -5; /* EIO */
    while (done < len) {
        uint64_t n = len - done < chunk ? len - done : chunk;
        sl_msg m;
        sl_msg_init(&m, SL_MSG_WRITE);
        m.code = fd;
        m.text = (const uint8_t *)(uintptr_t)(buf + done);
        m.text_len = (uint32_t)n;
        if (push_output(&m) != 0)
            return done ? (long)done : -5;
        k_out(SL_PORT_WRITE, (uint32_t)fd);
        done += n;
    }
    return (long)done;
}

/* Asks the host for up to len bytes of standard input (0 at end of file). */
long k_read_stdin(uint64_t buf, uint64_t len)
{
    uint8_t *in = (uint8_t *)(uintptr_t)k_st.input_gva;
    size_t cap = (size_t)k_st.input_size;
    if (cap < SL_ABI_STACK_HDR)
        return -5;
    /* The host answers with at most half the input buffer (the CALL of a
     * function-model call may sit below the DATA message). */
    uint64_t want = len < cap / 2 ? len : cap / 2;
    k_out(SL_PORT_READ, (uint32_t)want);
    sl_msg m;
    if (sl_abi_peek(in, cap, &m) != 0 || m.kind != SL_MSG_DATA)
        return -5; /* EIO: the host did not answer */
    long rc;
    if (m.code < 0) {
        rc = (long)m.code; /* the host's -errno */
    } else if (m.text_len > want) {
        rc = -5;
    } else {
        k_memcpy((void *)(uintptr_t)buf, m.text, m.text_len);
        rc = (long)m.text_len;
    }
    sl_abi_pop(in, cap);
    return rc;
}

int k_clock(uint32_t id, uint64_t *sec, uint64_t *nsec)
{
    k_out(SL_PORT_CLOCK, id);
    *sec = k_bk(SL_BK_CLOCK_SEC);
    *nsec = k_bk(SL_BK_CLOCK_NSEC);
    return *nsec < 1000000000ull ? 0 : -22; /* EINVAL: a clock the host does not know */
}
