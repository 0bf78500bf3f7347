#!/usr/bin/env bash
# Builds everything (make all) and runs every benchmark in build/bench.
#
# Host-only benchmarks (no vCPU: bench_snapshot, bench_snapfile) run natively.
# Every other bench_* runs guests: natively when every architecture it runs is
# available here (`BUILD_DIR/sandlet backend amd64|i686` is kvm or pvm: PVM runs
# x86-64 guests only), otherwise in the KVM lab (scripts/kvm-lab), where the
# figures prove that the code works, not how fast it is (each benchmark prints
# where it ran). bench_first_call, bench_lua, bench_requests, bench_serve and
# bench_snapchild run x86-64 guests. bench_call runs both (demo and demo32)
# and reports an architecture that cannot run as
# "not measured": it runs wherever x86-64 guests run, and in the lab as well
# when i686 guests cannot run here (on PVM: its x86-64 figures natively, its
# i686 ones in the lab). Any other benchmark needs both architectures.
#
# Usage: scripts/bench.sh [--quick] [--lab] [BUILD_DIR]
#   --quick   fewer repetitions (SANDLET_BENCH_QUICK=1)
#   --lab     run the KVM benchmarks in the lab even where they could run here
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

# The guest architectures a benchmark runs.
bench_archs() {
    case "$(basename "$1")" in
    bench_first_call | bench_lua | bench_requests | bench_serve | bench_snapchild) echo amd64 ;;
    *) echo amd64 i686 ;; # bench_call (demo and demo32), and any new one
    esac
}

# Whether a benchmark measures what it can where some of its architectures
# cannot run (and says so for the others).
bench_partial() {
    case "$(basename "$1")" in
    bench_call) return 0 ;;
    *) return 1 ;;
    esac
}

# Where ARCH guests run here: kvm, pvm or lab (the CLI honours SANDLET_FORCE_LAB).
backend() {
    local b
    b=$("$build/sandlet" backend "$1" 2>/dev/null) && [ -n "$b" ] && echo "$b" || echo lab
}

# Where benchmark $1 runs: "kvm" or "pvm" (natively: every architecture it
# runs is available here, kvm when all are kvm), "lab", or "pvm lab" / "kvm
# lab" (natively for the architectures available here, a partial benchmark,
# and in the lab for the others).
bench_where() {
    local a b native=kvm some=0 missing=0
    [ -z "$force_lab" ] || { echo lab; return; }
    for a in $(bench_archs "$1"); do
        b=$(backend "$a")
        case "$b" in
        kvm) some=1 ;;
        pvm) some=1 native=pvm ;;
        *) missing=1 ;;
        esac
    done
    if [ $missing = 0 ]; then
        echo "$native"
    elif [ $some = 1 ] && bench_partial "$1"; then
        echo "$native lab"
    else
        echo lab
    fi
}

status=0
kvm=()
lab=()
for b in "$build"/bench/bench_*; do
    [ -x "$b" ] || continue
    n=$(basename "$b")
    case " $HOST_ONLY " in
    *" $n "*)
        echo "== $n (host only, native)"
        "$b" || { echo "bench.sh: $n failed" >&2; status=1; } ;;
    *)
        where=$(bench_where "$b")
        case " $where " in *" kvm "* | *" pvm "*) kvm+=("$b") ;; esac
        case " $where " in *" lab "*) lab+=("$b") ;; esac ;;
    esac
done

for b in "${kvm[@]}"; do
    case " $(bench_where "$b") " in
    *" pvm "*) echo "== $(basename "$b") (native PVM)" ;;
    *) echo "== $(basename "$b") (native KVM)" ;;
    esac
    eval "SANDLET_GUESTS=\$guests \"\$b\" $(bench_args "$b")" ||
        { echo "bench.sh: $(basename "$b") failed" >&2; status=1; }
done

if [ ${#lab[@]} -gt 0 ]; then
    # One lab boot for all KVM benchmarks.
    script=$(mktemp /tmp/sandlet-bench.XXXXXX.sh)
    trap 'rm -f "$script"' EXIT
    {
        echo '#!/bin/sh'
        echo 'rc=0'
        for b in "${lab[@]}"; do
            echo "echo '== $(basename "$b") (KVM lab)'; $b $(bench_args "$b") || { echo 'bench.sh: $(basename "$b") failed'; rc=1; }"
        done
        echo 'exit $rc'
    } >"$script"
    chmod +x "$script"
    envs=()
    [ -n "${SANDLET_BENCH_QUICK:-}" ] && envs+=(--env "SANDLET_BENCH_QUICK=$SANDLET_BENCH_QUICK")
    why="guests they run cannot run here"
    [ -z "$force_lab" ] || why="--lab or SANDLET_FORCE_LAB"
    echo "(running ${#lab[@]} benchmark(s) in the KVM lab: $why)" >&2
    # bench_lua runs the corpus twice per repetition (guest and native) and
    # once more for its events: allow more than the lab's default 600 s.
    scripts/kvm-lab --timeout 1800 --add "$script" --add "$build/bench" --add "$guests" --add "$lua_corpus" \
        "${envs[@]}" --env "SANDLET_GUESTS=$guests" -- "$script" || status=1
fi
exit $status
