/* Vulkan ops: argument checks, bindings, push constants and grids; see vk_ops.h. */
#include "vk_ops.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GROUPS 65535u

int vkl_vk_ops_init(vkl_vk_ops *ops, vkl_vk_context *ctx, vkl_error *err) {
    memset(ops, 0, sizeof *ops);
    const VkSubgroupFeatureFlags need = VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT;
    if ((ctx->info.subgroup_ops & need) != need || !(ctx->info.subgroup_stages & VK_SHADER_STAGE_COMPUTE_BIT))
        return vkl_fail(err, "device %s lacks subgroup arithmetic in compute shaders",
                        ctx->info.props.deviceName);
    if (ctx->limits.maxComputeSharedMemorySize < 32768 || ctx->limits.maxPushConstantsSize < 64)
        return vkl_fail(err, "device %s has too little shared memory or push constant space",
                        ctx->info.props.deviceName);
    /* VKLLM_VK_PATH=gpu|cpu: the shaders of the other device type (benchmarks, tests) */
    const char *path = getenv("VKLLM_VK_PATH");
    if (path && *path && strcmp(path, "gpu") && strcmp(path, "cpu"))
        return vkl_fail(err, "VKLLM_VK_PATH=%s: expected gpu or cpu", path);
    ops->ctx = ctx;
    ops->pipes = vkl_vk_pipelines_create(ctx, err);
    if (!ops->pipes) return -1;
    uint32_t sg = ctx->subgroup_size ? ctx->subgroup_size : 32;
    /* Mat-vec: 4 subgroups per workgroup (32 invocations on lavapipe, 128 on NVIDIA), at most 32
     * subgroups (the shader's reduction array). */
    ops->mv_wg = VKL_MIN(VKL_MAX(4 * sg, 32u), 256u);
    if (ops->mv_wg / sg > 32) ops->mv_wg = 32 * sg;
    ops->mv_rows = 2;
    ops->mv_lane = ctx->info.props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
    if (path && *path) ops->mv_lane = !strcmp(path, "cpu");
    if (ops->mv_lane) ops->mv_rows = 4; /* rows per invocation: each x load serves 4 rows */
    ops->max_binding = ctx->limits.maxStorageBufferRange;
    VkFormatProperties fp;
    vkGetPhysicalDeviceFormatProperties(ctx->physical_device, VK_FORMAT_R32G32B32A32_UINT, &fp);
    ops->texels = (fp.bufferFeatures & VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT) != 0;
    ops->texel_q = ops->mv_lane && ops->texels;
    ops->attn_tb = ops->mv_lane && ops->texels;
    ops->tb_rows = 16;
    ops->tb_x8 = ops->texel_q;
    ops->tb_mm_rows = 8;
    ops->norm_wg = VKL_MIN(VKL_MAX(4 * sg, 64u), 256u);
    if (ops->norm_wg / sg > 32) ops->norm_wg = 32 * sg;
    return 0;
}

void vkl_vk_ops_destroy(vkl_vk_ops *ops) {
    if (!ops) return;
    vkl_vk_pipelines_destroy(ops->pipes);
    memset(ops, 0, sizeof *ops);
}

bool vkl_vk_ops_supports_type(vkl_type t) {
    switch (t) {
    case VKL_TYPE_F32: case VKL_TYPE_F16: case VKL_TYPE_BF16:
    case VKL_TYPE_Q4_0: case VKL_TYPE_Q4_1: case VKL_TYPE_Q5_0: case VKL_TYPE_Q5_1:
    case VKL_TYPE_Q8_0: case VKL_TYPE_Q2_K: case VKL_TYPE_Q3_K: case VKL_TYPE_Q4_K:
    case VKL_TYPE_Q5_K: case VKL_TYPE_Q6_K:
        return true;
    default:
        return false;
    }
}

/* "mul_mat_vec_q4_k" etc. */
static void shader_name(char *buf, size_t n, const char *prefix, vkl_type t) {
    int w = snprintf(buf, n, "%s_%s", prefix, vkl_type_name(t));
    for (int i = 0; i < w && (size_t)i < n; i++) buf[i] = (char)tolower((unsigned char)buf[i]);
}

