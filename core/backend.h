/* The backend interface. The core talks to backends only through this header; each backend
 * (backends/cpu, backends/vulkan) defines one `vkl_backend_reg` declared at the bottom. */
#ifndef VKL_BACKEND_H
#define VKL_BACKEND_H

#include "common.h"

typedef enum vkl_device_kind {
    VKL_DEV_CPU,
    VKL_DEV_DISCRETE_GPU,
    VKL_DEV_INTEGRATED_GPU,
    VKL_DEV_VIRTUAL_GPU,
    VKL_DEV_SOFTWARE, /* e.g. lavapipe */
    VKL_DEV_OTHER
} vkl_device_kind;

const char *vkl_device_kind_name(vkl_device_kind k);

typedef struct vkl_device_info {
    char backend[16];  /* "cpu", "vulkan" */
    int index;         /* index within its backend (what --device N selects) */
    char name[256];
    vkl_device_kind kind;
    uint64_t mem_total; /* bytes usable for weights etc. (device-local heap, or host RAM for CPU) */
    uint64_t mem_free;  /* best estimate of free bytes (VK_EXT_memory_budget where available) */
    uint64_t max_alloc; /* largest single allocation */
    bool uma;           /* memory shared with the host */
    char details[2048]; /* multi-line human-readable details for `vkllm devices` */
} vkl_device_info;

typedef struct vkl_backend_reg {
    const char *name;
    /* Fills up to `max` entries; returns the number of devices (>= 0), or -1 with a one-line
     * message when the backend is unusable here (e.g. "no Vulkan loader found"). */
    int (*enumerate)(vkl_device_info *out, int max, vkl_error *err);
} vkl_backend_reg;

extern const vkl_backend_reg vkl_cpu_backend_reg;
extern const vkl_backend_reg vkl_vulkan_backend_reg;

#endif
