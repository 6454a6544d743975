/* Internals shared by the tokenizer's files: the vocabulary (tokenizer.c), the symbol-merging
 * engine both SentencePiece and byte-level BPE use, and the BPE model (tokenizer_bpe.c). Not
 * part of the library's interface: include tokenizer.h instead. */
#ifndef VKL_TOKENIZER_IMPL_H
#define VKL_TOKENIZER_IMPL_H

#include "tokenizer.h"

enum {
    TOKF_EOG = 1,    /* ends generation */
    TOKF_LSTRIP = 2, /* when parsed as a special token, whitespace before it is dropped */
    TOKF_RSTRIP = 4, /* ... and whitespace after it */
};

typedef struct vkl_bpe vkl_bpe;

struct vkl_tokenizer {
    int32_t n_vocab;
    const char **text;  /* vocabulary text, NUL-terminated, in arena */
    uint32_t *text_len;
    const char **piece; /* decoded text ("▁" -> " " or GPT-2 characters -> bytes; byte tokens -> the byte) */
    uint32_t *piece_len;
    float *score;
    uint8_t *type;
    uint8_t *flags;
    char *arena;
    int max_piece_len;

    int32_t *table; /* open addressing piece -> id, -1 = empty */
    uint64_t table_mask;

    int32_t byte_tok[256]; /* byte fallback tokens, -1 if none */

    /* Tokens matched literally in the text before encoding, grouped by first byte and longest
     * first within a group: special_ids[special_start[b] .. special_start[b + 1]). */
    int32_t *special_ids;
    int32_t special_start[257];

    int32_t bos, eos, unk, pad, eot, eom;
    bool add_bos, add_eos, add_space_prefix;

    vkl_bpe *bpe; /* byte-level BPE ("gpt2") vocabularies; NULL for SentencePiece */
};

uint64_t vkl_tok_hash(const char *s, size_t n);

/* Token ids being written: counts past max_out without writing (see vkl_tokenize). */
typedef struct {
    int32_t *out;
    int max_out, n;
} vkl_emitter;

static inline void vkl_emit(vkl_emitter *e, int32_t id) {
    if (e->n < e->max_out) e->out[e->n] = id;
    e->n++;
}

/* ---- merging symbols by priority (SentencePiece scores, BPE merge ranks) -------------------- */

typedef struct {
    int32_t start, len; /* bytes in the work buffer; len 0 = merged away */
    int32_t prev, next;
} vkl_sym;

typedef struct {
    float score; /* higher merges first; ties: the leftmost pair */
    int32_t left, right, len;
} vkl_bigram;

typedef struct {
    char *buf; /* the text being merged */
    vkl_sym *sym;
    vkl_bigram *heap;
    int32_t n_heap;
} vkl_merge_work;

/* Priority of merging the adjacent pieces s[0..left_len) and s[left_len..left_len + right_len);
 * false when they do not merge. */
typedef bool (*vkl_pair_score_fn)(const vkl_tokenizer *t, const char *s, int32_t left_len, int32_t right_len,
                                  float *score);

/* Splits w->buf[0..n) into UTF-8 characters and merges adjacent symbols, best pair first, until no
 * pair merges. w->sym must hold n entries and w->heap 3 * n. Returns the index of the first symbol
 * (follow .next to -1), or -1 when n is 0. */
int32_t vkl_merge_symbols(const vkl_tokenizer *t, vkl_merge_work *w, size_t n, vkl_pair_score_fn score);

/* ---- byte-level BPE (tokenizer_bpe.c) ------------------------------------------------------ */

/* Reads tokenizer.ggml.merges and tokenizer.ggml.pre into t->bpe and applies the pre-tokenizer's
 * defaults (add_bos); t's vocabulary must be loaded. */
int vkl_bpe_load(vkl_tokenizer *t, const gguf_file *f, vkl_error *err);
void vkl_bpe_free(vkl_bpe *b);
/* Encodes a fragment of raw text (no special tokens in it). */
int vkl_bpe_encode(const vkl_tokenizer *t, const char *text, size_t len, vkl_emitter *e, vkl_error *err);
/* The bytes a vocabulary text in GPT-2's byte alphabet stands for, into out (at most len bytes);
 * characters outside the alphabet are kept as they are. Returns the length. */
uint32_t vkl_bpe_decode_text(const char *s, uint32_t len, char *out);

#endif
