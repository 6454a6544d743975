#include "executor.h"

#include <stdlib.h>
#include <string.h>

typedef struct run {
    int backend, first, count;
} run;

struct vkl_executor {
    vkl_backend *backends[VKL_MAX_BACKENDS];
    int n_backends;
    vkl_buffer *arena[VKL_MAX_BACKENDS];
    size_t arena_size[VKL_MAX_BACKENDS];
    unsigned generation; /* bumped whenever an arena is reallocated */
};

/* A copy of an arena tensor into another backend's arena, done before run `run`. */
typedef struct xfer {
    vkl_tensor *from, *to;
    int run;
} xfer;

/* A source pointer of a node redirected to a copy (restored when the plan is freed). */
typedef struct rewrite {
    vkl_tensor *node, *orig;
    int s;
} rewrite;

struct vkl_plan {
    vkl_graph *g;
    run *runs;
    int n_runs;
    size_t need[VKL_MAX_BACKENDS];
    /* Copies at backend boundaries: mirror tensors (and views of them) living in the consumer's
     * arena, filled through a host staging buffer. */
    vkl_tensor *mirrors;
    int n_mirrors, cap_mirrors;
    xfer *xfers;
    int n_xfers;
    rewrite *rewrites;
    int n_rewrites;
    void *staging;
    /* Arena tensors (nodes that own storage, inputs, mirrors) and their placement. */
    vkl_tensor **placed;
    size_t *offset;
    int *where;
    int n_placed;
    unsigned bound_generation;
    bool bound;
    /* Host copies of the input tensors' bytes (tensor->host_copy points into it). */
    char *inputs;
};

vkl_executor *vkl_executor_create(vkl_backend *const *backends, int n_backends, vkl_error *err) {
    if (n_backends < 1 || n_backends > VKL_MAX_BACKENDS) {
        vkl_fail(err, "executor: %d backends (1..%d)", n_backends, VKL_MAX_BACKENDS);
        return NULL;
    }
    vkl_executor *ex = vkl_calloc(1, sizeof *ex, err);
    if (!ex) return NULL;
    memcpy(ex->backends, backends, (size_t)n_backends * sizeof *backends);
    ex->n_backends = n_backends;
    return ex;
}

void vkl_executor_free(vkl_executor *ex) {
    if (!ex) return;
    for (int b = 0; b < ex->n_backends; b++)
        if (ex->arena[b]) ex->backends[b]->ops->buffer_free(ex->backends[b], ex->arena[b]);
    free(ex);
}

void vkl_plan_free(vkl_plan *p) {
    if (!p) return;
    for (int i = p->n_rewrites - 1; i >= 0; i--) p->rewrites[i].node->src[p->rewrites[i].s] = p->rewrites[i].orig;
    free(p->mirrors);
    free(p->xfers);
    free(p->rewrites);
    free(p->staging);
    free(p->runs);
    free(p->placed);
    free(p->offset);
    free(p->where);
    for (int i = 0; p->inputs && i < p->g->n_pool; i++)
        if (p->g->pool[i].flags & VKL_TF_INPUT) p->g->pool[i].host_copy = NULL;
    free(p->inputs);
    free(p);
}

size_t vkl_executor_arena_size(const vkl_executor *ex, int b) {
    return b >= 0 && b < ex->n_backends ? ex->arena_size[b] : 0;
}

size_t vkl_plan_arena_size(const vkl_plan *p, int b) {
    return b >= 0 && b < VKL_MAX_BACKENDS ? p->need[b] : 0;
}

int vkl_plan_n_runs(const vkl_plan *p) {
    return p->n_runs;
}

/* ---- lifetime-based offset allocator: free blocks kept sorted by offset, best fit ---------- */

typedef struct block {
    size_t off, size;
} block;

typedef struct allocator {
    block *free_blocks;
    int n_free;
    size_t top; /* high-water mark = arena size needed */
    size_t align;
} allocator;

