#include "base/utf8.h"

static const char REPLACEMENT[] = "\xEF\xBF\xBD";

void utf8_init(Utf8Out *u) { u->have = u->need = 0; }

/* A lead byte: how many bytes its character has and the range of the byte
 * after it (which rules out overlong forms, surrogates and > U+10FFFF);
 * 0 for a byte no character starts with. */
static int lead(unsigned char b, unsigned char *lo, unsigned char *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) return 2;
    if (b >= 0xE0 && b <= 0xEF) {
        if (b == 0xE0) *lo = 0xA0;
        if (b == 0xED) *hi = 0x9F;
        return 3;
    }
    if (b >= 0xF0 && b <= 0xF4) {
        if (b == 0xF0) *lo = 0x90;
        if (b == 0xF4) *hi = 0x8F;
        return 4;
    }
    return 0;
}

void utf8_put(Utf8Out *u, unsigned char b, FILE *f)
{
    if (u->have) {
        if (b >= u->lo && b <= u->hi) {
            u->pend[u->have++] = b;
            u->lo = 0x80;
            u->hi = 0xBF;
            if (u->have == u->need) {
                fwrite(u->pend, 1, (size_t)u->have, f);
                u->have = 0;
            }
            return;
        }
        /* the character was cut short: one U+FFFD, then b starts afresh */
        fputs(REPLACEMENT, f);
        u->have = 0;
    }
    int n = lead(b, &u->lo, &u->hi);
    if (n == 1) {
        fputc(b, f);
    } else if (n == 0) {
        fputs(REPLACEMENT, f);
    } else {
        u->pend[0] = b;
        u->have = 1;
        u->need = n;
    }
}

void utf8_finish(Utf8Out *u, FILE *f)
{
    if (u->have) fputs(REPLACEMENT, f);
    u->have = 0;
}
