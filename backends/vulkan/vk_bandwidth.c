/* The Vulkan backend's read_bandwidth op: shaders/read_bw.comp streams a device buffer, bound in
 * ranges of at most maxStorageBufferRange, several passes per submission; the best submission
 * gives the bandwidth. GPU time comes from timestamp queries where the queue has them, else from
 * the host clock around the submission (which then includes its overhead). On a CPU device
 * (lavapipe) this measures the host memory as llvmpipe's threads read it, with the pattern that
 * bench_vk_roofline found fastest there: the source bound as a uniform texel buffer, each
 * workgroup of 8 invocations streaming one contiguous range, neighbouring lanes reading
 * neighbouring texels (shaders/roof_read.comp, mode 1; several times faster than storage-buffer
 * loads on llvmpipe). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vk_backend.h"
#include "vk_cmd.h"

#define BW_WG 256u        /* local_size_x of read_bw.comp */
#define BW_DST_BYTES 1024 /* per dispatch: one uint per invocation of a workgroup */
#define BW_DST_SLOTS 64   /* dispatches get separate result slices, so they need no barrier */
#define BW_SUBMIT_S 0.05 /* passes per submission: about this long, to hide its overhead */
#define BW_MAX_PASSES 64
#define BW_SUBMITS 5
#define TB_WG 8u      /* CPU devices: roof_read_tb with workgroups of 8, each streaming a range */
#define TB_COUNT 256u /* texels per invocation */

typedef struct bw_state {
    vkl_vk_context *ctx;
    vkl_vk_allocator *alloc;
    vkl_vk_pipelines *pipes;
    vkl_vk_seq *seq;
    vkl_vk_buffer src, dst;
} bw_state;

static void bw_release(bw_state *s) {
    vkl_vk_seq_destroy(s->seq);
    vkl_vk_pipelines_destroy(s->pipes);
    if (s->alloc) {
        vkl_vk_free(s->alloc, &s->src);
        vkl_vk_free(s->alloc, &s->dst);
        vkl_vk_allocator_destroy(s->alloc);
    }
}

/* Fills the source with a non-zero pattern: on UMA devices this also faults the pages in (an
 * untouched mapping would be read from the shared zero page). */
static int bw_fill(bw_state *s, size_t bytes, vkl_error *err) {
    const size_t chunk = VKL_MIN(bytes, (size_t)16 << 20);
    uint8_t *tmp = vkl_malloc(chunk, err);
    if (!tmp) return -1;
    memset(tmp, 0x5a, chunk);
    int rc = 0;
    for (size_t off = 0; off < bytes && rc == 0; off += chunk)
        rc = vkl_vk_upload(s->alloc, &s->src, off, tmp, VKL_MIN(chunk, bytes - off), err);
    free(tmp);
    return rc;
}

/* Records `passes` reads of the whole source (in `range` pieces; with `texels`, pieces of whole
 * TB_WG * TB_COUNT texel workgroups, any remainder left unread): *read gets the bytes read. */
static int bw_record(bw_state *s, const vkl_vk_pipeline *p, bool texels, size_t bytes, uint64_t range,
                     int passes, double *read, vkl_error *err) {
    if (vkl_vk_seq_begin(s->seq, err)) return -1;
    uint32_t slot = 0;
    *read = 0;
    for (int pass = 0; pass < passes; pass++) {
        for (size_t off = 0; off < bytes; off += range) {
            const uint64_t chunk = (uint64_t)TB_WG * TB_COUNT * 16;
            uint64_t n = VKL_MIN((uint64_t)(bytes - off), range);
            if (texels) n = n / chunk * chunk;
            if (n == 0) continue;
            vkl_vk_binding b[2];
            uint32_t delta;
            const vkl_vk_range src = vkl_vk_buffer_sub(&s->src, off, n);
            if ((texels ? vkl_vk_bind_texels(s->ctx, src, &b[0], err)
                        : vkl_vk_bind_range(s->ctx, src, false, &b[0], &delta, err)) ||
                vkl_vk_bind_range(s->ctx, vkl_vk_buffer_sub(&s->dst, (VkDeviceSize)slot * BW_DST_BYTES, BW_DST_BYTES),
                                  true, &b[1], &delta, err))
                return -1;
            if (texels) {
                const uint32_t push[3] = {TB_COUNT, 0x9e3779b9u, 1u}; /* count, key, mode 1 */
                if (vkl_vk_seq_dispatch(s->seq, p, b, 2, push, (uint32_t)(n / chunk), 1, 1, "read_bw_tb", err))
                    return -1;
            } else {
                const struct { uint32_t n, key; } push = {(uint32_t)(n / 16), 0x9e3779b9u};
                /* Enough invocations to keep every memory channel busy, ~32 loads each. */
                const uint32_t groups = (uint32_t)VKL_MAX(1, VKL_MIN(65535, n / 16 / (BW_WG * 32)));
                if (vkl_vk_seq_dispatch(s->seq, p, b, 2, &push, groups, 1, 1, "read_bw", err)) return -1;
            }
            *read += (double)n;
            slot = (slot + 1) % BW_DST_SLOTS;
        }
    }
    return 0;
}

