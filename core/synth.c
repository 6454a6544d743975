/* Synthetic LLaMA-architecture GGUF models with deterministic random weights.
 *
 * Every row of every tensor has its own random stream, seeded from (seed, tensor name, row), so the
 * output does not depend on the number of threads or on chunking. Weight scales mimic the
 * reference fixtures (llama.cpp-written random models): projections std 1/sqrt(n_in), the output
 * projections of attention and FFN half that, the output head 6/sqrt(n_embd) so the logits are
 * peaked, embeddings std 1, norm weights 1 +- 0.1. */
#include "synth.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"

#define BUILTIN_VOCAB_DEFAULT 32000
#define BUILTIN_VOCAB_MIN 259 /* <unk> <s> </s> and the 256 byte tokens */

void vkl_synth_defaults(vkl_synth_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    vkl_synth_preset(cfg, "tiny");
    cfg->rope_base = 10000.0f;
    cfg->rms_eps = 1e-5f;
    cfg->type = VKL_TYPE_Q8_0;
    cfg->seed = 1;
}

static const struct {
    const char *name;
    int64_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
} presets[] = {
    {"tiny", 256, 4, 8, 4, 768, 2048},       /* the shape of the reference fixtures */
    {"1b", 2048, 22, 32, 4, 5632, 2048},     /* TinyLlama-1.1B */
    {"7b", 4096, 32, 32, 32, 11008, 4096},   /* LLaMA-2 7B */
    {"13b", 5120, 40, 40, 40, 13824, 4096},  /* LLaMA-2 13B */
};

int vkl_synth_preset(vkl_synth_config *cfg, const char *preset) {
    for (size_t i = 0; i < VKL_ARRAY_LEN(presets); i++) {
        if (strcmp(presets[i].name, preset)) continue;
        cfg->n_embd = presets[i].n_embd;
        cfg->n_layer = presets[i].n_layer;
        cfg->n_head = presets[i].n_head;
        cfg->n_head_kv = presets[i].n_head_kv;
        cfg->n_ff = presets[i].n_ff;
        cfg->n_ctx = presets[i].n_ctx;
        return 0;
    }
    return -1;
}

int vkl_synth_validate(const vkl_synth_config *cfg, vkl_error *err) {
    if (!vkl_type_get((int)cfg->type)) return vkl_fail(err, "unsupported tensor type %d", (int)cfg->type);
    const struct {
        const char *flag;
        int64_t v, max;
    } dims[] = {
        {"n-embd", cfg->n_embd, 1 << 16}, {"n-layer", cfg->n_layer, 1 << 10}, {"n-head", cfg->n_head, 1 << 12},
        {"n-head-kv", cfg->n_head_kv, 1 << 12}, {"n-ff", cfg->n_ff, 1 << 18}, {"n-ctx", cfg->n_ctx, 1 << 24},
    };
    for (size_t i = 0; i < VKL_ARRAY_LEN(dims); i++)
        if (dims[i].v < 1 || dims[i].v > dims[i].max)
            return vkl_fail(err, "--%s is %lld, must be in 1..%lld", dims[i].flag, (long long)dims[i].v,
                            (long long)dims[i].max);
    if (cfg->n_vocab < 0 || cfg->n_vocab > (1 << 22))
        return vkl_fail(err, "--n-vocab is %lld, must be in 1..%d", (long long)cfg->n_vocab, 1 << 22);
    if (!cfg->vocab_path && cfg->n_vocab && cfg->n_vocab < BUILTIN_VOCAB_MIN)
        return vkl_fail(err, "--n-vocab is %lld; the built-in byte-level vocabulary needs at least %d tokens",
                        (long long)cfg->n_vocab, BUILTIN_VOCAB_MIN);
    if (cfg->n_embd % cfg->n_head)
        return vkl_fail(err, "n_embd %lld is not divisible by n_head %lld", (long long)cfg->n_embd,
                        (long long)cfg->n_head);
    if (cfg->n_head % cfg->n_head_kv)
        return vkl_fail(err, "n_head %lld is not divisible by n_head_kv %lld", (long long)cfg->n_head,
                        (long long)cfg->n_head_kv);
    if ((cfg->n_embd / cfg->n_head) % 2)
        return vkl_fail(err, "head dimension %lld (n_embd / n_head) must be even for RoPE",
                        (long long)(cfg->n_embd / cfg->n_head));
    if (!(cfg->rope_base > 0) || !(cfg->rms_eps > 0)) return vkl_fail(err, "rope base and rms eps must be positive");
    return 0;
}

