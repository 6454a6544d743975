/* Portable matmul kernels (any CPU) and the activation quantizers. The 32-block formats and
 * Q4_K/Q6_K use integer dot products against 8-bit activations (the same arithmetic as the SIMD
 * kernels); the remaining K-quants dequantize one 256-block at a time and use f32 activations. */
#include <math.h>
#include <string.h>

#include "cpu/matmul_internal.h"

/* ---- activation quantization -------------------------------------------------------------- */

size_t vkl_act_row_size(vkl_act_format f, int64_t K) {
    switch (f) {
    case VKL_ACT_Q8_32:
    case VKL_ACT_Q8_32G: return (size_t)(K / 32) * (2 * sizeof(float) + 32);
    case VKL_ACT_Q8_K: return (size_t)(K / VKL_QK_K) * sizeof(vkl_block_q8_K);
    case VKL_ACT_F32: break;
    }
    return (size_t)K * sizeof(float);
}

void vkl_quantize_act_q8_32(const float *x, void *dst, int64_t K) {
    const int64_t nb = K / 32;
    float *d = dst, *s = d + nb;
    int8_t *q = (int8_t *)(s + nb);
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * 32;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(xb[j]));
        const float di = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            int v = (int)lrintf(xb[j] * id);
            v = v > 127 ? 127 : (v < -127 ? -127 : v);
            q[i * 32 + j] = (int8_t)v;
            sum += v;
        }
        d[i] = di;
        s[i] = di * (float)sum;
    }
}

void vkl_quantize_act_q8_K(const float *x, void *dst, int64_t K) {
    vkl_block_q8_K *y = dst;
    for (int64_t i = 0; i < K / VKL_QK_K; i++) {
        const float *xb = x + i * VKL_QK_K;
        float amax = 0.0f;
        for (int j = 0; j < VKL_QK_K; j++) amax = fmaxf(amax, fabsf(xb[j]));
        const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        for (int j = 0; j < VKL_QK_K; j++) {
            int v = (int)lrintf(xb[j] * id);
            y[i].qs[j] = (int8_t)(v > 127 ? 127 : (v < -127 ? -127 : v));
        }
        for (int g = 0; g < VKL_QK_K / 16; g++) {
            int sum = 0;
            for (int j = 0; j < 16; j++) sum += y[i].qs[g * 16 + j];
            y[i].bsums[g] = (int16_t)sum;
        }
        y[i].d = amax / 127.0f;
    }
}

/* ---- dot products of one weight row with one activation row -------------------------------- */

static float dot_f32(int64_t K, const void *w, const void *x) {
    const float *a = w, *b = x;
    float acc[4] = {0};
    int64_t k = 0;
    for (; k + 4 <= K; k += 4)
        for (int j = 0; j < 4; j++) acc[j] += a[k + j] * b[k + j];
    for (; k < K; k++) acc[0] += a[k] * b[k];
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

static float dot_f16(int64_t K, const void *w, const void *x) {
    const uint16_t *a = w;
    const float *b = x;
    float acc = 0.0f;
    for (int64_t k = 0; k < K; k++) acc += vkl_f16_to_f32(a[k]) * b[k];
    return acc;
}

static float dot_bf16(int64_t K, const void *w, const void *x) {
    const uint16_t *a = w;
    const float *b = x;
    float acc = 0.0f;
    for (int64_t k = 0; k < K; k++) acc += vkl_bf16_to_f32(a[k]) * b[k];
    return acc;
}

/* Views of a Q8_32 activation row. */
#define Q8_32_VIEW(X, nb)                       \
    const float *xd = (const float *)(X);      \
    const float *xs = xd + (nb);               \
    const int8_t *xq = (const int8_t *)(xs + (nb))

static float dot_q4_0(int64_t K, const void *w, const void *x) {
    const int64_t nb = K / 32;
    const vkl_block_q4_0 *b = w;
    Q8_32_VIEW(x, nb);
    float acc = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const int8_t *q = xq + i * 32;
        int isum = 0;
        for (int j = 0; j < 16; j++) isum += (b[i].qs[j] & 15) * q[j] + (b[i].qs[j] >> 4) * q[j + 16];
        const float dw = vkl_f16_to_f32(b[i].d);
        acc += dw * (xd[i] * (float)isum - 8.0f * xs[i]); /* weights are d * (q - 8) */
    }
    return acc;
}

static float dot_q4_1(int64_t K, const void *w, const void *x) {
    const int64_t nb = K / 32;
    const vkl_block_q4_1 *b = w;
    Q8_32_VIEW(x, nb);
    float acc = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const int8_t *q = xq + i * 32;
        int isum = 0;
        for (int j = 0; j < 16; j++) isum += (b[i].qs[j] & 15) * q[j] + (b[i].qs[j] >> 4) * q[j + 16];
        acc += vkl_f16_to_f32(b[i].d) * xd[i] * (float)isum + vkl_f16_to_f32(b[i].m) * xs[i];
    }
    return acc;
}

