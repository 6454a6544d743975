/* The CPU backend's op kernels. Every op has a scalar reference (single thread, double
 * accumulation: the oracle every other kernel is tested against) and a fast threaded version.
 * All tensors must have host `data`; nodes are the ones described in core/graph.h. */
#ifndef VKL_CPU_OPS_H
#define VKL_CPU_OPS_H

#include "cpu_kernels.h"
#include "graph.h"

/* Whether the CPU kernels handle this node (op, types, layouts). */
bool vkl_cpu_op_supported(const vkl_tensor *node);

/* The oracle. */
void vkl_cpu_op_ref(const vkl_tensor *node);

/* Scratch bytes the fast kernel needs for this node with n_threads workers. */
size_t vkl_cpu_op_work_size(const vkl_tensor *node, int n_threads);
/* Fast kernel; tp may be NULL (one thread); work holds vkl_cpu_op_work_size(node, threads) bytes. */
void vkl_cpu_op_fast(vkl_threadpool *tp, const vkl_tensor *node, void *work);

/* n consecutive MUL_MAT nodes with the same activations (src[1]) and weight type and row length
 * (n <= VKL_MATMUL_GROUP_MAX), run as one threaded matmul; work as for nodes[0]. */
void vkl_cpu_mul_mat_group(vkl_threadpool *tp, vkl_tensor *const *nodes, int n, void *work);

/* The CPU backend's read_bandwidth op (cpu_bandwidth.c): host streaming read with the backend's
 * thread count. */
int vkl_cpu_read_bandwidth(vkl_backend *be, size_t bytes, double *bytes_per_s, vkl_error *err);

/* One attention tile for the AVX-512 kernel (cpu_ops_avx512.c): R <= 64 query rows that share
 * one KV head, head dim hd (a multiple of 16, at most 256), K/V cache rows f16 or f32.
 * qt and st are scratch of hd and jmax rows of `stride` floats
 * (stride >= R rounded up to 16, a multiple of 16). */
typedef struct vkl_attn_tile {
    int hd, R, stride;
    const float *const *q; /* R query rows */
    float *const *o;       /* R output rows */
    const int64_t *lim;    /* last key position each row attends to */
    int64_t jmax;          /* max(lim) + 1 */
    const uint8_t *k, *v;  /* the KV head's slice of cache row 0 */
    size_t ks, vs;         /* cache row strides (bytes) */
    int k_f16, v_f16;
    float scale;
    float *qt, *st;
} vkl_attn_tile;
void vkl_attn_tile_avx512(const vkl_attn_tile *a);
void vkl_swiglu_avx512(const float *g, const float *u, float *out, int64_t n);

/* Exact f16 -> f32 conversion of a row (branch-free, vectorisable). */
void vkl_cpu_f16_to_f32_row(const uint16_t *src, float *dst, int64_t n);

#endif
