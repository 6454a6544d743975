/* vkllm perplexity: llama-perplexity's measurement. The text is tokenized once (with BOS when the
 * vocabulary adds one) and cut into chunks of -c tokens; each chunk is evaluated from an empty
 * context with BOS in place of its first token, and the second half of its positions is scored.
 * --kl-divergence-base FILE also saves every scored row's log-probabilities (16 bits each);
 * --kl-divergence evaluates another model on that file's tokens and compares. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_offload.h"
#include "cli_opts.h"
#include "perplexity.h"
#include "vkllm.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: vkllm perplexity -m MODEL.gguf -f TEXT [-c 512] [-b N] [--chunks N] [options]\n"
            "       vkllm perplexity -m MODEL.gguf -f TEXT --kl-divergence-base FILE [...]\n"
            "       vkllm perplexity -m MODEL.gguf --kl-divergence-base FILE --kl-divergence [...]\n"
            "\n"
            "Perplexity as llama-perplexity measures it: the text is split into chunks of -c tokens, each\n"
            "evaluated from BOS on an empty context; the second half of each chunk is scored. Prints the\n"
            "running perplexity per chunk, then 'Final estimate: PPL = X +/- Y'.\n"
            "\n"
            "  -m, --model PATH             the GGUF model\n"
            "  -f, --file PATH              the text\n"
            "  -c, --ctx-size N             tokens per chunk (default 512)\n"
            "  -b, --batch-size N           tokens per forward pass (default: -c)\n"
            "  --chunks N                   score at most N chunks (default: all)\n"
            "  -t, --threads N              CPU threads (default: physical cores)\n"
            "  --kl-divergence-base FILE    without --kl-divergence: also save the tokens and each scored\n"
            "                               row's log-probabilities (16 bits per token) to FILE\n"
            "  --kl-divergence              evaluate MODEL on FILE's tokens (-f and -c are not needed)\n"
            "                               and report its KL divergence from the base model, the\n"
            "                               share of positions where both pick the same top token,\n"
            "                               and the perplexity ratio\n");
    fputs(cli_offload_help, out);
}

typedef struct ppl_args {
    const char *model, *text, *base;
    bool kld;
    int n_ctx, n_batch, n_chunks, n_threads;
    bool ctx_given;
    cli_offload off;
    vkllm_model_params mp;
} ppl_args;

static int parse_value(ppl_args *a, const char *opt, const char *val, bool *ok) {
    long l = 0;
    if (!strcmp(opt, "-m") || !strcmp(opt, "--model")) a->model = val;
    else if (!strcmp(opt, "-f") || !strcmp(opt, "--file")) a->text = val;
    else if (!strcmp(opt, "--kl-divergence-base")) a->base = val;
    else if (!strcmp(opt, "-c") || !strcmp(opt, "--ctx-size"))
        *ok = cli_parse_long(val, 4, 1 << 20, &l), a->n_ctx = (int)l, a->ctx_given = true;
    else if (!strcmp(opt, "-b") || !strcmp(opt, "--batch-size")) *ok = cli_parse_long(val, 1, 1 << 16, &l), a->n_batch = (int)l;
    else if (!strcmp(opt, "--chunks")) *ok = cli_parse_long(val, 1, 1 << 24, &l), a->n_chunks = (int)l;
    else if (!strcmp(opt, "-t") || !strcmp(opt, "--threads")) *ok = cli_parse_long(val, 1, 1024, &l), a->n_threads = (int)l;
    else return -1;
    return 0;
}

/* Returns 0, 1 for --help, or 2 after printing a one-line usage error. */
static int parse_args(int argc, char **argv, ppl_args *a) {
    memset(a, 0, sizeof *a);
    a->n_ctx = 512;
    a->n_chunks = 1 << 24;
    cli_offload_init(&a->off);
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (!strcmp(opt, "-h") || !strcmp(opt, "--help")) return 1;
        if (!strcmp(opt, "--kl-divergence")) {
            a->kld = true;
            continue;
        }
        int off_rc = cli_offload_parse(&a->off, "perplexity", argc, argv, &i);
        if (off_rc < 0) return 2;
        if (off_rc > 0) continue;
        if (i + 1 >= argc) {
            fprintf(stderr, "vkllm perplexity: %s %s\n", opt,
                    opt[0] == '-' ? "needs a value (or is unknown; see --help)" : "is not an option");
            return 2;
        }
        bool ok = true;
        const char *val = argv[++i];
        if (parse_value(a, opt, val, &ok)) {
            fprintf(stderr, "vkllm perplexity: unknown option %s (see --help)\n", opt);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "vkllm perplexity: bad value '%s' for %s\n", val, opt);
            return 2;
        }
    }
    const char *missing = !a->model ? "-m MODEL is required"
                          : a->kld && !a->base ? "--kl-divergence needs --kl-divergence-base FILE"
                          : !a->kld && !a->text ? "-f TEXT is required"
                                                : NULL;
    if (missing) {
        fprintf(stderr, "vkllm perplexity: %s (see --help)\n", missing);
        return 2;
    }
    if (a->kld && (a->text || a->ctx_given))
        fprintf(stderr, "vkllm perplexity: warning: with --kl-divergence the tokens and -c come from the base file; "
                        "%s ignored\n", a->text && a->ctx_given ? "-f and -c are" : a->text ? "-f is" : "-c is");
    a->mp = vkllm_model_default_params();
    return cli_offload_apply(&a->off, "perplexity", &a->mp) ? 2 : 0;
}

