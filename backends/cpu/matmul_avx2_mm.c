/* AVX2 batch kernels (prompt processing) for Q4_0, Q8_0, Q4_K and Q6_K weights against 8-bit
 * activations (Q8_32 or Q8_K): the design of matmul_avx512_mm.c in 256 bits. A chunk of up to 64
 * weight rows is repacked, one K slice of 512 at a time, into panels of 8 rows where the 4 u8
 * quants of one k-quad of all 8 rows form one 32-byte vector, with a float scale per row and
 * block (32 elements; 16 for Q6_K). Each such vector is multiplied with one broadcast activation
 * dword, so an int32 lane holds one row's dot product; the register tile is 2 panels x 3 tokens
 * (16 rows x 3 tokens; Q8_0 without VNNI 16 x 2) with per-block float scaling. The packing is
 * done once per row chunk and slice and shared by all tokens; the packed quants take 32 KiB.
 *
 * Two variants of the k-quad dot product, compiled from the same body (this file includes itself
 * once per variant, MM_VARIANT set):
 *  - AVX-VNNI (VEX vpdpbusd: Intel 12th gen+, Zen 5): one instruction, u8 weights (Q8_0 biased
 *    by 128, corrected with the activation block sums), exact int32 accumulation.
 *  - plain AVX2 (fallback): vpmaddubsw (u8 x s8 -> adjacent pairs summed into saturating i16).
 *    Activations are |x| <= 127 (both quantizers clamp to +-127). Q4_0/Q4_K quants are 0..15:
 *    one pair is at most 2*15*127 = 3810 and a 32-block's 8 k-quads 8*3810 = 30480 < 32767, so
 *    the i16 sums are accumulated over the block and widened (vpmaddwd with ones) once. Q6_K
 *    quants are 0..63: a pair is at most 2*63*127 = 16002, widened every k-quad. Q8_0 uses the
 *    sign trick: |w| (u8, <= 128) times sign(x, w) (|.| <= 127), a pair at most 2*128*127 =
 *    32512 < 32767, widened every k-quad; the product is w*x exactly, no offset. */
#if !defined(MM_VARIANT)
#if defined(__x86_64__) || defined(__i386__)

#include <cpuid.h>
#include <immintrin.h>
#include <string.h>

#include "cpu/matmul_internal.h"

#define MM_KSE 512            /* elements per K slice */
#define MM_BMAX (MM_KSE / 16) /* blocks per slice at the smallest block (16 elements, Q6_K) */
#define MM_PANELS 8           /* panels of 8 rows per chunk (64 rows) */
#define MM_TCMAX 4            /* most tokens per register tile (tokens() handles tails up to 3) */
#define PANEL_Q (MM_KSE * 8)  /* bytes of packed quants per panel and slice */

typedef struct mm_panels {
    _Alignas(32) uint8_t q[MM_PANELS][PANEL_Q];   /* [block][k-quad][row][4] */
    _Alignas(32) float d[MM_PANELS][MM_BMAX * 8]; /* [block][row] weight scales */
    _Alignas(32) float m[MM_PANELS][MM_BMAX * 8]; /* [block][row] Q4_K mins (d_min * m) */
} mm_panels;

static const uint8_t g_zero_block[256]; /* stands in for the blocks of rows past the end */

/* The register arrays (P[2][MM_TCMAX]...) stay in registers only when the loops over them are
 * fully unrolled; clang takes "GCC unroll 8" as a count and left the token loops rolled. */
#if defined(__clang__)
#define MM_UNROLL _Pragma("clang loop unroll(full)")
#else
#define MM_UNROLL _Pragma("GCC unroll 8")
#endif

#define PTGT __attribute__((target("avx2,fma,f16c")))
#define PINL static inline __attribute__((always_inline)) PTGT

