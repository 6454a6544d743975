/* Vulkan matmul throughput (weight GB/s) for the shapes of a ~1B model (2048x2048, 5632x2048),
 * next to the CPU backend's vkl_matmul on the same data.
 * Usage: bench_vk_matmul [device_index] [mv_wg] [rows] [reps] [types: q4_0,q8_0,...] [lane: 0/1]
 *                        [texel: 0/1] [tokens] [x8: 0/1]
 * (0 / absent: the defaults vk_ops picks for the device). rows sets the rows per invocation or
 * workgroup of the mat-vec shaders and of the texel-buffer Q4_0/Q8_0 shaders used on CPU devices
 * (texel 0 disables those); tokens > 1 times the matrix-matrix product of that many tokens;
 * x8 0 disables the integer Q4_0 mat-vec (x quantized to 8 bits) of CPU devices.
 * Env VKLLM_BENCH_SHAPES="MxK,..." replaces the two shapes (e.g. 32000x2048, the output layer of
 * the 1B model, is larger than the caches). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_kernels.h"
#include "types.h"
#include "vulkan/vk_ops.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int bench_one(vkl_vk_ops *ops, vkl_vk_allocator *al, vkl_vk_seq *seq, vkl_threadpool *tp,
                     vkl_type t, int64_t M, int64_t K, int64_t N, int reps) {
    const vkl_type_traits *tr = vkl_type_get(t);
    size_t row = vkl_row_size(t, K), wbytes = row * (size_t)M;
    float *wf = malloc((size_t)K * sizeof *wf), *x = malloc((size_t)(K * N) * sizeof *x);
    float *y = malloc((size_t)(M * N) * sizeof *y);
    uint8_t *w = malloc(wbytes);
    void *scratch = malloc(vkl_matmul_scratch_size(t, K, N) + 64);
    if (!wf || !x || !y || !w || !scratch) return -1;
    uint32_t s = 12345;
    for (int64_t r = 0; r < M; r++) {
        for (int64_t k = 0; k < K; k++) wf[k] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
        tr->from_f32(wf, w + (size_t)r * row, K);
    }
    for (int64_t k = 0; k < K * N; k++) x[k] = (float)(k % 17) / 17.0f - 0.5f;

    vkl_error err;
    vkl_vk_buffer bw, bx, by;
    if (vkl_vk_alloc(al, VKL_VK_MEM_DEVICE, wbytes, &bw, &err) ||
        vkl_vk_alloc(al, VKL_VK_MEM_DEVICE, (size_t)(K * N) * 4, &bx, &err) ||
        vkl_vk_alloc(al, VKL_VK_MEM_DEVICE, (size_t)(M * N) * 4, &by, &err) ||
        vkl_vk_upload(al, &bw, 0, w, wbytes, &err) ||
        vkl_vk_upload(al, &bx, 0, x, (size_t)(K * N) * 4, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    double *ns = malloc((size_t)reps * sizeof *ns);
    if (!ns) return -1;
    /* one warm-up sequence, then `reps` dispatches in one sequence, each timed on the GPU */
    double wall = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (vkl_vk_seq_begin(seq, &err)) goto fail;
        for (int i = 0; i < (pass ? reps : 2); i++)
            if (vkl_vk_op_mul_mat(ops, seq, t, vkl_vk_buffer_range(&bw), M, K,
                                  vkl_vk_buffer_range(&bx), N, vkl_vk_buffer_range(&by), &err))
                goto fail;
        double t0 = vkl_time_s();
        if (vkl_vk_seq_submit(seq, &err)) goto fail;
        wall = vkl_time_s() - t0;
    }
    for (int i = 0; i < reps; i++) ns[i] = vkl_vk_seq_dispatch_ns(seq, (uint32_t)i);
    qsort(ns, (size_t)reps, sizeof *ns, cmp_double);
    double med = ns[0]; /* fastest: the least disturbed by other load on the machine */
    double wall_per = wall / reps * 1e9;
    double t_ns = med > 0 ? med : wall_per;

    /* CPU backend on the same matrix (env VKLLM_BENCH_NO_CPU=1 skips it) */
    const char *no_cpu = getenv("VKLLM_BENCH_NO_CPU");
    vkl_matmul(tp, t, w, row, M, K, x, N, y, scratch);
    double t0 = vkl_time_s();
    int cpu_reps = 0;
    while (!(no_cpu && *no_cpu == '1') && (vkl_time_s() - t0 < 0.5 || cpu_reps < 3)) {
        vkl_matmul(tp, t, w, row, M, K, x, N, y, scratch);
        cpu_reps++;
    }
    double cpu_ns = cpu_reps ? (vkl_time_s() - t0) / cpu_reps * 1e9 : 0.0;
    printf("%-5s %5lldx%-5lld N=%-3lld %7.2f MiB  vulkan %8.1f us (gpu best; wall/rep %8.1f us) %6.2f GB/s"
           "   cpu %8.1f us %6.2f GB/s   vk/cpu %.2f\n",
           tr->name, (long long)M, (long long)K, (long long)N, wbytes / 1048576.0, t_ns / 1e3, wall_per / 1e3,
           wbytes / t_ns, cpu_ns / 1e3, wbytes / cpu_ns, cpu_ns / t_ns);
    free(ns);
    vkl_vk_free(al, &bw), vkl_vk_free(al, &bx), vkl_vk_free(al, &by);
    free(wf), free(x), free(y), free(w), free(scratch);
    return 0;
