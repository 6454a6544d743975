/* Synthetic models: LLaMA-architecture GGUF files with deterministic random weights at real shapes
 * (for tests and benchmarks of models we cannot ship). Written one tensor at a time, so memory
 * stays around the size of the largest tensor. */
#ifndef VKL_SYNTH_H
#define VKL_SYNTH_H

#include <stdint.h>

#include "common.h"
#include "types.h"

typedef struct vkl_synth_config {
    int64_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
    int64_t n_vocab;        /* 0: the vocab file's size, or 32000 for the built-in vocabulary */
    float rope_base, rms_eps;
    vkl_type type;          /* type of the weight matrices (norms are always F32) */
    uint64_t seed;
    const char *name;       /* general.name; NULL gives "vkllm-synth" */
    const char *vocab_path; /* copy tokenizer.* from this GGUF; NULL: built-in byte-level vocab */
    int n_threads;          /* 0: one per online CPU */
    /* Optional callbacks: notes (e.g. a tensor that falls back to another type) and progress
     * after each tensor (done/total in bytes of tensor data). */
    void (*note)(void *ud, const char *msg);
    void (*progress)(void *ud, int tensor_index, int n_tensors, const char *tensor, uint64_t done_bytes,
                     uint64_t total_bytes);
    void *ud;
} vkl_synth_config;

/* Defaults: the "tiny" preset, Q8_0, seed 1, rope base 10000, rms eps 1e-5. */
void vkl_synth_defaults(vkl_synth_config *cfg);
/* Sets the shape of a preset ("tiny", "1b", "7b", "13b"); -1 if unknown. */
int vkl_synth_preset(vkl_synth_config *cfg, const char *preset);
/* Checks dimensions and type; -1 with a one-line message. */
int vkl_synth_validate(const vkl_synth_config *cfg, vkl_error *err);
/* The type a weight matrix with rows of ne0 elements is stored in: cfg->type, or Q8_0/F16 when
 * ne0 is not a multiple of the type's block size. */
vkl_type vkl_synth_tensor_type(vkl_type wanted, int64_t ne0);
/* llama.cpp's general.file_type (llama_ftype) for a model whose matrices are mostly `type`. */
uint32_t vkl_synth_file_type(vkl_type type);
/* Writes the model (atomically: a partial file is removed on failure). */
int vkl_synth_write(const char *path, const vkl_synth_config *cfg, vkl_error *err);

#endif