/* Pointer to block b of panel row r (rows past nr read a zero block: scale 0). The same block of
 * the next slice is prefetched into L2: the hardware prefetcher alone keeps too few of the chunk's
 * 64 row streams in flight when few tokens leave packing memory-bound (a prefetch past the end of
 * the weights never faults). */
PINL const uint8_t *blk(const uint8_t *W, size_t ws, int64_t nr, int64_t r, int64_t b, size_t bsize) {
    if (r >= nr) return g_zero_block;
    const uint8_t *p = W + (size_t)r * ws + (size_t)b * bsize;
    /* one slice ahead: bsize is a 32-block (Q4_0, Q8_0) or a 256-element super-block (K-quants) */
    const size_t ahead = bsize > 64 ? MM_KSE / 256 * bsize : MM_KSE / 32 * bsize;
    for (size_t o = 0; o < bsize; o += 64) _mm_prefetch((const char *)p + ahead + o, _MM_HINT_T1);
    return p;
}

/* 8 rows x 16 bytes (at byte offset `off` of each row's block) -> 4 vectors, vector g holding
 * bytes 4g..4g+3 of rows 0..7 in row order. The 128-bit lanes get A = rows 0|4, B = 1|5,
 * C = 2|6, D = 3|7; two rounds of unpacks then leave dword 4i+j = row 4i+j. */
PINL void transpose8x16(const uint8_t *const p[8], int off, __m256i g[4]) {
    __m256i v[4];
    for (int j = 0; j < 4; j++)
        v[j] = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(p[j] + off))),
                                       _mm_loadu_si128((const __m128i *)(p[4 + j] + off)), 1);
    const __m256i ab_lo = _mm256_unpacklo_epi32(v[0], v[1]), ab_hi = _mm256_unpackhi_epi32(v[0], v[1]);
    const __m256i cd_lo = _mm256_unpacklo_epi32(v[2], v[3]), cd_hi = _mm256_unpackhi_epi32(v[2], v[3]);
    g[0] = _mm256_unpacklo_epi64(ab_lo, cd_lo);
    g[1] = _mm256_unpackhi_epi64(ab_lo, cd_lo);
    g[2] = _mm256_unpacklo_epi64(ab_hi, cd_hi);
    g[3] = _mm256_unpackhi_epi64(ab_hi, cd_hi);
}

/* The fp16 scale at the start of each of the 8 blocks -> 8 floats. */
PINL void pack_scales(const uint8_t *const p[8], float *d) {
    uint16_t h[8];
    for (int r = 0; r < 8; r++) memcpy(&h[r], p[r], 2);
    _mm256_store_ps(d, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h)));
}

/* Q4_0 -> u8 quants 0..15 (weights d * (u - 8)); element j of a block is the low nibble of byte
 * j, element j + 16 the high one. */
static PTGT void pack_q4_0(const uint8_t *W, size_t ws, int64_t nr, int64_t b0, int64_t nbs, uint8_t *q, float *d, float *m) {
    (void)m;
    const __m256i m4 = _mm256_set1_epi8(15);
    for (int64_t b = 0; b < nbs; b++) {
        const uint8_t *p[8];
        for (int r = 0; r < 8; r++) p[r] = blk(W, ws, nr, r, b0 + b, sizeof(vkl_block_q4_0));
        __m256i g[4];
        transpose8x16(p, offsetof(vkl_block_q4_0, qs), g);
        uint8_t *o = q + b * 256;
        for (int j = 0; j < 4; j++) {
            _mm256_store_si256((__m256i *)(o + 32 * j), _mm256_and_si256(g[j], m4));
            _mm256_store_si256((__m256i *)(o + 32 * (4 + j)), _mm256_and_si256(_mm256_srli_epi16(g[j], 4), m4));
        }
        pack_scales(p, d + 8 * b);
    }
}

