/* Host memory read bandwidth: every thread of a pool streams its share of a buffer much larger
 * than the last-level cache (AVX2 loads where available); best of several runs, for 1..N threads.
 * Usage: membw [max_threads] [buffer_MiB] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

typedef struct job {
    const uint8_t *buf;
    size_t n;
    double sink[64];
} job;

#if defined(__x86_64__)
__attribute__((target("avx2"))) static double read_avx2(const uint8_t *p, size_t n) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 128 <= n; i += 128) {
        a0 = _mm256_xor_si256(a0, _mm256_load_si256((const __m256i *)(p + i)));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
        a2 = _mm256_xor_si256(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
        a3 = _mm256_xor_si256(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    a0 = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    return (double)_mm256_extract_epi64(a0, 0);
}
#endif

static double read_plain(const uint8_t *p, size_t n) {
    uint64_t a = 0, b = 0;
    for (size_t i = 0; i + 16 <= n; i += 16) {
        uint64_t v0, v1;
        memcpy(&v0, p + i, 8);
        memcpy(&v1, p + i + 8, 8);
        a ^= v0;
        b ^= v1;
    }
    return (double)(a ^ b);
}

static int g_avx2;

static void reader(void *ctx, int ith, int nth) {
    job *j = ctx;
    const size_t per = j->n / (size_t)nth / 4096 * 4096;
    const uint8_t *p = j->buf + per * (size_t)ith;
#if defined(__x86_64__)
    if (g_avx2) {
        j->sink[ith % 64] += read_avx2(p, per);
        return;
    }
#endif
    j->sink[ith % 64] += read_plain(p, per);
}

int main(int argc, char **argv) {
    int max_threads = argc > 1 ? atoi(argv[1]) : 2;
    size_t mib = argc > 2 ? (size_t)atoi(argv[2]) : 1024;
    if (max_threads < 1 || mib < 16) {
        fprintf(stderr, "usage: membw [max_threads>=1] [buffer_MiB>=16]\n");
        return 2;
    }
#if defined(__x86_64__)
    __builtin_cpu_init();
    g_avx2 = __builtin_cpu_supports("avx2");
#endif
    vkl_error err = {{0}};
    const size_t n = mib << 20;
    uint8_t *buf = vkl_aligned_alloc(4096, n, &err);
    if (!buf) {
        fprintf(stderr, "membw: %s\n", err.msg);
        return 1;
    }
    for (size_t i = 0; i < n; i += 64) buf[i] = (uint8_t)i; /* fault the pages in */
    memset(buf, 1, n);
    printf("membw: %zu MiB buffer, %s loads\n", mib, g_avx2 ? "AVX2" : "scalar");
    for (int th = 1; th <= max_threads; th++) {
        vkl_threadpool *tp = vkl_threadpool_create(th, &err);
        if (!tp) {
            fprintf(stderr, "membw: %s\n", err.msg);
            vkl_aligned_free(buf);
            return 1;
        }
        job j = {.buf = buf, .n = n};
        double best = 0;
        for (int rep = 0; rep < 7; rep++) {
            const double t0 = vkl_time_s();
            vkl_threadpool_run(tp, reader, &j);
            const double dt = vkl_time_s() - t0;
            const double gbs = (double)(n / (size_t)th / 4096 * 4096 * (size_t)th) / dt / 1e9;
            if (gbs > best) best = gbs;
        }
        printf("threads %d: %.2f GB/s (best of 7)%s\n", th, best, j.sink[0] == 12345.0 ? " " : "");
        vkl_threadpool_destroy(tp);
    }
    vkl_aligned_free(buf);
    return 0;
}
