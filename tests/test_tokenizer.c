/* Tokenizers (SentencePiece and byte-level BPE): llama.cpp's test vectors for every fixture
 * vocabulary and the prompts of the fixture models, round trips, streaming detokenizer, BOS and
 * special tokens, end-of-generation tokens, loader errors, and the `vkllm tokenize` command. */
#include <unistd.h>

#include "gguf.h"
#include "test.h"
#include "tokenizer.h"

#define MAX_TOKENS 4096


static bool valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t l = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!l || i + l > n) return false;
        for (size_t k = 1; k < l; k++)
            if (((unsigned char)s[i + k] & 0xc0) != 0x80) return false;
        i += l;
    }
    return true;
}

/* Decodes through the streaming detokenizer, one token at a time. */
static size_t stream_decode(const vkl_tokenizer *t, const int32_t *ids, int n, char *out, size_t cap) {
    vkl_detok d;
    vkl_detok_init(&d, t, false, true);
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        int w = vkl_detok_push(&d, ids[i], out + o, cap - o);
        if (w < 0) return (size_t)-1;
        o += (size_t)w;
    }
    int w = vkl_detok_flush(&d, out + o, cap - o);
    return w < 0 ? (size_t)-1 : o + (size_t)w;
}

static int tokenize(const vkl_tokenizer *t, const char *s, bool add_special, bool parse_special, int32_t *ids) {
    vkl_error err = {{0}};
    int n = vkl_tokenize(t, s, strlen(s), add_special, parse_special, ids, MAX_TOKENS, &err);
    CHECK(n >= 0, "tokenize '%s': %s", s, err.msg);
    return n;
}

/* llama.cpp's vectors for vocab/ggml-vocab-NAME.gguf, with decoding round trips. */
static void test_vectors(const vkl_tokenizer *t, const char *dir, const char *name) {
    char path[1024], rel[256];
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf.inp", name);
    test_path(path, sizeof path, dir, rel);
    char *inp = test_read_file(path, NULL);
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf.out", name);
    test_path(path, sizeof path, dir, rel);
    char *outp = test_read_file(path, NULL);
    CHECK(inp && outp, "cannot read the test vectors");
    if (!inp || !outp) {
        free(inp);
        free(outp);
        return;
    }
    static const char sep[] = "\n__ggml_vocab_test__\n";
    static int32_t ids[MAX_TOKENS], expect[MAX_TOKENS];
    static char dec[4 * MAX_TOKENS];
    int n_cases = 0, n_match = 0, n_roundtrip = 0, n_rt_ok = 0;
    char *text = inp, *line = outp;
    for (char *end; (end = strstr(text, sep)) != NULL; text = end + sizeof sep - 1) {
        *end = 0;
        size_t len = (size_t)(end - text);
        char *eol = strchr(line, '\n');
        if (!eol) break;
        *eol = 0;
        int n_expect = 0;
        for (char *p = line, *q; n_expect < MAX_TOKENS; p = q) {
            long v = strtol(p, &q, 10);
            if (q == p) break;
            expect[n_expect++] = (int32_t)v;
        }
        line = eol + 1;
        n_cases++;

        vkl_error err = {{0}};
        int n = vkl_tokenize(t, text, len, false, false, ids, MAX_TOKENS, &err);
        bool same = n == n_expect && !memcmp(ids, expect, (size_t)n * sizeof *ids);
        CHECK(same, "%s vector %d ('%s'): got %d tokens, expected %d", name, n_cases, text, n, n_expect);
        n_match += same;

        /* Round trip: defined for valid UTF-8 (both models decode back to exactly the input). */
        if (valid_utf8(text, len)) {
            n_roundtrip++;
            int l = vkl_detokenize(t, ids, n, false, dec, sizeof dec);
            bool ok = l == (int)len && !memcmp(dec, text, len);
            CHECK(ok, "%s: round trip of vector %d ('%s') gave '%s'", name, n_cases, text, dec);
            size_t sl = stream_decode(t, ids, n, dec, sizeof dec);
            CHECK(sl == len && !memcmp(dec, text, len), "%s: streaming decode of vector %d ('%s')", name, n_cases, text);
            int32_t with_bos[MAX_TOKENS];
            int nb = vkl_tokenize(t, text, len, true, false, with_bos, MAX_TOKENS, &err);
            l = vkl_detokenize(t, with_bos, nb, false, dec, sizeof dec);
            bool bos = vkl_tokenizer_add_bos(t);
            CHECK(nb == n + bos && (!bos || with_bos[0] == vkl_tokenizer_bos(t)) && l == (int)len &&
                      !memcmp(dec, text, len), "%s: round trip with special tokens of vector %d", name, n_cases);
            n_rt_ok += ok;
        }
    }
    CHECK(n_cases == 46, "%s: expected 46 vectors, read %d", name, n_cases);
    printf("%s vectors: %d/%d reproduced exactly; round trip %d/%d\n", name, n_match, n_cases, n_rt_ok, n_roundtrip);
    free(inp);
    free(outp);
}

/* A reference prompt: its text tokenized with BOS (as the vocabulary asks) and special parsing,
 * as llama.cpp's run did, against the `prompt` line of the reference. */
