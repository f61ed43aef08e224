/* The ground floor's helpers: CRC-32C (both paths), FNV-1a, little-endian
 * fields, the 2-byte floats, and (below) the JSON writer. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/crc32c.h"
#include "base/half.h"
#include "base/hash.h"
#include "base/json.h"
#include "base/le.h"
#include "base/quant.h"
#include "base/sysinfo.h"
#include "base/utf8.h"

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

/* splitmix64's finalizer: known answers (the generator's first outputs from
 * state 0 are mix64 of the golden-ratio increments) */
Test(hash, mix64_known_answers)
{
    cr_assert_eq(mix64(0x9E3779B97F4A7C15ull), 0xE220A8397B1DCDAFull);
    cr_assert_eq(mix64(0x9E3779B97F4A7C15ull * 2), 0x6E789E6AA1B965F4ull);
    cr_assert_eq(mix64(0), 0);
}

/* permute_index is a bijection of [0, n) for any n (odd and even bit
 * counts, powers of two and one past them), its order depends on the key,
 * and a large n stays in range */
Test(hash, permute_index_is_a_keyed_bijection)
{
    const uint64_t ns[] = {1, 2, 3, 5, 64, 65, 1000, 4097};
    for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
        uint64_t n = ns[k];
        unsigned char *seen = calloc(n, 1);
        for (uint64_t i = 0; i < n; i++) {
            uint64_t p = permute_index(i, n, 42);
            cr_assert(p < n, "n %llu: %llu -> %llu", (unsigned long long)n, (unsigned long long)i,
                      (unsigned long long)p);
            cr_assert(!seen[p], "n %llu: %llu reached twice", (unsigned long long)n,
                      (unsigned long long)p);
            seen[p] = 1;
        }
        free(seen);
    }
    int moved = 0, differs = 0;
    for (uint64_t i = 0; i < 1000; i++) {
        moved += permute_index(i, 1000, 42) != i;
        differs += permute_index(i, 1000, 42) != permute_index(i, 1000, 43);
    }
    cr_expect(moved > 900 && differs > 900, "%d of 1000 moved, %d differ by key", moved, differs);
    uint64_t big = (1ull << 63) + 12345;
    for (uint64_t i = big - 5; i < big; i++) cr_expect(permute_index(i, big, 7) < big);
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

/* ---- the JSON writer --------------------------------------------------------- */

/* The finished in-memory text of j (asserting it finished cleanly). */
static const char *json_done(JsonOut *j)
{
    cr_assert_eq(json_finish(j), 0, "json_finish: %s", j->error);
    cr_assert_not_null(j->buf);
    return j->buf;
}

Test(json, escaping)
{
    JsonOut j;
    json_init(&j, NULL);
    json_begin_array(&j);
    json_str(&j, "say \"hi\" \\ o/");
    json_str(&j, "a\nb\tc\rd\be\ff");
    json_str(&j, "\x01\x1f\x7f");
    json_str(&j, "caf\xc3\xa9"); /* UTF-8 passes through */
    json_str(&j, "");
    json_end_array(&j);
    cr_assert_str_eq(json_done(&j),
                     "[\"say \\\"hi\\\" \\\\ o/\",\"a\\nb\\tc\\rd\\be\\ff\",\"\\u0001\\u001f\x7f\","
                     "\"caf\xc3\xa9\",\"\"]");
    json_free(&j);
}

Test(json, keys_are_escaped_too)
{
    JsonOut j;
    json_init(&j, NULL);
    json_begin_object(&j);
    json_int(json_key(&j, "a\"b\n"), 1);
    json_end_object(&j);
    cr_assert_str_eq(json_done(&j), "{\"a\\\"b\\n\":1}");
    json_free(&j);
}

Test(json, non_finite_numbers_are_null)
{
    JsonOut j;
    json_init(&j, NULL);
    json_begin_array(&j);
    json_double(&j, NAN);
    json_double(&j, INFINITY);
    json_double(&j, -INFINITY);
    json_sig(&j, NAN, 6);
    json_fixed(&j, INFINITY, 3);
    json_fixed(&j, -NAN, 0);
    json_end_array(&j);
    cr_assert_str_eq(json_done(&j), "[null,null,null,null,null,null]");
    json_free(&j);
}

