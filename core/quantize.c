/* Model quantization with llama-quantize's per-tensor type rules (see quantize.h). The rules below
 * restate llama.cpp's llama_tensor_get_type for the mixtures we support (the K-quant mixtures and
 * the plain types; not the IQ/TQ ones), in its tensor order: layer-less tensors first, then by
 * layer number, by name within a layer, since the attn_v and ffn_down rules count tensors. */
#include "quantize.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- file types ---------------------------------------------------------------------------- */

/* llama_ftype numbers (general.file_type) */
enum {
    FT_F32 = 0, FT_F16 = 1, FT_Q4_0 = 2, FT_Q4_1 = 3, FT_Q8_0 = 7, FT_Q5_0 = 8, FT_Q5_1 = 9, FT_Q2_K = 10,
    FT_Q3_K_S = 11, FT_Q3_K_M = 12, FT_Q3_K_L = 13, FT_Q4_K_S = 14, FT_Q4_K_M = 15, FT_Q5_K_S = 16,
    FT_Q5_K_M = 17, FT_Q6_K = 18, FT_BF16 = 32
};

static const vkl_ftype_info ftypes[] = {
    {"F32", FT_F32, VKL_TYPE_F32},         {"F16", FT_F16, VKL_TYPE_F16},
    {"BF16", FT_BF16, VKL_TYPE_BF16},      {"Q4_0", FT_Q4_0, VKL_TYPE_Q4_0},
    {"Q4_1", FT_Q4_1, VKL_TYPE_Q4_1},      {"Q5_0", FT_Q5_0, VKL_TYPE_Q5_0},
    {"Q5_1", FT_Q5_1, VKL_TYPE_Q5_1},      {"Q8_0", FT_Q8_0, VKL_TYPE_Q8_0},
    {"Q2_K", FT_Q2_K, VKL_TYPE_Q2_K},      {"Q3_K_S", FT_Q3_K_S, VKL_TYPE_Q3_K},
    {"Q3_K_M", FT_Q3_K_M, VKL_TYPE_Q3_K},  {"Q3_K_L", FT_Q3_K_L, VKL_TYPE_Q3_K},
    {"Q4_K_S", FT_Q4_K_S, VKL_TYPE_Q4_K},  {"Q4_K_M", FT_Q4_K_M, VKL_TYPE_Q4_K},
    {"Q5_K_S", FT_Q5_K_S, VKL_TYPE_Q5_K},  {"Q5_K_M", FT_Q5_K_M, VKL_TYPE_Q5_K},
    {"Q6_K", FT_Q6_K, VKL_TYPE_Q6_K},
};

const vkl_ftype_info *vkl_ftype_at(int i) {
    return i >= 0 && i < (int)VKL_ARRAY_LEN(ftypes) ? &ftypes[i] : NULL;
}

const vkl_ftype_info *vkl_ftype_from_name(const char *name) {
    /* llama-quantize's short names for the medium mixtures */
    static const char *const alias[][2] = {{"Q3_K", "Q3_K_M"}, {"Q4_K", "Q4_K_M"}, {"Q5_K", "Q5_K_M"}};
    for (size_t i = 0; i < VKL_ARRAY_LEN(alias); i++)
        if (!strcasecmp(name, alias[i][0])) name = alias[i][1];
    for (size_t i = 0; i < VKL_ARRAY_LEN(ftypes); i++)
        if (!strcasecmp(name, ftypes[i].name)) return &ftypes[i];
    return NULL;
}

void vkl_quantize_params_init(vkl_quantize_params *p, const vkl_ftype_info *ftype) {
    memset(p, 0, sizeof *p);
    p->ftype = ftype;
    p->output_type = -1;
    p->token_embd_type = -1;
}

/* ---- what the rules need to know about the model ------------------------------------------- */

typedef struct model_info {
    int n_layer, n_gqa, n_expert;
    bool falcon, is_70b, tied; /* tied: no output.weight, the embedding is the head */
} model_info;

