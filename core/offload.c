/* The offload planner (see offload.h): layouts, the memory replay of the Vulkan allocator, the
 * throughput model for auto-fit, and the plan table. */
#include "offload.h"

#include "kv_cache.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)

/* Host read bandwidth assumed when nothing better is known (2-thread generation on a current
 * desktop/server core pair reaches 35-40 GB/s). */
#define HOST_BW 40e9
/* Per device change in a token's pass: a submit/fence round trip plus the copy. */
#define BOUNDARY_LATENCY_S 30e-6
#define LINK_BW_DISCRETE 12e9 /* PCIe, effective */
#define LINK_BW_HOST 20e9     /* memcpy through host memory (UMA, software devices) */

vkl_offload_request vkl_offload_default_request(void) {
    return (vkl_offload_request){.n_gpu_layers = 0, .margin_frac = 0.05, .margin_bytes = 64 * MiB};
}

static double env_gbps(const char *name) {
    const char *s = getenv(name);
    if (!s || !*s) return 0;
    char *end;
    double v = strtod(s, &end);
    return *end == 0 && v > 0 && v < 1e6 ? v * 1e9 : 0;
}

double vkl_offload_default_bw(vkl_device_kind kind) {
    double host = env_gbps("VKLLM_CPU_BW_GBPS");
    if (host <= 0) host = HOST_BW;
    if (kind == VKL_DEV_CPU) return host;
    double gpu = env_gbps("VKLLM_GPU_BW_GBPS");
    if (gpu > 0) return gpu;
    switch (kind) {
    case VKL_DEV_DISCRETE_GPU: return 400e9;
    /* lavapipe runs shaders on the same cores as our CPU backend, far less efficiently: measured
     * 3.5 tok/s against 72 tok/s on a 1B model. */
    case VKL_DEV_SOFTWARE: return host / 20;
    default: return host; /* integrated / virtual: the host's memory */
    }
}

uint64_t vkl_offload_block_size(uint64_t budget) {
    if (budget == 0) return 256 * MiB;
    uint64_t b = budget / 64 / MiB * MiB;
    return b < MiB ? MiB : b > 256 * MiB ? 256 * MiB : b;
}

uint64_t vkl_offload_chunk_cap(const vkl_offload_device *d) {
    return d->max_alloc && d->max_alloc < GiB ? d->max_alloc : GiB;
}

int vkl_offload_chunk_end(const vkl_offload_model *m, int first, int end, uint64_t cap) {
    uint64_t sum = m->layer_bytes[first];
    int l = first + 1;
    while (l < end && sum + m->layer_bytes[l] <= cap) sum += m->layer_bytes[l++];
    return l;
}

int vkl_offload_layer_device(const vkl_offload_plan *p, int l) {
    for (int d = 0; d < p->n_dev; d++)
        if (l >= p->use[d].first_layer && l < p->use[d].first_layer + p->use[d].n_layers) return d;
    return 0;
}

/* ---- memory replay of the Vulkan allocator ------------------------------------------------- */

typedef struct sim {
    uint64_t block_size, align, reserved;
    uint64_t tail[64]; /* free bytes at the end of each shared block (first fit in order) */
    int n_tail;
} sim;

static void sim_alloc(sim *s, uint64_t size) {
    if (size == 0) return;
    uint64_t a = VKL_ALIGN_UP(size, s->align);
    for (int i = 0; i < s->n_tail; i++)
        if (s->tail[i] >= a) {
            s->tail[i] -= a;
            return;
        }
    uint64_t block = VKL_MAX(a, s->block_size);
    s->reserved += block;
    if (block > a && s->n_tail < (int)VKL_ARRAY_LEN(s->tail)) s->tail[s->n_tail++] = block - a;
}

/* Device memory a GPU reserves: its weight buffers in load order, the staging ring on non-UMA
 * devices (a host-visible block of its own), the KV cache, the scratch arena. */
