#!/bin/bash
# Third-party pieces for musl guests, built from Debian's source packages:
#
#   scripts/thirdparty.sh musl   musl (static only) for x86-64 and i386, into
#                                build/musl/x86_64 and build/musl/i386
#   scripts/thirdparty.sh lua    the lua5.4 source package, unpacked into
#                                build/src/lua5.4 (mk/thirdparty.mk builds the
#                                interpreter from it with scripts/musl-cc)
#   scripts/thirdparty.sh sqlite the sqlite3 source package, unpacked into
#                                build/src/sqlite3, and the amalgamation its
#                                own build generates from it (sqlite3.c,
#                                sqlite3.h) in build/src/sqlite3-amalgamation
#                                (mk/sqlite.mk builds guests/sqlite.c with it)
#
# Sources come from `apt-get source` (Debian's patches applied by dpkg-source)
# and are cached under build/src; deb-src entries are derived from the
# machine's own APT sources when there are none. Idempotent: prints the paths
# it produced, nothing when everything is cached. Fails loudly (message on
# stderr, non-zero exit). Must run as root when something has to be installed
# or configured; concurrent runs are serialised with a lock in build/.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
srcdir=$build/src
muslout=$build/musl
jobs=${THIRDPARTY_JOBS:-2}

die() {
    echo "thirdparty: $*" >&2
    exit 1
}

# Last lines of a failed step's log, then die.
die_log() {
    local log=$1
    shift
    if [ -f "$log" ]; then
        echo "thirdparty: --- last lines of $log ---" >&2
        tail -n 15 "$log" >&2
    fi
    die "$*"
}

need_root() {
    [ "$(id -u)" = 0 ] || die "$1 (run as root)"
}

# --- APT -------------------------------------------------------------------

apt_updated=0
apt_update() {
    [ "$apt_updated" = 1 ] && return 0
    need_root "the APT package lists need an update"
    echo "thirdparty: apt-get update" >&2
    # Third-party repositories the machine cannot reach make update fail while
    # Debian's lists are fine: what matters is checked by the caller.
    apt-get update >"$srcdir/apt-update.log" 2>&1 ||
        echo "thirdparty: apt-get update reported errors (see $srcdir/apt-update.log)" >&2
    apt_updated=1
}

ensure_pkgs() {
    local p missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep "install ok installed" >/dev/null ||
            missing+=("$p")
    done
    [ "${#missing[@]}" = 0 ] && return 0
    need_root "missing packages: ${missing[*]}"
    echo "thirdparty: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
        apt_update
        apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
            die "cannot install ${missing[*]}"
    fi
}

# Whether any deb-src entry is configured (apt's own parser: every format,
# Enabled: no). grep reads all input: no SIGPIPE under pipefail.
have_deb_src() {
    # shellcheck disable=SC2016 # $(CREATED_BY) is apt's format, not the shell's
    apt-get indextargets --no-release-info --format '$(CREATED_BY)' 2>/dev/null | grep -x Sources >/dev/null
}

# The files apt reads: sources.list and sources.list.d/*.list (one-line
# format), sources.list.d/*.sources (deb822). Other names (.disabled, .save)
# are ignored by apt and so here.
apt_dir() {
    apt-config shell d Dir::Etc/d | sed -n "s/^d='\(.*\)'$/\1/p"
}

