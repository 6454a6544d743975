/* Compute pipelines from the embedded SPIR-V, created on first use and cached by (shader name,
 * specialization constants). Every pipeline uses one descriptor set of `n_bindings` storage
 * buffers (bindings 0..n-1; those in `texel_mask` are uniform texel buffers instead) and
 * `push_size` bytes of push constants. */
#ifndef VKL_VK_PIPELINE_H
#define VKL_VK_PIPELINE_H

#include "vk_device.h"

#define VKL_VK_MAX_SPEC 8
#define VKL_VK_MAX_BINDINGS 8

typedef struct vkl_vk_pipeline {
    char name[64];
    uint32_t spec[VKL_VK_MAX_SPEC]; /* constant_id i = spec[i] */
    uint32_t n_spec;
    uint32_t n_bindings, push_size;
    uint32_t texel_mask; /* bit i: binding i is a uniform texel buffer */
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout layout;
    VkPipeline pipeline;
} vkl_vk_pipeline;

typedef struct vkl_vk_pipelines vkl_vk_pipelines;

vkl_vk_pipelines *vkl_vk_pipelines_create(vkl_vk_context *ctx, vkl_error *err);
void vkl_vk_pipelines_destroy(vkl_vk_pipelines *p);

/* The cached pipeline, or a new one. NULL with a message if the shader is not embedded or
 * creation fails. The pointer stays valid until vkl_vk_pipelines_destroy. */
const vkl_vk_pipeline *vkl_vk_pipeline_get(vkl_vk_pipelines *p, const char *name,
                                           uint32_t n_bindings, uint32_t push_size,
                                           const uint32_t *spec, uint32_t n_spec, vkl_error *err);
/* The same with the bindings in texel_mask (bit i: binding i) declared as uniform texel buffers. */
const vkl_vk_pipeline *vkl_vk_pipeline_get_tb(vkl_vk_pipelines *p, const char *name,
                                              uint32_t n_bindings, uint32_t texel_mask,
                                              uint32_t push_size, const uint32_t *spec,
                                              uint32_t n_spec, vkl_error *err);

/* Number of pipelines created so far. */
int vkl_vk_pipelines_count(const vkl_vk_pipelines *p);

#endif
