-- An uncaught error: lua.c prints "lua: " (its argv[0]), the message with its
-- position and a traceback on stderr, and exits with status 1. Everything
-- printed before stays on stdout.
local function validate(cfg)
  if type(cfg.port) ~= "number" then
    error("port must be a number, got " .. type(cfg.port))
  end
end
print("validating")
validate({ port = "eighty" })
print("not reached")
