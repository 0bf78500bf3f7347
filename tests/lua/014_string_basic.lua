-- The rest of the string library: sub with negative and out-of-range indices,
-- byte/char, rep with separators, reverse, len, upper/lower, comparison
-- (byte order in the C locale), string methods through the string metatable.
local s = "Hello, Lua!"
print(s:sub(1, 5), s:sub(-4), s:sub(-4, -2), s:sub(8, 100), s:sub(0), s:sub(5, 2), s:sub(-100, 2))
print(s:sub(math.mininteger, math.maxinteger) == s, ("x"):sub(2), ("abc"):sub(3, 3))
print(s:byte(), s:byte(-1), s:byte(1, 3), s:byte(100), select("#", s:byte(5, 1)))
print(string.char(), string.char(72, 105), #string.char(0, 1, 255))
print(pcall(string.char, 256), pcall(string.char, -1))
print(("ab"):rep(3), ("ab"):rep(3, ", "), ("x"):rep(0), ("x"):rep(-1), ("x"):rep(1, "sep"))
print(s:reverse(), (""):reverse(), s:len(), #s, #"", #"\0\0")
print(s:upper(), s:lower())
print("a" < "b", "a" < "B", "abc" < "abd", "ab" < "abc", "" < "a", "Z" < "a", "a\0b" < "a\0c", "a\0" > "a")
print("10" < "9", "-1" < "-2", "é" > "z")
local words = { "pear", "Apple", "banana", "apple", "Banana", "cherry", "10", "9", "" }
table.sort(words)
print(table.concat(words, ","))
print(#tostring(12345), ("%d items"):format(3), ("x"):rep(3):upper())
print(getmetatable("").__index == string, ("abc").len == string.len, #string.format("%s", "x"))
print(pcall(function() return ("x") + 1 end))
print(pcall(function() return ("x"):nosuch() end))
print(pcall(string.sub), pcall(string.rep, "x"), pcall(string.upper, {}))
-- strings are values: interning makes equal strings equal
local a, b = "con" .. "cat", table.concat({ "con", "cat" })
print(a == b, rawequal(a, b), #(a .. b))
-- long strings are not interned but compare equal
local l1, l2 = string.rep("long", 20), string.rep("lon", 20, "g") .. "g"
print(l1 == l2, #l1)
