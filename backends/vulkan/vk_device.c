#include "vk_device.h"

#include <pthread.h>
#ifdef VKLLM_SANITIZE
#include <dlfcn.h>
#include <link.h>
#endif
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VALIDATION_LAYER "VK_LAYER_KHRONOS_validation"

const char *vkl_vk_result_name(VkResult r) {
    switch (r) {
#define R(x) \
    case x: return #x;
        R(VK_SUCCESS)
        R(VK_NOT_READY)
        R(VK_TIMEOUT)
        R(VK_INCOMPLETE)
        R(VK_ERROR_OUT_OF_HOST_MEMORY)
        R(VK_ERROR_OUT_OF_DEVICE_MEMORY)
        R(VK_ERROR_INITIALIZATION_FAILED)
        R(VK_ERROR_DEVICE_LOST)
        R(VK_ERROR_MEMORY_MAP_FAILED)
        R(VK_ERROR_LAYER_NOT_PRESENT)
        R(VK_ERROR_EXTENSION_NOT_PRESENT)
        R(VK_ERROR_FEATURE_NOT_PRESENT)
        R(VK_ERROR_INCOMPATIBLE_DRIVER)
        R(VK_ERROR_TOO_MANY_OBJECTS)
        R(VK_ERROR_FORMAT_NOT_SUPPORTED)
        R(VK_ERROR_FRAGMENTED_POOL)
        R(VK_ERROR_OUT_OF_POOL_MEMORY)
        R(VK_ERROR_INVALID_EXTERNAL_HANDLE)
        R(VK_ERROR_FRAGMENTATION)
        R(VK_ERROR_UNKNOWN)
#undef R
    default: return "VK_ERROR_(unlisted)";
    }
}

/* ---- loader ------------------------------------------------------------------------------- */

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static VkResult load_result = VK_ERROR_INITIALIZATION_FAILED;

static void load_loader(void) { load_result = volkInitialize(); }

int vkl_vk_load(vkl_error *err) {
    pthread_once(&load_once, load_loader);
    if (load_result != VK_SUCCESS)
        return vkl_fail(err, "no Vulkan loader found (install libvulkan1 and a driver, e.g. "
                             "mesa-vulkan-drivers)");
    return 0;
}

/* ---- validation --------------------------------------------------------------------------- */

static atomic_uint validation_messages;

uint32_t vkl_vk_validation_message_count(void) { return atomic_load(&validation_messages); }

static VKAPI_ATTR VkBool32 VKAPI_CALL debug_callback(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                     VkDebugUtilsMessageTypeFlagsEXT types,
                                                     const VkDebugUtilsMessengerCallbackDataEXT *data,
                                                     void *user) {
    (void)user;
    bool error = severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
    if (!error && !(severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT)) return VK_FALSE;
    /* The loader's own messages ("layer forced enabled due to env var", which is how ctest turns
     * validation on; "found no drivers") are about the environment, not about our API use, and
     * surface as VkResult errors anyway; VK_LOADER_DEBUG=error,warn shows them. */
    if (types == VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT && data && data->pMessageIdName &&
        !strcmp(data->pMessageIdName, "Loader Message"))
        return VK_FALSE;
    atomic_fetch_add(&validation_messages, 1);
    fprintf(stderr, "vulkan %s: %s\n", error ? "error" : "warning",
            data && data->pMessage ? data->pMessage : "(no message)");
    return VK_FALSE; /* never abort the call that triggered the message */
}

static bool validation_requested(void) {
    const char *v = getenv("VKLLM_VALIDATION");
    return v && *v && strcmp(v, "0") != 0;
}

/* ---- instance ----------------------------------------------------------------------------- */

#ifdef VKLLM_SANITIZE
/* Sanitizer builds only: the loader dlcloses drivers and layers when the instance goes away, so
 * LeakSanitizer, which reports at exit, could no longer name their modules and the driver's own
 * leaks (tests/lsan.supp) would show as "<unknown module>". Marking every loaded module
 * RTLD_NODELETE keeps them mapped until exit. */
