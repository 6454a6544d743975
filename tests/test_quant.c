/* Quant formats: round-trip error bounds per format and distribution, fixed points, hand-made
 * blocks with known values, f16/bf16 conversion edge cases, type names and row sizes. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "quant.h"
#include "test.h"
#include "types.h"

/* ---- deterministic random data ------------------------------------------------------------- */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng_next(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float rng_uniform(void) { return (float)((rng_next() >> 40) + 0.5) / 16777216.0f; } /* (0,1) */
static float rng_gauss(void) {
    float u = rng_uniform(), v = rng_uniform();
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

enum { DIST_GAUSS, DIST_UNIFORM, DIST_OUTLIERS, DIST_ZERO, DIST_CONST, DIST_COUNT };
static const char *dist_names[DIST_COUNT] = {"gaussian", "uniform", "outliers", "zero", "constant"};

static void fill(float *x, int64_t n, int dist) {
    for (int64_t i = 0; i < n; i++) {
        switch (dist) {
        case DIST_GAUSS: x[i] = 0.05f * rng_gauss(); break;
        case DIST_UNIFORM: x[i] = 2.0f * rng_uniform() - 1.0f; break;
        case DIST_OUTLIERS: x[i] = rng_gauss() * ((rng_next() % 64) == 0 ? 20.0f : 1.0f); break;
        case DIST_ZERO: x[i] = 0.0f; break;
        default: x[i] = (i / 512) % 2 ? -0.37f : 1.25f; break; /* constant per block */
        }
    }
}

/* Relative RMSE bounds (error RMS / data RMS) for gaussian, uniform and outlier-heavy data:
 * about 1.25x the worst value measured over the lengths below (which matches the theoretical
 * step/sqrt(12) of each format). A broken quantizer or packing lands near 1. */
typedef struct {
    vkl_type type;
    double gauss, uniform, outliers;
} bound;
static const bound bounds[] = {
    {VKL_TYPE_F32, 0, 0, 0},
    {VKL_TYPE_F16, 4e-4, 4e-4, 4e-4},
    {VKL_TYPE_BF16, 3e-3, 3e-3, 3e-3},
    {VKL_TYPE_Q8_0, 0.0075, 0.005, 0.015},
    {VKL_TYPE_Q6_K, 0.023, 0.017, 0.045},
    {VKL_TYPE_Q5_0, 0.055, 0.046, 0.12},
    {VKL_TYPE_Q5_1, 0.057, 0.038, 0.072},
    {VKL_TYPE_Q5_K, 0.047, 0.035, 0.067},
    {VKL_TYPE_Q4_0, 0.115, 0.085, 0.23},
    {VKL_TYPE_Q4_1, 0.10, 0.08, 0.15},
    {VKL_TYPE_Q4_K, 0.092, 0.072, 0.17},
    {VKL_TYPE_Q3_K, 0.195, 0.16, 0.18},
    {VKL_TYPE_Q2_K, 0.38, 0.29, 0.36},
};

static const bound *find_bound(vkl_type t) {
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++)
        if (bounds[i].type == t) return &bounds[i];
    return NULL;
}

static double rel_rmse(const float *x, const float *y, int64_t n, double *abs_rms) {
    double e = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)y[i] - (double)x[i];
        e += d * d;
        s += (double)x[i] * x[i];
    }
    if (abs_rms) *abs_rms = sqrt(e / (double)n);
    return s > 0 ? sqrt(e / s) : sqrt(e);
}

static int all_finite(const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(y[i])) return 0;
    return 1;
}

