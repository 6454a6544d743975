/* Chat prompt formatting, see chat.h. */
#include "chat.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static const char *const template_names[VKL_CHAT_TEMPLATE_COUNT] = {
    [VKL_CHAT_PLAIN] = "plain",
    [VKL_CHAT_CHATML] = "chatml",
    [VKL_CHAT_LLAMA2] = "llama2",
    [VKL_CHAT_LLAMA2_SYS] = "llama2-sys",
    [VKL_CHAT_LLAMA2_SYS_BOS] = "llama2-sys-bos",
    [VKL_CHAT_LLAMA2_SYS_STRIP] = "llama2-sys-strip",
    [VKL_CHAT_MISTRAL_V1] = "mistral-v1",
    [VKL_CHAT_MISTRAL_V3] = "mistral-v3",
    [VKL_CHAT_MISTRAL_V3_TEKKEN] = "mistral-v3-tekken",
    [VKL_CHAT_MISTRAL_V7] = "mistral-v7",
    [VKL_CHAT_ZEPHYR] = "zephyr",
    [VKL_CHAT_LLAMA3] = "llama3",
    [VKL_CHAT_PHI3] = "phi3",
    [VKL_CHAT_PHI4] = "phi4",
};

const char *vkl_chat_template_name(vkl_chat_template t) {
    return (unsigned)t < VKL_CHAT_TEMPLATE_COUNT ? template_names[t] : "?";
}

int vkl_chat_template_from_name(const char *name) {
    for (int i = 0; i < VKL_CHAT_TEMPLATE_COUNT; i++)
        if (!strcmp(name, template_names[i])) return i;
    return -1;
}

vkl_chat_template vkl_chat_detect(const char *tmpl) {
    if (!tmpl || !*tmpl) return VKL_CHAT_PLAIN;
    int named = vkl_chat_template_from_name(tmpl);
    if (named >= 0) return (vkl_chat_template)named;
#define HAS(s) (strstr(tmpl, s) != NULL)
    if (HAS("<|im_start|>")) return HAS("<|im_sep|>") ? VKL_CHAT_PHI4 : VKL_CHAT_CHATML;
    if (HAS("[INST]")) {
        if (HAS("[SYSTEM_PROMPT]")) return VKL_CHAT_MISTRAL_V7;
        /* Mistral's official v1 / v3 / v3-tekken templates. */
        if (HAS("' [INST] ' + system_message") || HAS("[AVAILABLE_TOOLS]")) {
            if (HAS(" [INST]")) return VKL_CHAT_MISTRAL_V1;
            if (HAS("\"[INST]\"")) return VKL_CHAT_MISTRAL_V3_TEKKEN;
            return VKL_CHAT_MISTRAL_V3;
        }
        /* llama-2 and its variants. */
        if (HAS("content.strip()")) return VKL_CHAT_LLAMA2_SYS_STRIP;
        if (HAS("bos_token + '[INST]")) return VKL_CHAT_LLAMA2_SYS_BOS;
        if (HAS("<<SYS>>")) return VKL_CHAT_LLAMA2_SYS;
        return VKL_CHAT_LLAMA2;
    }
    if (HAS("<|assistant|>") && HAS("<|end|>")) return VKL_CHAT_PHI3;
    if (HAS("<|user|>") && HAS("<|assistant|>")) return VKL_CHAT_ZEPHYR;
    if (HAS("<|start_header_id|>") && HAS("<|end_header_id|>")) return VKL_CHAT_LLAMA3;
#undef HAS
    return VKL_CHAT_PLAIN;
}

/* ---- a growable string --------------------------------------------------------------------- */

typedef struct {
    char *s;
    size_t len, cap;
    bool oom;
} strbuf;

static void sb_putn(strbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = VKL_MAX(b->cap * 2, b->len + n + 1);
        cap = VKL_MAX(cap, (size_t)256);
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void sb_put(strbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

/* Appends s without leading and trailing whitespace. */
static void sb_put_stripped(strbuf *b, const char *s) {
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)*s)) s++, n--;
    while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
    sb_putn(b, s, n);
}

static bool is_role(const vkl_chat_msg *m, const char *role) { return !strcmp(m->role, role); }

/* ---- the families -------------------------------------------------------------------------- */

/* Families that wrap each message as OPEN role CLOSE content END (chatml, zephyr, llama3, phi3,
 * phi4); strip removes the whitespace around each content. */
static void fmt_role_tagged(strbuf *b, const vkl_chat_msg *m, size_t n, bool add_ass, const char *open,
                            const char *close, const char *end, bool strip) {
    for (size_t i = 0; i < n; i++) {
        sb_put(b, open);
        sb_put(b, m[i].role);
        sb_put(b, close);
        if (strip) sb_put_stripped(b, m[i].content);
        else sb_put(b, m[i].content);
        sb_put(b, end);
    }
    if (add_ass) {
        sb_put(b, open);
        sb_put(b, "assistant");
        sb_put(b, close);
    }
}

/* The families written as fmt_role_tagged's four parts. */
static const struct {
    vkl_chat_template t;
    const char *open, *close, *end;
    bool strip;
} role_tagged[] = {
    {VKL_CHAT_CHATML, "<|im_start|>", "\n", "<|im_end|>\n", false},
    {VKL_CHAT_ZEPHYR, "<|", "|>\n", "<|endoftext|>\n", false},
    {VKL_CHAT_LLAMA3, "<|start_header_id|>", "<|end_header_id|>\n\n", "<|eot_id|>", true},
    {VKL_CHAT_PHI3, "<|", "|>\n", "<|end|>\n", false},
    {VKL_CHAT_PHI4, "<|im_start|>", "<|im_sep|>", "<|im_end|>", false},
};

