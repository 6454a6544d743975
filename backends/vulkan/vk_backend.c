/* The Vulkan backend: device buffers from vk_mem, and runs of graph nodes recorded through vk_ops
 * into one command buffer (vk_cmd: barriers only between dependent dispatches, one submit per
 * run). Pipelines are cached by vk_pipeline and descriptor pools are owned by the sequence, so
 * after the first token nothing is created per token; prepare() records a run once without
 * submitting it, which checks every node and creates its pipelines. Each execute() re-records
 * the run (positions are push constants, small inputs ride in the command buffer) and submits it
 * once without waiting: the download of the results waits. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "vk_backend.h"
#include "vk_ops.h"

typedef struct pending_upload {
    VkBuffer buffer;
    VkDeviceSize offset, size;
    size_t at; /* in up_bytes */
} pending_upload;

#define UPLOAD_BYTES_MAX (256u << 10) /* flushed beyond this */

typedef struct vk_backend {
    vkl_backend base;
    vkl_vk_context ctx;
    bool ctx_ok;
    vkl_vk_allocator *alloc;
    vkl_vk_ops ops;
    bool ops_ok;
    vkl_vk_seq *seq;
    bool profile;
    double op_seconds[VKL_OP_COUNT];
    uint64_t op_calls[VKL_OP_COUNT];
    uint32_t *node_dispatch; /* profile: first dispatch of each node of the current run, + end */
    int cap_nodes;
    int32_t *pos; /* host copy of a positions tensor */
    int64_t cap_pos;
    /* Small uploads to memory the host cannot map, carried by the next command buffer
     * (vkCmdUpdateBuffer) instead of a staging transfer each; their bytes in `up_bytes`. */
    pending_upload *ups;
    int n_ups, cap_ups;
    uint8_t *up_bytes;
    size_t n_up_bytes;
} vk_backend;

/* A vkl_buffer and its suballocation in one piece. */
typedef struct vk_buf {
    vkl_buffer base;
    vkl_vk_buffer vb;
} vk_buf;

static vk_backend *impl(vkl_backend *be) { return be->impl; }

vkl_vk_context *vkl_vk_backend_context(vkl_backend *be) { return &impl(be)->ctx; }

static void vk_close(vkl_backend *be) {
    vk_backend *v = impl(be);
    if (v->ctx_ok && v->ctx.device) vkDeviceWaitIdle(v->ctx.device);
    vkl_vk_seq_destroy(v->seq);
    if (v->ops_ok) vkl_vk_ops_destroy(&v->ops);
    vkl_vk_allocator_destroy(v->alloc);
    if (v->ctx_ok) vkl_vk_context_destroy(&v->ctx);
    free(v->node_dispatch);
    free(v->pos);
    free(v->ups);
    free(v->up_bytes);
    free(v);
}

static vkl_buffer *vk_buffer_alloc(vkl_backend *be, size_t size, vkl_error *err) {
    vk_backend *v = impl(be);
    vk_buf *b = vkl_calloc(1, sizeof *b, err);
    if (!b) return NULL;
    if (vkl_vk_alloc(v->alloc, VKL_VK_MEM_DEVICE, size ? size : 1, &b->vb, err)) {
        vkl_error_prefix(err, "%s", be->info.name);
        free(b);
        return NULL;
    }
    b->base.backend = be;
    b->base.size = size;
    b->base.host = b->vb.mapped;
    b->base.impl = &b->vb;
    return &b->base;
}

static int flush_uploads(vk_backend *v, vkl_error *err);
static int wait_idle(vk_backend *v, vkl_error *err);

static void vk_buffer_free(vkl_backend *be, vkl_buffer *buf) {
    if (!buf) return;
    vk_buf *b = (vk_buf *)buf;
    vkl_error err; /* the memory may be in use by a submission, or the target of an upload */
    if (flush_uploads(impl(be), &err) || wait_idle(impl(be), &err))
        fprintf(stderr, "vulkan: freeing a buffer: %s\n", err.msg);
    vkl_vk_free(impl(be)->alloc, &b->vb);
    free(b);
}

