#ifndef MPITRAIN_DATA_H
#define MPITRAIN_DATA_H
/* Token data: the binary token file (see docs/token-format.md), the
 * per-rank batch loader, and `mpitrain prepare` (byte-level tokenization).
 *
 * MPTOKENS files: a 64-byte header (magic, version, token_bytes, vocab,
 * header_bytes, n_train, n_val, CRC-32C), then little-endian tokens.
 * Version 1 holds 1- or 2-byte tokens (vocab <= 65536); version 2 adds
 * 4-byte tokens for larger vocabularies (Llama 3's 128256, Qwen's 151936;
 * ids up to 2^31-1, int in memory). Writers write version 1 whenever it
 * suffices, so GPT-2's files are unchanged; readers take both. */
#include <stddef.h>
#include <stdint.h>
#include "base/err.h"
#include "base/fileio.h"

/* How a file was read (TokenFile.format). */
enum { TOKFMT_NATIVE = 0, TOKFMT_LLMC = 1, TOKFMT_NANOGPT = 2 };

/* How to read a file (--data-format; choice indexes of the config table).
 * AUTO tells MPTOKENS and llm.c files apart by their magic. A nanoGPT file
 * (raw uint16 tokens, no header) has no magic, so it is never guessed: any
 * file would pass for one. */
typedef enum { DATA_AUTO = 0, DATA_MPTOKENS = 1, DATA_LLMC = 2, DATA_NANOGPT = 3 } DataFormat;

/* Which splits a file supplies: both (one --data file), or only one (--data
 * and --val-data). */
typedef enum { TOKUSE_BOTH = 0, TOKUSE_TRAIN = 1, TOKUSE_VAL = 2 } TokUse;

#define TOKFILE_MAGIC "MPTOKENS"
#define TOKFILE_VERSION 1      /* token_bytes 1 or 2 */
#define TOKFILE_VERSION_WIDE 2 /* token_bytes 4 too: vocabularies above 65536 (Llama 3, Qwen) */
#define TOKFILE_VERSION_MASKED 3 /* version 2 + a loss mask: one byte per token after them */
/* A mask byte's bits (docs/token-format.md): */
#define TOKMASK_COUNTS 1u /* the token is a target the loss counts (a response's) */
#define TOKMASK_START 2u  /* the token begins an example (packing's boundaries) */
#define TOKFILE_HEADER_BYTES 64
#define LLMC_MAGIC 20240520
#define LLMC_VERSION 1
#define LLMC_HEADER_BYTES 1024 /* 256 int32 */
#define LLMC_VOCAB 50257       /* llm.c version 1 files hold GPT-2 tokens */

typedef enum { SPLIT_TRAIN = 0, SPLIT_VAL = 1 } DataSplit;

typedef struct {
    char path[PATH_LEN];
    int token_bytes;      /* 1, 2 or 4 */
    int vocab;            /* 0 for nanoGPT files: they record none */
    uint64_t n_train, n_val;
    int format;           /* TOKFMT_* */
    int derived_split;    /* the val split is mpitrain's (last 10%), not the file's */
    void *map; size_t map_len;      /* mmap of whole file */
    size_t header_bytes;            /* where the tokens start in the file */
    const unsigned char *tokens;    /* first token (train split starts here) */
    const uint8_t *mask;            /* version 3: a byte per token (TOKMASK_*), else NULL */
    uint32_t max_token;             /* the largest token of the file */
} TokenFile;

/* mmap `path` read-only and validate its header and size. Native files carry
 * their split; for llm.c and nanoGPT files n_val = n_tokens / 10 (the last
 * 10%), which the loader widens to T+1 tokens when that is needed and
 * possible. Every token is checked against the vocab the file declares (the
 * header's; GPT-2's for llm.c; nanoGPT files declare none, so their caller
 * checks with tokfile_check_vocab). On error f is left closed (safe to
 * close). tokfile_open is tokfile_open_as(f, path, DATA_AUTO, TOKUSE_BOTH).
 *
 * With TOKUSE_VAL every token is validation (n_train = 0). With TOKUSE_TRAIN
 * a file without a split of its own (llm.c, nanoGPT) is all training; a
 * native file keeps its header's split, and its val tokens go unused. */
int tokfile_open(TokenFile *f, const char *path, Err *e);
int tokfile_open_as(TokenFile *f, const char *path, DataFormat fmt, TokUse use, Err *e);
void tokfile_close(TokenFile *f);
/* Every token of an open file is below `vocab`; else an error naming the
 * file, the split, the first bad token's offset in it and its value, and
 * `whose` vocabulary it is ("header", "the model's --vocab"). O(1) when the
 * file fits (the maximum is taken at open). */
int tokfile_check_vocab(const TokenFile *f, int vocab, const char *whose, Err *e);

/* Token i over the whole file: train tokens, then val tokens. */
static inline uint32_t tokfile_get(const TokenFile *f, uint64_t i)
{
    const unsigned char *p = f->tokens + i * (uint64_t)f->token_bytes;
    if (f->token_bytes == 4)
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return f->token_bytes == 1 ? p[0] : (uint32_t)p[0] | ((uint32_t)p[1] << 8);
}

/* Write a native token file atomically (temp + fsync + rename). token_bytes
 * is 1 if vocab <= 256, 2 if vocab <= 65536 (both version 1), else 4
 * (version 2); every token must be < vocab (1..65536 for tokfile_write,
 * 1..2^31-1 for tokfile_write32). */
