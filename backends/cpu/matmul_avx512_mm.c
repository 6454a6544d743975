/* AVX-512 VNNI batch kernels (prompt processing) for Q4_0, Q8_0, Q4_K and Q6_K weights against
 * 8-bit activations (Q8_32 or Q8_K). A chunk of up to 64 weight rows is repacked, one K slice of
 * 512 at a time, into panels of 16 rows where the 4 u8 quants of one k-quad of all 16 rows form
 * one 64-byte vector, with a float scale per row and block (32 elements; 16 for Q6_K, whose
 * sub-blocks have their own scales). vpdpbusd multiplies such a vector with one broadcast
 * activation dword, so an int32 lane holds one row's dot product. The register tile is
 * 32 rows x 6 tokens: each packed vector serves 6 tokens, each activation dword 32 rows, and the
 * per-block scaling costs 3 (Q4_K: 4) float ops per 16 rows x 1 token x block. The packing is done
 * once per row chunk and slice and shared by all tokens; one slice of the activations of all
 * tokens stays in L2, and the packed quants (32 KiB of the 48 KiB of panels on the stack) in L1. */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <string.h>

#include "cpu/matmul_internal.h"

#define TGT __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define INL static inline __attribute__((always_inline)) TGT

#define MM_KSE 512         /* elements per K slice */
#define MM_BMAX 32         /* blocks per slice at the smallest block (16 elements, Q6_K) */
#define MM_PANELS 4        /* panels of 16 rows per chunk (64 rows) */
#define MM_TC 6            /* tokens per register tile */
#define PANEL_Q (MM_KSE * 16) /* bytes of packed quants per panel and slice */

/* How a block's int32 dot product P becomes a float (see tile). */
enum { MODE_Q32, MODE_KMIN, MODE_KOFF };

typedef struct mm_panels {
    _Alignas(64) uint8_t q[MM_PANELS][PANEL_Q];   /* [block][k-quad][row][4] */
    _Alignas(64) float d[MM_PANELS][MM_BMAX * 16]; /* [block][row] weight scales */
    _Alignas(64) float m[MM_PANELS][MM_BMAX * 16]; /* [block][row] Q4_K mins (d_min * m) */
} mm_panels;

/* The register arrays (P[2][MM_TC], F, w...) stay in registers only when the loops over them are
 * fully unrolled; clang takes "GCC unroll N" as a count and leaves them rolled (its mm_q4_0 had a
 * third of gcc's vpdpbusd and many stack accesses). */
#if defined(__clang__)
#define MM_UNROLL _Pragma("clang loop unroll(full)")
#else
#define MM_UNROLL _Pragma("GCC unroll 8")
#endif

static const uint8_t g_zero_block[256]; /* stands in for the blocks of rows past the end */

/* Pointer to block b of panel row r (rows past nr read a zero block). */
INL const uint8_t *blk(const uint8_t *W, size_t ws, int64_t nr, int64_t r, int64_t b, size_t bsize) {
    return r < nr ? W + (size_t)r * ws + (size_t)b * bsize : g_zero_block;
}

/* 16 rows x 16 bytes (at byte offset `off` of each row's block) -> 4 vectors, vector g holding
 * bytes 4g..4g+3 of rows 0..15 in row order. Rows go into 128-bit lanes as A = rows 0,4,8,12,
 * B = 1,5,9,13, C = 2,6,10,14, D = 3,7,11,15; two rounds of unpacks then leave lane 4i+j = row
 * 4i+j. */
