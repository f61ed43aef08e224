#ifndef MPITRAIN_FUZZ_UTIL_H
#define MPITRAIN_FUZZ_UTIL_H
/* Helpers shared by the libFuzzer targets in tests/fuzz/ (one .c each,
 * built by tests/fuzz_test.sh with clang -fsanitize=fuzzer,address,undefined).
 *
 * Environment:
 *   MPITRAIN_FUZZ_TMP  where a target makes its private working directory
 *                      (default $TMPDIR or /tmp); removed at exit.
 *   MPITRAIN_FUZZ_GEN  a directory: LLVMFuzzerInitialize writes valid seed
 *                      inputs there, made with the project's own writers.
 *   MPITRAIN_FUZZ_VERBOSE  print each reader's verdict (when reproducing).
 *
 * A harness failure (cannot write its temp file, ...) is not a finding of
 * the reader: it prints "fuzz harness:" and exits 3, never abort(). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/fileio.h"

#define FUZZ_PATH 4400

static char fuzz_workdir_path[FUZZ_PATH];

/* stderr as it was at LLVMFuzzerInitialize, before -close_fd_mask closes
 * fd 2 (which silences the readers' own messages): the harness's messages
 * must reach the log. */
static int fuzz_err_fd = -1;
static inline void fuzz_keep_stderr(void)
{
    if (fuzz_err_fd < 0) fuzz_err_fd = dup(2);
}

__attribute__((format(printf, 1, 2))) static inline void fuzz_say(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n > sizeof msg - 2) n = (int)sizeof msg - 2;
    msg[n++] = '\n';
    ssize_t w = write(fuzz_err_fd >= 0 ? fuzz_err_fd : 2, msg, (size_t)n);
    (void)w;
}

/* MPITRAIN_FUZZ_VERBOSE=1: say what the readers refused (for reproducing). */
static inline void fuzz_verbose(const char *what, int rc, const Err *e)
{
    static int on = -1;
    if (on < 0) on = getenv("MPITRAIN_FUZZ_VERBOSE") != NULL;
    if (on) fuzz_say("%s: %s", what, rc ? e->msg : "ok");
}

/* A finding of the harness's own checks: the message, then abort(). */
#define fuzz_fail(...) (fuzz_say(__VA_ARGS__), abort())

__attribute__((format(printf, 1, 2), noreturn)) static inline void fuzz_die(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fuzz_say("fuzz harness: %s", msg);
    _exit(3);
}

static inline void fuzz_cleanup(void)
{
    if (fuzz_workdir_path[0]) remove_tree(fuzz_workdir_path);
}

/* A fresh private directory for this process's temporary files. */
static inline const char *fuzz_workdir(const char *tag)
{
    fuzz_keep_stderr();
    if (fuzz_workdir_path[0]) return fuzz_workdir_path;
    const char *base = getenv("MPITRAIN_FUZZ_TMP");
    if (!base || !*base) base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    Err e = {{0}};
    if (mkdir_p(base, &e)) fuzz_die("%s", e.msg);
    snprintf(fuzz_workdir_path, sizeof fuzz_workdir_path, "%s/fuzz-%s-XXXXXX", base, tag);
    if (!mkdtemp(fuzz_workdir_path)) fuzz_die("mkdtemp %s failed", fuzz_workdir_path);
    atexit(fuzz_cleanup);
    return fuzz_workdir_path;
}

/* dir + "/" + name into out. */
static inline void fuzz_join(char *out, const char *dir, const char *name)
{
    snprintf(out, FUZZ_PATH, "%s/%s", dir, name);
}

static inline void fuzz_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) fuzz_die("cannot create %s", path);
    if ((n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) fuzz_die("cannot write %s", path);
}

/* The seed directory, or NULL when seeds are not wanted. */
static inline const char *fuzz_gen_dir(void)
{
    const char *g = getenv("MPITRAIN_FUZZ_GEN");
    if (!g || !*g) return NULL;
    Err e = {{0}};
    if (mkdir_p(g, &e)) fuzz_die("%s", e.msg);
    return g;
}

/* Writes one seed <gen>/<name> (no-op without MPITRAIN_FUZZ_GEN). */
static inline void fuzz_seed(const char *name, const void *data, size_t n)
{
    const char *g = fuzz_gen_dir();
    if (!g) return;
    char p[FUZZ_PATH];
    fuzz_join(p, g, name);
    fuzz_write_file(p, data, n);
}

/* Copies a whole file into a seed. */
static inline void fuzz_seed_file(const char *name, const char *path)
{
    if (!fuzz_gen_dir()) return;
    void *buf;
    size_t len;
    Err e = {{0}};
    if (read_file(path, 64u << 20, &buf, &len, &e)) fuzz_die("%s", e.msg);
    fuzz_seed(name, buf, len);
    free(buf);
}

/* Folds bytes into a sink the optimizer cannot drop, so that reading every
 * byte a reader hands back is checked by ASan. */
static volatile uint32_t fuzz_sink;
static inline void fuzz_touch(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint32_t s = 0;
    for (size_t i = 0; i < n; i++) s = s * 31u + b[i];
    fuzz_sink ^= s;
}

#endif
