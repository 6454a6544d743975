/* vkllm quantize IN.gguf OUT.gguf TYPE [options]: llama-quantize's mixtures, byte for byte. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_args.h"
#include "quantize.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: vkllm quantize IN.gguf OUT.gguf TYPE [-t N] [--output-tensor-type T]\n"
            "                      [--token-embedding-type T] [--pure] [--allow-requantize] [--leave-output]\n"
            "\n"
            "Converts a model's tensors as llama.cpp's llama-quantize does (same type per tensor, same\n"
            "bytes). Writes OUT.gguf.tmp and renames it to OUT.gguf when complete.\n"
            "\n"
            "  TYPE     F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0, or a K-quant mixture: Q2_K Q3_K_S\n"
            "           Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K (Q3_K, Q4_K, Q5_K mean the _M ones)\n"
            "  -t, --threads N              threads (default: all cores)\n"
            "  --output-tensor-type T       type of output.weight (a tensor type: f16, q8_0, q6_k...)\n"
            "  --token-embedding-type T     type of token_embd.weight\n"
            "  --pure                       every quantized tensor gets TYPE's own type (no mixture rules)\n"
            "  --allow-requantize           accept an already quantized input (quality suffers)\n"
            "  --leave-output               keep output.weight as it is in the input\n");
}

typedef struct {
    bool tty;
    int last_pct;
} progress_state;

static void on_progress(void *ud, int i, int n, const char *name, vkl_type from, vkl_type to, uint64_t done,
                        uint64_t total) {
    progress_state *ps = ud;
    int pct = total ? (int)(100.0 * (double)done / (double)total) : 100;
    if (ps->tty) {
        int width = 30, filled = pct * width / 100;
        fprintf(stderr, "\r\033[K[%.*s%*s] %3d%% [%d/%d] %s", filled, "##############################",
                width - filled, "", pct, i, n, name);
        if (from != to) fprintf(stderr, " %s -> %s", vkl_type_name((int)from), vkl_type_name((int)to));
        if (i == n) fputc('\n', stderr);
        return;
    }
    /* not a terminal: a line at each quarter */
    if (pct / 25 > ps->last_pct / 25 || i == n) fprintf(stderr, "vkllm quantize: %d%% (%d of %d tensors)\n", pct, i, n);
    ps->last_pct = pct;
}

/* A tensor type for --output-tensor-type / --token-embedding-type: -1 after printing an error. */
static int parse_tensor_type(const char *opt, const char *s) {
    int t = s ? vkl_type_from_name(s) : -1;
    /* a tensor type, not a mixture name such as q4_k_m (which vkl_type_from_name accepts) */
    if (t < 0 || !vkl_type_get(t) || strchr(s, '_') != strrchr(s, '_') || t == VKL_TYPE_Q8_1 || t == VKL_TYPE_Q8_K) {
        fprintf(stderr, "vkllm quantize: %s: unknown tensor type '%s'\n", opt, s ? s : "");
        return -1;
    }
    return t;
}

typedef struct {
    const char *pos[3];
    int n_pos;
} qargs;

/* Parses the options into p (and the three positional arguments); 0, 1 for --help, -1 on error. */
static int parse_args(int argc, char **argv, vkl_quantize_params *p, qargs *a) {
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) return 1;
        if (!strcmp(o, "-t") || !strcmp(o, "--threads")) {
            if (!v || !cli_parse_int(v, 1, 64, &p->n_threads)) {
                fprintf(stderr, "vkllm quantize: %s needs a thread count from 1 to 64\n", o);
                return -1;
            }
            i++;
        } else if (!strcmp(o, "--output-tensor-type") || !strcmp(o, "--token-embedding-type")) {
            int t = parse_tensor_type(o, v);
            if (t < 0) return -1;
            *(o[2] == 'o' ? &p->output_type : &p->token_embd_type) = t;
            i++;
        } else if (!strcmp(o, "--pure")) p->pure = true;
        else if (!strcmp(o, "--allow-requantize")) p->allow_requantize = true;
        else if (!strcmp(o, "--leave-output")) p->leave_output = true;
        else if (o[0] == '-' && o[1]) {
            fprintf(stderr, "vkllm quantize: unknown option '%s' (try --help)\n", o);
            return -1;
        } else if (a->n_pos < 3) a->pos[a->n_pos++] = o;
        else {
            fprintf(stderr, "vkllm quantize: unexpected argument '%s'\n", o);
            return -1;
        }
    }
    if (a->n_pos < 3) {
        fprintf(stderr, "vkllm quantize: needs IN.gguf OUT.gguf TYPE (try --help)\n");
        return -1;
    }
    p->ftype = vkl_ftype_from_name(a->pos[2]);
    if (!p->ftype) {
        fprintf(stderr, "vkllm quantize: unknown type '%s' (try --help)\n", a->pos[2]);
        return -1;
    }
    return 0;
}

int cmd_quantize(int argc, char **argv) {
    vkl_quantize_params p;
    vkl_quantize_params_init(&p, NULL);
    qargs a = {{NULL, NULL, NULL}, 0};
    int rc = parse_args(argc, argv, &p, &a);
    if (rc) {
        if (rc > 0) usage(stdout);
        return rc > 0 ? 0 : 2;
    }
    progress_state ps = {isatty(STDERR_FILENO) != 0, -1};
    p.progress = on_progress;
    p.ud = &ps;
    vkl_error err = {{0}};
    if (vkl_quantize_file(a.pos[0], a.pos[1], &p, &err)) {
        if (ps.tty) fputc('\n', stderr);
        fprintf(stderr, "vkllm quantize: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "vkllm quantize: wrote %s (%s)\n", a.pos[1], p.ftype->name);
    return 0;
}