static void check_prompt(const vkl_tokenizer *t, const char *dir, const char *prompt_rel, const char *ref_rel) {
    static int32_t ids[MAX_TOKENS], expect[MAX_TOKENS];
    char path[1024];
    size_t len;
    test_path(path, sizeof path, dir, prompt_rel);
    char *text = test_read_file(path, &len);
    test_path(path, sizeof path, dir, ref_rel);
    char *ref = test_read_file(path, NULL);
    CHECK(text && ref, "cannot read %s or %s", prompt_rel, ref_rel);
    char *p = ref ? strstr(ref, "\nprompt ") : NULL;
    int n_expect = 0;
    if (p) {
        p += 8;
        for (char *q; n_expect < MAX_TOKENS; p = q) {
            if (*p == '\n') break;
            long v = strtol(p, &q, 10);
            if (q == p) break;
            expect[n_expect++] = (int32_t)v;
        }
    }
    if (text && n_expect > 0) {
        vkl_error err = {{0}};
        double t0 = vkl_time_s();
        int n = vkl_tokenize(t, text, len, true, true, ids, MAX_TOKENS, &err);
        double dt = vkl_time_s() - t0;
        CHECK(n == n_expect && !memcmp(ids, expect, (size_t)n * sizeof *ids), "%s: %d tokens vs %d expected", ref_rel, n,
              n_expect);
        printf("%s: %d tokens in %.2f ms\n", ref_rel, n, dt * 1e3);
    }
    free(text);
    free(ref);
}

static void test_prompts(const vkl_tokenizer *t, const char *dir) {
    check_prompt(t, dir, "prompts/short.txt", "ref/tiny-f16.short.tokens.txt");
    check_prompt(t, dir, "prompts/long.txt", "ref/tiny-q8_0.long.tokens.txt");
}

static void test_special_and_bos(const vkl_tokenizer *t) {
    int32_t ids[MAX_TOKENS];
    int n = tokenize(t, "Hello world", true, false, ids);
    CHECK(n == 3 && ids[0] == 1 && ids[1] == 15043 && ids[2] == 3186, "Hello world with BOS");
    CHECK(vkl_tokenizer_bos(t) == 1 && vkl_tokenizer_eos(t) == 2 && vkl_tokenizer_unk(t) == 0, "special ids");
    CHECK(vkl_tokenizer_n_vocab(t) == 32000, "n_vocab");
    CHECK(vkl_tokenizer_add_bos(t) && !vkl_tokenizer_add_eos(t), "add_bos/add_eos flags");
    CHECK(vkl_token_is_eog(t, 2) && !vkl_token_is_eog(t, 1) && !vkl_token_is_eog(t, 15043), "eog");
    CHECK(vkl_token_get_type(t, 1) == VKL_TOKEN_CONTROL && vkl_token_get_type(t, 0x41 + 3) == VKL_TOKEN_BYTE, "types");
    CHECK(vkl_tokenizer_find(t, "\xe2\x96\x81Hello", 8) == 15043 && vkl_tokenizer_find(t, "nope-not-a-token", 16) < 0, "find");

    /* Empty text: nothing, or just BOS. */
    n = tokenize(t, "", false, false, ids);
    CHECK(n == 0, "empty text");
    n = tokenize(t, "", true, false, ids);
    CHECK(n == 1 && ids[0] == 1, "empty text with BOS");

    /* Special parsing: "<s>" is BOS, and the text after a special token gets the space prefix. */
    n = tokenize(t, "<s>Hello</s>", false, true, ids);
    CHECK(n == 3 && ids[0] == 1 && ids[1] == 15043 && ids[2] == 2, "parse special: n=%d", n);
    n = tokenize(t, "<s>Hello", false, false, ids);
    bool has_ctrl = false;
    for (int i = 0; i < n; i++) has_ctrl |= ids[i] == 1;
    CHECK(n > 2 && !has_ctrl, "without special parsing <s> is text");
    char buf[256];
    int l = vkl_detokenize(t, ids, n, false, buf, sizeof buf);
    CHECK(l == 8 && !strcmp(buf, "<s>Hello"), "decode of literal <s>: '%s'", buf);

    /* Decoding: BOS skipped or rendered, prefix space removed once. */
    int32_t hw[] = {1, 15043, 3186, 2};
    l = vkl_detokenize(t, hw, 4, false, buf, sizeof buf);
    CHECK(l == 11 && !strcmp(buf, "Hello world"), "decode: '%s'", buf);
    l = vkl_detokenize(t, hw, 4, true, buf, sizeof buf);
    CHECK(!strcmp(buf, "<s> Hello world</s>"), "decode with specials: '%s'", buf);
    l = vkl_detokenize(t, hw, 4, false, buf, 6);
    CHECK(l == 11 && !strcmp(buf, "Hello"), "truncated decode: %d '%s'", l, buf);
    l = vkl_token_to_piece(t, 15043, false, false, buf, sizeof buf);
    CHECK(l == 6 && !memcmp(buf, " Hello", 6), "piece");
    l = vkl_token_to_piece(t, 1, false, false, buf, sizeof buf);
    CHECK(l == 0, "control token piece is empty");
    l = vkl_token_to_piece(t, 1, true, false, buf, sizeof buf);
    CHECK(l == 3 && !memcmp(buf, "<s>", 3), "control token piece on request");
    l = vkl_token_to_piece(t, 3 + 0xE6, false, false, buf, sizeof buf);
    CHECK(l == 1 && (unsigned char)buf[0] == 0xE6, "byte token piece");
    CHECK(vkl_token_to_piece(t, 32000, false, false, buf, sizeof buf) == -1 &&
              vkl_token_to_piece(t, -1, false, false, buf, sizeof buf) == -1, "bad id");

    /* Too-small output buffer: nothing past it is written, the needed count comes back. */
    vkl_error err = {{0}};
    int32_t small[3] = {-7, -7, -7};
    n = vkl_tokenize(t, "Hello world", 11, true, false, small, 2, &err);
    CHECK(n == -3 && small[2] == -7 && strstr(err.msg, "3 tokens"), "too small: %d '%s'", n, err.msg);
    CHECK(vkl_tokenize(t, "Hello world", 11, true, false, NULL, 0, &err) == 3, "count only");
}

