/* vkllm bench: llama-bench-style throughput (pp N: prompt tokens/s, tg N: generated tokens/s,
 * mean +- sd over repetitions after a warm-up) for every combination of model, -ngl and -t, plus a
 * roofline: the memory read bandwidth of the host and of the Vulkan device is measured (the
 * backends' read_bandwidth ops) and each tg result is also given as GB/s and as a share of what
 * that bandwidth allows.
 *
 * Bytes read per generated token = every weight the token passes through (all matrices and norms
 * of every layer, the output norm and head, one row of the token embedding) + the f16 KV cache
 * read by attention at the average position of the run. Like llama-bench, a tg run starts from
 * an empty context, so token i (0-based) reads i+1 positions: (n+1)/2 on average.
 * Roofline for a configuration: predicted seconds per token = bytes on the GPU / GPU bandwidth +
 * bytes on the CPU / host bandwidth (with that row's thread count); the row reports achieved tok/s
 * as a share of 1 / predicted seconds (for a single device that is GB/s over its bandwidth). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../bench/bench_timing.h"
#include "backend.h"
#include "cli.h"
#include "cli_args.h"
#include "cli_offload.h"
#include "cli_opts.h"
#include "gguf.h"
#include "model.h"
#include "svg_plot.h"
#include "vkllm.h"

#define MAX_LIST 64
#define MAX_MODELS 16
#define NGL_ALL 99 /* llama.cpp's conventional "every layer" value */

static void usage(FILE *out) {
    fprintf(out,
            "usage: vkllm bench -m MODEL.gguf [-m MODEL2 ...] [options]\n"
            "\n"
            "Measures prompt processing (pp N: N tokens in one batch) and generation (tg N: N tokens one\n"
            "at a time from an empty context) in tokens/s, mean +- standard deviation over repetitions\n"
            "after a warm-up, for every combination of the lists below (comma-separated, like\n"
            "llama-bench). Each tg row also shows the bytes read per second and the share of the\n"
            "measured memory bandwidth (the roofline). Table to stdout, progress to stderr.\n"
            "\n"
            "  -m, --model PATH          GGUF model (repeatable)\n"
            "  -p, --n-prompt LIST       prompt sizes (default 512; 0 = no pp test)\n"
            "  -n, --n-gen LIST          generated tokens (default 128; 0 = no tg test)\n"
            "  -ngl, --n-gpu-layers LIST layers on the Vulkan device: 0 = CPU, N = the last N layers,\n"
            "                            n_layer+1 or 99 = everything (default 0,99 when a Vulkan\n"
            "                            device exists, else 0)\n"
            "  --sweep-ngl               every split: -ngl 0, 1, ..., n_layer+1\n"
            "  -t, --threads LIST        CPU threads (default: physical cores)\n"
            "  -r, --repetitions N       measured runs per test (default 5)\n"
            "  -o, --output md|csv|json  output format (default md)\n"
            "  --plot FILE.svg           write an SVG chart (tok/s per configuration; tok/s against\n"
            "                            offloaded layers when there are 3 or more -ngl values)\n"
            "  --device N                Vulkan device index (see `vkllm devices`; default 0)\n"
            "  --vram-budget S           device memory the offload plan may use, e.g. 6G (emulates a\n"
            "                            smaller card; a split that does not fit runs reduced, and\n"
            "                            the row shows the split that ran)\n"
            "  --bw-size MIB             buffer streamed by the bandwidth measurements (default 512)\n"
            "  --no-bw                   skip the bandwidth measurements (no roofline column)\n");
}

/* ---- arguments ------------------------------------------------------------------------------- */

typedef struct int_list {
    int v[MAX_LIST];
    int n;
} int_list;

typedef enum out_fmt { OUT_MD, OUT_CSV, OUT_JSON } out_fmt;

typedef struct bench_args {
    const char *models[MAX_MODELS];
    int n_models;
    int_list p, n, ngl, t;
    bool ngl_set, t_set, sweep, no_bw;
    int reps, device;
    long bw_mib;
    out_fmt out;
    const char *plot;
    cli_offload offload; /* only --vram-budget is taken from the shared offload options */
} bench_args;

