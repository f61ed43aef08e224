#ifndef MPITRAIN_UTF8_H
#define MPITRAIN_UTF8_H
/* Bytes out as valid UTF-8, as they come: a byte-level model (or a token's
 * bytes) may stop mid-character or produce bytes no character has; each
 * complete character is written as soon as it is whole, and each ill-formed
 * piece becomes U+FFFD (one per maximal ill-formed subpart, as Unicode
 * recommends), so a terminal or a JSON reader always gets valid text. */
#include <stdio.h>

typedef struct {
    unsigned char pend[4];
    int have, need;     /* bytes held; bytes the character has in all */
    unsigned char lo, hi; /* the range the next continuation byte must fall in */
} Utf8Out;

void utf8_init(Utf8Out *u);
/* Feeds one byte; writes what became whole (or U+FFFD) to f. */
void utf8_put(Utf8Out *u, unsigned char byte, FILE *f);
/* The end: a character cut short becomes U+FFFD. */
void utf8_finish(Utf8Out *u, FILE *f);

#endif
