#!/bin/sh
# The README's examples work as shown: the minimal guest (built with
# scripts/sandlet-cc) called from the minimal host program. $1 = build dir.
# An x86-64 guest: runs where those run and SANDLET_TEST_ARCHS covers them
# (tests/e2e/arch.sh).
b=${1:-build}
if [ ! -x "$b/sandlet" ]; then
    echo "FAIL examples: no $b/sandlet to ask where guests run (make builds the CLI)"
    exit 1
fi
. "$(dirname "$0")/arch.sh"
arch_init "$b/sandlet" || exit 1
arch_need amd64 || exit 0
out=$("$b/hello_host" 2>&1)
if [ "$out" = "hello, world
hello, world
hello, world" ]; then
    echo "PASS readme_minimal_host_and_guest"
else
    echo "FAIL readme_minimal_host_and_guest: got: $out"
fi
