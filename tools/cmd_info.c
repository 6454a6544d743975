/* vkllm info MODEL.gguf [--tensors] [--json]: a GGUF file's metadata, hyperparameters and tensors. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "gguf.h"
#include "vkllm.h"

#define INLINE_ARRAY_MAX 8   /* arrays up to this length are printed in full */
#define TEXT_STRING_MAX 96   /* text mode cuts longer strings */

static void usage(FILE *out) {
    fprintf(out,
            "usage: vkllm info [-m] MODEL.gguf [--tensors] [--json]\n"
            "\n"
            "Shows a GGUF file's version, metadata, architecture hyperparameters and a summary of its\n"
            "tensors by type. When vkllm cannot run the model (its architecture or tokenizer), a\n"
            "warning on stderr says why, in the words run, chat, plan and bench use.\n"
            "\n"
            "  -m, --model PATH  the GGUF file (or give it as the argument)\n"
            "  --tensors   also list every tensor (name, type, dims, bytes, offset)\n"
            "  --json      print the same as JSON\n");
}

/* Architecture hyperparameters: "<arch>.<suffix>" keys. */
static const struct {
    const char *suffix, *label, *json;
} hparams[] = {
    {"context_length", "context length", "context_length"},
    {"embedding_length", "embedding length", "embedding_length"},
    {"block_count", "block count", "block_count"},
    {"feed_forward_length", "feed-forward length", "feed_forward_length"},
    {"attention.head_count", "head count", "head_count"},
    {"attention.head_count_kv", "head count kv", "head_count_kv"},
    {"rope.dimension_count", "rope dimension count", "rope_dimension_count"},
    {"rope.freq_base", "rope freq base", "rope_freq_base"},
    {"attention.layer_norm_rms_epsilon", "rms epsilon", "rms_epsilon"},
    {"expert_count", "expert count", "expert_count"},
    {"expert_used_count", "experts used", "expert_used_count"},
};

/* ---- value formatting ------------------------------------------------------------------------- */

/* Shortest decimal that reads back to the same float (or double). */
static void fmt_float(char *buf, size_t n, double v, bool is_f32) {
    if (v == floor(v) && fabs(v) < 1e15) { /* integral: "10000", not "1e+04" */
        snprintf(buf, n, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (is_f32 ? strtof(buf, NULL) == (float)v : strtod(buf, NULL) == v) return;
    }
}

static void print_json_str(FILE *out, const char *s, uint64_t n) {
    fputc('"', out);
    for (uint64_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t k = gguf_utf8_next(s + i, (size_t)(n - i));
            if (k) fwrite(s + i, 1, k, out), i += k;
            else fputs("\\ufffd", out), i++;
            continue;
        }
        switch (c) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        case '\b': fputs("\\b", out); break;
        case '\f': fputs("\\f", out); break;
        default:
            if (c < 0x20) fprintf(out, "\\u%04x", c);
            else fputc(c, out);
        }
        i++;
    }
    fputc('"', out);
}

/* Text mode: quoted, control and invalid bytes escaped, long strings cut. */
static void print_text_str(FILE *out, const char *s, uint64_t n) {
    uint64_t shown = n > TEXT_STRING_MAX ? TEXT_STRING_MAX : n;
    fputc('"', out);
    for (uint64_t i = 0; i < shown;) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c >= 0x80 ? gguf_utf8_next(s + i, (size_t)(n - i)) : 1;
        if (c >= 0x80 && k) {
            fwrite(s + i, 1, k, out);
            i += k;
            continue;
        }
        if (c == '"' || c == '\\') fprintf(out, "\\%c", c);
        else if (c == '\n') fputs("\\n", out);
        else if (c == '\t') fputs("\\t", out);
        else if (c < 0x20 || c >= 0x7f) fprintf(out, "\\x%02x", c);
        else fputc(c, out);
        i++;
    }
    fputc('"', out);
    if (shown < n) fprintf(out, "... (%" PRIu64 " bytes)", n);
}

static void print_str(FILE *out, gguf_str s, bool json) {
    if (json) print_json_str(out, s.data, s.len);
    else print_text_str(out, s.data, s.len);
}

