/* VK_LAYER_VKLLM_discrete: a test layer that presents the device below it (lavapipe in CI) as a
 * discrete GPU, optionally with the memory of a non-UMA card, and counts submissions, dispatches,
 * barriers and transfers. See vkllm_layer.h for the settings. The layer keeps the Vulkan objects
 * of the driver unchanged; it only rewrites what the driver reports and the memory type indices
 * the application passes back. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>

#include <vulkan/vk_layer.h>
#include <vulkan/vulkan.h>

#include "vkllm_layer.h"

#define LAYER_NAME "VK_LAYER_VKLLM_discrete"
#define EXPORT __attribute__((visibility("default")))

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static vkllm_layer_counts totals;

static void *dispatch_key(const void *handle) { return *(void *const *)handle; }

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool setting(const char *name) {
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

/* ---- small tables keyed by pointers (a handful of instances and devices, dozens of memory
 * objects and command buffers), all under `lock` ---------------------------------------------- */

typedef struct instance_rec {
    void *key;
    PFN_vkGetInstanceProcAddr gipa;
    PFN_vkDestroyInstance destroy;
    PFN_vkGetPhysicalDeviceProperties props;
    PFN_vkGetPhysicalDeviceProperties2 props2;
    PFN_vkGetPhysicalDeviceMemoryProperties mem;
    PFN_vkGetPhysicalDeviceMemoryProperties2 mem2;
    PFN_vkEnumerateDeviceExtensionProperties enum_dev_ext;
} instance_rec;

/* Memory types as the application sees them: fake type i is real type real_type[i], on fake heap
 * i's heap (fake heaps: the real ones, then one host heap per split type). */
typedef struct mem_map {
    VkPhysicalDeviceMemoryProperties fake;
    uint32_t real_type[VK_MAX_MEMORY_TYPES];
    uint32_t real_heap[VK_MAX_MEMORY_HEAPS];
} mem_map;

typedef struct device_rec {
    void *key;
    VkDevice device;
    mem_map mm;
    vkllm_layer_counts counts;
    PFN_vkGetDeviceProcAddr gdpa;
    PFN_vkDestroyDevice destroy;
    PFN_vkQueueSubmit submit;
    PFN_vkBeginCommandBuffer begin;
    PFN_vkEndCommandBuffer end;
    PFN_vkCmdDispatch dispatch;
    PFN_vkCmdPipelineBarrier barrier;
    PFN_vkCmdCopyBuffer copy;
    PFN_vkCmdUpdateBuffer update;
    PFN_vkCmdFillBuffer fill;
    PFN_vkWaitForFences wait;
    PFN_vkAllocateMemory alloc;
    PFN_vkFreeMemory free_mem;
    PFN_vkMapMemory map;
    PFN_vkGetBufferMemoryRequirements reqs;
    PFN_vkGetBufferMemoryRequirements2 reqs2;
    PFN_vkFreeCommandBuffers free_cbs;
} device_rec;

typedef struct cb_rec {
    VkCommandBuffer cb;
    uint64_t dispatches, barriers, transfers, transfer_bytes, begin_ns;
} cb_rec;

typedef struct mem_rec {
    VkDeviceMemory mem;
    bool device_only;
} mem_rec;

static instance_rec instances[8];
static device_rec devices[8];
static cb_rec *cbs;
static size_t n_cbs, cap_cbs;
static mem_rec *mems;
static size_t n_mems, cap_mems;

static instance_rec *instance_of(const void *handle) {
    void *k = dispatch_key(handle);
    for (int i = 0; i < 8; i++)
        if (instances[i].key == k) return &instances[i];
    return NULL;
}

static device_rec *device_of(const void *handle) {
    void *k = dispatch_key(handle);
    for (int i = 0; i < 8; i++)
        if (devices[i].key == k) return &devices[i];
    return NULL;
}

static bool grow(void **arr, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return true;
    size_t nc = *cap ? 2 * *cap : 64;
    void *p = realloc(*arr, nc * elem);
    if (!p) return false;
    *arr = p;
    *cap = nc;
    return true;
}

