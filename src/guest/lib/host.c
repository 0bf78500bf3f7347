/* Messages to the host from user code: print, log, abort and host calls.
 *
 * Output protocol: the output stack holds exactly the message belonging to
 * the port write that follows it (reset before every push), so the host may
 * pop it or leave it. Input protocol: the CALL stays on the input stack for
 * the whole call; the host pushes each HOSTRESULT on top of it, and the
 * guest pops the HOSTRESULT after reading it. */
#include <stdarg.h>
#include <stdio_ext.h>
#include <unistd.h>

#include "guest.h"

/* Where the message buffers are: asked of the kernel once, at init, and
 * part of every snapshot after it (they are the same for a whole family). */
static struct {
    uint64_t input_gva, input_size, output_gva, output_size;
    bool known;
} io;

long lib_syscall(long nr, long a0, long a1) { return syscall(nr, a0, a1); }

/* fflush writes to the FILE even with nothing buffered, which would make
 * every call copy the page holding stdout: flush only what is pending. */
void lib_flush(void)
{
    if (__fpending(stdout))
        fflush(stdout);
    if (__fpending(stderr))
        fflush(stderr);
}

static void io_buffers(void)
{
    if (io.known)
        return;
    uint64_t v[4];
    if (lib_syscall(SL_SYS_IO_BUFFERS, (long)(uintptr_t)v, 0) == 0) {
        io.input_gva = v[0];
        io.input_size = v[1];
        io.output_gva = v[2];
        io.output_size = v[3];
    }
    io.known = true;
}

uint8_t *lib_input(size_t *cap)
{
    io_buffers();
    *cap = (size_t)io.input_size;
    return io.input_size >= SL_ABI_STACK_HDR ? (uint8_t *)(uintptr_t)io.input_gva : NULL;
}

uint8_t *lib_output(size_t *cap)
{
    io_buffers();
    *cap = (size_t)io.output_size;
    return io.output_size >= SL_ABI_STACK_HDR ? (uint8_t *)(uintptr_t)io.output_gva : NULL;
}

int lib_push_output(const sl_msg *m)
{
    size_t cap;
    uint8_t *out = lib_output(&cap);
    return sl_abi_replace(out, cap, m);
}

/* Pushes a text message, truncating the text until it fits. */
static void push_text(sl_msg *m, const char *text, uint32_t len)
{
    m->text = (const uint8_t *)text;
    for (;;) {
        m->text_len = len;
        int rc = lib_push_output(m);
        if (rc != SL_ABI_E_SPACE && rc != SL_ABI_E_LIMIT)
            return;
        if (len == 0)
            return;
        len /= 2;
    }
}

__attribute__((noreturn)) static void abort_call(int32_t code, const char *msg, uint32_t len)
{
    sl_msg m;
    sl_msg_init(&m, SL_MSG_ABORT);
    m.code = code;
    lib_flush();
    push_text(&m, msg, len);
    for (;;) /* the host ends the call; it never resumes an abort */
        lib_out(SL_PORT_ABORT, (uint32_t)code);
}

void sl_abort(int32_t code, const char *msg)
{
    if (!msg)
        msg = "";
    abort_call(code, msg, (uint32_t)strlen(msg));
}

void sl_print(const char *str)
{
    sl_msg m;
    sl_msg_init(&m, SL_MSG_PRINT);
    if (!str)
        str = "";
    push_text(&m, str, (uint32_t)strlen(str));
    lib_out(SL_PORT_PRINT, 0);
}

void sl_printf(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sl_print(buf);
}

void sl_log(int level, const char *str)
{
    sl_msg m;
    sl_msg_init(&m, SL_MSG_LOG);
    m.code = level;
    if (!str)
        str = "";
    push_text(&m, str, (uint32_t)strlen(str));
    lib_out(SL_PORT_LOG, (uint32_t)level);
}

/* Floats cross as bit patterns through the integer members. */
void lib_to_wire(const sl_gvalue *g, sl_wire_value *w)
{
    w->type = g->type;
    w->v.u64 = 0;
    switch (g->type) {
    case SL_T_I32:
    case SL_T_U32:
    case SL_T_F32: w->v.u32 = g->v.u32; break;
    case SL_T_I64:
    case SL_T_U64:
    case SL_T_F64: w->v.u64 = g->v.u64; break;
    case SL_T_BOOL: w->v.b = g->v.b; break;
    case SL_T_STRING:
    case SL_T_BYTES:
        w->v.buf.ptr = (const uint8_t *)g->v.s.ptr;
        w->v.buf.len = g->v.s.len;
        if (g->type == SL_T_STRING && g->v.s.ptr && g->v.s.len == 0)
            w->v.buf.len = (uint32_t)strlen(g->v.s.ptr);
        if (!w->v.buf.ptr) {
            w->v.buf.ptr = (const uint8_t *)"";
            w->v.buf.len = 0;
        }
        break;
    default: break;
    }
}

/* Copies a wire value out of a message buffer; strings and bytes go to the
 * heap (NUL-terminated). Returns false when the heap is exhausted. */
