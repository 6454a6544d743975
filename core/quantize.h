/* Model quantization as llama.cpp's llama-quantize does it: each tensor's target type chosen by the
 * same rules (the mixture's defaults, the output head, attn_v and ffn_down by layer, fallbacks for
 * rows that the type's block does not divide), each tensor quantized with the reference quantizers
 * of core/quant.c, so that the output from an F16/F32 master is byte-identical to llama-quantize's.
 * Streams one tensor at a time (memory about the largest output tensor plus small per-thread
 * buffers) and writes OUT.tmp, renamed to OUT on success. */
#ifndef VKL_QUANTIZE_H
#define VKL_QUANTIZE_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "gguf.h"
#include "types.h"

/* A file type as llama-quantize names it: a plain type or a K-quant mixture. */
typedef struct vkl_ftype_info {
    const char *name;  /* "Q4_K_M" */
    uint32_t ftype;    /* llama_ftype, written as general.file_type */
    vkl_type type;     /* the type most matrices get */
} vkl_ftype_info;

/* Looks up a name (case-insensitive; "Q4_K" means Q4_K_M as in llama-quantize); NULL if unknown. */
const vkl_ftype_info *vkl_ftype_from_name(const char *name);
/* The i-th known file type (NULL past the end), for help texts and tests. */
const vkl_ftype_info *vkl_ftype_at(int i);

typedef struct vkl_quantize_params {
    const vkl_ftype_info *ftype;
    int output_type;       /* --output-tensor-type: a vkl_type, or -1 for the mixture's choice */
    int token_embd_type;   /* --token-embedding-type: a vkl_type, or -1 */
    bool pure;             /* every quantizable tensor gets ftype->type (apart from the two above) */
    bool allow_requantize; /* accept quantized input tensors (dequantized first: lossy) */
    bool leave_output;     /* keep output.weight as it is */
    int n_threads;         /* 0: one per online CPU */
    /* Optional: called before each tensor is converted and once at the end (index == n_tensors). */
    void (*progress)(void *ud, int index, int n_tensors, const char *name, vkl_type from, vkl_type to,
                     uint64_t done_bytes, uint64_t total_bytes);
    void *ud;
} vkl_quantize_params;

void vkl_quantize_params_init(vkl_quantize_params *p, const vkl_ftype_info *ftype);

/* The type each tensor of `in` gets (types[i] for in->tensors[i]); -1 with a one-line message when
 * a tensor cannot be converted (a quantized tensor without allow_requantize, no fallback type). */
int vkl_quantize_choose_types(const gguf_file *in, const vkl_quantize_params *p, vkl_type *types, vkl_error *err);

/* Quantizes in_path into out_path. On failure nothing is left at out_path (nor out_path.tmp). */
int vkl_quantize_file(const char *in_path, const char *out_path, const vkl_quantize_params *p, vkl_error *err);

#endif
