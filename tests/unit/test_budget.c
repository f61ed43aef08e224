/* --time-budget without MPI: the duration parser and its formatting (which
 * config.json and the plan carry), the flag's messages and its effect on
 * --steps, the lr schedule over the budget's fraction (exact values), and the
 * time used as the checkpoint manifest keeps it. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/options.h"
#include "worker/ckpt/ckpt.h"
#include "worker/config/config.h"
#include "worker/optim/optim.h"

/* ---- the duration parser --------------------------------------------------- */

Test(duration, accepts_the_documented_forms_exactly)
{
    const struct {
        const char *text;
        double seconds;
    } ok[] = {{"90", 90},       {"90s", 90},        {"15m", 900},     {"1h30m", 5400},
              {"2h", 7200},     {"1.5h", 5400},     {"0", 0},         {"2.5", 2.5},
              {"1h0m30s", 3630}, {"1m30s", 90},     {"0.5s", 0.5},    {".5m", 30},
              {"3s", 3},        {"1h30s", 3630},    {"10.", 10}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        double d = -1;
        cr_assert_eq(opts_parse_duration(ok[i].text, &d), 0, "'%s' refused", ok[i].text);
        cr_assert_eq(d, ok[i].seconds, "'%s' read as %.17g, not %.17g", ok[i].text, d,
                     ok[i].seconds);
    }
}

Test(duration, refuses_garbage)
{
    const char *bad[] = {"",    "abc", "-5",   "+5",   "1e3", "nan",  "inf", "1h30", "1m1h",
                         "1h1h", "h",  "1hm",  "1 h",  " 1",  "1.2.3", ".",  "1d",   "5ms",
                         "1s2",  "s",  "0x10", "1h-30m"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double d = 123;
        cr_assert_eq(opts_parse_duration(bad[i], &d), -1, "'%s' accepted as %g", bad[i], d);
        cr_assert_eq(d, 123, "'%s': a refused value must leave the output alone", bad[i]);
    }
}

Test(duration, formats_to_text_that_reads_back_bit_for_bit)
{
    const double v[] = {0, 3, 90, 5400, 0.1, 1e-3, 12345.678, 1.0 / 3.0, 1e9};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char text[64];
        double back = -1;
        opts_format_duration(v[i], text, sizeof text);
        cr_assert_eq(opts_parse_duration(text, &back), 0, "'%s' does not parse", text);
        cr_assert(!memcmp(&back, &v[i], sizeof back), "%.17g -> '%s' -> %.17g", v[i], text, back);
    }
    char text[64];
    opts_format_duration(5400, text, sizeof text);
    cr_assert_str_eq(text, "5400s");
}

/* ---- the flag ------------------------------------------------------------------ */

static const OptSpec *budget_spec(void)
{
    for (const OptSpec *s = train_config_table(NULL); s->name; s++)
        if (!strcmp(s->name, "time-budget")) return s;
    return NULL;
}

/* TrainGiven has a bit for every entry: one past the first 64 (the swarm's)
 * is seen as given, and one not given is not */
Test(time_budget, settings_past_the_64th_are_known_as_given)
{
    size_t n;
    const OptSpec *t = train_config_table(&n);
    cr_assert_leq(n, TRAIN_CONFIG_MAX_ENTRIES);
    cr_assert_not_null(budget_spec());
    const OptSpec *late = NULL, *other = NULL;
    for (size_t i = 64; i < n; i++) {
        if (!strcmp(t[i].name, "swarm-misses")) late = &t[i];
        if (!strcmp(t[i].name, "swarm-wait")) other = &t[i];
    }
    cr_assert(late && other, "the swarm's settings sit past entry 64 (table of %zu)", n);
    char *argv[] = {"--swarm-misses", "5"};
    TrainConfig *c = calloc(1, sizeof *c);
    c->given = train_config_given(2, argv, 0);
    cr_assert(train_config_was_given(c, late));
    cr_assert_not(train_config_was_given(c, other));
    free(c);
}