/* Binds r; *elem_off receives the offset inside the binding in units of `elem` bytes. */
static int bind(const vkl_vk_ops *ops, vkl_vk_range r, bool write, uint32_t elem,
                uint64_t need_bytes, const char *what, vkl_vk_binding *b, uint32_t *elem_off,
                vkl_error *err) {
    if (r.size < need_bytes)
        return vkl_fail(err, "vulkan op: %s range holds %llu bytes, needs %llu", what,
                        (unsigned long long)r.size, (unsigned long long)need_bytes);
    if (r.offset % elem)
        return vkl_fail(err, "vulkan op: %s offset %llu is not a multiple of %u", what,
                        (unsigned long long)r.offset, elem);
    r.size = need_bytes ? need_bytes : elem;
    uint32_t delta;
    if (vkl_vk_bind_range(ops->ctx, r, write, b, &delta, err)) {
        vkl_error_prefix(err, "%s", what);
        return -1;
    }
    *elem_off = delta / elem;
    return 0;
}

static const vkl_vk_pipeline *pipe(vkl_vk_ops *ops, const char *name, uint32_t n_bindings,
                                   uint32_t push_size, const uint32_t *spec, uint32_t n_spec,
                                   vkl_error *err) {
    return vkl_vk_pipeline_get(ops->pipes, name, n_bindings, push_size, spec, n_spec, err);
}

/* Grid for `n` invocations in workgroups of 256, as elementwise.glsl's flat_index expects. */
static int grid_1d(uint64_t n, uint32_t *gx, uint32_t *gy, vkl_error *err) {
    uint64_t groups = (n + 255) / 256;
    if (groups == 0) groups = 1;
    uint64_t x = groups < MAX_GROUPS ? groups : MAX_GROUPS;
    uint64_t y = (groups + x - 1) / x;
    if (y > MAX_GROUPS || n > UINT32_MAX) return vkl_fail(err, "vulkan op: %llu elements are too many", (unsigned long long)n);
    *gx = (uint32_t)x;
    *gy = (uint32_t)y;
    return 0;
}

static bool fits_u32(int64_t v) { return v >= 0 && v <= (int64_t)UINT32_MAX; }

/* Rows per dispatch so a row range of a weight matrix fits one binding (with the alignment slack
 * of vkl_vk_bind_range). */
static int64_t rows_per_binding(const vkl_vk_ops *ops, size_t row_bytes) {
    uint64_t range = VKL_MIN(ops->max_binding, (uint64_t)ops->ctx->limits.maxStorageBufferRange);
    uint64_t slack = VKL_MAX(ops->ctx->limits.minStorageBufferOffsetAlignment, (VkDeviceSize)4) + 4;
    if (range > UINT32_MAX - 64) range = UINT32_MAX - 64; /* shaders use 32-bit byte offsets */
    return range > slack + row_bytes ? (int64_t)((range - slack) / row_bytes) : 0;
}

static int check_weight(vkl_type t, int64_t K, const char *op, vkl_error *err) {
    const vkl_type_traits *tr = vkl_type_get(t);
    if (!tr || !vkl_vk_ops_supports_type(t))
        return vkl_fail(err, "vulkan %s: weight type %s is not supported", op, vkl_type_name(t));
    int64_t mult = tr->is_quantized ? tr->block_size : 8;
    if (K <= 0 || K % mult)
        return vkl_fail(err, "vulkan %s: row length %lld is not a positive multiple of %lld (%s)",
                        op, (long long)K, (long long)mult, tr->name);
    return 0;
}

/* Weight offsets: 4-byte aligned except for types whose block size is only 2-byte aligned. */
static uint32_t weight_align(vkl_type t) {
    return vkl_type_get(t)->type_size % 4 == 0 ? 4 : 2;
}

#define CPU_MV_ROWS 8u  /* rows per invocation of mul_mat_vec_cpu.comp (faster than 4 there) */
#define CPU_MM_ROWS 8u  /* ROWS and TN of mul_mat_cpu.comp */
#define CPU_MM_TOKENS 8u
#define TB_MM_TOKENS 8u  /* TN of mul_mat_tb.comp */

typedef struct mm_push {
    uint32_t M, K, N, w_off, row_bytes, x_off, y_off, y_stride;
} mm_push;

/* Q4_0/Q8_0 with weights and x read through texel buffers (shaders/tb_q.glsl): whether this
 * call qualifies. */
static bool use_texels(const vkl_vk_ops *ops, vkl_type wtype, vkl_vk_range w, int64_t M, int64_t K,
                       vkl_vk_range x, int64_t N) {
    if (!ops->texel_q || (wtype != VKL_TYPE_Q4_0 && wtype != VKL_TYPE_Q8_0) || K % 256) return false;
    vkl_vk_range xr = {x.buffer, x.offset, (uint64_t)N * K * 4};
    vkl_vk_range wr = {w.buffer, w.offset, VKL_MIN((uint64_t)M, (uint64_t)64) * vkl_row_size(wtype, K)};
    return vkl_vk_texels_ok(ops->ctx, xr) && vkl_vk_texels_ok(ops->ctx, wr);
}

