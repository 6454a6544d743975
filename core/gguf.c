/* GGUF v2/v3 reader (every byte validated before use) and streaming writer.
 *
 * Layout (little-endian): magic "GGUF", u32 version, u64 n_tensors, u64 n_kv, then n_kv
 * key/value pairs (string key, u32 value type, value), then n_tensors tensor infos (string name,
 * u32 n_dims, n_dims x i64 ne, u32 type, u64 offset), padding to the alignment, and the tensor
 * data section. Strings are a u64 length followed by the bytes (no NUL). Arrays are a u32 element
 * type, a u64 count and the elements. v2 and v3 share this layout; v1 used 32-bit counts. */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_ARRAY_DEPTH 8
#define GGUF_WRITER_MAX_NAME 63 /* llama.cpp rejects tensor names of 64 bytes or more */

/* The smallest encodings, used to bound counts by the bytes that remain before allocating. */
#define MIN_STR_BYTES 8u                 /* u64 length, empty string */
#define MIN_KV_BYTES (8u + 1u + 4u + 1u)  /* non-empty key, type, 1-byte value */
#define MIN_TENSOR_BYTES (8u + 1u + 4u + 8u + 4u + 8u)
#define MIN_ARRAY_BYTES (4u + 8u)         /* element type, count */

static const char *const vtype_names[GGUF_VT_COUNT] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool", "string", "array", "uint64", "int64", "float64",
};

const char *gguf_vtype_name(gguf_vtype t) {
    return ((unsigned)t < GGUF_VT_COUNT) ? vtype_names[t] : "invalid";
}

/* Bytes of one scalar element; 0 for STRING / ARRAY / invalid. */
static size_t vtype_size(gguf_vtype t) {
    switch (t) {
    case GGUF_VT_UINT8: case GGUF_VT_INT8: case GGUF_VT_BOOL: return 1;
    case GGUF_VT_UINT16: case GGUF_VT_INT16: return 2;
    case GGUF_VT_UINT32: case GGUF_VT_INT32: case GGUF_VT_FLOAT32: return 4;
    case GGUF_VT_UINT64: case GGUF_VT_INT64: case GGUF_VT_FLOAT64: return 8;
    default: return 0;
    }
}

static bool vtype_is_uint(gguf_vtype t) {
    return t == GGUF_VT_UINT8 || t == GGUF_VT_UINT16 || t == GGUF_VT_UINT32 || t == GGUF_VT_UINT64;
}
static bool vtype_is_sint(gguf_vtype t) {
    return t == GGUF_VT_INT8 || t == GGUF_VT_INT16 || t == GGUF_VT_INT32 || t == GGUF_VT_INT64;
}
static bool vtype_is_float(gguf_vtype t) { return t == GGUF_VT_FLOAT32 || t == GGUF_VT_FLOAT64; }

/* ---- little-endian loads and stores (host-independent) ---------------------------------------- */

static uint64_t load_le(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void store_le(uint8_t *p, uint64_t v, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static double bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static double bits_to_f64(uint64_t u) {
    double d;
    memcpy(&d, &u, 8);
    return d;
}

/* Decodes one scalar of type t at p into a value. */
static void decode_scalar(gguf_vtype t, const uint8_t *p, gguf_value *v) {
    size_t n = vtype_size(t);
    uint64_t raw = load_le(p, n);
    v->type = t;
    switch (t) {
    case GGUF_VT_UINT8: case GGUF_VT_UINT16: case GGUF_VT_UINT32: case GGUF_VT_UINT64:
        v->v.u64 = raw;
        break;
    case GGUF_VT_INT8: v->v.i64 = (int8_t)raw; break;
    case GGUF_VT_INT16: v->v.i64 = (int16_t)raw; break;
    case GGUF_VT_INT32: v->v.i64 = (int32_t)raw; break;
    case GGUF_VT_INT64: v->v.i64 = (int64_t)raw; break;
    case GGUF_VT_FLOAT32: v->v.f64 = bits_to_f32((uint32_t)raw); break;
    case GGUF_VT_FLOAT64: v->v.f64 = bits_to_f64(raw); break;
    case GGUF_VT_BOOL: v->v.b = raw != 0; break;
    default: break;
    }
}

/* ---- UTF-8 ------------------------------------------------------------------------------------ */

size_t gguf_utf8_next(const char *str, size_t n) {
    const uint8_t *s = (const uint8_t *)str;
    if (n == 0) return 0;
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf) { len = 2; cp = c & 0x1f; min = 0x80; }
    else if (c >= 0xe0 && c <= 0xef) { len = 3; cp = c & 0x0f; min = 0x800; }
    else if (c >= 0xf0 && c <= 0xf4) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

bool gguf_utf8_valid(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t k = gguf_utf8_next(s + i, n - i);
        if (!k) return false;
        i += k;
    }
    return true;
}

bool gguf_str_eq(gguf_str s, const char *cstr) {
    size_t n = strlen(cstr);
    return s.len == n && (n == 0 || memcmp(s.data, cstr, n) == 0);
}

/* Quotes a possibly hostile byte string for an error message: printable ASCII kept, the rest as
 * \xNN, cut at a sane length. */
static const char *quote(char *buf, size_t bufsize, const char *s, uint64_t n) {
    size_t o = 0;
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (o + 8 >= bufsize) {
            if (o + 4 <= bufsize) memcpy(buf + o, "...", 3), o += 3;
            break;
        }
        if (c >= 0x20 && c < 0x7f && c != '\\') buf[o++] = (char)c;
        else o += (size_t)snprintf(buf + o, bufsize - o, "\\x%02x", c);
    }
    buf[o] = 0;
    return buf;
}

/* ---- arena: chunked bump allocator, freed at once ---------------------------------------------- */

typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} arena_block;

#define ARENA_CHUNK ((size_t)64 << 10)

