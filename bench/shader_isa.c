/* Instruction counts of the GPU-path mat-vec shaders in a real GPU's instruction set, without the
 * GPU: each SPIR-V file is compiled into a compute pipeline by whatever Vulkan device the loader
 * gives (bench/shader-isa points it at Mesa's RADV with RADV_FORCE_FAMILY=gfx1100, a "null"
 * RDNA3 device), with VK_KHR_pipeline_executable_properties capturing the statistics and the
 * disassembly. In the hot loop of each shader it counts vector ALU (v_*) and LDS (ds_*)
 * instructions and divides them by the weight bytes one invocation consumes per iteration.
 *
 * Usage: shader_isa [-v] [--wave 32|64] FILE.spv...
 * Output, one line per file (NAME = the file's name without .spv):
 *   NAME valu_per_weight_byte X lds_per_weight_byte Y vgprs Z
 * -v adds detail lines (statistics, loop bounds, instruction mix); --wave compiles with that
 * subgroup size (VK_EXT_subgroup_size_control) instead of the driver's default, which is what the
 * Vulkan backend gets (it never requests one).
 *
 * The hot loop: the disassembly's labels and branches give the loops (a branch to a label at or
 * before it closes a loop from that label to the branch). The hot loop is the innermost loop
 * containing the most vector ALU instructions: in a mat-vec shader that is the loop over weight
 * chunks, which the rows x chunks of a whole matrix row pass through; the other loops (subgroup
 * reduction, the final sum over subgroups) touch no weights and hold a few instructions.
 *
 * Pipeline layouts come from a minimal SPIR-V reflection (descriptor set/binding of each
 * variable, its kind, the push-constant block's size); specialization constants from the table
 * below, with the values backends/vulkan/vk_ops.c passes on a GPU of that subgroup size. */
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <volk.h>

/* ---- the mat-vec variants ---------------------------------------------------------------------
 * Weight bytes per invocation per iteration of mul_mat_vec.comp's loop over chunks: each
 * iteration decodes one chunk (4 * NG elements) of each of ROWS rows, and a block of BLOCK_BYTES
 * bytes (quants and its scales) is CPB = BLOCK_ELEMS / (4 * NG) chunks (shaders/quant.glsl), so
 * the bytes are ROWS * BLOCK_BYTES / CPB. ROWS is vk_ops.c's mv_rows (2 on GPUs). */
#define MV_ROWS 2u

typedef struct variant {
    const char *name;
    unsigned block_bytes, cpb; /* BLOCK_BYTES and chunks per block, from shaders/quant.glsl */
} variant;

static const variant VARIANTS[] = {
    {"mul_mat_vec_f32", 32, 1},   {"mul_mat_vec_f16", 16, 1},   {"mul_mat_vec_bf16", 16, 1},
    {"mul_mat_vec_q4_0", 18, 4},  {"mul_mat_vec_q4_1", 20, 4},  {"mul_mat_vec_q5_0", 22, 4},
    {"mul_mat_vec_q5_1", 24, 4},  {"mul_mat_vec_q8_0", 34, 4},  {"mul_mat_vec_q2_k", 84, 16},
    {"mul_mat_vec_q3_k", 110, 16}, {"mul_mat_vec_q4_k", 144, 32}, {"mul_mat_vec_q5_k", 176, 32},
    {"mul_mat_vec_q6_k", 210, 16},
};

static const variant *find_variant(const char *name) {
    for (size_t i = 0; i < sizeof VARIANTS / sizeof VARIANTS[0]; i++)
        if (!strcmp(VARIANTS[i].name, name)) return &VARIANTS[i];
    return NULL;
}

/* Specialization constants of mul_mat_vec.comp as vk_ops.c sets them: id 0 the workgroup size
 * (4 subgroups, 32..256 invocations, at most 32 subgroups), id 1 the rows per workgroup. */
