#include "worker/method/swarm/swarm_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/options.h"

/* The run-defining settings: the model's (train_config_is_model_setting)
 * and these, by option name: the schedule, the seed, ZO's and DiLoCo's
 * constants, and the roster's rules (every machine judges a silent keeper
 * by the deadline and the misses). init-from is taken when not given but never
 * compared: a path differs from host to host, and the HELLO's base id
 * compares the weights themselves. */
static const char *const RUN_SETTINGS[] = {
    "steps", "optimizer", "lr", "min-lr", "warmup", "weight-decay", "seed", "zo-eps", "zo-scale",
    "zo-samples", "zo-check-every", "zo-outlier", "zo-one-sided", "zo-params", "init-from", "diloco", "outer-lr",
    "outer-momentum", "diloco-wire", "diloco-fragments", "diloco-overlap", "grad-clip", "swarm-deadline", "swarm-misses", NULL};

static const OptSpec *spec_named(const char *name)
{
    for (const OptSpec *s = train_config_table(NULL); s->name; s++)
        if (!strcmp(s->name, name)) return s;
    return NULL;
}

/* Appends `name=value\n` of setting s to out (n bytes, used so far). */
static int append_setting(const OptSpec *s, const TrainConfig *run, char *out, size_t n,
                          size_t *used, Err *e)
{
    char v[PATH_BUF];
    opts_format(s, run, v, sizeof v);
    int w = snprintf(out + *used, n - *used, "%s=%s\n", s->name, v);
    if (w < 0 || (size_t)w >= n - *used)
        return err_set(e, "the run's settings do not fit in %zu bytes", n);
    *used += (size_t)w;
    return 0;
}

int swarm_config_text(const TrainConfig *c, float scale, char *out, size_t n, Err *e)
{
    TrainConfig run = *c;
    run.zo_scale = scale;
    size_t used = 0;
    out[0] = 0;
    for (const OptSpec *s = train_config_table(NULL); s->name; s++)
        if (train_config_is_model_setting(s) && append_setting(s, &run, out, n, &used, e)) return -1;
    for (int i = 0; RUN_SETTINGS[i]; i++)
        if (append_setting(spec_named(RUN_SETTINGS[i]), &run, out, n, &used, e)) return -1;
    return 0;
}

/* Was this setting given on this machine: a flag or --config for numbers
 * and choices; a string counts when it is not its default. */
static int given_here(const TrainConfig *c, const TrainConfig *def, const OptSpec *s)
{
    if (s->type != OT_STR) return train_config_was_given(c, s);
    char a[PATH_BUF], b[PATH_BUF];
    opts_format(s, c, a, sizeof a);
    opts_format(s, def, b, sizeof b);
    return strcmp(a, b) != 0;
}

/* One `name=value` line of the run's: taken, or compared with the flag. */
static int adopt_one(TrainConfig *c, const TrainConfig *def, const char *name, const char *value,
                     const char *from, Err *e)
{
    const OptSpec *s = spec_named(name);
    if (!s) return err_set(e, "the swarm at %s sent setting %s, which this build does not know: "
                              "run the same mpitrain version on every machine", from, name);
    /* --zo-scale 0 asks for a scale: the one the keeper's warm-up chose */
    const int given = given_here(c, def, s) && !train_config_leaves_choice(c, s);
    if (given && strcmp(name, "init-from")) {
        char mine[PATH_BUF];
        opts_format(s, c, mine, sizeof mine);
        if (strcmp(mine, value))
            return err_set(e, "--%s %s: the swarm run at %s has %s %s; drop the flag (a joiner "
                              "takes the run's settings) or join a run with this %s",
                           name, mine, from, name, value, name);
        return 0;
    }
    if (given) return 0; /* this machine's own path to the base */
    Err why;
    if (opts_set_value(train_config_table(NULL), c, name, value, &why))
        return err_set(e, "the swarm at %s sent %s=%s: %s", from, name, value, why.msg);
    return 0;
}

int swarm_config_adopt(TrainConfig *c, const char *text, size_t len, const char *from, Err *e)
{
    char *buf = malloc(len + 1);
    TrainConfig *def = malloc(sizeof *def);
    int rc = 0;
    if (!buf || !def) rc = err_set(e, "out of memory");
    if (!rc) {
        memcpy(buf, text, len);
        buf[len] = 0;
        train_config_defaults(def);
    }
    int seen = 0;
    for (char *line = buf, *next; !rc && line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        char *eq = strchr(line, '=');
        if (!eq) {
            rc = err_set(e, "the swarm at %s sent a settings line without '=': %.60s", from, line);
            break;
        }
        *eq = 0;
        rc = adopt_one(c, def, line, eq + 1, from, e);
        seen++;
    }
    if (!rc && !seen) rc = err_set(e, "the swarm at %s sent no settings", from);
    if (!rc) train_config_finish(c);
    free(buf);
    free(def);
    return rc;
}

int swarm_config_selected(const TrainConfig *c)
{
    return c->optim.kind == OPT_ZO && (c->swarm_listen[0] || c->swarm_join[0]);
}

/* A swarm is a ZO run of machines that are one replica each (their own
 * tp/pp inside, no dp: the swarm is the data parallelism) and one role. */
int swarm_config_validate(const TrainConfig *c, Err *e)
{
    const int listen = c->swarm_listen[0] != 0, join = c->swarm_join[0] != 0;
    if (!listen && !join) return 0;
    const char *flag = join ? "--swarm-join" : "--swarm-listen";
    if (c->optim.kind != OPT_ZO && c->diloco <= 0)
        return err_set(e, "%s: a swarm trains with shared-randomness codes (--optimizer zo) or "
                          "with DiLoCo's outer rounds (--diloco H)", flag);
    if (c->time_budget_s > 0)
        return err_set(e, "%s with --time-budget: not built yet (each machine would end by its "
                          "own clock); give --steps", flag);
    if (c->zo_sparse > 0)
        return err_set(e, "%s with --zo-sparse: not built yet (the swarm's update and its HELLO "
                          "know no magnitude mask); it runs under --optimizer zo alone", flag);
    if (c->dp > 1)
        return err_set(e, "%s with --dp %d: each swarm machine is one replica (use --tp/--pp "
                          "inside it); the swarm's machines are its data parallelism",
                       flag, c->dp);
    return 0;
}
