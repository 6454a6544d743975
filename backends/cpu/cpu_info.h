/* What the host CPU is: model, core counts, SIMD level, RAM. Used by `vkllm devices` (through
 * vkl_cpu_backend_reg.enumerate) and to pick default thread counts. */
#ifndef VKL_CPU_INFO_H
#define VKL_CPU_INFO_H

#include <stdint.h>

typedef enum vkl_cpu_simd {
    VKL_SIMD_SCALAR,
    VKL_SIMD_NEON,
    VKL_SIMD_SSE42,
    VKL_SIMD_AVX,
    VKL_SIMD_AVX2,   /* AVX2 + FMA */
    VKL_SIMD_AVX512, /* AVX-512F (with AVX2 + FMA) */
} vkl_cpu_simd;

typedef struct vkl_cpu_info {
    char model[256];
    int logical_cores;  /* online logical CPUs */
    int physical_cores; /* unique (package, core) pairs; logical_cores when unknown */
    vkl_cpu_simd simd;
    uint64_t ram_total;     /* bytes */
    uint64_t ram_available; /* bytes (MemAvailable), best estimate */
} vkl_cpu_info;

/* Never fails: fields that cannot be read get fallbacks ("unknown CPU", 1 core, 0 bytes). */
void vkl_cpu_info_get(vkl_cpu_info *out);

/* The best SIMD level of this machine (what vkl_cpu_info_get reports). */
vkl_cpu_simd vkl_cpu_detect_simd(void);
/* "avx512", "avx2", "avx", "sse4.2", "neon", "scalar". */
const char *vkl_cpu_simd_name(vkl_cpu_simd s);

#endif
