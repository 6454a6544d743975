/* The fast matmul driver: picks the kernel table for this CPU once, converts the activations
 * once per call (in parallel for batches), then splits the weight rows into chunks that the
 * workers take from an atomic counter; within a chunk, tokens are tiled so that each weight row
 * is read from memory once per tile. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "cpu/cpu_kernels.h"
#include "cpu/matmul_internal.h"

typedef struct simd_table {
    const char *level;
    vkl_kernel_set ks;
} simd_table;

static simd_table g_tables[4]; /* scalar, avx2, avxvnni, avx512 */
static int g_n_tables;
static _Atomic(const simd_table *) g_active;
static _Atomic(const simd_table *) g_forced;
static atomic_int g_forced_mm_min_n; /* 0: the kernel set's own thresholds */

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
/* F16C via cpuid (clang's __builtin_cpu_supports does not know it); AVX2 implies OS AVX state. */
static int cpu_has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#endif

static int cpu_has_avx2(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
#else
    return 0;
#endif
}

static int cpu_has_avx512(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vbmi");
#else
    return 0;
#endif
}

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void build_tables(void) {
    int n = 0;
    g_tables[n].level = "scalar";
    vkl_gemm_fill_scalar(&g_tables[n].ks);
    n++;
    if (cpu_has_avx2()) {
        g_tables[n] = g_tables[n - 1];
        g_tables[n].level = "avx2";
        vkl_gemm_fill_avx2(&g_tables[n].ks);
        n++;
        if (vkl_cpu_has_avxvnni()) { /* AVX2 with VEX vpdpbusd: the batch kernels use it */
            g_tables[n] = g_tables[n - 1];
            g_tables[n].level = "avxvnni";
            vkl_mm_fill_avx2(&g_tables[n].ks, 1);
            n++;
        }
        if (cpu_has_avx512()) {
            g_tables[n] = g_tables[n - 1];
            g_tables[n].level = "avx512";
            vkl_gemm_fill_avx512(&g_tables[n].ks);
            n++;
        }
    }
    g_n_tables = n;
    atomic_store_explicit(&g_active, &g_tables[n - 1], memory_order_release);
}

static const simd_table *active_table(void) {
    const simd_table *f = atomic_load_explicit(&g_forced, memory_order_acquire);
    if (f) return f;
    pthread_once(&g_once, build_tables);
    return atomic_load_explicit(&g_active, memory_order_acquire);
}

const char *vkl_cpu_simd_level(void) { return active_table()->level; }

int vkl_cpu_force_simd(const char *level) {
    pthread_once(&g_once, build_tables);
    if (!level) {
        atomic_store_explicit(&g_forced, NULL, memory_order_release);
        return 0;
    }
    for (int i = 0; i < g_n_tables; i++)
        if (strcmp(g_tables[i].level, level) == 0) {
            atomic_store_explicit(&g_forced, &g_tables[i], memory_order_release);
            return 0;
        }
    return -1;
}

void vkl_cpu_force_mm_min_n(int n) { atomic_store(&g_forced_mm_min_n, n > 0 ? n : 0); }

static int64_t block_size_of(vkl_type t) {
    const vkl_type_traits *tt = vkl_type_get(t);
    return tt ? tt->block_size : 0;
}

/* Largest activation format any table may use for this type. */
static vkl_act_format max_act_format(vkl_type t) {
    switch (t) {
    case VKL_TYPE_Q4_0:
    case VKL_TYPE_Q4_1:
    case VKL_TYPE_Q5_0:
    case VKL_TYPE_Q5_1:
    case VKL_TYPE_Q8_0: return VKL_ACT_Q8_32;
    case VKL_TYPE_Q2_K:
    case VKL_TYPE_Q3_K:
    case VKL_TYPE_Q4_K:
    case VKL_TYPE_Q5_K:
    case VKL_TYPE_Q6_K: return VKL_ACT_Q8_K;
    default: return VKL_ACT_F32;
    }
}

size_t vkl_matmul_scratch_size(vkl_type wtype, int64_t K, int64_t N) {
    const vkl_act_format f = max_act_format(wtype);
    if (f == VKL_ACT_F32 || K <= 0 || N <= 0) return 0;
    return vkl_act_row_size(f, K) * (size_t)N;
}

/* One weight matrix of a group that shares the activations. */
typedef struct mm_mat {
    const uint8_t *W;
    size_t ws;
    int64_t M;
    float *y;
    int64_t chunk0; /* first chunk index of this matrix in the group's chunk space */
} mm_mat;

typedef struct mm_job {
    vkl_gemm_fn fn;
    vkl_act_quant_fn quant;
    vkl_act_format act;
    int64_t K, N;
    const float *x;
    const uint8_t *X; /* activations in the kernel's format */
    size_t xs;
    uint8_t *scratch;
    int n_mat;
    mm_mat mat[VKL_MATMUL_GROUP_MAX];
    int64_t n_chunks, chunk_rows, tile_t;
    atomic_llong next_chunk;
} mm_job;

static void quantize_rows(mm_job *j, int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
        void *dst = j->scratch + (size_t)t * j->xs;
        j->quant(j->x + t * j->K, dst, j->K);
    }
}

static void quantize_worker(void *ctx, int ith, int nth) {
    mm_job *j = ctx;
    const int64_t per = (j->N + nth - 1) / nth;
    const int64_t t0 = per * ith, t1 = VKL_MIN(j->N, t0 + per);
    if (t0 < t1) quantize_rows(j, t0, t1);
}

