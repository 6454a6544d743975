/* The generation options of run and chat (see cli_opts.h). */
#include "cli_opts.h"

#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_args.h"
#include "gguf.h"
#include "model.h"

int cli_verbosity = CLI_LOG_INFO;

typedef enum opt_kind { K_TRUE, K_FALSE, K_INT, K_FLOAT, K_STR, K_SEED, K_KV, K_REVERSE, K_THREADS_BATCH } opt_kind;

typedef struct cli_opt {
    const char *names; /* "-n, --n-predict, --predict" */
    const char *arg;   /* the value's name; NULL for a flag */
    opt_kind kind;
    unsigned cmds;
    size_t off; /* of the field in cli_gen */
    double lo, hi;
    const char *help;
} cli_opt;

#define F(field) offsetof(cli_gen, field)
#define BOTH (CLI_RUN | CLI_CHAT)

/* One group of the --help text: its title, then its options. */
typedef struct opt_group {
    const char *title;
    const cli_opt *opts;
    size_t n;
} opt_group;

static const cli_opt common_opts[] = {
    {"-m, --model", "FNAME", K_STR, BOTH, F(model), 0, 0, "the GGUF model"},
    {"-t, --threads", "N", K_INT, BOTH, F(n_threads), 1, 1024, "CPU threads (default: the physical cores)"},
    {"-tb, --threads-batch", "N", K_THREADS_BATCH, BOTH, F(n_threads_batch), 1, 1024,
     "threads for the prompt: vkllm has one pool for the prompt and generation, so -tb alone sets it and -t "
     "wins when both are given"},
    {"-c, --ctx-size", "N", K_INT, BOTH, F(n_ctx), 0, 1 << 22,
     "context positions (default: min(training context, 4096); 0 = the training context)"},
    {"-b, --batch-size", "N", K_INT, BOTH, F(n_batch), 1, 1 << 16, "prompt tokens per forward pass (default 512)"},
    {"-n, --n-predict, --predict", "N", K_INT, BOTH, F(n_predict), -1, 1 << 24,
     "tokens to generate (run: default 128; chat: per reply, default 256; -1 = until the end of generation "
     "or the context is full)"},
    {"--keep", "N", K_INT, CLI_RUN, F(n_keep), 0, 1 << 22, "prompt tokens after BOS kept by --context-shift (default 0)"},
    {"--kv-type, -ctk", "TYPE", K_KV, BOTH, F(kv_f32), 0, 0, "KV cache type: f16 (default) or f32"},
    {"--no-warmup", NULL, K_TRUE, BOTH, F(no_warmup), 0, 0,
     "skip the warm-up pass (one-time setup is then timed with the prompt)"},
};

static const cli_opt prompt_opts[] = {
    {"-p, --prompt", "PROMPT", K_STR, BOTH, F(prompt), 0, 0, "the prompt (chat: the first message)"},
    {"-f, --file", "FNAME", K_STR, BOTH, F(prompt_file), 0, 0,
     "read the prompt from a file (one trailing newline removed; chat: the first message)"},
    {"-e, --escape", NULL, K_TRUE, BOTH, F(flag_escape), 0, 0,
     "turn \\n \\r \\t \\' \\\" \\\\ \\xNN in -p, -r, -sys into those characters (default)"},
    {"--no-escape", NULL, K_TRUE, BOTH, F(no_escape), 0, 0, "take -p, -r, -sys literally"},
    {"--no-display-prompt", NULL, K_TRUE, CLI_RUN, F(no_display_prompt), 0, 0, "do not print the prompt"},
    {"-r, --reverse-prompt", "TEXT", K_REVERSE, BOTH, 0, 0, 0,
     "stop generating when the output ends with TEXT (repeatable, up to 16)"},
    {"--ignore-eos", NULL, K_TRUE, CLI_RUN, F(ignore_eos), 0, 0, "keep generating after the end-of-sequence token"},
    {"--context-shift", NULL, K_TRUE, CLI_RUN, F(context_shift), 0, 0,
     "when the context is full, keep BOS + --keep prompt tokens and the newer half of the rest, and go on "
     "(default: stop there)"},
    {"-sys, --system-prompt, --system", "TEXT", K_STR, CLI_CHAT, F(system), 0, 0,
     "a system message opening the conversation"},
    {"--chat-template, --template", "NAME", K_STR, CLI_CHAT, F(chat_template), 0, 0,
     "chat format (default: from the model's tokenizer.chat_template, else 'plain'); see below"},
};

