/* CPU ops: every fast kernel against the scalar reference over odd shapes (1, 7, 33 tokens), head
 * dimensions, GQA ratios, rope layouts and positions beyond 1024, with 1 and 3 threads; plus the
 * executor's lifetime-based memory plan. */
#include <math.h>

#include "cpu/cpu_backend.h"
#include "cpu/cpu_ops.h"
#include "executor.h"
#include "model.h"
#include "test.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

/* Gives t host storage (freed by free_data) and optionally random contents. Quantized tensors get
 * random values quantized with the reference quantizer. */
static void *blocks[256];
static int n_blocks;
static void give_data(vkl_tensor *t, bool random_fill) {
    size_t n = vkl_tensor_nbytes(t);
    t->data = calloc(1, n + 64);
    blocks[n_blocks++] = t->data;
    if (!random_fill) return;
    if (t->type == VKL_TYPE_F32) {
        for (int64_t i = 0; i < t->ne[0] * t->ne[1]; i++) ((float *)t->data)[i] = frand();
        return;
    }
    float *row = malloc(sizeof(float) * (size_t)t->ne[0]);
    for (int64_t r = 0; r < t->ne[1]; r++) {
        for (int64_t i = 0; i < t->ne[0]; i++) row[i] = frand();
        vkl_type_get(t->type)->from_f32(row, (char *)t->data + r * t->nb[1], t->ne[0]);
    }
    free(row);
}
static void free_data(void) {
    while (n_blocks) free(blocks[--n_blocks]);
}

static double nmse(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? num / den : num;
}

static vkl_threadpool *pools[2];
static const int pool_threads[2] = {1, 3};

/* Runs the node with the reference into its data, then the fast kernel (each thread count) into a
 * second buffer, and compares. `reset` restores side-effect state (the KV caches) between runs. */
static void compare(vkl_tensor *node, double tol, const char *what, void (*reset)(void *), void *reset_ctx) {
    size_t n = (size_t)(node->ne[0] * node->ne[1]);
    float *ref = malloc(n * sizeof(float));
    if (reset) reset(reset_ctx);
    vkl_cpu_op_ref(node);
    memcpy(ref, node->data, n * sizeof(float));
    for (int p = 0; p < 2; p++) {
        memset(node->data, 0, n * sizeof(float));
        if (reset) reset(reset_ctx);
        size_t ws = vkl_cpu_op_work_size(node, pool_threads[p]);
        void *work = ws ? malloc(ws) : NULL;
        vkl_cpu_op_fast(pools[p], node, work);
        double e = nmse(node->data, ref, n);
        CHECK(e <= tol, "%s, %d threads: NMSE %.3g > %.3g", what, pool_threads[p], e, tol);
        free(work);
    }
    free(ref);
}

static const int token_counts[] = {1, 7, 33};

static void test_get_rows(void) {
    const vkl_type types[] = {VKL_TYPE_F32, VKL_TYPE_F16, VKL_TYPE_BF16, VKL_TYPE_Q8_0, VKL_TYPE_Q4_0, VKL_TYPE_Q4_K, VKL_TYPE_Q6_K};
    for (size_t ti = 0; ti < VKL_ARRAY_LEN(types); ti++) {
        for (size_t nc = 0; nc < VKL_ARRAY_LEN(token_counts); nc++) {
            int n = token_counts[nc];
            vkl_graph *g = vkl_graph_create(8, NULL);
            vkl_tensor table;
            vkl_tensor_init(&table, "table", types[ti], 512, 50); /* 33 rows: above the threading cut-off */
            give_data(&table, true);
            vkl_tensor *ids = vkl_new_input(g, "ids", VKL_TYPE_I32, n, 1, NULL);
            give_data(ids, false);
            for (int i = 0; i < n; i++) ((int32_t *)ids->data)[i] = (i * 17 + 3) % 50;
            vkl_tensor *out = vkl_get_rows(g, &table, ids, NULL);
            give_data(out, false);
            char what[64];
            snprintf(what, sizeof what, "get_rows %s n=%d", vkl_type_name(types[ti]), n);
            compare(out, 0, what, NULL, NULL); /* same dequantizer: exact */
            vkl_graph_free(g);
            free_data();
        }
    }
}

