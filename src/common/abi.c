/* Host <-> guest message wire format (docs/abi.md is normative).
 *
 * Freestanding: no libc but memcpy and memset (which every C implementation,
 * freestanding included, must provide: the guest kernel's are string
 * instructions, since on PVM it pays per emulated instruction, and a byte
 * loop over a message costs thousands). Every multi-byte field is assembled
 * from bytes with shifts, so buffers may be unaligned and the code behaves the
 * same on amd64 and i686. The peer may have written anything into a buffer, so
 * every length is compared against the bytes that remain (written as
 * `n > len - pos`, which cannot overflow because pos <= len always holds). */
#include "abi.h"
#include "abi_wire.h"

#define FOOTER_RESERVED_OFF 4u

/* ---- values ----------------------------------------------------------- */

/* Fixed payload size of a scalar type; 0 for VOID, -1 for length-prefixed
 * types, -2 for an unknown tag. */
static int scalar_size(uint8_t type)
{
    switch (type) {
    case SL_T_VOID: return 0;
    case SL_T_BOOL: return 1;
    case SL_T_I32:
    case SL_T_U32:
    case SL_T_F32: return 4;
    case SL_T_I64:
    case SL_T_U64:
    case SL_T_F64: return 8;
    case SL_T_STRING:
    case SL_T_BYTES: return -1;
    default: return -2;
    }
}

/* Floats travel as their bit patterns via the union's integer members, so no
 * value is ever loaded into an FPU register (x87 would quiet signalling NaNs). */
static int put_value(struct wr *w, const sl_wire_value *v, bool allow_void)
{
    int sz = scalar_size(v->type);
    if (sz == -2 || (v->type == SL_T_VOID && !allow_void))
        return SL_ABI_E_TYPE;
    put_le(w, v->type, 1);
    switch (sz) {
    case 0: break;
    case 1: put_le(w, v->v.b ? 1 : 0, 1); break;
    case 4: put_le(w, v->v.u32, 4); break;
    case 8: put_le(w, v->v.u64, 8); break;
    default: put_text(w, v->v.buf.ptr, v->v.buf.len); break;
    }
    return 0;
}

static int get_value(struct rd *r, sl_wire_value *v, bool allow_void)
{
    uint64_t x;
    int rc = get_le(r, 1, &x);
    if (rc)
        return rc;
    uint8_t type = (uint8_t)x;
    int sz = scalar_size(type);
    if (sz == -2 || (type == SL_T_VOID && !allow_void))
        return SL_ABI_E_TYPE;
    v->type = type;
    switch (sz) {
    case 0:
        v->v.u64 = 0;
        return 0;
    case 1:
        if ((rc = get_le(r, 1, &x)))
            return rc;
        if (x > 1)
            return SL_ABI_E_MALFORMED;
        v->v.b = x == 1;
        return 0;
    case 4:
        if ((rc = get_le(r, 4, &x)))
            return rc;
        v->v.u32 = (uint32_t)x;
        return 0;
    case 8:
        if ((rc = get_le(r, 8, &x)))
            return rc;
        v->v.u64 = x;
        return 0;
    default:
        return get_text(r, &v->v.buf.ptr, &v->v.buf.len);
    }
}

/* ---- message bodies --------------------------------------------------- */

/* Every kind's body has one of four layouts; the encoder and the decoder
 * switch on the layout, so a new kind is filed in one place. */
enum body_layout {
    BODY_UNKNOWN,
    BODY_CALL,   /* u8 name length, name, u8 count, values */
    BODY_RESULT, /* i32 status, then the value, or the error text */
    BODY_TEXT,   /* i64 code, text */
    BODY_FAULT,  /* i64 code (vector), u64 error code, address, ip */
};

static enum body_layout body_layout(uint64_t kind)
{
    switch (kind) {
    case SL_MSG_CALL:
    case SL_MSG_HOSTCALL: return BODY_CALL;
    case SL_MSG_RESULT:
    case SL_MSG_HOSTRESULT: return BODY_RESULT;
    case SL_MSG_PRINT:
    case SL_MSG_ABORT:
    case SL_MSG_LOG:
    case SL_MSG_WRITE:
    case SL_MSG_DATA:
    case SL_MSG_EXEC: return BODY_TEXT;
    case SL_MSG_FAULT: return BODY_FAULT;
    default: return BODY_UNKNOWN;
    }
}

