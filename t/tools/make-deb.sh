#!/bin/sh
# Builds the Debian package (debian/) with dpkg-buildpackage, in a copy of the
# tree under $1 (default build-deb), because dpkg-buildpackage writes its
# results to the parent of the source directory: here that is $1, not the
# directory above the checkout. Prints the path of the .deb.
#   sh t/tools/make-deb.sh [OUTDIR]
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-build-deb}
case $OUT in /*) ;; *) OUT="$SRC/$OUT" ;; esac

rm -rf "$OUT/src"
mkdir -p "$OUT/src"
rm -f "$OUT"/fastpop_* "$OUT"/fastpop-dbgsym_*
# The tree without build directories or git metadata.
tar -C "$SRC" --exclude='./build*' --exclude='./.git' --exclude='./Testing' -cf - . |
    tar -C "$OUT/src" -xf -
cd "$OUT/src"
dpkg-buildpackage -b -us -uc -j"$(nproc)" >"$OUT/dpkg-buildpackage.log" 2>&1 || {
    tail -n 60 "$OUT/dpkg-buildpackage.log" >&2
    echo "make-deb: dpkg-buildpackage failed; full log in $OUT/dpkg-buildpackage.log" >&2
    exit 1
}
ls "$OUT"/fastpop_*.deb