/* 5-bit value of element j (0..31) of a q5 block: low nibble plus bit j of qh. */
static inline int q5_val(const uint8_t *qs, uint32_t qh, int j) {
    const int lo = j < 16 ? (qs[j] & 15) : (qs[j - 16] >> 4);
    return lo | (int)(((qh >> j) & 1u) << 4);
}

static float dot_q5_0(int64_t K, const void *w, const void *x) {
    const int64_t nb = K / 32;
    const vkl_block_q5_0 *b = w;
    Q8_32_VIEW(x, nb);
    float acc = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        uint32_t qh;
        memcpy(&qh, b[i].qh, 4);
        int isum = 0;
        for (int j = 0; j < 32; j++) isum += q5_val(b[i].qs, qh, j) * xq[i * 32 + j];
        const float dw = vkl_f16_to_f32(b[i].d);
        acc += dw * (xd[i] * (float)isum - 16.0f * xs[i]);
    }
    return acc;
}

static float dot_q5_1(int64_t K, const void *w, const void *x) {
    const int64_t nb = K / 32;
    const vkl_block_q5_1 *b = w;
    Q8_32_VIEW(x, nb);
    float acc = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        uint32_t qh;
        memcpy(&qh, b[i].qh, 4);
        int isum = 0;
        for (int j = 0; j < 32; j++) isum += q5_val(b[i].qs, qh, j) * xq[i * 32 + j];
        acc += vkl_f16_to_f32(b[i].d) * xd[i] * (float)isum + vkl_f16_to_f32(b[i].m) * xs[i];
    }
    return acc;
}

static float dot_q8_0(int64_t K, const void *w, const void *x) {
    const int64_t nb = K / 32;
    const vkl_block_q8_0 *b = w;
    Q8_32_VIEW(x, nb);
    float acc = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int isum = 0;
        for (int j = 0; j < 32; j++) isum += b[i].qs[j] * xq[i * 32 + j];
        acc += vkl_f16_to_f32(b[i].d) * xd[i] * (float)isum;
    }
    return acc;
}

/* Q4_K scale/min j (0..7) from the 12 packed bytes (6 bits each). */
static inline void q4k_scale_min(int j, const uint8_t *s, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

static float dot_q4_K(int64_t K, const void *w, const void *x) {
    const vkl_block_q4_K *b = w;
    const vkl_block_q8_K *a = x;
    float acc = 0.0f;
    for (int64_t i = 0; i < K / VKL_QK_K; i++) {
        int sum_q = 0, sum_m = 0;
        for (int sb = 0; sb < 8; sb++) {
            int sc, m;
            q4k_scale_min(sb, b[i].scales, &sc, &m);
            const uint8_t *qs = b[i].qs + (sb / 2) * 32;
            const int shift = (sb & 1) * 4;
            const int8_t *q = a[i].qs + sb * 32;
            int s = 0;
            for (int j = 0; j < 32; j++) s += ((qs[j] >> shift) & 15) * q[j];
            sum_q += sc * s;
            sum_m += m * (a[i].bsums[2 * sb] + a[i].bsums[2 * sb + 1]);
        }
        acc += a[i].d * (vkl_f16_to_f32(b[i].d) * (float)sum_q - vkl_f16_to_f32(b[i].dmin) * (float)sum_m);
    }
    return acc;
}

static float dot_q6_K(int64_t K, const void *w, const void *x) {
    const vkl_block_q6_K *b = w;
    const vkl_block_q8_K *a = x;
    float acc = 0.0f;
    for (int64_t i = 0; i < K / VKL_QK_K; i++) {
        int sum = 0;
        for (int half = 0; half < 2; half++) {
            const uint8_t *ql = b[i].ql + half * 64, *qh = b[i].qh + half * 32;
            const int8_t *sc = b[i].scales + half * 8;
            const int8_t *q = a[i].qs + half * 128;
            /* 4 groups of 32 (l = 0..31): elements l, l+32, l+64, l+96 of this half */
            for (int g = 0; g < 4; g++) {
                int s[2] = {0, 0};
                for (int l = 0; l < 32; l++) {
                    const int lo = g & 1 ? ql[l + 32] : ql[l];
                    const int v = ((g < 2 ? lo & 15 : lo >> 4) | (((qh[l] >> (2 * g)) & 3) << 4)) - 32;
                    s[l / 16] += v * q[g * 32 + l];
                }
                sum += sc[2 * g] * s[0] + sc[2 * g + 1] * s[1];
            }
        }
        acc += a[i].d * vkl_f16_to_f32(b[i].d) * (float)sum;
    }
    return acc;
}

typedef float (*dot_fn)(int64_t K, const void *w, const void *x);

/* Rows outer, tokens inner: the weight row stays in L1 while the tile's tokens pass over it. */
static inline void gemm_rows(dot_fn dot, int64_t K, const void *W, size_t ws, int64_t nr, const void *X,
                             size_t xs, int64_t nt, float *y, int64_t ys) {
    for (int64_t r = 0; r < nr; r++)
        for (int64_t t = 0; t < nt; t++)
            y[t * ys + r] = dot(K, (const uint8_t *)W + r * ws, (const uint8_t *)X + t * xs);
}

#define GEMM_WRAP(name)                                                                          \
    static void gemm_##name(int64_t K, const void *W, size_t ws, int64_t nr, const void *X,      \
                            size_t xs, int64_t nt, float *y, int64_t ys) {                       \
        gemm_rows(dot_##name, K, W, ws, nr, X, xs, nt, y, ys);                                   \
    }
GEMM_WRAP(f32)
GEMM_WRAP(f16)
GEMM_WRAP(bf16)
GEMM_WRAP(q4_0)
GEMM_WRAP(q4_1)
GEMM_WRAP(q5_0)
GEMM_WRAP(q5_1)
GEMM_WRAP(q8_0)
GEMM_WRAP(q4_K)
GEMM_WRAP(q6_K)
#undef GEMM_WRAP

/* Other K-quants: dequantize each 256-block once (reference to_f32) and apply it to every token. */
static void gemm_dequant_k(vkl_type type, int64_t K, const void *W, size_t ws, int64_t nr, const void *X,
                           size_t xs, int64_t nt, float *y, int64_t ys) {
    const vkl_type_traits *tt = vkl_type_get(type);
    float buf[VKL_QK_K];
    for (int64_t r = 0; r < nr; r++) {
        float acc[VKL_GEMM_MAX_T] = {0};
        const uint8_t *row = (const uint8_t *)W + r * ws;
        for (int64_t i = 0; i < K / VKL_QK_K; i++) {
            tt->to_f32(row + i * tt->type_size, buf, VKL_QK_K);
            for (int64_t t = 0; t < nt; t++)
                acc[t] += dot_f32(VKL_QK_K, buf, (const uint8_t *)X + t * xs + i * VKL_QK_K * sizeof(float));
        }
        for (int64_t t = 0; t < nt; t++) y[t * ys + r] = acc[t];
    }
}

#define GEMM_DQ(T, name)                                                                         \
    static void gemm_##name(int64_t K, const void *W, size_t ws, int64_t nr, const void *X,      \
                            size_t xs, int64_t nt, float *y, int64_t ys) {                       \
        gemm_dequant_k(T, K, W, ws, nr, X, xs, nt, y, ys);                                       \
    }
