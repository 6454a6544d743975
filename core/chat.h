/* Chat prompt formatting for the templates we recognise. Like llama.cpp, we do not run the Jinja
 * template in tokenizer.chat_template: we detect its family by characteristic substrings and
 * format the messages with built-in code for that family. */
#ifndef VKL_CHAT_H
#define VKL_CHAT_H

#include "common.h"

typedef enum vkl_chat_template {
    VKL_CHAT_PLAIN = 0,          /* fallback: "User: ...\nAssistant:" */
    VKL_CHAT_CHATML,             /* <|im_start|>role\n...<|im_end|>\n */
    VKL_CHAT_LLAMA2,             /* [INST] ... [/INST], no system support */
    VKL_CHAT_LLAMA2_SYS,         /* with <<SYS>> */
    VKL_CHAT_LLAMA2_SYS_BOS,     /* with <<SYS>>, "<s>[INST]" for later turns */
    VKL_CHAT_LLAMA2_SYS_STRIP,   /* with <<SYS>>, messages stripped of surrounding whitespace */
    VKL_CHAT_MISTRAL_V1,         /* " [INST] ... [/INST]" */
    VKL_CHAT_MISTRAL_V3,         /* "[INST] ...[/INST]", assistant replies stripped */
    VKL_CHAT_MISTRAL_V3_TEKKEN,  /* "[INST]...[/INST]" */
    VKL_CHAT_MISTRAL_V7,         /* [SYSTEM_PROMPT] ... [/SYSTEM_PROMPT][INST] ... [/INST] */
    VKL_CHAT_ZEPHYR,             /* <|role|>\n...<|endoftext|>\n */
    VKL_CHAT_LLAMA3,             /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>, messages stripped */
    VKL_CHAT_PHI3,               /* <|role|>\n...<|end|>\n */
    VKL_CHAT_PHI4,               /* <|im_start|>role<|im_sep|>...<|im_end|> */
    VKL_CHAT_TEMPLATE_COUNT
} vkl_chat_template;

typedef struct vkl_chat_msg {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
} vkl_chat_msg;

/* Detects the family of a Jinja chat template (the tokenizer.chat_template value, or a template
 * name such as "chatml"); NULL, empty or unrecognised -> VKL_CHAT_PLAIN. */
vkl_chat_template vkl_chat_detect(const char *tmpl);
/* Short name ("chatml", "llama2-sys", ...). */
const char *vkl_chat_template_name(vkl_chat_template t);
/* Inverse of vkl_chat_template_name; -1 if unknown. */
int vkl_chat_template_from_name(const char *name);

/* Formats the messages; add_assistant appends the opening of the assistant's turn (the generation
 * prompt; the llama-2 family has none). Returns a malloc'd NUL-terminated string (free() it), or
 * NULL with err set. Special tokens such as "<|im_start|>" appear as text: tokenize the result
 * with parse_special. */
char *vkl_chat_format(vkl_chat_template t, const vkl_chat_msg *msgs, size_t n_msgs, bool add_assistant,
                      vkl_error *err);

#endif
