/* Reference dequantize/quantize for every supported type: scalar, bit-exact with ggml's block
 * layouts. The quantizers follow the same algorithms as ggml's reference quantizers (the ones
 * llama-quantize uses without an importance matrix), so the simple formats give identical bytes.
 *
 * Every float->int conversion goes through a clamping helper, so non-finite inputs cannot cause
 * undefined behaviour, and all-zero blocks give zero scales (never NaN). */
#include "quant.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "types.h"

/* No fused multiply-add contraction: keeps the quantizers' bytes identical to ggml's reference
 * (gcc does not contract in ISO C mode; clang would on FMA targets). */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#define QK VKL_QK_K

/* Round to nearest, ties to even (as ggml's nearest_int). Adding 1.5*2^23 leaves the rounded
 * integer in the low mantissa bits: no libm call (rintf is one on baseline x86-64), which matters
 * because the K-quant searches round millions of times. The clamp keeps the trick valid; a NaN
 * yields some value in [-2^22, 2^22) (no undefined behaviour), which callers clamp further. */
static inline int round_even(float v) {
    v = v > 4194303.f ? 4194303.f : v;
    v = v < -4194303.f ? -4194303.f : v;
    float t = v + 12582912.f;
    int32_t i;
    memcpy(&i, &t, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* C truncation toward zero of v, clamped into [lo, hi] (NaN gives lo). */
static inline int trunc_clamp(float v, int lo, int hi) {
    if (!(v > (float)lo)) return lo;
    if (v >= (float)hi) return hi;
    return (int)v;
}

static inline float h2f(vkl_half h) { return vkl_f16_to_f32(h); }
static inline vkl_half f2h(float f) { return vkl_f32_to_f16(f); }

/* ---- float formats ------------------------------------------------------------------------- */

void vkl_dequantize_row_f32(const void *src, float *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}
void vkl_quantize_row_f32(const float *src, void *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}
void vkl_dequantize_row_f16(const void *src, float *dst, int64_t n) {
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = vkl_f16_to_f32(s[i]);
}
void vkl_quantize_row_f16(const float *src, void *dst, int64_t n) {
    uint16_t *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = vkl_f32_to_f16(src[i]);
}
void vkl_dequantize_row_bf16(const void *src, float *dst, int64_t n) {
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = vkl_bf16_to_f32(s[i]);
}
void vkl_quantize_row_bf16(const float *src, void *dst, int64_t n) {
    uint16_t *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = vkl_f32_to_bf16(src[i]);
}

/* ---- 32-element block formats -------------------------------------------------------------- */

/* The value with the largest magnitude (keeping its sign); 0 for an all-zero block. */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void min_max(const float *x, int n, float *mn, float *mx) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

void vkl_dequantize_row_q4_0(const void *src, float *dst, int64_t n) {
    const vkl_block_q4_0 *b = src;
    for (int64_t i = 0; i < n / VKL_QK4_0; i++, b++, dst += VKL_QK4_0) {
        const float d = h2f(b->d);
        for (int j = 0; j < VKL_QK4_0 / 2; j++) {
            dst[j] = (float)((b->qs[j] & 0x0F) - 8) * d;
            dst[j + VKL_QK4_0 / 2] = (float)((b->qs[j] >> 4) - 8) * d;
        }
    }
}

/* Scale so the largest-magnitude value maps to -8 (the asymmetric end of [-8, 7]). */
void vkl_quantize_row_q4_0(const float *src, void *dst, int64_t n) {
    vkl_block_q4_0 *b = dst;
    for (int64_t i = 0; i < n / VKL_QK4_0; i++, b++, src += VKL_QK4_0) {
        const float d = signed_absmax(src, VKL_QK4_0) / -8;
        const float id = d ? 1.0f / d : 0.0f;
        b->d = f2h(d);
        for (int j = 0; j < VKL_QK4_0 / 2; j++) {
            int lo = trunc_clamp(src[j] * id + 8.5f, 0, 15);
            int hi = trunc_clamp(src[j + VKL_QK4_0 / 2] * id + 8.5f, 0, 15);
            b->qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

void vkl_dequantize_row_q4_1(const void *src, float *dst, int64_t n) {
    const vkl_block_q4_1 *b = src;
    for (int64_t i = 0; i < n / VKL_QK4_1; i++, b++, dst += VKL_QK4_1) {
        const float d = h2f(b->d), m = h2f(b->m);
        for (int j = 0; j < VKL_QK4_1 / 2; j++) {
            dst[j] = (float)(b->qs[j] & 0x0F) * d + m;
            dst[j + VKL_QK4_1 / 2] = (float)(b->qs[j] >> 4) * d + m;
        }
    }
}

void vkl_quantize_row_q4_1(const float *src, void *dst, int64_t n) {
    vkl_block_q4_1 *b = dst;
    for (int64_t i = 0; i < n / VKL_QK4_1; i++, b++, src += VKL_QK4_1) {
        float mn, mx;
        min_max(src, VKL_QK4_1, &mn, &mx);
        const float d = (mx - mn) / 15;
        const float id = d ? 1.0f / d : 0.0f;
        b->d = f2h(d);
        b->m = f2h(mn);
        for (int j = 0; j < VKL_QK4_1 / 2; j++) {
            int lo = trunc_clamp((src[j] - mn) * id + 0.5f, 0, 15);
            int hi = trunc_clamp((src[j + VKL_QK4_1 / 2] - mn) * id + 0.5f, 0, 15);
            b->qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

/* 5-bit formats: low nibbles as in q4, bit 4 of element j in bit j of the 32-bit qh. */
static inline int q5_value(const uint8_t *qs, uint32_t qh, int j) {
    int nib = j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4);
    return nib | (int)(((qh >> j) & 1u) << 4);
}

static inline void q5_store(uint8_t *qs, uint32_t *qh, int j, int lo, int hi) {
    qs[j] = (uint8_t)((lo & 0x0F) | ((hi & 0x0F) << 4));
    *qh |= (uint32_t)((lo >> 4) & 1) << j;
    *qh |= (uint32_t)((hi >> 4) & 1) << (j + 16);
}

void vkl_dequantize_row_q5_0(const void *src, float *dst, int64_t n) {
    const vkl_block_q5_0 *b = src;
    for (int64_t i = 0; i < n / VKL_QK5_0; i++, b++, dst += VKL_QK5_0) {
        const float d = h2f(b->d);
        uint32_t qh;
        memcpy(&qh, b->qh, 4);
        for (int j = 0; j < VKL_QK5_0; j++) dst[j] = (float)(q5_value(b->qs, qh, j) - 16) * d;
    }
}

void vkl_quantize_row_q5_0(const float *src, void *dst, int64_t n) {
    vkl_block_q5_0 *b = dst;
    for (int64_t i = 0; i < n / VKL_QK5_0; i++, b++, src += VKL_QK5_0) {
        const float d = signed_absmax(src, VKL_QK5_0) / -16;
        const float id = d ? 1.0f / d : 0.0f;
        uint32_t qh = 0;
        b->d = f2h(d);
        for (int j = 0; j < VKL_QK5_0 / 2; j++) {
            int lo = trunc_clamp(src[j] * id + 16.5f, 0, 31);
            int hi = trunc_clamp(src[j + VKL_QK5_0 / 2] * id + 16.5f, 0, 31);
            q5_store(b->qs, &qh, j, lo, hi);
        }
        memcpy(b->qh, &qh, 4);
    }
}

void vkl_dequantize_row_q5_1(const void *src, float *dst, int64_t n) {
    const vkl_block_q5_1 *b = src;
    for (int64_t i = 0; i < n / VKL_QK5_1; i++, b++, dst += VKL_QK5_1) {
        const float d = h2f(b->d), m = h2f(b->m);
        uint32_t qh;
        memcpy(&qh, b->qh, 4);
        for (int j = 0; j < VKL_QK5_1; j++) dst[j] = (float)q5_value(b->qs, qh, j) * d + m;
    }
}

void vkl_quantize_row_q5_1(const float *src, void *dst, int64_t n) {
    vkl_block_q5_1 *b = dst;
    for (int64_t i = 0; i < n / VKL_QK5_1; i++, b++, src += VKL_QK5_1) {
        float mn, mx;
        min_max(src, VKL_QK5_1, &mn, &mx);
        const float d = (mx - mn) / 31;
        const float id = d ? 1.0f / d : 0.0f;
        uint32_t qh = 0;
        b->d = f2h(d);
        b->m = f2h(mn);
        for (int j = 0; j < VKL_QK5_1 / 2; j++) {
            int lo = trunc_clamp((src[j] - mn) * id + 0.5f, 0, 31);
            int hi = trunc_clamp((src[j + VKL_QK5_1 / 2] - mn) * id + 0.5f, 0, 31);
            q5_store(b->qs, &qh, j, lo, hi);
        }
        memcpy(b->qh, &qh, 4);
    }
}

void vkl_dequantize_row_q8_0(const void *src, float *dst, int64_t n) {
    const vkl_block_q8_0 *b = src;
    for (int64_t i = 0; i < n / VKL_QK8_0; i++, b++, dst += VKL_QK8_0) {
        const float d = h2f(b->d);
        for (int j = 0; j < VKL_QK8_0; j++) dst[j] = (float)b->qs[j] * d;
    }
}

void vkl_quantize_row_q8_0(const float *src, void *dst, int64_t n) {
    vkl_block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / VKL_QK8_0; i++, b++, src += VKL_QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < VKL_QK8_0; j++) amax = amax > fabsf(src[j]) ? amax : fabsf(src[j]);
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        b->d = f2h(d);
        for (int j = 0; j < VKL_QK8_0; j++) {
            float v = src[j] * id;
            if (!(v == v)) v = 0.0f;
            v = v < -127.f ? -127.f : v > 127.f ? 127.f : v;
            b->qs[j] = (int8_t)roundf(v); /* ties away from zero, as ggml */
        }
    }
}

/* ---- K-quant helpers ----------------------------------------------------------------------- */

/* Fits x ≈ scale*L - min with L in [0, nmax] (min >= 0 is returned through *neg_min as the
 * amount subtracted): starts from the plain min/max grid, then tries nstep+1 slightly different
 * grid densities, each followed by a weighted least-squares solve for (scale, min); keeps the
 * one with the lowest weighted error (absolute error when use_abs, squared otherwise). */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min,
                           uint8_t *Ltry, float rmin, float rdelta, int nstep, bool use_abs) {
    float mn = x[0], mx = x[0];
    float sum_w = w[0], sum_x = w[0] * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (mn > 0) mn = 0;
    if (mx == mn) {
        memset(L, 0, (size_t)n);
        *neg_min = -mn;
        return 0.0f;
    }
    float iscale = nmax / (mx - mn);
    float scale = 1 / iscale;
    float best_err = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(round_even(iscale * (x[i] - mn)), 0, nmax);
        float diff = scale * L[i] + mn - x[i];
        best_err += w[i] * (use_abs ? fabsf(diff) : diff * diff);
    }
    for (int step = 0; step <= nstep; step++) {
        iscale = (rmin + rdelta * step + nmax) / (mx - mn);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(round_even(iscale * (x[i] - mn)), 0, nmax);
            Ltry[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        float det = sum_w * sum_l2 - sum_l * sum_l;
        if (!(det > 0)) continue;
        float s = (sum_w * sum_xl - sum_x * sum_l) / det;
        float m = (sum_l2 * sum_x - sum_l * sum_xl) / det;
        if (m > 0) { /* the offset may only lower values: refit the scale alone */
            m = 0;
            s = sum_xl / sum_l2;
        }
        float err = 0;
        for (int i = 0; i < n; i++) {
            float diff = s * Ltry[i] + m - x[i];
            err += w[i] * (use_abs ? fabsf(diff) : diff * diff);
        }
        if (err < best_err) {
            memcpy(L, Ltry, (size_t)n);
            best_err = err;
            scale = s;
            mn = m;
        }
    }
    *neg_min = -mn;
    return scale;
}

#define GROUP_EPS 1e-15f

/* Signed symmetric fit x ≈ scale*l, l in [-nmax, nmax-1], weights x², trying 18 grid densities
 * around nmax/|max| and keeping the best least-squares scale. L gets l + nmax. */
static float fit_signed_scale(int n, int nmax, const float *x, int8_t *L) {
    float max = signed_absmax(x, n);
    if (fabsf(max) < GROUP_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(round_even(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int step = -9; step <= 9; step++) {
        if (step == 0) continue;
        iscale = -(nmax + 0.1f * step) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(round_even(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + clampi(round_even(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Signed fit for 3-bit values: rounds on the max grid, then greedily moves single values to the
 * level that best improves the weighted (x²) least-squares fit. L gets l + nmax. */
static float fit_q3_scale(int n, int nmax, const float *x, int8_t *L) {
    float max = signed_absmax(x, n);
    if (fabsf(max) < GROUP_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(round_even(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (!(slx > 0)) continue;
            float sl2 = suml2 - w * L[i] * L[i];
            int nl = clampi(round_even(x[i] * sl2 / slx), -nmax, nmax - 1);
            if (nl == L[i]) continue;
            slx += w * x[i] * nl;
            sl2 += w * nl * nl;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)nl;
                sumlx = slx;
                suml2 = sl2;
                changed++;
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Q4_K/Q5_K: eight 6-bit scales and mins packed in 12 bytes. Bytes 0-3 hold scales 0-3 (low 6
 * bits), bytes 4-7 mins 0-3; scales/mins 4-7 keep their low nibbles in bytes 8-11 and their top
 * two bits in the top bits of bytes 0-3 / 4-7. */
static inline void k4_get(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static void k4_pack(uint8_t *q, const uint8_t *ls, const uint8_t *lm) {
    memset(q, 0, VKL_K_SCALE_SIZE);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            q[j] = ls[j];
            q[j + 4] = lm[j];
        } else {
            q[j + 4] = (uint8_t)((ls[j] & 0x0F) | ((lm[j] & 0x0F) << 4));
            q[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            q[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

/* Shared by Q4_K (nmax 15) and Q5_K (nmax 31): per 32-element sub-block scale/min fit, then the
 * 6-bit quantization of those scales and mins, then the final levels under the stored scales. */
static void quantize_k_scale_min(const float *x, int nmax, float rmin, int nstep, vkl_half *d_out,
                                 vkl_half *dmin_out, uint8_t *scales_out, uint8_t *L) {
    uint8_t Ltry[32];
    float w[32], scales[8], mins[8];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(xs[l]);
        scales[j] = fit_scale_min(32, nmax, xs, w, L + 32 * j, &mins[j], Ltry, rmin, 0.1f, nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        /* kept as uint8_t (wrapping) before the clamp, exactly like ggml's reference */
        uint8_t a = (uint8_t)round_even(inv_scale * scales[j]);
        uint8_t b = (uint8_t)round_even(inv_min * mins[j]);
        ls[j] = a < 63 ? a : 63;
        lm[j] = b < 63 ? b : 63;
    }
    k4_pack(scales_out, ls, lm);
    *d_out = f2h(max_scale / 63.f);
    *dmin_out = f2h(max_min / 63.f);
    for (int j = 0; j < 8; j++) {
        int sc, m;
        k4_get(j, scales_out, &sc, &m);
        const float d = h2f(*d_out) * (float)sc;
        if (!d) continue;
        const float dm = h2f(*dmin_out) * (float)m;
        for (int i = 0; i < 32; i++) L[32 * j + i] = (uint8_t)clampi(round_even((x[32 * j + i] + dm) / d), 0, nmax);
    }
}

/* ---- Q2_K ---------------------------------------------------------------------------------- */
/* 16 sub-blocks of 16; scales[j] = 4-bit scale | 4-bit min << 4. qs: 2-bit values, in each
 * 128-element half the byte l holds elements l, l+32, l+64, l+96 at bit offsets 0, 2, 4, 6. */

void vkl_dequantize_row_q2_K(const void *src, float *dst, int64_t n) {
    const vkl_block_q2_K *b = src;
    for (int64_t i = 0; i < n / QK; i++, b++) {
        const float d = h2f(b->d), dmin = h2f(b->dmin);
        for (int e = 0; e < QK; e++) {
            int half = e / 128, r = e % 128, group = r / 32, l = r % 32;
            int sc = b->scales[e / 16];
            int q = (b->qs[32 * half + l] >> (2 * group)) & 3;
            *dst++ = d * (float)(sc & 0x0F) * (float)q - dmin * (float)(sc >> 4);
        }
    }
}

static void pack_2bit(uint8_t *qs, const uint8_t *L) {
    for (int j = 0; j < QK; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

void vkl_quantize_row_q2_K(const float *src, void *dst, int64_t n) {
    vkl_block_q2_K *b = dst;
    uint8_t L[QK], Ltry[16];
    float w[16], scales[16], mins[16];
    for (int64_t i = 0; i < n / QK; i++, b++, src += QK) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++) w[l] = fabsf(src[16 * j + l]);
            scales[j] = fit_scale_min(16, 3, src + 16 * j, w, L + 16 * j, &mins[j], Ltry, -0.5f, 0.1f, 15, true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        memset(b->scales, 0, sizeof b->scales);
        b->d = f2h(0.f);
        b->dmin = f2h(0.f);
        if (max_scale > 0) {
            float iscale = 15.f / max_scale;
            for (int j = 0; j < 16; j++) b->scales[j] = (uint8_t)round_even(iscale * scales[j]);
            b->d = f2h(max_scale / 15.f);
        }
        if (max_min > 0) {
            float iscale = 15.f / max_min;
            for (int j = 0; j < 16; j++) b->scales[j] |= (uint8_t)(round_even(iscale * mins[j]) << 4);
            b->dmin = f2h(max_min / 15.f);
        }
        for (int j = 0; j < 16; j++) {
            const float d = h2f(b->d) * (float)(b->scales[j] & 0x0F);
            if (!d) continue;
            const float dm = h2f(b->dmin) * (float)(b->scales[j] >> 4);
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (uint8_t)clampi(round_even((src[16 * j + l] + dm) / d), 0, 3);
        }
        pack_2bit(b->qs, L);
    }
}

/* ---- Q3_K ---------------------------------------------------------------------------------- */
/* 16 sub-blocks of 16 with signed 6-bit scales (stored +32): low nibbles of scales 0-7 in bytes
 * 0-7 low halves, of scales 8-15 in their high halves; the top 2 bits of scale j in byte
 * 8 + j%4 at bit 2*(j/4). Values: 2 low bits as in Q2_K, plus hmask bit (j / 32) of byte j % 32;
 * a clear hmask bit means "subtract 4". */

static inline int q3_scale(const uint8_t *s, int j) {
    int lo = j < 8 ? (s[j] & 0x0F) : (s[j - 8] >> 4);
    int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}

void vkl_dequantize_row_q3_K(const void *src, float *dst, int64_t n) {
    const vkl_block_q3_K *b = src;
    for (int64_t i = 0; i < n / QK; i++, b++) {
        const float d_all = h2f(b->d);
        for (int e = 0; e < QK; e++) {
            int half = e / 128, r = e % 128, group = r / 32, l = r % 32;
            int q = (b->qs[32 * half + l] >> (2 * group)) & 3;
            int hbit = (b->hmask[l] >> (4 * half + group)) & 1;
            const float dl = d_all * (float)q3_scale(b->scales, e / 16);
            *dst++ = dl * (float)(q - (hbit ? 0 : 4));
        }
    }
}

void vkl_quantize_row_q3_K(const float *src, void *dst, int64_t n) {
    vkl_block_q3_K *b = dst;
    int8_t L[QK];
    float scales[16];
    for (int64_t i = 0; i < n / QK; i++, b++, src += QK) {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = fit_q3_scale(16, 4, src + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > amax) {
                amax = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        memset(b->scales, 0, sizeof b->scales);
        if (max_scale) {
            float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; j++) {
                int l = clampi(round_even(iscale * scales[j]), -32, 31) + 32;
                if (j < 8) b->scales[j] = (uint8_t)(l & 0x0F);
                else b->scales[j - 8] |= (uint8_t)((l & 0x0F) << 4);
                b->scales[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
            b->d = f2h(1 / iscale);
        } else {
            b->d = f2h(0.f);
        }
        for (int j = 0; j < 16; j++) {
            const float d = h2f(b->d) * (float)q3_scale(b->scales, j);
            if (!d) continue;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (int8_t)(clampi(round_even(src[16 * j + l] / d), -4, 3) + 4);
        }
        /* the high bit of element e goes to hmask[e % 32], bit e / 32 */
        memset(b->hmask, 0, sizeof b->hmask);
        uint8_t low[QK];
        for (int e = 0; e < QK; e++) {
            int v = L[e];
            if (v > 3) {
                b->hmask[e % 32] |= (uint8_t)(1u << (e / 32));
                v -= 4;
            }
            low[e] = (uint8_t)v;
        }
        pack_2bit(b->qs, low);
    }
}

/* ---- Q4_K ---------------------------------------------------------------------------------- */
/* 8 sub-blocks of 32 with 6-bit scale and min; qs: each 64-element chunk is 32 bytes, low
 * nibbles the first 32 elements, high nibbles the next 32. */

void vkl_dequantize_row_q4_K(const void *src, float *dst, int64_t n) {
    const vkl_block_q4_K *b = src;
    for (int64_t i = 0; i < n / QK; i++, b++) {
        const float d = h2f(b->d), dmin = h2f(b->dmin);
        const uint8_t *q = b->qs;
        for (int j = 0; j < QK / 64; j++, q += 32) {
            int sc, m;
            k4_get(2 * j, b->scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            k4_get(2 * j + 1, b->scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++) *dst++ = d1 * (float)(q[l] & 0x0F) - m1;
            for (int l = 0; l < 32; l++) *dst++ = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

void vkl_quantize_row_q4_K(const float *src, void *dst, int64_t n) {
    vkl_block_q4_K *b = dst;
    uint8_t L[QK];
    for (int64_t i = 0; i < n / QK; i++, b++, src += QK) {
        quantize_k_scale_min(src, 15, -1.0f, 20, &b->d, &b->dmin, b->scales, L);
        for (int j = 0; j < QK / 64; j++)
            for (int l = 0; l < 32; l++) b->qs[32 * j + l] = (uint8_t)(L[64 * j + l] | (L[64 * j + l + 32] << 4));
    }
}

/* ---- Q5_K ---------------------------------------------------------------------------------- */
/* As Q4_K plus a fifth bit: element 64*c + l (l < 32) has it in qh[l] bit 2c, element
 * 64*c + 32 + l in qh[l] bit 2c+1. */

void vkl_dequantize_row_q5_K(const void *src, float *dst, int64_t n) {
    const vkl_block_q5_K *b = src;
    for (int64_t i = 0; i < n / QK; i++, b++) {
        const float d = h2f(b->d), dmin = h2f(b->dmin);
        const uint8_t *ql = b->qs;
        for (int j = 0; j < QK / 64; j++, ql += 32) {
            int sc, m;
            k4_get(2 * j, b->scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            k4_get(2 * j + 1, b->scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++)
                *dst++ = d1 * (float)((ql[l] & 0x0F) + (((b->qh[l] >> (2 * j)) & 1) << 4)) - m1;
            for (int l = 0; l < 32; l++)
                *dst++ = d2 * (float)((ql[l] >> 4) + (((b->qh[l] >> (2 * j + 1)) & 1) << 4)) - m2;
        }
    }
}

void vkl_quantize_row_q5_K(const float *src, void *dst, int64_t n) {
    vkl_block_q5_K *b = dst;
    uint8_t L[QK];
    for (int64_t i = 0; i < n / QK; i++, b++, src += QK) {
        quantize_k_scale_min(src, 31, -0.5f, 15, &b->d, &b->dmin, b->scales, L);
        memset(b->qh, 0, sizeof b->qh);
        for (int j = 0; j < QK / 64; j++) {
            for (int l = 0; l < 32; l++) {
                int a = L[64 * j + l], c = L[64 * j + l + 32];
                b->qh[l] |= (uint8_t)(((a >> 4) << (2 * j)) | ((c >> 4) << (2 * j + 1)));
                b->qs[32 * j + l] = (uint8_t)((a & 0x0F) | ((c & 0x0F) << 4));
            }
        }
    }
}

/* ---- Q6_K ---------------------------------------------------------------------------------- */
/* 16 sub-blocks of 16 with int8 scales; 6-bit values stored +32. For each 128-element half:
 * ql (64 bytes): byte l (l < 32) holds elements l and l+64 in its low/high nibble, byte 32+l holds
 * l+32 and l+96; qh (32 bytes): byte l holds the top 2 bits of l, l+32, l+64, l+96. */

void vkl_dequantize_row_q6_K(const void *src, float *dst, int64_t n) {
    const vkl_block_q6_K *b = src;
    for (int64_t i = 0; i < n / QK; i++, b++) {
        const float d = h2f(b->d);
        for (int e = 0; e < QK; e++) {
            int half = e / 128, r = e % 128, group = r / 32, l = r % 32;
            const uint8_t *ql = b->ql + 64 * half, *qh = b->qh + 32 * half;
            int lo = (ql[l + 32 * (group & 1)] >> (4 * (group >> 1))) & 0x0F;
            int hi = (qh[l] >> (2 * group)) & 3;
            *dst++ = d * (float)b->scales[e / 16] * (float)((lo | (hi << 4)) - 32);
        }
    }
}

void vkl_quantize_row_q6_K(const float *src, void *dst, int64_t n) {
    vkl_block_q6_K *b = dst;
    int8_t L[QK];
    float scales[16];
    for (int64_t i = 0; i < n / QK; i++, b++, src += QK) {
        float max_scale = 0, max_abs = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = fit_signed_scale(16, 32, src + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > max_abs) {
                max_abs = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        if (max_abs < GROUP_EPS) {
            memset(b, 0, sizeof *b);
            continue;
        }
        const float iscale = -128.f / max_scale;
        b->d = f2h(1 / iscale);
        for (int j = 0; j < 16; j++) b->scales[j] = (int8_t)clampi(round_even(iscale * scales[j]), -128, 127);
        for (int j = 0; j < 16; j++) {
            const float d = h2f(b->d) * (float)b->scales[j];
            if (!d) continue;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (int8_t)(clampi(round_even(src[16 * j + l] / d), -32, 31) + 32);
        }
        for (int half = 0; half < 2; half++) {
            uint8_t *ql = b->ql + 64 * half, *qh = b->qh + 32 * half;
            const int8_t *Lh = L + 128 * half;
            for (int l = 0; l < 32; l++) {
                ql[l] = (uint8_t)((Lh[l] & 0x0F) | ((Lh[l + 64] & 0x0F) << 4));
                ql[l + 32] = (uint8_t)((Lh[l + 32] & 0x0F) | ((Lh[l + 96] & 0x0F) << 4));
                qh[l] = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) |
                                  ((Lh[l + 96] >> 4) << 6));
            }
        }
    }
}