/* A scalar value (already decoded). */
static void print_scalar(FILE *out, const gguf_value *v, bool json) {
    char buf[64];
    switch (v->type) {
    case GGUF_VT_UINT8: case GGUF_VT_UINT16: case GGUF_VT_UINT32: case GGUF_VT_UINT64:
        fprintf(out, "%" PRIu64, v->v.u64);
        break;
    case GGUF_VT_INT8: case GGUF_VT_INT16: case GGUF_VT_INT32: case GGUF_VT_INT64:
        fprintf(out, "%" PRId64, v->v.i64);
        break;
    case GGUF_VT_FLOAT32: case GGUF_VT_FLOAT64:
        if (json && !isfinite(v->v.f64)) {
            fputs("null", out);
            break;
        }
        fmt_float(buf, sizeof buf, v->v.f64, v->type == GGUF_VT_FLOAT32);
        fputs(buf, out);
        break;
    case GGUF_VT_BOOL: fputs(v->v.b ? "true" : "false", out); break;
    case GGUF_VT_STRING: print_str(out, v->v.str, json); break;
    default: fputs(json ? "null" : "?", out); break;
    }
}

/* Arrays: short ones in full, long or nested ones as "[type x n]". */
static void print_value(FILE *out, const gguf_value *v, bool json) {
    if (v->type != GGUF_VT_ARRAY) {
        print_scalar(out, v, json);
        return;
    }
    gguf_vtype et = v->v.arr.type;
    uint64_t n = v->v.arr.n;
    if (n > INLINE_ARRAY_MAX || et == GGUF_VT_ARRAY) {
        if (json) fputc('"', out);
        fprintf(out, "[%s x %" PRIu64 "]", gguf_vtype_name(et), n);
        if (json) fputc('"', out);
        return;
    }
    fputc('[', out);
    for (uint64_t i = 0; i < n; i++) {
        if (i) fputs(", ", out);
        if (et == GGUF_VT_STRING) {
            print_str(out, v->v.arr.strs[i], json);
            continue;
        }
        gguf_value e = {.type = et};
        if (et == GGUF_VT_FLOAT32 || et == GGUF_VT_FLOAT64) e.v.f64 = gguf_arr_f64(v, i);
        else if (et == GGUF_VT_BOOL) e.v.b = gguf_arr_i64(v, i) != 0;
        else if (et == GGUF_VT_UINT64) {
            const uint8_t *p = (const uint8_t *)v->v.arr.data + i * 8;
            for (int b = 7; b >= 0; b--) e.v.u64 = (e.v.u64 << 8) | p[b];
        } else if (et == GGUF_VT_UINT8 || et == GGUF_VT_UINT16 || et == GGUF_VT_UINT32)
            e.v.u64 = (uint64_t)gguf_arr_i64(v, i);
        else e.v.i64 = gguf_arr_i64(v, i);
        print_scalar(out, &e, json);
    }
    fputc(']', out);
}

/* ---- the report ------------------------------------------------------------------------------- */

typedef struct type_stat {
    uint64_t count, bytes;
} type_stat;

typedef struct info {
    const gguf_file *f;
    const char *path;
    char arch[64];
    bool has_arch;
    const gguf_kv *name;
    const gguf_kv *hp[VKL_ARRAY_LEN(hparams)];
    uint64_t vocab_size;
    bool has_vocab;
    type_stat types[VKL_TYPE_COUNT];
    uint64_t total_bytes, n_params;
} info;

static void gather(info *in) {
    const gguf_file *f = in->f;
    gguf_str s;
    in->has_arch = gguf_get_str(f, "general.architecture", &s, NULL) == 0 && s.len < sizeof in->arch;
    if (in->has_arch) {
        memcpy(in->arch, s.data, (size_t)s.len);
        in->arch[s.len] = 0;
    }
    const gguf_kv *name = gguf_find_kv(f, "general.name");
    in->name = name && name->value.type == GGUF_VT_STRING ? name : NULL;
    for (size_t i = 0; i < VKL_ARRAY_LEN(hparams) && in->has_arch; i++) {
        char key[160];
        snprintf(key, sizeof key, "%s.%s", in->arch, hparams[i].suffix);
        const gguf_kv *kv = gguf_find_kv(f, key);
        in->hp[i] = kv && kv->value.type != GGUF_VT_ARRAY ? kv : NULL;
    }
    const gguf_value *tokens;
    if (gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_VT_COUNT, &tokens, NULL) == 0) {
        in->vocab_size = tokens->v.arr.n;
        in->has_vocab = true;
    } else if (in->has_arch) {
        char key[160];
        snprintf(key, sizeof key, "%s.vocab_size", in->arch);
        in->has_vocab = gguf_get_u64(f, key, &in->vocab_size, NULL) == 0;
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        in->types[t->type].count++;
        in->types[t->type].bytes += t->nbytes;
        in->total_bytes += t->nbytes;
        in->n_params += t->n_elements;
    }
}