/* The record of a command buffer (created on first use; NULL when out of memory). */
static cb_rec *cb_of(VkCommandBuffer cb) {
    for (size_t i = 0; i < n_cbs; i++)
        if (cbs[i].cb == cb) return &cbs[i];
    if (!grow((void **)&cbs, &cap_cbs, n_cbs, sizeof *cbs)) return NULL;
    cbs[n_cbs] = (cb_rec){.cb = cb};
    return &cbs[n_cbs++];
}

static mem_rec *mem_of(VkDeviceMemory m) {
    for (size_t i = 0; i < n_mems; i++)
        if (mems[i].mem == m) return &mems[i];
    return NULL;
}

/* ---- what the physical device reports ------------------------------------------------------ */

static void build_mem_map(const VkPhysicalDeviceMemoryProperties *real, mem_map *m) {
    memset(m, 0, sizeof *m);
    const VkMemoryPropertyFlags DL = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT,
                                HOST = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT |
                                       VK_MEMORY_PROPERTY_HOST_CACHED_BIT;
    m->fake.memoryHeapCount = real->memoryHeapCount;
    for (uint32_t h = 0; h < real->memoryHeapCount; h++) {
        m->fake.memoryHeaps[h] = real->memoryHeaps[h];
        m->real_heap[h] = h;
    }
    const bool split = setting("VKLLM_LAYER_NONUMA") && !setting("VKLLM_LAYER_KEEP_TYPE");
    for (uint32_t t = 0; t < real->memoryTypeCount; t++) {
        VkMemoryType rt = real->memoryTypes[t];
        uint32_t n = m->fake.memoryTypeCount;
        bool both = (rt.propertyFlags & DL) && (rt.propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT);
        if (!split || !both || n + 2 > VK_MAX_MEMORY_TYPES || m->fake.memoryHeapCount >= VK_MAX_MEMORY_HEAPS) {
            m->fake.memoryTypes[n] = rt;
            m->real_type[m->fake.memoryTypeCount++] = t;
            continue;
        }
        /* device-local only, on the real heap; then host-visible, on a new system-memory heap */
        m->fake.memoryTypes[n] = (VkMemoryType){rt.propertyFlags & ~HOST, rt.heapIndex};
        m->real_type[n] = t;
        uint32_t h = m->fake.memoryHeapCount++;
        m->fake.memoryHeaps[h] = (VkMemoryHeap){real->memoryHeaps[rt.heapIndex].size, 0};
        m->real_heap[h] = rt.heapIndex;
        m->fake.memoryTypes[n + 1] = (VkMemoryType){rt.propertyFlags & ~DL, h};
        m->real_type[n + 1] = t;
        m->fake.memoryTypeCount += 2;
    }
}

static uint32_t fake_type_bits(const mem_map *m, uint32_t real_bits) {
    uint32_t bits = 0;
    for (uint32_t i = 0; i < m->fake.memoryTypeCount; i++)
        if (real_bits & (1u << m->real_type[i])) bits |= 1u << i;
    return bits;
}

static void make_discrete(VkPhysicalDeviceProperties *p) {
    if (setting("VKLLM_LAYER_KEEP_TYPE")) return;
    p->deviceType = VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU;
    static const char tag[] = " [as discrete GPU]";
    size_t len = strnlen(p->deviceName, sizeof p->deviceName);
    if (len + sizeof tag <= sizeof p->deviceName) memcpy(p->deviceName + len, tag, sizeof tag);
}

static VKAPI_ATTR void VKAPI_CALL GetPhysicalDeviceProperties(VkPhysicalDevice pd, VkPhysicalDeviceProperties *p) {
    pthread_mutex_lock(&lock);
    instance_rec *in = instance_of(pd);
    pthread_mutex_unlock(&lock);
    in->props(pd, p);
    make_discrete(p);
}