static void *arena_alloc(arena_block **head, size_t n, vkl_error *err) {
    n = (n + 15) & ~(size_t)15;
    arena_block *b = *head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ARENA_CHUNK / 4 ? n : ARENA_CHUNK;
        if (cap > SIZE_MAX - sizeof(arena_block)) {
            vkl_fail(err, "gguf: allocation of %zu bytes is too large", n);
            return NULL;
        }
        arena_block *nb = malloc(sizeof(arena_block) + cap);
        if (!nb) {
            vkl_fail(err, "gguf: out of host memory (asked for %zu bytes)", cap);
            return NULL;
        }
        nb->used = 0;
        nb->cap = cap;
        if (b && cap != ARENA_CHUNK) { /* a big one-off block: keep the current chunk on top */
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = b;
            *head = nb;
        }
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

/* Allocates count * size bytes, failing cleanly on overflow. */
static void *arena_array(arena_block **head, uint64_t count, size_t size, vkl_error *err) {
    uint64_t n;
    if (!vkl_mul_u64(count, size, &n) || n > SIZE_MAX / 2) {
        vkl_fail(err, "gguf: allocation of %llu x %zu bytes is too large", (unsigned long long)count, size);
        return NULL;
    }
    return arena_alloc(head, (size_t)n, err);
}

static void arena_free(arena_block *b) {
    while (b) {
        arena_block *next = b->next;
        free(b);
        b = next;
    }
}

/* ---- hash index over byte-string names (keys, tensor names) ------------------------------------ */

typedef struct name_index {
    uint32_t *slots; /* entry index + 1; 0 = empty */
    uint64_t mask;
} name_index;

static uint64_t hash_bytes(const char *s, uint64_t n) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (uint64_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return h;
}

static int index_init(name_index *ix, arena_block **a, uint64_t n, vkl_error *err) {
    uint64_t cap = 8;
    while (cap < 2 * n) cap *= 2;
    ix->slots = arena_array(a, cap, sizeof(uint32_t), err);
    ix->mask = cap - 1;
    return ix->slots ? 0 : -1;
}

typedef gguf_str (*name_of_fn)(const void *entries, uint32_t i);

/* Returns the slot for (s, n): either empty or holding the matching entry. */
static uint32_t *index_slot(const name_index *ix, const void *entries, name_of_fn name_of,
                            const char *s, uint64_t n) {
    uint64_t h = hash_bytes(s, n) & ix->mask;
    for (;;) {
        uint32_t *slot = &ix->slots[h];
        if (!*slot) return slot;
        gguf_str e = name_of(entries, *slot - 1);
        if (e.len == n && (n == 0 || memcmp(e.data, s, n) == 0)) return slot;
        h = (h + 1) & ix->mask;
    }
}

static gguf_str kv_name(const void *entries, uint32_t i) { return ((const gguf_kv *)entries)[i].key; }
static gguf_str tensor_name(const void *entries, uint32_t i) {
    const gguf_tensor *t = &((const gguf_tensor *)entries)[i];
    return (gguf_str){strlen(t->name), t->name};
}

/* Private part of a gguf_file (behind arena_). */
typedef struct gguf_priv {
    arena_block *arena;
    name_index kv_ix, tensor_ix;
} gguf_priv;

/* ---- reader ------------------------------------------------------------------------------------ */

typedef struct reader {
    const uint8_t *base;
    uint64_t size, pos;
    arena_block **arena;
    vkl_error *err;
    char ctx[160]; /* "key 'x'" or "tensor 'y'" for messages */
} reader;

static int rfail(reader *r, uint64_t offset, const char *fmt, ...) VKL_PRINTF(3, 4);
static int rfail(reader *r, uint64_t offset, const char *fmt, ...) {
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->ctx[0])
        return vkl_fail(r->err, "gguf: %s at offset %llu: %s", r->ctx, (unsigned long long)offset, msg);
    return vkl_fail(r->err, "gguf: at offset %llu: %s", (unsigned long long)offset, msg);
}

static uint64_t remaining(const reader *r) { return r->size - r->pos; }

static int need(reader *r, uint64_t n, const char *what) {
    if (n > remaining(r))
        return rfail(r, r->pos, "truncated: %s needs %llu bytes, only %llu left (file size %llu)", what,
                     (unsigned long long)n, (unsigned long long)remaining(r), (unsigned long long)r->size);
    return 0;
}

static int read_u32(reader *r, uint32_t *out, const char *what) {
    if (need(r, 4, what)) return -1;
    *out = (uint32_t)load_le(r->base + r->pos, 4);
    r->pos += 4;
    return 0;
}

static int read_u64(reader *r, uint64_t *out, const char *what) {
    if (need(r, 8, what)) return -1;
    *out = load_le(r->base + r->pos, 8);
    r->pos += 8;
    return 0;
}

static int read_str(reader *r, gguf_str *out, const char *what) {
    uint64_t at = r->pos, len;
    if (read_u64(r, &len, what)) return -1;
    if (len > remaining(r))
        return rfail(r, at, "%s length %llu runs past the end of the file (%llu bytes left, file size %llu)",
                     what, (unsigned long long)len, (unsigned long long)remaining(r),
                     (unsigned long long)r->size);
    out->len = len;
    out->data = (const char *)r->base + r->pos;
    r->pos += len;
    return 0;
}

/* ---- structure-only pre-scan: no allocation, no messages ------------------------------------------
 * Counts how many of the elements a count promises are really present, so that arrays are sized by
 * the file's content, never by a lying count. It checks a subset of what the real parse checks, so
 * the real parse fails at or before the first element the scan rejects. */

static bool skip_bytes(const reader *r, uint64_t *pos, uint64_t n) {
    if (n > r->size - *pos) return false;
    *pos += n;
    return true;
}

static bool skip_str(const reader *r, uint64_t *pos) {
    if (r->size - *pos < 8) return false;
    uint64_t len = load_le(r->base + *pos, 8);
    *pos += 8;
    return skip_bytes(r, pos, len);
}

static bool skip_value(const reader *r, uint64_t *pos, uint32_t type, int depth) {
    if (type == GGUF_VT_STRING) return skip_str(r, pos);
    if (type != GGUF_VT_ARRAY) {
        size_t n = vtype_size((gguf_vtype)type);
        return n && skip_bytes(r, pos, n);
    }
    if (depth >= GGUF_MAX_ARRAY_DEPTH || r->size - *pos < 12) return false;
    uint32_t et = (uint32_t)load_le(r->base + *pos, 4);
    uint64_t n = load_le(r->base + *pos + 4, 8), bytes;
    *pos += 12;
    if (et >= GGUF_VT_COUNT) return false;
    size_t es = vtype_size((gguf_vtype)et);
    if (es) return vkl_mul_u64(n, es, &bytes) && skip_bytes(r, pos, bytes);
    for (uint64_t i = 0; i < n; i++) /* each element takes >= 8 bytes: bounded by the file */
        if (!skip_value(r, pos, et, depth + 1)) return false;
    return true;
}

/* How many of n elements of type et (STRING or ARRAY) starting at r->pos are present. */
static uint64_t count_elements(const reader *r, uint32_t et, uint64_t n, int depth) {
    uint64_t pos = r->pos, i = 0;
    while (i < n && skip_value(r, &pos, et, depth)) i++;
    return i;
}

static uint64_t count_kvs(const reader *r, uint64_t n) {
    uint64_t pos = r->pos, i = 0;
    for (; i < n; i++) {
        if (!skip_str(r, &pos) || r->size - pos < 4) break;
        uint32_t type = (uint32_t)load_le(r->base + pos, 4);
        pos += 4;
        if (type >= GGUF_VT_COUNT || !skip_value(r, &pos, type, 0)) break;
    }
    return i;
}

static uint64_t count_tensor_infos(const reader *r, uint64_t n) {
    uint64_t pos = r->pos, i = 0;
    for (; i < n; i++) {
        if (!skip_str(r, &pos) || r->size - pos < 4) break;
        uint32_t n_dims = (uint32_t)load_le(r->base + pos, 4);
        pos += 4;
        if (n_dims < 1 || n_dims > GGUF_MAX_DIMS || !skip_bytes(r, &pos, 8ull * n_dims + 4 + 8)) break;
    }
    return i;
}

/* Capacity for n promised elements of which `present` parse: one more than present, so the real
 * parse can reach the bad element and report it. */
static uint64_t capacity_for(uint64_t n, uint64_t present) { return present < n ? present + 1 : n; }

static int read_value(reader *r, gguf_vtype type, gguf_value *out, int depth);

