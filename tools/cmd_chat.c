/* vkllm chat: an interactive conversation on stdin/stdout. Each turn formats the whole
 * conversation with the model's chat template, tokenizes it, and evaluates only the tokens past
 * the prefix already in the KV cache, so earlier turns are never recomputed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "cli.h"
#include "cli_args.h"
#include "cli_offload.h"
#include "gguf.h"
#include "tokenizer.h"
#include "vkllm.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: vkllm chat -m MODEL.gguf [options]\n"
            "\n"
            "Chats on stdin/stdout: one user message per line, the reply streamed after it. Lines\n"
            "'/reset' (forget the conversation), '/exit' or '/quit' (or end of input) are commands.\n"
            "Works piped: reads lines until end of input.\n"
            "\n"
            "  -m, --model PATH       the GGUF model\n"
            "  -t, --threads N        CPU threads (default: physical cores)\n"
            "  -c, --ctx-size N       context positions (default: min(training context, 4096))\n"
            "  -n, --n-predict N      most tokens per reply (default 256)\n"
            "  --temp T               temperature, 0 = greedy (default 0.8)\n"
            "  --top-k K              (default 40, 0 = off)\n"
            "  --top-p P              (default 0.95, 1 = off)\n"
            "  --min-p M              (default 0.05, 0 = off)\n"
            "  --repeat-penalty R     (default 1.0 = off)\n"
            "  --seed S               sampling seed (default: random)\n"
            "  --system TEXT          a system message opening the conversation\n"
            "  --template NAME        chat format (default: detected from the model's\n"
            "                         tokenizer.chat_template, else 'plain'); one of:\n"
            "                        ");
    for (int t = 0; t < VKL_CHAT_TEMPLATE_COUNT; t++) fprintf(out, " %s", vkl_chat_template_name((vkl_chat_template)t));
    fprintf(out, "\n");
    fputs(cli_offload_help, out);
}

typedef struct chat_args {
    const char *model, *system, *template_name;
    int n_threads, n_ctx, n_predict;
    cli_offload off;
    vkllm_model_params mp; /* the offload fields, from off */
    vkllm_sampler_params sp;
} chat_args;

/* Returns 0, 1 after --help, or 2 after printing a one-line usage error. */
static int parse_args(int argc, char **argv, chat_args *a) {
    memset(a, 0, sizeof *a);
    a->n_predict = 256;
    a->sp = vkllm_sampler_default_params();
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (!strcmp(opt, "-h") || !strcmp(opt, "--help")) return 1;
        int off_rc = cli_offload_parse(&a->off, "chat", argc, argv, &i);
        if (off_rc < 0) return 2;
        if (off_rc > 0) continue;
        if (i + 1 >= argc) {
            fprintf(stderr, "vkllm chat: %s %s\n", opt,
                    opt[0] == '-' ? "needs a value (or is unknown; see --help)" : "is not an option");
            return 2;
        }
        const char *val = argv[++i];
        bool ok = true;
        if (!strcmp(opt, "-m") || !strcmp(opt, "--model")) a->model = val;
        else if (!strcmp(opt, "--system")) a->system = val;
        else if (!strcmp(opt, "--template")) {
            a->template_name = val;
            ok = vkl_chat_template_from_name(val) >= 0;
        } else if (!strcmp(opt, "-t") || !strcmp(opt, "--threads")) ok = cli_parse_int(val, 1, 1024, &a->n_threads);
        else if (!strcmp(opt, "-c") || !strcmp(opt, "--ctx-size")) ok = cli_parse_int(val, 1, 1 << 22, &a->n_ctx);
        else if (!strcmp(opt, "-n") || !strcmp(opt, "--n-predict")) ok = cli_parse_int(val, 1, 1 << 24, &a->n_predict);
        else if (!strcmp(opt, "--temp")) ok = cli_parse_float(val, 0, 100, &a->sp.temperature);
        else if (!strcmp(opt, "--top-k")) ok = cli_parse_int(val, 0, INT32_MAX, &a->sp.top_k);
        else if (!strcmp(opt, "--top-p")) ok = cli_parse_float(val, 0, 1, &a->sp.top_p);
        else if (!strcmp(opt, "--min-p")) ok = cli_parse_float(val, 0, 1, &a->sp.min_p);
        else if (!strcmp(opt, "--repeat-penalty")) ok = cli_parse_float(val, 0.01f, 100, &a->sp.repeat_penalty);
        else if (!strcmp(opt, "--seed")) ok = cli_parse_u64(val, &a->sp.seed);
        else {
            fprintf(stderr, "vkllm chat: unknown option %s (see --help)\n", opt);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "vkllm chat: bad value '%s' for %s%s\n", val, opt,
                    a->template_name == val ? " (see --help for the names)" : "");
            return 2;
        }
    }
    if (!a->model) {
        fprintf(stderr, "vkllm chat: -m MODEL is required (see --help)\n");
        return 2;
    }
    a->mp = vkllm_model_default_params();
    return cli_offload_apply(&a->off, "chat", &a->mp) ? 2 : 0;
}

