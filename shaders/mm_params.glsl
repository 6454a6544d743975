// Push constants shared by mul_mat_vec.comp and mul_mat.comp (vk_ops.c: mm_push).
layout(push_constant) uniform MMParams {
    uint M;          // rows in this dispatch
    uint K;          // row length (multiple of the block size, and of 8 for float types)
    uint N;          // tokens
    uint w_off;      // byte offset of the first row in the weight binding (even; 4-aligned for most types)
    uint row_bytes;  // bytes per weight row
    uint x_off;      // float offset of x in its binding (multiple of 4)
    uint y_off;      // float offset of y(t = 0, first row of this dispatch)
    uint y_stride;   // floats between consecutive tokens of y (the full M)
} p;
