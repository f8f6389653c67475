#!/bin/sh
# The ABI check must fail on an incompatible change. Each case copies the
# public headers, changes lflex.h (an enum value, a struct field, a
# parameter, a return type, a callback, a removed function), builds a small
# shared library from the changed header -- every LFLEX_API function defined
# as a stub, linked with the real version script and soname -- and runs
# abi_check.sh on it against the committed baseline. The unchanged header
# must pass (so a failure below is the change and nothing else), and so
# must the compatible changes (an added function, an enumerator added at the
# end, a change named in a suppression file).
#
#   abi_breaks.sh CHECK_SCRIPT BASELINE INCDIR MAP SUPPRESSIONS
# with the C compiler in $CC (meson passes its own).
set -u
check=$1; baseline=$2; incdir=$3; map=$4; suppr=$5
cc=${CC:-cc}
if ! command -v abidw >/dev/null 2>&1 || ! command -v abidiff >/dev/null 2>&1; then
    echo "1..0 # SKIP abidw/abidiff (abigail-tools) are not installed"; exit 0
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
attr='__attribute__((visibility("default")))'

# build CASE from the public headers changed by the sed script $2;
# prints nothing, returns non-zero when the change did not apply or the
# stub does not build
build() {
    d="$tmp/$1"
    mkdir -p "$d/lflex"
    cp "$incdir"/*.h "$d/lflex/"
    sed -e "$2" "$incdir/lflex.h" > "$d/lflex/lflex.h"
    if [ "$1" != unchanged ] && cmp -s "$incdir/lflex.h" "$d/lflex/lflex.h"; then
        echo "# the change of case $1 did not apply to lflex.h"; return 1
    fi
    # one definition per declaration that carries LFLEX_API (expanded by the
    # preprocessor to the visibility attribute)
    { echo '#include <lflex/lflex.h>'
      $cc -E -P -I"$d" "$d/lflex/lflex.h" | tr '\n' ' ' | tr ';' '\n' | grep -F "$attr" \
        | sed "s/.*__attribute__((visibility(\"default\")))/$attr/" \
        | awk '{ if ($0 ~ /\)\)\)[ ]*void[ ]/) print $0 " {}"; else print $0 " { return 0; }" }'
    } > "$d/stub.c"
    n=$(grep -c "$attr" "$d/stub.c")
    if [ "$n" -lt 1 ]; then echo "# case $1: no LFLEX_API declaration found"; return 1; fi
    $cc -std=gnu11 -g -O0 -fPIC -shared -I"$d" -Wl,--version-script="$map" -Wl,-soname,liblflex.so.0 \
        -o "$d/liblflex.so" "$d/stub.c" > "$d/cc.log" 2>&1 || { sed 's/^/# /' "$d/cc.log"; return 1; }
}

i=0
status=0
# expect pass|fail, case name, sed script[, suppression file]
expect() {
    i=$((i + 1))
    want=$1; name=$2; script=$3; sup=${4:-$suppr}
    if ! build "$name" "$script"; then
        echo "not ok $i - $name: could not build the stub library"; status=1; return
    fi
    sh "$check" "$tmp/$name/liblflex.so" "$baseline" "$tmp/$name/lflex" "$sup" > "$tmp/$name/check.log" 2>&1
    got=$([ $? -eq 0 ] && echo pass || echo fail)
    if [ "$got" = "$want" ]; then
        echo "ok $i - $name: the check says $got"
    else
        sed 's/^/# /' "$tmp/$name/check.log"
        echo "not ok $i - $name: the check says $got, expected $want"; status=1
    fi
}

echo "1..12"
expect pass unchanged ''
expect fail enum_value 's/LFLEX_PROP_STEP = 4,/LFLEX_PROP_STEP = 40,/'
expect fail struct_field_type 's/uint64_t step; /uint32_t step; /'
expect fail struct_field_added 's/uint64_t tokens; /uint64_t tokens; int extra; /'
expect fail struct_field_order '/double loss; /d; s/double unmask_loss; /double unmask_loss; double loss; /'
expect fail parameter_type 's/lflex_model_set_threads(lflex_model_t \*m, int n_threads)/lflex_model_set_threads(lflex_model_t *m, int64_t n_threads)/'
expect fail parameter_added 's/lflex_sampler_set_seed(lflex_sampler_t \*s, uint64_t seed)/lflex_sampler_set_seed(lflex_sampler_t *s, uint64_t seed, int flags)/'
expect fail return_type 's/LFLEX_API uint32_t lflex_version_number/LFLEX_API uint64_t lflex_version_number/'
expect fail callback_type 's/(\*lflex_progress_fn)(void \*user, uint64_t done, uint64_t total)/(*lflex_progress_fn)(void *user, uint32_t done, uint64_t total)/'
expect fail function_removed '/LFLEX_API const char \*lflex_strerror(int status);/d'
expect pass function_and_enumerator_added 's/^LFLEX_API void lflex_clear_error(void);/LFLEX_API void lflex_clear_error(void); LFLEX_API int lflex_abi_test_added(int x);/; s/LFLEX_PROP_LAST_FLOPS = 7 /LFLEX_PROP_LAST_FLOPS = 7, LFLEX_PROP_ABI_TEST_ADDED = 8 /'
cat > "$tmp/reviewed.abignore" <<'EOF'
[suppress_type]
  name = lflex_train_stats
  has_data_member_inserted_at = end
EOF
expect pass struct_field_added_and_suppressed 's/uint64_t tokens; /uint64_t tokens; int extra; /' "$tmp/reviewed.abignore"
exit $status
