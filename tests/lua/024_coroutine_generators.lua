-- Coroutines as a program would use them: a permutation generator, a
-- producer/filter/consumer pipeline, a prime sieve of chained coroutines, and
-- a round-robin scheduler with message passing.
local function permgen(a, n)
  n = n or #a
  if n <= 1 then coroutine.yield(a)
  else
    for i = 1, n do
      a[n], a[i] = a[i], a[n]
      permgen(a, n - 1)
      a[n], a[i] = a[i], a[n]
    end
  end
end
local function permutations(a)
  return coroutine.wrap(function() permgen(a) end)
end
local all = {}
for p in permutations({ "a", "b", "c", "d" }) do all[#all + 1] = table.concat(p) end
print(#all, table.concat(all, " "))

local function producer(items)
  return coroutine.create(function()
    for _, v in ipairs(items) do coroutine.yield(v) end
  end)
end
local function filter(src, pred)
  return coroutine.create(function()
    while true do
      local ok, v = coroutine.resume(src)
      if not v then return end
      if pred(v) then coroutine.yield(v) end
    end
  end)
end
local function consume(src)
  local got = {}
  while true do
    local _, v = coroutine.resume(src)
    if v == nil then break end
    got[#got + 1] = v
  end
  return got
end
local src = {}
for i = 1, 30 do src[i] = i end
print(table.concat(consume(filter(filter(producer(src), function(v) return v % 2 == 1 end),
  function(v) return v % 3 ~= 0 end)), ","))

local function gen(n)
  return coroutine.wrap(function() for i = 2, n do coroutine.yield(i) end end)
end
local function sieve(p, g)
  return coroutine.wrap(function()
    for n in g do if n % p ~= 0 then coroutine.yield(n) end end
  end)
end
local primes = {}
local g = gen(300)
while true do
  local p = g()
  if p == nil then break end
  primes[#primes + 1] = p
  g = sieve(p, g)
end
print(#primes, primes[#primes], table.concat(primes, " ", 1, 15))

-- scheduler: tasks yield to let others run; a mailbox passes messages
local tasks, trace, mailbox = {}, {}, {}
local function spawn(name, f) tasks[#tasks + 1] = { name = name, co = coroutine.create(f) } end
spawn("ping", function()
  for i = 1, 3 do mailbox[#mailbox + 1] = "ping" .. i; coroutine.yield() end
end)
spawn("pong", function()
  for _ = 1, 4 do
    if #mailbox > 0 then trace[#trace + 1] = "got " .. table.remove(mailbox, 1) end
    coroutine.yield()
  end
end)
spawn("count", function() for i = 1, 2 do trace[#trace + 1] = "count" .. i; coroutine.yield() end end)
while #tasks > 0 do
  for i = #tasks, 1, -1 do
    local t = tasks[i]
    local ok, err = coroutine.resume(t.co)
    if not ok then trace[#trace + 1] = "error " .. err end
    if coroutine.status(t.co) == "dead" then
      trace[#trace + 1] = t.name .. " finished"
      table.remove(tasks, i)
    end
  end
end
print(table.concat(trace, "; "))