typedef struct chat_state {
    chat_args a;
    vkllm_model *m;
    vkllm_context *c;
    vkllm_sampler *s;
    vkl_tokenizer *tok; /* a second copy: the public API cannot tokenize special-token texts */
    vkl_chat_template tmpl;
    vkl_chat_msg *msgs; /* contents are malloc'd */
    size_t n_msgs, cap_msgs;
    int32_t *cached; /* the tokens in the KV cache, in order */
    int n_cached;
    int32_t *toks; /* the tokenized conversation */
    int cap_toks;
    char *reply;
    size_t reply_len, reply_cap;
} chat_state;

static void *grow(void *p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return p;
    size_t n = *cap ? *cap : 16;
    while (n < need) n *= 2;
    void *q = realloc(p, n * elem);
    if (q) *cap = n;
    return q;
}

static int add_msg(chat_state *st, const char *role, const char *text, size_t len) {
    vkl_chat_msg *msgs = grow(st->msgs, &st->cap_msgs, st->n_msgs + 1, sizeof *msgs);
    char *content = msgs ? malloc(len + 1) : NULL;
    if (msgs) st->msgs = msgs;
    if (!content) return -1;
    memcpy(content, text, len);
    content[len] = 0;
    st->msgs[st->n_msgs++] = (vkl_chat_msg){role, content};
    return 0;
}

/* Drops the messages from index keep on. */
static void drop_msgs(chat_state *st, size_t keep) {
    while (st->n_msgs > keep) free((void *)(uintptr_t)st->msgs[--st->n_msgs].content);
}