/* Q8_0 quants xor `bias`: 0x80 gives u8 biased by 128 (VNNI), 0 keeps them signed (plain). */
PINL void pack_q8_0(const uint8_t *W, size_t ws, int64_t nr, int64_t b0, int64_t nbs, uint8_t *q, float *d, char bias) {
    const __m256i bv = _mm256_set1_epi8(bias);
    for (int64_t b = 0; b < nbs; b++) {
        const uint8_t *p[8];
        for (int r = 0; r < 8; r++) p[r] = blk(W, ws, nr, r, b0 + b, sizeof(vkl_block_q8_0));
        __m256i g[4];
        uint8_t *o = q + b * 256;
        for (int h = 0; h < 2; h++) {
            transpose8x16(p, (int)offsetof(vkl_block_q8_0, qs) + 16 * h, g);
            for (int j = 0; j < 4; j++) _mm256_store_si256((__m256i *)(o + 32 * (4 * h + j)), _mm256_xor_si256(g[j], bv));
        }
        pack_scales(p, d + 8 * b);
    }
}

static PTGT void pack_q8_0_biased(const uint8_t *W, size_t ws, int64_t nr, int64_t b0, int64_t nbs, uint8_t *q, float *d, float *m) {
    (void)m;
    pack_q8_0(W, ws, nr, b0, nbs, q, d, (char)0x80);
}

static PTGT void pack_q8_0_signed(const uint8_t *W, size_t ws, int64_t nr, int64_t b0, int64_t nbs, uint8_t *q, float *d, float *m) {
    (void)m;
    pack_q8_0(W, ws, nr, b0, nbs, q, d, 0);
}

/* Q4_K -> u8 quants 0..15 per 32-block (sub-block), with d * scale and d_min * min per row
 * (weights d * sc * u - d_min * m). b0 and nbs count 32-blocks, multiples of 8 (whole
 * super-blocks); in each 32 bytes of qs, sub-block 2j is in the low nibbles, 2j + 1 in the high. */
static PTGT void pack_q4_K(const uint8_t *W, size_t ws, int64_t nr, int64_t b0, int64_t nbs, uint8_t *q, float *d, float *m) {
    const __m256i m4 = _mm256_set1_epi8(15);
    for (int64_t i = 0; i < nbs / 8; i++) {
        const uint8_t *p[8];
        for (int r = 0; r < 8; r++) p[r] = blk(W, ws, nr, r, b0 / 8 + i, sizeof(vkl_block_q4_K));
        for (int j = 0; j < 4; j++) {
            __m256i lo[4], hi[4]; /* bytes 0-15 and 16-31 of the 32 */
            transpose8x16(p, (int)offsetof(vkl_block_q4_K, qs) + 32 * j, lo);
            transpose8x16(p, (int)offsetof(vkl_block_q4_K, qs) + 32 * j + 16, hi);
            uint8_t *o = q + (8 * i + 2 * j) * 256;
            for (int k = 0; k < 4; k++) {
                _mm256_store_si256((__m256i *)(o + 32 * k), _mm256_and_si256(lo[k], m4));
                _mm256_store_si256((__m256i *)(o + 32 * (4 + k)), _mm256_and_si256(hi[k], m4));
                _mm256_store_si256((__m256i *)(o + 256 + 32 * k), _mm256_and_si256(_mm256_srli_epi16(lo[k], 4), m4));
                _mm256_store_si256((__m256i *)(o + 256 + 32 * (4 + k)), _mm256_and_si256(_mm256_srli_epi16(hi[k], 4), m4));
            }
        }
        for (int r = 0; r < 8; r++) {
            const vkl_block_q4_K *b = (const vkl_block_q4_K *)p[r];
            uint16_t hd, hm;
            memcpy(&hd, &b->d, 2);
            memcpy(&hm, &b->dmin, 2);
            const float dd = _cvtsh_ss(hd), dm = _cvtsh_ss(hm);
            const uint8_t *sc = b->scales;
            for (int sb = 0; sb < 8; sb++) { /* 6-bit scale and min of sub-block sb */
                const int s6 = sb < 4 ? sc[sb] & 63 : (sc[sb + 4] & 15) | ((sc[sb - 4] >> 6) << 4);
                const int m6 = sb < 4 ? sc[sb + 4] & 63 : (sc[sb + 4] >> 4) | ((sc[sb] >> 6) << 4);
                d[(8 * i + sb) * 8 + r] = dd * (float)s6;
                m[(8 * i + sb) * 8 + r] = dm * (float)m6;
            }
        }
    }
}

