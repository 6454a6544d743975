/* Every Vulkan op and weight type against a CPU reference (double accumulation), over many shapes,
 * with zero validation messages. Skips (77) without a Vulkan device unless env CI is set. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_kernels.h"
#include "test.h"
#include "types.h"
#include "vulkan/vk_ops.h"

static vkl_vk_context ctx;
static vkl_vk_allocator *alloc;
static vkl_vk_ops ops;
static vkl_vk_seq *seq;
static uint64_t rng = 0x9E3779B97F4A7C15ull;

static float frand(void) { /* uniform in [-1, 1) */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / (1ull << 24))) * 2.0f - 1.0f;
}

static float *rand_vec(size_t n, float scale) {
    float *v = malloc(n * sizeof *v);
    if (!v) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) v[i] = frand() * scale;
    return v;
}

/* A device buffer holding `bytes` from `src` (or zeroes). Exits on failure (test setup). */
static vkl_vk_buffer dev_buf(const void *src, size_t bytes) {
    vkl_vk_buffer b;
    vkl_error err;
    if (vkl_vk_alloc(alloc, VKL_VK_MEM_DEVICE, bytes, &b, &err)) {
        fprintf(stderr, "alloc: %s\n", err.msg);
        exit(1);
    }
    void *zero = NULL;
    if (!src) src = zero = calloc(1, bytes);
    if (!src || vkl_vk_upload(alloc, &b, 0, src, bytes, &err)) {
        fprintf(stderr, "upload: %s\n", src ? err.msg : "oom");
        exit(1);
    }
    free(zero);
    return b;
}

static void download(vkl_vk_buffer *b, void *dst, size_t bytes) {
    vkl_error err;
    if (vkl_vk_download(alloc, b, 0, dst, bytes, &err)) {
        fprintf(stderr, "download: %s\n", err.msg);
        exit(1);
    }
}

static bool begin(void) {
    vkl_error err;
    if (vkl_vk_seq_begin(seq, &err)) {
        CHECK(0, "seq_begin: %s", err.msg);
        return false;
    }
    return true;
}

static bool submit(int rc, vkl_error *err) {
    CHECK(rc == 0, "record: %s", err->msg);
    vkl_error e2;
    int s = vkl_vk_seq_submit(seq, &e2);
    CHECK(s == 0, "submit: %s", e2.msg);
    return rc == 0 && s == 0;
}

/* ---- MUL_MAT ------------------------------------------------------------------------------- */

static double mm_worst[VKL_TYPE_COUNT];
static double x8_worst_cpu, x8_worst_ref;

/* Whether vk_ops takes the integer Q4_0 mat-vec with x quantized to 8 bits for this call (test
 * buffers are fresh allocations, so the texel-buffer alignment holds). */
static bool x8_path(vkl_type t, int64_t K, int64_t N) {
    return ops.texel_q && ops.tb_x8 && t == VKL_TYPE_Q4_0 && K % 256 == 0 && (N == 1 || ops.tb_mm_rows == 0);
}

