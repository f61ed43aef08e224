#ifndef MPITRAIN_SAFETENSORS_H
#define MPITRAIN_SAFETENSORS_H
/* The .safetensors format (Hugging Face): an 8-byte little-endian header
 * length N, N bytes of JSON
 *   {"<name>":{"dtype":"F32","shape":[...],"data_offsets":[begin,end]},...,
 *    "__metadata__":{"format":"pt",...}}
 * padded with spaces to a multiple of 8, then the raw little-endian tensor
 * data; offsets are relative to the first byte after the header. */
#include <stdint.h>
#include "base/err.h"
#include "models/model.h"

/* Writes every tensor of m (in canonical order, names as in the model) as
 * F32, atomically: a failure leaves no file at path (and any old file as it
 * was). meta_kv holds n_meta_pairs key,value string pairs that go into
 * "__metadata__" after "format":"pt" (a "format" key in meta_kv is ignored). */
int safetensors_write(const char *path, const Model *m, const char *const *meta_kv,
                      int n_meta_pairs, Err *e);

/* Reads the JSON header of a .safetensors file into a malloc'd,
 * NUL-terminated string (caller frees) and the byte offset where the data
 * starts (8 + N). Checks the header length against the file size. */
int safetensors_read_header(const char *path, char **json_out, uint64_t *data_start, Err *e);

/* Header larger than this is refused (the reference implementation's limit). */
#define SAFETENSORS_MAX_HEADER (100u << 20)

#endif
