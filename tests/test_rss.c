/* Memory stays flat over a long generation: through the public API, mini-q8_0 generates 300
 * tokens one at a time in a 48-position context (so the cache is shifted about a dozen times:
 * kv_truncate + re-evaluating the kept tokens, as `vkllm run --context-shift` does), and the
 * resident set size after token 50 (after the first shift, so every graph shape exists) and at the
 * end may differ by at most 2 MiB. On the CPU, and with every layer on Vulkan (160 tokens; not in
 * sanitizer builds) when a device is there. */
#include <unistd.h>

#include "test.h"
#include "vkllm.h"

#define N_CTX 48
#define BASELINE_AT 50
#define MAX_GROWTH (2u << 20)

#ifdef VKLLM_SANITIZE
/* ASan's quarantine holds freed memory back (the Vulkan driver frees and allocates large blocks
 * per submit), which would read as growth here; use-after-free checking is the other tests' job. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "quarantine_size_mb=0"; }
#define VK_TOKENS 0 /* lavapipe under ASan is too slow; the Release run covers Vulkan */
#else
#define VK_TOKENS 160
#endif

static size_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
        fclose(f);
    }
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* Keeps BOS and the newer half of the rest, re-evaluating them (returns -1 on error). */
static int shift(vkllm_context *c, int32_t *hist, int *n_hist, vkllm_error *err) {
    int keep = 1, discard = (*n_hist - keep) / 2;
    memmove(hist + keep, hist + keep + discard, sizeof *hist * (size_t)(*n_hist - keep - discard));
    *n_hist -= discard;
    return vkllm_kv_truncate(c, 0, err) || vkllm_eval(c, hist, *n_hist, false, err) ? -1 : 0;
}

static void run_case(const char *path, int n_gpu_layers, int n_tokens) {
    vkllm_error err = {{0}};
    vkllm_model_params mp = vkllm_model_default_params();
    mp.n_threads = 2;
    mp.n_gpu_layers = n_gpu_layers;
    vkllm_model *m = vkllm_model_load(path, &mp, &err);
    CHECK(m != NULL, "load (-ngl %d): %s", n_gpu_layers, err.msg);
    if (!m) return;
    vkllm_context_params cp = vkllm_context_default_params();
    cp.n_ctx = N_CTX;
    vkllm_context *c = vkllm_context_create(m, &cp, &err);
    vkllm_sampler_params sp = vkllm_sampler_default_params();
    sp.temperature = 0;
    vkllm_sampler *s = c ? vkllm_sampler_create(m, &sp, &err) : NULL;
    CHECK(s != NULL, "context/sampler: %s", err.msg);
    int32_t hist[N_CTX];
    static const char prompt[] = "Once upon a time";
    int n_hist = s ? vkllm_tokenize(m, prompt, sizeof prompt - 1, true, hist, N_CTX, &err) : -1;
    CHECK(n_hist > 0, "tokenize: %s", err.msg);
    int ok = n_hist > 0 && vkllm_eval(c, hist, n_hist, false, &err) == 0;
    size_t base = 0, end = 0;
    int shifts = 0, done = 0;
    for (; ok && done < n_tokens; done++) {
        int32_t next = vkllm_sample(s, vkllm_logits(c, -1));
        if (vkllm_n_past(c) == N_CTX) {
            ok = shift(c, hist, &n_hist, &err) == 0;
            shifts++;
        }
        hist[n_hist++] = next;
        ok = ok && vkllm_eval(c, &next, 1, false, &err) == 0;
        if (done + 1 == BASELINE_AT) base = rss_bytes();
    }
    end = rss_bytes();
    CHECK(ok, "generation (-ngl %d) stopped at token %d: %s", n_gpu_layers, done, err.msg);
    CHECK(shifts >= 2 && base > 0, "%d shifts, baseline %zu", shifts, base);
    long growth = (long)end - (long)base;
    printf("-ngl %d: %d tokens, %d context shifts, RSS %.1f MiB after token %d, %.1f MiB at the end (%+ld KiB)\n",
           n_gpu_layers, done, shifts, (double)base / (1 << 20), BASELINE_AT, (double)end / (1 << 20), growth / 1024);
    CHECK(growth <= (long)MAX_GROWTH, "-ngl %d: RSS grew by %ld KiB from token %d to %d", n_gpu_layers, growth / 1024,
          BASELINE_AT, done);
    vkllm_sampler_free(s);
    vkllm_context_free(c);
    vkllm_model_free(m);
}

int main(void) {
    char path[512];
    test_fixture_model(path, sizeof path, "mini-q8_0");
    run_case(path, 0, 300);
    vkllm_error err = {{0}};
    if (VK_TOKENS > 0 && vkllm_gpu_count(&err) > 0) run_case(path, 99, VK_TOKENS); /* lavapipe is slow: fewer tokens */
    else printf("Vulkan case skipped (%s)\n", VK_TOKENS > 0 ? err.msg : "sanitizer build");
    return test_finish();
}
