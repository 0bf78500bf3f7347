-- Coroutines and errors: yielding across pcall and xpcall (allowed since
-- 5.2), errors after a yield inside pcall, coroutine.close on suspended and
-- dead coroutines (running pending to-be-closed variables), and yields from
-- inside metamethods and iterators.
local co = coroutine.create(function()
  local ok, v = pcall(function()
    local x = coroutine.yield("yield inside pcall")
    error("failed after resume with " .. x)
  end)
  coroutine.yield("pcall returned", ok, v)
  local ok2, v2 = xpcall(function()
    return coroutine.yield("yield inside xpcall") * 2
  end, function(m) return "handled: " .. m end)
  return "end", ok2, v2
end)
print(coroutine.resume(co))
print(coroutine.resume(co, "X"))
print(coroutine.resume(co))
print(coroutine.resume(co, 21))
print(coroutine.status(co))

-- xpcall's handler sees errors raised after a yield
local co2 = coroutine.wrap(function()
  return xpcall(function()
    coroutine.yield(1)
    local t = nil
    return t.x
  end, function(m) return "H(" .. m .. ")" end)
end)
print(co2())
print(co2())

-- close: pending to-be-closed variables run, in reverse order
local closed = {}
local function closer(name)
  return setmetatable({}, { __close = function(_, err) closed[#closed + 1] = name .. ":" .. tostring(err) end })
end
local c3 = coroutine.create(function()
  local a <close> = closer("a")
  local b <close> = closer("b")
  coroutine.yield("holding")
  closed[#closed + 1] = "not reached"
end)
print(coroutine.resume(c3))
print(coroutine.close(c3), coroutine.status(c3))
print(table.concat(closed, " "))
-- close of a coroutine that died with an error returns false and the error
local c4 = coroutine.create(function() error("died") end)
print(coroutine.resume(c4))
print(coroutine.close(c4))
print(coroutine.close(coroutine.create(print)))
-- a __close that errors while closing a coroutine
local c5 = coroutine.create(function()
  local x <close> = setmetatable({}, { __close = function() error("close failed") end })
  coroutine.yield()
end)
coroutine.resume(c5)
print(coroutine.close(c5))
print(pcall(coroutine.close, coroutine.running()))

-- yielding from a metamethod and from a for-loop iterator
local mt = { __index = function(_, k) return coroutine.yield("index " .. k) end,
             __add = function(a, b) return coroutine.yield("add") end }
local c6 = coroutine.wrap(function()
  local obj = setmetatable({}, mt)
  local v = obj.foo
  local s = obj + 1
  return "results", v, s
end)
print(c6())
print(c6("FOO"))
print(c6(42))
local function iter()
  return coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i, i * i) end end)
end
local c7 = coroutine.wrap(function()
  for i, sq in iter() do coroutine.yield(i + sq) end
  return "iter done"
end)
print(c7(), c7(), c7(), c7())
-- yield across a C function that does not allow it
local c8 = coroutine.create(function()
  table.sort({ 3, 2, 1 }, function(a, b) coroutine.yield() return a < b end)
end)
print(coroutine.resume(c8))
local c9 = coroutine.create(function()
  return string.gsub("ab", ".", function(c) return coroutine.yield(c) end)
end)
print(coroutine.resume(c9))
