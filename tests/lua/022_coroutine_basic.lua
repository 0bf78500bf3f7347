-- Coroutines: create/resume/yield passing values both ways, status in every
-- state (suspended, running, normal, dead), isyieldable, running, wrap, and
-- resuming a dead or running coroutine.
local log = {}
local co
co = coroutine.create(function(a, b)
  log[#log + 1] = "start " .. a .. " " .. b .. " " .. coroutine.status(co)
  local c = coroutine.yield(a + b)
  log[#log + 1] = "got " .. tostring(c)
  local d, e = coroutine.yield(c * 2)
  log[#log + 1] = "got " .. tostring(d) .. " " .. tostring(e)
  return "done", d + e
end)
print(coroutine.status(co))
print(coroutine.resume(co, 1, 2))
print(coroutine.status(co))
print(coroutine.resume(co, 10))
print(coroutine.resume(co, 3, 4))
print(coroutine.status(co))
print(coroutine.resume(co))
print(table.concat(log, "; "))

-- status "normal": a coroutine that resumed another one
local outer
local inner = coroutine.create(function()
  return coroutine.status(outer), coroutine.isyieldable()
end)
outer = coroutine.create(function()
  return coroutine.resume(inner)
end)
print(coroutine.resume(outer))

-- running and isyieldable in the main thread
local main, ismain = coroutine.running()
print(type(main), ismain, coroutine.isyieldable(), coroutine.status(main))
print(coroutine.resume(coroutine.create(function()
  local me, im = coroutine.running()
  return coroutine.status(me), im
end)))

-- resuming a running coroutine and the main thread
local self
self = coroutine.create(function() return coroutine.resume(self) end)
print(coroutine.resume(self))
print(coroutine.resume(main))
print(pcall(coroutine.yield, 1))

-- wrap: a generator
local function range(n, step)
  return coroutine.wrap(function()
    for i = 1, n, step or 1 do coroutine.yield(i) end
  end)
end
local got = {}
for i in range(10, 3) do got[#got + 1] = i end
print(table.concat(got, " "))
local gen = range(1)
print(gen(), gen())
print(pcall(gen))

-- errors inside coroutines
local bad = coroutine.create(function() local x = nil; return x.field end)
print(coroutine.resume(bad))
print(coroutine.status(bad), coroutine.resume(bad))
local w = coroutine.wrap(function() error("wrapped failure") end)
print(pcall(w))
local w2 = coroutine.wrap(function() error({ tag = "obj" }) end)
local ok, e = pcall(w2)
print(ok, type(e), e.tag)
print(pcall(coroutine.resume, 42))
print(select("#", coroutine.resume(coroutine.create(function() end))))
-- many coroutines alive at once
local cos = {}
for i = 1, 1000 do
  cos[i] = coroutine.create(function(x) local y = coroutine.yield(x + 1); return x + y end)
  coroutine.resume(cos[i], i)
end
local total = 0
for i = 1, 1000 do local _, v = coroutine.resume(cos[i], 1); total = total + v end
print("total", total)