Test(json, number_forms)
{
    JsonOut j;
    json_init(&j, NULL);
    json_begin_array(&j);
    json_int(&j, -9223372036854775807LL - 1);
    json_uint(&j, UINT64_MAX);
    json_double(&j, 0.1);
    json_double(&j, 3);
    json_sig(&j, 6e-4, 6);
    json_fixed(&j, 1234.5678, 2);
    json_fixed(&j, 2.5e6, 0);
    json_bool(&j, 1);
    json_bool(&j, 0);
    json_null(&j);
    json_end_array(&j);
    cr_assert_str_eq(json_done(&j), "[-9223372036854775808,18446744073709551615,"
                                    "0.10000000000000001,3,0.0006,1234.57,2500000,true,false,null]");
    json_free(&j);
}

Test(json, nesting_and_commas)
{
    JsonOut j;
    json_init(&j, NULL);
    json_begin_object(&j);
    json_begin_array(json_key(&j, "empty"));
    json_end_array(&j);
    json_begin_object(json_key(&j, "o"));
    json_end_object(&j);
    json_begin_array(json_key(&j, "a"));
    for (int i = 0; i < 3; i++) {
        json_begin_object(&j);
        json_int(json_key(&j, "i"), i);
        json_begin_array(json_key(&j, "v"));
        json_int(&j, i);
        json_int(&j, -i);
        json_end_array(&j);
        json_end_object(&j);
    }
    json_end_array(&j);
    json_str(json_key(&j, "last"), "x");
    json_end_object(&j);
    cr_assert_str_eq(json_done(&j), "{\"empty\":[],\"o\":{},\"a\":[{\"i\":0,\"v\":[0,0]},"
                                    "{\"i\":1,\"v\":[1,-1]},{\"i\":2,\"v\":[2,-2]}],\"last\":\"x\"}");
    json_free(&j);
}

Test(json, newlines_go_after_the_comma)
{
    JsonOut j;
    json_init(&j, NULL);
    json_begin_array(&j);
    json_newline(&j);
    json_int(&j, 1);
    json_newline(&j);
    json_int(&j, 2);
    json_newline(&j);
    json_end_array(&j);
    json_newline(&j);
    json_begin_object(&j); /* JSON Lines: top-level values take no comma */
    json_end_object(&j);
    json_newline(&j);
    cr_assert_str_eq(json_done(&j), "[\n1,\n2\n]\n{}\n");
    json_free(&j);
}

Test(json, misuse_is_an_error)
{
    JsonOut j;
    json_init(&j, NULL);
    json_begin_object(&j);
    json_int(&j, 1); /* no key */
    cr_assert_eq(json_finish(&j), -1);
    cr_assert_not_null(j.error);
    json_free(&j);

    json_init(&j, NULL);
    json_begin_array(&j);
    cr_assert_eq(json_finish(&j), -1, "an unclosed array is not a document");
    json_free(&j);

    json_init(&j, NULL);
    json_begin_array(&j);
    json_end_object(&j);
    cr_assert_eq(json_finish(&j), -1);
    json_free(&j);

    json_init(&j, NULL);
    json_key(&j, "k"); /* a key at the top level */
    cr_assert_eq(json_finish(&j), -1);
    json_free(&j);

    json_init(&j, NULL);
    for (int i = 0; i <= JSON_MAX_DEPTH; i++) json_begin_array(&j);
    cr_assert_eq(json_finish(&j), -1);
    json_free(&j);
}

/* A big document through a FILE sink: flushed in chunks, and the bytes on
 * the file are exactly the in-memory text. */
Test(json, file_sink_streams_the_same_text)
{
    JsonOut mem, file;
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    json_init(&mem, NULL);
    json_init(&file, f);
    JsonOut *both[2] = {&mem, &file};
    for (int w = 0; w < 2; w++) {
        JsonOut *j = both[w];
        json_begin_array(j);
        for (int i = 0; i < 20000; i++) {
            json_newline(j);
            json_begin_object(j);
            json_str(json_key(j, "name"), "span \"x\"");
            json_fixed(json_key(j, "ts"), i * 1.5, 3);
            json_end_object(j);
        }
        json_newline(j);
        json_end_array(j);
        cr_assert_eq(json_finish(j), 0, "%s", j->error);
    }
    cr_assert_lt(file.cap, mem.len, "the sink's buffer stayed small");
    long n = ftell(f);
    cr_assert_eq((size_t)n, mem.len);
    char *back = malloc(mem.len);
    cr_assert_not_null(back);
    rewind(f);
    cr_assert_eq(fread(back, 1, mem.len, f), mem.len);
    cr_assert_eq(memcmp(back, mem.buf, mem.len), 0);
    free(back);
    fclose(f);
    json_free(&mem);
    json_free(&file);
}

