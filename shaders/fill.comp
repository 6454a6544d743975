#version 450
// Fills a buffer with a constant: the smallest shader, used to prove the toolchain and the
// device path (tests/test_vulkan_smoke.c).
layout(local_size_x = 64) in;
layout(binding = 0) writeonly buffer Dst { float dst[]; };
layout(push_constant) uniform Params { uint n; float value; } p;
void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < p.n) dst[i] = p.value;
}