static size_t alloc_bytes(allocator *a, size_t size) {
    size = VKL_ALIGN_UP(size ? size : 1, a->align);
    int best = -1;
    for (int i = 0; i < a->n_free; i++)
        if (a->free_blocks[i].size >= size && (best < 0 || a->free_blocks[i].size < a->free_blocks[best].size)) best = i;
    if (best >= 0) {
        size_t off = a->free_blocks[best].off;
        a->free_blocks[best].off += size;
        a->free_blocks[best].size -= size;
        if (a->free_blocks[best].size == 0) {
            memmove(&a->free_blocks[best], &a->free_blocks[best + 1], (size_t)(a->n_free - best - 1) * sizeof(block));
            a->n_free--;
        }
        return off;
    }
    /* Grow: a free block that ends at the top is extended. */
    if (a->n_free > 0 && a->free_blocks[a->n_free - 1].off + a->free_blocks[a->n_free - 1].size == a->top) {
        size_t off = a->free_blocks[--a->n_free].off;
        a->top = off + size;
        return off;
    }
    size_t off = a->top;
    a->top += size;
    return off;
}

/* free_blocks has room for every tensor (capacity = number of placed tensors + 1). */
static void free_bytes(allocator *a, size_t off, size_t size) {
    size = VKL_ALIGN_UP(size ? size : 1, a->align);
    int i = 0;
    while (i < a->n_free && a->free_blocks[i].off < off) i++;
    memmove(&a->free_blocks[i + 1], &a->free_blocks[i], (size_t)(a->n_free - i) * sizeof(block));
    a->free_blocks[i] = (block){off, size};
    a->n_free++;
    if (i + 1 < a->n_free && a->free_blocks[i].off + a->free_blocks[i].size == a->free_blocks[i + 1].off) {
        a->free_blocks[i].size += a->free_blocks[i + 1].size;
        memmove(&a->free_blocks[i + 1], &a->free_blocks[i + 2], (size_t)(a->n_free - i - 2) * sizeof(block));
        a->n_free--;
    }
    if (i > 0 && a->free_blocks[i - 1].off + a->free_blocks[i - 1].size == a->free_blocks[i].off) {
        a->free_blocks[i - 1].size += a->free_blocks[i].size;
        memmove(&a->free_blocks[i], &a->free_blocks[i + 1], (size_t)(a->n_free - i - 1) * sizeof(block));
        a->n_free--;
    }
}

/* ---- planning ------------------------------------------------------------------------------ */

static bool in_arena(const vkl_tensor *t) {
    return !t->view_src && !(t->flags & VKL_TF_EXTERNAL) && (t->op != VKL_OP_NONE || (t->flags & VKL_TF_INPUT));
}

/* Index over the graph's pool followed by the plan's mirrors; -1 for outside tensors (weights). */
static int tensor_index(const vkl_plan *p, const vkl_tensor *t) {
    const vkl_graph *g = p->g;
    if (t >= g->pool && t < g->pool + g->n_pool) return (int)(t - g->pool);
    if (p->mirrors && t >= p->mirrors && t < p->mirrors + p->n_mirrors) return g->n_pool + (int)(t - p->mirrors);
    return -1;
}

static vkl_tensor *tensor_at(const vkl_plan *p, int i) {
    return i < p->g->n_pool ? &p->g->pool[i] : &p->mirrors[i - p->g->n_pool];
}

/* A node that reads no weight or cache stays on the backend that produced its newest source (the
 * last one the graph created; when that backend supports it), so a layer's activations stay where
 * its weights are: a residual add x + f(x) runs where f ran, and the residual stream follows the
 * layers from device to device instead of returning to where the embeddings were looked up.
 * -1: no preference. */
static int follow_data(vkl_executor *ex, const vkl_tensor *node) {
    const vkl_tensor *newest = NULL;
    for (int s = 0; s < VKL_MAX_SRC && node->src[s]; s++) {
        const vkl_tensor *r = vkl_tensor_root(node->src[s]);
        if (r->flags & VKL_TF_EXTERNAL) return -1;
        if (r->op != VKL_OP_NONE && (!newest || r > newest)) newest = r; /* pool order = creation order */
    }
    if (!newest || newest->backend < 0 || newest->backend >= ex->n_backends) return -1;
    vkl_backend *be = ex->backends[newest->backend];
    return be->ops->supports(be, node) ? newest->backend : -1;
}

