/* The public API (include/vkllm.h): model loading, tokens, the evaluation context (KV cache,
 * graphs cached per batch shape, executor) and sampling. */
#include "vkllm.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "executor.h"
#include "model.h"
#include "offload.h"
#include "sampler.h"
#include "tokenizer.h"

_Static_assert(sizeof(vkllm_error) == sizeof(vkl_error), "error structs match");
_Static_assert(VKLLM_MAX_GPUS == VKL_OFFLOAD_MAX_GPU, "GPU limits match");

/* The internal error type has the same layout as the public one. */
#define ERR(e) ((vkl_error *)(void *)(e))

struct vkllm_model {
    vkl_model *m;
    vkl_tokenizer *tok;
    vkl_backend *cpu;
    /* Plan device d (1..) is Vulkan device plan.dev[d].index, opened as gpu[d - 1] when it holds
     * a layer or the head (NULL otherwise). */
    vkl_backend *gpu[VKL_OFFLOAD_MAX_GPU];
    vkl_offload_plan plan;
    uint64_t *layer_bytes; /* plan.model.layer_bytes */
    vkl_buffer **wbufs;    /* GPU copies of weights: chunks of consecutive layers, the head */
    int n_wbufs, cap_wbufs;
    pthread_mutex_t lock;  /* serializes backend work of the model's contexts */
    bool lock_ok;
    char desc[160];
    char *plan_text;
};

/* ---- offload planning -------------------------------------------------------------------- */

static uint64_t tensors_bytes(vkl_tensor *const *ts, int n, size_t align) {
    uint64_t total = 0;
    for (int i = 0; i < n; i++) total = VKL_ALIGN_UP(total, align) + vkl_tensor_nbytes(ts[i]);
    return total;
}

/* The weight tensors of layer l (9). */
static void layer_tensors(vkl_model *m, int l, vkl_tensor **ts) {
    vkl_layer *L = &m->layers[l];
    vkl_tensor *t[] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo, &L->ffn_norm, &L->w_gate, &L->w_up, &L->w_down};
    memcpy(ts, t, sizeof t);
}

/* A dry run of the executor's memory planning for a candidate placement: stand-in backends whose
 * supports() follows the placement (the real ones accept a node when its weights and caches are
 * theirs), the n_batch-token graph over a KV cache without storage. */
typedef struct dry_run {
    vkl_model *m;
    vkl_kv_cache *kv;
    vkl_llama_graph lg;
    const vkl_offload_plan *plan;
    vkl_backend be[VKL_OFFLOAD_MAX_DEV];
    vkl_backend_ops ops;
} dry_run;

static int owner_device(const dry_run *d, const vkl_tensor *t) {
    const vkl_model *m = d->m;
    const vkl_offload_plan *p = d->plan;
    int n_layer = m->hp.n_layer;
    if (t == &m->tok_embd) return 0;
    if (t == &m->output || t == &m->output_norm) {
        for (int k = 1; k < p->n_dev; k++)
            if (p->use[k].head) return k;
        return 0;
    }
    const char *c = (const char *)t, *lo = (const char *)m->layers;
    if (c >= lo && c < (const char *)(m->layers + n_layer))
        return vkl_offload_layer_device(p, (int)((size_t)(c - lo) / sizeof(vkl_layer)));
    for (int j = 0; j < 2; j++) {
        const vkl_tensor *base = j ? d->kv->v : d->kv->k;
        if (t >= base && t < base + n_layer) return p->kv_on_cpu ? 0 : vkl_offload_layer_device(p, (int)(t - base));
    }
    return -1;
}

static bool dry_supports(vkl_backend *be, const vkl_tensor *node) {
    const dry_run *d = be->impl;
    for (int i = 0; i < VKL_MAX_SRC && node->src[i]; i++) {
        const vkl_tensor *r = vkl_tensor_root(node->src[i]);
        if (!(r->flags & VKL_TF_EXTERNAL)) continue;
        int owner = owner_device(d, r);
        if (owner >= 0 && owner != be->info.index) return false;
    }
    return true;
}

