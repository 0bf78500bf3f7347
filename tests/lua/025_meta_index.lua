-- Metatables for table access and calls: __index (table and function, and
-- chains of them), __newindex (table and function), rawget/rawset bypassing
-- them, __call with arguments, __tostring, __name in error messages,
-- __metatable protection, and a small class system with inheritance.
local defaults = { color = "red", size = 10 }
local obj = setmetatable({ size = 3 }, { __index = defaults })
print(obj.color, obj.size, rawget(obj, "color"), obj.missing)

local computed = setmetatable({}, { __index = function(t, k) return k .. "!" end })
print(computed.hello, computed[1], rawget(computed, "hello"))

-- a chain three levels deep
local a = { fromA = "A" }
local b = setmetatable({ fromB = "B" }, { __index = a })
local c = setmetatable({ fromC = "C" }, { __index = b })
print(c.fromA, c.fromB, c.fromC, c.none)

-- __newindex to a table and to a function
local store = {}
local p = setmetatable({}, { __newindex = store })
p.x = 1
print(rawget(p, "x"), store.x)
local log = {}
local ro = setmetatable({}, { __newindex = function(t, k, v) log[#log + 1] = k .. "<-" .. tostring(v) end })
ro.a = 1; ro.b = nil; ro[1] = true
print(table.concat(log, " "), next(ro))
rawset(ro, "direct", 5)
print(ro.direct)
-- __newindex is only consulted for absent keys
local seen = 0
local partial = setmetatable({ existing = 1 }, { __newindex = function(t, k, v) seen = seen + 1; rawset(t, k, v) end })
partial.existing = 2; partial.new = 3; partial.new = 4
print(seen, partial.existing, partial.new)

-- __call
local callable = setmetatable({ base = 100 }, { __call = function(self, x, y) return self.base + x, y end })
print(callable(1, "two"), pcall(callable, 5))
local multi = setmetatable({}, { __call = function(_, ...) return select("#", ...) end })
print(multi(), multi(nil, nil))

-- __tostring and __name
local pt = setmetatable({ x = 1, y = 2 }, { __tostring = function(s) return "(" .. s.x .. "," .. s.y .. ")" end })
print(pt, tostring(pt), string.format("%s", pt))
local named = setmetatable({}, { __name = "MyType" })
print(pcall(string.rep, named, 2))
print(pcall(function() return named + 1 end))
print(pcall(function() return #named < 1, named < named end))
print(tostring(named):match("^MyType: ") ~= nil)
local badts = setmetatable({}, { __tostring = function() return 42 end })
print(pcall(tostring, badts))

-- __metatable protects the metatable
local protected = setmetatable({}, { __metatable = "locked" })
print(getmetatable(protected), pcall(setmetatable, protected, {}))
print(getmetatable("abc").__index == string, getmetatable(1), getmetatable(print))

-- classes
local Animal = {}
Animal.__index = Animal
function Animal.new(name, sound) return setmetatable({ name = name, sound = sound }, Animal) end
function Animal:speak() return self.name .. " says " .. self.sound end
function Animal:kind() return "animal" end
local Dog = setmetatable({}, { __index = Animal })
Dog.__index = Dog
function Dog.new(name) local d = Animal.new(name, "woof"); return setmetatable(d, Dog) end
function Dog:kind() return "dog, an " .. Animal.kind(self) end
local d = Dog.new("rex")
print(d:speak(), d:kind(), getmetatable(d) == Dog, Animal.new("cat", "meow"):speak())
print(pcall(function() return d:fly() end))
print(pcall(setmetatable, {}, 1), pcall(setmetatable, 1, {}))
