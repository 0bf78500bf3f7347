/* The lua_plugin guest: Lua 5.4 (Debian's lua5.4 source, unmodified) as a
 * plugin host in the function model, built for x86-64 (lua_plugin) and i686
 * (lua_plugin32). docs/lua-plugin.md is the user's guide:
 *   Load(string chunk) -> void       runs a plugin library (before a snapshot)
 *   Eval(string code) -> string      what it printed, then its return values
 *   Call(string fname, string json_args) -> string json_result
 * The Lua side is plugin.c (no sandlet in it); this file registers it, and
 * host.c gives Lua the host's functions as host.NAME(...). A Lua error of any
 * kind fails the call with SL_ABI_EABORT and Lua's message plus a
 * traceback; the sandbox stays usable. */
#include <sandlet_guest.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "plugin.h"

static lua_State *L;

/* Results and messages are heap copies (plugin.h); the runtime frees them
 * once they are in the output buffer (owned). */
static int reply(sl_gvalue *ret, int status, char *res, size_t len, char *err)
{
    if (status != LUA_OK) {
        int rc = sl_fail(ret, SL_ABI_EABORT, err ? err : "not enough memory");
        ret->owned = err != NULL;
        return rc;
    }
    if (!res)
        return SL_ABI_OK; /* Load: void */
    if (len > UINT32_MAX) {
        free(res);
        return sl_fail(ret, SL_ABI_ENOMEM, "result larger than 4 GiB");
    }
    sl_ret_str(ret, res, (uint32_t)len);
    ret->owned = 1;
    return SL_ABI_OK;
}

static int load(const sl_gvalue *a, sl_gvalue *ret)
{
    char *err;
    int st = lp_load(L, a[0].v.s.ptr, a[0].v.s.len, &err);
    return reply(ret, st, NULL, 0, err);
}

static int eval(const sl_gvalue *a, sl_gvalue *ret)
{
    char *res, *err;
    size_t len;
    int st = lp_eval(L, a[0].v.s.ptr, a[0].v.s.len, &res, &len, &err);
    return reply(ret, st, res, len, err);
}

static int call(const sl_gvalue *a, sl_gvalue *ret)
{
    char *res, *err;
    size_t len;
    /* lp_call takes the name as a C string: "f\0x" would call f. */
    if (strlen(a[0].v.s.ptr) != a[0].v.s.len)
        return sl_fail(ret, SL_ABI_EABORT, "Call: the function name contains a NUL byte");
    int st = lp_call(L, a[0].v.s.ptr, a[1].v.s.ptr, a[1].v.s.len, &res, &len, &err);
    return reply(ret, st, res, len, err);
}

void sandlet_main(void)
{
    static const uint8_t s1[] = {SL_T_STRING}, s2[] = {SL_T_STRING, SL_T_STRING};
    /* No limit of its own: when scratch runs out, mmap fails, malloc returns
     * NULL and Lua raises "not enough memory" (docs/guest-runtime.md, mmap). */
    L = lp_new();
    if (!L)
        sl_abort(SL_ABI_ENOMEM, "lua_plugin: cannot create a Lua state");
    lua_pushcfunction(L, lph_install);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK)
        sl_abort(SL_ABI_ENOMEM, "lua_plugin: cannot create the host table");
    lua_settop(L, 0);
    if (sl_register("Load", SL_T_VOID, 1, s1, load) || sl_register("Eval", SL_T_STRING, 1, s1, eval) ||
        sl_register("Call", SL_T_STRING, 2, s2, call))
        sl_abort(1, "lua_plugin: registration failed");
}