static void test_streaming(const vkl_tokenizer *t) {
    int32_t ids[MAX_TOKENS];
    char out[1024];
    /* 🦙 is not in the vocabulary: four byte tokens, printed only once all four arrived. */
    int n = tokenize(t, "\xf0\x9f\xa6\x99!", false, false, ids);
    CHECK(n == 6 && ids[0] == 29871 && ids[1] == 3 + 0xF0 && ids[4] == 3 + 0x99, "llama emoji tokens (n=%d)", n);
    if (n == 6) {
        vkl_detok d;
        vkl_detok_init(&d, t, false, true);
        int w0 = vkl_detok_push(&d, ids[0], out, sizeof out); /* "▁" prefix, stripped */
        int w1 = vkl_detok_push(&d, ids[1], out, sizeof out);
        int w2 = vkl_detok_push(&d, ids[2], out, sizeof out);
        int w3 = vkl_detok_push(&d, ids[3], out, sizeof out);
        CHECK(w0 == 0 && w1 == 0 && w2 == 0 && w3 == 0, "partial emoji held back: %d %d %d %d", w0, w1, w2, w3);
        int w4 = vkl_detok_push(&d, ids[4], out, sizeof out);
        CHECK(w4 == 4 && !memcmp(out, "\xf0\x9f\xa6\x99", 4), "emoji emitted when complete (%d)", w4);
        int w5 = vkl_detok_push(&d, ids[5], out, sizeof out);
        CHECK(w5 == 1 && out[0] == '!', "ascii after emoji");
        CHECK(vkl_detok_flush(&d, out, sizeof out) == 0, "nothing pending");
    }
    /* CJK and mixed text through the streaming decoder, token by token. */
    static const char *const texts[] = {"我想在apple工作1314151天～", "нещо на Български", "Cửa Việt 😁 ?",
                                        "កាន់តែពិសេសអាចខលចេញ", " leading and  double  spaces\n\ttab"};
    for (size_t i = 0; i < VKL_ARRAY_LEN(texts); i++) {
        n = tokenize(t, texts[i], true, false, ids);
        vkl_detok d;
        vkl_detok_init(&d, t, false, true);
        size_t o = 0;
        bool each_valid = true;
        for (int k = 0; k < n; k++) {
            int w = vkl_detok_push(&d, ids[k], out + o, sizeof out - o);
            CHECK(w >= 0, "push");
            if (w < 0) break;
            each_valid &= valid_utf8(out + o, (size_t)w);
            o += (size_t)w;
        }
        o += (size_t)vkl_detok_flush(&d, out + o, sizeof out - o);
        CHECK(each_valid, "every chunk is whole characters ('%s')", texts[i]);
        CHECK(o == strlen(texts[i]) && !memcmp(out, texts[i], o), "streamed '%s' -> '%.*s'", texts[i], (int)o, out);
    }
    /* Invalid sequences: a lead byte cut short by ASCII, a stray continuation byte, and a
     * sequence left incomplete at the end all become U+FFFD. */
    vkl_detok d;
    vkl_detok_init(&d, t, false, false);
    int32_t a_tok = vkl_tokenizer_find(t, "a", 1);
    size_t o = 0;
    o += (size_t)vkl_detok_push(&d, 3 + 0xE6, out + o, sizeof out - o);
    o += (size_t)vkl_detok_push(&d, a_tok, out + o, sizeof out - o);
    o += (size_t)vkl_detok_push(&d, 3 + 0x80, out + o, sizeof out - o);
    o += (size_t)vkl_detok_push(&d, 3 + 0xF0, out + o, sizeof out - o);
    o += (size_t)vkl_detok_push(&d, 3 + 0x9F, out + o, sizeof out - o);
    CHECK(o == 7 && !memcmp(out, "\xef\xbf\xbd" "a" "\xef\xbf\xbd", 7), "invalid bytes: %zu", o);
    int w = vkl_detok_flush(&d, out, sizeof out);
    CHECK(w == 3 && !memcmp(out, "\xef\xbf\xbd", 3), "flush of an incomplete sequence");
    CHECK(vkl_detok_push(&d, 15043, out, 4) == -1, "too-small buffer refused");
    CHECK(vkl_detok_push(&d, 15043, out, sizeof out) == 6 && !memcmp(out, " Hello", 6), "not at start: space kept");
    /* BOS is invisible and keeps the stream "at start". */
    vkl_detok_init(&d, t, false, true);
    CHECK(vkl_detok_push(&d, 1, out, sizeof out) == 0, "BOS prints nothing");
    CHECK(vkl_detok_push(&d, 15043, out, sizeof out) == 5 && !memcmp(out, "Hello", 5), "first piece loses its space");
}

/* Random texts made of whole characters (but not "▁", which SentencePiece decodes as a space)
 * round-trip exactly; arbitrary bytes (invalid UTF-8, where a lead byte swallows what follows, as
 * in llama.cpp) still encode and decode. */
static void test_random_texts(const vkl_tokenizer *t) {
    static const char *const chars[] = {"a", "b", " ", "c", "\n", "\t", "\xc3\xa9", "\xf0\x9f\xa6\x99",
                                        "<s>", "\xe6\x88\x91", "\xc3\xbf", "1", "!", "  "};
    uint64_t st = 1;
    int ok = 0, raw_ok = 0, cases = 300;
    for (int c = 0; c < cases; c++) {
        char text[256], dec[1024];
        int32_t ids[512];
        size_t len = 0;
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        for (int k = (int)(st >> 58); k > 0; k--) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            const char *ch = chars[(st >> 33) % VKL_ARRAY_LEN(chars)];
            memcpy(text + len, ch, strlen(ch));
            len += strlen(ch);
        }
        vkl_error err = {{0}};
        int n = vkl_tokenize(t, text, len, c % 2 == 0, false, ids, 512, &err);
        int l = n >= 0 ? vkl_detokenize(t, ids, n, false, dec, sizeof dec) : -1;
        bool same = l == (int)len && !memcmp(dec, text, len);
        if (!same && c - ok < 3) printf("round trip failed: '%.*s' -> '%.*s'\n", (int)len, text, VKL_MAX(l, 0), dec);
        ok += same;
        for (size_t i = 0; i < len; i++) { /* now the same length of arbitrary bytes */
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            text[i] = (char)(st >> 56);
        }
        n = vkl_tokenize(t, text, len, false, true, ids, 512, &err);
        raw_ok += n >= 0 && vkl_detokenize(t, ids, n, true, dec, sizeof dec) >= 0;
    }
    CHECK(ok == cases, "random texts round trip: %d/%d", ok, cases);
    CHECK(raw_ok == cases, "random bytes encode and decode: %d/%d", raw_ok, cases);
}

