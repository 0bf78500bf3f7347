/* Sandbox lifecycle: a guest's memory (sl_mem), its vCPU, the snapshot it
 * runs on, host functions, and the call loop that speaks the ABI. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "abi.h"
#include "hash.h"
#include "mem.h"
#include "regfile.h"
#include "snapfile.h"
#include "snapshot.h"
#include "hostfault.h"
#include "vcpu.h"

#define SLOT_SNAPSHOT 0u
#define SLOT_SCRATCH 1u

typedef struct func {
    char *name;
    int ret;
    int params[SL_ABI_MAX_VALUES];
    size_t n;
    sl_host_fn fn; /* host functions only */
    void *user;
} func;

struct sl_sandbox {
    sl_errbuf err;
    int status;
    unsigned arch;
    sl_vcpu *vcpu;
    sl_mem *mem;
    sl_snapshot *snap; /* the snapshot mapped now (a reference is held) */
    func *host;
    size_t n_host;
    func *guest;
    size_t n_guest;
    /* The identity of the snapshot whose guest `guest` describes: a restore to
     * another one (possibly another program of the same family) asks the
     * guest again (issue 9, fault 2). */
    uint8_t sig_hash[SL_HASH_LEN];
    bool sig_hash_set;
    uint64_t dispatch, stack_top, generation;
    uint64_t timeout_ms;
    sl_print_fn print;
    void *print_user;
    uint8_t *ret_buf; /* returned strings/bytes, valid until the next call */
    size_t ret_cap;
    uint64_t *dirty_tmp;
    bool in_call;
    /* standard streams and the program's arguments */
    sl_read_fn read;
    sl_write_fn write;
    void *stdio_user;
    uint8_t *read_buf;
    char *exec_text; /* EXEC message text: argv then environment, NUL-terminated */
    size_t exec_len, exec_argc;
    sl_run_result exit; /* SL_PORT_EXIT: how the program ended */
    /* getrandom: a key from the host's getrandom, a seed per restore */
    uint8_t rng_key[32];
    uint64_t rng_restores;
    sl_vcpu_stats stats_base; /* vCPU counters at the last restore */
};

/* run_guest's result when the program exited (SL_PORT_EXIT), not an error. */
#define RUN_EXITED 1

/* ------------------------------------------------------------ small helpers */

const char *sl_type_name(int t)
{
    static const char *names[] = {"void", "i32", "u32", "i64", "u64", "f32", "f64", "string", "bool", "bytes"};
    return t >= 0 && t <= SL_TYPE_BYTES ? names[t] : "?";
}

int sl_type_parse(const char *name)
{
    for (int t = 0; t <= SL_TYPE_BYTES; t++)
        if (!strcmp(name, sl_type_name(t)))
            return t;
    return -1;
}

static int poison(sl_sandbox *sb, int code)
{
    sb->status = SL_STATUS_POISONED;
    return code;
}

/* SL_ECHANGED from sl_snapfile_check for `snap`: when the sandbox runs on it,
 * it is poisoned, and the tables in its scratch may have come from the
 * changed file: the next restore copies them all. */
static int file_changed(sl_sandbox *sb, const sl_snapshot *snap, int rc)
{
    if (snap != sb->snap)
        return rc;
    sl_mem_forget_tables(sb->mem);
    return poison(sb, rc);
}

/* The message buffers at the start of scratch. Pointers are taken without
 * marking anything dirty; io_written() marks just the bytes a host write
 * reached, so an idle 64 KiB buffer costs no reset. */
static uint8_t *input_buf(sl_sandbox *sb)
{
    return sb->mem->scratch;
}

static uint8_t *output_buf(sl_sandbox *sb)
{
    return sb->mem->scratch + sb->mem->layout.input_size;
}

static void io_written(sl_sandbox *sb, bool output)
{
    const sl_layout *l = &sb->mem->layout;
    uint64_t base = l->scratch_gpa + (output ? l->input_size : 0), size = output ? l->output_size : l->input_size;
    uint64_t top = sl_get64(output ? output_buf(sb) : input_buf(sb));
    /* The stack header, and everything up to the top (bounded by the buffer). */
    sl_mem_mark_dirty(sb->mem, base, top < size - 8 ? top + 8 : size);
}

static void default_print(void *user, int level, const char *msg, size_t len)
{
    (void)user;
    if (level == SL_LOG_PRINT)
        fprintf(stderr, "[guest] %.*s\n", (int)len, msg);
    else
        fprintf(stderr, "[guest log %d] %.*s\n", level, (int)len, msg);
}

static void default_write(void *user, int fd, const void *buf, size_t len)
{
    (void)user;
    fflush(fd == 1 ? stdout : stderr);
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* the host's stream is gone: the guest's bytes go nowhere */
        p += n;
        len -= (size_t)n;
    }
}

static long default_read(void *user, void *buf, size_t cap)
{
    (void)user;
    (void)buf;
    (void)cap;
    return 0;
}

static void free_funcs(func *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(f[i].name);
    free(f);
}

static const func *find(const func *f, size_t n, const uint8_t *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(f[i].name) == len && !memcmp(f[i].name, name, len))
            return &f[i];
    return NULL;
}

static bool to_wire(const sl_value *v, sl_wire_value *w)
{
    w->type = (uint8_t)v->type;
    switch (v->type) {
    case SL_TYPE_I32: w->v.i32 = v->v.i32; break;
    case SL_TYPE_U32: w->v.u32 = v->v.u32; break;
    case SL_TYPE_I64: w->v.i64 = v->v.i64; break;
    case SL_TYPE_U64: w->v.u64 = v->v.u64; break;
    case SL_TYPE_F32: w->v.f32 = v->v.f32; break;
    case SL_TYPE_F64: w->v.f64 = v->v.f64; break;
    case SL_TYPE_BOOL: w->v.b = v->v.b != 0; break;
    case SL_TYPE_STRING:
    case SL_TYPE_BYTES:
        if (v->v.buf.len > UINT32_MAX || (v->v.buf.len && !v->v.buf.ptr))
            return false;
        w->v.buf.ptr = v->v.buf.ptr;
        w->v.buf.len = (uint32_t)v->v.buf.len;
        break;
    case SL_TYPE_VOID: break;
    default: return false;
    }
    return true;
}

/* Converts a wire value; strings and bytes are copied to `buf` (NUL added). */
static void from_wire(const sl_wire_value *w, sl_value *v, uint8_t *buf)
{
    memset(v, 0, sizeof *v);
    v->type = w->type;
    switch (w->type) {
    case SL_T_I32: v->v.i32 = w->v.i32; break;
    case SL_T_U32: v->v.u32 = w->v.u32; break;
    case SL_T_I64: v->v.i64 = w->v.i64; break;
    case SL_T_U64: v->v.u64 = w->v.u64; break;
    case SL_T_F32: v->v.f32 = w->v.f32; break;
    case SL_T_F64: v->v.f64 = w->v.f64; break;
    case SL_T_BOOL: v->v.b = w->v.b; break;
    case SL_T_STRING:
    case SL_T_BYTES:
        if (w->v.buf.len)
            memcpy(buf, w->v.buf.ptr, w->v.buf.len);
        buf[w->v.buf.len] = 0;
        v->v.buf.ptr = buf;
        v->v.buf.len = w->v.buf.len;
        break;
    default: break;
    }
}

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

