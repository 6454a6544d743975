/* Our dequantizers against llama.cpp-quantized fixtures: every tensor of the Q8_0, Q4_0 and Q4_K_M
 * models, dequantized, must match the same tensor of the F16 master within the format's error.
 * Then our quantizers requantize the F16 master: the error must be comparable to llama.cpp's, and,
 * since llama-quantize without an importance matrix uses the same reference algorithms, the bytes
 * must be identical (they are, for every tensor: Q8_0, Q4_0, Q4_K and Q6_K). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "quant.h"
#include "test.h"
#include "types.h"

/* Requantization is checked on at most this many rows per tensor (the 32000-row embedding and
 * output tensors would dominate the run time, especially under sanitizers). */
#define REQUANT_ROWS 4096

/* Relative RMSE bounds against the F16 master, per stored type (gaussian-like weights). */
static double type_bound(vkl_type t) {
    switch (t) {
    case VKL_TYPE_F32: return 0.0;
    case VKL_TYPE_F16: return 0.0;
    case VKL_TYPE_Q8_0: return 0.0075;
    case VKL_TYPE_Q6_K: return 0.023;
    case VKL_TYPE_Q5_K: return 0.047;
    case VKL_TYPE_Q4_K: return 0.092;
    case VKL_TYPE_Q4_0: return 0.115;
    case VKL_TYPE_Q4_1: return 0.10;
    case VKL_TYPE_Q5_0: return 0.055;
    case VKL_TYPE_Q5_1: return 0.057;
    case VKL_TYPE_Q3_K: return 0.195;
    case VKL_TYPE_Q2_K: return 0.38;
    default: return 0.0;
    }
}

static double rel_rmse(const float *ref, const float *y, uint64_t n) {
    double e = 0, s = 0;
    for (uint64_t i = 0; i < n; i++) {
        double d = (double)y[i] - (double)ref[i];
        e += d * d;
        s += (double)ref[i] * ref[i];
    }
    return s > 0 ? sqrt(e / s) : sqrt(e);
}

static int dequant(const gguf_tensor *t, float *out) {
    const vkl_type_traits *tr = vkl_type_get(t->type);
    if (!tr) return -1;
    tr->to_f32(t->data, out, (int64_t)t->n_elements);
    return 0;
}

typedef struct {
    uint64_t tensors, identical_tensors, bytes, identical_bytes;
} byte_stats;

/* DIR/models/NAME opened, or NULL after a failed check. */
static gguf_file *open_model(const char *dir, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/%s", dir, name);
    vkl_error err = {{0}};
    gguf_file *q = gguf_open(path, &err);
    CHECK(q != NULL, "%s: %s", path, err.msg);
    return q;
}

static void check_model(const char *dir, const char *name, const gguf_file *master, byte_stats *bs) {
    gguf_file *q = open_model(dir, name);
    if (!q) return;
    CHECK(q->n_tensors == master->n_tensors, "%s: tensor count", name);
    printf("%s:\n", name);
    for (uint64_t i = 0; i < q->n_tensors; i++) {
        const gguf_tensor *t = &q->tensors[i];
        const gguf_tensor *m = gguf_find_tensor(master, t->name);
        CHECK(m != NULL, "%s: %s missing in the master", name, t->name);
        if (!m) continue;
        CHECK(m->n_elements == t->n_elements && m->ne[0] == t->ne[0], "%s: %s shape", name, t->name);
        const vkl_type_traits *tr = vkl_type_get(t->type);
        CHECK(tr != NULL, "%s: %s has unsupported type %d", name, t->name, (int)t->type);
        if (!tr || m->n_elements != t->n_elements) continue;
        uint64_t n = t->n_elements;
        float *ref = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float)), *ours = malloc(n * sizeof(float));
        uint8_t *qb = malloc(t->nbytes);
        CHECK(ref && got && ours && qb, "out of memory");
        if (!ref || !got || !ours || !qb) {
            free(ref), free(got), free(ours), free(qb);
            break;
        }
        dequant(m, ref);
        dequant(t, got);
        double e_llama = rel_rmse(ref, got, n);
        double bound = type_bound(t->type);
        CHECK(e_llama <= bound, "%s: %s (%s) rel rmse %.5f > %.5f", name, t->name, tr->name, e_llama, bound);

        /* requantize (a prefix of at most REQUANT_ROWS rows of) the master with our quantizer, row
         * by row as llama.cpp does, and compare error and bytes on that prefix */
        size_t rs = vkl_row_size(t->type, t->ne[0]);
        uint64_t rows = n / (uint64_t)t->ne[0];
        if (rows > REQUANT_ROWS) rows = REQUANT_ROWS;
        uint64_t np = rows * (uint64_t)t->ne[0], nb = rows * rs;
        for (uint64_t r = 0; r < rows; r++) tr->from_f32(ref + r * (uint64_t)t->ne[0], qb + r * rs, t->ne[0]);
        tr->to_f32(qb, ours, (int64_t)np);
        double e_ours = rel_rmse(ref, ours, np), e_llama_prefix = rel_rmse(ref, got, np);
        CHECK(e_ours <= 1.5 * e_llama_prefix + 1e-7, "%s: %s our error %.5f vs llama.cpp %.5f", name, t->name, e_ours,
              e_llama_prefix);
        uint64_t same = 0;
        const uint8_t *lb = t->data;
        for (uint64_t k = 0; k < nb; k++) same += lb[k] == qb[k];
        CHECK(same == nb, "%s: %s: our %s bytes differ from llama.cpp's in %llu of %llu bytes", name, t->name,
              tr->name, (unsigned long long)(nb - same), (unsigned long long)nb);
        bs->tensors++;
        bs->identical_tensors += same == nb;
        bs->bytes += nb;
        bs->identical_bytes += same;
        printf("  %-26s %-5s llama.cpp %.5f  ours %.5f  bytes %s (%.4f%% of %llu rows)\n", t->name, tr->name,
               e_llama_prefix, e_ours, same == nb ? "identical" : "differ", 100.0 * (double)same / (double)nb,
               (unsigned long long)rows);
        free(ref), free(got), free(ours), free(qb);
    }
    gguf_close(q);
}

