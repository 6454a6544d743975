/* Host memory read bandwidth: every thread of a pool streams its share of a buffer much larger
 * than the last-level cache (AVX2 loads where available); best of several runs, for 1..N threads.
 * Usage: membw [max_threads] [buffer_MiB] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "membw.h"

int main(int argc, char **argv) {
    int max_threads = argc > 1 ? atoi(argv[1]) : 2;
    size_t mib = argc > 2 ? (size_t)atoi(argv[2]) : 1024;
    if (max_threads < 1 || mib < 16) {
        fprintf(stderr, "usage: membw [max_threads>=1] [buffer_MiB>=16]\n");
        return 2;
    }
    vkl_error err = {{0}};
    const size_t n = mib << 20;
    uint8_t *buf = vkl_aligned_alloc(4096, n, &err);
    if (!buf) {
        fprintf(stderr, "membw: %s\n", err.msg);
        return 1;
    }
    for (size_t i = 0; i < n; i += 64) buf[i] = (uint8_t)i; /* fault the pages in */
    memset(buf, 1, n);
    printf("membw: %zu MiB buffer, %s loads\n", mib, bench_cpu_has_avx2() ? "AVX2" : "scalar");
    for (int th = 1; th <= max_threads; th++) {
        vkl_threadpool *tp = vkl_threadpool_create(th, &err);
        if (!tp) {
            fprintf(stderr, "membw: %s\n", err.msg);
            vkl_aligned_free(buf);
            return 1;
        }
        printf("threads %d: %.2f GB/s (best of 7)\n", th, bench_read_bw(tp, buf, n, 7));
        vkl_threadpool_destroy(tp);
    }
    vkl_aligned_free(buf);
    return 0;
}
