#include "backend.h"

const char *vkl_device_kind_name(vkl_device_kind k) {
    switch (k) {
    case VKL_DEV_CPU: return "cpu";
    case VKL_DEV_DISCRETE_GPU: return "discrete gpu";
    case VKL_DEV_INTEGRATED_GPU: return "integrated gpu";
    case VKL_DEV_VIRTUAL_GPU: return "virtual gpu";
    case VKL_DEV_SOFTWARE: return "software";
    case VKL_DEV_OTHER: break;
    }
    return "other";
}

const vkl_backend_reg *vkl_backend_host(void) {
    for (const vkl_backend_entry *e = vkl_backend_registry; e->reg; e++)
        if (e->role == VKL_BACKEND_HOST) return e->reg;
    return NULL;
}

const vkl_backend_reg *vkl_backend_offload(void) {
    const vkl_backend_reg *first = NULL;
    int n = 0;
    for (const vkl_backend_entry *e = vkl_backend_registry; e->reg; e++) n += e->role == VKL_BACKEND_OFFLOAD;
    for (const vkl_backend_entry *e = vkl_backend_registry; e->reg; e++) {
        if (e->role != VKL_BACKEND_OFFLOAD) continue;
        if (!first) first = e->reg;
        vkl_error err;
        if (n == 1 || e->reg->enumerate(NULL, 0, &err) > 0) return e->reg; /* only one: no probe */
    }
    return first;
}
