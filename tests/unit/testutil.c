#include "tests/unit/testutil.h"
#include "base/fileio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *test_tmpdir(const char *name)
{
    static char path[4096];
    const char *base = getenv("MPITRAIN_TEST_TMP");
    if (!base) base = "/tmp/mpitrain-test";
    mkdir(base, 0755);
    snprintf(path, sizeof path, "%s/%s-%d", base, name, (int)getpid());
    remove_tree(path);
    Err e;
    return mkdir_p(path, &e) ? NULL : path;
}

int test_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t n = fwrite(data, 1, len, f);
    return (fclose(f) == 0 && n == len) ? 0 : -1;
}

void *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    if (buf && len) *len = (size_t)n;
    return buf;
}