/* "1,2,4": each item within [lo, hi]; false on an empty item, junk or too many items. */
static bool parse_list(const char *s, long lo, long hi, int_list *out) {
    char buf[512];
    if (strlen(s) >= sizeof buf) return false;
    snprintf(buf, sizeof buf, "%s", s);
    out->n = 0;
    char *save = NULL, *item = buf;
    if (!*buf || buf[strlen(buf) - 1] == ',' || buf[0] == ',' || strstr(buf, ",,")) return false;
    for (char *tok = strtok_r(item, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long v;
        if (out->n == MAX_LIST || !cli_parse_long(tok, lo, hi, &v)) return false;
        out->v[out->n++] = (int)v;
    }
    return out->n > 0;
}

static int list_max(const int_list *l) {
    int m = 0;
    for (int i = 0; i < l->n; i++) m = l->v[i] > m ? l->v[i] : m;
    return m;
}

/* Returns 0, or 2 after a one-line message. */
static int parse_args(int argc, char **argv, bench_args *a, bool *help) {
    memset(a, 0, sizeof *a);
    a->p = (int_list){{512}, 1};
    a->n = (int_list){{128}, 1};
    a->reps = 5;
    a->bw_mib = 512;
    cli_offload_init(&a->offload);
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (!strcmp(opt, "-h") || !strcmp(opt, "--help")) {
            *help = true;
            return 0;
        }
        if (!strcmp(opt, "--sweep-ngl")) {
            a->sweep = true;
            continue;
        }
        if (!strcmp(opt, "--no-bw")) {
            a->no_bw = true;
            continue;
        }
        if (!strcmp(opt, "--vram-budget")) {
            if (cli_offload_parse(&a->offload, "bench", argc, argv, &i) < 0) return 2;
            if (a->offload.n_budget > 1) {
                fprintf(stderr, "vkllm bench: --vram-budget takes one size (bench uses one device)\n");
                return 2;
            }
            continue;
        }
        static const char *const with_value[] = {"-m", "--model", "-p", "--n-prompt", "-n", "--n-gen", "-ngl",
                                                 "--n-gpu-layers", "-t", "--threads", "-r", "--repetitions", "-o",
                                                 "--output", "--plot", "--device", "--bw-size"};
        bool known = false;
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++) known |= !strcmp(opt, with_value[k]);
        if (!known) {
            fprintf(stderr, "vkllm bench: unknown option %s (see --help)\n", opt);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "vkllm bench: %s needs a value\n", opt);
            return 2;
        }
        const char *val = argv[++i];
        bool ok = true;
        long l = 0;
        const char *why = "";
        if (!strcmp(opt, "-m") || !strcmp(opt, "--model")) {
            if (a->n_models == MAX_MODELS) {
                fprintf(stderr, "vkllm bench: at most %d models\n", MAX_MODELS);
                return 2;
            }
            a->models[a->n_models++] = val;
        } else if (!strcmp(opt, "-p") || !strcmp(opt, "--n-prompt")) {
            ok = parse_list(val, 0, 65536, &a->p), why = " (a list of 0..65536)";
        } else if (!strcmp(opt, "-n") || !strcmp(opt, "--n-gen")) {
            ok = parse_list(val, 0, 65536, &a->n), why = " (a list of 0..65536)";
        } else if (!strcmp(opt, "-ngl") || !strcmp(opt, "--n-gpu-layers")) {
            ok = parse_list(val, 0, 100000, &a->ngl), a->ngl_set = true, why = " (a list of layer counts >= 0)";
        } else if (!strcmp(opt, "-t") || !strcmp(opt, "--threads")) {
            ok = parse_list(val, 1, 1024, &a->t), a->t_set = true, why = " (a list of 1..1024)";
        } else if (!strcmp(opt, "-r") || !strcmp(opt, "--repetitions")) {
            ok = cli_parse_long(val, 1, 1000, &l), a->reps = (int)l, why = " (1..1000 repetitions)";
        } else if (!strcmp(opt, "--device")) {
            ok = cli_parse_long(val, 0, 1 << 20, &l), a->device = (int)l;
        } else if (!strcmp(opt, "--bw-size")) {
            ok = cli_parse_long(val, 1, 1 << 20, &a->bw_mib), why = " (MiB, >= 1)";
        } else if (!strcmp(opt, "--plot")) {
            a->plot = val;
        } else { /* -o */
            ok = !strcmp(val, "md") || !strcmp(val, "csv") || !strcmp(val, "json"), why = " (md, csv or json)";
            a->out = !strcmp(val, "csv") ? OUT_CSV : !strcmp(val, "json") ? OUT_JSON : OUT_MD;
        }
        if (!ok) {
            fprintf(stderr, "vkllm bench: bad value '%s' for %s%s\n", val, opt, why);
            return 2;
        }
    }
    if (a->n_models == 0) {
        fprintf(stderr, "vkllm bench: -m MODEL is required (see --help)\n");
        return 2;
    }
    if (list_max(&a->p) == 0 && list_max(&a->n) == 0) {
        fprintf(stderr, "vkllm bench: nothing to measure: -p and -n are both 0\n");
        return 2;
    }
    if (a->sweep && a->ngl_set) {
        fprintf(stderr, "vkllm bench: give either -ngl or --sweep-ngl, not both\n");
        return 2;
    }
    return 0;
}

/* ---- what a model reads per token ------------------------------------------------------------ */

typedef struct model_info {
    const char *path;
    const char *name; /* file name without the folder */
    char type[16];    /* the weight type holding the most bytes of the layers' matrices */
    double size, params;
    int n_layer;
    double *layer_bytes; /* weights of each layer (matrices and norms) */
    double embd_row;     /* one row of the token embedding (the input lookup) */
    double head_bytes;   /* output norm + output matrix (the whole embedding when tied) */
    double kv_pos;       /* K + V bytes of one position in one layer (f16 cache) */
} model_info;

static int model_info_read(const char *path, model_info *mi, vkl_error *err) {
    memset(mi, 0, sizeof *mi);
    mi->path = path;
    const char *slash = strrchr(path, '/');
    mi->name = slash ? slash + 1 : path;
    gguf_file *f = gguf_open(path, err);
    if (!f) return -1;
    vkl_hparams hp;
    if (vkl_hparams_read(f, &hp, err) != 0 ||
        !(mi->layer_bytes = vkl_calloc((size_t)hp.n_layer + 1, sizeof *mi->layer_bytes, err))) {
        gguf_close(f);
        return -1;
    }
    mi->n_layer = hp.n_layer;
    mi->kv_pos = 2.0 * hp.n_head_kv * hp.head_dim * 2.0;
    double by_type[VKL_TYPE_COUNT] = {0};
    const bool tied = gguf_find_tensor(f, "output.weight") == NULL;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        const double nb = (double)t->nbytes;
        mi->size += nb;
        mi->params += (double)t->n_elements;
        int layer;
        if (sscanf(t->name, "blk.%d.", &layer) == 1 && layer >= 0 && layer < hp.n_layer) {
            mi->layer_bytes[layer] += nb;
            /* (not the embedding and head: in small models they outweigh the layers) */
            if (t->n_dims >= 2 && (unsigned)t->type < VKL_TYPE_COUNT) by_type[t->type] += nb;
        } else if (!strcmp(t->name, "token_embd.weight")) {
            mi->embd_row = t->ne[1] > 0 ? nb / (double)t->ne[1] : 0;
            if (tied) mi->head_bytes += nb;
        } else if (!strcmp(t->name, "output.weight") || !strcmp(t->name, "output_norm.weight")) {
            mi->head_bytes += nb;
        }
    }
    int best = 0;
    for (int t = 1; t < VKL_TYPE_COUNT; t++) best = by_type[t] > by_type[best] ? t : best;
    snprintf(mi->type, sizeof mi->type, "%s", vkl_type_name((vkl_type)best));
    gguf_close(f);
    return 0;
}

