#include "types.h"

#include <ctype.h>
#include <string.h>

#include "quant.h"

_Static_assert(sizeof(vkl_block_q4_0) == 18, "q4_0 layout");
_Static_assert(sizeof(vkl_block_q4_1) == 20, "q4_1 layout");
_Static_assert(sizeof(vkl_block_q5_0) == 22, "q5_0 layout");
_Static_assert(sizeof(vkl_block_q5_1) == 24, "q5_1 layout");
_Static_assert(sizeof(vkl_block_q8_0) == 34, "q8_0 layout");
_Static_assert(sizeof(vkl_block_q8_1) == 36, "q8_1 layout");
_Static_assert(sizeof(vkl_block_q2_K) == 84, "q2_K layout");
_Static_assert(sizeof(vkl_block_q3_K) == 110, "q3_K layout");
_Static_assert(sizeof(vkl_block_q4_K) == 144, "q4_K layout");
_Static_assert(sizeof(vkl_block_q5_K) == 176, "q5_K layout");
_Static_assert(sizeof(vkl_block_q6_K) == 210, "q6_K layout");
_Static_assert(sizeof(vkl_block_q8_K) == 292, "q8_K layout");

#define T(id, nm, bs, ts, q, stem) \
    [id] = {nm, bs, ts, q, vkl_dequantize_row_##stem, vkl_quantize_row_##stem}

static const vkl_type_traits traits[VKL_TYPE_COUNT] = {
    T(VKL_TYPE_F32, "f32", 1, 4, false, f32),
    T(VKL_TYPE_F16, "f16", 1, 2, false, f16),
    T(VKL_TYPE_BF16, "bf16", 1, 2, false, bf16),
    T(VKL_TYPE_Q4_0, "q4_0", 32, sizeof(vkl_block_q4_0), true, q4_0),
    T(VKL_TYPE_Q4_1, "q4_1", 32, sizeof(vkl_block_q4_1), true, q4_1),
    T(VKL_TYPE_Q5_0, "q5_0", 32, sizeof(vkl_block_q5_0), true, q5_0),
    T(VKL_TYPE_Q5_1, "q5_1", 32, sizeof(vkl_block_q5_1), true, q5_1),
    T(VKL_TYPE_Q8_0, "q8_0", 32, sizeof(vkl_block_q8_0), true, q8_0),
    T(VKL_TYPE_Q2_K, "q2_K", 256, sizeof(vkl_block_q2_K), true, q2_K),
    T(VKL_TYPE_Q3_K, "q3_K", 256, sizeof(vkl_block_q3_K), true, q3_K),
    T(VKL_TYPE_Q4_K, "q4_K", 256, sizeof(vkl_block_q4_K), true, q4_K),
    T(VKL_TYPE_Q5_K, "q5_K", 256, sizeof(vkl_block_q5_K), true, q5_K),
    T(VKL_TYPE_Q6_K, "q6_K", 256, sizeof(vkl_block_q6_K), true, q6_K),
};
#undef T

static const vkl_type supported[] = {
    VKL_TYPE_F32, VKL_TYPE_F16, VKL_TYPE_BF16, VKL_TYPE_Q4_0, VKL_TYPE_Q4_1,
    VKL_TYPE_Q5_0, VKL_TYPE_Q5_1, VKL_TYPE_Q8_0, VKL_TYPE_Q2_K, VKL_TYPE_Q3_K,
    VKL_TYPE_Q4_K, VKL_TYPE_Q5_K, VKL_TYPE_Q6_K,
};

/* Names of ggml types we know of but do not support, for error messages. */
static const char *known_unsupported_name(int type) {
    switch (type) {
    case 4: return "q4_2 (removed)";
    case 5: return "q4_3 (removed)";
    case VKL_TYPE_Q8_1: return "q8_1";
    case VKL_TYPE_Q8_K: return "q8_K";
    case 16: return "iq2_xxs";
    case 17: return "iq2_xs";
    case 18: return "iq3_xxs";
    case 19: return "iq1_s";
    case 20: return "iq4_nl";
    case 21: return "iq3_s";
    case 22: return "iq2_s";
    case 23: return "iq4_xs";
    case 24: return "i8";
    case 25: return "i16";
    case 26: return "i32";
    case 27: return "i64";
    case 28: return "f64";
    case 29: return "iq1_m";
    case 34: return "tq1_0";
    case 35: return "tq2_0";
    case 39: return "mxfp4";
    default: return NULL;
    }
}

const vkl_type_traits *vkl_type_get(int type) {
    if (type < 0 || type >= VKL_TYPE_COUNT || !traits[type].name) return NULL;
    return &traits[type];
}

const char *vkl_type_name(int type) {
    const vkl_type_traits *t = vkl_type_get(type);
    if (t) return t->name;
    const char *n = known_unsupported_name(type);
    return n ? n : "unknown";
}

int vkl_type_from_name(const char *name) {
    char low[32];
    size_t n = strlen(name);
    if (n == 0 || n >= sizeof low) return -1;
    for (size_t i = 0; i <= n; i++) low[i] = (char)tolower((unsigned char)name[i]);
    /* llama.cpp file-type names such as q4_k_m / q4_k_s / q3_k_l map to their main type */
    if (n == 6 && low[3] == 'k' && low[4] == '_' && strchr("sml", low[5])) low[4] = 0;
    for (size_t i = 0; i < (sizeof supported / sizeof supported[0]); i++) {
        char tn[32];
        const char *s = traits[supported[i]].name;
        size_t k = 0;
        for (; s[k] && k + 1 < sizeof tn; k++) tn[k] = (char)tolower((unsigned char)s[k]);
        tn[k] = 0;
        if (!strcmp(tn, low)) return (int)supported[i];
    }
    return -1;
}

size_t vkl_row_size(vkl_type type, int64_t ne0) {
    const vkl_type_traits *t = vkl_type_get(type);
    if (!t) return 0;
    return (size_t)(ne0 / t->block_size) * t->type_size;
}

int vkl_type_supported_count(void) { return (int)(sizeof supported / sizeof supported[0]); }
vkl_type vkl_type_supported_at(int i) { return supported[i]; }

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float vkl_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0) {
        if (man == 0) return bits_f32(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000u | (man << 13));
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t vkl_f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to >= 65520: inf */
    if (ax < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        /* round(|f| * 2^24) with ties to even, done in float arithmetic exactly */
        float v = bits_f32(ax) * 16777216.0f;
        uint32_t m = (uint32_t)v;
        float frac = v - (float)m;
        if (frac > 0.5f || (frac == 0.5f && (m & 1))) m++;
        return (uint16_t)(sign | m);
    }
    uint32_t exp = (ax >> 23) - 112;
    uint32_t man = ax & 0x7fffff;
    uint32_t h = (exp << 10) | (man >> 13);
    uint32_t rest = man & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

float vkl_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t vkl_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 64); /* quiet nan */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}
