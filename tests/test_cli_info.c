/* `vkllm info`: output on good files (text and JSON), exit codes and one-line messages on bad ones. */
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gguf.h"
#include "test.h"

static char tmp_base[512];

typedef struct run_result {
    int code;
    char *out, *err; /* NUL-terminated, malloc'd */
} run_result;

/* Runs `vkllm info ARGS` with stdout and stderr captured. */
static run_result run_info(const char *args) {
    char out[600], err[600], line[4096];
    snprintf(out, sizeof out, "%s.out", tmp_base);
    snprintf(err, sizeof err, "%s.err", tmp_base);
    snprintf(line, sizeof line, "info %s", args);
    const int code = test_run_cli(NULL, line, NULL, out, err);
    run_result r = {.code = code, .out = test_slurp(out), .err = test_slurp(err)};
    unlink(out);
    unlink(err);
    return r;
}

static void run_free(run_result *r) {
    free(r->out);
    free(r->err);
}


/* ---- a strict little JSON validator --------------------------------------------------------------- */

static const char *json_value(const char *p, int depth);

static const char *ws(const char *p) {
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
    return p;
}

static const char *json_string(const char *p) {
    if (*p++ != '"') return NULL;
    while (*p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20) return NULL;
        if (c == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!isxdigit((unsigned char)p[i])) return NULL;
                p += 5;
                continue;
            }
            if (!strchr("\"\\/bfnrt", *p) || !*p) return NULL;
        }
        p++;
    }
    return p + 1;
}

static const char *json_number(const char *p) {
    const char *s = p;
    if (*p == '-') p++;
    if (!isdigit((unsigned char)*p)) return NULL;
    if (*p == '0') p++;
    else while (isdigit((unsigned char)*p)) p++;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p)) return NULL;
        while (isdigit((unsigned char)*p)) p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!isdigit((unsigned char)*p)) return NULL;
        while (isdigit((unsigned char)*p)) p++;
    }
    return p > s ? p : NULL;
}

static const char *json_value(const char *p, int depth) {
    if (depth > 32) return NULL;
    p = ws(p);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p = ws(p + 1);
        if (*p == close) return p + 1;
        for (;;) {
            if (close == '}') {
                if (!(p = json_string(ws(p)))) return NULL;
                p = ws(p);
                if (*p++ != ':') return NULL;
            }
            if (!(p = json_value(p, depth + 1))) return NULL;
            p = ws(p);
            if (*p == close) return p + 1;
            if (*p++ != ',') return NULL;
        }
    }
    if (*p == '"') return json_string(p);
    if (!strncmp(p, "true", 4)) return p + 4;
    if (!strncmp(p, "false", 5)) return p + 5;
    if (!strncmp(p, "null", 4)) return p + 4;
    return json_number(p);
}

static bool json_valid(const char *s) {
    const char *end = json_value(s, 0);
    return end && *ws(end) == 0;
}

/* ---- cases ---------------------------------------------------------------------------------------- */

static void check_bad_file(const char *what, const char *path, const char *reason) {
    char args[1100];
    snprintf(args, sizeof args, "'%s'", path);
    run_result r = run_info(args);
    char prefix[1100];
    snprintf(prefix, sizeof prefix, "vkllm info: %s: ", path);
    CHECK(r.code == 1, "%s: exit %d", what, r.code);
    CHECK(!strncmp(r.err, prefix, strlen(prefix)), "%s: stderr '%s'", what, r.err);
    CHECK(test_count_lines(r.err) == 1, "%s: %d lines on stderr: '%s'", what, test_count_lines(r.err), r.err);
    CHECK(reason == NULL || strstr(r.err, reason), "%s: '%s' lacks '%s'", what, r.err, reason);
    CHECK(r.out[0] == 0, "%s: something on stdout", what);
    run_free(&r);
}