/* Writes a vocab-only GGUF with the given model and token list (and optional extras). */
static bool write_vocab(const char *path, const char *model, int n_tokens, int n_scores, int64_t bos) {
    vkl_error err = {{0}};
    gguf_writer *w = gguf_writer_open(path, &err);
    if (!w) return false;
    static const char *words[] = {"<unk>", "<s>", "</s>", ("\xe2\x96\x81" "a"), "b", "ab"};
    gguf_str strs[6];
    float scores[6] = {0, 0, 0, -1, -2, -3};
    int32_t types[6] = {2, 3, 3, 1, 1, 1};
    for (int i = 0; i < 6; i++) strs[i] = (gguf_str){strlen(words[i]), words[i]};
    gguf_value v = {.type = GGUF_VT_ARRAY};
    bool ok = gguf_writer_add_str(w, "general.architecture", "llama", &err) == 0;
    if (model) ok = ok && gguf_writer_add_str(w, "tokenizer.ggml.model", model, &err) == 0;
    if (n_tokens > 0) {
        v.v.arr.type = GGUF_VT_STRING, v.v.arr.n = (uint64_t)n_tokens, v.v.arr.strs = strs;
        ok = ok && gguf_writer_add_kv(w, "tokenizer.ggml.tokens", &v, &err) == 0;
    }
    if (n_scores > 0) {
        v.v.arr.type = GGUF_VT_FLOAT32, v.v.arr.n = (uint64_t)n_scores, v.v.arr.data = scores, v.v.arr.strs = NULL;
        ok = ok && gguf_writer_add_kv(w, "tokenizer.ggml.scores", &v, &err) == 0;
        v.v.arr.type = GGUF_VT_INT32, v.v.arr.data = types;
        ok = ok && gguf_writer_add_kv(w, "tokenizer.ggml.token_type", &v, &err) == 0;
    }
    if (bos >= 0) ok = ok && gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos, &err) == 0;
    if (!ok) {
        fprintf(stderr, "writing %s: %s\n", path, err.msg);
        gguf_writer_abort(w);
        return false;
    }
    return gguf_writer_close(w, &err) == 0;
}

/* Loads path and returns the error message ("" on success). */
static const char *load_error(const char *path, vkl_error *err) {
    err->msg[0] = 0;
    gguf_file *f = gguf_open(path, err);
    if (!f) return err->msg;
    vkl_tokenizer *t = vkl_tokenizer_load(f, err);
    gguf_close(f);
    if (t) {
        err->msg[0] = 0;
        vkl_tokenizer_free(t);
    }
    return err->msg;
}

static void test_loader_errors(const char *tmpdir) {
    char path[512];
    vkl_error err;
    snprintf(path, sizeof path, "%s/tok-bert.gguf", tmpdir);
    CHECK(write_vocab(path, "bert", 6, 6, -1), "write bert vocab");
    CHECK(strstr(load_error(path, &err), "tokenizer model 'bert' is not supported"), "bert: '%s'", err.msg);

    snprintf(path, sizeof path, "%s/tok-notok.gguf", tmpdir);
    CHECK(write_vocab(path, "llama", 0, 0, -1), "write");
    CHECK(strstr(load_error(path, &err), "tokenizer.ggml.tokens is missing"), "no tokens: '%s'", err.msg);

    snprintf(path, sizeof path, "%s/tok-nomodel.gguf", tmpdir);
    CHECK(write_vocab(path, NULL, 6, 6, -1), "write");
    CHECK(strstr(load_error(path, &err), "tokenizer.ggml.model is missing"), "no model: '%s'", err.msg);

    snprintf(path, sizeof path, "%s/tok-scores.gguf", tmpdir);
    CHECK(write_vocab(path, "llama", 6, 5, -1), "write");
    CHECK(strstr(load_error(path, &err), "tokenizer.ggml.scores has 5"), "scores mismatch: '%s'", err.msg);

    snprintf(path, sizeof path, "%s/tok-bos.gguf", tmpdir);
    CHECK(write_vocab(path, "llama", 6, 6, 6), "write");
    CHECK(strstr(load_error(path, &err), "bos_token_id = 6 is out of range"), "bos range: '%s'", err.msg);

    /* A tiny valid vocabulary: merges by score, and no byte tokens -> unknown id. */
    snprintf(path, sizeof path, "%s/tok-tiny.gguf", tmpdir);
    CHECK(write_vocab(path, "llama", 6, 6, 1), "write");
    gguf_file *f = gguf_open(path, &err);
    vkl_tokenizer *t = f ? vkl_tokenizer_load(f, &err) : NULL;
    gguf_close(f);
    CHECK(t != NULL, "tiny vocab: %s", err.msg);
    if (t) {
        int32_t ids[16];
        int n = vkl_tokenize(t, "abz", 3, false, false, ids, 16, &err);
        /* "▁a" (-1) beats "ab" (-3): ▁a, b, then z has no token and no byte fallback -> <unk>. */
        CHECK(n == 3 && ids[0] == 3 && ids[1] == 4 && ids[2] == 0, "tiny vocab encode: n=%d", n);
        vkl_tokenizer_free(t);
    }
}

