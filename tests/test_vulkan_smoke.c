/* Vulkan smoke test: context on device 0, the embedded `fill` shader dispatched over an odd size,
 * read back and checked; no validation message may appear. Skips (77) without a Vulkan device,
 * except under CI (env CI), which installs lavapipe. */
#include <stdint.h>

#include "test.h"
#include "vulkan/vk_device.h"

#define N_FILL 1000u   /* elements the shader writes: not a multiple of the workgroup size */
#define N_BUF 1024u    /* elements in the buffer: the tail must stay untouched */
#define SENTINEL -1.0f
#define FILL_VALUE 3.25f

#define VK_CHECK(call)                                                                 \
    do {                                                                               \
        VkResult r_ = (call);                                                          \
        CHECK(r_ == VK_SUCCESS, "%s -> %s", #call, vkl_vk_result_name(r_));            \
        if (r_ != VK_SUCCESS) goto done;                                               \
    } while (0)

static int run_fill(vkl_vk_context *ctx) {
    VkDevice dev = ctx->device;
    VkBuffer buf = VK_NULL_HANDLE;
    VkDeviceMemory mem = VK_NULL_HANDLE;
    VkShaderModule shader = VK_NULL_HANDLE;
    VkDescriptorSetLayout dsl = VK_NULL_HANDLE;
    VkPipelineLayout layout = VK_NULL_HANDLE;
    VkPipeline pipeline = VK_NULL_HANDLE;
    VkDescriptorPool pool = VK_NULL_HANDLE;
    VkCommandPool cmd_pool = VK_NULL_HANDLE;
    VkFence fence = VK_NULL_HANDLE;
    float *host = NULL;

    const vkl_spirv_blob *spv = vkl_spirv_find("fill");
    CHECK(spv != NULL, "embedded SPIR-V 'fill' not found");
    if (!spv) return -1;
    CHECK(spv->size % 4 == 0 && spv->size > 20 && spv->words[0] == 0x07230203u,
          "'fill' is not SPIR-V (size %zu)", spv->size);
    CHECK(vkl_spirv_find("no-such-shader") == NULL, "lookup of a missing shader");

    /* a host-visible storage buffer, pre-filled with a sentinel */
    VkBufferCreateInfo bci = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
        .size = N_BUF * sizeof(float),
        .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT,
        .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
    };
    VK_CHECK(vkCreateBuffer(dev, &bci, NULL, &buf));
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(dev, buf, &req);
    int mt = vkl_vk_find_memory_type(ctx, req.memoryTypeBits,
                                     VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                         VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                                     VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
    CHECK(mt >= 0, "no host-visible coherent memory type");
    if (mt < 0) goto done;
    VkMemoryAllocateInfo mai = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
        .allocationSize = req.size,
        .memoryTypeIndex = (uint32_t)mt,
    };
    VK_CHECK(vkAllocateMemory(dev, &mai, NULL, &mem));
    VK_CHECK(vkBindBufferMemory(dev, buf, mem, 0));
    void *mapped = NULL;
    VK_CHECK(vkMapMemory(dev, mem, 0, VK_WHOLE_SIZE, 0, &mapped));
    host = mapped;
    for (uint32_t i = 0; i < N_BUF; i++) host[i] = SENTINEL;

    /* pipeline: one storage buffer, push constants {uint n; float value;} */
    VkShaderModuleCreateInfo smci = {
        .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
        .codeSize = spv->size,
        .pCode = spv->words,
    };
    VK_CHECK(vkCreateShaderModule(dev, &smci, NULL, &shader));
    VkDescriptorSetLayoutBinding binding = {
        .binding = 0,
        .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
        .descriptorCount = 1,
        .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
    };
    VkDescriptorSetLayoutCreateInfo dslci = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
        .bindingCount = 1,
        .pBindings = &binding,
    };
    VK_CHECK(vkCreateDescriptorSetLayout(dev, &dslci, NULL, &dsl));
    struct {
        uint32_t n;
        float value;
    } push = {N_FILL, FILL_VALUE};
    VkPushConstantRange pcr = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .size = sizeof push};
    VkPipelineLayoutCreateInfo plci = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
        .setLayoutCount = 1,
        .pSetLayouts = &dsl,
        .pushConstantRangeCount = 1,
        .pPushConstantRanges = &pcr,
    };
    VK_CHECK(vkCreatePipelineLayout(dev, &plci, NULL, &layout));
    VkComputePipelineCreateInfo cpci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                  .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = shader,
                  .pName = "main"},
        .layout = layout,
    };
    VK_CHECK(vkCreateComputePipelines(dev, VK_NULL_HANDLE, 1, &cpci, NULL, &pipeline));

    /* descriptor set */
    VkDescriptorPoolSize ps = {.type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .descriptorCount = 1};
    VkDescriptorPoolCreateInfo dpci = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
        .maxSets = 1,
        .poolSizeCount = 1,
        .pPoolSizes = &ps,
    };
    VK_CHECK(vkCreateDescriptorPool(dev, &dpci, NULL, &pool));
    VkDescriptorSetAllocateInfo dsai = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
        .descriptorPool = pool,
        .descriptorSetCount = 1,
        .pSetLayouts = &dsl,
    };
    VkDescriptorSet set;
    VK_CHECK(vkAllocateDescriptorSets(dev, &dsai, &set));
    VkDescriptorBufferInfo dbi = {.buffer = buf, .offset = 0, .range = VK_WHOLE_SIZE};
    VkWriteDescriptorSet wds = {
        .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
        .dstSet = set,
        .dstBinding = 0,
        .descriptorCount = 1,
        .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
        .pBufferInfo = &dbi,
    };
    vkUpdateDescriptorSets(dev, 1, &wds, 0, NULL);

    /* record: dispatch, then make the shader writes visible to the host */
    VkCommandPoolCreateInfo cpoolci = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .queueFamilyIndex = ctx->compute_family,
    };
    VK_CHECK(vkCreateCommandPool(dev, &cpoolci, NULL, &cmd_pool));
    VkCommandBufferAllocateInfo cbai = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
        .commandPool = cmd_pool,
        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
        .commandBufferCount = 1,
    };
    VkCommandBuffer cb;
    VK_CHECK(vkAllocateCommandBuffers(dev, &cbai, &cb));
    VkCommandBufferBeginInfo cbbi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
        .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
    };
    VK_CHECK(vkBeginCommandBuffer(cb, &cbbi));
    vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline);
    vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, layout, 0, 1, &set, 0, NULL);
    vkCmdPushConstants(cb, layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof push, &push);
    vkCmdDispatch(cb, (N_FILL + 63) / 64, 1, 1); /* local_size_x = 64 in fill.comp */
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_HOST_READ_BIT,
    };
    vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1,
                         &mb, 0, NULL, 0, NULL);
    VK_CHECK(vkEndCommandBuffer(cb));

    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VK_CHECK(vkCreateFence(dev, &fci, NULL, &fence));
    VkSubmitInfo si = {
        .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
        .commandBufferCount = 1,
        .pCommandBuffers = &cb,
    };
    VK_CHECK(vkQueueSubmit(ctx->compute_queue, 1, &si, fence));
    VK_CHECK(vkWaitForFences(dev, 1, &fence, VK_TRUE, 30ull * 1000 * 1000 * 1000));

    uint32_t bad = 0, first_bad = 0;
    for (uint32_t i = 0; i < N_BUF; i++) {
        float want = i < N_FILL ? FILL_VALUE : SENTINEL;
        if (host[i] != want && bad++ == 0) first_bad = i;
    }
    CHECK(bad == 0, "%u wrong elements, first at %u: %g", bad, first_bad, (double)host[first_bad]);
    printf("fill: %u elements written, %u-element tail untouched\n", N_FILL, N_BUF - N_FILL);

