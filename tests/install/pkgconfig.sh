#!/bin/sh
# Install into a staging directory, then build and run a program against the
# installed library the way a user does: with pkg-config only. Also checks the
# installed documentation (share/doc/lflex) and, with the programs, the
# manual page lflex(1).
set -eu
builddir=$1; srcdir=${2:-}; cc=${CC:-cc}
stage=$(mktemp -d); trap 'rm -rf "$stage"' EXIT
[ -n "$srcdir" ] && echo "1..10" || echo "1..4"
meson install -C "$builddir" --destdir "$stage" --no-rebuild --quiet >/dev/null
pcdir=$(dirname "$(find "$stage" -name lflex.pc | head -n 1)")
[ -f "$pcdir/lflex.pc" ] || { echo "not ok 1 - lflex.pc not installed"; exit 1; }
export PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$stage"
cat > "$stage/prog.c" <<'PROG'
#include <lflex/lflex.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    if (lflex_version_number() != LFLEX_VERSION_NUMBER)
        return 1;
    printf("%s %s\n", lflex_version(), lflex_strerror(LFLEX_EINVAL));
    return strcmp(lflex_last_error(), "") != 0;
}
PROG
# shellcheck disable=SC2046
$cc -std=c99 -Wall -Wextra -Werror "$stage/prog.c" -o "$stage/prog" $(pkg-config --cflags --libs lflex)
echo "ok 1 - a program compiles and links with pkg-config --cflags --libs lflex"
libdir=$(pkg-config --variable=libdir lflex)  # already inside the stage (sysroot)
out=$(LD_LIBRARY_PATH="$libdir" "$stage/prog")
case "$out" in
*"invalid argument"*) echo "ok 2 - it runs against the installed library: $out" ;;
*) echo "not ok 2 - unexpected output: $out"; exit 1 ;;
esac
docdir=$(find "$stage" -type d -path '*/share/doc/lflex' | head -n 1)
if [ -n "$docdir" ] && [ -f "$docdir/README.md" ] && [ -f "$docdir/NEWS.md" ] && [ -f "$docdir/cli.md" ]; then
    echo "ok 3 - README.md, NEWS.md and doc/*.md are installed in share/doc/lflex"
else
    echo "not ok 3 - share/doc/lflex lacks README.md, NEWS.md or cli.md"; exit 1