static int read_array(reader *r, gguf_value *out, int depth) {
    uint64_t at = r->pos;
    if (depth >= GGUF_MAX_ARRAY_DEPTH)
        return rfail(r, at, "arrays nested more than %d deep", GGUF_MAX_ARRAY_DEPTH);
    uint32_t et;
    uint64_t n;
    if (read_u32(r, &et, "array element type") || read_u64(r, &n, "array length")) return -1;
    if (et >= GGUF_VT_COUNT)
        return rfail(r, at, "invalid array element type %u", et);
    out->type = GGUF_VT_ARRAY;
    out->v.arr.type = (gguf_vtype)et;
    out->v.arr.n = n;
    size_t es = vtype_size((gguf_vtype)et);
    if (es) {
        uint64_t bytes;
        if (!vkl_mul_u64(n, es, &bytes) || bytes > remaining(r))
            return rfail(r, at, "array of %llu %s runs past the end of the file (%llu bytes left)",
                         (unsigned long long)n, gguf_vtype_name((gguf_vtype)et),
                         (unsigned long long)remaining(r));
        out->v.arr.data = r->base + r->pos;
        r->pos += bytes;
        return 0;
    }
    uint64_t min = et == GGUF_VT_STRING ? MIN_STR_BYTES : MIN_ARRAY_BYTES;
    if (n > remaining(r) / min)
        return rfail(r, at, "array of %llu %s cannot fit in the %llu bytes left", (unsigned long long)n,
                     gguf_vtype_name((gguf_vtype)et), (unsigned long long)remaining(r));
    if (n == 0) return 0;
    out->v.arr.data = r->base + r->pos;
    uint64_t cap = capacity_for(n, count_elements(r, et, n, depth + 1));
    if (et == GGUF_VT_STRING) {
        gguf_str *strs = arena_array(r->arena, cap, sizeof *strs, r->err);
        if (!strs) return -1;
        out->v.arr.strs = strs;
        for (uint64_t i = 0; i < n; i++) {
            if (i >= cap) return rfail(r, r->pos, "malformed array"); /* unreachable: the scan is no stricter */
            if (read_str(r, &strs[i], "string element")) return -1;
        }
        return 0;
    }
    gguf_value *items = arena_array(r->arena, cap, sizeof *items, r->err);
    if (!items) return -1;
    out->v.arr.items = items;
    for (uint64_t i = 0; i < n; i++) {
        if (i >= cap) return rfail(r, r->pos, "malformed array"); /* unreachable: the scan is no stricter */
        if (read_value(r, GGUF_VT_ARRAY, &items[i], depth + 1)) return -1;
    }
    return 0;
}

static int read_value(reader *r, gguf_vtype type, gguf_value *out, int depth) {
    memset(out, 0, sizeof *out);
    if (type == GGUF_VT_STRING) {
        out->type = GGUF_VT_STRING;
        return read_str(r, &out->v.str, "string value");
    }
    if (type == GGUF_VT_ARRAY) return read_array(r, out, depth);
    size_t n = vtype_size(type);
    if (!n) return rfail(r, r->pos, "invalid value type %u", (unsigned)type);
    if (need(r, n, gguf_vtype_name(type))) return -1;
    decode_scalar(type, r->base + r->pos, out);
    r->pos += n;
    return 0;
}

static int read_kvs(reader *r, gguf_file *f, gguf_priv *priv) {
    char qb[96];
    uint64_t cap = capacity_for(f->n_kv, count_kvs(r, f->n_kv));
    if (!(f->kv = arena_array(r->arena, cap, sizeof *f->kv, r->err)) || index_init(&priv->kv_ix, r->arena, cap, r->err))
        return -1;
    for (uint64_t i = 0; i < f->n_kv; i++) {
        if (i >= cap) return rfail(r, r->pos, "malformed metadata"); /* unreachable: the scan is no stricter */
        gguf_kv *kv = &f->kv[i];
        uint64_t at = r->pos;
        kv->offset = at;
        snprintf(r->ctx, sizeof r->ctx, "key #%llu", (unsigned long long)i);
        if (read_str(r, &kv->key, "key")) return -1;
        if (kv->key.len == 0) return rfail(r, at, "empty key");
        if (!gguf_utf8_valid(kv->key.data, kv->key.len))
            return rfail(r, at, "key '%s' is not valid UTF-8", quote(qb, sizeof qb, kv->key.data, kv->key.len));
        if (memchr(kv->key.data, 0, kv->key.len))
            return rfail(r, at, "key '%s' contains a NUL byte", quote(qb, sizeof qb, kv->key.data, kv->key.len));
        snprintf(r->ctx, sizeof r->ctx, "key '%s'", quote(qb, sizeof qb, kv->key.data, kv->key.len));
        uint32_t *slot = index_slot(&priv->kv_ix, f->kv, kv_name, kv->key.data, kv->key.len);
        if (*slot) return rfail(r, at, "duplicate key (first at offset %llu)", (unsigned long long)f->kv[*slot - 1].offset);
        *slot = (uint32_t)i + 1;
        uint32_t type;
        uint64_t tat = r->pos;
        if (read_u32(r, &type, "value type")) return -1;
        if (type >= GGUF_VT_COUNT) return rfail(r, tat, "invalid value type %u", type);
        if (read_value(r, (gguf_vtype)type, &kv->value, 0)) return -1;
    }
    r->ctx[0] = 0;
    return 0;
}

static int read_alignment(reader *r, gguf_file *f) {
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *kv = gguf_find_kv(f, "general.alignment");
    if (!kv) return 0;
    r->ctx[0] = 0;
    if (kv->value.type != GGUF_VT_UINT32)
        return rfail(r, kv->offset, "general.alignment has type %s, expected uint32", gguf_vtype_name(kv->value.type));
    uint64_t a = kv->value.v.u64;
    if (a == 0 || (a & (a - 1)))
        return rfail(r, kv->offset, "general.alignment %llu is not a nonzero power of two", (unsigned long long)a);
    f->alignment = a;
    return 0;
}

