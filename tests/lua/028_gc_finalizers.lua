-- Garbage collection facts that do not depend on timing or addresses: __gc
-- finalizers counted after full collections, finalizer order (reverse order
-- of marking), resurrection, weak tables (__mode "k", "v", "kv") emptied by a
-- full collection, collectgarbage options and their results' types, and
-- switching between incremental and generational modes.
-- Objects are created inside functions that return, so that no stale stack
-- slot keeps them alive when the collector runs.
local finalized = 0
local order = {}
local function make(n, name)
  for i = 1, n do
    setmetatable({}, { __gc = function() finalized = finalized + 1 end })
  end
  if name then
    for i = 1, 3 do setmetatable({}, { __gc = function() order[#order + 1] = name .. i end }) end
  end
end
make(100)
collectgarbage()
collectgarbage()
print("finalized", finalized)
make(0, "obj")
collectgarbage()
print("order", table.concat(order, " "))

-- a __gc set after setmetatable does not mark the object for finalization
local late = 0
local function make_late()
  local mt = {}
  setmetatable({}, mt)
  mt.__gc = function() late = late + 1 end
end
make_late()
collectgarbage()
print("late __gc", late)

-- resurrection: the finalizer stores the object in a global table
local saved = {}
local function make_res()
  setmetatable({ tag = "phoenix" }, { __gc = function(o) saved[#saved + 1] = o end })
end
make_res()
collectgarbage()
print("resurrected", #saved, saved[1] and saved[1].tag)
saved = {}
collectgarbage()

-- weak tables
local weakk = setmetatable({}, { __mode = "k" })
local weakv = setmetatable({}, { __mode = "v" })
local strong = {}
local function fill()
  for i = 1, 10 do
    local key = {}
    weakk[key] = i
    weakv[i] = {}
    if i % 2 == 0 then strong[#strong + 1] = key; strong[#strong + 1] = weakv[i] end
  end
  weakv.str = "strings are values, never collected from weak tables"
  weakv.num = 42
end
fill()
collectgarbage()
local nk, nv = 0, 0
for _ in pairs(weakk) do nk = nk + 1 end
for _ in pairs(weakv) do nv = nv + 1 end
print("weak keys left", nk, "weak values left", nv, weakv.num)

-- ephemeron: a value referring to its own key does not keep the key alive
local eph = setmetatable({}, { __mode = "k" })
local function fill_eph()
  for i = 1, 5 do local k = {}; eph[k] = { k } end
end
fill_eph()
collectgarbage()
print("ephemerons left", next(eph) == nil)

-- collectgarbage options
print(type(collectgarbage("count")), math.type(collectgarbage("count")))
print(collectgarbage("isrunning"), collectgarbage("stop"), collectgarbage("isrunning"), collectgarbage("restart"), collectgarbage("isrunning"))
print(collectgarbage("step", 0) ~= nil, collectgarbage("collect"))
print(collectgarbage("generational"), collectgarbage("incremental"), collectgarbage("incremental"))
print(pcall(collectgarbage, "nosuchoption"))
-- memory is reclaimed after dropping a large structure
local function churn()
  local t = {}
  for i = 1, 50000 do t[i] = { i } end
  return collectgarbage("count")
end
local during = churn()
collectgarbage()
local after = collectgarbage("count")
print("reclaimed", during - after > 1000)

-- generational mode with finalizers
collectgarbage("generational")
finalized = 0
make(50)
collectgarbage()
print("generational finalized", finalized)
collectgarbage("incremental")
-- finalizers also run when lua.c closes the state at the end of the script
FOREVER = setmetatable({}, { __gc = function() print("finalizer at close") end })
print("end of script")
