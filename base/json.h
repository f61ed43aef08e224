#ifndef MPITRAIN_JSON_H
#define MPITRAIN_JSON_H
/* The one JSON writer: every file the tree writes as JSON (metrics.jsonl,
 * summary.json, the --trace timeline, safetensors headers, plan --json) goes
 * through it, so there is one escaping rule and one way to spell a number.
 *
 *   JsonOut j;
 *   json_init(&j, NULL);                 // NULL: in memory; a FILE*: streamed
 *   json_begin_object(&j);
 *   json_int(json_key(&j, "step"), 5);   // json_key returns j for chaining
 *   json_double(json_key(&j, "loss"), 2.5);
 *   json_end_object(&j);
 *   if (json_finish(&j)) ... j.error names the failure ...
 *   use j.buf / j.len (in memory), then json_free(&j).
 *
 * Commas are automatic. Strings: '"' and '\\' are escaped, control bytes
 * below 0x20 become \n \t \r \b \f or \u00xx, every other byte (UTF-8
 * included) passes through. Numbers: NaN and +-inf are written as null by
 * every number function (JSON has no spelling for them).
 *
 * Errors (out of memory, a failed write, misuse such as a value in an object
 * without a key) are sticky: the first one is kept in j.error, later calls
 * do nothing, and json_finish returns -1. */
#include <stdint.h>
#include <stdio.h>
#include "base/err.h"

#define JSON_MAX_DEPTH 32

typedef struct {
    char *buf;           /* the text not yet flushed, NUL-terminated */
    size_t len, cap;
    FILE *sink;          /* streamed to when buf grows large, or NULL */
    const char *error;   /* the first failure, NULL while all is well */
    int depth;
    int after_key;       /* a key was written: its value comes next */
    int newline;         /* a line break is due before the next token */
    char open[JSON_MAX_DEPTH];           /* '{' or '[' per level */
    unsigned char items[JSON_MAX_DEPTH]; /* the level has an item: comma next */
} JsonOut;

/* sink NULL: the whole text stays in j.buf. Else it is written to sink in
 * chunks as it grows (for big outputs like traces) and by json_finish. */
void json_init(JsonOut *j, FILE *sink);
/* Checks the document is complete (every container closed), writes a due
 * line break and, with a sink, everything still buffered. 0, or -1 with
 * j.error set. */
int json_finish(JsonOut *j);
void json_free(JsonOut *j);

void json_begin_object(JsonOut *j);
void json_end_object(JsonOut *j);
void json_begin_array(JsonOut *j);
void json_end_array(JsonOut *j);
/* The key of the next value in an object. */
JsonOut *json_key(JsonOut *j, const char *key);

void json_str(JsonOut *j, const char *s);
void json_int(JsonOut *j, long long v);
void json_uint(JsonOut *j, uint64_t v);
/* %.17g: round-trips every double exactly. */
void json_double(JsonOut *j, double v);
/* %.*g with `digits` significant digits (1..17). */
void json_sig(JsonOut *j, double v, int digits);
/* %.*f with `decimals` digits after the point (0..20). */
void json_fixed(JsonOut *j, double v, int decimals);
void json_bool(JsonOut *j, int v);
void json_null(JsonOut *j);
/* A line break before the next token, after its comma (JSON Lines rows,
 * one trace event per line). Whitespace only: the document means the same. */
void json_newline(JsonOut *j);

/* ---- reading: one flat object ---------------------------------------------
 * A config.json, a metrics.jsonl row: {"key": value, ...} with string,
 * number, true, false or null values and no nesting. fn gets each pair in
 * order: the value as text (a string unescaped, quoted = 1; a number or
 * true/false as written, quoted = 0; NULL for null) and its offset in text.
 * fn returns 0 to go on, or a positive code that stops the read and is
 * returned. Malformed text: -1, e says what was expected, *offset where. */
typedef int (*JsonPairFn)(void *ctx, const char *key, const char *value, int quoted,
                          size_t offset);
int json_read_flat(const char *text, JsonPairFn fn, void *ctx, size_t *offset, Err *e);
/* The same for an object whose values may nest (a safetensors header, a
 * Hugging Face config.json): an object or array value is handed to fn as
 * its raw text with quoted = JSON_RAW, to be read in turn with
 * json_read_object or json_read_ints. */
#define JSON_RAW 2
int json_read_object(const char *text, JsonPairFn fn, void *ctx, size_t *offset, Err *e);
/* An array of integers ("[3, 4]") into out (at most max); *n = count. */
int json_read_ints(const char *text, long long *out, int max, int *n, Err *e);
/* The four hex digits after a "\u" at *p (before end), joined with a
 * following "\uDCxx" when they are a high surrogate: *cp gets the code
 * point and *p moves past. Returns NULL, or what is wrong (a lone or
 * unpaired surrogate, a bad digit). Every JSON reader of the tree decodes
 * escapes here. */
const char *json_unicode_escape(const char **p, const char *end, unsigned *cp);
/* The 1-based line of an offset in text (for "file:line:" messages). */
int json_line_of(const char *text, size_t offset);

#endif
