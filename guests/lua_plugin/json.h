/* The plugin's JSON codec between plugin.c and json.c; the public part
 * (lp_json_open, lp_json_decode, lp_json_encode) is in plugin.h. Both raise
 * Lua errors: call them from protected code. */
#ifndef LUA_PLUGIN_JSON_H
#define LUA_PLUGIN_JSON_H

#include <stddef.h>

#include "plugin.h"

/* Pushes the elements of the JSON array s[0..len) (blank text: none; a
 * top-level null element: nil) and returns how many. */
int lp_json_decode_args(lua_State *L, const char *s, size_t len);
/* Replaces the n values from stack index first on with their JSON text: none
 * -> "null", one -> that value, several -> an array of them. */
void lp_json_encode_values(lua_State *L, int first, int n);

#endif
