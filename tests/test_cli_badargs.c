/* Bad input to every vkllm command: unknown flags, missing values, non-numeric, negative or huge
 * numbers, unknown device index, missing file, a directory, an empty file, an empty prompt, a prompt
 * longer than the context. Each must give exactly one line on stderr and a non-zero exit (2 for
 * usage errors, 1 for errors found while running), never a crash. */
#include <stdarg.h>
#include <sys/wait.h>

#include "test.h"

static char tmp_dir[256], out_path[512], err_path[512], empty_file[512], long_prompt[512];
static const char *model; /* the in-repository mini-q8_0 */

/* Runs `vkllm ARGS` (a shell fragment) with stdin from /dev/null; stdout/stderr into files. */
static int run_cli(const char *args) { return test_run_cli(NULL, args, NULL, out_path, err_path); }

static const char *file_text(const char *path) {
    static char buf[1 << 16];
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    return buf;
}

/* printf-style args; expects exit `code` and one stderr line containing `needle` (if not NULL). */
static void expect(int code, const char *needle, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void expect(int code, const char *needle, const char *fmt, ...) {
    char args[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    int rc = run_cli(args);
    const char *err = file_text(err_path);
    CHECK(rc == code, "vkllm %s: exit %d, expected %d (stderr: %s)", args, rc, code, err);
    CHECK(test_count_lines(err) == 1, "vkllm %s: expected one line on stderr, got: %s", args, err);
    if (needle) CHECK(strstr(err, needle) != NULL, "vkllm %s: message lacks '%s': %s", args, needle, err);
}

/* Usage errors that need no model, for the numeric options run and chat share. */
static void numeric_options(const char *cmd) {
    static const char *bad[] = {
        "-n abc", "-n -5", "-n 99999999999999999999", "-c -1", "-c 99999999", "-c 12x", "-t 0", "-t 100000",
        "-ngl -1", "-ngl 99999999999", "--device abc", "--temp inf", "--top-p 1.5", "--seed -2",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect(2, "bad value", "%s -m x.gguf %s %s", cmd, strcmp(cmd, "run") ? "" : "-p hi", bad[i]);
}

/* -m naming a missing file, a folder and an empty file: exit 1, one line naming the problem. */
static void bad_model_files(const char *cmd, const char *rest) {
    expect(1, "nonexistent", "%s -m /nonexistent/m.gguf %s", cmd, rest);
    expect(1, tmp_dir, "%s -m '%s' %s", cmd, tmp_dir, rest);
    expect(1, "empty", "%s -m '%s' %s", cmd, empty_file, rest);
}

static void cmd_run_cases(void) {
    expect(2, "unknown option", "run -m x.gguf --no-such-flag -p hi");
    expect(2, "unknown", "run -m x.gguf -p hi --no-such-flag"); /* last: "needs a value (or is unknown)" */
    expect(2, "needs a value", "run -m x.gguf -p hi -n");
    expect(2, "needs a value", "run -m x.gguf -p hi --device");
    numeric_options("run");
    expect(2, "bad value", "run -m x.gguf -p hi -b 0");
    expect(2, "bad value", "run -m x.gguf -p hi --min-p -0.5");
    bad_model_files("run", "-p hi");
    if (!model) return;
    expect(1, "no Vulkan device 7", "run -m '%s' -p hi -ngl 1 --device 7", model);
    expect(1, "no Vulkan device 7", "run -m '%s' -p hi --device 7", model);
    /* -q: only the error (no plan line) */
    expect(1, "longer than the context", "run -q -m '%s' -f '%s' -c 16", model, long_prompt);
    expect(1, "cannot read", "run -m '%s' -f '%s'", model, tmp_dir);
    expect(1, "cannot read", "run -m '%s' -f /nonexistent/prompt.txt", model);
    expect(1, "prompt", "run -m '%s' --tokens-in '%s'", model, empty_file);
    /* A huge context is accepted by the parser but must fail cleanly when it cannot be allocated
     * or exceeds what the model supports. */
    int rc = run_cli("run -m /nonexistent/m.gguf -p hi -c 4194304");
    CHECK(rc == 1, "-c 4194304 with a missing model: exit %d", rc);

    /* An empty prompt (or an empty prompt file) runs from BOS alone, like llama.cpp. */
    char args[2048];
    snprintf(args, sizeof args, "run -m '%s' -p '' -n 4 --temp 0 --ignore-eos", model);
    rc = run_cli(args);
    CHECK(rc == 0, "empty prompt: exit %d: %s", rc, file_text(err_path));
    CHECK(strstr(file_text(err_path), "prompt: 1 tokens") != NULL, "empty prompt is BOS alone: %s", file_text(err_path));
    snprintf(args, sizeof args, "run -m '%s' -f '%s' -n 4 --temp 0 --ignore-eos", model, empty_file);
    rc = run_cli(args);
    CHECK(rc == 0, "empty prompt file: exit %d: %s", rc, file_text(err_path));
}

static void cmd_chat_cases(void) {
    expect(2, "unknown option", "chat -m x.gguf --no-such-flag 1");
    expect(2, "needs a value", "chat -m x.gguf -c");
    numeric_options("chat");
    bad_model_files("chat", "");
    if (!model) return;
    expect(1, "device", "chat -m '%s' -ngl 1 --device 7", model);
}

static void cmd_tokenize_cases(void) {
    expect(2, "unknown", "tokenize -m x.gguf -p hi --no-such-flag");
    expect(2, "missing value", "tokenize -m x.gguf -p");
    expect(2, "-m", "tokenize -p hi");
    expect(2, "exactly one", "tokenize -m x.gguf");
    expect(2, "exactly one", "tokenize -m x.gguf -p hi -f y.txt");
    bad_model_files("tokenize", "-p hi");
    if (!model) return;
    expect(1, "nonexistent", "tokenize -m '%s' -f /nonexistent/t.txt", model);
    expect(1, tmp_dir, "tokenize -m '%s' -f '%s'", model, tmp_dir);
    /* The empty text is BOS alone. */
    char args[1024];
    snprintf(args, sizeof args, "tokenize -m '%s' -p ''", model);
    int rc = run_cli(args);
    CHECK(rc == 0 && !strcmp(file_text(out_path), "[1]\n"), "empty text: exit %d, '%s'", rc, file_text(out_path));
}

static void cmd_synth_cases(void) {
    char out[600];
    snprintf(out, sizeof out, "%s/s.gguf", tmp_dir);
    expect(2, "unknown option", "synth -o '%s' --no-such-flag", out);
    expect(2, "needs a value", "synth -o '%s' --n-embd", out);
    expect(2, "missing -o", "synth --preset tiny");
    expect(2, "integer", "synth -o '%s' --n-embd abc", out);
    expect(2, "integer", "synth -o '%s' --n-layer 99999999999999999999", out);
    expect(1, "n-embd", "synth -o '%s' --n-embd -5", out);
    expect(1, "n-layer", "synth -o '%s' --n-layer 0", out);
    expect(1, "n-ctx", "synth -o '%s' --n-ctx 999999999999", out);
    expect(1, "n-vocab", "synth -o '%s' --n-vocab -1", out);
    expect(2, "1..64", "synth -o '%s' -t 0", out);
    expect(2, "1..64", "synth -o '%s' -t 1000", out);
    expect(2, "--seed", "synth -o '%s' --seed -3", out);
    expect(1, "preset", "synth -o '%s' --preset huge", out);
    expect(1, "type", "synth -o '%s' --type q9_9", out);
    expect(1, "nonexistent", "synth -o /nonexistent/dir/m.gguf --n-embd 32 --n-head 2 --n-head-kv 1 --n-ff 32 --n-layer 1");
    expect(1, tmp_dir, "synth -o '%s' --n-embd 32 --n-head 2 --n-head-kv 1 --n-ff 32 --n-layer 1", tmp_dir);
    expect(1, "nonexistent", "synth -o '%s' --vocab /nonexistent/v.gguf", out);
    expect(1, "empty", "synth -o '%s' --vocab '%s'", out, empty_file);
    struct stat st;
    CHECK(stat(out, &st) != 0, "a failed synth left %s behind", out);
}

static void cmd_info_devices_cases(void) {
    expect(2, "unknown option", "info --no-such-flag x.gguf");
    expect(2, "no model", "info");
    expect(2, "only one", "info a.gguf b.gguf");
    expect(1, "nonexistent", "info /nonexistent/m.gguf");
    expect(1, tmp_dir, "info '%s'", tmp_dir);
    expect(1, "empty", "info '%s'", empty_file);
    expect(2, "unknown option", "devices --no-such-flag");
    expect(2, "unknown option", "devices 7");
    expect(2, "unknown command", "no-such-command");
}

int main(void) {
    test_make_tmp_dir(tmp_dir, sizeof tmp_dir, "badargs");
    snprintf(out_path, sizeof out_path, "%s/out", tmp_dir);
    snprintf(err_path, sizeof err_path, "%s/err", tmp_dir);
    snprintf(empty_file, sizeof empty_file, "%s/empty.gguf", tmp_dir);
    snprintf(long_prompt, sizeof long_prompt, "%s/long.txt", tmp_dir);
    FILE *f = fopen(empty_file, "wb");
    if (f) fclose(f);
    f = fopen(long_prompt, "w");
    for (int i = 0; f && i < 40; i++) fprintf(f, "the quick brown fox jumps over the lazy dog ");
    if (f) fclose(f);

    static char model_path[512];
    test_fixture_model(model_path, sizeof model_path, "mini-q8_0");
    model = model_path;
    cmd_run_cases();
    cmd_chat_cases();
    cmd_tokenize_cases();
    cmd_synth_cases();
    cmd_info_devices_cases();
    test_remove_tmp_dir(tmp_dir);
    return test_finish();
}
