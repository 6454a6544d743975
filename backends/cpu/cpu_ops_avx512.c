/* AVX-512 versions of the non-matmul hot spots of a prompt: the attention of one tile of query
 * rows that share a KV head, and SwiGLU. Used by cpu_ops.c when the matmul kernels run at the
 * avx512 level. */
#include "cpu/cpu_ops.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define TGT __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq")))
#define INL static inline __attribute__((always_inline)) TGT

/* exp(x) for x <= ~88; inputs below -87 (and -inf) give 0. 2^n * p(f), f = x - n ln2 in
 * [-ln2/2, ln2/2], degree-6 polynomial: relative error ~2e-7. */
INL __m512 exp512(__m512 x) {
    const __m512 log2e = _mm512_set1_ps(1.44269504f), ln2_hi = _mm512_set1_ps(0.693359375f),
                 ln2_lo = _mm512_set1_ps(-2.12194440e-4f);
    const __mmask16 tiny = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_LT_OQ);
    x = _mm512_min_ps(x, _mm512_set1_ps(88.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_fnmadd_ps(n, ln2_hi, x);
    f = _mm512_fnmadd_ps(n, ln2_lo, f);
    __m512 p = _mm512_set1_ps(1.38888889e-3f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(8.33333333e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(4.16666667e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.66666667e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    const __m512i e = _mm512_slli_epi32(_mm512_cvtps_epi32(n), 23);
    const __m512 r = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(p), e));
    return _mm512_maskz_mov_ps((__mmask16)~tiny, r);
}

/* 16 elements of a K/V row from column d on, as f32. */
INL __m512 load16(const uint8_t *row, int f16, int d) {
    return f16 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)row + d)))
               : _mm512_loadu_ps((const float *)row + d);
}

/* Scores of NK keys (j0..j0+NK-1) against NV vectors of 16 query rows: st[j][r] = q_r . k_j
 * (the scale is folded into qt), -inf where j > lim[r]. */
INL void scores(const int NK, const int NV, const vkl_attn_tile *a, int64_t j0, const __m512i *limv) {
    float kf[4][256];
    const int hd = a->hd;
    for (int k = 0; k < NK; k++)
        for (int d = 0; d < hd; d += 16)
            _mm512_storeu_ps(kf[k] + d, load16(a->k + (size_t)(j0 + k) * a->ks, a->k_f16, d));
    __m512 acc[4][4];
    _Pragma("GCC unroll 4") for (int k = 0; k < NK; k++) _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[k][v] = _mm512_setzero_ps();
    for (int d = 0; d < hd; d++) {
        __m512 q[4];
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) q[v] = _mm512_loadu_ps(a->qt + (size_t)d * a->stride + 16 * v);
        _Pragma("GCC unroll 4") for (int k = 0; k < NK; k++) {
            const __m512 kb = _mm512_set1_ps(kf[k][d]);
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[k][v] = _mm512_fmadd_ps(q[v], kb, acc[k][v]);
        }
    }
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    _Pragma("GCC unroll 4") for (int k = 0; k < NK; k++) {
        const __m512i jv = _mm512_set1_epi32((int)(j0 + k));
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {
            const __mmask16 out = _mm512_cmpgt_epi32_mask(jv, limv[v]);
            _mm512_storeu_ps(a->st + (size_t)(j0 + k) * a->stride + 16 * v, _mm512_mask_mov_ps(acc[k][v], out, ninf));
        }
    }
}

/* o[r][d0..d0+16*ND) = sum_j p[j][r] v_j for NR rows from r0 over keys < jn, times inv[r]. */
INL void pv(const int NR, const int ND, const vkl_attn_tile *a, int r0, int d0, int64_t jn, const float *inv) {
    __m512 acc[6][4];
    _Pragma("GCC unroll 6") for (int r = 0; r < NR; r++) _Pragma("GCC unroll 4") for (int i = 0; i < ND; i++) acc[r][i] = _mm512_setzero_ps();
    for (int64_t j = 0; j < jn; j++) {
        const uint8_t *vrow = a->v + (size_t)j * a->vs;
        __m512 v[4];
        _Pragma("GCC unroll 4") for (int i = 0; i < ND; i++) v[i] = load16(vrow, a->v_f16, d0 + 16 * i);
        const float *p = a->st + (size_t)j * a->stride + r0;
        _Pragma("GCC unroll 6") for (int r = 0; r < NR; r++) {
            const __m512 pb = _mm512_set1_ps(p[r]);
            _Pragma("GCC unroll 4") for (int i = 0; i < ND; i++) acc[r][i] = _mm512_fmadd_ps(pb, v[i], acc[r][i]);
        }
    }
    _Pragma("GCC unroll 6") for (int r = 0; r < NR; r++) {
        const __m512 s = _mm512_set1_ps(inv[r0 + r]);
        _Pragma("GCC unroll 4") for (int i = 0; i < ND; i++) _mm512_storeu_ps(a->o[r0 + r] + d0 + 16 * i, _mm512_mul_ps(acc[r][i], s));
    }
}

