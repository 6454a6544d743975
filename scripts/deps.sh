#!/usr/bin/env bash
# Checks the build dependencies; installs the missing ones with apt-get when run as root,
# otherwise prints the exact apt-get line to run.
set -euo pipefail
PKGS="cmake make gcc clang pkg-config libvulkan-dev libvulkan-volk-dev libpcre2-dev glslang-tools spirv-tools mesa-vulkan-drivers vulkan-validationlayers vulkan-tools nettle-dev libedit-dev libcjson-dev"
missing=()
have() { command -v "$1" >/dev/null 2>&1; }
# `make fuzz` needs libFuzzer: clang -fsanitize=fuzzer must link. Debian 12 ships it in
# libclang-rt-14-dev, a separate package (named after clang's major version).
clang_rt_pkg() { echo "libclang-rt-$(clang -dumpversion 2>/dev/null | cut -d. -f1)-dev"; }
fuzzer_links() {
  local d rc
  d=$(mktemp -d) || return 1
  printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }\n' >"$d/f.c"
  clang -fsanitize=fuzzer "$d/f.c" -o "$d/f" >/dev/null 2>&1
  rc=$?
  rm -rf "$d"
  return $rc
}
have cmake || missing+=(cmake)
have gcc || missing+=(gcc)
have pkg-config || missing+=(pkg-config)
have clang || missing+=(clang)
have clang && ! fuzzer_links && missing+=("$(clang_rt_pkg)")
have glslangValidator || missing+=(glslang-tools)
have spirv-val || missing+=(spirv-tools)
have vulkaninfo || missing+=(vulkan-tools)
[ -f /usr/include/vulkan/vulkan.h ] || missing+=(libvulkan-dev)
[ -f /usr/include/volk.h ] || missing+=(libvulkan-volk-dev)
[ -f /usr/include/pcre2.h ] || missing+=(libpcre2-dev)
[ -f /usr/include/nettle/sha2.h ] || missing+=(nettle-dev)
[ -f /usr/include/editline/readline.h ] || missing+=(libedit-dev) # line editing in `vkllm chat`
[ -f /usr/include/cjson/cJSON.h ] || missing+=(libcjson-dev)        # /save and /load in `vkllm chat`
ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || missing+=(mesa-vulkan-drivers)
ls /usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json >/dev/null 2>&1 || missing+=(vulkan-validationlayers)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
  fuzzer_links || apt-get install -y -qq --no-install-recommends "$(clang_rt_pkg)" >/dev/null
else
  echo "deps: missing ${missing[*]}; run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y $PKGS${missing[*]/#/ }" >&2
  exit 1
fi
