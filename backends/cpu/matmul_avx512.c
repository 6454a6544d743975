/* AVX-512 (F/BW/VL/VNNI/VBMI) kernels: the 256-bit kernels of matmul_x86_impl.h with vpdpbusd,
 * plus 512-bit one-token kernels (the generation hot path): Q4_0 and Q8_0 handle four 32-blocks
 * per step (vpermt2b gathers the quants and scales of 4 blocks from two loads, one vpdpbusd covers
 * two blocks); Q4_K, Q5_K and Q6_K take 64 bytes of quants per load. Batches of more tokens (see
 * mm_min_n) go to matmul_avx512_mm.c. */
#if defined(__x86_64__) || defined(__i386__)

#define TGT __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")))
#define FN(name) name##_avx512
#define DOT_U8S8(u, s) _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
#include "cpu/matmul_x86_impl.h"

#define INL static inline __attribute__((always_inline)) TGT
#define UNROLL4 _Pragma("GCC unroll 4")

/* Four decoded blocks: lo = elements 0-15 of blocks 0..3, hi = elements 16-31 (u8, matching the
 * Q8_32G activation layout), d = each block's scale over its 4 dpbusd lanes; weights are
 * d * (u - off). */
typedef struct grp4 {
    __m512i lo, hi;
    __m512 d;
} grp4;

/* Byte-gather indices. */
typedef struct idx_set {
    __m512i q4_w, q4_d, q8_lo, q8_hi, q8_d, lanes4;
} idx_set;

INL idx_set make_idx(void) {
    uint8_t a[64], b[64], c[64], e[64], f[64];
    int32_t l4[16];
    for (int p = 0; p < 64; p++) {
        const int blk = p / 16, e16 = p % 16, hb = (p / 2) / 4; /* hb: block of half-word p/2 */
        const int q4 = 18 * blk + 2 + e16; /* from L0 = b[0..63], L1 = b[8..71] */
        a[p] = (uint8_t)(q4 < 64 ? q4 : 64 + q4 - 8);
        b[p] = (uint8_t)(p < 32 ? 18 * hb + p % 2 : 0);
        c[p] = (uint8_t)(34 * blk + 2 + e16);          /* from b[0..127] */
        e[p] = (uint8_t)(34 * blk + 18 + e16 - 8);     /* from b[8..135] */
        f[p] = (uint8_t)(p < 32 ? 34 * hb + p % 2 : 0);
    }
    for (int s = 0; s < 16; s++) l4[s] = s / 4;
    idx_set r;
    r.q4_w = _mm512_loadu_si512(a);
    r.q4_d = _mm512_loadu_si512(b);
    r.q8_lo = _mm512_loadu_si512(c);
    r.q8_hi = _mm512_loadu_si512(e);
    r.q8_d = _mm512_loadu_si512(f);
    r.lanes4 = _mm512_loadu_si512(l4);
    return r;
}

/* q4_0: 4 blocks = 72 bytes; off = 8. */
INL void grp_q4_0(const uint8_t *b, const idx_set *ix, grp4 *g) {
    const __m512i l0 = _mm512_loadu_si512(b), l1 = _mm512_loadu_si512(b + 8);
    const __m512i m4 = _mm512_set1_epi8(15);
    const __m512i q = _mm512_permutex2var_epi8(l0, ix->q4_w, l1);
    g->lo = _mm512_and_si512(q, m4);
    g->hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
    g->d = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi8(ix->q4_d, l0)));
}

/* q8_0: 4 blocks = 136 bytes; quants biased by 128 to be unsigned, off = 128. */
INL void grp_q8_0(const uint8_t *b, const idx_set *ix, grp4 *g) {
    const __m512i l0 = _mm512_loadu_si512(b), l1 = _mm512_loadu_si512(b + 64);
    const __m512i k0 = _mm512_loadu_si512(b + 8), k1 = _mm512_loadu_si512(b + 72);
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    g->lo = _mm512_xor_si512(_mm512_permutex2var_epi8(l0, ix->q8_lo, l1), bias);
    g->hi = _mm512_xor_si512(_mm512_permutex2var_epi8(k0, ix->q8_hi, k1), bias);
    g->d = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutex2var_epi8(l0, ix->q8_d, l1)));
}