static VKAPI_ATTR void VKAPI_CALL GetPhysicalDeviceProperties2(VkPhysicalDevice pd, VkPhysicalDeviceProperties2 *p) {
    pthread_mutex_lock(&lock);
    instance_rec *in = instance_of(pd);
    pthread_mutex_unlock(&lock);
    in->props2(pd, p);
    make_discrete(&p->properties);
}

static void real_mem_props(instance_rec *in, VkPhysicalDevice pd, VkPhysicalDeviceMemoryProperties *out) {
    in->mem(pd, out);
}

static VKAPI_ATTR void VKAPI_CALL GetPhysicalDeviceMemoryProperties(VkPhysicalDevice pd,
                                                                     VkPhysicalDeviceMemoryProperties *p) {
    pthread_mutex_lock(&lock);
    instance_rec *in = instance_of(pd);
    pthread_mutex_unlock(&lock);
    VkPhysicalDeviceMemoryProperties real;
    real_mem_props(in, pd, &real);
    mem_map m;
    build_mem_map(&real, &m);
    *p = m.fake;
}

static VKAPI_ATTR void VKAPI_CALL GetPhysicalDeviceMemoryProperties2(VkPhysicalDevice pd,
                                                                      VkPhysicalDeviceMemoryProperties2 *p) {
    pthread_mutex_lock(&lock);
    instance_rec *in = instance_of(pd);
    pthread_mutex_unlock(&lock);
    in->mem2(pd, p);
    mem_map m;
    build_mem_map(&p->memoryProperties, &m);
    p->memoryProperties = m.fake;
    for (VkBaseOutStructure *s = p->pNext; s; s = s->pNext) {
        if (s->sType != VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT) continue;
        VkPhysicalDeviceMemoryBudgetPropertiesEXT *b = (VkPhysicalDeviceMemoryBudgetPropertiesEXT *)s;
        VkPhysicalDeviceMemoryBudgetPropertiesEXT real = *b;
        for (uint32_t h = 0; h < VK_MAX_MEMORY_HEAPS; h++) {
            bool used = h < m.fake.memoryHeapCount;
            b->heapBudget[h] = used ? real.heapBudget[m.real_heap[h]] : 0;
            b->heapUsage[h] = used ? real.heapUsage[m.real_heap[h]] : 0;
        }
    }
}

/* ---- instance ------------------------------------------------------------------------------ */

static VKAPI_ATTR VkResult VKAPI_CALL CreateInstance(const VkInstanceCreateInfo *ci, const VkAllocationCallbacks *ac,
                                                     VkInstance *out) {
    VkLayerInstanceCreateInfo *link = (VkLayerInstanceCreateInfo *)ci->pNext;
    while (link && !(link->sType == VK_STRUCTURE_TYPE_LOADER_INSTANCE_CREATE_INFO && link->function == VK_LAYER_LINK_INFO))
        link = (VkLayerInstanceCreateInfo *)link->pNext;
    if (!link) return VK_ERROR_INITIALIZATION_FAILED;
    PFN_vkGetInstanceProcAddr gipa = link->u.pLayerInfo->pfnNextGetInstanceProcAddr;
    link->u.pLayerInfo = link->u.pLayerInfo->pNext;
    PFN_vkCreateInstance create = (PFN_vkCreateInstance)gipa(VK_NULL_HANDLE, "vkCreateInstance");
    VkResult r = create(ci, ac, out);
    if (r != VK_SUCCESS) return r;
    instance_rec rec = {.key = dispatch_key(*out), .gipa = gipa};
#define GET(f, name) rec.f = (void *)gipa(*out, name)
    GET(destroy, "vkDestroyInstance");
    GET(props, "vkGetPhysicalDeviceProperties");
    GET(props2, "vkGetPhysicalDeviceProperties2");
    GET(mem, "vkGetPhysicalDeviceMemoryProperties");
    GET(mem2, "vkGetPhysicalDeviceMemoryProperties2");
    GET(enum_dev_ext, "vkEnumerateDeviceExtensionProperties");
#undef GET
    pthread_mutex_lock(&lock);
    int slot = -1;
    for (int i = 0; i < 8 && slot < 0; i++)
        if (!instances[i].key) slot = i;
    if (slot >= 0) instances[slot] = rec;
    pthread_mutex_unlock(&lock);
    if (slot < 0) {
        rec.destroy(*out, ac);
        return VK_ERROR_OUT_OF_HOST_MEMORY;
    }
    return VK_SUCCESS;
}

