/* A LLaMA-family model: hyperparameters from GGUF metadata and the weight tensors (pointing into
 * the mmapped file), plus the graph builder (core/llama.c). */
#ifndef VKL_MODEL_H
#define VKL_MODEL_H

#include "gguf.h"
#include "graph.h"
#include "kv_cache.h"

typedef struct vkl_hparams {
    char arch[32]; /* general.architecture: "llama" or "mistral" */
    int n_vocab;
    int n_ctx_train;
    int n_embd;
    int n_layer;
    int n_ff;
    int n_head;
    int n_head_kv;
    int head_dim;
    int n_rot;      /* rotated dimensions per head (rope.dimension_count) */
    int rope_mode;  /* VKL_ROPE_NORMAL for GGUF llama models */
    float rope_freq_base;
    float rope_freq_scale; /* 1 / linear scaling factor */
    float rms_eps;
} vkl_hparams;

typedef struct vkl_layer {
    vkl_tensor attn_norm, wq, wk, wv, wo;
    vkl_tensor ffn_norm, w_gate, w_up, w_down;
} vkl_layer;

typedef struct vkl_model {
    gguf_file *file;
    vkl_hparams hp;
    vkl_tensor tok_embd, output_norm, output; /* output aliases tok_embd's bytes when tied */
    bool tied_output;
    vkl_layer *layers;
    uint64_t weight_bytes;
} vkl_model;

/* Progress of loading, 0..1 (may be NULL). */
typedef void (*vkl_progress_fn)(float fraction, void *user);

/* Takes ownership of f (closed by vkl_model_free, also on failure). Touches every weight page
 * once, so the first token does not pay for page faults, reporting progress as it goes. */
vkl_model *vkl_model_create(gguf_file *f, vkl_progress_fn progress, void *user, vkl_error *err);
/* The same without touching the weights (for planning: `vkllm plan` reads no weight bytes). */
vkl_model *vkl_model_open(gguf_file *f, vkl_error *err);
void vkl_model_free(vkl_model *m);
/* Reads the hyperparameters only (also used by `info`-style tools). */
int vkl_hparams_read(const gguf_file *f, vkl_hparams *hp, vkl_error *err);

/* One forward pass over n_tokens tokens at consecutive positions, as a graph: inputs `tokens` and
 * `pos` (I32, n_tokens), output `logits` (f32 [n_vocab, n_tokens], or one row for the last token
 * when all_logits is false). The graph refers to the model's weights and the cache's tensors. */
typedef struct vkl_llama_graph {
    vkl_graph *g;
    vkl_tensor *tokens, *pos, *logits;
    int n_tokens;
    bool all_logits;
} vkl_llama_graph;

int vkl_llama_build(const vkl_model *m, vkl_kv_cache *kv, int n_tokens, bool all_logits, vkl_llama_graph *out,
                    vkl_error *err);

#endif
