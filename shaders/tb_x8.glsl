// Helpers of the integer Q4_0 mat-vec for CPU devices (mul_mat_vec_tb_x8.comp, which describes the
// scheme). Needs tb_q.glsl and a texel buffer xq of f32 x.

// The 32 x of a block (8 texels at `first`) as 8-bit integers q, their scale and their sum.
void quantize_x(int first, out int q[32], out float dx, out int sum) {
    float v[32];
    float amax = 0.0;
    [[unroll]] for (uint i = 0u; i < 8u; i++) {
        const vec4 t = uintBitsToFloat(texelFetch(xq, first + int(i)));
        [[unroll]] for (uint c = 0u; c < 4u; c++) {
            v[4u * i + c] = t[c];
            amax = max(amax, abs(t[c]));
        }
    }
    dx = amax / 127.0;
    const float id = amax > 0.0 ? 127.0 / amax : 0.0;
    sum = 0;
    [[unroll]] for (uint e = 0u; e < 32u; e++) {
        q[e] = int(roundEven(v[e] * id));
        sum += q[e];
    }
}

// The 16 bits at byte position `pos` (even) of a row's words w, in the low (hi = false) or the
// high half of the result.
uint half_at(uint w[8], uint pos, bool hi) {
    const uint v = w[pos >> 2];
    if ((pos & 2u) == 0u) return hi ? v << 16 : v & 0xFFFFu;
    return hi ? v & 0xFFFF0000u : v >> 16;
}

// The two rows' 16-bit pieces of qs bytes 2h and 2h+1 of block j (o: the block's byte offset in
// its first texel) as one word: row a in the low half, row b in the high half.
uint tb_x8_pair(uint wa[8], uint wb[8], uint o, uint h) {
    const uint pos = o + 2u + 2u * h;
    return half_at(wa, pos, false) | half_at(wb, pos, true);
}

// Splits the two-row sums of a block (lo: elements 0..15, hi: 16..31; row a in the low 16 bits,
// row b in the rest) into each row's sum of nibble * q.
ivec2 tb_x8_split(int lo, int hi) {
    const int lo_a = bitfieldExtract(lo, 0, 16), hi_a = bitfieldExtract(hi, 0, 16);
    return ivec2(lo_a + hi_a, ((lo - lo_a) >> 16) + ((hi - hi_a) >> 16));
}

// The f16 scale of block j (byte offset o in its first texel) from its words.
float tb_x8_scale(uint w[8], uint o) { return unpackHalf2x16(w[o >> 2] >> ((o & 2u) * 8u)).x; }
