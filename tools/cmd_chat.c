/* vkllm chat: an interactive conversation on stdin/stdout. Each turn formats the whole
 * conversation with the model's chat template, tokenizes it, and evaluates only the tokens past
 * the prefix already in the KV cache, so earlier turns are never recomputed. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "cli.h"
#include "cli_args.h"
#include "cli_line.h"
#include "cli_offload.h"
#include "cli_opts.h"
#include "gguf.h"
#include "vkllm.h"

#ifdef VKLLM_JSON
#include <cjson/cJSON.h>
#endif

static const char *chat_json_built(void) {
#ifdef VKLLM_JSON
    return "with cJSON";
#else
    return "not built in: no cJSON";
#endif
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: vkllm chat -m MODEL.gguf [options]\n"
            "\n"
            "Chats on stdin/stdout: one user message per line (a line ending in \\ continues on the next),\n"
            "the reply streamed after it, its timings on stderr. On a terminal the input line can be\n"
            "edited, with history (%s); Ctrl-C stops a reply and, at the prompt, ends the\n"
            "chat. Piped, it reads lines until end of input. Commands: /help, /reset, /regen, /exit,\n"
            "/save FILE and /load FILE (the conversation as JSON; %s).\n",
            cli_line_editing() ? "libedit" : "not built in: plain input", chat_json_built());
    cli_gen_help(out, CLI_CHAT);
    fprintf(out, "\nchat templates:");
    for (int t = 0; t < VKL_CHAT_TEMPLATE_COUNT; t++) fprintf(out, " %s", vkl_chat_template_name((vkl_chat_template)t));
    fprintf(out, "\n");
}

/* Returns 0, 1 after --help, or 2 after printing a one-line usage error. */
static int parse_args(int argc, char **argv, cli_gen *a) {
    cli_gen_init(a, CLI_CHAT);
    int rc = cli_gen_parse(a, CLI_CHAT, argc, argv);
    if (rc) return rc;
    if (a->n_predict == 0) {
        fprintf(stderr, "vkllm chat: bad value '0' for -n (-1 = unlimited, or 1..16777216 tokens per reply)\n");
        return 2;
    }
    if (a->chat_template && vkl_chat_template_from_name(a->chat_template) < 0) {
        fprintf(stderr, "vkllm chat: bad value '%s' for --chat-template (see --help for the names)\n", a->chat_template);
        return 2;
    }
    if (a->prompt && a->prompt_file) {
        fprintf(stderr, "vkllm chat: give either -p PROMPT or -f FILE\n");
        return 2;
    }
    return 0;
}

typedef struct chat_state {
    cli_gen a;
    vkllm_model *m;
    vkllm_context *c;
    vkllm_sampler *s;
    vkl_chat_template tmpl;
    bool interactive; /* stdin is a terminal */
    vkl_chat_msg *msgs; /* contents are malloc'd */
    size_t n_msgs, cap_msgs;
    int32_t *cached; /* the tokens in the KV cache, in order */
    int n_cached;
    int32_t *toks; /* the tokenized conversation */
    int cap_toks;
    char *reply;
    size_t reply_len, reply_cap;
    int n_reply;           /* tokens of the reply */
    double t_first;        /* when its first token was out */
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
    vkllm_error verr = {{0}};
    int n = vkllm_tokenize_special(st->m, text, len, true, NULL, 0, &verr);
    if (n < 0 && n != INT32_MIN) n = -n; /* the count needed */
    if (n >= 0) {
        size_t cap = (size_t)st->cap_toks;
        int32_t *t = grow(st->toks, &cap, (size_t)n + 1, sizeof *t);
        if (!t) {
            free(text);
            fprintf(stderr, "vkllm chat: out of memory\n");
            return -1;
        }
        st->toks = t, st->cap_toks = (int)cap;
        n = vkllm_tokenize_special(st->m, text, len, true, st->toks, st->cap_toks, &verr);
    }
    free(text);
    if (n < 0) {
        fprintf(stderr, "vkllm chat: %s\n", verr.msg);
        return -1;
    }
    return n;
}

/* Evaluates toks[0..n) on top of the longest prefix of it already in the KV cache. Returns the
 * count evaluated, or -1. */
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
    return n - common;
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

