#version 450
// out[i*K + k] = W[ids[i]][k] as f32 (embedding lookup). Grid: (ceil(chunks per row / 64), n_ids).
// A dispatch covers the weight rows [row_lo, row_hi) bound at w_off (large matrices are split);
// ids outside [0, n_rows) give zero rows (written by the dispatch whose row_hi == n_rows).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 64) in;
layout(binding = 0) readonly buffer WB { uint wdata[]; };
layout(binding = 1) readonly buffer IB { int ids[]; };
layout(binding = 2) writeonly buffer OB { float o[]; };
layout(push_constant) uniform Params {
    uint K, w_off, row_bytes, ids_off, o_off, row_lo, row_hi, n_rows;
} p;
#include "quant.glsl"

void main() {
    const uint chunk = gl_GlobalInvocationID.x, i = gl_WorkGroupID.y;
    if (chunk >= (p.K / BLOCK_ELEMS) * CPB) return;
    const int id = ids[p.ids_off + i];
    const uint blk = chunk / CPB, c = chunk % CPB;
    vec4 v[NG];
    if (id >= int(p.row_lo) && id < int(p.row_hi)) {
        decode_chunk(p.w_off + uint(id - int(p.row_lo)) * p.row_bytes + blk * BLOCK_BYTES, c, v);
    } else if (p.row_hi == p.n_rows && (id < 0 || id >= int(p.n_rows))) {
        for (uint g = 0u; g < NG; g++) v[g] = vec4(0.0);
    } else {
        return;
    }
    for (uint g = 0u; g < NG; g++) {
        const uint k = p.o_off + i * p.K + blk * BLOCK_ELEMS + chunk_pos(c, g);
        o[k] = v[g].x;
        o[k + 1u] = v[g].y;
        o[k + 2u] = v[g].z;
        o[k + 3u] = v[g].w;
    }
}