#define PV_CASE(NR)                                                                  \
    case NR:                                                                         \
        switch (nd) {                                                                \
        case 1: pv(NR, 1, a, r0, d0, jn, inv); break;                                \
        case 2: pv(NR, 2, a, r0, d0, jn, inv); break;                                \
        case 3: pv(NR, 3, a, r0, d0, jn, inv); break;                                \
        default: pv(NR, 4, a, r0, d0, jn, inv); break;                               \
        }                                                                            \
        break;

#define SC_CASE(NK)                                                                  \
    case NK:                                                                         \
        switch (nv) {                                                                \
        case 1: scores(NK, 1, a, j, limv); break;                                    \
        case 2: scores(NK, 2, a, j, limv); break;                                    \
        case 3: scores(NK, 3, a, j, limv); break;                                    \
        default: scores(NK, 4, a, j, limv); break;                                   \
        }                                                                            \
        break;

/* One query row the other way round, for tiles of few rows (decode without GQA: one row per KV
 * head): vectors run along the head dim and the keys, not along the rows, which would leave 15 of
 * 16 lanes idle. Scores into st[0..jn), softmax over them, then o = sum_j p_j v_j / sum. */
INL void row_along_dims(const vkl_attn_tile *a, int r) {
    const int hd = a->hd, nc = hd / 16; /* hd % 16 == 0, hd <= 256 */
    const int64_t jn = a->lim[r] + 1;
    float *sc = a->st;
    __m512 q[16];
    for (int c = 0; c < nc; c++) q[c] = _mm512_mul_ps(_mm512_loadu_ps(a->q[r] + 16 * c), _mm512_set1_ps(a->scale));
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < jn; j++) {
        const uint8_t *krow = a->k + (size_t)j * a->ks;
        __m512 s0 = _mm512_mul_ps(q[0], load16(krow, a->k_f16, 0)), s1 = _mm512_setzero_ps();
        for (int c = 1; c < nc; c++) {
            if (c % 2) s1 = _mm512_fmadd_ps(q[c], load16(krow, a->k_f16, 16 * c), s1);
            else s0 = _mm512_fmadd_ps(q[c], load16(krow, a->k_f16, 16 * c), s0);
        }
        sc[j] = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    }
    int64_t j = 0;
    for (; j + 16 <= jn; j += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(sc + j));
    const __mmask16 tail = (__mmask16)((1u << (jn - j)) - 1);
    mx = _mm512_mask_max_ps(mx, tail, mx, _mm512_maskz_loadu_ps(tail, sc + j));
    const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512 sum = _mm512_setzero_ps();
    for (j = 0; j + 16 <= jn; j += 16) {
        const __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(sc + j), m));
        _mm512_storeu_ps(sc + j, e);
        sum = _mm512_add_ps(sum, e);
    }
    if (tail) {
        const __m512 e = _mm512_maskz_mov_ps(tail, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, sc + j), m)));
        _mm512_mask_storeu_ps(sc + j, tail, e);
        sum = _mm512_add_ps(sum, e);
    }
    const float inv = 1.0f / _mm512_reduce_add_ps(sum); /* >= 1: the maximum contributes exp(0) */
    /* 16 output columns at a time over all keys, four independent sums (nc is not a constant, so
     * an array of nc accumulators would live in memory) */
    for (int c = 0; c < nc; c++) {
        const uint8_t *vc = a->v;
        __m512 o0 = _mm512_setzero_ps(), o1 = o0, o2 = o0, o3 = o0;
        for (j = 0; j + 4 <= jn; j += 4, vc += 4 * a->vs) {
            o0 = _mm512_fmadd_ps(_mm512_set1_ps(sc[j]), load16(vc, a->v_f16, 16 * c), o0);
            o1 = _mm512_fmadd_ps(_mm512_set1_ps(sc[j + 1]), load16(vc + a->vs, a->v_f16, 16 * c), o1);
            o2 = _mm512_fmadd_ps(_mm512_set1_ps(sc[j + 2]), load16(vc + 2 * a->vs, a->v_f16, 16 * c), o2);
            o3 = _mm512_fmadd_ps(_mm512_set1_ps(sc[j + 3]), load16(vc + 3 * a->vs, a->v_f16, 16 * c), o3);
        }
        for (; j < jn; j++, vc += a->vs) o0 = _mm512_fmadd_ps(_mm512_set1_ps(sc[j]), load16(vc, a->v_f16, 16 * c), o0);
        const __m512 oc = _mm512_add_ps(_mm512_add_ps(o0, o1), _mm512_add_ps(o2, o3));
        _mm512_storeu_ps(a->o[r] + 16 * c, _mm512_mul_ps(oc, _mm512_set1_ps(inv)));
    }
}