static int read_tensor_infos(reader *r, gguf_file *f, gguf_priv *priv) {
    char qb[96];
    uint64_t cap = capacity_for(f->n_tensors, count_tensor_infos(r, f->n_tensors));
    if (!(f->tensors = arena_array(r->arena, cap, sizeof *f->tensors, r->err)) ||
        index_init(&priv->tensor_ix, r->arena, cap, r->err))
        return -1;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        if (i >= cap) return rfail(r, r->pos, "malformed tensor infos"); /* unreachable: the scan is no stricter */
        gguf_tensor *t = &f->tensors[i];
        uint64_t at = r->pos;
        gguf_str name;
        snprintf(r->ctx, sizeof r->ctx, "tensor #%llu", (unsigned long long)i);
        if (read_str(r, &name, "tensor name")) return -1;
        if (name.len == 0) return rfail(r, at, "empty tensor name");
        if (memchr(name.data, 0, name.len)) return rfail(r, at, "tensor name contains a NUL byte");
        snprintf(r->ctx, sizeof r->ctx, "tensor '%s'", quote(qb, sizeof qb, name.data, name.len));
        t->name = arena_alloc(r->arena, name.len + 1, r->err);
        if (!t->name) return -1;
        memcpy(t->name, name.data, name.len);
        uint32_t *slot = index_slot(&priv->tensor_ix, f->tensors, tensor_name, name.data, name.len);
        if (*slot) return rfail(r, at, "duplicate tensor name");
        *slot = (uint32_t)i + 1;

        uint64_t dat = r->pos;
        if (read_u32(r, &t->n_dims, "n_dims")) return -1;
        if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
            return rfail(r, dat, "n_dims %u is not in 1..%d", t->n_dims, GGUF_MAX_DIMS);
        for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        uint64_t n_el = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            uint64_t nat = r->pos, v;
            if (read_u64(r, &v, "dimension")) return -1;
            t->ne[d] = (int64_t)v;
            if (t->ne[d] < 1) return rfail(r, nat, "dimension %u is %lld, must be >= 1", d, (long long)t->ne[d]);
            if (!vkl_mul_u64(n_el, v, &n_el) || n_el > (uint64_t)INT64_MAX)
                return rfail(r, nat, "element count overflows (dimension %u is %llu)", d, (unsigned long long)v);
        }
        t->n_elements = n_el;
        uint64_t tat = r->pos;
        uint32_t type;
        if (read_u32(r, &type, "tensor type")) return -1;
        const vkl_type_traits *tr = vkl_type_get((int)type);
        if (!tr || type > INT32_MAX)
            return rfail(r, tat, "unsupported tensor type %u (%s)", type, vkl_type_name((int)type));
        t->type = (vkl_type)type;
        if (t->ne[0] % tr->block_size)
            return rfail(r, dat, "ne[0] = %lld is not a multiple of the %s block size %lld", (long long)t->ne[0],
                         tr->name, (long long)tr->block_size);
        uint64_t row = (uint64_t)(t->ne[0] / tr->block_size), bytes;
        if (!vkl_mul_u64(row, tr->type_size, &bytes) || !vkl_mul_u64(bytes, (uint64_t)t->ne[1], &bytes) ||
            !vkl_mul_u64(bytes, (uint64_t)t->ne[2], &bytes) || !vkl_mul_u64(bytes, (uint64_t)t->ne[3], &bytes))
            return rfail(r, dat, "byte size overflows");
        t->nbytes = bytes;
        uint64_t oat = r->pos;
        if (read_u64(r, &t->offset, "tensor offset")) return -1;
        if (t->offset % f->alignment)
            return rfail(r, oat, "data offset %llu is not a multiple of the alignment %llu",
                         (unsigned long long)t->offset, (unsigned long long)f->alignment);
    }
    r->ctx[0] = 0;
    return 0;
}

static int cmp_tensor_offset(const void *a, const void *b) {
    const gguf_tensor *x = *(const gguf_tensor *const *)a, *y = *(const gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Every tensor's data inside the file, and no two overlapping. */
static int check_tensor_data(reader *r, gguf_file *f) {
    char qb[96];
    if (f->n_tensors == 0) return 0;
    gguf_tensor **order = arena_array(r->arena, f->n_tensors, sizeof *order, r->err);
    if (!order) return -1;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        order[i] = t;
        uint64_t start, end;
        if (!vkl_add_u64(f->data_offset, t->offset, &start) || !vkl_add_u64(start, t->nbytes, &end))
            return vkl_fail(r->err, "gguf: tensor '%s': data offset %llu + size %llu overflows",
                            quote(qb, sizeof qb, t->name, strlen(t->name)), (unsigned long long)t->offset,
                            (unsigned long long)t->nbytes);
        if (end > f->size)
            return vkl_fail(r->err, "gguf: tensor '%s' at offset %llu: data [%llu, %llu) lies outside the file (size %llu)",
                            quote(qb, sizeof qb, t->name, strlen(t->name)), (unsigned long long)start,
                            (unsigned long long)start, (unsigned long long)end, (unsigned long long)f->size);
        t->data = f->base + start;
    }
    qsort(order, f->n_tensors, sizeof *order, cmp_tensor_offset);
    for (uint64_t i = 1; i < f->n_tensors; i++) {
        const gguf_tensor *a = order[i - 1], *b = order[i];
        if (a->offset + a->nbytes > b->offset) {
            char qa[96];
            return vkl_fail(r->err, "gguf: tensor '%s' at data offset %llu overlaps tensor '%s' [%llu, %llu)",
                            quote(qb, sizeof qb, b->name, strlen(b->name)), (unsigned long long)b->offset,
                            quote(qa, sizeof qa, a->name, strlen(a->name)), (unsigned long long)a->offset,
                            (unsigned long long)(a->offset + a->nbytes));
        }
    }
    return 0;
}

static gguf_file *parse(const uint8_t *base, uint64_t size, vkl_error *err) {
    if (size < 4) {
        vkl_fail(err, "gguf: file too small for a GGUF header (%llu bytes)", (unsigned long long)size);
        return NULL;
    }
    if (memcmp(base, GGUF_MAGIC, 4) != 0) {
        vkl_fail(err, "gguf: at offset 0: bad magic %02x %02x %02x %02x, expected \"GGUF\" (not a GGUF file)",
                 base[0], base[1], base[2], base[3]);
        return NULL;
    }
    if (size < 24) {
        vkl_fail(err, "gguf: truncated header (%llu bytes, need 24)", (unsigned long long)size);
        return NULL;
    }
    uint32_t version = (uint32_t)load_le(base + 4, 4);
    if (version == 1) {
        vkl_fail(err, "gguf: at offset 4: GGUF version 1 is not supported (re-convert the model with a current llama.cpp)");
        return NULL;
    }
    if (version != 2 && version != 3) {
        if (version == 0x02000000u || version == 0x03000000u)
            vkl_fail(err, "gguf: at offset 4: big-endian GGUF files are not supported");
        else
            vkl_fail(err, "gguf: at offset 4: unsupported GGUF version %u (supported: 2, 3)", version);
        return NULL;
    }
    uint64_t n_tensors = load_le(base + 8, 8), n_kv = load_le(base + 16, 8);
    uint64_t rest = size - 24;
    if (n_kv > rest / MIN_KV_BYTES || n_kv >= UINT32_MAX) {
        vkl_fail(err, "gguf: at offset 16: n_kv %llu is impossible: the remaining %llu bytes hold at most %llu",
                 (unsigned long long)n_kv, (unsigned long long)rest, (unsigned long long)(rest / MIN_KV_BYTES));
        return NULL;
    }
    rest -= n_kv * MIN_KV_BYTES;
    if (n_tensors > rest / MIN_TENSOR_BYTES || n_tensors >= UINT32_MAX) {
        vkl_fail(err, "gguf: at offset 8: n_tensors %llu is impossible: the remaining %llu bytes hold at most %llu",
                 (unsigned long long)n_tensors, (unsigned long long)rest,
                 (unsigned long long)(rest / MIN_TENSOR_BYTES));
        return NULL;
    }

    gguf_file *f = vkl_calloc(1, sizeof *f, err);
    gguf_priv *priv = vkl_calloc(1, sizeof *priv, err);
    if (!f || !priv) {
        free(f);
        free(priv);
        return NULL;
    }
    f->arena_ = priv;
    f->version = version;
    f->base = base;
    f->size = size;
    f->n_kv = n_kv;
    f->n_tensors = n_tensors;
    reader r = {.base = base, .size = size, .pos = 24, .arena = &priv->arena, .err = err};
    if (read_kvs(&r, f, priv) || read_alignment(&r, f) || read_tensor_infos(&r, f, priv))
        goto fail;
    if (!vkl_add_u64(r.pos, f->alignment - 1, &f->data_offset)) {
        rfail(&r, r.pos, "data offset overflows");
        goto fail;
    }
    f->data_offset -= f->data_offset % f->alignment;
    /* A file without tensors may end right after its metadata (no padding). */
    if (n_tensors > 0 && f->data_offset > size) {
        rfail(&r, r.pos, "truncated: the data section would start at %llu, past the end of the file (size %llu)",
              (unsigned long long)f->data_offset, (unsigned long long)size);
        goto fail;
    }
    if (check_tensor_data(&r, f)) goto fail;
    return f;
fail:
    gguf_close(f);
    return NULL;
}

gguf_file *gguf_open_memory(const void *data, size_t size, vkl_error *err) {
    if (!data && size) {
        vkl_fail(err, "gguf: NULL buffer");
        return NULL;
    }
    static const uint8_t empty[1];
    return parse(data ? data : empty, size, err);
}

gguf_file *gguf_open(const char *path, vkl_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        vkl_fail(err, "cannot open: %s", strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        vkl_fail(err, "cannot stat: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        vkl_fail(err, "is a directory, not a GGUF file");
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        vkl_fail(err, "not a regular file");
        close(fd);
        return NULL;
    }
    if (st.st_size == 0) {
        vkl_fail(err, "empty file (0 bytes), not a GGUF file");
        close(fd);
        return NULL;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        vkl_fail(err, "file too large to map");
        close(fd);
        return NULL;
    }
    size_t size = (size_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (map == MAP_FAILED) {
        vkl_fail(err, "cannot map %zu bytes: %s", size, strerror(map_errno));
        return NULL;
    }
    gguf_file *f = parse(map, size, err);
    if (!f) {
        munmap(map, size);
        return NULL;
    }
    f->map_ = map;
    f->map_size_ = size;
    return f;
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    gguf_priv *priv = f->arena_;
    if (priv) {
        arena_free(priv->arena);
        free(priv);
    }
    if (f->map_) munmap(f->map_, f->map_size_);
    free(f);
}

/* ---- lookup and typed getters ------------------------------------------------------------------ */

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key) {
    const gguf_priv *priv = f->arena_;
    if (!f->n_kv || !priv->kv_ix.slots) return NULL;
    uint32_t *slot = index_slot(&priv->kv_ix, f->kv, kv_name, key, strlen(key));
    return *slot ? &f->kv[*slot - 1] : NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    const gguf_priv *priv = f->arena_;
    if (!f->n_tensors || !priv->tensor_ix.slots) return NULL;
    uint32_t *slot = index_slot(&priv->tensor_ix, f->tensors, tensor_name, name, strlen(name));
    return *slot ? &f->tensors[*slot - 1] : NULL;
}

static const gguf_kv *get_kv(const gguf_file *f, const char *key, vkl_error *err) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) vkl_fail(err, "key '%s' missing", key);
    return kv;
}

