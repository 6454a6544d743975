/* Reading the chat's input lines: with line editing and history (libedit, when the build found it)
 * on a terminal, else plain lines from stdin. */
#ifndef VKL_CLI_LINE_H
#define VKL_CLI_LINE_H

#include <stdbool.h>
#include <stddef.h>

/* Whether line editing was built in. */
bool cli_line_editing(void);
/* Reads one line, without its newline, into a malloc'd *out (the caller frees it). prompt is shown
 * when interactive. Returns 0, 1 at end of input, or 2 when Ctrl-C was pressed at the prompt. */
int cli_line_read(bool interactive, const char *prompt, char **out);
/* Adds an entry to the history (interactive line editing only). */
void cli_line_history(bool interactive, const char *line);

#endif
