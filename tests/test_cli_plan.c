/* `vkllm plan`: the table for the fixture models (CPU only, -ngl, auto-fit, budgets, a three-way
 * split over VKLLM_SPLIT_SELF=2 logical devices), and exit codes with one-line messages on bad
 * values (usage: 2, unreadable model: 1). Also `vkllm run` printing the plan before loading. */
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

static char out_path[512], err_path[512], tmp_dir[256];

static int run_cli(const char *env, const char *cmd, const char *args) {
    char line[4096];
    snprintf(line, sizeof line, "%s %s", cmd, args);
    return test_run_cli(env, line, NULL, out_path, err_path);
}

static char *slurp(const char *path) { return test_slurp(path); }

static void expect_fail(const char *args, int code, const char *needle) {
    int rc = run_cli(NULL, "plan", args);
    char *err = slurp(err_path);
    CHECK(rc == code, "vkllm plan %s: exit %d, expected %d (stderr: %s)", args, rc, code, err);
    CHECK(test_count_lines(err) == 1, "vkllm plan %s: expected a one-line message, got: %s", args, err);
    if (needle) CHECK(strstr(err, needle) != NULL, "vkllm plan %s: message lacks '%s': %s", args, needle, err);
    free(err);
}

/* Runs plan and returns stdout (caller frees); checks exit 0. */
static char *plan_ok(const char *env, const char *args) {
    int rc = run_cli(env, "plan", args);
    char *out = slurp(out_path), *err = slurp(err_path);
    CHECK(rc == 0, "vkllm plan %s: exit %d: %s", args, rc, err);
    free(err);
    return out;
}

static bool have_vulkan(void) {
    int rc = run_cli(NULL, "devices", "--json");
    char *out = slurp(out_path);
    bool yes = rc == 0 && strstr(out, "\"backend\": \"vulkan\"");
    free(out);
    return yes;
}

