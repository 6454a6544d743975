#version 450
// Rotary position embedding, in place on x[n_tokens][n_heads][head_dim]. Token t has position
// pos0 + t; pair i < rope_dim/2 is rotated by theta = pos * freq_scale * base^(-2i/rope_dim).
// Normal layout rotates (2i, 2i+1), NeoX layout (i, i + rope_dim/2); dims >= rope_dim are kept.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 256) in;
layout(binding = 0) buffer XB { float x[]; };
layout(push_constant) uniform Params {
    uint n_pairs, n_heads, head_dim, rope_dim, pos0, x_off, neox;
    float base, freq_scale;
} p;
#include "elementwise.glsl"
void main() {
    const uint idx = flat_index();
    if (idx >= p.n_pairs) return;
    const uint half_dim = p.rope_dim / 2u;
    const uint i = idx % half_dim, th = idx / half_dim, t = th / p.n_heads;
    const float inv_freq = exp2(-2.0 * float(i) / float(p.rope_dim) * log2(p.base));
    const float theta = float(p.pos0 + t) * p.freq_scale * inv_freq;
    const float c = cos(theta), s = sin(theta);
    const uint base = p.x_off + th * p.head_dim;
    const uint a = base + (p.neox != 0u ? i : 2u * i);
    const uint b = a + (p.neox != 0u ? half_dim : 1u);
    const float x0 = x[a], x1 = x[b];
    x[a] = x0 * c - x1 * s;
    x[b] = x0 * s + x1 * c;
}
