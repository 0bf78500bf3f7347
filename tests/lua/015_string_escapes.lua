-- String literals: every escape sequence, \u{...} (up to 2^31 - 1 in 5.4),
-- \z, decimal and hex escapes, long brackets of several levels, and how the
-- lexer reports bad escapes (through load).
local function bytes(s)
  local t = {}
  for i = 1, #s do t[#t + 1] = s:byte(i) end
  return table.concat(t, " ")
end
print(bytes("\a\b\f\n\r\t\v\\\"\'"))
print(bytes("\65\066\0677\x41\x4a\x4B\0\z
             after-z"))
print(bytes("\u{0}\u{41}\u{7F}\u{80}\u{7FF}\u{800}\u{FFFF}\u{10000}\u{10FFFF}"))
print(bytes("\u{110000}\u{7FFFFFFF}"), #"\u{7FFFFFFF}")
print("\u{48}\u{65}\u{6C}\u{6C}\u{6F} \u{4E16}\u{754C} \u{1F600}")
print("tab:\tend", 'single \'quoted\'', "double \"quoted\"")
print("line one\
line two")
local long = [[
first line (the newline after [[ is skipped)
  second ]] .. [==[
with ]] and ]=] inside]==]
print(long)
print(#[[]], #[[
]], [=[a]]b]=], [[\n is not an escape here]])
-- CR LF in a long string becomes a single newline
print(bytes(load("return [[a\r\nb\n\rc\r\rd]]")()))
-- bad escapes are syntax errors
for _, src in ipairs({ [["\q"]], [["\x4"]], [["\256"]], [["\u{}"]], [["\u{80000000}"]], [["\u41"]],
  [["unfinished]], "[[unfinished long", "'\\", [["\u{110000"]] }) do
  print(select(2, load("return " .. src, "=src")))
end