static int wrong_type(const gguf_kv *kv, const char *key, const char *expected, vkl_error *err) {
    if (kv->value.type == GGUF_VT_ARRAY)
        return vkl_fail(err, "key '%s' is an array of %s, expected %s", key, gguf_vtype_name(kv->value.v.arr.type),
                        expected);
    return vkl_fail(err, "key '%s' has type %s, expected %s", key, gguf_vtype_name(kv->value.type), expected);
}

/* Reads an integer value as (negative?, magnitude-or-value). */
static int get_int(const gguf_file *f, const char *key, bool *neg, uint64_t *u, int64_t *s, vkl_error *err) {
    const gguf_kv *kv = get_kv(f, key, err);
    if (!kv) return -1;
    if (vtype_is_uint(kv->value.type)) {
        *neg = false;
        *u = kv->value.v.u64;
        return 0;
    }
    if (vtype_is_sint(kv->value.type)) {
        *s = kv->value.v.i64;
        *neg = *s < 0;
        *u = *neg ? 0 : (uint64_t)*s;
        return 0;
    }
    return wrong_type(kv, key, "an integer", err);
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, vkl_error *err) {
    bool neg;
    uint64_t u;
    int64_t s = 0;
    if (get_int(f, key, &neg, &u, &s, err)) return -1;
    if (neg) return vkl_fail(err, "key '%s' value %lld does not fit in uint32", key, (long long)s);
    if (u > UINT32_MAX) return vkl_fail(err, "key '%s' value %llu does not fit in uint32", key, (unsigned long long)u);
    *out = (uint32_t)u;
    return 0;
}

int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out, vkl_error *err) {
    bool neg;
    uint64_t u;
    int64_t s = 0;
    if (get_int(f, key, &neg, &u, &s, err)) return -1;
    if (neg) return vkl_fail(err, "key '%s' value %lld does not fit in uint64", key, (long long)s);
    *out = u;
    return 0;
}

int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out, vkl_error *err) {
    bool neg;
    uint64_t u;
    int64_t s = 0;
    if (get_int(f, key, &neg, &u, &s, err)) return -1;
    if (neg) {
        *out = s;
        return 0;
    }
    if (u > (uint64_t)INT64_MAX) return vkl_fail(err, "key '%s' value %llu does not fit in int64", key, (unsigned long long)u);
    *out = (int64_t)u;
    return 0;
}

int gguf_get_f32(const gguf_file *f, const char *key, float *out, vkl_error *err) {
    const gguf_kv *kv = get_kv(f, key, err);
    if (!kv) return -1;
    gguf_vtype t = kv->value.type;
    if (vtype_is_float(t)) *out = (float)kv->value.v.f64;
    else if (vtype_is_uint(t)) *out = (float)kv->value.v.u64;
    else if (vtype_is_sint(t)) *out = (float)kv->value.v.i64;
    else return wrong_type(kv, key, "a number", err);
    return 0;
}

int gguf_get_bool(const gguf_file *f, const char *key, bool *out, vkl_error *err) {
    const gguf_kv *kv = get_kv(f, key, err);
    if (!kv) return -1;
    if (kv->value.type != GGUF_VT_BOOL) return wrong_type(kv, key, "bool", err);
    *out = kv->value.v.b;
    return 0;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, vkl_error *err) {
    const gguf_kv *kv = get_kv(f, key, err);
    if (!kv) return -1;
    if (kv->value.type != GGUF_VT_STRING) return wrong_type(kv, key, "string", err);
    *out = kv->value.v.str;
    return 0;
}

int gguf_get_cstr(const gguf_file *f, const char *key, char *buf, size_t bufsize, vkl_error *err) {
    gguf_str s;
    if (bufsize == 0) return vkl_fail(err, "key '%s': empty output buffer", key);
    if (gguf_get_str(f, key, &s, err)) return -1;
    size_t n = s.len < bufsize - 1 ? (size_t)s.len : bufsize - 1;
    if (n) memcpy(buf, s.data, n);
    buf[n] = 0;
    return 0;
}

int gguf_get_arr(const gguf_file *f, const char *key, gguf_vtype elem_type, const gguf_value **out, vkl_error *err) {
    const gguf_kv *kv = get_kv(f, key, err);
    if (!kv) return -1;
    if (kv->value.type != GGUF_VT_ARRAY) return wrong_type(kv, key, "an array", err);
    if (elem_type != GGUF_VT_COUNT && kv->value.v.arr.type != elem_type)
        return vkl_fail(err, "key '%s' is an array of %s, expected an array of %s", key,
                        gguf_vtype_name(kv->value.v.arr.type), gguf_vtype_name(elem_type));
    *out = &kv->value;
    return 0;
}

