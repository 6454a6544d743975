/* The public API (include/vkllm.h): model loading, tokens, the evaluation context (KV cache,
 * graphs cached per batch shape, executor) and sampling. */
#include "vkllm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "executor.h"
#include "model.h"
#include "sampler.h"
#include "tokenizer.h"

_Static_assert(sizeof(vkllm_error) == sizeof(vkl_error), "error structs match");

/* The internal error type has the same layout as the public one. */
#define ERR(e) ((vkl_error *)(void *)(e))

struct vkllm_model {
    vkl_model *m;
    vkl_tokenizer *tok;
    vkl_backend *cpu;
    vkl_backend *gpu;     /* NULL when everything runs on the CPU */
    int n_gpu_layers;     /* layers [n_layer - n_gpu_layers, n_layer) have their weights on the GPU */
    bool gpu_head;        /* embeddings, output norm and head on the GPU too */
    vkl_buffer **wbufs;   /* GPU copies of weights: one buffer per layer, one for the rest */
    int n_wbufs;
    char desc[160];
};

/* ---- model ----------------------------------------------------------------------------------- */

/* Copies weight tensors (from the mmapped file) into one new buffer of mm->gpu and points the
 * tensors there. */
static int offload(vkllm_model *mm, vkl_tensor *const *ts, int n, vkl_error *err) {
    vkl_backend *be = mm->gpu;
    size_t align = VKL_MAX(be->alignment, 16), total = 0;
    for (int i = 0; i < n; i++) total = VKL_ALIGN_UP(total, align) + vkl_tensor_nbytes(ts[i]);
    vkl_buffer *buf = be->ops->buffer_alloc(be, total, err);
    if (!buf) {
        vkl_error_prefix(err, "loading weights");
        return -1;
    }
    mm->wbufs[mm->n_wbufs++] = buf;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        off = VKL_ALIGN_UP(off, align);
        if (be->ops->upload(be, buf, off, ts[i]->data, vkl_tensor_nbytes(ts[i]), err)) return -1;
        ts[i]->buffer = buf;
        ts[i]->offset = off;
        ts[i]->data = buf->host ? (char *)buf->host + off : NULL;
        off += vkl_tensor_nbytes(ts[i]);
    }
    return 0;
}

/* Opens the Vulkan device and uploads the weights of the GPU layers (see n_gpu_layers). */
static int offload_model(vkllm_model *mm, const vkllm_model_params *p, const vkl_backend_config *cfg, vkl_error *err) {
    vkl_model *m = mm->m;
    int n_layer = m->hp.n_layer;
    mm->gpu = vkl_vulkan_backend_reg.open ? vkl_vulkan_backend_reg.open(p->gpu_device, cfg, err) : NULL;
    if (!mm->gpu) return -1;
    mm->n_gpu_layers = VKL_MIN(p->n_gpu_layers, n_layer);
    mm->gpu_head = p->n_gpu_layers > n_layer;
    mm->wbufs = vkl_calloc((size_t)n_layer + 1, sizeof *mm->wbufs, err);
    if (!mm->wbufs) return -1;
    for (int l = n_layer - mm->n_gpu_layers; l < n_layer; l++) {
        vkl_layer *L = &m->layers[l];
        vkl_tensor *ts[] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo, &L->ffn_norm, &L->w_gate, &L->w_up, &L->w_down};
        if (offload(mm, ts, (int)VKL_ARRAY_LEN(ts), err)) return -1;
    }
    if (mm->gpu_head) {
        vkl_tensor *ts[] = {&m->tok_embd, &m->output_norm, &m->output};
        if (offload(mm, ts, m->tied_output ? 2 : 3, err)) return -1;
        if (m->tied_output) m->output = m->tok_embd;
    }
    return 0;
}

vkllm_model_params vkllm_model_default_params(void) {
    return (vkllm_model_params){0};
}

int vkllm_gpu_count(vkllm_error *err) {
    return vkl_vulkan_backend_reg.enumerate(NULL, 0, ERR(err));
}

