#version 450
// dst[dst_off + i] = convert(src[src_off + i]) for i < n; SRC_F16 / DST_F16 select half
// precision (packed two per 32-bit word). With a half destination one invocation writes one word
// (two elements): dst_off and n must be even.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 256) in;
layout(binding = 0) readonly buffer SB { uint src[]; };
layout(binding = 1) writeonly buffer DB { uint dst[]; };
layout(push_constant) uniform Params { uint n, src_off, dst_off; } p;
#include "elementwise.glsl"

float load(uint i) {
    const uint e = p.src_off + i;
#ifdef SRC_F16
    return unpackHalf2x16(src[e >> 1] >> ((e & 1u) * 16u)).x;
#else
    return uintBitsToFloat(src[e]);
#endif
}

void main() {
    const uint i = flat_index();
#ifdef DST_F16
    if (2u * i >= p.n) return;
    dst[(p.dst_off >> 1) + i] = packHalf2x16(vec2(load(2u * i), load(2u * i + 1u)));
#else
    if (i >= p.n) return;
    dst[p.dst_off + i] = floatBitsToUint(load(i));
#endif
}
