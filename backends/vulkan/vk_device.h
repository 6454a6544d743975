/* Vulkan bring-up: the loader (through volk), the instance (with the validation layer on request),
 * physical-device queries, and a logical device with a compute queue. The Vulkan compute backend
 * builds on vkl_vk_context.
 *
 * Function pointers: volk's globals are loaded per instance (volkLoadInstance), never per device,
 * so device-level calls go through the loader's dispatch and several devices can be used at once. */
#ifndef VKL_VK_DEVICE_H
#define VKL_VK_DEVICE_H

#include <volk.h>

#include "common.h"

/* Optional device capabilities, as queried (`supported`) and as enabled on the device. */
typedef struct vkl_vk_features {
    bool shader_int16;             /* int16 arithmetic in shaders */
    bool shader_float16;           /* fp16 arithmetic in shaders */
    bool shader_int8;              /* int8 arithmetic in shaders */
    bool storage_buffer_16bit;     /* 16-bit types in storage buffers */
    bool storage_buffer_8bit;      /* 8-bit types in storage buffers */
    bool uniform_storage_8bit;     /* 8-bit types in uniform and storage buffers */
    bool subgroup_size_control;    /* VK_EXT_subgroup_size_control / 1.3 */
    bool compute_full_subgroups;   /* (part of subgroup size control) */
    bool integer_dot_product;      /* VK_KHR_shader_integer_dot_product / 1.3 */
    bool memory_budget;            /* VK_EXT_memory_budget */
} vkl_vk_features;

/* Everything `vkllm devices` shows about one physical device, and what device creation needs. */
typedef struct vkl_vk_device_props {
    VkPhysicalDeviceProperties props; /* name, type, ids, apiVersion, driverVersion, limits */
    VkPhysicalDeviceMemoryProperties mem;
    VkDeviceSize heap_budget[VK_MAX_MEMORY_HEAPS]; /* per heap; 0 without VK_EXT_memory_budget */
    VkDeviceSize heap_usage[VK_MAX_MEMORY_HEAPS];
    uint32_t api_version; /* usable version: min(instance, device) */
    char driver_name[VK_MAX_DRIVER_NAME_SIZE];
    char driver_info[VK_MAX_DRIVER_INFO_SIZE];
    uint32_t subgroup_size, min_subgroup_size, max_subgroup_size;
    VkShaderStageFlags subgroup_stages;
    VkSubgroupFeatureFlags subgroup_ops;
    VkDeviceSize max_memory_allocation_size; /* maintenance3 */
    bool int_dot_4x8_packed_accelerated;      /* signed and unsigned 4x8-bit packed dot products */
    bool uma; /* device-local memory is host memory (integrated GPU, CPU device) */
    vkl_vk_features supported;
} vkl_vk_device_props;

typedef struct vkl_vk_context {
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger; /* VK_NULL_HANDLE unless validation is on */
    bool validation_active;             /* VK_LAYER_KHRONOS_validation is enabled */
    uint32_t instance_api_version;

    int device_index; /* index among vkEnumeratePhysicalDevices (what --device N selects) */
    VkPhysicalDevice physical_device;
    vkl_vk_device_props info;
    VkPhysicalDeviceLimits limits; /* = info.props.limits, for short access */
    uint32_t subgroup_size;
    vkl_vk_features enabled;

    VkDevice device;
    VkQueue compute_queue;
    uint32_t compute_family;
    VkQueue transfer_queue; /* VK_NULL_HANDLE when no separate transfer-only family exists */
    uint32_t transfer_family;
    uint32_t timestamp_valid_bits; /* of the compute family; 0: no timestamps */
    /* Bumped whenever a VkBuffer is destroyed: descriptor sets and views cached by handle are
     * stale from then on (a new buffer may get the same handle). */
    uint64_t buffer_generation;
} vkl_vk_context;

/* Loads libvulkan (once per process). -1: "no Vulkan loader found (...)". */
int vkl_vk_load(vkl_error *err);

/* Instance with the validation layer and a counting debug messenger when env VKLLM_VALIDATION=1.
 * Used by vkl_vk_context_create and by enumeration. */
int vkl_vk_instance_create(VkInstance *instance, VkDebugUtilsMessengerEXT *messenger,
                           bool *validation_active, uint32_t *api_version, vkl_error *err);
void vkl_vk_instance_destroy(VkInstance instance, VkDebugUtilsMessengerEXT messenger);

/* Physical devices of an instance; -1 with "Vulkan loader found but no Vulkan device/driver" when
 * there are none. *devs is malloc'ed (free it). */
int vkl_vk_physical_devices(VkInstance instance, VkPhysicalDevice **devs, uint32_t *count,
                            vkl_error *err);

/* Queries everything in vkl_vk_device_props. */
void vkl_vk_query_device(VkPhysicalDevice pd, uint32_t instance_api_version,
                         vkl_vk_device_props *out);

/* Creates instance + logical device for physical device `index`. On failure everything created
 * so far is destroyed and ctx is zeroed. */
int vkl_vk_context_create(vkl_vk_context *ctx, int device_index, vkl_error *err);
void vkl_vk_context_destroy(vkl_vk_context *ctx);

/* Index of a memory type allowed by `type_bits` with all `required` flags (preferring ones that
 * also have `preferred`), or -1. */
int vkl_vk_find_memory_type(const vkl_vk_context *ctx, uint32_t type_bits,
                            VkMemoryPropertyFlags required, VkMemoryPropertyFlags preferred);

/* Warnings and errors the debug messenger has printed in this process (all instances). */
uint32_t vkl_vk_validation_message_count(void);

const char *vkl_vk_result_name(VkResult r);

/* Embedded SPIR-V (generated by cmake/embed_spv.cmake from the shaders directory). */
typedef struct vkl_spirv_blob {
    const char *name;
    const uint32_t *words;
    size_t size; /* bytes */
} vkl_spirv_blob;
extern const vkl_spirv_blob vkl_spirv_blobs[]; /* terminated by {NULL} */
const vkl_spirv_blob *vkl_spirv_find(const char *name);

#endif
