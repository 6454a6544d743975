/* CPU inference benchmark through the public API: prompt processing (pp: N tokens in one batch)
 * and generation (tg: N tokens one at a time) in tokens/s, mean +- sd over r repetitions after a
 * warm-up, plus the host read bandwidth measured in the same run, the bytes a generated token
 * reads (every matmul weight, one embedding row, the KV cache at the average context) and the
 * share of the measured bandwidth that generation reaches; and the CPU's int8 multiply-accumulate
 * peak (cpupeak.h), the compute roof of prompt processing: the prompt speed it allows (one
 * multiply-add per matmul weight per token), the share of it reached, and the pp/tg ratio that
 * roof allows at the measured generation speed.
 * Usage: bench_cpu -m model.gguf [-p 512] [-n 128] [-t threads] [-r 3] [--no-membw] [--no-peak] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_kernels.h"
#include "gguf.h"
#include "model.h"
#include "vkllm.h"
#include "bench_timing.h"
#include "membw.h"
#include "cpupeak.h"

/* The host's read bandwidth, measured next to each timed generation pass: on a shared machine it
 * drifts by up to 2x from one minute to the next, so each pass is compared with the larger of the
 * measurements just before and just after it. */
typedef struct membw_probe {
    uint8_t *buf;
    size_t n;
    vkl_threadpool *tp;
} membw_probe;

static int membw_open(membw_probe *p, int n_threads) {
    vkl_error err = {{0}};
    p->n = (size_t)512 << 20;
    p->buf = vkl_aligned_alloc(4096, p->n, &err);
    p->tp = p->buf ? vkl_threadpool_create(n_threads, &err) : NULL;
    if (!p->tp) {
        fprintf(stderr, "bench_cpu: membw: %s\n", err.msg);
        vkl_aligned_free(p->buf);
        p->buf = NULL;
        return -1;
    }
    memset(p->buf, 1, p->n);
    return 0;
}

/* Best of `passes` passes over the 512 MiB buffer in GB/s; 0 without a probe. */
static double membw_measure(membw_probe *p, int passes) { return p->tp ? bench_read_bw(p->tp, p->buf, p->n, passes) : 0; }

static void membw_close(membw_probe *p) {
    vkl_threadpool_destroy(p->tp);
    vkl_aligned_free(p->buf);
}

/* Best-of-5 int8 multiply-accumulates per second with n_threads threads; 0 if unmeasured. */
static double measure_int8_peak(int n_threads, const char **what) {
    vkl_error err = {{0}};
    vkl_threadpool *tp = vkl_threadpool_create(n_threads, &err);
    if (!tp) {
        fprintf(stderr, "bench_cpu: int8 peak: %s\n", err.msg);
        return 0;
    }
    const double r = bench_int8_peak(tp, 5, what);
    vkl_threadpool_destroy(tp);
    return r;
}

/* ---- bytes per generated token ----------------------------------------------------------------- */

typedef struct model_bytes {
    double matmul;    /* every weight a generated token multiplies with */
    double macs;      /* multiply-adds per token in those matmuls (their element count) */
    double embd_row;  /* one row of the token embedding table */
    double kv_per_pos; /* K + V bytes of one cache position over all layers (f16 cache) */
} model_bytes;

static int count_model_bytes(const char *path, model_bytes *mb, vkl_error *err) {
    gguf_file *f = gguf_open(path, err);
    if (!f) return -1;
    vkl_hparams hp;
    if (vkl_hparams_read(f, &hp, err) != 0) {
        gguf_close(f);
        return -1;
    }
    memset(mb, 0, sizeof *mb);
    bool has_output = gguf_find_tensor(f, "output.weight") != NULL;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        if (strcmp(t->name, "token_embd.weight") == 0) {
            mb->embd_row = (double)t->nbytes / (double)t->ne[1];
            if (!has_output) { /* tied: also the output matmul */
                mb->matmul += (double)t->nbytes;
                mb->macs += (double)t->ne[0] * (double)t->ne[1];
            }
        } else if (t->n_dims >= 2) {
            mb->matmul += (double)t->nbytes;
            mb->macs += (double)t->ne[0] * (double)t->ne[1];
        }
    }
    mb->kv_per_pos = 2.0 * hp.n_layer * (double)hp.n_head_kv * hp.head_dim * 2.0;
    gguf_close(f);
    return 0;
}

