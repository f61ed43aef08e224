/* Fuzz target: the `--config FILE` reader (launch/options.c) with the train
 * option table (launch/cmd_train.c) into a TrainConfig.
 *
 * The input is written as the config file and read by opts_load_config into
 * train_config_defaults. A file it accepts then goes where `mpitrain train`
 * sends it: the same fix-ups as the command line (choices mirrored into the
 * model and optimizer kinds, bucket MB to bytes, min-lr capped at lr),
 * train_config_validate, and plan_resolve for a world of dp x tp x pp ranks
 * (no memory check). A plan that resolves must encode and decode again
 * (plan_encode / plan_decode); a refusal there aborts with "config round
 * trip" in the message.
 *
 * Seeds (MPITRAIN_FUZZ_GEN): a file setting every option of the table to a
 * valid value. MPITRAIN_FUZZ_DICT: a libFuzzer dictionary of the option
 * names and choices is written there. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "coordinator/plan/plan.h"
#include "base/options.h"
#include "tests/fuzz/fuzz_util.h"
#include "worker/config/config.h"

static char g_path[FUZZ_PATH];
static const OptSpec *g_specs;
static TrainConfig g_cfg, g_back;

static void write_dict(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) fuzz_die("cannot create %s", path);
    fprintf(f, "\"=\"\n\" = \"\n\"#\"\n\"\\x0a\"\n\"true\"\n\"false\"\n\"nan\"\n\"inf\"\n"
               "\"1e308\"\n\"-0\"\n\"0x1p4\"\n\"18446744073709551615\"\n\"2147483648\"\n");
    for (const OptSpec *s = g_specs; s->name; s++) {
        fprintf(f, "\"%s\"\n", s->name);
        if (s->type == OT_CHOICE) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", s->choices);
            for (char *tok = strtok(buf, "|"); tok; tok = strtok(NULL, "|"))
                fprintf(f, "\"%s\"\n", tok);
        }
    }
    fclose(f);
}

/* Every option at a valid value, as a config file. */
static void write_seed(void)
{
    char text[16384];
    size_t n = 0;
    n += snprintf(text + n, sizeof text - n, "# every train option\n\n");
    for (const OptSpec *s = g_specs; s->name && n < sizeof text - 256; s++) {
        if (!strcmp(s->name, "config")) continue; /* config files cannot include configs */
        char v[64];
        switch (s->type) {
        case OT_FLAG: snprintf(v, sizeof v, "true"); break;
        case OT_STR: snprintf(v, sizeof v, "fuzz/%s", s->name); break;
        case OT_U64: snprintf(v, sizeof v, "42"); break;
        case OT_CHOICE: {
            const char *bar = strchr(s->choices, '|');
            snprintf(v, sizeof v, "%.*s", bar ? (int)(bar - s->choices) : 60, s->choices);
            break;
        }
        default:
            snprintf(v, sizeof v, "%.9g", s->min <= s->max ? (s->min > 1 ? s->min : fmin(1, s->max)) : 1);
        }
        n += snprintf(text + n, sizeof text - n, "%s = %s\n", s->name, v);
    }
    fuzz_seed("all_options.conf", text, n);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_keep_stderr();
    size_t n;
    g_specs = train_config_table(&n);
    fuzz_join(g_path, fuzz_workdir("config"), "train.conf");
    const char *dict = getenv("MPITRAIN_FUZZ_DICT");
    if (dict && *dict) write_dict(dict);
    if (fuzz_gen_dir()) write_seed();
    return 0;
}

static int positive(int v) { return v > 0 ? v : 1; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write_file(g_path, data, size);
    TrainConfig *c = &g_cfg;
    train_config_defaults(c);
    int rc = opts_load_config("train", g_specs, c, g_path);
    if (rc) {
        Err why = {"refused (the reason went to stderr)"};
        fuzz_verbose("opts_load_config", rc, &why);
        return 0;
    }

    /* what the train command does after the flags */
    train_config_finish(c);
    if (!c->data[0]) snprintf(c->data, sizeof c->data, "data/kjv.tok");
    if (!c->out[0]) snprintf(c->out, sizeof c->out, "runs/fuzz");
    fuzz_touch(c, sizeof *c);

    Err e = {{0}};
    rc = train_config_validate(c, &e);
    fuzz_verbose("train_config_validate", rc, &e);
    if (rc) return 0;
    long world = (long)positive(c->dp) * positive(c->tp) * positive(c->pp);
    if (world > 4096) return 0; /* a real job, but a slow input */
    /* the stage balancer is O(pp x blocks^2): ~1e9 steps at --pp 1040
     * --layers 1024, about 1 s in a release build but 10+ s under ASan, and
     * plan_resolve + plan_decode run it three times. Known; keep the fuzzer
     * fast instead of reporting it as a hang. */
    double blocks = c->model.n_layer + 2.0;
    if (positive(c->pp) * blocks * blocks > 2e7) return 0;
    rc = plan_resolve(c, (int)world, 0, &e);
    fuzz_verbose("plan_resolve", rc, &e);
    if (rc) return 0;

    uint8_t *buf = NULL;
    size_t len = 0;
    if (plan_encode(c, (int)world, &buf, &len, &e)) {
        fuzz_fail("config round trip: a resolved config does not encode: %s", e.msg);
    }
    if (plan_decode(buf, len, plan_hash(buf, len), (int)world, &g_back, &e)) {
        fuzz_fail("config round trip: the plan of a resolved config is refused: %s", e.msg);
    }
    free(buf);
    return 0;
}
