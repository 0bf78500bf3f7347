-- Operator metamethods: arithmetic (__add __sub __mul __div __mod __pow __unm
-- __idiv), bitwise (__band __bor __bxor __shl __shr __bnot), __concat,
-- __len, __eq, __lt, __le (defined explicitly: the 5.3 emulation of __le by
-- __lt is a compile-time option), and which operand's metamethod is used.
local V = {}
V.__index = V
local function vec(x, y) return setmetatable({ x = x, y = y }, V) end
local function lift(a) if type(a) == "number" then return vec(a, a) end return a end
V.__add = function(a, b) a, b = lift(a), lift(b) return vec(a.x + b.x, a.y + b.y) end
V.__sub = function(a, b) a, b = lift(a), lift(b) return vec(a.x - b.x, a.y - b.y) end
V.__mul = function(a, b) a, b = lift(a), lift(b) return vec(a.x * b.x, a.y * b.y) end
V.__div = function(a, b) a, b = lift(a), lift(b) return vec(a.x / b.x, a.y / b.y) end
V.__mod = function(a, b) a, b = lift(a), lift(b) return vec(a.x % b.x, a.y % b.y) end
V.__pow = function(a, b) a, b = lift(a), lift(b) return vec(a.x ^ b.x, a.y ^ b.y) end
V.__idiv = function(a, b) a, b = lift(a), lift(b) return vec(a.x // b.x, a.y // b.y) end
V.__unm = function(a) return vec(-a.x, -a.y) end
V.__band = function(a, b) a, b = lift(a), lift(b) return vec(a.x & b.x, a.y & b.y) end
V.__bor = function(a, b) a, b = lift(a), lift(b) return vec(a.x | b.x, a.y | b.y) end
V.__bxor = function(a, b) a, b = lift(a), lift(b) return vec(a.x ~ b.x, a.y ~ b.y) end
V.__shl = function(a, b) a, b = lift(a), lift(b) return vec(a.x << b.x, a.y << b.y) end
V.__shr = function(a, b) a, b = lift(a), lift(b) return vec(a.x >> b.x, a.y >> b.y) end
V.__bnot = function(a) return vec(~a.x, ~a.y) end
V.__len = function(a) return a.x * a.x + a.y * a.y end
V.__eq = function(a, b) return a.x == b.x and a.y == b.y end
V.__lt = function(a, b) return #a < #b end
V.__le = function(a, b) return #a <= #b end
V.__concat = function(a, b)
  local function s(v) if type(v) == "table" then return "<" .. v.x .. "," .. v.y .. ">" end return tostring(v) end
  return s(a) .. s(b)
end
V.__tostring = function(a) return "vec(" .. a.x .. ", " .. a.y .. ")" end
local a, b = vec(3, 4), vec(1, 2)
print(a + b, a - b, a * b, a / b, a % b, a ^ b, a // b, -a)
print(a + 1, 10 - a, 2 * a, a & b, a | b, a ~ b, a << b, a >> 1, ~a)
print(#a, a == vec(3, 4), a ~= b, a == b, b < a, a <= b, a > b, a >= vec(4, 3))
print(a .. b, a .. "!", "v=" .. a, 1 .. a, a .. b .. a)
-- __eq is not called for primitive equality or different types
local eqcalls = 0
local E = { __eq = function() eqcalls = eqcalls + 1 return true end }
local e1, e2 = setmetatable({}, E), setmetatable({}, E)
print(e1 == e2, e1 == e1, e1 == 1, e1 ~= e2, eqcalls)
-- the first operand with the metamethod wins
local L = setmetatable({}, { __add = function() return "left" end })
local R = setmetatable({}, { __add = function() return "right" end })
print(L + R, R + L, 1 + R, L + 1)
-- errors when no metamethod exists
print(pcall(function() return {} + 1 end))
print(pcall(function() return {} < {} end))
print(pcall(function() return {} .. "" end))
print(pcall(function() return -{} end))
print(pcall(function() return #nil end))
print(pcall(function() return 1 < "2" end))
print(pcall(function() return 1.5 | 1 end))
print(pcall(function() return "1.5" | 1 end))
print(pcall(function() return math.huge // 0 | 0 end))
-- __lt/__le results are converted to booleans
local T = setmetatable({}, { __lt = function() return 1 end, __le = function() return nil end })
print(T < T, T <= T, T > T, T >= T)
-- __index on strings: methods and the string metatable
print(("x"):rep(3), #"four", ("%d-%d"):format(1, 2))
-- __len on a table used by the # operator and ipairs-free loops
local sized = setmetatable({}, { __len = function() return 7 end })
print(#sized, rawlen(sized))
-- arithmetic on strings that look like numbers uses string metamethods
print("10" + 1, "3" * "4", "2" ^ 2, -"2", "10" // "3", "7" % "4", pcall(function() return "a" + 1 end))
-- but the string metatable has no bitwise metamethods
print(pcall(function() return "6" & 3 end))