/* Bytes a generated token reads on the GPU and on the CPU with `ngl` (effective, <= n_layer+1)
 * and an average of `ctx` cache positions. The embedding lookup always runs on the CPU (as in
 * llama.cpp); ngl > n_layer puts the output norm and head on the GPU. */
static void token_bytes(const model_info *mi, int ngl, double ctx, double *gpu, double *cpu) {
    const int gpu_layers = VKL_MIN(ngl, mi->n_layer);
    *gpu = ngl > mi->n_layer ? mi->head_bytes : 0;
    *cpu = mi->embd_row + (ngl > mi->n_layer ? 0 : mi->head_bytes);
    for (int l = 0; l < mi->n_layer; l++) {
        const double b = mi->layer_bytes[l] + mi->kv_pos * ctx;
        *(l >= mi->n_layer - gpu_layers ? gpu : cpu) += b;
    }
}

/* ---- bandwidth (measured once per device / thread count) ------------------------------------ */

typedef struct bw_cache {
    int threads[MAX_LIST];
    double host[MAX_LIST]; /* bytes/s; 0 = unknown */
    int n_host;
    double gpu;
    bool gpu_done;
} bw_cache;

static double measure_backend(vkl_backend *be, size_t bytes, const char *what) {
    vkl_error err = {{0}};
    double bps = 0;
    if (!be->ops->read_bandwidth) {
        fprintf(stderr, "bench: %s has no bandwidth measurement\n", what);
        return 0;
    }
    if (be->ops->read_bandwidth(be, bytes, &bps, &err) != 0) {
        fprintf(stderr, "bench: %s bandwidth not measured: %s\n", what, err.msg);
        return 0;
    }
    return bps;
}

static double host_bw(bw_cache *c, const bench_args *a, int threads) {
    for (int i = 0; i < c->n_host; i++)
        if (c->threads[i] == threads) return c->host[i];
    double bps = 0;
    if (!a->no_bw) {
        vkl_error err = {{0}};
        vkl_backend_config cfg = {.n_threads = threads};
        vkl_backend *be = vkl_backend_host()->open(0, &cfg, &err);
        if (be) {
            bps = measure_backend(be, (size_t)a->bw_mib << 20, "host");
            vkl_backend_close(be);
        } else {
            fprintf(stderr, "bench: host bandwidth not measured: %s\n", err.msg);
        }
        if (bps > 0) fprintf(stderr, "bench: host read bandwidth, threads %d: %.1f GB/s\n", threads, bps / 1e9);
    }
    if (c->n_host < MAX_LIST) {
        c->threads[c->n_host] = threads;
        c->host[c->n_host++] = bps;
    }
    return bps;
}

static double gpu_bw(bw_cache *c, const bench_args *a) {
    if (c->gpu_done || a->no_bw) return c->gpu;
    c->gpu_done = true;
    vkl_error err = {{0}};
    const vkl_backend_reg *reg = vkl_backend_offload();
    vkl_backend *be = reg ? reg->open(a->device, NULL, &err) : NULL;
    if (!reg) vkl_fail(&err, "this build has no GPU backend");
    if (!be) {
        fprintf(stderr, "bench: Vulkan bandwidth not measured: %s\n", err.msg);
        return 0;
    }
    c->gpu = measure_backend(be, (size_t)a->bw_mib << 20, be->info.name);
    if (c->gpu > 0) fprintf(stderr, "bench: %s read bandwidth: %.1f GB/s\n", be->info.name, c->gpu / 1e9);
    vkl_backend_close(be);
    return c->gpu;
}

/* ---- measurements ---------------------------------------------------------------------------- */

typedef struct bench_row {
    const model_info *mi;
    int ngl, threads, n_prompt, n_gen, reps;
    char backend[16], device[320];
    double mean, sd;
    double samples[1000]; /* tokens/s of each repetition */
    double bytes_tok;     /* tg: bytes read per token (0 for pp) */
    double gbs;           /* tg: achieved GB/s */
    double roof_gbs;      /* tg: the bandwidth the roofline allows for this split (0 = unknown) */
    double roof_pct;      /* tg: achieved tok/s as % of the roofline's */
} bench_row;

typedef struct row_list {
    bench_row *v;
    int n, cap;
} row_list;

static bench_row *row_add(row_list *l) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        bench_row *p = realloc(l->v, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        l->v = p;
        l->cap = cap;
    }
    bench_row *r = &l->v[l->n++];
    memset(r, 0, sizeof *r);
    return r;
}

typedef struct config {
    const model_info *mi;
    int ngl;     /* as given (99 = everything) */
    int ngl_eff; /* <= n_layer + 1 */
    int threads;
    double secs; /* how long it took, once run */
} config;

static const char *backend_name(const model_info *mi, int ngl_eff) {
    return ngl_eff == 0 ? "CPU" : ngl_eff > mi->n_layer ? "Vulkan" : "Vulkan+CPU";
}