static uint64_t predict_gpu(const vkl_offload_model *m, const vkl_offload_device *d, const vkl_offload_use *u) {
    sim s = {.block_size = d->block_size ? d->block_size : vkl_offload_block_size(d->budget),
             .align = VKL_OFFLOAD_ALIGN};
    uint64_t cap = vkl_offload_chunk_cap(d);
    int end = u->first_layer + u->n_layers;
    for (int l = u->first_layer; l < end;) {
        int e = vkl_offload_chunk_end(m, l, end, cap);
        uint64_t bytes = 0;
        for (int k = l; k < e; k++) bytes += m->layer_bytes[k];
        sim_alloc(&s, bytes);
        l = e;
    }
    if (u->head) sim_alloc(&s, m->head_bytes);
    if (u->kv) { /* the KV cache in buffers of whole layers, as kv_cache.c splits it */
        int per = vkl_kv_cache_layers_per_buffer(m->kv_layer_bytes, d->max_alloc);
        for (int l = 0; l < u->n_layers; l += per)
            sim_alloc(&s, (uint64_t)VKL_MIN(per, u->n_layers - l) * m->kv_layer_bytes);
    }
    sim_alloc(&s, u->scratch);
    return s.reserved + u->staging;
}

/* ---- layouts ------------------------------------------------------------------------------- */

/* Places n_gpu_layers (-ngl meaning) over the GPUs by the proportions w (n_dev - 1 of them). */
static void layout(vkl_offload_plan *p, int n_gpu_layers, const double *w) {
    int n_layer = p->n_layer, ngl = VKL_MIN(n_gpu_layers, n_layer);
    for (int d = 0; d < p->n_dev; d++) p->use[d] = (vkl_offload_use){0};
    p->n_gpu_layers = n_gpu_layers;
    p->use[0].first_layer = 0;
    p->use[0].n_layers = n_layer - ngl;
    double total = 0;
    for (int d = 1; d < p->n_dev; d++) total += w[d - 1];
    double cum = 0;
    int start = n_layer - ngl, last = 0;
    for (int d = 1; d < p->n_dev; d++) {
        cum += w[d - 1];
        int end = d + 1 == p->n_dev || total <= 0 ? n_layer : n_layer - ngl + (int)((double)ngl * cum / total + 0.5);
        end = VKL_MIN(VKL_MAX(end, start), n_layer);
        p->use[d].first_layer = start;
        p->use[d].n_layers = end - start;
        if (end > start) last = d;
        start = end;
    }
    p->use[n_gpu_layers > n_layer && ngl > 0 ? last : 0].head = true;
}

/* Fills bytes, memory and time of the current layout. */
static int evaluate(vkl_offload_plan *p, vkl_offload_scratch_fn scratch_fn, void *user, vkl_error *err) {
    const vkl_offload_model *m = &p->model;
    uint64_t scratch[VKL_OFFLOAD_MAX_DEV] = {0};
    if (scratch_fn && scratch_fn(user, p, scratch, err)) return -1;
    for (int d = 0; d < p->n_dev; d++) {
        vkl_offload_use *u = &p->use[d];
        u->weights = u->head ? m->head_bytes : 0;
        for (int l = u->first_layer; l < u->first_layer + u->n_layers; l++) u->weights += m->layer_bytes[l];
        if (d == 0) u->weights += m->embd_bytes;
        u->scratch = scratch[d];
        u->kv = 0;
        u->staging = 0;
        u->predicted = 0;
    }
    for (int d = 0; d < p->n_dev; d++) {
        int kd = p->kv_on_cpu ? 0 : d;
        p->use[kd].kv += (uint64_t)p->use[d].n_layers * m->kv_layer_bytes;
    }
    /* Time: bytes read per token over bandwidth (weights, half the KV cache on average; the
     * embedding lookup reads one row), plus the device changes along the pass. */
    p->token_s = 0;
    for (int d = 0; d < p->n_dev; d++) {
        vkl_offload_use *u = &p->use[d];
        double bytes = (double)(u->weights - (d == 0 ? m->embd_bytes : 0)) + 0.5 * (double)u->kv;
        u->read_s = bytes / p->dev[d].bw;
        p->token_s += u->read_s;
        bool holds = u->n_layers > 0 || u->head;
        if (d > 0 && holds) {
            if (!p->dev[d].uma) u->staging = VKL_OFFLOAD_STAGING;
            u->predicted = predict_gpu(m, &p->dev[d], u);
        }
    }
    int prev = 0, boundaries = 0;
    double xfer_s = 0;
    for (int l = 0; l <= m->n_layer + 1; l++) {
        int d = l < m->n_layer ? vkl_offload_layer_device(p, l) : 0;
        uint64_t bytes = m->act_bytes;
        if (l == m->n_layer) { /* the head */
            for (int k = 0; k < p->n_dev; k++)
                if (p->use[k].head) d = k;
        } else if (l == m->n_layer + 1) {
            bytes = m->logits_bytes;
        }
        if (d != prev) {
            boundaries++;
            int gpu = d ? d : prev;
            double link = p->dev[gpu].kind == VKL_DEV_DISCRETE_GPU && !p->dev[gpu].uma ? LINK_BW_DISCRETE : LINK_BW_HOST;
            xfer_s += BOUNDARY_LATENCY_S + (double)bytes / link;
        }
        prev = d;
    }
    /* KV caches on the CPU: each GPU layer's attention runs on the CPU (q, k, v there, the result
     * back). */
    for (int d = 1; d < p->n_dev && p->kv_on_cpu; d++) {
        int n = 2 * p->use[d].n_layers;
        boundaries += n;
        xfer_s += n * (BOUNDARY_LATENCY_S + 2.0 * (double)m->act_bytes / LINK_BW_HOST);
    }
    p->n_boundaries = boundaries;
    p->token_s += xfer_s;
    return 0;
}

