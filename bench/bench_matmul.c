/* Matmul throughput of the fast CPU kernels: mat-vec (N=1, memory-bound: GB/s of weights and the
 * fraction of the measured read bandwidth) and mat-mat (N=512: GFLOP/s and per-token speedup over
 * N=1), per type, at LLaMA-7B-like and 1B-like shapes, with 1 and 2 threads.
 * Usage: bench_matmul [type,type,...|all] [max_threads]
 *        bench_matmul --mm LEVEL [types] [threads]: at SIMD level LEVEL (vkl_cpu_force_simd), the
 *        batch (repacking) kernels against the mat-vec/small-tile kernels, N = 1..64 and 512 tokens,
 *        on 5632x2048 and 2048x2048 (microseconds per token, weights rotated through DRAM copies). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_kernels.h"

#include "membw.h"

/* ---- matmul ------------------------------------------------------------------------------------ */

static uint64_t rng = 88172645463325252ull;
static float rndf(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) & 0xFFFFFF) / (float)0x800000 - 1.0f;
}

/* A valid matrix of the type: quantize random rows with the reference quantizer. */
static int make_matrix(vkl_type t, int64_t M, int64_t K, uint8_t *W) {
    const vkl_type_traits *tt = vkl_type_get(t);
    float *row = malloc(sizeof(float) * (size_t)K);
    if (!row) return -1;
    const size_t rs = vkl_row_size(t, K);
    for (int64_t r = 0; r < M; r++) {
        if (r < 64) {
            for (int64_t k = 0; k < K; k++) row[k] = rndf() * 0.05f;
            tt->from_f32(row, W + (size_t)r * rs, K);
        } else {
            memcpy(W + (size_t)r * rs, W + (size_t)(r % 64) * rs, rs); /* fast fill; same speed */
        }
    }
    free(row);
    return 0;
}

/* The type named in a comma list, or -1 (with a message) for an unknown name. */
static int parse_type(const char *name) {
    const int t = vkl_type_from_name(name);
    if (t < 0 || !vkl_type_get(t)) {
        fprintf(stderr, "unknown type %s\n", name);
        return -1;
    }
    return t;
}

/* Fills pool with as many copies of one M x K matrix of type t as fit (so that rotating through
 * them streams from DRAM); returns the number of copies (< 2: too big) or -1 on error. */
static int fill_copies(vkl_type t, int64_t M, int64_t K, uint8_t *pool, size_t pool_bytes, size_t *mat) {
    *mat = vkl_row_size(t, K) * (size_t)M;
    const int copies = (int)(pool_bytes / *mat);
    if (copies < 2) return copies;
    if (make_matrix(t, M, K, pool) != 0) return -1;
    for (int c = 1; c < copies; c++) memcpy(pool + (size_t)c * *mat, pool, *mat);
    return copies;
}


/* Best time per call of vkl_matmul with N tokens, rotating through `copies` copies of the matrix. */
static double time_matmul(vkl_threadpool *tp, vkl_type t, const uint8_t *pool, size_t mat, int copies, int64_t M,
                          int64_t K, const float *x, int64_t N, float *y, void *scratch) {
    const size_t rs = vkl_row_size(t, K);
    double best = 1e30;
    int i = 0;
    for (int round = 0; round < 3; round++) {
        int reps = 0;
        const double t0 = vkl_time_s();
        double dt;
        do {
            vkl_matmul(tp, t, pool + (size_t)(i++ % copies) * mat, rs, M, K, x, N, y, scratch);
            reps++;
            dt = vkl_time_s() - t0;
        } while (dt < 0.03);
        if (dt / reps < best) best = dt / reps;
    }
    return best;
}

