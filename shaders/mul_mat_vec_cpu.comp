#version 450
// Q4_0/Q8_0 mat-vec for llvmpipe/lavapipe (CPU Vulkan), which runs the 8 invocations of a
// subgroup as SIMD lanes and, in Mesa 22.x, emits every storage-buffer load as a scalar loop over
// the lanes, even when all lanes read the same address. Like mul_mat_vec_lane.comp every
// invocation owns ROWS rows (the weight loads of the 8 lanes are then all useful), but x, which
// all lanes need in full, is loaded once per subgroup: lane i loads elements i, i+8, i+16, i+24
// of the block and the others get them with subgroupBroadcast (a register extract on llvmpipe),
// so x costs 4 lane-loops per block instead of 32. Requires subgroup size 8 (vk_ops.c checks).
// Same parameters and grid as mul_mat_vec_lane.comp.
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_ballot : require
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ROWS = 4;  // <= MAX_ROWS
#define MAX_ROWS 8
layout(binding = 0) readonly buffer WB { uint wdata[]; };
layout(binding = 1) readonly buffer XB { float xs[]; };
layout(binding = 2) writeonly buffer YB { float y[]; };
#include "mm_params.glsl"
#include "quant.glsl"

#if !defined(TYPE_Q4_0) && !defined(TYPE_Q8_0)
#error "mul_mat_vec_cpu: Q4_0 or Q8_0 only"
#endif

#define BX(e) subgroupBroadcast(xl[(e) >> 3], (e) & 7u)
#define BX4(e) vec4(BX(e), BX((e) + 1u), BX((e) + 2u), BX((e) + 3u))

void main() {
    const uint r0 = gl_GlobalInvocationID.x * ROWS, t = gl_WorkGroupID.y;
    const uint nb = p.K / BLOCK_ELEMS;
    const uint xb = p.x_off + t * p.K + gl_SubgroupInvocationID;
    uint wrow[MAX_ROWS];
    float acc[MAX_ROWS];
    [[unroll]] for (uint r = 0u; r < MAX_ROWS; r++) {
        wrow[r] = p.w_off + min(r0 + r, p.M - 1u) * p.row_bytes;  // clamped: no reads past M
        acc[r] = 0.0;
    }
    for (uint blk = 0u; blk < nb; blk++) {
        float xl[4];
        [[unroll]] for (uint m = 0u; m < 4u; m++) xl[m] = xs[xb + blk * 32u + 8u * m];
        vec4 xv[8];
        xv[0] = BX4(0u);
        xv[1] = BX4(4u);
        xv[2] = BX4(8u);
        xv[3] = BX4(12u);
        xv[4] = BX4(16u);
        xv[5] = BX4(20u);
        xv[6] = BX4(24u);
        xv[7] = BX4(28u);
        [[unroll]] for (uint r = 0u; r < MAX_ROWS; r++)
            if (r < ROWS) acc[r] += sub_dot(wrow[r] + blk * BLOCK_BYTES, 0u, xv);
    }
    [[unroll]] for (uint r = 0u; r < MAX_ROWS; r++)
        if (r < ROWS && r0 + r < p.M) y[p.y_off + t * p.y_stride + r0 + r] = acc[r];
}