/* ---- byte-level BPE on a synthetic vocabulary (no fixtures needed) -------------------------- */

/* GPT-2's alphabet spells " " as "Ġ" (U+0120), 0xC3 as "Ã" and 0xA9 as "©". */
static const char *const bpe_words[] = {"a", "b", "ab", "\xc4\xa0", "\xc4\xa0" "ab", "\xc3\x83", "\xc2\xa9",
                                        "<|im_end|>", "<|im_start|>", "<tool>", "c", "d"};
static const int32_t bpe_types[] = {1, 1, 1, 1, 1, 1, 1, 4, 3, 4, 1, 1};

typedef struct {
    const char *pre;            /* tokenizer.ggml.pre, NULL: none */
    const char *const *merges;  /* NULL: no merges key */
    int n_merges;
    bool merges_as_ints;        /* a merges key of the wrong type */
    const char *bad_token;      /* replaces token 0 */
    int add_bos;                /* -1: no key */
    bool no_bos;                /* bos_token_id = 0xFFFFFFFF (none) */
} bpe_spec;

static bool write_bpe_vocab(const char *path, const bpe_spec *sp) {
    vkl_error err = {{0}};
    gguf_writer *w = gguf_writer_open(path, &err);
    if (!w) return false;
    enum { N = VKL_ARRAY_LEN(bpe_words) };
    gguf_str strs[N], ms[8];
    for (int i = 0; i < N; i++) strs[i] = (gguf_str){strlen(bpe_words[i]), bpe_words[i]};
    if (sp->bad_token) strs[0] = (gguf_str){strlen(sp->bad_token), sp->bad_token};
    gguf_value v = {.type = GGUF_VT_ARRAY};
    bool ok = gguf_writer_add_str(w, "general.architecture", "llama", &err) == 0 &&
              gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2", &err) == 0;
    if (sp->pre) ok = ok && gguf_writer_add_str(w, "tokenizer.ggml.pre", sp->pre, &err) == 0;
    v.v.arr.type = GGUF_VT_STRING, v.v.arr.n = N, v.v.arr.strs = strs;
    ok = ok && gguf_writer_add_kv(w, "tokenizer.ggml.tokens", &v, &err) == 0;
    v.v.arr.type = GGUF_VT_INT32, v.v.arr.strs = NULL, v.v.arr.data = bpe_types;
    ok = ok && gguf_writer_add_kv(w, "tokenizer.ggml.token_type", &v, &err) == 0;
    if (sp->merges) {
        for (int i = 0; i < sp->n_merges; i++) ms[i] = (gguf_str){strlen(sp->merges[i]), sp->merges[i]};
        v.v.arr.n = (uint64_t)sp->n_merges;
        if (sp->merges_as_ints) v.v.arr.type = GGUF_VT_INT32, v.v.arr.data = bpe_types;
        else v.v.arr.type = GGUF_VT_STRING, v.v.arr.strs = ms;
        ok = ok && gguf_writer_add_kv(w, "tokenizer.ggml.merges", &v, &err) == 0;
    }
    ok = ok && gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 7, &err) == 0;
    if (sp->no_bos) ok = ok && gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 0xFFFFFFFFu, &err) == 0;
    if (sp->add_bos >= 0) ok = ok && gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", sp->add_bos, &err) == 0;
    if (!ok) {
        fprintf(stderr, "writing %s: %s\n", path, err.msg);
        gguf_writer_abort(w);
        return false;
    }
    return gguf_writer_close(w, &err) == 0;
}

static const char *const good_merges[] = {"a b", "\xc4\xa0 ab", "a b"}; /* a repeated pair keeps rank 0 */

static void test_bpe_loader_errors(const char *tmpdir) {
    static const char *const no_space[] = {"a b", "ab"}, *const lead_space[] = {" ab"}, *const tail[] = {"a "};
    static const struct {
        bpe_spec spec;
        const char *expect;
    } cases[] = {
        {{"gpt-2", NULL, 0, false, NULL, -1, false}, "tokenizer.ggml.merges is missing"},
        {{"gpt-2", good_merges, 2, true, NULL, -1, false}, "tokenizer.ggml.merges"},
        {{"gpt-2", no_space, 2, false, NULL, -1, false}, "tokenizer.ggml.merges[1] is not two pieces"},
        {{"gpt-2", lead_space, 1, false, NULL, -1, false}, "tokenizer.ggml.merges[0] is not two pieces"},
        {{"gpt-2", tail, 1, false, NULL, -1, false}, "tokenizer.ggml.merges[0] is not two pieces"},
        {{"nope-bpe", good_merges, 3, false, NULL, -1, false}, "unknown pre-tokenizer 'nope-bpe'"},
        {{"gpt-2", good_merges, 3, false, "a\xff", -1, false}, "token 0 is not valid UTF-8"},
        {{"gpt-2", good_merges, 3, false, "\xc3\x28", -1, false}, "token 0 is not valid UTF-8"},
        {{"gpt-2", good_merges, 3, false, NULL, 1, true}, "add_bos_token is true but the vocabulary has no BOS"},
        {{"llama-bpe", good_merges, 3, false, NULL, -1, true}, "add_bos_token is true but the vocabulary has no BOS"},
    };
    char path[512];
    snprintf(path, sizeof path, "%s/tok-bpe-bad.gguf", tmpdir);
    for (size_t i = 0; i < VKL_ARRAY_LEN(cases); i++) {
        vkl_error err;
        CHECK(write_bpe_vocab(path, &cases[i].spec), "write case %zu", i);
        const char *msg = load_error(path, &err);
        CHECK(strstr(msg, cases[i].expect) && !strchr(msg, '\n'), "bpe case %zu: '%s' (expected '%s')", i, msg,
              cases[i].expect);
    }
    unlink(path);
}

