/* Tokenizer throughput on one core: the text of FILE repeated to SIZE bytes (default 1 MiB),
 * tokenized with the vocabulary of a GGUF file (a vocab-only one is enough), REPS times; prints
 * the best and mean wall time, MB/s and tokens/s, and the vocabulary's load time.
 * Usage: bench_tokenize -m VOCAB.gguf -f TEXT [--size BYTES] [-r REPS] [--special]
 * For "mixed English and code", feed it this repository's README.md and the C files of core/ and
 * tools/ concatenated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tokenizer.h"

static char *read_tiled(const char *path, size_t size) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    char *buf = malloc(size + 1);
    size_t n = buf ? fread(buf, 1, size, fp) : 0;
    fclose(fp);
    if (n == 0) {
        free(buf);
        return NULL;
    }
    for (size_t o = n; o < size; o += n) memcpy(buf + o, buf, o + n <= size ? n : size - o);
    buf[size] = 0;
    return buf;
}

int main(int argc, char **argv) {
    const char *model = NULL, *file = NULL;
    size_t size = 1 << 20;
    int reps = 5;
    bool special = false;
    for (int i = 1; i < argc; i++) {
        bool next = i + 1 < argc;
        if (!strcmp(argv[i], "-m") && next) model = argv[++i];
        else if (!strcmp(argv[i], "-f") && next) file = argv[++i];
        else if (!strcmp(argv[i], "--size") && next) size = (size_t)strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "-r") && next) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--special")) special = true;
        else {
            fprintf(stderr, "usage: bench_tokenize -m VOCAB.gguf -f TEXT [--size BYTES] [-r REPS] [--special]\n");
            return 2;
        }
    }
    if (!model || !file || size == 0 || reps < 1) {
        fprintf(stderr, "bench_tokenize: need -m VOCAB.gguf and -f TEXT (and a positive --size and -r)\n");
        return 2;
    }
    char *text = read_tiled(file, size);
    if (!text) {
        fprintf(stderr, "bench_tokenize: cannot read %s\n", file);
        return 1;
    }
    vkl_error err = {{0}};
    double t0 = vkl_time_s();
    gguf_file *f = gguf_open(model, &err);
    vkl_tokenizer *t = f ? vkl_tokenizer_load(f, &err) : NULL;
    double load = vkl_time_s() - t0;
    gguf_close(f);
    int n = t ? vkl_tokenize(t, text, size, false, special, NULL, 0, &err) : -1;
    int32_t *ids = n >= 0 ? malloc((size_t)(n > 0 ? n : 1) * sizeof *ids) : NULL;
    if (!ids) {
        fprintf(stderr, "bench_tokenize: %s\n", t ? err.msg : err.msg[0] ? err.msg : "out of memory");
        vkl_tokenizer_free(t);
        free(text);
        return 1;
    }
    double best = 1e30, sum = 0;
    for (int r = 0; r < reps; r++) {
        t0 = vkl_time_s();
        int m = vkl_tokenize(t, text, size, false, special, ids, n, &err);
        double dt = vkl_time_s() - t0;
        if (m != n) {
            fprintf(stderr, "bench_tokenize: run %d gave %d tokens, not %d: %s\n", r, m, n, err.msg);
            return 1;
        }
        best = dt < best ? dt : best;
        sum += dt;
    }
    printf("%s: %zu bytes -> %d tokens; best %.3f s, mean %.3f s of %d (%.2f MB/s, %.0f tokens/s); vocabulary "
           "load %.1f ms\n",
           model, size, n, best, sum / reps, reps, size / best / 1e6, n / best, load * 1e3);
    free(ids);
    vkl_tokenizer_free(t);
    free(text);
    return 0;
}
