/* The CPU backend: host buffers, a thread pool, and the kernels of cpu_ops.c behind the
 * backend interface. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_backend.h"
#include "cpu/cpu_info.h"
#include "cpu/cpu_ops.h"

typedef struct cpu_backend {
    vkl_backend base;
    vkl_threadpool *tp;
    int n_threads;
    bool reference;
    bool profile;
    double op_seconds[VKL_OP_COUNT];
    uint64_t op_calls[VKL_OP_COUNT];
    void *work; /* scratch of the fast kernels, sized by prepare() */
    size_t work_size;
} cpu_backend;

#define CPU_ALIGN 64

static void cpu_close(vkl_backend *be) {
    cpu_backend *c = be->impl;
    vkl_threadpool_destroy(c->tp);
    vkl_aligned_free(c->work);
    free(c);
}

static vkl_buffer *cpu_buffer_alloc(vkl_backend *be, size_t size, vkl_error *err) {
    vkl_buffer *b = vkl_calloc(1, sizeof *b, err);
    if (!b) return NULL;
    b->host = vkl_aligned_alloc(CPU_ALIGN, VKL_ALIGN_UP(size ? size : 1, CPU_ALIGN), err);
    if (!b->host) {
        free(b);
        return NULL;
    }
    b->backend = be;
    b->size = size;
    return b;
}

static void cpu_buffer_free(vkl_backend *be, vkl_buffer *b) {
    if (!b) return;
    vkl_aligned_free(b->host);
    free(b);
}

static int cpu_upload(vkl_backend *be, vkl_buffer *dst, size_t offset, const void *src, size_t n, vkl_error *err) {
    if (offset > dst->size || n > dst->size - offset)
        return vkl_fail(err, "cpu: upload of %zu bytes at %zu beyond a %zu-byte buffer", n, offset, dst->size);
    memcpy((char *)dst->host + offset, src, n);
    return 0;
}

static int cpu_download(vkl_backend *be, const vkl_buffer *src, size_t offset, void *dst, size_t n, vkl_error *err) {
    if (offset > src->size || n > src->size - offset)
        return vkl_fail(err, "cpu: download of %zu bytes at %zu beyond a %zu-byte buffer", n, offset, src->size);
    memcpy(dst, (const char *)src->host + offset, n);
    return 0;
}

/* Every source must be CPU-addressable (host memory or a host-visible buffer). */
static bool cpu_supports(vkl_backend *be, const vkl_tensor *node) {
    for (int i = 0; i < VKL_MAX_SRC && node->src[i]; i++) {
        const vkl_tensor *r = vkl_tensor_root(node->src[i]);
        if (r->buffer && !r->buffer->host) return false;
    }
    return vkl_cpu_op_supported(node);
}

static int cpu_prepare(vkl_backend *be, const vkl_graph *g, int first, int count, vkl_error *err) {
    cpu_backend *c = be->impl;
    size_t need = 0;
    for (int i = first; i < first + count; i++) need = VKL_MAX(need, vkl_cpu_op_work_size(g->nodes[i], c->n_threads));
    if (need <= c->work_size) return 0;
    void *w = vkl_aligned_alloc(CPU_ALIGN, need, err);
    if (!w) return -1;
    vkl_aligned_free(c->work);
    c->work = w;
    c->work_size = need;
    return 0;
}

/* Whether MUL_MAT b can run in one group with MUL_MAT a: same activations, same weight type and
 * row length, and a's output is not b's input. */
static bool same_matmul_input(const vkl_tensor *a, const vkl_tensor *b) {
    if (a->op != VKL_OP_MUL_MAT || b->op != VKL_OP_MUL_MAT) return false;
    const vkl_tensor *xa = a->src[1], *xb = b->src[1];
    return xa->data == xb->data && xa->ne[0] == xb->ne[0] && xa->ne[1] == xb->ne[1] &&
           a->src[0]->type == b->src[0]->type && a->src[0]->ne[0] == b->src[0]->ne[0] && a->data != xb->data;
}

