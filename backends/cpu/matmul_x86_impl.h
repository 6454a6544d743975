/* 256-bit x86 matmul kernels, compiled twice: by matmul_avx2.c (AVX2 + FMA + F16C) and by
 * matmul_avx512.c (adds AVX-512 VL/VNNI, so the u8 x s8 dot becomes one vpdpbusd). The includer
 * defines:
 *   TGT                function attribute with the target features
 *   FN(name)           name with the variant's suffix
 *   DOT_U8S8(u, s)     8 int32 lanes, each the sum of 4 adjacent products u8[i] * s8[i]
 * Activations: Q8_32 for the 32-block formats, Q8_K for Q4_K/Q6_K, f32 for the rest. */
#include <immintrin.h>
#include <string.h>

#include "cpu/matmul_internal.h"

#define INL static inline __attribute__((always_inline)) TGT
/* Register arrays (acc[4]) only stay in registers when their loops are fully unrolled. */
#define UNROLL4 _Pragma("GCC unroll 4")

/* Generation reads every weight once, straight from DRAM, and the hardware prefetcher alone keeps
 * too few lines in flight for one core to approach the machine's read bandwidth (these loops do
 * enough work per line that the out-of-order window reaches only ~3 KB ahead). So each step of a
 * weight row asks for the bytes it will read PF_AHEAD bytes later, non-temporal (read once).
 * Measured on the 2-core Zen 5 (600 MB of 5632x2048 weights, 2 threads, best of many passes):
 * Q8_0 36-42 -> 45-53 GB/s, Q4_0 31-38 -> 40-47 GB/s; 2, 4 and 8 KB ahead did worse, and the T1
 * hint worse than none. Prefetches past the end of the weights are harmless: they never fault. */
#define PF_AHEAD 6144
INL void FN(prefetch_ahead)(const void *p, size_t bytes) {
    for (size_t o = 0; o < bytes; o += 64) _mm_prefetch((const char *)p + PF_AHEAD + o, _MM_HINT_NTA);
}

INL float FN(hsum)(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INL float FN(h2f)(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* ---- float weights ---------------------------------------------------------------------------- */

INL __m256 FN(load8_f16)(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
INL __m256 FN(load8_bf16)(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

#define DEF_FLOAT_DOT(name, WT, LOAD8, SCALAR)                                                    \
    static TGT float FN(dot_##name)(int64_t K, const void *w, const float *b) {                  \
        const WT *a = w;                                                                          \
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;                               \
        int64_t k = 0;                                                                            \
        for (; k + 32 <= K; k += 32) {                                                            \
            s0 = _mm256_fmadd_ps(LOAD8(a + k), _mm256_loadu_ps(b + k), s0);                       \
            s1 = _mm256_fmadd_ps(LOAD8(a + k + 8), _mm256_loadu_ps(b + k + 8), s1);               \
            s2 = _mm256_fmadd_ps(LOAD8(a + k + 16), _mm256_loadu_ps(b + k + 16), s2);             \
            s3 = _mm256_fmadd_ps(LOAD8(a + k + 24), _mm256_loadu_ps(b + k + 24), s3);             \
        }                                                                                         \
        for (; k + 8 <= K; k += 8) s0 = _mm256_fmadd_ps(LOAD8(a + k), _mm256_loadu_ps(b + k), s0); \
        float r = FN(hsum)(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));          \
        for (; k < K; k++) r += SCALAR(a[k]) * b[k];                                              \
        return r;                                                                                 \
    }                                                                                             \
    static TGT void FN(gemm_##name)(int64_t K, const void *W, size_t ws, int64_t nr, const void *X, \
                                    size_t xs, int64_t nt, float *y, int64_t ys) {                \
        for (int64_t r = 0; r < nr; r++)                                                          \
            for (int64_t t = 0; t < nt; t++)                                                      \
                y[t * ys + r] = FN(dot_##name)(K, (const uint8_t *)W + r * ws,                    \
                                               (const float *)((const uint8_t *)X + t * xs));     \
    }

#define LOAD8_F32(p) _mm256_loadu_ps(p)
#define SCALAR_F32(v) (v)
DEF_FLOAT_DOT(f32, float, LOAD8_F32, SCALAR_F32)
DEF_FLOAT_DOT(f16, uint16_t, FN(load8_f16), vkl_f16_to_f32)
DEF_FLOAT_DOT(bf16, uint16_t, FN(load8_bf16), vkl_bf16_to_f32)
#undef LOAD8_F32
#undef SCALAR_F32

/* ---- 32-blocks against Q8_32 activations ------------------------------------------------------
 * A decoder turns block i of a row into 32 bytes u (element order) and dw, mw such that the
 * weights are dw * u + mw; u is unsigned except for q8_0 (signed, paired with DOT_S8S8). */

INL __m256i FN(nibbles)(const uint8_t *qs) {
    const __m128i q = _mm_loadu_si128((const __m128i *)qs);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(15));
}

/* Byte j = 0x10 where bit j of the 32-bit qh is set. */
INL __m256i FN(high_bits)(const uint8_t *qh) {
    uint32_t h;
    memcpy(&h, qh, 4);
    const __m256i idx = _mm256_set_epi64x(0x0303030303030303ll, 0x0202020202020202ll, 0x0101010101010101ll, 0);
    const __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)h), idx);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit), _mm256_set1_epi8(0x10));
}

