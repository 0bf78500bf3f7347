# C library conformance tests (tests/libc). One program, tests/libc/conformance.c,
# built as musl guests and, as the reference, with the host's glibc; the
# reference outputs are generated at build time; tests/libc/compare (a host
# program) checks a guest's output against them; tests/e2e/libc.sh runs it all,
# in the sandbox (`sandlet run`) or natively (--native).
#
#     make libc-tests     (also part of `make tests`, hence `make` and `make test`)
#
#     build/guests/libc_conf, libc_conf32           musl, x86-64 / i686, via $(MUSL_CC)
#     build/tests/libc/conformance_glibc{,32}       glibc references (gcc, gcc -m32)
#     build/fixtures/libc/ref64.txt, ref32.txt      their output of `all`
#     build/tests/libc/compare                      the comparator
#
# Included from the top-level Makefile after its first (default) target and
# after mk/thirdparty.mk (MUSL_CC, MUSL_STAMPS; the defaults below only name
# the same things). Everything lives under build/, not $(BUILD): the sanitizer
# variant adds nothing here (tests/e2e/libc.sh runs for build only), and the
# files keep their plain flags whichever variant asks for them.
#
# -fno-builtin on both builds: otherwise gcc evaluates math and printf calls
# with constant arguments itself, and those would test gcc, not the libc.

MUSL_CC ?= scripts/musl-cc
MUSL_STAMPS ?= build/musl/x86_64.stamp build/musl/i386.stamp

LIBC_SRC := tests/libc/conformance.c
LIBC_CFLAGS := -std=c11 -O2 -Wall -Wextra -Werror -fno-builtin
LIBC_OUT := build/tests/libc
LIBC_FIX := build/fixtures/libc
LIBC_TEST_FILES := build/guests/libc_conf build/guests/libc_conf32 \
    $(LIBC_OUT)/conformance_glibc $(LIBC_OUT)/conformance_glibc32 \
    $(LIBC_FIX)/ref64.txt $(LIBC_FIX)/ref32.txt $(LIBC_OUT)/compare

.PHONY: libc-tests
libc-tests: $(LIBC_TEST_FILES)

tests: libc-tests

build/guests/libc_conf: $(LIBC_SRC) $(MUSL_STAMPS) $(MUSL_CC) mk/libc-tests.mk
	@mkdir -p $(dir $@)
	@echo "  MUSL  $@"
	$(Q)$(MUSL_CC) $(LIBC_CFLAGS) -o $@ $< -lm

build/guests/libc_conf32: $(LIBC_SRC) $(MUSL_STAMPS) $(MUSL_CC) mk/libc-tests.mk
	@mkdir -p $(dir $@)
	@echo "  MUSL  $@"
	$(Q)$(MUSL_CC) -m32 $(LIBC_CFLAGS) -o $@ $< -lm

$(LIBC_OUT)/conformance_glibc: $(LIBC_SRC) mk/libc-tests.mk
	@mkdir -p $(dir $@)
	@echo "  BUILD $@"
	$(Q)gcc $(LIBC_CFLAGS) -o $@ $< -lm

# Static, so that the KVM lab can run it without the host's 32-bit libraries
# (see ref32.txt below).
$(LIBC_OUT)/conformance_glibc32: $(LIBC_SRC) mk/libc-tests.mk
	@mkdir -p $(dir $@)
	@echo "  BUILD $@"
	$(Q)gcc -m32 -static $(LIBC_CFLAGS) -o $@ $< -lm

# Written under a temporary name first: a failed run leaves no reference
# behind (and two makes at once do not trip over each other).
$(LIBC_FIX)/ref64.txt: $(LIBC_OUT)/conformance_glibc
	@mkdir -p $(dir $@)
	@echo "  REF   $@"
	$(Q)$< all >$@.$$$$.tmp && mv $@.$$$$.tmp $@ || { rm -f $@.$$$$.tmp; exit 1; }

# A kernel built without IA32_EMULATION cannot run i386 executables at all
# (the shell's exit code 126, "Exec format error"; seen on the CI machines):
# then the reference runs in the KVM lab, whose Debian kernel can.
$(LIBC_FIX)/ref32.txt: $(LIBC_OUT)/conformance_glibc32
	@mkdir -p $(dir $@)
	@echo "  REF   $@"
	$(Q)t=$@.$$$$.tmp; \
	if $< list >/dev/null 2>&1; then $< all >$$t; \
	else echo "  REF   (this kernel runs no i386 executables: in the KVM lab)"; \
	    scripts/kvm-lab --add $(CURDIR)/$< -- $(CURDIR)/$< all >$$t; fi \
	    && mv $$t $@ || { rm -f $$t; exit 1; }

$(LIBC_OUT)/compare: tests/libc/compare.c mk/libc-tests.mk
	@mkdir -p $(dir $@)
	@echo "  BUILD $@"
	$(Q)$(CC) -std=c11 $(WARN) -g -O2 -D_GNU_SOURCE -o $@ $<