static int pin_module(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    (void)data;
    if (info->dlpi_name && info->dlpi_name[0]) {
        void *h = dlopen(info->dlpi_name, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
        (void)h; /* deliberately never closed */
    }
    return 0;
}
static void pin_loaded_modules(void) { dl_iterate_phdr(pin_module, NULL); }
#else
static void pin_loaded_modules(void) {}
#endif

static bool has_layer(const char *name) {
    uint32_t n = 0;
    if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0) return false;
    VkLayerProperties *layers = calloc(n, sizeof *layers);
    if (!layers) return false;
    bool found = false;
    if (vkEnumerateInstanceLayerProperties(&n, layers) >= VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++) found = !strcmp(layers[i].layerName, name);
    free(layers);
    return found;
}

/* Whether the loader (layer == NULL) or the given layer provides an instance extension. */
static bool has_instance_ext(const char *layer, const char *name) {
    uint32_t n = 0;
    if (vkEnumerateInstanceExtensionProperties(layer, &n, NULL) != VK_SUCCESS || n == 0)
        return false;
    VkExtensionProperties *exts = calloc(n, sizeof *exts);
    if (!exts) return false;
    bool found = false;
    if (vkEnumerateInstanceExtensionProperties(layer, &n, exts) >= VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++) found = !strcmp(exts[i].extensionName, name);
    free(exts);
    return found;
}

int vkl_vk_instance_create(VkInstance *instance, VkDebugUtilsMessengerEXT *messenger,
                           bool *validation_active, uint32_t *api_version, vkl_error *err) {
    *instance = VK_NULL_HANDLE;
    *messenger = VK_NULL_HANDLE;
    *validation_active = false;
    if (vkl_vk_load(err)) return -1;

    uint32_t loader = volkGetInstanceVersion();
    if (loader < VK_API_VERSION_1_1)
        return vkl_fail(err, "the Vulkan loader supports only API %u.%u; vkllm needs 1.1 or newer",
                        VK_API_VERSION_MAJOR(loader), VK_API_VERSION_MINOR(loader));
    /* Ask for the newest version we know, capped by what the loader supports. */
    uint32_t api = loader >= VK_API_VERSION_1_3   ? VK_API_VERSION_1_3
                   : loader >= VK_API_VERSION_1_2 ? VK_API_VERSION_1_2
                                                  : VK_API_VERSION_1_1;

    const char *layers[1];
    uint32_t n_layers = 0;
    const char *exts[4];
    uint32_t n_exts = 0;
    bool debug_utils = false, validation_features = false;
    if (validation_requested()) {
        if (has_layer(VALIDATION_LAYER)) {
            layers[n_layers++] = VALIDATION_LAYER;
            *validation_active = true;
            validation_features =
                has_instance_ext(VALIDATION_LAYER, VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME);
            if (validation_features) exts[n_exts++] = VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME;
        } else {
            static atomic_flag noted = ATOMIC_FLAG_INIT;
            if (!atomic_flag_test_and_set(&noted))
                fprintf(stderr, "note: VKLLM_VALIDATION is set but %s is not installed "
                                "(package vulkan-validationlayers); running without it\n",
                        VALIDATION_LAYER);
        }
        debug_utils = has_instance_ext(NULL, VK_EXT_DEBUG_UTILS_EXTENSION_NAME) ||
                      (*validation_active &&
                       has_instance_ext(VALIDATION_LAYER, VK_EXT_DEBUG_UTILS_EXTENSION_NAME));
        if (debug_utils) exts[n_exts++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
    }
    VkInstanceCreateFlags flags = 0;
    if (has_instance_ext(NULL, VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME)) {
        exts[n_exts++] = VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME; /* MoltenVK and the like */
        flags |= VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR;
    }

    VkDebugUtilsMessengerCreateInfoEXT dbg = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = debug_callback,
    };
    /* Synchronization validation catches missing barriers between dependent dispatches, the
     * most likely bug of a compute backend. */
    static const VkValidationFeatureEnableEXT enables[] = {
        VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT};
    VkValidationFeaturesEXT vfeat = {
        .sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT,
        .enabledValidationFeatureCount = (uint32_t)VKL_ARRAY_LEN(enables),
        .pEnabledValidationFeatures = enables,
    };
    const void *chain = NULL;
    if (validation_features) {
        vfeat.pNext = chain;
        chain = &vfeat;
    }
    if (debug_utils) { /* also covers messages from vkCreateInstance / vkDestroyInstance */
        dbg.pNext = chain;
        chain = &dbg;
    }

    VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
        .pApplicationName = "vkllm",
        .applicationVersion = VK_MAKE_API_VERSION(0, 0, 1, 0),
        .pEngineName = "vkllm",
        .engineVersion = VK_MAKE_API_VERSION(0, 0, 1, 0),
        .apiVersion = api,
    };
    VkInstanceCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        .pNext = chain,
        .flags = flags,
        .pApplicationInfo = &app,
        .enabledLayerCount = n_layers,
        .ppEnabledLayerNames = layers,
        .enabledExtensionCount = n_exts,
        .ppEnabledExtensionNames = exts,
    };
    VkResult r = vkCreateInstance(&ci, NULL, instance);
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER) {
        *instance = VK_NULL_HANDLE;
        return vkl_fail(err, "Vulkan loader found but no Vulkan device/driver");
    }
    if (r != VK_SUCCESS) {
        *instance = VK_NULL_HANDLE;
        return vkl_fail(err, "vkCreateInstance failed: %s", vkl_vk_result_name(r));
    }
    volkLoadInstance(*instance);
    pin_loaded_modules();

    if (debug_utils) {
        dbg.pNext = NULL;
        r = vkCreateDebugUtilsMessengerEXT(*instance, &dbg, NULL, messenger);
        if (r != VK_SUCCESS) {
            vkDestroyInstance(*instance, NULL);
            *instance = VK_NULL_HANDLE;
            *messenger = VK_NULL_HANDLE;
            return vkl_fail(err, "vkCreateDebugUtilsMessengerEXT failed: %s",
                            vkl_vk_result_name(r));
        }
    }
    *api_version = api;
    return 0;
}

