/* Compiles volk (the Vulkan meta-loader, Debian's libvulkan-volk-dev ships its source) into the
 * library: libvulkan is dlopen'ed at run time, so the binary runs, CPU-only, without it. */
#include <volk.c>