/* ---- the in-repository set --------------------------------------------------------------------- */

/* Its three models were quantized by llama.cpp from one F32 master that is not in the repository.
 * Our dequantized Q8_0 stands in for it (0.4% error): every tensor of the Q4_0 and Q4_K_M models,
 * dequantized, must be within its format's error of that. Then the round trip: each tensor as
 * llama.cpp quantized it, dequantized and requantized by us to the same type, must come back byte
 * for byte (a value on the format's grid quantizes to itself) where the format guarantees that
 * (Q8_0, Q4_0), and within a small error where a search picks the scales (K-quants). */
static void check_repo_model(const char *dir, const char *name, const gguf_file *master, byte_stats *bs) {
    gguf_file *q = open_model(dir, name);
    if (!q) return;
    printf("%s:\n", name);
    for (uint64_t i = 0; i < q->n_tensors; i++) {
        const gguf_tensor *t = &q->tensors[i], *m = gguf_find_tensor(master, t->name);
        const vkl_type_traits *tr = vkl_type_get(t->type);
        CHECK(m && tr && m->n_elements == t->n_elements, "%s: %s missing, of another shape or type", name, t->name);
        if (!m || !tr || m->n_elements != t->n_elements || t->type == VKL_TYPE_F32) continue;
        uint64_t n = t->n_elements;
        float *ref = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float)), *again = malloc(n * sizeof(float));
        uint8_t *qb = malloc(t->nbytes);
        CHECK(ref && got && again && qb, "out of memory");
        if (ref && got && again && qb) {
            dequant(m, ref);
            dequant(t, got);
            double e_master = rel_rmse(ref, got, n), bound = type_bound(t->type) + type_bound(m->type);
            CHECK(e_master <= bound, "%s: %s (%s) rel rmse %.5f against the Q8_0 stand-in > %.5f", name, t->name,
                  tr->name, e_master, bound);
            size_t rs = vkl_row_size(t->type, t->ne[0]);
            uint64_t rows = n / (uint64_t)t->ne[0], same = 0;
            for (uint64_t r = 0; r < rows; r++) tr->from_f32(got + r * (uint64_t)t->ne[0], qb + r * rs, t->ne[0]);
            tr->to_f32(qb, again, (int64_t)n);
            const uint8_t *lb = t->data;
            for (uint64_t k = 0; k < t->nbytes; k++) same += lb[k] == qb[k];
            double e_trip = rel_rmse(got, again, n);
            bool exact_type = t->type == VKL_TYPE_Q8_0 || t->type == VKL_TYPE_Q4_0;
            if (exact_type)
                CHECK(same == t->nbytes, "%s: %s: the %s round trip changed %llu of %llu bytes", name, t->name, tr->name,
                      (unsigned long long)(t->nbytes - same), (unsigned long long)t->nbytes);
            else
                CHECK(e_trip <= 0.25 * type_bound(t->type), "%s: %s: the %s round trip moved the values by %.5f", name,
                      t->name, tr->name, e_trip);
            bs->tensors++;
            bs->identical_tensors += same == t->nbytes;
            bs->bytes += t->nbytes;
            bs->identical_bytes += same;
            printf("  %-26s %-5s vs Q8_0 %.5f  round trip %.2g, bytes %s (%.4f%%)\n", t->name, tr->name, e_master, e_trip,
                   same == t->nbytes ? "identical" : "differ", 100.0 * (double)same / (double)t->nbytes);
        }
        free(ref), free(got), free(again), free(qb);
    }
    gguf_close(q);
}

typedef void (*model_check_fn)(const char *dir, const char *name, const gguf_file *master, byte_stats *bs);

/* Runs check on SET-q8_0, SET-q4_0 and SET-q4_k_m of dir against the master MASTER.gguf. */
static void check_set(const char *dir, const char *master_name, const char *set, model_check_fn check,
                      const char *what) {
    gguf_file *master = open_model(dir, master_name);
    if (!master) return;
    static const char *const types[] = {"q8_0", "q4_0", "q4_k_m"};
    byte_stats bs = {0, 0, 0, 0};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s-%s.gguf", set, types[i]);
        check(dir, name, master, &bs);
    }
    printf("%s: %llu of %llu tensors byte-identical, %.4f%% of bytes\n", what, (unsigned long long)bs.identical_tensors,
           (unsigned long long)bs.tensors, bs.bytes ? 100.0 * (double)bs.identical_bytes / (double)bs.bytes : 0.0);
    gguf_close(master);
}

int main(void) {
    check_set(test_repo_fixtures(), "mini-q8_0.gguf", "mini", check_repo_model, "round trip of the in-repository models");
    const char *dir = test_fixtures_dir();
    if (dir) check_set(dir, "tiny-f16.gguf", "tiny", check_model, "requantized, against llama.cpp's");
    return test_finish();
}