int main(void) {
    test_make_tmp_dir(tmp_dir, sizeof tmp_dir, "cli_plan");
    snprintf(out_path, sizeof out_path, "%s/out", tmp_dir);
    snprintf(err_path, sizeof err_path, "%s/err", tmp_dir);

    expect_fail("", 2, "-m");
    expect_fail("-m x.gguf --vram-budget 6X", 2, "--vram-budget");
    expect_fail("-m x.gguf --vram-budget -6G", 2, "--vram-budget");
    expect_fail("-m x.gguf --vram-budget 6G,,4G", 2, "--vram-budget");
    expect_fail("-m x.gguf --tensor-split 3,0", 2, "--tensor-split");
    expect_fail("-m x.gguf --tensor-split 0,0", 2, "--tensor-split");
    expect_fail("-m x.gguf --tensor-split 1,-1", 2, "--tensor-split");
    expect_fail("-m x.gguf -ngl abc", 2, "-ngl");
    expect_fail("-m x.gguf -ngl -1", 2, "-ngl");
    expect_fail("-m x.gguf -ngl", 2, "needs a value");
    expect_fail("-m x.gguf -ngl 2 --auto-fit", 2, "either");
    expect_fail("-m x.gguf --tensor-split 1,1 --vram-budget 1G,2G,3G", 2, "different numbers");
    expect_fail("-m x.gguf --device 0,x", 2, "--device");
    expect_fail("-m x.gguf -c 0", 2, "bad value");
    expect_fail("-m x.gguf --bogus", 2, NULL);
    expect_fail("-m /nonexistent/model.gguf", 1, "nonexistent");
    CHECK(run_cli(NULL, "plan", "--help") == 0, "--help exits 0");
    char *help = slurp(out_path);
    CHECK(strstr(help, "--vram-budget") && strstr(help, "--tensor-split") && strstr(help, "--kv-on-cpu"), "help: %s", help);
    free(help);

    {
        const char *fx = test_repo_fixtures();
        char args[2048];
        snprintf(args, sizeof args, "-m '%s/models/mini-q4_0.gguf' -ngl 0", fx);
        char *out = plan_ok(NULL, args);
        CHECK(strstr(out, "offload plan (-ngl 0)") && strstr(out, "0-1+embd+head") && strstr(out, "ms/token"),
              "CPU-only plan:\n%s", out);
        free(out);
        /* A directory and an empty file are file errors (exit 1). */
        snprintf(args, sizeof args, "-m '%s'", fx);
        expect_fail(args, 1, NULL);

        if (have_vulkan()) {
            snprintf(args, sizeof args, "-m '%s/models/mini-q4_0.gguf' -ngl 1 -c 512", fx);
            out = plan_ok(NULL, args);
            CHECK(strstr(out, "-ngl 1") && strstr(out, "context 512") && strstr(out, "gpu0") && strstr(out, "1-1 "),
                  "-ngl 1 plan:\n%s", out);
            free(out);
            snprintf(args, sizeof args, "-m '%s/models/mini-q4_0.gguf' -ngl 99 --vram-budget 6G", fx);
            out = plan_ok(NULL, args);
            CHECK(strstr(out, "offload plan (-ngl 99: all 2 layers and the head)") && strstr(out, "0-1+head") && strstr(out, "6144.0") && strstr(out, "--vram-budget"), "-ngl 99 plan:\n%s",
                  out);
            free(out);
            /* Auto-fit (the default): lavapipe is predicted slower than the CPU; a fast GPU under a
             * budget too small for one layer: the CPU with a note. */
            snprintf(args, sizeof args, "-m '%s/models/mini-q4_0.gguf'", fx);
            out = plan_ok(NULL, args);
            CHECK(strstr(out, "auto-fit"), "auto-fit plan:\n%s", out);
            free(out);
            snprintf(args, sizeof args, "-m '%s/models/mini-q4_0.gguf' --auto-fit --vram-budget 66M", fx);
            out = plan_ok("VKLLM_GPU_BW_GBPS=400", args);
            CHECK(strstr(out, "too small for even one layer") && strstr(out, "0-1+embd+head"), "too small:\n%s", out);
            free(out);
            /* Three-way: two logical devices on one physical device. */
            snprintf(args, sizeof args, "-m '%s/models/mini-q8_0.gguf' -ngl 2 --tensor-split 1,1 --vram-budget 1G,1G",
                     fx);
            out = plan_ok("VKLLM_SPLIT_SELF=2", args);
            CHECK(strstr(out, "gpu0") && strstr(out, "gpu1") && strstr(out, " 0-0 ") && strstr(out, " 1-1 ") &&
                      strstr(out, "+embd+head") && strstr(out, "[2/2]"),
                  "three-way plan:\n%s", out);
            free(out);
            expect_fail("-m x.gguf -ngl 2 --device 99", 1, "--device 99");
            /* VKLLM_SPLIT_SELF=2: `vkllm devices` lists every physical device twice. */
            int rc_dev = run_cli("VKLLM_SPLIT_SELF=2", "devices", "");
            char *dev_out = slurp(out_path);
            CHECK(rc_dev == 0 && strstr(dev_out, "[1/2]") && strstr(dev_out, "[2/2]") && strstr(dev_out, "VKLLM_SPLIT_SELF"),
                  "devices with VKLLM_SPLIT_SELF=2:\n%s", dev_out);
            free(dev_out);
            /* run prints the plan's summary line to stderr before loading. */
            snprintf(args, sizeof args, "-m '%s/models/mini-q4_0.gguf' -p hi -n 2 -ngl 0 -t 2", fx);
            int rc = run_cli(NULL, "run", args);
            char *err = slurp(err_path);
            CHECK(rc == 0 && strstr(err, "plan (-ngl 0): CPU only") && strstr(err, "tok/s"), "run: exit %d: %s", rc, err);
            free(err);
        } else {
            printf("no Vulkan device: the GPU plan cases are skipped\n");
        }
    }
    test_remove_tmp_dir(tmp_dir);
    return test_finish();
}
