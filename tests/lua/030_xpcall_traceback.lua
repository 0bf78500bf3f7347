-- xpcall with message handlers (debug.traceback and custom ones), handler
-- arguments, errors inside the handler, and full tracebacks: their text is
-- made of chunk names, line numbers and function names only, so it is the
-- same for every build of the same Lua version.
local function inner(x)
  if x > 2 then error("too big: " .. x) end
  return x
end
local function middle(x) return (inner(x + 1)) end -- not a tail call
local function outer(x) local r = middle(x); return r end

print(xpcall(outer, debug.traceback, 1))
local ok, tb = xpcall(outer, debug.traceback, 5)
print(ok)
print(tb)
print(xpcall(outer, function(m) return "handled <" .. m .. ">" end, 10))
print(xpcall(function(...) return select("#", ...), ... end, print, "a", nil, "c"))
-- the handler may return several values; only the first is used
print(xpcall(error, function(m) return m .. "!", "extra" end, "msg", 0))
-- an error inside the handler
print(xpcall(error, function(m) error("handler broke") end, "original"))
-- debug.traceback with a message, a level, and a non-string message
print(debug.traceback("msg", 1))
print(debug.traceback("level2", 2))
print(debug.traceback({}) ~= nil, type(debug.traceback({})))
print(debug.traceback(nil) == nil, debug.traceback(12))
-- first line of a traceback from a coroutine
local co = coroutine.create(function() local x = nil; coroutine.yield(); return x.y end)
coroutine.resume(co)
print(debug.traceback(co))
print(coroutine.resume(co))
print(debug.traceback(co, "dead co"))
-- a traceback through a metamethod and a method
local obj = setmetatable({}, { __index = function(t, k) return debug.traceback("in __index " .. k) end })
print(obj.field)
local C = {}
function C:method() return debug.traceback("in method") end
print(C:method())
