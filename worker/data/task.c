/* Multiple-choice task items into requests (worker/data/task.h). */
#include "worker/data/task.h"

#include <stdlib.h>
#include <string.h>

#include "worker/data/jtree.h"

#define TASK_MAX_BYTES ((size_t)1 << 32)
#define MAX_CHOICES 64

typedef struct {
    const Bpe *b;
    Task *t;
    size_t cap_ids, cap_req, cap_items;
    int *tmp; /* encode(context), thrown away but for its length */
    size_t tmp_n, tmp_cap;
} Reader;

static int encode(Reader *r, const char *s, size_t n, int **ids, size_t *len, size_t *cap, Err *e)
{
    if (r->b) return bpe_encode(r->b, s, n, ids, len, cap, e);
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < *len + n) c *= 2;
        int *p = realloc(*ids, c * sizeof *p);
        if (!p) return err_set(e, "task: out of memory");
        *ids = p;
        *cap = c;
    }
    for (size_t i = 0; i < n; i++) (*ids)[(*len)++] = (unsigned char)s[i];
    return 0;
}

static int grow(void **p, size_t *cap, size_t want, size_t each, Err *e)
{
    if (want <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < want) c *= 2;
    void *q = realloc(*p, c * each);
    if (!q) return err_set(e, "task: out of memory");
    *p = q;
    *cap = c;
    return 0;
}

static uint32_t utf8_chars(const char *s, size_t n)
{
    uint32_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* One request: the context's trailing blanks move to the choice (as
 * lm-evaluation-harness does), whole = encode(context + choice), and the
 * choice's tokens are whole's past encode(context)'s length. */
static int add_request(Reader *r, const char *ctx, size_t nc, const char *ch, size_t nh, Err *e)
{
    Task *t = r->t;
    size_t keep = nc;
    while (keep && strchr(" \t\n\r\f\v", ctx[keep - 1])) keep--; /* Python's rstrip() (ASCII) */
    char *joined = malloc(nc + nh + 1);
    if (!joined) return err_set(e, "task: out of memory");
    memcpy(joined, ctx, nc);
    memcpy(joined + nc, ch, nh);
    size_t before = 0, from = 0;
    r->tmp_n = 0;
    int rc = encode(r, ctx, keep, &r->tmp, &r->tmp_n, &r->tmp_cap, e);
    if (!rc) {
        from = (size_t)(t->n_req ? t->start[t->n_req] : 0);
        before = from;
        rc = encode(r, joined, nc + nh, &t->ids, &before, &r->cap_ids, e);
    }
    free(joined);
    if (rc) return -1;
    size_t whole = before - from, ctx_len = r->tmp_n;
    if (grow((void **)&t->start, &r->cap_req, t->n_req + 2, sizeof *t->start, e)) return -1;
    /* cont and chars grow with start: one capacity for the three */
    uint32_t *c1 = realloc(t->cont, r->cap_req * sizeof *c1);
    if (c1) t->cont = c1;
    uint32_t *c2 = c1 ? realloc(t->chars, r->cap_req * sizeof *c2) : NULL;
    if (!c1 || !c2) return err_set(e, "task: out of memory");
    t->chars = c2;
    t->start[t->n_req] = from;
    t->start[t->n_req + 1] = before;
    t->cont[t->n_req] = (uint32_t)(whole > ctx_len ? whole - ctx_len : 0);
    t->chars[t->n_req] = utf8_chars(ch, nh); /* the choice as written (the harness's len) */
    t->n_req++;
    return 0;
}

static int bad(Err *e, const char *path, int line, const char *what)
{
    return err_set(e, "%s:%d: %s", path, line, what);
}

static int read_item(Reader *r, const Jt *o, const char *path, int line, Err *e)
{
    Task *t = r->t;
    const Jt *ctx = jt_get(o, "context"), *choices = jt_get(o, "choices"), *ans = jt_get(o, "answer");
    if (o->type != JT_OBJ) return bad(e, path, line, "an item is a JSON object");
    if (!ctx || ctx->type != JT_STR)
        return bad(e, path, line, "\"context\" is missing or not a string");
    if (!choices || choices->type != JT_ARR || choices->n < 2 || choices->n > MAX_CHOICES)
        return bad(e, path, line, "\"choices\" must be an array of 2 to 64 strings");
    for (uint32_t i = 0; i < choices->n; i++)
        if (choices->v.items[i].type != JT_STR || choices->v.items[i].n == 0)
            return bad(e, path, line, "every choice must be a non-empty string");
    long a = -1;
    if (ans && ans->type == JT_NUM && ans->v.num == (double)(long)ans->v.num) a = (long)ans->v.num;
    if (ans && ans->type == JT_STR)
        for (uint32_t i = 0; i < choices->n; i++)
            if (ans->n == choices->v.items[i].n && !memcmp(ans->v.str, choices->v.items[i].v.str, ans->n))
                a = i;
    if (a < 0 || a >= (long)choices->n)
        return bad(e, path, line, "\"answer\" must be a choice's index (0-based) or its text");
    if (!ctx->n && !r->b) return bad(e, path, line, "an empty \"context\" at byte level");
    if (grow((void **)&t->first, &r->cap_items, t->n_items + 2, sizeof *t->first, e)) return -1;
    uint32_t *an = realloc(t->answer, r->cap_items * sizeof *an);
    if (!an) return err_set(e, "task: out of memory");
    t->answer = an;
    t->first[t->n_items] = t->n_req;
    t->answer[t->n_items] = (uint32_t)a;
    for (uint32_t i = 0; i < choices->n; i++) {
        const Jt *c = &choices->v.items[i];
        if (add_request(r, ctx->v.str, ctx->n, c->v.str, c->n, e)) return -1;
        if (!t->cont[t->n_req - 1])
            return bad(e, path, line, "a choice gives no token of its own");
    }
    t->n_items++;
    t->first[t->n_items] = t->n_req;
    return 0;
}

typedef struct {
    Reader *r;
    const char *path;
} Lines;

static int item_line(void *ctx, const Jt *root, int line, Err *e)
{
    Lines *l = ctx;
    return read_item(l->r, root, l->path, line, e);
}

int task_read(const char *path, const Bpe *b, Task *t, Err *e)
{
    memset(t, 0, sizeof *t);
    Reader r = {.b = b, .t = t};
    Lines l = {&r, path};
    int rc = jt_each_line(path, TASK_MAX_BYTES, item_line, &l, e);
    free(r.tmp);
    if (!rc && !t->n_items) rc = err_set(e, "%s: no items", path);
    if (rc) task_free(t);
    return rc;
}

void task_free(Task *t)
{
    free(t->ids);
    free(t->start);
    free(t->cont);
    free(t->chars);
    free(t->first);
    free(t->answer);
    memset(t, 0, sizeof *t);
}

int task_check(const Task *t, const char *path, int vocab, int T, Err *e)
{
    for (size_t i = 0; i < t->n_items; i++)
        for (size_t r = t->first[i]; r < t->first[i + 1]; r++) {
            for (size_t k = t->start[r]; k < t->start[r + 1]; k++)
                if (t->ids[k] >= vocab)
                    return err_set(e, "%s: item %zu: token %d is outside the model's vocabulary %d "
                                      "(another tokenizer?)", path, i + 1, t->ids[k], vocab);
            if (t->cont[r] > (uint32_t)T)
                return err_set(e, "%s: item %zu: choice %zu is %u tokens, more than the model's "
                                  "window (%d)", path, i + 1, r - t->first[i] + 1, t->cont[r], T);
        }
    return 0;
}
