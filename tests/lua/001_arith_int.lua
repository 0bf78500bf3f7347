-- Integer arithmetic: the four operations, floor division and modulo,
-- exponentiation (always a float), math.type and integer-to-string output.
local function show(label, v)
  print(label, v, math.type(v))
end

show("add", 7 + 35)
show("sub", 7 - 35)
show("mul", 123456 * 654321)
show("div", 7 / 2)        -- '/' always gives a float
show("div exact", 8 / 2)
show("idiv", 7 // 2)
show("mod", 7 % 2)
show("pow", 2 ^ 10)       -- '^' always gives a float
show("unm", -(-5))
show("big", 1000000007 * 998244353)
show("hex", 0xff + 0X10)
show("hex wraps", 0xffffffffffffffff)   -- hex integer literals wrap around
show("dec too big", 9223372036854775808) -- a decimal literal that overflows is a float

-- precedence and associativity
print(2 + 3 * 4, (2 + 3) * 4, 2 ^ 3 ^ 2, -2 ^ 2, 10 - 4 - 3, 100 // 7 // 2)

-- sums and products computed in loops
local sum, prod = 0, 1
for i = 1, 20 do
  sum = sum + i * i
  prod = prod * i
end
print("sum of squares", sum)
print("20!", prod)

-- numeric for loops with steps (integer loops never overflow)
local t = {}
for i = 10, 1, -3 do t[#t + 1] = i end
print(table.concat(t, " "))
t = {}
for i = math.maxinteger - 2, math.maxinteger do t[#t + 1] = i end
print(table.concat(t, " "))
t = {}
for i = math.mininteger, math.mininteger + 2 do t[#t + 1] = i end
print(table.concat(t, " "))
local n = 0
for _ = 1, 0 do n = n + 1 end
print("empty loop ran", n)

-- gcd and integer square root by Newton's method
local function gcd(a, b)
  while b ~= 0 do a, b = b, a % b end
  return a
end
print("gcd", gcd(1071, 462), gcd(2 ^ 40 // 1 | 0, 6 ^ 15 // 1 | 0))
local function isqrt(x)
  local r = x
  while r > x // r do r = (r + x // r) // 2 end
  return r
end
print("isqrt", isqrt(1000000007), isqrt(10 ^ 12 // 1 | 0), isqrt(999999999999))

-- collatz chain lengths
local best, bestn = 0, 0
for s = 1, 3000 do
  local c, x = 0, s
  while x ~= 1 do
    if x % 2 == 0 then x = x // 2 else x = 3 * x + 1 end
    c = c + 1
  end
  if c > best then best, bestn = c, s end
end
print("collatz", bestn, best)
