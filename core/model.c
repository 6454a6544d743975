#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- hyperparameters --------------------------------------------------------------------- */

static int get_int(const gguf_file *f, const char *arch, const char *key, bool required, int def, int *out,
                   vkl_error *err) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    if (!gguf_find_kv(f, full)) {
        if (required) return vkl_fail(err, "missing metadata key %s", full);
        *out = def;
        return 0;
    }
    uint32_t v;
    if (gguf_get_u32(f, full, &v, err)) return -1;
    if (v < 1 || v > (1u << 30)) return vkl_fail(err, "metadata %s = %u is out of range", full, v);
    *out = (int)v;
    return 0;
}

static int get_float(const gguf_file *f, const char *arch, const char *key, float def, float *out, vkl_error *err) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    if (!gguf_find_kv(f, full)) {
        *out = def;
        return 0;
    }
    if (gguf_get_f32(f, full, out, err)) return -1;
    if (!isfinite(*out)) return vkl_fail(err, "metadata %s is not finite", full);
    return 0;
}

int vkl_hparams_read(const gguf_file *f, vkl_hparams *hp, vkl_error *err) {
    memset(hp, 0, sizeof *hp);
    if (gguf_get_cstr(f, "general.architecture", hp->arch, sizeof hp->arch, err)) return -1;
    if (strcmp(hp->arch, "llama") && strcmp(hp->arch, "mistral"))
        return vkl_fail(err, "unsupported architecture '%s' (supported: llama, mistral)", hp->arch);
    const char *a = hp->arch;
    if (get_int(f, a, "context_length", true, 0, &hp->n_ctx_train, err) ||
        get_int(f, a, "embedding_length", true, 0, &hp->n_embd, err) ||
        get_int(f, a, "block_count", true, 0, &hp->n_layer, err) ||
        get_int(f, a, "feed_forward_length", true, 0, &hp->n_ff, err) ||
        get_int(f, a, "attention.head_count", true, 0, &hp->n_head, err) ||
        get_int(f, a, "attention.head_count_kv", false, hp->n_head, &hp->n_head_kv, err))
        return -1;
    if (hp->n_embd % hp->n_head) return vkl_fail(err, "embedding_length %d is not a multiple of head_count %d", hp->n_embd, hp->n_head);
    if (get_int(f, a, "attention.key_length", false, hp->n_embd / hp->n_head, &hp->head_dim, err) ||
        get_int(f, a, "rope.dimension_count", false, hp->head_dim, &hp->n_rot, err))
        return -1;
    if (hp->n_head % hp->n_head_kv)
        return vkl_fail(err, "head_count %d is not a multiple of head_count_kv %d", hp->n_head, hp->n_head_kv);
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2)
        return vkl_fail(err, "rope.dimension_count %d does not fit head dimension %d", hp->n_rot, hp->head_dim);
    if (get_float(f, a, "rope.freq_base", 10000.0f, &hp->rope_freq_base, err) ||
        get_float(f, a, "attention.layer_norm_rms_epsilon", 1e-5f, &hp->rms_eps, err))
        return -1;
    if (hp->rope_freq_base <= 0) return vkl_fail(err, "%s.rope.freq_base must be positive", a);
    hp->rope_freq_scale = 1.0f;
    char key[128], type[32] = "";
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    if (gguf_find_kv(f, key) && gguf_get_cstr(f, key, type, sizeof type, err)) return -1;
    float factor = 0;
    if (get_float(f, a, "rope.scaling.factor", 0.0f, &factor, err)) return -1;
    if (!type[0] && factor == 0 && get_float(f, a, "rope.scale_linear", 0.0f, &factor, err)) return -1;
    if (type[0] && strcmp(type, "none") && strcmp(type, "linear"))
        return vkl_fail(err, "rope scaling type '%s' is not supported (none, linear)", type);
    if (strcmp(type, "none") && factor > 0) hp->rope_freq_scale = 1.0f / factor;
    hp->rope_mode = VKL_ROPE_NORMAL; /* GGUF llama: Q/K rows were permuted for adjacent-pair rope */
    const gguf_value *toks = NULL;
    if (gguf_find_kv(f, "tokenizer.ggml.tokens") && gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_VT_STRING, &toks, err))
        return -1;
    if (toks) {
        if (toks->v.arr.n < 1 || toks->v.arr.n > (1u << 30)) return vkl_fail(err, "tokenizer.ggml.tokens has %llu entries", (unsigned long long)toks->v.arr.n);
        hp->n_vocab = (int)toks->v.arr.n;
    } else {
        const gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
        if (!emb) return vkl_fail(err, "missing tensor token_embd.weight");
        if (emb->ne[1] < 1 || emb->ne[1] > (1 << 30)) return vkl_fail(err, "token_embd.weight has a bad shape");
        hp->n_vocab = (int)emb->ne[1];
    }
    return 0;
}

/* ---- weights ----------------------------------------------------------------------------- */

enum { ANY_TYPE, F32_ONLY };

