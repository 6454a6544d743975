/* vkllm run: generates text from a prompt (or replays a token file) through the public API. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_offload.h"
#include "vkllm.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: vkllm run -m MODEL.gguf (-p PROMPT | -f FILE | --tokens-in FILE) [options]\n"
            "\n"
            "Generates text: the prompt is evaluated in batches, then one token at a time. Text goes to\n"
            "stdout, timings to stderr.\n"
            "\n"
            "  -m, --model PATH       the GGUF model\n"
            "  -p, --prompt TEXT      the prompt\n"
            "  -f, --file PATH        read the prompt from a file\n"
            "  -n, --n-predict N      tokens to generate (default 128)\n"
            "  -t, --threads N        CPU threads (default: physical cores)\n"
            "  -c, --ctx-size N       context positions (default: min(training context, 4096))\n"
            "  -b, --batch-size N     prompt tokens per pass (default 512)\n"
            "  --temp T               temperature, 0 = greedy (default 0.8)\n"
            "  --top-k K              (default 40, 0 = off)\n"
            "  --top-p P              (default 0.95, 1 = off)\n"
            "  --min-p M              (default 0.05, 0 = off)\n"
            "  --repeat-penalty R     (default 1.0 = off)\n"
            "  --repeat-last-n N      tokens the penalty looks back on (default 64)\n"
            "  --seed S               sampling seed (default: random)\n"
            "  --kv-type f16|f32      KV cache type (default f16)\n"
            "  --ignore-eos           keep generating after the end-of-sequence token\n"
            "  --context-shift        when the context is full, keep BOS + --keep prompt tokens and the\n"
            "                         newer half of the rest, and go on (default: stop there)\n"
            "  --keep N               prompt tokens after BOS kept by --context-shift (default 0)\n"
            "  --profile              print the time per op kind (prompt, and per generated token)\n"
            "  --logits-out FILE      write the f32 logits of every evaluated position (n_vocab per row)\n"
            "  --tokens-out FILE      write the lines 'prompt ID...' and 'generated ID...'\n"
            "  --tokens-in FILE       evaluate the prompt and generated ids of such a file instead of\n"
            "                         tokenizing and sampling (rows of --logits-out start at its\n"
            "                         'logits_from' line, 0 when absent)\n");
    fputs(cli_offload_help, out);
}

typedef struct run_args {
    const char *model, *prompt, *prompt_file, *logits_out, *tokens_out, *tokens_in;
    long n_predict;
    bool n_predict_set;
    int n_threads, n_ctx, n_batch;
    cli_offload off;
    vkllm_model_params mp; /* the offload fields, from off */
    vkllm_kv_type kv_type;
    bool ignore_eos, profile, context_shift;
    int n_keep;
    vkllm_sampler_params sp;
} run_args;

