/* vkllm: LLM inference (LLaMA-family GGUF models) on the CPU and Vulkan devices.
 *
 * Errors are values: a function that can fail takes a `vkllm_error *` (may be NULL), fills its
 * one-line message and returns -1 or NULL.
 *
 *   vkllm_model *m = vkllm_model_load("model.gguf", NULL, &err);
 *   vkllm_context *c = vkllm_context_create(m, NULL, &err);
 *   int n = vkllm_tokenize(m, text, strlen(text), true, ids, max, &err);
 *   vkllm_eval(c, ids, n, false, &err);                // prompt: logits of the last position
 *   int32_t next = vkllm_sample(s, vkllm_logits(c, -1));
 *   vkllm_eval(c, &next, 1, false, &err);              // one token at a time
 */
#ifndef VKLLM_H
#define VKLLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vkllm_error {
    char msg[512];
} vkllm_error;

typedef struct vkllm_model vkllm_model;
typedef struct vkllm_context vkllm_context;
typedef struct vkllm_sampler vkllm_sampler;

/* ---- model ----------------------------------------------------------------------------------- */

typedef enum vkllm_kv_type { VKLLM_KV_F16 = 0, VKLLM_KV_F32 = 1 } vkllm_kv_type;

#define VKLLM_MAX_GPUS 7
#define VKLLM_AUTO_FIT (-1) /* n_gpu_layers: let the offload plan choose */

typedef struct vkllm_model_params {
    int n_threads;  /* CPU threads; 0 = the number of physical cores */
    bool reference; /* run the scalar reference kernels (slow; for testing) */
    bool profile;   /* time every op (see vkllm_model_profile) */
    void (*progress)(float fraction, void *user); /* loading progress 0..1 (may be NULL) */
    void *progress_user;
    /* ---- offload (see vkllm_plan_describe for the plan table) ----
     * n_gpu_layers: llama.cpp's -ngl: 0 = CPU only (the default); N = the last N layers (their
     * weights and KV cache) on the Vulkan device(s); > n_layer = the output head too (token
     * embeddings always stay on the CPU, as in llama.cpp: a lookup reads one row). A split that
     * does not fit the devices' budgets is reduced to the most layers that fit (see the plan's
     * note); loading fails when a device cannot be opened.
     * VKLLM_AUTO_FIT (or auto_fit): the split with the best predicted throughput among those that
     * fit with a margin of 5% + 64 MiB per device (on a software Vulkan device such as lavapipe,
     * which is slower than the CPU backend, that is the CPU). */
    int n_gpu_layers;
    bool auto_fit;
    int gpu_device; /* the Vulkan device (as `vkllm devices` lists them), when n_devices is 0 */
    int n_devices;  /* > 0: split the GPU layers over devices[0..n_devices) in that order */
    int devices[VKLLM_MAX_GPUS];
    float tensor_split[VKLLM_MAX_GPUS]; /* proportions of the GPU layers per device (all 0: by budget) */
    uint64_t vram_budget[VKLLM_MAX_GPUS]; /* bytes per device (0: its free memory); emulates a smaller card */
    bool kv_on_cpu; /* the GPU layers' KV caches in host memory (their attention then runs on the CPU) */
    /* What the plan reserves device memory for: KV cache positions (0 = min(training context,
     * 4096)) and type, and the prompt batch (0 = 512). A context created later may use fewer
     * positions, but not more when a KV cache lives on a GPU (vkllm_context_create fails); a
     * wider KV type than planned works but uses more device memory than predicted. */
    int n_ctx;
    int n_batch;
    vkllm_kv_type kv_type;
    double gpu_bw_gbps; /* predicted GPU read bandwidth for auto-fit (0: by device kind, or env
                           VKLLM_GPU_BW_GBPS) */
} vkllm_model_params;

vkllm_model_params vkllm_model_default_params(void);
/* Number of Vulkan devices (>= 0), or -1 with a message when Vulkan is unusable here. */
int vkllm_gpu_count(vkllm_error *err);
/* params may be NULL (defaults). Thread safety: a loaded model may be shared by several threads,
 * each with its own contexts (and samplers); the model serializes the backend work of its
 * contexts (create, free, eval) with an internal lock. One context must not be used by two
 * threads at once. */