/* Executor order: the GPUs that hold something (they take every node they can), then the CPU. */
static int executor_devices(const vkl_offload_plan *p, int *order) {
    int n = 0;
    for (int d = 1; d < p->n_dev; d++)
        if (p->use[d].n_layers > 0 || p->use[d].head) order[n++] = d;
    order[n++] = 0;
    return n;
}

static int dry_scratch(void *user, const vkl_offload_plan *p, uint64_t *scratch, vkl_error *err) {
    dry_run *d = user;
    d->plan = p;
    int order[VKL_OFFLOAD_MAX_DEV], n = executor_devices(p, order);
    vkl_backend *bes[VKL_OFFLOAD_MAX_DEV];
    for (int i = 0; i < n; i++) {
        bes[i] = &d->be[order[i]];
        bes[i]->info.index = order[i];
        bes[i]->alignment = VKL_OFFLOAD_ALIGN;
    }
    size_t need[VKL_OFFLOAD_MAX_DEV] = {0};
    if (vkl_executor_measure(bes, n, d->lg.g, need, err)) return -1;
    for (int i = 0; i < n; i++) scratch[order[i]] = need[i];
    return 0;
}

static void dry_run_free(dry_run *d) {
    vkl_graph_free(d->lg.g);
    vkl_kv_cache_free(d->kv);
}

/* The offload backend's devices (backends/registry.c); -1 with a message in a build without one. */
static int gpu_enumerate(vkl_device_info *out, int max, vkl_error *err) {
    const vkl_backend_reg *reg = vkl_backend_offload();
    return reg ? reg->enumerate(out, max, err) : vkl_fail(err, "this build has no GPU backend");
}

