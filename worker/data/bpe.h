#ifndef MPITRAIN_BPE_H
#define MPITRAIN_BPE_H
/* GPT-2's byte-level BPE tokenizer: the same token ids as tiktoken's `gpt2`
 * encoding. It reads either file pair of the same vocabulary:
 *   Hugging Face:  vocab.json   + merges.txt
 *   OpenAI:        encoder.json + vocab.bpe
 * Text is first split by GPT-2's pre-tokenization pattern (PCRE2, Unicode
 * \p{L}/\p{N} and a look-ahead for runs of spaces); each piece's bytes are
 * mapped to the printable "byte alphabet" and merged by rank.
 * <|endoftext|> in the text is ordinary text (as tiktoken's encode_ordinary);
 * the end-of-text token is bpe_eot(). */
#include <stddef.h>
#include <stdint.h>
#include "base/err.h"

typedef struct Bpe Bpe;

/* Loads the tokenizer files found in dir (either pair; HF's preferred when
 * both are there). Errors name the file and what is wrong with it (line of
 * merges.txt, token of vocab.json). */
Bpe *bpe_load(const char *dir, Err *e);
void bpe_free(Bpe *b);
/* Tokens in the vocabulary (50257 for GPT-2). */
int bpe_vocab_size(const Bpe *b);
/* The id of <|endoftext|>, or -1 when the vocabulary has none. */
int bpe_eot(const Bpe *b);
/* Appends the ids of text[0..n) to *ids (realloc'd; *n_ids grows, *cap is its
 * capacity). Invalid UTF-8 is encoded byte by byte, as tiktoken does. */
int bpe_encode(const Bpe *b, const char *text, size_t n, int **ids, size_t *n_ids, size_t *cap,
               Err *e);
/* The raw bytes of token id (not NUL-terminated; may be part of a UTF-8
 * character); NULL when id is outside the vocabulary. */
const unsigned char *bpe_token_bytes(const Bpe *b, int id, size_t *len);
/* bpe_load, but only if the files may be copied beside a model: neither
 * is a symbolic link that leads out of dir. */
Bpe *bpe_load_copyable(const char *dir, Err *e);
/* Copies the tokenizer files of src_dir (whichever pair is there) into
 * dst_dir (created), atomically per file, each keeping its mode (never
 * wider), if they load (bpe_load_copyable); errors name the file. */
int bpe_copy_files(const char *src_dir, const char *dst_dir, Err *e);
/* The same under Hugging Face's names (vocab.json + merges.txt, whichever
 * pair src_dir holds), merges.txt as HF's GPT2Tokenizer reads it. */
int bpe_export_hf(const char *src_dir, const char *dst_dir, Err *e);
/* Whether dir holds a tokenizer file pair (without loading it). */
int bpe_present(const char *dir);
/* Whether the pattern runs JIT-compiled (else PCRE2's interpreter: the same
 * pieces, slower; MPITRAIN_BPE_NO_JIT=1 in the environment forces it). */
int bpe_uses_jit(const Bpe *b);

/* Where a checkpoint keeps the tokenizer it was trained with: the
 * subdirectory "tokenizer" of its step directory. */
#define CKPT_TOKENIZER_SUBDIR "tokenizer"

#endif
