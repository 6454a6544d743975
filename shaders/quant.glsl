// Weight decoding for every type, from a storage buffer of 32-bit words `wdata[]` that the
// including shader declares. Byte offsets only need 2-byte alignment (some block sizes are 18, 22,
// 34, 110, 210 bytes).
//
// A block of BLOCK_ELEMS elements (BLOCK_BYTES bytes) is decoded in CPB chunks; chunk c yields NG
// groups of 4 consecutive elements: v[g] holds elements chunk_pos(c, g) .. +3 of the block. The
// chunks [s*CPS, (s+1)*CPS) cover exactly the elements [s*SUB, (s+1)*SUB) (CPS = SUB / (4*NG)),
// which the tiled matmul uses to load K tiles of SUB elements.

uint ld8(uint b) { return (wdata[b >> 2] >> ((b & 3u) * 8u)) & 0xFFu; }
uint ld16(uint b) { return (wdata[b >> 2] >> ((b & 2u) * 8u)) & 0xFFFFu; }
// 32 bits at even byte offset b, without a branch (CPU devices execute both sides of a divergent
// branch); the second word is clamped to the binding so the last word never reads past it.
uint ld32(uint b) {
    const uint w = b >> 2;
    const uint lo = wdata[w], hi = wdata[min(w + 1u, uint(wdata.length()) - 1u)];
    return (b & 2u) == 0u ? lo : ((lo >> 16) | (hi << 16));
}
float ldh(uint b) { return unpackHalf2x16(ld16(b)).x; }
vec4 nib_lo(uint q) { return vec4(uvec4(q, q >> 8, q >> 16, q >> 24) & 0xFu); }
vec4 nib_hi(uint q) { return vec4(uvec4(q >> 4, q >> 12, q >> 20, q >> 28) & 0xFu); }
vec4 bits(uint q, uint shift, uint mask) {
    return vec4((uvec4(q, q >> 8, q >> 16, q >> 24) >> shift) & mask);
}
vec4 i8x4(uint q) {
    ivec4 v = ivec4(q << 24, q << 16, q << 8, q) >> 24;
    return vec4(v);
}