/* Workers take chunks of rows (never spanning two matrices) from one counter, so they finish
 * within about one chunk of each other. */
static void gemm_worker(void *ctx, int ith, int nth) {
    (void)ith;
    (void)nth;
    mm_job *j = ctx;
    for (;;) {
        const int64_t c = atomic_fetch_add_explicit(&j->next_chunk, 1, memory_order_relaxed);
        if (c >= j->n_chunks) break;
        int m = 0;
        while (m + 1 < j->n_mat && c >= j->mat[m + 1].chunk0) m++;
        const mm_mat *mt = &j->mat[m];
        const int64_t r0 = (c - mt->chunk0) * j->chunk_rows;
        const int64_t nr = VKL_MIN(j->chunk_rows, mt->M - r0);
        for (int64_t t0 = 0; t0 < j->N; t0 += j->tile_t) {
            const int64_t nt = VKL_MIN(j->tile_t, j->N - t0);
            j->fn(j->K, mt->W + (size_t)r0 * mt->ws, mt->ws, nr, j->X + (size_t)t0 * j->xs, j->xs, nt,
                  mt->y + t0 * mt->M + r0, mt->M);
        }
    }
}

static void matmul_ref_all(vkl_type wtype, int n, const vkl_matmul_desc *d, int64_t K, const float *x, int64_t N) {
    for (int i = 0; i < n; i++) vkl_matmul_ref(wtype, d[i].W, d[i].w_row_stride, d[i].M, K, x, N, d[i].y);
}

void vkl_matmul_group(vkl_threadpool *tp, vkl_type wtype, int n, const vkl_matmul_desc *d, int64_t K,
                      const float *x, int64_t N, void *scratch) {
    if (N <= 0 || n <= 0) return;
    if (n > VKL_MATMUL_GROUP_MAX) {
        for (int i = 0; i < n; i += VKL_MATMUL_GROUP_MAX)
            vkl_matmul_group(tp, wtype, VKL_MIN(VKL_MATMUL_GROUP_MAX, n - i), d + i, K, x, N, scratch);
        return;
    }
    const int64_t bs = block_size_of(wtype);
    const simd_table *tab = active_table();
    const vkl_gemm_kernel *kern = bs > 0 ? &tab->ks.k[wtype] : NULL;
    const int forced_min = atomic_load(&g_forced_mm_min_n);
    const bool batch = bs > 0 && tab->ks.mm[wtype].fn && N >= (forced_min ? forced_min : tab->ks.mm_min_n[wtype]);
    if (batch) kern = &tab->ks.mm[wtype];
    if (!kern || !kern->fn || K <= 0 || K % bs != 0 || (kern->act != VKL_ACT_F32 && !scratch)) {
        /* Not a supported configuration: the oracle handles (or NaN-flags) it. */
        matmul_ref_all(wtype, n, d, K, x, N);
        return;
    }
    const int nth = vkl_threadpool_size(tp);
    mm_job j = {.fn = kern->fn, .act = kern->act, .K = K, .N = N, .x = x, .scratch = scratch};
    atomic_init(&j.next_chunk, 0);
    int64_t total_m = 0;
    for (int i = 0; i < n; i++) {
        if (d[i].M <= 0) continue;
        j.mat[j.n_mat++] = (mm_mat){.W = d[i].W, .ws = d[i].w_row_stride, .M = d[i].M, .y = d[i].y};
        total_m += d[i].M;
    }
    if (j.n_mat == 0) return;
    if (kern->act == VKL_ACT_F32) {
        j.X = (const uint8_t *)x;
        j.xs = (size_t)K * sizeof(float);
    } else {
        j.X = scratch;
        j.quant = kern->act == VKL_ACT_Q8_32 ? tab->ks.quant_q8_32
                  : kern->act == VKL_ACT_Q8_K ? tab->ks.quant_q8_K : tab->ks.quant_q8_32g;
        j.xs = vkl_act_row_size(kern->act, K);
        if (N >= 4 && nth > 1)
            vkl_threadpool_run(tp, quantize_worker, &j);
        else
            quantize_rows(&j, 0, N);
    }
    if (batch) {
        /* The kernel packs its rows once and runs every token over them. */
        j.chunk_rows = VKL_MM_ROWS;
        j.tile_t = N;
    } else if (N == 1) {
        /* Memory-bound: ~8 chunks per thread balance load without much counter traffic. */
        int64_t c = total_m / ((int64_t)nth * 8);
        j.chunk_rows = VKL_MAX(4, (c + 3) / 4 * 4);
        j.tile_t = 1;
    } else {
        j.chunk_rows = 16;
        j.tile_t = VKL_MIN(N, VKL_GEMM_MAX_T);
    }
    for (int i = 0; i < j.n_mat; i++) {
        j.mat[i].chunk0 = j.n_chunks;
        j.n_chunks += (j.mat[i].M + j.chunk_rows - 1) / j.chunk_rows;
    }
    if (nth == 1 || j.n_chunks == 1)
        gemm_worker(&j, 0, 1);
    else
        vkl_threadpool_run(tp, gemm_worker, &j);
}

void vkl_matmul(vkl_threadpool *tp, vkl_type wtype, const void *W, size_t w_row_stride, int64_t M,
                int64_t K, const float *x, int64_t N, float *y, void *scratch) {
    if (M <= 0) return;
    const vkl_matmul_desc d = {.W = W, .w_row_stride = w_row_stride, .M = M, .y = y};
    vkl_matmul_group(tp, wtype, 1, &d, K, x, N, scratch);
}
