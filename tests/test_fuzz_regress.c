/* Replays every saved fuzzer input in tests/regress/ through both fuzz targets (the same code as
 * the libFuzzer harnesses, tests/fuzz/fuzz_targets.h), each from an exact-size heap copy so the
 * sanitizer builds catch any overrun. Also feeds a few inputs derived from the vocabulary fixture
 * (whole, and cut at several lengths) through the model target. */
#include <dirent.h>

#include "fuzz/fuzz_targets.h"
#include "test.h"

/* Runs one input through both targets from an exact-size copy. */
static void replay(const char *what, const uint8_t *data, size_t n) {
    uint8_t *copy = malloc(n ? n : 1);
    CHECK(copy != NULL, "%s: out of memory", what);
    if (!copy) return;
    if (n) memcpy(copy, data, n);
    fuzz_gguf_one(copy, n);
    fuzz_model_one(copy, n);
    free(copy);
}

static int is_input(const char *name) {
    return name[0] != '.' && strcmp(name, "README.md") != 0;
}

int main(void) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/regress", VKLLM_SOURCE_DIR);
    DIR *d = opendir(dir);
    CHECK(d != NULL, "cannot open %s", dir);
    int n_files = 0;
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        if (!is_input(e->d_name)) continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) || !S_ISREG(st.st_mode)) continue;
        size_t len = 0;
        char *data = test_read_file(path, &len);
        CHECK(data != NULL, "cannot read %s", path);
        if (!data) continue;
        replay(e->d_name, (const uint8_t *)data, len);
        free(data);
        n_files++;
    }
    if (d) closedir(d);
    printf("replayed %d regression inputs from %s\n", n_files, dir);

    {
        char path[1024];
        const char *fx = test_repo_fixtures();
        snprintf(path, sizeof path, "%s/vocab/ggml-vocab-llama-spm.gguf", fx);
        size_t len = 0;
        char *data = test_read_file(path, &len);
        CHECK(data != NULL, "cannot read %s", path);
        if (data) {
            /* Whole (a vocabulary without weights: the model step fails cleanly), then cut. */
            static const size_t cuts[] = {0, 3, 4, 8, 23, 24, 100, 1000, 4096, 65536, 300000};
            replay("vocab", (const uint8_t *)data, len);
            for (size_t i = 0; i < sizeof cuts / sizeof cuts[0] && cuts[i] < len; i++)
                replay("vocab prefix", (const uint8_t *)data, cuts[i]);
            free(data);
        }
    }
    return test_finish();
}
