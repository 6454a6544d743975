/* CPU op kernels: the scalar references (the oracle) and the fast threaded versions. */
#include "cpu/cpu_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------------------------ */

#define ROW(t, i) ((char *)(t)->data + (size_t)(i) * (t)->nb[1])
#define FROW(t, i) ((float *)ROW(t, i))

/* f16 -> f32 without branches or tables, so that row loops vectorise: the half's exponent and
 * mantissa bits are placed in a float and rebiased by a multiply with 2^112 (exact for normals and
 * subnormals); infinities and NaNs are selected separately. */
static inline uint32_t half_bits_to_float_bits(uint16_t h) {
    uint32_t em = h & 0x7fffu, bits = em << 13, out;
    float f;
    memcpy(&f, &bits, sizeof f);
    f *= 0x1p112f;
    memcpy(&out, &f, sizeof out);
    /* Inf/NaN came out as 2^16..2^17 with the mantissa kept: saturate the exponent. */
    out |= (0u - (uint32_t)(em >= 0x7c00u)) & 0x7f800000u;
    return out | (uint32_t)(h & 0x8000u) << 16;
}

static inline void f16_row(const uint16_t *restrict src, float *restrict dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint32_t b[8];
        for (int j = 0; j < 8; j++) b[j] = half_bits_to_float_bits(src[i + j]);
        memcpy(dst + i, b, sizeof b);
    }
    for (; i < n; i++) {
        uint32_t b = half_bits_to_float_bits(src[i]);
        memcpy(dst + i, &b, sizeof b);
    }
}

void vkl_cpu_f16_to_f32_row(const uint16_t *src, float *dst, int64_t n) {
    f16_row(src, dst, n);
}

/* Converts one row of a float type (f32, f16, bf16) to f32. */
static void row_to_f32(vkl_type type, const void *src, float *dst, int64_t n) {
    if (type == VKL_TYPE_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
    } else if (type == VKL_TYPE_F16) {
        vkl_cpu_f16_to_f32_row(src, dst, n);
    } else {
        const vkl_type_traits *tr = vkl_type_get(type);
        tr->to_f32(src, dst, n);
    }
}

static void row_from_f32(vkl_type type, const float *src, void *dst, int64_t n) {
    if (type == VKL_TYPE_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
    } else if (type == VKL_TYPE_F16) {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = vkl_f32_to_f16(src[i]);
    } else {
        const vkl_type_traits *tr = vkl_type_get(type);
        tr->from_f32(src, dst, n);
    }
}

static void run_threads(vkl_threadpool *tp, void (*fn)(void *, int, int), void *ctx) {
    if (tp) vkl_threadpool_run(tp, fn, ctx);
    else fn(ctx, 0, 1);
}

/* Element-wise ops on a few rows cost less than waking the workers: run them on the caller. */
#define SMALL_OP_ELEMENTS 16384
static void run_elementwise(vkl_threadpool *tp, const vkl_tensor *node, void (*fn)(void *, int, int), void *ctx) {
    run_threads(node->ne[0] * node->ne[1] < SMALL_OP_ELEMENTS ? NULL : tp, fn, ctx);
}

/* Rows [*lo, *hi) of n for worker ith of nth. */
static void split(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi) {
    int64_t per = (n + nth - 1) / nth;
    *lo = VKL_MIN(n, per * ith);
    *hi = VKL_MIN(n, *lo + per);
}

static bool is_float_type(vkl_type t) {
    return t == VKL_TYPE_F32 || t == VKL_TYPE_F16 || t == VKL_TYPE_BF16;
}

bool vkl_cpu_op_supported(const vkl_tensor *node) {
    const vkl_tensor *a = node->src[0];
    switch (node->op) {
    case VKL_OP_GET_ROWS:
    case VKL_OP_MUL_MAT: return vkl_type_get(a->type) != NULL;
    case VKL_OP_RMS_NORM:
    case VKL_OP_ROPE:
    case VKL_OP_ATTENTION:
    case VKL_OP_SWIGLU:
    case VKL_OP_ADD: return true;
    case VKL_OP_COPY: return is_float_type(a->type) && is_float_type(node->type);
    default: return false;
    }
}

