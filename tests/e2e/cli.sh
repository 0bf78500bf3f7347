#!/bin/sh
# End-to-end tests of the `sandlet` CLI (docs/cli.md). Usage: tests/e2e/cli.sh BUILD_DIR
# Prints one "PASS name" / "FAIL name: why" line per check. A check that runs a
# guest runs only where that guest's architecture can and this run covers it
# (tests/e2e/arch.sh; SANDLET_TEST_ARCHS): tests/run runs the suite natively and
# inside the KVM lab; it never re-enters the lab itself. Checks that run no
# guest always run. The terminal checks (line editing and history in the
# shell, progress lines) need util-linux's script(1) for a pseudo-terminal:
# they run natively, not in the lab. POSIX sh (busybox ash in the lab).
B=${1:-build}
S=$B/sandlet
G=${SANDLET_GUESTS:-build/guests}
export SANDLET_NO_LAB=1
unset SANDLET_FORCE_LAB SANDLET_SNAPSHOT_PATH
if [ ! -x "$S" ]; then
    echo "FAIL cli: no $S (make test builds the CLI in every variant)"
    exit 1
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/sandlet-cli.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
FAILS=0
. "$(dirname "$0")/arch.sh"
arch_init "$S" || FAILS=$((FAILS + 1))

# garch GUEST: the architecture of a guest in $G (NAME32: i686).
garch() {
    case $1 in
    *32) echo i686 ;;
    *) echo amd64 ;;
    esac
}

. "$(dirname "$0")/check.sh"

# te NAME WANT_RC STDERR_PATTERN ARGS...: exit code, empty stdout, stderr matching (grep -E).
te() {
    name=$1 want_rc=$2 pat=$3
    shift 3
    out=$("$S" "$@" 2>"$T/err")
    rc=$?
    if [ "$rc" = "$want_rc" ] && [ -z "$out" ] && grep -Eq -- "$pat" "$T/err"; then
        pass "$name"
    else
        fail "$name: rc=$rc (want $want_rc), stdout '$out', stderr (want /$pat/): $(head -c 400 "$T/err")"
    fi
}

# tl NAME WANT_RC LAST_LINE_PATTERN ARGS...: exit code, and stdout's last line
# matching (grep -E, whole line).
tl() {
    name=$1 want_rc=$2 pat=$3
    shift 3
    out=$("$S" "$@" 2>"$T/err")
    rc=$?
    if [ "$rc" = "$want_rc" ] && echo "$out" | tail -n 1 | grep -Eqx -- "$pat"; then
        pass "$name"
    else
        fail "$name: rc=$rc (want $want_rc), stdout '$out' (want last line /$pat/), stderr: $(head -c 400 "$T/err")"
    fi
}

# ------------------------------------------------------------ basics
t "version" 0 "sandlet 0.1.0" --version
export SANDLET_TEST_VAR=copied
for c in run call shell snapshot; do
    out=$("$S" $c --help 2>&1)
    rc=$?
    if [ $rc = 0 ] && echo "$out" | grep -q '^usage: sandlet' && echo "$out" | grep -q '125 the KVM lab failed'; then
        pass "$c --help (usage and exit codes)"
    else
        fail "$c --help: rc=$rc"
    fi
done

# ------------------------------------------------------------ call, on both architectures
for g in demo demo32; do
    arch_need "$(garch $g)" || continue
    D=$G/$g
    t "$g Add" 0 "5" call "$D" Add 2 3
    t "$g Add negative and hex" 0 "-21" call "$D" Add -0x10 -5
    t "$g Add wraps in the guest" 0 "-2147483648" call "$D" Add 0x7fffffff 1
    t "$g Echo" 0 "hello sandlet world" call "$D" Echo "hello sandlet world"
    t "$g Echo empty string" 0 "" call "$D" Echo ""
    t "$g Echo an argument after --" 0 "--not-an-option" call "$D" Echo -- --not-an-option
    t "$g Counter starts at 1 in a fresh sandbox" 0 "1" call "$D" Counter
    t "$g Upper via built-in host function HostUpper" 0 "MIXED CASE 123" call "$D" Upper "mixed Case 123"
    t "$g Generation" 0 "0" call "$D" Generation
    # sum of (i*131+17) mod 256 over 4096 bytes: each residue appears 16 times.
    t "$g Fill checksum" 0 "522240" call "$D" Fill 4096
    t "$g options before and after" 0 "7" call --timeout-ms 5000 "$D" Add 3 4 --heap 2M --quiet

    out=$("$S" call "$D" Print "to stderr" 2>"$T/err")
    rc=$?
    if [ $rc = 0 ] && [ -z "$out" ] && grep -qx '\[guest\] to stderr' "$T/err"; then
        pass "$g Print goes to stderr as [guest], void prints nothing"
    else
        fail "$g Print: rc=$rc stdout '$out' stderr $(cat "$T/err")"
    fi
    out=$("$S" call --quiet "$D" Print "hidden" 2>&1)
    if [ $? = 0 ] && [ -z "$out" ]; then pass "$g --quiet drops guest prints"; else fail "$g --quiet: '$out'"; fi

    # usage and type errors: exit 2, naming the parameter and its type
    te "$g wrong argument count" 2 'Add takes 2 arguments, got 1: Add\(i32, i32\) -> i32' call "$D" Add 1
    te "$g unparsable i32" 2 "argument 2 of Add \(i32\): 'x' is not" call "$D" Add 1 x
    te "$g i32 out of range" 2 "argument 1 of Add \(i32\): '2147483648'" call "$D" Add 2147483648 0
    te "$g u64 rejects negative" 2 "argument 1 of Fill \(u64\)" call "$D" Fill -1
    te "$g u64 overflow" 2 "argument 1 of Fill \(u64\)" call "$D" Fill 18446744073709551616
    te "$g unknown function" 1 "no function 'Nope'" call "$D" Nope
done