/* ---- the base file: "VKLLOGP1", n_ctx, n_vocab, n_chunk (u32 each), the chunks' tokens (i32),
 * then per chunk its scored rows, vkl_logprobs_size(n_vocab) bytes each. ---- */

static const char base_magic[8] = {'V', 'K', 'L', 'L', 'O', 'G', 'P', '1'};

typedef struct ppl_state {
    ppl_args a;
    vkllm_model *m;
    vkllm_context *c;
    int32_t *tokens;
    int n_tokens, n_ctx, n_chunk, n_vocab;
    bool add_bos;
    float *logits; /* the scored half of a chunk: rows first..n_ctx-1 */
    uint8_t *packed;
    FILE *base;
} ppl_state;

/* Prints "vkllm perplexity: MESSAGE" and returns 1 (the exit code). */
static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "vkllm perplexity: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

static int read_u32s(FILE *f, uint32_t *v, int n) { return fread(v, 4, (size_t)n, f) == (size_t)n ? 0 : -1; }

/* Opens the base file and reads its header and tokens; checks the file size. */
static int open_base(ppl_state *st) {
    const char *path = st->a.base;
    st->base = fopen(path, "rb");
    if (!st->base) return fail("%s: cannot open", path);
    char magic[8];
    uint32_t h[3];
    if (fread(magic, 1, 8, st->base) != 8 || memcmp(magic, base_magic, 8) || read_u32s(st->base, h, 3))
        return fail("%s: not a vkllm --kl-divergence-base file", path);
    /* bounds that keep every size below in range (at most 2^28 tokens) */
    if (h[0] < 4 || h[0] > (1u << 20) || h[1] < 1 || h[1] > (1u << 22) || h[2] < 1 ||
        (uint64_t)h[0] * h[2] > (1u << 28))
        return fail("%s: corrupt header", path);
    st->n_ctx = (int)h[0], st->n_vocab = (int)h[1], st->n_chunk = (int)h[2];
    uint64_t rows = (uint64_t)st->n_chunk * (uint64_t)(st->n_ctx - 1 - st->n_ctx / 2);
    uint64_t want = 20 + 4ull * st->n_ctx * st->n_chunk + rows * vkl_logprobs_size(st->n_vocab);
    if (fseeko(st->base, 0, SEEK_END) || (uint64_t)ftello(st->base) != want || fseeko(st->base, 20, SEEK_SET))
        return fail("%s: truncated or wrong size", path);
    st->n_tokens = st->n_ctx * st->n_chunk;
    st->tokens = malloc((size_t)st->n_tokens * sizeof *st->tokens);
    if (!st->tokens || fread(st->tokens, 4, (size_t)st->n_tokens, st->base) != (size_t)st->n_tokens)
        return fail("%s: cannot read the tokens", path);
    return 0;
}

static int load(ppl_state *st) {
    ppl_args *a = &st->a;
    vkllm_error err = {{0}};
    vkllm_model_params mp = a->mp;
    mp.n_threads = a->n_threads;
    mp.n_ctx = st->n_ctx;
    mp.n_batch = a->n_batch;
    if (cli_load(&a->off, "perplexity", a->model, &mp, false, &st->m, &st->c)) return 1;
    int32_t probe[2];
    st->add_bos = vkllm_tokenize(st->m, "", 0, true, probe, 2, &err) == 1 && vkllm_token_bos(st->m) >= 0;
    if (st->base && vkllm_model_n_vocab(st->m) != st->n_vocab)
        return fail("%s: was made with a model of another vocabulary size", a->base);
    st->n_vocab = vkllm_model_n_vocab(st->m);
    return 0;
}