/* The K/V cache store shared by both attention versions: rows of k and v go to their positions. */
static void attention_store(const vkl_tensor *node, int64_t t0, int64_t t1) {
    const vkl_tensor *k = node->src[1], *v = node->src[2], *kc = node->src[3], *vc = node->src[4];
    const int32_t *pos = node->src[5]->data;
    for (int64_t t = t0; t < t1; t++) {
        if (pos[t] < 0 || pos[t] >= kc->ne[1]) continue; /* the context rejects such positions */
        row_from_f32(kc->type, FROW(k, t), ROW(kc, pos[t]), k->ne[0]);
        row_from_f32(vc->type, FROW(v, t), ROW(vc, pos[t]), v->ne[0]);
    }
}

/* ---- reference kernels ------------------------------------------------------------------- */

static void ref_get_rows(const vkl_tensor *node) {
    const vkl_tensor *table = node->src[0];
    const int32_t *ids = node->src[1]->data;
    const vkl_type_traits *tr = vkl_type_get(table->type);
    for (int64_t t = 0; t < node->ne[1]; t++) {
        float *out = FROW(node, t);
        if (ids[t] < 0 || ids[t] >= table->ne[1]) memset(out, 0, (size_t)node->ne[0] * sizeof(float));
        else tr->to_f32(ROW(table, ids[t]), out, table->ne[0]);
    }
}

static void ref_rms_norm(const vkl_tensor *node) {
    const vkl_tensor *x = node->src[0];
    const float *w = node->src[1]->data;
    int64_t n = x->ne[0];
    for (int64_t t = 0; t < x->ne[1]; t++) {
        const float *xr = FROW(x, t);
        double ss = 0;
        for (int64_t i = 0; i < n; i++) ss += (double)xr[i] * xr[i];
        double scale = 1.0 / sqrt(ss / (double)n + node->fp[0]);
        float *out = FROW(node, t);
        for (int64_t i = 0; i < n; i++) out[i] = (float)(xr[i] * scale * w[i]);
    }
}

static void ref_mul_mat(const vkl_tensor *node) {
    const vkl_tensor *w = node->src[0], *x = node->src[1];
    vkl_matmul_ref(w->type, w->data, w->nb[1], w->ne[1], w->ne[0], x->data, x->ne[1], node->data);
}

/* Rotation of pair (i0, i1) of a head for pair index i of n_rot/2. Normal layout: adjacent
 * elements (2i, 2i+1); NeoX layout: (i, i + n_rot/2). */
static void rope_pair_index(int mode, int i, int n_rot, int *i0, int *i1) {
    if (mode == VKL_ROPE_NEOX) *i0 = i, *i1 = i + n_rot / 2;
    else *i0 = 2 * i, *i1 = 2 * i + 1;
}

static void ref_rope(const vkl_tensor *node) {
    const vkl_tensor *x = node->src[0];
    const int32_t *pos = node->src[1]->data;
    int hd = node->ip[0], n_rot = node->ip[1], mode = node->ip[2];
    double base = node->fp[0], scale = node->fp[1];
    int64_t n_heads = x->ne[0] / hd;
    for (int64_t t = 0; t < x->ne[1]; t++) {
        const float *in = FROW(x, t);
        float *out = FROW(node, t);
        memcpy(out, in, (size_t)x->ne[0] * sizeof(float));
        for (int64_t h = 0; h < n_heads; h++) {
            for (int i = 0; i < n_rot / 2; i++) {
                double theta = pos[t] * scale * pow(base, -2.0 * i / n_rot);
                double c = cos(theta), s = sin(theta);
                int i0, i1;
                rope_pair_index(mode, i, n_rot, &i0, &i1);
                double a = in[h * hd + i0], b = in[h * hd + i1];
                out[h * hd + i0] = (float)(a * c - b * s);
                out[h * hd + i1] = (float)(a * s + b * c);
            }
        }
    }
}

static double cache_value(const vkl_tensor *c, int64_t row, int64_t i) {
    const void *r = ROW(c, row);
    return c->type == VKL_TYPE_F16 ? vkl_f16_to_f32(((const uint16_t *)r)[i]) : ((const float *)r)[i];
}