/* The plan for model m under params p (n_ctx/n_batch defaulted by the caller). Opens no device. */
static int make_plan(vkl_model *m, const vkl_backend *cpu_or_null, const vkllm_model_params *p, int n_ctx, int n_batch,
                     uint64_t **layer_bytes_out, vkl_offload_plan *plan, vkl_error *err) {
    const vkl_hparams *hp = &m->hp;
    int n_layer = hp->n_layer;
    vkl_type kv_type = p->kv_type == VKLLM_KV_F32 ? VKL_TYPE_F32 : VKL_TYPE_F16;
    int64_t kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    uint64_t *lb = vkl_calloc((size_t)n_layer, sizeof *lb, err);
    if (!lb) return -1;
    for (int l = 0; l < n_layer; l++) {
        vkl_tensor *ts[9];
        layer_tensors(m, l, ts);
        lb[l] = tensors_bytes(ts, 9, VKL_OFFLOAD_ALIGN);
    }
    vkl_tensor *head[] = {&m->output_norm, &m->output};
    vkl_offload_model om = {
        .n_layer = n_layer, .layer_bytes = lb, .embd_bytes = vkl_tensor_nbytes(&m->tok_embd),
        .head_bytes = tensors_bytes(head, 2, VKL_OFFLOAD_ALIGN),
        .kv_layer_bytes = vkl_kv_cache_bytes(1, n_ctx, kv_dim, kv_type),
        .act_bytes = (uint64_t)hp->n_embd * sizeof(float), .logits_bytes = (uint64_t)hp->n_vocab * sizeof(float),
        .n_ctx = n_ctx, .n_batch = n_batch};

    vkl_offload_device devs[VKL_OFFLOAD_MAX_DEV];
    memset(devs, 0, sizeof devs);
    devs[0].kind = VKL_DEV_CPU;
    devs[0].index = -1;
    vkl_device_info cpu_info;
    vkl_error e0;
    if (cpu_or_null) snprintf(devs[0].name, sizeof devs[0].name, "%.63s", cpu_or_null->info.name);
    else if (vkl_backend_host()->enumerate(&cpu_info, 1, &e0) > 0)
        snprintf(devs[0].name, sizeof devs[0].name, "%.63s", cpu_info.name);
    else
        snprintf(devs[0].name, sizeof devs[0].name, "CPU");
    int n_dev = 1;
    bool auto_fit = p->auto_fit || p->n_gpu_layers == VKLLM_AUTO_FIT;
    vkl_offload_request req = vkl_offload_default_request();
    req.n_gpu_layers = auto_fit ? -1 : VKL_MAX(p->n_gpu_layers, 0);
    req.kv_on_cpu = p->kv_on_cpu;
    if (p->n_devices < 0 || p->n_devices > VKL_OFFLOAD_MAX_GPU) {
        free(lb);
        return vkl_fail(err, "%d devices asked for (at most %d)", p->n_devices, VKL_OFFLOAD_MAX_GPU);
    }
    if (auto_fit || p->n_gpu_layers > 0) {
        vkl_device_info info[16];
        vkl_error e2;
        int n_vk = gpu_enumerate(info, 16, &e2);
        int want = p->n_devices > 0 ? p->n_devices : 1;
        if (n_vk < 1 && !auto_fit) {
            free(lb);
            return vkl_fail(err, "no Vulkan device for %d GPU layers: %s", p->n_gpu_layers,
                            n_vk < 0 ? e2.msg : "none found");
        }
        for (int i = 0; i < want && n_vk > 0; i++) {
            int idx = p->n_devices > 0 ? p->devices[i] : p->gpu_device;
            if (idx < 0 || idx >= VKL_MIN(n_vk, 16)) {
                free(lb);
                return vkl_fail(err, "no Vulkan device %d (there %s %d; see 'vkllm devices')", idx,
                                n_vk == 1 ? "is" : "are", n_vk);
            }
            for (int j = 0; j < i; j++)
                if (devs[1 + j].index == idx) {
                    free(lb);
                    return vkl_fail(err, "Vulkan device %d is listed twice", idx);
                }
            vkl_offload_device *d = &devs[n_dev++];
            snprintf(d->name, sizeof d->name, "%.63s", info[idx].name);
            d->kind = info[idx].kind;
            d->index = idx;
            d->uma = info[idx].uma;
            d->max_alloc = info[idx].max_alloc;
            d->budget = p->vram_budget[i] ? p->vram_budget[i] : info[idx].mem_free;
            d->user_budget = p->vram_budget[i] != 0;
            d->bw = p->gpu_bw_gbps > 0 ? p->gpu_bw_gbps * 1e9 : 0;
            req.tensor_split[i] = p->tensor_split[i];
            if (p->tensor_split[i] < 0) {
                free(lb);
                return vkl_fail(err, "negative tensor-split proportion %g", (double)p->tensor_split[i]);
            }
        }
    }
    dry_run dr = {.m = m};
    dr.ops.supports = dry_supports;
    for (int d = 0; d < VKL_OFFLOAD_MAX_DEV; d++) dr.be[d] = (vkl_backend){.ops = &dr.ops, .impl = &dr};
    dr.kv = vkl_kv_cache_create_views(n_layer, n_ctx, kv_dim, kv_type, err);
    int rc = -1;
    if (dr.kv && vkl_llama_build(m, dr.kv, n_batch, false, &dr.lg, err) == 0)
        rc = vkl_offload_plan_compute(&om, devs, n_dev, &req, dry_scratch, &dr, plan, err);
    dry_run_free(&dr);
    if (rc) {
        free(lb);
        return -1;
    }
    *layer_bytes_out = lb;
    return 0;
}

static char *describe(const vkl_offload_plan *p, vkl_error *err) {
    size_t n = vkl_offload_describe(p, NULL, 0) + 1;
    char *s = vkl_malloc(n, err);
    if (s) vkl_offload_describe(p, s, n);
    return s;
}

static void plan_defaults(const vkl_model *m, const vkllm_model_params *p, int *n_ctx, int *n_batch) {
    *n_ctx = p->n_ctx > 0 ? p->n_ctx : VKL_MIN(m->hp.n_ctx_train, 4096);
    *n_batch = VKL_MIN(p->n_batch > 0 ? p->n_batch : 512, *n_ctx);
}

