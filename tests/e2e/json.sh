#!/bin/sh
# The CLI's --json output (docs/cli.md, "JSON output"), parsed with jq and
# checked value by value: call (every value kind the test guests return,
# failures with their codes and exit statuses), shell --json, snapshot inspect,
# verify and diff, backend and --version. Usage: tests/e2e/json.sh BUILD_DIR
# Prints one "PASS name" / "FAIL name: why" line per check. Checks that run a
# guest run where its architecture runs and this run covers it
# (tests/e2e/arch.sh); the others always run. POSIX sh (busybox ash in the lab).
B=${1:-build}
S=$B/sandlet
G=${SANDLET_GUESTS:-build/guests}
export SANDLET_NO_LAB=1
unset SANDLET_FORCE_LAB SANDLET_SNAPSHOT_PATH
if [ ! -x "$S" ]; then
    echo "FAIL json: no $S (make test builds the CLI in every variant)"
    exit 1
fi
if ! command -v jq >/dev/null; then
    echo "FAIL json: jq is missing (scripts/deps.sh installs it)"
    exit 1
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/sandlet-json.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
FAILS=0
. "$(dirname "$0")/arch.sh"
arch_init "$S" || FAILS=$((FAILS + 1))

. "$(dirname "$0")/check.sh"

# j NAME WANT_RC JQ_CONDITION ARGS...: runs sandlet ARGS; the exit status must
# be WANT_RC and stdout exactly one line, a JSON object for which the jq
# expression JQ_CONDITION is true.
j() {
    name=$1 want_rc=$2 cond=$3
    shift 3
    "$S" "$@" >"$T/out" 2>"$T/err"
    rc=$?
    lines=$(wc -l <"$T/out")
    if [ "$rc" = "$want_rc" ] && [ "$lines" -eq 1 ] && jq -e "$cond" "$T/out" >/dev/null 2>"$T/jq"; then
        pass "$name"
    else
        fail "$name: rc=$rc (want $want_rc), $lines lines, stdout '$(head -c 600 "$T/out")' (want $cond) $(cat "$T/jq") stderr: $(head -c 300 "$T/err")"
    fi
}

