#ifndef MPITRAIN_OPTIONS_H
#define MPITRAIN_OPTIONS_H
/* Table-driven long options shared by every subcommand, and the
 * `key = value` config-file reader (keys are option names without "--";
 * command-line flags override the file). */
#include <stddef.h>
#include <stdio.h>
#include "base/err.h"

/* OT_DURATION: a double of seconds, typed as "90", "90s", "15m", "1h30m",
 * "1.5h" (see opts_parse_duration); min/max bound the seconds. */
typedef enum { OT_INT, OT_LONG, OT_U64, OT_FLOAT, OT_STR, OT_FLAG, OT_CHOICE, OT_DURATION } OptType;

typedef struct OptSpec {
    const char *name;     /* "layers" for --layers */
    OptType type;
    size_t offset;        /* into the target struct */
    size_t size;          /* for OT_STR: buffer size */
    const char *metavar;  /* "N", "FILE", ... */
    const char *help;
    const char *choices;  /* OT_CHOICE: "gpt|mlp"; stored as the index (int) */
    double min, max;      /* numeric range, inclusive (ignored if min > max) */
    const char *def;      /* default as it would be typed; NULL = none (zero) */
} OptSpec;

/* This process's rank as its launcher (mpirun, srun) numbers it, before
 * MPI starts; -1 when not launched as a rank. Rank 0 alone prints. */
int opts_launcher_rank(void);
/* The option name closest to a misspelt one (edit distance), or NULL. */
const char *opts_nearest(const OptSpec *specs, const char *name);

/* Exit code for usage errors (unknown option, bad value). */
#define EXIT_USAGE 2

/* Parses argv[first..argc) into target. Positional arguments (not starting
 * with "--") are collected into pos (up to max_pos). Returns 0, or
 * EXIT_USAGE after printing one line "mpitrain <cmd>: <problem>" to stderr.
 * "--help" sets *help. "--config FILE" is applied before other flags when
 * the table has a "config" entry. */
int opts_parse(const char *cmd, const OptSpec *specs, void *target, int argc, char **argv,
               int first, const char **pos, int max_pos, int *n_pos, int *help);
/* Applies one name=value pair; on a bad name or value, e says why (no
 * output). value NULL = a flag given without a value. */
int opts_set_value(const OptSpec *specs, void *target, const char *name, const char *value, Err *e);
/* The same, printing the usage line and returning EXIT_USAGE on error. */
int opts_set(const char *cmd, const OptSpec *specs, void *target, const char *name,
             const char *value, const char *where);
/* Reads a config file of `key = value` lines (# comments, blank lines). */
int opts_load_config(const char *cmd, const OptSpec *specs, void *target, const char *path);
void opts_print_help(FILE *out, const char *usage, const char *summary, const OptSpec *specs);
/* Every entry's default (def) applied to target; -1 if one does not parse
 * (a bug in the table, which a unit test catches). */
int opts_apply_defaults(const OptSpec *specs, void *target);
/* The field's value as it would be typed (round-trips through opts_set:
 * floats in the fewest digits that read back bit for bit, choices by
 * name, flags true/false). */
void opts_format(const OptSpec *s, const void *target, char *out, size_t n);
/* A duration in seconds: a plain number of seconds ("90", "2.5"), or
 * number-unit groups in the order h, m, s, each unit at most once ("90s",
 * "15m", "1h30m", "1.5h", "1h0m30s"). Numbers are plain decimals (digits
 * and at most one '.'): no sign, exponent, nan or spaces. 0 or -1. */
int opts_parse_duration(const char *v, double *seconds);
/* Seconds as opts_parse_duration reads them back bit for bit ("5400s"). */
void opts_format_duration(double seconds, char *out, size_t n);
/* The fewest significant digits (6..9) whose %g reads back as v exactly. */
int opts_float_digits(float v);

#endif