static int cpu_execute(vkl_backend *be, const vkl_graph *g, int first, int count, vkl_error *err) {
    cpu_backend *c = be->impl;
    for (int i = first; i < first + count; i++) {
        const vkl_tensor *node = g->nodes[i];
        double t0 = c->profile ? vkl_time_s() : 0;
        int n_group = 1; /* consecutive matmuls sharing their input (Q/K/V, gate/up) */
        while (!c->reference && i + n_group < first + count && n_group < VKL_MATMUL_GROUP_MAX &&
               same_matmul_input(node, g->nodes[i + n_group]))
            n_group++;
        if (n_group > 1) {
            if (vkl_cpu_op_work_size(node, c->n_threads) > c->work_size)
                return vkl_fail(err, "cpu: node %d (%s) was not prepared", i, vkl_op_name(node->op));
            vkl_cpu_mul_mat_group(c->tp, &g->nodes[i], n_group, c->work);
            if (c->profile) {
                c->op_seconds[VKL_OP_MUL_MAT] += vkl_time_s() - t0;
                c->op_calls[VKL_OP_MUL_MAT] += (uint64_t)n_group;
            }
            i += n_group - 1;
            continue;
        }
        if (c->reference) {
            vkl_cpu_op_ref(node);
        } else {
            if (vkl_cpu_op_work_size(node, c->n_threads) > c->work_size)
                return vkl_fail(err, "cpu: node %d (%s) was not prepared", i, vkl_op_name(node->op));
            vkl_cpu_op_fast(c->tp, node, c->work);
        }
        if (c->profile && (unsigned)node->op < VKL_OP_COUNT) {
            c->op_seconds[node->op] += vkl_time_s() - t0;
            c->op_calls[node->op]++;
        }
    }
    return 0;
}

static void cpu_op_profile(vkl_backend *be, double *seconds, uint64_t *calls, bool reset) {
    cpu_backend *c = be->impl;
    if (seconds) memcpy(seconds, c->op_seconds, sizeof c->op_seconds);
    if (calls) memcpy(calls, c->op_calls, sizeof c->op_calls);
    if (reset) {
        memset(c->op_seconds, 0, sizeof c->op_seconds);
        memset(c->op_calls, 0, sizeof c->op_calls);
    }
}

static int cpu_synchronize(vkl_backend *be, vkl_error *err) {
    return 0;
}

static const vkl_backend_ops cpu_ops = {
    .close = cpu_close,
    .buffer_alloc = cpu_buffer_alloc,
    .buffer_free = cpu_buffer_free,
    .upload = cpu_upload,
    .download = cpu_download,
    .supports = cpu_supports,
    .prepare = cpu_prepare,
    .execute = cpu_execute,
    .synchronize = cpu_synchronize,
    .op_profile = cpu_op_profile,
    .read_bandwidth = vkl_cpu_read_bandwidth,
};

vkl_backend *vkl_cpu_backend_open(int index, const vkl_backend_config *cfg, vkl_error *err) {
    if (index != 0) {
        vkl_fail(err, "cpu: no device %d (there is one CPU device, 0)", index);
        return NULL;
    }
    vkl_cpu_info info;
    vkl_cpu_info_get(&info);
    int n_threads = cfg && cfg->n_threads > 0 ? cfg->n_threads : info.physical_cores;
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 1024) {
        vkl_fail(err, "cpu: %d threads is too many (at most 1024)", n_threads);
        return NULL;
    }
    cpu_backend *c = vkl_calloc(1, sizeof *c, err);
    if (!c) return NULL;
    c->tp = vkl_threadpool_create(n_threads, err);
    if (!c->tp) {
        free(c);
        return NULL;
    }
    c->n_threads = n_threads;
    c->reference = cfg && cfg->reference;
    c->profile = cfg && cfg->profile;
    c->base.ops = &cpu_ops;
    c->base.impl = c;
    c->base.alignment = CPU_ALIGN;
    c->base.n_threads = n_threads;
    snprintf(c->base.info.backend, sizeof c->base.info.backend, "cpu");
    snprintf(c->base.info.name, sizeof c->base.info.name, "%s", info.model);
    c->base.info.kind = VKL_DEV_CPU;
    c->base.info.mem_total = info.ram_total;
    c->base.info.mem_free = info.ram_available;
    c->base.info.max_alloc = UINT64_MAX;
    c->base.info.uma = true;
    return &c->base;
}
