-- Pattern character classes over all 256 byte values (the C locale: lua.c
-- never calls setlocale), their complements, sets and ranges; string.upper
-- and string.lower over all bytes; the "pattern too complex" limit.
local all = {}
for i = 0, 255 do all[#all + 1] = string.char(i) end
all = table.concat(all)
for _, cls in ipairs({ "a", "c", "d", "g", "l", "p", "s", "u", "w", "x" }) do
  local matched = all:gsub("[^%" .. cls .. "]", "")
  local rest = all:gsub("%" .. cls, "")
  local viacomp = all:gsub("%" .. cls:upper(), "")
  print("%" .. cls, #matched, #rest, #matched + #rest == 256, viacomp == matched,
    (matched:gsub("[%c%s\128-\255]", function(c) return string.format("<%d>", c:byte()) end)))
end
print(#all:gsub("[%a%d]", ""), #all:gsub("[^%a%d_]", ""), #all:gsub("[a-fA-F0-9]", ""))
print(#all:gsub("[%]]", ""), #all:gsub("[]]", ""), #all:gsub("[^]]", ""), #all:gsub("[a-]", ""))
print(#all:gsub(".", ""), #all:gsub("[\0-\127]", ""), #all:gsub("%z", ""))
local up, low = all:upper(), all:lower()
print(#up, up:sub(66, 128), low:sub(66, 128), up:sub(129) == all:sub(129))
print(("MiXeD 123 ÀÉ"):upper(), ("MiXeD 123 ÀÉ"):lower())
-- matching depth: every 'a?' that matches is one level of C recursion, and
-- the matcher stops at 200 levels (MAXCCALLS)
print(pcall(string.match, string.rep("a", 300), string.rep("a?", 300)))
print(#string.match(string.rep("a", 150), string.rep("a?", 150)))