/* Whether the reply's new part (its last len bytes) completes a reverse prompt. */
static bool reverse_hit(const chat_state *st, size_t len) {
    for (int k = 0; k < st->a.n_reverse; k++) {
        size_t rl = strlen(st->a.reverse[k]), from = st->reply_len - len;
        from = from >= rl ? from - rl + 1 : 0;
        if (st->reply_len > from && memmem(st->reply + from, st->reply_len - from, st->a.reverse[k], rl)) return true;
    }
    return false;
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
    st->n_reply = 0;
    long n_predict = st->a.n_predict < 0 ? LONG_MAX : st->a.n_predict;
    for (long i = 0; i < n_predict && !cli_interrupted; i++) {
        int32_t next = vkllm_sample(st->s, vkllm_logits(st->c, -1));
        if (vkllm_token_is_eog(st->m, next)) break;
        vkllm_sampler_accept(st->s, next);
        int w = vkllm_detok_push(detok, next, buf, bufsize);
        size_t before = st->reply_len;
        if (w < 0 || emit(st, buf, (size_t)w)) {
            fprintf(stderr, "\nvkllm chat: %s\n", w < 0 ? "bad token id" : "out of memory");
            goto done;
        }
        if (i == 0) st->t_first = cli_now();
        st->n_reply++;
        if (i + 1 == n_predict || reverse_hit(st, st->reply_len - before)) break; /* fed with the next turn */
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

/* "[prompt: N tokens, X tok/s | reply: N tokens, X tok/s]" on stderr; the rate is over the tokens
 * after the first, which comes from the prompt's logits. */
static void print_turn_timings(const chat_state *st, int n_prompt, double prompt_s, double gen_s) {
    if (cli_verbosity < CLI_LOG_INFO) return;
    if (cli_interrupted) fprintf(stderr, "(stopped)\n");
    fprintf(stderr, "[prompt: %d tokens, %.1f tok/s | reply: %d tokens", n_prompt, prompt_s > 0 ? n_prompt / prompt_s : 0.0,
            st->n_reply);
    if (st->n_reply > 1 && gen_s > 0) fprintf(stderr, ", %.1f tok/s", (st->n_reply - 1) / gen_s);
    fprintf(stderr, "]\n");
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
    double t0 = cli_now();
    int n_new = eval_new(st, n);
    if (n_new < 0) return -1;
    double t1 = cli_now();
    st->t_first = t1;
    bool full = false;
    if (generate(st, &full)) return -1;
    print_turn_timings(st, n_new, t1 - t0, cli_now() - st->t_first);
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

/* The chat template: --chat-template, else detected from the model's tokenizer.chat_template. */
static vkl_chat_template find_template(const cli_gen *a) {
    if (a->chat_template) return (vkl_chat_template)vkl_chat_template_from_name(a->chat_template);
    vkl_error err = {{0}};
    gguf_file *f = gguf_open(a->model, &err);
    gguf_str s = {0};
    char *tmpl = NULL;
    if (f && gguf_find_kv(f, "tokenizer.chat_template") && !gguf_get_str(f, "tokenizer.chat_template", &s, NULL) &&
        (tmpl = malloc(s.len + 1))) {
        memcpy(tmpl, s.data, s.len);
        tmpl[s.len] = 0;
    }
    vkl_chat_template t = vkl_chat_detect(tmpl);
    free(tmpl);
    gguf_close(f);
    return t;
}

/* Reads the model and the chat template. Returns 0 or 1. */
static int setup(chat_state *st) {
    cli_gen *a = &st->a;
    vkllm_error err = {{0}};
    if (cli_gen_check_model(a, "chat")) return 1;
    vkllm_model_params mp = a->mp;
    mp.n_threads = a->n_threads;
    mp.n_ctx = a->n_ctx;
    mp.n_batch = a->n_batch;
    mp.kv_type = a->kv_f32 ? VKLLM_KV_F32 : VKLLM_KV_F16;
    if (cli_load(&a->off, "chat", a->model, &mp, true, &st->m, &st->c)) return 1;
    st->s = vkllm_sampler_create(st->m, &a->sp, &err);
    st->cached = st->s ? vkl_malloc(sizeof *st->cached * (size_t)vkllm_n_ctx(st->c), (vkl_error *)(void *)&err) : NULL;
    if (!st->cached || (!a->no_warmup && vkllm_warmup(st->c, &err))) {
        fprintf(stderr, "vkllm chat: %s\n", err.msg);
        return 1;
    }
    st->tmpl = find_template(a);
    if (a->system && add_msg(st, "system", a->system, strlen(a->system))) {
        fprintf(stderr, "vkllm chat: out of memory\n");
        return 1;
    }
    if (cli_verbosity >= CLI_LOG_INFO) {
        char where[320] = "CPU only", seed[48] = "";
        const char *gpu = vkllm_model_gpu_name(st->m);
        if (gpu) snprintf(where, sizeof where, "%d layers on %s", vkllm_model_n_gpu_layers(st->m), gpu);
        if (a->sp.temperature > 0)
            snprintf(seed, sizeof seed, "; seed %llu", (unsigned long long)vkllm_sampler_seed(st->s));
        fprintf(stderr, "vkllm chat: %s; chat template %s; context %d tokens; %s%s%s\n", vkllm_model_desc(st->m),
                vkl_chat_template_name(st->tmpl), vkllm_n_ctx(st->c), where, seed,
                st->interactive ? "; /help lists the commands" : "");
    }
    return 0;
}

static void print_commands(void) {
    printf("/help          this list\n"
           "/reset         forget the conversation (the system message stays)\n"
           "/regen         drop the last reply and sample a new one\n"
           "/save FILE     write the conversation as JSON: {\"messages\": [{\"role\", \"content\"}, ...]}\n"
           "/load FILE     continue the conversation of such a file\n"
           "/exit, /quit   end the chat (also Ctrl-D; Ctrl-C at the prompt)\n"
           "A line ending in \\ continues the message on the next line; Ctrl-C stops a reply.\n"
           "Start a message with // to send one that begins with /.\n");
}

/* /regen: drops the last assistant message and answers the user message before it again. */
static int regenerate(chat_state *st) {
    if (st->n_msgs == 0 || strcmp(st->msgs[st->n_msgs - 1].role, "assistant")) {
        fprintf(stderr, "vkllm chat: no reply to regenerate\n");
        return 0;
    }
    drop_msgs(st, st->n_msgs - 1);
    char *msg = (char *)(uintptr_t)st->msgs[st->n_msgs - 1].content;
    st->msgs[st->n_msgs - 1].content = NULL;
    st->n_msgs--;
    int rc = turn(st, msg, strlen(msg));
    free(msg);
    return rc;
}

#ifdef VKLLM_JSON
/* /save: the messages as {"messages": [{"role": ..., "content": ...}, ...]}. Returns 0, or 1
 * after a message. */
static int save_conversation(chat_state *st, const char *path) {
    cJSON *root = cJSON_CreateObject(), *arr = root ? cJSON_AddArrayToObject(root, "messages") : NULL;
    for (size_t i = 0; arr && i < st->n_msgs; i++) {
        cJSON *m = cJSON_CreateObject();
        if (!m || !cJSON_AddStringToObject(m, "role", st->msgs[i].role) ||
            !cJSON_AddStringToObject(m, "content", st->msgs[i].content) || !cJSON_AddItemToArray(arr, m)) {
            cJSON_Delete(m);
            arr = NULL;
        }
    }
    char *text = arr ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    FILE *f = text ? fopen(path, "w") : NULL;
    bool ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f)) ok = false;
    free(text);
    if (!ok) fprintf(stderr, "vkllm chat: cannot write %s\n", path);
    return ok ? 0 : 1;
}

/* The role's static name, NULL when it is not one of the three. */
static const char *known_role(const char *r) {
    static const char *const roles[] = {"system", "user", "assistant"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(r, roles[i])) return roles[i];
    return NULL;
}

/* /load: replaces the conversation by a /save file's (checked whole first). Returns 0, 1 after a
 * message (the conversation unchanged), -1 on a fatal error. */
static int load_conversation(chat_state *st, const char *path) {
    vkl_error err = {{0}};
    size_t len;
    char *text = cli_read_file(path, &len, &err);
    if (!text) {
        fprintf(stderr, "vkllm chat: %s\n", err.msg);
        return 1;
    }
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "messages"), *m;
    bool ok = cJSON_IsArray(arr);
    cJSON_ArrayForEach(m, arr) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role"), *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        ok &= cJSON_IsString(role) && cJSON_IsString(c) && known_role(role->valuestring);
    }
    if (!ok) {
        fprintf(stderr, "vkllm chat: %s: expected {\"messages\": [{\"role\": \"user\", \"content\": \"...\"}, ...]} "
                "(roles system, user, assistant)\n", path);
        cJSON_Delete(root);
        return 1;
    }
    drop_msgs(st, 0);
    int rc = reset_conversation(st);
    cJSON_ArrayForEach(m, arr) {
        const char *c = cJSON_GetObjectItemCaseSensitive(m, "content")->valuestring;
        if (rc == 0 && add_msg(st, known_role(cJSON_GetObjectItemCaseSensitive(m, "role")->valuestring), c, strlen(c))) {
            fprintf(stderr, "vkllm chat: out of memory\n");
            rc = -1;
        }
    }
    cJSON_Delete(root);
    return rc;
}
#else
static int save_conversation(chat_state *st, const char *path) {
    (void)st, (void)path;
    fprintf(stderr, "vkllm chat: /save and /load need cJSON (this build has none: apt-get install libcjson-dev)\n");
    return 1;
}

