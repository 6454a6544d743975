/* The offload planner: which device holds each layer's weights and KV cache, and the output head.
 *
 * Pure computation over numbers (no device is opened): the model's per-layer weight bytes, the KV
 * bytes per layer for the planned context, the scratch each device needs for a given placement
 * (a callback: the loader measures it with a dry run of the executor's memory planning), and per
 * device its memory budget, allocator granularity and predicted read bandwidth.
 *
 * Placement: device 0 is the CPU, devices 1..n_gpu the Vulkan devices in the order given. The
 * CPU holds layers [0, n_layer - n_gpu_layers) and the token embeddings (llama.cpp keeps them on
 * the host too: a lookup reads one row); the GPUs hold the last n_gpu_layers layers in consecutive
 * ranges, in order, split by proportions; the output head (output norm + matrix) goes to the last
 * GPU holding a layer when n_gpu_layers > n_layer (llama.cpp's -ngl meaning), else the CPU. A
 * layer's KV cache lives with the layer (or on the CPU with kv_on_cpu).
 *
 * Predicted device memory replays the Vulkan allocator: requests rounded to the alignment,
 * packed first-fit into blocks of block_size, requests larger than a block in a dedicated block of
 * their own size, plus the staging ring (a host-visible block) on non-UMA devices. */
#ifndef VKL_OFFLOAD_H
#define VKL_OFFLOAD_H

#include "backend.h"
#include "common.h"

#define VKL_OFFLOAD_MAX_GPU 7
#define VKL_OFFLOAD_MAX_DEV (VKL_OFFLOAD_MAX_GPU + 1)
#define VKL_OFFLOAD_ALIGN 256u /* planning alignment: the largest minStorageBufferOffsetAlignment */
#define VKL_OFFLOAD_STAGING ((uint64_t)32 << 20)

typedef struct vkl_offload_device {
    char name[64];
    vkl_device_kind kind;
    int index;          /* Vulkan device index (-1 for the CPU) */
    uint64_t budget;    /* bytes this plan may use (free memory, or --vram-budget); CPU: 0 = unlimited */
    bool user_budget;   /* budget came from --vram-budget */
    bool uma;
    uint64_t block_size; /* allocator block; 0 = vkl_offload_block_size(budget) */
    uint64_t max_alloc;
    double bw;          /* predicted read bandwidth, bytes/s (0 = heuristic by kind) */
} vkl_offload_device;

typedef struct vkl_offload_model {
    int n_layer;
    const uint64_t *layer_bytes; /* weight bytes of each layer (tensors aligned to VKL_OFFLOAD_ALIGN) */
    uint64_t embd_bytes;         /* token embeddings (always on the CPU) */
    uint64_t head_bytes;         /* output norm + output matrix (a copy when tied) */
    uint64_t kv_layer_bytes;     /* K + V of one layer for n_ctx positions */
    uint64_t act_bytes;          /* one token's activations crossing a boundary (n_embd floats) */
    uint64_t logits_bytes;       /* one row of logits (n_vocab floats) */
    int n_ctx, n_batch;
} vkl_offload_model;

typedef struct vkl_offload_request {
    int n_gpu_layers;   /* -1: auto-fit; else llama.cpp's -ngl (clamped to what fits, with a note) */
    bool kv_on_cpu;
    float tensor_split[VKL_OFFLOAD_MAX_GPU]; /* proportions per GPU; all 0 = by free budget */
    double margin_frac; /* auto-fit keeps this fraction of each budget free (default 0.05) */
    uint64_t margin_bytes; /* ... plus this much (default 64 MiB) */
} vkl_offload_request;

/* Per device of a placement. */
typedef struct vkl_offload_use {
    int first_layer, n_layers; /* its layer range */
    bool head;
    uint64_t weights, kv, scratch, staging;
    uint64_t predicted; /* device memory reserved after load + context creation (GPUs) */
    double read_s;      /* predicted seconds per token reading its weights and KV */
} vkl_offload_use;

typedef struct vkl_offload_plan {
    int n_dev; /* 1 + GPUs */
    vkl_offload_device dev[VKL_OFFLOAD_MAX_DEV];
    vkl_offload_use use[VKL_OFFLOAD_MAX_DEV];
    int n_layer;
    int n_gpu_layers;  /* as -ngl: > n_layer means the head too */
    int ngl_asked;     /* the -ngl requested (-1: auto-fit); n_gpu_layers may be fewer */
    bool kv_on_cpu, auto_fit;
    int n_boundaries;  /* device changes per token (embeddings -> layers -> head -> host) */
    double token_s;    /* predicted seconds per generated token */
    double cpu_only_s; /* the same for the CPU-only split */
    int n_fitting;     /* auto-fit: candidate splits that fit */
    char note[512];    /* why this split (clamped, too small, lavapipe slower than the CPU, ...) */
    vkl_offload_model model; /* layer_bytes not owned */
} vkl_offload_plan;

/* Scratch bytes per device (dev[0] = CPU) for the placement in plan (use[].first_layer, n_layers,
 * head, kv_on_cpu are set). Returns 0 or -1 with err. */
typedef int (*vkl_offload_scratch_fn)(void *user, const vkl_offload_plan *plan, uint64_t *scratch, vkl_error *err);

/* Default request: -ngl 0, margin 5% + 64 MiB. */
vkl_offload_request vkl_offload_default_request(void);
/* Heuristic read bandwidth of a device kind, bytes/s (env VKLLM_GPU_BW_GBPS overrides for GPUs,
 * VKLLM_CPU_BW_GBPS for the CPU). */
double vkl_offload_default_bw(vkl_device_kind kind);
/* The allocator block size the loader uses for a budget: 1/64 of it, 1 MiB..256 MiB. */
uint64_t vkl_offload_block_size(uint64_t budget);
/* Layers [first, end) of one weight buffer starting at layer first: as many as fit in cap bytes
 * (at least one). The loader and the prediction group layers the same way. */
int vkl_offload_chunk_end(const vkl_offload_model *m, int first, int end, uint64_t cap);
/* The weight-buffer cap for a device: min(max_alloc, 1 GiB). */
uint64_t vkl_offload_chunk_cap(const vkl_offload_device *d);

/* Computes the plan. devs[0] must be the CPU. */
int vkl_offload_plan_compute(const vkl_offload_model *m, const vkl_offload_device *devs, int n_dev,
                             const vkl_offload_request *req, vkl_offload_scratch_fn scratch, void *user,
                             vkl_offload_plan *out, vkl_error *err);
/* Device of layer l (0 = CPU, 1.. = GPUs). */
int vkl_offload_layer_device(const vkl_offload_plan *p, int l);
/* The plan as a table (several lines, '\n'-terminated) into buf; returns the length it needed. */
size_t vkl_offload_describe(const vkl_offload_plan *p, char *buf, size_t size);

#endif