/* A small llama-like file written with our writer, so the good path runs without the fixtures. */
static void write_small_model(const char *path) {
    vkl_error err = {{0}};
    gguf_writer *w = gguf_writer_open(path, &err);
    CHECK(w != NULL, "%s", err.msg);
    if (!w) return;
    gguf_str toks[] = {{5, "<unk>"}, {3, "<s>"}, {4, "</s>"}, {5, "\"q\"\\\n"}, {2, "\xff\xfe"}};
    gguf_value tokv = {.type = GGUF_VT_ARRAY, .v.arr = {.type = GGUF_VT_STRING, .n = 5, .strs = toks}};
    static const float scores[3] = {0.5f, -1.0f, 2.0f};
    gguf_value sc = {.type = GGUF_VT_ARRAY, .v.arr = {.type = GGUF_VT_FLOAT32, .n = 3, .data = scores}};
    static const int8_t i8s[1] = {-3};
    gguf_value in[1] = {{.type = GGUF_VT_ARRAY, .v.arr = {.type = GGUF_VT_INT8, .n = 1, .data = i8s}}};
    gguf_value nested = {.type = GGUF_VT_ARRAY, .v.arr = {.type = GGUF_VT_ARRAY, .n = 1, .items = in}};
    int64_t ne_e[2] = {64, 5}, ne_n[1] = {64};
    static uint8_t zeros[64 * 5 * 2];
    int rc = gguf_writer_add_str(w, "general.architecture", "llama", &err) |
             gguf_writer_add_str(w, "general.name", "tab\there \"quoted\"", &err) |
             gguf_writer_add_u32(w, "llama.block_count", 1, &err) |
             gguf_writer_add_u32(w, "llama.embedding_length", 64, &err) |
             gguf_writer_add_f32(w, "llama.rope.freq_base", 10000.0f, &err) |
             gguf_writer_add_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f, &err) |
             gguf_writer_add_kv(w, "tokenizer.ggml.tokens", &tokv, &err) |
             gguf_writer_add_kv(w, "tokenizer.ggml.scores", &sc, &err) | gguf_writer_add_kv(w, "x.nested", &nested, &err) |
             gguf_writer_add_f32(w, "x.nan", NAN, &err) | gguf_writer_add_bool(w, "x.flag", true, &err) |
             gguf_writer_add_tensor(w, "token_embd.weight", VKL_TYPE_F16, 2, ne_e, &err) |
             gguf_writer_add_tensor(w, "output_norm.weight", VKL_TYPE_F32, 1, ne_n, &err) |
             gguf_writer_write_tensor_data(w, zeros, 64 * 5 * 2, &err) |
             gguf_writer_write_tensor_data(w, zeros, 256, &err) | gguf_writer_close(w, &err);
    CHECK(rc == 0, "writing the small model: %s", err.msg);
}

static void test_small_model(const char *path) {
    char args[1100];
    snprintf(args, sizeof args, "'%s'", path);
    run_result r = run_info(args);
    CHECK(r.code == 0, "exit %d: %s", r.code, r.err);
    CHECK(strstr(r.out, "architecture:  \"llama\""), "%s", r.out);
    CHECK(strstr(r.out, "vocab size             5"), "vocab size from the token list");
    CHECK(strstr(r.out, "block count            1"), "block count");
    CHECK(strstr(r.out, "rope freq base         10000\n"), "rope freq base");
    CHECK(strstr(r.out, "rms epsilon            1e-05\n"), "rms epsilon");
    CHECK(strstr(r.out, "[array x 1]"), "nested arrays summarized");
    CHECK(strstr(r.out, "[\"<unk>\", \"<s>\", \"</s>\", \"\\\"q\\\"\\\\\\n\", \"\\xff\\xfe\"]"), "short string arrays in full");
    CHECK(strstr(r.out, "[0.5, -1, 2]"), "short arrays in full");
    CHECK(strstr(r.out, "tensor count:  2"), "tensor count");
    CHECK(strstr(r.out, "parameters:         384"), "parameter count");
    CHECK(!strstr(r.out, "token_embd.weight"), "no tensor list without --tensors");
    run_free(&r);

    snprintf(args, sizeof args, "--json --tensors '%s'", path);
    r = run_info(args);
    CHECK(r.code == 0, "exit %d: %s", r.code, r.err);
    CHECK(json_valid(r.out), "invalid JSON:\n%s", r.out);
    CHECK(strstr(r.out, "\"architecture\": \"llama\""), "architecture");
    CHECK(strstr(r.out, "\"name\": \"tab\\there \\\"quoted\\\"\""), "escaped name");
    CHECK(strstr(r.out, "\"x.nan\": null"), "NaN as null");
    CHECK(strstr(r.out, "\"tokenizer.ggml.tokens\": [\"<unk>\", \"<s>\", \"</s>\", \"\\\"q\\\"\\\\\\n\", \"\\ufffd\\ufffd\"]"),
          "escaped tokens: %s", r.out);
    CHECK(strstr(r.out, "\"f16\": {\"count\": 1, \"bytes\": 640}"), "type histogram");
    CHECK(strstr(r.out, "{\"name\": \"token_embd.weight\", \"type\": \"f16\", \"dims\": [64, 5], \"bytes\": 640, \"offset\": 0}"),
          "tensor list");
    CHECK(strstr(r.out, "\"vocab_size\": 5"), "vocab size");
    run_free(&r);
}

