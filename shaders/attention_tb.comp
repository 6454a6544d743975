#version 450
// Causal attention for CPU Vulkan devices (llvmpipe/lavapipe): same inputs, outputs and
// parameters as attention.comp, but one invocation per (head, token) with no shared memory, no
// barriers and no subgroup operations (on llvmpipe, Mesa 22.3, shared-memory loads are per-lane
// loops and barriers are coroutine switches), and the K/V caches read through texel buffers of
// 16-byte texels (one gather per lane instead of a per-lane scalar loop per element). q and the
// output accumulator live in registers: the head dimension HD is a specialization constant.
// Workgroups of 8 invocations cover 8 heads of one token. Requires HD % 8 == 0 and 16-byte
// aligned cache offsets (vk_ops.c checks). Grid: ceil(n_head / 8) x n_tokens.
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x = 8) in;
layout(constant_id = 0) const uint HD = 64;
layout(binding = 0) readonly buffer QB { float q[]; };
layout(binding = 1) uniform usamplerBuffer kc;
layout(binding = 2) uniform usamplerBuffer vc;
layout(binding = 3) writeonly buffer OB { float o[]; };
layout(push_constant) uniform Params {
    uint n_head, n_head_kv, head_dim, pos0, q_off, k_off, v_off, o_off;  // k_off, v_off in texels
    float scale;
} p;

#ifdef KV_F32
#define EPT 4u  // elements per texel
void unpack_texel(uvec4 w, out float v[EPT]) {
    [[unroll]] for (uint c = 0u; c < 4u; c++) v[c] = uintBitsToFloat(w[c]);
}
#else
#define EPT 8u
void unpack_texel(uvec4 w, out float v[EPT]) {
    [[unroll]] for (uint c = 0u; c < 4u; c++) {
        const vec2 h2 = unpackHalf2x16(w[c]);
        v[2u * c] = h2.x;
        v[2u * c + 1u] = h2.y;
    }
}
#endif
#define ROW_TEXELS (HD / EPT)

void main() {
    const uint h = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
    const uint hc = min(h, p.n_head - 1u);  // clamped: lanes past n_head compute a copy
    const uint g = hc / (p.n_head / p.n_head_kv);
    const uint last = p.pos0 + t;  // last visible position, the same for all lanes
    const uint qo = p.q_off + (t * p.n_head + hc) * HD;
    float qv[HD], acc[HD];
    [[unroll]] for (uint d = 0u; d < HD; d++) {
        qv[d] = q[qo + d] * p.scale;
        acc[d] = 0.0;
    }
    const uint stride = p.n_head_kv * ROW_TEXELS;  // texels per position
    const int kb = int(p.k_off + g * ROW_TEXELS), vb = int(p.v_off + g * ROW_TEXELS);
    float m = -1e30, l = 0.0;
    for (uint j = 0u; j <= last; j++) {
        float s4[4] = float[4](0.0, 0.0, 0.0, 0.0);
        [[unroll]] for (uint i = 0u; i < ROW_TEXELS; i++) {
            float kv[EPT];
            unpack_texel(texelFetch(kc, kb + int(j * stride + i)), kv);
            [[unroll]] for (uint c = 0u; c < EPT; c++) s4[c & 3u] += qv[EPT * i + c] * kv[c];
        }
        const float s = (s4[0] + s4[1]) + (s4[2] + s4[3]);
        const float m_new = max(m, s);
        const float alpha = exp(m - m_new), pj = exp(s - m_new);
        l = l * alpha + pj;
        [[unroll]] for (uint i = 0u; i < ROW_TEXELS; i++) {
            float vv[EPT];
            unpack_texel(texelFetch(vc, vb + int(j * stride + i)), vv);
            [[unroll]] for (uint c = 0u; c < EPT; c++) acc[EPT * i + c] = acc[EPT * i + c] * alpha + pj * vv[c];
        }
        m = m_new;
    }
    if (h < p.n_head) {
        const uint oo = p.o_off + (t * p.n_head + h) * HD;
        [[unroll]] for (uint d = 0u; d < HD; d++) o[oo + d] = acc[d] / l;
    }
}
