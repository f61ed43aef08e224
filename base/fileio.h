#ifndef MPITRAIN_FSUTIL_H
#define MPITRAIN_FSUTIL_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "base/err.h"

/* Path buffers come in two sizes. A path as given (a flag, a manifest
 * field) fits PATH_LEN, the kernel's PATH_MAX; option tables refuse longer
 * ones. A path built under such a path (a run dir's ckpt/step_N/rank_K.bin,
 * a ".tmp.<pid>" sibling) adds less than 256 bytes to it, so PATH_BUF holds
 * it without truncating; the kernel itself refuses one over PATH_MAX, and
 * the error names it. */
#define PATH_LEN 4096
#define PATH_BUF (PATH_LEN + 256)

/* snprintf for a path built from other paths: -1, with e naming the start
 * of the path, if it does not fit in n (a truncated path could name
 * another file). */
int path_fmt(char *out, size_t n, Err *e, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Crash-safe file output: data goes to "<path>.tmp.<pid>", is fsynced, then
 * renamed over <path> and the directory is fsynced. A crash leaves either the
 * old file or the new one, never half of one. */
typedef struct {
    FILE *f;
    char path[PATH_LEN];
    char tmp[PATH_BUF];
} AtomicFile;

int atomic_open(AtomicFile *af, const char *path, Err *e);
int atomic_write(AtomicFile *af, const void *data, size_t len, Err *e);
/* fsync + rename + fsync(dir). On failure the temporary is removed. */
int atomic_commit(AtomicFile *af, Err *e);
/* Narrows the new file's permission bits to mode: the result is never
 * wider than what it was created with (the umask's) nor than mode. */
int atomic_narrow_mode(AtomicFile *af, unsigned mode, Err *e);
/* Drop the temporary without touching <path>. */
void atomic_abort(AtomicFile *af);
/* One-shot: write a whole buffer atomically. */
int write_file_atomic(const char *path, const void *data, size_t len, Err *e);

int fsync_dir(const char *dir, Err *e);
/* mkdir -p; existing directories are fine. */
int mkdir_p(const char *dir, Err *e);
/* Every input file is opened through these: they refuse anything but a
 * regular file, by name, before a read could block. A named pipe with no
 * writer would block open() forever (and a signal handler installed with
 * SA_RESTART restarts it, so SIGTERM could not stop the process); a
 * directory or a device is no input either. Returns an fd (O_CLOEXEC,
 * blocking again once it is known to be a regular file), or -1 with e
 * naming the file. */
int open_input(const char *path, uint64_t *size, Err *e);
/* The same as a stdio stream ("rb"); NULL with e on failure. size (may be
 * NULL) gets the file's size. */
FILE *fopen_input(const char *path, uint64_t *size, Err *e);
/* mkdir -p of the folder a file path goes into (nothing for a bare name). */
int mkdir_parent(const char *file, Err *e);
/* Read a whole file (at most max_len bytes, else an error). */
int read_file(const char *path, size_t max_len, void **out, size_t *len, Err *e);
/* rm -rf of a directory tree we created (used to drop failed temporaries). */
int remove_tree(const char *dir);

#endif
