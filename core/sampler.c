/* Token sampler, see sampler.h. */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    float logit;
    int32_t id;
} cand;

struct vkl_sampler {
    vkl_sampler_params p;
    int32_t n_vocab;
    float *work;      /* the logits after penalties, indexed by id */
    cand *c;          /* candidates, n_vocab entries */
    int32_t n;        /* candidates still in play */
    int32_t sorted;   /* c[0..sorted) is sorted best-first and beats everything after it */
    int32_t *hist;    /* ring of the last repeat_last_n accepted tokens */
    int32_t hist_n, hist_pos;
    int32_t *counts;  /* per-token scratch for penalties, all zero between calls */
    uint64_t rng[4];
    uint64_t seed;
};

/* ---- PRNG: xoshiro256**, seeded through splitmix64 ------------------------------------------- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(uint64_t s[4]) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* Uniform in [0, 1). */
static double rng_uniform(uint64_t s[4]) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

static void seed_rng(vkl_sampler *s, uint64_t seed) {
    if (seed == VKL_SEED_RANDOM) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^ (uint64_t)(uintptr_t)s;
        seed = splitmix64(&x);
        if (seed == VKL_SEED_RANDOM) seed = 0;
    }
    s->seed = seed;
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

vkl_sampler_params vkl_sampler_default_params(void) {
    return (vkl_sampler_params){
        .temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
        .repeat_penalty = 1.0f, .repeat_last_n = 64, .frequency_penalty = 0.0f, .presence_penalty = 0.0f,
        .seed = VKL_SEED_RANDOM,
    };
}

vkl_sampler *vkl_sampler_create(const vkl_sampler_params *p, int32_t n_vocab, vkl_error *err) {
    if (n_vocab <= 0) {
        vkl_fail(err, "sampler: vocabulary size %d is invalid", n_vocab);
        return NULL;
    }
    if (!(p->repeat_penalty > 0.0f) || p->repeat_last_n < 0 || isnan(p->temperature) || isnan(p->top_p) ||
        isnan(p->min_p) || isnan(p->frequency_penalty) || isnan(p->presence_penalty)) {
        vkl_fail(err, "sampler: invalid parameters (repeat penalty must be > 0, last-n >= 0, no NaN)");
        return NULL;
    }
    vkl_sampler *s = vkl_calloc(1, sizeof *s, err);
    if (!s) return NULL;
    s->p = *p;
    s->n_vocab = n_vocab;
    s->work = vkl_malloc((size_t)n_vocab * sizeof *s->work, err);
    s->c = s->work ? vkl_malloc((size_t)n_vocab * sizeof *s->c, err) : NULL;
    s->counts = s->c ? vkl_calloc((size_t)n_vocab, sizeof *s->counts, err) : NULL;
    s->hist = s->counts ? vkl_malloc((size_t)VKL_MAX(p->repeat_last_n, 1) * sizeof *s->hist, err) : NULL;
    if (!s->hist) {
        vkl_sampler_free(s);
        return NULL;
    }
    seed_rng(s, p->seed);
    return s;
}

void vkl_sampler_free(vkl_sampler *s) {
    if (!s) return;
    free(s->work);
    free(s->c);
    free(s->counts);
    free(s->hist);
    free(s);
}

void vkl_sampler_reset(vkl_sampler *s, uint64_t seed) {
    s->hist_n = s->hist_pos = 0;
    seed_rng(s, seed);
}

uint64_t vkl_sampler_seed(const vkl_sampler *s) { return s->seed; }

void vkl_sampler_accept(vkl_sampler *s, int32_t token) {
    if (s->p.repeat_last_n <= 0 || token < 0 || token >= s->n_vocab) return;
    s->hist[s->hist_pos] = token;
    s->hist_pos = (s->hist_pos + 1) % s->p.repeat_last_n;
    if (s->hist_n < s->p.repeat_last_n) s->hist_n++;
}

/* ---- candidate ordering ---------------------------------------------------------------------- */

