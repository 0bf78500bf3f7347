-- A program: text utilities: word wrapping and justification, roman
-- numerals both ways, base64 encoding and decoding, run-length encoding,
-- a Caesar cipher and a Levenshtein distance table.
local text = "Lua is a powerful, efficient, lightweight, embeddable scripting language. " ..
  "It supports procedural programming, object-oriented programming, functional programming, " ..
  "data-driven programming, and data description."
local function wrap(s, width)
  local lines, line = {}, ""
  for word in s:gmatch("%S+") do
    if #line + #word + 1 > width and #line > 0 then lines[#lines + 1] = line; line = word
    else line = (#line > 0) and (line .. " " .. word) or word end
  end
  if #line > 0 then lines[#lines + 1] = line end
  return lines
end
local function justify(line, width)
  local words = {}
  for w in line:gmatch("%S+") do words[#words + 1] = w end
  if #words == 1 then return line end
  local total = 0
  for _, w in ipairs(words) do total = total + #w end
  local gaps, spaces = #words - 1, width - total
  local out = {}
  for i, w in ipairs(words) do
    out[#out + 1] = w
    if i <= gaps then out[#out + 1] = string.rep(" ", spaces // gaps + (i <= spaces % gaps and 1 or 0)) end
  end
  return table.concat(out)
end
local lines = wrap(text, 40)
for i, l in ipairs(lines) do print("|" .. (i < #lines and justify(l, 40) or l) .. "|") end

local romans = { { 1000, "M" }, { 900, "CM" }, { 500, "D" }, { 400, "CD" }, { 100, "C" }, { 90, "XC" },
  { 50, "L" }, { 40, "XL" }, { 10, "X" }, { 9, "IX" }, { 5, "V" }, { 4, "IV" }, { 1, "I" } }
local function toroman(n)
  local out = {}
  for _, p in ipairs(romans) do while n >= p[1] do out[#out + 1] = p[2]; n = n - p[1] end end
  return table.concat(out)
end
local values = { I = 1, V = 5, X = 10, L = 50, C = 100, D = 500, M = 1000 }
local function fromroman(s)
  local total = 0
  for i = 1, #s do
    local v, nxt = values[s:sub(i, i)], values[s:sub(i + 1, i + 1)]
    if nxt and nxt > v then total = total - v else total = total + v end
  end
  return total
end
local ok = true
for n = 1, 3999 do if fromroman(toroman(n)) ~= n then ok = false end end
print(toroman(1994), toroman(2024), toroman(3888), fromroman("MCMXCIV"), "roundtrip 1..3999", ok)

local b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function enc64(s)
  return (s:gsub("..?.?", function(chunk)
    local n, len = 0, #chunk
    for i = 1, 3 do n = n * 256 + (chunk:byte(i) or 0) end
    local out = {}
    for i = 3, 0, -1 do
      local idx = (n >> (6 * i)) & 63
      out[#out + 1] = b64:sub(idx + 1, idx + 1)
    end
    if len < 3 then for i = len + 2, 4 do out[i] = "=" end end
    return table.concat(out)
  end))
end
local function dec64(s)
  s = s:gsub("=", "")
  return (s:gsub("..?.?.?", function(chunk)
    local n = 0
    for i = 1, 4 do
      local c = chunk:sub(i, i)
      n = n * 64 + (c ~= "" and (b64:find(c, 1, true) - 1) or 0)
    end
    local bytes = string.char((n >> 16) & 255, (n >> 8) & 255, n & 255)
    return bytes:sub(1, #chunk - 1)
  end))
end
for _, s in ipairs({ "", "f", "fo", "foo", "foob", "fooba", "foobar", "sandlet \0\255 bytes" }) do
  local e = enc64(s)
  print(string.format("%-28s %s", e, tostring(dec64(e) == s)))
end

-- run-length encoding ("%1*" would not work: a back-reference takes no quantifier)
local function rle(s)
  local out, i = {}, 1
  while i <= #s do
    local c = s:sub(i, i)
    local j = select(2, s:find("^" .. c:gsub("%p", "%%%0") .. "*", i))
    out[#out + 1] = (j - i + 1) .. c
    i = j + 1
  end
  return table.concat(out)
end
local function unrle(s) return (s:gsub("(%d+)(%D)", function(n, c) return c:rep(tonumber(n)) end)) end
print(rle("aaabccddddde"), rle("..**!"), unrle(rle("aaabccddddde")) == "aaabccddddde")
local function caesar(s, k)
  return (s:gsub("%a", function(c)
    local base = c:match("%l") and 97 or 65
    return string.char((c:byte() - base + k) % 26 + base)
  end))
end
print(caesar("Hello, World!", 3), caesar(caesar("Hello, World!", 3), -3))

local function lev(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end
print(lev("kitten", "sitting"), lev("flaw", "lawn"), lev("", "abc"), lev("sandlet", "sandlet"))