/* ---- transfers: execute() submits without waiting; whatever touches memory the GPU may still
 * be using waits for it first. Mapped (UMA) memory is read and written by the host directly, so
 * it waits for the submission; other memory goes through staging transfers on the same queue,
 * which run after the submission without a wait here, or rides in the next command buffer. -- */

/* (After a failed recording the sequence is left open; start a fresh one.) */
static int reset_seq(vk_backend *v, vkl_error *err) {
    vkl_vk_seq_destroy(v->seq);
    v->seq = vkl_vk_seq_create(&v->ctx, v->profile, err);
    return v->seq ? 0 : -1;
}

/* Records the pending uploads into a sequence that has just begun. */
static int record_uploads(vk_backend *v, vkl_vk_seq *seq, vkl_error *err) {
    for (int i = 0; i < v->n_ups; i++) {
        const pending_upload *u = &v->ups[i];
        if (vkl_vk_seq_update(seq, u->buffer, u->offset, v->up_bytes + u->at, u->size, err)) return -1;
    }
    v->n_ups = 0;
    v->n_up_bytes = 0;
    return 0;
}

/* Submits the pending uploads on their own. */
static int flush_uploads(vk_backend *v, vkl_error *err) {
    if (v->n_ups == 0) return 0;
    if (!v->seq && reset_seq(v, err)) return -1;
    if (vkl_vk_seq_begin(v->seq, err)) return -1;
    if (record_uploads(v, v->seq, err)) {
        vkl_error e2;
        reset_seq(v, &e2);
        return -1;
    }
    return vkl_vk_seq_submit_async(v->seq, err);
}

static int wait_idle(vk_backend *v, vkl_error *err) {
    return v->seq ? vkl_vk_seq_wait(v->seq, err) : 0;
}

/* Whether an upload can ride in the next command buffer. */
static int defer_upload(vk_backend *v, const vkl_vk_buffer *b, size_t offset, const void *src, size_t n,
                        vkl_error *err) {
    if (v->n_up_bytes + n > UPLOAD_BYTES_MAX && flush_uploads(v, err)) return -1;
    if (v->n_ups == v->cap_ups) {
        int cap = v->cap_ups ? 2 * v->cap_ups : 16;
        pending_upload *nu = realloc(v->ups, (size_t)cap * sizeof *nu);
        if (!nu) return vkl_fail(err, "out of host memory");
        v->ups = nu;
        v->cap_ups = cap;
    }
    if (!v->up_bytes && !(v->up_bytes = vkl_malloc(UPLOAD_BYTES_MAX, err))) return -1;
    memcpy(v->up_bytes + v->n_up_bytes, src, n);
    v->ups[v->n_ups++] = (pending_upload){b->buffer, b->offset + offset, n, v->n_up_bytes};
    v->n_up_bytes += n;
    return 0;
}

static int vk_upload(vkl_backend *be, vkl_buffer *dst, size_t offset, const void *src, size_t n, vkl_error *err) {
    if (offset > dst->size || n > dst->size - offset)
        return vkl_fail(err, "vulkan: upload of %zu bytes at %zu beyond a %zu-byte buffer", n, offset, dst->size);
    vk_backend *v = impl(be);
    const vkl_vk_buffer *b = dst->impl;
    if (b->mapped) {
        if (wait_idle(v, err)) return -1;
    } else if (n > 0 && n <= VKL_VK_MAX_UPDATE && n % 4 == 0 && (b->offset + offset) % 4 == 0) {
        return defer_upload(v, b, offset, src, n, err);
    } else if (flush_uploads(v, err)) { /* keep the order of uploads */
        return -1;
    }
    return vkl_vk_upload(v->alloc, b, offset, src, n, err);
}

