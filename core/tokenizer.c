/* The vocabulary, special tokens, decoding and the SentencePiece model (GGUF tokenizer model
 * "llama"); byte-level BPE is in tokenizer_bpe.c. See tokenizer.h. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"

#define SPACE_MARK "\xe2\x96\x81" /* U+2581 "▁", SentencePiece's visible space */
#define SPACE_MARK_LEN 3

/* ---- hash map ------------------------------------------------------------------------------ */

uint64_t vkl_tok_hash(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then a final mix for the low bits */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

int32_t vkl_tokenizer_find(const vkl_tokenizer *t, const char *s, size_t n) {
    for (uint64_t i = vkl_tok_hash(s, n) & t->table_mask;; i = (i + 1) & t->table_mask) {
        int32_t id = t->table[i];
        if (id < 0) return -1;
        if (t->text_len[id] == n && memcmp(t->text[id], s, n) == 0) return id;
    }
}

/* Later duplicates replace earlier ones, as llama.cpp's map assignment does. */
static void table_insert(vkl_tokenizer *t, int32_t id) {
    for (uint64_t i = vkl_tok_hash(t->text[id], t->text_len[id]) & t->table_mask;; i = (i + 1) & t->table_mask) {
        int32_t cur = t->table[i];
        if (cur < 0 || (t->text_len[cur] == t->text_len[id] &&
                        memcmp(t->text[cur], t->text[id], t->text_len[id]) == 0)) {
            t->table[i] = id;
            return;
        }
    }
}

/* ---- loading ------------------------------------------------------------------------------- */

void vkl_tokenizer_free(vkl_tokenizer *t) {
    if (!t) return;
    free(t->text);
    free(t->text_len);
    free(t->piece);
    free(t->piece_len);
    free(t->score);
    free(t->type);
    free(t->flags);
    free(t->arena);
    free(t->table);
    free(t->special_ids);
    vkl_bpe_free(t->bpe);
    free(t);
}

/* Reads an optional token id key into *out (left unchanged when absent). */
static int read_special_id(const gguf_file *f, const char *key, int32_t n_vocab, int32_t *out, vkl_error *err) {
    if (!gguf_find_kv(f, key)) return 0;
    int64_t v;
    if (gguf_get_i64(f, key, &v, err) < 0) return -1;
    if (v == -1 || v == 0xFFFFFFFFll) { /* some converters write -1 (or its u32) for "none" */
        *out = -1;
        return 0;
    }
    if (v < 0 || v >= n_vocab)
        return vkl_fail(err, "%s = %lld is out of range (vocabulary has %d tokens)", key, (long long)v, n_vocab);
    *out = (int32_t)v;
    return 0;
}

static int read_bool(const gguf_file *f, const char *key, bool *out, vkl_error *err) {
    if (!gguf_find_kv(f, key)) return 0;
    return gguf_get_bool(f, key, out, err);
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* "<0xAB>" -> 0xAB, else -1. */
static int parse_byte_token(const char *s, uint32_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int hi = hex_digit(s[3]), lo = hex_digit(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* Tokens llama.cpp recognises by their text: those that end generation (end of turn, end of
 * text, and the fill-in-the-middle padding/repository/file markers) ... */
static const char *const eog_names[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
    "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
    "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>", /* <｜end▁of▁sentence｜> */
    "[e~[", "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", "<|fim_repo|>", "<|repo_name|>",
    "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>"};
/* ... and the other fill-in-the-middle markers. All of them are control tokens, whatever type the
 * file gives them. */
static const char *const fim_names[] = {
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>",
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>",
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>",
    "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "hole\xef\xbd\x9c>",
    "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>"};

static bool in_list(const char *s, const char *const *names, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(s, names[i])) return true;
    return false;
}

typedef struct {
    uint32_t first, len;
    int32_t id;
} special_key;

/* By first byte, then longest first (so the first match found is the longest), then id. */
static int cmp_special(const void *a, const void *b) {
    const special_key *x = a, *y = b;
    if (x->first != y->first) return x->first < y->first ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static bool is_special_type(uint8_t ty) {
    return ty == VKL_TOKEN_CONTROL || ty == VKL_TOKEN_USER_DEFINED || ty == VKL_TOKEN_UNKNOWN;
}

static int build_specials(vkl_tokenizer *t, vkl_error *err) {
    int32_t n = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) n += is_special_type(t->type[i]) && t->text_len[i] > 0;
    special_key *keys = vkl_malloc((size_t)n * sizeof *keys, err);
    t->special_ids = keys ? vkl_malloc((size_t)n * sizeof(int32_t), err) : NULL;
    if (!t->special_ids) {
        free(keys);
        return -1;
    }
    n = 0;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (is_special_type(t->type[i]) && t->text_len[i] > 0)
            keys[n++] = (special_key){(uint8_t)t->text[i][0], t->text_len[i], i};
    qsort(keys, (size_t)n, sizeof *keys, cmp_special);
    int32_t k = 0;
    for (int b = 0; b <= 256; b++) {
        while (k < n && keys[k].first < (uint32_t)b) k++;
        t->special_start[b] = k;
    }
    for (int32_t i = 0; i < n; i++) t->special_ids[i] = keys[i].id;
    free(keys);
    return 0;
}

/* The token arrays: texts (required), scores and types (optional), with their sizes checked. */
typedef struct {
    const gguf_value *toks, *scores, *types;
} vocab_arrays;

static int read_arrays(const gguf_file *f, vocab_arrays *a, vkl_error *err) {
    *a = (vocab_arrays){0};
    if (!gguf_find_kv(f, "tokenizer.ggml.tokens")) return vkl_fail(err, "tokenizer.ggml.tokens is missing");
    if (gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_VT_STRING, &a->toks, err) < 0) return -1;
    uint64_t n = a->toks->v.arr.n;
    if (n == 0 || n > (uint64_t)INT32_MAX / 4)
        return vkl_fail(err, "tokenizer.ggml.tokens has %llu entries", (unsigned long long)n);
    if (gguf_find_kv(f, "tokenizer.ggml.scores")) {
        if (gguf_get_arr(f, "tokenizer.ggml.scores", GGUF_VT_COUNT, &a->scores, err) < 0) return -1;
        gguf_vtype et = a->scores->v.arr.type;
        if (a->scores->v.arr.n != n || et > GGUF_VT_FLOAT64 || et == GGUF_VT_STRING || et == GGUF_VT_ARRAY ||
            et == GGUF_VT_BOOL)
            return vkl_fail(err, "tokenizer.ggml.scores has %llu numeric entries of type %s, expected %llu",
                            (unsigned long long)a->scores->v.arr.n, gguf_vtype_name(et), (unsigned long long)n);
    }
    if (gguf_find_kv(f, "tokenizer.ggml.token_type")) {
        if (gguf_get_arr(f, "tokenizer.ggml.token_type", GGUF_VT_COUNT, &a->types, err) < 0) return -1;
        gguf_vtype et = a->types->v.arr.type;
        if (a->types->v.arr.n != n || et == GGUF_VT_STRING || et == GGUF_VT_ARRAY || et == GGUF_VT_BOOL ||
            et == GGUF_VT_FLOAT32 || et == GGUF_VT_FLOAT64)
            return vkl_fail(err, "tokenizer.ggml.token_type has %llu entries of type %s, expected %llu integers",
                            (unsigned long long)a->types->v.arr.n, gguf_vtype_name(et), (unsigned long long)n);
    }
    for (uint64_t i = 0; i < n; i++) {
        const gguf_str s = a->toks->v.arr.strs[i];
        if (s.len > (1u << 20))
            return vkl_fail(err, "token %llu is %llu bytes long", (unsigned long long)i, (unsigned long long)s.len);
        if (!gguf_utf8_valid(s.data, s.len)) return vkl_fail(err, "token %llu is not valid UTF-8", (unsigned long long)i);
    }
    return 0;
}

/* Copies the texts, scores and types into t and indexes the texts. */
static int fill_vocab(vkl_tokenizer *t, const vocab_arrays *a, vkl_error *err) {
    uint64_t n = (uint64_t)t->n_vocab, bytes = 0, table_size = 16;
    for (uint64_t i = 0; i < n; i++) bytes += 2 * (a->toks->v.arr.strs[i].len + 1);
    while (table_size < 2 * n) table_size *= 2;
    t->text = vkl_malloc(n * sizeof *t->text, err);
    t->text_len = t->text ? vkl_malloc(n * sizeof *t->text_len, err) : NULL;
    t->piece = t->text_len ? vkl_malloc(n * sizeof *t->piece, err) : NULL;
    t->piece_len = t->piece ? vkl_malloc(n * sizeof *t->piece_len, err) : NULL;
    t->score = t->piece_len ? vkl_malloc(n * sizeof *t->score, err) : NULL;
    t->type = t->score ? vkl_malloc(n, err) : NULL;
    t->flags = t->type ? vkl_calloc(n, 1, err) : NULL;
    t->arena = t->flags ? vkl_malloc(bytes, err) : NULL;
    t->table = t->arena ? vkl_malloc(table_size * sizeof *t->table, err) : NULL;
    if (!t->table) return -1;
    memset(t->table, 0xff, table_size * sizeof *t->table);
    t->table_mask = table_size - 1;

    char *p = t->arena;
    for (uint64_t i = 0; i < n; i++) {
        const gguf_str s = a->toks->v.arr.strs[i];
        memcpy(p, s.data, s.len);
        p[s.len] = 0;
        t->text[i] = p;
        t->text_len[i] = (uint32_t)s.len;
        p += s.len + 1;
        t->score[i] = a->scores ? (float)gguf_arr_f64(a->scores, i) : 0.0f;
        int64_t ty = a->types ? gguf_arr_i64(a->types, i) : VKL_TOKEN_NORMAL;
        if (ty < 0 || ty > VKL_TOKEN_BYTE)
            return vkl_fail(err, "token %llu has invalid token type %lld", (unsigned long long)i, (long long)ty);
        t->type[i] = (uint8_t)ty;
        table_insert(t, (int32_t)i);
    }
    return 0;
}

/* The decoded piece of token i into p (room for its text length + 1); returns its length. */
static uint32_t decode_piece(const vkl_tokenizer *t, int32_t i, char *p) {
    const char *s = t->text[i];
    uint32_t sl = t->text_len[i], o = 0;
    if (t->type[i] == VKL_TOKEN_BYTE) {
        int b = parse_byte_token(s, sl);
        if (b >= 0) p[o++] = (char)b;
    } else if (t->type[i] == VKL_TOKEN_NORMAL && t->bpe) {
        o = vkl_bpe_decode_text(s, sl, p);
    } else if (t->type[i] == VKL_TOKEN_NORMAL) {
        for (uint32_t k = 0; k < sl;) {
            if (k + SPACE_MARK_LEN <= sl && !memcmp(s + k, SPACE_MARK, SPACE_MARK_LEN)) {
                p[o++] = ' ';
                k += SPACE_MARK_LEN;
            } else {
                p[o++] = s[k++];
            }
        }
    } else if (t->type[i] != VKL_TOKEN_UNUSED && t->type[i] != VKL_TOKEN_UNDEFINED) {
        memcpy(p, s, sl); /* control/unknown (shown only on request) and user-defined: verbatim */
        o = sl;
    }
    p[o] = 0;
    return o;
}

static void decode_pieces(vkl_tokenizer *t) {
    char *p = (char *)t->text[t->n_vocab - 1] + t->text_len[t->n_vocab - 1] + 1; /* after the texts */
    int max_piece = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        t->piece[i] = p;
        t->piece_len[i] = decode_piece(t, i, p);
        p += t->piece_len[i] + 1;
        max_piece = VKL_MAX(max_piece, (int)t->piece_len[i]);
    }
    t->max_piece_len = max_piece;
}

static int read_keys(vkl_tokenizer *t, const gguf_file *f, vkl_error *err) {
    int32_t fim[3] = {-1, -1, -1};
    if (read_special_id(f, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos, err) < 0 ||
        read_special_id(f, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos, err) < 0 ||
        read_special_id(f, "tokenizer.ggml.unknown_token_id", t->n_vocab, &t->unk, err) < 0 ||
        read_special_id(f, "tokenizer.ggml.padding_token_id", t->n_vocab, &t->pad, err) < 0 ||
        read_special_id(f, "tokenizer.ggml.eot_token_id", t->n_vocab, &t->eot, err) < 0 ||
        read_special_id(f, "tokenizer.ggml.eom_token_id", t->n_vocab, &t->eom, err) < 0 ||
        read_special_id(f, "tokenizer.ggml.fim_pad_token_id", t->n_vocab, &fim[0], err) < 0 ||
        read_special_id(f, "tokenizer.ggml.fim_rep_token_id", t->n_vocab, &fim[1], err) < 0 ||
        read_special_id(f, "tokenizer.ggml.fim_sep_token_id", t->n_vocab, &fim[2], err) < 0 ||
        read_bool(f, "tokenizer.ggml.add_bos_token", &t->add_bos, err) < 0 ||
        read_bool(f, "tokenizer.ggml.add_eos_token", &t->add_eos, err) < 0 ||
        read_bool(f, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, err) < 0)
        return -1;
    if (t->add_bos && t->bos < 0) return vkl_fail(err, "add_bos_token is true but the vocabulary has no BOS token");
    if (t->add_eos && t->eos < 0) return vkl_fail(err, "add_eos_token is true but the vocabulary has no EOS token");
    const int32_t eog_ids[] = {t->eos, t->eot, t->eom, fim[0], fim[1], fim[2]};
    for (size_t i = 0; i < VKL_ARRAY_LEN(eog_ids); i++)
        if (eog_ids[i] >= 0) t->flags[eog_ids[i]] |= TOKF_EOG;
    return 0;
}

/* The end-of-generation and fill-in-the-middle tokens named by their text, as llama.cpp finds
 * them; and Phi-3's special tokens, which swallow the whitespace after them (llama.cpp sets this
 * by the model's name, general.name). */
static void mark_named_tokens(vkl_tokenizer *t, const gguf_file *f) {
    for (int32_t i = 0; i < t->n_vocab; i++) {
        bool eog = in_list(t->text[i], eog_names, VKL_ARRAY_LEN(eog_names));
        if (eog) t->flags[i] |= TOKF_EOG;
        if (eog || in_list(t->text[i], fim_names, VKL_ARRAY_LEN(fim_names))) t->type[i] = VKL_TOKEN_CONTROL;
    }
    char name[256] = "";
    if (!gguf_find_kv(f, "general.name") || gguf_get_cstr(f, "general.name", name, sizeof name, NULL) < 0) return;
    for (char *c = name; *c; c++) *c = (char)tolower((unsigned char)*c);
    if (!strstr(name, "phi-3") && !strstr(name, "phi3")) return;
    static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
    for (int32_t i = 0; i < t->n_vocab; i++) {
        bool special = is_special_type(t->type[i]) || !strcmp(t->text[i], "</s>");
        if (special && !in_list(t->text[i], keep, VKL_ARRAY_LEN(keep))) t->flags[i] |= TOKF_RSTRIP;
    }
}

static void find_byte_tokens(vkl_tokenizer *t) {
    for (int b = 0; b < 256; b++) {
        char buf[8];
        snprintf(buf, sizeof buf, "<0x%02X>", b);
        int32_t id = vkl_tokenizer_find(t, buf, 6);
        if (id < 0) {
            buf[0] = (char)b;
            id = vkl_tokenizer_find(t, buf, 1);
        }
        t->byte_tok[b] = id;
    }
}

vkl_tokenizer *vkl_tokenizer_load(const gguf_file *f, vkl_error *err) {
    gguf_str model;
    vocab_arrays a;
    if (!gguf_find_kv(f, "tokenizer.ggml.model")) {
        vkl_fail(err, "the file has no tokenizer (tokenizer.ggml.model is missing)");
        return NULL;
    }
    if (gguf_get_str(f, "tokenizer.ggml.model", &model, err) < 0) return NULL;
    bool bpe = gguf_str_eq(model, "gpt2");
    if (!bpe && !gguf_str_eq(model, "llama")) {
        vkl_fail(err, "tokenizer model '%.*s' is not supported (supported: 'llama' SentencePiece, 'gpt2' BPE)",
                 (int)VKL_MIN(model.len, 64), model.data);
        return NULL;
    }
    if (read_arrays(f, &a, err) < 0) {
        vkl_error_prefix(err, "tokenizer");
        return NULL;
    }
    vkl_tokenizer *t = vkl_calloc(1, sizeof *t, err);
    if (!t) return NULL;
    int32_t n = (int32_t)a.toks->v.arr.n;
    t->n_vocab = n;
    t->pad = t->eot = t->eom = -1;
    if (bpe) { /* llama.cpp's defaults; the pre-tokenizer decides add_bos */
        t->bos = t->eos = n > 11 ? 11 : -1, t->unk = -1;
        t->add_space_prefix = false;
    } else {
        t->bos = n > 1 ? 1 : -1, t->eos = n > 2 ? 2 : -1, t->unk = 0;
        t->add_bos = true, t->add_space_prefix = true;
    }
    if (fill_vocab(t, &a, err) < 0 || (bpe && vkl_bpe_load(t, f, err) < 0)) goto fail;
    mark_named_tokens(t, f);
    decode_pieces(t);
    if (read_keys(t, f, err) < 0) goto fail;
    find_byte_tokens(t);
    if (build_specials(t, err) < 0) goto fail;
    return t;
fail:
    vkl_error_prefix(err, "tokenizer");
    vkl_tokenizer_free(t);
    return NULL;
}

/* ---- accessors ----------------------------------------------------------------------------- */

int32_t vkl_tokenizer_n_vocab(const vkl_tokenizer *t) { return t->n_vocab; }
int32_t vkl_tokenizer_bos(const vkl_tokenizer *t) { return t->bos; }
int32_t vkl_tokenizer_eos(const vkl_tokenizer *t) { return t->eos; }
int32_t vkl_tokenizer_unk(const vkl_tokenizer *t) { return t->unk; }
int32_t vkl_tokenizer_pad(const vkl_tokenizer *t) { return t->pad; }
int vkl_tokenizer_max_piece_len(const vkl_tokenizer *t) { return t->max_piece_len; }
bool vkl_tokenizer_add_bos(const vkl_tokenizer *t) { return t->add_bos; }
bool vkl_tokenizer_add_eos(const vkl_tokenizer *t) { return t->add_eos; }

static bool valid_id(const vkl_tokenizer *t, int32_t id) { return id >= 0 && id < t->n_vocab; }

vkl_token_type vkl_token_get_type(const vkl_tokenizer *t, int32_t id) {
    return valid_id(t, id) ? (vkl_token_type)t->type[id] : VKL_TOKEN_UNDEFINED;
}
float vkl_token_score(const vkl_tokenizer *t, int32_t id) { return valid_id(t, id) ? t->score[id] : 0.0f; }
const char *vkl_token_text(const vkl_tokenizer *t, int32_t id) { return valid_id(t, id) ? t->text[id] : NULL; }
bool vkl_token_is_eog(const vkl_tokenizer *t, int32_t id) { return valid_id(t, id) && (t->flags[id] & TOKF_EOG); }

/* ---- encoding ------------------------------------------------------------------------------ */

/* Max-heap order: higher score first, then the leftmost pair. */
static bool bigram_before(const vkl_bigram *a, const vkl_bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(vkl_merge_work *w, vkl_bigram b) {
    int32_t i = w->n_heap++;
    while (i > 0) {
        int32_t parent = (i - 1) / 2;
        if (!bigram_before(&b, &w->heap[parent])) break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = b;
}

static vkl_bigram heap_pop(vkl_merge_work *w) {
    vkl_bigram top = w->heap[0], last = w->heap[--w->n_heap];
    int32_t i = 0, n = w->n_heap;
    for (;;) {
        int32_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bigram_before(&w->heap[c + 1], &w->heap[c])) c++;
        if (!bigram_before(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n > 0) w->heap[i] = last;
    return top;
}

static void try_bigram(const vkl_tokenizer *t, vkl_merge_work *w, vkl_pair_score_fn score, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    float sc;
    if (!score(t, w->buf + w->sym[left].start, w->sym[left].len, w->sym[right].len, &sc)) return;
    heap_push(w, (vkl_bigram){sc, left, right, w->sym[left].len + w->sym[right].len});
}

static int utf8_len(uint8_t c) {
    static const uint8_t lens[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lens[c >> 4];
}

int32_t vkl_merge_symbols(const vkl_tokenizer *t, vkl_merge_work *w, size_t n, vkl_pair_score_fn score) {
    if (n == 0) return -1;
    int32_t n_sym = 0;
    for (size_t o = 0; o < n;) {
        size_t l = VKL_MIN((size_t)utf8_len((uint8_t)w->buf[o]), n - o);
        w->sym[n_sym] = (vkl_sym){(int32_t)o, (int32_t)l, n_sym - 1, o + l == n ? -1 : n_sym + 1};
        n_sym++;
        o += l;
    }
    w->n_heap = 0;
    for (int32_t i = 1; i < n_sym; i++) try_bigram(t, w, score, i - 1, i);
    while (w->n_heap > 0) {
        vkl_bigram b = heap_pop(w);
        vkl_sym *l = &w->sym[b.left], *r = &w->sym[b.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != b.len) continue; /* stale entry */
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) w->sym[r->next].prev = b.left;
        try_bigram(t, w, score, l->prev, b.left);
        try_bigram(t, w, score, b.left, l->next);
    }
    return 0;
}

/* SentencePiece merges the pair whose concatenation is the token with the highest score. */
static bool spm_score(const vkl_tokenizer *t, const char *s, int32_t la, int32_t lb, float *score) {
    int32_t id = vkl_tokenizer_find(t, s, (size_t)la + (size_t)lb);
    if (id >= 0) *score = t->score[id];
    return id >= 0;
}

/* Encodes one raw-text fragment (SentencePiece BPE by score, byte fallback). */
static int spm_encode(const vkl_tokenizer *t, const char *text, size_t len, bool prefix, vkl_emitter *e,
                      vkl_error *err) {
    /* The escaped text ("▁" for each space), one symbol per character and the bigram heap, which
     * receives at most n-1 seeds plus 2 per merge. */
    size_t n_spaces = prefix;
    for (size_t i = 0; i < len; i++) n_spaces += text[i] == ' ';
    size_t cap = len + 2 * n_spaces + 1;
    vkl_merge_work w = {0};
    w.buf = vkl_malloc(cap, err);
    w.sym = w.buf ? vkl_malloc(cap * sizeof *w.sym, err) : NULL;
    w.heap = w.sym ? vkl_malloc(3 * cap * sizeof *w.heap, err) : NULL;
    int rc = w.heap ? 0 : -1;
    size_t n = 0;
    if (rc == 0 && prefix) {
        memcpy(w.buf, SPACE_MARK, SPACE_MARK_LEN);
        n = SPACE_MARK_LEN;
    }
    for (size_t i = 0; rc == 0 && i < len; i++) {
        if (text[i] == ' ') {
            memcpy(w.buf + n, SPACE_MARK, SPACE_MARK_LEN);
            n += SPACE_MARK_LEN;
        } else {
            w.buf[n++] = text[i];
        }
    }
    for (int32_t i = rc == 0 ? vkl_merge_symbols(t, &w, n, spm_score) : -1; i >= 0; i = w.sym[i].next) {
        const char *s = w.buf + w.sym[i].start;
        int32_t id = vkl_tokenizer_find(t, s, (size_t)w.sym[i].len);
        if (id >= 0) {
            vkl_emit(e, id);
            continue;
        }
        for (int32_t k = 0; rc == 0 && k < w.sym[i].len; k++) {
            int32_t bt = t->byte_tok[(uint8_t)s[k]];
            if (bt < 0) bt = t->unk;
            if (bt < 0)
                rc = vkl_fail(err, "cannot encode byte 0x%02X: no byte token and no unknown token", (uint8_t)s[k]);
            else
                vkl_emit(e, bt);
        }
    }
    free(w.buf);
    free(w.sym);
    free(w.heap);
    return rc;
}

/* Longest special token matching at text[i..len), or -1. */
static int32_t match_special(const vkl_tokenizer *t, const char *text, size_t len, size_t i, bool parse_special) {
    uint8_t c = (uint8_t)text[i];
    for (int32_t k = t->special_start[c]; k < t->special_start[c + 1]; k++) {
        int32_t id = t->special_ids[k];
        if (!parse_special && t->type[id] != VKL_TOKEN_USER_DEFINED) continue;
        uint32_t l = t->text_len[id];
        if (l <= len - i && memcmp(text + i, t->text[id], l) == 0) return id;
    }
    return -1;
}

static int encode_fragment(const vkl_tokenizer *t, const char *text, size_t len, bool after_special, vkl_emitter *e,
                           vkl_error *err) {
    if (t->bpe) return vkl_bpe_encode(t, text, len, e, err);
    return spm_encode(t, text, len, t->add_space_prefix && after_special, e, err);
}

/* Special tokens are matched left to right, the longest at each position. (llama.cpp matches
 * the longest special token everywhere first, then the shorter ones in what remains: the same
 * split unless one special token's end overlaps another's start, which no vocabulary has.) */
int vkl_tokenize(const vkl_tokenizer *t, const char *text, size_t len, bool add_special,
                 bool parse_special, int32_t *out, int max_out, vkl_error *err) {
    if (len > (size_t)INT32_MAX / 8) {
        vkl_fail(err, "text too long to tokenize (%zu bytes)", len);
        return INT32_MIN;
    }
    vkl_emitter e = {out, out ? VKL_MAX(max_out, 0) : 0, 0};
    bool count_only = out == NULL;
    if (add_special && t->add_bos) vkl_emit(&e, t->bos);

    int rc = 0;
    bool after_special = true; /* the first fragment gets the space prefix, as after BOS */
    size_t frag = 0, i = 0;
    while (rc == 0 && i <= len) {
        int32_t sp = i < len ? match_special(t, text, len, i, parse_special) : -1;
        if (sp < 0 && i < len) {
            i++;
            continue;
        }
        size_t end = i;
        if (sp >= 0 && (t->flags[sp] & TOKF_LSTRIP))
            while (end > frag && isspace((unsigned char)text[end - 1])) end--;
        if (end > frag) {
            rc = encode_fragment(t, text + frag, end - frag, after_special, &e, err);
            after_special = false;
        }
        if (sp < 0) break;
        vkl_emit(&e, sp);
        after_special = true;
        i += t->text_len[sp];
        if (t->flags[sp] & TOKF_RSTRIP)
            while (i < len && isspace((unsigned char)text[i])) i++;
        frag = i;
    }
    if (rc == 0 && add_special && t->add_eos) vkl_emit(&e, t->eos);
    if (rc < 0) return INT32_MIN;
    if (e.n > e.max_out && !count_only) {
        vkl_fail(err, "%d tokens do not fit in a buffer of %d", e.n, max_out);
        return -e.n;
    }
    return e.n;
}

/* ---- decoding ------------------------------------------------------------------------------ */

/* The bytes a token decodes to (not NUL-terminated), with the optional prefix-space strip. */
static const char *piece_of(const vkl_tokenizer *t, int32_t id, bool render_special, bool lstrip, uint32_t *len) {
    uint8_t ty = t->type[id];
    if ((ty == VKL_TOKEN_CONTROL || ty == VKL_TOKEN_UNKNOWN) && !render_special) {
        *len = 0;
        return "";
    }
    const char *p = t->piece[id];
    uint32_t n = t->piece_len[id];
    if (lstrip && n > 0 && p[0] == ' ') p++, n--;
    *len = n;
    return p;
}

int vkl_token_to_piece(const vkl_tokenizer *t, int32_t id, bool render_special, bool lstrip,
                       char *buf, size_t bufsize) {
    if (!valid_id(t, id)) return -1;
    uint32_t n;
    const char *p = piece_of(t, id, render_special, lstrip, &n);
    if (buf) memcpy(buf, p, VKL_MIN((size_t)n, bufsize));
    return (int)n;
}

int vkl_detokenize(const vkl_tokenizer *t, const int32_t *ids, int n, bool render_special,
                   char *buf, size_t bufsize) {
    size_t o = 0;
    int i = 0;
    if (n > 0 && !render_special && ids[0] == t->bos && t->bos >= 0) i = 1;
    bool strip = t->add_space_prefix;
    for (; i < n; i++) {
        if (!valid_id(t, ids[i])) return -1;
        uint32_t l;
        const char *p = piece_of(t, ids[i], render_special, strip, &l);
        strip = false;
        if (o < bufsize) memcpy(buf + o, p, VKL_MIN((size_t)l, bufsize - o));
        o += l;
        if (o > (size_t)INT32_MAX) return -1;
    }
    if (bufsize > 0) buf[VKL_MIN(o, bufsize - 1)] = 0;
    return (int)o;
}

/* ---- streaming detokenizer ------------------------------------------------------------------ */

void vkl_detok_init(vkl_detok *d, const vkl_tokenizer *t, bool render_special, bool at_start) {
    memset(d, 0, sizeof *d);
    d->tok = t;
    d->render_special = render_special;
    d->at_start = at_start;
}

static size_t put_replacement(char *out, size_t o) {
    memcpy(out + o, "\xef\xbf\xbd", 3);
    return o + 3;
}

/* Number of bytes of the sequence led by c, 0 when c cannot start one. */
static int utf8_lead_len(uint8_t c) {
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) return 2;
    if (c >= 0xe0 && c <= 0xef) return 3;
    if (c >= 0xf0 && c <= 0xf4) return 4;
    return 0;
}

/* Whether c may follow the bytes in d->pending (rejects overlongs, surrogates, > U+10FFFF). */
static bool utf8_continues(const vkl_detok *d, uint8_t c) {
    if ((c & 0xc0) != 0x80) return false;
    if (d->n_pending != 1) return true;
    switch (d->pending[0]) {
    case 0xe0: return c >= 0xa0;
    case 0xed: return c < 0xa0;
    case 0xf0: return c >= 0x90;
    case 0xf4: return c < 0x90;
    default: return true;
    }
}

int vkl_detok_push(vkl_detok *d, int32_t id, char *out, size_t out_size) {
    const vkl_tokenizer *t = d->tok;
    if (!valid_id(t, id)) return -1;
    if (id == t->bos && !d->render_special) return 0;
    uint32_t n;
    const char *p = piece_of(t, id, d->render_special, d->at_start && t->add_space_prefix, &n);
    if (out_size < 3 * ((size_t)n + 4)) return -1;
    d->at_start = false;
    size_t o = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)p[i];
        if (d->n_pending > 0) {
            if (utf8_continues(d, c)) {
                d->pending[d->n_pending++] = c;
                if (d->n_pending == utf8_lead_len(d->pending[0])) {
                    memcpy(out + o, d->pending, (size_t)d->n_pending);
                    o += (size_t)d->n_pending;
                    d->n_pending = 0;
                }
                continue;
            }
            o = put_replacement(out, o); /* truncated sequence; c starts afresh */
            d->n_pending = 0;
        }
        int l = utf8_lead_len(c);
        if (l == 1) {
            out[o++] = (char)c;
        } else if (l == 0) {
            o = put_replacement(out, o);
        } else {
            d->pending[0] = c;
            d->n_pending = 1;
        }
    }
    return (int)o;
}

int vkl_detok_flush(vkl_detok *d, char *out, size_t out_size) {
    if (d->n_pending == 0) return 0;
    if (out_size < 3) return -1;
    d->n_pending = 0;
    return (int)put_replacement(out, 0);
}
