/* GGUF reader and writer: the fixture files, typed getters, a writer round trip over every value
 * type, byte-identical copies of fixture files, hand-made v2 files and writer misuse. */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <unistd.h>

#include "gguf.h"
#include "test.h"

static char tmp_dir[512];

static void tmp_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/vkl_test_gguf_%d_%s", tmp_dir, (int)getpid(), name);
}

static bool file_exists(const char *p) { return access(p, F_OK) == 0; }


/* ---- fixtures ---------------------------------------------------------------------------------- */

static void check_parsed(const gguf_file *f, const char *path) {
    CHECK(f->version == 2 || f->version == 3, "%s: version %u", path, f->version);
    CHECK(f->alignment && !(f->alignment & (f->alignment - 1)), "%s", path);
    CHECK(f->n_kv > 0, "%s: no metadata", path);
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        CHECK(gguf_find_tensor(f, t->name) == t, "%s: lookup of %s", path, t->name);
        CHECK((const uint8_t *)t->data + t->nbytes <= f->base + f->size, "%s: %s", path, t->name);
        CHECK(t->offset % f->alignment == 0, "%s: %s", path, t->name);
        CHECK(t->nbytes == vkl_row_size(t->type, t->ne[0]) * (uint64_t)(t->ne[1] * t->ne[2] * t->ne[3]), "%s", t->name);
    }
    for (uint64_t i = 0; i < f->n_kv; i++) {
        char key[256];
        size_t n = f->kv[i].key.len < 255 ? (size_t)f->kv[i].key.len : 255;
        memcpy(key, f->kv[i].key.data, n);
        key[n] = 0;
        CHECK(gguf_find_kv(f, key) == &f->kv[i], "%s: lookup of %s", path, key);
    }
}

static int parse_dir(const char *fixtures, const char *sub) {
    char dir[1024];
    test_path(dir, sizeof dir, fixtures, sub);
    DIR *d = opendir(dir);
    CHECK(d != NULL, "cannot list %s", dir);
    if (!d) return 0;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 5, ".gguf")) continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        vkl_error err = {{0}};
        gguf_file *f = gguf_open(path, &err);
        CHECK(f != NULL, "%s: %s", path, err.msg);
        if (f) check_parsed(f, path);
        gguf_close(f);
        count++;
    }
    closedir(d);
    return count;
}

