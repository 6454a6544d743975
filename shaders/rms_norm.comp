#version 450
// y[r][i] = x[r][i] / sqrt(mean_i(x[r][i]^2) + eps) * w[i]; one workgroup per row.
#extension GL_KHR_shader_subgroup_arithmetic : require
layout(local_size_x_id = 0) in;
layout(binding = 0) readonly buffer XB { float x[]; };
layout(binding = 1) readonly buffer WB { float w[]; };
layout(binding = 2) writeonly buffer YB { float y[]; };
layout(push_constant) uniform Params { uint dim, x_off, w_off, y_off; float eps; } p;
shared float red[32];
void main() {
    const uint tid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x;
    const uint xb = p.x_off + gl_WorkGroupID.x * p.dim, yb = p.y_off + gl_WorkGroupID.x * p.dim;
    float s = 0.0;
    for (uint i = tid; i < p.dim; i += wg) s += x[xb + i] * x[xb + i];
    s = subgroupAdd(s);
    if (subgroupElect()) red[gl_SubgroupID] = s;
    barrier();
    float total = 0.0;
    for (uint i = 0u; i < gl_NumSubgroups; i++) total += red[i];
    const float scale = inversesqrt(total / float(p.dim) + p.eps);
    for (uint i = tid; i < p.dim; i += wg) y[yb + i] = x[xb + i] * scale * w[p.w_off + i];
}
