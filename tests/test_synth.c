/* vkllm synth: metadata and shapes of the written models, determinism (also across thread
 * counts), type fallbacks, the fixture vocabulary, and the CLI's exit codes. */
#include <math.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gguf.h"
#include "synth.h"
#include "test.h"

static char tmp_dir[512];

static void tmp_path(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", tmp_dir, name); }


/* 1 if equal, 0 if different, -1 if unreadable */
static int same_bytes(const char *a, const char *b) {
    size_t na, nb;
    uint8_t *pa = (uint8_t *)test_read_file(a, &na), *pb = (uint8_t *)test_read_file(b, &nb);
    int r = (!pa || !pb) ? -1 : (na == nb && !memcmp(pa, pb, na));
    free(pa);
    free(pb);
    return r;
}

static int n_notes;
static void count_note(void *ud, const char *msg) {
    (void)ud;
    (void)msg;
    n_notes++;
}

static uint32_t get_u32(const gguf_file *f, const char *key) {
    uint32_t v = 0;
    vkl_error err = {{0}};
    CHECK(gguf_get_u32(f, key, &v, &err) == 0, "%s: %s", key, err.msg);
    return v;
}

static gguf_file *write_and_open(const char *name, const vkl_synth_config *cfg, char *path, size_t pn) {
    tmp_path(path, pn, name);
    vkl_error err = {{0}};
    int rc = vkl_synth_write(path, cfg, &err);
    CHECK(rc == 0, "synth %s: %s", name, err.msg);
    if (rc) return NULL;
    gguf_file *f = gguf_open(path, &err);
    CHECK(f != NULL, "open %s: %s", name, err.msg);
    return f;
}

static double tensor_std(const gguf_tensor *t) {
    const vkl_type_traits *tr = vkl_type_get(t->type);
    float *x = malloc(t->n_elements * sizeof(float));
    if (!tr || !x) {
        free(x);
        return -1;
    }
    tr->to_f32(t->data, x, (int64_t)t->n_elements);
    double s = 0, s2 = 0;
    for (uint64_t i = 0; i < t->n_elements; i++) {
        s += x[i];
        s2 += (double)x[i] * x[i];
    }
    free(x);
    double m = s / (double)t->n_elements;
    return sqrt(s2 / (double)t->n_elements - m * m);
}

/* Shapes and metadata of the tiny preset, in the given type. */
static void check_tiny(vkl_type type, const char *file) {
    vkl_synth_config cfg;
    vkl_synth_defaults(&cfg);
    cfg.type = type;
    char path[1024];
    gguf_file *f = write_and_open(file, &cfg, path, sizeof path);
    if (!f) return;
    char s[64] = "";
    gguf_get_cstr(f, "general.architecture", s, sizeof s, NULL);
    CHECK(!strcmp(s, "llama"), "architecture '%s'", s);
    CHECK(get_u32(f, "llama.embedding_length") == 256 && get_u32(f, "llama.block_count") == 4, "dims");
    CHECK(get_u32(f, "llama.attention.head_count") == 8 && get_u32(f, "llama.attention.head_count_kv") == 4, "heads");
    CHECK(get_u32(f, "llama.feed_forward_length") == 768 && get_u32(f, "llama.rope.dimension_count") == 32, "ff/rope");
    CHECK(get_u32(f, "llama.context_length") == 2048 && get_u32(f, "llama.vocab_size") == 32000, "ctx/vocab");
    CHECK(get_u32(f, "general.file_type") == vkl_synth_file_type(type), "file type");
    CHECK((gguf_find_kv(f, "general.quantization_version") != NULL) == vkl_type_get(type)->is_quantized,
          "quantization_version present only for quantized types");
    float eps = 0, base = 0;
    gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &eps, NULL);
    gguf_get_f32(f, "llama.rope.freq_base", &base, NULL);
    CHECK(eps == 1e-5f && base == 10000.0f, "eps %g base %g", eps, base);
    const gguf_value *tokens = NULL, *types = NULL;
    CHECK(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_VT_STRING, &tokens, NULL) == 0 && tokens->v.arr.n == 32000,
          "built-in vocab has 32000 tokens");
    CHECK(gguf_get_arr(f, "tokenizer.ggml.token_type", GGUF_VT_COUNT, &types, NULL) == 0 && types->v.arr.n == 32000,
          "token types");
    if (tokens && types && tokens->v.arr.n == 32000 && types->v.arr.n == 32000) {
        CHECK(gguf_str_eq(tokens->v.arr.strs[0], "<unk>") && gguf_str_eq(tokens->v.arr.strs[1], "<s>") &&
                  gguf_str_eq(tokens->v.arr.strs[2], "</s>") && gguf_str_eq(tokens->v.arr.strs[3], "<0x00>") &&
                  gguf_str_eq(tokens->v.arr.strs[258], "<0xFF>"),
              "special and byte tokens");
        CHECK(gguf_arr_i64(types, 0) == 2 && gguf_arr_i64(types, 1) == 3 && gguf_arr_i64(types, 3) == 6 &&
                  gguf_arr_i64(types, 258) == 6 && gguf_arr_i64(types, 259) == 1,
              "token types");
        int unique_utf8 = 1;
        for (uint64_t i = 259; i < 400; i++) {
            unique_utf8 &= gguf_utf8_valid(tokens->v.arr.strs[i].data, tokens->v.arr.strs[i].len);
            unique_utf8 &= !(tokens->v.arr.strs[i].len == tokens->v.arr.strs[i - 1].len &&
                             !memcmp(tokens->v.arr.strs[i].data, tokens->v.arr.strs[i - 1].data,
                                     tokens->v.arr.strs[i].len));
        }
        CHECK(unique_utf8, "generated pieces are valid UTF-8 and distinct");
    }
    CHECK(f->n_tensors == 4 * 9 + 3, "tensor count %llu", (unsigned long long)f->n_tensors);
    const struct {
        const char *name;
        int64_t ne0, ne1;
        double std;
    } want[] = {
        {"token_embd.weight", 256, 32000, 1.0},    {"output.weight", 256, 32000, 0.375},
        {"output_norm.weight", 256, 1, 0.1},       {"blk.0.attn_norm.weight", 256, 1, 0.1},
        {"blk.3.attn_q.weight", 256, 256, 0.0625}, {"blk.2.attn_k.weight", 256, 128, 0.0625},
        {"blk.1.attn_v.weight", 256, 128, 0.0625}, {"blk.0.attn_output.weight", 256, 256, 0.03125},
        {"blk.3.ffn_norm.weight", 256, 1, 0.1},    {"blk.3.ffn_gate.weight", 256, 768, 0.0625},
        {"blk.0.ffn_up.weight", 256, 768, 0.0625}, {"blk.0.ffn_down.weight", 768, 256, 0.018},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const gguf_tensor *t = gguf_find_tensor(f, want[i].name);
        CHECK(t != NULL, "%s missing", want[i].name);
        if (!t) continue;
        bool norm = want[i].ne1 == 1;
        CHECK(t->n_dims == (norm ? 1u : 2u) && t->ne[0] == want[i].ne0 && t->ne[1] == want[i].ne1, "%s shape",
              want[i].name);
        CHECK(t->type == (norm ? VKL_TYPE_F32 : type), "%s type %s", want[i].name, vkl_type_name(t->type));
        double sd = tensor_std(t);
        CHECK(fabs(sd - want[i].std) < 0.15 * want[i].std, "%s std %.4f, want ~%.4f", want[i].name, sd, want[i].std);
    }
    const gguf_tensor *norm = gguf_find_tensor(f, "output_norm.weight");
    if (norm) CHECK(fabs(((const float *)norm->data)[0] - 1.0f) < 0.6f, "norm weights around 1");
    gguf_close(f);
}