/* Forgets the conversation (the system message stays) and the KV cache. */
static int reset_conversation(chat_state *st) {
    vkllm_error err = {{0}};
    drop_msgs(st, st->a.system ? 1 : 0);
    st->n_cached = 0;
    if (vkllm_kv_truncate(st->c, 0, &err)) {
        fprintf(stderr, "vkllm chat: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* Formats and tokenizes the conversation into st->toks with the generation prompt appended.
 * Returns the token count, or -1. */
static int tokenize_conversation(chat_state *st) {
    vkl_error err = {{0}};
    char *text = vkl_chat_format(st->tmpl, st->msgs, st->n_msgs, true, &err);
    if (!text) {
        fprintf(stderr, "vkllm chat: %s\n", err.msg);
        return -1;
    }
    size_t len = strlen(text);
    int n = vkl_tokenize(st->tok, text, len, true, true, NULL, 0, &err);
    if (n >= 0) {
        size_t cap = (size_t)st->cap_toks;
        int32_t *t = grow(st->toks, &cap, (size_t)n + 1, sizeof *t);
        if (!t) {
            free(text);
            fprintf(stderr, "vkllm chat: out of memory\n");
            return -1;
        }
        st->toks = t, st->cap_toks = (int)cap;
        n = vkl_tokenize(st->tok, text, len, true, true, st->toks, st->cap_toks, &err);
    }
    free(text);
    if (n < 0) {
        fprintf(stderr, "vkllm chat: %s\n", err.msg);
        return -1;
    }
    return n;
}

/* Evaluates toks[0..n) on top of the longest prefix of it already in the KV cache. */
static int eval_new(chat_state *st, int n) {
    vkllm_error err = {{0}};
    int common = 0, seen = st->n_cached;
    while (common < n && common < st->n_cached && st->cached[common] == st->toks[common]) common++;
    if (common == n) common--; /* re-evaluate the last token: its logits are needed */
    if (vkllm_kv_truncate(st->c, common, &err) || vkllm_eval(st->c, st->toks + common, n - common, false, &err)) {
        fprintf(stderr, "vkllm chat: %s\n", err.msg);
        return -1;
    }
    memcpy(st->cached + common, st->toks + common, sizeof *st->toks * (size_t)(n - common));
    st->n_cached = n;
    for (int i = common > seen ? common : seen; i < n; i++) vkllm_sampler_accept(st->s, st->toks[i]); /* new ones */
    return 0;
}

static int append_reply(chat_state *st, const char *text, size_t len) {
    char *r = grow(st->reply, &st->reply_cap, st->reply_len + len + 1, 1);
    if (!r) return -1;
    st->reply = r;
    memcpy(r + st->reply_len, text, len);
    st->reply_len += len;
    r[st->reply_len] = 0;
    return 0;
}

/* Streams text to stdout and into the reply, leaving out the reply's leading whitespace. */
static int emit(chat_state *st, const char *text, size_t len) {
    if (st->reply_len == 0)
        while (len && (*text == ' ' || *text == '\n')) text++, len--;
    if (!len) return 0;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return append_reply(st, text, len);
}

/* Generates the reply to the conversation so far. Sets *full when the context ran out. */
static int generate(chat_state *st, bool *full) {
    vkllm_error err = {{0}};
    vkllm_detok *detok = vkllm_detok_create(st->m, &err);
    size_t bufsize = vkllm_detok_max_bytes(st->m);
    char *buf = detok ? malloc(bufsize) : NULL;
    int rc = -1;
    if (!buf) {
        fprintf(stderr, "vkllm chat: out of memory\n");
        goto done;
    }
    st->reply_len = 0;
    for (int i = 0; i < st->a.n_predict; i++) {
        int32_t next = vkllm_sample(st->s, vkllm_logits(st->c, -1));
        if (vkllm_token_is_eog(st->m, next)) break;
        vkllm_sampler_accept(st->s, next);
        int w = vkllm_detok_push(detok, next, buf, bufsize);
        if (w < 0 || emit(st, buf, (size_t)w)) {
            fprintf(stderr, "\nvkllm chat: %s\n", w < 0 ? "bad token id" : "out of memory");
            goto done;
        }
        if (i + 1 == st->a.n_predict) break; /* the last token is fed with the next turn's prompt */
        if (vkllm_n_past(st->c) >= vkllm_n_ctx(st->c)) {
            *full = true;
            break;
        }
        if (vkllm_eval(st->c, &next, 1, false, &err)) {
            fprintf(stderr, "\nvkllm chat: %s\n", err.msg);
            goto done;
        }
        st->cached[st->n_cached++] = next;
    }
    int w = vkllm_detok_flush(detok, buf, bufsize);
    if (w > 0 && emit(st, buf, (size_t)w)) goto done;
    if (!st->reply && append_reply(st, "", 0)) goto done;
    fputc('\n', stdout);
    fflush(stdout);
    rc = 0;
done:
    free(buf);
    vkllm_detok_free(detok);
    return rc;
}

/* One user message and its reply. Returns 0, or -1 on a fatal error. */
static int turn(chat_state *st, const char *line, size_t len) {
    size_t first = st->a.system ? 1 : 0;
    if (add_msg(st, "user", line, len)) goto oom;
    int n = tokenize_conversation(st);
    if (n < 0) return -1;
    /* Room for the prompt and at least one reply token; else restart from this message alone. */
    if (n >= vkllm_n_ctx(st->c) && st->n_msgs > first + 1) {
        fprintf(stderr, "vkllm chat: context full (%d tokens); conversation reset\n", vkllm_n_ctx(st->c));
        char *msg = (char *)(uintptr_t)st->msgs[--st->n_msgs].content;
        if (reset_conversation(st)) {
            free(msg);
            return -1;
        }
        st->msgs[st->n_msgs++] = (vkl_chat_msg){"user", msg};
        if ((n = tokenize_conversation(st)) < 0) return -1;
    }
    if (n >= vkllm_n_ctx(st->c)) {
        fprintf(stderr, "vkllm chat: the message needs %d tokens, more than the context holds (%d; see -c)\n", n,
                vkllm_n_ctx(st->c));
        drop_msgs(st, st->n_msgs - 1);
        return 0;
    }
    if (eval_new(st, n)) return -1;
    bool full = false;
    if (generate(st, &full)) return -1;
    if (add_msg(st, "assistant", st->reply, st->reply_len)) goto oom;
    if (full) {
        fprintf(stderr, "vkllm chat: context full (%d tokens); conversation reset\n", vkllm_n_ctx(st->c));
        return reset_conversation(st);
    }
    return 0;
oom:
    fprintf(stderr, "vkllm chat: out of memory\n");
    return -1;
}

/* Reads the model, a second tokenizer and the chat template. Returns 0 or 1. */
static int setup(chat_state *st) {
    chat_args *a = &st->a;
    vkllm_error err = {{0}};
    vkllm_model_params mp = a->mp;
    mp.n_threads = a->n_threads;
    mp.n_ctx = a->n_ctx;
    if (cli_offload_check_devices(&a->off, "chat", &mp) ||
        cli_offload_print_plan(&a->off, "chat", a->model, &mp, stderr, false))
        return 1;
    st->m = vkllm_model_load(a->model, &mp, &err);
    if (!st->m) goto fail;
    vkllm_context_params cp = vkllm_context_default_params();
    cp.n_ctx = a->n_ctx;
    st->c = vkllm_context_create(st->m, &cp, &err);
    st->s = st->c ? vkllm_sampler_create(st->m, &a->sp, &err) : NULL;
    st->cached = st->s ? vkl_malloc(sizeof *st->cached * (size_t)vkllm_n_ctx(st->c), (vkl_error *)(void *)&err) : NULL;
    if (!st->cached) goto fail;

    gguf_file *f = gguf_open(a->model, (vkl_error *)(void *)&err);
    if (!f) goto fail;
    st->tok = vkl_tokenizer_load(f, (vkl_error *)(void *)&err);
    if (a->template_name) {
        st->tmpl = (vkl_chat_template)vkl_chat_template_from_name(a->template_name);
    } else {
        gguf_str s = {0};
        char *tmpl = NULL;
        if (gguf_find_kv(f, "tokenizer.chat_template") &&
            !gguf_get_str(f, "tokenizer.chat_template", &s, NULL) && (tmpl = malloc(s.len + 1))) {
            memcpy(tmpl, s.data, s.len);
            tmpl[s.len] = 0;
        }
        st->tmpl = vkl_chat_detect(tmpl);
        free(tmpl);
    }
    gguf_close(f);
    if (!st->tok) goto fail;
    if (a->system && add_msg(st, "system", a->system, strlen(a->system))) {
        fprintf(stderr, "vkllm chat: out of memory\n");
        return 1;
    }
    char where[320] = "CPU only";
    const char *gpu = vkllm_model_gpu_name(st->m);
    if (gpu) snprintf(where, sizeof where, "%d layers on %s", vkllm_model_n_gpu_layers(st->m), gpu);
    fprintf(stderr, "vkllm chat: %s; chat template %s; context %d tokens; %s\n", vkllm_model_desc(st->m),
            vkl_chat_template_name(st->tmpl), vkllm_n_ctx(st->c), where);
    return 0;
fail:
    fprintf(stderr, "vkllm chat: %s%s%s\n", st->m ? a->model : "", st->m ? ": " : "", err.msg);
    return 1;
}

static int chat_loop(chat_state *st) {
    bool tty = isatty(STDIN_FILENO);
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;
    for (;;) {
        if (tty) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        ssize_t got = getline(&line, &cap, stdin);
        if (got < 0) break;
        size_t len = (size_t)got;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        line[len] = 0;
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) break;
        if (!strcmp(line, "/reset")) {
            if ((rc = reset_conversation(st))) break;
            fprintf(stderr, "vkllm chat: conversation reset\n");
            continue;
        }
        if (len == 0) continue;
        if ((rc = turn(st, line, len))) break;
    }
    if (tty && rc == 0) fputc('\n', stdout);
    free(line);
    return rc ? 1 : 0;
}

int cmd_chat(int argc, char **argv) {
    chat_state st;
    memset(&st, 0, sizeof st);
    int rc = parse_args(argc, argv, &st.a);
    if (rc == 1) {
        usage(stdout);
        return 0;
    }
    if (rc) return rc;
    rc = setup(&st);
    if (rc == 0) rc = chat_loop(&st);
    drop_msgs(&st, 0);
    free(st.msgs);
    free(st.cached);
    free(st.toks);
    free(st.reply);
    vkl_tokenizer_free(st.tok);
    vkllm_sampler_free(st.s);
    vkllm_context_free(st.c);
    vkllm_model_free(st.m);
    return rc;
}
