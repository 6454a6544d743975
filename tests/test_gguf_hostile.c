/* Hostile GGUF input: every buffer here is malformed and must be refused with a message that names
 * the problem, never crash, read out of bounds (the suite also runs under ASan) or allocate hugely. */
#include <stdint.h>
#include <unistd.h>

#include "gguf.h"
#include "test.h"

/* ---- a growable byte buffer and GGUF building blocks ---------------------------------------------- */

typedef struct bb {
    uint8_t *p;
    size_t n, cap;
} bb;

static void put(bb *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put_le(bb *b, uint64_t v, int n) {
    uint8_t t[8];
    for (int i = 0; i < n; i++) t[i] = (uint8_t)(v >> (8 * i));
    put(b, t, (size_t)n);
}
static void put_u32(bb *b, uint32_t v) { put_le(b, v, 4); }
static void put_u64(bb *b, uint64_t v) { put_le(b, v, 8); }
static void put_strn(bb *b, const char *s, size_t n) {
    put_u64(b, n);
    put(b, s, n);
}
static void put_str(bb *b, const char *s) { put_strn(b, s, strlen(s)); }

static void hdr(bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    b->n = 0;
    put(b, "GGUF", 4);
    put_u32(b, version);
    put_u64(b, n_tensors);
    put_u64(b, n_kv);
}
static void kv_u32(bb *b, const char *key, uint32_t v) {
    put_str(b, key);
    put_u32(b, GGUF_VT_UINT32);
    put_u32(b, v);
}
static void kv_str(bb *b, const char *key, const char *v) {
    put_str(b, key);
    put_u32(b, GGUF_VT_STRING);
    put_str(b, v);
}
static void tinfo(bb *b, const char *name, uint32_t n_dims, const int64_t *ne, uint32_t type, uint64_t offset) {
    put_str(b, name);
    put_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++) put_u64(b, (uint64_t)ne[i]);
    put_u32(b, type);
    put_u64(b, offset);
}
/* Pads to 32 and appends n zero bytes of tensor data. */
static void data(bb *b, size_t n) {
    static const uint8_t z[256];
    while (b->n % 32) put(b, z, 1);
    while (n) {
        size_t k = n < sizeof z ? n : sizeof z;
        put(b, z, k);
        n -= k;
    }
}

/* Opens a private exact-size copy (so ASan catches any overrun); true if it parsed. */
static bool open_copy(const uint8_t *p, size_t n, vkl_error *err) {
    uint8_t *copy = malloc(n ? n : 1);
    if (n) memcpy(copy, p, n);
    err->msg[0] = 0;
    gguf_file *f = gguf_open_memory(copy, n, err);
    if (f) {
        /* touch everything the reader hands out */
        volatile uint8_t sink = 0;
        for (uint64_t i = 0; i < f->n_tensors; i++)
            if (f->tensors[i].nbytes) sink ^= ((const uint8_t *)f->tensors[i].data)[f->tensors[i].nbytes - 1];
        for (uint64_t i = 0; i < f->n_kv; i++)
            if (f->kv[i].key.len) sink ^= (uint8_t)f->kv[i].key.data[f->kv[i].key.len - 1];
        (void)sink;
        gguf_close(f);
        free(copy);
        return true;
    }
    free(copy);
    return false;
}

static int n_cases;

/* The buffer must be refused with a message that contains `want` (and an offset when asked). */
static void expect_fail(const char *what, const bb *b, const char *want, bool want_offset) {
    vkl_error err;
    n_cases++;
    bool ok = open_copy(b->p, b->n, &err);
    CHECK(!ok, "%s: accepted", what);
    if (ok) return;
    CHECK(err.msg[0] != 0, "%s: empty message", what);
    CHECK(strstr(err.msg, want) != NULL, "%s: message '%s' lacks '%s'", what, err.msg, want);
    if (want_offset) CHECK(strstr(err.msg, "offset") != NULL, "%s: message '%s' lacks an offset", what, err.msg);
    CHECK(strchr(err.msg, '\n') == NULL, "%s: multi-line message", what);
    if (getenv("VKLLM_TEST_VERBOSE")) printf("%-45s %s\n", what, err.msg);
}

