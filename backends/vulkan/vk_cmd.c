/* Dispatch sequences; see vk_cmd.h. */
#include "vk_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SETS_PER_POOL 512
#define MAX_TIMESTAMPS 4096
/* Descriptor sets are kept across sequences, keyed by their bindings, so that recording the same
 * graph again (the next token) writes no descriptors; beyond this many the pools are reset at the
 * next begin (positions change the attention bindings, so decode adds a few sets per token). */
#define SET_CACHE_LIMIT 4096
#define SET_CACHE_SLOTS (2 * SET_CACHE_LIMIT)

typedef struct texel_view {
    VkBuffer buffer;
    VkDeviceSize offset, size;
    VkFormat format;
    VkBufferView view;
} texel_view;

typedef struct access {
    VkBuffer buffer;
    VkDeviceSize begin, end;
    bool write;
} access;

typedef struct cached_set {
    uint64_t hash; /* 0: empty slot */
    VkDescriptorSetLayout layout;
    uint32_t n;
    vkl_vk_binding b[VKL_VK_MAX_BINDINGS];
    VkDescriptorSet set;
} cached_set;

struct vkl_vk_seq {
    vkl_vk_context *ctx;
    VkCommandPool pool;
    VkCommandBuffer cmd;
    VkFence fence;
    bool recording, pending;
    /* descriptor pools: all are reset at begin; `cur` is the one being allocated from */
    VkDescriptorPool *dpools;
    int n_dpools, cap_dpools, cur_dpool;
    /* buffer views of the texel bindings, and the descriptor sets; both live until the cache is
     * cleared (at a begin, when nothing is in flight) */
    texel_view *views;
    int n_views, cap_views;
    cached_set *sets; /* SET_CACHE_SLOTS, open addressing */
    int n_sets;
    bool clear_sets;
    uint64_t generation; /* the context's buffer_generation the cache was built under */
    /* accesses since the last barrier */
    access *acc;
    int n_acc, cap_acc;
    bool force_barrier;
    bool entry_pending; /* the barrier after earlier work is recorded before the first dispatch */
    uint32_t n_dispatch, n_barrier;
    /* timestamps: query 0 at the start, query i+1 after dispatch i */
    VkQueryPool queries;
    double ns_per_tick;
    uint64_t valid_mask;
    char (*labels)[32];
    double *times_ns;
    uint32_t n_timed;
};

int vkl_vk_bind_range(const vkl_vk_context *ctx, vkl_vk_range r, bool write, vkl_vk_binding *out,
                      uint32_t *delta, vkl_error *err) {
    VkDeviceSize align = VKL_MAX(ctx->limits.minStorageBufferOffsetAlignment, (VkDeviceSize)4);
    VkDeviceSize off = r.offset / align * align;
    VkDeviceSize size = r.size + (r.offset - off);
    if (r.buffer == VK_NULL_HANDLE) return vkl_fail(err, "vulkan: binding a null buffer");
    if (size > ctx->limits.maxStorageBufferRange)
        return vkl_fail(err, "vulkan: a binding of %llu bytes exceeds maxStorageBufferRange (%u)",
                        (unsigned long long)size, ctx->limits.maxStorageBufferRange);
    out->buffer = r.buffer;
    out->offset = off;
    out->size = VKL_ALIGN_UP(size, 4);
    out->write = write;
    out->texel_format = VK_FORMAT_UNDEFINED;
    if (delta) *delta = (uint32_t)(r.offset - off);
    return 0;
}

bool vkl_vk_texels_ok(const vkl_vk_context *ctx, vkl_vk_range r) {
    VkDeviceSize align = VKL_MAX(ctx->limits.minTexelBufferOffsetAlignment, (VkDeviceSize)16);
    return r.buffer != VK_NULL_HANDLE && r.offset % align == 0 && r.size % 16 == 0 && r.size > 0 &&
           r.size / 16 <= ctx->limits.maxTexelBufferElements;
}

