/* `vkllm devices`: lists the CPU always; without a Vulkan driver it says so in one line and still
 * exits 0 (the driver list is pointed at a file that does not exist). */
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

static char out_path[256];

/* Runs `VKLLM_CLI args` with stdout and stderr into out_path; returns the exit code (-1: crash). */
static int run_cli(const char *args, char *out, size_t outsz) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s' 2>&1", VKLLM_CLI, args, out_path);
    int st = system(cmd);
    out[0] = 0;
    FILE *f = fopen(out_path, "r");
    if (f) {
        size_t n = fread(out, 1, outsz - 1, f);
        out[n] = 0;
        fclose(f);
    }
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Number of lines of s that contain `needle`. */
static int count_lines_with(const char *s, const char *needle) {
    int n = 0;
    while (*s) {
        const char *end = strchr(s, '\n');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        char line[1024];
        size_t m = len < sizeof line - 1 ? len : sizeof line - 1;
        memcpy(line, s, m);
        line[m] = 0;
        if (strstr(line, needle)) n++;
        s += len + (end ? 1 : 0);
    }
    return n;
}

int main(void) {
    snprintf(out_path, sizeof out_path, "/tmp/vkllm_test_cli_devices_%d.txt", (int)getpid());
    static char out[1 << 16];

    /* with whatever driver this machine has */
    int rc = run_cli("devices", out, sizeof out);
    CHECK(rc == 0, "exit %d, output:\n%s", rc, out);
    CHECK(strstr(out, "cpu: 1 device") != NULL, "no CPU listed:\n%s", out);
    CHECK(strstr(out, "cores:") && strstr(out, "simd:") && strstr(out, "ram:"), "%s", out);
    CHECK(strstr(out, "vulkan:") != NULL, "no Vulkan line:\n%s", out);

    rc = run_cli("devices --json", out, sizeof out);
    CHECK(rc == 0, "exit %d", rc);
    CHECK(strstr(out, "\"backends\"") && strstr(out, "\"backend\": \"cpu\""), "%s", out);

    rc = run_cli("devices --bogus", out, sizeof out);
    CHECK(rc == 2, "bad option: exit %d", rc);

    /* no driver: the loader is pointed at a manifest that does not exist */
    const char *none = "/nonexistent/vkllm-no-such-icd.json";
    setenv("VK_DRIVER_FILES", none, 1);
    setenv("VK_ICD_FILENAMES", none, 1); /* the older loaders' name */
    rc = run_cli("devices", out, sizeof out);
    CHECK(rc == 0, "no driver: exit %d, output:\n%s", rc, out);
    CHECK(strstr(out, "cpu: 1 device") != NULL, "no driver: CPU not listed:\n%s", out);
    CHECK(count_lines_with(out, "no Vulkan device") == 1, "want one 'no Vulkan device' line:\n%s",
          out);
    CHECK(count_lines_with(out, "vulkan") == 1, "want a single Vulkan line:\n%s", out);

    rc = run_cli("devices --json", out, sizeof out);
    CHECK(rc == 0, "no driver, --json: exit %d", rc);
    CHECK(strstr(out, "\"error\": \"Vulkan loader found but no Vulkan device/driver\"") != NULL,
          "%s", out);

    unlink(out_path);
    return test_finish();
}
