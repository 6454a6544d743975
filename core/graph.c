#include "graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t vkl_tensor_row_size(vkl_type type, int64_t ne0) {
    if (type == VKL_TYPE_I32) return (size_t)ne0 * 4;
    return vkl_row_size(type, ne0);
}

size_t vkl_tensor_nbytes(const vkl_tensor *t) {
    if (t->ne[1] == 0) return 0;
    return (size_t)(t->ne[1] - 1) * t->nb[1] + vkl_tensor_row_size(t->type, t->ne[0]);
}

bool vkl_tensor_is_contiguous(const vkl_tensor *t) {
    return t->ne[1] <= 1 || t->nb[1] == vkl_tensor_row_size(t->type, t->ne[0]);
}

static size_t elem_size(vkl_type type) {
    if (type == VKL_TYPE_I32) return 4;
    const vkl_type_traits *tr = vkl_type_get(type);
    return tr ? tr->type_size : 0;
}

void vkl_tensor_init(vkl_tensor *t, const char *name, vkl_type type, int64_t ne0, int64_t ne1) {
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name ? name : "");
    t->type = type;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->nb[0] = elem_size(type);
    t->nb[1] = vkl_tensor_row_size(type, ne0);
    t->backend = -1;
}

vkl_graph *vkl_graph_create(int max_tensors, vkl_error *err) {
    vkl_graph *g = vkl_calloc(1, sizeof *g, err);
    if (!g) return NULL;
    g->pool = vkl_calloc((size_t)max_tensors, sizeof *g->pool, err);
    g->nodes = vkl_calloc((size_t)max_tensors, sizeof *g->nodes, err);
    if (!g->pool || !g->nodes) {
        vkl_graph_free(g);
        return NULL;
    }
    g->cap_pool = g->cap_nodes = max_tensors;
    return g;
}

void vkl_graph_free(vkl_graph *g) {
    if (!g) return;
    free(g->pool);
    free(g->nodes);
    free(g);
}

static vkl_tensor *new_tensor(vkl_graph *g, const char *name, vkl_type type, int64_t ne0, int64_t ne1,
                              vkl_error *err) {
    if (g->n_pool >= g->cap_pool) {
        vkl_fail(err, "graph: tensor pool full (%d tensors)", g->cap_pool);
        return NULL;
    }
    vkl_tensor *t = &g->pool[g->n_pool++];
    vkl_tensor_init(t, name, type, ne0, ne1);
    return t;
}

static vkl_tensor *new_node(vkl_graph *g, vkl_op op, const char *name, vkl_type type, int64_t ne0,
                            int64_t ne1, vkl_error *err) {
    if (g->n_nodes >= g->cap_nodes) {
        vkl_fail(err, "graph: node list full (%d nodes)", g->cap_nodes);
        return NULL;
    }
    vkl_tensor *t = new_tensor(g, name, type, ne0, ne1, err);
    if (!t) return NULL;
    t->op = op;
    g->nodes[g->n_nodes++] = t;
    return t;
}

static int bad_shape(vkl_error *err, const char *op, const vkl_tensor *a, const vkl_tensor *b) {
    return vkl_fail(err, "graph: %s: incompatible shapes %s [%lld, %lld] and %s [%lld, %lld]", op, a->name,
                    (long long)a->ne[0], (long long)a->ne[1], b->name, (long long)b->ne[0], (long long)b->ne[1]);
}

vkl_tensor *vkl_new_input(vkl_graph *g, const char *name, vkl_type type, int64_t ne0, int64_t ne1, vkl_error *err) {
    vkl_tensor *t = new_tensor(g, name, type, ne0, ne1, err);
    if (t) t->flags |= VKL_TF_INPUT;
    return t;
}

vkl_tensor *vkl_view_rows(vkl_graph *g, vkl_tensor *src, int64_t first_row, int64_t n_rows, vkl_error *err) {
    if (!src) return NULL;
    if (first_row < 0 || n_rows < 1 || first_row + n_rows > src->ne[1]) {
        vkl_fail(err, "graph: view of rows %lld..%lld outside %s (%lld rows)", (long long)first_row,
                 (long long)(first_row + n_rows), src->name, (long long)src->ne[1]);
        return NULL;
    }
    vkl_tensor *t = new_tensor(g, src->name, src->type, src->ne[0], n_rows, err);
    if (!t) return NULL;
    t->nb[1] = src->nb[1];
    t->view_src = src;
    t->view_offs = (size_t)first_row * src->nb[1];
    return t;
}

