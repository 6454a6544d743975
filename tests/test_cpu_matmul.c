/* CPU thread pool and matmul kernels: every type, every SIMD level this CPU has, odd shapes,
 * 1-3 threads, all against vkl_matmul_ref. */
#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "cpu/cpu_kernels.h"
#include "test.h"

/* ---- thread pool ----------------------------------------------------------------------------- */

typedef struct tp_ctx {
    atomic_int hits[8];
    atomic_int bad_nth;
    int expect_nth;
    atomic_long total;
} tp_ctx;

static void tp_fn(void *p, int ith, int nth) {
    tp_ctx *c = p;
    if (nth != c->expect_nth || ith < 0 || ith >= nth) atomic_fetch_add(&c->bad_nth, 1);
    else atomic_fetch_add(&c->hits[ith], 1);
    atomic_fetch_add(&c->total, ith + 1);
}

static void test_threadpool(void) {
    vkl_error err = {{0}};
    CHECK(vkl_threadpool_create(0, &err) == NULL && err.msg[0], "create(0) must fail with a message");
    CHECK(vkl_threadpool_size(NULL) == 1, "size(NULL)");
    for (int n = 1; n <= 4; n++) {
        vkl_threadpool *tp = vkl_threadpool_create(n, &err);
        CHECK(tp != NULL, "create(%d): %s", n, err.msg);
        if (!tp) continue;
        CHECK(vkl_threadpool_size(tp) == n, "size %d", vkl_threadpool_size(tp));
        tp_ctx c;
        memset(&c, 0, sizeof(c));
        c.expect_nth = n;
        const int runs = n <= 2 ? 2000 : 200; /* more threads than cores: each run may need a time slice */
        for (int r = 0; r < runs; r++) vkl_threadpool_run(tp, tp_fn, &c);
        CHECK(atomic_load(&c.bad_nth) == 0, "n=%d: wrong ith/nth", n);
        for (int i = 0; i < n; i++) CHECK(atomic_load(&c.hits[i]) == runs, "n=%d worker %d ran %d times", n, i, atomic_load(&c.hits[i]));
        CHECK(atomic_load(&c.total) == (long)runs * n * (n + 1) / 2, "n=%d: total %ld", n, atomic_load(&c.total));
        vkl_threadpool_destroy(tp);
    }
    /* Workers that went to sleep must wake up again. */
    vkl_threadpool *tp = vkl_threadpool_create(3, &err);
    CHECK(tp != NULL, "%s", err.msg);
    if (tp) {
        tp_ctx c;
        memset(&c, 0, sizeof(c));
        c.expect_nth = 3;
        for (int r = 0; r < 3; r++) {
            struct timespec ts = {0, 30 * 1000 * 1000};
            nanosleep(&ts, NULL);
            vkl_threadpool_run(tp, tp_fn, &c);
        }
        for (int i = 0; i < 3; i++) CHECK(atomic_load(&c.hits[i]) == 3, "after sleep: worker %d ran %d", i, atomic_load(&c.hits[i]));
        vkl_threadpool_destroy(tp);
    }
    vkl_threadpool_destroy(NULL);
}

/* ---- matmul ---------------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static float rndf(float lo, float hi) { return lo + (hi - lo) * (float)(rnd() & 0xFFFFFF) / (float)0x1000000; }

static void put_half(uint8_t *blk, size_t off, float v) {
    const uint16_t h = vkl_f32_to_f16(v);
    memcpy(blk + off, &h, 2);
}

/* Random bytes for the quants, with sane (finite, small) scale fields. */
static void fill_weights(vkl_type t, uint8_t *w, int64_t K) {
    const vkl_type_traits *tt = vkl_type_get(t);
    if (t == VKL_TYPE_F32) {
        for (int64_t k = 0; k < K; k++) ((float *)w)[k] = rndf(-1, 1);
        return;
    }
    if (t == VKL_TYPE_F16 || t == VKL_TYPE_BF16) {
        for (int64_t k = 0; k < K; k++) {
            uint16_t h = t == VKL_TYPE_F16 ? vkl_f32_to_f16(rndf(-1, 1)) : vkl_f32_to_bf16(rndf(-1, 1));
            memcpy(w + 2 * k, &h, 2);
        }
        return;
    }
    const size_t ts = tt->type_size;
    for (size_t i = 0; i < (size_t)(K / tt->block_size) * ts; i++) w[i] = (uint8_t)rnd();
    for (uint8_t *b = w; b < w + (size_t)(K / tt->block_size) * ts; b += ts) {
        const float d = rndf(0.002f, 0.02f), m = rndf(-0.05f, 0.05f);
        switch (t) {
        case VKL_TYPE_Q4_0: case VKL_TYPE_Q5_0: case VKL_TYPE_Q8_0: put_half(b, 0, d); break;
        case VKL_TYPE_Q4_1: case VKL_TYPE_Q5_1: put_half(b, 0, d); put_half(b, 2, m); break;
        case VKL_TYPE_Q2_K: put_half(b, offsetof(vkl_block_q2_K, d), d); put_half(b, offsetof(vkl_block_q2_K, dmin), d); break;
        case VKL_TYPE_Q3_K: put_half(b, offsetof(vkl_block_q3_K, d), d); break;
        case VKL_TYPE_Q4_K: case VKL_TYPE_Q5_K: put_half(b, 0, d); put_half(b, 2, d); break;
        case VKL_TYPE_Q6_K: put_half(b, offsetof(vkl_block_q6_K, d), d); break;
        default: break;
        }
    }
}