/* Plans the model file at path without loading its weights. */
static int plan_file(const char *path, const vkllm_model_params *params, vkl_offload_plan *plan, uint64_t **lb,
                     vkl_error *err) {
    vkllm_model_params p = params ? *params : vkllm_model_default_params();
    gguf_file *f = gguf_open(path, err);
    if (!f) {
        vkl_error_prefix(err, "%s", path);
        return -1;
    }
    vkl_model *m = vkl_model_open(f, err); /* owns f */
    if (!m) {
        vkl_error_prefix(err, "%s", path);
        return -1;
    }
    int n_ctx, n_batch;
    plan_defaults(m, &p, &n_ctx, &n_batch);
    int rc = make_plan(m, NULL, &p, n_ctx, n_batch, lb, plan, err);
    if (rc == 0) plan->model.layer_bytes = *lb;
    vkl_model_free(m);
    return rc;
}

int vkllm_plan_describe(const char *path, const vkllm_model_params *params, char *buf, size_t size, vkllm_error *err) {
    vkl_offload_plan plan;
    uint64_t *lb = NULL;
    int rc = plan_file(path, params, &plan, &lb, ERR(err)) ? -1 : (int)vkl_offload_describe(&plan, buf, size);
    free(lb);
    return rc;
}

int vkllm_plan_query(const char *path, const vkllm_model_params *params, vkllm_plan_info *out, vkllm_error *err) {
    vkl_offload_plan plan;
    uint64_t *lb = NULL;
    memset(out, 0, sizeof *out);
    int rc = plan_file(path, params, &plan, &lb, ERR(err));
    free(lb);
    if (rc) return -1;
    out->n_layer = plan.n_layer;
    out->n_gpu_layers = plan.n_gpu_layers;
    out->n_gpus = plan.n_dev - 1;
    for (int d = 1; d < plan.n_dev; d++) {
        out->predicted[d - 1] = plan.use[d].predicted;
        out->gpu_layers[d - 1] = plan.use[d].n_layers;
        out->gpu_head |= plan.use[d].head;
    }
    out->tokens_per_s = plan.token_s > 0 ? 1.0 / plan.token_s : 0;
    out->host_bytes = plan.use[0].weights + plan.use[0].kv + plan.use[0].scratch;
    return 0;
}

/* ---- model ----------------------------------------------------------------------------------- */

/* Copies weight tensors (from the mmapped file) into one new buffer of be and points the tensors
 * there. */
