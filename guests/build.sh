#!/bin/sh
# Builds the guest runtime and example guests into ${GUEST_OUT:-build/guests}.
# Usage: guests/build.sh [make arguments]   (run from anywhere)
set -e
cd "$(dirname "$0")/.."
exec make -f mk/guests.mk guests "$@"