static void ref_attention(const vkl_tensor *node) {
    const vkl_tensor *q = node->src[0], *kc = node->src[3], *vc = node->src[4];
    const int32_t *pos = node->src[5]->data;
    int hd = node->ip[0], n_head = node->ip[1], group = n_head / node->ip[2];
    attention_store(node, 0, node->ne[1]);
    double scores[1 << 12], *sc = scores; /* n_ctx beyond 4096: heap */
    double *heap = NULL;
    if (kc->ne[1] > (int64_t)VKL_ARRAY_LEN(scores)) {
        heap = vkl_malloc((size_t)kc->ne[1] * sizeof(double), NULL);
        if (!heap) {
            memset(node->data, 0, vkl_tensor_nbytes(node)); /* out of memory in the oracle: zeros */
            return;
        }
        sc = heap;
    }
    for (int64_t t = 0; t < node->ne[1]; t++) {
        int64_t n_kv = VKL_MIN((int64_t)pos[t] + 1, kc->ne[1]);
        for (int h = 0; h < n_head; h++) {
            const float *qh = FROW(q, t) + (size_t)h * hd;
            int64_t off = (int64_t)(h / group) * hd;
            double mx = -INFINITY;
            for (int64_t j = 0; j < n_kv; j++) {
                double s = 0;
                for (int d = 0; d < hd; d++) s += qh[d] * cache_value(kc, j, off + d);
                sc[j] = s * node->fp[0];
                if (sc[j] > mx) mx = sc[j];
            }
            double sum = 0;
            for (int64_t j = 0; j < n_kv; j++) sum += sc[j] = exp(sc[j] - mx);
            float *out = FROW(node, t) + (size_t)h * hd;
            for (int d = 0; d < hd; d++) {
                double acc = 0;
                for (int64_t j = 0; j < n_kv; j++) acc += sc[j] * cache_value(vc, j, off + d);
                out[d] = (float)(acc / sum);
            }
        }
    }
    free(heap);
}

static void ref_swiglu(const vkl_tensor *node) {
    const vkl_tensor *g = node->src[0], *u = node->src[1];
    for (int64_t t = 0; t < node->ne[1]; t++) {
        const float *gr = FROW(g, t), *ur = FROW(u, t);
        float *out = FROW(node, t);
        for (int64_t i = 0; i < node->ne[0]; i++) out[i] = (float)(gr[i] / (1.0 + exp(-(double)gr[i])) * ur[i]);
    }
}

static void ref_add(const vkl_tensor *node) {
    const vkl_tensor *a = node->src[0], *b = node->src[1];
    for (int64_t t = 0; t < node->ne[1]; t++) {
        const float *ar = FROW(a, t), *br = FROW(b, t);
        float *out = FROW(node, t);
        for (int64_t i = 0; i < node->ne[0]; i++) out[i] = ar[i] + br[i];
    }
}

static void ref_copy(const vkl_tensor *node) {
    const vkl_tensor *a = node->src[0];
    const vkl_type_traits *ta = vkl_type_get(a->type), *tb = vkl_type_get(node->type);
    float tmp[256];
    for (int64_t t = 0; t < node->ne[1]; t++) {
        for (int64_t i = 0; i < node->ne[0]; i += 256) {
            int64_t n = VKL_MIN(256, node->ne[0] - i);
            ta->to_f32(ROW(a, t) + (size_t)i * a->nb[0], tmp, n);
            tb->from_f32(tmp, ROW(node, t) + (size_t)i * node->nb[0], n);
        }
    }
}

void vkl_cpu_op_ref(const vkl_tensor *node) {
    switch (node->op) {
    case VKL_OP_GET_ROWS: ref_get_rows(node); break;
    case VKL_OP_RMS_NORM: ref_rms_norm(node); break;
    case VKL_OP_MUL_MAT: ref_mul_mat(node); break;
    case VKL_OP_ROPE: ref_rope(node); break;
    case VKL_OP_ATTENTION: ref_attention(node); break;
    case VKL_OP_SWIGLU: ref_swiglu(node); break;
    case VKL_OP_ADD: ref_add(node); break;
    case VKL_OP_COPY: ref_copy(node); break;
    default: break;
    }
}

/* ---- fast kernels ------------------------------------------------------------------------ */

