#!/bin/sh
# Installs the Debian packages the build, the tests and the demo need, when any
# is missing. Idempotent and quiet when everything is present, so `make demo`
# and `make test` call it every time.
#   scripts/deps.sh          the build, the tests and the demo
#   scripts/deps.sh --deb    also what `make deb` needs (dpkg-buildpackage, dh, lintian)
#   scripts/deps.sh --fresh  also what scripts/check-fresh needs (debootstrap)
set -eu
# netcat-openbsd: tests/e2e/serve.sh (nc -U); pkgconf, man-db and mandoc:
# tests/e2e/install.sh (pkg-config, man pages); libedit-dev: the CLI's shell
# (line editing and history on a terminal).
PKGS="make gcc libc6-dev gcc-multilib clang libclang-rt-14-dev llvm librust-blake3-dev b3sum file dpkg-dev lua5.4 liblua5.4-dev sqlite3 libsqlite3-dev tcl jq libjansson-dev netcat-openbsd pkgconf man-db mandoc libedit-dev"
case ${1:-} in
"") ;;
--deb) PKGS="$PKGS debhelper lintian" ;;
--fresh) PKGS="$PKGS debootstrap" ;;
*)
    echo "usage: $0 [--deb|--fresh]" >&2
    exit 2
    ;;
esac
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "sandlet: missing packages:$missing (run as root, or install them)" >&2
    exit 1
fi
echo "sandlet: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends $missing >/dev/null 2>&1 || {
    apt-get update >/dev/null
    apt-get install -y --no-install-recommends $missing >/dev/null
}
