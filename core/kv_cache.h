/* The KV cache: per layer one K and one V tensor of [kv_dim, n_ctx] (f16 or f32) in one buffer of
 * a backend. The ATTENTION op writes the rows of the current batch at their positions. */
#ifndef VKL_KV_CACHE_H
#define VKL_KV_CACHE_H

#include "graph.h"

typedef struct vkl_kv_cache {
    vkl_backend *backend;
    vkl_buffer *buf;
    vkl_type type;
    int n_layer;
    int n_ctx;
    int64_t kv_dim;
    vkl_tensor *k, *v; /* n_layer each */
    int n_past;        /* positions 0..n_past-1 hold valid rows */
} vkl_kv_cache;

vkl_kv_cache *vkl_kv_cache_create(vkl_backend *be, int n_layer, int n_ctx, int64_t kv_dim, vkl_type type,
                                  vkl_error *err);
void vkl_kv_cache_free(vkl_kv_cache *kv);
/* Bytes the cache needs (for planning / messages). */
uint64_t vkl_kv_cache_bytes(int n_layer, int n_ctx, int64_t kv_dim, vkl_type type);

#endif