vkl_type vkl_synth_tensor_type(vkl_type wanted, int64_t ne0) {
    const vkl_type_traits *t = vkl_type_get((int)wanted);
    if (!t || ne0 % t->block_size == 0) return wanted;
    if (t->is_quantized && ne0 % VKL_QK8_0 == 0) return VKL_TYPE_Q8_0;
    return VKL_TYPE_F16;
}

uint32_t vkl_synth_file_type(vkl_type type) {
    switch (type) {
    case VKL_TYPE_F32: return 0;
    case VKL_TYPE_F16: return 1;
    case VKL_TYPE_Q4_0: return 2;
    case VKL_TYPE_Q4_1: return 3;
    case VKL_TYPE_Q8_0: return 7;
    case VKL_TYPE_Q5_0: return 8;
    case VKL_TYPE_Q5_1: return 9;
    case VKL_TYPE_Q2_K: return 10;
    case VKL_TYPE_Q3_K: return 11; /* Q3_K_S: all matrices q3_K */
    case VKL_TYPE_Q4_K: return 14; /* Q4_K_S */
    case VKL_TYPE_Q5_K: return 16; /* Q5_K_S */
    case VKL_TYPE_Q6_K: return 18;
    case VKL_TYPE_BF16: return 32;
    default: return 0;
    }
}

/* ---- random numbers ------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t tensor_seed(uint64_t seed, const char *name) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
    uint64_t s = seed ^ h;
    return splitmix64(&s);
}

/* n normal samples with the given mean and std (Box-Muller, both outputs used). */
static void gauss_fill(float *x, int64_t n, uint64_t stream, float mean, float std) {
    uint64_t s = stream;
    for (int64_t i = 0; i < n; i += 2) {
        float u1 = (float)((splitmix64(&s) >> 40) + 0.5) * (1.0f / 16777216.0f); /* (0, 1) */
        float u2 = (float)(splitmix64(&s) >> 40) * (1.0f / 16777216.0f);
        float r = sqrtf(-2.0f * logf(u1)), a = 6.28318530718f * u2;
        x[i] = mean + std * r * cosf(a);
        if (i + 1 < n) x[i + 1] = mean + std * r * sinf(a);
    }
}

/* ---- tensor list --------------------------------------------------------------------------- */

typedef struct {
    char name[64];
    uint32_t n_dims;
    int64_t ne[2];
    vkl_type type;
    float mean, std;
    uint64_t nbytes;
} tensor_spec;