/* Element i of a scalar array, decoded; false if not a numeric scalar array or out of range. */
static bool arr_elem(const gguf_value *arr, uint64_t i, gguf_value *v) {
    if (!arr || arr->type != GGUF_VT_ARRAY || i >= arr->v.arr.n || !arr->v.arr.data) return false;
    size_t es = vtype_size(arr->v.arr.type);
    if (!es) return false;
    decode_scalar(arr->v.arr.type, (const uint8_t *)arr->v.arr.data + i * es, v);
    return true;
}

double gguf_arr_f64(const gguf_value *arr, uint64_t i) {
    gguf_value v;
    if (!arr_elem(arr, i, &v)) return 0.0;
    if (vtype_is_float(v.type)) return v.v.f64;
    if (vtype_is_uint(v.type)) return (double)v.v.u64;
    if (vtype_is_sint(v.type)) return (double)v.v.i64;
    return v.v.b ? 1.0 : 0.0;
}

int64_t gguf_arr_i64(const gguf_value *arr, uint64_t i) {
    gguf_value v;
    if (!arr_elem(arr, i, &v)) return 0;
    if (vtype_is_float(v.type)) {
        double d = v.v.f64;
        if (!(d == d)) return 0;
        if (d >= 9.2233720368547758e18) return INT64_MAX;
        if (d <= -9.2233720368547758e18) return INT64_MIN;
        return (int64_t)d;
    }
    if (vtype_is_uint(v.type)) return v.v.u64 > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v.v.u64;
    if (vtype_is_sint(v.type)) return v.v.i64;
    return v.v.b ? 1 : 0;
}

/* ---- writer ------------------------------------------------------------------------------------ */

typedef struct wtensor {
    char *name;
    vkl_type type;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    uint64_t nbytes, offset;
} wtensor;

typedef struct bytebuf {
    uint8_t *p;
    size_t len, cap;
} bytebuf;

struct gguf_writer {
    char *path, *tmp_path;
    FILE *fp;
    uint64_t pos; /* bytes written to fp */
    uint32_t alignment;
    bool alignment_set; /* by set_alignment or an explicit general.alignment kv */
    bool alignment_kv;  /* general.alignment was added as a kv */
    bytebuf kvs;        /* serialized key/value pairs, in order */
    uint64_t n_kv;
    char **keys;
    size_t n_keys, keys_cap;
    wtensor *tensors;
    uint64_t n_tensors, tensors_cap;
    uint64_t n_written; /* tensors whose data has been written */
    bool header_written, failed;
};

static int buf_reserve(bytebuf *b, size_t extra, vkl_error *err) {
    if (extra > SIZE_MAX / 2 - b->len) return vkl_fail(err, "gguf writer: metadata too large");
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) return vkl_fail(err, "gguf writer: out of host memory (asked for %zu bytes)", cap);
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_put(bytebuf *b, const void *data, size_t n, vkl_error *err) {
    if (buf_reserve(b, n, err)) return -1;
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

static int buf_le(bytebuf *b, uint64_t v, size_t n, vkl_error *err) {
    uint8_t tmp[8];
    store_le(tmp, v, n);
    return buf_put(b, tmp, n, err);
}

static int buf_str(bytebuf *b, const char *s, uint64_t n, vkl_error *err) {
    if (n > SIZE_MAX / 2) return vkl_fail(err, "gguf writer: string too long");
    if (n && !s) return vkl_fail(err, "gguf writer: NULL string data");
    if (buf_le(b, n, 8, err)) return -1;
    return buf_put(b, s, (size_t)n, err);
}

/* Encodes a scalar value of type t, checking that it fits the type. */
static int encode_scalar(bytebuf *b, const gguf_value *v, const char *key, vkl_error *err) {
    gguf_vtype t = v->type;
    size_t n = vtype_size(t);
    uint64_t raw = 0;
    if (vtype_is_uint(t)) {
        if (n < 8 && v->v.u64 >> (8 * n))
            return vkl_fail(err, "gguf writer: key '%s': value %llu does not fit in %s", key,
                            (unsigned long long)v->v.u64, gguf_vtype_name(t));
        raw = v->v.u64;
    } else if (vtype_is_sint(t)) {
        int64_t lim = n < 8 ? (int64_t)1 << (8 * n - 1) : 0;
        if (n < 8 && (v->v.i64 < -lim || v->v.i64 >= lim))
            return vkl_fail(err, "gguf writer: key '%s': value %lld does not fit in %s", key,
                            (long long)v->v.i64, gguf_vtype_name(t));
        raw = (uint64_t)v->v.i64;
    } else if (t == GGUF_VT_FLOAT32) {
        float fv = (float)v->v.f64;
        uint32_t u;
        memcpy(&u, &fv, 4);
        raw = u;
    } else if (t == GGUF_VT_FLOAT64) {
        memcpy(&raw, &v->v.f64, 8);
    } else if (t == GGUF_VT_BOOL) {
        raw = v->v.b ? 1 : 0;
    }
    return buf_le(b, raw, n, err);
}

static int encode_value(bytebuf *b, const gguf_value *v, const char *key, int depth, vkl_error *err) {
    if ((unsigned)v->type >= GGUF_VT_COUNT)
        return vkl_fail(err, "gguf writer: key '%s': invalid value type %u", key, (unsigned)v->type);
    if (v->type == GGUF_VT_STRING) return buf_str(b, v->v.str.data, v->v.str.len, err);
    if (v->type != GGUF_VT_ARRAY) return encode_scalar(b, v, key, err);
    if (depth >= GGUF_MAX_ARRAY_DEPTH)
        return vkl_fail(err, "gguf writer: key '%s': arrays nested more than %d deep", key, GGUF_MAX_ARRAY_DEPTH);
    gguf_vtype et = v->v.arr.type;
    uint64_t n = v->v.arr.n;
    if ((unsigned)et >= GGUF_VT_COUNT)
        return vkl_fail(err, "gguf writer: key '%s': invalid array element type %u", key, (unsigned)et);
    if (buf_le(b, (uint64_t)et, 4, err) || buf_le(b, n, 8, err)) return -1;
    size_t es = vtype_size(et);
    if (es) {
        uint64_t bytes;
        if (!vkl_mul_u64(n, es, &bytes) || bytes > SIZE_MAX / 2)
            return vkl_fail(err, "gguf writer: key '%s': array too large", key);
        if (n && !v->v.arr.data) return vkl_fail(err, "gguf writer: key '%s': NULL array data", key);
        return buf_put(b, v->v.arr.data, (size_t)bytes, err);
    }
    if (n && !(et == GGUF_VT_STRING ? (const void *)v->v.arr.strs : (const void *)v->v.arr.items))
        return vkl_fail(err, "gguf writer: key '%s': NULL array elements", key);
    for (uint64_t i = 0; i < n; i++) {
        if (et == GGUF_VT_STRING) {
            if (buf_str(b, v->v.arr.strs[i].data, v->v.arr.strs[i].len, err)) return -1;
        } else {
            const gguf_value *item = &v->v.arr.items[i];
            if (item->type != GGUF_VT_ARRAY)
                return vkl_fail(err, "gguf writer: key '%s': element %llu of an array of arrays has type %s", key,
                                (unsigned long long)i, gguf_vtype_name(item->type));
            if (encode_value(b, item, key, depth + 1, err)) return -1;
        }
    }
    return 0;
}

gguf_writer *gguf_writer_open(const char *path, vkl_error *err) {
    gguf_writer *w = vkl_calloc(1, sizeof *w, err);
    if (!w) return NULL;
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
    size_t n = strlen(path);
    w->path = vkl_strdup(path, err);
    w->tmp_path = vkl_malloc(n + 5, err);
    if (!w->path || !w->tmp_path) goto fail;
    memcpy(w->tmp_path, path, n);
    memcpy(w->tmp_path + n, ".tmp", 5);
    w->fp = fopen(w->tmp_path, "wb");
    if (!w->fp) {
        vkl_fail(err, "gguf writer: cannot create '%s': %s", w->tmp_path, strerror(errno));
        goto fail;
    }
    setvbuf(w->fp, NULL, _IOFBF, (size_t)1 << 20);
    return w;
fail:
    free(w->path);
    free(w->tmp_path);
    free(w);
    return NULL;
}

static int writer_usable(gguf_writer *w, bool need_no_header, vkl_error *err) {
    if (w->failed) return vkl_fail(err, "gguf writer: an earlier write failed");
    if (need_no_header && w->header_written)
        return vkl_fail(err, "gguf writer: metadata and tensor infos must be added before any tensor data");
    return 0;
}

int gguf_writer_set_alignment(gguf_writer *w, uint32_t alignment, vkl_error *err) {
    if (writer_usable(w, true, err)) return -1;
    if (alignment == 0 || (alignment & (alignment - 1)))
        return vkl_fail(err, "gguf writer: alignment %u is not a nonzero power of two", alignment);
    if (w->alignment_kv && alignment != w->alignment)
        return vkl_fail(err, "gguf writer: alignment %u conflicts with general.alignment %u already added", alignment,
                        w->alignment);
    w->alignment = alignment;
    w->alignment_set = true;
    return 0;
}

static int check_key(gguf_writer *w, const char *key, vkl_error *err) {
    size_t n = strlen(key);
    if (n == 0) return vkl_fail(err, "gguf writer: empty key");
    if (!gguf_utf8_valid(key, n)) return vkl_fail(err, "gguf writer: key is not valid UTF-8");
    for (size_t i = 0; i < w->n_keys; i++)
        if (!strcmp(w->keys[i], key)) return vkl_fail(err, "gguf writer: duplicate key '%s'", key);
    return 0;
}

static int remember_key(gguf_writer *w, const char *key, vkl_error *err) {
    if (w->n_keys == w->keys_cap) {
        size_t cap = w->keys_cap ? 2 * w->keys_cap : 32;
        char **k = realloc(w->keys, cap * sizeof *k);
        if (!k) return vkl_fail(err, "gguf writer: out of host memory");
        w->keys = k;
        w->keys_cap = cap;
    }
    if (!(w->keys[w->n_keys] = vkl_strdup(key, err))) return -1;
    w->n_keys++;
    return 0;
}

int gguf_writer_add_kv(gguf_writer *w, const char *key, const gguf_value *value, vkl_error *err) {
    if (writer_usable(w, true, err) || check_key(w, key, err)) return -1;
    bool is_alignment = !strcmp(key, "general.alignment");
    if (is_alignment) {
        if (value->type != GGUF_VT_UINT32)
            return vkl_fail(err, "gguf writer: general.alignment must be uint32, not %s", gguf_vtype_name(value->type));
        uint64_t a = value->v.u64;
        if (a == 0 || a > UINT32_MAX || (a & (a - 1)))
            return vkl_fail(err, "gguf writer: general.alignment %llu is not a nonzero power of two",
                            (unsigned long long)a);
        if (w->alignment_set && a != w->alignment)
            return vkl_fail(err, "gguf writer: general.alignment %llu conflicts with the alignment %u already set",
                            (unsigned long long)a, w->alignment);
    }
    size_t mark = w->kvs.len;
    if (buf_str(&w->kvs, key, strlen(key), err) || buf_le(&w->kvs, (uint64_t)value->type, 4, err) ||
        encode_value(&w->kvs, value, key, 0, err) || remember_key(w, key, err)) {
        w->kvs.len = mark; /* leave the writer as it was */
        return -1;
    }
    if (is_alignment) {
        w->alignment = (uint32_t)value->v.u64;
        w->alignment_set = w->alignment_kv = true;
    }
    w->n_kv++;
    return 0;
}

int gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t v, vkl_error *err) {
    gguf_value val = {.type = GGUF_VT_UINT32, .v.u64 = v};
    return gguf_writer_add_kv(w, key, &val, err);
}

