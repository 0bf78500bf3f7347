-- Stack overflow is a catchable error: unbounded Lua recursion ("stack
-- overflow" when the Lua stack reaches its limit of about a million slots),
-- unbounded recursion through C functions and metamethods ("C stack
-- overflow", at 200 nested C calls), and a parser nesting limit. Only whether
-- the message mentions a stack overflow is printed: the message also carries
-- a position and, for Lua recursion, a traceback-free summary that could
-- change with the size of a frame. After each error the state is usable.
-- Each frame of 'runaway' holds 120 locals, so the limit is reached after
-- some 8000 calls rather than 300000: the same error in a fraction of the
-- time (the lab emulates the CPU).
local function runaway(n)
  local v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15, v16, v17, v18, v19, v20, v21, v22, v23, v24, v25, v26, v27, v28, v29, v30, v31, v32, v33, v34, v35, v36, v37, v38, v39, v40, v41, v42, v43, v44, v45, v46, v47, v48, v49, v50, v51, v52, v53, v54, v55, v56, v57, v58, v59, v60, v61, v62, v63, v64, v65, v66, v67, v68, v69, v70, v71, v72, v73, v74, v75, v76, v77, v78, v79, v80, v81, v82, v83, v84, v85, v86, v87, v88, v89, v90, v91, v92, v93, v94, v95, v96, v97, v98, v99, v100, v101, v102, v103, v104, v105, v106, v107, v108, v109, v110, v111, v112, v113, v114, v115, v116, v117, v118, v119, v120
  return 1 + runaway(n + 1)
end
local ok, msg = pcall(runaway, 1)
print("lua recursion", ok, string.find(msg, "stack overflow") ~= nil)

-- recursion through a metamethod: every level is a C call
local mt = {}
mt.__index = function(t, k) return t[k .. "x"] end
local obj = setmetatable({}, mt)
ok, msg = pcall(function() return obj.a end)
print("__index recursion", ok, string.find(msg, "stack overflow") ~= nil)

-- recursion through pcall itself
local function viapcall() local _, e = pcall(viapcall); error(e, 0) end
ok, msg = pcall(viapcall)
print("pcall recursion", ok, string.find(tostring(msg), "stack overflow") ~= nil)

-- recursion through string.gsub callbacks
local function viagsub(s) return (s:gsub(".", viagsub)) end
ok, msg = pcall(viagsub, "a")
print("gsub recursion", ok, string.find(msg, "stack overflow") ~= nil)

-- recursion through a coroutine resuming a new coroutine
local function nest() local co = coroutine.wrap(nest); return co() end
ok, msg = pcall(nest)
print("coroutine recursion", ok, string.find(msg, "stack overflow") ~= nil)

-- a deeply nested expression exceeds the parser's limits
local src = "return " .. string.rep("(", 1000) .. "1" .. string.rep(")", 1000)
local f, err = load(src)
print("deep parens", f == nil, err and (err:find("overflow") ~= nil or err:find("too many") ~= nil))

-- still alive: a normal deep recursion works after the overflows
local function depth(n) if n == 0 then return 0 end return 1 + depth(n - 1) end
print("recovered", depth(10000))
print(select("#", pcall(error)))
