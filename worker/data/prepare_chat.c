/* `mpitrain prepare --format jsonl`: instruction examples, rendered by a
 * chat template (worker/data/chat.c) and tokenized, into an MPTOKENS file
 * with a loss mask (docs/token-format.md, version 3). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/fileio.h"
#include "worker/data/bpe.h"
#include "worker/data/chat.h"
#include "worker/data/data.h"
#include "worker/data/jtree.h"

#define JSONL_MAX_BYTES ((size_t)1 << 34)
#define MAX_TURNS 256

typedef struct {
    const Bpe *b;      /* NULL: byte level */
    int *ids;
    size_t n, cap;
    uint8_t *mask;     /* as long as ids' capacity */
    size_t example_at; /* where the example being rendered began */
    /* the template's text since the last token it placed itself: tokenized
     * whole, as transformers tokenizes the rendered text, and a byte flag
     * each (counted) */
    char *text;
    uint8_t *counted;
    size_t text_n, text_cap;
} Stream;

static int grow(Stream *s, size_t want, Err *e)
{
    if (want <= s->cap) return 0;
    size_t cap = s->cap ? s->cap : 4096;
    while (cap < want) cap *= 2;
    int *ids = realloc(s->ids, cap * sizeof *ids);
    if (ids) s->ids = ids;
    uint8_t *mask = ids ? realloc(s->mask, cap) : NULL;
    if (!ids || !mask) return err_set(e, "prepare: out of memory (%zu tokens)", s->n);
    s->mask = mask;
    s->cap = cap;
    return 0;
}

static void mark_one(Stream *s, size_t i, int counted)
{
    s->mask[i] = (uint8_t)((counted ? TOKMASK_COUNTS : 0) | (i == s->example_at ? TOKMASK_START : 0));
}

static void mark(Stream *s, size_t from, int counted)
{
    for (size_t i = from; i < s->n; i++) mark_one(s, i, counted);
}

/* ids of text[0..n) appended (bpe_encode grows ids alone: the mask follows) */
static int encode(Stream *s, const char *text, size_t n, Err *e)
{
    if (!s->b) {
        if (grow(s, s->n + n, e)) return -1;
        for (size_t i = 0; i < n; i++) s->ids[s->n++] = (unsigned char)text[i];
        return 0;
    }
    size_t cap = s->cap;
    int rc = bpe_encode(s->b, text, n, &s->ids, &s->n, &cap, e);
    if (cap != s->cap) {
        uint8_t *mask = realloc(s->mask, cap);
        if (!mask) return err_set(e, "prepare: out of memory (%zu tokens)", s->n);
        s->mask = mask;
        s->cap = cap;
    }
    return rc;
}

/* A token counts when any of its bytes does (as transformers' assistant
 * mask: a token that overlaps the answer). Byte-level tokenizers' tokens
 * spell the text exactly; where they do not (SentencePiece's Metaspace
 * adds a space), each run of the text is tokenized on its own instead. */
static int flush(Stream *s, Err *e)
{
    size_t from = s->n, n = s->text_n;
    s->text_n = 0;
    if (!n) return 0;
    if (encode(s, s->text, n, e)) return -1;
    size_t at = 0;
    for (size_t i = from; i < s->n; i++) {
        size_t len = 1;
        if (s->b && !bpe_token_bytes(s->b, s->ids[i], &len)) len = (size_t)-1;
        int counted = 0;
        for (size_t k = at; k < at + len && k < n; k++) counted |= s->counted[k];
        mark_one(s, i, counted);
        at += len;
    }
    if (at == n) return 0;
    s->n = from;
    for (size_t a = 0, b; a < n; a = b) { /* run by run */
        for (b = a + 1; b < n && s->counted[b] == s->counted[a]; b++) {}
        size_t before = s->n;
        if (encode(s, s->text + a, b - a, e)) return -1;
        mark(s, before, s->counted[a]);
    }
    return 0;
}