static void test_roundtrip(void) {
    enum { MAXN = 4096 };
    static float x[MAXN], y[MAXN];
    static uint8_t q[MAXN * 4 + 64], q2[MAXN * 4 + 64];
    const int64_t lengths[] = {32, 96, 256, 768, 4096};
    printf("%-6s %10s %10s %10s\n", "type", "gaussian", "uniform", "outliers");
    for (int ti = 0; ti < vkl_type_supported_count(); ti++) {
        vkl_type t = vkl_type_supported_at(ti);
        const vkl_type_traits *tr = vkl_type_get(t);
        const bound *b = find_bound(t);
        CHECK(tr != NULL && b != NULL, "type %d has traits and a bound", (int)t);
        if (!tr || !b) continue;
        double worst[3] = {0, 0, 0};
        for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
            int64_t n = lengths[li];
            if (n % tr->block_size) continue;
            for (int dist = 0; dist < DIST_COUNT; dist++) {
                fill(x, n, dist);
                size_t rs = vkl_row_size(t, n);
                memset(q, 0xAB, rs + 16);
                tr->from_f32(x, q, n);
                CHECK(q[rs] == 0xAB, "%s writes exactly row_size bytes", tr->name);
                tr->to_f32(q, y, n);
                CHECK(all_finite(y, n), "%s %s n=%lld: finite output", tr->name, dist_names[dist], (long long)n);
                double abs_rms, r = rel_rmse(x, y, n, &abs_rms);
                if (dist == DIST_ZERO) {
                    int zeros = 1;
                    for (int64_t i = 0; i < n; i++) zeros &= y[i] == 0.0f;
                    CHECK(zeros, "%s: all-zero data dequantizes to zeros", tr->name);
                } else if (dist == DIST_CONST) {
                    /* a constant block is representable almost exactly by every format */
                    CHECK(r < 0.01, "%s: constant blocks, rel rmse %.4g", tr->name, r);
                } else {
                    double lim = dist == DIST_GAUSS ? b->gauss : dist == DIST_UNIFORM ? b->uniform : b->outliers;
                    if (r > worst[dist]) worst[dist] = r;
                    CHECK(r <= lim, "%s %s n=%lld: rel rmse %.5f > bound %.5f", tr->name, dist_names[dist],
                          (long long)n, r, lim);
                }
                /* deterministic: quantizing the same data again gives the same bytes */
                tr->from_f32(x, q2, n);
                CHECK(memcmp(q, q2, rs) == 0, "%s: deterministic", tr->name);
            }
        }
        printf("%-6s %10.5f %10.5f %10.5f\n", tr->name, worst[0], worst[1], worst[2]);
    }
}

/* For the formats whose scale is fixed by the block's extreme value(s), quantizing the
 * dequantized data must reproduce the same bytes. */
static void test_fixed_points(void) {
    const vkl_type types[] = {VKL_TYPE_F32, VKL_TYPE_F16, VKL_TYPE_BF16, VKL_TYPE_Q8_0,
                              VKL_TYPE_Q4_0, VKL_TYPE_Q5_0, VKL_TYPE_Q4_1, VKL_TYPE_Q5_1};
    enum { N = 1024 };
    static float x[N], y[N];
    static uint8_t q[N * 4], q2[N * 4];
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const vkl_type_traits *tr = vkl_type_get(types[i]);
        for (int dist = 0; dist < 3; dist++) {
            fill(x, N, dist);
            size_t rs = vkl_row_size(types[i], N);
            tr->from_f32(x, q, N);
            tr->to_f32(q, y, N);
            tr->from_f32(y, q2, N);
            size_t diff = 0;
            for (size_t k = 0; k < rs; k++) diff += q[k] != q2[k];
            CHECK(diff == 0, "%s %s: requantizing the dequantized data changes %zu of %zu bytes", tr->name,
                  dist_names[dist], diff, rs);
        }
    }
}

/* ---- hand-made blocks ---------------------------------------------------------------------- */
#define H_HALF 0x3800 /* 0.5 */
#define H_QUARTER 0x3400 /* 0.25 */
#define H_ONE 0x3c00
#define H_TWO 0x4000