INL void FN(dec_q4_0)(const uint8_t *row, int64_t i, __m256i *u, float *dw, float *mw) {
    const uint8_t *b = row + i * sizeof(vkl_block_q4_0);
    *u = FN(nibbles)(b + offsetof(vkl_block_q4_0, qs));
    *dw = FN(h2f)(b);
    *mw = -8.0f * *dw;
}
INL void FN(dec_q4_1)(const uint8_t *row, int64_t i, __m256i *u, float *dw, float *mw) {
    const uint8_t *b = row + i * sizeof(vkl_block_q4_1);
    *u = FN(nibbles)(b + offsetof(vkl_block_q4_1, qs));
    *dw = FN(h2f)(b);
    *mw = FN(h2f)(b + 2);
}
INL void FN(dec_q5_0)(const uint8_t *row, int64_t i, __m256i *u, float *dw, float *mw) {
    const uint8_t *b = row + i * sizeof(vkl_block_q5_0);
    *u = _mm256_or_si256(FN(nibbles)(b + offsetof(vkl_block_q5_0, qs)), FN(high_bits)(b + offsetof(vkl_block_q5_0, qh)));
    *dw = FN(h2f)(b);
    *mw = -16.0f * *dw;
}
INL void FN(dec_q5_1)(const uint8_t *row, int64_t i, __m256i *u, float *dw, float *mw) {
    const uint8_t *b = row + i * sizeof(vkl_block_q5_1);
    *u = _mm256_or_si256(FN(nibbles)(b + offsetof(vkl_block_q5_1, qs)), FN(high_bits)(b + offsetof(vkl_block_q5_1, qh)));
    *dw = FN(h2f)(b);
    *mw = FN(h2f)(b + 2);
}
INL void FN(dec_q8_0)(const uint8_t *row, int64_t i, __m256i *u, float *dw, float *mw) {
    const uint8_t *b = row + i * sizeof(vkl_block_q8_0);
    *u = _mm256_loadu_si256((const __m256i *)(b + offsetof(vkl_block_q8_0, qs)));
    *dw = FN(h2f)(b);
    *mw = 0.0f;
}

#define DOT_S8S8(w, x) DOT_U8S8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w))