/* N == 1: mul_mat_vec_tb.comp (tb_rows rows per invocation), for Q4_0 with tb_x8 its integer
 * version mul_mat_vec_tb_x8.comp (rows rounded up to even); N > 1: mul_mat_tb.comp (tb_mm_rows
 * rows and TB_MM_TOKENS tokens per invocation). */
static int mul_mat_texels(vkl_vk_ops *ops, vkl_vk_seq *seq, vkl_type wtype, vkl_vk_range w,
                          int64_t M, int64_t K, vkl_vk_range x, int64_t N, vkl_vk_range y,
                          vkl_error *err) {
    const size_t row_bytes = vkl_row_size(wtype, K);
    vkl_vk_binding bx, by, bw;
    uint32_t y_off;
    if (vkl_vk_bind_texels(ops->ctx, (vkl_vk_range){x.buffer, x.offset, (uint64_t)N * K * 4}, &bx, err) ||
        bind(ops, y, true, 4, (uint64_t)N * M * 4, "mul_mat y", &by, &y_off, err))
        return -1;
    const uint64_t max_bytes = VKL_MIN((uint64_t)ops->max_binding,
                                       (uint64_t)ops->ctx->limits.maxTexelBufferElements * 16);
    const bool vec = N == 1 || ops->tb_mm_rows == 0; /* mat-vec per token */
    const bool x8 = vec && ops->tb_x8 && wtype == VKL_TYPE_Q4_0; /* integer mat-vec: rows in pairs */
    uint32_t rows = VKL_MAX(VKL_MIN(vec ? ops->tb_rows : ops->tb_mm_rows, vec ? 16u : 8u), 1u);
    if (x8) rows += rows % 2;
    const uint32_t wg = 8, rows_per_group = wg * rows;
    /* rows per binding: whole workgroups where possible, and within the grid limit */
    int64_t per = (int64_t)(max_bytes / row_bytes);
    if (per >= rows_per_group) per = per / rows_per_group * rows_per_group;
    per = VKL_MIN(per, (int64_t)MAX_GROUPS * rows_per_group);
    if (per <= 0) return vkl_fail(err, "vulkan mul_mat: one row of %zu bytes exceeds a binding", row_bytes);
    char name[64];
    shader_name(name, sizeof name, x8 ? "mul_mat_vec_tb_x8" : vec ? "mul_mat_vec_tb" : "mul_mat_tb", wtype);
    const uint32_t spec[2] = {wg, rows};
    const vkl_vk_pipeline *p = vkl_vk_pipeline_get_tb(ops->pipes, name, 3, 3u, sizeof(mm_push), spec, 2, err);
    if (!p) return -1;
    for (int64_t r0 = 0; r0 < M; r0 += per) {
        int64_t n_rows = VKL_MIN(per, M - r0);
        vkl_vk_range wr = {w.buffer, w.offset + (uint64_t)r0 * row_bytes, (uint64_t)n_rows * row_bytes};
        if (vkl_vk_bind_texels(ops->ctx, wr, &bw, err)) return -1;
        mm_push pc = {(uint32_t)n_rows, (uint32_t)K, (uint32_t)N, 0, (uint32_t)row_bytes, 0,
                      y_off + (uint32_t)r0, (uint32_t)M};
        vkl_vk_binding b[3] = {bw, bx, by};
        uint32_t gx = (uint32_t)((n_rows + rows_per_group - 1) / rows_per_group);
        uint32_t gy = (uint32_t)(vec ? N : (N + TB_MM_TOKENS - 1) / TB_MM_TOKENS);
        if (vkl_vk_seq_dispatch(seq, p, b, 3, &pc, gx, gy, 1, name, err)) return -1;
    }
    return 0;
}