static void test_known_q4_0(void) {
    vkl_block_q4_0 b;
    memset(&b, 0, sizeof b);
    b.d = H_HALF;
    for (int j = 0; j < 16; j++) b.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    float y[32];
    vkl_dequantize_row_q4_0(&b, y, 32);
    int ok = 1;
    for (int j = 0; j < 16; j++) {
        ok &= y[j] == 0.5f * (float)(j - 8);       /* low nibble: elements 0..15 */
        ok &= y[j + 16] == 0.5f * (float)(7 - j);  /* high nibble: elements 16..31 */
    }
    CHECK(ok && y[0] == -4.0f && y[16] == 3.5f, "q4_0 known block (y0=%g y16=%g)", y[0], y[16]);
}

static void test_known_q8_0(void) {
    vkl_block_q8_0 b[2];
    b[0].d = H_QUARTER;
    b[1].d = 0xC000; /* -2 */
    for (int j = 0; j < 32; j++) {
        b[0].qs[j] = (int8_t)(j * 8 - 128);
        b[1].qs[j] = (int8_t)(j - 16);
    }
    float y[64];
    vkl_dequantize_row_q8_0(b, y, 64);
    int ok = 1;
    for (int j = 0; j < 32; j++) ok &= y[j] == 0.25f * (float)(j * 8 - 128) && y[32 + j] == -2.0f * (float)(j - 16);
    CHECK(ok && y[0] == -32.0f && y[63] == -30.0f, "q8_0 known blocks");
    /* quantizing: amax 127 -> d 1, values round half away from zero */
    float x[32];
    for (int j = 0; j < 32; j++) x[j] = (float)j - 15.5f;
    x[31] = 127.0f;
    vkl_block_q8_0 q;
    vkl_quantize_row_q8_0(x, &q, 32);
    CHECK(q.d == H_ONE && q.qs[0] == -16 && q.qs[14] == -2 && q.qs[15] == -1 && q.qs[16] == 1 && q.qs[31] == 127,
          "q8_0 quantize known values (d=%04x q0=%d q14=%d q15=%d)", q.d, q.qs[0], q.qs[14], q.qs[15]);
}

/* Q4_K: sub-block j has 6-bit scale sc_j and min m_j: y = d*sc_j*q - dmin*m_j. */
static void test_known_q4_K(void) {
    vkl_block_q4_K b;
    memset(&b, 0, sizeof b);
    b.d = H_HALF;
    b.dmin = H_QUARTER;
    const int sc[8] = {1, 2, 3, 63, 17, 33, 48, 63};
    const int mn[8] = {0, 5, 63, 7, 31, 16, 1, 62};
    /* packing: bytes 0-3 = sc0-3 | (sc4-7 >> 4) << 6; bytes 4-7 = m0-3 | (m4-7 >> 4) << 6;
     * bytes 8-11 = (sc4-7 & 15) | (m4-7 & 15) << 4 */
    for (int j = 0; j < 4; j++) {
        b.scales[j] = (uint8_t)(sc[j] | ((sc[j + 4] >> 4) << 6));
        b.scales[j + 4] = (uint8_t)(mn[j] | ((mn[j + 4] >> 4) << 6));
        b.scales[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
    }
    /* element e: chunk c = e/64, within it the first 32 in low nibbles, next 32 in high */
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) b.qs[32 * c + l] = (uint8_t)(((l + c) & 15) | (((l * 3 + c) & 15) << 4));
    float y[256];
    vkl_dequantize_row_q4_K(&b, y, 256);
    int bad = 0;
    for (int e = 0; e < 256; e++) {
        int c = e / 64, l = e % 32, hi = (e % 64) >= 32, j = e / 32;
        int qv = hi ? ((l * 3 + c) & 15) : ((l + c) & 15);
        float want = 0.5f * (float)sc[j] * (float)qv - 0.25f * (float)mn[j];
        if (y[e] != want) bad++;
    }
    CHECK(bad == 0, "q4_K known block: %d mismatches", bad);
}