/* Row outer; four tokens share each decoded block, the rest go one at a time with two chains. */
#define DEF_GEMM32(name, DOT)                                                                      \
    static TGT void FN(gemm_##name)(int64_t K, const void *W, size_t ws, int64_t nr, const void *X, \
                                    size_t xs, int64_t nt, float *y, int64_t ys) {                 \
        const int64_t nb = K / 32;                                                                 \
        const size_t BSZ = sizeof(vkl_block_##name);                                               \
        for (int64_t r = 0; r < nr; r++) {                                                         \
            const uint8_t *row = (const uint8_t *)W + r * ws;                                      \
            int64_t t = 0;                                                                         \
            for (; t + 4 <= nt; t += 4) {                                                          \
                const float *xd[4];                                                                \
                const int8_t *xq[4];                                                               \
                __m256 acc[4];                                                                     \
                float macc[4] = {0, 0, 0, 0};                                                      \
                UNROLL4 for (int j = 0; j < 4; j++) {                                              \
                    xd[j] = (const float *)((const uint8_t *)X + (t + j) * xs);                    \
                    xq[j] = (const int8_t *)(xd[j] + 2 * nb);                                      \
                    acc[j] = _mm256_setzero_ps();                                                  \
                }                                                                                  \
                for (int64_t i = 0; i < nb; i++) {                                                 \
                    __m256i u;                                                                     \
                    float dw, mw;                                                                  \
                    if (t == 0) FN(prefetch_ahead)(row + i * BSZ, BSZ);                            \
                    FN(dec_##name)(row, i, &u, &dw, &mw);                                          \
                    UNROLL4 for (int j = 0; j < 4; j++) {                                          \
                        const __m256i p = DOT(u, _mm256_loadu_si256((const __m256i *)(xq[j] + 32 * i))); \
                        acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * xd[j][i]), acc[j]); \
                        macc[j] += mw * xd[j][nb + i];                                             \
                    }                                                                              \
                }                                                                                  \
                UNROLL4 for (int j = 0; j < 4; j++) y[(t + j) * ys + r] = FN(hsum)(acc[j]) + macc[j];      \
            }                                                                                      \
            for (; t < nt; t++) {                                                                  \
                const float *xd = (const float *)((const uint8_t *)X + t * xs);                    \
                const int8_t *xq = (const int8_t *)(xd + 2 * nb);                                  \
                __m256 a0 = _mm256_setzero_ps(), a1 = a0;                                          \
                float m0 = 0, m1 = 0;                                                              \
                int64_t i = 0;                                                                     \
                for (; i + 2 <= nb; i += 2) {                                                      \
                    __m256i u0, u1;                                                                \
                    float d0, d1, mw0, mw1;                                                        \
                    if (t == 0) FN(prefetch_ahead)(row + i * BSZ, 2 * BSZ);                        \
                    FN(dec_##name)(row, i, &u0, &d0, &mw0);                                        \
                    FN(dec_##name)(row, i + 1, &u1, &d1, &mw1);                                    \
                    const __m256i p0 = DOT(u0, _mm256_loadu_si256((const __m256i *)(xq + 32 * i))); \
                    const __m256i p1 = DOT(u1, _mm256_loadu_si256((const __m256i *)(xq + 32 * i + 32))); \
                    a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(d0 * xd[i]), a0);  \
                    a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_set1_ps(d1 * xd[i + 1]), a1); \
                    m0 += mw0 * xd[nb + i];                                                        \
                    m1 += mw1 * xd[nb + i + 1];                                                    \
                }                                                                                  \
                if (i < nb) {                                                                      \
                    __m256i u0;                                                                    \
                    float d0, mw0;                                                                 \
                    FN(dec_##name)(row, i, &u0, &d0, &mw0);                                        \
                    const __m256i p0 = DOT(u0, _mm256_loadu_si256((const __m256i *)(xq + 32 * i))); \
                    a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(d0 * xd[i]), a0);  \
                    m0 += mw0 * xd[nb + i];                                                        \
                }                                                                                  \
                y[t * ys + r] = FN(hsum)(_mm256_add_ps(a0, a1)) + (m0 + m1);                       \
            }                                                                                      \
        }                                                                                          \
    }

DEF_GEMM32(q4_0, DOT_U8S8)
DEF_GEMM32(q4_1, DOT_U8S8)
DEF_GEMM32(q5_0, DOT_U8S8)
DEF_GEMM32(q5_1, DOT_U8S8)
DEF_GEMM32(q8_0, DOT_S8S8)

/* ---- K-quants against Q8_K activations ------------------------------------------------------- */

/* maddubs then madd with per-16-bit scales: 8 int32 lanes of scaled sums (no overflow for the
 * value ranges of Q4_K/Q6_K: |pair| <= 2*63*127, scales <= 128). */
