#version 450
// Rotary position embedding, dst = rope(src) on [n_tokens][n_heads][head_dim] (dst may be src:
// every invocation reads the elements it writes). Token t has position pos0 + t; pair i <
// rope_dim/2 is rotated by theta = pos * freq_scale * base^(-2i/rope_dim). Normal layout rotates
// (2i, 2i+1), NeoX layout (i, i + rope_dim/2); dims >= rope_dim are copied. One invocation per
// pair of elements (n_pairs = n_tokens * n_heads * head_dim / 2).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 256) in;
layout(binding = 0) readonly buffer SB { float src[]; };
layout(binding = 1) writeonly buffer DB { float dst[]; };
layout(push_constant) uniform Params {
    uint n_pairs, n_heads, head_dim, rope_dim, pos0, src_off, dst_off, neox;
    float base, freq_scale;
} p;
#include "elementwise.glsl"
void main() {
    const uint idx = flat_index();
    if (idx >= p.n_pairs) return;
    const uint half_head = p.head_dim / 2u, half_dim = p.rope_dim / 2u;
    const uint i = idx % half_head, th = idx / half_head, t = th / p.n_heads;
    const uint head = th * p.head_dim;
    if (i >= half_dim) { // past the rotated dims: a plain copy of two elements
        const uint e = head + p.rope_dim + 2u * (i - half_dim);
        dst[p.dst_off + e] = src[p.src_off + e];
        dst[p.dst_off + e + 1u] = src[p.src_off + e + 1u];
        return;
    }
    const float inv_freq = exp2(-2.0 * float(i) / float(p.rope_dim) * log2(p.base));
    const float theta = float(p.pos0 + t) * p.freq_scale * inv_freq;
    const float c = cos(theta), s = sin(theta);
    const uint a = head + (p.neox != 0u ? i : 2u * i);
    const uint b = a + (p.neox != 0u ? half_dim : 1u);
    const float x0 = src[p.src_off + a], x1 = src[p.src_off + b];
    dst[p.dst_off + a] = x0 * c - x1 * s;
    dst[p.dst_off + b] = x0 * s + x1 * c;
}
