/* What a generated token costs the Vulkan device, counted by our test layer (tests/vklayer):
 * queue submissions, dispatches, barriers, transfers and fence waits per token on a synthetic
 * model (the tiny preset's shapes, Q4_0), for the splits of one device: every layer and the head
 * on the GPU, the last layers on the GPU (head too, or on the CPU), and the KV caches in host memory.
 * Checked: the device changes the offload plan prints are the ones that happen (each GPU run is
 * one compute submission, entered and left once), a token with everything on the GPU is one
 * compute submission with no fence wait but the logits', at most one more submission (the logits'
 * download, non-UMA), and at most 17 dispatches per layer (plus 4 for embedding and head; the
 * issue's target is 8). ctest runs it through the
 * layer as lavapipe itself (the layer only counting), as a discrete GPU and as a non-UMA one.
 * Env VKLLM_COUNTS_MODEL=FILE.gguf counts another model instead (e.g. `vkllm synth --preset 1b`). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "synth.h"
#include "test.h"
#include "vklayer/vkllm_layer.h"
#include "vkllm.h"

#define N_GEN 6
/* rms_norm, q, k, v, rope q, rope k, K and V stores, attention, Wo, add, rms_norm, gate, up,
 * swiglu, down, add */
#define MAX_DISPATCHES_PER_LAYER 17

static vkllm_layer_get_counts_fn get_counts;

/* Counts the layer library loaded in this process; false when it is not loaded. */
static bool read_counts(vkllm_layer_counts *c) {
    if (!get_counts) {
        void *h = dlopen(VKLLM_LAYER_LIB, RTLD_NOW | RTLD_NOLOAD);
        if (h) get_counts = (vkllm_layer_get_counts_fn)dlsym(h, "vkllm_layer_get_counts");
    }
    if (!get_counts) return false;
    get_counts(c);
    return true;
}

typedef struct per_token {
    double submits, compute_submits, dispatches, barriers, transfers, transfer_kib, fence_waits, record_us;
} per_token;

static per_token diff(const vkllm_layer_counts *a, const vkllm_layer_counts *b, int n) {
    return (per_token){(double)(b->submits - a->submits) / n, (double)(b->compute_submits - a->compute_submits) / n,
                       (double)(b->dispatches - a->dispatches) / n, (double)(b->barriers - a->barriers) / n,
                       (double)(b->transfers - a->transfers) / n,
                       (double)(b->transfer_bytes - a->transfer_bytes) / 1024.0 / n,
                       (double)(b->fence_waits - a->fence_waits) / n, (double)(b->record_ns - a->record_ns) / 1e3 / n};
}

/* "N device changes per token" from the plan table; -1 when absent. */
static int plan_changes(const char *plan) {
    const char *s = plan ? strstr(plan, " device change") : NULL;
    if (!s) return -1;
    while (s > plan && s[-1] >= '0' && s[-1] <= '9') s--;
    return atoi(s);
}

typedef struct split {
    const char *label;
    int ngl;
    bool kv_on_cpu;
} split;

