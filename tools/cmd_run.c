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
#include "cli_opts.h"
#include "vkllm.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: vkllm run -m MODEL.gguf (-p PROMPT | -f FILE | --tokens-in FILE) [options]\n"
            "\n"
            "Generates text: the prompt is evaluated in batches, then one token at a time. Text goes to\n"
            "stdout; the timings line (load, prompt, generation rate after the first token) to stderr,\n"
            "also after Ctrl-C, which stops the generation (exit 130). Options take llama.cpp's names.\n");
    cli_gen_help(out, CLI_RUN);
}

/* Returns 0, or 2 after printing a one-line usage error. */
static int parse_args(int argc, char **argv, cli_gen *a, bool *help) {
    cli_gen_init(a, CLI_RUN);
    int rc = cli_gen_parse(a, CLI_RUN, argc, argv);
    if (rc == 1) {
        *help = true;
        return 0;
    }
    if (rc) return rc;
    int sources = !!a->prompt + !!a->prompt_file + !!a->tokens_in;
    if (sources != 1) {
        fprintf(stderr, "vkllm run: give exactly one of -p PROMPT, -f FILE, --tokens-in FILE\n");
        return 2;
    }
    return 0;
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
    cli_gen a;
    vkllm_model *m;
    vkllm_context *c;
    vkllm_sampler *s;
    vkllm_detok *detok;
    FILE *logits_fp;
    int32_t *prompt, *generated;
    int n_prompt, n_generated;
    token_file tf;
    char *text;
    size_t text_len;
    char *out;          /* the generated text (for the reverse prompts) */
    size_t out_len, out_cap;
    double t_first;     /* when the first generated token was out (its time is the prompt's) */
    bool stopped;       /* by Ctrl-C */
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

/* Appends text to the output; returns whether it now contains a reverse prompt in its new part. */
static bool output_reverse(run_state *st, const char *text, size_t len) {
    if (st->a.n_reverse == 0) return false;
    if (st->out_len + len > st->out_cap) {
        size_t cap = st->out_cap ? st->out_cap : 4096;
        while (cap < st->out_len + len) cap *= 2;
        char *p = realloc(st->out, cap);
        if (!p) return false;
        st->out = p, st->out_cap = cap;
    }
    memcpy(st->out + st->out_len, text, len);
    st->out_len += len;
    for (int k = 0; k < st->a.n_reverse; k++) {
        size_t rl = strlen(st->a.reverse[k]), from = st->out_len - len;
        from = from >= rl ? from - rl + 1 : 0;
        if (memmem(st->out + from, st->out_len - from, st->a.reverse[k], rl)) return true;
    }
    return false;
}

/* Prints the text of id; sets *stop when it completes a reverse prompt. */
static int emit(run_state *st, int32_t id, bool *stop) {
    char buf[4096];
    int w = vkllm_detok_push(st->detok, id, buf, sizeof buf);
    if (w < 0) return -1;
    fwrite(buf, 1, (size_t)w, stdout);
    fflush(stdout);
    *stop = output_reverse(st, buf, (size_t)w);
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
    long n_gen = replay ? st->tf.n_generated : st->a.n_predict < 0 ? LONG_MAX : st->a.n_predict;
    if (replay && st->a.n_predict_set && st->a.n_predict >= 0 && st->a.n_predict < n_gen) n_gen = st->a.n_predict;
    long n_alloc = n_gen < vkllm_n_ctx(st->c) ? n_gen : vkllm_n_ctx(st->c);
    st->generated = malloc(sizeof *st->generated * (size_t)(n_alloc > 0 ? n_alloc : 1));
    long cap_gen = n_alloc > 0 ? n_alloc : 1;
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
        if (cli_interrupted) {
            st->stopped = true;
            break;
        }
        int32_t next = replay ? st->tf.generated[i] : vkllm_sample(st->s, vkllm_logits(st->c, -1));
        if (!replay && !st->a.ignore_eos && vkllm_token_is_eog(st->m, next)) break;
        if (st->n_generated == cap_gen) { /* -n -1 with --context-shift: grows */
            int32_t *p = realloc(st->generated, sizeof *p * (size_t)(cap_gen *= 2));
            if (!p) {
                fprintf(stderr, "\nvkllm run: out of memory\n");
                return -1;
            }
            st->generated = p;
        }
        st->generated[st->n_generated++] = next;
        if (!replay) vkllm_sampler_accept(st->s, next);
        bool stop = false;
        if (emit(st, next, &stop)) {
            fprintf(stderr, "vkllm run: token id %d is out of range\n", next);
            return -1;
        }
        if (i == 0) st->t_first = cli_now();
        if (i + 1 == n_gen || stop) break; /* the last token is not fed back */
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

/* "load: N ms | prompt: N tokens, X tok/s | generation: N tokens, X tok/s | ..." on stderr. */
static void print_timings(const run_state *st, double load_s, double prompt_s, double gen_s) {
    if (cli_verbosity < CLI_LOG_INFO) return;
    if (st->stopped) fprintf(stderr, "\ninterrupted\n");
    fprintf(stderr, "load: %.0f ms | prompt: %d tokens, %.1f tok/s | generation: %d tokens", load_s * 1e3, st->n_prompt,
            prompt_s > 0 ? st->n_prompt / prompt_s : 0.0, st->n_generated);
    if (st->n_generated > 1 && gen_s > 0) fprintf(stderr, ", %.1f tok/s", (st->n_generated - 1) / gen_s);
    fprintf(stderr, " | %d threads", vkllm_model_n_threads(st->m));
    if (!st->a.tokens_in && st->a.sp.temperature > 0) fprintf(stderr, " | seed %llu",
                                                               (unsigned long long)vkllm_sampler_seed(st->s));
    int n_layer = vkllm_model_n_layer(st->m), n_gpu = vkllm_model_n_gpu_layers(st->m);
    if (vkllm_model_gpu_name(st->m))
        fprintf(stderr, " | gpu: %s, %d/%d layers%s", vkllm_model_gpu_name(st->m), n_gpu > n_layer ? n_layer : n_gpu,
                n_layer, n_gpu > n_layer ? " + output" : "");
    uint64_t pred = 0, used = 0, p1, u1;
    for (int g = 0; vkllm_model_gpu_memory(st->m, g, &p1, &u1) == 0; g++) pred += p1, used += u1;
    if (used) fprintf(stderr, " | device memory %.0f MiB (plan %.0f MiB)", (double)used / 1048576, (double)pred / 1048576);
    if (st->n_shifts) fprintf(stderr, " | %d context shifts", st->n_shifts);
    fputc('\n', stderr);
}

/* Loads the model and creates the context, sampler and detokenizer; the warm-up pass is part of
 * the load. Returns 0 or -1 after a message. */
static int load(run_state *st) {
    cli_gen *a = &st->a;
    vkllm_error err = {{0}};
    vkllm_model_params mp = a->mp;
    mp.n_threads = a->n_threads;
    mp.profile = a->profile;
    mp.n_ctx = a->n_ctx;
    mp.n_batch = a->n_batch;
    mp.kv_type = a->kv_f32 ? VKLLM_KV_F32 : VKLLM_KV_F16;
    if (cli_load(&a->off, "run", a->model, &mp, true, &st->m, &st->c)) return -1;
    st->s = vkllm_sampler_create(st->m, &a->sp, &err);
    st->detok = st->s ? vkllm_detok_create(st->m, &err) : NULL;
    if (!st->detok || (!a->no_warmup && vkllm_warmup(st->c, &err))) {
        fprintf(stderr, "vkllm run: %s\n", err.msg);
        return -1;
    }
    if (a->profile) vkllm_model_profile(st->m, NULL, 0, true); /* the warm-up's ops are not the prompt's */
    return 0;
}

static int run(run_state *st) {
    cli_gen *a = &st->a;
    vkllm_error err = {{0}};
    size_t len = 0;
    if (!a->tokens_in && !(st->text = cli_gen_prompt_text(a, "run", &len))) return 1;
    if (a->tokens_in && read_token_file(a->tokens_in, &st->tf)) return 1;
    if (cli_gen_check_model(a, "run")) return 1;

    double t0 = cli_now();
    if (load(st)) return 1;
    double load_s = cli_now() - t0;

    if (a->tokens_in) {
        st->prompt = st->tf.prompt, st->n_prompt = st->tf.n_prompt;
        st->tf.prompt = NULL;
    } else {
        const char *text = st->text;
        int cap = (int)(len < INT_MAX / 2 - 16 ? len + 16 : INT_MAX / 2);
        st->prompt = malloc(sizeof *st->prompt * (size_t)cap);
        st->n_prompt = st->prompt ? vkllm_tokenize_special(st->m, text, len, true, st->prompt, cap, &err) : -1;
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
        if (!a->no_display_prompt) fwrite(st->text, 1, len, stdout);
        fflush(stdout);
    }
    cli_sigint_install();
    double t1 = cli_now();
    if (eval_prompt(st, a->tokens_in ? st->tf.logits_from : 0)) return 1;
    double t2 = cli_now();
    if (a->profile) print_profile(st->m, "prompt", 1, t2 - t1);
    st->t_first = t2;
    if (generate(st)) return 1;
    /* The first generated token comes from the prompt's logits: the rate is over the ones after it. */
    double prompt_s = t2 - t1, gen_s = cli_now() - st->t_first;
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

    print_timings(st, load_s, prompt_s, gen_s);
    return st->stopped ? 130 : 0;
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
    free(st.out);
    free(st.ctx_tokens);
    return rc;
}