vkllm_model *vkllm_model_load(const char *path, const vkllm_model_params *params, vkllm_error *err) {
    vkllm_model_params p = params ? *params : vkllm_model_default_params();
    vkllm_model *mm = vkl_calloc(1, sizeof *mm, ERR(err));
    if (!mm) return NULL;
    gguf_file *f = gguf_open(path, ERR(err));
    if (!f) {
        vkl_error_prefix(ERR(err), "%s", path);
        free(mm);
        return NULL;
    }
    mm->tok = vkl_tokenizer_load(f, ERR(err));
    if (!mm->tok) {
        vkl_error_prefix(ERR(err), "%s", path);
        gguf_close(f);
        free(mm);
        return NULL;
    }
    mm->m = vkl_model_create(f, p.progress, p.progress_user, ERR(err)); /* owns f from here */
    if (!mm->m) {
        vkl_error_prefix(ERR(err), "%s", path);
        goto fail;
    }
    if (vkl_tokenizer_n_vocab(mm->tok) != mm->m->hp.n_vocab) {
        vkl_fail(ERR(err), "%s: tokenizer has %d tokens but the model %d", path, vkl_tokenizer_n_vocab(mm->tok),
                 mm->m->hp.n_vocab);
        goto fail;
    }
    vkl_backend_config cfg = {.n_threads = p.n_threads, .reference = p.reference, .profile = p.profile};
    mm->cpu = vkl_cpu_backend_open(0, &cfg, ERR(err));
    if (!mm->cpu) goto fail;
    if (p.n_gpu_layers > 0 && offload_model(mm, &p, &cfg, ERR(err))) goto fail;
    const vkl_hparams *hp = &mm->m->hp;
    snprintf(mm->desc, sizeof mm->desc, "%s, %d layers, %d embd, %d/%d heads, %d ff, %d vocab, %s weights", hp->arch,
             hp->n_layer, hp->n_embd, hp->n_head, hp->n_head_kv, hp->n_ff, hp->n_vocab,
             vkl_type_name(mm->m->layers[0].wq.type));
    return mm;
fail:
    vkllm_model_free(mm);
    return NULL;
}

void vkllm_model_free(vkllm_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_wbufs; i++) m->gpu->ops->buffer_free(m->gpu, m->wbufs[i]);
    free(m->wbufs);
    vkl_backend_close(m->gpu);
    vkl_backend_close(m->cpu);
    vkl_model_free(m->m);
    vkl_tokenizer_free(m->tok);
    free(m);
}

int vkllm_model_n_vocab(const vkllm_model *m) { return m->m->hp.n_vocab; }
int vkllm_model_n_ctx_train(const vkllm_model *m) { return m->m->hp.n_ctx_train; }
int vkllm_model_n_embd(const vkllm_model *m) { return m->m->hp.n_embd; }
int vkllm_model_n_layer(const vkllm_model *m) { return m->m->hp.n_layer; }
int vkllm_model_n_threads(const vkllm_model *m) { return m->cpu->n_threads; }
int vkllm_model_n_gpu_layers(const vkllm_model *m) { return m->n_gpu_layers + (m->gpu_head ? 1 : 0); }
const char *vkllm_model_gpu_name(const vkllm_model *m) { return m->gpu ? m->gpu->info.name : NULL; }
const char *vkllm_model_desc(const vkllm_model *m) { return m->desc; }

int vkllm_model_profile(vkllm_model *m, vkllm_op_profile *out, int max, bool reset) {
    double secs[VKL_OP_COUNT] = {0};
    uint64_t calls[VKL_OP_COUNT] = {0};
    vkl_backend *bes[2] = {m->cpu, m->gpu};
    for (int b = 0; b < 2; b++) {
        double s[VKL_OP_COUNT] = {0};
        uint64_t k[VKL_OP_COUNT] = {0};
        if (!bes[b] || !bes[b]->ops->op_profile) continue;
        bes[b]->ops->op_profile(bes[b], s, k, reset);
        for (int op = 0; op < VKL_OP_COUNT; op++) secs[op] += s[op], calls[op] += k[op];
    }
    int n = 0;
    for (int op = 0; op < VKL_OP_COUNT && n < max; op++)
        if (calls[op]) out[n++] = (vkllm_op_profile){vkl_op_name((vkl_op)op), secs[op], calls[op]};
    return n;
}

