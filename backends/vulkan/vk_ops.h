/* Vulkan op-level API: each call records one op (one or a few dispatches) into a sequence
 * (vk_cmd.h); nothing runs until vkl_vk_seq_submit. Buffers are byte ranges (vkl_vk_range) of
 * device buffers; element offsets are derived from range offsets, which must be aligned to the
 * element size (4 bytes for f32, int32 and packed-f16 data; 16 bytes for the x of MUL_MAT).
 * Barriers are inserted automatically between dependent ops.
 *
 * Semantics (the CPU reference must match; all math in f32 unless said otherwise):
 *   MUL_MAT    y[t*M + r] = sum_k W[r][k] * x[t*K + k], t < N, r < M, k < K. W: M rows of K
 *              elements of `wtype` (GGUF block layout, rows contiguous, vkl_row_size bytes each);
 *              x, y f32. K a multiple of the block size (and of 8 for F32/F16/BF16). N == 1 uses
 *              the mat-vec shader, N > 1 the tiled one. Weights larger than maxStorageBufferRange
 *              are processed in row ranges.
 *   GET_ROWS   out[i*K + k] = W[ids[i]][k] as f32, i < n_ids; ids int32; an id outside
 *              [0, n_rows) gives a row of zeros.
 *   RMS_NORM   y[r][i] = x[r][i] / sqrt(mean_i(x[r][i]^2) + eps) * w[i]; rows of dim floats.
 *              y may alias x exactly.
 *   ROPE       dst = rope(src), [n_tokens][n_heads][head_dim] (dst may be src: in place); token t
 *              has position pos0 + t;
 *              pair i < rope_dim/2 rotated by theta = pos * freq_scale * freq_base^(-2i/rope_dim):
 *              (a, b) -> (a cos - b sin, a sin + b cos), with (a, b) = (x[2i], x[2i+1]) for the
 *              normal layout and (x[i], x[i + rope_dim/2]) for NeoX. Dims >= rope_dim unchanged.
 *   KV_STORE   cache[(pos0 + t)*n_head_kv*head_dim + j] = src[t*n_head_kv*head_dim + j] for K
 *              and V (f32 source, cache f16 (round to nearest) or f32).
 *   ATTENTION  out[t][h][:] = sum_{j <= pos0+t} softmax_j(q[t][h]·K[j][g] * scale) V[j][g],
 *              g = h / (n_head / n_head_kv), scale = 1/sqrt(head_dim); q, out
 *              [n_tokens][n_head][head_dim] f32; cache [n_ctx][n_head_kv][head_dim] per layer.
 *              Positions 0 .. pos0+n_tokens-1 must already be in the cache (KV_STORE first).
 *              head_dim a multiple of 32, at most 256.
 *   SWIGLU     out[i] = g[i] / (1 + exp(-g[i])) * u[i].
 *   ADD        out[i] = a[i] + b[i].
 *   COPY       dst[i] = src[i] converted (f32 <-> f16, round to nearest); with an f16
 *              destination n and the destination element offset must be even.
 * Outputs may alias an input exactly (same range) for RMS_NORM, SWIGLU, ADD. */
#ifndef VKL_VK_OPS_H
#define VKL_VK_OPS_H

#include "types.h"
#include "vk_cmd.h"

typedef struct vkl_vk_ops {
    vkl_vk_context *ctx;
    vkl_vk_pipelines *pipes;
    uint32_t mv_wg, mv_rows; /* mat-vec: invocations per workgroup, rows per workgroup (per
                              * invocation with mv_lane); mv_rows <= 8 */
    bool mv_lane;            /* mat-vec with rows per invocation (CPU devices: llvmpipe) */
    bool texel_q;            /* CPU devices: Q4_0/Q8_0 MUL_MAT reads weights and x as texel buffers
                              * where K % 256 == 0 and offsets are 16-byte aligned */
    uint32_t tb_rows;        /* rows per invocation of mul_mat_vec_tb.comp (1..16) */
    bool tb_x8;              /* CPU devices: Q4_0 mat-vec in integer math with x quantized to 8
                              * bits per block of 32 like the CPU backend (mul_mat_vec_tb_x8.comp,
                              * tb_rows rounded up to even), where the texel-buffer shaders apply;
                              * also for batches when tb_mm_rows is 0 (mat-vec per token) */
    uint32_t tb_mm_rows;     /* rows per invocation of mul_mat_tb.comp (1..8; 0: batches use
                              * mul_mat_vec_tb.comp per token) */
    bool attn_tb;            /* CPU devices: attention_tb.comp (K/V through texel buffers) */
    bool texels;             /* the device reads RGBA32UI uniform texel buffers (what texel_q,
                              * tb_x8 and attn_tb need; tests turn those on and off) */
    uint32_t norm_wg;
    uint64_t max_binding; /* bytes per weight binding (maxStorageBufferRange; tests lower it) */
} vkl_vk_ops;

