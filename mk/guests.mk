# Guest programs: the freestanding guest runtime (src/guest + src/common/pt.c,
# abi.c) and the example guests, built with the system gcc.
#
# Include from the top-level Makefile AFTER its first (default) target:
#     include mk/guests.mk
#     all: ... guests
# or build standalone:  make -f mk/guests.mk guests   (guests/build.sh does this)
#
# Outputs (static PIE, only RELATIVE relocations, ELF note "sandlet"):
#     $(GUEST_OUT)/demo        x86-64   guests/demo.c
#     $(GUEST_OUT)/demo32      i686     guests/demo.c
#     $(GUEST_OUT)/multispace  x86-64   guests/multispace.c
#     $(GUEST_OUT)/faulty      x86-64   guests/faulty.c

GUEST_CC ?= gcc
GUEST_OUT ?= build/guests

GUEST_CFLAGS := -std=c11 -O2 -Wall -Wextra -Werror -ffreestanding -fno-builtin -fno-stack-protector \
    -fPIE -fno-asynchronous-unwind-tables -fno-unwind-tables -fno-common -MMD -MP \
    -Iinclude -Isrc/common -Isrc/guest
# The runtime must not touch SSE/x87 state: its exception handler saves only
# the general registers. The libc loops must not be turned into calls to
# memcpy/memset themselves.
GUEST_NO_LDP := $(shell $(GUEST_CC) -fno-tree-loop-distribute-patterns -E -x c /dev/null >/dev/null 2>&1 && \
    echo -fno-tree-loop-distribute-patterns)
GUEST_RT_CFLAGS := -mgeneral-regs-only $(GUEST_NO_LDP)
GUEST_ARCH_64 := -m64 -mno-red-zone
GUEST_ARCH_32 := -m32 -march=i686
GUEST_LDFLAGS := -static-pie -nostdlib -Wl,--no-dynamic-linker -Wl,-z,norelro \
    -Wl,-z,max-page-size=4096 -Wl,-z,common-page-size=4096 -Wl,-z,noexecstack \
    -Wl,--build-id=none -Wl,-e,_start

GUEST_RT_C := $(wildcard src/guest/*.c) src/common/pt.c src/common/abi.c
GUEST_RT_OBJ64 := $(patsubst %.c,$(GUEST_OUT)/obj64/%.o,$(GUEST_RT_C)) $(GUEST_OUT)/obj64/src/guest/entry_amd64.o
GUEST_RT_OBJ32 := $(patsubst %.c,$(GUEST_OUT)/obj32/%.o,$(GUEST_RT_C)) $(GUEST_OUT)/obj32/src/guest/entry_i686.o
GUEST_BINS := $(GUEST_OUT)/demo $(GUEST_OUT)/demo32 $(GUEST_OUT)/multispace $(GUEST_OUT)/faulty

.PHONY: guests guests-clean
guests: $(GUEST_BINS) $(GUEST_OUT)/libsandlet-guest64.a $(GUEST_OUT)/libsandlet-guest32.a $(GUEST_OUT)/hello

# The runtime as archives, for guests built outside this tree with
# scripts/sandlet-cc (one C file in, one guest ELF out).
$(GUEST_OUT)/libsandlet-guest64.a: $(GUEST_RT_OBJ64)
	@echo "  GUEST $@"
	$(Q)rm -f $@ && ar rcs $@ $^
$(GUEST_OUT)/libsandlet-guest32.a: $(GUEST_RT_OBJ32)
	@echo "  GUEST $@"
	$(Q)rm -f $@ && ar rcs $@ $^
# The README's minimal guest, built the way a guest author builds one.
$(GUEST_OUT)/hello: examples/hello_guest.c scripts/sandlet-cc $(GUEST_OUT)/libsandlet-guest64.a
	@echo "  GUEST $@"
	$(Q)scripts/sandlet-cc -o $@ $<

guests-clean:
	rm -rf $(GUEST_OUT)

# runtime and common code
$(GUEST_OUT)/obj64/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	@echo "  GUEST $@"
	$(Q)$(GUEST_CC) $(GUEST_CFLAGS) $(GUEST_RT_CFLAGS) $(GUEST_ARCH_64) -c $< -o $@
$(GUEST_OUT)/obj32/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	@echo "  GUEST $@"
	$(Q)$(GUEST_CC) $(GUEST_CFLAGS) $(GUEST_RT_CFLAGS) $(GUEST_ARCH_32) -c $< -o $@
$(GUEST_OUT)/obj64/src/%.o: src/%.S
	@mkdir -p $(dir $@)
	@echo "  GUEST $@"
	$(Q)$(GUEST_CC) $(GUEST_ARCH_64) -MMD -MP -c $< -o $@
$(GUEST_OUT)/obj32/src/%.o: src/%.S
	@mkdir -p $(dir $@)
	@echo "  GUEST $@"
	$(Q)$(GUEST_CC) $(GUEST_ARCH_32) -MMD -MP -c $< -o $@

# guest programs (may use floating point)
$(GUEST_OUT)/obj64/guests/%.o: guests/%.c
	@mkdir -p $(dir $@)
	@echo "  GUEST $@"
	$(Q)$(GUEST_CC) $(GUEST_CFLAGS) $(GUEST_ARCH_64) -c $< -o $@
$(GUEST_OUT)/obj32/guests/%.o: guests/%.c
	@mkdir -p $(dir $@)
	@echo "  GUEST $@"
	$(Q)$(GUEST_CC) $(GUEST_CFLAGS) $(GUEST_ARCH_32) -c $< -o $@

$(GUEST_OUT)/demo: $(GUEST_OUT)/obj64/guests/demo.o $(GUEST_RT_OBJ64)
	@echo "  GUEST $@"
	$(Q)$(GUEST_CC) $(GUEST_ARCH_64) $(GUEST_LDFLAGS) -o $@ $^ -lgcc
$(GUEST_OUT)/demo32: $(GUEST_OUT)/obj32/guests/demo.o $(GUEST_RT_OBJ32)
	@echo "  GUEST $@"
	$(Q)$(GUEST_CC) $(GUEST_ARCH_32) $(GUEST_LDFLAGS) -o $@ $^ -lgcc
$(GUEST_OUT)/multispace: $(GUEST_OUT)/obj64/guests/multispace.o $(GUEST_RT_OBJ64)
	@echo "  GUEST $@"
	$(Q)$(GUEST_CC) $(GUEST_ARCH_64) $(GUEST_LDFLAGS) -o $@ $^ -lgcc
$(GUEST_OUT)/faulty: $(GUEST_OUT)/obj64/guests/faulty.o $(GUEST_RT_OBJ64)
	@echo "  GUEST $@"
	$(Q)$(GUEST_CC) $(GUEST_ARCH_64) $(GUEST_LDFLAGS) -o $@ $^ -lgcc

-include $(shell find $(GUEST_OUT) -name '*.d' 2>/dev/null)