INL void transpose16x16(const uint8_t *const p[16], int off, __m512i g[4]) {
    __m512i v[4];
    for (int j = 0; j < 4; j++) {
        __m512i a = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(p[j] + off)));
        a = _mm512_inserti32x4(a, _mm_loadu_si128((const __m128i *)(p[4 + j] + off)), 1);
        a = _mm512_inserti32x4(a, _mm_loadu_si128((const __m128i *)(p[8 + j] + off)), 2);
        v[j] = _mm512_inserti32x4(a, _mm_loadu_si128((const __m128i *)(p[12 + j] + off)), 3);
    }
    const __m512i ab_lo = _mm512_unpacklo_epi32(v[0], v[1]), ab_hi = _mm512_unpackhi_epi32(v[0], v[1]);
    const __m512i cd_lo = _mm512_unpacklo_epi32(v[2], v[3]), cd_hi = _mm512_unpackhi_epi32(v[2], v[3]);
    g[0] = _mm512_unpacklo_epi64(ab_lo, cd_lo);
    g[1] = _mm512_unpackhi_epi64(ab_lo, cd_lo);
    g[2] = _mm512_unpacklo_epi64(ab_hi, cd_hi);
    g[3] = _mm512_unpackhi_epi64(ab_hi, cd_hi);
}

/* The fp16 scale at the start of each of the 16 blocks -> 16 floats. */
INL void pack_scales(const uint8_t *const p[16], float *d) {
    uint16_t h[16];
    for (int r = 0; r < 16; r++) memcpy(&h[r], p[r], 2);
    _mm512_store_ps(d, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)h)));
}

/* Q4_0 -> u8 quants 0..15 (weights d * (u - 8)). */
static TGT void pack_q4_0(const uint8_t *W, size_t ws, int64_t nr, int64_t b0, int64_t nbs, uint8_t *q, float *d, float *m) {
    (void)m;
    const __m512i m4 = _mm512_set1_epi8(15);
    for (int64_t b = 0; b < nbs; b++) {
        const uint8_t *p[16];
        for (int r = 0; r < 16; r++) p[r] = blk(W, ws, nr, r, b0 + b, sizeof(vkl_block_q4_0));
        __m512i g[4];
        transpose16x16(p, offsetof(vkl_block_q4_0, qs), g);
        uint8_t *o = q + b * 512;
        for (int j = 0; j < 4; j++) {
            _mm512_store_si512((__m512i *)(o + 64 * j), _mm512_and_si512(g[j], m4));
            _mm512_store_si512((__m512i *)(o + 64 * (4 + j)), _mm512_and_si512(_mm512_srli_epi16(g[j], 4), m4));
        }
        pack_scales(p, d + 16 * b);
    }
}

/* Q8_0 -> u8 quants biased by 128 (weights d * (u - 128)). */
static TGT void pack_q8_0(const uint8_t *W, size_t ws, int64_t nr, int64_t b0, int64_t nbs, uint8_t *q, float *d, float *m) {
    (void)m;
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    for (int64_t b = 0; b < nbs; b++) {
        const uint8_t *p[16];
        for (int r = 0; r < 16; r++) p[r] = blk(W, ws, nr, r, b0 + b, sizeof(vkl_block_q8_0));
        __m512i g[4];
        uint8_t *o = q + b * 512;
        for (int h = 0; h < 2; h++) {
            transpose16x16(p, (int)offsetof(vkl_block_q8_0, qs) + 16 * h, g);
            for (int j = 0; j < 4; j++) _mm512_store_si512((__m512i *)(o + 64 * (4 * h + j)), _mm512_xor_si512(g[j], bias));
        }
        pack_scales(p, d + 16 * b);
    }
}

/* Q4_K -> u8 quants 0..15 per 32-block (sub-block), with d * scale and d_min * min per row
 * (weights d * sc * u - d_min * m). b0 and nbs are multiples of 8 (whole 256-blocks). */
