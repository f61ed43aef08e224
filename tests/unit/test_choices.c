/* A setting whose value asks the run to choose (--zo-scale 0: from a
 * warm-up) does not conflict with the value chosen: a swarm joiner given
 * --zo-scale 0 takes its keeper's scale, while a joiner given another
 * scale is still refused. (--resume's side: tests/mpi/resume_told.sh and
 * recovery_resume.sh.) */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "base/options.h"
#include "worker/config/config.h"
#include "worker/method/swarm/swarm_config.h"

/* cmd_train's order: parse, finish, given */
static TrainConfig *parsed(int argc, char **argv)
{
    TrainConfig *c = calloc(1, sizeof *c);
    train_config_defaults(c);
    int help = 0;
    cr_assert_eq(opts_parse("train", train_config_table(NULL), c, argc, argv, 0, NULL, 0, NULL,
                            &help), 0);
    train_config_finish(c);
    c->given = train_config_given(argc, argv, 0);
    return c;
}

static const OptSpec *spec(const char *name)
{
    for (const OptSpec *s = train_config_table(NULL); s->name; s++)
        if (!strcmp(s->name, name)) return s;
    cr_assert_fail("no setting %s", name);
    return NULL;
}

Test(choices, zo_scale_0_leaves_the_choice_to_the_run)
{
    char *auto_scale[] = {"--optimizer", "zo", "--zo-scale", "0"};
    char *fixed[] = {"--optimizer", "zo", "--zo-scale", "0.5"};
    TrainConfig *a = parsed(4, auto_scale), *f = parsed(4, fixed);
    cr_assert(train_config_leaves_choice(a, spec("zo-scale")));
    cr_assert_not(train_config_leaves_choice(f, spec("zo-scale")));
    cr_assert_not(train_config_leaves_choice(a, spec("zo-eps")), "only the settings that mean it");
    cr_assert_not(train_config_leaves_choice(a, spec("in-dim")), "--in-dim 0 is a rule, not a choice");
    free(a);
    free(f);
}

Test(choices, a_swarm_joiner_given_zo_scale_0_takes_the_keepers_scale)
{
    char *keeper_args[] = {"--optimizer", "zo"};
    TrainConfig *keeper = parsed(2, keeper_args);
    char text[4096];
    Err e = {{0}};
    cr_assert_eq(swarm_config_text(keeper, 0.0203f, text, sizeof text, &e), 0, "%s", e.msg);
    char *joiner_args[] = {"--optimizer", "zo", "--zo-scale", "0"};
    TrainConfig *joiner = parsed(4, joiner_args);
    cr_assert_eq(swarm_config_adopt(joiner, text, strlen(text), "keeper:1", &e), 0, "%s", e.msg);
    cr_assert_eq(joiner->zo_scale, 0.0203f, "took %g", joiner->zo_scale);
    char *other_args[] = {"--optimizer", "zo", "--zo-scale", "0.5"};
    TrainConfig *other = parsed(4, other_args);
    cr_assert_eq(swarm_config_adopt(other, text, strlen(text), "keeper:1", &e), -1);
    cr_assert(strstr(e.msg, "--zo-scale 0.5") && strstr(e.msg, "0.0203"), "%s", e.msg);
    free(keeper);
    free(joiner);
    free(other);
}
