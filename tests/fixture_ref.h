/* Shared by the model tests: reading the fixtures' references (.tokens.txt, .logits.f32) and the
 * tolerance of fixtures/README.md (NMSE <= 1e-3, finite values, argmax equal where the
 * reference's top-1 beats its top-2 by >= 1.0). */
#ifndef VKL_FIXTURE_REF_H
#define VKL_FIXTURE_REF_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REF_NMSE_TOL 1e-3
#define REF_MARGIN 1.0f

#define VKL_TEST_MIN(a, b) ((a) < (b) ? (a) : (b))

static inline double vkl_test_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct ref_case {
    int n_vocab, n_prompt, logits_from;
    int32_t *prompt, *generated;
    int n_generated;
    float *logits; /* n_rows x n_vocab */
    int n_rows;
} ref_case;

static int ref_read_ids(const char *line, int32_t **out) {
    int cap = 64, n = 0;
    int32_t *ids = malloc(sizeof *ids * (size_t)cap);
    const char *p = line;
    while (ids && *p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) break;
        if (n == cap) {
            int32_t *bigger = realloc(ids, sizeof *ids * (size_t)(cap *= 2));
            if (!bigger) {
                free(ids);
                return -1;
            }
            ids = bigger;
        }
        ids[n++] = (int32_t)v;
        p = end;
    }
    *out = ids;
    return ids ? n : -1;
}

static void ref_free(ref_case *r) {
    free(r->prompt);
    free(r->generated);
    free(r->logits);
    memset(r, 0, sizeof *r);
}

/* Reads fixtures/ref/NAME.tokens.txt and (when logits_path is non-NULL) the logits. 0 on success. */
static int ref_load(const char *tokens_path, const char *logits_path, ref_case *r) {
    memset(r, 0, sizeof *r);
    FILE *f = fopen(tokens_path, "r");
    if (!f) return -1;
    static char line[1 << 16];
    int np = -1;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "n_vocab ", 8)) r->n_vocab = atoi(line + 8);
        else if (!strncmp(line, "logits_from ", 12)) r->logits_from = atoi(line + 12);
        else if (!strncmp(line, "prompt ", 7)) np = ref_read_ids(line + 7, &r->prompt);
        else if (!strncmp(line, "generated ", 10)) r->n_generated = ref_read_ids(line + 10, &r->generated);
        else if (!strncmp(line, "greedy ", 7)) r->n_generated = ref_read_ids(line + 7, &r->generated); /* compact set */
    }
    fclose(f);
    r->n_prompt = np;
    if (np < 1 || r->n_generated < 1) return -1;
    if (!logits_path) return 0;
    if (r->n_vocab < 1) return -1;
    r->n_rows = r->n_prompt - r->logits_from + r->n_generated - 1;
    size_t n = (size_t)r->n_rows * (size_t)r->n_vocab;
    r->logits = malloc(n * sizeof(float));
    f = fopen(logits_path, "rb");
    if (!f || !r->logits) {
        if (f) fclose(f);
        return -1;
    }
    size_t got = fread(r->logits, sizeof(float), n, f);
    fclose(f);
    return got == n ? 0 : -1;
}

/* Loads the reference fixtures/ref/MODEL.CASE.{tokens.txt,logits.f32} (logits only when
 * with_logits) and writes fixtures/models/MODEL.gguf into model_path. 0 on success; on failure
 * prints which file could not be read and leaves r empty. */
static inline int ref_load_case(const char *fx, const char *model, const char *case_name, bool with_logits, ref_case *r,
                                char *model_path, size_t model_path_size) {
    char tokens_path[1024], logits_path[1024];
    snprintf(model_path, model_path_size, "%s/models/%s.gguf", fx, model);
    snprintf(tokens_path, sizeof tokens_path, "%s/ref/%s.%s.tokens.txt", fx, model, case_name);
    snprintf(logits_path, sizeof logits_path, "%s/ref/%s.%s.logits.f32", fx, model, case_name);
    if (ref_load(tokens_path, with_logits ? logits_path : NULL, r) == 0) return 0;
    fprintf(stderr, "cannot read the reference %s%s%s\n", tokens_path, with_logits ? " / " : "",
            with_logits ? logits_path : "");
    ref_free(r);
    return -1;
}

static int ref_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* top-1 minus top-2. */
static float ref_margin(const float *x, int n) {
    float a = -INFINITY, b = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (x[i] > a) b = a, a = x[i];
        else if (x[i] > b) b = x[i];
    }
    return a - b;
}

/* Compares one row; returns its NMSE (INFINITY when a value is not finite), sets *argmax_ok. */
static double ref_compare_row(const float *ours, const float *ref, int n, bool *argmax_ok) {
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(ours[i])) {
            *argmax_ok = false;
            return INFINITY;
        }
        double d = (double)ours[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    *argmax_ok = ref_margin(ref, n) < REF_MARGIN || ref_argmax(ours, n) == ref_argmax(ref, n);
    return den > 0 ? num / den : num;
}

#endif