static int put_body(struct wr *w, const sl_msg *m)
{
    int rc;
    switch (body_layout(m->kind)) {
    case BODY_CALL:
        if (m->name_len > SL_ABI_MAX_NAME || m->count > SL_ABI_MAX_VALUES)
            return SL_ABI_E_LIMIT;
        put_name(w, m->name, m->name_len);
        put_le(w, m->count, 1);
        for (uint32_t i = 0; i < m->count; i++)
            if ((rc = put_value(w, &m->values[i], false)))
                return rc;
        return 0;
    case BODY_RESULT:
        put_le(w, (uint32_t)m->status, 4);
        if (m->status != SL_ABI_OK) {
            put_text(w, m->text, m->text_len);
            return 0;
        }
        if (m->count != 1)
            return SL_ABI_E_LIMIT;
        return put_value(w, &m->values[0], true);
    case BODY_TEXT:
        put_le(w, (uint64_t)m->code, 8);
        put_text(w, m->text, m->text_len);
        return 0;
    case BODY_FAULT:
        put_le(w, (uint64_t)m->code, 8);
        for (unsigned i = 0; i < 3; i++)
            put_le(w, m->fault[i], 8);
        return 0;
    default:
        return SL_ABI_E_KIND;
    }
}

static void clear_msg(sl_msg *m, uint16_t kind)
{
    m->kind = kind;
    m->status = 0;
    m->code = 0;
    m->name = 0;
    m->name_len = 0;
    m->text = 0;
    m->text_len = 0;
    for (unsigned i = 0; i < 3; i++)
        m->fault[i] = 0;
    m->count = 0;
}

static int get_body(struct rd *r, sl_msg *m)
{
    uint64_t x;
    int rc;
    switch (body_layout(m->kind)) {
    case BODY_CALL:
        if ((rc = get_name(r, &m->name, &m->name_len)))
            return rc;
        if ((rc = get_le(r, 1, &x)))
            return rc;
        if (x > SL_ABI_MAX_VALUES)
            return SL_ABI_E_LIMIT;
        for (uint32_t i = 0; i < (uint32_t)x; i++) {
            if ((rc = get_value(r, &m->values[i], false)))
                return rc;
            m->count = i + 1;
        }
        return 0;
    case BODY_RESULT:
        if ((rc = get_le(r, 4, &x)))
            return rc;
        m->status = u32_to_i32((uint32_t)x);
        if (m->status != SL_ABI_OK)
            return get_text(r, &m->text, &m->text_len);
        if ((rc = get_value(r, &m->values[0], true)))
            return rc;
        m->count = 1;
        return 0;
    case BODY_TEXT:
        if ((rc = get_le(r, 8, &x)))
            return rc;
        m->code = u64_to_i64(x);
        return get_text(r, &m->text, &m->text_len);
    default: /* BODY_FAULT; kind was checked by the caller */
        if ((rc = get_le(r, 8, &x)))
            return rc;
        m->code = u64_to_i64(x);
        for (unsigned i = 0; i < 3; i++)
            if ((rc = get_le(r, 8, &m->fault[i])))
                return rc;
        return 0;
    }
}

/* ---- frames ----------------------------------------------------------- */

int sl_abi_encode(const sl_msg *m, uint8_t *buf, size_t cap, size_t *len)
{
    if (!m || body_layout(m->kind) == BODY_UNKNOWN)
        return m ? SL_ABI_E_KIND : SL_ABI_E_MALFORMED;
    if (!buf || cap < SL_ABI_HDR_SIZE)
        return SL_ABI_E_SPACE;
    struct wr w = {buf, cap, SL_ABI_HDR_SIZE, 0};
    int rc = put_body(&w, m);
    if (rc)
        return rc;
    if (w.err)
        return w.err;
    uint64_t body = w.pos - SL_ABI_HDR_SIZE;
    uint64_t size = align8(w.pos);
    if (size > 0xffffffffu)
        return SL_ABI_E_LIMIT;
    while (w.pos < size && !w.err)
        put_le(&w, 0, 1);
    if (w.err)
        return w.err;
    sl_put_le(buf + 0, size, 4);
    sl_put_le(buf + 4, SL_ABI_WIRE_VERSION, 2);
    sl_put_le(buf + 6, m->kind, 2);
    sl_put_le(buf + 8, 0, 4);
    sl_put_le(buf + 12, body, 4);
    if (len)
        *len = (size_t)size;
    return 0;
}

/* Decodes the frame at buf[0..len) and returns its size in *size. */
static int decode_frame(const uint8_t *buf, size_t len, sl_msg *m, size_t *size)
{
    if (!buf || len < SL_ABI_HDR_SIZE)
        return SL_ABI_E_TRUNCATED;
    uint64_t fsize = sl_get_le(buf, 4);
    uint64_t version = sl_get_le(buf + 4, 2);
    uint64_t kind = sl_get_le(buf + 6, 2);
    uint64_t flags = sl_get_le(buf + 8, 4);
    uint64_t body = sl_get_le(buf + 12, 4);
    if (fsize < SL_ABI_HDR_SIZE || fsize > (uint64_t)len)
        return SL_ABI_E_TRUNCATED;
    if (version != SL_ABI_WIRE_VERSION)
        return SL_ABI_E_VERSION;
    if (body_layout(kind) == BODY_UNKNOWN)
        return SL_ABI_E_KIND;
    /* size must be exactly the padded body: this also bounds body by fsize. */
    if (flags != 0 || align8(SL_ABI_HDR_SIZE + body) != fsize)
        return SL_ABI_E_MALFORMED;
    clear_msg(m, (uint16_t)kind);
    struct rd r = {buf, (size_t)(SL_ABI_HDR_SIZE + body), SL_ABI_HDR_SIZE};
    int rc = get_body(&r, m);
    if (rc)
        return rc;
    if (r.pos != r.len)
        return SL_ABI_E_MALFORMED; /* bytes the body did not account for */
    for (size_t i = r.len; i < (size_t)fsize; i++)
        if (buf[i] != 0)
            return SL_ABI_E_MALFORMED;
    *size = (size_t)fsize;
    return 0;
}