/* A template's piece: text, kept for the tokenizer, or one token id. */
static int emit(void *ctx, const char *text, size_t n, int id, int counted, Err *e)
{
    Stream *s = ctx;
    if (!text) {
        if (flush(s, e) || grow(s, s->n + 1, e)) return -1;
        s->ids[s->n++] = id;
        mark(s, s->n - 1, counted);
        return 0;
    }
    if (s->text_n + n > s->text_cap) {
        size_t cap = s->text_cap ? s->text_cap : 4096;
        while (cap < s->text_n + n) cap *= 2;
        char *t = realloc(s->text, cap);
        if (t) s->text = t;
        uint8_t *c = t ? realloc(s->counted, cap) : NULL;
        if (!t || !c) return err_set(e, "prepare: out of memory (%zu bytes of text)", cap);
        s->counted = c;
        s->text_cap = cap;
    }
    memcpy(s->text + s->text_n, text, n);
    memset(s->counted + s->text_n, counted != 0, n);
    s->text_n += n;
    return 0;
}

typedef struct {
    const char *path;
    int line;
} Where;

static int bad(Err *e, Where w, const char *fmt, const char *a, const char *b)
{
    char what[512];
    snprintf(what, sizeof what, fmt, a, b);
    return err_set(e, "%s:%d: %s", w.path, w.line, what);
}

static int as_msg(const Jt *v, ChatMsg *m)
{
    if (!v || v->type != JT_STR) return -1;
    m->content = v->v.str;
    m->len = v->n;
    return 0;
}