vkl_tensor *vkl_get_rows(vkl_graph *g, vkl_tensor *table, vkl_tensor *ids, vkl_error *err) {
    if (!table || !ids) return NULL;
    if (ids->type != VKL_TYPE_I32 || ids->ne[1] != 1) {
        vkl_fail(err, "graph: get_rows: ids %s must be one row of i32", ids->name);
        return NULL;
    }
    vkl_tensor *t = new_node(g, VKL_OP_GET_ROWS, "get_rows", VKL_TYPE_F32, table->ne[0], ids->ne[0], err);
    if (t) t->src[0] = table, t->src[1] = ids;
    return t;
}

vkl_tensor *vkl_rms_norm(vkl_graph *g, vkl_tensor *x, vkl_tensor *w, float eps, vkl_error *err) {
    if (!x || !w) return NULL;
    if (w->ne[0] != x->ne[0] || w->ne[1] != 1 || w->type != VKL_TYPE_F32 || x->type != VKL_TYPE_F32) {
        bad_shape(err, "rms_norm", x, w);
        return NULL;
    }
    vkl_tensor *t = new_node(g, VKL_OP_RMS_NORM, "rms_norm", VKL_TYPE_F32, x->ne[0], x->ne[1], err);
    if (t) t->src[0] = x, t->src[1] = w, t->fp[0] = eps;
    return t;
}

vkl_tensor *vkl_mul_mat(vkl_graph *g, vkl_tensor *w, vkl_tensor *x, vkl_error *err) {
    if (!w || !x) return NULL;
    if (w->ne[0] != x->ne[0] || x->type != VKL_TYPE_F32 || !vkl_tensor_is_contiguous(x)) {
        bad_shape(err, "mul_mat", w, x);
        return NULL;
    }
    vkl_tensor *t = new_node(g, VKL_OP_MUL_MAT, "mul_mat", VKL_TYPE_F32, w->ne[1], x->ne[1], err);
    if (t) t->src[0] = w, t->src[1] = x;
    return t;
}

vkl_tensor *vkl_rope(vkl_graph *g, vkl_tensor *x, vkl_tensor *pos, int head_dim, int n_rot, int mode,
                     float freq_base, float freq_scale, vkl_error *err) {
    if (!x || !pos) return NULL;
    if (head_dim <= 0 || x->ne[0] % head_dim || n_rot <= 0 || n_rot > head_dim || n_rot % 2 ||
        pos->type != VKL_TYPE_I32 || pos->ne[0] != x->ne[1] || x->type != VKL_TYPE_F32) {
        vkl_fail(err, "graph: rope: bad shapes (x %s [%lld, %lld], head_dim %d, n_rot %d, pos %lld)", x->name,
                 (long long)x->ne[0], (long long)x->ne[1], head_dim, n_rot, (long long)pos->ne[0]);
        return NULL;
    }
    vkl_tensor *t = new_node(g, VKL_OP_ROPE, "rope", VKL_TYPE_F32, x->ne[0], x->ne[1], err);
    if (!t) return NULL;
    t->src[0] = x, t->src[1] = pos;
    t->ip[0] = head_dim, t->ip[1] = n_rot, t->ip[2] = mode;
    t->fp[0] = freq_base, t->fp[1] = freq_scale;
    return t;
}