int gguf_writer_add_i32(gguf_writer *w, const char *key, int32_t v, vkl_error *err) {
    gguf_value val = {.type = GGUF_VT_INT32, .v.i64 = v};
    return gguf_writer_add_kv(w, key, &val, err);
}

int gguf_writer_add_f32(gguf_writer *w, const char *key, float v, vkl_error *err) {
    gguf_value val = {.type = GGUF_VT_FLOAT32, .v.f64 = v};
    return gguf_writer_add_kv(w, key, &val, err);
}

int gguf_writer_add_bool(gguf_writer *w, const char *key, bool v, vkl_error *err) {
    gguf_value val = {.type = GGUF_VT_BOOL, .v.b = v};
    return gguf_writer_add_kv(w, key, &val, err);
}

int gguf_writer_add_str(gguf_writer *w, const char *key, const char *v, vkl_error *err) {
    gguf_value val = {.type = GGUF_VT_STRING, .v.str = {strlen(v), v}};
    return gguf_writer_add_kv(w, key, &val, err);
}

int gguf_writer_copy_kvs(gguf_writer *w, const gguf_file *src, bool (*skip)(const char *key), vkl_error *err) {
    for (uint64_t i = 0; i < src->n_kv; i++) {
        const gguf_kv *kv = &src->kv[i];
        char *key = vkl_malloc((size_t)kv->key.len + 1, err);
        if (!key) return -1;
        memcpy(key, kv->key.data, (size_t)kv->key.len);
        key[kv->key.len] = 0;
        int rc = (skip && skip(key)) ? 0 : gguf_writer_add_kv(w, key, &kv->value, err);
        free(key);
        if (rc) return -1;
    }
    return 0;
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, vkl_type type, uint32_t n_dims, const int64_t *ne,
                           vkl_error *err) {
    if (writer_usable(w, true, err)) return -1;
    size_t len = strlen(name);
    if (len == 0) return vkl_fail(err, "gguf writer: empty tensor name");
    if (len > GGUF_WRITER_MAX_NAME)
        return vkl_fail(err, "gguf writer: tensor name '%s' is longer than %d bytes", name, GGUF_WRITER_MAX_NAME);
    for (uint64_t i = 0; i < w->n_tensors; i++)
        if (!strcmp(w->tensors[i].name, name)) return vkl_fail(err, "gguf writer: duplicate tensor '%s'", name);
    const vkl_type_traits *tr = vkl_type_get((int)type);
    if (!tr) return vkl_fail(err, "gguf writer: tensor '%s': unsupported type %d (%s)", name, (int)type, vkl_type_name((int)type));
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return vkl_fail(err, "gguf writer: tensor '%s': n_dims %u is not in 1..%d", name, n_dims, GGUF_MAX_DIMS);
    wtensor t = {.type = type, .n_dims = n_dims, .ne = {1, 1, 1, 1}};
    uint64_t n_el = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] < 1) return vkl_fail(err, "gguf writer: tensor '%s': dimension %u is %lld", name, d, (long long)ne[d]);
        t.ne[d] = ne[d];
        if (!vkl_mul_u64(n_el, (uint64_t)ne[d], &n_el) || n_el > (uint64_t)INT64_MAX)
            return vkl_fail(err, "gguf writer: tensor '%s': element count overflows", name);
    }
    if (t.ne[0] % tr->block_size)
        return vkl_fail(err, "gguf writer: tensor '%s': ne[0] = %lld is not a multiple of the %s block size %lld", name,
                        (long long)t.ne[0], tr->name, (long long)tr->block_size);
    uint64_t bytes = (uint64_t)(t.ne[0] / tr->block_size) * tr->type_size;
    for (int d = 1; d < GGUF_MAX_DIMS; d++)
        if (!vkl_mul_u64(bytes, (uint64_t)t.ne[d], &bytes))
            return vkl_fail(err, "gguf writer: tensor '%s': byte size overflows", name);
    t.nbytes = bytes;
    if (w->n_tensors == w->tensors_cap) {
        uint64_t cap = w->tensors_cap ? 2 * w->tensors_cap : 64;
        wtensor *nt = realloc(w->tensors, (size_t)cap * sizeof *nt);
        if (!nt) return vkl_fail(err, "gguf writer: out of host memory");
        w->tensors = nt;
        w->tensors_cap = cap;
    }
    if (!(t.name = vkl_strdup(name, err))) return -1;
    w->tensors[w->n_tensors++] = t;
    return 0;
}

