/* The Lua plugin runtime (plugin.h): one Lua state across requests, each
 * request a C function run under lua_pcall, so that nothing a request does
 * (an error, a memory failure, a __tostring that raises) escapes as a longjmp
 * through the caller. Call speaks JSON through json.c. With json.c, a native
 * program needs nothing else next to Debian's liblua5.4. */
#include "plugin.h"
#include "json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lauxlib.h"
#include "lualib.h"

/* Registry field: the table of lines print() has written during the
 * current lp_eval, or false outside one (print writes to stdout then). */
#define CAPTURE_KEY "lua_plugin.capture"
/* Error tables are described by their JSON text up to this many bytes. */
#define ERROR_JSON_MAX 1000u

/* ==================================================================== state */

typedef struct lp_mem {
    size_t used, limit;
} lp_mem;

/* Lua's allocator contract: osize is the block's size when ptr is not NULL;
 * returning NULL for a growth makes Lua collect garbage, retry, and raise
 * "not enough memory". Shrinking and freeing never fail. */
static void *alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    lp_mem *m = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        m->used -= old;
        return NULL;
    }
    if (m->limit && nsize > old && nsize - old > m->limit - m->used)
        return NULL;
    void *q = realloc(ptr, nsize);
    if (q)
        m->used = m->used - old + nsize;
    return q;
}

/* The bookkeeping of a state made by lp_new, or NULL for any other. */
static lp_mem *mem_of(lua_State *L)
{
    void *ud;
    return L && lua_getallocf(L, &ud) == alloc ? ud : NULL;
}

static int panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "lua_plugin: unprotected Lua error (%s)\n", msg ? msg : "not a string");
    return 0; /* Lua aborts */
}

static int print_line(lua_State *L)
{
    int n = lua_gettop(L);
    lua_getfield(L, LUA_REGISTRYINDEX, CAPTURE_KEY);
    if (lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 1);
        for (int i = 1; i <= n; i++) {
            size_t len;
            const char *s = luaL_tolstring(L, i, &len);
            if (i > 1)
                fwrite("\t", 1, 1, stdout);
            fwrite(s, 1, len, stdout);
            lua_pop(L, 1);
        }
        fwrite("\n", 1, 1, stdout);
        fflush(stdout);
        return 0;
    }
    int lines = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_addchar(&b, '\n');
    luaL_pushresult(&b);
    lua_rawseti(L, lines, (lua_Integer)lua_rawlen(L, lines) + 1);
    return 0;
}

/* load, loadfile and dofile without binary chunks: crafted bytecode can
 * corrupt the state (it reads and writes memory at will). They are written
 * here on lua_load rather than as wrappers around the base library's
 * functions, because Lua code can reach whatever a wrapper holds or calls:
 * debug.getupvalue(load, 1) returns a wrapper's upvalue, and a reader
 * function running inside the original load finds it with
 * debug.getinfo(2, "f"). The mode argument is checked but ignored: the mode
 * is always "t". */

/* Stack slot where load_reader keeps the last piece alive. */
#define READER_SLOT 5

static const char *load_reader(lua_State *L, void *ud, size_t *size)
{
    (void)ud;
    luaL_checkstack(L, 2, "too many nested functions");
    lua_pushvalue(L, 1);
    lua_call(L, 0, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        *size = 0;
        return NULL;
    }
    if (!lua_isstring(L, -1))
        luaL_error(L, "reader function must return a string");
    lua_replace(L, READER_SLOT);
    return lua_tolstring(L, READER_SLOT, size);
}

/* load's and loadfile's results: the function (its first upvalue, _ENV,
 * set to the value at env when env is not 0), or fail and the message. */
static int loaded(lua_State *L, int status, int env)
{
    if (status != LUA_OK) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    if (env) {
        lua_pushvalue(L, env);
        if (!lua_setupvalue(L, -2, 1))
            lua_pop(L, 1);
    }
    return 1;
}

static int load_text(lua_State *L)
{
    int env = lua_isnone(L, 4) ? 0 : 4;
    luaL_optstring(L, 3, "t");
    int status;
    if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER) {
        size_t len;
        const char *s = lua_tolstring(L, 1, &len);
        status = luaL_loadbufferx(L, s, len, luaL_optstring(L, 2, s), "t");
    } else {
        const char *name = luaL_optstring(L, 2, "=(load)");
        luaL_checktype(L, 1, LUA_TFUNCTION);
        lua_settop(L, READER_SLOT);
        status = lua_load(L, load_reader, NULL, name, "t");
    }
    return loaded(L, status, env);
}

