-- @memlimit
-- Running out of memory. The harness runs this script with a memory limit
-- (natively `ulimit -v`, in the sandbox `sandlet run --memory`): the script
-- allocates 1 MiB strings until an allocation fails. The first time inside
-- pcall, which must return Lua's own "not enough memory" error and leave a
-- working interpreter once the strings are dropped; the second time uncaught,
-- so lua.c reports "lua: not enough memory" on stderr and exits with status 1.
-- How many strings fit depends on the limit and the allocator: never printed.
print("allocating")
local base = string.rep(string.rep("x", 1024), 1024) -- 1 MiB, built from 1 KiB copies
local function fill()
  local keep = {}
  while true do
    keep[#keep + 1] = base .. #keep -- a new 1 MiB string each time
  end
end
local ok, err = pcall(fill)
print("caught", ok, err)
collectgarbage()
collectgarbage()
local after = {}
for i = 1, 8 do after[i] = string.rep(tostring(i), 1 << 16) end
print("recovered", #table.concat(after))
after = nil
collectgarbage()
print("allocating again, uncaught")
fill()
print("not reached")