INL __m256i FN(dot_scaled)(__m256i u, __m256i s, __m256i scale16) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), scale16);
}

/* The 12 packed bytes of Q4_K -> 16 bytes: scales of sub-blocks 0-7, then mins 0-7.
 * Bytes 0-3: sc0-3 | hi bits of sc4-7; 4-7: m0-3 | hi bits of m4-7; 8-11: lo nibbles sc4-7 / m4-7. */
INL __m128i FN(q4k_scales)(const uint8_t *s) {
    uint32_t w[3];
    memcpy(w, s, 12);
    const uint32_t k6 = 0x3f3f3f3f, k4 = 0x0f0f0f0f, k2 = 0x03030303;
    const uint32_t sc03 = w[0] & k6, m03 = w[1] & k6;
    const uint32_t sc47 = (w[2] & k4) | (((w[0] >> 6) & k2) << 4);
    const uint32_t m47 = ((w[2] >> 4) & k4) | (((w[1] >> 6) & k2) << 4);
    return _mm_set_epi32((int)m47, (int)m03, (int)sc47, (int)sc03);
}

/* Q4_K (five = 0) and Q5_K (five = 1, a fifth bit per element: qh bit 2j / 2j+1 for the
 * sub-blocks of group j). Both blocks start with d and dmin; the other fields are at the offsets. */
INL float FN(dot_q45_K)(int64_t K, const uint8_t *w, size_t bsize, size_t o_scales, size_t o_qh, size_t o_qs,
                        const vkl_block_q8_K *a, const int five) {
    const __m256i m4 = _mm256_set1_epi8(15), one = _mm256_set1_epi8(1);
    /* i16 broadcasts of scale byte n: shuffle control (n, zero) repeated */
    const __m256i sel0 = _mm256_set1_epi16((short)0x8000), step = _mm256_set1_epi16(1);
    const __m128i dup_mins = _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
    __m256 acc = _mm256_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    for (int64_t i = 0; i < K / VKL_QK_K; i++) {
        const uint8_t *b = w + (size_t)i * bsize;
        FN(prefetch_ahead)(b, bsize);
        const __m128i scm = FN(q4k_scales)(b + o_scales);
        /* mins: sum_j m_j * (bsum[2j] + bsum[2j+1]) as 8 int32 lanes */
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(scm, dup_mins));
        const __m256i pm = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)a[i].bsums), mins);
        const __m256i scv = _mm256_broadcastsi128_si256(scm);
        const __m256i qh = five ? _mm256_loadu_si256((const __m256i *)(b + o_qh)) : _mm256_setzero_si256();
        __m256i sel = sel0, isum = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(b + o_qs + 32 * j));
            __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            if (five) {
                const __m256i hj = _mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * j));
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(hj, one), 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hj, 1), one), 4));
            }
            const __m256i x0 = _mm256_loadu_si256((const __m256i *)(a[i].qs + 64 * j));
            const __m256i x1 = _mm256_loadu_si256((const __m256i *)(a[i].qs + 64 * j + 32));
            const __m256i s0 = _mm256_shuffle_epi8(scv, sel);
            sel = _mm256_add_epi16(sel, step);
            const __m256i s1 = _mm256_shuffle_epi8(scv, sel);
            sel = _mm256_add_epi16(sel, step);
            isum = _mm256_add_epi32(isum, FN(dot_scaled)(lo, x0, s0));
            isum = _mm256_add_epi32(isum, FN(dot_scaled)(hi, x1, s1));
        }
        const float dx = a[i].d;
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(FN(h2f)(b) * dx), acc);
        /* the min term, kept as 4 lanes until the end */
        const __m128i pm4 = _mm_add_epi32(_mm256_castsi256_si128(pm), _mm256_extracti128_si256(pm, 1));
        accm = _mm_fmadd_ps(_mm_cvtepi32_ps(pm4), _mm_set1_ps(FN(h2f)(b + 2) * dx), accm);
    }
    accm = _mm_add_ps(accm, _mm_movehl_ps(accm, accm));
    accm = _mm_add_ss(accm, _mm_movehdup_ps(accm));
    return FN(hsum)(acc) - _mm_cvtss_f32(accm);
}

