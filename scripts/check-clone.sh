#!/usr/bin/env bash
# What a user's clone sees: copies this checkout's files (tracked, and untracked ones git does not
# ignore) to a temporary folder with no ../shared beside it, builds the release suite there and runs
# it. Fails on any failed or skipped test: on a machine with a Vulkan driver (lavapipe at least) the
# in-repository reference set (tests/fixtures) must cover everything.
# usage: scripts/check-clone.sh [JOBS]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${1:-$(nproc 2>/dev/null || echo 2)}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vkllm-clone.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/vkllm"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$tmp/vkllm"
cd "$tmp/vkllm"
echo "check-clone: a copy of the checkout in $tmp/vkllm, no ../shared beside it"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs" >"$tmp/build.log" 2>&1 || { tail -n 40 "$tmp/build.log"; exit 1; }
cd build
status=0
env -u VKLLM_FIXTURES -u VKLLM_REQUIRE_FIXTURES ctest --output-on-failure -j "$jobs" 2>&1 | tee "$tmp/ctest.log" || status=$?
if grep -qE '\*\*\*Skipped|Not Run' "$tmp/ctest.log"; then
  echo "check-clone: tests were skipped in a plain clone:"
  grep -E '\*\*\*Skipped|Not Run' "$tmp/ctest.log"
  exit 1
fi
[ "$status" = 0 ] && echo "check-clone: a plain clone passes the release suite with no skipped test"
exit "$status"