/* ---- tokens ---------------------------------------------------------------------------------- */

int32_t vkllm_token_bos(const vkllm_model *m) { return vkl_tokenizer_bos(m->tok); }
int32_t vkllm_token_eos(const vkllm_model *m) { return vkl_tokenizer_eos(m->tok); }
bool vkllm_token_is_eog(const vkllm_model *m, int32_t id) { return vkl_token_is_eog(m->tok, id); }

int vkllm_tokenize(const vkllm_model *m, const char *text, size_t len, bool add_special, int32_t *out, int max_out,
                   vkllm_error *err) {
    return vkl_tokenize(m->tok, text, len, add_special, false, out, max_out, ERR(err));
}

int vkllm_token_to_piece(const vkllm_model *m, int32_t id, char *buf, size_t bufsize) {
    return vkl_token_to_piece(m->tok, id, false, false, buf, bufsize);
}

struct vkllm_detok {
    vkl_detok d;
};

vkllm_detok *vkllm_detok_create(const vkllm_model *m, vkllm_error *err) {
    vkllm_detok *d = vkl_calloc(1, sizeof *d, ERR(err));
    if (d) vkl_detok_init(&d->d, m->tok, false, false);
    return d;
}

void vkllm_detok_free(vkllm_detok *d) { free(d); }

int vkllm_detok_push(vkllm_detok *d, int32_t id, char *out, size_t out_size) {
    return vkl_detok_push(&d->d, id, out, out_size);
}

int vkllm_detok_flush(vkllm_detok *d, char *out, size_t out_size) { return vkl_detok_flush(&d->d, out, out_size); }

size_t vkllm_detok_max_bytes(const vkllm_model *m) {
    return 3 * ((size_t)vkl_tokenizer_max_piece_len(m->tok) + 4);
}

/* ---- context --------------------------------------------------------------------------------- */

#define GRAPH_CACHE 4 /* graphs kept per context: full prompt batch, remainder, one token, ... */

typedef struct cached_graph {
    vkl_llama_graph lg;
    vkl_plan *plan;
    unsigned last_used;
} cached_graph;

struct vkllm_context {
    vkllm_model *model;
    vkl_kv_cache *kv;          /* the layers' K/V tensors (views of the parts) and n_past */
    vkl_kv_cache *kv_part[2];  /* the storage: CPU layers, GPU layers (either may be NULL) */
    vkl_executor *ex;
    int n_ctx, n_batch;
    cached_graph graphs[GRAPH_CACHE];
    int n_graphs;
    unsigned tick;
    int32_t *pos;          /* n_batch positions */
    float *logits;         /* logits_cap rows of n_vocab */
    int logits_cap, n_logits;
    vkllm_timings timings;
};

vkllm_context_params vkllm_context_default_params(void) {
    return (vkllm_context_params){.n_ctx = 0, .n_batch = 512, .kv_type = VKLLM_KV_F16};
}

/* The KV cache of the CPU layers in host memory, the GPU layers' on the device; c->kv holds every
 * layer's tensors (copies of the parts' descriptors, no storage of its own). */
