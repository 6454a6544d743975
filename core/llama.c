/* The LLaMA forward pass as an op graph:
 *   x = embed(tokens)
 *   per layer:  h = rmsnorm(x) * attn_norm
 *               q, k, v = Wq h, Wk h, Wv h;  q, k = rope(q, k, pos)
 *               x += Wo attention(q, k, v, cache)        (causal, GQA)
 *               h = rmsnorm(x) * ffn_norm
 *               x += Wdown (silu(Wgate h) * (Wup h))
 *   logits = Wout (rmsnorm(x) * output_norm)                                                    */
#include <math.h>
#include <stdio.h>

#include "model.h"

int vkl_llama_build(const vkl_model *m, vkl_kv_cache *kv, int n_tokens, bool all_logits, vkl_llama_graph *out,
                    vkl_error *err) {
    const vkl_hparams *hp = &m->hp;
    if (n_tokens < 1) return vkl_fail(err, "llama: batch of %d tokens", n_tokens);
    if (kv->n_layer != hp->n_layer || kv->kv_dim != (int64_t)hp->n_head_kv * hp->head_dim)
        return vkl_fail(err, "llama: the KV cache does not match the model");
    vkl_graph *g = vkl_graph_create(32 + 24 * hp->n_layer, err);
    if (!g) return -1;
    /* Builders propagate NULL, so one check at the end of each layer is enough. */
    vkl_tensor *tokens = vkl_new_input(g, "tokens", VKL_TYPE_I32, n_tokens, 1, err);
    vkl_tensor *pos = vkl_new_input(g, "pos", VKL_TYPE_I32, n_tokens, 1, err);
    vkl_tensor *x = vkl_get_rows(g, (vkl_tensor *)&m->tok_embd, tokens, err);
    float scale = 1.0f / sqrtf((float)hp->head_dim);
    for (int l = 0; l < hp->n_layer && x; l++) {
        vkl_layer *L = &m->layers[l];
        vkl_tensor *h = vkl_rms_norm(g, x, &L->attn_norm, hp->rms_eps, err);
        vkl_tensor *q = vkl_mul_mat(g, &L->wq, h, err);
        vkl_tensor *k = vkl_mul_mat(g, &L->wk, h, err);
        vkl_tensor *v = vkl_mul_mat(g, &L->wv, h, err);
        q = vkl_rope(g, q, pos, hp->head_dim, hp->n_rot, hp->rope_mode, hp->rope_freq_base, hp->rope_freq_scale, err);
        k = vkl_rope(g, k, pos, hp->head_dim, hp->n_rot, hp->rope_mode, hp->rope_freq_base, hp->rope_freq_scale, err);
        vkl_tensor *a = vkl_attention(g, q, k, v, &kv->k[l], &kv->v[l], pos, hp->head_dim, hp->n_head, hp->n_head_kv,
                                      scale, err);
        x = vkl_add(g, x, vkl_mul_mat(g, &L->wo, a, err), err);
        h = vkl_rms_norm(g, x, &L->ffn_norm, hp->rms_eps, err);
        vkl_tensor *gate = vkl_mul_mat(g, &L->w_gate, h, err);
        vkl_tensor *up = vkl_mul_mat(g, &L->w_up, h, err);
        x = vkl_add(g, x, vkl_mul_mat(g, &L->w_down, vkl_swiglu(g, gate, up, err), err), err);
    }
    if (x && !all_logits && n_tokens > 1) x = vkl_view_rows(g, x, n_tokens - 1, 1, err);
    x = vkl_rms_norm(g, x, (vkl_tensor *)&m->output_norm, hp->rms_eps, err);
    vkl_tensor *logits = vkl_mul_mat(g, (vkl_tensor *)&m->output, x, err);
    if (!logits) {
        vkl_error_prefix(err, "llama graph");
        vkl_graph_free(g);
        return -1;
    }
    snprintf(logits->name, sizeof logits->name, "logits");
    logits->flags |= VKL_TF_OUTPUT;
    *out = (vkl_llama_graph){g, tokens, pos, logits, n_tokens, all_logits};
    return 0;
}
