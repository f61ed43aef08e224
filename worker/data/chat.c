/* Chat templates (worker/data/chat.h). Each renders what its family's
 * tokenizer_config.json chat_template renders for a conversation of system,
 * user and assistant turns with add_generation_prompt false; the test
 * renders the real templates with @huggingface/jinja beside it. */
#include "worker/data/chat.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "worker/data/jtree.h"

static const ChatTemplate TEMPLATES[] = {
    {"plain", CHAT_PLAIN, NULL,
     "no template: the turns' text back to back, each answer ended by the end-of-text token "
     "(GPT-2, base models, byte level: a newline)"},
    {"llama3", CHAT_LLAMA3, NULL, "Llama 3 and 3 Instruct: a header per turn, <|eot_id|>"},
    {"llama3.2", CHAT_LLAMA32, NULL,
     "Llama 3.1 / 3.2 Instruct: llama3 after a system turn with the knowledge date and "
     "today's (--template-date)"},
    {"chatml", CHAT_CHATML, NULL, "ChatML: <|im_start|>role ... <|im_end|> (Qwen2, SmolLM2 "
     "without its default system turn)"},
    {"smollm2", CHAT_CHATML, "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
     "SmolLM2 Instruct: ChatML with its default system turn"},
    {"qwen3", CHAT_QWEN3, NULL,
     "Qwen3: ChatML, the answers after the last user turn with an empty <think></think> block"},
};
enum { N_TEMPLATES = sizeof TEMPLATES / sizeof TEMPLATES[0] };

const ChatTemplate *chat_template_find(const char *name)
{
    for (int i = 0; i < N_TEMPLATES; i++)
        if (!strcmp(TEMPLATES[i].name, name)) return &TEMPLATES[i];
    return NULL;
}

const char *chat_template_names(void) { return "plain|llama3|llama3.2|chatml|smollm2|qwen3"; }

/* ---- which template a tokenizer_config.json's chat_template is --------- */

static const ChatTemplate *guess_from_text(const char *tpl)
{
    if (!tpl) return chat_template_find("plain");
    if (strstr(tpl, "<|start_header_id|>"))
        return chat_template_find(strstr(tpl, "Cutting Knowledge Date") ? "llama3.2" : "llama3");
    if (strstr(tpl, "<|im_start|>")) {
        if (strstr(tpl, "<think>")) return chat_template_find("qwen3");
        if (strstr(tpl, "named SmolLM")) return chat_template_find("smollm2");
        return chat_template_find("chatml");
    }
    return NULL;
}

int chat_template_guess(const char *dir, const ChatTemplate **t, Err *e)
{
    char path[PATH_BUF];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    void *text;
    size_t len;
    if (access(path, R_OK) != 0) {
        *t = chat_template_find("plain");
        return 0;
    }
    if (read_file(path, (size_t)64 << 20, &text, &len, e)) return -1;
    JtDoc *d = jt_parse(path, text, len, e);
    if (!d) {
        free(text);
        return -1;
    }
    const char *tpl = jt_str(jt_root(d), "chat_template");
    *t = guess_from_text(tpl);
    jt_free(d);
    free(text);
    if (!*t)
        return err_set(e, "%s: its chat_template is none mpitrain renders (%s); name one with "
                          "--template", path, chat_template_names());
    return 0;
}

/* ---- rendering ----------------------------------------------------------- */

typedef struct {
    ChatEmit emit;
    void *ctx;
    Err *e;
} Out;

static int text(Out *o, const char *s, size_t n, int counted)
{
    return n ? o->emit(o->ctx, s, n, -1, counted, o->e) : 0;
}

static int lit(Out *o, const char *s, int counted) { return text(o, s, strlen(s), counted); }

static int token(Out *o, int id, int counted) { return o->emit(o->ctx, NULL, 0, id, counted, o->e); }

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* Jinja's trim (Python's str.strip()) of ASCII whitespace. */
static void trim(const char **s, size_t *n)
{
    while (*n && is_space(**s)) (*s)++, (*n)--;
    while (*n && is_space((*s)[*n - 1])) (*n)--;
}

static int is_assistant(const ChatMsg *m) { return !strcmp(m->role, "assistant"); }

/* The text back to back; each answer ends with the end-of-text token (a
 * newline at byte level), counted. */