static void test_mul_mat(vkl_type t, int64_t M, int64_t K, int64_t N) {
    const vkl_type_traits *tr = vkl_type_get(t);
    size_t row_bytes = vkl_row_size(t, K);
    float *wf = rand_vec((size_t)(M * K), 1.0f), *x = rand_vec((size_t)(N * K), 1.0f);
    uint8_t *w = malloc((size_t)M * row_bytes);
    float *ref = malloc((size_t)(M * N) * sizeof *ref), *y = malloc((size_t)(M * N) * sizeof *y);
    float *deq = malloc((size_t)K * sizeof *deq);
    double *mag = calloc((size_t)(M * N), sizeof *mag);
    if (!w || !ref || !y || !deq || !mag) exit(1);
    for (int64_t r = 0; r < M; r++) tr->from_f32(wf + r * K, w + r * row_bytes, K);
    vkl_matmul_ref(t, w, row_bytes, M, K, x, N, ref);
    /* the x8 path computes what the CPU backend's fast kernels compute (x quantized to 8 bits) */
    const bool x8 = x8_path(t, K, N);
    float *ref8 = x8 ? malloc((size_t)(M * N) * sizeof *ref8) : NULL;
    void *scratch = x8 ? malloc(vkl_matmul_scratch_size(t, K, N) + 64) : NULL;
    if (x8 && (!ref8 || !scratch)) exit(1);
    if (x8) vkl_matmul(NULL, t, w, row_bytes, M, K, x, N, ref8, scratch);
    for (int64_t r = 0; r < M; r++) { /* sum |w x| bounds the rounding error */
        tr->to_f32(w + r * row_bytes, deq, K);
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < K; k++) mag[n * M + r] += fabs((double)deq[k] * x[n * K + k]);
    }
    vkl_vk_buffer bw = dev_buf(w, (size_t)M * row_bytes), bx = dev_buf(x, (size_t)(N * K) * 4),
                  by = dev_buf(NULL, (size_t)(M * N) * 4);
    vkl_error err;
    /* N == 1: both mat-vec shaders (workgroup per rows, and row per invocation) */
    const bool lane_default = ops.mv_lane;
    for (int variant = 0; variant < (N == 1 ? 2 : 1); variant++) {
        ops.mv_lane = variant ? !lane_default : lane_default;
        memset(y, 0xff, (size_t)(M * N) * 4);
        if (vkl_vk_upload(alloc, &by, 0, y, (size_t)(M * N) * 4, &err)) exit(1);
        if (!begin() || !submit(vkl_vk_op_mul_mat(&ops, seq, t, vkl_vk_buffer_range(&bw), M, K,
                                                  vkl_vk_buffer_range(&bx), N,
                                                  vkl_vk_buffer_range(&by), &err),
                                &err))
            continue;
        download(&by, y, (size_t)(M * N) * 4);
        double worst = 0, worst8 = 0;
        for (int64_t i = 0; i < M * N; i++) {
            double e = fabs((double)y[i] - ref[i]) / (mag[i] + 1e-6);
            if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
            e = x8 ? fabs((double)y[i] - ref8[i]) / (mag[i] + 1e-6) : 0;
            if (!(e <= worst8)) worst8 = isnan(e) ? INFINITY : e;
        }
        if (x8) {
            /* against the CPU's quantized kernels: float summation order only (and, rarely, an x
             * rounded the other way); against the f32 oracle: the 8-bit quantization of x */
            x8_worst_cpu = VKL_MAX(x8_worst_cpu, worst8);
            x8_worst_ref = VKL_MAX(x8_worst_ref, worst);
            CHECK(worst8 < 2e-5 && worst < 3e-3, "mul_mat x8 %s M=%lld K=%lld N=%lld: relative error %g vs cpu, %g vs f32",
                  tr->name, (long long)M, (long long)K, (long long)N, worst8, worst);
        } else {
            if (worst > mm_worst[t]) mm_worst[t] = worst;
            CHECK(worst < 1e-4, "mul_mat %s M=%lld K=%lld N=%lld%s: relative error %g", tr->name,
                  (long long)M, (long long)K, (long long)N,
                  N == 1 ? (ops.mv_lane ? " (row per invocation)" : " (rows per workgroup)") : "",
                  worst);
        }
    }
    ops.mv_lane = lane_default;
    vkl_vk_free(alloc, &bw);
    vkl_vk_free(alloc, &bx);
    vkl_vk_free(alloc, &by);
    free(wf), free(x), free(w), free(ref), free(y), free(deq), free(mag), free(ref8), free(scratch);
}

/* ---- GET_ROWS ------------------------------------------------------------------------------ */

static void test_get_rows(vkl_type t, int64_t K) {
    const vkl_type_traits *tr = vkl_type_get(t);
    const int64_t n_rows = 37;
    const int32_t ids[] = {0, 36, 5, -1, 37, 5, 17};
    const int64_t n_ids = (int64_t)VKL_ARRAY_LEN(ids);
    size_t row_bytes = vkl_row_size(t, K);
    float *wf = rand_vec((size_t)(n_rows * K), 2.0f);
    uint8_t *w = malloc((size_t)n_rows * row_bytes);
    float *ref = calloc((size_t)(n_ids * K), sizeof *ref), *out = malloc((size_t)(n_ids * K) * 4);
    if (!w || !ref || !out) exit(1);
    for (int64_t r = 0; r < n_rows; r++) tr->from_f32(wf + r * K, w + r * row_bytes, K);
    for (int64_t i = 0; i < n_ids; i++)
        if (ids[i] >= 0 && ids[i] < n_rows) tr->to_f32(w + ids[i] * row_bytes, ref + i * K, K);
    vkl_vk_buffer bw = dev_buf(w, (size_t)n_rows * row_bytes), bi = dev_buf(ids, sizeof ids),
                  bo = dev_buf(NULL, (size_t)(n_ids * K) * 4);
    vkl_error err;
    if (begin() && submit(vkl_vk_op_get_rows(&ops, seq, t, vkl_vk_buffer_range(&bw), n_rows, K,
                                             vkl_vk_buffer_range(&bi), n_ids,
                                             vkl_vk_buffer_range(&bo), &err),
                          &err)) {
        download(&bo, out, (size_t)(n_ids * K) * 4);
        double worst = 0;
        for (int64_t i = 0; i < n_ids * K; i++) {
            double e = fabs((double)out[i] - ref[i]);
            if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
        }
        CHECK(worst <= 1e-6, "get_rows %s K=%lld: max error %g", tr->name, (long long)K, worst);
    }
    vkl_vk_free(alloc, &bw);
    vkl_vk_free(alloc, &bi);
    vkl_vk_free(alloc, &bo);
    free(wf), free(w), free(ref), free(out);
}

