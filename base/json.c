#include "base/json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* With a sink, buffered text is written out past this size: a trace of
 * millions of spans never has to fit in memory at once. */
#define JSON_FLUSH_BYTES (64u << 10)

void json_init(JsonOut *j, FILE *sink)
{
    memset(j, 0, sizeof *j);
    j->sink = sink;
}

void json_free(JsonOut *j)
{
    free(j->buf);
    j->buf = NULL;
    j->len = j->cap = 0;
}

static void fail(JsonOut *j, const char *why)
{
    if (!j->error) j->error = why;
}

static void flush(JsonOut *j)
{
    if (j->error || !j->sink || !j->len) return;
    if (fwrite(j->buf, 1, j->len, j->sink) != j->len) fail(j, "write failed");
    j->len = 0;
    j->buf[0] = 0;
}

static int reserve(JsonOut *j, size_t extra)
{
    if (j->len + extra + 1 <= j->cap) return 0;
    size_t cap = j->cap ? j->cap : 256;
    while (cap < j->len + extra + 1) {
        if (cap > SIZE_MAX / 2) break;
        cap *= 2;
    }
    char *b = cap >= j->len + extra + 1 ? realloc(j->buf, cap) : NULL;
    if (!b) {
        fail(j, "out of memory");
        return -1;
    }
    j->buf = b;
    j->cap = cap;
    return 0;
}

static void put(JsonOut *j, const char *s, size_t n)
{
    if (j->error || reserve(j, n)) return;
    memcpy(j->buf + j->len, s, n);
    j->len += n;
    j->buf[j->len] = 0;
    if (j->len >= JSON_FLUSH_BYTES) flush(j);
}

static void put_s(JsonOut *j, const char *s) { put(j, s, strlen(s)); }

static void put_newline_if_due(JsonOut *j)
{
    if (j->newline) put(j, "\n", 1);
    j->newline = 0;
}

/* Everything a value needs before its first byte: the comma that separates
 * it from the previous item, or the check that its key was written. */
static int value_start(JsonOut *j)
{
    if (j->error) return -1;
    int in_object = j->depth > 0 && j->open[j->depth - 1] == '{';
    if (in_object && !j->after_key) {
        fail(j, "a value in an object without a key");
        return -1;
    }
    if (j->after_key) {
        j->after_key = 0;
    } else if (j->depth > 0) {
        if (j->items[j->depth - 1]) put(j, ",", 1);
        j->items[j->depth - 1] = 1;
    }
    put_newline_if_due(j);
    return j->error ? -1 : 0;
}

static void begin(JsonOut *j, char c)
{
    if (value_start(j)) return;
    if (j->depth == JSON_MAX_DEPTH) {
        fail(j, "nested too deep");
        return;
    }
    j->open[j->depth] = c;
    j->items[j->depth] = 0;
    j->depth++;
    put(j, &c, 1);
}

static void end(JsonOut *j, char open, char close)
{
    if (j->error) return;
    if (j->depth == 0 || j->open[j->depth - 1] != open || j->after_key) {
        fail(j, "a container closed that is not open (or a key without a value)");
        return;
    }
    put_newline_if_due(j);
    j->depth--;
    put(j, &close, 1);
}

void json_begin_object(JsonOut *j) { begin(j, '{'); }
void json_end_object(JsonOut *j) { end(j, '{', '}'); }
void json_begin_array(JsonOut *j) { begin(j, '['); }
void json_end_array(JsonOut *j) { end(j, '[', ']'); }
void json_newline(JsonOut *j) { j->newline = 1; }

/* The escape of one byte that needs one, e.g. \" or \n or \u001f. */
static void escape(char out[8], unsigned char c)
{
    char e = 0;
    switch (c) {
    case '"': e = '"'; break;
    case '\\': e = '\\'; break;
    case '\b': e = 'b'; break;
    case '\f': e = 'f'; break;
    case '\n': e = 'n'; break;
    case '\r': e = 'r'; break;
    case '\t': e = 't'; break;
    }
    if (e) snprintf(out, 8, "\\%c", e);
    else snprintf(out, 8, "\\u%04x", c);
}

