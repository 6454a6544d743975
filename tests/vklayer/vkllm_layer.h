/* The test layer VK_LAYER_VKLLM_discrete (tests/vklayer/vkllm_layer.c): makes the device under it
 * look like a discrete GPU and counts what the application asks of it.
 *
 * Settings (environment):
 *   VKLLM_LAYER_NONUMA=1    split every memory type that is both device-local and host-visible
 *                           into a device-local-only type and a host-visible type on a separate,
 *                           non-device-local heap (a discrete card without resizable BAR);
 *                           mapping device-only memory then fails and counts as a violation.
 *   VKLLM_LAYER_KEEP_TYPE=1 leave the device type (and memory) as they are: counting only.
 *   VKLLM_LAYER_STATS=FILE  at vkDestroyDevice, append the device's totals to FILE as one line
 *                           ("submits=.. dispatches=.. ...").
 * In-process (tests): the layer's library exports vkllm_layer_get_counts(); tests reach it with
 * dlopen(RTLD_NOLOAD) on the library path (tests/vklayer_counts.h). */
#ifndef VKLLM_LAYER_H
#define VKLLM_LAYER_H

#include <stdint.h>

typedef struct vkllm_layer_counts {
    uint64_t submits;        /* vkQueueSubmit calls with at least one command buffer */
    uint64_t compute_submits; /* those whose command buffers hold at least one dispatch */
    uint64_t command_buffers; /* command buffers submitted */
    uint64_t dispatches;     /* vkCmdDispatch in submitted command buffers */
    uint64_t barriers;       /* vkCmdPipelineBarrier in submitted command buffers */
    uint64_t transfers;      /* vkCmdCopyBuffer / vkCmdUpdateBuffer / vkCmdFillBuffer, submitted */
    uint64_t transfer_bytes; /* bytes those commands move */
    uint64_t fence_waits;    /* vkWaitForFences calls */
    uint64_t map_violations; /* vkMapMemory on device-local-only memory (non-UMA mode) */
    uint64_t record_ns;      /* host time between vkBeginCommandBuffer and vkEndCommandBuffer */
} vkllm_layer_counts;

typedef void (*vkllm_layer_get_counts_fn)(vkllm_layer_counts *out);

#endif
