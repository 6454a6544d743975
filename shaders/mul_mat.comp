#version 450
// Tiled matrix-matrix product for prompt batches (same math and parameters as mul_mat_vec.comp).
// A workgroup of 64 computes a TM x TN tile of y (TM rows, TN tokens); each K step dequantizes a
// TM x BK weight tile and a TN x BK activation tile into shared memory; each invocation then
// accumulates (TM/8) x (TN/8) outputs.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 64) in;
layout(binding = 0) readonly buffer WB { uint wdata[]; };
layout(binding = 1) readonly buffer XB { vec4 x4[]; };
layout(binding = 2) writeonly buffer YB { float y[]; };
#include "mm_params.glsl"
#include "quant.glsl"

#if defined(TYPE_Q2_K) || defined(TYPE_Q3_K) || defined(TYPE_Q6_K)
#define BK 128u
#define TN 16u
#elif defined(TYPE_Q4_K) || defined(TYPE_Q5_K)
#define BK 64u
#define TN 32u
#else
#define BK 32u
#define TN 32u
#endif
#define TM 32u
#define LD (BK + 1u)

shared float Ws[TM * LD];
shared float Xs[TN * LD];

void main() {
    const uint tid = gl_LocalInvocationID.x;
    const uint rb = gl_WorkGroupID.x * TM, tb = gl_WorkGroupID.y * TN;
    const uint tx = tid & 7u, ty = tid >> 3;
    float acc[TM / 8u][TN / 8u];
    for (uint i = 0u; i < TM / 8u; i++)
        for (uint j = 0u; j < TN / 8u; j++) acc[i][j] = 0.0;
    const uint CPT = BK / (4u * NG);  // chunks per tile row
    for (uint k0 = 0u; k0 < p.K; k0 += BK) {
        for (uint i = tid; i < TM * CPT; i += 64u) {
            const uint r = i / CPT, gc = k0 / (4u * NG) + i % CPT;
            const uint blk = gc / CPB, c = gc % CPB;
            vec4 v[NG];
            if (rb + r < p.M && blk * BLOCK_ELEMS < p.K) {
                decode_chunk(p.w_off + (rb + r) * p.row_bytes + blk * BLOCK_BYTES, c, v);
            } else {
                for (uint g = 0u; g < NG; g++) v[g] = vec4(0.0);
            }
            for (uint g = 0u; g < NG; g++) {
                const uint pos = r * LD + blk * BLOCK_ELEMS + chunk_pos(c, g) - k0;
                Ws[pos] = v[g].x;
                Ws[pos + 1u] = v[g].y;
                Ws[pos + 2u] = v[g].z;
                Ws[pos + 3u] = v[g].w;
            }
        }
        for (uint i = tid; i < TN * (BK / 4u); i += 64u) {
            const uint t = i / (BK / 4u), kq = (i % (BK / 4u)) * 4u;
            vec4 xv = vec4(0.0);
            if (tb + t < p.N && k0 + kq < p.K) xv = x4[(p.x_off + (tb + t) * p.K + k0 + kq) >> 2];
            const uint pos = t * LD + kq;
            Xs[pos] = xv.x;
            Xs[pos + 1u] = xv.y;
            Xs[pos + 2u] = xv.z;
            Xs[pos + 3u] = xv.w;
        }
        barrier();
        for (uint k = 0u; k < BK; k++) {
            float wv[TM / 8u];
            for (uint i = 0u; i < TM / 8u; i++) wv[i] = Ws[(tx + 8u * i) * LD + k];
            for (uint j = 0u; j < TN / 8u; j++) {
                const float xv = Xs[(ty + 8u * j) * LD + k];
                for (uint i = 0u; i < TM / 8u; i++) acc[i][j] += wv[i] * xv;
            }
        }
        barrier();
    }
    for (uint i = 0u; i < TM / 8u; i++)
        for (uint j = 0u; j < TN / 8u; j++) {
            const uint r = rb + tx + 8u * i, t = tb + ty + 8u * j;
            if (r < p.M && t < p.N) y[p.y_off + t * p.y_stride + r] = acc[i][j];
        }
}