static int assign_backends(vkl_executor *ex, vkl_plan *p, vkl_error *err) {
    vkl_graph *g = p->g;
    for (int i = 0; i < g->n_nodes; i++) {
        vkl_tensor *node = g->nodes[i];
        node->backend = ex->n_backends > 1 ? follow_data(ex, node) : -1;
        for (int b = 0; b < ex->n_backends && node->backend < 0; b++)
            if (ex->backends[b]->ops->supports(ex->backends[b], node)) node->backend = b;
        if (node->backend < 0)
            return vkl_fail(err, "executor: no backend supports node %d (%s, %s, source type %s)", i,
                            vkl_op_name(node->op), node->name, vkl_type_name(node->src[0]->type));
    }
    p->runs = vkl_malloc((size_t)VKL_MAX(g->n_nodes, 1) * sizeof *p->runs, err);
    if (!p->runs) return -1;
    for (int i = 0; i < g->n_nodes; i++) {
        if (p->n_runs > 0 && p->runs[p->n_runs - 1].backend == g->nodes[i]->backend) p->runs[p->n_runs - 1].count++;
        else p->runs[p->n_runs++] = (run){g->nodes[i]->backend, i, 1};
    }
    return 0;
}

/* Where each arena tensor of the pool lives: its producer's backend; inputs: their first consumer's. */
static void find_homes(const vkl_plan *p, int *home) {
    const vkl_graph *g = p->g;
    for (int i = 0; i < g->n_pool; i++) home[i] = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        vkl_tensor *node = g->nodes[i];
        home[tensor_index(p, node)] = node->backend;
        for (int s = 0; s < VKL_MAX_SRC && node->src[s]; s++) {
            int ri = tensor_index(p, vkl_tensor_root(node->src[s]));
            if (ri >= 0 && home[ri] < 0 && (g->pool[ri].flags & VKL_TF_INPUT)) home[ri] = node->backend;
        }
    }
    for (int i = 0; i < g->n_pool; i++)
        if (home[i] < 0) home[i] = 0; /* unused inputs */
}

/* Redirects every source that lives on another backend to a mirror in the consumer's arena (one
 * per tensor and backend; views get mirrored views), recording the copy before the first run
 * that needs it. Graph tensors are written once, so one copy serves every later run. */
static int insert_copies(vkl_plan *p, const int *home, vkl_error *err) {
    vkl_graph *g = p->g;
    int refs = 0;
    for (int i = 0; i < g->n_nodes; i++)
        for (int s = 0; s < VKL_MAX_SRC && g->nodes[i]->src[s]; s++) {
            int ri = tensor_index(p, vkl_tensor_root(g->nodes[i]->src[s]));
            if (ri >= 0 && in_arena(&g->pool[ri]) && home[ri] != g->nodes[i]->backend) refs++;
        }
    if (refs == 0) return 0;
    p->cap_mirrors = 2 * refs;
    p->mirrors = vkl_calloc((size_t)p->cap_mirrors, sizeof *p->mirrors, err);
    p->xfers = vkl_calloc((size_t)refs, sizeof *p->xfers, err);
    p->rewrites = vkl_calloc((size_t)refs, sizeof *p->rewrites, err);
    if (!p->mirrors || !p->xfers || !p->rewrites) return -1;
    size_t staging = 0;
    for (int r = 0; r < p->n_runs; r++) {
        int b = p->runs[r].backend;
        for (int i = p->runs[r].first; i < p->runs[r].first + p->runs[r].count; i++) {
            vkl_tensor *node = g->nodes[i];
            for (int s = 0; s < VKL_MAX_SRC && node->src[s]; s++) {
                vkl_tensor *src = node->src[s], *root = vkl_tensor_root(src);
                int ri = tensor_index(p, root);
                if (ri < 0 || ri >= g->n_pool || !in_arena(root) || home[ri] == b) continue;
                vkl_tensor *mirror = NULL;
                for (int x = 0; x < p->n_xfers && !mirror; x++)
                    if (p->xfers[x].from == root && p->xfers[x].to->backend == b)
                        mirror = p->xfers[x].to;
                if (!mirror) {
                    mirror = &p->mirrors[p->n_mirrors++];
                    vkl_tensor_init(mirror, root->name, root->type, root->ne[0], root->ne[1]);
                    mirror->backend = b;
                    mirror->host_copy = root->host_copy; /* an input's bytes, wherever they are copied */
                    p->xfers[p->n_xfers++] = (xfer){root, mirror, r};
                    staging = VKL_MAX(staging, vkl_tensor_nbytes(root));
                }
                vkl_tensor *use = mirror;
                if (src != root) { /* a view: the same window of the mirror */
                    use = &p->mirrors[p->n_mirrors++];
                    *use = *src;
                    use->view_src = mirror;
                    use->view_offs = 0;
                    for (vkl_tensor *v = src; v->view_src; v = v->view_src) use->view_offs += v->view_offs;
                    use->backend = b;
                }
                p->rewrites[p->n_rewrites++] = (rewrite){node, src, s};
                node->src[s] = use;
            }
        }
    }
    p->staging = vkl_malloc(staging, err);
    return p->staging ? 0 : -1;
}