static TGT void pack_q4_K(const uint8_t *W, size_t ws, int64_t nr, int64_t b0, int64_t nbs, uint8_t *q, float *d, float *m) {
    const __m512i m4 = _mm512_set1_epi8(15);
    for (int64_t i = 0; i < nbs / 8; i++) {
        const uint8_t *p[16];
        for (int r = 0; r < 16; r++) p[r] = blk(W, ws, nr, r, b0 / 8 + i, sizeof(vkl_block_q4_K));
        for (int j = 0; j < 4; j++) { /* 32 bytes: sub-block 2j in the low nibbles, 2j+1 in the high */
            __m512i lo[4], hi[4];
            transpose16x16(p, (int)offsetof(vkl_block_q4_K, qs) + 32 * j, lo);
            transpose16x16(p, (int)offsetof(vkl_block_q4_K, qs) + 32 * j + 16, hi);
            uint8_t *o = q + (8 * i + 2 * j) * 512;
            for (int k = 0; k < 4; k++) {
                _mm512_store_si512((__m512i *)(o + 64 * k), _mm512_and_si512(lo[k], m4));
                _mm512_store_si512((__m512i *)(o + 64 * (4 + k)), _mm512_and_si512(hi[k], m4));
                _mm512_store_si512((__m512i *)(o + 512 + 64 * k), _mm512_and_si512(_mm512_srli_epi16(lo[k], 4), m4));
                _mm512_store_si512((__m512i *)(o + 512 + 64 * (4 + k)), _mm512_and_si512(_mm512_srli_epi16(hi[k], 4), m4));
            }
        }
        for (int r = 0; r < 16; r++) {
            const vkl_block_q4_K *b = (const vkl_block_q4_K *)p[r];
            uint16_t hd, hm;
            memcpy(&hd, &b->d, 2);
            memcpy(&hm, &b->dmin, 2);
            const float dd = _cvtsh_ss(hd), dm = _cvtsh_ss(hm);
            for (int sb = 0; sb < 8; sb++) { /* 6-bit scale and min of sub-block sb */
                const uint8_t *sc = b->scales;
                const int s6 = sb < 4 ? sc[sb] & 63 : (sc[sb + 4] & 15) | ((sc[sb - 4] >> 6) << 4);
                const int m6 = sb < 4 ? sc[sb + 4] & 63 : (sc[sb + 4] >> 4) | ((sc[sb] >> 6) << 4);
                d[(8 * i + sb) * 16 + r] = dd * (float)s6;
                m[(8 * i + sb) * 16 + r] = dm * (float)m6;
            }
        }
    }
}

/* Q6_K -> u8 quants 0..63 per 16-block (sub-block), with d * scale per row (weights
 * d * sc * (u - 32)). b0 and nbs are multiples of 16 (whole 256-blocks). In each half of 128
 * elements, ql byte l holds elements l (low nibble) and l + 64 (high), byte l + 32 elements
 * l + 32 and l + 96; qh byte l holds the top 2 bits of l, l + 32, l + 64, l + 96 (bits 0-1 .. 6-7). */
static TGT void pack_q6_K(const uint8_t *W, size_t ws, int64_t nr, int64_t b0, int64_t nbs, uint8_t *q, float *d, float *m) {
    (void)m;
    const __m512i m4 = _mm512_set1_epi8(15), m2 = _mm512_set1_epi8(3);
    for (int64_t i = 0; i < nbs / 16; i++) {
        const uint8_t *p[16];
        for (int r = 0; r < 16; r++) p[r] = blk(W, ws, nr, r, b0 / 16 + i, sizeof(vkl_block_q6_K));
        for (int h = 0; h < 2; h++) {
            __m512i ql[4][4], qh[2][4]; /* [16-byte column][k-quad] */
            for (int c = 0; c < 4; c++) transpose16x16(p, (int)offsetof(vkl_block_q6_K, ql) + 64 * h + 16 * c, ql[c]);
            for (int c = 0; c < 2; c++) transpose16x16(p, (int)offsetof(vkl_block_q6_K, qh) + 32 * h + 16 * c, qh[c]);
            for (int quarter = 0; quarter < 4; quarter++) /* elements 32 quarter .. +31 of the half */
                for (int x = 0; x < 2; x++) {               /* first or second 16 of them */
                    const __m512i *l = ql[(quarter & 1) * 2 + x], *hb = qh[x];
                    uint8_t *o = q + (16 * i + 8 * h + 2 * quarter + x) * 256;
                    for (int k = 0; k < 4; k++) {
                        const __m512i lo = quarter < 2 ? _mm512_and_si512(l[k], m4) : _mm512_and_si512(_mm512_srli_epi16(l[k], 4), m4);
                        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(hb[k], 2 * quarter), m2);
                        _mm512_store_si512((__m512i *)(o + 64 * k), _mm512_or_si512(lo, _mm512_slli_epi16(hi, 4)));
                    }
                }
        }
        for (int r = 0; r < 16; r++) {
            const vkl_block_q6_K *b = (const vkl_block_q6_K *)p[r];
            uint16_t hd;
            memcpy(&hd, &b->d, 2);
            const float dd = _cvtsh_ss(hd);
            for (int sb = 0; sb < 16; sb++) d[(16 * i + sb) * 16 + r] = dd * (float)b->scales[sb];
        }
    }
}

