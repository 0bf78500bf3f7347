-- 64-bit integer overflow wraps around (two's complement), on every
-- architecture: lua_Integer is 64 bits on i686 too.
local max, min = math.maxinteger, math.mininteger
print(max, min, max + 1 == min, min - 1 == max, max * 2, min * -1 == min)
print(-min, math.abs(min), min // -1, min % -1, max // -1)
print(max + max, min + min, max * max, 0x7fffffff * 0x7fffffff, 0x100000000 * 0x100000000)

-- factorials in integers wrap after 20!
local f = 1
for i = 1, 25 do
  f = f * i
  if i >= 19 then print(i .. "!", f) end
end

-- a 64-bit FNV-1a hash, relying on wrap-around multiplication
local function fnv1a(s)
  local h = -3750763034362895579 -- 0xcbf29ce484222325
  for i = 1, #s do
    h = h ~ s:byte(i)
    h = h * 1099511628211
  end
  return h
end
print(string.format("%016x %d", fnv1a("sandlet"), fnv1a("")))
print(string.format("%016x", fnv1a(string.rep("abc", 100))))

-- a linear congruential generator (Knuth's MMIX constants)
local x = 1
for _ = 1, 1000 do x = x * 6364136223846793005 + 1442695040888963407 end
print("lcg", x, string.format("%x", x))

-- unsigned views
print(math.ult(1, -1), math.ult(-1, 1), math.ult(max, min), string.format("%u %x", 5, -1))
print(string.format("%d %x %X %o", -1, -1, 255, 8))

-- conversions that do not fit
print(pcall(function() return 2 ^ 63 | 0 end))
print(pcall(function() return 1.5 // 1 | 0 end))
print(pcall(string.rep, "x", 2 ^ 63))
print(math.tointeger(2 ^ 63), math.tointeger(-2 ^ 63), 2 ^ 63 == max + 1.0, max + 0.0 == 2 ^ 63)
print(tonumber("9223372036854775807"), tonumber("9223372036854775808"), tonumber("-9223372036854775808"))
print(tonumber("0x7fffffffffffffff"), tonumber("0xffffffffffffffff"), tonumber("0x10000000000000000"))
print(9007199254740993, 9007199254740993 + 0.0, 2 ^ 53 + 1)
