/* The op graph: tensors (shape, type, where the bytes live) and op nodes in execution order.
 * Every op works on 2-D row-major tensors: ne[0] is the row length (contiguous), ne[1] the rows,
 * nb[1] the row stride in bytes (views may have any stride). Graphs are built once per batch
 * shape and reused; the per-token path only changes the bytes of input tensors. */
#ifndef VKL_GRAPH_H
#define VKL_GRAPH_H

#include "backend.h"
#include "common.h"
#include "types.h"

/* Token ids and positions: ggml's id for I32 (not a GGUF weight type, so not in types.c). */
#define VKL_TYPE_I32 ((vkl_type)26)

typedef enum vkl_op {
    VKL_OP_NONE,      /* a leaf: input, weight or KV cache */
    VKL_OP_GET_ROWS,  /* src0 table [K, rows] any type, src1 ids I32 [n]       -> [K, n] f32      */
    VKL_OP_RMS_NORM,  /* src0 x [K, n] f32, src1 weight [K] f32; fp[0] eps     -> [K, n]          */
    VKL_OP_MUL_MAT,   /* src0 W [K, M] any type, src1 x [K, n] f32             -> [M, n]          */
    VKL_OP_ROPE,      /* src0 x [head_dim*heads, n], src1 pos I32 [n]; ip[0] head_dim, ip[1] n_rot,
                         ip[2] mode (VKL_ROPE_*); fp[0] freq_base, fp[1] freq_scale -> same shape */
    VKL_OP_ATTENTION, /* src0 q [hd*n_head, n], src1 k, src2 v [hd*n_head_kv, n], src3 K cache,
                         src4 V cache [hd*n_head_kv, n_ctx] (f16/f32), src5 pos I32 [n];
                         ip[0] head_dim, ip[1] n_head, ip[2] n_head_kv; fp[0] scale
                         -> [hd*n_head, n]. Stores k/v rows at their positions in the caches
                         first; token t attends to cache positions 0..pos[t] (causal). */
    VKL_OP_SWIGLU,    /* src0 gate, src1 up [K, n]                             -> silu(gate)*up  */
    VKL_OP_ADD,       /* src0 + src1, same shape                                                 */
    VKL_OP_COPY,      /* src0 converted to the node's type (f32/f16/bf16)                        */
    VKL_OP_COUNT
} vkl_op;

enum { VKL_ROPE_NORMAL = 0, VKL_ROPE_NEOX = 2 };

enum {
    VKL_TF_INPUT = 1 << 0,    /* bytes set by the host before each run (arena-allocated) */
    VKL_TF_OUTPUT = 1 << 1,   /* read by the host after the run (kept alive to the end) */
    VKL_TF_EXTERNAL = 1 << 2, /* storage owned outside the graph (weights, KV cache) */
};

#define VKL_MAX_SRC 6

struct vkl_tensor {
    char name[48];
    vkl_type type;
    int64_t ne[2];
    size_t nb[2]; /* nb[0] = element/block size, nb[1] = row stride */
    vkl_op op;
    vkl_tensor *src[VKL_MAX_SRC];
    int32_t ip[4];
    float fp[4];
    int flags;
    /* A view aliases view_src's bytes at view_offs (no storage of its own). */
    vkl_tensor *view_src;
    size_t view_offs;
    /* Storage: a buffer and an offset (NULL buffer = plain host memory at `data`), and the host
     * address when the bytes are CPU-addressable. The executor fills these for arena tensors. */
    vkl_buffer *buffer;
    size_t offset;
    void *data;
    int backend; /* executor: index of the backend that computes this node (-1 for leaves) */
    void *host_copy; /* inputs of a plan: the bytes last set, in host memory (NULL otherwise) */
};

struct vkl_graph {
    vkl_tensor *pool; /* every tensor the graph created (stable addresses) */
    int n_pool, cap_pool;
    vkl_tensor **nodes; /* op nodes in execution order */
    int n_nodes, cap_nodes;
};

/* Bytes of one row of ne0 elements (handles VKL_TYPE_I32). */
size_t vkl_tensor_row_size(vkl_type type, int64_t ne0);
/* Bytes a contiguous tensor occupies (rows x row size). */
size_t vkl_tensor_nbytes(const vkl_tensor *t);
/* Whether rows are packed back to back. */
bool vkl_tensor_is_contiguous(const vkl_tensor *t);
/* Fills a standalone tensor (not in a graph), e.g. a weight: contiguous strides, no op. */
void vkl_tensor_init(vkl_tensor *t, const char *name, vkl_type type, int64_t ne0, int64_t ne1);
/* The tensor that owns the storage (follows views). */
static inline vkl_tensor *vkl_tensor_root(vkl_tensor *t) {
    while (t->view_src) t = t->view_src;
    return t;
}

vkl_graph *vkl_graph_create(int max_tensors, vkl_error *err);
void vkl_graph_free(vkl_graph *g);

/* Builders. They return NULL (err set) on a full pool or mismatched shapes; a NULL argument
 * propagates to NULL, so a builder can check once at the end. */
vkl_tensor *vkl_new_input(vkl_graph *g, const char *name, vkl_type type, int64_t ne0, int64_t ne1, vkl_error *err);
vkl_tensor *vkl_view_rows(vkl_graph *g, vkl_tensor *src, int64_t first_row, int64_t n_rows, vkl_error *err);
vkl_tensor *vkl_get_rows(vkl_graph *g, vkl_tensor *table, vkl_tensor *ids, vkl_error *err);
vkl_tensor *vkl_rms_norm(vkl_graph *g, vkl_tensor *x, vkl_tensor *w, float eps, vkl_error *err);
vkl_tensor *vkl_mul_mat(vkl_graph *g, vkl_tensor *w, vkl_tensor *x, vkl_error *err);
vkl_tensor *vkl_rope(vkl_graph *g, vkl_tensor *x, vkl_tensor *pos, int head_dim, int n_rot, int mode,
                     float freq_base, float freq_scale, vkl_error *err);
vkl_tensor *vkl_attention(vkl_graph *g, vkl_tensor *q, vkl_tensor *k, vkl_tensor *v, vkl_tensor *k_cache,
                          vkl_tensor *v_cache, vkl_tensor *pos, int head_dim, int n_head, int n_head_kv,
                          float scale, vkl_error *err);
vkl_tensor *vkl_swiglu(vkl_graph *g, vkl_tensor *gate, vkl_tensor *up, vkl_error *err);
vkl_tensor *vkl_add(vkl_graph *g, vkl_tensor *a, vkl_tensor *b, vkl_error *err);
vkl_tensor *vkl_copy(vkl_graph *g, vkl_tensor *src, vkl_type type, vkl_error *err);

const char *vkl_op_name(vkl_op op);

#endif
