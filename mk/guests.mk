# The guest side: the guest kernel (src/guest/kernel, freestanding, CPL0),
# embedded in libsandlet; the guest library for the function model
# (src/guest/lib, user mode, on musl); and the example guests, ordinary
# static musl programs built with scripts/sandlet-cc.
#
# Included from the top-level Makefile after its first (default) target and
# after mk/thirdparty.mk (MUSL_CC, MUSL_STAMPS).
#
# Outputs:
#     build/kernel/kernel64, kernel32     static PIE, ELF note "sandlet"
#     $(GUEST_OUT)/libsandlet-guest64.a, libsandlet-guest32.a
#     $(GUEST_OUT)/demo (x86-64), demo32 (i686), multispace, faulty, hello
#     $(GUEST_OUT)/cpustate (x86-64), cpustate32 (i686)
#     $(GUEST_OUT)/runtest, runtest32     ordinary programs for `sandlet run` tests
#     $(GUEST_OUT)/runtest-pie, -pie32    the same as static PIEs

GUEST_CC ?= gcc
GUEST_OUT ?= build/guests
KERNEL_OUT := build/kernel

# The kernel must not touch x87/SSE state (it saves only the general
# registers) nor use a red zone (faults push onto its stack), and its
# memset/memcpy loops must not be turned into calls to themselves.
KERNEL_NO_LDP := $(shell $(GUEST_CC) -fno-tree-loop-distribute-patterns -E -x c /dev/null >/dev/null 2>&1 && \
    echo -fno-tree-loop-distribute-patterns)
KERNEL_CFLAGS := -std=c11 -O2 -Wall -Wextra -Werror -ffreestanding -fno-builtin -fno-stack-protector -fPIE \
    -fno-asynchronous-unwind-tables -fno-unwind-tables -fno-common -mgeneral-regs-only $(KERNEL_NO_LDP) \
    -MMD -MP -Isrc/common -Isrc/guest/kernel
KERNEL_ARCH_64 := -m64 -mno-red-zone
KERNEL_ARCH_32 := -m32 -march=i686
KERNEL_LDFLAGS := -static-pie -nostdlib -Wl,--no-dynamic-linker -Wl,-z,norelro \
    -Wl,-z,max-page-size=4096 -Wl,-z,common-page-size=4096 -Wl,-z,noexecstack \
    -Wl,--build-id=none -Wl,-e,_start

