/* `vkllm run` end to end: --tokens-in + --logits-out against a fixture reference, --tokens-out,
 * greedy text, the context limit, and exit codes / one-line messages on bad arguments. */
#include <sys/wait.h>
#include <unistd.h>

#include "fixture_ref.h"
#include "test.h"

static char out_path[512], err_path[512], tmp_dir[256];

/* Runs the CLI with args (a shell fragment); returns its exit code, stdout/stderr in files. */
static int run_cli(const char *args) {
    char line[4096];
    snprintf(line, sizeof line, "run %s", args);
    return test_run_cli(NULL, line, NULL, out_path, err_path);
}

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}


static void expect_fail(const char *args, int code, const char *needle) {
    int rc = run_cli(args);
    const char *err = read_all(err_path);
    CHECK(rc == code, "vkllm run %s: exit %d, expected %d (stderr: %s)", args, rc, code, err ? err : "");
    CHECK(err && test_count_lines(err) == 1, "vkllm run %s: expected a one-line message, got: %s", args, err ? err : "");
    if (needle) CHECK(err && strstr(err, needle), "vkllm run %s: message lacks '%s': %s", args, needle, err ? err : "");
}

int main(void) {
    test_make_tmp_dir(tmp_dir, sizeof tmp_dir, "cli_run");
    snprintf(out_path, sizeof out_path, "%s/out", tmp_dir);
    snprintf(err_path, sizeof err_path, "%s/err", tmp_dir);

    /* Argument errors need no model. */
    expect_fail("", 2, "-m");
    expect_fail("-m x.gguf -p hi --bogus 3", 2, "unknown option");
    expect_fail("-m x.gguf -p", 2, "needs a value");
    expect_fail("-m x.gguf -p hi -n abc", 2, "bad value");
    expect_fail("-m x.gguf -p hi -n -5", 2, "bad value");
    expect_fail("-m x.gguf -p hi -n 99999999999999999999", 2, "bad value");
    expect_fail("-m x.gguf -p hi -c -1", 2, "for -c (an integer in 0..4194304)");
    expect_fail("-m x.gguf -p hi -c 1000000000", 2, "bad value");
    expect_fail("-m x.gguf -p hi -t 0", 2, "bad value");
    expect_fail("-m x.gguf -p hi -t -1", 2, "bad value");
    expect_fail("-m x.gguf -p hi -t 100000", 2, "bad value");
    expect_fail("-m x.gguf -p hi --temp nan", 2, "bad value");
    expect_fail("-m x.gguf -p hi --kv-type q4", 2, "bad value");
    expect_fail("-m x.gguf", 2, "one of");
    expect_fail("-m x.gguf -p a -f b", 2, "one of");
    expect_fail("-m /nonexistent/model.gguf -p hi", 1, "nonexistent");
    CHECK(run_cli("--help") == 0, "--help exits 0");

    {
        const char *fx = test_repo_fixtures();
        char model[512], ref_tokens[512], ref_logits[512], logits_out[512], tokens_out[512], args[4096];
        snprintf(model, sizeof model, "%s/models/mini-q8_0.gguf", fx);
        snprintf(ref_tokens, sizeof ref_tokens, "%s/ref/mini-q8_0.short.tokens.txt", fx);
        snprintf(ref_logits, sizeof ref_logits, "%s/ref/mini-q8_0.short.logits.f32", fx);
        snprintf(logits_out, sizeof logits_out, "%s/logits.f32", tmp_dir);
        snprintf(tokens_out, sizeof tokens_out, "%s/tokens.txt", tmp_dir);

        expect_fail("-m /nonexistent/model.gguf -f /nonexistent/prompt.txt", 1, "prompt.txt");
        snprintf(args, sizeof args, "-m '%s' --tokens-in /nonexistent/t.txt", model);
        expect_fail(args, 1, "t.txt");

        /* Replay the reference tokens: every logits row within the tolerance. */
        snprintf(args, sizeof args, "-m '%s' --tokens-in '%s' --logits-out '%s' --tokens-out '%s' -t 2 -b 7", model,
                 ref_tokens, logits_out, tokens_out);
        int rc = run_cli(args);
        CHECK(rc == 0, "replay: exit %d: %s", rc, read_all(err_path));
        ref_case ref, ours;
        CHECK(ref_load(ref_tokens, ref_logits, &ref) == 0, "reference");
        CHECK(ref_load(tokens_out, NULL, &ours) == 0, "--tokens-out is readable as a reference file");
        CHECK(ours.n_prompt == ref.n_prompt && ours.n_generated == ref.n_generated &&
                  !memcmp(ours.generated, ref.generated, sizeof(int32_t) * (size_t)ref.n_generated),
              "--tokens-out reproduces the replayed ids");
        FILE *f = fopen(logits_out, "rb");
        size_t n = (size_t)ref.n_rows * (size_t)ref.n_vocab;
        float *got = malloc((n + 1) * sizeof(float));
        size_t read = f ? fread(got, sizeof(float), n + 1, f) : 0;
        if (f) fclose(f);
        CHECK(read == n, "--logits-out has %zu floats, expected %zu", read, n);
        double worst = 0;
        int bad = 0;
        for (int r = 0; read == n && r < ref.n_rows; r++) {
            bool ok;
            double e = ref_compare_row(got + (size_t)r * ref.n_vocab, ref.logits + (size_t)r * ref.n_vocab,
                                       ref.n_vocab, &ok);
            if (!(e <= worst)) worst = e;
            bad += !ok || !(e <= REF_NMSE_TOL);
        }
        CHECK(bad == 0, "%d rows out of tolerance (worst NMSE %.3g)", bad, worst);
        printf("CLI replay mini-q8_0.short: worst NMSE %.3g over %d rows\n", worst, ref.n_rows);
        free(got);
        ref_free(&ours);

        /* Greedy generation reproduces the reference's first tokens (margins >= 1 there). */
        snprintf(args, sizeof args, "-m '%s' -f '%s/prompts/short.txt' -n 3 --temp 0 --tokens-out '%s'", model, fx,
                 tokens_out);
        rc = run_cli(args);
        CHECK(rc == 0, "greedy: exit %d: %s", rc, read_all(err_path));
        CHECK(ref_load(tokens_out, NULL, &ours) == 0 && ours.n_generated == 3 &&
                  !memcmp(ours.generated, ref.generated, 3 * sizeof(int32_t)) &&
                  ours.n_prompt == ref.n_prompt && !memcmp(ours.prompt, ref.prompt, sizeof(int32_t) * (size_t)ref.n_prompt),
              "greedy tokens differ from the reference");
        const char *err_text = read_all(err_path);
        CHECK(err_text && strstr(err_text, "tok/s") && !strstr(err_text, "loading ["),
              "timings on stderr, no progress bar when piped: %s", err_text ? err_text : "");
        ref_free(&ours);
        ref_free(&ref);

        /* The context limit: a clean stop with a message; a prompt longer than the context fails. */
        snprintf(args, sizeof args, "-m '%s' -f '%s/prompts/short.txt' -n 100 -c 40 --temp 0 --ignore-eos", model, fx);
        rc = run_cli(args);
        err_text = read_all(err_path);
        CHECK(rc == 0 && err_text && strstr(err_text, "context full (40 tokens)"), "context full: exit %d: %s", rc,
              err_text ? err_text : "");
        snprintf(args, sizeof args, "-q -m '%s' -f '%s/prompts/short.txt' -c 8", model, fx);
        expect_fail(args, 1, "longer than the context");
    }
    test_remove_tmp_dir(tmp_dir);
    return test_finish();
}