/* One token against a decoded group at block I. Per lane: d_w * (d_x * P - off/4 * s_x), so the 4
 * lanes of a block add up to d_w * (d_x * sum(u x) - off * s_x) with s_x = d_x * sum(x). */
#define TOKEN_STEP(G, XD, XQ, I, OFF4, ACC)                                                          \
    do {                                                                                            \
        const __m512 dx = _mm512_castps128_ps512(_mm_loadu_ps((XD) + (I)));                         \
        const __m512 sx = _mm512_castps128_ps512(_mm_mul_ps(_mm_loadu_ps((XD) + nb + (I)), _mm_set1_ps(OFF4))); \
        __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), (G).lo, _mm512_loadu_si512((XQ) + 32 * (I))); \
        p = _mm512_dpbusd_epi32(p, (G).hi, _mm512_loadu_si512((XQ) + 32 * (I) + 64));               \
        const __m512 v = _mm512_fmsub_ps(_mm512_cvtepi32_ps(p), _mm512_permutexvar_ps(ix.lanes4, dx), \
                                         _mm512_permutexvar_ps(ix.lanes4, sx));                     \
        ACC = _mm512_fmadd_ps((G).d, v, ACC);                                                       \
    } while (0)

/* One token against the same group of two rows: the activation loads and broadcasts are shared. */
#define TOKEN_STEP2(G0, G1, XD_, XQ_, I, OFF4, ACC0, ACC1)                                           \
    do {                                                                                            \
        const __m512 dx = _mm512_castps128_ps512(_mm_loadu_ps((XD_) + (I)));                        \
        const __m512 sx = _mm512_castps128_ps512(_mm_mul_ps(_mm_loadu_ps((XD_) + nb + (I)), _mm_set1_ps(OFF4))); \
        const __m512 dxv = _mm512_permutexvar_ps(ix.lanes4, dx), sxv = _mm512_permutexvar_ps(ix.lanes4, sx); \
        const __m512i xlo = _mm512_loadu_si512((XQ_) + 32 * (I)), xhi = _mm512_loadu_si512((XQ_) + 32 * (I) + 64); \
        __m512i p0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), (G0).lo, xlo);                      \
        __m512i p1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), (G1).lo, xlo);                      \
        p0 = _mm512_dpbusd_epi32(p0, (G0).hi, xhi);                                                 \
        p1 = _mm512_dpbusd_epi32(p1, (G1).hi, xhi);                                                 \
        ACC0 = _mm512_fmadd_ps((G0).d, _mm512_fmsub_ps(_mm512_cvtepi32_ps(p0), dxv, sxv), ACC0);     \
        ACC1 = _mm512_fmadd_ps((G1).d, _mm512_fmsub_ps(_mm512_cvtepi32_ps(p1), dxv, sxv), ACC1);     \
    } while (0)

/* gemm over rows x tokens (Q8_32G activations). Register tiles: 2 rows x 4 tokens share the
 * decoded groups and the activation loads; leftover rows/tokens use 1x4 and 1x1 tiles. Blocks past
 * the last full group of 4 go through the 256-bit decoder of the same type. */
#define XD(t) ((const float *)((const uint8_t *)X + (t) * xs))
#define XQ(t) ((const int8_t *)(XD(t) + 2 * nb))

