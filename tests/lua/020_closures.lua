-- Closures and upvalues: counters with private state, upvalues shared between
-- closures, a fresh local per loop iteration, closures outliving their
-- scope, recursion through local functions, memoisation, function composition.
local function counter(start)
  local n = start
  return function() n = n + 1; return n end, function() return n end
end
local inc, get = counter(10)
inc(); inc()
local inc2 = counter(100)
inc2()
print(get(), inc(), inc2())

local fns = {}
for i = 1, 5 do fns[i] = function() return i * i end end
local r = {}
for _, f in ipairs(fns) do r[#r + 1] = f() end
print(table.concat(r, " "))

local shared = {}
do
  local x = 0
  shared.add = function(d) x = x + d end
  shared.get = function() return x end
end
shared.add(5); shared.add(-2)
print(shared.get())

-- while-loop locals are fresh each iteration too
local ws, j = {}, 0
while j < 3 do
  j = j + 1
  local captured = j * 10
  ws[j] = function() return captured end
end
print(ws[1](), ws[2](), ws[3]())

local function fact(n) if n <= 1 then return 1 end return n * fact(n - 1) end
print(fact(20))

local function memoize(f)
  local cache, calls = {}, 0
  return function(n)
    if cache[n] == nil then calls = calls + 1; cache[n] = f(n) end
    return cache[n]
  end, function() return calls end
end
local fib, fibcalls
fib, fibcalls = memoize(function(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end)
print(fib(90), fibcalls())

local function compose(...)
  local fs = table.pack(...)
  return function(x)
    for i = fs.n, 1, -1 do x = fs[i](x) end
    return x
  end
end
local f = compose(function(x) return x + 1 end, function(x) return x * 2 end, math.abs)
print(f(-5), f(3))

-- a closure modifying an upvalue of an enclosing loop
local total = 0
for i = 1, 10 do
  local add = function() total = total + i end
  add()
end
print(total)

-- deep nesting of upvalues
local function outer()
  local a = 1
  return function()
    local b = 2
    return function()
      local c = 3
      return function() a = a + 1; return a + b + c end
    end
  end
end
local innermost = outer()()()
print(innermost(), innermost())

-- varargs captured in a table by a closure
local function bind(f, ...)
  local args = table.pack(...)
  return function(...) local all = { table.unpack(args, 1, args.n) }
    for _, v in ipairs({ ... }) do all[#all + 1] = v end
    return f(table.unpack(all))
  end
end
print(bind(string.format, "%s-%s-%s", "a")("b", "c"))
print(debug.getupvalue(inc, 1), debug.getupvalue(get, 1))