/* Below this many rows a tile is done row by row along the head dim (measured on the 2-core Zen 5:
 * a 10-layer, 16-head, hd 64 model's decode attention took 0.8 ms per token with the row-vector
 * kernel). */
#define ATTN_ROWS_ALONG_DIMS 4

TGT void vkl_attn_tile_avx512(const vkl_attn_tile *a) {
    const int R = a->R, hd = a->hd, nv = (R + 15) / 16;
    if (R < ATTN_ROWS_ALONG_DIMS) {
        for (int r = 0; r < R; r++) row_along_dims(a, r);
        return;
    }
    /* qt[d][r] = scale * q_r[d]; rows past R are zero and attend to key 0 only. */
    for (int d = 0; d < hd; d++)
        for (int r = 0; r < 16 * nv; r++) a->qt[(size_t)d * a->stride + r] = r < R ? a->q[r][d] * a->scale : 0.0f;
    int32_t lim32[64];
    for (int r = 0; r < 16 * nv; r++) lim32[r] = r < R ? (int32_t)a->lim[r] : 0;
    __m512i limv[4];
    for (int v = 0; v < nv; v++) limv[v] = _mm512_loadu_si512(lim32 + 16 * v);
    const int64_t jmax = a->jmax;
    for (int64_t j = 0; j < jmax; j += 4) {
        switch (jmax - j < 4 ? (int)(jmax - j) : 4) {
            SC_CASE(1)
            SC_CASE(2)
            SC_CASE(3)
            SC_CASE(4)
        default: break;
        }
    }
    /* Softmax over the keys, 16 rows at a time; the 1/sum is applied to the outputs. */
    float inv[64];
    for (int v = 0; v < nv; v++) {
        __m512 mx = _mm512_set1_ps(-INFINITY), sum = _mm512_setzero_ps();
        for (int64_t j = 0; j < jmax; j++) mx = _mm512_max_ps(mx, _mm512_loadu_ps(a->st + (size_t)j * a->stride + 16 * v));
        for (int64_t j = 0; j < jmax; j++) {
            float *s = a->st + (size_t)j * a->stride + 16 * v;
            const __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(s), mx));
            _mm512_storeu_ps(s, e);
            sum = _mm512_add_ps(sum, e);
        }
        /* a row with no key (never from the context) gets zeros */
        _mm512_storeu_ps(inv + 16 * v, _mm512_maskz_div_ps(_mm512_cmp_ps_mask(sum, _mm512_setzero_ps(), _CMP_GT_OQ),
                                                           _mm512_set1_ps(1.0f), sum));
    }
    for (int r0 = 0; r0 < R; r0 += 6) {
        const int nr = R - r0 < 6 ? R - r0 : 6;
        int64_t jn = 0; /* keys any of these rows attends to */
        for (int r = r0; r < r0 + nr; r++) jn = a->lim[r] + 1 > jn ? a->lim[r] + 1 : jn;
        for (int d0 = 0; d0 < hd; d0 += 64) {
            const int nd = (hd - d0) / 16 < 4 ? (hd - d0) / 16 : 4;
            switch (nr) {
                PV_CASE(1)
                PV_CASE(2)
                PV_CASE(3)
                PV_CASE(4)
                PV_CASE(5)
                PV_CASE(6)
            default: break;
            }
        }
    }
}

/* out = g * sigmoid(g) * u */
TGT void vkl_swiglu_avx512(const float *g, const float *u, float *out, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 gv = _mm512_loadu_ps(g + i);
        const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), gv));
        const __m512 s = _mm512_div_ps(gv, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
        _mm512_storeu_ps(out + i, _mm512_mul_ps(s, _mm512_loadu_ps(u + i)));
    }
    for (; i < n; i++) out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

#else
void vkl_attn_tile_avx512(const vkl_attn_tile *a) { (void)a; }
void vkl_swiglu_avx512(const float *g, const float *u, float *out, int64_t n) {
    (void)g; (void)u; (void)out; (void)n;
}
#endif
