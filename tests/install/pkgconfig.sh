#!/bin/sh
# Install into a staging directory, then build and run a program against the
# installed library the way a user does: with pkg-config only.
set -eu
builddir=$1; cc=${CC:-cc}
stage=$(mktemp -d); trap 'rm -rf "$stage"' EXIT
echo "1..2"
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