static int render_plain(Out *o, const ChatMsg *m, int n, ChatTokens tk)
{
    if (tk.bos >= 0 && token(o, tk.bos, 0)) return -1;
    for (int i = 0; i < n; i++) {
        int a = is_assistant(&m[i]);
        if (text(o, m[i].content, m[i].len, a)) return -1;
        if (a && (tk.eos >= 0 ? token(o, tk.eos, 1) : lit(o, "\n", 1))) return -1;
    }
    return 0;
}

/* '<|start_header_id|>' + role + '<|end_header_id|>\n\n' + content|trim + '<|eot_id|>' */
static int llama3_turn(Out *o, const ChatMsg *m)
{
    int a = is_assistant(m);
    const char *s = m->content;
    size_t len = m->len;
    trim(&s, &len);
    return lit(o, "<|start_header_id|>", 0) || lit(o, m->role, 0) ||
           lit(o, "<|end_header_id|>\n\n", 0) || text(o, s, len, a) || lit(o, "<|eot_id|>", a);
}

static int render_llama3(Out *o, const ChatMsg *m, int n, ChatTokens tk, int dated)
{
    if (tk.bos < 0)
        return err_set(o->e, "the llama3 templates begin with bos_token, and the tokenizer has none");
    if (token(o, tk.bos, 0)) return -1;
    int first = 0;
    if (dated) { /* Llama 3.1/3.2: the system turn always, with its dates */
        const char *s = "";
        size_t len = 0;
        if (n && !strcmp(m[0].role, "system")) {
            s = m[0].content;
            len = m[0].len;
            trim(&s, &len);
            first = 1;
        }
        if (lit(o, "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
                   "December 2023\nToday Date: ", 0) ||
            lit(o, tk.date, 0) || lit(o, "\n\n", 0) || text(o, s, len, 0) || lit(o, "<|eot_id|>", 0))
            return -1;
    }
    for (int i = first; i < n; i++)
        if (llama3_turn(o, &m[i])) return -1;
    return 0;
}

/* '<|im_start|>' + role + '\n' + content + '<|im_end|>' + '\n'; an answer's
 * content and <|im_end|> counted. think: Qwen3's empty reasoning block
 * before the answer (not counted), the content's leading newlines dropped. */
static int chatml_turn(Out *o, const char *role, const char *s, size_t len, int counted, int think)
{
    if (lit(o, "<|im_start|>", 0) || lit(o, role, 0) || lit(o, "\n", 0)) return -1;
    if (think) {
        while (len && *s == '\n') s++, len--;
        if (lit(o, "<think>\n\n</think>\n\n", 0)) return -1;
    }
    return text(o, s, len, counted) || lit(o, "<|im_end|>", counted) || lit(o, "\n", 0);
}

static int render_chatml(Out *o, const ChatTemplate *t, const ChatMsg *m, int n)
{
    if (t->system && (!n || strcmp(m[0].role, "system")) &&
        chatml_turn(o, "system", t->system, strlen(t->system), 0, 0))
        return -1;
    for (int i = 0; i < n; i++)
        if (chatml_turn(o, m[i].role, m[i].content, m[i].len, is_assistant(&m[i]), 0)) return -1;
    return 0;
}

static int render_qwen3(Out *o, const ChatMsg *m, int n)
{
    int last_query = n - 1;
    for (int i = n - 1; i >= 0; i--)
        if (!strcmp(m[i].role, "user")) {
            last_query = i;
            break;
        }
    for (int i = 0; i < n; i++) {
        int a = is_assistant(&m[i]);
        if (a && memmem(m[i].content, m[i].len, "</think>", 8))
            return err_set(o->e, "an answer holds </think>: reasoning content is not supported");
        int think = a && i > last_query && i == n - 1;
        if (chatml_turn(o, m[i].role, m[i].content, m[i].len, a, think)) return -1;
    }
    return 0;
}

int chat_render(const ChatTemplate *t, const ChatMsg *m, int n, ChatTokens tk, ChatEmit emit,
                void *ctx, Err *e)
{
    Out o = {emit, ctx, e};
    switch (t->style) {
    case CHAT_PLAIN: return render_plain(&o, m, n, tk);
    case CHAT_LLAMA3: return render_llama3(&o, m, n, tk, 0);
    case CHAT_LLAMA32: return render_llama3(&o, m, n, tk, 1);
    case CHAT_CHATML: return render_chatml(&o, t, m, n);
    case CHAT_QWEN3: return render_qwen3(&o, m, n);
    }
    return err_set(e, "internal error: chat template style %d", (int)t->style);
}
