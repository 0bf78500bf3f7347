-- The utf8 library: char, charpattern, codes, codepoint, len (with invalid
-- sequences and positions), offset, and the lax mode for surrogates and
-- code points beyond U+10FFFF.
local s = "héllo wörld ✓ 😀"
print(#s, utf8.len(s), utf8.char(104, 233, 0x2713, 0x1F600), utf8.char())
print(utf8.codepoint(s, 1, -1))
local cps = {}
for p, c in utf8.codes(s) do cps[#cps + 1] = p .. ":" .. c end
print(table.concat(cps, " "))
local chars = {}
for ch in s:gmatch(utf8.charpattern) do chars[#chars + 1] = ch end
print(#chars, chars[2], chars[#chars], utf8.charpattern == "[\0-\x7F\xC2-\xFD][\x80-\xBF]*")
print(utf8.offset(s, 1), utf8.offset(s, 3), utf8.offset(s, -1), utf8.offset(s, -2), utf8.offset(s, 0, 3), utf8.offset(s, 20))
print(utf8.len(s, 3))
print(utf8.len(s, -4), utf8.len("", 1), utf8.len("abc", 4))
print(pcall(utf8.len, s, 3, 2))
-- invalid sequences: len returns fail and the position of the first bad byte
print(utf8.len("abc\xffdef"))
print(utf8.len("\xe4\xb8"))
print(utf8.len("\xc0\x80")) -- overlong encoding
print(utf8.len("\xed\xa0\x80")) -- a surrogate
print(pcall(utf8.codepoint, "\xff"))
print(pcall(function() for _ in utf8.codes("ab\xffc") do end end))
print(pcall(utf8.offset, s, 1, 3))
-- lax mode accepts surrogates and values up to 2^31-1
print(utf8.len("\xed\xa0\x80", 1, -1, true), utf8.codepoint("\xed\xa0\x80", 1, 1, true))
print(#utf8.char(0x7FFFFFFF), utf8.codepoint(utf8.char(0x7FFFFFFF), 1, 1, true))
print(pcall(utf8.codepoint, utf8.char(0x110000)))
print(pcall(utf8.char, -1), pcall(utf8.char, 0x80000000))
-- encoding lengths at the boundaries
for _, cp in ipairs({ 0, 0x7F, 0x80, 0x7FF, 0x800, 0xFFFF, 0x10000, 0x10FFFF, 0x200000, 0x4000000 }) do
  local e = utf8.char(cp)
  io.write(string.format("%X:%d:%s ", cp, #e, (e:gsub(".", function(c) return string.format("%02x", c:byte()) end))))
end
print()
-- reversing a UTF-8 string by code points
local rev = {}
for _, c in utf8.codes("añb€c") do table.insert(rev, 1, utf8.char(c)) end
print(table.concat(rev))
