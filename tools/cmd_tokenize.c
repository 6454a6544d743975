/* vkllm tokenize -m MODEL (-p TEXT | -f FILE) [--no-bos] [--pieces] [--no-parse-special]:
 * prints the token ids of a text, like llama.cpp's llama-tokenize --ids; by default exactly the
 * ids `vkllm run` evaluates for the same -p/-f (escapes, the trailing newline, special tokens, BOS). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_opts.h"
#include "gguf.h"
#include "tokenizer.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: vkllm tokenize -m MODEL.gguf (-p TEXT | -f FILE) [options]\n"
            "\n"
            "Prints the token ids of TEXT as a list, e.g. [1, 15043, 3186]. Only the tokenizer keys\n"
            "of the model are read, so a vocab-only GGUF works.\n"
            "\n"
            "  -m, --model PATH      the GGUF file\n"
            "  -p, --prompt TEXT     the text to tokenize\n"
            "  -f, --file PATH       read the text from a file instead (one trailing newline removed,\n"
            "                        as run does)\n"
            "  -e, --escape          turn \\n \\r \\t \\' \\\" \\\\ \\xNN in -p into those characters (default)\n"
            "  --no-escape           take -p literally\n"
            "  --no-bos              do not add the BOS token the vocabulary asks for\n"
            "  --pieces              print one line per token: ID -> 'piece'\n"
            "  --parse-special       turn control-token texts such as <s> into those tokens (default)\n"
            "  --no-parse-special    tokenize them as plain text\n");
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *file = NULL;
    int prompt_arg = 0;
    bool add_bos = true, pieces = false, parse_special = true, escape = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_next = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && has_next) {
            model = argv[++i];
        } else if ((!strcmp(a, "-p") || !strcmp(a, "--prompt")) && has_next) {
            prompt = argv[prompt_arg = ++i];
        } else if ((!strcmp(a, "-f") || !strcmp(a, "--file")) && has_next) {
            file = argv[++i];
        } else if (!strcmp(a, "--no-bos")) {
            add_bos = false;
        } else if (!strcmp(a, "--pieces")) {
            pieces = true;
        } else if (!strcmp(a, "--ids")) {
            pieces = false;
        } else if (!strcmp(a, "-e") || !strcmp(a, "--escape") || !strcmp(a, "--no-escape")) {
            escape = a[2] != 'n';
        } else if (!strcmp(a, "--parse-special")) {
            parse_special = true;
        } else if (!strcmp(a, "--no-parse-special")) {
            parse_special = false;
        } else {
            fprintf(stderr, "vkllm tokenize: %s '%s' (try 'vkllm tokenize --help')\n",
                    a[0] == '-' && !has_next ? "missing value or unknown option" : "unknown argument", a);
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr, "vkllm tokenize: missing -m MODEL (try 'vkllm tokenize --help')\n");
        return 2;
    }
    if (!prompt == !file) {
        fprintf(stderr, "vkllm tokenize: give exactly one of -p TEXT and -f FILE\n");
        return 2;
    }

    vkl_error err = {{0}};
    int rc = 1;
    char *text = NULL;
    int32_t *ids = NULL;
    vkl_tokenizer *tok = NULL;
    size_t len = 0;
    if (file) {
        text = cli_read_file(file, &len, &err);
        if (!text) goto done;
        if (len && text[len - 1] == '\n') len--;
    } else {
        if (escape) cli_unescape(argv[prompt_arg]);
        len = strlen(prompt);
    }
    gguf_file *f = gguf_open(model, &err);
    if (f) {
        tok = vkl_tokenizer_load(f, &err);
        gguf_close(f);
    }
    if (!tok) {
        if (!strstr(err.msg, model)) vkl_error_prefix(&err, "%s", model);
        goto done;
    }

    const char *src = file ? text : prompt;
    int n = vkl_tokenize(tok, src, len, add_bos, parse_special, NULL, 0, &err);
    if (n < 0) goto done;
    ids = vkl_malloc((size_t)(n > 0 ? n : 1) * sizeof *ids, &err);
    if (!ids || vkl_tokenize(tok, src, len, add_bos, parse_special, ids, n, &err) != n) goto done;
    /* A text that starts with BOS: no second one (as vkllm_tokenize_special, which run uses). */
    if (add_bos && n >= 2 && ids[0] == vkl_tokenizer_bos(tok) && ids[1] == ids[0]) memmove(ids, ids + 1, sizeof *ids * (size_t)--n);

    if (pieces) {
        size_t cap = (size_t)vkl_tokenizer_max_piece_len(tok) + 1;
        char *buf = vkl_malloc(cap, &err);
        if (!buf) goto done;
        for (int i = 0; i < n; i++) {
            int l = vkl_token_to_piece(tok, ids[i], true, false, buf, cap);
            printf("%6d -> '%.*s'\n", ids[i], l, buf);
        }
        free(buf);
    } else {
        putchar('[');
        for (int i = 0; i < n; i++) printf(i ? ", %d" : "%d", ids[i]);
        printf("]\n");
    }
    rc = 0;
done:
    if (rc) fprintf(stderr, "vkllm tokenize: %s\n", err.msg);
    free(ids);
    free(text);
    vkl_tokenizer_free(tok);
    return rc;
}
