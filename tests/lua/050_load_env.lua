-- load with text chunks: string sources, reader functions, chunk names and
-- error messages, custom environments (_ENV tables), mode "t"/"b", and
-- binary chunks from string.dump loaded back (their bytes differ by
-- architecture, so only their behaviour is printed).
local f = load("return 1 + 2")
print(f())
print(load("syntax error here"))
print(load("x =", "=mychunk"))
print(load("x =", "@file.lua"))
print(load("return ...", "args")(4, 5, 6))
print(type(load(function() return nil end)), load(function() return nil end)()) -- an empty chunk
local pieces = { "return ", "'from ", "pieces'" }
local i = 0
print(load(function() i = i + 1; return pieces[i] end)())
print(load(function() return {} end))
print(load(function() error("reader failed") end))

-- environments
local env = { x = 10, tostring = tostring }
local g = load("y = x * 2; return tostring(y)", "envchunk", "t", env)
print(g(), env.y, rawget(_G, "y"))
print(load("return print", "noprint", "t", {})())
local sandbox = setmetatable({}, { __index = function(_, k) return "<" .. k .. ">" end })
print(load("return a, b, math", "sb", "t", sandbox)())
local counter = load("n = (n or 0) + 1; return n", "c", "t", {})
print(counter(), counter(), counter())
-- _ENV as a local
local function withenv()
  local _ENV = { print = print, value = "from local _ENV" }
  print(value)
end
withenv()
print(pcall(load("undefinedfn()", "=strict", "t", setmetatable({}, {
  __index = function(_, k) error("undefined variable '" .. k .. "'", 2) end,
}))))

-- modes
print(load("return 1", "m", "b"))
local dumped = string.dump(function(a, b) return a * b + 1 end)
print(type(dumped), dumped:sub(1, 4) == "\27Lua")
print(load(dumped, "bin", "t"))
local back = load(dumped, "bin", "b")
print(back(6, 7))
local stripped = load(string.dump(function(x) local y = x * 2; return y end, true))
print(stripped(21))
print(pcall(load, dumped:sub(1, 10)))
print(load(dumped:sub(1, 10)))

-- dofile and require are not usable without a file system; loadstring is gone
print(type(loadstring), type(require), type(package.loaded.string))
-- a tiny calculator built on load with an empty environment
for _, expr in ipairs({ "1 + 2 * 3", "(1 + 2) * 3", "2 ^ 10", "7 // 2", "1 / 0", "10 % 4", "bad +" }) do
  local fn, err = load("return " .. expr, "=expr", "t", {})
  print(expr, fn and fn() or err)
end
