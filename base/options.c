#include "base/options.h"

#include "base/fileio.h"
#include "base/json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* "path:line: " prefixes and config values (paths) */
#define PATH_MAX_WHERE 4200

static const OptSpec *find_spec(const OptSpec *specs, const char *name)
{
    for (const OptSpec *s = specs; s->name; s++)
        if (!strcmp(s->name, name)) return s;
    return NULL;
}

/* One line on stderr naming the problem; returns EXIT_USAGE. */
static int usage_error(const char *cmd, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int usage_error(const char *cmd, const char *where, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* under a launcher every rank parses the same flags: one says so */
    if (opts_launcher_rank() <= 0)
        fprintf(stderr, "mpitrain %s: %s%s (see mpitrain %s --help)\n", cmd, where ? where : "",
                msg, cmd);
    return EXIT_USAGE;
}

int opts_launcher_rank(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK",
                                       "SLURM_PROCID"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return atoi(v);
    }
    return -1;
}

/* Edit distance of two short names (insert, delete, substitute, swap). */
static int distance(const char *a, const char *b)
{
    enum { MAXN = 64 };
    size_t n = strlen(a), m = strlen(b);
    if (n >= MAXN || m >= MAXN) return MAXN;
    int d[MAXN][MAXN];
    for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m];
}

/* A typo (a few edits, a third of the name at most), else a name the
 * given one abbreviates ("--micro" for --micro-batches). */
const char *opts_nearest(const OptSpec *specs, const char *name)
{
    const char *best = NULL, *prefix = NULL;
    size_t len = strlen(name);
    int best_d = 1 + (int)len / 3;
    for (const OptSpec *s = specs; s->name; s++) {
        int d = distance(name, s->name);
        if (d < best_d) {
            best = s->name;
            best_d = d;
        }
        if (!prefix && len >= 3 && !strncmp(s->name, name, len)) prefix = s->name;
    }
    return best ? best : prefix;
}

static int choice_index(const char *choices, const char *value)
{
    size_t n = strlen(value);
    int idx = 0;
    for (const char *p = choices; *p; idx++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, value, n)) return idx;
        if (!bar) break;
        p = bar + 1;
    }
    return -1;
}

/* Plain decimal only: strtod would also take " 4", "0x4", "1e1000" or
 * "nan", none of which a person means as a count. */
static int is_decimal(const char *v)
{
    if (*v == '+' || *v == '-') v++;
    if (!(*v >= '0' && *v <= '9') && *v != '.') return 0;
    return v[strspn(v, "0123456789.eE+-")] == 0;
}

static int parse_number(const OptSpec *s, const char *v, double *out)
{
    if (!is_decimal(v)) return -1;
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end || errno || !isfinite(d)) return -1;
    if (s->type != OT_FLOAT && d != floor(d)) return -1;
    *out = d;
    return 0;
}

/* Whole-string base-10 unsigned 64-bit (seeds use all 64 bits). */
static int set_u64(const char *name, const char *value, uint64_t *out, Err *e)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (!*value || value[strspn(value, "0123456789")] || *end || errno)
        return err_set(e, "--%s: '%s' is not an unsigned integer", name, value);
    *out = v;
    return 0;
}

/* One plain decimal at *p (digits, at most one '.', at least one digit),
 * its end in *p; -1 when there is none. */
static int decimal_at(const char **p, double *out)
{
    const char *q = *p;
    size_t digits = strspn(q, "0123456789");
    if (q[digits] == '.') digits += 1 + strspn(q + digits + 1, "0123456789");
    if (digits == 0 || (digits == 1 && *q == '.')) return -1;
    char buf[64];
    if (digits >= sizeof buf) return -1;
    memcpy(buf, q, digits);
    buf[digits] = 0;
    *out = strtod(buf, NULL);
    *p = q + digits;
    return 0;
}

