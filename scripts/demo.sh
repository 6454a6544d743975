#!/usr/bin/env bash
# The `make demo` tour: what this machine offers, then (where the CLI has them) a synthetic model
# written and inspected. Usage: scripts/demo.sh BUILD_DIR
set -euo pipefail

BUILD="${1:-build}"
VKLLM="$BUILD/bin/vkllm"
DEMO="$BUILD/demo"

if [ ! -x "$VKLLM" ]; then
  echo "demo: $VKLLM not found; build first (make build, or cmake --build $BUILD)" >&2
  exit 1
fi

section() { printf '\n==== %s ====\n' "$*"; }
HELP="$("$VKLLM" --help)"
has_cmd() { grep -qE "^  $1 " <<<"$HELP"; }

section "devices: vkllm devices"
"$VKLLM" devices

if has_cmd synth; then
  mkdir -p "$DEMO"
  model="$DEMO/tiny-q4_0.gguf"
  section "synthetic model: vkllm synth --preset tiny --type q4_0 -o $model"
  "$VKLLM" synth --preset tiny --type q4_0 -o "$model"

  section "model info: vkllm info $model"
  "$VKLLM" info "$model"
else
  section "synthetic model"
  echo "(skipped: this vkllm has no 'synth' command yet)"
fi

section "done"
