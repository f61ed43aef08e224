#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int err_set(Err *e, const char *fmt, ...)
{
    if (!e) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int err_wrap(Err *e, const char *fmt, ...)
{
    if (!e) return -1;
    char prefix[512], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    /* both parts are bounded; truncation of an over-long message is fine */
    size_t n = strnlen(prefix, sizeof prefix);
    memcpy(e->msg, prefix, n);
    size_t room = sizeof e->msg - n;
    if (room > 2) {
        e->msg[n] = ':';
        e->msg[n + 1] = ' ';
        size_t m = strnlen(old, sizeof old);
        if (m > room - 3) m = room - 3;
        memcpy(e->msg + n + 2, old, m);
        e->msg[n + 2 + m] = 0;
    } else {
        e->msg[sizeof e->msg - 1] = 0;
    }
    return -1;
}
