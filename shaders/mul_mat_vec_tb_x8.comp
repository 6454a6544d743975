#version 450
// Q4_0 mat-vec for CPU Vulkan devices (llvmpipe/lavapipe) in integer math, two rows per 32-bit
// lane. bench_vk_roofline shows llvmpipe's mat-vec is bound by instructions per weight, not by
// reads; the float decode of mul_mat_vec_tb.comp costs a mask, a conversion, a multiply and an
// add per weight. Here x is quantized per block of 32 to 8 bits (scale amax / 127, round to
// nearest even: the CPU backend's activation quantization), once per invocation for all its
// ROWS rows, and weights of two rows share each 32-bit product: a word holding two bytes of
// row a in its low half and the same two bytes of row b in its high half gives, masked with
// 0x000F000F (after a shift of 0, 4, 8 or 12), nibble_a + 65536 * nibble_b, whose product with
// x[e] adds nibble_a * x[e] to the low 16 bits and nibble_b * x[e] to the high ones. Sums of 16
// such products stay within +-16 * 15 * 127 (int16) in the low field and within int32 overall,
// so each block keeps two sums (elements 0..15 and 16..31) and splits them afterwards.
// Weights and x are read through texel buffers as in mul_mat_vec_tb.comp (tb_q.glsl: K % 256 ==
// 0, 16-byte aligned offsets; consecutive blocks share a texel; each block's texels are fetched
// one block ahead). Every invocation owns ROWS rows, ROWS even (splitting K over the lanes of a
// subgroup instead, so that they read neighbouring pieces of one row, measured 1.3-1.5x
// slower). Grid: ceil(M / (workgroup * ROWS)) x N.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ROWS = 16;  // even, <= MAX_ROWS
#define MAX_ROWS 16
layout(binding = 0) uniform usamplerBuffer wq;
layout(binding = 1) uniform usamplerBuffer xq;
layout(binding = 2) writeonly buffer YB { float y[]; };
#include "mm_params.glsl"
#include "tb_q.glsl"
#include "tb_x8.glsl"


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
        // the two texels of block j of every row: fetched one block ahead, so that a block's
        // loads are in flight while the one before is computed
        uvec4 cur0[MAX_ROWS], cur1[MAX_ROWS];
        [[unroll]] for (uint r = 0u; r < MAX_ROWS; r++) {
            if (r < ROWS) {
                const int base = wrow[r] + int(TB_GROUP_TEXELS * g);
                cur0[r] = texelFetch(wq, base);
                cur1[r] = texelFetch(wq, base + 1);
            }
        }
        [[unroll]] for (uint j = 0u; j < 8u; j++) {
            uvec4 nxt[MAX_ROWS];
            if (j < 7u) {
                [[unroll]] for (uint r = 0u; r < MAX_ROWS; r++)
                    if (r < ROWS) nxt[r] = texelFetch(wq, wrow[r] + int(TB_GROUP_TEXELS * g + tb_first_texel(j + 1u)) + 1);
            }
            int q[32], xsum;
            float dx;
            quantize_x(xrow + int(64u * g + 8u * j), q, dx, xsum);
            const uint o = (TB_BLOCK_BYTES * j) & 15u;  // block start within its first texel
            [[unroll]] for (uint r = 0u; r < MAX_ROWS; r += 2u) {
                if (r < ROWS) {
                    const uint wa[8] = uint[8](cur0[r].x, cur0[r].y, cur0[r].z, cur0[r].w,
                                               cur1[r].x, cur1[r].y, cur1[r].z, cur1[r].w);
                    const uint wb[8] = uint[8](cur0[r + 1u].x, cur0[r + 1u].y, cur0[r + 1u].z, cur0[r + 1u].w,
                                               cur1[r + 1u].x, cur1[r + 1u].y, cur1[r + 1u].z, cur1[r + 1u].w);
                    int lo = 0, hi = 0;  // elements 0..15 and 16..31
                    [[unroll]] for (uint h = 0u; h < 8u; h++) {
                        const uint pw = tb_x8_pair(wa, wb, o, h);
                        lo += int(pw & 0x000F000Fu) * q[2u * h] + int((pw >> 8) & 0x000F000Fu) * q[2u * h + 1u];
                        hi += int((pw >> 4) & 0x000F000Fu) * q[2u * h + 16u] +
                              int((pw >> 12) & 0x000F000Fu) * q[2u * h + 17u];
                    }
                    const ivec2 s = tb_x8_split(lo, hi) - 8 * xsum;  // Q4_0: value = nibble - 8
                    acc[r] += float(s.x) * (tb_x8_scale(wa, o) * dx);
                    acc[r + 1u] += float(s.y) * (tb_x8_scale(wb, o) * dx);
                }
            }
            if (j < 7u) {
                [[unroll]] for (uint r = 0u; r < MAX_ROWS; r++) {
                    if (r < ROWS) {
                        cur0[r] = cur1[r];
                        cur1[r] = nxt[r];
                    }
                }
            }
        }
    }
    [[unroll]] for (uint r = 0u; r < MAX_ROWS; r++)
        if (r < ROWS && r0 + r < p.M) y[p.y_off + t * p.y_stride + r0 + r] = acc[r];
}
