/* `vkllm bench`: one-line messages and exit codes on bad input, and quick real runs on the mini
 * Q4_0 fixture (CPU, and all layers on Vulkan when a device exists) checking the shape of the
 * md / csv / json outputs, the progress lines and the SVG plot. */
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

static char out_path[512], err_path[512], svg_path[512], tmp_dir[256];

/* Runs `vkllm bench ARGS` (a shell fragment); stdout and stderr go to files. */
static int run_bench(const char *args) {
    char line[4096];
    snprintf(line, sizeof line, "bench %s", args);
    return test_run_cli(NULL, line, NULL, out_path, err_path);
}

static void expect_fail(const char *args, int code, const char *needle) {
    int rc = run_bench(args);
    char *err = test_read_file(err_path, NULL);
    CHECK(rc == code, "bench %s: exit %d, expected %d (stderr: %s)", args, rc, code, err ? err : "");
    CHECK(err && test_count_lines(err) == 1, "bench %s: expected a one-line message, got: %s", args, err ? err : "");
    if (needle) CHECK(err && strstr(err, needle), "bench %s: message lacks '%s': %s", args, needle, err ? err : "");
    free(err);
}

/* Lines of s that start with prefix. */
static int count_prefixed(const char *s, const char *prefix) {
    int n = 0;
    for (const char *line = s; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        n += !strncmp(line, prefix, strlen(prefix));
    return n;
}

static int count_substr(const char *s, const char *sub) {
    int n = 0;
    for (const char *p = strstr(s, sub); p; p = strstr(p + 1, sub)) n++;
    return n;
}

/* JSON shape: an array of objects, brackets balanced outside strings. */
static bool json_shape_ok(const char *s) {
    int depth = 0;
    bool in_str = false;
    const char *first = s + strspn(s, " \n");
    if (*first != '[') return false;
    for (const char *p = s; *p; p++) {
        if (in_str) {
            if (*p == '\\' && p[1]) p++;
            else if (*p == '"') in_str = false;
            continue;
        }
        if (*p == '"') in_str = true;
        else if (*p == '[' || *p == '{') depth++;
        else if (*p == ']' || *p == '}') {
            if (--depth < 0) return false;
        }
    }
    return depth == 0 && !in_str;
}

/* md + plot with the -ngl list `ngl` (n_cfg values), then csv and json on the CPU. */
static void check_run(const char *model, const char *ngl, int n_cfg) {
    char args[1024];
    int rows = 2 * n_cfg;

    snprintf(args, sizeof args, "-m '%s' -p 8 -n 4 -r 1 -ngl %s --bw-size 16 --plot '%s'", model, ngl, svg_path);
    int rc = run_bench(args);
    char *out = test_read_file(out_path, NULL), *err = test_read_file(err_path, NULL);
    CHECK(rc == 0, "bench %s: exit %d (%s)", args, rc, err ? err : "");
    if (out && err) {
        CHECK(!strncmp(out, "| model | size | params | type | backend | ngl | threads | device | test | t/s |", 78),
              "md header: %s", out);
        CHECK(count_prefixed(out, "| mini-q4_0.gguf |") == rows, "md rows (expected %d): %s", rows, out);
        CHECK(count_substr(out, "| pp8 |") == n_cfg && count_substr(out, "| tg4 |") == n_cfg, "md tests: %s", out);
        CHECK(count_substr(out, " ± ") == rows, "mean ± sd in every row: %s", out);
        CHECK(count_substr(out, "| q4_0 |") == rows, "type column: %s", out);
        CHECK(count_substr(out, "% of ") == n_cfg, "roofline on every tg row: %s", out);
        CHECK(count_prefixed(err, "bench: [") == n_cfg && strstr(err, "left"), "progress lines: %s", err);
        CHECK(strstr(err, "host read bandwidth"), "host bandwidth measured: %s", err);
    }
    free(out);
    free(err);
    size_t svg_len = 0;
    char *svg = test_read_file(svg_path, &svg_len);
    CHECK(svg && !strncmp(svg, "<svg", 4) && strstr(svg, "</svg>") && count_substr(svg, "<rect") >= 1 + rows,
          "plot %s is not an SVG with a bar per row", svg_path);
    free(svg);

    rows = 2; /* pp8 and tg4 on the CPU */
    snprintf(args, sizeof args, "-m '%s' -p 8 -n 4 -r 2 -ngl 0 --no-bw -o csv", model);
    rc = run_bench(args);
    out = test_read_file(out_path, NULL);
    CHECK(rc == 0 && out, "bench %s: exit %d", args, rc);
    if (out) {
        CHECK(!strncmp(out, "model_filename,model_type,", 26) && test_count_lines(out) == 1 + rows, "csv: %s", out);
        /* every line has the header's number of fields (commas inside quotes do not count) */
        int fields = -1, commas = 0;
        bool quoted = false, same = true;
        for (const char *p = out; *p; p++) {
            if (*p == '"') quoted = !quoted;
            else if (*p == ',' && !quoted) commas++;
            else if (*p == '\n') {
                same &= fields < 0 || commas == fields;
                fields = commas;
                commas = 0;
            }
        }
        CHECK(same && fields == 18, "csv field counts: %s", out);
        /* values that do not apply are empty: a pp row's bytes and GB/s, the roofline without --bw */
        CHECK(strstr(out, ",pp8,8,0,2,") && strstr(strstr(out, ",pp8,8,0,2,"), ",,,,\""), "csv empty fields: %s", out);
    }
    free(out);

    snprintf(args, sizeof args, "-m '%s' -p 8 -n 4 -r 1 -ngl 0 --no-bw -o json", model);
    rc = run_bench(args);
    out = test_read_file(out_path, NULL);
    CHECK(rc == 0 && out, "bench %s: exit %d", args, rc);
    if (out) {
        CHECK(json_shape_ok(out), "json shape: %s", out);
        CHECK(count_substr(out, "\"avg_ts\":") == rows && count_substr(out, "\"model_filename\": \"mini-q4_0.gguf\"") == rows,
              "json rows: %s", out);
        /* what does not apply is null, never 0: the pp row's bytes, the roofline and bandwidths (--no-bw) */
        CHECK(count_substr(out, "\"bytes_per_token\": null") == 1 && count_substr(out, "\"roofline_pct\": null") == 2 &&
                  count_substr(out, "\"gpu_bw_gbs\": null") == 2 && !strstr(out, ": 0.0000,"),
              "json nulls: %s", out);
    }
    free(out);
}

int main(void) {
    test_make_tmp_dir(tmp_dir, sizeof tmp_dir, "cli_bench");
    snprintf(out_path, sizeof out_path, "%s/out", tmp_dir);
    snprintf(err_path, sizeof err_path, "%s/err", tmp_dir);
    snprintf(svg_path, sizeof svg_path, "%s/plot.svg", tmp_dir);

    /* Argument errors: exit 2, no model needed. */
    expect_fail("", 2, "-m");
    expect_fail("-m x.gguf --bogus", 2, "unknown option");
    expect_fail("-m x.gguf -r", 2, "needs a value");
    expect_fail("-m x.gguf -r 0", 2, "bad value");
    expect_fail("-m x.gguf -p -1", 2, "bad value");
    expect_fail("-m x.gguf -n -4", 2, "bad value");
    expect_fail("-m x.gguf -p 0 -n 0", 2, "both 0");
    expect_fail("-m x.gguf -t 0", 2, "bad value");
    expect_fail("-m x.gguf -t 1,,2", 2, "bad value");
    expect_fail("-m x.gguf -ngl 0,", 2, "bad value");
    expect_fail("-m x.gguf -o xml", 2, "md, csv or json");
    expect_fail("-m x.gguf -ngl 1 --sweep-ngl", 2, "not both");
    expect_fail("-m x.gguf --vram-budget lots", 2, "bad value");
    /* A model that does not exist: exit 1. */
    expect_fail("-m /nonexistent/model.gguf", 1, "nonexistent");
    CHECK(run_bench("--help") == 0, "--help exits 0");

    {
        char model[512], args[1024];
        test_fixture_model(model, sizeof model, "mini-q4_0");
        /* mini has 2 layers: 0..3 are valid (3 = everything), 99 means everything too. */
        snprintf(args, sizeof args, "-m '%s' -ngl 0,7", model);
        expect_fail(args, 2, "beyond");
        char probe[1024];
        snprintf(probe, sizeof probe, "'%s' devices 2>/dev/null | grep -q '^vulkan: [1-9]'", VKLLM_CLI);
        if (system(probe) == 0) {
            check_run(model, "0,99", 2);
        } else {
            printf("no Vulkan device: CPU runs only\n");
            check_run(model, "0", 1);
        }
    }
    test_remove_tmp_dir(tmp_dir);
    return test_finish();
}
