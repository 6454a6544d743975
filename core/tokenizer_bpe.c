/* Byte-level BPE (GGUF tokenizer model "gpt2"): the pre-tokenizer named by tokenizer.ggml.pre
 * splits the text into words with Unicode regular expressions (PCRE2, JIT-compiled), each word's
 * bytes are spelled in GPT-2's byte alphabet, and adjacent symbols are merged by the rank of
 * their pair in tokenizer.ggml.merges. Behaviour follows llama.cpp's BPE tokenizer. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"

#define MAX_REGEX 6

/* ---- GPT-2's byte alphabet ------------------------------------------------------------------ */

/* The printable Latin-1 bytes stand for themselves; the 68 others (0x00-0x20, 0x7F-0xA0, 0xAD)
 * are given the code points U+0100.. in byte order. */
static uint32_t byte_to_cp(uint8_t b) {
    if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae) return b;
    if (b <= 0x20) return 0x100 + b;
    if (b <= 0xa0) return 0x100 + 33 + (b - 0x7f);
    return 0x100 + 67; /* 0xAD */
}

/* The byte a code point of the alphabet stands for, or -1. */
static int cp_to_byte(uint32_t cp) {
    if (cp < 0x100) return byte_to_cp((uint8_t)cp) == cp ? (int)cp : -1;
    uint32_t k = cp - 0x100;
    if (k <= 0x20) return (int)k;
    if (k < 67) return (int)(0x7f + k - 33);
    return k == 67 ? 0xad : -1;
}

/* Decodes one UTF-8 sequence of s[0..n) (n > 0) leniently, as llama.cpp does: a lead byte and the
 * continuation bytes it announces, without checking for overlong forms. Returns the length, or 0
 * when the bytes do not form a sequence; *cp receives the code point. */
static int utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t c = s[0];
    int len = c < 0x80 ? 1 : c < 0xc0 ? 0 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : c < 0xf8 ? 4 : 0;
    if (len == 0 || (size_t)len > n) return 0;
    uint32_t v = len == 1 ? c : c & (0x7f >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    *cp = v;
    return len;
}

static size_t utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

uint32_t vkl_bpe_decode_text(const char *s, uint32_t len, char *out) {
    uint32_t o = 0;
    for (uint32_t i = 0; i < len;) {
        uint32_t cp;
        int l = utf8_decode((const uint8_t *)s + i, len - i, &cp);
        int b = l > 0 ? cp_to_byte(cp) : -1;
        if (b >= 0) {
            out[o++] = (char)b;
            i += (uint32_t)l;
        } else {
            l = VKL_MAX(l, 1);
            memcpy(out + o, s + i, (size_t)l);
            o += (uint32_t)l;
            i += (uint32_t)l;
        }
    }
    return o;
}

/* ---- the pre-tokenizers --------------------------------------------------------------------- */

/* Unicode's White_Space characters, which is what llama.cpp's \s matches (PCRE2's own \s differs
 * between versions for U+0085 and U+180E). */
#define WS "\\t-\\r \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"
#define SPACE "[" WS "]"
#define NOT_SPACE "[^" WS "]"
#define TRAILING_SPACES SPACE "+(?!" NOT_SPACE ")|" SPACE "+"
/* The English contractions, matched case-insensitively. */
#define CONTRACTION "'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]"

#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|" TRAILING_SPACES
#define RE_LLAMA3(DIGITS)                                                                                      \
    "(?:" CONTRACTION ")|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}" DIGITS "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*|" SPACE \
    "*[\\r\\n]+|" TRAILING_SPACES
/* Letters split by case; llama.cpp's form, in which every letter outside ASCII counts as both cases. */
#define UPPER "(?:(?=\\p{L})[^a-z])"
#define LOWER "(?:(?=\\p{L})[^A-Z])"
#define RE_CASED_WORDS(SUFFIX, DIGITS)                                                                           \
    "[^\\r\\n\\p{L}\\p{N}]?" UPPER "*" LOWER "+" SUFFIX "|[^\\r\\n\\p{L}\\p{N}]?" UPPER "+" LOWER "*" SUFFIX "|\\p{N}" \
    DIGITS "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n/]*|" SPACE "*[\\r\\n]+|" TRAILING_SPACES