static VKAPI_ATTR void VKAPI_CALL DestroyInstance(VkInstance inst, const VkAllocationCallbacks *ac) {
    if (!inst) return;
    pthread_mutex_lock(&lock);
    instance_rec *in = instance_of(inst);
    PFN_vkDestroyInstance destroy = in->destroy;
    memset(in, 0, sizeof *in);
    pthread_mutex_unlock(&lock);
    destroy(inst, ac);
}

static VKAPI_ATTR VkResult VKAPI_CALL EnumerateDeviceExtensionProperties(VkPhysicalDevice pd, const char *layer,
                                                                         uint32_t *n, VkExtensionProperties *p) {
    if (layer && !strcmp(layer, LAYER_NAME)) {
        *n = 0;
        return VK_SUCCESS;
    }
    pthread_mutex_lock(&lock);
    instance_rec *in = instance_of(pd);
    pthread_mutex_unlock(&lock);
    return in->enum_dev_ext(pd, layer, n, p);
}

/* ---- device -------------------------------------------------------------------------------- */

static VKAPI_ATTR VkResult VKAPI_CALL CreateDevice(VkPhysicalDevice pd, const VkDeviceCreateInfo *ci,
                                                   const VkAllocationCallbacks *ac, VkDevice *out) {
    VkLayerDeviceCreateInfo *link = (VkLayerDeviceCreateInfo *)ci->pNext;
    while (link && !(link->sType == VK_STRUCTURE_TYPE_LOADER_DEVICE_CREATE_INFO && link->function == VK_LAYER_LINK_INFO))
        link = (VkLayerDeviceCreateInfo *)link->pNext;
    if (!link) return VK_ERROR_INITIALIZATION_FAILED;
    PFN_vkGetInstanceProcAddr gipa = link->u.pLayerInfo->pfnNextGetInstanceProcAddr;
    PFN_vkGetDeviceProcAddr gdpa = link->u.pLayerInfo->pfnNextGetDeviceProcAddr;
    link->u.pLayerInfo = link->u.pLayerInfo->pNext;
    pthread_mutex_lock(&lock);
    instance_rec *in = instance_of(pd);
    pthread_mutex_unlock(&lock);
    PFN_vkCreateDevice create = (PFN_vkCreateDevice)gipa(VK_NULL_HANDLE, "vkCreateDevice");
    VkResult r = create(pd, ci, ac, out);
    if (r != VK_SUCCESS) return r;
    device_rec rec = {.key = dispatch_key(*out), .device = *out, .gdpa = gdpa};
    VkPhysicalDeviceMemoryProperties real;
    real_mem_props(in, pd, &real);
    build_mem_map(&real, &rec.mm);
#define GET(f, name) rec.f = (void *)gdpa(*out, name)
    GET(destroy, "vkDestroyDevice");
    GET(submit, "vkQueueSubmit");
    GET(begin, "vkBeginCommandBuffer");
    GET(end, "vkEndCommandBuffer");
    GET(dispatch, "vkCmdDispatch");
    GET(barrier, "vkCmdPipelineBarrier");
    GET(copy, "vkCmdCopyBuffer");
    GET(update, "vkCmdUpdateBuffer");
    GET(fill, "vkCmdFillBuffer");
    GET(wait, "vkWaitForFences");
    GET(alloc, "vkAllocateMemory");
    GET(free_mem, "vkFreeMemory");
    GET(map, "vkMapMemory");
    GET(reqs, "vkGetBufferMemoryRequirements");
    GET(reqs2, "vkGetBufferMemoryRequirements2");
    GET(free_cbs, "vkFreeCommandBuffers");
#undef GET
    pthread_mutex_lock(&lock);
    int slot = -1;
    for (int i = 0; i < 8 && slot < 0; i++)
        if (!devices[i].key) slot = i;
    if (slot >= 0) devices[slot] = rec;
    pthread_mutex_unlock(&lock);
    if (slot < 0) {
        rec.destroy(*out, ac);
        return VK_ERROR_OUT_OF_HOST_MEMORY;
    }
    return VK_SUCCESS;
}

