#include "worker/loop/rundir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "base/fileio.h"
#include "worker/ckpt/ckpt.h"

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

/* given without its trailing slashes: "lnk/" would name the directory lnk
 * points to, and "runs/a/"'s siblings are runs/a.* */
static int trimmed(char *dir, size_t n, const char *given, Err *e)
{
    if (path_fmt(dir, n, e, "%s", given)) return -1;
    for (size_t len = strlen(dir); len > 1 && dir[len - 1] == '/'; len--) dir[len - 1] = 0;
    return 0;
}

/* Where --overwrite moves dir whole before removing it. */
static int aside_name(char *aside, size_t n, const char *dir, Err *e)
{
    return path_fmt(aside, n, e, "%s.overwritten-%ld-%ld", dir, (long)time(NULL), (long)getpid());
}

/* A file name, or one of its temporaries (name.tmp.<pid>, as the atomic
 * writes of base/fileio.c leave them when killed). */
static int is_or_tmp_of(const char *entry, const char *name)
{
    size_t n = strlen(name);
    return !strncmp(entry, name, n) && (!entry[n] || !strncmp(entry + n, ".tmp.", 5));
}

/* The entries of a run directory that a run writes. */
static int run_dir_entry(const char *name, int is_dir)
{
    static const char *const FILES[] = {".lock", "metrics.jsonl", "config.json", "summary.json",
                                        "heartbeat"};
    if (is_dir) return !strcmp(name, "ckpt") || !strcmp(name, "zo");
    for (size_t i = 0; i < sizeof FILES / sizeof FILES[0]; i++)
        if (is_or_tmp_of(name, FILES[i])) return 1;
    return 0;
}

/* The ZO journal's directory holds the journal alone. */
static int zo_dir_entry(const char *name, int is_dir)
{
    return !is_dir && is_or_tmp_of(name, "journal.bin");
}

typedef int (*OwnEntry)(const char *name, int is_dir);

/* Every entry of dir is a plain file or directory that own accepts (a
 * symbolic link never is: what it points to is not the writer's); e names
 * the first that is not. A run directory's ckpt/ and zo/ are checked in
 * turn. */
static int holds_only(const char *dir, OwnEntry own, const char *what, Err *e)
{
    DIR *d = opendir(dir);
    if (!d) return err_set(e, "--overwrite %s: cannot read it: %s", dir, strerror(errno));
    struct dirent *ent;
    int rc = 0;
    while (!rc && (ent = readdir(d))) {
        if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, "..")) continue;
        char p[PATH_BUF];
        struct stat st;
        if (path_fmt(p, sizeof p, e, "%s/%s", dir, ent->d_name)) rc = -1;
        else if (lstat(p, &st) != 0) rc = err_set(e, "%s: cannot stat: %s", p, strerror(errno));
        else if (!(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) || !own(ent->d_name, S_ISDIR(st.st_mode)))
            rc = err_set(e, "--overwrite would remove %s, which is not %s's: it replaces only "
                            "what mpitrain wrote; move it out, or choose another --out",
                         p, what);
        else if (own == run_dir_entry && S_ISDIR(st.st_mode))
            rc = holds_only(p, strcmp(ent->d_name, "ckpt") ? zo_dir_entry : ckpt_root_entry, what, e);
    }
    closedir(d);
    return rc;
}

/* What --overwrite may replace: dir itself, not a link to it, holding only
 * what own says its writer writes. */
static int check_replaceable(const char *given, OwnEntry own, const char *what, Err *e)
{
    char dir[PATH_BUF];
    if (trimmed(dir, sizeof dir, given, e)) return -1;
    struct stat st;
    if (lstat(dir, &st) != 0) return err_set(e, "--overwrite %s: %s", dir, strerror(errno));
    if (S_ISLNK(st.st_mode))
        return err_set(e, "--overwrite %s: it is a symbolic link; --overwrite never replaces what "
                          "a link points to: give the directory itself", dir);
    if (!S_ISDIR(st.st_mode)) return err_set(e, "--overwrite %s: not a directory", dir);
    return holds_only(dir, own, what, e);
}

int run_dir_check_replaceable(const char *dir, Err *e)
{
    return check_replaceable(dir, run_dir_entry, "a run", e);
}

int ckpt_root_check_replaceable(const char *dir, Err *e)
{
    return check_replaceable(dir, ckpt_root_entry, "a checkpoint root", e);
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
    if (trimmed(dir, sizeof dir, given, e) || run_dir_check_replaceable(dir, e) ||
        run_dir_lock(dir, &old, e))
        return -1;
    if (aside_name(aside, sizeof aside, dir, e) || make_fresh(dir, fresh, sizeof fresh, l, e)) {
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

int path_lies_inside(const char *path, const char *dir)
{
    char rp[PATH_MAX], rd[PATH_MAX];
    if (!path[0] || !realpath(path, rp) || !realpath(dir, rd)) return 0;
    size_t n = strlen(rd);
    return !strncmp(rp, rd, n) && (rp[n] == '/' || rp[n] == 0);
}

static int is_empty_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *ent;
    int empty = 1;
    while (empty && (ent = readdir(d)))
        empty = !strcmp(ent->d_name, ".") || !strcmp(ent->d_name, "..");
    closedir(d);
    return empty;
}

int ckpt_root_claim(const char *root, int overwrite, const char *source, char *aside, size_t n,
                    Err *e)
{
    struct stat st;
    aside[0] = 0;
    if (lstat(root, &st) != 0 || (S_ISDIR(st.st_mode) && is_empty_dir(root))) return 0;
    if (!overwrite)
        return err_set(e, "--out %s already exists (a checkpoint root would gain or replace "
                          "steps there, and latest would move): choose a new --out, or pass "
                          "--overwrite to replace it", root);
    if (ckpt_root_check_replaceable(root, e)) return -1;
    /* a run directory as the source holds its checkpoint root */
    if (path_lies_inside(source, root) || path_lies_inside(root, source))
        return err_set(e, "--overwrite %s: it overlaps %s, which this command reads; write to "
                          "another --out", root, source);
    char dir[PATH_BUF];
    if (trimmed(dir, sizeof dir, root, e) || aside_name(aside, n, dir, e)) return -1;
    if (rename(dir, aside) != 0) {
        int err = errno;
        aside[0] = 0;
        return err_set(e, "--overwrite: cannot move %s aside: %s", dir, strerror(err));
    }
    return 0;
}

void ckpt_root_settle(const char *root, const char *aside, int failed)
{
    if (!aside[0]) return;
    if (!failed) {
        remove_tree(aside);
        return;
    }
    remove_tree(root);
    rename(aside, root);
}
