/* The `host` table of the lua_plugin guest: host.NAME(...) calls the host
 * function NAME that the host registered (sl_sandbox_register). */
#ifndef LUA_PLUGIN_HOST_H
#define LUA_PLUGIN_HOST_H

#include "lua.h"

/* A lua_CFunction: sets the global `host` (a table whose __index makes the
 * callers). Raises Lua errors, so run it under lua_pcall. */
int lph_install(lua_State *L);

#endif