static void check_split(const char *path, const split *sp, bool nonuma) {
    vkllm_error err = {{0}};
    vkllm_model_params mp = vkllm_model_default_params();
    mp.n_threads = 2;
    mp.n_gpu_layers = sp->ngl;
    mp.kv_on_cpu = sp->kv_on_cpu;
    mp.n_ctx = 128;
    mp.n_batch = 16;
    vkllm_model *m = vkllm_model_load(path, &mp, &err);
    CHECK(m != NULL, "%s: %s", sp->label, err.msg);
    vkllm_context_params cp = vkllm_context_default_params();
    cp.n_ctx = 128;
    cp.n_batch = 16;
    vkllm_context *c = m ? vkllm_context_create(m, &cp, &err) : NULL;
    CHECK(!m || c, "%s: %s", sp->label, err.msg);
    if (!c) {
        vkllm_model_free(m);
        return;
    }
    const int32_t prompt[5] = {1, 15, 300, 42, 7};
    vkllm_layer_counts a, b;
    int32_t tok = 9;
    bool ok = vkllm_eval(c, prompt, 5, false, &err) == 0 && read_counts(&a);
    for (int i = 0; i < N_GEN && ok; i++) ok = vkllm_eval(c, &tok, 1, false, &err) == 0;
    CHECK(ok && read_counts(&b), "%s: %s", sp->label, err.msg);
    if (ok) {
        per_token t = diff(&a, &b, N_GEN);
        const int n_layer = vkllm_model_n_layer(m), changes = plan_changes(vkllm_model_plan(m));
        printf("%-22s per token: %4.1f submits (%4.1f compute), %5.1f dispatches (%4.1f per layer), %5.1f barriers, "
               "%4.1f transfers (%5.1f KiB), %4.1f fence waits, %6.1f us recording; plan: %d device changes\n",
               sp->label, t.submits, t.compute_submits, t.dispatches, t.dispatches / n_layer, t.barriers, t.transfers,
               t.transfer_kib, t.fence_waits, t.record_us, changes);
        CHECK(b.map_violations == 0, "%s: %llu maps of device-local-only memory", sp->label,
              (unsigned long long)b.map_violations);
        /* one device: every GPU run is entered and left once, and each is one submission */
        CHECK(changes == (int)(2 * t.compute_submits + 0.5), "%s: the plan says %d device changes, %.1f GPU runs happen",
              sp->label, changes, t.compute_submits);
        /* only the downloads of the GPU runs' results wait (with the KV caches on the CPU, each
         * of q, k, v is one) */
        CHECK(sp->kv_on_cpu || t.fence_waits <= t.compute_submits, "%s: %.1f fence waits for %.1f GPU runs",
              sp->label, t.fence_waits, t.compute_submits);
        if (sp->ngl > n_layer && !sp->kv_on_cpu) {
            /* at most the logits' wait: none when the device has finished before they are read */
            CHECK(t.compute_submits == 1 && t.submits <= (nonuma ? 2 : 1) && t.fence_waits <= 1,
                  "%s: %.1f submits (%.1f compute), %.1f fence waits per token", sp->label, t.submits,
                  t.compute_submits, t.fence_waits);
            CHECK(t.dispatches <= MAX_DISPATCHES_PER_LAYER * n_layer + 4, "%s: %.1f dispatches for %d layers",
                  sp->label, t.dispatches, n_layer);
        }
    }
    vkllm_context_free(c);
    vkllm_model_free(m);
}

int main(void) {
    /* Count through the layer even when ctest did not ask for it (lavapipe as itself). */
    const char *layers = getenv("VK_INSTANCE_LAYERS");
    if (!layers || !strstr(layers, "VK_LAYER_VKLLM_discrete")) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", VKLLM_LAYER_LIB);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        setenv("VK_ADD_LAYER_PATH", dir, 1);
        setenv("VK_INSTANCE_LAYERS", "VK_LAYER_VKLLM_discrete", 1);
        setenv("VKLLM_LAYER_KEEP_TYPE", "1", 1);
    }
    const char *nu = getenv("VKLLM_LAYER_NONUMA");
    const bool nonuma = nu && *nu && strcmp(nu, "0") && !getenv("VKLLM_LAYER_KEEP_TYPE");
    vkllm_error err = {{0}};
    int n_dev = vkllm_gpu_count(&err);
    if (n_dev < 1) {
        printf("no Vulkan device: %s\n", n_dev < 0 ? err.msg : "none found");
        if (getenv("CI")) {
            CHECK(0, "CI is set but there is no Vulkan device");
            return test_finish();
        }
        return 77;
    }
    char dir[512], path[1024];
    test_make_tmp_dir(dir, sizeof dir, "counts");
    snprintf(path, sizeof path, "%s/tiny-q4_0.gguf", dir);
    vkl_synth_config cfg;
    vkl_synth_defaults(&cfg);
    cfg.type = VKL_TYPE_Q4_0;
    cfg.n_vocab = 512;
    cfg.n_threads = 2;
    vkl_error e;
    const char *other = getenv("VKLLM_COUNTS_MODEL");
    if (other && *other) {
        snprintf(path, sizeof path, "%s", other);
        vkllm_model *m = vkllm_model_load(path, NULL, &err); /* CPU only: the layer count */
        CHECK(m != NULL, "%s: %s", path, err.msg);
        cfg.n_layer = m ? vkllm_model_n_layer(m) : 0;
        vkllm_model_free(m);
        if (!cfg.n_layer) return test_finish();
    } else if (vkl_synth_write(path, &cfg, &e)) {
        CHECK(0, "synth: %s", e.msg);
        return test_finish();
    }
    const int L = (int)cfg.n_layer;
    char l1[32], l2[32];
    snprintf(l1, sizeof l1, "-ngl %d (of %d)", L / 2, L);
    snprintf(l2, sizeof l2, "-ngl %d (CPU head)", L);
    const split splits[] = {
        {"-ngl 99", 99, false},
        {l1, L / 2, false},
        {l2, L, false},
        {"-ngl 99 --kv-on-cpu", 99, true},
    };
    for (size_t i = 0; i < VKL_ARRAY_LEN(splits); i++) check_split(path, &splits[i], nonuma);
    vkllm_layer_counts c;
    CHECK(read_counts(&c), "the counting layer %s is not loaded", VKLLM_LAYER_LIB);
    test_remove_tmp_dir(dir);
    return test_finish();
}
