/* Internal interface between the matmul driver (matmul.c) and its per-ISA kernels
 * (matmul_scalar.c, matmul_avx2.c, matmul_avx512.c). */
#ifndef VKL_MATMUL_INTERNAL_H
#define VKL_MATMUL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "types.h"

/* Activation formats a kernel consumes; the driver converts x once per call. */
typedef enum vkl_act_format {
    VKL_ACT_F32 = 0, /* x as given: K floats per row */
    VKL_ACT_Q8_32,   /* blocks of 32: float d[nb]; float s[nb] (d * sum of q); int8 q[nb * 32] */
    VKL_ACT_Q8_K,    /* vkl_block_q8_K[K / 256] (d, q, sums of 16) */
    VKL_ACT_Q8_32G,  /* as Q8_32, but within each full group of 4 blocks the quants are stored as
                        the first halves (elements 0-15) of the 4 blocks, then the second halves;
                        blocks past the last full group keep element order */
} vkl_act_format;

/* The most tokens a gemm kernel is handed at once (the driver tiles N). */
#define VKL_GEMM_MAX_T 64

/* y[t * ys + r] = dot(weight row r, activation row t) for r < nr, t < nt (nt <= VKL_GEMM_MAX_T).
 * Weight rows are ws bytes apart, activation rows xs bytes apart (in the kernel's act format). */
typedef void (*vkl_gemm_fn)(int64_t K, const void *W, size_t ws, int64_t nr, const void *X, size_t xs,
                            int64_t nt, float *y, int64_t ys);

typedef struct vkl_gemm_kernel {
    vkl_gemm_fn fn;
    vkl_act_format act;
} vkl_gemm_kernel;

typedef void (*vkl_act_quant_fn)(const float *x, void *dst, int64_t K);

/* Everything one SIMD level provides. */
typedef struct vkl_kernel_set {
    vkl_gemm_kernel k[VKL_TYPE_COUNT]; /* index: vkl_type */
    /* Batch kernels (fn NULL where absent), used from mm_min_n[type] tokens on: any number of
     * rows and tokens per call; the driver hands them VKL_MM_ROWS rows at a time. */
    vkl_gemm_kernel mm[VKL_TYPE_COUNT];
    int mm_min_n[VKL_TYPE_COUNT]; /* below it k[type] is faster (it reads the weights per few tokens
                                     but does not repack them) */
    vkl_act_quant_fn quant_q8_32, quant_q8_K, quant_q8_32g; /* quant_q8_32g may be NULL */
} vkl_kernel_set;

#define VKL_MM_ROWS 64

/* Each fills the entries it implements and leaves the others untouched. */
void vkl_gemm_fill_scalar(vkl_kernel_set *ks);
void vkl_gemm_fill_avx2(vkl_kernel_set *ks);
void vkl_gemm_fill_avx512(vkl_kernel_set *ks);
void vkl_mm_fill_avx512(vkl_kernel_set *ks);
/* AVX2 batch kernels (matmul_avx2_mm.c): with AVX-VNNI's vpdpbusd (vnni = 1; only where
 * vkl_cpu_has_avxvnni()) or with vpmaddubsw */
void vkl_mm_fill_avx2(vkl_kernel_set *ks, int vnni);
int vkl_cpu_has_avxvnni(void);

/* Activation quantizers (portable); one row of K values. */
size_t vkl_act_row_size(vkl_act_format f, int64_t K);
void vkl_quantize_act_q8_32(const float *x, void *dst, int64_t K);
void vkl_quantize_act_q8_K(const float *x, void *dst, int64_t K);

#endif
