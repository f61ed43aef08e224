#include "base/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int atomic_open(AtomicFile *af, const char *path, Err *e)
{
    if (strlen(path) >= sizeof af->path)
        return err_set(e, "%s: path too long", path);
    snprintf(af->path, sizeof af->path, "%s", path);
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%d", path, (int)getpid());
    af->f = fopen(af->tmp, "wb");
    if (!af->f)
        return err_set(e, "%s: cannot create: %s", af->tmp, strerror(errno));
    return 0;
}

int atomic_write(AtomicFile *af, const void *data, size_t len, Err *e)
{
    if (len && fwrite(data, 1, len, af->f) != len) {
        int saved = errno;
        atomic_abort(af);
        return err_set(e, "%s: write failed: %s", af->path, strerror(saved));
    }
    return 0;
}

int atomic_narrow_mode(AtomicFile *af, unsigned mode, Err *e)
{
    struct stat st;
    if (fstat(fileno(af->f), &st) != 0 || fchmod(fileno(af->f), st.st_mode & mode & 07777) != 0) {
        int saved = errno;
        atomic_abort(af);
        return err_set(e, "%s: cannot set its mode: %s", af->path, strerror(saved));
    }
    return 0;
}

void atomic_abort(AtomicFile *af)
{
    if (af->f) fclose(af->f);
    af->f = NULL;
    unlink(af->tmp);
}

static int parent_dir(const char *path, char *out, size_t n)
{
    char tmp[PATH_LEN];
    snprintf(tmp, sizeof tmp, "%s", path);
    snprintf(out, n, "%s", dirname(tmp));
    return 0;
}

int atomic_commit(AtomicFile *af, Err *e)
{
    if (fflush(af->f) != 0 || fsync(fileno(af->f)) != 0) {
        int saved = errno;
        atomic_abort(af);
        return err_set(e, "%s: flush failed: %s", af->path, strerror(saved));
    }
    if (fclose(af->f) != 0) {
        af->f = NULL;
        unlink(af->tmp);
        return err_set(e, "%s: close failed: %s", af->path, strerror(errno));
    }
    af->f = NULL;
    if (rename(af->tmp, af->path) != 0) {
        int saved = errno;
        unlink(af->tmp);
        return err_set(e, "%s: rename failed: %s", af->path, strerror(saved));
    }
    char dir[PATH_LEN];
    parent_dir(af->path, dir, sizeof dir);
    return fsync_dir(dir, e);
}

int write_file_atomic(const char *path, const void *data, size_t len, Err *e)
{
    AtomicFile af;
    if (atomic_open(&af, path, e) || atomic_write(&af, data, len, e)) return -1;
    return atomic_commit(&af, e);
}

int fsync_dir(const char *dir, Err *e)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return err_set(e, "%s: cannot open directory: %s", dir, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    if (rc != 0) return err_set(e, "%s: fsync failed: %s", dir, strerror(errno));
    return 0;
}

int mkdir_p(const char *dir, Err *e)
{
    char tmp[PATH_LEN];
    if (strlen(dir) >= sizeof tmp) return err_set(e, "%s: path too long", dir);
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return err_set(e, "%s: cannot create directory: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return err_set(e, "%s: cannot create directory: %s", tmp, strerror(errno));
    struct stat st;
    if (stat(tmp, &st) != 0 || !S_ISDIR(st.st_mode))
        return err_set(e, "%s: exists and is not a directory", tmp);
    return 0;
}

static const char *file_kind(mode_t m)
{
    return S_ISFIFO(m) ? "a named pipe" : S_ISDIR(m) ? "a directory"
         : S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device"
         : S_ISSOCK(m) ? "a socket" : "of another kind";
}

int open_input(const char *path, uint64_t *size, Err *e)
{
    /* O_NONBLOCK: opening a FIFO returns at once instead of waiting for a
     * writer; fstat then tells what the name is */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return err_set(e, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int saved = errno;
        close(fd);
        return err_set(e, "%s: cannot stat: %s", path, strerror(saved));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(e, "%s: not a regular file (%s): refusing to read it", path,
                       file_kind(st.st_mode));
    }
    if (size) *size = (uint64_t)st.st_size;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        int saved = errno;
        close(fd);
        return err_set(e, "%s: fcntl: %s", path, strerror(saved));
    }
    return fd;
}

FILE *fopen_input(const char *path, uint64_t *size, Err *e)
{
    int fd = open_input(path, size, e);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        err_set(e, "%s: cannot open: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

int mkdir_parent(const char *file, Err *e)
{
    char dir[PATH_LEN];
    if (strlen(file) >= sizeof dir) return err_set(e, "%s: path too long", file);
    snprintf(dir, sizeof dir, "%s", file);
    char *slash = strrchr(dir, '/');
    if (!slash) return 0;
    while (slash > dir && slash[-1] == '/') slash--;
    if (slash == dir) return 0; /* the root */
    *slash = 0;
    return mkdir_p(dir, e);
}

int read_file(const char *path, size_t max_len, void **out, size_t *len, Err *e)
{
    *out = NULL;
    uint64_t size;
    FILE *f = fopen_input(path, &size, e);
    if (!f) return -1;
    if (size > max_len) {
        fclose(f);
        return err_set(e, "%s: file is %llu bytes, more than the %zu allowed", path,
                       (unsigned long long)size, max_len);
    }
    size_t n = (size_t)size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return err_set(e, "%s: out of memory reading %zu bytes", path, n);
    }
    if (fread(buf, 1, n, f) != n) {
        free(buf);
        fclose(f);
        return err_set(e, "%s: short read", path);
    }
    fclose(f);
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}

int remove_tree(const char *dir)
{
    /* a symbolic link goes, never what it points to */
    struct stat lst;
    if (lstat(dir, &lst) == 0 && !S_ISDIR(lst.st_mode)) return unlink(dir);
    DIR *d = opendir(dir);
    if (!d) return unlink(dir);
    struct dirent *ent;
    char p[PATH_LEN];
    while ((ent = readdir(d))) {
        if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, ent->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    return rmdir(dir);
}

int path_fmt(char *out, size_t n, Err *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(out, n, fmt, ap);
    va_end(ap);
    if (len >= 0 && (size_t)len < n) return 0;
    return err_set(e, "path too long (%d bytes, at most %zu): %.120s...", len, n - 1, out);
}
