-- next/pairs/ipairs: order only where Lua defines it (the array part, or keys
-- sorted before printing), # on sequences, raw access, __pairs, removing
-- fields during traversal, and table keys: 1 and 1.0 are the same key.
local t = { 10, 20, 30, nil, 50, x = 1, y = 2, [3.0] = 33, [-1] = "neg" }
local seq = {}
for i, v in ipairs(t) do seq[#seq + 1] = i .. "=" .. v end
print(table.concat(seq, " "))
local keys = {}
for k in pairs(t) do keys[#keys + 1] = tostring(k) end
table.sort(keys)
print(#keys, table.concat(keys, " "))
print(t[3], t[3.0], rawget(t, 3.0), math.type(next({ [2.0] = true })))
-- a table built by consecutive appends iterates in order with pairs
local arr = {}
for i = 1, 10 do arr[i] = i * i end
local order = {}
for k, v in pairs(arr) do order[#order + 1] = k .. ":" .. v end
print(table.concat(order, " "))
print(next({}), next({ 7 }), rawlen({ 1, 2 }), rawlen("abc"), rawequal(t, t), rawequal({}, {}))
print(pcall(next, {}, "nokey"))
-- clearing fields during traversal is allowed
local m = {}
for i = 1, 100 do m["k" .. i] = i end
local cleared = 0
for k, v in pairs(m) do
  if v % 2 == 0 then m[k] = nil; cleared = cleared + 1 end
end
local left = 0
for _ in pairs(m) do left = left + 1 end
print("cleared", cleared, "left", left)
-- __pairs
local proxied = setmetatable({}, { __pairs = function(self)
  local i = 0
  return function() i = i + 1; if i <= 3 then return i, i * 11 end end, self, nil
end })
for k, v in pairs(proxied) do io.write(k, "=", v, " ") end
print()
-- ipairs respects __index (5.4)
local virt = setmetatable({}, { __index = function(_, i) if i <= 4 then return i * 2 end end })
for i, v in ipairs(virt) do io.write(i, ":", v, " ") end
print()
-- counting words with a table, printed in sorted order
local text = "the cat and the dog and the bird saw the cat"
local freq = {}
for w in text:gmatch("%a+") do freq[w] = (freq[w] or 0) + 1 end
local ws = {}
for w in pairs(freq) do ws[#ws + 1] = w end
table.sort(ws, function(a, b) return freq[a] > freq[b] or (freq[a] == freq[b] and a < b) end)
for _, w in ipairs(ws) do io.write(w, "=", freq[w], " ") end
print()
-- keys of every type
local k = { [true] = "T", [false] = "F", [1] = "one", [1.5] = "1.5", ["1"] = "str1", [print] = "fn" }
print(k[true], k[false], k[1], k[1.0], k[1.5], k["1"], k[print], k[2 ^ 53], k[0 / 0 == 0 / 0])
print(pcall(function() k[nil] = 1 end))
print(k[nil])
-- length of a proper sequence, after removing from the end
local s = {}
for i = 1, 1000 do s[i] = i end
for i = 1000, 501, -1 do s[i] = nil end
print(#s)
-- 2^53 as float and integer keys
local big = {}
big[2 ^ 53] = "f"
print(big[9007199254740992], math.type(next(big)))