/* The first GPU whose prediction exceeds its budget minus the margin, or 0 when all fit. */
static int overflow(const vkl_offload_plan *p, double frac, uint64_t bytes) {
    for (int d = 1; d < p->n_dev; d++) {
        const vkl_offload_device *dv = &p->dev[d];
        if (!dv->budget || !p->use[d].predicted) continue;
        uint64_t margin = (uint64_t)(frac * (double)dv->budget) + bytes;
        if (margin >= dv->budget || p->use[d].predicted > dv->budget - margin) return d;
    }
    return 0;
}

static void VKL_PRINTF(2, 3) add_note(vkl_offload_plan *p, const char *fmt, ...) {
    size_t len = strlen(p->note);
    if (len + 2 >= sizeof p->note) return;
    if (len) p->note[len++] = ' ', p->note[len] = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->note + len, sizeof p->note - len, fmt, ap);
    va_end(ap);
}

static bool any_software(const vkl_offload_plan *p) {
    for (int d = 1; d < p->n_dev; d++)
        if (p->dev[d].kind == VKL_DEV_SOFTWARE) return true;
    return false;
}

int vkl_offload_plan_compute(const vkl_offload_model *m, const vkl_offload_device *devs, int n_dev,
                             const vkl_offload_request *req, vkl_offload_scratch_fn scratch, void *user,
                             vkl_offload_plan *out, vkl_error *err) {
    memset(out, 0, sizeof *out);
    if (n_dev < 1 || n_dev > VKL_OFFLOAD_MAX_DEV || devs[0].kind != VKL_DEV_CPU)
        return vkl_fail(err, "offload: %d devices (the CPU first, at most %d GPUs)", n_dev, VKL_OFFLOAD_MAX_GPU);
    if (m->n_layer < 1) return vkl_fail(err, "offload: model without layers");
    out->n_dev = n_dev;
    out->n_layer = m->n_layer;
    out->model = *m;
    out->kv_on_cpu = req->kv_on_cpu;
    out->auto_fit = req->n_gpu_layers < 0;
    out->ngl_asked = req->n_gpu_layers;
    double w[VKL_OFFLOAD_MAX_GPU] = {0}, frac = req->margin_frac;
    uint64_t margin_bytes = req->margin_bytes;
    bool by_budget = true;
    for (int d = 0; d < n_dev; d++) {
        out->dev[d] = devs[d];
        if (out->dev[d].bw <= 0) out->dev[d].bw = vkl_offload_default_bw(devs[d].kind);
        if (d > 0 && !out->dev[d].block_size) out->dev[d].block_size = vkl_offload_block_size(devs[d].budget);
        if (d > 0 && req->tensor_split[d - 1] > 0) by_budget = false;
    }
    for (int d = 1; d < n_dev; d++) {
        if (req->tensor_split[d - 1] < 0) return vkl_fail(err, "offload: negative tensor-split proportion");
        uint64_t b = devs[d].budget, mg = (uint64_t)(frac * (double)b) + margin_bytes;
        w[d - 1] = by_budget ? (b > mg ? (double)(b - mg) : b ? 0 : 1) : req->tensor_split[d - 1];
    }
    if (n_dev > 1) {
        double total = 0;
        for (int d = 1; d < n_dev; d++) total += w[d - 1];
        if (total <= 0)
            for (int d = 1; d < n_dev; d++) w[d - 1] = 1;
    }
    int max_ngl = n_dev > 1 ? m->n_layer + 1 : 0;

    /* CPU-only reference time. */
    layout(out, 0, w);
    if (evaluate(out, scratch, user, err)) return -1;
    out->cpu_only_s = out->token_s;
    if (n_dev == 1) {
        if (req->n_gpu_layers > 0) add_note(out, "no Vulkan device: everything on the CPU.");
        return 0;
    }

    char s1[32], s2[32];
    if (out->auto_fit) {
        int best = 0, smallest_gpu = -1;
        double best_s = out->cpu_only_s;
        uint64_t need_one = 0;
        for (int n = 1; n <= max_ngl; n++) {
            layout(out, n, w);
            if (evaluate(out, scratch, user, err)) return -1;
            int o = overflow(out, frac, margin_bytes);
            if (n == 1) need_one = o ? out->use[o].predicted : 0, smallest_gpu = o;
            if (o) continue;
            out->n_fitting++;
            if (out->token_s < best_s) best = n, best_s = out->token_s;
        }
        out->n_fitting++; /* the CPU-only split always fits */
        layout(out, best, w);
        if (evaluate(out, scratch, user, err)) return -1;
        if (out->n_fitting == 1 && smallest_gpu > 0) {
            add_note(out, "auto-fit: the budget of gpu%d (%s) is too small for even one layer with its KV cache "
                     "and scratch (needs %s plus a margin of 5%% + 64 MiB): everything on the CPU.",
                     smallest_gpu - 1, vkl_fmt_bytes(out->dev[smallest_gpu].budget, s1, sizeof s1),
                     vkl_fmt_bytes(need_one, s2, sizeof s2));
        } else if (best == 0) {
            add_note(out, "auto-fit: %s predicted slower than the CPU: everything on the CPU.",
                     any_software(out) ? "lavapipe (a software Vulkan device)" : "the GPU split");
        } else {
            add_note(out, "auto-fit: fastest predicted of %d splits that fit (margin 5%% + 64 MiB per GPU).",
                     out->n_fitting);
        }
        return 0;
    }

    int want = VKL_MIN(req->n_gpu_layers, max_ngl), n = want;
    for (; n > 0; n--) {
        layout(out, n, w);
        if (evaluate(out, scratch, user, err)) return -1;
        int o = overflow(out, 0, 0);
        if (!o) break;
        if (n == want)
            add_note(out, "-ngl %d needs %s on gpu%d (%s), more than its budget of %s;", req->n_gpu_layers,
                     vkl_fmt_bytes(out->use[o].predicted, s1, sizeof s1), o - 1, out->dev[o].name,
                     vkl_fmt_bytes(out->dev[o].budget, s2, sizeof s2));
    }
    if (n == 0) {
        layout(out, 0, w);
        if (evaluate(out, scratch, user, err)) return -1;
        if (want > 0) add_note(out, "the budget is too small for even one layer with its KV cache: everything on the CPU.");
    } else if (n < want) {
        add_note(out, "using -ngl %d, the most that fits.", n);
    }
    return 0;
}

