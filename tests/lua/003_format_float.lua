-- Floats through string.format: %g, %.14g, %.17g, %e, %f and the hexadecimal
-- %a / %A (exact, so they show every bit of the value).
local vals = {
  0.0, -0.0, 1.0, -1.5, 0.1, 1 / 3, 2 / 3, 100.0, 1e15, 1e16, 1e21, 1e-4, 1e-5,
  123.456, 2 ^ 53, 2 ^ -20, 3.14159265358979, 1e308, 2.2250738585072014e-308,
  0.000123456789, 9.999999999999999e22, 0.5, 1.25, 6.02214076e23,
}
for i, v in ipairs(vals) do
  print(i, string.format("%g|%.14g|%.17g|%.3g|%10.4g|%-10g|", v, v, v, v, v, v))
  print(i, string.format("%e|%.3e|%E|%f|%.2f|%12.5f|%+.1f|% .1f|", v, v, v, v, v, v, v, v))
  print(i, string.format("%a|%A|%.3a|%.0a|", v, v, v, v))
end

-- '#' keeps trailing zeros and the point; '0' pads with zeros
print(string.format("%#g|%#.3g|%#.0f|%08.3f|%-8.3f|%+08.2e|", 1.0, 2.0, 3.0, 3.14159, 3.14159, -12.5))
-- infinities through every float conversion
local inf = math.huge
print(string.format("%g %f %e %a %.3g %5.1f %-6g|", inf, inf, inf, inf, -inf, -inf, inf))
-- large precision
print(string.format("%.20f", 0.1))
print(string.format("%.30e", 1 / 3))
print(string.format("%.99f", 1 / 3):len())
-- %.14g of integers given as floats and of integers
print(string.format("%.14g %.14g %g %g", 2 ^ 63, 12345678901234567, 1, math.maxinteger))
-- Subnormals: only through decimal conversions. %a of a subnormal differs
-- between C libraries: glibc writes 5e-324 as 0x0.0000000000001p-1022, musl
-- normalises it to 0x1p-1074 (both are valid C); the corpus compares glibc
-- (Debian's lua5.4) with musl (the guest), so %a is used on normal numbers only.
print(string.format("%g %.14g %e", 5e-324, 2.5e-310, 2 ^ -1070))
