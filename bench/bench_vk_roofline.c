/* A roofline of a Vulkan device (made for lavapipe/llvmpipe, works on any): peak arithmetic and
 * read bandwidth by access pattern, timed with GPU timestamps, next to the CPU's read bandwidth
 * and our CPU and Vulkan Q4_0 matmul kernels, all in one run; then the bounds they put on
 * generation and prompt speed of a model shape (the synthetic "1b" preset by default).
 * Usage: bench_vk_roofline [-d DEVICE] [-t CPU_THREADS] [--mib N] [--preset NAME]
 *                          [--cpu-tg TOK_S] [--cpu-pp TOK_S]
 * --cpu-tg / --cpu-pp: the CPU backend's speeds the targets are fractions of (defaults: the last
 * quiet-machine `vkllm bench` of the 1B Q4_0). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "membw.h"
#include "cpu/cpu_kernels.h"
#include "synth.h"
#include "types.h"
#include "vulkan/vk_ops.h"

#define RANGE_BYTES ((uint64_t)128 << 20) /* per dispatch of the read shaders */
#define READ_COUNT 256u                   /* elements per invocation */
#define SUBMITS 3

typedef struct roof {
    vkl_vk_context ctx;
    vkl_vk_allocator *al;
    vkl_vk_pipelines *pipes;
    vkl_vk_seq *seq;
    vkl_vk_buffer src, dst;
    size_t bytes;
    vkl_error err;
} roof;

/* Seconds of the last submitted sequence: the sum of its dispatches' GPU times, or `wall` when
 * the queue has no timestamps. */
static double seq_seconds(const roof *r, double wall) {
    double ns = 0;
    for (uint32_t d = 0; d < vkl_vk_seq_dispatch_count(r->seq); d++) {
        const double t = vkl_vk_seq_dispatch_ns(r->seq, d);
        if (t < 0) return wall;
        ns += t;
    }
    return ns > 0 ? ns * 1e-9 : wall;
}

static int submit(roof *r, double *secs) {
    const double t0 = vkl_time_s();
    if (vkl_vk_seq_submit(r->seq, &r->err)) return -1;
    *secs = seq_seconds(r, vkl_time_s() - t0);
    return 0;
}

typedef struct flops_push {
    uint32_t iters, key;
    float m, c;
} flops_push;

/* Best G operations/s of shader `name` (roof_flops.comp) with workgroups of `wg` and `chains`
 * chains per invocation; -1 on error. */
static double run_flops(roof *r, const char *name, uint32_t wg, uint32_t chains) {
    const uint32_t spec[2] = {wg, chains};
    const vkl_vk_pipeline *p = vkl_vk_pipeline_get(r->pipes, name, 1, sizeof(flops_push), spec, 2, &r->err);
    if (!p) return -1;
    vkl_vk_binding b;
    uint32_t delta;
    if (vkl_vk_bind_range(&r->ctx, vkl_vk_buffer_sub(&r->dst, 0, 4096), true, &b, &delta, &r->err)) return -1;
    const uint32_t groups = VKL_MAX(4096 / wg, 64u); /* plenty of work for every device thread */
    flops_push pc = {64, 0x9e3779b9u, 0.9999f, 1e-4f};
    double best = 0, secs;
    for (int sub = 0; sub <= SUBMITS; sub++) {
        if (vkl_vk_seq_begin(r->seq, &r->err) ||
            vkl_vk_seq_dispatch(r->seq, p, &b, 1, &pc, groups, 1, 1, name, &r->err) || submit(r, &secs))
            return -1;
        const double ops = 8.0 * chains * pc.iters * groups * wg;
        if (sub > 0) best = VKL_MAX(best, ops / secs / 1e9);
        /* the first submission sizes the others to ~0.1 s */
        if (sub == 0) pc.iters = (uint32_t)VKL_MAX(64.0, VKL_MIN(1e7, pc.iters * 0.1 / secs));
    }
    return best;
}

typedef struct read_pattern {
    const char *label, *shader;
    uint32_t elem, mode, wg; /* bytes per element; roof_read.comp mode; workgroup size */
} read_pattern;

