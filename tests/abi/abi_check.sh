#!/bin/sh
# The ABI of the public header against the committed baseline.
#
#   abi_check.sh LIB BASELINE INCDIR [SUPPRESSIONS]    check (a TAP test)
#   abi_check.sh --write LIB BASELINE INCDIR           write BASELINE from LIB
#
# Both sides are the same kind of dump: abidw with --headers-dir INCDIR and
# --drop-private-types, so only the exported functions and the types of the
# public headers are in it (the handles are opaque: the library's own
# structs are declaration-only). Comparing two such dumps sees every change
# of a public type, also through typedefs from system headers (uint64_t ->
# uint32_t), which abidiff --headers-dir2 against the library filters out.
#
# Any change that abidiff reports fails: a removed function (status bit 8)
# and a changed function, enum value, struct layout, parameter, return or
# callback type (bit 4). Added functions, and enumerators added at the end
# of an enum, pass. A change that is reviewed and intended without a new
# major version goes into SUPPRESSIONS (tests/abi/lflex.abignore), with a
# comment saying why. When the ABI changes on purpose (a new major version),
# write a new baseline from a release build instead (doc/building.md):
#   meson setup build && ninja -C build
#   sh tests/abi/abi_check.sh --write build/lib/liblflex.so tests/abi/lflex.abi include/lflex
set -u
write=false
if [ "${1:-}" = --write ]; then write=true; shift; fi
if [ $# -lt 3 ]; then
    echo "usage: $0 [--write] LIB BASELINE INCDIR [SUPPRESSIONS]" >&2; exit 2
fi
lib=$1; baseline=$2; incdir=$3; suppr=${4:-}

dump() { # lib, out
    abidw --headers-dir "$incdir" --drop-private-types --drop-undefined-syms \
        --no-corpus-path --no-comp-dir-path --short-locs --no-elf-needed --out-file "$2" "$1"
}

if $write; then
    dump "$lib" "$baseline" || exit 1
    n=$(grep -c '<function-decl ' "$baseline")
    echo "wrote $baseline: $n functions"
    [ "$n" -gt 0 ] || { echo "$lib has no debug information: build it with debug=true" >&2; exit 1; }
    exit 0
fi

echo "1..1"
if ! command -v abidw >/dev/null 2>&1 || ! command -v abidiff >/dev/null 2>&1; then
    echo "ok 1 # SKIP abidw/abidiff (abigail-tools) are not installed"; exit 0
fi
if ! readelf -S "$lib" 2>/dev/null | grep -q '\.debug_info'; then
    echo "ok 1 # SKIP $lib has no debug information (debug=false)"; exit 0
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if ! dump "$lib" "$tmp/current.abi" > "$tmp/abidw.log" 2>&1; then
    sed 's/^/# /' "$tmp/abidw.log"
    echo "not ok 1 - abidw could not read $lib"; exit 1
fi
set -- --no-default-suppression --no-added-syms
[ -n "$suppr" ] && set -- "$@" --suppressions "$suppr"
abidiff "$@" "$baseline" "$tmp/current.abi" > "$tmp/abidiff.log" 2>&1; rc=$?
# abidiff's status is a bit field: 1 error, 2 usage error, 4 ABI change,
# 8 incompatible ABI change. Every bit fails.
if [ "$rc" -ne 0 ]; then
    sed 's/^/# /' "$tmp/abidiff.log"
    echo "# To accept an intended change see tests/abi/abi_check.sh (suppression or new baseline)."
    echo "not ok 1 - ABI change against $baseline (abidiff status $rc)"; exit 1
fi
echo "ok 1 - the public ABI matches $baseline (abidiff status 0)"
