#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int vkl_vfail(vkl_error *err, const char *fmt, va_list ap) {
    if (err) vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    return -1;
}

int vkl_fail(vkl_error *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vkl_vfail(err, fmt, ap);
    va_end(ap);
    return -1;
}

void vkl_error_prefix(vkl_error *err, const char *fmt, ...) {
    if (!err) return;
    char prefix[256], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof err->msg - 3) n = sizeof err->msg - 3;
    memcpy(err->msg, prefix, n);
    err->msg[n] = ':';
    err->msg[n + 1] = ' ';
    size_t room = sizeof err->msg - (n + 2) - 1, m = strlen(old);
    if (m > room) m = room;
    memcpy(err->msg + n + 2, old, m);
    err->msg[n + 2 + m] = 0;
}

void *vkl_malloc(size_t n, vkl_error *err) {
    void *p = malloc(n ? n : 1);
    if (!p) vkl_fail(err, "out of host memory (asked for %zu bytes)", n);
    return p;
}

void *vkl_calloc(size_t count, size_t size, vkl_error *err) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) vkl_fail(err, "out of host memory (asked for %zu x %zu bytes)", count, size);
    return p;
}

void *vkl_aligned_alloc(size_t alignment, size_t n, vkl_error *err) {
    void *p = NULL;
    if (posix_memalign(&p, alignment, n ? n : 1) != 0) {
        vkl_fail(err, "out of host memory (asked for %zu bytes)", n);
        return NULL;
    }
    return p;
}

void vkl_aligned_free(void *p) { free(p); }

char *vkl_strdup(const char *s, vkl_error *err) {
    size_t n = strlen(s) + 1;
    char *p = vkl_malloc(n, err);
    if (p) memcpy(p, s, n);
    return p;
}

double vkl_time_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const char *vkl_fmt_bytes(uint64_t bytes, char *buf, size_t bufsize) {
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < VKL_ARRAY_LEN(units)) {
        v /= 1024.0;
        u++;
    }
    if (u == 0) snprintf(buf, bufsize, "%llu B", (unsigned long long)bytes);
    else snprintf(buf, bufsize, "%.2f %s", v, units[u]);
    return buf;
}

int vkl_parse_size(const char *s, uint64_t *out) {
    if (!s || !*s) return -1;
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || errno != 0 || !(v >= 0)) return -1;
    while (*end == ' ') end++;
    double mul = 1;
    switch (toupper((unsigned char)*end)) {
    case 0: break;
    case 'K': mul = 1024.0; end++; break;
    case 'M': mul = 1024.0 * 1024; end++; break;
    case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
    case 'T': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: return -1;
    }
    if (*end == 'i' || *end == 'I') end++;
    if (*end == 'B' || *end == 'b') end++;
    if (*end) return -1;
    double r = v * mul;
    if (r > 1.8e19) return -1;
    *out = (uint64_t)r;
    return 0;
}