static TGT float FN(dot_q4_K)(int64_t K, const void *w, const void *x) {
    return FN(dot_q45_K)(K, w, sizeof(vkl_block_q4_K), offsetof(vkl_block_q4_K, scales), 0, offsetof(vkl_block_q4_K, qs),
                         x, 0);
}

static TGT float FN(dot_q5_K)(int64_t K, const void *w, const void *x) {
    return FN(dot_q45_K)(K, w, sizeof(vkl_block_q5_K), offsetof(vkl_block_q5_K, scales), offsetof(vkl_block_q5_K, qh),
                         offsetof(vkl_block_q5_K, qs), x, 1);
}

static TGT float FN(dot_q6_K)(int64_t K, const void *w, const void *x) {
    const vkl_block_q6_K *b = w;
    const vkl_block_q8_K *a = x;
    const __m256i m4 = _mm256_set1_epi8(15), m2 = _mm256_set1_epi8(3);
    /* shuffle control: i16 #2g in the low 128-bit lane, #2g+1 in the high lane (ctrl0 + 4g) */
    const __m256i ctrl0 = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,
                                           2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < K / VKL_QK_K; i++) {
        FN(prefetch_ahead)(&b[i], sizeof b[i]);
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)b[i].scales);
        /* the -32 offset: 32 * sum over sub-blocks of scale * activation sum, in int32 lanes */
        const __m256i corr = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8), _mm256_loadu_si256((const __m256i *)a[i].bsums));
        __m256i isum = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(corr, 5));
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = b[i].ql + 64 * h;
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(b[i].qh + 32 * h));
            const __m256i sch = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(h ? _mm_srli_si128(sc8, 8) : sc8));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4));
            for (int g = 0; g < 4; g++) {
                const __m256i xv = _mm256_loadu_si256((const __m256i *)(a[i].qs + 128 * h + 32 * g));
                const __m256i s16 = _mm256_shuffle_epi8(sch, _mm256_add_epi8(ctrl0, _mm256_set1_epi8((char)(4 * g))));
                isum = _mm256_add_epi32(isum, FN(dot_scaled)(q[g], xv, s16));
            }
        }
        const float dd = FN(h2f)((const uint8_t *)&b[i].d) * a[i].d;
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(dd), acc);
    }
    return FN(hsum)(acc);
}