/* y[t][16 * j + lane] (+)= sum over the slice's blocks for R panels of 16 rows (j < R) and C
 * tokens. P is the exact int32 dot product of a block's u8 quants with the activations.
 * MODE_Q32 (Q4_0/Q8_0, 32-blocks of Q8_32 activations): += d_w * (d_x * P - off * s_x),
 *   s_x = d_x * sum(x).
 * MODE_KMIN (Q4_K, 32-blocks of Q8_K): += (d sc)_w * d_x * P - (d_min m)_w * d_x * sum(x).
 * MODE_KOFF (Q6_K, 16-blocks of Q8_K): += (d sc)_w * (d_x * P - off * d_x * sum(x)).
 * b0 counts blocks of this mode's size (32 or 16 elements) from the start of the row. */
INL void tile(const int MODE, const int R, const int C, const mm_panels *pn, int p0, int64_t nbs, const uint8_t *X,
              size_t xs, int64_t nb, int64_t b0, float off, float *y, int64_t ys, const __mmask16 *mask, int first) {
    const int BE = MODE == MODE_KOFF ? 16 : 32, K4 = BE / 4, BPS = 256 / BE; /* blocks per 256 */
    const float *xd[MM_TC];
    const uint8_t *xq[MM_TC];
    const vkl_block_q8_K *xk[MM_TC];
    __m512 F[2][MM_TC];
    MM_UNROLL for (int t = 0; t < C; t++) {
        if (MODE != MODE_Q32) {
            xk[t] = (const vkl_block_q8_K *)(X + (size_t)t * xs) + b0 / BPS;
        } else {
            xd[t] = (const float *)(X + (size_t)t * xs);
            xq[t] = (const uint8_t *)(xd[t] + 2 * nb) + 32 * b0;
        }
        MM_UNROLL for (int j = 0; j < R; j++)
            F[j][t] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask[j], y + t * ys + 16 * j);
    }
    const __m512 offv = _mm512_set1_ps(off);
    for (int64_t b = 0; b < nbs; b++) {
        __m512i P[2][MM_TC];
        MM_UNROLL for (int t = 0; t < C; t++)
            MM_UNROLL for (int j = 0; j < R; j++) P[j][t] = _mm512_setzero_si512();
        const uint8_t *wq = pn->q[p0] + b * 64 * K4;
        MM_UNROLL for (int k4 = 0; k4 < K4; k4++) {
            __m512i w[2];
            MM_UNROLL for (int j = 0; j < R; j++) w[j] = _mm512_load_si512((const __m512i *)(wq + PANEL_Q * j + 64 * k4));
            MM_UNROLL for (int t = 0; t < C; t++) {
                const uint8_t *xa = MODE == MODE_Q32 ? xq[t] + 32 * b : (const uint8_t *)xk[t][b / BPS].qs + BE * (b % BPS);
                int32_t xv;
                memcpy(&xv, xa + 4 * k4, 4);
                const __m512i xb = _mm512_set1_epi32(xv);
                MM_UNROLL for (int j = 0; j < R; j++) P[j][t] = _mm512_dpbusd_epi32(P[j][t], w[j], xb);
            }
        }
        __m512 dw[2], mw[2];
        MM_UNROLL for (int j = 0; j < R; j++) {
            dw[j] = _mm512_load_ps(pn->d[p0 + j] + 16 * b);
            if (MODE == MODE_KMIN) mw[j] = _mm512_load_ps(pn->m[p0 + j] + 16 * b);
        }
        MM_UNROLL for (int t = 0; t < C; t++) {
            if (MODE == MODE_KMIN) {
                const vkl_block_q8_K *xb = &xk[t][b / 8];
                const int sb = (int)(b % 8);
                const __m512 dx = _mm512_set1_ps(xb->d);
                const __m512 sx = _mm512_set1_ps(xb->d * (float)(xb->bsums[2 * sb] + xb->bsums[2 * sb + 1]));
                MM_UNROLL for (int j = 0; j < R; j++)
                    F[j][t] = _mm512_fnmadd_ps(mw[j], sx, _mm512_fmadd_ps(dw[j], _mm512_mul_ps(_mm512_cvtepi32_ps(P[j][t]), dx), F[j][t]));
                continue;
            }
            __m512 dx, sx;
            if (MODE == MODE_KOFF) {
                const vkl_block_q8_K *xb = &xk[t][b / 16];
                dx = _mm512_set1_ps(xb->d);
                sx = _mm512_set1_ps(off * xb->d * (float)xb->bsums[b % 16]);
            } else {
                dx = _mm512_set1_ps(xd[t][b0 + b]);
                sx = _mm512_mul_ps(_mm512_set1_ps(xd[t][nb + b0 + b]), offv);
            }
            MM_UNROLL for (int j = 0; j < R; j++)
                F[j][t] = _mm512_fmadd_ps(dw[j], _mm512_fmsub_ps(_mm512_cvtepi32_ps(P[j][t]), dx, sx), F[j][t]);
        }
    }
    MM_UNROLL for (int t = 0; t < C; t++)
        MM_UNROLL for (int j = 0; j < R; j++) _mm512_mask_storeu_ps(y + t * ys + 16 * j, mask[j], F[j][t]);
}