typedef struct op_task {
    const vkl_tensor *node;
    char *work;
    size_t work_per_thread;
    bool simd; /* the AVX-512 kernels of cpu_ops_avx512.c may be used */
} op_task;

static void fast_get_rows(void *ctx, int ith, int nth) {
    const op_task *c = ctx;
    const vkl_tensor *node = c->node, *table = node->src[0];
    const int32_t *ids = node->src[1]->data;
    const vkl_type_traits *tr = vkl_type_get(table->type);
    int64_t lo, hi;
    split(node->ne[1], ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++) {
        float *out = FROW(node, t);
        if (ids[t] < 0 || ids[t] >= table->ne[1]) memset(out, 0, (size_t)node->ne[0] * sizeof(float));
        else if (table->type == VKL_TYPE_F16) row_to_f32(table->type, ROW(table, ids[t]), out, table->ne[0]);
        else tr->to_f32(ROW(table, ids[t]), out, table->ne[0]);
    }
}

static void fast_rms_norm(void *ctx, int ith, int nth) {
    const op_task *c = ctx;
    const vkl_tensor *node = c->node, *x = node->src[0];
    const float *w = node->src[1]->data;
    int64_t n = x->ne[0], lo, hi;
    split(x->ne[1], ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++) {
        const float *xr = FROW(x, t);
        float acc[8] = {0};
        int64_t i = 0;
        for (; i + 8 <= n; i += 8)
            for (int j = 0; j < 8; j++) acc[j] += xr[i + j] * xr[i + j];
        float ss = 0;
        for (; i < n; i++) ss += xr[i] * xr[i];
        for (int j = 0; j < 8; j++) ss += acc[j];
        float scale = 1.0f / sqrtf(ss / (float)n + node->fp[0]);
        float *out = FROW(node, t);
        for (i = 0; i + 8 <= n; i += 8)
            for (int j = 0; j < 8; j++) out[i + j] = xr[i + j] * scale * w[i + j];
        for (; i < n; i++) out[i] = xr[i] * scale * w[i];
    }
}

static void fast_rope(void *ctx, int ith, int nth) {
    const op_task *c = ctx;
    const vkl_tensor *node = c->node, *x = node->src[0];
    const int32_t *pos = node->src[1]->data;
    int hd = node->ip[0], n_rot = node->ip[1], mode = node->ip[2], half = n_rot / 2;
    int64_t n_heads = x->ne[0] / hd, lo, hi;
    float *cs = (float *)(c->work + c->work_per_thread * (size_t)ith); /* cos, sin per pair */
    split(x->ne[1], ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++) {
        for (int i = 0; i < half; i++) {
            double theta = pos[t] * (double)node->fp[1] * pow((double)node->fp[0], -2.0 * i / n_rot);
            cs[2 * i] = (float)cos(theta);
            cs[2 * i + 1] = (float)sin(theta);
        }
        const float *in = FROW(x, t);
        float *out = FROW(node, t);
        if (out != in) memcpy(out, in, (size_t)x->ne[0] * sizeof(float));
        for (int64_t h = 0; h < n_heads; h++) {
            float *o = out + h * hd;
            if (mode == VKL_ROPE_NEOX) {
                for (int i = 0; i < half; i++) {
                    float a = o[i], b = o[i + half];
                    o[i] = a * cs[2 * i] - b * cs[2 * i + 1];
                    o[i + half] = a * cs[2 * i + 1] + b * cs[2 * i];
                }
            } else {
                for (int i = 0; i < half; i++) {
                    float a = o[2 * i], b = o[2 * i + 1];
                    o[2 * i] = a * cs[2 * i] - b * cs[2 * i + 1];
                    o[2 * i + 1] = a * cs[2 * i + 1] + b * cs[2 * i];
                }
            }
        }
    }
}

static void fast_attention_store(void *ctx, int ith, int nth) {
    const op_task *c = ctx;
    int64_t lo, hi;
    split(c->node->ne[1], ith, nth, &lo, &hi);
    attention_store(c->node, lo, hi);
}

static inline float dot_f32(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    float s = 0;
    for (; i < n; i++) s += a[i] * b[i];
    for (int j = 0; j < 8; j++) s += acc[j];
    return s;
}