/* ---- the table ----------------------------------------------------------------------------- */

typedef struct outbuf {
    char *buf;
    size_t size, len;
} outbuf;

static void VKL_PRINTF(2, 3) put(outbuf *o, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *dst = o->len < o->size ? o->buf + o->len : NULL;
    int w = vsnprintf(dst, dst ? o->size - o->len : 0, fmt, ap);
    va_end(ap);
    if (w > 0) o->len += (size_t)w;
}

static const char *mib(uint64_t b, char *buf, size_t n) {
    snprintf(buf, n, "%.1f", (double)b / (double)MiB);
    return buf;
}

size_t vkl_offload_describe(const vkl_offload_plan *p, char *buf, size_t size) {
    outbuf o = {buf, size, 0};
    if (size) buf[0] = 0;
    const vkl_offload_model *m = &p->model;
    char mode[64];
    if (p->auto_fit) snprintf(mode, sizeof mode, "auto-fit, -ngl %d", p->n_gpu_layers);
    else if (p->ngl_asked > m->n_layer && p->n_gpu_layers == m->n_layer + 1)
        snprintf(mode, sizeof mode, "-ngl %d: all %d layers and the head", p->ngl_asked, m->n_layer);
    else if (p->ngl_asked != p->n_gpu_layers)
        snprintf(mode, sizeof mode, "-ngl %d, reduced to %d", p->ngl_asked, p->n_gpu_layers);
    else snprintf(mode, sizeof mode, "-ngl %d", p->n_gpu_layers);
    put(&o, "offload plan (%s%s): %d layers, context %d, batch %d\n", mode, p->kv_on_cpu ? ", KV on the CPU" : "",
        m->n_layer, m->n_ctx, m->n_batch);
    put(&o, "%-46s %-13s %9s %9s %9s %8s %10s %9s %9s %7s\n", "device", "layers", "weights", "KV", "scratch",
        "staging", "predicted", "budget", "headroom", "ms/tok");
    for (int d = 0; d < p->n_dev; d++) {
        const vkl_offload_device *dv = &p->dev[d];
        const vkl_offload_use *u = &p->use[d];
        char name[56], layers[32], a[6][24];
        if (d == 0) snprintf(name, sizeof name, "cpu   %.40s", dv->name);
        else snprintf(name, sizeof name, "gpu%d  %.40s", d - 1, dv->name);
        int n = 0;
        if (u->n_layers) n = snprintf(layers, sizeof layers, "%d-%d", u->first_layer, u->first_layer + u->n_layers - 1);
        else n = snprintf(layers, sizeof layers, "-");
        if (d == 0) snprintf(layers + n, sizeof layers - (size_t)n, "+embd%s", u->head ? "+head" : "");
        else if (u->head) snprintf(layers + n, sizeof layers - (size_t)n, "+head");
        if (d == 0) {
            put(&o, "%-46s %-13s %9s %9s %9s %8s %10s %9s %9s %7.2f\n", name, layers, mib(u->weights, a[0], 24),
                mib(u->kv, a[1], 24), mib(u->scratch, a[2], 24), "-", "host", "-", "-", u->read_s * 1e3);
            continue;
        }
        char head[24] = "-";
        if (dv->budget) {
            int64_t room = (int64_t)dv->budget - (int64_t)u->predicted;
            snprintf(head, sizeof head, "%.1f", (double)room / (double)MiB);
        }
        put(&o, "%-46s %-13s %9s %9s %9s %8s %10s %9s %9s %7.2f\n", name, layers, mib(u->weights, a[0], 24),
            mib(u->kv, a[1], 24), mib(u->scratch, a[2], 24), mib(u->staging, a[3], 24),
            mib(u->predicted, a[4], 24), dv->budget ? mib(dv->budget, a[5], 24) : "?", head,
            u->read_s * 1e3);
    }
    put(&o, "(sizes in MiB; predicted = device memory after load and context creation, in %s blocks; budget%s)\n",
        p->n_dev > 1 ? "allocator" : "no GPU", p->n_dev > 1 && p->dev[1].user_budget ? " from --vram-budget" : " = free memory");
    for (int d = 1; d < p->n_dev; d++)
        put(&o, "gpu%d: %s, predicted %.1f GB/s read, %s blocks\n", d - 1, vkl_device_kind_name(p->dev[d].kind),
            p->dev[d].bw / 1e9, vkl_fmt_bytes(p->dev[d].block_size, (char[32]){0}, 32));
    put(&o, "predicted: %.2f ms/token (%.1f tok/s), %d device change%s per token; CPU only: %.2f ms/token (%.1f tok/s)\n",
        p->token_s * 1e3, 1.0 / p->token_s, p->n_boundaries, p->n_boundaries == 1 ? "" : "s", p->cpu_only_s * 1e3,
        1.0 / p->cpu_only_s);
    if (p->note[0]) put(&o, "note: %s\n", p->note);
    return o.len;
}
