# Third-party pieces for guests that are ordinary static C programs linked
# against musl, all built from Debian's source packages (fetched with
# `apt-get source` by scripts/thirdparty.sh and cached under build/src):
#
#     make musl        musl (static) for x86-64 and i386 in $(MUSL_X86_64), $(MUSL_I386)
#     make lua-guests  Lua 5.4's interpreter (lua.c, Debian's lua5.4 source) linked
#                      with $(MUSL_CC): build/guests/lua (x86-64), build/guests/lua32 (i686);
#                      Lua in the function model: lua_eval, lua_eval32, and the plugin
#                      guest lua_plugin, lua_plugin32 (guests/lua_plugin/)
#
# Included from the top-level Makefile after its first (default) target.
# Guests built with $(MUSL_CC) are static, non-PIE ET_EXEC executables; they
# run natively on Linux too. Nothing here is rebuilt when nothing changed.

MUSL_X86_64 := build/musl/x86_64
MUSL_I386 := build/musl/i386
MUSL_CC := scripts/musl-cc
MUSL_STAMPS := build/musl/x86_64.stamp build/musl/i386.stamp

LUA_SRC := build/src/lua5.4
LUA_STAMP := build/src/lua5.4.stamp
LUA_GUESTS := build/guests/lua build/guests/lua32

# Debian builds the interpreter with `make linux-readline CC='gcc -std=gnu99'`
# plus dpkg-buildflags. Kept: -std=gnu99, -O2, -Wall -Wextra, LUA_COMPAT_5_3
# (upstream's and Debian's default). LUA_USE_POSIX instead of LUA_USE_LINUX:
# a static musl program has no dlopen (LUA_USE_DLOPEN) and no readline
# (LUA_USE_READLINE). Not taken: -D_FORTIFY_SOURCE (musl has no __*_chk
# functions), -fstack-protector-strong and -g (gcc's defaults are kept, as
# $(MUSL_CC) keeps them), -Wl,-E -ldl (nothing to export to, no loader).
LUA_CFLAGS := -std=gnu99 -O2 -Wall -Wextra -DLUA_COMPAT_5_3 -DLUA_USE_POSIX

# Debian's 0002-lua-modules-paths.patch makes luaconf.h include this header,
# which debian/rules generates; the value only shapes package.cpath, which a
# static interpreter cannot use anyway.
LUA_MULTIARCH_64 := x86_64-linux-gnu
LUA_MULTIARCH_32 := i386-linux-gnu

.PHONY: musl lua-guests
musl: $(MUSL_STAMPS)
lua-guests: $(LUA_GUESTS)

# One run of the script builds both architectures (and does nothing when its
# stamps are current); the touch marks the stamps current for make.
$(MUSL_STAMPS) &: scripts/thirdparty.sh
	@echo "  MUSL  $(MUSL_X86_64) $(MUSL_I386)"
	$(Q)scripts/thirdparty.sh musl $(if $(Q),>/dev/null)
	$(Q)touch $(MUSL_STAMPS)

$(LUA_STAMP): scripts/thirdparty.sh
	@echo "  SRC   $(LUA_SRC)"
	$(Q)scripts/thirdparty.sh lua $(if $(Q),>/dev/null)
	$(Q)touch $@

