-- @args: alpha beta 3 4.5
-- Command-line arguments reach the script (the harness passes the words after
-- "@args:" above to `lua -`): the global 'arg' table and the main chunk's '...'.
-- Then varargs: select('#') with nils, negative select, table.pack/unpack,
-- varargs through pcall and coroutines, and the limits on unpacking.
print("argc", #arg, "arg[0]", arg[0])
for i = 1, #arg do print("arg", i, arg[i], math.type(arg[i]) or type(arg[i])) end
print("main ...", select("#", ...), ...)

local function count(...) return select("#", ...) end
print(count(), count(nil), count(nil, nil), count(1, nil, 3, nil), count(table.unpack({ 1, nil, 3 })))
print(select(2, "a", "b", "c"), select(-1, "a", "b", "c"), select(-3, "a", "b", "c"))
print(pcall(select, 0, 1), pcall(select, -4, 1, 2, 3))
print(select("#", select(5, 1, 2)))

local function sum(...)
  local s = 0
  for i = 1, select("#", ...) do s = s + (select(i, ...) or 0) end
  return s
end
print(sum(1, 2, 3, nil, 5), sum())

local function pass(...) return ... end
print(pass(1, nil, 3))
print((pass(1, 2, 3)))
print(pass(1, 2), pass(3, 4))
local t = { pass(1, 2), pass(3, 4) }
print(#t, t[1], t[2], t[3])

local function tail(...) return select("#", ...), ... end
print(tail(nil, nil, nil))
print(pcall(pass, "a", "b"))
local co = coroutine.wrap(function(...)
  local got = table.pack(...)
  local back = table.pack(coroutine.yield(got.n, ...))
  return back.n, table.unpack(back, 1, back.n)
end)
print(co(1, nil, 3))
print(co(nil, nil))

-- many values
local many = {}
for i = 1, 200 do many[i] = i end
print(select("#", table.unpack(many)), select(200, table.unpack(many)))
print(string.char(table.unpack({ 76, 117, 97 })))
print(math.max(table.unpack(many)), math.min(table.unpack(many)))

-- varargs in table constructors and string.format
local function fmt(...) return string.format(string.rep("%s", select("#", ...), ","), ...) end
print(fmt(1, "two", 3.0, true, nil))
-- '...' in the main chunk is a vararg function too
local main = load("return select('#', ...), ...")
print(main("x", nil))
