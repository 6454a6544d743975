/* The KV cache: per layer one K and one V tensor of [kv_dim, n_ctx] (f16 or f32) in buffers of a
 * backend (consecutive layers per buffer, each buffer at most min(max allocation, 1 GiB)). The
 * ATTENTION op writes the rows of the current batch at their positions. */
#ifndef VKL_KV_CACHE_H
#define VKL_KV_CACHE_H

#include "graph.h"

typedef struct vkl_kv_cache {
    vkl_backend *backend;
    vkl_buffer **bufs; /* n_bufs buffers (none for a cache of views) */
    int n_bufs;
    uint64_t bytes;    /* total storage */
    vkl_type type;
    int n_layer;
    int n_ctx;
    int64_t kv_dim;
    vkl_tensor *k, *v; /* n_layer each */
    int n_past;        /* positions 0..n_past-1 hold valid rows */
} vkl_kv_cache;

vkl_kv_cache *vkl_kv_cache_create(vkl_backend *be, int n_layer, int n_ctx, int64_t kv_dim, vkl_type type,
                                  vkl_error *err);
/* The tensors of a cache without storage (backend and buf NULL): every layer's K and V
 * descriptors, filled by the caller from the parts that hold the bytes, or left without storage
 * for a dry run of planning. */
vkl_kv_cache *vkl_kv_cache_create_views(int n_layer, int n_ctx, int64_t kv_dim, vkl_type type, vkl_error *err);
void vkl_kv_cache_free(vkl_kv_cache *kv);
/* Bytes the cache needs (for planning / messages). */
uint64_t vkl_kv_cache_bytes(int n_layer, int n_ctx, int64_t kv_dim, vkl_type type);
/* Layers per storage buffer for layers of layer_bytes on a device whose largest allocation is
 * max_alloc (0: unknown); the offload plan replays the same split. */
int vkl_kv_cache_layers_per_buffer(uint64_t layer_bytes, uint64_t max_alloc);

#endif