# ------------------------------------------------------------ no guest needed
ver=$("$S" --version | sed 's/^sandlet //')
j "version --json" 0 ".ok == true and .version == \"$ver\" and (.version_number | type) == \"number\" and
    .version_number == (.version | split(\".\") | map(tonumber) | .[0] * 10000 + .[1] * 100 + .[2])" --version --json
for a in amd64 i686; do
    b=$(SANDLET_FORCE_LAB='' "$S" backend $a 2>/dev/null)
    j "backend --json $a agrees with the text answer ($b)" 0 \
        ".ok == true and .arch == \"$a\" and .backend == \"$b\" and (if .backend == \"lab\" then (.reason | type) == \"string\" else .reason == null end)" \
        backend --json $a
done
# The lab script: found next to the checkout's build/ (tests/e2e/install.sh
# checks the installed place); the KVM lab has no scripts/ at all.
lab=$(cd "$(dirname "$S")/.." 2>/dev/null && [ -x scripts/kvm-lab ] && echo "$(pwd -P)/scripts/kvm-lab")
SANDLET_FORCE_LAB=1 j "backend --json under SANDLET_FORCE_LAB=1: lab, the reason, the script" 0 \
    ".backend == \"lab\" and .reason == \"SANDLET_FORCE_LAB=1\" and .lab == $(if [ -n "$lab" ]; then echo "\"$lab\""; else echo null; fi)" \
    backend --json
SANDLET_FORCE_LAB=1 SANDLET_KVM_LAB=$T/none j "backend --json: no lab script is null" 0 '.lab == null' backend --json
j "backend --json bad argument" 2 '.ok == false and .exit == 2 and .code == null and (.error | test("not an architecture"))' \
    backend --json no-such-thing
j "backend --json two arguments" 2 '.ok == false and .exit == 2 and (.error | test("at most one"))' backend --json amd64 i686
j "--version --json with an argument" 2 '.ok == false and .exit == 2' --version --json extra
j "call --json usage error" 2 '.ok == false and .exit == 2 and .code == null and (.error | test("GUEST and NAME are required"))' \
    call --json "$G/demo"
j "call --json unknown option" 2 ".ok == false and .exit == 2 and (.error | test(\"unknown option '--bogus'\"))" \
    call --bogus --json "$G/demo" Add 1 2
j "shell --json usage error" 2 '.ok == false and .exit == 2 and (.error | test("GUEST is required"))' shell --json
j "verify --json missing file: exit 3, SL_ENOTFOUND" 3 \
    ".ok == false and .exit == 3 and .code == -17 and .file == \"$T/none\" and (.error | test(\"No such file\"))" \
    snapshot verify --json "$T/none"
j "inspect --json missing file: exit 3" 3 '.ok == false and .exit == 3 and .code == -17' snapshot inspect --json "$T/none"
printf 'junk' >"$T/junk"
j "verify --json junk: exit 4, SL_EFORMAT" 4 '.ok == false and .exit == 4 and .code == -4 and (.error | test("header"))' \
    snapshot verify --json "$T/junk"
j "inspect --json junk: exit 3, SL_EFORMAT" 3 '.ok == false and .exit == 3 and .code == -4' snapshot inspect --json "$T/junk"
j "verify --json without FILE" 2 '.ok == false and .exit == 2 and .file == null' snapshot verify --json
j "diff --json with one file: exit 2" 2 '.ok == false and .exit == 2 and .code == null and (.error | test("two snapshot files"))' \
    snapshot diff --json "$T/junk"
j "diff --json missing file: exit 3, SL_ENOTFOUND" 3 \
    ".ok == false and .exit == 3 and .code == -17 and .a == \"$T/none\" and .b == \"$T/junk\" and (.error | test(\"No such file\"))" \
    snapshot diff --json "$T/none" "$T/junk"
j "diff --json junk: exit 3, SL_EFORMAT" 3 '.ok == false and .exit == 3 and .code == -4' snapshot diff --json "$T/junk" "$T/junk"
# An answer that cannot be written (a full disk) is no success: exit 3 and
# a message on stderr, never 0 with an empty file for the script to read.
if [ -w /dev/full ]; then
    "$S" --version --json >/dev/full 2>"$T/err"
    rc=$?
    if [ $rc = 3 ] && grep -q 'cannot write standard output' "$T/err"; then
        pass "--version --json to a full disk: exit 3"
    else
        fail "--version --json to /dev/full: rc=$rc $(cat "$T/err")"
    fi
    if arch_need amd64; then
        "$S" call --json "$G/demo" Add 1 2 >/dev/full 2>"$T/err"
        rc=$?
        if [ $rc = 3 ] && grep -q 'cannot write standard output' "$T/err"; then
            pass "call --json to a full disk: exit 3"
        else
            fail "call --json to /dev/full: rc=$rc $(cat "$T/err")"
        fi
    fi
fi
# Command lines the CLI cannot dispatch still answer in JSON when --json is there.
j "--json before the command: a JSON usage error" 2 \
    ".ok == false and .exit == 2 and .code == null and (.error | test(\"--json goes after the command\"))" --json call "$G/demo" Add 1 2
j "unknown command with --json" 2 ".ok == false and .exit == 2 and (.error | test(\"unknown command 'bogus'\"))" bogus --json
j "snapshot --json without a subcommand" 2 '.ok == false and .exit == 2 and (.error | test("unknown subcommand"))' snapshot --json
j "snapshot with an unknown subcommand and --json" 2 ".ok == false and .exit == 2 and (.error | test(\"'bogus'\"))" \
    snapshot bogus --json
j "help --json: a JSON usage error" 2 '.ok == false and .exit == 2' help --json

# ------------------------------------------------------------ call, both architectures
for g in demo demo32; do
    case $g in *32) a=i686 ;; *) a=amd64 ;; esac
    arch_need $a || continue
    D=$G/$g
    j "$g Add: i32 as a number" 0 \
        '.ok == true and .function == "Add" and .type == "i32" and .value == 5 and (.value | type) == "number" and (has("exit") | not)' \
        call --json "$D" Add 2 3
    j "$g Add: negative" 0 '.value == -21' call "$D" Add -0x10 -5 --json
    j "$g Fill: u64 as an exact decimal string" 0 '.type == "u64" and .value == "522240"' call --json "$D" Fill 4096
    j "$g Counter: i64 as a string" 0 '.type == "i64" and .value == "1"' call --json "$D" Counter
    j "$g Print: void is null, the print stays on stderr" 0 '.type == "void" and .value == null and has("value")' \
        call --json "$D" Print "to stderr"
    if grep -qx '\[guest\] to stderr' "$T/err"; then pass "$g Print --json: [guest] line on stderr"; else fail "$g Print --json stderr: $(cat "$T/err")"; fi
    # Quotes, backslashes, control characters, UTF-8 kept; a stray byte is
    # U+FFFD in "value" and exact in "hex".
    s=$(printf 'q"b\\\\n\001\tu\303\274\342\202\254!')
    j "$g Echo: escapes and UTF-8" 0 \
        '.type == "string" and .value == "q\"b\\\\n\u0001\tu\u00fc\u20ac!" and (has("hex") | not)' call --json "$D" Echo "$s"
    s=$(printf 'a\377b')
    j "$g Echo: invalid UTF-8 as U+FFFD plus hex" 0 '.value == "a\ufffdb" and .hex == "61ff62"' call --json "$D" Echo "$s"
    j "$g Echo: empty string" 0 '.value == "" and .type == "string"' call --json "$D" Echo ""
    j "$g Upper (host function)" 0 '.value == "ABC"' call --json "$D" Upper abc
    j "$g unknown function: exit 1, SL_ENOTFOUND" 1 \
        '.ok == false and .function == "Nope" and .code == -17 and .exit == 1 and (.error | test("no function"))' \
        call --json "$D" Nope
    j "$g wrong argument count: exit 2, code null" 2 \
        '.ok == false and .function == "Add" and .code == null and .exit == 2 and (.error | test("takes 2 arguments"))' \
        call --json "$D" Add 1
    j "$g unparsable argument: exit 2" 2 '.exit == 2 and (.error | test("argument 2 of Add"))' call --json "$D" Add 1 x
