/* Strict option-value parsing shared by the vkllm subcommands. */
#ifndef VKL_CLI_ARGS_H
#define VKL_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* Log levels (llama.cpp's): a message is shown when its level <= cli_verbosity. */
enum { CLI_LOG_ERROR = 1, CLI_LOG_WARN = 2, CLI_LOG_INFO = 3, CLI_LOG_DEBUG = 4 };
extern int cli_verbosity; /* default CLI_LOG_INFO; -q: CLI_LOG_WARN; -v: CLI_LOG_DEBUG */

/* Each accepts only the whole string, a finite value within [lo, hi]; false otherwise (out untouched). */
bool cli_parse_long(const char *s, long lo, long hi, long *out);
bool cli_parse_int(const char *s, int lo, int hi, int *out);
bool cli_parse_float(const char *s, float lo, float hi, float *out);
/* A non-negative decimal 64-bit integer (seeds). */
bool cli_parse_u64(const char *s, uint64_t *out);

/* The whole file (not NUL-terminated; *len bytes), malloc'd; NULL with a message naming path. */
char *cli_read_file(const char *path, size_t *len, vkl_error *err);

#endif