static void test_tiny_f16(const char *fixtures) {
    char path[1024];
    test_path(path, sizeof path, fixtures, "models/tiny-f16.gguf");
    vkl_error err = {{0}};
    gguf_file *f = gguf_open(path, &err);
    CHECK(f != NULL, "%s", err.msg);
    if (!f) return;
    char arch[32];
    uint32_t u = 0;
    CHECK(gguf_get_cstr(f, "general.architecture", arch, sizeof arch, &err) == 0 && !strcmp(arch, "llama"), "%s", arch);
    CHECK(gguf_get_u32(f, "llama.block_count", &u, &err) == 0 && u == 4, "block_count %u", u);
    CHECK(gguf_get_u32(f, "llama.embedding_length", &u, &err) == 0 && u == 256, "n_embd %u", u);
    CHECK(gguf_get_u32(f, "llama.attention.head_count", &u, &err) == 0 && u == 8, "heads %u", u);
    CHECK(gguf_get_u32(f, "llama.attention.head_count_kv", &u, &err) == 0 && u == 4, "kv heads %u", u);
    CHECK(gguf_get_u32(f, "llama.feed_forward_length", &u, &err) == 0 && u == 768, "n_ff %u", u);
    CHECK(gguf_get_u32(f, "llama.context_length", &u, &err) == 0 && u == 2048, "n_ctx %u", u);
    float fv = 0;
    CHECK(gguf_get_f32(f, "llama.rope.freq_base", &fv, &err) == 0 && fv == 10000.0f, "%g", fv);
    CHECK(gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &fv, &err) == 0 && fv == 1e-5f, "%g", fv);
    const gguf_value *tokens = NULL;
    CHECK(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_VT_STRING, &tokens, &err) == 0, "%s", err.msg);
    if (tokens) {
        CHECK(tokens->v.arr.n == 32000, "%llu tokens", (unsigned long long)tokens->v.arr.n);
        CHECK(gguf_str_eq(tokens->v.arr.strs[1], "<s>") && gguf_str_eq(tokens->v.arr.strs[2], "</s>"), "bos/eos");
    }
    const gguf_value *types = NULL;
    CHECK(gguf_get_arr(f, "tokenizer.ggml.token_type", GGUF_VT_INT32, &types, &err) == 0, "%s", err.msg);
    if (types) CHECK(gguf_arr_i64(types, 0) == 2 && gguf_arr_i64(types, 1) == 3, "token types");
    bool add_bos = false;
    CHECK(gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &add_bos, &err) == 0 && add_bos, "add_bos");

    CHECK(f->n_tensors == 4 * 9 + 3, "%llu tensors", (unsigned long long)f->n_tensors);
    const gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
    CHECK(t && t->type == VKL_TYPE_F16 && t->n_dims == 2 && t->ne[0] == 256 && t->ne[1] == 32000, "token_embd");
    t = gguf_find_tensor(f, "output.weight");
    CHECK(t && t->type == VKL_TYPE_F16 && t->nbytes == 256 * 32000 * 2, "output");
    t = gguf_find_tensor(f, "blk.3.attn_k.weight");
    CHECK(t && t->type == VKL_TYPE_F16 && t->ne[0] == 256 && t->ne[1] == 128, "attn_k (GQA: 4 kv heads x 32)");
    t = gguf_find_tensor(f, "blk.0.ffn_down.weight");
    CHECK(t && t->ne[0] == 768 && t->ne[1] == 256, "ffn_down");
    int n_f32 = 0, n_f16 = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *x = &f->tensors[i];
        bool is_norm = strstr(x->name, "norm") != NULL;
        CHECK(x->type == (is_norm ? VKL_TYPE_F32 : VKL_TYPE_F16), "%s type %s", x->name, vkl_type_name(x->type));
        n_f32 += x->type == VKL_TYPE_F32;
        n_f16 += x->type == VKL_TYPE_F16;
    }
    CHECK(n_f32 == 9 && n_f16 == 30, "%d f32, %d f16", n_f32, n_f16);
    CHECK(gguf_find_tensor(f, "blk.4.attn_q.weight") == NULL, "no 5th layer");

    /* typed getter errors */
    err.msg[0] = 0;
    CHECK(gguf_get_u32(f, "llama.no_such_key", &u, &err) == -1 && strstr(err.msg, "llama.no_such_key") &&
              strstr(err.msg, "missing"), "%s", err.msg);
    CHECK(gguf_get_u32(f, "general.architecture", &u, &err) == -1 && strstr(err.msg, "string") &&
              strstr(err.msg, "integer"), "%s", err.msg);
    CHECK(gguf_get_str(f, "llama.block_count", &(gguf_str){0}, &err) == -1 && strstr(err.msg, "uint32"), "%s", err.msg);
    CHECK(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_VT_INT32, &tokens, &err) == -1 &&
              strstr(err.msg, "array of string"), "%s", err.msg);
    CHECK(gguf_get_bool(f, "tokenizer.ggml.tokens", &add_bos, &err) == -1 && strstr(err.msg, "array"), "%s", err.msg);
    gguf_close(f);
}

/* ---- writer round trip ------------------------------------------------------------------------- */

static bool value_eq(const gguf_value *a, const gguf_value *b);

static size_t scalar_size(gguf_vtype t) {
    switch (t) {
    case GGUF_VT_UINT8: case GGUF_VT_INT8: case GGUF_VT_BOOL: return 1;
    case GGUF_VT_UINT16: case GGUF_VT_INT16: return 2;
    case GGUF_VT_UINT32: case GGUF_VT_INT32: case GGUF_VT_FLOAT32: return 4;
    default: return 8;
    }
}

static bool str_eq(gguf_str a, gguf_str b) { return a.len == b.len && (!a.len || !memcmp(a.data, b.data, a.len)); }

static bool value_eq(const gguf_value *a, const gguf_value *b) {
    if (a->type != b->type) return false;
    switch (a->type) {
    case GGUF_VT_STRING: return str_eq(a->v.str, b->v.str);
    case GGUF_VT_BOOL: return a->v.b == b->v.b;
    case GGUF_VT_FLOAT32: case GGUF_VT_FLOAT64:
        return memcmp(&a->v.f64, &b->v.f64, 8) == 0 || (isnan(a->v.f64) && isnan(b->v.f64));
    case GGUF_VT_ARRAY:
        if (a->v.arr.type != b->v.arr.type || a->v.arr.n != b->v.arr.n) return false;
        for (uint64_t i = 0; i < a->v.arr.n; i++) {
            if (a->v.arr.type == GGUF_VT_STRING) {
                if (!str_eq(a->v.arr.strs[i], b->v.arr.strs[i])) return false;
            } else if (a->v.arr.type == GGUF_VT_ARRAY) {
                if (!value_eq(&a->v.arr.items[i], &b->v.arr.items[i])) return false;
            }
        }
        if (a->v.arr.type != GGUF_VT_STRING && a->v.arr.type != GGUF_VT_ARRAY && a->v.arr.n)
            return memcmp(a->v.arr.data, b->v.arr.data, a->v.arr.n * scalar_size(a->v.arr.type)) == 0;
        return true;
    default: return a->v.u64 == b->v.u64; /* every integer type */
    }
}