done
for g in cpustate cpustate32; do
    case $g in *32) a=i686 ;; *) a=amd64 ;; esac
    arch_need $a || continue
    j "$g Mul: f64 shortest round trip" 0 '.type == "f64" and .value == 0.1 and (.value | tostring) == "0.1"' \
        call --json "$G/$g" Mul 0.1 1
    j "$g Mul: 1.5" 0 '.value == 1.5' call --json "$G/$g" Mul 3 0.5
    j "$g Mul: NaN as a string" 0 '.value == "NaN"' call --json "$G/$g" Mul nan 1
    j "$g Mul: infinities as strings" 0 '.value == "Infinity"' call --json "$G/$g" Mul inf 1
    j "$g Mul: -Infinity" 0 '.value == "-Infinity"' call --json "$G/$g" Mul -inf 1
    # The shortest text that reads back (a subnormal too: 5e-324, not 15
    # digits), as the text itself: jq reads longer forms as the same double.
    # The guest starts with flush-to-zero; SetMxcsr clears it.
    { echo 'call SetMxcsr 0x1f80'; for v in 5e-324 100 1e+300 0.30000000000000004; do echo "call Mul $v 1"; done; } |
        "$S" shell --json "$G/$g" >"$T/out" 2>"$T/err"
    if [ "$(sed -n 's/.*"value":\([^}]*\)}$/\1/p' "$T/out" | paste -sd' ' -)" = "null 5e-324 100 1e+300 0.30000000000000004" ]; then
        pass "$g f64 results in their shortest form"
    else
        fail "$g f64 shortest form: $(cat "$T/out" "$T/err")"
    fi