void vkl_vk_instance_destroy(VkInstance instance, VkDebugUtilsMessengerEXT messenger) {
    if (!instance) return;
    if (messenger) vkDestroyDebugUtilsMessengerEXT(instance, messenger, NULL);
    vkDestroyInstance(instance, NULL);
}

int vkl_vk_physical_devices(VkInstance instance, VkPhysicalDevice **devs, uint32_t *count,
                            vkl_error *err) {
    *devs = NULL;
    *count = 0;
    uint32_t n = 0;
    VkResult r = vkEnumeratePhysicalDevices(instance, &n, NULL);
    if (r == VK_ERROR_INITIALIZATION_FAILED || (r == VK_SUCCESS && n == 0))
        return vkl_fail(err, "Vulkan loader found but no Vulkan device/driver");
    if (r != VK_SUCCESS)
        return vkl_fail(err, "vkEnumeratePhysicalDevices failed: %s", vkl_vk_result_name(r));
    VkPhysicalDevice *list = vkl_calloc(n, sizeof *list, err);
    if (!list) return -1;
    r = vkEnumeratePhysicalDevices(instance, &n, list);
    if (r < VK_SUCCESS) { /* VK_INCOMPLETE (a device vanished) still gives a usable list */
        free(list);
        return vkl_fail(err, "vkEnumeratePhysicalDevices failed: %s", vkl_vk_result_name(r));
    }
    if (n == 0) {
        free(list);
        return vkl_fail(err, "Vulkan loader found but no Vulkan device/driver");
    }
    *devs = list;
    *count = n;
    return 0;
}

/* ---- physical device queries -------------------------------------------------------------- */

/* Device extensions vkllm cares about. */
typedef struct device_exts {
    bool driver_properties, float16_int8, storage_8bit, subgroup_size_control, integer_dot_product,
        memory_budget, portability_subset;
} device_exts;

