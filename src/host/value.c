/* Values: the public sl_value (SL_TYPE_*) and the wire's sl_wire_value
 * (SL_T_*), which share their type numbers, and the types' names. */
#include <string.h>

#include "sandbox.h"

/* sl_value and sl_wire_value share their type numbers. */
#define SAME_NUMBER_(name, value, text) \
    _Static_assert(SL_TYPE_##name == (int)SL_T_##name, "SL_TYPE_" #name " is not the wire's SL_T_" #name);
SL_TYPE_MAP(SAME_NUMBER_)
#undef SAME_NUMBER_
_Static_assert((int)SL_T_MAX == SL_TYPE_BYTES, "a wire type the host does not have");

const char *sl_type_name(int t)
{
    switch (t) {
#define NAME_(name, value, text) \
    case SL_TYPE_##name: return text;
        SL_TYPE_MAP(NAME_)
#undef NAME_
    default: return "?";
    }
}

int sl_type_parse(const char *name)
{
#define PARSE_(name_, value, text) \
    if (!strcmp(name, text))       \
        return SL_TYPE_##name_;
    SL_TYPE_MAP(PARSE_)
#undef PARSE_
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
