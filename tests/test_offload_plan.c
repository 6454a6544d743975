/* The offload planner as pure computation (no device): layouts for -ngl, the head rule, tensor
 * splits, the replay of the Vulkan allocator's blocks, auto-fit choosing the fastest split that
 * fits (forced by budgets computed from the planner's own numbers), a budget too small for one
 * layer, a slow software GPU, and the table. */
#include <string.h>

#include "kv_cache.h"
#include "offload.h"
#include "test.h"

#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)
#define N_LAYER 8

static uint64_t layer_bytes[N_LAYER];
static int scratch_calls;

/* 20 MiB on every GPU that holds something, 5 MiB on the CPU. */
static int fake_scratch(void *user, const vkl_offload_plan *p, uint64_t *scratch, vkl_error *err) {
    (void)user, (void)err;
    scratch_calls++;
    scratch[0] = 5 * MiB;
    for (int d = 1; d < p->n_dev; d++) scratch[d] = p->use[d].n_layers || p->use[d].head ? 20 * MiB : 0;
    return 0;
}

static vkl_offload_model model(void) {
    for (int l = 0; l < N_LAYER; l++) layer_bytes[l] = 100 * MiB;
    return (vkl_offload_model){.n_layer = N_LAYER, .layer_bytes = layer_bytes, .embd_bytes = 40 * MiB,
                               .head_bytes = 50 * MiB, .kv_layer_bytes = 10 * MiB, .act_bytes = 16384,
                               .logits_bytes = 128000, .n_ctx = 4096, .n_batch = 512};
}

static vkl_offload_device cpu(void) {
    return (vkl_offload_device){.name = "cpu", .kind = VKL_DEV_CPU, .index = -1, .bw = 40e9};
}

static vkl_offload_device gpu(uint64_t budget, double bw, vkl_device_kind kind) {
    return (vkl_offload_device){.name = "gpu", .kind = kind, .budget = budget, .max_alloc = 4 * GiB, .bw = bw};
}

static vkl_offload_plan plan(int ngl, const vkl_offload_device *devs, int n_dev, const float *split) {
    vkl_offload_model m = model();
    vkl_offload_request req = vkl_offload_default_request();
    req.n_gpu_layers = ngl;
    for (int i = 0; split && i < n_dev - 1; i++) req.tensor_split[i] = split[i];
    vkl_offload_plan p;
    vkl_error err = {{0}};
    int rc = vkl_offload_plan_compute(&m, devs, n_dev, &req, fake_scratch, NULL, &p, &err);
    CHECK(rc == 0, "plan -ngl %d: %s", ngl, err.msg);
    return p;
}

