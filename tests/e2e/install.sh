#!/bin/sh
# sandlet installs like any C library and Unix tool (issue 13; docs/install.md):
# `make install DESTDIR=... PREFIX=...` into a scratch root, then, using only
# what was installed: pkg-config's flags build examples/hello_host.c against
# the shared library (run with LD_LIBRARY_PATH) and statically; the installed
# sandlet-cc builds examples/hello_guest.c (x86-64 and i686); the host
# program and the installed CLI call that guest. The shared library's soname,
# its exported symbols (exactly the functions sandlet.h declares), the
# version everywhere it is written, and the man pages (man, mandoc -T lint,
# lexgrog) are checked; the installed CLI must find the installed KVM lab
# (lib/sandlet/kvm-lab), whose kernel cache defaults to the user's cache
# directory, and, where this checkout's lab has its kernel cached, run a call
# in it once; `make uninstall` must leave no file behind.
# Usage: tests/e2e/install.sh BUILD_DIR. Prints PASS/FAIL lines.
#
# `make install` needs the source tree, make and a compiler, so this runs
# natively only, and only for the normal build (build/): it prints nothing in
# the KVM lab and for the sanitizer builds. The checks that run a guest run
# where its architecture runs and SANDLET_TEST_ARCHS covers it
# (tests/e2e/arch.sh); the others always run.
b=${1:-build}
repo=$(cd "$(dirname "$0")/../.." && pwd)
[ -z "${SANDLET_IN_LAB:-}" ] || exit 0
[ -d "$b" ] && [ "$(cd "$b" && pwd)" = "$repo/build" ] || exit 0
export SANDLET_NO_LAB=1
unset SANDLET_FORCE_LAB MAKEFLAGS MFLAGS MAKELEVEL
FAILS=0
. "$(dirname "$0")/check.sh"
# check NAME CONDITION-COMMAND...: PASS when the command succeeds.
check() {
    name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name"; fi
}

for tool in make gcc pkg-config nm readelf man mandoc lexgrog; do
    command -v "$tool" >/dev/null || {
        echo "FAIL install: $tool missing (scripts/deps.sh installs it)"
        exit 1
    }
done
if [ ! -x "$b/sandlet" ]; then
    echo "FAIL install: no $b/sandlet (make builds the CLI)"
    exit 1
fi
. "$(dirname "$0")/arch.sh"
arch_init "$b/sandlet" || FAILS=$((FAILS + 1))