/* All tokens for R panels starting at p0: full tiles of MM_TC tokens, then one narrower tile. */
#define TILE_CASE(C) \
    case C: tile(MODE, R, C, pn, p0, nbs, X + (size_t)t * xs, xs, nb, b0, off, y + t * ys, ys, mask, first); break;
INL void tokens(const int MODE, const int R, const mm_panels *pn, int p0, int64_t nbs, const uint8_t *X, size_t xs,
                int64_t nb, int64_t b0, float off, int64_t nt, float *y, int64_t ys, const __mmask16 *mask, int first) {
    int64_t t = 0;
    for (; t + MM_TC <= nt; t += MM_TC)
        tile(MODE, R, MM_TC, pn, p0, nbs, X + (size_t)t * xs, xs, nb, b0, off, y + t * ys, ys, mask, first);
    switch (nt - t) {
        TILE_CASE(1)
        TILE_CASE(2)
        TILE_CASE(3)
        TILE_CASE(4)
        TILE_CASE(5)
    default: break;
    }
}

typedef void (*pack_fn)(const uint8_t *W, size_t ws, int64_t nr, int64_t b0, int64_t nbs, uint8_t *q, float *d, float *m);

/* Rows [0, nr) of W (nr <= 64) against nt tokens. */
INL void mm_rows(const int MODE, pack_fn pack, float off, int64_t K, const uint8_t *W, size_t ws, int64_t nr, const uint8_t *X,
                 size_t xs, int64_t nt, float *y, int64_t ys) {
    mm_panels pn;
    const int64_t nb = K / 32;
    const int np = (int)((nr + 15) / 16);
    __mmask16 mask[MM_PANELS];
    for (int p = 0; p < np; p++) {
        const int64_t left = nr - 16 * p;
        mask[p] = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
    }
    const int64_t be = MODE == MODE_KOFF ? 16 : 32, bps = MM_KSE / be; /* block size, blocks per slice */
    for (int64_t b0 = 0; b0 < K / be; b0 += bps) {
        const int64_t nbs = K / be - b0 < bps ? K / be - b0 : bps;
        for (int p = 0; p < np; p++) pack(W + (size_t)(16 * p) * ws, ws, nr - 16 * p, b0, nbs, pn.q[p], pn.d[p], pn.m[p]);
        const int first = b0 == 0;
        int p = 0;
        for (; p + 2 <= np; p += 2) tokens(MODE, 2, &pn, p, nbs, X, xs, nb, b0, off, nt, y + 16 * p, ys, mask + p, first);
        if (p < np) tokens(MODE, 1, &pn, p, nbs, X, xs, nb, b0, off, nt, y + 16 * p, ys, mask + p, first);
    }
}