/* Returns 0, or 2 after printing a one-line usage error. */
static int parse_args(int argc, char **argv, run_args *a, bool *help) {
    memset(a, 0, sizeof *a);
    a->n_predict = 128;
    a->n_batch = 512;
    a->kv_type = VKLLM_KV_F16;
    a->sp = vkllm_sampler_default_params();
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (!strcmp(opt, "-h") || !strcmp(opt, "--help")) {
            *help = true;
            return 0;
        }
        if (!strcmp(opt, "--ignore-eos") || !strcmp(opt, "--profile")) {
            *(opt[2] == 'i' ? &a->ignore_eos : &a->profile) = true;
            continue;
        }
        if (!strcmp(opt, "--context-shift")) {
            a->context_shift = true;
            continue;
        }
        int off_rc = cli_offload_parse(&a->off, "run", argc, argv, &i);
        if (off_rc < 0) return 2;
        if (off_rc > 0) continue;
        if (i + 1 >= argc) {
            fprintf(stderr, "vkllm run: %s %s\n", opt, opt[0] == '-' ? "needs a value (or is unknown; see --help)" : "is not an option");
            return 2;
        }
        const char *val = argv[++i];
        long l = 0;
        float f = 0;
        bool ok = true;
        if (!strcmp(opt, "-m") || !strcmp(opt, "--model")) a->model = val;
        else if (!strcmp(opt, "-p") || !strcmp(opt, "--prompt")) a->prompt = val;
        else if (!strcmp(opt, "-f") || !strcmp(opt, "--file")) a->prompt_file = val;
        else if (!strcmp(opt, "--logits-out")) a->logits_out = val;
        else if (!strcmp(opt, "--tokens-out")) a->tokens_out = val;
        else if (!strcmp(opt, "--tokens-in")) a->tokens_in = val;
        else if (!strcmp(opt, "-n") || !strcmp(opt, "--n-predict")) ok = cli_parse_long(val, 0, 1 << 24, &a->n_predict), a->n_predict_set = true;
        else if (!strcmp(opt, "-t") || !strcmp(opt, "--threads")) ok = cli_parse_long(val, 1, 1024, &l), a->n_threads = (int)l;
        else if (!strcmp(opt, "-c") || !strcmp(opt, "--ctx-size")) ok = cli_parse_long(val, 1, 1 << 22, &l), a->n_ctx = (int)l;
        else if (!strcmp(opt, "-b") || !strcmp(opt, "--batch-size")) ok = cli_parse_long(val, 1, 1 << 16, &l), a->n_batch = (int)l;
        else if (!strcmp(opt, "--temp")) ok = cli_parse_float(val, 0, 100, &a->sp.temperature);
        else if (!strcmp(opt, "--top-k")) ok = cli_parse_long(val, 0, INT_MAX, &l), a->sp.top_k = (int)l;
        else if (!strcmp(opt, "--top-p")) ok = cli_parse_float(val, 0, 1, &a->sp.top_p);
        else if (!strcmp(opt, "--min-p")) ok = cli_parse_float(val, 0, 1, &a->sp.min_p);
        else if (!strcmp(opt, "--repeat-penalty")) ok = cli_parse_float(val, 0.01f, 100, &f), a->sp.repeat_penalty = f;
        else if (!strcmp(opt, "--keep")) ok = cli_parse_long(val, 0, 1 << 22, &l), a->n_keep = (int)l;
        else if (!strcmp(opt, "--repeat-last-n")) ok = cli_parse_long(val, 0, 1 << 20, &l), a->sp.repeat_last_n = (int)l;
        else if (!strcmp(opt, "--seed")) {
            uint64_t seed = 0;
            ok = cli_parse_u64(val, &seed);
            a->sp.seed = seed;
        } else if (!strcmp(opt, "--kv-type")) {
            ok = !strcmp(val, "f16") || !strcmp(val, "f32");
            a->kv_type = !strcmp(val, "f32") ? VKLLM_KV_F32 : VKLLM_KV_F16;
        } else {
            fprintf(stderr, "vkllm run: unknown option %s (see --help)\n", opt);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "vkllm run: bad value '%s' for %s\n", val, opt);
            return 2;
        }
    }
    if (!a->model) {
        fprintf(stderr, "vkllm run: -m MODEL is required (see --help)\n");
        return 2;
    }
    int sources = !!a->prompt + !!a->prompt_file + !!a->tokens_in;
    if (sources != 1) {
        fprintf(stderr, "vkllm run: give exactly one of -p PROMPT, -f FILE, --tokens-in FILE\n");
        return 2;
    }
    a->mp = vkllm_model_default_params();
    return cli_offload_apply(&a->off, "run", &a->mp) ? 2 : 0;
}

/* Parses "prompt ID ..." / "generated ID ..." (or "greedy ID ...") / "logits_from N" lines; others
 * are ignored. */
typedef struct token_file {
    int32_t *prompt, *generated;
    int n_prompt, n_generated, logits_from;
} token_file;

static int parse_ids(char *s, int32_t **out, int *n) {
    int cap = 0;
    *n = 0;
    for (char *tok = strtok(s, " \t\r\n"); tok; tok = strtok(NULL, " \t\r\n")) {
        long v;
        if (!cli_parse_long(tok, 0, INT32_MAX, &v)) return -1;
        if (*n == cap) {
            int32_t *p = realloc(*out, sizeof **out * (size_t)(cap = cap ? cap * 2 : 64));
            if (!p) return -1;
            *out = p;
        }
        (*out)[(*n)++] = (int32_t)v;
    }
    return 0;
}