int vkl_vk_bind_texels(const vkl_vk_context *ctx, vkl_vk_range r, vkl_vk_binding *out, vkl_error *err) {
    if (!vkl_vk_texels_ok(ctx, r))
        return vkl_fail(err, "vulkan: %llu bytes at offset %llu cannot be bound as a texel buffer",
                        (unsigned long long)r.size, (unsigned long long)r.offset);
    *out = (vkl_vk_binding){r.buffer, r.offset, r.size, false, VK_FORMAT_R32G32B32A32_UINT};
    return 0;
}

static void destroy_views(vkl_vk_seq *s) {
    for (int i = 0; i < s->n_views; i++) vkDestroyBufferView(s->ctx->device, s->views[i].view, NULL);
    s->n_views = 0;
}

/* The view of b, created on first use in this sequence. */
static VkBufferView texel_view_get(vkl_vk_seq *s, const vkl_vk_binding *b, vkl_error *err) {
    for (int i = 0; i < s->n_views; i++) {
        const texel_view *v = &s->views[i];
        if (v->buffer == b->buffer && v->offset == b->offset && v->size == b->size &&
            v->format == b->texel_format)
            return v->view;
    }
    if (s->n_views == s->cap_views) {
        int cap = s->cap_views ? 2 * s->cap_views : 64;
        texel_view *nv = realloc(s->views, (size_t)cap * sizeof *nv);
        if (!nv) {
            vkl_fail(err, "out of host memory");
            return VK_NULL_HANDLE;
        }
        s->views = nv;
        s->cap_views = cap;
    }
    VkBufferViewCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO,
                                 .buffer = b->buffer,
                                 .format = b->texel_format,
                                 .offset = b->offset,
                                 .range = b->size};
    VkBufferView view;
    VkResult r = vkCreateBufferView(s->ctx->device, &ci, NULL, &view);
    if (r != VK_SUCCESS) {
        vkl_fail(err, "vulkan: vkCreateBufferView failed: %s", vkl_vk_result_name(r));
        return VK_NULL_HANDLE;
    }
    s->views[s->n_views++] = (texel_view){b->buffer, b->offset, b->size, b->texel_format, view};
    return view;
}

vkl_vk_seq *vkl_vk_seq_create(vkl_vk_context *ctx, bool timestamps, vkl_error *err) {
    vkl_vk_seq *s = vkl_calloc(1, sizeof *s, err);
    if (!s) return NULL;
    s->ctx = ctx;
    VkDevice dev = ctx->device;
    VkCommandPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                  .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                  .queueFamilyIndex = ctx->compute_family};
    VkResult r = vkCreateCommandPool(dev, &pi, NULL, &s->pool);
    if (r != VK_SUCCESS) {
        s->pool = VK_NULL_HANDLE;
        goto fail;
    }
    VkCommandBufferAllocateInfo ci = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                      .commandPool = s->pool,
                                      .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                      .commandBufferCount = 1};
    if ((r = vkAllocateCommandBuffers(dev, &ci, &s->cmd)) != VK_SUCCESS) goto fail;
    VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if ((r = vkCreateFence(dev, &fi, NULL, &s->fence)) != VK_SUCCESS) {
        s->fence = VK_NULL_HANDLE;
        goto fail;
    }
    if (timestamps && ctx->timestamp_valid_bits && ctx->limits.timestampComputeAndGraphics) {
        VkQueryPoolCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                    .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                    .queryCount = MAX_TIMESTAMPS + 1};
        if ((r = vkCreateQueryPool(dev, &qi, NULL, &s->queries)) != VK_SUCCESS) {
            s->queries = VK_NULL_HANDLE;
            goto fail;
        }
        s->labels = vkl_calloc(MAX_TIMESTAMPS, sizeof *s->labels, err);
        s->times_ns = vkl_calloc(MAX_TIMESTAMPS, sizeof *s->times_ns, err);
        if (!s->labels || !s->times_ns) {
            vkl_vk_seq_destroy(s);
            return NULL;
        }
        s->ns_per_tick = ctx->limits.timestampPeriod;
        s->valid_mask = ctx->timestamp_valid_bits >= 64 ? ~0ull
                                                        : (1ull << ctx->timestamp_valid_bits) - 1;
    }
    return s;
fail:
    vkl_fail(err, "vulkan: creating a command sequence failed: %s", vkl_vk_result_name(r));
    vkl_vk_seq_destroy(s);
    return NULL;
}