/* Q6_K: y = d * scale[e/16] * (q6 - 32). */
static void test_known_q6_K(void) {
    vkl_block_q6_K b;
    memset(&b, 0, sizeof b);
    b.d = H_TWO;
    for (int j = 0; j < 16; j++) b.scales[j] = (int8_t)(j * 17 - 128);
    int qv[256];
    for (int e = 0; e < 256; e++) qv[e] = (e * 7 + 3) % 64;
    for (int e = 0; e < 256; e++) {
        int half = e / 128, r = e % 128, l = r % 32, g = r / 32;
        /* low nibble: ql[64*half + l + 32*(g&1)], nibble g>>1; high 2 bits: qh[32*half + l] bits 2g */
        b.ql[64 * half + l + 32 * (g & 1)] |= (uint8_t)((qv[e] & 15) << (4 * (g >> 1)));
        b.qh[32 * half + l] |= (uint8_t)((qv[e] >> 4) << (2 * g));
    }
    float y[256];
    vkl_dequantize_row_q6_K(&b, y, 256);
    int bad = 0;
    for (int e = 0; e < 256; e++)
        if (y[e] != 2.0f * (float)b.scales[e / 16] * (float)(qv[e] - 32)) bad++;
    CHECK(bad == 0, "q6_K known block: %d mismatches", bad);
}

/* Q3_K: 6-bit signed scales (stored +32), 2 low bits + hmask bit (set = no -4). */
static void test_known_q3_K(void) {
    vkl_block_q3_K b;
    memset(&b, 0, sizeof b);
    b.d = H_HALF;
    int sc[16], qv[256];
    for (int j = 0; j < 16; j++) sc[j] = (j * 5) % 64 - 32;
    for (int j = 0; j < 16; j++) {
        int s = sc[j] + 32;
        if (j < 8) b.scales[j] |= (uint8_t)(s & 15);
        else b.scales[j - 8] |= (uint8_t)((s & 15) << 4);
        b.scales[8 + j % 4] |= (uint8_t)((s >> 4) << (2 * (j / 4)));
    }
    for (int e = 0; e < 256; e++) {
        qv[e] = (e * 3 + 1) % 8 - 4; /* -4..3 */
        int u = qv[e] + 4, half = e / 128, r = e % 128, l = r % 32, g = r / 32;
        b.qs[32 * half + l] |= (uint8_t)((u & 3) << (2 * g));
        if (u & 4) b.hmask[e % 32] |= (uint8_t)(1 << (e / 32));
    }
    float y[256];
    vkl_dequantize_row_q3_K(&b, y, 256);
    int bad = 0;
    for (int e = 0; e < 256; e++)
        if (y[e] != 0.5f * (float)sc[e / 16] * (float)qv[e]) bad++;
    CHECK(bad == 0, "q3_K known block: %d mismatches", bad);
}

/* Q5_0: fifth bit of element j in bit j of qh. */
static void test_known_q5_0(void) {
    vkl_block_q5_0 b;
    memset(&b, 0, sizeof b);
    b.d = H_ONE;
    uint32_t qh = 0;
    int qv[32];
    for (int j = 0; j < 32; j++) {
        qv[j] = (j * 11) % 32;
        b.qs[j % 16] |= (uint8_t)((qv[j] & 15) << (j < 16 ? 0 : 4));
        qh |= (uint32_t)(qv[j] >> 4) << j;
    }
    memcpy(b.qh, &qh, 4);
    float y[32];
    vkl_dequantize_row_q5_0(&b, y, 32);
    int bad = 0;
    for (int j = 0; j < 32; j++) bad += y[j] != (float)(qv[j] - 16);
    CHECK(bad == 0, "q5_0 known block: %d mismatches", bad);
}

