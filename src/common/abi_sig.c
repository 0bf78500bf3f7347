/* The signature registry of the wire format (abi.h, docs/abi.md): the
 * guest's table of functions and the host's, each entry a name, a return
 * type and parameter types. Freestanding, like abi.c. */
#include "abi.h"
#include "abi_wire.h"

static bool param_type_ok(uint8_t t)
{
    return t != SL_T_VOID && t <= SL_T_MAX;
}

int sl_abi_sig_init(uint8_t *buf, size_t cap, size_t *len)
{
    if (!buf || !len || cap < 4)
        return SL_ABI_E_SPACE;
    sl_put_le(buf, 0, 4);
    *len = 4;
    return 0;
}

int sl_abi_sig_add(uint8_t *buf, size_t cap, size_t *len, const sl_abi_sig *s)
{
    if (!buf || !len || !s || *len < 4 || *len > cap)
        return SL_ABI_E_MALFORMED;
    if (s->name_len > SL_ABI_MAX_NAME || s->nparams > SL_ABI_MAX_VALUES)
        return SL_ABI_E_LIMIT;
    if (s->ret > SL_T_MAX)
        return SL_ABI_E_TYPE;
    for (unsigned i = 0; i < s->nparams; i++)
        if (!param_type_ok(s->params[i]))
            return SL_ABI_E_TYPE;
    uint64_t count = sl_get_le(buf, 4);
    if (count == 0xffffffffu)
        return SL_ABI_E_LIMIT;
    struct wr w = {buf, cap, *len, 0};
    put_name(&w, s->name, s->name_len);
    put_le(&w, s->ret, 1);
    put_le(&w, s->nparams, 1);
    put_bytes(&w, s->params, s->nparams);
    if (w.err)
        return w.err; /* nothing committed: count and *len unchanged */
    sl_put_le(buf, count + 1, 4);
    *len = w.pos;
    return 0;
}

int sl_abi_sig_encode(const sl_abi_sig *sigs, uint32_t n, uint8_t *buf, size_t cap, size_t *len)
{
    if (n && !sigs)
        return SL_ABI_E_MALFORMED;
    int rc = sl_abi_sig_init(buf, cap, len);
    for (uint32_t i = 0; i < n && !rc; i++)
        rc = sl_abi_sig_add(buf, cap, len, &sigs[i]);
    return rc;
}

static int sig_parse(struct rd *r, sl_abi_sig *s)
{
    uint64_t x;
    const uint8_t *types;
    int rc;
    if ((rc = get_name(r, &s->name, &s->name_len)))
        return rc;
    if ((rc = get_le(r, 1, &x)))
        return rc;
    if (x > SL_T_MAX)
        return SL_ABI_E_TYPE;
    s->ret = (uint8_t)x;
    if ((rc = get_le(r, 1, &x)))
        return rc;
    if (x > SL_ABI_MAX_VALUES)
        return SL_ABI_E_LIMIT;
    s->nparams = (uint8_t)x;
    if ((rc = get_span(r, x, &types)))
        return rc;
    for (unsigned i = 0; i < s->nparams; i++) {
        if (!param_type_ok(types[i]))
            return SL_ABI_E_TYPE;
        s->params[i] = types[i];
    }
    return 0;
}

int sl_abi_sig_open(const uint8_t *buf, size_t len, uint32_t *count, size_t *pos)
{
    if (!buf || !count || !pos)
        return SL_ABI_E_MALFORMED;
    struct rd r = {buf, len, 0};
    uint64_t n;
    sl_abi_sig s;
    int rc = get_le(&r, 4, &n);
    if (rc)
        return rc;
    /* Each entry takes >= 3 bytes, so a bogus huge count fails fast. */
    for (uint64_t i = 0; i < n; i++)
        if ((rc = sig_parse(&r, &s)))
            return rc;
    if (r.pos != len)
        return SL_ABI_E_MALFORMED;
    *count = (uint32_t)n;
    *pos = 4;
    return 0;
}

int sl_abi_sig_next(const uint8_t *buf, size_t len, size_t *pos, sl_abi_sig *s)
{
    if (!buf || !pos || !s || *pos < 4 || *pos > len)
        return SL_ABI_E_MALFORMED;
    if (*pos == len)
        return SL_ABI_E_EMPTY;
    struct rd r = {buf, len, *pos};
    int rc = sig_parse(&r, s);
    if (rc)
        return rc;
    *pos = r.pos;
    return 0;
}
