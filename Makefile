# sandlet build. `make` builds the library, the CLI, the guests, the tests and
# the benchmarks into build/; `make test` builds a normal, an ASan+UBSan and a
# ThreadSanitizer variant and runs every suite; `make demo` builds everything
# and runs the demo.
# SAN=1 selects the ASan+UBSan variant (use with BUILD=build/asan); TSAN=1 the
# ThreadSanitizer variant (use with BUILD=build/tsan and the target tsan-tests:
# the library, the unit tests, the stress test and the CLI).

BUILD ?= build
SAN ?=
TSAN ?=
CC ?= gcc
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 20

BLAKE3_DIR ?= $(lastword $(sort $(wildcard /usr/share/cargo/registry/blake3-*/c)))

# Quiet by default; V=1 shows every command.
ifeq ($(V),1)
Q :=
else
Q := @
endif

WARN := -Wall -Wextra -Werror
CPPFLAGS := -Iinclude -Isrc/common -Isrc/host -D_GNU_SOURCE -I$(BLAKE3_DIR)
CFLAGS := -std=c11 $(WARN) -g -O2 -fPIC -pthread
LDFLAGS := -pthread
ifeq ($(SAN),1)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
CFLAGS += $(SANFLAGS)
LDFLAGS += $(SANFLAGS)
endif
# ThreadSanitizer: every object of the library (BLAKE3's C files too) and the
# test programs; executables are PIE (Debian's gcc default, as TSan needs).
# gcc warns that TSan does not model atomic_thread_fence (-Wtsan): the fences
# in snapfile_watch.c order the SIGBUS registry's seqlock, whose atomics TSan does
# see. TSan's options for the test programs (halt_on_error: a report fails
# the test at once) are built into them: tests/common/tsan_options.c.
ifeq ($(TSAN),1)
ifeq ($(SAN),1)
$(error SAN=1 and TSAN=1 cannot be combined)
endif
TSANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
CFLAGS += $(TSANFLAGS) $(shell $(CC) -Werror -Wno-tsan -E -x c /dev/null >/dev/null 2>&1 && echo -Wno-tsan)
LDFLAGS += $(TSANFLAGS)
TEST_EXTRA := tests/common/tsan_options.c
endif

COMMON_SRC := $(wildcard src/common/*.c)
# Backends live in subfolders of src/host (src/host/kvm/): one wildcard level.
HOST_SRC := $(wildcard src/host/*.c src/host/*/*.c)
LIB_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(COMMON_SRC) $(HOST_SRC))
# The guest kernels (mk/guests.mk), embedded in the library.
KERNEL_ELFS := build/kernel/kernel64 build/kernel/kernel32
KERNEL_BLOB_FLAGS := -DSL_KERNEL64='"build/kernel/kernel64"' -DSL_KERNEL32='"build/kernel/kernel32"'
KERNEL_BLOB_OBJ := $(BUILD)/obj/src/host/kernel_blob.o
LIB_OBJ += $(KERNEL_BLOB_OBJ)