/* Q6_K -> u8 quants 0..63 per 16-block (sub-block), with d * scale per row (weights
 * d * sc * (u - 32)). b0 and nbs count 16-blocks, multiples of 16 (whole super-blocks). In each
 * half of 128 elements, ql byte l holds elements l (low nibble) and l + 64 (high), byte l + 32
 * elements l + 32 and l + 96; qh byte l the top 2 bits of l, l + 32, l + 64, l + 96 (bits 0-1 .. 6-7). */
static PTGT void pack_q6_K(const uint8_t *W, size_t ws, int64_t nr, int64_t b0, int64_t nbs, uint8_t *q, float *d, float *m) {
    (void)m;
    const __m256i m4 = _mm256_set1_epi8(15), m2 = _mm256_set1_epi8(3);
    for (int64_t i = 0; i < nbs / 16; i++) {
        const uint8_t *p[8];
        for (int r = 0; r < 8; r++) p[r] = blk(W, ws, nr, r, b0 / 16 + i, sizeof(vkl_block_q6_K));
        for (int h = 0; h < 2; h++) {
            __m256i ql[4][4], qh[2][4]; /* [16-byte column][k-quad] */
            for (int c = 0; c < 4; c++) transpose8x16(p, (int)offsetof(vkl_block_q6_K, ql) + 64 * h + 16 * c, ql[c]);
            for (int c = 0; c < 2; c++) transpose8x16(p, (int)offsetof(vkl_block_q6_K, qh) + 32 * h + 16 * c, qh[c]);
            for (int quarter = 0; quarter < 4; quarter++) /* elements 32 quarter .. +31 of the half */
                for (int x = 0; x < 2; x++) {               /* first or second 16 of them */
                    const __m256i *l = ql[(quarter & 1) * 2 + x], *hb = qh[x];
                    const __m128i shift = _mm_cvtsi32_si128(2 * quarter);
                    uint8_t *o = q + (16 * i + 8 * h + 2 * quarter + x) * 128;
                    for (int k = 0; k < 4; k++) {
                        const __m256i lo = _mm256_and_si256(quarter < 2 ? l[k] : _mm256_srli_epi16(l[k], 4), m4);
                        const __m256i hi = _mm256_and_si256(_mm256_srl_epi16(hb[k], shift), m2);
                        _mm256_store_si256((__m256i *)(o + 32 * k), _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4)));
                    }
                }
        }
        for (int r = 0; r < 8; r++) {
            const vkl_block_q6_K *b = (const vkl_block_q6_K *)p[r];
            uint16_t hd;
            memcpy(&hd, &b->d, 2);
            const float dd = _cvtsh_ss(hd);
            for (int sb = 0; sb < 16; sb++) d[(16 * i + sb) * 8 + r] = dd * (float)b->scales[sb];
        }
    }
}

typedef void (*pack_fn)(const uint8_t *W, size_t ws, int64_t nr, int64_t b0, int64_t nbs, uint8_t *q, float *d, float *m);

/* What a kernel's weights and activations are (see tile). */
enum { KIND_Q4_0, KIND_Q8_0, KIND_Q4_K, KIND_Q6_K };

