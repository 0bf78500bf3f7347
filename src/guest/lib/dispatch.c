/* Function registry and call dispatch, in user mode. */
#include "guest.h"

typedef struct lib_fn {
    const char *name;
    uint32_t name_len;
    uint8_t ret, nparams;
    uint8_t params[SL_ABI_MAX_VALUES];
    sl_guest_fn fn;
} lib_fn;

static lib_fn registry[SL_GUEST_MAX_FUNCTIONS];
static unsigned n_registered;
static uint8_t *sig_blob; /* encoded registry (heap), built once at the end of init */
static size_t sig_len;
static bool ready; /* sandlet_main is running: registration allowed */

void lib_init_begin(void) { ready = true; }

int sl_register(const char *name, uint8_t ret_type, unsigned nparams, const uint8_t *param_types, sl_guest_fn fn)
{
    if (!ready || !name || !fn || n_registered >= SL_GUEST_MAX_FUNCTIONS || nparams > SL_ABI_MAX_VALUES ||
        (nparams && !param_types) || ret_type > SL_T_MAX)
        return -1;
    size_t len = strlen(name);
    if (len == 0 || len > SL_ABI_MAX_NAME || strncmp(name, "sl.", 3) == 0)
        return -1;
    for (unsigned i = 0; i < nparams; i++)
        if (param_types[i] == SL_T_VOID || param_types[i] > SL_T_MAX)
            return -1;
    for (unsigned i = 0; i < n_registered; i++)
        if (registry[i].name_len == len && memcmp(registry[i].name, name, len) == 0)
            return -1;
    lib_fn *f = &registry[n_registered++];
    f->name = name;
    f->name_len = (uint32_t)len;
    f->ret = ret_type;
    f->nparams = (uint8_t)nparams;
    for (unsigned i = 0; i < nparams; i++)
        f->params[i] = param_types[i];
    f->fn = fn;
    return 0;
}

int sl_fail(sl_gvalue *ret, int status, const char *msg)
{
    ret->type = SL_T_STRING;
    ret->owned = 0;
    ret->v.s.ptr = msg ? msg : "";
    ret->v.s.len = (uint32_t)strlen(ret->v.s.ptr);
    return status;
}

/* The "sl.signatures" answer never changes after init, so it is encoded once
 * (into the heap, so it is part of every later snapshot). */
void lib_registry_seal(void)
{
    ready = false;
    size_t cap = 4 + (size_t)n_registered * (2 + SL_ABI_MAX_NAME + 1 + SL_ABI_MAX_VALUES);
    uint8_t *buf = malloc(cap);
    size_t len = 0;
    if (!buf || sl_abi_sig_init(buf, cap, &len) != 0) {
        free(buf);
        return;
    }
    for (unsigned i = 0; i < n_registered; i++) {
        sl_abi_sig s;
        memset(&s, 0, sizeof s);
        s.name = (const uint8_t *)registry[i].name;
        s.name_len = registry[i].name_len;
        s.ret = registry[i].ret;
        s.nparams = registry[i].nparams;
        memcpy(s.params, registry[i].params, registry[i].nparams);
        if (sl_abi_sig_add(buf, cap, &len, &s) != 0) {
            free(buf);
            return;
        }
    }
    sig_blob = buf;
    sig_len = len;
}

static const char *type_name(uint8_t t)
{
    static const char *const names[] = {"void", "i32", "u32", "i64", "u64", "f32", "f64", "string", "bool", "bytes"};
    return t <= SL_T_MAX ? names[t] : "?";
}

static void send_result(sl_msg *m)
{
    int rc = lib_push_output(m);
    if (rc == 0)
        return;
    static const char too_big[] = "result does not fit in the output buffer";
    static const char bad[] = "result could not be encoded";
    memset(m, 0, sizeof *m);
    m->kind = SL_MSG_RESULT;
    m->status = SL_ABI_ENOMEM;
    m->text = (const uint8_t *)(rc == SL_ABI_E_SPACE ? too_big : bad);
    m->text_len = (uint32_t)(rc == SL_ABI_E_SPACE ? sizeof too_big - 1 : sizeof bad - 1);
    lib_push_output(m);
}

static void send_error(sl_msg *m, int status, const char *text)
{
    memset(m, 0, sizeof *m);
    m->kind = SL_MSG_RESULT;
    m->status = status;
    m->text = (const uint8_t *)text;
    m->text_len = (uint32_t)strlen(text);
    send_result(m);
}

static const lib_fn *find(const uint8_t *name, uint32_t len)
{
    for (unsigned i = 0; i < n_registered; i++)
        if (registry[i].name_len == len && memcmp(registry[i].name, name, len) == 0)
            return &registry[i];
    return NULL;
}

/* Checks arity and types; fills `err` and returns false on a mismatch. */
static bool check_args(const lib_fn *f, const sl_msg *call, char *err, size_t cap)
{
    if (call->count != f->nparams) {
        snprintf(err, cap, "%s: expected %u argument(s), got %u", f->name, (unsigned)f->nparams,
                 (unsigned)call->count);
        return false;
    }
    for (unsigned i = 0; i < f->nparams; i++) {
        if (call->values[i].type != f->params[i]) {
            snprintf(err, cap, "%s: argument %u is %s, expected %s", f->name, i + 1,
                     type_name(call->values[i].type), type_name(f->params[i]));
            return false;
        }
    }
    return true;
}