static void test_determinism(void) {
    vkl_synth_config cfg;
    vkl_synth_defaults(&cfg);
    cfg.type = VKL_TYPE_Q4_0;
    char a[1024], b[1024], c[1024], d[1024];
    vkl_error err = {{0}};
    tmp_path(a, sizeof a, "seed1_t1.gguf");
    tmp_path(b, sizeof b, "seed1_t2.gguf");
    tmp_path(c, sizeof c, "seed2.gguf");
    tmp_path(d, sizeof d, "seed1_again.gguf");
    cfg.n_threads = 1;
    CHECK(vkl_synth_write(a, &cfg, &err) == 0, "%s", err.msg);
    CHECK(vkl_synth_write(d, &cfg, &err) == 0, "%s", err.msg);
    cfg.n_threads = 3;
    CHECK(vkl_synth_write(b, &cfg, &err) == 0, "%s", err.msg);
    cfg.seed = 2;
    CHECK(vkl_synth_write(c, &cfg, &err) == 0, "%s", err.msg);
    CHECK(same_bytes(a, d) == 1, "same seed gives identical bytes");
    CHECK(same_bytes(a, b) == 1, "identical bytes with 1 and 3 threads");
    CHECK(same_bytes(a, c) == 0, "a different seed gives different bytes");
    unlink(a), unlink(b), unlink(c), unlink(d);
}