done
if arch_need amd64; then
    F=$G/faulty
    j "faulty WriteReadOnly: exit 1 with the library's code" 1 \
        '.ok == false and .exit == 1 and (.code == -13 or .code == -14) and (.error | test("WriteReadOnly"))' \
        call --json "$F" WriteReadOnly
    j "faulty Abort: SL_EABORT" 1 '.code == -12 and (.error | test("boom"))' call --json "$F" Abort 7 boom
    j "faulty Spin: SL_ETIMEOUT" 1 '.code == -15' call --json --timeout-ms 300 "$F" Spin
    j "missing guest: exit 3, SL_ENOTFOUND" 3 '.ok == false and .exit == 3 and .code == -17' call --json "$T/none" Add 1 2
    j "missing --init-data file: exit 3, SL_ENOTFOUND" 3 \
        '.ok == false and .exit == 3 and .code == -17 and (.error | test("init data file"))' \
        call --json --init-data "$T/none" "$G/demo" Add 1 2
    # What the guest writes to its stdout must not spoil ours.
    if [ -x "$G/lua_eval" ]; then
        j "lua_eval print goes to stderr with --json" 0 '.value == "7"' call --json "$G/lua_eval" Eval 'print("side") return 7'
        if grep -qx side "$T/err"; then pass "lua_eval print on stderr"; else fail "lua_eval print: stderr $(cat "$T/err")"; fi
    fi
fi

