/* Sampler: greedy, top-k/top-p/min-p filtering, penalties, seeded determinism and the empirical
 * distribution at temperature 1 against the softmax. */
#include <math.h>

#include "sampler.h"
#include "test.h"

static vkl_sampler_params plain_params(float temp, uint64_t seed) {
    vkl_sampler_params p = vkl_sampler_default_params();
    p.temperature = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = seed;
    return p;
}

static vkl_sampler *make(const vkl_sampler_params *p, int32_t n_vocab) {
    vkl_error err = {{0}};
    vkl_sampler *s = vkl_sampler_create(p, n_vocab, &err);
    CHECK(s != NULL, "create: %s", err.msg);
    return s;
}

/* A test-local LCG for logits, independent of the sampler's PRNG. */
static uint64_t lcg_state = 12345;
static float frand(void) {
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((lcg_state >> 40) * 0x1.0p-24);
}
static void random_logits(float *l, int n, float scale) {
    for (int i = 0; i < n; i++) l[i] = (frand() * 2.0f - 1.0f) * scale;
}

static int32_t ref_argmax(const float *l, int n) {
    int32_t b = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[b]) b = i;
    return b;
}

static void test_greedy(void) {
    enum { N = 32000 };
    static float l[N];
    random_logits(l, N, 10.0f);
    vkl_sampler_params p = plain_params(0.0f, 1);
    vkl_sampler *s = make(&p, N);
    p.temperature = 1.0f;
    p.top_k = 1;
    vkl_sampler *k1 = make(&p, N);
    if (!s || !k1) return;
    for (int r = 0; r < 20; r++) {
        random_logits(l, N, 10.0f);
        int32_t a = ref_argmax(l, N);
        CHECK(vkl_sampler_sample(s, l) == a, "greedy picks the argmax");
        CHECK(vkl_sampler_sample(k1, l) == a, "top-k 1 equals greedy");
    }
    vkl_sampler_free(s);
    vkl_sampler_free(k1);
    /* Ties go to the lowest id; NaN counts as -inf. */
    p = plain_params(0.0f, 1);
    s = make(&p, 5);
    float t[5] = {1.0f, NAN, 3.0f, 3.0f, -2.0f};
    if (s) CHECK(vkl_sampler_sample(s, t) == 2, "tie -> lowest id");
    vkl_sampler_free(s);
    s = make(&p, 3);
    float nanl[3] = {NAN, -1.0f, NAN};
    if (s) CHECK(vkl_sampler_sample(s, nanl) == 1, "NaN ignored");
    vkl_sampler_free(s);
}

static void test_determinism(void) {
    enum { N = 32000, DRAWS = 200 };
    static float l[N];
    vkl_sampler_params p = vkl_sampler_default_params();
    p.temperature = 1.5f;
    p.seed = 42;
    vkl_sampler *a = make(&p, N), *b = make(&p, N);
    p.seed = 43;
    vkl_sampler *c = make(&p, N);
    if (!a || !b || !c) return;
    static int32_t seq[DRAWS];
    int same_ab = 0, same_ac = 0;
    lcg_state = 7;
    for (int i = 0; i < DRAWS; i++) {
        random_logits(l, N, 3.0f);
        int32_t x = vkl_sampler_sample(a, l), y = vkl_sampler_sample(b, l), z = vkl_sampler_sample(c, l);
        seq[i] = x;
        same_ab += x == y;
        same_ac += x == z;
        CHECK(x >= 0 && x < N, "in range");
    }
    CHECK(same_ab == DRAWS, "same seed, same tokens (%d/%d)", same_ab, DRAWS);
    CHECK(same_ac < DRAWS / 2, "different seeds differ (%d/%d equal)", same_ac, DRAWS);
    CHECK(vkl_sampler_seed(a) == 42, "seed reported");
    /* Reset replays the sequence. */
    vkl_sampler_reset(a, 42);
    lcg_state = 7;
    int replay = 0;
    for (int i = 0; i < DRAWS; i++) {
        random_logits(l, N, 3.0f);
        replay += vkl_sampler_sample(a, l) == seq[i];
    }
    CHECK(replay == DRAWS, "reset replays (%d/%d)", replay, DRAWS);
    /* A random seed is resolved to a concrete one. */
    vkl_sampler_reset(c, VKL_SEED_RANDOM);
    CHECK(vkl_sampler_seed(c) != VKL_SEED_RANDOM, "random seed resolved");
    vkl_sampler_free(a);
    vkl_sampler_free(b);
    vkl_sampler_free(c);
}

