/* GGUF v2/v3 reader (mmap, fully validated) and streaming writer. */
#ifndef VKL_GGUF_H
#define VKL_GGUF_H

#include "common.h"
#include "types.h"

typedef enum gguf_vtype {
    GGUF_VT_UINT8 = 0, GGUF_VT_INT8 = 1, GGUF_VT_UINT16 = 2, GGUF_VT_INT16 = 3,
    GGUF_VT_UINT32 = 4, GGUF_VT_INT32 = 5, GGUF_VT_FLOAT32 = 6, GGUF_VT_BOOL = 7,
    GGUF_VT_STRING = 8, GGUF_VT_ARRAY = 9, GGUF_VT_UINT64 = 10, GGUF_VT_INT64 = 11,
    GGUF_VT_FLOAT64 = 12,
    GGUF_VT_COUNT
} gguf_vtype;

const char *gguf_vtype_name(gguf_vtype t);

/* A string inside the mapping: NOT NUL-terminated. */
typedef struct gguf_str {
    uint64_t len;
    const char *data;
} gguf_str;

typedef struct gguf_value gguf_value;
struct gguf_value {
    gguf_vtype type;
    union {
        uint64_t u64; /* every unsigned integer type, widened */
        int64_t i64;  /* every signed integer type, widened */
        double f64;   /* FLOAT32 and FLOAT64, widened */
        bool b;
        gguf_str str;
        struct {
            gguf_vtype type; /* element type */
            uint64_t n;
            /* Scalar element types: `data` points at the n packed little-endian elements in the file.
             * STRING elements: `strs` holds n strings. ARRAY elements: `items` holds n values. */
            const void *data;
            gguf_str *strs;
            gguf_value *items;
        } arr;
    } v;
};

typedef struct gguf_kv {
    gguf_str key;
    gguf_value value;
    uint64_t offset; /* byte offset of the key in the file, for messages */
} gguf_kv;

#define GGUF_MAX_DIMS 4

typedef struct gguf_tensor {
    char *name;          /* NUL-terminated copy */
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the contiguous (row) dimension; unused dims are 1 */
    vkl_type type;
    uint64_t offset;     /* relative to the data section */
    uint64_t n_elements;
    uint64_t nbytes;
    const void *data;    /* pointer into the mapping */
} gguf_tensor;

typedef struct gguf_file {
    uint32_t version;
    uint64_t alignment;
    uint64_t n_kv;
    gguf_kv *kv;
    uint64_t n_tensors;
    gguf_tensor *tensors;
    uint64_t data_offset;  /* start of the tensor data section in the file (a file without tensors may
                            * end before it: llama.cpp writes no padding then) */
    const uint8_t *base;   /* the whole file */
    uint64_t size;
    /* private */
    void *map_;
    size_t map_size_;
    void *arena_;
} gguf_file;

/* Opens and validates a file (mmap). NULL with a message naming the problem and its byte offset;
 * the message does not include the path (callers prefix it). */
gguf_file *gguf_open(const char *path, vkl_error *err);
/* Same over a caller-owned buffer that must outlive the result (fuzzing, tests). */
gguf_file *gguf_open_memory(const void *data, size_t size, vkl_error *err);
void gguf_close(gguf_file *f);

/* Lookup. NULL if absent. */
const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* Typed getters: -1 with a message if the key is missing or of an incompatible type
 * (integers convert between widths when the value fits). */
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, vkl_error *err);
int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out, vkl_error *err);
int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out, vkl_error *err);
int gguf_get_f32(const gguf_file *f, const char *key, float *out, vkl_error *err);
int gguf_get_bool(const gguf_file *f, const char *key, bool *out, vkl_error *err);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, vkl_error *err);
/* Copies a string value into buf (NUL-terminated, truncated to bufsize-1). */
int gguf_get_cstr(const gguf_file *f, const char *key, char *buf, size_t bufsize, vkl_error *err);
/* Array getter: checks the element type (GGUF_VT_COUNT accepts any). */
int gguf_get_arr(const gguf_file *f, const char *key, gguf_vtype elem_type, const gguf_value **out, vkl_error *err);
/* Reads element i of a scalar array as double / int64 (any numeric element type). */
double gguf_arr_f64(const gguf_value *arr, uint64_t i);
int64_t gguf_arr_i64(const gguf_value *arr, uint64_t i);

bool gguf_str_eq(gguf_str s, const char *cstr);

/* Length (1..4) of the valid UTF-8 sequence at the start of s[0..n), or 0 if it is invalid
 * (overlong, surrogate, beyond U+10FFFF, truncated) or n is 0. */
size_t gguf_utf8_next(const char *s, size_t n);
bool gguf_utf8_valid(const char *s, size_t n);

/* ---- Writer: streaming. Add metadata and tensor infos, then write each tensor's data in the
 * order the infos were added; the header is written on the first data write (or at close). */
typedef struct gguf_writer gguf_writer;

/* Writes to PATH.tmp, renamed to PATH by a successful gguf_writer_close (so a failed or aborted
 * write never leaves a partial PATH, and PATH may be a file that is still mapped for reading). */
gguf_writer *gguf_writer_open(const char *path, vkl_error *err);
/* Alignment (default 32); also written as general.alignment when not 32. */
int gguf_writer_set_alignment(gguf_writer *w, uint32_t alignment, vkl_error *err);
/* Adds a key with a value (deep-copied; arrays may be nested). */
int gguf_writer_add_kv(gguf_writer *w, const char *key, const gguf_value *value, vkl_error *err);
int gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t v, vkl_error *err);
int gguf_writer_add_i32(gguf_writer *w, const char *key, int32_t v, vkl_error *err);
int gguf_writer_add_f32(gguf_writer *w, const char *key, float v, vkl_error *err);
int gguf_writer_add_bool(gguf_writer *w, const char *key, bool v, vkl_error *err);
int gguf_writer_add_str(gguf_writer *w, const char *key, const char *v, vkl_error *err);
/* Copies every key of an existing file except those for which skip(key) returns true (skip may be NULL). */
int gguf_writer_copy_kvs(gguf_writer *w, const gguf_file *src, bool (*skip)(const char *key), vkl_error *err);
int gguf_writer_add_tensor(gguf_writer *w, const char *name, vkl_type type, uint32_t n_dims,
                           const int64_t *ne, vkl_error *err);
/* Writes the data (exactly the tensor's nbytes) of the next tensor in order. */
int gguf_writer_write_tensor_data(gguf_writer *w, const void *data, uint64_t nbytes, vkl_error *err);
/* Finishes (all tensors' data must have been written) and closes; frees w in all cases. */
int gguf_writer_close(gguf_writer *w, vkl_error *err);
/* Frees without finishing (on an error path); removes the partial file. */
void gguf_writer_abort(gguf_writer *w);

#endif
