-- A program: a JSON encoder (sorted keys, so the output is deterministic)
-- and a recursive-descent decoder, round-tripping nested data, unicode
-- escapes, numbers, and reporting syntax errors with positions.
local json = {}

local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function is_array(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  for i = 1, n do if t[i] == nil then return false end end
  return true, n
end

function json.encode(v, indent, level)
  level = level or 0
  local t = type(v)
  if t == "nil" then return "null"
  elseif t == "boolean" then return tostring(v)
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then error("cannot encode " .. tostring(v):gsub("^-", "")) end
    if math.type(v) == "integer" then return string.format("%d", v) end
    return string.format("%.14g", v)
  elseif t == "string" then return encode_string(v)
  elseif t == "table" then
    local pad = indent and ("\n" .. string.rep(indent, level + 1)) or ""
    local close = indent and ("\n" .. string.rep(indent, level)) or ""
    local arr, n = is_array(v)
    local out = {}
    if arr and n > 0 then
      for i = 1, n do out[i] = pad .. json.encode(v[i], indent, level + 1) end
      return "[" .. table.concat(out, ",") .. close .. "]"
    end
    local keys = {}
    for k in pairs(v) do
      if type(k) ~= "string" then error("non-string key: " .. tostring(k)) end
      keys[#keys + 1] = k
    end
    table.sort(keys)
    if #keys == 0 then return "{}" end
    for i, k in ipairs(keys) do
      out[i] = pad .. encode_string(k) .. (indent and ": " or ":") .. json.encode(v[k], indent, level + 1)
    end
    return "{" .. table.concat(out, ",") .. close .. "}"
  end
  error("cannot encode a " .. t)
end

function json.decode(s)
  local pos = 1
  local function fail(msg) error(string.format("json: %s at position %d", msg, pos), 0) end
  local function ws() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local value
  local function str()
    pos = pos + 1
    local buf = {}
    while true do
      local c = s:sub(pos, pos)
      if c == "" then fail("unterminated string") end
      if c == '"' then pos = pos + 1; break end
      if c == "\\" then
        local e = s:sub(pos + 1, pos + 1)
        local map = { b = "\b", f = "\f", n = "\n", r = "\r", t = "\t", ['"'] = '"', ["\\"] = "\\", ["/"] = "/" }
        if map[e] then buf[#buf + 1] = map[e]; pos = pos + 2
        elseif e == "u" then
          local hex = s:match("^%x%x%x%x", pos + 2) or fail("bad unicode escape")
          buf[#buf + 1] = utf8.char(tonumber(hex, 16)); pos = pos + 6
        else fail("bad escape") end
      else buf[#buf + 1] = c; pos = pos + 1 end
    end
    return table.concat(buf)
  end
  function value()
    ws()
    local c = s:sub(pos, pos)
    if c == "{" then
      pos = pos + 1
      local obj = {}
      ws()
      if s:sub(pos, pos) == "}" then pos = pos + 1; return obj end
      while true do
        ws()
        if s:sub(pos, pos) ~= '"' then fail("expected key") end
        local k = str()
        ws()
        if s:sub(pos, pos) ~= ":" then fail("expected ':'") end
        pos = pos + 1
        obj[k] = value()
        ws()
        local d = s:sub(pos, pos); pos = pos + 1
        if d == "}" then return obj end
        if d ~= "," then pos = pos - 1; fail("expected ',' or '}'") end
      end
    elseif c == "[" then
      pos = pos + 1
      local arr = {}
      ws()
      if s:sub(pos, pos) == "]" then pos = pos + 1; return arr end
      while true do
        arr[#arr + 1] = value()
        ws()
        local d = s:sub(pos, pos); pos = pos + 1
        if d == "]" then return arr end
        if d ~= "," then pos = pos - 1; fail("expected ',' or ']'") end
      end
    elseif c == '"' then return str()
    elseif s:find("^true", pos) then pos = pos + 4; return true
    elseif s:find("^false", pos) then pos = pos + 5; return false
    elseif s:find("^null", pos) then pos = pos + 4; return nil
    else
      local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
      if not num or num == "" then fail("unexpected character '" .. c .. "'") end
      pos = pos + #num
      return math.tointeger(tonumber(num)) or tonumber(num)
    end
  end
  local v = value()
  ws()
  if pos <= #s then fail("trailing garbage") end
  return v
end

local data = {
  name = "sandlet", version = 1, ratio = 0.75, tags = { "kvm", "snapshot", "lua" },
  nested = { deep = { deeper = { list = { 1, 2.5, -3, 1e-7, 12345678901234 } } } },
  flags = { enabled = true, debug = false }, empty_obj = {}, text = 'quote " backslash \\ tab \t nl \n ctl \1',
  unicode = "héllo ✓",
}
local compact = json.encode(data)
print(compact)
print(json.encode(data, "  "))
local back = json.decode(compact)
print(json.encode(back) == compact, back.nested.deep.deeper.list[5], math.type(back.version))
print(json.encode(json.decode('  {"a" : [1, 2, {"b": null}], "c": "\\u00e9\\u2713", "d": -0.5e2} ')))
for _, bad in ipairs({ '{"a" 1}', "[1, 2", '"unterminated', "[1,]", "tru", '{"a":1} x', '"\\x"' }) do
  print(pcall(json.decode, bad))
end
print(pcall(json.encode, { 0 / 0 }))
print(pcall(json.encode, { [true] = 1 }))
print(pcall(json.encode, print))
-- a larger document
local rows = {}
for i = 1, 300 do rows[i] = { id = i, name = "item" .. i, price = i * 1.25, tags = { "t" .. (i % 5) } } end
local big = json.encode({ rows = rows })
local again = json.decode(big)
print(#big, #again.rows, again.rows[300].price, json.encode(again) == big)
