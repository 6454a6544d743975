/* The offload options shared by the subcommands (see cli_offload.h). */
#include "cli_offload.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "backend.h"
#include "cli_args.h"
#include "common.h"

const char cli_offload_help[] =
    "  -ngl, --n-gpu-layers N layers on the Vulkan GPU(s): the last N; more than the model has =\n"
    "                         the output head too (llama.cpp's meaning; reduced to what fits)\n"
    "  --auto-fit             the split with the best predicted speed that fits (the default\n"
    "                         without -ngl; on lavapipe, slower than the CPU backend: the CPU)\n"
    "  --vram-budget S[,S..]  device memory to plan with per GPU, e.g. 6G (emulates a smaller card;\n"
    "                         at least 1M, a warning when above the device's memory)\n"
    "  -ts, --tensor-split A,B,..\n"
    "                         proportions (> 0) of the GPU layers over several Vulkan devices\n"
    "  --kv-on-cpu, -nkvo     keep the GPU layers' KV cache in host memory\n"
    "  -dev, --device N[,N..] Vulkan device(s) to use: indices, or VulkanN as llama.cpp names them\n"
    "                         (see `vkllm devices`; default 0); 'none' = the CPU only (-ngl 0)\n";

void cli_offload_init(cli_offload *o) {
    memset(o, 0, sizeof *o);
}

/* Splits a comma list into at most VKLLM_MAX_GPUS items, each checked by ok(item, index). */
static int parse_list(const char *val, int *n, bool (*ok)(const char *, void *, int), void *dst) {
    char buf[256];
    if (strlen(val) >= sizeof buf) return -1;
    strcpy(buf, val);
    *n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n == VKLLM_MAX_GPUS || !ok(tok, dst, *n)) return -1;
        (*n)++;
    }
    /* "1,,2", ",1", "1," leave empty items: refuse them */
    if (*n == 0 || val[0] == ',' || val[strlen(val) - 1] == ',' || strstr(val, ",,")) return -1;
    return 0;
}

static bool ok_device(const char *s, void *dst, int i) {
    if (!strncasecmp(s, "vulkan", 6)) s += 6; /* llama.cpp's device names: Vulkan0, Vulkan1, ... */
    return cli_parse_int(s, 0, 1 << 16, &((int *)dst)[i]);
}

static bool ok_split(const char *s, void *dst, int i) {
    float f;
    if (!cli_parse_float(s, 0, 1e6f, &f) || !(f > 0)) return false; /* zero or negative: refused */
    ((float *)dst)[i] = f;
    return true;
}

static bool ok_budget(const char *s, void *dst, int i) {
    uint64_t b;
    if (s[0] < '0' || s[0] > '9' || vkl_parse_size(s, &b) || b < ((uint64_t)1 << 20)) return false;
    ((uint64_t *)dst)[i] = b;
    return true;
}