static int bind_tensor(const gguf_file *f, vkl_tensor *t, const char *name, int64_t ne0, int64_t ne1, int types,
                       vkl_error *err) {
    const gguf_tensor *g = gguf_find_tensor(f, name);
    if (!g) return vkl_fail(err, "missing tensor %s (expected shape [%lld, %lld])", name, (long long)ne0, (long long)ne1);
    if (g->n_dims > 2 || g->ne[0] != ne0 || g->ne[1] != ne1)
        return vkl_fail(err, "tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]", name,
                        (long long)g->ne[0], (long long)g->ne[1], (long long)g->ne[2], (long long)g->ne[3],
                        (long long)ne0, (long long)ne1);
    const vkl_type_traits *tr = vkl_type_get(g->type);
    if (!tr) return vkl_fail(err, "tensor %s has unsupported type %s", name, vkl_type_name(g->type));
    if (types == F32_ONLY && g->type != VKL_TYPE_F32)
        return vkl_fail(err, "tensor %s has type %s, expected f32", name, vkl_type_name(g->type));
    if (ne0 % tr->block_size)
        return vkl_fail(err, "tensor %s: row length %lld is not a multiple of the %s block size %lld", name,
                        (long long)ne0, tr->name, (long long)tr->block_size);
    vkl_tensor_init(t, name, g->type, ne0, ne1);
    t->flags = VKL_TF_EXTERNAL;
    t->data = (void *)g->data;
    return 0;
}

static int bind_weights(vkl_model *m, vkl_error *err) {
    const vkl_hparams *hp = &m->hp;
    const gguf_file *f = m->file;
    int64_t d = hp->n_embd, q_dim = (int64_t)hp->n_head * hp->head_dim, kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    if (bind_tensor(f, &m->tok_embd, "token_embd.weight", d, hp->n_vocab, ANY_TYPE, err) ||
        bind_tensor(f, &m->output_norm, "output_norm.weight", d, 1, F32_ONLY, err))
        return -1;
    if (gguf_find_tensor(f, "output.weight")) {
        if (bind_tensor(f, &m->output, "output.weight", d, hp->n_vocab, ANY_TYPE, err)) return -1;
    } else {
        m->output = m->tok_embd; /* tied embeddings */
        m->tied_output = true;
    }
    for (int l = 0; l < hp->n_layer; l++) {
        vkl_layer *L = &m->layers[l];
        struct {
            vkl_tensor *t;
            const char *name;
            int64_t ne0, ne1;
            int types;
        } w[] = {
            {&L->attn_norm, "attn_norm", d, 1, F32_ONLY}, {&L->wq, "attn_q", d, q_dim, ANY_TYPE},
            {&L->wk, "attn_k", d, kv_dim, ANY_TYPE},      {&L->wv, "attn_v", d, kv_dim, ANY_TYPE},
            {&L->wo, "attn_output", q_dim, d, ANY_TYPE},  {&L->ffn_norm, "ffn_norm", d, 1, F32_ONLY},
            {&L->w_gate, "ffn_gate", d, hp->n_ff, ANY_TYPE}, {&L->w_up, "ffn_up", d, hp->n_ff, ANY_TYPE},
            {&L->w_down, "ffn_down", hp->n_ff, d, ANY_TYPE},
        };
        for (size_t i = 0; i < VKL_ARRAY_LEN(w); i++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, w[i].name);
            if (bind_tensor(f, w[i].t, name, w[i].ne0, w[i].ne1, w[i].types, err)) return -1;
        }
    }
    return 0;
}

/* Reads one byte per page of every tensor, so later token timings exclude page faults. */
static void prefault(const vkl_model *m, vkl_progress_fn progress, void *user) {
    const gguf_file *f = m->file;
    volatile uint8_t sink = 0;
    uint64_t done = 0, total = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) total += f->tensors[i].nbytes;
    float last = -1;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const uint8_t *p = f->tensors[i].data;
        for (uint64_t o = 0; o < f->tensors[i].nbytes; o += 4096) sink ^= p[o];
        done += f->tensors[i].nbytes;
        float frac = total ? (float)((double)done / (double)total) : 1.0f;
        if (progress && (frac - last >= 0.01f || i + 1 == f->n_tensors)) {
            progress(frac, user);
            last = frac;
        }
    }
    (void)sink;
}

vkl_model *vkl_model_create(gguf_file *f, vkl_progress_fn progress, void *user, vkl_error *err) {
    vkl_model *m = vkl_model_open(f, err);
    if (m) prefault(m, progress, user);
    return m;
}

vkl_model *vkl_model_open(gguf_file *f, vkl_error *err) {
    vkl_model *m = vkl_calloc(1, sizeof *m, err);
    if (!m) {
        gguf_close(f);
        return NULL;
    }
    m->file = f;
    if (vkl_hparams_read(f, &m->hp, err)) goto fail;
    /* Each layer has 9 weight tensors: a block_count the file cannot hold is an error before we
     * allocate for it (a hostile count would ask for terabytes). */
    if ((uint64_t)m->hp.n_layer > f->n_tensors / 9) {
        vkl_fail(err, "%s.block_count is %d, but the file has only %llu tensors", m->hp.arch, m->hp.n_layer,
                 (unsigned long long)f->n_tensors);
        goto fail;
    }
    m->layers = vkl_calloc((size_t)m->hp.n_layer, sizeof *m->layers, err);
    if (!m->layers || bind_weights(m, err)) goto fail;
    for (uint64_t i = 0; i < f->n_tensors; i++) m->weight_bytes += f->tensors[i].nbytes;
    return m;
fail:
    vkl_model_free(m);
    return NULL;
}

void vkl_model_free(vkl_model *m) {
    if (!m) return;
    gguf_close(m->file);
    free(m->layers);
    free(m);
}
