// Q4_0/Q8_0 blocks read through a uniform texel buffer of 16-byte texels (uvec4), for CPU Vulkan
// devices. llvmpipe (Mesa 22.3) turns every storage-buffer load into a loop over the 8 lanes with
// a scalar load and bounds check each, but a texel fetch into one 128-bit load per lane plus a
// transpose (about 50 instructions for 8 x 16 bytes, less than one 4-byte SSBO load costs). It
// also splits fma() into a multiply and an add, so after the loads the decode dominates: kept
// to one mask or shift and one conversion per element. Rows must start at 16-byte multiples (K % 256 == 0): a group
// of 8 blocks is then a whole number of texels (9 for Q4_0, 17 for Q8_0) and every byte position
// below is a compile-time constant once the loops are unrolled.
//
// Decoding without shifts: the 4-bit (or 8-bit) field at bit bp of a word w is w & (mask << bp),
// which converts to float exactly as value * 2^bp; the caller multiplies x by 2^-bp instead
// (tb_xscale), once per block for all rows. The field at bits 28..31 uses w >> 28 (no sign issue).
// Q4_0's -8 offset and Q8_0's sign (bytes are XORed with 0x80, i.e. stored as value + 128) become
// one correction per block: sum(q * x) = sum(u * x) - OFF * sum(x).
#if defined(TYPE_Q4_0)
#define TB_BLOCK_BYTES 18u
#define TB_GROUP_TEXELS 9u
#define TB_BLOCK_TEXELS 2u  // texels a block touches (bytes 14..31 at worst)
#define TB_OFF 8.0
#elif defined(TYPE_Q8_0)
#define TB_BLOCK_BYTES 34u
#define TB_GROUP_TEXELS 17u
#define TB_BLOCK_TEXELS 3u  // bytes 14..47 at worst
#define TB_OFF 128.0
#else
#error "tb_q.glsl: Q4_0 or Q8_0 only"
#endif
// Within a group, the last texel of block j is the first of block j + 1 (the shaders carry it).

// Byte of element e of block j, counted from the start of the block's first texel.
uint tb_byte(uint j, uint e) {
    const uint o = (TB_BLOCK_BYTES * j) & 15u;
#ifdef TYPE_Q4_0
    return o + 2u + (e & 15u);
#else
    return o + 2u + e;
#endif
}
// Bit position of element e of block j inside its 32-bit word.
uint tb_bit(uint j, uint e) {
#ifdef TYPE_Q4_0
    return 8u * (tb_byte(j, e) & 3u) + 4u * (e >> 4);
#else
    return 8u * (tb_byte(j, e) & 3u);
#endif
}
// Factor the x of element e of block j is multiplied by before tb_block_dot.
float tb_xscale(uint j, uint e) {
    const uint bp = tb_bit(j, e);
#ifdef TYPE_Q4_0
    return bp == 28u ? 1.0 : 1.0 / float(1u << bp);
#else
    return bp == 24u ? 1.0 : 1.0 / float(1u << bp);
#endif
}
// First texel of block j within its group of 8 blocks.
uint tb_first_texel(uint j) { return (TB_BLOCK_BYTES * j) >> 4; }

// The 32 x of block j from 8 texels at `first` of the f32 texel buffer xq, scaled by
// tb_xscale, and their plain sum.
void tb_load_x(usamplerBuffer xq, int first, uint j, out float xa[32], out float xsum) {
    vec4 s4 = vec4(0.0);
    [[unroll]] for (uint i = 0u; i < 8u; i++) {
        const vec4 v = uintBitsToFloat(texelFetch(xq, first + int(i)));
        s4 += v;
        [[unroll]] for (uint c = 0u; c < 4u; c++) xa[4u * i + c] = v[c] * tb_xscale(j, 4u * i + c);
    }
    xsum = (s4.x + s4.y) + (s4.z + s4.w);
}

// Block j given its texels t (t[0] = the block's first texel): q[e] = element e as stored
// (nibble, or byte + 128 for Q8_0) times 2^tb_bit, and the scale d.
void tb_block_decode(uint j, uvec4 t[TB_BLOCK_TEXELS], out float q[32], out float d) {
    uint w[4u * TB_BLOCK_TEXELS];
    [[unroll]] for (uint i = 0u; i < TB_BLOCK_TEXELS; i++) {
        w[4u * i] = t[i].x;
        w[4u * i + 1u] = t[i].y;
        w[4u * i + 2u] = t[i].z;
        w[4u * i + 3u] = t[i].w;
    }
    const uint o = (TB_BLOCK_BYTES * j) & 15u;
    d = unpackHalf2x16(w[o >> 2] >> ((o & 2u) * 8u)).x;
#ifdef TYPE_Q8_0
    [[unroll]] for (uint i = 0u; i < 4u * TB_BLOCK_TEXELS; i++) w[i] ^= 0x80808080u;
    const uint top = 24u, mask = 0xFFu;
#else
    const uint top = 28u, mask = 0xFu;
#endif
    [[unroll]] for (uint e = 0u; e < 32u; e++) {
        const uint wv = w[tb_byte(j, e) >> 2], bp = tb_bit(j, e);
        q[e] = float(int(bp == top ? wv >> top : wv & (mask << bp)));
    }
}

// d * sum(q * x) of a decoded block with x scaled by tb_xscale; xsum = the plain sum of the x.
float tb_dot(float q[32], float d, float xa[32], float xsum) {
    float s[4] = float[4](0.0, 0.0, 0.0, 0.0);
    [[unroll]] for (uint e = 0u; e < 32u; e++) s[e & 3u] = fma(q[e], xa[e], s[e & 3u]);
    return d * ((s[0] + s[1]) + (s[2] + s[3]) - TB_OFF * xsum);
}

float tb_block_dot(uint j, uvec4 t[TB_BLOCK_TEXELS], float xa[32], float xsum) {
    float q[32], d;
    tb_block_decode(j, t, q, d);
    return tb_dot(q, d, xa, xsum);
}