#define DEF_GEMM512(name, BLK, OFF4)                                                                \
    INL float row1_tok1_##name(const uint8_t *row, const float *xd, const int8_t *xq, int64_t nb,   \
                               const idx_set *ixp) {                                                \
        const idx_set ix = *ixp;                                                                    \
        const int64_t ng = nb / 4;                                                                  \
        __m512 a0 = _mm512_setzero_ps(), a1 = a0;                                                   \
        int64_t gi = 0;                                                                             \
        for (; gi + 2 <= ng; gi += 2) {                                                             \
            grp4 g0, g1;                                                                            \
            FN(prefetch_ahead)(row + gi * 4 * sizeof(BLK), 8 * sizeof(BLK));                        \
            grp_##name(row + gi * 4 * sizeof(BLK), &ix, &g0);                                       \
            grp_##name(row + (gi + 1) * 4 * sizeof(BLK), &ix, &g1);                                 \
            TOKEN_STEP(g0, xd, xq, 4 * gi, OFF4, a0);                                               \
            TOKEN_STEP(g1, xd, xq, 4 * gi + 4, OFF4, a1);                                           \
        }                                                                                           \
        if (gi < ng) {                                                                              \
            grp4 g0;                                                                                \
            grp_##name(row + gi * 4 * sizeof(BLK), &ix, &g0);                                       \
            TOKEN_STEP(g0, xd, xq, 4 * gi, OFF4, a0);                                               \
        }                                                                                           \
        return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));                                         \
    }                                                                                               \
    /* One row against C <= 4 tokens: each decoded group serves all of them. */                 \
    INL void row1_tokc_##name(const int C, const uint8_t *row, const void *X, size_t xs, int64_t nb, \
                              float *y, int64_t ys, const idx_set *ixp) {                           \
        const idx_set ix = *ixp;                                                                    \
        const float *xd[4];                                                                         \
        const int8_t *xq[4];                                                                        \
        __m512 a[4];                                                                                \
        UNROLL4 for (int j = 0; j < C; j++) {                                                       \
            xd[j] = XD(j);                                                                          \
            xq[j] = XQ(j);                                                                          \
            a[j] = _mm512_setzero_ps();                                                             \
        }                                                                                           \
        for (int64_t gi = 0; gi < nb / 4; gi++) {                                                   \
            grp4 g;                                                                                 \
            grp_##name(row + gi * 4 * sizeof(BLK), &ix, &g);                                        \
            UNROLL4 for (int j = 0; j < C; j++) TOKEN_STEP(g, xd[j], xq[j], 4 * gi, OFF4, a[j]);    \
        }                                                                                           \
        UNROLL4 for (int j = 0; j < C; j++) y[j * ys] = _mm512_reduce_add_ps(a[j]);                 \
    }                                                                                               \
    INL void row2_tok4_##name(const uint8_t *row0, const uint8_t *row1, const void *X, size_t xs,   \
                              int64_t nb, float *y, int64_t ys, const idx_set *ixp) {               \
        const idx_set ix = *ixp;                                                                    \
        __m512 a[2][4];                                                                             \
        UNROLL4 for (int j = 0; j < 4; j++) a[0][j] = a[1][j] = _mm512_setzero_ps();                        \
        for (int64_t gi = 0; gi < nb / 4; gi++) {                                                   \
            grp4 g0, g1;                                                                            \
            grp_##name(row0 + gi * 4 * sizeof(BLK), &ix, &g0);                                      \
            grp_##name(row1 + gi * 4 * sizeof(BLK), &ix, &g1);                                      \
            TOKEN_STEP2(g0, g1, XD(0), XQ(0), 4 * gi, OFF4, a[0][0], a[1][0]);                      \
            TOKEN_STEP2(g0, g1, XD(1), XQ(1), 4 * gi, OFF4, a[0][1], a[1][1]);                      \
            TOKEN_STEP2(g0, g1, XD(2), XQ(2), 4 * gi, OFF4, a[0][2], a[1][2]);                      \
            TOKEN_STEP2(g0, g1, XD(3), XQ(3), 4 * gi, OFF4, a[0][3], a[1][3]);                      \
        }                                                                                           \
        UNROLL4 for (int j = 0; j < 4; j++) {                                                       \
            y[j * ys] = _mm512_reduce_add_ps(a[0][j]);                                              \
            y[j * ys + 1] = _mm512_reduce_add_ps(a[1][j]);                                          \
        }                                                                                           \
    }                                                                                               \
    /* Adds the blocks past the last full group (element order in Q8_32G) of one row. */          \
    INL void row_tail_##name(const uint8_t *row, const void *X, size_t xs, int64_t nb, int64_t nt,  \
                             float *y, int64_t ys) {                                                \
        for (int64_t t = 0; t < nt; t++) {                                                          \
            const float *xd = XD(t);                                                                \
            const int8_t *xq = XQ(t);                                                               \
            float part = 0.0f;                                                                      \
            for (int64_t i = nb / 4 * 4; i < nb; i++) {                                             \
                __m256i u;                                                                          \
                float dw, mw;                                                                       \
                dec_##name##_avx512(row, i, &u, &dw, &mw);                                          \
                const __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + 32 * i));              \
                part += hsum_avx512(_mm256_cvtepi32_ps(TAIL_DOT_##name(u, xv))) * dw * xd[i] + mw * xd[nb + i]; \
            }                                                                                       \
            y[t * ys] += part;                                                                      \
        }                                                                                           \
    }                                                                                               \
    static TGT void gemm512_##name(int64_t K, const void *W, size_t ws, int64_t nr, const void *X,  \
                                   size_t xs, int64_t nt, float *y, int64_t ys) {                   \
        const int64_t nb = K / 32, nt4 = nt / 4 * 4;                                                \
        const idx_set ix = make_idx();                                                              \
        int64_t r = 0;                                                                              \
        for (; r < nr; r++) {                                                                       \
            const uint8_t *row = (const uint8_t *)W + r * ws;                                       \
            const int two = r + 1 < nr && nt4 > 0;                                                  \
            for (int64_t t = 0; t < nt4; t += 4) {                                                  \
                if (two)                                                                            \
                    row2_tok4_##name(row, row + ws, (const uint8_t *)X + t * xs, xs, nb, y + t * ys + r, ys, &ix); \
                else                                                                                \
                    row1_tokc_##name(4, row, (const uint8_t *)X + t * xs, xs, nb, y + t * ys + r, ys, &ix); \
            }                                                                                       \
            for (int k = 0; k <= two; k++) {                                                        \
                const uint8_t *rk = row + k * ws, *X4 = (const uint8_t *)X + nt4 * xs;             \
                float *y4 = y + nt4 * ys + r + k;                                                   \
                if (nt - nt4 == 1) y4[0] = row1_tok1_##name(rk, XD(nt4), XQ(nt4), nb, &ix);        \
                if (nt - nt4 == 2) row1_tokc_##name(2, rk, X4, xs, nb, y4, ys, &ix);               \
                if (nt - nt4 == 3) row1_tokc_##name(3, rk, X4, xs, nb, y4, ys, &ix);               \
                if (nb % 4) row_tail_##name(rk, X, xs, nb, nt, y + r + k, ys);                      \
            }                                                                                       \
            r += two;                                                                               \
        }                                                                                           \
    }

