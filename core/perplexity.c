/* Perplexity and KL-divergence arithmetic (see perplexity.h). Follows llama-perplexity's float /
 * double choices so that the figures agree with its output to the printed digits. */
#include "perplexity.h"

#include <math.h>
#include <string.h>

typedef struct row_stats {
    float max;
    int imax;        /* first position of the maximum */
    float log_sum;   /* log of sum(exp(logit - max)) */
} row_stats;

static row_stats row_scan(const float *logits, int n_vocab) {
    row_stats r = {logits[0], 0, 0.0f};
    for (int i = 1; i < n_vocab; i++)
        if (logits[i] > r.max) r.max = logits[i], r.imax = i;
    double sum = 0.0;
    for (int i = 0; i < n_vocab; i++) sum += expf(logits[i] - r.max);
    r.log_sum = (float)log(sum);
    return r;
}

double vkl_nll(const float *logits, int n_vocab, int tok) {
    float max = logits[0];
    for (int i = 1; i < n_vocab; i++) max = logits[i] > max ? logits[i] : max;
    double sum = 0.0;
    for (int i = 0; i < n_vocab; i++) sum += expf(logits[i] - max);
    return -((double)(logits[tok] - max) - log(sum));
}

/* Layout: float scale, float log-probability of level 0, float exact log-probability of the token
 * that came next (the base's perplexity must not suffer the 16-bit range), then n_vocab uint16
 * levels. */
#define PACK_HEADER 12

size_t vkl_logprobs_size(int n_vocab) { return PACK_HEADER + 2 * (size_t)n_vocab; }

static inline int round_nearest(float v) { return (int)lrintf(v); }

double vkl_logprobs_pack(const float *logits, int n_vocab, int tok, uint8_t *out) {
    row_stats r = row_scan(logits, n_vocab);
    float lo = logits[0];
    for (int i = 1; i < n_vocab; i++) lo = logits[i] < lo ? logits[i] : lo;
    if (lo < r.max - 16) lo = r.max - 16;
    const float scale = (r.max - lo) / 65535.f;
    const float lp0 = lo - r.max - r.log_sum;
    memcpy(out, &scale, 4);
    const float lp_tok = logits[tok] - r.max - r.log_sum;
    memcpy(out + 4, &lp0, 4);
    memcpy(out + 8, &lp_tok, 4);
    uint8_t *q = out + PACK_HEADER;
    for (int i = 0; i < n_vocab; i++) {
        int level = scale > 0 && logits[i] > lo ? round_nearest((logits[i] - lo) / scale) : 0;
        level = level < 0 ? 0 : level > 65535 ? 65535 : level;
        q[2 * i] = (uint8_t)level;
        q[2 * i + 1] = (uint8_t)(level >> 8);
    }
    return -(double)lp_tok;
}

static inline float unpack(const uint8_t *q, int i, float scale, float lp0) {
    return scale * (float)(q[2 * i] | (q[2 * i + 1] << 8)) + lp0;
}

double vkl_kld_add(vkl_kld_stats *s, const float *logits, int n_vocab, const uint8_t *base, int tok) {
    row_stats r = row_scan(logits, n_vocab);
    float scale, lp0, lp_tok;
    memcpy(&scale, base, 4);
    memcpy(&lp0, base + 4, 4);
    memcpy(&lp_tok, base + 8, 4);
    const uint8_t *q = base + PACK_HEADER;
    const float nll = r.max + r.log_sum - logits[tok];
    const float nll_base = -lp_tok;
    s->nll += nll, s->nll2 += (double)nll * nll;
    s->nll_base += nll_base, s->nll_base2 += (double)nll_base * nll_base;
    s->nll_nll_base += (double)nll * nll_base;
    /* KL(base || model) = sum p_base (log p_base - log p_model), over the base's stored range */
    const float norm = r.max + r.log_sum;
    double kld = 0;
    int imax_base = 0;
    float lp_max = 0;
    for (int i = 0; i < n_vocab; i++) {
        const float lp = unpack(q, i, scale, lp0);
        if (i == 0 || lp > lp_max) lp_max = lp, imax_base = i;
        if (lp > -16.f) kld += expf(lp) * (lp - logits[i] + norm);
    }
    s->kld += kld, s->kld2 += kld * kld;
    s->same_top += r.imax == imax_base;
    s->count++;
    return kld;
}

void vkl_mean_unc(double sum, double sum2, uint64_t count, double *mean, double *unc) {
    *mean = count ? sum / (double)count : 0.0;
    double var = count ? sum2 / (double)count - *mean * *mean : 0.0;
    *unc = var > 0 && count > 10 ? sqrt(var / (double)(count - 1)) : 0.0;
}

void vkl_kld_summarize(const vkl_kld_stats *s, vkl_kld_report *r) {
    double ln_ppl, ln_ppl_unc, ln_base, ln_base_unc;
    vkl_mean_unc(s->nll, s->nll2, s->count, &ln_ppl, &ln_ppl_unc);
    vkl_mean_unc(s->nll_base, s->nll_base2, s->count, &ln_base, &ln_base_unc);
    r->ppl = exp(ln_ppl), r->ppl_unc = r->ppl * ln_ppl_unc;
    r->ppl_base = exp(ln_base), r->ppl_base_unc = r->ppl_base * ln_base_unc;
    double n = (double)s->count, cov = 0;
    if (s->count >= 10) cov = (s->nll_nll_base / n - (s->nll / n) * (s->nll_base / n)) / (n - 1);
    r->ln_ratio = ln_ppl - ln_base;
    double v = ln_ppl_unc * ln_ppl_unc + ln_base_unc * ln_base_unc - 2 * cov;
    r->ln_ratio_unc = v > 0 ? sqrt(v) : 0;
    vkl_mean_unc(s->kld, s->kld2, s->count, &r->kld, &r->kld_unc);
    r->same_top = s->count ? (double)s->same_top / n : 0;
    r->same_top_unc = s->count > 1 ? sqrt(r->same_top * (1 - r->same_top) / (n - 1)) : 0;
}

void vkl_ppl_estimate(double nll, double nll2, uint64_t count, double *ppl, double *unc) {
    double mean = count ? nll / (double)count : 0, var = count ? nll2 / (double)count - mean * mean : 0;
    *ppl = exp(mean);
    *unc = var > 0 && count > 1 ? *ppl * sqrt(var / (double)(count - 1)) : -1;
}
