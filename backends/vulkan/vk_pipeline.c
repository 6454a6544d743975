/* Pipeline cache; see vk_pipeline.h. */
#include "vk_pipeline.h"

#include <stdlib.h>
#include <string.h>

#define PIPELINES_PER_CHUNK 64

/* Pipelines live in fixed chunks so pointers handed out stay valid while the cache grows. */
typedef struct pipeline_chunk {
    vkl_vk_pipeline items[PIPELINES_PER_CHUNK];
    int n;
    struct pipeline_chunk *next;
} pipeline_chunk;

struct vkl_vk_pipelines {
    vkl_vk_context *ctx;
    VkPipelineCache cache;
    pipeline_chunk *chunks;
    int count;
};

vkl_vk_pipelines *vkl_vk_pipelines_create(vkl_vk_context *ctx, vkl_error *err) {
    vkl_vk_pipelines *p = vkl_calloc(1, sizeof *p, err);
    if (!p) return NULL;
    p->ctx = ctx;
    VkPipelineCacheCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
    if (vkCreatePipelineCache(ctx->device, &ci, NULL, &p->cache) != VK_SUCCESS)
        p->cache = VK_NULL_HANDLE; /* optional */
    return p;
}

static void pipeline_release(VkDevice dev, vkl_vk_pipeline *pl) {
    if (pl->pipeline) vkDestroyPipeline(dev, pl->pipeline, NULL);
    if (pl->layout) vkDestroyPipelineLayout(dev, pl->layout, NULL);
    if (pl->set_layout) vkDestroyDescriptorSetLayout(dev, pl->set_layout, NULL);
    memset(pl, 0, sizeof *pl);
}

void vkl_vk_pipelines_destroy(vkl_vk_pipelines *p) {
    if (!p) return;
    VkDevice dev = p->ctx->device;
    for (pipeline_chunk *c = p->chunks, *next; c; c = next) {
        next = c->next;
        for (int i = 0; i < c->n; i++) pipeline_release(dev, &c->items[i]);
        free(c);
    }
    if (p->cache) vkDestroyPipelineCache(dev, p->cache, NULL);
    free(p);
}

int vkl_vk_pipelines_count(const vkl_vk_pipelines *p) { return p->count; }

static bool same_key(const vkl_vk_pipeline *pl, const char *name, const uint32_t *spec,
                     uint32_t n_spec) {
    return pl->n_spec == n_spec && !strcmp(pl->name, name) &&
           (n_spec == 0 || !memcmp(pl->spec, spec, n_spec * sizeof *spec));
}

const vkl_vk_pipeline *vkl_vk_pipeline_get(vkl_vk_pipelines *p, const char *name,
                                           uint32_t n_bindings, uint32_t push_size,
                                           const uint32_t *spec, uint32_t n_spec, vkl_error *err) {
    return vkl_vk_pipeline_get_tb(p, name, n_bindings, 0, push_size, spec, n_spec, err);
}

const vkl_vk_pipeline *vkl_vk_pipeline_get_tb(vkl_vk_pipelines *p, const char *name,
                                              uint32_t n_bindings, uint32_t texel_mask,
                                              uint32_t push_size, const uint32_t *spec,
                                              uint32_t n_spec, vkl_error *err) {
    for (pipeline_chunk *c = p->chunks; c; c = c->next)
        for (int i = 0; i < c->n; i++)
            if (same_key(&c->items[i], name, spec, n_spec)) {
                if (c->items[i].n_bindings != n_bindings || c->items[i].push_size != push_size ||
                    c->items[i].texel_mask != texel_mask) {
                    vkl_fail(err, "pipeline %s requested with a different interface", name);
                    return NULL;
                }
                return &c->items[i];
            }
    if (strlen(name) >= sizeof(((vkl_vk_pipeline *)0)->name) || n_spec > VKL_VK_MAX_SPEC ||
        n_bindings > VKL_VK_MAX_BINDINGS) {
        vkl_fail(err, "pipeline %s: name, bindings or specialization constants out of range", name);
        return NULL;
    }
    const vkl_spirv_blob *blob = vkl_spirv_find(name);
    if (!blob) {
        vkl_fail(err, "shader %s is not embedded in this build", name);
        return NULL;
    }
    if (!p->chunks || p->chunks->n == PIPELINES_PER_CHUNK) {
        pipeline_chunk *c = vkl_calloc(1, sizeof *c, err);
        if (!c) return NULL;
        c->next = p->chunks;
        p->chunks = c;
    }
    vkl_vk_pipeline *pl = &p->chunks->items[p->chunks->n];
    memset(pl, 0, sizeof *pl);
    strcpy(pl->name, name);
    if (n_spec) memcpy(pl->spec, spec, n_spec * sizeof *spec);
    pl->n_spec = n_spec;
    pl->n_bindings = n_bindings;
    pl->push_size = push_size;
    pl->texel_mask = texel_mask;

    VkDevice dev = p->ctx->device;
    VkShaderModule module = VK_NULL_HANDLE;
    VkDescriptorSetLayoutBinding b[VKL_VK_MAX_BINDINGS];
    for (uint32_t i = 0; i < n_bindings; i++)
        b[i] = (VkDescriptorSetLayoutBinding){.binding = i,
                                              .descriptorType = (texel_mask >> i) & 1u ? VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER
                                                                : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                              .descriptorCount = 1,
                                              .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VkDescriptorSetLayoutCreateInfo dsl = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                           .bindingCount = n_bindings,
                                           .pBindings = b};
    VkResult r = vkCreateDescriptorSetLayout(dev, &dsl, NULL, &pl->set_layout);
    if (r != VK_SUCCESS) goto fail;
    VkPushConstantRange pcr = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = push_size};
    VkPipelineLayoutCreateInfo pli = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                      .setLayoutCount = 1,
                                      .pSetLayouts = &pl->set_layout,
                                      .pushConstantRangeCount = push_size ? 1 : 0,
                                      .pPushConstantRanges = &pcr};
    if ((r = vkCreatePipelineLayout(dev, &pli, NULL, &pl->layout)) != VK_SUCCESS) goto fail;
    VkShaderModuleCreateInfo smi = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                    .codeSize = blob->size,
                                    .pCode = blob->words};
    if ((r = vkCreateShaderModule(dev, &smi, NULL, &module)) != VK_SUCCESS) goto fail;
    VkSpecializationMapEntry entries[VKL_VK_MAX_SPEC];
    for (uint32_t i = 0; i < n_spec; i++)
        entries[i] = (VkSpecializationMapEntry){.constantID = i,
                                                .offset = i * (uint32_t)sizeof(uint32_t),
                                                .size = sizeof(uint32_t)};
    VkSpecializationInfo si = {.mapEntryCount = n_spec,
                               .pMapEntries = entries,
                               .dataSize = n_spec * sizeof(uint32_t),
                               .pData = pl->spec};
    VkComputePipelineCreateInfo cpi = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                  .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = module,
                  .pName = "main",
                  .pSpecializationInfo = n_spec ? &si : NULL},
        .layout = pl->layout};
    r = vkCreateComputePipelines(dev, p->cache, 1, &cpi, NULL, &pl->pipeline);
    vkDestroyShaderModule(dev, module, NULL);
    module = VK_NULL_HANDLE;
    if (r != VK_SUCCESS) goto fail;
    p->chunks->n++;
    p->count++;
    return pl;
fail:
    if (module) vkDestroyShaderModule(dev, module, NULL);
    pipeline_release(dev, pl);
    vkl_fail(err, "creating pipeline %s failed: %s", name, vkl_vk_result_name(r));
    return NULL;
}
