/* Suballocating Vulkan allocator and staging ring; see vk_mem.h. */
#include "vk_mem.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_BLOCK_SIZE ((VkDeviceSize)256 << 20)
#define DEFAULT_STAGING_SIZE ((VkDeviceSize)32 << 20)

typedef struct free_range {
    VkDeviceSize offset, size;
} free_range;

typedef struct mem_block {
    VkDeviceMemory memory; /* VK_NULL_HANDLE: slot unused */
    VkBuffer buffer;
    VkDeviceSize size, used;
    uint8_t *mapped;
    vkl_vk_mem_kind kind;
    free_range *free; /* sorted by offset, coalesced */
    int n_free, cap_free;
} mem_block;

/* One half of the staging ring: a host-visible buffer slice, a command buffer and its fence. */
typedef struct staging_slot {
    VkCommandBuffer cmd;
    VkFence fence;
    bool pending;
} staging_slot;

struct vkl_vk_allocator {
    vkl_vk_context *ctx;
    VkDeviceSize block_size, alignment;
    int mem_type[VKL_VK_MEM_KIND_COUNT];
    bool mapped[VKL_VK_MEM_KIND_COUNT];
    mem_block *blocks;
    int n_blocks, cap_blocks;
    /* staging ring (created on first use) */
    VkDeviceSize staging_size;
    vkl_vk_buffer staging;
    VkCommandPool pool;
    staging_slot slots[2];
};

static const char *kind_name(vkl_vk_mem_kind k) {
    return k == VKL_VK_MEM_DEVICE ? "device" : "host";
}

/* A throwaway buffer to learn which memory types storage buffers may use. */
static uint32_t buffer_type_bits(vkl_vk_context *ctx) {
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                             .size = 1 << 20,
                             .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
                                      VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT |
                                      VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                      VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                             .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkBuffer b;
    if (vkCreateBuffer(ctx->device, &bi, NULL, &b) != VK_SUCCESS) return ~0u;
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(ctx->device, b, &req);
    vkDestroyBuffer(ctx->device, b, NULL);
    return req.memoryTypeBits;
}

vkl_vk_allocator *vkl_vk_allocator_create(vkl_vk_context *ctx, VkDeviceSize block_size,
                                          VkDeviceSize staging_size, vkl_error *err) {
    vkl_vk_allocator *a = vkl_calloc(1, sizeof *a, err);
    if (!a) return NULL;
    a->ctx = ctx;
    VkDeviceSize max_alloc = ctx->info.max_memory_allocation_size;
    a->block_size = block_size ? block_size : DEFAULT_BLOCK_SIZE;
    if (max_alloc && a->block_size > max_alloc) a->block_size = max_alloc;
    a->alignment = VKL_MAX(ctx->limits.minStorageBufferOffsetAlignment, (VkDeviceSize)16);
    a->staging_size = staging_size ? staging_size : DEFAULT_STAGING_SIZE;

    uint32_t bits = buffer_type_bits(ctx);
    const VkMemoryPropertyFlags DL = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT,
                                HV = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT,
                                HC = VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                                CA = VK_MEMORY_PROPERTY_HOST_CACHED_BIT;
    if (ctx->info.uma)
        a->mem_type[VKL_VK_MEM_DEVICE] = vkl_vk_find_memory_type(ctx, bits, DL | HV | HC, 0);
    else
        a->mem_type[VKL_VK_MEM_DEVICE] = -1;
    if (a->mem_type[VKL_VK_MEM_DEVICE] < 0)
        a->mem_type[VKL_VK_MEM_DEVICE] = vkl_vk_find_memory_type(ctx, bits, DL, 0);
    a->mem_type[VKL_VK_MEM_HOST] = vkl_vk_find_memory_type(ctx, bits, HV | HC, CA);
    for (int k = 0; k < VKL_VK_MEM_KIND_COUNT; k++) {
        if (a->mem_type[k] < 0) {
            vkl_fail(err, "device %s has no %s memory type usable for storage buffers",
                     ctx->info.props.deviceName, kind_name((vkl_vk_mem_kind)k));
            free(a);
            return NULL;
        }
        VkMemoryPropertyFlags fl = ctx->info.mem.memoryTypes[a->mem_type[k]].propertyFlags;
        a->mapped[k] = (fl & (HV | HC)) == (HV | HC);
    }
    return a;
}