static int wwrite(gguf_writer *w, const void *data, size_t n, vkl_error *err) {
    if (n && fwrite(data, 1, n, w->fp) != n) {
        w->failed = true;
        return vkl_fail(err, "gguf writer: cannot write '%s': %s", w->tmp_path, strerror(errno));
    }
    w->pos += n;
    return 0;
}

static int wpad(gguf_writer *w, vkl_error *err) {
    static const uint8_t zeros[64];
    uint64_t pad = (w->alignment - w->pos % w->alignment) % w->alignment;
    while (pad) {
        size_t k = pad < sizeof zeros ? (size_t)pad : sizeof zeros;
        if (wwrite(w, zeros, k, err)) return -1;
        pad -= k;
    }
    return 0;
}

/* Lays out the data section and writes everything before it. */
static int write_header(gguf_writer *w, vkl_error *err) {
    bool extra_alignment_kv = !w->alignment_kv && w->alignment != GGUF_DEFAULT_ALIGNMENT;
    bytebuf b = {0};
    uint64_t offset = 0;
    int rc = -1;
    if (buf_put(&b, GGUF_MAGIC, 4, err) || buf_le(&b, 3, 4, err) || buf_le(&b, w->n_tensors, 8, err) ||
        buf_le(&b, w->n_kv + (extra_alignment_kv ? 1 : 0), 8, err) || wwrite(w, b.p, b.len, err) ||
        wwrite(w, w->kvs.p, w->kvs.len, err))
        goto done;
    b.len = 0;
    if (extra_alignment_kv) {
        gguf_value v = {.type = GGUF_VT_UINT32, .v.u64 = w->alignment};
        if (buf_str(&b, "general.alignment", 17, err) || buf_le(&b, GGUF_VT_UINT32, 4, err) ||
            encode_value(&b, &v, "general.alignment", 0, err))
            goto done;
    }
    for (uint64_t i = 0; i < w->n_tensors; i++) {
        wtensor *t = &w->tensors[i];
        t->offset = offset;
        if (!vkl_add_u64(offset, t->nbytes, &offset) || !vkl_add_u64(offset, w->alignment - 1, &offset)) {
            vkl_fail(err, "gguf writer: data section too large");
            goto done;
        }
        offset -= offset % w->alignment;
        if (buf_str(&b, t->name, strlen(t->name), err) || buf_le(&b, t->n_dims, 4, err)) goto done;
        for (uint32_t d = 0; d < t->n_dims; d++)
            if (buf_le(&b, (uint64_t)t->ne[d], 8, err)) goto done;
        if (buf_le(&b, (uint64_t)t->type, 4, err) || buf_le(&b, t->offset, 8, err)) goto done;
    }
    if (wwrite(w, b.p, b.len, err)) goto done;
    /* A file without tensors ends after its metadata, as llama.cpp writes it. */
    if (w->n_tensors && wpad(w, err)) goto done;
    w->header_written = true;
    rc = 0;
done:
    free(b.p);
    if (rc) w->failed = true;
    return rc;
}

int gguf_writer_write_tensor_data(gguf_writer *w, const void *data, uint64_t nbytes, vkl_error *err) {
    if (writer_usable(w, false, err)) return -1;
    if (!w->header_written && write_header(w, err)) return -1;
    if (w->n_written >= w->n_tensors)
        return vkl_fail(err, "gguf writer: data for %llu tensors already written, no tensor left",
                        (unsigned long long)w->n_written);
    const wtensor *t = &w->tensors[w->n_written];
    if (nbytes != t->nbytes)
        return vkl_fail(err, "gguf writer: tensor '%s' has %llu bytes, got %llu", t->name,
                        (unsigned long long)t->nbytes, (unsigned long long)nbytes);
    if (nbytes > SIZE_MAX) return vkl_fail(err, "gguf writer: tensor '%s' too large", t->name);
    if (nbytes && !data) return vkl_fail(err, "gguf writer: tensor '%s': NULL data", t->name);
    if (wwrite(w, data, (size_t)nbytes, err) || wpad(w, err)) return -1;
    w->n_written++;
    return 0;
}

static void writer_free(gguf_writer *w) {
    for (size_t i = 0; i < w->n_keys; i++) free(w->keys[i]);
    for (uint64_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->keys);
    free(w->tensors);
    free(w->kvs.p);
    free(w->path);
    free(w->tmp_path);
    free(w);
}

int gguf_writer_close(gguf_writer *w, vkl_error *err) {
    if (!w) return vkl_fail(err, "gguf writer: NULL writer");
    int rc = writer_usable(w, false, err);
    if (!rc && !w->header_written) rc = write_header(w, err);
    if (!rc && w->n_written != w->n_tensors)
        rc = vkl_fail(err, "gguf writer: only %llu of %llu tensors' data written", (unsigned long long)w->n_written,
                      (unsigned long long)w->n_tensors);
    if (!rc && fflush(w->fp) != 0)
        rc = vkl_fail(err, "gguf writer: cannot write '%s': %s", w->tmp_path, strerror(errno));
    if (fclose(w->fp) != 0 && !rc)
        rc = vkl_fail(err, "gguf writer: cannot close '%s': %s", w->tmp_path, strerror(errno));
    if (!rc && rename(w->tmp_path, w->path) != 0)
        rc = vkl_fail(err, "gguf writer: cannot rename '%s' to '%s': %s", w->tmp_path, w->path, strerror(errno));
    if (rc) unlink(w->tmp_path);
    writer_free(w);
    return rc;
}

void gguf_writer_abort(gguf_writer *w) {
    if (!w) return;
    fclose(w->fp);
    unlink(w->tmp_path);
    writer_free(w);
}