static void query_device_exts(VkPhysicalDevice pd, device_exts *e) {
    memset(e, 0, sizeof *e);
    uint32_t n = 0;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS || n == 0) return;
    VkExtensionProperties *exts = calloc(n, sizeof *exts);
    if (!exts) return;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n, exts) < VK_SUCCESS) n = 0;
    for (uint32_t i = 0; i < n; i++) {
        const char *x = exts[i].extensionName;
        e->driver_properties |= !strcmp(x, VK_KHR_DRIVER_PROPERTIES_EXTENSION_NAME);
        e->float16_int8 |= !strcmp(x, VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME);
        e->storage_8bit |= !strcmp(x, VK_KHR_8BIT_STORAGE_EXTENSION_NAME);
        e->subgroup_size_control |= !strcmp(x, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
        e->integer_dot_product |= !strcmp(x, VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME);
        e->memory_budget |= !strcmp(x, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
        e->portability_subset |= !strcmp(x, "VK_KHR_portability_subset");
    }
    free(exts);
}

/* Which feature structs may be chained for this device: core in its API version, or the
 * extension is present (then it must also be enabled on the device). */
typedef struct feature_structs {
    bool f16i8, s8, sgsc, idot;
    bool f16i8_ext, s8_ext, sgsc_ext, idot_ext; /* needs the extension enabled */
} feature_structs;

static feature_structs usable_structs(uint32_t api, const device_exts *e) {
    feature_structs s;
    s.f16i8_ext = api < VK_API_VERSION_1_2 && e->float16_int8;
    s.s8_ext = api < VK_API_VERSION_1_2 && e->storage_8bit;
    s.sgsc_ext = api < VK_API_VERSION_1_3 && e->subgroup_size_control;
    s.idot_ext = api < VK_API_VERSION_1_3 && e->integer_dot_product;
    s.f16i8 = api >= VK_API_VERSION_1_2 || s.f16i8_ext;
    s.s8 = api >= VK_API_VERSION_1_2 || s.s8_ext;
    s.sgsc = api >= VK_API_VERSION_1_3 || s.sgsc_ext;
    s.idot = api >= VK_API_VERSION_1_3 || s.idot_ext;
    return s;
}

/* The feature structs of one query or one device creation, linked by build_feature_chain. */
typedef struct feature_chain {
    VkPhysicalDeviceFeatures2 f2;
    VkPhysicalDevice16BitStorageFeatures s16;
    VkPhysicalDeviceShaderFloat16Int8Features f16i8;
    VkPhysicalDevice8BitStorageFeatures s8;
    VkPhysicalDeviceSubgroupSizeControlFeatures sgsc;
    VkPhysicalDeviceShaderIntegerDotProductFeatures idot;
} feature_chain;

static void build_feature_chain(feature_chain *c, const feature_structs *s) {
    memset(c, 0, sizeof *c);
    c->f2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
    c->s16.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES;
    c->f16i8.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES;
    c->s8.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES;
    c->sgsc.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES;
    c->idot.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES;
    void **next = &c->f2.pNext;
#define LINK(st)            \
    do {                    \
        *next = &(st);      \
        next = &(st).pNext; \
    } while (0)
    LINK(c->s16); /* core since 1.1 */
    if (s->f16i8) LINK(c->f16i8);
    if (s->s8) LINK(c->s8);
    if (s->sgsc) LINK(c->sgsc);
    if (s->idot) LINK(c->idot);
#undef LINK
}

static void query_device(VkPhysicalDevice pd, uint32_t instance_api, vkl_vk_device_props *out,
                         device_exts *exts) {
    memset(out, 0, sizeof *out);
    query_device_exts(pd, exts);
    vkGetPhysicalDeviceProperties(pd, &out->props);
    uint32_t api = VKL_MIN(instance_api, out->props.apiVersion);
    out->api_version = api;

    /* properties */
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
    VkPhysicalDeviceSubgroupProperties sg = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceMaintenance3Properties m3 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
    VkPhysicalDeviceDriverProperties drv = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    VkPhysicalDeviceSubgroupSizeControlProperties sgsc = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES};
    VkPhysicalDeviceShaderIntegerDotProductProperties idot = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_PROPERTIES};
    feature_structs fs = usable_structs(api, exts);
    bool has_drv = api >= VK_API_VERSION_1_2 || exts->driver_properties;
    p2.pNext = &sg;
    sg.pNext = &m3;
    void **next = &m3.pNext;
    if (has_drv) {
        *next = &drv;
        next = &drv.pNext;
    }
    if (fs.sgsc) {
        *next = &sgsc;
        next = &sgsc.pNext;
    }
    if (fs.idot) *next = &idot;
    vkGetPhysicalDeviceProperties2(pd, &p2);
    out->subgroup_size = sg.subgroupSize;
    out->subgroup_stages = sg.supportedStages;
    out->subgroup_ops = sg.supportedOperations;
    out->min_subgroup_size = fs.sgsc && sgsc.minSubgroupSize ? sgsc.minSubgroupSize : sg.subgroupSize;
    out->max_subgroup_size = fs.sgsc && sgsc.maxSubgroupSize ? sgsc.maxSubgroupSize : sg.subgroupSize;
    out->max_memory_allocation_size = m3.maxMemoryAllocationSize;
    if (has_drv) {
        memcpy(out->driver_name, drv.driverName, sizeof out->driver_name);
        memcpy(out->driver_info, drv.driverInfo, sizeof out->driver_info);
        out->driver_name[sizeof out->driver_name - 1] = 0;
        out->driver_info[sizeof out->driver_info - 1] = 0;
    }

    /* features */
    feature_chain fc;
    build_feature_chain(&fc, &fs);
    vkGetPhysicalDeviceFeatures2(pd, &fc.f2);
    vkl_vk_features *f = &out->supported;
    f->shader_int16 = fc.f2.features.shaderInt16;
    f->storage_buffer_16bit = fc.s16.storageBuffer16BitAccess;
    f->shader_float16 = fs.f16i8 && fc.f16i8.shaderFloat16;
    f->shader_int8 = fs.f16i8 && fc.f16i8.shaderInt8;
    f->storage_buffer_8bit = fs.s8 && fc.s8.storageBuffer8BitAccess;
    f->uniform_storage_8bit = fs.s8 && fc.s8.uniformAndStorageBuffer8BitAccess;
    f->subgroup_size_control = fs.sgsc && fc.sgsc.subgroupSizeControl;
    f->compute_full_subgroups = fs.sgsc && fc.sgsc.computeFullSubgroups;
    f->integer_dot_product = fs.idot && fc.idot.shaderIntegerDotProduct;
    f->memory_budget = exts->memory_budget;
    out->int_dot_4x8_packed_accelerated =
        f->integer_dot_product && idot.integerDotProduct4x8BitPackedSignedAccelerated &&
        idot.integerDotProduct4x8BitPackedUnsignedAccelerated;

    /* memory, with the budget where the extension exists */
    VkPhysicalDeviceMemoryProperties2 mp2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2};
    VkPhysicalDeviceMemoryBudgetPropertiesEXT budget = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
    if (exts->memory_budget) mp2.pNext = &budget;
    vkGetPhysicalDeviceMemoryProperties2(pd, &mp2);
    out->mem = mp2.memoryProperties;
    if (exts->memory_budget)
        for (uint32_t h = 0; h < out->mem.memoryHeapCount && h < VK_MAX_MEMORY_HEAPS; h++) {
            out->heap_budget[h] = budget.heapBudget[h];
            out->heap_usage[h] = budget.heapUsage[h];
        }

    /* UMA: an integrated or CPU device, or every device-local memory type is host-visible */
    bool all_dl_visible = true, any_dl = false;
    for (uint32_t t = 0; t < out->mem.memoryTypeCount; t++) {
        VkMemoryPropertyFlags fl = out->mem.memoryTypes[t].propertyFlags;
        if (!(fl & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT)) continue;
        any_dl = true;
        if (!(fl & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT)) all_dl_visible = false;
    }
    out->uma = out->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU ||
               out->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU || (any_dl && all_dl_visible);
}