/* ---- RMS_NORM, SWIGLU, ADD, COPY --------------------------------------------------------------- */

static double worst_rms, worst_swiglu, worst_add, worst_copy, worst_rope, worst_attn16, worst_attn32,
    worst_kv;

static void test_rms_norm(int64_t rows, int64_t dim) {
    const float eps = 1e-5f;
    size_t n = (size_t)(rows * dim);
    float *x = rand_vec(n, 3.0f), *w = rand_vec((size_t)dim, 1.0f), *y = malloc(n * 4);
    vkl_vk_buffer bx = dev_buf(x, n * 4), bw = dev_buf(w, (size_t)dim * 4), by = dev_buf(NULL, n * 4);
    vkl_error err;
    if (begin() && submit(vkl_vk_op_rms_norm(&ops, seq, vkl_vk_buffer_range(&bx),
                                             vkl_vk_buffer_range(&bw), vkl_vk_buffer_range(&by),
                                             rows, dim, eps, &err),
                          &err)) {
        download(&by, y, n * 4);
        double worst = 0;
        for (int64_t r = 0; r < rows; r++) {
            double ss = 0;
            for (int64_t i = 0; i < dim; i++) ss += (double)x[r * dim + i] * x[r * dim + i];
            double sc = 1.0 / sqrt(ss / (double)dim + eps);
            for (int64_t i = 0; i < dim; i++) {
                double ref = x[r * dim + i] * sc * w[i];
                double e = fabs(y[r * dim + i] - ref) / (fabs(ref) + 1e-3);
                if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
            }
        }
        if (worst > worst_rms) worst_rms = worst;
        CHECK(worst < 1e-4, "rms_norm rows=%lld dim=%lld: error %g", (long long)rows, (long long)dim, worst);
    }
    vkl_vk_free(alloc, &bx), vkl_vk_free(alloc, &bw), vkl_vk_free(alloc, &by);
    free(x), free(w), free(y);
}

static void test_binary(bool swiglu, int64_t n) {
    float *a = rand_vec((size_t)n, 6.0f), *b = rand_vec((size_t)n, 2.0f), *o = malloc((size_t)n * 4);
    vkl_vk_buffer ba = dev_buf(a, (size_t)n * 4), bb = dev_buf(b, (size_t)n * 4);
    vkl_error err;
    vkl_vk_range ra = vkl_vk_buffer_range(&ba), rb = vkl_vk_buffer_range(&bb);
    /* output aliases the first input: the in-place use the model makes */
    if (!begin()) return;
    int rc = swiglu ? vkl_vk_op_swiglu(&ops, seq, ra, rb, ra, n, &err)
                : vkl_vk_op_add(&ops, seq, ra, rb, ra, n, &err);
    if (submit(rc, &err)) {
        download(&ba, o, (size_t)n * 4);
        double worst = 0;
        for (int64_t i = 0; i < n; i++) {
            double ref = swiglu ? (double)a[i] / (1.0 + exp(-(double)a[i])) * b[i] : (double)a[i] + b[i];
            double e = fabs(o[i] - ref) / (fabs(ref) + 1e-3);
            if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
        }
        double *wp = swiglu ? &worst_swiglu : &worst_add;
        if (worst > *wp) *wp = worst;
        CHECK(worst < 1e-5, "%s n=%lld: error %g", swiglu ? "swiglu" : "add", (long long)n, worst);
    }
    vkl_vk_free(alloc, &ba), vkl_vk_free(alloc, &bb);
    free(a), free(b), free(o);
}

