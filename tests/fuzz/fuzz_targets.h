/* The per-input code of the two fuzz targets, shared by the libFuzzer harnesses (fuzz_gguf.c,
 * fuzz_model.c) and by the regression replay test (tests/test_fuzz_regress.c), so every saved
 * crash input runs through exactly the code that found it.
 *
 * Both take the bytes of a would-be GGUF file and must never crash, read out of bounds or leak,
 * whatever the bytes are; errors are fine (and expected for almost every input). */
#ifndef VKL_FUZZ_TARGETS_H
#define VKL_FUZZ_TARGETS_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "model.h"
#include "tokenizer.h"

/* Reads the first and last byte of a span, so ASan checks both ends are inside the input. */
static inline uint8_t fuzz_touch(const void *p, uint64_t n) {
    if (!p || n == 0) return 0;
    const volatile uint8_t *b = p;
    return (uint8_t)(b[0] ^ b[n - 1]);
}

static inline uint8_t fuzz_walk_value(const gguf_value *v, int depth) {
    uint8_t h = 0;
    switch (v->type) {
    case GGUF_VT_STRING: return fuzz_touch(v->v.str.data, v->v.str.len);
    case GGUF_VT_ARRAY:
        if (depth > 64) return 0;
        for (uint64_t i = 0; i < v->v.arr.n; i++) {
            if (v->v.arr.type == GGUF_VT_STRING) h ^= fuzz_touch(v->v.arr.strs[i].data, v->v.arr.strs[i].len);
            else if (v->v.arr.type == GGUF_VT_ARRAY) h ^= fuzz_walk_value(&v->v.arr.items[i], depth + 1);
            else if (v->v.arr.type != GGUF_VT_BOOL) h ^= (uint8_t)gguf_arr_i64(v, i) ^ (uint8_t)(gguf_arr_f64(v, i) > 0);
        }
        return h;
    default: return 0;
    }
}

/* Opens the bytes as a GGUF file and reads everything through the public getters. */
static inline int fuzz_gguf_one(const uint8_t *data, size_t size) {
    vkl_error err = {{0}};
    gguf_file *f = gguf_open_memory(data, size, &err);
    if (!f) return 0;
    volatile uint8_t h = 0;
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        h ^= fuzz_walk_value(&kv->value, 0);
        char key[256];
        if (kv->key.len >= sizeof key || memchr(kv->key.data, 0, kv->key.len)) continue;
        memcpy(key, kv->key.data, kv->key.len);
        key[kv->key.len] = 0;
        if (gguf_find_kv(f, key) == NULL) abort(); /* every key read must be found again */
        uint32_t u32;
        uint64_t u64;
        int64_t i64;
        float f32;
        bool b;
        gguf_str s;
        char buf[64];
        const gguf_value *arr;
        h ^= (uint8_t)gguf_get_u32(f, key, &u32, &err) ^ (uint8_t)gguf_get_u64(f, key, &u64, &err) ^
             (uint8_t)gguf_get_i64(f, key, &i64, &err) ^ (uint8_t)gguf_get_f32(f, key, &f32, &err) ^
             (uint8_t)gguf_get_bool(f, key, &b, &err);
        if (gguf_get_str(f, key, &s, &err) == 0) h ^= fuzz_touch(s.data, s.len) ^ (uint8_t)gguf_utf8_valid(s.data, s.len);
        h ^= (uint8_t)gguf_get_cstr(f, key, buf, sizeof buf, &err);
        if (gguf_get_arr(f, key, GGUF_VT_COUNT, &arr, &err) == 0) h ^= (uint8_t)arr->v.arr.n;
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        if (gguf_find_tensor(f, t->name) == NULL) abort();
        h ^= fuzz_touch(t->data, t->nbytes);
    }
    (void)h;
    gguf_close(f);
    return 0;
}

/* GGUF bytes -> tokenizer (and a little tokenizing) -> hyperparameters -> model (tensor shapes
 * and types) -> the forward graph of one token (built, never run). */
static inline int fuzz_model_one(const uint8_t *data, size_t size) {
    vkl_error err = {{0}};
    gguf_file *f = gguf_open_memory(data, size, &err);
    if (!f) return 0;
    vkl_tokenizer *tok = vkl_tokenizer_load(f, &err);
    if (tok) {
        static const char text[] = "Hello world! \xc3\xbc 123 <s>\n\t  x";
        int32_t ids[128];
        int n = vkl_tokenize(tok, text, sizeof text - 1, true, true, ids, 128, &err);
        if (n > 0) {
            char out[512];
            vkl_detokenize(tok, ids, n, true, out, sizeof out);
            vkl_detok d;
            vkl_detok_init(&d, tok, false, true);
            size_t cap = 3 * ((size_t)vkl_tokenizer_max_piece_len(tok) + 4);
            char *piece = malloc(cap);
            for (int i = 0; piece && i < n; i++) vkl_detok_push(&d, ids[i], piece, cap);
            if (piece) vkl_detok_flush(&d, piece, cap);
            free(piece);
        }
        /* Per-token lookups, including ids just outside the vocabulary. */
        int32_t nv = vkl_tokenizer_n_vocab(tok);
        int32_t probe[] = {-1, 0, 1, 2, nv / 2, nv - 1, nv, vkl_tokenizer_bos(tok), vkl_tokenizer_eos(tok)};
        for (size_t i = 0; i < sizeof probe / sizeof probe[0]; i++) {
            char piece[64];
            (void)vkl_token_is_eog(tok, probe[i]);
            (void)vkl_token_get_type(tok, probe[i]);
            (void)vkl_token_text(tok, probe[i]);
            vkl_token_to_piece(tok, probe[i], true, i & 1, piece, sizeof piece);
        }
        vkl_tokenizer_free(tok);
    }
    vkl_model *m = vkl_model_create(f, NULL, NULL, &err); /* owns f from here, also on failure */
    if (!m) return 0;
    /* A KV cache without storage: enough to build the graph, which only wires descriptors. */
    const vkl_hparams *hp = &m->hp;
    int64_t kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    vkl_kv_cache kv = {.type = VKL_TYPE_F16, .n_layer = hp->n_layer, .n_ctx = 4, .kv_dim = kv_dim};
    kv.k = calloc((size_t)hp->n_layer, sizeof *kv.k);
    kv.v = calloc((size_t)hp->n_layer, sizeof *kv.v);
    if (kv.k && kv.v) {
        for (int l = 0; l < hp->n_layer; l++) {
            vkl_tensor_init(&kv.k[l], "cache_k", VKL_TYPE_F16, kv_dim, kv.n_ctx);
            vkl_tensor_init(&kv.v[l], "cache_v", VKL_TYPE_F16, kv_dim, kv.n_ctx);
        }
        vkl_llama_graph lg;
        for (int n_tokens = 1; n_tokens <= 2; n_tokens++)
            if (vkl_llama_build(m, &kv, n_tokens, n_tokens == 2, &lg, &err) == 0) vkl_graph_free(lg.g);
    }
    free(kv.k);
    free(kv.v);
    vkl_model_free(m);
    return 0;
}

#endif
