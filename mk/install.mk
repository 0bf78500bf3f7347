# Installing sandlet like any C library and Unix tool (docs/install.md):
#
#     make install   [PREFIX=/usr/local] [DESTDIR=] [LIBDIR=$(PREFIX)/lib]
#     make uninstall [same variables]
#     make deb        Debian packages in build/deb/ (debian/), checked by lintian
#     make check-deb  make deb, then install, use and purge the packages here
#
# What `make install` puts under $(DESTDIR):
#     $(BINDIR)/sandlet                the CLI
#     $(BINDIR)/sandlet-cc             the guest compiler driver
#     $(INCLUDEDIR)/sandlet.h, sandlet_guest.h
#     $(LIBDIR)/libsandlet.a, libsandlet.so.X.Y.Z, libsandlet.so.X -> .X.Y.Z,
#         libsandlet.so -> .X (the soname is libsandlet.so.X)
#     $(PKGCONFIGDIR)/sandlet.pc
#     $(GUESTDIR)/                     the guest toolchain: the runtime archives
#         (libsandlet-guest64.a, libsandlet-guest32.a), include/sandlet_guest.h,
#         musl-cc, musl/x86_64 and musl/i386 (musl's headers and static
#         libraries); kvm-lab, the KVM lab the CLI re-runs itself in where
#         guests cannot run natively (it finds <bin>/../lib/sandlet/kvm-lab);
#         and `files`, the list of what is there for uninstall
#     $(MANDIR)/man1/sandlet.1, sandlet-cc.1, man3/sandlet.3
#
# sandlet-cc finds the toolchain at <its own directory>/../lib/sandlet, so
# BINDIR and GUESTDIR stay $(PREFIX)/bin and $(PREFIX)/lib/sandlet whatever
# LIBDIR is (Debian puts the libraries in /usr/lib/<multiarch>).
#
# Included from the top-level Makefile after mk/guests.mk and mk/thirdparty.mk
# (GUEST_OUT, MUSL_X86_64, MUSL_I386, MUSL_STAMPS).

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR = $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
MANDIR ?= $(PREFIX)/share/man
GUESTDIR = $(PREFIX)/lib/sandlet

# The paths are written into sandlet.pc, and sandlet-cc finds lib/sandlet
# from bin: relative ones would install under the source tree, with a .pc
# that points nowhere (DESTDIR is the way to stage an installation).
ifneq ($(filter install uninstall,$(MAKECMDGOALS)),)
ifneq ($(filter-out /%,$(PREFIX) $(LIBDIR) $(INCLUDEDIR) $(MANDIR)),)
$(error PREFIX, LIBDIR, INCLUDEDIR and MANDIR must be absolute paths (PREFIX=$(PREFIX); DESTDIR=DIR stages elsewhere))
endif
endif

# The version: include/sandlet.h is the one place that defines it.
sl_version_part = $(shell sed -n 's/^\#define SANDLET_VERSION_$(1) \([0-9][0-9]*\)$$/\1/p' include/sandlet.h)
SL_VERSION_MAJOR := $(call sl_version_part,MAJOR)
SL_VERSION := $(SL_VERSION_MAJOR).$(call sl_version_part,MINOR).$(call sl_version_part,PATCH)

INSTALL ?= install
MAN1 := man/sandlet.1 man/sandlet-cc.1
MAN3 := man/sandlet.3
GUEST_ARCHIVES := $(GUEST_OUT)/libsandlet-guest64.a $(GUEST_OUT)/libsandlet-guest32.a

.PHONY: install install-build uninstall deb check-deb print-version

print-version:
	@echo $(SL_VERSION)

# Everything install copies, and nothing else (no tests, no benchmarks).
install-build: lib $(BUILD)/sandlet $(BUILD)/sandlet.pc $(GUEST_ARCHIVES) $(MUSL_STAMPS)

# The shared library's version script: every function the public header
# declares, read from the preprocessed header (comments and macros gone), so
# a function added to sandlet.h is exported and nothing else can be.
$(BUILD)/libsandlet.map: include/sandlet.h mk/install.mk
	@mkdir -p $(dir $@)
	@echo "  GEN   $@"
	$(Q)syms=$$($(CC) -E -P include/sandlet.h | grep -o '\bsl_[a-z0-9_]*[[:space:]]*(' | \
		sed 's/[[:space:]]*($$//' | sort -u) && [ -n "$$syms" ] && \
		{ echo '{'; echo '  global:'; printf '    %s;\n' $$syms; echo '  local: *;'; echo '};'; } >$@.tmp && \
		mv $@.tmp $@

