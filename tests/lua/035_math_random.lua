-- math.random with a fixed seed: Lua 5.4's xoshiro256** generator is defined
-- on 64-bit integers, so a seeded sequence is the same on every platform.
-- (math.randomseed() without arguments seeds from the clock: never printed.)
math.randomseed(42)
local t = {}
for i = 1, 10 do t[i] = math.random(1, 100) end
print(table.concat(t, " "))
math.randomseed(42)
local again = {}
for i = 1, 10 do again[i] = math.random(1, 100) end
print("reproducible", table.concat(again, " ") == table.concat(t, " "))
math.randomseed(7, 11)
print(math.random(0), math.random(0), math.random(10), math.random(-5, 5), math.random(math.mininteger, math.maxinteger))
local f = math.random()
print(math.type(f), f >= 0 and f < 1, string.format("%.14g", f))
print(string.format("%.17g %.17g", math.random(), math.random()))
-- a histogram of 6000 die rolls
math.randomseed(2024)
local h = { 0, 0, 0, 0, 0, 0 }
for _ = 1, 6000 do local r = math.random(6); h[r] = h[r] + 1 end
print(table.concat(h, " "))
-- shuffling with Fisher-Yates
math.randomseed(1)
local deck = {}
for i = 1, 20 do deck[i] = i end
for i = #deck, 2, -1 do local j = math.random(i); deck[i], deck[j] = deck[j], deck[i] end
print(table.concat(deck, " "))
-- argument errors
print(pcall(math.random, 2, 1))
print(pcall(math.random, 0.5))
print(pcall(math.random, 1, 2, 3))
print(math.random(3, 3), math.random(math.maxinteger, math.maxinteger))
-- randomseed returns the two seed components it used (5.4.4)
print(select("#", math.randomseed(5)))
-- estimating pi by Monte Carlo with a fixed seed
math.randomseed(314)
local inside = 0
for _ = 1, 20000 do
  local x, y = math.random(), math.random()
  if x * x + y * y <= 1 then inside = inside + 1 end
end
print("inside", inside, string.format("%.4f", 4 * inside / 20000))
