-- goto: 'continue' in loops, breaking out of nested loops, backward jumps
-- forming a loop, a state machine, labels at the end of blocks, and the
-- compile errors for jumps into a local's scope, undefined and duplicate labels.
local odd = {}
for i = 1, 10 do
  if i % 2 == 0 then goto continue end
  odd[#odd + 1] = i
  ::continue::
end
print(table.concat(odd, " "))

local found
for i = 1, 10 do
  for j = 1, 10 do
    if i * j == 42 then found = i .. "x" .. j; goto done end
  end
end
::done::
print("found", found)

local n, acc = 0, {}
::top::
n = n + 1
acc[#acc + 1] = n
if n < 5 then goto top end
print(table.concat(acc, ","))

-- a state machine that recognises signed decimal integers
local function recognise(s)
  local i = 1
  local c
  ::start::
  c = s:sub(i, i)
  if c == "+" or c == "-" then i = i + 1 end
  c = s:sub(i, i)
  if not c:match("%d") then goto reject end
  ::digits::
  i = i + 1
  c = s:sub(i, i)
  if c:match("%d") then goto digits end
  if c == "" then goto accept end
  ::reject::
  do return false end
  ::accept::
  return true
end
for _, s in ipairs({ "123", "-45", "+0", "", "-", "12a", "a12", "007" }) do
  io.write(string.format("%q=%s ", s, tostring(recognise(s))))
end
print()

-- each goto into a new iteration gets a fresh local for closures
local fs = {}
do
  local k = 1
  ::again::
  local captured = k * 100
  fs[#fs + 1] = function() return captured end
  k = k + 1
  if k <= 3 then goto again end
end
print(fs[1](), fs[2](), fs[3]())

for _, src in ipairs({
  "goto nowhere",
  "do goto l end local x = 1 ::l:: print(x)",
  "::a:: ::a::",
  "do ::b:: end goto b",
  "for i = 1, 2 do end goto continue",
  "local x ::l:: goto l", -- fine: backward jump
  "do goto e; local y = 1; ::e:: end", -- fine: label at the end of the block
}) do
  local f, err = load(src, "=goto")
  print(f and "compiles" or err)
end