/* Lane masks for the rows of a panel that exist (maskload/maskstore). */
PINL __m256i row_mask(int64_t left) {
    const int n = left > 8 ? 8 : (int)left;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

#define MM_VARIANT 1 /* plain AVX2 */
#define TGT __attribute__((target("avx2,fma,f16c")))
#define SUF(name) name##_avx2
#include "cpu/matmul_avx2_mm.c"
#undef MM_VARIANT
#undef TGT
#undef SUF

#define MM_VARIANT 2 /* AVX-VNNI */
#define TGT __attribute__((target("avx2,fma,f16c,avxvnni")))
#define SUF(name) name##_vnni
#include "cpu/matmul_avx2_mm.c"
#undef MM_VARIANT
#undef TGT
#undef SUF

/* AVX-VNNI: CPUID leaf 7 sub-leaf 1, EAX bit 4 (the caller has checked AVX2 and OS AVX state). */
int vkl_cpu_has_avxvnni(void) {
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 4));
}

void vkl_mm_fill_avx2(vkl_kernel_set *ks, int vnni) {
    ks->mm[VKL_TYPE_Q4_0] = (vkl_gemm_kernel){vnni ? mm_q4_0_vnni : mm_q4_0_avx2, VKL_ACT_Q8_32};
    ks->mm[VKL_TYPE_Q8_0] = (vkl_gemm_kernel){vnni ? mm_q8_0_vnni : mm_q8_0_avx2, VKL_ACT_Q8_32};
    ks->mm[VKL_TYPE_Q4_K] = (vkl_gemm_kernel){vnni ? mm_q4_K_vnni : mm_q4_K_avx2, VKL_ACT_Q8_K};
    ks->mm[VKL_TYPE_Q6_K] = (vkl_gemm_kernel){vnni ? mm_q6_K_vnni : mm_q6_K_avx2, VKL_ACT_Q8_K};
    /* Token counts from which these beat the 4-token AVX2 kernels: measured on 5632x2048 and
     * 2048x2048, 2 threads, Zen 5 (bench_matmul --mm avx2 and --mm avxvnni). */
    ks->mm_min_n[VKL_TYPE_Q4_0] = vnni ? 3 : 6;
    ks->mm_min_n[VKL_TYPE_Q8_0] = vnni ? 5 : 10;
    ks->mm_min_n[VKL_TYPE_Q4_K] = vnni ? 4 : 6;
    ks->mm_min_n[VKL_TYPE_Q6_K] = 3;
}

#else
#include "cpu/matmul_internal.h"
void vkl_mm_fill_avx2(vkl_kernel_set *ks, int vnni) {
    (void)ks;
    (void)vnni;
}
int vkl_cpu_has_avxvnni(void) { return 0; }
#endif

#else /* MM_VARIANT: the kernels of one variant (TGT, SUF defined by the includer above) */

#define INL static inline __attribute__((always_inline)) TGT
#define VNNI (MM_VARIANT == 2)

/* y[t][8 * j + lane] (+)= sum over the slice's blocks for R panels of 8 rows (j < R) and C
 * tokens. P is the exact int32 dot product of a block's packed quants with the activations.
 * Q4_0, Q8_0 (32-blocks of Q8_32): += d_w * (d_x * P - off * s_x), s_x = d_x * sum(x) (off: the
 *   weights' bias, 8 or 128; plain Q8_0 keeps its quants signed: off 0).
 * Q4_K (32-blocks of Q8_K): += (d sc)_w * d_x * P - (d_min m)_w * d_x * sum(x).
 * Q6_K (16-blocks of Q8_K): += (d sc)_w * (d_x * P - 32 * d_x * sum(x)).
 * b0 counts blocks of the kind's size (32 or 16 elements) from the start of the row. */