static int read_token_file(const char *path, token_file *tf) {
    size_t len;
    vkl_error err = {{0}};
    char *text = cli_read_file(path, &len, &err);
    if (!text) {
        fprintf(stderr, "vkllm run: %s\n", err.msg);
        return -1;
    }
    int rc = 0;
    for (char *line = text, *next; line && line < text + len && rc == 0; line = next) {
        char *nl = memchr(line, '\n', (size_t)(text + len - line));
        next = nl ? nl + 1 : NULL;
        if (nl) *nl = 0;
        long v;
        if (!strncmp(line, "prompt ", 7)) rc = parse_ids(line + 7, &tf->prompt, &tf->n_prompt);
        else if (!strncmp(line, "generated ", 10)) rc = parse_ids(line + 10, &tf->generated, &tf->n_generated);
        else if (!strncmp(line, "greedy ", 7)) rc = parse_ids(line + 7, &tf->generated, &tf->n_generated);
        else if (!strncmp(line, "generated", 9) && !line[9]) tf->n_generated = 0;
        else if (!strncmp(line, "logits_from ", 12)) {
            if (!cli_parse_long(line + 12, 0, INT32_MAX, &v)) rc = -1;
            tf->logits_from = (int)v;
        }
    }
    free(text);
    if (rc || tf->n_prompt < 1) {
        fprintf(stderr, "vkllm run: %s: expected a line 'prompt ID ID ...' of token ids%s\n", path,
                rc ? " (bad id)" : "");
        return -1;
    }
    return 0;
}

