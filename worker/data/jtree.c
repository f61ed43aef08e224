/* JSON text -> a tree (jtree.h). One pass: the items of an array or object
 * gather on a scratch stack, and a finished container moves them into a
 * block of the node arena. A string without escapes stays where it is in
 * the text, its closing quote overwritten by the NUL, so a 10 MB vocabulary
 * is not copied; one with escapes is unescaped into a buffer as long as the
 * text (no string grows when unescaped; only the pages used are touched).
 * Newlines of the text stay where they were: "file:line" holds. */
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/json.h"
#include "worker/data/jtree.h"

#define JT_MAX_DEPTH 64
#define JT_BLOCK_NODES (1u << 16)

typedef struct Block {
    struct Block *next;
    size_t used, cap;
    Jt nodes[];
} Block;

struct JtDoc {
    const char *text;
    size_t len;
    Jt root;
    char *strings;   /* unescaped strings, back to back (allocated at the first) */
    size_t n_strings;
    Block *blocks;
};

typedef struct {
    JtDoc *d;
    const char *name, *p, *end;
    char *out;       /* where the string being read is unescaped to */
    Jt *stack;       /* items of the open containers */
    size_t n, cap;
    Err *e;
} Parser;

static int fail(Parser *ps, const char *what)
{
    size_t at = (size_t)(ps->p - ps->d->text);
    return err_set(ps->e, "%s:%d: %s%s", ps->name, json_line_of(ps->d->text, at),
                   ps->p >= ps->end ? "the file ends early: " : "", what);
}

static void ws(Parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t'))
        ps->p++;
}

static Jt *arena_take(JtDoc *d, size_t n)
{
    Block *b = d->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > JT_BLOCK_NODES ? n : JT_BLOCK_NODES;
        Block *nb = malloc(sizeof *nb + cap * sizeof(Jt));
        if (!nb) return NULL;
        nb->next = d->blocks;
        nb->used = 0;
        nb->cap = cap;
        d->blocks = b = nb;
    }
    Jt *out = b->nodes + b->used;
    b->used += n;
    return out;
}

static int push(Parser *ps, const Jt *v)
{
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? 2 * ps->cap : 1024;
        Jt *s = realloc(ps->stack, cap * sizeof *s);
        if (!s) return err_set(ps->e, "%s: out of memory", ps->name);
        ps->stack = s;
        ps->cap = cap;
    }
    ps->stack[ps->n++] = *v;
    return 0;
}

static void put_utf8(Parser *ps, unsigned cp)
{
    unsigned char *o = (unsigned char *)ps->out;
    if (cp < 0x80) {
        *o++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *o++ = (unsigned char)(0xC0 | cp >> 6);
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (unsigned char)(0xE0 | cp >> 12);
        *o++ = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (unsigned char)(0xF0 | cp >> 18);
        *o++ = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
        *o++ = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    }
    ps->out = (char *)o;
}

/* A string at ps->p (its quote): *s and *n get the unescaped text. */
static int string_in(Parser *ps, const char **s, uint32_t *n)
{
    char *plain = (char *)++ps->p;
    const char *q = plain;
    while (q < ps->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20) q++;
    if (q < ps->end && *q == '"') {
        *(char *)q = 0;
        *s = plain;
        *n = (uint32_t)(q - plain);
        ps->p = q + 1;
        return 0;
    }
    JtDoc *d = ps->d;
    if (!d->strings && !(d->strings = malloc(d->len + 1)))
        return err_set(ps->e, "%s: out of memory", ps->name);
    char *start = ps->out = d->strings + d->n_strings;
    for (;;) {
        q = ps->p;
        while (q < ps->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20) q++;
        memcpy(ps->out, ps->p, (size_t)(q - ps->p));
        ps->out += q - ps->p;
        ps->p = q;
        if (q >= ps->end) return fail(ps, "inside a string");
        if (*q == '"') break;
        if ((unsigned char)*q < 0x20) return fail(ps, "a control character inside a string");
        if (++ps->p >= ps->end) return fail(ps, "inside a string escape");
        const char *plain = strchr("\"\\/bfnrt", *ps->p);
        if (plain && *ps->p) {
            *ps->out++ = "\"\\/\b\f\n\r\t"[plain - "\"\\/bfnrt"];
            ps->p++;
        } else if (*ps->p == 'u') {
            unsigned cp;
            ps->p++;
            const char *why = json_unicode_escape(&ps->p, ps->end, &cp);
            if (why) return fail(ps, why);
            put_utf8(ps, cp);
        } else {
            return fail(ps, "an unknown string escape");
        }
    }
    ps->p++;
    *ps->out++ = 0;
    *s = start;
    *n = (uint32_t)(ps->out - start - 1);
    d->n_strings = (size_t)(ps->out - d->strings);
    return 0;
}

static int value_in(Parser *ps, Jt *v, int depth);

/* The items pushed since `base` become v's. */
static int close_container(Parser *ps, Jt *v, size_t base)
{
    size_t n = ps->n - base;
    v->n = (uint32_t)n;
    v->v.items = n ? arena_take(ps->d, n) : NULL;
    if (n && !v->v.items) return err_set(ps->e, "%s: out of memory", ps->name);
    if (n) memcpy(v->v.items, ps->stack + base, n * sizeof(Jt));
    ps->n = base;
    return 0;
}