/* y += a * x (restrict: lets the compiler vectorise without alias checks). */
static inline void axpy(float *restrict y, const float *restrict x, float a, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) /* fixed-width blocks: vectorised at -O2 */
        for (int j = 0; j < 8; j++) y[i + j] += a * x[i + j];
    for (; i < n; i++) y[i] += a * x[i];
}

/* Attention works on tiles of query rows (token, head) that share one KV head: each K and V row
 * is converted to f32 once per tile and used by every row of it. A tile is up to T tokens x H
 * heads of one GQA group; H shrinks when there are fewer tiles than threads (one-token decode). */
typedef struct attn_tiling {
    int rows_max; /* T * H bound: the per-thread score rows */
    int H, T, n_hsub, n_tiles;
} attn_tiling;

static int attn_rows_max(const vkl_tensor *node) {
    int64_t r = ((int64_t)1 << 20) / node->src[3]->ne[1]; /* at most 4 MiB of scores per thread */
    return (int)VKL_MAX(1, VKL_MIN(64, r));
}

static void attn_tile(const vkl_tensor *node, int nth, attn_tiling *a) {
    int group = node->ip[1] / node->ip[2], n_kvh = node->ip[2];
    int64_t n = node->ne[1];
    a->rows_max = attn_rows_max(node);
    a->H = VKL_MIN(group, a->rows_max);
    a->T = VKL_MAX(1, a->rows_max / a->H);
    for (;;) {
        a->n_hsub = (group + a->H - 1) / a->H;
        a->n_tiles = (int)((n + a->T - 1) / a->T);
        if (a->H == 1 || (int64_t)n_kvh * a->n_hsub * a->n_tiles >= nth) break;
        a->H = (a->H + 1) / 2;
    }
}

/* Row stride (floats) of the AVX-512 kernel's transposed query and score rows. */
static int attn_stride(const vkl_tensor *node) { return (attn_rows_max(node) + 15) / 16 * 16; }

/* Scores (rows_max x n_ctx, or n_ctx x stride for the AVX-512 kernel), then one converted K and
 * V row, or the transposed queries (hd x stride). */
static size_t attn_work_floats(const vkl_tensor *node) {
    const size_t n_ctx = (size_t)node->src[3]->ne[1], hd = (size_t)node->ip[0], stride = (size_t)attn_stride(node);
    return stride * n_ctx + VKL_MAX(2 * hd, stride * hd);
}

/* Whether the AVX-512 attention kernel handles this node (and this CPU has it). */
static bool attn_use_avx512(const vkl_tensor *node) {
    const vkl_type kt = node->src[3]->type, vt = node->src[4]->type;
    const int hd = node->ip[0];
    return hd % 16 == 0 && hd <= 256 && (kt == VKL_TYPE_F16 || kt == VKL_TYPE_F32) &&
           (vt == VKL_TYPE_F16 || vt == VKL_TYPE_F32) && strcmp(vkl_cpu_simd_level(), "avx512") == 0;
}

