#include "worker/loop/rundir.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "base/fileio.h"

/* The pid the holder wrote, for the message ("?" when unreadable). */
static void holder_pid(int fd, char *out, size_t n)
{
    char buf[32] = "";
    ssize_t got = pread(fd, buf, sizeof buf - 1, 0);
    buf[got > 0 ? got : 0] = 0;
    buf[strcspn(buf, "\n")] = 0;
    snprintf(out, n, "%s", buf[0] ? buf : "?");
}

int run_dir_lock(const char *dir, RunLock *l, Err *e)
{
    char path[PATH_BUF];
    if (path_fmt(path, sizeof path, e, "%s/.lock", dir)) return -1;
    /* CLOEXEC: a program this one starts must not keep the run locked */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return err_set(e, "%s: cannot open the run directory's lock: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int busy = errno == EWOULDBLOCK;
        char pid[32];
        holder_pid(fd, pid, sizeof pid);
        close(fd);
        if (busy)
            return err_set(e, "--out %s is in use by another run (pid %s holds %s); wait for it "
                              "to end or choose another --out", dir, pid, path);
        return err_set(e, "%s: cannot lock: %s", path, strerror(errno));
    }
    char line[32];
    int n = snprintf(line, sizeof line, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)n, 0) != n) {
        int err = errno;
        close(fd);
        return err_set(e, "%s: cannot write the holder's pid: %s", path, strerror(err));
    }
    l->fd = fd;
    l->held = 1;
    return 0;
}

void run_dir_unlock(RunLock *l)
{
    if (l->held) close(l->fd);
    l->held = 0;
}

/* The directory that holds dir, fsynced after a rename in it. */
static int sync_parent(const char *dir, Err *e)
{
    char copy[PATH_BUF];
    if (path_fmt(copy, sizeof copy, e, "%s", dir)) return -1;
    return fsync_dir(dirname(copy), e);
}

/* A new, locked, empty directory beside dir, to be renamed onto it. */
static int make_fresh(const char *dir, char *fresh, size_t n, RunLock *l, Err *e)
{
    if (path_fmt(fresh, n, e, "%s.new-%ld", dir, (long)getpid())) return -1;
    remove_tree(fresh); /* a leftover of this pid's earlier attempt */
    if (mkdir(fresh, 0755) != 0)
        return err_set(e, "%s: cannot create: %s", fresh, strerror(errno));
    if (run_dir_lock(fresh, l, e)) {
        remove_tree(fresh);
        return -1;
    }
    return 0;
}

/* The old run is locked while it is moved, so no run still writing into it
 * is pulled away; the new one is locked before it takes dir's name, so no
 * other run can slip in between. */
int run_dir_replace(const char *given, RunLock *l, char *kept, size_t kept_len, Err *e)
{
    RunLock old = {0};
    char dir[PATH_BUF], fresh[PATH_BUF], aside[PATH_BUF];
    kept[0] = 0;
    /* "runs/a/" names the same directory, but its siblings are runs/a.* */
    if (path_fmt(dir, sizeof dir, e, "%s", given)) return -1;
    for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--) dir[n - 1] = 0;
    if (run_dir_lock(dir, &old, e)) return -1;
    if (path_fmt(aside, sizeof aside, e, "%s.overwritten-%ld-%ld", dir, (long)time(NULL),
                 (long)getpid()) ||
        make_fresh(dir, fresh, sizeof fresh, l, e)) {
        run_dir_unlock(&old);
        return -1;
    }
    int rc = 0;
    if (rename(dir, aside) != 0)
        rc = err_set(e, "--overwrite: cannot move %s aside to %s: %s", dir, aside, strerror(errno));
    else if (rename(fresh, dir) != 0)
        rc = err_set(e, "--overwrite: cannot put a fresh %s in place (%s); the old run is intact "
                        "in %s", dir, strerror(errno), aside);
    run_dir_unlock(&old);
    if (rc) {
        run_dir_unlock(l);
        remove_tree(fresh);
        return -1;
    }
    if (sync_parent(dir, e)) return -1;
    if (remove_tree(aside) != 0) snprintf(kept, kept_len, "%s", aside);
    return 0;
}