int vkl_vk_op_mul_mat(vkl_vk_ops *ops, vkl_vk_seq *seq, vkl_type wtype, vkl_vk_range w, int64_t M,
                      int64_t K, vkl_vk_range x, int64_t N, vkl_vk_range y, vkl_error *err) {
    if (check_weight(wtype, K, "mul_mat", err)) return -1;
    if (M <= 0 || N <= 0 || N > MAX_GROUPS || !fits_u32(M * N) || !fits_u32(N * K))
        return vkl_fail(err, "vulkan mul_mat: bad shape M=%lld K=%lld N=%lld", (long long)M,
                        (long long)K, (long long)N);
    const size_t row_bytes = vkl_row_size(wtype, K);
    if (w.size < (uint64_t)M * row_bytes)
        return vkl_fail(err, "vulkan mul_mat: weight range of %llu bytes, needs %llu",
                        (unsigned long long)w.size, (unsigned long long)M * row_bytes);
    if (w.offset % weight_align(wtype))
        return vkl_fail(err, "vulkan mul_mat: weight offset %llu is misaligned",
                        (unsigned long long)w.offset);
    if (use_texels(ops, wtype, w, M, K, x, N))
        return mul_mat_texels(ops, seq, wtype, w, M, K, x, N, y, err);
    vkl_vk_binding bx, by, bw;
    uint32_t x_off, y_off, w_delta;
    if (bind(ops, x, false, 16, (uint64_t)N * K * 4, "mul_mat x", &bx, &x_off, err) ||
        bind(ops, y, true, 4, (uint64_t)N * M * 4, "mul_mat y", &by, &y_off, err))
        return -1;
    x_off *= 4; /* bound in 16-byte units, the shader wants floats */
    int64_t per = rows_per_binding(ops, row_bytes);
    if (per <= 0) return vkl_fail(err, "vulkan mul_mat: one row of %zu bytes exceeds a binding", row_bytes);
    const bool lane = N == 1 && ops->mv_lane;
    /* llvmpipe with 8-lane subgroups, where the texel-buffer shaders above do not apply (K not a
     * multiple of 256, misaligned offsets): Q4_0/Q8_0 use mul_mat_vec_cpu.comp (x loaded once per
     * subgroup and shared with subgroupBroadcast) */
    const bool cpu_q = ops->mv_lane && ops->ctx->subgroup_size == 8 &&
                       (ops->ctx->info.subgroup_ops & VK_SUBGROUP_FEATURE_BALLOT_BIT) &&
                       (wtype == VKL_TYPE_Q4_0 || wtype == VKL_TYPE_Q8_0);
    const bool cpu_mv = lane && cpu_q;
    /* batches likewise: mul_mat_cpu.comp, CPU_MM_ROWS rows x CPU_MM_TOKENS tokens per invocation */
    const bool cpu_mm = N > 1 && cpu_q;
    if (ops->mv_rows < 1 || ops->mv_rows > 8 || ops->mv_wg < 1 ||
        ops->mv_wg > ops->ctx->limits.maxComputeWorkGroupInvocations ||
        (!lane && ops->mv_wg > 32 * VKL_MAX(ops->ctx->subgroup_size, 1u)))
        return vkl_fail(err, "vulkan mul_mat: bad mat-vec configuration (%u x %u)", ops->mv_wg,
                        ops->mv_rows);
    const uint32_t rows_per_inv = cpu_mv ? CPU_MV_ROWS : ops->mv_rows;
    const uint32_t rows_per_group = cpu_mm ? ops->mv_wg * CPU_MM_ROWS : N > 1 ? 32
                                    : lane ? ops->mv_wg * rows_per_inv : rows_per_inv;
    per = VKL_MIN(per, (int64_t)MAX_GROUPS * rows_per_group); /* grid x limit */

    char name[64];
    shader_name(name, sizeof name,
                cpu_mm ? "mul_mat_cpu" : N > 1 ? "mul_mat"
                : cpu_mv ? "mul_mat_vec_cpu" : lane ? "mul_mat_vec_lane" : "mul_mat_vec",
                wtype);
    const uint32_t spec[2] = {ops->mv_wg, rows_per_inv};
    const vkl_vk_pipeline *p = N == 1 || cpu_mm ? pipe(ops, name, 3, sizeof(mm_push), spec, 2, err)
                                      : pipe(ops, name, 3, sizeof(mm_push), NULL, 0, err);
    if (!p) return -1;
    const bool tn16 = wtype == VKL_TYPE_Q2_K || wtype == VKL_TYPE_Q3_K || wtype == VKL_TYPE_Q6_K;
    for (int64_t r0 = 0; r0 < M; r0 += per) {
        int64_t rows = VKL_MIN(per, M - r0);
        vkl_vk_range wr = {w.buffer, w.offset + (uint64_t)r0 * row_bytes, (uint64_t)rows * row_bytes};
        if (vkl_vk_bind_range(ops->ctx, wr, false, &bw, &w_delta, err)) return -1;
        mm_push pc = {(uint32_t)rows, (uint32_t)K, (uint32_t)N, w_delta, (uint32_t)row_bytes,
                      x_off, y_off + (uint32_t)r0, (uint32_t)M};
        vkl_vk_binding b[3] = {bw, bx, by};
        uint32_t gx, gy;
        if (N == 1 || cpu_mm) {
            gx = (uint32_t)((rows + rows_per_group - 1) / rows_per_group);
            gy = cpu_mm ? (uint32_t)((N + CPU_MM_TOKENS - 1) / CPU_MM_TOKENS) : 1;
        } else {
            gx = (uint32_t)((rows + 31) / 32);
            gy = (uint32_t)((N + (tn16 ? 15 : 31)) / (tn16 ? 16 : 32));
        }
        if (vkl_vk_seq_dispatch(seq, p, b, 3, &pc, gx, gy, 1, name, err)) return -1;
    }
    return 0;
}