static void block_release(vkl_vk_allocator *a, mem_block *b) {
    VkDevice dev = a->ctx->device;
    if (b->mapped) vkUnmapMemory(dev, b->memory);
    if (b->buffer) vkDestroyBuffer(dev, b->buffer, NULL);
    a->ctx->buffer_generation++;
    if (b->memory) vkFreeMemory(dev, b->memory, NULL);
    free(b->free);
    memset(b, 0, sizeof *b);
}

void vkl_vk_allocator_destroy(vkl_vk_allocator *a) {
    if (!a) return;
    VkDevice dev = a->ctx->device;
    for (int i = 0; i < 2; i++) {
        if (a->slots[i].pending) vkWaitForFences(dev, 1, &a->slots[i].fence, VK_TRUE, UINT64_MAX);
        if (a->slots[i].fence) vkDestroyFence(dev, a->slots[i].fence, NULL);
    }
    if (a->pool) vkDestroyCommandPool(dev, a->pool, NULL);
    for (int i = 0; i < a->n_blocks; i++) block_release(a, &a->blocks[i]);
    free(a->blocks);
    free(a);
}

/* Heap usage summary for error messages. */
static void heap_report(const vkl_vk_allocator *a, vkl_vk_mem_kind kind, char *buf, size_t n) {
    const vkl_vk_context *ctx = a->ctx;
    uint32_t heap = ctx->info.mem.memoryTypes[a->mem_type[kind]].heapIndex;
    vkl_vk_mem_stats st;
    vkl_vk_mem_get_stats(a, kind, &st);
    char s1[32], s2[32], s3[32], s4[32];
    VkDeviceSize heap_size = ctx->info.mem.memoryHeaps[heap].size;
    VkDeviceSize budget = ctx->info.heap_budget[heap];
    snprintf(buf, n, "%s memory: %s in use in %u blocks of %s reserved; heap %u has %s%s%s",
             kind_name(kind), vkl_fmt_bytes(st.used, s1, sizeof s1), st.blocks,
             vkl_fmt_bytes(st.reserved, s2, sizeof s2), heap,
             vkl_fmt_bytes(heap_size, s3, sizeof s3), budget ? ", budget " : "",
             budget ? vkl_fmt_bytes(budget, s4, sizeof s4) : "");
}

/* Fault injection for the out-of-memory tests: VKLLM_FAIL_DEVICE_ALLOC=N (read once) makes the Nth
 * vkAllocateMemory of the process (counting from 1, every memory kind) fail as
 * VK_ERROR_OUT_OF_DEVICE_MEMORY; "N+" makes the Nth and every later one fail (memory exhausted). */
static bool inject_alloc_failure(void) {
    static atomic_long fail_at = -2; /* -2: not read yet, -1: off */
    static atomic_bool and_later;
    static atomic_long n_allocs;
    long at = atomic_load(&fail_at);
    if (at == -2) {
        const char *s = getenv("VKLLM_FAIL_DEVICE_ALLOC");
        char *end = NULL;
        long v = s ? strtol(s, &end, 10) : -1;
        bool plus = s && end != s && !strcmp(end, "+");
        at = s && end != s && (!*end || plus) && v >= 1 ? v : -1;
        atomic_store(&and_later, plus);
        atomic_store(&fail_at, at);
    }
    if (at < 1) return false;
    long n = atomic_fetch_add(&n_allocs, 1) + 1;
    return n == at || (n > at && atomic_load(&and_later));
}

