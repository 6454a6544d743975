/* Device out-of-memory during load: `vkllm run -ngl 99` with VKLLM_FAIL_DEVICE_ALLOC=k+ makes the
 * k-th Vulkan memory allocation and every later one fail (backends/vulkan/vk_mem.c: the device is
 * "full" from there on), for k = 1, 2, ... until a run sees no failure (every allocation of model load and context creation has failed once). Each run
 * must either fall back to the CPU with a warning and generate the same greedy tokens as the CPU,
 * or exit 1 with a one-line message; under the sanitizer build any leak or error report fails
 * the run. Skipped without a Vulkan device. */
#include <sys/wait.h>

#include "test.h"
#include "vkllm.h"

static char tmp_dir[256], out_path[512], err_path[512];

static int run_cli(const char *env, const char *args) {
    char line[4096];
    snprintf(line, sizeof line, "run %s", args);
    return test_run_cli(env, line, NULL, out_path, err_path);
}

/* Lines that start with "vkllm run:" (the offload plan table may precede them). */
static int message_lines(const char *s) {
    int n = 0;
    for (const char *p = s; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        n += !strncmp(p, "vkllm run:", 10);
    return n;
}

static char *slurp(const char *path) { return test_slurp(path); }

int main(void) {
    vkllm_error err = {{0}};
    if (vkllm_gpu_count(&err) <= 0) {
        printf("skipped: no Vulkan device (%s)\n", err.msg);
        return TEST_SKIP_CODE;
    }
    test_make_tmp_dir(tmp_dir, sizeof tmp_dir, "oom");
    snprintf(out_path, sizeof out_path, "%s/out", tmp_dir);
    snprintf(err_path, sizeof err_path, "%s/err", tmp_dir);
    char args[2048], model[1024];
    test_fixture_model(model, sizeof model, "mini-q8_0");
    /* A small budget gives small allocator blocks, so load makes several allocations. */
    snprintf(args, sizeof args, "-m '%s' -p 'Once upon a time' -n 4 --temp 0 -ngl 99 -t 2 --vram-budget 64M", model);

    /* The last run (k past the last allocation) is the normal run the fallbacks are compared to. */
    char *fallback_out[33] = {0};
    int k, rc = -1, n_fallback = 0, n_failed = 0;
    for (k = 1; k <= 32; k++) {
        char env[64];
        snprintf(env, sizeof env, "VKLLM_FAIL_DEVICE_ALLOC=%d+", k);
        rc = run_cli(env, args);
        char *out = slurp(out_path), *msg = slurp(err_path);
        bool injected = strstr(msg, "ERROR_OUT_OF_DEVICE_MEMORY") || strstr(msg, "out of device memory") ||
                        strstr(msg, "cannot allocate");
        CHECK(!strstr(msg, "Sanitizer") && !strstr(msg, "runtime error"), "allocation %d: sanitizer report:\n%s", k, msg);
        if (rc == 0) {
            /* Either the injection missed (k is past the last allocation: we are done) or the run
             * fell back to the CPU with a warning. */
            if (injected) {
                CHECK(strstr(msg, "warning") != NULL, "allocation %d: fell back without a warning: %s", k, msg);
                fallback_out[k] = out;
                out = NULL;
                n_fallback++;
            }
        } else {
            CHECK(rc == 1, "allocation %d: exit %d: %s", k, rc, msg);
            /* one line, and it names the failed allocation */
            CHECK(message_lines(msg) == 1 && injected, "allocation %d: expected one line naming the failure: %s", k, msg);
            n_failed++;
        }
        free(out);
        free(msg);
        if (rc == 0 && !injected) break;
    }
    char *want = slurp(out_path);
    for (int i = 1; i <= 32; i++) {
        CHECK(!fallback_out[i] || !strcmp(fallback_out[i], want), "allocation %d: the CPU fallback's text differs:\n%s\n---\n%s",
              i, fallback_out[i], want);
        free(fallback_out[i]);
    }
    CHECK(k > 1 && k <= 32, "the injected failure was never reached or never stopped (k = %d)", k);
    printf("%d device allocations: %d runs fell back to the CPU, %d exited with a message\n", k - 1, n_fallback, n_failed);
    free(want);
    test_remove_tmp_dir(tmp_dir);
    return test_finish();
}