static int vk_download(vkl_backend *be, const vkl_buffer *src, size_t offset, void *dst, size_t n, vkl_error *err) {
    if (offset > src->size || n > src->size - offset)
        return vkl_fail(err, "vulkan: download of %zu bytes at %zu beyond a %zu-byte buffer", n, offset, src->size);
    vk_backend *v = impl(be);
    const vkl_vk_buffer *b = src->impl;
    if (flush_uploads(v, err) || (b->mapped && wait_idle(v, err))) return -1;
    return vkl_vk_download(v->alloc, b, offset, dst, n, err);
}

/* ---- which nodes run here ------------------------------------------------------------------ */

static bool is_f32_rows(const vkl_tensor *t) {
    return t->type == VKL_TYPE_F32 && vkl_tensor_is_contiguous(t);
}

static int64_t n_elems(const vkl_tensor *t) { return t->ne[0] * t->ne[1]; }

static bool weight_ok(const vkl_tensor *w) {
    const vkl_type_traits *tr = vkl_type_get(w->type);
    if (!tr || !vkl_vk_ops_supports_type(w->type) || !vkl_tensor_is_contiguous(w)) return false;
    int64_t mult = tr->is_quantized ? tr->block_size : 8;
    return w->ne[0] > 0 && w->ne[0] % mult == 0;
}

static bool op_ok(const vkl_tensor *n) {
    const vkl_tensor *const *s = (const vkl_tensor *const *)n->src;
    switch (n->op) {
    case VKL_OP_GET_ROWS:
        return weight_ok(s[0]) && s[1]->type == VKL_TYPE_I32 && vkl_tensor_is_contiguous(s[1]) && is_f32_rows(n);
    case VKL_OP_RMS_NORM:
        return is_f32_rows(s[0]) && s[1]->type == VKL_TYPE_F32 && n_elems(s[1]) >= s[0]->ne[0] && is_f32_rows(n);
    case VKL_OP_MUL_MAT:
        return weight_ok(s[0]) && is_f32_rows(s[1]) && s[1]->ne[1] <= 65535 && is_f32_rows(n);
    case VKL_OP_ROPE:
        return is_f32_rows(s[0]) && is_f32_rows(n) && s[1]->type == VKL_TYPE_I32 && n->ip[0] > 0 &&
               n->ip[0] % 2 == 0 && n->ip[1] > 0 && n->ip[1] % 2 == 0 && n->ip[1] <= n->ip[0] &&
               s[0]->ne[0] % n->ip[0] == 0 && (n->ip[2] == VKL_ROPE_NORMAL || n->ip[2] == VKL_ROPE_NEOX);
    case VKL_OP_ATTENTION: {
        int hd = n->ip[0];
        bool kv_ok = (s[3]->type == VKL_TYPE_F16 || s[3]->type == VKL_TYPE_F32) && s[4]->type == s[3]->type &&
                     vkl_tensor_is_contiguous(s[3]) && vkl_tensor_is_contiguous(s[4]);
        return kv_ok && hd > 0 && hd % 32 == 0 && hd <= 256 && is_f32_rows(s[0]) && is_f32_rows(s[1]) &&
               is_f32_rows(s[2]) && is_f32_rows(n) && s[5]->type == VKL_TYPE_I32 &&
               fabsf(n->fp[0] - 1.0f / sqrtf((float)hd)) <= 1e-6f * (1.0f / sqrtf((float)hd));
    }
    case VKL_OP_SWIGLU:
    case VKL_OP_ADD:
        return is_f32_rows(s[0]) && is_f32_rows(s[1]) && is_f32_rows(n) && n_elems(s[1]) == n_elems(s[0]);
    case VKL_OP_COPY:
        return (s[0]->type == VKL_TYPE_F32 || s[0]->type == VKL_TYPE_F16) &&
               (n->type == VKL_TYPE_F32 || n->type == VKL_TYPE_F16) && vkl_tensor_is_contiguous(s[0]) &&
               vkl_tensor_is_contiguous(n) && (n->type != VKL_TYPE_F16 || n_elems(n) % 2 == 0);
    default:
        return false;
    }
}