int vkl_vk_read_bandwidth(vkl_backend *be, size_t bytes, double *bytes_per_s, vkl_error *err) {
    bw_state s = {.ctx = vkl_vk_backend_context(be)};
    const VkDeviceSize align = VKL_MAX(s.ctx->limits.minStorageBufferOffsetAlignment, (VkDeviceSize)16);
    /* Bindings start on an aligned offset and hold whole 16-byte words. */
    uint64_t range = VKL_MIN((uint64_t)s.ctx->limits.maxStorageBufferRange, (uint64_t)UINT32_MAX) / align * align;
    /* CPU devices: texel pieces of whole workgroups, at most 1 GiB and 65535 workgroups each */
    VkFormatProperties fp;
    vkGetPhysicalDeviceFormatProperties(s.ctx->physical_device, VK_FORMAT_R32G32B32A32_UINT, &fp);
    const uint64_t tb_chunk = (uint64_t)TB_WG * TB_COUNT * 16;
    const uint64_t tb_range = VKL_MIN((uint64_t)s.ctx->limits.maxTexelBufferElements * 16,
                                      VKL_MIN((uint64_t)65535 * tb_chunk, (uint64_t)1 << 30)) / tb_chunk * tb_chunk;
    const bool texels = s.ctx->info.props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU &&
                        (fp.bufferFeatures & VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT) &&
                        s.ctx->limits.minTexelBufferOffsetAlignment <= 4096 && tb_range > 0;
    if (texels) range = tb_range;
    bytes = bytes / 4096 * 4096;
    if (bytes < ((size_t)1 << 20) || range < 4096)
        return vkl_fail(err, "vulkan read bandwidth: %zu bytes is too small a buffer (at least 1 MiB)", bytes);
    int passes = 1;
    double best = 0;
    int rc = -1;
    if (!(s.alloc = vkl_vk_allocator_create(s.ctx, 0, 0, err)) ||
        vkl_vk_alloc(s.alloc, VKL_VK_MEM_DEVICE, bytes, &s.src, err) ||
        vkl_vk_alloc(s.alloc, VKL_VK_MEM_DEVICE, (VkDeviceSize)BW_DST_SLOTS * BW_DST_BYTES, &s.dst, err) ||
        bw_fill(&s, bytes, err) || !(s.pipes = vkl_vk_pipelines_create(s.ctx, err)) ||
        !(s.seq = vkl_vk_seq_create(s.ctx, true, err)))
        goto done;
    const uint32_t tb_wg = TB_WG;
    const vkl_vk_pipeline *p = texels ? vkl_vk_pipeline_get_tb(s.pipes, "roof_read_tb", 2, 1u, 12, &tb_wg, 1, err)
                                      : vkl_vk_pipeline_get(s.pipes, "read_bw", 2, 8, NULL, 0, err);
    if (!p) goto done;
    /* Submission 0 (one pass) warms up (pipeline, caches, clocks) and sizes the others; the best
     * of those counts. */
    for (int sub = 0; sub <= BW_SUBMITS; sub++) {
        double read;
        if (bw_record(&s, p, texels, bytes, range, sub == 0 ? 1 : passes, &read, err)) goto done;
        const double t0 = vkl_time_s();
        if (vkl_vk_seq_submit(s.seq, err)) goto done;
        double secs = vkl_time_s() - t0, gpu_ns = 0;
        bool timed = true;
        for (uint32_t d = 0; d < vkl_vk_seq_dispatch_count(s.seq) && timed; d++) {
            const double ns = vkl_vk_seq_dispatch_ns(s.seq, d);
            if (ns < 0) timed = false;
            else gpu_ns += ns;
        }
        if (timed && gpu_ns > 0) secs = gpu_ns * 1e-9;
        if (!(secs > 0)) continue;
        if (sub == 0) passes = (int)VKL_MAX(1, VKL_MIN(BW_MAX_PASSES, ceil(BW_SUBMIT_S / secs)));
        else if (read > 0) best = VKL_MAX(best, read / secs);
    }
    *bytes_per_s = best;
    rc = 0;
done:
    if (rc) vkl_error_prefix(err, "vulkan read bandwidth (%s)", be->info.name);
    bw_release(&s);
    return rc;
}
