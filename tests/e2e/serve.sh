#!/bin/sh
# End-to-end tests of the request server example, build/serve (docs/serve.md).
# Usage: tests/e2e/serve.sh BUILD_DIR. Prints one "PASS name" / "FAIL name: why"
# line per check; answers are checked with jq, the socket is driven with
# `nc -U` (netcat-openbsd; scripts/deps.sh installs both).
#
# The guests (demo, faulty) are x86-64: the checks that run them run where
# those run and SANDLET_TEST_ARCHS covers them (tests/e2e/arch.sh), natively or
# in the KVM lab (tests/run carries build/serve, jq and nc there). Checks that
# run no guest (usage, a bad snapshot file) always run. POSIX sh.
B=${1:-build}
S=$B/sandlet
SV=$B/serve
G=${SANDLET_GUESTS:-build/guests}
export SANDLET_NO_LAB=1
unset SANDLET_FORCE_LAB
if [ ! -x "$S" ] || [ ! -x "$SV" ]; then
    echo "FAIL serve: no $S or $SV (make builds both)"
    exit 1
fi
if ! command -v jq >/dev/null; then
    echo "FAIL serve: jq is missing (scripts/deps.sh installs it)"
    exit 1
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/sandlet-serve.XXXXXX") || exit 1
SPID=""
trap 'if [ -n "$SPID" ]; then kill "$SPID" 2>/dev/null; fi; rm -rf "$T"' EXIT
FAILS=0
. "$(dirname "$0")/arch.sh"
arch_init "$S" || FAILS=$((FAILS + 1))

CHECK_PREFIX="serve: "
. "$(dirname "$0")/check.sh"

# serve NAME ARGS... <input: runs build/serve; its answers in $T/out, its
# stderr in $T/err, its exit status in $RC.
serve() {
    "$SV" "$@" >"$T/out" 2>"$T/err"
    RC=$?
}

# check NAME JQ_FILTER: the filter, given every answer of $T/out as one
# array, is true.
check() {
    if jq -e -s "$2" "$T/out" >/dev/null 2>"$T/jqerr"; then
        pass "$1"
    else
        fail "$1: jq '$2' is not true; answers: $(head -c 1500 "$T/out"); stderr: $(head -c 600 "$T/err") $(cat "$T/jqerr")"
    fi
}

# check_stats NAME REQUESTS ERRORS WORKERS: the figures on stderr.
check_stats() {
    if grep -Eq "^serve: requests=$2 errors=$3 wall_s=[0-9.]+ throughput=[0-9.]+/s latency_us p50=[0-9.]+ p90=[0-9.]+ p99=[0-9.]+ max=[0-9.]+$" "$T/err" &&
        [ "$(grep -c '^serve: worker [0-9]*: requests=[0-9]* errors=[0-9]*$' "$T/err")" = "$4" ] &&
        [ "$(sed -n 's/^serve: worker [0-9]*: requests=\([0-9]*\) .*/\1/p' "$T/err" | awk '{ n += $1 } END { print n + 0 }')" = "$2" ]; then
        pass "$1"
    else
        fail "$1: want requests=$2 errors=$3 and $4 worker lines; stderr: $(head -c 800 "$T/err")"
    fi
}

# ------------------------------------------------------------ no guest runs
serve
if [ "$RC" = 2 ] && grep -q '^usage: serve SNAPSHOT_FILE' "$T/err"; then pass "no arguments: usage, exit 2"; else fail "no arguments: rc=$RC $(cat "$T/err")"; fi
serve x.snap --workers 0
if [ "$RC" = 2 ] && grep -q -- '--workers takes a number' "$T/err"; then pass "--workers 0: exit 2"; else fail "--workers 0: rc=$RC $(cat "$T/err")"; fi
serve x.snap --bogus
if [ "$RC" = 2 ] && grep -q 'unknown option --bogus' "$T/err"; then pass "unknown option: exit 2"; else fail "unknown option: rc=$RC $(cat "$T/err")"; fi
serve --help
if [ "$RC" = 0 ] && grep -q '^usage: serve' "$T/out"; then pass "--help"; else fail "--help: rc=$RC"; fi
serve "$T/missing.snap" </dev/null
if [ "$RC" = 1 ] && grep -q "^serve: $T/missing.snap: " "$T/err" && [ ! -s "$T/out" ]; then
    pass "missing snapshot file: exit 1 with the reason"
else
    fail "missing snapshot file: rc=$RC $(cat "$T/err")"