# ------------------------------------------------------------ run: ordinary programs, both architectures
for g in runtest runtest32; do
    arch_need "$(garch $g)" || continue
    P=$G/$g
    t "$g args" 0 "$(printf '4\n%s\nargs\none\ntwo words' "$P")" run "$P" args one "two words"
    t "$g env set" 0 "bar" run --env FOO=bar "$P" env FOO
    t "$g env empty by default" 0 "(unset)" run "$P" env HOME
    t "$g env copied from ours" 0 "copied" run --env SANDLET_TEST_VAR "$P" env SANDLET_TEST_VAR
    t "$g exit status" 0 "" run "$P" exit 0
    t "$g exit status 7" 7 "" run "$P" exit 7
    t "$g abort is 128+SIGABRT" 134 "" run "$P" abort
    te "$g crash" 122 'guest exception: page fault .*address 0x0' run "$P" segv
    te "$g timeout" 124 'timeout' run --timeout-ms 300 "$P" spin
    te "$g stack overflow" 122 'stack overflow' run "$P" stack
    te "$g memory exhausted" 123 'out of (scratch )?memory' run --stack 2M --memory 3M "$P" stack
    t "$g --opt=value options" 0 "v" run --env=E=v --memory=32M "$P" env E
    t "$g clocks" 0 "ok" run "$P" time
    t "$g failed mremap leaves the mapping intact" 0 "ok" run --memory 64M "$P" mremap 40
    t "$g mmap never hands out a MAP_FIXED page" 0 "fixed data" run "$P" fixed
    t "$g no user page at address 0" 0 "refused" run "$P" nullmap
    t "$g no files" 0 "EACCES" run "$P" files
    out=$(printf 'line one\nline two\n' | "$S" run "$P" cat 2>"$T/err")
    if [ "$out" = "$(printf 'line one\nline two')" ]; then pass "$g stdin to stdout"; else fail "$g cat: '$out' $(cat "$T/err")"; fi
    head -c 300000 /dev/urandom >"$T/rand"
    "$S" run "$P" cat <"$T/rand" >"$T/rand.out" 2>"$T/err"
    if cmp -s "$T/rand" "$T/rand.out"; then pass "$g 300 KB through stdin and stdout"; else fail "$g large cat differs: $(cat "$T/err")"; fi
    n=$("$S" run "$P" big 200000 2>"$T/err" | wc -c)
    if [ "$n" -eq 200000 ]; then pass "$g large stdout"; else fail "$g big: $n bytes: $(cat "$T/err")"; fi
    out=$("$S" run "$P" stderr "to stderr" 2>"$T/err")
    if [ -z "$out" ] && [ "$(cat "$T/err")" = "to stderr" ]; then pass "$g stderr"; else fail "$g stderr: '$out' '$(cat "$T/err")'"; fi
    r1=$("$S" run "$P" random 2>/dev/null)
    r2=$("$S" run "$P" random 2>/dev/null)
    if [ ${#r1} -eq 32 ] && [ "$r1" != "$r2" ]; then pass "$g getrandom differs per run"; else fail "$g random: '$r1' '$r2'"; fi
    out=$("$S" run --memory 48M "$P" malloc 2>"$T/err")
    rc=$?
    case "$out" in
    "malloc failed after "*) [ $rc = 0 ] && pass "$g malloc fails cleanly at the memory limit" || fail "$g malloc rc=$rc" ;;
    *) fail "$g malloc: rc=$rc '$out' $(head -c 300 "$T/err")" ;;
    esac
done
export SANDLET_TEST_VAR=copied
for g in runtest-pie runtest-pie32; do
    arch_need "$(garch $g)" || continue
    t "$g (static PIE) args" 0 "$(printf '2\n%s\nargs' "$G/$g")" run "$G/$g" args
    t "$g (static PIE) env" 0 "pie" run --env X=pie "$G/$g" env X
done
# Files that are no guest: the CLI takes them for x86-64 (the default) and so
# answers only where x86-64 guests run (elsewhere it would go to the KVM lab).
te "run missing program" 127 'nonexistent' run "$T/nonexistent"
echo "not an ELF" >"$T/text"
arch_need amd64 && te "run a text file" 126 'ELF' run "$T/text"
te "run a device" 126 'not a regular file' run /dev/zero
# Special files never block: a FIFO without a writer, a directory (issue 9's kind 3).
mkfifo "$T/fifo"
te "run a FIFO" 126 'not a regular file' run "$T/fifo"
if arch_need amd64; then
    te "call on a FIFO" 3 'not a regular file' call "$T/fifo" Add 1 2
    te "call on a directory" 3 'not a regular file' call "$T" Add 1 2
fi
te "snapshot verify a FIFO" 3 'not a regular file' snapshot verify "$T/fifo"
te "snapshot inspect a directory" 3 'not a regular file' snapshot inspect "$T"
te "run without PROGRAM" 2 'PROGRAM is required' run
te "run unknown option" 2 "unknown option '--frob'" run --frob 1 "$G/runtest" args
te "run bad memory size" 2 'not a size' run --memory lots "$G/runtest" args
arch_need amd64 && te "run a function-model guest" 122 'function-model' run "$G/demo"

# ------------------------------------------------------------ command-line errors
te "no command" 2 'usage: sandlet'
te "unknown command" 2 "unknown command 'frobnicate'" frobnicate
te "call without NAME" 2 'GUEST and NAME are required' call "$G/demo"
te "unknown option" 2 "unknown option '--bogus'" call --bogus "$G/demo" Add 1 2
te "bad size" 2 "--heap: '12Q' is not a size" call --heap 12Q "$G/demo" Add 1 2
te "bad timeout" 2 "--timeout-ms: 'soon' is not" call --timeout-ms soon "$G/demo" Add 1 2
te "option without value" 2 '--scratch needs a value' call "$G/demo" Add 1 2 --scratch
printf 'not an elf' >"$T/junk"
if arch_need amd64; then
    te "missing guest file" 3 'No such file' call "$T/nonexistent" Add 1 2
    te "guest that is neither ELF nor snapshot" 3 "$T/junk" call "$T/junk" Add 1 2
    te "scratch too small to start" 3 "$G/demo" call --scratch 4K "$G/demo" Add 1 2