static int seq_wait(vkl_vk_seq *s, vkl_error *err) {
    if (!s->pending) return 0;
    s->pending = false;
    /* (a later transfer's wait may have seen it finish already) */
    VkResult r = vkGetFenceStatus(s->ctx->device, s->fence);
    if (r == VK_NOT_READY) r = vkWaitForFences(s->ctx->device, 1, &s->fence, VK_TRUE, UINT64_MAX);
    if (r != VK_SUCCESS)
        return vkl_fail(err, "vulkan: waiting for a submission failed: %s", vkl_vk_result_name(r));
    vkResetFences(s->ctx->device, 1, &s->fence);
    if (s->queries && s->n_timed) {
        uint64_t ts[MAX_TIMESTAMPS + 1];
        r = vkGetQueryPoolResults(s->ctx->device, s->queries, 0, s->n_timed + 1,
                                  sizeof(uint64_t) * (s->n_timed + 1), ts, sizeof(uint64_t),
                                  VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
        for (uint32_t i = 0; i < s->n_timed; i++)
            s->times_ns[i] = r == VK_SUCCESS
                                 ? (double)((ts[i + 1] - ts[i]) & s->valid_mask) * s->ns_per_tick
                                 : -1.0;
    }
    return 0;
}

void vkl_vk_seq_destroy(vkl_vk_seq *s) {
    if (!s) return;
    VkDevice dev = s->ctx->device;
    if (s->pending) vkWaitForFences(dev, 1, &s->fence, VK_TRUE, UINT64_MAX);
    for (int i = 0; i < s->n_dpools; i++) vkDestroyDescriptorPool(dev, s->dpools[i], NULL);
    free(s->dpools);
    destroy_views(s);
    free(s->views);
    free(s->sets);
    free(s->acc);
    free(s->labels);
    free(s->times_ns);
    if (s->queries) vkDestroyQueryPool(dev, s->queries, NULL);
    if (s->fence) vkDestroyFence(dev, s->fence, NULL);
    if (s->pool) vkDestroyCommandPool(dev, s->pool, NULL);
    free(s);
}

int vkl_vk_seq_begin(vkl_vk_seq *s, vkl_error *err) {
    if (s->recording) return vkl_fail(err, "vulkan: sequence already recording");
    if (seq_wait(s, err)) return -1;
    if (s->clear_sets || s->n_sets > SET_CACHE_LIMIT || s->generation != s->ctx->buffer_generation) {
        for (int i = 0; i < s->n_dpools; i++) vkResetDescriptorPool(s->ctx->device, s->dpools[i], 0);
        destroy_views(s);
        if (s->sets) memset(s->sets, 0, SET_CACHE_SLOTS * sizeof *s->sets);
        s->n_sets = 0;
        s->cur_dpool = 0;
        s->clear_sets = false;
        s->generation = s->ctx->buffer_generation;
    }
    s->n_acc = 0;
    s->n_dispatch = s->n_barrier = 0;
    s->n_timed = 0;
    s->force_barrier = false;
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VkResult r = vkBeginCommandBuffer(s->cmd, &bi);
    if (r != VK_SUCCESS)
        return vkl_fail(err, "vulkan: vkBeginCommandBuffer failed: %s", vkl_vk_result_name(r));
    if (s->queries) {
        vkCmdResetQueryPool(s->cmd, s->queries, 0, MAX_TIMESTAMPS + 1);
        vkCmdWriteTimestamp(s->cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, s->queries, 0);
    }
    s->entry_pending = true;
    s->recording = true;
    return 0;
}

/* Whatever earlier submissions, transfers and this sequence's updates wrote is visible to its
 * shaders. */
static void entry_barrier(vkl_vk_seq *s) {
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT |
                                           VK_ACCESS_HOST_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT};
    vkCmdPipelineBarrier(s->cmd,
                         VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT |
                             VK_PIPELINE_STAGE_HOST_BIT,
                         VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    s->entry_pending = false;
}

int vkl_vk_seq_update(vkl_vk_seq *s, VkBuffer buffer, VkDeviceSize offset, const void *data, VkDeviceSize size,
                      vkl_error *err) {
    if (!s->recording || !s->entry_pending)
        return vkl_fail(err, "vulkan: buffer updates go between vkl_vk_seq_begin and the first dispatch");
    if (offset % 4 || size % 4 || size == 0 || size > VKL_VK_MAX_UPDATE)
        return vkl_fail(err, "vulkan: a buffer update of %llu bytes at %llu", (unsigned long long)size,
                        (unsigned long long)offset);
    vkCmdUpdateBuffer(s->cmd, buffer, offset, size, data);
    return 0;
}

static VkDescriptorSet alloc_set(vkl_vk_seq *s, VkDescriptorSetLayout layout, vkl_error *err) {
    VkDevice dev = s->ctx->device;
    for (;;) {
        if (s->cur_dpool < s->n_dpools) {
            VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                              .descriptorPool = s->dpools[s->cur_dpool],
                                              .descriptorSetCount = 1,
                                              .pSetLayouts = &layout};
            VkDescriptorSet set;
            VkResult r = vkAllocateDescriptorSets(dev, &ai, &set);
            if (r == VK_SUCCESS) return set;
            if (r != VK_ERROR_OUT_OF_POOL_MEMORY && r != VK_ERROR_FRAGMENTED_POOL) {
                vkl_fail(err, "vulkan: vkAllocateDescriptorSets failed: %s", vkl_vk_result_name(r));
                return VK_NULL_HANDLE;
            }
            s->cur_dpool++;
            continue;
        }
        if (s->n_dpools == s->cap_dpools) {
            int cap = s->cap_dpools ? 2 * s->cap_dpools : 4;
            VkDescriptorPool *np = realloc(s->dpools, (size_t)cap * sizeof *np);
            if (!np) {
                vkl_fail(err, "out of host memory");
                return VK_NULL_HANDLE;
            }
            s->dpools = np;
            s->cap_dpools = cap;
        }
        VkDescriptorPoolSize ps[2] = {{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, SETS_PER_POOL * VKL_VK_MAX_BINDINGS},
                                      {VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, SETS_PER_POOL * 2}};
        VkDescriptorPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                         .maxSets = SETS_PER_POOL,
                                         .poolSizeCount = 2,
                                         .pPoolSizes = ps};
        VkResult r = vkCreateDescriptorPool(dev, &pi, NULL, &s->dpools[s->n_dpools]);
        if (r != VK_SUCCESS) {
            vkl_fail(err, "vulkan: vkCreateDescriptorPool failed: %s", vkl_vk_result_name(r));
            return VK_NULL_HANDLE;
        }
        s->n_dpools++;
    }
}

