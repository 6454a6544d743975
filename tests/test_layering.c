/* The layering rules, checked on the sources: the core reaches backends only through core/backend.h
 * (no backend header, no backend named), backends do not include each other, and the library does
 * not include the CLI. Then the registry itself: a host backend, and every entry complete. */
#include <dirent.h>

#include "backend.h"
#include "test.h"

/* Every .c/.h file of SRC/dir must contain none of the strings in bad (NULL-terminated). */
static void check_dir(const char *dir, const char *const *bad) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", VKLLM_SOURCE_DIR, dir);
    DIR *d = opendir(path);
    CHECK(d != NULL, "cannot list %s", path);
    if (!d) return;
    int files = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n < 3 || (strcmp(e->d_name + n - 2, ".c") && strcmp(e->d_name + n - 2, ".h"))) continue;
        char file[2048];
        snprintf(file, sizeof file, "%s/%s", path, e->d_name);
        char *text = test_read_file(file, NULL);
        CHECK(text != NULL, "cannot read %s", file);
        for (const char *const *b = bad; text && *b; b++)
            CHECK(!strstr(text, *b), "%s/%s contains '%s'", dir, e->d_name, *b);
        free(text);
        files++;
    }
    closedir(d);
    CHECK(files > 0, "no sources in %s", dir);
}

int main(void) {
    static const char *const core_bad[] = {"#include \"cpu/", "#include \"vulkan/", "#include \"vk_", "#include \"cpu_",
                                           "vkl_cpu_backend_open", "vkl_cpu_backend_reg", "vkl_vulkan_backend_reg",
                                           "#include \"cli", "tools/", NULL};
    check_dir("core", core_bad);
    static const char *const cpu_bad[] = {"#include \"vulkan/", "#include \"vk_", "vkl_vulkan_backend_reg",
                                          "#include \"cli", NULL};
    check_dir("backends/cpu", cpu_bad);
    static const char *const vk_bad[] = {"#include \"cpu/", "#include \"cpu_", "vkl_cpu_backend_reg",
                                         "#include \"cli", NULL};
    check_dir("backends/vulkan", vk_bad);
    /* The CLI opens backends through the registry too. */
    static const char *const tools_bad[] = {"vkl_cpu_backend_open", "vkl_cpu_backend_reg", "vkl_vulkan_backend_reg",
                                            NULL};
    check_dir("tools", tools_bad);

    int n = 0, hosts = 0;
    for (const vkl_backend_entry *e = vkl_backend_registry; e->reg; e++, n++) {
        CHECK(e->reg->name && e->reg->enumerate && e->reg->open, "registry entry %d is incomplete", n);
        hosts += e->role == VKL_BACKEND_HOST;
    }
    CHECK(n >= 1 && hosts >= 1 && vkl_backend_host() != NULL, "%d backends, %d host", n, hosts);
    printf("%d backends registered (host: %s, offload: %s)\n", n, vkl_backend_host()->name,
           vkl_backend_offload() ? vkl_backend_offload()->name : "none");
    return test_finish();
}