ensure_deb_src() {
    have_deb_src && return 0
    need_root "no deb-src entries in the APT sources"
    local etc list parts f out_list out_sources
    etc=$(apt_dir)
    etc=${etc:-/etc/apt/}
    list=$(apt-config shell v Dir::Etc::sourcelist/f | sed -n "s/^v='\(.*\)'$/\1/p")
    parts=$(apt-config shell v Dir::Etc::sourceparts/d | sed -n "s/^v='\(.*\)'$/\1/p")
    list=${list:-${etc}sources.list}
    parts=${parts:-${etc}sources.list.d/}
    out_list=${parts%/}/sandlet-deb-src.list
    out_sources=${parts%/}/sandlet-deb-src.sources

    # One-line format: every enabled `deb` line, as `deb-src` (options kept).
    {
        echo "# deb-src entries derived from the deb entries of this machine's"
        echo "# APT sources by sandlet's scripts/thirdparty.sh (apt-get source)."
        for f in "$list" "${parts%/}"/*.list; do
            [ -f "$f" ] || continue
            sed -n 's/^[[:space:]]*deb\([[:space:]]\)/deb-src\1/p' "$f"
        done
    } >"$out_list.tmp"
    # deb822: every enabled stanza whose Types has `deb`, with Types: deb-src.
    {
        echo "# deb-src entries derived from the deb entries of this machine's"
        echo "# APT sources by sandlet's scripts/thirdparty.sh (apt-get source)."
        for f in "${parts%/}"/*.sources; do
            [ -f "$f" ] || continue
            [ "$f" = "$out_sources" ] && continue
            awk '
                function flush() {
                    if (n && isdeb && !off) {
                        printf "\n"
                        for (i = 1; i <= n; i++) print st[i]
                    }
                    n = 0; isdeb = 0; off = 0
                }
                /^[[:space:]]*$/ { flush(); next }
                /^#/ { next }
                {
                    line = $0
                    if (tolower($0) ~ /^types:/) {
                        t = $0; sub(/^[^:]*:/, "", t)
                        k = split(t, w, /[[:space:]]+/)
                        for (j = 1; j <= k; j++) if (w[j] == "deb") isdeb = 1
                        line = "Types: deb-src"
                    } else if (tolower($0) ~ /^enabled:[[:space:]]*no[[:space:]]*$/) {
                        off = 1
                    }
                    st[++n] = line
                }
                END { flush() }
            ' "$f"
        done
    } >"$out_sources.tmp"
    if grep -q '^deb-src' "$out_list.tmp"; then
        mv "$out_list.tmp" "$out_list"
        echo "thirdparty: wrote $out_list" >&2
    else
        rm -f "$out_list.tmp"
    fi
    if grep -q '^Types: deb-src' "$out_sources.tmp"; then
        mv "$out_sources.tmp" "$out_sources"
        echo "thirdparty: wrote $out_sources" >&2
    else
        rm -f "$out_sources.tmp"
    fi
    have_deb_src || die "found no deb entries in $list or $parts to derive deb-src entries from"
    apt_updated=0
    apt_update
}

# --- source packages -------------------------------------------------------

# fetch_source PKG: unpacks Debian's source package PKG (patches applied) into
# build/src/PKG once; the stamp records the version.
fetch_source() {
    local pkg=$1 dest=$srcdir/$1 stamp=$srcdir/$1.stamp dl=$srcdir/dl ver dsc log
    [ -f "$stamp" ] && [ -d "$dest" ] && return 0
    ensure_pkgs dpkg-dev
    ensure_deb_src
    if [ -z "$(apt-cache showsrc --only-source "$pkg" 2>/dev/null)" ]; then
        apt_update
        [ -n "$(apt-cache showsrc --only-source "$pkg" 2>/dev/null)" ] ||
            die "APT knows no source package $pkg (deb-src entries present; see $srcdir/apt-update.log)"
    fi
    mkdir -p "$dl"
    log=$srcdir/$pkg.log
    # As root, apt downloads as the unprivileged _apt user, which cannot write
    # into build/: download as root instead of warning about it.
    # A stale Sources index names files the mirror no longer has: update once.
    if ! (cd "$dl" && apt-get source --download-only -o APT::Sandbox::User=root "$pkg") >"$log" 2>&1; then
        [ "$apt_updated" = 1 ] && die_log "$log" "apt-get source $pkg failed"
        apt_update
        (cd "$dl" && apt-get source --download-only -o APT::Sandbox::User=root "$pkg") >"$log" 2>&1 ||
            die_log "$log" "apt-get source $pkg failed"
    fi
    # The newest .dsc of this package in the cache (apt-get source picks the
    # candidate version; older downloads may still lie there).
    dsc=$(cd "$dl" && sed -n 's/^Version: //p' "$pkg"_*.dsc 2>/dev/null | sort -V | tail -n 1) || true
    [ -n "$dsc" ] || die_log "$log" "apt-get source $pkg left no .dsc in $dl"
    ver=$dsc
    dsc=$dl/${pkg}_${ver#*:}.dsc
    [ -f "$dsc" ] || die "no $dsc after apt-get source"
    rm -rf "$dest" "$dest.tmp"
    # No signature check here: apt already verified the files against the
    # signed Sources index (dpkg-source would only warn about a missing keyring).
    dpkg-source --no-check --no-copy -x "$dsc" "$dest.tmp" >>"$log" 2>&1 ||
        die_log "$log" "dpkg-source -x $dsc failed"
    mv "$dest.tmp" "$dest"
    echo "$ver" >"$stamp"
    echo "$dest"
}

# --- musl ------------------------------------------------------------------

# Everything that decides the build; a change rebuilds.
musl_key() {
    local arch=$1
    echo "musl $(cat "$srcdir/musl.stamp") $arch $(gcc -dumpfullversion) cfg=${musl_cfg[*]}"
}

build_musl_arch() {
    local arch=$1 prefix=$muslout/$1 obj=$build/musl/obj-$1 stamp=$muslout/$1.stamp log key f
    local -a musl_cfg
    case $arch in
    x86_64) musl_cfg=(--target=x86_64 CC=gcc) ;;
    i386) musl_cfg=(--target=i386 "CC=gcc -m32") ;;
    *) die "unknown arch $arch" ;;
    esac
    # --target makes configure prefix the binutils with "<target>-", which
    # Debian does not have: the host's ar and ranlib handle both.
    musl_cfg+=(--disable-shared --disable-wrapper AR=ar RANLIB=ranlib)
    key=$(musl_key "$arch")
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] && [ -f "$prefix/lib/libc.a" ]; then
        return 0
    fi
    rm -rf "$prefix" "$obj" "$stamp"
    mkdir -p "$obj"
    # Nothing from a calling make (jobserver, command-line variables such as
    # CC=clang) or the environment's compiler flags reaches musl's build.
    unset MAKEFLAGS MFLAGS MAKEOVERRIDES MAKELEVEL CFLAGS CPPFLAGS LDFLAGS CROSS_COMPILE
    log=$muslout/$arch.log
    # Out-of-tree build: musl's configure writes config.mak into the current
    # directory and takes the sources from its own location.
    (cd "$obj" && "$srcdir/musl/configure" --prefix="$prefix" "${musl_cfg[@]}") >"$log" 2>&1 ||
        die_log "$log" "musl configure ($arch) failed"
    make -C "$obj" -j"$jobs" >>"$log" 2>&1 || die_log "$log" "musl build ($arch) failed"
    make -C "$obj" install >>"$log" 2>&1 || die_log "$log" "musl install ($arch) failed"
    for f in include/stdio.h lib/libc.a lib/crt1.o lib/crti.o lib/crtn.o lib/rcrt1.o; do
        [ -f "$prefix/$f" ] || die_log "$log" "musl ($arch): $prefix/$f missing after install"
    done
    rm -rf "$obj"
    echo "$key" >"$stamp"
    echo "$prefix"
}

# --- SQLite ----------------------------------------------------------------

# The amalgamation is generated, not shipped, in Debian's orig tarball (the
# full source tree): its own configure and `make sqlite3.c` (tclsh runs
# tool/mksqlite3c.tcl) make it, out of tree so that build/src/sqlite3 stays
# as dpkg-source unpacked it. Only sqlite3.c and sqlite3.h are kept.
sqlite_key() {
    echo "sqlite3 $(cat "$srcdir/sqlite3.stamp") tcl $(echo 'puts [info patchlevel]' | tclsh) $(gcc -dumpfullversion)"
}

build_sqlite_amalgamation() {
    local out=$srcdir/sqlite3-amalgamation stamp=$srcdir/sqlite3-amalgamation.stamp
    local obj=$srcdir/sqlite3-obj log=$srcdir/sqlite3-amalgamation.log key f
    command -v tclsh >/dev/null || ensure_pkgs tcl
    key=$(sqlite_key)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] && [ -f "$out/sqlite3.c" ] && [ -f "$out/sqlite3.h" ]; then
        return 0
    fi
    rm -rf "$out" "$out.tmp" "$obj" "$stamp"
    mkdir -p "$obj" "$out.tmp"
    # As for musl: nothing from a calling make or the environment's flags.
    unset MAKEFLAGS MFLAGS MAKEOVERRIDES MAKELEVEL CFLAGS CPPFLAGS LDFLAGS
    # --disable-tcl: no Tcl extension (the generator still needs tclsh);
    # --disable-readline: the shell is not built here anyway.
    (cd "$obj" && "$srcdir/sqlite3/configure" --disable-tcl --disable-readline) >"$log" 2>&1 ||
        die_log "$log" "sqlite3 configure failed"
    make -C "$obj" -j"$jobs" sqlite3.c >>"$log" 2>&1 || die_log "$log" "make sqlite3.c failed"
    for f in sqlite3.c sqlite3.h; do
        [ -f "$obj/$f" ] || die_log "$log" "no $f after make sqlite3.c"
        cp "$obj/$f" "$out.tmp/$f"
    done
    mv "$out.tmp" "$out"
    rm -rf "$obj"
    echo "$key" >"$stamp"
    echo "$out"
}

# --- main ------------------------------------------------------------------

[ $# = 1 ] || die "usage: $0 musl|lua|sqlite"
mkdir -p "$srcdir" "$muslout"
exec 9>"$build/.thirdparty.lock"
flock 9

case $1 in
musl)
    fetch_source musl
    build_musl_arch x86_64
    build_musl_arch i386
    ;;
lua)
    fetch_source lua5.4
    ;;
sqlite)
    fetch_source sqlite3
    build_sqlite_amalgamation
    ;;
*)
    die "usage: $0 musl|lua|sqlite"
    ;;
esac
