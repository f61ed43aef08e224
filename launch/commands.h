#ifndef MPITRAIN_COMMANDS_H
#define MPITRAIN_COMMANDS_H
/* Subcommands of the mpitrain CLI. Each takes argv after the subcommand
 * name (argv[0] is the subcommand) and returns the process exit code:
 * 0 success, 1 runtime error, 2 usage error. */
int cmd_train(int argc, char **argv);
int cmd_prepare(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_ckpt(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);

#include <stddef.h>
#include "worker/config/config.h" /* DEFAULT_DATA */

/* Creates DEFAULT_DATA from the `bible` command if it does not exist yet. */
int ensure_default_data(char *err, size_t n);

#endif
