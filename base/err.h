#ifndef MPITRAIN_ERR_H
#define MPITRAIN_ERR_H

/* Error reporting without global state: a function that can fail takes an
 * Err*, fills it with a message naming the file / tensor / rank / value, and
 * returns -1. Callers pass it up; only the top level prints and exits. */
typedef struct {
    char msg[1024];
} Err;

/* Formats the message into e (if non-NULL) and returns -1. */
int err_set(Err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prepends "prefix: " to an existing message; returns -1. */
int err_wrap(Err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
