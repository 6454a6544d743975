/* CPU compute kernels shared by the CPU backend: a thread pool and the matrix multiply
 * (reference and fast). W is a weight matrix of M rows of K elements of `wtype` (row stride in
 * bytes), x holds N activation rows of K floats, y receives N rows of M floats:
 *     y[t*M + r] = sum_k W[r][k] * x[t*K + k]                                                 */
#ifndef VKL_CPU_KERNELS_H
#define VKL_CPU_KERNELS_H

#include "common.h"
#include "types.h"

typedef struct vkl_threadpool vkl_threadpool;

/* n_threads >= 1; the calling thread is worker 0. */
vkl_threadpool *vkl_threadpool_create(int n_threads, vkl_error *err);
void vkl_threadpool_destroy(vkl_threadpool *tp);
int vkl_threadpool_size(const vkl_threadpool *tp);
/* Runs fn(ctx, ith, nth) on every worker and returns when all have finished. */
void vkl_threadpool_run(vkl_threadpool *tp, void (*fn)(void *ctx, int ith, int nth), void *ctx);

/* The oracle: dequantizes with the reference to_f32 and accumulates in double. */
void vkl_matmul_ref(vkl_type wtype, const void *W, size_t w_row_stride, int64_t M, int64_t K,
                    const float *x, int64_t N, float *y);

/* Fast path (SIMD chosen at run time, threads); every supported type. `scratch` must hold
 * vkl_matmul_scratch_size(wtype, K, N) bytes (activation quantization etc.); it may be NULL
 * when that size is 0. tp may be NULL (single-threaded). */
size_t vkl_matmul_scratch_size(vkl_type wtype, int64_t K, int64_t N);
void vkl_matmul(vkl_threadpool *tp, vkl_type wtype, const void *W, size_t w_row_stride, int64_t M,
                int64_t K, const float *x, int64_t N, float *y, void *scratch);

/* Several weight matrices of one type and row length K applied to the same activations (e.g. the
 * Q, K and V projections): the activations are converted once and all rows go to the workers in
 * one run. Same scratch size as one vkl_matmul with these K and N. */
#define VKL_MATMUL_GROUP_MAX 4
typedef struct vkl_matmul_desc {
    const void *W;
    size_t w_row_stride;
    int64_t M;
    float *y; /* N rows of M floats */
} vkl_matmul_desc;
void vkl_matmul_group(vkl_threadpool *tp, vkl_type wtype, int n, const vkl_matmul_desc *d, int64_t K,
                      const float *x, int64_t N, void *scratch);

/* The SIMD level the fast kernels use on this machine: "avx512", "avxvnni", "avx2", "scalar"... */
const char *vkl_cpu_simd_level(void);
/* For tests and benchmarks: makes vkl_matmul use the kernels of `level` ("scalar", "avx2",
 * "avxvnni", "avx512"; NULL restores the best). Returns -1 if this CPU lacks that level. Not thread-safe
 * with respect to matmuls in flight. */
int vkl_cpu_force_simd(const char *level);
/* Tests: use the batch (repacking) matmul kernels from n tokens on instead of each type's measured
 * threshold; 0 restores the thresholds. */
void vkl_cpu_force_mm_min_n(int n);

#endif
