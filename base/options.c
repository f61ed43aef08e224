#include "base/options.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
    fprintf(stderr, "mpitrain %s: %s%s (see mpitrain %s --help)\n", cmd, where ? where : "", msg, cmd);
    return EXIT_USAGE;
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

static int parse_number(const OptSpec *s, const char *v, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end || errno || !isfinite(d)) return -1;
    if (s->type != OT_FLOAT && d != floor(d)) return -1;
    *out = d;
    return 0;
}

/* Whole-string base-10 unsigned 64-bit (seeds use all 64 bits). */
static int set_u64(const char *cmd, const char *where, const char *name, const char *value,
                   uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (!*value || *end || errno || value[0] == '-')
        return usage_error(cmd, where, "--%s: '%s' is not an unsigned integer", name, value);
    *out = v;
    return 0;
}

int opts_set(const char *cmd, const OptSpec *specs, void *target, const char *name,
             const char *value, const char *where)
{
    const OptSpec *s = find_spec(specs, name);
    if (!s) return usage_error(cmd, where, "unknown option --%s", name);
    char *field = (char *)target + s->offset;
    if (s->type == OT_FLAG) {
        if (value && strcmp(value, "1") && strcmp(value, "true") && strcmp(value, "0") &&
            strcmp(value, "false"))
            return usage_error(cmd, where, "--%s takes no value (got '%s')", name, value);
        *(int *)field = !value || !strcmp(value, "1") || !strcmp(value, "true");
        return 0;
    }
    if (!value) return usage_error(cmd, where, "--%s needs a value", name);
    if (s->type == OT_STR) {
        if (strlen(value) >= s->size)
            return usage_error(cmd, where, "--%s: value too long: %s", name, value);
        memcpy(field, value, strlen(value) + 1);
        return 0;
    }
    if (s->type == OT_CHOICE) {
        int idx = choice_index(s->choices, value);
        if (idx < 0)
            return usage_error(cmd, where, "--%s: '%s' is not one of %s", name, value, s->choices);
        *(int *)field = idx;
        return 0;
    }
    if (s->type == OT_U64) return set_u64(cmd, where, name, value, (uint64_t *)field);
    double d;
    if (parse_number(s, value, &d))
        return usage_error(cmd, where, "--%s: '%s' is not a valid number", name, value);
    if (s->min <= s->max && (d < s->min || d > s->max)) {
        return usage_error(cmd, where, "--%s: %s is out of range [%g, %g]", name, value, s->min,
                           s->max);
    }
    switch (s->type) {
    case OT_INT:
        if (d < -2147483648.0 || d > 2147483647.0)
            return usage_error(cmd, where, "--%s: %s does not fit in an int", name, value);
        *(int *)field = (int)d;
        break;
    case OT_LONG: *(long *)field = (long)d; break;
    case OT_FLOAT: *(float *)field = (float)d; break;
    default: break;
    }
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    char *end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
        *--end = 0;
    return s;
}

int opts_load_config(const char *cmd, const OptSpec *specs, void *target, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "mpitrain %s: --config %s: cannot open: %s\n", cmd, path, strerror(errno));
        return EXIT_USAGE;
    }
    char line[8192], where[4200];
    int lineno = 0, rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        lineno++;
        snprintf(where, sizeof where, "%s:%d: ", path, lineno);
        char *s = trim(line);
        if (!*s || *s == '#') continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = usage_error(cmd, where, "expected 'key = value', got '%s'", s);
            break;
        }
        *eq = 0;
        char *key = trim(s), *val = trim(eq + 1);
        if (!strcmp(key, "config")) {
            rc = usage_error(cmd, where, "config files cannot include other configs");
            break;
        }
        rc = opts_set(cmd, specs, target, key, val, where);
    }
    fclose(f);
    return rc;
}

static int apply_config_first(const char *cmd, const OptSpec *specs, void *target, int argc,
                              char **argv, int first)
{
    if (!find_spec(specs, "config")) return 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config")) {
            if (i + 1 >= argc) return usage_error(cmd, NULL, "--config needs a value");
            return opts_load_config(cmd, specs, target, argv[i + 1]);
        }
        if (!strncmp(a, "--config=", 9)) return opts_load_config(cmd, specs, target, a + 9);
    }
    return 0;
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
            if (!pos || !n_pos || *n_pos >= max_pos)
                return usage_error(cmd, NULL, "unexpected argument '%s'", a);
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
        if (!s) return usage_error(cmd, NULL, "unknown option --%s", name);
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
    fprintf(out, "usage: %s\n\n%s\n\noptions:\n", usage, summary);
    for (const OptSpec *s = specs; s->name; s++) {
        char left[64];
        if (s->type == OT_FLAG)
            snprintf(left, sizeof left, "--%s", s->name);
        else
            snprintf(left, sizeof left, "--%s %s", s->name,
                     s->type == OT_CHOICE ? s->choices : (s->metavar ? s->metavar : "X"));
        fprintf(out, "  %-28s %s\n", left, s->help);
    }
    fprintf(out, "  %-28s %s\n", "--help", "show this help");
}
