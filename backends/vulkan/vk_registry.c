/* The Vulkan backend's registry entry: device enumeration for `vkllm devices` and device choice. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "vk_backend.h"
#include "vk_device.h"

static vkl_device_kind kind_of(VkPhysicalDeviceType t) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return VKL_DEV_DISCRETE_GPU;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return VKL_DEV_INTEGRATED_GPU;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return VKL_DEV_VIRTUAL_GPU;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return VKL_DEV_SOFTWARE;
    default: return VKL_DEV_OTHER;
    }
}

static const char *vendor_name(uint32_t id) {
    switch (id) {
    case 0x1002: return "AMD";
    case 0x10DE: return "NVIDIA";
    case 0x8086: return "Intel";
    case 0x13B5: return "ARM";
    case 0x5143: return "Qualcomm";
    case 0x1010: return "ImgTec";
    case 0x106B: return "Apple";
    case 0x10005: return "Mesa";
    default: return "unknown vendor";
    }
}

/* Driver versions are vendor-encoded; NVIDIA uses 10.8.8.6 bits, the rest the Vulkan encoding. */
static void fmt_driver_version(char *buf, size_t n, uint32_t vendor, uint32_t v) {
    if (vendor == 0x10DE)
        snprintf(buf, n, "%u.%u.%u.%u", v >> 22, (v >> 14) & 0xff, (v >> 6) & 0xff, v & 0x3f);
    else
        snprintf(buf, n, "%u.%u.%u", VK_API_VERSION_MAJOR(v), VK_API_VERSION_MINOR(v),
                 VK_API_VERSION_PATCH(v));
}

static void fmt_mem_flags(char *buf, size_t n, VkMemoryPropertyFlags f) {
    static const struct {
        VkMemoryPropertyFlags bit;
        const char *name;
    } names[] = {
        {VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, "device-local"},
        {VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT, "host-visible"},
        {VK_MEMORY_PROPERTY_HOST_COHERENT_BIT, "host-coherent"},
        {VK_MEMORY_PROPERTY_HOST_CACHED_BIT, "host-cached"},
        {VK_MEMORY_PROPERTY_LAZILY_ALLOCATED_BIT, "lazily-allocated"},
        {VK_MEMORY_PROPERTY_PROTECTED_BIT, "protected"},
    };
    size_t len = 0;
    buf[0] = 0;
    for (size_t i = 0; i < VKL_ARRAY_LEN(names); i++) {
        if (!(f & names[i].bit)) continue;
        int w = snprintf(buf + len, n - len, "%s%s", len ? "|" : "", names[i].name);
        if (w < 0 || (size_t)w >= n - len) break;
        len += (size_t)w;
    }
    if (!len) snprintf(buf, n, "none");
}

/* Appends one "key: value" line to d->details (silently truncated when full). */
static void VKL_PRINTF(2, 3) detail(vkl_device_info *d, const char *fmt, ...) {
    size_t len = strlen(d->details);
    if (len + 1 >= sizeof d->details) return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(d->details + len, sizeof d->details - len, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= sizeof d->details - len - 1) {
        d->details[len] = 0; /* drop a partial line */
        return;
    }
    strcat(d->details, "\n");
}

static const char *yes_no(bool b) { return b ? "yes" : "no"; }