INL void SUF(tile)(const int KIND, const int R, const int C, const mm_panels *pn, int p0, int64_t nbs, const uint8_t *X,
                   size_t xs, int64_t nb, int64_t b0, float off, float *y, int64_t ys, const __m256i *mask, int first) {
    const int Q32 = KIND == KIND_Q4_0 || KIND == KIND_Q8_0, BE = KIND == KIND_Q6_K ? 16 : 32, K4 = BE / 4,
              BPS = 256 / BE; /* blocks per super-block */
    const int SIGNED = !VNNI && KIND == KIND_Q8_0; /* the sign trick */
    const float *xd[MM_TCMAX];
    const uint8_t *xq[MM_TCMAX];
    const vkl_block_q8_K *xk[MM_TCMAX];
    __m256 F[2][MM_TCMAX];
    MM_UNROLL for (int t = 0; t < C; t++) {
        if (Q32) {
            xd[t] = (const float *)(X + (size_t)t * xs);
            xq[t] = (const uint8_t *)(xd[t] + 2 * nb) + 32 * b0;
        } else {
            xk[t] = (const vkl_block_q8_K *)(X + (size_t)t * xs) + b0 / BPS;
        }
        MM_UNROLL for (int j = 0; j < R; j++)
            F[j][t] = first ? _mm256_setzero_ps() : _mm256_maskload_ps(y + t * ys + 8 * j, mask[j]);
    }
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256 offv = _mm256_set1_ps(off);
    for (int64_t b = 0; b < nbs; b++) {
        __m256i P[2][MM_TCMAX];
        MM_UNROLL for (int t = 0; t < C; t++)
            MM_UNROLL for (int j = 0; j < R; j++) P[j][t] = _mm256_setzero_si256();
        const uint8_t *wq = pn->q[p0] + b * 32 * K4;
        MM_UNROLL for (int k4 = 0; k4 < K4; k4++) {
            __m256i w[2], a[2];
            MM_UNROLL for (int j = 0; j < R; j++) {
                w[j] = _mm256_load_si256((const __m256i *)(wq + PANEL_Q * j + 32 * k4));
                a[j] = SIGNED ? _mm256_abs_epi8(w[j]) : w[j];
            }
            MM_UNROLL for (int t = 0; t < C; t++) {
                const uint8_t *xa = Q32 ? xq[t] + 32 * b : (const uint8_t *)xk[t][b / BPS].qs + BE * (b % BPS);
                int32_t xv;
                memcpy(&xv, xa + 4 * k4, 4);
                const __m256i xb = _mm256_set1_epi32(xv);
                MM_UNROLL for (int j = 0; j < R; j++) {
#if MM_VARIANT == 2
                    (void)a;
                    P[j][t] = _mm256_dpbusd_avx_epi32(P[j][t], w[j], xb);
#else
                    if (SIGNED) /* widened every k-quad (bounds at the top) */
                        P[j][t] = _mm256_add_epi32(P[j][t], _mm256_madd_epi16(_mm256_maddubs_epi16(a[j], _mm256_sign_epi8(xb, w[j])), ones));
                    else if (KIND == KIND_Q6_K)
                        P[j][t] = _mm256_add_epi32(P[j][t], _mm256_madd_epi16(_mm256_maddubs_epi16(w[j], xb), ones));
                    else /* 4-bit quants: i16 sums over the block, widened below */
                        P[j][t] = _mm256_add_epi16(P[j][t], _mm256_maddubs_epi16(w[j], xb));
#endif
                }
            }
        }
        __m256 dw[2], mw[2];
        MM_UNROLL for (int j = 0; j < R; j++) {
            dw[j] = _mm256_load_ps(pn->d[p0 + j] + 8 * b);
            mw[j] = KIND == KIND_Q4_K ? _mm256_load_ps(pn->m[p0 + j] + 8 * b) : dw[j];
        }
        MM_UNROLL for (int t = 0; t < C; t++) {
            __m256 dx, sx;
            if (Q32) {
                dx = _mm256_set1_ps(xd[t][b0 + b]);
                sx = _mm256_mul_ps(_mm256_set1_ps(xd[t][nb + b0 + b]), offv);
            } else if (KIND == KIND_Q4_K) {
                const vkl_block_q8_K *xs8 = &xk[t][b / 8];
                const int sb = (int)(b % 8);
                dx = _mm256_set1_ps(xs8->d);
                sx = _mm256_set1_ps(xs8->d * (float)(xs8->bsums[2 * sb] + xs8->bsums[2 * sb + 1]));
            } else {
                const vkl_block_q8_K *xs8 = &xk[t][b / 16];
                dx = _mm256_set1_ps(xs8->d);
                sx = _mm256_set1_ps(32.0f * xs8->d * (float)xs8->bsums[b % 16]);
            }
            MM_UNROLL for (int j = 0; j < R; j++) {
                __m256i p = P[j][t];
                if (!VNNI && (KIND == KIND_Q4_0 || KIND == KIND_Q4_K)) p = _mm256_madd_epi16(p, ones);
                const __m256 pf = _mm256_cvtepi32_ps(p);
                if (SIGNED)
                    F[j][t] = _mm256_fmadd_ps(dw[j], _mm256_mul_ps(pf, dx), F[j][t]);
                else if (KIND == KIND_Q4_K)
                    F[j][t] = _mm256_fnmadd_ps(mw[j], sx, _mm256_fmadd_ps(dw[j], _mm256_mul_ps(pf, dx), F[j][t]));
                else
                    F[j][t] = _mm256_fmadd_ps(dw[j], _mm256_fmsub_ps(pf, dx, sx), F[j][t]);
            }
        }
    }
    MM_UNROLL for (int t = 0; t < C; t++)
        MM_UNROLL for (int j = 0; j < R; j++) _mm256_maskstore_ps(y + t * ys + 8 * j, mask[j], F[j][t]);
}

