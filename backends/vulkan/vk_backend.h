/* The Vulkan compute backend behind the backend interface (core/backend.h). */
#ifndef VKL_VK_BACKEND_H
#define VKL_VK_BACKEND_H

#include "backend.h"
#include "vk_device.h"

/* Its registration (vk_registry.c), listed in backends/registry.c. */
extern const vkl_backend_reg vkl_vulkan_backend_reg;

/* Opens Vulkan device `index` (vkl_vulkan_backend_reg.open). */
vkl_backend *vkl_vk_backend_open(int index, const vkl_backend_config *cfg, vkl_error *err);

/* Fills the device description (vk_registry.c; shared with enumeration). */
void vkl_vk_fill_device_info(vkl_device_info *d, int index, const vkl_vk_device_props *p);

/* The device context of an open Vulkan backend. */
vkl_vk_context *vkl_vk_backend_context(vkl_backend *be);
/* The backend's read_bandwidth op (vk_bandwidth.c). */
int vkl_vk_read_bandwidth(vkl_backend *be, size_t bytes, double *bytes_per_s, vkl_error *err);

#endif
