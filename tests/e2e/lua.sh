#!/bin/sh
# The Lua corpus: every script in tests/lua run by the musl Lua interpreters
# build/guests/lua (x86-64) and build/guests/lua32 (i686) inside the sandbox
# (`sandlet run`), with stdout, stderr and the exit status compared byte for
# byte with what Debian's lua5.4 (glibc) printed for the same script at build
# time (mk/lua-tests.mk, `make lua-expected`).
#
#   tests/e2e/lua.sh BUILD_DIR             in the sandbox: "$BUILD_DIR/sandlet run";
#                                          each architecture where its guests run
#                                          and SANDLET_TEST_ARCHS covers it
#                                          (tests/e2e/arch.sh; tests/run runs it
#                                          natively and in the KVM lab)
#   tests/e2e/lua.sh --native BUILD_DIR    the same interpreters run directly on
#                                          this machine, no sandbox (a self-check
#                                          of the corpus and of the musl builds)
#   tests/e2e/lua.sh --expected DIR SCRIPT...
#                                          makes the expected files: runs lua5.4
#                                          ($LUA_REF) on each SCRIPT and writes
#                                          DIR/NAME.lua (a copy of the script),
#                                          DIR/NAME.out, NAME.err, NAME.rc
#
# Prints one "PASS lua: NAME (ARCH)" / "FAIL lua: NAME (ARCH): why" line per
# script and architecture; exit status 1 when anything failed. Runs for the
# normal build (build) only: the interpreters and the expected outputs do not
# depend on the variant, and the corpus would double the lab's time.
# POSIX sh and busybox applets only (busybox ash in the lab).
#
# How every script runs, the same way in all three modes (the expected files
# depend on it: change it here and `make lua-expected` regenerates them):
#
# * The script is the interpreter's stdin and the command line is
#   `lua - [ARGS]`: in the sandbox there is no file system, so the chunk is
#   named "stdin" in messages. ARGS are the words after "-- @args:" on one of
#   the script's first three lines, if it has one (split at blanks, no
#   quoting, no globbing).
# * argv[0] is "lua" for every interpreter: lua.c starts its error messages
#   with argv[0] ("lua: stdin:3: ..."), and Debian's binary is called lua5.4,
#   ours lua and lua32. So each run happens in a scratch directory holding a
#   symbolic link named "lua" to the interpreter, started by that bare name:
#   found through PATH by env(1) natively, and given to `sandlet run` as
#   PROGRAM "lua" (a relative path: sandlet passes argv[0] = PROGRAM as given).
# * The environment is exactly TZ=UTC, LANG=C and SANDLET_LUA_VAR (below),
#   plus PATH natively (needed to find "lua"; the scripts do not read it).
#   Native runs use `env -i`; `sandlet run` starts programs with an empty
#   environment and gets the variables through --env.
# * The C stack is 8 MiB, Linux's usual default (`ulimit -s`, `--stack`):
#   Lua's limit of 200 nested C calls assumes a stack of that order; with
#   sandlet's default 256K, 038_stack_overflow's gsub recursion overflows it.
# * A script with a line "-- @memlimit" among its first three runs with
#   64 MiB of memory (`ulimit -v 65536` natively, `--memory 67108864` in the
#   sandbox) and is expected to run out of it; the others run with sandlet's
#   default memory (256M, or $SANDLET_LUA_MEMORY when set), unlimited natively.
# * Both interpreters run every script; SANDLET_LUA_ARCHS="x86_64" (or
#   "i386") picks one.
# * Each run is stopped after $SANDLET_LUA_TIMEOUT_MS (default 120000) ms:
#   `timeout` natively, `--timeout-ms` in the sandbox. No script takes more
#   than ~0.2 s natively; the lab is ~50x slower.
VAR_VALUE="sandlet lua corpus"
MEMLIMIT_KB=65536
MEMLIMIT_BYTES=67108864
STACK_KB=8192
STACK_BYTES=8388608
TIMEOUT_MS=${SANDLET_LUA_TIMEOUT_MS:-120000}

mode=sandbox
case ${1:-} in
--native) mode=native; shift ;;
--expected) mode=expected; shift ;;
esac
ORIG=$PWD
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD

T=$(mktemp -d "${TMPDIR:-/tmp}/sandlet-lua.XXXXXX" 2>/dev/null) || {
    T=${TMPDIR:-/tmp}/sandlet-lua.$$
    rm -rf "$T" && mkdir -p "$T"
} || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT TERM

# abspath PATH [BASE]: PATH made absolute against BASE (default: the root).
abspath() {
    case $1 in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s\n' "${2:-$ROOT}/$1" ;;
    esac
}

# run_lua HOW DIR SCRIPT OUT ERR: runs DIR/lua on SCRIPT as described above
# (HOW: sandbox or native), stdout to OUT, stderr to ERR; sets rc.
run_lua() {
    how=$1 dir=$2 script=$3 out=$4 err=$5
    # the annotations, read with builtins: every fork costs in the lab
    args='' memlimit=''
    {
        IFS= read -r l1
        IFS= read -r l2
        IFS= read -r l3
    } <"$script"
    for l in "$l1" "$l2" "$l3"; do
        case $l in
        "-- @args:"*) args=${l#-- @args:} ;;
        "-- @memlimit"*) memlimit=1 ;;
        esac
    done
    set -f
    if [ "$how" = sandbox ]; then
        if [ -n "$memlimit" ]; then
            mem="--memory $MEMLIMIT_BYTES"
        elif [ -n "${SANDLET_LUA_MEMORY:-}" ]; then
            mem="--memory $SANDLET_LUA_MEMORY"
        else
            mem=
        fi
        # $mem and $args are split into words on purpose.
        # shellcheck disable=SC2086
        (cd "$dir" && exec "$SANDLET" run --timeout-ms "$TIMEOUT_MS" --stack "$STACK_BYTES" $mem \
            --env TZ=UTC --env LANG=C --env "SANDLET_LUA_VAR=$VAR_VALUE" lua - $args) \
            <"$script" >"$out" 2>"$err"
        rc=$?
    else
        to=
        command -v timeout >/dev/null 2>&1 && to="timeout $((TIMEOUT_MS / 1000 + 1))"
        # ulimit -s/-v: not POSIX, but in dash, bash and busybox ash.
        # shellcheck disable=SC2086,SC3045
        (
            cd "$dir" || exit 126
            ulimit -s "$STACK_KB" 2>/dev/null
            if [ -n "$memlimit" ]; then ulimit -v "$MEMLIMIT_KB" || exit 126; fi
            exec $to env -i PATH="$dir:/usr/bin:/bin" TZ=UTC LANG=C SANDLET_LUA_VAR="$VAR_VALUE" lua - $args
        ) <"$script" >"$out" 2>"$err"
        rc=$?
    fi
    set +f
}

# ------------------------------------------------------------ --expected
if [ "$mode" = expected ]; then
    [ $# -ge 2 ] || { echo "usage: $0 --expected DIR SCRIPT..." >&2; exit 2; }
    fix=$(abspath "$1" "$ORIG")
    shift
    ref=$(command -v "${LUA_REF:-lua5.4}") || {
        echo "lua.sh: ${LUA_REF:-lua5.4} not found: apt-get install lua5.4 (scripts/deps.sh installs it)" >&2
        exit 1
    }
    mkdir -p "$fix" "$T/ref" && ln -s "$(abspath "$ref")" "$T/ref/lua" || exit 1
    for s in "$@"; do
        n=$(basename "$s" .lua)
        tmp=$fix/.$n.$$
        cp "$(abspath "$s" "$ORIG")" "$tmp.lua" || exit 1
        run_lua native "$T/ref" "$tmp.lua" "$tmp.out" "$tmp.err"
        echo "$rc" >"$tmp.rc"
        if [ "$rc" -ge 124 ]; then
            echo "lua.sh: $ref on $s exited $rc (killed or timed out): $(head -c 300 "$tmp.err")" >&2
            rm -f "$tmp.lua" "$tmp.out" "$tmp.err" "$tmp.rc"
            exit 1
        fi
        # the .rc file last: make's target, it marks a complete set
        for ext in lua out err rc; do mv -f "$tmp.$ext" "$fix/$n.$ext" || exit 1; done
    done
    exit 0
fi

# ------------------------------------------------------------ sandbox / native
B=${1:-build}
case $B in
build | build/ | ./build | ./build/ | "$ROOT/build" | "$ROOT/build/") ;;
*)
    echo "# lua corpus runs in the normal build only"
    exit 0
    ;;