static int loadfile_text(lua_State *L)
{
    const char *name = luaL_optstring(L, 1, NULL);
    int env = lua_isnone(L, 3) ? 0 : 3;
    luaL_optstring(L, 2, "t");
    return loaded(L, luaL_loadfilex(L, name, "t"), env);
}

static int dofile_done(lua_State *L, int status, lua_KContext ctx)
{
    (void)status, (void)ctx;
    return lua_gettop(L) - 1;
}

static int dofile_text(lua_State *L)
{
    const char *name = luaL_optstring(L, 1, NULL);
    lua_settop(L, 1);
    if (luaL_loadfilex(L, name, "t") != LUA_OK)
        return lua_error(L);
    lua_callk(L, 0, LUA_MULTRET, 0, dofile_done);
    return dofile_done(L, LUA_OK, 0);
}

static int no_exit(lua_State *L)
{
    return luaL_error(L, "os.exit is not available in a plugin");
}

static int setup(lua_State *L)
{
    luaL_openlibs(L);
    lp_json_open(L);
    lua_setglobal(L, "json");
    lua_pushcfunction(L, print_line);
    lua_setglobal(L, "print");
    lua_pushcfunction(L, load_text);
    lua_setglobal(L, "load");
    lua_pushcfunction(L, loadfile_text);
    lua_setglobal(L, "loadfile");
    lua_pushcfunction(L, dofile_text);
    lua_setglobal(L, "dofile");
    lua_getglobal(L, "os");
    lua_pushcfunction(L, no_exit);
    lua_setfield(L, -2, "exit");
    lua_pop(L, 1);
    lua_pushboolean(L, 0);
    lua_setfield(L, LUA_REGISTRYINDEX, CAPTURE_KEY);
    return 0;
}

lua_State *lp_new(void)
{
    lp_mem *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    lua_State *L = lua_newstate(alloc, m);
    if (!L) {
        free(m);
        return NULL;
    }
    lua_atpanic(L, panic);
    lua_pushcfunction(L, setup);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        lua_close(L);
        free(m);
        return NULL;
    }
    return L;
}

void lp_close(lua_State *L)
{
    if (!L)
        return;
    lp_mem *m = mem_of(L);
    lua_close(L);
    free(m);
}

void lp_set_limit(lua_State *L, size_t bytes)
{
    lp_mem *m = mem_of(L);
    if (m)
        m->limit = bytes;
}

size_t lp_memory(lua_State *L)
{
    lp_mem *m = mem_of(L);
    return m ? m->used : 0;
}

/* ================================================================= requests */

typedef struct req {
    const char *a, *b;
    size_t alen, blen;
} req;

static int encode_arg(lua_State *L)
{
    lp_json_encode(L, 1);
    return 1;
}

/* Turns a table error object into text: its JSON, when it has one. */
static const char *describe_table(lua_State *L)
{
    lua_pushcfunction(L, encode_arg);
    lua_pushvalue(L, 1);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_pop(L, 1);
        return lua_pushliteral(L, "(error object is a table value)");
    }
    size_t n;
    const char *json = lua_tolstring(L, -1, &n);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "(error object is a table value: ");
    luaL_addlstring(&b, json, n > ERROR_JSON_MAX ? ERROR_JSON_MAX : n);
    luaL_addstring(&b, n > ERROR_JSON_MAX ? "...)" : ")");
    luaL_pushresult(&b);
    return lua_tostring(L, -1);
}

/* The message handler: Lua's message (as lua.c makes it for non-strings)
 * and the traceback of the stack where the error happened. */
