-- string.gsub with string replacements (%0..%9, %%), table and function
-- replacements, false/nil meaning "keep", a limit on replacements, the
-- returned count, and the errors for bad replacement strings.
local function g(...)
  local r, n = string.gsub(...)
  print(string.format("%q", r), n)
end
g("hello world", "o", "0")
g("hello world", "o", "0", 1)
g("hello world", "(%w+)", "<%1>")
g("hello world", "%w+", "%0 %0")
g("hello", "", "-")
g("abc", ".", { a = 1, b = "B" })
g("abc", "%w", { a = "A", c = false })
g("$name is $age", "%$(%w+)", { name = "lua", age = 31 })
g("x = 1 + 2", "%d", function(d) return d * 10 end)
g("keep THIS and that", "%a+", function(w) if w:upper() == w then return nil end return w:upper() end)
g("swap pairs", "(%w)(%w)", "%2%1")
g("100%", "%%", "%%%%")
g("a.b.c", "%.", "/")
g("  many   spaces  ", "%s+", " ")
g("  trim  ", "^%s*(.-)%s*$", "%1")
g("abc", "b*", "-")
g("one two three", "(%w+)", "%1", 0)
g("one two three", "(%w+)", "%1", -1)
g("f(x) + g(y)", "%b()", "[]")
g("THE END", "%f[%w]%w+", function(w) return w:lower() end)
g("tab\tnew\nline", "%c", function(c) return string.format("\\%03d", c:byte()) end)
g("abc", "(a)(b)(c)", "%3%2%1%0")
g("hello", "l", "%%1")
g("áé", "[\128-\255]", "?")
print(pcall(string.gsub, "x", "x", "%2"))
print(pcall(string.gsub, "x", "x", "%"))
print(pcall(string.gsub, "x", "x", "%z"))
print(pcall(string.gsub, "x", "(x)", { x = {} }))
print(pcall(string.gsub, "x", "x", function() return {} end))
print(pcall(string.gsub, "x", "x", 1))
print(pcall(string.gsub, "x", "x", true))
print(pcall(string.gsub, "x", "x", { x = true }))
-- a small template engine
local tpl = "Dear {name}, you owe {amount} {currency}. {missing}!"
local vars = { name = "Ada", amount = string.format("%.2f", 1234.5), currency = "EUR" }
print((tpl:gsub("{(%w+)}", function(k) return vars[k] end)))
-- url escaping and unescaping
local function esc(s) return (s:gsub("[^%w%-_%.~]", function(c) return string.format("%%%02X", c:byte()) end)) end
local function unesc(s) return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)) end
local e = esc("a b&c=d/é?")
print(e, unesc(e) == "a b&c=d/é?")