typedef struct named_value {
    const char *key;
    gguf_value v;
} named_value;

static uint32_t rng_state = 12345;
static uint32_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

typedef struct test_tensor {
    const char *name;
    vkl_type type;
    uint32_t n_dims;
    int64_t ne[4];
} test_tensor;

static const test_tensor rt_tensors[] = {
    {"a.f32", VKL_TYPE_F32, 1, {7, 1, 1, 1}},
    {"b.f16", VKL_TYPE_F16, 2, {33, 3, 1, 1}},
    {"c.q4_0", VKL_TYPE_Q4_0, 3, {64, 2, 3, 1}},
    {"d.q8_0", VKL_TYPE_Q8_0, 2, {32, 5, 1, 1}},
    {"e.q4_K", VKL_TYPE_Q4_K, 4, {256, 2, 1, 2}},
    {"f.q6_K", VKL_TYPE_Q6_K, 2, {512, 1, 1, 1}},
    {"g.bf16", VKL_TYPE_BF16, 1, {3, 1, 1, 1}},
};

static uint64_t tensor_bytes(const test_tensor *t) {
    return vkl_row_size(t->type, t->ne[0]) * (uint64_t)(t->ne[1] * t->ne[2] * t->ne[3]);
}

static void test_round_trip(uint32_t alignment) {
    char path[1024];
    tmp_path(path, sizeof path, "rt.gguf");
    vkl_error err = {{0}};

    /* every value type, extremes, an empty string, a string with NUL and non-ASCII bytes */
    static const uint8_t u8s[] = {0, 1, 255};
    static const int16_t i16s[] = {-32768, 0, 32767};
    static const uint32_t u32s[] = {0, 4000000000u};
    static const int64_t i64s[] = {INT64_MIN, -1, INT64_MAX};
    static const double f64s[] = {-0.0, 1e300, 3.141592653589793};
    static const float f32s[] = {1.5f, -2.25f, 1e-30f, INFINITY};
    static const uint8_t bools[] = {1, 0, 1};
    static const uint64_t u64s[] = {UINT64_MAX};
    gguf_str strs[] = {{0, ""}, {5, "hello"}, {3, "a\0b"}, {4, "\xc3\xa9t\xc3"}};
    /* nested: [[1,2],[3]] of int8, [[["x"]], []] of strings, and an empty array of arrays */
    static const int8_t i8a[] = {1, 2}, i8b[] = {3};
    gguf_value inner_i8[2] = {
        {.type = GGUF_VT_ARRAY, .v.arr = {.type = GGUF_VT_INT8, .n = 2, .data = i8a}},
        {.type = GGUF_VT_ARRAY, .v.arr = {.type = GGUF_VT_INT8, .n = 1, .data = i8b}},
    };
    gguf_str xs[] = {{1, "x"}};
    gguf_value lvl3[1] = {{.type = GGUF_VT_ARRAY, .v.arr = {.type = GGUF_VT_STRING, .n = 1, .strs = xs}}};
    gguf_value lvl2[2] = {
        {.type = GGUF_VT_ARRAY, .v.arr = {.type = GGUF_VT_ARRAY, .n = 1, .items = lvl3}},
        {.type = GGUF_VT_ARRAY, .v.arr = {.type = GGUF_VT_ARRAY, .n = 0}},
    };
    named_value kvs[] = {
        {"t.u8", {.type = GGUF_VT_UINT8, .v.u64 = 200}},
        {"t.i8", {.type = GGUF_VT_INT8, .v.i64 = -100}},
        {"t.u16", {.type = GGUF_VT_UINT16, .v.u64 = 65535}},
        {"t.i16", {.type = GGUF_VT_INT16, .v.i64 = -32768}},
        {"t.u32", {.type = GGUF_VT_UINT32, .v.u64 = 4294967295u}},
        {"t.i32", {.type = GGUF_VT_INT32, .v.i64 = -2147483647 - 1}},
        {"t.i32pos", {.type = GGUF_VT_INT32, .v.i64 = 77}},
        {"t.f32", {.type = GGUF_VT_FLOAT32, .v.f64 = 0.1f}},
        {"t.bool", {.type = GGUF_VT_BOOL, .v.b = true}},
        {"t.str", {.type = GGUF_VT_STRING, .v.str = {6, "llama\n"}}},
        {"t.str_empty", {.type = GGUF_VT_STRING, .v.str = {0, ""}}},
        {"t.u64", {.type = GGUF_VT_UINT64, .v.u64 = UINT64_MAX}},
        {"t.i64", {.type = GGUF_VT_INT64, .v.i64 = INT64_MIN}},
        {"t.f64", {.type = GGUF_VT_FLOAT64, .v.f64 = -1.0 / 3.0}},
        {"a.u8", {.type = GGUF_VT_ARRAY, .v.arr = {.type = GGUF_VT_UINT8, .n = 3, .data = u8s}}},
        {"a.i16", {.type = GGUF_VT_ARRAY, .v.arr = {.type = GGUF_VT_INT16, .n = 3, .data = i16s}}},
        {"a.u32", {.type = GGUF_VT_ARRAY, .v.arr = {.type = GGUF_VT_UINT32, .n = 2, .data = u32s}}},
        {"a.i64", {.type = GGUF_VT_ARRAY, .v.arr = {.type = GGUF_VT_INT64, .n = 3, .data = i64s}}},
        {"a.f32", {.type = GGUF_VT_ARRAY, .v.arr = {.type = GGUF_VT_FLOAT32, .n = 4, .data = f32s}}},
        {"a.f64", {.type = GGUF_VT_ARRAY, .v.arr = {.type = GGUF_VT_FLOAT64, .n = 3, .data = f64s}}},
        {"a.bool", {.type = GGUF_VT_ARRAY, .v.arr = {.type = GGUF_VT_BOOL, .n = 3, .data = bools}}},
        {"a.u64", {.type = GGUF_VT_ARRAY, .v.arr = {.type = GGUF_VT_UINT64, .n = 1, .data = u64s}}},
        {"a.str", {.type = GGUF_VT_ARRAY, .v.arr = {.type = GGUF_VT_STRING, .n = 4, .strs = strs}}},
        {"a.empty", {.type = GGUF_VT_ARRAY, .v.arr = {.type = GGUF_VT_FLOAT32, .n = 0}}},
        {"a.nested_i8", {.type = GGUF_VT_ARRAY, .v.arr = {.type = GGUF_VT_ARRAY, .n = 2, .items = inner_i8}}},
        {"a.nested3", {.type = GGUF_VT_ARRAY, .v.arr = {.type = GGUF_VT_ARRAY, .n = 2, .items = lvl2}}},
        {"a.nested_empty", {.type = GGUF_VT_ARRAY, .v.arr = {.type = GGUF_VT_ARRAY, .n = 0}}},
        {"\xe6\x97\xa5\xe6\x9c\xac.key", {.type = GGUF_VT_UINT8, .v.u64 = 1}}, /* UTF-8 key */
    };
    const size_t n_kvs = VKL_ARRAY_LEN(kvs), n_t = VKL_ARRAY_LEN(rt_tensors);

    uint8_t *data[VKL_ARRAY_LEN(rt_tensors)];
    for (size_t i = 0; i < n_t; i++) {
        uint64_t nb = tensor_bytes(&rt_tensors[i]);
        data[i] = malloc(nb);
        for (uint64_t k = 0; k < nb; k++) data[i][k] = (uint8_t)rng();
    }

    gguf_writer *w = gguf_writer_open(path, &err);
    CHECK(w != NULL, "%s", err.msg);
    if (!w) return;
    int rc = 0;
    if (alignment != 32) rc |= gguf_writer_set_alignment(w, alignment, &err);
    for (size_t i = 0; i < n_kvs; i++) rc |= gguf_writer_add_kv(w, kvs[i].key, &kvs[i].v, &err);
    rc |= gguf_writer_add_u32(w, "h.u32", 42, &err);
    rc |= gguf_writer_add_i32(w, "h.i32", -42, &err);
    rc |= gguf_writer_add_f32(w, "h.f32", 0.5f, &err);
    rc |= gguf_writer_add_bool(w, "h.bool", false, &err);
    rc |= gguf_writer_add_str(w, "h.str", "text", &err);
    for (size_t i = 0; i < n_t; i++)
        rc |= gguf_writer_add_tensor(w, rt_tensors[i].name, rt_tensors[i].type, rt_tensors[i].n_dims, rt_tensors[i].ne, &err);
    for (size_t i = 0; i < n_t; i++) rc |= gguf_writer_write_tensor_data(w, data[i], tensor_bytes(&rt_tensors[i]), &err);
    CHECK(rc == 0, "writing: %s", err.msg);
    CHECK(gguf_writer_close(w, &err) == 0, "%s", err.msg);

    gguf_file *f = gguf_open(path, &err);
    CHECK(f != NULL, "reading back: %s", err.msg);
    if (f) {
        CHECK(f->version == 3 && f->alignment == alignment, "version %u alignment %llu", f->version,
              (unsigned long long)f->alignment);
        CHECK(f->n_kv == n_kvs + 5 + (alignment != 32), "n_kv %llu", (unsigned long long)f->n_kv);
        CHECK((gguf_find_kv(f, "general.alignment") != NULL) == (alignment != 32), "general.alignment presence");
        for (size_t i = 0; i < n_kvs; i++) {
            CHECK(gguf_str_eq(f->kv[i].key, kvs[i].key), "order of key %s", kvs[i].key);
            const gguf_kv *kv = gguf_find_kv(f, kvs[i].key);
            CHECK(kv && value_eq(&kv->value, &kvs[i].v), "value of %s", kvs[i].key);
        }
        CHECK(f->data_offset % alignment == 0, "data offset");
        CHECK(f->n_tensors == n_t, "n_tensors");
        for (size_t i = 0; i < n_t && i < f->n_tensors; i++) {
            const gguf_tensor *t = &f->tensors[i];
            const test_tensor *e = &rt_tensors[i];
            CHECK(!strcmp(t->name, e->name) && t->type == e->type && t->n_dims == e->n_dims, "%s", e->name);
            CHECK(!memcmp(t->ne, e->ne, sizeof t->ne), "%s dims", e->name);
            CHECK(t->offset % alignment == 0, "%s offset", e->name);
            CHECK(t->nbytes == tensor_bytes(e) && !memcmp(t->data, data[i], t->nbytes), "%s data", e->name);
        }
        /* typed getters: conversions between widths */
        uint32_t u32 = 0;
        uint64_t u64 = 0;
        int64_t i64 = 0;
        float f32 = 0;
        bool b = false;
        gguf_str s;
        char buf[4];
        CHECK(gguf_get_u32(f, "t.i32pos", &u32, &err) == 0 && u32 == 77, "u32 from a positive int32");
        CHECK(gguf_get_u32(f, "t.u8", &u32, &err) == 0 && u32 == 200, "u32 from uint8");
        CHECK(gguf_get_u32(f, "t.i32", &u32, &err) == -1 && strstr(err.msg, "t.i32") && strstr(err.msg, "fit"),
              "u32 from a negative int32: %s", err.msg);
        CHECK(gguf_get_u32(f, "t.u64", &u32, &err) == -1 && strstr(err.msg, "fit"), "u32 from a huge uint64: %s",
              err.msg);
        CHECK(gguf_get_u64(f, "t.u64", &u64, &err) == 0 && u64 == UINT64_MAX, "u64");
        CHECK(gguf_get_u64(f, "t.i8", &u64, &err) == -1, "u64 from a negative int8");
        CHECK(gguf_get_i64(f, "t.i64", &i64, &err) == 0 && i64 == INT64_MIN, "i64");
        CHECK(gguf_get_i64(f, "t.u16", &i64, &err) == 0 && i64 == 65535, "i64 from uint16");
        CHECK(gguf_get_i64(f, "t.u64", &i64, &err) == -1 && strstr(err.msg, "int64"), "%s", err.msg);
        CHECK(gguf_get_i64(f, "t.f32", &i64, &err) == -1 && strstr(err.msg, "float32"), "%s", err.msg);
        CHECK(gguf_get_f32(f, "t.f32", &f32, &err) == 0 && f32 == 0.1f, "f32");
        CHECK(gguf_get_f32(f, "t.f64", &f32, &err) == 0 && f32 == (float)(-1.0 / 3.0), "f32 from f64");
        CHECK(gguf_get_f32(f, "h.u32", &f32, &err) == 0 && f32 == 42.0f, "f32 from an integer");
        CHECK(gguf_get_f32(f, "t.str", &f32, &err) == -1 && strstr(err.msg, "string"), "%s", err.msg);
        CHECK(gguf_get_bool(f, "t.bool", &b, &err) == 0 && b, "bool");
        CHECK(gguf_get_bool(f, "t.u8", &b, &err) == -1 && strstr(err.msg, "bool"), "%s", err.msg);
        CHECK(gguf_get_str(f, "t.str", &s, &err) == 0 && gguf_str_eq(s, "llama\n"), "str");
        CHECK(gguf_get_cstr(f, "h.str", buf, sizeof buf, &err) == 0 && !strcmp(buf, "tex"), "cstr truncation");
        const gguf_value *arr = NULL;
        CHECK(gguf_get_arr(f, "a.i16", GGUF_VT_INT16, &arr, &err) == 0 && gguf_arr_i64(arr, 0) == -32768 &&
                  gguf_arr_f64(arr, 2) == 32767.0 && gguf_arr_i64(arr, 3) == 0, "int16 array");
        CHECK(gguf_get_arr(f, "a.f64", GGUF_VT_COUNT, &arr, &err) == 0 && gguf_arr_f64(arr, 1) == 1e300, "f64 array");
        CHECK(gguf_get_arr(f, "a.u32", GGUF_VT_COUNT, &arr, &err) == 0 && gguf_arr_i64(arr, 1) == 4000000000, "u32 array");
        CHECK(gguf_get_arr(f, "a.nested3", GGUF_VT_ARRAY, &arr, &err) == 0 &&
                  arr->v.arr.items[0].v.arr.items[0].v.arr.type == GGUF_VT_STRING &&
                  gguf_str_eq(arr->v.arr.items[0].v.arr.items[0].v.arr.strs[0], "x"), "nested arrays");
        CHECK(gguf_get_arr(f, "t.u8", GGUF_VT_COUNT, &arr, &err) == -1 && strstr(err.msg, "array"), "%s", err.msg);
        gguf_close(f);
    }
    CHECK(!file_exists(path) || unlink(path) == 0, "cleanup");
    for (size_t i = 0; i < n_t; i++) free(data[i]);
}

