/* vkllm synth -o OUT.gguf [options]: a LLaMA-architecture GGUF with deterministic random weights. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_opts.h"
#include "synth.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: vkllm synth -o OUT.gguf [--preset tiny|1b|7b|13b] [--type TYPE] [--vocab VOCAB.gguf]\n"
            "                   [--seed S] [--n-embd N] [--n-layer N] [--n-head N] [--n-head-kv N]\n"
            "                   [--n-ff N] [--n-ctx N] [--n-vocab N] [--name NAME] [-t THREADS]\n"
            "\n"
            "Writes a LLaMA-architecture model with random weights at real shapes, deterministic for a\n"
            "given seed. Tensors are generated and written one at a time, so memory stays around the\n"
            "size of the largest tensor.\n"
            "\n"
            "  -o, --output FILE   the GGUF file to write (required)\n"
            "  --preset NAME       tiny (256 embd, 4 layers, like the test fixtures; default),\n"
            "                      1b (TinyLlama 1.1B), 7b, 13b (LLaMA-2 shapes)\n"
            "  --type TYPE         matrix type: f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k\n"
            "                      q5_k q6_k (default q8_0); norms are always f32. A matrix whose rows\n"
            "                      do not fit the type's block size is stored as q8_0 or f16 (reported)\n"
            "  --vocab FILE        copy the tokenizer (all tokenizer.* keys) from a GGUF file; the\n"
            "                      vocabulary size follows it. Default: a built-in byte-level vocabulary\n"
            "  --seed S            random seed (default 1)\n"
            "  --n-embd, --n-layer, --n-head, --n-head-kv, --n-ff, --n-ctx, --n-vocab N\n"
            "                      override the preset's dimensions\n"
            "  --name NAME         general.name (default vkllm-synth-PRESET)\n"
            "  -t, --threads N     threads for generation and quantization (default: all cores)\n"
            "  -q, -v, -lv N       log verbosity (as run); progress is a bar on a terminal, else a\n"
            "                      line per quarter once writing has taken a second\n");
}

static int parse_i64(const char *s, int64_t *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 0);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

static int parse_u64(const char *s, uint64_t *out) {
    if (!s || !*s || *s == '-') return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

typedef struct {
    bool tty;
    bool line_open;
    double t0;
    int last_quarter; /* not a terminal: the last quarter of the bytes reported */
} progress_state;

static void on_note(void *ud, const char *msg) {
    progress_state *ps = ud;
    if (ps->line_open) fputc('\n', stderr);
    ps->line_open = false;
    fprintf(stderr, "vkllm synth: note: %s\n", msg);
}

static void on_progress(void *ud, int i, int n, const char *tensor, uint64_t done, uint64_t total) {
    progress_state *ps = ud;
    char a[32], b[32];
    if (cli_verbosity < CLI_LOG_INFO) return;
    if (!ps->tty) { /* a plain line per quarter, once it has taken a second */
        int quarter = total ? (int)(4 * done / total) : 0;
        if (quarter > ps->last_quarter && cli_now() - ps->t0 >= 1.0) {
            fprintf(stderr, "vkllm synth: %d%% (%d/%d tensors, %s / %s)\n", quarter * 25, i, n,
                    vkl_fmt_bytes(done, a, sizeof a), vkl_fmt_bytes(total, b, sizeof b));
            ps->last_quarter = quarter;
        }
        return;
    }
    fprintf(stderr, "\r\033[K[%d/%d] %s  %s / %s", i, n, tensor, vkl_fmt_bytes(done, a, sizeof a),
            vkl_fmt_bytes(total, b, sizeof b));
    ps->line_open = true;
    if (i == n) {
        fputc('\n', stderr);
        ps->line_open = false;
    }
}