static void test_rms_norm_swiglu_add_copy(void) {
    const int64_t dims[] = {33, 256, 1000};
    for (size_t di = 0; di < VKL_ARRAY_LEN(dims); di++) {
        for (size_t nc = 0; nc < VKL_ARRAY_LEN(token_counts); nc++) {
            int n = token_counts[nc];
            int64_t k = dims[di];
            vkl_graph *g = vkl_graph_create(16, NULL);
            vkl_tensor *x = vkl_new_input(g, "x", VKL_TYPE_F32, k, n, NULL);
            vkl_tensor *y = vkl_new_input(g, "y", VKL_TYPE_F32, k, n, NULL);
            vkl_tensor w;
            vkl_tensor_init(&w, "w", VKL_TYPE_F32, k, 1);
            give_data(x, true), give_data(y, true), give_data(&w, true);
            vkl_tensor *nodes[] = {vkl_rms_norm(g, x, &w, 1e-5f, NULL), vkl_swiglu(g, x, y, NULL), vkl_add(g, x, y, NULL)};
            for (size_t i = 0; i < VKL_ARRAY_LEN(nodes); i++) {
                give_data(nodes[i], false);
                char what[64];
                snprintf(what, sizeof what, "%s k=%lld n=%d", vkl_op_name(nodes[i]->op), (long long)k, n);
                compare(nodes[i], 1e-10, what, NULL, NULL);
            }
            /* f32 -> f16 -> f32 round trip through COPY. */
            vkl_tensor *h = vkl_copy(g, x, VKL_TYPE_F16, NULL);
            vkl_tensor *back = vkl_copy(g, h, VKL_TYPE_F32, NULL);
            give_data(h, false), give_data(back, false);
            void *work = malloc(vkl_cpu_op_work_size(h, 3) + 1);
            vkl_cpu_op_fast(pools[1], h, work);
            free(work);
            char what[64];
            snprintf(what, sizeof what, "copy f16->f32 k=%lld n=%d", (long long)k, n);
            compare(back, 0, what, NULL, NULL);
            CHECK(nmse(back->data, x->data, (size_t)(k * n)) < 1e-6, "f16 round trip");
            vkl_graph_free(g);
            free_data();
        }
    }
}

static void test_mul_mat(void) {
    const vkl_type types[] = {VKL_TYPE_F32, VKL_TYPE_F16, VKL_TYPE_Q8_0, VKL_TYPE_Q4_K};
    for (size_t ti = 0; ti < VKL_ARRAY_LEN(types); ti++) {
        for (size_t nc = 0; nc < VKL_ARRAY_LEN(token_counts); nc++) {
            int n = token_counts[nc];
            vkl_graph *g = vkl_graph_create(8, NULL);
            vkl_tensor w;
            vkl_tensor_init(&w, "w", types[ti], 256, 37);
            give_data(&w, true);
            vkl_tensor *x = vkl_new_input(g, "x", VKL_TYPE_F32, 256, n, NULL);
            give_data(x, true);
            vkl_tensor *y = vkl_mul_mat(g, &w, x, NULL);
            give_data(y, false);
            char what[64];
            snprintf(what, sizeof what, "mul_mat %s n=%d", vkl_type_name(types[ti]), n);
            compare(y, 1e-4, what, NULL, NULL);
            vkl_graph_free(g);
            free_data();
        }
    }
}

static void test_rope(void) {
    const int head_dims[] = {32, 64, 128};
    const int starts[] = {0, 5, 1500};
    for (size_t hi = 0; hi < VKL_ARRAY_LEN(head_dims); hi++)
        for (int mode = 0; mode <= VKL_ROPE_NEOX; mode += VKL_ROPE_NEOX)
            for (int partial = 0; partial < 2; partial++)
                for (size_t si = 0; si < VKL_ARRAY_LEN(starts); si++)
                    for (size_t nc = 0; nc < VKL_ARRAY_LEN(token_counts); nc++) {
                        int hd = head_dims[hi], n = token_counts[nc], n_rot = partial ? hd / 2 : hd;
                        vkl_graph *g = vkl_graph_create(8, NULL);
                        vkl_tensor *x = vkl_new_input(g, "x", VKL_TYPE_F32, hd * 8, n, NULL);
                        vkl_tensor *pos = vkl_new_input(g, "pos", VKL_TYPE_I32, n, 1, NULL);
                        give_data(x, true), give_data(pos, false);
                        for (int i = 0; i < n; i++) ((int32_t *)pos->data)[i] = starts[si] + i;
                        vkl_tensor *y = vkl_rope(g, x, pos, hd, n_rot, mode, 10000.0f, partial ? 0.25f : 1.0f, NULL);
                        give_data(y, false);
                        char what[96];
                        snprintf(what, sizeof what, "rope hd=%d n_rot=%d mode=%d pos=%d.. n=%d", hd, n_rot, mode,
                                 starts[si], n);
                        compare(y, 1e-10, what, NULL, NULL);
                        vkl_graph_free(g);
                        free_data();
                    }
}