#define TAIL_DOT_q4_0(u, x) _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, x)
#define TAIL_DOT_q8_0(w, x) \
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w))

DEF_GEMM512(q4_0, vkl_block_q4_0, 2.0f)
DEF_GEMM512(q8_0, vkl_block_q8_0, 32.0f)

/* Q4_K against Q8_K, 512 bits: one load covers 64 bytes of nibbles (sub-blocks 4h..4h+3); its low
 * nibbles are sub-blocks 4h and 4h+2, its high nibbles 4h+1 and 4h+3, and two 128-bit-lane
 * shuffles of the activations line them up. The arithmetic is the 256-bit kernel's (maddubs, then
 * madd with the 6-bit scales as i16, exact in int32), with half the instructions per element. */
/* pshufb control: the i16 of scale byte s in 128-bit lanes 0-1 and of byte s + 2 in lanes 2-3. */
INL __m512i q4k_ctl(int s) {
    return _mm512_inserti64x4(_mm512_set1_epi16((short)(0x8000 + s)), _mm256_set1_epi16((short)(0x8002 + s)), 1);
}

/* Q4_K (five = 0) and Q5_K (five = 1) blocks: d and dmin first, then the fields at these offsets. */
INL float dot512_q45_K(int64_t K, const uint8_t *w, size_t bsize, size_t o_scales, size_t o_qh, size_t o_qs,
                       const vkl_block_q8_K *a, const int five) {
    const __m512i m4 = _mm512_set1_epi8(15), one = _mm512_set1_epi8(1);
    /* low and high nibbles of the first 64-byte load: sub-blocks 0/2 and 1/3; second: 4/6, 5/7 */
    const __m512i ctl[4] = {q4k_ctl(0), q4k_ctl(1), q4k_ctl(4), q4k_ctl(5)};
    const __m128i dup_mins = _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
    __m512 acc = _mm512_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    for (int64_t i = 0; i < K / VKL_QK_K; i++) {
        const uint8_t *b = w + (size_t)i * bsize;
        prefetch_ahead_avx512(b, bsize);
        const __m128i scm = q4k_scales_avx512(b + o_scales);
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(scm, dup_mins));
        const __m256i pm = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)a[i].bsums), mins);
        const __m512i scv = _mm512_broadcast_i32x4(scm);
        /* Q5_K: bit k of qh byte l is the fifth bit of element l of sub-block k; [qh | qh >> 2]
         * puts the bits of sub-blocks 4h / 4h + 2 (and 4h + 1 / 4h + 3) at the same shift. */
        __m512i qh2 = _mm512_setzero_si512();
        if (five) {
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(b + o_qh));
            qh2 = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
        }
        __m512i isum = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            const __m512i q = _mm512_loadu_si512(b + o_qs + 64 * h);
            __m512i lo = _mm512_and_si512(q, m4), hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
            if (five) {
                const __m512i hl = _mm512_srl_epi16(qh2, _mm_cvtsi32_si128(4 * h));
                lo = _mm512_or_si512(lo, _mm512_slli_epi16(_mm512_and_si512(hl, one), 4));
                hi = _mm512_or_si512(hi, _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hl, 1), one), 4));
            }
            const __m512i x0 = _mm512_loadu_si512(a[i].qs + 128 * h), x1 = _mm512_loadu_si512(a[i].qs + 128 * h + 64);
            const __m512i xlo = _mm512_shuffle_i64x2(x0, x1, 0x44), xhi = _mm512_shuffle_i64x2(x0, x1, 0xEE);
            const __m512i slo = _mm512_shuffle_epi8(scv, ctl[2 * h]), shi = _mm512_shuffle_epi8(scv, ctl[2 * h + 1]);
            isum = _mm512_add_epi32(isum, _mm512_madd_epi16(_mm512_maddubs_epi16(lo, xlo), slo));
            isum = _mm512_add_epi32(isum, _mm512_madd_epi16(_mm512_maddubs_epi16(hi, xhi), shi));
        }
        const float dx = a[i].d;
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(h2f_avx512(b) * dx), acc);
        const __m128i pm4 = _mm_add_epi32(_mm256_castsi256_si128(pm), _mm256_extracti128_si256(pm, 1));
        accm = _mm_fmadd_ps(_mm_cvtepi32_ps(pm4), _mm_set1_ps(h2f_avx512(b + 2) * dx), accm);
    }
    accm = _mm_add_ps(accm, _mm_movehl_ps(accm, accm));
    accm = _mm_add_ss(accm, _mm_movehdup_ps(accm));
    return _mm512_reduce_add_ps(acc) - _mm_cvtss_f32(accm);
}

