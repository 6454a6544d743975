/* The generation options of run and chat, with llama.cpp's names and meanings, as one table: the
 * parser, the range checks (a bad value's message states the range) and the grouped --help all
 * come from it. Also the log verbosity every command shares, and the warnings about a setup. */
#ifndef VKL_CLI_OPTS_H
#define VKL_CLI_OPTS_H

#include <stdbool.h>
#include <stdio.h>

#include "cli_args.h"
#include "cli_offload.h"
#include "vkllm.h"

#define CLI_RUN 1u
#define CLI_CHAT 2u
#define CLI_MAX_REVERSE 16

typedef struct cli_gen {
    const char *model, *prompt, *prompt_file, *system, *chat_template;
    const char *logits_out, *tokens_out, *tokens_in;
    const char *reverse[CLI_MAX_REVERSE];
    int n_reverse;
    int n_threads, n_threads_batch, n_ctx, n_batch, n_keep, n_predict; /* n_predict -1: unlimited */
    int kv_f32;
    bool n_predict_set, n_ctx_set;
    bool no_escape, no_display_prompt, ignore_eos, profile, context_shift, no_warmup, flag_escape;
    vkllm_sampler_params sp;
    cli_offload off;
    vkllm_model_params mp; /* the offload fields, from off (set by cli_gen_finish) */
} cli_gen;

/* Defaults for cmd (CLI_RUN or CLI_CHAT). */
void cli_gen_init(cli_gen *g, unsigned cmd);
/* Parses argv[1..]. Returns 0, 1 after -h/--help, or 2 after a one-line usage error. The prompt
 * texts (-p, -r, -sys) are unescaped here unless --no-escape. */
int cli_gen_parse(cli_gen *g, unsigned cmd, int argc, char **argv);
/* The options of cmd, grouped like llama-cli's --help, each with its range and default. */
void cli_gen_help(FILE *out, unsigned cmd);

/* -q, -v, --verbose, -lv/--log-verbosity N: consumes argv[*i] (and its value) and returns 1;
 * 0 for other options; -1 after a one-line message. */
int cli_log_parse(const char *cmd, int argc, char **argv, int *i);
extern const char cli_log_help[];

/* In place: llama.cpp's escapes (\n \r \t \' \" \\ \xNN); any other backslash stays as it is. */
void cli_unescape(char *s);

/* The prompt: -p as given (unescaped by the parser), or -f's file with one trailing newline
 * removed (as llama.cpp does); malloc'd, *len bytes. NULL after a one-line message. */
char *cli_gen_prompt_text(const cli_gen *g, const char *cmd, size_t *len);

/* The model file's training context (0 when it cannot be read). */
int cli_ctx_train(const char *path);
/* -c 0 (the model's training context) resolved; a context beyond the training length and more
 * threads than cores get a warning. Returns 0, or -1 after a message naming an unusable model
 * (the same words for every command). */
int cli_gen_check_model(cli_gen *g, const char *cmd);
/* Model check only (plan, bench, info): 0, or -1 after the one-line message. */
int cli_check_model(const char *cmd, const char *path);
/* Warnings about thread counts beyond the cores (t may be 0: the default). */
void cli_warn_threads(const char *cmd, int t);

/* The SIGINT flag: cli_sigint_install() sets it on Ctrl-C instead of ending the process (a second
 * Ctrl-C within a check-free stretch still ends it through the default action once restored). */
extern volatile int cli_interrupted;
void cli_sigint_install(void);

/* Monotonic seconds. */
double cli_now(void);

/* Loading progress (at info verbosity): a bar on a terminal, else a plain line per quarter once
 * loading has taken a second. Sets mp->progress; p must outlive the load. */
typedef struct cli_progress {
    bool tty;
    double t0;
    int last_quarter;
} cli_progress;
void cli_progress_attach(cli_progress *p, vkllm_model_params *mp);

/* What run, chat and perplexity do first: check the devices, print the plan, read the model (with
 * the progress display when progress is set) and create a context of mp's n_ctx, n_batch and
 * kv_type. 0, or -1 after a one-line message "vkllm CMD: ..." (*m may then be set: free it). */
int cli_load(const cli_offload *o, const char *cmd, const char *model, vkllm_model_params *mp, bool progress,
             vkllm_model **m, vkllm_context **c);

#endif