/* Best GB/s of one read pattern over the whole source buffer, in RANGE_BYTES dispatches. */
static double run_read(roof *r, const read_pattern *rp) {
    const bool texel = strcmp(rp->shader, "roof_read_tb") == 0;
    const uint32_t wg = rp->wg;
    const vkl_vk_pipeline *p = vkl_vk_pipeline_get_tb(r->pipes, rp->shader, 2, texel ? 1u : 0u, 12, &wg, 1, &r->err);
    if (!p) return -1;
    const uint64_t range = VKL_MIN(RANGE_BYTES, texel ? (uint64_t)r->ctx.limits.maxTexelBufferElements * 16
                                                      : (uint64_t)r->ctx.limits.maxStorageBufferRange);
    const uint64_t per_group = (uint64_t)wg * READ_COUNT * rp->elem;
    if (range < per_group) {
        vkl_fail(&r->err, "binding limit too small for %s", rp->label);
        return -1;
    }
    const uint64_t n = range / per_group * per_group; /* bytes per dispatch */
    const int passes = 2;
    double best = 0, secs;
    for (int sub = 0; sub <= SUBMITS; sub++) {
        if (vkl_vk_seq_begin(r->seq, &r->err)) return -1;
        uint64_t done = 0;
        for (int pass = 0; pass < (sub ? passes : 1); pass++) {
            for (uint64_t off = 0; off + n <= r->bytes; off += n, done += n) {
                vkl_vk_binding b[2];
                uint32_t delta;
                const vkl_vk_range src = vkl_vk_buffer_sub(&r->src, off, n);
                if ((texel ? vkl_vk_bind_texels(&r->ctx, src, &b[0], &r->err)
                           : vkl_vk_bind_range(&r->ctx, src, false, &b[0], &delta, &r->err)) ||
                    vkl_vk_bind_range(&r->ctx, vkl_vk_buffer_sub(&r->dst, 0, 4096), true, &b[1], &delta, &r->err))
                    return -1;
                const uint32_t pc[3] = {READ_COUNT, 0x9e3779b9u, rp->mode};
                if (vkl_vk_seq_dispatch(r->seq, p, b, 2, pc, (uint32_t)(n / per_group), 1, 1, rp->label, &r->err))
                    return -1;
            }
        }
        if (submit(r, &secs)) return -1;
        if (sub > 0) best = VKL_MAX(best, (double)done / secs / 1e9);
    }
    return best;
}

/* The Vulkan and the CPU backend's Q4_0 product of an M x K matrix with N tokens: seconds each
 * (best of a few). */
static int run_matmul(roof *r, vkl_vk_ops *ops, vkl_threadpool *tp, int64_t M, int64_t K, int64_t N,
                      double *vk_s, double *cpu_s) {
    const vkl_type t = VKL_TYPE_Q4_0;
    const size_t row = vkl_row_size(t, K), wbytes = row * (size_t)M;
    float *wf = malloc((size_t)K * sizeof *wf), *x = malloc((size_t)(K * N) * sizeof *x);
    float *y = malloc((size_t)(M * N) * sizeof *y);
    uint8_t *w = malloc(wbytes);
    void *scratch = malloc(vkl_matmul_scratch_size(t, K, N) + 64);
    vkl_vk_buffer bw = {0}, bx = {0}, by = {0};
    int rc = -1;
    if (!wf || !x || !y || !w || !scratch) {
        vkl_fail(&r->err, "out of memory");
        goto done;
    }
    uint32_t s = 1;
    for (int64_t i = 0; i < M; i++) {
        for (int64_t k = 0; k < K; k++) wf[k] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
        vkl_type_get(t)->from_f32(wf, w + (size_t)i * row, K);
    }
    for (int64_t k = 0; k < K * N; k++) x[k] = (float)(k % 17) / 17.0f - 0.5f;
    if (vkl_vk_alloc(r->al, VKL_VK_MEM_DEVICE, wbytes, &bw, &r->err) ||
        vkl_vk_alloc(r->al, VKL_VK_MEM_DEVICE, (size_t)(K * N) * 4, &bx, &r->err) ||
        vkl_vk_alloc(r->al, VKL_VK_MEM_DEVICE, (size_t)(M * N) * 4, &by, &r->err) ||
        vkl_vk_upload(r->al, &bw, 0, w, wbytes, &r->err) || vkl_vk_upload(r->al, &bx, 0, x, (size_t)(K * N) * 4, &r->err))
        goto done;
    *vk_s = 1e30;
    for (int sub = 0; sub <= SUBMITS; sub++) {
        double secs;
        if (vkl_vk_seq_begin(r->seq, &r->err) ||
            vkl_vk_op_mul_mat(ops, r->seq, t, vkl_vk_buffer_range(&bw), M, K, vkl_vk_buffer_range(&bx), N,
                              vkl_vk_buffer_range(&by), &r->err) ||
            submit(r, &secs))
            goto done;
        if (sub > 0) *vk_s = VKL_MIN(*vk_s, secs);
    }
    *cpu_s = 1e30;
    vkl_matmul(tp, t, w, row, M, K, x, N, y, scratch); /* warm-up */
    const double t_end = vkl_time_s() + 0.3;
    for (int i = 0; i < 3 || vkl_time_s() < t_end; i++) {
        const double t0 = vkl_time_s();
        vkl_matmul(tp, t, w, row, M, K, x, N, y, scratch);
        *cpu_s = VKL_MIN(*cpu_s, vkl_time_s() - t0);
    }
    rc = 0;
done:
    vkl_vk_free(r->al, &bw), vkl_vk_free(r->al, &bx), vkl_vk_free(r->al, &by);
    free(wf), free(x), free(y), free(w), free(scratch);
    return rc;
}