/* f32 -> f16 -> f32 -> f32 through a half buffer at an element offset, and f16 -> f16. */
static void test_copy(int64_t n) {
    float *a = rand_vec((size_t)n, 100.0f), *back = malloc((size_t)n * 4);
    uint16_t *h = malloc((size_t)(n + 2) * 2), *h2 = malloc((size_t)(n + 2) * 2);
    vkl_vk_buffer ba = dev_buf(a, (size_t)n * 4), bh = dev_buf(NULL, (size_t)(n + 2) * 2),
                  bh2 = dev_buf(NULL, (size_t)(n + 2) * 2), bf = dev_buf(NULL, (size_t)n * 4),
                  bf2 = dev_buf(NULL, (size_t)n * 4);
    vkl_vk_range rh = vkl_vk_buffer_sub(&bh, 4, (size_t)n * 2); /* element offset 2 */
    vkl_error err;
    if (!begin()) return;
    int rc = vkl_vk_op_copy(&ops, seq, VKL_TYPE_F32, vkl_vk_buffer_range(&ba), VKL_TYPE_F16, rh, n, &err);
    if (!rc) rc = vkl_vk_op_copy(&ops, seq, VKL_TYPE_F16, rh, VKL_TYPE_F32, vkl_vk_buffer_range(&bf), n, &err);
    if (!rc) rc = vkl_vk_op_copy(&ops, seq, VKL_TYPE_F32, vkl_vk_buffer_range(&bf), VKL_TYPE_F32, vkl_vk_buffer_range(&bf2), n, &err);
    if (!rc) rc = vkl_vk_op_copy(&ops, seq, VKL_TYPE_F16, rh, VKL_TYPE_F16, vkl_vk_buffer_sub(&bh2, 0, (size_t)n * 2), n, &err);
    if (submit(rc, &err)) {
        download(&bf2, back, (size_t)n * 4);
        download(&bh, h, (size_t)(n + 2) * 2);
        download(&bh2, h2, (size_t)n * 2);
        double worst = 0;
        int bad_bits = 0;
        for (int64_t i = 0; i < n; i++) {
            uint16_t want = vkl_f32_to_f16(a[i]);
            /* packHalf2x16 may round differently by one ulp */
            if (abs((int)h[i + 2] - (int)want) > 1 || h2[i] != h[i + 2]) bad_bits++;
            double e = fabs(back[i] - vkl_f16_to_f32(h[i + 2]));
            if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
        }
        if (worst > worst_copy) worst_copy = worst;
        CHECK(bad_bits == 0 && worst == 0, "copy n=%lld: %d bad halves, error %g", (long long)n, bad_bits, worst);
        CHECK(h[0] == 0 && h[1] == 0, "copy wrote before its destination range");
    }
    vkl_vk_free(alloc, &ba), vkl_vk_free(alloc, &bh), vkl_vk_free(alloc, &bh2);
    vkl_vk_free(alloc, &bf), vkl_vk_free(alloc, &bf2);
    free(a), free(back), free(h), free(h2);
}

/* ---- ROPE ---------------------------------------------------------------------------------- */

/* Largest error of y = rope(x) against the f64 reference. */
static double rope_error(const float *x, const float *y, const vkl_vk_rope_params *rp) {
    double worst = 0;
    const int64_t hd = rp->head_dim, rd = rp->rope_dim;
    for (int64_t t = 0; t < rp->n_tokens; t++)
        for (int64_t h = 0; h < rp->n_heads; h++) {
            const float *xi = x + (t * rp->n_heads + h) * hd;
            const float *yi = y + (t * rp->n_heads + h) * hd;
            double ref[512];
            for (int64_t d = 0; d < hd; d++) ref[d] = xi[d];
            for (int64_t i = 0; i < rd / 2; i++) {
                double th = (double)(rp->pos0 + t) * rp->freq_scale * pow(rp->freq_base, -2.0 * (double)i / (double)rd);
                int64_t a = rp->neox ? i : 2 * i, b = rp->neox ? i + rd / 2 : 2 * i + 1;
                ref[a] = xi[a] * cos(th) - xi[b] * sin(th);
                ref[b] = xi[a] * sin(th) + xi[b] * cos(th);
            }
            for (int64_t d = 0; d < hd; d++) {
                double e = fabs(yi[d] - ref[d]);
                if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
            }
        }
    return worst;
}