static void dump_stats(const vkllm_layer_counts *c) {
    const char *path = getenv("VKLLM_LAYER_STATS");
    FILE *f = path && *path ? fopen(path, "a") : NULL;
    if (!f) return;
    fprintf(f,
            "submits=%llu compute_submits=%llu command_buffers=%llu dispatches=%llu barriers=%llu transfers=%llu transfer_bytes=%llu "
            "fence_waits=%llu map_violations=%llu record_ns=%llu\n",
            (unsigned long long)c->submits, (unsigned long long)c->compute_submits,
            (unsigned long long)c->command_buffers,
            (unsigned long long)c->dispatches, (unsigned long long)c->barriers, (unsigned long long)c->transfers,
            (unsigned long long)c->transfer_bytes, (unsigned long long)c->fence_waits,
            (unsigned long long)c->map_violations, (unsigned long long)c->record_ns);
    fclose(f);
}

static VKAPI_ATTR void VKAPI_CALL DestroyDevice(VkDevice dev, const VkAllocationCallbacks *ac) {
    if (!dev) return;
    pthread_mutex_lock(&lock);
    device_rec *d = device_of(dev);
    PFN_vkDestroyDevice destroy = d->destroy;
    vkllm_layer_counts c = d->counts;
    memset(d, 0, sizeof *d);
    pthread_mutex_unlock(&lock);
    dump_stats(&c);
    destroy(dev, ac);
}

static VKAPI_ATTR VkResult VKAPI_CALL QueueSubmit(VkQueue q, uint32_t n, const VkSubmitInfo *si, VkFence fence) {
    pthread_mutex_lock(&lock);
    device_rec *d = device_of(q);
    PFN_vkQueueSubmit submit = d->submit;
    uint64_t n_cb = 0;
    vkllm_layer_counts add = {0};
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t c = 0; c < si[i].commandBufferCount; c++) {
            cb_rec *r = cb_of(si[i].pCommandBuffers[c]);
            n_cb++;
            if (!r) continue;
            add.dispatches += r->dispatches;
            add.barriers += r->barriers;
            add.transfers += r->transfers;
            add.transfer_bytes += r->transfer_bytes;
        }
    vkllm_layer_counts *t[2] = {&d->counts, &totals};
    for (int k = 0; k < 2; k++) {
        t[k]->submits += n_cb > 0;
        t[k]->compute_submits += add.dispatches > 0;
        t[k]->command_buffers += n_cb;
        t[k]->dispatches += add.dispatches;
        t[k]->barriers += add.barriers;
        t[k]->transfers += add.transfers;
        t[k]->transfer_bytes += add.transfer_bytes;
    }
    pthread_mutex_unlock(&lock);
    return submit(q, n, si, fence);
}

static VKAPI_ATTR VkResult VKAPI_CALL BeginCommandBuffer(VkCommandBuffer cb, const VkCommandBufferBeginInfo *bi) {
    pthread_mutex_lock(&lock);
    device_rec *d = device_of(cb);
    cb_rec *r = cb_of(cb);
    if (r) *r = (cb_rec){.cb = cb, .begin_ns = now_ns()};
    PFN_vkBeginCommandBuffer begin = d->begin;
    pthread_mutex_unlock(&lock);
    return begin(cb, bi);
}