/* {arch}.KEY as an integer (element 0 of a per-layer array); `def` when absent. */
static int64_t arch_int(const gguf_file *f, const char *arch, const char *key, int64_t def) {
    char k[256];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    const gguf_kv *kv = gguf_find_kv(f, k);
    if (!kv) return def;
    const gguf_value *v = &kv->value;
    if (v->type == GGUF_VT_ARRAY) return v->v.arr.n && v->v.arr.type != GGUF_VT_STRING ? gguf_arr_i64(v, 0) : def;
    int64_t out;
    return gguf_get_i64(f, k, &out, NULL) == 0 ? out : def;
}

static void read_model_info(const gguf_file *f, model_info *mi) {
    char arch[64] = "llama";
    gguf_get_cstr(f, "general.architecture", arch, sizeof arch, NULL);
    int64_t n_head = arch_int(f, arch, "attention.head_count", 0);
    int64_t n_head_kv = arch_int(f, arch, "attention.head_count_kv", n_head);
    mi->n_layer = (int)arch_int(f, arch, "block_count", 0);
    mi->n_gqa = n_head_kv > 0 ? (int)(n_head / n_head_kv) : 0;
    mi->n_expert = (int)arch_int(f, arch, "expert_count", 0);
    mi->falcon = !strcmp(arch, "falcon");
    mi->is_70b = !strcmp(arch, "llama") && mi->n_layer == 80 && n_head != n_head_kv;
    mi->tied = gguf_find_tensor(f, "output.weight") == NULL;
}

/* ---- tensor categories and the type rules -------------------------------------------------- */

typedef enum { C_OTHER, C_OUTPUT, C_TOKEN_EMBD, C_ATTN_V, C_ATTN_K, C_ATTN_Q, C_ATTN_OUT, C_FFN_DOWN } category;

static category tensor_category(const char *name) {
    if (!strcmp(name, "output.weight")) return C_OUTPUT;
    if (!strcmp(name, "token_embd.weight") || !strcmp(name, "per_layer_token_embd.weight")) return C_TOKEN_EMBD;
    /* fused QKV and MLA's kv_b count as attn_v */
    if (strstr(name, "attn_qkv.weight") || strstr(name, "attn_kv_b.weight") || strstr(name, "attn_v.weight"))
        return C_ATTN_V;
    if (strstr(name, "attn_k.weight")) return C_ATTN_K;
    if (strstr(name, "attn_q.weight")) return C_ATTN_Q;
    if (strstr(name, "attn_output.weight")) return C_ATTN_OUT;
    if (strstr(name, "ffn_up") || strstr(name, "ffn_gate")) return C_OTHER;
    if (strstr(name, "ffn_down")) return C_FFN_DOWN;
    return C_OTHER;
}

static int n_dims_used(const gguf_tensor *t) {
    int n = 1;
    for (int d = 1; d < GGUF_MAX_DIMS; d++)
        if (t->ne[d] > 1) n = d + 1;
    return n;
}

/* llama-quantize quantizes 2D/3D "*weight" tensors except these (small or sensitive ones). */
static bool allows_quantization(const gguf_tensor *t, bool leave_output) {
    static const char *const keep[] = {
        "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
        "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight",
        "indexer.q_proj.weight", "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight",
        "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight",
        "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight",
        "time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd", "sam.pos_embd", "sam.neck.",
        "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook", "mm.a.code_embd",
    };
    const char *name = t->name;
    size_t n = strlen(name);
    if (n_dims_used(t) < 2 || n < 6 || strcmp(name + n - 6, "weight")) return false;
    if (leave_output && !strcmp(name, "output.weight")) return false;
    if (!strcmp(name, "position_embd.weight") || !strcmp(name, "token_types.weight")) return false;
    for (size_t i = 0; i < VKL_ARRAY_LEN(keep); i++)
        if (strstr(name, keep[i])) return false;
    return true;
}

typedef struct rule_state {
    const model_info *mi;
    uint32_t ft;
    int n_attn_v, i_attn_v, i_ffn_down;
} rule_state;

static bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static vkl_type attn_v_type(rule_state *s, vkl_type t) {
    const model_info *mi = s->mi;
    int i = s->i_attn_v++;
    if (s->ft == FT_Q2_K) t = mi->n_gqa >= 4 ? VKL_TYPE_Q4_K : VKL_TYPE_Q3_K;
    else if (s->ft == FT_Q3_K_M) t = i < 2 ? VKL_TYPE_Q5_K : VKL_TYPE_Q4_K;
    else if (s->ft == FT_Q3_K_L) t = VKL_TYPE_Q5_K;
    else if ((s->ft == FT_Q4_K_M || s->ft == FT_Q5_K_M) && use_more_bits(i, s->n_attn_v)) t = VKL_TYPE_Q6_K;
    else if (s->ft == FT_Q4_K_S && i < 4) t = VKL_TYPE_Q5_K;
    /* a 70B shares one attn_v among 8 heads: cheap to keep at more bits */
    if (mi->is_70b && (t == VKL_TYPE_Q3_K || t == VKL_TYPE_Q4_K)) t = VKL_TYPE_Q5_K;
    if (mi->n_expert == 8) t = VKL_TYPE_Q8_0;
    return t;
}

/* The layer of an ffn_down tensor: its position among them, or (MoE) the number in its name. */
static int ffn_down_layer(rule_state *s, const char *name) {
    int i = s->i_ffn_down++;
    if (s->mi->n_expert > 1 && sscanf(name, "blk.%d.", &i) != 1) i = 0;
    return i;
}

static vkl_type ffn_down_type(rule_state *s, const char *name, vkl_type t) {
    const int i = ffn_down_layer(s, name), n = s->mi->n_layer;
    const bool falcon = s->mi->falcon;
    switch (s->ft) {
    case FT_Q2_K: return VKL_TYPE_Q3_K;
    case FT_Q3_K_M:
        return i < n / 16 ? VKL_TYPE_Q5_K : !falcon || use_more_bits(i, n) ? VKL_TYPE_Q4_K : VKL_TYPE_Q3_K;
    case FT_Q3_K_L: return falcon ? VKL_TYPE_Q4_K : VKL_TYPE_Q5_K;
    case FT_Q4_K_M:
        if (falcon) return i < n / 16 ? VKL_TYPE_Q6_K : use_more_bits(i, n) ? VKL_TYPE_Q5_K : VKL_TYPE_Q4_K;
        return use_more_bits(i, n) ? VKL_TYPE_Q6_K : t;
    case FT_Q5_K_M: return use_more_bits(i, n) ? VKL_TYPE_Q6_K : t;
    case FT_Q4_K_S: return !falcon && i < n / 8 ? VKL_TYPE_Q5_K : t;
    default: return t;
    }
}

static vkl_type attn_output_type(const rule_state *s, vkl_type t) {
    const uint32_t ft = s->ft;
    if (s->mi->falcon) return ft == FT_Q3_K_L ? VKL_TYPE_Q4_K : t;
    if (s->mi->n_expert == 8) {
        bool more = ft == FT_Q2_K || ft == FT_Q3_K_S || ft == FT_Q3_K_M || ft == FT_Q4_K_S || ft == FT_Q4_K_M;
        return more ? VKL_TYPE_Q5_K : t;
    }
    if (ft == FT_Q2_K) return VKL_TYPE_Q3_K;
    if (ft == FT_Q3_K_M) return VKL_TYPE_Q4_K;
    if (ft == FT_Q3_K_L) return VKL_TYPE_Q5_K;
    return t;
}

/* The mixture's choice for a tensor (t is the mixture's default type). */
static vkl_type mixture_type(rule_state *s, const gguf_tensor *tensor, category c, vkl_type t) {
    if (c == C_OUTPUT || (s->mi->tied && c == C_TOKEN_EMBD)) {
        const vkl_type_traits *tr = vkl_type_get((int)t);
        if (s->mi->falcon || tensor->ne[0] % tr->block_size) return VKL_TYPE_Q8_0;
        return t == VKL_TYPE_Q8_0 ? t : VKL_TYPE_Q6_K;
    }
    switch (c) {
    case C_ATTN_V: return attn_v_type(s, t);
    case C_ATTN_K: return s->mi->n_expert == 8 ? VKL_TYPE_Q8_0 : t;
    case C_FFN_DOWN: return ffn_down_type(s, tensor->name, t);
    case C_ATTN_OUT: return attn_output_type(s, t);
    default: return t;
    }
}

