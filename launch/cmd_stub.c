#include <stdio.h>
#include "launch/commands.h"
int cmd_sample(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "todo\n"); return 1; }
int cmd_ckpt(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "todo\n"); return 1; }