typedef struct get_rows_push {
    uint32_t K, w_off, row_bytes, ids_off, o_off, row_lo, row_hi, n_rows;
} get_rows_push;

int vkl_vk_op_get_rows(vkl_vk_ops *ops, vkl_vk_seq *seq, vkl_type wtype, vkl_vk_range w,
                       int64_t n_rows, int64_t K, vkl_vk_range ids, int64_t n_ids,
                       vkl_vk_range out, vkl_error *err) {
    if (check_weight(wtype, K, "get_rows", err)) return -1;
    if (n_rows <= 0 || !fits_u32(n_rows) || n_ids <= 0 || n_ids > MAX_GROUPS || !fits_u32(n_ids * K))
        return vkl_fail(err, "vulkan get_rows: bad shape rows=%lld K=%lld ids=%lld",
                        (long long)n_rows, (long long)K, (long long)n_ids);
    const size_t row_bytes = vkl_row_size(wtype, K);
    if (w.size < (uint64_t)n_rows * row_bytes || w.offset % weight_align(wtype))
        return vkl_fail(err, "vulkan get_rows: weight range too small or misaligned");
    vkl_vk_binding bi, bo, bw;
    uint32_t ids_off, o_off, w_delta;
    if (bind(ops, ids, false, 4, (uint64_t)n_ids * 4, "get_rows ids", &bi, &ids_off, err) ||
        bind(ops, out, true, 4, (uint64_t)n_ids * K * 4, "get_rows out", &bo, &o_off, err))
        return -1;
    char name[64];
    shader_name(name, sizeof name, "get_rows", wtype);
    const vkl_vk_pipeline *p = pipe(ops, name, 3, sizeof(get_rows_push), NULL, 0, err);
    if (!p) return -1;
    /* chunks per row: 8 elements per chunk except Q2_K/Q3_K/Q6_K (16) */
    const bool big = wtype == VKL_TYPE_Q2_K || wtype == VKL_TYPE_Q3_K || wtype == VKL_TYPE_Q6_K;
    uint64_t chunks = (uint64_t)K / (big ? 16 : 8);
    int64_t per = rows_per_binding(ops, row_bytes);
    if (per <= 0) return vkl_fail(err, "vulkan get_rows: one row exceeds a binding");
    for (int64_t r0 = 0; r0 < n_rows; r0 += per) {
        int64_t rows = VKL_MIN(per, n_rows - r0);
        vkl_vk_range wr = {w.buffer, w.offset + (uint64_t)r0 * row_bytes, (uint64_t)rows * row_bytes};
        if (vkl_vk_bind_range(ops->ctx, wr, false, &bw, &w_delta, err)) return -1;
        get_rows_push pc = {(uint32_t)K, w_delta, (uint32_t)row_bytes, ids_off, o_off,
                            (uint32_t)r0, (uint32_t)(r0 + rows), (uint32_t)n_rows};
        vkl_vk_binding b[3] = {bw, bi, bo};
        if (vkl_vk_seq_dispatch(seq, p, b, 3, &pc, (uint32_t)((chunks + 63) / 64), (uint32_t)n_ids,
                                1, name, err))
            return -1;
    }
    return 0;
}

typedef struct norm_push {
    uint32_t dim, x_off, w_off, y_off;
    float eps;
} norm_push;