static VKAPI_ATTR VkResult VKAPI_CALL EndCommandBuffer(VkCommandBuffer cb) {
    pthread_mutex_lock(&lock);
    device_rec *d = device_of(cb);
    cb_rec *r = cb_of(cb);
    if (r && r->begin_ns) {
        uint64_t ns = now_ns() - r->begin_ns;
        d->counts.record_ns += ns;
        totals.record_ns += ns;
    }
    PFN_vkEndCommandBuffer end = d->end;
    pthread_mutex_unlock(&lock);
    return end(cb);
}

static VKAPI_ATTR void VKAPI_CALL FreeCommandBuffers(VkDevice dev, VkCommandPool pool, uint32_t n,
                                                     const VkCommandBuffer *p) {
    pthread_mutex_lock(&lock);
    device_rec *d = device_of(dev);
    for (uint32_t i = 0; i < n; i++)
        for (size_t k = 0; k < n_cbs; k++)
            if (cbs[k].cb == p[i]) cbs[k] = cbs[--n_cbs];
    PFN_vkFreeCommandBuffers f = d->free_cbs;
    pthread_mutex_unlock(&lock);
    f(dev, pool, n, p);
}

/* Adds to a command buffer's counts; returns its device's next function table. */
static device_rec *count(VkCommandBuffer cb, int what, uint64_t bytes) {
    pthread_mutex_lock(&lock);
    device_rec *d = device_of(cb);
    cb_rec *r = cb_of(cb);
    if (r) {
        r->dispatches += what == 0;
        r->barriers += what == 1;
        r->transfers += what == 2;
        r->transfer_bytes += bytes;
    }
    pthread_mutex_unlock(&lock);
    return d;
}

static VKAPI_ATTR void VKAPI_CALL CmdDispatch(VkCommandBuffer cb, uint32_t x, uint32_t y, uint32_t z) {
    count(cb, 0, 0)->dispatch(cb, x, y, z);
}

static VKAPI_ATTR void VKAPI_CALL CmdPipelineBarrier(VkCommandBuffer cb, VkPipelineStageFlags src,
                                                     VkPipelineStageFlags dst, VkDependencyFlags dep, uint32_t nm,
                                                     const VkMemoryBarrier *mb, uint32_t nb,
                                                     const VkBufferMemoryBarrier *bb, uint32_t ni,
                                                     const VkImageMemoryBarrier *ib) {
    count(cb, 1, 0)->barrier(cb, src, dst, dep, nm, mb, nb, bb, ni, ib);
}

static VKAPI_ATTR void VKAPI_CALL CmdCopyBuffer(VkCommandBuffer cb, VkBuffer src, VkBuffer dst, uint32_t n,
                                                const VkBufferCopy *regions) {
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < n; i++) bytes += regions[i].size;
    count(cb, 2, bytes)->copy(cb, src, dst, n, regions);
}

static VKAPI_ATTR void VKAPI_CALL CmdUpdateBuffer(VkCommandBuffer cb, VkBuffer dst, VkDeviceSize off,
                                                  VkDeviceSize size, const void *data) {
    count(cb, 2, size)->update(cb, dst, off, size, data);
}

static VKAPI_ATTR void VKAPI_CALL CmdFillBuffer(VkCommandBuffer cb, VkBuffer dst, VkDeviceSize off,
                                                VkDeviceSize size, uint32_t value) {
    count(cb, 2, size == VK_WHOLE_SIZE ? 0 : size)->fill(cb, dst, off, size, value);
}

static VKAPI_ATTR VkResult VKAPI_CALL WaitForFences(VkDevice dev, uint32_t n, const VkFence *f, VkBool32 all,
                                                    uint64_t timeout) {
    pthread_mutex_lock(&lock);
    device_rec *d = device_of(dev);
    d->counts.fence_waits++;
    totals.fence_waits++;
    PFN_vkWaitForFences wait = d->wait;
    pthread_mutex_unlock(&lock);
    return wait(dev, n, f, all, timeout);
}