static uint32_t spec_value(uint32_t id, uint32_t sg) {
    if (id == 1) return MV_ROWS;
    uint32_t wg = 4 * sg < 32 ? 32 : 4 * sg > 256 ? 256 : 4 * sg;
    return wg / sg > 32 ? 32 * sg : wg;
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("shader_isa: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* ---- minimal SPIR-V reflection ---------------------------------------------------------------- */
#define MAX_BINDINGS 16
#define MAX_SPEC 8

typedef struct reflection {
    VkDescriptorSetLayoutBinding bindings[MAX_BINDINGS];
    uint32_t sets[MAX_BINDINGS];
    uint32_t n_bindings;
    uint32_t push_size;
    uint32_t spec_ids[MAX_SPEC], n_spec;
} reflection;

enum { OP_DECORATE = 71, OP_MEMBER_DECORATE = 72, OP_TYPE_INT = 21, OP_TYPE_FLOAT = 22,
       OP_TYPE_VECTOR = 23, OP_TYPE_IMAGE = 25, OP_TYPE_SAMPLED_IMAGE = 27, OP_TYPE_STRUCT = 30,
       OP_TYPE_POINTER = 32, OP_VARIABLE = 59 };
enum { DEC_SPEC_ID = 1, DEC_BLOCK = 2, DEC_BUFFER_BLOCK = 3, DEC_BINDING = 33, DEC_SET = 34,
       DEC_OFFSET = 35 };
enum { SC_UNIFORM_CONSTANT = 0, SC_UNIFORM = 2, SC_PUSH_CONSTANT = 9, SC_STORAGE_BUFFER = 12 };

typedef struct spv_id {
    uint16_t op;          /* defining instruction (types and variables) */
    uint32_t a, b, c;     /* its first operands after the result id */
    int32_t set, binding; /* -1 when undecorated */
    uint8_t block, buffer_block;
    uint32_t size;        /* scalar/vector types: bytes */
} spv_id;

/* Size in bytes of the push-constant struct `st`: the end of its last member (scalars and vectors
 * only, which is all our shaders put there). */
static uint32_t push_block_size(const uint32_t *w, size_t n, const spv_id *ids, uint32_t bound,
                                uint32_t st, const char *file) {
    uint32_t end = 0;
    for (size_t i = 5; i < n; i += w[i] >> 16) {
        if ((w[i] & 0xFFFF) != OP_MEMBER_DECORATE || w[i + 1] != st || w[i + 3] != DEC_OFFSET) continue;
        uint32_t member = w[i + 2], off = w[i + 4], k = 0;
        /* the member's type: the struct definition's operand `member` */
        for (size_t j = 5; j < n; j += w[j] >> 16)
            if ((w[j] & 0xFFFF) == OP_TYPE_STRUCT && w[j + 1] == st && 2 + member < (w[j] >> 16))
                k = w[j + 2 + member];
        if (k >= bound || !ids[k].size)
            die("%s: push constant member %u is not a scalar or vector", file, member);
        if (off + ids[k].size > end) end = off + ids[k].size;
    }
    return end;
}

static VkDescriptorType descriptor_type(const spv_id *ids, uint32_t bound, uint32_t sc,
                                        uint32_t pointee, const char *file) {
    const spv_id *t = pointee < bound ? &ids[pointee] : NULL;
    if (t && t->op == OP_TYPE_SAMPLED_IMAGE && t->a < bound) t = &ids[t->a];
    if (sc == SC_STORAGE_BUFFER || (sc == SC_UNIFORM && t && t->buffer_block))
        return VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    if (sc == SC_UNIFORM && t && t->block) return VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER;
    if (sc == SC_UNIFORM_CONSTANT && t && t->op == OP_TYPE_IMAGE && t->b == 5 /* Dim Buffer */)
        return t->c == 2 ? VK_DESCRIPTOR_TYPE_STORAGE_TEXEL_BUFFER : VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
    die("%s: a resource of a kind this tool does not know (storage class %u)", file, sc);
    return VK_DESCRIPTOR_TYPE_MAX_ENUM;
}

static void reflect(const uint32_t *w, size_t n, const char *file, reflection *r) {
    memset(r, 0, sizeof *r);
    if (n < 5 || w[0] != 0x07230203) die("%s: not a SPIR-V module", file);
    const uint32_t bound = w[3];
    spv_id *ids = calloc(bound, sizeof *ids);
    if (!ids) die("out of memory");
    for (uint32_t i = 0; i < bound; i++) ids[i].set = ids[i].binding = -1;
    for (size_t i = 5; i < n;) {
        uint32_t len = w[i] >> 16, op = w[i] & 0xFFFF;
        if (len == 0 || i + len > n) die("%s: truncated SPIR-V instruction", file);
        uint32_t id = len > 1 ? w[i + 1] : 0;
        if (op == OP_DECORATE && len >= 3 && id < bound) {
            uint32_t d = w[i + 2], v = len > 3 ? w[i + 3] : 0;
            if (d == DEC_SET) ids[id].set = (int32_t)v;
            if (d == DEC_BINDING) ids[id].binding = (int32_t)v;
            if (d == DEC_BLOCK) ids[id].block = 1;
            if (d == DEC_BUFFER_BLOCK) ids[id].buffer_block = 1;
            if (d == DEC_SPEC_ID && r->n_spec < MAX_SPEC) r->spec_ids[r->n_spec++] = v;
        } else if (op == OP_VARIABLE && len >= 4 && w[i + 2] < bound) {
            ids[w[i + 2]].op = OP_VARIABLE;
            ids[w[i + 2]].a = w[i + 1]; /* pointer type */
            ids[w[i + 2]].b = w[i + 3]; /* storage class */
        } else if ((op == OP_TYPE_INT || op == OP_TYPE_FLOAT || op == OP_TYPE_VECTOR ||
                    op == OP_TYPE_IMAGE || op == OP_TYPE_SAMPLED_IMAGE || op == OP_TYPE_STRUCT ||
                    op == OP_TYPE_POINTER) && id < bound) {
            spv_id *t = &ids[id];
            t->op = (uint16_t)op;
            t->a = len > 2 ? w[i + 2] : 0;
            t->b = len > 3 ? w[i + 3] : 0;
            t->c = len > 7 ? w[i + 7] : 0; /* OpTypeImage: Sampled */
            if (op == OP_TYPE_INT || op == OP_TYPE_FLOAT) t->size = t->a / 8;
            if (op == OP_TYPE_VECTOR && t->a < bound) t->size = ids[t->a].size * t->b;
        }
        i += len;
    }
    for (uint32_t v = 0; v < bound; v++) {
        if (ids[v].op != OP_VARIABLE || ids[v].a >= bound || ids[ids[v].a].op != OP_TYPE_POINTER) continue;
        const uint32_t sc = ids[v].b, pointee = ids[ids[v].a].b;
        if (sc == SC_PUSH_CONSTANT) {
            r->push_size = push_block_size(w, n, ids, bound, pointee, file);
            continue;
        }
        if (ids[v].binding < 0) continue; /* inputs, shared memory, private variables */
        if (r->n_bindings == MAX_BINDINGS) die("%s: more than %d bindings", file, MAX_BINDINGS);
        VkDescriptorSetLayoutBinding *b = &r->bindings[r->n_bindings];
        b->binding = (uint32_t)ids[v].binding;
        b->descriptorType = descriptor_type(ids, bound, sc, pointee, file);
        b->descriptorCount = 1;
        b->stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
        r->sets[r->n_bindings++] = ids[v].set < 0 ? 0 : (uint32_t)ids[v].set;
    }
    free(ids);
}

/* ---- Vulkan ----------------------------------------------------------------------------------- */
typedef struct gpu {
    VkInstance instance;
    VkPhysicalDevice phys;
    VkDevice dev;
    uint32_t subgroup_size; /* the size pipelines get (the device default or --wave) */
    uint32_t wave;          /* --wave, 0 for the default */
} gpu;

static bool has_extension(VkPhysicalDevice p, const char *name) {
    uint32_t n = 0;
    vkEnumerateDeviceExtensionProperties(p, NULL, &n, NULL);
    VkExtensionProperties *e = calloc(n ? n : 1, sizeof *e);
    if (!e) die("out of memory");
    vkEnumerateDeviceExtensionProperties(p, NULL, &n, e);
    bool found = false;
    for (uint32_t i = 0; i < n; i++) found |= !strcmp(e[i].extensionName, name);
    free(e);
    return found;
}

/* The first device with VK_KHR_pipeline_executable_properties (and subgroup size control when
 * --wave asks for it). */
static VkPhysicalDevice pick_device(VkInstance inst, bool need_sgsc) {
    VkPhysicalDevice devs[16];
    uint32_t n = 16;
    if (vkEnumeratePhysicalDevices(inst, &n, devs) < 0 || n == 0)
        die("no Vulkan device (is Mesa's RADV installed? Debian: mesa-vulkan-drivers)");
    for (uint32_t i = 0; i < n; i++)
        if (has_extension(devs[i], VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME) &&
            (!need_sgsc || has_extension(devs[i], VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME)))
            return devs[i];
    die("no Vulkan device with %s%s", VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME,
        need_sgsc ? " and " VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME : "");
    return VK_NULL_HANDLE;
}

static void gpu_open(gpu *g, uint32_t wave, bool verbose) {
    memset(g, 0, sizeof *g);
    g->wave = wave;
    if (volkInitialize() != VK_SUCCESS) die("no Vulkan loader (libvulkan.so.1)");
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "shader_isa",
                             .apiVersion = VK_API_VERSION_1_2};
    VkInstanceCreateInfo ici = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
    if (vkCreateInstance(&ici, NULL, &g->instance) != VK_SUCCESS)
        die("vkCreateInstance failed (no Vulkan driver? Mesa's RADV: Debian's mesa-vulkan-drivers)");
    volkLoadInstance(g->instance);
    g->phys = pick_device(g->instance, wave != 0);
    VkPhysicalDeviceSubgroupProperties sg = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceProperties2 props = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                         .pNext = &sg};
    vkGetPhysicalDeviceProperties2(g->phys, &props);
    g->subgroup_size = wave ? wave : sg.subgroupSize;
    if (verbose)
        printf("# device: %s, subgroup size %u (default %u)\n", props.properties.deviceName,
               g->subgroup_size, sg.subgroupSize);

    VkPhysicalDeviceSubgroupSizeControlFeaturesEXT sgsc = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES_EXT,
        .subgroupSizeControl = VK_TRUE};
    VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR pep = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR,
        .pNext = wave ? &sgsc : NULL, .pipelineExecutableInfo = VK_TRUE};
    const char *exts[2] = {VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME,
                           VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME};
    uint32_t nq = 0; /* pipelines only: any queue family will do */
    vkGetPhysicalDeviceQueueFamilyProperties(g->phys, &nq, NULL);
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                   .queueFamilyIndex = 0, .queueCount = 1, .pQueuePriorities = &prio};
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .pNext = &pep,
                              .queueCreateInfoCount = 1, .pQueueCreateInfos = &qci,
                              .enabledExtensionCount = wave ? 2 : 1, .ppEnabledExtensionNames = exts};
    if (nq == 0 || vkCreateDevice(g->phys, &dci, NULL, &g->dev) != VK_SUCCESS) die("vkCreateDevice failed");
}

