/* Equality of decoded wire messages (src/common/abi.h), field by field as
 * each kind defines them: for the wire-format tests and the fuzz target, which
 * check that decode(encode(m)) equals m. */
#ifndef SL_TEST_WIRE_EQ_H
#define SL_TEST_WIRE_EQ_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "abi.h"

static inline bool span_eq(const uint8_t *a, uint32_t alen, const uint8_t *b, uint32_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static inline bool value_eq(const sl_wire_value *a, const sl_wire_value *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case SL_T_VOID: return true;
    case SL_T_BOOL: return a->v.b == b->v.b;
    case SL_T_I32: case SL_T_U32: case SL_T_F32: return a->v.u32 == b->v.u32;
    case SL_T_I64: case SL_T_U64: case SL_T_F64: return a->v.u64 == b->v.u64;
    default: return span_eq(a->v.buf.ptr, a->v.buf.len, b->v.buf.ptr, b->v.buf.len);
    }
}

/* Compares the fields that are meaningful for the kind. */
static inline bool msg_eq(const sl_msg *a, const sl_msg *b)
{
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case SL_MSG_CALL:
    case SL_MSG_HOSTCALL:
        if (!span_eq(a->name, a->name_len, b->name, b->name_len) || a->count != b->count)
            return false;
        for (uint32_t i = 0; i < a->count; i++)
            if (!value_eq(&a->values[i], &b->values[i]))
                return false;
        return true;
    case SL_MSG_RESULT:
    case SL_MSG_HOSTRESULT:
        if (a->status != b->status)
            return false;
        if (a->status)
            return span_eq(a->text, a->text_len, b->text, b->text_len);
        /* an OK result carries exactly one value */
        return a->count == 1 && b->count == 1 && value_eq(&a->values[0], &b->values[0]);
    case SL_MSG_FAULT:
        return a->code == b->code && a->fault[0] == b->fault[0] && a->fault[1] == b->fault[1] &&
               a->fault[2] == b->fault[2];
    default:
        return a->code == b->code && span_eq(a->text, a->text_len, b->text, b->text_len);
    }
}

#endif
