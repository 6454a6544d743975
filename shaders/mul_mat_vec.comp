#version 450
// Matrix-vector product y[t*y_stride + r] = sum_k W[r][k] * x[t*K + k] for one token per
// workgroup row (grid: ceil(M / ROWS) x N). A workgroup computes ROWS rows; its invocations
// stride over the chunks of the row, so weights are read exactly once and each x chunk is loaded
// once for all ROWS rows. Partial sums are reduced with subgroup adds and shared memory.
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ROWS = 2;  // <= MAX_ROWS
#define MAX_ROWS 8
layout(binding = 0) readonly buffer WB { uint wdata[]; };
layout(binding = 1) readonly buffer XB { vec4 x4[]; };
layout(binding = 2) writeonly buffer YB { float y[]; };
#include "mm_params.glsl"
#include "quant.glsl"

shared float red[MAX_ROWS * 32];

void main() {
    const uint tid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x;
    const uint r0 = gl_WorkGroupID.x * ROWS, t = gl_WorkGroupID.y;
    float acc[MAX_ROWS];
    for (uint r = 0u; r < MAX_ROWS; r++) acc[r] = 0.0;
    const uint nchunks = (p.K / BLOCK_ELEMS) * CPB;
    const uint xb = (p.x_off + t * p.K) >> 2;
    const uint wrow = p.w_off + r0 * p.row_bytes;
    for (uint i = tid; i < nchunks; i += wg) {
        const uint blk = i / CPB, c = i % CPB;
        vec4 xv[NG];
        [[unroll]] for (uint g = 0u; g < NG; g++) xv[g] = x4[xb + ((blk * BLOCK_ELEMS + chunk_pos(c, g)) >> 2)];
        const uint bb = wrow + blk * BLOCK_BYTES;
        [[unroll]] for (uint r = 0u; r < MAX_ROWS; r++) {
            if (r < ROWS && r0 + r < p.M) {
                vec4 v[NG];
                decode_chunk(bb + r * p.row_bytes, c, v);
                float s = 0.0;
                [[unroll]] for (uint g = 0u; g < NG; g++) s += dot(v[g], xv[g]);
                acc[r] += s;
            }
        }
    }
    for (uint r = 0u; r < ROWS; r++) {
        const float s = subgroupAdd(acc[r]);
        if (subgroupElect()) red[r * 32u + gl_SubgroupID] = s;
    }
    barrier();
    if (tid < ROWS && r0 + tid < p.M) {
        float s = 0.0;
        for (uint i = 0u; i < gl_NumSubgroups; i++) s += red[tid * 32u + i];
        y[p.y_off + t * p.y_stride + r0 + tid] = s;
    }
}
