/* The vkllm command-line tool: one function per subcommand. */
#ifndef VKL_CLI_H
#define VKL_CLI_H

typedef int (*vkl_cmd_fn)(int argc, char **argv); /* argv[0] is the subcommand name */

int cmd_info(int argc, char **argv);
int cmd_devices(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);

#endif