Test(time_budget, a_bad_value_is_refused_naming_the_flag)
{
    TrainConfig *c = calloc(1, sizeof *c);
    train_config_defaults(c);
    Err e;
    cr_assert_eq(opts_set_value(train_config_table(NULL), c, "time-budget", "ten minutes", &e), -1);
    cr_assert(strstr(e.msg, "--time-budget") && strstr(e.msg, "'ten minutes'"), "%s", e.msg);
    cr_assert_eq(opts_set_value(train_config_table(NULL), c, "time-budget", "2000000000", &e), -1);
    cr_assert(strstr(e.msg, "--time-budget") && strstr(e.msg, "out of range"), "%s", e.msg);
    cr_assert_eq(opts_set_value(train_config_table(NULL), c, "time-budget", "1h30m", &e), 0);
    cr_assert_eq(c->time_budget_s, 5400);
    free(c);
}

/* cmd_train's order: parse, finish, given, and launch_train's finish again */
static void parse(TrainConfig *c, int argc, char **argv)
{
    train_config_defaults(c);
    int help = 0;
    cr_assert_eq(opts_parse("train", train_config_table(NULL), c, argc, argv, 0, NULL, 0, NULL,
                            &help), 0);
    train_config_finish(c);
    c->given = train_config_given(argc, argv, 0);
    train_config_finish(c);
}

Test(time_budget, without_steps_there_is_no_step_limit)
{
    TrainConfig *c = calloc(1, sizeof *c);
    char *only[] = {"--time-budget", "15m"};
    parse(c, 2, only);
    cr_assert_eq(c->time_budget_s, 900);
    cr_assert_eq(c->steps, TRAIN_STEPS_UNLIMITED);
    char *both[] = {"--time-budget", "15m", "--steps", "50"};
    parse(c, 4, both);
    cr_assert_eq(c->steps, 50, "--steps given: both limits hold");
    char *none[] = {"--steps", "50"};
    parse(c, 2, none);
    cr_assert_eq(c->time_budget_s, 0);
    cr_assert_eq(c->steps, 50);
    free(c);
}

Test(time_budget, config_json_round_trips_it)
{
    TrainConfig *c = calloc(1, sizeof *c), *back = calloc(1, sizeof *back);
    char *argv[] = {"--time-budget", "1.5h", "--out", "x", "--data", "y"};
    parse(c, 6, argv);
    char path[] = "/tmp/mpitrain_budget_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    Err e;
    cr_assert_eq(train_config_write_json(c, path, &e), 0, "%s", e.msg);
    char *again[] = {"--config", path};
    parse(back, 2, again);
    unlink(path);
    cr_assert_eq(back->time_budget_s, 5400);
    cr_assert_eq(back->steps, TRAIN_STEPS_UNLIMITED, "config.json keeps 'no step limit'");
    free(c);
    free(back);
}

/* ---- the lr by the budget's fraction ----------------------------------------- */

static OptimConfig sched(int warmup)
{
    OptimConfig c;
    memset(&c, 0, sizeof c);
    c.kind = OPT_ADAMW;
    c.lr = 1.0f;
    c.min_lr = 0.1f;
    c.warmup = warmup;
    c.total_steps = 110;
    return c;
}

