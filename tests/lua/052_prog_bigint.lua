-- A program: arbitrary-precision natural numbers in base 10^7 limbs
-- (products of two limbs stay below 2^53 and 2^63), computing 100!, 2^1000,
-- Fibonacci(1000) and a long division, checked by digit sums.
local BASE, WIDTH = 10000000, 7
local function big(n)
  local r = {}
  repeat r[#r + 1] = n % BASE; n = n // BASE until n == 0
  return r
end
local function tostr(a)
  local parts = { tostring(a[#a]) }
  for i = #a - 1, 1, -1 do parts[#parts + 1] = string.format("%0" .. WIDTH .. "d", a[i]) end
  return table.concat(parts)
end
local function add(a, b)
  local r, carry = {}, 0
  for i = 1, math.max(#a, #b) do
    local s = (a[i] or 0) + (b[i] or 0) + carry
    r[i] = s % BASE; carry = s // BASE
  end
  if carry > 0 then r[#r + 1] = carry end
  return r
end
local function mulsmall(a, m)
  local r, carry = {}, 0
  for i = 1, #a do
    local p = a[i] * m + carry
    r[i] = p % BASE; carry = p // BASE
  end
  while carry > 0 do r[#r + 1] = carry % BASE; carry = carry // BASE end
  return r
end
local function mul(a, b)
  local r = {}
  for i = 1, #a + #b do r[i] = 0 end
  for i = 1, #a do
    local carry, ai = 0, a[i]
    for j = 1, #b do
      local cur = r[i + j - 1] + ai * b[j] + carry
      r[i + j - 1] = cur % BASE; carry = cur // BASE
    end
    local k = i + #b
    while carry > 0 do
      local cur = r[k] + carry
      r[k] = cur % BASE; carry = cur // BASE; k = k + 1
    end
  end
  while #r > 1 and r[#r] == 0 do r[#r] = nil end
  return r
end
local function divsmall(a, d)
  local r, rem = {}, 0
  for i = #a, 1, -1 do
    local cur = rem * BASE + a[i]
    r[i] = cur // d; rem = cur % d
  end
  while #r > 1 and r[#r] == 0 do r[#r] = nil end
  return r, rem
end
local function digitsum(s) local t = 0; for d in s:gmatch("%d") do t = t + tonumber(d) end return t end

local f = big(1)
for i = 2, 100 do f = mulsmall(f, i) end
local fs = tostr(f)
print("100!", #fs, fs:sub(1, 30), fs:sub(-30), digitsum(fs))

local p = big(1)
local two = big(2)
for _ = 1, 1000 do p = mulsmall(p, 2) end
local ps = tostr(p)
print("2^1000", #ps, ps:sub(1, 20), digitsum(ps))
-- square-and-multiply gives the same result
local function pow(b, e)
  local r = big(1)
  while e > 0 do
    if e % 2 == 1 then r = mul(r, b) end
    b = mul(b, b); e = e // 2
  end
  return r
end
print("pow agrees", tostr(pow(two, 1000)) == ps)

local a, b = big(0), big(1)
for _ = 1, 1000 do a, b = b, add(a, b) end
local fib = tostr(a)
print("fib(1000)", #fib, fib:sub(1, 20), fib:sub(-20))

local q, rem = divsmall(f, 9999991)
print("100! / 9999991", #tostr(q), rem)
local back = add(mulsmall(q, 9999991), big(rem))
print("division checks", tostr(back) == fs)
print("3^200", tostr(pow(big(3), 200)))
