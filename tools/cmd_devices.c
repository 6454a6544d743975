/* `vkllm devices [--json]`: the CPU and every Vulkan device, as each backend describes them. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cli.h"

#define MAX_DEVICES 16

typedef struct backend_devices {
    const vkl_backend_reg *reg;
    int count; /* -1: backend unusable (err says why) */
    vkl_device_info dev[MAX_DEVICES];
    vkl_error err;
} backend_devices;

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

/* A details value as JSON: an integer as a number, yes/no as a boolean, anything else a string. */
static void json_value(FILE *f, const char *v) {
    if (!strcmp(v, "yes") || !strcmp(v, "no")) {
        fputs(v[0] == 'y' ? "true" : "false", f);
        return;
    }
    const char *p = v;
    while (isdigit((unsigned char)*p)) p++;
    if (p != v && !*p && (v[0] != '0' || !v[1])) fputs(v, f);
    else json_string(f, v);
}

/* The "key: value" lines of details as JSON members; keys become snake_case. */
static void json_details(FILE *f, const char *details) {
    fputc('{', f);
    bool first = true;
    const char *line = details;
    while (*line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char buf[512];
        if (len >= sizeof buf) len = sizeof buf - 1;
        memcpy(buf, line, len);
        buf[len] = 0;
        char *colon = strstr(buf, ": ");
        if (colon) {
            *colon = 0;
            for (char *k = buf; *k; k++)
                if (!isalnum((unsigned char)*k)) *k = '_';
            fprintf(f, "%s\n      ", first ? "" : ",");
            json_string(f, buf);
            fputs(": ", f);
            json_value(f, colon + 2);
            first = false;
        }
        line += end ? (size_t)(end - line) + 1 : strlen(line);
    }
    fputc('}', f);
}

static void print_json(const backend_devices *b, int nb) {
    printf("{\n  \"backends\": [");
    for (int i = 0; i < nb; i++) {
        printf("%s\n    {\"name\": ", i ? "," : "");
        json_string(stdout, b[i].reg->name);
        printf(", \"devices\": %d, \"error\": ", b[i].count > 0 ? b[i].count : 0);
        if (b[i].count < 0) json_string(stdout, b[i].err.msg);
        else printf("null");
        printf("}");
    }
    printf("\n  ],\n  \"devices\": [");
    bool first = true;
    for (int i = 0; i < nb; i++)
        for (int j = 0; j < b[i].count && j < MAX_DEVICES; j++) {
            const vkl_device_info *d = &b[i].dev[j];
            printf("%s\n    {\"backend\": ", first ? "" : ",");
            json_string(stdout, d->backend);
            printf(", \"index\": %d, \"name\": ", d->index);
            json_string(stdout, d->name);
            printf(", \"kind\": ");
            json_string(stdout, vkl_device_kind_name(d->kind));
            printf(",\n     \"mem_total\": %llu, \"mem_free\": %llu, \"max_alloc\": %llu, "
                   "\"uma\": %s,\n     \"details\": ",
                   (unsigned long long)d->mem_total, (unsigned long long)d->mem_free,
                   (unsigned long long)d->max_alloc, d->uma ? "true" : "false");
            json_details(stdout, d->details);
            printf("}");
            first = false;
        }
    printf("\n  ]\n}\n");
}

static void print_text(const backend_devices *b, int nb) {
    for (int i = 0; i < nb; i++) {
        if (i) printf("\n");
        if (b[i].count < 0) {
            printf("%s: %s\n", b[i].reg->name, b[i].err.msg);
            continue;
        }
        printf("%s: %d device%s\n", b[i].reg->name, b[i].count, b[i].count == 1 ? "" : "s");
        for (int j = 0; j < b[i].count && j < MAX_DEVICES; j++) {
            const vkl_device_info *d = &b[i].dev[j];
            printf("  [%d] %s\n", d->index, d->name);
            const char *line = d->details;
            while (*line) {
                const char *end = strchr(line, '\n');
                int len = end ? (int)(end - line) : (int)strlen(line);
                printf("      %.*s\n", len, line);
                line += len + (end ? 1 : 0);
            }
        }
        if (b[i].count > MAX_DEVICES) printf("  (%d more not shown)\n", b[i].count - MAX_DEVICES);
    }
}

static void usage(FILE *f) {
    fprintf(f, "usage: vkllm devices [--json]\n"
               "Lists the CPU and every Vulkan device; the index is what --device N selects.\n"
               "  --json   machine-readable output\n");
}

int cmd_devices(int argc, char **argv) {
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = true;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "vkllm devices: unknown option '%s' (usage: vkllm devices [--json])\n", argv[i]);
            return 2;
        }
    }
    int nb = 0;
    while (vkl_backend_registry[nb].reg) nb++;
    backend_devices *b = calloc((size_t)nb, sizeof *b);
    if (!b) {
        fprintf(stderr, "vkllm devices: out of memory\n");
        return 1;
    }
    for (int i = 0; i < nb; i++) {
        b[i].reg = vkl_backend_registry[i].reg;
        b[i].count = b[i].reg->enumerate(b[i].dev, MAX_DEVICES, &b[i].err);
    }
    if (json) print_json(b, nb);
    else print_text(b, nb);
    free(b);
    return 0; /* a machine without Vulkan is not an error: the CPU backend still works */
}