void vkl_vk_query_device(VkPhysicalDevice pd, uint32_t instance_api_version,
                         vkl_vk_device_props *out) {
    device_exts exts;
    query_device(pd, instance_api_version, out, &exts);
}

/* ---- logical device ----------------------------------------------------------------------- */

/* Prefers a compute family without graphics (dedicated compute) that has timestamps. */
static int pick_compute_family(const VkQueueFamilyProperties *q, uint32_t n) {
    int best = -1, best_score = -1;
    for (uint32_t i = 0; i < n; i++) {
        if (!(q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) || q[i].queueCount == 0) continue;
        int score = (q[i].timestampValidBits ? 2 : 0) + (q[i].queueFlags & VK_QUEUE_GRAPHICS_BIT ? 0 : 1);
        if (score > best_score) {
            best = (int)i;
            best_score = score;
        }
    }
    return best;
}

/* A transfer-only family (DMA engine), or -1. */
static int pick_transfer_family(const VkQueueFamilyProperties *q, uint32_t n, uint32_t compute) {
    for (uint32_t i = 0; i < n; i++) {
        if (i == compute || q[i].queueCount == 0) continue;
        VkQueueFlags fl = q[i].queueFlags;
        if ((fl & VK_QUEUE_TRANSFER_BIT) && !(fl & (VK_QUEUE_COMPUTE_BIT | VK_QUEUE_GRAPHICS_BIT)))
            return (int)i;
    }
    return -1;
}

