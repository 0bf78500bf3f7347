#!/bin/sh
# C library conformance: the musl guests build/guests/libc_conf (x86-64) and
# libc_conf32 (i686) run tests/libc/conformance.c's `all` inside the sandbox
# (`sandlet run`), and build/tests/libc/compare checks each output against the
# glibc reference made at build time (build/fixtures/libc/ref64.txt, ref32.txt).
# mk/libc-tests.mk builds all of them (`make libc-tests`).
#
#   tests/e2e/libc.sh BUILD_DIR            in the sandbox: each architecture where
#                                          its guests run and SANDLET_TEST_ARCHS
#                                          covers it (tests/e2e/arch.sh; tests/run
#                                          runs it natively and in the KVM lab)
#   tests/e2e/libc.sh --native BUILD_DIR   the same programs run directly on
#                                          this machine, no sandbox
#
# Prints the comparator's "PASS libc: ..." / "FAIL libc: ..." lines (one per
# group and architecture) and "# ..." notes (libc-specific values that differ,
# by design). Exit status 1 when anything failed. Runs for the normal build
# (build) only: the guests and references do not depend on the variant.
# POSIX sh (busybox ash in the lab).
native=0
if [ "${1:-}" = --native ]; then
    native=1
    shift
fi
B=${1:-build}
cd "$(dirname "$0")/../.." || exit 1
case $B in
build | build/ | ./build | ./build/ | "$PWD/build" | "$PWD/build/") ;;
*)
    echo "# libc conformance runs in the normal build only"
    exit 0
    ;;
esac
B=build
export SANDLET_NO_LAB=1
unset SANDLET_FORCE_LAB
# Generous: the lab emulates the CPU (~50x slower); natively `all` takes ~0.2 s.
TIMEOUT_MS=${LIBC_TIMEOUT_MS:-300000}
MEMORY=${LIBC_MEMORY:-268435456}
CMP=build/tests/libc/compare
T=$(mktemp -d "${TMPDIR:-/tmp}/sandlet-libc.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
FAILS=0

fail() {
    echo "FAIL $1"
    FAILS=$((FAILS + 1))
}

if [ "$native" = 0 ] && [ -x "$B/sandlet" ]; then
    . tests/e2e/arch.sh
    arch_init "$B/sandlet" || FAILS=$((FAILS + 1))
fi

# one ARCH GUEST REFERENCE
one() {
    arch=$1 guest=$2 ref=$3
    if [ "$native" = 0 ] && [ -x "$B/sandlet" ]; then
        # in the sandbox: where that architecture's guests run and this run covers it
        case $arch in
        x86_64) arch_need amd64 || return 0 ;;
        *) arch_need i686 || return 0 ;;
        esac
    fi
    for f in "$guest" "$ref" "$CMP"; do
        if [ ! -f "$f" ]; then
            fail "libc: $arch: $f missing (make libc-tests builds it)"
            return
        fi
    done
    if [ "$native" = 1 ]; then
        "$guest" all <"$T/empty" >"$T/out" 2>"$T/err"
        rc=$?
        how="$guest (natively)"
    else
        if [ ! -x "$B/sandlet" ]; then
            fail "libc: $arch: no $B/sandlet (make builds the CLI)"
            return
        fi
        "$B/sandlet" run --timeout-ms "$TIMEOUT_MS" --memory "$MEMORY" "$guest" all \
            <"$T/empty" >"$T/out" 2>"$T/err"
        rc=$?
        how="$B/sandlet run $guest"
    fi
    if [ "$rc" = 0 ]; then
        echo "PASS libc: exit status 0 ($arch)"
    else
        fail "libc: exit status ($arch): $how exited $rc; stderr: $(head -c 600 "$T/err" | tr '\n' ' ')"
    fi
    # Even after a failed run: the comparison says how far the guest got.
    "$CMP" "$T/out" "$ref" "$arch"
    crc=$?
    [ "$crc" = 0 ] || FAILS=$((FAILS + 1))
    if [ "$crc" != 0 ] && [ -s "$T/err" ]; then
        echo "# $arch stderr: $(head -c 600 "$T/err" | tr '\n' ' ')"
    fi
}

: >"$T/empty"
one x86_64 build/guests/libc_conf build/fixtures/libc/ref64.txt
one i386 build/guests/libc_conf32 build/fixtures/libc/ref32.txt
[ "$FAILS" = 0 ]
