#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "launch/commands.h"
#include "base/options.h"
#include "worker/data/chat.h"
#include "worker/data/data.h"
#include "base/fileio.h"

typedef struct {
    char out[PATH_LEN];
    float val_fraction;
    char tokenizer[PATH_LEN];
    int format; /* PrepFormat, then PREPARE_JSONL: the choices below in their order */
    char template_name[32];
    char system[1024];
    char date[32];
    int mark_documents;
} PrepareArgs;

enum { PREPARE_JSONL = PREP_LLMC + 1 };

static const OptSpec PREPARE_OPTS[] = {
    {"out", OT_STR, offsetof(PrepareArgs, out), sizeof(((PrepareArgs *)0)->out), "FILE",
     "token file to write (default " DEFAULT_DATA ")", NULL, 1, 0, NULL},
    {"val-fraction", OT_FLOAT, offsetof(PrepareArgs, val_fraction), 0, "X",
     "share of the tokens (the end) kept for validation (0.05)", NULL, 1e-6, 0.9, NULL},
    {"tokenizer", OT_STR, offsetof(PrepareArgs, tokenizer), sizeof(((PrepareArgs *)0)->tokenizer),
     "DIR", "tokenizer files (tokenizer.json + tokenizer_config.json, or GPT-2's vocab.json + "
     "merges.txt or encoder.json + vocab.bpe); default: byte-level, vocabulary 256", NULL, 1, 0,
     NULL},
    {"format", OT_CHOICE, offsetof(PrepareArgs, format), 0, "mptokens|llmc|jsonl",
     "mptokens: text files into MPTOKENS; llmc: into llm.c's token file (needs --tokenizer; no "
     "split of its own); jsonl: instruction examples, one JSON object a line ({\"prompt\", "
     "\"completion\"} or {\"messages\": [{\"role\", \"content\"}, ...]}), rendered by "
     "--template, into MPTOKENS with a loss mask (the answers alone count; docs/instruct.md)",
     "mptokens|llmc|jsonl", 1, 0, "mptokens"},
    {"template", OT_STR, offsetof(PrepareArgs, template_name),
     sizeof(((PrepareArgs *)0)->template_name), "NAME",
     "--format jsonl: the chat template, plain|llama3|llama3.2|chatml|smollm2|qwen3, or auto "
     "(the one tokenizer_config.json's chat_template is; plain without one)", NULL, 1, 0, NULL},
    {"system", OT_STR, offsetof(PrepareArgs, system), sizeof(((PrepareArgs *)0)->system), "TEXT",
     "--format jsonl: a system turn for the examples that have none", NULL, 1, 0, NULL},
    {"template-date", OT_STR, offsetof(PrepareArgs, date), sizeof(((PrepareArgs *)0)->date),
     "\"DD Mon YYYY\"", "--template llama3.2: the system turn's \"Today Date\" (default: today, "
     "UTC, as transformers renders it; fix it for a file that is the same every day)", NULL, 1, 0,
     NULL},
    {"mark-documents", OT_FLAG, offsetof(PrepareArgs, mark_documents), 0, NULL,
     "each text file is a document: write a masked file (version 3) that marks each one's first "
     "token and counts every token, so that train --doc-attention keeps documents apart "
     "(--format jsonl marks its examples anyway; llm.c's files hold no mask)", NULL, 0, 0, NULL},
    {0},
};

#define KJV_RANGE "gen1:1-rev22:21"

/* Dumps the King James Bible with Debian's `bible` (package bible-kjv)
 * into txt, atomically. The command line is a constant: no path is ever
 * handed to a shell. */
static int dump_kjv(const char *txt, char *err, size_t n)
{
    Err e = {{0}};
    AtomicFile af;
    FILE *p = popen("bible '" KJV_RANGE "' 2>/dev/null", "r");
    if (!p || atomic_open(&af, txt, &e)) {
        if (p) pclose(p);
        snprintf(err, n, "%s", p ? e.msg : "cannot start `bible`");
        return -1;
    }
    char buf[1 << 16];
    size_t got, total = 0;
    int rc = 0;
    while (!rc && (got = fread(buf, 1, sizeof buf, p)) > 0) {
        rc = atomic_write(&af, buf, got, &e);
        total += got;
    }
    int status = pclose(p);
    if (!rc && (status != 0 || total == 0)) {
        atomic_abort(&af);
        snprintf(err, n, "could not run `bible '%s'` to make the default dataset; install "
                         "Debian's bible-kjv package (apt-get install bible-kjv) or pass --data FILE",
                 KJV_RANGE);
        return -1;
    }
    if (!rc) rc = atomic_commit(&af, &e);
    else atomic_abort(&af);
    if (rc) snprintf(err, n, "%s", e.msg);
    return rc;
}