int opts_parse_duration(const char *v, double *seconds)
{
    static const char units[] = "hms";
    static const double scale[] = {3600, 60, 1};
    const char *p = v;
    double total = 0, d;
    int next = 0; /* the first unit still allowed: h, m, s in that order */
    if (decimal_at(&p, &d)) return -1;
    if (!*p) total = d; /* a bare number: seconds */
    while (*p) {
        const char *u = strchr(units + next, *p);
        if (!u || !*u) return -1;
        next = (int)(u - units);
        total += d * scale[next++];
        p++;
        if (*p && decimal_at(&p, &d)) return -1;
        if (*p == 0 && p[-1] >= '0' && p[-1] <= '9') return -1; /* "1h30": a number without unit */
    }
    if (!isfinite(total)) return -1;
    *seconds = total;
    return 0;
}

void opts_format_duration(double seconds, char *out, size_t n)
{
    /* fixed notation: the parser takes no exponent */
    for (int decimals = 0; decimals < 17; decimals++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%.*f", decimals, seconds);
        if (strtod(buf, NULL) == seconds) {
            snprintf(out, n, "%ss", buf);
            return;
        }
    }
    snprintf(out, n, "%.17fs", seconds);
}

static int set_duration(const OptSpec *s, double *field, const char *value, Err *e)
{
    double d;
    if (opts_parse_duration(value, &d))
        return err_set(e, "--%s: '%s' is not a duration (seconds, or e.g. 90s, 15m, 1h30m, 1.5h)",
                       s->name, value);
    if (s->min <= s->max && (d < s->min || d > s->max))
        return err_set(e, "--%s: %s is out of range [%g s, %g s]", s->name, value, s->min, s->max);
    *field = d;
    return 0;
}

static int set_number(const OptSpec *s, char *field, const char *value, Err *e)
{
    double d;
    if (parse_number(s, value, &d))
        return err_set(e, "--%s: '%s' is not a valid number", s->name, value);
    if (s->min <= s->max && (d < s->min || d > s->max))
        return err_set(e, "--%s: %s is out of range [%g, %g]", s->name, value, s->min, s->max);
    switch (s->type) {
    case OT_INT:
        if (d < -2147483648.0 || d > 2147483647.0)
            return err_set(e, "--%s: %s does not fit in an int", s->name, value);
        *(int *)field = (int)d;
        break;
    case OT_LONG: *(long *)field = (long)d; break;
    case OT_FLOAT: *(float *)field = (float)d; break;
    default: break;
    }
    return 0;
}

int opts_set_value(const OptSpec *specs, void *target, const char *name, const char *value, Err *e)
{
    const OptSpec *s = find_spec(specs, name);
    if (!s) {
        const char *near = opts_nearest(specs, name);
        return near ? err_set(e, "unknown option --%s (did you mean --%s?)", name, near)
                    : err_set(e, "unknown option --%s", name);
    }
    char *field = (char *)target + s->offset;
    if (s->type == OT_FLAG) {
        if (value && strcmp(value, "1") && strcmp(value, "true") && strcmp(value, "0") &&
            strcmp(value, "false"))
            return err_set(e, "--%s takes no value (got '%s')", name, value);
        *(int *)field = !value || !strcmp(value, "1") || !strcmp(value, "true");
        return 0;
    }
    if (!value) return err_set(e, "--%s needs a value", name);
    if (s->type == OT_STR) {
        if (strlen(value) >= s->size) return err_set(e, "--%s: value too long: %s", name, value);
        memcpy(field, value, strlen(value) + 1);
        return 0;
    }
    if (s->type == OT_CHOICE) {
        int idx = choice_index(s->choices, value);
        if (idx < 0) return err_set(e, "--%s: '%s' is not one of %s", name, value, s->choices);
        *(int *)field = idx;
        return 0;
    }
    if (s->type == OT_U64) return set_u64(name, value, (uint64_t *)field, e);
    if (s->type == OT_DURATION) return set_duration(s, (double *)field, value, e);
    return set_number(s, field, value, e);
}

int opts_set(const char *cmd, const OptSpec *specs, void *target, const char *name,
             const char *value, const char *where)
{
    Err e;
    if (!opts_set_value(specs, target, name, value, &e)) return 0;
    return usage_error(cmd, where, "%s", e.msg);
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    char *end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
        *--end = 0;
    return s;
}

