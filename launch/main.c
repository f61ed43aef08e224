#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include "launch/commands.h"
#include "base/options.h"
#include "mpitrain.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mpitrain <command> [options]\n\n"
            "commands:\n"
            "  train     train a model (run under mpirun/srun for several ranks)\n"
            "  prepare   turn text files into a token file (default: the King James Bible)\n"
            "  tokenize  text -> GPT-2 token ids, and back (--decode)\n"
            "  sample    generate text from a checkpoint\n"
            "  eval      mean loss of a checkpoint over a token file's validation windows\n"
            "  ckpt      inspect and export checkpoints (info, export)\n"
            "  plan      predict step time and memory of every layout of N ranks\n"
            "  plot      draw runs' loss curves and step-time breakdown into a PNG\n"
            "  version   print the version and how this build was made (also --version)\n\n"
            "`mpitrain <command> --help` describes each command.\n");
}

int main(int argc, char **argv)
{
    /* a reader that goes away (`| head`) must not kill a training run: its
     * progress lines fail quietly and the run and its files go on */
    signal(SIGPIPE, SIG_IGN);
    /* Buffers of a megabyte or more get their own mappings, returned to the
     * system when freed. glibc's default raises that bar as big blocks are
     * freed, so the planner's GEMM probes (24 MB, freed) would stay as holes
     * in the heap under the weights: 20 MB of a 25 M-parameter ZO run's
     * resident memory, for nothing. Every such buffer is set-up time. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *c = argv[1];
    if (!strcmp(c, "--help") || !strcmp(c, "-h") || !strcmp(c, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(c, "--version") || !strcmp(c, "version")) {
        printf("mpitrain %s\nbuilt with %s\n", mpitrain_version(), mpitrain_build_info());
        return 0;
    }
    if (!strcmp(c, "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(c, "prepare")) return cmd_prepare(argc - 1, argv + 1);
    if (!strcmp(c, "sample")) return cmd_sample(argc - 1, argv + 1);
    if (!strcmp(c, "eval")) return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(c, "ckpt")) return cmd_ckpt(argc - 1, argv + 1);
    if (!strcmp(c, "plan")) return cmd_plan(argc - 1, argv + 1);
    if (!strcmp(c, "plot")) return cmd_plot(argc - 1, argv + 1);
    if (!strcmp(c, "tokenize")) return cmd_tokenize(argc - 1, argv + 1);
    fprintf(stderr, "mpitrain: unknown command '%s' (commands: train, prepare, tokenize, sample, eval, ckpt, plan, plot, version)\n", c);
    return EXIT_USAGE;
}
