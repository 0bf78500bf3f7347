-- string.format: every conversion Lua accepts (c d i u o x X a A e E f g G p
-- q s %), the flags each one allows, widths and precisions, and the errors for
-- the ones it rejects.
local F = string.format
print(F("[%c%c%c]", 76, 117, 97), F("[%-3c]", 65), #F("%c", 0))
print(F("[%d][%5d][%-5d][%05d][%+d][% d][%.3d][%i]", 42, 42, 42, 42, 42, 42, 7, -3))
print(F("[%u][%5u][%-5u][%05u]", 42, 42, 42, 42))
print(F("[%o][%#o][%x][%#x][%X][%#X][%08x][%-8X]", 8, 8, 255, 255, 255, 255, 48879, 48879))
print(F("[%d][%x]", math.mininteger, math.mininteger))
print(F("[%e][%E][%.0e][%#.0e]", 12345.6789, 12345.6789, 12345.6789, 12345.6789))
print(F("[%f][%.0f][%#.0f][%.1f][%.1f][%.1f]", 2.5, 2.5, 2.5, 0.25, 0.35, -0.05))
print(F("[%g][%G][%g][%G][%#g][%.0g]", 1e-10, 1e-10, 123456789, 0.0001234, 0.5, 2.5))
print(F("[%a][%A][%.1a][%+a]", 1.0, 255.5, 1 / 3, 2.0))
print(F("[%s][%10s][%-10s][%.2s][%5.1s]", "lua", "lua", "lua", "lua", "lua"))
print(F("[%s][%s][%s][%s][%s]", nil, true, false, 12, 1.5))
print(F("[%p][%p][%p]", 1, nil, true)) -- values that are not objects: "(null)"
print(F("%5.2f%%", 99.5), F("%%d"), F("no conversions"))
print(F("%s", setmetatable({}, { __tostring = function() return "custom!" end })))
-- integers given as floats with an exact value are accepted by %d
print(F("%d %x", 3.0, 2 ^ 31))
-- long strings keep their full length with a plain %s
print(#F("%s", string.rep("x", 1000)), #F("%-5s|", string.rep("y", 200)))
-- %q: a form that reads back as the same value
print(F("%q", "line1\nline2\t\0end\"q\"\\ \127 \200 \r"))
print(F("%q %q %q %q", 1, -1, math.mininteger, math.maxinteger))
print(F("%q %q %q %q", 0.5, 1e100, 1 / 0, -1 / 0))
print(F("%q %q %q", true, false, nil))
print(load("return " .. F("%q", "a\0b\255\n"))() == "a\0b\255\n")
print(load("return " .. F("%q", 0.1))() == 0.1, load("return " .. F("%q", math.mininteger))() == math.mininteger)

local bad = {
  { "%y", 1 }, { "%#d", 1 }, { "% x", 1 }, { "%+s", "a" }, { "%0s", "a" }, { "%#c", 65 },
  { "%10q", "a" }, { "%123d", 1 }, { "%.123f", 1 }, { "%d", 1.5 }, { "%d", "x" },
  { "%d" }, { "%s %s", 1 }, { "%q", {} }, { "%-+ #0d", 1 }, { "%ld", 1 }, { "%5", 1 },
  { "%s", "a\0b", "ignored" }, { "%.3s", "a\0b" },
}
for _, case in ipairs(bad) do
  print(case[1], pcall(F, table.unpack(case)))
end
-- too many arguments are ignored
print(F("%d", 1, 2, 3))