/* Runs every test of one configuration, appending rows. 0, or 1 after a message. */
static int run_config(const bench_args *a, const config *cf, bw_cache *bw, row_list *rows, const char *cpu_name,
                      const char *label) {
    vkllm_error err = {{0}};
    const int max_p = list_max(&a->p), max_n = list_max(&a->n);
    vkllm_context_params cp = vkllm_context_default_params();
    cp.n_ctx = VKL_MAX(VKL_MAX(max_p, max_n), 16);
    cp.n_batch = VKL_MIN(VKL_MAX(max_p, 1), 512); /* longer prompts: passes of 512, like llama.cpp's ubatch */
    vkllm_model_params mp = vkllm_model_default_params();
    mp.n_threads = cf->threads;
    mp.n_gpu_layers = cf->ngl_eff; /* explicit for every row: never auto-fit */
    mp.gpu_device = a->device;
    mp.n_ctx = cp.n_ctx; /* the offload plan reserves exactly this context */
    mp.n_batch = cp.n_batch;
    if (a->offload.n_budget) mp.vram_budget[0] = a->offload.budget[0];
    vkllm_model *m = vkllm_model_load(cf->mi->path, &mp, &err);
    if (!m) {
        fprintf(stderr, "vkllm bench: %s\n", err.msg);
        return 1;
    }
    const int threads = vkllm_model_n_threads(m);
    /* The offload plan reduces a split that does not fit the device: report what ran. */
    const int ngl_run = vkllm_model_n_gpu_layers(m);
    if (ngl_run != cf->ngl_eff)
        fprintf(stderr, "bench: %s: -ngl %d does not fit the device; %d ran (rows show that)\n", cf->mi->name, cf->ngl,
                ngl_run);
    const int ngl_shown = ngl_run == cf->ngl_eff ? cf->ngl : ngl_run;
    vkllm_context *c = vkllm_context_create(m, &cp, &err);
    int32_t *toks = c ? malloc(sizeof *toks * (size_t)cp.n_ctx) : NULL;
    int rc = 1;
    if (!toks) {
        fprintf(stderr, "vkllm bench: %s\n", c ? "out of memory" : err.msg);
        goto done;
    }
    uint64_t rng = 0x9e3779b97f4a7c15ull; /* the same token ids for every configuration */
    for (int i = 0; i < cp.n_ctx; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((rng >> 33) % (uint64_t)vkllm_model_n_vocab(m));
    }
    char device[320];
    const char *gpu = vkllm_model_gpu_name(m);
    if (ngl_run == 0 || !gpu) snprintf(device, sizeof device, "%s", cpu_name);
    else if (ngl_run > cf->mi->n_layer) snprintf(device, sizeof device, "%s", gpu);
    else snprintf(device, sizeof device, "%s + %s", gpu, cpu_name);

    /* Warm-up: each prompt size once (its graph is planned then), a few generated tokens. */
    for (int i = 0; i < a->p.n; i++)
        if (a->p.v[i] > 0 && bench_time_pp(c, toks, a->p.v[i], &err) < 0) goto eval_fail;
    if (max_n > 0 && bench_time_tg(c, toks, VKL_MIN(max_n, 4), &err) < 0) goto eval_fail;
    if (cli_verbosity >= CLI_LOG_INFO) /* label: "bench: [i/n] model, ...:" */
        fprintf(stderr, "bench: measuring %.*s\n", (int)strlen(label) - 8, label + 7);

    for (int kind = 0; kind < 2; kind++) {
        const int_list *l = kind == 0 ? &a->p : &a->n;
        for (int i = 0; i < l->n; i++) {
            const int n = l->v[i];
            if (n == 0) continue;
            bench_row *r = row_add(rows);
            if (!r) {
                fprintf(stderr, "vkllm bench: out of memory\n");
                goto done;
            }
            r->mi = cf->mi;
            r->ngl = ngl_shown;
            r->threads = threads;
            r->n_prompt = kind == 0 ? n : 0;
            r->n_gen = kind == 1 ? n : 0;
            r->reps = a->reps;
            snprintf(r->backend, sizeof r->backend, "%s", backend_name(cf->mi, ngl_run));
            snprintf(r->device, sizeof r->device, "%s", device);
            for (int rep = 0; rep < a->reps; rep++) {
                if (cli_interrupted) { /* Ctrl-C: keep the repetitions done, print what was measured */
                    r->reps = rep;
                    break;
                }
                const double s = kind == 0 ? bench_time_pp(c, toks, n, &err) : bench_time_tg(c, toks, n, &err);
                if (s < 0) goto eval_fail;
                r->samples[rep] = s > 0 ? n / s : 0;
            }
            if (r->reps == 0) {
                rows->n--;
                goto done;
            }
            bench_stats(r->samples, r->reps, &r->mean, &r->sd, NULL);
            if (kind == 1) {
                double on_gpu, on_cpu;
                token_bytes(cf->mi, ngl_run, (n + 1) / 2.0, &on_gpu, &on_cpu);
                r->bytes_tok = on_gpu + on_cpu;
                r->gbs = r->mean * r->bytes_tok / 1e9;
                const double bw_c = on_cpu > 0 ? host_bw(bw, a, threads) : 0, bw_g = on_gpu > 0 ? gpu_bw(bw, a) : 0;
                if ((on_cpu == 0 || bw_c > 0) && (on_gpu == 0 || bw_g > 0)) {
                    const double t_pred = (on_cpu > 0 ? on_cpu / bw_c : 0) + (on_gpu > 0 ? on_gpu / bw_g : 0);
                    r->roof_gbs = r->bytes_tok / t_pred / 1e9;
                    r->roof_pct = 100.0 * r->mean * t_pred;
                }
            }
        }
    }
    rc = 0;
    goto done;
eval_fail:
    fprintf(stderr, "vkllm bench: %s\n", err.msg);
done:
    free(toks);
    vkllm_context_free(c);
    vkllm_model_free(m);
    return rc;
}

