-- tostring of the basic values and tonumber of strings in every form the
-- lexer and tonumber accept (and reject); bases 2..36.
print(tostring(nil), tostring(true), tostring(false), tostring(0), tostring(-0.0))
print(tostring("s"), tostring(12), tostring(12.0), tostring(-1e15), tostring(1e-7))
-- functions and tables print as "function: 0x...": only the prefix is stable
print(tostring(print):match("^function: ") ~= nil, tostring({}):match("^table: ") ~= nil)
print(type(nil), type(1), type("x"), type({}), type(print), type(true), type(coroutine.create(print)))

local inputs = {
  "10", "  10  ", "-10", "+10", "10.", ".5", "5e2", "5E-2", "0x1F", "0X1p4", "-0x10",
  "0x.8", "1e", "e1", "1 0", "", " ", "inf", "nan", "0x", "1.5e+308", "1e400", "-1e400",
  "\t\n12\r", "12a", "0b101", "1_000", "9223372036854775807", "9223372036854775808",
  "-9223372036854775809", "0xA.8p1", "00012", "1e-400",
}
for _, s in ipairs(inputs) do
  local n = tonumber(s)
  print(string.format("%-26s %s %s", string.format("%q", s), tostring(n), math.type(n) or "-"))
end

print(tonumber("ff", 16), tonumber("FF", 16), tonumber("zz", 36), tonumber("101", 2),
  tonumber("777", 8), tonumber("-ff", 16), tonumber("  11  ", 2), tonumber("2", 2),
  tonumber("8", 8), tonumber("1.5", 10), tonumber("", 10), tonumber("ffffffffffffffff", 16))
print(tonumber(12), tonumber(1.5), tonumber(nil), tonumber({}), tonumber(true))
print(pcall(tonumber, "10", 1), pcall(tonumber, "10", 37), pcall(tonumber, 10, 16))
print(pcall(tonumber))

-- the lexer's numerals
print(0x10, 0xA.8p0, 0x.1p4, 1e2, .5, 3., 0x1P-2, 1E+2, 0xffp-4)
-- automatic coercion in arithmetic and concatenation
print("10" + 5, "10" * "2", "3.0" + 1, "0x10" + 0, 10 .. 20, 1.5 .. "|", -0.0 .. "|", 2 ^ 63 .. "")
print(pcall(function() return "abc" + 1 end))
print(pcall(function() return {} .. "x" end))
print(math.type("10" + 0), math.type("10.0" + 0), math.type("1e1" + 0), math.type(10 // "2"))