T=$(mktemp -d "${TMPDIR:-/tmp}/sandlet-install.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
root=$T/root
prefix=/opt/sandlet-test
P=$root$prefix
W=$T/work
mkdir -p "$W/build/guests"

# ---- make install
if make -C "$repo" --no-print-directory BUILD=build install DESTDIR="$root" PREFIX="$prefix" >"$T/install.log" 2>&1; then
    pass "make_install"
else
    fail "make_install: $(tail -n 5 "$T/install.log")"
    exit 1
fi

ver=$(sed -n 's/^#define SANDLET_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9][0-9]*\)$/\2/p' "$repo/include/sandlet.h" | paste -sd. -)
major=${ver%%.*}

missing=
for f in bin/sandlet bin/sandlet-cc include/sandlet.h include/sandlet_guest.h lib/libsandlet.a \
    "lib/libsandlet.so.$ver" lib/pkgconfig/sandlet.pc share/man/man1/sandlet.1 \
    share/man/man1/sandlet-cc.1 share/man/man3/sandlet.3 lib/sandlet/musl-cc lib/sandlet/kvm-lab \
    lib/sandlet/include/sandlet_guest.h lib/sandlet/libsandlet-guest64.a lib/sandlet/libsandlet-guest32.a \
    lib/sandlet/musl/x86_64/lib/libc.a lib/sandlet/musl/x86_64/include/stdio.h \
    lib/sandlet/musl/i386/lib/libc.a lib/sandlet/musl/i386/lib/crt1.o lib/sandlet/files; do
    [ -f "$P/$f" ] && [ ! -L "$P/$f" ] || missing="$missing $f"
done
check "installed_files${missing:+: missing$missing}" test -z "$missing"
check "so_symlinks: libsandlet.so -> .so.$major -> .so.$ver" \
    test "$(readlink "$P/lib/libsandlet.so.$major")" = "libsandlet.so.$ver" -a \
    "$(readlink "$P/lib/libsandlet.so")" = "libsandlet.so.$major"
# The uninstall list names exactly the files under lib/sandlet.
(cd "$P/lib/sandlet" && find . -type f ! -path ./files | sed 's|^\./||' | LC_ALL=C sort) >"$T/guestfiles"
check "guest_toolchain_file_list" cmp -s "$T/guestfiles" "$P/lib/sandlet/files"

soname=$(readelf -d "$P/lib/libsandlet.so.$ver" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
check "soname: '$soname'" test "$soname" = "libsandlet.so.$major"

# Exported symbols: exactly the functions the installed sandlet.h declares.
gcc -E -P "$P/include/sandlet.h" | grep -o '\bsl_[a-z0-9_]*[[:space:]]*(' | sed 's/[[:space:]]*($//' |
    LC_ALL=C sort -u >"$T/api"
nm -D --defined-only "$P/lib/libsandlet.so.$ver" | awk '{ print $NF }' | sed 's/@.*//' | LC_ALL=C sort -u >"$T/exported"
if [ "$(wc -l <"$T/api")" -ge 30 ] && cmp -s "$T/api" "$T/exported"; then
    pass "exports_only_public_api ($(wc -l <"$T/api") functions)"
else
    fail "exports_only_public_api: exported but not in sandlet.h: $(comm -13 "$T/api" "$T/exported" | head -5 | tr '\n' ' ')in sandlet.h but not exported: $(comm -23 "$T/api" "$T/exported" | head -5 | tr '\n' ' ')"
fi

# ---- pkg-config against the scratch root only
pc() { PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_LIBDIR=$P/lib/pkgconfig PKG_CONFIG_PATH='' pkg-config "$@"; }
# (echo: pkg-config ends its lists with a blank)
# shellcheck disable=SC2005,SC2046
cflags=$(echo $(pc --cflags sandlet)) && libs=$(echo $(pc --libs sandlet)) && slibs=$(echo $(pc --static --libs sandlet))
check "pkg_config: '$cflags' '$libs' / static '$slibs'" test "$cflags" = "-I$P/include" -a \
    "$libs" = "-L$P/lib -lsandlet" -a "$slibs" = "-L$P/lib -lsandlet -pthread"
check "pkg_config_modversion" test "$(pc --modversion sandlet)" = "$ver"

# hello_host against the shared library and statically, with pkg-config's
# flags only (no -I into the source tree).
# shellcheck disable=SC2086 # flag lists
if gcc -std=c11 -Wall -Werror $cflags -o "$W/hello_dyn" "$repo/examples/hello_host.c" $libs 2>"$T/cc.log" &&
    readelf -d "$W/hello_dyn" | grep -q "(NEEDED).*\[libsandlet.so.$major\]"; then
    pass "hello_host_shared_build"
else
    fail "hello_host_shared_build: $(head -c 400 "$T/cc.log")"
fi
# shellcheck disable=SC2086
if gcc -std=c11 -Wall -Werror -static $cflags -o "$W/hello_static" "$repo/examples/hello_host.c" $slibs 2>"$T/cc.log" &&
    ! readelf -d "$W/hello_static" 2>/dev/null | grep -q NEEDED; then
    pass "hello_host_static_build"
else
    fail "hello_host_static_build: $(grep -v 'statically linked applications' "$T/cc.log" | head -c 400)"
fi

# The version, in every place it is written.
cat >"$T/ver.c" <<'EOF'
#include <stdio.h>
#include <sandlet.h>
int main(void)
{
    printf("%s %u %d\n", sl_version(), sl_version_number(), sl_version_number() == SANDLET_VERSION_NUMBER);
    return 0;
}
EOF
# shellcheck disable=SC2086
gcc -std=c11 $cflags -o "$T/ver" "$T/ver.c" $libs 2>"$T/cc.log"
got=$(LD_LIBRARY_PATH=$P/lib "$T/ver" 2>&1)
num=$(echo "$ver" | awk -F. '{ print $1 * 10000 + $2 * 100 + $3 }')
check "sl_version: '$got'" test "$got" = "$ver $num 1"
check "cli_version: '$("$P/bin/sandlet" --version 2>&1)'" test "$("$P/bin/sandlet" --version 2>&1)" = "sandlet $ver"
mkver=$(make -s -C "$repo" --no-print-directory print-version 2>&1)
debver=$(sed -n '1s/^sandlet (\([^)-]*\)-[^)]*).*/\1/p' "$repo/debian/changelog")
manver=$(sed -n 's/^\.TH .* "sandlet \([^"]*\)" .*/\1/p' "$repo"/man/*.[0-9] | sort -u | paste -sd' ' -)
check "version_agrees: header $ver, Makefile $mkver, debian/changelog $debver, man pages $manver, CHANGELOG.md" \
    test "$mkver" = "$ver" -a "$debver" = "$ver" -a "$manver" = "$ver" -a -n "$(grep -F "## [$ver]" "$repo/CHANGELOG.md")"

# ---- guests with the installed sandlet-cc (from a symlink too: it resolves it)
if "$P/bin/sandlet-cc" -o "$W/build/guests/hello" "$repo/examples/hello_guest.c" 2>"$T/cc.log" &&
    readelf -h "$W/build/guests/hello" | grep -q 'Machine:.*X86-64'; then
    pass "sandlet_cc_guest64"
else
    fail "sandlet_cc_guest64: $(head -c 400 "$T/cc.log")"
fi
ln -s "$P/bin/sandlet-cc" "$T/cc-link"
if "$T/cc-link" -m32 -o "$W/hello32" "$repo/examples/hello_guest.c" 2>"$T/cc.log" &&
    readelf -h "$W/hello32" | grep -q 'Machine:.*80386'; then
    pass "sandlet_cc_guest32_via_symlink"
else
    fail "sandlet_cc_guest32_via_symlink: $(head -c 400 "$T/cc.log")"
fi

# Compile only (-c), as a guest's Makefile does, then link the object: the
# guest library belongs to the link, so the compile must not name it (gcc
# would warn that it goes unused).
if "$P/bin/sandlet-cc" -Werror -c -o "$W/hello_guest.o" "$repo/examples/hello_guest.c" 2>"$T/cc.log" &&
    [ ! -s "$T/cc.log" ] && "$P/bin/sandlet-cc" -o "$W/hello_obj" "$W/hello_guest.o" 2>>"$T/cc.log" &&
    [ ! -s "$T/cc.log" ]; then
    pass "sandlet_cc_compile_then_link"
else
    fail "sandlet_cc_compile_then_link: $(head -c 400 "$T/cc.log")"
fi
out=$(cd "$T" && "$P/bin/sandlet-cc" 2>&1 >/dev/null)
rc=$?
check "sandlet_cc_without_arguments: $rc '$out'" test "$rc" = 2 -a -n "$(echo "$out" | grep '^usage: sandlet-cc')" -a ! -e "$T/a.out"

# ./setup answers its mistakes before it installs anything (it would run
# apt-get and make next): usage on stderr, exit 2.
out=$("$repo/setup" 2>"$T/err")
rc=$?
check "setup_without_arguments: $rc" test "$rc" = 2 -a -z "$out" -a -n "$(grep -F './setup demo' "$T/err")"
out=$("$repo/setup" no-such-target 2>&1)
rc=$?
check "setup_unknown_target: $rc '$out'" test "$rc" = 2 -a "$out" = \
    "setup: no target 'no-such-target' (demo, test, or another make target; ./setup --help)"

# ---- run them (hello_host opens build/guests/hello in its working directory)
want="hello, world
hello, world
hello, world"
if arch_need amd64; then
    out=$(cd "$W" && LD_LIBRARY_PATH=$P/lib ./hello_dyn 2>&1)
    check "hello_host_shared_runs" test "$out" = "$want"
    out=$(cd "$W" && ./hello_static 2>&1)
    check "hello_host_static_runs" test "$out" = "$want"
    out=$("$P/bin/sandlet" call "$W/build/guests/hello" Greet installed 2>&1)
    check "installed_cli_call: '$out'" test "$out" = "hello, installed"
    out=$("$P/bin/sandlet" call "$W/hello_obj" Greet object 2>&1)
    check "installed_cli_call_linked_object: '$out'" test "$out" = "hello, object"
fi
if arch_need i686; then
    out=$("$P/bin/sandlet" call "$W/hello32" Greet i686 2>&1)
    check "installed_cli_call32: '$out'" test "$out" = "hello, i686"
fi

# ---- the KVM lab from the installed CLI: it finds lib/sandlet/kvm-lab (no
# scripts/ next to an installation), and that copy keeps its kernel cache in
# the user's cache directory, not in a source tree.
lab=$(cd "$P/lib/sandlet" && pwd -P)/kvm-lab
check "installed_lab_executable" test -x "$P/lib/sandlet/kvm-lab"
out=$(SANDLET_FORCE_LAB=1 "$P/bin/sandlet" backend amd64 2>"$T/err")
check "installed_cli_finds_the_lab: '$out' $(cat "$T/err")" \
    test "$out" = lab -a -n "$(grep -F "(lab: $lab)" "$T/err")"
if command -v jq >/dev/null; then
    out=$(SANDLET_FORCE_LAB=1 "$P/bin/sandlet" backend --json 2>&1)
    check "installed_cli_backend_json: $out" test "$(echo "$out" | jq -r .lab)" = "$lab"
fi
out=$(env -u SANDLET_LAB_CACHE XDG_CACHE_HOME="$T/xdg" "$P/lib/sandlet/kvm-lab" --help 2>&1)
check "installed_lab_cache_xdg" test -n "$(echo "$out" | grep -F "default here: $T/xdg/sandlet/kvm-lab)")"
out=$(env -u SANDLET_LAB_CACHE -u XDG_CACHE_HOME HOME="$T/h" "$P/lib/sandlet/kvm-lab" --help 2>&1)
check "installed_lab_cache_home" test -n "$(echo "$out" | grep -F "default here: $T/h/.cache/sandlet/kvm-lab)")"
out=$(env -u SANDLET_LAB_CACHE "$repo/scripts/kvm-lab" --help 2>&1)
check "checkout_lab_cache_in_build" test -n "$(echo "$out" | grep -F "default here: $repo/build/kvm-lab/cache)")"
# One boot (a few seconds), where this checkout's lab has its kernel cached
# already (SANDLET_LAB_CACHE points the installed copy at it: no download).
cache=$repo/build/kvm-lab/cache
if [ -s "$cache/current" ] && command -v qemu-system-x86_64 >/dev/null && [ -f "$W/build/guests/hello" ]; then
    out=$(env -u SANDLET_NO_LAB SANDLET_FORCE_LAB=1 SANDLET_LAB_CACHE="$cache" \
        "$P/bin/sandlet" call "$W/build/guests/hello" Greet lab 2>"$T/err")
    check "installed_cli_runs_in_the_lab: '$out' $(tail -n 3 "$T/err")" \
        test "$out" = "hello, lab" -a -n "$(grep 'running in the KVM lab' "$T/err")"
fi

# ---- man pages: rendered without warnings, lint-clean, NAME found
for m in man1/sandlet.1 man1/sandlet-cc.1 man3/sandlet.3; do
    f=$P/share/man/$m
    w=$(MANWIDTH=80 man --warnings -l "$f" 2>&1 >"$T/man.txt")
    lint=$(mandoc -T lint "$f" 2>&1)
    name=$(lexgrog "$f" 2>&1)
    n=$(basename "$m" | sed 's/\.[0-9]$//')
    if [ -z "$w" ] && [ -z "$lint" ] && [ -s "$T/man.txt" ] && echo "$name" | grep -q ": \"$n - "; then
        pass "man_page $m"
    else
        fail "man_page $m: man: $w; mandoc: $lint; lexgrog: $name"
    fi
done

# A relative PREFIX is refused before anything is copied (it would install
# under the source tree, with a sandlet.pc that points nowhere).
rel=sandlet-relative-prefix-test.$$
out=$(make -C "$repo" --no-print-directory BUILD=build install PREFIX="$rel" 2>&1)
rc=$?
check "make_install_refuses_a_relative_prefix: $rc $(echo "$out" | tail -n 1)" \
    test "$rc" != 0 -a ! -e "$repo/$rel" -a -n "$(echo "$out" | grep 'must be absolute paths')"
rm -rf "${repo:?}/$rel"

# ---- make uninstall leaves no file (only the standard directories)
if make -C "$repo" --no-print-directory BUILD=build uninstall DESTDIR="$root" PREFIX="$prefix" >"$T/uninstall.log" 2>&1; then
    left=$(cd "$root" && find . ! -type d)
    dirs=$(cd "$root$prefix" && find . -type d | grep -vx -e . -e ./bin -e ./include -e ./lib -e ./lib/pkgconfig \
        -e ./share -e ./share/man -e ./share/man/man1 -e ./share/man/man3)
    # shellcheck disable=SC2086,SC2116 # one line
    check "make_uninstall_leaves_nothing${left:+: left $(echo $left)}${dirs:+: directories $(echo $dirs)}" \
        test -z "$left$dirs"
else
    fail "make_uninstall: $(tail -n 5 "$T/uninstall.log")"
fi
[ "$FAILS" = 0 ]