static void add_spec(tensor_spec *s, int *n, const char *name, int64_t ne0, int64_t ne1, vkl_type type, float mean,
                     float std) {
    tensor_spec *t = &s[(*n)++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = ne1 ? 2 : 1;
    t->ne[0] = ne0;
    t->ne[1] = ne1 ? ne1 : 1;
    t->type = ne1 ? vkl_synth_tensor_type(type, ne0) : VKL_TYPE_F32;
    t->mean = mean;
    t->std = std;
    t->nbytes = (uint64_t)vkl_row_size(t->type, ne0) * (uint64_t)t->ne[1];
}

/* llama.cpp's tensor order and shapes (ne[0] is the input dimension). */
static int build_specs(const vkl_synth_config *c, int64_t n_vocab, tensor_spec *s) {
    int n = 0;
    const int64_t E = c->n_embd, F = c->n_ff, KV = c->n_embd / c->n_head * c->n_head_kv;
    const float in_e = 1.0f / sqrtf((float)E), in_f = 1.0f / sqrtf((float)F);
    char name[64];
    add_spec(s, &n, "token_embd.weight", E, n_vocab, c->type, 0.0f, 1.0f);
    for (int64_t l = 0; l < c->n_layer; l++) {
#define BLK(suffix, ne0, ne1, mean, std)                                  \
    do {                                                                  \
        snprintf(name, sizeof name, "blk.%lld." suffix, (long long)l);    \
        add_spec(s, &n, name, ne0, ne1, c->type, mean, std);              \
    } while (0)
        BLK("attn_norm.weight", E, 0, 1.0f, 0.1f);
        BLK("attn_q.weight", E, E, 0.0f, in_e);
        BLK("attn_k.weight", E, KV, 0.0f, in_e);
        BLK("attn_v.weight", E, KV, 0.0f, in_e);
        BLK("attn_output.weight", E, E, 0.0f, 0.5f * in_e);
        BLK("ffn_norm.weight", E, 0, 1.0f, 0.1f);
        BLK("ffn_gate.weight", E, F, 0.0f, in_e);
        BLK("ffn_up.weight", E, F, 0.0f, in_e);
        BLK("ffn_down.weight", F, E, 0.0f, 0.5f * in_f);
#undef BLK
    }
    add_spec(s, &n, "output_norm.weight", E, 0, c->type, 1.0f, 0.1f);
    add_spec(s, &n, "output.weight", E, n_vocab, c->type, 0.0f, 6.0f * in_e);
    return n;
}

/* ---- generation (rows split over threads) -------------------------------------------------- */

typedef struct {
    const tensor_spec *t;
    uint64_t seed;
    uint8_t *out;
    float *scratch;
    int64_t r0, r1;
} gen_job;

static void *gen_rows(void *arg) {
    gen_job *j = arg;
    const tensor_spec *t = j->t;
    const vkl_type_traits *tr = vkl_type_get((int)t->type);
    size_t rs = vkl_row_size(t->type, t->ne[0]);
    for (int64_t r = j->r0; r < j->r1; r++) {
        uint64_t s = j->seed ^ ((uint64_t)r * 0xd1b54a32d192ed03ull);
        gauss_fill(j->scratch, t->ne[0], splitmix64(&s), t->mean, t->std);
        tr->from_f32(j->scratch, j->out + (size_t)r * rs, t->ne[0]);
    }
    return NULL;
}

static void generate(const tensor_spec *t, uint64_t seed, uint8_t *out, float **scratch, int n_threads) {
    gen_job jobs[64];
    pthread_t tid[64];
    bool started[64];
    int64_t rows = t->ne[1];
    int nt = (int)VKL_MIN((int64_t)n_threads, rows);
    for (int i = 0; i < nt; i++) {
        jobs[i] = (gen_job){t, tensor_seed(seed, t->name), out, scratch[i], rows * i / nt, rows * (i + 1) / nt};
        /* job 0 runs on this thread; a thread that cannot be started runs here too */
        started[i] = i > 0 && pthread_create(&tid[i], NULL, gen_rows, &jobs[i]) == 0;
    }
    for (int i = 0; i < nt; i++)
        if (!started[i]) gen_rows(&jobs[i]);
    for (int i = 1; i < nt; i++)
        if (started[i]) pthread_join(tid[i], NULL);
}

/* ---- vocabulary ---------------------------------------------------------------------------- */

static bool not_tokenizer_key(const char *key) { return strncmp(key, "tokenizer.", 10) != 0; }

static int add_array(gguf_writer *w, const char *key, gguf_vtype et, uint64_t n, const void *data, gguf_str *strs,
                     vkl_error *err) {
    gguf_value v;
    memset(&v, 0, sizeof v);
    v.type = GGUF_VT_ARRAY;
    v.v.arr.type = et;
    v.v.arr.n = n;
    v.v.arr.data = data;
    v.v.arr.strs = strs;
    return gguf_writer_add_kv(w, key, &v, err);
}

/* Built-in SentencePiece-style vocabulary: <unk> <s> </s>, the 256 byte tokens, then "▁" and
 * distinct letter pieces ("▁e", "e", "▁t", "t", ..., "▁ee", ...) with decreasing scores. */
static int add_builtin_vocab(gguf_writer *w, int64_t n_vocab, vkl_error *err) {
    static const char alphabet[] = "etaoinshrdlucmfwypvbgkjqxz";
    gguf_str *strs = vkl_calloc((size_t)n_vocab, sizeof *strs, err);
    char *arena = vkl_malloc((size_t)n_vocab * 16, err);
    float *scores = vkl_calloc((size_t)n_vocab, sizeof *scores, err);
    int32_t *types = vkl_calloc((size_t)n_vocab, sizeof *types, err);
    int rc = -1;
    if (!strs || !arena || !scores || !types) goto done;
    char *p = arena;
    for (int64_t i = 0; i < n_vocab; i++) {
        char *s = p;
        if (i < 3) {
            strcpy(s, i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
            types[i] = i == 0 ? 2 : 3; /* unknown, control */
        } else if (i < BUILTIN_VOCAB_MIN) {
            snprintf(s, 16, "<0x%02X>", (unsigned)(i - 3));
            types[i] = 6; /* byte */
        } else {
            int64_t k = i - BUILTIN_VOCAB_MIN;
            size_t len = 0;
            if (k == 0 || (k - 1) % 2 == 0) len += (size_t)sprintf(s, "\xe2\x96\x81"); /* U+2581 */
            if (k > 0) {
                /* bijective base-26 digits of (k-1)/2 + 1 */
                char digits[16];
                int nd = 0;
                for (int64_t m = (k - 1) / 2 + 1; m > 0; m = (m - 1) / 26) digits[nd++] = alphabet[(m - 1) % 26];
                while (nd) s[len++] = digits[--nd];
                s[len] = 0;
            }
            types[i] = 1; /* normal */
            scores[i] = -(float)k;
        }
        strs[i].data = s;
        strs[i].len = strlen(s);
        p += strs[i].len + 1;
    }
    if (gguf_writer_add_str(w, "tokenizer.ggml.model", "llama", err) ||
        gguf_writer_add_str(w, "tokenizer.ggml.pre", "default", err) ||
        add_array(w, "tokenizer.ggml.tokens", GGUF_VT_STRING, (uint64_t)n_vocab, NULL, strs, err) ||
        add_array(w, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, (uint64_t)n_vocab, scores, NULL, err) ||
        add_array(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, (uint64_t)n_vocab, types, NULL, err) ||
        gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 1, err) ||
        gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 2, err) ||
        gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", 0, err) ||
        gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", true, err) ||
        gguf_writer_add_bool(w, "tokenizer.ggml.add_eos_token", false, err))
        goto done;
    rc = 0;
done:
    free(strs);
    free(arena);
    free(scores);
    free(types);
    return rc;
}

