-- An uncaught error whose value is a table without __tostring: lua.c prints
-- "lua: (error object is a table value)" and exits with status 1.
print("raising a table")
error({ code = 42 })