static const cli_opt sampling_opts[] = {
    {"-s, --seed", "SEED", K_SEED, BOTH, 0, -1, 0, "sampling seed (default -1 = random; the seed used is printed)"},
    {"--temp, --temperature", "T", K_FLOAT, BOTH, F(sp.temperature), 0, 100, "temperature, 0 = greedy (default 0.8)"},
    {"--top-k", "N", K_INT, BOTH, F(sp.top_k), 0, INT_MAX, "top-k sampling (default 40, 0 = off)"},
    {"--top-p", "P", K_FLOAT, BOTH, F(sp.top_p), 0, 1, "top-p sampling (default 0.95, 1 = off)"},
    {"--min-p", "P", K_FLOAT, BOTH, F(sp.min_p), 0, 1, "min-p sampling (default 0.05, 0 = off)"},
    {"--repeat-penalty", "N", K_FLOAT, BOTH, F(sp.repeat_penalty), 0.01, 100,
     "penalize repeated tokens (default 1.0 = off)"},
    {"--repeat-last-n", "N", K_INT, BOTH, F(sp.repeat_last_n), 0, 1 << 20,
     "tokens the penalty looks back on (default 64)"},
};

static const cli_opt output_opts[] = {
    {"--profile", NULL, K_TRUE, CLI_RUN, F(profile), 0, 0, "print the time per op kind (prompt, per generated token)"},
    {"--logits-out", "FNAME", K_STR, CLI_RUN, F(logits_out), 0, 0,
     "write the f32 logits of every evaluated position (n_vocab per row)"},
    {"--tokens-out", "FNAME", K_STR, CLI_RUN, F(tokens_out), 0, 0, "write the lines 'prompt ID...' and 'generated ID...'"},
    {"--tokens-in", "FNAME", K_STR, CLI_RUN, F(tokens_in), 0, 0,
     "evaluate the prompt and generated ids of such a file instead of tokenizing and sampling (rows of "
     "--logits-out start at its 'logits_from' line, 0 when absent)"},
};

static const opt_group groups[] = {
    {"common", common_opts, sizeof common_opts / sizeof common_opts[0]},
    {"prompt and generation", prompt_opts, sizeof prompt_opts / sizeof prompt_opts[0]},
    {"sampling", sampling_opts, sizeof sampling_opts / sizeof sampling_opts[0]},
    {"output and testing", output_opts, sizeof output_opts / sizeof output_opts[0]},
};

const char cli_log_help[] =
    "  -q, --quiet            only warnings and errors on stderr (no plan line, progress, timings)\n"
    "  -v, --verbose          also debug output: the full offload plan table\n"
    "  -lv, --log-verbosity N 1 = errors, 2 = + warnings, 3 = + info (default), 4 = + debug (1..4)\n";

void cli_gen_init(cli_gen *g, unsigned cmd) {
    memset(g, 0, sizeof *g);
    g->n_predict = cmd == CLI_CHAT ? 256 : 128;
    g->n_batch = 512;
    g->sp = vkllm_sampler_default_params();
    cli_offload_init(&g->off);
}

static bool name_matches(const char *names, const char *opt) {
    size_t n = strlen(opt);
    for (const char *p = names; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !strncmp(p, opt, n)) return true;
        if (!end) break;
        p = end + 2; /* ", " */
    }
    return false;
}

static const cli_opt *find_opt(const char *opt, unsigned cmd) {
    for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++)
        for (size_t k = 0; k < groups[gi].n; k++)
            if ((groups[gi].opts[k].cmds & cmd) && name_matches(groups[gi].opts[k].names, opt)) return &groups[gi].opts[k];
    return NULL;
}