/* ---- the writer ---------------------------------------------------------------------------- */

static int add_metadata(gguf_writer *w, const vkl_synth_config *c, int64_t n_vocab, vkl_error *err) {
    const vkl_type_traits *tr = vkl_type_get((int)c->type);
    if (gguf_writer_add_str(w, "general.architecture", "llama", err) ||
        gguf_writer_add_str(w, "general.name", c->name ? c->name : "vkllm-synth", err) ||
        gguf_writer_add_u32(w, "llama.context_length", (uint32_t)c->n_ctx, err) ||
        gguf_writer_add_u32(w, "llama.embedding_length", (uint32_t)c->n_embd, err) ||
        gguf_writer_add_u32(w, "llama.block_count", (uint32_t)c->n_layer, err) ||
        gguf_writer_add_u32(w, "llama.feed_forward_length", (uint32_t)c->n_ff, err) ||
        gguf_writer_add_u32(w, "llama.attention.head_count", (uint32_t)c->n_head, err) ||
        gguf_writer_add_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_head_kv, err) ||
        gguf_writer_add_u32(w, "llama.rope.dimension_count", (uint32_t)(c->n_embd / c->n_head), err) ||
        gguf_writer_add_f32(w, "llama.rope.freq_base", c->rope_base, err) ||
        gguf_writer_add_f32(w, "llama.attention.layer_norm_rms_epsilon", c->rms_eps, err) ||
        gguf_writer_add_u32(w, "llama.vocab_size", (uint32_t)n_vocab, err) ||
        gguf_writer_add_u32(w, "general.file_type", vkl_synth_file_type(c->type), err))
        return -1;
    if (tr->is_quantized && gguf_writer_add_u32(w, "general.quantization_version", 2, err)) return -1;
    return 0;
}

static void note(const vkl_synth_config *c, const char *fmt, ...) VKL_PRINTF(2, 3);
static void note(const vkl_synth_config *c, const char *fmt, ...) {
    if (!c->note) return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->note(c->ud, msg);
}