int cmd_synth(int argc, char **argv) {
    vkl_synth_config cfg;
    vkl_synth_defaults(&cfg);
    const char *out = NULL, *preset = "tiny", *type_name = NULL, *name = NULL;
    int64_t dims[7] = {0};
    bool dim_set[7] = {false};
    static const char *dim_flags[7] = {"--n-embd", "--n-layer", "--n-head", "--n-head-kv", "--n-ff", "--n-ctx", "--n-vocab"};

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        static const char *value_flags[] = {"-o", "--output", "--preset", "--type", "--vocab", "--name",
                                            "--seed", "-t", "--threads"};
        int lr = cli_log_parse("synth", argc, argv, &i);
        if (lr < 0) return 2;
        if (lr > 0) continue;
        int d = -1;
        for (int k = 0; k < 7; k++)
            if (!strcmp(a, dim_flags[k])) d = k;
        bool known = d >= 0;
        for (size_t k = 0; k < sizeof value_flags / sizeof value_flags[0]; k++) known |= !strcmp(a, value_flags[k]);
        if (!known) {
            fprintf(stderr, "vkllm synth: unknown option '%s' (try --help)\n", a);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "vkllm synth: %s needs a value (try --help)\n", a);
            return 2;
        }
        const char *val = argv[++i];
        if (d >= 0) {
            if (parse_i64(val, &dims[d])) {
                fprintf(stderr, "vkllm synth: %s needs an integer, got '%s'\n", a, val);
                return 2;
            }
            dim_set[d] = true;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            out = val;
        } else if (!strcmp(a, "--preset")) {
            preset = val;
        } else if (!strcmp(a, "--type")) {
            type_name = val;
        } else if (!strcmp(a, "--vocab")) {
            cfg.vocab_path = val;
        } else if (!strcmp(a, "--name")) {
            name = val;
        } else if (!strcmp(a, "--seed")) {
            if (parse_u64(val, &cfg.seed)) {
                fprintf(stderr, "vkllm synth: --seed needs a non-negative integer, got '%s'\n", val);
                return 2;
            }
        } else { /* -t, --threads */
            int64_t t;
            if (parse_i64(val, &t) || t < 1 || t > 64) {
                fprintf(stderr, "vkllm synth: %s needs an integer in 1..64, got '%s'\n", a, val);
                return 2;
            }
            cfg.n_threads = (int)t;
        }
    }
    if (!out) {
        fprintf(stderr, "vkllm synth: missing -o OUT.gguf (try --help)\n");
        return 2;
    }
    if (vkl_synth_preset(&cfg, preset)) {
        fprintf(stderr, "vkllm synth: unknown preset '%s' (tiny, 1b, 7b, 13b)\n", preset);
        return 1;
    }
    if (type_name) {
        int t = vkl_type_from_name(type_name);
        if (t < 0) {
            fprintf(stderr, "vkllm synth: unknown or unsupported type '%s'\n", type_name);
            return 1;
        }
        cfg.type = (vkl_type)t;
    }
    int64_t *targets[7] = {&cfg.n_embd, &cfg.n_layer, &cfg.n_head, &cfg.n_head_kv, &cfg.n_ff, &cfg.n_ctx, &cfg.n_vocab};
    for (int k = 0; k < 7; k++)
        if (dim_set[k]) *targets[k] = dims[k];
    char default_name[64];
    snprintf(default_name, sizeof default_name, "vkllm-synth-%s", preset);
    cfg.name = name ? name : default_name;

    progress_state ps = {isatty(STDERR_FILENO) == 1, false, cli_now(), 0};
    cfg.note = on_note;
    cfg.progress = on_progress;
    cfg.ud = &ps;
    vkl_error err = {{0}};
    if (vkl_synth_write(out, &cfg, &err)) {
        if (ps.line_open) fputc('\n', stderr);
        fprintf(stderr, "vkllm synth: %s\n", err.msg);
        return 1;
    }
    if (ps.tty && cli_verbosity >= CLI_LOG_INFO) fprintf(stderr, "wrote %s\n", out);
    return 0;
}
