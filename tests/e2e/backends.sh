#!/bin/sh
# One snapshot file, two backends (issue 10): where x86-64 guests run
# natively (hardware KVM or PVM) and the KVM lab can boot, a file saved
# natively answers identically in the lab, and one saved in the lab answers
# identically natively, CPU state included (MXCSR set to flush-to-zero in
# init: 1e-310 * 1 is 0 on both sides). Usage: tests/e2e/backends.sh BUILD_DIR
# Prints PASS/FAIL lines; prints nothing where it cannot run (inside the lab,
# no native x86-64 backend, or SANDLET_TEST_ARCHS without amd64): the
# native run of tests/run is the one that covers it. Two lab boots (~10 s).
B=${1:-build}
S=$B/sandlet
G=${SANDLET_GUESTS:-build/guests}
[ -z "${SANDLET_IN_LAB:-}" ] || exit 0
case ",${SANDLET_TEST_ARCHS:-amd64}," in *,amd64,* | *,x86_64,* | *,x86-64,*) ;; *) exit 0 ;; esac
if [ ! -x "$S" ]; then
    echo "FAIL backends: no $S"
    exit 1
fi
native=$(SANDLET_FORCE_LAB='' "$S" backend amd64 2>/dev/null)
[ "$native" = kvm ] || [ "$native" = pvm ] || exit 0
unset SANDLET_NO_LAB
# The CLI finds the lab next to its executable; a variant build (build/asan)
# sits one level deeper.
[ -n "${SANDLET_KVM_LAB:-}" ] || export SANDLET_KVM_LAB="$(cd "$(dirname "$0")/../.." && pwd)/scripts/kvm-lab"
T=$(mktemp -d "${TMPDIR:-/tmp}/sandlet-backends.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
FAILS=0
. "$(dirname "$0")/check.sh"

# The same questions to a file, natively or in the lab (one process each side).
ask() { # ask native|lab FILE
    if [ "$1" = lab ]; then
        SANDLET_FORCE_LAB=1 "$S" shell "$2" <"$T/script" 2>"$T/err.$1"
    else
        SANDLET_FORCE_LAB='' "$S" shell "$2" <"$T/script" 2>"$T/err.$1"
    fi
}
printf '%s\n' 'call Counter' 'call Add 40 2' 'call Echo "same answer"' 'call Fill 100000' >"$T/script"

# 1. saved natively ($native), answered natively and in the lab
if SANDLET_FORCE_LAB='' "$S" snapshot save "$G/demo" "$T/native.snap" --call Counter --call Fill 40000 >/dev/null 2>"$T/err" &&
    ask native "$T/native.snap" >"$T/native.out" && ask lab "$T/native.snap" >"$T/lab.out"; then
    if cmp -s "$T/native.out" "$T/lab.out" && grep -q '^2$' "$T/native.out"; then
        pass "a snapshot saved on $native answers identically in the lab"
    else
        fail "native-saved snapshot: $native said '$(tr '\n' ' ' <"$T/native.out")', lab said '$(tr '\n' ' ' <"$T/lab.out")'"
    fi
else
    fail "native-saved snapshot: $(head -c 400 "$T/err" "$T"/err.* 2>/dev/null)"
fi

# 2. saved in the lab, answered natively and in the lab; the CPU state rides along
if SANDLET_FORCE_LAB=1 "$S" snapshot save "$G/cpustate" "$T/lab.snap" >/dev/null 2>"$T/err" &&
    printf '%s\n' 'call Mxcsr' 'call Mul 1e-310 1' 'call Fcw' >"$T/script" &&
    ask native "$T/lab.snap" >"$T/native.out" && ask lab "$T/lab.snap" >"$T/lab.out"; then
    if cmp -s "$T/native.out" "$T/lab.out" && [ "$(sed -n 2p "$T/native.out")" = 0 ]; then
        pass "a snapshot saved in the lab answers identically on $native, MXCSR included"
    else
        fail "lab-saved snapshot: $native said '$(tr '\n' ' ' <"$T/native.out")', lab said '$(tr '\n' ' ' <"$T/lab.out")'"
    fi
else
    fail "lab-saved snapshot: $(head -c 400 "$T/err" "$T"/err.* 2>/dev/null)"
fi
[ "$FAILS" = 0 ]