static int create_device(vkl_vk_context *ctx, const device_exts *exts, vkl_error *err) {
    const vkl_vk_device_props *info = &ctx->info;
    if (info->props.apiVersion < VK_API_VERSION_1_1)
        return vkl_fail(err, "device %d (%s) supports only Vulkan 1.0; vkllm needs 1.1",
                        ctx->device_index, info->props.deviceName);

    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(ctx->physical_device, &nq, NULL);
    VkQueueFamilyProperties *qf = vkl_calloc(nq, sizeof *qf, err);
    if (!qf) return -1;
    vkGetPhysicalDeviceQueueFamilyProperties(ctx->physical_device, &nq, qf);
    int cf = pick_compute_family(qf, nq);
    int tf = cf >= 0 ? pick_transfer_family(qf, nq, (uint32_t)cf) : -1;
    if (cf >= 0) ctx->timestamp_valid_bits = qf[cf].timestampValidBits;
    free(qf);
    if (cf < 0)
        return vkl_fail(err, "device %d (%s) has no compute queue", ctx->device_index,
                        info->props.deviceName);
    ctx->compute_family = (uint32_t)cf;

    /* Enable every supported feature we use, and nothing else. */
    vkl_vk_features *en = &ctx->enabled;
    *en = info->supported;
    feature_structs fs = usable_structs(info->api_version, exts);
    /* A struct whose extension we do not enable must not be chained. */
    if (fs.f16i8_ext && !(en->shader_float16 || en->shader_int8)) fs.f16i8 = fs.f16i8_ext = false;
    if (fs.s8_ext && !(en->storage_buffer_8bit || en->uniform_storage_8bit))
        fs.s8 = fs.s8_ext = false;
    if (fs.sgsc_ext && !en->subgroup_size_control) fs.sgsc = fs.sgsc_ext = false;
    if (fs.idot_ext && !en->integer_dot_product) fs.idot = fs.idot_ext = false;
    feature_chain fc;
    build_feature_chain(&fc, &fs);
    fc.f2.features.shaderInt16 = en->shader_int16;
    fc.s16.storageBuffer16BitAccess = en->storage_buffer_16bit;
    fc.f16i8.shaderFloat16 = en->shader_float16;
    fc.f16i8.shaderInt8 = en->shader_int8;
    fc.s8.storageBuffer8BitAccess = en->storage_buffer_8bit;
    fc.s8.uniformAndStorageBuffer8BitAccess = en->uniform_storage_8bit;
    fc.sgsc.subgroupSizeControl = en->subgroup_size_control;
    fc.sgsc.computeFullSubgroups = en->compute_full_subgroups;
    fc.idot.shaderIntegerDotProduct = en->integer_dot_product;

    const char *ext_names[8];
    uint32_t n_ext = 0;
    if (fs.f16i8_ext) ext_names[n_ext++] = VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME;
    if (fs.s8_ext) ext_names[n_ext++] = VK_KHR_8BIT_STORAGE_EXTENSION_NAME;
    if (fs.sgsc_ext) ext_names[n_ext++] = VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME;
    if (fs.idot_ext) ext_names[n_ext++] = VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME;
    if (en->memory_budget) ext_names[n_ext++] = VK_EXT_MEMORY_BUDGET_EXTENSION_NAME;
    if (exts->portability_subset) ext_names[n_ext++] = "VK_KHR_portability_subset"; /* required */

    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci[2] = {
        {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
         .queueFamilyIndex = (uint32_t)cf,
         .queueCount = 1,
         .pQueuePriorities = &prio},
        {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
         .queueFamilyIndex = (uint32_t)tf,
         .queueCount = 1,
         .pQueuePriorities = &prio},
    };
    VkDeviceCreateInfo dci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
        .pNext = &fc.f2,
        .queueCreateInfoCount = tf >= 0 ? 2 : 1,
        .pQueueCreateInfos = qci,
        .enabledExtensionCount = n_ext,
        .ppEnabledExtensionNames = ext_names,
    };
    VkResult r = vkCreateDevice(ctx->physical_device, &dci, NULL, &ctx->device);
    if (r != VK_SUCCESS) {
        ctx->device = VK_NULL_HANDLE;
        return vkl_fail(err, "vkCreateDevice (%s) failed: %s", info->props.deviceName,
                        vkl_vk_result_name(r));
    }
    vkGetDeviceQueue(ctx->device, (uint32_t)cf, 0, &ctx->compute_queue);
    if (tf >= 0) {
        ctx->transfer_family = (uint32_t)tf;
        vkGetDeviceQueue(ctx->device, (uint32_t)tf, 0, &ctx->transfer_queue);
    }
    return 0;
}