/* All tokens for R panels starting at p0: full tiles of TC tokens, then one narrower tile. */
#define TILE_CASE(C) \
    case C: SUF(tile)(KIND, R, C, pn, p0, nbs, X + (size_t)t * xs, xs, nb, b0, off, y + t * ys, ys, mask, first); break;
INL void SUF(tokens)(const int KIND, const int R, const int TC, const mm_panels *pn, int p0, int64_t nbs, const uint8_t *X,
                     size_t xs, int64_t nb, int64_t b0, float off, int64_t nt, float *y, int64_t ys, const __m256i *mask,
                     int first) {
    int64_t t = 0;
    for (; t + TC <= nt; t += TC) SUF(tile)(KIND, R, TC, pn, p0, nbs, X + (size_t)t * xs, xs, nb, b0, off, y + t * ys, ys, mask, first);
    switch (nt - t) {
        TILE_CASE(1)
        TILE_CASE(2)
        TILE_CASE(3)
    default: break;
    }
}
#undef TILE_CASE

/* Rows [0, nr) of W (nr <= 64) against nt tokens, with R x TC register tiles. */
INL void SUF(mm_rows)(const int KIND, const int R, const int TC, pack_fn pack, float off, int64_t K, const uint8_t *W,
                      size_t ws, int64_t nr, const uint8_t *X, size_t xs, int64_t nt, float *y, int64_t ys) {
    mm_panels pn;
    const int64_t nb = K / 32;
    const int np = (int)((nr + 7) / 8);
    __m256i mask[MM_PANELS + 1];
    for (int p = 0; p < np; p++) mask[p] = row_mask(nr - 8 * p);
    const int64_t be = KIND == KIND_Q6_K ? 16 : 32, bps = MM_KSE / be; /* block size, blocks per slice */
    /* The first slice of every row at once (packing prefetches each next slice). */
    const size_t row_bytes = KIND == KIND_Q4_0   ? (size_t)K / 32 * sizeof(vkl_block_q4_0)
                             : KIND == KIND_Q8_0 ? (size_t)K / 32 * sizeof(vkl_block_q8_0)
                             : KIND == KIND_Q4_K ? (size_t)K / 256 * sizeof(vkl_block_q4_K)
                                                 : (size_t)K / 256 * sizeof(vkl_block_q6_K);
    const size_t slice_bytes = row_bytes * MM_KSE / (size_t)K, first_bytes = slice_bytes < row_bytes ? slice_bytes : row_bytes;
    for (int64_t r = 0; r < nr; r++)
        for (size_t o = 0; o < first_bytes; o += 64) _mm_prefetch((const char *)W + (size_t)r * ws + o, _MM_HINT_T1);
    for (int64_t b0 = 0; b0 < K / be; b0 += bps) {
        const int64_t nbs = K / be - b0 < bps ? K / be - b0 : bps;
        for (int p = 0; p < np; p++) pack(W + (size_t)(8 * p) * ws, ws, nr - 8 * p, b0, nbs, pn.q[p], pn.d[p], pn.m[p]);
        const int first = b0 == 0;
        int p = 0;
        for (; p + R <= np; p += R) SUF(tokens)(KIND, R, TC, &pn, p, nbs, X, xs, nb, b0, off, nt, y + 8 * p, ys, mask + p, first);
        if (p < np) SUF(tokens)(KIND, 1, TC, &pn, p, nbs, X, xs, nb, b0, off, nt, y + 8 * p, ys, mask + p, first);
    }
}