static int upload_weights(vkllm_model *mm, vkl_backend *be, vkl_tensor *const *ts, int n, vkl_error *err) {
    size_t align = VKL_MAX(be->alignment, 16), total = tensors_bytes(ts, n, align);
    if (mm->n_wbufs == mm->cap_wbufs) {
        int cap = mm->cap_wbufs ? 2 * mm->cap_wbufs : 16;
        vkl_buffer **nb = realloc(mm->wbufs, (size_t)cap * sizeof *nb);
        if (!nb) return vkl_fail(err, "out of memory");
        mm->wbufs = nb;
        mm->cap_wbufs = cap;
    }
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

/* Opens the GPUs that hold something and uploads their layers (in chunks of consecutive layers,
 * as the plan predicted) and the head. */
static int offload_model(vkllm_model *mm, const vkl_backend_config *base_cfg, vkl_error *err) {
    vkl_model *m = mm->m;
    const vkl_offload_plan *p = &mm->plan;
    for (int d = 1; d < p->n_dev; d++) {
        const vkl_offload_use *u = &p->use[d];
        if (!u->n_layers && !u->head) continue;
        vkl_backend_config cfg = *base_cfg;
        cfg.mem_block_size = p->dev[d].block_size;
        vkl_backend *be = mm->gpu[d - 1] = vkl_backend_offload()->open(p->dev[d].index, &cfg, err);
        if (!be) return -1;
        uint64_t cap = vkl_offload_chunk_cap(&p->dev[d]);
        int end = u->first_layer + u->n_layers;
        for (int l = u->first_layer; l < end;) {
            int e = vkl_offload_chunk_end(&p->model, l, end, cap);
            vkl_tensor **ts = vkl_malloc((size_t)(e - l) * 9 * sizeof *ts, err);
            if (!ts) return -1;
            for (int k = l; k < e; k++) layer_tensors(m, k, ts + (size_t)(k - l) * 9);
            int rc = upload_weights(mm, be, ts, (e - l) * 9, err);
            free(ts);
            if (rc) return -1;
            l = e;
        }
        if (u->head) {
            vkl_tensor *ts[] = {&m->output_norm, &m->output}; /* output is its own copy when tied */
            if (upload_weights(mm, be, ts, 2, err)) return -1;
        }
    }
    return 0;
}

/* Maps in the file pages of the weights the CPU reads straight from the mapping (its layers and
 * head; not the token embeddings, of which a token reads one row), so the page faults are paid
 * while loading rather than by the first prompt (1.1 GB: ~200 ms, the first 8-token prompt of a
 * 1B model ran at a fifth of its speed). MADV_POPULATE_READ where the kernel has it (Linux 5.14),
 * else one read per page. A hint: nothing fails if it does not happen. */
static void prefault(const void *data, size_t n) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (!data || !n || page == 0 || page == (size_t)-1) return;
    const uintptr_t a = (uintptr_t)data / page * page;
#ifdef MADV_POPULATE_READ
    if (madvise((void *)a, (uintptr_t)data + n - a, MADV_POPULATE_READ) == 0) return;
#endif
    const uintptr_t end = (uintptr_t)data + n;
    unsigned char sink = *(const volatile unsigned char *)data;
    for (uintptr_t q = a + page; q < end; q += page) sink ^= *(const volatile unsigned char *)q;
    (void)sink;
}

static void prefault_cpu_weights(vkl_model *m) {
    for (int l = 0; l < m->hp.n_layer; l++) {
        vkl_tensor *ts[9];
        layer_tensors(m, l, ts);
        for (int i = 0; i < 9; i++)
            if ((ts[i]->flags & VKL_TF_EXTERNAL) && !ts[i]->buffer) prefault(ts[i]->data, vkl_tensor_nbytes(ts[i]));
    }
    vkl_tensor *head[] = {&m->output_norm, &m->output};
    for (int i = 0; i < 2; i++)
        if ((head[i]->flags & VKL_TF_EXTERNAL) && !head[i]->buffer) prefault(head[i]->data, vkl_tensor_nbytes(head[i]));
}

vkllm_model_params vkllm_model_default_params(void) {
    return (vkllm_model_params){.kv_type = VKLLM_KV_F16};
}

int vkllm_gpu_count(vkllm_error *err) {
    return gpu_enumerate(NULL, 0, ERR(err));
}

int vkllm_model_check(const char *path, vkllm_error *err) {
    gguf_file *f = gguf_open(path, ERR(err));
    vkl_hparams hp;
    vkl_tokenizer *tok = NULL;
    int rc = f && vkl_hparams_read(f, &hp, ERR(err)) == 0 && (tok = vkl_tokenizer_load(f, ERR(err))) ? 0 : -1;
    vkl_tokenizer_free(tok);
    gguf_close(f);
    if (rc) vkl_error_prefix(ERR(err), "%s", path);
    return rc;
}