static void test_bpe_synthetic(const char *tmpdir) {
    char path[512];
    snprintf(path, sizeof path, "%s/tok-bpe.gguf", tmpdir);
    bpe_spec spec = {"gpt-2", good_merges, 3, false, NULL, -1, false};
    CHECK(write_bpe_vocab(path, &spec), "write the BPE vocabulary");
    vkl_error err = {{0}};
    gguf_file *f = gguf_open(path, &err);
    vkl_tokenizer *t = f ? vkl_tokenizer_load(f, &err) : NULL;
    gguf_close(f);
    CHECK(t != NULL, "BPE vocabulary: %s", err.msg);
    unlink(path);
    if (!t) return;
    static const struct {
        const char *text;
        bool parse_special;
        int n;
        int32_t ids[4];
    } cases[] = {
        {" ab", false, 1, {4}},                        /* Ġ a b -> Ġ ab -> Ġab */
        {"ab ab", false, 2, {2, 4}},                   /* "ab" and " ab" are two words */
        {"ba", false, 2, {1, 0}},                      /* no merge for "b a" */
        {"\xc3\xa9", false, 2, {5, 6}},                /* é: its two bytes, no merge */
        {"a<tool>b", false, 3, {0, 9, 1}},             /* user-defined tokens are always parsed */
        {"<|im_start|>d<|im_end|>", true, 3, {8, 11, 7}},
        {"z", false, 0, {0}},                          /* no token for the byte: dropped, as llama.cpp does */
    };
    for (size_t i = 0; i < VKL_ARRAY_LEN(cases); i++) {
        int32_t ids[16];
        int n = vkl_tokenize(t, cases[i].text, strlen(cases[i].text), true, cases[i].parse_special, ids, 16, &err);
        CHECK(n == cases[i].n && !memcmp(ids, cases[i].ids, (size_t)VKL_MAX(n, 0) * sizeof *ids),
              "BPE case %zu '%s': %d tokens (%d %d)", i, cases[i].text, n, n > 0 ? ids[0] : -1, n > 1 ? ids[1] : -1);
    }
    /* llama.cpp's defaults for BPE: no BOS added, BOS id 11 when the file names none. */
    CHECK(!vkl_tokenizer_add_bos(t) && vkl_tokenizer_bos(t) == 11 && vkl_tokenizer_eos(t) == 7, "BPE defaults");
    /* <|im_end|> was stored as user-defined: by its name it ends generation and is a control token. */
    CHECK(vkl_token_is_eog(t, 7) && vkl_token_get_type(t, 7) == VKL_TOKEN_CONTROL && !vkl_token_is_eog(t, 8) &&
              !vkl_token_is_eog(t, 0), "BPE end-of-generation tokens");
    char buf[64];
    int32_t seq[] = {4, 0, 5, 6, 7, 9};
    int l = vkl_detokenize(t, seq, 6, false, buf, sizeof buf);
    CHECK(l == 12 && !strcmp(buf, " aba\xc3\xa9<tool>"), "BPE decode: %d '%s'", l, buf);
    l = vkl_detokenize(t, seq, 6, true, buf, sizeof buf);
    CHECK(!strcmp(buf, " aba\xc3\xa9<|im_end|><tool>"), "BPE decode with specials: '%s'", buf);
    /* Streaming: "Ã" is the first byte of é, held back until "©" completes it. */
    vkl_detok d;
    vkl_detok_init(&d, t, false, true);
    char out[64];
    int w0 = vkl_detok_push(&d, 4, out, sizeof out);
    CHECK(w0 == 3 && !memcmp(out, " ab", 3), "BPE stream keeps the leading space: %d", w0);
    CHECK(vkl_detok_push(&d, 5, out, sizeof out) == 0, "half a character is held back");
    int w2 = vkl_detok_push(&d, 6, out, sizeof out);
    CHECK(w2 == 2 && !memcmp(out, "\xc3\xa9", 2), "the character comes out whole: %d", w2);
    CHECK(vkl_detok_push(&d, 7, out, sizeof out) == 0 && vkl_detok_flush(&d, out, sizeof out) == 0, "EOG prints nothing");
    vkl_tokenizer_free(t);
}

static int run_cli(const char *args, char *out, size_t cap) {
    char cmd[2048], tmp[64];
    snprintf(tmp, sizeof tmp, "/tmp/vkllm-tok-cli-%d.txt", (int)getpid());
    snprintf(cmd, sizeof cmd, "'%s' tokenize %s > %s 2>&1", VKLLM_CLI, args, tmp);
    int rc = system(cmd);
    size_t n = 0;
    char *s = test_read_file(tmp, &n);
    out[0] = 0;
    if (s) {
        snprintf(out, cap, "%s", s);
        free(s);
    }
    unlink(tmp);
    return rc;
}