static TGT float dot512_q4_K(int64_t K, const void *w, const void *x) {
    return dot512_q45_K(K, w, sizeof(vkl_block_q4_K), offsetof(vkl_block_q4_K, scales), 0, offsetof(vkl_block_q4_K, qs), x, 0);
}

static TGT float dot512_q5_K(int64_t K, const void *w, const void *x) {
    return dot512_q45_K(K, w, sizeof(vkl_block_q5_K), offsetof(vkl_block_q5_K, scales), offsetof(vkl_block_q5_K, qh),
                        offsetof(vkl_block_q5_K, qs), x, 1);
}

/* Q6_K against Q8_K, 512 bits: per half (128 elements) one load of the 64 low-nibble bytes gives
 * elements 0-63 (low nibbles) and 64-127 (high nibbles) in element order, so the activations load
 * straight; the 2-bit high parts come from the 32 qh bytes shifted by 0/2 and 4/6. Each 128-bit lane
 * then holds 16 elements of one scale. Arithmetic as in the 256-bit kernel (-32 offset through the
 * activation block sums). */
static TGT float dot512_q6_K(int64_t K, const void *w, const void *x) {
    const vkl_block_q6_K *b = w;
    const vkl_block_q8_K *a = x;
    const __m512i m4 = _mm512_set1_epi8(15), m2 = _mm512_set1_epi8(3);
    /* pshufb controls: lane k takes i16 scale k (low vector) or 4 + k (high vector) */
    const __m512i ctl_lo = _mm512_set_epi32(0x07060706, 0x07060706, 0x07060706, 0x07060706, 0x05040504, 0x05040504,
                                            0x05040504, 0x05040504, 0x03020302, 0x03020302, 0x03020302, 0x03020302,
                                            0x01000100, 0x01000100, 0x01000100, 0x01000100);
    const __m512i ctl_hi = _mm512_add_epi8(ctl_lo, _mm512_set1_epi8(8));
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < K / VKL_QK_K; i++) {
        prefetch_ahead_avx512(&b[i], sizeof b[i]);
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)b[i].scales);
        const __m256i corr = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8), _mm256_loadu_si256((const __m256i *)a[i].bsums));
        __m512i isum = _mm512_zextsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(corr, 5)));
        for (int h = 0; h < 2; h++) {
            const __m512i l = _mm512_loadu_si512(b[i].ql + 64 * h);
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(b[i].qh + 32 * h));
            const __m512i h02 = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
            const __m512i h46 = _mm512_srli_epi16(h02, 4);
            const __m512i lo = _mm512_or_si512(_mm512_and_si512(l, m4), _mm512_slli_epi16(_mm512_and_si512(h02, m2), 4));
            const __m512i hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
                                               _mm512_slli_epi16(_mm512_and_si512(h46, m2), 4));
            const __m512i sch = _mm512_broadcast_i32x4(_mm_cvtepi8_epi16(h ? _mm_srli_si128(sc8, 8) : sc8));
            const __m512i x0 = _mm512_loadu_si512(a[i].qs + 128 * h), x1 = _mm512_loadu_si512(a[i].qs + 128 * h + 64);
            isum = _mm512_add_epi32(isum, _mm512_madd_epi16(_mm512_maddubs_epi16(lo, x0), _mm512_shuffle_epi8(sch, ctl_lo)));
            isum = _mm512_add_epi32(isum, _mm512_madd_epi16(_mm512_maddubs_epi16(hi, x1), _mm512_shuffle_epi8(sch, ctl_hi)));
        }
        const float dd = h2f_avx512((const uint8_t *)&b[i].d) * a[i].d;
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(dd), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