static int is_float_type(vkl_type t) { return t == VKL_TYPE_F32 || t == VKL_TYPE_F16 || t == VKL_TYPE_BF16; }

/* Max over outputs of |y - ref| / (|w_r| |x_t|); returns -1 on a non-finite value. */
static double check_case(vkl_threadpool *tp, vkl_type t, int64_t M, int64_t K, int64_t N, size_t pad) {
    const size_t rs = vkl_row_size(t, K), ws = rs + pad;
    uint8_t *W = calloc((size_t)M, ws);
    float *x = malloc(sizeof(float) * (size_t)(N * K)), *y = malloc(sizeof(float) * (size_t)(N * M));
    float *yr = malloc(sizeof(float) * (size_t)(N * M)), *row = malloc(sizeof(float) * (size_t)K);
    const size_t ss = vkl_matmul_scratch_size(t, K, N);
    void *scratch = ss ? malloc(ss) : NULL;
    double *wn = malloc(sizeof(double) * (size_t)M), worst = 0;
    if (!W || !x || !y || !yr || !row || !wn || (ss && !scratch)) {
        worst = -1;
        goto out;
    }
    for (int64_t r = 0; r < M; r++) fill_weights(t, W + r * ws, K);
    for (int64_t i = 0; i < N * K; i++) x[i] = rndf(-1, 1);
    for (int64_t r = 0; r < M; r++) {
        vkl_type_get(t)->to_f32(W + r * ws, row, K);
        double s = 0;
        for (int64_t k = 0; k < K; k++) s += (double)row[k] * row[k];
        wn[r] = sqrt(s);
    }
    for (int64_t i = 0; i < N * M; i++) y[i] = NAN;
    vkl_matmul_ref(t, W, ws, M, K, x, N, yr);
    vkl_matmul(tp, t, W, ws, M, K, x, N, y, scratch);
    for (int64_t tt = 0; tt < N; tt++) {
        double xn = 0;
        for (int64_t k = 0; k < K; k++) xn += (double)x[tt * K + k] * x[tt * K + k];
        xn = sqrt(xn);
        for (int64_t r = 0; r < M; r++) {
            const double a = y[tt * M + r], b = yr[tt * M + r];
            if (!isfinite(a)) {
                worst = -1;
                goto out;
            }
            const double e = fabs(a - b) / (wn[r] * xn + 1e-30);
            if (e > worst) worst = e;
        }
    }
out:
    free(W); free(x); free(y); free(yr); free(row); free(scratch); free(wn);
    return worst;
}

