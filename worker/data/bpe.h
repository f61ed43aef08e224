#ifndef MPITRAIN_BPE_H
#define MPITRAIN_BPE_H
/* The BPE tokenizers mpitrain reads, behind one API. A tokenizer directory
 * holds one of:
 *   Hugging Face tokenizers: tokenizer.json (+ tokenizer_config.json)
 *   GPT-2, Hugging Face:     vocab.json   + merges.txt
 *   GPT-2, OpenAI:           encoder.json + vocab.bpe
 * tokenizer.json wins when a directory has it and a pair (Qwen's ships
 * both, and only tokenizer.json says how its text is split), unless it is
 * GPT-2's own pipeline (a GPT-2 directory from the Hub): then the pair is
 * read, as mpitrain always read GPT-2's.
 *
 * GPT-2's pairs: the same token ids as tiktoken's `gpt2` encoding. Text is
 * split by GPT-2's pre-tokenization pattern (PCRE2, Unicode \p{L}/\p{N}
 * and a look-ahead for runs of spaces); each piece's bytes are mapped to
 * the printable "byte alphabet" and merged by rank. <|endoftext|> in the
 * text is ordinary text (as tiktoken's encode_ordinary).
 *
 * tokenizer.json: the ids of Hugging Face tokenizers' encode. Added tokens
 * (<|begin_of_text|>, <s>, ...) are matched in the text first (longest
 * first); the text between them is normalized (NFC, Prepend, Replace),
 * pre-tokenized (Split by a PCRE2 pattern, ByteLevel, Metaspace) and
 * merged by the merges list (byte_fallback, unk_token, ignore_merges). Any
 * component or option mpitrain does not run is refused by name when the
 * file is loaded (docs/tokenizers.md lists what is read).
 *
 * The end-of-text token is bpe_eot(): <|endoftext|> of GPT-2's pairs,
 * tokenizer_config.json's eos_token. */
#include <stddef.h>
#include <stdint.h>
#include "base/err.h"

typedef struct Bpe Bpe;

/* Loads the tokenizer files found in dir (tokenizer.json, else either pair;
 * HF's preferred when both are there). Errors name the file and what is
 * wrong with it (line of merges.txt, token of vocab.json, the component of
 * tokenizer.json). */
Bpe *bpe_load(const char *dir, Err *e);
void bpe_free(Bpe *b);
/* Tokens in the vocabulary: one more than the largest id (50257 for GPT-2;
 * tokenizer.json's may leave holes, ids no token has). */
int bpe_vocab_size(const Bpe *b);
/* Whether the tokenizer is tokenizer.json's (else GPT-2's file pair). */
int bpe_is_hf(const Bpe *b);
/* The end-of-text id (<|endoftext|>, eos_token), or -1 when there is none. */
int bpe_eot(const Bpe *b);
/* The beginning-of-text id tokenizer_config.json names (bos_token), or -1. */
int bpe_bos(const Bpe *b);
/* Appends the ids of text[0..n) to *ids (realloc'd; *n_ids grows, *cap is its
 * capacity), without the special tokens a document gets (bpe_encode_doc).
 * GPT-2's pairs encode invalid UTF-8 byte by byte, as tiktoken does. */
int bpe_encode(const Bpe *b, const char *text, size_t n, int **ids, size_t *n_ids, size_t *cap,
               Err *e);
/* bpe_encode with the ids a whole text gets before and after it, as
 * tokenizers' encode(add_special_tokens=True): tokenizer.json's
 * post_processor template (Llama's BOS), else tokenizer_config.json's
 * add_bos_token / add_eos_token; nothing for GPT-2's pairs. */
int bpe_encode_doc(const Bpe *b, const char *text, size_t n, int **ids, size_t *n_ids, size_t *cap,
                   Err *e);
/* The text of ids (malloc'd into *out): tokenizers' decode (special tokens
 * kept) through tokenizer.json's decoder; the tokens' bytes back to back
 * for GPT-2's pairs. An id outside the vocabulary is an error. */
int bpe_decode(const Bpe *b, const int *ids, size_t n, unsigned char **out, size_t *len, Err *e);
/* The bytes of token id on its own (not NUL-terminated; may be part of a
 * UTF-8 character): GPT-2's raw bytes; tokenizer.json's token through the
 * decoder's per-token steps (no Strip, no first-token rule); NULL when id
 * is outside the vocabulary. bpe_decode is exact where this is not. */
const unsigned char *bpe_token_bytes(const Bpe *b, int id, size_t *len);
/* bpe_load, but only if the files may be copied beside a model: neither
 * is a symbolic link that leads out of dir. */
Bpe *bpe_load_copyable(const char *dir, Err *e);
/* Copies the tokenizer files of src_dir (tokenizer.json and its
 * tokenizer_config.json when there, else whichever pair is there) into
 * dst_dir (created), atomically per file, each keeping its mode (never
 * wider), if they load (bpe_load_copyable); errors name the file. */
int bpe_copy_files(const char *src_dir, const char *dst_dir, Err *e);
/* The same under Hugging Face's names (tokenizer.json as it is; a pair as
 * vocab.json + merges.txt, merges.txt as HF's GPT2Tokenizer reads it). */
int bpe_export_hf(const char *src_dir, const char *dst_dir, Err *e);
/* Whether dir holds tokenizer.json or a file pair (without loading it). */
int bpe_present(const char *dir);
/* Whether the pattern runs JIT-compiled (else PCRE2's interpreter: the same
 * pieces, slower; MPITRAIN_BPE_NO_JIT=1 in the environment forces it). */
int bpe_uses_jit(const Bpe *b);

/* Where a checkpoint keeps the tokenizer it was trained with: the
 * subdirectory "tokenizer" of its step directory. */
#define CKPT_TOKENIZER_SUBDIR "tokenizer"
/* The tokenizer a checkpoint's text goes through: override's when given,
 * else the step directory's own (CKPT_TOKENIZER_SUBDIR); *b NULL for a
 * byte-level model (vocab <= 256) that has none. A larger vocabulary
 * without one is an error that says what to pass. */
int bpe_for_ckpt(const char *step_dir, const char *override, int vocab, Bpe **b, Err *e);

#endif