int tokfile_write(const char *path, const uint16_t *tokens, uint64_t n_train,
                  uint64_t n_val, int vocab, Err *e);
int tokfile_write32(const char *path, const uint32_t *tokens, uint64_t n_train,
                    uint64_t n_val, int vocab, Err *e);
/* ... with a loss mask, n_train + n_val bytes (TOKMASK_*): version 3 */
int tokfile_write_masked(const char *path, const uint32_t *tokens, const uint8_t *mask,
                         uint64_t n_train, uint64_t n_val, int vocab, Err *e);

/* Batch loader. A global batch is `global_batch` sequences of T tokens; rank
 * r of `ranks` gets sequences [r*B/ranks, (r+1)*B/ranks). Sequence j of global
 * batch k reads window w = (k*global_batch + j) mod n_windows, n_windows =
 * (split_len - 1) / T; window w is split tokens [w*T, w*T+T]: inputs are the
 * first T, targets the last T (shuffled: see loader_shuffle). The global
 * batch does not depend on ranks. */
typedef struct {
    const TokenFile *file; DataSplit split; int T, global_batch, rank, ranks, local_batch;
    uint64_t split_start, split_len, n_windows;
    uint64_t shuffle_key;  /* 0: windows in file order; else loader_shuffle's */
} Loader;

int loader_init(Loader *l, const TokenFile *f, DataSplit split, int T, int global_batch,
                int rank, int ranks, Err *e);
/* From now on window w (of the n_windows) is read from place
 * permute_index(w mod n, n, key of the pass w / n) (base/hash.h): a random
 * order drawn from seed, a new one each pass over the split, every window
 * once a pass. It depends only on w, so every layout reads the single
 * rank's order. */
void loader_shuffle(Loader *l, uint64_t seed);
/* Fill inputs/targets (local_batch*T ints each) for global batch index k. */
void loader_batch(const Loader *l, uint64_t k, int *inputs, int *targets);
/* Fill inputs/targets (n*T ints each) with the n windows w0, w0+1, ...
 * (mod n_windows) of the split, whatever the rank: loader_batch is this
 * with w0 = the rank's first sequence of batch k. */
void loader_windows(const Loader *l, uint64_t w0, int n, int *inputs, int *targets);
/* Each input token's position in its example (models/ops.h DOC POSITIONS)
 * in the n windows from w0, for loader_windows' inputs: 0 at a window's
 * first token and at each token a masked file marks TOKMASK_START (an
 * example's first), else the previous token's + 1. A file without a mask
 * marks no examples: pos = t. loader_batch_positions: global batch k's, as
 * loader_batch loads it. */
void loader_positions(const Loader *l, uint64_t w0, int n, int *pos);
void loader_batch_positions(const Loader *l, uint64_t k, int *pos);
/* A masked file (version 3): a target whose mask byte lacks TOKMASK_COUNTS
 * is -1 (models' TARGET_IGNORED: no loss, no gradient). The targets the
 * loss counts in n windows from w0: n*T for a file without a mask. */
uint64_t loader_counted(const Loader *l, uint64_t w0, uint64_t n);
/* ... of global batch k: the whole batch, or this rank's share of it */
uint64_t loader_batch_counted(const Loader *l, uint64_t k, int whole);

/* `mpitrain prepare`: concatenate text files, byte-level tokenize (vocab 256,
 * token = byte value), the last round(val_fraction * total) bytes are the
 * validation split (0 < val_fraction < 1); writes a native file atomically.
 * mark_docs: a masked file (version 3) whose mask counts every token and
 * marks each file's first byte TOKMASK_START (a document: --doc-attention). */
int prepare_text_files(const char *const *paths, int n_paths, const char *out_path,
                       double val_fraction, int mark_docs, Err *e);
/* `mpitrain prepare --tokenizer DIR`: each text file is a document,
 * encoded with the tokenizer of DIR (worker/data/bpe.h): GPT-2's pairs put
 * <|endoftext|> before each; tokenizer.json's documents get the template's
 * tokens (BOS) and end with eos_token. The ids are written atomically:
 * PREP_MPTOKENS as a native file (vocabulary = the tokenizer's; 1, 2 or
 * 4-byte tokens as it needs) whose last
 * round(val_fraction * tokens) tokens are the validation split;
 * PREP_LLMC as llm.c's file (no split of its own: readers take the last
 * 10%; val_fraction unused). */
typedef enum { PREP_MPTOKENS = 0, PREP_LLMC = 1 } PrepFormat;
typedef struct {
    const char *tokenizer, *out_path;
    double val_fraction;
    PrepFormat format;
    int mark_docs;      /* PREP_MPTOKENS: a mask marking each document's first token
                           (GPT-2's <|endoftext|> before it, or its BOS), counting all */
} PrepareBpe;
int prepare_bpe_files(const PrepareBpe *p, const char *const *paths, int n_paths, Err *e);
/* Writes llm.c's token file (version 1: 256 int32 header of magic, version,
 * count; then uint16 tokens) atomically. */
int llmc_write(const char *path, const uint32_t *tokens, uint64_t n, Err *e);
/* Byte tokenizer: out[i] = (unsigned char)text[i]. */
void bytes_to_tokens(const char *text, size_t n, int *out);

#endif