/* `info --tensors PATH` prints every string of want. */
static void check_info_text(const char *path, const char *const *want, size_t n_want) {
    char args[1200];
    snprintf(args, sizeof args, "--tensors '%s'", path);
    run_result r = run_info(args);
    CHECK(r.code == 0, "%s: exit %d: %s", path, r.code, r.err);
    for (size_t i = 0; i < n_want; i++) CHECK(strstr(r.out, want[i]), "%s: missing '%s'", path, want[i]);
    run_free(&r);
}

/* `info PATH --json` is balanced, valid JSON with every string of want, and no tensor list. */
static void check_info_json(const char *path, const char *const *want, size_t n_want) {
    char args[1200];
    snprintf(args, sizeof args, "'%s' --json", path);
    run_result r = run_info(args);
    CHECK(r.code == 0, "%s: exit %d: %s", path, r.code, r.err);
    int depth = 0, min_depth = 0;
    for (const char *p = r.out; *p; p++) {
        depth += (*p == '{') - (*p == '}');
        if (depth < min_depth) min_depth = depth;
    }
    CHECK(depth == 0 && min_depth == 0, "%s: braces unbalanced", path);
    CHECK(json_valid(r.out), "%s: invalid JSON", path);
    for (size_t i = 0; i < n_want; i++) CHECK(strstr(r.out, want[i]), "%s: missing '%s'", path, want[i]);
    CHECK(!strstr(r.out, "\"tensors\""), "%s: no tensor list without --tensors", path);
    run_free(&r);
}

/* The in-repository set: a K-quant model, a Q8_0 model as JSON, the vocabulary-only file, and a
 * truncated copy of a real model. */
static void test_repo_fixture(const char *fixtures) {
    char path[1024], args[1200];
    static const char *const text[] = {
        "gguf version:  3",        "alignment:     32",      "kv count:      24",      "tensor count:  21",
        "architecture:  \"llama\"", "name:          \"vkllm-mini\"",
        "context length         4096", "embedding length       256", "block count            2",
        "feed-forward length    768",  "head count             8",   "head count kv          4",
        "rope dimension count   32",   "rope freq base         10000", "rms epsilon            1e-05",
        "vocab size             4096", "[string x 4096]", "q4_K ", "q6_K ", "f32 ", "blk.1.ffn_up.weight",
        "output.weight",
    };
    test_path(path, sizeof path, fixtures, "models/mini-q4_k_m.gguf");
    check_info_text(path, text, VKL_ARRAY_LEN(text));
    static const char *const json[] = {"\"architecture\": \"llama\"", "\"block_count\": 2", "\"q8_0\": {\"count\": 16",
                                       "\"f32\": {\"count\": 5"};
    test_path(path, sizeof path, fixtures, "models/mini-q8_0.gguf");
    check_info_json(path, json, VKL_ARRAY_LEN(json));

    test_path(path, sizeof path, fixtures, "vocab/ggml-vocab-llama-spm.gguf");
    snprintf(args, sizeof args, "--json --tensors '%s'", path);
    run_result r = run_info(args);
    CHECK(r.code == 0 && json_valid(r.out) && strstr(r.out, "\"tensor_count\": 0"), "vocab-only file: %s", r.err);
    run_free(&r);

    /* a truncated copy of a real model */
    char trunc[600];
    snprintf(trunc, sizeof trunc, "%s_trunc.gguf", tmp_base);
    test_path(path, sizeof path, fixtures, "models/mini-q8_0.gguf");
    FILE *in = fopen(path, "rb"), *out = fopen(trunc, "wb");
    static char buf[1 << 16];
    size_t total = 0, n;
    while (in && out && total < 800000 && (n = fread(buf, 1, sizeof buf, in)) > 0) total += fwrite(buf, 1, n, out);
    if (in) fclose(in);
    if (out) fclose(out);
    check_bad_file("truncated model", trunc, "outside the file");
    unlink(trunc);
}