/* Weights and caches must already live in this device's memory (the executor copies only
 * activations). */
static bool vk_supports(vkl_backend *be, const vkl_tensor *node) {
    for (int i = 0; i < VKL_MAX_SRC && node->src[i]; i++) {
        const vkl_tensor *r = vkl_tensor_root(node->src[i]);
        if ((r->flags & VKL_TF_EXTERNAL) && (!r->buffer || r->buffer->backend != be)) return false;
    }
    return op_ok(node);
}

/* ---- recording ----------------------------------------------------------------------------- */

static vkl_vk_range range_of(const vkl_tensor *t, vkl_error *err) {
    const vkl_buffer *b = t->buffer;
    if (!b || !b->impl) {
        vkl_fail(err, "vulkan: tensor %s has no device storage", t->name);
        return (vkl_vk_range){0};
    }
    const vkl_vk_buffer *vb = b->impl;
    return (vkl_vk_range){vb->buffer, vb->offset + t->offset, vkl_tensor_nbytes(t)};
}

/* Positions of a batch: the shaders take the first one; the graph's are consecutive. Read from
 * the executor's host copy of the input (no download), else from the device. */
static int read_pos0(vk_backend *v, const vkl_tensor *pos, int64_t *pos0, vkl_error *err) {
    int64_t n = n_elems(pos);
    const int32_t *p = pos->host_copy;
    if (!p) {
        if (n > v->cap_pos) {
            int32_t *np = vkl_malloc((size_t)n * sizeof *np, err);
            if (!np) return -1;
            free(v->pos);
            v->pos = np;
            v->cap_pos = n;
        }
        if (vk_download(&v->base, pos->buffer, pos->offset, v->pos, (size_t)n * sizeof *v->pos, err)) return -1;
        p = v->pos;
    }
    for (int64_t i = 1; i < n; i++)
        if (p[i] != p[0] + i)
            return vkl_fail(err, "vulkan: positions of %s are not consecutive (%d after %d)", pos->name, p[i],
                            p[i - 1]);
    if (p[0] < 0) return vkl_fail(err, "vulkan: negative position %d", p[0]);
    *pos0 = p[0];
    return 0;
}

#define R(t) range_of((t), err)

static int record_node(vk_backend *v, vkl_vk_seq *seq, const vkl_tensor *n, int64_t pos0, vkl_error *err) {
    vkl_vk_ops *ops = &v->ops;
    vkl_tensor *const *s = n->src;
    /* Every range below is checked by the op (a null buffer fails its binding). */
    switch (n->op) {
    case VKL_OP_GET_ROWS:
        return vkl_vk_op_get_rows(ops, seq, s[0]->type, R(s[0]), s[0]->ne[1], s[0]->ne[0], R(s[1]), n_elems(s[1]),
                                  R(n), err);
    case VKL_OP_RMS_NORM:
        return vkl_vk_op_rms_norm(ops, seq, R(s[0]), R(s[1]), R(n), s[0]->ne[1], s[0]->ne[0], n->fp[0], err);
    case VKL_OP_MUL_MAT:
        return vkl_vk_op_mul_mat(ops, seq, s[0]->type, R(s[0]), s[0]->ne[1], s[0]->ne[0], R(s[1]), s[1]->ne[1],
                                 R(n), err);
    case VKL_OP_ROPE: {
        vkl_vk_rope_params rp = {.n_tokens = n->ne[1], .n_heads = n->ne[0] / n->ip[0], .head_dim = n->ip[0],
                                 .rope_dim = n->ip[1], .pos0 = pos0, .freq_base = n->fp[0],
                                 .freq_scale = n->fp[1], .neox = n->ip[2] == VKL_ROPE_NEOX};
        return vkl_vk_op_rope(ops, seq, R(s[0]), R(n), &rp, err);
    }
    case VKL_OP_ATTENTION: {
        vkl_vk_attn_params ap = {.n_tokens = s[0]->ne[1], .n_head = n->ip[1], .n_head_kv = n->ip[2],
                                 .head_dim = n->ip[0], .pos0 = pos0, .n_ctx = s[3]->ne[1], .kv_type = s[3]->type};
        if (vkl_vk_op_kv_store(ops, seq, &ap, R(s[1]), R(s[2]), R(s[3]), R(s[4]), err)) return -1;
        return vkl_vk_op_attention(ops, seq, &ap, R(s[0]), R(s[3]), R(s[4]), R(n), err);
    }
    case VKL_OP_SWIGLU: return vkl_vk_op_swiglu(ops, seq, R(s[0]), R(s[1]), R(n), n_elems(n), err);
    case VKL_OP_ADD: return vkl_vk_op_add(ops, seq, R(s[0]), R(s[1]), R(n), n_elems(n), err);
    case VKL_OP_COPY: return vkl_vk_op_copy(ops, seq, s[0]->type, R(s[0]), n->type, R(n), n_elems(n), err);
    default: return vkl_fail(err, "vulkan: op %s is not supported", vkl_op_name(n->op));
    }
}