/* ---- output ---------------------------------------------------------------------------------- */

static void test_name(const bench_row *r, char *buf, size_t n) {
    snprintf(buf, n, r->n_prompt ? "pp%d" : "tg%d", r->n_prompt ? r->n_prompt : r->n_gen);
}

static void fmt_size(char *buf, size_t n, double bytes) {
    if (bytes >= 1024.0 * 1024 * 1024) snprintf(buf, n, "%.2f GiB", bytes / (1024.0 * 1024 * 1024));
    else snprintf(buf, n, "%.2f MiB", bytes / (1024.0 * 1024));
}

static void fmt_params(char *buf, size_t n, double p) {
    if (p >= 1e9) snprintf(buf, n, "%.2f B", p / 1e9);
    else snprintf(buf, n, "%.2f M", p / 1e6);
}

static void print_md(const row_list *rows, const bw_cache *bw) {
    printf("| model | size | params | type | backend | ngl | threads | device | test | t/s | GB/s | roofline |\n");
    printf("| --- | ---: | ---: | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |\n");
    for (int i = 0; i < rows->n; i++) {
        const bench_row *r = &rows->v[i];
        char size[32], params[32], test[32], gbs[32] = "", roof[64] = "";
        fmt_size(size, sizeof size, r->mi->size);
        fmt_params(params, sizeof params, r->mi->params);
        test_name(r, test, sizeof test);
        if (r->n_gen) snprintf(gbs, sizeof gbs, "%.2f", r->gbs);
        if (r->n_gen && r->roof_gbs > 0) snprintf(roof, sizeof roof, "%.1f%% of %.1f GB/s", r->roof_pct, r->roof_gbs);
        printf("| %s | %s | %s | %s | %s | %d | %d | %s | %s | %.2f ± %.2f | %s | %s |\n", r->mi->name, size, params,
               r->mi->type, r->backend, r->ngl, r->threads, r->device, test, r->mean, r->sd, gbs, roof);
    }
    printf("\n");
    bool any = false;
    for (int i = 0; i < bw->n_host; i++)
        if (bw->host[i] > 0) {
            printf("%s host %.1f GB/s (%d threads)", any ? "," : "Measured read bandwidth:", bw->host[i] / 1e9,
                   bw->threads[i]);
            any = true;
        }
    if (bw->gpu > 0) printf("%s Vulkan device %.1f GB/s", any ? "," : "Measured read bandwidth:", bw->gpu / 1e9), any = true;
    if (any) printf(".\n");
    printf("tg rows: GB/s = t/s x bytes read per token (weights + f16 KV at the average position, from an "
           "empty context); roofline = t/s as a share of 1 / (GPU bytes / GPU bandwidth + CPU bytes / host "
           "bandwidth), and the bandwidth that allows.\n");
}

static void csv_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"') putchar('"');
        putchar(*s);
    }
    putchar('"');
}

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch < 0x20) printf("\\u%04x", ch);
        else putchar(ch);
    }
    putchar('"');
}

static void print_csv(const row_list *rows) {
    printf("model_filename,model_type,model_size,model_n_params,backend,n_gpu_layers,n_threads,device,test,"
           "n_prompt,n_gen,repetitions,avg_ts,stddev_ts,bytes_per_token,avg_gbs,roofline_gbs,roofline_pct,samples_ts\n");
    for (int i = 0; i < rows->n; i++) {
        const bench_row *r = &rows->v[i];
        char test[32];
        test_name(r, test, sizeof test);
        csv_str(r->mi->name);
        printf(",%s,%.0f,%.0f,%s,%d,%d,", r->mi->type, r->mi->size, r->mi->params, r->backend, r->ngl, r->threads);
        csv_str(r->device);
        printf(",%s,%d,%d,%d,%.4f,", test, r->n_prompt, r->n_gen, r->reps, r->mean);
        if (r->reps > 1) printf("%.4f", r->sd); /* one repetition has no spread */
        putchar(',');
        /* values that do not apply (pp rows; a roofline without a bandwidth) stay empty */
        if (r->n_gen) printf("%.0f,%.4f,", r->bytes_tok, r->gbs);
        else printf(",,");
        if (r->n_gen && r->roof_gbs > 0) printf("%.4f,%.2f,\"", r->roof_gbs, r->roof_pct);
        else printf(",,\"");
        for (int k = 0; k < r->reps; k++) printf("%s%.4f", k ? " " : "", r->samples[k]);
        printf("\"\n");
    }
}

/* key, then the value in fmt, or null when it does not apply. */
static void json_num(const char *key, const char *fmt, double v, bool applies) {
    fputs(key, stdout);
    if (applies) printf(fmt, v);
    else fputs("null", stdout);
}

