/* Vulkan memory: a suballocating allocator over large VkDeviceMemory blocks, each block backed by
 * one VkBuffer (storage + transfer usage), so a suballocation is (VkBuffer, offset, size).
 *
 * Kinds: DEVICE memory holds weights, KV cache and activations (device-local; on UMA devices such
 * as lavapipe or an iGPU it is also host-visible and mapped, and uploads are plain memcpy). HOST
 * memory is host-visible (cached when possible) for readback or host-side scratch. Uploads and
 * downloads of non-mapped memory go through a staging ring owned by the allocator.
 *
 * Offsets are aligned to max(minStorageBufferOffsetAlignment, 16), so every allocation can be
 * bound as a storage buffer at its start. A descriptor can bind at most maxStorageBufferRange
 * bytes; larger tensors are bound by range (vk_ops splits a matmul over row ranges). */
#ifndef VKL_VK_MEM_H
#define VKL_VK_MEM_H

#include "vk_device.h"

typedef enum vkl_vk_mem_kind {
    VKL_VK_MEM_DEVICE = 0, /* device-local (mapped too on UMA devices) */
    VKL_VK_MEM_HOST = 1,   /* host-visible, coherent, cached when available; always mapped */
    VKL_VK_MEM_KIND_COUNT
} vkl_vk_mem_kind;

/* One suballocation. `mapped` is non-NULL when the memory is host-visible. */
typedef struct vkl_vk_buffer {
    VkBuffer buffer;
    VkDeviceSize offset, size;
    uint8_t *mapped; /* points at `offset` already */
    int block;       /* allocator-internal; -1 for an empty buffer */
    vkl_vk_mem_kind kind;
} vkl_vk_buffer;

/* A byte range of a VkBuffer as the ops see it. */
typedef struct vkl_vk_range {
    VkBuffer buffer;
    VkDeviceSize offset, size;
} vkl_vk_range;

typedef struct vkl_vk_allocator vkl_vk_allocator;

/* block_size: bytes per VkDeviceMemory block (0: 256 MiB, clipped to the device's maximum
 * allocation size). staging_size: bytes of the upload/download ring (0: 32 MiB; unused on UMA). */
vkl_vk_allocator *vkl_vk_allocator_create(vkl_vk_context *ctx, VkDeviceSize block_size,
                                          VkDeviceSize staging_size, vkl_error *err);
void vkl_vk_allocator_destroy(vkl_vk_allocator *a);

/* Allocates `size` bytes (> 0). Requests larger than a block get a dedicated block. On failure
 * the message says what was asked and what is in use / available. */
int vkl_vk_alloc(vkl_vk_allocator *a, vkl_vk_mem_kind kind, VkDeviceSize size, vkl_vk_buffer *out,
                 vkl_error *err);
/* Frees (NULL or an already-freed/zeroed buffer is a no-op); zeroes *b. Blocks stay reserved. */
void vkl_vk_free(vkl_vk_allocator *a, vkl_vk_buffer *b);

/* Whole buffer, or a sub-range of it, as an op argument. */
vkl_vk_range vkl_vk_buffer_range(const vkl_vk_buffer *b);
vkl_vk_range vkl_vk_buffer_sub(const vkl_vk_buffer *b, VkDeviceSize offset, VkDeviceSize size);

/* Host <-> device copies of `size` bytes at byte `offset` inside b. Synchronous: they return when
 * the data has arrived (they wait for the queue; do not call while a sequence is being recorded
 * that touches the same memory). Mapped memory is copied directly. */
int vkl_vk_upload(vkl_vk_allocator *a, const vkl_vk_buffer *b, VkDeviceSize offset,
                  const void *src, VkDeviceSize size, vkl_error *err);
int vkl_vk_download(vkl_vk_allocator *a, const vkl_vk_buffer *b, VkDeviceSize offset, void *dst,
                    VkDeviceSize size, vkl_error *err);

typedef struct vkl_vk_mem_stats {
    VkDeviceSize used;     /* bytes in live allocations (with alignment padding) */
    VkDeviceSize reserved; /* bytes in VkDeviceMemory blocks */
    uint32_t blocks;
} vkl_vk_mem_stats;
void vkl_vk_mem_get_stats(const vkl_vk_allocator *a, vkl_vk_mem_kind kind, vkl_vk_mem_stats *out);

/* Alignment of allocation offsets (and the one binding offsets are rounded down to). */
VkDeviceSize vkl_vk_mem_alignment(const vkl_vk_allocator *a);
/* Whether DEVICE memory is host-mapped (UMA). */
bool vkl_vk_mem_device_mapped(const vkl_vk_allocator *a);

#endif
