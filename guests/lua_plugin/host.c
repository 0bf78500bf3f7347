/* host.NAME(...) (host.h). The signature comes from the host at every call
 * (sl_host_signature): a sandbox restored from a snapshot, possibly in
 * another process, may have other host functions than the one that took
 * it, so nothing about them is kept in the Lua state. */
#include <sandlet_guest.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "host.h"
#include "lauxlib.h"

static const char *type_name(uint8_t t)
{
    static const char *const names[] = {"void", "i32", "u32", "i64", "u64", "f32", "f64", "string", "bool", "bytes"};
    return t < sizeof names / sizeof names[0] ? names[t] : "?";
}

static int bad_arg(lua_State *L, const char *name, int i, uint8_t t, const char *why)
{
    return luaL_error(L, "host.%s: argument %d must be %s (%s), got %s", name, i, why, type_name(t),
                      luaL_typename(L, i));
}

static int out_of_range(lua_State *L, const char *name, int i, uint8_t t)
{
    return luaL_error(L, "host.%s: argument %d out of range for %s", name, i, type_name(t));
}

/* Argument i (a stack index) as parameter type t. Strings point into the
 * Lua strings on the stack, which outlive the host call. */
static void to_param(lua_State *L, const char *name, int i, uint8_t t, sl_gvalue *v)
{
    memset(v, 0, sizeof *v);
    v->type = t;
    switch (t) {
    case SL_T_I32:
    case SL_T_U32:
    case SL_T_I64:
    case SL_T_U64: {
        int isint = 0;
        lua_Integer x = lua_type(L, i) == LUA_TNUMBER ? lua_tointegerx(L, i, &isint) : 0;
        if (!isint && t == SL_T_U64 && lua_type(L, i) == LUA_TNUMBER) {
            /* Lua integers stop at 2^63 - 1; u64 values above it come as
             * integral floats. */
            lua_Number f = lua_tonumber(L, i);
            if (f >= 0x1p63 && f < 0x1p64 && f == floor(f)) {
                v->v.u64 = (uint64_t)f;
                return;
            }
        }
        if (!isint)
            bad_arg(L, name, i, t, "an integer");
        if ((t == SL_T_I32 && (x < INT32_MIN || x > INT32_MAX)) || (t == SL_T_U32 && (x < 0 || x > UINT32_MAX)) ||
            (t == SL_T_U64 && x < 0))
            out_of_range(L, name, i, t);
        if (t == SL_T_I32)
            v->v.i32 = (int32_t)x;
        else if (t == SL_T_U32)
            v->v.u32 = (uint32_t)x;
        else if (t == SL_T_I64)
            v->v.i64 = (int64_t)x;
        else
            v->v.u64 = (uint64_t)x;
        return;
    }
    case SL_T_F32:
    case SL_T_F64:
        if (lua_type(L, i) != LUA_TNUMBER)
            bad_arg(L, name, i, t, "a number");
        if (t == SL_T_F32)
            v->v.f32 = (float)lua_tonumber(L, i);
        else
            v->v.f64 = (double)lua_tonumber(L, i);
        return;
    case SL_T_STRING:
    case SL_T_BYTES: {
        if (lua_type(L, i) != LUA_TSTRING)
            bad_arg(L, name, i, t, "a string");
        size_t n;
        v->v.s.ptr = lua_tolstring(L, i, &n);
        if (n > UINT32_MAX)
            out_of_range(L, name, i, t);
        v->v.s.len = (uint32_t)n;
        return;
    }
    case SL_T_BOOL:
        if (lua_type(L, i) != LUA_TBOOLEAN)
            bad_arg(L, name, i, t, "a boolean");
        v->v.b = lua_toboolean(L, i);
        return;
    default: luaL_error(L, "host.%s: parameter %d has an unknown type (%d)", name, i, (int)t);
    }
}

static int push_bytes(lua_State *L)
{
    const sl_gvalue *v = lua_touserdata(L, 1);
    lua_pushlstring(L, v->v.s.ptr, v->v.s.len);
    return 1;
}

/* Pushes the host's result (nothing for void) and releases it. */
static int push_result(lua_State *L, sl_gvalue *r)
{
    switch (r->type) {
    case SL_T_VOID: return 0;
    case SL_T_I32: lua_pushinteger(L, r->v.i32); return 1;
    case SL_T_U32: lua_pushinteger(L, (lua_Integer)r->v.u32); return 1;
    case SL_T_I64: lua_pushinteger(L, (lua_Integer)r->v.i64); return 1;
    case SL_T_U64:
        if (r->v.u64 <= (uint64_t)INT64_MAX)
            lua_pushinteger(L, (lua_Integer)r->v.u64);
        else
            lua_pushnumber(L, (lua_Number)r->v.u64);
        return 1;
    case SL_T_F32: lua_pushnumber(L, (lua_Number)r->v.f32); return 1;
    case SL_T_F64: lua_pushnumber(L, (lua_Number)r->v.f64); return 1;
    case SL_T_BOOL: lua_pushboolean(L, r->v.b); return 1;
    case SL_T_STRING:
    case SL_T_BYTES: {
        /* Protected, so that the heap copy is freed even when Lua runs out
         * of memory for the string. */
        lua_pushcfunction(L, push_bytes);
        lua_pushlightuserdata(L, r);
        int st = lua_pcall(L, 1, 1, 0);
        sl_gvalue_free(r);
        if (st != LUA_OK)
            lua_error(L);
        return 1;
    }
    default: return 0;
    }
}

static int call(lua_State *L)
{
    size_t len;
    const char *name = lua_tolstring(L, lua_upvalueindex(1), &len);
    if (len == 0 || len > SL_ABI_MAX_NAME || strlen(name) != len)
        return luaL_error(L, "host: invalid host function name");
    uint8_t ret, params[SL_ABI_MAX_VALUES];
    unsigned np;
    int st = sl_host_signature(name, &ret, &np, params);
    if (st == SL_ABI_ENOTFOUND)
        return luaL_error(L, "host.%s: the host has no function of that name", name);
    if (st != SL_ABI_OK)
        return luaL_error(L, "host.%s: cannot read the host's signatures (status %d): %s", name, st,
                          sl_host_error());
    int nargs = lua_gettop(L);
    if ((unsigned)nargs != np)
        return luaL_error(L, "host.%s: expected %d argument%s, got %d", name, (int)np, np == 1 ? "" : "s", nargs);
    sl_gvalue args[SL_ABI_MAX_VALUES];
    for (int i = 0; i < nargs; i++)
        to_param(L, name, i + 1, params[i], &args[i]);
    sl_gvalue r;
    memset(&r, 0, sizeof r);
    st = sl_call_host(name, ret, np, args, &r);
    if (st != SL_ABI_OK)
        return luaL_error(L, "host.%s: %s", name, sl_host_error());
    return push_result(L, &r);
}

static int index_host(lua_State *L)
{
    if (lua_type(L, 2) != LUA_TSTRING)
        return 0;
    lua_settop(L, 2);
    lua_pushcclosure(L, call, 1);
    return 1;
}

int lph_install(lua_State *L)
{
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, index_host);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_setglobal(L, "host");
    return 0;
}