static void fast_attention(void *ctx, int ith, int nth) {
    const op_task *c = ctx;
    const vkl_tensor *node = c->node, *q = node->src[0], *kc = node->src[3], *vc = node->src[4];
    const int32_t *pos = node->src[5]->data;
    const int hd = node->ip[0], group = node->ip[1] / node->ip[2];
    const int64_t n_ctx = kc->ne[1], n = node->ne[1];
    const float scale = node->fp[0];
    attn_tiling a;
    attn_tile(node, nth, &a);
    const bool simd = attn_use_avx512(node);
    const int stride = attn_stride(node);
    float *sc = (float *)(c->work + c->work_per_thread * (size_t)ith); /* the scores */
    float *kf = sc + (size_t)stride * n_ctx, *vf = kf + hd;           /* one converted K and V row */
    const float *qp[64];
    float *op[64];
    int64_t lim[64]; /* last cache position row r attends to */
    int64_t n_items = (int64_t)node->ip[2] * a.n_hsub * a.n_tiles, lo, hi;
    split(n_items, ith, nth, &lo, &hi);
    for (int64_t item = lo; item < hi; item++) {
        int g = (int)(item / ((int64_t)a.n_hsub * a.n_tiles));
        int64_t rem = item % ((int64_t)a.n_hsub * a.n_tiles);
        int hs = (int)(rem / a.n_tiles), tile = (int)(rem % a.n_tiles);
        int64_t t0 = (int64_t)tile * a.T, t1 = VKL_MIN(n, t0 + a.T);
        int h0 = g * group + hs * a.H, h1 = VKL_MIN(g * group + group, h0 + a.H), hn = h1 - h0;
        int R = (int)(t1 - t0) * hn;
        int64_t jmax = 0;
        for (int r = 0; r < R; r++) {
            int64_t t = t0 + r / hn;
            int h = h0 + r % hn;
            qp[r] = FROW(q, t) + (size_t)h * hd;
            op[r] = FROW(node, t) + (size_t)h * hd;
            lim[r] = VKL_MIN((int64_t)pos[t], n_ctx - 1);
            jmax = VKL_MAX(jmax, lim[r] + 1);
        }
        const size_t off = (size_t)g * hd;
        if (simd) {
            const size_t kes = kc->type == VKL_TYPE_F16 ? 2 : 4, ves = vc->type == VKL_TYPE_F16 ? 2 : 4;
            const vkl_attn_tile at = {.hd = hd, .R = R, .stride = stride, .q = qp, .o = op, .lim = lim, .jmax = jmax,
                                      .k = (const uint8_t *)ROW(kc, 0) + off * kes, .v = (const uint8_t *)ROW(vc, 0) + off * ves,
                                      .ks = kc->nb[1], .vs = vc->nb[1], .k_f16 = kc->type == VKL_TYPE_F16,
                                      .v_f16 = vc->type == VKL_TYPE_F16, .scale = scale, .qt = kf, .st = sc};
            vkl_attn_tile_avx512(&at);
            continue;
        }
        for (int64_t j = 0; j < jmax; j++) {
            const float *k = (const float *)ROW(kc, j) + off;
            if (kc->type == VKL_TYPE_F16) {
                f16_row((const uint16_t *)ROW(kc, j) + off, kf, hd);
                k = kf;
            }
            for (int r = 0; r < R; r++) sc[r * n_ctx + j] = j <= lim[r] ? dot_f32(qp[r], k, hd) * scale : -INFINITY;
        }
        for (int r = 0; r < R; r++) { /* softmax over 0..lim[r], normalised in place */
            float *s = sc + r * n_ctx, mx = -INFINITY, sum = 0;
            for (int64_t j = 0; j <= lim[r]; j++) mx = s[j] > mx ? s[j] : mx;
            for (int64_t j = 0; j <= lim[r]; j++) sum += s[j] = expf(s[j] - mx);
            float inv = 1.0f / sum;
            for (int64_t j = 0; j <= lim[r]; j++) s[j] *= inv;
            memset(op[r], 0, (size_t)hd * sizeof(float));
        }
        for (int64_t j = 0; j < jmax; j++) {
            const float *v = (const float *)ROW(vc, j) + off;
            if (vc->type == VKL_TYPE_F16) {
                f16_row((const uint16_t *)ROW(vc, j) + off, vf, hd);
                v = vf;
            }
            for (int r = 0; r < R; r++) {
                if (j > lim[r]) continue;
                axpy(op[r], v, sc[r * n_ctx + j], hd);
            }
        }
    }
}

static void fast_swiglu(void *ctx, int ith, int nth) {
    const op_task *c = ctx;
    const vkl_tensor *node = c->node, *g = node->src[0], *u = node->src[1];
    int64_t lo, hi;
    split(node->ne[1], ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++) {
        const float *gr = FROW(g, t), *ur = FROW(u, t);
        float *out = FROW(node, t);
        if (c->simd) {
            vkl_swiglu_avx512(gr, ur, out, node->ne[0]);
            continue;
        }
        for (int64_t i = 0; i < node->ne[0]; i++) out[i] = gr[i] / (1.0f + expf(-gr[i])) * ur[i];
    }
}