static void print_text(const info *in, bool list_tensors) {
    const gguf_file *f = in->f;
    char b1[32];
    printf("file:          %s (%s)\n", in->path, vkl_fmt_bytes(f->size, b1, sizeof b1));
    printf("gguf version:  %u\n", f->version);
    printf("alignment:     %" PRIu64 "\n", f->alignment);
    printf("data offset:   %" PRIu64 "\n", f->data_offset);
    printf("kv count:      %" PRIu64 "\n", f->n_kv);
    printf("tensor count:  %" PRIu64 "\n", f->n_tensors);
    printf("architecture:  ");
    if (in->has_arch) print_text_str(stdout, in->arch, strlen(in->arch));
    else fputs("(none)", stdout);
    printf("\nname:          ");
    if (in->name) print_text_str(stdout, in->name->value.v.str.data, in->name->value.v.str.len);
    else fputs("(none)", stdout);
    printf("\n\nhyperparameters:\n");
    for (size_t i = 0; i < VKL_ARRAY_LEN(hparams); i++) {
        if (!in->hp[i]) continue;
        printf("  %-22s ", hparams[i].label);
        print_value(stdout, &in->hp[i]->value, false);
        putchar('\n');
    }
    if (in->has_vocab) printf("  %-22s %" PRIu64 "\n", "vocab size", in->vocab_size);

    printf("\nmetadata:\n");
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        /* keys are valid UTF-8 but may hold control characters: never let them break the line */
        uint64_t klen = VKL_MIN(kv->key.len, 200);
        fputs("  ", stdout);
        for (uint64_t k = 0; k < klen; k++) {
            unsigned char c = (unsigned char)kv->key.data[k];
            putchar(c < 0x20 || c == 0x7f ? '?' : c);
        }
        printf("%*s %-8s ", klen < 40 ? (int)(40 - klen) : 0, "", gguf_vtype_name(kv->value.type));
        print_value(stdout, &kv->value, false);
        putchar('\n');
    }

    printf("\ntensor types:\n  %-6s %8s %16s\n", "type", "count", "bytes");
    for (int t = 0; t < VKL_TYPE_COUNT; t++) {
        if (!in->types[t].count) continue;
        printf("  %-6s %8" PRIu64 " %16" PRIu64 "  (%s)\n", vkl_type_name(t), in->types[t].count, in->types[t].bytes,
               vkl_fmt_bytes(in->types[t].bytes, b1, sizeof b1));
    }
    printf("\ntotal tensor bytes: %" PRIu64 " (%s)\n", in->total_bytes, vkl_fmt_bytes(in->total_bytes, b1, sizeof b1));
    printf("parameters:         %" PRIu64 " (%.2f M)\n", in->n_params, (double)in->n_params / 1e6);

    if (!list_tensors) return;
    printf("\ntensors:\n  %-32s %-6s %-24s %12s %12s\n", "name", "type", "dims", "bytes", "offset");
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        char dims[96];
        size_t o = 0;
        for (uint32_t d = 0; d < t->n_dims; d++)
            o += (size_t)snprintf(dims + o, sizeof dims - o, "%s%" PRId64, d ? " x " : "", t->ne[d]);
        printf("  %-32s %-6s %-24s %12" PRIu64 " %12" PRIu64 "\n", t->name, vkl_type_name(t->type), dims, t->nbytes,
               t->offset);
    }
}