static void print_json(const row_list *rows, const bw_cache *bw) {
    printf("[\n");
    for (int i = 0; i < rows->n; i++) {
        const bench_row *r = &rows->v[i];
        char test[32];
        test_name(r, test, sizeof test);
        double host = 0;
        for (int k = 0; k < bw->n_host; k++)
            if (bw->threads[k] == r->threads) host = bw->host[k];
        printf("  {\"model_filename\": ");
        json_str(r->mi->name);
        printf(", \"model_type\": \"%s\", \"model_size\": %.0f, \"model_n_params\": %.0f, \"backend\": \"%s\", "
               "\"n_gpu_layers\": %d, \"n_threads\": %d, \"device\": ",
               r->mi->type, r->mi->size, r->mi->params, r->backend, r->ngl, r->threads);
        json_str(r->device);
        printf(", \"test\": \"%s\", \"n_prompt\": %d, \"n_gen\": %d, \"repetitions\": %d, \"avg_ts\": %.4f", test,
               r->n_prompt, r->n_gen, r->reps, r->mean);
        json_num(", \"stddev_ts\": ", "%.4f", r->sd, r->reps > 1); /* one repetition has no spread */
        printf(", \"samples_ts\": [");
        for (int k = 0; k < r->reps; k++) printf("%s%.4f", k ? ", " : "", r->samples[k]);
        printf("]");
        /* values that do not apply (pp rows, bandwidths not measured or not used) are null */
        json_num(", \"bytes_per_token\": ", "%.0f", r->bytes_tok, r->n_gen > 0);
        json_num(", \"avg_gbs\": ", "%.4f", r->gbs, r->n_gen > 0);
        json_num(", \"roofline_gbs\": ", "%.4f", r->roof_gbs, r->n_gen > 0 && r->roof_gbs > 0);
        json_num(", \"roofline_pct\": ", "%.2f", r->roof_pct, r->n_gen > 0 && r->roof_gbs > 0);
        json_num(", \"host_bw_gbs\": ", "%.4f", host / 1e9, host > 0 && strcmp(r->backend, "Vulkan"));
        json_num(", \"gpu_bw_gbs\": ", "%.4f", bw->gpu / 1e9, bw->gpu > 0 && strcmp(r->backend, "CPU"));
        printf("}%s\n", i + 1 < rows->n ? "," : "");
    }
    printf("]\n");
}

/* ---- plot ------------------------------------------------------------------------------------ */

/* Whether row r is of test `test` (e.g. "tg128") and, unless mi is NULL, of that model. */
static bool row_is(const bench_row *r, const model_info *mi, const char *test) {
    char t[32];
    test_name(r, t, sizeof t);
    return (!mi || r->mi == mi) && !strcmp(t, test);
}

/* Per-chart arrays, sized for every row. */
typedef struct plot_buf {
    const char **labels;
    char (*label_text)[128];
    double *vals, *errs, *xs, *ys;
    int *colors;
    svg_series *series;
    char (*series_names)[64];
} plot_buf;

static void plot_buf_free(plot_buf *b) {
    free(b->labels);
    free(b->label_text);
    free(b->vals);
    free(b->errs);
    free(b->xs);
    free(b->ys);
    free(b->colors);
    free(b->series);
    free(b->series_names);
}

static int plot_buf_alloc(plot_buf *b, int n) {
    const size_t k = (size_t)n + 1;
    *b = (plot_buf){calloc(k, sizeof *b->labels), calloc(k, sizeof *b->label_text), calloc(k, sizeof *b->vals),
                    calloc(k, sizeof *b->errs),   calloc(k, sizeof *b->xs),         calloc(k, sizeof *b->ys),
                    calloc(k, sizeof *b->colors), calloc(k, sizeof *b->series),     calloc(k, sizeof *b->series_names)};
    return b->labels && b->label_text && b->vals && b->errs && b->xs && b->ys && b->colors && b->series &&
                   b->series_names
               ? 0
               : -1;
}

/* Bars: tok/s of every configuration of one test. */
static void plot_bars(svg_doc *d, plot_buf *b, const row_list *rows, const char *test, int n_models) {
    int n = 0;
    for (int i = 0; i < rows->n; i++) {
        const bench_row *r = &rows->v[i];
        if (!row_is(r, NULL, test)) continue;
        snprintf(b->label_text[n], sizeof b->label_text[n], "%s%s%s ngl %d t%d", n_models > 1 ? r->mi->name : "",
                 n_models > 1 ? " " : "", r->backend, r->ngl, r->threads);
        b->labels[n] = b->label_text[n];
        b->vals[n] = r->mean;
        b->errs[n] = r->sd;
        b->colors[n] = !strcmp(r->backend, "CPU") ? 0 : !strcmp(r->backend, "Vulkan") ? 1 : 2;
        n++;
    }
    char title[64];
    snprintf(title, sizeof title, "%.31s (%s)", test, test[0] == 'p' ? "prompt" : "generation");
    svg_bar(d, &(svg_bar_chart){.title = title, .y_label = "tokens/s", .n = n, .labels = b->labels,
                                .values = b->vals, .errors = b->errs, .colors = b->colors});
}

/* Lines: tok/s of one model and test against -ngl, one series per thread count (in row order). */
static void plot_sweep(svg_doc *d, plot_buf *b, const row_list *rows, const model_info *mi, const char *test,
                       int n_models) {
    int n_series = 0, n_pts = 0;
    for (int s = 0; s < rows->n; s++) {
        const bench_row *r0 = &rows->v[s];
        bool first_of_threads = row_is(r0, mi, test);
        for (int j = 0; j < s && first_of_threads; j++)
            first_of_threads = !(row_is(&rows->v[j], mi, test) && rows->v[j].threads == r0->threads);
        if (!first_of_threads) continue;
        const int first = n_pts;
        for (int i = s; i < rows->n; i++)
            if (row_is(&rows->v[i], mi, test) && rows->v[i].threads == r0->threads) {
                b->xs[n_pts] = VKL_MIN(rows->v[i].ngl, mi->n_layer + 1); /* 99 = everything */
                b->ys[n_pts++] = rows->v[i].mean;
            }
        snprintf(b->series_names[n_series], sizeof b->series_names[n_series], "%d thread%s", r0->threads,
                 r0->threads == 1 ? "" : "s");
        b->series[n_series] = (svg_series){b->series_names[n_series], n_pts - first, b->xs + first, b->ys + first};
        n_series++;
    }
    char title[384], x_label[96];
    snprintf(title, sizeof title, "%s%s%.31s vs offloaded layers", n_models > 1 ? mi->name : "",
             n_models > 1 ? ": " : "", test);
    snprintf(x_label, sizeof x_label, "-ngl (layers on the Vulkan device; %d = all + output)", mi->n_layer + 1);
    svg_line(d, &(svg_line_chart){.title = title, .x_label = x_label, .y_label = "tokens/s",
                                  .n_series = n_series, .series = b->series});
}

