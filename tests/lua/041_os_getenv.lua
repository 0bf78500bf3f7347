-- The environment: the harness runs every script with exactly TZ=UTC, LANG=C
-- and SANDLET_LUA_VAR="sandlet lua corpus" (plus PATH, which is not read here).
print(os.getenv("SANDLET_LUA_VAR"))
print(os.getenv("TZ"), os.getenv("LANG"))
print(os.getenv("SANDLET_LUA_UNSET_VARIABLE"), os.getenv(""))
print(pcall(os.getenv))
print(type(os.getenv("SANDLET_LUA_VAR")), #os.getenv("SANDLET_LUA_VAR"))
local words = {}
for w in os.getenv("SANDLET_LUA_VAR"):gmatch("%S+") do words[#words + 1] = w:upper() end
print(table.concat(words, "_"))
-- other os functions a sandboxed script may call without touching files
print(type(os.tmpname), type(os.remove), type(os.rename), type(os.execute))