bool lib_from_wire(const sl_wire_value *w, sl_gvalue *g)
{
    g->type = w->type;
    g->owned = 0;
    g->v.u64 = 0;
    switch (w->type) {
    case SL_T_I32:
    case SL_T_U32:
    case SL_T_F32: g->v.u32 = w->v.u32; break;
    case SL_T_I64:
    case SL_T_U64:
    case SL_T_F64: g->v.u64 = w->v.u64; break;
    case SL_T_BOOL: g->v.b = w->v.b; break;
    case SL_T_STRING:
    case SL_T_BYTES: {
        char *p = malloc((size_t)w->v.buf.len + 1);
        if (!p)
            return false;
        if (w->v.buf.len)
            memcpy(p, w->v.buf.ptr, w->v.buf.len);
        p[w->v.buf.len] = 0;
        g->v.s.ptr = p;
        g->v.s.len = w->v.buf.len;
        g->owned = 1;
        break;
    }
    default: break;
    }
    return true;
}

void sl_gvalue_free(sl_gvalue *v)
{
    if (v && v->owned && (v->type == SL_T_STRING || v->type == SL_T_BYTES)) {
        free((void *)(uintptr_t)v->v.s.ptr);
        v->v.s.ptr = NULL;
        v->v.s.len = 0;
        v->owned = 0;
    }
}

/* The reason the last host call failed, as the host gave it. */
static char host_error[256];

const char *sl_host_error(void)
{
    return host_error;
}

static void set_host_error(const uint8_t *text, uint32_t len, const char *fallback)
{
    size_t n = 0;
    if (!text || !len) {
        for (; fallback[n] && n < sizeof host_error - 1; n++)
            host_error[n] = fallback[n];
    } else {
        for (; n < len && n < sizeof host_error - 1; n++)
            host_error[n] = (char)text[n];
    }
    host_error[n] = 0;
}

/* A refusal made here, before the host sees the call: the status, with the
 * reason in sl_host_error() like the host's own. */
static int refuse(int status, const char *why)
{
    set_host_error(NULL, 0, why);
    return status;
}

int sl_call_host(const char *name, uint8_t ret_type, unsigned nargs, const sl_gvalue *args, sl_gvalue *ret)
{
    sl_msg m;
    host_error[0] = 0;
    if (!name || !ret || nargs > SL_ABI_MAX_VALUES || (nargs && !args) || ret_type > SL_T_MAX)
        return refuse(SL_ABI_ETYPE, "bad host call: no name or result, or too many arguments, or an unknown "
                                    "result type");
    size_t nlen = strlen(name);
    if (nlen == 0 || nlen > SL_ABI_MAX_NAME)
        return refuse(SL_ABI_EMALFORMED, "bad host call: the name is empty or longer than 255 bytes");
    sl_msg_init(&m, SL_MSG_HOSTCALL);
    m.name = (const uint8_t *)name;
    m.name_len = (uint32_t)nlen;
    m.count = nargs;
    for (unsigned i = 0; i < nargs; i++) {
        if (args[i].type == SL_T_VOID || args[i].type > SL_T_MAX)
            return refuse(SL_ABI_ETYPE, "bad host call: an argument of type void or of an unknown type");
        lib_to_wire(&args[i], &m.values[i]);
    }
    int rc = lib_push_output(&m);
    if (rc)
        return rc == SL_ABI_E_SPACE ? refuse(SL_ABI_ENOMEM, "the arguments do not fit the output buffer")
                                    : refuse(SL_ABI_EMALFORMED, "the host call could not be encoded");
    lib_out(SL_PORT_HOSTCALL, 0);

    size_t cap;
    uint8_t *in = lib_input(&cap);
    if (!in || sl_abi_peek(in, cap, &m) != 0 || m.kind != SL_MSG_HOSTRESULT)
        return refuse(SL_ABI_EMALFORMED, "the host's answer failed validation");
    int status = SL_ABI_OK;
    if (m.status != 0) {
        status = m.status > 0 ? m.status : SL_ABI_EHOSTFN;
        set_host_error(m.text, m.text_len, "host function failed");
    } else if (m.count < 1 || m.values[0].type != ret_type) {
        status = SL_ABI_ETYPE;
        set_host_error(NULL, 0, "host function returned another type than expected");
    } else if (!lib_from_wire(&m.values[0], ret)) {
        status = SL_ABI_ENOMEM;
        set_host_error(NULL, 0, "host function result does not fit the guest heap");
    }
    sl_abi_pop(in, cap);
    return status;
}

uint64_t sl_generation(void) { return (uint64_t)lib_syscall(SL_SYS_GENERATION, 0, 0); }

int sl_space_create(void)
{
    long r = lib_syscall(SL_SYS_SPACE_CREATE, 0, 0);
    return r < 0 ? -1 : (int)r;
}
int sl_space_switch(unsigned index) { return lib_syscall(SL_SYS_SPACE_SWITCH, (long)index, 0) < 0 ? -1 : 0; }
unsigned sl_space_current(void) { return (unsigned)lib_syscall(SL_SYS_SPACE_CURRENT, 0, 0); }
unsigned sl_space_count(void) { return (unsigned)lib_syscall(SL_SYS_SPACE_COUNT, 0, 0); }
int sl_space_map_private(unsigned index, uint64_t gva)
{
    return lib_syscall(SL_SYS_SPACE_MAP, (long)index, (long)(uintptr_t)gva) < 0 ? -1 : 0;
}