esac
B=build
FIX=${SANDLET_LUA_FIXTURES:-build/fixtures/lua}
G=${SANDLET_GUESTS:-build/guests}
export SANDLET_NO_LAB=1
unset SANDLET_FORCE_LAB
FAILS=0

fail() {
    echo "FAIL $1"
    FAILS=$((FAILS + 1))
}

# differs WHAT GOT WANT: a short description of the first difference.
differs() {
    line=$(cmp "$2" "$3" 2>/dev/null | sed -n 's/.*differ: .*line \([0-9]*\).*/\1/p')
    if [ -n "$line" ]; then
        printf '%s differs at line %s: got "%s", want "%s"; ' "$1" "$line" \
            "$(sed -n "${line}p" "$2" | head -c 160)" "$(sed -n "${line}p" "$3" | head -c 160)"
    else
        printf '%s differs: %s bytes, want %s (one is a prefix of the other); ' "$1" \
            "$(wc -c <"$2" | tr -d ' ')" "$(wc -c <"$3" | tr -d ' ')"
    fi
}

set -- "$FIX"/*.lua
if [ ! -f "$1" ]; then
    echo "FAIL lua: no scripts and expected outputs in $FIX (make lua-expected makes them)"
    exit 1
fi
if [ "$mode" = sandbox ]; then
    SANDLET=$(abspath "$B/sandlet")
    if [ ! -x "$SANDLET" ]; then
        echo "FAIL lua: no $B/sandlet (make builds the CLI)"
        exit 1
    fi
    . "$ROOT/tests/e2e/arch.sh"
    arch_init "$SANDLET" || FAILS=$((FAILS + 1))
fi

for arch in ${SANDLET_LUA_ARCHS:-x86_64 i386}; do
    case $arch in
    x86_64) prog=$G/lua need=amd64 ;;
    i386) prog=$G/lua32 need=i686 ;;
    *)
        fail "lua: unknown architecture '$arch' in SANDLET_LUA_ARCHS (x86_64, i386)"
        continue
        ;;
    esac
    # in the sandbox: where that architecture's guests run and this run covers it
    [ "$mode" != sandbox ] || arch_need "$need" || continue
    if [ ! -f "$prog" ]; then
        fail "lua: all scripts ($arch): $prog missing (make lua-guests builds it)"
        continue
    fi
    dir=$T/$arch
    mkdir -p "$dir" && ln -s "$(abspath "$prog")" "$dir/lua" || exit 1
    for s in "$@"; do
        n=${s##*/}
        n=${n%.lua}
        exp=$FIX/$n
        if [ ! -f "$exp.rc" ] || [ ! -f "$exp.out" ] || [ ! -f "$exp.err" ]; then
            fail "lua: $n ($arch): expected files $exp.{out,err,rc} missing (make lua-expected)"
            continue
        fi
        run_lua "$mode" "$dir" "$s" "$T/out" "$T/err"
        why=
        read -r want_rc <"$exp.rc"
        [ "$rc" = "$want_rc" ] || why="exit status $rc, want $want_rc; "
        cmp -s "$T/out" "$exp.out" || why="$why$(differs stdout "$T/out" "$exp.out")"
        cmp -s "$T/err" "$exp.err" || why="$why$(differs stderr "$T/err" "$exp.err")"
        if [ -z "$why" ]; then
            echo "PASS lua: $n ($arch)"
        else
            fail "lua: $n ($arch): ${why%; }"
            # what the interpreter (or sandlet) said, when it is not the expected text
            if ! cmp -s "$T/err" "$exp.err" && [ -s "$T/err" ]; then
                echo "# $n ($arch) stderr: $(head -c 400 "$T/err" | tr '\n' ' ')"
            fi
        fi
    done
done
[ "$FAILS" = 0 ]
