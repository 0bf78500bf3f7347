# PASS/FAIL lines for the shell suites (tests/run counts them), and the
# plainest command check. Sourced by each suite after it sets FAILS=0, S (the
# CLI) and T (its temporary directory). CHECK_PREFIX, when set, starts every
# check's name (e.g. "sqlite: "). POSIX sh.

pass() { echo "PASS ${CHECK_PREFIX-}$1"; }
fail() {
    echo "FAIL ${CHECK_PREFIX-}$1"
    FAILS=$((FAILS + 1))
}

# t NAME WANT_RC WANT_STDOUT ARGS...: `$S ARGS` exits WANT_RC and prints
# exactly WANT_STDOUT; its stderr is shown when it does not.
t() {
    name=$1 want_rc=$2 want_out=$3
    shift 3
    out=$("$S" "$@" 2>"$T/err")
    rc=$?
    if [ "$rc" = "$want_rc" ] && [ "$out" = "$want_out" ]; then
        pass "$name"
    else
        fail "$name: rc=$rc (want $want_rc), stdout '$out' (want '$want_out'), stderr: $(head -c 600 "$T/err")"
    fi
}
