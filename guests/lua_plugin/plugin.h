/* The Lua plugin runtime of the lua_plugin guest, on the Lua 5.4 C API alone:
 * nothing here knows sandlet, so the same file runs inside the guest
 * (guests/lua_plugin/main.c registers it) and natively, e.g. to compare a
 * warm native lua_State with the guest:
 *
 *     cc -std=c11 -O2 $(pkg-config --cflags lua5.4) app.c plugin.c json.c $(pkg-config --libs lua5.4) -lm
 *
 * A plugin is one Lua state that lives across requests. Three requests:
 *   lp_load  runs a chunk (a plugin library: it defines global functions);
 *   lp_eval  runs code as the `lua` REPL does and returns what it printed
 *            plus its return values;
 *   lp_call  calls a global function with arguments decoded from a JSON array
 *            and returns its results encoded as JSON (mapping below).
 * docs/lua-plugin.md describes them for users of the guest.
 *
 * Every request runs under lua_pcall with a message handler that appends
 * luaL_traceback, so a Lua error of any kind (syntax, runtime, error() with
 * any value, a JSON error, out of memory) is a status and a message, never a
 * longjmp out of here, and the state stays usable. What a request leaves
 * behind (globals, package.loaded, metatables) stays in the state: the guest
 * restores a snapshot between requests to forget it. Only debug hooks are
 * cleared at the start of every request.
 *
 * The state has every standard library, plus:
 *   json      json.encode(v), json.decode(s), json.null, json.array([t]),
 *             json.object([t]) (mark t, or a new table, and return it);
 *   print     during lp_eval appends to the request's result; otherwise it
 *             writes to stdout like Lua's own print;
 *   load, loadfile, dofile  refuse binary chunks (crafted bytecode can
 *             corrupt the state), with nothing of the originals reachable;
 *   os.exit   raises an error instead of ending the process.
 * Natively nothing else is restricted: io and os reach the host's files.
 *
 * Not thread-safe: one thread at a time per state; separate states are
 * independent.
 *
 * JSON -> Lua (strict RFC 8259):
 *   object        table with string keys (a repeated key keeps the last
 *                 value), marked with the json.object metatable
 *   array         table 1..n, marked with the json.array metatable
 *   string        Lua string (UTF-8; \u escapes and surrogate pairs decoded)
 *   number        integer when written without fraction or exponent and it
 *                 fits 64 bits (-0 is 0), float otherwise
 *   true, false   booleans
 *   null          json.null (a light userdata) inside arrays and objects and
 *                 from json.decode; nil as a top-level lp_call argument
 * Refused with a Lua error "JSON: ... at byte N": anything RFC 8259 does not
 * allow (trailing commas, comments, single quotes, NaN, leading zeros,
 * unescaped control characters, text after the value), invalid UTF-8
 * (overlong forms, surrogates, > U+10FFFF, cut sequences), unpaired
 * surrogate escapes, numbers beyond a double's range, number tokens over
 * LP_JSON_MAX_NUMBER bytes, nesting deeper than LP_JSON_MAX_DEPTH.
 *
 * Lua -> JSON, compact, object keys sorted by bytes:
 *   nil, json.null          null
 *   boolean                 true / false
 *   integer                 decimal
 *   float                   the shortest form that reads back as the same
 *                           double, always with a '.' or an exponent (1.0 ->
 *                           "1.0"), so integer/float survives a round trip
 *   string                  a JSON string: control characters, '"' and '\'
 *                           escaped, the rest as is (it must be UTF-8)
 *   table with keys 1..n    array (raw access: no metamethods run)
 *   table with string keys  object
 *   empty table             [] unless marked with json.object
 * Refused with a Lua error "JSON: ...": NaN and infinities, strings that are
 * not UTF-8, tables that contain themselves, tables with other keys
 * (booleans, non-integral floats, tables, integer keys that are not exactly
 * 1..n, integer keys mixed with string keys), functions, userdata other than
 * json.null, threads, nesting deeper than LP_JSON_MAX_DEPTH. */
#ifndef LUA_PLUGIN_PLUGIN_H
#define LUA_PLUGIN_PLUGIN_H

#include <stddef.h>

#include "lua.h"

#define LP_JSON_MAX_DEPTH 200  /* nested arrays and objects, both ways */
#define LP_JSON_MAX_NUMBER 400 /* bytes in one number token */

/* A new plugin state, or NULL when out of memory. Close it with lp_close
 * (lua_close would leak the allocator's bookkeeping). */
lua_State *lp_new(void);
/* Closes the state (its finalizers run) and frees everything. NULL is fine. */
void lp_close(lua_State *L);

/* The most bytes Lua may hold at once from now on (0, the default: no limit
 * but malloc's). Past it allocations fail and Lua raises "not enough
 * memory". lp_memory: the bytes it holds now. */
void lp_set_limit(lua_State *L, size_t bytes);
size_t lp_memory(lua_State *L);

/* Requests. Each returns lua_pcall's status: LUA_OK (0), LUA_ERRRUN (a
 * syntax or runtime error, error() with any value, a JSON error),
 * LUA_ERRMEM ("not enough memory") or LUA_ERRERR (an error while handling
 * an error). On success *res (where the request has a result) receives a
 * malloc'ed, NUL-terminated copy of it and *reslen its length (it may
 * contain NUL bytes), and *err is NULL. On failure *res is NULL and *err a
 * malloc'ed message: Lua's message, then "\nstack traceback:\n..." (no
 * traceback for LUA_ERRMEM and LUA_ERRERR, which get no handler); *err is
 * NULL only when even that copy could not be made (status LUA_ERRMEM). The
 * caller frees both. Inputs are (pointer, length) and need no terminating
 * NUL, except fname. */

/* Runs `chunk` (text only, chunk name "=Load": messages read "Load:LINE:").
 * Its return values are dropped. */
int lp_load(lua_State *L, const char *chunk, size_t len, char **err);

/* Runs `code` as an expression (`return <code>`) if it compiles as one,
 * else as a chunk (chunk name "=Eval"). The result is everything print()
 * wrote during the request (each call one line: its arguments through
 * tostring, separated by tabs, then "\n") followed by the return values
 * through tostring, separated by tabs, with no newline after them. So
 * "1 + 1" gives "2", "print('a') return 1, 2" gives "a\n1\t2", and "x = 1"
 * gives "". */
int lp_eval(lua_State *L, const char *code, size_t len, char **res, size_t *reslen, char **err);

/* Calls the global function `fname` (looked up raw in the globals table: a
 * metatable on _G is not consulted) with the elements of the JSON array
 * json[0..len) as arguments (an empty or all-blank text means no arguments;
 * a top-level null is nil), and returns its results as JSON: no result ->
 * "null", one -> that value, several -> an array of them. */
int lp_call(lua_State *L, const char *fname, const char *json, size_t len, char **res, size_t *reslen,
            char **err);

/* The codec on its own (raises Lua errors: call from protected code). */
/* Pushes the `json` table described above. */
void lp_json_open(lua_State *L);
/* Pushes the value the JSON text s[0..len) holds. */
void lp_json_decode(lua_State *L, const char *s, size_t len);
/* Pushes the JSON text of the value at idx. */
void lp_json_encode(lua_State *L, int idx);

#endif
