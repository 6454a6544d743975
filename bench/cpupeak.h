/* The CPU's int8 multiply-accumulate peak, the compute roof of prompt processing: every worker of
 * a thread pool runs 12 independent chains of the instruction the batch kernels are built on
 * (AVX-512 VNNI vpdpbusd: 64 u8 x s8 products per instruction; AVX2 vpmaddubsw + vpmaddwd: 32
 * per pair), with no loads, for a fixed count; best of several runs. 0 where neither exists. */
#ifndef VKL_BENCH_CPUPEAK_H
#define VKL_BENCH_CPUPEAK_H

#include <stdint.h>

#include "cpu/cpu_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define PEAK_ITERS 20000000

typedef struct bench_peak_job {
    int vnni;
    int32_t sink[64];
} bench_peak_job;

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static int32_t bench_peak_vnni(void) {
    __m512i a[12];
    __m512i w = _mm512_set1_epi8(3);
    const __m512i x = _mm512_set1_epi8(5);
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_epi32(i);
    for (long i = 0; i < PEAK_ITERS; i++) {
        _Pragma("GCC unroll 12") for (int j = 0; j < 12; j++) a[j] = _mm512_dpbusd_epi32(a[j], w, x);
        __asm__ volatile("" : "+v"(w)); /* keeps the loop from being folded */
    }
    __m512i s = a[0];
    for (int i = 1; i < 12; i++) s = _mm512_add_epi32(s, a[i]);
    return _mm512_reduce_add_epi32(s);
}

__attribute__((target("avx2"))) static int32_t bench_peak_avx2(void) {
    __m256i a[12];
    __m256i w = _mm256_set1_epi8(3);
    const __m256i x = _mm256_set1_epi8(5), one = _mm256_set1_epi16(1);
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_epi32(i);
    for (long i = 0; i < PEAK_ITERS; i++) {
        _Pragma("GCC unroll 12") for (int j = 0; j < 12; j++)
            a[j] = _mm256_add_epi32(a[j], _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), one));
        __asm__ volatile("" : "+v"(w));
    }
    __m256i s = a[0];
    for (int i = 1; i < 12; i++) s = _mm256_add_epi32(s, a[i]);
    return _mm256_extract_epi32(s, 0);
}
#endif

static void bench_peak_worker(void *ctx, int ith, int nth) {
    bench_peak_job *j = ctx;
    (void)nth;
#if defined(__x86_64__)
    j->sink[ith % 64] += j->vnni ? bench_peak_vnni() : bench_peak_avx2();
#else
    (void)j;
    (void)ith;
#endif
}

/* Best int8 multiply-accumulates per second of the whole pool (0 if unmeasured); *what names the
 * instruction. */
static double bench_int8_peak(vkl_threadpool *tp, int reps, const char **what) {
    bench_peak_job j = {0};
#if defined(__x86_64__)
    __builtin_cpu_init();
    j.vnni = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
    if (!j.vnni && !__builtin_cpu_supports("avx2")) {
        *what = "none";
        return 0;
    }
    *what = j.vnni ? "vpdpbusd zmm" : "vpmaddubsw+vpmaddwd ymm";
#else
    *what = "none";
    return 0;
#endif
    const double macs = (double)PEAK_ITERS * 12 * (j.vnni ? 64 : 32) * vkl_threadpool_size(tp);
    double best = 0;
    for (int r = 0; r < reps; r++) {
        const double t0 = vkl_time_s();
        vkl_threadpool_run(tp, bench_peak_worker, &j);
        const double rate = macs / (vkl_time_s() - t0);
        if (rate > best) best = rate;
    }
    return j.sink[0] == 12345 ? best + 0 * (double)j.sink[1] : best;
}

#endif