static int create_kv(vkllm_context *c, vkllm_model *m, int n_ctx, vkl_type type, vkl_error *err) {
    const vkl_hparams *hp = &m->m->hp;
    int64_t kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    int n_gpu = m->gpu ? m->n_gpu_layers : 0, n_cpu = hp->n_layer - n_gpu;
    if (n_cpu > 0 && !(c->kv_part[0] = vkl_kv_cache_create(m->cpu, n_cpu, n_ctx, kv_dim, type, err))) return -1;
    if (n_gpu > 0 && !(c->kv_part[1] = vkl_kv_cache_create(m->gpu, n_gpu, n_ctx, kv_dim, type, err))) return -1;
    c->kv = vkl_calloc(1, sizeof *c->kv, err);
    if (!c->kv) return -1;
    *c->kv = (vkl_kv_cache){.backend = NULL, .buf = NULL, .type = type, .n_layer = hp->n_layer, .n_ctx = n_ctx, .kv_dim = kv_dim};
    c->kv->k = vkl_calloc((size_t)hp->n_layer, sizeof *c->kv->k, err);
    c->kv->v = vkl_calloc((size_t)hp->n_layer, sizeof *c->kv->v, err);
    if (!c->kv->k || !c->kv->v) return -1;
    for (int l = 0; l < hp->n_layer; l++) {
        const vkl_kv_cache *part = l < n_cpu ? c->kv_part[0] : c->kv_part[1];
        int pl = l < n_cpu ? l : l - n_cpu;
        c->kv->k[l] = part->k[pl];
        c->kv->v[l] = part->v[pl];
        snprintf(c->kv->k[l].name, sizeof c->kv->k[l].name, "cache_k_l%d", l);
        snprintf(c->kv->v[l].name, sizeof c->kv->v[l].name, "cache_v_l%d", l);
    }
    return 0;
}

vkllm_context *vkllm_context_create(vkllm_model *m, const vkllm_context_params *params, vkllm_error *err) {
    vkllm_context_params p = params ? *params : vkllm_context_default_params();
    const vkl_hparams *hp = &m->m->hp;
    if (p.n_ctx == 0) p.n_ctx = VKL_MIN(hp->n_ctx_train, 4096);
    if (p.n_batch == 0) p.n_batch = 512;
    if (p.n_ctx < 1 || p.n_ctx > (1 << 24)) {
        vkl_fail(ERR(err), "context size %d is out of range (1..%d)", p.n_ctx, 1 << 24);
        return NULL;
    }
    if (p.n_batch < 1 || p.n_batch > (1 << 16)) {
        vkl_fail(ERR(err), "batch size %d is out of range (1..%d)", p.n_batch, 1 << 16);
        return NULL;
    }
    if (p.kv_type != VKLLM_KV_F16 && p.kv_type != VKLLM_KV_F32) {
        vkl_fail(ERR(err), "unknown KV cache type %d", (int)p.kv_type);
        return NULL;
    }
    p.n_batch = VKL_MIN(p.n_batch, p.n_ctx);
    vkllm_context *c = vkl_calloc(1, sizeof *c, ERR(err));
    if (!c) return NULL;
    c->model = m;
    c->n_ctx = p.n_ctx;
    c->n_batch = p.n_batch;
    if (create_kv(c, m, p.n_ctx, p.kv_type == VKLLM_KV_F32 ? VKL_TYPE_F32 : VKL_TYPE_F16, ERR(err))) goto fail;
    vkl_backend *bes[2] = {m->gpu, m->cpu}; /* the GPU first: it takes every node it can */
    c->ex = m->gpu ? vkl_executor_create(bes, 2, ERR(err)) : vkl_executor_create(&m->cpu, 1, ERR(err));
    c->pos = vkl_malloc((size_t)p.n_batch * sizeof *c->pos, ERR(err));
    c->logits = vkl_malloc((size_t)hp->n_vocab * sizeof *c->logits, ERR(err));
    if (!c->ex || !c->pos || !c->logits) goto fail;
    c->logits_cap = 1;
    return c;
fail:
    vkllm_context_free(c);
    return NULL;
}

static void drop_graph(cached_graph *cg) {
    vkl_plan_free(cg->plan);
    vkl_graph_free(cg->lg.g);
    memset(cg, 0, sizeof *cg);
}