done:
    if (fence) vkDestroyFence(dev, fence, NULL);
    if (cmd_pool) vkDestroyCommandPool(dev, cmd_pool, NULL);
    if (pool) vkDestroyDescriptorPool(dev, pool, NULL);
    if (pipeline) vkDestroyPipeline(dev, pipeline, NULL);
    if (layout) vkDestroyPipelineLayout(dev, layout, NULL);
    if (dsl) vkDestroyDescriptorSetLayout(dev, dsl, NULL);
    if (shader) vkDestroyShaderModule(dev, shader, NULL);
    if (host) vkUnmapMemory(dev, mem);
    if (buf) vkDestroyBuffer(dev, buf, NULL);
    if (mem) vkFreeMemory(dev, mem, NULL);
    return 0;
}

int main(void) {
    vkl_vk_context ctx;
    vkl_error err = {{0}};
    if (vkl_vk_context_create(&ctx, 0, &err)) {
        bool no_device = strstr(err.msg, "no Vulkan") != NULL;
        if (no_device && !getenv("CI")) {
            printf("skipping: %s\n", err.msg);
            return TEST_SKIP_CODE;
        }
        fprintf(stderr, "cannot create a Vulkan context on device 0: %s%s\n", err.msg,
                no_device ? " (CI must have a Vulkan device: lavapipe)" : "");
        return 1;
    }
    const char *want_validation = getenv("VKLLM_VALIDATION");
    printf("device 0: %s (Vulkan %u.%u), validation layer %s\n", ctx.info.props.deviceName,
           VK_API_VERSION_MAJOR(ctx.info.api_version), VK_API_VERSION_MINOR(ctx.info.api_version),
           ctx.validation_active ? "active" : "not active");
    if (want_validation && !strcmp(want_validation, "1") && getenv("CI"))
        CHECK(ctx.validation_active, "CI asked for validation but the layer is not active");

    CHECK(ctx.device && ctx.compute_queue, "no device or compute queue");
    CHECK(ctx.subgroup_size > 0, "subgroup size 0");
    CHECK(ctx.limits.maxStorageBufferRange > 0 && ctx.limits.minStorageBufferOffsetAlignment > 0,
          "limits not queried");
    CHECK(ctx.limits.maxComputeWorkGroupInvocations >= 64, "fill.comp needs 64 invocations");
    run_fill(&ctx);
    vkl_vk_context_destroy(&ctx);

    /* a bad device index is a clean error, not a crash */
    vkl_error e2 = {{0}};
    CHECK(vkl_vk_context_create(&ctx, 999, &e2) == -1 && strstr(e2.msg, "no Vulkan device 999"),
          "got '%s'", e2.msg);

    uint32_t msgs = vkl_vk_validation_message_count();
    CHECK(msgs == 0, "%u validation messages (see stderr)", msgs);
    return test_finish();
}