static void test_matmul(void) {
    vkl_error err = {{0}};
    vkl_threadpool *pools[4] = {NULL};
    for (int n = 2; n <= 3; n++) {
        pools[n] = vkl_threadpool_create(n, &err);
        CHECK(pools[n] != NULL, "%s", err.msg);
        if (!pools[n]) return;
    }
    static const char *levels[] = {"scalar", "avx2", "avxvnni", "avx512"};
    const char *best = vkl_cpu_simd_level();
    printf("best SIMD level: %s\n", best);
    for (size_t li = 0; li < VKL_ARRAY_LEN(levels); li++) {
        if (vkl_cpu_force_simd(levels[li]) != 0) {
            printf("  level %s: not available on this CPU\n", levels[li]);
            continue;
        }
        for (int ti = 0; ti < vkl_type_supported_count(); ti++) {
            const vkl_type t = vkl_type_supported_at(ti);
            const int64_t bs = vkl_type_get(t)->block_size;
            const double tol = is_float_type(t) ? (t == VKL_TYPE_F32 ? 1e-5 : 1e-5) : 1e-2;
            /* 32-blocks: 1, 3 (tail only), 8 (two groups of 4) and 9 blocks (groups plus tail) */
            const int64_t Ks[] = {bs == 1 ? 1 : bs, bs == 1 ? 37 : 3 * bs, bs == 1 ? 256 : 8 * bs, bs == 1 ? 300 : (bs == 32 ? 9 : 5) * bs};
            const int64_t Ms[] = {1, 7, 33};
            const int64_t Ns[] = {1, 2, 7, 33};
            double worst = 0;
            int cases = 0;
            for (int ki = 0; ki < 4; ki++)
                for (int mi = 0; mi < 3; mi++)
                    for (int ni = 0; ni < 4; ni++)
                        for (int th = 1; th <= 3; th++) {
                            if (th > 1 && (ki + mi + ni + th) % 2) continue; /* half the threaded cases */
                            if (th > 1 && li == 0 && strcmp(best, "scalar") != 0) continue; /* threads: SIMD levels */
#ifdef VKLLM_SANITIZE
                            if (th == 3 || (mi == 2 && ni == 3 && ki == 3)) continue; /* keep ASan runs short */
#endif
                            const size_t pad = (size_t)((mi + ni) % 2) * 8; /* keeps f32 rows aligned */
                            const double e = check_case(pools[th], t, Ms[mi], Ks[ki], Ns[ni], pad);
                            CHECK(e >= 0 && e <= tol, "%s %s M=%lld K=%lld N=%lld threads=%d: rel err %g",
                                  levels[li], vkl_type_name(t), (long long)Ms[mi], (long long)Ks[ki],
                                  (long long)Ns[ni], th, e);
                            if (e > worst) worst = e;
                            cases++;
                        }
            /* A prompt-sized batch (more than one token tile) and a many-chunk mat-vec. */
            const int64_t Kb = bs == 1 ? 64 : (bs == 32 ? 128 : 256);
            const struct { int64_t M, N; int th; } big[] = {{9, 512, 2}, {21, 130, 3}, {1001, 1, 2}, {300, 3, 1}};
            for (size_t bi = 0; bi < VKL_ARRAY_LEN(big); bi++) {
                const double e = check_case(pools[big[bi].th], t, big[bi].M, Kb, big[bi].N, 0);
                CHECK(e >= 0 && e <= tol, "%s %s M=%lld K=%lld N=%lld threads=%d: rel err %g", levels[li],
                      vkl_type_name(t), (long long)big[bi].M, (long long)Kb, (long long)big[bi].N, big[bi].th, e);
                if (e > worst) worst = e;
                cases++;
            }
            printf("  %-6s %-5s %3d cases, worst rel err %.3g\n", levels[li], vkl_type_name(t), cases, worst);
        }
    }
    vkl_cpu_force_simd(NULL);
    CHECK(vkl_cpu_force_simd("no-such-level") == -1, "unknown level accepted");
    CHECK(strcmp(vkl_cpu_simd_level(), best) == 0, "level %s after reset", vkl_cpu_simd_level());
    for (int n = 2; n <= 3; n++) vkl_threadpool_destroy(pools[n]);
}

/* Max |y_level - y_scalar| / (|w_r| |x_t|): the SIMD kernels quantize the activations exactly as the
 * scalar ones, so only the summation order differs (an indexing slip shows up as ~1e-2). */
static double vs_scalar(vkl_threadpool *tp, const char *level, vkl_type t, int64_t M, int64_t K, int64_t N) {
    const size_t ws = vkl_row_size(t, K);
    uint8_t *W = malloc((size_t)M * ws);
    float *x = malloc(sizeof(float) * (size_t)(N * K)), *y0 = malloc(sizeof(float) * (size_t)(N * M));
    float *y1 = malloc(sizeof(float) * (size_t)(N * M)), *row = malloc(sizeof(float) * (size_t)K);
    void *scratch = malloc(vkl_matmul_scratch_size(t, K, N));
    double worst = -1;
    if (W && x && y0 && y1 && row && scratch) {
        worst = 0;
        for (int64_t r = 0; r < M; r++) fill_weights(t, W + r * ws, K);
        for (int64_t i = 0; i < N * K; i++) x[i] = rndf(-1, 1);
        vkl_cpu_force_simd("scalar");
        vkl_matmul(tp, t, W, ws, M, K, x, N, y0, scratch);
        vkl_cpu_force_simd(level);
        vkl_matmul(tp, t, W, ws, M, K, x, N, y1, scratch);
        for (int64_t r = 0; r < M && worst >= 0; r++) {
            vkl_type_get(t)->to_f32(W + r * ws, row, K);
            double wn = 0;
            for (int64_t k = 0; k < K; k++) wn += (double)row[k] * row[k];
            for (int64_t tt = 0; tt < N; tt++) {
                double xn = 0;
                for (int64_t k = 0; k < K; k++) xn += (double)x[tt * K + k] * x[tt * K + k];
                const double a = y1[tt * M + r], b = y0[tt * M + r];
                if (!isfinite(a)) {
                    worst = -1;
                    break;
                }
                const double e = fabs(a - b) / (sqrt(wn * xn) + 1e-30);
                if (e > worst) worst = e;
            }
        }
    }
    free(W); free(x); free(y0); free(y1); free(row); free(scratch);
    return worst;
}