static int block_create(vkl_vk_allocator *a, vkl_vk_mem_kind kind, VkDeviceSize size,
                        vkl_error *err) {
    VkDevice dev = a->ctx->device;
    if (a->n_blocks == a->cap_blocks) {
        int cap = a->cap_blocks ? 2 * a->cap_blocks : 8;
        mem_block *nb = realloc(a->blocks, (size_t)cap * sizeof *nb);
        if (!nb) return vkl_fail(err, "out of host memory for the block table");
        memset(nb + a->cap_blocks, 0, (size_t)(cap - a->cap_blocks) * sizeof *nb);
        a->blocks = nb;
        a->cap_blocks = cap;
    }
    mem_block *b = &a->blocks[a->n_blocks];
    memset(b, 0, sizeof *b);
    b->kind = kind;
    b->size = size;
    char s1[32], rep[256];
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                             .size = size,
                             .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
                                      VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT |
                                      VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                      VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                             .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkResult r = vkCreateBuffer(dev, &bi, NULL, &b->buffer);
    if (r != VK_SUCCESS) {
        b->buffer = VK_NULL_HANDLE;
        vkl_fail(err, "vkCreateBuffer of %s failed: %s", vkl_fmt_bytes(size, s1, sizeof s1),
                 vkl_vk_result_name(r));
        goto fail;
    }
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(dev, b->buffer, &req);
    VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                               .allocationSize = req.size,
                               .memoryTypeIndex = (uint32_t)a->mem_type[kind]};
    r = inject_alloc_failure() ? VK_ERROR_OUT_OF_DEVICE_MEMORY : vkAllocateMemory(dev, &ai, NULL, &b->memory);
    if (r != VK_SUCCESS) {
        b->memory = VK_NULL_HANDLE;
        heap_report(a, kind, rep, sizeof rep);
        vkl_fail(err, "cannot allocate a %s block of %s %s memory (%s); %s",
                 vkl_fmt_bytes(size, s1, sizeof s1), a->ctx->info.props.deviceName,
                 kind_name(kind), vkl_vk_result_name(r), rep);
        goto fail;
    }
    r = vkBindBufferMemory(dev, b->buffer, b->memory, 0);
    if (r != VK_SUCCESS) {
        vkl_fail(err, "vkBindBufferMemory failed: %s", vkl_vk_result_name(r));
        goto fail;
    }
    if (a->mapped[kind]) {
        void *p = NULL;
        r = vkMapMemory(dev, b->memory, 0, VK_WHOLE_SIZE, 0, &p);
        if (r != VK_SUCCESS) {
            vkl_fail(err, "vkMapMemory failed: %s", vkl_vk_result_name(r));
            goto fail;
        }
        b->mapped = p;
    }
    b->free = malloc(4 * sizeof *b->free);
    if (!b->free) {
        vkl_fail(err, "out of host memory");
        goto fail;
    }
    b->cap_free = 4;
    b->n_free = 1;
    b->free[0] = (free_range){0, size};
    return a->n_blocks++;
fail:
    block_release(a, b);
    return -1;
}

/* First fit in one block; false when no free range is large enough. */
static bool block_take(mem_block *b, VkDeviceSize size, VkDeviceSize align, VkDeviceSize *off) {
    for (int i = 0; i < b->n_free; i++) {
        free_range *f = &b->free[i];
        VkDeviceSize start = VKL_ALIGN_UP(f->offset, align);
        if (start < f->offset || start - f->offset > f->size || f->size - (start - f->offset) < size)
            continue;
        VkDeviceSize end = start + size, fend = f->offset + f->size;
        /* start is aligned and every range starts aligned (sizes are rounded), so start == offset */
        if (end == fend) {
            memmove(f, f + 1, (size_t)(b->n_free - i - 1) * sizeof *f);
            b->n_free--;
        } else {
            f->offset = end;
            f->size = fend - end;
        }
        *off = start;
        return true;
    }
    return false;
}