void vkllm_context_free(vkllm_context *c) {
    if (!c) return;
    for (int i = 0; i < c->n_graphs; i++) drop_graph(&c->graphs[i]);
    vkl_executor_free(c->ex);
    vkl_kv_cache_free(c->kv); /* no buffer of its own */
    vkl_kv_cache_free(c->kv_part[0]);
    vkl_kv_cache_free(c->kv_part[1]);
    free(c->pos);
    free(c->logits);
    free(c);
}

int vkllm_n_ctx(const vkllm_context *c) { return c->n_ctx; }
int vkllm_n_batch(const vkllm_context *c) { return c->n_batch; }
int vkllm_n_past(const vkllm_context *c) { return c->kv->n_past; }

int vkllm_kv_truncate(vkllm_context *c, int n, vkllm_error *err) {
    if (n < 0 || n > c->kv->n_past)
        return vkl_fail(ERR(err), "cannot truncate the KV cache to %d positions (it holds %d)", n, c->kv->n_past);
    c->kv->n_past = n; /* rows beyond n are overwritten before they are read again */
    return 0;
}

/* The graph (and plan) for a pass of n tokens, built on first use; least recently used evicted. */
static cached_graph *get_graph(vkllm_context *c, int n, bool all_logits, vkl_error *err) {
    all_logits = all_logits && n > 1;
    c->tick++;
    for (int i = 0; i < c->n_graphs; i++) {
        cached_graph *cg = &c->graphs[i];
        if (cg->lg.n_tokens == n && cg->lg.all_logits == all_logits) {
            cg->last_used = c->tick;
            return cg;
        }
    }
    cached_graph *cg;
    if (c->n_graphs < GRAPH_CACHE) {
        cg = &c->graphs[c->n_graphs++];
    } else {
        cg = &c->graphs[0];
        for (int i = 1; i < GRAPH_CACHE; i++)
            if (c->graphs[i].last_used < cg->last_used) cg = &c->graphs[i];
        drop_graph(cg);
    }
    if (vkl_llama_build(c->model->m, c->kv, n, all_logits, &cg->lg, err)) goto fail;
    cg->plan = vkl_executor_plan(c->ex, cg->lg.g, err);
    if (!cg->plan) goto fail;
    cg->last_used = c->tick;
    return cg;
fail:
    drop_graph(cg);
    /* Keep the cache dense: move the last entry into the freed slot. */
    c->n_graphs--;
    if (cg != &c->graphs[c->n_graphs]) {
        *cg = c->graphs[c->n_graphs];
        memset(&c->graphs[c->n_graphs], 0, sizeof *cg);
    }
    return NULL;
}

static int eval_pass(vkllm_context *c, const int32_t *tokens, int n, bool all_logits, bool keep_logits, vkl_error *err) {
    double t0 = vkl_time_s();
    cached_graph *cg = get_graph(c, n, all_logits, err);
    if (!cg) return -1;
    for (int i = 0; i < n; i++) c->pos[i] = c->kv->n_past + i;
    vkl_plan *p = cg->plan;
    if (vkl_executor_set_input(c->ex, p, cg->lg.tokens, tokens, (size_t)n * sizeof *tokens, err) ||
        vkl_executor_set_input(c->ex, p, cg->lg.pos, c->pos, (size_t)n * sizeof *c->pos, err) ||
        vkl_executor_compute(c->ex, p, err))
        return -1;
    c->kv->n_past += n;
    if (keep_logits) {
        int rows = (int)cg->lg.logits->ne[1];
        if (vkl_executor_get_rows(c->ex, p, cg->lg.logits, 0, rows, c->logits, err)) return -1;
        c->n_logits = rows;
    }
    double dt = vkl_time_s() - t0;
    if (n > 1) c->timings.prompt_s += dt, c->timings.prompt_tokens += n;
    else c->timings.gen_s += dt, c->timings.gen_tokens += n;
    return 0;
}