static void gpu_close(gpu *g) {
    vkDestroyDevice(g->dev, NULL);
    vkDestroyInstance(g->instance, NULL);
}

typedef struct compiled {
    uint32_t vgprs, sgprs, spilled_vgprs, lds_bytes;
    char *assembly;
} compiled;

static uint64_t stat_u64(const VkPipelineExecutableStatisticKHR *s) {
    switch (s->format) {
    case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR: return s->value.u64;
    case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR: return (uint64_t)s->value.i64;
    default: return 0;
    }
}

static void read_statistics(const gpu *g, const VkPipelineExecutableInfoKHR *ei, compiled *c) {
    uint32_t n = 0;
    vkGetPipelineExecutableStatisticsKHR(g->dev, ei, &n, NULL);
    VkPipelineExecutableStatisticKHR *st = calloc(n ? n : 1, sizeof *st);
    if (!st) die("out of memory");
    for (uint32_t i = 0; i < n; i++) st[i].sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR;
    vkGetPipelineExecutableStatisticsKHR(g->dev, ei, &n, st);
    for (uint32_t i = 0; i < n; i++) {
        if (!strcmp(st[i].name, "VGPRs")) c->vgprs = (uint32_t)stat_u64(&st[i]);
        if (!strcmp(st[i].name, "SGPRs")) c->sgprs = (uint32_t)stat_u64(&st[i]);
        if (!strcmp(st[i].name, "Spilled VGPRs")) c->spilled_vgprs = (uint32_t)stat_u64(&st[i]);
        if (!strcmp(st[i].name, "LDS size")) c->lds_bytes = (uint32_t)stat_u64(&st[i]);
    }
    free(st);
}

