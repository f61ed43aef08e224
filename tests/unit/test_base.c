/* The ground floor's helpers: CRC-32C (both paths), FNV-1a, little-endian
 * fields, and (below) the JSON writer. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/crc32c.h"
#include "base/hash.h"
#include "base/le.h"

/* ---- CRC-32C ---------------------------------------------------------------- */

Test(crc32c, known_answer)
{
    cr_assert_eq(crc32c(0, "123456789", 9), 0xE3069283u);
    cr_assert_eq(crc32c_sw(0, "123456789", 9), 0xE3069283u);
    cr_assert_eq(crc32c(0, "", 0), 0u);
    cr_assert_eq(crc32c_sw(0, "", 0), 0u);
    /* RFC 3720 B.4: 32 bytes of zeros */
    unsigned char z[32] = {0};
    cr_assert_eq(crc32c(0, z, sizeof z), 0x8A9136AAu);
    cr_assert_eq(crc32c_sw(0, z, sizeof z), 0x8A9136AAu);
}

/* A fixed pseudo-random sequence (xorshift), so a failure reproduces. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static unsigned char *random_bytes(size_t n, uint64_t seed)
{
    unsigned char *b = malloc(n);
    cr_assert_not_null(b);
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)rng_next(&seed);
    return b;
}

Test(crc32c, chaining)
{
    unsigned char *b = random_bytes(1000, 1);
    for (size_t cut = 0; cut <= 1000; cut += 37) {
        cr_assert_eq(crc32c(crc32c(0, b, cut), b + cut, 1000 - cut), crc32c(0, b, 1000));
        cr_assert_eq(crc32c_sw(crc32c_sw(0, b, cut), b + cut, 1000 - cut), crc32c_sw(0, b, 1000));
    }
    free(b);
}

/* The software path is what non-SSE4.2 builds use: it must agree with the
 * hardware one on every length (the 8-byte loop and the tail) and alignment. */
Test(crc32c, software_equals_hardware)
{
    unsigned char *b = random_bytes(70000, 2);
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; n <= 300; n++)
            cr_assert_eq(crc32c_sw(0x12345678u, b + off, n), crc32c(0x12345678u, b + off, n),
                         "offset %zu length %zu", off, n);
    cr_assert_eq(crc32c_sw(0, b + 3, 69997), crc32c(0, b + 3, 69997));
    free(b);
}

/* ---- FNV-1a ------------------------------------------------------------------ */

Test(hash, fnv1a64_known_answers_and_chaining)
{
    cr_assert_eq(fnv1a64(FNV1A64_INIT, "", 0), 0xcbf29ce484222325ull);
    cr_assert_eq(fnv1a64(FNV1A64_INIT, "a", 1), 0xaf63dc4c8601ec8cull);
    cr_assert_eq(fnv1a64(FNV1A64_INIT, "foobar", 6), 0x85944171f73967e8ull);
    cr_assert_eq(fnv1a64(fnv1a64(FNV1A64_INIT, "foo", 3), "bar", 3), 0x85944171f73967e8ull);
}

/* ---- little-endian fields ------------------------------------------------------ */

Test(le, byte_order_and_round_trip)
{
    unsigned char b[8];
    le_put16(b, 0x1234);
    cr_assert(b[0] == 0x34 && b[1] == 0x12);
    cr_assert_eq(le_get16(b), 0x1234);
    le_put32(b, 0x89abcdefu);
    cr_assert(b[0] == 0xef && b[1] == 0xcd && b[2] == 0xab && b[3] == 0x89);
    cr_assert_eq(le_get32(b), 0x89abcdefu);
    le_put64(b, 0x0123456789abcdefull);
    cr_assert(b[0] == 0xef && b[7] == 0x01);
    cr_assert_eq(le_get64(b), 0x0123456789abcdefull);
    le_put_f32(b, 1.0f); /* 0x3f800000 */
    cr_assert(b[0] == 0 && b[1] == 0 && b[2] == 0x80 && b[3] == 0x3f);
    cr_assert_eq(le_get_f32(b), 1.0f);
    /* a NaN keeps its payload bit for bit */
    le_put32(b, 0x7fc00001u);
    float f = le_get_f32(b);
    unsigned char c[4];
    le_put_f32(c, f);
    cr_assert_eq(memcmp(b, c, 4), 0);
}
