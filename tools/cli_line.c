/* Chat input lines (see cli_line.h). */
#include "cli_line.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "cli_args.h"
#include "cli_opts.h"

#ifdef VKLLM_LINE_EDITING
#include <editline/readline.h>
#endif

bool cli_line_editing(void) {
#ifdef VKLLM_LINE_EDITING
    return true;
#else
    return false;
#endif
}

static int plain_read(bool interactive, const char *prompt, char **out) {
    if (interactive) {
        fputs(prompt, stdout);
        fflush(stdout);
    }
    size_t cap = 0;
    *out = NULL;
    ssize_t got = getline(out, &cap, stdin);
    if (got < 0) {
        free(*out);
        *out = NULL;
        return cli_interrupted ? 2 : 1;
    }
    size_t len = (size_t)got;
    while (len && ((*out)[len - 1] == '\n' || (*out)[len - 1] == '\r')) len--;
    (*out)[len] = 0;
    return 0;
}

int cli_line_read(bool interactive, const char *prompt, char **out) {
    cli_interrupted = 0;
#ifdef VKLLM_LINE_EDITING
    if (interactive) {
        *out = readline(prompt);
        if (*out) return 0;
        return cli_interrupted ? 2 : 1;
    }
#endif
    return plain_read(interactive, prompt, out);
}

void cli_line_history(bool interactive, const char *line) {
#ifdef VKLLM_LINE_EDITING
    if (interactive && *line) add_history(line);
#else
    (void)interactive, (void)line;
#endif
}
