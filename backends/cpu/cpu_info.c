#include "cpu_info.h"
#include "cpu_backend.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "backend.h"

const char *vkl_cpu_simd_name(vkl_cpu_simd s) {
    switch (s) {
    case VKL_SIMD_AVX512: return "avx512";
    case VKL_SIMD_AVX2: return "avx2";
    case VKL_SIMD_AVX: return "avx";
    case VKL_SIMD_SSE42: return "sse4.2";
    case VKL_SIMD_NEON: return "neon";
    case VKL_SIMD_SCALAR: break;
    }
    return "scalar";
}

vkl_cpu_simd vkl_cpu_detect_simd(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (avx2 && __builtin_cpu_supports("avx512f")) return VKL_SIMD_AVX512;
    if (avx2) return VKL_SIMD_AVX2;
    if (__builtin_cpu_supports("avx")) return VKL_SIMD_AVX;
    if (__builtin_cpu_supports("sse4.2")) return VKL_SIMD_SSE42;
    return VKL_SIMD_SCALAR;
#elif defined(__aarch64__) || defined(__ARM_NEON)
    return VKL_SIMD_NEON; /* mandatory on AArch64 */
#else
    return VKL_SIMD_SCALAR;
#endif
}

static void trim(char *s) {
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    size_t i = 0;
    while (s[i] && isspace((unsigned char)s[i])) i++;
    if (i) memmove(s, s + i, n - i + 1);
}

/* The value of the first "key : value" line of /proc/cpuinfo whose key is one of `keys`. */
static int cpuinfo_value(const char *const *keys, int nkeys, char *out, size_t outsz) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return -1;
    char line[512];
    int found = -1;
    for (int k = 0; k < nkeys && found < 0; k++) {
        rewind(f);
        while (fgets(line, sizeof line, f)) {
            char *colon = strchr(line, ':');
            if (!colon) continue;
            *colon = 0;
            trim(line);
            if (strcmp(line, keys[k]) != 0) continue;
            snprintf(out, outsz, "%s", colon + 1);
            trim(out);
            if (*out) {
                found = 0;
                break;
            }
        }
    }
    fclose(f);
    return found;
}

static long read_long_file(const char *path, long fallback) {
    FILE *f = fopen(path, "r");
    if (!f) return fallback;
    long v;
    if (fscanf(f, "%ld", &v) != 1) v = fallback;
    fclose(f);
    return v;
}

/* Unique (physical_package_id, core_id) pairs over the online CPUs in /sys; 0 when unknown. */
static int count_physical_cores(void) {
    DIR *d = opendir("/sys/devices/system/cpu");
    if (!d) return 0;
    long(*pairs)[2] = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    bool ok = true;
    while (ok && (e = readdir(d))) {
        if (strncmp(e->d_name, "cpu", 3) || !isdigit((unsigned char)e->d_name[3])) continue;
        char path[512];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/%s/online", e->d_name);
        if (read_long_file(path, 1) == 0) continue; /* offline (cpu0 has no "online" file) */
        snprintf(path, sizeof path, "/sys/devices/system/cpu/%s/topology/core_id", e->d_name);
        long core = read_long_file(path, -1);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/%s/topology/physical_package_id",
                 e->d_name);
        long pkg = read_long_file(path, -1);
        if (core < 0 || pkg < 0) {
            ok = false;
            break;
        }
        bool seen = false;
        for (int i = 0; i < n && !seen; i++) seen = pairs[i][0] == pkg && pairs[i][1] == core;
        if (seen) continue;
        if (n == cap) {
            int ncap = cap ? cap * 2 : 64;
            void *p = realloc(pairs, (size_t)ncap * sizeof *pairs);
            if (!p) {
                ok = false;
                break;
            }
            pairs = p;
            cap = ncap;
        }
        pairs[n][0] = pkg;
        pairs[n][1] = core;
        n++;
    }
    closedir(d);
    free(pairs);
    return ok ? n : 0;
}

/* MemTotal / MemAvailable from /proc/meminfo, falling back to sysinfo(2). */
static void read_ram(uint64_t *total, uint64_t *avail) {
    *total = *avail = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) *total = (uint64_t)kb * 1024;
            else if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) *avail = (uint64_t)kb * 1024;
        }
        fclose(f);
    }
    struct sysinfo si;
    if ((!*total || !*avail) && sysinfo(&si) == 0) {
        uint64_t unit = si.mem_unit ? si.mem_unit : 1;
        if (!*total) *total = (uint64_t)si.totalram * unit;
        if (!*avail) *avail = ((uint64_t)si.freeram + (uint64_t)si.bufferram) * unit;
    }
}

void vkl_cpu_info_get(vkl_cpu_info *out) {
    memset(out, 0, sizeof *out);
    static const char *const model_keys[] = {"model name", "Model", "Processor", "cpu model",
                                             "Hardware"};
    if (cpuinfo_value(model_keys, (int)VKL_ARRAY_LEN(model_keys), out->model, sizeof out->model)) {
        struct utsname u;
        snprintf(out->model, sizeof out->model, "unknown CPU (%s)",
                 uname(&u) == 0 ? u.machine : "?");
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    out->logical_cores = online > 0 ? (int)online : 1;
    int phys = count_physical_cores();
    out->physical_cores = phys > 0 && phys <= out->logical_cores ? phys : out->logical_cores;
    out->simd = vkl_cpu_detect_simd();
    read_ram(&out->ram_total, &out->ram_available);
}

static int cpu_enumerate(vkl_device_info *out, int max, vkl_error *err) {
    (void)err;
    if (max < 1 || !out) return 1;
    vkl_cpu_info ci;
    vkl_cpu_info_get(&ci);
    vkl_device_info *d = &out[0];
    memset(d, 0, sizeof *d);
    snprintf(d->backend, sizeof d->backend, "cpu");
    d->index = 0;
    snprintf(d->name, sizeof d->name, "%s", ci.model);
    d->kind = VKL_DEV_CPU;
    d->mem_total = ci.ram_total;
    d->mem_free = ci.ram_available;
    d->max_alloc = ci.ram_total;
    d->uma = true;
    char tot[32], avail[32];
    snprintf(d->details, sizeof d->details,
             "cores: %d physical, %d logical\n"
             "simd: %s\n"
             "ram: %s total, %s available\n",
             ci.physical_cores, ci.logical_cores, vkl_cpu_simd_name(ci.simd),
             vkl_fmt_bytes(ci.ram_total, tot, sizeof tot),
             vkl_fmt_bytes(ci.ram_available, avail, sizeof avail));
    return 1;
}

const vkl_backend_reg vkl_cpu_backend_reg = {
    .name = "cpu", .enumerate = cpu_enumerate, .open = vkl_cpu_backend_open};