/* A small model in every supported type; rows that do not fit a type's block fall back. */
static void test_types_and_fallback(void) {
    for (int i = 0; i < vkl_type_supported_count(); i++) {
        vkl_type t = vkl_type_supported_at(i);
        vkl_synth_config cfg;
        vkl_synth_defaults(&cfg);
        cfg.type = t;
        cfg.n_layer = 1;
        cfg.n_vocab = 300;
        cfg.n_ff = 320; /* ffn_down rows of 320: a multiple of 32, not of 256 */
        cfg.note = count_note;
        n_notes = 0;
        char path[1024];
        gguf_file *f = write_and_open("types.gguf", &cfg, path, sizeof path);
        if (!f) continue;
        const gguf_tensor *up = gguf_find_tensor(f, "blk.0.ffn_up.weight");
        const gguf_tensor *down = gguf_find_tensor(f, "blk.0.ffn_down.weight");
        const gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
        bool k = vkl_type_get(t)->block_size == VKL_QK_K;
        CHECK(up && up->type == t && emb && emb->type == t && emb->ne[1] == 300, "%s: matrices", vkl_type_name(t));
        CHECK(down && down->type == (k ? VKL_TYPE_Q8_0 : t), "%s: ffn_down stored as %s", vkl_type_name(t),
              down ? vkl_type_name(down->type) : "?");
        CHECK(n_notes == (k ? 1 : 0), "%s: %d fallback notes", vkl_type_name(t), n_notes);
        if (down) {
            double sd = tensor_std(down);
            CHECK(fabs(sd - 0.5 / sqrt(320.0)) < 0.2 * 0.5 / sqrt(320.0), "%s: ffn_down std %.4f", vkl_type_name(t), sd);
        }
        gguf_close(f);
        unlink(path);
    }
    /* rows of 100 elements fit no quantized block: f16 */
    vkl_synth_config cfg;
    vkl_synth_defaults(&cfg);
    cfg.type = VKL_TYPE_Q4_0;
    cfg.n_layer = 1;
    cfg.n_vocab = 300;
    cfg.n_ff = 100;
    char path[1024];
    gguf_file *f = write_and_open("fallback_f16.gguf", &cfg, path, sizeof path);
    if (f) {
        const gguf_tensor *down = gguf_find_tensor(f, "blk.0.ffn_down.weight");
        CHECK(down && down->type == VKL_TYPE_F16, "ffn_down with 100-element rows falls back to f16");
        gguf_close(f);
        unlink(path);
    }
    CHECK(vkl_synth_tensor_type(VKL_TYPE_Q6_K, 512) == VKL_TYPE_Q6_K, "fits");
    CHECK(vkl_synth_tensor_type(VKL_TYPE_Q6_K, 96) == VKL_TYPE_Q8_0, "K -> q8_0");
    CHECK(vkl_synth_tensor_type(VKL_TYPE_Q4_1, 48) == VKL_TYPE_F16, "-> f16");
    CHECK(vkl_synth_tensor_type(VKL_TYPE_F32, 7) == VKL_TYPE_F32, "float types always fit");
}