static int items_in(Parser *ps, Jt *v, int depth, char close)
{
    size_t base = ps->n;
    int obj = close == '}';
    ps->p++;
    ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return close_container(ps, v, base);
    }
    for (;;) {
        Jt item = {0};
        ws(ps);
        if (obj) {
            if (ps->p >= ps->end || *ps->p != '"') return fail(ps, "expected a \"key\"");
            if (string_in(ps, &item.key, &item.key_len)) return -1;
            ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') return fail(ps, "expected ':' after a key");
            ps->p++;
            ws(ps);
        }
        const char *key = item.key;
        uint32_t key_len = item.key_len;
        if (value_in(ps, &item, depth + 1)) return -1;
        item.key = key;
        item.key_len = key_len;
        if (push(ps, &item)) return -1;
        ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) break;
        return fail(ps, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    ps->p++;
    return close_container(ps, v, base);
}

static int word_in(Parser *ps, const char *word, JtType type, double num, Jt *v)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n)) return fail(ps, "expected a value");
    ps->p += n;
    v->type = type;
    v->v.num = num;
    return 0;
}

static int number_in(Parser *ps, Jt *v)
{
    char buf[64];
    size_t n = 0;
    while (ps->p + n < ps->end && n < sizeof buf - 1 && strchr("+-0123456789.eE", ps->p[n]) &&
           ps->p[n])
        n++;
    memcpy(buf, ps->p, n);
    buf[n] = 0;
    char *end;
    v->v.num = strtod(buf, &end);
    if (!n || end != buf + n) return fail(ps, "expected a value");
    v->type = JT_NUM;
    ps->p += n;
    return 0;
}

static int value_in(Parser *ps, Jt *v, int depth)
{
    if (depth > JT_MAX_DEPTH) return fail(ps, "nested too deep");
    ws(ps);
    v->at = (uint32_t)(ps->p - ps->d->text);
    if (ps->p >= ps->end) return fail(ps, "expected a value");
    switch (*ps->p) {
    case '{': v->type = JT_OBJ; return items_in(ps, v, depth, '}');
    case '[': v->type = JT_ARR; return items_in(ps, v, depth, ']');
    case '"': v->type = JT_STR; return string_in(ps, &v->v.str, &v->n);
    case 't': return word_in(ps, "true", JT_BOOL, 1, v);
    case 'f': return word_in(ps, "false", JT_BOOL, 0, v);
    case 'n': return word_in(ps, "null", JT_NULL, 0, v);
    default: return number_in(ps, v);
    }
}

JtDoc *jt_parse(const char *name, char *text, size_t len, Err *e)
{
    if (len >= UINT32_MAX) {
        err_set(e, "%s: %zu bytes: too large", name, len);
        return NULL;
    }
    JtDoc *d = calloc(1, sizeof *d);
    if (!d) {
        err_set(e, "%s: out of memory", name);
        return NULL;
    }
    d->text = text;
    d->len = len;
    Parser ps = {.d = d, .name = name, .p = text, .end = text + len, .e = e};
    int rc = value_in(&ps, &d->root, 0);
    ws(&ps);
    if (!rc && ps.p < ps.end) rc = fail(&ps, "text after the document");
    free(ps.stack);
    if (rc) {
        jt_free(d);
        return NULL;
    }
    return d;
}

void jt_free(JtDoc *d)
{
    if (!d) return;
    for (Block *b = d->blocks, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(d->strings);
    free(d);
}

const Jt *jt_root(const JtDoc *d) { return &d->root; }

const Jt *jt_get(const Jt *o, const char *key)
{
    if (!o || o->type != JT_OBJ) return NULL;
    size_t n = strlen(key);
    for (uint32_t i = 0; i < o->n; i++)
        if (o->v.items[i].key_len == n && !memcmp(o->v.items[i].key, key, n)) return &o->v.items[i];
    return NULL;
}

const char *jt_str(const Jt *o, const char *key)
{
    const Jt *v = jt_get(o, key);
    return v && v->type == JT_STR ? v->v.str : NULL;
}

int jt_is(const Jt *v, const char *s)
{
    return v && v->type == JT_STR && v->n == strlen(s) && !memcmp(v->v.str, s, v->n);
}

int jt_line(const JtDoc *d, const Jt *v) { return json_line_of(d->text, v->at); }

int jt_each_line(const char *path, size_t max_bytes, JtLineFn fn, void *ctx, Err *e)
{
    void *data;
    size_t len;
    if (read_file(path, max_bytes, &data, &len, e)) return -1;
    char *text = data;
    int line = 0, rc = 0;
    for (size_t at = 0; !rc && at < len;) {
        char *nl = memchr(text + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - text) : len;
        line++;
        size_t a = at;
        while (a < end && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r')) a++;
        if (a < end) {
            JtDoc *d = jt_parse(path, text + a, end - a, e);
            if (!d) { /* the parser saw the line alone: "path:1: why" */
                char why[sizeof e->msg];
                const char *rest = strstr(e->msg + strlen(path), ": ");
                snprintf(why, sizeof why, "%s", rest ? rest + 2 : e->msg);
                rc = err_set(e, "%s:%d: not JSON: %s", path, line, why);
            } else {
                rc = fn(ctx, jt_root(d), line, e);
                jt_free(d);
            }
        }
        at = end + 1;
    }
    free(data);
    return rc ? -1 : 0;
}