/* All rows, in chunks of 16 * MM_PANELS (what one repacked panel set holds); inlined into each
 * type's entry point below so MODE stays a constant. */
INL void mm_chunks(const int MODE, pack_fn pack, float off, int64_t K, const void *W, size_t ws, int64_t nr,
                   const void *X, size_t xs, int64_t nt, float *y, int64_t ys) {
    for (int64_t r = 0; r < nr; r += 16 * MM_PANELS) {
        const int64_t n = nr - r < 16 * MM_PANELS ? nr - r : 16 * MM_PANELS;
        mm_rows(MODE, pack, off, K, (const uint8_t *)W + (size_t)r * ws, ws, n, X, xs, nt, y + r, ys);
    }
}

static TGT void mm_q4_0(int64_t K, const void *W, size_t ws, int64_t nr, const void *X, size_t xs, int64_t nt, float *y,
                        int64_t ys) {
    mm_chunks(MODE_Q32, pack_q4_0, 8.0f, K, W, ws, nr, X, xs, nt, y, ys);
}

static TGT void mm_q8_0(int64_t K, const void *W, size_t ws, int64_t nr, const void *X, size_t xs, int64_t nt, float *y,
                        int64_t ys) {
    mm_chunks(MODE_Q32, pack_q8_0, 128.0f, K, W, ws, nr, X, xs, nt, y, ys);
}

static TGT void mm_q4_K(int64_t K, const void *W, size_t ws, int64_t nr, const void *X, size_t xs, int64_t nt, float *y,
                        int64_t ys) {
    mm_chunks(MODE_KMIN, pack_q4_K, 0.0f, K, W, ws, nr, X, xs, nt, y, ys);
}

static TGT void mm_q6_K(int64_t K, const void *W, size_t ws, int64_t nr, const void *X, size_t xs, int64_t nt, float *y,
                        int64_t ys) {
    mm_chunks(MODE_KOFF, pack_q6_K, 32.0f, K, W, ws, nr, X, xs, nt, y, ys);
}





void vkl_mm_fill_avx512(vkl_kernel_set *ks) {
    ks->mm[VKL_TYPE_Q4_0] = (vkl_gemm_kernel){mm_q4_0, VKL_ACT_Q8_32};
    ks->mm[VKL_TYPE_Q8_0] = (vkl_gemm_kernel){mm_q8_0, VKL_ACT_Q8_32};
    ks->mm[VKL_TYPE_Q4_K] = (vkl_gemm_kernel){mm_q4_K, VKL_ACT_Q8_K};
    ks->mm[VKL_TYPE_Q6_K] = (vkl_gemm_kernel){mm_q6_K, VKL_ACT_Q8_K};
    /* Token counts from which these beat the one-token kernels (their repacking costs about as much
     * as reading the weights a few times): measured on a 5632x2048 matrix, 2 threads, Zen 5. */
    ks->mm_min_n[VKL_TYPE_Q4_0] = 16;
    ks->mm_min_n[VKL_TYPE_Q8_0] = 12;
    ks->mm_min_n[VKL_TYPE_Q4_K] = 6;
    ks->mm_min_n[VKL_TYPE_Q6_K] = 10;
}

#else
#include "cpu/matmul_internal.h"
void vkl_mm_fill_avx512(vkl_kernel_set *ks) { (void)ks; }
#endif