/* Copies a fixture's metadata and tensors with the writer: the result must be byte-identical. */
static void test_copy_fixture(const char *fixtures, const char *rel) {
    char src_path[1024], dst_path[1024];
    test_path(src_path, sizeof src_path, fixtures, rel);
    tmp_path(dst_path, sizeof dst_path, "copy.gguf");
    vkl_error err = {{0}};
    gguf_file *src = gguf_open(src_path, &err);
    CHECK(src != NULL, "%s: %s", rel, err.msg);
    if (!src) return;
    gguf_writer *w = gguf_writer_open(dst_path, &err);
    CHECK(w != NULL, "%s", err.msg);
    if (!w) {
        gguf_close(src);
        return;
    }
    int rc = gguf_writer_copy_kvs(w, src, NULL, &err);
    for (uint64_t i = 0; i < src->n_tensors && !rc; i++) {
        const gguf_tensor *t = &src->tensors[i];
        rc = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, &err);
    }
    for (uint64_t i = 0; i < src->n_tensors && !rc; i++)
        rc = gguf_writer_write_tensor_data(w, src->tensors[i].data, src->tensors[i].nbytes, &err);
    CHECK(rc == 0, "%s: %s", rel, err.msg);
    if (rc) gguf_writer_abort(w);
    else CHECK(gguf_writer_close(w, &err) == 0, "%s: %s", rel, err.msg);
    size_t n = 0;
    uint8_t *copy = (uint8_t *)test_read_file(dst_path, &n);
    CHECK(copy && n == src->size && !memcmp(copy, src->base, n), "%s: copy is not byte-identical (%zu vs %llu bytes)",
          rel, n, (unsigned long long)src->size);
    free(copy);
    unlink(dst_path);
    gguf_close(src);
}