static int tokenize_text(ppl_state *st) {
    vkl_error rerr = {{0}};
    vkllm_error err = {{0}};
    size_t len = 0;
    char *text = cli_read_file(st->a.text, &len, &rerr);
    if (!text) return fail("%s", rerr.msg);
    /* at most one token per byte (byte fallback), plus BOS and a leading space */
    st->tokens = len < (size_t)INT32_MAX - 16 ? malloc((len + 16) * sizeof *st->tokens) : NULL;
    int n = st->tokens ? vkllm_tokenize(st->m, text, len, true, st->tokens, (int)len + 16, &err) : INT32_MIN;
    if (!st->tokens) snprintf(err.msg, sizeof err.msg, "out of memory");
    free(text);
    if (n < 0) return fail("%s: %s", st->a.text, err.msg);
    st->n_tokens = n;
    if (n < 2 * st->n_ctx) {
        fprintf(stderr, "vkllm perplexity: %s has %d tokens; -c %d needs at least %d\n", st->a.text, n, st->n_ctx,
                2 * st->n_ctx);
        return 1;
    }
    st->n_chunk = n / st->n_ctx;
    return 0;
}

/* Evaluates chunk i from an empty context; keeps the logits of positions first..n_ctx-1. */
static int eval_chunk(ppl_state *st, int i) {
    vkllm_error err = {{0}};
    const int n_ctx = st->n_ctx, first = n_ctx / 2, nb = st->a.n_batch;
    int32_t *chunk = st->tokens + (size_t)i * n_ctx;
    const int32_t saved = chunk[0];
    if (st->add_bos) chunk[0] = vkllm_token_bos(st->m);
    int rc = vkllm_kv_truncate(st->c, 0, &err);
    for (int p = 0; !rc && p < n_ctx; p += nb) {
        const int n = n_ctx - p < nb ? n_ctx - p : nb;
        rc = vkllm_eval(st->c, chunk + p, n, true, &err);
        for (int r = 0; !rc && r < n; r++) {
            if (p + r < first) continue;
            const float *row = vkllm_logits(st->c, r);
            memcpy(st->logits + (size_t)(p + r - first) * st->n_vocab, row, (size_t)st->n_vocab * sizeof(float));
        }
    }
    chunk[0] = saved;
    return rc ? fail("%s", err.msg) : 0;
}

static int write_base_header(ppl_state *st) {
    const char *path = st->a.base;
    st->base = fopen(path, "wb");
    if (!st->base) return fail("%s: cannot create", path);
    uint32_t h[3] = {(uint32_t)st->n_ctx, (uint32_t)st->n_vocab, (uint32_t)st->n_chunk};
    size_t nt = (size_t)st->n_chunk * st->n_ctx;
    if (fwrite(base_magic, 1, 8, st->base) != 8 || fwrite(h, 4, 3, st->base) != 3 ||
        fwrite(st->tokens, 4, nt, st->base) != nt)
        return fail("%s: write failed", path);
    return 0;
}

/* The perplexity run: running values per chunk, the final estimate; saves the base rows if asked. */
static int perplexity(ppl_state *st) {
    const int first = st->n_ctx / 2, n_rows = st->n_ctx - 1 - first;
    const size_t psize = vkl_logprobs_size(st->n_vocab);
    if (st->a.base && write_base_header(st)) return 1;
    double nll = 0, nll2 = 0;
    uint64_t count = 0;
    for (int i = 0; i < st->n_chunk; i++) {
        if (eval_chunk(st, i)) return 1;
        const int32_t *next = st->tokens + (size_t)i * st->n_ctx + first + 1;
        for (int r = 0; r < n_rows; r++) {
            const float *row = st->logits + (size_t)r * st->n_vocab;
            double v = st->base ? vkl_logprobs_pack(row, st->n_vocab, next[r], st->packed)
                                : vkl_nll(row, st->n_vocab, next[r]);
            if (st->base && fwrite(st->packed, 1, psize, st->base) != psize)
                return fail("%s: write failed", st->a.base);
            nll += v, nll2 += v * v;
        }
        count += (uint64_t)n_rows;
        printf("[%d]%.4f,", i + 1, exp(nll / (double)count));
        fflush(stdout);
    }
    double ppl, unc;
    vkl_ppl_estimate(nll, nll2, count, &ppl, &unc);
    printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", ppl, unc);
    if (st->base && fclose(st->base) != 0) {
        st->base = NULL;
        return fail("%s: write failed", st->a.base);
    }
    st->base = NULL;
    return 0;
}

