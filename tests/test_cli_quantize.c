/* vkllm quantize from the command line: a conversion with its few progress lines, and bad input
 * (usage errors, unknown type, missing file, a quantized input without --allow-requantize, a write
 * that fails as on a full disk): one line on stderr, a non-zero exit, and neither OUT nor OUT.tmp. */
#include <stdarg.h>

#include "gguf.h"
#include "synth.h"
#include "test.h"

static char tmp_dir[256], master[512], quantized[512], out[512], out_tmp[600], err_path[512];

static int lines_of(const char *path) {
    char *s = test_slurp(path);
    int n = test_count_lines(s);
    free(s);
    return n;
}

static bool contains(const char *path, const char *needle) {
    char *s = test_slurp(path);
    bool found = strstr(s, needle) != NULL;
    free(s);
    return found;
}

/* Runs `vkllm quantize ARGS` (after the shell fragment env); expects a failure with exit `code`,
 * one stderr line containing needle, and nothing at OUT. */
static void expect_fail(const char *env, int code, const char *needle, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void expect_fail(const char *env, int code, const char *needle, const char *fmt, ...) {
    char args[2048], cmd[2200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "quantize %s", args);
    int rc = test_run_cli(env, cmd, NULL, NULL, err_path);
    char *err = test_slurp(err_path);
    CHECK(rc == code, "vkllm %s: exit %d, expected %d (%s)", cmd, rc, code, err);
    CHECK(test_count_lines(err) == 1, "vkllm %s: expected one stderr line, got: %s", cmd, err);
    CHECK(strstr(err, needle) != NULL, "vkllm %s: message lacks '%s': %s", cmd, needle, err);
    CHECK(access(out, F_OK) != 0 && access(out_tmp, F_OK) != 0, "vkllm %s left a partial output", cmd);
    free(err);
}

static void make_models(void) {
    vkl_synth_config c;
    vkl_synth_defaults(&c);
    c.n_layer = 2;
    c.n_vocab = 512;
    c.type = VKL_TYPE_F16;
    vkl_error err = {{0}};
    CHECK(vkl_synth_write(master, &c, &err) == 0, "synth: %s", err.msg);
    c.type = VKL_TYPE_Q8_0;
    CHECK(vkl_synth_write(quantized, &c, &err) == 0, "synth: %s", err.msg);
}

static void good_run(void) {
    char args[1200];
    snprintf(args, sizeof args, "quantize '%s' '%s' q4_k_m -t 2", master, out);
    int rc = test_run_cli(NULL, args, NULL, NULL, err_path);
    CHECK(rc == 0, "vkllm %s: exit %d", args, rc);
    int n = lines_of(err_path);
    CHECK(n >= 2 && n <= 8, "not a terminal: expected a few progress lines, got %d", n);
    CHECK(contains(err_path, "wrote"), "no final line");
    vkl_error err = {{0}};
    gguf_file *q = gguf_open(out, &err);
    const gguf_tensor *t = q ? gguf_find_tensor(q, "output.weight") : NULL;
    CHECK(t && t->type == VKL_TYPE_Q6_K, "output.weight of the Q4_K_M file is not q6_K");
    gguf_close(q);
    CHECK(access(out_tmp, F_OK) != 0, "OUT.tmp left after success");
    unlink(out);
}

int main(void) {
    test_make_tmp_dir(tmp_dir, sizeof tmp_dir, "cli_quantize");
    test_path(master, sizeof master, tmp_dir, "f16.gguf");
    test_path(quantized, sizeof quantized, tmp_dir, "q8.gguf");
    test_path(out, sizeof out, tmp_dir, "out.gguf");
    snprintf(out_tmp, sizeof out_tmp, "%s.tmp", out);
    test_path(err_path, sizeof err_path, tmp_dir, "err.txt");
    make_models();
    good_run();

    expect_fail(NULL, 2, "needs IN.gguf OUT.gguf TYPE", "'%s' '%s'", master, out);
    expect_fail(NULL, 2, "unknown type 'Q9_K'", "'%s' '%s' Q9_K", master, out);
    expect_fail(NULL, 2, "unknown option", "'%s' '%s' Q4_0 --bogus", master, out);
    expect_fail(NULL, 2, "thread count", "'%s' '%s' Q4_0 -t 0", master, out);
    expect_fail(NULL, 2, "unknown tensor type", "'%s' '%s' Q4_0 --output-tensor-type q4_k_m", master, out);
    expect_fail(NULL, 2, "unexpected argument", "'%s' '%s' Q4_0 extra", master, out);
    expect_fail(NULL, 1, "No such file", "/nonexistent/m.gguf '%s' Q4_0", out);
    expect_fail(NULL, 1, "allow-requantize", "'%s' '%s' Q4_K_M", quantized, out);
    /* a file size limit makes writes fail with EFBIG, as a full disk fails them with ENOSPC */
    expect_fail("trap '' XFSZ; ulimit -f 64 && ", 1, "cannot write", "'%s' '%s' Q8_0", master, out);

    test_remove_tmp_dir(tmp_dir);
    return test_finish();
}
