/* Timing helpers shared by bench/bench_cpu.c and `vkllm bench` (tools/cmd_bench.c): one prompt
 * pass and n generation passes from an empty KV cache, and mean / sample sd / best of samples. */
#ifndef VKL_BENCH_TIMING_H
#define VKL_BENCH_TIMING_H

#include <math.h>

#include "common.h"
#include "vkllm.h"

/* Mean, sample standard deviation and (when best is not NULL) the largest of n > 0 values. */
static inline void bench_stats(const double *v, int n, double *mean, double *sd, double *best) {
    double s = 0, ss = 0, hi = 0;
    for (int i = 0; i < n; i++) {
        s += v[i];
        if (v[i] > hi) hi = v[i];
    }
    *mean = s / n;
    for (int i = 0; i < n; i++) ss += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(ss / (n - 1)) : 0;
    if (best) *best = hi;
}

/* Seconds for one prompt pass of n tokens from an empty cache; < 0 on error. */
static inline double bench_time_pp(vkllm_context *c, const int32_t *toks, int n, vkllm_error *err) {
    if (vkllm_kv_truncate(c, 0, err) != 0) return -1;
    const double t0 = vkl_time_s();
    if (vkllm_eval(c, toks, n, false, err) != 0) return -1;
    return vkl_time_s() - t0;
}

/* Seconds for n one-token passes from an empty cache; < 0 on error. */
static inline double bench_time_tg(vkllm_context *c, const int32_t *toks, int n, vkllm_error *err) {
    if (vkllm_kv_truncate(c, 0, err) != 0) return -1;
    const double t0 = vkl_time_s();
    for (int i = 0; i < n; i++)
        if (vkllm_eval(c, &toks[i], 1, false, err) != 0) return -1;
    return vkl_time_s() - t0;
}

#endif
