-- A program: Conway's game of life on a torus, a binary-heap priority queue
-- driving a discrete-event bank simulation with classes, and matrix
-- multiplication with integer results.
local W, H = 20, 10
local grid = {}
for y = 1, H do grid[y] = {} for x = 1, W do grid[y][x] = false end end
for _, c in ipairs({ { 2, 1 }, { 3, 2 }, { 1, 3 }, { 2, 3 }, { 3, 3 }, { 10, 5 }, { 11, 5 }, { 12, 5 } }) do
  grid[c[2]][c[1]] = true
end
local function step(g)
  local n = {}
  for y = 1, H do
    n[y] = {}
    for x = 1, W do
      local c = 0
      for dy = -1, 1 do for dx = -1, 1 do
        if (dx ~= 0 or dy ~= 0) and g[(y + dy - 1) % H + 1][(x + dx - 1) % W + 1] then c = c + 1 end
      end end
      n[y][x] = c == 3 or (c == 2 and g[y][x])
    end
  end
  return n
end
for _ = 1, 24 do grid = step(grid) end
for y = 1, H do
  local row = {}
  for x = 1, W do row[x] = grid[y][x] and "#" or "." end
  print(table.concat(row))
end

local Heap = {}
Heap.__index = Heap
function Heap.new(less) return setmetatable({ n = 0, less = less }, Heap) end
function Heap:push(v)
  self.n = self.n + 1
  local i = self.n
  self[i] = v
  while i > 1 do
    local p = i // 2
    if not self.less(self[i], self[p]) then break end
    self[i], self[p] = self[p], self[i]
    i = p
  end
end
function Heap:pop()
  if self.n == 0 then return nil end
  local top = self[1]
  self[1] = self[self.n]; self[self.n] = nil; self.n = self.n - 1
  local i = 1
  while true do
    local l, r, m = 2 * i, 2 * i + 1, i
    if l <= self.n and self.less(self[l], self[m]) then m = l end
    if r <= self.n and self.less(self[r], self[m]) then m = r end
    if m == i then break end
    self[i], self[m] = self[m], self[i]
    i = m
  end
  return top
end

-- bank: customers arrive at fixed pseudo-random times, two tellers
local events = Heap.new(function(a, b) return a.t < b.t or (a.t == b.t and a.seq < b.seq) end)
local seq = 0
local function schedule(t, kind, who) seq = seq + 1; events:push({ t = t, kind = kind, who = who, seq = seq }) end
local x = 7
local function rnd(n) x = (x * 48271) % 2147483647; return x % n end
local t = 0
for id = 1, 40 do t = t + 1 + rnd(5); schedule(t, "arrive", { id = id, service = 2 + rnd(8) }) end
local free, queue, waited, served, lastt = 2, {}, 0, 0, 0
while true do
  local ev = events:pop()
  if not ev then break end
  lastt = ev.t
  if ev.kind == "arrive" then
    ev.who.arrived = ev.t
    if free > 0 then free = free - 1; schedule(ev.t + ev.who.service, "leave", ev.who)
    else queue[#queue + 1] = ev.who end
  else
    served = served + 1
    if #queue > 0 then
      local nxt = table.remove(queue, 1)
      waited = waited + (ev.t - nxt.arrived)
      schedule(ev.t + nxt.service, "leave", nxt)
    else free = free + 1 end
  end
end
print("served", served, "total wait", waited, "end time", lastt, string.format("avg %.3f", waited / served))

-- heap sort of pseudo-random numbers
local h = Heap.new(function(a, b) return a < b end)
for _ = 1, 500 do h:push(rnd(100000)) end
local prev, sorted, count = -1, true, 0
while true do
  local v = h:pop()
  if not v then break end
  if v < prev then sorted = false end
  prev, count = v, count + 1
end
print("heap sort", count, sorted)

local function matmul(a, b)
  local n, m, p = #a, #b, #b[1]
  local c = {}
  for i = 1, n do
    c[i] = {}
    for j = 1, p do
      local s = 0
      for k = 1, m do s = s + a[i][k] * b[k][j] end
      c[i][j] = s
    end
  end
  return c
end
local A = {}
for i = 1, 12 do A[i] = {} for j = 1, 12 do A[i][j] = (i * j + i + j) % 7 - 3 end end
local P = A
for _ = 1, 5 do P = matmul(P, A) end
local tr = 0
for i = 1, 12 do tr = tr + P[i][i] end
print("trace(A^6)", tr, P[1][1], P[12][12], math.type(P[3][4]))
