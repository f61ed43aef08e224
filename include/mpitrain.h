#ifndef MPITRAIN_H
#define MPITRAIN_H
/* mpitrain's public C API: train a model from another program.
 *
 *   mpitrain_init(&argc, &argv);            once per process (starts MPI)
 *   mpitrain_config *c = mpitrain_config_new();
 *   mpitrain_config_set(c, "steps", "100", err, sizeof err);   ...
 *   mpitrain_train(c, &result, err, sizeof err);              every rank
 *   mpitrain_config_free(c);
 *   mpitrain_finalize();
 *
 * Keys are the option names of `mpitrain train` (see `mpitrain train
 * --help`), values are their command-line spellings. Every function that can
 * fail returns MPITRAIN_OK (0) or one of the codes below and, when err is not
 * NULL, writes a one-line message into err (errlen bytes, always
 * NUL-terminated). docs/api.md has the rules and a complete example. */
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes; the same numbers as the command line's exit codes. */
#define MPITRAIN_OK 0
#define MPITRAIN_ERR_RUNTIME 1 /* data, I/O, numerics, MPI, a failed rank */
#define MPITRAIN_ERR_USAGE 2   /* bad key or value, impossible plan, call out of order */

/* "0.9.0": the library's version (VERSION at build time). */
const char *mpitrain_version(void);
/* One line of build facts: BLAS, MPI, instruction set, compiler. */
const char *mpitrain_build_info(void);

/* ---- the process ---------------------------------------------------------- */
/* Starts MPI (MPI_THREAD_FUNNELED). Once per process, before any other MPI
 * use; argc/argv may be NULL. A second call fails with MPITRAIN_ERR_USAGE. */
int mpitrain_init(int *argc, char ***argv);
/* Stops MPI; nothing can be trained afterwards in this process. */
int mpitrain_finalize(void);
/* This process's rank and the number of ranks; -1 before mpitrain_init. */
int mpitrain_rank(void);
int mpitrain_size(void);

/* ---- a run's configuration (opaque) --------------------------------------- */
typedef struct mpitrain_config mpitrain_config;

/* The defaults of `mpitrain train`; NULL when out of memory. */
mpitrain_config *mpitrain_config_new(void);
/* Frees c (NULL is fine). */
void mpitrain_config_free(mpitrain_config *c);
/* Sets one option: key is a `mpitrain train` option name without "--"
 * ("layers", "data", "optimizer", ...), value its text ("4", "runs/a",
 * "sgd"). Flags ("quiet", "overwrite") take "1"/"true"/"0"/"false" or NULL.
 * Key "config" reads a file of `key = value` lines at once; later calls
 * override what it set. On error c is unchanged for that key. */
int mpitrain_config_set(mpitrain_config *c, const char *key, const char *value, char *err,
                        size_t errlen);

/* Progress of one step, delivered on rank 0 only. */
typedef struct {
    long step;           /* 1-based step just completed */
    double loss;         /* mean train loss of the global batch */
    double val_loss;     /* NaN unless validated this step */
    double lr;
    double tokens_per_s;
    double time_ms;      /* wall time of the step (slowest rank) */
} mpitrain_step;
typedef void (*mpitrain_step_fn)(const mpitrain_step *s, void *user);
/* Calls fn(s, user) after every step on rank 0 (NULL removes it). It runs on
 * the training thread between steps: return quickly, call no mpitrain_*. */
void mpitrain_config_on_step(mpitrain_config *c, mpitrain_step_fn fn, void *user);

/* ---- training --------------------------------------------------------------- */
#define MPITRAIN_PATH_MAX 4096
typedef struct {
    double final_loss;      /* train loss of the last step */
    double final_val_loss;  /* last validation loss; NaN if none ran */
    long first_step;        /* 0, or the step a resumed run started from */
    long last_step;         /* the step reached */
    long steps;             /* steps this call ran: last_step - first_step */
    double mean_step_ms;
    double tokens_per_s;    /* mean over the run */
    char run_dir[MPITRAIN_PATH_MAX];
    char checkpoint[MPITRAIN_PATH_MAX]; /* the last checkpoint written */
} mpitrain_result;

/* Trains as `mpitrain train` would with these options: collective, so every
 * rank calls it with the same options (rank 0's are the ones that count).
 * Writes <out>/metrics.jsonl and <out>/ckpt/; prints progress on rank 0's
 * stdout unless "quiet" is set. Every rank gets the same return code and
 * message. out (may be NULL) is filled on every rank with rank 0's view. */
int mpitrain_train(const mpitrain_config *c, mpitrain_result *out, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
