#version 450
// Q4_0/Q8_0 mat-vec for CPU Vulkan devices (llvmpipe/lavapipe) with the weights read through a
// uniform texel buffer (see tb_q.glsl for why). Every invocation owns ROWS rows. Consecutive
// blocks share a texel, which is carried over, so each row's weights are fetched exactly once,
// one block ahead of its use.
// x, the same for all lanes, is a texel buffer too, fetched by all lanes alike: on llvmpipe
// (Mesa 22.3) subgroupBroadcast is a loop over the lanes, and a uniform buffer with a loop-variant
// offset a per-lane gather (fully unrolling K to get constant offsets was tried: the huge
// straight-line body spills heavily and runs slower). Each x fetch serves ROWS rows, hence the
// many rows per invocation. Requires K % 256 == 0 and 16-byte aligned w_off / row_bytes / x_off
// (vk_ops.c checks). Grid: ceil(M / (workgroup * ROWS)) x N.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ROWS = 16;  // <= MAX_ROWS
#define MAX_ROWS 16
layout(binding = 0) uniform usamplerBuffer wq;
layout(binding = 1) uniform usamplerBuffer xq;
layout(binding = 2) writeonly buffer YB { float y[]; };
#include "mm_params.glsl"
#include "tb_q.glsl"

void main() {
    const uint r0 = gl_GlobalInvocationID.x * ROWS, t = gl_WorkGroupID.y;
    int wrow[MAX_ROWS];
    float acc[MAX_ROWS];
    [[unroll]] for (uint r = 0u; r < MAX_ROWS; r++) {
        wrow[r] = int((p.w_off + min(r0 + r, p.M - 1u) * p.row_bytes) >> 4);  // clamped: no reads past M
        acc[r] = 0.0;
    }
    const int xrow = int((p.x_off + t * p.K) >> 2);
    for (uint g = 0u; g < p.K / 256u; g++) {
        // the texels of block j of every row, fetched one block ahead so that a block's loads
        // are in flight while the one before is computed (+20-50% on weights beyond the caches)
        uvec4 cur[MAX_ROWS][TB_BLOCK_TEXELS];
        [[unroll]] for (uint r = 0u; r < MAX_ROWS; r++)
            if (r < ROWS)
                [[unroll]] for (uint i = 0u; i < TB_BLOCK_TEXELS; i++)
                    cur[r][i] = texelFetch(wq, wrow[r] + int(TB_GROUP_TEXELS * g + i));
        [[unroll]] for (uint j = 0u; j < 8u; j++) {
            uvec4 nxt[MAX_ROWS][TB_BLOCK_TEXELS];
            if (j < 7u) {  // block j + 1 starts on block j's last texel
                [[unroll]] for (uint r = 0u; r < MAX_ROWS; r++) {
                    if (r < ROWS) {
                        const int base = wrow[r] + int(TB_GROUP_TEXELS * g + tb_first_texel(j + 1u));
                        nxt[r][0] = cur[r][TB_BLOCK_TEXELS - 1u];
                        [[unroll]] for (uint i = 1u; i < TB_BLOCK_TEXELS; i++) nxt[r][i] = texelFetch(wq, base + int(i));
                    }
                }
            }
            float xa[32], xsum;
            tb_load_x(xq, xrow + int(64u * g + 8u * j), j, xa, xsum);
            [[unroll]] for (uint r = 0u; r < MAX_ROWS; r++)
                if (r < ROWS) acc[r] += tb_block_dot(j, cur[r], xa, xsum);
            if (j < 7u) cur = nxt;
        }
    }
    [[unroll]] for (uint r = 0u; r < MAX_ROWS; r++)
        if (r < ROWS && r0 + r < p.M) y[p.y_off + t * p.y_stride + r0 + r] = acc[r];
}