/* The tokenizer adds the leading BOS; later turns may carry their own. These templates have no
 * generation prompt: the text after "[/INST]" is the assistant's. */
static void fmt_llama2(strbuf *b, vkl_chat_template t, const vkl_chat_msg *m, size_t n) {
    bool sys_ok = t != VKL_CHAT_LLAMA2, bos_inside = t == VKL_CHAT_LLAMA2_SYS_BOS, strip = t == VKL_CHAT_LLAMA2_SYS_STRIP;
    bool in_turn = true;
    sb_put(b, "[INST] ");
    for (size_t i = 0; i < n; i++) {
        if (!in_turn) {
            sb_put(b, bos_inside ? "<s>[INST] " : "[INST] ");
            in_turn = true;
        }
        if (is_role(&m[i], "system") && sys_ok) sb_put(b, "<<SYS>>\n");
        if (strip) sb_put_stripped(b, m[i].content);
        else sb_put(b, m[i].content);
        if (is_role(&m[i], "system")) {
            sb_put(b, sys_ok ? "\n<</SYS>>\n\n" : "\n"); /* without <<SYS>>, prepended to the user turn */
        } else if (is_role(&m[i], "user")) {
            sb_put(b, " [/INST]");
        } else {
            sb_put(b, "</s>");
            in_turn = false;
        }
    }
}

static void fmt_mistral(strbuf *b, vkl_chat_template t, const vkl_chat_msg *m, size_t n) {
    if (t == VKL_CHAT_MISTRAL_V7) {
        for (size_t i = 0; i < n; i++) {
            if (is_role(&m[i], "system")) {
                sb_put(b, "[SYSTEM_PROMPT] ");
                sb_put(b, m[i].content);
                sb_put(b, "[/SYSTEM_PROMPT]");
            } else if (is_role(&m[i], "user")) {
                sb_put(b, "[INST] ");
                sb_put(b, m[i].content);
                sb_put(b, "[/INST]");
            } else {
                sb_put(b, " ");
                sb_put(b, m[i].content);
                sb_put(b, "</s>");
            }
        }
        return;
    }
    const char *lead = t == VKL_CHAT_MISTRAL_V1 ? " " : "", *trail = t == VKL_CHAT_MISTRAL_V3_TEKKEN ? "" : " ";
    bool in_turn = false;
    for (size_t i = 0; i < n; i++) {
        if (!in_turn) {
            sb_put(b, lead);
            sb_put(b, "[INST]");
            sb_put(b, trail);
            in_turn = true;
        }
        if (is_role(&m[i], "system")) {
            sb_put(b, m[i].content);
            sb_put(b, "\n\n");
        } else if (is_role(&m[i], "user")) {
            sb_put(b, m[i].content);
            sb_put(b, lead);
            sb_put(b, "[/INST]");
        } else {
            sb_put(b, trail);
            if (t == VKL_CHAT_MISTRAL_V3) sb_put_stripped(b, m[i].content);
            else sb_put(b, m[i].content);
            sb_put(b, "</s>");
            in_turn = false;
        }
    }
}

static void fmt_plain(strbuf *b, const vkl_chat_msg *m, size_t n, bool add_ass) {
    for (size_t i = 0; i < n; i++) {
        const char *r = m[i].role;
        if (!strcmp(r, "system")) sb_put(b, "System");
        else if (!strcmp(r, "user")) sb_put(b, "User");
        else if (!strcmp(r, "assistant")) sb_put(b, "Assistant");
        else sb_put(b, r);
        sb_put(b, ": ");
        sb_put(b, m[i].content);
        sb_put(b, "\n");
    }
    if (add_ass) sb_put(b, "Assistant:");
}

char *vkl_chat_format(vkl_chat_template t, const vkl_chat_msg *msgs, size_t n_msgs, bool add_assistant,
                      vkl_error *err) {
    for (size_t i = 0; i < n_msgs; i++)
        if (!msgs[i].role || !msgs[i].content) {
            vkl_fail(err, "chat message %zu has no role or no content", i);
            return NULL;
        }
    strbuf b = {0};
    sb_put(&b, ""); /* an empty conversation still yields "" */
    size_t rt = 0;
    while (rt < VKL_ARRAY_LEN(role_tagged) && role_tagged[rt].t != t) rt++;
    if (rt < VKL_ARRAY_LEN(role_tagged))
        fmt_role_tagged(&b, msgs, n_msgs, add_assistant, role_tagged[rt].open, role_tagged[rt].close,
                        role_tagged[rt].end, role_tagged[rt].strip);
    else switch (t) {
    case VKL_CHAT_LLAMA2:
    case VKL_CHAT_LLAMA2_SYS:
    case VKL_CHAT_LLAMA2_SYS_BOS:
    case VKL_CHAT_LLAMA2_SYS_STRIP: fmt_llama2(&b, t, msgs, n_msgs); break;
    case VKL_CHAT_MISTRAL_V1:
    case VKL_CHAT_MISTRAL_V3:
    case VKL_CHAT_MISTRAL_V3_TEKKEN:
    case VKL_CHAT_MISTRAL_V7: fmt_mistral(&b, t, msgs, n_msgs); break;
    case VKL_CHAT_PLAIN: fmt_plain(&b, msgs, n_msgs, add_assistant); break;
    default:
        vkl_fail(err, "unknown chat template %d", (int)t);
        free(b.s);
        return NULL;
    }
    if (b.oom) {
        vkl_fail(err, "out of host memory formatting the chat prompt");
        free(b.s);
        return NULL;
    }
    return b.s;
}