/* ------------------------------------------------------------ the call loop */

/* The answer to SL_ABI_HOST_SIGNATURES_FN: the host functions' registry
 * (docs/abi.md, section 9) in r->values[0], in a heap buffer (*blob) that the
 * caller frees once r is pushed; or an error status in r and errmsg. */
static void host_signatures(const sl_sandbox *sb, const sl_msg *m, sl_msg *r, uint8_t **blob, char *errmsg,
                            size_t errlen)
{
    if (m->count != 0) {
        r->status = SL_ABI_ETYPE;
        snprintf(errmsg, errlen, "%s takes no arguments", SL_ABI_HOST_SIGNATURES_FN);
        return;
    }
    size_t cap = 4, len = 0;
    for (size_t i = 0; i < sb->n_host; i++)
        cap += 3 + strlen(sb->host[i].name) + sb->host[i].n;
    uint8_t *buf = malloc(cap);
    int rc = buf ? sl_abi_sig_init(buf, cap, &len) : SL_ABI_E_SPACE;
    for (size_t i = 0; rc == 0 && i < sb->n_host; i++) {
        const func *f = &sb->host[i];
        sl_abi_sig s;
        memset(&s, 0, sizeof s);
        s.name = (const uint8_t *)f->name;
        s.name_len = (uint32_t)strlen(f->name);
        s.ret = (uint8_t)f->ret;
        s.nparams = (uint8_t)f->n;
        for (size_t j = 0; j < f->n; j++)
            s.params[j] = (uint8_t)f->params[j];
        rc = sl_abi_sig_add(buf, cap, &len, &s);
    }
    if (rc != 0 || len > UINT32_MAX) {
        r->status = SL_ABI_EHOSTFN;
        snprintf(errmsg, errlen, "%s: %s", SL_ABI_HOST_SIGNATURES_FN,
                 buf ? "the registry cannot be encoded" : "out of host memory");
        free(buf);
        return;
    }
    r->count = 1;
    r->values[0].type = SL_T_BYTES;
    r->values[0].v.buf.ptr = buf;
    r->values[0].v.buf.len = (uint32_t)len;
    *blob = buf;
}