/* Byte-level, or BPE with --tokenizer; instruction examples with --format jsonl. */
static int prepare_texts(const PrepareArgs *a, const char *out, double val_fraction,
                         const char *const *paths, int n_paths, Err *e)
{
    if (a && a->format == PREPARE_JSONL) {
        PrepareChat c = {a->tokenizer, out, val_fraction, a->template_name, a->system, a->date};
        return prepare_jsonl_files(&c, paths, n_paths, e);
    }
    int mark = a && a->mark_documents;
    if (!a || !a->tokenizer[0]) return prepare_text_files(paths, n_paths, out, val_fraction, mark, e);
    PrepareBpe p = {a->tokenizer, out, val_fraction, (PrepFormat)a->format, mark};
    return prepare_bpe_files(&p, paths, n_paths, e);
}

static int prepare_kjv(const PrepareArgs *a, const char *out, double val_fraction, char *err,
                       size_t n)
{
    char dir[PATH_LEN], txt[PATH_BUF];
    snprintf(dir, sizeof dir, "%s", out);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
    Err e = {{0}};
    if (mkdir_parent(out, &e)) {
        snprintf(err, n, "%s", e.msg);
        return -1;
    }
    snprintf(txt, sizeof txt, "%s/kjv.txt", dir);
    if (dump_kjv(txt, err, n)) return -1;
    const char *paths[1] = {txt};
    if (prepare_texts(a, out, val_fraction, paths, 1, &e)) {
        snprintf(err, n, "%s", e.msg);
        return -1;
    }
    return 0;
}

int ensure_default_data(char *err, size_t n)
{
    if (access(DEFAULT_DATA, R_OK) == 0) return 0;
    fprintf(stderr, "mpitrain: making the default dataset %s from the King James Bible\n", DEFAULT_DATA);
    return prepare_kjv(NULL, DEFAULT_DATA, 0.05, err, n);
}

int cmd_prepare(int argc, char **argv)
{
    PrepareArgs a = {DEFAULT_DATA, 0.05f, "", PREP_MPTOKENS, "auto", "", "", 0};
    const char *inputs[256];
    int n_in = 0, help = 0;
    int rc = opts_parse("prepare", PREPARE_OPTS, &a, argc, argv, 1, inputs, 256, &n_in, &help);
    if (rc) return rc;
    if (help) {
        opts_print_help(stdout, "mpitrain prepare [options] [TEXT_FILE...]",
                        "Turns text files into a token file (byte-level, vocabulary 256, or the BPE "
                        "of --tokenizer) with a train/validation split.\nWithout files it "
                        "prepares the King James Bible from Debian's bible-kjv package.",
                        PREPARE_OPTS);
        return 0;
    }
    if (a.format == PREP_LLMC && !a.tokenizer[0]) {
        fprintf(stderr, "mpitrain prepare: --format llmc needs --tokenizer DIR (llm.c files hold "
                        "GPT-2 tokens)\n");
        return EXIT_USAGE;
    }
    if (a.format == PREP_LLMC && a.mark_documents) {
        fprintf(stderr, "mpitrain prepare: --mark-documents writes a mask, which llm.c's files "
                        "cannot hold; use --format mptokens\n");
        return EXIT_USAGE;
    }
    if (a.format == PREPARE_JSONL && n_in == 0) {
        fprintf(stderr, "mpitrain prepare: --format jsonl needs the .jsonl files to read\n");
        return EXIT_USAGE;
    }
    if (a.format != PREPARE_JSONL && (strcmp(a.template_name, "auto") || a.system[0] || a.date[0])) {
        fprintf(stderr, "mpitrain prepare: --template, --system and --template-date go with "
                        "--format jsonl\n");
        return EXIT_USAGE;
    }
    char err[1024];
    Err e = {{0}};
    if (n_in == 0)
        rc = prepare_kjv(&a, a.out, a.val_fraction, err, sizeof err);
    else if ((rc = mkdir_parent(a.out, &e) || prepare_texts(&a, a.out, a.val_fraction, inputs, n_in, &e)))
        snprintf(err, sizeof err, "%s", e.msg);
    if (rc) {
        fprintf(stderr, "mpitrain prepare: %s\n", err);
        return 1;
    }
    TokenFile f;
    if (tokfile_open(&f, a.out, &e) == 0) {
        printf("wrote %s: %llu train + %llu validation tokens, vocabulary %d", a.out,
               (unsigned long long)f.n_train, (unsigned long long)f.n_val, f.vocab);
        uint64_t counted = 0;
        for (uint64_t i = 0; f.mask && i < f.n_train + f.n_val; i++) counted += f.mask[i] & TOKMASK_COUNTS;
        if (f.mask) printf(", %llu of them counted by the loss", (unsigned long long)counted);
        printf("\n");
        tokfile_close(&f);
    }
    return 0;
}
