#!/usr/bin/env bash
# The installed library as a user gets it: installs BUILD_DIR into a temporary prefix, builds
# examples/greedy.c against it with pkg-config (the shared library) and against the static
# archive, and runs both on the in-repository model.
# usage: scripts/check-install.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: scripts/check-install.sh BUILD_DIR}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vkllm-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(dirname "$(find "$prefix" -name vkllm.pc -path '*pkgconfig*' | head -n 1)")/..
for f in "$prefix/bin/vkllm" "$prefix/include/vkllm.h" "$libdir/libvkllm.a" "$libdir/pkgconfig/vkllm.pc"; do
  [ -e "$f" ] || { echo "check-install: $f was not installed"; exit 1; }
done
soname=$(objdump -p "$libdir/libvkllm.so" | awk '/SONAME/ {print $2}')
[ "$soname" = libvkllm.so.0 ] || { echo "check-install: soname '$soname', expected libvkllm.so.0"; exit 1; }
export PKG_CONFIG_PATH="$libdir/pkgconfig"
# shellcheck disable=SC2046 # pkg-config's output is a list of words
cc -std=c11 -Wall -Wextra -Werror examples/greedy.c $(pkg-config --cflags --libs vkllm) -o "$tmp/greedy"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror examples/greedy.c $(pkg-config --cflags vkllm) "$libdir/libvkllm.a" \
  $(pkg-config --static --libs-only-l vkllm | sed 's/-lvkllm//') -o "$tmp/greedy-static"
model=tests/fixtures/models/mini-q8_0.gguf
shared_out=$(LD_LIBRARY_PATH="$libdir" "$tmp/greedy" "$model" "Once upon a time" 16)
static_out=$("$tmp/greedy-static" "$model" "Once upon a time" 16)
case "$shared_out" in "Once upon a time"?*) ;; *) echo "check-install: unexpected output: $shared_out"; exit 1 ;; esac
[ "$shared_out" = "$static_out" ] || { echo "check-install: shared and static builds differ"; exit 1; }
echo "check-install: examples/greedy.c built with pkg-config against $prefix, shared and static, same greedy text"
