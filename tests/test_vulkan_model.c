/* The whole forward pass on the Vulkan backend against llama.cpp's references (fixtures/ref):
 * every case with all layers and the output head on the GPU (-ngl 99), prompt rows (batches of
 * 512, and of 7 with an f32 KV cache) and generated rows (the one-token decode path); the long
 * case's first 1024 tokens against the CPU (all of it against the reference with env
 * VKLLM_TEST_LONG=1); one partial split (-ngl 2 of 4: CPU layers, GPU layers, CPU head); the CLI's
 * device error; and zero validation messages. The in-repository set (tests/fixtures) always, the larger
 * set where present. Skips (77, with one line) without a Vulkan device unless env CI is set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "fixture_ref.h"
#include "test.h"
#include "vulkan/vk_device.h"
#include "vkllm.h"

typedef struct gpu_case {
    const char *model, *ref;
    int n_gpu_layers, n_batch, max_generated; /* max_generated: rows of generated tokens checked (0: all) */
    vkllm_kv_type kv;
} gpu_case;

/* Feeds the reference prompt in passes of n_batch, then generated tokens one at a time; checks
 * every stored row (or the first max_generated generated rows). */
static void check_case(const char *fx, const gpu_case *gc) {
    char path[1024], label[160];
    snprintf(label, sizeof label, "%s.%s -ngl %d -b %d%s", gc->model, gc->ref, gc->n_gpu_layers, gc->n_batch,
             gc->kv == VKLLM_KV_F32 ? " kv-f32" : "");
    ref_case r;
    if (ref_load_case(fx, gc->model, gc->ref, true, &r, path, sizeof path)) {
        CHECK(0, "%s: reference unreadable", label);
        return;
    }
    vkllm_error err = {{0}};
    vkllm_model_params mp = vkllm_model_default_params();
    mp.n_threads = 2;
    mp.n_gpu_layers = gc->n_gpu_layers;
    mp.kv_type = gc->kv; /* what the offload plan reserves device memory for */
    vkllm_model *m = vkllm_model_load(path, &mp, &err);
    CHECK(m != NULL, "%s: %s", label, err.msg);
    vkllm_context_params cp = vkllm_context_default_params();
    cp.n_ctx = 2048;
    cp.n_batch = gc->n_batch;
    cp.kv_type = gc->kv;
    vkllm_context *c = m ? vkllm_context_create(m, &cp, &err) : NULL;
    CHECK(!m || c != NULL, "%s: %s", label, err.msg);
    if (!c) goto done;
    CHECK(vkllm_model_gpu_name(m) != NULL && vkllm_model_n_gpu_layers(m) == VKL_TEST_MIN(gc->n_gpu_layers,
                                                                                          vkllm_model_n_layer(m) + 1),
          "%s: %d GPU layers", label, vkllm_model_n_gpu_layers(m));
    double t0 = vkl_test_time(), worst_p = 0, worst_g = 0;
    int n_vocab = r.n_vocab, row = 0, bad_nmse = 0, bad_argmax = 0;
    for (int i = 0; i < r.n_prompt; i += gc->n_batch) {
        int n = VKL_TEST_MIN(gc->n_batch, r.n_prompt - i);
        if (vkllm_eval(c, r.prompt + i, n, i + n > r.logits_from, &err)) {
            CHECK(0, "%s: prompt tokens %d..%d: %s", label, i, i + n, err.msg);
            goto done;
        }
        for (int j = 0; j < n; j++) {
            if (i + j < r.logits_from) continue;
            bool ok;
            double e = ref_compare_row(vkllm_logits(c, j), r.logits + (size_t)row * n_vocab, n_vocab, &ok);
            worst_p = e > worst_p || e != e ? e : worst_p;
            bad_argmax += !ok, bad_nmse += !(e <= REF_NMSE_TOL);
            row++;
        }
    }
    int n_gen = r.n_generated - 1;
    if (gc->max_generated > 0) n_gen = VKL_TEST_MIN(n_gen, gc->max_generated);
    for (int g = 0; g < n_gen; g++, row++) {
        if (vkllm_eval(c, &r.generated[g], 1, false, &err)) {
            CHECK(0, "%s: generated token %d: %s", label, g, err.msg);
            goto done;
        }
        bool ok;
        double e = ref_compare_row(vkllm_logits(c, -1), r.logits + (size_t)row * n_vocab, n_vocab, &ok);
        worst_g = e > worst_g || e != e ? e : worst_g;
        bad_argmax += !ok, bad_nmse += !(e <= REF_NMSE_TOL);
    }
    CHECK(row == r.n_prompt - r.logits_from + n_gen, "%s: compared %d rows", label, row);
    CHECK(bad_nmse == 0, "%s: %d rows above NMSE %g (worst prompt %.3g, generated %.3g)", label, bad_nmse,
          REF_NMSE_TOL, worst_p, worst_g);
    CHECK(bad_argmax == 0, "%s: %d rows with a different argmax despite a margin >= %.1f", label, bad_argmax,
          REF_MARGIN);
    printf("%-40s worst NMSE: prompt %.3g, generated %.3g (%d generated rows, %.2f s)\n", label, worst_p, worst_g,
           n_gen, vkl_test_time() - t0);
done:
    vkllm_context_free(c);
    vkllm_model_free(m);
    ref_free(&r);
}