/* Higher logit first; ties go to the lower id so that every result is deterministic. */
static inline bool better(const cand *a, const cand *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cmp_cand(const void *x, const void *y) {
    const cand *a = x, *b = y;
    return better(a, b) ? -1 : better(b, a) ? 1 : 0;
}

static inline void swap_cand(cand *a, cand *b) {
    cand t = *a;
    *a = *b;
    *b = t;
}

/* Reorders c[0..n) so that c[0..k) holds the k best (unordered), 0 < k < n: quickselect with a
 * median-of-three pivot, expected O(n). */
static void select_best(cand *c, int32_t n, int32_t k) {
    int32_t lo = 0, hi = n - 1;
    while (hi > lo) {
        int32_t mid = lo + (hi - lo) / 2;
        if (better(&c[mid], &c[lo])) swap_cand(&c[mid], &c[lo]);
        if (better(&c[hi], &c[lo])) swap_cand(&c[hi], &c[lo]);
        if (better(&c[hi], &c[mid])) swap_cand(&c[hi], &c[mid]);
        cand pivot = c[mid]; /* c[lo] >= pivot >= c[hi] in "better" order */
        int32_t i = lo, j = hi;
        while (i <= j) {
            while (better(&c[i], &pivot)) i++;
            while (better(&pivot, &c[j])) j--;
            if (i <= j) swap_cand(&c[i++], &c[j--]);
        }
        /* Now c[lo..j] >= pivot >= c[i..hi], and c[j+1..i-1] == pivot. */
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else return;
    }
}

/* Makes c[0..k) the k best candidates in order (k clamped to n). */
static void ensure_sorted(vkl_sampler *s, int32_t k) {
    if (k > s->n) k = s->n;
    if (k <= s->sorted) return;
    cand *rest = s->c + s->sorted;
    int32_t n_rest = s->n - s->sorted, want = k - s->sorted;
    if (want < n_rest) select_best(rest, n_rest, want);
    qsort(rest, (size_t)want, sizeof *rest, cmp_cand);
    s->sorted = k;
}

/* ---- the stages -------------------------------------------------------------------------------- */

static void apply_penalties(vkl_sampler *s) {
    const vkl_sampler_params *p = &s->p;
    if (s->hist_n == 0 || (p->repeat_penalty == 1.0f && p->frequency_penalty == 0.0f && p->presence_penalty == 0.0f))
        return;
    for (int32_t i = 0; i < s->hist_n; i++) s->counts[s->hist[i]]++;
    for (int32_t i = 0; i < s->hist_n; i++) {
        int32_t id = s->hist[i], cnt = s->counts[id];
        if (cnt == 0) continue; /* already applied for this token */
        float *l = &s->work[id];
        *l = *l <= 0.0f ? *l * p->repeat_penalty : *l / p->repeat_penalty;
        *l -= (float)cnt * p->frequency_penalty + p->presence_penalty;
        s->counts[id] = 0;
    }
}

static void apply_top_p(vkl_sampler *s, float top_p) {
    ensure_sorted(s, 1);
    float max = s->c[0].logit;
    double sum = 0.0;
    for (int32_t i = 0; i < s->n; i++) sum += expf(s->c[i].logit - max);
    double target = (double)top_p * sum, cum = 0.0;
    int32_t i = 0, want = 64;
    for (;;) {
        ensure_sorted(s, want);
        for (; i < s->sorted; i++) {
            cum += expf(s->c[i].logit - max);
            if (cum >= target) {
                s->n = s->sorted = i + 1;
                return;
            }
        }
        if (s->sorted >= s->n) return;
        want = want > s->n / 4 ? s->n : want * 4;
    }
}

static void apply_min_p(vkl_sampler *s, float min_p) {
    ensure_sorted(s, 1);
    float threshold = s->c[0].logit + logf(min_p);
    /* Stable compaction: the sorted prefix stays a sorted prefix. */
    int32_t o = 0, kept_sorted = 0;
    for (int32_t i = 0; i < s->n; i++) {
        if (s->c[i].logit >= threshold) {
            if (i < s->sorted) kept_sorted++;
            s->c[o++] = s->c[i];
        }
    }
    s->n = o;
    s->sorted = kept_sorted;
}

static int32_t argmax_cands(const vkl_sampler *s) {
    int32_t best = 0;
    for (int32_t i = 1; i < s->n; i++)
        if (better(&s->c[i], &s->c[best])) best = i;
    return s->c[best].id;
}

/* First index of the largest value (NaN never wins). */
static int32_t argmax_work(const vkl_sampler *s) {
    int32_t best = 0;
    float bv = isnan(s->work[0]) ? -INFINITY : s->work[0];
    for (int32_t i = 1; i < s->n_vocab; i++)
        if (s->work[i] > bv) bv = s->work[i], best = i;
    return best;
}

static inline cand make_cand(float l, int32_t id) { return (cand){isnan(l) ? -INFINITY : l, id}; }

/* Restores the min-heap (worst candidate at the root) below position i. */
static void sift_down_worst(cand *h, int32_t n, int32_t i) {
    for (;;) {
        int32_t c = 2 * i + 1;
        if (c >= n) return;
        if (c + 1 < n && better(&h[c], &h[c + 1])) c++;
        if (!better(&h[i], &h[c])) return;
        swap_cand(&h[i], &h[c]);
        i = c;
    }
}

/* Small k: one pass over the logits keeping the k best in a heap, O(n) compares, sorted after. */
static void top_k_heap(vkl_sampler *s, int32_t k) {
    cand *h = s->c;
    for (int32_t i = 0; i < k; i++) h[i] = make_cand(s->work[i], i);
    for (int32_t i = k / 2 - 1; i >= 0; i--) sift_down_worst(h, k, i);
    for (int32_t i = k; i < s->n_vocab; i++) {
        float l = s->work[i];
        if (l > h[0].logit) { /* ties keep the lower id already in the heap; NaN never enters */
            h[0] = (cand){l, i};
            sift_down_worst(h, k, 0);
        }
    }
    qsort(h, (size_t)k, sizeof *h, cmp_cand);
    s->n = s->sorted = k;
}

int32_t vkl_sampler_sample(vkl_sampler *s, const float *logits) {
    const vkl_sampler_params *p = &s->p;
    memcpy(s->work, logits, (size_t)s->n_vocab * sizeof *s->work);
    apply_penalties(s);
    if (p->temperature <= 0.0f || p->top_k == 1) return argmax_work(s);

    if (p->top_k > 0 && p->top_k <= 1024 && p->top_k < s->n_vocab) {
        top_k_heap(s, p->top_k);
    } else {
        for (int32_t i = 0; i < s->n_vocab; i++) s->c[i] = make_cand(s->work[i], i);
        s->n = s->n_vocab;
        s->sorted = 0;
        if (p->top_k > 0 && p->top_k < s->n) {
            ensure_sorted(s, p->top_k);
            s->n = p->top_k;
        }
    }
    if (p->top_p < 1.0f) apply_top_p(s, VKL_MAX(p->top_p, 0.0f));
    if (p->min_p > 0.0f && p->min_p <= 1.0f) apply_min_p(s, p->min_p);

    /* Temperature, then one draw from the softmax over what is left. */
    float max = s->c[0].logit;
    if (s->sorted == 0)
        for (int32_t i = 1; i < s->n; i++) max = VKL_MAX(max, s->c[i].logit);
    if (max == -INFINITY) return argmax_cands(s);
    float inv_t = VKL_MIN(1.0f / p->temperature, 1e30f); /* finite, so 0 * inv_t stays 0 */
    double sum = 0.0;
    for (int32_t i = 0; i < s->n; i++) sum += expf((s->c[i].logit - max) * inv_t);
    if (!(sum > 0.0) || !isfinite(sum)) return argmax_cands(s);
    double u = rng_uniform(s->rng) * sum, cum = 0.0;
    for (int32_t i = 0; i < s->n; i++) {
        cum += expf((s->c[i].logit - max) * inv_t);
        if (u < cum) return s->c[i].id;
    }
    /* Rounding left u just above the total: take the last candidate with any weight. */
    for (int32_t i = s->n - 1; i > 0; i--)
        if (expf((s->c[i].logit - max) * inv_t) > 0.0f) return s->c[i].id;
    return s->c[0].id;
}