/* The accepted values of o, for messages ("an integer in 1..1024"). */
static void describe_range(const cli_opt *o, char *buf, size_t n) {
    switch (o->kind) {
    case K_INT: case K_THREADS_BATCH: snprintf(buf, n, "an integer in %.0f..%.0f", o->lo, o->hi); break;
    case K_FLOAT: snprintf(buf, n, "a number in %g..%g", o->lo, o->hi); break;
    case K_SEED: snprintf(buf, n, "-1 (random) or an integer in 0..%llu", (unsigned long long)UINT64_MAX); break;
    case K_KV: snprintf(buf, n, "f16 or f32"); break;
    default: snprintf(buf, n, "a text"); break;
    }
}

static bool set_value(cli_gen *g, const cli_opt *o, const char *val) {
    char *field = (char *)g + o->off;
    switch (o->kind) {
    case K_INT: case K_THREADS_BATCH: return cli_parse_int(val, (int)o->lo, (int)o->hi, (int *)(void *)field);
    case K_FLOAT: return cli_parse_float(val, (float)o->lo, (float)o->hi, (float *)(void *)field);
    case K_STR: *(const char **)(void *)field = val; return true;
    case K_KV:
        if (strcmp(val, "f16") && strcmp(val, "f32")) return false;
        g->kv_f32 = !strcmp(val, "f32");
        return true;
    case K_SEED:
        if (!strcmp(val, "-1")) {
            g->sp.seed = UINT64_MAX;
            return true;
        }
        return cli_parse_u64(val, &g->sp.seed);
    case K_REVERSE:
        if (g->n_reverse == CLI_MAX_REVERSE || !*val) return false;
        g->reverse[g->n_reverse++] = val;
        return true;
    default: return false;
    }
}

void cli_unescape(char *s) {
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r != '\\' || !r[1]) {
            *w++ = *r;
            continue;
        }
        char c = *++r, hex[3] = {0};
        if (c == 'n') *w++ = '\n';
        else if (c == 'r') *w++ = '\r';
        else if (c == 't') *w++ = '\t';
        else if (c == '\'' || c == '"' || c == '\\') *w++ = c;
        else if (c == 'x' && r[1] && r[2] && strchr("0123456789abcdefABCDEF", r[1]) &&
                 strchr("0123456789abcdefABCDEF", r[2])) {
            hex[0] = r[1], hex[1] = r[2];
            *w++ = (char)strtol(hex, NULL, 16);
            r += 2;
        } else {
            *w++ = '\\';
            *w++ = c;
        }
    }
    *w = 0;
}

int cli_log_parse(const char *cmd, int argc, char **argv, int *i) {
    const char *opt = argv[*i];
    if (!strcmp(opt, "-q") || !strcmp(opt, "--quiet") || !strcmp(opt, "--log-disable")) {
        cli_verbosity = CLI_LOG_WARN;
        return 1;
    }
    if (!strcmp(opt, "-v") || !strcmp(opt, "--verbose") || !strcmp(opt, "--log-verbose")) {
        cli_verbosity = CLI_LOG_DEBUG;
        return 1;
    }
    if (strcmp(opt, "-lv") && strcmp(opt, "--log-verbosity") && strcmp(opt, "--verbosity")) return 0;
    if (*i + 1 >= argc || !cli_parse_int(argv[*i + 1], 1, 4, &cli_verbosity)) {
        fprintf(stderr, "vkllm %s: bad value '%s' for %s (an integer in 1..4)\n", cmd, *i + 1 < argc ? argv[*i + 1] : "",
                opt);
        return -1;
    }
    ++*i;
    return 1;
}

