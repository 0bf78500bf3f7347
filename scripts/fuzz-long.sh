#!/usr/bin/env bash
# Long fuzzing runs (`make fuzz-long`): every build/fuzz/fuzz_* target for
# FUZZ_LONG_SECONDS (default 1800 s = 30 min) each, FUZZ_LONG_JOBS targets at a
# time (default 1), at the lowest CPU priority, on the same corpus as the
# short runs in `make test` (build/fuzz-corpus/<target>, seeded from
# fuzz/corpus/<target>). FUZZ_LONG_TARGETS="fuzz_abi fuzz_elf" picks targets.
#
# Prints one summary line per target ("fuzz_x: N runs in S s, K crashes") and
# writes the logs to build/fuzz-long/<target>.log. A crashing input is kept
# in build/fuzz-long/<target>/; copy it into fuzz/corpus/<target>/ so that
# every `make test` replays it (the short runs read that directory), then fix
# the bug. Exit status: 0 when no target crashed.
set -u
cd "$(dirname "$0")/.."
secs=${FUZZ_LONG_SECONDS:-1800}
jobs=${FUZZ_LONG_JOBS:-1}
out=build/fuzz-long
mkdir -p "$out"

targets=()
if [ -n "${FUZZ_LONG_TARGETS:-}" ]; then
    for t in $FUZZ_LONG_TARGETS; do targets+=("build/fuzz/$t"); done
else
    for t in build/fuzz/fuzz_*; do [ -x "$t" ] && targets+=("$t"); done
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz-long: no fuzz targets (make fuzz)" >&2; exit 2; }

one() {
    local f=$1 n
    n=$(basename "$f")
    mkdir -p "build/fuzz-corpus/$n" "$out/$n"
    local seeds=()
    [ -d "fuzz/corpus/$n" ] && seeds=("fuzz/corpus/$n")
    local t0=$SECONDS
    nice -n 19 "$f" -max_total_time="$secs" -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="$out/$n/" "build/fuzz-corpus/$n" "${seeds[@]}" >"$out/$n.log" 2>&1
    local rc=$? runs crashes
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/$n.log" | grep -o '[0-9]*$' | tail -1)
    crashes=$(find "$out/$n" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
    echo "$n: ${runs:-?} runs in $((SECONDS - t0)) s, $crashes crashes (exit $rc; log $out/$n.log)"
    [ "$rc" = 0 ] && [ "$crashes" = 0 ]
}

status=0
running=0
for f in "${targets[@]}"; do
    one "$f" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || status=1
        running=$((running - 1))
    fi
done
while [ "$running" -gt 0 ]; do
    wait -n || status=1
    running=$((running - 1))
done
exit $status