int sl_abi_decode(const uint8_t *buf, size_t len, sl_msg *m)
{
    size_t size;
    if (!m)
        return SL_ABI_E_MALFORMED;
    return decode_frame(buf, len, m, &size);
}

/* ---- message stacks --------------------------------------------------- */

/* Reads and checks `top`: it must leave room for the header and keep frames
 * aligned. */
static int stack_top(const uint8_t *buf, size_t cap, size_t *top)
{
    if (!buf || cap < SL_ABI_STACK_HDR)
        return SL_ABI_E_TRUNCATED;
    uint64_t t = sl_get_le(buf, 8);
    if (t > (uint64_t)(cap - SL_ABI_STACK_HDR))
        return SL_ABI_E_TRUNCATED;
    if (t % SL_ABI_ALIGN)
        return SL_ABI_E_MALFORMED;
    *top = (size_t)t;
    return 0;
}

/* Finds and fully validates the top frame; *start is its offset in buf. */
static int stack_locate(const uint8_t *buf, size_t cap, size_t *top, size_t *start, sl_msg *m)
{
    int rc = stack_top(buf, cap, top);
    if (rc)
        return rc;
    if (*top == 0)
        return SL_ABI_E_EMPTY;
    if (*top < SL_ABI_HDR_SIZE + SL_ABI_FOOTER_SIZE)
        return SL_ABI_E_TRUNCATED;
    size_t foot = SL_ABI_STACK_HDR + *top - SL_ABI_FOOTER_SIZE;
    uint64_t size = sl_get_le(buf + foot, 4);
    if (sl_get_le(buf + foot + FOOTER_RESERVED_OFF, 4) != 0)
        return SL_ABI_E_MALFORMED;
    if (size < SL_ABI_HDR_SIZE || size > (uint64_t)(*top - SL_ABI_FOOTER_SIZE))
        return SL_ABI_E_TRUNCATED;
    *start = foot - (size_t)size;
    size_t fsize;
    if ((rc = decode_frame(buf + *start, (size_t)size, m, &fsize)))
        return rc;
    /* The frame must fill exactly the space the footer claims. */
    return fsize == size ? 0 : SL_ABI_E_MALFORMED;
}

int sl_abi_push(uint8_t *buf, size_t cap, const sl_msg *m)
{
    size_t top, n;
    int rc = stack_top(buf, cap, &top);
    if (rc)
        return rc;
    size_t avail = cap - SL_ABI_STACK_HDR - top;
    if (avail < SL_ABI_FOOTER_SIZE)
        return SL_ABI_E_SPACE;
    uint8_t *at = buf + SL_ABI_STACK_HDR + top;
    if ((rc = sl_abi_encode(m, at, avail - SL_ABI_FOOTER_SIZE, &n)))
        return rc;
    sl_put_le(at + n, n, 4);
    sl_put_le(at + n + FOOTER_RESERVED_OFF, 0, 4);
    /* top last: the message is complete before it becomes visible. */
    sl_put_le(buf, (uint64_t)top + n + SL_ABI_FOOTER_SIZE, 8);
    return 0;
}

int sl_abi_peek(const uint8_t *buf, size_t cap, sl_msg *m)
{
    size_t top, start;
    if (!m)
        return SL_ABI_E_MALFORMED;
    return stack_locate(buf, cap, &top, &start, m);
}

int sl_abi_pop(uint8_t *buf, size_t cap)
{
    size_t top, start;
    sl_msg m;
    int rc = stack_locate(buf, cap, &top, &start, &m);
    if (rc)
        return rc;
    sl_put_le(buf, (uint64_t)(start - SL_ABI_STACK_HDR), 8);
    return 0;
}

void sl_abi_reset(uint8_t *buf, size_t cap)
{
    if (buf && cap >= SL_ABI_STACK_HDR)
        sl_put_le(buf, 0, 8);
}

int sl_abi_replace(uint8_t *buf, size_t cap, const sl_msg *m)
{
    if (!buf)
        return SL_ABI_E_SPACE;
    sl_abi_reset(buf, cap);
    return sl_abi_push(buf, cap, m);
}

void sl_msg_init(sl_msg *m, uint16_t kind)
{
    __builtin_memset(m, 0, sizeof *m);
    m->kind = kind;
}
