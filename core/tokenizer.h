/* Tokenizers of the GGUF tokenizer models "llama" (SentencePiece: greedy highest-score pair
 * merges with byte fallback) and "gpt2" (byte-level BPE: a pre-tokenizer chosen by
 * tokenizer.ggml.pre splits the text into words, whose bytes are merged by rank), with special
 * tokens, decoding, and a streaming detokenizer that only emits complete UTF-8 characters.
 * Behaviour mirrors llama.cpp's SPM and BPE tokenizers. */
#ifndef VKL_TOKENIZER_H
#define VKL_TOKENIZER_H

#include "common.h"
#include "gguf.h"

/* Token types as stored in tokenizer.ggml.token_type. */
typedef enum vkl_token_type {
    VKL_TOKEN_UNDEFINED = 0,
    VKL_TOKEN_NORMAL = 1,
    VKL_TOKEN_UNKNOWN = 2,
    VKL_TOKEN_CONTROL = 3,
    VKL_TOKEN_USER_DEFINED = 4,
    VKL_TOKEN_UNUSED = 5,
    VKL_TOKEN_BYTE = 6,
} vkl_token_type;

typedef struct vkl_tokenizer vkl_tokenizer;

/* Reads the tokenizer.ggml.* keys (a vocab-only GGUF is enough). The result does not reference f,
 * which may be closed afterwards. NULL with a one-line message on a missing/invalid vocabulary
 * (including token texts that are not UTF-8 and malformed BPE merges), an unsupported tokenizer
 * model or an unknown pre-tokenizer. */
vkl_tokenizer *vkl_tokenizer_load(const gguf_file *f, vkl_error *err);
void vkl_tokenizer_free(vkl_tokenizer *t);

int32_t vkl_tokenizer_n_vocab(const vkl_tokenizer *t);
int32_t vkl_tokenizer_bos(const vkl_tokenizer *t); /* -1 when the vocabulary has none */
int32_t vkl_tokenizer_eos(const vkl_tokenizer *t);
int32_t vkl_tokenizer_unk(const vkl_tokenizer *t);
int32_t vkl_tokenizer_pad(const vkl_tokenizer *t);
/* The longest decoded piece in bytes (for sizing buffers). */
int vkl_tokenizer_max_piece_len(const vkl_tokenizer *t);
/* tokenizer.ggml.add_bos_token; by default true for SentencePiece, false for BPE except the LLaMA 3
 * and Tekken pre-tokenizers (as llama.cpp). */
bool vkl_tokenizer_add_bos(const vkl_tokenizer *t);
bool vkl_tokenizer_add_eos(const vkl_tokenizer *t); /* tokenizer.ggml.add_eos_token (default false) */
vkl_token_type vkl_token_get_type(const vkl_tokenizer *t, int32_t id);
float vkl_token_score(const vkl_tokenizer *t, int32_t id);
/* The raw vocabulary text of a token (with "▁" for spaces), NUL-terminated; NULL if out of range. */
const char *vkl_token_text(const vkl_tokenizer *t, int32_t id);
/* End of generation: EOS, EOT/EOM and the fill-in-the-middle pad/repo/separator tokens when the
 * file names them, and the tokens llama.cpp recognises by their text (<|eot_id|>, <|im_end|>,
 * <|end|>, <end_of_turn>, <|endoftext|>, ...; those become control tokens whatever their type). */
bool vkl_token_is_eog(const vkl_tokenizer *t, int32_t id);
/* Exact vocabulary lookup of a piece (as stored, i.e. with "▁" or GPT-2's byte characters); -1 if
 * absent. */
int32_t vkl_tokenizer_find(const vkl_tokenizer *t, const char *piece, size_t len);

/* Tokenizes text[0..len). add_special adds BOS (and EOS) as the vocabulary asks for
 * (add_bos_token / add_eos_token). parse_special turns occurrences of control tokens' texts
 * (e.g. "<s>") into those tokens; user-defined tokens are always matched, as in llama.cpp. Text
 * that is not UTF-8 still encodes (BPE reads each invalid byte as U+FFFD, as llama.cpp does).
 * Returns the number of tokens. When it exceeds max_out, nothing beyond max_out is written and the
 * negated required count is returned (err set); with out == NULL it just returns the count. Returns INT32_MIN with err set on other errors. */
int vkl_tokenize(const vkl_tokenizer *t, const char *text, size_t len, bool add_special,
                 bool parse_special, int32_t *out, int max_out, vkl_error *err);

/* The text of one token: "▁" becomes " " (SentencePiece) or GPT-2's characters their bytes (BPE),
 * byte tokens their raw byte, control/unknown tokens nothing unless render_special (then their
 * vocabulary text). lstrip removes one leading space.
 * Writes at most bufsize bytes (no NUL); returns the piece's full length, or -1 for a bad id. */
int vkl_token_to_piece(const vkl_tokenizer *t, int32_t id, bool render_special, bool lstrip,
                       char *buf, size_t bufsize);

/* Decodes a whole sequence, the inverse of vkl_tokenize: a leading BOS is skipped and the space
 * prefix the encoder added is removed from the first piece. NUL-terminates (truncating to
 * bufsize - 1); returns the full decoded length (excluding the NUL), or -1 on a bad id. */
int vkl_detokenize(const vkl_tokenizer *t, const int32_t *ids, int n, bool render_special,
                   char *buf, size_t bufsize);

/* Streaming detokenizer for generation: push tokens one at a time and receive only complete
 * UTF-8 characters; incomplete sequences are held back until the bytes that finish them arrive.
 * Invalid bytes become U+FFFD; flush emits whatever is still pending (as U+FFFD). */
typedef struct vkl_detok {
    const vkl_tokenizer *tok;
    bool render_special;
    bool at_start;      /* the next printable piece is the first: strip the prefix space */
    uint8_t pending[4];
    int n_pending;
} vkl_detok;

/* at_start: true when the stream begins the text (the prompt's first piece loses its prefix
 * space); false when continuing after text that was already printed. */
void vkl_detok_init(vkl_detok *d, const vkl_tokenizer *t, bool render_special, bool at_start);
/* Appends the complete characters produced by token id to out (no NUL). out_size >=
 * 3 * (vkl_tokenizer_max_piece_len() + 4) is always enough. Returns the bytes written, or -1 on a
 * bad id or a too-small buffer (the token is not consumed then). */
int vkl_detok_push(vkl_detok *d, int32_t id, char *out, size_t out_size);
/* Emits pending incomplete bytes as U+FFFD (3 bytes each, so out_size >= 12 suffices). */
int vkl_detok_flush(vkl_detok *d, char *out, size_t out_size);

#endif