static bool conflicts(const vkl_vk_seq *s, const vkl_vk_binding *b) {
    VkDeviceSize begin = b->offset, end = b->offset + b->size;
    for (int i = 0; i < s->n_acc; i++) {
        const access *a = &s->acc[i];
        if (a->buffer == b->buffer && a->begin < end && begin < a->end && (a->write || b->write))
            return true;
    }
    return false;
}

static uint64_t set_hash(VkDescriptorSetLayout layout, const vkl_vk_binding *b, uint32_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a over the fields */
    uint64_t v[4];
    for (uint32_t i = 0; i <= n; i++) {
        if (i == n) v[0] = (uint64_t)(uintptr_t)layout, v[1] = n, v[2] = v[3] = 0;
        else v[0] = (uint64_t)(uintptr_t)b[i].buffer, v[1] = b[i].offset, v[2] = b[i].size, v[3] = (uint64_t)b[i].texel_format;
        for (int k = 0; k < 4; k++)
            for (int byte = 0; byte < 8; byte++) h = (h ^ ((v[k] >> (8 * byte)) & 0xff)) * 1099511628211ull;
    }
    return h ? h : 1;
}

static bool same_set(const cached_set *c, VkDescriptorSetLayout layout, const vkl_vk_binding *b, uint32_t n) {
    if (c->layout != layout || c->n != n) return false;
    for (uint32_t i = 0; i < n; i++)
        if (c->b[i].buffer != b[i].buffer || c->b[i].offset != b[i].offset || c->b[i].size != b[i].size ||
            c->b[i].texel_format != b[i].texel_format)
            return false;
    return true;
}