/* One bar panel per test; with 3 or more -ngl values of a model, one line panel per test and
 * model: tok/s against offloaded layers (the bars then only while there are at most 16 per test). */
static int write_plot(const char *path, const row_list *rows, int n_models) {
    char tests[MAX_LIST][32];
    int n_tests = 0;
    for (int i = 0; i < rows->n; i++) {
        int k = 0;
        while (k < n_tests && !row_is(&rows->v[i], NULL, tests[k])) k++;
        if (k == n_tests && n_tests < MAX_LIST) test_name(&rows->v[i], tests[n_tests++], sizeof tests[0]);
    }
    /* Models with a sweep: 3 or more distinct -ngl values. */
    const model_info *sweeps[MAX_MODELS];
    int n_sweeps = 0;
    for (int i = 0; i < rows->n; i++) {
        const model_info *mi = rows->v[i].mi;
        int distinct = 0;
        for (int j = 0; j < rows->n; j++) {
            bool seen = false;
            for (int k = 0; k < j && !seen; k++) seen = rows->v[k].mi == mi && rows->v[k].ngl == rows->v[j].ngl;
            distinct += rows->v[j].mi == mi && !seen;
        }
        bool listed = false;
        for (int k = 0; k < n_sweeps; k++) listed |= sweeps[k] == mi;
        if (distinct >= 3 && !listed && n_sweeps < MAX_MODELS) sweeps[n_sweeps++] = mi;
    }
    const bool bars = n_sweeps == 0 || rows->n <= 16 * n_tests;
    const int n_panels = (bars ? n_tests : 0) + n_sweeps * n_tests;
    plot_buf b;
    if (plot_buf_alloc(&b, rows->n)) {
        plot_buf_free(&b);
        fprintf(stderr, "vkllm bench: out of memory\n");
        return -1;
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        plot_buf_free(&b);
        fprintf(stderr, "vkllm bench: cannot write %s\n", path);
        return -1;
    }
    char subtitle[512] = "tokens/s, mean and standard deviation";
    if (n_models == 1)
        snprintf(subtitle, sizeof subtitle, "%s (%s): tokens/s, mean and standard deviation", rows->v[0].mi->name,
                 rows->v[0].mi->type);
    svg_doc d;
    svg_begin(&d, f, n_panels, n_panels > 1 ? 2 : 1, "vkllm bench", subtitle);
    for (int t = 0; bars && t < n_tests; t++) plot_bars(&d, &b, rows, tests[t], n_models);
    for (int k = 0; k < n_sweeps; k++)
        for (int t = 0; t < n_tests; t++) plot_sweep(&d, &b, rows, sweeps[k], tests[t], n_models);
    int rc = svg_end(&d);
    if (fclose(f) != 0) rc = -1;
    if (rc) fprintf(stderr, "vkllm bench: error writing %s\n", path);
    plot_buf_free(&b);
    return rc;
}

/* ---- main ------------------------------------------------------------------------------------ */

/* The time the configurations after done will take: each from the finished ones on the same kind of
 * backend (the CPU alone, or with a Vulkan device: lavapipe can be 10x slower than the CPU),
 * scaled by model size. Returns false when some configuration has no such reference yet (*left
 * then sums the others). */
static bool estimate_left(const config *cfgs, int done, int n, double *left) {
    bool all = true;
    *left = 0;
    for (int j = done; j < n; j++) {
        double per_byte = 0;
        int k = 0;
        for (int i = 0; i < done; i++)
            if ((cfgs[i].ngl_eff > 0) == (cfgs[j].ngl_eff > 0) && cfgs[i].mi->size > 0)
                per_byte += cfgs[i].secs / cfgs[i].mi->size, k++;
        if (k) *left += per_byte / k * cfgs[j].mi->size;
        else all = false;
    }
    return all;
}