int vkl_vk_op_rms_norm(vkl_vk_ops *ops, vkl_vk_seq *seq, vkl_vk_range x, vkl_vk_range w,
                       vkl_vk_range y, int64_t n_rows, int64_t dim, float eps, vkl_error *err) {
    if (n_rows <= 0 || dim <= 0 || !fits_u32(n_rows * dim) || !(eps >= 0.0f))
        return vkl_fail(err, "vulkan rms_norm: bad shape rows=%lld dim=%lld", (long long)n_rows,
                        (long long)dim);
    const vkl_vk_pipeline *p = pipe(ops, "rms_norm", 3, sizeof(norm_push), &ops->norm_wg, 1, err);
    if (!p) return -1;
    for (int64_t r0 = 0; r0 < n_rows; r0 += MAX_GROUPS) {
        int64_t rows = VKL_MIN((int64_t)MAX_GROUPS, n_rows - r0);
        uint64_t off = (uint64_t)r0 * dim * 4, bytes = (uint64_t)rows * dim * 4;
        if (x.size < off + bytes || y.size < off + bytes)
            return vkl_fail(err, "vulkan rms_norm: x or y range too small");
        vkl_vk_range xr = {x.buffer, x.offset + off, bytes}, yr = {y.buffer, y.offset + off, bytes};
        vkl_vk_binding b[3];
        norm_push pc = {.dim = (uint32_t)dim, .eps = eps};
        if (bind(ops, xr, false, 4, bytes, "rms_norm x", &b[0], &pc.x_off, err) ||
            bind(ops, w, false, 4, (uint64_t)dim * 4, "rms_norm w", &b[1], &pc.w_off, err) ||
            bind(ops, yr, true, 4, bytes, "rms_norm y", &b[2], &pc.y_off, err))
            return -1;
        if (vkl_vk_seq_dispatch(seq, p, b, 3, &pc, (uint32_t)rows, 1, 1, "rms_norm", err)) return -1;
    }
    return 0;
}

typedef struct rope_push {
    uint32_t n_pairs, n_heads, head_dim, rope_dim, pos0, src_off, dst_off, neox;
    float base, freq_scale;
} rope_push;

int vkl_vk_op_rope(vkl_vk_ops *ops, vkl_vk_seq *seq, vkl_vk_range src, vkl_vk_range dst,
                   const vkl_vk_rope_params *rp, vkl_error *err) {
    if (rp->n_tokens <= 0 || rp->n_heads <= 0 || rp->head_dim <= 0 || rp->head_dim % 2 || rp->rope_dim <= 0 ||
        rp->rope_dim % 2 || rp->rope_dim > rp->head_dim || rp->pos0 < 0 ||
        !fits_u32(rp->n_tokens * rp->n_heads * rp->head_dim) || !fits_u32(rp->pos0 + rp->n_tokens) ||
        !(rp->freq_base > 0.0f))
        return vkl_fail(err, "vulkan rope: bad parameters");
    uint64_t n = (uint64_t)rp->n_tokens * rp->n_heads * rp->head_dim;
    rope_push pc = {(uint32_t)(n / 2), (uint32_t)rp->n_heads, (uint32_t)rp->head_dim, (uint32_t)rp->rope_dim,
                    (uint32_t)rp->pos0, 0, 0, rp->neox ? 1u : 0u, rp->freq_base, rp->freq_scale};
    vkl_vk_binding b[2];
    if (bind(ops, src, false, 4, n * 4, "rope src", &b[0], &pc.src_off, err) ||
        bind(ops, dst, true, 4, n * 4, "rope dst", &b[1], &pc.dst_off, err))
        return -1;
    const vkl_vk_pipeline *p = pipe(ops, "rope", 2, sizeof pc, NULL, 0, err);
    uint32_t gx = 0, gy = 0;
    if (!p || grid_1d(pc.n_pairs, &gx, &gy, err)) return -1;
    return vkl_vk_seq_dispatch(seq, p, b, 2, &pc, gx, gy, 1, "rope", err);
}

typedef struct ew_push {
    uint32_t n, a_off, b_off, o_off;
} ew_push;

static int elementwise(vkl_vk_ops *ops, vkl_vk_seq *seq, const char *name, vkl_vk_range a,
                       vkl_vk_range b, vkl_vk_range out, int64_t n, vkl_error *err) {
    if (n <= 0 || !fits_u32(n)) return vkl_fail(err, "vulkan %s: bad element count", name);
    ew_push pc = {.n = (uint32_t)n};
    vkl_vk_binding bd[3];
    uint64_t bytes = (uint64_t)n * 4;
    if (bind(ops, a, false, 4, bytes, name, &bd[0], &pc.a_off, err) ||
        bind(ops, b, false, 4, bytes, name, &bd[1], &pc.b_off, err) ||
        bind(ops, out, true, 4, bytes, name, &bd[2], &pc.o_off, err))
        return -1;
    const vkl_vk_pipeline *p = pipe(ops, name, 3, sizeof pc, NULL, 0, err);
    uint32_t gx = 0, gy = 0;
    if (!p || grid_1d((uint64_t)n, &gx, &gy, err)) return -1;
    return vkl_vk_seq_dispatch(seq, p, bd, 3, &pc, gx, gy, 1, name, err);
}