static char *read_assembly(const gpu *g, const VkPipelineExecutableInfoKHR *ei) {
    uint32_t n = 0;
    vkGetPipelineExecutableInternalRepresentationsKHR(g->dev, ei, &n, NULL);
    VkPipelineExecutableInternalRepresentationKHR *ir = calloc(n ? n : 1, sizeof *ir);
    if (!ir) die("out of memory");
    for (uint32_t i = 0; i < n; i++)
        ir[i].sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INTERNAL_REPRESENTATION_KHR;
    vkGetPipelineExecutableInternalRepresentationsKHR(g->dev, ei, &n, ir);
    char *text = NULL;
    for (uint32_t i = 0; i < n && !text; i++) {
        if (strcmp(ir[i].name, "Assembly") || !ir[i].isText) continue;
        ir[i].pData = text = calloc(ir[i].dataSize + 1, 1);
        if (!text) die("out of memory");
        vkGetPipelineExecutableInternalRepresentationsKHR(g->dev, ei, &n, ir);
    }
    free(ir);
    return text;
}

#define MAX_SETS 4

typedef struct pipe_layout {
    VkDescriptorSetLayout sets[MAX_SETS];
    uint32_t n_sets;
    VkPipelineLayout pipeline;
} pipe_layout;

/* The pipeline layout the reflection describes (handles left null on failure). */
static VkResult layout_create(const gpu *g, const reflection *r, pipe_layout *l) {
    memset(l, 0, sizeof *l);
    for (uint32_t i = 0; i < r->n_bindings; i++)
        if (r->sets[i] + 1 > l->n_sets) l->n_sets = r->sets[i] + 1;
    if (l->n_sets > MAX_SETS) return VK_ERROR_INITIALIZATION_FAILED;
    VkResult res = VK_SUCCESS;
    for (uint32_t s = 0; s < l->n_sets && res == VK_SUCCESS; s++) {
        VkDescriptorSetLayoutBinding b[MAX_BINDINGS];
        uint32_t nb = 0;
        for (uint32_t i = 0; i < r->n_bindings; i++)
            if (r->sets[i] == s) b[nb++] = r->bindings[i];
        VkDescriptorSetLayoutCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                              .bindingCount = nb, .pBindings = b};
        res = vkCreateDescriptorSetLayout(g->dev, &ci, NULL, &l->sets[s]);
    }
    VkPushConstantRange pcr = {VK_SHADER_STAGE_COMPUTE_BIT, 0, r->push_size};
    VkPipelineLayoutCreateInfo plci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                       .setLayoutCount = l->n_sets, .pSetLayouts = l->sets,
                                       .pushConstantRangeCount = r->push_size ? 1 : 0,
                                       .pPushConstantRanges = &pcr};
    if (res == VK_SUCCESS) res = vkCreatePipelineLayout(g->dev, &plci, NULL, &l->pipeline);
    return res;
}

