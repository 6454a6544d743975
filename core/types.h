/* Tensor element types and GGUF/ggml quant formats (bit-exact block layouts). */
#ifndef VKL_TYPES_H
#define VKL_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Type ids as stored in GGUF tensor infos (ggml_type). */
typedef enum vkl_type {
    VKL_TYPE_F32 = 0,
    VKL_TYPE_F16 = 1,
    VKL_TYPE_Q4_0 = 2,
    VKL_TYPE_Q4_1 = 3,
    /* 4, 5: removed Q4_2 / Q4_3 */
    VKL_TYPE_Q5_0 = 6,
    VKL_TYPE_Q5_1 = 7,
    VKL_TYPE_Q8_0 = 8,
    VKL_TYPE_Q8_1 = 9,
    VKL_TYPE_Q2_K = 10,
    VKL_TYPE_Q3_K = 11,
    VKL_TYPE_Q4_K = 12,
    VKL_TYPE_Q5_K = 13,
    VKL_TYPE_Q6_K = 14,
    VKL_TYPE_Q8_K = 15,
    VKL_TYPE_BF16 = 30,
    VKL_TYPE_COUNT = 40 /* upper bound for table sizes; not a type */
} vkl_type;

#define VKL_QK_K 256 /* super-block size of the K-quants */

/* Converts `n` values (a multiple of the block size) of a row. */
typedef void (*vkl_to_f32_fn)(const void *src, float *dst, int64_t n);
typedef void (*vkl_from_f32_fn)(const float *src, void *dst, int64_t n);

typedef struct vkl_type_traits {
    const char *name;    /* "q4_0", as ggml names it */
    int64_t block_size;  /* elements per block (1 for float types) */
    size_t type_size;    /* bytes per block */
    bool is_quantized;
    vkl_to_f32_fn to_f32;     /* reference dequantize */
    vkl_from_f32_fn from_f32; /* reference quantize */
} vkl_type_traits;

/* NULL for an unknown or unsupported type id (e.g. one read from a file). */
const vkl_type_traits *vkl_type_get(int type);
/* Name for any id, "unknown" if not known. */
const char *vkl_type_name(int type);
/* Parses "q4_0", "Q4_K", "f16"... (case-insensitive); -1 if unknown. Also accepts "q4_k_m" style names as Q4_K. */
int vkl_type_from_name(const char *name);
/* Bytes of a row of ne0 elements; ne0 must be a multiple of the block size. */
size_t vkl_row_size(vkl_type type, int64_t ne0);
/* Number of supported types and the i-th (for tests that iterate over all types). */
int vkl_type_supported_count(void);
vkl_type vkl_type_supported_at(int i);

/* IEEE half and bfloat16 conversion (round to nearest even). */
float vkl_f16_to_f32(uint16_t h);
uint16_t vkl_f32_to_f16(float f);
float vkl_bf16_to_f32(uint16_t h);
uint16_t vkl_f32_to_bf16(float f);

/* Block layouts (identical to ggml's, static-asserted in types.c). */
typedef uint16_t vkl_half;

#define VKL_QK4_0 32
typedef struct { vkl_half d; uint8_t qs[VKL_QK4_0 / 2]; } vkl_block_q4_0;
#define VKL_QK4_1 32
typedef struct { vkl_half d, m; uint8_t qs[VKL_QK4_1 / 2]; } vkl_block_q4_1;
#define VKL_QK5_0 32
typedef struct { vkl_half d; uint8_t qh[4]; uint8_t qs[VKL_QK5_0 / 2]; } vkl_block_q5_0;
#define VKL_QK5_1 32
typedef struct { vkl_half d, m; uint8_t qh[4]; uint8_t qs[VKL_QK5_1 / 2]; } vkl_block_q5_1;
#define VKL_QK8_0 32
typedef struct { vkl_half d; int8_t qs[VKL_QK8_0]; } vkl_block_q8_0;
#define VKL_QK8_1 32
typedef struct { vkl_half d, s; int8_t qs[VKL_QK8_1]; } vkl_block_q8_1;

#define VKL_K_SCALE_SIZE 12
typedef struct { uint8_t scales[VKL_QK_K / 16]; uint8_t qs[VKL_QK_K / 4]; vkl_half d, dmin; } vkl_block_q2_K;
typedef struct { uint8_t hmask[VKL_QK_K / 8]; uint8_t qs[VKL_QK_K / 4]; uint8_t scales[12]; vkl_half d; } vkl_block_q3_K;
typedef struct { vkl_half d, dmin; uint8_t scales[VKL_K_SCALE_SIZE]; uint8_t qs[VKL_QK_K / 2]; } vkl_block_q4_K;
typedef struct { vkl_half d, dmin; uint8_t scales[VKL_K_SCALE_SIZE]; uint8_t qh[VKL_QK_K / 8]; uint8_t qs[VKL_QK_K / 2]; } vkl_block_q5_K;
typedef struct { uint8_t ql[VKL_QK_K / 2]; uint8_t qh[VKL_QK_K / 4]; int8_t scales[VKL_QK_K / 16]; vkl_half d; } vkl_block_q6_K;
typedef struct { float d; int8_t qs[VKL_QK_K]; int16_t bsums[VKL_QK_K / 16]; } vkl_block_q8_K;

#endif