vkl_tensor *vkl_attention(vkl_graph *g, vkl_tensor *q, vkl_tensor *k, vkl_tensor *v, vkl_tensor *k_cache,
                          vkl_tensor *v_cache, vkl_tensor *pos, int head_dim, int n_head, int n_head_kv,
                          float scale, vkl_error *err) {
    if (!q || !k || !v || !k_cache || !v_cache || !pos) return NULL;
    int64_t n = q->ne[1], kv_dim = (int64_t)head_dim * n_head_kv;
    bool ok = head_dim > 0 && n_head > 0 && n_head_kv > 0 && n_head % n_head_kv == 0 &&
              q->ne[0] == (int64_t)head_dim * n_head && k->ne[0] == kv_dim && v->ne[0] == kv_dim &&
              k->ne[1] == n && v->ne[1] == n && k_cache->ne[0] == kv_dim && v_cache->ne[0] == kv_dim &&
              k_cache->ne[1] == v_cache->ne[1] && pos->type == VKL_TYPE_I32 && pos->ne[0] == n &&
              (k_cache->type == VKL_TYPE_F32 || k_cache->type == VKL_TYPE_F16) &&
              (v_cache->type == VKL_TYPE_F32 || v_cache->type == VKL_TYPE_F16);
    if (!ok) {
        vkl_fail(err, "graph: attention: bad shapes (q [%lld, %lld], k [%lld, %lld], cache [%lld, %lld], "
                 "head_dim %d, heads %d/%d)", (long long)q->ne[0], (long long)n, (long long)k->ne[0],
                 (long long)k->ne[1], (long long)k_cache->ne[0], (long long)k_cache->ne[1], head_dim, n_head,
                 n_head_kv);
        return NULL;
    }
    vkl_tensor *t = new_node(g, VKL_OP_ATTENTION, "attention", VKL_TYPE_F32, q->ne[0], n, err);
    if (!t) return NULL;
    t->src[0] = q, t->src[1] = k, t->src[2] = v, t->src[3] = k_cache, t->src[4] = v_cache, t->src[5] = pos;
    t->ip[0] = head_dim, t->ip[1] = n_head, t->ip[2] = n_head_kv;
    t->fp[0] = scale;
    return t;
}

static vkl_tensor *binary(vkl_graph *g, vkl_op op, const char *name, vkl_tensor *a, vkl_tensor *b,
                          vkl_error *err) {
    if (!a || !b) return NULL;
    if (a->ne[0] != b->ne[0] || a->ne[1] != b->ne[1] || a->type != VKL_TYPE_F32 || b->type != VKL_TYPE_F32) {
        bad_shape(err, name, a, b);
        return NULL;
    }
    vkl_tensor *t = new_node(g, op, name, VKL_TYPE_F32, a->ne[0], a->ne[1], err);
    if (t) t->src[0] = a, t->src[1] = b;
    return t;
}

vkl_tensor *vkl_swiglu(vkl_graph *g, vkl_tensor *gate, vkl_tensor *up, vkl_error *err) {
    return binary(g, VKL_OP_SWIGLU, "swiglu", gate, up, err);
}

vkl_tensor *vkl_add(vkl_graph *g, vkl_tensor *a, vkl_tensor *b, vkl_error *err) {
    return binary(g, VKL_OP_ADD, "add", a, b, err);
}

static bool float_type(vkl_type t) {
    return t == VKL_TYPE_F32 || t == VKL_TYPE_F16 || t == VKL_TYPE_BF16;
}

vkl_tensor *vkl_copy(vkl_graph *g, vkl_tensor *src, vkl_type type, vkl_error *err) {
    if (!src) return NULL;
    if (!float_type(src->type) || !float_type(type)) {
        vkl_fail(err, "graph: copy: only f32/f16/bf16 conversions (%s -> %s)", vkl_type_name(src->type),
                 vkl_type_name(type));
        return NULL;
    }
    vkl_tensor *t = new_node(g, VKL_OP_COPY, "copy", type, src->ne[0], src->ne[1], err);
    if (t) t->src[0] = src;
    return t;
}

const char *vkl_op_name(vkl_op op) {
    static const char *names[VKL_OP_COUNT] = {
        [VKL_OP_NONE] = "none",         [VKL_OP_GET_ROWS] = "get_rows", [VKL_OP_RMS_NORM] = "rms_norm",
        [VKL_OP_MUL_MAT] = "mul_mat",   [VKL_OP_ROPE] = "rope",         [VKL_OP_ATTENTION] = "attention",
        [VKL_OP_SWIGLU] = "swiglu",     [VKL_OP_ADD] = "add",           [VKL_OP_COPY] = "copy",
    };
    return (unsigned)op < VKL_OP_COUNT ? names[op] : "unknown";
}