/* {"messages": [{"role", "content"}, ...]} */
static int read_messages(const Jt *list, ChatMsg *m, int *n, Where w, Err *e)
{
    if (list->type != JT_ARR || list->n == 0)
        return bad(e, w, "\"messages\" must be a non-empty array of {\"role\", \"content\"}", "", "");
    if (list->n > MAX_TURNS) return bad(e, w, "more than 256 messages in one example", "", "");
    for (uint32_t i = 0; i < list->n; i++) {
        const Jt *it = &list->v.items[i];
        const char *role = jt_str(it, "role");
        char idx[16];
        snprintf(idx, sizeof idx, "%u", i);
        if (!role || (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant")))
            return bad(e, w, "messages[%s].role is %s: system, user or assistant", idx,
                       role ? role : "missing");
        m[i].role = role;
        if (as_msg(jt_get(it, "content"), &m[i]))
            return bad(e, w, "messages[%s].content is missing or not a string", idx, "");
    }
    *n = (int)list->n;
    return 0;
}

/* One line: its turns into m (pointing into the parsed line). */
static int read_example(const Jt *root, ChatMsg *m, int *n, Where w, Err *e)
{
    if (root->type != JT_OBJ) return bad(e, w, "an example is a JSON object", "", "");
    const Jt *list = jt_get(root, "messages");
    if (list) return read_messages(list, m, n, w, e);
    m[0].role = "user";
    m[1].role = "assistant";
    if (as_msg(jt_get(root, "prompt"), &m[0]) || as_msg(jt_get(root, "completion"), &m[1]))
        return bad(e, w, "an example needs \"messages\", or \"prompt\" and \"completion\" "
                         "(strings)", "", "");
    *n = 2;
    return 0;
}

typedef struct {
    const ChatTemplate *t;
    ChatTokens tk;
    const char *system;
    Stream s;
    size_t *starts; /* each example's first token */
    size_t n_examples, cap_examples;
} Job;

static int add_example(Job *j, ChatMsg *m, int n, Where w, Err *e)
{
    ChatMsg with[MAX_TURNS + 1];
    int answers = 0;
    for (int i = 0; i < n; i++) answers += !strcmp(m[i].role, "assistant");
    if (!answers) return bad(e, w, "no assistant turn: nothing for the loss to count", "", "");
    if (j->system[0] && strcmp(m[0].role, "system")) { /* --system */
        with[0] = (ChatMsg){"system", j->system, strlen(j->system)};
        memcpy(with + 1, m, (size_t)n * sizeof *m);
        m = with;
        n++;
    }
    if (j->n_examples == j->cap_examples) {
        size_t cap = j->cap_examples ? 2 * j->cap_examples : 1024;
        size_t *st = realloc(j->starts, cap * sizeof *st);
        if (!st) return err_set(e, "prepare: out of memory (%zu examples)", j->n_examples);
        j->starts = st;
        j->cap_examples = cap;
    }
    j->starts[j->n_examples++] = j->s.example_at = j->s.n;
    if (chat_render(j->t, m, n, j->tk, emit, &j->s, e) || flush(&j->s, e))
        return err_wrap(e, "%s:%d", w.path, w.line);
    return 0;
}

typedef struct {
    Job *j;
    const char *path;
} Lines;

static int example_line(void *ctx, const Jt *root, int line, Err *e)
{
    Lines *l = ctx;
    Where w = {l->path, line};
    ChatMsg m[MAX_TURNS];
    int n = 0;
    return read_example(root, m, &n, w, e) || add_example(l->j, m, n, w, e) ? -1 : 0;
}

static int read_jsonl(Job *j, const char *path, Err *e)
{
    Lines l = {j, path};
    return jt_each_line(path, JSONL_MAX_BYTES, example_line, &l, e);
}

/* The validation split: the last round(val_fraction * examples) examples. */
static int write_masked(const PrepareChat *p, Job *j, int vocab, Err *e)
{
    size_t n_ex = j->n_examples;
    size_t n_val_ex = (size_t)((double)n_ex * p->val_fraction + 0.5);
    if (n_val_ex == 0 || n_val_ex >= n_ex)
        return err_set(e, "prepare: val fraction %g of %zu examples leaves an empty %s split",
                       p->val_fraction, n_ex, n_val_ex == 0 ? "val" : "train");
    uint64_t n_train = j->starts[n_ex - n_val_ex];
    return tokfile_write_masked(p->out_path, (const uint32_t *)(const void *)j->s.ids, j->s.mask,
                                n_train, j->s.n - n_train, vocab, e);
}

static int choose_template(const PrepareChat *p, Job *j, Err *e)
{
    if (!strcmp(p->template_name, "auto")) {
        if (!p->tokenizer[0]) {
            j->t = chat_template_find("plain");
            return 0;
        }
        return chat_template_guess(p->tokenizer, &j->t, e);
    }
    j->t = chat_template_find(p->template_name);
    if (!j->t)
        return err_set(e, "--template %s: unknown; the templates are %s (or auto)", p->template_name,
                       chat_template_names());
    if (!p->tokenizer[0] && j->t->style != CHAT_PLAIN)
        return err_set(e, "--template %s needs --tokenizer DIR: at byte level only plain renders",
                       p->template_name);
    return 0;
}

int prepare_jsonl_files(const PrepareChat *p, const char *const *paths, int n_paths, Err *e)
{
    if (n_paths < 1) return err_set(e, "prepare --format jsonl: no input .jsonl files given");
    if (!(p->val_fraction > 0.0 && p->val_fraction < 1.0))
        return err_set(e, "prepare: val fraction %g must be strictly between 0 and 1", p->val_fraction);
    Job j = {.system = p->system ? p->system : "", .tk = {-1, -1, NULL}};
    Bpe *b = NULL;
    if (p->tokenizer[0] && !(b = bpe_load(p->tokenizer, e))) return -1;
    int vocab = b ? bpe_vocab_size(b) : 256;
    char today[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(today, sizeof today, "%d %b %Y", gmtime_r(&now, &tm));
    j.tk.date = p->date && p->date[0] ? p->date : today;
    if (b) {
        j.tk.bos = bpe_bos(b);
        j.tk.eos = bpe_eot(b);
    }
    j.s.b = b;
    int rc = choose_template(p, &j, e);
    for (int i = 0; !rc && i < n_paths; i++) rc = read_jsonl(&j, paths[i], e);
    if (!rc && !j.n_examples) rc = err_set(e, "prepare: no examples in %d file(s), first %s", n_paths, paths[0]);
    if (!rc) rc = write_masked(p, &j, vocab, e);
    bpe_free(b);
    free(j.s.ids);
    free(j.s.mask);
    free(j.s.text);
    free(j.s.counted);
    free(j.starts);
    return rc;
}