vkllm_model *vkllm_model_load(const char *path, const vkllm_model_params *params, vkllm_error *err);
/* The offload plan of a model file for these params as a table (devices, layer ranges, weights,
 * KV, scratch, predicted device memory, budget, headroom, predicted speed), without loading the
 * weights. Writes at most size bytes (NUL-terminated); returns the length it needed, or -1. */
int vkllm_plan_describe(const char *path, const vkllm_model_params *params, char *buf, size_t size,
                        vkllm_error *err);
/* The plan's decision in numbers (same inputs as vkllm_plan_describe). */
typedef struct vkllm_plan_info {
    int n_layer;
    int n_gpu_layers; /* chosen split, as -ngl (> n_layer: the head too) */
    int n_gpus;       /* Vulkan devices considered */
    uint64_t predicted[VKLLM_MAX_GPUS]; /* device memory each would hold after load + context */
    double tokens_per_s;                /* predicted generation speed */
    uint64_t host_bytes; /* host memory of the CPU's share (weights, KV cache, scratch) */
    int gpu_layers[VKLLM_MAX_GPUS]; /* layers each GPU holds */
    bool gpu_head;                  /* the output head is on a GPU */
} vkllm_plan_info;
int vkllm_plan_query(const char *path, const vkllm_model_params *params, vkllm_plan_info *out, vkllm_error *err);
/* The plan a loaded model follows, as the same table. */
const char *vkllm_model_plan(const vkllm_model *m);
/* Device memory of the model's GPU i (0..): predicted by the plan, and held now (as the Vulkan
 * allocator reserved it: weights, KV caches, scratch, staging). -1 when there is no such GPU. */
int vkllm_model_gpu_memory(vkllm_model *m, int i, uint64_t *predicted, uint64_t *used);
void vkllm_model_free(vkllm_model *m);
/* Whether vkllm can run a model file, without loading it: the architecture, then the tokenizer,
 * checked in that order so every command words an unsupported model the same way
 * ("PATH: unsupported architecture 'X' ..." / "PATH: tokenizer model 'X' is not supported ...").
 * Returns 0, or -1 with the message. */
int vkllm_model_check(const char *path, vkllm_error *err);

int vkllm_model_n_vocab(const vkllm_model *m);
int vkllm_model_n_ctx_train(const vkllm_model *m);
int vkllm_model_n_embd(const vkllm_model *m);
int vkllm_model_n_layer(const vkllm_model *m);
int vkllm_model_n_threads(const vkllm_model *m); /* CPU threads in use */
/* Layers running on GPUs (0..n_layer; the output head too when > n_layer), and the first GPU's
 * name (NULL when none is used). */
int vkllm_model_n_gpu_layers(const vkllm_model *m);
const char *vkllm_model_gpu_name(const vkllm_model *m);
/* Time per op kind since load or the last reset (model loaded with params.profile): fills up to
 * max entries (ops that ran), returns the count. */
typedef struct vkllm_op_profile {
    const char *op; /* "mul_mat", "attention", ... */
    double seconds;
    uint64_t calls;
} vkllm_op_profile;
int vkllm_model_profile(vkllm_model *m, vkllm_op_profile *out, int max, bool reset);
/* e.g. "llama 4 layers, 256 embd, 8/4 heads, 32000 vocab, q8_0" */
const char *vkllm_model_desc(const vkllm_model *m);

/* ---- tokens ---------------------------------------------------------------------------------- */

int32_t vkllm_token_bos(const vkllm_model *m); /* -1 if none */
int32_t vkllm_token_eos(const vkllm_model *m);
/* End of generation (EOS, end-of-turn tokens). */
bool vkllm_token_is_eog(const vkllm_model *m, int32_t id);
/* Tokenizes text (BOS added when add_special and the vocabulary asks for it). Returns the count;
 * when it exceeds max_out, returns minus the needed count (err set); INT32_MIN on other errors. */
int vkllm_tokenize(const vkllm_model *m, const char *text, size_t len, bool add_special, int32_t *out, int max_out,
                   vkllm_error *err);
/* vkllm_tokenize with parse_special: control-token texts such as <s> or <|im_start|> become those
 * tokens (llama.cpp's prompt handling), and no BOS is added before a text that starts with one. */
int vkllm_tokenize_special(const vkllm_model *m, const char *text, size_t len, bool add_special, int32_t *out,
                           int max_out, vkllm_error *err);
/* The text of one token (no NUL); returns its full length, -1 for a bad id. */
int vkllm_token_to_piece(const vkllm_model *m, int32_t id, char *buf, size_t bufsize);