/* Pearson chi-square of counts against probabilities. */
static double chi_square(const int *counts, const double *prob, int n, int draws) {
    double x2 = 0.0;
    for (int i = 0; i < n; i++) {
        double e = prob[i] * draws;
        x2 += (counts[i] - e) * (counts[i] - e) / e;
    }
    return x2;
}

static void test_distribution(void) {
    enum { N = 8, DRAWS = 100000 };
    const float l[N] = {2.0f, 1.5f, 1.0f, 0.5f, 0.0f, -0.5f, -1.0f, 0.75f};
    const float temps[] = {1.0f, 0.5f, 2.0f};
    for (size_t ti = 0; ti < VKL_ARRAY_LEN(temps); ti++) {
        float T = temps[ti];
        vkl_sampler_params p = plain_params(T, 2024);
        vkl_sampler *s = make(&p, N);
        if (!s) return;
        int counts[N] = {0};
        for (int i = 0; i < DRAWS; i++) counts[vkl_sampler_sample(s, l)]++;
        double prob[N], sum = 0.0;
        for (int i = 0; i < N; i++) sum += prob[i] = exp(l[i] / T);
        for (int i = 0; i < N; i++) prob[i] /= sum;
        double x2 = chi_square(counts, prob, N, DRAWS);
        /* 7 degrees of freedom: P(X2 > 24.3) = 0.001. */
        CHECK(x2 < 24.3, "temperature %.1f: chi-square %.2f", T, x2);
        printf("temperature %.1f: chi-square %.2f (7 dof)\n", T, x2);
        vkl_sampler_free(s);
    }
}

static void test_filters(void) {
    enum { N = 4, DRAWS = 20000 };
    /* Probabilities 0.5, 0.3, 0.15, 0.05. */
    const float l[N] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    struct {
        float top_p, min_p;
        int32_t top_k;
        int n_allowed;
        const char *what;
    } cases[] = {
        {0.7f, 0.0f, 0, 2, "top-p 0.7 keeps 2"},
        {0.45f, 0.0f, 0, 1, "top-p 0.45 keeps 1"},
        {0.9f, 0.0f, 0, 3, "top-p 0.9 keeps 3"},
        {1.0f, 0.2f, 0, 3, "min-p 0.2 keeps 3"},
        {1.0f, 0.5f, 0, 2, "min-p 0.5 keeps 2"},
        {1.0f, 0.0f, 3, 3, "top-k 3 keeps 3"},
        {0.9f, 0.5f, 0, 2, "top-p then min-p"},
    };
    for (size_t c = 0; c < VKL_ARRAY_LEN(cases); c++) {
        vkl_sampler_params p = plain_params(1.0f, 99);
        p.top_p = cases[c].top_p;
        p.min_p = cases[c].min_p;
        p.top_k = cases[c].top_k;
        vkl_sampler *s = make(&p, N);
        if (!s) return;
        int counts[N] = {0};
        for (int i = 0; i < DRAWS; i++) counts[vkl_sampler_sample(s, l)]++;
        bool ok = true;
        for (int i = 0; i < N; i++) ok &= i < cases[c].n_allowed ? counts[i] > 0 : counts[i] == 0;
        CHECK(ok, "%s: counts %d %d %d %d", cases[c].what, counts[0], counts[1], counts[2], counts[3]);
        /* Within the kept set the proportions are the renormalised softmax. */
        if (cases[c].n_allowed == 2) {
            double f = counts[0] / (double)(counts[0] + counts[1]);
            CHECK(fabs(f - 0.625) < 0.02, "%s: renormalised %.3f vs 0.625", cases[c].what, f);
        }
        vkl_sampler_free(s);
    }
}

