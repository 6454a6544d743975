/* `vkllm chat` on a terminal, through a pseudo-terminal (forkpty): arrow keys edit the line, Up
 * recalls the history, Ctrl-C stops a reply in progress and returns to the prompt, Ctrl-C at the
 * prompt ends the chat (exit 130). The replies typed on the terminal must equal those of the same
 * messages piped, so the edited line is exactly what reached the model. Uses a synthetic model
 * written by `vkllm synth`, so it runs on a plain clone. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

static char tmp_dir[256], model[512], out_path[512];

typedef struct term {
    int fd;
    pid_t pid;
    char buf[1 << 20];
    size_t len;
} term;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Reads what the terminal shows for up to `secs`, or until `want` appears after offset `from`
 * (want may be NULL). Returns whether it appeared. */
static bool wait_for(term *t, size_t from, const char *want, double secs) {
    double end = now() + secs;
    while (now() < end) {
        t->buf[t->len] = 0;
        if (want && strstr(t->buf + from, want)) return true;
        struct pollfd p = {t->fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        ssize_t n = read(t->fd, t->buf + t->len, sizeof t->buf - 1 - t->len);
        if (n <= 0) break; /* EIO: the child closed the terminal */
        t->len += (size_t)n;
    }
    t->buf[t->len] = 0;
    return want && strstr(t->buf + from, want);
}

static void type(term *t, const char *keys) {
    ssize_t n = write(t->fd, keys, strlen(keys));
    CHECK(n == (ssize_t)strlen(keys), "write to the terminal");
}

static bool start(term *t, const char *n_predict) {
    memset(t, 0, sizeof *t);
    struct winsize ws = {.ws_row = 40, .ws_col = 200};
    t->pid = forkpty(&t->fd, NULL, NULL, &ws);
    if (t->pid < 0) return false;
    if (t->pid == 0) {
        execl(VKLLM_CLI, "vkllm", "chat", "-m", model, "--temp", "0", "-t", "1", "-c", "4096", "-n", n_predict,
              (char *)NULL);
        _exit(127);
    }
    return true;
}

static int finish(term *t) {
    int st = 0;
    for (int i = 0; i < 100 && waitpid(t->pid, &st, WNOHANG) == 0; i++) {
        wait_for(t, t->len, NULL, 0.1);
    }
    if (waitpid(t->pid, &st, WNOHANG) == 0) {
        kill(t->pid, SIGKILL);
        waitpid(t->pid, &st, 0);
    }
    close(t->fd);
    if (WIFSIGNALED(st)) printf("the chat ended by signal %d\n", WTERMSIG(st));
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Removes the carriage returns a terminal adds. */
static void strip_cr(char *s) {
    char *w = s;
    for (; *s; s++)
        if (*s != '\r') *w++ = *s;
    *w = 0;
}

static bool has_line_editing(void) {
    char args[64];
    snprintf(args, sizeof args, "chat --help");
    test_run_cli(NULL, args, NULL, out_path, NULL);
    char *help = test_slurp(out_path);
    bool yes = strstr(help, "history (libedit)") != NULL;
    free(help);
    return yes;
}

/* Editing and history: "abc", Left Left, "X", Enter sends "aXbc"; Up, Enter sends it again. */
static void editing(void) {
    char args[1024];
    snprintf(args, sizeof args, "chat -m '%s' --temp 0 -t 1 -c 4096 -n 6", model);
    int rc = test_run_cli(NULL, args, "aXbc\\naXbc\\n", out_path, "/dev/null");
    char *piped = test_slurp(out_path), reply1[512], reply2[512];
    test_line_at(piped, 0, reply1, sizeof reply1);
    test_line_at(piped, 1, reply2, sizeof reply2);
    free(piped);
    CHECK(rc == 0 && reply1[0] && reply2[0], "piped chat: exit %d, replies '%s' '%s'", rc, reply1, reply2);

    term *t = calloc(1, sizeof *t);
    CHECK(start(t, "6"), "forkpty");
    CHECK(wait_for(t, 0, "> ", 60), "no prompt: %s", t->buf);
    size_t mark = t->len;
    type(t, "abc\033[D\033[DX\r");
    CHECK(wait_for(t, mark, "]\r\n> ", 60), "no reply to the edited line: %s", t->buf + mark);
    mark = t->len;
    type(t, "\033[A\r"); /* Up: the history */
    CHECK(wait_for(t, mark, "]\r\n> ", 60), "no reply to the recalled line: %s", t->buf + mark);
    wait_for(t, t->len, NULL, 0.2); /* as a person would: a moment after the prompt */
    type(t, "\003");                /* Ctrl-C at the prompt ends the chat */
    rc = finish(t);
    CHECK(rc == 130, "Ctrl-C at the prompt: exit %d, expected 130", rc);
    strip_cr(t->buf);
    const char *first = strstr(t->buf, reply1), *second = first ? strstr(first + strlen(reply1), reply2) : NULL;
    CHECK(first && second, "the terminal replies differ from the piped ones ('%s', '%s'):\n%s", reply1, reply2,
          t->buf);
    free(t);
}

/* Ctrl-C while a long reply streams: it stops, its timings follow, the prompt comes back. */
static void interrupt_reply(void) {
    term *t = calloc(1, sizeof *t);
    CHECK(start(t, "-1"), "forkpty");
    CHECK(wait_for(t, 0, "> ", 60), "no prompt: %s", t->buf);
    size_t mark = t->len;
    type(t, "Tell me a story\r");
    for (double end = now() + 30; t->len < mark + 200 && now() < end;) wait_for(t, t->len, NULL, 0.05); /* some reply */
    CHECK(t->len >= mark + 200, "the reply did not start: %s", t->buf + mark);
    double t0 = now();
    type(t, "\003");
    if (!wait_for(t, mark, "(stopped)", 10)) {
        CHECK(0, "Ctrl-C did not stop the reply: %s", t->buf + mark);
        finish(t);
        free(t);
        return;
    }
    CHECK(now() - t0 < 5, "stopping took %.1f s", now() - t0);
    size_t stopped = (size_t)(strstr(t->buf + mark, "(stopped)") - t->buf);
    CHECK(wait_for(t, stopped, "reply: ", 10) && wait_for(t, stopped, "]\r\n> ", 10),
          "no timings or prompt after Ctrl-C: %s", t->buf + stopped);
    CHECK(!strstr(t->buf + mark, "context full"), "the reply ran to the end of the context before Ctrl-C");
    /* The chat goes on: a command still works, then /exit ends it with 0. */
    mark = t->len;
    type(t, "/help\r");
    CHECK(wait_for(t, mark, "/regen", 10), "/help after Ctrl-C: %s", t->buf + mark);
    type(t, "/exit\r");
    int rc = finish(t);
    CHECK(rc == 0, "/exit: exit %d", rc);
    free(t);
}

int main(void) {
    test_make_tmp_dir(tmp_dir, sizeof tmp_dir, "cli_pty");
    snprintf(out_path, sizeof out_path, "%s/out", tmp_dir);
    snprintf(model, sizeof model, "%s/synth.gguf", tmp_dir);
    char args[1024];
    snprintf(args, sizeof args, "synth -o '%s' --preset tiny", model);
    int rc = test_run_cli(NULL, args, NULL, NULL, NULL);
    CHECK(rc == 0, "synth: exit %d", rc);
    if (rc == 0) {
        if (has_line_editing()) editing();
        else printf("vkllm built without libedit: the line-editing cases are skipped\n");
        interrupt_reply();
    }
    test_remove_tmp_dir(tmp_dir);
    return test_finish();
}