static void print_json(const info *in, bool list_tensors) {
    const gguf_file *f = in->f;
    FILE *o = stdout;
    fputs("{\n  \"file\": ", o);
    print_json_str(o, in->path, strlen(in->path));
    fprintf(o, ",\n  \"file_size\": %" PRIu64 ",\n  \"version\": %u,\n  \"alignment\": %" PRIu64
               ",\n  \"data_offset\": %" PRIu64 ",\n  \"kv_count\": %" PRIu64 ",\n  \"tensor_count\": %" PRIu64,
            f->size, f->version, f->alignment, f->data_offset, f->n_kv, f->n_tensors);
    fputs(",\n  \"architecture\": ", o);
    if (in->has_arch) print_json_str(o, in->arch, strlen(in->arch));
    else fputs("null", o);
    fputs(",\n  \"name\": ", o);
    if (in->name) print_json_str(o, in->name->value.v.str.data, in->name->value.v.str.len);
    else fputs("null", o);

    fputs(",\n  \"hyperparameters\": {", o);
    bool first = true;
    for (size_t i = 0; i < VKL_ARRAY_LEN(hparams); i++) {
        if (!in->hp[i]) continue;
        fprintf(o, "%s\n    \"%s\": ", first ? "" : ",", hparams[i].json);
        print_value(o, &in->hp[i]->value, true);
        first = false;
    }
    if (in->has_vocab) {
        fprintf(o, "%s\n    \"vocab_size\": %" PRIu64, first ? "" : ",", in->vocab_size);
        first = false;
    }
    fputs(first ? "}" : "\n  }", o);

    fputs(",\n  \"metadata\": {", o);
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        fputs(i ? ",\n    " : "\n    ", o);
        print_json_str(o, kv->key.data, kv->key.len);
        fputs(": ", o);
        print_value(o, &kv->value, true);
    }
    fputs(f->n_kv ? "\n  }" : "}", o);

    fputs(",\n  \"tensor_types\": {", o);
    first = true;
    for (int t = 0; t < VKL_TYPE_COUNT; t++) {
        if (!in->types[t].count) continue;
        fprintf(o, "%s\n    \"%s\": {\"count\": %" PRIu64 ", \"bytes\": %" PRIu64 "}", first ? "" : ",",
                vkl_type_name(t), in->types[t].count, in->types[t].bytes);
        first = false;
    }
    fputs(first ? "}" : "\n  }", o);
    fprintf(o, ",\n  \"total_tensor_bytes\": %" PRIu64 ",\n  \"parameter_count\": %" PRIu64, in->total_bytes,
            in->n_params);

    if (list_tensors) {
        fputs(",\n  \"tensors\": [", o);
        for (uint64_t i = 0; i < f->n_tensors; i++) {
            const gguf_tensor *t = &f->tensors[i];
            fputs(i ? ",\n    {\"name\": " : "\n    {\"name\": ", o);
            print_json_str(o, t->name, strlen(t->name));
            fprintf(o, ", \"type\": \"%s\", \"dims\": [", vkl_type_name(t->type));
            for (uint32_t d = 0; d < t->n_dims; d++) fprintf(o, "%s%" PRId64, d ? ", " : "", t->ne[d]);
            fprintf(o, "], \"bytes\": %" PRIu64 ", \"offset\": %" PRIu64 "}", t->nbytes, t->offset);
        }
        fputs(f->n_tensors ? "\n  ]" : "]", o);
    }
    fputs("\n}\n", o);
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    bool list_tensors = false, json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--tensors")) {
            list_tensors = true;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && i + 1 < argc && !path) {
            path = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "vkllm info: unknown option '%s' (usage: vkllm info MODEL.gguf [--tensors] [--json])\n", a);
            return 2;
        } else if (path) {
            fprintf(stderr, "vkllm info: only one model file may be given (see --help)\n");
            return 2;
        } else {
            path = a;
        }
    }
    if (!path) {
        fprintf(stderr, "vkllm info: no model file given (usage: vkllm info MODEL.gguf [--tensors] [--json])\n");
        return 2;
    }
    vkl_error err = {{0}};
    gguf_file *f = gguf_open(path, &err);
    if (!f) {
        fprintf(stderr, "vkllm info: %s: %s\n", path, err.msg);
        return 1;
    }
    info in = {.f = f, .path = path};
    gather(&in);
    if (json) print_json(&in, list_tensors);
    else print_text(&in, list_tensors);
    gguf_close(f);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "vkllm info: cannot write the output\n");
        return 1;
    }
    vkllm_error verr = {{0}};
    if (vkllm_model_check(path, &verr) && cli_verbosity >= CLI_LOG_WARN)
        fprintf(stderr, "vkllm info: warning: vkllm cannot run it: %s\n", verr.msg);
    return 0;
}
