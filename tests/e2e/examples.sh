#!/bin/sh
# The README's examples work as shown: the minimal guest (built with
# scripts/sandlet-cc) called from the minimal host program. $1 = build dir.
b=${1:-build}
out=$("$b/hello_host" 2>&1)
if [ "$out" = "hello, world
hello, world
hello, world" ]; then
    echo "PASS readme_minimal_host_and_guest"
else
    echo "FAIL readme_minimal_host_and_guest: got: $out"
fi