#define RE_CJK "[\\x{4e00}-\\x{9fa5}\\x{800}-\\x{4e00}\\x{ac00}-\\x{d7ff}]+"
#define RE_DEEPSEEK_LETTERS                                                                                      \
    "A-Za-z\\x{b5}\\x{c0}-\\x{d6}\\x{d8}-\\x{f6}\\x{f8}-\\x{1ba}\\x{1bc}-\\x{1bf}\\x{1c4}" \
    "-\\x{293}\\x{295}-\\x{2af}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37b}-\\x{37d}\\x{37f}" \
    "\\x{386}\\x{388}-\\x{38a}\\x{38c}\\x{38e}-\\x{3a1}\\x{3a3}-\\x{3f5}\\x{3f7}-\\x{481}" \
    "\\x{48a}-\\x{52f}\\x{531}-\\x{556}\\x{10a0}-\\x{10c5}\\x{13a0}-\\x{13f5}\\x{13f8}-" \
    "\\x{13fd}\\x{1c90}-\\x{1cba}\\x{1cbd}-\\x{1cbf}\\x{1d00}-\\x{1d2b}\\x{1d6b}-" \
    "\\x{1d77}\\x{1d79}-\\x{1d9a}\\x{1e00}-\\x{1f15}\\x{1f18}-\\x{1f1d}\\x{1f20}-" \
    "\\x{1f45}\\x{1f48}-\\x{1f4d}\\x{1f50}-\\x{1f57}\\x{1f59}\\x{1f5b}\\x{1f5d}\\x{1f5f}-" \
    "\\x{1f7d}\\x{1f80}-\\x{1fb4}\\x{1fb6}-\\x{1fbc}\\x{1fbe}\\x{1fc2}-\\x{1fc4}\\x{1fc6}" \
    "-\\x{1fcc}\\x{1fd0}-\\x{1fd3}\\x{1fd6}-\\x{1fdb}\\x{1fe0}-\\x{1fec}\\x{1ff2}-" \
    "\\x{1ff4}\\x{1ff6}-\\x{1ffc}\\x{2102}\\x{2107}\\x{210a}-\\x{2113}\\x{2115}\\x{2119}-" \
    "\\x{211d}\\x{2124}\\x{2126}\\x{2128}\\x{212a}-\\x{212d}\\x{212f}-\\x{2134}\\x{2139}" \
    "\\x{213c}-\\x{213f}\\x{2145}-\\x{2149}\\x{214e}\\x{2183}\\x{2184}\\x{2c00}-\\x{2c7b}" \
    "\\x{2c7e}-\\x{2ce4}\\x{2ceb}-\\x{2cee}\\x{2cf2}\\x{2cf3}\\x{a640}-\\x{a66d}\\x{a680}" \
    "-\\x{a69b}\\x{a722}-\\x{a76f}\\x{a771}-\\x{a787}\\x{a78b}-\\x{a78e}\\x{ab70}-" \
    "\\x{abbf}\\x{fb00}-\\x{fb06}\\x{fb13}-\\x{fb17}\\x{ff21}-\\x{ff3a}\\x{ff41}-" \
    "\\x{ff5a}\\x{10400}-\\x{1044f}\\x{104b0}-\\x{104d3}\\x{104d8}-\\x{104fb}\\x{10c80}-" \
    "\\x{10cb2}\\x{10cc0}-\\x{10cf2}\\x{118a0}-\\x{118df}\\x{1e900}-\\x{1e943}"

typedef struct {
    const char *names; /* the tokenizer.ggml.pre values, separated by '|' */
    const char *regex[MAX_REGEX];
    bool ignore_merges; /* a word that is a token is that token, whatever the merges say */
    bool add_bos;       /* the default of tokenizer.ggml.add_bos_token */
} pretok_def;

static const pretok_def pretoks[] = {
    {"default", {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}, false, false},
    {"llama3|llama-v3|llama-bpe|falcon3|pixtral", {RE_LLAMA3("{1,3}")}, true, true},
    {"dbrx|smaug-bpe", {RE_LLAMA3("{1,3}")}, false, false},
    {"qwen2|deepseek-r1-qwen|stablelm2|megrez|hunyuan", {RE_LLAMA3("")}, false, false},
    {"tekken", {RE_CASED_WORDS("", "")}, true, true},
    {"gpt-4o|llama4", {RE_CASED_WORDS("(?:" CONTRACTION ")?", "{1,3}")}, false, false},
    {"deepseek-llm",
     {"[\\r\\n]", SPACE "?[" RE_DEEPSEEK_LETTERS "]+",
      SPACE "?[!-/:-~\\x{ff01}-\\x{ff0f}\\x{ff1a}-\\x{ff5e}\\x{2018}-\\x{201f}\\x{3000}-\\x{3002}]+", SPACE "+$",
      RE_CJK, "\\p{N}+"},
     false, false},
    {"deepseek-coder", {"[\\r\\n]", SPACE "?\\p{L}+", SPACE "?\\p{P}+", RE_CJK, "\\p{N}"}, false, false},
    {"falcon", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}, false, false},
    {"gpt-2|mpt|phi-2|olmo|jais", {RE_GPT2}, false, false},
    {"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b", {"\\p{N}", RE_GPT2}, false, false},
};