/* The batch kernels (Q4_0/Q8_0/Q4_K/Q6_K; AVX-512: 16-row panels, 6-token register tiles; AVX2:
 * 8-row panels, 3-token tiles; both 64-row chunks and K slices of 512) and the mat-vec kernels
 * around them: rows that are not a multiple of the panel or chunk, every token count up to two
 * tiles plus a remainder, K of one block, of a slice plus a tail group, and of several slices with
 * a partial last group. */
static void test_batch_shapes(void) {
    vkl_error err = {{0}};
    vkl_threadpool *tp = vkl_threadpool_create(2, &err);
    CHECK(tp != NULL, "%s", err.msg);
    if (!tp) return;
    vkl_cpu_force_mm_min_n(4); /* the batch kernels from 4 tokens on, whatever their usual threshold */
    static const char *levels[] = {"scalar", "avx2", "avxvnni", "avx512"};
    const vkl_type types[] = {VKL_TYPE_Q4_0, VKL_TYPE_Q8_0, VKL_TYPE_Q4_K, VKL_TYPE_Q6_K};
    const int64_t Ms[] = {17, 80};
    for (size_t li = 0; li < VKL_ARRAY_LEN(levels); li++) {
        if (vkl_cpu_force_simd(levels[li]) != 0) continue;
#ifdef VKLLM_SANITIZE
        if (li + 1 < VKL_ARRAY_LEN(levels) && vkl_cpu_force_simd(levels[li + 1]) == 0) continue; /* the best level only */
        vkl_cpu_force_simd(levels[li]);
#endif
        for (size_t ti = 0; ti < VKL_ARRAY_LEN(types); ti++) {
            const int64_t bs = vkl_type_get(types[ti])->block_size; /* K: 1 block, slices + tails */
            const int64_t Ks[] = {bs, bs == 32 ? 32 * 21 : 256 * 3, bs == 32 ? 32 * 37 : 256 * 9};
            double worst = 0;
            int cases = 0;
            for (size_t ki = 0; ki < VKL_ARRAY_LEN(Ks); ki++)
                for (size_t mi = 0; mi < VKL_ARRAY_LEN(Ms); mi++)
                    for (int64_t N = 1; N <= 13; N++) {
#ifdef VKLLM_SANITIZE
                        if (N % 3 != 1 && N != 6 && N != 13) continue; /* keep ASan runs short */
#endif
                        const double e = check_case(tp, types[ti], Ms[mi], Ks[ki], N, (size_t)(N % 2) * 8);
                        CHECK(e >= 0 && e <= 1e-2, "batch %s %s M=%lld K=%lld N=%lld: rel err %g", levels[li],
                              vkl_type_name(types[ti]), (long long)Ms[mi], (long long)Ks[ki], (long long)N, e);
                        if (e > worst) worst = e;
                        cases++;
                        if (li > 0) {
                            const double d = vs_scalar(tp, levels[li], types[ti], Ms[mi], Ks[ki], N);
                            CHECK(d >= 0 && d <= 2e-6, "batch %s %s M=%lld K=%lld N=%lld: differs from scalar by %g",
                                  levels[li], vkl_type_name(types[ti]), (long long)Ms[mi], (long long)Ks[ki], (long long)N, d);
                        }
                    }
            printf("  batch %-6s %-5s %3d cases, worst rel err %.3g\n", levels[li], vkl_type_name(types[ti]), cases, worst);
        }
    }
    vkl_cpu_force_simd(NULL);
    vkl_cpu_force_mm_min_n(0);
    vkl_threadpool_destroy(tp);
}

int main(void) {
    test_threadpool();
    test_matmul();
    test_batch_shapes();
    return test_finish();
}
