-- table.sort: default order for numbers and strings, custom comparators,
-- sorting records by several keys, an order function that raises an error, an
-- order function that is not a strict order ("invalid order function for
-- sorting"), and sorting values that cannot be compared.
-- Arrays with equal keys are sorted only by comparators that make the result
-- unique: table.sort is not stable, and for arrays over 100 elements it picks
-- pivots using the clock, so only a total order gives a reproducible output.
local function show(t) return table.concat(t, " ") end
local nums = { 5, 2, 8, 1, 9, 3, 7, 4, 6, 0, -1, 2.5, -3.5 }
table.sort(nums)
print(show(nums))
table.sort(nums, function(a, b) return a > b end)
print(show(nums))
local strs = { "delta", "Alpha", "charlie", "bravo", "Echo", "alpha", "" }
table.sort(strs)
print(show(strs))
table.sort(strs, function(a, b) return a:lower() < b:lower() or (a:lower() == b:lower() and a < b) end)
print(show(strs))

local people = {
  { name = "ann", age = 31 }, { name = "bob", age = 25 }, { name = "cid", age = 31 },
  { name = "dee", age = 25 }, { name = "eve", age = 40 }, { name = "fay", age = 19 },
}
table.sort(people, function(a, b)
  if a.age ~= b.age then return a.age < b.age end
  return a.name < b.name
end)
local o = {}
for _, p in ipairs(people) do o[#o + 1] = p.name .. ":" .. p.age end
print(show(o))

-- a big array with a pseudo-random permutation (deterministic generator)
local big, x = {}, 12345
for i = 1, 5000 do
  x = (x * 1103515245 + 12345) % 2147483648
  big[i] = x
end
table.sort(big)
local sorted = true
for i = 2, #big do if big[i - 1] > big[i] then sorted = false end end
print("5000 sorted", sorted, big[1], big[2500], big[5000])
table.sort(big, function(a, b) return a % 1000 < b % 1000 or (a % 1000 == b % 1000 and a < b) end)
print(big[1], big[2], big[5000])

-- comparator that raises an error: the error goes through sort
print(pcall(table.sort, { 3, 1, 2 }, function(a, b) error("comparator failed") end))
local ok, e = pcall(table.sort, { 3, 1, 2 }, function(a, b) error({ code = 7 }) end)
print(ok, type(e), e.code)
-- an inconsistent comparator (always true) on a small array (<= 100
-- elements, so no clock-based pivot): detected as an invalid order function
local bad = {}
for i = 1, 50 do bad[i] = i % 7 end
print(pcall(table.sort, bad, function(a, b) return true end))
-- values that cannot be compared
print(pcall(table.sort, { 1, "x", 2 }))
print(pcall(table.sort, { {}, {} }))
-- sorting with __lt metamethods
local mt = { __lt = function(a, b) return a.v < b.v end }
local objs = {}
for i, v in ipairs({ 4, 1, 3, 2 }) do objs[i] = setmetatable({ v = v }, mt) end
table.sort(objs)
print(objs[1].v, objs[2].v, objs[3].v, objs[4].v)
print(pcall(table.sort, { 1, 2 }, 3))
local empty = {}
table.sort(empty); table.sort({ 1 })
print(#empty)