# sandlet.pc for this PREFIX/LIBDIR (rebuilt when they change: the file
# records them). Paths under the prefix are written relative to ${prefix},
# so PKG_CONFIG_SYSROOT_DIR and pkg-config --define-prefix work.
sl_pc_rel = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))
$(BUILD)/sandlet.pc: sandlet.pc.in include/sandlet.h mk/install.mk FORCE
	@mkdir -p $(dir $@)
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(call sl_pc_rel,$(LIBDIR))|g' \
		-e 's|@INCLUDEDIR@|$(call sl_pc_rel,$(INCLUDEDIR))|g' \
		-e 's|@GUESTDIR@|$(call sl_pc_rel,$(GUESTDIR))|g' -e 's|@VERSION@|$(SL_VERSION)|g' \
		sandlet.pc.in >$@.tmp
	$(Q)if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; echo "  GEN   $@"; fi

.PHONY: FORCE
FORCE:

# The guest toolchain's files, relative to GUESTDIR (musl's trees are listed
# when the recipe runs: they may not exist when make reads this file).
sl_guest_files = { \
	echo musl-cc; echo kvm-lab; echo include/sandlet_guest.h; \
	echo libsandlet-guest64.a; echo libsandlet-guest32.a; \
	for a in x86_64 i386; do (cd build/musl/$$a && find include lib -type f | sed "s|^|musl/$$a/|"); done; \
	} | LC_ALL=C sort

