# SQLite in the function model (guests/sqlite.c, docs/sqlite-guest.md):
# Debian's sqlite3 source package, whose own build generates the amalgamation
# (scripts/thirdparty.sh sqlite, cached under build/src), compiled for a
# static musl guest and linked with the sandlet guest library by
# scripts/sandlet-cc.
#
#     make sqlite-guests   build/guests/sqlite (x86-64), build/guests/sqlite32 (i686)
#
# Also: the fixture databases of tests/e2e/sqlite.sh (made with Debian's
# sqlite3 shell) in $(BUILD)/fixtures/sqlite, and libsqlite3 for
# tests/vcpu/test_e2e_sqlite.c, which makes its databases with it.
#
# Included from the top-level Makefile after mk/thirdparty.mk and
# mk/guests.mk (MUSL_CC, MUSL_STAMPS, GUEST_CC_DEPS).

SQLITE_AMALG := build/src/sqlite3-amalgamation
SQLITE_STAMP := build/src/sqlite3-amalgamation.stamp
SQLITE_GUESTS := build/guests/sqlite build/guests/sqlite32
SQLITE_OBJ := build/guests/sqlite-obj

# How SQLite is compiled for a guest (the same for sqlite3.c and our code,
# which includes sqlite3.h):
#   SQLITE_OS_OTHER=1        no built-in VFS: guests/sqlite.c supplies the only
#                            one, which opens no file (a guest has no file
#                            system; the memdb VFS of sqlite3_deserialize sits
#                            on top of it), so nothing can reach for one
#   SQLITE_THREADSAFE=0      a guest has one thread: no mutexes at all
#   SQLITE_OMIT_LOAD_EXTENSION  a static guest cannot dlopen
#   SQLITE_OMIT_WAL          WAL needs shared memory and files, which a memory
#                            database has not
#   SQLITE_OMIT_SHARED_CACHE one connection per guest
#   SQLITE_TEMP_STORE=3      temporary tables, indices and sorts always in
#                            memory, whatever PRAGMA temp_store says: never a
#                            temporary file
#   SQLITE_DEFAULT_MEMSTATUS=0  no memory statistics: a faster malloc path
#                            and no global counters written on every
#                            allocation (fewer pages dirtied per request)
#   SQLITE_DQS=0             "double-quoted" strings are identifiers only, as
#                            SQL says (no silent fallback to string literals)
#   SQLITE_USE_ALLOCA        scratch space on the stack instead of malloc
# sqlite3.c is SQLite's code, not ours: its own warnings are not ours to fix
# (-w); guests/sqlite.c gets -Werror on top of sandlet-cc's -Wall -Wextra.
SQLITE_DEFS := -DSQLITE_OS_OTHER=1 -DSQLITE_THREADSAFE=0 -DSQLITE_OMIT_LOAD_EXTENSION -DSQLITE_OMIT_WAL \
    -DSQLITE_OMIT_SHARED_CACHE -DSQLITE_TEMP_STORE=3 -DSQLITE_DEFAULT_MEMSTATUS=0 -DSQLITE_DQS=0 \
    -DSQLITE_USE_ALLOCA
SQLITE_LIB_CFLAGS := -std=gnu11 -O2 -w -D_GNU_SOURCE $(SQLITE_DEFS)

.PHONY: sqlite-guests sqlite-fixtures
sqlite-guests: $(SQLITE_GUESTS)

$(SQLITE_STAMP): scripts/thirdparty.sh
	@echo "  SRC   $(SQLITE_AMALG)"
	$(Q)scripts/thirdparty.sh sqlite $(if $(Q),>/dev/null)
	$(Q)touch $@

$(SQLITE_OBJ)/sqlite3-64.o: $(SQLITE_STAMP) $(MUSL_STAMPS) $(MUSL_CC) mk/sqlite.mk
	@mkdir -p $(dir $@)
	@echo "  SQLITE $@"
	$(Q)$(MUSL_CC) $(SQLITE_LIB_CFLAGS) -c $(SQLITE_AMALG)/sqlite3.c -o $@

$(SQLITE_OBJ)/sqlite3-32.o: $(SQLITE_STAMP) $(MUSL_STAMPS) $(MUSL_CC) mk/sqlite.mk
	@mkdir -p $(dir $@)
	@echo "  SQLITE $@"
	$(Q)$(MUSL_CC) -m32 $(SQLITE_LIB_CFLAGS) -c $(SQLITE_AMALG)/sqlite3.c -o $@

build/guests/sqlite: guests/sqlite.c guests/json_double.h $(SQLITE_OBJ)/sqlite3-64.o $(GUEST_CC_DEPS) build/guests/libsandlet-guest64.a
	@echo "  GUEST $@"
	$(Q)scripts/sandlet-cc -Werror $(SQLITE_DEFS) -I$(SQLITE_AMALG) -o $@ $< $(SQLITE_OBJ)/sqlite3-64.o

build/guests/sqlite32: guests/sqlite.c guests/json_double.h $(SQLITE_OBJ)/sqlite3-32.o $(GUEST_CC_DEPS) build/guests/libsandlet-guest32.a
	@echo "  GUEST $@"
	$(Q)scripts/sandlet-cc -m32 -Werror $(SQLITE_DEFS) -I$(SQLITE_AMALG) -o $@ $< $(SQLITE_OBJ)/sqlite3-32.o

# The databases tests/e2e/sqlite.sh uses, made by the script itself with
# Debian's sqlite3 shell (they travel into the KVM lab with the build tree,
# where there is no sqlite3).
SQLITE_FIXTURES := $(BUILD)/fixtures/sqlite/people.db
sqlite-fixtures: $(SQLITE_FIXTURES)
tests: sqlite-fixtures

$(SQLITE_FIXTURES): tests/e2e/sqlite.sh
	@mkdir -p $(dir $@)
	@echo "  SQLITE $(dir $@)"
	$(Q)tests/e2e/sqlite.sh --fixtures $(dir $@)

# test_e2e_sqlite makes its databases with Debian's libsqlite3 (VCPU_LIBS:
# the top-level Makefile's rule for tests/vcpu).
$(BUILD)/tests/vcpu/test_e2e_sqlite: VCPU_LIBS := -lsqlite3