/* Q4_1 / Q5_1: y = d*q + m (unsigned values, no offset). */
static void test_known_q4_1_q5_1(void) {
    vkl_block_q4_1 a;
    a.d = H_HALF;
    a.m = 0xBC00; /* -1 */
    for (int j = 0; j < 16; j++) a.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    float y[32];
    vkl_dequantize_row_q4_1(&a, y, 32);
    int bad = 0;
    for (int j = 0; j < 16; j++) bad += y[j] != 0.5f * (float)j - 1.0f || y[j + 16] != 0.5f * (float)(15 - j) - 1.0f;
    CHECK(bad == 0, "q4_1 known block: %d mismatches", bad);

    vkl_block_q5_1 b;
    memset(&b, 0, sizeof b);
    b.d = H_QUARTER;
    b.m = H_TWO;
    uint32_t qh = 0;
    for (int j = 0; j < 32; j++) {
        int q = (j * 7 + 3) % 32;
        b.qs[j % 16] |= (uint8_t)((q & 15) << (j < 16 ? 0 : 4));
        qh |= (uint32_t)(q >> 4) << j;
    }
    memcpy(b.qh, &qh, 4);
    vkl_dequantize_row_q5_1(&b, y, 32);
    bad = 0;
    for (int j = 0; j < 32; j++) bad += y[j] != 0.25f * (float)((j * 7 + 3) % 32) + 2.0f;
    CHECK(bad == 0, "q5_1 known block: %d mismatches", bad);
}

/* Q5_K: as Q4_K plus qh[l] bit 2c (first 32 of chunk c) / 2c+1 (next 32). */
static void test_known_q5_K(void) {
    vkl_block_q5_K b;
    memset(&b, 0, sizeof b);
    b.d = H_ONE;
    b.dmin = H_HALF;
    for (int j = 0; j < 4; j++) {
        b.scales[j] = (uint8_t)(j + 1);      /* sc 0-3 = 1..4, sc 4-7 = 0 + 8 from bytes 8-11 */
        b.scales[j + 4] = (uint8_t)(2 * j);  /* m 0-3 = 0,2,4,6 */
        b.scales[j + 8] = (uint8_t)(8 | (1 << 4)); /* sc 4-7 = 8, m 4-7 = 1 */
    }
    int qv[256];
    for (int e = 0; e < 256; e++) {
        qv[e] = (e * 13 + 5) % 32;
        int c = e / 64, l = e % 32, hi = (e % 64) >= 32;
        b.qs[32 * c + l] |= (uint8_t)((qv[e] & 15) << (hi ? 4 : 0));
        b.qh[l] |= (uint8_t)((qv[e] >> 4) << (2 * c + hi));
    }
    float y[256];
    vkl_dequantize_row_q5_K(&b, y, 256);
    const int sc[8] = {1, 2, 3, 4, 8, 8, 8, 8}, mn[8] = {0, 2, 4, 6, 1, 1, 1, 1};
    int bad = 0;
    for (int e = 0; e < 256; e++)
        bad += y[e] != (float)sc[e / 32] * (float)qv[e] - 0.5f * (float)mn[e / 32];
    CHECK(bad == 0, "q5_K known block: %d mismatches", bad);
}

/* Q2_K: scales[j] = scale | min << 4 for 16-element sub-block j. */
static void test_known_q2_K(void) {
    vkl_block_q2_K b;
    memset(&b, 0, sizeof b);
    b.d = H_HALF;
    b.dmin = H_QUARTER;
    for (int j = 0; j < 16; j++) b.scales[j] = (uint8_t)((j % 16) | (((15 - j) % 16) << 4));
    int qv[256];
    for (int e = 0; e < 256; e++) {
        qv[e] = (e * 5 + e / 7) % 4;
        int half = e / 128, r = e % 128;
        b.qs[32 * half + r % 32] |= (uint8_t)(qv[e] << (2 * (r / 32)));
    }
    float y[256];
    vkl_dequantize_row_q2_K(&b, y, 256);
    int bad = 0;
    for (int e = 0; e < 256; e++) {
        int j = e / 16;
        bad += y[e] != 0.5f * (float)j * (float)qv[e] - 0.25f * (float)(15 - j);
    }
    CHECK(bad == 0, "q2_K known block: %d mismatches", bad);
}