static void test_cli(const char *vocab, const char *tmpdir) {
    if (access(VKLLM_CLI, X_OK) != 0) {
        printf("skipping CLI checks: %s not built\n", VKLLM_CLI);
        return;
    }
    char args[1400], out[4096];
    snprintf(args, sizeof args, "-m '%s' -p 'Hello world'", vocab);
    int rc = run_cli(args, out, sizeof out);
    CHECK(rc == 0 && !strcmp(out, "[1, 15043, 3186]\n"), "cli ids: rc %d '%s'", rc, out);
    snprintf(args, sizeof args, "-m '%s' -p 'Hello world' --no-bos --pieces", vocab);
    rc = run_cli(args, out, sizeof out);
    CHECK(rc == 0 && !strcmp(out, " 15043 -> ' Hello'\n  3186 -> ' world'\n"), "cli pieces: '%s'", out);
    snprintf(args, sizeof args, "-m '%s' -p '<s>Hi</s>' --no-bos", vocab);
    rc = run_cli(args, out, sizeof out);
    CHECK(rc == 0 && !strncmp(out, "[1, ", 4) && strstr(out, ", 2]\n"), "cli parses specials by default: '%s'", out);
    snprintf(args, sizeof args, "-m '%s' -p '<s>' --no-bos --no-parse-special", vocab);
    rc = run_cli(args, out, sizeof out);
    CHECK(rc == 0 && !strstr(out, "[1") && !strstr(out, " 1,"), "cli --no-parse-special: '%s'", out);

    rc = run_cli("-p 'Hello'", out, sizeof out);
    CHECK(rc != 0 && strstr(out, "missing -m") && !strchr(strchr(out, '\n') + 1, '\n'), "cli no -m: '%s'", out);
    rc = run_cli("-m /nonexistent/model.gguf -p 'Hello'", out, sizeof out);
    CHECK(rc != 0 && strstr(out, "vkllm tokenize: ") && strchr(out, '\n') == out + strlen(out) - 1, "cli missing file: '%s'", out);
    snprintf(args, sizeof args, "-m '%s/tok-bert.gguf' -p 'Hello'", tmpdir);
    rc = run_cli(args, out, sizeof out);
    CHECK(rc != 0 && strstr(out, "not supported") && strchr(out, '\n') == out + strlen(out) - 1, "cli bert: '%s'", out);
    bpe_spec spec = {"nope-bpe", good_merges, 3, false, NULL, -1, false};
    snprintf(args, sizeof args, "%s/tok-bpe-pre.gguf", tmpdir);
    CHECK(write_bpe_vocab(args, &spec), "write");
    snprintf(args, sizeof args, "-m '%s/tok-bpe-pre.gguf' -p 'Hello'", tmpdir);
    rc = run_cli(args, out, sizeof out);
    CHECK(rc != 0 && strstr(out, "unknown pre-tokenizer 'nope-bpe'") && strchr(out, '\n') == out + strlen(out) - 1,
          "cli unknown pre-tokenizer: '%s'", out);
}

/* ---- the other fixture vocabularies and the fixture models' prompts ------------------------- */

static vkl_tokenizer *load_tokenizer(const char *path) {
    vkl_error err = {{0}};
    gguf_file *f = gguf_open(path, &err);
    vkl_tokenizer *t = f ? vkl_tokenizer_load(f, &err) : NULL;
    gguf_close(f);
    CHECK(t != NULL, "%s: %s", path, err.msg);
    return t;
}

/* Phi-3's chat tokens: parsed as special tokens, each swallowing the newline after it. */
static void test_phi3_specials(const vkl_tokenizer *t) {
    int32_t ids[MAX_TOKENS];
    int n = tokenize(t, "<|user|>\nHello<|end|>\n<|assistant|>", false, true, ids);
    CHECK(n == 4 && ids[0] == 32010 && ids[1] == 15043 && ids[2] == 32007 && ids[3] == 32001, "phi-3 chat tokens (n=%d)", n);
    CHECK(vkl_token_is_eog(t, 32000) && vkl_token_is_eog(t, 32007) && !vkl_token_is_eog(t, 32010) &&
              !vkl_token_is_eog(t, 1), "phi-3 end-of-generation tokens");
    n = tokenize(t, "<|end|>", false, false, ids);
    CHECK(n > 1, "phi-3: without special parsing <|end|> is text");
}

/* `vkllm tokenize` prints what the library computes. */
static void test_cli_vocab(const vkl_tokenizer *t, const char *path) {
    static const char text[] = "Hello world, it's 2024!";
    int32_t ids[64];
    int n = tokenize(t, text, true, true, ids);
    char expect[1024] = "[", args[1400], out[4096];
    for (int i = 0; i < n; i++)
        snprintf(expect + strlen(expect), sizeof expect - strlen(expect), i ? ", %d" : "%d", ids[i]);
    strcat(expect, "]\n");
    snprintf(args, sizeof args, "-m '%s' -p \"%s\"", path, text);
    int rc = run_cli(args, out, sizeof out);
    CHECK(rc == 0 && !strcmp(out, expect), "cli on %s: rc %d '%s', expected '%s'", path, rc, out, expect);
}

/* The pre-tokenizers without reference vectors of their own (tekken, gpt-4o, llama-bpe's twin
 * dbrx, default), run with the GPT-2 vocabulary: the ids must be those of the words the
 * pre-tokenizer's expressions give, each encoded alone. */
static bool write_retagged(const char *src, const char *dst, const char *pre) {
    vkl_error err = {{0}};
    gguf_file *f = gguf_open(src, &err);
    gguf_writer *w = f ? gguf_writer_open(dst, &err) : NULL;
    bool ok = w != NULL;
    for (uint64_t i = 0; ok && i < f->n_kv; i++) {
        char key[256];
        const gguf_kv *kv = &f->kv[i];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.data);
        if (strcmp(key, "tokenizer.ggml.pre") != 0) ok = gguf_writer_add_kv(w, key, &kv->value, &err) == 0;
    }
    ok = ok && gguf_writer_add_str(w, "tokenizer.ggml.pre", pre, &err) == 0;
    if (w && !ok) gguf_writer_abort(w);
    ok = ok && gguf_writer_close(w, &err) == 0;
    gguf_close(f);
    CHECK(ok, "retagging %s as %s: %s", src, pre, err.msg);
    return ok;
}

