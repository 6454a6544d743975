#version 450
// Peak arithmetic for bench_vk_roofline.c: every invocation runs CHAINS independent vec4 (or
// uvec4) chains of multiply-adds, `iters` times: 8 * CHAINS operations (a multiply and an add
// each count one) per iteration. On llvmpipe a vec4 of 8 lanes takes four 256-bit registers, so
// more than ~3 chains spill. OP_FMA uses fma(), OP_MAD a separate multiply and add, OP_IMAD 32-bit integers.
// The result is written only if it equals `key` (practically never), so nothing is dropped.
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint CHAINS = 4;  // <= 16
layout(binding = 0) writeonly buffer Dst { uint dst[]; };
layout(push_constant) uniform Params { uint iters; uint key; float m; float c; } p;
void main() {
    const uint id = gl_GlobalInvocationID.x;
#if defined(OP_IMAD)
    const uvec4 m = uvec4(floatBitsToUint(p.m)), c = uvec4(floatBitsToUint(p.c));
    uvec4 a[16];
    [[unroll]] for (uint i = 0u; i < 16u; i++) a[i] = uvec4(id + i, id ^ i, id * 3u + i, id + 7u * i);
    for (uint it = 0u; it < p.iters; it++)
        [[unroll]] for (uint i = 0u; i < 16u; i++) if (i < CHAINS) a[i] = a[i] * m + c;
    uvec4 s = a[0];
    [[unroll]] for (uint i = 1u; i < 16u; i++) if (i < CHAINS) s ^= a[i];
#else
    const vec4 m = vec4(p.m), c = vec4(p.c);
    vec4 a[16];
    [[unroll]] for (uint i = 0u; i < 16u; i++) a[i] = vec4(float(id + i), float(i), float(id & 7u), 1.0) * 1e-3;
    for (uint it = 0u; it < p.iters; it++)
#if defined(OP_FMA)
        [[unroll]] for (uint i = 0u; i < 16u; i++) if (i < CHAINS) a[i] = fma(a[i], m, c);
#else
        [[unroll]] for (uint i = 0u; i < 16u; i++) if (i < CHAINS) a[i] = a[i] * m + c;
#endif
    vec4 f = a[0];
    [[unroll]] for (uint i = 1u; i < 16u; i++) if (i < CHAINS) f += a[i];
    const uvec4 s = floatBitsToUint(f);
#endif
    const uint r = s.x ^ s.y ^ s.z ^ s.w;
    if (r == p.key) dst[gl_LocalInvocationID.x] = r;
}
