/* AVX2 + FMA + F16C kernels (per-function target attributes: the build uses no -march). */
#if defined(__x86_64__) || defined(__i386__)

#define TGT __attribute__((target("avx2,fma,f16c")))
#define FN(name) name##_avx2
#define DOT_U8S8(u, s) _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
#include "cpu/matmul_x86_impl.h"

void vkl_gemm_fill_avx2(vkl_kernel_set *ks) {
    fill_common_avx2(ks);
    vkl_mm_fill_avx2(ks, 0); /* the avxvnni level (matmul.c) adds the VNNI batch kernels */
}

#else
#include "cpu/matmul_internal.h"
void vkl_gemm_fill_avx2(vkl_kernel_set *ks) { (void)ks; }
#endif
