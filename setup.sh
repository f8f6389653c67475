#!/bin/sh
# Set up liblflex on a Debian 12 machine and run it.
#
#   sh setup.sh demo   install what is missing, build, run the demo (lflex demo:
#                      90 seconds of training: a learned-order model learns to reverse words)
#   sh setup.sh test   install what is missing, build, run every test suite
#                      (plain, ASan+UBSan, valgrind, and the MPI tests on
#                      build-test reconfigured with -Dmpi=enabled) and print
#                      "N passed, N failed"
#
# Run as root or as a user with sudo. Build directories: build/ (release
# demo), build-test/, build-asan/.
set -eu
cd "$(dirname "$0")"

mode=${1:-}
case "$mode" in
demo|test) ;;
*) echo "usage: sh setup.sh demo|test" >&2; exit 2 ;;
esac

build_pkgs="meson ninja-build pkg-config gcc g++ libopenblas-dev libyaml-dev libjansson-dev"
test_pkgs="check abigail-tools valgrind python3 python3-rdkit rdkit-data libopenmpi-dev openmpi-bin"

install_missing() {
    missing=""
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    echo "installing:$missing"
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

setup_dir() { # dir, options...
    dir=$1; shift
    if [ -d "$dir" ]; then meson setup --reconfigure "$dir" "$@" >/dev/null; else meson setup "$dir" "$@" >/dev/null; fi
}

if [ "$mode" = demo ]; then
    install_missing $build_pkgs
    setup_dir build -Dtests=false
    ninja -C build >/dev/null
    exec ./build/examples/lflex/lflex demo
fi

install_missing $build_pkgs $test_pkgs
jobs=$(nproc 2>/dev/null || echo 2)
status=0
setup_dir build-test -Dwerror=true -Dmpi=disabled
ninja -C build-test
meson test -C build-test --num-processes "$jobs" --print-errorlogs || status=1
setup_dir build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
ninja -C build-asan
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-asan --num-processes "$jobs" --print-errorlogs --no-suite slow --no-suite install \
    --no-suite python || status=1
meson test -C build-test --setup valgrind --num-processes "$jobs" --print-errorlogs \
    --no-suite slow --no-suite abi --no-suite headers --no-suite install --no-suite cli --no-suite python \
    --no-suite examples || status=1
# MPI (doc/distributed.md): the same build with liblflex-mpi added (an
# incremental build), its tests under mpirun; Open MPI refuses root
# unless told.
setup_dir build-test -Dwerror=true -Dmpi=enabled
ninja -C build-test
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    meson test -C build-test --suite mpi --logbase testlog-mpi --num-processes 1 --print-errorlogs || status=1
python3 tests/count_results.py build-test/meson-logs/testlog.json \
    build-asan/meson-logs/testlog.json build-test/meson-logs/testlog-valgrind.json \
    build-test/meson-logs/testlog-mpi.json || status=1
exit $status