fi

# ------------------------------------------------------------ faults: exit 1 with a clear reason
F=$G/faulty
if arch_need amd64; then
    te "faulty WriteReadOnly" 1 'WriteReadOnly: .*(page fault|read-only|memory access)' call "$F" WriteReadOnly
    te "faulty Abort code and message" 1 'Abort: .*7.*boom here' call "$F" Abort 7 "boom here"
    te "faulty Spin stopped by --timeout-ms" 1 'Spin: .*time' call --timeout-ms 300 "$F" Spin
    t "faulty Counter works" 0 "1" call "$F" Counter
fi

# ------------------------------------------------------------ shell through a pipe
for g in demo demo32; do
    arch_need "$(garch $g)" || continue
    printf '%s\n' 'call Counter' 'snapshot first' 'call Counter' 'call Counter' 'restore first' \
        'call Counter' 'generation' 'info' '' '# a comment' 'call Echo "two  words \"q\" \\"' \
        'call Print "p"' 'call Add 1' 'restore nope' 'bogus' 'call Upper "a b"' 'quit' 'call Counter' \
        | "$S" shell "$G/$g" >"$T/out" 2>"$T/err"
    rc=$?
    sed -E 's/id=[0-9a-f]{64}$/id=ID/' "$T/out" | grep -v '^backend=' >"$T/got"
    cat >"$T/want" <<'EOF'
1
snapshot first generation=1 id=ID
2
3
restored first generation=1
2
1
two  words "q" \
ok
error: Add takes 2 arguments, got 1: Add(i32, i32) -> i32
error: no snapshot tagged 'nope'
error: unknown command 'bogus' (try help)
A B
EOF
    arch=x86_64
    [ "$g" = demo32 ] && arch=i686
    info=$(grep '^backend=' "$T/out")
    if [ $rc = 1 ] && cmp -s "$T/got" "$T/want" && grep -qx '\[guest\] p' "$T/err"; then
        pass "$g shell session (counter, snapshot, restore, generation, errors, exit 1)"
    else
        fail "$g shell session: rc=$rc, diff: $(diff "$T/want" "$T/got" | head -20)"
    fi
    if echo "$info" | grep -Eq "^backend=$(arch_backend "$(garch $g)") arch=$arch scratch=16777216 heap=1048576 stack=262144 input=65536 output=65536 snapshot_memory=[1-9][0-9]* dirty_pages=[0-9]+ scratch_pages_used=[0-9]+ generation=1 status=ready$"; then
        pass "$g shell info"
    else
        fail "$g shell info: '$info'"
    fi
done

if arch_need amd64; then
    out=$(printf 'info\nfunctions\n' | "$S" shell --heap 2M --scratch 8M "$G/demo" 2>&1)
    if [ $? = 0 ] && echo "$out" | grep -q 'scratch=8388608 heap=2097152 ' &&
        echo "$out" | grep -qx 'Echo(string) -> string; Add(i32, i32) -> i32; Counter() -> i64; Fill(u64) -> u64; Upper(string) -> string; Print(string) -> void; Generation() -> u64'; then
        pass "shell size options and functions"
    else
        fail "shell size options and functions: $out"
    fi

    # A failed call poisons the sandbox; restore brings it back.
    printf '%s\n' 'call Counter' 'snapshot s' 'call WriteReadOnly' 'call Counter' 'info' 'restore s' \
        'call Counter' 'call Spin' 'restore s' 'call Counter' | "$S" shell --timeout-ms 300 "$F" >"$T/out" 2>"$T/err"
    rc=$?
    got=$(sed -E 's/id=[0-9a-f]{64}$/id=ID/; s/^(backend=.*) (status=[a-z]+)$/\2/' "$T/out")
    want=$(printf '%s\n' 1 'snapshot s generation=1 id=ID' 'error: WriteReadOnly: X' 'error: Counter: X' \
        'status=poisoned' 'restored s generation=1' 2 'error: Spin: X' 'restored s generation=1' 2)
    got_masked=$(printf '%s\n' "$got" | sed -E 's/^(error: [A-Za-z]+): .*/\1: X/')
    if [ $rc = 1 ] && [ "$got_masked" = "$want" ] && grep -Eq '^error: Spin: .*time' "$T/out" &&
        grep -q '^error: Counter: .*poison' "$T/out"; then
        pass "shell: fault poisons, restore recovers, timeout in shell"
    else
        fail "shell fault recovery: rc=$rc got: $got"
    fi

    out=$(printf 'quit\n' | "$S" shell "$G/demo" 2>&1)
    if [ $? = 0 ] && [ -z "$out" ]; then pass "shell: clean session exits 0, no prompt on a pipe"; else fail "shell clean: '$out'"; fi
fi
te "shell needs GUEST" 2 'GUEST is required' shell
te "shell takes one GUEST" 2 'one GUEST only' shell "$G/demo" extra

