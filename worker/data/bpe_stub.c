/* Stand-in for the GPT-2 tokenizer (worker/data/bpe.h) while its
 * implementation, worker/data/bpe.c, is not in this tree: the build links,
 * byte-level checkpoints work, and a checkpoint that needs a tokenizer gets
 * a clear refusal instead of a link error. CMakeLists.txt drops this file
 * as soon as bpe.c exists; delete it then. */
#include "worker/data/bpe.h"

#include <stddef.h>
#include <stdio.h>
#include <unistd.h>

Bpe *bpe_load(const char *dir, Err *e)
{
    err_set(e, "%s: this build has no GPT-2 tokenizer (worker/data/bpe.c is missing); "
               "rebuild from a tree that has it",
            dir);
    return NULL;
}

void bpe_free(Bpe *b) { (void)b; }

int bpe_vocab_size(const Bpe *b)
{
    (void)b;
    return 0;
}

int bpe_eot(const Bpe *b)
{
    (void)b;
    return -1;
}

int bpe_encode(const Bpe *b, const char *text, size_t n, int **ids, size_t *n_ids, size_t *cap,
               Err *e)
{
    (void)b, (void)text, (void)n, (void)ids, (void)n_ids, (void)cap;
    return err_set(e, "this build has no GPT-2 tokenizer");
}

const unsigned char *bpe_token_bytes(const Bpe *b, int id, size_t *len)
{
    (void)b, (void)id;
    *len = 0;
    return NULL;
}

int bpe_copy_files(const char *src_dir, const char *dst_dir, Err *e)
{
    (void)dst_dir;
    return err_set(e, "%s: this build has no GPT-2 tokenizer", src_dir);
}

static int has_file(const char *dir, const char *name)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    return n > 0 && (size_t)n < sizeof path && access(path, R_OK) == 0;
}

/* Honest even here, so that a checkpoint with tokenizer files is told
 * "this build cannot read them", not "there are none". */
int bpe_present(const char *dir)
{
    return (has_file(dir, "vocab.json") && has_file(dir, "merges.txt")) ||
           (has_file(dir, "encoder.json") && has_file(dir, "vocab.bpe"));
}
