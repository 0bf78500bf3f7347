#!/bin/sh
# The Lua plugin guest from the command line (docs/lua-plugin.md): a plugin
# library loaded into a snapshot file with `sandlet snapshot save ... --call
# Load`, then Call (JSON) and Eval against that file.
# Usage: tests/e2e/lua_plugin.sh BUILD_DIR
# Prints one "PASS name" / "FAIL name: why" line per check; each runs where
# its guest's architecture can and this run covers it (tests/e2e/arch.sh,
# SANDLET_TEST_ARCHS): tests/run runs the suite natively and in the KVM lab.
# POSIX sh (busybox ash in the lab).
B=${1:-build}
S=$B/sandlet
G=${SANDLET_GUESTS:-build/guests}
export SANDLET_NO_LAB=1
unset SANDLET_FORCE_LAB
if [ ! -x "$S" ]; then
    echo "FAIL lua_plugin: no $S"
    exit 1
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/sandlet-lua-plugin.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
FAILS=0
. "$(dirname "$0")/arch.sh"
arch_init "$S" || FAILS=$((FAILS + 1))

. "$(dirname "$0")/check.sh"

# te NAME WANT_RC PATTERN... -- ARGS...: exit code, empty stdout, and stderr
# matching every PATTERN (grep -E).
te() {
    name=$1 want_rc=$2
    shift 2
    pats=""
    while [ "$1" != "--" ]; do
        pats="$pats
$1"
        shift
    done
    shift
    out=$("$S" "$@" 2>"$T/err")
    rc=$?
    ok=1
    [ "$rc" = "$want_rc" ] && [ -z "$out" ] || ok=0
    printf '%s\n' "$pats" | while IFS= read -r p; do
        [ -z "$p" ] && continue
        grep -Eq -- "$p" "$T/err" || echo "$p"
    done >"$T/missing"
    [ -s "$T/missing" ] && ok=0
    if [ "$ok" = 1 ]; then
        pass "$name"
    else
        missing=$(tr '\n' '|' <"$T/missing")
        fail "$name: rc=$rc (want $want_rc), stdout '$out', missing /$missing/ in stderr: $(head -c 600 "$T/err")"
    fi
}

# The library starts with a Lua comment: an argument beginning with "--" is
# still a --call argument.
cat >"$T/lib.lua" <<'LUA'
-- a plugin library
function add(a, b) return a + b end
function greet(name) return {greeting = "hello, " .. name, length = #name} end
function stats(xs)
  local s = 0
  for _, x in ipairs(xs) do s = s + x end
  return s, #xs
end
function shout(s) return host.HostUpper(s) end
function fail() error("boom from the plugin") end
function nothing() end
LUA
LIB=$(cat "$T/lib.lua")
TAB=$(printf '\t')

for g in lua_plugin lua_plugin32; do
    case $g in
    *32) arch=i686 ;;
    *) arch=amd64 ;;
    esac
    arch_need "$arch" || continue
    P=$T/$g.snap
    t "$g: snapshot save --call Load" 0 "" snapshot save "$G/$g" "$P" --call Load "$LIB"
    if [ ! -f "$P" ]; then
        fail "$g: no snapshot file; the other checks need it"
        continue
    fi
    t "$g: Call add [1,2]" 0 "3" call "$P" Call add '[1,2]'
    t "$g: Call greet" 0 '{"greeting":"hello, sandlet","length":7}' call "$P" Call greet '["sandlet"]'
    t "$g: Call with several results" 0 "[6.5,3]" call "$P" Call stats '[[1, 2, 3.5]]'
    t "$g: Call with no arguments and no result" 0 "null" call "$P" Call nothing ''
    t "$g: print in a Call goes to stdout" 0 "hi${TAB}1
null" call "$P" Call print '["hi", 1]'
    t "$g: Call reaches the CLI's host function" 0 '"ABC"' call "$P" Call shout '["abc"]'
    t "$g: Eval" 0 "42" call "$P" Eval 'return add(20, 22)'
    t "$g: Eval returns what it printed" 0 "a${TAB}1
2${TAB}nil" call "$P" Eval 'print("a", 1) return 2, nil'
    t "$g: Eval host.HostUpper" 0 "ABC" call "$P" Eval 'return host.HostUpper("abc")'
    t "$g: each call starts from the file" 0 "nil" call "$P" Eval 'return x'
    te "$g: a Lua error fails the call with a traceback" 1 "boom from the plugin" "stack traceback:" \
        "in function 'fail'" -- call "$P" Call fail '[]'
    te "$g: bad JSON" 1 "JSON: unexpected end of text" -- call "$P" Call add '[1,'
    te "$g: unknown function" 1 "Call: no global function 'nope'" -- call "$P" Call nope '[]'
    te "$g: wrong host argument" 1 "host.HostUpper: argument 1 must be a string" -- \
        call "$P" Eval 'return host.HostUpper(1)'
    te "$g: syntax error" 1 "Eval:1:" -- call "$P" Eval 'x = = 1'
    t "$g: no loader of bytecode, not even behind load" 0 "nil${TAB}attempt to load a binary chunk (mode is 't')" \
        call "$P" Eval 'local d = string.dump(function() end) local _, raw = debug.getupvalue(load, 1) return raw, select(2, load(d))'
    t "$g: snapshot save with Load and Eval" 0 "" snapshot save "$G/$g" "$T/$g-2.snap" --call Load "$LIB" \
        --call Eval 'counter = 5'
    t "$g: state kept by the second snapshot" 0 "6" call "$T/$g-2.snap" Eval 'return counter + add(0, 1)'
    te "$g: a failing Load saves nothing" 1 "Load:1:" -- snapshot save "$G/$g" "$T/$g-bad.snap" --call Load 'function ('
    if [ ! -e "$T/$g-bad.snap" ]; then
        pass "$g: no file after the failing Load"
    else
        fail "$g: $T/$g-bad.snap exists"
    fi
done

[ "$FAILS" = 0 ]