/* A type whose block divides the rows (llama-quantize's fallbacks); -1 when there is none. */
static int fallback_type(vkl_type t, int64_t ne0) {
    if (ne0 % vkl_type_get((int)t)->block_size == 0) return (int)t;
    vkl_type f;
    switch (t) {
    case VKL_TYPE_Q2_K:
    case VKL_TYPE_Q3_K: f = VKL_TYPE_Q4_0; break;
    case VKL_TYPE_Q4_K: f = VKL_TYPE_Q5_0; break;
    case VKL_TYPE_Q5_K: f = VKL_TYPE_Q5_1; break;
    case VKL_TYPE_Q6_K: f = VKL_TYPE_Q8_0; break;
    default: return -1;
    }
    return ne0 % vkl_type_get((int)f)->block_size == 0 ? (int)f : (int)VKL_TYPE_F16;
}

static int layer_of(const char *name) {
    int l = -1;
    if (sscanf(name, "blk.%d.", &l) != 1) l = -1;
    return l;
}

typedef struct order_key {
    int layer;
    const char *name;
    uint64_t index;
} order_key;

static int by_layer_then_name(const void *a, const void *b) {
    const order_key *x = a, *y = b;
    if (x->layer != y->layer) return x->layer < y->layer ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The tensors' indices in llama-quantize's order (malloc'd). */
static uint64_t *tensor_order(const gguf_file *f, vkl_error *err) {
    size_t n = f->n_tensors ? (size_t)f->n_tensors : 1;
    order_key *keys = vkl_malloc(n * sizeof *keys, err);
    uint64_t *ord = keys ? vkl_malloc(n * sizeof *ord, err) : NULL;
    if (!ord) {
        free(keys);
        return NULL;
    }
    for (uint64_t i = 0; i < f->n_tensors; i++)
        keys[i] = (order_key){layer_of(f->tensors[i].name), f->tensors[i].name, i};
    qsort(keys, (size_t)f->n_tensors, sizeof *keys, by_layer_then_name);
    for (uint64_t i = 0; i < f->n_tensors; i++) ord[i] = keys[i].index;
    free(keys);
    return ord;
}

static int choose_one(rule_state *s, const gguf_tensor *t, const vkl_quantize_params *p, vkl_type *out,
                      vkl_error *err) {
    category c = tensor_category(t->name);
    vkl_type def = p->ftype->type;
    *out = t->type;
    if (!allows_quantization(t, p->leave_output)) return 0;
    if (p->token_embd_type >= 0 && c == C_TOKEN_EMBD) *out = (vkl_type)p->token_embd_type;
    else if (p->output_type >= 0 && (c == C_OUTPUT || (s->mi->tied && c == C_TOKEN_EMBD)))
        *out = (vkl_type)p->output_type;
    else if (!vkl_type_get((int)def)->is_quantized) *out = def;
    else {
        vkl_type want = p->pure ? def : mixture_type(s, t, c, def);
        int f = fallback_type(want, t->ne[0]);
        if (f < 0)
            return vkl_fail(err, "tensor '%s': rows of %lld values do not fit %s blocks and %s has no fallback type",
                            t->name, (long long)t->ne[0], vkl_type_name((int)want), vkl_type_name((int)want));
        *out = (vkl_type)f;
    }
    if (t->ne[0] % vkl_type_get((int)*out)->block_size)
        return vkl_fail(err, "tensor '%s': rows of %lld values cannot be stored as %s", t->name, (long long)t->ne[0],
                        vkl_type_name((int)*out));
    return 0;
}

int vkl_quantize_choose_types(const gguf_file *in, const vkl_quantize_params *p, vkl_type *types, vkl_error *err) {
    model_info mi;
    read_model_info(in, &mi);
    rule_state s = {.mi = &mi, .ft = p->ftype->ftype};
    for (uint64_t i = 0; i < in->n_tensors; i++) s.n_attn_v += tensor_category(in->tensors[i].name) == C_ATTN_V;
    uint64_t *ord = tensor_order(in, err);
    if (!ord) return -1;
    int rc = 0;
    for (uint64_t k = 0; k < in->n_tensors && !rc; k++) {
        const gguf_tensor *t = &in->tensors[ord[k]];
        rc = choose_one(&s, t, p, &types[ord[k]], err);
        const vkl_type_traits *from = vkl_type_get((int)t->type);
        if (!rc && types[ord[k]] != t->type && from->is_quantized && !p->allow_requantize)
            rc = vkl_fail(err, "tensor '%s' is already quantized (%s); pass --allow-requantize to requantize it",
                          t->name, from->name);
    }
    free(ord);
    return rc;
}

/* ---- conversion ---------------------------------------------------------------------------- */

typedef struct conv_job {
    const gguf_tensor *t;
    vkl_type to;
    uint8_t *out;
    int64_t r0, r1;
    float *scratch; /* one row */
} conv_job;

static void *convert_rows(void *arg) {
    conv_job *j = arg;
    const int64_t ne0 = j->t->ne[0];
    const vkl_type_traits *from = vkl_type_get((int)j->t->type), *to = vkl_type_get((int)j->to);
    const size_t in_rs = vkl_row_size(j->t->type, ne0), out_rs = vkl_row_size(j->to, ne0);
    const uint8_t *src = j->t->data;
    for (int64_t r = j->r0; r < j->r1; r++) {
        const void *row = src + (size_t)r * in_rs;
        const float *x = row;
        if (j->t->type != VKL_TYPE_F32) {
            from->to_f32(row, j->scratch, ne0);
            x = j->scratch;
        }
        to->from_f32(x, j->out + (size_t)r * out_rs, ne0);
    }
    return NULL;
}

#define MAX_THREADS 64

/* Converts tensor t into out (vkl_row_size(to) per row) on n_threads threads. */
static void convert_tensor(const gguf_tensor *t, vkl_type to, uint8_t *out, float **scratch, int n_threads) {
    conv_job jobs[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    bool started[MAX_THREADS];
    const int64_t rows = (int64_t)(t->n_elements / (uint64_t)t->ne[0]);
    const int nt = (int)VKL_MIN((int64_t)n_threads, rows);
    for (int i = 0; i < nt; i++) {
        jobs[i] = (conv_job){t, to, out, rows * i / nt, rows * (i + 1) / nt, scratch[i]};
        /* job 0 runs on this thread; so does a job whose thread cannot be started */
        started[i] = i > 0 && pthread_create(&tid[i], NULL, convert_rows, &jobs[i]) == 0;
    }
    for (int i = 0; i < nt; i++)
        if (!started[i]) convert_rows(&jobs[i]);
    for (int i = 1; i < nt; i++)
        if (started[i]) pthread_join(tid[i], NULL);
}

/* Drops the input tensor's pages from memory once written (they are file-backed: re-readable). */
static void release_pages(const gguf_tensor *t) {
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || !t->nbytes) return;
    uintptr_t a = VKL_ALIGN_UP((uintptr_t)t->data, (uintptr_t)page);
    uintptr_t b = ((uintptr_t)t->data + t->nbytes) / (uintptr_t)page * (uintptr_t)page;
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

static bool not_copied_key(const char *key) {
    return !strcmp(key, "general.file_type") || !strcmp(key, "general.quantization_version") ||
           !strcmp(key, "split.no") || !strcmp(key, "split.count") || !strcmp(key, "split.tensors.count");
}

static uint32_t n_dims_of(const gguf_tensor *t) {
    return (uint32_t)n_dims_used(t); /* llama.cpp writes the used dimensions */
}

static int write_header(gguf_writer *w, const gguf_file *in, const uint64_t *ord, const vkl_type *types,
                        const vkl_quantize_params *p, vkl_error *err) {
    if (gguf_writer_copy_kvs(w, in, not_copied_key, err) ||
        gguf_writer_add_u32(w, "general.quantization_version", 2, err) ||
        gguf_writer_add_u32(w, "general.file_type", p->ftype->ftype, err))
        return -1;
    for (uint64_t k = 0; k < in->n_tensors; k++) {
        const gguf_tensor *t = &in->tensors[ord[k]];
        if (gguf_writer_add_tensor(w, t->name, types[ord[k]], n_dims_of(t), t->ne, err)) return -1;
    }
    return 0;
}

typedef struct qrun {
    const gguf_file *in;
    const vkl_quantize_params *p;
    const uint64_t *ord;
    const vkl_type *types;
    gguf_writer *w;
    uint8_t *buf;
    float *scratch[MAX_THREADS];
    int n_threads;
    uint64_t total, done;
} qrun;

static int write_tensors(qrun *q, vkl_error *err) {
    const gguf_file *in = q->in;
    for (uint64_t k = 0; k < in->n_tensors; k++) {
        const gguf_tensor *t = &in->tensors[q->ord[k]];
        vkl_type to = q->types[q->ord[k]];
        if (q->p->progress)
            q->p->progress(q->p->ud, (int)k, (int)in->n_tensors, t->name, t->type, to, q->done, q->total);
        const void *data = t->data;
        uint64_t nbytes = t->nbytes;
        if (to != t->type) {
            convert_tensor(t, to, q->buf, q->scratch, q->n_threads);
            data = q->buf;
            nbytes = (t->n_elements / (uint64_t)t->ne[0]) * vkl_row_size(to, t->ne[0]);
        }
        if (gguf_writer_write_tensor_data(q->w, data, nbytes, err)) return -1;
        release_pages(t);
        q->done += t->nbytes;
    }
    if (q->p->progress)
        q->p->progress(q->p->ud, (int)in->n_tensors, (int)in->n_tensors, "", VKL_TYPE_F32, VKL_TYPE_F32, q->total,
                       q->total);
    return 0;
}

/* Allocates the output buffer (the largest converted tensor) and the per-thread row buffers. */
static int alloc_buffers(qrun *q, vkl_error *err) {
    uint64_t max_out = 0;
    int64_t max_ne0 = 1;
    for (uint64_t i = 0; i < q->in->n_tensors; i++) {
        const gguf_tensor *t = &q->in->tensors[i];
        q->total += t->nbytes;
        if (q->types[i] == t->type) continue;
        uint64_t n = (t->n_elements / (uint64_t)t->ne[0]) * vkl_row_size(q->types[i], t->ne[0]);
        max_out = VKL_MAX(max_out, n);
        max_ne0 = VKL_MAX(max_ne0, t->ne[0]);
    }
    if (max_out > SIZE_MAX) return vkl_fail(err, "a tensor is too large for this machine");
    q->buf = vkl_malloc(max_out ? (size_t)max_out : 1, err);
    if (!q->buf) return -1;
    for (int i = 0; i < q->n_threads; i++)
        if (!(q->scratch[i] = vkl_malloc((size_t)max_ne0 * sizeof(float), err))) return -1;
    return 0;
}

static void free_buffers(qrun *q) {
    free(q->buf);
    for (int i = 0; i < q->n_threads; i++) free(q->scratch[i]);
}

static int run_conversion(qrun *q, const char *out_path, vkl_error *err) {
    int rc = alloc_buffers(q, err);
    if (!rc) {
        q->w = gguf_writer_open(out_path, err);
        rc = q->w ? 0 : -1;
    }
    if (!rc) rc = write_header(q->w, q->in, q->ord, q->types, q->p, err);
    if (!rc) rc = write_tensors(q, err);
    if (q->w) {
        if (rc) gguf_writer_abort(q->w);
        else rc = gguf_writer_close(q->w, err);
    }
    free_buffers(q);
    return rc;
}

int vkl_quantize_file(const char *in_path, const char *out_path, const vkl_quantize_params *p, vkl_error *err) {
    if (!p->ftype) return vkl_fail(err, "no target type");
    gguf_file *in = gguf_open(in_path, err);
    if (!in) {
        vkl_error_prefix(err, "%s", in_path);
        return -1;
    }
    int rc = -1;
    vkl_type *types = vkl_calloc(in->n_tensors ? (size_t)in->n_tensors : 1, sizeof *types, err);
    uint64_t *ord = types ? tensor_order(in, err) : NULL;
    if (ord && !vkl_quantize_choose_types(in, p, types, err)) {
        int nt = p->n_threads > 0 ? p->n_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
        qrun q = {.in = in, .p = p, .ord = ord, .types = types, .n_threads = nt < 1 ? 1 : VKL_MIN(nt, MAX_THREADS)};
        rc = run_conversion(&q, out_path, err);
    }
    free(ord);
    free(types);
    gguf_close(in);
    return rc;
}
