-- To-be-closed variables (<close>) and <const>: closing order, closing on
-- normal exit, break, return, goto out of a block and errors (the error is
-- passed to __close), an error inside __close, nil and false as no-ops,
-- values without __close rejected, and assignments to constants rejected at
-- compile time.
local log = {}
local function res(name)
  return setmetatable({ name = name }, {
    __close = function(self, err)
      log[#log + 1] = self.name .. (err and ("(" .. tostring(err):gsub("^stdin:%d+: ", "") .. ")") or "")
    end,
  })
end
local function flush(label)
  print(label, table.concat(log, " "))
  log = {}
end

do
  local a <close> = res("a")
  local b <close> = res("b")
  local c <const> = 42
  log[#log + 1] = "body" .. c
end
flush("block")

for i = 1, 3 do
  local r <close> = res("loop" .. i)
  if i == 2 then break end
end
flush("break")

local function f()
  local x <close> = res("x")
  return "returned"
end
print(f())
flush("return")

do
  local g <close> = res("g")
  goto out
end
::out::
flush("goto")

print(pcall(function()
  local e1 <close> = res("e1")
  local e2 <close> = res("e2")
  error("boom")
end))
flush("error")

print(pcall(function()
  local ok <close> = res("ok")
  local bad <close> = setmetatable({}, { __close = function() error("close error") end })
  return "unreached?"
end))
flush("close error")

do
  local n <close> = nil
  local f2 <close> = false
  log[#log + 1] = "nil and false are allowed"
end
flush("nil")

print(type(load("local x <close> = {}")))
print(pcall(load("local x <close> = {} return 1")))
print(pcall(load("local x <close> = 42")))
print(load("local x <const> = 1; x = 2"))
print(load("local x <close>, y <close> = 1, 2"))
print(load("local x <unknown> = 1"))
print(load("local x <const> = 10; local function f() return x * 2 end return f()")())

-- generic for closes its fourth value
local function iter_with_close()
  local i = 0
  return function() i = i + 1; if i <= 2 then return i end end, nil, nil, res("for-closer")
end
for i in iter_with_close() do log[#log + 1] = "it" .. i end
flush("for")
for i in iter_with_close() do break end
flush("for-break")