/* The quoted, escaped string; runs of plain bytes are copied at once. */
static void put_quoted(JsonOut *j, const char *s)
{
    put(j, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        put(j, run, (size_t)(s - run));
        run = s + 1;
        char esc[8];
        escape(esc, c);
        put_s(j, esc);
    }
    put(j, run, (size_t)(s - run));
    put(j, "\"", 1);
}

JsonOut *json_key(JsonOut *j, const char *key)
{
    if (j->error) return j;
    if (j->depth == 0 || j->open[j->depth - 1] != '{' || j->after_key) {
        fail(j, "a key outside an object (or two keys in a row)");
        return j;
    }
    if (j->items[j->depth - 1]) put(j, ",", 1);
    j->items[j->depth - 1] = 1;
    put_newline_if_due(j);
    put_quoted(j, key);
    put(j, ":", 1);
    j->after_key = 1;
    return j;
}

void json_str(JsonOut *j, const char *s)
{
    if (!value_start(j)) put_quoted(j, s ? s : "");
}

/* One formatted scalar (the caller has checked it is finite). */
static void put_number(JsonOut *j, char conv, int prec, double v)
{
    char tmp[400]; /* DBL_MAX in %.20f is 330 characters */
    int n = conv == 'f' ? snprintf(tmp, sizeof tmp, "%.*f", prec, v)
                        : snprintf(tmp, sizeof tmp, "%.*g", prec, v);
    if (n < 0 || (size_t)n >= sizeof tmp) fail(j, "number does not format");
    else put(j, tmp, (size_t)n);
}

void json_null(JsonOut *j)
{
    if (!value_start(j)) put(j, "null", 4);
}

void json_bool(JsonOut *j, int v)
{
    if (!value_start(j)) put_s(j, v ? "true" : "false");
}

void json_int(JsonOut *j, long long v)
{
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%lld", v);
    if (!value_start(j)) put_s(j, tmp);
}

void json_uint(JsonOut *j, uint64_t v)
{
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    if (!value_start(j)) put_s(j, tmp);
}

void json_sig(JsonOut *j, double v, int digits)
{
    if (!isfinite(v)) {
        json_null(j);
        return;
    }
    digits = digits < 1 ? 1 : digits > 17 ? 17 : digits;
    if (!value_start(j)) put_number(j, 'g', digits, v);
}

void json_double(JsonOut *j, double v) { json_sig(j, v, 17); }

void json_fixed(JsonOut *j, double v, int decimals)
{
    if (!isfinite(v)) {
        json_null(j);
        return;
    }
    decimals = decimals < 0 ? 0 : decimals > 20 ? 20 : decimals;
    if (!value_start(j)) put_number(j, 'f', decimals, v);
}

int json_finish(JsonOut *j)
{
    if (!j->error && (j->depth || j->after_key)) fail(j, "unclosed object or array");
    put_newline_if_due(j);
    flush(j);
    return j->error ? -1 : 0;
}

/* ---- reading: one flat object ------------------------------------------------ */

typedef struct {
    const char *text, *p;
} JsonIn;

int json_line_of(const char *text, size_t offset)
{
    int line = 1;
    for (size_t i = 0; i < offset && text[i]; i++) line += text[i] == '\n';
    return line;
}

static void skip_ws(JsonIn *j)
{
    while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r') j->p++;
}

static void put_utf8(char **o, unsigned cp)
{
    if (cp < 0x80) {
        *(*o)++ = (char)cp;
    } else if (cp < 0x800) {
        *(*o)++ = (char)(0xC0 | cp >> 6);
        *(*o)++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *(*o)++ = (char)(0xE0 | cp >> 12);
        *(*o)++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *(*o)++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *(*o)++ = (char)(0xF0 | cp >> 18);
        *(*o)++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *(*o)++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *(*o)++ = (char)(0x80 | (cp & 0x3F));
    }
}