int vkl_vk_op_swiglu(vkl_vk_ops *ops, vkl_vk_seq *seq, vkl_vk_range g, vkl_vk_range u,
                     vkl_vk_range out, int64_t n, vkl_error *err) {
    return elementwise(ops, seq, "swiglu", g, u, out, n, err);
}

int vkl_vk_op_add(vkl_vk_ops *ops, vkl_vk_seq *seq, vkl_vk_range a, vkl_vk_range b,
                  vkl_vk_range out, int64_t n, vkl_error *err) {
    return elementwise(ops, seq, "add", a, b, out, n, err);
}

typedef struct copy_push {
    uint32_t n, src_off, dst_off;
} copy_push;

int vkl_vk_op_copy(vkl_vk_ops *ops, vkl_vk_seq *seq, vkl_type src_type, vkl_vk_range src,
                   vkl_type dst_type, vkl_vk_range dst, int64_t n, vkl_error *err) {
    if ((src_type != VKL_TYPE_F32 && src_type != VKL_TYPE_F16) ||
        (dst_type != VKL_TYPE_F32 && dst_type != VKL_TYPE_F16))
        return vkl_fail(err, "vulkan copy: only f32 and f16 are supported (%s -> %s)",
                        vkl_type_name(src_type), vkl_type_name(dst_type));
    if (n <= 0 || !fits_u32(n)) return vkl_fail(err, "vulkan copy: bad element count");
    const uint32_t ss = src_type == VKL_TYPE_F32 ? 4 : 2, ds = dst_type == VKL_TYPE_F32 ? 4 : 2;
    if (ds == 2 && (n % 2 || dst.offset % 4))
        return vkl_fail(err, "vulkan copy: an f16 destination needs an even count and offset");
    copy_push pc = {.n = (uint32_t)n};
    vkl_vk_binding b[2];
    if (bind(ops, src, false, ss, VKL_ALIGN_UP((uint64_t)n * ss, 4), "copy src", &b[0], &pc.src_off, err) ||
        bind(ops, dst, true, ds, (uint64_t)n * ds, "copy dst", &b[1], &pc.dst_off, err))
        return -1;
    /* Within a 4-byte word, an odd f16 source offset is fine: the shader indexes halves. */
    char name[32];
    snprintf(name, sizeof name, "copy_%s_%s", ss == 4 ? "f32" : "f16", ds == 4 ? "f32" : "f16");
    const vkl_vk_pipeline *p = pipe(ops, name, 2, sizeof pc, NULL, 0, err);
    uint32_t gx = 0, gy = 0;
    if (!p || grid_1d(ds == 2 ? (uint64_t)n / 2 : (uint64_t)n, &gx, &gy, err)) return -1;
    return vkl_vk_seq_dispatch(seq, p, b, 2, &pc, gx, gy, 1, name, err);
}

static int check_attn(const vkl_vk_attn_params *ap, const char *op, vkl_error *err) {
    if (ap->n_tokens <= 0 || ap->n_head <= 0 || ap->n_head_kv <= 0 || ap->n_head % ap->n_head_kv ||
        ap->head_dim <= 0 || ap->head_dim % 32 || ap->head_dim > 256 || ap->pos0 < 0 ||
        ap->pos0 + ap->n_tokens > ap->n_ctx || ap->n_tokens > MAX_GROUPS || ap->n_head > MAX_GROUPS ||
        !fits_u32(ap->n_ctx * ap->n_head_kv * ap->head_dim) ||
        !fits_u32(ap->n_tokens * ap->n_head * ap->head_dim))
        return vkl_fail(err, "vulkan %s: bad parameters (tokens %lld at %lld, ctx %lld, heads %lld/%lld, head dim %lld)",
                        op, (long long)ap->n_tokens, (long long)ap->pos0, (long long)ap->n_ctx,
                        (long long)ap->n_head, (long long)ap->n_head_kv, (long long)ap->head_dim);
    if (ap->kv_type != VKL_TYPE_F16 && ap->kv_type != VKL_TYPE_F32)
        return vkl_fail(err, "vulkan %s: KV cache type %s is not supported", op, vkl_type_name(ap->kv_type));
    return 0;
}

