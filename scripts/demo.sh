#!/usr/bin/env bash
# The `make demo` tour: what this machine offers, a tiny synthetic model written and inspected,
# then a ~190M-parameter q4_0 model generating 64 tokens on the CPU. Usage: scripts/demo.sh BUILD_DIR
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

if ! has_cmd synth || ! has_cmd run; then
  section "synthetic model"
  echo "(skipped: this vkllm has no 'synth' or 'run' command)"
  exit 0
fi

mkdir -p "$DEMO"
tiny="$DEMO/tiny-q4_0.gguf"
section "synthetic model: vkllm synth --preset tiny --type q4_0 -o $tiny"
"$VKLLM" synth --preset tiny --type q4_0 -o "$tiny"

section "model info: vkllm info $tiny"
"$VKLLM" info "$tiny"

# ~190M parameters (10 layers of 1024, 32000-token vocabulary), about 105 MiB in q4_0. The weights
# are random, so the text is gibberish; the speed is that of a real model of this shape.
model="$DEMO/demo-190m-q4_0.gguf"
synth_args=(--n-embd 1024 --n-layer 10 --n-head 16 --n-head-kv 16 --n-ff 2816 --n-ctx 2048
            --type q4_0 --name vkllm-demo-190m -o "$model")
section "a bigger model: vkllm synth ${synth_args[*]}"
"$VKLLM" synth "${synth_args[@]}"
ls -l "$model"

cpu_args=()
if "$VKLLM" run --help | grep -q -- '-ngl'; then cpu_args=(-ngl 0); fi # keep this step on the CPU
prompt="Once upon a time"
section "CPU generation: vkllm run -m $model -p \"$prompt\" -n 64 --seed 1 ${cpu_args[*]}"
timings="$DEMO/run-cpu.stderr"
if ! "$VKLLM" run -m "$model" -p "$prompt" -n 64 --seed 1 "${cpu_args[@]}" 2>"$timings"; then
  cat "$timings" >&2
  exit 1
fi
cat "$timings"
speed="$(grep -o 'generation: [0-9]* tokens, [0-9.]* tok/s' "$timings" || true)"
threads="$(grep -o '[0-9]* threads' "$timings" || true)"
printf '\n>>> CPU generation speed (%s, %s): %s\n' "$(basename "$model")" "${threads:-? threads}" "${speed:-(not reported)}"

section "done"