# ------------------------------------------------------------ snapshot files
if ! "$S" snapshot verify "$T/junk" 2>&1 | grep -q 'not supported by this build'; then
    for g in demo demo32; do
        arch_need "$(garch $g)" || continue
        SNAP=$T/$g.snap
        out=$("$S" snapshot save "$G/$g" "$SNAP" --call Counter --call Counter --call Echo "saved it" 2>"$T/err")
        rc=$?
        if [ $rc = 0 ] && [ "$out" = "$(printf '1\n2\nsaved it')" ] && [ -s "$SNAP" ] &&
            grep -Eq "saved $SNAP \(id [0-9a-f]{64}\)" "$T/err"; then
            pass "$g snapshot save with --call results"
        else
            fail "$g snapshot save: rc=$rc out '$out' err $(cat "$T/err")"
        fi
        t "$g snapshot verify intact" 0 "$SNAP: OK" snapshot verify "$SNAP"
        t "$g call on a snapshot file keeps the state" 0 "3" call "$SNAP" Counter
        t "$g call on a snapshot file, host function" 0 "HI" call "$SNAP" Upper hi
        out=$("$S" snapshot inspect "$SNAP" 2>"$T/err")
        rc=$?
        id=$(grep -Eo 'id [0-9a-f]{64}' "$T/err" | cut -c4-)
        arch=amd64
        [ "$g" = demo32 ] && arch=i686
        if [ $rc = 0 ] && echo "$out" | grep -q "$arch" && { [ -z "$id" ] || echo "$out" | grep -q "$id"; } &&
            echo "$out" | grep -Eq '^blob: offset=[0-9]+ size=[0-9]+'; then
            pass "$g snapshot inspect shows arch, identity and blob section"
        else
            fail "$g snapshot inspect: rc=$rc $out $(cat "$T/err")"
        fi
        # The file holds Counter = 2; the shell makes it 3 and saves that state.
        out=$(printf 'call Counter\nsnapshot t\nsave t %s\nquit\n' "$T/sh.snap" | "$S" shell "$SNAP" 2>&1)
        if [ $? = 0 ] && echo "$out" | grep -qx 3 && echo "$out" | grep -q "^saved t to $T/sh.snap" &&
            [ "$("$S" call "$T/sh.snap" Counter 2>&1)" = 4 ]; then
            pass "$g shell save, then call the saved file"
        else
            fail "$g shell save: $out"
        fi
        # diff: the shell's file holds one more Counter, on the counter's page.
        t "$g snapshot diff: an unknown option is refused (2)" 2 "" snapshot diff -x "$SNAP"
        t "$g snapshot diff: -- ends the options" 0 "pages: 0 added, 0 removed, 0 changed, 0 permissions changed" \
            snapshot diff -- "$SNAP" "$SNAP"
        t "$g snapshot diff of a file with itself" 0 "pages: 0 added, 0 removed, 0 changed, 0 permissions changed" \
            snapshot diff "$SNAP" "$SNAP"
        out=$("$S" snapshot diff "$SNAP" "$T/sh.snap" 2>"$T/err")
        rc=$?
        if [ $rc = 1 ] && [ "$(echo "$out" | wc -l)" = 2 ] && [ ! -s "$T/err" ] &&
            echo "$out" | head -n 1 | grep -Eq '^space 0 changed +0x[0-9a-f]{16}-0x[0-9a-f]{16} \(1 page\) cow r-. user$' &&
            [ "$(echo "$out" | tail -n 1)" = "pages: 0 added, 0 removed, 1 changed, 0 permissions changed" ]; then
            pass "$g snapshot diff: one call later, the counter's page changed (exit 1)"
        else
            fail "$g snapshot diff: rc=$rc $out $(cat "$T/err")"
        fi
        if [ -w /dev/full ]; then
            "$S" snapshot diff "$SNAP" "$T/sh.snap" >/dev/full 2>"$T/err"
            rc=$?
            if [ $rc = 3 ] && grep -q 'cannot write standard output' "$T/err"; then
                pass "$g snapshot diff to a full disk: exit 3, not 1"
            else
                fail "$g snapshot diff to /dev/full: rc=$rc $(cat "$T/err")"
            fi
        fi
        # Lineage: a file saved from the ELF has no parent; one saved from a
        # sandbox started from that file (shell, snapshot save FILE) names it.
        "$S" snapshot inspect "$SNAP" >"$T/parent.txt" 2>&1
        pid=$(sed -n 's/^identity: \([0-9a-f]\{64\}\)$/\1/p' "$T/parent.txt")
        pages=$(($(sed -n 's/^blob: .*(guest-visible \([0-9]*\) .*/\1/p' "$T/parent.txt") / 4096))
        "$S" snapshot inspect "$T/sh.snap" >"$T/child.txt" 2>&1
        if grep -qx 'parent: none' "$T/parent.txt" && grep -qx 'format: sandlet snapshot file version 5' "$T/parent.txt" &&
            [ -n "$pid" ] && grep -Eq "^parent: $pid \([0-9]+ of [0-9]+ pages kept at their offsets in its blob\)\$" "$T/child.txt"; then
            pass "$g snapshot inspect: the parent (none from the ELF, the file for its shell's save)"
        else
            fail "$g snapshot inspect parent: id $pid; $(grep -E '^(parent|format):' "$T/parent.txt" "$T/child.txt")"
        fi
        out=$("$S" snapshot save "$SNAP" "$T/child.snap" 2>"$T/err")
        rc=$?
        "$S" snapshot inspect "$T/child.snap" >"$T/child.txt" 2>&1
        cid=$(sed -n 's/^identity: //p' "$T/child.txt")
        # Nothing ran since the file (save runs no call): every page kept, the same identity.
        if [ $rc = 0 ] && [ "$cid" = "$pid" ] &&
            grep -qx "parent: $pid ($pages of $pages pages kept at their offsets in its blob)" "$T/child.txt"; then
            pass "$g snapshot save FILE: parent is FILE, all $pages pages kept, same identity"
        else
            fail "$g snapshot save FILE: rc=$rc $(cat "$T/err") $(grep -E '^(identity|parent):' "$T/child.txt")"
        fi
        # Child files (format version 5): GUEST a snapshot file is the parent.
        C=$T/chain-$g
        mkdir -p "$C"
        cp "$SNAP" "$C/base.snap"
        out=$("$S" snapshot save "$C/base.snap" "$C/kid.snap" --call Counter 2>"$T/err")
        rc=$?
        kid=$(sed -n 's/^sandlet: saved .* (id \([0-9a-f]\{64\}\)), child of .*/\1/p' "$T/err")
        if [ $rc = 0 ] && [ "$out" = 3 ] && [ -n "$kid" ] && grep -qx "sandlet: saved $C/kid.snap (id $kid), child of $C/base.snap" "$T/err" &&
            [ "$(wc -c <"$C/kid.snap")" -lt "$(wc -c <"$C/base.snap")" ]; then
            pass "$g snapshot save from a snapshot file: a child of it, smaller"
        else
            fail "$g snapshot save child: rc=$rc out '$out' $(cat "$T/err") $(ls -l "$C")"
        fi
        t "$g call on a child file (its parent found next to it)" 0 4 call "$C/kid.snap" Counter
        out=$("$S" snapshot save "$C/kid.snap" "$C/grandkid.snap" --call Counter 2>"$T/err")
        gkid=$(sed -n 's/^sandlet: saved .* (id \([0-9a-f]\{64\}\)), child of .*/\1/p' "$T/err")
        if [ "$out" = 4 ] && [ -n "$gkid" ] && grep -q "child of $C/kid.snap\$" "$T/err"; then
            pass "$g snapshot save from a child: a grandchild"
        else
            fail "$g grandchild: out '$out' $(cat "$T/err")"
        fi
        t "$g call on a grandchild" 0 5 call "$C/grandkid.snap" Counter
        t "$g snapshot verify of a grandchild (its whole chain)" 0 "$C/grandkid.snap: OK" snapshot verify "$C/grandkid.snap"
        tl "$g snapshot diff of a parent and its child: the counter's page" 1 \
            "pages: 0 added, 0 removed, 1 changed, 0 permissions changed" snapshot diff "$C/base.snap" "$C/kid.snap"
        # --parent P: a sandbox from the ELF, its pages shared with P by content.
        out=$("$S" snapshot save --parent "$C/base.snap" "$G/$g" "$C/elf-kid.snap" --call Counter 2>"$T/err")
        rc=$?
        if [ $rc = 0 ] && [ "$out" = 1 ] && grep -q "child of $C/base.snap\$" "$T/err" &&
            [ "$(wc -c <"$C/elf-kid.snap")" -lt "$(wc -c <"$C/base.snap")" ]; then
            pass "$g snapshot save --parent P: a child of P, smaller than P"
        else
            fail "$g save --parent: rc=$rc out '$out' $(cat "$T/err") $(ls -l "$C")"
        fi
        t "$g call on a --parent child" 0 2 call "$C/elf-kid.snap" Counter
        # --full: no parent file needed.
        out=$("$S" snapshot save --full "$C/kid.snap" "$C/full.snap" 2>"$T/err")
        rc=$?
        if [ $rc = 0 ] && grep -qx "sandlet: saved $C/full.snap (id $kid)" "$T/err"; then
            pass "$g snapshot save --full from a child: a full file, the child's identity"
        else
            fail "$g save --full: rc=$rc $(cat "$T/err")"
        fi
        # flatten: a full file with the child's identity, which the b3sum of
        # the bytes it covers confirms, and which loads without its parents.
        out=$("$S" snapshot flatten "$C/grandkid.snap" "$T/flat-$g.snap" 2>"$T/err")
        rc=$?
        "$S" snapshot inspect --json "$T/flat-$g.snap" >"$T/flat.json" 2>&1
        at=$(jq -r '.identity_covers.offset' "$T/flat.json")
        n=$(jq -r '.identity_covers.size' "$T/flat.json")
        b3=$gkid # the KVM lab has no b3sum
        command -v b3sum >/dev/null && b3=$(tail -c +$((at + 1)) "$T/flat-$g.snap" | head -c "$n" | b3sum --no-names)
        if [ $rc = 0 ] && [ -z "$out" ] && grep -qx "sandlet: saved $T/flat-$g.snap (id $gkid), flattened from $C/grandkid.snap" "$T/err" &&
            [ "$(jq -r .identity "$T/flat.json")" = "$gkid" ] && [ "$b3" = "$gkid" ]; then
            pass "$g snapshot flatten: a full file with the child's identity (b3sum agrees where installed)"
        else
            fail "$g flatten: rc=$rc '$out' $(cat "$T/err") inspect id $(jq -r .identity "$T/flat.json") b3sum $b3 want $gkid"
        fi
        t "$g call on the flattened file, its chain elsewhere" 0 5 call "$T/flat-$g.snap" Counter
        t "$g snapshot verify of the flattened file" 0 "$T/flat-$g.snap: OK" snapshot verify "$T/flat-$g.snap"
        # Saved over GUEST itself: a full file (a child would replace its parent).
        cp "$C/kid.snap" "$C/self.snap"
        "$S" snapshot save "$C/self.snap" "$C/self.snap" 2>"$T/err"
        if grep -qx "sandlet: saved $C/self.snap (id $kid)" "$T/err" && [ "$("$S" call "$C/self.snap" Counter 2>&1)" = 4 ]; then
            pass "$g snapshot save over GUEST: a full file, not its own child"
        else
            fail "$g save over GUEST: $(cat "$T/err")"
        fi
        te "$g snapshot save: FILE is the --parent file" 2 'is the parent file itself' \
            snapshot save --parent "$C/base.snap" "$G/$g" "$C/base.snap"
        # Parents elsewhere: found by --parent LIST or SANDLET_SNAPSHOT_PATH only.
        mkdir -p "$C/away"
        mv "$C/base.snap" "$C/away/"
        te "$g call on a child whose parent moved away: exit 3, naming its identity" 3 "$pid" call "$C/kid.snap" Counter
        tl "$g snapshot verify without the chain's full file: exit 3, naming its identity" 3 \
            "$C/grandkid.snap: FAILED: .*$pid.*" snapshot verify "$C/grandkid.snap"
        t "$g snapshot verify --parent DIR" 0 "$C/grandkid.snap: OK" snapshot verify --parent "$C/away" "$C/grandkid.snap"
        t "$g snapshot verify --parent FILE (a ':' list)" 0 "$C/grandkid.snap: OK" \
            snapshot verify --parent "$T/nonexistent:$C/away/base.snap" "$C/grandkid.snap"
        out=$(SANDLET_SNAPSHOT_PATH=$T/nonexistent:$C/away "$S" call "$C/grandkid.snap" Counter 2>"$T/err")
        if [ "$out" = 5 ]; then pass "$g SANDLET_SNAPSHOT_PATH finds a parent"; else fail "$g SANDLET_SNAPSHOT_PATH: '$out' $(cat "$T/err")"; fi
        tl "$g snapshot diff --parent" 1 "pages: 0 added, 0 removed, 1 changed, 0 permissions changed" \
            snapshot diff --parent "$C/away" "$C/kid.snap" "$C/grandkid.snap"
        "$S" snapshot flatten --parent "$C/away" "$C/kid.snap" "$C/kid-flat.snap" 2>"$T/err"
        if grep -qx "sandlet: saved $C/kid-flat.snap (id $kid), flattened from $C/kid.snap" "$T/err"; then
            pass "$g snapshot flatten --parent"
        else
            fail "$g flatten --parent: $(cat "$T/err")"
        fi
        te "$g snapshot flatten without the parent: exit 3, naming its identity" 3 "$pid" \
            snapshot flatten "$C/kid.snap" "$C/never.snap"
        # A parent replaced by another snapshot under its name is refused.
        cp "$C/away/base.snap" "$C/base.snap"
        "$S" snapshot save --full "$G/$g" "$C/base.snap" --call Add 1 2 >/dev/null 2>&1
        tl "$g snapshot verify of a child whose parent file was replaced: exit 3, naming the identity" 3 \
            "$C/kid.snap: FAILED: .*$pid.*" snapshot verify "$C/kid.snap"
        te "$g call on a child whose parent file was replaced" 3 "$pid" call "$C/kid.snap" Counter
        tl "$g snapshot verify --parent FILE of another snapshot: exit 3" 3 "$C/grandkid.snap: FAILED: .*$pid.*" \
            snapshot verify --parent "$C/base.snap" "$C/grandkid.snap"
        # Corrupt one byte in the middle of the file: verify must fail with 4.
        size=$(wc -c <"$SNAP")
        cp "$SNAP" "$T/bad.snap"
        printf '\377' | dd of="$T/bad.snap" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
        cmp -s "$SNAP" "$T/bad.snap" && { printf '\000' | dd of="$T/bad.snap" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null; }
        out=$("$S" snapshot verify "$T/bad.snap" 2>&1)
        rc=$?
        if [ $rc = 4 ] && echo "$out" | grep -q "^$T/bad.snap: FAILED: "; then
            pass "$g snapshot verify catches a corrupted byte"
        else
            fail "$g verify corrupted: rc=$rc $out"
        fi
    done
    arch_need amd64 && te "size options rejected for a snapshot file" 2 'size options do not apply' call --heap 2M "$T/demo.snap" Counter
    out=$("$S" snapshot verify "$T/junk" 2>&1)
    rc=$?
    if [ $rc = 4 ] && echo "$out" | grep -q "^$T/junk: FAILED: snapshot file: "; then pass "snapshot verify on junk"; else fail "verify junk: rc=$rc $out"; fi
    te "snapshot verify missing file" 3 'nonexistent' snapshot verify "$T/nonexistent"
    te "snapshot inspect missing file" 3 'nonexistent' snapshot inspect "$T/nonexistent"
    te "snapshot save usage" 2 'GUEST and FILE are required' snapshot save "$G/demo"
    te "snapshot save --call without NAME" 2 '--call needs a function NAME' snapshot save "$G/demo" "$T/x.snap" --call
    te "snapshot save --parent with --full" 2 '--parent and --full exclude each other' \
        snapshot save --parent "$T/demo.snap" --full "$G/demo" "$T/x.snap"
    te "snapshot save --parent without a value" 2 '--parent needs a value' snapshot save "$G/demo" "$T/x.snap" --parent
    te "snapshot save --parent twice" 2 '--parent given twice' snapshot save --parent a --parent=b "$G/demo" "$T/x.snap"
    te "snapshot flatten without arguments" 2 'CHILD and OUT are required' snapshot flatten
    te "snapshot flatten without OUT" 2 'CHILD and OUT are required' snapshot flatten "$T/demo.snap"
    te "snapshot flatten takes two files only" 2 "unexpected argument 'c'" snapshot flatten a b c
    te "snapshot flatten unknown option" 2 "unexpected argument '--frob'" snapshot flatten --frob a b
    te "snapshot flatten missing file" 3 'nonexistent' snapshot flatten "$T/nonexistent" "$T/out.snap"
    te "snapshot flatten on junk" 3 'junk: snapshot file: ' snapshot flatten "$T/junk" "$T/out.snap"
    if [ ! -e "$T/out.snap" ]; then pass "no file after a failed flatten"; else fail "a failed flatten left $T/out.snap"; fi
    te "snapshot verify --parent without a value" 2 '--parent needs a value' snapshot verify "$T/junk" --parent
    te "snapshot inspect takes no --parent" 2 "unexpected argument '--parent'" snapshot inspect --parent x "$T/junk"
    te "snapshot diff --parent without a value" 2 '--parent needs a value' snapshot diff a b --parent
    te "snapshot unknown subcommand" 2 "unknown subcommand 'frob'" snapshot frob
    te "snapshot diff needs two files" 2 'two snapshot files A and B are required' snapshot diff "$T/demo.snap"
    te "snapshot diff takes two files only" 2 "unexpected argument 'c'" snapshot diff a b c
    te "snapshot diff missing file" 3 'nonexistent' snapshot diff "$T/nonexistent" "$T/nonexistent"
    te "snapshot diff on junk" 3 'junk: snapshot file: ' snapshot diff "$T/junk" "$T/junk"
    if arch_need amd64 && [ -x "$G/multispace" ] &&
        "$S" snapshot save "$G/multispace" "$T/ms.snap" >/dev/null 2>&1; then
        # demo has one address space, multispace four: theirs are all added.
        out=$("$S" snapshot diff "$T/demo.snap" "$T/ms.snap" 2>"$T/err")
        rc=$?
        if [ $rc = 1 ] && echo "$out" | grep -Eq '^space 3 added ' && ! echo "$out" | grep -Eq '^space [123] (removed|changed|permissions)' &&
            echo "$out" | tail -n 1 | grep -Eq '^pages: [1-9][0-9]* added, [0-9]+ removed, [0-9]+ changed, [0-9]+ permissions changed$'; then
            pass "snapshot diff of different guests: the extra address spaces added"
        else
            fail "snapshot diff of different guests: rc=$rc $(echo "$out" | tail -n 3) $(cat "$T/err")"
        fi
    fi
    if arch_need amd64; then
        # A chain as deep as it may be (16 children): a child of its last is
        # saved in full when the parent was picked (with a note), refused
        # when it was named.
        D=$T/deep
        mkdir -p "$D"
        "$S" snapshot save "$G/demo" "$D/c0.snap" >/dev/null 2>&1
        i=1
        while [ $i -le 16 ] && "$S" snapshot save "$D/c$((i - 1)).snap" "$D/c$i.snap" --call Counter >/dev/null 2>"$T/err" &&
            grep -q 'child of' "$T/err"; do
            i=$((i + 1))
        done
        out=$("$S" snapshot save "$D/c16.snap" "$D/c17.snap" --call Counter 2>"$T/err")
        rc=$?
        if [ $i = 17 ] && [ $rc = 0 ] && [ "$out" = 17 ] && grep -q 'more than 16.*saving it in full' "$T/err" &&
            grep -Eq "^sandlet: saved $D/c17.snap \(id [0-9a-f]{64}\)\$" "$T/err" && [ "$("$S" call "$D/c17.snap" Counter 2>&1)" = 18 ]; then
            pass "snapshot save from a child 16 deep: saved in full, with a note"
        else
            fail "snapshot save 17 deep: chain stopped at $i, rc=$rc out '$out' $(cat "$T/err")"
        fi
        te "snapshot save --parent of a child 16 deep: exit 3" 3 'more than 16' \
            snapshot save --parent "$D/c16.snap" "$D/c16.snap" "$D/c17b.snap"
        t "call on a child 16 deep" 0 17 call "$D/c16.snap" Counter
        te "snapshot save failing call" 1 'Add takes 2 arguments|WriteReadOnly' snapshot save "$F" "$T/f.snap" --call WriteReadOnly
        if [ ! -e "$T/f.snap" ]; then pass "no file after a failed save"; else fail "a failed save left $T/f.snap"; fi
    fi
