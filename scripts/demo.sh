#!/bin/sh
# Runs the demo (x86-64 guests: demo, faulty) where x86-64 guests run here, as
# `build/sandlet backend amd64` says: natively on hardware KVM or PVM, otherwise
# (or with SANDLET_FORCE_LAB=1) in the KVM lab.
set -eu
cd "$(dirname "$0")/.."
backend=$(build/sandlet backend amd64 2>/dev/null) || backend=lab
if [ -n "$backend" ] && [ "$backend" != lab ]; then
    exec build/demo build/guests
fi
echo "(x86-64 guests cannot run here: running the demo in the KVM lab, QEMU with nested KVM; ~5 s)" >&2
exec scripts/kvm-lab --add "$PWD/build/demo" --add "$PWD/build/guests" -- "$PWD/build/demo" build/guests