int vkllm_eval(vkllm_context *c, const int32_t *tokens, int n, bool all_logits, vkllm_error *err) {
    int n_vocab = c->model->m->hp.n_vocab;
    c->n_logits = 0;
    if (n < 1) return vkl_fail(ERR(err), "eval: %d tokens", n);
    if (n > c->n_ctx - c->kv->n_past) return vkl_fail(ERR(err), "context full (%d tokens)", c->n_ctx);
    if (all_logits && n > c->n_batch)
        return vkl_fail(ERR(err), "eval: all logits of %d tokens asked for, more than the batch size %d", n, c->n_batch);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return vkl_fail(ERR(err), "eval: token id %d at %d is out of range (vocabulary of %d)", tokens[i], i, n_vocab);
    if (all_logits && n > c->logits_cap) { /* grows once to the largest batch asked for */
        float *l = vkl_malloc((size_t)n * (size_t)n_vocab * sizeof *l, ERR(err));
        if (!l) return -1;
        free(c->logits);
        c->logits = l;
        c->logits_cap = n;
    }
    for (int i = 0; i < n; i += c->n_batch) {
        int nb = VKL_MIN(c->n_batch, n - i);
        bool last = i + nb == n;
        if (eval_pass(c, tokens + i, nb, all_logits, last, ERR(err))) return -1;
    }
    return 0;
}

const float *vkllm_logits(const vkllm_context *c, int i) {
    if (i < 0) i = c->n_logits - 1;
    if (i < 0 || i >= c->n_logits) return NULL;
    return c->logits + (size_t)i * (size_t)c->model->m->hp.n_vocab;
}

int vkllm_n_logits(const vkllm_context *c) { return c->n_logits; }

size_t vkllm_scratch_bytes(const vkllm_context *c) {
    return vkl_executor_arena_size(c->ex, 0) + (c->model->gpu ? vkl_executor_arena_size(c->ex, 1) : 0);
}

size_t vkllm_kv_bytes(const vkllm_context *c) {
    size_t n = 0;
    for (int i = 0; i < 2; i++) n += c->kv_part[i] ? c->kv_part[i]->buf->size : 0;
    return n;
}

vkllm_timings vkllm_get_timings(const vkllm_context *c) { return c->timings; }
void vkllm_reset_timings(vkllm_context *c) { memset(&c->timings, 0, sizeof c->timings); }

/* ---- sampling -------------------------------------------------------------------------------- */

struct vkllm_sampler {
    vkl_sampler *s;
};

vkllm_sampler_params vkllm_sampler_default_params(void) {
    vkl_sampler_params d = vkl_sampler_default_params();
    return (vkllm_sampler_params){d.temperature, d.top_k, d.top_p, d.min_p, d.repeat_penalty, d.repeat_last_n, d.seed};
}

vkllm_sampler *vkllm_sampler_create(const vkllm_model *m, const vkllm_sampler_params *p, vkllm_error *err) {
    vkllm_sampler_params q = p ? *p : vkllm_sampler_default_params();
    vkl_sampler_params sp = vkl_sampler_default_params();
    sp.temperature = q.temperature, sp.top_k = q.top_k, sp.top_p = q.top_p, sp.min_p = q.min_p;
    sp.repeat_penalty = q.repeat_penalty, sp.repeat_last_n = q.repeat_last_n, sp.seed = q.seed;
    vkllm_sampler *s = vkl_calloc(1, sizeof *s, ERR(err));
    if (!s) return NULL;
    s->s = vkl_sampler_create(&sp, m->m->hp.n_vocab, ERR(err));
    if (!s->s) {
        free(s);
        return NULL;
    }
    return s;
}

void vkllm_sampler_free(vkllm_sampler *s) {
    if (!s) return;
    vkl_sampler_free(s->s);
    free(s);
}

int32_t vkllm_sample(vkllm_sampler *s, const float *logits) { return vkl_sampler_sample(s->s, logits); }
void vkllm_sampler_accept(vkllm_sampler *s, int32_t id) { vkl_sampler_accept(s->s, id); }
uint64_t vkllm_sampler_seed(const vkllm_sampler *s) { return vkl_sampler_seed(s->s); }