GEMM_DQ(VKL_TYPE_Q2_K, q2_K)
GEMM_DQ(VKL_TYPE_Q3_K, q3_K)
GEMM_DQ(VKL_TYPE_Q5_K, q5_K)
#undef GEMM_DQ

void vkl_gemm_fill_scalar(vkl_kernel_set *ks) {
    vkl_gemm_kernel *tab = ks->k;
    ks->quant_q8_32 = vkl_quantize_act_q8_32;
    ks->quant_q8_K = vkl_quantize_act_q8_K;
    tab[VKL_TYPE_F32] = (vkl_gemm_kernel){gemm_f32, VKL_ACT_F32};
    tab[VKL_TYPE_F16] = (vkl_gemm_kernel){gemm_f16, VKL_ACT_F32};
    tab[VKL_TYPE_BF16] = (vkl_gemm_kernel){gemm_bf16, VKL_ACT_F32};
    tab[VKL_TYPE_Q4_0] = (vkl_gemm_kernel){gemm_q4_0, VKL_ACT_Q8_32};
    tab[VKL_TYPE_Q4_1] = (vkl_gemm_kernel){gemm_q4_1, VKL_ACT_Q8_32};
    tab[VKL_TYPE_Q5_0] = (vkl_gemm_kernel){gemm_q5_0, VKL_ACT_Q8_32};
    tab[VKL_TYPE_Q5_1] = (vkl_gemm_kernel){gemm_q5_1, VKL_ACT_Q8_32};
    tab[VKL_TYPE_Q8_0] = (vkl_gemm_kernel){gemm_q8_0, VKL_ACT_Q8_32};
    tab[VKL_TYPE_Q2_K] = (vkl_gemm_kernel){gemm_q2_K, VKL_ACT_F32};
    tab[VKL_TYPE_Q3_K] = (vkl_gemm_kernel){gemm_q3_K, VKL_ACT_F32};
    tab[VKL_TYPE_Q4_K] = (vkl_gemm_kernel){gemm_q4_K, VKL_ACT_Q8_K};
    tab[VKL_TYPE_Q5_K] = (vkl_gemm_kernel){gemm_q5_K, VKL_ACT_F32};
    tab[VKL_TYPE_Q6_K] = (vkl_gemm_kernel){gemm_q6_K, VKL_ACT_Q8_K};
}
