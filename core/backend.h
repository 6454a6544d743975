/* The backend interface. The core talks to backends only through this header; each backend
 * (backends/cpu, backends/vulkan) defines one `vkl_backend_reg`, and backends/registry.c lists them
 * (vkl_backend_registry, at the bottom). */
#ifndef VKL_BACKEND_H
#define VKL_BACKEND_H

#include "common.h"

typedef enum vkl_device_kind {
    VKL_DEV_CPU,
    VKL_DEV_DISCRETE_GPU,
    VKL_DEV_INTEGRATED_GPU,
    VKL_DEV_VIRTUAL_GPU,
    VKL_DEV_SOFTWARE, /* e.g. lavapipe */
    VKL_DEV_OTHER
} vkl_device_kind;

const char *vkl_device_kind_name(vkl_device_kind k);

typedef struct vkl_device_info {
    char backend[16];  /* "cpu", "vulkan" */
    int index;         /* index within its backend (what --device N selects) */
    char name[256];
    vkl_device_kind kind;
    uint64_t mem_total; /* bytes usable for weights etc. (device-local heap, or host RAM for CPU) */
    uint64_t mem_free;  /* best estimate of free bytes (VK_EXT_memory_budget where available) */
    uint64_t max_alloc; /* largest single allocation */
    bool uma;           /* memory shared with the host */
    char details[2048]; /* multi-line human-readable details for `vkllm devices` */
} vkl_device_info;

/* ---- Execution interface ------------------------------------------------------------------
 * A backend instance (one device) allocates buffers, moves bytes in and out of them, and executes
 * runs of consecutive graph nodes that it said it supports. The executor (core/executor.c) owns the
 * graph split and the activation memory plan; a backend never sees the model. */
typedef struct vkl_backend vkl_backend;
typedef struct vkl_tensor vkl_tensor; /* core/graph.h */
typedef struct vkl_graph vkl_graph;   /* core/graph.h */

/* A device allocation. `host` is non-NULL when the bytes are directly addressable by the CPU
 * (CPU backend, UMA devices with mapped memory); then tensors placed in it get `data` pointers. */
typedef struct vkl_buffer {
    vkl_backend *backend;
    size_t size;
    void *host;
    void *impl; /* backend-private (e.g. VkBuffer + memory) */
} vkl_buffer;

typedef struct vkl_backend_config {
    int n_threads;  /* CPU worker threads (>= 1; 0 = let the backend choose) */
    bool reference; /* CPU: run the scalar reference kernels (the oracle) instead of the fast ones */
    bool profile;   /* accumulate time per op kind (see op_profile) */
    uint64_t mem_block_size; /* Vulkan: bytes per device-memory block (0 = 256 MiB); the offload plan's */
} vkl_backend_config;

typedef struct vkl_backend_ops {
    void (*close)(vkl_backend *be);
    vkl_buffer *(*buffer_alloc)(vkl_backend *be, size_t size, vkl_error *err);
    void (*buffer_free)(vkl_backend *be, vkl_buffer *buf);
    /* Host <-> device transfers; synchronous (they return when the bytes have arrived). */
    int (*upload)(vkl_backend *be, vkl_buffer *dst, size_t offset, const void *src, size_t n, vkl_error *err);
    int (*download)(vkl_backend *be, const vkl_buffer *src, size_t offset, void *dst, size_t n, vkl_error *err);
    /* Whether the backend can run this node with its sources' types and shapes. */
    bool (*supports)(vkl_backend *be, const vkl_tensor *node);
    /* Called once after the executor planned a graph (not per token): a backend sizes its work
     * memory, builds pipelines, etc. for nodes[first .. first+count). */
    int (*prepare)(vkl_backend *be, const vkl_graph *g, int first, int count, vkl_error *err);
    /* Executes nodes[first .. first+count) in order; may return before the work is done. */
    int (*execute)(vkl_backend *be, const vkl_graph *g, int first, int count, vkl_error *err);
    /* Waits until all submitted work has finished. */
    int (*synchronize)(vkl_backend *be, vkl_error *err);
    /* Optional (may be NULL): per op kind (vkl_op, VKL_OP_COUNT entries) the seconds spent and the
     * nodes executed since open or the last reset, when opened with cfg->profile. */
    void (*op_profile)(vkl_backend *be, double *seconds, uint64_t *calls, bool reset);
    /* Optional (may be NULL): bytes of device memory this backend holds now (weights, KV caches,
     * scratch arenas, staging), as the offload plan predicts it. */
    uint64_t (*mem_used)(vkl_backend *be);
    /* Optional (may be NULL): measures the device's memory read bandwidth (bytes/s) by streaming
     * a buffer of about `bytes` bytes a few times; used by bench for the roofline. */
    int (*read_bandwidth)(vkl_backend *be, size_t bytes, double *bytes_per_s, vkl_error *err);
} vkl_backend_ops;

struct vkl_backend {
    const vkl_backend_ops *ops;
    vkl_device_info info;
    size_t alignment; /* preferred offset alignment inside buffers */
    int n_threads;    /* CPU worker threads in use (0 for other devices) */
    void *impl;
};

typedef struct vkl_backend_reg {
    const char *name;
    /* Fills up to `max` entries; returns the number of devices (>= 0), or -1 with a one-line
     * message when the backend is unusable here (e.g. "no Vulkan loader found"). */
    int (*enumerate)(vkl_device_info *out, int max, vkl_error *err);
    /* Opens device `index` for execution; NULL with a message. NULL pointer: not executable yet. */
    vkl_backend *(*open)(int index, const vkl_backend_config *cfg, vkl_error *err);
} vkl_backend_reg;

/* Convenience wrappers over be->ops. */
static inline void vkl_backend_close(vkl_backend *be) {
    if (be) be->ops->close(be);
}

/* What a registered backend is for. The host backend runs every op and holds what no device takes
 * (the offload plan's device 0); offload backends hold layers (the plan's GPUs). */
typedef enum vkl_backend_role { VKL_BACKEND_HOST, VKL_BACKEND_OFFLOAD } vkl_backend_role;

typedef struct vkl_backend_entry {
    const vkl_backend_reg *reg; /* NULL ends the list */
    vkl_backend_role role;
} vkl_backend_entry;

/* The backends built in, in order of preference (backends/registry.c: the only place that names
 * them; a new backend is its folder plus one line there). */
extern const vkl_backend_entry vkl_backend_registry[];

/* The first registered host backend (never NULL in a working build). */
const vkl_backend_reg *vkl_backend_host(void);
/* The offload backend to use: the first registered one that reports a device, else the first one
 * (so that its enumerate explains why there is none); NULL when the build has none. */
const vkl_backend_reg *vkl_backend_offload(void);

#endif