/* Attention with a prefilled cache: ref and fast start from the same cache contents. */
typedef struct cache_pair {
    vkl_tensor *kc, *vc;
    void *k0, *v0;
    size_t bytes;
} cache_pair;

static void reset_cache(void *p) {
    cache_pair *c = p;
    memcpy(c->kc->data, c->k0, c->bytes);
    memcpy(c->vc->data, c->v0, c->bytes);
}

/* Both attention kernels: the AVX-512 one (tiles of up to 64 query rows, 6-row output blocks,
 * head dims that are multiples of 16) where the CPU has it, and the portable one (level avx2 and
 * head dims it does not take, like 24). */
static void attention_cases(bool all_shapes) {
    struct {
        int hd, n_head, n_head_kv;
    } shapes[] = {{32, 8, 8}, {32, 8, 4}, {64, 8, 1}, {16, 6, 2}, {128, 4, 2}, {24, 4, 2}, {80, 2, 1}};
    const int starts[] = {0, 5, 1100};
    const int counts[] = {1, 7, 33, 70};
    const vkl_type cache_types[] = {VKL_TYPE_F16, VKL_TYPE_F32};
    for (size_t s = 0; s < (all_shapes ? VKL_ARRAY_LEN(shapes) : 2); s++)
        for (size_t ci = 0; ci < 2; ci++)
            for (size_t si = 0; si < VKL_ARRAY_LEN(starts); si++)
                for (size_t nc = 0; nc < VKL_ARRAY_LEN(counts); nc++) {
                    int hd = shapes[s].hd, nh = shapes[s].n_head, nkv = shapes[s].n_head_kv;
                    int n = counts[nc], n_ctx = 1200;
                    if (n == 70 && (si != 1 || ci == 1)) continue; /* the long prompt: from 5, f16 cache */
                    vkl_graph *g = vkl_graph_create(16, NULL);
                    vkl_tensor *q = vkl_new_input(g, "q", VKL_TYPE_F32, hd * nh, n, NULL);
                    vkl_tensor *k = vkl_new_input(g, "k", VKL_TYPE_F32, hd * nkv, n, NULL);
                    vkl_tensor *v = vkl_new_input(g, "v", VKL_TYPE_F32, hd * nkv, n, NULL);
                    vkl_tensor *pos = vkl_new_input(g, "pos", VKL_TYPE_I32, n, 1, NULL);
                    vkl_tensor kc, vc;
                    vkl_tensor_init(&kc, "kc", cache_types[ci], hd * nkv, n_ctx);
                    vkl_tensor_init(&vc, "vc", cache_types[ci], hd * nkv, n_ctx);
                    give_data(q, true), give_data(k, true), give_data(v, true), give_data(pos, false);
                    give_data(&kc, true), give_data(&vc, true); /* rows before the batch: earlier tokens */
                    for (int i = 0; i < n; i++) ((int32_t *)pos->data)[i] = starts[si] + i;
                    cache_pair cp = {&kc, &vc, malloc(vkl_tensor_nbytes(&kc)), malloc(vkl_tensor_nbytes(&vc)),
                                     vkl_tensor_nbytes(&kc)};
                    memcpy(cp.k0, kc.data, cp.bytes);
                    memcpy(cp.v0, vc.data, cp.bytes);
                    vkl_tensor *o = vkl_attention(g, q, k, v, &kc, &vc, pos, hd, nh, nkv, 1.0f / sqrtf((float)hd), NULL);
                    CHECK(o != NULL, "attention node");
                    if (o) {
                        give_data(o, false);
                        char what[96];
                        snprintf(what, sizeof what, "attention %s hd=%d heads=%d/%d %s pos=%d.. n=%d",
                                 vkl_cpu_simd_level(), hd, nh, nkv, vkl_type_name(cache_types[ci]), starts[si], n);
                        compare(o, 1e-9, what, reset_cache, &cp);
                    }
                    free(cp.k0);
                    free(cp.v0);
                    vkl_graph_free(g);
                    free_data();
                }
}