else
    echo "FAIL snapshot files: this build has no snapshot-file commands"
    FAILS=$((FAILS + 1))
fi

# ------------------------------------------------------------ on a terminal
# util-linux's script(1) runs a command on a pseudo-terminal and passes it our
# stdin as typed-ahead input. Busybox's (the KVM lab) lacks -e: natively only.
if command -v script >/dev/null && script --version 2>/dev/null | grep -q util-linux && arch_need amd64; then
    # tty NAME COMMAND: runs COMMAND (a shell command line) on a pty with
    # stdin as the typed input; the terminal's output, \r dropped, in $T/tty.
    tty() {
        timeout 60 script -qec "$2" /dev/null 2>/dev/null | tr -d '\r' >"$T/tty"
    }
    mkdir -p "$T/home"
    # Line editing: the up arrow (ESC [ A) recalls `call Add 2 3`, so 5 comes
    # twice; a plain read would take it for an unknown command.
    printf 'call Add 2 3\n\033[A\nquit\n' | HOME=$T/home tty edit "'$S' shell '$G/demo'"
    if grep -qx '> call Add 2 3' "$T/tty" && [ "$(grep -c '^5$' "$T/tty")" = 2 ] &&
        ! grep -q 'unknown command' "$T/tty"; then
        pass "shell on a terminal: prompt, libedit recalls the last line"
    else
        fail "shell on a terminal: $(head -c 600 "$T/tty")"
    fi
    h=$T/home/.sandlet_history
    if [ -f "$h" ] && [ "$(stat -c %a "$h")" = 600 ] && grep -q 'Add' "$h" && grep -qx quit "$h"; then
        pass "shell history saved in ~/.sandlet_history, mode 600"
    else
        fail "shell history file: $(ls -l "$h" 2>&1) $(cat "$h" 2>/dev/null)"
    fi
    # The next session starts with that history: up twice is `call Add 2 3`.
    printf '\033[A\033[A\nquit\n' | HOME=$T/home tty recall "'$S' shell '$G/demo'"
    if grep -qx 5 "$T/tty"; then pass "shell history comes back in the next session"; else fail "history recall: $(head -c 600 "$T/tty")"; fi
    mkdir -p "$T/home2"
    printf 'call Add 1 1\nquit\n' | HOME=$T/home2 SANDLET_HISTORY='' tty nohist "'$S' shell '$G/demo'"
    if grep -qx 2 "$T/tty" && [ ! -e "$T/home2/.sandlet_history" ]; then
        pass "SANDLET_HISTORY= keeps no history file"
    else
        fail "SANDLET_HISTORY=: $(ls -a "$T/home2") $(head -c 300 "$T/tty")"
    fi
    printf 'call Echo "a b"\nquit\n' | HOME=$T/home tty json "'$S' shell --json '$G/demo'"
    if grep -qx '{"ok":true,"command":"call","function":"Echo","type":"string","value":"a b"}' "$T/tty"; then
        pass "shell --json on a terminal"
    else
        fail "shell --json on a terminal: $(head -c 600 "$T/tty")"
    fi
    # Typed at, with stdout redirected (`shell --json g | jq`): the prompt
    # goes to the terminal on stderr, and stdout holds the JSON lines only.
    printf 'call Add 2 3\ngeneration\n' | HOME=$T/home tty json_redirected "'$S' shell --json '$G/demo' >'$T/js.out'"
    if [ "$(cat "$T/js.out")" = '{"ok":true,"command":"call","function":"Add","type":"i32","value":5}
{"ok":true,"command":"generation","generation":0}' ] && grep -q '^> ' "$T/tty"; then
        pass "shell --json typed at, stdout redirected: JSON only on stdout, the prompt on stderr"
    else
        fail "shell --json, stdout redirected: stdout $(od -c "$T/js.out" | head -4) terminal $(head -c 300 "$T/tty")"
    fi
    # Ctrl-C at the prompt drops the line typed so far and prompts again: the
    # session goes on. Typed once the prompt shows, as a user would (a ^C
    # typed ahead reaches sandlet before libedit reads).
    prompts() { tr -d '\r' <"$T/tty.raw" | grep -o '> ' | wc -l; }
    waitfor() {
        i=0
        while [ "$(prompts)" -lt "$1" ] && [ $i -lt 100 ]; do
            sleep 0.1
            i=$((i + 1))
        done
    }
    : >"$T/tty.raw"
    # `exec`: no shell of script's ($SHELL, often dash) between the terminal
    # and sandlet, to get the ^C too; script -e passes on sandlet's status.
    { waitfor 1; printf 'call Ad'; sleep 0.3; printf '\003'; waitfor 2; printf 'call Add 2 2\nquit\n'; } |
        HOME=$T/home timeout 30 script -qec "exec '$S' shell '$G/demo'" /dev/null >"$T/tty.raw" 2>&1
    rc=$?
    tr -d '\r' <"$T/tty.raw" >"$T/tty"
    if grep -qx 4 "$T/tty" && [ "$rc" = 0 ] && ! grep -q 'unknown command' "$T/tty"; then
        pass "shell on a terminal: Ctrl-C at the prompt drops the line, the session goes on"
    else
        fail "Ctrl-C at the prompt: exit $rc, $(head -c 400 "$T/tty")"
    fi
    # A history path that is no regular file: a FIFO would block the shell
    # before its first prompt (no writer), a device could be read forever.
    mkfifo "$T/hist-fifo"
    printf 'call Add 2 2\nquit\n' | HOME=$T/home SANDLET_HISTORY=$T/hist-fifo tty fifo "exec '$S' shell '$G/demo'"
    if grep -qx 4 "$T/tty" && grep -q "$T/hist-fifo is not a regular file: no history kept" "$T/tty"; then
        pass "SANDLET_HISTORY on a FIFO: a warning, no history, no hang"
    else
        fail "SANDLET_HISTORY on a FIFO: $(head -c 400 "$T/tty")"
    fi

    # Progress of large saves and verifies (over 64 MiB): on a terminal only.
    BIG=$T/big.snap
    tty save "'$S' snapshot save --heap 80M '$G/demo' '$BIG'" </dev/null
    if [ -s "$BIG" ] && grep -q "sandlet: saving $BIG: *[0-9]*% ([0-9]* of 8[0-9] MiB)" "$T/tty" &&
        grep -q "saved $BIG" "$T/tty"; then
        pass "snapshot save of 80 MiB shows progress on a terminal"
    else
        fail "save progress: $(head -c 600 "$T/tty" | od -c | head -5)"
    fi
    tty verify "'$S' snapshot verify '$BIG'" </dev/null
    if grep -q "sandlet: verifying $BIG: 100% " "$T/tty" && grep -q "$(printf '\033')\[K$BIG: OK\$" "$T/tty"; then
        pass "snapshot verify shows progress on a terminal, then erases it"
    else
        fail "verify progress: $(od -c "$T/tty" | head -8)"
    fi
    tty quiet "'$S' snapshot verify --quiet '$BIG'" </dev/null
    if [ "$(cat "$T/tty")" = "$BIG: OK" ]; then pass "verify --quiet: no progress"; else fail "verify --quiet: $(od -c "$T/tty" | head -5)"; fi
    out=$("$S" snapshot verify "$BIG" 2>"$T/err")
    if [ "$out" = "$BIG: OK" ] && [ ! -s "$T/err" ]; then
        pass "verify: no progress when stderr is not a terminal"
    else
        fail "verify off a terminal: '$out' $(od -c "$T/err" | head -3)"
    fi
    # On a narrow terminal the line must not wrap: \r could neither redraw
    # nor erase a wrapped line, and its first part would stay on the screen.
    timeout 60 script -qec "stty cols 40; '$S' snapshot verify '$BIG'" /dev/null </dev/null 2>/dev/null |
        tr '\r' '\n' | sed "s/$(printf '\033')\\[K//" >"$T/tty"
    long=$(grep '^sandlet: verifying' "$T/tty" | awk 'length($0) >= 40' | head -n 1)
    if grep -q '^sandlet: verifying.*%' "$T/tty" && [ -z "$long" ] && grep -qx "$BIG: OK" "$T/tty"; then
        pass "verify progress fits a 40-column terminal"
    else
        fail "verify progress on 40 columns: '$long' $(head -c 400 "$T/tty")"
    fi
    "$S" snapshot save "$G/demo" "$T/small.snap" 2>/dev/null
    tty small "'$S' snapshot verify '$T/small.snap'" </dev/null
    if [ "$(cat "$T/tty")" = "$T/small.snap: OK" ]; then pass "verify of a small file: no progress"; else fail "small verify: $(od -c "$T/tty" | head -5)"; fi
    rm -f "$BIG"
fi

[ "$FAILS" = 0 ]