/* Out of place, then in place (x's buffer rotated). */
static void test_rope(bool neox, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                      int64_t rope_dim, int64_t pos0, float base, float scale) {
    size_t n = (size_t)(n_tokens * n_heads * head_dim);
    float *x = rand_vec(n, 1.0f), *y = malloc(n * 4);
    vkl_vk_buffer bx = dev_buf(x, n * 4), by = dev_buf(NULL, n * 4);
    vkl_vk_rope_params rp = {n_tokens, n_heads, head_dim, rope_dim, pos0, base, scale, neox};
    vkl_error err;
    for (int inplace = 0; inplace < 2; inplace++) {
        vkl_vk_buffer *out = inplace ? &bx : &by;
        if (!begin() || !submit(vkl_vk_op_rope(&ops, seq, vkl_vk_buffer_range(&bx), vkl_vk_buffer_range(out), &rp,
                                               &err),
                                &err))
            continue;
        download(out, y, n * 4);
        double worst = rope_error(x, y, &rp);
        if (worst > worst_rope) worst_rope = worst;
        /* float theta at position ~1100 carries ~1e-4 rad of rounding */
        CHECK(worst < 2e-3, "rope neox=%d pos0=%lld dim=%lld/%lld%s: error %g", neox, (long long)pos0,
              (long long)rope_dim, (long long)head_dim, inplace ? " in place" : "", worst);
    }
    vkl_vk_free(alloc, &bx);
    vkl_vk_free(alloc, &by);
    free(x), free(y);
}

/* ---- KV_STORE + ATTENTION ------------------------------------------------------------------ */