/* All rows in chunks of 8 * MM_PANELS (one repacked panel set). */
INL void SUF(mm_chunks)(const int KIND, const int R, const int TC, pack_fn pack, float off, int64_t K, const void *W,
                        size_t ws, int64_t nr, const void *X, size_t xs, int64_t nt, float *y, int64_t ys) {
    for (int64_t r = 0; r < nr; r += 8 * MM_PANELS) {
        const int64_t n = nr - r < 8 * MM_PANELS ? nr - r : 8 * MM_PANELS;
        SUF(mm_rows)(KIND, R, TC, pack, off, K, (const uint8_t *)W + (size_t)r * ws, ws, n, X, xs, nt, y + r, ys);
    }
}

/* Register tiles (16 ymm): int and float accumulators (2 x R x TC), R weight vectors (plain Q8_0:
 * and their absolute values) and the broadcast. Measured at 512 tokens, VNNI: 2x3 beat 1x6 by
 * 1.2x and matched 2x4; plain: 2x3 (Q4_0) and 2x2 (Q8_0) about matched 1x6 and 1x4. */
#define MM_R 2
#define MM_TC_Q8 (VNNI ? 3 : 2)

static TGT void SUF(mm_q4_0)(int64_t K, const void *W, size_t ws, int64_t nr, const void *X, size_t xs, int64_t nt,
                             float *y, int64_t ys) {
    SUF(mm_chunks)(KIND_Q4_0, MM_R, 3, pack_q4_0, 8.0f, K, W, ws, nr, X, xs, nt, y, ys);
}

static TGT void SUF(mm_q8_0)(int64_t K, const void *W, size_t ws, int64_t nr, const void *X, size_t xs, int64_t nt,
                             float *y, int64_t ys) {
    SUF(mm_chunks)(KIND_Q8_0, MM_R, MM_TC_Q8, VNNI ? pack_q8_0_biased : pack_q8_0_signed, VNNI ? 128.0f : 0.0f, K, W,
                   ws, nr, X, xs, nt, y, ys);
}

static TGT void SUF(mm_q4_K)(int64_t K, const void *W, size_t ws, int64_t nr, const void *X, size_t xs, int64_t nt,
                             float *y, int64_t ys) {
    SUF(mm_chunks)(KIND_Q4_K, MM_R, 3, pack_q4_K, 0.0f, K, W, ws, nr, X, xs, nt, y, ys);
}

static TGT void SUF(mm_q6_K)(int64_t K, const void *W, size_t ws, int64_t nr, const void *X, size_t xs, int64_t nt,
                             float *y, int64_t ys) {
    SUF(mm_chunks)(KIND_Q6_K, MM_R, 3, pack_q6_K, 32.0f, K, W, ws, nr, X, xs, nt, y, ys);
}

#undef MM_R
#undef MM_TC_Q8
#undef INL
#undef VNNI
#endif