static bool name_in_list(const char *list, const char *name, size_t n) {
    for (const char *p = list;;) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == n && !memcmp(p, name, n)) return true;
        if (!bar) return false;
        p = bar + 1;
    }
}

/* ---- the model ------------------------------------------------------------------------------ */

typedef struct {
    uint32_t off;    /* "AB" in the arena */
    uint32_t la, lb; /* the lengths of A and B */
} bpe_merge;

struct vkl_bpe {
    pcre2_code *re[MAX_REGEX];
    int n_re;
    bool ignore_merges;
    char *arena;
    bpe_merge *merges; /* by rank */
    int32_t *table;    /* open addressing pair -> rank, -1 = empty */
    uint64_t mask;
    char enc[256][2]; /* each byte's character in the alphabet, 1 or 2 bytes of UTF-8 */
    uint8_t enc_len[256];
};

void vkl_bpe_free(vkl_bpe *b) {
    if (!b) return;
    for (int i = 0; i < b->n_re; i++) pcre2_code_free(b->re[i]);
    free(b->arena);
    free(b->merges);
    free(b->table);
    free(b);
}

static uint64_t pair_hash(const char *s, uint32_t la, uint32_t lb) {
    return vkl_tok_hash(s, (size_t)la + lb) ^ ((uint64_t)la * 0x9e3779b97f4a7c15ull);
}

/* The rank of merging s[0..la) with s[la..la+lb), or -1. */
static int32_t find_merge(const vkl_bpe *b, const char *s, uint32_t la, uint32_t lb) {
    for (uint64_t i = pair_hash(s, la, lb) & b->mask;; i = (i + 1) & b->mask) {
        int32_t r = b->table[i];
        if (r < 0) return -1;
        const bpe_merge *m = &b->merges[r];
        if (m->la == la && m->lb == lb && !memcmp(b->arena + m->off, s, (size_t)la + lb)) return r;
    }
}

static int compile_pretok(vkl_bpe *b, const pretok_def *d, vkl_error *err) {
    for (int i = 0; i < MAX_REGEX && d->regex[i]; i++) {
        int code;
        PCRE2_SIZE at;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)d->regex[i], PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &code, &at, NULL);
        if (!re) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(code, msg, sizeof msg);
            return vkl_fail(err, "pre-tokenizer '%s': regular expression %d: %s at offset %zu", d->names, i,
                            (const char *)msg, (size_t)at);
        }
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* without a JIT the interpreter runs it */
        b->re[b->n_re++] = re;
    }
    return 0;
}

static int read_pretok(vkl_tokenizer *t, const gguf_file *f, vkl_error *err) {
    gguf_str pre = {7, "default"}; /* llama.cpp's choice when the key is missing */
    if (gguf_find_kv(f, "tokenizer.ggml.pre") && gguf_get_str(f, "tokenizer.ggml.pre", &pre, err) < 0) return -1;
    for (size_t i = 0; i < VKL_ARRAY_LEN(pretoks); i++) {
        if (!name_in_list(pretoks[i].names, pre.data, pre.len)) continue;
        t->bpe->ignore_merges = pretoks[i].ignore_merges;
        t->add_bos = pretoks[i].add_bos;
        return compile_pretok(t->bpe, &pretoks[i], err);
    }
    return vkl_fail(err, "unknown pre-tokenizer '%.*s' (tokenizer.ggml.pre)", (int)VKL_MIN(pre.len, 64), pre.data);
}