/* Quantized values must be exactly what the block's own scales give for in-range data; we check
 * the K-quant quantizers pick a representable grid on data that is exactly on a grid. */
static void test_exact_grids(void) {
    float x[256], y[256];
    uint8_t q[256];
    /* q8_0: integers in [-127, 127] with the max present are exact */
    for (int j = 0; j < 32; j++) x[j] = (float)(j * 8 - 127);
    vkl_quantize_row_q8_0(x, q, 32);
    vkl_dequantize_row_q8_0(q, y, 32);
    CHECK(memcmp(x, y, 32 * sizeof(float)) == 0, "q8_0 exact on its grid");
    /* q4_0: multiples of 0.5 in [-4, 3.5] with -4 present are exact */
    for (int j = 0; j < 32; j++) x[j] = 0.5f * (float)((j % 16) - 8);
    vkl_quantize_row_q4_0(x, q, 32);
    vkl_dequantize_row_q4_0(q, y, 32);
    CHECK(memcmp(x, y, 32 * sizeof(float)) == 0, "q4_0 exact on its grid");
    /* q6_K: signed integers in [-32, 31] with -32 in every sub-block: scale 1 everywhere, exact */
    for (int e = 0; e < 256; e++) x[e] = e % 16 ? (float)((e * 7) % 64 - 32) : -32.0f;
    vkl_quantize_row_q6_K(x, q, 256);
    vkl_dequantize_row_q6_K(q, y, 256);
    CHECK(memcmp(x, y, sizeof x) == 0, "q6_K exact on its grid (%g)", rel_rmse(x, y, 256, NULL));
    /* q4_K: integers 0..15 in every sub-block (min 0): exact up to the fp16 super-scale
     * (d = max_scale/63 is not representable exactly) */
    for (int e = 0; e < 256; e++) x[e] = (float)((e * 5) % 16);
    vkl_quantize_row_q4_K(x, q, 256);
    vkl_dequantize_row_q4_K(q, y, 256);
    CHECK(rel_rmse(x, y, 256, NULL) < 5e-4, "q4_K exact on its grid (%g)", rel_rmse(x, y, 256, NULL));
}

/* NaN-safety of scales: a block that is zero apart from one tiny value, and huge values. */
static void test_extremes(void) {
    static float x[256], y[256];
    static uint8_t q[1024];
    for (int ti = 0; ti < vkl_type_supported_count(); ti++) {
        vkl_type t = vkl_type_supported_at(ti);
        const vkl_type_traits *tr = vkl_type_get(t);
        int64_t n = 256;
        memset(x, 0, sizeof x);
        x[3] = 1e-30f; /* subnormal-ish scale: flushes to a zero fp16 scale */
        tr->from_f32(x, q, n);
        tr->to_f32(q, y, n);
        CHECK(all_finite(y, n), "%s: tiny values give finite output", tr->name);
        for (int i = 0; i < 256; i++) x[i] = (i % 2 ? 1.0f : -1.0f) * 60000.0f * (float)(i % 7) / 7.0f;
        tr->from_f32(x, q, n);
        tr->to_f32(q, y, n);
        CHECK(all_finite(y, n), "%s: large (f16-range) values give finite output", tr->name);
    }
}

