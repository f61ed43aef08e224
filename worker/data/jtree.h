#ifndef MPITRAIN_JTREE_H
#define MPITRAIN_JTREE_H
/* A JSON document as a tree, for files whose meaning is in their nesting
 * (Hugging Face's tokenizer.json: a pipeline of typed components, a vocab
 * object of 150k entries, 280k merges). base/json.h reads flat objects and
 * hands nested values over as text; this reads the whole document once.
 * Strings are unescaped (UTF-8, may hold NUL: use the length); every node
 * keeps its offset in the text for "file:line:" messages. */
#include <stddef.h>
#include <stdint.h>
#include "base/err.h"

typedef enum { JT_NULL, JT_BOOL, JT_NUM, JT_STR, JT_ARR, JT_OBJ } JtType;

/* 32 bytes: Llama 3's tokenizer.json is 400k nodes. */
typedef struct Jt {
    uint32_t type;         /* JtType */
    uint32_t n;            /* JT_STR: bytes; JT_ARR, JT_OBJ: items */
    union {
        double num;        /* JT_NUM; JT_BOOL: 0 or 1 */
        const char *str;   /* JT_STR, NUL-terminated */
        struct Jt *items;  /* JT_ARR, JT_OBJ (members carry their key) */
    } v;
    const char *key;       /* a member of an object: its key, else NULL */
    uint32_t key_len;
    uint32_t at;           /* offset of the value in the text */
} Jt;

typedef struct JtDoc JtDoc;

/* Parses text[0..len) (under 4 GiB). Strings without escapes stay in text
 * (their closing quotes become NULs), which must outlive the tree. Errors
 * name `name` and the line. */
JtDoc *jt_parse(const char *name, char *text, size_t len, Err *e);
void jt_free(JtDoc *d);
const Jt *jt_root(const JtDoc *d);
/* The member `key` of an object, or NULL (also when o is not an object). */
const Jt *jt_get(const Jt *o, const char *key);
/* A string member's text, or NULL when absent, null or not a string. */
const char *jt_str(const Jt *o, const char *key);
/* Whether v is a string equal to s. */
int jt_is(const Jt *v, const char *s);
/* 1-based line of a node, for messages. */
int jt_line(const JtDoc *d, const Jt *v);

/* JSON Lines: fn for each line of the file that is not blank, with its tree
 * (freed when fn returns) and its 1-based line number; a line that is not
 * JSON is "path:LINE: not JSON: why". Stops at fn's first non-zero. */
typedef int (*JtLineFn)(void *ctx, const Jt *root, int line, Err *e);
int jt_each_line(const char *path, size_t max_bytes, JtLineFn fn, void *ctx, Err *e);

#endif
