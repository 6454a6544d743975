/* The CPU backend's read_bandwidth op: every worker of a thread pool (as many as the backend
 * uses) streams its own contiguous share of a buffer much larger than the caches, with 32-byte
 * loads where the CPU has AVX2; the best of several passes counts. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cpu/cpu_ops.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define BW_PASSES 7

typedef struct bw_job {
    const uint8_t *buf;
    size_t per;           /* bytes per worker, a multiple of 256 */
    uint64_t sink[1024];  /* one slot per worker: keeps the loads alive */
    bool avx2;
} bw_job;

#if defined(__x86_64__)
__attribute__((target("avx2"))) static uint64_t read_avx2(const uint8_t *p, size_t n) {
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    for (size_t i = 0; i < n; i += 128) {
        a = _mm256_xor_si256(a, _mm256_load_si256((const __m256i *)(p + i)));
        b = _mm256_xor_si256(b, _mm256_load_si256((const __m256i *)(p + i + 32)));
        c = _mm256_xor_si256(c, _mm256_load_si256((const __m256i *)(p + i + 64)));
        d = _mm256_xor_si256(d, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    a = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d));
    return (uint64_t)_mm256_extract_epi64(a, 0) ^ (uint64_t)_mm256_extract_epi64(a, 3);
}
#endif

static uint64_t read_plain(const uint8_t *p, size_t n) {
    uint64_t a = 0, b = 0;
    for (size_t i = 0; i < n; i += 16) {
        uint64_t v[2];
        memcpy(v, p + i, sizeof v);
        a ^= v[0];
        b ^= v[1];
    }
    return a ^ b;
}

static void bw_worker(void *ctx, int ith, int nth) {
    bw_job *j = ctx;
    const uint8_t *p = j->buf + j->per * (size_t)ith;
    (void)nth;
#if defined(__x86_64__)
    if (j->avx2) {
        j->sink[ith] ^= read_avx2(p, j->per);
        return;
    }
#endif
    j->sink[ith] ^= read_plain(p, j->per);
}

int vkl_cpu_read_bandwidth(vkl_backend *be, size_t bytes, double *bytes_per_s, vkl_error *err) {
    const int nth = be->n_threads > 0 ? be->n_threads : 1;
    if (nth > 1024) return vkl_fail(err, "cpu read bandwidth: %d threads is too many", nth);
    const size_t per = bytes / (size_t)nth / 4096 * 4096;
    if (per == 0 || bytes < ((size_t)1 << 20))
        return vkl_fail(err, "cpu read bandwidth: %zu bytes is too small a buffer for %d threads", bytes, nth);
    bw_job *j = vkl_calloc(1, sizeof *j, err);
    uint8_t *buf = j ? vkl_aligned_alloc((size_t)2 << 20, per * (size_t)nth, err) : NULL;
    vkl_threadpool *tp = buf ? vkl_threadpool_create(nth, err) : NULL;
    if (!tp) {
        vkl_aligned_free(buf);
        free(j);
        return -1;
    }
#ifdef MADV_HUGEPAGE
    madvise(buf, per * (size_t)nth, MADV_HUGEPAGE); /* a hint: far fewer page faults to fill it */
#endif
    memset(buf, 0x5a, per * (size_t)nth); /* faults every page in (untouched pages read as one zero page) */
    j->buf = buf;
    j->per = per;
#if defined(__x86_64__)
    __builtin_cpu_init();
    j->avx2 = __builtin_cpu_supports("avx2");
#endif
    double best = 0;
    for (int pass = 0; pass <= BW_PASSES; pass++) { /* pass 0 wakes the workers up */
        const double t0 = vkl_time_s();
        vkl_threadpool_run(tp, bw_worker, j);
        const double dt = vkl_time_s() - t0;
        if (pass > 0 && dt > 0) best = VKL_MAX(best, (double)(per * (size_t)nth) / dt);
    }
    /* Uses the sink so the reads stay observable. */
    uint64_t sink = 0;
    for (int i = 0; i < nth; i++) sink ^= j->sink[i];
    *bytes_per_s = best + (sink == 1 ? 1e-9 : 0.0);
    vkl_threadpool_destroy(tp);
    vkl_aligned_free(buf);
    free(j);
    return 0;
}