static int block_give(mem_block *b, VkDeviceSize off, VkDeviceSize size) {
    int i = 0;
    while (i < b->n_free && b->free[i].offset < off) i++;
    bool join_prev = i > 0 && b->free[i - 1].offset + b->free[i - 1].size == off;
    bool join_next = i < b->n_free && off + size == b->free[i].offset;
    if (join_prev && join_next) {
        b->free[i - 1].size += size + b->free[i].size;
        memmove(&b->free[i], &b->free[i + 1], (size_t)(b->n_free - i - 1) * sizeof *b->free);
        b->n_free--;
    } else if (join_prev) {
        b->free[i - 1].size += size;
    } else if (join_next) {
        b->free[i].offset = off;
        b->free[i].size += size;
    } else {
        if (b->n_free == b->cap_free) {
            free_range *nf = realloc(b->free, (size_t)b->cap_free * 2 * sizeof *nf);
            if (!nf) return -1; /* the range leaks inside the block; the block stays valid */
            b->free = nf;
            b->cap_free *= 2;
        }
        memmove(&b->free[i + 1], &b->free[i], (size_t)(b->n_free - i) * sizeof *b->free);
        b->free[i] = (free_range){off, size};
        b->n_free++;
    }
    return 0;
}

int vkl_vk_alloc(vkl_vk_allocator *a, vkl_vk_mem_kind kind, VkDeviceSize size, vkl_vk_buffer *out,
                 vkl_error *err) {
    memset(out, 0, sizeof *out);
    out->block = -1;
    if (size == 0) return vkl_fail(err, "vulkan: zero-size allocation");
    if ((int)kind < 0 || kind >= VKL_VK_MEM_KIND_COUNT) return vkl_fail(err, "bad memory kind");
    VkDeviceSize asize = VKL_ALIGN_UP(size, a->alignment);
    if (asize < size) return vkl_fail(err, "vulkan: allocation size overflows");
    VkDeviceSize off = 0;
    int bi = -1;
    for (int i = 0; i < a->n_blocks && bi < 0; i++)
        if (a->blocks[i].memory && a->blocks[i].kind == kind &&
            block_take(&a->blocks[i], asize, a->alignment, &off))
            bi = i;
    if (bi < 0) {
        VkDeviceSize max_alloc = a->ctx->info.max_memory_allocation_size;
        if (max_alloc && asize > max_alloc) {
            char s1[32], s2[32];
            return vkl_fail(err, "vulkan: cannot allocate %s of %s memory: the device's maximum "
                                 "single allocation is %s",
                            vkl_fmt_bytes(size, s1, sizeof s1), kind_name(kind),
                            vkl_fmt_bytes(max_alloc, s2, sizeof s2));
        }
        vkl_error e2;
        /* host blocks (staging, readback) are sized to the request, device blocks are shared */
        VkDeviceSize bsize = kind == VKL_VK_MEM_DEVICE ? VKL_MAX(asize, a->block_size)
                                                       : VKL_ALIGN_UP(asize, (VkDeviceSize)1 << 20);
        bi = block_create(a, kind, bsize, &e2);
        if (bi < 0 && asize < a->block_size) bi = block_create(a, kind, asize, &e2);
        if (bi < 0) {
            char s1[32];
            return vkl_fail(err, "vulkan: allocating %s failed: %s",
                            vkl_fmt_bytes(size, s1, sizeof s1), e2.msg);
        }
        if (!block_take(&a->blocks[bi], asize, a->alignment, &off))
            return vkl_fail(err, "vulkan: internal allocator error");
    }
    mem_block *b = &a->blocks[bi];
    b->used += asize;
    out->buffer = b->buffer;
    out->offset = off;
    out->size = size;
    out->mapped = b->mapped ? b->mapped + off : NULL;
    out->block = bi;
    out->kind = kind;
    return 0;
}