static void usage(void) {
    fprintf(stderr, "usage: bench_cpu -m model.gguf [-p prompt_tokens=512] [-n gen_tokens=128] [-t threads] "
                    "[-r reps=3] [--no-membw] [--no-peak]\n");
}

int main(int argc, char **argv) {
    const char *path = NULL;
    int n_pp = 512, n_tg = 128, n_threads = 0, reps = 3;
    bool do_membw = true, do_peak = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--no-membw") == 0) {
            do_membw = false;
            continue;
        }
        if (strcmp(a, "--no-peak") == 0) {
            do_peak = false;
            continue;
        }
        if (i + 1 >= argc) {
            usage();
            return 2;
        }
        if (strcmp(a, "-m") == 0) path = argv[++i];
        else if (strcmp(a, "-p") == 0) n_pp = atoi(argv[++i]);
        else if (strcmp(a, "-n") == 0) n_tg = atoi(argv[++i]);
        else if (strcmp(a, "-t") == 0) n_threads = atoi(argv[++i]);
        else if (strcmp(a, "-r") == 0) reps = atoi(argv[++i]);
        else {
            usage();
            return 2;
        }
    }
    if (!path || n_pp < 0 || n_tg < 0 || n_pp > 65536 || n_tg > 65536 || reps < 1 || reps > 1000 || n_threads < 0) {
        usage();
        return 2;
    }

    vkllm_error err = {{0}};
    vkl_error verr = {{0}};
    model_bytes mb;
    if (count_model_bytes(path, &mb, &verr) != 0) {
        fprintf(stderr, "bench_cpu: %s: %s\n", path, verr.msg);
        return 1;
    }
    vkllm_model_params mp = vkllm_model_default_params();
    mp.n_threads = n_threads;
    vkllm_model *m = vkllm_model_load(path, &mp, &err);
    if (!m) {
        fprintf(stderr, "bench_cpu: %s\n", err.msg);
        return 1;
    }
    n_threads = vkllm_model_n_threads(m);
    vkllm_context_params cp = vkllm_context_default_params();
    cp.n_ctx = VKL_MAX(VKL_MAX(n_pp, n_tg), 16);
    cp.n_batch = VKL_MAX(n_pp, 1);
    vkllm_context *c = vkllm_context_create(m, &cp, &err);
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)VKL_MAX(VKL_MAX(n_pp, n_tg), 1));
    double *pp_s = calloc((size_t)reps, sizeof(double)), *tg_s = calloc((size_t)reps, sizeof(double));
    int rc = 1;
    membw_probe probe = {0};
    if (!c || !toks || !pp_s || !tg_s) {
        fprintf(stderr, "bench_cpu: %s\n", c ? "out of memory" : err.msg);
        goto done;
    }
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < VKL_MAX(n_pp, n_tg); i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((rng >> 33) % (uint64_t)vkllm_model_n_vocab(m));
    }
    printf("model: %s (%s)\nthreads: %d, simd: %s\n", path, vkllm_model_desc(m), n_threads, vkl_cpu_simd_level());

    if (do_membw) membw_open(&probe, n_threads);
    /* Warm-up: one short pass of each kind (touches code, scratch and the first cache pages). */
    if ((n_pp > 0 && bench_time_pp(c, toks, VKL_MIN(n_pp, 32), &err) < 0) || (n_tg > 0 && bench_time_tg(c, toks, VKL_MIN(n_tg, 8), &err) < 0)) {
        fprintf(stderr, "bench_cpu: %s\n", err.msg);
        goto done;
    }
    double bw_at[1001]; /* bw_at[r]: just before generation pass r; bw_at[reps]: after the last */
    for (int r = 0; r < reps; r++) {
        if (n_pp > 0 && (pp_s[r] = bench_time_pp(c, toks, n_pp, &err)) < 0) {
            fprintf(stderr, "bench_cpu: %s\n", err.msg);
            goto done;
        }
        bw_at[r] = membw_measure(&probe, 3);
        if (n_tg > 0 && (tg_s[r] = bench_time_tg(c, toks, n_tg, &err)) < 0) {
            fprintf(stderr, "bench_cpu: %s\n", err.msg);
            goto done;
        }
    }
    bw_at[reps] = membw_measure(&probe, 3);
    double bw = 0;
    for (int r = 0; r <= reps; r++) bw = VKL_MAX(bw, bw_at[r]);
    /* Average context of a generated token: positions 1..n_tg. */
    const double tok_bytes = mb.matmul + mb.embd_row + mb.kv_per_pos * (n_tg + 1) / 2.0;
    double rate[1000], mean_pp = 0, sd_pp = 0, best_pp = 0, mean_tg = 0, sd_tg = 0, best_tg = 0;
    if (n_pp > 0) {
        for (int r = 0; r < reps; r++) rate[r] = n_pp / pp_s[r];
        bench_stats(rate, reps, &mean_pp, &sd_pp, &best_pp);
        printf("pp%-5d %9.2f +- %6.2f tok/s  (%.2f ms/token, best %.2f tok/s)\n", n_pp, mean_pp, sd_pp, 1e3 / mean_pp, best_pp);
    }
    if (n_tg > 0) {
        for (int r = 0; r < reps; r++) rate[r] = n_tg / tg_s[r];
        bench_stats(rate, reps, &mean_tg, &sd_tg, &best_tg);
        const double gbs = mean_tg * tok_bytes / 1e9, best_gbs = best_tg * tok_bytes / 1e9;
        printf("tg%-5d %9.2f +- %6.2f tok/s  (%.2f ms/token, best %.2f tok/s)  %.1f MB/token  %.2f GB/s (best %.2f)\n", n_tg,
               mean_tg, sd_tg, 1e3 / mean_tg, best_tg, tok_bytes / 1e6, gbs, best_gbs);
        if (bw > 0) {
            /* each pass against the larger bandwidth measured next to it */
            double share = 0, best_share = 0;
            for (int r = 0; r < reps; r++) {
                const double near = VKL_MAX(bw_at[r], bw_at[r + 1]), sr = n_tg / tg_s[r] * tok_bytes / 1e9 / near;
                share += sr / reps;
                best_share = VKL_MAX(best_share, sr);
            }
            printf("tg share of the read bandwidth measured around each pass: %.1f%% (best pass %.1f%%); "
                   "of the best bandwidth seen in the run: %.1f%%\n", 100.0 * share, 100.0 * best_share, 100.0 * gbs / bw);
        }
    }
    if (n_pp > 0 && n_tg > 0) printf("pp/tg per-token speed ratio: %.2fx\n", mean_pp / mean_tg);
    if (bw > 0) {
        printf("membw (%d threads, best of 3 passes, before each generation pass and after the last):", n_threads);
        for (int r = 0; r <= reps; r++) printf(" %.2f", bw_at[r]);
        printf(" GB/s\n");
    }
    const char *peak_what = "none";
    const double peak = do_peak ? measure_int8_peak(n_threads, &peak_what) : 0;
    if (peak > 0) {
        const double pp_roof = peak / mb.macs;
        printf("int8 peak (%d threads, %s): %.0f GMAC/s; %.0f M multiply-adds per token -> prompt roof %.1f tok/s", n_threads,
               peak_what, peak / 1e9, mb.macs / 1e6, pp_roof);
        if (n_pp > 0) printf(", pp reached %.1f%%", 100.0 * mean_pp / pp_roof);
        if (n_tg > 0) printf(", pp/tg ratio allowed at this tg: %.2fx", pp_roof / mean_tg);
        printf("\n");
    }
    rc = 0;
done:
    membw_close(&probe);
    free(toks);
    free(pp_s);
    free(tg_s);
    vkllm_context_free(c);
    vkllm_model_free(m);
    return rc;
}