/* The long case trimmed: its first 1024 prompt tokens (two passes of 512, so the second attends to
 * the cache the first filled), then generated tokens one at a time, on the GPU against the CPU
 * (which test_model_fixtures holds to the reference); same tolerance. The full reference takes
 * about a minute on lavapipe: env VKLLM_TEST_LONG=1 checks it instead. */
static void check_long_vs_cpu(const char *fx) {
    char path[1024];
    ref_case r;
    if (ref_load_case(fx, "tiny-q8_0", "long", false, &r, path, sizeof path) || r.n_prompt < 1024 ||
        r.n_generated < 7) {
        CHECK(0, "tiny-q8_0.long: reference unreadable or too short");
        ref_free(&r);
        return;
    }
    vkllm_error err = {{0}};
    vkllm_model *m[2] = {NULL, NULL};
    vkllm_context *c[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        vkllm_model_params mp = vkllm_model_default_params();
        mp.n_threads = 2;
        mp.n_gpu_layers = i ? 99 : 0;
        vkllm_context_params cp = vkllm_context_default_params();
        cp.n_ctx = 2048;
        cp.n_batch = 512;
        m[i] = vkllm_model_load(path, &mp, &err);
        c[i] = m[i] ? vkllm_context_create(m[i], &cp, &err) : NULL;
        CHECK(c[i] != NULL, "tiny-q8_0.long: %s", err.msg);
    }
    double t0 = vkl_test_time(), worst = 0;
    int bad_nmse = 0, bad_argmax = 0, rows = 0;
    for (int step = 0; c[0] && c[1] && step <= 6; step++) {
        const int32_t *toks = step ? &r.generated[step - 1] : r.prompt;
        int n = step ? 1 : 1024;
        if (vkllm_eval(c[0], toks, n, false, &err) || vkllm_eval(c[1], toks, n, false, &err)) {
            CHECK(0, "tiny-q8_0.long step %d: %s", step, err.msg);
            break;
        }
        bool ok;
        double e = ref_compare_row(vkllm_logits(c[1], -1), vkllm_logits(c[0], -1), r.n_vocab, &ok);
        worst = e > worst || e != e ? e : worst;
        bad_argmax += !ok, bad_nmse += !(e <= REF_NMSE_TOL);
        rows++;
    }
    CHECK(rows == 7 && bad_nmse == 0 && bad_argmax == 0,
          "tiny-q8_0.long[:1024] GPU vs CPU: %d rows, %d above NMSE %g (worst %.3g), %d argmax differences", rows,
          bad_nmse, REF_NMSE_TOL, worst, bad_argmax);
    printf("%-40s worst NMSE vs the CPU %.3g (1 prompt row, 6 generated rows, %.2f s)\n",
           "tiny-q8_0.long[:1024] -ngl 99 -b 512", worst, vkl_test_time() - t0);
    for (int i = 0; i < 2; i++) {
        vkllm_context_free(c[i]);
        vkllm_model_free(m[i]);
    }
    ref_free(&r);
}

