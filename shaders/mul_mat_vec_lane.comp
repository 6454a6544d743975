#version 450
// Mat-vec variant for CPU Vulkan devices (llvmpipe/lavapipe), which run a workgroup's invocations
// as SIMD lanes and gather non-uniform loads lane by lane: here every invocation owns ROWS rows
// and walks them block by block, so each x load serves ROWS rows of every lane and the weight
// stream is read once. Same parameters as mul_mat_vec.comp (grid: ceil(M / (wg * ROWS)) x N).
// Poor coalescing makes this a bad fit for GPUs.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ROWS = 4;  // <= MAX_ROWS
#define MAX_ROWS 8
layout(binding = 0) readonly buffer WB { uint wdata[]; };
layout(binding = 1) readonly buffer XB { vec4 x4[]; };
layout(binding = 2) writeonly buffer YB { float y[]; };
#include "mm_params.glsl"
#include "quant.glsl"

void main() {
    const uint r0 = gl_GlobalInvocationID.x * ROWS, t = gl_WorkGroupID.y;
    const uint nb = p.K / BLOCK_ELEMS;
    const uint xb = (p.x_off + t * p.K) >> 2;
    uint wrow[MAX_ROWS];
    float acc[MAX_ROWS];
    [[unroll]] for (uint r = 0u; r < MAX_ROWS; r++) {
        wrow[r] = p.w_off + min(r0 + r, p.M - 1u) * p.row_bytes;  // clamped: no reads past M
        acc[r] = 0.0;
    }
#ifdef HAVE_SUB_DOT
    const uint SUBS = BLOCK_ELEMS / SD_ELEMS;
    for (uint blk = 0u; blk < nb; blk++) {
        for (uint sb = 0u; sb < SUBS; sb++) {
            vec4 xv[SD_ELEMS / 4u];
            const uint xs = xb + (blk * BLOCK_ELEMS + sb * SD_ELEMS) / 4u;
            [[unroll]] for (uint i = 0u; i < SD_ELEMS / 4u; i++) xv[i] = x4[xs + i];
            [[unroll]] for (uint r = 0u; r < MAX_ROWS; r++)
                if (r < ROWS) acc[r] += sub_dot(wrow[r] + blk * BLOCK_BYTES, sb, xv);
        }
    }
#else
    for (uint blk = 0u; blk < nb; blk++) {
        [[unroll]] for (uint c = 0u; c < CPB; c++) {
            vec4 xv[NG];
            [[unroll]] for (uint g = 0u; g < NG; g++)
                xv[g] = x4[xb + ((blk * BLOCK_ELEMS + chunk_pos(c, g)) >> 2)];
            [[unroll]] for (uint r = 0u; r < MAX_ROWS; r++) {
                if (r < ROWS) {
                    vec4 v[NG];
                    decode_chunk(wrow[r] + blk * BLOCK_BYTES, c, v);
                    [[unroll]] for (uint g = 0u; g < NG; g++) acc[r] += dot(v[g], xv[g]);
                }
            }
        }
    }
#endif
    [[unroll]] for (uint r = 0u; r < MAX_ROWS; r++)
        if (r < ROWS && r0 + r < p.M) y[p.y_off + t * p.y_stride + r0 + r] = acc[r];
}