int vkl_vk_context_create(vkl_vk_context *ctx, int device_index, vkl_error *err) {
    memset(ctx, 0, sizeof *ctx);
    if (vkl_vk_instance_create(&ctx->instance, &ctx->messenger, &ctx->validation_active,
                               &ctx->instance_api_version, err))
        return -1;
    VkPhysicalDevice *devs = NULL;
    uint32_t n = 0;
    if (vkl_vk_physical_devices(ctx->instance, &devs, &n, err)) goto fail;
    if (device_index < 0 || (uint32_t)device_index >= n) {
        vkl_fail(err, "no Vulkan device %d (there %s %u: 0..%u; see 'vkllm devices')", device_index,
                 n == 1 ? "is" : "are", n, n - 1);
        free(devs);
        goto fail;
    }
    ctx->device_index = device_index;
    ctx->physical_device = devs[device_index];
    free(devs);

    device_exts exts;
    query_device(ctx->physical_device, ctx->instance_api_version, &ctx->info, &exts);
    ctx->limits = ctx->info.props.limits;
    ctx->subgroup_size = ctx->info.subgroup_size;
    if (create_device(ctx, &exts, err)) goto fail;
    return 0;
fail:
    vkl_vk_context_destroy(ctx);
    return -1;
}

void vkl_vk_context_destroy(vkl_vk_context *ctx) {
    if (!ctx) return;
    if (ctx->device) {
        vkDeviceWaitIdle(ctx->device);
        vkDestroyDevice(ctx->device, NULL);
    }
    vkl_vk_instance_destroy(ctx->instance, ctx->messenger);
    memset(ctx, 0, sizeof *ctx);
}

int vkl_vk_find_memory_type(const vkl_vk_context *ctx, uint32_t type_bits,
                            VkMemoryPropertyFlags required, VkMemoryPropertyFlags preferred) {
    const VkPhysicalDeviceMemoryProperties *m = &ctx->info.mem;
    int fallback = -1;
    for (uint32_t i = 0; i < m->memoryTypeCount; i++) {
        VkMemoryPropertyFlags fl = m->memoryTypes[i].propertyFlags;
        if (!(type_bits & (1u << i)) || (fl & required) != required) continue;
        if ((fl & preferred) == preferred) return (int)i;
        if (fallback < 0) fallback = (int)i;
    }
    return fallback;
}

const vkl_spirv_blob *vkl_spirv_find(const char *name) {
    for (const vkl_spirv_blob *b = vkl_spirv_blobs; b->name; b++)
        if (!strcmp(b->name, name)) return b;
    return NULL;
}
