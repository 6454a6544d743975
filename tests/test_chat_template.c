/* Chat templates: detection from real-world Jinja template snippets and the formatted prompts. */
#include "chat.h"
#include "test.h"

static const vkl_chat_msg conv[] = {
    {"system", "You are a helpful assistant"},
    {"user", "Hello"},
    {"assistant", "Hi there"},
    {"user", "Who are you"},
};

static void check_format(vkl_chat_template t, const vkl_chat_msg *m, size_t n, bool add_ass, const char *expect) {
    vkl_error err = {{0}};
    char *s = vkl_chat_format(t, m, n, add_ass, &err);
    CHECK(s && !strcmp(s, expect), "%s:\n--- got ---\n%s\n--- expected ---\n%s", vkl_chat_template_name(t),
          s ? s : err.msg, expect);
    free(s);
}

static void test_detect(void) {
    static const struct {
        const char *tmpl;
        vkl_chat_template expect;
    } cases[] = {
        {NULL, VKL_CHAT_PLAIN},
        {"", VKL_CHAT_PLAIN},
        {"{% for m in messages %}{{ m['content'] }}{% endfor %}", VKL_CHAT_PLAIN},
        {"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}",
         VKL_CHAT_CHATML},
        /* Meta's llama-2-chat template. */
        {"{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}"
         "{% endif %}{% for message in loop_messages %}{% if loop.index0 == 0 and system_message != false %}"
         "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% endif %}"
         "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
         "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}",
         VKL_CHAT_LLAMA2_SYS_STRIP},
        {"{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}<<SYS>>{% endif %}"
         "{{ bos_token + '[INST] ' + message['content'] + ' [/INST]' }}{% endfor %}",
         VKL_CHAT_LLAMA2_SYS_BOS},
        {"{% for message in messages %}{% if message['role'] == 'system' %}<<SYS>>\\n{{ message['content'] }}\\n<</SYS>>{% endif %}"
         "[INST] {{ message['content'] }} [/INST]{% endfor %}",
         VKL_CHAT_LLAMA2_SYS},
        {"{% for message in messages %}[INST] {{ message['content'] }} [/INST]{% endfor %}", VKL_CHAT_LLAMA2},
        /* Mistral's official templates. */
        {"{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}{%- endif %}"
         "{{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}{{- ' [INST] ' + system_message",
         VKL_CHAT_MISTRAL_V1},
        {"{%- if tools %}[AVAILABLE_TOOLS]{%- endif %}{{- \"[INST] \" + message[\"content\"] + \"[/INST]\" }}",
         VKL_CHAT_MISTRAL_V3},
        {"{%- if tools %}[AVAILABLE_TOOLS]{%- endif %}{{- \"[INST]\" + message[\"content\"] + \"[/INST]\" }}",
         VKL_CHAT_MISTRAL_V3_TEKKEN},
        {"{{- '[SYSTEM_PROMPT]' + system_message + '[/SYSTEM_PROMPT]' }}{{- '[INST]' + message['content'] + '[/INST]' }}",
         VKL_CHAT_MISTRAL_V7},
        /* HuggingFaceH4/zephyr-7b-beta. */
        {"{% for message in messages %}\\n{% if message['role'] == 'user' %}\\n{{ '<|user|>\\n' + message['content'] + eos_token }}\\n"
         "{% elif message['role'] == 'assistant' %}\\n{{ '<|assistant|>\\n'  + message['content'] + eos_token }}\\n{% endif %}{% endfor %}",
         VKL_CHAT_ZEPHYR},
        /* phi-3 uses <|user|> too, but with <|end|>: not zephyr. */
        {"{{'<|user|>' + '\\n' + message['content'] + '<|end|>' + '\\n' + '<|assistant|>' + '\\n'}}", VKL_CHAT_PHI3},
        /* Meta's Llama-3.1-8B-Instruct (abridged). */
        {"{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + "
         "'<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}{%- endfor %}{%- if add_generation_prompt %}"
         "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}",
         VKL_CHAT_LLAMA3},
        /* Qwen2.5-Instruct (abridged): ChatML. */
        {"{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
         "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}",
         VKL_CHAT_CHATML},
        /* microsoft/phi-4. */
        {"{% for message in messages %}{% if (message['role'] == 'system') %}{{'<|im_start|>system<|im_sep|>' + "
         "message['content'] + '<|im_end|>'}}{% endif %}{% endfor %}",
         VKL_CHAT_PHI4},
        /* Names work too. */
        {"chatml", VKL_CHAT_CHATML},
        {"zephyr", VKL_CHAT_ZEPHYR},
        {"llama2-sys", VKL_CHAT_LLAMA2_SYS},
        {"llama3", VKL_CHAT_LLAMA3},
        {"phi3", VKL_CHAT_PHI3},
    };
    for (size_t i = 0; i < VKL_ARRAY_LEN(cases); i++) {
        vkl_chat_template got = vkl_chat_detect(cases[i].tmpl);
        CHECK(got == cases[i].expect, "case %zu: detected %s, expected %s", i, vkl_chat_template_name(got),
              vkl_chat_template_name(cases[i].expect));
    }
    for (int t = 0; t < VKL_CHAT_TEMPLATE_COUNT; t++)
        CHECK(vkl_chat_template_from_name(vkl_chat_template_name((vkl_chat_template)t)) == t, "name round trip %d", t);
    CHECK(vkl_chat_template_from_name("nope") == -1, "unknown name");
}