static void fast_add(void *ctx, int ith, int nth) {
    const op_task *c = ctx;
    const vkl_tensor *node = c->node, *a = node->src[0], *b = node->src[1];
    int64_t lo, hi;
    split(node->ne[1], ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++) {
        const float *ar = FROW(a, t), *br = FROW(b, t);
        float *out = FROW(node, t);
        int64_t i = 0, k = node->ne[0];
        for (; i + 8 <= k; i += 8)
            for (int j = 0; j < 8; j++) out[i + j] = ar[i + j] + br[i + j];
        for (; i < k; i++) out[i] = ar[i] + br[i];
    }
}

static void fast_copy(void *ctx, int ith, int nth) {
    const op_task *c = ctx;
    const vkl_tensor *node = c->node, *a = node->src[0];
    float *tmp = (float *)(c->work + c->work_per_thread * (size_t)ith);
    int64_t lo, hi;
    split(node->ne[1], ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++) {
        if (a->type == VKL_TYPE_F32) {
            row_from_f32(node->type, FROW(a, t), ROW(node, t), node->ne[0]);
        } else {
            row_to_f32(a->type, ROW(a, t), tmp, node->ne[0]);
            row_from_f32(node->type, tmp, ROW(node, t), node->ne[0]);
        }
    }
}

/* Per-thread scratch of each fast kernel (bytes, 64-byte multiples). */
static size_t per_thread_work(const vkl_tensor *node) {
    size_t n = 0;
    switch (node->op) {
    case VKL_OP_ROPE: n = (size_t)node->ip[1] * sizeof(float); break;
    case VKL_OP_ATTENTION: n = attn_work_floats(node) * sizeof(float); break;
    case VKL_OP_COPY: n = (size_t)node->ne[0] * sizeof(float); break;
    default: break;
    }
    return VKL_ALIGN_UP(n, 64);
}

size_t vkl_cpu_op_work_size(const vkl_tensor *node, int n_threads) {
    if (node->op == VKL_OP_MUL_MAT)
        return vkl_matmul_scratch_size(node->src[0]->type, node->src[0]->ne[0], node->src[1]->ne[1]);
    return per_thread_work(node) * (size_t)VKL_MAX(n_threads, 1);
}

void vkl_cpu_mul_mat_group(vkl_threadpool *tp, vkl_tensor *const *nodes, int n, void *work) {
    vkl_matmul_desc d[VKL_MATMUL_GROUP_MAX];
    n = VKL_MIN(n, VKL_MATMUL_GROUP_MAX);
    for (int i = 0; i < n; i++) {
        const vkl_tensor *w = nodes[i]->src[0];
        d[i] = (vkl_matmul_desc){.W = w->data, .w_row_stride = w->nb[1], .M = w->ne[1], .y = nodes[i]->data};
    }
    const vkl_tensor *w0 = nodes[0]->src[0], *x = nodes[0]->src[1];
    vkl_matmul_group(tp, w0->type, n, d, w0->ne[0], x->data, x->ne[1], work);
}

void vkl_cpu_op_fast(vkl_threadpool *tp, const vkl_tensor *node, void *work) {
    op_task task = {node, work, per_thread_work(node), strcmp(vkl_cpu_simd_level(), "avx512") == 0};
    switch (node->op) {
    case VKL_OP_GET_ROWS: run_elementwise(tp, node, fast_get_rows, &task); break;
    case VKL_OP_RMS_NORM: run_elementwise(tp, node, fast_rms_norm, &task); break;
    case VKL_OP_MUL_MAT: {
        const vkl_tensor *w = node->src[0], *x = node->src[1];
        vkl_matmul(tp, w->type, w->data, w->nb[1], w->ne[1], w->ne[0], x->data, x->ne[1], node->data, work);
        break;
    }
    case VKL_OP_ROPE: run_elementwise(tp, node, fast_rope, &task); break;
    case VKL_OP_ATTENTION:
        run_elementwise(tp, node, fast_attention_store, &task);
        run_threads(tp, fast_attention, &task);
        break;
    case VKL_OP_SWIGLU: run_elementwise(tp, node, fast_swiglu, &task); break;
    case VKL_OP_ADD: run_elementwise(tp, node, fast_add, &task); break;
    case VKL_OP_COPY: run_elementwise(tp, node, fast_copy, &task); break;
    default: break;
    }
}