static int hex4(const char **p, const char *end, unsigned *out)
{
    unsigned x = 0;
    for (int k = 0; k < 4; k++, (*p)++) {
        char h = *p < end ? **p : 0;
        int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
              : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
        if (d < 0) return -1;
        x = x * 16 + (unsigned)d;
    }
    *out = x;
    return 0;
}

const char *json_unicode_escape(const char **p, const char *end, unsigned *cp)
{
    unsigned hi, lo;
    if (hex4(p, end, &hi)) return "bad \\u escape (four hex digits expected)";
    if (hi >= 0xDC00 && hi < 0xE000) return "lone low surrogate in a \\u escape";
    if (hi < 0xD800 || hi >= 0xDC00) {
        *cp = hi;
        return NULL;
    }
    if (end - *p < 2 || (*p)[0] != '\\' || (*p)[1] != 'u')
        return "high surrogate \\u escape without its low half";
    *p += 2;
    if (hex4(p, end, &lo) || lo < 0xDC00 || lo >= 0xE000)
        return "high surrogate \\u escape not followed by a low surrogate";
    *cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
    return NULL;
}

/* A JSON string at j->p into out (n bytes); 0, or -1 if malformed. */
static int string_in(JsonIn *j, char *out, size_t n)
{
    if (*j->p != '"') return -1;
    j->p++;
    char *o = out, *end = out + n - 4;
    while (*j->p && *j->p != '"') {
        if (o >= end) return -1;
        char c = *j->p++;
        if ((unsigned char)c < 0x20) return -1;
        if (c != '\\') {
            *o++ = c;
            continue;
        }
        c = *j->p++;
        const char *plain = c ? strchr("\"\\/bfnrt", c) : NULL;
        if (plain) {
            *o++ = "\"\\/\b\f\n\r\t"[plain - "\"\\/bfnrt"];
            continue;
        }
        if (c != 'u') return -1;
        unsigned cp;
        /* a NUL-terminated text: 10 bytes cover "XXXX\\uXXXX" */
        if (json_unicode_escape(&j->p, j->p + strnlen(j->p, 10), &cp) || !cp) return -1;
        put_utf8(&o, cp);
    }
    if (*j->p != '"') return -1;
    j->p++;
    *o = 0;
    return 0;
}

/* A bare value (number, true, false, null) up to the next , } or blank. */
static int bare_in(JsonIn *j, char *out, size_t n)
{
    size_t k = 0;
    while (*j->p && !strchr(",} \t\r\n", *j->p)) {
        if (k + 1 >= n || strchr("{[\"", *j->p)) return -1;
        out[k++] = *j->p++;
    }
    out[k] = 0;
    return k ? 0 : -1;
}

/* A nested object or array at j->p, copied as its raw text (brackets
 * balanced, strings skipped whole so a bracket inside one does not count). */
static int raw_in(JsonIn *j, char *out, size_t n)
{
    const char *start = j->p;
    int depth = 0;
    do {
        char c = *j->p;
        if (!c) return -1;
        if (c == '"') {
            for (j->p++; *j->p != '"'; j->p++) {
                if (!*j->p) return -1;
                if (*j->p == '\\' && !*++j->p) return -1;
            }
        } else if (c == '{' || c == '[') {
            if (++depth > JSON_MAX_DEPTH) return -1;
        } else if (c == '}' || c == ']') {
            depth--;
        }
        j->p++;
    } while (depth > 0);
    size_t len = (size_t)(j->p - start);
    if (len + 1 > n) return -1;
    memcpy(out, start, len);
    out[len] = 0;
    return 0;
}

