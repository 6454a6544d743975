#version 450
// Causal attention with an online softmax (the score matrix never reaches memory).
// q: [n_tokens][n_head][head_dim] f32; K/V cache: [n_ctx][n_head_kv][head_dim] (f16 by default,
// KV_F32 for f32); out: [n_tokens][n_head][head_dim] f32. Token t (position pos0 + t), head h,
// attends to cache positions 0 .. pos0 + t of kv head h / (n_head / n_head_kv), scores scaled
// by `scale`. One workgroup of 32 per (head, token); each step scores a tile of 32 keys (one per
// invocation), then every invocation updates head_dim / 32 output dimensions.
#extension GL_KHR_shader_subgroup_arithmetic : require
layout(local_size_x = 32) in;
layout(binding = 0) readonly buffer QB { float q[]; };
#ifdef KV_F32
layout(binding = 1) readonly buffer KB { float kc[]; };
layout(binding = 2) readonly buffer VB { float vc[]; };
vec2 load_k2(uint e) { return vec2(kc[e], kc[e + 1u]); }
float load_v(uint e) { return vc[e]; }
#else
layout(binding = 1) readonly buffer KB { uint kc[]; };
layout(binding = 2) readonly buffer VB { uint vc[]; };
vec2 load_k2(uint e) { return unpackHalf2x16(kc[e >> 1]); }  // e even
float load_v(uint e) { return unpackHalf2x16(vc[e >> 1] >> ((e & 1u) * 16u)).x; }
#endif
layout(binding = 3) writeonly buffer OB { float o[]; };
layout(push_constant) uniform Params {
    uint n_head, n_head_kv, head_dim, pos0, q_off, k_off, v_off, o_off;
    float scale;
} p;

#define MAX_HEAD_DIM 256u
shared float qs[MAX_HEAD_DIM];
shared float ps[32];
shared float red[32];

float wg_max(float v) {
    v = subgroupMax(v);
    if (subgroupElect()) red[gl_SubgroupID] = v;
    barrier();
    float m = red[0];
    for (uint i = 1u; i < gl_NumSubgroups; i++) m = max(m, red[i]);
    barrier();
    return m;
}

float wg_sum(float v) {
    v = subgroupAdd(v);
    if (subgroupElect()) red[gl_SubgroupID] = v;
    barrier();
    float s = 0.0;
    for (uint i = 0u; i < gl_NumSubgroups; i++) s += red[i];
    barrier();
    return s;
}

void main() {
    const uint tid = gl_LocalInvocationID.x;
    const uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y;
    const uint hd = p.head_dim, hkv = h / (p.n_head / p.n_head_kv);
    const uint last = p.pos0 + t;  // last visible position
    const uint kv_stride = p.n_head_kv * hd;
    const uint qo = p.q_off + (t * p.n_head + h) * hd;
    for (uint d = tid; d < hd; d += 32u) qs[d] = q[qo + d] * p.scale;
    barrier();
    float m = -1e30, l = 0.0;
    float acc[MAX_HEAD_DIM / 32u];
    for (uint i = 0u; i < MAX_HEAD_DIM / 32u; i++) acc[i] = 0.0;
    const uint ndim = hd / 32u;
    for (uint j0 = 0u; j0 <= last; j0 += 32u) {
        const uint j = j0 + tid;
        float s = -1e30;
        if (j <= last) {
            const uint kb = p.k_off + j * kv_stride + hkv * hd;
            s = 0.0;
            for (uint d = 0u; d < hd; d += 2u) {
                const vec2 kk = load_k2(kb + d);
                s += qs[d] * kk.x + qs[d + 1u] * kk.y;
            }
        }
        const float m_new = max(m, wg_max(s));
        const float pj = j <= last ? exp(s - m_new) : 0.0;
        const float alpha = exp(m - m_new);
        ps[tid] = pj;
        l = l * alpha + wg_sum(pj);  // its barrier also publishes ps
        const uint n = min(32u, last + 1u - j0);
        const uint vb = p.v_off + j0 * kv_stride + hkv * hd + tid;
        for (uint i = 0u; i < ndim; i++) {
            float a = acc[i] * alpha;
            for (uint jj = 0u; jj < n; jj++) a += ps[jj] * load_v(vb + jj * kv_stride + 32u * i);
            acc[i] = a;
        }
        m = m_new;
        barrier();  // ps is rewritten next step
    }
    const uint oo = p.o_off + (t * p.n_head + h) * hd + tid;
    for (uint i = 0u; i < ndim; i++) o[oo + 32u * i] = acc[i] / l;
}