static void expect_ok(const char *what, const bb *b) {
    vkl_error err;
    CHECK(open_copy(b->p, b->n, &err), "%s: refused: %s", what, err.msg);
}

/* ---- a small valid file from the writer --------------------------------------------------------- */

static uint8_t *valid_file(size_t *size) {
    char path[512];
    const char *t = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/vkl_test_gguf_hostile_%d.gguf", t && *t ? t : "/tmp", (int)getpid());
    vkl_error err = {{0}};
    gguf_writer *w = gguf_writer_open(path, &err);
    if (!w) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    gguf_str toks[] = {{3, "<s>"}, {0, ""}, {2, "ab"}};
    static const int32_t ints[] = {1, -2};
    gguf_value inner[1] = {{.type = GGUF_VT_ARRAY, .v.arr = {.type = GGUF_VT_INT32, .n = 2, .data = ints}}};
    gguf_value tokv = {.type = GGUF_VT_ARRAY, .v.arr = {.type = GGUF_VT_STRING, .n = 3, .strs = toks}};
    gguf_value nested = {.type = GGUF_VT_ARRAY, .v.arr = {.type = GGUF_VT_ARRAY, .n = 1, .items = inner}};
    int64_t ne_a[2] = {32, 2}, ne_b[1] = {8};
    static uint8_t payload[128];
    for (size_t i = 0; i < sizeof payload; i++) payload[i] = (uint8_t)(i * 7 + 1);
    int rc = gguf_writer_add_str(w, "general.architecture", "llama", &err) |
             gguf_writer_add_u32(w, "llama.block_count", 2, &err) |
             gguf_writer_add_f32(w, "llama.rope.freq_base", 10000.0f, &err) |
             gguf_writer_add_kv(w, "tokenizer.ggml.tokens", &tokv, &err) |
             gguf_writer_add_kv(w, "x.nested", &nested, &err) | gguf_writer_add_bool(w, "x.flag", true, &err) |
             gguf_writer_add_tensor(w, "w.q8", VKL_TYPE_Q8_0, 2, ne_a, &err) |
             gguf_writer_add_tensor(w, "w.f32", VKL_TYPE_F32, 1, ne_b, &err) |
             gguf_writer_write_tensor_data(w, payload, 68, &err) | gguf_writer_write_tensor_data(w, payload, 32, &err) |
             gguf_writer_close(w, &err);
    if (rc) {
        fprintf(stderr, "writing the valid file: %s\n", err.msg);
        exit(1);
    }
    FILE *fp = fopen(path, "rb");
    uint8_t *p = malloc(4096);
    *size = fp ? fread(p, 1, 4096, fp) : 0;
    if (fp) fclose(fp);
    unlink(path);
    return p;
}

/* Every truncation of a valid file fails until the last tensor's data is complete. */
static void test_truncation(const uint8_t *file, size_t size) {
    vkl_error err = {{0}};
    gguf_file *f = gguf_open_memory(file, size, &err);
    CHECK(f != NULL, "the valid file: %s", err.msg);
    if (!f) return;
    uint64_t min_size = 0, kv_end = f->kv[f->n_kv - 1].offset;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        uint64_t end = f->data_offset + f->tensors[i].offset + f->tensors[i].nbytes;
        if (end > min_size) min_size = end;
    }
    uint64_t data_offset = f->data_offset;
    gguf_close(f);
    int refused = 0, accepted = 0;
    for (size_t len = 0; len <= size; len++) {
        bb b = {.p = (uint8_t *)file, .n = len};
        if (len < min_size) {
            vkl_error e;
            bool ok = open_copy(b.p, len, &e);
            CHECK(!ok && e.msg[0], "truncated to %zu of %zu bytes: accepted", len, size);
            if (len >= 24 && len < data_offset)
                CHECK(strstr(e.msg, "truncated") || strstr(e.msg, "past the end") || strstr(e.msg, "cannot fit") ||
                          strstr(e.msg, "impossible"),
                      "truncated to %zu: '%s'", len, e.msg);
            if (len >= data_offset) CHECK(strstr(e.msg, "outside the file"), "truncated to %zu: '%s'", len, e.msg);
            refused += !ok;
        } else {
            expect_ok("trailing padding may be cut", &b);
            accepted++;
        }
    }
    n_cases += refused + accepted;
    CHECK(refused == (int)min_size && kv_end < data_offset, "%d truncations refused", refused);
}