/* A descriptor set holding these bindings: from the cache, or allocated and written (and cached
 * while there is room; the cache is cleared at a later begin). */
static VkDescriptorSet descriptor_set(vkl_vk_seq *s, const vkl_vk_pipeline *p, const vkl_vk_binding *bindings,
                                      uint32_t n_bindings, vkl_error *err) {
    if (!s->sets) s->sets = calloc(SET_CACHE_SLOTS, sizeof *s->sets); /* without it: no cache */
    const uint64_t h = set_hash(p->set_layout, bindings, n_bindings);
    cached_set *slot = NULL;
    for (uint32_t k = 0; s->sets && k < SET_CACHE_SLOTS; k++) {
        cached_set *c = &s->sets[(h + k) % SET_CACHE_SLOTS];
        if (c->hash == h && same_set(c, p->set_layout, bindings, n_bindings)) return c->set;
        if (!c->hash) {
            slot = c;
            break;
        }
    }
    VkBufferView views[VKL_VK_MAX_BINDINGS];
    for (uint32_t i = 0; i < n_bindings; i++)
        if (((p->texel_mask >> i) & 1u) && !(views[i] = texel_view_get(s, &bindings[i], err))) return VK_NULL_HANDLE;
    VkDescriptorSet set = alloc_set(s, p->set_layout, err);
    if (!set) return VK_NULL_HANDLE;
    VkDescriptorBufferInfo bi[VKL_VK_MAX_BINDINGS];
    VkWriteDescriptorSet w[VKL_VK_MAX_BINDINGS];
    for (uint32_t i = 0; i < n_bindings; i++) {
        const bool texel = (p->texel_mask >> i) & 1u;
        bi[i] = (VkDescriptorBufferInfo){bindings[i].buffer, bindings[i].offset, bindings[i].size};
        w[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                      .dstSet = set,
                                      .dstBinding = i,
                                      .descriptorCount = 1,
                                      .descriptorType = texel ? VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER
                                                              : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                      .pBufferInfo = texel ? NULL : &bi[i],
                                      .pTexelBufferView = texel ? &views[i] : NULL};
    }
    vkUpdateDescriptorSets(s->ctx->device, n_bindings, w, 0, NULL);
    if (slot && s->n_sets < SET_CACHE_SLOTS - SET_CACHE_SLOTS / 8) {
        slot->hash = h;
        slot->layout = p->set_layout;
        slot->n = n_bindings;
        memcpy(slot->b, bindings, n_bindings * sizeof *bindings);
        slot->set = set;
        s->n_sets++;
    } else {
        s->clear_sets = true; /* sets outside the cache: reclaim them at the next begin */
    }
    return set;
}