static VKAPI_ATTR VkResult VKAPI_CALL AllocateMemory(VkDevice dev, const VkMemoryAllocateInfo *ai,
                                                     const VkAllocationCallbacks *ac, VkDeviceMemory *out) {
    pthread_mutex_lock(&lock);
    device_rec *d = device_of(dev);
    const mem_map *m = &d->mm;
    PFN_vkAllocateMemory alloc = d->alloc;
    uint32_t t = ai->memoryTypeIndex;
    bool ok = t < m->fake.memoryTypeCount;
    bool device_only = ok && !(m->fake.memoryTypes[t].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT);
    VkMemoryAllocateInfo real = *ai;
    real.memoryTypeIndex = ok ? m->real_type[t] : t;
    pthread_mutex_unlock(&lock);
    if (!ok) return VK_ERROR_OUT_OF_DEVICE_MEMORY;
    VkResult r = alloc(dev, &real, ac, out);
    if (r != VK_SUCCESS) return r;
    pthread_mutex_lock(&lock);
    if (grow((void **)&mems, &cap_mems, n_mems, sizeof *mems)) mems[n_mems++] = (mem_rec){*out, device_only};
    pthread_mutex_unlock(&lock);
    return VK_SUCCESS;
}

static VKAPI_ATTR void VKAPI_CALL FreeMemory(VkDevice dev, VkDeviceMemory mem, const VkAllocationCallbacks *ac) {
    pthread_mutex_lock(&lock);
    device_rec *d = device_of(dev);
    mem_rec *r = mem ? mem_of(mem) : NULL;
    if (r) *r = mems[--n_mems];
    PFN_vkFreeMemory f = d->free_mem;
    pthread_mutex_unlock(&lock);
    f(dev, mem, ac);
}

static VKAPI_ATTR VkResult VKAPI_CALL MapMemory(VkDevice dev, VkDeviceMemory mem, VkDeviceSize off, VkDeviceSize size,
                                                VkMemoryMapFlags flags, void **out) {
    pthread_mutex_lock(&lock);
    device_rec *d = device_of(dev);
    mem_rec *r = mem_of(mem);
    bool bad = r && r->device_only;
    if (bad) {
        d->counts.map_violations++;
        totals.map_violations++;
    }
    PFN_vkMapMemory map = d->map;
    pthread_mutex_unlock(&lock);
    if (bad) {
        fprintf(stderr, LAYER_NAME ": vkMapMemory on device-local-only memory\n");
        return VK_ERROR_MEMORY_MAP_FAILED;
    }
    return map(dev, mem, off, size, flags, out);
}

static VKAPI_ATTR void VKAPI_CALL GetBufferMemoryRequirements(VkDevice dev, VkBuffer b, VkMemoryRequirements *req) {
    pthread_mutex_lock(&lock);
    device_rec *d = device_of(dev);
    pthread_mutex_unlock(&lock);
    d->reqs(dev, b, req);
    req->memoryTypeBits = fake_type_bits(&d->mm, req->memoryTypeBits);
}

static VKAPI_ATTR void VKAPI_CALL GetBufferMemoryRequirements2(VkDevice dev, const VkBufferMemoryRequirementsInfo2 *info,
                                                               VkMemoryRequirements2 *req) {
    pthread_mutex_lock(&lock);
    device_rec *d = device_of(dev);
    pthread_mutex_unlock(&lock);
    d->reqs2(dev, info, req);
    req->memoryRequirements.memoryTypeBits = fake_type_bits(&d->mm, req->memoryRequirements.memoryTypeBits);
}

/* ---- entry points -------------------------------------------------------------------------- */

typedef struct named_fn {
    const char *name;
    PFN_vkVoidFunction fn;
} named_fn;