#if defined(TYPE_F32)
#define BLOCK_ELEMS 8u
#define BLOCK_BYTES 32u
#define NG 2
#define SUB 8u
uint chunk_pos(uint c, uint g) { return 4u * g; }
void decode_chunk(uint bb, uint c, out vec4 v[NG]) {
    uint w = bb >> 2;
    v[0] = uintBitsToFloat(uvec4(wdata[w], wdata[w + 1u], wdata[w + 2u], wdata[w + 3u]));
    v[1] = uintBitsToFloat(uvec4(wdata[w + 4u], wdata[w + 5u], wdata[w + 6u], wdata[w + 7u]));
}
#elif defined(TYPE_F16)
#define BLOCK_ELEMS 8u
#define BLOCK_BYTES 16u
#define NG 2
#define SUB 8u
uint chunk_pos(uint c, uint g) { return 4u * g; }
void decode_chunk(uint bb, uint c, out vec4 v[NG]) {
    uint w = bb >> 2;
    v[0] = vec4(unpackHalf2x16(wdata[w]), unpackHalf2x16(wdata[w + 1u]));
    v[1] = vec4(unpackHalf2x16(wdata[w + 2u]), unpackHalf2x16(wdata[w + 3u]));
}
#elif defined(TYPE_BF16)
#define BLOCK_ELEMS 8u
#define BLOCK_BYTES 16u
#define NG 2
#define SUB 8u
uint chunk_pos(uint c, uint g) { return 4u * g; }
vec2 bf2(uint w) { return vec2(uintBitsToFloat(w << 16), uintBitsToFloat(w & 0xFFFF0000u)); }
void decode_chunk(uint bb, uint c, out vec4 v[NG]) {
    uint w = bb >> 2;
    v[0] = vec4(bf2(wdata[w]), bf2(wdata[w + 1u]));
    v[1] = vec4(bf2(wdata[w + 2u]), bf2(wdata[w + 3u]));
}
#elif defined(TYPE_Q4_0)
#define BLOCK_ELEMS 32u
#define BLOCK_BYTES 18u
#define NG 2
#define SUB 32u
uint chunk_pos(uint c, uint g) { return 4u * c + 16u * g; }
void decode_chunk(uint bb, uint c, out vec4 v[NG]) {
    float d = ldh(bb);
    uint q = ld32(bb + 2u + 4u * c);
    v[0] = (nib_lo(q) - 8.0) * d;
    v[1] = (nib_hi(q) - 8.0) * d;
}
#elif defined(TYPE_Q4_1)
#define BLOCK_ELEMS 32u
#define BLOCK_BYTES 20u
#define NG 2
#define SUB 32u
uint chunk_pos(uint c, uint g) { return 4u * c + 16u * g; }
void decode_chunk(uint bb, uint c, out vec4 v[NG]) {
    vec2 dm = unpackHalf2x16(wdata[bb >> 2]);
    uint q = wdata[(bb >> 2) + 1u + c];
    v[0] = nib_lo(q) * dm.x + dm.y;
    v[1] = nib_hi(q) * dm.x + dm.y;
}
#elif defined(TYPE_Q5_0)
#define BLOCK_ELEMS 32u
#define BLOCK_BYTES 22u
#define NG 2
#define SUB 32u
uint chunk_pos(uint c, uint g) { return 4u * c + 16u * g; }
void decode_chunk(uint bb, uint c, out vec4 v[NG]) {
    float d = ldh(bb);
    uint qh = ld32(bb + 2u);
    uint q = ld32(bb + 6u + 4u * c);
    vec4 h0 = vec4((uvec4(qh) >> (uvec4(0u, 1u, 2u, 3u) + 4u * c)) & 1u) * 16.0;
    vec4 h1 = vec4((uvec4(qh) >> (uvec4(16u, 17u, 18u, 19u) + 4u * c)) & 1u) * 16.0;
    v[0] = (nib_lo(q) + h0 - 16.0) * d;
    v[1] = (nib_hi(q) + h1 - 16.0) * d;
}
#elif defined(TYPE_Q5_1)
#define BLOCK_ELEMS 32u
#define BLOCK_BYTES 24u
#define NG 2
#define SUB 32u
uint chunk_pos(uint c, uint g) { return 4u * c + 16u * g; }
void decode_chunk(uint bb, uint c, out vec4 v[NG]) {
    uint w = bb >> 2;
    vec2 dm = unpackHalf2x16(wdata[w]);
    uint qh = wdata[w + 1u];
    uint q = wdata[w + 2u + c];
    vec4 h0 = vec4((uvec4(qh) >> (uvec4(0u, 1u, 2u, 3u) + 4u * c)) & 1u) * 16.0;
    vec4 h1 = vec4((uvec4(qh) >> (uvec4(16u, 17u, 18u, 19u) + 4u * c)) & 1u) * 16.0;
    v[0] = (nib_lo(q) + h0) * dm.x + dm.y;
    v[1] = (nib_hi(q) + h1) * dm.x + dm.y;
}
#elif defined(TYPE_Q8_0)
#define BLOCK_ELEMS 32u
#define BLOCK_BYTES 34u
#define NG 2
#define SUB 32u
uint chunk_pos(uint c, uint g) { return 8u * c + 4u * g; }
void decode_chunk(uint bb, uint c, out vec4 v[NG]) {
    float d = ldh(bb);
    v[0] = i8x4(ld32(bb + 2u + 8u * c)) * d;
    v[1] = i8x4(ld32(bb + 6u + 8u * c)) * d;
}
#elif defined(TYPE_Q2_K)
#define BLOCK_ELEMS 256u
#define BLOCK_BYTES 84u
#define NG 4
#define SUB 128u
uint chunk_pos(uint c, uint g) { return 128u * (c >> 3) + 32u * g + 4u * (c & 7u); }
void decode_chunk(uint bb, uint c, out vec4 v[NG]) {
    uint h = c >> 3, l0 = 4u * (c & 7u);
    uint w = bb >> 2;
    vec2 dm = unpackHalf2x16(wdata[w + 20u]);
    uint q = wdata[w + 4u + 8u * h + (c & 7u)];
    uint sw0 = wdata[w + 2u * h], sw1 = wdata[w + 2u * h + 1u];  // scales 8h .. 8h+7
    uint sb = l0 >> 4;
    for (uint g = 0u; g < 4u; g++) {
        uint si = 2u * g + sb;  // element scale index - 8h
        uint sc = (si < 4u ? (sw0 >> (8u * si)) : (sw1 >> (8u * (si - 4u)))) & 0xFFu;
        v[g] = dm.x * float(sc & 0xFu) * bits(q, 2u * g, 3u) - dm.y * float(sc >> 4);
    }
}
#elif defined(TYPE_Q3_K)
#define BLOCK_ELEMS 256u
#define BLOCK_BYTES 110u
#define NG 4
#define SUB 128u
uint chunk_pos(uint c, uint g) { return 128u * (c >> 3) + 32u * g + 4u * (c & 7u); }
void decode_chunk(uint bb, uint c, out vec4 v[NG]) {
    uint h = c >> 3, l0 = 4u * (c & 7u);
    float d = ldh(bb + 108u);
    uint q = ld32(bb + 32u + 32u * h + l0);
    uint hm = ld32(bb + l0);
    for (uint g = 0u; g < 4u; g++) {
        uint j = 8u * h + 2u * g + (l0 >> 4);  // scale index
        uint lo = j < 8u ? (ld8(bb + 96u + j) & 0xFu) : (ld8(bb + 96u + j - 8u) >> 4);
        uint hi = (ld8(bb + 104u + (j & 3u)) >> (2u * (j >> 2))) & 3u;
        float dl = d * (float(lo | (hi << 4)) - 32.0);
        vec4 hbit = bits(hm, 4u * h + g, 1u);
        v[g] = dl * (bits(q, 2u * g, 3u) - 4.0 + 4.0 * hbit);
    }
}
#elif defined(TYPE_Q4_K) || defined(TYPE_Q5_K)
#define BLOCK_ELEMS 256u
#ifdef TYPE_Q4_K
#define BLOCK_BYTES 144u
#define QS_OFF 16u
#else
#define BLOCK_BYTES 176u
#define QS_OFF 48u
#endif
#define NG 2
#define SUB 64u
uint chunk_pos(uint c, uint g) { return 64u * (c >> 3) + 32u * g + 4u * (c & 7u); }
// 6-bit scale and min of sub-block j from the 12 packed bytes at word w+1.
vec2 k4_scale_min(uint w, uint j) {
    uint s0 = wdata[w + 1u], s1 = wdata[w + 2u], s2 = wdata[w + 3u];
    if (j < 4u) return vec2((s0 >> (8u * j)) & 63u, (s1 >> (8u * j)) & 63u);
    uint sh = 8u * (j - 4u);
    uint sc = ((s2 >> sh) & 0xFu) | (((s0 >> (sh + 6u)) & 3u) << 4);
    uint m = ((s2 >> (sh + 4u)) & 0xFu) | (((s1 >> (sh + 6u)) & 3u) << 4);
    return vec2(sc, m);
}
void decode_chunk(uint bb, uint c, out vec4 v[NG]) {
    uint w = bb >> 2, j = c >> 3, l0 = 4u * (c & 7u);
    vec2 dm = unpackHalf2x16(wdata[w]);
    vec2 a = k4_scale_min(w, 2u * j), b = k4_scale_min(w, 2u * j + 1u);
    uint q = wdata[w + (QS_OFF >> 2) + 8u * j + (c & 7u)];
    vec4 lo = nib_lo(q), hi = nib_hi(q);
#ifdef TYPE_Q5_K
    uint qh = wdata[w + 4u + (l0 >> 2)];
    lo += bits(qh, 2u * j, 1u) * 16.0;
    hi += bits(qh, 2u * j + 1u, 1u) * 16.0;
#endif
    v[0] = dm.x * a.x * lo - dm.y * a.y;
    v[1] = dm.x * b.x * hi - dm.y * b.y;
}
#elif defined(TYPE_Q6_K)
#define BLOCK_ELEMS 256u
#define BLOCK_BYTES 210u
#define NG 4
#define SUB 128u
uint chunk_pos(uint c, uint g) { return 128u * (c >> 3) + 32u * g + 4u * (c & 7u); }
void decode_chunk(uint bb, uint c, out vec4 v[NG]) {
    uint h = c >> 3, l0 = 4u * (c & 7u);
    float d = ldh(bb + 208u);
    uint qa = ld32(bb + 64u * h + l0), qb = ld32(bb + 64u * h + 32u + l0);
    uint qh = ld32(bb + 128u + 32u * h + l0);
    uint sw = ld32(bb + 192u + 8u * h);       // scales 8h .. 8h+3
    uint sw2 = ld32(bb + 196u + 8u * h);      // scales 8h+4 .. 8h+7
    uint sb = l0 >> 4;
    for (uint g = 0u; g < 4u; g++) {
        uint si = 2u * g + sb;
        uint sbyte = si < 4u ? (sw >> (8u * si)) : (sw2 >> (8u * (si - 4u)));
        float sc = float(int(sbyte << 24) >> 24);
        uint ql = (g & 1u) == 0u ? qa : qb;
        vec4 lo = (g < 2u) ? nib_lo(ql) : nib_hi(ql);
        v[g] = d * sc * (lo + bits(qh, 2u * g, 3u) * 16.0 - 32.0);
    }
}
#else
#error "define one TYPE_*"
#endif