KERNEL_C := $(wildcard src/guest/kernel/*.c) src/guest/note.c src/common/pt.c src/common/abi.c
KERNEL_OBJ64 := $(patsubst %.c,$(KERNEL_OUT)/obj64/%.o,$(KERNEL_C)) $(KERNEL_OUT)/obj64/src/guest/kernel/entry_amd64.o
KERNEL_OBJ32 := $(patsubst %.c,$(KERNEL_OUT)/obj32/%.o,$(KERNEL_C)) $(KERNEL_OUT)/obj32/src/guest/kernel/entry_i686.o

# The guest library is user code on musl: the normal warnings, musl's headers.
GUESTLIB_CFLAGS := -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -MMD -MP -Iinclude -Isrc/common -Isrc/guest/lib
GUESTLIB_C := $(wildcard src/guest/lib/*.c) src/guest/note.c src/common/abi.c src/common/abi_sig.c
GUESTLIB_OBJ64 := $(patsubst %.c,$(GUEST_OUT)/obj64/%.o,$(GUESTLIB_C)) $(GUEST_OUT)/obj64/src/guest/lib/entry_amd64.o
GUESTLIB_OBJ32 := $(patsubst %.c,$(GUEST_OUT)/obj32/%.o,$(GUESTLIB_C)) $(GUEST_OUT)/obj32/src/guest/lib/entry_i686.o

GUEST_BINS := $(GUEST_OUT)/demo $(GUEST_OUT)/demo32 $(GUEST_OUT)/cpustate $(GUEST_OUT)/cpustate32 $(GUEST_OUT)/multispace $(GUEST_OUT)/faulty $(GUEST_OUT)/hello \
    $(GUEST_OUT)/runtest $(GUEST_OUT)/runtest32 $(GUEST_OUT)/runtest-pie $(GUEST_OUT)/runtest-pie32

.PHONY: guests guests-clean kernel
guests: $(GUEST_BINS) $(GUEST_OUT)/libsandlet-guest64.a $(GUEST_OUT)/libsandlet-guest32.a
kernel: $(KERNEL_OUT)/kernel64 $(KERNEL_OUT)/kernel32

guests-clean:
	rm -rf $(GUEST_OUT) $(KERNEL_OUT)

# ---- the guest kernel ----
$(KERNEL_OUT)/obj64/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  KERNEL $@"
	$(Q)$(GUEST_CC) $(KERNEL_CFLAGS) $(KERNEL_ARCH_64) -c $< -o $@
$(KERNEL_OUT)/obj32/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  KERNEL $@"
	$(Q)$(GUEST_CC) $(KERNEL_CFLAGS) $(KERNEL_ARCH_32) -c $< -o $@
$(KERNEL_OUT)/obj64/%.o: %.S
	@mkdir -p $(dir $@)
	@echo "  KERNEL $@"
	$(Q)$(GUEST_CC) $(KERNEL_ARCH_64) -MMD -MP -c $< -o $@
$(KERNEL_OUT)/obj32/%.o: %.S
	@mkdir -p $(dir $@)
	@echo "  KERNEL $@"
	$(Q)$(GUEST_CC) $(KERNEL_ARCH_32) -MMD -MP -c $< -o $@
$(KERNEL_OUT)/kernel64: $(KERNEL_OBJ64)
	@echo "  KERNEL $@"
	$(Q)$(GUEST_CC) $(KERNEL_ARCH_64) $(KERNEL_LDFLAGS) -o $@ $^ -lgcc
$(KERNEL_OUT)/kernel32: $(KERNEL_OBJ32)
	@echo "  KERNEL $@"
	$(Q)$(GUEST_CC) $(KERNEL_ARCH_32) $(KERNEL_LDFLAGS) -o $@ $^ -lgcc

# ---- the guest library (user mode, musl) ----
$(GUEST_OUT)/obj64/%.o: %.c $(MUSL_STAMPS)
	@mkdir -p $(dir $@)
	@echo "  GUEST $@"
	$(Q)$(MUSL_CC) $(GUESTLIB_CFLAGS) -c $< -o $@
$(GUEST_OUT)/obj32/%.o: %.c $(MUSL_STAMPS)
	@mkdir -p $(dir $@)
	@echo "  GUEST $@"
	$(Q)$(MUSL_CC) -m32 $(GUESTLIB_CFLAGS) -c $< -o $@
$(GUEST_OUT)/obj64/%.o: %.S
	@mkdir -p $(dir $@)
	@echo "  GUEST $@"
	$(Q)$(GUEST_CC) -m64 -MMD -MP -c $< -o $@
$(GUEST_OUT)/obj32/%.o: %.S
	@mkdir -p $(dir $@)
	@echo "  GUEST $@"
	$(Q)$(GUEST_CC) -m32 -MMD -MP -c $< -o $@
$(GUEST_OUT)/libsandlet-guest64.a: $(GUESTLIB_OBJ64)
	@echo "  GUEST $@"
	$(Q)rm -f $@ && ar rcs $@ $^
$(GUEST_OUT)/libsandlet-guest32.a: $(GUESTLIB_OBJ32)
	@echo "  GUEST $@"
	$(Q)rm -f $@ && ar rcs $@ $^

# ---- example and test guests, built the way a guest author builds one ----
GUEST_CC_DEPS := scripts/sandlet-cc $(MUSL_CC) include/sandlet_guest.h
$(GUEST_OUT)/demo: guests/demo.c $(GUEST_CC_DEPS) $(GUEST_OUT)/libsandlet-guest64.a
	@echo "  GUEST $@"
	$(Q)scripts/sandlet-cc -o $@ $<
$(GUEST_OUT)/demo32: guests/demo.c $(GUEST_CC_DEPS) $(GUEST_OUT)/libsandlet-guest32.a
	@echo "  GUEST $@"
	$(Q)scripts/sandlet-cc -m32 -o $@ $<
$(GUEST_OUT)/cpustate: guests/cpustate.c $(GUEST_CC_DEPS) $(GUEST_OUT)/libsandlet-guest64.a
	@echo "  GUEST $@"
	$(Q)scripts/sandlet-cc -o $@ $<
$(GUEST_OUT)/cpustate32: guests/cpustate.c $(GUEST_CC_DEPS) $(GUEST_OUT)/libsandlet-guest32.a
	@echo "  GUEST $@"
	$(Q)scripts/sandlet-cc -m32 -o $@ $<
$(GUEST_OUT)/multispace $(GUEST_OUT)/faulty: $(GUEST_OUT)/%: guests/%.c $(GUEST_CC_DEPS) $(GUEST_OUT)/libsandlet-guest64.a
	@echo "  GUEST $@"
	$(Q)scripts/sandlet-cc -Isrc/common -o $@ $<
$(GUEST_OUT)/hello: examples/hello_guest.c $(GUEST_CC_DEPS) $(GUEST_OUT)/libsandlet-guest64.a
	@echo "  GUEST $@"
	$(Q)scripts/sandlet-cc -o $@ $<

# Ordinary programs (main()), built as a user builds one: musl, nothing of sandlet's.
$(GUEST_OUT)/runtest: guests/runtest.c $(MUSL_STAMPS) $(MUSL_CC)
	@echo "  GUEST $@"
	$(Q)$(MUSL_CC) -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -o $@ $<
$(GUEST_OUT)/runtest32: guests/runtest.c $(MUSL_STAMPS) $(MUSL_CC)
	@echo "  GUEST $@"
	$(Q)$(MUSL_CC) -m32 -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -o $@ $<
# The same as static PIEs, which relocate themselves.
$(GUEST_OUT)/runtest-pie: guests/runtest.c $(MUSL_STAMPS) $(MUSL_CC)
	@echo "  GUEST $@"
	$(Q)$(MUSL_CC) -static-pie -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -o $@ $<
$(GUEST_OUT)/runtest-pie32: guests/runtest.c $(MUSL_STAMPS) $(MUSL_CC)
	@echo "  GUEST $@"
	$(Q)$(MUSL_CC) -m32 -static-pie -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -o $@ $<

-include $(shell find $(GUEST_OUT) $(KERNEL_OUT) -name '*.d' 2>/dev/null)