static void layout_destroy(const gpu *g, pipe_layout *l) {
    vkDestroyPipelineLayout(g->dev, l->pipeline, NULL);
    for (uint32_t s = 0; s < l->n_sets && s < MAX_SETS; s++)
        vkDestroyDescriptorSetLayout(g->dev, l->sets[s], NULL);
}

/* Creates the pipeline with capture flags, the backend's specialization values and --wave. */
static VkResult pipeline_create(const gpu *g, VkShaderModule mod, const reflection *r,
                                VkPipelineLayout layout, VkPipeline *pipe) {
    uint32_t values[MAX_SPEC];
    VkSpecializationMapEntry map[MAX_SPEC];
    for (uint32_t i = 0; i < r->n_spec; i++) {
        values[i] = spec_value(r->spec_ids[i], g->subgroup_size);
        map[i] = (VkSpecializationMapEntry){r->spec_ids[i], i * 4, 4};
    }
    VkSpecializationInfo si = {r->n_spec, map, r->n_spec * 4, values};
    VkPipelineShaderStageRequiredSubgroupSizeCreateInfoEXT req = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO_EXT,
        .requiredSubgroupSize = g->wave};
    VkComputePipelineCreateInfo cpci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .flags = VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR |
                 VK_PIPELINE_CREATE_CAPTURE_INTERNAL_REPRESENTATIONS_BIT_KHR,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                  .pNext = g->wave ? &req : NULL,
                  .stage = VK_SHADER_STAGE_COMPUTE_BIT, .module = mod, .pName = "main",
                  .pSpecializationInfo = r->n_spec ? &si : NULL},
        .layout = layout};
    return vkCreateComputePipelines(g->dev, VK_NULL_HANDLE, 1, &cpci, NULL, pipe);
}