/* The larger set: a 4-layer K-quant model with the full vocabulary, and the F16 master as JSON. */
static void test_shared_fixture(const char *fixtures) {
    char path[1024];
    static const char *const text[] = {
        "kv count:      24", "tensor count:  39", "name:          \"vkllm-tiny\"", "context length         2048",
        "block count            4", "vocab size             32000", "[string x 32000]", "q4_K ", "q6_K ",
        "blk.3.ffn_up.weight",
    };
    test_path(path, sizeof path, fixtures, "models/tiny-q4_k_m.gguf");
    check_info_text(path, text, VKL_ARRAY_LEN(text));
    static const char *const json[] = {"\"architecture\": \"llama\"", "\"block_count\": 4", "\"f16\": {\"count\": 30",
                                       "\"f32\": {\"count\": 9"};
    test_path(path, sizeof path, fixtures, "models/tiny-f16.gguf");
    check_info_json(path, json, VKL_ARRAY_LEN(json));
}

int main(void) {
    const char *t = getenv("TMPDIR");
    snprintf(tmp_base, sizeof tmp_base, "%s/vkl_test_cli_info_%d", t && *t ? t : "/tmp", (int)getpid());

    char path[600];
    snprintf(path, sizeof path, "%s_small.gguf", tmp_base);
    write_small_model(path);
    test_small_model(path);

    /* bad files: exit 1, one line `vkllm info: PATH: reason` */
    char bad[600];
    snprintf(bad, sizeof bad, "%s_missing.gguf", tmp_base);
    check_bad_file("missing file", bad, "No such file");
    check_bad_file("directory", t && *t ? t : "/tmp", "directory");
    snprintf(bad, sizeof bad, "%s_empty.gguf", tmp_base);
    FILE *fp = fopen(bad, "wb");
    if (fp) fclose(fp);
    check_bad_file("empty file", bad, "empty");
    fp = fopen(bad, "wb");
    if (fp) {
        fputs("GGUF\x03", fp);
        fclose(fp);
    }
    check_bad_file("5-byte file", bad, "truncated");
    fp = fopen(bad, "wb");
    if (fp) {
        fputs("PK\x03\x04 this is a zip file, not a model", fp);
        fclose(fp);
    }
    check_bad_file("not a GGUF file", bad, "magic");
    /* the small model cut inside its tensor infos */
    FILE *src = fopen(path, "rb");
    char head[200];
    size_t got = src ? fread(head, 1, sizeof head, src) : 0;
    if (src) fclose(src);
    fp = fopen(bad, "wb");
    if (fp) {
        fwrite(head, 1, got, fp);
        fclose(fp);
    }
    check_bad_file("truncated small model", bad, "gguf:");
    unlink(bad);
    unlink(path);

    /* usage */
    run_result r = run_info("");
    CHECK(r.code == 2 && strstr(r.err, "usage: vkllm info"), "no file: exit %d", r.code);
    run_free(&r);
    r = run_info("--frobnicate x.gguf");
    CHECK(r.code == 2 && strstr(r.err, "--frobnicate") && strstr(r.err, "usage"), "unknown option: exit %d", r.code);
    run_free(&r);
    r = run_info("a.gguf b.gguf");
    CHECK(r.code == 2, "two files: exit %d", r.code);
    run_free(&r);
    r = run_info("--help");
    CHECK(r.code == 0 && strstr(r.out, "--tensors") && strstr(r.out, "--json"), "--help: exit %d", r.code);
    run_free(&r);

    test_repo_fixture(test_repo_fixtures());
    const char *fixtures = test_fixtures_dir();
    if (fixtures) test_shared_fixture(fixtures);
    return test_finish();
}
