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

/* Exact f16 -> f32 conversion of a row (branch-free, vectorisable). */
void vkl_cpu_f16_to_f32_row(const uint16_t *src, float *dst, int64_t n);

#endif