int cli_gen_parse(cli_gen *g, unsigned cmd, int argc, char **argv) {
    const char *name = cmd == CLI_RUN ? "run" : "chat";
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (!strcmp(opt, "-h") || !strcmp(opt, "--help")) return 1;
        int rc = cli_log_parse(name, argc, argv, &i);
        if (rc == 0) rc = cli_offload_parse(&g->off, name, argc, argv, &i);
        if (rc < 0) return 2;
        if (rc > 0) continue;
        const cli_opt *o = find_opt(opt, cmd);
        if (!o) {
            fprintf(stderr, "vkllm %s: %s %s\n", name, opt,
                    opt[0] == '-' ? "is an unknown option (see --help)" : "is not an option (see --help)");
            return 2;
        }
        if (!o->arg) {
            *(bool *)(void *)((char *)g + o->off) = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "vkllm %s: %s needs a value (see --help)\n", name, opt);
            return 2;
        }
        const char *val = argv[++i];
        if (!set_value(g, o, val)) {
            char range[96];
            describe_range(o, range, sizeof range);
            fprintf(stderr, "vkllm %s: bad value '%s' for %s (%s%s)\n", name, val, opt,
                    o->kind == K_REVERSE && *val ? "at most 16 of them, each " : "", range);
            return 2;
        }
        if (o->off == F(n_predict) && o->kind == K_INT) g->n_predict_set = true;
        if (o->off == F(n_ctx) && o->kind == K_INT) g->n_ctx_set = true;
    }
    if (g->flag_escape && g->no_escape) {
        fprintf(stderr, "vkllm %s: give either -e or --no-escape\n", name);
        return 2;
    }
    if (!g->no_escape) {
        /* argv strings are writable (C11 5.1.2.2.1) */
        if (g->prompt) cli_unescape((char *)(uintptr_t)g->prompt);
        if (g->system) cli_unescape((char *)(uintptr_t)g->system);
        for (int k = 0; k < g->n_reverse; k++) cli_unescape((char *)(uintptr_t)g->reverse[k]);
    }
    if (!g->model) {
        fprintf(stderr, "vkllm %s: -m MODEL is required (see --help)\n", name);
        return 2;
    }
    if (g->n_threads_batch && g->n_threads && g->n_threads_batch != g->n_threads && cli_verbosity >= CLI_LOG_WARN)
        fprintf(stderr, "vkllm %s: warning: one thread pool serves the prompt and generation: -t %d, -tb %d ignored\n",
                name, g->n_threads, g->n_threads_batch);
    if (g->n_threads_batch && !g->n_threads) g->n_threads = g->n_threads_batch;
    g->mp = vkllm_model_default_params();
    return cli_offload_apply(&g->off, name, &g->mp) ? 2 : 0;
}

/* Prints text wrapped at 100 columns, continuation lines indented by indent. */
static void print_wrapped(FILE *out, const char *text, int col, int indent) {
    const char *p = text;
    while (*p) {
        const char *sp = strchr(p, ' ');
        int wlen = sp ? (int)(sp - p) : (int)strlen(p);
        if (col + 1 + wlen > 100 && col > indent) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
        } else if (p != text) {
            fputc(' ', out), col++;
        }
        fwrite(p, 1, (size_t)wlen, out);
        col += wlen;
        p += wlen;
        while (*p == ' ') p++;
    }
    fputc('\n', out);
}

void cli_gen_help(FILE *out, unsigned cmd) {
    for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++) {
        fprintf(out, "\n----- %s -----\n\n", groups[gi].title);
        for (size_t k = 0; k < groups[gi].n; k++) {
            const cli_opt *o = &groups[gi].opts[k];
            if (!(o->cmds & cmd)) continue;
            char head[96], range[96] = "";
            snprintf(head, sizeof head, "  %s%s%s", o->names, o->arg ? " " : "", o->arg ? o->arg : "");
            if (o->kind == K_INT || o->kind == K_FLOAT || o->kind == K_THREADS_BATCH) {
                char r[80];
                describe_range(o, r, sizeof r);
                snprintf(range, sizeof range, " [%s]", strchr(r, ' ') + 1);
            }
            char text[512];
            snprintf(text, sizeof text, "%s%s", o->help, range);
            int col = fprintf(out, "%-36s", head);
            if (col > 36) fprintf(out, "\n%36s", ""), col = 36;
            print_wrapped(out, text, col, 36);
        }
    }
    fprintf(out, "\n----- offload -----\n\n");
    fputs(cli_offload_help, out);
    fprintf(out, "\n----- logging -----\n\n");
    fputs(cli_log_help, out);
}

char *cli_gen_prompt_text(const cli_gen *g, const char *cmd, size_t *len) {
    vkl_error err = {{0}};
    if (g->prompt) {
        *len = strlen(g->prompt);
        char *s = malloc(*len + 1);
        if (!s) fprintf(stderr, "vkllm %s: out of memory\n", cmd);
        else memcpy(s, g->prompt, *len + 1);
        return s;
    }
    char *s = cli_read_file(g->prompt_file, len, &err);
    if (!s) {
        fprintf(stderr, "vkllm %s: %s\n", cmd, err.msg);
        return NULL;
    }
    if (*len && s[*len - 1] == '\n') (*len)--;
    return s;
}

