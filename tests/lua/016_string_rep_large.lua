-- Large strings: string.rep of a few MB, concatenation, table.concat of many
-- pieces, searching them, and the size limit ("resulting string too large").
local big = string.rep("abcdefgh", 1 << 19) -- 4 MiB
print(#big, big:sub(-8), big:byte(1 << 21))
local count = select(2, big:gsub("h", "h", 1000))
print("limited gsub", count)
print(big:find("ha", 1, true), big:find("hh", 1, true))
local withsep = string.rep("xy", 100000, "--")
print(#withsep, withsep:sub(1, 12), withsep:sub(-6))
local parts = {}
for i = 1, 20000 do parts[i] = tostring(i) end
local joined = table.concat(parts, ",")
print(#joined, joined:sub(1, 20), joined:sub(-20))
local s = ""
for i = 1, 2000 do s = s .. string.char(65 + i % 26) end
print(#s, s:sub(1, 30))
-- a simple checksum over the big string
local sum = 0
for i = 1, #big, 4099 do sum = (sum * 31 + big:byte(i)) % 1000000007 end
print("checksum", sum)
print(pcall(string.rep, "x", math.maxinteger))
print(pcall(string.rep, "xx", 1 << 62, ","))
print(pcall(string.rep, "", 0), #string.rep("", 1000), #string.rep("", 1000, "ab"))
-- once dropped, the memory is given back to the collector's count
big, parts, joined, withsep, s = nil, nil, nil, nil, nil
collectgarbage()
print(collectgarbage("count") < 1024)
