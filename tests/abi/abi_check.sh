#!/bin/sh
# Compare the ABI of the built library with the committed baseline. Additions
# are fine; any incompatible change (a removed or changed function or type)
# fails. Regenerate the baseline only when the major version changes:
#   abidw --headers-dir include/lflex --out-file tests/abi/lflex.abi build/lib/liblflex.so
set -u
lib=$1; baseline=$2; incdir=$3
echo "1..1"
if ! command -v abidiff >/dev/null 2>&1; then
    echo "ok 1 # SKIP abidiff (abigail-tools) is not installed"; exit 0
fi
out=$(abidiff --headers-dir2 "$incdir" --no-added-syms "$baseline" "$lib" 2>&1); rc=$?
# abidiff's exit status is a bit field: 4 = ABI change, 8 = incompatible change, 1/2 = errors
if [ $((rc & 8)) -ne 0 ] || [ $((rc & 3)) -ne 0 ]; then
    echo "$out" | sed 's/^/# /'
    echo "not ok 1 - incompatible ABI change against $baseline (abidiff status $rc)"; exit 1
fi
echo "ok 1 - no incompatible ABI change (abidiff status $rc)"
