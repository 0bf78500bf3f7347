# The Lua corpus (tests/lua/NNN_name.lua): the expected output of every script,
# made at build time by Debian's lua5.4 (glibc) on this machine, for
# tests/e2e/lua.sh to compare the musl guests build/guests/lua and lua32 with.
#
#     make lua-expected   (also part of `make tests`, hence `make` and `make test`)
#
#     build/fixtures/lua/NAME.lua   a copy of the script (the KVM lab gets
#                                   build/fixtures, not tests/lua)
#     build/fixtures/lua/NAME.out   its stdout, NAME.err its stderr,
#     build/fixtures/lua/NAME.rc    its exit status
#
# tests/e2e/lua.sh --expected does the runs, so that the reference and the
# guests run the same way (stdin = the script, `lua - ARGS` with argv[0] "lua",
# TZ=UTC LANG=C SANDLET_LUA_VAR=..., 8 MiB of stack, a 64 MiB limit for the
# scripts marked "-- @memlimit"; see the comment at the top of lua.sh). A
# script's files are remade when the script, lua.sh or this file changes.
# Everything lives under build/, not $(BUILD): the sanitizer variant adds
# nothing here (lua.sh runs the corpus for build only).
#
# Included from the top-level Makefile after its first (default) target.
# Needs lua5.4 (scripts/deps.sh installs it); LUA_REF=PROGRAM overrides it.

LUA_TESTS := $(sort $(wildcard tests/lua/*.lua))
LUA_FIX := build/fixtures/lua
LUA_EXPECTED := $(patsubst tests/lua/%.lua,$(LUA_FIX)/%.rc,$(LUA_TESTS))

.PHONY: lua-expected
# The recipe drops the files of scripts that no longer exist in tests/lua.
lua-expected: $(LUA_EXPECTED)
	$(Q)for f in $(LUA_FIX)/*.lua; do \
		[ -e "$$f" ] || continue; \
		n=$${f##*/}; n=$${n%.lua}; \
		[ -e "tests/lua/$$n.lua" ] || rm -f "$$f" "$(LUA_FIX)/$$n.out" "$(LUA_FIX)/$$n.err" "$(LUA_FIX)/$$n.rc"; \
	done

tests: lua-expected

$(LUA_FIX)/%.rc: tests/lua/%.lua tests/e2e/lua.sh mk/lua-tests.mk
	@mkdir -p $(LUA_FIX)
	@echo "  LUA   $(LUA_FIX)/$*.out"
	$(Q)tests/e2e/lua.sh --expected $(LUA_FIX) $<