// Sub-block dot products for the row-per-invocation mat-vec (mul_mat_vec_lane.comp): SD_ELEMS
// elements (sub-block sb of the block at byte bb) dotted with xv, read with the fewest aligned
// word loads and no branches, which is what CPU devices need. (Tried for Q4_K/Q6_K with 64/128
// element sub-blocks: slower on llvmpipe, the x registers spill; they use the chunk path.)
#if defined(TYPE_Q4_0) || defined(TYPE_Q8_0)
#define HAVE_SUB_DOT
#define SD_ELEMS 32u
// Byte 2 + 4j of a block at 2-aligned byte offset bb, given its words from bb >> 2 on.
#define BLK_WORD(w, j, s) ((s) == 0u ? (((w)[j] >> 16) | ((w)[(j) + 1u] << 16)) : (w)[(j) + 1u])
#endif
#ifdef TYPE_Q4_0
float sub_dot(uint bb, uint sb, vec4 xv[SD_ELEMS / 4u]) {
    const uint w0 = bb >> 2, s = (bb & 2u) * 8u;
    uint w[5];
    for (uint i = 0u; i < 5u; i++) w[i] = wdata[w0 + i];
    float acc = 0.0;
    for (uint j = 0u; j < 4u; j++) {
        const uint q = BLK_WORD(w, j, s);
        acc += dot(nib_lo(q) - 8.0, xv[j]) + dot(nib_hi(q) - 8.0, xv[j + 4u]);
    }
    return acc * unpackHalf2x16(w[0] >> s).x;
}
#endif
#ifdef TYPE_Q8_0
float sub_dot(uint bb, uint sb, vec4 xv[SD_ELEMS / 4u]) {
    const uint w0 = bb >> 2, s = (bb & 2u) * 8u;
    uint w[9];
    for (uint i = 0u; i < 9u; i++) w[i] = wdata[w0 + i];
    float acc = 0.0;
    for (uint j = 0u; j < 8u; j++) acc += dot(i8x4(BLK_WORD(w, j, s)), xv[j]);
    return acc * unpackHalf2x16(w[0] >> s).x;
}
#endif
#define CPB (BLOCK_ELEMS / (4u * NG))  // chunks per block
#define CPS (SUB / (4u * NG))          // chunks per SUB elements
