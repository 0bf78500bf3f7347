-- os.exit(false, true) exits with EXIT_FAILURE (1) after closing the Lua
-- state: pending finalizers and to-be-closed variables run first, in order.
KEEP = setmetatable({}, { __gc = function() print("finalizer ran at close") end })
local r <close> = setmetatable({}, { __close = function() print("to-be-closed ran") end })
print("before exit")
os.exit(false, true)