/* Random byte corruption: must either parse or fail cleanly; run under ASan this finds overruns. */
static void test_random_corruption(const uint8_t *file, size_t size) {
    uint8_t *buf = malloc(size);
    uint32_t s = 0x9e3779b9u;
    int refused = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(buf, file, size);
        int flips = 1 + iter % 4;
        for (int k = 0; k < flips; k++) {
            s ^= s << 13, s ^= s >> 17, s ^= s << 5;
            size_t pos = (s >> 8) % size;
            buf[pos] = (iter & 1) ? (uint8_t)s : (uint8_t)(buf[pos] ^ (1u << (s & 7)));
        }
        vkl_error err;
        if (!open_copy(buf, size, &err)) {
            refused++;
            CHECK(err.msg[0] != 0, "corruption %d: empty message", iter);
        }
    }
    CHECK(refused > 1000, "only %d of 3000 corruptions refused", refused);
    free(buf);
}

static void test_header(void) {
    bb b = {0};
    expect_fail("empty buffer", &b, "too small", false);
    put(&b, "GGU", 3);
    expect_fail("3 bytes", &b, "too small", false);

    hdr(&b, 3, 0, 0);
    b.p[0] = 'X';
    expect_fail("bad magic", &b, "magic", true);
    hdr(&b, 3, 0, 0);
    memcpy(b.p, "FUGG", 4);
    expect_fail("reversed magic", &b, "magic", true);
    hdr(&b, 3, 0, 0);
    b.n = 20;
    expect_fail("truncated header", &b, "truncated", false);
    hdr(&b, 1, 0, 0);
    expect_fail("version 1", &b, "version 1", true);
    hdr(&b, 4, 0, 0);
    expect_fail("version 4", &b, "unsupported GGUF version 4", true);
    hdr(&b, 0, 0, 0);
    expect_fail("version 0", &b, "unsupported", true);
    hdr(&b, 0x03000000u, 0, 0);
    expect_fail("big-endian", &b, "big-endian", true);

    hdr(&b, 3, 0, 0);
    expect_ok("an empty v3 file", &b);
    hdr(&b, 3, 0, (uint64_t)1 << 62);
    expect_fail("huge n_kv", &b, "n_kv", true);
    hdr(&b, 3, UINT64_MAX, 0);
    expect_fail("huge n_tensors", &b, "n_tensors", true);
    hdr(&b, 3, 0, 0xffffffffull);
    kv_u32(&b, "a", 1);
    expect_fail("n_kv 2^32-1", &b, "n_kv", true);
    hdr(&b, 3, 0, 2);
    kv_u32(&b, "alpha", 1);
    kv_u32(&b, "beta", 1);
    kv_u32(&b, "gamma", 1);
    b.p[16] = 4; /* n_kv 4 over three pairs: a lying but plausible count */
    expect_fail("n_kv one too many", &b, "truncated", true);
    free(b.p);
}

