#include "base/wire.h"

#include <stdint.h>
#include <string.h>
#include "base/half.h"
#include "base/quant.h"

const char *wire_name(int w)
{
    static const char *names[] = {"fp32", "bf16", "int8", "int4"};
    return w >= 0 && w < 4 ? names[w] : "?";
}

size_t wire_bytes(WireFormat w, size_t len)
{
    switch (w) {
    case WIRE_BF16: return 2 * len;
    case WIRE_INT8: return quant_bytes(8, len);
    case WIRE_INT4: return quant_bytes(4, len);
    default: return 4 * len;
    }
}

void wire_encode(WireFormat w, float *v, size_t len, unsigned char *out, float *err, float *x)
{
    for (size_t i = 0; i < len; i++) x[i] = err ? v[i] + err[i] : v[i];
    switch (w) {
    case WIRE_F32: memcpy(out, x, 4 * len); break;
    case WIRE_BF16:
        for (size_t i = 0; i < len; i++) {
            uint16_t h = f32_to_bf16(x[i]);
            memcpy(out + 2 * i, &h, 2);
            v[i] = bf16_to_f32(h);
        }
        break;
    case WIRE_INT8: quant_encode(8, x, len, out, v); break;
    case WIRE_INT4: quant_encode(4, x, len, out, v); break;
    }
    if (err)
        for (size_t i = 0; i < len; i++) err[i] = x[i] - v[i];
}

void wire_decode(WireFormat w, const unsigned char *in, size_t len, float *out)
{
    switch (w) {
    case WIRE_F32: memcpy(out, in, 4 * len); break;
    case WIRE_BF16:
        for (size_t i = 0; i < len; i++) {
            uint16_t h;
            memcpy(&h, in + 2 * i, 2);
            out[i] = bf16_to_f32(h);
        }
        break;
    case WIRE_INT8: quant_decode(8, in, len, out); break;
    case WIRE_INT4: quant_decode(4, in, len, out); break;
    }
}
