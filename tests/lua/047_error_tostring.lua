-- An uncaught error whose value has a __tostring metamethod: lua.c's message
-- handler uses it (no traceback is added), exit status 1. Also: the error
-- happens inside a coroutine and is re-raised by coroutine.wrap.
local E = setmetatable({ what = "disk full" }, {
  __tostring = function(e) return "MyError: " .. e.what end,
})
local gen = coroutine.wrap(function()
  coroutine.yield("first")
  error(E)
end)
print(gen())
gen()