static double cpu_read_gbs(vkl_threadpool *tp, size_t bytes) {
    uint8_t *buf = aligned_alloc(4096, bytes);
    if (!buf) return -1;
    memset(buf, 0x5a, bytes);
    const double gbs = bench_read_bw(tp, buf, bytes, 5);
    free(buf);
    return gbs;
}

static int usage(void) {
    fprintf(stderr, "usage: bench_vk_roofline [-d DEVICE] [-t CPU_THREADS] [--mib N] [--preset tiny|1b|7b|13b]\n"
                    "                         [--cpu-tg TOK_S] [--cpu-pp TOK_S]\n");
    return 2;
}

int main(int argc, char **argv) {
    int dev = 0, threads = 2, mib = 512;
    const char *preset = "1b";
    double cpu_tg = 61.8, cpu_pp = 378.7; /* vkllm bench -p 128 -n 32 -t 2, quiet machine */
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return usage();
        if (!strcmp(a, "-d")) dev = atoi(v);
        else if (!strcmp(a, "-t")) threads = atoi(v);
        else if (!strcmp(a, "--mib")) mib = atoi(v);
        else if (!strcmp(a, "--preset")) preset = v;
        else if (!strcmp(a, "--cpu-tg")) cpu_tg = atof(v);
        else if (!strcmp(a, "--cpu-pp")) cpu_pp = atof(v);
        else return usage();
    }
    vkl_synth_config cfg;
    vkl_synth_defaults(&cfg);
    if (threads < 1 || mib < 128 || vkl_synth_preset(&cfg, preset) || !(cpu_tg > 0) || !(cpu_pp > 0)) return usage();
    if (cfg.n_vocab == 0) cfg.n_vocab = 32000; /* what synth writes with its built-in vocabulary */

    roof r = {.bytes = (size_t)mib << 20};
    r.bytes = r.bytes / RANGE_BYTES * RANGE_BYTES;
    vkl_vk_ops ops = {0};
    vkl_threadpool *tp = NULL;
    if (vkl_vk_load(&r.err) || vkl_vk_context_create(&r.ctx, dev, &r.err)) {
        fprintf(stderr, "no Vulkan device: %s\n", r.err.msg);
        return 1;
    }
    int rc = 1;
    if (!(r.al = vkl_vk_allocator_create(&r.ctx, 0, 0, &r.err)) || !(r.pipes = vkl_vk_pipelines_create(&r.ctx, &r.err)) ||
        !(r.seq = vkl_vk_seq_create(&r.ctx, true, &r.err)) || vkl_vk_ops_init(&ops, &r.ctx, &r.err) ||
        !(tp = vkl_threadpool_create(threads, &r.err)) ||
        vkl_vk_alloc(r.al, VKL_VK_MEM_DEVICE, r.bytes, &r.src, &r.err) ||
        vkl_vk_alloc(r.al, VKL_VK_MEM_DEVICE, 4096, &r.dst, &r.err))
        goto fail;
    { /* fill the source (on UMA devices this also faults its pages in) */
        const size_t chunk = 16 << 20;
        uint8_t *tmp = malloc(chunk);
        if (!tmp) goto fail;
        memset(tmp, 0x5a, chunk);
        for (size_t off = 0; off < r.bytes; off += chunk)
            if (vkl_vk_upload(r.al, &r.src, off, tmp, chunk, &r.err)) {
                free(tmp);
                goto fail;
            }
        free(tmp);
    }
    const char *lp = getenv("LP_NUM_THREADS");
    printf("device: %s (subgroup %u, maxStorageBufferRange %u, maxTexelBufferElements %u%s%s)\n",
           r.ctx.info.props.deviceName, r.ctx.subgroup_size, r.ctx.limits.maxStorageBufferRange,
           r.ctx.limits.maxTexelBufferElements, lp ? ", LP_NUM_THREADS=" : "", lp ? lp : "");
    printf("cpu: %s, %d threads; buffers of %d MiB, read in %llu MiB dispatches\n\n", vkl_cpu_simd_level(),
           threads, mib, (unsigned long long)(RANGE_BYTES >> 20));

    printf("%-44s %12s\n", "arithmetic (vulkan)", "G op/s");
    static const struct { const char *shader, *label; } ar[] = {
        {"roof_fma", "f32 fma(), vec4"},
        {"roof_mad", "f32 mul + add, vec4"},
        {"roof_imad", "u32 mul + add, uvec4"},
    };
    static const uint32_t cfgs[][2] = {{8, 2}, {64, 3}, {64, 8}, {8, 16}, {64, 16}}; /* wg, chains */
    double peak_f = 0, peak_i = 0;
    for (size_t i = 0; i < sizeof ar / sizeof ar[0]; i++)
        for (size_t j = 0; j < sizeof cfgs / sizeof cfgs[0]; j++) {
            const double g = run_flops(&r, ar[i].shader, cfgs[j][0], cfgs[j][1]);
            if (g < 0) goto fail;
            printf("  %-22s wg %3u, %u chains %12.1f\n", ar[i].label, cfgs[j][0], cfgs[j][1], g);
            if (strcmp(ar[i].shader, "roof_imad")) peak_f = VKL_MAX(peak_f, g);
            else peak_i = VKL_MAX(peak_i, g);
        }

    printf("\n%-44s %12s\n", "read bandwidth (vulkan)", "GB/s");
    static const read_pattern rps[] = {
        {"ssbo uint per lane, grid-strided", "roof_read_u32", 4, 0, 256},
        {"ssbo uvec4 per lane, grid-strided", "roof_read_u4", 16, 0, 256},
        {"ssbo uvec4, workgroup of 8 streams a range", "roof_read_u4", 16, 1, 8},
        {"ssbo uvec4, one stream per lane", "roof_read_u4", 16, 2, 256},
        {"texel RGBA32UI per lane, grid-strided", "roof_read_tb", 16, 0, 256},
        {"texel, workgroup of 8 streams a range", "roof_read_tb", 16, 1, 8},
        {"texel, workgroup of 64 streams a range", "roof_read_tb", 16, 1, 64},
        {"texel, one stream per lane", "roof_read_tb", 16, 2, 8},
    };
    double best_bw = 0;
    const char *best_label = "";
    for (size_t i = 0; i < sizeof rps / sizeof rps[0]; i++) {
        const double g = run_read(&r, &rps[i]);
        if (g < 0) goto fail;
        printf("  %-42s %12.2f\n", rps[i].label, g);
        if (g > best_bw) best_bw = g, best_label = rps[i].label;
    }
    vkl_vk_free(r.al, &r.src); /* the CPU side gets the memory now */
    const double cpu_bw = cpu_read_gbs(tp, r.bytes);
    if (cpu_bw < 0) {
        vkl_fail(&r.err, "out of memory");
        goto fail;
    }
    printf("  %-42s %12.2f\n", "cpu, AVX2 loads (bench/membw.h)", cpu_bw);

    /* the model's matmuls: every weight matrix but the token embeddings (GET_ROWS on the CPU) */
    const int64_t d = cfg.n_embd, dkv = cfg.n_embd / cfg.n_head * cfg.n_head_kv, ff = cfg.n_ff;
    const double params = (double)cfg.n_layer * (2.0 * d * d + 2.0 * d * dkv + 3.0 * d * ff) + (double)cfg.n_vocab * d;
    const double bytes_tok = params * 18.0 / 32.0; /* Q4_0 */

    printf("\n%-44s %10s %10s %10s\n", "Q4_0 matmul (best of 3; vk/cpu: speed ratio)", "vulkan", "cpu", "vk/cpu");
    /* the largest matrix (the output layer, larger than the caches) and an FFN matrix */
    const int64_t shapes[][3] = {{cfg.n_vocab, d, 1}, {ff, d, 1}, {ff, d, 64}};
    double vk_mv_gbs = 0, vk_mm_gops = 0;
    for (size_t i = 0; i < 3; i++) {
        double vk_s, cpu_s;
        const int64_t M = shapes[i][0], K = shapes[i][1], N = shapes[i][2];
        if (run_matmul(&r, &ops, tp, M, K, N, &vk_s, &cpu_s)) goto fail;
        const double wb = (double)vkl_row_size(VKL_TYPE_Q4_0, K) * M, ops2 = 2.0 * M * K * N;
        if (N == 1) {
            if (i == 0) vk_mv_gbs = wb / vk_s / 1e9;
            printf("  %5lldx%-5lld N=%-3lld (weight GB/s) %13.2f %10.2f %10.3f\n", (long long)M, (long long)K,
                   (long long)N, wb / vk_s / 1e9, wb / cpu_s / 1e9, cpu_s / vk_s);
        } else {
            vk_mm_gops = ops2 / vk_s / 1e9;
            printf("  %5lldx%-5lld N=%-3lld (G op/s)      %13.2f %10.2f %10.3f\n", (long long)M, (long long)K,
                   (long long)N, vk_mm_gops, ops2 / cpu_s / 1e9, cpu_s / vk_s);
        }
    }

    printf("\nbounds for the %s preset, Q4_0 (%.3g matmul parameters, %.1f MB of weights per token):\n", preset,
           params, bytes_tok / 1e6);
    printf("  generation <= best read / bytes per token = %.2f GB/s / %.1f MB = %.1f tok/s"
           " (%s); target 1/3 of cpu %.1f = %.1f tok/s needs %.2f GB/s\n",
           best_bw, bytes_tok / 1e6, best_bw * 1e9 / bytes_tok, best_label, cpu_tg, cpu_tg / 3,
           bytes_tok * cpu_tg / 3 / 1e9);
    printf("    (today's mat-vec of the output layer at %.2f GB/s: %.1f tok/s from the matmuls alone)\n", vk_mv_gbs,
           vk_mv_gbs * 1e9 / bytes_tok);
    printf("  prompt <= peak f32 / (2 x params) = %.1f G op/s / %.2f G op = %.1f tok/s;"
           " target 1/4 of cpu %.1f = %.1f tok/s needs %.1f G op/s\n",
           peak_f, 2 * params / 1e9, peak_f * 1e9 / (2 * params), cpu_pp, cpu_pp / 4, 2 * params * cpu_pp / 4 / 1e9);
    printf("    (u32 multiply-add peak %.1f G op/s: %.1f tok/s; today's batch of 64 at %.1f G op/s: %.1f tok/s)\n",
           peak_i, peak_i * 1e9 / (2 * params), vk_mm_gops, vk_mm_gops * 1e9 / (2 * params));
    rc = 0;
fail:
    if (rc) fprintf(stderr, "bench_vk_roofline: %s\n", r.err.msg);
    vkl_threadpool_destroy(tp);
    vkl_vk_ops_destroy(&ops);
    vkl_vk_seq_destroy(r.seq);
    vkl_vk_pipelines_destroy(r.pipes);
    if (r.al) {
        vkl_vk_free(r.al, &r.src);
        vkl_vk_free(r.al, &r.dst);
        vkl_vk_allocator_destroy(r.al);
    }
    vkl_vk_context_destroy(&r.ctx);
    return rc;
}