#define DEF_GEMM_ROWS(name)                                                                        \
    static TGT void FN(gemm_##name)(int64_t K, const void *W, size_t ws, int64_t nr, const void *X, \
                                    size_t xs, int64_t nt, float *y, int64_t ys) {                 \
        for (int64_t r = 0; r < nr; r++)                                                           \
            for (int64_t t = 0; t < nt; t++)                                                       \
                y[t * ys + r] = FN(dot_##name)(K, (const uint8_t *)W + r * ws, (const uint8_t *)X + t * xs); \
    }
DEF_GEMM_ROWS(q4_K)
DEF_GEMM_ROWS(q6_K)
DEF_GEMM_ROWS(q5_K)

/* Q2_K / Q3_K: dequantize each 256-block once (straight-line loops the compiler vectorizes),
 * then SIMD f32 dots for every token. */
static TGT void FN(deq_q2_K)(const void *src, float *y) {
    const vkl_block_q2_K *b = src;
    const float d = FN(h2f)((const uint8_t *)&b->d), dmin = FN(h2f)((const uint8_t *)&b->dmin);
    for (int half = 0; half < 2; half++)
        for (int g = 0; g < 4; g++)
            for (int sub = 0; sub < 2; sub++) {
                const int sc = b->scales[8 * half + 2 * g + sub];
                const float dl = d * (float)(sc & 15), ml = dmin * (float)(sc >> 4);
                const uint8_t *q = b->qs + 32 * half + 16 * sub;
                float *o = y + 128 * half + 32 * g + 16 * sub;
                for (int l = 0; l < 16; l++) o[l] = dl * (float)((q[l] >> (2 * g)) & 3) - ml;
            }
}

static TGT void FN(deq_q3_K)(const void *src, float *y) {
    const vkl_block_q3_K *b = src;
    const float d = FN(h2f)((const uint8_t *)&b->d);
    const uint8_t *s = b->scales;
    float dl[16];
    for (int j = 0; j < 16; j++) {
        const int lo = j < 8 ? (s[j] & 15) : (s[j - 8] >> 4);
        const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        dl[j] = d * (float)((lo | (hi << 4)) - 32);
    }
    for (int half = 0; half < 2; half++)
        for (int g = 0; g < 4; g++)
            for (int sub = 0; sub < 2; sub++) {
                const float f = dl[8 * half + 2 * g + sub];
                const uint8_t *q = b->qs + 32 * half + 16 * sub, *hm = b->hmask + 16 * sub;
                float *o = y + 128 * half + 32 * g + 16 * sub;
                const int bit = 4 * half + g;
                for (int l = 0; l < 16; l++)
                    o[l] = f * (float)(((q[l] >> (2 * g)) & 3) - (((hm[l] >> bit) & 1) ? 0 : 4));
            }
}

static TGT void FN(gemm_dequant_k)(void (*deq)(const void *, float *), size_t bsize, int64_t K, const void *W,
                                   size_t ws, int64_t nr, const void *X, size_t xs, int64_t nt, float *y, int64_t ys) {
    float buf[VKL_QK_K];
    for (int64_t r = 0; r < nr; r++) {
        float acc[VKL_GEMM_MAX_T] = {0};
        const uint8_t *row = (const uint8_t *)W + r * ws;
        for (int64_t i = 0; i < K / VKL_QK_K; i++) {
            deq(row + i * bsize, buf);
            for (int64_t t = 0; t < nt; t++)
                acc[t] += FN(dot_f32)(VKL_QK_K, buf, (const float *)((const uint8_t *)X + t * xs) + i * VKL_QK_K);
        }
        for (int64_t t = 0; t < nt; t++) y[t * ys + r] = acc[t];
    }
}

#define DEF_GEMM_DQ(T, name)                                                                       \
    static TGT void FN(gemm_##name)(int64_t K, const void *W, size_t ws, int64_t nr, const void *X, \
                                    size_t xs, int64_t nt, float *y, int64_t ys) {                 \
        FN(gemm_dequant_k)(FN(deq_##name), sizeof(T), K, W, ws, nr, X, xs, nt, y, ys);             \
    }
DEF_GEMM_DQ(vkl_block_q2_K, q2_K)
DEF_GEMM_DQ(vkl_block_q3_K, q3_K)

/* ---- activation quantization (same rounding as the portable version: nearest even) --------- */

/* 32 floats -> 32 int8 with scale amax/127; returns the sum of the quants. */
INL int FN(quant32)(const float *x, int8_t *q, float *d) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int j = 0; j < 4; j++) {
        v[j] = _mm256_loadu_ps(x + 8 * j);
        amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[j]));
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float am = _mm_cvtss_f32(m);
    *d = am / 127.0f;
    const __m256 id = _mm256_set1_ps(am > 0.0f ? 127.0f / am : 0.0f);
    __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v[0], id)), i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v[1], id));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v[2], id)), i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v[3], id));
    const __m256i sum = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
    /* pack to int8 (values are within +-127); packs interleave 128-bit lanes, permute restores */
    const __m256i p16a = _mm256_packs_epi32(i0, i1), p16b = _mm256_packs_epi32(i2, i3);
    const __m256i p8 = _mm256_packs_epi16(p16a, p16b);
    const __m256i ord = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)q, ord);
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

static TGT void FN(quant_q8_32)(const float *x, void *dst, int64_t K) {
    const int64_t nb = K / 32;
    float *d = dst, *s = d + nb;
    int8_t *q = (int8_t *)(s + nb);
    for (int64_t i = 0; i < nb; i++) {
        const int sum = FN(quant32)(x + 32 * i, q + 32 * i, &d[i]);
        s[i] = d[i] * (float)sum;
    }
}