static void test_pretok_splits(const char *dir) {
    static const struct {
        const char *pre, *words[8];
    } cases[] = {
        {"tekken", {"Hello", "World", " ", "2", "0", "2", "4", "!"}},
        {"gpt-4o", {"Hello", "World", " ", "202", "4", "!"}},
        {"dbrx", {"HelloWorld", " ", "202", "4", "!"}},
        {"llama-bpe", {"HelloWorld", " ", "202", "4", "!"}},
        {"default", {"HelloWorld", " ", "202", "4", "!"}},
    };
    static const char text[] = "HelloWorld 2024!";
    char src[1024], dst[1024];
    test_path(src, sizeof src, dir, "vocab/ggml-vocab-gpt-2.gguf");
    if (access(src, R_OK) != 0) return; /* reported with the other vocabularies */
    vkl_tokenizer *base = load_tokenizer(src);
    snprintf(dst, sizeof dst, "/tmp/vkllm-tok-retag-%d.gguf", (int)getpid());
    for (size_t c = 0; base && c < VKL_ARRAY_LEN(cases); c++) {
        if (!write_retagged(src, dst, cases[c].pre)) break;
        vkl_tokenizer *t = load_tokenizer(dst);
        if (!t) break;
        int32_t expect[64], ids[64];
        int n_expect = 0;
        for (int k = 0; k < 8 && cases[c].words[k]; k++)
            n_expect += tokenize(base, cases[c].words[k], false, false, expect + n_expect);
        int n = tokenize(t, text, false, false, ids);
        CHECK(n == n_expect && !memcmp(ids, expect, (size_t)n * sizeof *ids), "pre-tokenizer %s: %d ids, expected %d",
              cases[c].pre, n, n_expect);
        vkl_tokenizer_free(t);
    }
    unlink(dst);
    vkl_tokenizer_free(base);
}

/* The tokenizer of the shared fixture file REL, or NULL (REL appended to missing when absent). */
static vkl_tokenizer *load_shared(const char *dir, const char *rel, char *missing, size_t cap, char *path,
                                  size_t path_cap) {
    test_path(path, path_cap, dir, rel);
    if (access(path, R_OK) == 0) return load_tokenizer(path);
    snprintf(missing + strlen(missing), cap - strlen(missing), " %s", rel);
    return NULL;
}

static void test_other_vocabs(const char *dir) {
    static const char *const names[] = {"gpt-2", "deepseek-llm", "deepseek-coder", "falcon", "mpt", "starcoder",
                                        "refact", "phi-3"};
    /* The architecture fixtures: LLaMA 3 (llama-bpe), Qwen 2/3 (qwen2) and Phi-3 (SPM). */
    static const char *const models[] = {"arch-llama3-q4_k_m", "arch-qwen2-q4_k_m", "arch-qwen3-q4_k_m", "arch-phi3-q4_0"};
    char missing[512] = "", path[1024], rel[256];
    for (size_t i = 0; i < VKL_ARRAY_LEN(names); i++) {
        snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", names[i]);
        vkl_tokenizer *t = load_shared(dir, rel, missing, sizeof missing, path, sizeof path);
        if (!t) continue;
        test_vectors(t, dir, names[i]);
        if (!strcmp(names[i], "phi-3")) test_phi3_specials(t);
        if (access(VKLLM_CLI, X_OK) == 0) test_cli_vocab(t, path);
        vkl_tokenizer_free(t);
    }
    for (size_t i = 0; i < VKL_ARRAY_LEN(models); i++) {
        snprintf(rel, sizeof rel, "arch/%s.gguf", models[i]);
        vkl_tokenizer *t = load_shared(dir, rel, missing, sizeof missing, path, sizeof path);
        if (!t) continue;
        snprintf(rel, sizeof rel, "arch/ref/%s.bpe.tokens.txt", models[i]);
        check_prompt(t, dir, "prompts/bpe.txt", rel);
        vkl_tokenizer_free(t);
    }
    test_pretok_splits(dir);
    if (missing[0]) printf("shared fixtures not found, their cases skipped:%s\n", missing);
}

int main(void) {
    char tmpdir[256];
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vkllm-test-tok-%d", (int)getpid());
    mkdir(tmpdir, 0700);
    test_loader_errors(tmpdir);
    test_bpe_loader_errors(tmpdir);
    test_bpe_synthetic(tmpdir);

    /* The vocabulary and its vectors are in the in-repository set; the larger set adds the reference
     * prompts' tokens and the other vocabularies (BPE and Phi-3). */
    const char *repo = test_repo_fixtures(), *dir = test_fixtures_dir();
    {
        char path[1024];
        test_path(path, sizeof path, repo, "vocab/ggml-vocab-llama-spm.gguf");
        vkl_error err = {{0}};
        gguf_file *f = gguf_open(path, &err);
        CHECK(f != NULL, "%s", err.msg);
        double t0 = vkl_time_s();
        vkl_tokenizer *t = f ? vkl_tokenizer_load(f, &err) : NULL;
        double dt = vkl_time_s() - t0;
        gguf_close(f);
        CHECK(t != NULL, "load: %s", err.msg);
        if (t) {
            printf("vocabulary loaded in %.2f ms\n", dt * 1e3);
            test_vectors(t, repo, "llama-spm");
            if (dir) test_prompts(t, dir);
            test_special_and_bos(t);
            test_streaming(t);
            test_random_texts(t);
            vkl_tokenizer_free(t);
            test_cli(path, tmpdir);
        }
        if (dir) test_other_vocabs(dir);
    }
    static const char *const names[] = {"tok-bert",   "tok-bpe-pre", "tok-notok", "tok-nomodel",
                                        "tok-scores", "tok-bos",     "tok-tiny"};
    for (size_t i = 0; i < VKL_ARRAY_LEN(names); i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s.gguf", tmpdir, names[i]);
        unlink(p);
    }
    rmdir(tmpdir);
    return test_finish();
}
