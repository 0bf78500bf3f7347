-- os.time, os.clock, os.date and os.difftime as a program uses them. The
-- harness sets TZ=UTC. Current times are never printed: only their types,
-- that they are plausible, and that the clock does not go backwards. Fixed
-- times are formatted with os.date, in UTC ("!") and in local time (UTC here).
local now = os.time()
print("time", math.type(now), now > 1577836800) -- later than 2020-01-01
local c1 = os.clock()
local x = 0
for i = 1, 200000 do x = x + i % 7 end
local c2 = os.clock()
print("clock", math.type(c1), c2 >= c1, c1 >= 0, x)
print("date types", type(os.date()), type(os.date("*t")), type(os.date("!*t").year))
local t = os.date("*t")
print("fields", t.year >= 2020, t.month >= 1 and t.month <= 12, type(t.isdst))

print(os.time({ year = 2020, month = 1, day = 1, hour = 0 }))
print(os.time({ year = 2000, month = 2, day = 29, hour = 12, min = 30, sec = 15 }))
print(os.time({ year = 1970, month = 1, day = 1, hour = 0 }))
print(os.time({ year = 2021, month = 13, day = 1, hour = 0 }), os.time({ year = 2021, month = 3, day = 0 }))
print(os.time({ year = 2038, month = 1, day = 19, hour = 3, min = 14, sec = 8 }))
print(os.date("!%Y-%m-%d", 0), os.date("!%Y-%m-%d %H:%M:%S", 1234567890))
print(os.date("%Y-%m-%d %H:%M:%S", 1700000000), os.date("!%H:%M:%S", 3661))
print(os.date("!%j %U %W %w %a %A %b %B %y %p %%", 1000000000))
print(os.date("!%d/%m/%Y %I:%M %p", 951782400 + 13 * 3600))
print(os.date("!%D %T %R %F %e %u %V %G %g %h %n %t %C", 1600000000))
local d = os.date("!*t", 1234567890)
local keys = {}
for k, v in pairs(d) do keys[#keys + 1] = k .. "=" .. tostring(v) end
table.sort(keys)
print(table.concat(keys, " "))
-- round trip: date table -> time (local time is UTC)
print(os.time(os.date("*t", 1600000000)) == 1600000000)
-- normalisation of out-of-range fields writes back into the table
local norm = { year = 2020, month = 2, day = 30, hour = 25, min = 61, sec = 61 }
local nt = os.time(norm)
print(nt, norm.year, norm.month, norm.day, norm.hour, norm.min, norm.sec, norm.yday, norm.wday)
print(os.difftime(nt, 1577836800), math.type(os.difftime(10, 5)), pcall(os.difftime, 5))
print(pcall(os.date, "%Ez", 0))
print(pcall(os.date, "%Q", 0))
print(pcall(os.time, { year = 2020 }))
print(pcall(os.time, { year = 2020, month = 1, day = 1.5 }))
print(pcall(os.time, { year = "x", month = 1, day = 1 }))
print(pcall(os.date, "*t", 2 ^ 60))