# src/*.c except luac.c: the interpreter with every standard library. The list
# is globbed by the shell (the tree may not exist when make reads this file).
LUA_C = $$(ls $(LUA_SRC)/src/*.c | grep -v '/luac\.c$$')

build/guests/lua: $(MUSL_STAMPS) $(LUA_STAMP) $(MUSL_CC) mk/thirdparty.mk
	@mkdir -p build/guests/lua-include/64
	@echo "  LUA   $@"
	$(Q)printf '#define DEB_HOST_MULTIARCH "%s"\n' $(LUA_MULTIARCH_64) \
		>build/guests/lua-include/64/lua5.4-deb-multiarch.h
	$(Q)$(MUSL_CC) $(LUA_CFLAGS) -Ibuild/guests/lua-include/64 -o $@ $(LUA_C)

build/guests/lua32: $(MUSL_STAMPS) $(LUA_STAMP) $(MUSL_CC) mk/thirdparty.mk
	@mkdir -p build/guests/lua-include/32
	@echo "  LUA   $@"
	$(Q)printf '#define DEB_HOST_MULTIARCH "%s"\n' $(LUA_MULTIARCH_32) \
		>build/guests/lua-include/32/lua5.4-deb-multiarch.h
	$(Q)$(MUSL_CC) -m32 $(LUA_CFLAGS) -Ibuild/guests/lua-include/32 -o $@ $(LUA_C)

# Lua as a library in the function model (guests/lua_eval.c), linked with the
# sandlet guest library by scripts/sandlet-cc (mk/guests.mk).
LUA_LIB_C = $$(ls $(LUA_SRC)/src/*.c | grep -v '/luac\?\.c$$')
LUA_EVAL_GUESTS := build/guests/lua_eval build/guests/lua_eval32
lua-guests: $(LUA_EVAL_GUESTS)

build/guests/lua_eval: guests/lua_eval.c build/guests/lua build/guests/libsandlet-guest64.a scripts/sandlet-cc
	@echo "  LUA   $@"
	$(Q)scripts/sandlet-cc $(LUA_CFLAGS) -I$(LUA_SRC)/src -Ibuild/guests/lua-include/64 -o $@ $< $(LUA_LIB_C)

build/guests/lua_eval32: guests/lua_eval.c build/guests/lua32 build/guests/libsandlet-guest32.a scripts/sandlet-cc
	@echo "  LUA   $@"
	$(Q)scripts/sandlet-cc -m32 $(LUA_CFLAGS) -I$(LUA_SRC)/src -Ibuild/guests/lua-include/32 -o $@ $< $(LUA_LIB_C)

# The Lua plugin guest (guests/lua_plugin/, docs/lua-plugin.md): Load, Eval
# and Call (JSON) in the function model, the host's functions as
# host.NAME(...). Lua's library is compiled once per architecture into an
# archive, with Lua's flags as above; the plugin's own files with the
# project's (-std=c11 -Werror), linked by scripts/sandlet-cc.
LUA_PLUGIN_SRC := $(wildcard guests/lua_plugin/*.c)
LUA_PLUGIN_DEPS := $(LUA_PLUGIN_SRC) $(wildcard guests/lua_plugin/*.h) guests/json_double.h include/sandlet_guest.h scripts/sandlet-cc \
	mk/thirdparty.mk
LUA_PLUGIN_CFLAGS := -std=c11 -O2 -Wall -Wextra -Werror -DLUA_COMPAT_5_3 -DLUA_USE_POSIX -I$(LUA_SRC)/src
LUA_PLUGIN_GUESTS := build/guests/lua_plugin build/guests/lua_plugin32
LUA_ARCHIVE_64 := build/guests/lua-lib/liblua64.a
LUA_ARCHIVE_32 := build/guests/lua-lib/liblua32.a
lua-guests: $(LUA_PLUGIN_GUESTS)

# build/guests/lua and lua32 come first: they make the multiarch headers.
$(LUA_ARCHIVE_64): build/guests/lua mk/thirdparty.mk
	@echo "  LUA   $@"
	$(Q)rm -rf $(@D)/obj64 && mkdir -p $(@D)/obj64
	$(Q)for f in $(LUA_LIB_C); do \
		$(MUSL_CC) $(LUA_CFLAGS) -Ibuild/guests/lua-include/64 -c $$f -o $(@D)/obj64/$$(basename $$f .c).o || exit 1; \
	done
	$(Q)rm -f $@ && ar rcs $@ $(@D)/obj64/*.o

$(LUA_ARCHIVE_32): build/guests/lua32 mk/thirdparty.mk
	@echo "  LUA   $@"
	$(Q)rm -rf $(@D)/obj32 && mkdir -p $(@D)/obj32
	$(Q)for f in $(LUA_LIB_C); do \
		$(MUSL_CC) -m32 $(LUA_CFLAGS) -Ibuild/guests/lua-include/32 -c $$f -o $(@D)/obj32/$$(basename $$f .c).o || exit 1; \
	done
	$(Q)rm -f $@ && ar rcs $@ $(@D)/obj32/*.o

build/guests/lua_plugin: $(LUA_PLUGIN_DEPS) $(LUA_ARCHIVE_64) build/guests/libsandlet-guest64.a
	@echo "  LUA   $@"
	$(Q)scripts/sandlet-cc $(LUA_PLUGIN_CFLAGS) -Ibuild/guests/lua-include/64 -o $@ $(LUA_PLUGIN_SRC) $(LUA_ARCHIVE_64)

build/guests/lua_plugin32: $(LUA_PLUGIN_DEPS) $(LUA_ARCHIVE_32) build/guests/libsandlet-guest32.a
	@echo "  LUA   $@"
	$(Q)scripts/sandlet-cc -m32 $(LUA_PLUGIN_CFLAGS) -Ibuild/guests/lua-include/32 -o $@ $(LUA_PLUGIN_SRC) $(LUA_ARCHIVE_32)