static int mm_sweep(const char *level, const char *types, int threads, uint8_t *pool, size_t pool_bytes) {
    vkl_error err = {{0}};
    if (vkl_cpu_force_simd(level) != 0) {
        fprintf(stderr, "bench_matmul: this CPU lacks SIMD level %s\n", level);
        return 1;
    }
    vkl_threadpool *tp = vkl_threadpool_create(threads, &err);
    const int64_t NB = 512, KMAX = 2048;
    float *x = malloc(sizeof(float) * (size_t)(NB * KMAX)), *y = malloc(sizeof(float) * (size_t)(NB * 5632));
    if (!tp || !x || !y) {
        fprintf(stderr, "bench_matmul: %s\n", tp ? "out of memory" : err.msg);
        return 1;
    }
    for (int64_t i = 0; i < NB * KMAX; i++) x[i] = rndf();
    printf("SIMD level %s, %d thread(s); us per token: small-tile kernels (old), batch kernels (mm)\n", level, threads);
    printf("%-5s %5s %5s %4s | %9s %9s %6s\n", "type", "M", "K", "N", "old us/t", "mm us/t", "old/mm");
    static const struct { int64_t M, K; } shapes[] = {{5632, 2048}, {2048, 2048}};
    static const int64_t Ns[] = {1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 32, 48, 64, 512};
    char list[256];
    snprintf(list, sizeof(list), "%s", types);
    for (char *save = NULL, *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        const int t = parse_type(name);
        if (t < 0) continue;
        for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
            const int64_t M = shapes[si].M, K = shapes[si].K;
            size_t mat;
            const int copies = fill_copies((vkl_type)t, M, K, pool, pool_bytes, &mat);
            if (copies < 2) return 1;
            void *scratch = malloc(vkl_matmul_scratch_size((vkl_type)t, K, NB) + 1);
            if (!scratch) return 1;
            for (size_t ni = 0; ni < sizeof(Ns) / sizeof(Ns[0]); ni++) {
                const int64_t N = Ns[ni];
                vkl_cpu_force_mm_min_n(1 << 30); /* never the batch kernels */
                const double old = time_matmul(tp, (vkl_type)t, pool, mat, copies, M, K, x, N, y, scratch);
                vkl_cpu_force_mm_min_n(1); /* always (where the level has them) */
                const double mm = time_matmul(tp, (vkl_type)t, pool, mat, copies, M, K, x, N, y, scratch);
                printf("%-5s %5lld %5lld %4lld | %9.2f %9.2f %6.2f\n", vkl_type_name(t), (long long)M, (long long)K,
                       (long long)N, old * 1e6 / (double)N, mm * 1e6 / (double)N, old / mm);
                fflush(stdout);
            }
            vkl_cpu_force_mm_min_n(0);
            free(scratch);
        }
    }
    free(x);
    free(y);
    vkl_threadpool_destroy(tp);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--mm") == 0) {
        if (argc < 3) {
            fprintf(stderr, "usage: bench_matmul --mm LEVEL [types] [threads]\n");
            return 2;
        }
        vkl_error err = {{0}};
        const size_t bytes = (size_t)256 << 20;
        uint8_t *pool = vkl_aligned_alloc(4096, bytes, &err);
        if (!pool) {
            fprintf(stderr, "bench_matmul: %s\n", err.msg);
            return 1;
        }
        const int rc = mm_sweep(argv[2], argc > 3 ? argv[3] : "q4_0,q8_0", argc > 4 ? atoi(argv[4]) : 2, pool, bytes);
        vkl_aligned_free(pool);
        return rc;
    }
    const char *types = argc > 1 ? argv[1] : "q4_0,q8_0,q4_1,q5_0,q5_1,q4_k,q6_k,q2_k,q3_k,q5_k,f16,bf16,f32";
    if (strcmp(types, "all") == 0) types = "q4_0,q8_0,q4_1,q5_0,q5_1,q4_k,q6_k,q2_k,q3_k,q5_k,f16,bf16,f32";
    const int max_threads = argc > 2 ? atoi(argv[2]) : 2;
    if (max_threads < 1) {
        fprintf(stderr, "usage: bench_matmul [types|all] [max_threads]\n");
        return 2;
    }
    vkl_error err = {{0}};
    const size_t pool_bytes = (size_t)768 << 20; /* N=1 cycles through this much weight memory */
    uint8_t *pool = vkl_aligned_alloc(4096, pool_bytes, &err);
    if (!pool) {
        fprintf(stderr, "bench_matmul: %s\n", err.msg);
        return 1;
    }
    memset(pool, 1, pool_bytes);
    vkl_threadpool *tps[9] = {NULL};
    double bw[9] = {0};
    for (int th = 1; th <= max_threads && th < 9; th++) {
        tps[th] = vkl_threadpool_create(th, &err);
        if (!tps[th]) {
            fprintf(stderr, "bench_matmul: %s\n", err.msg);
            return 1;
        }
        bw[th] = bench_read_bw(tps[th], pool, pool_bytes, 5);
    }
    printf("SIMD level: %s\n", vkl_cpu_simd_level());
    for (int th = 1; th <= max_threads && th < 9; th++) printf("membw %d thread(s): %.2f GB/s\n", th, bw[th]);
    printf("%-5s %5s %5s %2s | %9s %7s %6s | %9s %8s %8s\n", "type", "M", "K", "th", "N=1 us", "GB/s",
           "%bw", "N=512 ms", "GFLOP/s", "speedup");

    static const struct { int64_t M, K; } shapes[] = {{4096, 4096}, {2048, 2048}, {5632, 2048}, {2048, 5632}};
    const int64_t NB = 512;
    float *x = malloc(sizeof(float) * (size_t)(NB * 5632));
    float *y = malloc(sizeof(float) * (size_t)(NB * 5632));
    if (!x || !y) return 1;
    for (int64_t i = 0; i < NB * 5632; i++) x[i] = rndf();

    char list[256];
    snprintf(list, sizeof(list), "%s", types);
    for (char *save = NULL, *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        const int t = parse_type(name);
        if (t < 0) continue;
        for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
            const int64_t M = shapes[si].M, K = shapes[si].K;
            size_t mat;
            const int copies = fill_copies((vkl_type)t, M, K, pool, pool_bytes, &mat);
            if (copies < 0) return 1;
            if (copies < 2) continue;
            void *scratch = malloc(vkl_matmul_scratch_size((vkl_type)t, K, NB) + 1);
            if (!scratch) return 1;
            for (int th = 1; th <= max_threads && th < 9; th++) {
                /* N=1: rotate through the copies so that every call streams from DRAM */
                /* about 0.3 s per round, streaming through distinct copies (at least 2) */
                const double tw = vkl_time_s();
                vkl_matmul(tps[th], (vkl_type)t, pool, vkl_row_size((vkl_type)t, K), M, K, x, 1, y, scratch);
                const double one = vkl_time_s() - tw;
                int reps = one > 0 ? (int)(0.3 / one) : copies;
                reps = reps < 2 ? 2 : (reps > copies * 2 ? copies * 2 : reps);
                double best1 = 1e30;
                for (int round = 0; round < 3; round++) {
                    const double t0 = vkl_time_s();
                    for (int i = 0; i < reps; i++)
                        vkl_matmul(tps[th], (vkl_type)t, pool + (size_t)(i % copies) * mat,
                                   vkl_row_size((vkl_type)t, K), M, K, x, 1, y, scratch);
                    const double dt = (vkl_time_s() - t0) / reps;
                    if (dt < best1) best1 = dt;
                }
                const double gbs = (double)mat / best1 / 1e9;
                /* N=512 */
                double bestb = 1e30;
                for (int round = 0; round < 2; round++) {
                    const double t0 = vkl_time_s();
                    vkl_matmul(tps[th], (vkl_type)t, pool, vkl_row_size((vkl_type)t, K), M, K, x, NB, y, scratch);
                    const double dt = vkl_time_s() - t0;
                    if (dt < bestb) bestb = dt;
                }
                printf("%-5s %5lld %5lld %2d | %9.1f %7.2f %5.1f%% | %9.2f %8.1f %7.1fx\n", vkl_type_name(t),
                       (long long)M, (long long)K, th, best1 * 1e6, gbs, 100.0 * gbs / bw[th], bestb * 1e3,
                       2.0 * (double)M * (double)K * NB / bestb / 1e9, best1 / (bestb / NB));
                fflush(stdout);
            }
            free(scratch);
        }
    }
    free(x);
    free(y);
    for (int th = 1; th <= max_threads && th < 9; th++) vkl_threadpool_destroy(tps[th]);
    vkl_aligned_free(pool);
    return 0;
}
