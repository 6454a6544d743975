/* Host memory read bandwidth, shared by the bench programs: every worker of a thread pool
 * streams its share of a buffer (AVX2 loads where the CPU has them). */
#ifndef VKL_BENCH_MEMBW_H
#define VKL_BENCH_MEMBW_H

#include <stdint.h>
#include <string.h>

#include "cpu/cpu_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

typedef struct bench_read_job {
    const uint8_t *buf;
    size_t per;         /* bytes per worker (a multiple of 4096) */
    uint64_t sink[64];  /* keeps the reads from being optimised away */
    int avx2;
} bench_read_job;

#if defined(__x86_64__)
__attribute__((target("avx2"))) static uint64_t bench_read_avx2(const uint8_t *p, size_t n) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 128 <= n; i += 128) {
        a0 = _mm256_xor_si256(a0, _mm256_load_si256((const __m256i *)(p + i)));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
        a2 = _mm256_xor_si256(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
        a3 = _mm256_xor_si256(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    a0 = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    return (uint64_t)_mm256_extract_epi64(a0, 0);
}
#endif

static uint64_t bench_read_plain(const uint8_t *p, size_t n) {
    uint64_t a = 0;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        a ^= v;
    }
    return a;
}

static void bench_reader(void *ctx, int ith, int nth) {
    bench_read_job *j = ctx;
    const uint8_t *p = j->buf + j->per * (size_t)ith;
    (void)nth;
#if defined(__x86_64__)
    if (j->avx2) {
        j->sink[ith % 64] ^= bench_read_avx2(p, j->per);
        return;
    }
#endif
    j->sink[ith % 64] ^= bench_read_plain(p, j->per);
}

static int bench_cpu_has_avx2(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

/* Best read bandwidth in GB/s over `reps` passes of the pool's workers over buf (4096-aligned,
 * n bytes, already faulted in). */
static double bench_read_bw(vkl_threadpool *tp, const uint8_t *buf, size_t n, int reps) {
    const int nth = vkl_threadpool_size(tp);
    bench_read_job j = {.buf = buf, .per = n / (size_t)nth / 4096 * 4096, .avx2 = bench_cpu_has_avx2()};
    double best = 0;
    for (int rep = 0; rep < reps; rep++) {
        const double t0 = vkl_time_s();
        vkl_threadpool_run(tp, bench_reader, &j);
        const double gbs = (double)(j.per * (size_t)nth) / (vkl_time_s() - t0) / 1e9;
        if (gbs > best) best = gbs;
    }
    return j.sink[0] == 12345 ? best + 0 * (double)j.sink[1] : best;
}

#endif
