-- Float arithmetic and how floats print: tostring uses "%.14g" and adds ".0"
-- to integral values; math.tointeger; int/float conversions in arithmetic.
local vals = {
  0.1 + 0.2, 1 / 3, 2 / 3, 1e15, 1e16, 123456789012345.0, 2 ^ 53, 2 ^ 63,
  -2 ^ 63, 1e100, 1e-5, 1e-300 * 1e-300, 5e-324, 1.7976931348623157e308,
  3.0, -3.0, 0.5, 100 / 10, 1e300 * 1e10, -1e300 * 1e10, 3.14159265358979,
  255 / 256, 1 / 1024, 12345.678,
}
for i, v in ipairs(vals) do
  print(i, v, math.type(v), tostring(v) == string.format("%.14g", v))
end

-- mixed int/float arithmetic gives floats
print(1 + 2.0, 3 * 1.0, 10 - 0.5, 2 ^ 2, 7 // 2.0, 7 % 2.5, -7 // 2.0, -7 % 2.5)

-- float integral values convert back to integers
local conv = { 3.0, -0.0, 2 ^ 53, 2 ^ 63, -2 ^ 63, 3.5, 1e100, "8", "8.0", 1 / 0 }
for _, v in ipairs(conv) do
  print("tointeger", tostring(v), math.tointeger(v))
end

-- floor/ceil return integers when they fit
print(math.floor(3.7), math.ceil(3.2), math.floor(-3.7), math.ceil(-3.2))
print(math.floor(2 ^ 70), math.ceil(-2 ^ 70), math.type(math.floor(2 ^ 70)))

-- accumulating error, printed with full and reduced precision
local acc = 0.0
for _ = 1, 1000 do acc = acc + 0.001 end
print(acc == 1.0, string.format("%.17g", acc), string.format("%.10f", acc))

-- float for-loops
local parts = {}
for x = 0, 1, 0.25 do parts[#parts + 1] = tostring(x) end
print(table.concat(parts, " "))
parts = {}
for x = 1.0, 3 do parts[#parts + 1] = tostring(x) end
print(table.concat(parts, " "))

-- harmonic series and a simple numeric integration (midpoint rule)
local h = 0.0
for k = 1, 10000 do h = h + 1 / k end
print(string.format("H(10000) = %.12f", h))
local area, n = 0.0, 1000
for k = 0, n - 1 do
  local x = (k + 0.5) / n
  area = area + 4 / (1 + x * x)
end
print(string.format("pi ~ %.12f", area / n))