/* String arguments up to this many bytes in all are copied onto the call's
 * stack, larger ones to the heap: a heap copy would cost musl's allocator a
 * fresh mapping and an munmap per call (two system calls and page faults). */
#define ARGS_ON_STACK 16384u

static void run(const lib_fn *f, sl_msg *m)
{
    sl_gvalue args[SL_ABI_MAX_VALUES];
    unsigned n = f->nparams;
    size_t strings = 0;
    for (unsigned i = 0; i < n; i++)
        if (m->values[i].type == SL_T_STRING)
            strings += (size_t)m->values[i].v.buf.len + 1;
    bool on_stack = strings <= ARGS_ON_STACK;
    char arena[on_stack && strings ? strings : 1];
    char *next = arena;
    for (unsigned i = 0; i < n; i++) {
        const sl_wire_value *w = &m->values[i];
        if (w->type == SL_T_BYTES) { /* zero-copy: valid while the CALL stays on the input stack */
            args[i].type = SL_T_BYTES;
            args[i].owned = 0;
            args[i].v.s.ptr = (const char *)w->v.buf.ptr;
            args[i].v.s.len = w->v.buf.len;
        } else if (w->type == SL_T_STRING && on_stack) {
            memcpy(next, w->v.buf.ptr, w->v.buf.len);
            next[w->v.buf.len] = 0;
            args[i].type = SL_T_STRING;
            args[i].owned = 0;
            args[i].v.s.ptr = next;
            args[i].v.s.len = w->v.buf.len;
            next += w->v.buf.len + 1;
        } else if (!lib_from_wire(w, &args[i])) {
            for (unsigned j = 0; j < i; j++)
                sl_gvalue_free(&args[j]);
            send_error(m, SL_ABI_ENOMEM, "out of guest heap for the arguments");
            return;
        }
    }
    sl_gvalue ret;
    memset(&ret, 0, sizeof ret);
    ret.type = f->ret;
    int status = f->fn(args, &ret);
    lib_flush(); /* what the function printed reaches the host before its result */

    char err[320];
    memset(m, 0, sizeof *m);
    m->kind = SL_MSG_RESULT;
    if (status == SL_ABI_OK && ret.type != f->ret) {
        snprintf(err, sizeof err, "%s returned %s, declared %s", f->name, type_name(ret.type), type_name(f->ret));
        status = SL_ABI_ETYPE;
        m->text = (const uint8_t *)err;
        m->text_len = (uint32_t)strlen(err);
    } else if (status == SL_ABI_OK) {
        m->count = 1;
        lib_to_wire(&ret, &m->values[0]);
    } else if (ret.type == SL_T_STRING && ret.v.s.ptr) {
        m->text = (const uint8_t *)ret.v.s.ptr;
        m->text_len = ret.v.s.len;
    } else {
        snprintf(err, sizeof err, "%s failed", f->name);
        m->text = (const uint8_t *)err;
        m->text_len = (uint32_t)strlen(err);
    }
    m->status = status;
    send_result(m);
    sl_gvalue_free(&ret);
    for (unsigned i = 0; i < n; i++)
        sl_gvalue_free(&args[i]);
}

void lib_dispatch(void)
{
    size_t cap;
    uint8_t *in = lib_input(&cap);
    sl_msg m;
    char err[320];
    if (!in || sl_abi_peek(in, cap, &m) != 0 || m.kind != SL_MSG_CALL) {
        send_error(&m, SL_ABI_EMALFORMED, "malformed or missing CALL message");
        return;
    }
    static const char sigfn[] = SL_ABI_SIGNATURES_FN;
    if (m.name_len == sizeof sigfn - 1 && memcmp(m.name, sigfn, sizeof sigfn - 1) == 0) {
        if (m.count != 0) {
            send_error(&m, SL_ABI_ETYPE, SL_ABI_SIGNATURES_FN ": expected 0 arguments");
        } else if (!sig_blob) {
            send_error(&m, SL_ABI_ENOMEM, "signature registry unavailable (heap exhausted at init)");
        } else {
            memset(&m, 0, sizeof m);
            m.kind = SL_MSG_RESULT;
            m.count = 1;
            m.values[0].type = SL_T_BYTES;
            m.values[0].v.buf.ptr = sig_blob;
            m.values[0].v.buf.len = (uint32_t)sig_len;
            send_result(&m);
        }
    } else {
        const lib_fn *f = find(m.name, m.name_len);
        if (!f) {
            snprintf(err, sizeof err, "no such function: %.*s", (int)(m.name_len > 200 ? 200 : m.name_len),
                     (const char *)m.name);
            send_error(&m, SL_ABI_ENOTFOUND, err);
        } else if (!check_args(f, &m, err, sizeof err)) {
            send_error(&m, SL_ABI_ETYPE, err);
        } else {
            run(f, &m);
        }
    }
    sl_abi_pop(in, cap); /* the CALL; harmless if the host already reset the stack */
}
