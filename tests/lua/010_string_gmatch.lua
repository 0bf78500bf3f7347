-- string.gmatch: iterating words, key=value pairs, captures and position
-- captures, empty matches, the init argument (5.4), anchored patterns.
local words = {}
for w in string.gmatch("one two  three\tfour\nfive", "%a+") do words[#words + 1] = w end
print(#words, table.concat(words, ","))

local kv = {}
for k, v in string.gmatch("a=1, b=22, ccc=333,d=", "(%w+)=(%w*)") do kv[#kv + 1] = k .. ":" .. v end
print(table.concat(kv, " "))

local pos = {}
for p, c in string.gmatch("banana", "()(a)") do pos[#pos + 1] = p .. c end
print(table.concat(pos, " "))

local empties = {}
for e in string.gmatch("abc", "x*") do empties[#empties + 1] = "[" .. e .. "]" end
print(#empties, table.concat(empties))

local digits = {}
for d in string.gmatch("a1b22c333", "%d*") do digits[#digits + 1] = "<" .. d .. ">" end
print(table.concat(digits))

local from5 = {}
for w in string.gmatch("alpha beta gamma delta", "%a+", 7) do from5[#from5 + 1] = w end
print(table.concat(from5, "|"))

local anch = {}
for w in string.gmatch("aaa", "^a") do anch[#anch + 1] = w end
print("anchored matches", #anch)

-- CSV line splitting with quoted fields
local function csv(line)
  local out, i = {}, 1
  line = line .. ","
  while i <= #line do
    local c = line:sub(i, i)
    if c == '"' then
      local field, j = "", i + 1
      while true do
        local a, b = line:find('"', j, true)
        field = field .. line:sub(j, a - 1)
        if line:sub(b + 1, b + 1) == '"' then
          field, j = field .. '"', b + 2
        else
          i = line:find(",", b + 1, true) + 1
          break
        end
      end
      out[#out + 1] = field
    else
      local a = line:find(",", i, true)
      out[#out + 1] = line:sub(i, a - 1)
      i = a + 1
    end
  end
  return out
end
local fields = csv('plain,"quoted, with comma","with ""quotes""",,last')
for i, v in ipairs(fields) do print(i, "[" .. v .. "]") end

-- iterator is independent per call
local it1, it2 = ("x1 x2 x3"):gmatch("x(%d)"), ("y7 y8"):gmatch("y(%d)")
print(it1(), it2(), it1(), it2(), it1(), it2(), it1())

-- counting lines including empty ones
local text = "l1\n\nl3\nl4\n"
local n = 0
for line in (text):gmatch("([^\n]*)\n") do n = n + 1 end
print("lines", n)
