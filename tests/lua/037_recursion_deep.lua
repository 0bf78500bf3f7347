-- Deep recursion: non-tail recursion 150000 levels deep (Lua calls do not use
-- the C stack, the Lua stack grows to hold them), proper tail calls a million
-- times (constant stack), mutual tail recursion, and deep recursion through
-- varargs and closures.
local function depth(n)
  if n == 0 then return 0 end
  return 1 + depth(n - 1) -- not a tail call
end
print("non-tail", depth(150000))

local function sumto(n, acc)
  if n == 0 then return acc end
  return sumto(n - 1, acc + n) -- tail call
end
print("tail", sumto(1000000, 0))

local is_even, is_odd
function is_even(n) if n == 0 then return true end return is_odd(n - 1) end
function is_odd(n) if n == 0 then return false end return is_even(n - 1) end
print("mutual", is_even(100000), is_odd(77777))

-- a tail call through a method and through a varargs function
local obj = { n = 0 }
function obj:count(k) if k == 0 then return self.n end self.n = self.n + 1 return self:count(k - 1) end
print("method tail", obj:count(100000))
local function va(n, ...) if n == 0 then return select("#", ...) end return va(n - 1, ...) end
print("vararg tail", va(50000, 1, 2, 3))

-- non-tail recursion with several locals per frame
local function tree(d)
  if d == 0 then return 1 end
  local left = tree(d - 1)
  local right = d % 3 == 0 and tree(d - 1) or 0
  return left + right + 1
end
print("tree", tree(30))

-- Ackermann(2, n) and a recursive-descent expression evaluator
local function ack(m, n)
  if m == 0 then return n + 1 end
  if n == 0 then return ack(m - 1, 1) end
  return ack(m - 1, ack(m, n - 1))
end
print("ack", ack(2, 100))
local function eval(s)
  local pos = 1
  local expr
  local function peek() return s:sub(pos, pos) end
  local function num()
    if peek() == "(" then pos = pos + 1; local v = expr(); pos = pos + 1; return v end
    local d = s:match("^%d+", pos); pos = pos + #d; return tonumber(d)
  end
  local function term() local v = num(); while peek() == "*" do pos = pos + 1; v = v * num() end return v end
  function expr() local v = term(); while peek() == "+" do pos = pos + 1; v = v + term() end return v end
  return expr()
end
local nested = string.rep("(", 2000) .. "1+2*3" .. string.rep(")", 2000)
print("eval", eval("2*(3+4)*5+1"), eval(nested))