static void test_attention(int64_t n_tokens, int64_t pos0, int64_t n_head, int64_t n_head_kv,
                           int64_t hd, vkl_type kv_type) {
    const int64_t n_ctx = pos0 + n_tokens + 3, kv_row = n_head_kv * hd;
    const bool f16 = kv_type == VKL_TYPE_F16;
    const size_t es = f16 ? 2 : 4, cache_n = (size_t)(n_ctx * kv_row);
    float *q = rand_vec((size_t)(n_tokens * n_head * hd), 1.0f);
    float *kc = rand_vec(cache_n, 1.0f), *vc = rand_vec(cache_n, 1.0f); /* reference cache */
    float *out = malloc((size_t)(n_tokens * n_head * hd) * 4);
    void *k_host = malloc(cache_n * es), *v_host = malloc(cache_n * es), *k_back = malloc(cache_n * es);
    if (!out || !k_host || !v_host || !k_back) exit(1);
    for (size_t i = 0; i < cache_n; i++) {
        if (f16) {
            ((uint16_t *)k_host)[i] = vkl_f32_to_f16(kc[i]);
            ((uint16_t *)v_host)[i] = vkl_f32_to_f16(vc[i]);
            kc[i] = vkl_f16_to_f32(((uint16_t *)k_host)[i]);
            vc[i] = vkl_f16_to_f32(((uint16_t *)v_host)[i]);
        } else {
            ((float *)k_host)[i] = kc[i];
            ((float *)v_host)[i] = vc[i];
        }
    }
    /* The cache holds positions < pos0 from the host; this batch's K/V arrive through kv_store
     * (the host copy gets garbage there so a missing store shows). */
    size_t batch_off = (size_t)(pos0 * kv_row), batch_n = (size_t)(n_tokens * kv_row);
    memset((uint8_t *)k_host + batch_off * es, 0x7b, batch_n * es);
    memset((uint8_t *)v_host + batch_off * es, 0x7b, batch_n * es);
    vkl_vk_buffer bq = dev_buf(q, (size_t)(n_tokens * n_head * hd) * 4),
                  bk = dev_buf(k_host, cache_n * es), bv = dev_buf(v_host, cache_n * es),
                  bks = dev_buf(kc + batch_off, batch_n * 4), bvs = dev_buf(vc + batch_off, batch_n * 4),
                  bo = dev_buf(NULL, (size_t)(n_tokens * n_head * hd) * 4);
    vkl_vk_attn_params ap = {n_tokens, n_head, n_head_kv, hd, pos0, n_ctx, kv_type};
    vkl_error err;
    if (!begin()) return;
    int rc = vkl_vk_op_kv_store(&ops, seq, &ap, vkl_vk_buffer_range(&bks), vkl_vk_buffer_range(&bvs),
                                vkl_vk_buffer_range(&bk), vkl_vk_buffer_range(&bv), &err);
    if (!rc)
        rc = vkl_vk_op_attention(&ops, seq, &ap, vkl_vk_buffer_range(&bq), vkl_vk_buffer_range(&bk),
                                 vkl_vk_buffer_range(&bv), vkl_vk_buffer_range(&bo), &err);
    if (submit(rc, &err)) {
        download(&bo, out, (size_t)(n_tokens * n_head * hd) * 4);
        download(&bk, k_back, cache_n * es);
        double worst_store = 0;
        for (size_t i = batch_off; i < batch_off + batch_n; i++) {
            float v = f16 ? vkl_f16_to_f32(((uint16_t *)k_back)[i]) : ((float *)k_back)[i];
            double e = fabs(v - kc[i]);
            if (!(e <= worst_store)) worst_store = isnan(e) ? INFINITY : e;
        }
        if (worst_store > worst_kv) worst_kv = worst_store;
        CHECK(worst_store <= (f16 ? 1e-3 : 0), "kv_store: error %g", worst_store);
        double worst = 0, scale = 1.0 / sqrt((double)hd);
        double *s = malloc((size_t)n_ctx * sizeof *s);
        for (int64_t t = 0; t < n_tokens; t++)
            for (int64_t h = 0; h < n_head; h++) {
                int64_t g = h / (n_head / n_head_kv), last = pos0 + t;
                const float *qi = q + (t * n_head + h) * hd;
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j <= last; j++) {
                    double d = 0;
                    for (int64_t e = 0; e < hd; e++) d += (double)qi[e] * kc[j * kv_row + g * hd + e];
                    s[j] = d * scale;
                    if (s[j] > mx) mx = s[j];
                }
                for (int64_t j = 0; j <= last; j++) sum += (s[j] = exp(s[j] - mx));
                for (int64_t e = 0; e < hd; e++) {
                    double ref = 0;
                    for (int64_t j = 0; j <= last; j++) ref += s[j] * vc[j * kv_row + g * hd + e];
                    ref /= sum;
                    double err2 = fabs(out[(t * n_head + h) * hd + e] - ref);
                    if (!(err2 <= worst)) worst = isnan(err2) ? INFINITY : err2;
                }
            }
        free(s);
        double *wp = f16 ? &worst_attn16 : &worst_attn32;
        if (worst > *wp) *wp = worst;
        CHECK(worst < (f16 ? 1e-3 : 1e-4), "attention %s n=%lld pos0=%lld heads %lld/%lld hd=%lld: error %g",
              f16 ? "f16" : "f32", (long long)n_tokens, (long long)pos0, (long long)n_head,
              (long long)n_head_kv, (long long)hd, worst);
    }
    vkl_vk_free(alloc, &bq), vkl_vk_free(alloc, &bk), vkl_vk_free(alloc, &bv);
    vkl_vk_free(alloc, &bks), vkl_vk_free(alloc, &bvs), vkl_vk_free(alloc, &bo);
    free(q), free(kc), free(vc), free(out), free(k_host), free(v_host), free(k_back);
}

/* ---- errors -------------------------------------------------------------------------------- */

static void test_bad_args(void) {
    vkl_vk_buffer b = dev_buf(NULL, 4096);
    vkl_vk_range r = vkl_vk_buffer_range(&b);
    vkl_error err;
    if (!begin()) return;
    CHECK(vkl_vk_op_mul_mat(&ops, seq, VKL_TYPE_Q4_0, r, 4, 33, r, 1, r, &err) == -1, "bad K accepted");
    CHECK(vkl_vk_op_mul_mat(&ops, seq, VKL_TYPE_Q8_1, r, 4, 32, r, 1, r, &err) == -1, "Q8_1 accepted");
    CHECK(vkl_vk_op_mul_mat(&ops, seq, VKL_TYPE_F32, r, 64, 64, r, 1, r, &err) == -1 &&
              strstr(err.msg, "needs"), "too-small range accepted: %s", err.msg);
    vkl_vk_attn_params ap = {1, 6, 4, 64, 0, 16, VKL_TYPE_F16};
    CHECK(vkl_vk_op_attention(&ops, seq, &ap, r, r, r, r, &err) == -1, "bad GQA accepted");
    vkl_vk_buffer huge;
    CHECK(vkl_vk_alloc(alloc, VKL_VK_MEM_DEVICE, (VkDeviceSize)1 << 50, &huge, &err) == -1 &&
              strstr(err.msg, "cannot allocate"), "huge allocation: %s", err.msg);
    CHECK(vkl_vk_seq_submit(seq, &err) == 0, "empty submit: %s", err.msg);
    vkl_vk_free(alloc, &b);
}

