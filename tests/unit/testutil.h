#ifndef MPITRAIN_TESTUTIL_H
#define MPITRAIN_TESTUTIL_H
#include <stddef.h>

/* A fresh, empty directory for one test under $MPITRAIN_TEST_TMP (or /tmp). */
const char *test_tmpdir(const char *name);
/* Write `len` bytes to `path`; returns 0 on success. */
int test_write_file(const char *path, const void *data, size_t len);
/* Read a whole file into a malloc'd buffer; NULL on failure. */
void *test_read_file(const char *path, size_t *len);

#endif