static int read_merges(vkl_bpe *b, const gguf_file *f, vkl_error *err) {
    const gguf_value *arr;
    if (!gguf_find_kv(f, "tokenizer.ggml.merges"))
        return vkl_fail(err, "tokenizer.ggml.merges is missing (a gpt2 BPE vocabulary needs its merges)");
    if (gguf_get_arr(f, "tokenizer.ggml.merges", GGUF_VT_STRING, &arr, err) < 0) return -1;
    uint64_t n = arr->v.arr.n, bytes = 0, size = 16;
    if (n > (1u << 24)) /* ranks must stay exact as merge priorities (floats) */
        return vkl_fail(err, "tokenizer.ggml.merges has %llu entries (at most 16777216)", (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++) {
        const gguf_str s = arr->v.arr.strs[i];
        const char *sp = s.len > 1 ? memchr(s.data + 1, ' ', s.len - 1) : NULL;
        if (!sp || sp + 1 == s.data + s.len || !gguf_utf8_valid(s.data, s.len))
            return vkl_fail(err, "tokenizer.ggml.merges[%llu] is not two pieces of UTF-8 separated by a space",
                            (unsigned long long)i);
        bytes += s.len;
        if (bytes > UINT32_MAX) return vkl_fail(err, "tokenizer.ggml.merges is too large");
    }
    while (size < 2 * n) size *= 2;
    b->arena = vkl_malloc(bytes + 1, err);
    b->merges = b->arena ? vkl_malloc((n + 1) * sizeof *b->merges, err) : NULL;
    b->table = b->merges ? vkl_malloc(size * sizeof *b->table, err) : NULL;
    if (!b->table) return -1;
    memset(b->table, 0xff, size * sizeof *b->table);
    b->mask = size - 1;
    uint32_t off = 0;
    for (uint64_t r = 0; r < n; r++) {
        const gguf_str s = arr->v.arr.strs[r];
        uint32_t la = (uint32_t)((const char *)memchr(s.data + 1, ' ', s.len - 1) - s.data);
        uint32_t lb = (uint32_t)s.len - la - 1;
        memcpy(b->arena + off, s.data, la);
        memcpy(b->arena + off + la, s.data + la + 1, lb);
        b->merges[r] = (bpe_merge){off, la, lb};
        uint64_t i = pair_hash(b->arena + off, la, lb) & b->mask;
        for (; b->table[i] >= 0; i = (i + 1) & b->mask) {
            const bpe_merge *m = &b->merges[b->table[i]];
            if (m->la == la && m->lb == lb && !memcmp(b->arena + m->off, b->arena + off, (size_t)la + lb)) break;
        }
        if (b->table[i] < 0) b->table[i] = (int32_t)r; /* a repeated pair keeps its first rank */
        off += la + lb;
    }
    return 0;
}

int vkl_bpe_load(vkl_tokenizer *t, const gguf_file *f, vkl_error *err) {
    t->bpe = vkl_calloc(1, sizeof *t->bpe, err);
    if (!t->bpe) return -1;
    for (int c = 0; c < 256; c++) t->bpe->enc_len[c] = (uint8_t)utf8_encode(byte_to_cp((uint8_t)c), t->bpe->enc[c]);
    if (read_merges(t->bpe, f, err) < 0) return -1;
    return read_pretok(t, f, err);
}

/* ---- encoding ------------------------------------------------------------------------------- */

/* Copies text to out as valid UTF-8, each byte that does not start a sequence becoming U+FFFD, as
 * llama.cpp's pre-tokenizer reads text (sequences are re-encoded in their shortest form; code
 * points that UTF-8 cannot carry become U+FFFD as well). out needs 3 * len bytes. */
static size_t sanitize_utf8(const char *text, size_t len, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int l = utf8_decode((const uint8_t *)text + i, len - i, &cp);
        if (l == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) cp = 0xfffd;
        i += l > 0 ? (size_t)l : 1;
        o += utf8_encode(cp, out + o);
    }
    return o;
}

typedef struct {
    uint32_t *ends, *next; /* word end offsets, and space for the next pass */
    size_t n;
} word_list;

/* Splits every word of w further by one regular expression: its matches and the text between
 * them become words. */
static int split_words(const pcre2_code *re, const char *s, word_list *w, pcre2_match_data *md,
                       pcre2_match_context *mc, vkl_error *err) {
    size_t n = 0, start = 0;
    for (size_t k = 0; k < w->n; start = w->ends[k++]) {
        size_t end = w->ends[k], pos = 0, last = 0, len = end - start;
        while (pos < len) {
            int rc = pcre2_match(re, (PCRE2_SPTR)(s + start), len, pos, PCRE2_NO_UTF_CHECK, md, mc);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                PCRE2_UCHAR msg[128];
                pcre2_get_error_message(rc, msg, sizeof msg);
                return vkl_fail(err, "pre-tokenizer: %s", (const char *)msg);
            }
            const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (me == ms) { /* an empty match: step over one character */
                do me++;
                while (me < len && ((uint8_t)s[start + me] & 0xc0) == 0x80);
                pos = me;
                continue;
            }
            if (ms > last) w->next[n++] = (uint32_t)(start + ms); /* the text before the match */
            w->next[n++] = (uint32_t)(start + me);
            last = pos = me;
        }
        if (last < len) w->next[n++] = (uint32_t)end;
    }
    uint32_t *tmp = w->ends;
    w->ends = w->next;
    w->next = tmp;
    w->n = n;
    return 0;
}

