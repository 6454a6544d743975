/* Persistent thread pool: workers 1..n-1 wait on a generation counter (spin briefly, then sleep
 * on a condition variable); the caller runs share 0 and then spins until the others are done.
 * Each share of a run is claimed exactly once, by its worker or by the caller: after its own
 * share the caller takes every share whose worker has not started yet (descheduled by another
 * process, or still waking from sleep), so a run never waits for a thread that is not running. */
#include "cpu/cpu_kernels.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Spin iterations before a worker sleeps: with a pause per iteration this is roughly 0.1-1 ms,
 * long enough to cover the gap between the ops of one generation step. */
#define SPIN_WORKER 40000
#define SPIN_CALLER_BEFORE_YIELD 4000

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

typedef struct worker_arg {
    struct vkl_threadpool *tp;
    int ith;
    /* The last generation whose share ith was claimed (by the worker or the caller); own line:
     * the worker and the caller race for it. */
    _Alignas(64) atomic_uint claimed;
} worker_arg;

struct vkl_threadpool {
    int n;
    int n_started; /* threads actually created (for cleanup after a failed create) */
    pthread_t *threads;
    worker_arg *args;
    void (*fn)(void *ctx, int ith, int nth);
    void *ctx;
    atomic_int stop;
    /* Separate cache lines: workers poll gen while finished ones decrement pending. */
    _Alignas(64) atomic_uint gen; /* bumped once per run (and once on shutdown) */
    _Alignas(64) atomic_int pending; /* workers (excluding the caller) still running the job */
    _Alignas(64) atomic_int sleepers; /* workers blocked (or about to block) on cv */
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

/* Claims share `claimed` for generation g unless it was claimed for g (or a later run) already.
 * Claims only move forward, so a worker that stalls before claiming a run the caller finished
 * cannot take the share of a newer run in its name. */
static bool claim(atomic_uint *claimed, unsigned g) {
    unsigned cur = atomic_load_explicit(claimed, memory_order_acquire);
    while ((int)(cur - g) < 0)
        if (atomic_compare_exchange_weak_explicit(claimed, &cur, g, memory_order_acq_rel, memory_order_acquire)) return true;
    return false;
}

static void *worker_main(void *p) {
    worker_arg *a = p;
    struct vkl_threadpool *tp = a->tp;
    unsigned seen = 0; /* generation of the last job this worker ran */
    for (;;) {
        unsigned g = atomic_load_explicit(&tp->gen, memory_order_acquire);
        for (int i = 0; g == seen && i < SPIN_WORKER; i++) {
            cpu_relax();
            g = atomic_load_explicit(&tp->gen, memory_order_acquire);
        }
        if (g == seen) {
            pthread_mutex_lock(&tp->mu);
            atomic_fetch_add(&tp->sleepers, 1); /* seq_cst: ordered before the gen check */
            while ((g = atomic_load(&tp->gen)) == seen) pthread_cond_wait(&tp->cv, &tp->mu);
            atomic_fetch_sub(&tp->sleepers, 1);
            pthread_mutex_unlock(&tp->mu);
        }
        seen = g;
        if (atomic_load_explicit(&tp->stop, memory_order_acquire)) break;
        /* The caller may have run this share already (and even started the next run). */
        if (!claim(&a->claimed, g)) continue;
        tp->fn(tp->ctx, a->ith, tp->n);
        atomic_fetch_sub_explicit(&tp->pending, 1, memory_order_acq_rel);
    }
    return NULL;
}

static void wake_all(struct vkl_threadpool *tp) {
    /* Both sides are seq_cst: a worker announces itself in sleepers and then checks gen; here gen
     * is bumped and then sleepers read. So either the worker sees the new gen, or we see it and
     * broadcast under the mutex, which it holds until it is waiting. Spinning workers cost no
     * syscall. */
    atomic_fetch_add(&tp->gen, 1);
    if (atomic_load(&tp->sleepers) > 0) {
        pthread_mutex_lock(&tp->mu);
        pthread_cond_broadcast(&tp->cv);
        pthread_mutex_unlock(&tp->mu);
    }
}

static void shutdown_workers(struct vkl_threadpool *tp) {
    atomic_store_explicit(&tp->stop, 1, memory_order_release);
    wake_all(tp);
    for (int i = 0; i < tp->n_started; i++) pthread_join(tp->threads[i], NULL);
    tp->n_started = 0;
}

vkl_threadpool *vkl_threadpool_create(int n_threads, vkl_error *err) {
    if (n_threads < 1 || n_threads > 1024) {
        vkl_fail(err, "thread pool: invalid thread count %d (must be 1..1024)", n_threads);
        return NULL;
    }
    struct vkl_threadpool *tp = vkl_aligned_alloc(64, sizeof(*tp), err); /* over-aligned members */
    if (!tp) return NULL;
    memset(tp, 0, sizeof(*tp));
    tp->n = n_threads;
    atomic_init(&tp->gen, 0);
    atomic_init(&tp->pending, 0);
    atomic_init(&tp->stop, 0);
    atomic_init(&tp->sleepers, 0);
    if (pthread_mutex_init(&tp->mu, NULL) != 0) {
        vkl_aligned_free(tp);
        vkl_fail(err, "thread pool: pthread_mutex_init failed");
        return NULL;
    }
    if (pthread_cond_init(&tp->cv, NULL) != 0) {
        pthread_mutex_destroy(&tp->mu);
        vkl_aligned_free(tp);
        vkl_fail(err, "thread pool: pthread_cond_init failed");
        return NULL;
    }
    if (n_threads > 1) {
        tp->threads = vkl_calloc((size_t)n_threads - 1, sizeof(pthread_t), err);
        tp->args = vkl_aligned_alloc(64, ((size_t)n_threads - 1) * sizeof(worker_arg), err); /* over-aligned */
        if (!tp->threads || !tp->args) {
            vkl_threadpool_destroy(tp);
            return NULL;
        }
        for (int i = 0; i < n_threads - 1; i++) {
            tp->args[i].tp = tp;
            tp->args[i].ith = i + 1;
            atomic_init(&tp->args[i].claimed, 0);
            int rc = pthread_create(&tp->threads[i], NULL, worker_main, &tp->args[i]);
            if (rc != 0) {
                vkl_fail(err, "thread pool: pthread_create failed (%s)", strerror(rc));
                vkl_threadpool_destroy(tp);
                return NULL;
            }
            tp->n_started++;
        }
    }
    return tp;
}

void vkl_threadpool_destroy(vkl_threadpool *tp) {
    if (!tp) return;
    shutdown_workers(tp);
    pthread_cond_destroy(&tp->cv);
    pthread_mutex_destroy(&tp->mu);
    free(tp->threads);
    vkl_aligned_free(tp->args);
    vkl_aligned_free(tp);
}

int vkl_threadpool_size(const vkl_threadpool *tp) { return tp ? tp->n : 1; }

void vkl_threadpool_run(vkl_threadpool *tp, void (*fn)(void *ctx, int ith, int nth), void *ctx) {
    if (!tp || tp->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    tp->fn = fn;
    tp->ctx = ctx;
    atomic_store_explicit(&tp->pending, tp->n - 1, memory_order_relaxed);
    const unsigned g = atomic_load_explicit(&tp->gen, memory_order_relaxed) + 1; /* only we bump it */
    wake_all(tp); /* release: fn/ctx/pending are visible to workers that see the new gen */
    fn(ctx, 0, tp->n);
    for (int i = 1; i < tp->n; i++) {
        if (!claim(&tp->args[i - 1].claimed, g)) continue;
        fn(ctx, i, tp->n);
        atomic_fetch_sub_explicit(&tp->pending, 1, memory_order_relaxed);
    }
    for (int i = 0; atomic_load_explicit(&tp->pending, memory_order_acquire) != 0; i++) {
        if (i < SPIN_CALLER_BEFORE_YIELD) {
            cpu_relax();
        } else {
            sched_yield(); /* a worker was descheduled: do not burn its core */
        }
    }
}