/* ---- sysinfo ------------------------------------------------------------------ */

Test(sysinfo, schedstat_gives_run_and_wait_seconds)
{
    double run = -1, wait = -1;
    cr_assert_eq(sys_parse_schedstat("4048453 85451170 2\n", &run, &wait), 0);
    cr_assert_float_eq(run, 0.004048453, 1e-15);
    cr_assert_float_eq(wait, 0.08545117, 1e-15);
    cr_assert_eq(sys_parse_schedstat("garbage", &run, &wait), -1);
    cr_assert_eq(sys_parse_schedstat("12", &run, &wait), -1);
    /* this process: it has run, and the kernel says so (or does not at all) */
    if (sys_sched_times(&run, &wait) == 0) cr_assert(run > 0 && wait >= 0);
}

Test(sysinfo, meminfo_available_not_free)
{
    /* 6 GB of clean page cache: MemFree is small, MemAvailable is what counts */
    const char *text = "MemTotal:       24576000 kB\nMemFree:         1048576 kB\n"
                       "MemAvailable:   23400000 kB\nBuffers:           12345 kB\n";
    cr_assert_eq(sys_parse_meminfo_available(text), (size_t)23400000 * 1024);
    cr_assert_eq(sys_parse_meminfo_available("MemTotal: 5 kB\n"), 0, "absent = unknown");
}

Test(sysinfo, cgroup_limits)
{
    cr_assert_eq(sys_parse_cgroup_limit("max\n"), 0, "v2 no limit");
    cr_assert_eq(sys_parse_cgroup_limit("9223372036854771712\n"), 0, "v1 no limit");
    cr_assert_eq(sys_parse_cgroup_limit("4294967296\n"), (size_t)4 << 30);
    cr_assert_eq(sys_parse_cgroup_limit("garbage"), 0);
}

Test(sysinfo, this_machine)
{
    size_t avail = sys_available_bytes(), total = sys_total_bytes();
    cr_assert_gt(avail, 0);
    cr_assert_gt(total, 0);
    cr_assert_leq(avail, total + ((size_t)1 << 30), "available %zu > total %zu", avail, total);
    int bound = 0, cpus = sys_usable_cpus(&bound);
    cr_assert_geq(cpus, 1);
}

/* ---- reading one flat JSON object ----------------------------------------------- */

typedef struct {
    char seen[512];
} Pairs;

static int collect(void *ctx, const char *key, const char *value, int quoted, size_t offset)
{
    (void)offset;
    Pairs *p = ctx;
    size_t n = strlen(p->seen);
    snprintf(p->seen + n, sizeof p->seen - n, "%s=%s%s;", key, quoted ? "'" : "",
             value ? value : "NULL");
    return strcmp(key, "stop") ? 0 : 7;
}

Test(json_read, pairs_in_order_with_types)
{
    Pairs p = {""};
    size_t at;
    Err e;
    int rc = json_read_flat(" {\"step\":3, \"loss\":2.5e-1,\"name\":\"a\\\"b\\u00e9\",\n\"v\":null,"
                            "\"ok\":true}\n", collect, &p, &at, &e);
    cr_assert_eq(rc, 0, "%s", e.msg);
    cr_assert_str_eq(p.seen, "step=3;loss=2.5e-1;name='a\"b\xc3\xa9;v=NULL;ok=true;");
}

/* a surrogate pair is one character (4 bytes of UTF-8); halves alone are refused */
Test(json_read, surrogate_pairs)
{
    Pairs p = {""};
    size_t at;
    Err e;
    cr_assert_eq(json_read_flat("{\"s\":\"x\\ud83d\\ude00y\"}", collect, &p, &at, &e), 0, "%s", e.msg);
    cr_assert_str_eq(p.seen, "s='x\xf0\x9f\x98\x80y;");
    const char *bad[] = {"{\"s\":\"\\ud83d\"}", "{\"s\":\"\\ude00\"}", "{\"s\":\"\\ud83dx\"}",
                         "{\"s\":\"\\ud83d\\u0041\"}", "{\"s\":\"\\ud8\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        Pairs q = {""};
        cr_expect_eq(json_read_flat(bad[i], collect, &q, &at, &e), -1, "accepted: %s", bad[i]);
    }
}

