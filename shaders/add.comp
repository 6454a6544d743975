#version 450
// o[i] = a[i] + b[i] (o may alias a or b exactly).
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 256) in;
layout(binding = 0) readonly buffer AB { float a[]; };
layout(binding = 1) readonly buffer BB { float b[]; };
layout(binding = 2) writeonly buffer OB { float o[]; };
layout(push_constant) uniform Params { uint n, a_off, b_off, o_off; } p;
#include "elementwise.glsl"
void main() {
    const uint i = flat_index();
    if (i < p.n) o[p.o_off + i] = a[p.a_off + i] + b[p.b_off + i];
}