#define FN(n) {"vk" #n, (PFN_vkVoidFunction)n}
static const named_fn device_fns[] = {
    FN(DestroyDevice), FN(QueueSubmit), FN(BeginCommandBuffer), FN(EndCommandBuffer), FN(FreeCommandBuffers),
    FN(CmdDispatch), FN(CmdPipelineBarrier), FN(CmdCopyBuffer), FN(CmdUpdateBuffer), FN(CmdFillBuffer),
    FN(WaitForFences), FN(AllocateMemory), FN(FreeMemory), FN(MapMemory), FN(GetBufferMemoryRequirements),
    FN(GetBufferMemoryRequirements2),
    {"vkGetBufferMemoryRequirements2KHR", (PFN_vkVoidFunction)GetBufferMemoryRequirements2},
};
static const named_fn instance_fns[] = {
    FN(CreateInstance), FN(DestroyInstance), FN(CreateDevice), FN(EnumerateDeviceExtensionProperties),
    FN(GetPhysicalDeviceProperties), FN(GetPhysicalDeviceProperties2), FN(GetPhysicalDeviceMemoryProperties),
    FN(GetPhysicalDeviceMemoryProperties2),
    {"vkGetPhysicalDeviceProperties2KHR", (PFN_vkVoidFunction)GetPhysicalDeviceProperties2},
    {"vkGetPhysicalDeviceMemoryProperties2KHR", (PFN_vkVoidFunction)GetPhysicalDeviceMemoryProperties2},
};
#undef FN

static PFN_vkVoidFunction find(const named_fn *fns, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(fns[i].name, name)) return fns[i].fn;
    return NULL;
}

EXPORT VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL vkllm_layer_GetDeviceProcAddr(VkDevice dev, const char *name) {
    if (!strcmp(name, "vkGetDeviceProcAddr")) return (PFN_vkVoidFunction)vkllm_layer_GetDeviceProcAddr;
    PFN_vkVoidFunction f = find(device_fns, sizeof device_fns / sizeof *device_fns, name);
    if (f) return f;
    pthread_mutex_lock(&lock);
    device_rec *d = device_of(dev);
    PFN_vkGetDeviceProcAddr next = d ? d->gdpa : NULL;
    pthread_mutex_unlock(&lock);
    return next ? next(dev, name) : NULL;
}

EXPORT VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL vkllm_layer_GetInstanceProcAddr(VkInstance inst, const char *name) {
    if (!strcmp(name, "vkGetInstanceProcAddr")) return (PFN_vkVoidFunction)vkllm_layer_GetInstanceProcAddr;
    if (!strcmp(name, "vkGetDeviceProcAddr")) return (PFN_vkVoidFunction)vkllm_layer_GetDeviceProcAddr;
    PFN_vkVoidFunction f = find(instance_fns, sizeof instance_fns / sizeof *instance_fns, name);
    if (!f) f = find(device_fns, sizeof device_fns / sizeof *device_fns, name);
    if (f || !inst) return f;
    pthread_mutex_lock(&lock);
    instance_rec *in = instance_of(inst);
    PFN_vkGetInstanceProcAddr next = in ? in->gipa : NULL;
    pthread_mutex_unlock(&lock);
    return next ? next(inst, name) : NULL;
}

EXPORT VKAPI_ATTR VkResult VKAPI_CALL vkNegotiateLoaderLayerInterfaceVersion(VkNegotiateLayerInterface *v) {
    if (!v || v->sType != LAYER_NEGOTIATE_INTERFACE_STRUCT) return VK_ERROR_INITIALIZATION_FAILED;
    if (v->loaderLayerInterfaceVersion > 2) v->loaderLayerInterfaceVersion = 2;
    v->pfnGetInstanceProcAddr = vkllm_layer_GetInstanceProcAddr;
    v->pfnGetDeviceProcAddr = vkllm_layer_GetDeviceProcAddr;
    v->pfnGetPhysicalDeviceProcAddr = NULL;
    return VK_SUCCESS;
}

/* For tests in the same process: every device's counts so far. */
EXPORT void vkllm_layer_get_counts(vkllm_layer_counts *out) {
    pthread_mutex_lock(&lock);
    *out = totals;
    pthread_mutex_unlock(&lock);
}
