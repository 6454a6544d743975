/* Generating past the context limit with `vkllm run` (mini-q8_0, greedy, -c 64 -n 200): without
 * --context-shift a clean stop at the limit (exit 0, one message); with it, all 200 tokens, the
 * same tokens as the plain run up to the first shift; --keep; bad --keep values. */
#include <sys/wait.h>

#include "test.h"

/* The ids of a --tokens-out file ("prompt ID..." and "generated ID..." lines). */
typedef struct tokens {
    int n_prompt, n_generated;
    int32_t generated[512];
} tokens;

static int count_ids(const char *s) {
    int n = 0;
    for (const char *p = s; *p && *p != '\n'; p++)
        if (*p >= '0' && *p <= '9' && (p == s || p[-1] == ' ')) n++;
    return n;
}

static int read_tokens(const char *path, tokens *t) {
    char *text = test_read_file(path, NULL);
    if (!text) return -1;
    const char *p = strstr(text, "prompt"), *g = strstr(text, "\ngenerated");
    int rc = p && g ? 0 : -1;
    if (rc == 0) {
        t->n_prompt = count_ids(p + 6);
        char *q = (char *)g + 10;
        while (t->n_generated < 512 && *q == ' ') t->generated[t->n_generated++] = (int32_t)strtol(q, &q, 10);
    }
    free(text);
    return rc;
}

static char tmp_dir[256], out_path[512], err_path[512];

static int run_cli(const char *args) {
    char line[4096];
    snprintf(line, sizeof line, "run %s", args);
    return test_run_cli(NULL, line, NULL, out_path, err_path);
}

static const char *stderr_text(void) {
    static char buf[8192];
    FILE *f = fopen(err_path, "rb");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    return buf;
}

/* Runs greedy generation with extra flags; loads the --tokens-out file into *out. */
static int generate(const char *model, const char *extra, tokens *out) {
    char args[2048], path[512];
    snprintf(path, sizeof path, "%s/tokens.txt", tmp_dir);
    unlink(path);
    snprintf(args, sizeof args, "-m '%s' -p 'Once upon a time' -c 64 -n 200 --temp 0 --ignore-eos -t 2 %s --tokens-out '%s'",
             model, extra, path);
    int rc = run_cli(args);
    memset(out, 0, sizeof *out);
    if (rc == 0 && read_tokens(path, out) != 0) return -1;
    return rc;
}

int main(void) {
    test_make_tmp_dir(tmp_dir, sizeof tmp_dir, "ctx_limit");
    snprintf(out_path, sizeof out_path, "%s/out", tmp_dir);
    snprintf(err_path, sizeof err_path, "%s/err", tmp_dir);
    char model[512];
    test_fixture_model(model, sizeof model, "mini-q8_0");

    /* Without --context-shift: stops when the cache is full. The last sampled token is not fed
     * back, so n_ctx - n_prompt + 1 tokens come out. */
    static tokens plain, shifted, again;
    int rc = generate(model, "", &plain);
    const char *err = stderr_text();
    CHECK(rc == 0, "plain run: exit %d: %s", rc, err);
    CHECK(strstr(err, "context full (64 tokens)") != NULL, "plain run: no 'context full' message: %s", err);
    CHECK(rc != 0 || plain.n_generated == 64 - plain.n_prompt + 1, "plain run: %d tokens generated, prompt %d",
          plain.n_generated, plain.n_prompt);

    /* With --context-shift: every token, several shifts, the same tokens before the first shift. */
    rc = generate(model, "--context-shift", &shifted);
    err = stderr_text();
    CHECK(rc == 0, "shift run: exit %d: %s", rc, err);
    CHECK(strstr(err, "context full") == NULL && strstr(err, "context shifts") != NULL, "shift run: %s", err);
    CHECK(rc != 0 || shifted.n_generated == 200, "shift run: %d tokens generated", shifted.n_generated);
    CHECK(rc != 0 || (plain.n_generated <= shifted.n_generated &&
                      !memcmp(plain.generated, shifted.generated, sizeof(int32_t) * (size_t)plain.n_generated)),
          "the tokens before the first shift differ from the plain run");

    /* --keep changes what is kept but still runs to the end. */
    rc = generate(model, "--context-shift --keep 3", &again);
    CHECK(rc == 0 && again.n_generated == 200, "--keep 3: exit %d, %d tokens: %s", rc, again.n_generated, stderr_text());
    printf("-c 64: %d tokens before the context was full; 200 with --context-shift\n", plain.n_generated);

    /* Bad values: one line, non-zero exit (-q: no plan line before the error). */
    char args[1024];
    snprintf(args, sizeof args, "-q -m '%s' -p 'Once upon a time' -c 6 --keep 10 --context-shift -n 20", model);
    rc = run_cli(args);
    err = stderr_text();
    CHECK(rc == 1 && test_count_lines(err) == 1 && strstr(err, "no room"), "--keep too large: exit %d: %s", rc, err);
    snprintf(args, sizeof args, "-m '%s' -p hi --keep -1 --context-shift", model);
    rc = run_cli(args);
    err = stderr_text();
    CHECK(rc == 2 && test_count_lines(err) == 1 && strstr(err, "bad value"), "--keep -1: exit %d: %s", rc, err);

    test_remove_tmp_dir(tmp_dir);
    return test_finish();
}
