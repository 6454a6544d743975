/* Several threads on one loaded model: each thread creates its own context and sampler and
 * greedy-generates 64 tokens (16 on Vulkan under ASan) from its own prompt, at the same time as the others; every thread's
 * tokens must equal the same generation run alone. The weights are shared read-only; the library
 * serializes backend work internally. On the CPU, and with every layer on Vulkan when present. */
#include <pthread.h>

#include "test.h"
#include "vkllm.h"

#define N_GEN 64
#define N_THREADS 2

#ifdef VKLLM_SANITIZE
#define N_GEN_VK 16 /* lavapipe under ASan is slow */
#else
#define N_GEN_VK N_GEN
#endif

typedef struct job {
    vkllm_model *m;
    int n_gen;
    const char *prompt;
    int32_t out[N_GEN];
    int n_out;
    vkllm_error err;
} job;

static const char *prompts[N_THREADS] = {"Once upon a time", "The capital of France is a city where"};

/* Creates a context, evaluates the prompt and generates N_GEN tokens greedily into j->out. */
static void *generate(void *arg) {
    job *j = arg;
    j->n_out = 0;
    vkllm_context_params cp = vkllm_context_default_params();
    cp.n_ctx = 128;
    vkllm_sampler_params sp = vkllm_sampler_default_params();
    sp.temperature = 0;
    vkllm_context *c = vkllm_context_create(j->m, &cp, &j->err);
    vkllm_sampler *s = c ? vkllm_sampler_create(j->m, &sp, &j->err) : NULL;
    int32_t ids[64];
    int n = s ? vkllm_tokenize(j->m, j->prompt, strlen(j->prompt), true, ids, 64, &j->err) : -1;
    if (n > 0 && vkllm_eval(c, ids, n, false, &j->err) == 0) {
        while (j->n_out < j->n_gen) {
            int32_t next = vkllm_sample(s, vkllm_logits(c, -1));
            j->out[j->n_out++] = next;
            if (vkllm_eval(c, &next, 1, false, &j->err)) break;
        }
    }
    vkllm_sampler_free(s);
    vkllm_context_free(c);
    return NULL;
}

static void run_case(const char *path, int n_gpu_layers) {
    vkllm_error err = {{0}};
    vkllm_model_params mp = vkllm_model_default_params();
    mp.n_threads = 2;
    mp.n_gpu_layers = n_gpu_layers;
    vkllm_model *m = vkllm_model_load(path, &mp, &err);
    CHECK(m != NULL, "load (-ngl %d): %s", n_gpu_layers, err.msg);
    if (!m) return;

    static job alone[N_THREADS], together[N_THREADS];
    int n_gen = n_gpu_layers ? N_GEN_VK : N_GEN;
    for (int i = 0; i < N_THREADS; i++) {
        alone[i] = (job){.m = m, .prompt = prompts[i], .n_gen = n_gen};
        generate(&alone[i]);
        CHECK(alone[i].n_out == n_gen, "-ngl %d, alone %d: %d tokens: %s", n_gpu_layers, i, alone[i].n_out,
              alone[i].err.msg);
    }
    CHECK(memcmp(alone[0].out, alone[1].out, sizeof(int32_t) * (size_t)n_gen) != 0, "the two prompts gave the same tokens");
#ifdef VKLLM_SANITIZE
    int rounds = 1;
#else
    int rounds = n_gpu_layers ? 1 : 2; /* lavapipe is slow */
#endif
    for (int round = 0; round < rounds; round++) {
        pthread_t th[N_THREADS];
        bool started[N_THREADS];
        for (int i = 0; i < N_THREADS; i++) {
            together[i] = (job){.m = m, .prompt = prompts[i], .n_gen = n_gen};
            started[i] = pthread_create(&th[i], NULL, generate, &together[i]) == 0;
            CHECK(started[i], "pthread_create");
        }
        for (int i = 0; i < N_THREADS; i++)
            if (started[i]) pthread_join(th[i], NULL);
        for (int i = 0; i < N_THREADS; i++) {
            int same = 0;
            while (same < together[i].n_out && together[i].out[same] == alone[i].out[same]) same++;
            CHECK(together[i].n_out == n_gen && same == n_gen,
                  "-ngl %d, round %d, thread %d: %d tokens, first %d equal to the single-threaded run (%s)",
                  n_gpu_layers, round, i, together[i].n_out, same, together[i].err.msg);
        }
    }
    printf("-ngl %d: %d threads x %d tokens match the one-at-a-time generations\n", n_gpu_layers, N_THREADS, n_gen);
    vkllm_model_free(m);
}

int main(void) {
    char path[512];
    test_fixture_model(path, sizeof path, "mini-q8_0");
    run_case(path, 0);
    vkllm_error err = {{0}};
    if (vkllm_gpu_count(&err) > 0) run_case(path, 99);
    else printf("no Vulkan device: CPU only (%s)\n", err.msg);
    return test_finish();
}