static void progress_bar(float frac, void *user) {
    int width = 40, filled = (int)(frac * (float)width + 0.5f);
    fprintf(stderr, "\rloading [%.*s%*s] %3d%%", filled, "########################################", width - filled, "",
            (int)(frac * 100.0f + 0.5f));
    if (frac >= 1.0f) fputc('\n', stderr);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Time per op kind since the last call (divided by n passes), against the wall time. */
static void print_profile(vkllm_model *m, const char *what, int n, double wall_s) {
    vkllm_op_profile ops[16];
    int k = vkllm_model_profile(m, ops, 16, true);
    double total = 0;
    for (int i = 0; i < k; i++) total += ops[i].seconds;
    fprintf(stderr, "profile, %s: %.3f ms in ops of %.3f ms wall:", what, total * 1e3 / n, wall_s * 1e3 / n);
    for (int i = 0; i < k; i++)
        fprintf(stderr, " %s %.3f ms (%.0f%%)", ops[i].op, ops[i].seconds * 1e3 / n,
                total > 0 ? 100.0 * ops[i].seconds / total : 0.0);
    fputc('\n', stderr);
}

typedef struct run_state {
    run_args a;
    vkllm_model *m;
    vkllm_context *c;
    vkllm_sampler *s;
    vkllm_detok *detok;
    FILE *logits_fp;
    int32_t *prompt, *generated;
    int n_prompt, n_generated;
    token_file tf;
    char *text;
    /* --context-shift: the ids whose K/V rows are in the cache, and how many of them are kept */
    int32_t *ctx_tokens;
    int n_ctx_tokens, n_keep_tokens, n_shifts;
} run_state;

static int write_rows(run_state *st, int first_row, int n_rows) {
    int n_vocab = vkllm_model_n_vocab(st->m);
    for (int r = first_row; r < n_rows; r++) {
        const float *row = vkllm_logits(st->c, r);
        if (!row || fwrite(row, sizeof(float), (size_t)n_vocab, st->logits_fp) != (size_t)n_vocab) {
            fprintf(stderr, "vkllm run: cannot write %s\n", st->a.logits_out);
            return -1;
        }
    }
    return 0;
}

/* Evaluates the prompt: passes of n_batch, keeping every row when logits are written. */
static int eval_prompt(run_state *st, int logits_from) {
    vkllm_error err = {{0}};
    if (!st->logits_fp) {
        if (vkllm_eval(st->c, st->prompt, st->n_prompt, false, &err)) goto fail;
        return 0;
    }
    int nb = vkllm_n_batch(st->c);
    for (int i = 0; i < st->n_prompt; i += nb) {
        int n = st->n_prompt - i < nb ? st->n_prompt - i : nb;
        bool want = i + n > logits_from;
        if (vkllm_eval(st->c, st->prompt + i, n, want, &err)) goto fail;
        if (want && write_rows(st, logits_from > i ? logits_from - i : 0, n)) return -1;
    }
    return 0;
fail:
    fprintf(stderr, "vkllm run: %s\n", err.msg);
    return -1;
}

static int emit(run_state *st, int32_t id) {
    char buf[4096];
    int w = vkllm_detok_push(st->detok, id, buf, sizeof buf);
    if (w < 0) return -1;
    fwrite(buf, 1, (size_t)w, stdout);
    fflush(stdout);
    return 0;
}

/* --context-shift: keeps the first n_keep_tokens ids and the newer half of the rest, and rebuilds
 * the KV cache by evaluating those ids again as one batch. Recomputing is exact and works the same
 * on every backend; it costs one prompt pass per shift (about every n_ctx/2 tokens), where
 * llama.cpp instead rotates the cached keys to their new positions in place. */
static int context_shift(run_state *st, vkllm_error *err) {
    int n_past = st->n_ctx_tokens, n_keep = st->n_keep_tokens;
    int n_discard = (n_past - n_keep) / 2;
    memmove(st->ctx_tokens + n_keep, st->ctx_tokens + n_keep + n_discard,
            sizeof *st->ctx_tokens * (size_t)(n_past - n_keep - n_discard));
    st->n_ctx_tokens = n_past - n_discard;
    if (vkllm_kv_truncate(st->c, 0, err) || vkllm_eval(st->c, st->ctx_tokens, st->n_ctx_tokens, false, err))
        return -1;
    st->n_shifts++;
    return 0;
}

static int generate(run_state *st) {
    vkllm_error err = {{0}};
    bool replay = st->a.tokens_in != NULL;
    long n_gen = replay ? st->tf.n_generated : st->a.n_predict;
    if (replay && st->a.n_predict_set && st->a.n_predict < n_gen) n_gen = st->a.n_predict;
    st->generated = malloc(sizeof *st->generated * (size_t)(n_gen > 0 ? n_gen : 1));
    if (st->a.context_shift && st->generated) {
        st->ctx_tokens = malloc(sizeof *st->ctx_tokens * (size_t)vkllm_n_ctx(st->c));
        if (st->ctx_tokens) memcpy(st->ctx_tokens, st->prompt, sizeof *st->prompt * (size_t)st->n_prompt);
        st->n_ctx_tokens = st->n_prompt;
    }
    if (!st->generated || (st->a.context_shift && !st->ctx_tokens)) {
        fprintf(stderr, "vkllm run: out of memory\n");
        return -1;
    }
    for (long i = 0; i < n_gen; i++) {
        int32_t next = replay ? st->tf.generated[i] : vkllm_sample(st->s, vkllm_logits(st->c, -1));
        if (!replay && !st->a.ignore_eos && vkllm_token_is_eog(st->m, next)) break;
        st->generated[st->n_generated++] = next;
        if (!replay) vkllm_sampler_accept(st->s, next);
        if (emit(st, next)) {
            fprintf(stderr, "vkllm run: token id %d is out of range\n", next);
            return -1;
        }
        if (i + 1 == n_gen) break; /* the last token is not fed back */
        if (vkllm_n_past(st->c) >= vkllm_n_ctx(st->c)) {
            if (!st->a.context_shift) {
                fprintf(stderr, "\nvkllm run: context full (%d tokens)\n", vkllm_n_ctx(st->c));
                break;
            }
            if (context_shift(st, &err)) {
                fprintf(stderr, "\nvkllm run: context shift: %s\n", err.msg);
                return -1;
            }
        }
        if (vkllm_eval(st->c, &next, 1, false, &err)) {
            fprintf(stderr, "\nvkllm run: %s\n", err.msg);
            return -1;
        }
        if (st->ctx_tokens) st->ctx_tokens[st->n_ctx_tokens++] = next;
        if (st->logits_fp && write_rows(st, 0, 1)) return -1;
    }
    char buf[64];
    int w = vkllm_detok_flush(st->detok, buf, sizeof buf);
    if (w > 0) fwrite(buf, 1, (size_t)w, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    return 0;
}

static int write_tokens(const run_state *st) {
    FILE *fp = fopen(st->a.tokens_out, "w");
    if (!fp) {
        fprintf(stderr, "vkllm run: cannot create %s\n", st->a.tokens_out);
        return -1;
    }
    fprintf(fp, "prompt");
    for (int i = 0; i < st->n_prompt; i++) fprintf(fp, " %d", st->prompt[i]);
    fprintf(fp, "\ngenerated");
    for (int i = 0; i < st->n_generated; i++) fprintf(fp, " %d", st->generated[i]);
    fprintf(fp, "\n");
    if (fclose(fp)) {
        fprintf(stderr, "vkllm run: cannot write %s\n", st->a.tokens_out);
        return -1;
    }
    return 0;
}

static int run(run_state *st) {
    run_args *a = &st->a;
    vkllm_error err = {{0}};
    size_t len = 0;
    vkl_error rerr = {{0}};
    if (a->prompt_file && !(st->text = cli_read_file(a->prompt_file, &len, &rerr))) {
        fprintf(stderr, "vkllm run: %s\n", rerr.msg);
        return 1;
    }
    if (a->tokens_in && read_token_file(a->tokens_in, &st->tf)) return 1;

    double t0 = now_s();
    vkllm_model_params mp = a->mp;
    mp.n_threads = a->n_threads;
    mp.profile = a->profile;
    mp.n_ctx = a->n_ctx;
    mp.n_batch = a->n_batch;
    mp.kv_type = a->kv_type;
    if (cli_offload_check_devices(&a->off, "run", &mp) ||
        cli_offload_print_plan(&a->off, "run", a->model, &mp, stderr, false))
        return 1;
    if (isatty(STDERR_FILENO)) mp.progress = progress_bar;
    st->m = vkllm_model_load(a->model, &mp, &err);
    if (!st->m) {
        fprintf(stderr, "vkllm run: %s\n", err.msg);
        return 1;
    }
    vkllm_context_params cp = vkllm_context_default_params();
    cp.n_ctx = a->n_ctx;
    cp.n_batch = a->n_batch;
    cp.kv_type = a->kv_type;
    st->c = vkllm_context_create(st->m, &cp, &err);
    st->s = st->c ? vkllm_sampler_create(st->m, &a->sp, &err) : NULL;
    st->detok = st->s ? vkllm_detok_create(st->m, &err) : NULL;
    if (!st->detok) {
        fprintf(stderr, "vkllm run: %s\n", err.msg);
        return 1;
    }
    double load_s = now_s() - t0;

    if (a->tokens_in) {
        st->prompt = st->tf.prompt, st->n_prompt = st->tf.n_prompt;
        st->tf.prompt = NULL;
    } else {
        const char *text = a->prompt ? a->prompt : st->text;
        if (a->prompt) len = strlen(a->prompt);
        int cap = (int)(len < INT_MAX / 2 - 16 ? len + 16 : INT_MAX / 2);
        st->prompt = malloc(sizeof *st->prompt * (size_t)cap);
        st->n_prompt = st->prompt ? vkllm_tokenize(st->m, text, len, true, st->prompt, cap, &err) : -1;
        if (st->n_prompt < 0) {
            fprintf(stderr, "vkllm run: %s\n", st->prompt ? err.msg : "out of memory");
            return 1;
        }
        if (st->n_prompt == 0) {
            fprintf(stderr, "vkllm run: the prompt has no tokens\n");
            return 1;
        }
    }
    for (int i = 0; i < st->n_prompt; i++) {
        if (st->prompt[i] >= vkllm_model_n_vocab(st->m)) {
            fprintf(stderr, "vkllm run: prompt token id %d is out of range (vocabulary of %d)\n", st->prompt[i],
                    vkllm_model_n_vocab(st->m));
            return 1;
        }
    }
    if (st->n_prompt > vkllm_n_ctx(st->c)) {
        fprintf(stderr, "vkllm run: the prompt is %d tokens, longer than the context (%d tokens; see -c)\n",
                st->n_prompt, vkllm_n_ctx(st->c));
        return 1;
    }
    if (a->context_shift) {
        bool bos = vkllm_token_bos(st->m) >= 0 && st->prompt[0] == vkllm_token_bos(st->m);
        st->n_keep_tokens = bos + a->n_keep < st->n_prompt ? bos + a->n_keep : st->n_prompt;
        if (st->n_keep_tokens > vkllm_n_ctx(st->c) - 2) {
            fprintf(stderr, "vkllm run: --context-shift keeping %d tokens leaves no room in a context of %d (see --keep, -c)\n",
                    st->n_keep_tokens, vkllm_n_ctx(st->c));
            return 1;
        }
    }
    if (a->logits_out && !(st->logits_fp = fopen(a->logits_out, "wb"))) {
        fprintf(stderr, "vkllm run: cannot create %s\n", a->logits_out);
        return 1;
    }
    if (!a->tokens_in) {
        for (int i = 0; i < st->n_prompt; i++) vkllm_sampler_accept(st->s, st->prompt[i]);
        fwrite(a->prompt ? a->prompt : st->text, 1, len, stdout);
        fflush(stdout);
    }
    double t1 = now_s();
    if (eval_prompt(st, a->tokens_in ? st->tf.logits_from : 0)) return 1;
    double t2 = now_s();
    if (a->profile) print_profile(st->m, "prompt", 1, t2 - t1);
    if (generate(st)) return 1;
    double prompt_s = t2 - t1, gen_s = now_s() - t2;
    if (a->profile && st->n_generated > 1) print_profile(st->m, "per generated token", st->n_generated - 1, gen_s);
    if (st->logits_fp) {
        int rc = fclose(st->logits_fp);
        st->logits_fp = NULL;
        if (rc) {
            fprintf(stderr, "vkllm run: cannot write %s\n", a->logits_out);
            return 1;
        }
    }
    if (a->tokens_out && write_tokens(st)) return 1;

    fprintf(stderr, "load: %.0f ms | prompt: %d tokens, %.1f tok/s | generation: %d tokens, %.1f tok/s | %d threads",
            load_s * 1e3, st->n_prompt, st->n_prompt / prompt_s, st->n_generated,
            gen_s > 0 ? st->n_generated / gen_s : 0.0, vkllm_model_n_threads(st->m));
    int n_layer = vkllm_model_n_layer(st->m), n_gpu = vkllm_model_n_gpu_layers(st->m);
    if (vkllm_model_gpu_name(st->m))
        fprintf(stderr, " | gpu: %s, %d/%d layers%s", vkllm_model_gpu_name(st->m), n_gpu > n_layer ? n_layer : n_gpu,
                n_layer, n_gpu > n_layer ? " + output" : "");
    uint64_t pred = 0, used = 0, p1, u1;
    for (int g = 0; vkllm_model_gpu_memory(st->m, g, &p1, &u1) == 0; g++) pred += p1, used += u1;
    if (used) fprintf(stderr, " | device memory %.0f MiB (plan %.0f MiB)", (double)used / 1048576, (double)pred / 1048576);
    if (st->n_shifts) fprintf(stderr, " | %d context shifts", st->n_shifts);
    fputc('\n', stderr);
    return 0;
}

int cmd_run(int argc, char **argv) {
    run_state st;
    memset(&st, 0, sizeof st);
    bool help = false;
    int rc = parse_args(argc, argv, &st.a, &help);
    if (rc) return rc;
    if (help) {
        usage(stdout);
        return 0;
    }
    rc = run(&st);
    if (st.logits_fp) fclose(st.logits_fp);
    vkllm_detok_free(st.detok);
    vkllm_sampler_free(st.s);
    vkllm_context_free(st.c);
    vkllm_model_free(st.m);
    free(st.prompt);
    free(st.generated);
    free(st.tf.prompt);
    free(st.tf.generated);
    free(st.text);
    free(st.ctx_tokens);
    return rc;
}
