/* Token sampler: repetition/frequency/presence penalties, top-k, top-p, min-p, temperature and a
 * seeded draw, applied in llama.cpp's default order (penalties -> top-k -> top-p -> min-p ->
 * temperature -> draw). Greedy (argmax after penalties) when temperature <= 0. All working memory
 * is allocated at creation: sampling a token allocates nothing. */
#ifndef VKL_SAMPLER_H
#define VKL_SAMPLER_H

#include "common.h"

#define VKL_SEED_RANDOM UINT64_MAX /* seed from the clock */

typedef struct vkl_sampler_params {
    float temperature;      /* <= 0: greedy */
    int32_t top_k;          /* <= 0 or >= n_vocab: disabled */
    float top_p;            /* >= 1: disabled */
    float min_p;            /* <= 0: disabled */
    float repeat_penalty;   /* 1: disabled; positive logits are divided by it, negative multiplied */
    int32_t repeat_last_n;  /* how many recent tokens are penalised (0: none) */
    float frequency_penalty; /* subtracted count times */
    float presence_penalty;  /* subtracted once if present */
    uint64_t seed;
} vkl_sampler_params;

/* llama.cpp's defaults: temp 0.8, top-k 40, top-p 0.95, min-p 0.05, no penalties (last 64). */
vkl_sampler_params vkl_sampler_default_params(void);

typedef struct vkl_sampler vkl_sampler;

vkl_sampler *vkl_sampler_create(const vkl_sampler_params *p, int32_t n_vocab, vkl_error *err);
void vkl_sampler_free(vkl_sampler *s);

/* Picks the next token from n_vocab logits (not modified). NaN logits count as -inf. Does not
 * record the token: call vkl_sampler_accept with the token actually used (the prompt's tokens
 * too, so that penalties see them). */
int32_t vkl_sampler_sample(vkl_sampler *s, const float *logits);
/* Records a token in the penalty history (out-of-range ids are ignored). */
void vkl_sampler_accept(vkl_sampler *s, int32_t token);
/* Clears the history and reseeds (VKL_SEED_RANDOM: a fresh seed from the clock). */
void vkl_sampler_reset(vkl_sampler *s, uint64_t seed);
/* The seed in use (resolved when VKL_SEED_RANDOM was asked for). */
uint64_t vkl_sampler_seed(const vkl_sampler *s);

#endif
