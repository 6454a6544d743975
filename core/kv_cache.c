#include "kv_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t vkl_kv_cache_bytes(int n_layer, int n_ctx, int64_t kv_dim, vkl_type type) {
    return 2ull * (uint64_t)n_layer * (uint64_t)n_ctx * vkl_row_size(type, kv_dim);
}

int vkl_kv_cache_layers_per_buffer(uint64_t layer_bytes, uint64_t max_alloc) {
    uint64_t cap = (uint64_t)1 << 30;
    if (max_alloc && max_alloc < cap) cap = max_alloc;
    uint64_t n = layer_bytes ? cap / layer_bytes : 1;
    return n < 1 ? 1 : n > (1u << 30) ? 1 << 30 : (int)n;
}

/* Names and shapes layer l's K and V tensors (external: the cache owns their storage). */
static void init_layer(vkl_kv_cache *kv, int l) {
    vkl_tensor *t[2] = {&kv->k[l], &kv->v[l]};
    for (int j = 0; j < 2; j++) {
        char name[32];
        snprintf(name, sizeof name, "cache_%c_l%d", j ? 'v' : 'k', l);
        vkl_tensor_init(t[j], name, kv->type, kv->kv_dim, kv->n_ctx);
        t[j]->flags = VKL_TF_EXTERNAL;
    }
}

vkl_kv_cache *vkl_kv_cache_create(vkl_backend *be, int n_layer, int n_ctx, int64_t kv_dim, vkl_type type,
                                  vkl_error *err) {
    if (type != VKL_TYPE_F16 && type != VKL_TYPE_F32) {
        vkl_fail(err, "kv cache: type %s not supported (f16 or f32)", vkl_type_name(type));
        return NULL;
    }
    if (n_layer < 1 || n_ctx < 1 || kv_dim < 1) {
        vkl_fail(err, "kv cache: bad size (%d layers, %d positions, %lld dims)", n_layer, n_ctx, (long long)kv_dim);
        return NULL;
    }
    vkl_kv_cache *kv = vkl_calloc(1, sizeof *kv, err);
    if (!kv) return NULL;
    kv->backend = be;
    kv->type = type;
    kv->n_layer = n_layer;
    kv->n_ctx = n_ctx;
    kv->kv_dim = kv_dim;
    kv->k = vkl_calloc((size_t)n_layer, sizeof *kv->k, err);
    kv->v = vkl_calloc((size_t)n_layer, sizeof *kv->v, err);
    uint64_t layer_bytes = vkl_kv_cache_bytes(1, n_ctx, kv_dim, type);
    if (!kv->k || !kv->v) goto fail;
    if (layer_bytes > SIZE_MAX || (be->info.max_alloc && layer_bytes > be->info.max_alloc)) {
        char b[32];
        vkl_fail(err, "kv cache of %s per layer exceeds the largest allocation of %s",
                 vkl_fmt_bytes(layer_bytes, b, sizeof b), be->info.name);
        goto fail;
    }
    int per_buf = vkl_kv_cache_layers_per_buffer(layer_bytes, be->info.max_alloc);
    kv->bufs = vkl_calloc((size_t)(n_layer + per_buf - 1) / (size_t)per_buf, sizeof *kv->bufs, err);
    if (!kv->bufs) goto fail;
    size_t plane = (size_t)n_ctx * vkl_row_size(type, kv_dim);
    for (int first = 0; first < n_layer; first += per_buf) {
        int n = VKL_MIN(per_buf, n_layer - first);
        vkl_buffer *buf = be->ops->buffer_alloc(be, (size_t)layer_bytes * (size_t)n, err);
        if (!buf) {
            vkl_error_prefix(err, "kv cache");
            goto fail;
        }
        kv->bufs[kv->n_bufs++] = buf;
        kv->bytes += buf->size;
        for (int l = first; l < first + n; l++) {
            init_layer(kv, l);
            vkl_tensor *t[2] = {&kv->k[l], &kv->v[l]};
            for (int j = 0; j < 2; j++) {
                t[j]->buffer = buf;
                t[j]->offset = (size_t)(2 * (l - first) + j) * plane;
                t[j]->data = buf->host ? (char *)buf->host + t[j]->offset : NULL;
            }
        }
    }
    return kv;
fail:
    vkl_kv_cache_free(kv);
    return NULL;
}

vkl_kv_cache *vkl_kv_cache_create_views(int n_layer, int n_ctx, int64_t kv_dim, vkl_type type, vkl_error *err) {
    vkl_kv_cache *kv = vkl_calloc(1, sizeof *kv, err);
    if (!kv) return NULL;
    *kv = (vkl_kv_cache){.type = type, .n_layer = n_layer, .n_ctx = n_ctx, .kv_dim = kv_dim};
    kv->k = vkl_calloc((size_t)n_layer, sizeof *kv->k, err);
    kv->v = vkl_calloc((size_t)n_layer, sizeof *kv->v, err);
    if (!kv->k || !kv->v) {
        vkl_kv_cache_free(kv);
        return NULL;
    }
    for (int l = 0; l < n_layer; l++) init_layer(kv, l);
    return kv;
}

void vkl_kv_cache_free(vkl_kv_cache *kv) {
    if (!kv) return;
    for (int i = 0; i < kv->n_bufs; i++) kv->backend->ops->buffer_free(kv->backend, kv->bufs[i]);
    free(kv->bufs);
    free(kv->k);
    free(kv->v);
    free(kv);
}