int vkl_synth_write(const char *path, const vkl_synth_config *cfg, vkl_error *err) {
    if (vkl_synth_validate(cfg, err)) return -1;
    gguf_file *vocab = NULL;
    gguf_writer *w = NULL;
    tensor_spec *specs = NULL;
    uint8_t *out = NULL;
    float *scratch[64] = {0};
    int n_threads = cfg->n_threads > 0 ? cfg->n_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    n_threads = n_threads < 1 ? 1 : n_threads > 64 ? 64 : n_threads;

    int64_t n_vocab = cfg->n_vocab ? cfg->n_vocab : BUILTIN_VOCAB_DEFAULT;
    if (cfg->vocab_path) {
        vocab = gguf_open(cfg->vocab_path, err);
        if (!vocab) {
            vkl_error_prefix(err, "%s", cfg->vocab_path);
            return -1;
        }
        const gguf_value *tokens;
        if (gguf_get_arr(vocab, "tokenizer.ggml.tokens", GGUF_VT_STRING, &tokens, err)) {
            vkl_error_prefix(err, "%s", cfg->vocab_path);
            goto fail;
        }
        if (cfg->n_vocab && (uint64_t)cfg->n_vocab != tokens->v.arr.n) {
            vkl_fail(err, "--n-vocab %lld does not match the %llu tokens of %s", (long long)cfg->n_vocab,
                     (unsigned long long)tokens->v.arr.n, cfg->vocab_path);
            goto fail;
        }
        if (tokens->v.arr.n < 1 || tokens->v.arr.n > (1u << 22)) {
            vkl_fail(err, "%s: %llu tokens is out of range", cfg->vocab_path, (unsigned long long)tokens->v.arr.n);
            goto fail;
        }
        n_vocab = (int64_t)tokens->v.arr.n;
    }

    int n_tensors = 9 * (int)cfg->n_layer + 3;
    specs = vkl_calloc((size_t)n_tensors, sizeof *specs, err);
    if (!specs) goto fail;
    if (build_specs(cfg, n_vocab, specs) != n_tensors) {
        vkl_fail(err, "internal error: tensor count");
        goto fail;
    }
    uint64_t max_bytes = 0, total_bytes = 0;
    for (int i = 0; i < n_tensors; i++) {
        max_bytes = VKL_MAX(max_bytes, specs[i].nbytes);
        total_bytes += specs[i].nbytes;
        if (specs[i].n_dims == 2 && specs[i].type != cfg->type)
            note(cfg, "%s: row length %lld is not a multiple of %s's block size %lld, stored as %s", specs[i].name,
                 (long long)specs[i].ne[0], vkl_type_name((int)cfg->type),
                 (long long)vkl_type_get((int)cfg->type)->block_size, vkl_type_name((int)specs[i].type));
    }
    out = vkl_malloc((size_t)max_bytes, err);
    if (!out) goto fail;
    for (int i = 0; i < n_threads; i++)
        if (!(scratch[i] = vkl_malloc((size_t)VKL_MAX(cfg->n_embd, cfg->n_ff) * sizeof(float), err))) goto fail;

    w = gguf_writer_open(path, err);
    if (!w) goto fail;
    if (add_metadata(w, cfg, n_vocab, err)) goto fail;
    if (vocab ? gguf_writer_copy_kvs(w, vocab, not_tokenizer_key, err) : add_builtin_vocab(w, n_vocab, err))
        goto fail;
    gguf_close(vocab);
    vocab = NULL;
    for (int i = 0; i < n_tensors; i++)
        if (gguf_writer_add_tensor(w, specs[i].name, specs[i].type, specs[i].n_dims, specs[i].ne, err)) goto fail;

    uint64_t done = 0;
    for (int i = 0; i < n_tensors; i++) {
        generate(&specs[i], cfg->seed, out, scratch, n_threads);
        if (gguf_writer_write_tensor_data(w, out, specs[i].nbytes, err)) goto fail;
        done += specs[i].nbytes;
        if (cfg->progress) cfg->progress(cfg->ud, i + 1, n_tensors, specs[i].name, done, total_bytes);
    }
    int rc = gguf_writer_close(w, err);
    w = NULL;
    if (rc) goto fail;
    free(specs);
    free(out);
    for (int i = 0; i < n_threads; i++) free(scratch[i]);
    return 0;
fail:
    if (w) gguf_writer_abort(w);
    gguf_close(vocab);
    free(specs);
    free(out);
    for (int i = 0; i < n_threads; i++) free(scratch[i]);
    return -1;
}