install: install-build
	@echo "  INSTALL $(DESTDIR)$(PREFIX)"
	$(Q)$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) \
		$(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(GUESTDIR)
	$(Q)$(INSTALL) -m 0755 $(BUILD)/sandlet scripts/sandlet-cc $(DESTDIR)$(BINDIR)/
	$(Q)$(INSTALL) -m 0644 include/sandlet.h include/sandlet_guest.h $(DESTDIR)$(INCLUDEDIR)/
	$(Q)$(INSTALL) -m 0644 $(BUILD)/libsandlet.a $(DESTDIR)$(LIBDIR)/libsandlet.a
	$(Q)$(INSTALL) -m 0644 $(BUILD)/libsandlet.so $(DESTDIR)$(LIBDIR)/libsandlet.so.$(SL_VERSION)
	$(Q)ln -sf libsandlet.so.$(SL_VERSION) $(DESTDIR)$(LIBDIR)/libsandlet.so.$(SL_VERSION_MAJOR)
	$(Q)ln -sf libsandlet.so.$(SL_VERSION_MAJOR) $(DESTDIR)$(LIBDIR)/libsandlet.so
	$(Q)$(INSTALL) -m 0644 $(BUILD)/sandlet.pc $(DESTDIR)$(PKGCONFIGDIR)/sandlet.pc
	$(Q)$(INSTALL) -m 0644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/
	$(Q)$(INSTALL) -m 0644 $(MAN3) $(DESTDIR)$(MANDIR)/man3/
	$(Q)$(INSTALL) -m 0755 scripts/musl-cc $(DESTDIR)$(GUESTDIR)/musl-cc
	$(Q)$(INSTALL) -m 0755 scripts/kvm-lab $(DESTDIR)$(GUESTDIR)/kvm-lab
	$(Q)$(INSTALL) -D -m 0644 include/sandlet_guest.h $(DESTDIR)$(GUESTDIR)/include/sandlet_guest.h
	$(Q)$(INSTALL) -m 0644 $(GUEST_ARCHIVES) $(DESTDIR)$(GUESTDIR)/
	$(Q)for a in x86_64 i386; do \
		(cd build/musl/$$a && find include lib -type f) | while IFS= read -r f; do \
			$(INSTALL) -D -m 0644 "build/musl/$$a/$$f" "$(DESTDIR)$(GUESTDIR)/musl/$$a/$$f" || exit 1; \
		done || exit 1; \
	done
	$(Q)$(sl_guest_files) >$(DESTDIR)$(GUESTDIR)/files
	$(Q)if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi

# Removes what install put there: the files above, those listed in
# $(GUESTDIR)/files, then the directories under GUESTDIR that this left
# empty, and GUESTDIR itself when empty. The standard directories (bin,
# include, lib, ...) stay.
uninstall:
	@echo "  UNINSTALL $(DESTDIR)$(PREFIX)"
	$(Q)rm -f $(DESTDIR)$(BINDIR)/sandlet $(DESTDIR)$(BINDIR)/sandlet-cc \
		$(DESTDIR)$(INCLUDEDIR)/sandlet.h $(DESTDIR)$(INCLUDEDIR)/sandlet_guest.h \
		$(DESTDIR)$(LIBDIR)/libsandlet.a $(DESTDIR)$(LIBDIR)/libsandlet.so \
		$(DESTDIR)$(LIBDIR)/libsandlet.so.$(SL_VERSION_MAJOR) $(DESTDIR)$(LIBDIR)/libsandlet.so.$(SL_VERSION) \
		$(DESTDIR)$(PKGCONFIGDIR)/sandlet.pc \
		$(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN1))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man3/,$(notdir $(MAN3)))
	$(Q)g=$(DESTDIR)$(GUESTDIR); if [ -f "$$g/files" ]; then \
		while IFS= read -r f; do \
			case $$f in ""|/*|*..*) echo "uninstall: skipping '$$f' in $$g/files" >&2; continue ;; esac; \
			rm -f "$$g/$$f"; \
		done <"$$g/files"; \
		rm -f "$$g/files"; \
	fi; \
	if [ -d "$$g" ]; then find "$$g" -depth -mindepth 1 -type d -empty -delete; rmdir "$$g" 2>/dev/null || true; fi

# ---- Debian packages (debian/) ----
# dpkg-buildpackage runs in a copy of the source tree (build/deb/src): the
# files git tracks or would track (tracked and untracked, not ignored), or
# everything but build/ and .git outside a git checkout. The copy starts with
# this tree's cache of Debian's musl source (build/src/musl, from `apt-get
# source`) when there is one, so the package build needs no download for it.
# The packages, .buildinfo and .changes end up in build/deb/.
DEB_DIR := build/deb
DEB_SRC = $(DEB_DIR)/src/sandlet-$(SL_VERSION)
deb:
	@scripts/deps.sh --deb
	$(Q)rm -rf $(DEB_DIR) && mkdir -p $(DEB_SRC)/build/src
	@echo "  COPY  $(DEB_SRC)"
	$(Q)if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		git ls-files -z -c -o --exclude-standard | \
			tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C $(DEB_SRC); \
	else \
		tar --exclude=./build --exclude=./.git -cf - . | tar -xf - -C $(DEB_SRC); \
	fi
	$(Q)if [ -f build/src/musl.stamp ] && [ -d build/src/musl ]; then cp -a build/src/musl build/src/musl.stamp $(DEB_SRC)/build/src/; fi
	@echo "  DEB   $(DEB_DIR) (dpkg-buildpackage; log: $(DEB_DIR)/build.log)"
	$(Q)cd $(DEB_SRC) && unset MAKEFLAGS MFLAGS MAKELEVEL; \
		dpkg-buildpackage -us -uc -b --no-pre-clean >../../build.log 2>&1 || \
		{ tail -n 30 ../../build.log; echo "make deb: dpkg-buildpackage failed (see $(DEB_DIR)/build.log)"; exit 1; }
	$(Q)mv $(DEB_DIR)/src/*.deb $(DEB_DIR)/src/*.buildinfo $(DEB_DIR)/src/*.changes $(DEB_DIR)/
	@echo "  LINT  $(DEB_DIR)/*.changes"
	$(Q)lintian --fail-on error --info $(DEB_DIR)/*.changes >$(DEB_DIR)/lintian.log 2>&1; rc=$$?; \
		grep -v '^N:' $(DEB_DIR)/lintian.log; exit $$rc
	@ls $(DEB_DIR)/*.deb

# Installs the packages on this machine (root; apt resolves their
# dependencies), runs debian/tests/use against /usr, purges them and checks
# that none of their files is left. Packages of ours installed before are
# purged too.
check-deb: deb
	@scripts/check-deb $(DEB_DIR)
