-- Floor division and modulo with negative operands (Lua rounds towards minus
-- infinity, unlike C), division by zero for integers (an error) and floats
-- (inf / nan), negative zero, and NaN.
--
-- NaN and its sign: C's printf writes a NaN with the sign bit set as "-nan"
-- (glibc and musl agree), and x86 produces the negative "default NaN" for 0/0,
-- so raw tostring(0/0) is "-nan" while -(0/0) is "nan". Whether an operation
-- keeps or flips a NaN's sign is up to the CPU and compiler, so this script
-- prints NaNs only through nanstr(), which drops the sign, and prints the
-- NaN-ness itself (x ~= x).
local function nanstr(x)
  return (tostring(x):gsub("^%-", ""))
end

for _, a in ipairs({ 7, -7 }) do
  for _, b in ipairs({ 3, -3 }) do
    print(a, b, a // b, a % b, a / b, math.fmod(a, b))
  end
end
for _, a in ipairs({ 7.5, -7.5 }) do
  for _, b in ipairs({ 2, -2 }) do
    print(a, b, a // b, a % b, math.fmod(a, b))
  end
end
-- the identity a == (a // b) * b + a % b for integers
local ok = true
for a = -20, 20 do
  for b = -7, 7 do
    if b ~= 0 and a ~= (a // b) * b + a % b then ok = false end
  end
end
print("identity holds", ok)

-- integer division by zero is an error
print(pcall(function(a, b) return a // b end, 1, 0))
print(pcall(function(a, b) return a % b end, 1, 0))
print(pcall(math.fmod, 1, 0))
-- float division by zero is not
local zero = 0
print(1 / zero, -1 / zero, 1.0 // zero, -1 // 0.0, 1 % math.huge, -1 % math.huge)
print(math.fmod(1, 0.0) ~= math.fmod(1, 0.0), nanstr(math.fmod(1, 0.0)))

-- negative zero
local nz = -0.0
print(nz, 0.0 == nz, 1 / nz, tostring(0 * -1.0), string.format("%g %.1f", nz, nz))
print(math.tointeger(nz), nz // 1, -0.0 + 0, 0 // -1.0)

-- NaN
local nan = zero / zero
print(nan ~= nan, nan == nan, nan < nan, nan >= nan, nanstr(nan), nanstr(-nan))
print(string.format("%s %s", nanstr(math.huge - math.huge), nanstr(math.huge * 0)))
print(math.max(1, 2, 3), math.min(4, 2, 8), math.type(nan), math.tointeger(nan))
print(pcall(function() local t = {}; t[nan] = 1 end))
print(nan ~= nan and "nan is unordered" or "?")
