-- error/pcall: messages with positions and levels, error values of every
-- type, nested pcall, error objects with __tostring, runtime error messages
-- that name the variable involved, assert, and errors in metamethods.
print(pcall(error, "plain"))
print(pcall(error, "no position", 0))
print(pcall(function() error("level 1") end))
local function lvl2() error("level 2", 2) end
print(pcall(function()
  lvl2() -- the error points here
end))
print(pcall(error))
print(pcall(error, nil))
print(pcall(error, 42))
print(pcall(error, true))
local ok, e = pcall(error, { code = 404 })
print(ok, type(e), e.code)
local E = setmetatable({ msg = "custom" }, { __tostring = function(s) return "E<" .. s.msg .. ">" end })
ok, e = pcall(error, E)
print(ok, tostring(e), e == E)

-- nested pcall: the inner error does not escape
print(pcall(function()
  local ok1, e1 = pcall(error, "inner")
  return "outer ok", ok1, e1
end))
-- rethrow
print(pcall(function()
  local ok1, e1 = pcall(error, "first")
  error("rethrown: " .. e1, 0)
end))

-- runtime errors and the names they mention
Global = nil
local t = {}
local function check(f) print(select(2, pcall(f))) end
check(function() return undefinedglobal.x end)
check(function() return t.a.b end)
check(function() local loc; return loc.x end)
check(function() t.method() end)
check(function() t:method() end)
check(function() return #t.n end)
check(function() return t + 1 end)
check(function() return "x" .. t end)
check(function() return t < 1 end)
check(function() return {} < {} end)
check(function() return nil > 1 end)
check(function() t[nil] = 1 end)
check(function() local s = "str"; s.x = 1 end)
check(function() return math.floor("x") end)
check(function() return ("x"):rep(1, 2, 3, {}) end)
check(function() string.format("%d", "1.5") end)
check(function() return 1 // 0 end)
check(function() return 2 ^ 63 | 0 end)
check(function() undefinedfunction() end)
print(select(2, pcall((function() local up = t; return function() return up.x.y end end)())))
check(function() setmetatable(t, {}).y.z = 1 end)
check(function() for i = 1, "x" do end end)
check(function() for i = 1, 10, 0 do end end)
check(function() return ipairs() end)
check(function() return ("abc"):bad() end)

-- assert
print(pcall(assert, false))
print(pcall(assert, nil, "assert message"))
print(pcall(assert, 1 == 1, "unused"), select("#", assert(1, 2, 3)))
ok, e = pcall(assert, false, { "table message" })
print(ok, type(e), e[1])
print(pcall(assert))

-- errors inside metamethods carry the metamethod's position
local M = setmetatable({}, { __index = function(_, k) error("no field " .. k) end })
print(pcall(function() return M.foo end))
-- error with level pointing to the caller of the caller
local function deep3() error("from deep3", 3) end
local function deep2() deep3() end
local function deep1()
  deep2() -- level 3 points here
end
print(pcall(deep1))