static int plan_memory(vkl_executor *ex, vkl_plan *p, vkl_error *err) {
    vkl_graph *g = p->g;
    int n = g->n_pool, rc = -1;
    int *home = vkl_malloc((size_t)n * sizeof(int), err);
    if (!home) return -1;
    find_homes(p, home);
    if (insert_copies(p, home, err)) {
        free(home);
        return -1;
    }
    int total = n + p->n_mirrors;
    int *first = vkl_malloc((size_t)total * sizeof(int), err);
    int *last = vkl_malloc((size_t)total * sizeof(int), err);
    int *slot = vkl_malloc((size_t)total * sizeof(int), err);
    p->placed = vkl_calloc((size_t)total, sizeof *p->placed, err);
    p->offset = vkl_calloc((size_t)total, sizeof *p->offset, err);
    p->where = vkl_calloc((size_t)total, sizeof *p->where, err);
    allocator al[VKL_MAX_BACKENDS] = {{0}};
    if (!first || !last || !slot || !p->placed || !p->offset || !p->where) goto done;
    /* Lifetimes in node indices: from production (inputs: 0; mirrors: their copy, at the start of
     * the run that needs them) to the last consumer (through views; copies read their source). */
    for (int i = 0; i < total; i++) {
        vkl_tensor *t = tensor_at(p, i);
        first[i] = (t->flags & VKL_TF_INPUT) ? 0 : INT32_MAX;
        last[i] = (t->flags & VKL_TF_OUTPUT) ? g->n_nodes : -1;
        slot[i] = -1;
    }
    for (int x = 0; x < p->n_xfers; x++) {
        int at = p->runs[p->xfers[x].run].first, fi = tensor_index(p, p->xfers[x].from), ti = tensor_index(p, p->xfers[x].to);
        first[ti] = at;
        last[fi] = VKL_MAX(last[fi], at);
    }
    for (int i = 0; i < g->n_nodes; i++) {
        vkl_tensor *node = g->nodes[i];
        int ni = tensor_index(p, node);
        first[ni] = i;
        last[ni] = VKL_MAX(last[ni], i);
        for (int s = 0; s < VKL_MAX_SRC && node->src[s]; s++) {
            int ri = tensor_index(p, vkl_tensor_root(node->src[s]));
            if (ri >= 0) last[ri] = VKL_MAX(last[ri], i);
        }
    }
    for (int b = 0; b < ex->n_backends; b++) {
        al[b].align = VKL_MAX(ex->backends[b]->alignment, 16);
        al[b].free_blocks = vkl_malloc((size_t)(total + 1) * sizeof(block), err);
        if (!al[b].free_blocks) goto done;
    }
    /* Walk the nodes: place what starts at step i, then release what ends at step i. */
    for (int i = 0; i < g->n_nodes; i++) {
        for (int k = 0; k < total; k++) {
            vkl_tensor *t = tensor_at(p, k);
            bool owns_bytes = k < n ? in_arena(t) : !t->view_src; /* mirrors own bytes, their views not */
            if (first[k] != i || !owns_bytes) continue;
            int b = k < n ? home[k] : t->backend;
            slot[k] = p->n_placed;
            p->placed[p->n_placed] = t;
            p->where[p->n_placed] = b;
            p->offset[p->n_placed++] = alloc_bytes(&al[b], vkl_tensor_nbytes(t));
        }
        for (int k = 0; k < total; k++) {
            if (slot[k] < 0 || last[k] != i) continue;
            free_bytes(&al[p->where[slot[k]]], p->offset[slot[k]], vkl_tensor_nbytes(p->placed[slot[k]]));
            slot[k] = -1;
        }
    }
    for (int b = 0; b < ex->n_backends; b++) p->need[b] = al[b].top;
    rc = 0;
done:
    for (int b = 0; b < ex->n_backends; b++) free(al[b].free_blocks);
    free(first);
    free(last);
    free(slot);
    free(home);
    return rc;
}

