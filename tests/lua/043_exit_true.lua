-- os.exit(true) exits with EXIT_SUCCESS (0) immediately: the code after it
-- does not run, and without the 'close' argument finalizers do not run.
setmetatable({}, { __gc = function() print("finalizer must not run") end })
KEEP = setmetatable({}, { __gc = function() print("finalizer must not run either") end })
print("before exit")
os.exit(true)
print("not reached")
