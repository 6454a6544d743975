/* Seed corpus for the fuzzers: make_corpus OUT_DIR [FIXTURES_DIR...]
 *
 * Writes small valid GGUF files into OUT_DIR: synthetic LLaMA models with tiny dimensions in every
 * tensor type (a few KB each, so the fuzzers mutate whole models quickly), a header-only file,
 * a byte-level BPE vocabulary, and, from each reference set given (tests/fixtures, and
 * ../shared/fixtures where present) its models' headers (metadata and tensor infos, data cut off)
 * and the vocabulary GGUF. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gguf.h"
#include "synth.h"

static int write_bytes(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    size_t w = fwrite(data, 1, n, fp);
    return fclose(fp) == 0 && w == n ? 0 : -1;
}

/* The first `limit` bytes of a file (limit 0: all of it). */
static int copy_prefix(const char *src, const char *dst, uint64_t limit) {
    FILE *in = fopen(src, "rb");
    if (!in) return -1;
    FILE *out = fopen(dst, "wb");
    if (!out) {
        fclose(in);
        return -1;
    }
    char buf[1 << 16];
    uint64_t done = 0;
    int rc = 0;
    while (!limit || done < limit) {
        size_t want = limit && limit - done < sizeof buf ? (size_t)(limit - done) : sizeof buf;
        size_t got = fread(buf, 1, want, in);
        if (got == 0) break;
        if (fwrite(buf, 1, got, out) != got) rc = -1;
        done += got;
    }
    fclose(in);
    return fclose(out) == 0 ? rc : -1;
}

/* A vocab-only byte-level BPE GGUF ("gpt2", LLaMA 3's pre-tokenizer): the 256 characters of
 * GPT-2's byte alphabet, a few merges, and control tokens. */
static int write_bpe_vocab(const char *path) {
    static const char *const extra[] = {"he", "ll", "llo", "hello", "\xc4\xa0w", "<|begin_of_text|>", "<|eot_id|>"};
    static const char *const merges[] = {"h e", "l l", "ll o", "he llo", "\xc4\xa0 w"};
    enum { N_EXTRA = sizeof extra / sizeof extra[0], N = 256 + N_EXTRA };
    char chars[256][3];
    gguf_str toks[N], ms[sizeof merges / sizeof merges[0]];
    int32_t types[N];
    unsigned n_other = 0;
    for (int b = 0; b < 256; b++) { /* printable Latin-1 is itself; the rest is U+0100.. in order */
        bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
        unsigned cp = printable ? (unsigned)b : 0x100u + n_other++;
        int l = cp < 0x80 ? 1 : 2;
        if (l == 1) chars[b][0] = (char)cp;
        else chars[b][0] = (char)(0xc0 | (cp >> 6)), chars[b][1] = (char)(0x80 | (cp & 0x3f));
        toks[b] = (gguf_str){(uint64_t)l, chars[b]};
        types[b] = 1;
    }
    for (int i = 0; i < N_EXTRA; i++) {
        toks[256 + i] = (gguf_str){strlen(extra[i]), extra[i]};
        types[256 + i] = extra[i][0] == '<' ? 3 : 1;
    }
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) ms[i] = (gguf_str){strlen(merges[i]), merges[i]};
    vkl_error err = {{0}};
    gguf_writer *w = gguf_writer_open(path, &err);
    if (!w) return -1;
    gguf_value v = {.type = GGUF_VT_ARRAY};
    int rc = gguf_writer_add_str(w, "general.architecture", "llama", &err) ||
             gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2", &err) ||
             gguf_writer_add_str(w, "tokenizer.ggml.pre", "llama-bpe", &err);
    v.v.arr.type = GGUF_VT_STRING, v.v.arr.n = N, v.v.arr.strs = toks;
    rc = rc || gguf_writer_add_kv(w, "tokenizer.ggml.tokens", &v, &err);
    v.v.arr.type = GGUF_VT_INT32, v.v.arr.strs = NULL, v.v.arr.data = types;
    rc = rc || gguf_writer_add_kv(w, "tokenizer.ggml.token_type", &v, &err);
    v.v.arr.type = GGUF_VT_STRING, v.v.arr.n = sizeof ms / sizeof ms[0], v.v.arr.strs = ms, v.v.arr.data = NULL;
    rc = rc || gguf_writer_add_kv(w, "tokenizer.ggml.merges", &v, &err) ||
         gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 256 + 5, &err) ||
         gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 256 + 6, &err);
    if (rc) {
        fprintf(stderr, "make_corpus: %s: %s\n", path, err.msg);
        gguf_writer_abort(w);
        return -1;
    }
    return gguf_writer_close(w, &err);
}