/* Points every arena tensor (and view) of the plan at its bytes in the current arenas. */
static void bind(vkl_executor *ex, vkl_plan *p) {
    if (p->bound && p->bound_generation == ex->generation) return;
    for (int k = 0; k < p->n_placed; k++) {
        vkl_tensor *t = p->placed[k];
        vkl_buffer *buf = ex->arena[p->where[k]];
        t->buffer = buf;
        t->offset = p->offset[k];
        t->data = buf->host ? (char *)buf->host + p->offset[k] : NULL;
    }
    for (int i = 0; i < p->g->n_pool + p->n_mirrors; i++) {
        vkl_tensor *t = tensor_at(p, i);
        if (!t->view_src) continue;
        vkl_tensor *r = vkl_tensor_root(t);
        size_t offs = 0;
        for (vkl_tensor *v = t; v->view_src; v = v->view_src) offs += v->view_offs;
        t->buffer = r->buffer;
        t->offset = r->offset + offs;
        t->data = r->data ? (char *)r->data + offs : NULL;
    }
    p->bound = true;
    p->bound_generation = ex->generation;
}

/* Inputs are small (token ids, positions): a host copy of each lets a backend read them without a
 * download. */
static int alloc_input_copies(vkl_plan *p, vkl_error *err) {
    vkl_graph *g = p->g;
    size_t total = 0;
    for (int i = 0; i < g->n_pool; i++)
        if (g->pool[i].flags & VKL_TF_INPUT) total += VKL_ALIGN_UP(vkl_tensor_nbytes(&g->pool[i]), 16);
    if (total == 0) return 0;
    p->inputs = vkl_calloc(1, total, err);
    if (!p->inputs) return -1;
    size_t off = 0;
    for (int i = 0; i < g->n_pool; i++) {
        if (!(g->pool[i].flags & VKL_TF_INPUT)) continue;
        g->pool[i].host_copy = p->inputs + off;
        off += VKL_ALIGN_UP(vkl_tensor_nbytes(&g->pool[i]), 16);
    }
    return 0;
}

vkl_plan *vkl_executor_plan(vkl_executor *ex, vkl_graph *g, vkl_error *err) {
    vkl_plan *p = vkl_calloc(1, sizeof *p, err);
    if (!p) return NULL;
    p->g = g;
    if (alloc_input_copies(p, err) || assign_backends(ex, p, err) || plan_memory(ex, p, err)) goto fail;
    for (int b = 0; b < ex->n_backends; b++) {
        if (p->need[b] <= ex->arena_size[b]) continue;
        vkl_backend *be = ex->backends[b];
        if (ex->arena[b]) be->ops->buffer_free(be, ex->arena[b]);
        ex->arena[b] = NULL;
        ex->arena_size[b] = 0;
        ex->generation++;
        ex->arena[b] = be->ops->buffer_alloc(be, p->need[b], err);
        if (!ex->arena[b]) {
            vkl_error_prefix(err, "executor: scratch arena on %s", be->info.backend);
            goto fail;
        }
        ex->arena_size[b] = p->need[b];
    }
    bind(ex, p);
    for (int r = 0; r < p->n_runs; r++) {
        vkl_backend *be = ex->backends[p->runs[r].backend];
        if (be->ops->prepare(be, g, p->runs[r].first, p->runs[r].count, err)) goto fail;
    }
    return p;
fail:
    vkl_plan_free(p);
    return NULL;
}

