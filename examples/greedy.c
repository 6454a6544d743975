/* The smallest complete use of libvkllm: load a model, tokenize a prompt, generate greedily and
 * print the text as it comes.
 *
 *   cc greedy.c $(pkg-config --cflags --libs vkllm) -o greedy
 *   ./greedy MODEL.gguf "Once upon a time" 32
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vkllm.h>

/* Index of the largest logit: greedy decoding. */
static int32_t argmax(const float *logits, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.gguf PROMPT [N_TOKENS]\n", argv[0]);
        return 2;
    }
    const char *prompt = argv[2];
    int n_gen = argc > 3 ? atoi(argv[3]) : 32;
    vkllm_error err = {{0}};
    int rc = 1;
    vkllm_model *model = vkllm_model_load(argv[1], NULL, &err);
    vkllm_context *ctx = model ? vkllm_context_create(model, NULL, &err) : NULL;
    vkllm_detok *detok = ctx ? vkllm_detok_create(model, &err) : NULL;
    size_t text_cap = model ? vkllm_detok_max_bytes(model) : 0;
    char *text = malloc(text_cap + 1);
    int32_t *tokens = malloc(sizeof *tokens * (strlen(prompt) + 2));
    if (!detok || !text || !tokens) goto done;

    /* BOS (when the vocabulary asks for it) and the prompt's tokens, evaluated as one batch. */
    int n = vkllm_tokenize(model, prompt, strlen(prompt), true, tokens, (int)strlen(prompt) + 2, &err);
    if (n < 1 || vkllm_eval(ctx, tokens, n, false, &err)) goto done;
    printf("%s", prompt);
    for (int i = 0; i < n_gen; i++) {
        int32_t next = argmax(vkllm_logits(ctx, -1), vkllm_model_n_vocab(model));
        if (vkllm_token_is_eog(model, next)) break;
        int len = vkllm_detok_push(detok, next, text, text_cap);
        if (len > 0) fwrite(text, 1, (size_t)len, stdout);
        fflush(stdout);
        if (vkllm_eval(ctx, &next, 1, false, &err)) goto done;
    }
    int len = vkllm_detok_flush(detok, text, text_cap);
    if (len > 0) fwrite(text, 1, (size_t)len, stdout);
    printf("\n");
    rc = 0;
done:
    if (rc) fprintf(stderr, "greedy: %s\n", err.msg[0] ? err.msg : "out of memory");
    free(tokens);
    free(text);
    vkllm_detok_free(detok);
    vkllm_context_free(ctx);
    vkllm_model_free(model);
    return rc;
}
