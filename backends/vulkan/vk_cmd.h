/* Recording a sequence of compute dispatches into one command buffer: one submit per sequence,
 * a fence wait at the end, and pipeline barriers only where a dispatch touches memory that an
 * earlier dispatch since the last barrier wrote (or writes memory such a dispatch read).
 * Descriptor sets come from pools owned by the sequence and are recycled at vkl_vk_seq_begin.
 * Optional timestamp queries give the GPU time of every dispatch. */
#ifndef VKL_VK_CMD_H
#define VKL_VK_CMD_H

#include "vk_mem.h"
#include "vk_pipeline.h"

/* One descriptor: the bound range (offset aligned as the device requires, size <=
 * maxStorageBufferRange) and whether the shader writes it. texel_format other than
 * VK_FORMAT_UNDEFINED binds the range as a read-only uniform texel buffer of that format (the
 * sequence creates the buffer view). */
typedef struct vkl_vk_binding {
    VkBuffer buffer;
    VkDeviceSize offset, size;
    bool write;
    VkFormat texel_format;
} vkl_vk_binding;

/* Binds `r` as the device allows: the offset rounded down to minStorageBufferOffsetAlignment;
 * *delta receives r.offset - binding.offset (bytes the shader must add). -1 if the range does not
 * fit in maxStorageBufferRange. */
int vkl_vk_bind_range(const vkl_vk_context *ctx, vkl_vk_range r, bool write, vkl_vk_binding *out,
                      uint32_t *delta, vkl_error *err);

/* Binds `r` as a uniform texel buffer of 16-byte texels (VK_FORMAT_R32G32B32A32_UINT). r.offset
 * must be a multiple of minTexelBufferOffsetAlignment and r.size of 16; -1 otherwise or if the
 * range exceeds maxTexelBufferElements. */
int vkl_vk_bind_texels(const vkl_vk_context *ctx, vkl_vk_range r, vkl_vk_binding *out, vkl_error *err);
/* Whether vkl_vk_bind_texels can bind r. */
bool vkl_vk_texels_ok(const vkl_vk_context *ctx, vkl_vk_range r);

typedef struct vkl_vk_seq vkl_vk_seq;

/* timestamps: record a query after every dispatch (ignored if the queue has none). */
vkl_vk_seq *vkl_vk_seq_create(vkl_vk_context *ctx, bool timestamps, vkl_error *err);
void vkl_vk_seq_destroy(vkl_vk_seq *s);

/* Starts recording (waits for a previous submission first). */
int vkl_vk_seq_begin(vkl_vk_seq *s, vkl_error *err);
/* Records one dispatch; `label` (may be NULL) names it in the timings. */
int vkl_vk_seq_dispatch(vkl_vk_seq *s, const vkl_vk_pipeline *p, const vkl_vk_binding *bindings,
                        uint32_t n_bindings, const void *push, uint32_t gx, uint32_t gy,
                        uint32_t gz, const char *label, vkl_error *err);
/* Forces a full barrier before the next dispatch (e.g. after host-side writes through other
 * means). Normally not needed. */
void vkl_vk_seq_barrier(vkl_vk_seq *s);
/* Records vkCmdUpdateBuffer of size bytes (a multiple of 4, at most VKL_VK_MAX_UPDATE) at a
 * 4-byte aligned offset: small host data (inputs, one embedding row) carried by the command
 * buffer itself instead of a staging transfer. Only before the first dispatch; the dispatches see
 * the bytes. */
#define VKL_VK_MAX_UPDATE 65536u
int vkl_vk_seq_update(vkl_vk_seq *s, VkBuffer buffer, VkDeviceSize offset, const void *data, VkDeviceSize size,
                      vkl_error *err);
/* Ends, submits, and waits for completion; results are then visible to the host. */
int vkl_vk_seq_submit(vkl_vk_seq *s, vkl_error *err);
/* Ends and submits without waiting: vkl_vk_seq_wait (or the next begin) waits. Later submissions
 * to the queue (staging transfers) see the results. */
int vkl_vk_seq_submit_async(vkl_vk_seq *s, vkl_error *err);
int vkl_vk_seq_wait(vkl_vk_seq *s, vkl_error *err);
/* Whether a submission has not been waited for yet. */
bool vkl_vk_seq_pending(const vkl_vk_seq *s);

/* Counts of the last recorded sequence. */
uint32_t vkl_vk_seq_dispatch_count(const vkl_vk_seq *s);
uint32_t vkl_vk_seq_barrier_count(const vkl_vk_seq *s);
/* GPU time in nanoseconds of dispatch i of the last submitted sequence; -1 without timestamps. */
double vkl_vk_seq_dispatch_ns(const vkl_vk_seq *s, uint32_t i);
const char *vkl_vk_seq_dispatch_label(const vkl_vk_seq *s, uint32_t i);

#endif
