/* Values: the public sl_value (SL_TYPE_*) and the wire's sl_wire_value
 * (SL_T_*), which share their type numbers, and the types' names. */
#include <string.h>

#include "sandbox.h"

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

bool sl_value_to_wire(const sl_value *v, sl_wire_value *w)
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

void sl_value_from_wire(const sl_wire_value *w, sl_value *v, uint8_t *buf)
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
