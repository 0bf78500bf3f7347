/* sl_host_signature: the host's registry of host functions (reserved host
 * function "sl.host_signatures", ABI 2.1), searched for one name. */
#include "guest.h"

int sl_host_signature(const char *name, uint8_t *ret_type, unsigned *nparams, uint8_t *params)
{
    if (!name || !ret_type || !nparams || !params)
        return SL_ABI_ETYPE;
    size_t nlen = strlen(name);
    sl_gvalue blob;
    memset(&blob, 0, sizeof blob);
    int rc = sl_call_host(SL_ABI_HOST_SIGNATURES_FN, SL_T_BYTES, 0, NULL, &blob);
    if (rc != SL_ABI_OK)
        return rc;
    /* The host's bytes are checked whole before any entry is used. */
    const uint8_t *buf = (const uint8_t *)blob.v.s.ptr;
    uint32_t count;
    size_t pos;
    rc = sl_abi_sig_open(buf, blob.v.s.len, &count, &pos) < 0 ? SL_ABI_EMALFORMED : SL_ABI_ENOTFOUND;
    sl_abi_sig s;
    while (rc == SL_ABI_ENOTFOUND && sl_abi_sig_next(buf, blob.v.s.len, &pos, &s) == 0) {
        if (s.name_len != nlen || memcmp(s.name, name, nlen) != 0)
            continue;
        *ret_type = s.ret;
        *nparams = s.nparams;
        memcpy(params, s.params, s.nparams);
        rc = SL_ABI_OK;
    }
    sl_gvalue_free(&blob);
    return rc;
}