fi
# the Python binding, imported from the installed copy in a clean
# environment (no LFLEX_LIBRARY, no LD_LIBRARY_PATH): it finds the library
# installed with it, builds a small model and generates
if [ -n "${LFLEX_TEST_PYTHON:-}" ]; then
    pkg=$(find "$stage" -type d -path '*-packages/lflex' | head -n 1)
    [ -n "$pkg" ] || { echo "not ok 4 - the Python package is not installed"; exit 1; }
    if out=$(cd "$stage" && env -i PATH=/usr/bin:/bin PYTHONPATH="$(dirname "$pkg")" PYTHONDONTWRITEBYTECODE=1 \
             "$LFLEX_TEST_PYTHON" -c '
import sys, lflex, lflex._capi as c
stage = sys.argv[1]
assert lflex.__file__.startswith(stage), lflex.__file__
assert c.lib._name.startswith(stage), c.lib._name
with lflex.Model({"model": {"d_model": 16, "n_heads": 2, "n_layers": 1, "max_len": 8},
                  "vocab": {"tokens": "a b c"}}) as m:
    m.train_step([m.encode("a b c <eos>")])
    with lflex.Sampler(m, steps=8, seed=1) as s:
        print(lflex.library_version(), repr(m.decode(s.generate())))
' "$stage" 2>&1); then
        echo "ok 4 - the installed Python package loads its installed library and generates: $out"
    else
        echo "not ok 4 - the installed Python package failed: $out"; exit 1
    fi
else
    echo "ok 4 # SKIP the Python binding is not installed (-Dpython=disabled or no Python)"
fi
[ -n "$srcdir" ] || exit 0

# the embedding example, built the same way, on a checkpoint made by the
# installed lflex program
# shellcheck disable=SC2046
$cc -std=c99 -Wall -Wextra -Werror "$srcdir/examples/embed/embed.c" -o "$stage/embed" $(pkg-config --cflags --libs lflex)
echo "ok 5 - examples/embed/embed.c builds against the installed library"
bin=$(find "$stage" -type f -name lflex -perm -u+x | head -n 1)
printf 'a b a\na a b\n' > "$stage/data.txt"
printf 'model: {d_model: 16, n_heads: 2, n_layers: 1, max_len: 8}\ndata: {train: data.txt}\nrun: {steps: 2, batch_size: 2, out: run}\n' > "$stage/tiny.yaml"
if (cd "$stage" && LD_LIBRARY_PATH="$libdir" "$bin" train tiny.yaml --quiet 2>/dev/null) &&
   out=$(LD_LIBRARY_PATH="$libdir" "$stage/embed" "$stage/run/checkpoint.safetensors") &&
   [ "$(echo "$out" | wc -l)" -eq 4 ] && echo "$out" | grep -q "insert rate"; then
    echo "ok 6 - the installed lflex trains a checkpoint; embed loads it, queries rates and generates"
else
    echo "not ok 6 - the embed example failed: $out"; exit 1
fi

# the manual page: installed, renders without a warning, names every long
# option of every command's --help
man1=$(find "$stage" -type f -path '*/man1/lflex.1' | head -n 1)
[ -n "$man1" ] || { echo "not ok 7 - share/man/man1/lflex.1 not installed"; exit 1; }
if command -v groff >/dev/null 2>&1; then
    warn=$(groff -man -ww -z "$man1" 2>&1) || { echo "not ok 7 - groff failed on lflex.1: $warn"; exit 1; }
    if [ -n "$warn" ]; then echo "not ok 7 - lflex.1 renders with warnings: $warn"; exit 1; fi
    echo "ok 7 - lflex.1 is installed and renders without warnings"
else
    echo "ok 7 # SKIP groff not installed; lflex.1 is installed"
fi
missing=
page=$(sed 's/\\-/-/g' "$man1")
for cmd in train sample eval order rates export plot demo version; do
    grep -q "^\.SS \"lflex $cmd" "$man1" || missing="$missing $cmd"
    for opt in $(LD_LIBRARY_PATH="$libdir" "$bin" "$cmd" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
        printf '%s\n' "$page" | grep -qE -- "$opt([^a-z-]|$)" || missing="$missing $cmd:$opt"
    done
done
if [ -z "$missing" ]; then
    echo "ok 8 - lflex.1 has a section for every command and names every option of their --help"
else
    echo "not ok 8 - lflex.1 lacks:$missing"; exit 1
fi

# the installed lflex runs as installed: its run path finds liblflex with no
# LD_LIBRARY_PATH (the staged copy must load the staged library, not any
# other one)
if out=$(cd / && env -u LD_LIBRARY_PATH "$bin" --version 2>&1) && echo "$out" | grep -q '^lflex ' &&
   env -u LD_LIBRARY_PATH LD_TRACE_LOADED_OBJECTS=1 "$bin" | grep 'liblflex\.so' | grep -qF "$stage"; then
    echo "ok 9 - the installed lflex runs without LD_LIBRARY_PATH: $out"
else
    echo "not ok 9 - the installed lflex does not run without LD_LIBRARY_PATH: $out"; exit 1
fi

# lflex plot of the installed program finds the script installed with it
# (share/lflex/lflex-plot.py, through the path from bin/) and draws the run
# trained above
if /usr/bin/python3 -c 'import matplotlib' 2> /dev/null; then
    if out=$(cd "$stage" && env -u LD_LIBRARY_PATH LFLEX_PYTHON=/usr/bin/python3 MPLCONFIGDIR="$stage/mpl" \
             "$bin" plot run --text 'a b' 2>&1) && [ -s "$stage/run/plots/loss.png" ] && [ -s "$stage/run/plots/order.png" ]; then
        echo "ok 10 - the installed lflex plot finds its script and writes the PNG files"
    else
        echo "not ok 10 - the installed lflex plot failed: $out"; exit 1
    fi
else
    echo "ok 10 # SKIP /usr/bin/python3 has no matplotlib"
fi
