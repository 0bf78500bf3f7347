-- Output: print with many values, tabs between them, tostring and __tostring
-- and __name; io.write with strings and numbers (integers as %d, floats as
-- %.14g), chained writes, io.stdout:write, io.stderr, setvbuf and flush, and
-- io.write errors for values it cannot write. stdin holds the script, so it
-- is not read here.
print()
print(nil)
print(1, 2, 3)
print(nil, false, true, 0, -0.0, 1e100, "s", "")
local many = {}
for i = 1, 250 do many[i] = i end
print(table.unpack(many))
local mixed = {}
for i = 1, 100 do mixed[i] = (i % 3 == 0) and i / 4 or ((i % 3 == 1) and ("s" .. i) or (i % 2 == 0)) end
print(table.unpack(mixed, 1, 100))
print(setmetatable({}, { __tostring = function() return "via __tostring" end }), "after")
print(("x"):rep(5000):len(), #("y"):rep(70000))
io.write("io.write: ", 1, " ", 2.5, " ", -0.0, " ", 1e15, " ", 2 ^ 63, " ", math.mininteger, "\n")
local f = io.write("chained ")
print(f == io.stdout, io.type(f), io.type(io.stderr), io.type(42))
io.stdout:write("stdout:write ", "with ", "several ", "arguments\n"):write("and chained\n")
io.stderr:write("this goes to stderr\n")
io.stderr:write("stderr, numbers: ", 42, " ", 0.5, "\n")
print(io.stdout:setvbuf("full", 1024), io.stdout:flush(), io.flush())
for i = 1, 3 do io.write(i, i < 3 and "," or "\n") end
io.stdout:setvbuf("no")
io.write("unbuffered now\n")
io.stdout:setvbuf("line")
print(pcall(io.write, {}))
print(pcall(io.write, nil))
print(pcall(io.stdout.write, io.stdout, true))
-- a long line built in pieces and written at once
local parts = {}
for i = 1, 2000 do parts[i] = string.format("%04d", i) end
io.write(table.concat(parts, " "), "\n")
-- binary data through stdout is passed through unchanged
local bin = {}
for i = 0, 255 do bin[#bin + 1] = string.char(i) end
io.write(table.concat(bin), "\n")
print(string.format("%5s|%-5s|%05d", "ab", "cd", 42))
print("last line without a final newline follows")
io.write("no newline at the end")