static void test_attention(void) {
    attention_cases(true);
    if (vkl_cpu_force_simd("avx2") == 0) { /* the portable kernel where AVX-512 would be used */
        attention_cases(false);
        vkl_cpu_force_simd(NULL);
    }
}

/* A chain of adds: the planner reuses memory of dead intermediates, and results stay right. */
static void test_executor_plan(void) {
    vkl_error err = {{0}};
    vkl_backend_config cfg = {.n_threads = 2};
    vkl_backend *be = vkl_cpu_backend_open(0, &cfg, &err);
    CHECK(be != NULL, "%s", err.msg);
    if (!be) return;
    vkl_executor *ex = vkl_executor_create(&be, 1, &err);
    vkl_graph *g = vkl_graph_create(64, &err);
    const int64_t k = 1000, n = 4, steps = 20;
    vkl_tensor *x = vkl_new_input(g, "x", VKL_TYPE_F32, k, n, &err);
    vkl_tensor *acc = x;
    for (int i = 0; i < steps; i++) acc = vkl_add(g, acc, x, &err);
    CHECK(acc != NULL, "%s", err.msg);
    acc->flags |= VKL_TF_OUTPUT;
    vkl_plan *p = vkl_executor_plan(ex, g, &err);
    CHECK(p != NULL, "%s", err.msg);
    if (p) {
        size_t one = (size_t)(k * n) * sizeof(float);
        CHECK(vkl_plan_arena_size(p, 0) <= 4 * one, "arena %zu bytes for %lld tensors of %zu", vkl_plan_arena_size(p, 0),
              (long long)steps + 1, one);
        float *in = malloc(one), *out = malloc(one);
        for (int64_t i = 0; i < k * n; i++) in[i] = (float)i;
        CHECK(vkl_executor_set_input(ex, p, x, in, one, &err) == 0, "%s", err.msg);
        CHECK(vkl_executor_compute(ex, p, &err) == 0, "%s", err.msg);
        CHECK(vkl_executor_get_rows(ex, p, acc, 0, n, out, &err) == 0, "%s", err.msg);
        int bad = 0;
        for (int64_t i = 0; i < k * n; i++) bad += out[i] != (float)(i * (steps + 1));
        CHECK(bad == 0, "%d wrong sums", bad);
        CHECK(vkl_executor_get_rows(ex, p, acc, 2, 3, out, &err) != 0, "reading past the end must fail");
        free(in);
        free(out);
        vkl_plan_free(p);
    }
    vkl_graph_free(g);
    vkl_executor_free(ex);
    vkl_backend_close(be);
}

/* Every half value converts exactly as the reference converter does. */
static void test_f16_conversion(void) {
    static uint16_t h[1 << 16];
    static float f[1 << 16];
    for (uint32_t i = 0; i < (1u << 16); i++) h[i] = (uint16_t)i;
    vkl_cpu_f16_to_f32_row(h, f, 1 << 16);
    int bad = 0;
    for (uint32_t i = 0; i < (1u << 16); i++) {
        float r = vkl_f16_to_f32((uint16_t)i);
        bool same = isnan(r) ? isnan(f[i]) : (r == f[i] && signbit(r) == signbit(f[i]));
        bad += !same;
    }
    CHECK(bad == 0, "%d half values convert differently", bad);
}

/* A graph split over two backends: a second CPU backend that only takes MUL_MAT (every other
 * node stays on the first), so each boundary needs a copy. Same logits as on one backend. */
static bool only_mul_mat(vkl_backend *be, const vkl_tensor *node) {
    return node->op == VKL_OP_MUL_MAT && vkl_cpu_op_supported(node);
}

