#ifndef MPITRAIN_CHAT_H
#define MPITRAIN_CHAT_H
/* Instruction data: chat templates by name, and `mpitrain prepare --format
 * jsonl` (docs/instruct.md). A conversation is rendered as its model family's
 * chat template renders it (tokenizer_config.json's chat_template, checked
 * against @huggingface/jinja in tests/cli/instruct_test.sh) and tokenized;
 * a loss mask marks the tokens the loss counts: each assistant turn's
 * content and its end token, nothing of the prompt. */
#include <stddef.h>
#include <stdint.h>
#include "base/err.h"

typedef enum { CHAT_PLAIN, CHAT_LLAMA3, CHAT_LLAMA32, CHAT_CHATML, CHAT_QWEN3 } ChatStyle;

typedef struct {
    const char *name;   /* --template */
    ChatStyle style;
    const char *system; /* the system turn the template adds when there is none, or NULL */
    const char *what;   /* the families that use it, for --help and messages */
} ChatTemplate;

/* The template called name, or NULL; chat_template_names lists them all,
 * "a|b|c", for a message. */
const ChatTemplate *chat_template_find(const char *name);
const char *chat_template_names(void);
/* The template a tokenizer directory's tokenizer_config.json chat_template
 * is (recognised by its markers): plain when it has none (GPT-2). */
int chat_template_guess(const char *tokenizer_dir, const ChatTemplate **t, Err *e);

typedef struct {
    const char *role; /* "system", "user" or "assistant" */
    const char *content;
    size_t len;
} ChatMsg;

/* What a rendering produces, in order: text (tokenized as the template's
 * text is) or, text NULL, one token id (the tokenizer's BOS/EOS where the
 * text of the token would not be read as it: GPT-2's <|endoftext|>). counted:
 * the loss counts these tokens. */
typedef int (*ChatEmit)(void *ctx, const char *text, size_t n, int id, int counted, Err *e);

typedef struct {
    int bos, eos;     /* the tokenizer's ids, -1 when it has none */
    const char *date; /* llama3.2's "Today Date", as strftime "%d %b %Y" */
} ChatTokens;

/* Renders one conversation (add_generation_prompt false): every assistant
 * turn's content and its end token counted. */
int chat_render(const ChatTemplate *t, const ChatMsg *m, int n, ChatTokens tk, ChatEmit emit,
                void *ctx, Err *e);

typedef struct {
    const char *tokenizer;     /* directory, or "" for byte level (plain only) */
    const char *out_path;
    double val_fraction;       /* of the examples, the last ones */
    const char *template_name; /* "auto": from tokenizer_config.json */
    const char *system;        /* a system turn for conversations without one, or "" */
    const char *date;          /* llama3.2's date, or "": today's (UTC), as transformers renders */
} PrepareChat;

/* JSONL files, one example per line: {"prompt", "completion"} or
 * {"messages": [{"role", "content"}, ...]}, into an MPTOKENS file with a
 * loss mask (version 3). Errors name the file, the line and the field. */
int prepare_jsonl_files(const PrepareChat *p, const char *const *paths, int n_paths, Err *e);

#endif
