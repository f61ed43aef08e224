/* `mpitrain prepare --tokenizer DIR`: text files -> tokens (worker/data/bpe.h),
 * written as an MPTOKENS file (with a validation split) or as llm.c's token
 * file. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/le.h"
#include "worker/data/bpe.h"
#include "worker/data/data.h"

#define TEXT_MAX_BYTES ((size_t)1 << 34)

typedef struct {
    int *ids;
    size_t n, cap;
} IdList;

static int append_id(IdList *l, int id, Err *e)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 4096;
        int *ids = realloc(l->ids, cap * sizeof *ids);
        if (!ids) return err_set(e, "prepare: out of memory (%zu tokens)", l->n);
        l->ids = ids;
        l->cap = cap;
    }
    l->ids[l->n++] = id;
    return 0;
}

/* Each file is a document, encoded on its own (a file boundary is a piece
 * boundary), so the model sees where one text ends and the next begins:
 * GPT-2's pairs put <|endoftext|> before it, as nanoGPT and llm.c prepare
 * theirs; tokenizer.json's documents are as its encode makes them (Llama's
 * BOS first) and end with eos_token, as the model learnt to stop. */
static int encode_files(const Bpe *b, int hf, const char *const *paths, int n_paths, IdList *out,
                        size_t *starts, Err *e)
{
    size_t text_ids = 0;
    for (int i = 0; i < n_paths; i++) {
        void *text;
        size_t len;
        if (read_file(paths[i], TEXT_MAX_BYTES, &text, &len, e)) return -1;
        starts[i] = out->n; /* the document's first token: GPT-2's <|endoftext|>, or its BOS */
        if (!hf && bpe_eot(b) >= 0 && append_id(out, bpe_eot(b), e)) {
            free(text);
            return -1;
        }
        size_t before = out->n;
        int rc = hf ? bpe_encode_doc(b, text, len, &out->ids, &out->n, &out->cap, e)
                    : bpe_encode(b, text, len, &out->ids, &out->n, &out->cap, e);
        free(text);
        if (rc) return err_wrap(e, "%s", paths[i]);
        text_ids += out->n - before;
        if (hf && bpe_eot(b) >= 0 && (out->n == before || out->ids[out->n - 1] != bpe_eot(b)) &&
            append_id(out, bpe_eot(b), e))
            return -1;
    }
    if (!text_ids)
        return err_set(e, "prepare: input is empty (%d file(s), first %s): nothing to tokenize",
                       n_paths, paths[0]);
    return 0;
}

int llmc_write(const char *path, const uint32_t *tokens, uint64_t n, Err *e)
{
    if (n > INT32_MAX)
        return err_set(e, "%s: %" PRIu64 " tokens: an llm.c file holds at most %d", path, n, INT32_MAX);
    unsigned char h[LLMC_HEADER_BYTES] = {0};
    le_put32(h, LLMC_MAGIC);
    le_put32(h + 4, LLMC_VERSION);
    le_put32(h + 8, (uint32_t)n);
    AtomicFile af;
    if (atomic_open(&af, path, e) || atomic_write(&af, h, sizeof h, e)) return -1;
    unsigned char buf[16384];
    for (uint64_t i = 0; i < n;) {
        size_t k = 0;
        for (; i < n && k + 2 <= sizeof buf; i++, k += 2) le_put16(buf + k, (uint16_t)tokens[i]);
        if (atomic_write(&af, buf, k, e)) return -1;
    }
    return atomic_commit(&af, e);
}

/* --mark-documents' mask: every token counted, each document's first one
 * (starts[0..n_docs)) an example's start. NULL when out of memory. */
static uint8_t *document_mask(uint64_t n, const size_t *starts, int n_docs)
{
    uint8_t *mask = malloc(n ? n : 1);
    if (!mask) return NULL;
    memset(mask, TOKMASK_COUNTS, n);
    for (int i = 0; i < n_docs; i++)
        if (starts[i] < n) mask[starts[i]] |= TOKMASK_START;
    return mask;
}

/* The split for MPTOKENS: the last round(val_fraction * n) tokens. */
static int write_tokens(const PrepareBpe *p, const uint32_t *t, uint64_t n, int vocab,
                        const size_t *starts, int n_docs, Err *e)
{
    if (p->format == PREP_LLMC) return llmc_write(p->out_path, t, n, e);
    uint64_t n_val = (uint64_t)((double)n * p->val_fraction + 0.5);
    if (n_val == 0 || n_val >= n)
        return err_set(e, "prepare: val fraction %g of %" PRIu64 " tokens leaves an empty %s split",
                       p->val_fraction, n, n_val == 0 ? "val" : "train");
    if (!p->mark_docs) return tokfile_write32(p->out_path, t, n - n_val, n_val, vocab, e);
    uint8_t *mask = document_mask(n, starts, n_docs);
    if (!mask) return err_set(e, "prepare: out of memory for the mask of %" PRIu64 " tokens", n);
    int rc = tokfile_write_masked(p->out_path, t, mask, n - n_val, n_val, vocab, e);
    free(mask);
    return rc;
}

static int check_vocab(const PrepareBpe *p, int vocab, Err *e)
{
    if (p->format == PREP_LLMC && vocab > LLMC_VOCAB)
        return err_set(e, "%s: the tokenizer has %d tokens; llm.c files hold GPT-2's %d", p->tokenizer,
                       vocab, LLMC_VOCAB);
    return 0;
}

int prepare_bpe_files(const PrepareBpe *p, const char *const *paths, int n_paths, Err *e)
{
    if (n_paths < 1) return err_set(e, "prepare: no input text files given");
    if (p->format != PREP_LLMC && !(p->val_fraction > 0.0 && p->val_fraction < 1.0))
        return err_set(e, "prepare: val fraction %g must be strictly between 0 and 1", p->val_fraction);
    Bpe *b = bpe_load(p->tokenizer, e);
    if (!b) return -1;
    IdList ids = {0};
    int vocab = bpe_vocab_size(b);
    size_t *starts = malloc((size_t)n_paths * sizeof *starts);
    int rc = !starts ? err_set(e, "prepare: out of memory")
             : check_vocab(p, vocab, e) ||
                     encode_files(b, bpe_is_hf(b), paths, n_paths, &ids, starts, e)
                 ? -1
                 : 0;
    bpe_free(b);
    /* ids are int (>= 0) and as wide as uint32_t: the same array, read unsigned */
    if (!rc)
        rc = write_tokens(p, (const uint32_t *)(const void *)ids.ids, ids.n, vocab, starts, n_paths, e);
    free(ids.ids);
    free(starts);
    return rc;
}
