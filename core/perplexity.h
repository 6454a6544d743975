/* The arithmetic of perplexity and KL-divergence measurements, as llama-perplexity does it:
 * negative log-likelihoods from logits, a 16-bit form of a row's log-probabilities for a base
 * file, and the running sums behind the means and uncertainties it reports. */
#ifndef VKL_PERPLEXITY_H
#define VKL_PERPLEXITY_H

#include <stddef.h>
#include <stdint.h>

/* -log p(tok) under softmax(logits) (max-shifted, the sum of exponentials in double). */
double vkl_nll(const float *logits, int n_vocab, int tok);

/* A row's log-probabilities in 16 bits: the range [max-16, max] of the logits on 65536 levels
 * (values below it on level 0), plus the scale, the log-probability of level 0 and the exact
 * log-probability of the next token. vkl_logprobs_size(n_vocab) bytes. */
size_t vkl_logprobs_size(int n_vocab);
/* Packs a row into out (vkl_logprobs_size bytes, little-endian); returns -log p(tok). */
double vkl_logprobs_pack(const float *logits, int n_vocab, int tok, uint8_t *out);

/* Running sums: perplexity of the model (nll), of the base (packed log-probs), KL divergence of
 * the model from the base, and agreement of the top tokens. */
typedef struct vkl_kld_stats {
    double nll, nll2, nll_base, nll_base2, nll_nll_base, kld, kld2;
    uint64_t same_top, count;
} vkl_kld_stats;

/* Adds one position: the model's logits, the base's packed row, the token that came next.
 * Returns that position's KL divergence. */
double vkl_kld_add(vkl_kld_stats *s, const float *logits, int n_vocab, const uint8_t *base, int tok);

/* Mean of count samples with sums sum and sum2, and the mean's standard error (0 for 10 samples or
 * fewer, as llama-perplexity reports it). */
void vkl_mean_unc(double sum, double sum2, uint64_t count, double *mean, double *unc);

typedef struct vkl_kld_report {
    double ppl, ppl_unc, ppl_base, ppl_base_unc;
    double ln_ratio, ln_ratio_unc; /* ln(PPL / PPL(base)) */
    double kld, kld_unc;
    double same_top, same_top_unc; /* fraction of positions whose argmax equals the base's */
} vkl_kld_report;

void vkl_kld_summarize(const vkl_kld_stats *s, vkl_kld_report *r);

/* llama-perplexity's final estimate from the sums of nll and nll² over count positions:
 * PPL = exp(mean), uncertainty = PPL * sqrt(var / (count - 1)); -1 for unc when var <= 0. */
void vkl_ppl_estimate(double nll, double nll2, uint64_t count, double *ppl, double *unc);

#endif
