-- Transcendental functions (sin, cos, tan, asin, acos, atan, exp, log,
-- sqrt), printed with %.14g. glibc's and musl's libm may differ in the last
-- bit of a result (both are within 1 ulp, neither is required to round
-- correctly), and i686 computes in x87 registers: 14 significant digits
-- hide such differences. Where a value is printed exactly (%a) it is one that
-- IEEE 754 requires to be exact (sqrt) or that is exactly representable.
local F = "%.14g"
local function p(label, ...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = string.format(F, t[i]) end
  print(label, table.concat(t, " "))
end
local pi = math.pi
p("sin", math.sin(0), math.sin(pi / 6), math.sin(pi / 2), math.sin(1), math.sin(-2.5), math.sin(100))
p("cos", math.cos(0), math.cos(pi / 3), math.cos(pi), math.cos(1), math.cos(-2.5), math.cos(100))
p("tan", math.tan(0), math.tan(pi / 4), math.tan(1), math.tan(-1.2))
p("asin", math.asin(0), math.asin(0.5), math.asin(1), math.asin(-0.3))
p("acos", math.acos(1), math.acos(0.5), math.acos(0), math.acos(-1))
p("atan", math.atan(1), math.atan(-1), math.atan(1, 1), math.atan(1, -1), math.atan(-1, -1), math.atan(0, -1))
p("atan2", math.atan(3, 4), math.atan(0, 0), math.atan(1, 0), math.atan(-1, 0))
p("exp", math.exp(0), math.exp(1), math.exp(-1), math.exp(10), math.exp(0.5), math.exp(-20))
p("log", math.log(1), math.log(math.exp(1)), math.log(10), math.log(2), math.log(0.5), math.log(1e100))
p("log2", math.log(8, 2), math.log(1024, 2), math.log(10, 2), math.log(2 ^ 52, 2))
p("log10", math.log(1000, 10), math.log(2, 10), math.log(1e-7, 10))
p("logb", math.log(81, 3), math.log(100, 100), math.log(7, 7))
p("sqrt", math.sqrt(2), math.sqrt(3), math.sqrt(16), math.sqrt(1e-10), math.sqrt(0.5))
p("pow", 2 ^ 0.5, 10 ^ -2, 2 ^ 100, (-8) ^ (1 / 3) ~= (-8) ^ (1 / 3) and 0 or 1, 1.5 ^ 2.5)
-- sqrt is correctly rounded everywhere (IEEE 754), so its bits can be shown
print(string.format("%a %a %a", math.sqrt(2), math.sqrt(0.25), math.sqrt(1e300)))
-- special values
print(math.sqrt(-1) ~= math.sqrt(-1), math.log(0), math.log(-1) ~= math.log(-1), math.exp(1000), math.exp(-1000))
print(math.log(0, 2), math.log(0, 10), math.atan(math.huge), math.atan(-math.huge) == -pi / 2)
print(math.sin(math.huge) ~= math.sin(math.huge), math.cos(-math.huge) ~= math.cos(-math.huge))
-- identities that hold to a tolerance
local maxerr = 0
for i = -50, 50 do
  local x = i / 7
  local e = math.abs(math.sin(x) ^ 2 + math.cos(x) ^ 2 - 1)
  if e > maxerr then maxerr = e end
end
print("sin^2+cos^2 error below 1e-15", maxerr < 1e-15)
local ok = true
for i = 1, 100 do
  local x = i * 0.37
  if math.abs(math.exp(math.log(x)) - x) > 1e-13 * x then ok = false end
end
print("exp(log(x)) == x within 1e-13", ok)
-- a numeric series: pi by the Leibniz formula, e by its series
local s = 0
for k = 0, 9999 do s = s + (k % 2 == 0 and 1 or -1) / (2 * k + 1) end
print(string.format("%.10f %.14g", 4 * s, 4 * s - pi))
local e, term = 1, 1
for k = 1, 20 do term = term / k; e = e + term end
print(string.format("%.14g %s", e, tostring(math.abs(e - math.exp(1)) < 1e-15)))
-- degrees and radians by hand and with math.deg/math.rad
print(string.format(F .. " " .. F .. " " .. F .. " " .. F, 180 / pi, 90 * pi / 180, math.deg(1), math.rad(90)))
