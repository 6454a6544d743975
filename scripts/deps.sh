#!/usr/bin/env bash
# Checks the build dependencies; installs the missing ones with apt-get when run as root,
# otherwise prints the exact apt-get line to run.
set -euo pipefail
PKGS="cmake make gcc clang libvulkan-dev libvulkan-volk-dev glslang-tools spirv-tools mesa-vulkan-drivers vulkan-validationlayers vulkan-tools"
missing=()
have() { command -v "$1" >/dev/null 2>&1; }
have cmake || missing+=(cmake)
have gcc || missing+=(gcc)
have clang || missing+=(clang)
have glslangValidator || missing+=(glslang-tools)
have spirv-val || missing+=(spirv-tools)
have vulkaninfo || missing+=(vulkan-tools)
[ -f /usr/include/vulkan/vulkan.h ] || missing+=(libvulkan-dev)
[ -f /usr/include/volk.h ] || missing+=(libvulkan-volk-dev)
ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || missing+=(mesa-vulkan-drivers)
ls /usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json >/dev/null 2>&1 || missing+=(vulkan-validationlayers)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
else
  echo "deps: missing ${missing[*]}; run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y $PKGS" >&2
  exit 1
fi
