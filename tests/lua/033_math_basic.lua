-- The exact part of the math library: floor, ceil, abs, max, min, fmod,
-- modf, huge, pi, maxinteger, mininteger, ult, tointeger, type, and their
-- integer/float result types. (Transcendental functions: 034.)
local function show(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) .. (math.type(t[i]) == "float" and "f" or "") end
  print(table.concat(t, " "))
end
show(math.floor(3.5), math.floor(-3.5), math.floor(7), math.floor(-0.0), math.floor(1e300))
show(math.ceil(3.5), math.ceil(-3.5), math.ceil(7), math.ceil(-0.5), math.ceil(-1e300))
show(math.abs(-7), math.abs(7.5), math.abs(-0.0), math.abs(math.mininteger), math.abs(-math.huge))
show(math.max(1, 2.5, -1), math.max(3, 3.0), math.max(3.0, 3), math.min(1, 2.5, -1), math.min(-0.0, 0))
show(math.fmod(7, 3), math.fmod(-7, 3), math.fmod(7, -3), math.fmod(7.5, 2), math.fmod(-7.5, 2))
show(math.fmod(math.mininteger, -1), math.fmod(5, math.huge), math.fmod(1, 2 ^ 53))
show(math.modf(3.7), math.modf(-3.7), math.modf(5), math.modf(math.huge), math.modf(-math.huge))
show(math.huge, -math.huge, math.pi, math.maxinteger, math.mininteger)
show(math.ult(0, 1), math.ult(1, 0), math.ult(-1, 0), math.ult(0, -1), math.ult(math.maxinteger, math.mininteger))
show(math.tointeger(5.0), math.tointeger(5.5), math.tointeger("x"), math.tointeger(2 ^ 62))
show(math.type(1), math.type(1.0), math.type("1"), math.type(nil))
print(pcall(math.floor, "a"))
print(pcall(math.max))
print(pcall(math.type))
print(string.format("%.14g %.17g %a", math.pi, math.pi, math.pi))
-- rounding helpers built from floor
local function round(x) return math.floor(x + 0.5) end
show(round(2.5), round(-2.5), round(0.49999999999999994), round(1e15 + 0.5))
-- integer square roots and powers by repeated multiplication
local function ipow(b, e) local r = 1; for _ = 1, e do r = r * b end return r end
show(ipow(3, 39), ipow(3, 40), ipow(2, 63), ipow(2, 64), ipow(-2, 63))
show(math.floor(-7 / 2), -7 // 2, math.floor(7 / -2.0), 7 // -2.0)
-- comparisons between integers and floats are exact (no rounding)
print(math.maxinteger < 2 ^ 63, math.maxinteger + 0.0 == 2 ^ 63, math.maxinteger == 2 ^ 63)
print(2 ^ 53 == 2 ^ 53 + 1, (1 << 53) + 1 == 2 ^ 53 + 1, (1 << 53) + 1 > 2 ^ 53, 1 == 1.0, -0.0 == 0)
print(math.mininteger <= -2 ^ 63, math.mininteger < -2 ^ 63, 1 < math.huge, math.mininteger > -math.huge)
print(3 < 3.5, 3 <= 2.9999999999999996, -3 > -3.0000000000000004, 9007199254740993 < 9007199254740992.0)
