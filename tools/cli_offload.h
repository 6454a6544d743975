/* The offload options shared by run, chat, plan and bench: -ngl, --auto-fit, --vram-budget,
 * --tensor-split, --kv-on-cpu, --device. */
#ifndef VKL_CLI_OFFLOAD_H
#define VKL_CLI_OFFLOAD_H

#include <stdbool.h>
#include <stdio.h>

#include "vkllm.h"

typedef struct cli_offload {
    int n_gpu_layers;
    bool ngl_set, auto_fit, kv_on_cpu;
    bool any_set; /* some offload option was given */
    int devices[VKLLM_MAX_GPUS], n_devices;
    float split[VKLLM_MAX_GPUS];
    int n_split;
    uint64_t budget[VKLLM_MAX_GPUS];
    int n_budget;
} cli_offload;

/* The options' help lines (for a command's usage text). */
extern const char cli_offload_help[];

void cli_offload_init(cli_offload *o);
/* If argv[*i] is an offload option, consumes it and its value (advancing *i) and returns 1;
 * returns 0 for other options; -1 after printing "vkllm CMD: ..." (a usage error: exit 2). */
int cli_offload_parse(cli_offload *o, const char *cmd, int argc, char **argv, int *i);
/* Checks the combination and fills the offload fields of mp (no -ngl: auto-fit). Returns 0, or
 * -1 after printing a one-line usage error (exit 2). */
int cli_offload_apply(const cli_offload *o, const char *cmd, vkllm_model_params *mp);
/* An explicit -ngl N > 0 without a usable Vulkan device: a warning and the CPU (mp changed), or,
 * when --device was given, a one-line error (returns -1: exit 1). */
int cli_offload_check_devices(const cli_offload *o, const char *cmd, vkllm_model_params *mp);
/* The plan before loading: the table to out when show (vkllm plan) or -v, else one summary line on
 * stderr (none with -q); with warnings for a --vram-budget above a device's memory and a plan
 * leaving under 5% of the host's memory. Returns 0, or -1 after printing the error (exit 1). */
int cli_offload_print_plan(const cli_offload *o, const char *cmd, const char *model, const vkllm_model_params *mp,
                           FILE *out, bool show);

#endif