static void test_validation(void) {
    const char *presets[] = {"tiny", "1b", "7b", "13b"};
    for (size_t i = 0; i < 4; i++) {
        vkl_synth_config cfg;
        vkl_synth_defaults(&cfg);
        CHECK(vkl_synth_preset(&cfg, presets[i]) == 0, "%s", presets[i]);
        vkl_error err = {{0}};
        CHECK(vkl_synth_validate(&cfg, &err) == 0, "%s: %s", presets[i], err.msg);
    }
    vkl_synth_config cfg;
    vkl_synth_defaults(&cfg);
    CHECK(vkl_synth_preset(&cfg, "70b") == -1, "unknown preset");
    CHECK(vkl_synth_preset(&cfg, "1b") == 0 && cfg.n_embd == 2048 && cfg.n_layer == 22 && cfg.n_ff == 5632 &&
              cfg.n_head == 32 && cfg.n_head_kv == 4,
          "1b shape");
    CHECK(vkl_synth_preset(&cfg, "13b") == 0 && cfg.n_embd == 5120 && cfg.n_layer == 40 && cfg.n_ff == 13824, "13b");
    vkl_error err = {{0}};
    vkl_synth_defaults(&cfg);
    cfg.n_head = 7;
    CHECK(vkl_synth_validate(&cfg, &err) == -1 && strstr(err.msg, "divisible"), "n_embd %% n_head: %s", err.msg);
    vkl_synth_defaults(&cfg);
    cfg.n_head_kv = 3;
    CHECK(vkl_synth_validate(&cfg, &err) == -1, "n_head %% n_head_kv");
    vkl_synth_defaults(&cfg);
    cfg.n_layer = 0;
    CHECK(vkl_synth_validate(&cfg, &err) == -1, "zero layers");
    vkl_synth_defaults(&cfg);
    cfg.n_vocab = 100;
    CHECK(vkl_synth_validate(&cfg, &err) == -1, "built-in vocab too small");
    vkl_synth_defaults(&cfg);
    cfg.type = VKL_TYPE_Q8_K;
    CHECK(vkl_synth_validate(&cfg, &err) == -1, "unsupported type");
    vkl_synth_defaults(&cfg);
    CHECK(vkl_synth_write("/nonexistent-dir/x/model.gguf", &cfg, &err) == -1 && err.msg[0], "unwritable path");
}

static void test_vocab(const char *fixtures) {
    char vocab[1024];
    snprintf(vocab, sizeof vocab, "%s/vocab/ggml-vocab-llama-spm.gguf", fixtures);
    vkl_synth_config cfg;
    vkl_synth_defaults(&cfg);
    cfg.vocab_path = vocab;
    cfg.n_layer = 1;
    cfg.type = VKL_TYPE_Q4_0;
    char path[1024];
    gguf_file *f = write_and_open("vocab.gguf", &cfg, path, sizeof path);
    vkl_error err = {{0}};
    gguf_file *v = gguf_open(vocab, &err);
    CHECK(v != NULL, "%s", err.msg);
    if (f && v) {
        const gguf_value *tokens = NULL, *vt = NULL;
        CHECK(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_VT_STRING, &tokens, NULL) == 0 && tokens->v.arr.n == 32000,
              "vocab tokens 32000");
        gguf_get_arr(v, "tokenizer.ggml.tokens", GGUF_VT_STRING, &vt, NULL);
        if (tokens && vt && tokens->v.arr.n == vt->v.arr.n) {
            int same = 1;
            for (uint64_t i = 0; i < vt->v.arr.n; i++)
                same &= tokens->v.arr.strs[i].len == vt->v.arr.strs[i].len &&
                        !memcmp(tokens->v.arr.strs[i].data, vt->v.arr.strs[i].data, vt->v.arr.strs[i].len);
            CHECK(same, "tokens copied exactly");
        }
        /* every tokenizer.* key of the vocab file is copied */
        for (uint64_t i = 0; i < v->n_kv; i++) {
            char key[256];
            size_t n = v->kv[i].key.len < 255 ? (size_t)v->kv[i].key.len : 255;
            memcpy(key, v->kv[i].key.data, n);
            key[n] = 0;
            if (!strncmp(key, "tokenizer.", 10)) CHECK(gguf_find_kv(f, key) != NULL, "%s copied", key);
        }
        CHECK(get_u32(f, "llama.vocab_size") == 32000, "vocab size");
        const gguf_tensor *out = gguf_find_tensor(f, "output.weight");
        CHECK(out && out->ne[1] == 32000, "output rows follow the vocab");
    }
    gguf_close(v);
    gguf_close(f);
    unlink(path);
    cfg.n_vocab = 1000;
    CHECK(vkl_synth_write(path, &cfg, &err) == -1 && strstr(err.msg, "32000"), "--n-vocab mismatch: %s", err.msg);
}

