/* The backend-agnostic executor: assigns each graph node to the first backend that supports it,
 * splits the node list into runs of consecutive nodes on one backend, inserts copies where a run
 * reads a tensor another backend produced (a mirror in the consumer's arena, filled through a host
 * staging buffer before that run), plans activation memory by tensor lifetime (offsets in one
 * scratch arena per backend, shared by every plan of the executor), and runs the plan. Planning
 * allocates; computing does not. Weights and KV caches (VKL_TF_EXTERNAL) are never copied: a
 * backend's supports() must refuse nodes whose external sources it cannot read. */
#ifndef VKL_EXECUTOR_H
#define VKL_EXECUTOR_H

#include "graph.h"

#define VKL_MAX_BACKENDS 8

typedef struct vkl_executor vkl_executor;
typedef struct vkl_plan vkl_plan;

/* The backends are borrowed (must outlive the executor), in order of preference. */
vkl_executor *vkl_executor_create(vkl_backend *const *backends, int n_backends, vkl_error *err);
void vkl_executor_free(vkl_executor *ex);

/* Plans graph g (which must outlive the plan). The executor grows its arenas as needed. */
vkl_plan *vkl_executor_plan(vkl_executor *ex, vkl_graph *g, vkl_error *err);
void vkl_plan_free(vkl_plan *p);

/* Writes the bytes of an input tensor of the plan's graph (before vkl_executor_compute). */
int vkl_executor_set_input(vkl_executor *ex, vkl_plan *p, vkl_tensor *t, const void *data, size_t n,
                           vkl_error *err);
/* Runs every node. Returns when the work is submitted: a backend may still be running it;
 * vkl_executor_get_rows (a download) waits for the results, and so does a later upload or compute
 * on that backend. */
int vkl_executor_compute(vkl_executor *ex, vkl_plan *p, vkl_error *err);
/* Reads rows [first_row, first_row + n_rows) of an output tensor into dst after a compute. */
int vkl_executor_get_rows(vkl_executor *ex, vkl_plan *p, const vkl_tensor *t, int64_t first_row, int64_t n_rows,
                          void *dst, vkl_error *err);

/* A dry run of planning g over these backends: the node assignment (by supports()) and the arena
 * bytes each backend would need (need[0..n_backends)), without allocating device memory or
 * preparing anything; the graph is left as it was. Backends only need supports() and alignment. */
int vkl_executor_measure(vkl_backend *const *backends, int n_backends, vkl_graph *g, size_t *need, vkl_error *err);

/* Bytes of backend b's scratch arena (the largest plan so far). */
size_t vkl_executor_arena_size(const vkl_executor *ex, int b);
/* What a plan needs: its arena bytes on backend b, and its number of runs. */
size_t vkl_plan_arena_size(const vkl_plan *p, int b);
int vkl_plan_n_runs(const vkl_plan *p);

#endif