static void fmt_dur(char *buf, size_t n, double s) {
    if (s < 60) snprintf(buf, n, "%.1f s", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

int cmd_bench(int argc, char **argv) {
    bench_args a;
    bool help = false;
    int rc = parse_args(argc, argv, &a, &help);
    if (rc) return rc;
    if (help) {
        usage(stdout);
        return 0;
    }
    model_info mis[MAX_MODELS];
    memset(mis, 0, sizeof mis);
    cli_sigint_install(); /* Ctrl-C: stop, and print the rows measured so far */
    config *cfgs = NULL;
    row_list rows = {0};
    bw_cache bw = {0};
    int n_cfg = 0;
    rc = 1;
    for (int i = 0; i < a.n_models; i++) {
        vkl_error err = {{0}};
        if (cli_check_model("bench", a.models[i])) goto done;
        if (model_info_read(a.models[i], &mis[i], &err) != 0) {
            fprintf(stderr, "vkllm bench: %s: %s\n", a.models[i], err.msg);
            goto done;
        }
    }
    /* Which -ngl values: explicit, a sweep, or CPU and (when a device exists) everything on it. */
    vkllm_error verr = {{0}};
    const int n_gpus = vkllm_gpu_count(&verr);
    if (!a.ngl_set && !a.sweep) a.ngl = n_gpus > 0 ? (int_list){{0, NGL_ALL}, 2} : (int_list){{0}, 1};
    const bool need_gpu = a.sweep || list_max(&a.ngl) > 0;
    for (int i = 0; i < a.n_models; i++) {
        const int all = mis[i].n_layer + 1;
        for (int k = 0; !a.sweep && k < a.ngl.n; k++)
            if (a.ngl.v[k] > all && a.ngl.v[k] != NGL_ALL) {
                fprintf(stderr,
                        "vkllm bench: -ngl %d is beyond %s's %d layers (use 0..%d, where %d = every layer and the "
                        "output head; %d also means everything)\n",
                        a.ngl.v[k], mis[i].name, mis[i].n_layer, all, all, NGL_ALL);
                rc = 2;
                goto done;
            }
    }
    if (need_gpu && n_gpus <= 0) {
        fprintf(stderr, "vkllm bench: -ngl above 0 needs a Vulkan device, and there is none (%s)\n",
                n_gpus < 0 ? verr.msg : "no device found");
        goto done;
    }
    if (need_gpu && a.device >= n_gpus) {
        fprintf(stderr, "vkllm bench: no Vulkan device %d (there %s %d)\n", a.device, n_gpus == 1 ? "is" : "are", n_gpus);
        goto done;
    }
    /* The CPU's name and default thread count (physical cores). */
    char cpu_name[256] = "CPU";
    int default_threads = 1;
    {
        vkl_error err = {{0}};
        vkl_backend *be = vkl_backend_host()->open(0, &(vkl_backend_config){0}, &err);
        if (be) {
            snprintf(cpu_name, sizeof cpu_name, "%s", be->info.name);
            default_threads = be->n_threads;
        }
        vkl_backend_close(be);
    }
    int max_cfg = 0;
    for (int i = 0; i < a.n_models; i++) max_cfg += (a.sweep ? mis[i].n_layer + 2 : a.ngl.n) * (a.t_set ? a.t.n : 1);
    cfgs = calloc((size_t)max_cfg, sizeof *cfgs);
    if (!cfgs) {
        fprintf(stderr, "vkllm bench: out of memory\n");
        goto done;
    }
    for (int i = 0; i < a.n_models; i++) {
        const int n_ngl = a.sweep ? mis[i].n_layer + 2 : a.ngl.n;
        for (int k = 0; k < n_ngl; k++)
            for (int j = 0; j < (a.t_set ? a.t.n : 1); j++) {
                const int ngl = a.sweep ? k : a.ngl.v[k];
                cfgs[n_cfg++] = (config){&mis[i], ngl, VKL_MIN(ngl, mis[i].n_layer + 1),
                                         a.t_set ? a.t.v[j] : default_threads, 0};
            }
    }
    /* Bandwidths first (the roofline of tg rows), so the per-configuration times and the
     * estimate of the time left are about the models alone. */
    if (list_max(&a.n) > 0)
        for (int i = 0; i < n_cfg; i++) {
            host_bw(&bw, &a, cfgs[i].threads);
            if (cfgs[i].ngl_eff > 0) gpu_bw(&bw, &a);
        }
    const double t_start = vkl_time_s();
    for (int i = 0; i < n_cfg && !cli_interrupted; i++) {
        config *cf = &cfgs[i];
        const int first_row = rows.n;
        const double t0 = vkl_time_s();
        char line[1024], el[32], eta[32];
        int len = snprintf(line, sizeof line, "bench: [%d/%d] %s, %s, ngl %d, threads %d:", i + 1, n_cfg, cf->mi->name,
                           backend_name(cf->mi, cf->ngl_eff), cf->ngl, cf->threads);
        const int crc = run_config(&a, cf, &bw, &rows, cpu_name, line);
        if (cli_interrupted) { /* Ctrl-C: the rows measured so far, exit 130 */
            fprintf(stderr, "bench: interrupted\n");
            rc = 130;
            goto print;
        }
        if (crc) goto print;
        const double dt = vkl_time_s() - t0;
        cf->secs = dt;
        for (int r = first_row; r < rows.n && len > 0 && (size_t)len < sizeof line; r++) {
            char t[32];
            test_name(&rows.v[r], t, sizeof t);
            len += snprintf(line + len, sizeof line - (size_t)len, " %s %.2f t/s", t, rows.v[r].mean);
        }
        fmt_dur(el, sizeof el, vkl_time_s() - t_start);
        double left;
        const bool known = estimate_left(cfgs, i + 1, n_cfg, &left);
        fmt_dur(eta, sizeof eta, left);
        if (known) fprintf(stderr, "%s (%.1f s); elapsed %s, about %s left\n", line, dt, el, eta);
        else fprintf(stderr, "%s (%.1f s); elapsed %s, more than %s left (no %s configuration timed yet)\n", line, dt,
                     el, eta, cf->ngl_eff > 0 ? "CPU-only" : "Vulkan");
    }
    rc = cli_interrupted ? 130 : 0;
print: /* the rows measured so far, also after a failed configuration or Ctrl-C */
    if (rows.n > 0) {
        if (a.out == OUT_MD) print_md(&rows, &bw);
        else if (a.out == OUT_CSV) print_csv(&rows);
        else print_json(&rows, &bw);
        fflush(stdout);
    }
    if (rc == 0 && a.plot && write_plot(a.plot, &rows, a.n_models) != 0) rc = 1;
done:
    for (int i = 0; i < a.n_models; i++) free(mis[i].layer_bytes);
    free(cfgs);
    free(rows.v);
    return rc;
}