# ------------------------------------------------------------ shell --json
for g in demo demo32; do
    case $g in *32) a=i686 ;; *) a=amd64 ;; esac
    arch_need $a || continue
    printf '%s\n' 'call Counter' 'snapshot a' 'call Counter' 'restore a' generation info functions '' '# c' \
        'bogus' 'call Add 1' 'restore nope' 'call Echo "unterminated' 'call Echo "x y"' help quit 'call Counter' |
        "$S" shell --json "$G/$g" >"$T/out" 2>"$T/err"
    rc=$?
    b=$(SANDLET_FORCE_LAB='' "$S" backend $a 2>/dev/null)
    # One JSON object per line, in order; jq -s reads them as an array.
    if [ $rc = 1 ] && [ "$(wc -l <"$T/out")" -eq 13 ] && jq -s -e "
        (.[0] | .ok and .command == \"call\" and .function == \"Counter\" and .value == \"1\") and
        (.[1] | .command == \"snapshot\" and .tag == \"a\" and .generation == 1 and (.id | test(\"^[0-9a-f]{64}\$\"))) and
        (.[2].value == \"2\") and
        (.[3] | .command == \"restore\" and .tag == \"a\" and .generation == 1) and
        (.[4] | .command == \"generation\" and .generation == 1) and
        (.[5] | .command == \"info\" and .backend == \"$b\" and .arch == \"$a\" and .scratch_size == 16777216 and
            .heap_size == 1048576 and .status == \"ready\" and .generation == 1 and (.events.exits | type) == \"number\") and
        (.[6] | .command == \"functions\" and ([.functions[].name] | index(\"Add\")) != null and
            (.functions[] | select(.name == \"Add\") | .params == [\"i32\", \"i32\"] and .returns == \"i32\")) and
        (.[7] | .ok == false and .command == \"bogus\" and .code == null) and
        (.[8] | .ok == false and .function == \"Add\" and (.error | test(\"takes 2 arguments\"))) and
        (.[9] | .ok == false and .command == \"restore\") and
        (.[10] | .ok == false and .command == null and (.error | test(\"unterminated\"))) and
        (.[11].value == \"x y\") and
        (.[12] | .command == \"help\" and (.text | test(\"snapshot TAG\"))) and
        ([.[] | has(\"exit\")] | any | not)" "$T/out" >/dev/null 2>"$T/jq"; then
        pass "$g shell --json session (one object per answer, errors, exit 1)"
    else
        fail "$g shell --json: rc=$rc $(cat "$T/jq") out: $(head -c 1500 "$T/out")"
    fi
done
if arch_need amd64; then
    printf '%s\n' 'call WriteReadOnly' 'call Counter' | "$S" shell --json "$G/faulty" >"$T/out" 2>&1
    if jq -s -e '.[0].code == -13 or .[0].code == -14' "$T/out" >/dev/null && jq -s -e '.[1].code == -10' "$T/out" >/dev/null; then
        pass "shell --json: a fault's code, then SL_ESTATE (poisoned)"
    else
        fail "shell --json fault codes: $(cat "$T/out")"
    fi
    j "shell --json on a missing guest: one error object, exit 3" 3 '.ok == false and .exit == 3 and .code == -17' \
        shell --json "$T/none"
fi

# ------------------------------------------------------------ snapshot inspect / verify
for g in demo demo32; do
    case $g in *32) a=i686 ;; *) a=amd64 ;; esac
    arch_need $a || continue
    SNAP=$T/$g.snap
    if ! "$S" snapshot save --heap 2M "$G/$g" "$SNAP" --call Counter --call Counter >/dev/null 2>"$T/err"; then
        fail "$g snapshot save: $(cat "$T/err")"
        continue
    fi
    id=$(sed -n 's/.*(id \([0-9a-f]\{64\}\)).*/\1/p' "$T/err")
    size=$(wc -c <"$SNAP" | tr -d ' ')
    # The text report's numbers, to compare with the JSON.
    "$S" snapshot inspect "$SNAP" >"$T/text"
    blob_off=$(sed -n 's/^blob: offset=\([0-9]*\) size=.*/\1/p' "$T/text")
    blob_size=$(sed -n 's/^blob: offset=[0-9]* size=\([0-9]*\) .*/\1/p' "$T/text")
    ranges=$(grep -c '^  0x' "$T/text")
    j "$g inspect --json: header fields" 0 "
        .ok == true and .file == \"$SNAP\" and .format_version == 5 and .arch == \"$a\" and .identity == \"$id\" and
        .parent == null and
        .file_size == $size and .blob.offset == $blob_off and .blob.size == $blob_size and
        .blob.size == .blob.visible_size + .blob.page_table_size and
        .region_records.offset + .region_records.size == .file_size and
        .identity_covers.size == .blob.size + .region_records.size and
        .config.heap_size == 2097152 and .config.scratch_size == 16777216 and .config.init_data_perm == null and
        .generation == 1 and .next.kind == \"call\" and (.next.address | test(\"^0x[0-9a-f]+\$\")) and
        (.scratch.gva | test(\"^0x[0-9a-f]+\$\")) and .pages.page_tables * 4096 == .blob.page_table_size and
        (.regions | type) == \"array\" and .region_records.count == (.regions | length)" \
        snapshot inspect --json "$SNAP"
    j "$g inspect --json: the address map" 0 "
        (.spaces | length) == .address_spaces and .spaces[.current_space].current == true and
        ([.spaces[].ranges | length] | add) == $ranges and
        ([.spaces[].ranges[] | select(.kind != \"shared_table\") | (.start | test(\"^0x[0-9a-f]+\$\")) and
            (.end | test(\"^0x[0-9a-f]+\$\")) and .pages > 0] | all) and
        ([.spaces[].ranges[] | select(.kind == \"ro\" or .kind == \"cow\" or .kind == \"rw\") | .backing] - [\"blob\", \"page_tables\", \"scratch\", \"none\"] == []) and
        ([.spaces[].ranges[] | select(.kind == \"scratch_window\")] | length) >= 1" \
        snapshot inspect --json "$SNAP"
    # A file saved from a sandbox started from $SNAP names it as its parent;
    # one call (Counter) copied one page, every other stayed in place.
    if "$S" snapshot save "$SNAP" "$T/$g.child.snap" --call Counter >/dev/null 2>"$T/err"; then
        j "$g inspect --json: the parent of a file saved from a file" 0 "
            .parent.identity == \"$id\" and .parent.pages_kept > 0 and
            .parent.pages_kept < .blob.visible_size / 4096 and .parent.pages_kept <= .pages.read_only + .pages.cow" \
            snapshot inspect --json "$T/$g.child.snap"
        # It is a child file (format version 5): its own pages, runs into
        # $SNAP, an index of its own pages, $SNAP's name; the identity covers
        # a blob that is not in the file.
        j "$g inspect --json: a child file's fields" 0 "
            .format_version == 5 and .child.parent_name == \"$g.snap\" and .child.own_size > 0 and
            .child.own_size < .blob.size and .child.own_size % 4096 == 0 and .child.runs.count >= 1 and
            .child.index.entries == .child.own_size / 4096 and .child.runs.offset == .region_records.offset + .region_records.size and
            .child.index.offset == .child.runs.offset + 24 * .child.runs.count and
            .child.index.offset + 40 * .child.index.entries == .file_size and
            .identity_covers == null and .file_size < $size" snapshot inspect --json "$T/$g.child.snap"
        j "$g verify --json of a child file" 0 ".ok == true and .file == \"$T/$g.child.snap\"" \
            snapshot verify --json "$T/$g.child.snap"
        mkdir -p "$T/lone"
        cp "$T/$g.child.snap" "$T/lone/"
        j "$g verify --json of a child without its parent: exit 3, SL_EPARENT naming the identity" 3 "
            .ok == false and .exit == 3 and .code == -25 and .file == \"$T/lone/$g.child.snap\" and (.error | test(\"$id\"))" \
            snapshot verify --json "$T/lone/$g.child.snap"
        j "$g verify --json --parent DIR" 0 '.ok == true' snapshot verify --json --parent "$T" "$T/lone/$g.child.snap"
        j "$g inspect --json of a child without its parent: the header, no map, why" 0 "
            .ok == true and .child.parent_name == \"$g.snap\" and (has(\"spaces\") | not) and
            (.map_unavailable | test(\"$id\"))" snapshot inspect --json "$T/lone/$g.child.snap"
        j "$g diff --json of a child without its parent: exit 3, SL_EPARENT" 3 '.ok == false and .exit == 3 and .code == -25' \
            snapshot diff --json "$SNAP" "$T/lone/$g.child.snap"
        j "$g diff --json --parent FILE: the counter's page" 1 '.ok == true and .pages.changed == 1' \
            snapshot diff --json --parent "$SNAP" "$SNAP" "$T/lone/$g.child.snap"
    else
        fail "$g snapshot save from a file: $(cat "$T/err")"
    fi
    j "$g inspect --json: a full file is no child" 0 '.child == null and .identity_covers.offset == .blob.offset' \
        snapshot inspect --json "$SNAP"
    j "$g verify --json intact" 0 ".ok == true and .file == \"$SNAP\"" snapshot verify --json "$SNAP"
    cp "$SNAP" "$T/bad.snap"
    printf '\377' | dd of="$T/bad.snap" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
    cmp -s "$SNAP" "$T/bad.snap" && { printf '\000' | dd of="$T/bad.snap" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null; }
    j "$g verify --json corrupted: exit 4, SL_EHASH" 4 \
        '.ok == false and .exit == 4 and .code == -22 and (.error | test("identity mismatch"))' snapshot verify --json "$T/bad.snap"
    j "$g call --json on the snapshot file" 0 '.value == "3"' call --json "$SNAP" Counter
    j "$g diff --json of a file with itself: exit 0" 0 "
        .ok == true and .a == \"$SNAP\" and .b == \"$SNAP\" and .differ == false and .ranges == [] and
        .pages == {\"added\": 0, \"removed\": 0, \"changed\": 0, \"permissions\": 0}" snapshot diff --json "$SNAP" "$SNAP"
    # One call later in the same sandbox (the shell): the counter's page.
    if printf 'call Counter\nsnapshot t\nsave t %s\n' "$T/more.snap" | "$S" shell "$SNAP" >/dev/null 2>"$T/err"; then
        "$S" snapshot diff "$SNAP" "$T/more.snap" >"$T/text"
        j "$g diff --json: the counter's page, as in the text (exit 1)" 1 "
            .ok == true and .differ == true and (.ranges | length) == 1 and .ranges[0].space == 0 and
            .ranges[0].kind == \"changed\" and .ranges[0].pages == 1 and
            .ranges[0].in_a == .ranges[0].in_b and .ranges[0].in_a.kind == \"cow\" and .ranges[0].in_a.user == true and
            (.ranges[0].in_a.perm | test(\"^r-[x-]\$\")) and
            (\"space 0 changed     \" + (.ranges[0].start | ltrimstr(\"0x\") | (\"0x\" + \"0\" * (16 - length) + .)) + \"-\") ==
                \"$(head -n 1 "$T/text" | cut -c1-39)\" and
            .pages == {\"added\": 0, \"removed\": 0, \"changed\": 1, \"permissions\": 0}" \
            snapshot diff --json "$SNAP" "$T/more.snap"
    else
        fail "$g shell save for diff: $(cat "$T/err")"
    fi
done
# Guests with different address spaces: every range of the text in the JSON.
if arch_need amd64 && [ -x "$G/multispace" ] && "$S" snapshot save "$G/demo" "$T/d.snap" >/dev/null 2>&1 &&
    "$S" snapshot save "$G/multispace" "$T/m.snap" >/dev/null 2>&1; then
    "$S" snapshot diff "$T/d.snap" "$T/m.snap" >"$T/text"
    n=$(grep -c '^space ' "$T/text")
    added=$(sed -n 's/^pages: \([0-9]*\) added, .*/\1/p' "$T/text")
    j "diff --json of two guests: ranges and pages as in the text" 1 "
        .differ == true and (.ranges | length) == $n and .pages.added == $added and
        ([.ranges[] | .pages] | add) == (.pages | .added + .removed + .changed + .permissions) and
        ([.ranges[] | select(.kind == \"added\") | .in_a == null and .in_b != null] | all) and
        ([.ranges[] | select(.kind == \"removed\") | .in_b == null and .in_a != null] | all) and
        ([.ranges[] | .space] | max) == 3 and ([.ranges[] | (.start | test(\"^0x[0-9a-f]+\$\")) and (.end | test(\"^0x[0-9a-f]+\$\"))] | all)" \
        snapshot diff --json "$T/d.snap" "$T/m.snap"
fi
# Several address spaces that share page tables (guests/multispace.c).
if arch_need amd64 && [ -x "$G/multispace" ]; then
    if "$S" snapshot save "$G/multispace" "$T/ms.snap" --call Spaces >/dev/null 2>"$T/err"; then
        "$S" snapshot inspect "$T/ms.snap" >"$T/text"
        n=$(sed -n 's/^address spaces: \([0-9]*\) .*/\1/p' "$T/text")
        ranges=$(grep -c '^  0x' "$T/text")
        shared=$(grep -c 'table shared with address space' "$T/text")
        j "multispace inspect --json: spaces, shared tables, ranges as in the text" 0 "
            .address_spaces == $n and $n > 1 and (.spaces | length) == $n and ([.spaces[].index] == [range($n)]) and
            ([.spaces[].ranges | length] | add) == $ranges and
            ([.spaces[].ranges[] | select(.kind == \"shared_table\")] | length) == $shared and $shared > 0 and
            ([.spaces[].ranges[] | select(.kind == \"shared_table\") | .shared_with >= 0 and .shared_with < $n and .level >= 1 and (.shared_va | test(\"^0x\"))] | all) and
            ([.spaces[] | select(.current)] | length) == 1" snapshot inspect --json "$T/ms.snap"
    else
        fail "multispace snapshot save: $(cat "$T/err")"
    fi
fi

[ "$FAILS" = 0 ]