/* Compiles one SPIR-V module; fills c (statistics, disassembly). */
static int compile(const gpu *g, const uint32_t *code, size_t words, const reflection *r, compiled *c) {
    memset(c, 0, sizeof *c);
    VkShaderModuleCreateInfo smci = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                     .codeSize = words * 4, .pCode = code};
    VkShaderModule mod;
    if (vkCreateShaderModule(g->dev, &smci, NULL, &mod) != VK_SUCCESS) return -1;
    pipe_layout l;
    VkPipeline pipe = VK_NULL_HANDLE;
    VkResult res = layout_create(g, r, &l);
    if (res == VK_SUCCESS) res = pipeline_create(g, mod, r, l.pipeline, &pipe);
    if (res == VK_SUCCESS) {
        VkPipelineExecutableInfoKHR ei = {.sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR,
                                          .pipeline = pipe, .executableIndex = 0};
        read_statistics(g, &ei, c);
        c->assembly = read_assembly(g, &ei);
        vkDestroyPipeline(g->dev, pipe, NULL);
    }
    layout_destroy(g, &l);
    vkDestroyShaderModule(g->dev, mod, NULL);
    return res == VK_SUCCESS && c->assembly ? 0 : -1;
}

/* ---- the hot loop ------------------------------------------------------------------------------ */
typedef struct loop_counts {
    size_t first, last; /* line range: the loop's label .. its backward branch */
    unsigned valu, lds, vmem, salu, lines;
    char label[32];
} loop_counts;

/* The assembly as lines (the text is cut in place). */
static size_t split_lines(char *text, char ***out) {
    size_t n = 0, cap = 256;
    char **lines = malloc(cap * sizeof *lines);
    for (char *s = text; lines && s && *s;) {
        if (n == cap) lines = realloc(lines, (cap *= 2) * sizeof *lines);
        if (!lines) break;
        lines[n++] = s;
        s = strchr(s, '\n');
        if (s) *s++ = '\0';
    }
    if (!lines) die("out of memory");
    *out = lines;
    return n;
}

/* "BB12:" -> "BB12" in label (false for an instruction line). */
static bool label_of(const char *line, char *label, size_t n) {
    size_t len = strcspn(line, ":");
    if (!isalpha((unsigned char)line[0]) || line[len] != ':' || len >= n) return false;
    memcpy(label, line, len);
    label[len] = '\0';
    return true;
}

/* The mnemonic of an instruction line ("" for others) and, for a branch, its target label. */
static void mnemonic(const char *line, char *op, size_t n, char *target, size_t tn) {
    op[0] = target[0] = '\0';
    while (*line == ' ' || *line == '\t') line++;
    size_t len = strcspn(line, " \t;");
    if (len == 0 || len >= n) return;
    memcpy(op, line, len);
    op[len] = '\0';
    if (strncmp(op, "s_branch", 8) && strncmp(op, "s_cbranch_", 10)) return;
    line += len;
    while (*line == ' ' || *line == '\t') line++;
    len = strcspn(line, " \t;,");
    if (len < tn) {
        memcpy(target, line, len);
        target[len] = '\0';
    }
}

static void count_range(char **lines, loop_counts *l) {
    char op[64], target[32];
    l->valu = l->lds = l->vmem = l->salu = l->lines = 0;
    for (size_t i = l->first; i <= l->last; i++) {
        mnemonic(lines[i], op, sizeof op, target, sizeof target);
        if (!op[0] || op[strlen(op) - 1] == ':') continue;
        l->lines++;
        if (!strncmp(op, "v_", 2)) l->valu++;
        else if (!strncmp(op, "ds_", 3)) l->lds++;
        else if (!strncmp(op, "s_", 2)) l->salu++;
        else if (!strncmp(op, "buffer_", 7) || !strncmp(op, "global_", 7) || !strncmp(op, "tbuffer_", 8))
            l->vmem++;
    }
}

/* The loops are the backward branches (a branch to a label at or above it); innermost: no other
 * loop inside; hot: the innermost loop with the most vector ALU instructions. */
