#version 450
// o[i] = silu(g[i]) * u[i], silu(x) = x / (1 + exp(-x)) (o may alias g or u exactly).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 256) in;
layout(binding = 0) readonly buffer GB { float g[]; };
layout(binding = 1) readonly buffer UB { float u[]; };
layout(binding = 2) writeonly buffer OB { float o[]; };
layout(push_constant) uniform Params { uint n, g_off, u_off, o_off; } p;
#include "elementwise.glsl"
void main() {
    const uint i = flat_index();
    if (i >= p.n) return;
    const float x = g[p.g_off + i];
    o[p.o_off + i] = x / (1.0 + exp(-x)) * u[p.u_off + i];
}