static void check_layouts(void) {
    vkl_offload_device devs[] = {cpu(), gpu(64 * GiB, 400e9, VKL_DEV_DISCRETE_GPU)};
    devs[1].block_size = 128 * MiB;
    int ngls[] = {0, 1, 4, 7, 8, 9, 99};
    for (size_t i = 0; i < VKL_ARRAY_LEN(ngls); i++) {
        int ngl = ngls[i], on_gpu = ngl > N_LAYER ? N_LAYER : ngl;
        vkl_offload_plan p = plan(ngl, devs, 2, NULL);
        CHECK(p.use[0].first_layer == 0 && p.use[0].n_layers == N_LAYER - on_gpu, "-ngl %d: CPU has %d layers", ngl,
              p.use[0].n_layers);
        CHECK(p.use[1].first_layer == N_LAYER - on_gpu && p.use[1].n_layers == on_gpu, "-ngl %d: GPU has %d..+%d", ngl,
              p.use[1].first_layer, p.use[1].n_layers);
        CHECK(p.use[1].head == (ngl > N_LAYER) && p.use[0].head == (ngl <= N_LAYER), "-ngl %d: head placement", ngl);
        CHECK(p.n_gpu_layers == (ngl > N_LAYER ? N_LAYER + 1 : ngl), "-ngl %d: reported %d", ngl, p.n_gpu_layers);
        for (int l = 0; l < N_LAYER; l++)
            CHECK(vkl_offload_layer_device(&p, l) == (l >= N_LAYER - on_gpu), "-ngl %d: layer %d", ngl, l);
        CHECK(p.use[1].kv == (uint64_t)on_gpu * 10 * MiB, "-ngl %d: GPU KV", ngl);
        CHECK(p.use[0].weights == 40 * MiB + (uint64_t)(N_LAYER - on_gpu) * 100 * MiB + (ngl <= N_LAYER ? 50 * MiB : 0),
              "-ngl %d: CPU weights", ngl);
    }
    /* The allocator replay with 128 MiB blocks, -ngl 9: the 8 layers (800 MiB) in one dedicated
     * block, the head (50) opens a shared block, the KV cache (80) does not fit its tail (78) and
     * opens another, the scratch (20) fits the first tail: 800 + 128 + 128, and the 32 MiB staging
     * ring of a discrete GPU. */
    vkl_offload_plan p = plan(9, devs, 2, NULL);
    CHECK(p.use[1].predicted == 1088 * MiB, "allocator replay: %llu MiB, expected 1088",
          (unsigned long long)(p.use[1].predicted / MiB));
    /* Weight buffers are capped at 1 GiB: 16 layers of 100 MiB would be two chunks (10 + 6). */
    vkl_offload_model m = model();
    CHECK(vkl_offload_chunk_end(&m, 0, 8, GiB) == 8 && vkl_offload_chunk_end(&m, 0, 8, 250 * MiB) == 2 &&
              vkl_offload_chunk_end(&m, 3, 4, 1) == 4,
          "chunking");
    /* KV caches go in buffers of whole layers, at most min(max allocation, 1 GiB) each. */
    CHECK(vkl_kv_cache_layers_per_buffer(10 * MiB, 100 * MiB) == 10 && vkl_kv_cache_layers_per_buffer(80 * MiB, 2 * GiB) == 12 &&
              vkl_kv_cache_layers_per_buffer(3 * GiB, 0) == 1,
          "KV buffer split");
    /* Non-UMA devices reserve the staging ring. */
    CHECK(p.use[1].staging == VKL_OFFLOAD_STAGING, "staging on a discrete GPU");
    devs[1].uma = true;
    p = plan(9, devs, 2, NULL);
    CHECK(p.use[1].staging == 0 && p.use[1].predicted == 1056 * MiB, "no staging on UMA");
    CHECK(vkl_offload_block_size(8 * GiB) == 128 * MiB && vkl_offload_block_size(64 * MiB) == MiB &&
              vkl_offload_block_size(64 * GiB) == 256 * MiB && vkl_offload_block_size(0) == 256 * MiB,
          "block sizes");
}

static void check_split(void) {
    vkl_offload_device devs[] = {cpu(), gpu(64 * GiB, 400e9, VKL_DEV_DISCRETE_GPU), gpu(64 * GiB, 400e9, VKL_DEV_DISCRETE_GPU)};
    float split[] = {3, 1};
    vkl_offload_plan p = plan(8, devs, 3, split);
    CHECK(p.use[0].n_layers == 0 && p.use[1].first_layer == 0 && p.use[1].n_layers == 6 && p.use[2].first_layer == 6 &&
              p.use[2].n_layers == 2,
          "--tensor-split 3,1 of 8: %d + %d", p.use[1].n_layers, p.use[2].n_layers);
    p = plan(9, devs, 3, split);
    CHECK(p.use[2].head && !p.use[1].head && !p.use[0].head, "the head on the last GPU");
    float even[] = {1, 1};
    p = plan(3, devs, 3, even);
    CHECK(p.use[0].n_layers == 5 && p.use[1].n_layers + p.use[2].n_layers == 3 && p.use[1].n_layers >= 1 &&
              p.use[2].n_layers >= 1 && p.n_boundaries == 3,
          "three-way split: %d/%d/%d, %d boundaries", p.use[0].n_layers, p.use[1].n_layers, p.use[2].n_layers,
          p.n_boundaries);
    /* No proportions: by budget. */
    devs[1].budget = 3 * GiB, devs[2].budget = 1 * GiB;
    p = plan(8, devs, 3, NULL);
    CHECK(p.use[1].n_layers > p.use[2].n_layers && p.use[2].n_layers >= 1, "by budget: %d + %d", p.use[1].n_layers,
          p.use[2].n_layers);
}

