#!/bin/sh
# Runs the demo on hardware KVM when /dev/kvm is usable, otherwise in the KVM
# lab (PVM, KVM without VT-x/AMD-V, counts as unusable: it cannot run i686 or SSE).
set -eu
cd "$(dirname "$0")/.."
if [ -z "${SANDLET_FORCE_LAB:-}" ] && [ ! -d /sys/module/kvm_pvm ] && { exec 9<>/dev/kvm; } 2>/dev/null; then
    exec build/demo build/guests
fi
echo "(no usable /dev/kvm here: running the demo in the KVM lab, QEMU with nested KVM; ~5 s)" >&2
exec scripts/kvm-lab --add "$PWD/build/demo" --add "$PWD/build/guests" -- "$PWD/build/demo" build/guests