/* One "key": value pair at j->p, handed to fn; nested values as raw text
 * when `nested`, else refused. */
static int read_pair(JsonIn *j, JsonPairFn fn, void *ctx, char *key, size_t kn, char *val,
                     size_t vn, int nested, Err *e)
{
    if (string_in(j, key, kn)) return err_set(e, "expected a \"key\"");
    skip_ws(j);
    if (*j->p != ':') return err_set(e, "expected ':' after \"%s\"", key);
    j->p++;
    skip_ws(j);
    size_t at = (size_t)(j->p - j->text);
    int quoted = *j->p == '"';
    if (nested && (*j->p == '{' || *j->p == '[')) {
        if (raw_in(j, val, vn)) return err_set(e, "\"%s\": unterminated object or array", key);
        return fn(ctx, key, val, JSON_RAW, at);
    }
    if (quoted ? string_in(j, val, vn) : bare_in(j, val, vn))
        return err_set(e, "\"%s\": the value must be a string, number or boolean", key);
    int is_null = !quoted && !strcmp(val, "null");
    return fn(ctx, key, is_null ? NULL : val, quoted, at);
}

static int read_object(const char *text, JsonPairFn fn, void *ctx, size_t *offset, int nested,
                       Err *e)
{
    enum { KEY_MAX = 256, VALUE_MAX = 8192 };
    /* a nested value can be as long as the text */
    size_t vn = nested && strlen(text) + 1 > VALUE_MAX ? strlen(text) + 1 : VALUE_MAX;
    char key[KEY_MAX], *val = malloc(vn);
    if (!val) return err_set(e, "out of memory");
    JsonIn j = {text, text};
    int rc = 0;
    skip_ws(&j);
    if (*j.p != '{') rc = err_set(e, "expected '{'");
    else j.p++;
    for (int first = 1; !rc; first = 0) {
        skip_ws(&j);
        if (*j.p == '}') break;
        if (!first && *j.p != ',') {
            rc = err_set(e, "expected ',' or '}'");
            break;
        }
        if (!first) j.p++;
        skip_ws(&j);
        rc = read_pair(&j, fn, ctx, key, sizeof key, val, vn, nested, e);
    }
    if (!rc) {
        j.p++;
        skip_ws(&j);
        if (*j.p) rc = err_set(e, "text after the closing '}'");
    }
    free(val);
    *offset = (size_t)(j.p - text);
    return rc;
}

int json_read_flat(const char *text, JsonPairFn fn, void *ctx, size_t *offset, Err *e)
{
    return read_object(text, fn, ctx, offset, 0, e);
}

int json_read_object(const char *text, JsonPairFn fn, void *ctx, size_t *offset, Err *e)
{
    return read_object(text, fn, ctx, offset, 1, e);
}

int json_read_ints(const char *text, long long *out, int max, int *n, Err *e)
{
    JsonIn j = {text, text};
    *n = 0;
    skip_ws(&j);
    if (*j.p++ != '[') return err_set(e, "expected '['");
    skip_ws(&j);
    if (*j.p == ']') return 0;
    for (;;) {
        char *end;
        skip_ws(&j);
        if (*j.p == '-' || (*j.p >= '0' && *j.p <= '9')) {
            errno = 0;
            long long v = strtoll(j.p, &end, 10);
            if (errno || *end == '.' || *end == 'e' || *end == 'E')
                return err_set(e, "element %d is not an integer in range", *n);
            if (*n >= max) return err_set(e, "more than %d elements", max);
            out[(*n)++] = v;
            j.p = end;
        } else {
            return err_set(e, "element %d is not an integer", *n);
        }
        skip_ws(&j);
        if (*j.p == ']') break;
        if (*j.p++ != ',') return err_set(e, "expected ',' or ']' after element %d", *n);
    }
    j.p++;
    skip_ws(&j);
    return *j.p ? err_set(e, "text after the closing ']'") : 0;
}
