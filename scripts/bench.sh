#!/usr/bin/env bash
# Builds everything (make all) and runs every benchmark in build/bench.
#
# Host-only benchmarks (no vCPU: bench_snapshot, bench_snapfile) run natively.
# Every other bench_* needs KVM: it runs natively when /dev/kvm is hardware KVM,
# otherwise in the KVM lab (scripts/kvm-lab), where the figures prove that the
# code works, not how fast it is (each benchmark prints where it ran).
#
# Usage: scripts/bench.sh [--quick] [--lab] [BUILD_DIR]
#   --quick   fewer repetitions (SANDLET_BENCH_QUICK=1)
#   --lab     run the KVM benchmarks in the lab even where /dev/kvm works
# Output: each benchmark's lines (`BENCH name median=.. baseline=.. ratio=..`)
# under a "== name (where)" header. Exit status: non-zero if any failed.
# bench_lua gets the Lua corpus (tests/lua) as its argument; in the lab the
# corpus and build/guests (the lua interpreter it also runs natively) are
# copied into the VM.
set -u
cd "$(dirname "$0")/.."

build=build
force_lab=${SANDLET_FORCE_LAB:-}
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) export SANDLET_BENCH_QUICK=1 ;;
    --lab) force_lab=1 ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
    *) build=$1 ;;
    esac
    shift
done

HOST_ONLY="bench_snapshot bench_snapfile"

make --no-print-directory BUILD="$build" all >&2 || { echo "bench.sh: build failed" >&2; exit 1; }
build=$(cd "$build" && pwd)
guests=$PWD/build/guests
lua_corpus=$PWD/tests/lua

# Arguments of a benchmark (shell words, already quoted).
bench_args() {
    case "$(basename "$1")" in
    bench_lua) printf "'%s'" "$lua_corpus" ;;
    esac
}

# Hardware KVM only: PVM (kvm_pvm) has no i686 paging or SSE and emulates much
# of the guest, so it counts as absent (as in tests/run).
kvm_native() {
    [ -z "$force_lab" ] && [ ! -d /sys/module/kvm_pvm ] &&
        { exec 9<>/dev/kvm; } 2>/dev/null && exec 9>&-
}

status=0
kvm=()
for b in "$build"/bench/bench_*; do
    [ -x "$b" ] || continue
    n=$(basename "$b")
    case " $HOST_ONLY " in
    *" $n "*)
        echo "== $n (host only, native)"
        "$b" || { echo "bench.sh: $n failed" >&2; status=1; } ;;
    *) kvm+=("$b") ;;
    esac
done

[ ${#kvm[@]} -eq 0 ] && exit $status

if kvm_native; then
    for b in "${kvm[@]}"; do
        echo "== $(basename "$b") (native KVM)"
        eval "SANDLET_GUESTS=\$guests \"\$b\" $(bench_args "$b")" ||
            { echo "bench.sh: $(basename "$b") failed" >&2; status=1; }
    done
else
    # One lab boot for all KVM benchmarks.
    script=$(mktemp /tmp/sandlet-bench.XXXXXX.sh)
    trap 'rm -f "$script"' EXIT
    {
        echo '#!/bin/sh'
        echo 'rc=0'
        for b in "${kvm[@]}"; do
            echo "echo '== $(basename "$b") (KVM lab)'; $b $(bench_args "$b") || { echo 'bench.sh: $(basename "$b") failed'; rc=1; }"
        done
        echo 'exit $rc'
    } >"$script"
    chmod +x "$script"
    envs=()
    [ -n "${SANDLET_BENCH_QUICK:-}" ] && envs+=(--env "SANDLET_BENCH_QUICK=$SANDLET_BENCH_QUICK")
    echo "(no hardware /dev/kvm: running ${#kvm[@]} KVM benchmark(s) in the KVM lab)" >&2
    # bench_lua runs the corpus twice per repetition (guest and native) and
    # once more for its events: allow more than the lab's default 600 s.
    scripts/kvm-lab --timeout 1800 --add "$script" --add "$build/bench" --add "$guests" --add "$lua_corpus" \
        "${envs[@]}" --env "SANDLET_GUESTS=$guests" -- "$script" || status=1
fi
exit $status
