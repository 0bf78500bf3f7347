/* The sandbox's two function tables: the host functions the caller
 * registers (sl_sandbox_register) and the guest's exported functions, read
 * from the guest itself (SL_ABI_SIGNATURES_FN) after init and after a
 * restore to a snapshot of another guest. */
#include <stdlib.h>
#include <string.h>

#include "sandbox.h"

void sl_sb_free_funcs(sl_func *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(f[i].name);
    free(f);
}

const sl_func *sl_sb_find(const sl_func *f, size_t n, const uint8_t *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(f[i].name) == len && !memcmp(f[i].name, name, len))
            return &f[i];
    return NULL;
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
    if (sl_sb_find(sb->host, sb->n_host, (const uint8_t *)name, strlen(name)))
        return sl_err(&sb->err, SL_EINVAL, "host function '%s' registered twice", name);
    sl_func *h = realloc(sb->host, (sb->n_host + 1) * sizeof *h);
    if (!h)
        return sl_err(&sb->err, SL_ENOMEM, "out of memory");
    sb->host = h;
    sl_func *f = &h[sb->n_host];
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

void sl_sb_table_is_for(sl_sandbox *sb, const uint8_t hash[SL_HASH_LEN])
{
    memcpy(sb->sig_hash, hash, SL_HASH_LEN);
    sb->sig_hash_set = true;
}

/* The guest's registry (docs/abi.md, section 9) as a table; NULL with *err
 * set (SL_ENOMEM or SL_EABI) when it does not decode. */
static sl_func *decode_registry(const uint8_t *p, size_t len, size_t *n_out, int *err)
{
    size_t pos;
    uint32_t count;
    *err = SL_EABI;
    if (sl_abi_sig_open(p, len, &count, &pos) || count > 4096)
        return NULL;
    sl_func *fns = calloc(count ? count : 1, sizeof *fns);
    size_t n = 0;
    sl_abi_sig s;
    *err = SL_ENOMEM;
    while (fns && n < count && sl_abi_sig_next(p, len, &pos, &s) == 0) {
        fns[n].name = strndup((const char *)s.name, s.name_len);
        fns[n].ret = s.ret;
        fns[n].n = s.nparams;
        for (unsigned i = 0; i < s.nparams && i < SL_ABI_MAX_VALUES; i++)
            fns[n].params[i] = s.params[i];
        if (!fns[n].name) {
            sl_sb_free_funcs(fns, n);
            return NULL;
        }
        n++;
    }
    if (fns && n != count) {
        sl_sb_free_funcs(fns, n);
        *err = SL_EABI;
        return NULL;
    }
    *n_out = n;
    return fns;
}

int sl_sb_load_signatures(sl_sandbox *sb)
{
    sl_msg res;
    int rc = sl_sb_raw_call(sb, SL_ABI_SIGNATURES_FN, NULL, 0, &res);
    if (rc)
        return rc;
    if (res.status)
        return sl_sb_poison(sb, sl_sb_status_error(sb, &res));
    if (res.count != 1 || res.values[0].type != SL_T_BYTES)
        return sl_sb_poison(sb, sl_err(&sb->err, SL_EABI, "guest signature list is not bytes"));
    size_t n;
    sl_func *fns = decode_registry(res.values[0].v.buf.ptr, res.values[0].v.buf.len, &n, &rc);
    if (!fns && rc == SL_ENOMEM)
        return sl_err(&sb->err, SL_ENOMEM, "out of memory");
    if (!fns)
        return sl_sb_poison(sb, sl_err(&sb->err, SL_EABI, "malformed guest signature list"));
    sl_sb_free_funcs(sb->guest, sb->n_guest);
    sb->guest = fns;
    sb->n_guest = n;
    return 0;
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
    const sl_func *f = sl_sb_find(sb->guest, sb->n_guest, (const uint8_t *)name, strlen(name));
    return f ? (int)(f - sb->guest) : SL_ENOTFOUND;
}
