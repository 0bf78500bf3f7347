-- The table library: insert/remove at every position and their bounds errors,
-- concat with separators and ranges, unpack with ranges, pack's n, move
-- (overlapping, to another table).
local function show(t, n)
  local parts = {}
  for i = 1, n or #t do parts[#parts + 1] = tostring(t[i]) end
  return "{" .. table.concat(parts, ",") .. "}"
end
local t = { 10, 20, 30 }
table.insert(t, 40); table.insert(t, 1, 5); table.insert(t, 3, 15)
print(show(t), #t)
print(table.remove(t), table.remove(t, 1), table.remove(t, 2), show(t))
print(table.remove({}), table.remove({}, 0), #t, table.remove(t, #t + 1), show(t))
print(pcall(table.insert, t, 10, 1))
print(pcall(table.insert, t, 0, 1))
print(pcall(table.insert, t, 1, 2, 3))
print(pcall(table.remove, t, 7))
print(pcall(table.insert, nil, 1))

print(table.concat({ 1, 2, 3 }), table.concat({ 1, 2, 3 }, ", "), table.concat({ "a", "b", "c" }, "-", 2),
  table.concat({ "a", "b", "c" }, "-", 2, 2), table.concat({}, "x"), table.concat({ "a" }, "x", 3, 2))
print(table.concat({ 1, 2.5, "s" }, " "), pcall(table.concat, { 1, {}, 3 }))
print(pcall(table.concat, { 1, 2 }, ",", 1, 3))

print(table.unpack({ 1, 2, 3 }))
print(table.unpack({ 1, 2, 3 }, 2))
print(table.unpack({ 1, 2, 3 }, 2, 5))
print(table.unpack({ 1, 2, 3 }, 3, 1))
print(select("#", table.unpack({}, 1, 3)), pcall(table.unpack, {}, 1, 1e7))
local p = table.pack(1, nil, 3, nil)
print(p.n, p[1], p[2], p[3], p[4], #table.pack())

local m = { 1, 2, 3, 4, 5 }
table.move(m, 1, 3, 3)       -- overlapping, forwards
print(show(m))
m = { 1, 2, 3, 4, 5 }
table.move(m, 3, 5, 1)       -- overlapping, backwards
print(show(m))
local dst = table.move({ "a", "b", "c" }, 1, 3, 2, { "z" })
print(show(dst), show(table.move({ 1, 2 }, 1, 0, 1, { 9 })))
print(pcall(table.move, {}, 1, math.maxinteger, 2))

-- a queue and a stack built on the library
local q = {}
for i = 1, 5 do table.insert(q, i * i) end
local out = {}
while #q > 0 do out[#out + 1] = table.remove(q, 1) end
print(table.concat(out, " "))
-- __index/__newindex are honoured by the table functions (5.4)
local logged = {}
local proxy = setmetatable({}, {
  __index = function(_, k) return k * 100 end,
  __len = function() return 3 end,
})
print(table.concat(proxy, ","), table.unpack(proxy))
local w = setmetatable({}, { __newindex = function(t, k, v) logged[#logged + 1] = k .. "=" .. v; rawset(t, k, v) end })
table.insert(w, "x"); table.insert(w, "y")
print(table.concat(logged, " "))