static void test_kvs(void) {
    bb b = {0};
    hdr(&b, 3, 0, 1);
    put_u64(&b, UINT64_MAX);
    put_u64(&b, 0);
    expect_fail("key length 2^64-1", &b, "past the end", true);
    hdr(&b, 3, 0, 1);
    put_u64(&b, 20);
    put(&b, "general.arch", 12);
    put_u32(&b, GGUF_VT_UINT8);
    expect_fail("key past EOF", &b, "past the end", true);
    hdr(&b, 3, 0, 1);
    put_str(&b, "general.name");
    put_u32(&b, GGUF_VT_STRING);
    put_u64(&b, 5);
    put(&b, "abcd", 4);
    expect_fail("string value one byte past EOF", &b, "past the end", true);
    hdr(&b, 3, 0, 1);
    put_str(&b, "general.name");
    put_u32(&b, GGUF_VT_STRING);
    put_u64(&b, (uint64_t)1 << 63);
    expect_fail("string length 2^63", &b, "general.name", true);
    hdr(&b, 3, 0, 1);
    put_str(&b, "k");
    put_u32(&b, 13);
    put_u32(&b, 0);
    expect_fail("value type 13", &b, "invalid value type 13", true);
    hdr(&b, 3, 0, 1);
    put_str(&b, "k");
    put_u32(&b, 0xffffffffu);
    put_u64(&b, 0);
    expect_fail("value type 2^32-1", &b, "invalid value type", true);
    hdr(&b, 3, 0, 1);
    put_str(&b, "k");
    put_u32(&b, GGUF_VT_UINT64);
    put_u32(&b, 0);
    expect_fail("truncated uint64", &b, "truncated", true);

    hdr(&b, 3, 0, 1);
    put_str(&b, "k");
    put_u32(&b, GGUF_VT_ARRAY);
    put_u32(&b, 99);
    put_u64(&b, 1);
    put_u32(&b, 0);
    expect_fail("array element type 99", &b, "element type 99", true);
    hdr(&b, 3, 0, 1);
    put_str(&b, "k");
    put_u32(&b, GGUF_VT_ARRAY);
    put_u32(&b, GGUF_VT_UINT32);
    put_u64(&b, (uint64_t)1 << 62);
    put_u32(&b, 0);
    expect_fail("uint32 array of 2^62 (byte count overflows)", &b, "past the end", true);
    hdr(&b, 3, 0, 1);
    put_str(&b, "k");
    put_u32(&b, GGUF_VT_ARRAY);
    put_u32(&b, GGUF_VT_UINT16);
    put_u64(&b, 3);
    put_u32(&b, 0);
    expect_fail("uint16 array one element short", &b, "past the end", true);
    hdr(&b, 3, 0, 1);
    put_str(&b, "tokenizer.ggml.tokens");
    put_u32(&b, GGUF_VT_ARRAY);
    put_u32(&b, GGUF_VT_STRING);
    put_u64(&b, (uint64_t)1 << 40);
    put_str(&b, "a");
    expect_fail("string array of 2^40", &b, "cannot fit", true);
    /* a count the remaining bytes could hold, but the elements are garbage: the reader sizes its
     * arrays by the elements really present (a pre-scan), not by the count */
    hdr(&b, 3, 0, 1);
    put_str(&b, "tokenizer.ggml.tokens");
    put_u32(&b, GGUF_VT_ARRAY);
    put_u32(&b, GGUF_VT_STRING);
    put_u64(&b, 100000);
    put_str(&b, "ok");
    for (int i = 0; i < 100000; i++) put_u64(&b, UINT64_MAX);
    expect_fail("string array with garbage elements", &b, "string element length", true);
    hdr(&b, 3, 0, 50000);
    for (int i = 0; i < 1000; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        kv_u32(&b, key, (uint32_t)i);
    }
    data(&b, 50000 * 16);
    expect_fail("n_kv 50000 with 1000 pairs and zeros", &b, "key #1000", true);
    hdr(&b, 3, 0, 1);
    put_str(&b, "k");
    put_u32(&b, GGUF_VT_ARRAY);
    put_u32(&b, GGUF_VT_ARRAY);
    put_u64(&b, UINT64_MAX);
    expect_fail("array of 2^64-1 arrays", &b, "cannot fit", true);

    /* nesting: 8 levels are fine, 9 are refused, and so are 1000 */
    for (int levels = 8; levels <= 9; levels++) {
        hdr(&b, 3, 0, 1);
        put_str(&b, "deep");
        put_u32(&b, GGUF_VT_ARRAY);
        for (int i = 0; i < levels - 1; i++) {
            put_u32(&b, GGUF_VT_ARRAY);
            put_u64(&b, 1);
        }
        put_u32(&b, GGUF_VT_UINT8);
        put_u64(&b, 1);
        put(&b, "x", 1);
        if (levels == 8) expect_ok("8 nested arrays", &b);
        else expect_fail("9 nested arrays", &b, "nested", true);
    }
    hdr(&b, 3, 0, 1);
    put_str(&b, "deeper");
    put_u32(&b, GGUF_VT_ARRAY);
    for (int i = 0; i < 1000; i++) {
        put_u32(&b, GGUF_VT_ARRAY);
        put_u64(&b, 1);
    }
    expect_fail("1000 nested arrays", &b, "nested", true);

    hdr(&b, 3, 0, 2);
    kv_u32(&b, "llama.block_count", 1);
    kv_u32(&b, "llama.block_count", 2);
    expect_fail("duplicate key", &b, "duplicate key", true);
    hdr(&b, 3, 0, 1);
    kv_u32(&b, "", 1);
    expect_fail("empty key", &b, "empty key", true);
    hdr(&b, 3, 0, 1);
    kv_u32(&b, "bad\xff key", 1);
    expect_fail("non-UTF-8 key", &b, "UTF-8", true);
    hdr(&b, 3, 0, 1);
    kv_u32(&b, "over\xc0\xaflong", 1);
    expect_fail("overlong UTF-8 key", &b, "UTF-8", true);
    hdr(&b, 3, 0, 1);
    kv_u32(&b, "surrogate\xed\xa0\x80", 1);
    expect_fail("surrogate in key", &b, "UTF-8", true);
    hdr(&b, 3, 0, 1);
    kv_u32(&b, "cut\xe6\x97", 1);
    expect_fail("truncated UTF-8 in key", &b, "UTF-8", true);
    hdr(&b, 3, 0, 1);
    put_strn(&b, "nul\0key", 7);
    put_u32(&b, GGUF_VT_UINT8);
    put(&b, "x", 1);
    expect_fail("NUL in key", &b, "NUL", true);
    hdr(&b, 3, 0, 1);
    kv_u32(&b, "\xe6\x97\xa5\xe6\x9c\xac", 1);
    expect_ok("a valid UTF-8 key", &b);

    /* general.alignment */
    hdr(&b, 3, 0, 1);
    kv_u32(&b, "general.alignment", 0);
    expect_fail("alignment 0", &b, "power of two", true);
    hdr(&b, 3, 0, 1);
    kv_u32(&b, "general.alignment", 48);
    expect_fail("alignment 48", &b, "power of two", true);
    hdr(&b, 3, 0, 1);
    kv_str(&b, "general.alignment", "32");
    expect_fail("alignment as a string", &b, "expected uint32", true);
    hdr(&b, 3, 0, 1);
    put_str(&b, "general.alignment");
    put_u32(&b, GGUF_VT_UINT64);
    put_u64(&b, 32);
    expect_fail("alignment as uint64", &b, "expected uint32", true);
    free(b.p);
}

