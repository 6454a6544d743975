#version 450
// Read bandwidth by access pattern for bench_vk_roofline.c (and, RD_TB with the grid pattern,
// vk_bandwidth.c on CPU devices). Every invocation XORs `count` elements of the bound range:
// element base + k * step, with (push constants)
//   mode 0 (grid):     base = global id,                     step = invocations in the grid
//   mode 1 (group):    base = group * WG * count + local id,  step = WG (a workgroup streams one
//                      contiguous range, neighbouring lanes read neighbouring elements)
//   mode 2 (lane):     base = global id * count,             step = 1 (each lane its own stream)
// Elements: RD_TB a 16-byte texel of a uniform texel buffer (RGBA32UI), RD_U4 a uvec4 and
// RD_U32 a uint of a storage buffer. The XOR is written only if it equals `key`.
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
#if defined(RD_TB)
layout(binding = 0) uniform usamplerBuffer src;
#define LOAD(i) texelFetch(src, int(i))
#define ELEM uvec4
#elif defined(RD_U4)
layout(binding = 0) readonly buffer Src { uvec4 src[]; };
#define LOAD(i) src[i]
#define ELEM uvec4
#else
layout(binding = 0) readonly buffer Src { uint src[]; };
#define LOAD(i) src[i]
#define ELEM uint
#endif
layout(binding = 1) writeonly buffer Dst { uint dst[]; };
layout(push_constant) uniform Params { uint count; uint key; uint mode; } p;
void main() {
    const uint wg = gl_WorkGroupSize.x, inv = gl_NumWorkGroups.x * wg;
    uint base = gl_GlobalInvocationID.x, step = inv;
    if (p.mode == 1u) {
        base = gl_WorkGroupID.x * wg * p.count + gl_LocalInvocationID.x;
        step = wg;
    } else if (p.mode == 2u) {
        base = gl_GlobalInvocationID.x * p.count;
        step = 1u;
    }
    ELEM a = ELEM(0u), b = ELEM(0u), c = ELEM(0u), d = ELEM(0u);
    uint k = 0u;
    for (; k + 4u <= p.count; k += 4u) {
        a ^= LOAD(base + k * step);
        b ^= LOAD(base + (k + 1u) * step);
        c ^= LOAD(base + (k + 2u) * step);
        d ^= LOAD(base + (k + 3u) * step);
    }
    for (; k < p.count; k++) a ^= LOAD(base + k * step);
    a ^= b ^ c ^ d;
#if defined(RD_U32)
    const uint r = a;
#else
    const uint r = a.x ^ a.y ^ a.z ^ a.w;
#endif
    if (r == p.key) dst[gl_LocalInvocationID.x] = r;
}