int vkl_vk_seq_dispatch(vkl_vk_seq *s, const vkl_vk_pipeline *p, const vkl_vk_binding *bindings,
                        uint32_t n_bindings, const void *push, uint32_t gx, uint32_t gy,
                        uint32_t gz, const char *label, vkl_error *err) {
    if (!s->recording) return vkl_fail(err, "vulkan: dispatch outside vkl_vk_seq_begin/submit");
    if (n_bindings != p->n_bindings)
        return vkl_fail(err, "vulkan: %s takes %u buffers, got %u", p->name, p->n_bindings, n_bindings);
    if (gx == 0 || gy == 0 || gz == 0) return 0;
    const VkPhysicalDeviceLimits *lim = &s->ctx->limits;
    if (gx > lim->maxComputeWorkGroupCount[0] || gy > lim->maxComputeWorkGroupCount[1] ||
        gz > lim->maxComputeWorkGroupCount[2])
        return vkl_fail(err, "vulkan: %s: grid %ux%ux%u exceeds the device limits", p->name, gx, gy, gz);
    for (uint32_t i = 0; i < n_bindings; i++) {
        const bool texel = (p->texel_mask >> i) & 1u;
        if (texel != (bindings[i].texel_format != VK_FORMAT_UNDEFINED))
            return vkl_fail(err, "vulkan: %s: binding %u is %s texel buffer", p->name, i,
                            texel ? "not a" : "a");
    }
    VkDescriptorSet set = descriptor_set(s, p, bindings, n_bindings, err);
    if (!set) return -1;

    if (s->entry_pending) {
        entry_barrier(s);
        s->n_acc = 0;
        s->force_barrier = false;
    }
    bool need = s->force_barrier;
    for (uint32_t i = 0; i < n_bindings && !need; i++) need = conflicts(s, &bindings[i]);
    if (need) {
        VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                              .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                              .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT};
        vkCmdPipelineBarrier(s->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                             VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
        s->n_acc = 0;
        s->n_barrier++;
        s->force_barrier = false;
    }
    if (s->n_acc + (int)n_bindings > s->cap_acc) {
        int cap = VKL_MAX(2 * s->cap_acc, s->n_acc + (int)n_bindings + 16);
        access *na = realloc(s->acc, (size_t)cap * sizeof *na);
        if (!na) return vkl_fail(err, "out of host memory");
        s->acc = na;
        s->cap_acc = cap;
    }
    for (uint32_t i = 0; i < n_bindings; i++)
        s->acc[s->n_acc++] = (access){bindings[i].buffer, bindings[i].offset,
                                      bindings[i].offset + bindings[i].size, bindings[i].write};

    vkCmdBindPipeline(s->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p->pipeline);
    vkCmdBindDescriptorSets(s->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p->layout, 0, 1, &set, 0, NULL);
    if (p->push_size) vkCmdPushConstants(s->cmd, p->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, p->push_size, push);
    vkCmdDispatch(s->cmd, gx, gy, gz);
    if (s->queries && s->n_timed < MAX_TIMESTAMPS) {
        vkCmdWriteTimestamp(s->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, s->queries, s->n_timed + 1);
        const char *l = label ? label : p->name;
        size_t len = strnlen(l, sizeof s->labels[0] - 1);
        memcpy(s->labels[s->n_timed], l, len);
        s->labels[s->n_timed][len] = 0;
        s->n_timed++;
    }
    s->n_dispatch++;
    return 0;
}

void vkl_vk_seq_barrier(vkl_vk_seq *s) { s->force_barrier = true; }

static int seq_submit(vkl_vk_seq *s, bool wait, vkl_error *err) {
    if (!s->recording) return vkl_fail(err, "vulkan: submit without vkl_vk_seq_begin");
    s->recording = false;
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_HOST_READ_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                                           VK_ACCESS_TRANSFER_WRITE_BIT};
    vkCmdPipelineBarrier(s->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0,
                         NULL, 0, NULL);
    VkResult r = vkEndCommandBuffer(s->cmd);
    if (r != VK_SUCCESS)
        return vkl_fail(err, "vulkan: vkEndCommandBuffer failed: %s", vkl_vk_result_name(r));
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                       .commandBufferCount = 1,
                       .pCommandBuffers = &s->cmd};
    r = vkQueueSubmit(s->ctx->compute_queue, 1, &si, s->fence);
    if (r != VK_SUCCESS)
        return vkl_fail(err, "vulkan: vkQueueSubmit failed: %s", vkl_vk_result_name(r));
    s->pending = true;
    return wait ? seq_wait(s, err) : 0;
}

int vkl_vk_seq_submit(vkl_vk_seq *s, vkl_error *err) { return seq_submit(s, true, err); }
int vkl_vk_seq_submit_async(vkl_vk_seq *s, vkl_error *err) { return seq_submit(s, false, err); }
int vkl_vk_seq_wait(vkl_vk_seq *s, vkl_error *err) { return seq_wait(s, err); }
bool vkl_vk_seq_pending(const vkl_vk_seq *s) { return s->pending; }

uint32_t vkl_vk_seq_dispatch_count(const vkl_vk_seq *s) { return s->n_dispatch; }
uint32_t vkl_vk_seq_barrier_count(const vkl_vk_seq *s) { return s->n_barrier; }

double vkl_vk_seq_dispatch_ns(const vkl_vk_seq *s, uint32_t i) {
    return s->queries && i < s->n_timed ? s->times_ns[i] : -1.0;
}

const char *vkl_vk_seq_dispatch_label(const vkl_vk_seq *s, uint32_t i) {
    return s->labels && i < s->n_timed ? s->labels[i] : "";
}