/* ---- hand-made v2 file --------------------------------------------------------------------------- */

typedef struct bb {
    uint8_t p[4096];
    size_t n;
} bb;

static void put(bb *b, const void *d, size_t n) {
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put_u32(bb *b, uint32_t v) {
    for (int i = 0; i < 4; i++) b->p[b->n++] = (uint8_t)(v >> (8 * i));
}
static void put_u64(bb *b, uint64_t v) {
    for (int i = 0; i < 8; i++) b->p[b->n++] = (uint8_t)(v >> (8 * i));
}
static void put_str(bb *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

static void test_v2(void) {
    /* v2 has the v3 layout (64-bit counts and lengths); v3 only added big-endian variants. */
    bb b = {.n = 0};
    put(&b, "GGUF", 4);
    put_u32(&b, 2);
    put_u64(&b, 2); /* tensors */
    put_u64(&b, 3); /* kvs */
    put_str(&b, "general.architecture");
    put_u32(&b, GGUF_VT_STRING);
    put_str(&b, "llama");
    put_str(&b, "llama.block_count");
    put_u32(&b, GGUF_VT_INT32);
    put_u32(&b, 12);
    put_str(&b, "v.list");
    put_u32(&b, GGUF_VT_ARRAY);
    put_u32(&b, GGUF_VT_STRING);
    put_u64(&b, 2);
    put_str(&b, "ab");
    put_str(&b, "");
    put_str(&b, "w");
    put_u32(&b, 2);
    put_u64(&b, 4);
    put_u64(&b, 2);
    put_u32(&b, VKL_TYPE_F32);
    put_u64(&b, 0);
    put_str(&b, "n");
    put_u32(&b, 1);
    put_u64(&b, 3);
    put_u32(&b, VKL_TYPE_F16);
    put_u64(&b, 32);
    while (b.n % 32) b.p[b.n++] = 0;
    size_t data_at = b.n;
    for (int i = 0; i < 8; i++) {
        float v = (float)i;
        put(&b, &v, 4);
    }
    put(&b, "\x00\x3c\x00\x40\x00\x42", 6); /* f16 1, 2, 3 */
    vkl_error err = {{0}};
    uint8_t *copy = malloc(b.n); /* exact size, so ASan sees any overrun */
    memcpy(copy, b.p, b.n);
    gguf_file *f = gguf_open_memory(copy, b.n, &err);
    CHECK(f != NULL, "v2: %s", err.msg);
    if (f) {
        uint32_t u = 0;
        CHECK(f->version == 2 && f->n_kv == 3 && f->n_tensors == 2, "v2 header");
        CHECK(gguf_get_u32(f, "llama.block_count", &u, &err) == 0 && u == 12, "v2 int32 as u32");
        const gguf_value *list = NULL;
        CHECK(gguf_get_arr(f, "v.list", GGUF_VT_STRING, &list, &err) == 0 && list->v.arr.n == 2 &&
                  gguf_str_eq(list->v.arr.strs[0], "ab") && gguf_str_eq(list->v.arr.strs[1], ""), "v2 strings");
        const gguf_tensor *t = gguf_find_tensor(f, "w");
        CHECK(t && t->ne[0] == 4 && t->ne[1] == 2 && t->data == copy + data_at && ((const float *)t->data)[7] == 7.0f,
              "v2 tensor w");
        t = gguf_find_tensor(f, "n");
        CHECK(t && t->nbytes == 6 && vkl_f16_to_f32(((const uint16_t *)t->data)[2]) == 3.0f, "v2 tensor n");
        CHECK(f->data_offset == data_at, "v2 data offset");
        gguf_close(f);
    }
    /* the same bytes as v1 are refused with a clear message */
    copy[4] = 1;
    f = gguf_open_memory(copy, b.n, &err);
    CHECK(!f && strstr(err.msg, "version 1"), "v1: %s", err.msg);
    gguf_close(f);
    free(copy);
}

/* ---- writer misuse ------------------------------------------------------------------------------- */

static void test_writer_errors(void) {
    char path[1024], tmp[1100];
    tmp_path(path, sizeof path, "bad.gguf");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    vkl_error err = {{0}};
    gguf_writer *w = gguf_writer_open(path, &err);
    CHECK(w != NULL, "%s", err.msg);
    if (!w) return;
    CHECK(gguf_writer_add_u32(w, "k", 1, &err) == 0, "%s", err.msg);
    CHECK(gguf_writer_add_u32(w, "k", 2, &err) == -1 && strstr(err.msg, "duplicate"), "%s", err.msg);
    CHECK(gguf_writer_add_u32(w, "", 2, &err) == -1 && strstr(err.msg, "empty"), "%s", err.msg);
    CHECK(gguf_writer_add_u32(w, "bad\xff", 2, &err) == -1 && strstr(err.msg, "UTF-8"), "%s", err.msg);
    gguf_value big = {.type = GGUF_VT_UINT8, .v.u64 = 256};
    CHECK(gguf_writer_add_kv(w, "big", &big, &err) == -1 && strstr(err.msg, "fit"), "%s", err.msg);
    gguf_value bad_type = {.type = (gguf_vtype)42};
    CHECK(gguf_writer_add_kv(w, "bt", &bad_type, &err) == -1 && strstr(err.msg, "type"), "%s", err.msg);
    gguf_value mixed = {.type = GGUF_VT_ARRAY, .v.arr = {.type = GGUF_VT_ARRAY, .n = 1, .items = &big}};
    CHECK(gguf_writer_add_kv(w, "mixed", &mixed, &err) == -1, "array of arrays holding a scalar");
    CHECK(gguf_writer_add_str(w, "general.alignment", "64", &err) == -1 && strstr(err.msg, "uint32"), "%s", err.msg);
    CHECK(gguf_writer_set_alignment(w, 48, &err) == -1 && strstr(err.msg, "power of two"), "%s", err.msg);
    CHECK(gguf_writer_set_alignment(w, 0, &err) == -1, "alignment 0");
    int64_t ne[2] = {30, 2};
    CHECK(gguf_writer_add_tensor(w, "q", VKL_TYPE_Q4_0, 2, ne, &err) == -1 && strstr(err.msg, "block size"), "%s", err.msg);
    ne[0] = 32;
    CHECK(gguf_writer_add_tensor(w, "q", VKL_TYPE_Q4_0, 5, ne, &err) == -1 && strstr(err.msg, "n_dims"), "%s", err.msg);
    CHECK(gguf_writer_add_tensor(w, "q", (vkl_type)16, 2, ne, &err) == -1 && strstr(err.msg, "iq2_xxs"), "%s", err.msg);
    CHECK(gguf_writer_add_tensor(w, "q", VKL_TYPE_Q4_0, 2, ne, &err) == 0, "%s", err.msg);
    CHECK(gguf_writer_add_tensor(w, "q", VKL_TYPE_F32, 1, ne, &err) == -1 && strstr(err.msg, "duplicate"), "%s", err.msg);
    CHECK(gguf_writer_add_tensor(w, "r", VKL_TYPE_F32, 1, ne, &err) == 0, "%s", err.msg);
    uint8_t q[36] = {0};
    CHECK(gguf_writer_write_tensor_data(w, q, 35, &err) == -1 && strstr(err.msg, "36"), "%s", err.msg);
    CHECK(gguf_writer_write_tensor_data(w, q, 36, &err) == 0, "%s", err.msg);
    CHECK(gguf_writer_add_u32(w, "late", 1, &err) == -1 && strstr(err.msg, "before"), "%s", err.msg);
    CHECK(file_exists(tmp) && !file_exists(path), "writes go to the .tmp file");
    /* closing with tensor 'r' unwritten fails and leaves nothing behind */
    CHECK(gguf_writer_close(w, &err) == -1 && strstr(err.msg, "1 of 2"), "%s", err.msg);
    CHECK(!file_exists(tmp) && !file_exists(path), "failed close removes the partial file");

    w = gguf_writer_open(path, &err);
    CHECK(w != NULL, "%s", err.msg);
    if (!w) return;
    CHECK(gguf_writer_add_tensor(w, "x", VKL_TYPE_F32, 1, ne, &err) == 0, "%s", err.msg);
    CHECK(gguf_writer_write_tensor_data(w, q, 35, &err) == -1, "short data");
    gguf_writer_abort(w);
    CHECK(!file_exists(tmp) && !file_exists(path), "abort removes the partial file");

    /* explicit general.alignment kv sets the layout */
    w = gguf_writer_open(path, &err);
    CHECK(w != NULL, "%s", err.msg);
    if (!w) return;
    CHECK(gguf_writer_add_u32(w, "general.alignment", 128, &err) == 0, "%s", err.msg);
    CHECK(gguf_writer_set_alignment(w, 64, &err) == -1 && strstr(err.msg, "conflicts"), "%s", err.msg);
    ne[0] = 3;
    CHECK(gguf_writer_add_tensor(w, "a", VKL_TYPE_F32, 1, ne, &err) == 0, "%s", err.msg);
    CHECK(gguf_writer_add_tensor(w, "b", VKL_TYPE_F32, 1, ne, &err) == 0, "%s", err.msg);
    float v[3] = {1, 2, 3};
    CHECK(gguf_writer_write_tensor_data(w, v, 12, &err) == 0 && gguf_writer_write_tensor_data(w, v, 12, &err) == 0,
          "%s", err.msg);
    CHECK(gguf_writer_write_tensor_data(w, v, 12, &err) == -1, "a third tensor's data");
    CHECK(gguf_writer_close(w, &err) == 0, "%s", err.msg);
    gguf_file *f = gguf_open(path, &err);
    CHECK(f && f->alignment == 128 && f->n_kv == 1 && f->tensors[1].offset == 128 && f->data_offset % 128 == 0,
          "alignment 128: %s", f ? "layout" : err.msg);
    gguf_close(f);
    unlink(path);
}

int main(void) {
    const char *t = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s", t && *t ? t : "/tmp");

    test_round_trip(32);
    test_round_trip(64);
    test_v2();
    test_writer_errors();

    /* The in-repository set: every file parses, and the writer copies each byte for byte. */
    const char *repo = test_repo_fixtures();
    int n_repo = parse_dir(repo, "models") + parse_dir(repo, "vocab");
    CHECK(n_repo == 4, "found %d in-repository fixture files", n_repo);
    test_copy_fixture(repo, "vocab/ggml-vocab-llama-spm.gguf");
    test_copy_fixture(repo, "models/mini-q8_0.gguf");
    test_copy_fixture(repo, "models/mini-q4_0.gguf");
    test_copy_fixture(repo, "models/mini-q4_k_m.gguf");
    const char *fixtures = test_fixtures_dir();
    if (fixtures) {
        int n = parse_dir(fixtures, "models") + parse_dir(fixtures, "vocab");
        CHECK(n >= 5, "found %d fixture files", n);
        test_tiny_f16(fixtures);
        test_copy_fixture(fixtures, "vocab/ggml-vocab-llama-spm.gguf");
        test_copy_fixture(fixtures, "models/tiny-q4_0.gguf");
        test_copy_fixture(fixtures, "models/tiny-q4_k_m.gguf");
    }
    return test_finish();
}