# The official BLAKE3 C implementation as Debian ships it, with its SIMD paths
# (the dispatcher picks SSE2/SSE4.1/AVX2/AVX-512 at run time).
B3_C := blake3.c blake3_dispatch.c blake3_portable.c
B3_S := blake3_sse2_x86-64_unix.S blake3_sse41_x86-64_unix.S blake3_avx2_x86-64_unix.S blake3_avx512_x86-64_unix.S
B3_OBJ := $(patsubst %,$(BUILD)/obj/blake3/%.o,$(B3_C) $(B3_S))

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))
VCPU_SRC := $(wildcard tests/vcpu/test_*.c)
VCPU_BIN := $(patsubst tests/vcpu/%.c,$(BUILD)/tests/vcpu/%,$(VCPU_SRC))
BENCH_SRC := $(wildcard bench/bench_*.c)
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN := $(patsubst fuzz/%.c,build/fuzz/%,$(FUZZ_SRC))
TOOL_SRC := $(wildcard tools/*.c)

.PHONY: all lib tests bench fuzz fuzz-long deps test demo clean guests tsan-tests

all: lib tests bench guests lua-guests sqlite-guests $(BUILD)/demo $(BUILD)/hello_host $(BUILD)/serve $(if $(TOOL_SRC),$(BUILD)/sandlet)

lib: $(BUILD)/libsandlet.a $(BUILD)/libsandlet.so

deps:
	@scripts/deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  BUILD $@"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(KERNEL_BLOB_OBJ): src/host/kernel_blob.S $(KERNEL_ELFS)
	@mkdir -p $(dir $@)
	@echo "  BUILD $@"
	$(Q)$(CC) $(KERNEL_BLOB_FLAGS) -c $< -o $@

$(BUILD)/obj/blake3/%.c.o: $(BLAKE3_DIR)/%.c
	@mkdir -p $(dir $@)
	@echo "  BUILD $@"
	$(Q)$(CC) -I$(BLAKE3_DIR) $(filter-out -Werror,$(CFLAGS)) -c $< -o $@

$(BUILD)/obj/blake3/%.S.o: $(BLAKE3_DIR)/%.S
	@mkdir -p $(dir $@)
	@echo "  BUILD $@"
	$(Q)$(CC) -fPIC -c $< -o $@

$(BUILD)/libsandlet.a: $(LIB_OBJ) $(B3_OBJ)
	@mkdir -p $(dir $@)
	@echo "  BUILD $@"
	$(Q)rm -f $@ && ar rcs $@ $^

# The shared library exports exactly the functions include/sandlet.h declares:
# the version script is generated from the header (mk/install.mk), so BLAKE3's
# symbols and the library's internal sl_* functions stay local. Its soname is
# libsandlet.so.MAJOR; `make install` names the file libsandlet.so.MAJOR.MINOR.PATCH.
$(BUILD)/libsandlet.so: $(LIB_OBJ) $(B3_OBJ) $(BUILD)/libsandlet.map
	@echo "  BUILD $@"
	$(Q)$(CC) -shared $(LDFLAGS) -Wl,-soname,libsandlet.so.$(SL_VERSION_MAJOR) \
		-Wl,--version-script=$(BUILD)/libsandlet.map -Wl,-z,relro,-z,now -o $@ $(LIB_OBJ) $(B3_OBJ)

tests: $(UNIT_BIN) $(VCPU_BIN) $(BUILD)/fixtures/elf/pie64

# Real gcc-built ELF fixtures for the loader tests (tests/run passes the
# directory to test_elf).
$(BUILD)/fixtures/elf/pie64: $(wildcard tests/fixtures/elf/*) src/common/abi.h
	@echo "  BUILD $@"
	$(Q)tests/fixtures/elf/build.sh $(BUILD)/fixtures/elf

$(BUILD)/tests/unit/%: tests/unit/%.c tests/unit/t.h $(wildcard tests/common/*.h) $(BUILD)/libsandlet.a $(TEST_EXTRA)
	@mkdir -p $(dir $@)
	@echo "  BUILD $@"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $< $(TEST_EXTRA) -o $@ $(BUILD)/libsandlet.a $(LDFLAGS)

$(BUILD)/tests/vcpu/%: tests/vcpu/%.c tests/unit/t.h $(wildcard tests/common/*.h) $(BUILD)/libsandlet.a $(TEST_EXTRA)
	@mkdir -p $(dir $@)
	@echo "  BUILD $@"
	$(Q)$(CC) $(CPPFLAGS) -Itests/unit $(CFLAGS) $< $(TEST_EXTRA) -o $@ $(BUILD)/libsandlet.a $(LDFLAGS) $(VCPU_LIBS)

# Tests that make their fixtures with a third-party library (Debian's -dev
# packages, scripts/deps.sh).
$(BUILD)/tests/vcpu/test_share_sqlite: VCPU_LIBS := -lsqlite3

# The ThreadSanitizer variant (BUILD=build/tsan TSAN=1): the host library, the
# unit tests and the stress test (tests/vcpu/test_stress.c), with the CLI that
# tests/run asks where guests run. $(BUILD)/suites tells tests/run to run the
# unit and guest (tests/vcpu) suites of this build, not the shell suites.
tsan-tests: lib $(UNIT_BIN) $(BUILD)/tests/vcpu/test_stress $(BUILD)/fixtures/elf/pie64 $(BUILD)/sandlet
	$(Q)echo "unit vcpu" >$(BUILD)/suites

bench: $(BENCH_BIN)

$(BUILD)/bench/%: bench/%.c bench/bench.h bench/bench_kvm.h $(wildcard tests/common/*.h) $(BUILD)/libsandlet.a
	@mkdir -p $(dir $@)
	@echo "  BUILD $@"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $< $(BENCH_EXTRA) -o $@ $(BUILD)/libsandlet.a $(LDFLAGS) -lm $(BENCH_LIBS)

# Native baselines on Debian's Lua and SQLite (scripts/deps.sh): the Lua
# plugin's own code (guests/lua_plugin/plugin.c) runs natively too.
$(BUILD)/bench/bench_requests: guests/lua_plugin/plugin.c guests/lua_plugin/json.c guests/lua_plugin/plugin.h guests/lua_plugin/json.h guests/json_double.h
$(BUILD)/bench/bench_requests: BENCH_EXTRA := guests/lua_plugin/plugin.c guests/lua_plugin/json.c $(shell pkg-config --cflags lua5.4 2>/dev/null)
$(BUILD)/bench/bench_requests: BENCH_LIBS := -lsqlite3 $(shell pkg-config --libs lua5.4 2>/dev/null)

# The CLI's shell edits lines on a terminal with Debian's libedit (libedit-dev).
EDIT_CFLAGS := $(shell pkg-config --cflags libedit 2>/dev/null)
EDIT_LIBS := $(or $(shell pkg-config --libs libedit 2>/dev/null),-ledit)

$(BUILD)/sandlet: $(TOOL_SRC) $(wildcard tools/*.h) $(BUILD)/libsandlet.a
	@echo "  BUILD $@"
	$(Q)$(CC) $(CPPFLAGS) $(EDIT_CFLAGS) $(CFLAGS) $(TOOL_SRC) -o $@ $(BUILD)/libsandlet.a $(LDFLAGS) $(EDIT_LIBS)

$(BUILD)/demo $(BUILD)/hello_host: $(BUILD)/%: examples/%.c $(BUILD)/libsandlet.a
	@echo "  BUILD $@"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $< -o $@ $(BUILD)/libsandlet.a $(LDFLAGS)

# The request server example (docs/serve.md): examples/serve.c is its command
# line, examples/serve_*.c its core, which bench/bench_serve.c links too.
# Debian's jansson (libjansson-dev) reads and writes the JSON.
SERVE_CORE := examples/serve_core.c examples/serve_request.c examples/serve_io.c
SERVE_DEPS := $(SERVE_CORE) examples/serve.h examples/serve_internal.h $(BUILD)/libsandlet.a
JANSSON_CFLAGS := $(shell pkg-config --cflags jansson 2>/dev/null)
JANSSON_LIBS := $(or $(shell pkg-config --libs jansson 2>/dev/null),-ljansson)

$(BUILD)/serve: examples/serve.c $(SERVE_DEPS)
	@echo "  BUILD $@"
	$(Q)$(CC) $(CPPFLAGS) $(JANSSON_CFLAGS) $(CFLAGS) $< $(SERVE_CORE) -o $@ $(BUILD)/libsandlet.a $(LDFLAGS) -lpthread $(JANSSON_LIBS)

$(BUILD)/bench/bench_serve: bench/bench_serve.c bench/bench.h $(SERVE_DEPS)
	@mkdir -p $(dir $@)
	@echo "  BUILD $@"
	$(Q)$(CC) $(CPPFLAGS) -Iexamples $(JANSSON_CFLAGS) $(CFLAGS) $< $(SERVE_CORE) -o $@ $(BUILD)/libsandlet.a $(LDFLAGS) -lpthread $(JANSSON_LIBS)

# Fuzz targets are always clang + libFuzzer + ASan/UBSan, built from sources.
fuzz: $(FUZZ_BIN)

# Every target for 30 min (FUZZ_LONG_SECONDS, FUZZ_LONG_JOBS, FUZZ_LONG_TARGETS:
# scripts/fuzz-long.sh); not part of `make test`.
fuzz-long: deps
	@$(MAKE) --no-print-directory fuzz
	@scripts/fuzz-long.sh

build/fuzz/kernel_blob.o: src/host/kernel_blob.S $(KERNEL_ELFS)
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(KERNEL_BLOB_FLAGS) -c $< -o $@

build/fuzz/fuzz_%: fuzz/fuzz_%.c $(COMMON_SRC) $(HOST_SRC) $(wildcard src/common/*.h src/host/*.h src/host/*/*.h tests/common/*.h fuzz/*.h) build/fuzz/kernel_blob.o
	@mkdir -p $(dir $@)
	@echo "  BUILD $@"
	$(Q)$(FUZZ_CC) $(CPPFLAGS) -std=c11 $(WARN) -g -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=all $< $(COMMON_SRC) $(HOST_SRC) build/fuzz/kernel_blob.o \
		$(addprefix $(BLAKE3_DIR)/,$(B3_C)) -DBLAKE3_NO_SSE2 -DBLAKE3_NO_SSE41 -DBLAKE3_NO_AVX2 \
		-DBLAKE3_NO_AVX512 $(FUZZ_EXTRA) -pthread -o $@ $(FUZZ_LIBS)

# The Lua plugin's JSON codec, natively on Debian's liblua5.4.
build/fuzz/fuzz_lua_json: guests/lua_plugin/plugin.c guests/lua_plugin/json.c guests/lua_plugin/plugin.h guests/lua_plugin/json.h guests/json_double.h
build/fuzz/fuzz_lua_json: FUZZ_EXTRA := guests/lua_plugin/plugin.c guests/lua_plugin/json.c $(shell pkg-config --cflags lua5.4 2>/dev/null)
build/fuzz/fuzz_lua_json: FUZZ_LIBS := $(shell pkg-config --libs lua5.4 2>/dev/null) -lm

-include mk/thirdparty.mk
-include mk/guests.mk
-include mk/lua-tests.mk
-include mk/libc-tests.mk
-include mk/sqlite.mk
-include mk/install.mk

test: deps
	@$(MAKE) --no-print-directory all fuzz
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=1 lib tests build/asan/sandlet build/asan/hello_host build/asan/serve
	@$(MAKE) --no-print-directory BUILD=build/tsan TSAN=1 tsan-tests
	@FUZZ_SECONDS=$(FUZZ_SECONDS) tests/run build build/asan build/tsan

demo: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d)