static int host_call(sl_sandbox *sb)
{
    sl_msg m, r;
    char errmsg[256] = "";
    int rc = sl_abi_peek(output_buf(sb), sb->mem->layout.output_size, &m);
    if (rc || m.kind != SL_MSG_HOSTCALL)
        return poison(sb, sl_err(&sb->err, SL_EABI, "malformed host-call message from the guest (%s)",
                                 rc ? "frame failed validation" : "not a HOSTCALL"));
    memset(&r, 0, sizeof r);
    r.kind = SL_MSG_HOSTRESULT;
    /* A reserved name: a host function registered under it is never called. */
    static const char sigfn[] = SL_ABI_HOST_SIGNATURES_FN;
    bool sigcall = m.name_len == sizeof sigfn - 1 && !memcmp(m.name, sigfn, sizeof sigfn - 1);
    uint8_t *blob = NULL;
    const func *f = sigcall ? NULL : find(sb->host, sb->n_host, m.name, m.name_len);
    sl_value args[SL_ABI_MAX_VALUES], ret;
    memset(&ret, 0, sizeof ret);
    if (sigcall) {
        host_signatures(sb, &m, &r, &blob, errmsg, sizeof errmsg);
    } else if (!f) {
        r.status = SL_ABI_EHOSTFN;
        snprintf(errmsg, sizeof errmsg, "no host function '%.*s'", (int)m.name_len, (const char *)m.name);
    } else {
        bool ok = m.count == f->n;
        for (uint32_t i = 0; ok && i < m.count; i++)
            ok = m.values[i].type == f->params[i];
        if (!ok) {
            r.status = SL_ABI_ETYPE;
            snprintf(errmsg, sizeof errmsg, "host function '%s': wrong argument count or types", f->name);
        } else {
            for (uint32_t i = 0; i < m.count; i++) {
                /* Strings are passed as (pointer, length) into the message. */
                memset(&args[i], 0, sizeof args[i]);
                args[i].type = m.values[i].type;
                if (m.values[i].type == SL_T_STRING || m.values[i].type == SL_T_BYTES) {
                    args[i].v.buf.ptr = m.values[i].v.buf.ptr;
                    args[i].v.buf.len = m.values[i].v.buf.len;
                } else {
                    sl_value tmp;
                    from_wire(&m.values[i], &tmp, NULL);
                    args[i] = tmp;
                }
            }
            ret.type = f->ret;
            if (f->fn(f->user, args, m.count, &ret, errmsg, sizeof errmsg)) {
                r.status = SL_ABI_EHOSTFN;
                if (!errmsg[0])
                    snprintf(errmsg, sizeof errmsg, "host function '%s' failed", f->name);
            } else if (ret.type != f->ret || !to_wire(&ret, &r.values[0])) {
                r.status = SL_ABI_EHOSTFN;
                snprintf(errmsg, sizeof errmsg, "host function '%s' returned %s, declared %s", f->name,
                         sl_type_name(ret.type), sl_type_name(f->ret));
            } else {
                r.count = 1;
            }
        }
    }
    if (r.status) {
        r.count = 0;
        r.text = (const uint8_t *)errmsg;
        r.text_len = (uint32_t)strlen(errmsg);
    }
    sl_abi_reset(output_buf(sb), sb->mem->layout.output_size);
    io_written(sb, true);
    /* The CALL stays below on the input stack: its arguments are still in use. */
    int pushed = sl_abi_push(input_buf(sb), sb->mem->layout.input_size, &r);
    io_written(sb, false);
    free(blob);
    if (pushed) {
        memset(&r, 0, sizeof r);
        r.kind = SL_MSG_HOSTRESULT;
        r.status = SL_ABI_EHOSTFN;
        r.text = (const uint8_t *)"host function result does not fit the input buffer";
        r.text_len = (uint32_t)strlen((const char *)r.text);
        pushed = sl_abi_push(input_buf(sb), sb->mem->layout.input_size, &r);
        io_written(sb, false);
        if (pushed)
            return poison(sb, sl_err(&sb->err, SL_EABI, "input buffer full during a host call"));
    }
    return 0;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Supervisor-only memory: the PEB and the guest kernel's image, and scratch
 * from the page tables up (the program's part of scratch ends there). */
static bool kernel_memory(const sl_layout *l, uint64_t gva)
{
    uint64_t kstart = sl_layout_scratch_gva_of(l, l->pt_gpa), end = l->scratch_gva + l->scratch_size;
    return (gva >= l->peb_gpa && gva < l->peb_gpa + SL_PAGE_SIZE + l->kernel_size) || (gva >= kstart && gva < end);
}

static int fault_error(sl_sandbox *sb, const sl_msg *m)
{
    const sl_layout *l = &sb->mem->layout;
    uint64_t addr = m->fault[1];
    const char *hint = "";
    uint64_t stack_bottom = l->stack_top - l->stack_size;
    uint64_t guard = sl_layout_scratch_gva_of(l, l->callstack_gpa) - SL_PAGE_SIZE;
    /* The gap below the stack is never mapped: a large frame lands anywhere in it. */
    uint64_t gap = l->mmap_hi && l->mmap_hi < stack_bottom ? l->mmap_hi : stack_bottom - 16 * SL_PAGE_SIZE;
    if (m->code == 14 && addr < stack_bottom && addr >= gap)
        hint = " (below the stack: stack overflow)";
    else if (m->code == 14 && (addr & SL_PAGE_MASK) == guard)
        hint = " (just below the call stack: stack overflow)";
    else if (m->code == 14 && (m->fault[0] & 0x5) == 0x5 && kernel_memory(l, addr))
        hint = " (user code touched the guest kernel's memory)";
    else if (m->code == 14 && (m->fault[0] & 0x10))
        hint = " (instruction fetch from a non-executable page)";
    else if (m->code == 14 && (m->fault[0] & 0x3) == 0x3)
        hint = " (write to a read-only page)";
    return poison(sb, sl_err(&sb->err, SL_EFAULT,
                             "guest exception: %s (vector %llu), error code 0x%llx, address 0x%llx, "
                             "rip 0x%llx%s",
                             vector_name((uint64_t)m->code), (unsigned long long)m->code,
                             (unsigned long long)m->fault[0], (unsigned long long)addr,
                             (unsigned long long)m->fault[2], hint));
}

/* SL_PORT_READ: the guest kernel wants up to `want` bytes of standard input;
 * they go on top of the input stack as a DATA message (code: 0, or the
 * reader's -errno). */
static int answer_read(sl_sandbox *sb, uint32_t want)
{
    const sl_layout *l = &sb->mem->layout;
    if (!sb->read_buf && !(sb->read_buf = malloc(l->input_size)))
        return poison(sb, sl_err(&sb->err, SL_ENOMEM, "out of memory"));
    size_t cap = want < l->input_size / 2 ? want : l->input_size / 2;
    long n = sb->read(sb->stdio_user, sb->read_buf, cap);
    if (n > (long)cap)
        n = -EIO;
    sl_msg d;
    sl_msg_init(&d, SL_MSG_DATA);
    d.code = n < 0 ? n : 0;
    d.text = sb->read_buf;
    d.text_len = n > 0 ? (uint32_t)n : 0;
    int rc = sl_abi_push(input_buf(sb), l->input_size, &d);
    io_written(sb, false);
    if (rc)
        return poison(sb, sl_err(&sb->err, SL_EABI, "standard input does not fit the input buffer"));
    return 0;
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
    sl_mem_bk_set(sb->mem, SL_BK_CLOCK_SEC, (uint64_t)ts.tv_sec);
    sl_mem_bk_set(sb->mem, SL_BK_CLOCK_NSEC, nsec);
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
static int page_op(sl_sandbox *sb, const sl_exit *ex)
{
    if (!from_kernel(sb, ex))
        return poison(sb, sl_err(&sb->err, SL_EABI, "user code wrote to the kernel's I/O port 0x%x", ex->port));
    uint64_t dst = sl_mem_bk_get(sb->mem, SL_BK_PAGE_DST), src = sl_mem_bk_get(sb->mem, SL_BK_PAGE_SRC);
    uint8_t *d = (dst & (SL_PAGE_SIZE - 1)) ? NULL : sl_mem_write_ptr(sb->mem, dst, SL_PAGE_SIZE);
    if (!d)
        return poison(sb, sl_err(&sb->err, SL_EABI, "page operation on GPA 0x%llx, not a scratch page",
                                 (unsigned long long)dst));
    if (ex->value == SL_PAGE_OP_COPY) {
        const uint8_t *s = (src & (SL_PAGE_SIZE - 1)) ? NULL : sl_mem_read_ptr(sb->mem, src, SL_PAGE_SIZE);
        if (!s)
            return poison(sb, sl_err(&sb->err, SL_EABI, "page copy from GPA 0x%llx, not guest memory",
                                     (unsigned long long)src));
        memmove(d, s, SL_PAGE_SIZE);
    } else if (ex->value == SL_PAGE_OP_ZERO) {
        memset(d, 0, SL_PAGE_SIZE);
    } else {
        return poison(sb, sl_err(&sb->err, SL_EABI, "unknown page operation %u", (unsigned)ex->value));
    }
    return 0;
}

/* Runs the guest until it finishes (SL_PORT_DONE), handling host calls,
 * prints and the program's system calls that reach the host; fills *res with
 * the RESULT message. RUN_EXITED when the program exited instead. Any
 * failure poisons. */
static int run_guest(sl_sandbox *sb, sl_msg *res, bool init)
{
    uint64_t deadline = sb->timeout_ms ? now_ns() + sb->timeout_ms * 1000000ull : 0;
    const sl_layout *l = &sb->mem->layout;
    for (;;) {
        sl_exit ex;
        uint64_t left = 0;
        if (deadline) {
            uint64_t t = now_ns();
            left = t >= deadline ? 1 : deadline - t;
        }
        int rc = sl_vcpu_run(sb->vcpu, &ex, left, &sb->err);
        if (rc)
            return poison(sb, rc);
        sl_msg m;
        switch (ex.reason) {
        case SL_EXIT_IO_OUT:
            switch (ex.port) {
            case SL_PORT_DONE:
                rc = sl_abi_peek(output_buf(sb), l->output_size, res);
                if (init && rc == SL_ABI_E_EMPTY) { /* init may end without a RESULT */
                    memset(res, 0, sizeof *res);
                    res->kind = SL_MSG_RESULT;
                    return 0;
                }
                if (rc || res->kind != SL_MSG_RESULT)
                    return poison(sb, sl_err(&sb->err, SL_EABI,
                                             "malformed result message from the guest (decode %d, kind %u)", rc,
                                             rc ? 0u : (unsigned)res->kind));
                return 0;
            case SL_PORT_HOSTCALL:
                if ((rc = host_call(sb)))
                    return rc;
                continue;
            case SL_PORT_PRINT:
            case SL_PORT_LOG:
                rc = sl_abi_peek(output_buf(sb), l->output_size, &m);
                if (rc || (m.kind != SL_MSG_PRINT && m.kind != SL_MSG_LOG))
                    return poison(sb, sl_err(&sb->err, SL_EABI, "malformed print message from the guest"));
                sb->print(sb->print_user, m.kind == SL_MSG_PRINT ? SL_LOG_PRINT : (int)m.code,
                          (const char *)m.text, m.text_len);
                continue;
            case SL_PORT_ABORT:
                rc = sl_abi_peek(output_buf(sb), l->output_size, &m);
                if (rc || m.kind != SL_MSG_ABORT)
                    return poison(sb, sl_err(&sb->err, SL_EABORT, "guest aborted with code %d", (int)ex.value));
                if (m.code == SL_ABI_ENOMEM)
                    return poison(sb, sl_err(&sb->err, SL_ENOSCRATCH, "guest out of memory: %.*s",
                                             (int)m.text_len, (const char *)m.text));
                return poison(sb, sl_err(&sb->err, SL_EABORT, "guest aborted with code %lld: %.*s",
                                         (long long)m.code, (int)m.text_len, (const char *)m.text));
            case SL_PORT_FAULT:
                rc = sl_abi_peek(output_buf(sb), l->output_size, &m);
                if (rc || m.kind != SL_MSG_FAULT)
                    return poison(sb, sl_err(&sb->err, SL_EFAULT, "guest exception (report malformed)"));
                return fault_error(sb, &m);
            case SL_PORT_WRITE:
                rc = sl_abi_peek(output_buf(sb), l->output_size, &m);
                if (rc || m.kind != SL_MSG_WRITE || (m.code != 1 && m.code != 2))
                    return poison(sb, sl_err(&sb->err, SL_EABI, "malformed write message from the guest"));
                sb->write(sb->stdio_user, (int)m.code, m.text, m.text_len);
                continue;
            case SL_PORT_READ:
                if ((rc = answer_read(sb, ex.value)))
                    return rc;
                continue;
            case SL_PORT_CLOCK:
                if (!from_kernel(sb, &ex))
                    return poison(sb, sl_err(&sb->err, SL_EABI, "user code wrote to the kernel's I/O port 0x%x",
                                             ex.port));
                answer_clock(sb, ex.value);
                continue;
            case SL_PORT_PAGE:
                if ((rc = page_op(sb, &ex)))
                    return rc;
                if (sl_snapfile_lost(sb->snap)) /* the copy read a page its file lost */
                    return poison(sb, sl_err(&sb->err, SL_ECHANGED, "snapshot file changed"));
                continue;
            case SL_PORT_PF:
                if (!from_kernel(sb, &ex))
                    return poison(sb, sl_err(&sb->err, SL_EABI, "user code wrote to the kernel's I/O port 0x%x",
                                             ex.port));
                sl_hostfault_serve(sb->mem);
                if (sl_snapfile_lost(sb->snap)) /* a copy-on-write read a page its file lost */
                    return poison(sb, sl_err(&sb->err, SL_ECHANGED, "snapshot file changed"));
                continue;
            case SL_PORT_EXIT:
                if (!from_kernel(sb, &ex))
                    return poison(sb, sl_err(&sb->err, SL_EABI, "user code wrote to the kernel's I/O port 0x%x",
                                             ex.port));
                sb->exit.signal = ex.value & 0x100 ? (int)(ex.value & 0x7f) : 0;
                sb->exit.exit_status = sb->exit.signal ? 128 + sb->exit.signal : (int)(ex.value & 0xff);
                return RUN_EXITED;
            default:
                return poison(sb, sl_err(&sb->err, SL_EABI, "guest wrote to unknown I/O port 0x%x", ex.port));
            }
        case SL_EXIT_IO_IN:
            return poison(sb, sl_err(&sb->err, SL_EABI, "guest read from I/O port 0x%x", ex.port));
        case SL_EXIT_HLT:
            return poison(sb, sl_err(&sb->err, SL_EFAULT, "guest halted at rip 0x%llx", (unsigned long long)ex.rip));
        case SL_EXIT_MEMFAULT:
            return poison(sb, sl_err(&sb->err, SL_EMEMACCESS, "%s", ex.detail));
        case SL_EXIT_SHUTDOWN:
            return poison(sb, sl_err(&sb->err, SL_EFAULT, "guest triple fault (shutdown)"));
        case SL_EXIT_CANCELLED:
            return poison(sb, sl_err(&sb->err, SL_ECANCELLED, "call killed"));
        case SL_EXIT_TIMEOUT:
            return poison(sb, sl_err(&sb->err, SL_ETIMEOUT, "%s exceeded its %llu ms timeout",
                                     init ? "the guest's init or run" : "call", (unsigned long long)sb->timeout_ms));
        default:
            return poison(sb, sl_err(&sb->err, SL_EHYPERVISOR, "hypervisor: %s", ex.detail));
        }
    }
}

/* run_guest between two checks of the snapshot's file (when it has one):
 * the guest never runs on a file that changed, and a call during which it
 * changed fails whatever the guest made of it (what a guest reads of a
 * truncated page is an EFAULT of KVM_RUN, or zeros after a host read met
 * it; a rewrite shows through). */
static int run_checked(sl_sandbox *sb, sl_msg *res, bool init)
{
    int rc = sl_snapfile_check(sb->snap, init ? "before init or a run" : "before a call", &sb->err);
    if (rc)
        return file_changed(sb, sb->snap, rc);
    sb->in_call = true;
    rc = run_guest(sb, res, init);
    sb->in_call = false;
    if (!sb->snap->file)
        return rc;
    /* What went wrong, if anything, is part of the story. */
    char during[SL_ERRMSG_MAX];
    if (rc && rc != RUN_EXITED)
        snprintf(during, sizeof during, "during %s, which failed: %s", init ? "init or a run" : "a call",
                 sb->err.msg);
    int changed = sl_snapfile_check(sb->snap, rc && rc != RUN_EXITED ? during
                                              : init ? "during init or a run" : "during a call",
                                    &sb->err);
    return changed ? file_changed(sb, sb->snap, changed) : rc;
}

static int enter(sl_sandbox *sb, uint64_t rip, uint64_t rsp, uint64_t kind)
{
    sl_regs r;
    memset(&r, 0, sizeof r);
    r.rip = rip;
    r.rsp = rsp;
    r.rdi = sl_layout_scratch_gva_of(&sb->mem->layout, sb->mem->layout.bk_gpa);
    r.rsi = kind;
    r.rflags = 2;
    int rc = sl_vcpu_set_regs(sb->vcpu, &r, &sb->err);
    return rc ? poison(sb, rc) : 0;
}

static int status_error(sl_sandbox *sb, const sl_msg *m)
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

/* One guest call without the signature check (used for sl.signatures too). */
static int raw_call(sl_sandbox *sb, const char *name, const sl_value *args, size_t nargs, sl_msg *res)
{
    const sl_layout *l = &sb->mem->layout;
    sl_msg m;
    memset(&m, 0, sizeof m);
    m.kind = SL_MSG_CALL;
    m.name = (const uint8_t *)name;
    m.name_len = (uint32_t)strlen(name);
    m.count = (uint32_t)nargs;
    if (nargs > SL_ABI_MAX_VALUES || m.name_len > SL_ABI_MAX_NAME)
        return sl_err(&sb->err, SL_EINVAL, "too many arguments or name too long");
    for (size_t i = 0; i < nargs; i++)
        if (!to_wire(&args[i], &m.values[i]))
            return sl_err(&sb->err, SL_EINVAL, "argument %zu has an invalid value", i + 1);
    sl_abi_reset(input_buf(sb), l->input_size);
    sl_abi_reset(output_buf(sb), l->output_size);
    int pushed = sl_abi_push(input_buf(sb), l->input_size, &m);
    io_written(sb, false);
    io_written(sb, true);
    if (pushed)
        return sl_err(&sb->err, SL_ERANGE, "arguments do not fit the %llu-byte input buffer",
                      (unsigned long long)l->input_size);
    int rc = enter(sb, sb->dispatch, sb->stack_top, SL_ENTRY_CALL);
    if (rc)
        return rc;
    rc = run_checked(sb, res, false);
    if (rc == RUN_EXITED)
        return poison(sb, sl_err(&sb->err, SL_EABORT, "guest exited during the call with status %d",
                                 sb->exit.exit_status));
    return rc;
}

/* The function table now describes the guest of the snapshot `hash`. */
static void table_is_for(sl_sandbox *sb, const uint8_t hash[SL_HASH_LEN])
{
    memcpy(sb->sig_hash, hash, SL_HASH_LEN);
    sb->sig_hash_set = true;
}

static int load_signatures(sl_sandbox *sb)
{
    sl_msg res;
    int rc = raw_call(sb, SL_ABI_SIGNATURES_FN, NULL, 0, &res);
    if (rc)
        return rc;
    if (res.status)
        return poison(sb, status_error(sb, &res));
    if (res.count != 1 || res.values[0].type != SL_T_BYTES)
        return poison(sb, sl_err(&sb->err, SL_EABI, "guest signature list is not bytes"));
    const uint8_t *p = res.values[0].v.buf.ptr;
    size_t len = res.values[0].v.buf.len, pos;
    uint32_t count;
    if (sl_abi_sig_open(p, len, &count, &pos) || count > 4096)
        return poison(sb, sl_err(&sb->err, SL_EABI, "malformed guest signature list"));
    func *fns = calloc(count ? count : 1, sizeof *fns);
    if (!fns)
        return sl_err(&sb->err, SL_ENOMEM, "out of memory");
    size_t n = 0;
    sl_abi_sig s;
    while (n < count && sl_abi_sig_next(p, len, &pos, &s) == 0) {
        fns[n].name = strndup((const char *)s.name, s.name_len);
        fns[n].ret = s.ret;
        fns[n].n = s.nparams;
        for (unsigned i = 0; i < s.nparams && i < SL_ABI_MAX_VALUES; i++)
            fns[n].params[i] = s.params[i];
        if (!fns[n].name) {
            free_funcs(fns, n);
            return sl_err(&sb->err, SL_ENOMEM, "out of memory");
        }
        n++;
    }
    if (n != count) {
        free_funcs(fns, n);
        return poison(sb, sl_err(&sb->err, SL_EABI, "malformed guest signature list"));
    }
    free_funcs(sb->guest, sb->n_guest);
    sb->guest = fns;
    sb->n_guest = n;
    return 0;
}

/* -------------------------------------------------------------- lifecycle */

static int map_snapshot(sl_sandbox *sb, sl_snapshot *snap)
{
    if (sb->snap == snap)
        return 0;
    return sl_vcpu_map(sb->vcpu, SLOT_SNAPSHOT, SL_BASE_ADDRESS, snap->mem, snap->visible_size,
                       SL_VMEM_READONLY, &sb->err);
}

/* A fresh getrandom key for the guest kernel after every restore:
 * BLAKE3(host key || restore number), so that sandboxes restored from one
 * snapshot, and one sandbox restored twice, never share a stream. */
static void reseed(sl_sandbox *sb)
{
    uint8_t seed[SL_HASH_LEN];
    sl_hasher *h = sl_hasher_new();
    if (h) {
        uint64_t n = sb->rng_restores++;
        sl_hasher_update(h, sb->rng_key, sizeof sb->rng_key);
        sl_hasher_update(h, &n, sizeof n);
        sl_hasher_final(h, seed);
    } else {
        memcpy(seed, sb->rng_key, sizeof seed); /* out of memory: still unpredictable */
        sb->rng_key[0]++;
    }
    for (unsigned i = 0; i < 4; i++)
        sl_mem_bk_set(sb->mem, SL_BK_RNG_SEED + 8 * i, sl_get64(seed + 8 * i));
}

/* Restore without running init; leaves status NEW for an Initialise snapshot. */
static int restore_raw(sl_sandbox *sb, sl_snapshot *snap)
{
    if (snap->config_id != sb->mem->config_id)
        return sl_err(&sb->err, SL_EFAMILY,
                      "snapshot belongs to configuration family %llu, this sandbox to family %llu",
                      (unsigned long long)snap->config_id, (unsigned long long)sb->mem->config_id);
    if (snap->arch != sb->arch)
        return sl_err(&sb->err, SL_EFAMILY, "snapshot is for another architecture");
    int rc;
    /* A loaded file that changed is refused before anything is touched. */
    if ((rc = sl_snapfile_check(snap, "at a restore to it", &sb->err)))
        return file_changed(sb, snap, rc);
    /* What the guest wrote since the last restore, so that only that is reset. */
    if ((rc = sl_vcpu_dirty_log(sb->vcpu, SLOT_SCRATCH, sb->dirty_tmp, &sb->err)))
        return poison(sb, rc);
    sl_mem_merge_dirty(sb->mem, sb->dirty_tmp);
    if ((rc = map_snapshot(sb, snap)))
        return poison(sb, rc);
    /* The sandbox runs on what its snapshot slot maps, even if the rest of
     * the restore fails (a later restore to its old snapshot must map that
     * again). */
    if (sb->snap != snap) {
        sl_snapshot_ref(snap);
        sl_snapshot_free(sb->snap);
        sb->snap = snap;
    }
    if ((rc = sl_mem_restore(sb->mem, snap, &sb->err))) {
        /* Its old snapshot may be gone with the reference dropped above:
         * nothing reads through mem->snap before a restore succeeds. */
        sb->mem->snap = NULL;
        return rc == SL_ECHANGED ? file_changed(sb, snap, rc) : poison(sb, rc);
    }
    if ((rc = sl_vcpu_tables_changed(sb->vcpu, sb->mem->last_tables_copied > 0, &sb->err)))
        return poison(sb, rc);
    sl_sregs_blob blob, *saved = NULL;
    if (snap->sregs_len) {
        memset(&blob, 0, sizeof blob);
        memcpy(blob.bytes, snap->sregs,
               snap->sregs_len < sizeof blob.bytes ? snap->sregs_len : sizeof blob.bytes);
        saved = &blob;
    }
    if ((rc = sl_vcpu_reset(sb->vcpu, sb->mem->root, saved, &sb->err)))
        return poison(sb, rc);
    sl_vcpu_clear_cancel(sb->vcpu);
    reseed(sb);
    sl_mem_bk_set(sb->mem, SL_BK_HOST_PAGES, sl_vcpu_is_pvm(sb->vcpu) ? 1 : 0);
    sl_vcpu_get_stats(sb->vcpu, &sb->stats_base);
    sb->generation = snap->generation;
    if (snap->next_kind == SL_NEXT_CALL) {
        sb->dispatch = snap->next_addr;
        sb->stack_top = snap->stack_top;
        sb->status = SL_STATUS_READY;
    } else {
        sb->status = SL_STATUS_NEW;
    }
    return 0;
}

static int sandbox_create(sl_sandbox **out, sl_snapshot *snap, char *err, size_t errlen)
{
    *out = NULL;
    sl_sandbox *sb = calloc(1, sizeof *sb);
    int rc;
    if (!sb) {
        if (err && errlen)
            snprintf(err, errlen, "out of memory");
        return SL_ENOMEM;
    }
    sb->arch = snap->arch;
    sb->print = default_print;
    sb->read = default_read;
    sb->write = default_write;
    if (getrandom(sb->rng_key, sizeof sb->rng_key, 0) != (ssize_t)sizeof sb->rng_key) {
        rc = sl_err(&sb->err, SL_EHYPERVISOR, "getrandom failed: %s", strerror(errno));
        goto fail;
    }
    if ((rc = sl_vcpu_open(&sb->vcpu, sb->arch, &sb->err)) || (rc = sl_mem_create(&sb->mem, snap, &sb->err)))
        goto fail;
    sb->dirty_tmp = calloc(sb->mem->dirty_words, sizeof(uint64_t));
    if (!sb->dirty_tmp) {
        rc = sl_err(&sb->err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    const sl_layout *l = &sb->mem->layout;
    if ((rc = sl_vcpu_map(sb->vcpu, SLOT_SCRATCH, l->scratch_gpa, sb->mem->scratch, l->scratch_size,
                          SL_VMEM_DIRTY_LOG, &sb->err)) ||
        (rc = restore_raw(sb, snap)))
        goto fail;
    *out = sb;
    return 0;
fail:
    if (err && errlen)
        snprintf(err, errlen, "%s", sb->err.msg);
    sl_sandbox_free(sb);
    return rc;
}

int sl_sandbox_new_from_elf(sl_sandbox **out, const void *elf, size_t len, const sl_config *cfg, char *err,
                            size_t errlen)
{
    sl_errbuf e;
    sl_snapshot *snap;
    *out = NULL;
    int rc = sl_snapshot_from_binary(&snap, elf, len, cfg, &e);
    if (rc) {
        if (err && errlen)
            snprintf(err, errlen, "%s", e.msg);
        return rc;
    }
    rc = sandbox_create(out, snap, err, errlen);
    sl_snapshot_free(snap); /* the sandbox holds its own reference */
    return rc;
}

int sl_sandbox_new_from_file(sl_sandbox **out, const char *path, const sl_config *cfg, char *err, size_t errlen)
{
    *out = NULL;
    sl_errbuf e;
    int fd = sl_open_regular(path, "guest ELF", &e);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "rb");
    if (!f) {
        if (fd >= 0)
            close(fd);
        if (err && errlen)
            snprintf(err, errlen, "%s", fd < 0 ? e.msg : "out of memory");
        return fd < 0 ? fd : SL_ENOMEM;
    }
    struct stat st;
    uint8_t *buf = NULL;
    int rc = SL_EIO;
    if (fstat(fileno(f), &st) == 0 && st.st_size > 0 && (uint64_t)st.st_size <= (1ull << 30) &&
        (buf = malloc((size_t)st.st_size)) && fread(buf, 1, (size_t)st.st_size, f) == (size_t)st.st_size)
        rc = sl_sandbox_new_from_elf(out, buf, (size_t)st.st_size, cfg, err, errlen);
    else if (err && errlen)
        snprintf(err, errlen, "%s: cannot read (empty, larger than 1 GiB, or an I/O error)", path);
    free(buf);
    fclose(f);
    return rc;
}

int sl_sandbox_new_from_snapshot(sl_sandbox **out, sl_snapshot *snap, char *err, size_t errlen)
{
    int rc = sandbox_create(out, snap, err, errlen);
    if (rc || (*out)->status != SL_STATUS_READY)
        return rc;
    if ((rc = load_signatures(*out))) {
        if (err && errlen)
            snprintf(err, errlen, "%s", (*out)->err.msg);
        sl_sandbox_free(*out);
        *out = NULL;
        return rc;
    }
    table_is_for(*out, snap->hash);
    return 0;
}

void sl_sandbox_free(sl_sandbox *sb)
{
    if (!sb)
        return;
    sl_vcpu_free(sb->vcpu);
    sl_mem_free(sb->mem);
    sl_snapshot_free(sb->snap);
    free_funcs(sb->host, sb->n_host);
    free_funcs(sb->guest, sb->n_guest);
    free(sb->ret_buf);
    free(sb->dirty_tmp);
    free(sb->read_buf);
    free(sb->exec_text);
    free(sb);
}

const char *sl_sandbox_errmsg(const sl_sandbox *sb) { return sb->err.msg; }
int sl_sandbox_status(const sl_sandbox *sb) { return sb->status; }
uint64_t sl_sandbox_generation(const sl_sandbox *sb) { return sb->generation; }
void sl_sandbox_set_timeout(sl_sandbox *sb, uint64_t ms) { sb->timeout_ms = ms; }
void sl_sandbox_kill(sl_sandbox *sb) { sl_vcpu_cancel(sb->vcpu); }

void sl_sandbox_set_print(sl_sandbox *sb, sl_print_fn fn, void *user)
{
    sb->print = fn ? fn : default_print;
    sb->print_user = user;
}

int sl_sandbox_register(sl_sandbox *sb, const char *name, int ret_type, const int *param_types, size_t nparams,
                        sl_host_fn fn, void *user)
{
    if (!name || !fn || strlen(name) > SL_ABI_MAX_NAME || nparams > SL_ABI_MAX_VALUES ||
        ret_type < 0 || ret_type > SL_TYPE_BYTES || (nparams && !param_types))
        return sl_err(&sb->err, SL_EINVAL, "invalid host function registration");
    for (size_t i = 0; i < nparams; i++)
        if (param_types[i] <= SL_TYPE_VOID || param_types[i] > SL_TYPE_BYTES)
            return sl_err(&sb->err, SL_EINVAL, "host function '%s': parameter %zu has an invalid type", name, i + 1);
    if (find(sb->host, sb->n_host, (const uint8_t *)name, strlen(name)))
        return sl_err(&sb->err, SL_EINVAL, "host function '%s' registered twice", name);
    func *h = realloc(sb->host, (sb->n_host + 1) * sizeof *h);
    if (!h)
        return sl_err(&sb->err, SL_ENOMEM, "out of memory");
    sb->host = h;
    func *f = &h[sb->n_host];
    memset(f, 0, sizeof *f);
    if (!(f->name = strdup(name)))
        return sl_err(&sb->err, SL_ENOMEM, "out of memory");
    f->ret = ret_type;
    f->n = nparams;
    for (size_t i = 0; i < nparams; i++)
        f->params[i] = param_types[i];
    f->fn = fn;
    f->user = user;
    sb->n_host++;
    return 0;
}

void sl_sandbox_set_stdio(sl_sandbox *sb, sl_read_fn read, sl_write_fn write, void *user)
{
    sb->read = read ? read : default_read;
    sb->write = write ? write : default_write;
    sb->stdio_user = user;
}

int sl_sandbox_set_args(sl_sandbox *sb, size_t argc, const char *const *argv, size_t envc, const char *const *envp)
{
    if (sb->status != SL_STATUS_NEW)
        return sl_err(&sb->err, SL_ESTATE, "arguments are set before init");
    if ((argc && !argv) || (envc && !envp))
        return sl_err(&sb->err, SL_EINVAL, "NULL argument or environment array");
    if (argc + envc > 4096 || argc + envc < argc)
        return sl_err(&sb->err, SL_ERANGE, "more than 4096 arguments and environment strings");
    size_t len = 0;
    for (size_t i = 0; i < argc + envc; i++) {
        const char *a = i < argc ? argv[i] : envp[i - argc];
        if (!a)
            return sl_err(&sb->err, SL_EINVAL, "%s %zu is NULL", i < argc ? "argument" : "environment string",
                          i < argc ? i : i - argc);
        len += strlen(a) + 1;
    }
    /* the EXEC message must fit the input buffer with its framing */
    if (len + 256 > sb->mem->layout.input_size)
        return sl_err(&sb->err, SL_ERANGE, "arguments and environment (%zu bytes) do not fit the %llu-byte input buffer",
                      len, (unsigned long long)sb->mem->layout.input_size);
    char *t = malloc(len ? len : 1), *p = t;
    if (!t)
        return sl_err(&sb->err, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < argc + envc; i++) {
        const char *a = i < argc ? argv[i] : envp[i - argc];
        size_t n = strlen(a) + 1;
        memcpy(p, a, n);
        p += n;
    }
    free(sb->exec_text);
    sb->exec_text = t;
    sb->exec_len = len;
    sb->exec_argc = argc;
    return 0;
}

/* Enters the guest kernel at its boot entry (the input stack holding the
 * EXEC message, if any) and runs until init is done or the program exits. */
static int start(sl_sandbox *sb, sl_msg *res)
{
    if (sb->status != SL_STATUS_NEW)
        return sl_err(&sb->err, SL_ESTATE, "sandbox is already initialised");
    if (sb->snap->next_kind != SL_NEXT_INITIALISE)
        return sl_err(&sb->err, SL_ESTATE, "snapshot has no init to run");
    const sl_layout *l = &sb->mem->layout;
    sl_abi_reset(input_buf(sb), l->input_size);
    sl_abi_reset(output_buf(sb), l->output_size);
    int rc = 0;
    if (sb->exec_text) {
        sl_msg m;
        sl_msg_init(&m, SL_MSG_EXEC);
        m.code = (int64_t)sb->exec_argc;
        m.text = (const uint8_t *)sb->exec_text;
        m.text_len = (uint32_t)sb->exec_len;
        rc = sl_abi_push(input_buf(sb), l->input_size, &m);
    }
    io_written(sb, false);
    io_written(sb, true);
    if (rc)
        return sl_err(&sb->err, SL_ERANGE, "arguments do not fit the input buffer");
    if ((rc = enter(sb, sb->snap->next_addr, sl_mem_bk_get(sb->mem, SL_BK_EXC_STACK_TOP), SL_ENTRY_INIT)))
        return rc;
    return run_checked(sb, res, true);
}

int sl_sandbox_init(sl_sandbox *sb)
{
    sl_msg res;
    int rc = start(sb, &res);
    if (rc == RUN_EXITED && sb->exit.signal)
        return poison(sb, sl_err(&sb->err, SL_EABORT, "guest ended with signal %d during init (abort() "
                                 "sends SIGABRT, 6)", sb->exit.signal));
    if (rc == RUN_EXITED)
        return poison(sb, sl_err(&sb->err, SL_EABORT,
                                 "guest exited with status %d during init (a program with main() runs with "
                                 "sl_sandbox_run or `sandlet run`)",
                                 sb->exit.exit_status));
    if (rc)
        return rc;
    if (res.status)
        return poison(sb, status_error(sb, &res));
    sb->dispatch = sl_mem_bk_get(sb->mem, SL_BK_DISPATCH);
    sb->stack_top = sl_mem_bk_get(sb->mem, SL_BK_STACK_TOP);
    if (!sb->dispatch || !sb->stack_top)
        return poison(sb, sl_err(&sb->err, SL_EABI, "guest init did not report its dispatch entry and stack"));
    sb->status = SL_STATUS_READY;
    return load_signatures(sb);
}

int sl_sandbox_run(sl_sandbox *sb, sl_run_result *res)
{
    sl_msg m;
    memset(res, 0, sizeof *res);
    int rc = start(sb, &m);
    if (rc == RUN_EXITED) {
        *res = sb->exit;
        poison(sb, sl_err(&sb->err, SL_ESTATE, "the program has exited with status %d", res->exit_status));
        return 0;
    }
    if (rc)
        return rc;
    return poison(sb, sl_err(&sb->err, SL_ESTATE,
                             "the guest finished init instead of exiting: it is a function-model guest "
                             "(sandlet_main), use sl_sandbox_init and calls"));
}

int sl_run_file(const char *path, const sl_run_opts *o, sl_run_result *res, char *err, size_t errlen)
{
    static const sl_run_opts none;
    if (!o)
        o = &none;
    sl_config cfg = {.scratch_size = SL_RUN_DEFAULT_SCRATCH};
    sl_sandbox *sb;
    int rc = sl_sandbox_new_from_file(&sb, path, o->cfg ? o->cfg : &cfg, err, errlen);
    if (rc)
        return rc;
    sl_sandbox_set_stdio(sb, o->read, o->write, o->user);
    sl_sandbox_set_timeout(sb, o->timeout_ms);
    if (!(rc = sl_sandbox_set_args(sb, o->argc, o->argv, o->envc, o->envp)))
        rc = sl_sandbox_run(sb, res);
    if (rc && err && errlen)
        snprintf(err, errlen, "%s", sl_sandbox_errmsg(sb));
    sl_sandbox_free(sb);
    return rc;
}

size_t sl_sandbox_function_count(const sl_sandbox *sb) { return sb->n_guest; }

int sl_sandbox_function(const sl_sandbox *sb, size_t i, const char **name, int *ret_type, const int **params,
                        size_t *nparams)
{
    if (i >= sb->n_guest)
        return SL_ENOTFOUND;
    if (name)
        *name = sb->guest[i].name;
    if (ret_type)
        *ret_type = sb->guest[i].ret;
    if (params)
        *params = sb->guest[i].params;
    if (nparams)
        *nparams = sb->guest[i].n;
    return 0;
}

int sl_sandbox_find_function(const sl_sandbox *sb, const char *name)
{
    const func *f = find(sb->guest, sb->n_guest, (const uint8_t *)name, strlen(name));
    return f ? (int)(f - sb->guest) : SL_ENOTFOUND;
}

int sl_sandbox_call(sl_sandbox *sb, const char *name, const sl_value *args, size_t nargs, sl_value *ret)
{
    if (sb->status != SL_STATUS_READY)
        return sl_err(&sb->err, SL_ESTATE, "%s",
                      sb->status == SL_STATUS_NEW ? "sandbox is not initialised (call sl_sandbox_init)"
                                                  : "sandbox is poisoned by a failed call: restore a snapshot");
    const func *f = find(sb->guest, sb->n_guest, (const uint8_t *)name, strlen(name));
    if (!f)
        return sl_err(&sb->err, SL_ENOTFOUND, "guest has no function '%s'", name);
    if (nargs != f->n)
        return sl_err(&sb->err, SL_ETYPE, "%s takes %zu argument%s, %zu given", name, f->n, f->n == 1 ? "" : "s",
                      nargs);
    for (size_t i = 0; i < nargs; i++)
        if (args[i].type != f->params[i])
            return sl_err(&sb->err, SL_ETYPE, "%s: argument %zu is %s, expected %s", name, i + 1,
                          sl_type_name(args[i].type), sl_type_name(f->params[i]));
    sl_msg res;
    int rc = raw_call(sb, name, args, nargs, &res);
    if (rc)
        return rc;
    if (res.status)
        return status_error(sb, &res);
    if (res.count != 1 || res.values[0].type != f->ret)
        return poison(sb, sl_err(&sb->err, SL_EABI, "%s returned %s, its signature says %s", name,
                                 res.count ? sl_type_name(res.values[0].type) : "nothing", sl_type_name(f->ret)));
    size_t need = 1;
    if (res.values[0].type == SL_T_STRING || res.values[0].type == SL_T_BYTES)
        need += res.values[0].v.buf.len;
    if (need > sb->ret_cap) {
        uint8_t *nb = realloc(sb->ret_buf, need);
        if (!nb)
            return sl_err(&sb->err, SL_ENOMEM, "out of memory");
        sb->ret_buf = nb;
        sb->ret_cap = need;
    }
    if (ret)
        from_wire(&res.values[0], ret, sb->ret_buf);
    return 0;
}

int sl_sandbox_snapshot(sl_sandbox *sb, sl_snapshot **out)
{
    *out = NULL;
    if (sb->status != SL_STATUS_READY)
        return sl_err(&sb->err, SL_ESTATE, "snapshots are taken between calls of a ready sandbox");
    uint64_t roots[SL_BK_MAX_ROOTS];
    uint64_t n = sl_mem_bk_get(sb->mem, SL_BK_NROOTS), cur = sl_mem_bk_get(sb->mem, SL_BK_PT_ROOT);
    if (n == 0 || n > SL_BK_MAX_ROOTS)
        n = 0;
    unsigned cur_idx = 0;
    bool found = false;
    for (uint64_t i = 0; i < n; i++) {
        roots[i] = sl_mem_bk_get(sb->mem, SL_BK_ROOTS + 8 * (unsigned)i) & SL_PAGE_MASK;
        if (roots[i] == (cur & SL_PAGE_MASK) && !found) {
            cur_idx = (unsigned)i;
            found = true;
        }
    }
    if (!found) { /* the guest's list must include the space it runs in */
        if (n == SL_BK_MAX_ROOTS)
            return sl_err(&sb->err, SL_EPAGETABLE, "guest lists %u address spaces, none of them current",
                          SL_BK_MAX_ROOTS);
        cur_idx = (unsigned)n;
        roots[n++] = (cur ? cur : sb->mem->root) & SL_PAGE_MASK;
    }
    sl_sregs_blob blob;
    int rc = sl_snapfile_check(sb->snap, "before a snapshot of a sandbox running on it", &sb->err);
    if (rc)
        return file_changed(sb, sb->snap, rc);
    if ((rc = sl_vcpu_get_sregs(sb->vcpu, &blob, &sb->err)))
        return rc;
    sl_guest_state st;
    sl_mem_guest_state(sb->mem, &st);
    st.roots = roots;
    st.n_roots = (unsigned)n;
    st.cur_root = cur_idx;
    st.stack_top = sb->stack_top;
    st.next_kind = SL_NEXT_CALL;
    st.next_addr = sb->dispatch;
    st.generation = sb->generation + 1;
    st.sregs = blob.bytes;
    st.sregs_len = (uint32_t)sl_sregs_blob_len(&blob);
    rc = sl_snapshot_from_memory(out, &st, &sb->err);
    /* Compaction copies the snapshot's pages: from a file, they must still
     * be the file's (a lost page was read as zeros). */
    int changed = sl_snapfile_check(sb->snap, "while a snapshot of a sandbox running on it was taken", &sb->err);
    if (changed) {
        if (!rc)
            sl_snapshot_free(*out);
        *out = NULL;
        return file_changed(sb, sb->snap, changed);
    }
    if (rc)
        return rc;
    table_is_for(sb, (*out)->hash); /* the table describes this snapshot's guest too */
    sb->generation = st.generation;
    sl_mem_bk_set(sb->mem, SL_BK_GENERATION, sb->generation);
    return 0;
}

int sl_sandbox_restore(sl_sandbox *sb, sl_snapshot *snap)
{
    if (sb->in_call)
        return sl_err(&sb->err, SL_ESTATE, "cannot restore during a call");
    int rc = restore_raw(sb, snap);
    if (rc)
        return rc;
    if (sb->status == SL_STATUS_NEW) {
        sb->sig_hash_set = false;
        return sl_sandbox_init(sb);
    }
    /* Signatures come from the guest: a snapshot of another program of the
     * same family brings its own, so a restore to a snapshot the table was
     * not read for asks again (one call; none in the usual "restore the same
     * snapshot after every call"). */
    if (sb->sig_hash_set && memcmp(sb->sig_hash, snap->hash, SL_HASH_LEN) == 0)
        return 0;
    /* A kill landing during that call is one that came before the restore
     * ended, and a restore discards those: restore again and ask again (a
     * few times; a caller that keeps killing gets SL_ECANCELLED). */
    for (int tries = 0; (rc = load_signatures(sb)) == SL_ECANCELLED && tries < 3; tries++)
        if ((rc = restore_raw(sb, snap)))
            return rc;
    if (rc)
        return rc;
    table_is_for(sb, snap->hash);
    return 0;
}

int sl_sandbox_info_get(sl_sandbox *sb, sl_sandbox_info *info)
{
    memset(info, 0, sizeof *info);
    const sl_layout *l = &sb->mem->layout;
    int rc = sl_vcpu_dirty_log(sb->vcpu, SLOT_SCRATCH, sb->dirty_tmp, &sb->err);
    if (rc)
        return rc;
    sl_mem_merge_dirty(sb->mem, sb->dirty_tmp);
    info->arch = sb->arch;
    info->backend = sl_vcpu_backend_name(sb->vcpu);
    info->scratch_size = l->scratch_size;
    info->heap_size = l->heap_size;
    info->input_size = l->input_size;
    info->output_size = l->output_size;
    info->stack_size = l->stack_size;
    info->snapshot_memory = sb->snap->visible_size;
    info->dirty_pages = sl_mem_dirty_pages(sb->mem);
    info->resident_pages = sl_mem_resident_pages(sb->mem);
    uint64_t base = l->pt_gpa + sb->snap->pt_size, cur = sl_mem_bk_get(sb->mem, SL_BK_ALLOC_CURSOR);
    info->scratch_pages_used = cur > base && cur <= l->bk_gpa ? (cur - base) / SL_PAGE_SIZE : 0;
    info->generation = sb->generation;
    info->status = sb->status;
    sl_vcpu_stats now;
    sl_vcpu_get_stats(sb->vcpu, &now);
    info->exits = now.exits - sb->stats_base.exits;
    info->exits_io = now.exits_io - sb->stats_base.exits_io;
    info->exits_mmio = now.exits_mmio - sb->stats_base.exits_mmio;
    info->exits_other = now.exits_other - sb->stats_base.exits_other;
    info->ioctls = now.ioctls - sb->stats_base.ioctls;
    info->emulated = now.emulated - sb->stats_base.emulated;
    info->guest_faults = sl_mem_bk_get(sb->mem, SL_BK_EV_FAULTS);
    info->cow_copies = sl_mem_bk_get(sb->mem, SL_BK_EV_COW);
    info->demand_pages = sl_mem_bk_get(sb->mem, SL_BK_EV_DEMAND);
    info->syscalls = sl_mem_bk_get(sb->mem, SL_BK_EV_SYSCALLS);
    return 0;
}