static int hot_loop(char *assembly, loop_counts *hot) {
    char **lines;
    size_t n = split_lines(assembly, &lines);
    loop_counts loops[64];
    size_t n_loops = 0;
    char op[64], target[32], label[32];
    for (size_t i = 0; i < n && n_loops < 64; i++) {
        mnemonic(lines[i], op, sizeof op, target, sizeof target);
        if (!target[0]) continue;
        for (size_t j = 0; j <= i; j++)
            if (label_of(lines[j], label, sizeof label) && !strcmp(label, target)) {
                loops[n_loops] = (loop_counts){.first = j, .last = i};
                snprintf(loops[n_loops++].label, sizeof label, "%s", label);
                break;
            }
    }
    int best = -1;
    for (size_t a = 0; a < n_loops; a++) {
        bool inner = true;
        for (size_t b = 0; b < n_loops; b++)
            inner &= b == a || !(loops[b].first >= loops[a].first && loops[b].last <= loops[a].last);
        if (!inner) continue;
        count_range(lines, &loops[a]);
        if (best < 0 || loops[a].valu > loops[best].valu) best = (int)a;
    }
    if (best >= 0) *hot = loops[best];
    free(lines);
    return best < 0 ? -1 : 0;
}

static uint32_t *read_spirv(const char *path, size_t *words) {
    FILE *f = fopen(path, "rb");
    if (!f) die("%s: cannot open", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n <= 20 || n % 4) die("%s: not a SPIR-V module", path);
    uint32_t *w = malloc((size_t)n);
    if (!w || fread(w, 1, (size_t)n, f) != (size_t)n) die("%s: cannot read", path);
    fclose(f);
    *words = (size_t)n / 4;
    return w;
}

/* "build/spv/mul_mat_vec_q4_0.spv" -> "mul_mat_vec_q4_0" */
static void variant_name(const char *path, char *name, size_t n) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t len = strcspn(base, ".");
    if (len >= n) len = n - 1;
    memcpy(name, base, len);
    name[len] = '\0';
}

static void measure(const gpu *g, const char *path, bool verbose) {
    char name[128];
    variant_name(path, name, sizeof name);
    const variant *v = find_variant(name);
    if (!v)
        die("%s: no weight bytes per iteration known for this shader (table in bench/shader_isa.c)",
            name);
    size_t words;
    uint32_t *code = read_spirv(path, &words);
    reflection r;
    reflect(code, words, path, &r);
    compiled c;
    if (compile(g, code, words, &r, &c)) die("%s: the driver failed to compile the pipeline", name);
    loop_counts l;
    if (hot_loop(c.assembly, &l)) die("%s: no loop in the disassembly", name);
    const double bytes = (double)MV_ROWS * v->block_bytes / v->cpb;
    printf("%s valu_per_weight_byte %.1f lds_per_weight_byte %.1f vgprs %u\n", name, l.valu / bytes,
           l.lds / bytes, c.vgprs);
    if (verbose)
        printf("  %s: hot loop from %s (lines %zu-%zu): %u instructions, %u VALU, %u LDS, %u VMEM, "
               "%u SALU; %.3g weight bytes per lane per iteration; SGPRs %u, spilled VGPRs %u, "
               "LDS %u bytes\n",
               name, l.label, l.first + 1, l.last + 1, l.lines, l.valu, l.lds, l.vmem, l.salu, bytes,
               c.sgprs, c.spilled_vgprs, c.lds_bytes);
    free(c.assembly);
    free(code);
}

static void usage(void) { die("usage: shader_isa [-v] [--wave 32|64] FILE.spv..."); }

int main(int argc, char **argv) {
    bool verbose = false;
    uint32_t wave = 0;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "-v")) verbose = true;
        else if (!strcmp(argv[i], "--wave") && i + 1 < argc) {
            const char *w = argv[++i];
            if (strcmp(w, "32") && strcmp(w, "64")) die("--wave %s: expected 32 or 64", w);
            wave = (uint32_t)atoi(w);
        } else usage();
    }
    if (i == argc) usage();
    gpu g;
    gpu_open(&g, wave, verbose);
    for (; i < argc; i++) measure(&g, argv[i], verbose);
    gpu_close(&g);
    return 0;
}