static bool merge_rank(const vkl_tokenizer *t, const char *s, int32_t la, int32_t lb, float *score) {
    int32_t r = find_merge(t->bpe, s, (uint32_t)la, (uint32_t)lb);
    *score = -(float)r; /* the lowest rank merges first (ranks stay below 2^24, exact in a float) */
    return r >= 0;
}

/* Spells one word in the byte alphabet and merges it. */
static void encode_word(const vkl_tokenizer *t, vkl_merge_work *mw, const char *word, size_t len, vkl_emitter *e) {
    const vkl_bpe *b = t->bpe;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)word[i];
        memcpy(mw->buf + n, b->enc[c], b->enc_len[c]);
        n += b->enc_len[c];
    }
    if (b->ignore_merges) {
        int32_t id = vkl_tokenizer_find(t, mw->buf, n);
        if (id >= 0) {
            vkl_emit(e, id);
            return;
        }
    }
    for (int32_t i = vkl_merge_symbols(t, mw, n, merge_rank); i >= 0; i = mw->sym[i].next) {
        const char *s = mw->buf + mw->sym[i].start;
        int32_t id = vkl_tokenizer_find(t, s, (size_t)mw->sym[i].len);
        if (id >= 0) {
            vkl_emit(e, id);
            continue;
        }
        for (int32_t k = 0; k < mw->sym[i].len; k++) { /* llama.cpp's fallback: single-byte tokens, if any */
            id = vkl_tokenizer_find(t, s + k, 1);
            if (id >= 0) vkl_emit(e, id);
        }
    }
}

/* Splits s[0..n) into words by the pre-tokenizer's expressions, one after the other. */
static int pretokenize(const vkl_bpe *b, const char *s, size_t n, word_list *w, vkl_error *err) {
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    pcre2_match_context *mc = md ? pcre2_match_context_create(NULL) : NULL;
    pcre2_jit_stack *js = mc ? pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, NULL) : NULL;
    int rc = mc ? 0 : vkl_fail(err, "out of host memory for the pre-tokenizer");
    if (js) pcre2_jit_stack_assign(mc, NULL, js); /* else the default 32 KiB one */
    if (n > 0) w->ends[w->n++] = (uint32_t)n;
    for (int i = 0; rc == 0 && i < b->n_re; i++) rc = split_words(b->re[i], s, w, md, mc, err);
    pcre2_jit_stack_free(js);
    pcre2_match_context_free(mc);
    pcre2_match_data_free(md);
    return rc;
}

static int encode_words(const vkl_tokenizer *t, const char *s, const word_list *w, vkl_emitter *e, vkl_error *err) {
    size_t longest = 0;
    for (size_t k = 0, start = 0; k < w->n; start = w->ends[k++]) longest = VKL_MAX(longest, w->ends[k] - start);
    if (longest == 0) return 0;
    /* A word's characters take up to 2 bytes each in the alphabet; the heap receives at most
     * n - 1 seeds plus 2 per merge. */
    vkl_merge_work mw = {0};
    mw.buf = vkl_malloc(2 * longest, err);
    mw.sym = mw.buf ? vkl_malloc(2 * longest * sizeof *mw.sym, err) : NULL;
    mw.heap = mw.sym ? vkl_malloc(6 * longest * sizeof *mw.heap, err) : NULL;
    for (size_t k = 0, start = 0; mw.heap && k < w->n; start = w->ends[k++])
        encode_word(t, &mw, s + start, w->ends[k] - start, e);
    int rc = mw.heap ? 0 : -1;
    free(mw.buf);
    free(mw.sym);
    free(mw.heap);
    return rc;
}

int vkl_bpe_encode(const vkl_tokenizer *t, const char *text, size_t len, vkl_emitter *e, vkl_error *err) {
    char *s = vkl_malloc(3 * len + 1, err);
    size_t n = s ? sanitize_utf8(text, len, s) : 0;
    word_list w = {0};
    w.ends = s ? vkl_malloc((n + 1) * sizeof *w.ends, err) : NULL;
    w.next = w.ends ? vkl_malloc((n + 1) * sizeof *w.next, err) : NULL;
    int rc = w.next ? pretokenize(t->bpe, s, n, &w, err) : -1;
    if (rc == 0) rc = encode_words(t, s, &w, e, err);
    free(w.ends);
    free(w.next);
    free(s);
    return rc;
}
