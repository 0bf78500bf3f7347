-- Bitwise operators on 64-bit integers: & | ~ << >> and unary ~, shifts by
-- 64 or more and by negative amounts, logical (not arithmetic) right shift,
-- floats with integral values, and bit tricks a program would use.
print(0xF0 & 0x3C, 0xF0 | 0x3C, 0xF0 ~ 0x3C, ~0, ~0xFF, ~math.mininteger)
print(1 << 0, 1 << 1, 1 << 62, 1 << 63, 1 << 64, 1 << 100, 1 << -1, 2 << -1)
print(-1 >> 1, -1 >> 63, -1 >> 64, math.mininteger >> 63, 256 >> 4, 256 >> -4, 1 >> -64)
print(3.0 & 1, 2 ^ 10 | 0, "done" and (7.0 ~ 2))
print(pcall(function() return 1.5 & 1 end))
print(pcall(function() return 1 << 2 ^ 64 end))
print(string.format("%x %x %x", -1 << 4, 0x0123456789ABCDEF >> 32, 0x0123456789ABCDEF << 32))
-- popcount, parity, lowest set bit, next power of two
local function popcount(x)
  local c = 0
  while x ~= 0 do x = x & (x - 1); c = c + 1 end
  return c
end
print(popcount(0), popcount(255), popcount(-1), popcount(math.mininteger), popcount(0x5555555555555555))
local function lowbit(x) return x & -x end
print(lowbit(12), lowbit(80), lowbit(math.mininteger), lowbit(0))
local function nextpow2(x)
  x = x - 1
  for s = 0, 5 do x = x | (x >> (1 << s)) end
  return x + 1
end
print(nextpow2(1), nextpow2(5), nextpow2(1000), nextpow2(1 << 40), nextpow2((1 << 40) + 1))
-- rotate left on 64 bits
local function rotl(x, n) return (x << n) | (x >> (64 - n)) end
print(string.format("%016x %016x", rotl(0x0123456789ABCDEF, 8), rotl(1, 63)))
-- xorshift64 generator
local x = 88172645463325252
local out = {}
for i = 1, 5 do
  x = x ~ (x << 13); x = x ~ (x >> 7); x = x ~ (x << 17)
  out[i] = string.format("%016x", x)
end
print(table.concat(out, " "))
-- a bitset of small primes
local set = 0
for _, p in ipairs({ 2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61 }) do set = set | (1 << p) end
local members = {}
for i = 0, 63 do if set & (1 << i) ~= 0 then members[#members + 1] = i end end
print(string.format("%x", set), #members, members[#members])
-- CRC-32 (reflected, polynomial 0xEDB88320) of a test string
local function crc32(s)
  local crc = 0xFFFFFFFF
  for i = 1, #s do
    crc = crc ~ s:byte(i)
    for _ = 1, 8 do
      if crc & 1 ~= 0 then crc = (crc >> 1) ~ 0xEDB88320 else crc = crc >> 1 end
    end
  end
  return crc ~ 0xFFFFFFFF
end
print(string.format("%08x %08x", crc32("123456789"), crc32("The quick brown fox jumps over the lazy dog")))