static int msgh(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else if (lua_type(L, 1) == LUA_TTABLE)
            msg = describe_table(L);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static void capture(lua_State *L, int on)
{
    if (on)
        lua_newtable(L);
    else
        lua_pushboolean(L, 0);
    lua_setfield(L, LUA_REGISTRYINDEX, CAPTURE_KEY);
}

/* luaL_loadbufferx in text mode with the chunk's error raised. */
static void compile(lua_State *L, const char *code, size_t len, const char *name)
{
    if (luaL_loadbufferx(L, code, len, name, "t") != LUA_OK)
        lua_error(L);
}

static int load_body(lua_State *L)
{
    const req *r = lua_touserdata(L, 1);
    capture(L, 0);
    compile(L, r->a, r->alen, "=Load");
    lua_call(L, 0, 0);
    lua_pushliteral(L, "");
    return 1;
}

static int eval_body(lua_State *L)
{
    const req *r = lua_touserdata(L, 1);
    capture(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, CAPTURE_KEY);
    int lines = lua_gettop(L);
    /* An expression first, as the lua REPL does; a chunk otherwise. */
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "return ");
    luaL_addlstring(&b, r->a, r->alen);
    luaL_pushresult(&b);
    size_t elen;
    const char *expr = lua_tolstring(L, -1, &elen);
    if (luaL_loadbufferx(L, expr, elen, "=Eval", "t") == LUA_OK) {
        lua_remove(L, -2);
    } else {
        lua_settop(L, lines);
        compile(L, r->a, r->alen, "=Eval");
    }
    lua_call(L, 0, LUA_MULTRET);
    int nres = lua_gettop(L) - lines;

    luaL_Buffer out;
    luaL_buffinit(L, &out);
    lua_Integer nlines = (lua_Integer)lua_rawlen(L, lines);
    for (lua_Integer i = 1; i <= nlines; i++) {
        lua_rawgeti(L, lines, i);
        luaL_addvalue(&out);
    }
    for (int i = 1; i <= nres; i++) {
        if (i > 1)
            luaL_addchar(&out, '\t');
        luaL_tolstring(L, lines + i, NULL);
        luaL_addvalue(&out);
    }
    luaL_pushresult(&out);
    capture(L, 0);
    return 1;
}

static int call_body(lua_State *L)
{
    const req *r = lua_touserdata(L, 1);
    capture(L, 0);
    lua_pushlstring(L, r->a, r->alen);
    int name = lua_gettop(L);
    if (lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS) != LUA_TTABLE)
        return luaL_error(L, "Call: the registry's globals table was replaced");
    lua_pushvalue(L, name);
    int t = lua_rawget(L, -2);
    lua_remove(L, -2);
    if (t == LUA_TNIL)
        return luaL_error(L, "Call: no global function '%s'", lua_tostring(L, name));
    if (t != LUA_TFUNCTION) {
        if (!luaL_getmetafield(L, -1, "__call"))
            return luaL_error(L, "Call: global '%s' is a %s, not a function", lua_tostring(L, name),
                              lua_typename(L, t));
        lua_pop(L, 1);
    }
    int fn = lua_gettop(L);
    int nargs = lp_json_decode_args(L, r->b, r->blen);
    lua_call(L, nargs, LUA_MULTRET);
    lp_json_encode_values(L, fn, lua_gettop(L) - fn + 1);
    return 1;
}

/* Runs body under lua_pcall with the message handler and hands out a heap
 * copy of its result or error, leaving the stack empty. */
static int run(lua_State *L, lua_CFunction body, const req *r, char **res, size_t *reslen, char **err)
{
    if (res)
        *res = NULL;
    if (reslen)
        *reslen = 0;
    *err = NULL;
    lua_settop(L, 0);
    /* A hook left by an earlier request would run inside this one. */
    lua_sethook(L, NULL, 0, 0);
    lua_pushcfunction(L, msgh);
    lua_pushcfunction(L, body);
    lua_pushlightuserdata(L, (void *)r);
    int status = lua_pcall(L, 1, 1, 1);
    if (status == LUA_OK && !res) {
        lua_settop(L, 0);
        return status;
    }
    size_t n;
    const char *s;
    if (lua_type(L, -1) == LUA_TSTRING) {
        s = lua_tolstring(L, -1, &n);
    } else {
        s = status == LUA_OK ? "" : "(error object is not a string)";
        n = strlen(s);
    }
    char *copy = malloc(n + 1);
    if (copy) {
        memcpy(copy, s, n);
        copy[n] = 0;
    }
    lua_settop(L, 0);
    if (!copy)
        return LUA_ERRMEM;
    if (status == LUA_OK) {
        *res = copy;
        *reslen = n;
    } else {
        *err = copy;
    }
    return status;
}

int lp_load(lua_State *L, const char *chunk, size_t len, char **err)
{
    req r = {chunk, NULL, len, 0};
    return run(L, load_body, &r, NULL, NULL, err);
}

int lp_eval(lua_State *L, const char *code, size_t len, char **res, size_t *reslen, char **err)
{
    req r = {code, NULL, len, 0};
    return run(L, eval_body, &r, res, reslen, err);
}

int lp_call(lua_State *L, const char *fname, const char *json, size_t len, char **res, size_t *reslen, char **err)
{
    req r = {fname, json, strlen(fname), len};
    return run(L, call_body, &r, res, reslen, err);
}