fail:
    fprintf(stderr, "%s\n", err.msg);
    return -1;
}

int main(int argc, char **argv) {
    int dev = argc > 1 ? atoi(argv[1]) : 0;
    int reps = argc > 4 ? atoi(argv[4]) : 20;
    const char *types = argc > 5 ? argv[5] : "q4_0";
    if (reps < 1) reps = 1;
    vkl_error err;
    vkl_vk_context ctx;
    vkl_vk_ops ops;
    if (vkl_vk_load(&err) || vkl_vk_context_create(&ctx, dev, &err)) {
        fprintf(stderr, "no Vulkan device: %s\n", err.msg);
        return 1;
    }
    vkl_vk_allocator *al = vkl_vk_allocator_create(&ctx, 0, 0, &err);
    vkl_vk_seq *seq = al && !vkl_vk_ops_init(&ops, &ctx, &err) ? vkl_vk_seq_create(&ctx, true, &err) : NULL;
    vkl_threadpool *tp = seq ? vkl_threadpool_create(2, &err) : NULL;
    if (!tp) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return 1;
    }
    if (argc > 2 && atoi(argv[2]) > 0) ops.mv_wg = (uint32_t)atoi(argv[2]);
    if (argc > 3 && atoi(argv[3]) > 0) ops.mv_rows = ops.tb_rows = ops.tb_mm_rows = (uint32_t)atoi(argv[3]);
    if (argc > 3 && atoi(argv[3]) < 0) ops.tb_mm_rows = 0; /* texel mat-vec for batches too */
    if (ops.mv_rows > 8) ops.mv_rows = 8;
    if (argc > 6) ops.mv_lane = atoi(argv[6]) != 0;
    if (argc > 7) ops.texel_q = ops.texel_q && atoi(argv[7]) != 0;
    const int64_t n_tok = argc > 8 && atoi(argv[8]) > 0 ? atoi(argv[8]) : 1;
    if (argc > 9) ops.tb_x8 = ops.tb_x8 && atoi(argv[9]) != 0;
    printf("device %s, mat-vec %s, workgroup %u, rows/workgroup %u, cpu %s x2 threads\n",
           ctx.info.props.deviceName, ops.mv_lane ? "row per invocation" : "workgroup per rows",
           ops.mv_wg, ops.mv_lane ? ops.mv_wg * ops.mv_rows : ops.mv_rows, vkl_cpu_simd_level());
    char buf[256];
    snprintf(buf, sizeof buf, "%s", types);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int t = vkl_type_from_name(tok);
        if (t < 0 || !vkl_vk_ops_supports_type((vkl_type)t)) {
            fprintf(stderr, "unknown type %s\n", tok);
            continue;
        }
        const char *shapes = getenv("VKLLM_BENCH_SHAPES");
        char sbuf[256];
        snprintf(sbuf, sizeof sbuf, "%s", shapes && *shapes ? shapes : "2048x2048,5632x2048");
        char *save = NULL;
        for (char *sh = strtok_r(sbuf, ",", &save); sh; sh = strtok_r(NULL, ",", &save)) {
            long long M = 0, K = 0;
            if (sscanf(sh, "%lldx%lld", &M, &K) != 2 || M <= 0 || K <= 0) {
                fprintf(stderr, "bad shape %s\n", sh);
                continue;
            }
            bench_one(&ops, al, seq, tp, (vkl_type)t, M, K, n_tok, reps);
        }
    }
    vkl_threadpool_destroy(tp);
    vkl_vk_seq_destroy(seq);
    vkl_vk_ops_destroy(&ops);
    vkl_vk_allocator_destroy(al);
    vkl_vk_context_destroy(&ctx);
    return 0;
}
