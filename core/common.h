/* Common helpers for vkllm: errors as values, checked allocation, small utilities. */
#ifndef VKL_COMMON_H
#define VKL_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An error is a value: functions that can fail take a `vkl_error *` (which may be NULL),
 * fill it with a human-readable message and return a failure indicator (-1 or NULL). */
typedef struct vkl_error {
    char msg[512];
} vkl_error;

#if defined(__GNUC__)
#define VKL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define VKL_PRINTF(a, b)
#endif

/* Sets the message (if err is non-NULL) and returns -1, so `return vkl_fail(err, ...)` works. */
int vkl_fail(vkl_error *err, const char *fmt, ...) VKL_PRINTF(2, 3);
int vkl_vfail(vkl_error *err, const char *fmt, va_list ap);
/* Prepends "prefix: " to an existing message. */
void vkl_error_prefix(vkl_error *err, const char *fmt, ...) VKL_PRINTF(2, 3);

/* Checked allocation: return NULL and set err on failure (never abort). */
void *vkl_malloc(size_t n, vkl_error *err);
void *vkl_calloc(size_t count, size_t size, vkl_error *err);
void *vkl_aligned_alloc(size_t alignment, size_t n, vkl_error *err); /* free with vkl_aligned_free */
void vkl_aligned_free(void *p);
char *vkl_strdup(const char *s, vkl_error *err);

/* Overflow-checked arithmetic: return false on overflow. */
static inline bool vkl_mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool vkl_add_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

#define VKL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define VKL_MAX(a, b) ((a) > (b) ? (a) : (b))
#define VKL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define VKL_ALIGN_UP(x, a) (((x) + (a) - 1) / (a) * (a))

/* Monotonic time in seconds. */
double vkl_time_s(void);

/* Human-readable byte size, e.g. "1.23 GiB", into buf. Returns buf. */
const char *vkl_fmt_bytes(uint64_t bytes, char *buf, size_t bufsize);

/* Parses sizes such as "6G", "512M", "1.5GiB", "123456". Returns -1 on bad input. */
int vkl_parse_size(const char *s, uint64_t *out);

#endif