static void test_formats(void) {
    check_format(VKL_CHAT_CHATML, conv, 4, true,
                 "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n"
                 "<|im_start|>user\nHello<|im_end|>\n"
                 "<|im_start|>assistant\nHi there<|im_end|>\n"
                 "<|im_start|>user\nWho are you<|im_end|>\n"
                 "<|im_start|>assistant\n");
    check_format(VKL_CHAT_CHATML, conv + 1, 1, false, "<|im_start|>user\nHello<|im_end|>\n");
    check_format(VKL_CHAT_LLAMA2_SYS, conv, 4, true,
                 "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>"
                 "[INST] Who are you [/INST]");
    check_format(VKL_CHAT_LLAMA2_SYS_BOS, conv, 4, true,
                 "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>"
                 "<s>[INST] Who are you [/INST]");
    const vkl_chat_msg padded[] = {{"system", "  sys  "}, {"user", " Hello\n"}};
    check_format(VKL_CHAT_LLAMA2_SYS_STRIP, padded, 2, true, "[INST] <<SYS>>\nsys\n<</SYS>>\n\nHello [/INST]");
    check_format(VKL_CHAT_LLAMA2, conv, 4, true,
                 "[INST] You are a helpful assistant\nHello [/INST]Hi there</s>[INST] Who are you [/INST]");
    check_format(VKL_CHAT_MISTRAL_V1, conv, 4, true,
                 " [INST] You are a helpful assistant\n\nHello [/INST] Hi there</s> [INST] Who are you [/INST]");
    const vkl_chat_msg spaced[] = {{"user", "Hello"}, {"assistant", " Hi there "}, {"user", "Who are you"}};
    check_format(VKL_CHAT_MISTRAL_V3, spaced, 3, true, "[INST] Hello[/INST] Hi there</s>[INST] Who are you[/INST]");
    check_format(VKL_CHAT_MISTRAL_V3_TEKKEN, conv, 4, true,
                 "[INST]You are a helpful assistant\n\nHello[/INST]Hi there</s>[INST]Who are you[/INST]");
    check_format(VKL_CHAT_MISTRAL_V7, conv, 4, true,
                 "[SYSTEM_PROMPT] You are a helpful assistant[/SYSTEM_PROMPT][INST] Hello[/INST] Hi there</s>"
                 "[INST] Who are you[/INST]");
    check_format(VKL_CHAT_ZEPHYR, conv, 4, true,
                 "<|system|>\nYou are a helpful assistant<|endoftext|>\n<|user|>\nHello<|endoftext|>\n"
                 "<|assistant|>\nHi there<|endoftext|>\n<|user|>\nWho are you<|endoftext|>\n<|assistant|>\n");
    const vkl_chat_msg llama3_conv[] = {{"system", "You are a helpful assistant "}, {"user", "\nHello"}};
    check_format(VKL_CHAT_LLAMA3, llama3_conv, 2, true,
                 "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>"
                 "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
                 "<|start_header_id|>assistant<|end_header_id|>\n\n");
    check_format(VKL_CHAT_PHI3, conv, 4, true,
                 "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello<|end|>\n"
                 "<|assistant|>\nHi there<|end|>\n<|user|>\nWho are you<|end|>\n<|assistant|>\n");
    check_format(VKL_CHAT_PHI4, conv + 1, 2, true,
                 "<|im_start|>user<|im_sep|>Hello<|im_end|><|im_start|>assistant<|im_sep|>Hi there<|im_end|>"
                 "<|im_start|>assistant<|im_sep|>");
    check_format(VKL_CHAT_PLAIN, conv, 4, true,
                 "System: You are a helpful assistant\nUser: Hello\nAssistant: Hi there\nUser: Who are you\nAssistant:");
    check_format(VKL_CHAT_PLAIN, conv + 1, 1, false, "User: Hello\n");
    check_format(VKL_CHAT_CHATML, conv, 0, false, "");

    vkl_error err = {{0}};
    const vkl_chat_msg bad[] = {{"user", NULL}};
    CHECK(!vkl_chat_format(VKL_CHAT_CHATML, bad, 1, true, &err) && strstr(err.msg, "no role or no content"), "NULL content");
    CHECK(!vkl_chat_format((vkl_chat_template)99, conv, 1, true, &err) && strstr(err.msg, "unknown chat template"),
          "bad template");
}

int main(void) {
    test_detect();
    test_formats();
    return test_finish();
}