void vkl_vk_fill_device_info(vkl_device_info *d, int index, const vkl_vk_device_props *p) {
    memset(d, 0, sizeof *d);
    const VkPhysicalDeviceProperties *pr = &p->props;
    const VkPhysicalDeviceLimits *lim = &pr->limits;
    snprintf(d->backend, sizeof d->backend, "vulkan");
    d->index = index;
    snprintf(d->name, sizeof d->name, "%s", pr->deviceName);
    d->kind = kind_of(pr->deviceType);
    d->uma = p->uma;
    d->max_alloc = p->max_memory_allocation_size;
    for (uint32_t h = 0; h < p->mem.memoryHeapCount; h++) {
        if (!(p->mem.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)) continue;
        d->mem_total += p->mem.memoryHeaps[h].size;
        d->mem_free += p->supported.memory_budget && p->heap_budget[h]
                           ? (p->heap_budget[h] > p->heap_usage[h] ? p->heap_budget[h] - p->heap_usage[h] : 0)
                           : p->mem.memoryHeaps[h].size;
    }

    char a[64], b[64];
    detail(d, "type: %s", vkl_device_kind_name(d->kind));
    detail(d, "vendor id: 0x%04x (%s)", pr->vendorID, vendor_name(pr->vendorID));
    detail(d, "device id: 0x%04x", pr->deviceID);
    if (p->driver_name[0]) detail(d, "driver: %s (%s)", p->driver_name, p->driver_info);
    detail(d, "api version: %u.%u.%u", VK_API_VERSION_MAJOR(pr->apiVersion),
           VK_API_VERSION_MINOR(pr->apiVersion), VK_API_VERSION_PATCH(pr->apiVersion));
    fmt_driver_version(a, sizeof a, pr->vendorID, pr->driverVersion);
    detail(d, "driver version: %s", a);
    for (uint32_t h = 0; h < p->mem.memoryHeapCount; h++) {
        const VkMemoryHeap *heap = &p->mem.memoryHeaps[h];
        vkl_fmt_bytes(heap->size, a, sizeof a);
        if (p->supported.memory_budget && p->heap_budget[h]) {
            vkl_fmt_bytes(p->heap_budget[h], b, sizeof b);
            detail(d, "memory heap %u: %s%s, budget %s", h, a,
                   heap->flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT ? ", device-local" : "", b);
        } else {
            detail(d, "memory heap %u: %s%s", h, a,
                   heap->flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT ? ", device-local" : "");
        }
    }
    for (uint32_t t = 0; t < p->mem.memoryTypeCount; t++) {
        char flags[160];
        fmt_mem_flags(flags, sizeof flags, p->mem.memoryTypes[t].propertyFlags);
        detail(d, "memory type %u: heap %u, %s", t, p->mem.memoryTypes[t].heapIndex, flags);
    }
    if (p->min_subgroup_size != p->max_subgroup_size)
        detail(d, "subgroup size: %u (%u..%u)", p->subgroup_size, p->min_subgroup_size,
               p->max_subgroup_size);
    else
        detail(d, "subgroup size: %u", p->subgroup_size);
    detail(d, "fp16 arithmetic: %s", yes_no(p->supported.shader_float16));
    detail(d, "int8 arithmetic: %s", yes_no(p->supported.shader_int8));
    detail(d, "16-bit storage: %s", yes_no(p->supported.storage_buffer_16bit));
    detail(d, "8-bit storage: %s", yes_no(p->supported.storage_buffer_8bit));
    detail(d, "integer dot product: %s",
           !p->supported.integer_dot_product      ? "no"
           : p->int_dot_4x8_packed_accelerated ? "yes (4x8-bit packed accelerated)"
                                               : "yes");
    detail(d, "subgroup size control: %s", yes_no(p->supported.subgroup_size_control));
    detail(d, "max storage buffer range: %s", vkl_fmt_bytes(lim->maxStorageBufferRange, a, sizeof a));
    detail(d, "max memory allocation: %s", vkl_fmt_bytes(p->max_memory_allocation_size, a, sizeof a));
    detail(d, "max compute shared memory: %s",
           vkl_fmt_bytes(lim->maxComputeSharedMemorySize, a, sizeof a));
    detail(d, "max workgroup size: %u x %u x %u", lim->maxComputeWorkGroupSize[0],
           lim->maxComputeWorkGroupSize[1], lim->maxComputeWorkGroupSize[2]);
    detail(d, "max workgroup invocations: %u", lim->maxComputeWorkGroupInvocations);
    detail(d, "min storage buffer offset alignment: %llu",
           (unsigned long long)lim->minStorageBufferOffsetAlignment);
    detail(d, "uma: %s", yes_no(p->uma));
}

/* VKLLM_SPLIT_SELF=N (2..8): each physical device is listed N times, as logical devices
 * k*N .. k*N+N-1, each opening its own VkDevice with 1/N of the memory as its budget, so that
 * multi-device splits can be tested on one device (lavapipe). */
static int split_self(void) {
    const char *s = getenv("VKLLM_SPLIT_SELF");
    if (!s || !*s) return 1;
    char *end;
    long n = strtol(s, &end, 10);
    return *end == 0 && n >= 1 && n <= 8 ? (int)n : 1;
}

static void make_logical(vkl_device_info *d, int logical, int n_split) {
    d->index = logical;
    if (n_split < 2) return;
    d->mem_total /= (uint64_t)n_split;
    d->mem_free /= (uint64_t)n_split;
    size_t len = strlen(d->name);
    snprintf(d->name + len, sizeof d->name - len, " [%d/%d]", logical % n_split + 1, n_split);
    char line[96];
    snprintf(line, sizeof line, "logical device %d of %d on this physical device (VKLLM_SPLIT_SELF)",
             logical % n_split + 1, n_split);
    detail(d, "%s", line);
}

static int vk_enumerate(vkl_device_info *out, int max, vkl_error *err) {
    VkInstance inst;
    VkDebugUtilsMessengerEXT messenger;
    bool validation;
    uint32_t api;
    if (vkl_vk_instance_create(&inst, &messenger, &validation, &api, err)) return -1;
    VkPhysicalDevice *devs = NULL;
    uint32_t n = 0;
    if (vkl_vk_physical_devices(inst, &devs, &n, err)) {
        vkl_vk_instance_destroy(inst, messenger);
        return -1;
    }
    vkl_vk_device_props *props = vkl_malloc(sizeof *props, err);
    if (!props) {
        free(devs);
        vkl_vk_instance_destroy(inst, messenger);
        return -1;
    }
    int split = split_self();
    for (uint32_t i = 0; i < n && (int)i * split < max; i++) {
        vkl_vk_query_device(devs[i], api, props);
        for (int k = 0; k < split && (int)i * split + k < max; k++) {
            int logical = (int)i * split + k;
            vkl_vk_fill_device_info(&out[logical], (int)i, props);
            make_logical(&out[logical], logical, split);
        }
    }
    free(props);
    free(devs);
    vkl_vk_instance_destroy(inst, messenger);
    return (int)n * split;
}

static vkl_backend *vk_open(int index, const vkl_backend_config *cfg, vkl_error *err) {
    int split = split_self();
    if (index < 0) {
        vkl_fail(err, "no Vulkan device %d", index);
        return NULL;
    }
    vkl_backend *be = vkl_vk_backend_open(index / split, cfg, err);
    if (be) make_logical(&be->info, index, split);
    return be;
}

const vkl_backend_reg vkl_vulkan_backend_reg = {.name = "vulkan", .enumerate = vk_enumerate, .open = vk_open};