Test(lr_by_time, cosine_over_the_fraction)
{
    OptimConfig c = sched(0);
    cr_assert_eq(lr_at_frac(&c, 0, 0.0), 1.0f);
    cr_assert_eq(lr_at_frac(&c, 7, 0.5), 0.55f);
    cr_assert_eq(lr_at_frac(&c, 99, 1.0), 0.1f);
    /* the cosine at 1/4: 0.1 + 0.9 * (1 + cos(pi/4)) / 2 */
    cr_assert_eq(lr_at_frac(&c, 3, 0.25), (float)(0.1f + (1.0 - 0.1f) * 0.5 * (1 + cos(M_PI / 4))));
    /* past the budget, below zero, NaN: clamped */
    cr_assert_eq(lr_at_frac(&c, 5, 1.7), 0.1f);
    cr_assert_eq(lr_at_frac(&c, 5, -0.3), 1.0f);
    cr_assert_eq(lr_at_frac(&c, 5, NAN), 1.0f);
    /* the step does not matter after the warm-up: time does */
    cr_assert_eq(lr_at_frac(&c, 0, 0.5), lr_at_frac(&c, 1000000, 0.5));
    /* monotone: more budget used, never a larger lr */
    for (int i = 1; i <= 100; i++)
        cr_assert_leq(lr_at_frac(&c, 50, i / 100.0), lr_at_frac(&c, 50, (i - 1) / 100.0));
}

Test(lr_by_time, warmup_in_steps_scales_the_cosine)
{
    OptimConfig c = sched(10);
    /* at frac 0 the warm-up is the step schedule's own */
    for (long s = 0; s < 10; s++) cr_assert_eq(lr_at_frac(&c, s, 0.0), lr_at(&c, s), "step %ld", s);
    cr_assert_eq(lr_at_frac(&c, 0, 0.0), 0.1f);
    cr_assert_eq(lr_at_frac(&c, 4, 0.5), 0.55f * 5.0f / 10.0f);
    cr_assert_eq(lr_at_frac(&c, 9, 0.5), 0.55f);
    cr_assert_eq(lr_at_frac(&c, 10, 0.5), 0.55f);
}

Test(lr_by_time, the_config_form_gives_the_same_lr_at_every_step)
{
    OptimConfig c = sched(5);
    const double fracs[] = {0, 0.1, 0.5, 0.999, 1, 3};
    for (size_t i = 0; i < sizeof fracs / sizeof fracs[0]; i++) {
        OptimConfig k = optim_at_frac(&c, fracs[i]);
        for (long s = 0; s < 40; s++)
            cr_assert_eq(lr_at(&k, s), lr_at_frac(&c, s, fracs[i]), "frac %g step %ld", fracs[i], s);
    }
    /* the run's settings are left alone */
    cr_assert_eq(c.lr, 1.0f);
    cr_assert_eq(c.total_steps, 110);
}

/* ---- the manifest keeps the time used ------------------------------------- */

Test(time_budget, the_manifest_round_trips_the_time_used)
{
    static CkptMeta meta, back;
    ckpt_meta_init(&meta);
    meta.step = 42;
    meta.budget_used_s = 1234.5678901234;
    CkptManifestPB pb;
    Err e;
    cr_assert_eq(ckpt_meta_to_pb(&meta, &pb, &e), 0, "%s", e.msg);
    size_t n = mpitrain__manifest__get_packed_size(&pb.mf);
    uint8_t *buf = malloc(n);
    mpitrain__manifest__pack(&pb.mf, buf);
    ckpt_manifest_pb_free(&pb);
    Mpitrain__Manifest *got = mpitrain__manifest__unpack(NULL, n, buf);
    cr_assert_not_null(got);
    cr_assert_eq(ckpt_meta_from_pb(got, &back, &e), 0, "%s", e.msg);
    cr_assert_eq(back.step, 42);
    cr_assert(!memcmp(&back.budget_used_s, &meta.budget_used_s, sizeof(double)));
    mpitrain__manifest__free_unpacked(got, NULL);
    free(buf);
    /* a manifest without the field (an older build's, or no budget): 0 */
    ckpt_meta_init(&meta);
    cr_assert_eq(ckpt_meta_to_pb(&meta, &pb, &e), 0, "%s", e.msg);
    cr_assert_eq(mpitrain__manifest__get_packed_size(&pb.mf) < n, 1);
    ckpt_manifest_pb_free(&pb);
}