int cli_offload_parse(cli_offload *o, const char *cmd, int argc, char **argv, int *i) {
    const char *opt = argv[*i];
    if (!strcmp(opt, "--auto-fit") || !strcmp(opt, "--kv-on-cpu") || !strcmp(opt, "-nkvo") ||
        !strcmp(opt, "--no-kv-offload")) {
        *(opt[2] == 'a' ? &o->auto_fit : &o->kv_on_cpu) = true;
        o->any_set = true;
        return 1;
    }
    if (!strcmp(opt, "-ts")) opt = "--tensor-split";
    if (!strcmp(opt, "-dev")) opt = "--device";
    bool ngl = !strcmp(opt, "-ngl") || !strcmp(opt, "--n-gpu-layers") || !strcmp(opt, "--gpu-layers");
    bool known = ngl || !strcmp(opt, "--vram-budget") || !strcmp(opt, "--tensor-split") || !strcmp(opt, "--device");
    if (!known) return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "vkllm %s: %s needs a value\n", cmd, opt);
        return -1;
    }
    const char *val = argv[++*i];
    int rc = 0;
    o->any_set = true;
    if (ngl) {
        rc = cli_parse_int(val, 0, 1 << 20, &o->n_gpu_layers) ? 0 : -1;
        o->ngl_set = true;
    } else if (!strcmp(opt, "--device") && !strcmp(val, "none")) {
        o->n_gpu_layers = 0, o->ngl_set = true;
    } else if (!strcmp(opt, "--vram-budget")) {
        rc = parse_list(val, &o->n_budget, ok_budget, o->budget);
    } else if (!strcmp(opt, "--tensor-split")) {
        rc = parse_list(val, &o->n_split, ok_split, o->split);
    } else {
        rc = parse_list(val, &o->n_devices, ok_device, o->devices);
    }
    if (rc) {
        const char *why = ngl                               ? " (a layer count in 0..1048576)"
                          : !strcmp(opt, "--vram-budget")  ? " (sizes such as 6G or 512M, comma-separated)"
                          : !strcmp(opt, "--tensor-split") ? " (proportions > 0, comma-separated)"
                                                           : " (device indices 0..65536 or VulkanN, comma-separated)";
        fprintf(stderr, "vkllm %s: bad value '%s' for %s%s\n", cmd, val, argv[*i - 1], why);
        return -1;
    }
    return 1;
}

int cli_offload_apply(const cli_offload *o, const char *cmd, vkllm_model_params *mp) {
    if (o->ngl_set && o->auto_fit) {
        fprintf(stderr, "vkllm %s: give either -ngl N or --auto-fit\n", cmd);
        return -1;
    }
    /* How many devices: --device lists them; else as many as the longest other list. */
    int n = o->n_devices ? o->n_devices : VKL_MAX(VKL_MAX(o->n_split, o->n_budget), 1);
    if ((o->n_split && o->n_split != n) || (o->n_budget > 1 && o->n_budget != n)) {
        fprintf(stderr, "vkllm %s: --device, --tensor-split and --vram-budget list different numbers of devices\n",
                cmd);
        return -1;
    }
    mp->n_gpu_layers = o->ngl_set ? o->n_gpu_layers : VKLLM_AUTO_FIT;
    mp->auto_fit = !o->ngl_set;
    mp->kv_on_cpu = o->kv_on_cpu;
    mp->n_devices = n;
    for (int i = 0; i < n; i++) {
        mp->devices[i] = o->n_devices ? o->devices[i] : i;
        mp->tensor_split[i] = o->n_split ? o->split[i] : 0;
        mp->vram_budget[i] = o->n_budget ? o->budget[o->n_budget > 1 ? i : 0] : 0;
    }
    mp->gpu_device = mp->devices[0];
    return 0;
}

int cli_offload_check_devices(const cli_offload *o, const char *cmd, vkllm_model_params *mp) {
    if (mp->n_gpu_layers <= 0 || mp->auto_fit) return 0;
    vkllm_error err = {{0}};
    int n = vkllm_gpu_count(&err), need = 0;
    for (int i = 0; i < mp->n_devices; i++) need = VKL_MAX(need, mp->devices[i] + 1);
    if (n >= need) return 0;
    if (n >= 0) snprintf(err.msg, sizeof err.msg, "no Vulkan device %d (%d found)", need - 1, n);
    if (o->n_devices) {
        fprintf(stderr, "vkllm %s: --device %d: %s\n", cmd, need - 1, err.msg);
        return -1;
    }
    fprintf(stderr, "vkllm %s: warning: %s; running on the CPU\n", cmd, err.msg);
    mp->n_gpu_layers = 0;
    return 0;
}

/* Host memory from /proc/meminfo (kB lines); 0 when unknown. */
static uint64_t meminfo(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long long kb = 0;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':') sscanf(line + n + 1, "%llu", &kb);
    if (f) fclose(f);
    return (uint64_t)kb * 1024;
}