/* Every row against every token with a one-token dot kernel (few tokens: generation). */
#define DEF_ROWS512(name)                                                                           \
    static TGT void gemm512_##name(int64_t K, const void *W, size_t ws, int64_t nr, const void *X, size_t xs, \
                                   int64_t nt, float *y, int64_t ys) {                              \
        for (int64_t r = 0; r < nr; r++)                                                            \
            for (int64_t t = 0; t < nt; t++)                                                        \
                y[t * ys + r] = dot512_##name(K, (const uint8_t *)W + r * ws, (const uint8_t *)X + t * xs); \
    }
DEF_ROWS512(q4_K)
DEF_ROWS512(q5_K)
DEF_ROWS512(q6_K)

void vkl_gemm_fill_avx512(vkl_kernel_set *ks) {
    fill_common_avx512(ks);
    ks->k[VKL_TYPE_Q4_0] = (vkl_gemm_kernel){gemm512_q4_0, VKL_ACT_Q8_32G};
    ks->k[VKL_TYPE_Q8_0] = (vkl_gemm_kernel){gemm512_q8_0, VKL_ACT_Q8_32G};
    ks->k[VKL_TYPE_Q4_K] = (vkl_gemm_kernel){gemm512_q4_K, VKL_ACT_Q8_K};
    ks->k[VKL_TYPE_Q5_K] = (vkl_gemm_kernel){gemm512_q5_K, VKL_ACT_Q8_K};
    ks->k[VKL_TYPE_Q6_K] = (vkl_gemm_kernel){gemm512_q6_K, VKL_ACT_Q8_K};
    vkl_mm_fill_avx512(ks); /* batches (matmul_avx512_mm.c) */
}

#else
#include "cpu/matmul_internal.h"
void vkl_gemm_fill_avx512(vkl_kernel_set *ks) { (void)ks; }
#endif
