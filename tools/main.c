/* vkllm: command-line entry point; dispatches to the subcommands in tools/cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct {
    const char *name;
    vkl_cmd_fn fn;
    const char *help;
} vkl_cmd;

static const vkl_cmd commands[] = {
    {"info", cmd_info, "show a GGUF model's metadata and tensors"},
    {"devices", cmd_devices, "list the CPU and every Vulkan device"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"synth", cmd_synth, "write a LLaMA-shaped GGUF with random weights"},
    {"run", cmd_run, "generate text from a prompt"},
    {"chat", cmd_chat, "chat interactively with a model"},
    {"plan", cmd_plan, "print the offload plan (layers per device, memory, speed)"},
    {"bench", cmd_bench, "measure prompt and generation speed (CPU, Vulkan, splits)"},
    {"quantize", cmd_quantize, "convert a model to another type or llama.cpp quant mixture"},
    {"perplexity", cmd_perplexity, "measure perplexity and KL divergence on a text"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: vkllm COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\n'vkllm COMMAND --help' shows a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("vkllm 0.1.0\n");
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "vkllm: unknown command '%s' (try 'vkllm --help')\n", argv[1]);
    return 2;
}
