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
