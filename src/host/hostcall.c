/* Host calls: the guest's HOSTCALL on top of the output stack, answered
 * with a HOSTRESULT pushed on the input stack above the CALL that is still
 * running. A host function's failure is the guest's to handle (an error
 * status in the result); only a message the guest could not have meant
 * poisons the sandbox. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox.h"

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
        const sl_func *f = &sb->host[i];
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

/* Calls host function f with the HOSTCALL's arguments; its return value or
 * an error status (with errmsg) goes into r. */
static void call_host_fn(const sl_func *f, const sl_msg *m, sl_msg *r, char *errmsg, size_t errlen)
{
    sl_value args[SL_ABI_MAX_VALUES], ret;
    bool ok = m->count == f->n;
    for (uint32_t i = 0; ok && i < m->count; i++)
        ok = m->values[i].type == f->params[i];
    if (!ok) {
        r->status = SL_ABI_ETYPE;
        snprintf(errmsg, errlen, "host function '%s': wrong argument count or types", f->name);
        return;
    }
    for (uint32_t i = 0; i < m->count; i++) {
        /* Strings are passed as (pointer, length) into the message. */
        memset(&args[i], 0, sizeof args[i]);
        args[i].type = m->values[i].type;
        if (m->values[i].type == SL_T_STRING || m->values[i].type == SL_T_BYTES) {
            args[i].v.buf.ptr = m->values[i].v.buf.ptr;
            args[i].v.buf.len = m->values[i].v.buf.len;
        } else {
            sl_value tmp;
            sl_value_from_wire(&m->values[i], &tmp, NULL);
            args[i] = tmp;
        }
    }
    memset(&ret, 0, sizeof ret);
    ret.type = f->ret;
    if (f->fn(f->user, args, m->count, &ret, errmsg, errlen)) {
        r->status = SL_ABI_EHOSTFN;
        if (!errmsg[0])
            snprintf(errmsg, errlen, "host function '%s' failed", f->name);
    } else if (ret.type != f->ret || !sl_value_to_wire(&ret, &r->values[0])) {
        r->status = SL_ABI_EHOSTFN;
        snprintf(errmsg, errlen, "host function '%s' returned %s, declared %s", f->name, sl_type_name(ret.type),
                 sl_type_name(f->ret));
    } else {
        r->count = 1;
    }
}

/* Pushes the HOSTRESULT r; when it does not fit, an error result that does. */
static int push_result(sl_sandbox *sb, sl_msg *r)
{
    uint64_t cap = sb->mem->layout.input_size;
    sl_abi_reset(sl_sb_output(sb), sb->mem->layout.output_size);
    sl_sb_io_written(sb, true);
    /* The CALL stays below on the input stack: its arguments are still in use. */
    int pushed = sl_abi_push(sl_sb_input(sb), cap, r);
    sl_sb_io_written(sb, false);
    if (!pushed)
        return 0;
    sl_msg_init(r, SL_MSG_HOSTRESULT);
    r->status = SL_ABI_EHOSTFN;
    r->text = (const uint8_t *)"host function result does not fit the input buffer";
    r->text_len = (uint32_t)strlen((const char *)r->text);
    pushed = sl_abi_push(sl_sb_input(sb), cap, r);
    sl_sb_io_written(sb, false);
    if (pushed)
        return sl_sb_poison(sb, sl_err(&sb->err, SL_EABI, "input buffer full during a host call"));
    return 0;
}

int sl_sb_host_call(sl_sandbox *sb)
{
    sl_msg m, r;
    char errmsg[256] = "";
    int rc = sl_abi_peek(sl_sb_output(sb), sb->mem->layout.output_size, &m);
    if (rc || m.kind != SL_MSG_HOSTCALL)
        return sl_sb_poison(sb, sl_err(&sb->err, SL_EABI, "malformed host-call message from the guest (%s)",
                                       rc ? "frame failed validation" : "not a HOSTCALL"));
    sl_msg_init(&r, SL_MSG_HOSTRESULT);
    /* A reserved name: a host function registered under it is never called. */
    static const char sigfn[] = SL_ABI_HOST_SIGNATURES_FN;
    bool sigcall = m.name_len == sizeof sigfn - 1 && !memcmp(m.name, sigfn, sizeof sigfn - 1);
    uint8_t *blob = NULL;
    const sl_func *f = sigcall ? NULL : sl_sb_find(sb->host, sb->n_host, m.name, m.name_len);
    if (sigcall) {
        host_signatures(sb, &m, &r, &blob, errmsg, sizeof errmsg);
    } else if (!f) {
        r.status = SL_ABI_EHOSTFN;
        snprintf(errmsg, sizeof errmsg, "no host function '%.*s'", (int)m.name_len, (const char *)m.name);
    } else {
        call_host_fn(f, &m, &r, errmsg, sizeof errmsg);
    }
    if (r.status) {
        r.count = 0;
        r.text = (const uint8_t *)errmsg;
        r.text_len = (uint32_t)strlen(errmsg);
    }
    rc = push_result(sb, &r);
    free(blob);
    return rc;
}