static int load_conversation(chat_state *st, const char *path) { return save_conversation(st, path); }
#endif

/* A line starting with '/': runs the command. Returns 0, 1 to end the chat, -1 on a fatal error. */
static int command(chat_state *st, const char *line) {
    if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) return 1;
    if (!strcmp(line, "/help")) {
        print_commands();
        return 0;
    }
    if (!strcmp(line, "/regen")) return regenerate(st);
    if (!strncmp(line, "/save ", 6) || !strncmp(line, "/load ", 6)) {
        const char *path = line + 6;
        while (*path == ' ') path++;
        int rc = line[1] == 's' ? save_conversation(st, path) : load_conversation(st, path);
        if (rc > 0) return 0; /* a message said why */
        if (rc == 0)
            fprintf(stderr, "vkllm chat: %s %zu messages %s %s\n", line[1] == 's' ? "saved" : "loaded", st->n_msgs,
                    line[1] == 's' ? "to" : "from", path);
        return rc;
    }
    if (!strcmp(line, "/reset")) {
        if (reset_conversation(st)) return -1;
        fprintf(stderr, "vkllm chat: conversation reset\n");
        return 0;
    }
    fprintf(stderr, "vkllm chat: unknown command %s (/help lists them; // sends a message starting with /)\n", line);
    return 0;
}