/* ---- f16 / bf16 ---------------------------------------------------------------------------- */
static uint32_t fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float bitsf(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_half(void) {
    CHECK(vkl_f32_to_f16(0.0f) == 0x0000 && vkl_f32_to_f16(-0.0f) == 0x8000, "f16 zeros");
    CHECK(vkl_f32_to_f16(1.0f) == 0x3c00 && vkl_f32_to_f16(-2.0f) == 0xc000, "f16 1, -2");
    CHECK(vkl_f32_to_f16(65504.0f) == 0x7bff, "f16 max");
    CHECK(vkl_f32_to_f16(65519.0f) == 0x7bff, "65519 rounds down to 65504");
    CHECK(vkl_f32_to_f16(65520.0f) == 0x7c00, "65520 rounds to inf");
    CHECK(vkl_f32_to_f16(-1e10f) == 0xfc00, "-huge -> -inf");
    CHECK(vkl_f32_to_f16(INFINITY) == 0x7c00 && vkl_f32_to_f16(-INFINITY) == 0xfc00, "f16 infs");
    uint16_t hn = vkl_f32_to_f16(NAN);
    CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) != 0, "f16 nan stays nan (%04x)", hn);
    CHECK(isnan(vkl_f16_to_f32(0x7e00)) && isinf(vkl_f16_to_f32(0x7c00)), "f16 nan/inf decode");
    /* subnormals: smallest 2^-24, largest (1023 * 2^-24) */
    CHECK(vkl_f16_to_f32(0x0001) == ldexpf(1.0f, -24), "f16 smallest subnormal");
    CHECK(vkl_f16_to_f32(0x03ff) == 1023.0f * ldexpf(1.0f, -24), "f16 largest subnormal");
    CHECK(vkl_f32_to_f16(ldexpf(1.0f, -24)) == 0x0001, "encode 2^-24");
    CHECK(vkl_f32_to_f16(ldexpf(1.0f, -25)) == 0x0000, "2^-25 ties to even (0)");
    CHECK(vkl_f32_to_f16(ldexpf(1.5f, -24)) == 0x0002, "1.5*2^-24 ties to even (2)");
    CHECK(vkl_f32_to_f16(ldexpf(1.0f, -25) * 1.0001f) == 0x0001, "just above half of 2^-24 rounds up");
    CHECK(vkl_f32_to_f16(ldexpf(1.0f, -14)) == 0x0400, "smallest normal");
    CHECK(vkl_f32_to_f16(ldexpf(1023.5f, -24)) == 0x0400, "subnormal rounding up into normal");
    CHECK(vkl_f32_to_f16(-ldexpf(3.0f, -24)) == 0x8003, "negative subnormal");
    /* ties in the normal range: 1 + 2^-11 is halfway between 1 and 1+2^-10 -> even (1) */
    CHECK(vkl_f32_to_f16(1.0f + ldexpf(1.0f, -11)) == 0x3c00, "tie to even down");
    CHECK(vkl_f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11)) == 0x3c02, "tie to even up");
    CHECK(vkl_f32_to_f16(1.0f + ldexpf(1.0f, -11) + ldexpf(1.0f, -20)) == 0x3c01, "above tie rounds up");
    CHECK(vkl_f32_to_f16(2047.5f) == vkl_f32_to_f16(2048.0f), "mantissa carry into exponent");
    /* exhaustive: every finite half survives f16 -> f32 -> f16 */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* nan payloads */
        if (vkl_f32_to_f16(vkl_f16_to_f32((uint16_t)h)) != h) bad++;
    }
    CHECK(bad == 0, "f16 round trip: %d failures", bad);

    /* bf16 */
    CHECK(vkl_f32_to_bf16(1.0f) == 0x3f80 && vkl_bf16_to_f32(0x3f80) == 1.0f, "bf16 1");
    CHECK(vkl_f32_to_bf16(bitsf(0x3f808000u)) == 0x3f80, "bf16 tie to even down");
    CHECK(vkl_f32_to_bf16(bitsf(0x3f818000u)) == 0x3f82, "bf16 tie to even up");
    CHECK(vkl_f32_to_bf16(bitsf(0x3f808001u)) == 0x3f81, "bf16 above tie");
    CHECK(vkl_f32_to_bf16(INFINITY) == 0x7f80 && vkl_f32_to_bf16(-INFINITY) == 0xff80, "bf16 infs");
    CHECK(vkl_f32_to_bf16(bitsf(0x7f7fffffu)) == 0x7f80, "bf16 FLT_MAX rounds to inf");
    uint16_t bn = vkl_f32_to_bf16(bitsf(0x7f800001u)); /* nan with only low payload bits */
    CHECK((bn & 0x7f80) == 0x7f80 && (bn & 0x7f) != 0, "bf16 nan stays nan (%04x)", bn);
    CHECK(vkl_bf16_to_f32(0x0001) == bitsf(0x00010000u), "bf16 subnormal decode");
    CHECK(fbits(vkl_bf16_to_f32(vkl_f32_to_bf16(-0.0f))) == 0x80000000u, "bf16 -0");
}

