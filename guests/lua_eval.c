/* Lua 5.4 (Debian's lua5.4 source, unmodified) in the function model, built
 * for x86-64 (lua_eval) and i686 (lua_eval32):
 *   Eval(string code) -> string
 * runs `code` in one Lua state that lives across calls (so a snapshot keeps
 * it): first as an expression (`return <code>`), else as a chunk. The result
 * is the chunk's return values converted with tostring and joined by tabs;
 * print() writes to the guest's stdout as usual. A Lua error (syntax or
 * runtime) fails the call with Lua's message; the sandbox stays usable. */
#include <sandlet_guest.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lauxlib.h"
#include "lua.h"
#include "lualib.h"

static lua_State *L;
static char *result;   /* the last result; freed by the next call */
static char *errtext;  /* the last error message, likewise */

static char *dup_top(lua_State *l, size_t *len)
{
    const char *s = lua_tolstring(l, -1, len);
    char *p = malloc(*len + 1);
    if (p) {
        memcpy(p, s, *len);
        p[*len] = 0;
    }
    return p;
}

static int fail(sl_gvalue *ret)
{
    size_t len;
    free(errtext);
    errtext = lua_type(L, -1) == LUA_TSTRING ? dup_top(L, &len) : strdup("(error object is not a string)");
    lua_settop(L, 0);
    return sl_fail(ret, SL_ABI_EABORT, errtext ? errtext : "out of memory");
}

static int eval(const sl_gvalue *a, sl_gvalue *ret)
{
    const char *code = a[0].v.s.ptr;
    size_t n = a[0].v.s.len;
    lua_settop(L, 0);
    /* An expression first, as the lua REPL does; a chunk otherwise. */
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "return ");
    luaL_addlstring(&b, code, n);
    luaL_pushresult(&b);
    size_t elen;
    const char *expr = lua_tolstring(L, -1, &elen);
    if (luaL_loadbuffer(L, expr, elen, "=eval") != LUA_OK) {
        lua_settop(L, 0);
        if (luaL_loadbuffer(L, code, n, "=eval") != LUA_OK)
            return fail(ret);
    } else {
        lua_remove(L, 1); /* the expression text */
    }
    if (lua_pcall(L, 0, LUA_MULTRET, 0) != LUA_OK)
        return fail(ret);
    int nres = lua_gettop(L);
    luaL_buffinit(L, &b);
    for (int i = 1; i <= nres; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    size_t len;
    free(result);
    result = dup_top(L, &len);
    lua_settop(L, 0);
    if (!result)
        return sl_fail(ret, SL_ABI_ENOMEM, "out of memory");
    sl_ret_str(ret, result, (uint32_t)len);
    return SL_ABI_OK;
}

void sandlet_main(void)
{
    static const uint8_t s1[] = {SL_T_STRING};
    L = luaL_newstate();
    if (!L)
        sl_abort(SL_ABI_ENOMEM, "lua_eval: cannot create a Lua state");
    luaL_openlibs(L);
    if (sl_register("Eval", SL_T_STRING, 1, s1, eval))
        sl_abort(1, "lua_eval: registration failed");
}