int vkl_vk_op_kv_store(vkl_vk_ops *ops, vkl_vk_seq *seq, const vkl_vk_attn_params *ap,
                       vkl_vk_range k_src, vkl_vk_range v_src, vkl_vk_range k_cache,
                       vkl_vk_range v_cache, vkl_error *err) {
    if (check_attn(ap, "kv_store", err)) return -1;
    const uint64_t es = ap->kv_type == VKL_TYPE_F16 ? 2 : 4;
    const uint64_t row = (uint64_t)ap->n_head_kv * ap->head_dim;
    const uint64_t off = (uint64_t)ap->pos0 * row * es, bytes = (uint64_t)ap->n_tokens * row * es;
    if (k_cache.size < off + bytes || v_cache.size < off + bytes)
        return vkl_fail(err, "vulkan kv_store: cache range too small for position %lld",
                        (long long)(ap->pos0 + ap->n_tokens - 1));
    vkl_vk_range kd = {k_cache.buffer, k_cache.offset + off, bytes};
    vkl_vk_range vd = {v_cache.buffer, v_cache.offset + off, bytes};
    int64_t n = (int64_t)(ap->n_tokens * row);
    if (vkl_vk_op_copy(ops, seq, VKL_TYPE_F32, k_src, ap->kv_type, kd, n, err) ||
        vkl_vk_op_copy(ops, seq, VKL_TYPE_F32, v_src, ap->kv_type, vd, n, err))
        return -1;
    return 0;
}

typedef struct attn_push {
    uint32_t n_head, n_head_kv, head_dim, pos0, q_off, k_off, v_off, o_off;
    float scale;
} attn_push;

int vkl_vk_op_attention(vkl_vk_ops *ops, vkl_vk_seq *seq, const vkl_vk_attn_params *ap,
                        vkl_vk_range q, vkl_vk_range k_cache, vkl_vk_range v_cache,
                        vkl_vk_range out, vkl_error *err) {
    if (check_attn(ap, "attention", err)) return -1;
    const uint32_t es = ap->kv_type == VKL_TYPE_F16 ? 2 : 4;
    const uint64_t qn = (uint64_t)ap->n_tokens * ap->n_head * ap->head_dim;
    const uint64_t kv_bytes = (uint64_t)(ap->pos0 + ap->n_tokens) * ap->n_head_kv * ap->head_dim * es;
    attn_push pc = {(uint32_t)ap->n_head, (uint32_t)ap->n_head_kv, (uint32_t)ap->head_dim,
                    (uint32_t)ap->pos0, 0, 0, 0, 0, 1.0f / sqrtf((float)ap->head_dim)};
    vkl_vk_binding b[4];
    if (k_cache.offset % 4 || v_cache.offset % 4)
        return vkl_fail(err, "vulkan attention: cache offsets must be 4-byte aligned");
    if (bind(ops, q, false, 4, qn * 4, "attention q", &b[0], &pc.q_off, err) ||
        bind(ops, k_cache, false, es, kv_bytes, "attention k cache", &b[1], &pc.k_off, err) ||
        bind(ops, v_cache, false, es, kv_bytes, "attention v cache", &b[2], &pc.v_off, err) ||
        bind(ops, out, true, 4, qn * 4, "attention out", &b[3], &pc.o_off, err))
        return -1;
    /* CPU devices: attention_tb.comp with the caches as texel buffers */
    const vkl_vk_range kr = {k_cache.buffer, k_cache.offset, kv_bytes};
    const vkl_vk_range vr = {v_cache.buffer, v_cache.offset, kv_bytes};
    if (ops->attn_tb && ap->head_dim % 8 == 0 && vkl_vk_texels_ok(ops->ctx, kr) &&
        vkl_vk_texels_ok(ops->ctx, vr)) {
        if (vkl_vk_bind_texels(ops->ctx, kr, &b[1], err) || vkl_vk_bind_texels(ops->ctx, vr, &b[2], err))
            return -1;
        pc.k_off = pc.v_off = 0;
        const char *tname = ap->kv_type == VKL_TYPE_F16 ? "attention_tb_f16" : "attention_tb_f32";
        const uint32_t hd = (uint32_t)ap->head_dim;
        const vkl_vk_pipeline *tp = vkl_vk_pipeline_get_tb(ops->pipes, tname, 4, 6u, sizeof pc, &hd, 1, err);
        if (!tp) return -1;
        return vkl_vk_seq_dispatch(seq, tp, b, 4, &pc, (uint32_t)((ap->n_head + 7) / 8),
                                   (uint32_t)ap->n_tokens, 1, tname, err);
    }
    const char *name = ap->kv_type == VKL_TYPE_F16 ? "attention_f16" : "attention_f32";
    const vkl_vk_pipeline *p = pipe(ops, name, 4, sizeof pc, NULL, 0, err);
    if (!p) return -1;
    return vkl_vk_seq_dispatch(seq, p, b, 4, &pc, (uint32_t)ap->n_head, (uint32_t)ap->n_tokens, 1,
                               name, err);
}