fi
echo "not a snapshot" >"$T/text.snap"
serve "$T/text.snap" </dev/null
if [ "$RC" = 1 ] && grep -q "^serve: $T/text.snap: " "$T/err"; then pass "a file that is not a snapshot: exit 1"; else fail "not a snapshot: rc=$RC $(cat "$T/err")"; fi

arch_need amd64 || exit $((FAILS > 0))

# ------------------------------------------------------------ snapshots
# demo after two Counter calls: every request starts from counter = 2.
if ! "$S" snapshot save "$G/demo" "$T/demo.snap" --call Counter --call Counter >/dev/null 2>"$T/err" ||
    ! "$S" snapshot save "$G/faulty" "$T/faulty.snap" >/dev/null 2>>"$T/err"; then
    fail "snapshot save: $(cat "$T/err")"
    exit 1
fi
FILL=$("$S" call "$G/demo" Fill 40000 2>/dev/null)

# ------------------------------------------------------------ one worker, stdin
# Line numbers matter: answers without an id carry them.
cat >"$T/in" <<'EOF'
{"id": 1, "fn": "Add", "args": [2, 40]}
{"id": "c1", "fn": "Counter"}
{"id": "c2", "fn": "Counter", "args": []}
{"fn": "Counter"}

{"id": {"nested": [1, null]}, "fn": "Echo", "args": ["q\"uote \\ back\nline\ttab é 日本 🎉 \u00e9\u0000end"]}
{"id": "up", "fn": "Upper", "args": ["hello, wörld 42"]}
{"id": "fill", "fn": "Fill", "args": [40000]}
{"id": "print", "fn": "Print", "args": ["printed by the guest"]}
{"fn":
[1, 2]
{"id": "nofn", "fn": "Nope"}
{"id": "argc", "fn": "Add", "args": [1]}
{"id": "argtype", "fn": "Add", "args": [1, "2"]}
{"id": "range", "fn": "Add", "args": [2147483648, 0]}
{"id": "neg", "fn": "Fill", "args": [-1]}
{"id": "dup", "fn": "Add", "fn": "Echo", "args": [1, 2]}
{"id": "key", "fn": "Add", "args": [1, 2], "arg": 3}
{"id": "c4", "fn": "Counter"}
{"id": "u64", "fn": "Fill", "args": ["0"]}
EOF
serve "$T/demo.snap" <"$T/in"
if [ "$RC" = 0 ] && [ "$(wc -l <"$T/out")" = 19 ]; then pass "stdin: one answer line per request, blank line skipped, exit 0"; else fail "stdin: rc=$RC, $(wc -l <"$T/out") answers: $(cat "$T/out") $(cat "$T/err")"; fi
check "answers in order with one worker" '[.[].id] == [1,"c1","c2",4,{"nested":[1,null]},"up","fill","print",10,11,"nofn","argc","argtype","range","neg",17,"key","c4","u64"]'
check "Add(2, 40) = 42 (i32)" '.[0] == {"id":1,"ok":true,"type":"i32","value":42}'
check "Counter is 3 every time: restored to the snapshot after each request" '[.[] | select(.type == "i64") | .value] == [3,3,3,3]'
check "no id: the request's line number" '.[3].id == 4 and .[3].ok'
check "a string with quotes, backslash, newline, tab, UTF-8 and NUL reaches the guest exactly" \
    '.[4].value == "q\"uote \\ back\nline\ttab é 日本 🎉 é\u0000end" and .[4].type == "string"'
check "host function HostUpper (ASCII upper case)" '.[5].value == "HELLO, WöRLD 42"'
check "Fill(40000) is a u64 equal to sandlet call's" ".[6] == {\"id\":\"fill\",\"ok\":true,\"type\":\"u64\",\"value\":$FILL}"
check "void result: value null" '.[7] == {"id":"print","ok":true,"type":"void","value":null}'
if grep -qx '\[guest 0\] printed by the guest' "$T/err"; then pass "guest prints go to stderr, tagged with the worker"; else fail "guest print: $(cat "$T/err")"; fi
check "malformed JSON: error, SL_EINVAL, line number as id" '.[8] | .ok == false and .code == -1 and .id == 10 and (.error | startswith("malformed JSON"))'
check "a request that is not an object: SL_EINVAL" '.[9] | .ok == false and .code == -1 and .id == 11'
check "unknown function: SL_ENOTFOUND" '.[10] | .ok == false and .code == -17 and (.error | contains("Nope"))'
check "wrong argument count: SL_ETYPE, with the signature" '.[11] | .ok == false and .code == -18 and (.error | contains("(i32, i32)"))'
check "string for an i32: SL_ETYPE" '.[12] | .ok == false and .code == -18 and (.error | contains("argument 2"))'
check "i32 out of range: SL_ERANGE" '.[13] | .ok == false and .code == -6'
check "negative u64: SL_ERANGE" '.[14] | .ok == false and .code == -6'
check "duplicate keys: SL_EINVAL (the line is rejected: its number is the id)" '.[15] | .ok == false and .code == -1 and .id == 17'
check "unknown key: SL_EINVAL" '.[16] | .ok == false and .code == -1 and (.error | contains("arg"))'
check "u64 as a decimal string" '.[18] | .ok and .value == 0 and .type == "u64"'
check_stats "figures on stderr: requests, errors, latency percentiles, worker counts" 19 9 1

# --quiet drops what the guest prints
echo '{"fn": "Print", "args": ["hidden"]}' >"$T/in"
serve "$T/demo.snap" --quiet <"$T/in"
if [ "$RC" = 0 ] && ! grep -q hidden "$T/err"; then pass "--quiet drops guest prints"; else fail "--quiet: $(cat "$T/err")"; fi

# u64 as a decimal string at and past its edges: out of range is SL_ERANGE,
# as for a JSON integer; leading zeros are digits like any other.
printf '%s\n' '{"id": "max", "fn": "Fill", "args": ["18446744073709551615"]}' \
    '{"id": "2^64", "fn": "Fill", "args": ["18446744073709551616"]}' \
    '{"id": "long", "fn": "Fill", "args": ["123456789012345678901234567890"]}' \
    '{"id": "neg", "fn": "Fill", "args": ["-1"]}' \
    '{"id": "zeros", "fn": "Fill", "args": ["000000000000000000000000000040000"]}' \
    '{"id": "sign", "fn": "Fill", "args": ["+1"]}' >"$T/in"
serve "$T/demo.snap" --quiet <"$T/in"
check "u64 decimal strings: 2^64 - 1 reaches the guest (too much for its heap)" \
    '.[0] | .id == "max" and .code == -21 and (.error | contains("heap exhausted"))'
check "u64 decimal strings out of range (2^64, 30 digits, -1): SL_ERANGE" \
    '[.[1], .[2], .[3]] | all(.ok == false and .code == -6 and (.error | contains("out of range")))'
check "u64 decimal string with leading zeros" ".[4] == {\"id\":\"zeros\",\"ok\":true,\"type\":\"u64\",\"value\":$FILL}"
check "u64: a string that is not decimal digits: SL_ETYPE" '.[5] | .ok == false and .code == -18'

# Lines over 1 MiB are answered with an error without being held; the one after is fine.
{
    printf '{"fn": "Echo", "args": ["'
    head -c 1100000 /dev/zero | tr '\0' a
    printf '"]}\n{"id": "after", "fn": "Add", "args": [1, 1]}\n'
    printf '{"id": "big", "fn": "Echo", "args": ["'
    head -c 1000000 /dev/zero | tr '\0' b
    printf '"]}\n{"id": "last", "fn": "Counter"}\n'
} >"$T/in"
serve "$T/demo.snap" <"$T/in"
check "a line over 1 MiB: SL_ERANGE, id = line number; the next request is fine" \
    '.[0].ok == false and .[0].code == -6 and .[0].id == 1 and .[1] == {"id":"after","ok":true,"type":"i32","value":2}'
check "a 1 MB string (over the guest's 64 KiB input buffer): an error answer, then Counter is 3" \
    '.[2].id == "big" and .[2].ok == false and .[3].value == 3 and length == 4'

# ------------------------------------------------------------ failures leave nothing behind
cat >"$T/in" <<'EOF'
{"id": 1, "fn": "Counter"}
{"id": 2, "fn": "DivZero"}
{"id": 3, "fn": "Counter"}
{"id": 4, "fn": "Spin"}
{"id": 5, "fn": "Counter"}
{"id": 6, "fn": "Abort", "args": [7, "told to"]}
{"id": 7, "fn": "Counter"}
{"id": 8, "fn": "Recurse"}
{"id": 9, "fn": "WriteIDT"}
{"id": 10, "fn": "Counter"}
EOF
serve "$T/faulty.snap" --timeout-ms 500 <"$T/in"
check "a faulting call: SL_EFAULT (#DE)" '.[1] | .ok == false and .code == -13 and (.error | contains("divide error"))'
check "a call past --timeout-ms: SL_ETIMEOUT" '.[3] | .ok == false and .code == -15'
check "an abort: SL_EABORT with the guest's text" '.[5] | .ok == false and .code == -12 and (.error | contains("told to"))'
check "stack overflow and a write to the IDT: SL_EFAULT" '(.[7].code == -13) and (.[8].code == -13)'
check "every request after a failure starts clean: Counter is 1" '[.[] | select(.ok) | .value] == [1,1,1,1,1] and length == 10'
check_stats "figures count the failures" 10 5 1

printf '%s\n' '{"id": "oom", "fn": "ExhaustScratch"}' '{"id": "after", "fn": "Counter"}' >"$T/in"
serve "$T/faulty.snap" --timeout-ms 60000 <"$T/in"
check "out of memory: SL_ENOSCRATCH, then the sandbox works" \
    '.[0].ok == false and .[0].code == -21 and .[1] == {"id":"after","ok":true,"type":"i64","value":1}'

# ------------------------------------------------------------ two workers
: >"$T/in"
i=1
while [ $i -le 60 ]; do
    echo "{\"id\": $i, \"fn\": \"Counter\"}" >>"$T/in"
    i=$((i + 1))
done
echo '{"id": "echo", "fn": "Echo", "args": ["two workers"]}' >>"$T/in"
serve "$T/demo.snap" --workers 2 <"$T/in"
check "two workers: every request answered once, each answer a whole line" \
    'length == 61 and ([.[] | select(.type == "i64") | .id] | sort) == [range(1; 61)]'
check "two workers: Counter is 3 in every answer" '[.[] | select(.type == "i64") | .value] | unique == [3]'
check "two workers: Echo" 'map(select(.id == "echo"))[0].value == "two workers"'
check_stats "two workers: figures and two worker lines" 61 0 2

# A call that times out on one worker while the other answers.
{
    echo '{"id": "spin", "fn": "Spin"}'
    i=1
    while [ $i -le 20 ]; do
        echo "{\"id\": $i, \"fn\": \"Counter\"}"
        i=$((i + 1))
    done
} >"$T/in"
serve "$T/faulty.snap" --workers 2 --timeout-ms 500 <"$T/in"
check "two workers: a timeout on one, 20 clean answers" \
    'length == 21 and (map(select(.id == "spin"))[0].code == -15) and ([.[] | select(.ok) | .value] | length == 20 and unique == [1])'

# A stop while nobody reads the answers (stdout is a pipe whose reader
# holds it open and never reads): the server still ends, within the 2 s it
# gives the answers it cannot write, and says it dropped them.
mkfifo "$T/stall"
exec 5<>"$T/stall"
big=$(head -c 2000 /dev/zero | tr '\0' x)
: >"$T/in"
i=0
while [ $i -lt 200 ]; do
    echo "{\"id\": $i, \"fn\": \"Echo\", \"args\": [\"$big\"]}" >>"$T/in"
    i=$((i + 1))
done
"$SV" "$T/demo.snap" --quiet <"$T/in" >"$T/stall" 2>"$T/err" &
SPID=$!
sleep 1
kill -TERM "$SPID"
n=0
while kill -0 "$SPID" 2>/dev/null && [ $n -lt 200 ]; do
    sleep 0.05
    n=$((n + 1))
done
if kill -0 "$SPID" 2>/dev/null; then
    kill -KILL "$SPID"
    wait "$SPID"
    RC=124
else
    wait "$SPID"
    RC=$?
fi
SPID=""
exec 5<&-
if [ "$RC" = 0 ] && grep -q 'nobody reads the answers' "$T/err"; then
    pass "SIGTERM while stdout is not read: the server ends, exit 0"
else
    fail "SIGTERM while stdout is not read: rc=$RC (124: still running 10 s later), stderr: $(head -c 600 "$T/err")"
fi

# ------------------------------------------------------------ Unix socket
# OpenBSD's netcat by its own name: in the KVM lab a bare `nc` is busybox's,
# which has no -U.
NC=$(command -v nc.openbsd || command -v nc)
if [ -z "$NC" ]; then
    fail "socket: nc is missing (netcat-openbsd; scripts/deps.sh installs it)"
    exit 1
fi

# start_server ARGS...: build/serve in the background, its stderr in
# $T/serr; waits until it listens.
start_server() {
    rm -f "$T/serr" # the last server's "listening" line must not count
    "$SV" "$@" 2>"$T/serr" &
    SPID=$!
    n=0
    while ! grep -q '^serve: listening on ' "$T/serr" 2>/dev/null; do
        n=$((n + 1))
        if [ $n -gt 200 ] || ! kill -0 "$SPID" 2>/dev/null; then
            fail "socket: the server did not start: $(cat "$T/serr")"
            exit 1
        fi
        sleep 0.05
    done
}

# stop_server: SIGTERM, then its exit status in $RC (124: still running after 20 s).
stop_server() {
    kill -TERM "$SPID"
    n=0
    while kill -0 "$SPID" 2>/dev/null && [ $n -lt 400 ]; do
        sleep 0.05
        n=$((n + 1))
    done
    if kill -0 "$SPID" 2>/dev/null; then
        kill -KILL "$SPID"
        RC=124
    else
        wait "$SPID"
        RC=$?
    fi
    SPID=""
}

# conn_requests PREFIX N: N requests with ids PREFIX1..PREFIXN, alternating
# Counter and Add(i, 1).
conn_requests() {
    i=1
    while [ $i -le "$2" ]; do
        if [ $((i % 2)) = 1 ]; then
            echo "{\"id\": \"$1$i\", \"fn\": \"Counter\"}"
        else
            echo "{\"id\": \"$1$i\", \"fn\": \"Add\", \"args\": [$i, 1]}"
        fi
        i=$((i + 1))
    done
}

SOCK=$T/serve.sock
start_server "$T/demo.snap" --socket "$SOCK" --workers 2
conn_requests a 30 >"$T/ina"
conn_requests b 30 >"$T/inb"
"$NC" -N -U "$SOCK" <"$T/ina" >"$T/outa" &
A=$!
"$NC" -N -U "$SOCK" <"$T/inb" >"$T/outb" &
Bp=$!
printf '%s\n' '{"fn": "Echo", "args": ["over the socket: \"é\"\n"]}' 'not json' '{"id": 3, "fn": "Counter"}' |
    "$NC" -N -U "$SOCK" >"$T/out"
wait $A
wait $Bp
check "socket: answers of one connection in order; escaping; malformed line; Counter 3" \
    '.[0].value == "over the socket: \"é\"\n" and .[0].id == 1 and .[1].ok == false and .[1].id == 2 and .[2] == {"id":3,"ok":true,"type":"i64","value":3}'
for c in a b; do
    cp "$T/out$c" "$T/out"
    check "socket: connection $c, 30 answers in request order, all correct" \
        "length == 30 and [.[].id] == [range(1; 31) | \"$c\\(.)\"] and all(.[]; .ok) and ([.[] | select(.type == \"i64\") | .value] | unique == [3]) and ([.[] | select(.type == \"i32\") | .value] == [range(1; 16) | 2 * . + 1])"
done
stop_server
cp "$T/serr" "$T/err"
if [ "$RC" = 0 ] && [ ! -e "$SOCK" ]; then pass "socket: SIGTERM stops the server, exit 0, socket file removed"; else fail "socket stop: rc=$RC, socket $(ls -l "$SOCK" 2>&1), stderr: $(cat "$T/serr")"; fi
check_stats "socket: figures at the end" 63 1 2

# A path that exists is refused at start-up.
: >"$T/taken"
serve "$T/demo.snap" --socket "$T/taken"
if [ "$RC" = 1 ] && grep -q 'serve: socket path .*taken' "$T/err" && [ -f "$T/taken" ]; then pass "socket: a path in use is refused, exit 1"; else fail "socket path in use: rc=$RC $(cat "$T/err")"; fi

# The stop kills a call in flight (no timeout): its client, which keeps
# its connection open, gets an answer.
start_server "$T/faulty.snap" --socket "$SOCK"
mkfifo "$T/fifo"
"$NC" -N -U "$SOCK" <"$T/fifo" >"$T/out" &
A=$!
exec 3>"$T/fifo"
echo '{"id": "spin", "fn": "Spin"}' >&3
sleep 1
stop_server
exec 3>&-
wait "$A"
if [ "$RC" = 0 ]; then pass "socket: SIGTERM during an endless call stops the server"; else fail "socket: stop during a call: rc=$RC $(cat "$T/serr")"; fi
check "socket: the killed call is answered SL_ECANCELLED" '.[0].id == "spin" and .[0].code == -16'

exit $((FAILS > 0))