vkllm_model *vkllm_model_load(const char *path, const vkllm_model_params *params, vkllm_error *err) {
    vkllm_model_params p = params ? *params : vkllm_model_default_params();
    vkllm_model *mm = vkl_calloc(1, sizeof *mm, ERR(err));
    if (!mm) return NULL;
    if (pthread_mutex_init(&mm->lock, NULL)) {
        vkl_fail(ERR(err), "cannot create a mutex");
        free(mm);
        return NULL;
    }
    mm->lock_ok = true;
    gguf_file *f = gguf_open(path, ERR(err));
    if (!f) {
        vkl_error_prefix(ERR(err), "%s", path);
        goto fail;
    }
    mm->tok = vkl_tokenizer_load(f, ERR(err));
    if (!mm->tok) {
        vkl_error_prefix(ERR(err), "%s", path);
        gguf_close(f);
        goto fail;
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
    mm->cpu = vkl_backend_host()->open(0, &cfg, ERR(err));
    if (!mm->cpu) goto fail;
    int n_ctx, n_batch;
    plan_defaults(mm->m, &p, &n_ctx, &n_batch);
    if (make_plan(mm->m, mm->cpu, &p, n_ctx, n_batch, &mm->layer_bytes, &mm->plan, ERR(err))) goto fail;
    mm->plan.model.layer_bytes = mm->layer_bytes;
    if (!(mm->plan_text = describe(&mm->plan, ERR(err))) || offload_model(mm, &cfg, ERR(err))) goto fail;
    prefault_cpu_weights(mm->m);
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
    for (int i = 0; i < m->n_wbufs; i++) m->wbufs[i]->backend->ops->buffer_free(m->wbufs[i]->backend, m->wbufs[i]);
    free(m->wbufs);
    for (int i = 0; i < VKL_OFFLOAD_MAX_GPU; i++) vkl_backend_close(m->gpu[i]);
    vkl_backend_close(m->cpu);
    vkl_model_free(m->m);
    vkl_tokenizer_free(m->tok);
    free(m->layer_bytes);
    free(m->plan_text);
    if (m->lock_ok) pthread_mutex_destroy(&m->lock);
    free(m);
}

const char *vkllm_model_plan(const vkllm_model *m) { return m->plan_text; }

int vkllm_model_gpu_memory(vkllm_model *m, int i, uint64_t *predicted, uint64_t *used) {
    if (i < 0 || i + 1 >= m->plan.n_dev) return -1;
    vkl_backend *be = m->gpu[i];
    pthread_mutex_lock(&m->lock);
    if (predicted) *predicted = m->plan.use[i + 1].predicted;
    if (used) *used = be && be->ops->mem_used ? be->ops->mem_used(be) : 0;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

/* The backends of the model in executor order (GPUs holding something, then the CPU). */
static int model_backends(const vkllm_model *m, vkl_backend **bes, int *plan_dev) {
    int order[VKL_OFFLOAD_MAX_DEV], n = executor_devices(&m->plan, order);
    for (int i = 0; i < n; i++) {
        bes[i] = order[i] ? m->gpu[order[i] - 1] : m->cpu;
        if (plan_dev) plan_dev[i] = order[i];
    }
    return n;
}

int vkllm_model_n_vocab(const vkllm_model *m) { return m->m->hp.n_vocab; }
int vkllm_model_n_ctx_train(const vkllm_model *m) { return m->m->hp.n_ctx_train; }
int vkllm_model_n_embd(const vkllm_model *m) { return m->m->hp.n_embd; }
int vkllm_model_n_layer(const vkllm_model *m) { return m->m->hp.n_layer; }
int vkllm_model_n_threads(const vkllm_model *m) { return m->cpu->n_threads; }
int vkllm_model_n_gpu_layers(const vkllm_model *m) {
    const vkl_offload_plan *p = &m->plan;
    return p->n_layer - p->use[0].n_layers + !p->use[0].head;
}

const char *vkllm_model_gpu_name(const vkllm_model *m) {
    for (int i = 0; i < VKL_OFFLOAD_MAX_GPU; i++)
        if (m->gpu[i]) return m->gpu[i]->info.name;
    return NULL;
}
const char *vkllm_model_desc(const vkllm_model *m) { return m->desc; }

int vkllm_model_profile(vkllm_model *m, vkllm_op_profile *out, int max, bool reset) {
    double secs[VKL_OP_COUNT] = {0};
    uint64_t calls[VKL_OP_COUNT] = {0};
    vkl_backend *bes[VKL_OFFLOAD_MAX_DEV];
    int n_bes = model_backends(m, bes, NULL);
    pthread_mutex_lock(&m->lock);
    for (int b = 0; b < n_bes; b++) {
        double s[VKL_OP_COUNT] = {0};
        uint64_t k[VKL_OP_COUNT] = {0};
        if (!bes[b] || !bes[b]->ops->op_profile) continue;
        bes[b]->ops->op_profile(bes[b], s, k, reset);
        for (int op = 0; op < VKL_OP_COUNT; op++) secs[op] += s[op], calls[op] += k[op];
    }
    pthread_mutex_unlock(&m->lock);
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

int vkllm_tokenize_special(const vkllm_model *m, const char *text, size_t len, bool add_special, int32_t *out,
                           int max_out, vkllm_error *err) {
    int n = vkl_tokenize(m->tok, text, len, add_special, true, out, max_out, ERR(err));
    int32_t bos = vkl_tokenizer_bos(m->tok);
    /* A text that starts with BOS already: drop the one add_special put before it (a count-only
     * call, out == NULL, may answer one more than needed). */
    if (out && n >= 2 && n <= max_out && add_special && bos >= 0 && out[0] == bos && out[1] == bos) {
        memmove(out, out + 1, sizeof *out * (size_t)(n - 1));
        n--;
    }
    return n;
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
    vkl_kv_cache *kv_part[VKL_OFFLOAD_MAX_DEV]; /* the storage, per plan device (NULL: no layers) */
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

/* Each layer's KV cache on its layer's device (or the CPU with kv_on_cpu): one part per device;
 * c->kv holds every layer's tensors (copies of the parts' descriptors, no storage of its own). */
static int create_kv(vkllm_context *c, vkllm_model *m, int n_ctx, vkl_type type, vkl_error *err) {
    const vkl_hparams *hp = &m->m->hp;
    const vkl_offload_plan *p = &m->plan;
    int64_t kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    for (int d = 0; d < p->n_dev; d++) {
        const vkl_offload_use *u = &p->use[d];
        if (u->n_layers == 0) continue;
        vkl_backend *be = d == 0 || p->kv_on_cpu ? m->cpu : m->gpu[d - 1];
        /* (A wider KV type than planned is allowed: it only makes the prediction low.) */
        if (be != m->cpu && n_ctx > p->model.n_ctx)
            return vkl_fail(err, "a context of %d positions is larger than the %d the offload plan reserved GPU "
                            "memory for (see vkllm_model_params.n_ctx)", n_ctx, p->model.n_ctx);
        if (!(c->kv_part[d] = vkl_kv_cache_create(be, u->n_layers, n_ctx, kv_dim, type, err))) return -1;
    }
    if (!(c->kv = vkl_kv_cache_create_views(hp->n_layer, n_ctx, kv_dim, type, err))) return -1;
    for (int l = 0; l < hp->n_layer; l++) {
        int d = vkl_offload_layer_device(p, l);
        const vkl_kv_cache *part = c->kv_part[d];
        int pl = l - p->use[d].first_layer;
        c->kv->k[l] = part->k[pl];
        c->kv->v[l] = part->v[pl];
        snprintf(c->kv->k[l].name, sizeof c->kv->k[l].name, "cache_k_l%d", l);
        snprintf(c->kv->v[l].name, sizeof c->kv->v[l].name, "cache_v_l%d", l);
    }
    return 0;
}

static cached_graph *get_graph(vkllm_context *c, int n, bool all_logits, vkl_error *err);
static void context_free(vkllm_context *c);

static vkllm_context *context_create(vkllm_model *m, const vkllm_context_params *params, vkllm_error *err) {
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
    vkl_backend *bes[VKL_OFFLOAD_MAX_DEV];
    int n_bes = model_backends(m, bes, NULL);
    c->ex = vkl_executor_create(bes, n_bes, ERR(err));
    c->pos = vkl_malloc((size_t)p.n_batch * sizeof *c->pos, ERR(err));
    c->logits = vkl_malloc((size_t)hp->n_vocab * sizeof *c->logits, ERR(err));
    if (!c->ex || !c->pos || !c->logits) goto fail;
    c->logits_cap = 1;
    /* The full prompt batch is planned now, so its scratch is reserved up front (as the offload
     * plan predicted) and a context that does not fit fails here, not in the middle of a prompt. */
    if (!get_graph(c, c->n_batch, false, ERR(err))) goto fail;
    return c;
fail:
    context_free(c);
    return NULL;
}

vkllm_context *vkllm_context_create(vkllm_model *m, const vkllm_context_params *params, vkllm_error *err) {
    pthread_mutex_lock(&m->lock);
    vkllm_context *c = context_create(m, params, err);
    pthread_mutex_unlock(&m->lock);
    return c;
}

static void drop_graph(cached_graph *cg) {
    vkl_plan_free(cg->plan);
    vkl_graph_free(cg->lg.g);
    memset(cg, 0, sizeof *cg);
}

static void context_free(vkllm_context *c) {
    for (int i = 0; i < c->n_graphs; i++) drop_graph(&c->graphs[i]);
    vkl_executor_free(c->ex);
    vkl_kv_cache_free(c->kv); /* no buffer of its own */
    for (int d = 0; d < VKL_OFFLOAD_MAX_DEV; d++) vkl_kv_cache_free(c->kv_part[d]);
    free(c->pos);
    free(c->logits);
    free(c);
}

void vkllm_context_free(vkllm_context *c) {
    if (!c) return;
    vkllm_model *m = c->model;
    pthread_mutex_lock(&m->lock);
    context_free(c);
    pthread_mutex_unlock(&m->lock);
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

static int eval(vkllm_context *c, const int32_t *tokens, int n, bool all_logits, vkllm_error *err) {
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

int vkllm_eval(vkllm_context *c, const int32_t *tokens, int n, bool all_logits, vkllm_error *err) {
    pthread_mutex_lock(&c->model->lock);
    int rc = eval(c, tokens, n, all_logits, err);
    pthread_mutex_unlock(&c->model->lock);
    return rc;
}

const float *vkllm_logits(const vkllm_context *c, int i) {
    if (i < 0) i = c->n_logits - 1;
    if (i < 0 || i >= c->n_logits) return NULL;
    return c->logits + (size_t)i * (size_t)c->model->m->hp.n_vocab;
}

int vkllm_n_logits(const vkllm_context *c) { return c->n_logits; }

size_t vkllm_scratch_bytes(const vkllm_context *c) {
    size_t n = 0;
    for (int b = 0; b < VKL_MAX_BACKENDS; b++) n += vkl_executor_arena_size(c->ex, b);
    return n;
}

size_t vkllm_kv_bytes(const vkllm_context *c) {
    size_t n = 0;
    for (int d = 0; d < VKL_OFFLOAD_MAX_DEV; d++) n += c->kv_part[d] ? c->kv_part[d]->bytes : 0;
    return n;
}

vkllm_timings vkllm_get_timings(const vkllm_context *c) { return c->timings; }
void vkllm_reset_timings(vkllm_context *c) { memset(&c->timings, 0, sizeof c->timings); }

int vkllm_warmup(vkllm_context *c, vkllm_error *err) {
    if (c->kv->n_past != 0 || c->n_ctx < 3) return 0;
    int32_t bos = vkl_tokenizer_bos(c->model->tok), eos = vkl_tokenizer_eos(c->model->tok);
    int32_t toks[2] = {bos >= 0 ? bos : 0, eos >= 0 ? eos : 0};
    vkllm_timings keep = c->timings;
    int rc = vkllm_eval(c, toks, c->n_batch >= 2 ? 2 : 1, false, err) || vkllm_eval(c, toks, 1, false, err) ||
             vkllm_kv_truncate(c, 0, err);
    c->timings = keep;
    c->n_logits = 0;
    return rc ? -1 : 0;
}

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