static void test_names(void) {
    CHECK(vkl_type_from_name("q4_0") == VKL_TYPE_Q4_0, "q4_0");
    CHECK(vkl_type_from_name("Q4_K") == VKL_TYPE_Q4_K, "Q4_K");
    CHECK(vkl_type_from_name("q4_k_m") == VKL_TYPE_Q4_K, "q4_k_m");
    CHECK(vkl_type_from_name("Q3_K_L") == VKL_TYPE_Q3_K, "Q3_K_L");
    CHECK(vkl_type_from_name("F16") == VKL_TYPE_F16 && vkl_type_from_name("bf16") == VKL_TYPE_BF16, "floats");
    CHECK(vkl_type_from_name("q6_k") == VKL_TYPE_Q6_K, "q6_k");
    CHECK(vkl_type_from_name("q4_2") == -1 && vkl_type_from_name("") == -1 && vkl_type_from_name("q4_k_x") == -1,
          "unknown names");
    CHECK(vkl_type_from_name("a_very_long_type_name_that_overflows_buffers") == -1, "long name");
    CHECK(!strcmp(vkl_type_name(VKL_TYPE_Q5_K), "q5_K") && !strcmp(vkl_type_name(VKL_TYPE_F32), "f32"), "names");
    CHECK(!strcmp(vkl_type_name(9999), "unknown") && !strcmp(vkl_type_name(-1), "unknown"), "unknown id");
    CHECK(!strcmp(vkl_type_name(VKL_TYPE_Q8_K), "q8_K") && vkl_type_get(VKL_TYPE_Q8_K) == NULL, "q8_K unsupported");
    CHECK(vkl_row_size(VKL_TYPE_F32, 10) == 40 && vkl_row_size(VKL_TYPE_F16, 10) == 20, "float row sizes");
    CHECK(vkl_row_size(VKL_TYPE_Q4_0, 4096) == 128 * 18 && vkl_row_size(VKL_TYPE_Q8_0, 64) == 68, "q row sizes");
    CHECK(vkl_row_size(VKL_TYPE_Q4_K, 4096) == 16 * 144 && vkl_row_size(VKL_TYPE_Q6_K, 256) == 210, "K row sizes");
    CHECK(vkl_row_size(VKL_TYPE_Q2_K, 512) == 168 && vkl_row_size(VKL_TYPE_Q3_K, 256) == 110 &&
              vkl_row_size(VKL_TYPE_Q5_K, 256) == 176,
          "K row sizes 2");
    /* every supported type: name round-trips, block sizes sane */
    for (int i = 0; i < vkl_type_supported_count(); i++) {
        vkl_type t = vkl_type_supported_at(i);
        const vkl_type_traits *tr = vkl_type_get(t);
        CHECK(tr && vkl_type_from_name(tr->name) == (int)t, "name round trip for %d", (int)t);
        CHECK(tr && tr->to_f32 && tr->from_f32 && tr->block_size >= 1, "traits for %d", (int)t);
        CHECK(tr && tr->is_quantized == (tr->block_size > 1), "is_quantized for %d", (int)t);
    }
}

int main(void) {
    test_names();
    test_half();
    test_known_q4_0();
    test_known_q8_0();
    test_known_q4_K();
    test_known_q6_K();
    test_known_q3_K();
    test_known_q5_0();
    test_known_q4_1_q5_1();
    test_known_q5_K();
    test_known_q2_K();
    test_exact_grids();
    test_extremes();
    test_roundtrip();
    test_fixed_points();
    return test_finish();
}
