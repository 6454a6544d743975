/* Reference (scalar, obviously right) dequantize and quantize for every supported type.
 * n is the element count, a multiple of the type's block size. Bit-exact with ggml's layouts;
 * quantizers follow ggml's reference algorithms. */
#ifndef VKL_QUANT_H
#define VKL_QUANT_H

#include <stdint.h>

#define VKL_DECL_QUANT(stem)                                                        \
    void vkl_dequantize_row_##stem(const void *src, float *dst, int64_t n);         \
    void vkl_quantize_row_##stem(const float *src, void *dst, int64_t n);

VKL_DECL_QUANT(f32)
VKL_DECL_QUANT(f16)
VKL_DECL_QUANT(bf16)
VKL_DECL_QUANT(q4_0)
VKL_DECL_QUANT(q4_1)
VKL_DECL_QUANT(q5_0)
VKL_DECL_QUANT(q5_1)
VKL_DECL_QUANT(q8_0)
VKL_DECL_QUANT(q2_K)
VKL_DECL_QUANT(q3_K)
VKL_DECL_QUANT(q4_K)
VKL_DECL_QUANT(q5_K)
VKL_DECL_QUANT(q6_K)

#undef VKL_DECL_QUANT

#endif