/* Streaming detokenizer: emits only complete UTF-8 characters. */
typedef struct vkllm_detok vkllm_detok;
vkllm_detok *vkllm_detok_create(const vkllm_model *m, vkllm_error *err);
void vkllm_detok_free(vkllm_detok *d);
/* Appends the text completed by token id to out (no NUL); returns bytes written or -1.
 * out_size >= vkllm_detok_max_bytes(m) is always enough. */
int vkllm_detok_push(vkllm_detok *d, int32_t id, char *out, size_t out_size);
int vkllm_detok_flush(vkllm_detok *d, char *out, size_t out_size);
size_t vkllm_detok_max_bytes(const vkllm_model *m);

/* ---- context: KV cache + evaluation --------------------------------------------------------- */

typedef struct vkllm_context_params {
    int n_ctx;   /* positions in the KV cache; 0 = min(model's training context, 4096) */
    int n_batch; /* most tokens per forward pass (prompts are split); default 512 */
    vkllm_kv_type kv_type;
} vkllm_context_params;

vkllm_context_params vkllm_context_default_params(void);
vkllm_context *vkllm_context_create(vkllm_model *m, const vkllm_context_params *params, vkllm_error *err);
void vkllm_context_free(vkllm_context *c);

int vkllm_n_ctx(const vkllm_context *c);
int vkllm_n_batch(const vkllm_context *c);
/* Positions already in the KV cache (the next token's position). */
int vkllm_n_past(const vkllm_context *c);
/* Forgets everything from position n on (0 = reset). */
int vkllm_kv_truncate(vkllm_context *c, int n, vkllm_error *err);

/* Evaluates n tokens at positions n_past.. (in passes of at most n_batch tokens) and advances
 * n_past. all_logits: keep the logits of every position (then n must be <= n_batch); otherwise
 * only the last position's. Fails cleanly, evaluating nothing, when the tokens do not fit in the
 * context ("context full (N tokens)") or an id is out of range. */
int vkllm_eval(vkllm_context *c, const int32_t *tokens, int n, bool all_logits, vkllm_error *err);
/* Logits (n_vocab floats) of row i of the last eval (i = -1: the last row); NULL if not kept. */
const float *vkllm_logits(const vkllm_context *c, int i);
/* Rows available from the last eval. */
int vkllm_n_logits(const vkllm_context *c);

/* Bytes of the scratch arena (activations) and of the KV cache. */
size_t vkllm_scratch_bytes(const vkllm_context *c);
size_t vkllm_kv_bytes(const vkllm_context *c);

/* Time spent in eval since the context was created (or the last reset_timings). */
typedef struct vkllm_timings {
    double prompt_s;   /* passes with more than one token */
    int prompt_tokens;
    double gen_s;      /* one-token passes */
    int gen_tokens;
} vkllm_timings;
vkllm_timings vkllm_get_timings(const vkllm_context *c);
void vkllm_reset_timings(vkllm_context *c);
/* One-time setup (pipelines, graph plans of a batch and of one token) by evaluating two tokens as a
 * batch and then one, after which the KV cache and the timings are as before: call it after
 * vkllm_context_create so that the first prompt's timing covers only the prompt (llama.cpp's
 * warm-up). Needs an empty cache and a context of at least 3 positions (else does nothing). */
int vkllm_warmup(vkllm_context *c, vkllm_error *err);

/* ---- sampling -------------------------------------------------------------------------------- */

typedef struct vkllm_sampler_params {
    float temperature; /* <= 0: greedy (argmax) */
    int top_k;         /* <= 0: off */
    float top_p;       /* >= 1: off */
    float min_p;       /* <= 0: off */
    float repeat_penalty; /* 1: off */
    int repeat_last_n;
    uint64_t seed;     /* UINT64_MAX: from the clock */
} vkllm_sampler_params;

vkllm_sampler_params vkllm_sampler_default_params(void);
vkllm_sampler *vkllm_sampler_create(const vkllm_model *m, const vkllm_sampler_params *p, vkllm_error *err);
void vkllm_sampler_free(vkllm_sampler *s);
int32_t vkllm_sample(vkllm_sampler *s, const float *logits);
/* Records a token (prompt or generated) for the repetition penalty. */
void vkllm_sampler_accept(vkllm_sampler *s, int32_t id);
uint64_t vkllm_sampler_seed(const vkllm_sampler *s);

#ifdef __cplusplus
}
#endif

#endif
