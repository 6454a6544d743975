#version 450
// Q4_0/Q8_0 matrix-matrix product (prompt batches) for CPU Vulkan devices, weights and x read
// through texel buffers (see tb_q.glsl). Every invocation owns ROWS rows and TN tokens: per block
// it decodes each of its rows once and uses it for all TN tokens, whose x all lanes fetch alike
// (see mul_mat_vec_tb.comp). Consecutive blocks share a texel, which is carried over. Requires
// K % 256 == 0 and 16-byte aligned w_off / row_bytes / x_off (vk_ops.c checks).
// Grid: ceil(M / (workgroup * ROWS)) x ceil(N / TN).
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ROWS = 4;  // <= MAX_ROWS
#define MAX_ROWS 8
#define TN 8u
layout(binding = 0) uniform usamplerBuffer wq;
layout(binding = 1) uniform usamplerBuffer xq;
layout(binding = 2) writeonly buffer YB { float y[]; };
#include "mm_params.glsl"
#include "tb_q.glsl"

void main() {
    const uint r0 = gl_GlobalInvocationID.x * ROWS, t0 = gl_WorkGroupID.y * TN;
    int wrow[MAX_ROWS], xrow[TN];
    [[unroll]] for (uint r = 0u; r < MAX_ROWS; r++)
        wrow[r] = int((p.w_off + min(r0 + r, p.M - 1u) * p.row_bytes) >> 4);  // clamped: no reads past M
    [[unroll]] for (uint t = 0u; t < TN; t++)
        xrow[t] = int((p.x_off + min(t0 + t, p.N - 1u) * p.K) >> 2);  // clamped: no reads past N
    float acc[MAX_ROWS][TN];
    [[unroll]] for (uint r = 0u; r < MAX_ROWS; r++)
        [[unroll]] for (uint t = 0u; t < TN; t++) acc[r][t] = 0.0;
    for (uint g = 0u; g < p.K / 256u; g++) {
        uvec4 carry[MAX_ROWS];
        [[unroll]] for (uint j = 0u; j < 8u; j++) {
            float q[MAX_ROWS][32], d[MAX_ROWS];
            [[unroll]] for (uint r = 0u; r < MAX_ROWS; r++) {
                if (r < ROWS) {
                    const int base = wrow[r] + int(TB_GROUP_TEXELS * g + tb_first_texel(j));
                    uvec4 tx[TB_BLOCK_TEXELS];
                    tx[0] = j == 0u ? texelFetch(wq, base) : carry[r];
                    [[unroll]] for (uint i = 1u; i < TB_BLOCK_TEXELS; i++) tx[i] = texelFetch(wq, base + int(i));
                    carry[r] = tx[TB_BLOCK_TEXELS - 1u];
                    tb_block_decode(j, tx, q[r], d[r]);
                }
            }
            [[unroll]] for (uint t = 0u; t < TN; t++) {
                float xa[32], xsum;
                tb_load_x(xq, xrow[t] + int(64u * g + 8u * j), j, xa, xsum);
                [[unroll]] for (uint r = 0u; r < MAX_ROWS; r++)
                    if (r < ROWS) acc[r][t] += tb_dot(q[r], d[r], xa, xsum);
            }
        }
    }
    [[unroll]] for (uint r = 0u; r < MAX_ROWS; r++)
        [[unroll]] for (uint t = 0u; t < TN; t++)
            if (r < ROWS && r0 + r < p.M && t0 + t < p.N) y[p.y_off + (t0 + t) * p.y_stride + r0 + r] = acc[r][t];
}