/* A --vram-budget above a device's memory, a plan leaving under 5% of the host's memory. */
static void plan_warnings(const cli_offload *o, const char *cmd, const vkllm_model_params *mp,
                          const vkllm_plan_info *pi) {
    char a[32], b[32], c[32];
    if (cli_verbosity < CLI_LOG_WARN) return;
    if (o->n_budget) {
        vkl_device_info devs[16];
        vkl_error err = {{0}};
        const vkl_backend_reg *reg = vkl_backend_offload();
        int n = reg && reg->enumerate ? reg->enumerate(devs, 16, &err) : 0;
        for (int i = 0; i < mp->n_devices; i++) {
            int d = mp->devices[i];
            if (d < n && d < 16 && mp->vram_budget[i] > devs[d].mem_total)
                fprintf(stderr, "vkllm %s: warning: --vram-budget %s is above Vulkan device %d's memory (%s): the plan "
                        "may not fit\n", cmd, vkl_fmt_bytes(mp->vram_budget[i], a, sizeof a), d,
                        vkl_fmt_bytes(devs[d].mem_total, b, sizeof b));
        }
    }
    uint64_t total = meminfo("MemTotal"), avail = meminfo("MemAvailable");
    if (total && avail && (double)avail - (double)pi->host_bytes < 0.05 * (double)total)
        fprintf(stderr, "vkllm %s: warning: the plan needs %s of host memory, leaving under 5%% of this machine's %s "
                "(%s available now)\n", cmd, vkl_fmt_bytes(pi->host_bytes, a, sizeof a),
                vkl_fmt_bytes(total, b, sizeof b), vkl_fmt_bytes(avail, c, sizeof c));
}

/* "plan: -ngl 99: 22/22 layers + output on GPU 0 (1.1 GiB), host 120 MiB; 75.3 tok/s predicted" */
static void plan_summary(const cli_offload *o, const vkllm_plan_info *pi) {
    char a[32], asked[32] = "auto-fit";
    if (o->ngl_set) snprintf(asked, sizeof asked, "-ngl %d", o->n_gpu_layers);
    fprintf(stderr, "plan (%s): ", asked);
    int on_gpu = VKL_MIN(pi->n_gpu_layers, pi->n_layer);
    if (on_gpu == 0 && !pi->gpu_head) {
        fprintf(stderr, "CPU only, %d layers", pi->n_layer);
    } else {
        fprintf(stderr, "%d/%d layers%s on", on_gpu, pi->n_layer, pi->gpu_head ? " + output" : "");
        for (int g = 0; g < pi->n_gpus; g++)
            fprintf(stderr, "%s GPU %d %d layers %s", g ? "," : "", g, pi->gpu_layers[g],
                    vkl_fmt_bytes(pi->predicted[g], a, sizeof a));
    }
    fprintf(stderr, ", host %s", vkl_fmt_bytes(pi->host_bytes, a, sizeof a));
    if (pi->tokens_per_s > 0) fprintf(stderr, "; %.1f tok/s predicted", pi->tokens_per_s);
    fprintf(stderr, " (-v: the table)\n");
}

int cli_offload_print_plan(const cli_offload *o, const char *cmd, const char *model, const vkllm_model_params *mp,
                           FILE *out, bool show) {
    vkllm_error err = {{0}};
    vkllm_plan_info pi;
    if (vkllm_plan_query(model, mp, &pi, &err)) {
        fprintf(stderr, "vkllm %s: %s\n", cmd, err.msg);
        return -1;
    }
    plan_warnings(o, cmd, mp, &pi);
    if (!show && cli_verbosity < CLI_LOG_DEBUG) {
        if (cli_verbosity >= CLI_LOG_INFO) plan_summary(o, &pi);
        return 0;
    }
    int n = vkllm_plan_describe(model, mp, NULL, 0, &err);
    char *text = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (n >= 0 && !text) snprintf(err.msg, sizeof err.msg, "out of memory");
    if (!text || vkllm_plan_describe(model, mp, text, (size_t)n + 1, &err) < 0) {
        fprintf(stderr, "vkllm %s: %s\n", cmd, err.msg);
        free(text);
        return -1;
    }
    fputs(text, out);
    free(text);
    return 0;
}