static void check_auto_fit(void) {
    /* The predicted memory of each split with a generous budget and fixed 1 MiB blocks. */
    vkl_offload_device devs[] = {cpu(), gpu(64 * GiB, 400e9, VKL_DEV_DISCRETE_GPU)};
    devs[1].block_size = MiB;
    uint64_t pred[N_LAYER + 2];
    for (int n = 0; n <= N_LAYER + 1; n++) pred[n] = plan(n, devs, 2, NULL).use[1].predicted;
    for (int n = 1; n <= N_LAYER + 1; n++) CHECK(pred[n] > pred[n - 1], "prediction grows with -ngl (%d)", n);
    /* A budget B fits split n when pred[n] <= 0.95 B - 64 MiB. */
    for (int n = 1; n <= N_LAYER + 1; n++) {
        devs[1].budget = (uint64_t)((double)(pred[n] + 64 * MiB) / 0.95) + MiB;
        vkl_offload_plan p = plan(-1, devs, 2, NULL);
        CHECK(p.auto_fit && p.n_gpu_layers == n, "auto-fit with budget %llu MiB: -ngl %d, expected %d",
              (unsigned long long)(devs[1].budget / MiB), p.n_gpu_layers, n);
        CHECK(p.use[1].predicted <= devs[1].budget, "auto-fit stays in the budget");
    }
    /* Too small for one layer: the CPU and a clear note. */
    devs[1].budget = 100 * MiB;
    vkl_offload_plan p = plan(-1, devs, 2, NULL);
    CHECK(p.n_gpu_layers == 0 && strstr(p.note, "too small for even one layer"), "too small: -ngl %d, note '%s'",
          p.n_gpu_layers, p.note);
    /* An explicit -ngl beyond the budget is reduced to what fits (no margin), with a note. */
    devs[1].budget = pred[3] + MiB / 2;
    p = plan(6, devs, 2, NULL);
    CHECK(p.n_gpu_layers == 3 && strstr(p.note, "using -ngl 3"), "-ngl 6 in a small budget: %d, '%s'", p.n_gpu_layers,
          p.note);
    devs[1].budget = 10 * MiB;
    p = plan(6, devs, 2, NULL);
    CHECK(p.n_gpu_layers == 0 && strstr(p.note, "too small"), "-ngl 6 in 10 MiB: %d, '%s'", p.n_gpu_layers, p.note);
    /* A software GPU (lavapipe) is slower than the CPU: auto-fit keeps everything on the CPU. */
    vkl_offload_device soft[] = {cpu(), gpu(64 * GiB, 0, VKL_DEV_SOFTWARE)};
    unsetenv("VKLLM_GPU_BW_GBPS");
    p = plan(-1, soft, 2, NULL);
    CHECK(p.n_gpu_layers == 0 && strstr(p.note, "lavapipe") && p.n_fitting > 1, "software GPU: -ngl %d, '%s'",
          p.n_gpu_layers, p.note);
    /* ... unless told it is fast. */
    setenv("VKLLM_GPU_BW_GBPS", "500", 1);
    p = plan(-1, soft, 2, NULL);
    CHECK(p.n_gpu_layers == N_LAYER + 1, "fast software GPU: -ngl %d", p.n_gpu_layers);
    unsetenv("VKLLM_GPU_BW_GBPS");
    /* A faster split is predicted faster. */
    vkl_offload_plan a = plan(2, devs, 2, NULL), b = plan(6, devs, 2, NULL);
    devs[1].budget = 64 * GiB;
    a = plan(2, devs, 2, NULL), b = plan(6, devs, 2, NULL);
    CHECK(b.token_s < a.token_s && a.token_s < a.cpu_only_s, "time model: %g < %g < %g", b.token_s, a.token_s,
          a.cpu_only_s);
}

static void check_table(void) {
    vkl_offload_device devs[] = {cpu(), gpu(6 * GiB, 400e9, VKL_DEV_DISCRETE_GPU)};
    devs[1].user_budget = true;
    vkl_offload_plan p = plan(5, devs, 2, NULL);
    char buf[4096];
    size_t n = vkl_offload_describe(&p, buf, sizeof buf);
    CHECK(n > 0 && n < sizeof buf && strlen(buf) == n, "describe length %zu", n);
    CHECK(strstr(buf, "-ngl 5") && strstr(buf, "0-2+embd+head") && strstr(buf, "3-7") && strstr(buf, "6144.0") &&
              strstr(buf, "--vram-budget") && strstr(buf, "ms/token"),
          "table:\n%s", buf);
    char small[16];
    size_t n2 = vkl_offload_describe(&p, small, sizeof small);
    CHECK(n2 == n && strlen(small) == sizeof small - 1, "truncated describe reports the full length");
    printf("%s", buf);
}

int main(void) {
    check_layouts();
    check_split();
    check_auto_fit();
    check_table();
    CHECK(scratch_calls > 0, "the scratch callback is used");
    vkl_offload_device bad[] = {gpu(GiB, 1e9, VKL_DEV_DISCRETE_GPU)};
    vkl_offload_model m = model();
    vkl_offload_request req = vkl_offload_default_request();
    vkl_offload_plan p;
    vkl_error err = {{0}};
    CHECK(vkl_offload_plan_compute(&m, bad, 1, &req, NULL, NULL, &p, &err) < 0 && err.msg[0], "CPU must come first");
    return test_finish();
}