static void test_tensors(void) {
    bb b = {0};
    int64_t ne2[2] = {32, 2}, ne1[1] = {8};

    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 1, ne1, VKL_TYPE_F32, 0);
    data(&b, 32);
    expect_ok("one f32 tensor", &b);

    hdr(&b, 3, 1, 0);
    tinfo(&b, "blk.0.attn_q.weight", 0, ne1, VKL_TYPE_F32, 0);
    data(&b, 32);
    expect_fail("n_dims 0", &b, "n_dims 0", true);
    int64_t ne5[5] = {1, 1, 1, 1, 1};
    hdr(&b, 3, 1, 0);
    tinfo(&b, "blk.0.attn_q.weight", 5, ne5, VKL_TYPE_F32, 0);
    data(&b, 32);
    expect_fail("n_dims 5", &b, "n_dims 5", true);
    int64_t big[3] = {(int64_t)1 << 32, (int64_t)1 << 32, (int64_t)1 << 32};
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 3, big, VKL_TYPE_F32, 0);
    data(&b, 32);
    expect_fail("element count overflows int64", &b, "overflow", true);
    int64_t big2[2] = {(int64_t)1 << 62, 1};
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 2, big2, VKL_TYPE_F32, 0);
    data(&b, 32);
    expect_fail("byte count overflows", &b, "overflow", true);
    int64_t neg[1] = {-32};
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 1, neg, VKL_TYPE_F32, 0);
    data(&b, 32);
    expect_fail("negative dimension", &b, ">= 1", true);
    int64_t zero[2] = {32, 0};
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 2, zero, VKL_TYPE_F32, 0);
    data(&b, 32);
    expect_fail("zero dimension", &b, ">= 1", true);
    int64_t odd[1] = {33};
    hdr(&b, 3, 1, 0);
    tinfo(&b, "blk.0.ffn_up.weight", 1, odd, VKL_TYPE_Q4_0, 0);
    data(&b, 64);
    expect_fail("ne0 not a multiple of the block size", &b, "block size", true);
    hdr(&b, 3, 1, 0);
    tinfo(&b, "blk.0.ffn_up.weight", 1, ne1, 99, 0);
    data(&b, 64);
    expect_fail("unknown type 99", &b, "type 99", true);
    hdr(&b, 3, 1, 0);
    tinfo(&b, "blk.0.ffn_up.weight", 2, ne2, 16, 0);
    data(&b, 64);
    expect_fail("unsupported iq2_xxs", &b, "iq2_xxs", true);
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 1, ne1, 0xffffffffu, 0);
    data(&b, 64);
    expect_fail("type 2^32-1", &b, "unsupported tensor type", true);
    hdr(&b, 3, 2, 0);
    tinfo(&b, "a", 1, ne1, VKL_TYPE_F32, 0);
    tinfo(&b, "b", 1, ne1, VKL_TYPE_F32, 36);
    data(&b, 96);
    expect_fail("offset not aligned", &b, "alignment", true);
    hdr(&b, 3, 1, 0);
    tinfo(&b, "blk.0.attn_q.weight", 2, ne2, VKL_TYPE_F32, 0);
    data(&b, 255);
    expect_fail("data one byte past EOF", &b, "outside the file", true);
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 1, ne1, VKL_TYPE_F32, (uint64_t)1 << 40);
    data(&b, 32);
    expect_fail("offset far past EOF", &b, "outside the file", true);
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 1, ne1, VKL_TYPE_F32, UINT64_MAX - 31);
    data(&b, 32);
    expect_fail("offset + size overflows", &b, "overflow", false);
    hdr(&b, 3, 2, 0);
    tinfo(&b, "same", 1, ne1, VKL_TYPE_F32, 0);
    tinfo(&b, "same", 1, ne1, VKL_TYPE_F32, 32);
    data(&b, 64);
    expect_fail("duplicate tensor names", &b, "duplicate tensor", true);
    hdr(&b, 3, 2, 0);
    tinfo(&b, "a", 2, ne2, VKL_TYPE_F32, 0);
    tinfo(&b, "b", 1, ne1, VKL_TYPE_F32, 128);
    data(&b, 256);
    expect_fail("overlapping tensors", &b, "overlaps", false);
    hdr(&b, 3, 1, 0);
    tinfo(&b, "", 1, ne1, VKL_TYPE_F32, 0);
    data(&b, 32);
    expect_fail("empty tensor name", &b, "empty tensor name", true);
    hdr(&b, 3, 1, 0);
    put_strn(&b, "a\0b", 3);
    put_u32(&b, 1);
    put_u64(&b, 8);
    put_u32(&b, VKL_TYPE_F32);
    put_u64(&b, 0);
    data(&b, 32);
    expect_fail("NUL in tensor name", &b, "NUL", true);
    hdr(&b, 3, 1, 0);
    put_u64(&b, (uint64_t)1 << 60);
    data(&b, 64);
    expect_fail("tensor name length 2^60", &b, "past the end", true);
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 1, ne1, VKL_TYPE_F32, 0);
    expect_fail("no data section at all", &b, "data section", false);

    /* alignment 64 from the metadata governs offsets */
    hdr(&b, 3, 2, 1);
    kv_u32(&b, "general.alignment", 64);
    tinfo(&b, "a", 1, ne1, VKL_TYPE_F32, 0);
    tinfo(&b, "b", 1, ne1, VKL_TYPE_F32, 32);
    data(&b, 128);
    expect_fail("offset aligned to 32 but not 64", &b, "alignment 64", true);
    free(b.p);
}

int main(void) {
    size_t size = 0;
    uint8_t *file = valid_file(&size);
    CHECK(size > 100 && size < 4096, "valid file of %zu bytes", size);
    test_truncation(file, size);
    test_random_corruption(file, size);
    test_header();
    test_kvs();
    test_tensors();
    printf("%d hostile cases\n", n_cases);
    free(file);
    return test_finish();
}