static void test_executor_split(void) {
    char path[1024];
    test_fixture_model(path, sizeof path, "mini-q8_0");
    vkl_error err = {{0}};
    gguf_file *f = gguf_open(path, &err);
    vkl_model *m = f ? vkl_model_create(f, NULL, NULL, &err) : NULL;
    vkl_backend_config cfg = {.n_threads = 2};
    vkl_backend *cpu = m ? vkl_cpu_backend_open(0, &cfg, &err) : NULL;
    cfg.n_threads = 1;
    vkl_backend *cpu2 = cpu ? vkl_cpu_backend_open(0, &cfg, &err) : NULL;
    CHECK(cpu2 != NULL, "%s", err.msg);
    if (!cpu2) {
        vkl_backend_close(cpu);
        vkl_model_free(m);
        return;
    }
    vkl_backend_ops picky_ops = *cpu2->ops;
    picky_ops.supports = only_mul_mat;
    vkl_backend picky = *cpu2;
    picky.ops = &picky_ops;
    const vkl_hparams *hp = &m->hp;
    int64_t kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    vkl_kv_cache *kv[2] = {vkl_kv_cache_create(cpu, hp->n_layer, 64, kv_dim, VKL_TYPE_F16, &err),
                           vkl_kv_cache_create(cpu, hp->n_layer, 64, kv_dim, VKL_TYPE_F16, &err)};
    vkl_backend *one[1] = {cpu}, *two[2] = {&picky, cpu};
    vkl_executor *ex[2] = {vkl_executor_create(one, 1, &err), vkl_executor_create(two, 2, &err)};
    vkl_llama_graph lg[2] = {{0}};
    vkl_plan *plan[2] = {NULL, NULL};
    const int n = 7;
    for (int k = 0; k < 2; k++) {
        if (kv[k] && ex[k] && vkl_llama_build(m, kv[k], n, true, &lg[k], &err) == 0)
            plan[k] = vkl_executor_plan(ex[k], lg[k].g, &err);
        CHECK(plan[k] != NULL, "plan %d: %s", k, err.msg);
    }
    if (plan[0] && plan[1]) {
        CHECK(vkl_plan_n_runs(plan[0]) == 1 && vkl_plan_n_runs(plan[1]) > 2 * hp->n_layer, "runs: %d and %d",
              vkl_plan_n_runs(plan[0]), vkl_plan_n_runs(plan[1]));
        size_t rows = (size_t)n * (size_t)hp->n_vocab;
        float *out[2] = {malloc(rows * sizeof(float)), malloc(rows * sizeof(float))};
        for (int pass = 0; pass < 2; pass++) { /* the second pass reads the first's KV rows */
            int32_t tokens[7], pos[7];
            for (int i = 0; i < n; i++) tokens[i] = 100 + 37 * (i + pass * n), pos[i] = pass * n + i;
            for (int k = 0; k < 2; k++) {
                CHECK(vkl_executor_set_input(ex[k], plan[k], lg[k].tokens, tokens, sizeof tokens, &err) == 0 &&
                          vkl_executor_set_input(ex[k], plan[k], lg[k].pos, pos, sizeof pos, &err) == 0 &&
                          vkl_executor_compute(ex[k], plan[k], &err) == 0 &&
                          vkl_executor_get_rows(ex[k], plan[k], lg[k].logits, 0, n, out[k], &err) == 0,
                      "pass %d, executor %d: %s", pass, k, err.msg);
            }
            double e = nmse(out[1], out[0], rows);
            CHECK(e < 1e-10, "split graph, pass %d: NMSE %.3g against one backend", pass, e);
        }
        free(out[0]);
        free(out[1]);
    }
    for (int k = 0; k < 2; k++) {
        vkl_plan_free(plan[k]);
        vkl_graph_free(lg[k].g);
        vkl_executor_free(ex[k]);
        vkl_kv_cache_free(kv[k]);
    }
    vkl_backend_close(cpu2);
    vkl_backend_close(cpu);
    vkl_model_free(m);
}

int main(void) {
    vkl_error err = {{0}};
    test_f16_conversion();
    for (int p = 0; p < 2; p++) {
        pools[p] = vkl_threadpool_create(pool_threads[p], &err);
        if (!pools[p]) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
    }
    test_get_rows();
    test_rms_norm_swiglu_add_copy();
    test_mul_mat();
    test_rope();
    test_attention();
    test_executor_plan();
    test_executor_split();
    for (int p = 0; p < 2; p++) vkl_threadpool_destroy(pools[p]);
    return test_finish();
}
