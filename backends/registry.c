/* The backends built into the library: the one place that names them. The core reaches them only
 * through this list (core/backend.h); a new backend is its folder plus one line here. */
#include "backend.h"
#include "cpu/cpu_backend.h"
#include "vulkan/vk_backend.h"

const vkl_backend_entry vkl_backend_registry[] = {
    {&vkl_cpu_backend_reg, VKL_BACKEND_HOST},
    {&vkl_vulkan_backend_reg, VKL_BACKEND_OFFLOAD},
    {NULL, VKL_BACKEND_HOST},
};