void vkl_vk_free(vkl_vk_allocator *a, vkl_vk_buffer *buf) {
    if (!a || !buf || buf->block < 0 || buf->size == 0) return;
    if (buf->block < a->n_blocks) {
        mem_block *b = &a->blocks[buf->block];
        VkDeviceSize asize = VKL_ALIGN_UP(buf->size, a->alignment);
        if (b->buffer == buf->buffer && block_give(b, buf->offset, asize) == 0) b->used -= asize;
    }
    memset(buf, 0, sizeof *buf);
    buf->block = -1;
}

vkl_vk_range vkl_vk_buffer_range(const vkl_vk_buffer *b) {
    return (vkl_vk_range){b->buffer, b->offset, b->size};
}

vkl_vk_range vkl_vk_buffer_sub(const vkl_vk_buffer *b, VkDeviceSize offset, VkDeviceSize size) {
    return (vkl_vk_range){b->buffer, b->offset + offset, size};
}

void vkl_vk_mem_get_stats(const vkl_vk_allocator *a, vkl_vk_mem_kind kind, vkl_vk_mem_stats *out) {
    memset(out, 0, sizeof *out);
    for (int i = 0; i < a->n_blocks; i++) {
        const mem_block *b = &a->blocks[i];
        if (!b->memory || b->kind != kind) continue;
        out->used += b->used;
        out->reserved += b->size;
        out->blocks++;
    }
}

VkDeviceSize vkl_vk_mem_alignment(const vkl_vk_allocator *a) { return a->alignment; }
bool vkl_vk_mem_device_mapped(const vkl_vk_allocator *a) { return a->mapped[VKL_VK_MEM_DEVICE]; }

/* ---- staging ring ------------------------------------------------------------------------- */

static int staging_init(vkl_vk_allocator *a, vkl_error *err) {
    if (a->pool) return 0;
    VkDevice dev = a->ctx->device;
    if (vkl_vk_alloc(a, VKL_VK_MEM_HOST, a->staging_size, &a->staging, err)) return -1;
    VkCommandPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                  .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                  .queueFamilyIndex = a->ctx->compute_family};
    VkResult r = vkCreateCommandPool(dev, &pi, NULL, &a->pool);
    if (r != VK_SUCCESS) {
        a->pool = VK_NULL_HANDLE;
        return vkl_fail(err, "vkCreateCommandPool failed: %s", vkl_vk_result_name(r));
    }
    for (int i = 0; i < 2; i++) {
        VkCommandBufferAllocateInfo ci = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                          .commandPool = a->pool,
                                          .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                          .commandBufferCount = 1};
        VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        if ((r = vkAllocateCommandBuffers(dev, &ci, &a->slots[i].cmd)) != VK_SUCCESS ||
            (r = vkCreateFence(dev, &fi, NULL, &a->slots[i].fence)) != VK_SUCCESS)
            return vkl_fail(err, "staging setup failed: %s", vkl_vk_result_name(r));
    }
    return 0;
}

static int slot_wait(vkl_vk_allocator *a, staging_slot *s, vkl_error *err) {
    if (!s->pending) return 0;
    VkResult r = vkWaitForFences(a->ctx->device, 1, &s->fence, VK_TRUE, UINT64_MAX);
    s->pending = false;
    if (r != VK_SUCCESS) return vkl_fail(err, "vkWaitForFences failed: %s", vkl_vk_result_name(r));
    vkResetFences(a->ctx->device, 1, &s->fence);
    return 0;
}

