#version 450
// Memory read bandwidth (vk_bandwidth.c): every invocation streams 16-byte loads over the bound
// range, grid-strided so that neighbouring invocations read neighbouring words, four loads in
// flight per iteration. The XOR of everything read is written only when it equals `key` (which
// it practically never does), so the compiler cannot drop the loads and nothing is written.
layout(local_size_x = 256) in;
layout(binding = 0) readonly buffer Src { uvec4 src[]; };
layout(binding = 1) writeonly buffer Dst { uint dst[]; };
layout(push_constant) uniform Params { uint n; uint key; } p; // n: uvec4 words in the binding
void main() {
    const uint stride = gl_NumWorkGroups.x * 256u;
    uint i = gl_GlobalInvocationID.x;
    uvec4 a = uvec4(0u), b = uvec4(0u), c = uvec4(0u), d = uvec4(0u);
    for (; i + 3u * stride < p.n; i += 4u * stride) {
        a ^= src[i];
        b ^= src[i + stride];
        c ^= src[i + 2u * stride];
        d ^= src[i + 3u * stride];
    }
    for (; i < p.n; i += stride) a ^= src[i];
    a ^= b ^ c ^ d;
    const uint r = a.x ^ a.y ^ a.z ^ a.w;
    if (r == p.key) dst[gl_LocalInvocationID.x] = r;
}
