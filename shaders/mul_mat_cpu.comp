#version 450
// Q4_0/Q8_0 matrix-matrix product (prompt batches) for llvmpipe/lavapipe; see
// mul_mat_vec_cpu.comp for why loads are what matters there. Every invocation owns ROWS rows and
// TN tokens: per block it loads its 4 x elements of each token (a quarter of the subgroup's
// share), spreads them to all lanes with subgroupBroadcast, then decodes each of its rows once
// and accumulates it into all TN tokens. Grid: ceil(M / (workgroup * ROWS)) x ceil(N / TN).
// Same parameters as mul_mat.comp. Requires subgroup size 8 (vk_ops.c checks).
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_ballot : require
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
#define ROWS 8u
#define TN 8u
layout(binding = 0) readonly buffer WB { uint wdata[]; };
layout(binding = 1) readonly buffer XB { float xs[]; };
layout(binding = 2) writeonly buffer YB { float y[]; };
#include "mm_params.glsl"
#include "quant.glsl"

#if !defined(TYPE_Q4_0) && !defined(TYPE_Q8_0)
#error "mul_mat_cpu: Q4_0 or Q8_0 only"
#endif

// The 32 weights of the block at 2-aligned byte offset bb.
void decode_block(uint bb, out float v[32]) {
    const uint w0 = bb >> 2, s = (bb & 2u) * 8u;
#ifdef TYPE_Q4_0
    uint w[5];
    [[unroll]] for (uint i = 0u; i < 5u; i++) w[i] = wdata[w0 + i];
    const float d = unpackHalf2x16(w[0] >> s).x;
    [[unroll]] for (uint j = 0u; j < 4u; j++) {
        const uint q = BLK_WORD(w, j, s);
        const vec4 lo = (nib_lo(q) - 8.0) * d, hi = (nib_hi(q) - 8.0) * d;
        [[unroll]] for (uint c = 0u; c < 4u; c++) {
            v[4u * j + c] = lo[c];
            v[16u + 4u * j + c] = hi[c];
        }
    }
#else
    uint w[9];
    [[unroll]] for (uint i = 0u; i < 9u; i++) w[i] = wdata[w0 + i];
    const float d = unpackHalf2x16(w[0] >> s).x;
    [[unroll]] for (uint j = 0u; j < 8u; j++) {
        const vec4 q = i8x4(BLK_WORD(w, j, s)) * d;
        [[unroll]] for (uint c = 0u; c < 4u; c++) v[4u * j + c] = q[c];
    }
#endif
}

void main() {
    const uint r0 = gl_GlobalInvocationID.x * ROWS, t0 = gl_WorkGroupID.y * TN;
    const uint nb = p.K / 32u, lane = gl_SubgroupInvocationID;
    uint wrow[ROWS], xrow[TN];
    [[unroll]] for (uint r = 0u; r < ROWS; r++)
        wrow[r] = p.w_off + min(r0 + r, p.M - 1u) * p.row_bytes;  // clamped: no reads past M
    [[unroll]] for (uint t = 0u; t < TN; t++) xrow[t] = p.x_off + min(t0 + t, p.N - 1u) * p.K + lane;
    float acc[ROWS][TN];
    [[unroll]] for (uint r = 0u; r < ROWS; r++)
        [[unroll]] for (uint t = 0u; t < TN; t++) acc[r][t] = 0.0;
    for (uint blk = 0u; blk < nb; blk++) {
        float xf[TN][32];
        [[unroll]] for (uint t = 0u; t < TN; t++) {
            float xl[4];
            [[unroll]] for (uint m = 0u; m < 4u; m++) xl[m] = xs[xrow[t] + 32u * blk + 8u * m];
            [[unroll]] for (uint e = 0u; e < 32u; e++) xf[t][e] = subgroupBroadcast(xl[e >> 3], e & 7u);
        }
        [[unroll]] for (uint r = 0u; r < ROWS; r++) {
            float v[32];
            decode_block(wrow[r] + blk * BLOCK_BYTES, v);
            [[unroll]] for (uint t = 0u; t < TN; t++) {
                float s = 0.0;
                [[unroll]] for (uint e = 0u; e < 32u; e++) s = fma(v[e], xf[t][e], s);
                acc[r][t] += s;
            }
        }
    }
    [[unroll]] for (uint r = 0u; r < ROWS; r++)
        [[unroll]] for (uint t = 0u; t < TN; t++)
            if (r0 + r < p.M && t0 + t < p.N) y[p.y_off + (t0 + t) * p.y_stride + r0 + r] = acc[r][t];
}