int main(void) {
    vkl_error err;
    if (vkl_vk_load(&err) || vkl_vk_context_create(&ctx, 0, &err)) {
        if (getenv("CI")) {
            fprintf(stderr, "no Vulkan device, and CI requires one: %s\n", err.msg);
            return 1;
        }
        printf("skipping: no Vulkan device (%s)\n", err.msg);
        return TEST_SKIP_CODE;
    }
    printf("device: %s (subgroup %u, validation %s)\n", ctx.info.props.deviceName, ctx.subgroup_size,
           ctx.validation_active ? "on" : "off");
    alloc = vkl_vk_allocator_create(&ctx, (VkDeviceSize)16 << 20, 0, &err);
    if (!alloc || vkl_vk_ops_init(&ops, &ctx, &err) || !(seq = vkl_vk_seq_create(&ctx, true, &err))) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return 1;
    }

    static const vkl_type types[] = {VKL_TYPE_F32,  VKL_TYPE_F16,  VKL_TYPE_BF16, VKL_TYPE_Q4_0,
                                     VKL_TYPE_Q4_1, VKL_TYPE_Q5_0, VKL_TYPE_Q5_1, VKL_TYPE_Q8_0,
                                     VKL_TYPE_Q2_K, VKL_TYPE_Q3_K, VKL_TYPE_Q4_K, VKL_TYPE_Q5_K,
                                     VKL_TYPE_Q6_K};
    static const int64_t Ms[] = {1, 7, 33}, Ns[] = {1, 7, 33};
    for (size_t ti = 0; ti < VKL_ARRAY_LEN(types); ti++) {
        vkl_type t = types[ti];
        const vkl_type_traits *tr = vkl_type_get(t);
        int64_t blk = tr->is_quantized ? tr->block_size : 8;
        int64_t Ks[] = {blk, blk * (tr->is_quantized ? 3 : 5)};
        for (size_t mi = 0; mi < 3; mi++)
            for (size_t ki = 0; ki < 2; ki++)
                for (size_t ni = 0; ni < 3; ni++) test_mul_mat(t, Ms[mi], Ks[ki], Ns[ni]);
        test_get_rows(t, Ks[0]);
        test_get_rows(t, Ks[1]);
    }
    test_mul_mat(VKL_TYPE_Q4_0, 33, 64, 512);
    test_mul_mat(VKL_TYPE_F16, 40, 64, 512);
    /* K % 256 == 0: the texel-buffer Q4_0/Q8_0 shaders (CPU devices pick them; rows per
     * invocation 1 and 16), and with them off the shaders GPUs take at these shapes */
    const uint32_t tb_rows_default = ops.tb_rows, tb_mm_rows_default = ops.tb_mm_rows;
    const bool texel_q_default = ops.texel_q, tb_x8_default = ops.tb_x8;
    for (int tq = 0; tq < (ops.texels ? 2 : 1); tq++) {
        ops.texel_q = tq ? !texel_q_default : texel_q_default;
        ops.tb_x8 = ops.texel_q && (tq ? true : tb_x8_default);
        for (uint32_t rows = 1; rows <= (ops.texel_q ? 16u : 1u); rows += 15) {
            ops.tb_rows = ops.tb_mm_rows = rows;
            for (int q8 = 0; q8 < 2; q8++) {
                vkl_type t = q8 ? VKL_TYPE_Q8_0 : VKL_TYPE_Q4_0;
                test_mul_mat(t, 1, 256, 1);
                test_mul_mat(t, 37, 512, 1);
                test_mul_mat(t, 70, 768, 7);
                test_mul_mat(t, 9, 256, 33);
            }
        }
    }
    ops.texel_q = ops.texels;
    /* the integer Q4_0 mat-vec (x8): 3 rows per invocation become a pair of pairs, batches as a
     * mat-vec per token, several row groups; then the float shader it replaces */
    ops.tb_x8 = ops.texels;
    ops.tb_rows = 3;
    ops.tb_mm_rows = 0;
    test_mul_mat(VKL_TYPE_Q4_0, 37, 512, 1);
    test_mul_mat(VKL_TYPE_Q4_0, 5, 256, 3);
    ops.tb_rows = tb_rows_default;
    ops.tb_mm_rows = tb_mm_rows_default;
    for (int x8 = 0; x8 < (ops.texels ? 2 : 1); x8++) {
        ops.tb_x8 = ops.texels && !x8;
        test_mul_mat(VKL_TYPE_Q4_0, 301, 2048, 1);
    }
    ops.texel_q = texel_q_default;
    ops.tb_x8 = tb_x8_default;
    /* Weights split over several bindings (a lowered binding limit stands in for a huge tensor). */
    ops.max_binding = 3000;
    test_mul_mat(VKL_TYPE_Q4_0, 300, 256, 1); /* 144-byte rows: 20 rows per binding */
    test_mul_mat(VKL_TYPE_Q8_0, 100, 256, 7);
    test_mul_mat(VKL_TYPE_Q6_K, 45, 512, 7);
    test_mul_mat(VKL_TYPE_F32, 70, 64, 3);
    test_get_rows(VKL_TYPE_Q5_0, 256);
    ops.max_binding = ctx.limits.maxStorageBufferRange;

    test_rms_norm(1, 64);
    test_rms_norm(7, 2048);
    test_rms_norm(3, 4097);
    test_binary(false, 1);
    test_binary(false, 100003);
    test_binary(true, 7);
    test_binary(true, 100003);
    test_copy(2);
    test_copy(10002);
    for (int neox = 0; neox < 2; neox++) {
        test_rope(neox, 7, 4, 64, 64, 0, 10000.0f, 1.0f);
        test_rope(neox, 1, 8, 128, 128, 1100, 10000.0f, 1.0f);
        test_rope(neox, 7, 3, 64, 32, 13, 500000.0f, 0.25f);
        test_rope(neox, 3, 5, 96, 34, 7, 10000.0f, 1.0f); /* odd shapes: 17 rotated pairs of 48 */
    }
    /* both attention shaders where the device reads texel buffers, whichever it picks */
    const bool attn_tb_default = ops.attn_tb;
    for (int variant = 0; variant < (ops.texels ? 2 : 1); variant++) {
        ops.attn_tb = variant ? !attn_tb_default : attn_tb_default;
        test_attention(1, 1100, 8, 4, 64, VKL_TYPE_F16);
        test_attention(7, 0, 8, 4, 32, VKL_TYPE_F16);
        test_attention(7, 40, 4, 1, 128, VKL_TYPE_F16);
        test_attention(1, 1100, 4, 1, 128, VKL_TYPE_F32);
        test_attention(7, 3, 8, 8, 64, VKL_TYPE_F32);
        test_attention(33, 0, 8, 4, 128, VKL_TYPE_F16);
        test_attention(3, 5, 12, 4, 64, VKL_TYPE_F16); /* 12 heads: a partial workgroup of 8 */
    }
    ops.attn_tb = attn_tb_default;
    test_bad_args();

    for (size_t ti = 0; ti < VKL_ARRAY_LEN(types); ti++)
        printf("mul_mat %-5s max relative error %.3g\n", vkl_type_name(types[ti]), mm_worst[types[ti]]);
    printf("mul_mat q4_0 x8 (integer, x quantized): max relative error %.3g vs the cpu kernels, %.3g vs f32\n",
           x8_worst_cpu, x8_worst_ref);
    printf("rms_norm %.3g  add %.3g  swiglu %.3g  copy %.3g  rope %.3g  kv_store %.3g  "
           "attention f16 %.3g f32 %.3g\n",
           worst_rms, worst_add, worst_swiglu, worst_copy, worst_rope, worst_kv, worst_attn16,
           worst_attn32);
    printf("pipelines created: %d\n", vkl_vk_pipelines_count(ops.pipes));

    vkl_vk_seq_destroy(seq);
    vkl_vk_ops_destroy(&ops);
    vkl_vk_allocator_destroy(alloc);
    vkl_vk_context_destroy(&ctx);
    uint32_t msgs = vkl_vk_validation_message_count();
    printf("validation messages: %u\n", msgs);
    CHECK(msgs == 0, "%u validation messages", msgs);
    return test_finish();
}