int vkl_vk_ops_init(vkl_vk_ops *ops, vkl_vk_context *ctx, vkl_error *err);
void vkl_vk_ops_destroy(vkl_vk_ops *ops);

/* Whether MUL_MAT / GET_ROWS have a shader for this weight type. */
bool vkl_vk_ops_supports_type(vkl_type t);

int vkl_vk_op_mul_mat(vkl_vk_ops *ops, vkl_vk_seq *seq, vkl_type wtype, vkl_vk_range w, int64_t M,
                      int64_t K, vkl_vk_range x, int64_t N, vkl_vk_range y, vkl_error *err);

int vkl_vk_op_get_rows(vkl_vk_ops *ops, vkl_vk_seq *seq, vkl_type wtype, vkl_vk_range w,
                       int64_t n_rows, int64_t K, vkl_vk_range ids, int64_t n_ids,
                       vkl_vk_range out, vkl_error *err);

int vkl_vk_op_rms_norm(vkl_vk_ops *ops, vkl_vk_seq *seq, vkl_vk_range x, vkl_vk_range w,
                       vkl_vk_range y, int64_t n_rows, int64_t dim, float eps, vkl_error *err);

typedef struct vkl_vk_rope_params {
    int64_t n_tokens, n_heads, head_dim, rope_dim;
    int64_t pos0;
    float freq_base, freq_scale;
    bool neox;
} vkl_vk_rope_params;
int vkl_vk_op_rope(vkl_vk_ops *ops, vkl_vk_seq *seq, vkl_vk_range src, vkl_vk_range dst,
                   const vkl_vk_rope_params *rp, vkl_error *err);

typedef struct vkl_vk_attn_params {
    int64_t n_tokens, n_head, n_head_kv, head_dim;
    int64_t pos0;  /* position of the first token */
    int64_t n_ctx; /* cache capacity in positions (bounds check) */
    vkl_type kv_type; /* VKL_TYPE_F16 or VKL_TYPE_F32 */
} vkl_vk_attn_params;
/* k_src, v_src: [n_tokens][n_head_kv][head_dim] f32 -> the caches at positions pos0.. */
int vkl_vk_op_kv_store(vkl_vk_ops *ops, vkl_vk_seq *seq, const vkl_vk_attn_params *ap,
                       vkl_vk_range k_src, vkl_vk_range v_src, vkl_vk_range k_cache,
                       vkl_vk_range v_cache, vkl_error *err);
int vkl_vk_op_attention(vkl_vk_ops *ops, vkl_vk_seq *seq, const vkl_vk_attn_params *ap,
                        vkl_vk_range q, vkl_vk_range k_cache, vkl_vk_range v_cache,
                        vkl_vk_range out, vkl_error *err);

int vkl_vk_op_swiglu(vkl_vk_ops *ops, vkl_vk_seq *seq, vkl_vk_range g, vkl_vk_range u,
                     vkl_vk_range out, int64_t n, vkl_error *err);
int vkl_vk_op_add(vkl_vk_ops *ops, vkl_vk_seq *seq, vkl_vk_range a, vkl_vk_range b,
                  vkl_vk_range out, int64_t n, vkl_error *err);
/* src_type, dst_type: VKL_TYPE_F32 or VKL_TYPE_F16. */
int vkl_vk_op_copy(vkl_vk_ops *ops, vkl_vk_seq *seq, vkl_type src_type, vkl_vk_range src,
                   vkl_type dst_type, vkl_vk_range dst, int64_t n, vkl_error *err);

#endif