/* The CLI: --device of a missing device is a one-line error (exit 1). */
static void check_cli_device_error(void) {
    char model[1024];
    test_fixture_model(model, sizeof model, "mini-q4_0");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' run -m '%s' -p hi -n 1 -ngl 99 --device 99 2>&1 >/dev/null", VKLLM_CLI, model);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL, "popen");
    if (!p) return;
    char out[4096] = "";
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int st = pclose(p);
    int lines = 0;
    for (size_t i = 0; i < n; i++) lines += out[i] == '\n';
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1 && lines == 1 && strstr(out, "--device 99"),
          "--device 99: status %d, output '%s'", st, out);
}

int main(void) {
    vkllm_error err = {{0}};
    int n_dev = vkllm_gpu_count(&err);
    if (n_dev < 1) {
        printf("skipped: no Vulkan device (%s); install mesa-vulkan-drivers for lavapipe\n",
               n_dev < 0 ? err.msg : "none found");
        if (getenv("CI")) {
            CHECK(0, "CI is set but there is no Vulkan device");
            return test_finish();
        }
        return 77;
    }
    /* The in-repository set: every model with every layer and the head on the GPU, an f32 cache in
     * passes of 7, and one split (layer 0 and the head on the CPU, layer 1 on the GPU). */
    const char *repo = test_repo_fixtures(), *fx = test_fixtures_dir();
    static const gpu_case mini[] = {
        {"mini-q8_0", "short", 99, 512, 0, VKLLM_KV_F16},  {"mini-q4_k_m", "short", 1, 512, 0, VKLLM_KV_F16},
        {"mini-q4_0", "short", 99, 512, 0, VKLLM_KV_F16},  {"mini-q4_k_m", "short", 99, 512, 0, VKLLM_KV_F16},
        {"mini-q8_0", "short", 99, 7, 0, VKLLM_KV_F32},
    };
    /* With the larger set, which covers these paths on bigger models, the in-repository set runs
     * its first two cases only (keeps the sanitizer and device-mode runs inside CI's time). */
    size_t n_mini = fx ? 2 : sizeof mini / sizeof mini[0];
    for (size_t i = 0; i < n_mini; i++) check_case(repo, &mini[i]);
    if (fx) {
        static const gpu_case full[] = {
            {"tiny-q8_0", "short", 99, 512, 0, VKLLM_KV_F16},  {"tiny-q4_0", "short", 99, 512, 0, VKLLM_KV_F16},
            {"tiny-q4_k_m", "short", 99, 512, 0, VKLLM_KV_F16}, {"tiny-f16", "short", 99, 512, 0, VKLLM_KV_F16},
            {"tiny-q8_0", "short", 99, 7, 0, VKLLM_KV_F32},     {"tiny-q8_0", "short", 2, 512, 0, VKLLM_KV_F16},
        };
        for (size_t i = 0; i < sizeof full / sizeof full[0]; i++) check_case(fx, &full[i]);
        /* 1869 prompt tokens: three full batches of 512 and a rest, then generated rows. */
        static const gpu_case long_case = {"tiny-q8_0", "long", 99, 512, 8, VKLLM_KV_F16};
        if (getenv("VKLLM_TEST_LONG")) check_case(fx, &long_case);
        else check_long_vs_cpu(fx);
    }
    check_cli_device_error();
    uint32_t msgs = vkl_vk_validation_message_count();
    CHECK(msgs == 0, "%u validation messages", msgs);
    printf("validation messages: %u (validation %s)\n", msgs, getenv("VKLLM_VALIDATION") ? "on" : "off");
    return test_finish();
}