/* One key of a config file: the same names and checks as the flags. */
static int apply_key(const char *cmd, const OptSpec *specs, void *target, const char *key,
                     const char *val, const char *where)
{
    if (!strcmp(key, "config"))
        return usage_error(cmd, where, "config files cannot include other configs");
    return opts_set(cmd, specs, target, key, val, where);
}

/* `key = value` lines, # comments and blank lines. */
static int load_key_values(const char *cmd, const OptSpec *specs, void *target, const char *path,
                           char *text)
{
    char where[PATH_MAX_WHERE];
    int lineno = 0, rc = 0;
    for (char *line = text, *next; !rc && line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        lineno++;
        snprintf(where, sizeof where, "%s:%d: ", path, lineno);
        char *s = trim(line);
        if (!*s || *s == '#') continue;
        char *eq = strchr(s, '=');
        if (!eq) return usage_error(cmd, where, "expected 'key = value', got '%s'", s);
        *eq = 0;
        rc = apply_key(cmd, specs, target, trim(s), trim(eq + 1), where);
    }
    return rc;
}

/* ---- a flat JSON object (a run's config.json) -------------------------------- */

typedef struct {
    const char *cmd, *path, *text;
    const OptSpec *specs;
    void *target;
} JsonConfig;

static const char *where_at(const JsonConfig *c, size_t offset, char *buf, size_t n)
{
    snprintf(buf, n, "%s:%d: ", c->path, json_line_of(c->text, offset));
    return buf;
}

static int json_setting(void *ctx, const char *key, const char *value, int quoted, size_t offset)
{
    (void)quoted;
    const JsonConfig *c = ctx;
    char where[PATH_MAX_WHERE];
    if (!value) return 0; /* null keeps the default */
    return apply_key(c->cmd, c->specs, c->target, key, value, where_at(c, offset, where, sizeof where));
}

static int load_json(const char *cmd, const OptSpec *specs, void *target, const char *path,
                     const char *text)
{
    JsonConfig c = {cmd, path, text, specs, target};
    size_t offset = 0;
    Err e;
    int rc = json_read_flat(text, json_setting, &c, &offset, &e);
    char where[PATH_MAX_WHERE];
    if (rc < 0) return usage_error(cmd, where_at(&c, offset, where, sizeof where), "%s", e.msg);
    return rc;
}

int opts_load_config(const char *cmd, const OptSpec *specs, void *target, const char *path)
{
    void *raw;
    size_t len;
    Err e;
    if (read_file(path, (size_t)1 << 24, &raw, &len, &e)) {
        fprintf(stderr, "mpitrain %s: --config %s\n", cmd, e.msg);
        return EXIT_USAGE;
    }
    char *text = raw;
    if (memchr(text, 0, len)) {
        free(raw);
        return usage_error(cmd, NULL, "--config %s: not a text file (it holds a NUL byte)", path);
    }
    const char *first = text + strspn(text, " \t\r\n");
    int rc = *first == '{' ? load_json(cmd, specs, target, path, text)
                           : load_key_values(cmd, specs, target, path, text);
    free(raw);
    return rc;
}

static int apply_config_first(const char *cmd, const OptSpec *specs, void *target, int argc,
                              char **argv, int first)
{
    if (!find_spec(specs, "config")) return 0;
    const char *path = NULL;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "--config")) {
            if (i + 1 >= argc) return usage_error(cmd, NULL, "--config needs a value");
            v = argv[++i];
        } else if (!strncmp(a, "--config=", 9)) {
            v = a + 9;
        }
        if (v && path)
            return usage_error(cmd, NULL, "--config given twice (%s, then %s): one settings file "
                                          "per run; put the rest in flags", path, v);
        if (v) path = v;
    }
    return path ? opts_load_config(cmd, specs, target, path) : 0;
}

