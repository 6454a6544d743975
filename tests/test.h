/* Minimal test harness: CHECK counts, prints failures, and test_finish() prints
 * "N passed, N failed" and returns the exit code (77 = skipped, for ctest). */
#ifndef VKL_TEST_H
#define VKL_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int t_pass_, t_fail_;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) {                                                             \
            t_pass_++;                                                          \
        } else {                                                                \
            t_fail_++;                                                          \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, " " __VA_ARGS__);                                   \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

static inline int test_finish(void) {
    printf("%d passed, %d failed\n", t_pass_, t_fail_);
    return t_fail_ ? 1 : 0;
}

/* Exit code ctest treats as "skipped". */
#define TEST_SKIP_CODE 77

static inline int test_dir_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The reference set inside the repository (tests/fixtures, see its README): three small LLaMA models
 * (mini-q8_0, mini-q4_0, mini-q4_k_m) with llama.cpp's logits, and the LLaMA SPM vocabulary with
 * llama.cpp's tokenizer vectors. It is part of the checkout, so a missing folder is a failure. */
static inline const char *test_repo_fixtures(void) {
    static const char dir[] = VKLLM_SOURCE_DIR "/tests/fixtures";
    if (!test_dir_exists(dir)) {
        fprintf(stderr, "the in-repository reference set %s is missing\n", dir);
        exit(1);
    }
    return dir;
}

/* The larger reference set (env VKLLM_FIXTURES, else ../shared/fixtures beside the checkout), which
 * adds its cases where present. NULL, with one line saying so, when absent; with env
 * VKLLM_REQUIRE_FIXTURES set (our CI) an absent folder is a failure, since those cases must run. */
static inline const char *test_fixtures_dir(void) {
    const char *d = getenv("VKLLM_FIXTURES");
    if (!d || !*d) d = VKLLM_FIXTURES_DIR;
    if (test_dir_exists(d)) return d;
    if (getenv("VKLLM_REQUIRE_FIXTURES")) {
        fprintf(stderr, "the larger reference set %s is missing, and VKLLM_REQUIRE_FIXTURES is set\n", d);
        exit(1);
    }
    printf("larger reference set %s not found: only the in-repository set (tests/fixtures) is compared\n", d);
    return NULL;
}

/* buf = the in-repository model models/NAME.gguf (NAME: mini-q8_0, mini-q4_0 or mini-q4_k_m). */
static inline void test_fixture_model(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/models/%s.gguf", test_repo_fixtures(), name);
}

/* Reads a whole file into a malloc'd, NUL-terminated buffer (len may be NULL). NULL if unreadable. */
static inline char *test_read_file(const char *path, size_t *len) {
    if (len) *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    char *buf = NULL;
    long n = fseek(fp, 0, SEEK_END) == 0 ? ftell(fp) : -1;
    if (n >= 0 && fseek(fp, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) != NULL) {
        if (fread(buf, 1, (size_t)n, fp) != (size_t)n) {
            free(buf);
            buf = NULL;
        } else {
            buf[n] = 0;
            if (len) *len = (size_t)n;
        }
    }
    fclose(fp);
    return buf;
}

/* Number of newline characters in s. */
static inline int test_count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* Line i (0-based) of s, without its newline, into buf (cut to n - 1 bytes; "" past the end). */
static inline void test_line_at(const char *s, int i, char *buf, size_t n) {
    for (; i > 0 && s; i--) {
        s = strchr(s, '\n');
        if (s) s++;
    }
    size_t len = 0;
    if (s) {
        const char *e = strchr(s, '\n');
        len = e ? (size_t)(e - s) : strlen(s);
    }
    if (len >= n) len = n - 1;
    if (s) memcpy(buf, s, len);
    buf[len] = 0;
}

/* Creates a fresh per-process folder $TMPDIR/vkllm_test_TAG_PID (or under /tmp) into buf;
 * exits the test with status 1 if it cannot. */
static inline void test_make_tmp_dir(char *buf, size_t n, const char *tag) {
    const char *t = getenv("TMPDIR");
    snprintf(buf, n, "%s/vkllm_test_%s_%d", t && *t ? t : "/tmp", tag, (int)getpid());
    if (mkdir(buf, 0700) != 0 && !test_dir_exists(buf)) {
        fprintf(stderr, "cannot create %s\n", buf);
        exit(1);
    }
}

/* Removes a folder made by test_make_tmp_dir, with its content. */
static inline void test_remove_tmp_dir(const char *dir) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static inline void test_path(char *buf, size_t n, const char *dir, const char *rel) {
    snprintf(buf, n, "%s/%s", dir, rel);
}

/* A whole file as a string the caller frees; "" (still to be freed) when it cannot be read. */
static inline char *test_slurp(const char *path) {
    char *s = test_read_file(path, NULL);
    return s ? s : calloc(1, 1);
}

#ifdef VKLLM_CLI
/* Runs `ENV 'vkllm' ARGS` through the shell (ENV and ARGS are shell fragments, ENV may be NULL),
 * stdin from `input` (printf format text) or /dev/null, stdout to out_path (NULL: /dev/null) and
 * stderr to err_path (NULL: with stdout). Returns the exit code, -signal if it was killed, -1 if
 * it could not run. */
static inline int test_run_cli(const char *env, const char *args, const char *input, const char *out_path,
                               const char *err_path) {
    char in[4096], out[1024], err[1024], cmd[16384];
    if (input)
        snprintf(in, sizeof in, "printf '%s' | ", input);
    else
        in[0] = 0;
    snprintf(out, sizeof out, "'%s'", out_path ? out_path : "/dev/null");
    if (err_path)
        snprintf(err, sizeof err, "'%s'", err_path);
    else
        snprintf(err, sizeof err, "&1");
    snprintf(cmd, sizeof cmd, "%s%s '%s' %s%s >%s 2>%s", in, env ? env : "", VKLLM_CLI, args, input ? "" : " </dev/null",
             out, err);
    const int st = system(cmd);
    if (st == -1) return -1;
    if (WIFSIGNALED(st)) return -WTERMSIG(st);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
#endif

#endif