/* Q8_32G: full groups of 4 blocks store [first halves of blocks 0-3][second halves of 0-3]. */
static TGT void FN(quant_q8_32g)(const float *x, void *dst, int64_t K) {
    const int64_t nb = K / 32, nb4 = nb / 4 * 4;
    float *d = dst, *s = d + nb;
    int8_t *q = (int8_t *)(s + nb);
    for (int64_t i = 0; i < nb; i++) {
        int8_t tmp[32];
        const int sum = FN(quant32)(x + 32 * i, i < nb4 ? tmp : q + 32 * i, &d[i]);
        s[i] = d[i] * (float)sum;
        if (i < nb4) {
            int8_t *g = q + 128 * (i / 4) + 16 * (i % 4);
            memcpy(g, tmp, 16);
            memcpy(g + 64, tmp + 16, 16);
        }
    }
}

static TGT void FN(quant_q8_K)(const float *x, void *dst, int64_t K) {
    vkl_block_q8_K *y = dst;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < K / VKL_QK_K; i++) {
        const float *xb = x + i * VKL_QK_K;
        __m256 amax = _mm256_setzero_ps();
        for (int j = 0; j < VKL_QK_K; j += 8) amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, _mm256_loadu_ps(xb + j)));
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        const float am = _mm_cvtss_f32(m);
        const __m256 id = _mm256_set1_ps(am > 0.0f ? 127.0f / am : 0.0f);
        for (int j = 0; j < VKL_QK_K; j += 16) {
            const __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + j), id));
            const __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + j + 8), id));
            const __m256i s16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8); /* 16 x i16 in order */
            const __m128i s8 = _mm_packs_epi16(_mm256_castsi256_si128(s16), _mm256_extracti128_si256(s16, 1));
            _mm_storeu_si128((__m128i *)(y[i].qs + j), s8);
            const __m256i t = _mm256_add_epi32(a, b);
            __m128i s = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
            y[i].bsums[j / 16] = (int16_t)_mm_cvtsi128_si32(s);
        }
        y[i].d = am / 127.0f;
    }
}

/* Fills the set with this variant's kernels. */
static void FN(fill_common)(vkl_kernel_set *ks) {
    vkl_gemm_kernel *tab = ks->k;
    ks->quant_q8_32 = FN(quant_q8_32);
    ks->quant_q8_K = FN(quant_q8_K);
    ks->quant_q8_32g = FN(quant_q8_32g);
    tab[VKL_TYPE_F32] = (vkl_gemm_kernel){FN(gemm_f32), VKL_ACT_F32};
    tab[VKL_TYPE_F16] = (vkl_gemm_kernel){FN(gemm_f16), VKL_ACT_F32};
    tab[VKL_TYPE_BF16] = (vkl_gemm_kernel){FN(gemm_bf16), VKL_ACT_F32};
    tab[VKL_TYPE_Q4_0] = (vkl_gemm_kernel){FN(gemm_q4_0), VKL_ACT_Q8_32};
    tab[VKL_TYPE_Q4_1] = (vkl_gemm_kernel){FN(gemm_q4_1), VKL_ACT_Q8_32};
    tab[VKL_TYPE_Q5_0] = (vkl_gemm_kernel){FN(gemm_q5_0), VKL_ACT_Q8_32};
    tab[VKL_TYPE_Q5_1] = (vkl_gemm_kernel){FN(gemm_q5_1), VKL_ACT_Q8_32};
    tab[VKL_TYPE_Q8_0] = (vkl_gemm_kernel){FN(gemm_q8_0), VKL_ACT_Q8_32};
    tab[VKL_TYPE_Q2_K] = (vkl_gemm_kernel){FN(gemm_q2_K), VKL_ACT_F32};
    tab[VKL_TYPE_Q3_K] = (vkl_gemm_kernel){FN(gemm_q3_K), VKL_ACT_F32};
    tab[VKL_TYPE_Q4_K] = (vkl_gemm_kernel){FN(gemm_q4_K), VKL_ACT_Q8_K};
    tab[VKL_TYPE_Q5_K] = (vkl_gemm_kernel){FN(gemm_q5_K), VKL_ACT_Q8_K};
    tab[VKL_TYPE_Q6_K] = (vkl_gemm_kernel){FN(gemm_q6_K), VKL_ACT_Q8_K};
}

#undef INL
#undef UNROLL4
#undef DOT_S8S8
