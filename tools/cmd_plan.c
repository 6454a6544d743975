/* vkllm plan: prints the offload plan of a model (which device holds which layers, memory per
 * device, predicted speed) without loading the weights. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_offload.h"
#include "cli_opts.h"
#include "vkllm.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: vkllm plan -m MODEL.gguf [-c CTX] [-b N] [--kv-type f16|f32] [offload options]\n"
            "\n"
            "Prints the offload plan (the same table `vkllm run` prints before loading) and exits.\n"
            "\n"
            "  -m, --model PATH       the GGUF model\n"
            "  -c, --ctx-size N       context positions the KV cache is planned for\n"
            "                         (default: min(training context, 4096))\n"
            "  -b, --batch-size N     prompt batch the scratch is planned for (default 512)\n"
            "  --kv-type f16|f32      KV cache type (default f16)\n"
            "%s%s"
            "Env VKLLM_GPU_BW_GBPS / VKLLM_CPU_BW_GBPS override the predicted read bandwidths.\n",
            cli_offload_help, cli_log_help);
}

int cmd_plan(int argc, char **argv) {
    cli_offload off;
    cli_offload_init(&off);
    vkllm_model_params mp = vkllm_model_default_params();
    const char *model = NULL;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (!strcmp(opt, "-h") || !strcmp(opt, "--help")) {
            usage(stdout);
            return 0;
        }
        int r = cli_log_parse("plan", argc, argv, &i);
        if (r == 0) r = cli_offload_parse(&off, "plan", argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (i + 1 >= argc) {
            fprintf(stderr, "vkllm plan: %s %s\n", opt, opt[0] == '-' ? "needs a value (or is unknown; see --help)" : "is not an option");
            return 2;
        }
        const char *val = argv[++i];
        bool ok = true;
        if (!strcmp(opt, "-m") || !strcmp(opt, "--model")) model = val;
        else if (!strcmp(opt, "-c") || !strcmp(opt, "--ctx-size")) ok = cli_parse_int(val, 1, 1 << 22, &mp.n_ctx);
        else if (!strcmp(opt, "-b") || !strcmp(opt, "--batch-size")) ok = cli_parse_int(val, 1, 1 << 16, &mp.n_batch);
        else if (!strcmp(opt, "--kv-type")) {
            ok = !strcmp(val, "f16") || !strcmp(val, "f32");
            mp.kv_type = !strcmp(val, "f32") ? VKLLM_KV_F32 : VKLLM_KV_F16;
        } else {
            fprintf(stderr, "vkllm plan: unknown option %s (see --help)\n", opt);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "vkllm plan: bad value '%s' for %s\n", val, opt);
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr, "vkllm plan: -m MODEL is required (see --help)\n");
        return 2;
    }
    if (cli_offload_apply(&off, "plan", &mp)) return 2;
    if (cli_offload_check_devices(&off, "plan", &mp) || cli_check_model("plan", model)) return 1;
    int train = cli_ctx_train(model);
    if (train > 0 && mp.n_ctx > train && cli_verbosity >= CLI_LOG_WARN)
        fprintf(stderr, "vkllm plan: warning: -c %d is beyond the model's training context (%d)\n", mp.n_ctx, train);
    return cli_offload_print_plan(&off, "plan", model, &mp, stdout, true) ? 1 : 0;
}