static void print_kld_row(int chunk, const vkl_kld_stats *s) {
    vkl_kld_report r;
    vkl_kld_summarize(s, &r);
    printf("%4d  %14.4f ± %12.4f  %10.5f ± %8.5f  %10.6f ± %8.6f  %7.3f ± %5.3f %%\n", chunk, r.ppl, r.ppl_unc,
           r.ln_ratio, r.ln_ratio_unc, r.kld, r.kld_unc, 100 * r.same_top, 100 * r.same_top_unc);
}

static int kl_divergence(ppl_state *st) {
    const int first = st->n_ctx / 2, n_rows = st->n_ctx - 1 - first;
    const size_t psize = vkl_logprobs_size(st->n_vocab);
    vkl_kld_stats s;
    memset(&s, 0, sizeof s);
    printf("chunk             PPL(Q)          ln(PPL(Q)/PPL(base))    KL divergence          same top\n");
    for (int i = 0; i < st->n_chunk; i++) {
        if (eval_chunk(st, i)) return 1;
        const int32_t *next = st->tokens + (size_t)i * st->n_ctx + first + 1;
        for (int r = 0; r < n_rows; r++) {
            if (fread(st->packed, 1, psize, st->base) != psize) return fail("%s: read failed", st->a.base);
            vkl_kld_add(&s, st->logits + (size_t)r * st->n_vocab, st->n_vocab, st->packed, next[r]);
        }
        print_kld_row(i + 1, &s);
    }
    vkl_kld_report r;
    vkl_kld_summarize(&s, &r);
    printf("\nMean PPL(Q)                : %14.6f ± %14.6f\n", r.ppl, r.ppl_unc);
    printf("Mean PPL(base)             : %14.6f ± %14.6f\n", r.ppl_base, r.ppl_base_unc);
    printf("Mean ln(PPL(Q)/PPL(base))  : %14.6f ± %14.6f\n", r.ln_ratio, r.ln_ratio_unc);
    printf("Mean PPL(Q)/PPL(base)      : %14.6f ± %14.6f\n", exp(r.ln_ratio), exp(r.ln_ratio) * r.ln_ratio_unc);
    printf("Mean    KLD: %10.6f ± %10.6f\n", r.kld, r.kld_unc);
    printf("Same top p : %7.3f ± %5.3f %%\n", 100 * r.same_top, 100 * r.same_top_unc);
    return 0;
}

static int run(ppl_state *st) {
    ppl_args *a = &st->a;
    st->n_ctx = a->n_ctx;
    if (a->kld && open_base(st)) return 1;
    if (!a->n_batch) a->n_batch = st->n_ctx;
    if (load(st) || (!a->kld && tokenize_text(st))) return 1;
    if (st->n_chunk > a->n_chunks) st->n_chunk = a->n_chunks;
    const size_t rows = (size_t)(st->n_ctx - st->n_ctx / 2);
    st->logits = malloc(rows * (size_t)st->n_vocab * sizeof(float));
    st->packed = malloc(vkl_logprobs_size(st->n_vocab));
    if (!st->logits || !st->packed) return fail("out of memory");
    fprintf(stderr, "vkllm perplexity: %d tokens, %d chunks of %d, batch %d\n", st->n_tokens, st->n_chunk,
            st->n_ctx, a->n_batch);
    return a->kld ? kl_divergence(st) : perplexity(st);
}

int cmd_perplexity(int argc, char **argv) {
    ppl_state st;
    memset(&st, 0, sizeof st);
    int rc = parse_args(argc, argv, &st.a);
    if (rc == 1) usage(stdout);
    if (rc) return rc == 1 ? 0 : rc;
    rc = run(&st);
    if (st.base) {
        fclose(st.base);
        if (!st.a.kld) unlink(st.a.base); /* an unfinished base file is useless */
    }
    free(st.logits);
    free(st.packed);
    free(st.tokens);
    vkllm_context_free(st.c);
    vkllm_model_free(st.m);
    return rc;
}
