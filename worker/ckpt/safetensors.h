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
#include "base/fileio.h"
#include "base/json.h"
#include "models/model.h"

/* One tensor to write: shape[0] x shape[1] (ndim 1: shape[0]) f32 values.
 * With transpose, data holds the shape[1] x shape[0] matrix and its
 * transpose is written (a torch Linear's (out,in) as a Conv1D's (in,out)). */
typedef struct {
    const char *name;
    int ndim;
    int shape[2];
    const float *data;
    int transpose;
} StTensor;

/* Writes n tensors in the given order as dtype "F32", "F16" or "BF16"
 * (narrowed with round to nearest even), atomically; meta_kv as below. */
int safetensors_write_list(const char *path, const StTensor *t, int n, const char *dtype,
                           const char *const *meta_kv, int n_meta_pairs, Err *e);

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

/* The parsed header: one entry per tensor (not __metadata__), every
 * range checked against the file. */
#define ST_MAX_DIMS 4
#define ST_MAX_NAME 128
typedef struct {
    char name[ST_MAX_NAME];
    char dtype[8];        /* "F32", "F16", "BF16", ... as written */
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t begin, end;  /* absolute byte offsets in the file */
    int file;             /* which of the index's files holds it */
} StEntry;

/* The tensors of one file, or of a sharded model's files. */
typedef struct {
    StEntry *t;
    int n;
    char (*files)[PATH_BUF]; /* the files' paths */
    int n_files;
} StIndex;

/* Reads and checks the header: each entry's dtype known, its byte count
 * numel x dtype size, its range inside the file, and the file exactly as
 * long as the data (a shorter one is truncated). Errors name the tensor. */
int safetensors_read_index(const char *path, StIndex *ix, Err *e);
void safetensors_index_free(StIndex *ix);

/* A model's weights in dir: its model.safetensors, or else the shards its
 * model.safetensors.index.json names ({"metadata":{"total_size":N},
 * "weight_map":{"<tensor>":"<shard file>",...}}), each read as above; every
 * tensor the map names must be in the shard it names, every tensor of a
 * shard in the map, none twice. Errors name the file and the tensor. */
int safetensors_open_model(const char *dir, StIndex *ix, Err *e);
#define ST_SINGLE_NAME "model.safetensors"
#define ST_INDEX_NAME "model.safetensors.index.json"
/* A Hugging Face JSON file's text (config.json, the index), NUL-terminated,
 * at most max bytes; a NUL inside is refused. Caller frees. */
int hf_json_file(const char *path, size_t max, char **out, Err *e);
/* Writes dir/name atomically: the JSON fill(j, ctx) builds. */
int hf_write_json(const char *dir, const char *name, void (*fill)(JsonOut *, const void *),
                  const void *ctx, Err *e);
/* config.json's torch_dtype of a safetensors dtype: float32, float16, bfloat16. */
const char *hf_torch_dtype(const char *dtype);
/* "2 x 3" ("scalar" for none) */
void safetensors_shape_text(const StEntry *t, char *out, size_t n);
/* 1 when tensors a and b of ix hold the same shape and values, 0 when not,
 * -1 on a read error. */
int safetensors_same_values(const StIndex *ix, const StEntry *a, const StEntry *b, Err *e);
/* The path of the file that holds t. */
const char *safetensors_file_of(const StIndex *ix, const StEntry *t);
const StEntry *safetensors_find(const StIndex *ix, const char *name);
uint64_t safetensors_numel(const StEntry *t);
/* n little-endian values of dtype ("F32", "F16" or "BF16") at byte offset
 * of path, as f32 (the 2-byte types widened exactly); errors name `what`. */
int read_floats_at(const char *path, uint64_t offset, uint64_t n, const char *dtype,
                   const char *what, float *out, Err *e);
/* The entry's values as f32 (F32 as is; F16 and BF16 widened exactly). */
int safetensors_read_f32(const char *path, const StEntry *t, float *out, Err *e);
/* The same from whichever of the index's files holds t. */
int safetensors_entry_f32(const StIndex *ix, const StEntry *t, float *out, Err *e);

/* Bytes per value of a dtype the writers take (F32, F16, BF16). */
size_t safetensors_dtype_bytes(const char *dtype);
/* Writes the tensors into dir as HF's save_pretrained does: one
 * model.safetensors when they fit max_shard_bytes, else
 * model-0000k-of-0000N.safetensors, each at most max_shard_bytes unless one
 * tensor alone is larger, in the given order, with model.safetensors.index.json
 * (total_size: the tensors' bytes; the weight_map sorted by name). Each file
 * atomically; the index after the shards; what an earlier export left of
 * another form (a single file, an index, shards of another count) is
 * removed. */
int safetensors_write_model(const char *dir, const StTensor *t, int n, const char *dtype,
                            const char *const *meta_kv, int n_meta_pairs,
                            uint64_t max_shard_bytes, Err *e);

/* Header larger than this is refused (the reference implementation's limit). */
#define SAFETENSORS_MAX_HEADER (100u << 20)

#endif