static int run_cli(const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s synth %s 2>%s/stderr.txt >/dev/null", VKLLM_CLI, args, tmp_dir);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli(void) {
    char out[1024], args[2048], errfile[1024];
    tmp_path(out, sizeof out, "cli.gguf");
    tmp_path(errfile, sizeof errfile, "stderr.txt");
    snprintf(args, sizeof args, "-o %s --type q4_k --n-layer 1 --n-vocab 300 --seed 7", out);
    CHECK(run_cli(args) == 0, "cli synth");
    size_t n = 0;
    uint8_t *e = (uint8_t *)test_read_file(errfile, &n);
    /* Not a terminal: no bar; only when writing takes over a second (a slow sanitizer build), a
     * plain line per quarter ("vkllm synth: 25% ..."). */
    int n_lines = 0, progress = 0;
    for (const char *p = e ? (const char *)e : ""; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p))
        n_lines++, progress += !strncmp(p, "vkllm synth: ", 13) && strchr(p, '%') && strchr(p, '%') < strchr(p, '\n');
    CHECK(e && !memchr(e, '\r', n) && n_lines <= 4 && n_lines == progress,
          "stderr not a terminal: at most 4 plain progress lines (%zu bytes): %s", n, e ? (const char *)e : "");
    free(e);
    vkl_error err = {{0}};
    gguf_file *f = gguf_open(out, &err);
    CHECK(f != NULL, "cli output: %s", err.msg);
    if (f) {
        const gguf_tensor *t = gguf_find_tensor(f, "blk.0.attn_q.weight");
        CHECK(t && t->type == VKL_TYPE_Q4_K, "cli --type q4_k");
        CHECK(get_u32(f, "general.file_type") == 14, "q4_K file type");
        gguf_close(f);
    }
    unlink(out);
    const struct {
        const char *args;
        int rc;
    } cases[] = {
        {"--type q9_9 -o %s", 1},
        {"--type q8_k -o %s", 1},
        {"--preset 70b -o %s", 1},
        {"--n-head 7 -o %s", 1},
        {"--n-embd 0 -o %s", 1},
        {"-o /nonexistent-dir/x/y.gguf", 1},
        {"--bogus -o %s", 2},
        {"--n-embd abc -o %s", 2},
        {"--seed -1 -o %s", 2},
        {"-o", 2},
        {"", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(args, sizeof args, cases[i].args, out);
        int rc = run_cli(args);
        CHECK(rc == cases[i].rc, "'synth %s' exit %d, want %d", args, rc, cases[i].rc);
        e = (uint8_t *)test_read_file(errfile, &n);
        int lines = 0;
        for (size_t k = 0; e && k < n; k++) lines += e[k] == '\n';
        CHECK(lines == 1, "'synth %s': one-line message (%d lines)", args, lines);
        free(e);
        CHECK(access(out, F_OK) != 0, "no output file after an error");
    }
    CHECK(run_cli("--help") == 0, "--help");
    unlink(errfile);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/vkl_test_synth_%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    if (mkdir(tmp_dir, 0700) != 0) {
        fprintf(stderr, "cannot create %s\n", tmp_dir);
        return 1;
    }
    test_validation();
    check_tiny(VKL_TYPE_Q4_0, "tiny_q4_0.gguf");
    check_tiny(VKL_TYPE_F16, "tiny_f16.gguf");
    test_determinism();
    test_types_and_fallback();
    test_vocab(test_repo_fixtures());
    test_cli();
    char p[1024];
    tmp_path(p, sizeof p, "tiny_q4_0.gguf");
    unlink(p);
    tmp_path(p, sizeof p, "tiny_f16.gguf");
    unlink(p);
    rmdir(tmp_dir);
    return test_finish();
}