#undef R

/* Records nodes[first..first+count). dry: positions taken as 0 (nothing will be submitted). */
static int record_run(vk_backend *v, vkl_vk_seq *seq, const vkl_graph *g, int first, int count, bool dry,
                      vkl_error *err) {
    const vkl_tensor *pos_t = NULL;
    int64_t pos0 = 0;
    for (int i = first; i < first + count; i++) {
        const vkl_tensor *n = g->nodes[i];
        const vkl_tensor *p = n->op == VKL_OP_ROPE ? n->src[1] : n->op == VKL_OP_ATTENTION ? n->src[5] : NULL;
        if (p && p != pos_t && !dry) {
            if (read_pos0(v, p, &pos0, err)) return -1;
            pos_t = p;
        }
        if (v->node_dispatch && !dry) v->node_dispatch[i - first] = vkl_vk_seq_dispatch_count(seq);
        if (record_node(v, seq, n, pos0, err)) {
            vkl_error_prefix(err, "node %d (%s, %s)", i, vkl_op_name(n->op), n->name);
            return -1;
        }
    }
    if (v->node_dispatch && !dry) v->node_dispatch[count] = vkl_vk_seq_dispatch_count(seq);
    return 0;
}

static int vk_prepare(vkl_backend *be, const vkl_graph *g, int first, int count, vkl_error *err) {
    vk_backend *v = impl(be);
    if (v->profile && count + 1 > v->cap_nodes) {
        uint32_t *nd = vkl_malloc((size_t)(count + 1) * sizeof *nd, err);
        if (!nd) return -1;
        free(v->node_dispatch);
        v->node_dispatch = nd;
        v->cap_nodes = count + 1;
    }
    /* A throwaway sequence: recording checks every node and creates its pipelines; destroying it
     * discards the unsubmitted commands. */
    vkl_vk_seq *dry = vkl_vk_seq_create(&v->ctx, false, err);
    if (!dry) return -1;
    int rc = vkl_vk_seq_begin(dry, err) || record_run(v, dry, g, first, count, true, err) ? -1 : 0;
    vkl_vk_seq_destroy(dry);
    if (rc) vkl_error_prefix(err, "vulkan (%s)", be->info.name);
    return rc;
}