typedef struct synth_seed {
    const char *name;
    vkl_type type;
    int64_t n_embd, n_layer, n_head, n_head_kv, n_ff;
} synth_seed;

/* The headers of a reference set's models (metadata and tensor infos, data cut off) and its whole
 * vocabulary file; a folder that is not there adds nothing. Returns the number of files written. */
static int fixture_seeds(const char *fx, const char *dir) {
    static const char *models[] = {"mini-q8_0", "mini-q4_0", "mini-q4_k_m", "tiny-f16", "tiny-q8_0", "tiny-q4_0",
                                   "tiny-q4_k_m"};
    char src[4096], path[4096];
    int n_written = 0;
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        snprintf(src, sizeof src, "%s/models/%s.gguf", fx, models[i]);
        vkl_error err = {{0}};
        gguf_file *f = gguf_open(src, &err);
        if (!f) continue; /* each set holds some of them */
        uint64_t header = f->data_offset;
        gguf_close(f);
        snprintf(path, sizeof path, "%s/header-%s.gguf", dir, models[i]);
        if (copy_prefix(src, path, header) == 0) n_written++;
    }
    snprintf(src, sizeof src, "%s/vocab/ggml-vocab-llama-spm.gguf", fx);
    snprintf(path, sizeof path, "%s/vocab-llama-spm.gguf", dir);
    if (copy_prefix(src, path, 0) == 0) n_written++;
    return n_written;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: make_corpus OUT_DIR [FIXTURES_DIR...]\n");
        return 2;
    }
    const char *dir = argv[1];
    if (mkdir(dir, 0755) && errno != EEXIST) {
        fprintf(stderr, "make_corpus: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char path[4096];
    int n_written = 0;

    /* K-quants need rows of 256; the others work with 32. */
    static const synth_seed seeds[] = {
        {"f32", VKL_TYPE_F32, 32, 1, 2, 1, 64},     {"f16", VKL_TYPE_F16, 32, 2, 4, 2, 64},
        {"bf16", VKL_TYPE_BF16, 32, 1, 2, 2, 64},   {"q8_0", VKL_TYPE_Q8_0, 32, 2, 2, 1, 64},
        {"q4_0", VKL_TYPE_Q4_0, 64, 1, 4, 1, 96},   {"q4_1", VKL_TYPE_Q4_1, 32, 1, 2, 1, 64},
        {"q5_0", VKL_TYPE_Q5_0, 32, 1, 2, 1, 64},   {"q5_1", VKL_TYPE_Q5_1, 32, 1, 2, 1, 64},
        {"q2_k", VKL_TYPE_Q2_K, 256, 1, 2, 1, 256}, {"q3_k", VKL_TYPE_Q3_K, 256, 1, 2, 1, 256},
        {"q4_k", VKL_TYPE_Q4_K, 256, 1, 2, 1, 256}, {"q5_k", VKL_TYPE_Q5_K, 256, 1, 2, 1, 256},
        {"q6_k", VKL_TYPE_Q6_K, 256, 1, 2, 1, 256},
    };
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        const synth_seed *s = &seeds[i];
        vkl_synth_config cfg;
        vkl_synth_defaults(&cfg);
        cfg.type = s->type;
        cfg.n_embd = s->n_embd, cfg.n_layer = s->n_layer, cfg.n_head = s->n_head, cfg.n_head_kv = s->n_head_kv;
        cfg.n_ff = s->n_ff, cfg.n_ctx = 64, cfg.n_vocab = 259; /* the built-in vocabulary's minimum */
        cfg.seed = 7 + i;
        cfg.n_threads = 1;
        snprintf(path, sizeof path, "%s/synth-%s.gguf", dir, s->name);
        vkl_error err = {{0}};
        if (vkl_synth_write(path, &cfg, &err)) {
            fprintf(stderr, "make_corpus: %s: %s\n", path, err.msg);
            return 1;
        }
        n_written++;
    }

    /* A v3 header with no keys and no tensors. */
    static const uint8_t empty[24] = {'G', 'G', 'U', 'F', 3};
    snprintf(path, sizeof path, "%s/empty-v3.gguf", dir);
    if (write_bytes(path, empty, sizeof empty) == 0) n_written++;
    snprintf(path, sizeof path, "%s/vocab-bpe.gguf", dir);
    if (write_bpe_vocab(path) == 0) n_written++;

    for (int a = 2; a < argc; a++) n_written += fixture_seeds(argv[a], dir);
    printf("make_corpus: %d seed files in %s\n", n_written, dir);
    return 0;
}