/* Records and submits one copy through slot s; to_device: staging -> b, else b -> staging. */
static int slot_copy(vkl_vk_allocator *a, staging_slot *s, VkDeviceSize staging_off,
                     const vkl_vk_buffer *b, VkDeviceSize off, VkDeviceSize n, bool to_device,
                     vkl_error *err) {
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VkResult r = vkBeginCommandBuffer(s->cmd, &bi);
    if (r != VK_SUCCESS) return vkl_fail(err, "vkBeginCommandBuffer: %s", vkl_vk_result_name(r));
    /* Earlier compute work may use the destination / produce the source. */
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_SHADER_READ_BIT,
                          .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT};
    vkCmdPipelineBarrier(s->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT,
                         0, 1, &mb, 0, NULL, 0, NULL);
    VkBufferCopy c = {.srcOffset = to_device ? a->staging.offset + staging_off : b->offset + off,
                      .dstOffset = to_device ? b->offset + off : a->staging.offset + staging_off,
                      .size = n};
    vkCmdCopyBuffer(s->cmd, to_device ? a->staging.buffer : b->buffer,
                    to_device ? b->buffer : a->staging.buffer, 1, &c);
    VkMemoryBarrier mb2 = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                           .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                           .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                                            VK_ACCESS_HOST_READ_BIT};
    vkCmdPipelineBarrier(s->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_HOST_BIT, 0, 1,
                         &mb2, 0, NULL, 0, NULL);
    if ((r = vkEndCommandBuffer(s->cmd)) != VK_SUCCESS)
        return vkl_fail(err, "vkEndCommandBuffer: %s", vkl_vk_result_name(r));
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                       .commandBufferCount = 1,
                       .pCommandBuffers = &s->cmd};
    if ((r = vkQueueSubmit(a->ctx->compute_queue, 1, &si, s->fence)) != VK_SUCCESS)
        return vkl_fail(err, "vkQueueSubmit: %s", vkl_vk_result_name(r));
    s->pending = true;
    return 0;
}

static int check_range(const vkl_vk_buffer *b, VkDeviceSize off, VkDeviceSize n, vkl_error *err) {
    if (!b || b->block < 0) return vkl_fail(err, "vulkan: copy to/from an unallocated buffer");
    if (off > b->size || n > b->size - off)
        return vkl_fail(err, "vulkan: copy of %llu bytes at %llu exceeds the buffer (%llu bytes)",
                        (unsigned long long)n, (unsigned long long)off,
                        (unsigned long long)b->size);
    return 0;
}

int vkl_vk_upload(vkl_vk_allocator *a, const vkl_vk_buffer *b, VkDeviceSize offset,
                  const void *src, VkDeviceSize size, vkl_error *err) {
    if (check_range(b, offset, size, err)) return -1;
    if (size == 0) return 0;
    if (b->mapped) {
        memcpy(b->mapped + offset, src, (size_t)size);
        return 0;
    }
    if (staging_init(a, err)) return -1;
    /* Two halves: fill one while the other's copy runs. */
    VkDeviceSize half = a->staging_size / 2, done = 0;
    int cur = 0;
    while (done < size) {
        staging_slot *s = &a->slots[cur];
        if (slot_wait(a, s, err)) return -1;
        VkDeviceSize n = VKL_MIN(half, size - done);
        memcpy(a->staging.mapped + (VkDeviceSize)cur * half, (const uint8_t *)src + done, (size_t)n);
        if (slot_copy(a, s, (VkDeviceSize)cur * half, b, offset + done, n, true, err)) return -1;
        done += n;
        cur ^= 1;
    }
    for (int i = 0; i < 2; i++)
        if (slot_wait(a, &a->slots[i], err)) return -1;
    return 0;
}

int vkl_vk_download(vkl_vk_allocator *a, const vkl_vk_buffer *b, VkDeviceSize offset, void *dst,
                    VkDeviceSize size, vkl_error *err) {
    if (check_range(b, offset, size, err)) return -1;
    if (size == 0) return 0;
    if (b->mapped) {
        memcpy(dst, b->mapped + offset, (size_t)size);
        return 0;
    }
    if (staging_init(a, err)) return -1;
    VkDeviceSize half = a->staging_size / 2, done = 0;
    while (done < size) {
        VkDeviceSize n = VKL_MIN(half, size - done);
        if (slot_copy(a, &a->slots[0], 0, b, offset + done, n, false, err)) return -1;
        if (slot_wait(a, &a->slots[0], err)) return -1;
        memcpy((uint8_t *)dst + done, a->staging.mapped, (size_t)n);
        done += n;
    }
    return 0;
}