int vkl_executor_measure(vkl_backend *const *backends, int n_backends, vkl_graph *g, size_t *need, vkl_error *err) {
    vkl_executor *ex = vkl_executor_create(backends, n_backends, err);
    vkl_plan *p = ex ? vkl_calloc(1, sizeof *p, err) : NULL;
    int rc = -1;
    if (p) {
        p->g = g;
        rc = assign_backends(ex, p, err) || plan_memory(ex, p, err) ? -1 : 0;
        for (int b = 0; b < n_backends && rc == 0; b++) need[b] = p->need[b];
    }
    vkl_plan_free(p); /* restores the sources redirected to mirrors */
    vkl_executor_free(ex);
    return rc;
}

static int tensor_home(const vkl_plan *p, const vkl_tensor *t) {
    for (int k = 0; k < p->n_placed; k++)
        if (p->placed[k] == t) return p->where[k];
    return -1;
}

int vkl_executor_set_input(vkl_executor *ex, vkl_plan *p, vkl_tensor *t, const void *data, size_t n, vkl_error *err) {
    bind(ex, p);
    int b = tensor_home(p, t);
    if (b < 0) return vkl_fail(err, "executor: %s is not an input of this plan", t->name);
    if (n > vkl_tensor_nbytes(t)) return vkl_fail(err, "executor: %zu bytes for input %s of %zu", n, t->name, vkl_tensor_nbytes(t));
    if (t->host_copy && n) memcpy(t->host_copy, data, n);
    return ex->backends[b]->ops->upload(ex->backends[b], t->buffer, t->offset, data, n, err);
}

int vkl_executor_compute(vkl_executor *ex, vkl_plan *p, vkl_error *err) {
    bind(ex, p);
    for (int r = 0; r < p->n_runs; r++) {
        vkl_backend *be = ex->backends[p->runs[r].backend];
        for (int x = 0; x < p->n_xfers; x++) {
            const xfer *c = &p->xfers[x];
            if (c->run != r) continue;
            vkl_backend *from = ex->backends[tensor_home(p, c->from)];
            size_t n = vkl_tensor_nbytes(c->from);
            if (from->ops->download(from, c->from->buffer, c->from->offset, p->staging, n, err) ||
                be->ops->upload(be, c->to->buffer, c->to->offset, p->staging, n, err))
                return -1;
        }
        if (be->ops->execute(be, p->g, p->runs[r].first, p->runs[r].count, err)) return -1;
        /* The next run (another backend) reads this one's results: the download of the copy
         * waits for them. */
    }
    return 0;
}

int vkl_executor_get_rows(vkl_executor *ex, vkl_plan *p, const vkl_tensor *t, int64_t first_row, int64_t n_rows,
                          void *dst, vkl_error *err) {
    bind(ex, p);
    const vkl_tensor *r = vkl_tensor_root((vkl_tensor *)t);
    int b = tensor_home(p, r);
    if (b < 0 || first_row < 0 || n_rows < 0 || first_row + n_rows > t->ne[1])
        return vkl_fail(err, "executor: cannot read rows %lld..%lld of %s", (long long)first_row,
                        (long long)(first_row + n_rows), t->name);
    size_t row = vkl_tensor_row_size(t->type, t->ne[0]);
    vkl_backend *be = ex->backends[b];
    if (n_rows > 0 && t->nb[1] == row)
        return be->ops->download(be, t->buffer, t->offset + (size_t)first_row * row, dst, (size_t)n_rows * row, err);
    for (int64_t i = 0; i < n_rows; i++)
        if (be->ops->download(be, t->buffer, t->offset + (size_t)(first_row + i) * t->nb[1], (char *)dst + i * row,
                              row, err))
            return -1;
    return 0;
}