int opts_parse(const char *cmd, const OptSpec *specs, void *target, int argc, char **argv,
               int first, const char **pos, int max_pos, int *n_pos, int *help)
{
    *help = 0;
    if (n_pos) *n_pos = 0;
    int rc = apply_config_first(cmd, specs, target, argc, argv, first);
    if (rc) return rc;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *help = 1;
            return 0;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == 0) {
            if (!pos || !n_pos || max_pos == 0)
                return usage_error(cmd, NULL, "unexpected argument '%s'", a);
            if (*n_pos >= max_pos)
                return usage_error(cmd, NULL, "too many arguments at '%s': at most %d", a, max_pos);
            pos[(*n_pos)++] = a;
            continue;
        }
        char name[128];
        const char *eq = strchr(a + 2, '=');
        size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (len >= sizeof name) return usage_error(cmd, NULL, "unknown option %s", a);
        memcpy(name, a + 2, len);
        name[len] = 0;
        const OptSpec *s = find_spec(specs, name);
        if (!s) {
            Err why;
            opts_set_value(specs, target, name, NULL, &why); /* names the nearest option */
            return usage_error(cmd, NULL, "%s", why.msg);
        }
        const char *value = eq ? eq + 1 : NULL;
        if (!eq && s->type != OT_FLAG) {
            if (i + 1 >= argc) return usage_error(cmd, NULL, "--%s needs a value", name);
            value = argv[++i];
        }
        if (!strcmp(name, "config")) continue; /* already applied */
        if ((rc = opts_set(cmd, specs, target, name, value, NULL))) return rc;
    }
    return 0;
}

void opts_print_help(FILE *out, const char *usage, const char *summary, const OptSpec *specs)
{
    if (opts_launcher_rank() > 0) return; /* every rank was asked: rank 0 answers */
    fprintf(out, "usage: %s\n\n%s\n\noptions:\n", usage, summary);
    for (const OptSpec *s = specs; s->name; s++) {
        char left[64];
        if (s->type == OT_FLAG)
            snprintf(left, sizeof left, "--%s", s->name);
        else
            snprintf(left, sizeof left, "--%s %s", s->name,
                     s->type == OT_CHOICE ? s->choices : (s->metavar ? s->metavar : "X"));
        if (s->def && *s->def && s->type != OT_FLAG)
            fprintf(out, "  %-28s %s (default %s)\n", left, s->help, s->def);
        else
            fprintf(out, "  %-28s %s\n", left, s->help);
    }
    fprintf(out, "  %-28s %s\n", "--help", "show this help");
}

int opts_apply_defaults(const OptSpec *specs, void *target)
{
    for (const OptSpec *s = specs; s->name; s++)
        if (s->def && opts_set_value(specs, target, s->name, s->def, NULL)) return -1;
    return 0;
}

/* The index-th name of "a|b|c". */
static void choice_name(const char *choices, int index, char *out, size_t n)
{
    const char *p = choices;
    for (int i = 0; i < index && p; i++) {
        p = strchr(p, '|');
        if (p) p++;
    }
    if (!p) {
        snprintf(out, n, "%d", index);
        return;
    }
    const char *bar = strchr(p, '|');
    snprintf(out, n, "%.*s", bar ? (int)(bar - p) : (int)strlen(p), p);
}

/* The shortest %g spelling that reads back as the same float (9 digits
 * always do): 1e-3 stays "0.001", not "0.00100000005". */
int opts_float_digits(float v)
{
    char buf[64];
    for (int digits = 6; digits < 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, v);
        float back = strtof(buf, NULL);
        if (!memcmp(&back, &v, sizeof v)) return digits;
    }
    return 9;
}

static void format_float(char *out, size_t n, float v)
{
    snprintf(out, n, "%.*g", opts_float_digits(v), v);
}

void opts_format(const OptSpec *s, const void *target, char *out, size_t n)
{
    const char *field = (const char *)target + s->offset;
    switch (s->type) {
    case OT_INT: snprintf(out, n, "%d", *(const int *)field); break;
    case OT_LONG: snprintf(out, n, "%ld", *(const long *)field); break;
    case OT_U64: snprintf(out, n, "%llu", (unsigned long long)*(const uint64_t *)field); break;
    case OT_FLOAT: format_float(out, n, *(const float *)field); break;
    case OT_STR: snprintf(out, n, "%s", field); break;
    case OT_FLAG: snprintf(out, n, "%s", *(const int *)field ? "true" : "false"); break;
    case OT_CHOICE: choice_name(s->choices, *(const int *)field, out, n); break;
    case OT_DURATION: opts_format_duration(*(const double *)field, out, n); break;
    }
}