Test(json_read, malformed_says_what_and_where)
{
    const char *bad[] = {"", "[1]", "{\"a\" 1}", "{\"a\":1,}", "{\"a\":{\"b\":1}}", "{\"a\":1} x",
                         "{\"a\":\"unterminated}", "{\"a\":1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        Pairs p = {""};
        size_t at = 0;
        Err e = {""};
        cr_assert_eq(json_read_flat(bad[i], collect, &p, &at, &e), -1, "accepted: %s", bad[i]);
        cr_assert(e.msg[0], "no message for %s", bad[i]);
        cr_assert_leq(at, strlen(bad[i]));
    }
    cr_assert_eq(json_line_of("a\nb\nc", 4), 3);
}

Test(json_read, callback_code_stops_the_read)
{
    Pairs p = {""};
    size_t at;
    Err e;
    cr_assert_eq(json_read_flat("{\"a\":1,\"stop\":2,\"c\":3}", collect, &p, &at, &e), 7);
    cr_assert_str_eq(p.seen, "a=1;stop=2;");
}

Test(json_read, nested_values_come_raw)
{
    Pairs p = {""};
    size_t at;
    Err e;
    int rc = json_read_object("{\"t\":{\"shape\":[2, 3],\"s\":\"a]}\\\"\"},\"n\":1,\"a\":[]}",
                              collect, &p, &at, &e);
    cr_assert_eq(rc, 0, "%s", e.msg);
    cr_assert_str_eq(p.seen, "t='{\"shape\":[2, 3],\"s\":\"a]}\\\"\"};n=1;a='[];");
    const char *bad[] = {"{\"a\":{\"b\":1}", "{\"a\":[1,2}", "{\"a\":{\"b\":\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(json_read_object(bad[i], collect, &p, &at, &e), -1, "accepted: %s", bad[i]);
    cr_assert_eq(json_read_flat("{\"a\":[1]}", collect, &p, &at, &e), -1, "flat takes no nesting");
}

Test(json_read, integer_arrays)
{
    long long v[4];
    int n;
    Err e;
    cr_assert_eq(json_read_ints(" [ 50257, 768 ,-1] ", v, 4, &n, &e), 0, "%s", e.msg);
    cr_assert(n == 3 && v[0] == 50257 && v[1] == 768 && v[2] == -1);
    cr_assert_eq(json_read_ints("[]", v, 4, &n, &e), 0);
    cr_assert_eq(n, 0);
    const char *bad[] = {"[1.5]", "[1,]", "[1 2]", "[\"1\"]", "[1,2,3,4,5]", "1", "[1] x",
                         "[99999999999999999999]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(json_read_ints(bad[i], v, 4, &n, &e), -1, "accepted: %s", bad[i]);
}

/* ---- UTF-8 out ------------------------------------------------------------------ */

static void utf8_of(const char *in, size_t n, char *out, size_t cap)
{
    FILE *f = fmemopen(out, cap, "w");
    cr_assert_not_null(f);
    Utf8Out u;
    utf8_init(&u);
    for (size_t i = 0; i < n; i++) utf8_put(&u, (unsigned char)in[i], f);
    utf8_finish(&u, f);
    fclose(f);
}

Test(utf8, valid_text_passes_ill_formed_becomes_replacement)
{
    char out[128];
    const char ok[] = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z"; /* a é € 😀 z */
    utf8_of(ok, sizeof ok - 1, out, sizeof out);
    cr_assert_str_eq(out, ok);
    const struct {
        const char *in, *want;
        size_t n;
    } cases[] = {
        {"\xFF", "\xEF\xBF\xBD", 1},                         /* no character starts so */
        {"\xC0\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD", 2},         /* overlong '/' */
        {"\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD", 3}, /* a surrogate */
        {"\xE2\x82" "a", "\xEF\xBF\xBD" "a", 3},              /* cut short, then 'a' */
        {"x\xE2\x82", "x\xEF\xBF\xBD", 3},                    /* cut short by the end */
        {"\xF4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD", 4}, /* > U+10FFFF */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        utf8_of(cases[i].in, cases[i].n, out, sizeof out);
        cr_assert_str_eq(out, cases[i].want, "case %zu", i);
    }
}

/* ---- the 2-byte floats ----------------------------------------------------------- */

static float from_bits(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

Test(half, bf16_rounds_to_nearest_even)
{
    const struct { uint32_t in; uint16_t want; } cases[] = {
        {0x3f800000u, 0x3f80}, /* 1: exact */
        {0x3f808000u, 0x3f80}, /* half-way, the even (lower) one */
        {0x3f818000u, 0x3f82}, /* half-way, the even (upper) one */
        {0x3f808001u, 0x3f81}, /* past half-way: up */
        {0x3f807fffu, 0x3f80}, /* below half-way: down */
        {0x7f7fffffu, 0x7f80}, /* the largest float rounds to infinity */
        {0x80000001u, 0x8000}, /* -tiny to -0 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_eq(f32_to_bf16(from_bits(cases[i].in)), cases[i].want, "case %zu", i);
    cr_assert(isnan(bf16_to_f32(f32_to_bf16(NAN))));
    cr_assert_eq(bf16_to_f32(0x3f80), 1.0f);
}

Test(half, f16_rounds_to_nearest_even)
{
    const struct { float in; uint16_t want; } cases[] = {
        {1.0f, 0x3c00},
        {1.0f + 0x1p-11f, 0x3c00},           /* half-way between 1 and 1 + 2^-10: even */
        {1.0f + 3 * 0x1p-11f, 0x3c02},       /* half-way, the even one above */
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01}, /* past half-way */
        {65504.0f, 0x7bff},                  /* the largest half */
        {65519.0f, 0x7bff},                  /* still rounds down to it */
        {65520.0f, 0x7c00},                  /* half-way to 65536: infinity */
        {-1e6f, 0xfc00},
        {0x1p-14f, 0x0400},                  /* the smallest normal */
        {0x1p-24f, 0x0001},                  /* the smallest subnormal */
        {0x1p-25f, 0x0000},                  /* half of it: to even, zero */
        {3 * 0x1p-25f, 0x0002},              /* 1.5 of it: to even, 2 */
        {0x1p-14f - 0x1p-25f, 0x0400},       /* rounds up into the normals */
        {-0.0f, 0x8000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_eq(f32_to_f16(cases[i].in), cases[i].want, "case %zu: %a -> 0x%04x", i,
                     cases[i].in, f32_to_f16(cases[i].in));
    cr_assert(isnan(f16_to_f32(f32_to_f16(NAN))));
    cr_assert(isinf(f16_to_f32(f32_to_f16(INFINITY))));
    /* every finite half widens and narrows back to itself */
    for (uint32_t h = 0; h < 0x10000; h++)
        if ((h & 0x7c00) != 0x7c00) cr_assert_eq(f32_to_f16(f16_to_f32((uint16_t)h)), h, "0x%04x", h);
}

/* ---- block-wise absmax codes (base/quant.h) ------------------------------ */

Test(quant, sizes_count_a_scale_per_block)
{
    cr_assert_eq(quant_bytes(8, 0), 0);
    cr_assert_eq(quant_bytes(8, 64), 68);
    cr_assert_eq(quant_bytes(4, 64), 36);
    cr_assert_eq(quant_bytes(8, 65), 68 + 5);
    cr_assert_eq(quant_bytes(4, 65), 36 + 5);
    cr_assert_eq(quant_bytes(4, 3), 4 + 2);
}

Test(quant, known_codes_round_half_to_even)
{
    /* scales of exactly 1, so the half-way cases are exact */
    const float x8[4] = {127.0f, -63.5f, 31.75f, 0.0f}, x4[4] = {7.0f, -3.5f, 1.75f, 0.0f};
    unsigned char w[8];
    float sent[4];
    quant_encode(8, x8, 4, w, sent);
    cr_assert_eq(le_get_f32(w), 1.0f);
    /* 127, round(-63.5) = -64, round(31.75) = 32, 0 */
    cr_assert_eq((signed char)w[4], 127);
    cr_assert_eq((signed char)w[5], -64);
    cr_assert_eq((signed char)w[6], 32);
    cr_assert_eq((signed char)w[7], 0);
    cr_assert_eq(sent[1], -64.0f);
    quant_encode(4, x4, 4, w, sent);
    cr_assert_eq(le_get_f32(w), 1.0f);
    /* 7, round(-3.5) = -4, round(1.75) = 2, 0; lower nibble first */
    cr_assert_eq(w[4], 0xC7);
    cr_assert_eq(w[5], 0x02);
    cr_assert_eq(sent[1], -4.0f);
}

/* every value within half a step of its block's scale, and the sender's
 * `sent` the very bits the receiver decodes */
static void check_bound(int bits, const float *x, size_t n)
{
    size_t nb = quant_bytes(bits, n);
    unsigned char *w = malloc(nb);
    float *sent = malloc(n * sizeof *sent), *back = malloc(n * sizeof *back);
    quant_encode(bits, x, n, w, sent);
    quant_decode(bits, w, n, back);
    float q = bits == 8 ? 127 : 7;
    for (size_t b = 0; b < n; b += QUANT_BLOCK) {
        size_t len = n - b < QUANT_BLOCK ? n - b : QUANT_BLOCK;
        float amax = 0;
        for (size_t i = b; i < b + len; i++) amax = fmaxf(amax, fabsf(x[i]));
        float step = amax / q;
        for (size_t i = b; i < b + len; i++) {
            cr_assert_eq(memcmp(&sent[i], &back[i], 4), 0, "int%d: value %zu", bits, i);
            cr_assert_leq(fabsf(back[i] - x[i]), 0.5f * step * (1 + 1e-5f) + 1e-30f,
                          "int%d: value %zu: %g came back as %g (step %g)", bits, i, x[i], back[i], step);
        }
    }
    free(w);
    free(sent);
    free(back);
}

Test(quant, error_within_half_a_step)
{
    enum { N = 1000 }; /* not a whole number of blocks */
    float x[N];
    uint32_t r = 12345;
    for (size_t i = 0; i < N; i++) {
        r = r * 1664525u + 1013904223u;
        float u = (float)(r >> 8) / (float)(1u << 24) - 0.5f;
        x[i] = u * powf(10.0f, (float)((int)(i / QUANT_BLOCK) % 7 - 4)); /* blocks of 1e-4..1e2 */
    }
    check_bound(8, x, N);
    check_bound(4, x, N);
}

Test(quant, zeros_and_non_finite_blocks)
{
    float x[2 * QUANT_BLOCK] = {0}, back[2 * QUANT_BLOCK];
    unsigned char w[2 * 68];
    x[QUANT_BLOCK + 3] = NAN;
    x[QUANT_BLOCK + 4] = 1.0f;
    for (int bits = 4; bits <= 8; bits += 4) {
        quant_encode(bits, x, 2 * QUANT_BLOCK, w, back);
        quant_decode(bits, w, 2 * QUANT_BLOCK, back);
        for (int i = 0; i < QUANT_BLOCK; i++) cr_assert_eq(back[i], 0.0f, "int%d: a zero block", bits);
        /* a NaN spoils its own block, visibly, and no other */
        for (int i = QUANT_BLOCK; i < 2 * QUANT_BLOCK; i++) cr_assert(isnan(back[i]), "int%d: %d", bits, i);
    }
}

/* What error feedback is for: sending the same value again and again with
 * the rounding error carried, the mean of what arrives converges on it, at
 * a rate of one step per round. */
Test(quant, error_feedback_mean_converges)
{
    float x[QUANT_BLOCK], v[QUANT_BLOCK], err[QUANT_BLOCK] = {0}, total[QUANT_BLOCK] = {0};
    for (int i = 0; i < QUANT_BLOCK; i++) x[i] = (i == 0) ? 1.0f : 0.3f + 0.01f * (float)i;
    unsigned char w[68];
    enum { ROUNDS = 200 };
    for (int k = 0; k < ROUNDS; k++) {
        for (int i = 0; i < QUANT_BLOCK; i++) v[i] = x[i] + err[i];
        float sent[QUANT_BLOCK];
        quant_encode(4, v, QUANT_BLOCK, w, sent);
        for (int i = 0; i < QUANT_BLOCK; i++) {
            err[i] = v[i] - sent[i];
            total[i] += sent[i];
        }
    }
    for (int i = 0; i < QUANT_BLOCK; i++)
        cr_assert_leq(fabsf(total[i] / ROUNDS - x[i]), 2.0f / 7 / ROUNDS, "value %d", i);
}
