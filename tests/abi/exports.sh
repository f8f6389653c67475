#!/bin/sh
# The exported symbols of the shared library, the names in the linker version
# script and the LFLEX_API declarations of the public headers must be the
# same three lists.
set -eu
lib=$1; map=$2; incdir=$3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBR]$/ && $3 !~ /^LFLEX_/ {sub(/@.*/, "", $3); print $3}' | sort -u > "$tmp/exported"
sed -n '/global:/,/local:/p' "$map" | grep -o 'lflex_[a-z0-9_]*' | sort -u > "$tmp/map"
cat "$incdir"/*.h | tr '\n' ' ' | grep -o 'LFLEX_API[^;{]*(' | grep -o 'lflex_[a-z0-9_]*[[:space:]]*($' \
    | tr -d ' (' | sort -u > "$tmp/declared"
status=0
if ! diff -u "$tmp/map" "$tmp/exported" > "$tmp/d1"; then
    echo "# exported symbols differ from lib/lflex.map:"; sed "s/^/# /" "$tmp/d1"; status=1
fi
if ! diff -u "$tmp/declared" "$tmp/map" > "$tmp/d2"; then
    echo "# LFLEX_API declarations differ from lib/lflex.map:"; sed "s/^/# /" "$tmp/d2"; status=1
fi
n=$(wc -l < "$tmp/exported")
echo "1..1"
if [ "$status" = 0 ]; then echo "ok 1 - $n exported symbols agree with the map and the headers"; else echo "not ok 1 - export lists disagree"; fi
exit $status