static int vk_execute(vkl_backend *be, const vkl_graph *g, int first, int count, vkl_error *err) {
    vk_backend *v = impl(be);
    if (!v->seq && reset_seq(v, err)) return -1;
    if (v->profile && count + 1 > v->cap_nodes)
        return vkl_fail(err, "vulkan: run of %d nodes was not prepared", count);
    if (vkl_vk_seq_begin(v->seq, err)) {
        vkl_error_prefix(err, "vulkan (%s)", be->info.name);
        return -1;
    }
    if (record_uploads(v, v->seq, err) || record_run(v, v->seq, g, first, count, false, err)) {
        vkl_error e2;
        reset_seq(v, &e2);
        vkl_error_prefix(err, "vulkan (%s)", be->info.name);
        return -1;
    }
    /* Profiling reads the timestamps now; otherwise the first access to the results waits. */
    if (v->profile ? vkl_vk_seq_submit(v->seq, err) : vkl_vk_seq_submit_async(v->seq, err)) {
        vkl_error_prefix(err, "vulkan (%s)", be->info.name);
        return -1;
    }
    if (v->profile && v->node_dispatch) {
        for (int i = 0; i < count; i++) {
            vkl_op op = g->nodes[first + i]->op;
            double ns = 0;
            for (uint32_t d = v->node_dispatch[i]; d < v->node_dispatch[i + 1]; d++) {
                double t = vkl_vk_seq_dispatch_ns(v->seq, d);
                if (t > 0) ns += t;
            }
            if ((unsigned)op < VKL_OP_COUNT) {
                v->op_seconds[op] += ns * 1e-9;
                v->op_calls[op]++;
            }
        }
    }
    return 0;
}

static int vk_synchronize(vkl_backend *be, vkl_error *err) {
    vk_backend *v = impl(be);
    return flush_uploads(v, err) || wait_idle(v, err) ? -1 : 0;
}

static void vk_op_profile(vkl_backend *be, double *seconds, uint64_t *calls, bool reset) {
    vk_backend *v = impl(be);
    if (seconds) memcpy(seconds, v->op_seconds, sizeof v->op_seconds);
    if (calls) memcpy(calls, v->op_calls, sizeof v->op_calls);
    if (reset) {
        memset(v->op_seconds, 0, sizeof v->op_seconds);
        memset(v->op_calls, 0, sizeof v->op_calls);
    }
}

/* Device memory reserved by the allocator: every block (weights, KV, scratch) and the staging ring. */
static uint64_t vk_mem_used(vkl_backend *be) {
    vk_backend *v = impl(be);
    uint64_t total = 0;
    for (int k = 0; k < VKL_VK_MEM_KIND_COUNT; k++) {
        vkl_vk_mem_stats st;
        vkl_vk_mem_get_stats(v->alloc, (vkl_vk_mem_kind)k, &st);
        total += st.reserved;
    }
    return total;
}

static const vkl_backend_ops vk_backend_ops = {
    .close = vk_close,
    .buffer_alloc = vk_buffer_alloc,
    .buffer_free = vk_buffer_free,
    .upload = vk_upload,
    .download = vk_download,
    .supports = vk_supports,
    .prepare = vk_prepare,
    .execute = vk_execute,
    .synchronize = vk_synchronize,
    .op_profile = vk_op_profile,
    .mem_used = vk_mem_used,
    .read_bandwidth = vkl_vk_read_bandwidth,
};

vkl_backend *vkl_vk_backend_open(int index, const vkl_backend_config *cfg, vkl_error *err) {
    vk_backend *v = vkl_calloc(1, sizeof *v, err);
    if (!v) return NULL;
    v->base.ops = &vk_backend_ops;
    v->base.impl = v;
    v->profile = cfg && cfg->profile;
    if (vkl_vk_context_create(&v->ctx, index, err)) {
        free(v);
        return NULL;
    }
    v->ctx_ok = true;
    vkl_vk_fill_device_info(&v->base.info, index, &v->ctx.info);
    v->alloc = vkl_vk_allocator_create(&v->ctx, cfg ? cfg->mem_block_size : 0, 0, err);
    if (!v->alloc) goto fail;
    if (vkl_vk_ops_init(&v->ops, &v->ctx, err)) goto fail;
    v->ops_ok = true;
    v->seq = vkl_vk_seq_create(&v->ctx, v->profile, err);
    if (!v->seq) goto fail;
    v->base.alignment = (size_t)vkl_vk_mem_alignment(v->alloc);
    return &v->base;
fail:
    vkl_error_prefix(err, "vulkan device %d (%s)", index, v->ctx.info.props.deviceName);
    vk_close(&v->base);
    return NULL;
}