/* Reads one message: lines joined while they end in a backslash. Returns 0, 1 at end of input,
 * 2 on Ctrl-C at the prompt, -1 out of memory. */
static int read_message(chat_state *st, char **msg) {
    char *acc = NULL;
    size_t len = 0;
    for (;;) {
        char *line = NULL;
        int rc = cli_line_read(st->interactive, acc ? "... " : "> ", &line);
        if (rc) {
            free(acc);
            return rc;
        }
        size_t l = strlen(line);
        bool more = l > 0 && line[l - 1] == '\\';
        if (more) line[--l] = 0;
        char *p = realloc(acc, len + l + 2);
        if (!p) {
            free(line);
            free(acc);
            return -1;
        }
        acc = p;
        memcpy(acc + len, line, l);
        len += l;
        acc[len] = 0;
        free(line);
        if (!more) break;
        acc[len++] = '\n';
        acc[len] = 0;
    }
    cli_line_history(st->interactive, acc);
    *msg = acc;
    return 0;
}

/* The first message from -p or -f, when given. Returns 0 or -1. */
static int first_message(chat_state *st) {
    if (!st->a.prompt && !st->a.prompt_file) return 0;
    size_t len;
    char *text = cli_gen_prompt_text(&st->a, "chat", &len);
    if (!text) return -1;
    if (st->interactive) printf("> %.*s\n", (int)len, text);
    int rc = len ? turn(st, text, len) : 0;
    free(text);
    return rc;
}

static int chat_loop(chat_state *st) {
    int rc = first_message(st);
    while (rc == 0) {
        char *line = NULL;
        int r = read_message(st, &line);
        if (r) {
            rc = r == 2 ? 130 : r < 0 ? -1 : 0;
            if (r > 0 && st->interactive) fputc('\n', stdout);
            break;
        }
        const char *msg = line[0] == '/' && line[1] == '/' ? line + 1 : line;
        if (msg == line && line[0] == '/') {
            int c = command(st, line);
            free(line);
            if (c) rc = c > 0 ? 0 : -1;
            if (c) break;
            continue;
        }
        if (*msg) rc = turn(st, msg, strlen(msg));
        free(line);
    }
    return rc < 0 ? 1 : rc;
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
    st.interactive = isatty(STDIN_FILENO);
    rc = setup(&st);
    if (rc == 0) {
        cli_sigint_install();
        rc = chat_loop(&st);
    }
    drop_msgs(&st, 0);
    free(st.msgs);
    free(st.cached);
    free(st.toks);
    free(st.reply);
    vkllm_sampler_free(st.s);
    vkllm_context_free(st.c);
    vkllm_model_free(st.m);
    return rc;
}