int cli_ctx_train(const char *path) {
    vkl_error err = {{0}};
    gguf_file *f = gguf_open(path, &err);
    vkl_hparams hp;
    int n = f && vkl_hparams_read(f, &hp, &err) == 0 ? hp.n_ctx_train : 0;
    gguf_close(f);
    return n;
}

int cli_check_model(const char *cmd, const char *path) {
    vkllm_error err = {{0}};
    if (vkllm_model_check(path, &err) == 0) return 0;
    fprintf(stderr, "vkllm %s: %s\n", cmd, err.msg);
    return -1;
}

void cli_warn_threads(const char *cmd, int t) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (t > 0 && cores > 0 && t > cores && cli_verbosity >= CLI_LOG_WARN)
        fprintf(stderr, "vkllm %s: warning: -t %d is more threads than this machine's %ld cores (slower, not faster)\n",
                cmd, t, cores);
}

int cli_gen_check_model(cli_gen *g, const char *cmd) {
    if (cli_check_model(cmd, g->model)) return -1;
    int train = cli_ctx_train(g->model);
    if (g->n_ctx_set && g->n_ctx == 0) g->n_ctx = train;
    if (train > 0 && g->n_ctx > train && cli_verbosity >= CLI_LOG_WARN)
        fprintf(stderr, "vkllm %s: warning: -c %d is beyond the model's training context (%d): quality degrades past "
                "it\n", cmd, g->n_ctx, train);
    cli_warn_threads(cmd, g->n_threads);
    return 0;
}

volatile int cli_interrupted;

static void on_sigint(int sig) {
    if (cli_interrupted) { /* a second Ctrl-C before the first was handled: the default action */
        signal(sig, SIG_DFL);
        raise(sig);
    }
    cli_interrupted = 1;
}

void cli_sigint_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* On a terminal a bar redrawn in place; otherwise a plain line per quarter, once loading has taken
 * a second (small models load silently). */
static void progress(float frac, void *user) {
    cli_progress *p = user;
    if (p->tty) {
        int width = 40, filled = (int)(frac * (float)width + 0.5f);
        fprintf(stderr, "\rloading [%.*s%*s] %3d%%", filled, "########################################",
                width - filled, "", (int)(frac * 100.0f + 0.5f));
        if (frac >= 1.0f) fputc('\n', stderr);
        return;
    }
    int quarter = (int)(frac * 4.0f);
    if (quarter > p->last_quarter && cli_now() - p->t0 >= 1.0) {
        fprintf(stderr, "loading: %d%%\n", quarter * 25);
        p->last_quarter = quarter;
    }
}

void cli_progress_attach(cli_progress *p, vkllm_model_params *mp) {
    p->tty = isatty(STDERR_FILENO);
    p->t0 = cli_now();
    p->last_quarter = 0;
    if (cli_verbosity < CLI_LOG_INFO) return;
    mp->progress = progress;
    mp->progress_user = p;
}

int cli_load(const cli_offload *o, const char *cmd, const char *model, vkllm_model_params *mp, bool progress,
             vkllm_model **m, vkllm_context **c) {
    vkllm_error err = {{0}};
    cli_progress prog;
    *m = NULL, *c = NULL;
    if (cli_offload_check_devices(o, cmd, mp) || cli_offload_print_plan(o, cmd, model, mp, stderr, false)) return -1;
    if (progress) cli_progress_attach(&prog, mp);
    *m = vkllm_model_load(model, mp, &err);
    mp->progress = NULL, mp->progress_user = NULL; /* prog ends here */
    vkllm_context_params cp = vkllm_context_default_params();
    cp.n_ctx = mp->n_ctx;
    cp.n_batch = mp->n_batch;
    cp.kv_type = mp->kv_type;
    *c = *m ? vkllm_context_create(*m, &cp, &err) : NULL;
    if (*c) return 0;
    fprintf(stderr, "vkllm %s: %s\n", cmd, err.msg);
    return -1;
}