/* Big vocabularies with ties: the tokens top-k / top-p let through are exactly the expected set. */
static int32_t *order_ids; /* sorted by logit desc, then id asc */
static const float *order_l;
static int cmp_desc(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (order_l[x] != order_l[y]) return order_l[x] > order_l[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

static void test_large_filters(void) {
    enum { N = 32000, DRAWS = 600 };
    static float l[N];
    static int32_t order[N];
    static int hits[N];
    lcg_state = 99;
    for (int i = 0; i < N; i++) l[i] = roundf((frand() * 2.0f - 1.0f) * 40.0f) / 4.0f; /* many ties */
    for (int i = 0; i < N; i++) order[i] = i;
    order_ids = order;
    order_l = l;
    qsort(order, N, sizeof *order, cmp_desc);

    /* top-k 25 at a high temperature: every one of the 25 best appears, nothing else does. */
    vkl_sampler_params p = plain_params(1000.0f, 5);
    p.top_k = 25;
    vkl_sampler *s = make(&p, N);
    if (!s) return;
    memset(hits, 0, sizeof hits);
    for (int i = 0; i < DRAWS; i++) hits[vkl_sampler_sample(s, l)]++;
    int inside = 0, outside = 0;
    for (int i = 0; i < N; i++) {
        bool in = false;
        for (int k = 0; k < 25; k++) in |= order[k] == i;
        if (in) inside += hits[i] > 0;
        else outside += hits[i];
    }
    CHECK(inside == 25 && outside == 0, "top-k 25: %d of the best seen, %d draws outside", inside, outside);
    vkl_sampler_free(s);

    /* A large k takes the quickselect path: nothing outside the 1500 best. */
    p.top_k = 1500;
    s = make(&p, N);
    if (!s) return;
    outside = 0;
    for (int i = 0; i < DRAWS; i++) {
        int32_t id = vkl_sampler_sample(s, l);
        outside += cmp_desc(&id, &order[1499]) > 0;
    }
    CHECK(outside == 0, "top-k 1500: %d draws outside", outside);
    vkl_sampler_free(s);

    /* top-p 0.9 over a flat-ish distribution (needs far more than 64 candidates). */
    for (int i = 0; i < N; i++) l[i] = (frand() * 2.0f - 1.0f) * 6.0f;
    qsort(order, N, sizeof *order, cmp_desc);
    double sum = 0.0, cum = 0.0;
    for (int i = 0; i < N; i++) sum += exp(l[i] - l[order[0]]);
    int keep = 0;
    while (keep < N) {
        cum += exp(l[order[keep]] - l[order[0]]);
        keep++;
        if (cum >= 0.9 * sum) break;
    }
    float cut = l[order[keep - 1]];
    p = plain_params(1.0f, 6);
    p.top_p = 0.9f;
    s = make(&p, N);
    if (!s) return;
    int below = 0;
    for (int i = 0; i < DRAWS / 3; i++) below += l[vkl_sampler_sample(s, l)] < cut;
    printf("top-p 0.9 keeps %d of %d\n", keep, N);
    CHECK(below == 0 && keep > 1000, "top-p 0.9: %d draws below the cut (%d kept)", below, keep);
    vkl_sampler_free(s);
}

static void test_penalties(void) {
    vkl_sampler_params p = plain_params(0.0f, 1);
    p.repeat_penalty = 1.1f;
    p.repeat_last_n = 2;
    vkl_sampler *s = make(&p, 4);
    if (!s) return;
    const float pos[4] = {2.0f, 1.9f, -1.0f, -1.1f};
    CHECK(vkl_sampler_sample(s, pos) == 0, "no history: argmax");
    vkl_sampler_accept(s, 0);
    CHECK(vkl_sampler_sample(s, pos) == 1, "2.0 / 1.1 < 1.9: the penalised token loses");
    const float neg[4] = {-1.0f, -1.05f, -3.0f, -4.0f};
    CHECK(vkl_sampler_sample(s, neg) == 1, "-1.0 * 1.1 < -1.05: negative logits are multiplied");
    /* The window is the last 2 accepted tokens. */
    vkl_sampler_accept(s, 2);
    vkl_sampler_accept(s, 3);
    CHECK(vkl_sampler_sample(s, pos) == 0, "token 0 left the window");
    /* Repeats in the window count once for the repeat penalty. */
    vkl_sampler_accept(s, 0);
    vkl_sampler_accept(s, 0);
    const float close[4] = {2.0f, 1.7f, 0.0f, 0.0f};
    CHECK(vkl_sampler_sample(s, close) == 0, "2.0 / 1.1 = 1.82 > 1.7 (penalty applied once)");
    vkl_sampler_reset(s, 1);
    CHECK(vkl_sampler_sample(s, pos) == 0, "reset clears the history");
    vkl_sampler_free(s);

    p = plain_params(0.0f, 1);
    p.frequency_penalty = 0.2f;
    p.presence_penalty = 0.05f;
    s = make(&p, 4);
    if (!s) return;
    const float f[4] = {1.0f, 0.6f, 0.0f, 0.0f};
    vkl_sampler_accept(s, 0);
    CHECK(vkl_sampler_sample(s, f) == 0, "1 - 0.25 = 0.75 > 0.6");
    vkl_sampler_accept(s, 0);
    CHECK(vkl_sampler_sample(s, f) == 1, "1 - 0.45 = 0.55 < 0.6");
    vkl_sampler_free(s);
}

static void test_errors(void) {
    vkl_error err = {{0}};
    vkl_sampler_params p = vkl_sampler_default_params();
    CHECK(!vkl_sampler_create(&p, 0, &err) && strstr(err.msg, "vocabulary size"), "n_vocab 0");
    p.repeat_penalty = 0.0f;
    CHECK(!vkl_sampler_create(&p, 10, &err) && strstr(err.msg, "repeat penalty"), "penalty 0");
    p = vkl_sampler_default_params();
    p.repeat_last_n = 0;
    vkl_sampler *s = vkl_sampler_create(&p, 10, &err);
    CHECK(s != NULL, "last_n 0 is allowed");
    if (s) vkl_sampler_accept(s, 3); /* no history kept */
    vkl_sampler_free(s);
    /* All logits -inf: still returns a valid id. */
    p = plain_params(1.0f, 3);
    s = make(&p, 3);
    const float inf[3] = {-INFINITY, -INFINITY, -INFINITY};
    if (s) CHECK(vkl_sampler_sample(s, inf) == 0, "all -inf");
    vkl_sampler_free(s);
}

static void bench(int32_t n_vocab) {
    float *l = malloc((size_t)n_vocab * sizeof *l);
    if (!l) return;
    lcg_state = 1;
    random_logits(l, n_vocab, 8.0f);
    vkl_sampler_params cfgs[3] = {vkl_sampler_default_params(), plain_params(0.0f, 1), plain_params(0.8f, 1)};
    cfgs[0].seed = 1;
    cfgs[2].top_p = 0.95f;
    const char *names[3] = {"defaults (top-k 40)", "greedy", "top-p 0.95 only"};
    for (int c = 0; c < 3; c++) {
        vkl_sampler *s = make(&cfgs[c], n_vocab);
        if (!s) break;
#ifdef VKLLM_SANITIZE
        int reps = 3;
#else
        int reps = 20;
#endif
        double t0 = vkl_time_s();
        for (int i = 0; i < reps; i++) vkl_sampler_sample(s, l);
        printf("n_vocab %d, %s: %.3f ms/token\n", n_vocab, names[c], (vkl_time_s() - t0) / reps * 1e3);
        vkl_sampler_free(s);
    }
    free(l);
}

int main(void) {
    test_greedy();
    test_determinism();
    test_distribution();
    test_filters();
    test_large_filters();
    test_penalties();
    test_errors();
    bench(32000);
    bench(128256);
    return test_finish();
}
